//! Markdown (and OCR page markdown) to sections, with pulldown-cmark so setext headings,
//! code fences and front matter are understood as CommonMark defines them. Links keep their
//! text and lose their target; raw HTML is dropped.

use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};

use super::document::{Document, SectionBuilder};

/// Guesses whether UTF-8 text is Markdown rather than plain prose: a heading or a code fence
/// decides, otherwise two kinds of Markdown syntax must appear.
pub(super) fn looks_like_markdown(text: &str) -> bool {
    let mut signals = 0;
    let (mut list, mut link, mut emphasis, mut table, mut setext) =
        (false, false, false, false, false);
    let mut previous_was_text = false;
    for line in text.lines().take(2000) {
        let trimmed = line.trim_start();
        let hashes = trimmed.bytes().take_while(|&b| b == b'#').count();
        if (1..=6).contains(&hashes) && trimmed[hashes..].starts_with(' ') {
            return true;
        }
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            return true;
        }
        let stripped = trimmed.trim_end();
        if previous_was_text
            && !stripped.is_empty()
            && (stripped.bytes().all(|b| b == b'=') || stripped.bytes().all(|b| b == b'-'))
        {
            setext = true;
        }
        list |= trimmed.starts_with("- ")
            || trimmed.starts_with("* ")
            || trimmed.starts_with("+ ")
            || trimmed
                .split_once(". ")
                .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        link |= line.contains("](");
        emphasis |= line.contains("**") || line.contains("__") || line.contains('`');
        table |= trimmed.starts_with('|') && trimmed.contains("---");
        previous_was_text = !stripped.is_empty();
    }
    for seen in [list, link, emphasis, table, setext] {
        signals += usize::from(seen);
    }
    signals >= 2 || setext
}

/// Extracts a Markdown file.
pub(super) fn extract(text: &str, page: Option<u32>) -> Document {
    let mut builder = Builder {
        page,
        ..Builder::default()
    };
    builder.feed(text);
    builder.finish()
}

/// Feeds one or more Markdown texts (OCR pages) into one document.
#[derive(Debug, Default)]
pub(super) struct Builder {
    pub page: Option<u32>,
    sections: SectionBuilder,
}

impl Builder {
    pub fn feed(&mut self, text: &str) {
        self.sections.set_page(self.page);
        let options = Options::ENABLE_TABLES
            | Options::ENABLE_STRIKETHROUGH
            | Options::ENABLE_TASKLISTS
            | Options::ENABLE_YAML_STYLE_METADATA_BLOCKS
            | Options::ENABLE_PLUSES_DELIMITED_METADATA_BLOCKS;
        let mut state = State::default();
        for event in Parser::new_ext(text, options) {
            state.event(event, &mut self.sections);
        }
        state.flush_block(&mut self.sections);
    }

    pub fn finish(self) -> Document {
        self.sections.finish()
    }
}

#[derive(Default)]
struct State {
    buf: String,
    heading: Option<(u8, String)>,
    /// One entry per open list: the next number of an ordered list, `None` for bullets.
    lists: Vec<Option<u64>>,
    /// Prefix of the list item being written (`- `, `3. `), with its indentation.
    item_prefix: Option<String>,
    in_code: bool,
    in_metadata: bool,
    row: Vec<String>,
    in_cell: bool,
    last_was_line: bool,
}

impl State {
    fn target(&mut self) -> &mut String {
        match &mut self.heading {
            Some((_, heading)) => heading,
            None => &mut self.buf,
        }
    }

    /// Emits the pending paragraph or list item.
    fn flush_block(&mut self, out: &mut SectionBuilder) {
        let text = std::mem::take(&mut self.buf);
        let text = text.trim();
        if text.is_empty() {
            return;
        }
        match self.item_prefix.take() {
            Some(prefix) => {
                out.block(&format!("{prefix}{text}"), self.last_was_line);
                self.last_was_line = true;
            }
            None => {
                out.block(text, false);
                self.last_was_line = false;
            }
        }
    }

