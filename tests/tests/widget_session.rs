//! Widget sessions over HTTP on both backends: origin allow-lists, CORS, token handling
//! (claims, not URLs), resume across page loads, history and clearing.

use parlo_tests::fixture::{NewTenant, SHOP};
use parlo_tests::{Backend, both_backends, spawn_app};
use serde_json::Value;

both_backends!(
    allowed_origin_gets_a_session_with_bot_presentation,
    disallowed_origin_gets_a_readable_403_and_no_session,
    unknown_bots_and_bad_bodies_get_clear_errors,
    preflight_is_answered_without_credentials,
    resume_secret_returns_to_the_same_conversation,
    history_and_clear_use_the_token_only,
    a_suspended_workspace_gets_no_session_and_its_tokens_stop_working,
    ip_rate_limit_answers_429_with_retry_after,
    a_conversation_is_stored_with_its_first_message_not_on_open
);

async fn allowed_origin_gets_a_session_with_bot_presentation(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = NewTenant::owned_by("ann@example.com")
        .create(app.store())
        .await;
    let s = t.widget(&app, SHOP).start_session(None).await;
    let (status, body, headers) = (s.status, s.body, s.headers);
    assert_eq!(status, 200, "{body}");
    assert!(body["token"].as_str().unwrap().starts_with("pw1.t1."));
    assert_eq!(body["expires_in"], 900);
    assert!(body["resume"].as_str().unwrap().starts_with("rs_"));
    assert_eq!(body["bot"]["name"], "Helper");
    assert_eq!(body["bot"]["theme_color"], "#2563eb");
    assert_eq!(headers["access-control-allow-origin"], SHOP);
    assert_eq!(headers["cache-control"], "no-store");
    app.stop().await;
}

