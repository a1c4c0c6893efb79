//! Sign-up, login (password, then TOTP or a recovery code when enabled) and logout. An
//! invitation being accepted (`invite.rs`) is carried through sign-up and login.

use axum::extract::{Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use axum::{Router, routing::get, routing::post};
use parlo_site::{Chrome, LandingPage, LoginMfaPage, LoginPage, SignupPage, notice_text};
use serde::Deserialize;
use serde_json::json;

use crate::crypto;
use crate::mail::{Mail, Mailer, SecurityEvent};
use crate::model::{Email, Lang, User, WorkspaceName};
use crate::state::AppState;
use crate::storage::StoreError;

use super::csrf::{CsrfForm, NoFields};
use super::invite::clean_invite;
use super::limits;
use super::links::{public_link, send_verification};
use super::mfa;
use super::page::{PageError, PageResult, render, render_status, see_other};
use super::password;
use super::session::{self, AnySession, CurrentUser, PendingMfa};
use super::workspace_audit::audit_user;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(landing))
        .route("/signup", get(signup_page).post(signup))
        .route("/login", get(login_page).post(login))
        .route("/login/mfa", get(mfa_page).post(mfa_submit))
        .route("/logout", post(logout))
}

/// Connection facts the login handlers need (the limiter keys on the client address).
pub struct ClientIp(pub String);

impl axum::extract::FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(session::client_ip(parts, state)))
    }
}

#[derive(Deserialize, Default)]
pub struct InviteQuery {
    #[serde(default)]
    pub invite: String,
    /// A confirmation to show (`notice_text` codes only).
    #[serde(default)]
    pub notice: String,
}

/// Where a completed login goes: back to the invitation being accepted (already checked by
/// [`clean_invite`]), else the workspace list.
fn landing_after_login(invite: &str) -> String {
    if invite.is_empty() {
        "/app".to_owned()
    } else {
        format!("/invite/{invite}")
    }
}

async fn landing(user: Option<CurrentUser>) -> Response {
    if user.is_some() {
        return see_other("/app");
    }
    render(&LandingPage {
        chrome: Chrome::new("Welcome"),
    })
}

