//! robots.txt for page and sitemap fetches, read once per origin within one fetch session
//! (one source's ingestion) and parsed with `texting_robots`.
//!
//! The choices follow Google's documented behaviour, so a site owner's expectations hold:
//! - 2xx: the rules for our product token (`Parlo`), else for `*`, decide;
//! - 4xx other than 429 (missing, forbidden): everything is allowed;
//! - 5xx and 429, an unreadable or oversized file, a timeout or a broken connection:
//!   nothing is fetched from that origin during this session (the site is struggling or
//!   its rules are unknown, so we stay away rather than guess);
//! - robots.txt redirects are followed (at most five, each re-vetted);
//! - a robots.txt on a refused address makes the page refused for the same reason.

use std::collections::HashMap;

use texting_robots::Robot;
use url::Url;

use futures_util::future::BoxFuture;

use super::fetcher::{FetchError, Fetched, Fetcher, HopGate, RequestOptions, shown};

/// Google reads at most 500 KiB of a robots.txt; a larger one is unreadable for us.
const ROBOTS_MAX_BYTES: usize = 500 * 1024;

enum Verdict {
    AllowAll,
    Rules(Box<Robot>),
    Unavailable {
        robots_url: String,
        status: Option<u16>,
    },
}

impl HopGate for RobotsCache {
    fn check<'a>(
        &'a mut self,
        fetcher: &'a Fetcher,
        url: &'a Url,
    ) -> BoxFuture<'a, Result<(), FetchError>> {
        Box::pin(RobotsCache::check(self, fetcher, url))
    }
}

/// The robots.txt verdicts of one fetch session, keyed by origin (scheme, host, port).
pub(super) struct RobotsCache {
    agent: String,
    verdicts: HashMap<String, Verdict>,
}

impl RobotsCache {
    fn new(user_agent: &str) -> Self {
        // The product token is what robots.txt groups name: "Parlo" in "Parlo/0.1 (+…)".
        let agent = user_agent
            .split(['/', ' '])
            .next()
            .unwrap_or(user_agent)
            .to_owned();
        Self {
            agent,
            verdicts: HashMap::new(),
        }
    }

    /// `Ok` when `url` may be fetched.
    pub(super) async fn check(&mut self, fetcher: &Fetcher, url: &Url) -> Result<(), FetchError> {
        let origin = url.origin().ascii_serialization();
        if !self.verdicts.contains_key(&origin) {
            let verdict = self.load(fetcher, url).await?;
            self.verdicts.insert(origin.clone(), verdict);
        }
        match &self.verdicts[&origin] {
            Verdict::AllowAll => Ok(()),
            Verdict::Rules(robot) if robot.allowed(url.as_str()) => Ok(()),
            Verdict::Rules(_) => Err(FetchError::RobotsDisallowed { url: shown(url) }),
            Verdict::Unavailable { robots_url, status } => Err(FetchError::RobotsUnavailable {
                robots_url: robots_url.clone(),
                status: *status,
            }),
        }
    }

    async fn load(&self, fetcher: &Fetcher, url: &Url) -> Result<Verdict, FetchError> {
        let robots_url = url
            .join("/robots.txt")
            .map_err(|e| FetchError::InvalidUrl(e.to_string()))?;
        let options = RequestOptions {
            accept: Some("text/plain"),
            bearer: None,
            max_body_bytes: Some(ROBOTS_MAX_BYTES),
        };
        // Boxed: `fetch` may call back into `check`, though never for this request (None).
        let fetched: Result<Fetched, FetchError> =
            Box::pin(fetcher.fetch(&robots_url, options, None)).await;
        let unavailable = |status| Verdict::Unavailable {
            robots_url: shown(&robots_url),
            status,
        };
        Ok(match fetched {
            Ok(f) if (200..300).contains(&f.status) => match Robot::new(&self.agent, &f.body) {
                Ok(robot) => Verdict::Rules(Box::new(robot)),
                Err(_) => unavailable(None),
            },
            Ok(f) if f.status == 429 || f.status >= 500 => unavailable(Some(f.status)),
            Ok(_) => Verdict::AllowAll,
            Err(e) if e.is_forbidden() => return Err(e),
            Err(_) => unavailable(None),
        })
    }
}

/// Fetches for one source (a page, or a sitemap and its pages), honouring robots.txt.
pub struct FetchSession<'a> {
    fetcher: &'a Fetcher,
    robots: RobotsCache,
}

impl<'a> FetchSession<'a> {
    pub fn new(fetcher: &'a Fetcher) -> Self {
        Self {
            robots: RobotsCache::new(&fetcher.config().user_agent),
            fetcher,
        }
    }

    /// Fetches a web page or sitemap: robots.txt checked for the URL and every redirect
    /// target, non-2xx answers are errors.
    pub async fn get(&mut self, url: &Url) -> Result<Fetched, FetchError> {
        self.fetcher
            .fetch(url, RequestOptions::default(), Some(&mut self.robots))
            .await?
            .error_for_status()
    }
}
