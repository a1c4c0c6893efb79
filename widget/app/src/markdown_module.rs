//! The main module's only way to turn an answer into HTML: the lazily loaded markdown
//! module (`parlo-markdown`), reached through the JS namespace the loader hands over.
//!
//! Owns calling that module's exports (`render`, `contains_math`, the `Stream` class)
//! through `js_sys`. This crate links no markdown parser and no sanitiser: the HTML it gets
//! back was sanitised by ammonia as the last step inside the markdown module (same origin,
//! SRI-verified), and it is the only HTML the widget ever sets as `innerHTML`. If a call
//! fails, callers get `None` and show the message as text.

use std::sync::Arc;

use js_sys::{Array, Function, Reflect};
use wasm_bindgen::{JsCast, JsValue};

/// The loaded markdown module's exports.
#[derive(Debug, Clone)]
pub struct Markdown {
    render: Function,
    contains_math: Function,
    stream: Function,
}

fn method(object: &JsValue, name: &str) -> Option<Function> {
    Reflect::get(object, &JsValue::from_str(name))
        .ok()?
        .dyn_into()
        .ok()
}

fn math_arg(math: Option<&Function>) -> JsValue {
    math.map_or(JsValue::UNDEFINED, |f| f.clone().into())
}

impl Markdown {
    /// The exports of the module namespace `module`; `None` if one is missing.
    pub fn from_module(module: &JsValue) -> Option<Markdown> {
        Some(Markdown {
            render: method(module, "render")?,
            contains_math: method(module, "contains_math")?,
            stream: method(module, "Stream")?,
        })
    }

    /// A whole message as sanitised HTML; `math` is the math module's `render_math`.
    pub fn message(&self, markdown: &str, math: Option<&Function>) -> Option<Arc<str>> {
        self.render
            .call2(
                &JsValue::NULL,
                &JsValue::from_str(markdown),
                &math_arg(math),
            )
            .ok()?
            .as_string()
            .map(Arc::from)
    }

    /// Whether a message needs the math module.
    pub fn contains_math(&self, markdown: &str) -> bool {
        self.contains_math
            .call1(&JsValue::NULL, &JsValue::from_str(markdown))
            .is_ok_and(|v| v.is_truthy())
    }

    /// A renderer for an answer that is being streamed.
    pub fn stream(&self, math: Option<&Function>) -> Option<Streaming> {
        let object = Reflect::construct(&self.stream, &Array::of1(&math_arg(math))).ok()?;
        Some(Streaming {
            push: method(&object, "push")?,
            tail: method(&object, "tail")?,
            has_math: method(&object, "has_math")?,
            free: method(&object, "free")?,
            object,
        })
    }
}

/// One `Stream` of the markdown module: finished blocks are handed out once each, the
/// unfinished tail is re-rendered on every delta (it is short), so a long answer costs
/// linear work. Its memory in the module is freed on drop.
#[derive(Debug)]
pub struct Streaming {
    object: JsValue,
    push: Function,
    tail: Function,
    has_math: Function,
    free: Function,
}

impl Streaming {
    /// Adds a delta; returns the HTML of the blocks it finished and the current tail's HTML.
    pub fn push(&mut self, delta: &str) -> Option<(Vec<Arc<str>>, Arc<str>)> {
        let finished: Array = self
            .push
            .call1(&self.object, &JsValue::from_str(delta))
            .ok()?
            .dyn_into()
            .ok()?;
        let blocks = finished
            .iter()
            .map(|b| b.as_string().map(Arc::from))
            .collect::<Option<Vec<_>>>()?;
        let tail = self.tail.call0(&self.object).ok()?.as_string()?;
        Some((blocks, tail.into()))
    }

    /// Whether a formula has been seen so far.
    pub fn has_math(&self) -> bool {
        self.has_math
            .call0(&self.object)
            .is_ok_and(|v| v.is_truthy())
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        let _ = self.free.call0(&self.object);
    }
}

/// Whether `text` renders as one paragraph of exactly its own text, so showing it as text
/// loses nothing and needs no markdown module (e.g. "Hello! How can I help you?"). Only
/// decides when to fetch the module: text is always shown as text, never as HTML.
pub fn is_plain_text(text: &str) -> bool {
    let text = text.trim();
    // A letter first: no list item, heading, quote, rule or code indent.
    text.chars().next().is_some_and(|c| c.is_alphabetic())
        && !text.contains("://")
        && text
            .chars()
            .all(|c| !c.is_ascii() || c.is_ascii_alphanumeric() || " ,.;:!?'\"()-".contains(c))
}

#[cfg(test)]
mod tests {
    use super::is_plain_text;

    #[test]
    fn greetings_without_markup_are_plain() {
        assert!(is_plain_text("Hello! How can I help you?"));
        assert!(is_plain_text("Grüß Gott – wie kann ich helfen?"));
        assert!(is_plain_text("  Hi (again): ask me anything.  "));
    }

    #[test]
    fn anything_markdown_could_change_is_not_plain() {
        for text in [
            "Hello! Ask me about **anything**, even $x^2$.",
            "Hi\nthere",
            "1. first",
            "- item",
            "# Title",
            "> quote",
            "See https://example.com",
            "a_b_c",
            "Tom & Jerry",
            "<b>hi</b>",
            "`code`",
            "[link](x)",
            "",
        ] {
            assert!(!is_plain_text(text), "{text:?}");
        }
    }
}
