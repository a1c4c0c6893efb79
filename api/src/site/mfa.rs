//! TOTP (RFC 6238: SHA-1, 6 digits, 30-second steps, one step of clock skew each way), the
//! enrolment QR code rendered here as inline SVG (no third-party image service ever sees the
//! secret), and recovery codes, of which only keyed hashes are stored (HMAC-SHA256 of the
//! code's SHA-256 under a key derived from a master key version, which the entry names).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use qrcode::QrCode;
use qrcode::render::svg;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, Secret, TOTP};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::crypto::{self, Purpose};
use crate::keyring::{Key, MasterKeys};
use crate::model::{SealedSecret, UserId};

const STEP_SECS: u64 = 30;
pub const RECOVERY_CODES: usize = 10;

/// A fresh 160-bit secret, base32 (what authenticator apps take).
pub fn new_secret() -> String {
    Secret::Raw(crypto::random_bytes::<20>().to_vec())
        .to_encoded()
        .to_string()
}

fn totp(secret_b32: &str) -> Option<TOTP> {
    let raw = Secret::Encoded(secret_b32.to_owned()).to_bytes().ok()?;
    TOTP::new(Algorithm::SHA1, 6, 1, STEP_SECS, raw).ok()
}

/// The time step `code` is valid for (now, or one step either side), if any.
pub fn verify(secret_b32: &str, code: &str, unix_secs: u64) -> Option<i64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let totp = totp(secret_b32)?;
    let now = unix_secs / STEP_SECS;
    let mut found = None;
    for step in [now.saturating_sub(1), now, now + 1] {
        let expected = totp.generate(step * STEP_SECS);
        if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) {
            found = Some(step as i64);
        }
    }
    found
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The `otpauth://` URI the QR code carries.
pub fn otpauth_uri(issuer: &str, account: &str, secret_b32: &str) -> String {
    let enc = |s: &str| {
        url::form_urlencoded::byte_serialize(s.as_bytes())
            .collect::<String>()
            .replace('+', "%20")
    };
    format!(
        "otpauth://totp/{}:{}?secret={secret_b32}&issuer={}&algorithm=SHA1&digits=6&period=30",
        enc(issuer),
        enc(account),
        enc(issuer)
    )
}

/// The QR code as an inline `<svg>` element (no XML declaration, labelled for screen readers).
pub fn qr_svg(data: &str) -> anyhow::Result<String> {
    let code = QrCode::new(data.as_bytes())?;
    let svg = code
        .render::<svg::Color>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build();
    let start = svg
        .find("<svg")
        .ok_or_else(|| anyhow::anyhow!("no svg element"))?;
    Ok(svg[start..].replacen(
        "<svg ",
        "<svg role=\"img\" aria-label=\"QR code for your authenticator app\" ",
        1,
    ))
}

/// The secret sealed to its user, as text for a hidden form field: the enrolment form
/// carries it between showing the QR code and confirming the first code, so the server keeps
/// no half-finished state and the browser cannot substitute a secret of its own.
pub fn seal_for_form(keys: &MasterKeys, user: UserId, secret_b32: &str) -> String {
    let s = crypto::seal(keys, Purpose::Totp(user), secret_b32.as_bytes());
    let mut raw = Vec::with_capacity(4 + 12 + s.ciphertext.len());
    raw.extend_from_slice(&s.key_version.to_be_bytes());
    raw.extend_from_slice(&s.nonce);
    raw.extend_from_slice(&s.ciphertext);
    B64URL.encode(raw)
}

pub fn open_from_form(keys: &MasterKeys, user: UserId, field: &str) -> Option<SecretString> {
    let raw = B64URL.decode(field.trim()).ok()?;
    if raw.len() < 4 + 12 + 16 {
        return None;
    }
    let sealed = SealedSecret {
        key_version: i32::from_be_bytes(raw[..4].try_into().ok()?),
        nonce: raw[4..16].to_vec(),
        ciphertext: raw[16..].to_vec(),
    };
    crypto::open(keys, Purpose::Totp(user), &sealed).ok()
}

/// Opens the stored secret of a user.
pub fn open_stored(keys: &MasterKeys, user: UserId, sealed: &SealedSecret) -> Option<String> {
    crypto::open(keys, Purpose::Totp(user), sealed)
        .ok()
        .map(|s| s.expose_secret().to_owned())
}

/// Ten fresh recovery codes like `k3j9x-7ppq2` (50 bits each), and the entries to store.
pub fn recovery_codes(keys: &MasterKeys) -> (Vec<String>, Vec<String>) {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    let codes: Vec<String> = (0..RECOVERY_CODES)
        .map(|_| {
            let bytes = crypto::random_bytes::<10>();
            let chars: String = bytes
                .iter()
                .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
                .collect();
            format!("{}-{}", &chars[..5], &chars[5..])
        })
        .collect();
    let (version, key) = keys.current();
    let entries = codes
        .iter()
        .map(|c| keyed_entry(version, key, &recovery_digest(c)))
        .collect();
    (codes, entries)
}

/// SHA-256 of a recovery code as typed, ignoring case, spaces and dashes. Stored as such
/// (hex) before codes were keyed; now only ever stored under a key ([`keyed_entry`]).
fn recovery_digest(code: &str) -> Vec<u8> {
    let norm: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    crypto::sha256(format!("parlo:recovery:v1:{norm}").as_bytes())
}

