//! A workspace's key and data: the Mistral key checked upstream, sealed and shown only by its
//! last four; export without key material; wiping logs; deleting the workspace.

use parlo::crypto;
use parlo::model::*;
use parlo_tests::fixture::location;
use parlo_tests::{Backend, both_backends};

use super::world::*;

both_backends!(
    byok_key_is_checked_upstream_sealed_and_shown_only_as_last_four,
    wipe_export_and_delete_workspace,
    deleting_a_bot_key_or_workspace_refuses_a_wrong_name_and_says_what_goes
);

async fn byok_key_is_checked_upstream_sealed_and_shown_only_as_last_four(backend: Backend) {
    let w = world(backend).await;
    let key = "sk-live-0123456789abcdefWXYZ";
    let path = format!("/w/{}/keys", w.a.t);
    let csrf = w.alice.csrf(&path).await;
    // A key Mistral refuses is not stored.
    let r = w
        .alice
        .post(&path, &csrf, &[("api_key", "sk-typo-0000000000")])
        .await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("Mistral refused this key"));
    assert!(
        w.app
            .store()
            .provider_key(w.a.t, Provider::Mistral)
            .await
            .unwrap()
            .is_none()
    );
    w.mistral.accept_key(key);
    let r = w.alice.post(&path, &csrf, &[("api_key", key)]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), format!("/w/{}/keys?notice=key_saved", w.a.t));
    let checked = w
        .mistral
        .requests()
        .into_iter()
        .filter(|q| q.path.ends_with("/models"))
        .count();
    assert_eq!(checked, 2, "both keys were checked with the upstream");
    let (_, page) = w.alice.page(&location(&r)).await;
    assert!(
        page.contains("WXYZ") && !page.contains("0123456789abcdef"),
        "{page}"
    );
    let stored = w
        .app
        .store()
        .provider_key(w.a.t, Provider::Mistral)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.last_four, "WXYZ");
    assert!(
        !stored
            .sealed
            .ciphertext
            .windows(8)
            .any(|x| x == b"sk-live-")
    );
    let opened = crypto::open(
        &w.app.state.keys.master,
        crypto::Purpose::ProviderKey(w.a.t, Provider::Mistral),
        &stored.sealed,
    )
    .unwrap();
    assert_eq!(secrecy::ExposeSecret::expose_secret(&opened), key);
    let audit = w.app.store().audit_log(w.a.t, 50).await.unwrap();
    let set = audit
        .iter()
        .find(|e| e.action == "provider_key.set")
        .expect("audited");
    assert!(!set.details.contains("0123456789"), "{}", set.details);
    // Delete (the last four typed in to confirm).
    let r = w
        .alice
        .post(&format!("{path}/delete"), &csrf, &[("confirm", "WXYZ")])
        .await;
    assert_eq!(r.status(), 303);
    assert!(
        w.app
            .store()
            .provider_key(w.a.t, Provider::Mistral)
            .await
            .unwrap()
            .is_none()
    );
    w.app.stop().await;
}

async fn wipe_export_and_delete_workspace(backend: Backend) {
    let w = world(backend).await;
    let csrf = w.alice.csrf("/account").await;
    // Export holds everything but key material.
    let r = w.alice.get(&format!("/w/{}/export", w.a.t)).await;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("attachment")
    );
    let export: serde_json::Value = r.json().await.unwrap();
    assert_eq!(export["workspace"]["name"], "Acme");
    assert_eq!(export["conversations"].as_array().unwrap().len(), 1);
    assert_eq!(
        export["conversations"][0]["messages"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(export["members"].as_array().unwrap().len(), 2);
    // Wipe one bot's logs.
    let r = w
        .alice
        .post(
            &format!("/w/{}/logs/wipe", w.a.t),
            &csrf,
            &[("bot", &w.a.bot.id.to_string()), ("confirm", "yes")],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert!(
        w.app
            .store()
            .conversation(w.a.t, w.a.conversation)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        w.app
            .store()
            .conversation(w.b.t, w.b.conversation)
            .await
            .unwrap()
            .is_some(),
        "B untouched"
    );
    // Deleting needs the name typed.
    let del = format!("/w/{}/delete", w.a.t);
    assert_eq!(
        w.alice
            .post(&del, &csrf, &[("confirm", "acme")])
            .await
            .status(),
        400
    );
    let r = w.alice.post(&del, &csrf, &[("confirm", "Acme")]).await;
    assert_eq!(location(&r), "/app?notice=workspace_deleted");
    assert!(w.app.store().workspace(w.a.t).await.unwrap().is_none());
    assert_eq!(w.alice.get(&format!("/w/{}", w.a.t)).await.status(), 404);
    b_is_intact(&w).await;
    w.app.stop().await;
}

async fn deleting_a_bot_key_or_workspace_refuses_a_wrong_name_and_says_what_goes(backend: Backend) {
    let w = world(backend).await;
    let store = w.app.store();
    let bot_path = format!("/w/{}/bots/{}", w.a.t, w.a.bot.id);
    let csrf = w.alice.csrf(&bot_path).await;
    // The bot page says what deleting the bot deletes: its one conversation, two messages.
    let (_, page) = w.alice.page(&bot_path).await;
    assert!(
        page.contains("<strong>1</strong> conversation and")
            && page.contains("<strong>2</strong> messages"),
        "{page}"
    );
    // A wrong name (or none) is refused and nothing is deleted.
    for wrong in ["helper", "", "Helper2"] {
        let r = w
            .alice
            .post(&format!("{bot_path}/delete"), &csrf, &[("confirm", wrong)])
            .await;
        assert_eq!(r.status(), 422, "{wrong:?}");
        assert!(r.text().await.unwrap().contains("Nothing was deleted"));
    }
    assert!(store.bot(w.a.t, w.a.bot.id).await.unwrap().is_some());
    assert!(
        store
            .conversation(w.a.t, w.a.conversation)
            .await
            .unwrap()
            .is_some()
    );
    // The key: its last four typed in; the page says how many bots stop answering.
    let keys = format!("/w/{}/keys", w.a.t);
    let key = "sk-live-0123456789abcdefWXYZ";
    w.mistral.accept_key(key);
    let r = w.alice.post(&keys, &csrf, &[("api_key", key)]).await;
    assert_eq!(r.status(), 303);
    let (_, page) = w.alice.page(&keys).await;
    assert!(page.contains("<strong>1</strong> bot stop"), "{page}");
    let r = w
        .alice
        .post(&format!("{keys}/delete"), &csrf, &[("confirm", "wxyz")])
        .await;
    assert_eq!(r.status(), 422);
    assert!(
        store
            .provider_key(w.a.t, Provider::Mistral)
            .await
            .unwrap()
            .is_some()
    );
    // The workspace: its owner sees the counts.
    let (_, page) = w.alice.page(&format!("/w/{}/settings", w.a.t)).await;
    assert!(
        page.contains("<strong>1</strong> bot,") && page.contains("<strong>2</strong> members"),
        "{page}"
    );
    // The right name deletes the bot and its logs.
    let r = w
        .alice
        .post(
            &format!("{bot_path}/delete"),
            &csrf,
            &[("confirm", "Helper")],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert!(store.bot(w.a.t, w.a.bot.id).await.unwrap().is_none());
    assert!(
        store
            .conversation(w.a.t, w.a.conversation)
            .await
            .unwrap()
            .is_none()
    );
    b_is_intact(&w).await;
    w.app.stop().await;
}
