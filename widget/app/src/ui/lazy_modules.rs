//! When the lazily loaded markdown and math modules are fetched, and what happens when
//! they arrive (finished answers are rendered again) or cannot load (they stay as they are).
//!
//! Owns each module's loading state. The modules themselves are fetched and SRI-checked by
//! the loader (`widget.js`), which hands over one function per module; this file only
//! decides when to call it.

use leptos::prelude::*;
use leptos::task::spawn_local;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

use super::state::{Chat, Role};
use crate::markdown_module::Markdown;

/// A lazily loaded module: the markdown module's exports or the math module's function.
pub(super) enum Lazy<T> {
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

impl Chat {
    /// The math module's `render_math`, once it is in.
    pub(super) fn math(self) -> Option<js_sys::Function> {
        self.inner().math.borrow().ready()
    }

    /// The markdown module's exports, once it is in.
    pub(super) fn markdown(self) -> Option<Markdown> {
        self.inner().markdown.borrow().ready()
    }

    /// Starts loading the markdown module once: when an answer needs rendering (history,
    /// a greeting with markup), when the visitor starts typing, at the latest on send.
    /// Answers shown as text until then are rendered when it is in; if it cannot load, they
    /// stay text.
    pub(super) fn ensure_markdown(self) {
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
    pub(super) fn ensure_math(self) {
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
