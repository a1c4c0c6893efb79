//! The message log: every message in order, and "connecting" while a session starts. It is
//! focusable so keyboard users can scroll it; `Chat::follow` keeps it at the newest message.

use leptos::prelude::*;

use super::message::Message;
use super::state::Chat;

#[component]
pub(super) fn MessageLog(chat: Chat) -> impl IntoView {
    let t = chat.t;
    view! {
        <div class="log" node_ref=chat.log aria-label=t.chat tabindex="0">
            <For each=move || chat.messages.get() key=|m| m.key let:msg>
                <Message msg=msg t=t />
            </For>
            {move || chat.connecting.get().then(|| view! { <p class="quiet">{t.connecting}</p> })}
        </div>
    }
}
