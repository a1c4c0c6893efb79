//! The widget's math module: TeX in, MathML out, compiled to its own WASM file.
//!
//! Owns nothing but `render_math`, which the loader hands to the main module and the main
//! module hands on to the markdown module (`parlo-markdown`), which calls it. KaTeX is
//! large, so it lives here and is fetched (with its SRI hash) only when an answer contains
//! math. Its output is never trusted: the markdown module sanitises it with everything else
//! (ammonia runs last there).

use parlo_render::{KatexMath, MathRenderer};
use wasm_bindgen::prelude::*;

thread_local! {
    static KATEX: KatexMath = KatexMath::new();
}

/// Renders one formula (without delimiters) to MathML; throws with the reason on failure.
#[wasm_bindgen]
pub fn render_math(tex: &str, display: bool) -> Result<String, JsError> {
    KATEX
        .with(|k| k.render(tex, display))
        .map_err(|e| JsError::new(&e.to_string()))
}
