//! A chat turn end to end against the faithful fake Mistral, on both backends: what the
//! widget receives over SSE, what is stored, and what the upstream was sent — including
//! every fault mode the upstream can show.

use std::time::Duration;

use parlo::model::{BotId, Message, MessageRole, MessageStatus, Rating, RatingCounts, TenantId};
use parlo_tests::fake_mistral::{FakeMistral, Fault};
use parlo_tests::fixture::{NewTenant, SHOP, WidgetClient, WidgetSession};
use parlo_tests::{Backend, TestApp, both_backends, spawn_app_with};
use reqwest::Method;
use serde_json::{Value, json};

const KEY: &str = "mk-tenant-key-0123456789abcdef";

struct Chat {
    app: TestApp,
    fake: FakeMistral,
    tenant: TenantId,
    bot: BotId,
    client: WidgetClient,
    widget: WidgetSession,
}

async fn chat(backend: Backend, with_key: bool) -> Chat {
    let fake = FakeMistral::start().await;
    fake.accept_key(KEY);
    let base = fake.base_url.clone();
    let app = spawn_app_with(backend, move |s| {
        s.mistral_base_url = Some(base);
        s.upstream_read_timeout_secs = Some(1);
        s.rate_limit_conversation_per_minute = Some(1000);
        s.rate_limit_ip_per_minute = Some(1000);
    })
    .await;
    let mut tenant = NewTenant::owned_by("ann@example.com");
    if with_key {
        tenant = tenant.with_key(KEY);
    }
    let t = tenant.create(app.store()).await;
    let client = t.widget(&app, SHOP);
    let widget = client.session().await;
    Chat {
        tenant: t.tenant,
        bot: t.bot.id,
        client,
        widget,
        app,
        fake,
    }
}

#[derive(Debug)]
struct Sse {
    deltas: Vec<String>,
    last: (String, Value),
}

impl Sse {
    fn text(&self) -> String {
        self.deltas.concat()
    }
}

fn parse_sse(body: &str) -> Sse {
    let mut deltas = Vec::new();
    let mut last = (String::new(), Value::Null);
    for block in body.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let mut name = "message".to_owned();
        let mut data = String::new();
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("event:") {
                name = v.trim().to_owned();
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push_str(v.strip_prefix(' ').unwrap_or(v));
            }
        }
        if data.is_empty() {
            continue; // keep-alive comment
        }
        let value: Value = serde_json::from_str(&data).unwrap();
        if name == "delta" {
            deltas.push(value["text"].as_str().unwrap().to_owned());
        } else {
            last = (name, value);
        }
    }
    Sse { deltas, last }
}

impl Chat {
    async fn send(&self, content: &str) -> reqwest::Response {
        self.widget.send(content).await
    }

