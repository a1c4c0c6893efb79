//! What the host page cannot do to the widget, and what the widget does not do to the
//! page's visitors: hostile CSS changes nothing inside, and nothing is fetched from any origin
//! but Parlo's.

use parlo_tests::Backend;
use parlo_tests::host_page::{Page, page_html};
use serde_json::{Value, json};

use super::setup::*;

/// Computed styles and boxes of every element in the widget's shadow root.
const STYLE_SNAPSHOT: &str = "function () {\
    const props = ['display', 'visibility', 'position', 'color', 'background-color',\
      'font-family', 'font-size', 'font-weight', 'font-style', 'line-height', 'letter-spacing',\
      'word-spacing', 'text-transform', 'text-align', 'border-top-width', 'border-top-color',\
      'border-top-left-radius', 'padding-top', 'padding-left', 'margin-top', 'opacity',\
      'z-index', 'cursor', 'box-shadow', 'outline-style', 'fill', 'stroke', 'stroke-width'];\
    return [...this.querySelectorAll('*')].filter(e => e.tagName !== 'SCRIPT').map(e => {\
      const s = getComputedStyle(e), r = e.getBoundingClientRect();\
      const cls = (e.getAttribute('class') || '').trim().split(/\\s+/).filter(Boolean);\
      return {el: [e.tagName.toLowerCase(), ...cls].join('.'),\
        box: [r.x, r.y, r.width, r.height].map(Math.round),\
        style: Object.fromEntries(props.map(p => [p, s.getPropertyValue(p)]))};\
    });\
}";

/// What the hostile page adds: rules that would wreck any widget living in the light DOM or
/// inheriting the page's text styles.
const HOSTILE_CSS: &str = "<style>\
    * { color: red !important; font-size: 40px !important; font-family: 'Comic Sans MS', cursive !important;\
        line-height: 3 !important; letter-spacing: 4px !important; word-spacing: 9px !important;\
        text-transform: uppercase !important; text-align: right !important; cursor: wait !important;\
        font-weight: 900 !important; font-style: italic !important; fill: red !important;\
        stroke: red !important; stroke-width: 3px !important; }\
    button, div, section, header, form, textarea, p, h2, span, strong, math, svg {\
        display: none !important; visibility: hidden !important; background: lime !important;\
        border: 10px solid red !important; padding: 30px !important; margin: 30px !important;\
        opacity: .1 !important; position: static !important; }\
    :root, parlo-widget { --parlo-accent: #ff0000; --parlo-on-accent: #00ff00; --parlo-focus: #ff00ff; }\
    </style>";

