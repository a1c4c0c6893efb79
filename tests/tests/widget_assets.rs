//! The published widget bundles as browsers fetch them: the rolling and pinned loaders,
//! every file's bytes matching its SRI hash in the manifest, content types, open CORS,
//! immutable caching and precompressed encodings; nothing unlisted is served.

use base64::Engine;
use parlo_tests::{Backend, spawn_app};
use serde_json::Value;

fn sri(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!(
        "sha384-{}",
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha384::digest(bytes))
    )
}

#[tokio::test]
async fn published_files_match_their_manifest_hashes() {
    let app = spawn_app(Backend::Sqlite).await;
    let manifest: Value = app
        .client
        .get(app.url("/widget/versions.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let latest = manifest["latest"].as_str().unwrap().to_owned();
    let files = manifest["versions"][&latest]["files"].as_object().unwrap();
    assert!(
        files.contains_key("widget.js") && files.keys().any(|f| f.ends_with(".wasm")),
        "{files:?}"
    );
    for (name, meta) in files {
        let r = app
            .client
            .get(app.url(&format!("/widget/v{latest}/{name}")))
            .header("accept-encoding", "identity")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{name}");
        let h = r.headers().clone();
        assert_eq!(h["access-control-allow-origin"], "*", "{name}");
        assert_eq!(h["cross-origin-resource-policy"], "cross-origin", "{name}");
        assert!(
            h["cache-control"].to_str().unwrap().contains("immutable"),
            "{name}"
        );
        let expected_type = if name.ends_with(".wasm") {
            "application/wasm"
        } else {
            "text/javascript; charset=utf-8"
        };
        assert_eq!(h["content-type"], expected_type, "{name}");
        let bytes = r.bytes().await.unwrap();
        assert_eq!(
            sri(&bytes),
            meta["integrity"].as_str().unwrap(),
            "{name} matches its published hash"
        );
    }
    // The pinned loader is the version's widget.js; the rolling one too, with a short cache.
    let pinned = app
        .client
        .get(app.url(&format!("/widget/v{latest}.js")))
        .header("accept-encoding", "identity")
        .send()
        .await
        .unwrap();
    assert!(
        pinned.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable")
    );
    let pinned = pinned.bytes().await.unwrap();
    assert_eq!(
        sri(&pinned),
        files["widget.js"]["integrity"].as_str().unwrap()
    );
    let rolling = app
        .client
        .get(app.url("/widget.js"))
        .header("accept-encoding", "identity")
        .send()
        .await
        .unwrap();
    assert_eq!(rolling.headers()["cache-control"], "public, max-age=300");
    assert_eq!(rolling.bytes().await.unwrap(), pinned);
    // The loader carries the hashes of the files it fetches: pinning it pins everything.
    let loader = String::from_utf8_lossy(&pinned).into_owned();
    for (name, meta) in files {
        if name.ends_with(".wasm") {
            assert!(
                loader.contains(meta["integrity"].as_str().unwrap()),
                "the loader pins {name}"
            );
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn precompressed_encodings_are_negotiated() {
    let app = spawn_app(Backend::Sqlite).await;
    // reqwest here has no decompression, so the raw encoded bytes arrive.
    let r = app
        .client
        .get(app.url("/widget.js"))
        .header("accept-encoding", "gzip, br")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-encoding"], "br");
    assert_eq!(r.headers()["vary"], "Accept-Encoding");
    let r = app
        .client
        .get(app.url("/widget.js"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-encoding"], "gzip");
    let r = app
        .client
        .get(app.url("/widget.js"))
        .header("accept-encoding", "br;q=0, gzip;q=0")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("content-encoding").is_none());
    app.stop().await;
}

#[tokio::test]
async fn only_published_files_are_served() {
    let app = spawn_app(Backend::Sqlite).await;
    for path in [
        "/widget/v9.9.9.js",
        "/widget/v0.1.0/manifest.json",
        "/widget/v0.1.0/..%2F..%2Fmanifest.json",
        "/widget/v0.1.0/widget.js.br",
        "/widget/0.1.0/widget.js",
        "/widget/v0.1.0/%2e%2e",
    ] {
        let r = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
    }
    app.stop().await;
}

/// Issue 14 item 9: without `Timing-Allow-Origin` the host page's own monitoring (Resource
/// Timing) sees 0 bytes for every cross-origin bundle file. Every bundle response carries it,
/// compressed or not, rolling or pinned.
#[tokio::test]
async fn bundle_responses_allow_resource_timing() {
    let app = spawn_app(Backend::Sqlite).await;
    let manifest: Value = app
        .client
        .get(app.url("/widget/versions.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let latest = manifest["latest"].as_str().unwrap().to_owned();
    let files = manifest["versions"][&latest]["files"].as_object().unwrap();
    let mut paths = vec![
        "/widget.js".to_owned(),
        "/widget/versions.json".to_owned(),
        format!("/widget/v{latest}.js"),
    ];
    paths.extend(files.keys().map(|f| format!("/widget/v{latest}/{f}")));
    for path in &paths {
        for encoding in ["identity", "br, gzip"] {
            let r = app
                .client
                .get(app.url(path))
                .header("accept-encoding", encoding)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{path}");
            assert_eq!(
                r.headers().get("timing-allow-origin").map(|v| v.as_bytes()),
                Some(&b"*"[..]),
                "{path} ({encoding})"
            );
        }
    }
    app.stop().await;
}
