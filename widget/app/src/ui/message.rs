//! One message of the log: the visitor's or a note as text; an answer as the sanitised HTML
//! blocks the markdown module returned, or as text until that module is in.

use leptos::prelude::*;

use super::state::{Msg, Role};
use crate::i18n::Text;

#[component]
pub(super) fn Message(msg: Msg, t: &'static Text) -> impl IntoView {
    let (class, who) = match msg.role {
        Role::User => ("msg user", t.you),
        Role::Assistant => ("msg bot", t.assistant),
        Role::Note => ("msg note", ""),
    };
    let body = if msg.role == Role::Assistant {
        view! {
            <div class="md">
                <For
                    each=move || msg.blocks.get()
                    key=|(key, _)| *key
                    children=|(_, html)| view! { <div inner_html=html></div> }
                />
                <div inner_html=move || msg.tail.get()></div>
                {move || {
                    (!msg.rendered.get() && !msg.content.with(String::is_empty))
                        .then(|| view! { <div><p class="text">{move || msg.content.get()}</p></div> })
                }}
                {move || {
                    (msg.streaming.get() && msg.content.with(String::is_empty))
                        .then(|| view! { <p class="quiet">{t.writing}</p> })
                }}
            </div>
        }
        .into_any()
    } else {
        view! { <p class="text">{move || msg.content.get()}</p> }.into_any()
    };
    view! {
        <div class=class>
            {(!who.is_empty()).then(|| view! { <span class="sr-only">{who}": "</span> })}
            {body}
            {move || msg.interrupted.get().then(|| view! { <p class="quiet">{t.interrupted}</p> })}
        </div>
    }
}
