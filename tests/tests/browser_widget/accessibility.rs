//! The open widget under axe-core.

use parlo_tests::Backend;
use parlo_tests::host_page::{Page, page_html};
use serde_json::json;

use super::setup::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_widget_has_no_serious_or_critical_axe_violations() {
    let s = Setup::new(Backend::Sqlite).await;
    // axe-core runs in the page and cannot enter a closed shadow root. For this test only,
    // an init script makes `attachShadow` create open roots, so axe audits the real widget
    // (same markup, same styles; the mode changes nothing else).
    s.w.cdp(
        "Page.addScriptToEvaluateOnNewDocument",
        json!({ "source": "(() => { const attach = Element.prototype.attachShadow;\
            Element.prototype.attachShadow = function (init) {\
              return attach.call(this, Object.assign({}, init, {mode: 'open'})); }; })();" }),
    )
    .await;
    s.site
        .set_page("/", Page::html(page_html("Shop", "", &s.rolling_embed())));
    s.goto(&s.site.url("/")).await;
    open_and_wait_for_greeting(&s.w).await;
    let seen = s
        .browser
        .client
        .execute(
            "const r = document.querySelector('parlo-widget').shadowRoot;\
             return !!r && !!r.querySelector('.panel:not([hidden]) textarea');",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(seen, json!(true), "axe can see the open panel");
    s.browser.assert_accessible("the open widget").await;
    s.close().await;
}
