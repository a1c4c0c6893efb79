//! Cross-site request forgery defence for every state-changing request of the site:
//!
//! 1. A synchronizer token in a hidden `csrf` field: HMAC-SHA256 over the SHA-256 of the
//!    session cookie (or, before login, of an anonymous pre-session cookie) under a key
//!    derived from the master key. Another site can neither read it nor compute it.
//! 2. An origin check: a request whose `Origin` is not this server's public origin, or whose
//!    `Sec-Fetch-Site` says it came from another site, is refused even with a valid token.
//!    (Pages set `<meta name="referrer" content="same-origin">` so browsers send `Origin` on
//!    our own form posts despite the global `Referrer-Policy: no-referrer`.)
//!
//! Plus SameSite=Lax cookies. A failure is a 403 page and never changes anything.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::config::Config;
use crate::crypto;
use crate::keyring::KeyRing;
use crate::state::AppState;

use super::cookies;
use super::page::PageError;

fn csrf_key(keys: &KeyRing) -> [u8; 32] {
    let (_, master) = keys.master.current();
    let mut mac = Hmac::<Sha256>::new_from_slice(master.bytes()).expect("any key length");
    mac.update(b"parlo:site:csrf-key:v1");
    mac.finalize().into_bytes().into()
}

/// The token for forms of the session (or pre-session) whose cookie value is `binding`.
pub fn token(keys: &KeyRing, binding: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(&csrf_key(keys)).expect("any key length");
    mac.update(b"parlo:csrf:v1:");
    mac.update(&crypto::sha256(binding.as_bytes()));
    B64URL.encode(mac.finalize().into_bytes())
}

/// Whether the request's browser-supplied provenance allows a state change.
pub fn same_origin(config: &Config, headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return false;
    }
    match headers.get(header::ORIGIN) {
        // Browsers always send Origin on a POST; a client without one is not a browser a
        // page could have driven, and still needs the token.
        None => true,
        Some(origin) => {
            origin.to_str().ok() == Some(&config.public_url.origin().ascii_serialization())
        }
    }
}

#[derive(Deserialize)]
struct TokenField {
    #[serde(default)]
    csrf: String,
}

/// The form of a POST whose only field is the CSRF token (logout, delete buttons).
#[derive(Deserialize)]
pub struct NoFields {}

/// A URL-encoded form that passed both CSRF checks. Use it as the last extractor of every
/// POST handler of the site.
pub struct CsrfForm<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for CsrfForm<T> {
    type Rejection = PageError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, PageError> {
        let config = &state.config;
        if !same_origin(config, req.headers()) {
            tracing::warn!("site form refused: cross-origin request");
            return Err(PageError::Csrf);
        }
        let binding = cookies::csrf_binding(config, req.headers());
        let body = Bytes::from_request(req, state)
            .await
            .map_err(|_| PageError::BadRequest("The form could not be read.".into()))?;
        let field: TokenField = serde_urlencoded::from_bytes(&body).map_err(|_| PageError::Csrf)?;
        let valid = binding.is_some_and(|b| {
            let expected = token(&state.keys, &b);
            bool::from(expected.as_bytes().ct_eq(field.csrf.as_bytes()))
        });
        if !valid {
            tracing::warn!("site form refused: missing or invalid CSRF token");
            return Err(PageError::Csrf);
        }
        serde_urlencoded::from_bytes(&body)
            .map(CsrfForm)
            .map_err(|e| PageError::BadRequest(format!("The form is incomplete: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    #[test]
    fn origin_check() {
        let config = Config::load(
            &Settings {
                public_url: Some("https://chat.example.com".parse().unwrap()),
                ..Settings::default()
            },
            None,
            &|_| None,
        )
        .unwrap();
        let mut h = HeaderMap::new();
        assert!(same_origin(&config, &h));
        h.insert(header::ORIGIN, "https://chat.example.com".parse().unwrap());
        assert!(same_origin(&config, &h));
        h.insert(header::ORIGIN, "https://evil.example".parse().unwrap());
        assert!(!same_origin(&config, &h));
        h.insert(header::ORIGIN, "null".parse().unwrap());
        assert!(!same_origin(&config, &h));
        let mut h = HeaderMap::new();
        h.insert("sec-fetch-site", "cross-site".parse().unwrap());
        assert!(!same_origin(&config, &h));
    }
}
