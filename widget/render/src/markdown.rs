//! One block of markdown (formulas already cut out by `scan`) to HTML via pulldown-cmark.
//! Owns which markdown features exist and how each event becomes markup: raw HTML from the
//! message is shown as text, images become links, links with other schemes become text.
//! Its output is NOT safe to insert: only `sanitize` decides that, and it always runs after.

use pulldown_cmark::{
    Alignment, CodeBlockKind, CowStr, Event, LinkType, Options, Parser, Tag, TagEnd,
    TextMergeStream,
};

use crate::math::{MathError, MathRenderer};
use crate::scan::{self, Cut, Extracted};

/// CommonMark plus the GFM extensions chat answers use. No footnotes, heading attributes,
/// metadata blocks or wikilinks: they add ids and structure a chat bubble has no use for.
fn options() -> Options {
    Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS
}

/// The unsanitised HTML of one block, and whether it contained a formula.
pub(crate) struct BlockHtml {
    pub html: String,
    pub has_math: bool,
}

/// Renders one block. With `pending`, an unfinished formula at the end is shown as plain
/// text (a streaming tail) instead of being parsed as markdown.
pub(crate) fn block_to_html(block: &str, math: &dyn MathRenderer, pending: bool) -> BlockHtml {
    let extracted = scan::extract_math(block, pending);
    let mut rewriter = Rewriter {
        cuts: &extracted,
        math,
        out: Vec::new(),
        links: Vec::new(),
        in_code_block: false,
        in_table_head: false,
        alignments: Vec::new(),
        cell: 0,
        has_math: false,
    };
    for event in TextMergeStream::new(Parser::new_ext(&extracted.text, options())) {
        rewriter.event(event);
    }
    let mut html = String::with_capacity(block.len() * 3 / 2);
    pulldown_cmark::html::push_html(&mut html, rewriter.out.into_iter());
    BlockHtml {
        html,
        has_math: rewriter.has_math,
    }
}

/// Whether a link or image destination may be kept: absolute http, https or mailto only.
/// Relative URLs would resolve against the customer's page, which the answer knows nothing
/// about; that includes `https:foo`, which browsers resolve against an https page. The
/// sanitiser enforces the same rule; this check only keeps the markup tidy.
pub(crate) fn url_allowed(url: &str) -> bool {
    crate::sanitize::is_allowed_url(url)
}

/// What became of an opened link or image.
enum OpenLink {
    /// Its tags were dropped (bad URL, or nested in another link); its text stays.
    Dropped,
    Link,
    /// An image turned into a link; `start` is the event count when it opened, to give an
    /// image without alt text its URL as link text.
    Image {
        dest: String,
        start: usize,
    },
}

struct Rewriter<'m, 'e> {
    cuts: &'e Extracted,
    math: &'m dyn MathRenderer,
    out: Vec<Event<'e>>,
    links: Vec<OpenLink>,
    in_code_block: bool,
    in_table_head: bool,
    alignments: Vec<Alignment>,
    cell: usize,
    has_math: bool,
}

