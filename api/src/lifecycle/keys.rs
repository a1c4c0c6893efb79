//! `parlo keys rotate-master`: re-seals every secret stored under an older master key (every
//! tenant's provider keys, every user's TOTP secret) under the newest one, so the old master
//! key can be removed from `PARLO_MASTER_KEYS`. Idempotent: what is already sealed under the
//! newest version is left alone, and a second run re-seals nothing. Must never bypass
//! row-level security: provider keys are read and written in each tenant's own transaction.
//! A secret changed while the rotation runs (a new key saved) is left as its writer left it
//! (the update compares the old sealing), which is already the newest version.

use anyhow::Context;

use crate::crypto::{self, Purpose};
use crate::keyring::MasterKeys;
use crate::model::SealedSecret;
use crate::storage::Store;

/// How many secrets of one kind were re-sealed and how many were already current.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Resealed {
    pub resealed: u64,
    pub already_current: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RotationReport {
    /// The master key version everything is now sealed under.
    pub version: u32,
    pub provider_keys: Resealed,
    pub totp_secrets: Resealed,
}

impl std::fmt::Display for RotationReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "master key version {}: re-sealed {} provider keys ({} already current) and {} TOTP secrets ({} already current)",
            self.version,
            self.provider_keys.resealed,
            self.provider_keys.already_current,
            self.totp_secrets.resealed,
            self.totp_secrets.already_current
        )
    }
}

/// Opens `old` and seals it again under the newest key; `None` if it already is.
fn reseal(
    keys: &MasterKeys,
    purpose: Purpose,
    old: &SealedSecret,
    what: impl FnOnce() -> String,
) -> anyhow::Result<Option<SealedSecret>> {
    let current = i64::from(keys.current().0);
    if i64::from(old.key_version) == current {
        return Ok(None);
    }
    let plain = crypto::open(keys, purpose, old).with_context(|| {
        format!(
            "{} is sealed under master key version {}, which PARLO_MASTER_KEYS must still list \
             during the rotation",
            what(),
            old.key_version
        )
    })?;
    let bytes = secrecy::ExposeSecret::expose_secret(&plain).as_bytes();
    Ok(Some(crypto::seal(keys, purpose, bytes)))
}

fn count(tally: &mut Resealed, changed: Option<bool>) {
    match changed {
        Some(true) => tally.resealed += 1,
        // Already current, or replaced meanwhile by a writer (under the newest key).
        Some(false) | None => tally.already_current += 1,
    }
}

/// Re-seals every stored secret under the newest master key of `keys`.
pub async fn rotate_master(store: &Store, keys: &MasterKeys) -> anyhow::Result<RotationReport> {
    let mut report = RotationReport {
        version: keys.current().0,
        ..RotationReport::default()
    };
    for t in store.tenant_ids().await? {
        for (provider, old) in store.sealed_provider_keys(t).await? {
            let purpose = Purpose::ProviderKey(t, provider);
            let what = || format!("the {} key of workspace {t}", provider.as_str());
            let changed = match reseal(keys, purpose, &old, what)? {
                Some(new) => Some(store.reseal_provider_key(t, provider, &old, &new).await?),
                None => None,
            };
            count(&mut report.provider_keys, changed);
        }
    }
    for (user, old) in store.sealed_totp_secrets().await? {
        let what = || format!("the TOTP secret of user {user}");
        let changed = match reseal(keys, Purpose::Totp(user), &old, what)? {
            Some(new) => Some(store.reseal_totp(user, &old, &new).await?),
            None => None,
        };
        count(&mut report.totp_secrets, changed);
    }
    Ok(report)
}
