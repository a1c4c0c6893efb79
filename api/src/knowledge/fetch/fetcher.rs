//! The fetcher itself: configuration, the vetting resolver, requests with their caps and
//! hop-by-hop redirects, and the errors a customer sees.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::future::BoxFuture;
use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{self, HeaderMap, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::policy::{self, AddressClass, AllowList, UrlRefusal};

/// What must allow every hop of a fetch before it is sent (robots.txt for pages and
/// sitemaps). A trait so the fetcher does not depend on its one implementation.
pub(super) trait HopGate: Send {
    fn check<'a>(
        &'a mut self,
        fetcher: &'a Fetcher,
        url: &'a Url,
    ) -> BoxFuture<'a, Result<(), FetchError>>;
}

/// Redirects are capped at five whatever the configuration says (issue 12).
pub const MAX_REDIRECTS: usize = 5;

/// Operator settings for server-side fetching. Nothing here comes from a tenant.
#[derive(Debug, Clone)]
pub struct FetchConfig {
    /// Sent as `User-Agent`, e.g. `Parlo/0.1.0 (+https://chat.example.com)`; its first token
    /// (`Parlo`) is the name robots.txt groups are matched against.
    pub user_agent: String,
    /// Largest body read; the stream is abandoned as soon as it is passed.
    pub max_body_bytes: usize,
    /// One fetch, every redirect and the body included.
    pub total_timeout: Duration,
    pub connect_timeout: Duration,
    /// Redirects followed before giving up; at most [`MAX_REDIRECTS`].
    pub max_redirects: usize,
    /// Networks the operator lets fetches reach although they are refused by default
    /// (tests reach their own loopback servers this way). Empty by default.
    pub allow: Vec<IpNet>,
}

impl FetchConfig {
    /// The defaults: 10 MiB, 30 s in all, 5 s to connect, 5 redirects, no exceptions.
    pub fn new(public_url: &Url) -> Self {
        Self {
            user_agent: default_user_agent(public_url),
            max_body_bytes: 10 * 1024 * 1024,
            total_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            max_redirects: MAX_REDIRECTS,
            allow: Vec::new(),
        }
    }
}

/// `Parlo/<version> (+<public url>)`: says who fetches and where to learn more, like
/// well-behaved crawlers do.
pub fn default_user_agent(public_url: &Url) -> String {
    format!(
        "Parlo/{} (+{})",
        env!("CARGO_PKG_VERSION"),
        public_url.as_str().trim_end_matches('/')
    )
}

/// Why a fetch failed. `Display` is shown to the customer next to the source: it names the
/// URL without its query string, never a header value and never a response body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    InvalidUrl(String),
    UnsupportedScheme(String),
    CredentialsInUrl,
    ForbiddenName {
        host: String,
    },
    ForbiddenAddress {
        host: String,
        ip: IpAddr,
        class: AddressClass,
    },
    Dns {
        host: String,
    },
    Connect {
        host: String,
    },
    Timeout {
        url: String,
        secs: u64,
    },
    TooLarge {
        url: String,
        limit: usize,
    },
    TooManyRedirects {
        url: String,
        max: usize,
    },
    BadRedirect {
        url: String,
    },
    HttpStatus {
        url: String,
        status: u16,
    },
    RateLimited {
        url: String,
        retry_after_secs: Option<u64>,
    },
    RobotsDisallowed {
        url: String,
    },
    /// robots.txt answered 5xx or 429, or could not be read: treated as "disallow all",
    /// as Google does, so a struggling site is not crawled harder.
    RobotsUnavailable {
        robots_url: String,
        status: Option<u16>,
    },
    Transport {
        url: String,
    },
    Setup(String),
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidUrl(why) => write!(f, "the address is not a valid URL ({why})"),
            Self::UnsupportedScheme(scheme) => {
                write!(
                    f,
                    "only http and https addresses can be fetched, not {scheme}:"
                )
            }
            Self::CredentialsInUrl => {
                f.write_str("addresses with a user name or password cannot be fetched")
            }
            Self::ForbiddenName { host } => {
                write!(
                    f,
                    "{host} is a cloud metadata service and cannot be fetched"
                )
            }
            Self::ForbiddenAddress { host, ip, class } if host == &ip.to_string() => {
                write!(f, "{ip} is {class} and cannot be fetched")
            }
            Self::ForbiddenAddress { host, ip, class } => {
                write!(f, "{host} points to {ip}, {class}, and cannot be fetched")
            }
            Self::Dns { host } => write!(f, "{host} could not be found (DNS)"),
            Self::Connect { host } => write!(f, "could not connect to {host}"),
            Self::Timeout { url, secs } => write!(f, "{url} did not answer within {secs} s"),
            Self::TooLarge { url, limit } => {
                write!(f, "{url} is larger than the limit of {} KiB", limit / 1024)
            }
            Self::TooManyRedirects { url, max } => {
                write!(f, "{url} redirects more than {max} times")
            }
            Self::BadRedirect { url } => write!(f, "{url} redirects to an invalid address"),
            Self::HttpStatus { url, status } => write!(f, "{url} answered HTTP {status}"),
            Self::RateLimited {
                url,
                retry_after_secs: Some(secs),
            } => write!(f, "{url} is rate limited; retry in {secs} s"),
            Self::RateLimited { url, .. } => write!(f, "{url} is rate limited"),
            Self::RobotsDisallowed { url } => {
                write!(f, "the site's robots.txt does not allow fetching {url}")
            }
            Self::RobotsUnavailable {
                robots_url,
                status: Some(status),
            } => write!(
                f,
                "{robots_url} answered HTTP {status}, so the site is not fetched for now"
            ),
            Self::RobotsUnavailable { robots_url, .. } => write!(
                f,
                "{robots_url} could not be read, so the site is not fetched for now"
            ),
            Self::Transport { url } => write!(f, "the connection to {url} failed"),
            Self::Setup(why) => write!(f, "the fetcher could not start: {why}"),
        }
    }
}

