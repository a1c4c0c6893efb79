//! Reads markdown source before the markdown parser does: splits it into independently
//! renderable blocks and cuts math spans out so markdown never parses inside a formula.
//! Owns the math delimiter rules; never produces HTML and never decides what is safe.
//!
//! Math spans are replaced by one placeholder character each, from Unicode's plane-15
//! private use area; input characters from that range are replaced by U+FFFD first so
//! a message cannot forge a placeholder.

const PLACEHOLDER_BASE: u32 = 0xF_0000;
const PLACEHOLDER_LAST: u32 = 0xF_FFFD;

/// Where one block ends and the next starts, as byte offsets into the scanned text.
///
/// A boundary is the start of a line that (1) follows a blank line, (2) is not indented,
/// (3) does not start a list item (so loose lists stay whole) and (4) is outside a fenced
/// code block. No container, paragraph, code span or formula stays open across such a
/// line except a top-level fence, so blocks can be rendered one by one.
///
/// With `complete == false` the text may still grow: an unterminated last line decides
/// nothing, so every boundary returned stays a boundary whatever is appended.
pub(crate) fn block_boundaries(text: &str, complete: bool) -> Vec<usize> {
    let mut out = Vec::new();
    let mut fence: Option<Fence> = None;
    let mut after_blank = false;
    let mut start = 0;
    while start < text.len() {
        let Some(len) = text[start..].find('\n') else {
            // The last line. Still growing, it can start a block all the same as soon as
            // its first characters rule out indentation and list markers.
            if fence.is_none()
                && after_blank
                && starts_top_level_block(&text[start..], complete) == Some(true)
            {
                out.push(start);
            }
            break;
        };
        let line = &text[start..start + len];
        if let Some(open) = fence {
            if open.is_closed_by(line) {
                fence = None;
            }
        } else if is_blank(line) {
            after_blank = true;
        } else {
            if after_blank && starts_top_level_block(line, true) == Some(true) {
                out.push(start);
            }
            after_blank = false;
            fence = Fence::open(line, 3);
        }
        start += len + 1;
    }
    out
}

/// Splits `text` into blocks (see [`block_boundaries`]).
pub(crate) fn blocks(text: &str) -> impl Iterator<Item = &str> {
    let mut cuts = block_boundaries(text, true);
    cuts.push(text.len());
    let mut start = 0;
    cuts.into_iter().map(move |end| {
        let block = &text[start..end];
        start = end;
        block
    })
}

fn is_blank(line: &str) -> bool {
    line.bytes().all(|b| matches!(b, b' ' | b'\t' | b'\r'))
}

/// Whether a non-blank line after a blank one starts a new block: not indented and not a
/// list item. `None` while a growing line (`complete == false`) cannot tell yet.
fn starts_top_level_block(line: &str, complete: bool) -> Option<bool> {
    match line.as_bytes().first() {
        None => complete.then_some(false),
        Some(b' ' | b'\t' | b'\r') => Some(false),
        Some(_) => match list_marker_len(line) {
            Some(_) => Some(false),
            None if complete || !could_grow_into_list_marker(line) => Some(true),
            None => None,
        },
    }
}

/// Whether appending to `line` could still make it start with a list marker.
fn could_grow_into_list_marker(line: &str) -> bool {
    let b = line.as_bytes();
    match b[0] {
        b'-' | b'*' | b'+' => b.len() == 1,
        b'0'..=b'9' => {
            let digits = b.iter().take_while(|c| c.is_ascii_digit()).count();
            digits <= 9
                && (digits == b.len()
                    || (digits + 1 == b.len() && matches!(b[digits], b'.' | b')')))
        }
        _ => false,
    }
}

/// Length of a list item marker (`-`, `*`, `+`, `1.`, `1)`) at the start of `line`.
fn list_marker_len(line: &str) -> Option<usize> {
    let b = line.as_bytes();
    let marker = match b.first()? {
        b'-' | b'*' | b'+' => 1,
        b'0'..=b'9' => {
            let digits = b.iter().take_while(|c| c.is_ascii_digit()).count();
            if digits > 9 || !matches!(b.get(digits), Some(b'.' | b')')) {
                return None;
            }
            digits + 1
        }
        _ => return None,
    };
    match b.get(marker) {
        None | Some(b' ' | b'\t' | b'\r') => Some(marker),
        _ => None,
    }
}

