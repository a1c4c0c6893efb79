//! What every widget browser test starts from: the app serving the published bundle, the
//! fake Mistral, a customer's site on another origin (the bot's only allowed origin), a
//! tenant with its key, and a headless Chromium; plus the waits for the rendered greeting.

use std::path::{Path, PathBuf};

use parlo::model::ConversationQuery;
use parlo_tests::browser::{Browser, spawn_app_at_public_url};
use parlo_tests::fake_mistral::FakeMistral;
use parlo_tests::fixture::{NewTenant, Tenant};
use parlo_tests::host_page::{HostSite, Shadow};
use parlo_tests::{Backend, TestApp};
use serde_json::Value;
use tokio::sync::{Semaphore, SemaphorePermit};

pub const KEY: &str = "mk-browser-test-key-0123456789abcdef";

/// Chromium is heavy: at most two run at once, however many tests the harness starts.
pub static BROWSERS: Semaphore = Semaphore::const_new(2);

/// The published bundles: `dist/`, or `PARLO_TEST_DIST` (e.g. a bundle published locally
/// to try it before it is committed).
pub fn dist() -> PathBuf {
    std::env::var_os("PARLO_TEST_DIST")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dist"))
}

/// The newest published version and its loader's SRI hash, from `dist/manifest.json`.
pub fn published(dist: &Path) -> (String, String) {
    let path = dist.join("manifest.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "no published widget at {} ({e}); publish one with widget/publish.sh",
            path.display()
        )
    });
    let m: Value = serde_json::from_str(&text).expect("dist/manifest.json is JSON");
    let version = m["latest"]
        .as_str()
        .expect("manifest has latest")
        .to_owned();
    let integrity = m["versions"][&version]["files"]["widget.js"]["integrity"]
        .as_str()
        .expect("manifest lists widget.js with its integrity")
        .to_owned();
    (version, integrity)
}

pub struct Setup {
    pub app: TestApp,
    pub fake: FakeMistral,
    /// The customer's site: its origin is on the bot's allow-list.
    pub site: HostSite,
    pub t: Tenant,
    pub browser: Browser,
    pub w: Shadow,
    _slot: SemaphorePermit<'static>,
}

impl Setup {
    /// The bundles built into the server (as in production), or `PARLO_TEST_DIST` when set.
    pub async fn new(backend: Backend) -> Setup {
        let dist = std::env::var_os("PARLO_TEST_DIST").map(PathBuf::from);
        Setup::serving(backend, dist).await
    }

    pub async fn with_dist(backend: Backend, dist: PathBuf) -> Setup {
        Setup::serving(backend, Some(dist)).await
    }

    async fn serving(backend: Backend, dist: Option<PathBuf>) -> Setup {
        let slot = BROWSERS.acquire().await.unwrap();
        let fake = FakeMistral::start().await;
        fake.accept_key(KEY);
        let base = fake.base_url.clone();
        let app = spawn_app_at_public_url(backend, move |s| {
            s.mistral_base_url = Some(base);
            s.dist_dir = dist;
            s.rate_limit_conversation_per_minute = Some(1000);
            s.rate_limit_ip_per_minute = Some(1000);
        })
        .await;
        let site = HostSite::start().await;
        let t = NewTenant::owned_by("owner@example.com")
            .allowed_on(&site.origin())
            .with_key(KEY)
            .create(app.store())
            .await;
        let browser = Browser::start().await;
        let w = Shadow::new(&browser.client);
        Setup {
            app,
            fake,
            site,
            t,
            browser,
            w,
            _slot: slot,
        }
    }

    pub fn bot(&self) -> &str {
        &self.t.bot.public_id
    }

    /// The rolling embed snippet: `<script src=HOST/widget.js data-bot=…>`.
    pub fn rolling_embed(&self) -> String {
        format!(
            "<script src=\"{}/widget.js\" data-bot=\"{}\"></script>",
            self.app.base,
            self.bot()
        )
    }

    /// The pinned embed snippet for the newest published version, as customers copy it.
    pub fn pinned_embed(&self, version: &str, integrity: &str) -> String {
        format!(
            "<script src=\"{}/widget/v{version}.js\" integrity=\"{integrity}\" \
             crossorigin=\"anonymous\" data-bot=\"{}\"></script>",
            self.app.base,
            self.bot()
        )
    }

    pub async fn goto(&self, url: &str) {
        self.browser.goto(url).await;
    }

    pub async fn conversations(&self) -> usize {
        self.app
            .store()
            .conversations(
                self.t.tenant,
                &ConversationQuery {
                    bot_id: Some(self.t.bot.id),
                    limit: 50,
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .len()
    }

    pub async fn close(self) {
        self.browser.close().await;
        self.app.stop().await;
    }
}

/// A function for [`Shadow::wait_for`]: the greeting has rendered with its markdown
/// (`**anything**`) and its formula (`$x^2$`, as MathML once the math module is in).
pub const GREETING_RENDERED: &str = "function () {\
    const md = this.querySelector('.panel:not([hidden]) .msg.bot .md');\
    if (!md) return null;\
    const strong = md.querySelector('strong'), math = md.querySelector('math');\
    if (!strong || !math || md.querySelector('.math-pending, .math-source')) return null;\
    return {html: md.innerHTML, strong: strong.textContent, math: math.textContent};\
}";

/// Clicks the launcher and waits until the panel shows the greeting fully rendered.
pub async fn open_and_wait_for_greeting(w: &Shadow) -> Value {
    w.wait_for_element("button").await;
    w.click("button").await;
    open_greeting_rendered(w).await
}

/// Waits until the open panel shows the greeting fully rendered.
pub async fn open_greeting_rendered(w: &Shadow) -> Value {
    let g = w
        .wait_for(
            "the greeting with <strong> and <math>",
            GREETING_RENDERED,
            &[],
        )
        .await;
    assert_eq!(g["strong"], "anything", "greeting markup: {g}");
    assert!(
        g["math"].as_str().unwrap_or("").contains('x') && g["math"].as_str().unwrap().contains('2'),
        "the formula x^2 is MathML: {g}"
    );
    g
}
