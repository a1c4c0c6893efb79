//! Incremental rendering of an answer that streams in chunk by chunk.
//! Owns which part of the text is finished (rendered once, cached) and which is the tail
//! (re-rendered per chunk); never renders differently from `render`: once finished, the
//! blocks concatenate to exactly `render(text)`.

use crate::math::MathRenderer;
use crate::{render_block, scan};

/// Renders a growing markdown answer without re-rendering what is already finished.
///
/// The text is cut into blocks at blank lines (outside code fences; see the crate docs).
/// A block is *finished* once the next one has started: it is rendered and sanitised once
/// and never changes. Only the unfinished *tail* is re-rendered on each [`push`], in a
/// forgiving mode: an unclosed formula at its end shows as plain text
/// (`<span class="math-pending">`) and an unclosed code fence is closed for display.
///
/// To patch the DOM cheaply, keep one element per finished block plus one for the tail:
/// after each `push`, append elements for `blocks()[shown..]` and replace the tail
/// element's content with [`tail_html`]. After [`finish`], `blocks().concat()` equals
/// `render(&text)` and the tail is empty.
///
/// [`push`]: StreamRenderer::push
/// [`tail_html`]: StreamRenderer::tail_html
/// [`finish`]: StreamRenderer::finish
pub struct StreamRenderer {
    math: Box<dyn MathRenderer>,
    text: String,
    /// Byte offset in `text` where the tail starts.
    tail_start: usize,
    blocks: Vec<String>,
    /// Byte offset in `text` where each finished block ends.
    block_ends: Vec<usize>,
    tail_html: String,
    has_math: bool,
    finished: bool,
}

impl std::fmt::Debug for StreamRenderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamRenderer")
            .field("len", &self.text.len())
            .field("blocks", &self.blocks.len())
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl Default for StreamRenderer {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamRenderer {
    /// A renderer using the same math as [`crate::render`].
    pub fn new() -> Self {
        Self::with_math(crate::math::default_renderer())
    }

    /// A renderer using `math` for formulas.
    pub fn with_math(math: Box<dyn MathRenderer>) -> Self {
        Self {
            math,
            text: String::new(),
            tail_start: 0,
            blocks: Vec::new(),
            block_ends: Vec::new(),
            tail_html: String::new(),
            has_math: false,
            finished: false,
        }
    }

    /// Appends a chunk of the answer. Returns how many blocks it finished (0 if the chunk
    /// only grew the tail). Pushing after [`finish`](Self::finish) is ignored.
    pub fn push(&mut self, delta: &str) -> usize {
        if self.finished || delta.is_empty() {
            return 0;
        }
        self.text.push_str(delta);
        let before = self.blocks.len();
        let tail_start = self.tail_start;
        for cut in scan::block_boundaries(&self.text[tail_start..], false) {
            self.finish_block(tail_start + cut);
        }
        self.render_tail();
        self.blocks.len() - before
    }

    /// Marks the answer complete: the tail is rendered strictly (like [`crate::render`])
    /// into finished blocks. Returns how many blocks that added.
    pub fn finish(&mut self) -> usize {
        if self.finished {
            return 0;
        }
        self.finished = true;
        let before = self.blocks.len();
        let tail_start = self.tail_start;
        for cut in scan::block_boundaries(&self.text[tail_start..], true) {
            self.finish_block(tail_start + cut);
        }
        if self.tail_start < self.text.len() {
            self.finish_block(self.text.len());
        }
        self.tail_html.clear();
        self.blocks.len() - before
    }

    /// Swaps the math renderer (e.g. once the lazily loaded math module is ready) and
    /// re-renders everything with it. Returns the new blocks' count; replace all shown
    /// blocks, since every one may have changed.
    pub fn set_math(&mut self, math: Box<dyn MathRenderer>) -> usize {
        self.math = math;
        self.has_math = false;
        let mut start = 0;
        for i in 0..self.block_ends.len() {
            let end = self.block_ends[i];
            let rendered = render_block(&self.text[start..end], self.math.as_ref(), false);
            self.has_math |= rendered.has_math;
            self.blocks[i] = rendered.html;
            start = end;
        }
        if !self.finished {
            self.render_tail();
        }
        self.blocks.len()
    }

    /// Renders `text[tail_start..end]` as a finished block; the tail then starts at `end`.
    fn finish_block(&mut self, end: usize) {
        let block = &self.text[self.tail_start..end];
        let rendered = render_block(block, self.math.as_ref(), false);
        self.has_math |= rendered.has_math;
        self.blocks.push(rendered.html);
        self.block_ends.push(end);
        self.tail_start = end;
    }

    fn render_tail(&mut self) {
        let rendered = render_block(&self.text[self.tail_start..], self.math.as_ref(), true);
        self.has_math |= rendered.has_math;
        self.tail_html = rendered.html;
    }

    /// Sanitised HTML of each finished block, in order; only ever appended to.
    pub fn blocks(&self) -> &[String] {
        &self.blocks
    }

    /// Sanitised HTML of the unfinished tail; empty after [`finish`](Self::finish).
    pub fn tail_html(&self) -> &str {
        &self.tail_html
    }

    /// Everything to display now: the finished blocks followed by the tail.
    pub fn html(&self) -> String {
        let mut html = self.blocks.concat();
        html.push_str(&self.tail_html);
        html
    }

    /// The markdown received so far.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether any formula has been seen so far, so the widget knows to load the math
    /// module (then call [`set_math`](Self::set_math)).
    pub fn has_math(&self) -> bool {
        self.has_math
    }

    /// Whether [`finish`](Self::finish) has been called.
    pub fn is_finished(&self) -> bool {
        self.finished
    }
}