#[derive(Clone, Copy)]
struct Fence {
    ch: u8,
    len: usize,
}

impl Fence {
    /// A fence opening at the start of `line` after at most `max_indent` spaces.
    fn open(line: &str, max_indent: usize) -> Option<Fence> {
        let indent = line.bytes().take_while(|&b| b == b' ').count();
        if indent > max_indent {
            return None;
        }
        let rest = &line.as_bytes()[indent..];
        let ch = *rest.first()?;
        if ch != b'`' && ch != b'~' {
            return None;
        }
        let len = rest.iter().take_while(|&&b| b == ch).count();
        if len < 3 || (ch == b'`' && rest[len..].contains(&b'`')) {
            return None;
        }
        Some(Fence { ch, len })
    }

    fn is_closed_by(self, line: &str) -> bool {
        let t = line.trim_start_matches(' ');
        let run = t.bytes().take_while(|&b| b == self.ch).count();
        run >= self.len && is_blank(&t[run..])
    }
}

/// A formula cut out of the markdown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MathSpan {
    /// The formula as written, delimiters included (shown when it cannot be rendered).
    pub source: String,
    /// The TeX between the delimiters.
    pub tex: String,
    /// `$$…$$` or `\[…\]`.
    pub display: bool,
}

/// What a placeholder stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cut {
    Math(MathSpan),
    /// An opened formula whose closing delimiter has not streamed in yet: the rest of the
    /// text, shown as plain text until it completes.
    Pending(String),
}

impl Cut {
    /// The original markdown this placeholder replaced.
    pub fn source(&self) -> &str {
        match self {
            Cut::Math(m) => &m.source,
            Cut::Pending(s) => s,
        }
    }
}

/// Markdown with formulas replaced by placeholders, and what each placeholder stands for.
#[derive(Debug, Default)]
pub(crate) struct Extracted {
    pub text: String,
    pub cuts: Vec<Cut>,
}

impl Extracted {
    /// The cut a placeholder character stands for, if `c` is one.
    pub fn cut(&self, c: char) -> Option<&Cut> {
        let n = (c as u32).checked_sub(PLACEHOLDER_BASE)?;
        self.cuts.get(usize::try_from(n).ok()?)
    }

    /// `s` with every placeholder turned back into the markdown it replaced.
    pub fn restore(&self, s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        for c in s.chars() {
            match self.cut(c) {
                Some(cut) => out.push_str(cut.source()),
                None => out.push(c),
            }
        }
        out
    }

    fn push_cut(&mut self, cut: Cut) -> bool {
        let Ok(n) = u32::try_from(self.cuts.len()) else {
            return false;
        };
        match char::from_u32(PLACEHOLDER_BASE + n)
            .filter(|_| PLACEHOLDER_BASE + n <= PLACEHOLDER_LAST)
        {
            Some(c) => {
                self.text.push(c);
                self.cuts.push(cut);
                true
            }
            None => false,
        }
    }

    fn push_source(&mut self, s: &str) {
        for c in s.chars() {
            let cp = c as u32;
            self.text
                .push(if (PLACEHOLDER_BASE..=0xF_FFFF).contains(&cp) {
                    char::REPLACEMENT_CHARACTER
                } else {
                    c
                });
        }
    }
}

/// Whether `text` holds at least one complete formula.
pub(crate) fn contains_math(text: &str) -> bool {
    blocks(text).any(|b| {
        extract_math(b, false)
            .cuts
            .iter()
            .any(|c| matches!(c, Cut::Math(_)))
    })
}

