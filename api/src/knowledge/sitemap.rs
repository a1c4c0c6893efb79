//! Sitemaps (sitemaps.org): `<urlset>` lists pages, `<sitemapindex>` lists more sitemaps,
//! either may be gzip-compressed, and a plain-text sitemap is one URL per line. This module
//! owns the walk from a root sitemap to the list of pages: it keeps to the root's site, stops
//! at a page and sitemap count, refuses indexes that loop back on themselves, and caps what a
//! compressed sitemap may expand to. Fetching is the caller's: [`SitemapWalk`] says what to
//! fetch next and takes the bytes back, so the walk is testable without a network.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::io::Read;

use flate2::read::GzDecoder;
use quick_xml::Reader;
use quick_xml::events::Event;
use url::Url;

use super::fetch::FetchError;
use super::fetch::robots::FetchSession;

#[derive(Debug, Clone, Copy)]
pub struct SitemapLimits {
    /// Pages one source may list; more is an error rather than a silent cut, so the
    /// customer knows what is indexed.
    pub max_pages: usize,
    /// Sitemap files read for one source, the root included.
    pub max_sitemaps: usize,
    /// Index nesting below the root (the protocol allows none; some sites use one level).
    pub max_depth: usize,
    /// Bytes one sitemap may decompress to (the protocol's own limit is 50 MB).
    pub max_decompressed_bytes: usize,
}