    async fn turn(&self, content: &str) -> Sse {
        let r = self.send(content).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "text/event-stream");
        assert_eq!(r.headers()["access-control-allow-origin"], SHOP);
        parse_sse(&r.text().await.unwrap())
    }

    async fn stored(&self) -> Vec<Message> {
        self.app
            .store()
            .messages(self.tenant, self.widget.conversation)
            .await
            .unwrap()
    }

    /// Waits until the answer is no longer pending (the driver stores it after the stream).
    async fn settled(&self) -> Vec<Message> {
        for _ in 0..100 {
            let m = self.stored().await;
            if m.iter().all(|m| m.status != MessageStatus::Pending) {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the answer stayed pending: {:?}", self.stored().await);
    }
}

both_backends!(
    answer_streams_in_and_is_stored_with_usage,
    without_a_key_the_message_is_kept_and_nothing_is_sent,
    upstream_refusals_become_clear_widget_errors,
    a_broken_stream_keeps_its_partial_answer,
    an_end_user_leaving_cancels_upstream_and_keeps_the_partial,
    bad_messages_get_clear_errors_and_store_nothing,
    attachments_are_read_by_ocr_and_join_the_conversation,
    answers_are_rated_up_or_down_and_counted_per_bot,
    a_retry_answers_the_stored_question_without_storing_it_again
);

async fn answer_streams_in_and_is_stored_with_usage(backend: Backend) {
    let c = chat(backend, true).await;
    c.fake
        .set_reply_chunks(&["Hello ", "**world**, ", "see $x^2$."]);
    let sse = c.turn("  Hi there  ").await;
    assert_eq!(sse.deltas, ["Hello ", "**world**, ", "see $x^2$."]);
    assert_eq!(sse.last.0, "done", "{:?}", sse.last);
    assert_eq!(sse.last.1["status"], "complete");
    let m = c.settled().await;
    assert_eq!(m.len(), 2);
    assert_eq!(
        (m[0].role, m[0].content.as_str(), m[0].status),
        (MessageRole::User, "Hi there", MessageStatus::Complete)
    );
    assert_eq!(
        (m[1].role, m[1].content.as_str(), m[1].status),
        (
            MessageRole::Assistant,
            "Hello **world**, see $x^2$.",
            MessageStatus::Complete
        )
    );
    assert!(
        m[1].prompt_tokens.unwrap() > 0 && m[1].completion_tokens.unwrap() > 0,
        "usage recorded: {:?}",
        m[1]
    );
    assert_eq!(
        m[1].id.to_string(),
        sse.last.1["message_id"].as_str().unwrap()
    );
    // What the upstream was sent: the tenant's decrypted key, the bot's model and prompt.
    let reqs = c.fake.requests();
    assert_eq!(reqs.len(), 1);
    let req = &reqs[0];
    assert_eq!(req.path, "/v1/chat/completions");
    assert_eq!(req.authorization(), Some(format!("Bearer {KEY}").as_str()));
    assert_eq!(req.body["model"], "mistral-small-latest");
    assert_eq!(req.body["stream"], true);
    assert_eq!(
        req.body["messages"][0],
        json!({"role": "system", "content": "You are a test assistant."})
    );
    assert_eq!(
        req.body["messages"][1],
        json!({"role": "user", "content": "Hi there"})
    );
    // The next turn carries the history.
    c.fake.set_reply("Second.");
    c.turn("And again?").await;
    let body = &c.fake.requests()[1].body;
    assert_eq!(body["messages"].as_array().unwrap().len(), 4, "{body}");
    assert_eq!(
        body["messages"][2]["content"],
        "Hello **world**, see $x^2$."
    );
}

async fn without_a_key_the_message_is_kept_and_nothing_is_sent(backend: Backend) {
    let c = chat(backend, false).await;
    let sse = c.turn("Anyone there?").await;
    assert_eq!(sse.last.0, "error");
    assert_eq!(sse.last.1["code"], "no_api_key");
    assert!(
        sse.last.1["message"]
            .as_str()
            .unwrap()
            .contains("not set up")
    );
    let m = c.settled().await;
    assert_eq!(m[0].content, "Anyone there?");
    assert_eq!(m[1].status, MessageStatus::Failed);
    assert!(c.fake.requests().is_empty());
}

async fn upstream_refusals_become_clear_widget_errors(backend: Backend) {
    let c = chat(backend, true).await;
    for (fault, code, retry) in [
        (Fault::Status401, "invalid_api_key", Value::Null),
        (
            Fault::Status429 {
                retry_after: Some(7),
            },
            "upstream_rate_limited",
            json!(7),
        ),
        (Fault::Status500, "upstream_unavailable", Value::Null),
    ] {
        c.fake.set_fault(fault.clone());
        let sse = c.turn("Hello?").await;
        assert!(sse.deltas.is_empty());
        assert_eq!(
            (sse.last.0.as_str(), &sse.last.1["code"]),
            ("error", &json!(code)),
            "{fault:?}: {:?}",
            sse.last
        );
        assert_eq!(sse.last.1["retry_after"], retry, "{fault:?}");
        let msg = sse.last.1["message"].as_str().unwrap();
        assert!(
            !msg.contains(KEY) && !msg.contains("127.0.0.1"),
            "no key or upstream address: {msg}"
        );
        let m = c.settled().await;
        let last = m.last().unwrap();
        assert_eq!(
            (last.role, last.status),
            (MessageRole::Assistant, MessageStatus::Failed),
            "{fault:?}"
        );
        assert_eq!(
            m[m.len() - 2].content,
            "Hello?",
            "the user's message was stored first"
        );
    }
}

async fn a_broken_stream_keeps_its_partial_answer(backend: Backend) {
    let c = chat(backend, true).await;
    c.fake.set_reply_chunks(&["one ", "two ", "three ", "four"]);
    for (fault, code) in [
        (Fault::CutMidStream { after_chunks: 2 }, "interrupted"),
        (
            Fault::MalformedChunk { after_chunks: 2 },
            "upstream_malformed",
        ),
        (Fault::Stall { after_chunks: 2 }, "upstream_timeout"),
    ] {
        c.fake.set_fault(fault.clone());
        let sse = c.turn("Count").await;
        assert_eq!(sse.text(), "one two ", "{fault:?}");
        assert_eq!(
            (sse.last.0.as_str(), &sse.last.1["code"]),
            ("error", &json!(code)),
            "{fault:?}"
        );
        let last = c.settled().await.pop().unwrap();
        assert_eq!(
            (last.status, last.content.as_str()),
            (MessageStatus::Interrupted, "one two "),
            "{fault:?}"
        );
    }
}

async fn an_end_user_leaving_cancels_upstream_and_keeps_the_partial(backend: Backend) {
    let c = chat(backend, true).await;
    let words: Vec<String> = (0..50).map(|i| format!("w{i} ")).collect();
    c.fake
        .set_reply_chunks(&words.iter().map(String::as_str).collect::<Vec<_>>());
    c.fake.set_chunk_delay(Duration::from_millis(100));
    let mut r = c.send("Tell me a long story").await;
    let first = r.chunk().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("w0"));
    drop(r);
    // The upstream stream is abandoned, not run to its end.
    for _ in 0..100 {
        if c.fake.stream_stats().dropped == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        c.fake.stream_stats().dropped,
        1,
        "{:?}",
        c.fake.stream_stats()
    );
    let last = c.settled().await.pop().unwrap();
    assert_eq!(last.status, MessageStatus::Interrupted);
    assert!(
        last.content.starts_with("w0 ") && last.content.len() < words.concat().len(),
        "{}",
        last.content
    );
}

