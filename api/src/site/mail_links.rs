//! The pages that links in e-mails open, and what leads to those mails: confirming the
//! address of a new account (`/verify/{token}`), choosing a new password
//! (`/password/forgot`, `/password/reset/{token}`) and confirming a new address
//! (`/account/email/confirm/{token}`). A link's token is 256 random bits, stored only as its
//! SHA-256, valid once and briefly; the request log names the route, never the token. Each
//! link opens a page that asks for one click (a POST with CSRF), so a mail scanner fetching
//! the link changes nothing.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use axum::{Router, routing::get, routing::post};
use parlo_site::{CheckInboxPage, ForgotPasswordPage, MailLinkPage, notice_text};
use serde::Deserialize;
use serde_json::json;

use crate::crypto;
use crate::mail::{Mail, SecurityEvent};
use crate::model::{Email, TokenPurpose};
use crate::state::AppState;
use crate::storage::StoreError;

use super::auth::{ClientIp, InviteQuery, anon_chrome, with_cookie};
use super::csrf::CsrfForm;
use super::invite::clean_invite;
use super::limits;
use super::links::issue_link;
use super::page::{PageError, PageResult, render, render_status, see_other};
use super::password;
use super::session;
use super::workspace_audit::audit_user;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/signup/sent", get(signup_sent))
        .route("/verify/{token}", get(verify_page))
        .route("/verify", post(verify))
        .route("/password/forgot", get(forgot_page).post(forgot))
        .route("/password/reset/{token}", get(reset_page))
        .route("/password/reset", post(reset))
        .route("/account/email/confirm/{token}", get(email_change_page))
        .route("/account/email/confirm", post(email_change_confirm))
}

/// The page a link opens whose token is not (or no longer) valid.
fn invalid_link(state: &AppState, headers: &HeaderMap, what: &str) -> Response {
    let (chrome, cookie) = anon_chrome(state, headers, "Link expired", "");
    with_cookie(
        render_status(
            StatusCode::BAD_REQUEST,
            &MailLinkPage {
                chrome,
                heading: "This link does not work".into(),
                text: format!("The link is invalid, was used already or has expired. {what}"),
                action: String::new(),
                token: String::new(),
                button: String::new(),
                new_password: false,
                min_password: password::MIN_PASSWORD_CHARS,
            },
        ),
        cookie,
    )
}

#[allow(clippy::too_many_arguments)]
fn link_page(
    state: &AppState,
    headers: &HeaderMap,
    title: &str,
    text: &str,
    action: String,
    token: &str,
    button: &str,
    new_password: bool,
    error: Option<String>,
) -> Response {
    let (mut chrome, cookie) = anon_chrome(state, headers, title, "");
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    chrome.error = error;
    let mut resp = render_status(
        status,
        &MailLinkPage {
            chrome,
            heading: title.to_owned(),
            text: text.to_owned(),
            action,
            token: token.to_owned(),
            button: button.to_owned(),
            new_password,
            min_password: password::MIN_PASSWORD_CHARS,
        },
    );
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    with_cookie(resp, cookie)
}

async fn signup_sent(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let (chrome, cookie) = anon_chrome(&state, &headers, "Check your inbox", "signup");
    with_cookie(
        render(&CheckInboxPage {
            chrome,
            text: notice_text("verify_sent").unwrap_or_default().to_owned(),
        }),
        cookie,
    )
}

// -- confirming the address of a new account --

async fn verify_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(token): Path<String>,
    Query(q): Query<InviteQuery>,
) -> PageResult {
    let hash = crypto::sha256(token.as_bytes());
    if state
        .store
        .peek_account_token(&hash, TokenPurpose::Verify)
        .await?
        .is_none()
    {
        return Ok(invalid_link(
            &state,
            &headers,
            "Log in to get a new confirmation link.",
        ));
    }
    let invite = clean_invite(&q.invite);
    let action = if invite.is_empty() {
        "/verify".to_owned()
    } else {
        format!("/verify?invite={invite}")
    };
    Ok(link_page(
        &state,
        &headers,
        "Confirm your e-mail address",
        "Confirm that this address is yours to finish setting up your account.",
        action,
        &token,
        "Confirm my address",
        false,
        None,
    ))
}

#[derive(Deserialize)]
struct TokenForm {
    token: String,
}

