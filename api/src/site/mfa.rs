//! TOTP (RFC 6238: SHA-1, 6 digits, 30-second steps, one step of clock skew each way), the
//! enrolment QR code rendered here as inline SVG (no third-party image service ever sees the
//! secret), and recovery codes, of which only SHA-256 hashes are stored.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use qrcode::QrCode;
use qrcode::render::svg;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, Secret, TOTP};

use crate::crypto::{self, Purpose};
use crate::keyring::MasterKeys;
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

/// Ten fresh recovery codes like `k3j9x-7ppq2` (50 bits each), and their hashes.
pub fn recovery_codes() -> (Vec<String>, Vec<Vec<u8>>) {
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
    let hashes = codes.iter().map(|c| recovery_hash(c)).collect();
    (codes, hashes)
}

/// SHA-256 of a recovery code as typed, ignoring case, spaces and dashes.
pub fn recovery_hash(code: &str) -> Vec<u8> {
    let norm: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    crypto::sha256(format!("parlo:recovery:v1:{norm}").as_bytes())
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

    #[test]
    fn recovery_codes_match_however_typed() {
        let (codes, hashes) = recovery_codes();
        assert_eq!(codes.len(), 10);
        let typed = codes[3].to_uppercase().replace('-', " ");
        assert_eq!(recovery_hash(&typed), hashes[3]);
        assert!(looks_like_recovery(&codes[0]));
        assert!(!looks_like_recovery("123456"));
    }
}
