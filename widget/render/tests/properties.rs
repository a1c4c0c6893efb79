//! Properties on generated answers built from markdown syntax, raw HTML, math delimiters and
//! URLs with dangerous schemes: the output is safe, stable under re-sanitising, and
//! streaming it in any chunks gives exactly what rendering it whole gives.

mod support;

use parlo_render::{MathError, MathRenderer, StreamRenderer, render, render_with, sanitize};
use proptest::prelude::*;

const FRAGMENTS: &[&str] = &[
    // markdown syntax
    "# ",
    "## ",
    "- ",
    "* ",
    "+ ",
    "1. ",
    "2) ",
    "> ",
    ">> ",
    "```",
    "```rust",
    "~~~",
    "`",
    "``",
    "*",
    "**",
    "_",
    "~~",
    "|",
    "| a | b |\n|---|:-:|\n",
    "[",
    "]",
    "](",
    ")",
    "![",
    "]: ",
    "[r]",
    "[r]: ",
    "- [ ] ",
    "- [x] ",
    "---",
    "    ",
    "\\",
    "&amp;",
    "&#106;",
    "&",
    "\t",
    // raw HTML and attacks
    "<script>",
    "</script>",
    "<img src=x onerror=alert(1)>",
    "<a href=\"javascript:alert(1)\">",
    "</a>",
    "<svg><style>",
    "<math><mtext><table><mglyph><style>",
    "<!--",
    "-->",
    "<p style=\"",
    "\" onclick=\"alert(1)",
    "<iframe src=",
    "<div>",
    "</div>",
    "<",
    ">",
    "\"",
    "'",
    // math
    "$",
    "$$",
    "\\(",
    "\\)",
    "\\[",
    "\\]",
    "x^2",
    "\\frac{a}{b}",
    "{",
    "}",
    "\\href{javascript:alert(1)}{x}",
    "\\url{javascript:x}",
    "\\htmlClass{evil}{x}",
    "\\htmlStyle{color:red}{x}",
    "\\color{red}",
    "\\begin{pmatrix}",
    "\\end{pmatrix}",
    "&",
    "\\\\",
    "\\left(",
    "\\right)",
    "\\sqrt",
    // URLs
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "java\tscript:",
    "&#106;avascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)",
    "https://ok.example/a_(b)",
    "http://ok.example",
    "mailto:a@b.example",
    "//evil.example",
    "/relative",
    "<https://ok.example>",
    "<javascript:alert(1)>",
    "www.example.com",
    // text
    "word",
    "5",
    "\u{F0000}",
    "\u{0}",
    "é",
    "\r",
];

fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => prop::sample::select(FRAGMENTS).prop_map(str::to_owned),
        2 => prop::sample::select(&[" ", "\n", "\n\n", "  \n"][..]).prop_map(str::to_owned),
        1 => "\\PC{0,6}",
    ]
}

fn answer() -> impl Strategy<Value = String> {
    prop::collection::vec(piece(), 0..40).prop_map(|p| p.concat())
}

/// Cut points for streaming: chunk lengths in bytes, moved to char boundaries.
fn chunks(text: &str, lens: &[usize]) -> Vec<String> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while start < text.len() {
        let mut end = (start + lens[i % lens.len()].max(1)).min(text.len());
        while !text.is_char_boundary(end) {
            end += 1;
        }
        out.push(text[start..end].to_owned());
        start = end;
        i += 1;
    }
    out
}

/// Returns the TeX mangled into attacker-ish markup, to fuzz the sanitiser with math output.
struct Mangling;

impl MathRenderer for Mangling {
    fn render(&self, tex: &str, display: bool) -> Result<String, MathError> {
        if display {
            Ok(format!(
                "<math display=\"block\"><mtext>{tex}</mtext></math>"
            ))
        } else {
            Ok(tex.to_owned())
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(384))]

    #[test]
    fn output_is_safe(md in answer()) {
        let html = render(&md);
        prop_assert!(support::check_safe(&html).is_ok(), "{:?}\n{}", support::check_safe(&html), html);
    }

    #[test]
    fn sanitising_the_output_again_changes_nothing(md in answer()) {
        let html = render(&md);
        prop_assert_eq!(sanitize(&html), html);
    }

    #[test]
    fn hostile_math_output_is_safe_and_stable(md in answer()) {
        let html = render_with(&md, &Mangling);
        prop_assert!(support::check_safe(&html).is_ok(), "{:?}\n{}", support::check_safe(&html), html);
        prop_assert_eq!(sanitize(&html), html);
    }

    #[test]
    fn streaming_any_split_equals_rendering_whole(
        md in answer(),
        lens in prop::collection::vec(1usize..24, 1..8),
    ) {
        let whole = render(&md);
        let mut s = StreamRenderer::new();
        for chunk in chunks(&md, &lens) {
            s.push(&chunk);
            let shown = s.html();
            prop_assert!(support::check_safe(&shown).is_ok(), "{:?}\n{}", support::check_safe(&shown), shown);
        }
        s.finish();
        prop_assert_eq!(s.html(), whole);
        prop_assert_eq!(s.text(), md.as_str());
    }

    #[test]
    fn raw_sanitiser_output_is_safe_and_stable(html in answer()) {
        let clean = sanitize(&html);
        prop_assert!(support::check_safe(&clean).is_ok(), "{:?}\n{}", support::check_safe(&clean), clean);
        prop_assert_eq!(sanitize(&clean), clean);
    }
}
