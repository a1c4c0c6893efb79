//! Where the published widget bundles come from: the `dist/` directory of the repository,
//! built into the binary at compile time (so `parlo serve` started anywhere serves the
//! widget), or the directory named by `PARLO_DIST_DIR`, read per request (what is on disk is
//! what is served). Read by the bundle routes (`widget/assets.rs`), the embed page's pinned
//! snippets and the trust page's widget check. Must never build a path from unchecked input:
//! callers only ask for names listed in the manifest.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use parlo_publish::Manifest;

/// The repository's `dist/`, as it was when this binary was compiled.
#[derive(rust_embed::RustEmbed)]
#[folder = "../dist/"]
struct Embedded;

#[derive(Debug, Clone)]
pub enum Dist {
    /// The bundles built into the binary.
    Embedded,
    /// `PARLO_DIST_DIR`.
    Dir(PathBuf),
}

impl Dist {
    pub fn new(dir: Option<&Path>) -> Self {
        match dir {
            Some(d) => Dist::Dir(d.to_owned()),
            None => Dist::Embedded,
        }
    }

    /// Where the bundles come from, for messages.
    pub fn describe(&self) -> String {
        match self {
            Dist::Embedded => "the widget bundles built into this binary".to_owned(),
            Dist::Dir(d) => format!("PARLO_DIST_DIR {}", d.display()),
        }
    }

    /// The bytes of `rel` (`manifest.json`, `widget/v1.2.3/widget.js`), `None` if absent.
    pub async fn read(&self, rel: &str) -> Option<Cow<'static, [u8]>> {
        match self {
            Dist::Embedded => Embedded::get(rel).map(|f| f.data),
            Dist::Dir(d) => tokio::fs::read(d.join(rel)).await.ok().map(Cow::Owned),
        }
    }

    /// The same, blocking (start-up only).
    fn read_now(&self, rel: &str) -> std::io::Result<Cow<'static, [u8]>> {
        match self {
            Dist::Embedded => Embedded::get(rel).map(|f| f.data).ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::NotFound, "not built into the binary")
            }),
            Dist::Dir(d) => std::fs::read(d.join(rel)).map(Cow::Owned),
        }
    }

    /// The manifest as it is now.
    pub async fn manifest(&self) -> anyhow::Result<Manifest> {
        let bytes = self
            .read("manifest.json")
            .await
            .with_context(|| format!("no manifest.json in {}", self.describe()))?;
        parse(self, &bytes)
    }

    /// The manifest at start-up; an error says what is wrong and how to fix it.
    pub fn load_manifest(&self) -> anyhow::Result<Manifest> {
        let bytes = self.read_now("manifest.json").with_context(|| {
            format!(
                "no published widget: manifest.json is missing from {}{}",
                self.describe(),
                match self {
                    Dist::Embedded =>
                        " (build the binary from a checkout whose dist/ holds published \
                                   bundles, or set PARLO_DIST_DIR)",
                    Dist::Dir(_) =>
                        " (point PARLO_DIST_DIR at a directory written by widget/publish.sh, \
                                  or unset it to serve the bundles built into the binary)",
                }
            )
        })?;
        let manifest = parse(self, &bytes)?;
        if !manifest.versions.contains_key(&manifest.latest) {
            bail!(
                "the widget manifest in {} names latest version {} but does not list it",
                self.describe(),
                manifest.latest
            );
        }
        Ok(manifest)
    }
}

fn parse(dist: &Dist, bytes: &[u8]) -> anyhow::Result<Manifest> {
    serde_json::from_slice::<Manifest>(bytes)
        .with_context(|| format!("the widget manifest in {} is invalid", dist.describe()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_published_bundles_are_built_in() {
        let m = Dist::Embedded.load_manifest().unwrap();
        let latest = &m.versions[&m.latest];
        for name in latest.files.keys() {
            assert!(
                Embedded::get(&format!("widget/v{}/{name}", m.latest)).is_some(),
                "{name} is not built in"
            );
        }
    }

    #[test]
    fn a_directory_without_a_manifest_is_refused_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let err = Dist::new(Some(dir.path())).load_manifest().unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("PARLO_DIST_DIR"), "{msg}");
        assert!(msg.contains("manifest.json"), "{msg}");
    }
}
