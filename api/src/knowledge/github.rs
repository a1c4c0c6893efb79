//! A GitHub repository's Markdown under a path, read through the GitHub REST API (base URL
//! from the operator's configuration) with the SSRF-safe fetcher: the tree of the ref
//! (`GET /repos/{owner}/{repo}/git/trees/{ref}?recursive=1`), then each Markdown file
//! (`GET /repos/{owner}/{repo}/contents/{path}?ref={ref}`, base64 content and its
//! `html_url` to cite). The optional token goes only to the API's origin.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

use super::fetch::{FetchError, Fetcher, RequestOptions};

/// Most Markdown files read from one repository.
pub const MAX_FILES: usize = 500;

const ACCEPT: &str = "application/vnd.github+json";

/// One Markdown file of the repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoFile {
    pub path: String,
    /// The blob's SHA (changes with the content).
    pub sha: String,
    pub html_url: Option<String>,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GithubError {
    /// `owner/repo`, path or ref are not what GitHub accepts.
    Invalid(String),
    Fetch(FetchError),
    /// The API answered something that is not what it documents.
    Malformed(String),
    TooManyFiles(usize),
}

impl std::fmt::Display for GithubError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GithubError::Invalid(m) | GithubError::Malformed(m) => f.write_str(m),
            GithubError::Fetch(FetchError::HttpStatus { status: 404, .. }) => f.write_str(
                "GitHub: the repository, path or branch was not found (or the token cannot see it)",
            ),
            GithubError::Fetch(FetchError::HttpStatus {
                status: 401 | 403, ..
            }) => f.write_str("GitHub refused the token (401/403): check its access"),
            GithubError::Fetch(e) => write!(f, "GitHub: {e}"),
            GithubError::TooManyFiles(n) => write!(
                f,
                "the repository has {n} Markdown files under this path, more than {MAX_FILES}: \
                 choose a narrower path"
            ),
        }
    }
}

impl From<FetchError> for GithubError {
    fn from(e: FetchError) -> Self {
        GithubError::Fetch(e)
    }
}

/// `owner/repo` → its two parts, refusing anything GitHub would not accept as names.
pub fn parse_repo(location: &str) -> Result<(String, String), GithubError> {
    let ok = |s: &str| {
        !s.is_empty()
            && s != "."
            && s != ".."
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    match location.trim().split_once('/') {
        Some((owner, repo)) if ok(owner) && ok(repo) => Ok((owner.to_owned(), repo.to_owned())),
        _ => Err(GithubError::Invalid(format!(
            "{location:?} is not a GitHub repository like owner/repo"
        ))),
    }
}

fn api_url(base: &Url, segments: &[&str], query: &[(&str, &str)]) -> Result<Url, GithubError> {
    let mut url = base.clone();
    {
        let mut path = url
            .path_segments_mut()
            .map_err(|_| GithubError::Invalid("the GitHub API URL cannot have a path".into()))?;
        path.pop_if_empty();
        for s in segments {
            path.push(s);
        }
    }
    if !query.is_empty() {
        url.query_pairs_mut().extend_pairs(query);
    }
    Ok(url)
}

fn is_markdown(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    lower.ends_with(".md") || lower.ends_with(".markdown") || lower.ends_with(".mdx")
}

/// Whether `path` lies under `folder` (empty: the whole repository).
fn under(path: &str, folder: &str) -> bool {
    let folder = folder.trim_matches('/');
    folder.is_empty() || path == folder || path.starts_with(&format!("{folder}/"))
}

/// Reads the Markdown files of `owner/repo` under `folder` at `git_ref` (empty: `HEAD`).
pub async fn read_markdown(
    fetcher: &Fetcher,
    api: &Url,
    location: &str,
    folder: &str,
    git_ref: &str,
    token: Option<&SecretString>,
) -> Result<Vec<RepoFile>, GithubError> {
    let (owner, repo) = parse_repo(location)?;
    let git_ref = if git_ref.trim().is_empty() {
        "HEAD"
    } else {
        git_ref.trim()
    };
    let options = RequestOptions {
        accept: Some(ACCEPT),
        bearer: token,
        max_body_bytes: None,
    };
    let tree_url = api_url(
        api,
        &["repos", &owner, &repo, "git", "trees", git_ref],
        &[("recursive", "1")],
    )?;
    #[derive(Deserialize)]
    struct Tree {
        tree: Vec<Entry>,
    }
    #[derive(Deserialize)]
    struct Entry {
        path: String,
        #[serde(rename = "type")]
        kind: String,
        sha: String,
    }
    let tree: Tree = serde_json::from_slice(&fetcher.get(&tree_url, options).await?.body)
        .map_err(|_| GithubError::Malformed("GitHub answered an unreadable tree".into()))?;
    let wanted: Vec<Entry> = tree
        .tree
        .into_iter()
        .filter(|e| e.kind == "blob" && is_markdown(&e.path) && under(&e.path, folder))
        .collect();
    if wanted.len() > MAX_FILES {
        return Err(GithubError::TooManyFiles(wanted.len()));
    }
    let mut files = Vec::with_capacity(wanted.len());
    for e in wanted {
        let mut segments = vec!["repos", owner.as_str(), repo.as_str(), "contents"];
        segments.extend(e.path.split('/'));
        let url = api_url(api, &segments, &[("ref", git_ref)])?;
        #[derive(Deserialize)]
        struct Contents {
            content: String,
            encoding: String,
            html_url: Option<String>,
        }
        let c: Contents = serde_json::from_slice(&fetcher.get(&url, options).await?.body)
            .map_err(|_| GithubError::Malformed(format!("GitHub: {} is unreadable", e.path)))?;
        if c.encoding != "base64" {
            return Err(GithubError::Malformed(format!(
                "GitHub: {} has the encoding {:?}",
                e.path, c.encoding
            )));
        }
        let compact: String = c.content.split_whitespace().collect();
        let bytes = B64
            .decode(compact)
            .map_err(|_| GithubError::Malformed(format!("GitHub: {} is not base64", e.path)))?;
        files.push(RepoFile {
            text: String::from_utf8_lossy(&bytes).into_owned(),
            html_url: c
                .html_url
                .filter(|u| u.starts_with("https://") || u.starts_with("http://")),
            path: e.path,
            sha: e.sha,
        });
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories_are_owner_slash_name_only() {
        assert_eq!(
            parse_repo("acme/docs.site").unwrap(),
            ("acme".into(), "docs.site".into())
        );
        for bad in [
            "acme",
            "acme/",
            "/docs",
            "acme/../x",
            "acme/do cs",
            "a/b/c",
            "../x",
        ] {
            assert!(parse_repo(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn urls_are_built_from_escaped_segments() {
        let base = Url::parse("https://ghe.example/api/v3").unwrap();
        let u = api_url(
            &base,
            &["repos", "a", "b", "contents", "my doc.md"],
            &[("ref", "main")],
        )
        .unwrap();
        assert_eq!(
            u.as_str(),
            "https://ghe.example/api/v3/repos/a/b/contents/my%20doc.md?ref=main"
        );
    }

    #[test]
    fn markdown_under_a_folder() {
        assert!(under("docs/a.md", "docs/") && under("docs/x/b.md", "docs"));
        assert!(!under("docsite/a.md", "docs") && under("a.md", ""));
        assert!(is_markdown("README.MD") && !is_markdown("main.rs"));
    }
}
