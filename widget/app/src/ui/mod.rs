//! The widget's view and behaviour: launcher, chat panel, message list, composer, errors.
//!
//! Owns the widget's state (signals), focus management and everything the visitor can do
//! (open, close, send, attach, retry, start over), and when the lazily loaded modules are
//! fetched. HTML from answers reaches the DOM only as the output of the markdown module
//! (through `markdown_module`), which sanitises it; everything else, including an answer
//! shown before that module is in, is text. It never talks HTTP itself (`client` does) and
//! never renders markdown itself.
//!
//! Behaviour: `state` (the `Chat` handle and its message list), `conversation` (what each
//! action asks of the server), `answer` (streaming and rendering answers), `lazy_modules`
//! (fetching the markdown and math modules), `theme` (the bot's colour). View, one component
//! per file: `Launcher`, and `Panel` made of `Header`, `MessageLog` (of `Message`s),
//! `ErrorLine` and `Composer`; `icons`.

mod answer;
mod composer;
mod conversation;
mod error;
mod header;
mod icons;
mod launcher;
mod lazy_modules;
mod message;
mod message_log;
mod panel;
mod state;
mod theme;

use leptos::prelude::*;

use self::launcher::Launcher;
use self::panel::Panel;
use self::state::Chat;
use crate::i18n::Lang;

/// What the loader hands over.
pub struct Config {
    pub origin: String,
    pub bot: String,
    pub lang: Lang,
    pub open: bool,
    pub load_math: js_sys::Function,
    pub load_markdown: js_sys::Function,
}

/// Builds the whole widget; `host` is the element inside the shadow root it renders into.
pub fn widget(config: Config, host: web_sys::HtmlElement) -> impl IntoView {
    let open = config.open;
    let chat = Chat::new(config);

    theme::follow_accent(chat, host);

    // Focus goes into the panel when it opens and back to the launcher when it closes.
    Effect::new(move |previous: Option<bool>| {
        let open = chat.open.get();
        if open {
            if let Some(el) = chat.input.get_untracked() {
                let _ = el.focus();
            }
        } else if previous.is_some()
            && let Some(el) = chat.launcher.get_untracked()
        {
            let _ = el.focus();
        }
        open
    });

    if open {
        chat.show();
    }

    view! {
        <Launcher chat=chat />
        <Panel chat=chat />
    }
}
