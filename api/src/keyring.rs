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
    fn key_debug_never_shows_bytes() {
        let t = TokenKeys::parse(&format!("k1:{}", key())).unwrap();
        assert!(!format!("{t:?}").contains(&key()));
    }
}