impl std::error::Error for FetchError {}

impl FetchError {
    /// Refused by the address rules (as opposed to a failure of the remote site).
    pub fn is_forbidden(&self) -> bool {
        matches!(
            self,
            Self::ForbiddenAddress { .. }
                | Self::ForbiddenName { .. }
                | Self::UnsupportedScheme(_)
                | Self::CredentialsInUrl
        )
    }
}

/// A URL as it may appear in a message: no query string or fragment, which can carry
/// signatures or tokens.
pub(super) fn shown(url: &Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.set_fragment(None);
    shown.to_string()
}

fn refusal_error(url: &Url, refusal: UrlRefusal) -> FetchError {
    let host = url.host_str().unwrap_or_default().to_owned();
    match refusal {
        UrlRefusal::Scheme(scheme) => FetchError::UnsupportedScheme(scheme),
        UrlRefusal::Credentials => FetchError::CredentialsInUrl,
        UrlRefusal::NoHost => FetchError::InvalidUrl("no host".into()),
        UrlRefusal::MetadataName(host) => FetchError::ForbiddenName { host },
        UrlRefusal::Address { ip, class } => FetchError::ForbiddenAddress {
            host: host.trim_matches(['[', ']']).to_owned(),
            ip,
            class,
        },
    }
}

/// Looks names up. The system resolver in production; tests substitute their own to point a
/// name anywhere without touching DNS.
pub trait HostLookup: Send + Sync + 'static {
    fn lookup(&self, host: String) -> BoxFuture<'static, io::Result<Vec<IpAddr>>>;
}

/// The operating system's resolver (`getaddrinfo`, through tokio).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemLookup;

impl HostLookup for SystemLookup {
    fn lookup(&self, host: String) -> BoxFuture<'static, io::Result<Vec<IpAddr>>> {
        Box::pin(async move {
            let addrs = tokio::net::lookup_host((host.as_str(), 0)).await?;
            Ok(addrs.map(|a| a.ip()).collect())
        })
    }
}

/// Why the resolver refused a name; travels through reqwest's error chain and is found
/// again by [`Fetcher`] with a downcast, so the customer reads which address was refused.
#[derive(Debug)]
pub(super) enum ResolveError {
    NotFound {
        host: String,
    },
    Forbidden {
        host: String,
        ip: IpAddr,
        class: AddressClass,
    },
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotFound { host } => write!(f, "{host} has no address"),
            Self::Forbidden { host, ip, class } => write!(f, "{host} resolves to {ip} ({class})"),
        }
    }
}

impl StdError for ResolveError {}

/// Resolves a name and vets every address before reqwest sees any: if one is refused the
/// whole name is, since a connection attempt could otherwise land on it (round robin,
/// happy eyeballs). reqwest connects only to the addresses returned here.
pub struct VettingResolver {
    lookup: Arc<dyn HostLookup>,
    allow: AllowList,
}

impl VettingResolver {
    pub fn new(lookup: Arc<dyn HostLookup>, allow: AllowList) -> Self {
        Self { lookup, allow }
    }

