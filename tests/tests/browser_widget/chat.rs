//! Chatting across origins: typing, streaming, rendering, storing and resuming after a
//! reload; and a page on an origin outside the allow-list, which gets no session.

use std::time::{Duration, Instant};

use parlo::model::{ConversationQuery, MessageRole, MessageStatus};
use parlo_tests::host_page::{HostSite, Page, page_html};
use parlo_tests::{Backend, both_backends};
use serde_json::json;

use super::setup::*;

both_backends!(cross_origin_chat_streams_markdown_and_math_and_history_survives_reload);

async fn cross_origin_chat_streams_markdown_and_math_and_history_survives_reload(backend: Backend) {
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
