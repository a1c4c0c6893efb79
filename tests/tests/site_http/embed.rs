//! The embed page: rolling and pinned snippets from the published manifest, the CSP lines,
//! the live preview.

use parlo_tests::{Backend, both_backends};

use super::world::*;
use parlo_tests::browser::spawn_app_at_public_url;
use parlo_tests::fixture::NewTenant;

both_backends!(embed_page_warns_without_a_key_or_an_allowed_origin);

#[tokio::test]
async fn embed_page_shows_rolling_and_pinned_snippets() {
    let dist = tempfile::tempdir().unwrap();
    let integrity = format!("sha384-{}", "Q".repeat(64));
    std::fs::write(
        dist.path().join("manifest.json"),
        serde_json::json!({
            "latest": "0.2.0",
            "versions": {
                "0.1.0": {"published_at": "2025-01-01T00:00:00Z", "files": {"widget.js": {"integrity": "sha384-old", "bytes": 10}}},
                "0.2.0": {"published_at": "2025-02-01T00:00:00Z", "files": {"widget.js": {"integrity": integrity, "bytes": 12}}},
                "0.10.0\"><script>": {"published_at": "x", "files": {"widget.js": {"integrity": integrity, "bytes": 1}}}
            }
        })
        .to_string(),
    )
    .unwrap();
    let dist_dir = dist.path().to_owned();
    let app = spawn_app_at_public_url(Backend::Sqlite, |s| s.dist_dir = Some(dist_dir)).await;
    let (jo, v) = NewTenant::owned_by("jo@j.example")
        .workspace("Jo")
        .bot_with(|b| b.name = "Shop".into())
        .sign_up(&app)
        .await;
    let (t, bot) = (jo.tenant, jo.bot);
    let (status, page) = v.page(&format!("/w/{t}/bots/{}/embed", bot.id)).await;
    assert_eq!(status, 200);
    let origin = app.base.clone();
    let rolling = format!(
        "&lt;script src=&quot;{origin}/widget.js&quot; data-bot=&quot;{}&quot; async&gt;&lt;/script&gt;",
        bot.public_id
    );
    let unescape = |s: &str| {
        s.replace("&#34;", "&quot;")
            .replace("&#60;", "&lt;")
            .replace("&#62;", "&gt;")
    };
    let page = unescape(&page);
    assert!(page.contains(&rolling), "{page}");
    let pinned = format!(
        "&lt;script src=&quot;{origin}/widget/v0.2.0.js&quot; integrity=&quot;{integrity}&quot; crossorigin=&quot;anonymous&quot; data-bot=&quot;{}&quot; async&gt;&lt;/script&gt;",
        bot.public_id
    );
    assert!(page.contains(&pinned), "{page}");
    assert!(
        !page.contains("sha384-old"),
        "a malformed integrity is not offered"
    );
    assert!(
        !page.contains("<script>\""),
        "a hostile version name is not rendered"
    );
    assert!(
        page.contains(&format!("script-src {origin} &#39;wasm-unsafe-eval&#39;"))
            || page.contains(&format!("script-src {origin} 'wasm-unsafe-eval'"))
    );
    // The preview embeds the widget from this origin, with a CSP that lets it run WASM.
    let r = v.get(&format!("/w/{t}/bots/{}/preview", bot.id)).await;
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("'wasm-unsafe-eval'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    let body = unescape(&r.text().await.unwrap());
    assert!(
        body.contains(&format!("data-bot=\"{}\"", bot.public_id)),
        "{body}"
    );
    app.stop().await;
}

async fn embed_page_warns_without_a_key_or_an_allowed_origin(backend: Backend) {
    let w = world(backend).await;
    let embed = format!("/w/{}/bots/{}/embed", w.a.t, w.a.bot.id);
    // The fixture bot has an allowed origin but the workspace has no key.
    let (_, page) = w.alice.page(&embed).await;
    assert!(page.contains("id=\"warn-no-key\""), "{page}");
    assert!(!page.contains("id=\"warn-no-origin\""), "{page}");
    // Without an allowed origin the widget starts nowhere: the page says so.
    let mut settings = w.a.bot.settings.clone();
    settings.allowed_origins.clear();
    w.app
        .store()
        .update_bot(w.a.t, w.a.bot.id, &settings)
        .await
        .unwrap();
    let (_, page) = w.carol.page(&embed).await;
    assert!(page.contains("id=\"warn-no-origin\""), "{page}");
    assert!(
        page.contains("an admin adds"),
        "members are told who can fix it"
    );
    // With a key, the key warning goes.
    let key = "sk-live-embed-warning-0000";
    w.mistral.accept_key(key);
    let csrf = w.alice.csrf("/account").await;
    let r = w
        .alice
        .post(&format!("/w/{}/keys", w.a.t), &csrf, &[("api_key", key)])
        .await;
    assert_eq!(r.status(), 303);
    let (_, page) = w.alice.page(&embed).await;
    assert!(!page.contains("id=\"warn-no-key\""), "{page}");
    w.app.stop().await;
}
