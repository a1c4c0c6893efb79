//! Checks on rendered HTML that do not trust the sanitiser: a small tokenizer of its own and
//! the widget's security invariants written out a second time, so loosening the policy in
//! `src/sanitize.rs` fails these instead of silently passing. Shared by the native tests
//! and the fuzz target (`#[path]`-included there); it must stay dependency-free.

#![allow(dead_code)]

/// One token of serialised HTML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    Start {
        name: String,
        attrs: Vec<(String, String)>,
    },
    End(String),
    Text(String),
    Comment(String),
}

/// Tokenizes HTML as a browser's tokenizer would for the constructs a serialiser emits:
/// tags with quoted, unquoted or bare attributes, comments, text. `<` not followed by a
/// letter, `/` or `!` is text, as in the HTML spec.
pub fn tokenize(html: &str) -> Vec<Token> {
    let b = html.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut text_start = 0;
    while i < b.len() {
        if b[i] != b'<' {
            i += 1;
            continue;
        }
        let next = b.get(i + 1).copied().unwrap_or(0);
        if !(next.is_ascii_alphabetic() || next == b'/' || next == b'!') {
            i += 1;
            continue;
        }
        if text_start < i {
            out.push(Token::Text(html[text_start..i].to_owned()));
        }
        if html[i..].starts_with("<!--") {
            let end = html[i + 4..].find("-->").map_or(b.len(), |e| i + 4 + e + 3);
            out.push(Token::Comment(html[i..end].to_owned()));
            i = end;
        } else if next == b'!' {
            let end = html[i..].find('>').map_or(b.len(), |e| i + e + 1);
            out.push(Token::Comment(html[i..end].to_owned()));
            i = end;
        } else {
            let (token, end) = tag(html, i);
            out.push(token);
            i = end;
        }
        text_start = i;
    }
    if text_start < b.len() {
        out.push(Token::Text(html[text_start..].to_owned()));
    }
    out
}

fn tag(html: &str, at: usize) -> (Token, usize) {
    let b = html.as_bytes();
    let closing = b[at + 1] == b'/';
    let mut i = at + 1 + usize::from(closing);
    let name_start = i;
    while i < b.len() && !matches!(b[i], b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' | b'/' | b'>') {
        i += 1;
    }
    let name = html[name_start..i].to_ascii_lowercase();
    let mut attrs = Vec::new();
    loop {
        while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' | b'/') {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        if b[i] == b'>' {
            i += 1;
            break;
        }
        let attr_start = i;
        i += 1;
        while i < b.len()
            && !matches!(
                b[i],
                b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' | b'/' | b'>' | b'='
            )
        {
            i += 1;
        }
        let attr = html[attr_start..i].to_ascii_lowercase();
        while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r' | b'\x0c') {
            i += 1;
        }
        let mut value = String::new();
        if i < b.len() && b[i] == b'=' {
            i += 1;
            while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r' | b'\x0c') {
                i += 1;
            }
            if i < b.len() && (b[i] == b'"' || b[i] == b'\'') {
                let q = b[i];
                let end = html[i + 1..].find(q as char).map_or(b.len(), |e| i + 1 + e);
                value = html[i + 1..end].to_owned();
                i = (end + 1).min(b.len());
            } else {
                let start = i;
                while i < b.len() && !matches!(b[i], b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' | b'>')
                {
                    i += 1;
                }
                value = html[start..i].to_owned();
            }
        }
        attrs.push((attr, decode(&value)));
    }
    let token = if closing {
        Token::End(name)
    } else {
        Token::Start { name, attrs }
    };
    (token, i)
}