/// HMAC-SHA256 under a key derived from master key `master`, so the database alone (a
/// backup, a dump) cannot test guesses of the 50-bit codes.
fn keyed_digest(master: &Key, digest: &[u8]) -> Vec<u8> {
    let mut k = Hmac::<Sha256>::new_from_slice(master.bytes()).expect("any key length");
    k.update(b"parlo:site:recovery-key:v1");
    let derived = k.finalize().into_bytes();
    let mut mac = Hmac::<Sha256>::new_from_slice(&derived).expect("any key length");
    mac.update(digest);
    mac.finalize().into_bytes().to_vec()
}

/// A stored entry: `k{master key version}:` + hex of the keyed digest.
fn keyed_entry(version: u32, master: &Key, digest: &[u8]) -> String {
    format!("k{version}:{}", hex::encode(keyed_digest(master, digest)))
}

/// Whether the stored `entry` is the recovery code `typed`. Entries keyed under a master key
/// version that is no longer configured match nothing; unkeyed entries (hex SHA-256, from
/// before codes were keyed) still match until [`rekey_legacy_entry`] rewrites them.
pub fn recovery_code_matches(keys: &MasterKeys, entry: &str, typed: &str) -> bool {
    let digest = recovery_digest(typed);
    let expected = match entry.split_once(':') {
        Some((v, _)) => match v
            .strip_prefix('k')
            .and_then(|v| v.parse().ok())
            .and_then(|v| keys.get(v).map(|k| (v, k)))
        {
            Some((v, k)) => keyed_entry(v, k, &digest),
            None => return false,
        },
        None => hex::encode(digest),
    };
    bool::from(expected.as_bytes().ct_eq(entry.as_bytes()))
}

/// An unkeyed entry (hex SHA-256) keyed under the current master key: the HMAC is taken
/// over the stored digest, so the code the user holds keeps working. `None` for an entry
/// that is already keyed.
pub fn rekey_legacy_entry(keys: &MasterKeys, entry: &str) -> Option<String> {
    if entry.contains(':') {
        return None;
    }
    let digest = hex::decode(entry).ok()?;
    let (version, key) = keys.current();
    Some(keyed_entry(version, key, &digest))
}

/// Whether the input looks like a recovery code rather than a TOTP code.
pub fn looks_like_recovery(code: &str) -> bool {
    code.chars().filter(|c| c.is_ascii_alphanumeric()).count() == 10
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_verify_with_one_step_of_skew_and_name_their_step() {
        let secret = new_secret();
        let t = totp(&secret).unwrap();
        let now = 1_700_000_000;
        let code = t.generate(now);
        assert_eq!(verify(&secret, &code, now), Some((now / 30) as i64));
        assert!(verify(&secret, &code, now + 30).is_some());
        assert!(verify(&secret, &code, now + 95).is_none());
        assert!(verify(&secret, "12345", now).is_none());
    }

    #[test]
    fn qr_is_an_inline_labelled_svg() {
        let svg = qr_svg("otpauth://totp/x?secret=ABC").unwrap();
        assert!(svg.starts_with("<svg role=\"img\""));
        assert!(!svg.contains("<?xml") && !svg.contains("style="));
    }

    fn ring() -> MasterKeys {
        MasterKeys::parse(
            "1:dGVzdC1tYXN0ZXIta2V5LTAxMjM0NTY3ODlhYmNkZWY=,\
             2:c2Vjb25kLW1hc3Rlci1rZXktMDEyMzQ1Njc4OWFiY2Q=",
        )
        .unwrap()
    }

    #[test]
    fn recovery_codes_match_however_typed() {
        let keys = ring();
        let (codes, entries) = recovery_codes(&keys);
        assert_eq!(codes.len(), 10);
        let typed = codes[3].to_uppercase().replace('-', " ");
        assert!(recovery_code_matches(&keys, &entries[3], &typed));
        assert!(!recovery_code_matches(&keys, &entries[4], &typed));
        assert!(looks_like_recovery(&codes[0]));
        assert!(!looks_like_recovery("123456"));
    }

    #[test]
    fn recovery_codes_are_stored_keyed_not_as_plain_sha256() {
        let keys = ring();
        let (codes, entries) = recovery_codes(&keys);
        for (code, entry) in codes.iter().zip(&entries) {
            assert!(entry.starts_with("k2:"), "keyed under the current version");
            assert!(!entry.contains(&hex::encode(recovery_digest(code))));
        }
        // Another server's keys cannot check a guess against a copied entry.
        let other = MasterKeys::parse("2:b3RoZXItc2VydmVyLWtleS0wMTIzNDU2Nzg5YWJjZGU=").unwrap();
        assert!(!recovery_code_matches(&other, &entries[0], &codes[0]));
    }

    #[test]
    fn legacy_unkeyed_codes_keep_working_and_are_rekeyed() {
        let keys = ring();
        let legacy = hex::encode(recovery_digest("abcde-fghjk"));
        assert!(recovery_code_matches(&keys, &legacy, "ABCDE FGHJK"));
        let rekeyed = rekey_legacy_entry(&keys, &legacy).unwrap();
        assert!(rekeyed.starts_with("k2:"));
        assert!(recovery_code_matches(&keys, &rekeyed, "abcde-fghjk"));
        assert!(!recovery_code_matches(&keys, &rekeyed, "abcde-fghjm"));
        assert_eq!(rekey_legacy_entry(&keys, &rekeyed), None);
    }
}
