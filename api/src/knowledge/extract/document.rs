//! What extraction produces, and what every reader shares: the [`Document`] of sections,
//! the [`ExtractError`] a customer sees, and the [`SectionBuilder`] that keeps the HTML, DOCX
//! and Markdown readers agreeing on structure.

use std::fmt;

/// Extracted text, in reading order, grouped by the headings it sits under.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Document {
    /// `<title>`, the DOCX title style, or the first top-level heading.
    pub title: Option<String>,
    pub sections: Vec<Section>,
}

#[cfg(test)]
impl Document {
    /// Each section as its heading path (joined with ` > `) and text, for assertions.
    pub(crate) fn outline(&self) -> Vec<(String, String)> {
        self.sections
            .iter()
            .map(|s| (s.heading_path.join(" > "), s.text.clone()))
            .collect()
    }
}

/// Text under one heading path (e.g. `["Install", "On Debian"]`), on one page when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub heading_path: Vec<String>,
    pub page: Option<u32>,
    /// Paragraphs separated by blank lines; lists as `- item`, tables as `a | b` rows.
    pub text: String,
}

/// Why a file cannot be used. `Display` is shown to the customer next to the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtractError {
    Empty,
    /// A recognised format we do not read (e.g. GIF, ZIP, XLSX), or unrecognisable bytes.
    Unsupported(String),
    PdfEncrypted,
    PdfMalformed(&'static str),
    DocxCorrupt(String),
    /// The archive would expand past the limits (a zip bomb, or just too big to read).
    ArchiveTooLarge(String),
    /// Bytes that are neither UTF-8 text nor a supported binary format.
    NotText,
    /// Parsed, but nothing readable was found (e.g. an HTML page that is all script).
    NoText,
}

impl fmt::Display for ExtractError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("the file is empty"),
            Self::Unsupported(what) => write!(
                f,
                "{what} is not supported: use PDF, PNG, JPEG, WebP, DOCX, Markdown, plain text or HTML"
            ),
            Self::PdfEncrypted => f.write_str(
                "the PDF is encrypted or password-protected: upload an unprotected copy",
            ),
            Self::PdfMalformed(why) => write!(f, "the PDF is damaged ({why})"),
            Self::DocxCorrupt(why) => write!(f, "the Word document is damaged ({why})"),
            Self::ArchiveTooLarge(why) => {
                write!(
                    f,
                    "the Word document expands too much to be read safely ({why})"
                )
            }
            Self::NotText => {
                f.write_str("the file is not readable text (only UTF-8 text is supported)")
            }
            Self::NoText => f.write_str("no readable text was found in the file"),
        }
    }
}

impl std::error::Error for ExtractError {}

/// Collects sections while walking a document: text goes to the current heading path, a
/// heading of level `n` replaces the path from level `n` down. Shared by the HTML, DOCX and
/// Markdown readers so they agree on structure.
#[derive(Debug, Default)]
pub(crate) struct SectionBuilder {
    /// (level, heading) from outermost to innermost.
    path: Vec<(u8, String)>,
    text: String,
    page: Option<u32>,
    sections: Vec<Section>,
    pub title: Option<String>,
}

impl SectionBuilder {
    pub fn heading(&mut self, level: u8, heading: &str) {
        let heading = collapse_spaces(heading);
        if heading.is_empty() {
            return;
        }
        self.flush();
        self.path.retain(|(l, _)| *l < level);
        self.path.push((level, heading));
    }

    pub fn set_page(&mut self, page: Option<u32>) {
        if page != self.page {
            self.flush();
            self.page = page;
        }
    }

    /// Appends one block (paragraph, list item, table row); blocks are separated by a
    /// blank line, consecutive list items and rows by a single newline.
    pub fn block(&mut self, block: &str, tight: bool) {
        let block = block.trim_end();
        if block.trim().is_empty() {
            return;
        }
        if !self.text.is_empty() {
            self.text.push_str(if tight { "\n" } else { "\n\n" });
        }
        self.text.push_str(block.trim_start_matches('\n'));
    }

    fn flush(&mut self) {
        let text = std::mem::take(&mut self.text);
        if text.trim().is_empty() {
            return;
        }
        self.sections.push(Section {
            heading_path: self.path.iter().map(|(_, h)| h.clone()).collect(),
            page: self.page,
            text,
        });
    }

    pub fn finish(mut self) -> Document {
        self.flush();
        let title = self.title.or_else(|| {
            self.sections
                .iter()
                .find_map(|s| s.heading_path.first().cloned())
        });
        Document {
            title,
            sections: self.sections,
        }
    }
}

/// Runs of whitespace become one space, as a browser shows them.
pub(crate) fn collapse_spaces(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
