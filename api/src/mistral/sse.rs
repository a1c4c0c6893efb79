//! An incremental Server-Sent Events decoder (the WHATWG event-stream grammar, data fields
//! only). Bytes arrive in whatever pieces TCP hands over; the decoder keeps the unfinished
//! tail and yields an event's data once its terminating blank line has arrived, so a line
//! or a UTF-8 character split across reads is reassembled before anything is parsed.
//!
//! It accepts `\n`, `\r\n` and a lone `\r` as line ends, joins several `data:` lines of one
//! event with `\n`, skips comments (`:`) and the `event`, `id` and `retry` fields, and drops
//! a leading byte-order mark. One event may not exceed [`MAX_EVENT_BYTES`], so an upstream
//! that never ends a line cannot make the server buffer without bound.

use std::collections::VecDeque;

/// The largest event (all of its lines) the decoder holds. Mistral's chunks are a few
/// hundred bytes; a megabyte leaves room for anything legitimate.
pub const MAX_EVENT_BYTES: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseError {
    /// An event grew past [`MAX_EVENT_BYTES`].
    TooLarge,
    /// A line is not UTF-8.
    NotUtf8,
}

impl std::fmt::Display for SseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SseError::TooLarge => write!(f, "an event exceeds {MAX_EVENT_BYTES} bytes"),
            SseError::NotUtf8 => write!(f, "an event is not valid UTF-8"),
        }
    }
}

#[derive(Debug, Default)]
pub struct SseDecoder {
    /// Bytes received but not yet ended by a line break.
    tail: Vec<u8>,
    /// Where to resume searching `tail` for a line break (everything before has none).
    scanned: usize,
    /// The data of the event being assembled, once it has a `data` field.
    data: Option<String>,
    /// Events complete and not yet taken.
    ready: VecDeque<String>,
    started: bool,
}

