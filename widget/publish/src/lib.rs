//! Published widget bundles as data: the manifest (`dist/manifest.json`) and the embed
//! snippets customers paste into their sites.
//!
//! Owns the manifest's shape and the snippet markup, for the publish command, the server
//! (which serves `dist/` by this manifest) and the site (which shows the snippets). It stays
//! free of I/O and heavy dependencies; the publish command's own code lives in `main.rs`
//! behind the `cli` feature.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `dist/manifest.json`: every published version and the SRI hash of each of its files.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The version served at `/widget.js`.
    pub latest: String,
    pub versions: BTreeMap<String, Release>,
}

/// One published version, stored in `dist/widget/v<version>/`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// RFC 3339, UTC.
    pub published_at: String,
    /// By file name; the `.br` and `.gz` siblings on disk are encodings of these files.
    pub files: BTreeMap<String, BundleFile>,
}

/// One file of a bundle.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleFile {
    /// `sha384-<base64>`, the form `integrity` attributes and `fetch` take.
    pub integrity: String,
    /// Size of the file itself.
    pub bytes: u64,
    /// Size of the `.gz` sibling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gzip_bytes: Option<u64>,
    /// Size of the `.br` sibling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brotli_bytes: Option<u64>,
}

/// The loader inside each version folder; `/widget/vX.Y.Z.js` serves it.
pub const LOADER_FILE: &str = "widget.js";

impl Manifest {
    pub fn from_json(text: &str) -> Result<Manifest, serde_json::Error> {
        serde_json::from_str(text)
    }

    pub fn to_json(&self) -> String {
        // A map of strings and numbers always serialises.
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }

    /// The release `/widget.js` serves.
    pub fn latest_release(&self) -> Option<(&str, &Release)> {
        self.versions
            .get_key_value(&self.latest)
            .map(|(v, r)| (v.as_str(), r))
    }

    /// A published file, by version and name. Only names listed here exist, so a server
    /// that looks files up this way can never be walked out of `dist/`.
    pub fn file(&self, version: &str, name: &str) -> Option<&BundleFile> {
        self.versions.get(version)?.files.get(name)
    }

    /// Records a release; `latest` moves to it when it is the highest version.
    pub fn add(&mut self, version: &str, release: Release) {
        let newer = match (Version::parse(version), Version::parse(&self.latest)) {
            (Some(new), Some(old)) => new > old,
            (Some(_), None) => true,
            _ => false,
        };
        if newer {
            self.latest = version.to_owned();
        }
        self.versions.insert(version.to_owned(), release);
    }
}

/// A plain `X.Y.Z` version (published widget versions never carry pre-release tags).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u64, pub u64, pub u64);

impl Version {
    pub fn parse(text: &str) -> Option<Version> {
        let mut parts = text.split('.');
        let mut next = || -> Option<u64> {
            let part = parts.next()?;
            let digits_only = !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
            let no_leading_zero = part == "0" || !part.starts_with('0');
            (digits_only && no_leading_zero).then(|| part.parse().ok())?
        };
        let version = Version(next()?, next()?, next()?);
        parts.next().is_none().then_some(version)
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// `Content-Type` for a bundle file name.
pub fn content_type(file_name: &str) -> &'static str {
    match file_name.rsplit('.').next() {
        Some("js") => "text/javascript; charset=utf-8",
        Some("wasm") => "application/wasm",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

/// The two ways to embed a bot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbedSnippets {
    /// Follows `/widget.js`, i.e. always the newest version.
    pub rolling: String,
    /// One version, verified by the browser against its SRI hash; pins the whole bundle.
    pub pinned: String,
}

/// The snippet that follows `/widget.js` (the newest version).
pub fn rolling_snippet(host: &str, bot_public_id: &str) -> String {
    let host = escape_attr(host.trim_end_matches('/'));
    let bot = escape_attr(bot_public_id);
    format!(r#"<script src="{host}/widget.js" data-bot="{bot}" async></script>"#)
}

/// Builds both snippets. `host` is the server's public origin (`https://chat.example.com`).
pub fn embed_snippets(
    host: &str,
    bot_public_id: &str,
    version: &str,
    loader_integrity: &str,
) -> EmbedSnippets {
    let rolling = rolling_snippet(host, bot_public_id);
    let host = escape_attr(host.trim_end_matches('/'));
    let bot = escape_attr(bot_public_id);
    EmbedSnippets {
        rolling,
        pinned: format!(
            r#"<script src="{host}/widget/v{}.js" integrity="{}" crossorigin="anonymous" data-bot="{bot}" async></script>"#,
            escape_attr(version),
            escape_attr(loader_integrity),
        ),
    }
}

fn escape_attr(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_snippet_carries_integrity_and_crossorigin() {
        let s = embed_snippets(
            "https://chat.example.com/",
            "bot_123",
            "0.1.0",
            "sha384-abc",
        );
        assert_eq!(
            s.rolling,
            r#"<script src="https://chat.example.com/widget.js" data-bot="bot_123" async></script>"#
        );
        assert_eq!(
            s.pinned,
            r#"<script src="https://chat.example.com/widget/v0.1.0.js" integrity="sha384-abc" crossorigin="anonymous" data-bot="bot_123" async></script>"#
        );
    }

    #[test]
    fn snippet_values_cannot_break_out_of_attributes() {
        let s = embed_snippets(
            "https://h",
            "x\"><script>alert(1)</script>",
            "0.1.0",
            "sha384-a",
        );
        assert!(!s.rolling.contains("<script>alert"));
        assert!(s.rolling.contains("x&quot;&gt;&lt;script&gt;"));
    }

    #[test]
    fn versions_parse_strictly_and_order_numerically() {
        assert_eq!(Version::parse("0.10.2"), Some(Version(0, 10, 2)));
        assert!(Version::parse("0.10.2") > Version::parse("0.9.9"));
        for bad in ["1.2", "1.2.3.4", "01.2.3", "1.2.x", "", "1..3", "../1.2.3"] {
            assert_eq!(Version::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn latest_follows_the_highest_version() {
        let mut m = Manifest::default();
        m.add("0.2.0", Release::default());
        m.add("0.1.5", Release::default());
        assert_eq!(m.latest, "0.2.0");
        m.add("0.10.0", Release::default());
        assert_eq!(m.latest_release().map(|(v, _)| v), Some("0.10.0"));
    }

    #[test]
    fn manifest_round_trips_in_the_documented_shape() {
        let text = r#"{"latest":"0.1.0","versions":{"0.1.0":{"published_at":"2026-01-01T00:00:00Z","files":{"widget.js":{"integrity":"sha384-x","bytes":10}}}}}"#;
        let m = Manifest::from_json(text).expect("parses");
        assert_eq!(m.file("0.1.0", "widget.js").map(|f| f.bytes), Some(10));
        assert_eq!(m.file("0.1.0", "../manifest.json"), None);
        assert_eq!(Manifest::from_json(&m.to_json()).expect("round trip"), m);
    }

    #[test]
    fn wasm_is_served_as_wasm() {
        assert_eq!(content_type("parlo_widget_bg.wasm"), "application/wasm");
        assert!(content_type("widget.js").starts_with("text/javascript"));
    }
}
