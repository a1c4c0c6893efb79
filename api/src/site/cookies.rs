//! The site's cookies: their names, their attributes, and reading them back. Every cookie is
//! HttpOnly, SameSite=Lax, Path=/, and on an https public URL `Secure` with the `__Host-`
//! prefix (which also stops a sibling subdomain from planting one). Two exist: the login
//! session (`session.rs`) and the anonymous pre-session that CSRF tokens of the login and
//! sign-up forms are bound to (`csrf.rs`). Both of those modules read cookies here, so
//! neither needs the other to find a cookie.

use axum::http::{HeaderMap, HeaderValue, header};

use crate::config::Config;

pub fn session_cookie_name(config: &Config) -> &'static str {
    if config.public_is_https() {
        "__Host-parlo_session"
    } else {
        "parlo_session"
    }
}

pub fn pre_session_cookie_name(config: &Config) -> &'static str {
    if config.public_is_https() {
        "__Host-parlo_presession"
    } else {
        "parlo_presession"
    }
}

pub fn cookie(config: &Config, name: &str, value: &str, max_age: i64) -> HeaderValue {
    let secure = if config.public_is_https() {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"
    ))
    .expect("cookie values are URL-safe base64")
}

/// The value of a cookie in the request (the first one of that name).
pub fn read_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

/// The secret CSRF tokens of this request are bound to: the session cookie if there is one,
/// else the anonymous pre-session cookie.
pub fn csrf_binding(config: &Config, headers: &HeaderMap) -> Option<String> {
    read_cookie(headers, session_cookie_name(config))
        .or_else(|| read_cookie(headers, pre_session_cookie_name(config)))
}
