//! How an answer becomes what the visitor sees: delta by delta while it streams, as a whole
//! when it ends, and read out to screen readers once finished.
//!
//! Owns the switch between an answer shown as text and the same answer as HTML. HTML from
//! answers reaches the DOM only as the output of the markdown module (`markdown_module`),
//! which sanitises it; everything else, including an answer shown before that module is in,
//! is text. It never renders markdown itself.

use std::sync::Arc;

use leptos::prelude::*;
use wasm_bindgen::JsCast;

use super::lazy_modules::Lazy;
use super::state::{Chat, Msg};
use crate::markdown_module::Streaming;

impl Chat {
    /// Shows one more delta of a streamed answer: through the markdown module's `Stream`
    /// once the module is in (what arrived before goes in as one delta), else as text.
    pub(super) fn stream_delta(self, msg: Msg, renderer: &mut Option<Streaming>, delta: &str) {
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
    pub(super) fn finish(self, msg: Msg, interrupted: bool) {
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
    pub(super) fn render_message(self, msg: Msg) -> Option<Arc<str>> {
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

    /// Ends an answer whose stream broke: gone if nothing arrived, else kept as interrupted.
    pub(super) fn finish_broken(self, msg: Msg) {
        if msg.content.with_untracked(String::is_empty) {
            self.remove(msg);
        } else {
            self.finish(msg, true);
        }
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
