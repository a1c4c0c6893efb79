//! The one place that decides which HTML may reach the widget's DOM: a single
//! `ammonia::Builder`, configured here and nowhere else, run as the last step of every render.
//! It must never be bypassed, loosened per call, or handed markup it has already seen
//! expecting something different: its output is stable under a second pass.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use ammonia::{Builder, UrlRelative};

/// `rel` on every link: no `window.opener`, no referrer to the target, no SEO endorsement.
pub const LINK_REL: &str = "noopener noreferrer nofollow";

/// Elements the markdown renderer emits.
const HTML_TAGS: &[&str] = &[
    "p",
    "br",
    "hr",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "blockquote",
    "ul",
    "ol",
    "li",
    "pre",
    "code",
    "em",
    "strong",
    "del",
    "a",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "input",
    "span",
];

/// Presentation MathML as KaTeX emits it. Not allowed: `maction` (interactive),
/// `annotation-xml` (an HTML integration point), `mglyph` (loads an image).
const MATHML_TAGS: &[&str] = &[
    "math",
    "semantics",
    "annotation",
    "mrow",
    "mi",
    "mo",
    "mn",
    "ms",
    "mtext",
    "mspace",
    "msup",
    "msub",
    "msubsup",
    "mfrac",
    "msqrt",
    "mroot",
    "mtable",
    "mtr",
    "mtd",
    "mlabeledtr",
    "munder",
    "mover",
    "munderover",
    "mstyle",
    "menclose",
    "mpadded",
    "mphantom",
];

/// Layout attributes allowed on any MathML element above. None of them takes a URL or
/// script; their values are further restricted by `mathml_value_ok`.
const MATHML_ATTRS: &[&str] = &[
    "mathvariant",
    "mathsize",
    "mathcolor",
    "mathbackground",
    "fence",
    "stretchy",
    "separator",
    "lspace",
    "rspace",
    "minsize",
    "maxsize",
    "symmetric",
    "largeop",
    "movablelimits",
    "accent",
    "accentunder",
    "form",
    "linethickness",
    "notation",
    "width",
    "height",
    "depth",
    "voffset",
    "scriptlevel",
    "displaystyle",
    "columnalign",
    "columnspacing",
    "columnlines",
    "rowalign",
    "rowspacing",
    "rowlines",
    "frame",
    "framespacing",
    "equalrows",
    "equalcolumns",
    "side",
    "linebreak",
];

/// The classes each element may carry; `code` may also carry one `language-…` class.
const CLASSES: &[(&str, &[&str])] = &[
    ("span", &["katex", "katex-display", "math-pending"]),
    ("code", &["math-source", "math-error"]),
    ("th", &["align-left", "align-center", "align-right"]),
    ("td", &["align-left", "align-center", "align-right"]),
];

static SANITIZER: LazyLock<Builder<'static>> = LazyLock::new(build);

fn build() -> Builder<'static> {
    let tags: HashSet<&str> = HTML_TAGS.iter().chain(MATHML_TAGS).copied().collect();

    let mut attrs: HashMap<&str, HashSet<&str>> = HashMap::new();
    attrs.insert("a", ["href", "title"].into());
    attrs.insert("ol", ["start"].into());
    attrs.insert("input", ["checked"].into());
    attrs.insert("math", ["display"].into());
    attrs.insert("annotation", ["encoding"].into());
    for (tag, _) in CLASSES {
        attrs.entry(tag).or_default().insert("class");
    }
    for tag in MATHML_TAGS {
        attrs.entry(tag).or_default().extend(MATHML_ATTRS);
    }

    let mut b = Builder::empty();
    b.tags(tags)
        .generic_attributes(HashSet::new())
        .tag_attributes(attrs)
        // Inputs exist for task lists only: checkboxes, never editable. (One forced value
        // per element: ammonia adds forced attributes in hash order.)
        .tag_attribute_values([("input", [("type", ["checkbox"].into())].into())].into())
        .set_tag_attribute_values(
            [
                ("input", [("disabled", "")].into()),
                ("a", [("target", "_blank")].into()),
            ]
            .into(),
        )
        .url_schemes(["http", "https", "mailto"].into())
        // The widget runs on a customer's page: a relative URL would point into it.
        .url_relative(UrlRelative::Deny)
        .link_rel(Some(LINK_REL))
        .strip_comments(true)
        .clean_content_tags(["script", "style"].into())
        .attribute_filter(filter_attribute);
    b
}

/// Whether `url` is an absolute `http://`, `https://` or `mailto:` URL. Stricter than the
/// scheme allow-list alone: browsers resolve `https:foo` (no slashes) relative to an https
/// page, so it would point into the customer's site.
pub(crate) fn is_allowed_url(url: &str) -> bool {
    let url = url.trim_start_matches(|c: char| c <= ' ');
    ["http://", "https://", "mailto:"].iter().any(|prefix| {
        url.get(..prefix.len())
            .is_some_and(|start| start.eq_ignore_ascii_case(prefix))
    })
}

/// By the time this runs, ammonia has kept only hrefs whose scheme is allowed; what is left
/// are slash-less forms like `https:foo`. They are rewritten to the absolute URL ammonia
/// took them for, never dropped: ammonia removes attributes with `swap_remove`, which
/// would reorder the link's attributes and make a second pass change the output.
fn filter_href(value: &str) -> Option<Cow<'_, str>> {
    if is_allowed_url(value) {
        return Some(value.into());
    }
    let url = ammonia::Url::parse(value).ok()?;
    let absolute = url.to_string();
    is_allowed_url(&absolute).then_some(absolute.into())
}

/// Value checks the allow-lists above cannot express.
fn filter_attribute<'u>(element: &str, attribute: &str, value: &'u str) -> Option<Cow<'u, str>> {
    match attribute {
        "class" => filter_classes(element, value),
        "href" => filter_href(value),
        // KaTeX keeps the TeX source in `<annotation encoding="application/x-tex">`.
        "encoding" => (value == "application/x-tex").then_some(value.into()),
        "title" | "start" | "checked" | "disabled" | "type" | "target" | "rel" => {
            Some(value.into())
        }
        _ if mathml_value_ok(value) => Some(value.into()),
        _ => None,
    }
}

fn filter_classes<'u>(element: &str, value: &'u str) -> Option<Cow<'u, str>> {
    let allowed = CLASSES
        .iter()
        .find(|(tag, _)| *tag == element)
        .map_or(&[][..], |(_, classes)| *classes);
    let kept: Vec<&str> = value
        .split_ascii_whitespace()
        .filter(|c| allowed.contains(c) || (element == "code" && is_language_class(c)))
        .collect();
    if kept.is_empty() {
        None
    } else {
        Some(kept.join(" ").into())
    }
}

/// `language-rust`, `language-c++`, `language-objective-c`: a code block's info string.
fn is_language_class(class: &str) -> bool {
    class.strip_prefix("language-").is_some_and(|lang| {
        !lang.is_empty()
            && lang.len() <= 32
            && lang
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'+' | b'#' | b'_' | b'.'))
    })
}

/// MathML attribute values: keywords, lengths, colour names and hex colours only.
fn mathml_value_ok(value: &str) -> bool {
    value.len() <= 64
        && value.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b' ' | b'.' | b'%' | b'#' | b'-' | b'+')
        })
}

/// Sanitises `html` with the widget's policy. Every render ends here; running it again on
/// its own output changes nothing.
pub fn sanitize(html: &str) -> String {
    SANITIZER.clean(html).to_string()
}
