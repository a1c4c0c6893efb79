//! Regressions of the outside security review (issue 10), each named after its attack, on
//! both backends: null and malformed origins, Parlo's own origin as a way in, tokens issued
//! before a suspension, request bodies that are not what they claim, and a token of one bot
//! aimed at another bot's conversation.

use parlo::model::{
    BotInput, BotSettings, ConversationId, MessageRole, MessageStatus, NewConversation, NewMessage,
    TenantId, Timestamp,
};
use parlo::widget::token::{self, WidgetClaims};
use parlo_tests::browser::spawn_app_at_public_url;
use parlo_tests::fake_mistral::{FakeMistral, Fault};
use parlo_tests::fixture::{NewTenant, SHOP, Tenant, WidgetSession};
use parlo_tests::{Backend, TestApp, both_backends, spawn_app, spawn_app_with};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const KEY: &str = "mk-hardening-key-0123456789abcdef";

both_backends!(
    a_null_or_malformed_origin_is_refused_on_every_endpoint,
    parlos_own_origin_is_no_way_in_without_a_site_session,
    the_preview_gets_its_session_only_through_a_signed_in_member,
    a_suspension_stops_every_endpoint_for_tokens_issued_before_it,
    json_arrays_and_unknown_fields_are_refused_with_422,
    a_message_of_only_invisible_characters_is_refused_like_an_empty_one,
    attachments_answer_bad_bodies_with_json_errors,
    a_failed_ocr_stores_no_attachment,
    an_upstream_429_and_parlos_own_limit_have_different_codes,
    a_token_signed_for_one_bot_cannot_reach_another_bots_conversation
);

/// A token signed with the server's key, as whoever holds it could make one.
/// A token that claims to start `conversation` (as a session's token before the first
/// message does), signed with the real key.
fn forge_start(
    app: &TestApp,
    tenant: TenantId,
    bot: parlo::model::BotId,
    conversation: ConversationId,
    origin: &str,
) -> String {
    let now = Timestamp::now().0 / 1000;
    token::issue(
        &app.state.keys.token,
        &WidgetClaims {
            tenant,
            bot,
            conversation,
            origin: origin.to_owned(),
            start: Some("00".repeat(32)),
            iat: now,
            exp: now + token::MAX_LIFETIME_SECS,
        },
    )
}

fn forge(
    app: &TestApp,
    tenant: TenantId,
    bot: parlo::model::BotId,
    conversation: ConversationId,
    origin: &str,
) -> String {
    let now = Timestamp::now().0 / 1000;
    token::issue(
        &app.state.keys.token,
        &WidgetClaims {
            tenant,
            bot,
            conversation,
            origin: origin.to_owned(),
            start: None,
            iat: now,
            exp: now + token::MAX_LIFETIME_SECS,
        },
    )
}

/// The five widget requests after `session`, with a token and an Origin header (or none).
async fn every_endpoint(
    app: &TestApp,
    token: &str,
    origin: Option<&str>,
) -> Vec<(&'static str, reqwest::Response)> {
    let pdf = b"%PDF-1.4\n%%EOF\n".to_vec();
    let mut out = Vec::new();
    for (name, method, path) in [
        ("send", Method::POST, "messages"),
        ("history", Method::GET, "messages"),
        ("clear", Method::DELETE, "conversation"),
        ("attach", Method::POST, "attachments"),
    ] {
        let mut r = app
            .client
            .request(method, app.url(&format!("/api/widget/v1/{path}")))
            .bearer_auth(token);
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        r = match name {
            "send" => r.json(&json!({ "content": "hello" })),
            "attach" => r.multipart(reqwest::multipart::Form::new().part(
                "file",
                reqwest::multipart::Part::bytes(pdf.clone()).file_name("a.pdf"),
            )),
            _ => r,
        };
        out.push((name, r.send().await.unwrap()));
    }
    out
}

async fn session_from(app: &TestApp, bot: &str, origin: &str) -> reqwest::Response {
    app.client
        .post(app.url("/api/widget/v1/session"))
        .header("origin", origin)
        .json(&json!({ "bot": bot }))
        .send()
        .await
        .unwrap()
}