impl SseDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds bytes as they arrived and decodes every line they complete.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), SseError> {
        self.tail.extend_from_slice(bytes);
        self.decode_lines(false)
    }

    /// The next complete event's data, in order.
    pub fn next_event(&mut self) -> Option<String> {
        self.ready.pop_front()
    }

    /// The stream has ended: a final unterminated line still counts as a line, but an event
    /// without its blank line is incomplete and is returned separately so the caller can
    /// decide (the grammar says to discard it).
    pub fn finish(&mut self) -> Result<Option<String>, SseError> {
        self.decode_lines(true)?;
        if !self.tail.is_empty() {
            let line = std::mem::take(&mut self.tail);
            self.line(&line)?;
        }
        self.scanned = 0;
        Ok(self.data.take())
    }

    fn decode_lines(&mut self, at_end: bool) -> Result<(), SseError> {
        let mut start = 0;
        let mut i = self.scanned;
        while i < self.tail.len() {
            match self.tail[i] {
                b'\n' => {
                    let line = self.tail[start..i].to_vec();
                    self.line(&line)?;
                    start = i + 1;
                    i = start;
                }
                b'\r' => {
                    // A `\r` that ends the buffer may be the first half of `\r\n`: wait.
                    if i + 1 == self.tail.len() && !at_end {
                        break;
                    }
                    let line = self.tail[start..i].to_vec();
                    self.line(&line)?;
                    start = if self.tail.get(i + 1) == Some(&b'\n') {
                        i + 2
                    } else {
                        i + 1
                    };
                    i = start;
                }
                _ => i += 1,
            }
        }
        self.tail.drain(..start);
        self.scanned = i - start;
        let held = self.tail.len() + self.data.as_ref().map_or(0, String::len);
        if held > MAX_EVENT_BYTES {
            return Err(SseError::TooLarge);
        }
        Ok(())
    }

    fn line(&mut self, mut line: &[u8]) -> Result<(), SseError> {
        if !self.started {
            self.started = true;
            line = line.strip_prefix("\u{feff}".as_bytes()).unwrap_or(line);
        }
        if line.is_empty() {
            if let Some(data) = self.data.take() {
                self.ready.push_back(data);
            }
            return Ok(());
        }
        if line[0] == b':' {
            return Ok(());
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        if field == b"data" {
            let value = std::str::from_utf8(value).map_err(|_| SseError::NotUtf8)?;
            match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            }
            if self.data.as_ref().map_or(0, String::len) > MAX_EVENT_BYTES {
                return Err(SseError::TooLarge);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_in_pieces(input: &[u8], cuts: &[usize]) -> (Vec<String>, Option<String>) {
        let mut d = SseDecoder::new();
        let mut events = Vec::new();
        let mut from = 0;
        for &cut in cuts.iter().chain(std::iter::once(&input.len())) {
            d.feed(&input[from..cut]).unwrap();
            while let Some(e) = d.next_event() {
                events.push(e);
            }
            from = cut;
        }
        let rest = d.finish().unwrap();
        while let Some(e) = d.next_event() {
            events.push(e);
        }
        (events, rest)
    }

    const STREAM: &str = "\u{feff}: keep-alive comment\r\n\r\n\
        data: {\"a\":\"h\u{e9}llo \u{1f600}\"}\n\n\
        event: message\r\nid: 7\r\ndata:{\"b\":1}\r\n\r\n\
        data: first\rdata: second\r\rretry: 10\n\
        data\n\n\
        data: [DONE]\n\n";

    fn expected() -> Vec<String> {
        vec![
            "{\"a\":\"h\u{e9}llo \u{1f600}\"}".to_owned(),
            "{\"b\":1}".to_owned(),
            "first\nsecond".to_owned(),
            String::new(),
            "[DONE]".to_owned(),
        ]
    }

    #[test]
    fn whole_stream_decodes_every_line_ending_and_field_form() {
        assert_eq!(decode_in_pieces(STREAM.as_bytes(), &[]), (expected(), None));
    }

    #[test]
    fn split_at_every_byte_boundary_gives_the_same_events() {
        let input = STREAM.as_bytes();
        for cut in 1..input.len() {
            assert_eq!(
                decode_in_pieces(input, &[cut]),
                (expected(), None),
                "split at byte {cut}"
            );
        }
    }

    #[test]
    fn one_byte_at_a_time_gives_the_same_events() {
        let input = STREAM.as_bytes();
        let cuts: Vec<usize> = (1..input.len()).collect();
        assert_eq!(decode_in_pieces(input, &cuts), (expected(), None));
    }

    #[test]
    fn split_at_every_pair_of_boundaries_gives_the_same_events() {
        let input = STREAM.as_bytes();
        for a in 1..input.len() {
            for b in a..input.len() {
                assert_eq!(decode_in_pieces(input, &[a, b]).0, expected(), "{a},{b}");
            }
        }
    }

    #[test]
    fn an_event_without_its_blank_line_is_returned_as_incomplete() {
        let (events, rest) = decode_in_pieces(b"data: one\n\ndata: {\"cut", &[]);
        assert_eq!(events, vec!["one".to_owned()]);
        assert_eq!(rest.as_deref(), Some("{\"cut"));
    }

    #[test]
    fn a_trailing_carriage_return_at_the_end_still_ends_the_line() {
        let (events, rest) = decode_in_pieces(b"data: x\r\r", &[8]);
        assert_eq!((events, rest), (vec!["x".to_owned()], None));
    }

    #[test]
    fn an_endless_line_is_refused() {
        let mut d = SseDecoder::new();
        let big = vec![b'a'; 64 * 1024];
        let mut result = Ok(());
        for _ in 0..(MAX_EVENT_BYTES / big.len() + 2) {
            result = d.feed(&big);
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(SseError::TooLarge));
    }

    #[test]
    fn many_data_lines_cannot_exceed_the_limit() {
        let mut d = SseDecoder::new();
        let line = format!("data: {}\n", "a".repeat(1000));
        let mut result = Ok(());
        for _ in 0..(MAX_EVENT_BYTES / 1000 + 2) {
            result = d.feed(line.as_bytes());
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(SseError::TooLarge));
    }

    #[test]
    fn invalid_utf8_is_refused() {
        let mut d = SseDecoder::new();
        assert_eq!(d.feed(b"data: \xff\xfe\n\n"), Err(SseError::NotUtf8));
    }
}
