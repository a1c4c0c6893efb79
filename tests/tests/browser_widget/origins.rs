//! Origins no allow-list names, from a real browser: a sandboxed iframe (`sandbox=
//! "allow-scripts"`, so its requests say `Origin: null`) on a page of an unlisted origin
//! gets no session, and a token for Parlo's own origin — what `Origin: <public URL>` once
//! minted for anyone — gets it no answer either: the server refuses a null origin and never
//! answers it with `Access-Control-Allow-Origin: null`.

use std::time::{Duration, Instant};

use parlo::model::{NewConversation, Timestamp};
use parlo::widget::token::{self, WidgetClaims};
use parlo_tests::Backend;
use parlo_tests::host_page::{HostSite, Page, page_html};
use serde_json::Value;

use super::setup::*;

/// The framed page: tries to start a session, to read the history and to send a message
/// with `token`, and posts what it could read to its parent.
fn probe(api: &str, bot: &str, token: &str) -> String {
    format!(
        "<script>\
         const api = {api:?}, bot = {bot:?}, token = {token:?};\
         async function attempt(name, path, init) {{\
           try {{\
             const r = await fetch(api + path, init);\
             return {{name, read: true, status: r.status, text: await r.text()}};\
           }} catch (e) {{ return {{name, read: false, error: String(e)}}; }}\
         }}\
         (async () => {{\
           const results = [];\
           results.push(await attempt('session', '/session', {{method: 'POST',\
             headers: {{'Content-Type': 'application/json'}}, body: JSON.stringify({{bot}})}}));\
           results.push(await attempt('history', '/messages',\
             {{headers: {{Authorization: 'Bearer ' + token}}}}));\
           results.push(await attempt('send', '/messages', {{method: 'POST',\
             headers: {{Authorization: 'Bearer ' + token, 'Content-Type': 'application/json'}},\
             body: JSON.stringify({{content: 'hello from a sandbox'}})}}));\
           parent.postMessage({{origin: String(self.origin), results}}, '*');\
         }})();\
         </script>"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandboxed_iframe_on_an_unlisted_origin_gets_no_token_and_no_answer() {
    let s = Setup::new(Backend::Sqlite).await;
    s.fake
        .set_reply("This answer must never reach the sandbox.");
    // A conversation and a token for Parlo's own origin, as the old exemption handed out.
    let own = s.app.base.clone();
    let conv = s
        .app
        .store()
        .create_conversation(
            s.t.tenant,
            &NewConversation {
                bot_id: s.t.bot.id,
                origin: own.clone(),
                resume_hash: vec![9; 32],
            },
        )
        .await
        .unwrap();
    let now = Timestamp::now().0 / 1000;
    let own_token = token::issue(
        &s.app.state.keys.token,
        &WidgetClaims {
            tenant: s.t.tenant,
            bot: s.t.bot.id,
            conversation: conv.id,
            origin: own.clone(),
            start: None,
            iat: now,
            exp: now + token::MAX_LIFETIME_SECS,
        },
    );
    let stranger = HostSite::start().await;
    assert_ne!(stranger.origin(), s.site.origin());
    stranger.set_page(
        "/frame",
        Page::html(page_html(
            "Framed",
            "",
            &probe(&format!("{own}/api/widget/v1"), s.bot(), &own_token),
        )),
    );
    stranger.set_page(
        "/",
        Page::html(page_html(
            "Elsewhere",
            "<script>window.probe = null;\
             addEventListener('message', e => { window.probe = e.data; });</script>",
            "<iframe sandbox=\"allow-scripts\" src=\"/frame\" title=\"framed\"></iframe>",
        )),
    );
    s.goto(&stranger.url("/")).await;
    let deadline = Instant::now() + Duration::from_secs(45);
    let probe = loop {
        let v: Value = s
            .browser
            .client
            .execute("return window.probe;", vec![])
            .await
            .unwrap();
        if !v.is_null() {
            break v;
        }
        assert!(Instant::now() < deadline, "the framed page never reported");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(probe["origin"], "null", "the frame is sandboxed: {probe}");
    let results = probe["results"].as_array().unwrap();
    assert_eq!(results.len(), 3, "{probe}");
    for r in results {
        assert_eq!(r["read"], false, "the sandbox could read an answer: {r}");
    }
    assert!(
        s.fake
            .requests()
            .iter()
            .all(|r| r.path != "/v1/chat/completions"),
        "nothing was sent upstream on the tenant's key"
    );
    assert!(
        s.app
            .store()
            .messages(s.t.tenant, conv.id)
            .await
            .unwrap()
            .is_empty(),
        "nothing was stored"
    );
    assert_eq!(s.conversations().await, 1, "no session was started");
    s.close().await;
}
