//! The server's own secrets in two key rings: the master key ring (encrypts tenants' provider
//! keys) and the token key ring (signs widget session tokens). They come from the environment
//! or from a key file outside the database, never from the database. In development a missing
//! key file is generated once (mode 0600) with a warning; production refuses to generate keys.
//! (Customers' own provider keys are `site/provider_keys.rs`; sealing is `crypto.rs`.)
//!
//! Formats (both comma-separated, base64 of 32 random bytes per key):
//! - `PARLO_MASTER_KEYS=2:<key>,1:<key>` — `version:key`; the highest version encrypts,
//!   every listed version decrypts (so old ciphertexts stay readable during rotation).
//! - `PARLO_TOKEN_KEYS=k2:<key>,k1:<key>` — `kid:key`; the first signs, all verify.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use secrecy::{ExposeSecret, SecretBox, SecretString};

pub const KEY_LEN: usize = 32;

/// Keys as found in the environment, still unparsed and secret.
#[derive(Debug, Clone, Default)]
pub struct KeySource {
    master: Option<SecretString>,
    token: Option<SecretString>,
    /// `PARLO_BACKUP_SIGNING_KEY`: a backup signing key of its own (base64 of a 32-byte
    /// Ed25519 seed), for a backup host that should not hold the master keys.
    backup_signing: Option<SecretString>,
}

impl KeySource {
    pub fn from_env(get: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let read = |name: &str| {
            get(name)
                .filter(|v| !v.trim().is_empty())
                .map(SecretString::from)
        };
        Ok(Self {
            master: read("PARLO_MASTER_KEYS"),
            token: read("PARLO_TOKEN_KEYS"),
            backup_signing: read("PARLO_BACKUP_SIGNING_KEY"),
        })
    }

    pub fn is_complete(&self) -> bool {
        self.master.is_some() && self.token.is_some()
    }

    pub fn describe_master(&self) -> String {
        describe(self.master.as_ref(), "PARLO_MASTER_KEYS")
    }

    pub fn describe_token(&self) -> String {
        describe(self.token.as_ref(), "PARLO_TOKEN_KEYS")
    }

    pub fn describe_backup_signing(&self) -> String {
        match self.backup_signing_key() {
            Ok(Some(k)) => format!(
                "\"REDACTED (from PARLO_BACKUP_SIGNING_KEY; verifies as {})\"",
                BackupVerifyKey(k.verifying_key())
            ),
            Ok(None) => "\"(derived from the newest master key)\"".to_owned(),
            Err(_) => "\"INVALID (PARLO_BACKUP_SIGNING_KEY)\"".to_owned(),
        }
    }

    /// The backup signing key of its own, if `PARLO_BACKUP_SIGNING_KEY` is set.
    pub fn backup_signing_key(&self) -> anyhow::Result<Option<BackupSigningKey>> {
        self.backup_signing
            .as_ref()
            .map(|s| {
                Key::parse(s.expose_secret())
                    .context("in PARLO_BACKUP_SIGNING_KEY")
                    .map(|k| BackupSigningKey::from_bytes(k.bytes()))
            })
            .transpose()
    }
}

/// The key backups are signed with: `PARLO_BACKUP_SIGNING_KEY` if set (a backup host then
/// needs no master key), else the one derived from the newest master key (environment or
/// key file, as [`load`] finds them).
pub fn backup_signing_key(
    source: &KeySource,
    key_file: &Path,
    production: bool,
) -> anyhow::Result<BackupSigningKey> {
    if let Some(k) = source.backup_signing_key()? {
        return Ok(k);
    }
    let (keys, _) = load(source, key_file, production).context(
        "loading the master keys the backup signing key derives from (or set \
         PARLO_BACKUP_SIGNING_KEY)",
    )?;
    Ok(keys.master.backup_signing_key())
}

/// The verify keys of this machine's own backup signing keys: `PARLO_BACKUP_SIGNING_KEY`'s,
/// and where the master keys are present (environment or an existing key file; never
/// generated here) those of every master key version.
pub fn own_backup_verify_keys(
    source: &KeySource,
    key_file: &Path,
    production: bool,
) -> anyhow::Result<Vec<BackupVerifyKey>> {
    let mut out = Vec::new();
    if let Some(k) = source.backup_signing_key()? {
        out.push(BackupVerifyKey(k.verifying_key()));
    }
    if source.is_complete() || key_file.exists() {
        let (keys, _) = load(source, key_file, production)?;
        out.extend(keys.master.backup_verify_keys().into_iter().map(|(_, k)| k));
    }
    Ok(out)
}

