//! Turns an uploaded or fetched file into structured text. The type is decided by the bytes
//! (magic numbers, then text sniffing), never by a file name or an extension a tenant chose.
//! PDFs and images are only recognised and checked here: reading them is Mistral OCR's job,
//! which the caller does with the returned MIME type and then hands the page markdown back
//! to [`Document::from_ocr_pages`]. Nothing here does I/O.

mod document;
mod docx;
mod html;
mod markdown;
mod pdf;

pub use document::{Document, ExtractError, Section};
pub use docx::ZipLimits;

/// What the bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentKind {
    Pdf,
    Png,
    Jpeg,
    Webp,
    Docx,
    Html,
    Markdown,
    PlainText,
}

impl ContentKind {
    pub fn mime(self) -> &'static str {
        match self {
            Self::Pdf => "application/pdf",
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
            Self::Webp => "image/webp",
            Self::Docx => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            Self::Html => "text/html",
            Self::Markdown => "text/markdown",
            Self::PlainText => "text/plain",
        }
    }
}

/// The outcome of extraction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Extracted {
    Text(Document),
    /// A checked PDF or image: send it to OCR with this MIME type (what
    /// `mistral::OcrInput::content_type` expects).
    NeedsOcr {
        mime: &'static str,
    },
}

/// Decides what `bytes` are from their content alone.
pub fn sniff(bytes: &[u8]) -> Result<ContentKind, ExtractError> {
    if bytes.is_empty() {
        return Err(ExtractError::Empty);
    }
    if pdf::looks_like_pdf(bytes) {
        return Ok(ContentKind::Pdf);
    }
    if let Some(kind) = infer::get(bytes) {
        return match kind.mime_type() {
            "image/png" => Ok(ContentKind::Png),
            "image/jpeg" => Ok(ContentKind::Jpeg),
            "image/webp" => Ok(ContentKind::Webp),
            // Office files are ZIP archives; whether it is Word is decided by its entries.
            "application/zip"
            | "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => {
                Ok(ContentKind::Docx)
            }
            "text/html" | "text/xml" | "application/xml" => text_kind(bytes),
            other => Err(ExtractError::Unsupported(format!("a file of type {other}"))),
        };
    }
    text_kind(bytes)
}

fn text_kind(bytes: &[u8]) -> Result<ContentKind, ExtractError> {
    let text = decode_text(bytes)?;
    // A full HTML document says so at the top; a Markdown README may open with an HTML
    // banner (`<h1 align="center">`) and still be Markdown, so Markdown syntax wins over
    // a fragment that merely starts with a tag.
    Ok(if html::is_html_document(text) {
        ContentKind::Html
    } else if markdown::looks_like_markdown(text) {
        ContentKind::Markdown
    } else if html::looks_like_html(text) {
        ContentKind::Html
    } else {
        ContentKind::PlainText
    })
}

/// UTF-8 text without its byte order mark; binary junk (NUL bytes, many control
/// characters) is refused rather than indexed as gibberish.
fn decode_text(bytes: &[u8]) -> Result<&str, ExtractError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if bytes.starts_with(b"\xFF\xFE") || bytes.starts_with(b"\xFE\xFF") {
        return Err(ExtractError::Unsupported("UTF-16 text".into()));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| ExtractError::NotText)?;
    let controls = text
        .chars()
        .filter(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t' | '\x0c'))
        .count();
    if text.contains('\0') || controls * 100 > text.chars().count() {
        return Err(ExtractError::NotText);
    }
    Ok(text)
}

/// Sniffs and extracts. `limits` bound what a DOCX may expand to.
pub fn extract(bytes: &[u8], limits: &ZipLimits) -> Result<Extracted, ExtractError> {
    let kind = sniff(bytes)?;
    let document = match kind {
        ContentKind::Pdf => {
            pdf::check(bytes)?;
            return Ok(Extracted::NeedsOcr { mime: kind.mime() });
        }
        ContentKind::Png | ContentKind::Jpeg | ContentKind::Webp => {
            return Ok(Extracted::NeedsOcr { mime: kind.mime() });
        }
        ContentKind::Docx => docx::extract(bytes, limits)?,
        ContentKind::Html => html::extract(decode_text(bytes)?)?,
        ContentKind::Markdown => markdown::extract(decode_text(bytes)?, None),
        ContentKind::PlainText => plain_text(decode_text(bytes)?),
    };
    if document.sections.iter().all(|s| s.text.trim().is_empty()) {
        return Err(ExtractError::NoText);
    }
    Ok(Extracted::Text(document))
}

