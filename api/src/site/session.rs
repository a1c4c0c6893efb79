//! Login sessions. The cookie holds 256 random bits; the database holds only their SHA-256,
//! so a leaked database does not log anyone in (its attributes are in `cookies.rs`).
//! Sessions last 12 hours; logging out deletes the row, so a copied cookie stops working at
//! once.
//!
//! A user with TOTP gets a session that is not yet `mfa_verified` after the password step;
//! such a session opens only `/login/mfa`.

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};

use crate::config::Config;
use crate::crypto;
use crate::http::client_ip;
use crate::model::{LoginSession, NewLoginSession, Timestamp, User};
use crate::state::AppState;

use super::cookies;
use super::csrf;
use super::page::PageError;

pub const SESSION_SECS: i64 = 12 * 3600;
/// The anonymous cookie that CSRF tokens of the login and sign-up forms are bound to.
const PRE_SESSION_SECS: i64 = 3600;

pub fn set_session_cookie(config: &Config, value: &str) -> HeaderValue {
    cookies::cookie(
        config,
        cookies::session_cookie_name(config),
        value,
        SESSION_SECS,
    )
}

pub fn clear_session_cookie(config: &Config) -> HeaderValue {
    cookies::cookie(config, cookies::session_cookie_name(config), "", 0)
}

/// For pages with forms shown to visitors without a session: the CSRF token, and the
/// pre-session cookie to set if the visitor has none yet.
pub fn anonymous_csrf(state: &AppState, headers: &HeaderMap) -> (String, Option<HeaderValue>) {
    match cookies::csrf_binding(&state.config, headers) {
        Some(binding) => (csrf::token(&state.keys, &binding), None),
        None => {
            let value = crypto::random_token("");
            let set = cookies::cookie(
                &state.config,
                cookies::pre_session_cookie_name(&state.config),
                &value,
                PRE_SESSION_SECS,
            );
            (csrf::token(&state.keys, &value), Some(set))
        }
    }
}

/// Starts a session for `user` and returns the cookie to set. The cookie value is new on
/// every login (no fixation: a pre-login value is never promoted).
pub async fn start(
    state: &AppState,
    user: &User,
    mfa_verified: bool,
) -> Result<HeaderValue, PageError> {
    let value = crypto::random_token("");
    state
        .store
        .create_login_session(&NewLoginSession {
            user_id: user.id,
            token_hash: crypto::sha256(value.as_bytes()),
            mfa_verified,
            expires_at: Timestamp::now().plus_secs(SESSION_SECS),
        })
        .await?;
    Ok(set_session_cookie(&state.config, &value))
}

/// The client's address for rate limits: the socket peer, or behind one of the operator's
/// trusted proxies the address it forwarded (the same rule as the widget API).
pub fn client_ip(parts: &Parts, state: &AppState) -> String {
    client_ip::of_request(parts, &state.config.trusted_proxies)
        .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string())
}

/// A valid session of some user, whatever its MFA state.
#[derive(Clone)]
pub struct AnySession {
    pub user: User,
    pub session: LoginSession,
    /// The raw cookie value (to bind CSRF tokens and to delete the session).
    pub cookie: String,
    /// The CSRF token for forms on pages of this session.
    pub csrf: String,
}

impl AnySession {
    pub fn needs_mfa(&self) -> bool {
        self.user.totp.is_some() && !self.session.mfa_verified
    }
}

