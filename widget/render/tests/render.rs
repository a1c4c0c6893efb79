//! What the widget shows for ordinary answers: GFM constructs, formulas in all four
//! delimiters, link and image policy, the no-math fallback and streaming.

mod support;

use parlo_render::{
    MathError, MathRenderer, SourceMath, StreamRenderer, contains_math, render, render_with,
};
use support::{assert_safe, attr_values, elements, text};

fn ok(markdown: &str) -> String {
    let html = render(markdown);
    assert_safe(&html);
    html
}

#[test]
fn tables_render_with_alignment_classes() {
    let html = ok("| a | b | c |\n|:--|:-:|--:|\n| 1 | 2 | 3 |\n");
    assert_eq!(elements(&html, "table").len(), 1);
    assert_eq!(elements(&html, "th").len(), 3);
    assert_eq!(
        attr_values(&html, "td", "class"),
        vec!["align-left", "align-center", "align-right"]
    );
    assert!(!html.contains("style"), "{html}");
}

#[test]
fn strikethrough_renders_as_del() {
    let html = ok("~~gone~~ and ~kept?~");
    assert_eq!(elements(&html, "del").len(), 2, "{html}");
}

#[test]
fn task_lists_render_as_disabled_checkboxes() {
    let html = ok("- [x] done\n- [ ] todo\n");
    let boxes = elements(&html, "input");
    assert_eq!(boxes.len(), 2);
    for b in &boxes {
        assert!(b.contains(&("type".into(), "checkbox".into())));
        assert!(b.iter().any(|(k, _)| k == "disabled"));
    }
    assert!(boxes[0].iter().any(|(k, _)| k == "checked"));
    assert!(!boxes[1].iter().any(|(k, _)| k == "checked"));
}

#[test]
fn autolinks_and_bare_urls_become_links() {
    let html = ok("<https://a.example/x> and https://b.example/y. and <mailto:me@c.example>");
    assert_eq!(
        attr_values(&html, "a", "href"),
        vec![
            "https://a.example/x",
            "https://b.example/y",
            "mailto:me@c.example"
        ]
    );
}

#[test]
fn links_get_rel_and_target() {
    let html = ok("[docs](https://docs.example \"Docs\")");
    let links = elements(&html, "a");
    assert_eq!(links.len(), 1);
    let a = &links[0];
    assert!(a.contains(&("href".into(), "https://docs.example".into())));
    assert!(a.contains(&("title".into(), "Docs".into())));
    assert!(a.contains(&("target".into(), "_blank".into())));
    assert!(a.contains(&("rel".into(), "noopener noreferrer nofollow".into())));
}

#[test]
fn relative_links_become_text() {
    let html = ok("[home](/) and [doc](docs/x.md) and [top](#top)");
    assert!(elements(&html, "a").is_empty());
    assert_eq!(text(&html).trim(), "home and doc and top");
}

#[test]
fn images_become_links_with_alt_text() {
    let html = ok("![a chart](https://img.example/c.png \"Chart\") ![](https://img.example/d.png)");
    assert!(elements(&html, "img").is_empty());
    assert_eq!(
        attr_values(&html, "a", "href"),
        vec!["https://img.example/c.png", "https://img.example/d.png"]
    );
    assert_eq!(text(&html).trim(), "a chart https://img.example/d.png");
}

#[test]
fn linked_image_badge_becomes_one_link() {
    let html = ok("[![build](https://ci.example/badge.svg)](https://ci.example)");
    assert_eq!(attr_values(&html, "a", "href"), vec!["https://ci.example"]);
    assert_eq!(text(&html).trim(), "build");
}

#[test]
fn fenced_code_keeps_its_language_class() {
    let html = ok("```rust\nfn main() {}\n```\n\n```\nplain\n```\n\n~~~c++ extra\nx\n~~~\n");
    assert_eq!(
        attr_values(&html, "code", "class"),
        vec!["language-rust", "language-c++"]
    );
    assert_eq!(elements(&html, "pre").len(), 3);
}

#[test]
fn raw_html_is_escaped_not_dropped() {
    let html = ok("a <b>bold</b> tag\n\n<div>\nblock\n</div>\n");
    assert!(elements(&html, "b").is_empty() && elements(&html, "div").is_empty());
    let t = text(&html);
    assert!(t.contains("<b>bold</b>") && t.contains("<div>"), "{t}");
}

