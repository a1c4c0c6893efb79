//! HTML to sections: the page's main text with its heading structure, parsed by html5ever
//! (through `scraper`) exactly as a browser would, so broken markup still yields the text a
//! visitor sees. Page chrome — scripts, styles, navigation, asides, and the site-wide header
//! and footer — is dropped; `<main>`/`<article>` is preferred when the page marks one.

use ego_tree::NodeRef;
use scraper::{ElementRef, Html, Node, Selector};

use super::document::{Document, ExtractError, SectionBuilder, collapse_spaces};

/// WHATWG MIME sniffing's HTML signatures, checked after leading whitespace, plus the
/// common case of a fragment that opens with markup somewhere near the top.
pub(super) fn looks_like_html(text: &str) -> bool {
    let start: String = text.trim_start().chars().take(1024).collect();
    let lower = start.to_ascii_lowercase();
    const SIGNATURES: &[&str] = &[
        "<!doctype html",
        "<html",
        "<head",
        "<script",
        "<iframe",
        "<h1",
        "<div",
        "<font",
        "<table",
        "<a ",
        "<style",
        "<title",
        "<b>",
        "<body",
        "<br",
        "<p>",
        "<p ",
        "<!--",
    ];
    SIGNATURES.iter().any(|s| lower.starts_with(s))
        || lower.contains("<html")
        || lower.contains("<body")
}

/// A whole HTML document (doctype or `<html>` near the top), as opposed to a fragment.
pub(super) fn is_html_document(text: &str) -> bool {
    let start: String = text.trim_start().chars().take(1024).collect();
    let lower = start.to_ascii_lowercase();
    lower.starts_with("<!doctype html") || lower.contains("<html")
}

/// Elements whose content is never text a visitor reads.
const NEVER_TEXT: &[&str] = &[
    "script", "style", "noscript", "template", "svg", "math", "iframe", "object", "embed",
    "canvas", "video", "audio", "map", "select", "button", "input", "textarea", "dialog", "nav",
    "aside", "head",
];

/// Page chrome: dropped unless inside the main content (an article's own `<header>` often
/// holds its title and byline).
const CHROME: &[&str] = &["header", "footer", "form"];

const BLOCKS: &[&str] = &[
    "p",
    "div",
    "section",
    "article",
    "main",
    "blockquote",
    "ul",
    "ol",
    "dl",
    "dt",
    "dd",
    "figure",
    "figcaption",
    "address",
    "details",
    "summary",
    "hr",
    "header",
    "footer",
    "body",
    "center",
    "fieldset",
    "legend",
];

pub(super) fn extract(text: &str) -> Result<Document, ExtractError> {
    let html = Html::parse_document(text);
    let selector = |s: &str| Selector::parse(s).expect("static selector");
    let title = html
        .select(&selector("title"))
        .next()
        .map(|t| collapse_spaces(&t.text().collect::<String>()))
        .filter(|t| !t.is_empty());
    let main = html.select(&selector("main, [role=main], article")).next();
    let root = main
        .or_else(|| html.select(&selector("body")).next())
        .unwrap_or_else(|| html.root_element());
    let mut walker = Walker {
        out: SectionBuilder::default(),
        buf: String::new(),
        in_main: main.is_some(),
        pre: 0,
        lists: Vec::new(),
        last_was_line: false,
    };
    walker.walk(*root);
    walker.flush(false);
    let mut document = walker.out.finish();
    if document.sections.is_empty() {
        return Err(ExtractError::NoText);
    }
    if title.is_some() {
        document.title = title;
    }
    Ok(document)
}

struct Walker {
    out: SectionBuilder,
    buf: String,
    in_main: bool,
    pre: usize,
    /// Open lists: the next number of an `<ol>`, `None` for `<ul>`.
    lists: Vec<Option<u32>>,
    last_was_line: bool,
}

