//! The trust pages, sub-processors, security.txt and legal pages, from the operator's
//! configuration.

use parlo_tests::Backend;
use parlo_tests::browser::spawn_app_at_public_url;
use parlo_tests::fixture::SiteClient;

#[tokio::test]
async fn trust_pages_come_from_the_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("subprocessors.toml");
    std::fs::write(
        &file,
        "[[subprocessor]]\nname = \"Mistral AI\"\npurpose = \"Language model inference\"\nlocation = \"EU (France)\"\nadded = 2025-01-15\n\n\
         [[subprocessor]]\nname = \"Old Host\"\npurpose = \"Hosting\"\nlocation = \"EU\"\nadded = 2024-03-01\nremoved = 2025-02-20\n",
    )
    .unwrap();
    let legal = dir.path().join("legal");
    std::fs::create_dir(&legal).unwrap();
    std::fs::write(legal.join("dpa.md"), "# Our DPA\n\nFor {{public_url}}.\n").unwrap();
    let (file2, legal2) = (file.clone(), legal.clone());
    let app = spawn_app_at_public_url(Backend::Sqlite, move |s| {
        s.subprocessors_file = Some(file2);
        s.security_contact = Some("mailto:security@example.com".into());
        s.legal_dir = Some(legal2);
        s.mistral_base_url = Some("https://api.mistral.ai".parse().unwrap());
    })
    .await;
    let v = SiteClient::new(&app);
    let (status, page) = v.page("/trust").await;
    assert_eq!(status, 200);
    for needle in [
        "SQLite",
        "365 days",
        "api.mistral.ai",
        "European Union",
        "AES-256-GCM",
        "Operator-configured",
        "Mistral AI",
        "2025-02-20",
        "mailto:security@example.com",
    ] {
        assert!(page.contains(needle), "{needle} missing from /trust");
    }
    let json: serde_json::Value = v
        .get("/trust/subprocessors.json")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(json["subprocessors"][0]["name"], "Mistral AI");
    assert_eq!(json["subprocessors"][0]["added"], "2025-01-15");
    assert_eq!(json["subprocessors"][1]["removed"], "2025-02-20");
    assert_eq!(json["last_change"], "2025-02-20");
    let r = v.get("/.well-known/security.txt").await;
    assert_eq!(r.status(), 200);
    let txt = r.text().await.unwrap();
    assert!(
        txt.contains("Contact: mailto:security@example.com"),
        "{txt}"
    );
    assert!(
        txt.contains(&format!("Canonical: {}/.well-known/security.txt", app.base)),
        "{txt}"
    );
    let expires = txt
        .lines()
        .find_map(|l| l.strip_prefix("Expires: "))
        .unwrap();
    let year: i32 = expires[..4].parse().unwrap();
    assert!(year > 2025 && expires.ends_with('Z'), "{expires}");
    // Legal pages are for signed-in customers; the operator's DPA replaces the shipped one.
    assert_eq!(v.get("/settings/legal/dpa").await.status(), 303);
    v.sign_up("kim@k.example", "Kim").await;
    let (_, dpa) = v.page("/settings/legal/dpa").await;
    assert!(dpa.contains("Our DPA") && dpa.contains(&app.base), "{dpa}");
    let (_, toms) = v.page("/settings/legal/toms").await;
    assert!(
        toms.contains("Technical and organisational measures") && toms.contains("Mistral AI"),
        "{toms}"
    );
    app.stop().await;

    // Without a contact there is no security.txt rather than an invented one.
    let app = spawn_app_at_public_url(Backend::Sqlite, |_| {}).await;
    assert_eq!(
        SiteClient::new(&app)
            .get("/.well-known/security.txt")
            .await
            .status(),
        404
    );
    app.stop().await;
}

#[tokio::test]
async fn legal_pages_speak_to_customers_and_always_list_the_model_provider() {
    // No sub-processor list configured: the DPA still names the model provider.
    let app = spawn_app_at_public_url(Backend::Sqlite, |s| {
        s.mistral_base_url = Some("https://api.mistral.ai".parse().unwrap());
    })
    .await;
    let v = SiteClient::new(&app);
    v.sign_up("lee@l.example", "Lee").await;
    let (_, dpa) = v.page("/settings/legal/dpa").await;
    assert!(
        dpa.contains("Mistral AI") && dpa.contains("api.mistral.ai"),
        "{dpa}"
    );
    assert!(!dpa.contains("None listed"), "{dpa}");
    let (_, toms) = v.page("/settings/legal/toms").await;
    for page in [&dpa, &toms] {
        assert!(
            !page.contains("PARLO_LEGAL_DIR") && !page.contains("operator may replace"),
            "{page}"
        );
    }
    app.stop().await;
}