impl<'e> Rewriter<'_, 'e> {
    fn event(&mut self, event: Event<'e>) {
        match event {
            Event::Text(t) if self.in_code_block => {
                let restored = self.cuts.restore(&t);
                self.out.push(Event::Text(restored.into()));
            }
            Event::Text(t) => self.text(&t, true),
            Event::Code(t) => {
                let restored = self.cuts.restore(&t);
                self.out.push(Event::Code(restored.into()));
            }
            // Raw HTML is never trusted: it is shown as the text it is.
            Event::Html(t) | Event::InlineHtml(t) => self.text(&t, false),
            Event::Start(tag) => self.start(tag),
            Event::End(tag) => self.end(tag),
            Event::SoftBreak | Event::HardBreak | Event::Rule | Event::TaskListMarker(_) => {
                self.out.push(event);
            }
            // Not enabled in `options`; shown as text should that ever change.
            Event::InlineMath(t) | Event::DisplayMath(t) | Event::FootnoteReference(t) => {
                self.text(&t, false)
            }
        }
    }

    fn start(&mut self, tag: Tag<'e>) {
        let event = match tag {
            Tag::CodeBlock(kind) => {
                self.in_code_block = true;
                let kind = match kind {
                    CodeBlockKind::Fenced(info) => {
                        CodeBlockKind::Fenced(self.cuts.restore(&info).into())
                    }
                    CodeBlockKind::Indented => CodeBlockKind::Indented,
                };
                Event::Start(Tag::CodeBlock(kind))
            }
            Tag::Link {
                link_type,
                dest_url,
                title,
                ..
            } => {
                let dest = self.cuts.restore(&dest_url);
                if self.inside_link() || !url_allowed(&dest) {
                    self.links.push(OpenLink::Dropped);
                    return;
                }
                self.links.push(OpenLink::Link);
                Event::Start(Tag::Link {
                    link_type,
                    dest_url: dest.into(),
                    title: self.cuts.restore(&title).into(),
                    id: CowStr::Borrowed(""),
                })
            }
            // Images are never loaded (no third-party requests): they become links.
            Tag::Image {
                dest_url, title, ..
            } => {
                let dest = self.cuts.restore(&dest_url);
                if self.inside_link() || !url_allowed(&dest) {
                    self.links.push(OpenLink::Dropped);
                    return;
                }
                self.links.push(OpenLink::Image {
                    dest: dest.clone(),
                    start: self.out.len() + 1,
                });
                Event::Start(Tag::Link {
                    link_type: LinkType::Inline,
                    dest_url: dest.into(),
                    title: self.cuts.restore(&title).into(),
                    id: CowStr::Borrowed(""),
                })
            }
            Tag::Table(alignments) => {
                self.alignments.clone_from(&alignments);
                Event::Start(Tag::Table(alignments))
            }
            Tag::TableHead => {
                self.in_table_head = true;
                self.cell = 0;
                Event::Start(Tag::TableHead)
            }
            Tag::TableRow => {
                self.cell = 0;
                Event::Start(Tag::TableRow)
            }
            // Alignment as a class, not the `style` attribute pulldown-cmark would write:
            // the sanitiser allows no style at all.
            Tag::TableCell => {
                let name = if self.in_table_head { "th" } else { "td" };
                let class = match self.alignments.get(self.cell) {
                    Some(Alignment::Left) => " class=\"align-left\"",
                    Some(Alignment::Center) => " class=\"align-center\"",
                    Some(Alignment::Right) => " class=\"align-right\"",
                    Some(Alignment::None) | None => "",
                };
                self.cell += 1;
                Event::Html(format!("<{name}{class}>").into())
            }
            Tag::HtmlBlock => Event::Start(Tag::Paragraph),
            other => Event::Start(other),
        };
        self.out.push(event);
    }

    fn end(&mut self, tag: TagEnd) {
        let event = match tag {
            TagEnd::CodeBlock => {
                self.in_code_block = false;
                Event::End(TagEnd::CodeBlock)
            }
            TagEnd::Link | TagEnd::Image => match self.links.pop() {
                Some(OpenLink::Link) => Event::End(TagEnd::Link),
                Some(OpenLink::Image { dest, start }) => {
                    if self.out.len() == start {
                        self.out.push(Event::Text(dest.into()));
                    }
                    Event::End(TagEnd::Link)
                }
                Some(OpenLink::Dropped) | None => return,
            },
            TagEnd::TableHead => {
                self.in_table_head = false;
                Event::End(TagEnd::TableHead)
            }
            TagEnd::TableCell => {
                let name = if self.in_table_head { "th" } else { "td" };
                Event::Html(format!("</{name}>").into())
            }
            TagEnd::HtmlBlock => Event::End(TagEnd::Paragraph),
            other => Event::End(other),
        };
        self.out.push(event);
    }

    fn inside_link(&self) -> bool {
        self.links.iter().any(|l| !matches!(l, OpenLink::Dropped))
    }

    /// Prose: placeholders become formulas and, with `linkify`, bare URLs become links.
    fn text(&mut self, text: &str, linkify: bool) {
        let mut plain = String::new();
        for c in text.chars() {
            match self.cuts.cut(c) {
                Some(cut) => {
                    self.plain(std::mem::take(&mut plain), linkify);
                    self.cut(cut);
                }
                None => plain.push(c),
            }
        }
        self.plain(plain, linkify);
    }

    fn plain(&mut self, text: String, linkify: bool) {
        if text.is_empty() {
            return;
        }
        if !linkify || self.inside_link() {
            self.out.push(Event::Text(text.into()));
            return;
        }
        let mut rest = text.as_str();
        while let Some((before, url, after)) = find_bare_url(rest) {
            if !before.is_empty() {
                self.out.push(Event::Text(before.to_owned().into()));
            }
            self.out.push(Event::Start(Tag::Link {
                link_type: LinkType::Autolink,
                dest_url: url.to_owned().into(),
                title: CowStr::Borrowed(""),
                id: CowStr::Borrowed(""),
            }));
            self.out.push(Event::Text(url.to_owned().into()));
            self.out.push(Event::End(TagEnd::Link));
            rest = after;
        }
        if !rest.is_empty() {
            self.out.push(Event::Text(rest.to_owned().into()));
        }
    }

    fn cut(&mut self, cut: &Cut) {
        match cut {
            Cut::Math(m) => {
                self.has_math = true;
                match self.math.render(&m.tex, m.display) {
                    Ok(html) => self.out.push(Event::InlineHtml(html.into())),
                    Err(e) => {
                        let class = match e {
                            MathError::Unavailable => "math-source",
                            MathError::Invalid(_) | MathError::TooComplex => {
                                "math-source math-error"
                            }
                        };
                        self.wrap("code", class, &m.source);
                    }
                }
            }
            Cut::Pending(source) => self.wrap("span", "math-pending", source),
        }
    }

    /// `text` as escaped text inside `<name class="class">`.
    fn wrap(&mut self, name: &str, class: &str, text: &str) {
        self.out.push(Event::InlineHtml(
            format!("<{name} class=\"{class}\">").into(),
        ));
        self.out.push(Event::Text(text.to_owned().into()));
        self.out
            .push(Event::InlineHtml(format!("</{name}>").into()));
    }
}

