//! The widget in headless Chromium, embedded the way customers embed it: a host page on one
//! origin (`http://localhost:<port>`) loads the widget from the Parlo server on another
//! (`http://127.0.0.1:<port>`), which talks to the faithful fake Mistral.
//!
//! The widget lives in a *closed* shadow root, out of reach of WebDriver and page scripts,
//! so every look inside goes through the Chrome DevTools Protocol (see
//! `parlo_tests::host_page::Shadow` and docs/testing.md). The published bundle comes from
//! `dist/` (`widget/publish.sh`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use parlo::model::{ConversationQuery, MessageRole, MessageStatus};
use parlo_tests::browser::{Browser, spawn_app_at_public_url};
use parlo_tests::fake_mistral::FakeMistral;
use parlo_tests::host_page::{HostSite, Page, Shadow, console_log, page_html};
use parlo_tests::{Backend, Tenant, TestApp, seal_key, tenant_with_bot};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, SemaphorePermit};

const KEY: &str = "mk-browser-test-key-0123456789abcdef";

/// Chromium is heavy: at most two run at once, however many tests the harness starts.
static BROWSERS: Semaphore = Semaphore::const_new(2);

/// The published bundles: `dist/`, or `PARLO_TEST_DIST` (e.g. a bundle published locally
/// to try it before it is committed).
fn dist() -> PathBuf {
    std::env::var_os("PARLO_TEST_DIST")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dist"))
}