    pub(super) async fn vetted(&self, host: String) -> Result<Vec<IpAddr>, ResolveError> {
        let addrs = self
            .lookup
            .lookup(host.clone())
            .await
            .map_err(|_| ResolveError::NotFound { host: host.clone() })?;
        if addrs.is_empty() {
            return Err(ResolveError::NotFound { host });
        }
        for &ip in &addrs {
            self.allow
                .check(ip)
                .map_err(|class| ResolveError::Forbidden {
                    host: host.clone(),
                    ip,
                    class,
                })?;
        }
        Ok(addrs)
    }
}

impl Resolve for VettingResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        let this = Self {
            lookup: self.lookup.clone(),
            allow: self.allow.clone(),
        };
        Box::pin(async move {
            let addrs = this.vetted(host).await?;
            // Port 0 is replaced by reqwest with the URL's port (or the scheme's default).
            let addrs: Addrs = Box::new(addrs.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

/// What one request carries besides the URL.
#[derive(Default, Clone, Copy)]
pub struct RequestOptions<'a> {
    pub accept: Option<&'a str>,
    /// Sent as `Authorization: Bearer …` only to the origin of the first URL: a redirect to
    /// another host never receives it.
    pub bearer: Option<&'a SecretString>,
    /// Overrides [`FetchConfig::max_body_bytes`] downwards (robots.txt is capped smaller).
    pub max_body_bytes: Option<usize>,
}

impl fmt::Debug for RequestOptions<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestOptions")
            .field("accept", &self.accept)
            .field("bearer", &self.bearer.map(|_| "[redacted]"))
            .field("max_body_bytes", &self.max_body_bytes)
            .finish()
    }
}

/// A fetched response after redirects. Bodies of non-2xx answers are not read.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// Where the content came from after redirects: relative links resolve against it.
    pub url: Url,
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Bytes,
    retry_after_secs: Option<u64>,
    rate_limit_exhausted: bool,
}

impl Fetched {
    /// Turns a non-2xx answer into the error the customer sees.
    pub fn error_for_status(self) -> Result<Self, FetchError> {
        let url = shown(&self.url);
        match self.status {
            200..=299 => Ok(self),
            429 => Err(FetchError::RateLimited {
                url,
                retry_after_secs: self.retry_after_secs,
            }),
            // GitHub says "rate limited" with 403 and `x-ratelimit-remaining: 0`.
            403 if self.rate_limit_exhausted => Err(FetchError::RateLimited {
                url,
                retry_after_secs: self.retry_after_secs,
            }),
            status => Err(FetchError::HttpStatus { url, status }),
        }
    }
}

/// The SSRF-safe client. Cheap to clone; one per process is enough.
#[derive(Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    config: Arc<FetchConfig>,
    allow: AllowList,
}

impl Fetcher {
    pub fn new(config: FetchConfig) -> Result<Self, FetchError> {
        Self::with_lookup(config, Arc::new(SystemLookup))
    }

    /// As [`Fetcher::new`] with another resolver (tests).
    pub fn with_lookup(
        mut config: FetchConfig,
        lookup: Arc<dyn HostLookup>,
    ) -> Result<Self, FetchError> {
        config.max_redirects = config.max_redirects.min(MAX_REDIRECTS);
        let allow = AllowList::new(config.allow.clone());
        let user_agent = HeaderValue::from_str(&config.user_agent)
            .map_err(|_| FetchError::Setup("the user agent is not a valid header".into()))?;
        let client = reqwest::Client::builder()
            .user_agent(user_agent)
            // Redirects are followed by us, so every hop is vetted before it is connected to.
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would resolve and connect on our behalf, past every check here.
            .no_proxy()
            .dns_resolver(Arc::new(VettingResolver::new(lookup, allow.clone())))
            .connect_timeout(config.connect_timeout)
            .referer(false)
            .build()
            .map_err(|_| FetchError::Setup("the HTTP client could not be built".into()))?;
        Ok(Self {
            client,
            config: Arc::new(config),
            allow,
        })
    }

    pub fn config(&self) -> &FetchConfig {
        &self.config
    }

    /// Fetches `url`, following redirects, without robots.txt (the GitHub API, or a file
    /// a customer pointed at explicitly). Non-2xx answers are errors.
    pub async fn get(&self, url: &Url, options: RequestOptions<'_>) -> Result<Fetched, FetchError> {
        self.fetch(url, options, None).await?.error_for_status()
    }

    /// Fetches with the total time cap; `robots` checks every hop when given.
    pub(super) async fn fetch(
        &self,
        url: &Url,
        options: RequestOptions<'_>,
        robots: Option<&mut dyn HopGate>,
    ) -> Result<Fetched, FetchError> {
        let total = self.config.total_timeout;
        tokio::time::timeout(total, self.follow(url, options, robots))
            .await
            .unwrap_or_else(|_| {
                Err(FetchError::Timeout {
                    url: shown(url),
                    secs: total.as_secs().max(1),
                })
            })
    }