#[test]
fn headings_lists_quotes_and_rules_render() {
    let html = ok("# H1\n\n## H2\n\n> quote\n\n1. one\n2. two\n\n---\n\n3) three\n");
    for tag in ["h1", "h2", "blockquote", "ol", "li", "hr"] {
        assert!(!elements(&html, tag).is_empty(), "{tag} missing in {html}");
    }
    assert_eq!(attr_values(&html, "ol", "start"), vec!["3"]);
}

#[cfg(feature = "katex")]
mod with_katex {
    use super::*;

    fn math_elements(html: &str) -> Vec<Vec<(String, String)>> {
        elements(html, "math")
    }

    #[test]
    fn inline_math_in_dollars_and_parens_renders_mathml() {
        for md in ["$x^2$", r"\(x^2\)"] {
            let html = ok(md);
            let maths = math_elements(&html);
            assert_eq!(maths.len(), 1, "{md} -> {html}");
            assert!(!maths[0].iter().any(|(k, _)| k == "display"), "{html}");
            assert_eq!(elements(&html, "msup").len(), 1);
        }
    }

    #[test]
    fn display_math_in_double_dollars_and_brackets_renders_mathml() {
        for md in [
            r"$$\frac{a}{b}$$",
            r"\[\frac{a}{b}\]",
            "$$\n\\frac{a}{b}\n$$",
        ] {
            let html = ok(md);
            assert_eq!(attr_values(&html, "math", "display"), vec!["block"], "{md}");
            assert_eq!(elements(&html, "mfrac").len(), 1);
        }
    }

    #[test]
    fn matrices_roots_and_sums_render() {
        let html =
            ok(r"$$\sum_{i=1}^n \sqrt[3]{x_i} = \begin{pmatrix}a & b\\ c & d\end{pmatrix}$$");
        for tag in ["munderover", "mroot", "mtable", "mtr", "mtd", "annotation"] {
            assert!(!elements(&html, tag).is_empty(), "{tag} missing in {html}");
        }
        assert_eq!(
            attr_values(&html, "annotation", "encoding"),
            vec!["application/x-tex"]
        );
    }

    #[test]
    fn invalid_tex_shows_its_source_marked_as_error() {
        let html = ok(r"$\frac{1}{$ ok");
        assert_eq!(
            attr_values(&html, "code", "class"),
            vec!["math-source math-error"]
        );
        assert!(text(&html).contains(r"$\frac{1}{$"));
    }

    #[test]
    fn math_in_lists_tables_and_headings_renders() {
        let html = ok("# $a$\n\n- $b$\n\n| $c|d$ |\n|---|\n| $e$ |\n");
        assert_eq!(math_elements(&html).len(), 4, "{html}");
    }
}

#[test]
fn without_math_renderer_tex_source_is_shown_as_code() {
    let html = render_with(r"a $x^2$ b \[y\]", &SourceMath);
    assert_safe(&html);
    assert!(elements(&html, "math").is_empty());
    assert_eq!(
        attr_values(&html, "code", "class"),
        vec!["math-source", "math-source"]
    );
    assert_eq!(text(&html).trim(), r"a $x^2$ b \[y\]");
}

#[test]
fn dollar_amounts_are_not_math() {
    let html = render_with("It costs $5 and $10, or $ 3 $.", &SourceMath);
    assert!(elements(&html, "code").is_empty(), "{html}");
    assert!(!contains_math("It costs $5 and $10."));
}

#[test]
fn contains_math_finds_complete_formulas_outside_code() {
    assert!(contains_math("see $x$"));
    assert!(contains_math("\\[x\\]"));
    assert!(contains_math("a\n\n$$\nx\n$$\n"));
    assert!(!contains_math("`$x$` and\n```\n$$y$$\n```"));
    assert!(!contains_math("unfinished $x"));
    assert!(!contains_math("plain text"));
}

/// Records what it was asked to render.
struct Echo;

