//! The module's exports produce exactly what `parlo-render` produces natively (without
//! KaTeX, i.e. what the widget shows before the math module is in).

use parlo_markdown::{Stream, contains_math, render};
use parlo_render::{SourceMath, StreamRenderer, render_with};

const ANSWER: &str = "# Title\n\nSome **bold** and `code`, $a*b*c$ and \
    [a link](https://example.com).\n\n- one\n- two\n\n```rust\nfn main() {}\n```\n\n\
    | a | b |\n|---|:-:|\n| 1 | 2 |\n\n<script>alert(1)</script>\n\n$$\\frac{1}{2}$$\n\nThe end.";

#[test]
fn render_matches_parlo_render() {
    assert_eq!(render(ANSWER, None), render_with(ANSWER, &SourceMath));
}

#[test]
fn render_escapes_raw_html() {
    let html = render(
        "<img src=x onerror=alert(1)> and <script>alert(1)</script>",
        None,
    );
    assert!(
        !html.contains("<img") && !html.contains("<script"),
        "{html}"
    );
}

#[test]
fn stream_hands_out_each_block_once_and_matches_the_stream_renderer() {
    let mut stream = Stream::new(None);
    let mut reference = StreamRenderer::with_math(Box::new(SourceMath));
    let mut shown = Vec::new();
    // Cut inside words, formulas and fences, as deltas arrive.
    let bytes: Vec<char> = ANSWER.chars().collect();
    for chunk in bytes.chunks(7) {
        let delta: String = chunk.iter().collect();
        shown.extend(stream.push(&delta));
        reference.push(&delta);
        assert_eq!(shown, reference.blocks(), "finished blocks so far");
        assert_eq!(stream.tail(), reference.tail_html(), "the tail");
    }
    assert!(stream.has_math());
    // What was shown, finished blocks plus tail, is the whole answer rendered.
    shown.push(stream.tail());
    assert_eq!(shown.concat(), reference.html());
}

#[test]
fn contains_math_matches_parlo_render() {
    for text in [ANSWER, "$5 and $10", "no math", "\\(x\\)"] {
        assert_eq!(
            contains_math(text),
            parlo_render::contains_math(text),
            "{text}"
        );
    }
}