async fn error_code(r: reqwest::Response) -> String {
    let body: Value = r.json().await.unwrap_or(Value::Null);
    body["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

async fn exists(app: &TestApp, t: &Tenant, c: ConversationId) -> bool {
    app.store()
        .conversation(t.tenant, c)
        .await
        .unwrap()
        .is_some()
}

async fn no_attachments(app: &TestApp, t: &Tenant, c: ConversationId) -> bool {
    app.store()
        .attachments(t.tenant, c)
        .await
        .unwrap()
        .is_empty()
}

async fn stored(app: &TestApp, t: &Tenant, c: ConversationId) -> usize {
    app.store().messages(t.tenant, c).await.unwrap().len()
}

async fn a_null_or_malformed_origin_is_refused_on_every_endpoint(backend: Backend) {
    let app = spawn_app_at_public_url(backend, |_| {}).await;
    let t = NewTenant::owned_by("ann@example.com")
        .create(app.store())
        .await;
    let own = app.base.clone();
    let s = t.widget(&app, SHOP).session().await;
    s.store_conversation(app.store()).await;
    // The attack: a token for Parlo's own origin (once minted with `Origin: <public URL>`),
    // then used from a sandboxed iframe (`Origin: null`) or with a garbage Origin.
    let own_token = forge(&app, t.tenant, t.bot.id, s.conversation, &own);
    for origin in ["null", "not an origin", "https://", "javascript:alert(1)"] {
        let r = session_from(&app, &t.bot.public_id, origin).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "session from {origin}");
        assert!(r.headers().get("access-control-allow-origin").is_none());
        assert_eq!(error_code(r).await, "origin_invalid");
        for token in [&own_token, &s.token] {
            for (name, r) in every_endpoint(&app, token, Some(origin)).await {
                assert_eq!(r.status(), StatusCode::FORBIDDEN, "{name} from {origin}");
                assert!(
                    r.headers().get("access-control-allow-origin").is_none(),
                    "{name} from {origin}: the page cannot read the answer"
                );
                assert_eq!(
                    error_code(r).await,
                    "origin_invalid",
                    "{name} from {origin}"
                );
            }
        }
        // Not even a preflight grants a null origin anything.
        let r = app
            .client
            .request(Method::OPTIONS, app.url("/api/widget/v1/messages"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .send()
            .await
            .unwrap();
        assert!(r.headers().get("access-control-allow-origin").is_none());
    }
    assert_eq!(
        stored(&app, &t, s.conversation).await,
        0,
        "nothing was stored"
    );
    assert!(exists(&app, &t, s.conversation).await);
    app.stop().await;
}

async fn parlos_own_origin_is_no_way_in_without_a_site_session(backend: Backend) {
    let app = spawn_app_at_public_url(backend, |_| {}).await;
    let t = NewTenant::owned_by("ann@example.com")
        .create(app.store())
        .await;
    let own = app.base.clone();
    // Anyone could send `Origin: <public URL>` from a script of their own.
    let r = session_from(&app, &t.bot.public_id, &own).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(r).await, "origin_not_allowed");
    let convs = app
        .store()
        .conversations(t.tenant, &Default::default())
        .await
        .unwrap();
    assert!(convs.is_empty(), "no conversation for Parlo's own origin");
    // A shop's token used from Parlo's origin is another website's token.
    let s = t.widget(&app, SHOP).session().await;
    for (name, r) in every_endpoint(&app, &s.token, Some(&own)).await {
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{name}");
        assert_eq!(error_code(r).await, "origin_mismatch", "{name}");
    }
    app.stop().await;
}

async fn the_preview_gets_its_session_only_through_a_signed_in_member(backend: Backend) {
    let app = spawn_app_at_public_url(backend, |_| {}).await;
    let (t, owner) = NewTenant::owned_by("jo@example.com").sign_up(&app).await;
    let own = app.base.clone();
    let path = format!("/w/{}/bots/{}/preview/session", t.tenant, t.bot.id);
    let page = format!("/w/{}/bots/{}/preview", t.tenant, t.bot.id);
    let csrf = owner.csrf(&page).await;
    let r = owner.post(&path, &csrf, &[]).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body: Value = r.json().await.unwrap();
    let token = body["token"].as_str().unwrap().to_owned();
    let resume = body["resume"].as_str().unwrap().to_owned();
    assert_eq!(body["bot"]["name"], "Helper");
    // The token works from Parlo's own pages: with its Origin, and for same-origin GETs
    // (which carry none).
    for origin in [Some(own.as_str()), None] {
        let mut r = app
            .client
            .get(app.url("/api/widget/v1/messages"))
            .bearer_auth(&token);
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        assert_eq!(
            r.send().await.unwrap().status(),
            StatusCode::OK,
            "{origin:?}"
        );
    }
    // The resume secret returns to the same conversation.
    let again: Value = owner
        .post(&path, &csrf, &[("resume", resume.as_str())])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["conversation"], body["conversation"]);
    // Without the CSRF token, without a sign-in, or as someone else: no token.
    let r = owner.post(&path, "forged", &[]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let stranger = parlo_tests::fixture::SiteClient::new(&app);
    let r = stranger.post(&path, &stranger.csrf_any().await, &[]).await;
    assert!(!r.status().is_success(), "{}", r.status());
    let other = parlo_tests::fixture::SiteClient::new(&app);
    other.sign_up("max@example.com", "Other").await;
    let csrf = other.csrf_any().await;
    let r = other.post(&path, &csrf, &[]).await;
    assert_eq!(
        r.status(),
        StatusCode::NOT_FOUND,
        "not a member of this workspace"
    );
    app.stop().await;
}

async fn a_suspension_stops_every_endpoint_for_tokens_issued_before_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = NewTenant::owned_by("ann@example.com")
        .create(app.store())
        .await;
    let widget = t.widget(&app, SHOP);
    let s = widget.session().await;
    s.store_conversation(app.store()).await;
    app.store()
        .append_message(
            t.tenant,
            &NewMessage {
                conversation_id: s.conversation,
                role: MessageRole::User,
                content: "before the suspension".into(),
                status: MessageStatus::Complete,
            },
        )
        .await
        .unwrap();
    app.store()
        .set_suspended(t.tenant, Some(Timestamp::now()))
        .await
        .unwrap();
    let r = widget.start_session(Some(&s.resume)).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.body["error"]["code"], "workspace_suspended", "session");
    for (name, r) in every_endpoint(&app, &s.token, Some(SHOP)).await {
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{name}");
        assert_eq!(error_code(r).await, "workspace_suspended", "{name}");
    }
    assert_eq!(
        stored(&app, &t, s.conversation).await,
        1,
        "nothing stored, nothing cleared"
    );
    assert!(no_attachments(&app, &t, s.conversation).await);
    app.stop().await;
}