fn describe(v: Option<&SecretString>, name: &str) -> String {
    match v {
        Some(s) => {
            let ids: Vec<&str> = s
                .expose_secret()
                .split(',')
                .filter_map(|e| e.split_once(':').map(|(id, _)| id.trim()))
                .collect();
            format!("\"REDACTED (from {name}; ids {})\"", ids.join(", "))
        }
        None => "\"(from the key file)\"".to_owned(),
    }
}

/// One 256-bit key. Zeroised on drop; never `Debug`-printed.
pub struct Key(SecretBox<[u8; KEY_LEN]>);

impl Key {
    pub fn bytes(&self) -> &[u8; KEY_LEN] {
        self.0.expose_secret()
    }

    fn parse(b64: &str) -> anyhow::Result<Key> {
        let raw = B64
            .decode(b64.trim())
            .context("a key is not valid base64")?;
        let arr: [u8; KEY_LEN] = raw.try_into().map_err(|_| {
            anyhow::anyhow!("a key must be exactly {KEY_LEN} bytes (base64 of 32 random bytes)")
        })?;
        Ok(Key(SecretBox::new(Box::new(arr))))
    }

    fn random() -> Key {
        let mut arr = [0u8; KEY_LEN];
        getrandom::fill(&mut arr).expect("the OS random number generator failed");
        Key(SecretBox::new(Box::new(arr)))
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(REDACTED)")
    }
}

/// Versioned master keys for envelope encryption of provider keys.
#[derive(Debug)]
pub struct MasterKeys {
    keys: BTreeMap<u32, Key>,
}

impl MasterKeys {
    /// The version new ciphertexts are written with.
    pub fn current(&self) -> (u32, &Key) {
        let (v, k) = self
            .keys
            .iter()
            .next_back()
            .expect("at least one master key");
        (*v, k)
    }

    pub fn get(&self, version: u32) -> Option<&Key> {
        self.keys.get(&version)
    }

    /// Every configured version, oldest first.
    pub fn versions(&self) -> impl Iterator<Item = u32> + '_ {
        self.keys.keys().copied()
    }

    /// A key for one purpose derived from master key `version`: HMAC-SHA256 keyed with the
    /// master key over `parlo:derived-key:v1:` ‖ `label` (HKDF-Expand's one-block case), so
    /// each purpose gets an independent key and none of them reveals the master key.
    pub fn derive(&self, version: u32, label: &str) -> Option<Key> {
        use hmac::{Hmac, Mac};
        let master = self.get(version)?;
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(master.bytes()).expect("any key length");
        mac.update(b"parlo:derived-key:v1:");
        mac.update(label.as_bytes());
        let out: [u8; KEY_LEN] = mac.finalize().into_bytes().into();
        Some(Key(SecretBox::new(Box::new(out))))
    }

    /// [`Self::derive`] from the newest master key.
    pub fn derive_current(&self, label: &str) -> Key {
        self.derive(self.current().0, label)
            .expect("the current version is configured")
    }

    pub fn parse(spec: &str) -> anyhow::Result<Self> {
        let mut keys = BTreeMap::new();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (v, k) = entry
                .split_once(':')
                .context("PARLO_MASTER_KEYS entries look like `1:<base64 key>`")?;
            let v: u32 = v
                .trim()
                .parse()
                .context("a PARLO_MASTER_KEYS version must be a positive number")?;
            if keys
                .insert(v, Key::parse(k).context("in PARLO_MASTER_KEYS")?)
                .is_some()
            {
                bail!("PARLO_MASTER_KEYS lists version {v} twice");
            }
        }
        if keys.is_empty() {
            bail!("PARLO_MASTER_KEYS holds no key");
        }
        Ok(Self { keys })
    }
}

/// The key that signs backups (Ed25519).
pub type BackupSigningKey = ed25519_dalek::SigningKey;

/// The purpose label of the backup signing key derived from the master key.
pub const BACKUP_SIGNING_LABEL: &str = "backup-signing";

impl MasterKeys {
    /// The Ed25519 key that signs backups: derived from the newest master key, so it lives
    /// wherever the master keys do (the environment or the key file) and rotates with them.
    pub fn backup_signing_key(&self) -> BackupSigningKey {
        BackupSigningKey::from_bytes(self.derive_current(BACKUP_SIGNING_LABEL).bytes())
    }

    /// The public keys of the backup signing keys of every configured master key version,
    /// oldest first: what verifies this server's backups, old and new.
    pub fn backup_verify_keys(&self) -> Vec<(u32, BackupVerifyKey)> {
        self.versions()
            .filter_map(|v| {
                let k = self.derive(v, BACKUP_SIGNING_LABEL)?;
                let signing = ed25519_dalek::SigningKey::from_bytes(k.bytes());
                Some((v, BackupVerifyKey(signing.verifying_key())))
            })
            .collect()
    }
}

