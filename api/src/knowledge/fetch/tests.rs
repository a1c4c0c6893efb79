//! Fetcher tests against tiny HTTP servers on loopback that count every connection they
//! accept, so "refused before any connection" is observed, not assumed. Nothing here sends
//! a packet beyond 127.0.0.0/8: refusals of other ranges are checked before connecting
//! (and the pure rules are tested in `policy`).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use secrecy::SecretString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use std::io;

use url::Url;

use super::fetcher::*;
use super::robots::FetchSession;
use super::*;

/// What the test server does with one request.
#[derive(Clone)]
pub(crate) enum Reply {
    Raw(String),
    /// Accept, then never answer.
    Stall,
    /// Headers without a length, then body bytes forever.
    Endless,
}

pub(crate) fn ok(content_type: &str, body: &str) -> Reply {
    Reply::Raw(format!(
        "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    ))
}

pub(crate) fn status(code: u16) -> Reply {
    Reply::Raw(format!(
        "HTTP/1.1 {code} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    ))
}

fn redirect(location: &str) -> Reply {
    Reply::Raw(format!(
        "HTTP/1.1 302 Found\r\nlocation: {location}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    ))
}

type Handler = Arc<dyn Fn(&str) -> Reply + Send + Sync>;

pub(crate) struct TestServer {
    pub(crate) addr: SocketAddr,
    accepts: Arc<AtomicUsize>,
    /// Request heads as received, to assert on headers.
    requests: Arc<Mutex<Vec<String>>>,
}

impl TestServer {
    pub(crate) async fn start(
        ip: &str,
        handler: impl Fn(&str) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind((ip, 0)).await.expect("bind test server");
        let addr = listener.local_addr().unwrap();
        let accepts = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Handler = Arc::new(handler);
        let (counter, log) = (accepts.clone(), requests.clone());
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                let (handler, log) = (handler.clone(), log.clone());
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&head).into_owned();
                    let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
                    log.lock().unwrap().push(head);
                    match handler(&path) {
                        Reply::Raw(bytes) => {
                            let _ = socket.write_all(bytes.as_bytes()).await;
                            let _ = socket.shutdown().await;
                        }
                        Reply::Stall => tokio::time::sleep(Duration::from_secs(60)).await,
                        Reply::Endless => {
                            let _ = socket
                                .write_all(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n")
                                .await;
                            let chunk = vec![b'a'; 16 * 1024];
                            while socket.write_all(&chunk).await.is_ok() {}
                        }
                    }
                });
            }
        });
        Self {
            addr,
            accepts,
            requests,
        }
    }

    pub(crate) fn url(&self, path: &str) -> Url {
        Url::parse(&format!("http://{}{path}", self.addr)).unwrap()
    }

    fn accepted(&self) -> usize {
        self.accepts.load(Ordering::SeqCst)
    }
}

pub(crate) fn config(allow: &[&str]) -> FetchConfig {
    let mut config = FetchConfig::new(&Url::parse("https://chat.example.com/").unwrap());
    config.allow = allow.iter().map(|n| n.parse().unwrap()).collect();
    config.total_timeout = Duration::from_secs(5);
    config.max_body_bytes = 64 * 1024;
    config
}

/// A resolver that answers from a table and never asks DNS.
struct FakeDns(HashMap<String, Vec<IpAddr>>);

impl HostLookup for FakeDns {
    fn lookup(&self, host: String) -> BoxFuture<'static, io::Result<Vec<IpAddr>>> {
        let answer = self.0.get(&host).cloned();
        Box::pin(async move { answer.ok_or_else(|| io::Error::other("no such host")) })
    }
}

fn fake_dns(entries: &[(&str, &[&str])]) -> Arc<dyn HostLookup> {
    Arc::new(FakeDns(
        entries
            .iter()
            .map(|(name, ips)| {
                let ips = ips.iter().map(|ip| ip.parse().unwrap()).collect();
                ((*name).to_owned(), ips)
            })
            .collect(),
    ))
}

