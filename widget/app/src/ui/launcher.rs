//! The launcher: the round button that opens and closes the panel.

use leptos::prelude::*;

use super::icons::{icon_chat, icon_close};
use super::state::Chat;

#[component]
pub(super) fn Launcher(chat: Chat) -> impl IntoView {
    let t = chat.t;
    view! {
        <button
            type="button"
            class="launcher"
            node_ref=chat.launcher
            aria-label=move || if chat.open.get() { t.close_chat } else { t.open_chat }
            aria-expanded=move || chat.open.get().to_string()
            aria-controls="parlo-panel"
            on:click=move |_| chat.toggle()
        >
            {move || if chat.open.get() { icon_close() } else { icon_chat() }}
        </button>
    }
}