/// Cuts the formulas out of one block.
///
/// Rules (pandoc's, plus LaTeX's bracket forms): `$…$` opens on a `$` followed by a non-space
/// and closes on a `$` preceded by a non-space and not followed by a digit (so "$5 and $10"
/// stays text); `$$…$$`, `\(…\)` and `\[…\]` close on their partner. No formula crosses a blank
/// line, a backslash escape (`\$`) is never a delimiter, and code spans, autolinks and fenced
/// code are skipped. An unclosed opener is literal text, unless `pending` is set and the text
/// ends before any blank line: then the rest is a [`Cut::Pending`] (a streaming tail).
pub(crate) fn extract_math(block: &str, pending: bool) -> Extracted {
    let mut out = Extracted {
        text: String::with_capacity(block.len()),
        cuts: Vec::new(),
    };
    let b = block.as_bytes();
    let mut fence: Option<Fence> = None;
    let mut i = 0; // scan position
    let mut copied = 0; // source before this is already in `out.text`
    let mut line_start = true;
    while i < b.len() {
        if line_start {
            line_start = false;
            let end = block[i..].find('\n').map_or(b.len(), |n| i + n);
            let line = &block[i..end];
            if let Some(open) = fence {
                if open.is_closed_by(strip_containers(line)) {
                    fence = None;
                }
                i = (end + 1).min(b.len());
                line_start = true;
                continue;
            }
            fence = Fence::open(strip_containers(line), usize::MAX);
            if fence.is_some() {
                i = (end + 1).min(b.len());
                line_start = true;
                continue;
            }
        }
        let found = match b[i] {
            b'\n' => {
                line_start = true;
                i += 1;
                continue;
            }
            b'\\' => match b.get(i + 1) {
                Some(b'(') => find_close(block, i + 2, ")", true).map(|e| (e, e + 2, false)),
                Some(b'[') => find_close(block, i + 2, "]", true).map(|e| (e, e + 2, true)),
                Some(c) if c.is_ascii_punctuation() => {
                    i += 2;
                    continue;
                }
                _ => {
                    i += 1;
                    continue;
                }
            },
            b'$' if b.get(i + 1) == Some(&b'$') => {
                find_close(block, i + 2, "$$", false).map(|e| (e, e + 2, true))
            }
            b'$' => match b.get(i + 1) {
                Some(c) if !c.is_ascii_whitespace() => {
                    find_dollar_close(block, i + 1).map(|e| (e, e + 1, false))
                }
                _ => {
                    i += 1;
                    continue;
                }
            },
            b'`' => {
                i = skip_code_span(block, i);
                continue;
            }
            b'<' => {
                i = skip_autolink(block, i);
                continue;
            }
            _ => {
                i += 1;
                continue;
            }
        };
        let open_len = if b[i] == b'$' && b.get(i + 1) != Some(&b'$') {
            1
        } else {
            2
        };
        match found {
            Some((tex_end, end, display)) => {
                let tex = &block[i + open_len..tex_end];
                if tex.trim().is_empty() {
                    i = end;
                    continue;
                }
                let span = MathSpan {
                    source: block[i..end].to_owned(),
                    tex: tex.to_owned(),
                    display,
                };
                out.push_source(&block[copied..i]);
                if out.push_cut(Cut::Math(span)) {
                    copied = end;
                } else {
                    out.push_source(&block[i..end]);
                    copied = end;
                }
                i = end;
            }
            None if pending && !has_blank_line(&block[i..]) => {
                out.push_source(&block[copied..i]);
                if !out.push_cut(Cut::Pending(block[i..].to_owned())) {
                    out.push_source(&block[i..]);
                }
                copied = b.len();
                i = b.len();
            }
            None => i += open_len,
        }
    }
    out.push_source(&block[copied..]);
    out
}

/// A line without its blockquote markers and list item markers, for finding fences
/// nested in containers. Approximate on purpose: a mismatch with the markdown parser only
/// changes whether a formula renders, never what is safe (code gets its source back).
fn strip_containers(mut line: &str) -> &str {
    loop {
        let t = line.trim_start_matches([' ', '\t']);
        if let Some(rest) = t.strip_prefix('>') {
            line = rest;
        } else if let Some(n) = list_marker_len(t) {
            line = &t[n..];
        } else {
            return t;
        }
    }
}