pub(super) fn with_cookie(mut resp: Response, cookie: Option<axum::http::HeaderValue>) -> Response {
    if let Some(c) = cookie {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    resp
}

pub(super) fn anon_chrome(
    state: &AppState,
    headers: &HeaderMap,
    title: &str,
    section: &'static str,
) -> (Chrome, Option<axum::http::HeaderValue>) {
    let (csrf, cookie) = session::anonymous_csrf(state, headers);
    (
        Chrome {
            title: title.to_owned(),
            csrf,
            section,
            ..Chrome::default()
        },
        cookie,
    )
}

async fn signup_page(
    State(state): State<AppState>,
    user: Option<CurrentUser>,
    headers: HeaderMap,
    Query(q): Query<InviteQuery>,
) -> Response {
    if user.is_some() {
        return see_other("/app");
    }
    let (chrome, cookie) = anon_chrome(&state, &headers, "Sign up", "signup");
    with_cookie(
        render(&SignupPage {
            chrome,
            email: String::new(),
            workspace: String::new(),
            invite: clean_invite(&q.invite),
            min_password: password::MIN_PASSWORD_CHARS,
        }),
        cookie,
    )
}

#[derive(Deserialize)]
struct SignupForm {
    email: String,
    password: String,
    #[serde(default)]
    workspace: String,
    #[serde(default)]
    invite: String,
}

async fn signup(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    CsrfForm(form): CsrfForm<SignupForm>,
) -> PageResult {
    limits::hit(&state, &format!("signup:ip:{ip}"), limits::SIGNUP_PER_IP).await?;
    let invite = clean_invite(&form.invite);
    let again = |message: String| {
        let (mut chrome, _) = anon_chrome(&state, &headers, "Sign up", "signup");
        chrome.error = Some(message);
        render_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            &SignupPage {
                chrome,
                email: form.email.clone(),
                workspace: form.workspace.clone(),
                invite: invite.clone(),
                min_password: password::MIN_PASSWORD_CHARS,
            },
        )
    };
    let email = match Email::parse(&form.email) {
        Ok(e) if Mailer::accepts(e.as_str()) => e,
        Ok(_) => return Ok(again("This address cannot receive mail.".into())),
        Err(e) => return Ok(again(e.0)),
    };
    if let Err(msg) = password::check_new(&form.password, email.as_str()) {
        return Ok(again(msg.to_owned()));
    }
    // Joining by invitation needs no workspace of one's own.
    let workspace = if invite.is_empty() || !form.workspace.trim().is_empty() {
        match WorkspaceName::parse(&form.workspace) {
            Ok(n) => Some(n),
            Err(_) => {
                return Ok(again(
                    "Give your workspace a name of 1 to 80 characters.".into(),
                ));
            }
        }
    } else {
        None
    };
    // The answer is the same whether or not the address has an account (no enumeration):
    // the password is hashed either way, and the mailbox's owner learns which it was.
    let lang = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .map_or(Lang::En, Lang::from_accept_language);
    let hash = password::hash(form.password.clone()).await?;
    match state.store.create_user(&email, &hash).await {
        Ok(user) => {
            state.store.set_user_language(user.id, lang).await?;
            let user = User {
                language: lang,
                ..user
            };
            if let Some(name) = workspace {
                state.store.create_workspace(&name, user.id).await?;
            }
            audit_user(&state, &user, "account.signup", json!({})).await;
            send_verification(&state, &user, &invite).await?;
        }
        Err(StoreError::Conflict(_)) => {
            if let Some(existing) = state.store.user_by_email(&email).await? {
                let mail = Mail::SignupAttempt {
                    login: public_link(&state, "/login"),
                    reset: public_link(&state, "/password/forgot"),
                };
                state
                    .mailer
                    .send(&existing.email, existing.language, &mail)
                    .await
                    .map_err(|e| PageError::Internal(e.into()))?;
                audit_user(&state, &existing, "account.signup_attempt", json!({})).await;
            }
        }
        Err(e) => return Err(e.into()),
    }
    Ok(see_other("/signup/sent"))
}

async fn login_page(
    State(state): State<AppState>,
    user: Option<CurrentUser>,
    headers: HeaderMap,
    Query(q): Query<InviteQuery>,
) -> Response {
    if user.is_some() {
        return see_other("/app");
    }
    let (mut chrome, cookie) = anon_chrome(&state, &headers, "Log in", "login");
    chrome.notice = notice_text(&q.notice).map(str::to_owned);
    with_cookie(
        render(&LoginPage {
            chrome,
            email: String::new(),
            invite: clean_invite(&q.invite),
        }),
        cookie,
    )
}

#[derive(Deserialize)]
struct LoginForm {
    email: String,
    password: String,
    #[serde(default)]
    invite: String,
}

/// The per-account limiter key: a hash, so limiter storage holds no e-mail addresses.
pub(super) fn account_key(prefix: &str, email: &str) -> String {
    format!(
        "{prefix}:{}",
        hex::encode(&crypto::sha256(email.trim().to_lowercase().as_bytes())[..16])
    )
}

/// The client network an address belongs to, for the per-account login limit: IPv4 per /24,
/// IPv6 per /64 (what one subscriber or one rented server block usually holds). An address
/// that does not parse is its own network. Takes an address or the client's rate-limit bucket
/// (`1.2.3.4/32`, `2001:db8::/64`).
fn client_network(ip: &str) -> String {
    let addr = ip
        .parse::<std::net::IpAddr>()
        .ok()
        .or_else(|| ip.parse::<ipnet::IpNet>().ok().map(|n| n.addr()));
    match addr {
        Some(std::net::IpAddr::V4(v4)) => ipnet::Ipv4Net::new(v4, 24)
            .map(|n| n.trunc().to_string())
            .unwrap_or_else(|_| ip.to_owned()),
        Some(std::net::IpAddr::V6(v6)) => ipnet::Ipv6Net::new(v6, 64)
            .map(|n| n.trunc().to_string())
            .unwrap_or_else(|_| ip.to_owned()),
        None => ip.to_owned(),
    }
}

