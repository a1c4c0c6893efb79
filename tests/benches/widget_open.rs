//! Time from a click on the launcher to an interactive panel (the message box focused), in
//! headless Chromium, with the widget's `.wasm` already prefetched by the loader (it does
//! that when the page is idle). Each round is a fresh page load of a host page on another
//! origin. Run with `cargo bench -p parlo-tests --bench widget_open` (`-- <rounds>`).
//!
//! The click's time is the event's own timestamp, taken by a capture listener in the page;
//! the end is a `focusin` on the message box, seen by a listener on the widget's closed
//! shadow root (reached through the DevTools protocol), both on `performance.now()`'s clock.

use std::time::{Duration, Instant};

use parlo_tests::Backend;
use parlo_tests::browser::{Browser, spawn_app_at_public_url};
use parlo_tests::fixture::NewTenant;
use parlo_tests::host_page::{HostSite, Page, Shadow, page_html};
use serde_json::Value;

const RECORD_CLICK: &str = "<script>document.addEventListener('click', \
    e => { if (window.__t0 === undefined) window.__t0 = e.timeStamp; }, true);</script>";
const PREFETCHED: &str = "return performance.getEntriesByType('resource')\
    .some(e => e.name.endsWith('.wasm') && e.responseEnd > 0);";
const WATCH_FOCUS: &str = "function () { this.addEventListener('focusin', e => {\
    if (e.target.tagName === 'TEXTAREA' && window.__t1 === undefined) window.__t1 = performance.now();\
    }, true); return true; }";

async fn wait_until(browser: &Browser, script: &str, what: &str) -> Value {
    let start = Instant::now();
    loop {
        let v = browser.client.execute(script, vec![]).await.unwrap();
        if !v.is_null() && v != Value::Bool(false) {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn main() {
    let rounds: usize = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .and_then(|a| a.parse().ok())
        .unwrap_or(20);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let app = spawn_app_at_public_url(Backend::Sqlite, |s| {
            s.rate_limit_ip_per_minute = Some(100_000);
        })
        .await;
        let site = HostSite::start().await;
        let t = NewTenant::owned_by("bench@example.com").allowed_on(&site.origin()).create(app.store()).await;
        let embed = format!("<script src=\"{}/widget.js\" data-bot=\"{}\"></script>", app.base, t.bot.public_id);
        site.set_page("/", Page::html(page_html("Shop", RECORD_CLICK, &embed)));
        let browser = Browser::start().await;
        let shadow = Shadow::new(&browser.client);
        let mut times = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            browser.goto(&site.url("/")).await;
            wait_until(&browser, PREFETCHED, "the prefetched .wasm").await;
            shadow.wait_for_element("button").await;
            shadow.eval(WATCH_FOCUS, &[]).await.expect("a listener on the shadow root");
            shadow.click("button").await;
            let ms = wait_until(&browser, "return window.__t1 === undefined ? null : window.__t1 - window.__t0;", "the focused message box").await;
            times.push(ms.as_f64().unwrap());
        }
        times.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let pct = |p: f64| times[((times.len() as f64 - 1.0) * p).round() as usize];
        println!("click → interactive panel, {rounds} fresh page loads: min {:.1} ms, p50 {:.1} ms, p90 {:.1} ms, max {:.1} ms",
            times[0], pct(0.5), pct(0.9), times[times.len() - 1]);
        browser.close().await;
        app.stop().await;
    });
}