    fn event(&mut self, event: Event<'_>, out: &mut SectionBuilder) {
        match event {
            Event::Start(Tag::MetadataBlock(_)) => self.in_metadata = true,
            Event::End(TagEnd::MetadataBlock(_)) => self.in_metadata = false,
            _ if self.in_metadata => {}
            Event::Start(Tag::Heading { level, .. }) => {
                self.flush_block(out);
                self.heading = Some((heading_level(level), String::new()));
            }
            Event::End(TagEnd::Heading(_)) => {
                if let Some((level, text)) = self.heading.take() {
                    out.heading(level, &text);
                    self.last_was_line = false;
                }
            }
            Event::Start(Tag::List(first)) => {
                self.flush_block(out);
                self.lists.push(first);
            }
            Event::End(TagEnd::List(_)) => {
                self.flush_block(out);
                self.lists.pop();
                if self.lists.is_empty() {
                    self.last_was_line = false;
                }
            }
            Event::Start(Tag::Item) => {
                self.flush_block(out);
                let depth = self.lists.len().saturating_sub(1);
                let marker = match self.lists.last_mut() {
                    Some(Some(n)) => {
                        *n += 1;
                        format!("{}. ", *n - 1)
                    }
                    _ => "- ".to_owned(),
                };
                self.item_prefix = Some(format!("{}{marker}", "  ".repeat(depth)));
            }
            Event::End(TagEnd::Item) => self.flush_block(out),
            Event::End(TagEnd::Paragraph) => {
                if self.item_prefix.is_some() || !self.lists.is_empty() {
                    self.buf.push(' ');
                } else {
                    self.flush_block(out);
                }
            }
            Event::Start(Tag::CodeBlock(_)) => {
                self.flush_block(out);
                self.in_code = true;
            }
            Event::End(TagEnd::CodeBlock) => {
                self.in_code = false;
                let code = std::mem::take(&mut self.buf);
                out.block(&format!("```\n{}\n```", code.trim_end()), false);
                self.last_was_line = false;
            }
            Event::Start(Tag::TableCell) => self.in_cell = true,
            Event::End(TagEnd::TableCell) => {
                self.in_cell = false;
                self.row
                    .push(std::mem::take(&mut self.buf).trim().to_owned());
            }
            Event::End(TagEnd::TableHead | TagEnd::TableRow) => {
                let row = std::mem::take(&mut self.row).join(" | ");
                out.block(&row, self.last_was_line);
                self.last_was_line = true;
            }
            Event::End(TagEnd::Table) => self.last_was_line = false,
            Event::Text(text) | Event::Code(text) => self.target().push_str(&text),
            Event::InlineMath(text) | Event::DisplayMath(text) => self.target().push_str(&text),
            Event::SoftBreak => {
                let in_code = self.in_code;
                self.target().push(if in_code { '\n' } else { ' ' });
            }
            Event::HardBreak => self.target().push('\n'),
            Event::TaskListMarker(done) => {
                self.target().push_str(if done { "[x] " } else { "[ ] " });
            }
            // Raw HTML, rules, footnote markers: no text worth keeping.
            _ => {}
        }
    }
}

fn heading_level(level: HeadingLevel) -> u8 {
    match level {
        HeadingLevel::H1 => 1,
        HeadingLevel::H2 => 2,
        HeadingLevel::H3 => 3,
        HeadingLevel::H4 => 4,
        HeadingLevel::H5 => 5,
        HeadingLevel::H6 => 6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headings_become_paths_and_blocks_keep_their_shape() {
        let doc = extract(
            "---\ntitle: hidden front matter\n---\n\
             Intro before any heading.\n\n\
             # Guide\n\nWelcome to the *guide*, see [the docs](https://x.test).\n\n\
             ## Install\n\n- first step\n- second step\n  - nested detail\n\n1. one\n2. two\n\n\
             ```sh\ncargo install parlo\n```\n\n\
             ### Options\n\n| Name | Default |\n|------|---------|\n| port | 8080 |\n\n\
             ## Usage\nSetext below\n\nRun\n===\n\nText under setext.\n",
            None,
        );
        assert_eq!(doc.title.as_deref(), Some("Guide"));
        assert_eq!(
            doc.outline(),
            vec![
                ("".into(), "Intro before any heading.".into()),
                (
                    "Guide".into(),
                    "Welcome to the guide, see the docs.".into()
                ),
                (
                    "Guide > Install".into(),
                    "- first step\n- second step\n  - nested detail\n\n1. one\n2. two\n\n```\ncargo install parlo\n```"
                        .into()
                ),
                (
                    "Guide > Install > Options".into(),
                    "Name | Default\nport | 8080".into()
                ),
                ("Guide > Usage".into(), "Setext below".into()),
                ("Run".into(), "Text under setext.".into()),
            ]
        );
    }

    #[test]
    fn markdown_is_told_from_prose() {
        assert!(looks_like_markdown("# Title\nbody"));
        assert!(looks_like_markdown("Intro\n\n```\ncode\n```"));
        assert!(looks_like_markdown("- a list\n- with a [link](x)"));
        assert!(looks_like_markdown("Title\n=====\n\ntext"));
        assert!(!looks_like_markdown(
            "Dear customer,\n\nthank you for your order #123.\nRegards"
        ));
    }
}