async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    CsrfForm(form): CsrfForm<LoginForm>,
) -> PageResult {
    // Per source, whatever the account; and per account from one client network, so ten
    // wrong passwords sent from elsewhere cannot lock the real user out of their own.
    limits::hit(&state, &format!("login:ip:{ip}"), limits::LOGIN_PER_IP).await?;
    limits::hit(
        &state,
        &account_key(
            &format!("login:account:{}", client_network(&ip)),
            &form.email,
        ),
        limits::LOGIN_PER_ACCOUNT,
    )
    .await?;
    let invite = clean_invite(&form.invite);
    let failed = || {
        let (mut chrome, _) = anon_chrome(&state, &headers, "Log in", "login");
        chrome.error = Some("The e-mail address or the password is wrong.".into());
        render_status(
            StatusCode::UNAUTHORIZED,
            &LoginPage {
                chrome,
                email: form.email.clone(),
                invite: invite.clone(),
            },
        )
    };
    let user = match Email::parse(&form.email) {
        Ok(email) => state.store.user_by_email(&email).await?,
        Err(_) => None,
    };
    let Some(user) = user else {
        password::verify_dummy(form.password.clone()).await;
        // No workspace to file it under: the operator's log gets it (no address, no password).
        tracing::warn!(
            event = "login.failure",
            reason = "unknown_account",
            "login failed"
        );
        return Ok(failed());
    };
    if !password::verify(form.password.clone(), user.password_hash.clone()).await {
        audit_user(
            &state,
            &user,
            "login.failure",
            json!({"reason": "password"}),
        )
        .await;
        return Ok(failed());
    }
    if !user.email_verified {
        // Only someone who knows the password learns this; a fresh link goes to the mailbox.
        send_verification(&state, &user, &invite).await?;
        let (mut chrome, _) = anon_chrome(&state, &headers, "Log in", "login");
        chrome.error = Some(
            "Confirm your e-mail address first: we sent a new confirmation link to it.".into(),
        );
        return Ok(render_status(
            StatusCode::FORBIDDEN,
            &LoginPage {
                chrome,
                email: form.email.clone(),
                invite: invite.clone(),
            },
        ));
    }
    let mfa = user.totp.is_some();
    if mfa {
        // Recovery codes stored before they were keyed are keyed now (the codes stay valid).
        let keys = &state.keys.master;
        state
            .store
            .rewrite_recovery_codes(user.id, |entry| mfa::rekey_legacy_entry(keys, entry))
            .await?;
    } else {
        audit_user(&state, &user, "login.success", json!({"mfa": false})).await;
    }
    let cookie = session::start(&state, &user, false).await?;
    let to = match (mfa, invite.is_empty()) {
        (true, false) => format!("/login/mfa?invite={invite}"),
        (true, true) => "/login/mfa".to_owned(),
        (false, _) => landing_after_login(&invite),
    };
    Ok(with_cookie(see_other(&to), Some(cookie)))
}

async fn mfa_page(PendingMfa(s): PendingMfa, Query(q): Query<InviteQuery>) -> Response {
    render(&LoginMfaPage {
        chrome: Chrome {
            title: "Two-factor authentication".into(),
            csrf: s.csrf.clone(),
            ..Chrome::default()
        },
        invite: clean_invite(&q.invite),
    })
}

#[derive(Deserialize)]
struct CodeForm {
    code: String,
    /// The invitation the user was accepting when they logged in, if any.
    #[serde(default)]
    invite: String,
}