async fn get(fetcher: &Fetcher, url: &str) -> Result<Fetched, FetchError> {
    let url = Url::parse(url).expect("test URL parses");
    fetcher.get(&url, RequestOptions::default()).await
}

#[tokio::test]
async fn loopback_spellings_are_refused_before_any_connection() {
    let server = TestServer::start("127.0.0.1", |_| ok("text/plain", "secret")).await;
    let port = server.addr.port();
    let fetcher = Fetcher::new(config(&[])).unwrap();
    for host in [
        "127.0.0.1",
        "2130706433",
        "0177.0.0.1",
        "0x7f.1",
        "0x7f.0.0.1",
        "127.1",
        "017700000001",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
        "[::127.0.0.1]",
        "[64:ff9b::7f00:1]",
        "[2002:7f00:1::]",
    ] {
        let err = get(&fetcher, &format!("http://{host}:{port}/"))
            .await
            .expect_err(host);
        assert!(
            matches!(err, FetchError::ForbiddenAddress { .. }),
            "{host}: {err:?}"
        );
    }
    assert_eq!(server.accepted(), 0, "no connection may reach the listener");
    // The same listener is reachable once the operator allows it: the counter works.
    let allowed = Fetcher::new(config(&["127.0.0.1/32"])).unwrap();
    let body = get(&allowed, server.url("/").as_str()).await.unwrap().body;
    assert_eq!(&body[..], b"secret");
    assert_eq!(server.accepted(), 1);
}