impl Default for SitemapLimits {
    fn default() -> Self {
        Self {
            max_pages: 1_000,
            max_sitemaps: 50,
            max_depth: 2,
            max_decompressed_bytes: 50 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SitemapError {
    NotASitemap { url: String },
    Malformed { url: String },
    TooLarge { url: String, limit: usize },
    Loop { url: String },
    TooDeep { url: String, max: usize },
    TooManySitemaps { max: usize },
    TooManyPages { max: usize },
    Empty { url: String },
    Fetch(FetchError),
}

impl fmt::Display for SitemapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotASitemap { url } => write!(f, "{url} is not a sitemap"),
            Self::Malformed { url } => write!(f, "{url} is not valid sitemap XML"),
            Self::TooLarge { url, limit } => write!(
                f,
                "{url} expands to more than {} MiB",
                limit / (1024 * 1024)
            ),
            Self::Loop { url } => {
                write!(
                    f,
                    "the sitemaps loop: {url} includes a sitemap that includes it"
                )
            }
            Self::TooDeep { url, max } => {
                write!(f, "{url} nests sitemap indexes more than {max} levels deep")
            }
            Self::TooManySitemaps { max } => {
                write!(f, "the sitemap refers to more than {max} sitemap files")
            }
            Self::TooManyPages { max } => write!(
                f,
                "the sitemap lists more than {max} pages; use a smaller sitemap or add pages one by one"
            ),
            Self::Empty { url } => write!(f, "{url} lists no pages of this site"),
            Self::Fetch(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for SitemapError {}

impl From<FetchError> for SitemapError {
    fn from(e: FetchError) -> Self {
        Self::Fetch(e)
    }
}

/// What one sitemap file lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SitemapFile {
    Pages(Vec<Url>),
    Sitemaps(Vec<Url>),
}

/// Parses one sitemap (gzip, XML or plain text). Relative or unparsable `<loc>`s are
/// skipped: the protocol requires absolute URLs.
pub fn parse(url: &Url, bytes: &[u8], limits: &SitemapLimits) -> Result<SitemapFile, SitemapError> {
    let shown = || url.to_string();
    let inflated;
    let bytes = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        GzDecoder::new(bytes)
            .take(limits.max_decompressed_bytes as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|_| SitemapError::Malformed { url: shown() })?;
        if out.len() > limits.max_decompressed_bytes {
            return Err(SitemapError::TooLarge {
                url: shown(),
                limit: limits.max_decompressed_bytes,
            });
        }
        inflated = out;
        &inflated[..]
    } else {
        bytes
    };
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text =
        std::str::from_utf8(bytes).map_err(|_| SitemapError::NotASitemap { url: shown() })?;
    if !text.trim_start().starts_with('<') {
        return plain_text(url, text);
    }
    let mut reader = Reader::from_str(text);
    let mut root: Option<bool> = None; // Some(true) = index
    let mut in_loc = false;
    let mut loc = String::new();
    let mut locs = Vec::new();
    loop {
        match reader
            .read_event()
            .map_err(|_| SitemapError::Malformed { url: shown() })?
        {
            Event::Start(e) => match (root, e.local_name().as_ref()) {
                (None, "urlset") => root = Some(false),
                (None, "sitemapindex") => root = Some(true),
                (None, _) => return Err(SitemapError::NotASitemap { url: shown() }),
                (Some(_), "loc") => {
                    in_loc = true;
                    loc.clear();
                }
                _ => {}
            },
            Event::Empty(e) if root.is_none() => {
                return match e.local_name().as_ref() {
                    "urlset" => Ok(SitemapFile::Pages(Vec::new())),
                    "sitemapindex" => Ok(SitemapFile::Sitemaps(Vec::new())),
                    _ => Err(SitemapError::NotASitemap { url: shown() }),
                };
            }
            Event::Text(t) if in_loc => loc.push_str(&t.xml10_content()),
            Event::CData(t) if in_loc => loc.push_str(&t.xml10_content()),
            Event::GeneralRef(r) if in_loc => match r.resolve_char_ref() {
                Ok(Some(c)) => loc.push(c),
                _ => loc.push_str(quick_xml::escape::resolve_xml_entity(&r).unwrap_or_default()),
            },
            Event::End(e) if e.local_name().as_ref() == "loc" => {
                in_loc = false;
                if let Ok(parsed) = Url::parse(loc.trim()) {
                    locs.push(parsed);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    match root {
        Some(true) => Ok(SitemapFile::Sitemaps(locs)),
        Some(false) => Ok(SitemapFile::Pages(locs)),
        None => Err(SitemapError::NotASitemap { url: shown() }),
    }
}

fn plain_text(url: &Url, text: &str) -> Result<SitemapFile, SitemapError> {
    let mut pages = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        match Url::parse(line) {
            Ok(page) if matches!(page.scheme(), "http" | "https") => pages.push(page),
            _ => {
                return Err(SitemapError::NotASitemap {
                    url: url.to_string(),
                });
            }
        }
    }
    Ok(SitemapFile::Pages(pages))
}

/// Whether `url` belongs to the site of `root`: same host, ignoring a `www.` prefix and
/// http/https. Anything else in a sitemap is dropped, so a sitemap cannot turn our fetcher
/// onto other sites.
pub fn same_site(root: &Url, url: &Url) -> bool {
    fn site(u: &Url) -> Option<String> {
        let host = u.host_str()?.trim_end_matches('.').to_ascii_lowercase();
        Some(host.strip_prefix("www.").map(str::to_owned).unwrap_or(host))
    }
    matches!(url.scheme(), "http" | "https")
        && site(root).is_some()
        && site(root) == site(url)
        && root
            .port_or_known_default()
            .filter(|p| ![80, 443].contains(p))
            == url
                .port_or_known_default()
                .filter(|p| ![80, 443].contains(p))
}

/// The walk from a root sitemap to its pages. Breadth first; each sitemap is read once.
pub struct SitemapWalk {
    root: Url,
    limits: SitemapLimits,
    queue: VecDeque<Url>,
    /// Each seen sitemap and the sitemap that listed it (none for the root): the chain of
    /// parents is what a loop would come back through.
    parents: HashMap<Url, Option<Url>>,
    read: usize,
    pages: Vec<Url>,
    seen_pages: HashSet<Url>,
    pub skipped_other_sites: usize,
}

fn key(url: &Url) -> Url {
    let mut key = url.clone();
    key.set_fragment(None);
    key
}

impl SitemapWalk {
    pub fn new(root: Url, limits: SitemapLimits) -> Self {
        let root = key(&root);
        Self {
            queue: VecDeque::from([root.clone()]),
            parents: HashMap::from([(root.clone(), None)]),
            root,
            limits,
            read: 0,
            pages: Vec::new(),
            seen_pages: HashSet::new(),
            skipped_other_sites: 0,
        }
    }

    /// The next sitemap to fetch, if any.
    pub fn next_sitemap(&mut self) -> Option<Url> {
        self.queue.pop_front()
    }

    fn depth(&self, url: &Url) -> usize {
        let mut depth = 0;
        let mut at = self.parents.get(url).cloned().flatten();
        while let Some(parent) = at {
            depth += 1;
            at = self.parents.get(&parent).cloned().flatten();
        }
        depth
    }

    /// Whether `candidate` is `sitemap` itself or one of the sitemaps that led to it.
    fn is_ancestor(&self, candidate: &Url, sitemap: &Url) -> bool {
        let mut at = Some(sitemap.clone());
        while let Some(current) = at {
            if &current == candidate {
                return true;
            }
            at = self.parents.get(&current).cloned().flatten();
        }
        false
    }

    /// Takes the bytes of `sitemap` (as returned by [`Self::next_sitemap`]).
    pub fn add(&mut self, sitemap: &Url, bytes: &[u8]) -> Result<(), SitemapError> {
        self.read += 1;
        if self.read > self.limits.max_sitemaps {
            return Err(SitemapError::TooManySitemaps {
                max: self.limits.max_sitemaps,
            });
        }
        let sitemap = key(sitemap);
        match parse(&sitemap, bytes, &self.limits)? {
            SitemapFile::Pages(pages) => {
                for page in pages {
                    if !same_site(&self.root, &page) {
                        self.skipped_other_sites += 1;
                        continue;
                    }
                    if self.seen_pages.insert(key(&page)) {
                        if self.pages.len() == self.limits.max_pages {
                            return Err(SitemapError::TooManyPages {
                                max: self.limits.max_pages,
                            });
                        }
                        self.pages.push(key(&page));
                    }
                }
            }
            SitemapFile::Sitemaps(children) => {
                if self.depth(&sitemap) >= self.limits.max_depth {
                    return Err(SitemapError::TooDeep {
                        url: sitemap.to_string(),
                        max: self.limits.max_depth,
                    });
                }
                for child in children {
                    let child = key(&child);
                    if !same_site(&self.root, &child) {
                        self.skipped_other_sites += 1;
                        continue;
                    }
                    if self.is_ancestor(&child, &sitemap) {
                        return Err(SitemapError::Loop {
                            url: child.to_string(),
                        });
                    }
                    // Listed twice by different indexes: read once, not a loop.
                    if self.parents.contains_key(&child) {
                        continue;
                    }
                    if self.parents.len() >= self.limits.max_sitemaps {
                        return Err(SitemapError::TooManySitemaps {
                            max: self.limits.max_sitemaps,
                        });
                    }
                    self.parents.insert(child.clone(), Some(sitemap.clone()));
                    self.queue.push_back(child);
                }
            }
        }
        Ok(())
    }

    /// The pages found, in sitemap order; an error if there are none.
    pub fn finish(self) -> Result<Vec<Url>, SitemapError> {
        if self.pages.is_empty() {
            return Err(SitemapError::Empty {
                url: self.root.to_string(),
            });
        }
        Ok(self.pages)
    }
}

/// Walks a sitemap with a fetch session (robots.txt, SSRF rules and caps apply to every
/// sitemap file).
pub async fn discover(
    session: &mut FetchSession<'_>,
    root: &Url,
    limits: SitemapLimits,
) -> Result<Vec<Url>, SitemapError> {
    let mut walk = SitemapWalk::new(root.clone(), limits);
    while let Some(sitemap) = walk.next_sitemap() {
        let fetched = session.get(&sitemap).await?;
        walk.add(&sitemap, &fetched.body)?;
    }
    walk.finish()
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::Compression;
    use flate2::write::GzEncoder;

    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    fn urlset(locs: &[&str]) -> String {
        let urls: String = locs
            .iter()
            .map(|l| format!("<url><loc>{l}</loc><lastmod>2025-01-01</lastmod></url>"))
            .collect();
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>"#
        )
    }

    fn index(locs: &[&str]) -> String {
        let maps: String = locs
            .iter()
            .map(|l| format!("<sitemap><loc>{l}</loc></sitemap>"))
            .collect();
        format!(
            r#"<?xml version="1.0"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{maps}</sitemapindex>"#
        )
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    /// Runs a walk over an in-memory site.
    fn walk(
        root: &str,
        site: &[(&str, Vec<u8>)],
        limits: SitemapLimits,
    ) -> Result<Vec<String>, SitemapError> {
        let mut walk = SitemapWalk::new(url(root), limits);
        while let Some(next) = walk.next_sitemap() {
            let body = &site
                .iter()
                .find(|(u, _)| *u == next.as_str())
                .unwrap_or_else(|| panic!("unexpected fetch {next}"))
                .1;
            walk.add(&next, body)?;
        }
        Ok(walk.finish()?.iter().map(Url::to_string).collect())
    }

    #[test]
    fn urlset_with_entities_and_cdata_is_parsed() {
        let xml = r#"<?xml version="1.0"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
  <url><loc> https://example.com/a?x=1&amp;y=2 </loc></url>
  <url><loc><![CDATA[https://example.com/b]]></loc></url>
  <url><loc>/relative/is/skipped</loc></url>
</urlset>"#;
        let parsed = parse(
            &url("https://example.com/sitemap.xml"),
            xml.as_bytes(),
            &SitemapLimits::default(),
        )
        .unwrap();
        assert_eq!(
            parsed,
            SitemapFile::Pages(vec![
                url("https://example.com/a?x=1&y=2"),
                url("https://example.com/b")
            ])
        );
    }

    #[test]
    fn index_gzip_and_same_site_filter() {
        let site = [
            (
                "https://example.com/sitemap.xml",
                index(&[
                    "https://example.com/a.xml.gz",
                    "https://www.example.com/b.xml",
                    "https://evil.test/c.xml",
                ])
                .into_bytes(),
            ),
            (
                "https://example.com/a.xml.gz",
                gzip(
                    urlset(&["https://example.com/one", "https://example.com/two#frag"]).as_bytes(),
                ),
            ),
            (
                "https://www.example.com/b.xml",
                urlset(&[
                    "http://www.example.com/three",
                    "https://other.test/x",
                    "https://example.com/one",
                ])
                .into_bytes(),
            ),
        ];
        let pages = walk(
            "https://example.com/sitemap.xml",
            &site,
            SitemapLimits::default(),
        )
        .unwrap();
        assert_eq!(
            pages,
            vec![
                "https://example.com/one",
                "https://example.com/two",
                "http://www.example.com/three"
            ]
        );
    }

    #[test]
    fn an_index_that_includes_itself_is_a_loop() {
        let site = [(
            "https://example.com/sitemap.xml",
            index(&["https://example.com/sitemap.xml"]).into_bytes(),
        )];
        let err = walk(
            "https://example.com/sitemap.xml",
            &site,
            SitemapLimits::default(),
        )
        .unwrap_err();
        assert!(matches!(err, SitemapError::Loop { .. }), "{err:?}");
    }

    #[test]
    fn indexes_that_cycle_are_a_loop_but_a_shared_child_is_not() {
        let cycle = [
            (
                "https://example.com/root.xml",
                index(&["https://example.com/a.xml"]).into_bytes(),
            ),
            (
                "https://example.com/a.xml",
                index(&["https://example.com/root.xml"]).into_bytes(),
            ),
        ];
        let err = walk(
            "https://example.com/root.xml",
            &cycle,
            SitemapLimits::default(),
        )
        .unwrap_err();
        assert!(
            matches!(err, SitemapError::Loop { ref url } if url.ends_with("/root.xml")),
            "{err:?}"
        );

        let diamond = [
            (
                "https://example.com/root.xml",
                index(&[
                    "https://example.com/a.xml",
                    "https://example.com/a.xml",
                    "https://example.com/b.xml",
                ])
                .into_bytes(),
            ),
            (
                "https://example.com/a.xml",
                urlset(&["https://example.com/p"]).into_bytes(),
            ),
            (
                "https://example.com/b.xml",
                urlset(&["https://example.com/p", "https://example.com/q"]).into_bytes(),
            ),
        ];
        let pages = walk(
            "https://example.com/root.xml",
            &diamond,
            SitemapLimits::default(),
        )
        .unwrap();
        assert_eq!(
            pages,
            vec!["https://example.com/p", "https://example.com/q"]
        );
    }

    #[test]
    fn nesting_is_bounded() {
        let site = [
            (
                "https://example.com/0.xml",
                index(&["https://example.com/1.xml"]).into_bytes(),
            ),
            (
                "https://example.com/1.xml",
                index(&["https://example.com/2.xml"]).into_bytes(),
            ),
            (
                "https://example.com/2.xml",
                index(&["https://example.com/3.xml"]).into_bytes(),
            ),
            (
                "https://example.com/3.xml",
                urlset(&["https://example.com/p"]).into_bytes(),
            ),
        ];
        let err = walk("https://example.com/0.xml", &site, SitemapLimits::default()).unwrap_err();
        assert!(
            matches!(err, SitemapError::TooDeep { max: 2, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn page_and_sitemap_counts_are_bounded() {
        let many: Vec<String> = (0..20)
            .map(|i| format!("https://example.com/p{i}"))
            .collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        let site = [("https://example.com/s.xml", urlset(&refs).into_bytes())];
        let limits = SitemapLimits {
            max_pages: 10,
            ..SitemapLimits::default()
        };
        assert_eq!(
            walk("https://example.com/s.xml", &site, limits),
            Err(SitemapError::TooManyPages { max: 10 })
        );
        let limits = SitemapLimits {
            max_pages: 20,
            ..SitemapLimits::default()
        };
        assert_eq!(
            walk("https://example.com/s.xml", &site, limits)
                .unwrap()
                .len(),
            20
        );

        let maps: Vec<String> = (0..10)
            .map(|i| format!("https://example.com/m{i}.xml"))
            .collect();
        let refs: Vec<&str> = maps.iter().map(String::as_str).collect();
        let site = [("https://example.com/i.xml", index(&refs).into_bytes())];
        let limits = SitemapLimits {
            max_sitemaps: 5,
            ..SitemapLimits::default()
        };
        assert_eq!(
            walk("https://example.com/i.xml", &site, limits),
            Err(SitemapError::TooManySitemaps { max: 5 })
        );
    }

    #[test]
    fn gzip_bomb_is_capped() {
        // 8 MiB of zeros gzips to ~8 KiB; the cap is 1 MiB.
        let bomb = gzip(&vec![b' '; 8 * 1024 * 1024]);
        assert!(bomb.len() < 64 * 1024);
        let limits = SitemapLimits {
            max_decompressed_bytes: 1024 * 1024,
            ..SitemapLimits::default()
        };
        let err = parse(&url("https://example.com/s.xml.gz"), &bomb, &limits).unwrap_err();
        assert!(matches!(err, SitemapError::TooLarge { .. }), "{err:?}");
    }

    #[test]
    fn junk_is_not_a_sitemap_and_empty_is_an_error() {
        let limits = SitemapLimits::default();
        let u = url("https://example.com/s.xml");
        assert!(matches!(
            parse(&u, b"<html><body>hi</body></html>", &limits),
            Err(SitemapError::NotASitemap { .. })
        ));
        assert!(matches!(
            parse(&u, b"<urlset><url><loc>x</url>", &limits),
            Err(SitemapError::Malformed { .. })
        ));
        assert!(matches!(
            parse(&u, b"\x00\xff\xfe", &limits),
            Err(SitemapError::NotASitemap { .. })
        ));
        assert_eq!(
            parse(
                &u,
                b"https://example.com/a\nhttps://example.com/b\n",
                &limits
            )
            .unwrap(),
            SitemapFile::Pages(vec![
                url("https://example.com/a"),
                url("https://example.com/b")
            ])
        );
        let site = [(
            "https://example.com/s.xml",
            urlset(&["https://elsewhere.test/"]).into_bytes(),
        )];
        assert!(matches!(
            walk("https://example.com/s.xml", &site, limits),
            Err(SitemapError::Empty { .. })
        ));
    }

    #[test]
    fn same_site_rules() {
        let root = url("https://www.example.com/sitemap.xml");
        assert!(same_site(&root, &url("http://example.com/a")));
        assert!(same_site(&root, &url("https://WWW.EXAMPLE.COM./b")));
        assert!(!same_site(&root, &url("https://docs.example.com/")));
        assert!(!same_site(&root, &url("https://example.com.evil.test/")));
        assert!(!same_site(&root, &url("https://example.com:8443/")));
        assert!(!same_site(&root, &url("ftp://example.com/")));
    }

    #[tokio::test]
    async fn discover_walks_a_served_sitemap_through_the_fetch_session() {
        use std::sync::{Arc, OnceLock};

        use crate::knowledge::fetch::Fetcher;
        use crate::knowledge::fetch::robots::FetchSession;
        use crate::knowledge::fetch::tests::{TestServer, config, ok, status};

        // The bodies name the server's own address, known only once it listens.
        let base = Arc::new(OnceLock::<String>::new());
        let known = base.clone();
        let server = TestServer::start("127.0.0.1", move |path| {
            let base = known.get().expect("address set");
            match path {
                "/robots.txt" => ok("text/plain", "User-agent: *\nDisallow: /private/\n"),
                "/ok.xml" => ok("application/xml", &index(&[&format!("{base}/a.xml")])),
                "/blocked.xml" => ok(
                    "application/xml",
                    &index(&[&format!("{base}/a.xml"), &format!("{base}/private/b.xml")]),
                ),
                "/a.xml" => ok(
                    "application/xml",
                    &urlset(&[
                        &format!("{base}/one"),
                        "https://other.test/x",
                        &format!("{base}/two"),
                    ]),
                ),
                _ => status(404),
            }
        })
        .await;
        base.set(format!("http://{}", server.addr)).unwrap();
        let fetcher = Fetcher::new(config(&["127.0.0.1/32"])).unwrap();
        let mut session = FetchSession::new(&fetcher);
        let pages = discover(
            &mut session,
            &server.url("/ok.xml"),
            SitemapLimits::default(),
        )
        .await
        .unwrap();
        assert_eq!(pages, vec![server.url("/one"), server.url("/two")]);
        // A sitemap that robots.txt disallows fails the source with that reason.
        let err = discover(
            &mut session,
            &server.url("/blocked.xml"),
            SitemapLimits::default(),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(
                err,
                SitemapError::Fetch(FetchError::RobotsDisallowed { .. })
            ),
            "{err:?}"
        );
        // A sitemap on a refused address fails before any connection.
        let strict = Fetcher::new(config(&[])).unwrap();
        let mut session = FetchSession::new(&strict);
        let err = discover(
            &mut session,
            &server.url("/ok.xml"),
            SitemapLimits::default(),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(err, SitemapError::Fetch(ref e) if e.is_forbidden()),
            "{err:?}"
        );
    }
}