/// The newest published version and its loader's SRI hash, from `dist/manifest.json`.
fn published(dist: &Path) -> (String, String) {
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

struct Setup {
    app: TestApp,
    fake: FakeMistral,
    /// The customer's site: its origin is on the bot's allow-list.
    site: HostSite,
    t: Tenant,
    browser: Browser,
    w: Shadow,
    _slot: SemaphorePermit<'static>,
}

impl Setup {
    async fn new(backend: Backend) -> Setup {
        Setup::with_dist(backend, dist()).await
    }

    async fn with_dist(backend: Backend, dist: PathBuf) -> Setup {
        let slot = BROWSERS.acquire().await.unwrap();
        let fake = FakeMistral::start().await;
        fake.accept_key(KEY);
        let base = fake.base_url.clone();
        let app = spawn_app_at_public_url(backend, move |s| {
            s.mistral_base_url = Some(base);
            s.dist_dir = Some(dist);
            s.rate_limit_conversation_per_minute = Some(1000);
            s.rate_limit_ip_per_minute = Some(1000);
        })
        .await;
        let site = HostSite::start().await;
        let t = tenant_with_bot(app.store(), "owner@example.com", &site.origin()).await;
        app.store()
            .put_provider_key(t.tenant, &seal_key(&app, t.tenant, KEY))
            .await
            .unwrap();
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

    fn bot(&self) -> &str {
        &self.t.bot.public_id
    }

    /// The rolling embed snippet: `<script src=HOST/widget.js data-bot=…>`.
    fn rolling_embed(&self) -> String {
        format!(
            "<script src=\"{}/widget.js\" data-bot=\"{}\"></script>",
            self.app.base,
            self.bot()
        )
    }

    /// The pinned embed snippet for the newest published version, as customers copy it.
    fn pinned_embed(&self, version: &str, integrity: &str) -> String {
        format!(
            "<script src=\"{}/widget/v{version}.js\" integrity=\"{integrity}\" \
             crossorigin=\"anonymous\" data-bot=\"{}\"></script>",
            self.app.base,
            self.bot()
        )
    }

    async fn goto(&self, url: &str) {
        self.browser.goto(url).await;
    }

    async fn conversations(&self) -> usize {
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

    async fn close(self) {
        self.browser.close().await;
        self.app.stop().await;
    }
}

/// A function for [`Shadow::wait_for`]: the greeting has rendered with its markdown
/// (`**anything**`) and its formula (`$x^2$`, as MathML once the math module is in).
const GREETING_RENDERED: &str = "function () {\
    const md = this.querySelector('.panel:not([hidden]) .msg.bot .md');\
    if (!md) return null;\
    const strong = md.querySelector('strong'), math = md.querySelector('math');\
    if (!strong || !math || md.querySelector('.math-pending, .math-source')) return null;\
    return {html: md.innerHTML, strong: strong.textContent, math: math.textContent};\
}";

/// Clicks the launcher and waits until the panel shows the greeting fully rendered.
async fn open_and_wait_for_greeting(w: &Shadow) -> Value {
    w.wait_for_element("button").await;
    w.click("button").await;
    open_greeting_rendered(w).await
}

/// Waits until the open panel shows the greeting fully rendered.
async fn open_greeting_rendered(w: &Shadow) -> Value {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_origin_page_shows_launcher_in_closed_shadow_root_and_panel_renders_markdown_and_math()
 {
    let s = Setup::new(Backend::Sqlite).await;
    assert_ne!(
        s.site.origin(),
        s.app.base,
        "host page and Parlo are different origins"
    );
    s.site
        .set_page("/", Page::html(page_html("Shop", "", &s.rolling_embed())));
    s.goto(&s.site.url("/")).await;

    // The launcher: drawn by the loader at once, before any WASM runs.
    let launcher = s.w.wait_for_element("button").await;
    let (_, kind) = s.w.root_node().await.unwrap();
    assert_eq!(kind, "closed", "the widget's shadow root must be closed");
    let from_page = s
        .browser
        .client
        .execute(
            "const h = document.querySelector('parlo-widget');\
             return [!!h, h && h.shadowRoot === null, document.body.innerHTML.includes('panel')];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        from_page,
        json!([true, true, false]),
        "the page sees the host element but not into it"
    );
    let box_ =
        s.w.eval(
            "function () { const r = this.querySelector('button').getBoundingClientRect();\
             return [r.width, r.height, innerWidth - r.right, innerHeight - r.bottom]; }",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        box_,
        json!([56, 56, 20, 20]),
        "launcher box (w, h, right, bottom gap): {launcher}"
    );
    assert_eq!(
        s.w.attr("button", "aria-label").await.as_deref(),
        Some("Open chat")
    );
    assert_eq!(
        s.w.count(".panel").await,
        0,
        "nothing but the launcher before the first click:\n{}",
        s.w.html().await
    );

    // Opening: the app takes over the root, the panel shows the greeting rendered.
    open_and_wait_for_greeting(&s.w).await;
    assert_eq!(
        s.w.attr("button.launcher", "aria-expanded")
            .await
            .as_deref(),
        Some("true")
    );
    s.w.wait_for(
        "the focus in the message box",
        "function () { return this.activeElement && this.activeElement.tagName === 'TEXTAREA'; }",
        &[],
    )
    .await;
    assert_eq!(s.conversations().await, 1, "opening started one session");
    s.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinned_embed_with_the_manifest_integrity_loads_and_a_wrong_integrity_does_not() {
    let s = Setup::new(Backend::Sqlite).await;
    let (version, integrity) = published(&dist());
    assert!(integrity.starts_with("sha384-"), "{integrity}");
    s.site.set_page(
        "/pinned",
        Page::html(page_html(
            "Pinned",
            "",
            &s.pinned_embed(&version, &integrity),
        )),
    );
    // The same snippet with another (well-formed) SHA-384: the browser must not run it.
    let wrong = format!("sha384-{}", "A".repeat(64));
    s.site.set_page(
        "/wrong",
        Page::html(page_html(
            "Wrong hash",
            "",
            &s.pinned_embed(&version, &wrong),
        )),
    );

    s.goto(&s.site.url("/pinned")).await;
    open_and_wait_for_greeting(&s.w).await;

    console_log(&s.browser.client).await; // drop what the first page logged
    s.goto(&s.site.url("/wrong")).await;
    // WebDriver's navigation waits for the load event: the script was decided on by then.
    let log = wait_for_console(&s, "integrity").await;
    assert!(
        log.contains("widget/v"),
        "the console names the refused loader:\n{log}"
    );
    assert!(
        s.w.root_node().await.is_none(),
        "a loader whose hash does not match must not run:\n{}",
        s.w.diagnostics().await
    );
    s.close().await;
}

/// Console lines collected until one contains `needle` (panics after the usual timeout).
async fn wait_for_console(s: &Setup, needle: &str) -> String {
    let start = Instant::now();
    let mut log = Vec::new();
    loop {
        log.extend(console_log(&s.browser.client).await);
        if log.iter().any(|l| l.contains(needle)) {
            return log.join("\n");
        }
        assert!(
            start.elapsed() < s.w.timeout,
            "no console message containing {needle:?}:\n{}\n{}",
            log.join("\n"),
            s.w.diagnostics().await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A server whose copy of dist/ has one byte of the newest bundle's `file` flipped, and a
/// page of its site with the pinned embed (the manifest's integrity for the loader). The
/// file's precompressed siblings go, so the server has only the altered file to send
/// whatever the browser accepts.
async fn setup_with_altered_file(file: &str) -> (Setup, tempfile::TempDir) {
    let (version, integrity) = published(&dist());
    let tampered = tempfile::tempdir().unwrap();
    copy_dir(&dist(), tampered.path());
    let path = tampered.path().join(format!("widget/v{version}/{file}"));
    let mut bytes = std::fs::read(&path).unwrap();
    let original = bytes.clone();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    for ext in ["br", "gz"] {
        let _ = std::fs::remove_file(path.with_file_name(format!("{file}.{ext}")));
    }

    let s = Setup::with_dist(Backend::Sqlite, tampered.path().to_owned()).await;
    // The server really sends the altered bytes (so a refusal is the browser's SRI check,
    // not a missing file).
    let served = s
        .app
        .client
        .get(s.app.url(&format!("/widget/v{version}/{file}")))
        .header("accept-encoding", "gzip, deflate, br, zstd")
        .send()
        .await
        .unwrap();
    assert_eq!(served.status(), 200);
    assert!(served.headers().get("content-encoding").is_none());
    let served = served.bytes().await.unwrap();
    assert!(served[..] == bytes[..] && served[..] != original[..]);

    s.site.set_page(
        "/pinned",
        Page::html(page_html(
            "Pinned",
            "",
            &s.pinned_embed(&version, &integrity),
        )),
    );
    (s, tampered)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinned_embed_whose_wasm_was_altered_on_disk_is_refused() {
    let (s, _dist) = setup_with_altered_file("parlo_widget_bg.wasm").await;
    s.goto(&s.site.url("/pinned")).await;
    // The loader itself is intact, so its launcher shows…
    s.w.wait_for_element("button").await;
    s.w.click("button").await;
    // …but it refuses the module: its error state is the launcher's title.
    s.w.wait_for(
        "the loader's error state (launcher title)",
        "function () { const b = this.querySelector('button');\
         return b && !b.hasAttribute('aria-busy') && b.title; }",
        &[],
    )
    .await;
    assert_eq!(
        s.w.attr("button", "title").await.as_deref(),
        Some("The chat could not be loaded")
    );
    assert_eq!(
        s.w.count(".parlo, .panel, .msg, textarea").await,
        0,
        "the widget must not start:\n{}",
        s.w.html().await
    );
    let log = wait_for_console(&s, "parlo_widget_bg.wasm").await;
    assert!(
        log.contains("integrity"),
        "the console names the refused file and the integrity check:\n{log}"
    );
    assert_eq!(s.conversations().await, 0, "no session was started");
    s.close().await;
}

/// The last assistant message's `.md`: its text, whether it shows as text (`.text`), and
/// whether any markup from the answer became elements.
const LAST_ANSWER: &str = "function () { const a = this.querySelectorAll('.msg.bot .md');\
    if (a.length < 2) return null; const m = a[a.length - 1];\
    return {text: m.textContent, as_text: !!m.querySelector('.text'),\
      elements: [...m.querySelectorAll('strong, b, em, math, code')].map(e => e.tagName)}; }";

/// Sends `question` and waits until the last answer contains `end` (it has streamed in).
async fn ask_and_wait_for(s: &Setup, question: &str, end: &str) -> Value {
    s.w.type_into("textarea", question).await;
    s.w.press_enter().await;
    s.w.wait_for(
        "the answer",
        &format!(
            "function (end) {{ const a = ({LAST_ANSWER}).call(this);\
             return a && a.text.includes(end) && !this.querySelector('.msg.bot .quiet') && a; }}"
        ),
        &[json!(end)],
    )
    .await
}

/// The greeting as the markdown source it is, shown as text.
const GREETING_AS_TEXT: &str = "function () {\
    const md = this.querySelector('.panel:not([hidden]) .msg.bot .md');\
    return md && md.querySelector('.text') && !md.querySelector('strong, math') && md.textContent; }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinned_embed_whose_markdown_module_was_altered_on_disk_shows_answers_only_as_text() {
    let (s, _dist) = setup_with_altered_file("parlo_markdown_bg.wasm").await;
    s.fake
        .set_reply_chunks(&["<b>raw</b> and **bold**", " — done."]);
    s.goto(&s.site.url("/pinned")).await;
    s.w.wait_for_element("button").await;
    s.w.click("button").await;
    // The main module is intact, so the widget opens; the greeting's markdown needs the
    // markdown module, which the browser refuses, so the greeting stays text.
    let log = wait_for_console(&s, "parlo_markdown_bg.wasm").await;
    assert!(
        log.contains("integrity"),
        "the console names the refused file and the integrity check:\n{log}"
    );
    let greeting =
        s.w.wait_for("the greeting as text", GREETING_AS_TEXT, &[])
            .await;
    assert_eq!(greeting, "Hello! Ask me about **anything**, even $x^2$.");
    // An answer shows as the text it is: nothing the model wrote becomes an element.
    let answer = ask_and_wait_for(&s, "Hi", "done").await;
    assert_eq!(
        answer["text"], "<b>raw</b> and **bold** — done.",
        "{answer}"
    );
    assert_eq!(answer["as_text"], true, "{answer}");
    assert_eq!(answer["elements"], json!([]), "{answer}");
    assert_eq!(
        s.w.count(".msg math, .msg script, .msg b, .msg strong")
            .await,
        0,
        "no markup from answers in the widget:\n{}",
        s.w.html().await
    );
    s.close().await;
}

/// Holds back the page's requests for the markdown module until `__releaseMarkdown()`
/// (the loader fetches with the page's `fetch`); `__markdownAsked` says one was made.
const HOLD_MARKDOWN: &str = "<script>(() => { const fetch = window.fetch; let release;\
    const gate = new Promise(r => { release = r; });\
    window.__releaseMarkdown = release; window.__markdownAsked = false;\
    window.fetch = function (url, init) {\
      if (String(url).includes('parlo_markdown_bg.wasm')) {\
        window.__markdownAsked = true; return gate.then(() => fetch.call(window, url, init)); }\
      return fetch.apply(window, arguments); }; })();</script>";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answer_streamed_before_the_markdown_module_is_in_shows_as_text_then_renders() {
    let s = Setup::new(Backend::Sqlite).await;
    s.fake
        .set_reply_chunks(&["Sure: **bo", "ld** and <b>raw</b>", " — done."]);
    s.site.set_page(
        "/",
        Page::html(page_html("Shop", HOLD_MARKDOWN, &s.rolling_embed())),
    );
    s.goto(&s.site.url("/")).await;
    s.w.wait_for_element("button").await;
    s.w.click("button").await;
    let greeting =
        s.w.wait_for("the greeting as text", GREETING_AS_TEXT, &[])
            .await;
    assert_eq!(greeting, "Hello! Ask me about **anything**, even $x^2$.");
    let asked = s
        .browser
        .client
        .execute("return window.__markdownAsked;", vec![])
        .await
        .unwrap();
    assert_eq!(
        asked,
        json!(true),
        "a greeting with markdown asks for the module"
    );

    let answer = ask_and_wait_for(&s, "Hi", "done").await;
    assert_eq!(
        answer["text"], "Sure: **bold** and <b>raw</b> — done.",
        "{answer}"
    );
    assert_eq!(answer["as_text"], true, "{answer}");
    assert_eq!(answer["elements"], json!([]), "{answer}");

    // The module comes in: the greeting and the answer are rendered (and sanitised).
    s.browser
        .client
        .execute("window.__releaseMarkdown();", vec![])
        .await
        .unwrap();
    open_greeting_rendered(&s.w).await;
    let rendered =
        s.w.wait_for(
            "the answer rendered",
            &format!(
                "function () {{ const a = ({LAST_ANSWER}).call(this);\
                 return a && !a.as_text && a.elements.length && a; }}"
            ),
            &[],
        )
        .await;
    assert_eq!(rendered["elements"], json!(["STRONG"]), "{rendered}");
    assert_eq!(
        rendered["text"].as_str().map(str::trim),
        Some("Sure: bold and <b>raw</b> — done."),
        "{rendered}"
    );
    s.close().await;
}

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

async fn chat_journey(backend: Backend) {
    let s = Setup::new(backend).await;
    let reply = ["Sure: **bo", "ld** and ", "$E=mc", "^2$", " — done."];
    s.fake.set_reply_chunks(&reply);
    // Slow enough to see the answer grow.
    s.fake.set_chunk_delay(Duration::from_millis(400));
    s.site
        .set_page("/", Page::html(page_html("Shop", "", &s.rolling_embed())));
    s.goto(&s.site.url("/")).await;
    open_and_wait_for_greeting(&s.w).await;

    let question = "What is **energy**?";
    s.w.type_into("textarea", question).await;
    s.w.press_enter().await;
    // The user's message is text, never markdown.
    let user = s
        .w
        .wait_for(
            "the user's message",
            "function () { const u = this.querySelector('.msg.user .text'); return u && u.textContent; }",
            &[],
        )
        .await;
    assert_eq!(user, question);
    assert_eq!(s.w.count(".msg.user strong").await, 0);

    // Streaming: part of the answer is on screen before the rest has arrived.
    let last_answer = "function () { const a = this.querySelectorAll('.msg.bot .md');\
        return a.length > 1 ? a[a.length - 1].textContent : null; }";
    let partial =
        s.w.wait_for(
            "the first part of the answer",
            &format!(
                "function () {{ const t = ({last_answer}).call(this);\
                 return t && t.includes('Sure') && !t.includes('done') && t; }}"
            ),
            &[],
        )
        .await;
    assert!(!partial.as_str().unwrap().contains("done"), "{partial}");

    let answer =
        s.w.wait_for(
            "the whole answer with <strong> and <math>",
            "function () { const a = this.querySelectorAll('.msg.bot .md');\
             const m = a[a.length - 1];\
             if (a.length < 2 || !m.textContent.includes('done')) return null;\
             const strong = m.querySelector('strong'), math = m.querySelector('math');\
             if (!strong || !math || m.querySelector('.math-pending, .math-source')) return null;\
             return {strong: strong.textContent, math: math.textContent, html: m.innerHTML}; }",
            &[],
        )
        .await;
    assert_eq!(answer["strong"], "bold", "{answer}");
    let math = answer["math"].as_str().unwrap();
    assert!(
        math.contains('E') && math.contains("mc") && math.contains('2'),
        "{answer}"
    );
    assert_eq!(
        s.fake
            .requests()
            .last()
            .and_then(|r| r.authorization().map(str::to_owned)),
        Some(format!("Bearer {KEY}")),
        "the upstream got the tenant's key"
    );

    // Stored: one conversation from the host page's origin with both messages.
    let convs = s
        .app
        .store()
        .conversations(
            s.t.tenant,
            &ConversationQuery {
                bot_id: Some(s.t.bot.id),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(convs.len(), 1);
    assert_eq!(convs[0].origin, s.site.origin());
    let stored = wait_for_stored_answer(&s, convs[0].id).await;
    assert_eq!(stored, reply.concat());

    // The widget keeps its resume secret, never the token, in the page's localStorage.
    let storage = s
        .browser
        .client
        .execute("return Object.keys(localStorage);", vec![])
        .await
        .unwrap();
    assert_eq!(
        storage,
        json!([format!("parlo.resume.{}", s.bot())]),
        "localStorage keys"
    );

    // A reload: the same conversation comes back from the server.
    s.browser.client.refresh().await.unwrap();
    s.w.wait_for_element("button").await;
    assert_eq!(s.w.count(".msg").await, 0, "a fresh page starts closed");
    s.w.click("button").await;
    let history =
        s.w.wait_for(
            "the history after the reload",
            "function () { const u = this.querySelector('.msg.user .text');\
             const a = this.querySelectorAll('.msg.bot .md'); const m = a[a.length - 1];\
             if (!u || !m || !m.textContent.includes('done')) return null;\
             const strong = m.querySelector('strong'), math = m.querySelector('math');\
             if (!strong || !math || m.querySelector('.math-pending, .math-source')) return null;\
             return {user: u.textContent, strong: strong.textContent, math: math.textContent}; }",
            &[],
        )
        .await;
    assert_eq!(history["user"], question, "{history}");
    assert_eq!(history["strong"], "bold", "{history}");
    assert_eq!(history["math"].as_str(), Some(math), "{history}");
    assert_eq!(
        s.conversations().await,
        1,
        "the reload resumed, it did not start over"
    );
    s.close().await;
}

async fn wait_for_stored_answer(s: &Setup, conversation: parlo::model::ConversationId) -> String {
    let start = Instant::now();
    loop {
        let messages = s
            .app
            .store()
            .messages(s.t.tenant, conversation)
            .await
            .unwrap();
        if let [user, answer] = &messages[..]
            && answer.status == MessageStatus::Complete
        {
            assert_eq!(user.role, MessageRole::User);
            assert_eq!(answer.role, MessageRole::Assistant);
            return answer.content.clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the answer was not stored as complete: {messages:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_origin_chat_streams_markdown_and_math_and_history_survives_reload_sqlite() {
    chat_journey(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_origin_chat_streams_markdown_and_math_and_history_survives_reload_postgres() {
    chat_journey(Backend::Postgres).await;
}

/// Opens the widget on a page whose origin is not on the bot's allow-list; the setup, that
/// site and the text of the widget's error alert.
async fn open_on_an_origin_outside_the_allow_list() -> (Setup, HostSite, String) {
    let s = Setup::new(Backend::Sqlite).await;
    // Another port is another origin, and this one is not on the bot's allow-list.
    let stranger = HostSite::start().await;
    assert_ne!(stranger.origin(), s.site.origin());
    stranger.set_page(
        "/",
        Page::html(page_html("Elsewhere", "", &s.rolling_embed())),
    );
    s.goto(&stranger.url("/")).await;
    s.w.wait_for_element("button").await;
    s.w.click("button").await;
    let error = s
        .w
        .wait_for(
            "the widget's error state",
            "function () { const e = this.querySelector('.error[role=alert] p'); return e && e.textContent; }",
            &[],
        )
        .await;
    (s, stranger, error.as_str().unwrap_or_default().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_on_an_origin_outside_the_allow_list_gets_no_session() {
    let (s, _stranger, error) = open_on_an_origin_outside_the_allow_list().await;
    assert!(!error.is_empty());
    assert_eq!(
        s.w.count(".msg").await,
        0,
        "no greeting, no history without a session:\n{}",
        s.w.html().await
    );
    assert_eq!(
        s.w.attr("button.send", "disabled").await.as_deref(),
        Some(""),
        "nothing can be sent"
    );
    assert_eq!(s.conversations().await, 0, "no conversation was created");
    s.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_on_an_origin_outside_the_allow_list_says_the_chat_is_not_enabled_there() {
    let (s, _stranger, error) = open_on_an_origin_outside_the_allow_list().await;
    // Not "offline": the site owner must learn that the origin is missing from the list.
    assert_eq!(
        error,
        "This chat is not enabled on this website.",
        "the widget's error state:\n{}",
        s.w.html().await
    );
    assert_eq!(
        s.w.count(".error .retry").await,
        0,
        "retrying cannot help here"
    );
    s.close().await;
}

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
