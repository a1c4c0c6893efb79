//! Widget session tokens: short-lived, HMAC-SHA256 signed, carrying the key id that signed
//! them so the key ring can rotate without ending conversations.
//!
//! Format: `pw1.<kid>.<base64url(claims JSON)>.<base64url(HMAC-SHA256(key[kid], "pw1.<kid>.<claims>"))>`
//! The MAC covers the version, the key id and the claims. Verification looks the key up by
//! id, compares in constant time (`Mac::verify_slice`), then checks expiry and lifetime.
//! Tokens are read only from the Authorization header (see `extract`), never from a URL.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::keyring::TokenKeys;
use crate::model::{BotId, ConversationId, NewConversation, TenantId, Timestamp, WidgetScope};

const VERSION: &str = "pw1";
/// The longest a token may live.
pub const MAX_LIFETIME_SECS: i64 = 15 * 60;
/// Clock skew tolerated between processes for `iat`.
const SKEW_SECS: i64 = 60;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WidgetClaims {
    #[serde(rename = "ws")]
    pub tenant: TenantId,
    pub bot: BotId,
    #[serde(rename = "conv")]
    pub conversation: ConversationId,
    pub origin: String,
    /// Hex SHA-256 of the resume secret when the conversation is not stored yet: its first
    /// message (or upload) stores it with this token's id, bot and origin. Absent for a
    /// resumed conversation.
    #[serde(default, rename = "new", skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// Issued at, unix seconds.
    pub iat: i64,
    /// Expires at, unix seconds.
    pub exp: i64,
}

impl WidgetClaims {
    /// The bot and conversation the token is for: storage filters by both.
    pub fn scope(&self) -> WidgetScope {
        WidgetScope {
            bot: self.bot,
            conversation: self.conversation,
        }
    }

