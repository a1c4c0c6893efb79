//! Server-Sent Events framing for the answer stream.
//!
//! Owns turning the bytes of a `fetch` body into `event`/`data` records. It works on bytes,
//! not strings, so a UTF-8 character split across two network chunks is never mangled
//! (a newline byte can never sit inside a multi-byte character). It knows nothing about
//! what the events mean; `client` does.

/// One dispatched event: its `event:` name (`message` when absent) and its joined `data:` lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub event: String,
    pub data: String,
}

/// Incremental parser: feed chunks with [`SseParser::push`], collect complete events.
#[derive(Debug, Default)]
pub struct SseParser {
    pending: Vec<u8>,
    event: String,
    data: Vec<String>,
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next chunk of the body; returns the events it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        self.pending.extend_from_slice(chunk);
        let mut out = Vec::new();
        let mut start = 0;
        while let Some(pos) = self.pending[start..].iter().position(|&b| b == b'\n') {
            let end = start + pos;
            let mut line = &self.pending[start..end];
            if let [rest @ .., b'\r'] = line {
                line = rest;
            }
            let line = String::from_utf8_lossy(line).into_owned();
            if let Some(event) = self.line(&line) {
                out.push(event);
            }
            start = end + 1;
        }
        self.pending.drain(..start);
        out
    }

    fn line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            if self.data.is_empty() {
                self.event.clear();
                return None;
            }
            let event = if self.event.is_empty() {
                "message".to_owned()
            } else {
                std::mem::take(&mut self.event)
            };
            let data = std::mem::take(&mut self.data).join("\n");
            return Some(SseEvent { event, data });
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = value.to_owned(),
            "data" => self.data.push(value.to_owned()),
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(parser: &mut SseParser, chunks: &[&[u8]]) -> Vec<SseEvent> {
        chunks.iter().flat_map(|c| parser.push(c)).collect()
    }

    #[test]
    fn named_events_with_data() {
        let mut p = SseParser::new();
        let got = all(
            &mut p,
            &[b"event: delta\ndata: {\"text\":\"Hi\"}\n\nevent: done\ndata: {}\n\n"],
        );
        assert_eq!(
            got,
            vec![
                SseEvent {
                    event: "delta".into(),
                    data: "{\"text\":\"Hi\"}".into()
                },
                SseEvent {
                    event: "done".into(),
                    data: "{}".into()
                },
            ]
        );
    }

    #[test]
    fn multibyte_character_split_across_chunks() {
        let text = "event: delta\ndata: {\"text\":\"Grüße ∑\"}\n\n".as_bytes();
        for cut in 0..text.len() {
            let mut p = SseParser::new();
            let got = all(&mut p, &[&text[..cut], &text[cut..]]);
            assert_eq!(got.len(), 1, "cut at {cut}");
            assert_eq!(got[0].data, "{\"text\":\"Grüße ∑\"}");
        }
    }

    #[test]
    fn crlf_comments_and_multiline_data() {
        let mut p = SseParser::new();
        let got = all(&mut p, &[b": keep-alive\r\n\r\ndata: a\r\ndata: b\r\n\r\n"]);
        assert_eq!(
            got,
            vec![SseEvent {
                event: "message".into(),
                data: "a\nb".into()
            }]
        );
    }

    #[test]
    fn incomplete_event_is_held_back() {
        let mut p = SseParser::new();
        assert!(p.push(b"event: delta\ndata: x\n").is_empty());
        assert_eq!(p.push(b"\n").len(), 1);
    }
}
