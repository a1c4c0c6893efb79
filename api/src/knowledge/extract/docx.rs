//! DOCX: a ZIP archive whose `word/document.xml` holds the text. Headings come from the
//! paragraph style — resolved through `word/styles.xml`, because style *ids* are localised
//! ("Überschrift1") while style *names* of built-in headings are always "heading N" — or
//! from an explicit outline level. Lists become `- item`, tables `a | b` rows.
//!
//! A ZIP can claim small sizes and expand to gigabytes, so every entry is read through a
//! counting limit (bytes actually inflated, not the sizes the archive declares), and the
//! number of entries and the expansion ratio are capped before anything is inflated.

use std::collections::HashMap;
use std::io::{Cursor, Read};

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};
use zip::ZipArchive;

use super::document::{Document, ExtractError, SectionBuilder};

/// Bounds on what a DOCX may expand to.
#[derive(Debug, Clone, Copy)]
pub struct ZipLimits {
    /// Total bytes inflated across the entries read.
    pub max_uncompressed_bytes: u64,
    pub max_entries: usize,
    /// Declared uncompressed/compressed size of an entry; real documents stay far below 100.
    pub max_ratio: u64,
}

impl Default for ZipLimits {
    fn default() -> Self {
        Self {
            max_uncompressed_bytes: 50 * 1024 * 1024,
            max_entries: 5_000,
            max_ratio: 200,
        }
    }
}

pub(super) fn extract(bytes: &[u8], limits: &ZipLimits) -> Result<Document, ExtractError> {
    let mut archive = ZipArchive::new(Cursor::new(bytes))
        .map_err(|_| ExtractError::DocxCorrupt("not a readable ZIP archive".into()))?;
    if archive.len() > limits.max_entries {
        return Err(ExtractError::ArchiveTooLarge(format!(
            "{} entries, the limit is {}",
            archive.len(),
            limits.max_entries
        )));
    }
    if archive.index_for_name("word/document.xml").is_none() {
        return Err(ExtractError::Unsupported(
            "a ZIP archive that is not a Word document".into(),
        ));
    }
    let mut budget = limits.max_uncompressed_bytes;
    let styles = match read_entry(&mut archive, "word/styles.xml", limits, &mut budget)? {
        Some(xml) => heading_styles(&xml)?,
        None => HashMap::new(),
    };
    let document = read_entry(&mut archive, "word/document.xml", limits, &mut budget)?
        .ok_or_else(|| ExtractError::DocxCorrupt("word/document.xml is missing".into()))?;
    parse_document(&document, &styles)
}

/// Reads one entry, inflating at most what is left of `budget`.
fn read_entry(
    archive: &mut ZipArchive<Cursor<&[u8]>>,
    name: &str,
    limits: &ZipLimits,
    budget: &mut u64,
) -> Result<Option<Vec<u8>>, ExtractError> {
    let entry = match archive.by_name(name) {
        Ok(entry) => entry,
        Err(zip::result::ZipError::FileNotFound) => return Ok(None),
        Err(_) => return Err(ExtractError::DocxCorrupt(format!("{name} cannot be read"))),
    };
    let (size, compressed) = (entry.size(), entry.compressed_size().max(1));
    if size / compressed > limits.max_ratio {
        return Err(ExtractError::ArchiveTooLarge(format!(
            "{name} expands {}×",
            size / compressed
        )));
    }
    let mut out = Vec::new();
    // One byte more than allowed tells "exactly at the limit" from "over it".
    entry
        .take(*budget + 1)
        .read_to_end(&mut out)
        .map_err(|_| ExtractError::DocxCorrupt(format!("{name} is damaged")))?;
    if out.len() as u64 > *budget {
        return Err(ExtractError::ArchiveTooLarge(format!(
            "more than {} MiB of text",
            limits.max_uncompressed_bytes / (1024 * 1024)
        )));
    }
    *budget -= out.len() as u64;
    Ok(Some(out))
}

