//! The only place the widget calls the rendering crate.
//!
//! Owns the adaptor between `parlo-render` (markdown → math → ammonia, all inside this main
//! module) and the lazily loaded math module, which is reached through a JS function
//! `render_math(tex, display)` handed over by the loader. Whatever that function returns is
//! sanitised here by ammonia like any other input; until it is loaded formulas show as TeX
//! source. Everything this module returns is safe to set as `innerHTML`.

use std::sync::Arc;

use js_sys::Function;
use parlo_render::{MathError, MathRenderer, SourceMath, StreamRenderer};
use wasm_bindgen::JsValue;

/// The math module's exported function, once loaded.
#[derive(Debug, Clone)]
pub struct JsMath(pub Function);

impl MathRenderer for JsMath {
    fn render(&self, tex: &str, display: bool) -> Result<String, MathError> {
        parlo_render::check_complexity(tex)?;
        self.0
            .call2(
                &JsValue::NULL,
                &JsValue::from_str(tex),
                &JsValue::from_bool(display),
            )
            .ok()
            .and_then(|v| v.as_string())
            .ok_or(MathError::Unavailable)
    }
}

fn with_math<R>(math: Option<&JsMath>, f: impl FnOnce(&dyn MathRenderer) -> R) -> R {
    match math {
        Some(m) => f(m),
        None => f(&SourceMath),
    }
}

/// Renders a whole message to sanitised HTML.
pub fn message(markdown: &str, math: Option<&JsMath>) -> Arc<str> {
    with_math(math, |m| parlo_render::render_with(markdown, m)).into()
}

/// Whether a message needs the math module.
pub fn contains_math(markdown: &str) -> bool {
    parlo_render::contains_math(markdown)
}

/// An answer being streamed: finished blocks are handed out once each, the unfinished tail
/// is re-rendered on every delta (it is short), so a long answer costs linear work.
pub struct Streaming {
    inner: StreamRenderer,
    shown: usize,
}

impl Streaming {
    pub fn new(math: Option<&JsMath>) -> Self {
        let math: Box<dyn MathRenderer> = match math {
            Some(m) => Box::new(m.clone()),
            None => Box::new(SourceMath),
        };
        Streaming {
            inner: StreamRenderer::with_math(math),
            shown: 0,
        }
    }

    /// Adds a delta; returns the HTML of the blocks it finished and the current tail's HTML.
    pub fn push(&mut self, delta: &str) -> (Vec<Arc<str>>, Arc<str>) {
        self.inner.push(delta);
        let blocks = self.inner.blocks();
        let new = blocks[self.shown..]
            .iter()
            .map(|b| Arc::from(b.as_str()))
            .collect();
        self.shown = blocks.len();
        (new, self.inner.tail_html().into())
    }
}