async fn bad_messages_get_clear_errors_and_store_nothing(backend: Backend) {
    let c = chat(backend, true).await;
    for (body, status, code) in [
        (json!({"content": "   "}), 422, "invalid"),
        (json!({"content": "x".repeat(4001)}), 422, "invalid"),
        (json!({"text": "wrong field"}), 422, "invalid"),
    ] {
        let r = c
            .widget
            .request(Method::POST, "messages")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status);
        assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], code);
    }
    let r = c
        .widget
        .request(Method::POST, "messages")
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(c.stored().await.is_empty());
    assert!(c.fake.requests().is_empty());
}

async fn attachments_are_read_by_ocr_and_join_the_conversation(backend: Backend) {
    let c = chat(backend, true).await;
    c.fake.set_ocr_pages(&["# Invoice 42", "Total: 99 EUR"]);
    let pdf = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n".to_vec();
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(pdf)
            .file_name("invoice.pdf")
            .mime_str("application/pdf")
            .unwrap(),
    );
    let r = c
        .widget
        .request(Method::POST, "attachments")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert!(body["text"].as_str().unwrap().contains("Invoice 42"));
    assert!(body["text"].as_str().unwrap().contains("Total: 99 EUR"));
    let ocr = c
        .fake
        .requests()
        .into_iter()
        .find(|r| r.path == "/v1/ocr")
        .expect("an OCR call");
    assert_eq!(ocr.authorization(), Some(format!("Bearer {KEY}").as_str()));
    let m = c.stored().await;
    assert!(
        m[0].content.starts_with("Attached invoice.pdf") && m[0].content.contains("Invoice 42")
    );
    let att = c
        .app
        .store()
        .attachments(c.tenant, c.widget.conversation)
        .await
        .unwrap();
    assert_eq!(
        (att[0].file_name.as_str(), att[0].content_type.as_str()),
        ("invoice.pdf", "application/pdf")
    );
    // A script disguised as an image, and a file over the limit.
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(b"<svg onload=alert(1)>".to_vec())
            .file_name("x.png")
            .mime_str("image/png")
            .unwrap(),
    );
    let r = c
        .widget
        .request(Method::POST, "attachments")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    let mut big = b"%PDF-".to_vec();
    big.resize(11 * 1024 * 1024, b'x');
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(big).file_name("big.pdf"),
    );
    let r = c
        .widget
        .request(Method::POST, "attachments")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
}

#[tokio::test]
async fn conversation_rate_limit_answers_429() {
    let c = chat(Backend::Sqlite, true).await;
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.mistral_base_url = Some(c.fake.base_url.clone());
        s.rate_limit_conversation_per_minute = Some(2);
    })
    .await;
    let t = NewTenant::owned_by("bob@example.com")
        .with_key(KEY)
        .create(app.store())
        .await;
    let s = t.widget(&app, SHOP).session().await;
    assert_eq!(s.send("hi").await.status(), 200);
    assert_eq!(s.send("hi").await.status(), 200);
    let r = s.send("hi").await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
}

