//! Math rendering behind a trait, so the widget can lazy-load the (large) KaTeX module.
//! Owns the `MathRenderer` contract, the source fallback and the KaTeX settings; it never
//! decides what is safe: whatever a renderer returns is sanitised afterwards like any input.

use std::fmt;

/// Turns one TeX formula into HTML/MathML.
///
/// `tex` is the formula without its delimiters; `display` is true for `$$…$$` and `\[…\]`.
/// It should be deterministic (same input, same string), or streamed output can differ
/// from [`crate::render`] in such details as attribute order.
/// The returned markup is treated as untrusted: the pipeline sanitises it afterwards, so an
/// implementation (e.g. one calling into a separately loaded WASM module) cannot inject
/// anything the sanitiser's allow-list does not permit.
pub trait MathRenderer {
    /// Renders `tex`; an error makes the pipeline show the TeX source instead.
    fn render(&self, tex: &str, display: bool) -> Result<String, MathError>;
}

/// Why a formula could not be rendered; the formula is then shown as source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MathError {
    /// The renderer rejected the TeX (syntax error, unknown command, …).
    Invalid(String),
    /// The formula is too long or too deeply nested to render safely.
    TooComplex,
    /// No math renderer is available (not loaded yet, or built without one).
    Unavailable,
}

impl fmt::Display for MathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MathError::Invalid(why) => write!(f, "invalid TeX: {why}"),
            MathError::TooComplex => f.write_str("formula too long or too deeply nested"),
            MathError::Unavailable => f.write_str("no math renderer available"),
        }
    }
}

impl std::error::Error for MathError {}

/// The renderer used when math is unavailable: every formula fails, so the pipeline shows
/// its TeX source as `<code class="math-source">`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SourceMath;

impl MathRenderer for SourceMath {
    fn render(&self, _tex: &str, _display: bool) -> Result<String, MathError> {
        Err(MathError::Unavailable)
    }
}

/// Longest formula handed to a renderer, in bytes.
pub const MAX_TEX_LEN: usize = 4096;
/// Deepest nesting of groups (`{`, `[`, `\left`, `\begin`) handed to a renderer. KaTeX parses
/// recursively and overflows a 1 MiB stack (the WASM default) at about 150 levels.
pub const MAX_TEX_DEPTH: usize = 32;

/// Refuses formulas that could exhaust the stack or the CPU before any renderer sees them.
/// Macro definitions are refused as well: they let a short formula expand to deep nesting.
pub fn check_complexity(tex: &str) -> Result<(), MathError> {
    if tex.len() > MAX_TEX_LEN {
        return Err(MathError::TooComplex);
    }
    const DEFINERS: [&str; 9] = [
        "\\def",
        "\\gdef",
        "\\edef",
        "\\xdef",
        "\\let",
        "\\futurelet",
        "\\newcommand",
        "\\renewcommand",
        "\\providecommand",
    ];
    let mut depth = 0usize;
    let mut max_depth = 0usize;
    let bytes = tex.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.saturating_sub(1),
            b'\\' => {
                let name_len = bytes[i + 1..]
                    .iter()
                    .take_while(|b| b.is_ascii_alphabetic())
                    .count();
                let name = &tex[i..i + 1 + name_len];
                if DEFINERS.contains(&name) || name == "\\global" {
                    return Err(MathError::TooComplex);
                }
                match name {
                    "\\left" | "\\begin" => depth += 1,
                    "\\right" | "\\end" => depth = depth.saturating_sub(1),
                    _ => {}
                }
                // Skip the command name, or the escaped character (`\{` is no group).
                i += name_len.max(1);
            }
            _ => {}
        }
        max_depth = max_depth.max(depth);
        i += 1;
    }
    if max_depth > MAX_TEX_DEPTH {
        return Err(MathError::TooComplex);
    }
    Ok(())
}

#[cfg(feature = "katex")]
pub use katex_impl::KatexMath;

#[cfg(feature = "katex")]
mod katex_impl {
    use super::{MathError, MathRenderer, check_complexity};

    /// KaTeX (katex-rs) with trust off and MathML-only output.
    ///
    /// MathML needs no fonts or stylesheets, so the widget loads nothing beyond its bundle;
    /// browsers have rendered MathML Core natively since 2023 (Chromium 109, Firefox, Safari).
    /// Each call uses fresh settings, so a formula cannot change how later ones render.
    pub struct KatexMath {
        ctx: katex::KatexContext,
    }

