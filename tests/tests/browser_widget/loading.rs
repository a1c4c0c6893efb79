//! How the widget arrives on a customer's page: the launcher in a closed shadow root, the
//! pinned embed and its integrity, altered modules refused by the browser, and answers shown
//! as text until the markdown module is in.

use std::path::Path;
use std::time::{Duration, Instant};

use parlo_tests::Backend;
use parlo_tests::host_page::{Page, console_log, page_html};
use serde_json::{Value, json};

use super::setup::*;

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
    // Issue 14 item 5: a conversation starts with its first message, not with the open.
    assert_eq!(s.conversations().await, 0, "opening stored no conversation");
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