async fn verify(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Query(q): Query<InviteQuery>,
    CsrfForm(form): CsrfForm<TokenForm>,
) -> PageResult {
    limits::hit(&state, &format!("link:ip:{ip}"), limits::LOGIN_PER_IP).await?;
    let hash = crypto::sha256(form.token.as_bytes());
    let Some(used) = state
        .store
        .use_account_token(&hash, TokenPurpose::Verify)
        .await?
    else {
        return Ok(invalid_link(
            &state,
            &headers,
            "Log in to get a new confirmation link.",
        ));
    };
    state.store.mark_email_verified(used.user_id).await?;
    let user = state
        .store
        .user(used.user_id)
        .await?
        .ok_or(PageError::NotFound)?;
    audit_user(&state, &user, "account.email_verified", json!({})).await;
    // The link proves the mailbox; a second factor, if any, is still asked for.
    let cookie = session::start(&state, &user, false).await?;
    let invite = clean_invite(&q.invite);
    let to = if !invite.is_empty() {
        format!("/invite/{invite}")
    } else {
        match state.store.memberships_of(user.id).await?.first() {
            Some(m) => format!("/w/{}?notice=signed_up", m.tenant_id),
            None => "/app?notice=verified".to_owned(),
        }
    };
    Ok(with_cookie(see_other(&to), Some(cookie)))
}

// -- forgotten passwords --

async fn forgot_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let (chrome, cookie) = anon_chrome(&state, &headers, "Forgot your password?", "login");
    with_cookie(
        render(&ForgotPasswordPage {
            chrome,
            email: String::new(),
        }),
        cookie,
    )
}

#[derive(Deserialize)]
struct EmailForm {
    email: String,
}

/// Mails a reset link if the address has an account. The answer is the same either way,
/// and comes before the lookup is done, so neither its text nor its timing tells.
async fn forgot(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    CsrfForm(form): CsrfForm<EmailForm>,
) -> PageResult {
    limits::hit(&state, &format!("reset:ip:{ip}"), limits::SIGNUP_PER_IP).await?;
    let email = match Email::parse(&form.email) {
        Ok(e) => e,
        Err(e) => {
            let (mut chrome, _) = anon_chrome(&state, &headers, "Forgot your password?", "login");
            chrome.error = Some(e.0);
            return Ok(render_status(
                StatusCode::UNPROCESSABLE_ENTITY,
                &ForgotPasswordPage {
                    chrome,
                    email: form.email.clone(),
                },
            ));
        }
    };
    limits::hit(
        &state,
        &super::auth::account_key("reset:account", email.as_str()),
        limits::LOGIN_PER_ACCOUNT,
    )
    .await?;
    let work = state.clone();
    tokio::spawn(async move {
        if let Err(e) = send_reset(&work, &email).await {
            tracing::error!(error = %e, "could not send a password reset link");
        }
    });
    let (chrome, cookie) = anon_chrome(&state, &headers, "Check your inbox", "login");
    Ok(with_cookie(
        render(&CheckInboxPage {
            chrome,
            text: notice_text("reset_sent").unwrap_or_default().to_owned(),
        }),
        cookie,
    ))
}

async fn send_reset(state: &AppState, email: &Email) -> anyhow::Result<()> {
    let Some(user) = state.store.user_by_email(email).await? else {
        tracing::info!(
            event = "password.reset_requested",
            known = false,
            "password reset asked for"
        );
        return Ok(());
    };
    let link = issue_link(state, &user, TokenPurpose::Reset, None, "/password/reset").await?;
    state
        .mailer
        .send(&user.email, user.language, &Mail::Reset { link })
        .await?;
    audit_user(state, &user, "password.reset_requested", json!({})).await;
    Ok(())
}

async fn reset_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> PageResult {
    let hash = crypto::sha256(token.as_bytes());
    if state
        .store
        .peek_account_token(&hash, TokenPurpose::Reset)
        .await?
        .is_none()
    {
        return Ok(invalid_link(
            &state,
            &headers,
            "Ask for a new link on the \"Forgot your password?\" page.",
        ));
    }
    Ok(reset_form(&state, &headers, &token, None))
}

