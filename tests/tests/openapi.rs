//! The published OpenAPI document (`/api/widget/v1/openapi.json`) against real answers: every
//! widget endpoint is called for a success and for errors, and each answer's status must be
//! documented for its path and method, its content type must be the documented one, and its
//! JSON body must validate (jsonschema, draft 2020-12 as OpenAPI 3.1 says) against the
//! documented schema.

use parlo_tests::fake_mistral::FakeMistral;
use parlo_tests::fixture::{NewTenant, SHOP};
use parlo_tests::{Backend, TestApp, both_backends, spawn_app_with};
use reqwest::Method;
use serde_json::{Value, json};

const KEY: &str = "mk-tenant-key-0123456789abcdef";

struct Contract {
    doc: Value,
    checked: Vec<(String, String, u16)>,
}

impl Contract {
    async fn fetch(app: &TestApp) -> Contract {
        let resp = app
            .client
            .get(app.url("/api/widget/v1/openapi.json"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let doc: Value = resp.json().await.unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        Contract {
            doc,
            checked: Vec::new(),
        }
    }

    /// Checks one real answer against the document and returns its body.
    async fn check(&mut self, method: Method, path: &str, resp: reqwest::Response) -> Vec<u8> {
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned());
        let body = resp.bytes().await.unwrap().to_vec();
        let op = &self.doc["paths"][path][method.as_str().to_lowercase()];
        assert!(op.is_object(), "{method} {path} is not documented");
        let documented = &op["responses"][status.to_string()];
        assert!(
            documented.is_object(),
            "{method} {path} answered {status}, which is not documented: {}",
            String::from_utf8_lossy(&body)
        );
        self.checked
            .push((method.to_string(), path.to_owned(), status));
        let Some(content) = documented["content"].as_object() else {
            assert!(
                body.is_empty(),
                "{method} {path} {status} has an undocumented body"
            );
            return body;
        };
        let content_type = content_type.expect("a content type");
        let media = content_type.split(';').next().unwrap().trim();
        let Some(spec) = content.get(media) else {
            panic!("{method} {path} {status} answered {media}, documented {content:?}");
        };
        if media == "application/json" {
            let instance: Value = serde_json::from_slice(&body).unwrap();
            let schema = json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "components": self.doc["components"],
                "allOf": [spec["schema"]],
            });
            let validator = jsonschema::validator_for(&schema).unwrap();
            let errors: Vec<String> = validator
                .iter_errors(&instance)
                .map(|e| format!("{e} at {}", e.instance_path()))
                .collect();
            assert!(
                errors.is_empty(),
                "{method} {path} {status}: {instance} does not match {}: {errors:?}",
                spec["schema"]
            );
        }
        body
    }
}

both_backends!(every_widget_endpoint_answers_as_documented);

