//! The chat panel: a labelled dialog holding the header, the message log, the live region
//! that reads finished answers out, the error line and the composer. Escape closes it.

use leptos::ev::KeyboardEvent;
use leptos::prelude::*;

use super::composer::Composer;
use super::error::ErrorLine;
use super::header::Header;
use super::message_log::MessageLog;
use super::state::Chat;

#[component]
pub(super) fn Panel(chat: Chat) -> impl IntoView {
    view! {
        <section
            class="panel"
            id="parlo-panel"
            role="dialog"
            aria-labelledby="parlo-title"
            prop:hidden=move || !chat.open.get()
            on:keydown=move |ev: KeyboardEvent| {
                if ev.key() == "Escape" {
                    ev.stop_propagation();
                    chat.open.set(false);
                }
            }
        >
            <Header chat=chat />
            <MessageLog chat=chat />
            <div class="sr-only" role="status" aria-live="polite">
                {move || chat.announcement.get()}
            </div>
            <ErrorLine chat=chat />
            <Composer chat=chat />
        </section>
    }
}