async fn json_arrays_and_unknown_fields_are_refused_with_422(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = NewTenant::owned_by("ann@example.com")
        .create(app.store())
        .await;
    let s = t.widget(&app, SHOP).session().await;
    let bot = t.bot.public_id.as_str();
    for body in [
        json!([bot]),
        json!([bot, null]),
        json!(bot),
        json!(null),
        json!({ "bot": bot, "resume": null, "admin": true }),
    ] {
        let r = app
            .client
            .post(app.url("/api/widget/v1/session"))
            .header("origin", SHOP)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "session {body}"
        );
        assert_eq!(error_code(r).await, "invalid", "session {body}");
    }
    for body in [
        json!(["hello"]),
        json!("hello"),
        json!(42),
        json!({ "content": "hello", "role": "system" }),
    ] {
        let r = s
            .request(Method::POST, "messages")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "messages {body}"
        );
        assert_eq!(error_code(r).await, "invalid", "messages {body}");
    }
    assert_eq!(stored(&app, &t, s.conversation).await, 0);
    let convs = app
        .store()
        .conversations(t.tenant, &Default::default())
        .await
        .unwrap();
    // A session stores no conversation, and refused messages do not start one.
    assert!(convs.is_empty(), "{convs:?}");
    app.stop().await;
}

async fn a_message_of_only_invisible_characters_is_refused_like_an_empty_one(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = NewTenant::owned_by("ann@example.com")
        .create(app.store())
        .await;
    let s = t.widget(&app, SHOP).session().await;
    let empty = s.send("").await;
    assert_eq!(empty.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let empty: Value = empty.json().await.unwrap();
    for invisible in [
        "\u{200B}\u{200B}\u{200B}",
        "\u{200C}\u{200D}\u{2060}",
        "\u{FEFF}",
        " \u{200E}\u{200F}\u{202A}\u{202E}\u{2066}\u{2069} ",
        "\u{00AD}\u{3164}\u{FE0F}\u{E0041}",
    ] {
        let r = s.send(invisible).await;
        assert_eq!(
            r.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{invisible:?}"
        );
        let body: Value = r.json().await.unwrap();
        assert_eq!(
            body, empty,
            "the same answer as an empty message: {invisible:?}"
        );
    }
    assert_eq!(stored(&app, &t, s.conversation).await, 0);
    app.stop().await;
}

/// A tenant with its key on an app whose upstream is the fake.
async fn with_fake(backend: Backend, limit: u32) -> (TestApp, FakeMistral, Tenant, WidgetSession) {
    let fake = FakeMistral::start().await;
    fake.accept_key(KEY);
    let base = fake.base_url.clone();
    let app = spawn_app_with(backend, move |s| {
        s.mistral_base_url = Some(base);
        s.upstream_read_timeout_secs = Some(2);
        s.rate_limit_conversation_per_minute = Some(limit);
        s.rate_limit_ip_per_minute = Some(1000);
    })
    .await;
    let t = NewTenant::owned_by("ann@example.com")
        .with_key(KEY)
        .create(app.store())
        .await;
    let s = t.widget(&app, SHOP).session().await;
    (app, fake, t, s)
}

fn pdf_form() -> reqwest::multipart::Form {
    reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(b"%PDF-1.4\n1 0 obj <<>> endobj\n%%EOF\n".to_vec())
            .file_name("scan.pdf")
            .mime_str("application/pdf")
            .unwrap(),
    )
}