impl Walker {
    fn walk(&mut self, node: NodeRef<'_, Node>) {
        match node.value() {
            Node::Text(text) => self.text(text),
            Node::Element(element) => {
                let name = element.name();
                if never_text(element) || (!self.in_main && CHROME.contains(&name)) {
                    return;
                }
                match name {
                    "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => {
                        self.flush(false);
                        let level = name.as_bytes()[1] - b'0';
                        self.out.heading(level, &inline_text(node));
                        self.last_was_line = false;
                    }
                    "br" => self.buf.push('\n'),
                    "pre" => {
                        self.flush(false);
                        self.pre += 1;
                        self.children(node);
                        self.pre -= 1;
                        let code = std::mem::take(&mut self.buf);
                        self.out
                            .block(&format!("```\n{}\n```", code.trim_matches('\n')), false);
                        self.last_was_line = false;
                    }
                    "ul" | "ol" => {
                        // A nested list ends its parent item's own text, as one line.
                        self.flush(!self.lists.is_empty());
                        self.lists.push((name == "ol").then_some(1));
                        self.children(node);
                        self.flush(true);
                        self.lists.pop();
                        if self.lists.is_empty() {
                            self.last_was_line = false;
                        }
                    }
                    "li" => {
                        self.flush(true);
                        let depth = self.lists.len().saturating_sub(1);
                        let marker = match self.lists.last_mut() {
                            Some(Some(n)) => {
                                *n += 1;
                                format!("{}. ", *n - 1)
                            }
                            _ => "- ".to_owned(),
                        };
                        self.buf = format!("{}{marker}", "  ".repeat(depth));
                        self.children(node);
                        self.flush(true);
                    }
                    "table" => {
                        self.flush(false);
                        self.children(node);
                        self.last_was_line = false;
                    }
                    "tr" => {
                        self.flush(true);
                        let cells: Vec<String> = node
                            .children()
                            .filter_map(ElementRef::wrap)
                            .filter(|c| matches!(c.value().name(), "td" | "th"))
                            .map(|c| inline_text(*c))
                            .collect();
                        let row = cells.join(" | ");
                        if !row.replace('|', "").trim().is_empty() {
                            self.out.block(&row, self.last_was_line);
                            self.last_was_line = true;
                        }
                    }
                    _ if BLOCKS.contains(&name) => {
                        self.flush(false);
                        self.children(node);
                        self.flush(false);
                    }
                    _ => self.children(node),
                }
            }
            _ => {}
        }
    }

    fn children(&mut self, node: NodeRef<'_, Node>) {
        for child in node.children() {
            self.walk(child);
        }
    }

    fn text(&mut self, text: &str) {
        if self.pre > 0 {
            self.buf.push_str(text);
            return;
        }
        if text.starts_with(char::is_whitespace)
            && !self.buf.is_empty()
            && !self.buf.ends_with([' ', '\n'])
        {
            self.buf.push(' ');
        }
        self.buf.push_str(&collapse_spaces(text));
        if text.ends_with(char::is_whitespace) && !text.trim().is_empty() {
            self.buf.push(' ');
        }
    }

    /// Ends the current block; `line` marks list items and rows, written without a blank
    /// line between consecutive ones.
    fn flush(&mut self, line: bool) {
        let block = std::mem::take(&mut self.buf);
        let lines: Vec<&str> = block.lines().map(str::trim_end).collect();
        let block = lines.join("\n");
        // A list item whose content was all chrome leaves only its marker behind.
        let is_marker_only = {
            let t = block.trim();
            line && (t == "-"
                || t.strip_suffix('.')
                    .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit())))
        };
        if block.trim().is_empty() || is_marker_only {
            return;
        }
        let in_list = line && !self.lists.is_empty();
        self.out.block(&block, in_list && self.last_was_line);
        self.last_was_line = in_list;
    }
}

fn never_text(element: &scraper::node::Element) -> bool {
    NEVER_TEXT.contains(&element.name())
        || element.attr("hidden").is_some()
        || element.attr("aria-hidden") == Some("true")
}