/// Checks a TOTP code (each time step accepted once) or uses up a recovery code.
pub async fn check_second_factor(
    state: &AppState,
    user: &User,
    code: &str,
) -> PageResult<Option<&'static str>> {
    if mfa::looks_like_recovery(code) {
        let keys = &state.keys.master;
        let ok = state
            .store
            .consume_recovery_code(user.id, |entry| {
                mfa::recovery_code_matches(keys, entry, code)
            })
            .await?;
        if ok {
            let left = state.store.recovery_codes_left(user.id).await?;
            state
                .mailer
                .send_or_log(
                    &user.email,
                    user.language,
                    &Mail::Security(SecurityEvent::RecoveryCodeUsed { left }),
                )
                .await;
        }
        return Ok(ok.then_some("recovery_code"));
    }
    let Some(sealed) = &user.totp else {
        return Ok(None);
    };
    let Some(secret) = mfa::open_stored(&state.keys.master, user.id, sealed) else {
        return Err(PageError::Internal(anyhow::anyhow!(
            "the TOTP secret of a user does not open"
        )));
    };
    match mfa::verify(&secret, code, mfa::now_secs()) {
        Some(step) if state.store.consume_totp_step(user.id, step).await? => Ok(Some("totp")),
        _ => Ok(None),
    }
}

async fn mfa_submit(
    State(state): State<AppState>,
    PendingMfa(s): PendingMfa,
    CsrfForm(form): CsrfForm<CodeForm>,
) -> PageResult {
    limits::hit(
        &state,
        &format!("mfa:user:{}", s.user.id),
        limits::MFA_PER_ACCOUNT,
    )
    .await?;
    let Some(method) = check_second_factor(&state, &s.user, &form.code).await? else {
        audit_user(
            &state,
            &s.user,
            "login.failure",
            json!({"reason": "second_factor"}),
        )
        .await;
        return Ok(render_status(
            StatusCode::UNAUTHORIZED,
            &LoginMfaPage {
                chrome: Chrome {
                    title: "Two-factor authentication".into(),
                    csrf: s.csrf.clone(),
                    error: Some(
                        "That code is not valid. Codes can be used once; wait for the next one."
                            .into(),
                    ),
                    ..Chrome::default()
                },
                invite: clean_invite(&form.invite),
            },
        ));
    };
    // A new cookie for the fully authenticated session; the half-way one is gone.
    state
        .store
        .delete_login_session(&crypto::sha256(s.cookie.as_bytes()))
        .await?;
    let cookie = session::start(&state, &s.user, true).await?;
    audit_user(&state, &s.user, "login.success", json!({"mfa": method})).await;
    let to = landing_after_login(&clean_invite(&form.invite));
    Ok(with_cookie(see_other(&to), Some(cookie)))
}

async fn logout(
    State(state): State<AppState>,
    s: Option<AnySession>,
    CsrfForm(_): CsrfForm<NoFields>,
) -> PageResult {
    if let Some(s) = s {
        state
            .store
            .delete_login_session(&crypto::sha256(s.cookie.as_bytes()))
            .await?;
    }
    let mut resp = see_other("/login");
    resp.headers_mut().append(
        header::SET_COOKIE,
        session::clear_session_cookie(&state.config),
    );
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::client_network;

    #[test]
    fn login_failures_are_counted_per_ipv4_24_and_ipv6_64() {
        assert_eq!(client_network("198.51.100.7"), "198.51.100.0/24");
        assert_eq!(client_network("198.51.100.7/32"), "198.51.100.0/24");
        assert_eq!(client_network("2001:db8:1:2::/64"), "2001:db8:1:2::/64");
        assert_eq!(
            client_network("198.51.100.200"),
            client_network("198.51.100.7")
        );
        assert_ne!(
            client_network("198.51.101.7"),
            client_network("198.51.100.7")
        );
        assert_eq!(client_network("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
        assert_eq!(
            client_network("2001:db8:1:2:ffff::1"),
            client_network("2001:db8:1:2::9")
        );
        assert_eq!(client_network("unknown"), "unknown");
    }
}