/// Heading level by style id (0 = the document title style).
fn heading_styles(xml: &[u8]) -> Result<HashMap<String, u8>, ExtractError> {
    let mut reader = Reader::from_reader(xml);
    let mut levels = HashMap::new();
    let mut current: Option<String> = None;
    let mut buf = Vec::new();
    loop {
        let event = reader
            .read_event_into(&mut buf)
            .map_err(|_| ExtractError::DocxCorrupt("word/styles.xml is not valid XML".into()))?;
        match event {
            Event::Start(e) | Event::Empty(e) => match e.local_name().as_ref() {
                "style" => current = attr(&e, "styleId"),
                "name" => {
                    if let (Some(id), Some(name)) = (&current, attr(&e, "val")) {
                        let name = name.to_ascii_lowercase();
                        if name == "title" {
                            levels.insert(id.clone(), 0);
                        } else if let Some(n) = name.strip_prefix("heading ")
                            && let Ok(n @ 1..=6) = n.trim().parse::<u8>()
                        {
                            levels.insert(id.clone(), n);
                        }
                    }
                }
                "outlineLvl" => {
                    if let (Some(id), Some(Ok(n @ 0..=5))) =
                        (&current, attr(&e, "val").map(|v| v.parse::<u8>()))
                    {
                        levels.entry(id.clone()).or_insert(n + 1);
                    }
                }
                _ => {}
            },
            Event::End(e) if e.local_name().as_ref() == "style" => current = None,
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    Ok(levels)
}

fn attr(e: &BytesStart<'_>, local: &str) -> Option<String> {
    e.attributes().flatten().find_map(|a| {
        (a.key.local_name().as_ref() == local)
            .then(|| {
                a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                    .ok()
                    .map(|v| v.into_owned())
            })
            .flatten()
    })
}

/// What the paragraph being read is.
#[derive(Default)]
struct Paragraph {
    text: String,
    level: Option<u8>,
    list: bool,
}

fn parse_document(xml: &[u8], styles: &HashMap<String, u8>) -> Result<Document, ExtractError> {
    let mut reader = Reader::from_reader(xml);
    let mut out = SectionBuilder::default();
    let mut paragraph: Option<Paragraph> = None;
    // Open tables: the rows' cells being collected (tables can nest).
    let mut tables: Vec<Vec<String>> = Vec::new();
    let mut in_text = false;
    let mut last_was_line = false;
    let mut buf = Vec::new();
    loop {
        let event = reader
            .read_event_into(&mut buf)
            .map_err(|_| ExtractError::DocxCorrupt("word/document.xml is not valid XML".into()))?;
        match event {
            Event::Start(e) | Event::Empty(e) => match e.local_name().as_ref() {
                "p" => paragraph = Some(Paragraph::default()),
                "pStyle" => {
                    if let (Some(p), Some(id)) = (paragraph.as_mut(), attr(&e, "val")) {
                        p.level = styles.get(&id).copied().or_else(|| builtin_level(&id));
                    }
                }
                "outlineLvl" => {
                    if let (Some(p), Some(Ok(n @ 0..=5))) =
                        (paragraph.as_mut(), attr(&e, "val").map(|v| v.parse::<u8>()))
                    {
                        p.level = Some(n + 1);
                    }
                }
                "numPr" => {
                    if let Some(p) = paragraph.as_mut() {
                        p.list = true;
                    }
                }
                "t" => in_text = true,
                "tab" if paragraph.is_some() => push(&mut paragraph, "\t"),
                "br" | "cr" if paragraph.is_some() => push(&mut paragraph, "\n"),
                "tbl" => tables.push(Vec::new()),
                "tr" => {
                    if let Some(row) = tables.last_mut() {
                        row.clear();
                    }
                }
                _ => {}
            },
            Event::Text(t) if in_text => push(&mut paragraph, &t.xml10_content()),
            Event::GeneralRef(r) if in_text => {
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    _ => quick_xml::escape::resolve_xml_entity(&r)
                        .unwrap_or_default()
                        .to_owned(),
                };
                push(&mut paragraph, &resolved);
            }
            Event::End(e) => match e.local_name().as_ref() {
                "t" => in_text = false,
                "p" => {
                    let Some(p) = paragraph.take() else { continue };
                    let text = p.text.trim();
                    if let Some(row) = tables.last_mut() {
                        // A cell's paragraphs are joined; the cell ends at </w:tc>.
                        match row.last_mut() {
                            Some(cell) if !cell.is_empty() => {
                                cell.push(' ');
                                cell.push_str(text);
                            }
                            Some(cell) => cell.push_str(text),
                            None => row.push(text.to_owned()),
                        }
                    } else if let Some(level) = p.level {
                        if level == 0 {
                            out.title.get_or_insert_with(|| text.to_owned());
                        } else {
                            out.heading(level, text);
                        }
                        last_was_line = false;
                    } else if p.list {
                        out.block(&format!("- {text}"), last_was_line);
                        last_was_line = true;
                    } else {
                        out.block(text, false);
                        last_was_line = false;
                    }
                }
                "tc" => {
                    if let Some(row) = tables.last_mut() {
                        row.push(String::new());
                    }
                }
                "tr" => {
                    if let Some(row) = tables.last_mut() {
                        // Each </w:tc> opened an empty slot for the next cell: drop the last.
                        let cells: Vec<&str> = row
                            .iter()
                            .take(row.len().saturating_sub(1))
                            .map(|c| c.trim())
                            .collect();
                        let line = cells.join(" | ");
                        row.clear();
                        if !line.replace('|', "").trim().is_empty() {
                            out.block(&line, last_was_line);
                            last_was_line = true;
                        }
                    }
                }
                "tbl" => {
                    tables.pop();
                    last_was_line = false;
                }
                _ => {}
            },
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    Ok(out.finish())
}

fn push(paragraph: &mut Option<Paragraph>, text: &str) {
    if let Some(p) = paragraph.as_mut() {
        p.text.push_str(text);
    }
}

/// Headings in documents without `styles.xml` (generated by simple tools).
fn builtin_level(style_id: &str) -> Option<u8> {
    if style_id.eq_ignore_ascii_case("title") {
        return Some(0);
    }
    let n = style_id
        .strip_prefix("Heading")
        .or_else(|| style_id.strip_prefix("heading"))?;
    match n.trim().parse::<u8>() {
        Ok(n @ 1..=6) => Some(n),
        _ => None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::Write;

    use zip::write::SimpleFileOptions;

    use super::*;

    /// Builds a DOCX-shaped archive from (name, content) entries.
    pub(crate) fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let options =
            SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        for (name, content) in entries {
            zip.start_file(*name, options).unwrap();
            zip.write_all(content).unwrap();
        }
        zip.finish().unwrap().into_inner()
    }

    fn body(paragraphs: &str) -> Vec<u8> {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>{paragraphs}</w:body></w:document>"#
        )
        .into_bytes()
    }

    const STYLES: &[u8] = br#"<?xml version="1.0"?>
<w:styles xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">
<w:style w:type="paragraph" w:styleId="Titel"><w:name w:val="Title"/></w:style>
<w:style w:type="paragraph" w:styleId="berschrift1"><w:name w:val="heading 1"/><w:pPr><w:outlineLvl w:val="0"/></w:pPr></w:style>
<w:style w:type="paragraph" w:styleId="berschrift2"><w:name w:val="heading 2"/></w:style>
<w:style w:type="paragraph" w:styleId="Kapitel"><w:name w:val="Kapitel"/><w:pPr><w:outlineLvl w:val="2"/></w:pPr></w:style>
</w:styles>"#;

    fn p(style: Option<&str>, text: &str) -> String {
        let style = style
            .map(|s| format!(r#"<w:pPr><w:pStyle w:val="{s}"/></w:pPr>"#))
            .unwrap_or_default();
        format!(r#"<w:p>{style}<w:r><w:t xml:space="preserve">{text}</w:t></w:r></w:p>"#)
    }

    #[test]
    fn headings_lists_and_tables_survive() {
        let list_item = |t: &str| {
            format!(
                r#"<w:p><w:pPr><w:numPr><w:ilvl w:val="0"/><w:numId w:val="1"/></w:numPr></w:pPr><w:r><w:t>{t}</w:t></w:r></w:p>"#
            )
        };
        let cell = |t: &str| format!("<w:tc>{}</w:tc>", p(None, t));
        let doc = [
            p(Some("Titel"), "Handbuch"),
            p(Some("berschrift1"), "Einleitung"),
            p(None, "Erster Absatz &amp; mehr &#x2013; Text."),
            list_item("Punkt eins"),
            list_item("Punkt zwei"),
            p(Some("berschrift2"), "Details"),
            format!(
                "<w:tbl><w:tr>{}{}</w:tr><w:tr>{}{}</w:tr></w:tbl>",
                cell("Name"),
                cell("Wert"),
                cell("port"),
                cell("8080")
            ),
            p(Some("Kapitel"), "Tiefer"),
            r#"<w:p><w:r><w:t>Zeile</w:t><w:br/><w:t>Umbruch</w:t></w:r></w:p>"#.to_owned(),
            p(Some("Heading1"), "Anhang"),
            p(None, "Ende."),
        ]
        .concat();
        let docx = zip_of(&[
            ("[Content_Types].xml", b"<Types/>"),
            ("word/styles.xml", STYLES),
            ("word/document.xml", &body(&doc)),
        ]);
        let doc = extract(&docx, &ZipLimits::default()).unwrap();
        assert_eq!(doc.title.as_deref(), Some("Handbuch"));
        let got: Vec<_> = doc
            .sections
            .iter()
            .map(|s| (s.heading_path.join(" > "), s.text.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "Einleitung".into(),
                    "Erster Absatz & mehr – Text.\n\n- Punkt eins\n- Punkt zwei"
                ),
                ("Einleitung > Details".into(), "Name | Wert\nport | 8080"),
                ("Einleitung > Details > Tiefer".into(), "Zeile\nUmbruch"),
                ("Anhang".into(), "Ende."),
            ]
        );
    }

    #[test]
    fn corrupt_zip_is_a_clear_error() {
        let mut docx = zip_of(&[("word/document.xml", &body(&p(None, "hi")))]);
        docx.truncate(docx.len() / 2);
        assert!(matches!(
            extract(&docx, &ZipLimits::default()),
            Err(ExtractError::DocxCorrupt(_))
        ));
        let bad_xml = zip_of(&[("word/document.xml", b"<w:document><w:body><w:p></w:body>")]);
        assert!(matches!(
            extract(&bad_xml, &ZipLimits::default()),
            Err(ExtractError::DocxCorrupt(_))
        ));
        let not_word = zip_of(&[("xl/workbook.xml", b"<workbook/>")]);
        assert!(matches!(
            extract(&not_word, &ZipLimits::default()),
            Err(ExtractError::Unsupported(_))
        ));
    }

    #[test]
    fn zip_bomb_is_refused_by_ratio() {
        // 8 MB of one repeated paragraph compresses to a few kilobytes.
        let huge = body(&p(None, &"a".repeat(8 * 1024 * 1024)));
        let docx = zip_of(&[("word/document.xml", &huge)]);
        assert!(docx.len() < 100 * 1024, "{}", docx.len());
        let err = extract(&docx, &ZipLimits::default()).unwrap_err();
        assert!(matches!(err, ExtractError::ArchiveTooLarge(_)), "{err:?}");
    }

    #[test]
    fn zip_bomb_is_refused_by_bytes_actually_inflated() {
        // The ratio check is off here: the cap on bytes really read must stop it alone.
        let limits = ZipLimits {
            max_uncompressed_bytes: 1024 * 1024,
            max_ratio: u64::MAX,
            ..ZipLimits::default()
        };
        let huge = body(&p(None, &"b".repeat(3 * 1024 * 1024)));
        let docx = zip_of(&[("word/document.xml", &huge)]);
        let err = extract(&docx, &limits).unwrap_err();
        assert!(matches!(err, ExtractError::ArchiveTooLarge(_)), "{err:?}");
        // Exactly under the cap reads fine.
        let small = body(&p(None, &"c".repeat(1000)));
        assert!(extract(&zip_of(&[("word/document.xml", &small)]), &limits).is_ok());
    }

    #[test]
    fn too_many_entries_are_refused() {
        let names: Vec<String> = (0..30).map(|i| format!("word/media/{i}.bin")).collect();
        let mut entries: Vec<(&str, &[u8])> =
            names.iter().map(|n| (n.as_str(), &b"x"[..])).collect();
        let doc = body(&p(None, "hi"));
        entries.push(("word/document.xml", &doc));
        let limits = ZipLimits {
            max_entries: 10,
            ..ZipLimits::default()
        };
        assert!(matches!(
            extract(&zip_of(&entries), &limits),
            Err(ExtractError::ArchiveTooLarge(_))
        ));
    }
}