/// The first bare `http://` or `https://` URL in `s` (GFM's extended autolinks, minus `www.`),
/// as (text before, URL, text after). Trailing punctuation and unbalanced `)` are not part
/// of the URL, so "see https://a.example/x)." links `https://a.example/x`.
fn find_bare_url(s: &str) -> Option<(&str, &str, &str)> {
    let lower = s.to_ascii_lowercase();
    let mut from = 0;
    while let Some(found) = lower[from..].find("http") {
        let start = from + found;
        from = start + 4;
        let rest = &lower[start..];
        let scheme_len = if rest.starts_with("https://") {
            8
        } else if rest.starts_with("http://") {
            7
        } else {
            continue;
        };
        let prev_ok = s[..start]
            .chars()
            .next_back()
            .is_none_or(|c| c.is_whitespace() || matches!(c, '*' | '_' | '~' | '('));
        if !prev_ok {
            continue;
        }
        let len = s[start..]
            .find(|c: char| c.is_whitespace() || c == '<' || c.is_control())
            .unwrap_or(s.len() - start);
        let mut url = &s[start..start + len];
        loop {
            let trimmed =
                url.trim_end_matches(['?', '!', '.', ',', ':', '*', '_', '~', '\'', '"', ';']);
            let trimmed = if trimmed.ends_with(')')
                && trimmed.matches(')').count() > trimmed.matches('(').count()
            {
                &trimmed[..trimmed.len() - 1]
            } else {
                trimmed
            };
            if trimmed.len() == url.len() {
                break;
            }
            url = trimmed;
        }
        if url.len() <= scheme_len {
            continue;
        }
        let end = start + url.len();
        return Some((&s[..start], url, &s[end..]));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_urls_lose_trailing_punctuation() {
        assert_eq!(
            find_bare_url("see https://a.example/x)."),
            Some(("see ", "https://a.example/x", ")."))
        );
        assert_eq!(
            find_bare_url("(https://a.example/wiki/A_(b))"),
            Some(("(", "https://a.example/wiki/A_(b)", ")"))
        );
        assert_eq!(find_bare_url("nohttp://x and http://"), None);
        assert_eq!(find_bare_url("javascript:alert(1)"), None);
    }

    #[test]
    fn only_absolute_http_https_mailto_urls_are_allowed() {
        for ok in ["http://a", "HTTPS://a", "mailto:x@y.z"] {
            assert!(url_allowed(ok), "{ok}");
        }
        for bad in [
            "javascript:x",
            "/relative",
            "//host/x",
            "#frag",
            "data:x",
            "x",
        ] {
            assert!(!url_allowed(bad), "{bad}");
        }
    }
}