    /// The conversation to store with the first message, if the session did not resume one.
    pub fn new_conversation(&self) -> Option<NewConversation> {
        let resume_hash = hex::decode(self.start.as_deref()?).ok()?;
        Some(NewConversation {
            bot_id: self.bot,
            origin: self.origin.clone(),
            resume_hash,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token was signed with an unknown key")]
    UnknownKey,
    #[error("the token signature is invalid")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
}

type HmacSha256 = Hmac<Sha256>;

fn mac(key: &[u8; 32], signed: &str) -> HmacSha256 {
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    m.update(signed.as_bytes());
    m
}

pub fn issue(keys: &TokenKeys, claims: &WidgetClaims) -> String {
    let (kid, key) = keys.signing();
    let payload = B64URL.encode(serde_json::to_vec(claims).expect("claims serialise"));
    let signed = format!("{VERSION}.{kid}.{payload}");
    let sig = B64URL.encode(mac(key.bytes(), &signed).finalize().into_bytes());
    format!("{signed}.{sig}")
}

/// Verifies signature and time; the caller checks origin, bot and conversation against the
/// request.
pub fn verify(keys: &TokenKeys, token: &str, now: Timestamp) -> Result<WidgetClaims, TokenError> {
    if token.len() > 2048 {
        return Err(TokenError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(version), Some(kid), Some(payload), Some(sig), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(TokenError::Malformed);
    };
    if version != VERSION {
        return Err(TokenError::Malformed);
    }
    let key = keys.verifying(kid).ok_or(TokenError::UnknownKey)?;
    let sig = B64URL.decode(sig).map_err(|_| TokenError::Malformed)?;
    let signed_len = version.len() + kid.len() + payload.len() + 2;
    mac(key.bytes(), &token[..signed_len])
        .verify_slice(&sig)
        .map_err(|_| TokenError::BadSignature)?;
    let claims: WidgetClaims = B64URL
        .decode(payload)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(TokenError::Malformed)?;
    let now_s = now.0.div_euclid(1000);
    if claims.exp <= now_s
        || claims.iat > now_s + SKEW_SECS
        || claims.exp - claims.iat > MAX_LIFETIME_SECS
    {
        return Err(TokenError::Expired);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = "old:b2xkLWtleS1vbGQta2V5LW9sZC1rZXktb2xkLWtleS0=";
    const NEW: &str = "new:bmV3LWtleS1uZXcta2V5LW5ldy1rZXktbmV3LWtleS0=";

    fn ring(spec: &str) -> TokenKeys {
        TokenKeys::parse(spec).unwrap()
    }

    fn claims(now: Timestamp) -> WidgetClaims {
        let iat = now.0 / 1000;
        WidgetClaims {
            tenant: TenantId::new(),
            bot: BotId::new(),
            conversation: ConversationId::new(),
            origin: "https://shop.example".into(),
            start: None,
            iat,
            exp: iat + MAX_LIFETIME_SECS,
        }
    }

    fn swap_part(token: &str, index: usize, with: &str) -> String {
        let mut p: Vec<&str> = token.split('.').collect();
        p[index] = with;
        p.join(".")
    }

    #[test]
    fn round_trip() {
        let now = Timestamp::now();
        let c = claims(now);
        let t = issue(&ring(OLD), &c);
        assert!(t.starts_with("pw1.old."));
        assert_eq!(verify(&ring(OLD), &t, now).unwrap(), c);
    }

    #[test]
    fn tampered_payload_is_rejected() {
        let now = Timestamp::now();
        let t = issue(&ring(OLD), &claims(now));
        let mut other = claims(now);
        other.origin = "https://evil.example".into();
        let forged = B64URL.encode(serde_json::to_vec(&other).unwrap());
        assert_eq!(
            verify(&ring(OLD), &swap_part(&t, 2, &forged), now),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn tampered_signature_is_rejected() {
        let now = Timestamp::now();
        let t = issue(&ring(OLD), &claims(now));
        let sig = t.rsplit('.').next().unwrap();
        let mut bytes = B64URL.decode(sig).unwrap();
        bytes[0] ^= 0x01;
        assert_eq!(
            verify(&ring(OLD), &swap_part(&t, 3, &B64URL.encode(bytes)), now),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn unknown_key_id_is_rejected() {
        let now = Timestamp::now();
        let t = issue(&ring(OLD), &claims(now));
        assert_eq!(verify(&ring(NEW), &t, now), Err(TokenError::UnknownKey));
        // Relabelling the key id breaks the MAC, which covers it.
        let relabelled = swap_part(&t, 1, "new");
        assert_eq!(
            verify(&ring(&format!("{NEW},{OLD}")), &relabelled, now),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn expired_and_overlong_tokens_are_rejected() {
        let now = Timestamp::now();
        let t = issue(&ring(OLD), &claims(now));
        assert_eq!(
            verify(&ring(OLD), &t, now.plus_secs(MAX_LIFETIME_SECS)),
            Err(TokenError::Expired)
        );
        let mut long = claims(now);
        long.exp += 1;
        let t = issue(&ring(OLD), &long);
        assert_eq!(verify(&ring(OLD), &t, now), Err(TokenError::Expired));
    }

    #[test]
    fn rotated_out_signing_key_verifies_until_removed() {
        let now = Timestamp::now();
        let c = claims(now);
        let issued_before_rotation = issue(&ring(OLD), &c);
        let rotated = ring(&format!("{NEW},{OLD}"));
        assert_eq!(verify(&rotated, &issued_before_rotation, now).unwrap(), c);
        assert!(issue(&rotated, &c).starts_with("pw1.new."));
        assert_eq!(
            verify(&ring(NEW), &issued_before_rotation, now),
            Err(TokenError::UnknownKey)
        );
    }

    #[test]
    fn malformed_tokens_are_rejected() {
        let now = Timestamp::now();
        for t in [
            "",
            "pw1",
            "pw1.old.x",
            "pw2.old.e30.AA",
            "pw1.old.e30.AA.extra",
            "pw1.old.!!!.AA",
        ] {
            assert!(verify(&ring(OLD), t, now).is_err(), "{t}");
        }
    }
}
