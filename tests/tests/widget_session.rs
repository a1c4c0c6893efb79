//! Widget sessions over HTTP on both backends: origin allow-lists, CORS, token handling
//! (claims, not URLs), resume across page loads, history and clearing.

use parlo_tests::{both_backends, spawn_app, tenant_with_bot};
use serde_json::Value;

const SHOP: &str = "https://shop.example";

both_backends! {
    allowed_origin_gets_a_session_with_bot_presentation => |backend| async move {
        let app = spawn_app(backend).await;
        let t = tenant_with_bot(app.store(), "ann@example.com", SHOP).await;
        let (status, body, headers) = app.start_session(SHOP, &t.bot.public_id, None).await;
        assert_eq!(status, 200, "{body}");
        assert!(body["token"].as_str().unwrap().starts_with("pw1.t1."));
        assert_eq!(body["expires_in"], 900);
        assert!(body["resume"].as_str().unwrap().starts_with("rs_"));
        assert_eq!(body["bot"]["name"], "Helper");
        assert_eq!(body["bot"]["theme_color"], "#2563eb");
        assert_eq!(headers["access-control-allow-origin"], SHOP);
        assert_eq!(headers["cache-control"], "no-store");
        app.stop().await;
    };

    disallowed_origin_gets_a_readable_403_and_no_session => |backend| async move {
        let app = spawn_app(backend).await;
        let t = tenant_with_bot(app.store(), "ann@example.com", SHOP).await;
        let (status, body, headers) = app.start_session("https://evil.example", &t.bot.public_id, None).await;
        assert_eq!(status, 403);
        assert_eq!(body["error"]["code"], "origin_not_allowed");
        assert!(body["error"]["message"].as_str().unwrap().contains("https://evil.example"));
        // The refusal is readable, so the widget can tell the site owner what is wrong.
        assert_eq!(headers["access-control-allow-origin"], "https://evil.example");
        // No conversation was created for the refused origin.
        let convs = app.store().conversations(t.tenant, &parlo::model::ConversationQuery { limit: 10, ..Default::default() }).await.unwrap();
        assert!(convs.is_empty());
        app.stop().await;
    };

    unknown_bots_and_bad_bodies_get_clear_errors => |backend| async move {
        let app = spawn_app(backend).await;
        let t = tenant_with_bot(app.store(), "ann@example.com", SHOP).await;
        // Same tenant, wrong random part; and garbage.
        let wrong = format!("{}0000000000000000", &t.bot.public_id[..t.bot.public_id.len() - 16]);
        for bot in [wrong.as_str(), "bot_nope", ""] {
            let (status, body, _) = app.start_session(SHOP, bot, None).await;
            assert_eq!(status, 404, "{bot}: {body}");
            assert_eq!(body["error"]["code"], "unknown_bot");
        }
        let r = app.client.post(app.url("/api/widget/v1/session")).header("origin", SHOP)
            .header("content-type", "application/json").body("{\"bot\": ").send().await.unwrap();
        assert_eq!(r.status(), 400);
        assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "malformed_json");
        let r = app.client.post(app.url("/api/widget/v1/session")).header("origin", SHOP)
            .header("content-type", "application/json").body(format!("{{\"bot\":\"{}\",\"x\":\"{}\"}}", t.bot.public_id, "a".repeat(70_000))).send().await.unwrap();
        assert_eq!(r.status(), 413, "bodies over the limit are refused");
        let r = app.client.post(app.url("/api/widget/v1/session")).json(&serde_json::json!({"bot": t.bot.public_id})).send().await.unwrap();
        assert_eq!(r.status(), 403, "no Origin header");
        app.stop().await;
    };

    preflight_is_answered_without_credentials => |backend| async move {
        let app = spawn_app(backend).await;
        let r = app.client.request(reqwest::Method::OPTIONS, app.url("/api/widget/v1/messages"))
            .header("origin", SHOP).header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization, content-type").send().await.unwrap();
        assert_eq!(r.status(), 204);
        assert_eq!(r.headers()["access-control-allow-origin"], SHOP);
        assert!(r.headers()["access-control-allow-headers"].to_str().unwrap().contains("authorization"));
        assert!(r.headers().get("access-control-allow-credentials").is_none());
        app.stop().await;
    };

    resume_secret_returns_to_the_same_conversation => |backend| async move {
        let app = spawn_app(backend).await;
        let t = tenant_with_bot(app.store(), "ann@example.com", SHOP).await;
        let (_, first, _) = app.start_session(SHOP, &t.bot.public_id, None).await;
        let resume = first["resume"].as_str().unwrap();
        let (_, again, _) = app.start_session(SHOP, &t.bot.public_id, Some(resume)).await;
        assert_eq!(again["conversation"], first["conversation"]);
        assert_eq!(again["resume"], first["resume"]);
        // A wrong secret starts a new conversation rather than failing.
        let (_, fresh, _) = app.start_session(SHOP, &t.bot.public_id, Some("rs_wrong")).await;
        assert_ne!(fresh["conversation"], first["conversation"]);
        app.stop().await;
    };

    history_and_clear_use_the_token_only => |backend| async move {
        let app = spawn_app(backend).await;
        let t = tenant_with_bot(app.store(), "ann@example.com", SHOP).await;
        let (_, s, _) = app.start_session(SHOP, &t.bot.public_id, None).await;
        let token = s["token"].as_str().unwrap();
        let conv: parlo::model::ConversationId = s["conversation"].as_str().unwrap().parse().unwrap();
        app.store().append_message(t.tenant, &parlo::model::NewMessage {
            conversation_id: conv, role: parlo::model::MessageRole::User,
            content: "stored earlier".into(), status: parlo::model::MessageStatus::Complete,
        }).await.unwrap();
        let r = app.client.get(app.url("/api/widget/v1/messages")).header("origin", SHOP).bearer_auth(token).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["messages"][0]["content"], "stored earlier");
        assert_eq!(body["messages"][0]["role"], "user");
        // The token in a query string is refused even when it is valid.
        let r = app.client.get(app.url(&format!("/api/widget/v1/messages?token={token}"))).header("origin", SHOP).send().await.unwrap();
        assert_eq!(r.status(), 400);
        assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "token_in_url");
        // Another origin cannot use the token.
        let r = app.client.get(app.url("/api/widget/v1/messages")).header("origin", "https://evil.example").bearer_auth(token).send().await.unwrap();
        assert_eq!(r.status(), 403);
        assert!(r.headers().get("access-control-allow-origin").is_none());
        // No token, a tampered token.
        let r = app.client.get(app.url("/api/widget/v1/messages")).header("origin", SHOP).send().await.unwrap();
        assert_eq!(r.status(), 401);
        let mut tampered = token.to_owned();
        tampered.pop();
        tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
        let r = app.client.get(app.url("/api/widget/v1/messages")).header("origin", SHOP).bearer_auth(&tampered).send().await.unwrap();
        assert_eq!(r.status(), 401);
        assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "invalid_token");
        // Clear deletes the conversation.
        let r = app.client.delete(app.url("/api/widget/v1/conversation")).header("origin", SHOP).bearer_auth(token).send().await.unwrap();
        assert_eq!(r.status(), 204);
        assert!(app.store().conversation(t.tenant, conv).await.unwrap().is_none());
        // A message to the cleared conversation is refused with a clear code; nothing is stored.
        let r = app.client.post(app.url("/api/widget/v1/messages")).header("origin", SHOP)
            .bearer_auth(token).json(&serde_json::json!({"content": "still there?"})).send().await.unwrap();
        assert_eq!(r.status(), 404);
        assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "conversation_gone");
        assert!(app.store().messages(t.tenant, conv).await.unwrap().is_empty());
        app.stop().await;
    };

    a_suspended_workspace_gets_no_session_and_its_tokens_stop_working => |backend| async move {
        let app = spawn_app(backend).await;
        let t = tenant_with_bot(app.store(), "ann@example.com", SHOP).await;
        let (_, s, _) = app.start_session(SHOP, &t.bot.public_id, None).await;
        app.store().set_suspended(t.tenant, Some(parlo::model::Timestamp::now())).await.unwrap();
        let (status, body, _) = app.start_session(SHOP, &t.bot.public_id, None).await;
        assert_eq!(status, 403);
        assert_eq!(body["error"]["code"], "workspace_suspended");
        let r = app.client.post(app.url("/api/widget/v1/messages")).header("origin", SHOP)
            .bearer_auth(s["token"].as_str().unwrap()).json(&serde_json::json!({"content": "hi"})).send().await.unwrap();
        assert_eq!(r.status(), 403);
        let conv: parlo::model::ConversationId = s["conversation"].as_str().unwrap().parse().unwrap();
        assert!(app.store().messages(t.tenant, conv).await.unwrap().is_empty(), "nothing stored for a suspended workspace");
        app.stop().await;
    };

    ip_rate_limit_answers_429_with_retry_after => |backend| async move {
        let app = parlo_tests::spawn_app_with(backend, |s| s.rate_limit_ip_per_minute = Some(3)).await;
        let t = tenant_with_bot(app.store(), "ann@example.com", SHOP).await;
        for _ in 0..3 {
            assert_eq!(app.start_session(SHOP, &t.bot.public_id, None).await.0, 200);
        }
        let (status, body, headers) = app.start_session(SHOP, &t.bot.public_id, None).await;
        assert_eq!(status, 429);
        assert_eq!(body["error"]["code"], "rate_limited");
        let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=60).contains(&retry));
        app.stop().await;
    };
}

#[tokio::test]
async fn a_token_of_one_tenant_cannot_read_another_tenants_conversation() {
    // Claims, not URLs: nothing in the request but the signed token selects the data, so
    // the only way to reach tenant B is a token signed for B.
    let app = spawn_app(parlo_tests::Backend::Postgres).await;
    let a = tenant_with_bot(app.store(), "ann@a.example", SHOP).await;
    let b = tenant_with_bot(app.store(), "bob@b.example", SHOP).await;
    let (_, sa, _) = app.start_session(SHOP, &a.bot.public_id, None).await;
    let (_, sb, _) = app.start_session(SHOP, &b.bot.public_id, None).await;
    let conv_b: parlo::model::ConversationId =
        sb["conversation"].as_str().unwrap().parse().unwrap();
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
        .bearer_auth(sa["token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let body = r.text().await.unwrap();
    assert!(!body.contains("B's secret"), "{body}");
    app.stop().await;
}
