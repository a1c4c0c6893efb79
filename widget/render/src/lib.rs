//! Turns an assistant's markdown into HTML that is safe to put in the widget's shadow DOM.
//! Pure and deterministic: no I/O, no global state besides a per-thread KaTeX instance
//! (feature `katex`); the same code runs in the browser (the widget's markdown and math
//! modules, WASM) and on the server (`parlo render`, the site's pages, tests). Nothing this
//! crate returns has skipped the sanitiser, and nothing in it ever fetches, loads or
//! executes anything.
//!
//! # Pipeline
//!
//! 1. **Blocks.** The text is cut at blank lines that are followed by an unindented line
//!    which does not start a list item, outside fenced code. Each block is rendered on its
//!    own, which is what lets [`StreamRenderer`] cache finished blocks. Consequence: a link
//!    reference definition (`[1]: https://…`) only applies within its own block.
//! 2. **Math.** Formulas are cut out before markdown parses anything, so `$a*b*c$` stays a
//!    formula: `$…$` and `\(…\)` inline, `$$…$$` and `\[…\]` display. `$` follows pandoc's
//!    rule (no space inside the delimiters, no digit right after the closing one), so
//!    "$5 and $10" stays text. Formulas never cross a blank line; dollars in code spans
//!    and code blocks stay code; `\$` is a dollar.
//! 3. **Markdown** by pulldown-cmark: CommonMark with GFM tables, strikethrough, task lists,
//!    `<…>` autolinks and bare `http(s)://` URLs, fenced code (`class="language-…"`).
//!    - *Raw HTML is never trusted*: it is escaped and shown as the text it is, so the reader
//!      sees what the model wrote instead of losing it.
//!    - *Links* keep only absolute `http:`, `https:` and `mailto:` URLs; any other link
//!      (relative ones included: they would resolve against the customer's page) becomes
//!      plain text. Kept links get `rel="noopener noreferrer nofollow"` and
//!      `target="_blank"`.
//!    - *Images are never loaded*: `![alt](url)` becomes a link to `url` with the alt text
//!      (or the URL when there is none), under the same URL rule.
//!    - Table alignment becomes `class="align-left|align-center|align-right"`; no `style`.
//! 4. **Formulas** are rendered by a [`MathRenderer`]: [`KatexMath`] (feature `katex`, on by
//!    default) produces MathML only; without it, or when a formula does not parse, the TeX
//!    source is shown as `<code class="math-source">` (plus `math-error` when it failed).
//! 5. **Sanitising** with one `ammonia` policy ([`sanitize`]) is always the last step, and
//!    covers the math renderer's output too.
//!
//! # Why MathML only
//!
//! KaTeX's HTML output needs its CSS and about twenty web fonts; the widget would have to
//! ship and serve them first-party (invariant 5: it loads nothing from third parties),
//! adding hundreds of kilobytes to what a visitor downloads. MathML is rendered natively by
//! every current engine (MathML Core: Chromium 109+, Firefox, Safari), needs no fonts or
//! stylesheet, and is what screen readers read. The price is slightly plainer typesetting
//! than KaTeX's HTML in some constructs.
//!
//! # Streaming
//!
//! See [`StreamRenderer`]: finished blocks are rendered once, only the tail is re-rendered
//! per chunk, an unfinished formula at the end shows as plain text, and once finished the
//! output equals [`render`] of the whole text.
//!
//! # Lazy math
//!
//! The widget's markdown module (`widget/markdown`, a WASM file of its own that the main
//! module fetches when there is something to render) builds with `--no-default-features`
//! (no KaTeX). Through it the widget calls [`contains_math`] (or
//! [`StreamRenderer::has_math`]) to know when to fetch the math module, which is then
//! plugged in through [`render_with`] or [`StreamRenderer::with_math`].

mod markdown;
mod math;
mod sanitize;
mod scan;
mod stream;

#[cfg(feature = "katex")]
pub use math::KatexMath;
pub use math::{
    MAX_TEX_DEPTH, MAX_TEX_LEN, MathError, MathRenderer, SourceMath, check_complexity,
    default_renderer,
};
pub use sanitize::{LINK_REL, sanitize};
pub use stream::StreamRenderer;

/// Renders a complete markdown answer to sanitised HTML, with KaTeX when the `katex` feature
/// is on and the TeX source otherwise.
pub fn render(markdown: &str) -> String {
    math::with_default(|m| render_with(markdown, m))
}

/// Renders a complete markdown answer to sanitised HTML using `math` for formulas.
pub fn render_with(markdown: &str, math: &dyn MathRenderer) -> String {
    scan::blocks(markdown)
        .map(|block| render_block(block, math, false).html)
        .collect()
}

/// Whether `markdown` contains a complete formula, i.e. whether rendering it needs math.
pub fn contains_math(markdown: &str) -> bool {
    scan::contains_math(markdown)
}

/// One block through the whole pipeline; its HTML is sanitised.
pub(crate) fn render_block(
    block: &str,
    math: &dyn MathRenderer,
    pending: bool,
) -> markdown::BlockHtml {
    let mut rendered = markdown::block_to_html(block, math, pending);
    rendered.html = sanitize::sanitize(&rendered.html);
    rendered
}