async fn attachments_answer_bad_bodies_with_json_errors(backend: Backend) {
    let (app, fake, t, s) = with_fake(backend, 1000).await;
    fake.set_ocr_pages(&["never read"]);
    // Not multipart at all.
    for (content_type, body) in [
        ("application/json", r#"{"file":"%PDF-1.4"}"#),
        ("text/plain", "%PDF-1.4"),
        ("multipart/form-data", "--x\r\n"),
    ] {
        let r = s
            .request(Method::POST, "attachments")
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type}"
        );
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );
        assert_eq!(
            error_code(r).await,
            "unsupported_media_type",
            "{content_type}"
        );
    }
    // A multipart body cut off in the middle of the file.
    let truncated = "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.pdf\"\r\n\
                     Content-Type: application/pdf\r\n\r\n%PDF-1.4\n1 0 obj <<>>";
    let r = s
        .request(Method::POST, "attachments")
        .header("content-type", "multipart/form-data; boundary=XyZ")
        .body(truncated)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    assert_eq!(error_code(r).await, "bad_upload");
    assert!(
        fake.requests().iter().all(|r| r.path != "/v1/ocr"),
        "nothing was read"
    );
    assert!(no_attachments(&app, &t, s.conversation).await);
    assert_eq!(stored(&app, &t, s.conversation).await, 0);
    app.stop().await;
}

async fn a_failed_ocr_stores_no_attachment(backend: Backend) {
    let (app, fake, t, s) = with_fake(backend, 1000).await;
    fake.set_fault(Fault::Status500);
    let r = s
        .request(Method::POST, "attachments")
        .multipart(pdf_form())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    assert!(
        fake.requests().iter().any(|r| r.path == "/v1/ocr"),
        "OCR was asked"
    );
    assert!(
        no_attachments(&app, &t, s.conversation).await,
        "no orphan attachment row"
    );
    assert_eq!(stored(&app, &t, s.conversation).await, 0);
    // Once OCR works, the attachment and its message are stored together.
    fake.clear_fault();
    fake.set_ocr_pages(&["Invoice 7"]);
    let r = s
        .request(Method::POST, "attachments")
        .multipart(pdf_form())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let att = app
        .store()
        .attachments(t.tenant, s.conversation)
        .await
        .unwrap();
    let messages = app
        .store()
        .messages(t.tenant, s.conversation)
        .await
        .unwrap();
    assert_eq!((att.len(), messages.len()), (1, 1));
    assert_eq!(att[0].message_id, Some(messages[0].id));
    assert!(messages[0].content.contains("Invoice 7"));
    app.stop().await;
}