    impl std::fmt::Debug for KatexMath {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("KatexMath")
        }
    }

    impl Default for KatexMath {
        fn default() -> Self {
            Self::new()
        }
    }

    impl KatexMath {
        /// Builds the KaTeX function and symbol tables (well under a millisecond natively).
        pub fn new() -> Self {
            Self {
                ctx: katex::KatexContext::default(),
            }
        }
    }

    impl MathRenderer for KatexMath {
        fn render(&self, tex: &str, display: bool) -> Result<String, MathError> {
            check_complexity(tex)?;
            let settings = katex::Settings {
                display_mode: display,
                output: katex::OutputFormat::Mathml,
                throw_on_error: true,
                // Trust off: \href, \url, \includegraphics and \html* render as error text.
                trust: katex::TrustSetting::Bool(false),
                // Sizes in em; stops \rule{9999em} from covering the host page.
                max_size: 50.0,
                max_expand: 1000,
                ..katex::Settings::default()
            };
            katex::render_to_string(&self.ctx, tex, &settings)
                .map(|markup| sort_attributes(&markup))
                .map_err(|e| MathError::Invalid(e.to_string()))
        }
    }

    /// katex-rs keeps attributes in a randomly seeded hash map, so their order changes from
    /// one context to the next. Sorting them makes the output deterministic. The input is
    /// katex-rs's own serialisation (`<name key="value">`, values escaped); anything else is
    /// returned unchanged (it is sanitised afterwards either way).
    pub(super) fn sort_attributes(markup: &str) -> String {
        let mut out = String::with_capacity(markup.len());
        let mut rest = markup;
        while let Some(lt) = rest.find('<') {
            out.push_str(&rest[..lt]);
            rest = &rest[lt..];
            let Some(gt) = rest.find('>') else {
                break;
            };
            let tag = &rest[1..gt];
            match split_start_tag(tag) {
                Some((name, mut attrs)) if attrs.len() > 1 => {
                    attrs.sort_unstable();
                    out.push('<');
                    out.push_str(name);
                    for attr in attrs {
                        out.push(' ');
                        out.push_str(attr);
                    }
                    out.push('>');
                }
                _ => out.push_str(&rest[..=gt]),
            }
            rest = &rest[gt + 1..];
        }
        out.push_str(rest);
        out
    }

    /// `name a="1" b="2"` into its name and `key="value"` pieces.
    fn split_start_tag(tag: &str) -> Option<(&str, Vec<&str>)> {
        let (name, mut rest) = tag.split_once(' ')?;
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return None;
        }
        let mut attrs = Vec::new();
        while !rest.is_empty() {
            let eq = rest.find("=\"")?;
            let close = rest[eq + 2..].find('"')? + eq + 2;
            attrs.push(&rest[..=close]);
            rest = rest[close + 1..]
                .strip_prefix(' ')
                .unwrap_or(&rest[close + 1..]);
        }
        Some((name, attrs))
    }
}

/// A new instance of the math renderer [`crate::render`] uses: KaTeX with the `katex`
/// feature, else [`SourceMath`].
pub fn default_renderer() -> Box<dyn MathRenderer> {
    #[cfg(feature = "katex")]
    {
        Box::new(KatexMath::new())
    }
    #[cfg(not(feature = "katex"))]
    {
        Box::new(SourceMath)
    }
}

/// Runs `f` with this thread's instance of the default math renderer.
pub(crate) fn with_default<R>(f: impl FnOnce(&dyn MathRenderer) -> R) -> R {
    #[cfg(feature = "katex")]
    {
        thread_local! {
            static KATEX: KatexMath = KatexMath::new();
        }
        KATEX.with(|k| f(k))
    }
    #[cfg(not(feature = "katex"))]
    {
        f(&SourceMath)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complexity_guard_counts_groups_not_escaped_braces() {
        assert!(check_complexity(&"\\{".repeat(100)).is_ok());
        assert!(check_complexity(&format!("{}x{}", "{".repeat(33), "}".repeat(33))).is_err());
        assert!(check_complexity(&"\\left(".repeat(40)).is_err());
        assert!(check_complexity(r"\frac{a}{b} + \sqrt[3]{x}").is_ok());
    }

    #[cfg(feature = "katex")]
    #[test]
    fn katex_attributes_come_out_sorted() {
        let sorted = katex_impl::sort_attributes(
            r#"<math xmlns="m"><mo stretchy="false" lspace="0em" fence="true">(</mo><mi>x</mi></math>"#,
        );
        assert_eq!(
            sorted,
            r#"<math xmlns="m"><mo fence="true" lspace="0em" stretchy="false">(</mo><mi>x</mi></math>"#
        );
        assert_eq!(katex_impl::sort_attributes("a < b > c"), "a < b > c");
    }

    #[test]
    fn complexity_guard_refuses_macro_definitions() {
        assert_eq!(
            check_complexity(r"\def\a{{\a}}\a"),
            Err(MathError::TooComplex)
        );
        assert_eq!(
            check_complexity(r"\newcommand{\x}{y}"),
            Err(MathError::TooComplex)
        );
        assert!(check_complexity(r"\delta + \left(x\right)").is_ok());
    }
}
