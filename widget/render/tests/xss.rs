//! The XSS regression suite: one test per attack, named after it. Each asserts on the
//! actual output (tokenized by `support`, not by the sanitiser under test).

mod support;

use parlo_render::{MathError, MathRenderer, render, render_with, sanitize};
use support::{assert_safe, attr_values, elements, text};

/// Renders and checks the general invariants; returns the HTML for specific assertions.
fn safe(markdown: &str) -> String {
    let html = render(markdown);
    assert_safe(&html);
    html
}

/// A math renderer that returns attacker-chosen markup, as a compromised or buggy math
/// module would. The pipeline must sanitise it like anything else.
struct HostileMath(&'static str);

impl MathRenderer for HostileMath {
    fn render(&self, _tex: &str, _display: bool) -> Result<String, MathError> {
        Ok(self.0.to_owned())
    }
}

fn via_hostile_math(payload: &'static str) -> String {
    let html = render_with("formula: $x$", &HostileMath(payload));
    assert_safe(&html);
    assert_eq!(sanitize(payload), sanitize(&sanitize(payload)));
    assert_safe(&sanitize(payload));
    html
}

fn assert_no_links(html: &str) {
    assert!(elements(html, "a").is_empty(), "unexpected link in {html}");
}

// --- script elements -------------------------------------------------------------------

#[test]
fn script_tag_inline_is_shown_as_text() {
    let html = safe("hello <script>alert(1)</script> world");
    assert!(elements(&html, "script").is_empty());
    assert!(text(&html).contains("<script>alert(1)</script>"), "{html}");
}

#[test]
fn script_tag_as_html_block_is_shown_as_text() {
    let html = safe("<script>\nalert(document.cookie)\n</script>\n");
    assert!(elements(&html, "script").is_empty());
    assert!(text(&html).contains("alert(document.cookie)"));
}

#[test]
fn script_tag_split_across_stream_chunks_never_appears() {
    let mut s = parlo_render::StreamRenderer::new();
    for chunk in ["<scr", "ipt>al", "ert(1)</scr", "ipt>\n\nok"] {
        s.push(chunk);
        assert_safe(&s.html());
        assert!(elements(&s.html(), "script").is_empty());
    }
    s.finish();
    assert_safe(&s.html());
}

#[test]
fn script_tag_from_math_renderer_is_removed_with_its_content() {
    let html = via_hostile_math("<script>alert(1)</script>");
    assert!(!html.contains("alert(1)"), "{html}");
}

// --- event handlers --------------------------------------------------------------------

#[test]
fn img_onerror_handler_is_shown_as_text() {
    let html = safe("<img src=x onerror=alert(1)>");
    assert!(elements(&html, "img").is_empty());
    assert!(text(&html).contains("onerror=alert(1)"));
}

#[test]
fn a_onclick_handler_is_shown_as_text() {
    let html = safe(r#"<a href="https://ok.example" onclick="alert(1)">x</a>"#);
    assert_no_links(&html);
}

#[test]
fn event_handler_smuggled_in_link_title_stays_in_the_title() {
    let html = safe(r#"[x](https://ok.example "a\" onmouseover=\"alert(1)")"#);
    assert_eq!(
        attr_values(&html, "a", "title"),
        vec![r#"a" onmouseover="alert(1)"#]
    );
}

#[test]
fn event_handlers_from_math_renderer_are_stripped() {
    let html = via_hostile_math(
        r#"<img src=x onerror=alert(1)><a href="https://ok.example" onclick="alert(1)">x</a><math onmouseover="alert(1)"><mi onclick="x">y</mi></math>"#,
    );
    assert!(elements(&html, "img").is_empty());
    assert_eq!(attr_values(&html, "a", "href"), vec!["https://ok.example"]);
}

// --- dangerous URL schemes -------------------------------------------------------------

const BAD_URLS: &[&str] = &[
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "javascript&#58;alert(1)",
    "&#106;avascript:alert(1)",
    "&#x6A;avascript:alert(1)",
    "&#0000106avascript:alert(1)",
    "java&#x09;script:alert(1)",
    "java&#10;script:alert(1)",
    "&#x01;javascript:alert(1)",
    "%20javascript:alert(1)",
    "javascript%3Aalert(1)",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "DATA:image/svg+xml,<svg onload=alert(1)>",
    "vbscript:msgbox(1)",
    "VBScript:msgbox(1)",
    "file:///etc/passwd",
    "/relative/path",
    "//evil.example/x",
    "#fragment",
    "https:./relative-to-an-https-page",
    "https:evil.example",
    "http:\\\\evil.example",
    "ｊavascript:alert(1)",
];

#[test]
fn javascript_data_vbscript_urls_in_inline_links_are_dropped() {
    for url in BAD_URLS {
        for md in [format!("[click]({url})"), format!("[click](<{url}>)")] {
            let html = safe(&md);
            assert_no_links(&html);
            assert!(text(&html).contains("click"), "{md} -> {html}");
        }
    }
}

#[test]
fn javascript_url_with_whitespace_and_control_chars_in_link_is_dropped() {
    for md in [
        "[x](<java\tscript:alert(1)>)",
        "[x](<java\nscript:alert(1)>)",
        "[x](<\u{1}javascript:alert(1)>)",
        "[x](< javascript:alert(1)>)",
        "[x](<javascript\u{0}:alert(1)>)",
    ] {
        assert_no_links(&safe(md));
    }
}

#[test]
fn javascript_data_vbscript_urls_in_images_are_dropped() {
    for url in BAD_URLS {
        let md = format!("![pic]({url})");
        let html = safe(&md);
        assert_no_links(&html);
        assert!(elements(&html, "img").is_empty());
        assert!(text(&html).contains("pic"), "{md} -> {html}");
    }
}

#[test]
fn javascript_data_vbscript_urls_in_autolinks_are_dropped() {
    for md in [
        "<javascript:alert(1)>",
        "<JAVASCRIPT:alert(1)>",
        "<data:text/html,x>",
        "<vbscript:msgbox(1)>",
        "javascript:alert(1) as bare text",
    ] {
        assert_no_links(&safe(md));
    }
}

#[test]
fn javascript_data_vbscript_urls_in_reference_links_are_dropped() {
    for url in BAD_URLS {
        for md in [
            format!("[r]: {url}\n\n[click][r]"),
            format!("[r]: <{url}>\n[click][r] and [r] and [r][]"),
            format!("[r]: {url}\n![pic][r]"),
        ] {
            assert_no_links(&safe(&md));
        }
    }
}

#[test]
fn javascript_url_in_link_nested_in_image_alt_is_dropped() {
    let html = safe("[![a](javascript:alert(1))](javascript:alert(2))");
    assert_no_links(&html);
}

#[test]
fn javascript_urls_from_math_renderer_are_stripped() {
    let html = via_hostile_math(
        r#"<a href="javascript:alert(1)">a</a><a href=" JaVaScRiPt:alert(1)">b</a><a href="data:text/html,x">c</a><math><mi href="javascript:alert(1)" xlink:href="javascript:alert(1)">x</mi></math>"#,
    );
    assert_eq!(elements(&html, "a").len(), 3);
    assert!(attr_values(&html, "a", "href").is_empty(), "{html}");
}

#[test]
fn slashless_https_url_from_math_renderer_cannot_resolve_against_the_page() {
    // Browsers resolve `https:x` relative to an https page; it must come out absolute.
    let html = via_hostile_math(r#"<a href="https:./x">a</a><a href="HTTPS:evil.example">b</a>"#);
    assert_eq!(
        attr_values(&html, "a", "href"),
        vec!["https://./x", "https://evil.example/"]
    );
}

// --- SVG / MathML namespace confusion (mutation XSS) -----------------------------------

const MXSS: &[&str] = &[
    "<svg><style><img src=x onerror=alert(1)></style></svg>",
    "<svg></p><style><a id=\"</style><img src=1 onerror=alert(1)>\">",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    "<math><mtext><table><mglyph><style><!--</style><img title=\"--&gt;&lt;img src=1 onerror=alert(1)&gt;\">",
    "<math><mi><mglyph><svg><mtext><style><img src onerror=alert(1)></style></mtext></svg></mglyph></mi></math>",
    "<math><annotation-xml encoding=\"text/html\"><style><img src onerror=alert(1)></style></annotation-xml></math>",
    "<form><math><mtext></form><form><mglyph><style></math><img src onerror=alert(1)>",
    "<noscript><p title=\"</noscript><img src=x onerror=alert(1)>\">",
    "<math><maction actiontype=\"statusline\" xlink:href=\"javascript:alert(1)\">x</maction></math>",
];

#[test]
fn svg_and_mathml_namespace_confusion_in_markdown_is_shown_as_text() {
    for payload in MXSS {
        let html = safe(payload);
        assert!(elements(&html, "img").is_empty(), "{payload} -> {html}");
        assert!(elements(&html, "style").is_empty());
    }
}

#[test]
fn svg_and_mathml_namespace_confusion_from_math_renderer_is_neutralised() {
    for payload in MXSS {
        let html = via_hostile_math(payload);
        assert!(elements(&html, "img").is_empty(), "{payload} -> {html}");
        assert!(elements(&html, "mglyph").is_empty(), "{payload} -> {html}");
        assert!(elements(&html, "style").is_empty(), "{payload} -> {html}");
    }
}

// --- style injection ---------------------------------------------------------------------

#[test]
fn style_attribute_and_element_in_markdown_are_shown_as_text() {
    let html = safe(
        "<p style=\"position:fixed;inset:0;background:url(https://evil.example)\">x</p>\n\n<style>*{display:none}</style>",
    );
    assert!(elements(&html, "style").is_empty());
    assert!(text(&html).contains("display:none"));
}

#[test]
fn style_attribute_and_element_from_math_renderer_are_stripped() {
    let html = via_hostile_math(
        r#"<span class="katex" style="position:fixed;inset:0"><math style="x"><mstyle style="background:url(https://evil.example)" mathcolor="red;background:url(x)" mathbackground="url(https://evil.example)"><mi>x</mi></mstyle></math></span><style>*{display:none}</style>"#,
    );
    assert!(!html.contains("display:none"), "{html}");
    assert!(
        attr_values(&html, "mstyle", "mathcolor").is_empty(),
        "{html}"
    );
    assert!(
        attr_values(&html, "mstyle", "mathbackground").is_empty(),
        "{html}"
    );
}

#[test]
fn class_injection_from_math_renderer_keeps_only_allowed_classes() {
    let html = via_hostile_math(
        r#"<span class="katex widget-close-button">x</span><code class="language-rust evil math-source">y</code>"#,
    );
    assert_eq!(attr_values(&html, "span", "class"), vec!["katex"]);
    assert_eq!(
        attr_values(&html, "code", "class"),
        vec!["language-rust math-source"]
    );
}

#[test]
fn code_fence_language_cannot_inject_attributes_or_classes() {
    let html = safe("```rust\" onmouseover=\"alert(1)\nx\n```\n\n```a b\" class=\"evil\ny\n```");
    for class in attr_values(&html, "code", "class") {
        assert!(!class.contains("evil") && !class.contains('"'), "{html}");
    }
}

// --- KaTeX commands that need trust ----------------------------------------------------

fn assert_inert_katex(md: &str) -> String {
    let html = safe(md);
    assert!(
        !elements(&html, "math").is_empty(),
        "{md} should still render: {html}"
    );
    assert_no_links(&html);
    for (tag, attrs) in support::tokenize(&html)
        .into_iter()
        .filter_map(|t| match t {
            support::Token::Start { name, attrs } => Some((name, attrs)),
            _ => None,
        })
    {
        for (k, _) in attrs {
            assert!(
                !matches!(k.as_str(), "href" | "id" | "style" | "src") && !k.starts_with("data-"),
                "{md}: <{tag} {k}> in {html}"
            );
        }
    }
    html
}

#[test]
fn katex_href_javascript_with_trust_off_is_inert() {
    assert_inert_katex(r"$\href{javascript:alert(1)}{click}$");
    assert_inert_katex(r"$$\href{https://ok.example}{click}$$");
}

#[test]
fn katex_url_with_trust_off_is_inert() {
    assert_inert_katex(r"$\url{javascript:alert(1)}$");
}

#[test]
fn katex_html_data_with_trust_off_is_inert() {
    assert_inert_katex(r"$\htmlData{foo=bar, onclick=alert(1)}{x}$");
}

#[test]
fn katex_html_class_with_trust_off_is_inert() {
    let html = assert_inert_katex(r"$\htmlClass{widget-close-button}{x}$");
    assert!(!html.contains("class=\"widget-close-button"));
}

#[test]
fn katex_html_id_with_trust_off_is_inert() {
    assert_inert_katex(r"$\htmlId{evil}{x}$");
}

#[test]
fn katex_html_style_with_trust_off_is_inert() {
    assert_inert_katex(r"$\htmlStyle{position:fixed;background:url(https://evil.example)}{x}$");
}

#[test]
fn katex_includegraphics_with_trust_off_loads_nothing() {
    let html = assert_inert_katex(r"$\includegraphics[height=1em]{https://evil.example/x.png}$");
    assert!(elements(&html, "mglyph").is_empty() && elements(&html, "img").is_empty());
}

#[test]
fn katex_color_cannot_smuggle_css() {
    let html = safe(r"$\color{red;background:url(https://evil.example)} x$ $\textcolor{red}{y}$");
    for v in attr_values(&html, "mstyle", "mathcolor") {
        assert!(
            v.chars().all(|c| c.is_ascii_alphanumeric() || c == '#'),
            "{v}"
        );
    }
}

#[test]
fn katex_macro_bomb_falls_back_to_source() {
    let html = safe(r"$\def\a{\a\a}\a$ and $\newcommand{\b}{{\b}}\b$");
    assert_eq!(attr_values(&html, "code", "class").len(), 2, "{html}");
}

#[test]
fn katex_deep_nesting_falls_back_to_source_without_overflow() {
    let deep = format!("${}x{}$", "{".repeat(5000), "}".repeat(5000));
    let html = safe(&deep);
    assert_eq!(
        attr_values(&html, "code", "class"),
        vec!["math-source math-error"]
    );
    let lefts = format!("$${}x{}$$", r"\left(".repeat(300), r"\right)".repeat(300));
    safe(&lefts);
}

#[test]
fn katex_huge_rule_is_capped() {
    let html = safe(r"$\rule{100000em}{100000em}$ $\kern{100000em}$ $\hspace{100000em}$");
    for w in attr_values(&html, "mspace", "width")
        .into_iter()
        .chain(attr_values(&html, "mpadded", "width"))
    {
        assert!(!w.starts_with("100000"), "{w} in {html}");
    }
}

// --- markdown and math inside each other -------------------------------------------------

#[test]
fn markdown_link_inside_math_is_not_a_link() {
    let html = safe("$[x](javascript:alert(1))$ and $[y](https://ok.example)$");
    assert_no_links(&html);
    assert_eq!(elements(&html, "math").len(), 2, "{html}");
}

#[test]
fn markdown_emphasis_inside_math_is_not_parsed() {
    let html = safe("$a*b*c$ and \\(x_1 + y_2_\\)");
    assert!(elements(&html, "em").is_empty(), "{html}");
}

#[test]
fn raw_html_inside_math_is_not_html() {
    let html = safe(r"$<img src=x onerror=alert(1)>$ and \(<script>alert(1)</script>\)");
    assert!(elements(&html, "img").is_empty() && elements(&html, "script").is_empty());
}

#[test]
fn math_inside_code_span_stays_code() {
    let html = safe("`$x$` and ``\\(y\\)`` and `$$z$$`");
    assert!(elements(&html, "math").is_empty(), "{html}");
    assert_eq!(text(&html).trim_end(), "$x$ and \\(y\\) and $$z$$");
}

#[test]
fn math_inside_fenced_and_indented_code_stays_code() {
    let html = safe("```\n$x$ $$y$$ \\[z\\]\n```\n\n    $w$\n");
    assert!(elements(&html, "math").is_empty(), "{html}");
    assert!(text(&html).contains("$x$ $$y$$ \\[z\\]"));
    assert!(text(&html).contains("$w$"));
}

#[test]
fn math_in_link_destination_is_not_rendered_into_the_url() {
    let html = safe("[a]($x$) [b](https://ok.example/$y$)");
    assert_eq!(
        attr_values(&html, "a", "href"),
        vec!["https://ok.example/$y$"]
    );
}

#[test]
fn forged_math_placeholder_characters_are_neutralised() {
    let html = render_with("\u{F0000}\u{F0001} $x$", &HostileMath("<mi>ok</mi>"));
    assert_safe(&html);
    assert!(html.starts_with("<p>\u{FFFD}\u{FFFD} "), "{html}");
}

// --- other active content ----------------------------------------------------------------

#[test]
fn iframe_object_embed_form_from_math_renderer_are_removed() {
    let html = via_hostile_math(
        r#"<iframe src="https://evil.example"></iframe><object data="x"></object><embed src="x"><form action="https://evil.example"><input type="text" name="pw" autofocus onfocus="alert(1)"><button formaction="x">go</button></form><base href="https://evil.example/"><meta http-equiv="refresh" content="0;url=https://evil.example"><link rel=stylesheet href=x>"#,
    );
    for tag in [
        "iframe", "object", "embed", "form", "button", "base", "meta", "link",
    ] {
        assert!(elements(&html, tag).is_empty(), "{tag} in {html}");
    }
    for input in elements(&html, "input") {
        assert!(
            !input.iter().any(|(k, v)| k == "type" && v != "checkbox"),
            "{html}"
        );
    }
}

#[test]
fn link_target_and_rel_cannot_be_overridden() {
    let html =
        via_hostile_math(r#"<a href="https://ok.example" target="_self" rel="opener">x</a>"#);
    assert_eq!(attr_values(&html, "a", "target"), vec!["_blank"]);
    assert_eq!(
        attr_values(&html, "a", "rel"),
        vec!["noopener noreferrer nofollow"]
    );
}

#[test]
fn html_comments_cannot_hide_markup() {
    let html = via_hostile_math("<!--><img src=x onerror=alert(1)>-->");
    assert!(elements(&html, "img").is_empty());
    safe("<!-- <img src=x onerror=alert(1)> -->");
}
