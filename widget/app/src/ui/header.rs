//! The panel's header: the bot's name, "New conversation" and close.

use leptos::prelude::*;
use leptos::task::spawn_local;

use super::icons::{icon_close, icon_new};
use super::state::Chat;

#[component]
pub(super) fn Header(chat: Chat) -> impl IntoView {
    let t = chat.t;
    view! {
        <header class="head">
            <h2 id="parlo-title">{move || chat.title.get()}</h2>
            <button
                type="button"
                class="icon"
                aria-label=t.new_conversation
                title=t.new_conversation
                prop:disabled=move || !chat.ready()
                on:click=move |_| spawn_local(chat.clear())
            >
                {icon_new()}
            </button>
            <button
                type="button"
                class="icon"
                aria-label=t.close_chat
                title=t.close_chat
                on:click=move |_| chat.open.set(false)
            >
                {icon_close()}
            </button>
        </header>
    }
}