async fn disallowed_origin_gets_a_readable_403_and_no_session(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = NewTenant::owned_by("ann@example.com")
        .create(app.store())
        .await;
    let s = t
        .widget(&app, "https://evil.example")
        .start_session(None)
        .await;
    let (status, body, headers) = (s.status, s.body, s.headers);
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "origin_not_allowed");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("https://evil.example")
    );
    // The refusal is readable, so the widget can tell the site owner what is wrong.
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://evil.example"
    );
    // No conversation was created for the refused origin.
    let convs = app
        .store()
        .conversations(
            t.tenant,
            &parlo::model::ConversationQuery {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(convs.is_empty());
    app.stop().await;
}

async fn unknown_bots_and_bad_bodies_get_clear_errors(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = NewTenant::owned_by("ann@example.com")
        .create(app.store())
        .await;
    let widget = t.widget(&app, SHOP);
    // Same tenant, wrong random part; and garbage.
    let wrong = format!(
        "{}0000000000000000",
        &t.bot.public_id[..t.bot.public_id.len() - 16]
    );
    for bot in [wrong.as_str(), "bot_nope", ""] {
        let s = widget.for_bot(bot).start_session(None).await;
        assert_eq!(s.status, 404, "{bot}: {}", s.body);
        assert_eq!(s.body["error"]["code"], "unknown_bot");
    }
    let r = app
        .client
        .post(app.url("/api/widget/v1/session"))
        .header("origin", SHOP)
        .header("content-type", "application/json")
        .body("{\"bot\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "malformed_json"
    );
    let r = app
        .client
        .post(app.url("/api/widget/v1/session"))
        .header("origin", SHOP)
        .header("content-type", "application/json")
        .body(format!(
            "{{\"bot\":\"{}\",\"x\":\"{}\"}}",
            t.bot.public_id,
            "a".repeat(70_000)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413, "bodies over the limit are refused");
    let r = app
        .client
        .post(app.url("/api/widget/v1/session"))
        .json(&serde_json::json!({"bot": t.bot.public_id}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "no Origin header");
    app.stop().await;
}

async fn preflight_is_answered_without_credentials(backend: Backend) {
    let app = spawn_app(backend).await;
    let r = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/api/widget/v1/messages"))
        .header("origin", SHOP)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["access-control-allow-origin"], SHOP);
    assert!(
        r.headers()["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("authorization")
    );
    assert!(
        r.headers()
            .get("access-control-allow-credentials")
            .is_none()
    );
    app.stop().await;
}

async fn resume_secret_returns_to_the_same_conversation(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = NewTenant::owned_by("ann@example.com")
        .create(app.store())
        .await;
    let widget = t.widget(&app, SHOP);
    let first = widget.session().await;
    first.store_conversation(app.store()).await;
    let again = widget.resume(Some(&first.resume)).await;
    assert_eq!(again.body["conversation"], first.conversation.to_string());
    assert_eq!(again.body["resume"], first.body["resume"]);
    // A wrong secret starts a new conversation rather than failing.
    let fresh = widget.resume(Some("rs_wrong")).await;
    assert_eq!(fresh.body["conversation"], Value::Null);
    assert_ne!(fresh.conversation, first.conversation);
    app.stop().await;
}

async fn history_and_clear_use_the_token_only(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = NewTenant::owned_by("ann@example.com")
        .create(app.store())
        .await;
    let widget = t.widget(&app, SHOP);
    let first = widget.session().await;
    first.store_conversation(app.store()).await;
    // A resumed session: its token names a stored conversation and does not start one.
    let s = widget.resume(Some(&first.resume)).await;
    let token = s.token.as_str();
    let conv = s.conversation;
    assert_eq!(conv, first.conversation);
    app.store()
        .append_message(
            t.tenant,
            &parlo::model::NewMessage {
                conversation_id: conv,
                role: parlo::model::MessageRole::User,
                content: "stored earlier".into(),
                status: parlo::model::MessageStatus::Complete,
            },
        )
        .await
        .unwrap();
    let r = s.history().await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["messages"][0]["content"], "stored earlier");
    assert_eq!(body["messages"][0]["role"], "user");
    // The token in a query string is refused even when it is valid.
    let r = app
        .client
        .get(app.url(&format!("/api/widget/v1/messages?token={token}")))
        .header("origin", SHOP)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "token_in_url"
    );
    // Another origin cannot use the token.
    let r = app
        .client
        .get(app.url("/api/widget/v1/messages"))
        .header("origin", "https://evil.example")
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.headers().get("access-control-allow-origin").is_none());
    // No token, a tampered token.
    let r = app
        .client
        .get(app.url("/api/widget/v1/messages"))
        .header("origin", SHOP)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let mut tampered = token.to_owned();
    tampered.pop();
    tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
    let r = app
        .client
        .get(app.url("/api/widget/v1/messages"))
        .header("origin", SHOP)
        .bearer_auth(&tampered)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "invalid_token"
    );
    // Clear deletes the conversation.
    let r = s.clear().await;
    assert_eq!(r.status(), 204);
    assert!(
        app.store()
            .conversation(t.tenant, conv)
            .await
            .unwrap()
            .is_none()
    );
    // A message to the cleared conversation is refused with a clear code; nothing is stored.
    let r = s.send("still there?").await;
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "conversation_gone"
    );
    assert!(
        app.store()
            .messages(t.tenant, conv)
            .await
            .unwrap()
            .is_empty()
    );
    app.stop().await;
}

async fn a_suspended_workspace_gets_no_session_and_its_tokens_stop_working(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = NewTenant::owned_by("ann@example.com")
        .create(app.store())
        .await;
    let widget = t.widget(&app, SHOP);
    let s = widget.session().await;
    app.store()
        .set_suspended(t.tenant, Some(parlo::model::Timestamp::now()))
        .await
        .unwrap();
    let refused = widget.start_session(None).await;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.body["error"]["code"], "workspace_suspended");
    let r = s.send("hi").await;
    assert_eq!(r.status(), 403);
    assert!(
        app.store()
            .messages(t.tenant, s.conversation)
            .await
            .unwrap()
            .is_empty(),
        "nothing stored for a suspended workspace"
    );
    app.stop().await;
}

