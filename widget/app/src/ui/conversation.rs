//! What the visitor's actions ask of the server: connect (and resume), send and stream the
//! answer, attach a file, start over.
//!
//! Owns the order of each exchange with `client` and what the state shows meanwhile (busy,
//! connecting, errors with what Retry repeats). It never talks HTTP itself (`client` does)
//! and leaves turning answers into HTML to `answer`.

use leptos::prelude::*;

use super::state::{Chat, Retry, Role};
use super::theme;
use crate::client::{ApiError, StreamEvent};
use crate::markdown_module::Streaming;

impl Chat {
    /// Starts a session (resuming the stored conversation, whose history is then shown) and
    /// applies the bot's name, colour and greeting.
    pub(super) async fn connect(self) {
        self.connecting.set(true);
        self.error.set(None);
        let inner = self.inner();
        let resuming = inner.client.has_resume();
        match inner.client.start_session().await {
            Ok(bot) => {
                if !bot.name.trim().is_empty() {
                    self.title.set(bot.name);
                }
                if theme::is_colour(&bot.theme_color) {
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

    /// Sends `text` (shown as the visitor's message first when `echo`; a retry does not
    /// repeat it) and streams the answer into a new message.
    pub(super) async fn send(self, text: String, echo: bool) {
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

    /// Uploads an image or PDF; anything else is refused before it leaves the browser.
    pub(super) async fn attach(self, file: web_sys::File) {
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

    /// "New conversation": deletes this one on the server, then connects afresh.
    pub(super) async fn clear(self) {
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
}