/// Whether a complete blank line follows the first line of `s`.
fn has_blank_line(s: &str) -> bool {
    s.split_inclusive('\n')
        .skip(1)
        .any(|l| l.ends_with('\n') && is_blank(&l[..l.len() - 1]))
}

/// Bytes a backslash escape at `i` covers: two, but never swallowing a line end.
fn escape_len(b: &[u8], i: usize) -> usize {
    if b.get(i + 1) == Some(&b'\n') { 1 } else { 2 }
}

/// Position of the closer of a formula opened just before `from`: `close` itself, or with
/// `backslashed` `\` + `close`. Escapes are skipped (`\$` inside math is a dollar) and a
/// blank line ends the search.
fn find_close(s: &str, from: usize, close: &str, backslashed: bool) -> Option<usize> {
    let b = s.as_bytes();
    let c = close.as_bytes();
    if backslashed {
        scan_to_close(b, from, |i| b[i] == b'\\' && b[i + 1..].starts_with(c))
    } else {
        scan_to_close(b, from, |i| b[i..].starts_with(c))
    }
}

/// The closing `$` of an inline formula opened just before `from`: not right after
/// whitespace and not right before a digit.
fn find_dollar_close(s: &str, from: usize) -> Option<usize> {
    let b = s.as_bytes();
    scan_to_close(b, from, |i| {
        b[i] == b'$'
            && i > from
            && !b[i - 1].is_ascii_whitespace()
            && !b.get(i + 1).is_some_and(u8::is_ascii_digit)
    })
}

/// Walks `b` from `from` to the first position where `closes_at` holds, skipping escapes;
/// `None` when a blank line (or the end) comes first.
fn scan_to_close(b: &[u8], from: usize, closes_at: impl Fn(usize) -> bool) -> Option<usize> {
    let mut i = from;
    let mut line_has_text = true;
    while i < b.len() {
        if closes_at(i) {
            return Some(i);
        }
        match b[i] {
            b'\\' => {
                i += escape_len(b, i);
                line_has_text = true;
                continue;
            }
            b'\n' => {
                if !line_has_text {
                    return None;
                }
                line_has_text = false;
            }
            b' ' | b'\t' | b'\r' => {}
            _ => line_has_text = true,
        }
        i += 1;
    }
    None
}

/// Position after the code span starting at `at` (a backtick run), or after the run if it
/// is never closed within the paragraph.
fn skip_code_span(s: &str, at: usize) -> usize {
    let b = s.as_bytes();
    let run = b[at..].iter().take_while(|&&c| c == b'`').count();
    let mut i = at + run;
    let para_end = paragraph_end(s, i);
    while i < para_end {
        if b[i] == b'`' {
            let n = b[i..].iter().take_while(|&&c| c == b'`').count();
            if n == run {
                return i + n;
            }
            i += n;
        } else {
            i += 1;
        }
    }
    at + run
}

/// Position after a CommonMark autolink (`<scheme:…>`) starting at `at`, else `at + 1`.
fn skip_autolink(s: &str, at: usize) -> usize {
    let rest = &s[at + 1..];
    let scheme = rest
        .bytes()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'.' | b'-'))
        .count();
    if (2..=32).contains(&scheme) && rest.as_bytes().get(scheme) == Some(&b':') {
        let body = &rest[scheme + 1..];
        if let Some(end) = body.find(|c: char| c == '>' || c == '<' || c.is_whitespace())
            && body.as_bytes()[end] == b'>'
        {
            return at + 1 + scheme + 1 + end + 1;
        }
    }
    at + 1
}

/// End of the paragraph containing `from`: the start of the next blank line, or the end.
fn paragraph_end(s: &str, from: usize) -> usize {
    let mut pos = from;
    for line in s[from..].split_inclusive('\n') {
        if pos > from && is_blank(line.trim_end_matches('\n')) {
            return pos;
        }
        pos += line.len();
    }
    s.len()
}