impl Document {
    /// Builds a document from OCR output: one markdown string per page, in order, numbered
    /// from 1. Headings carry over page breaks, as they do in the printed document.
    pub fn from_ocr_pages<S: AsRef<str>>(pages: &[S]) -> Self {
        let mut builder = markdown::Builder::default();
        for (i, page) in pages.iter().enumerate() {
            builder.page = Some(i as u32 + 1);
            builder.feed(page.as_ref());
        }
        builder.finish()
    }
}

/// Plain text: paragraphs under no heading.
fn plain_text(text: &str) -> Document {
    let mut paragraphs = Vec::new();
    for block in text.replace("\r\n", "\n").split("\n\n") {
        let block = block.trim();
        if !block.is_empty() {
            paragraphs.push(block.to_owned());
        }
    }
    Document {
        title: None,
        sections: vec![Section {
            heading_path: Vec::new(),
            page: None,
            text: paragraphs.join("\n\n"),
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_is_decided_by_content() {
        assert_eq!(sniff(b"%PDF-1.7\n...").unwrap(), ContentKind::Pdf);
        assert_eq!(
            sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR").unwrap(),
            ContentKind::Png
        );
        assert_eq!(
            sniff(b"\xFF\xD8\xFF\xE0\0\x10JFIF\0").unwrap(),
            ContentKind::Jpeg
        );
        assert_eq!(
            sniff(b"RIFF\x24\0\0\0WEBPVP8 \x18\0\0\0").unwrap(),
            ContentKind::Webp
        );
        assert_eq!(
            sniff(b"<!DOCTYPE html><html><body><p>x</p></body></html>").unwrap(),
            ContentKind::Html
        );
        assert_eq!(
            sniff(b"# Title\n\nSome *text* and a [link](https://x.test).").unwrap(),
            ContentKind::Markdown
        );
        assert_eq!(
            sniff(b"Just a note.\nTwo lines.").unwrap(),
            ContentKind::PlainText
        );
        // A GIF named .txt by someone is still a GIF, and not supported.
        let err = sniff(b"GIF89a\x01\0\x01\0\x80\0\0").unwrap_err();
        assert!(matches!(err, ExtractError::Unsupported(_)), "{err:?}");
        assert_eq!(sniff(b""), Err(ExtractError::Empty));
    }

    #[test]
    fn images_and_pdfs_need_ocr() {
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01";
        assert_eq!(
            extract(png, &ZipLimits::default()).unwrap(),
            Extracted::NeedsOcr { mime: "image/png" }
        );
        let pdf = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n";
        assert_eq!(
            extract(pdf, &ZipLimits::default()).unwrap(),
            Extracted::NeedsOcr {
                mime: "application/pdf"
            }
        );
    }

    #[test]
    fn text_with_a_bom_is_read_and_binary_junk_refused() {
        let Extracted::Text(doc) = extract(
            b"\xEF\xBB\xBFHello there.\r\n\r\nSecond.",
            &ZipLimits::default(),
        )
        .unwrap() else {
            panic!("text expected")
        };
        assert_eq!(doc.sections[0].text, "Hello there.\n\nSecond.");
        assert_eq!(
            extract(b"abc\0\x01\x02\x03def", &ZipLimits::default()),
            Err(ExtractError::NotText)
        );
        assert_eq!(
            extract(b"\xC3\x28 invalid utf8 \xFF", &ZipLimits::default()),
            Err(ExtractError::NotText)
        );
        let junk: Vec<u8> = (0u8..32).cycle().take(400).collect();
        assert!(extract(&junk, &ZipLimits::default()).is_err());
        assert!(matches!(
            extract(b"\xFF\xFEh\0i\0", &ZipLimits::default()),
            Err(ExtractError::Unsupported(_))
        ));
        assert_eq!(
            extract(b"  \n\n \t ", &ZipLimits::default()),
            Err(ExtractError::NoText)
        );
    }

    #[test]
    fn ocr_pages_keep_page_numbers_and_headings_across_pages() {
        let doc = Document::from_ocr_pages(&[
            "# Manual\n\nIntro text.\n\n## Setup\n\nStep one.",
            "Step two continues.\n\n## Usage\n\nRun it.",
        ]);
        assert_eq!(doc.title.as_deref(), Some("Manual"));
        let got: Vec<_> = doc
            .sections
            .iter()
            .map(|s| (s.heading_path.join(" > "), s.page, s.text.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("Manual".into(), Some(1), "Intro text."),
                ("Manual > Setup".into(), Some(1), "Step one."),
                ("Manual > Setup".into(), Some(2), "Step two continues."),
                ("Manual > Usage".into(), Some(2), "Run it."),
            ]
        );
    }
}