impl MathRenderer for Echo {
    fn render(&self, tex: &str, display: bool) -> Result<String, MathError> {
        Ok(format!(
            "<math{}><mi>{}</mi></math>",
            if display { " display=\"block\"" } else { "" },
            tex.replace('&', "&amp;").replace('<', "&lt;")
        ))
    }
}

#[test]
fn math_renderer_receives_tex_without_delimiters() {
    let html = render_with(r"$a<b$ \(c\) $$d$$ \[e\]", &Echo);
    assert_eq!(text(&html).trim(), "a<b c d e");
    assert_eq!(
        attr_values(&html, "math", "display"),
        vec!["block", "block"]
    );
}

// --- streaming ---------------------------------------------------------------------------

fn stream(chunks: &[&str]) -> StreamRenderer {
    let mut s = StreamRenderer::with_math(Box::new(SourceMath));
    for c in chunks {
        s.push(c);
        assert_safe(&s.html());
    }
    s
}

#[test]
fn stream_shows_unfinished_formula_as_pending_text() {
    for tail in ["$a*b*", "$$\\sum_", "\\[x", "\\(y_"] {
        let s = stream(&["Result: ", tail]);
        let html = s.tail_html();
        assert_eq!(
            attr_values(html, "span", "class"),
            vec!["math-pending"],
            "{tail}"
        );
        assert!(elements(html, "em").is_empty(), "{html}");
        assert!(text(html).contains(tail), "{html}");
    }
}

#[test]
fn stream_closes_an_unfinished_code_fence_for_display() {
    let s = stream(&["```python\nprint('$x$')\n", "x = 1"]);
    let html = s.tail_html();
    assert_eq!(elements(html, "pre").len(), 1);
    assert!(text(html).contains("print('$x$')\nx = 1"), "{html}");
}

#[test]
fn stream_finishes_blocks_once_and_matches_render() {
    let text =
        "First paragraph.\n\n- a\n\n- b\n\nSecond $x$ para.\n\n```\ncode\n\nmore\n```\n\nEnd";
    let mut s = StreamRenderer::with_math(Box::new(SourceMath));
    let mut finished = 0;
    let mut seen = Vec::new();
    for chunk in text.as_bytes().chunks(7) {
        finished += s.push(std::str::from_utf8(chunk).expect("ascii"));
        assert_eq!(s.blocks().len(), finished);
        // Finished blocks never change.
        assert_eq!(&s.blocks()[..seen.len()], &seen[..]);
        seen = s.blocks().to_vec();
    }
    s.finish();
    assert!(s.tail_html().is_empty());
    assert_eq!(s.html(), render_with(text, &SourceMath));
    // A list stays with the paragraph before it; the fence with its blank line is one block.
    assert_eq!(s.blocks().len(), 4, "{:#?}", s.blocks());
}

#[test]
fn stream_set_math_rerenders_with_the_new_renderer() {
    let mut s = stream(&["a $x$\n\nb $y$"]);
    assert!(s.has_math());
    assert!(s.html().contains("math-source"));
    s.set_math(Box::new(Echo));
    assert!(!s.html().contains("math-source"), "{}", s.html());
    s.finish();
    assert_eq!(s.html(), render_with("a $x$\n\nb $y$", &Echo));
}

#[test]
fn stream_renders_each_finished_block_once() {
    use std::cell::Cell;
    use std::rc::Rc;

    struct Counting(Rc<Cell<usize>>);
    impl MathRenderer for Counting {
        fn render(&self, _: &str, _: bool) -> Result<String, MathError> {
            self.0.set(self.0.get() + 1);
            Err(MathError::Unavailable)
        }
    }

    let calls = Rc::new(Cell::new(0));
    let mut s = StreamRenderer::with_math(Box::new(Counting(calls.clone())));
    let paragraph = "Formula $x$ here.\n\n";
    for _ in 0..50 {
        for chunk in paragraph.as_bytes().chunks(4) {
            s.push(std::str::from_utf8(chunk).expect("ascii"));
        }
    }
    s.finish();
    // 50 formulas; each is rendered while in the tail (a few chunks) and once when its
    // block finishes. Re-rendering everything per chunk would take ~50 * 25 * 5 calls.
    assert!(calls.get() <= 50 * 5, "{} math calls", calls.get());
}