async fn an_upstream_429_and_parlos_own_limit_have_different_codes(backend: Backend) {
    let (app, fake, t, s) = with_fake(backend, 2).await;
    fake.set_fault(Fault::Status429 {
        retry_after: Some(7),
    });
    let r = s
        .request(Method::POST, "attachments")
        .multipart(pdf_form())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers()["retry-after"], "7");
    assert_eq!(error_code(r).await, "upstream_rate_limited");
    // Parlo's own per-conversation limit (two a minute) says so with its own code.
    let _ = s
        .request(Method::POST, "attachments")
        .multipart(pdf_form())
        .send()
        .await
        .unwrap();
    let r = s
        .request(Method::POST, "attachments")
        .multipart(pdf_form())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(error_code(r).await, "rate_limited");
    assert!(no_attachments(&app, &t, s.conversation).await);
    app.stop().await;
}

async fn a_token_signed_for_one_bot_cannot_reach_another_bots_conversation(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = NewTenant::owned_by("ann@example.com")
        .create(app.store())
        .await;
    // Bot A2 in the same workspace, with a conversation holding a message.
    let a2 = app
        .store()
        .create_bot(
            t.tenant,
            &BotSettings::parse(&BotInput {
                name: "Other".into(),
                allowed_origins: SHOP.into(),
                ..BotInput::default()
            })
            .unwrap(),
        )
        .await
        .unwrap();
    let theirs = app
        .store()
        .create_conversation(
            t.tenant,
            &NewConversation {
                bot_id: a2.id,
                origin: SHOP.into(),
                resume_hash: vec![7; 32],
            },
        )
        .await
        .unwrap();
    app.store()
        .append_message(
            t.tenant,
            &NewMessage {
                conversation_id: theirs.id,
                role: MessageRole::User,
                content: "A2's secret".into(),
                status: MessageStatus::Complete,
            },
        )
        .await
        .unwrap();
    // Signed for bot A, pointing at A2's conversation; the second also claims to start it
    // (as a token before its first message does): an id that is taken is not taken over.
    let forged = forge(&app, t.tenant, t.bot.id, theirs.id, SHOP);
    let starting = forge_start(&app, t.tenant, t.bot.id, theirs.id, SHOP);
    for token in [&forged, &starting] {
        for (name, r) in every_endpoint(&app, token, Some(SHOP)).await {
            match name {
                "history" => {
                    assert_eq!(r.status(), StatusCode::OK);
                    let body: Value = r.json().await.unwrap();
                    assert_eq!(body["messages"], json!([]), "A2's messages are not A's");
                }
                // Clearing what does not exist is done already; A2's conversation stays.
                "clear" => assert_eq!(r.status(), StatusCode::NO_CONTENT),
                _ => {
                    assert_eq!(r.status(), StatusCode::NOT_FOUND, "{name}");
                    assert_eq!(error_code(r).await, "conversation_gone", "{name}");
                }
            }
        }
    }
    assert_eq!(
        stored(&app, &t, theirs.id).await,
        1,
        "nothing added to or cleared from A2's conversation"
    );
    let kept = app
        .store()
        .conversation(t.tenant, theirs.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (kept.bot_id, kept.origin, kept.resume_hash),
        (
            theirs.bot_id,
            theirs.origin.clone(),
            theirs.resume_hash.clone()
        ),
        "A2's conversation keeps its bot, origin and resume hash"
    );
    assert!(exists(&app, &t, theirs.id).await);
    assert!(no_attachments(&app, &t, theirs.id).await);
    app.stop().await;
}