/// The text of a subtree as one line (headings, table cells), chrome excluded.
fn inline_text(node: NodeRef<'_, Node>) -> String {
    let mut text = String::new();
    for descendant in node.descendants() {
        if let Node::Text(t) = descendant.value() {
            let hidden = descendant
                .ancestors()
                .take_while(|a| a.id() != node.id())
                .any(|a| a.value().as_element().is_some_and(never_text));
            if !hidden {
                text.push_str(t);
                text.push(' ');
            }
        }
    }
    collapse_spaces(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn main_text_keeps_headings_and_drops_chrome() {
        let doc = extract(
            r#"<!DOCTYPE html><html><head><title> Pricing  | Acme </title>
            <style>body{color:red}</style><script>var secret = 1;</script></head>
            <body>
              <header><a href="/">Acme</a> <nav><a href="/x">Menu item</a></nav></header>
              <h1>Pricing</h1>
              <p>Plans start at <b>10 €</b>
                 per month.</p>
              <aside>Related: blog</aside>
              <h2>Plans</h2>
              <ul><li>Basic: 1 bot</li><li>Pro: <em>5</em> bots<ul><li>priority support</li></ul></li></ul>
              <ol><li>Pick a plan</li><li>Pay</li></ol>
              <table><tr><th>Plan</th><th>Price</th></tr><tr><td>Pro</td><td>30 €</td></tr></table>
              <h3>Annual <span hidden>x</span>billing</h3>
              <p>Two months free.<br>Cancel anytime.</p>
              <pre><code>curl -X POST
  https://acme.test/api</code></pre>
              <div hidden>Hidden promo</div>
              <footer>© Acme 2025</footer>
            </body></html>"#,
        )
        .unwrap();
        assert_eq!(doc.title.as_deref(), Some("Pricing | Acme"));
        assert_eq!(
            doc.outline(),
            vec![
                ("Pricing".into(), "Plans start at 10 € per month.".into()),
                (
                    "Pricing > Plans".into(),
                    "- Basic: 1 bot\n- Pro: 5 bots\n  - priority support\n\n1. Pick a plan\n2. Pay\n\nPlan | Price\nPro | 30 €"
                        .into()
                ),
                (
                    "Pricing > Plans > Annual billing".into(),
                    "Two months free.\nCancel anytime.\n\n```\ncurl -X POST\n  https://acme.test/api\n```"
                        .into()
                ),
            ]
        );
        let all: String = doc.sections.iter().map(|s| s.text.as_str()).collect();
        for chrome in [
            "secret",
            "Menu item",
            "Related",
            "©",
            "Hidden promo",
            "color:red",
        ] {
            assert!(!all.contains(chrome), "{chrome} leaked into {all}");
        }
    }

    #[test]
    fn main_element_is_preferred_and_its_own_header_kept() {
        let doc = extract(
            r#"<html><body><div class="sidebar">Sidebar links</div>
            <main><header><h1>Release notes</h1></header><p>Version 2 is out.</p>
            <footer>Posted by the team</footer></main>
            <footer>Site footer</footer></body></html>"#,
        )
        .unwrap();
        assert_eq!(doc.title.as_deref(), Some("Release notes"));
        assert_eq!(
            doc.outline(),
            vec![(
                "Release notes".into(),
                "Version 2 is out.\n\nPosted by the team".into()
            )]
        );
    }

    #[test]
    fn html_without_text_is_an_error() {
        for page in [
            "<html><head><title>Empty</title></head><body><script>app()</script></body></html>",
            "<!DOCTYPE html><html><body><div id=\"root\"></div><noscript>Enable JS</noscript></body></html>",
        ] {
            assert_eq!(extract(page), Err(ExtractError::NoText), "{page}");
        }
    }

    #[test]
    fn html_is_sniffed_from_content() {
        assert!(looks_like_html("\n  <!doctype HTML><p>x"));
        assert!(looks_like_html("<p>Just a paragraph</p>"));
        assert!(looks_like_html(
            "<?xml version=\"1.0\"?>\n<html xmlns=\"x\"><body/></html>"
        ));
        assert!(!looks_like_html("# Heading\n\nUse <br> tags sparingly."));
        assert!(!looks_like_html("a < b and c > d"));
    }
}