async fn lookup(parts: &mut Parts, state: &AppState) -> Result<Option<AnySession>, PageError> {
    if let Some(found) = parts.extensions.get::<Option<AnySession>>() {
        return Ok(found.clone());
    }
    let found =
        match cookies::read_cookie(&parts.headers, cookies::session_cookie_name(&state.config)) {
            None => None,
            Some(cookie) => {
                let hash = crypto::sha256(cookie.as_bytes());
                match state.store.login_session(&hash).await? {
                    Some(session) if session.expires_at > Timestamp::now() => {
                        let ua = parts
                            .headers
                            .get(axum::http::header::USER_AGENT)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("");
                        let client = client_description(ua);
                        let stale = session
                            .last_seen_at
                            .is_none_or(|t| Timestamp::now().0 - t.0 > 60_000);
                        if stale || session.client != client {
                            state.store.touch_login_session(session.id, &client).await?;
                        }
                        state
                            .store
                            .user(session.user_id)
                            .await?
                            .map(|user| AnySession {
                                csrf: csrf::token(&state.keys, &cookie),
                                user,
                                session,
                                cookie,
                            })
                    }
                    _ => None,
                }
            }
        };
    parts.extensions.insert(found.clone());
    Ok(found)
}

/// A signed-in user who has passed every factor they enabled.
#[derive(Clone)]
pub struct CurrentUser(pub AnySession);

impl std::ops::Deref for CurrentUser {
    type Target = AnySession;
    fn deref(&self) -> &AnySession {
        &self.0
    }
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PageError> {
        match lookup(parts, state).await? {
            Some(s) if s.needs_mfa() => Err(PageError::Redirect("/login/mfa".into())),
            Some(s) => Ok(CurrentUser(s)),
            None => Err(PageError::Redirect("/login".into())),
        }
    }
}

impl OptionalFromRequestParts<AppState> for CurrentUser {
    type Rejection = PageError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Option<Self>, PageError> {
        Ok(lookup(parts, state)
            .await?
            .filter(|s| !s.needs_mfa())
            .map(CurrentUser))
    }
}

/// A session that has passed the password step and still owes its TOTP or recovery code.
pub struct PendingMfa(pub AnySession);

impl FromRequestParts<AppState> for PendingMfa {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PageError> {
        match lookup(parts, state).await? {
            Some(s) if s.needs_mfa() => Ok(PendingMfa(s)),
            Some(_) => Err(PageError::Redirect("/app".into())),
            None => Err(PageError::Redirect("/login".into())),
        }
    }
}

/// Any valid session, verified or not (for logging out half-way through a login).
impl OptionalFromRequestParts<AppState> for AnySession {
    type Rejection = PageError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Option<Self>, PageError> {
        lookup(parts, state).await
    }
}

/// A coarse description of a client from its User-Agent ("Firefox on Linux"): the only part
/// of it that is stored, to let users tell their sessions apart.
pub fn client_description(user_agent: &str) -> String {
    let ua = user_agent;
    let browser = if ua.contains("Edg/") {
        "Edge"
    } else if ua.contains("OPR/") {
        "Opera"
    } else if ua.contains("Firefox/") {
        "Firefox"
    } else if ua.contains("Chrome/") || ua.contains("Chromium/") {
        "Chrome"
    } else if ua.contains("Safari/") {
        "Safari"
    } else if ua.is_empty() {
        return "Unknown client".to_owned();
    } else {
        "Other client"
    };
    let os = if ua.contains("iPhone") || ua.contains("iPad") {
        "iOS"
    } else if ua.contains("Android") {
        "Android"
    } else if ua.contains("CrOS") {
        "ChromeOS"
    } else if ua.contains("Windows") {
        "Windows"
    } else if ua.contains("Mac OS X") || ua.contains("Macintosh") {
        "macOS"
    } else if ua.contains("Linux") {
        "Linux"
    } else {
        return browser.to_owned();
    };
    format!("{browser} on {os}")
}

#[cfg(test)]
mod tests {
    use super::client_description;

    #[test]
    fn clients_are_described_coarsely() {
        let chrome_linux = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
                            Chrome/120.0.0.0 Safari/537.36";
        assert_eq!(client_description(chrome_linux), "Chrome on Linux");
        let firefox_win =
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0";
        assert_eq!(client_description(firefox_win), "Firefox on Windows");
        let safari_ios = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 \
                          (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1";
        assert_eq!(client_description(safari_ios), "Safari on iOS");
        assert_eq!(client_description(""), "Unknown client");
        assert_eq!(client_description("curl/8.5.0"), "Other client");
    }
}