#[tokio::test]
async fn name_resolving_to_loopback_is_refused_before_any_connection() {
    let server = TestServer::start("127.0.0.1", |_| ok("text/plain", "secret")).await;
    let port = server.addr.port();
    // `localhost` through the system resolver.
    let fetcher = Fetcher::new(config(&[])).unwrap();
    let err = get(&fetcher, &format!("http://localhost:{port}/"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, FetchError::ForbiddenAddress { ref host, .. } if host == "localhost"),
        "{err:?}"
    );
    // A public-looking name that a (fake) DNS points at loopback: DNS rebinding's first step.
    let dns = fake_dns(&[("docs.customer.test", &["127.0.0.1"])]);
    let fetcher = Fetcher::with_lookup(config(&[]), dns).unwrap();
    let err = get(&fetcher, &format!("http://docs.customer.test:{port}/"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, FetchError::ForbiddenAddress { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("docs.customer.test points to 127.0.0.1")
    );
    assert_eq!(server.accepted(), 0);
}

#[tokio::test]
async fn name_with_any_forbidden_address_is_refused_by_the_resolver() {
    // Called directly (no connection is attempted at all): one public and one private
    // address must refuse the whole name, or happy eyeballs could pick the private one.
    let dns = fake_dns(&[
        ("mixed.test", &["93.184.215.14", "10.0.0.7"]),
        ("meta.test", &["169.254.169.254"]),
        ("v6.test", &["2606:4700::1111", "fd00:ec2::254"]),
        ("public.test", &["93.184.215.14", "2606:4700::1111"]),
    ]);
    let resolver = VettingResolver::new(dns, AllowList::default());
    for (host, bad) in [
        ("mixed.test", "10.0.0.7"),
        ("meta.test", "169.254.169.254"),
        ("v6.test", "fd00:ec2::254"),
    ] {
        match resolver.vetted(host.to_owned()).await {
            Err(ResolveError::Forbidden { ip, .. }) => assert_eq!(ip.to_string(), bad),
            other => panic!("{host}: {other:?}"),
        }
    }
    assert_eq!(
        resolver.vetted("public.test".into()).await.unwrap().len(),
        2
    );
    assert!(matches!(
        resolver.vetted("unknown.test".into()).await,
        Err(ResolveError::NotFound { .. })
    ));
}

#[tokio::test]
async fn metadata_name_is_refused_before_resolution() {
    // Even if DNS says the name is public, the metadata host name is never fetched.
    let dns = fake_dns(&[("metadata.google.internal", &["93.184.215.14"])]);
    let fetcher = Fetcher::with_lookup(config(&["0.0.0.0/0"]), dns).unwrap();
    for url in [
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://Metadata.Google.Internal./",
    ] {
        let err = get(&fetcher, url).await.unwrap_err();
        assert!(
            matches!(err, FetchError::ForbiddenName { .. }),
            "{url}: {err:?}"
        );
    }
}

#[tokio::test]
async fn redirect_to_a_private_address_is_refused_before_connecting_to_it() {
    // The target: a second listener on another loopback address, not on the allow-list.
    let target = TestServer::start("127.0.0.2", |_| ok("text/plain", "internal")).await;
    let hops = [
        format!("http://{}/admin", target.addr),
        format!("http://0x7f000002:{}/admin", target.addr.port()),
        "http://metadata.google.internal/computeMetadata/v1/".to_owned(),
        "http://[::1]/".to_owned(),
        "file:///etc/passwd".to_owned(),
    ];
    let locations = hops.clone();
    let origin = TestServer::start("127.0.0.1", move |path| {
        let i: usize = path.trim_start_matches('/').parse().unwrap_or(0);
        redirect(&locations[i])
    })
    .await;
    let fetcher = Fetcher::new(config(&["127.0.0.1/32"])).unwrap();
    for (i, hop) in hops.iter().enumerate() {
        let err = get(&fetcher, origin.url(&format!("/{i}")).as_str())
            .await
            .unwrap_err();
        assert!(err.is_forbidden(), "{hop}: {err:?}");
    }
    assert_eq!(origin.accepted(), hops.len());
    assert_eq!(
        target.accepted(),
        0,
        "the private target was never contacted"
    );
}

#[tokio::test]
async fn redirect_limit_is_five() {
    let server = TestServer::start("127.0.0.1", |path| {
        let n: usize = path.trim_start_matches('/').parse().unwrap_or(0);
        if n == 0 {
            ok("text/plain", "arrived")
        } else {
            redirect(&format!("/{}", n - 1))
        }
    })
    .await;
    let fetcher = Fetcher::new(config(&["127.0.0.1/32"])).unwrap();
    let fetched = get(&fetcher, server.url("/5").as_str()).await.unwrap();
    assert_eq!(&fetched.body[..], b"arrived");
    assert_eq!(fetched.url.path(), "/0", "the final URL is reported");
    let err = get(&fetcher, server.url("/6").as_str()).await.unwrap_err();
    assert!(
        matches!(err, FetchError::TooManyRedirects { max: 5, .. }),
        "{err:?}"
    );
    // A configured larger limit is clamped to five.
    let mut lenient = config(&["127.0.0.1/32"]);
    lenient.max_redirects = 50;
    let fetcher = Fetcher::new(lenient).unwrap();
    assert!(get(&fetcher, server.url("/6").as_str()).await.is_err());
}

#[tokio::test]
async fn body_over_the_cap_is_refused_while_streaming() {
    let big = "x".repeat(100 * 1024);
    let server = TestServer::start("127.0.0.1", move |path| match path {
        "/declared" => ok("text/plain", &big),
        _ => Reply::Endless,
    })
    .await;
    let fetcher = Fetcher::new(config(&["127.0.0.1/32"])).unwrap();
    for path in ["/declared", "/endless"] {
        let err = get(&fetcher, server.url(path).as_str()).await.unwrap_err();
        assert!(
            matches!(err, FetchError::TooLarge { limit, .. } if limit == 64 * 1024),
            "{path}: {err:?}"
        );
        assert!(err.to_string().contains("64 KiB"));
    }
}

#[tokio::test]
async fn total_time_is_capped() {
    let server = TestServer::start("127.0.0.1", |_| Reply::Stall).await;
    let mut config = config(&["127.0.0.1/32"]);
    config.total_timeout = Duration::from_millis(300);
    let fetcher = Fetcher::new(config).unwrap();
    let started = std::time::Instant::now();
    let err = get(&fetcher, server.url("/slow").as_str())
        .await
        .unwrap_err();
    assert!(matches!(err, FetchError::Timeout { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn robots_txt_is_honoured_and_read_once_per_session() {
    let server = TestServer::start("127.0.0.1", |path| match path {
        "/robots.txt" => ok(
            "text/plain",
            "User-agent: *\nDisallow: /\n\nUser-agent: Parlo\nDisallow: /private\n",
        ),
        _ => ok("text/html", "<p>page</p>"),
    })
    .await;
    let fetcher = Fetcher::new(config(&["127.0.0.1/32"])).unwrap();
    let mut session = FetchSession::new(&fetcher);
    let err = session.get(&server.url("/private/x")).await.unwrap_err();
    assert!(
        matches!(err, FetchError::RobotsDisallowed { .. }),
        "{err:?}"
    );
    session.get(&server.url("/public")).await.unwrap();
    session.get(&server.url("/public/2")).await.unwrap();
    let requests = server.requests.lock().unwrap().clone();
    let robots_reads = requests
        .iter()
        .filter(|r| r.starts_with("GET /robots.txt"))
        .count();
    assert_eq!(robots_reads, 1, "{requests:?}");
    assert!(
        !requests.iter().any(|r| r.starts_with("GET /private")),
        "a disallowed page is never requested"
    );
    assert!(
        requests[0]
            .to_ascii_lowercase()
            .contains("user-agent: parlo/"),
        "{}",
        requests[0]
    );
    // The plain API fetch (GitHub) does not read robots.txt.
    get(&fetcher, server.url("/private/api").as_str())
        .await
        .unwrap();
}

#[tokio::test]
async fn robots_txt_missing_allows_and_5xx_disallows() {
    let missing = TestServer::start("127.0.0.1", |path| match path {
        "/robots.txt" => status(404),
        _ => ok("text/html", "<p>page</p>"),
    })
    .await;
    let failing = TestServer::start("127.0.0.1", |path| match path {
        "/robots.txt" => status(503),
        _ => ok("text/html", "<p>page</p>"),
    })
    .await;
    let fetcher = Fetcher::new(config(&["127.0.0.1/32"])).unwrap();
    let mut session = FetchSession::new(&fetcher);
    session.get(&missing.url("/page")).await.unwrap();
    let err = session.get(&failing.url("/page")).await.unwrap_err();
    assert!(
        matches!(
            err,
            FetchError::RobotsUnavailable {
                status: Some(503),
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(failing.accepted(), 1, "only robots.txt was requested");
}

#[tokio::test]
async fn robots_txt_is_checked_for_a_redirect_target() {
    let target = TestServer::start("127.0.0.1", |path| match path {
        "/robots.txt" => ok("text/plain", "User-agent: *\nDisallow: /hidden\n"),
        _ => ok("text/html", "<p>page</p>"),
    })
    .await;
    let location = target.url("/hidden/doc").to_string();
    let origin = TestServer::start("127.0.0.1", move |path| match path {
        "/robots.txt" => status(404),
        _ => redirect(&location),
    })
    .await;
    let fetcher = Fetcher::new(config(&["127.0.0.1/32"])).unwrap();
    let mut session = FetchSession::new(&fetcher);
    let err = session.get(&origin.url("/go")).await.unwrap_err();
    assert!(
        matches!(err, FetchError::RobotsDisallowed { .. }),
        "{err:?}"
    );
    assert_eq!(target.accepted(), 1, "the target's robots.txt only");
}

#[tokio::test]
async fn bearer_token_goes_only_to_the_first_origin_and_never_into_errors() {
    let other = TestServer::start("127.0.0.1", |_| status(404)).await;
    let location = other.url("/moved").to_string();
    let api = TestServer::start("127.0.0.1", move |path| match path {
        "/same" => redirect("/final"),
        "/final" => ok("application/json", "{}"),
        _ => redirect(&location),
    })
    .await;
    let fetcher = Fetcher::new(config(&["127.0.0.1/32"])).unwrap();
    let token = SecretString::from("ghp_supersecret123");
    let options = RequestOptions {
        accept: Some("application/vnd.github+json"),
        bearer: Some(&token),
        max_body_bytes: None,
    };
    fetcher.get(&api.url("/same"), options).await.unwrap();
    let err = fetcher.get(&api.url("/away"), options).await.unwrap_err();
    assert_eq!(
        err,
        FetchError::HttpStatus {
            url: other.url("/moved").to_string(),
            status: 404
        }
    );
    assert!(!err.to_string().contains("ghp_"));
    assert!(!format!("{err:?} {options:?}").contains("ghp_"));
    let sent = api.requests.lock().unwrap().clone();
    assert_eq!(sent.len(), 3);
    assert!(sent.iter().all(|r| r.contains("Bearer ghp_supersecret123")));
    assert!(
        sent.iter()
            .all(|r| r.contains("application/vnd.github+json"))
    );
    let forwarded = other.requests.lock().unwrap().clone();
    assert!(!forwarded[0].contains("ghp_"), "{}", forwarded[0]);
}

#[tokio::test]
async fn github_rate_limit_and_not_found_are_told_apart() {
    let reset = time::OffsetDateTime::now_utc().unix_timestamp() + 120;
    let server = TestServer::start("127.0.0.1", move |path| match path {
        "/limited" => Reply::Raw(format!(
            "HTTP/1.1 403 Forbidden\r\nx-ratelimit-remaining: 0\r\nx-ratelimit-reset: {reset}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        )),
        "/busy" => Reply::Raw(
            "HTTP/1.1 429 Too Many\r\nretry-after: 30\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".into(),
        ),
        "/denied" => status(403),
        _ => status(404),
    })
    .await;
    let fetcher = Fetcher::new(config(&["127.0.0.1/32"])).unwrap();
    match get(&fetcher, server.url("/limited").as_str()).await {
        Err(FetchError::RateLimited {
            retry_after_secs: Some(secs),
            ..
        }) => assert!((100..=120).contains(&secs), "{secs}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        get(&fetcher, server.url("/busy").as_str()).await,
        Err(FetchError::RateLimited {
            retry_after_secs: Some(30),
            ..
        })
    ));
    assert!(matches!(
        get(&fetcher, server.url("/denied").as_str()).await,
        Err(FetchError::HttpStatus { status: 403, .. })
    ));
    assert!(matches!(
        get(&fetcher, server.url("/missing?token=abc").as_str()).await,
        Err(FetchError::HttpStatus { status: 404, ref url }) if !url.contains("token")
    ));
}

#[tokio::test]
async fn unsupported_schemes_and_unknown_names_have_clear_errors() {
    let fetcher = Fetcher::with_lookup(config(&[]), fake_dns(&[])).unwrap();
    let err = get(&fetcher, "ftp://example.com/file").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "only http and https addresses can be fetched, not ftp:"
    );
    let err = get(&fetcher, "http://nowhere.test/").await.unwrap_err();
    assert_eq!(
        err,
        FetchError::Dns {
            host: "nowhere.test".into()
        }
    );
    let err = get(&fetcher, "http://10.1.2.3/").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "10.1.2.3 is a private network address and cannot be fetched"
    );
}

#[test]
fn user_agent_names_parlo_its_version_and_the_public_url() {
    let ua = default_user_agent(&Url::parse("https://chat.example.com/").unwrap());
    assert_eq!(
        ua,
        format!(
            "Parlo/{} (+https://chat.example.com)",
            env!("CARGO_PKG_VERSION")
        )
    );
}
