//! Sealing secrets at rest with the master key ring: AES-256-GCM, a fresh random 96-bit
//! nonce per seal, and associated data that binds each ciphertext to its tenant and purpose
//! (so a ciphertext copied to another tenant's row, or used as another kind of secret, fails
//! to open). The key version is stored beside the ciphertext so master keys can rotate.
//! Also: SHA-256 of bearer secrets (login cookies, resume secrets) and random tokens.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::keyring::MasterKeys;
use crate::model::{Provider, SealedSecret, SourceId, TenantId, UserId};

/// What a sealed secret is for; part of the associated data.
#[derive(Debug, Clone, Copy)]
pub enum Purpose {
    ProviderKey(TenantId, Provider),
    Totp(UserId),
    /// A queued e-mail (it may hold a link with a single-use token), by outbox id.
    Mail(uuid::Uuid),
    /// A knowledge source's access token (a GitHub token).
    SourceToken(TenantId, SourceId),
}

impl Purpose {
    fn associated_data(self) -> String {
        match self {
            Purpose::ProviderKey(t, p) => format!("parlo:provider_key:v1:{}:{}", t, p.as_str()),
            Purpose::Totp(u) => format!("parlo:totp:v1:{u}"),
            Purpose::Mail(id) => format!("parlo:mail:v1:{id}"),
            Purpose::SourceToken(t, s) => format!("parlo:source_token:v1:{t}:{s}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("the master key version {0} that sealed this secret is not configured")]
    UnknownKeyVersion(i32),
    #[error("the secret could not be decrypted (wrong key, tenant or tampered ciphertext)")]
    Open,
}

pub fn seal(keys: &MasterKeys, purpose: Purpose, plaintext: &[u8]) -> SealedSecret {
    let (version, key) = keys.current();
    let cipher = Aes256Gcm::new_from_slice(key.bytes()).expect("32-byte key");
    let nonce = random_bytes::<12>();
    let aad = purpose.associated_data();
    let ciphertext = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: aad.as_bytes(),
            },
        )
        .expect("AES-GCM encryption of a short secret cannot fail");
    SealedSecret {
        ciphertext,
        nonce: nonce.to_vec(),
        key_version: i32::try_from(version).expect("key versions are small"),
    }
}

pub fn open(
    keys: &MasterKeys,
    purpose: Purpose,
    sealed: &SealedSecret,
) -> Result<SecretString, CryptoError> {
    let version = u32::try_from(sealed.key_version)
        .map_err(|_| CryptoError::UnknownKeyVersion(sealed.key_version))?;
    let key = keys
        .get(version)
        .ok_or(CryptoError::UnknownKeyVersion(sealed.key_version))?;
    if sealed.nonce.len() != 12 {
        return Err(CryptoError::Open);
    }
    let cipher = Aes256Gcm::new_from_slice(key.bytes()).expect("32-byte key");
    let aad = purpose.associated_data();
    let plain = cipher
        .decrypt(
            Nonce::from_slice(&sealed.nonce),
            Payload {
                msg: &sealed.ciphertext,
                aad: aad.as_bytes(),
            },
        )
        .map_err(|_| CryptoError::Open)?;
    String::from_utf8(plain)
        .map(SecretString::from)
        .map_err(|_| CryptoError::Open)
}

/// The last four characters of a key, the only part ever shown again.
pub fn last_four(secret: &SecretString) -> String {
    let s = secret.expose_secret();
    let n = s.chars().count();
    s.chars().skip(n.saturating_sub(4)).collect()
}

pub fn sha256(data: &[u8]) -> Vec<u8> {
    Sha256::digest(data).to_vec()
}

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).expect("the OS random number generator failed");
    b
}

/// A random URL-safe token with 256 bits of entropy and a readable prefix.
pub fn random_token(prefix: &str) -> String {
    format!("{prefix}{}", B64URL.encode(random_bytes::<32>()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TenantId;

    fn ring(spec: &str) -> MasterKeys {
        MasterKeys::parse(spec).unwrap()
    }

    const K1: &str = "1:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
    const K2: &str = "2:AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";

    #[test]
    fn sealed_key_opens_only_for_its_tenant_and_provider() {
        let keys = ring(K1);
        let (a, b) = (TenantId::new(), TenantId::new());
        let sealed = seal(
            &keys,
            Purpose::ProviderKey(a, Provider::Mistral),
            b"sk-tenant-a",
        );
        assert!(!sealed.ciphertext.windows(11).any(|w| w == b"sk-tenant-a"));
        let opened = open(&keys, Purpose::ProviderKey(a, Provider::Mistral), &sealed).unwrap();
        assert_eq!(opened.expose_secret(), "sk-tenant-a");
        assert!(matches!(
            open(&keys, Purpose::ProviderKey(b, Provider::Mistral), &sealed),
            Err(CryptoError::Open)
        ));
    }

    #[test]
    fn nonces_are_fresh_and_tampering_is_detected() {
        let keys = ring(K1);
        let p = Purpose::ProviderKey(TenantId::new(), Provider::Mistral);
        let s1 = seal(&keys, p, b"same");
        let s2 = seal(&keys, p, b"same");
        assert_ne!(s1.nonce, s2.nonce);
        assert_ne!(s1.ciphertext, s2.ciphertext);
        let mut bad = s1.clone();
        bad.ciphertext[0] ^= 1;
        assert!(open(&keys, p, &bad).is_err());
    }

    #[test]
    fn rotation_keeps_old_ciphertexts_readable() {
        let p = Purpose::ProviderKey(TenantId::new(), Provider::Mistral);
        let old = seal(&ring(K1), p, b"secret");
        assert_eq!(old.key_version, 1);
        let rotated = ring(&format!("{K2},{K1}"));
        assert_eq!(open(&rotated, p, &old).unwrap().expose_secret(), "secret");
        assert_eq!(seal(&rotated, p, b"x").key_version, 2);
        assert!(matches!(
            open(&ring(K2), p, &old),
            Err(CryptoError::UnknownKeyVersion(1))
        ));
    }
}