/// Loads the same page without and with [`HOSTILE_CSS`] and compares the computed styles
/// and boxes of everything in the widget: the loader's launcher (`open == false`) or the
/// app with its greeting rendered (`open == true`). Returns every difference.
async fn widget_changes_under_hostile_css(open: bool) -> Vec<String> {
    let s = Setup::new(Backend::Sqlite).await;
    // Both pages: no scrollbars (the hostile fonts would make the page scroll and shift the
    // viewport), a button and a paragraph of the page's own to prove the hostile CSS applies.
    let neutral = "<style>html { overflow: hidden }</style>";
    let body = format!(
        "<p>Welcome</p><button type=\"button\">Page button</button>{}",
        s.rolling_embed()
    );
    s.site
        .set_page("/plain", Page::html(page_html("Plain", neutral, &body)));
    s.site.set_page(
        "/hostile",
        Page::html(page_html(
            "Hostile",
            &format!("{neutral}{HOSTILE_CSS}"),
            &body,
        )),
    );
    // No panel animation, so boxes are measured at rest.
    s.w.cdp(
        "Emulation.setEmulatedMedia",
        json!({ "features": [{ "name": "prefers-reduced-motion", "value": "reduce" }] }),
    )
    .await;

    let mut snapshots = Vec::new();
    for page in ["/plain", "/hostile"] {
        s.goto(&s.site.url(page)).await;
        s.w.wait_for_element("button").await;
        if open {
            open_and_wait_for_greeting(&s.w).await;
            s.w.wait_for(
                "the focus in the message box",
                "function () { return this.activeElement && this.activeElement.tagName === 'TEXTAREA'; }",
                &[],
            )
            .await;
        }
        let widget = s.w.eval(STYLE_SNAPSHOT, &[]).await.unwrap();
        let page_styles = s
            .browser
            .client
            .execute(
                "const b = getComputedStyle(document.querySelector('main button'));\
                 const p = getComputedStyle(document.querySelector('main p'));\
                 return [b.display, p.color, p.fontSize];",
                vec![],
            )
            .await
            .unwrap();
        snapshots.push((widget, page_styles));
    }
    s.close().await;
    let ((plain, plain_page), (hostile, hostile_page)) = (&snapshots[0], &snapshots[1]);
    // The hostile rules are in force on the page itself…
    assert_ne!(plain_page, hostile_page);
    assert_eq!(
        hostile_page,
        &json!(["none", "rgb(255, 0, 0)", "40px"]),
        "the hostile CSS applies to the host page"
    );
    let (p, h) = (plain.as_array().unwrap(), hostile.as_array().unwrap());
    assert!(
        p.len() >= if open { 20 } else { 3 },
        "the widget has its elements: {plain}"
    );
    assert_eq!(p.len(), h.len(), "same elements\n{plain}\n{hostile}");
    // …and may change nothing in the widget.
    let mut changed = Vec::new();
    for (a, b) in p.iter().zip(h) {
        assert_eq!(a["el"], b["el"], "same elements in the same order");
        // A 0×0 box paints nothing; where it sits is the host element's place in the page's
        // flow, which is the page's business (`.parlo` holds only fixed boxes).
        let empty = |v: &Value| v["box"][2] == json!(0) && v["box"][3] == json!(0);
        if a["box"] != b["box"] && !(empty(a) && empty(b)) {
            changed.push(format!("{} box: {} -> {}", a["el"], a["box"], b["box"]));
        }
        for (prop, value) in a["style"].as_object().unwrap() {
            if b["style"][prop] != *value {
                changed.push(format!(
                    "{} {prop}: {value} -> {}",
                    a["el"], b["style"][prop]
                ));
            }
        }
    }
    changed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_page_css_does_not_change_the_open_widget() {
    let changed = widget_changes_under_hostile_css(true).await;
    assert!(
        changed.is_empty(),
        "the host page's CSS changed the open widget:\n{}",
        changed.join("\n")
    );
}

/// The loader's own launcher, shown before any WASM runs, is as isolated as the app.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_page_css_does_not_change_the_loaders_launcher() {
    let changed = widget_changes_under_hostile_css(false).await;
    assert!(
        changed.is_empty(),
        "the host page's CSS changed the loader's launcher (its CSS must reset inherited \
         properties, e.g. `button {{ all: initial; … }}`):\n{}",
        changed.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_log_shows_no_request_to_any_origin_but_parlos() {
    let s = Setup::new(Backend::Sqlite).await;
    s.fake
        .set_reply_chunks(&["A **short** answer with $E=mc^2$."]);
    let parlo = s.app.base.clone();
    // A report-only policy allowing nothing but Parlo: it blocks nothing, but every request
    // elsewhere (even one that never reaches the network) raises a violation event, which
    // the page records.
    let nonce = "n0nce4test";
    let policy = format!(
        "default-src 'none'; script-src 'nonce-{nonce}' {parlo} 'wasm-unsafe-eval'; \
         connect-src {parlo}; style-src 'unsafe-inline'; img-src data:; font-src data:"
    );
    let recorder = format!(
        "<script nonce=\"{nonce}\">window.__violations = [];\
         document.addEventListener('securitypolicyviolation', e =>\
           __violations.push(e.violatedDirective + ' ' + e.blockedURI));</script>"
    );
    s.site.set_page(
        "/",
        Page {
            html: page_html("Shop", &recorder, &s.rolling_embed()),
            csp_report_only: Some(policy),
            ..Page::default()
        },
    );
    s.goto(&s.site.url("/")).await;
    // Everything the widget does: load, open (main module, session, math module), chat.
    open_and_wait_for_greeting(&s.w).await;
    s.w.type_into("textarea", "Hello").await;
    s.w.press_enter().await;
    s.w.wait_for(
        "the answer with <strong> and <math>",
        "function () { const a = this.querySelectorAll('.msg.bot .md');\
         const m = a[a.length - 1]; return a.length > 1 && m.querySelector('strong')\
           && m.querySelector('math') && m.innerHTML; }",
        &[],
    )
    .await;

    let log = s
        .browser
        .client
        .execute(
            "return {resources: performance.getEntriesByType('resource').map(e => e.name),\
                     document: location.href, violations: window.__violations};",
            vec![],
        )
        .await
        .unwrap();
    let resources: Vec<&str> = log["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let host = s.site.origin();
    assert!(
        log["document"].as_str().unwrap().starts_with(&host),
        "{log}"
    );
    // The log is not empty: the loader, both modules and the API calls are in it.
    for expected in [
        "/widget.js",
        "parlo_widget_bg.wasm",
        "parlo_markdown_bg.wasm",
        "parlo_math_bg.wasm",
        "/api/widget/v1/session",
        "/api/widget/v1/messages",
    ] {
        assert!(
            resources.iter().any(|r| r.contains(expected)),
            "the network log lists {expected}: {resources:#?}"
        );
    }
    let foreign: Vec<&&str> = resources
        .iter()
        .filter(|r| !r.starts_with(&format!("{parlo}/")) && !r.starts_with(&format!("{host}/")))
        .collect();
    assert!(
        foreign.is_empty(),
        "requests to other origins than Parlo's ({parlo}) and the page's ({host}): {foreign:#?}"
    );
    assert_eq!(
        log["violations"],
        json!([]),
        "the widget tried to reach beyond Parlo's origin"
    );
    // The page's own server saw only the page.
    assert_eq!(s.site.requests(), ["GET /"], "the host site's requests");
    s.close().await;
}
