//! The composer: the message box (Enter sends, Shift+Enter is a new line), the attachment
//! button with its hidden file input, and send. Typing starts fetching the markdown module.

use leptos::ev::KeyboardEvent;
use leptos::html;
use leptos::prelude::*;
use leptos::task::spawn_local;

use super::icons::{icon_attach, icon_send};
use super::state::Chat;

#[component]
pub(super) fn Composer(chat: Chat) -> impl IntoView {
    let t = chat.t;
    let input = chat.input;
    let file_input: NodeRef<html::Input> = NodeRef::new();

    let submit = move || {
        let Some(el) = input.get_untracked() else {
            return;
        };
        let text = el.value();
        if text.trim().is_empty() || !chat.ready() {
            return;
        }
        el.set_value("");
        spawn_local(chat.send(text, true));
    };

    let on_key = move |ev: KeyboardEvent| {
        if ev.key() == "Enter" && !ev.shift_key() && !ev.is_composing() {
            ev.prevent_default();
            submit();
        }
    };

    let on_file = move |_| {
        let Some(el) = file_input.get_untracked() else {
            return;
        };
        let file = el.files().and_then(|files| files.get(0));
        el.set_value("");
        if let Some(file) = file {
            spawn_local(chat.attach(file));
        }
    };

    view! {
        <form
            class="composer"
            on:submit=move |ev| {
                ev.prevent_default();
                submit();
            }
        >
            <input
                type="file"
                class="file"
                accept="image/*,application/pdf"
                tabindex="-1"
                aria-hidden="true"
                node_ref=file_input
                on:change=on_file
            />
            <button
                type="button"
                class="icon"
                aria-label=t.attach
                title=t.attach
                prop:disabled=move || !chat.ready()
                on:click=move |_| {
                    if let Some(el) = file_input.get_untracked() {
                        el.click();
                    }
                }
            >
                {icon_attach()}
            </button>
            <textarea
                rows="1"
                node_ref=input
                aria-label=t.message_label
                placeholder=t.placeholder
                on:keydown=on_key
                on:input=move |_| chat.ensure_markdown()
            ></textarea>
            <button
                type="submit"
                class="icon send"
                aria-label=t.send
                title=t.send
                prop:disabled=move || !chat.ready()
            >
                {icon_send()}
            </button>
        </form>
    }
}
