//! Cuts a [`Document`] into retrieval chunks that follow its structure: a chunk never spans
//! two sections (so its heading path and page are true for all of its text), is bounded in
//! size, prefers paragraph, then line, then sentence boundaries, never cuts inside a word
//! (except a single "word" longer than a whole chunk, such as an inline blob), and repeats
//! the end of the previous chunk of the same section so a sentence that straddles a cut can
//! still be found. Each chunk carries the SHA-256 of exactly what gets embedded, so an
//! unchanged chunk is recognised and not embedded again.

use sha2::{Digest, Sha256};

use super::extract::Document;

/// Sizes in characters (not bytes: sizes are about how much text a model reads).
#[derive(Debug, Clone, Copy)]
pub struct ChunkConfig {
    /// A chunk is closed at the first boundary past this size.
    pub target: usize,
    /// No chunk is longer, overlap included.
    pub max: usize,
    /// Characters of the previous chunk repeated at the start of the next one.
    pub overlap: usize,
}

impl Default for ChunkConfig {
    fn default() -> Self {
        Self {
            target: 1200,
            max: 1500,
            overlap: 200,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Position in the document, from 0.
    pub ordinal: usize,
    pub heading_path: Vec<String>,
    pub page: Option<u32>,
    pub text: String,
    /// Hex SHA-256 of [`Chunk::embedding_input`].
    pub hash: String,
}

impl Chunk {
    /// What is embedded and indexed: the heading path gives the text its context ("Billing >
    /// Refunds" tells what "within 30 days" is about).
    pub fn embedding_input(&self) -> String {
        embedding_input(&self.heading_path, &self.text)
    }
}

fn embedding_input(heading_path: &[String], text: &str) -> String {
    if heading_path.is_empty() {
        text.to_owned()
    } else {
        format!("{}\n\n{text}", heading_path.join(" > "))
    }
}

/// Chunks every section of `document` in order.
pub fn chunk_document(document: &Document, config: &ChunkConfig) -> Vec<Chunk> {
    let config = ChunkConfig {
        max: config.max.max(16),
        target: config.target.clamp(1, config.max.max(16)),
        // Overlap must leave room for new text in every chunk.
        overlap: config.overlap.min(config.max.max(16) / 3),
    };
    let mut chunks = Vec::new();
    for section in &document.sections {
        for text in chunk_text(&section.text, &config) {
            let hash = hex::encode(Sha256::digest(
                embedding_input(&section.heading_path, &text).as_bytes(),
            ));
            chunks.push(Chunk {
                ordinal: chunks.len(),
                heading_path: section.heading_path.clone(),
                page: section.page,
                text,
                hash,
            });
        }
    }
    chunks
}

/// A piece of text that is never split further, with what separated it from the previous
/// piece in the source.
#[derive(Debug, Clone, Copy)]
struct Unit<'a> {
    sep: &'a str,
    text: &'a str,
}

fn len(s: &str) -> usize {
    s.chars().count()
}

/// Splits `text` into units no longer than `limit`, at the coarsest boundary that works.
fn units<'a>(text: &'a str, limit: usize, out: &mut Vec<Unit<'a>>, sep: &'a str) {
    let text = text.trim();
    if text.is_empty() {
        return;
    }
    if len(text) <= limit {
        out.push(Unit { sep, text });
        return;
    }
    // Paragraphs, then lines, then sentences, then words.
    for (splitter, joiner) in [
        (split_on(text, "\n\n"), "\n\n"),
        (split_on(text, "\n"), "\n"),
        (sentences(text), " "),
        (text.split_whitespace().collect(), " "),
    ] {
        if splitter.len() > 1 {
            for (i, part) in splitter.into_iter().enumerate() {
                units(part, limit, out, if i == 0 { sep } else { joiner });
            }
            return;
        }
    }
    // One word longer than a chunk: cut at character boundaries, the only way it fits.
    let mut rest = text;
    let mut first = true;
    while !rest.is_empty() {
        let cut = rest
            .char_indices()
            .nth(limit)
            .map_or(rest.len(), |(i, _)| i);
        out.push(Unit {
            sep: if first { sep } else { "" },
            text: &rest[..cut],
        });
        rest = &rest[cut..];
        first = false;
    }
}

fn split_on<'a>(text: &'a str, sep: &str) -> Vec<&'a str> {
    text.split(sep).filter(|p| !p.trim().is_empty()).collect()
}