async fn ip_rate_limit_answers_429_with_retry_after(backend: Backend) {
    let app = parlo_tests::spawn_app_with(backend, |s| s.rate_limit_ip_per_minute = Some(3)).await;
    let t = NewTenant::owned_by("ann@example.com")
        .create(app.store())
        .await;
    let widget = t.widget(&app, SHOP);
    for _ in 0..3 {
        assert_eq!(widget.start_session(None).await.status, 200);
    }
    let s = widget.start_session(None).await;
    assert_eq!(s.status, 429);
    assert_eq!(s.body["error"]["code"], "rate_limited");
    let retry: u64 = s.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));
    app.stop().await;
}

#[tokio::test]
async fn a_token_of_one_tenant_cannot_read_another_tenants_conversation() {
    // Claims, not URLs: nothing in the request but the signed token selects the data, so
    // the only way to reach tenant B is a token signed for B.
    let app = spawn_app(Backend::Postgres).await;
    let a = NewTenant::owned_by("ann@a.example")
        .create(app.store())
        .await;
    let b = NewTenant::owned_by("bob@b.example")
        .create(app.store())
        .await;
    let sa = a.widget(&app, SHOP).session().await;
    let sb = b.widget(&app, SHOP).session().await;
    sb.store_conversation(app.store()).await;
    let conv_b = sb.conversation;
    app.store()
        .append_message(
            b.tenant,
            &parlo::model::NewMessage {
                conversation_id: conv_b,
                role: parlo::model::MessageRole::User,
                content: "B's secret".into(),
                status: parlo::model::MessageStatus::Complete,
            },
        )
        .await
        .unwrap();
    let r = app
        .client
        .get(app.url(&format!(
            "/api/widget/v1/messages?conversation={conv_b}&bot={}",
            b.bot.public_id
        )))
        .header("origin", SHOP)
        .bearer_auth(&sa.token)
        .send()
        .await
        .unwrap();
    let body = r.text().await.unwrap();
    assert!(!body.contains("B's secret"), "{body}");
    app.stop().await;
}

/// Issue 14 item 5: opening the widget (a session) stores no conversation; the first
/// message stores it with the session's origin and resume secret, and a later message of
/// the same token continues it.
async fn a_conversation_is_stored_with_its_first_message_not_on_open(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = NewTenant::owned_by("ann@example.com")
        .create(app.store())
        .await;
    let widget = t.widget(&app, SHOP);
    let s = widget.session().await;
    assert_eq!(s.body["conversation"], Value::Null, "{}", s.body);
    let none = |app: &parlo_tests::TestApp| {
        let store = app.store().clone();
        async move {
            store
                .conversations(t.tenant, &Default::default())
                .await
                .unwrap()
        }
    };
    assert!(
        none(&app).await.is_empty(),
        "the open stored a conversation"
    );
    // History and clear before the first message: empty, done, and still nothing stored.
    let r = s.history().await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap()["messages"],
        serde_json::json!([])
    );
    assert_eq!(s.clear().await.status(), 204);
    // Resuming a conversation that never had a message starts a new one.
    let again = widget.resume(Some(&s.resume)).await;
    assert_eq!(again.body["conversation"], Value::Null);
    assert!(none(&app).await.is_empty());
    // The first message (no API key: it is kept, the answer fails) stores the conversation.
    let r = s.send("first words").await;
    assert_eq!(r.status(), 200);
    let _ = r.text().await.unwrap();
    let convs = none(&app).await;
    assert_eq!(convs.len(), 1, "{convs:?}");
    assert_eq!(convs[0].id, s.conversation);
    assert_eq!(convs[0].origin, SHOP);
    let r = s.send("second words").await;
    assert_eq!(r.status(), 200);
    let _ = r.text().await.unwrap();
    assert_eq!(none(&app).await.len(), 1, "the second message continued it");
    let users: Vec<String> = app
        .store()
        .messages(t.tenant, s.conversation)
        .await
        .unwrap()
        .into_iter()
        .filter(|m| m.role == parlo::model::MessageRole::User)
        .map(|m| m.content)
        .collect();
    assert_eq!(users, ["first words", "second words"]);
    // Its resume secret now resumes it, and the answer names it.
    let resumed = widget.resume(Some(&s.resume)).await;
    assert_eq!(resumed.body["conversation"], s.conversation.to_string());
    assert_eq!(resumed.conversation, s.conversation);
    app.stop().await;
}
