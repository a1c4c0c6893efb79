//! The widget's view and behaviour: launcher, chat panel, message list, composer, errors.
//!
//! Owns the widget's state (signals), focus management and everything the visitor can do
//! (open, close, send, attach, retry, start over), and when the lazily loaded modules are
//! fetched. HTML from answers reaches the DOM only as the output of the markdown module
//! (through `render`), which sanitises it; everything else, including an answer shown
//! before that module is in, is text. It never talks HTTP itself (`api` does) and never
//! renders markdown itself.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;

use leptos::ev::KeyboardEvent;
use leptos::html;
use leptos::prelude::*;
use leptos::task::spawn_local;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

use crate::api::{ApiError, Client, StreamEvent};
use crate::i18n::{Lang, Text};
use crate::render::{self, Markdown, Streaming};

/// What the loader hands over.
pub struct Config {
    pub origin: String,
    pub bot: String,
    pub lang: Lang,
    pub open: bool,
    pub load_math: js_sys::Function,
    pub load_markdown: js_sys::Function,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    User,
    Assistant,
    Note,
}

/// One entry of the message list. `blocks` hold sanitised HTML, each with a unique key;
/// while `rendered` is false (the markdown module is not in yet) `content` shows as text.
#[derive(Clone, Copy)]
struct Msg {
    key: u32,
    role: Role,
    content: RwSignal<String>,
    blocks: RwSignal<Vec<(u32, Arc<str>)>>,
    tail: RwSignal<Arc<str>>,
    rendered: RwSignal<bool>,
    streaming: RwSignal<bool>,
    interrupted: RwSignal<bool>,
}

/// What the Retry button repeats.
enum Retry {
    Connect,
    Send(String),
    Attach(web_sys::File),
    Clear,
}

/// A lazily loaded module: the markdown module's exports or the math module's function.
enum Lazy<T> {
    Idle,
    Loading,
    Ready(T),
    Failed,
}

impl<T: Clone> Lazy<T> {
    fn ready(&self) -> Option<T> {
        match self {
            Lazy::Ready(m) => Some(m.clone()),
            _ => None,
        }
    }
}

/// The parts of the state that are not reactive (JS handles, the HTTP client).
struct Inner {
    client: Client,
    load_math: js_sys::Function,
    math: RefCell<Lazy<js_sys::Function>>,
    load_markdown: js_sys::Function,
    markdown: RefCell<Lazy<Markdown>>,
    retry: RefCell<Option<Retry>>,
    next_key: Cell<u32>,
}

/// The widget's state; `Copy`, so every handler can own it.
#[derive(Clone, Copy)]
struct Chat {
    t: &'static Text,
    inner: StoredValue<Rc<Inner>, LocalStorage>,
    open: RwSignal<bool>,
    connected: RwSignal<bool>,
    connecting: RwSignal<bool>,
    busy: RwSignal<bool>,
    error: RwSignal<Option<ApiError>>,
    messages: RwSignal<Vec<Msg>>,
    title: RwSignal<String>,
    accent: RwSignal<Option<String>>,
    announcement: RwSignal<String>,
    log: NodeRef<html::Div>,
}

impl Chat {
    fn inner(self) -> Rc<Inner> {
        self.inner.get_value()
    }

    fn key(self) -> u32 {
        let inner = self.inner();
        let key = inner.next_key.get();
        inner.next_key.set(key.wrapping_add(1));
        key
    }

    fn ready(self) -> bool {
        self.connected.get() && !self.busy.get() && !self.connecting.get()
    }

    fn show(self) {
        self.open.set(true);
        if !self.connected.get_untracked() && !self.connecting.get_untracked() {
            spawn_local(self.connect());
        }
    }

    fn toggle(self) {
        if self.open.get_untracked() {
            self.open.set(false);
        } else {
            self.show();
        }
    }