/// Every complete formula's TeX in `block`, with its display flag.
#[cfg(test)]
fn math_texs(block: &str) -> Vec<(String, bool)> {
    extract_math(block, false)
        .cuts
        .into_iter()
        .filter_map(|c| match c {
            Cut::Math(m) => Some((m.tex, m.display)),
            Cut::Pending(_) => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texs(s: &str) -> Vec<String> {
        math_texs(s).into_iter().map(|(t, _)| t).collect()
    }

    #[test]
    fn finds_all_four_delimiters() {
        assert_eq!(
            math_texs(r"a $x$ b $$y$$ c \(z\) d \[w\]"),
            vec![
                ("x".into(), false),
                ("y".into(), true),
                ("z".into(), false),
                ("w".into(), true)
            ]
        );
    }

    #[test]
    fn prices_are_not_math() {
        assert!(texs("costs $5 and $10 today").is_empty());
        assert!(texs("a $ b $ c").is_empty());
        assert!(texs(r"escaped \$x\$ dollars").is_empty());
    }

    #[test]
    fn code_is_never_math() {
        assert!(texs("`$x$` and ``a $y$ b``").is_empty());
        assert!(texs("```\n$x$\n\n$$y$$\n```\n").is_empty());
        assert!(texs("- ```sh\n  echo $HOME $PATH\n  ```\n").is_empty());
        assert_eq!(texs("`a` $x$"), vec!["x"]);
    }

    #[test]
    fn math_never_crosses_a_blank_line() {
        assert!(texs("$x\n\ny$").is_empty());
        assert!(texs("$$x\n  \ny$$").is_empty());
        assert_eq!(texs("$$\nx\n$$"), vec!["\nx\n"]);
    }

    #[test]
    fn unclosed_opener_is_pending_only_in_a_streaming_tail() {
        let tail = extract_math("see $a*b", true);
        assert_eq!(tail.cuts, vec![Cut::Pending("$a*b".into())]);
        assert!(extract_math("see $a*b", false).cuts.is_empty());
        assert!(extract_math("see $a\n\nb", true).cuts.is_empty());
    }

    #[test]
    fn forged_placeholders_are_replaced() {
        let e = extract_math("\u{F0000} $x$", false);
        assert!(e.text.starts_with('\u{FFFD}'));
        assert_eq!(e.cuts.len(), 1);
        assert_eq!(e.restore(&e.text), "\u{FFFD} $x$");
    }

    #[test]
    fn boundaries_need_a_blank_line_and_an_unindented_non_list_line() {
        let t = "a\n\nb\n\n- c\n\n- d\n\n  e\n\nf";
        let cuts = block_boundaries(t, true);
        let starts: Vec<&str> = cuts.iter().map(|&c| &t[c..c + 1]).collect();
        assert_eq!(starts, vec!["b", "f"]);
    }

    #[test]
    fn boundaries_skip_fences_and_wait_until_a_line_can_tell() {
        let t = "```\na\n\nb\n```\n\nc";
        assert_eq!(block_boundaries(t, true), vec![t.find('c').unwrap()]);
        assert_eq!(block_boundaries(t, false), vec![t.find('c').unwrap()]);
        assert!(block_boundaries("```\na\n\nb", false).is_empty());
        assert!(block_boundaries("```\na\n\nb", true).is_empty());
        assert_eq!(block_boundaries("a\n\n1", false), Vec::<usize>::new());
        assert_eq!(block_boundaries("a\n\n1.", false), Vec::<usize>::new());
        assert_eq!(block_boundaries("a\n\n-", false), Vec::<usize>::new());
        assert_eq!(block_boundaries("a\n\n1\n", false), vec![3]);
        assert_eq!(block_boundaries("a\n\n1k", false), vec![3]);
        assert_eq!(block_boundaries("a\n\nT", false), vec![3]);
        assert_eq!(block_boundaries("a\n\n-x", false), vec![3]);
        assert_eq!(block_boundaries("a\n\n ", false), Vec::<usize>::new());
        assert_eq!(block_boundaries("a\n\n1. x\n", false), Vec::<usize>::new());
    }
}