/// Sentences end with `.`, `!`, `?` or `…` (optionally followed by a closing quote or
/// bracket) and whitespace. Abbreviations may cause an early cut, which costs nothing here:
/// the pieces are packed back together up to the target size.
fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if matches!(c, '.' | '!' | '?' | '…') {
            let mut end = i + c.len_utf8();
            while let Some(&(j, q)) = chars.peek() {
                if matches!(q, '"' | '\'' | ')' | ']' | '»' | '”' | '’') {
                    end = j + q.len_utf8();
                    chars.next();
                } else {
                    break;
                }
            }
            if chars.peek().is_some_and(|&(_, n)| n.is_whitespace()) {
                out.push(&text[start..end]);
                start = end;
            }
        }
    }
    out.push(&text[start..]);
    out.into_iter()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// The chunks of one section's text.
fn chunk_text(text: &str, config: &ChunkConfig) -> Vec<String> {
    let mut pieces = Vec::new();
    // Room for the overlap and a paragraph separator ("\n\n") next to any unit.
    // Paragraphs are always units of their own (the packer joins them back up to the
    // target), so a cut falls between paragraphs whenever one is in reach.
    for (i, paragraph) in split_on(text, "\n\n").into_iter().enumerate() {
        let sep = if i == 0 { "" } else { "\n\n" };
        units(paragraph, config.max - config.overlap - 2, &mut pieces, sep);
    }
    let mut chunks: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut has_new = false;
    for unit in pieces {
        let joined = len(&current) + len(unit.sep) + len(unit.text);
        if has_new && joined > config.target {
            let overlap = overlap_tail(&current, config.overlap);
            chunks.push(std::mem::take(&mut current));
            current = overlap;
        }
        if !current.is_empty() {
            // After an overlap the original separator is kept if it was a paragraph break.
            current.push_str(if unit.sep.is_empty() && !has_new {
                " "
            } else {
                unit.sep
            });
        }
        current.push_str(unit.text);
        has_new = true;
    }
    if has_new {
        chunks.push(current);
    }
    chunks
}

