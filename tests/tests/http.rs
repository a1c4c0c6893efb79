//! The HTTP foundation over real sockets, on both backends: health, readiness, security
//! headers and request ids.

use parlo_tests::{Backend, both_backends, spawn_app};

both_backends!(
    health_and_readiness,
    security_headers_on_every_response,
    request_ids_are_generated_and_echoed
);

async fn health_and_readiness(backend: Backend) {
    let app = spawn_app(backend).await;
    let r = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["status"],
        "ready"
    );
    app.stop().await;
}

async fn security_headers_on_every_response(backend: Backend) {
    let app = spawn_app(backend).await;
    for path in ["/healthz", "/does-not-exist"] {
        let r = app.client.get(app.url(path)).send().await.unwrap();
        let h = r.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
            "{path}: {csp}"
        );
        assert!(
            h.get("strict-transport-security").is_none(),
            "no HSTS on a plain-http public URL"
        );
    }
    app.stop().await;
}

async fn request_ids_are_generated_and_echoed(backend: Backend) {
    let app = spawn_app(backend).await;
    let r = app.client.get(app.url("/healthz")).send().await.unwrap();
    let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    let r = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "trace-me-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "trace-me-123");
    app.stop().await;
}

#[tokio::test]
async fn https_public_url_turns_on_hsts() {
    let app = parlo_tests::spawn_app_with(Backend::Sqlite, |s| {
        s.public_url = Some("https://chat.example.com".parse().unwrap());
    })
    .await;
    let r = app.client.get(app.url("/healthz")).send().await.unwrap();
    let hsts = r.headers()["strict-transport-security"].to_str().unwrap();
    assert!(hsts.contains("max-age=63072000"), "{hsts}");
    app.stop().await;
}

#[tokio::test]
async fn readiness_fails_when_the_database_goes_away() {
    let app = spawn_app(Backend::Postgres).await;
    let pg = app.db.pg().unwrap();
    let mut admin = parlo_tests::admin_conn().await;
    sqlx::query(&format!("DROP DATABASE {} WITH (FORCE)", pg.name))
        .execute(&mut admin)
        .await
        .unwrap();
    let r = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["status"], "unavailable");
    // Liveness is about the process, not the database.
    assert_eq!(
        app.client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    app.stop().await;
}
