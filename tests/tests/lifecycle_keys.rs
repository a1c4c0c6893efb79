//! `parlo keys rotate-master` on both backends: every stored secret sealed under an older
//! master key (provider keys of every workspace, users' TOTP secrets) is re-sealed under the
//! newest one, so the old key can really be removed; a second run changes nothing.

use parlo::crypto::{self, Purpose};
use parlo::keyring::MasterKeys;
use parlo::lifecycle::keys::{Resealed, rotate_master};
use parlo::model::*;
use parlo_tests::fixture::NewTenant;
use parlo_tests::{Backend, TEST_MASTER_KEYS, both_backends, test_store};
use secrecy::ExposeSecret;

const NEW: &str = "2:bmV3LW1hc3Rlci1rZXktZm9yLXJvdGF0aW9uLTAxMjM=";

both_backends!(an_old_master_key_can_be_retired_after_rotate_master);

/// Attack surface: a leaked (or retiring) master key could never be removed, because secrets
/// sealed under it stayed so until their owner happened to save them again; removing it
/// broke every such workspace. After `rotate-master` with `2:new,1:old`, a server with only
/// `2:new` opens every provider key and TOTP secret.
async fn an_old_master_key_can_be_retired_after_rotate_master(backend: Backend) {
    let ts = test_store(backend).await;
    let old = MasterKeys::parse(TEST_MASTER_KEYS).unwrap();
    let mut tenants = Vec::new();
    for (email, name, key) in [
        ("ann@a.example", "Acme", "mistral-key-of-acme-0001"),
        ("bob@b.example", "Bolt", "mistral-key-of-bolt-0002"),
    ] {
        let t = NewTenant::owned_by(email)
            .workspace(name)
            .with_key(key)
            .create(&ts.store)
            .await;
        assert_eq!(t.key.as_ref().unwrap().sealed.key_version, 1);
        tenants.push((t, key));
    }
    // A workspace without a key is left alone.
    NewTenant::owned_by("cy@c.example")
        .workspace("Crux")
        .create(&ts.store)
        .await;
    let totp_user = tenants[0].0.user;
    let totp = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
    ts.store
        .set_totp(
            totp_user,
            Some((
                &crypto::seal(&old, Purpose::Totp(totp_user), totp.as_bytes()),
                0,
            )),
        )
        .await
        .unwrap();

    let both = MasterKeys::parse(&format!("{NEW},{TEST_MASTER_KEYS}")).unwrap();
    let r = rotate_master(&ts.store, &both).await.unwrap();
    assert_eq!(r.version, 2);
    let resealed = |n| Resealed {
        resealed: n,
        already_current: 2 - n,
    };
    assert_eq!(r.provider_keys, resealed(2), "{r}");
    assert_eq!(
        r.totp_secrets,
        Resealed {
            resealed: 1,
            already_current: 0
        }
    );
    // Idempotent.
    let again = rotate_master(&ts.store, &both).await.unwrap();
    assert_eq!(again.provider_keys, resealed(0), "{again}");
    assert_eq!(again.totp_secrets.resealed, 0);
    assert_eq!(again.totp_secrets.already_current, 1);

    // The old master key is gone: everything still opens.
    let new_only = MasterKeys::parse(NEW).unwrap();
    for (t, plain) in &tenants {
        let stored = ts
            .store
            .provider_key(t.tenant, Provider::Mistral)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.sealed.key_version, 2);
        assert_eq!(stored.last_four, t.key.as_ref().unwrap().last_four);
        let opened = crypto::open(
            &new_only,
            Purpose::ProviderKey(t.tenant, Provider::Mistral),
            &stored.sealed,
        )
        .unwrap();
        assert_eq!(opened.expose_secret(), *plain);
    }
    let user = ts.store.user(totp_user).await.unwrap().unwrap();
    let opened = crypto::open(
        &new_only,
        Purpose::Totp(totp_user),
        user.totp.as_ref().unwrap(),
    )
    .unwrap();
    assert_eq!(opened.expose_secret(), totp);

    // Rotating without the version a secret is sealed under says which one is missing.
    let third = MasterKeys::parse(&format!(
        "3:dGhpcmQtbWFzdGVyLWtleS1mb3Itcm90YXRpb24tMDE=,{NEW}"
    ))
    .unwrap();
    let t = NewTenant::owned_by("dee@d.example")
        .workspace("Dune")
        .with_key("mistral-key-of-dune-0004")
        .create(&ts.store)
        .await;
    let err = rotate_master(&ts.store, &third).await.unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("master key version 1") && msg.contains(&t.tenant.to_string()),
        "{msg}"
    );
}