/// The public half of a backup signing key, as `PARLO_BACKUP_VERIFY_KEY` spells it:
/// `ed25519:<base64 of 32 bytes>`. Public: a restore machine needs only this.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct BackupVerifyKey(pub ed25519_dalek::VerifyingKey);

const BACKUP_VERIFY_PREFIX: &str = "ed25519:";

impl std::fmt::Display for BackupVerifyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{BACKUP_VERIFY_PREFIX}{}", B64.encode(self.0.as_bytes()))
    }
}

impl std::fmt::Debug for BackupVerifyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl std::str::FromStr for BackupVerifyKey {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        let b64 = s
            .trim()
            .strip_prefix(BACKUP_VERIFY_PREFIX)
            .with_context(|| {
                format!(
                    "a backup verify key looks like {BACKUP_VERIFY_PREFIX}<base64> (as `parlo keys \
                 backup-verify-key` prints it), got {s:?}"
                )
            })?;
        let bytes: [u8; 32] = B64
            .decode(b64)
            .ok()
            .and_then(|b| b.try_into().ok())
            .with_context(|| format!("{s:?}: not base64 of 32 bytes"))?;
        ed25519_dalek::VerifyingKey::from_bytes(&bytes)
            .map(BackupVerifyKey)
            .map_err(|_| anyhow::anyhow!("{s:?} is not an Ed25519 public key"))
    }
}

/// Token signing keys: the first signs, all verify.
#[derive(Debug)]
pub struct TokenKeys {
    keys: Vec<(String, Key)>,
}

impl TokenKeys {
    pub fn signing(&self) -> (&str, &Key) {
        let (kid, key) = &self.keys[0];
        (kid, key)
    }

    pub fn verifying(&self, kid: &str) -> Option<&Key> {
        self.keys.iter().find(|(k, _)| k == kid).map(|(_, key)| key)
    }

    pub fn parse(spec: &str) -> anyhow::Result<Self> {
        let mut keys: Vec<(String, Key)> = Vec::new();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (kid, k) = entry
                .split_once(':')
                .context("PARLO_TOKEN_KEYS entries look like `k1:<base64 key>`")?;
            let kid = kid.trim();
            let valid = !kid.is_empty()
                && kid.len() <= 16
                && kid
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !valid {
                bail!("a PARLO_TOKEN_KEYS key id must be 1-16 letters, digits, - or _");
            }
            if keys.iter().any(|(k, _)| k == kid) {
                bail!("PARLO_TOKEN_KEYS lists key id {kid} twice");
            }
            keys.push((
                kid.to_owned(),
                Key::parse(k).context("in PARLO_TOKEN_KEYS")?,
            ));
        }
        if keys.is_empty() {
            bail!("PARLO_TOKEN_KEYS holds no key");
        }
        Ok(Self { keys })
    }
}

#[derive(Debug)]
pub struct KeyRing {
    pub master: MasterKeys,
    pub token: TokenKeys,
}

impl KeyRing {
    /// Every key in its configured (base64) spelling, for the log redactor.
    pub fn literals(&self) -> Vec<String> {
        self.master
            .keys
            .values()
            .chain(self.token.keys.iter().map(|(_, k)| k))
            .map(|k| B64.encode(k.bytes()))
            .collect()
    }
}

/// What `load` did, so the caller can warn loudly about generated keys.
#[derive(Debug, PartialEq, Eq)]
pub enum KeyOrigin {
    Environment,
    KeyFile,
    Generated,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    master_keys: Option<SecretString>,
    token_keys: Option<SecretString>,
}

/// Resolves the key ring: the environment (`source`) first, then `key_file`; in development a
/// missing key file is created. Production never generates and rejects a key file others can
/// read. Takes only what it needs, so the key ring does not depend on the configuration.
pub fn load(
    source: &KeySource,
    key_file: &Path,
    production: bool,
) -> anyhow::Result<(KeyRing, KeyOrigin)> {
    if let (Some(m), Some(t)) = (&source.master, &source.token) {
        return Ok((
            KeyRing {
                master: MasterKeys::parse(m.expose_secret())?,
                token: TokenKeys::parse(t.expose_secret())?,
            },
            KeyOrigin::Environment,
        ));
    }
    let origin = if key_file.exists() {
        KeyOrigin::KeyFile
    } else if production {
        bail!(
            "PARLO_ENV=production and no keys: set PARLO_MASTER_KEYS and PARLO_TOKEN_KEYS, or \
             PARLO_KEY_FILE to an existing key file (mode 0600); `parlo keys generate` prints new keys"
        );
    } else {
        write_new_key_file(key_file)?;
        KeyOrigin::Generated
    };
    check_private(key_file, production)?;
    let text = std::fs::read_to_string(key_file)
        .with_context(|| format!("reading key file {}", key_file.display()))?;
    let file: KeyFile = toml::from_str(&text)
        .with_context(|| format!("parsing key file {}", key_file.display()))?;
    let master = source
        .master
        .as_ref()
        .or(file.master_keys.as_ref())
        .with_context(|| {
            format!(
                "no master keys: set PARLO_MASTER_KEYS or add master_keys to {}",
                key_file.display()
            )
        })?;
    let token = source
        .token
        .as_ref()
        .or(file.token_keys.as_ref())
        .with_context(|| {
            format!(
                "no token keys: set PARLO_TOKEN_KEYS or add token_keys to {}",
                key_file.display()
            )
        })?;
    Ok((
        KeyRing {
            master: MasterKeys::parse(master.expose_secret())?,
            token: TokenKeys::parse(token.expose_secret())?,
        },
        origin,
    ))
}