fn reset_form(
    state: &AppState,
    headers: &HeaderMap,
    token: &str,
    error: Option<String>,
) -> Response {
    link_page(
        state,
        headers,
        "Choose a new password",
        "Choose the new password of your account. Every session of the account is logged out; two-factor authentication, if on, is still asked for at the next login.",
        "/password/reset".to_owned(),
        token,
        "Set the new password",
        true,
        error,
    )
}

#[derive(Deserialize)]
struct ResetForm {
    token: String,
    password: String,
}

async fn reset(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    CsrfForm(form): CsrfForm<ResetForm>,
) -> PageResult {
    limits::hit(&state, &format!("link:ip:{ip}"), limits::LOGIN_PER_IP).await?;
    let hash = crypto::sha256(form.token.as_bytes());
    let not_valid = || {
        invalid_link(
            &state,
            &headers,
            "Ask for a new link on the \"Forgot your password?\" page.",
        )
    };
    // Check the new password before using the link up, so a refused password can be retried.
    let Some(peeked) = state
        .store
        .peek_account_token(&hash, TokenPurpose::Reset)
        .await?
    else {
        return Ok(not_valid());
    };
    let user = state
        .store
        .user(peeked.user_id)
        .await?
        .ok_or(PageError::NotFound)?;
    if let Err(msg) = password::check_new(&form.password, &user.email) {
        return Ok(reset_form(&state, &headers, &form.token, Some(msg.into())));
    }
    let new_hash = password::hash(form.password.clone()).await?;
    if state
        .store
        .use_account_token(&hash, TokenPurpose::Reset)
        .await?
        .is_none()
    {
        return Ok(not_valid());
    }
    state.store.set_password_hash(user.id, &new_hash).await?;
    // The link proved the mailbox.
    state.store.mark_email_verified(user.id).await?;
    let ended = state.store.delete_user_sessions(user.id).await?;
    audit_user(
        &state,
        &user,
        "password.reset",
        json!({"sessions_ended": ended}),
    )
    .await;
    state
        .mailer
        .send_or_log(
            &user.email,
            user.language,
            &Mail::Security(SecurityEvent::PasswordReset),
        )
        .await;
    let mut resp = see_other("/login?notice=password_reset");
    resp.headers_mut().append(
        header::SET_COOKIE,
        session::clear_session_cookie(&state.config),
    );
    Ok(resp)
}

// -- confirming a new address --

async fn email_change_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> PageResult {
    let hash = crypto::sha256(token.as_bytes());
    let Some(t) = state
        .store
        .peek_account_token(&hash, TokenPurpose::EmailChange)
        .await?
    else {
        return Ok(invalid_link(
            &state,
            &headers,
            "Change the address again on your account page.",
        ));
    };
    Ok(link_page(
        &state,
        &headers,
        "Confirm your new e-mail address",
        &format!(
            "Make {} the address of your account.",
            t.new_email.unwrap_or_default()
        ),
        "/account/email/confirm".to_owned(),
        &token,
        "Confirm the new address",
        false,
        None,
    ))
}

async fn email_change_confirm(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    CsrfForm(form): CsrfForm<TokenForm>,
) -> PageResult {
    limits::hit(&state, &format!("link:ip:{ip}"), limits::LOGIN_PER_IP).await?;
    let hash = crypto::sha256(form.token.as_bytes());
    let used = state
        .store
        .use_account_token(&hash, TokenPurpose::EmailChange)
        .await?;
    let Some((user_id, Some(new_email))) = used.map(|u| (u.user_id, u.new_email)) else {
        return Ok(invalid_link(
            &state,
            &headers,
            "Change the address again on your account page.",
        ));
    };
    let user = state
        .store
        .user(user_id)
        .await?
        .ok_or(PageError::NotFound)?;
    let new_email = Email::parse(&new_email).map_err(|e| PageError::BadRequest(e.0))?;
    match state.store.set_user_email(user.id, &new_email).await {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => {
            return Err(PageError::Conflict(
                "Another account uses this address now; the address was not changed.".into(),
            ));
        }
        Err(e) => return Err(e.into()),
    }
    audit_user(&state, &user, "account.email_changed", json!({})).await;
    state
        .mailer
        .send_or_log(
            &user.email,
            user.language,
            &Mail::EmailChanged {
                new_email: new_email.as_str().to_owned(),
            },
        )
        .await;
    Ok(see_other("/account?notice=email_changed"))
}
