//! Headless Chromium for browser tests, driven over WebDriver (chromedriver + fantoccini),
//! plus axe-core accessibility checks and a way to start the app at a known public URL.
//!
//! Each [`Browser`] starts its own chromedriver on a free port and a Chromium with a fresh
//! profile directory, and kills both when dropped. Paths can be overridden with
//! `PARLO_CHROMIUM` and `PARLO_CHROMEDRIVER`. axe-core comes from npm:
//! `npm ci --prefix tests/browser` (done by `.ci/run`).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use parlo::config::Settings;
use serde::Deserialize;

use crate::{Backend, TestApp, spawn_app_with};

/// A free TCP port on 127.0.0.1 (bound and released; good enough for tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The app listening on a port known in advance, with `PARLO_PUBLIC_URL` set to it, so that
/// origin checks and links match what a browser sees.
pub async fn spawn_app_at_public_url(
    backend: Backend,
    adjust: impl FnOnce(&mut Settings),
) -> TestApp {
    let port = free_port();
    spawn_app_with(backend, |s| {
        s.listen = Some(format!("127.0.0.1:{port}").parse().unwrap());
        s.public_url = Some(format!("http://127.0.0.1:{port}").parse().unwrap());
        adjust(s);
    })
    .await
}

pub struct Browser {
    pub client: Client,
    driver: Driver,
    _profile: tempfile::TempDir,
}

/// The chromedriver process; killed on drop, also when a test panics half-way.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[derive(Debug, Deserialize)]
pub struct AxeViolation {
    pub id: String,
    pub impact: Option<String>,
    pub help: String,
    pub nodes: Vec<serde_json::Value>,
}

fn axe_source() -> String {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("browser/node_modules/axe-core/axe.min.js");
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "axe-core is missing at {} ({e}); install it with `npm ci --prefix tests/browser`",
            path.display()
        )
    })
}

impl Browser {
    pub async fn start() -> Browser {
        let chromium =
            std::env::var("PARLO_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let chromedriver =
            std::env::var("PARLO_CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
        let port = free_port();
        let driver = Driver(
            Command::new(&chromedriver)
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("starting {chromedriver}: {e}")),
        );
        let status = format!("http://127.0.0.1:{port}/status");
        let http = reqwest::Client::new();
        let mut ready = false;
        for _ in 0..100 {
            if http
                .get(&status)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        assert!(ready, "chromedriver did not start on port {port}");
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                    "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a WebDriver session with headless Chromium");
        Browser {
            client,
            driver,
            _profile: profile,
        }
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.unwrap();
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        }
    }

    pub async fn fill(&self, css: &str, value: &str) {
        let el = self.client.find(Locator::Css(css)).await.unwrap();
        el.clear().await.unwrap();
        el.send_keys(value).await.unwrap();
    }

