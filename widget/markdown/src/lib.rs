//! The widget's markdown module: an answer's markdown in, sanitised HTML out, compiled to
//! its own WASM file.
//!
//! Owns the exports the main module (`parlo-widget`) calls once the loader has fetched this
//! module and handed over its namespace: [`render`] for a whole message, [`Stream`] for an
//! answer arriving in deltas, [`contains_math`] to know when to fetch the math module.
//! Everything here is `parlo-render` without KaTeX: pulldown-cmark, then ammonia as the
//! last step. The markdown parser and the sanitiser are most of the widget's weight, so they
//! live here and are fetched (with their SRI hash) only when there is something to render;
//! the main module links neither and only ever inserts HTML that this module returned.
//!
//! Formulas go to the math module's `render_math(tex, display)`, handed in as a JS
//! function; its output is sanitised here by ammonia like everything else, so neither
//! module can put markup in the page that the allow-list does not permit.

use js_sys::Function;
use parlo_render::{MathError, MathRenderer, SourceMath, StreamRenderer};
use wasm_bindgen::prelude::*;

/// The math module's `render_math`, once the main module has it.
#[derive(Debug, Clone)]
struct JsMath(Function);

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

/// KaTeX through `math` when given, else formulas as their TeX source.
fn math_renderer(math: Option<Function>) -> Box<dyn MathRenderer> {
    match math {
        Some(f) => Box::new(JsMath(f)),
        None => Box::new(SourceMath),
    }
}

/// Renders a whole message to sanitised HTML; `math` is the math module's `render_math`
/// (or nothing: formulas then show as TeX source).
#[wasm_bindgen]
pub fn render(markdown: &str, math: Option<Function>) -> String {
    parlo_render::render_with(markdown, math_renderer(math).as_ref())
}

/// Whether a message has a formula, i.e. whether it needs the math module.
#[wasm_bindgen]
pub fn contains_math(markdown: &str) -> bool {
    parlo_render::contains_math(markdown)
}

/// An answer being streamed. Finished blocks are handed out once each and the unfinished
/// tail is re-rendered per delta (it is short), so a long answer costs linear work.
#[wasm_bindgen]
#[derive(Debug)]
pub struct Stream {
    inner: StreamRenderer,
    /// How many finished blocks [`Stream::push`] has handed out.
    shown: usize,
}

#[wasm_bindgen]
impl Stream {
    /// A stream rendering formulas with `math` (or as TeX source without it).
    #[wasm_bindgen(constructor)]
    pub fn new(math: Option<Function>) -> Stream {
        Stream {
            inner: StreamRenderer::with_math(math_renderer(math)),
            shown: 0,
        }
    }

    /// Adds a delta; returns the sanitised HTML of the blocks it finished, in order. The
    /// tail's HTML is then [`Stream::tail`].
    pub fn push(&mut self, delta: &str) -> Vec<String> {
        self.inner.push(delta);
        let blocks = &self.inner.blocks()[self.shown..];
        self.shown += blocks.len();
        blocks.to_vec()
    }

    /// Sanitised HTML of the unfinished tail.
    pub fn tail(&self) -> String {
        self.inner.tail_html().to_owned()
    }

    /// Whether a formula has been seen so far.
    pub fn has_math(&self) -> bool {
        self.inner.has_math()
    }
}