/// The end of `chunk`, at most `overlap` characters, starting at a sentence start when one
/// is in range, else at a word start.
fn overlap_tail(chunk: &str, overlap: usize) -> String {
    if overlap == 0 {
        return String::new();
    }
    let total = len(chunk);
    if total <= overlap {
        return String::new();
    }
    let from = chunk
        .char_indices()
        .nth(total - overlap)
        .map_or(chunk.len(), |(i, _)| i);
    let window = &chunk[from..];
    let sentence_start = window
        .char_indices()
        .find(|&(i, c)| {
            c.is_whitespace() && window[..i].trim_end().ends_with(['.', '!', '?', '…', '\n'])
        })
        .map(|(i, _)| i);
    // The window may begin mid-word: skip to the first whitespace at least.
    let word_start = window.find(char::is_whitespace);
    match sentence_start.or(word_start) {
        Some(i) => window[i..].trim().to_owned(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::knowledge::extract::Section;

    fn doc(sections: &[(&[&str], Option<u32>, &str)]) -> Document {
        Document {
            title: None,
            sections: sections
                .iter()
                .map(|(path, page, text)| Section {
                    heading_path: path.iter().map(|s| (*s).to_owned()).collect(),
                    page: *page,
                    text: (*text).to_owned(),
                })
                .collect(),
        }
    }

    /// Deterministic prose: numbered words, sentences of 12 words, paragraphs of 6 sentences.
    fn prose(words: usize) -> String {
        let mut text = String::new();
        for i in 0..words {
            if i > 0 {
                text.push_str(if i % 72 == 0 {
                    ".\n\n"
                } else if i % 12 == 0 {
                    ". "
                } else {
                    " "
                });
            }
            text.push_str(&format!("word{i}"));
        }
        text.push('.');
        text
    }

    #[test]
    fn small_sections_are_one_chunk_each_with_structure_and_hash() {
        let chunks = chunk_document(
            &doc(&[
                (&["Guide", "Install"], Some(3), "Run the installer."),
                (&["Guide", "Usage"], Some(4), "Open the app."),
            ]),
            &ChunkConfig::default(),
        );
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[0].heading_path, vec!["Guide", "Install"]);
        assert_eq!(chunks[0].page, Some(3));
        assert_eq!(chunks[1].ordinal, 1);
        assert_eq!(
            chunks[0].embedding_input(),
            "Guide > Install\n\nRun the installer."
        );
        assert_eq!(
            chunks[0].hash,
            hex::encode(Sha256::digest(b"Guide > Install\n\nRun the installer."))
        );
    }

    #[test]
    fn hash_changes_with_text_or_heading_and_only_then() {
        let a = chunk_document(
            &doc(&[(&["A"], None, "Same text.")]),
            &ChunkConfig::default(),
        );
        let b = chunk_document(
            &doc(&[(&["A"], None, "Same text.")]),
            &ChunkConfig::default(),
        );
        let c = chunk_document(
            &doc(&[(&["B"], None, "Same text.")]),
            &ChunkConfig::default(),
        );
        let d = chunk_document(
            &doc(&[(&["A"], None, "Same text!")]),
            &ChunkConfig::default(),
        );
        assert_eq!(a[0].hash, b[0].hash);
        assert_ne!(a[0].hash, c[0].hash);
        assert_ne!(a[0].hash, d[0].hash);
    }

    #[test]
    fn long_sections_are_bounded_overlapping_and_never_cut_words() {
        let config = ChunkConfig::default();
        let text = prose(2000);
        let chunks = chunk_document(&doc(&[(&["Long"], None, &text)]), &config);
        assert!(chunks.len() >= 10, "{}", chunks.len());
        let source_words: std::collections::HashSet<&str> = text
            .split_whitespace()
            .map(|w| w.trim_end_matches('.'))
            .collect();
        for chunk in &chunks {
            let n = len(&chunk.text);
            assert!(n <= config.max, "chunk of {n} chars");
            assert!(n >= config.target / 2, "chunk of {n} chars is too small");
            for word in chunk.text.split_whitespace() {
                assert!(
                    source_words.contains(word.trim_end_matches('.')),
                    "split word {word:?}"
                );
            }
        }
        for pair in chunks.windows(2) {
            let first_word = pair[1].text.split_whitespace().next().unwrap();
            let overlap_at = pair[0].text.rfind(first_word).expect("overlap");
            assert!(
                pair[0].text.len() - overlap_at <= config.overlap + 20,
                "overlap too long"
            );
            // The overlap begins a sentence: the word before it ends one.
            assert!(pair[0].text[..overlap_at].trim_end().ends_with('.'));
        }
        // Every word of the source is in some chunk, in order.
        let mut last = 0;
        for i in 0..2000 {
            let word = format!("word{i}");
            let at = (last..chunks.len())
                .find(|&c| {
                    chunks[c]
                        .text
                        .split_whitespace()
                        .any(|w| w.trim_end_matches('.') == word)
                })
                .unwrap_or_else(|| panic!("{word} lost"));
            last = at;
        }
    }

    #[test]
    fn paragraph_boundaries_are_preferred() {
        let para = |c: char| {
            (0..150)
                .map(|i| format!("{c}{i}"))
                .collect::<Vec<_>>()
                .join(" ")
                + "."
        };
        let (a, b) = (para('a'), para('b'));
        assert!(len(&a) > 400);
        let config = ChunkConfig {
            target: len(&a) + 50,
            max: 1500,
            overlap: 0,
        };
        let chunks = chunk_document(&doc(&[(&[], None, &format!("{a}\n\n{b}"))]), &config);
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[0].text, a);
        assert_eq!(chunks[1].text, b);
    }

    #[test]
    fn overlap_never_crosses_sections() {
        let text = prose(600);
        let chunks = chunk_document(
            &doc(&[(&["One"], None, &text), (&["Two"], None, "Second section.")]),
            &ChunkConfig::default(),
        );
        let last = chunks.last().unwrap();
        assert_eq!(last.heading_path, vec!["Two"]);
        assert_eq!(last.text, "Second section.");
    }

    #[test]
    fn a_giant_word_is_cut_only_because_it_must_be() {
        let blob = "x".repeat(4000);
        let config = ChunkConfig::default();
        let chunks = chunk_document(
            &doc(&[(&[], None, &format!("Before. {blob} After."))]),
            &config,
        );
        assert!(chunks.iter().all(|c| len(&c.text) <= config.max));
        let xs: usize = chunks.iter().map(|c| c.text.matches('x').count()).sum();
        assert!(xs >= 4000);
        assert!(chunks[0].text.starts_with("Before."));
        assert!(chunks.last().unwrap().text.ends_with("After."));
    }

    #[test]
    fn multibyte_text_is_measured_in_characters() {
        let text = "Ça coûte 10 €. ".repeat(300);
        let config = ChunkConfig::default();
        let chunks = chunk_document(&doc(&[(&[], None, &text)]), &config);
        assert!(chunks.len() > 2);
        assert!(chunks.iter().all(|c| len(&c.text) <= config.max));
    }
}