async fn every_widget_endpoint_answers_as_documented(backend: Backend) {
    let fake = FakeMistral::start().await;
    fake.accept_key(KEY);
    fake.set_ocr_pages(&["# Invoice 42"]);
    let base = fake.base_url.clone();
    let app = spawn_app_with(backend, move |s| s.mistral_base_url = Some(base)).await;
    let t = NewTenant::owned_by("ann@example.com")
        .with_key(KEY)
        .create(app.store())
        .await;
    let mut c = Contract::fetch(&app).await;
    let url = |p: &str| app.url(p);
    let session = "/api/widget/v1/session";
    let messages = "/api/widget/v1/messages";
    let conversation = "/api/widget/v1/conversation";
    let attachments = "/api/widget/v1/attachments";

    // POST /session: success, unknown bot, origin not allowed, a body of the wrong shape.
    let start = |bot: &str, origin: &str, body: Option<Value>| {
        app.client
            .post(url(session))
            .header("origin", origin)
            .json(&body.unwrap_or_else(|| json!({ "bot": bot })))
            .send()
    };
    let resp = start(&t.bot.public_id, SHOP, None).await.unwrap();
    let body = c.check(Method::POST, session, resp).await;
    let token = serde_json::from_slice::<Value>(&body).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let resp = start("bot_nope", SHOP, None).await.unwrap();
    assert_eq!(resp.status(), 404);
    c.check(Method::POST, session, resp).await;
    let resp = start(&t.bot.public_id, "https://elsewhere.example", None)
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    c.check(Method::POST, session, resp).await;
    let resp = start("", SHOP, Some(json!({"bot": 7, "extra": true})))
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    c.check(Method::POST, session, resp).await;

    let authed = |method: Method, path: &str, token: &str| {
        app.client
            .request(method, url(path))
            .header("origin", SHOP)
            .bearer_auth(token)
    };
    // POST /messages: the answer stream, an empty message, a forged token.
    let resp = authed(Method::POST, messages, &token)
        .json(&json!({"content": "Hello?"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let sse = c.check(Method::POST, messages, resp).await;
    let sse = String::from_utf8_lossy(&sse).into_owned();
    assert!(sse.contains("event: done"));
    // PUT /messages/{id}/rating: the answer just given, and a message that is not one.
    let done = sse.split("event: done\ndata: ").nth(1).unwrap();
    let done: Value = serde_json::from_str(done.lines().next().unwrap()).unwrap();
    let answer = done["message_id"].as_str().unwrap();
    let rating = "/api/widget/v1/messages/{id}/rating";
    let rate = |id: &str| {
        authed(Method::PUT, &rating.replace("{id}", id), &token).json(&json!({"rating": "up"}))
    };
    let resp = rate(answer).send().await.unwrap();
    assert_eq!(resp.status(), 204);
    c.check(Method::PUT, rating, resp).await;
    let resp = rate("not-a-message").send().await.unwrap();
    assert_eq!(resp.status(), 404);
    c.check(Method::PUT, rating, resp).await;
    let resp = authed(Method::POST, messages, &token)
        .json(&json!({"content": "   "}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    c.check(Method::POST, messages, resp).await;
    let resp = authed(Method::POST, messages, "pw1.k.forged.mac")
        .json(&json!({"content": "Hello?"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    c.check(Method::POST, messages, resp).await;

    // GET /messages: the history, and a token from another origin's page.
    let resp = authed(Method::GET, messages, &token).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    c.check(Method::GET, messages, resp).await;
    let resp = app
        .client
        .get(url(messages))
        .header("origin", "https://elsewhere.example")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    c.check(Method::GET, messages, resp).await;

    // POST /attachments: a PDF read by OCR, and a file that is not one.
    let file = |bytes: &[u8], name: &str| {
        reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(bytes.to_vec()).file_name(name.to_owned()),
        )
    };
    let resp = authed(Method::POST, attachments, &token)
        .multipart(file(b"%PDF-1.4\n%%EOF\n", "invoice.pdf"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    c.check(Method::POST, attachments, resp).await;
    let resp = authed(Method::POST, attachments, &token)
        .multipart(file(b"<svg onload=alert(1)>", "x.png"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);
    c.check(Method::POST, attachments, resp).await;

    // DELETE /conversation: cleared, and a forged token.
    let resp = authed(Method::DELETE, conversation, &token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    c.check(Method::DELETE, conversation, resp).await;
    let resp = authed(Method::DELETE, conversation, "not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    c.check(Method::DELETE, conversation, resp).await;
    // The token was issued for a new conversation, so its next message starts it again
    // (docs/widget-api.md), answered as documented.
    let resp = authed(Method::POST, messages, &token)
        .json(&json!({"content": "Still there?"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    c.check(Method::POST, messages, resp).await;

    // Every documented operation was exercised, with a success and an error each.
    let doc_ops: Vec<(String, String)> = c.doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(p, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.to_uppercase(), p.clone()))
        })
        .collect();
    assert_eq!(doc_ops.len(), 6, "{doc_ops:?}");
    for (m, p) in doc_ops {
        let statuses: Vec<u16> = c
            .checked
            .iter()
            .filter(|(cm, cp, _)| *cm == m && *cp == p)
            .map(|(_, _, s)| *s)
            .collect();
        assert!(
            statuses.iter().any(|s| *s < 300) && statuses.iter().any(|s| *s >= 400),
            "{m} {p}: only {statuses:?} checked"
        );
    }
}

#[tokio::test]
async fn the_document_names_the_bearer_token_and_every_schema_it_uses() {
    let app = spawn_app_with(Backend::Sqlite, |_| {}).await;
    let c = Contract::fetch(&app).await;
    let text = c.doc.to_string();
    assert_eq!(
        c.doc["components"]["securitySchemes"]["session_token"]["scheme"],
        "bearer"
    );
    for (name, _) in c.doc["components"]["schemas"].as_object().unwrap() {
        assert!(
            text.contains(&format!("#/components/schemas/{name}")),
            "{name} unused"
        );
    }
    // Every $ref points at a schema that exists.
    for part in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = part.split('"').next().unwrap();
        assert!(
            c.doc["components"]["schemas"][name].is_object(),
            "dangling $ref {name}"
        );
    }
}