    async fn follow(
        &self,
        url: &Url,
        options: RequestOptions<'_>,
        mut robots: Option<&mut dyn HopGate>,
    ) -> Result<Fetched, FetchError> {
        let origin = url.origin();
        let mut current = url.clone();
        let mut hops = 0;
        loop {
            policy::check_url(&current, &self.allow).map_err(|r| refusal_error(&current, r))?;
            if let Some(cache) = robots.as_deref_mut() {
                cache.check(self, &current).await?;
            }
            let bearer = options.bearer.filter(|_| current.origin() == origin);
            let response = self.send(&current, options.accept, bearer).await?;
            let status = response.status();
            if status.is_redirection() && status != reqwest::StatusCode::NOT_MODIFIED {
                let next = response
                    .headers()
                    .get(header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|loc| current.join(loc).ok())
                    .ok_or_else(|| FetchError::BadRedirect {
                        url: shown(&current),
                    })?;
                hops += 1;
                if hops > self.config.max_redirects {
                    return Err(FetchError::TooManyRedirects {
                        url: shown(url),
                        max: self.config.max_redirects,
                    });
                }
                current = next;
                continue;
            }
            return self.read(current, response, options.max_body_bytes).await;
        }
    }

    async fn send(
        &self,
        url: &Url,
        accept: Option<&str>,
        bearer: Option<&SecretString>,
    ) -> Result<reqwest::Response, FetchError> {
        let mut headers = HeaderMap::new();
        if let Some(accept) = accept.and_then(|a| HeaderValue::from_str(a).ok()) {
            headers.insert(header::ACCEPT, accept);
        }
        if let Some(token) = bearer {
            let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))
                .map_err(|_| FetchError::Setup("the access token is not a valid header".into()))?;
            value.set_sensitive(true);
            headers.insert(header::AUTHORIZATION, value);
        }
        self.client
            .get(url.clone())
            .headers(headers)
            .send()
            .await
            .map_err(|e| transport_error(url, &e))
    }

    async fn read(
        &self,
        url: Url,
        mut response: reqwest::Response,
        cap: Option<usize>,
    ) -> Result<Fetched, FetchError> {
        let headers = response.headers();
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let retry_after_secs = headers
            .get(header::RETRY_AFTER)
            .or_else(|| headers.get("x-ratelimit-reset"))
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|secs| {
                // x-ratelimit-reset is an epoch second; Retry-After a delay.
                let now = time::OffsetDateTime::now_utc().unix_timestamp() as u64;
                if secs > now { secs - now } else { secs }
            });
        let rate_limit_exhausted = headers
            .get("x-ratelimit-remaining")
            .is_some_and(|v| v.as_bytes() == b"0");
        let status = response.status().as_u16();
        let limit = cap
            .unwrap_or(self.config.max_body_bytes)
            .min(self.config.max_body_bytes);
        let mut body = BytesMut::new();
        if response.status().is_success() {
            let too_large = || FetchError::TooLarge {
                url: shown(&url),
                limit,
            };
            if response.content_length().is_some_and(|n| n > limit as u64) {
                return Err(too_large());
            }
            while let Some(chunk) = response
                .chunk()
                .await
                .map_err(|e| transport_error(&url, &e))?
            {
                if body.len() + chunk.len() > limit {
                    return Err(too_large());
                }
                body.extend_from_slice(&chunk);
            }
        }
        Ok(Fetched {
            url,
            status,
            content_type,
            body: body.freeze(),
            retry_after_secs,
            rate_limit_exhausted,
        })
    }
}

/// Maps a reqwest error to what the customer reads, finding the resolver's refusal in the
/// cause chain. reqwest's own message is not used: it can contain the full URL.
fn transport_error(url: &Url, error: &reqwest::Error) -> FetchError {
    let host = url.host_str().unwrap_or_default().to_owned();
    let mut source: Option<&(dyn StdError + 'static)> = error.source();
    while let Some(cause) = source {
        if let Some(refused) = cause.downcast_ref::<ResolveError>() {
            return match refused {
                ResolveError::NotFound { host } => FetchError::Dns { host: host.clone() },
                ResolveError::Forbidden { host, ip, class } => FetchError::ForbiddenAddress {
                    host: host.clone(),
                    ip: *ip,
                    class: *class,
                },
            };
        }
        source = cause.source();
    }
    if error.is_connect() {
        FetchError::Connect { host }
    } else {
        FetchError::Transport { url: shown(url) }
    }
}