/// New keys in the environment-variable format, for `parlo keys generate`.
pub fn generate_env_lines() -> String {
    format!(
        "PARLO_MASTER_KEYS=1:{}\nPARLO_TOKEN_KEYS=k1:{}\n",
        B64.encode(Key::random().bytes()),
        B64.encode(Key::random().bytes())
    )
}

fn write_new_key_file(path: &Path) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating directory {}", dir.display()))?;
    }
    let body = format!(
        "# Parlo development keys, generated on first start. Keep this file out of backups of\n\
         # the database and readable only by the server's user. In production set\n\
         # PARLO_MASTER_KEYS and PARLO_TOKEN_KEYS instead (see `parlo keys generate`).\n\
         master_keys = \"1:{}\"\n\
         token_keys = \"dev1:{}\"\n",
        B64.encode(Key::random().bytes()),
        B64.encode(Key::random().bytes())
    );
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("creating key file {}", path.display()))?;
    f.write_all(body.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

#[cfg(unix)]
fn check_private(path: &Path, production: bool) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .with_context(|| format!("reading key file {}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        let msg = format!(
            "key file {} is readable by other users (mode {:o}); run `chmod 600 {}`",
            path.display(),
            mode & 0o777,
            path.display()
        );
        if production {
            bail!(msg);
        }
        tracing::warn!("{msg}");
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_: &Path, _: bool) -> anyhow::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> String {
        B64.encode([7u8; 32])
    }

    #[test]
    fn highest_master_version_encrypts() {
        let m = MasterKeys::parse(&format!("1:{},3:{}", key(), key())).unwrap();
        assert_eq!(m.current().0, 3);
        assert!(m.get(1).is_some());
        assert!(m.get(2).is_none());
    }

    #[test]
    fn first_token_key_signs_and_all_verify() {
        let t = TokenKeys::parse(&format!("new:{},old:{}", key(), key())).unwrap();
        assert_eq!(t.signing().0, "new");
        assert!(t.verifying("old").is_some());
        assert!(t.verifying("gone").is_none());
    }

    #[test]
    fn short_keys_and_bad_ids_are_rejected() {
        assert!(MasterKeys::parse("1:AAAA").is_err());
        assert!(TokenKeys::parse(&format!("bad id:{}", key())).is_err());
        assert!(TokenKeys::parse("").is_err());
    }

    #[test]
    fn derived_keys_differ_by_label_and_version() {
        let m = MasterKeys::parse(&format!("1:{},2:{}", key(), B64.encode([9u8; 32]))).unwrap();
        let a = m.derive(2, "a").unwrap();
        assert_eq!(a.bytes(), m.derive_current("a").bytes());
        assert_ne!(a.bytes(), m.derive(2, "b").unwrap().bytes());
        assert_ne!(a.bytes(), m.derive(1, "a").unwrap().bytes());
        assert_ne!(a.bytes(), m.current().1.bytes());
        assert!(m.derive(3, "a").is_none());
        assert_eq!(m.versions().collect::<Vec<_>>(), [1, 2]);
    }

    #[test]
    fn backup_verify_keys_round_trip_and_follow_the_master_key() {
        let m = MasterKeys::parse(&format!("1:{},2:{}", key(), B64.encode([9u8; 32]))).unwrap();
        let keys = m.backup_verify_keys();
        assert_eq!(keys.len(), 2);
        assert_ne!(keys[0].1, keys[1].1);
        assert_eq!(
            keys[1].1.0,
            m.backup_signing_key().verifying_key(),
            "the newest signs"
        );
        let text = keys[1].1.to_string();
        assert_eq!(text.parse::<BackupVerifyKey>().unwrap(), keys[1].1);
        assert!("AAAA".parse::<BackupVerifyKey>().is_err());
        assert!("ed25519:AAAA".parse::<BackupVerifyKey>().is_err());
    }

    #[test]
    fn key_debug_never_shows_bytes() {
        let t = TokenKeys::parse(&format!("k1:{}", key())).unwrap();
        assert!(!format!("{t:?}").contains(&key()));
    }
}