/// Issue 14: thumbs up or down on an answer is stored, can be changed or taken back, is
/// counted per bot, and reaches only answers of the token's own conversation.
async fn answers_are_rated_up_or_down_and_counted_per_bot(backend: Backend) {
    let c = chat(backend, true).await;
    c.fake.set_reply("Fine, thanks.");
    let _ = c.turn("How are you?").await;
    let m = c.settled().await;
    let (question, answer) = (m[0].id, m[1].id);
    let rate = |id: String, body: Value| {
        let w = &c.widget;
        async move {
            w.request(Method::PUT, &format!("messages/{id}/rating"))
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let counts = || async { c.app.store().rating_counts(c.tenant, c.bot).await.unwrap() };
    assert_eq!(counts().await, RatingCounts::default());
    let r = rate(answer.to_string(), json!({ "rating": "up" })).await;
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["access-control-allow-origin"], SHOP);
    let ratings = c
        .app
        .store()
        .ratings(c.tenant, c.widget.conversation)
        .await
        .unwrap();
    assert_eq!(ratings, [(answer, Rating::Up)]);
    assert_eq!(counts().await, RatingCounts { up: 1, down: 0 });
    // Changed to down, then taken back.
    assert_eq!(
        rate(answer.to_string(), json!({ "rating": "down" }))
            .await
            .status(),
        204
    );
    assert_eq!(counts().await, RatingCounts { up: 0, down: 1 });
    assert_eq!(
        rate(answer.to_string(), json!({ "rating": null }))
            .await
            .status(),
        204
    );
    assert_eq!(counts().await, RatingCounts::default());
    // A question, an unknown id and a malformed one are no answers; a bad rating is refused.
    for id in [
        question.to_string(),
        parlo::model::MessageId::new().to_string(),
        "x".into(),
    ] {
        let r = rate(id.clone(), json!({ "rating": "up" })).await;
        assert_eq!(r.status(), 404, "{id}");
        assert_eq!(
            r.json::<Value>().await.unwrap()["error"]["code"],
            "unknown_message"
        );
    }
    for body in [
        json!({ "rating": "meh" }),
        json!({}),
        json!({ "rating": "up", "x": 1 }),
    ] {
        let r = rate(answer.to_string(), body.clone()).await;
        assert_eq!(r.status(), 422, "{body}");
    }
    // Another visitor's session cannot rate this conversation's answer.
    let other = c.client.session().await;
    let r = other
        .request(Method::PUT, &format!("messages/{answer}/rating"))
        .json(&json!({ "rating": "down" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(counts().await, RatingCounts::default());
    // The browser may send PUT cross-origin.
    let r = c
        .app
        .client
        .request(
            Method::OPTIONS,
            c.app.url("/api/widget/v1/messages/x/rating"),
        )
        .header("origin", SHOP)
        .header("access-control-request-method", "PUT")
        .send()
        .await
        .unwrap();
    assert!(
        r.headers()["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("PUT")
    );
    c.app.stop().await;
}

/// Issue 14 item 8: a failed answer's error names its question; a retry with `retry_of`
/// answers that question again without storing it a second time, and only the latest
/// unanswered question, with the same text, can be retried.
async fn a_retry_answers_the_stored_question_without_storing_it_again(backend: Backend) {
    let c = chat(backend, true).await;
    c.fake.set_fault(Fault::Status500);
    let sse = c.turn("What is the return policy?").await;
    assert_eq!(sse.last.0, "error", "{:?}", sse.last);
    let question = sse.last.1["question_id"].as_str().unwrap().to_owned();
    let stored_question = c.settled().await[0].id.to_string();
    assert_eq!(question, stored_question);
    c.fake.clear_fault();
    c.fake.set_reply("Thirty days.");
    let retry = |content: &str, retry_of: &str| {
        c.widget
            .request(Method::POST, "messages")
            .json(&json!({ "content": content, "retry_of": retry_of }))
            .send()
    };
    // Another text, or an id that is not a question, is no retry of it.
    for (content, id) in [
        ("Something else?", question.as_str()),
        ("What is the return policy?", "not-an-id"),
    ] {
        let r = retry(content, id).await.unwrap();
        assert_eq!(r.status(), 400, "{content} {id}");
        assert_eq!(
            r.json::<Value>().await.unwrap()["error"]["code"],
            "not_retryable"
        );
    }
    let r = retry("What is the return policy?", &question)
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let sse = parse_sse(&r.text().await.unwrap());
    assert_eq!(sse.last.0, "done", "{:?}", sse.last);
    assert_eq!(sse.text(), "Thirty days.");
    let m = c.settled().await;
    let questions: Vec<_> = m.iter().filter(|m| m.role == MessageRole::User).collect();
    assert_eq!(questions.len(), 1, "the question is stored once: {m:?}");
    let answers: Vec<_> = m
        .iter()
        .filter(|m| m.role == MessageRole::Assistant)
        .map(|m| (m.status, m.content.as_str()))
        .collect();
    assert_eq!(
        answers,
        [
            (MessageStatus::Failed, ""),
            (MessageStatus::Complete, "Thirty days.")
        ]
    );
    // The retried turn sent the question upstream once, as the last message.
    let last = c.fake.requests().pop().unwrap();
    let sent = last.body;
    let users: Vec<_> = sent["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "user")
        .collect();
    assert_eq!(users.len(), 1, "{sent}");
    // Answered now: retrying it again is refused and stores nothing.
    let r = retry("What is the return policy?", &question)
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(c.stored().await.len(), 3);
    c.app.stop().await;
}