    /// Adds a message. A finished answer is rendered if the markdown module is in; if not, it
    /// shows as text, and unless it reads the same as text the module is fetched now.
    fn push(self, role: Role, content: &str, streaming: bool) -> Msg {
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
                None if !render::is_plain_text(content) => self.ensure_markdown(),
                None => {}
            }
        }
        self.follow(true);
        msg
    }

    fn remove(self, msg: Msg) {
        self.messages
            .update(|list| list.retain(|m| m.key != msg.key));
    }

    fn fail(self, error: ApiError, retry: Option<Retry>) {
        *self.inner().retry.borrow_mut() = retry.filter(|_| error.retryable());
        self.error.set(Some(error));
        self.follow(true);
    }

    fn retry(self) {
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
    fn follow(self, always: bool) {
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

    async fn connect(self) {
        self.connecting.set(true);
        self.error.set(None);
        let inner = self.inner();
        let resuming = inner.client.has_resume();
        match inner.client.start_session().await {
            Ok(bot) => {
                if !bot.name.trim().is_empty() {
                    self.title.set(bot.name);
                }
                if is_colour(&bot.theme_color) {
                    self.accent.set(Some(bot.theme_color));
                }
                self.messages.set(Vec::new());
                if !bot.greeting.trim().is_empty() {
                    self.push(Role::Assistant, &bot.greeting, false);
                }
                self.connected.set(true);
                if resuming {
                    match inner.client.history().await {
                        Ok(history) => {
                            for stored in history {
                                let role = if stored.from_user {
                                    Role::User
                                } else {
                                    Role::Assistant
                                };
                                let msg = self.push(role, &stored.content, false);
                                msg.interrupted.set(stored.interrupted);
                            }
                        }
                        Err(e) => self.fail(e, None),
                    }
                }
            }
            Err(e) => self.fail(e, Some(Retry::Connect)),
        }
        self.connecting.set(false);
    }

    async fn send(self, text: String, echo: bool) {
        if echo {
            self.push(Role::User, &text, false);
        }
        self.error.set(None);
        self.busy.set(true);
        // Fetched now at the latest, so its download overlaps the wait for the first token.
        self.ensure_markdown();
        let reply = self.push(Role::Assistant, "", true);
        let inner = self.inner();
        match inner.client.send(&text).await {
            Err(e) => {
                self.remove(reply);
                self.fail(e, Some(Retry::Send(text)));
            }
            Ok(mut stream) => {
                let mut renderer: Option<Streaming> = None;
                let mut math_requested = false;
                loop {
                    match stream.next().await {
                        Some(StreamEvent::Delta(delta)) => {
                            reply.content.update(|c| c.push_str(&delta));
                            self.stream_delta(reply, &mut renderer, &delta);
                            if !math_requested && renderer.as_ref().is_some_and(Streaming::has_math)
                            {
                                math_requested = true;
                                self.ensure_math();
                            }
                            self.follow(false);
                        }
                        Some(StreamEvent::Done { interrupted }) => {
                            self.finish(reply, interrupted);
                            break;
                        }
                        Some(StreamEvent::Failed(e)) => {
                            self.finish_broken(reply);
                            self.fail(e, Some(Retry::Send(text)));
                            break;
                        }
                        None => {
                            self.finish_broken(reply);
                            self.fail(ApiError::Interrupted, Some(Retry::Send(text)));
                            break;
                        }
                    }
                }
            }
        }
        self.busy.set(false);
    }

    /// Shows one more delta of a streamed answer: through the markdown module's `Stream`
    /// once the module is in (what arrived before goes in as one delta), else as text.
    fn stream_delta(self, msg: Msg, renderer: &mut Option<Streaming>, delta: &str) {
        let pushed = match renderer {
            Some(r) => r.push(delta),
            None => match self.markdown().and_then(|m| m.stream(self.math().as_ref())) {
                Some(r) => renderer.insert(r).push(&msg.content.get_untracked()),
                None => return,
            },
        };
        let Some((finished, tail)) = pushed else {
            // The module failed: the answer goes on as text.
            *renderer = None;
            *self.inner().markdown.borrow_mut() = Lazy::Failed;
            msg.blocks.set(Vec::new());
            msg.tail.set(Arc::from(""));
            msg.rendered.set(false);
            return;
        };
        if !finished.is_empty() {
            let keyed: Vec<_> = finished
                .into_iter()
                .map(|html| (self.key(), html))
                .collect();
            msg.blocks.update(|b| b.extend(keyed));
        }
        msg.tail.set(tail);
        if !msg.rendered.get_untracked() {
            msg.rendered.set(true);
        }
    }

    /// Replaces the streamed blocks with one whole render (now with math, if loaded; as text
    /// if the markdown module is not in yet) and reads the answer out to screen readers.
    fn finish(self, msg: Msg, interrupted: bool) {
        msg.streaming.set(false);
        msg.interrupted.set(interrupted);
        let spoken = match self.render_message(msg) {
            Some(html) => plain_text(&html),
            None => {
                msg.blocks.set(Vec::new());
                msg.tail.set(Arc::from(""));
                msg.rendered.set(false);
                msg.content.get_untracked()
            }
        };
        self.announcement
            .set(format!("{}: {}", self.t.assistant, spoken));
        self.follow(false);
    }

    /// Renders a finished answer as a whole into its blocks (the HTML, if the markdown
    /// module is in); asks for the math module when the answer has formulas.
    fn render_message(self, msg: Msg) -> Option<Arc<str>> {
        let markdown = self.markdown()?;
        let math = self.math();
        let html = msg
            .content
            .with_untracked(|c| markdown.message(c, math.as_ref()))?;
        let key = self.key();
        msg.blocks.set(vec![(key, html.clone())]);
        msg.tail.set(Arc::from(""));
        msg.rendered.set(true);
        if math.is_none() && msg.content.with_untracked(|c| markdown.contains_math(c)) {
            self.ensure_math();
        }
        Some(html)
    }

    fn finish_broken(self, msg: Msg) {
        if msg.content.with_untracked(String::is_empty) {
            self.remove(msg);
        } else {
            self.finish(msg, true);
        }
    }

    async fn attach(self, file: web_sys::File) {
        let kind = file.type_();
        if !(kind.starts_with("image/") || kind == "application/pdf") {
            self.fail(ApiError::Rejected, None);
            return;
        }
        self.error.set(None);
        self.busy.set(true);
        let inner = self.inner();
        match inner.client.attach(&file).await {
            Ok(name) => {
                self.push(Role::Note, &format!("{}: {name}", self.t.attached), false);
            }
            Err(e) => self.fail(e, Some(Retry::Attach(file))),
        }
        self.busy.set(false);
    }

    async fn clear(self) {
        self.error.set(None);
        self.busy.set(true);
        let inner = self.inner();
        let cleared = inner.client.clear().await;
        self.busy.set(false);
        match cleared {
            Ok(()) => {
                self.connected.set(false);
                self.messages.set(Vec::new());
                self.announcement.set(String::new());
                self.connect().await;
            }
            Err(e) => self.fail(e, Some(Retry::Clear)),
        }
    }

    fn math(self) -> Option<js_sys::Function> {
        self.inner().math.borrow().ready()
    }

    fn markdown(self) -> Option<Markdown> {
        self.inner().markdown.borrow().ready()
    }

    /// Starts loading the markdown module once: when an answer needs rendering (history,
    /// a greeting with markup), when the visitor starts typing, at the latest on send.
    /// Answers shown as text until then are rendered when it is in; if it cannot load, they
    /// stay text.
    fn ensure_markdown(self) {
        let inner = self.inner();
        if !matches!(*inner.markdown.borrow(), Lazy::Idle) {
            return;
        }
        *inner.markdown.borrow_mut() = Lazy::Loading;
        spawn_local(async move {
            let markdown = load(&inner.load_markdown)
                .await
                .and_then(|m| Markdown::from_module(&m));
            *inner.markdown.borrow_mut() = match markdown {
                Some(m) => Lazy::Ready(m),
                None => Lazy::Failed,
            };
            self.rerender(false);
        });
    }

    /// Starts loading the math module once; answers with formulas re-render when it is in.
    /// If it cannot load, formulas stay as TeX source.
    fn ensure_math(self) {
        let inner = self.inner();
        if !matches!(*inner.math.borrow(), Lazy::Idle) {
            return;
        }
        *inner.math.borrow_mut() = Lazy::Loading;
        spawn_local(async move {
            let function = load(&inner.load_math)
                .await
                .and_then(|f| f.dyn_into::<js_sys::Function>().ok());
            *inner.math.borrow_mut() = match function {
                Some(f) => Lazy::Ready(f),
                None => Lazy::Failed,
            };
            self.rerender(true);
        });
    }

    /// Re-renders the finished answers after a module came in: those with formulas (the
    /// math module) or all of them (the markdown module). A streaming answer picks the
    /// markdown module up with its next delta and is rendered whole when it ends.
    fn rerender(self, math_only: bool) {
        let Some(markdown) = self.markdown() else {
            return;
        };
        for msg in self.messages.get_untracked() {
            let redo = msg.role == Role::Assistant
                && !msg.streaming.get_untracked()
                && (!math_only || msg.content.with_untracked(|c| markdown.contains_math(c)));
            if redo {
                self.render_message(msg);
            }
        }
    }
}

/// Calls a loader function handed over by `widget.js`; what its promise resolves to.
async fn load(loader: &js_sys::Function) -> Option<JsValue> {
    let promise: js_sys::Promise = loader.call0(&JsValue::NULL).ok()?.dyn_into().ok()?;
    JsFuture::from(promise).await.ok()
}

/// Builds the whole widget; `host` is the element inside the shadow root it renders into.
pub fn widget(config: Config, host: web_sys::HtmlElement) -> impl IntoView {
    let t = config.lang.text();
    let chat = Chat {
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
        log: NodeRef::new(),
    };
    let launcher: NodeRef<html::Button> = NodeRef::new();
    let input: NodeRef<html::Textarea> = NodeRef::new();
    let file_input: NodeRef<html::Input> = NodeRef::new();

    // The theme colour is the bot owner's choice; it only ever becomes a CSS custom property
    // (validated as a hex colour first), so it cannot inject CSS.
    Effect::new(move |_| {
        if let Some(colour) = chat.accent.get() {
            let style = host.style();
            let _ = style.set_property("--parlo-accent", &colour);
            let _ = style.set_property("--parlo-on-accent", text_on(&colour));
        }
    });

    // Focus goes into the panel when it opens and back to the launcher when it closes.
    Effect::new(move |previous: Option<bool>| {
        let open = chat.open.get();
        if open {
            if let Some(el) = input.get_untracked() {
                let _ = el.focus();
            }
        } else if previous.is_some()
            && let Some(el) = launcher.get_untracked()
        {
            let _ = el.focus();
        }
        open
    });

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

    if config.open {
        chat.show();
    }

    view! {
        <button
            type="button"
            class="launcher"
            node_ref=launcher
            aria-label=move || if chat.open.get() { t.close_chat } else { t.open_chat }
            aria-expanded=move || chat.open.get().to_string()
            aria-controls="parlo-panel"
            on:click=move |_| chat.toggle()
        >
            {move || if chat.open.get() { icon_close() } else { icon_chat() }}
        </button>
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
            <div class="log" node_ref=chat.log aria-label=t.chat tabindex="0">
                <For each=move || chat.messages.get() key=|m| m.key let:msg>
                    {message(msg, t)}
                </For>
                {move || chat.connecting.get().then(|| view! { <p class="quiet">{t.connecting}</p> })}
            </div>
            <div class="sr-only" role="status" aria-live="polite">
                {move || chat.announcement.get()}
            </div>
            {move || {
                chat.error
                    .get()
                    .map(|e| {
                        let retryable = e.retryable();
                        view! {
                            <div class="error" role="alert">
                                <p>{error_text(t, &e)}</p>
                                {retryable
                                    .then(|| {
                                        view! {
                                            <button type="button" class="retry" on:click=move |_| chat.retry()>
                                                {t.retry}
                                            </button>
                                        }
                                    })}
                            </div>
                        }
                    })
            }}
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
        </section>
    }
}

fn message(msg: Msg, t: &'static Text) -> impl IntoView {
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

fn error_text(t: &Text, error: &ApiError) -> String {
    match error {
        ApiError::Offline => t.err_offline.to_owned(),
        ApiError::RateLimited(secs) => t.rate_limited(*secs),
        ApiError::Unavailable => t.err_unavailable.to_owned(),
        ApiError::NoApiKey => t.err_no_api_key.to_owned(),
        ApiError::OriginNotAllowed => t.err_origin.to_owned(),
        ApiError::UnknownBot => t.err_unknown_bot.to_owned(),
        ApiError::TooLarge => t.err_too_large.to_owned(),
        ApiError::Rejected => t.err_rejected.to_owned(),
        ApiError::Interrupted => t.interrupted.to_owned(),
        ApiError::Auth | ApiError::Other => t.err_generic.to_owned(),
    }
}

/// The text a screen reader should hear for sanitised HTML (parsed inertly in a template).
fn plain_text(html: &str) -> String {
    let Some(document) = web_sys::window().and_then(|w| w.document()) else {
        return String::new();
    };
    let Ok(template) = document.create_element("template") else {
        return String::new();
    };
    template.set_inner_html(html);
    template
        .unchecked_into::<web_sys::HtmlTemplateElement>()
        .content()
        .text_content()
        .unwrap_or_default()
}

/// Accepts `#rgb` and `#rrggbb` only.
fn is_colour(value: &str) -> bool {
    value
        .strip_prefix('#')
        .is_some_and(|hex| matches!(hex.len(), 3 | 6) && hex.chars().all(|c| c.is_ascii_hexdigit()))
}

/// Black or white, whichever reads better on the given (valid) colour.
fn text_on(colour: &str) -> &'static str {
    let hex = colour.trim_start_matches('#');
    let channel = |i: usize| -> f64 {
        let digits = if hex.len() == 3 {
            hex[i..=i].repeat(2)
        } else {
            hex[i * 2..i * 2 + 2].to_owned()
        };
        let v = f64::from(u8::from_str_radix(&digits, 16).unwrap_or(0)) / 255.0;
        if v <= 0.03928 {
            v / 12.92
        } else {
            ((v + 0.055) / 1.055).powf(2.4)
        }
    };
    let luminance = 0.2126 * channel(0) + 0.7152 * channel(1) + 0.0722 * channel(2);
    // Contrast with white is (1.05)/(L+0.05), with black (L+0.05)/0.05; they meet at L≈0.179.
    if luminance > 0.179 {
        "#111827"
    } else {
        "#ffffff"
    }
}

fn icon_chat() -> AnyView {
    view! {
        <svg viewBox="0 0 24 24" width="26" height="26" aria-hidden="true">
            <path fill="currentColor" d="M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z"></path>
        </svg>
    }
    .into_any()
}

fn icon_close() -> AnyView {
    view! {
        <svg viewBox="0 0 24 24" width="22" height="22" aria-hidden="true">
            <path stroke="currentColor" stroke-width="2.2" stroke-linecap="round" d="M6 6l12 12M18 6L6 18"></path>
        </svg>
    }
    .into_any()
}

fn icon_new() -> AnyView {
    view! {
        <svg viewBox="0 0 24 24" width="20" height="20" aria-hidden="true">
            <path fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" d="M12 5v14M5 12h14"></path>
        </svg>
    }
    .into_any()
}

fn icon_attach() -> AnyView {
    view! {
        <svg viewBox="0 0 24 24" width="20" height="20" aria-hidden="true">
            <path fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" d="M16 7l-7.5 7.5a2 2 0 0 0 2.8 2.8L19 9.6a4 4 0 0 0-5.7-5.7L5.6 11.6a6 6 0 0 0 8.5 8.5L20 14"></path>
        </svg>
    }
    .into_any()
}

fn icon_send() -> AnyView {
    view! {
        <svg viewBox="0 0 24 24" width="20" height="20" aria-hidden="true">
            <path fill="currentColor" d="M3 20l18-8L3 4v6l12 2-12 2z"></path>
        </svg>
    }
    .into_any()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hex_colours_are_applied() {
        assert!(is_colour("#2563eb"));
        assert!(is_colour("#fff"));
        assert!(!is_colour("red"));
        assert!(!is_colour("#2563eb;background:url(x)"));
        assert!(!is_colour("#12345"));
    }

    #[test]
    fn text_colour_contrasts_with_theme() {
        assert_eq!(text_on("#2563eb"), "#ffffff");
        assert_eq!(text_on("#fde047"), "#111827");
        assert_eq!(text_on("#000"), "#ffffff");
        assert_eq!(text_on("#FFF"), "#111827");
    }
}