/// Decodes the character references a serialiser writes, plus numeric ones.
pub fn decode(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let end = rest.find(';').filter(|&e| e <= 10);
        let decoded = end.and_then(|e| {
            let name = &rest[1..e];
            let c = match name {
                "amp" => '&',
                "lt" => '<',
                "gt" => '>',
                "quot" => '"',
                "apos" => '\'',
                "nbsp" => '\u{a0}',
                _ => {
                    let n = name.strip_prefix('#')?;
                    let cp = match n.strip_prefix(['x', 'X']) {
                        Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                        None => n.parse().ok()?,
                    };
                    char::from_u32(cp)?
                }
            };
            Some((c, e + 1))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Every element the widget may show, written out independently of `src/sanitize.rs`
/// (as one list of names, so it cannot drift into a copy of that file).
const ALLOWED_ELEMENT_NAMES: &str = "\
    p br hr h1 h2 h3 h4 h5 h6 blockquote ul ol li pre code em strong del a table thead \
    tbody tr th td input span math semantics annotation mrow mi mo mn ms mtext mspace msup \
    msub msubsup mfrac msqrt mroot mtable mtr mtd mlabeledtr munder mover munderover mstyle \
    menclose mpadded mphantom";

/// Classes the widget may carry (plus `language-…` on `code`).
pub const ALLOWED_CLASSES: &[&str] = &[
    "katex",
    "katex-display",
    "math-pending",
    "math-source",
    "math-error",
    "align-left",
    "align-center",
    "align-right",
];

/// Attributes that load, navigate, run or restyle something; none may appear anywhere
/// except `href` on `a` (checked separately).
const FORBIDDEN_ATTRS: &[&str] = &[
    "style",
    "src",
    "srcset",
    "srcdoc",
    "href",
    "action",
    "formaction",
    "data",
    "background",
    "poster",
    "ping",
    "id",
    "name",
    "form",
    "xmlns",
    "autofocus",
    "contenteditable",
    "tabindex",
    "popover",
    "is",
];

/// Checks the widget's invariants on rendered HTML; `Err` says which one broke.
pub fn check_safe(html: &str) -> Result<(), String> {
    for token in tokenize(html) {
        match token {
            Token::Comment(c) => return Err(format!("comment survived: {c}")),
            Token::End(name) => {
                if !is_allowed_element(&name) {
                    return Err(format!("element </{name}> is not allowed"));
                }
            }
            Token::Text(_) => {}
            Token::Start { name, attrs } => {
                if !is_allowed_element(&name) {
                    return Err(format!("element <{name}> is not allowed"));
                }
                check_attrs(&name, &attrs)?;
            }
        }
    }
    Ok(())
}

fn check_attrs(name: &str, attrs: &[(String, String)]) -> Result<(), String> {
    let get = |k: &str| attrs.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str());
    for (attr, value) in attrs {
        if attr.starts_with("on") {
            return Err(format!("event handler {attr} on <{name}>"));
        }
        if attr.contains(':') || attr.starts_with("data-") {
            return Err(format!("attribute {attr} on <{name}>"));
        }
        if attr == "href" && name == "a" {
            let v = value
                .trim_start_matches(|c: char| c <= ' ')
                .to_ascii_lowercase();
            if !(v.starts_with("http://") || v.starts_with("https://") || v.starts_with("mailto:"))
            {
                return Err(format!("href with a disallowed URL: {value:?}"));
            }
            continue;
        }
        if FORBIDDEN_ATTRS.contains(&attr.as_str()) {
            return Err(format!("attribute {attr}={value:?} on <{name}>"));
        }
        if attr == "class" {
            for class in value.split_ascii_whitespace() {
                let language = name == "code" && class.starts_with("language-");
                if !(ALLOWED_CLASSES.contains(&class) || language) {
                    return Err(format!("class {class:?} on <{name}>"));
                }
            }
        }
        if value.to_ascii_lowercase().contains("script:") || value.contains("url(") {
            return Err(format!("suspicious value {attr}={value:?} on <{name}>"));
        }
    }
    if name == "a" {
        if get("rel") != Some("noopener noreferrer nofollow") {
            return Err(format!("link without rel: {attrs:?}"));
        }
        if get("target") != Some("_blank") {
            return Err(format!("link without target=_blank: {attrs:?}"));
        }
    }
    if name == "input"
        && (get("type").is_some_and(|t| t != "checkbox") || get("disabled").is_none())
    {
        return Err(format!("input that is not a disabled checkbox: {attrs:?}"));
    }
    Ok(())
}

/// Panics with the offending HTML if [`check_safe`] fails.
pub fn assert_safe(html: &str) {
    if let Err(why) = check_safe(html) {
        panic!("{why}\n--- html ---\n{html}");
    }
}

/// All start tags named `name`, with their attributes.
pub fn elements(html: &str, name: &str) -> Vec<Vec<(String, String)>> {
    tokenize(html)
        .into_iter()
        .filter_map(|t| match t {
            Token::Start { name: n, attrs } if n == name => Some(attrs),
            _ => None,
        })
        .collect()
}

/// The value of `attr` on each `name` element that has it.
pub fn attr_values(html: &str, name: &str, attr: &str) -> Vec<String> {
    elements(html, name)
        .into_iter()
        .filter_map(|attrs| attrs.into_iter().find(|(a, _)| a == attr).map(|(_, v)| v))
        .collect()
}

/// The text content (decoded), tags removed.
pub fn text(html: &str) -> String {
    tokenize(html)
        .into_iter()
        .filter_map(|t| match t {
            Token::Text(s) => Some(decode(&s)),
            _ => None,
        })
        .collect()
}

/// Whether the oracle allows an element of this name.
pub fn is_allowed_element(name: &str) -> bool {
    ALLOWED_ELEMENT_NAMES
        .split_whitespace()
        .any(|allowed| allowed == name)
}