    pub async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css}: {e}"))
            .click()
            .await
            .unwrap();
    }

    /// Clicks and waits until the page at a path starting with `path_prefix` has loaded.
    /// Clicks something that navigates, and waits until a *new* document has loaded at
    /// `path_prefix`. The old document is marked before the click, so a path that already
    /// matches (a form on `/bots/new` posting to `/bots`) cannot end the wait before the
    /// navigation has happened.
    pub async fn click_and_wait(&self, css: &str, path_prefix: &str) {
        self.client
            .execute("window.__parloOldDocument = true", vec![])
            .await
            .unwrap();
        self.click(css).await;
        self.wait_for_path(path_prefix).await;
    }

    /// Waits until the current document is complete, is not one marked by
    /// [`Browser::click_and_wait`], and its path (with query) starts with `path_prefix`.
    pub async fn wait_for_path(&self, path_prefix: &str) {
        for _ in 0..100 {
            let ready = self
                .client
                .execute(
                    "return document.readyState === 'complete' && !window.__parloOldDocument",
                    vec![],
                )
                .await
                .ok()
                .and_then(|v| v.as_bool());
            if ready == Some(true) && self.path().await.starts_with(path_prefix) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "expected to arrive at {path_prefix}, still at {} with:\n{}",
            self.path().await,
            self.text("main").await
        );
    }

    pub async fn text(&self, css: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css}: {e}"))
            .text()
            .await
            .unwrap()
    }

    pub async fn value(&self, css: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css}: {e}"))
            .prop("value")
            .await
            .unwrap()
            .unwrap_or_default()
    }

    pub async fn exists(&self, css: &str) -> bool {
        self.client.find(Locator::Css(css)).await.is_ok()
    }

    /// Runs axe-core on the current page; returns the violations of the given impacts.
    pub async fn axe(&self, impacts: &[&str]) -> Vec<AxeViolation> {
        let loaded = self
            .client
            .execute("return typeof window.axe !== 'undefined'", vec![])
            .await
            .unwrap();
        if loaded != serde_json::Value::Bool(true) {
            // Injected as a script body through WebDriver, not fetched: the page's CSP
            // does not apply to WebDriver's script evaluation.
            self.client.execute(&axe_source(), vec![]).await.unwrap();
        }
        let result = self
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1];\
                 axe.run(document, {resultTypes: ['violations']})\
                   .then(r => done(JSON.stringify(r.violations)))\
                   .catch(e => done(JSON.stringify({error: String(e)})));",
                vec![],
            )
            .await
            .unwrap();
        let text = result.as_str().expect("axe returns JSON text");
        let violations: Vec<AxeViolation> =
            serde_json::from_str(text).unwrap_or_else(|e| panic!("axe failed: {text} ({e})"));
        violations
            .into_iter()
            .filter(|v| v.impact.as_deref().is_some_and(|i| impacts.contains(&i)))
            .collect()
    }

    /// Fails the test when axe-core finds serious or critical violations on this page.
    pub async fn assert_accessible(&self, what: &str) {
        let bad = self.axe(&["serious", "critical"]).await;
        assert!(
            bad.is_empty(),
            "accessibility violations on {what} ({}):\n{}",
            self.path().await,
            bad.iter()
                .map(|v| format!(
                    "- {} [{}]: {} ({} nodes: {})",
                    v.id,
                    v.impact.as_deref().unwrap_or("?"),
                    v.help,
                    v.nodes.len(),
                    v.nodes
                        .iter()
                        .take(3)
                        .map(|n| n["html"].as_str().unwrap_or("").to_owned())
                        .collect::<Vec<_>>()
                        .join(" | ")
                ))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }

    /// Resizes the window so that the page's viewport is `width` × `height` CSS pixels.
    pub async fn set_viewport(&self, width: u32, height: u32) {
        self.client.set_window_size(width, height).await.unwrap();
        // The window includes browser chrome in some modes: grow it by the difference.
        let inner = self
            .client
            .execute("return [window.innerWidth, window.innerHeight]", vec![])
            .await
            .unwrap();
        let (iw, ih) = (inner[0].as_u64().unwrap(), inner[1].as_u64().unwrap());
        let (dw, dh) = (
            u64::from(width).saturating_sub(iw),
            u64::from(height).saturating_sub(ih),
        );
        if dw > 0 || dh > 0 {
            self.client
                .set_window_size(width + dw as u32, height + dh as u32)
                .await
                .unwrap();
        }
    }

    /// The page's scrollable width and the viewport's width, in CSS pixels: equal when the
    /// page does not scroll sideways.
    pub async fn widths(&self) -> (u64, u64) {
        let w = self
            .client
            .execute(
                "return [document.scrollingElement.scrollWidth, window.innerWidth]",
                vec![],
            )
            .await
            .unwrap();
        (w[0].as_u64().unwrap(), w[1].as_u64().unwrap())
    }

    /// Ends the WebDriver session (closing Chromium), then stops chromedriver.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
        drop(self.driver);
    }
}
