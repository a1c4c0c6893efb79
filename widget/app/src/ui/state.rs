//! The widget's state: the signals every component reads, the message list, and the small
//! steps every action is made of (add or remove a message, show an error, retry, scroll).
//!
//! Owns `Chat`, the one `Copy` handle every component and handler holds, and `Msg`, one
//! entry of the message list. What talks to the server is in `conversation`, what turns
//! answers into HTML in `answer`, when the lazily loaded modules are fetched in
//! `lazy_modules`. Nothing here touches the DOM except through the `NodeRef`s it keeps.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;

use leptos::html;
use leptos::prelude::*;
use leptos::task::spawn_local;

use super::Config;
use super::lazy_modules::Lazy;
use crate::client::{ApiError, Client};
use crate::i18n::Text;
use crate::markdown_module::{self, Markdown};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    User,
    Assistant,
    Note,
}

/// One entry of the message list. `blocks` hold sanitised HTML, each with a unique key;
/// while `rendered` is false (the markdown module is not in yet) `content` shows as text.
#[derive(Clone, Copy)]
pub(super) struct Msg {
    pub(super) key: u32,
    pub(super) role: Role,
    pub(super) content: RwSignal<String>,
    pub(super) blocks: RwSignal<Vec<(u32, Arc<str>)>>,
    pub(super) tail: RwSignal<Arc<str>>,
    pub(super) rendered: RwSignal<bool>,
    pub(super) streaming: RwSignal<bool>,
    pub(super) interrupted: RwSignal<bool>,
}

/// What the Retry button repeats.
pub(super) enum Retry {
    Connect,
    Send(String),
    Attach(web_sys::File),
    Clear,
}

/// The parts of the state that are not reactive (JS handles, the HTTP client).
pub(super) struct Inner {
    pub(super) client: Client,
    pub(super) load_math: js_sys::Function,
    pub(super) math: RefCell<Lazy<js_sys::Function>>,
    pub(super) load_markdown: js_sys::Function,
    pub(super) markdown: RefCell<Lazy<Markdown>>,
    retry: RefCell<Option<Retry>>,
    next_key: Cell<u32>,
}

/// The widget's state; `Copy`, so every handler can own it.
#[derive(Clone, Copy)]
pub(super) struct Chat {
    pub(super) t: &'static Text,
    inner: StoredValue<Rc<Inner>, LocalStorage>,
    pub(super) open: RwSignal<bool>,
    pub(super) connected: RwSignal<bool>,
    pub(super) connecting: RwSignal<bool>,
    pub(super) busy: RwSignal<bool>,
    pub(super) error: RwSignal<Option<ApiError>>,
    pub(super) messages: RwSignal<Vec<Msg>>,
    pub(super) title: RwSignal<String>,
    pub(super) accent: RwSignal<Option<String>>,
    pub(super) announcement: RwSignal<String>,
    pub(super) launcher: NodeRef<html::Button>,
    pub(super) log: NodeRef<html::Div>,
    pub(super) input: NodeRef<html::Textarea>,
}

impl Chat {
    pub(super) fn new(config: Config) -> Chat {
        let t = config.lang.text();
        Chat {
            t,
            inner: StoredValue::new_local(Rc::new(Inner {
                client: Client::new(config.origin, config.bot),
                load_math: config.load_math,
                math: RefCell::new(Lazy::Idle),
                load_markdown: config.load_markdown,
                markdown: RefCell::new(Lazy::Idle),
                retry: RefCell::new(None),
                next_key: Cell::new(0),
            })),
            open: RwSignal::new(false),
            connected: RwSignal::new(false),
            connecting: RwSignal::new(false),
            busy: RwSignal::new(false),
            error: RwSignal::new(None),
            messages: RwSignal::new(Vec::new()),
            title: RwSignal::new(t.chat.to_owned()),
            accent: RwSignal::new(None),
            announcement: RwSignal::new(String::new()),
            launcher: NodeRef::new(),
            log: NodeRef::new(),
            input: NodeRef::new(),
        }
    }

    pub(super) fn inner(self) -> Rc<Inner> {
        self.inner.get_value()
    }

    /// A key no other message or block has had.
    pub(super) fn key(self) -> u32 {
        let inner = self.inner();
        let key = inner.next_key.get();
        inner.next_key.set(key.wrapping_add(1));
        key
    }

    /// Whether the visitor can send, attach or start over now.
    pub(super) fn ready(self) -> bool {
        self.connected.get() && !self.busy.get() && !self.connecting.get()
    }

    pub(super) fn show(self) {
        self.open.set(true);
        if !self.connected.get_untracked() && !self.connecting.get_untracked() {
            spawn_local(self.connect());
        }
    }

    pub(super) fn toggle(self) {
        if self.open.get_untracked() {
            self.open.set(false);
        } else {
            self.show();
        }
    }

    /// Adds a message. A finished answer is rendered if the markdown module is in; if not, it
    /// shows as text, and unless it reads the same as text the module is fetched now.
    pub(super) fn push(self, role: Role, content: &str, streaming: bool) -> Msg {
        let answer = role == Role::Assistant && !streaming;
        let markdown = self.markdown();
        let html = markdown
            .as_ref()
            .filter(|_| answer)
            .and_then(|m| m.message(content, self.math().as_ref()));
        let rendered = html.is_some();
        let blocks = html.map(|h| vec![(self.key(), h)]).unwrap_or_default();
        let msg = Msg {
            key: self.key(),
            role,
            content: RwSignal::new(content.to_owned()),
            blocks: RwSignal::new(blocks),
            tail: RwSignal::new(Arc::from("")),
            rendered: RwSignal::new(rendered),
            streaming: RwSignal::new(streaming),
            interrupted: RwSignal::new(false),
        };
        self.messages.update(|list| list.push(msg));
        if answer {
            match markdown {
                Some(m) if m.contains_math(content) => self.ensure_math(),
                Some(_) => {}
                None if !markdown_module::is_plain_text(content) => self.ensure_markdown(),
                None => {}
            }
        }
        self.follow(true);
        msg
    }

    pub(super) fn remove(self, msg: Msg) {
        self.messages
            .update(|list| list.retain(|m| m.key != msg.key));
    }

    /// Shows `error`; `retry` is what the Retry button repeats, if retrying can help.
    pub(super) fn fail(self, error: ApiError, retry: Option<Retry>) {
        *self.inner().retry.borrow_mut() = retry.filter(|_| error.retryable());
        self.error.set(Some(error));
        self.follow(true);
    }

    pub(super) fn retry(self) {
        let Some(retry) = self.inner().retry.borrow_mut().take() else {
            return;
        };
        self.error.set(None);
        match retry {
            Retry::Connect => spawn_local(self.connect()),
            Retry::Send(text) => spawn_local(self.send(text, false)),
            Retry::Attach(file) => spawn_local(self.attach(file)),
            Retry::Clear => spawn_local(self.clear()),
        }
    }

    /// Scrolls the list to the newest message after the DOM caught up; while an answer
    /// streams, only when the reader has not scrolled away from the end.
    pub(super) fn follow(self, always: bool) {
        let log = self.log;
        request_animation_frame(move || {
            if let Some(el) = log.get_untracked() {
                let near_end = el.scroll_height() - el.scroll_top() - el.client_height() < 96;
                if always || near_end {
                    el.set_scroll_top(el.scroll_height());
                }
            }
        });
    }
}
