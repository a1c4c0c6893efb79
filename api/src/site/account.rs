//! The signed-in user's own pages: workspace list and creation, password, MFA enrolment,
//! account deletion and the legal texts for customers.

use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::{Router, routing::get, routing::post};
use parlo_site::{
    AccountPage, Chrome, LegalPage, MfaEnrolPage, RecoveryCodesPage, SessionRow, WorkspaceLink,
    WorkspacesPage, notice_text,
};
use serde::Deserialize;
use serde_json::json;

use crate::crypto::{self, Purpose};
use crate::mail::{Mail, SecurityEvent};
use crate::model::{Email, Lang, SessionId, TokenPurpose, WorkspaceName};
use crate::state::AppState;

use super::csrf::CsrfForm;
use super::limits;
use super::links::issue_link;
use super::mfa;
use super::page::{PageError, PageResult, render, render_status, see_other, when};
use super::password;
use super::session::{self, CurrentUser};
use super::trust;
use super::workspace_audit::audit_user;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/app", get(workspaces))
        .route("/workspaces", post(create_workspace))
        .route("/account", get(account))
        .route("/account/password", post(change_password))
        .route("/account/mfa", get(mfa_enrol).post(mfa_confirm))
        .route("/account/mfa/disable", post(mfa_disable))
        .route("/account/delete", post(delete_account))
        .route("/account/email", post(change_email))
        .route("/account/language", post(set_language))
        .route("/account/sessions/{id}/end", post(end_session))
        .route("/account/sessions/end-others", post(end_other_sessions))
        .route("/settings/legal/toms", get(legal_toms))
        .route("/settings/legal/dpa", get(legal_dpa))
}

#[derive(Deserialize, Default)]
pub struct NoticeQuery {
    #[serde(default)]
    pub notice: String,
}

pub fn user_chrome(user: &CurrentUser, title: &str, section: &'static str) -> Chrome {
    Chrome {
        title: title.to_owned(),
        csrf: user.csrf.clone(),
        user: Some(user.user.email.clone()),
        section,
        ..Chrome::default()
    }
}

async fn workspace_links(state: &AppState, user: &CurrentUser) -> PageResult<Vec<WorkspaceLink>> {
    let mut out = Vec::new();
    for m in state.store.memberships_of(user.user.id).await? {
        if let Some(w) = state.store.workspace(m.tenant_id).await? {
            out.push(WorkspaceLink {
                id: w.id.to_string(),
                name: w.name,
                role: m.role.as_str().to_owned(),
            });
        }
    }
    Ok(out)
}

async fn workspaces(
    State(state): State<AppState>,
    user: CurrentUser,
    Query(q): Query<NoticeQuery>,
) -> PageResult {
    let mut chrome = user_chrome(&user, "Workspaces", "workspaces");
    chrome.notice = notice_text(&q.notice).map(str::to_owned);
    Ok(render(&WorkspacesPage {
        chrome,
        workspaces: workspace_links(&state, &user).await?,
    }))
}

#[derive(Deserialize)]
struct NameForm {
    name: String,
}

async fn create_workspace(
    State(state): State<AppState>,
    user: CurrentUser,
    CsrfForm(form): CsrfForm<NameForm>,
) -> PageResult {
    let name = WorkspaceName::parse(&form.name).map_err(|e| PageError::BadRequest(e.0))?;
    let ws = state.store.create_workspace(&name, user.user.id).await?;
    Ok(see_other(&format!("/w/{}", ws.id)))
}

async fn account_page(
    state: &AppState,
    user: &CurrentUser,
    notice: Option<String>,
    error: Option<String>,
) -> PageResult {
    let mut chrome = user_chrome(user, "Account", "account");
    chrome.notice = notice;
    chrome.error = error.clone();
    let page = AccountPage {
        chrome,
        email: user.user.email.clone(),
        mfa_enabled: user.user.totp.is_some(),
        recovery_left: state.store.recovery_codes_left(user.user.id).await?,
        min_password: password::MIN_PASSWORD_CHARS,
        language: user.user.language.as_str().to_owned(),
        sessions: session_rows(state, user).await?,
    };
    Ok(if error.is_some() {
        render_status(StatusCode::UNPROCESSABLE_ENTITY, &page)
    } else {
        render(&page)
    })
}

async fn account(
    State(state): State<AppState>,
    user: CurrentUser,
    Query(q): Query<NoticeQuery>,
) -> PageResult {
    account_page(
        &state,
        &user,
        notice_text(&q.notice).map(str::to_owned),
        None,
    )
    .await
}

/// Re-checks the password before a sensitive change, under the login limits.
async fn confirm_password(
    state: &AppState,
    user: &CurrentUser,
    password_typed: &str,
) -> PageResult<bool> {
    limits::hit(
        state,
        &format!("reauth:user:{}", user.user.id),
        limits::LOGIN_PER_ACCOUNT,
    )
    .await?;
    Ok(password::verify(password_typed.to_owned(), user.user.password_hash.clone()).await)
}

#[derive(Deserialize)]
struct PasswordForm {
    current: String,
    new: String,
}

async fn change_password(
    State(state): State<AppState>,
    user: CurrentUser,
    CsrfForm(form): CsrfForm<PasswordForm>,
) -> PageResult {
    if !confirm_password(&state, &user, &form.current).await? {
        audit_user(
            &state,
            &user.user,
            "password.change_failed",
            json!({"reason": "wrong current password"}),
        )
        .await;
        return account_page(
            &state,
            &user,
            None,
            Some("The current password is wrong.".into()),
        )
        .await;
    }
    if let Err(msg) = password::check_new(&form.new, &user.user.email) {
        return account_page(&state, &user, None, Some(msg.into())).await;
    }
    let hash = password::hash(form.new).await?;
    state.store.set_password_hash(user.user.id, &hash).await?;
    // Every other session ends; this browser gets a fresh one.
    state.store.delete_user_sessions(user.user.id).await?;
    let cookie = session::start(&state, &user.user, true).await?;
    audit_user(&state, &user.user, "password.change", json!({})).await;
    notify(&state, &user, SecurityEvent::PasswordChanged).await;
    let mut resp = see_other("/account?notice=password_changed");
    resp.headers_mut().append(header::SET_COOKIE, cookie);
    Ok(resp)
}

fn enrol_page(
    state: &AppState,
    user: &CurrentUser,
    secret: &str,
    error: Option<String>,
) -> PageResult {
    let issuer = state
        .config
        .public_url
        .host_str()
        .unwrap_or("Parlo")
        .to_owned();
    let uri = mfa::otpauth_uri(&format!("Parlo ({issuer})"), &user.user.email, secret);
    let mut chrome = user_chrome(user, "Set up two-factor authentication", "account");
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    chrome.error = error;
    // The page shows the secret: no cache (browser, proxy, back button) may keep it.
    Ok(no_store(render_status(
        status,
        &MfaEnrolPage {
            chrome,
            qr_svg: mfa::qr_svg(&uri)?,
            secret: secret.to_owned(),
            sealed: mfa::seal_for_form(&state.keys.master, user.user.id, secret),
        },
    )))
}

/// Marks a response that shows a secret (TOTP secret, recovery codes) as not to be stored
/// by any cache.
pub fn no_store(mut resp: axum::response::Response) -> axum::response::Response {
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    resp
}

async fn mfa_enrol(State(state): State<AppState>, user: CurrentUser) -> PageResult {
    if user.user.totp.is_some() {
        return Ok(see_other("/account"));
    }
    enrol_page(&state, &user, &mfa::new_secret(), None)
}

#[derive(Deserialize)]
struct EnrolForm {
    sealed: String,
    code: String,
}

async fn mfa_confirm(
    State(state): State<AppState>,
    user: CurrentUser,
    CsrfForm(form): CsrfForm<EnrolForm>,
) -> PageResult {
    use secrecy::ExposeSecret;
    if user.user.totp.is_some() {
        return Ok(see_other("/account"));
    }
    limits::hit(
        &state,
        &format!("mfa:user:{}", user.user.id),
        limits::MFA_PER_ACCOUNT,
    )
    .await?;
    let secret = mfa::open_from_form(&state.keys.master, user.user.id, &form.sealed)
        .ok_or_else(|| PageError::BadRequest("The set-up form expired. Start again.".into()))?;
    let secret = secret.expose_secret();
    let Some(step) = mfa::verify(secret, &form.code, mfa::now_secs()) else {
        return enrol_page(
            &state,
            &user,
            secret,
            Some(
                "That code did not match. Check the time on your phone and try the next code."
                    .into(),
            ),
        );
    };
    let sealed = crypto::seal(
        &state.keys.master,
        Purpose::Totp(user.user.id),
        secret.as_bytes(),
    );
    let (codes, entries) = mfa::recovery_codes(&state.keys.master);
    // The confirming code's step counts as used: it cannot log in a second time.
    state
        .store
        .set_totp(user.user.id, Some((&sealed, step)))
        .await?;
    state
        .store
        .set_recovery_codes(user.user.id, &entries)
        .await?;
    // This session just proved the second factor; the user's other sessions must now prove it.
    state.store.mark_login_session_mfa(user.session.id).await?;
    audit_user(&state, &user.user, "mfa.enable", json!({"method": "totp"})).await;
    notify(&state, &user, SecurityEvent::MfaEnabled).await;
    Ok(no_store(render(&RecoveryCodesPage {
        chrome: user_chrome(&user, "Recovery codes", "account"),
        codes,
    })))
}

#[derive(Deserialize)]
struct PasswordOnly {
    password: String,
}

async fn mfa_disable(
    State(state): State<AppState>,
    user: CurrentUser,
    CsrfForm(form): CsrfForm<PasswordOnly>,
) -> PageResult {
    if !confirm_password(&state, &user, &form.password).await? {
        return account_page(&state, &user, None, Some("The password is wrong.".into())).await;
    }
    state.store.set_totp(user.user.id, None).await?;
    state.store.set_recovery_codes(user.user.id, &[]).await?;
    audit_user(&state, &user.user, "mfa.disable", json!({})).await;
    notify(&state, &user, SecurityEvent::MfaDisabled).await;
    Ok(see_other("/account?notice=mfa_disabled"))
}

async fn delete_account(
    State(state): State<AppState>,
    user: CurrentUser,
    CsrfForm(form): CsrfForm<PasswordOnly>,
) -> PageResult {
    if !confirm_password(&state, &user, &form.password).await? {
        return account_page(&state, &user, None, Some("The password is wrong.".into())).await;
    }
    // One erasure rule for the site and the operator CLI: sole-member workspaces go with
    // the account; being the only owner of a workspace with other members blocks it.
    // Written before the erasure: afterwards the account has no workspace to record it in.
    audit_user(&state, &user.user, "account.delete.requested", json!({})).await;
    // The names, for the closing notice: afterwards the deleted workspaces are gone.
    let names = workspace_links(&state, &user).await?;
    match crate::lifecycle::erasure::erase_account(&state.store, user.user.id).await {
        Ok(erased) => {
            let workspaces = names
                .into_iter()
                .filter(|w| {
                    erased
                        .workspaces_deleted
                        .iter()
                        .any(|t| t.to_string() == w.id)
                })
                .map(|w| w.name)
                .collect();
            state
                .mailer
                .send_or_log(
                    &user.user.email,
                    user.user.language,
                    &Mail::AccountClosed {
                        workspaces,
                        memberships: u64::try_from(erased.memberships_removed).unwrap_or(0),
                        sessions: erased.sessions_deleted,
                    },
                )
                .await;
        }
        Err(crate::lifecycle::erasure::ErasureError::SoleOwner(blocked)) => {
            audit_user(
                &state,
                &user.user,
                "account.delete.refused",
                json!({"reason": "sole_owner"}),
            )
            .await;
            let name = match blocked.first() {
                Some(t) => state
                    .store
                    .workspace(*t)
                    .await?
                    .map(|w| w.name)
                    .unwrap_or_default(),
                None => String::new(),
            };
            return account_page(
                &state,
                &user,
                None,
                Some(format!(
                    "You are the only owner of \"{name}\", which has other members. Make one of them owner first, or delete the workspace."
                )),
            )
            .await;
        }
        Err(e) => return Err(anyhow::Error::from(e).into()),
    }
    tracing::info!(event = "account.delete", "an account was deleted");
    let mut resp = see_other("/login");
    resp.headers_mut().append(
        header::SET_COOKIE,
        session::clear_session_cookie(&state.config),
    );
    Ok(resp)
}

async fn legal(
    state: &AppState,
    user: &CurrentUser,
    file: &str,
    default: &str,
    title: &str,
) -> PageResult {
    let text = match &state.config.legal_dir {
        Some(dir) => match tokio::fs::read_to_string(dir.join(file)).await {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => default.to_owned(),
            Err(e) => return Err(anyhow::anyhow!("reading the legal template {file}: {e}").into()),
        },
        None => default.to_owned(),
    };
    let filled = parlo_site::fill_placeholders(&text, &trust::legal_values(&state.config));
    Ok(render(&LegalPage {
        chrome: user_chrome(user, title, "legal"),
        body: parlo_render::render(&filled),
    }))
}

async fn legal_toms(State(state): State<AppState>, user: CurrentUser) -> PageResult {
    legal(
        &state,
        &user,
        "toms.md",
        parlo_site::DEFAULT_TOMS,
        "Technical and organisational measures",
    )
    .await
}

async fn legal_dpa(State(state): State<AppState>, user: CurrentUser) -> PageResult {
    legal(
        &state,
        &user,
        "dpa.md",
        parlo_site::DEFAULT_DPA,
        "Data processing agreement",
    )
    .await
}

// -- e-mail address, mail language, sessions and security notices (issue 13) --

/// Tells the user by mail of a change to their account's security.
async fn notify(state: &AppState, user: &CurrentUser, event: SecurityEvent) {
    state
        .mailer
        .send_or_log(&user.user.email, user.user.language, &Mail::Security(event))
        .await;
}

async fn session_rows(state: &AppState, user: &CurrentUser) -> PageResult<Vec<SessionRow>> {
    let mut rows: Vec<SessionRow> = state
        .store
        .user_sessions(user.user.id)
        .await?
        .into_iter()
        .map(|s| SessionRow {
            id: s.id.to_string(),
            created: when(s.created_at),
            last_seen: s.last_seen_at.map_or_else(|| "-".to_owned(), when),
            client: if s.client.is_empty() {
                "Unknown client".to_owned()
            } else {
                s.client
            },
            current: s.id == user.session.id,
        })
        .collect();
    rows.sort_by_key(|r| !r.current);
    Ok(rows)
}

#[derive(Deserialize)]
struct EmailForm {
    email: String,
    password: String,
}

/// Mails a confirmation link to the new address; the address changes when it is opened
/// (`mail_links.rs`), and the old address is told then.
async fn change_email(
    State(state): State<AppState>,
    user: CurrentUser,
    CsrfForm(form): CsrfForm<EmailForm>,
) -> PageResult {
    if !confirm_password(&state, &user, &form.password).await? {
        return account_page(&state, &user, None, Some("The password is wrong.".into())).await;
    }
    let email = match Email::parse(&form.email) {
        Ok(e) => e,
        Err(e) => return account_page(&state, &user, None, Some(e.0)).await,
    };
    if email.as_str() == user.user.email {
        return account_page(
            &state,
            &user,
            None,
            Some("That is your current address.".into()),
        )
        .await;
    }
    let link = issue_link(
        &state,
        &user.user,
        TokenPurpose::EmailChange,
        Some(&email),
        "/account/email/confirm",
    )
    .await?;
    let mail = Mail::EmailChangeConfirm {
        link,
        new_email: email.as_str().to_owned(),
    };
    if let Err(e) = state
        .mailer
        .send(email.as_str(), user.user.language, &mail)
        .await
    {
        return match e {
            crate::mail::MailError::BadAddress(_) => {
                account_page(
                    &state,
                    &user,
                    None,
                    Some("That address cannot receive mail.".into()),
                )
                .await
            }
            other => Err(PageError::Internal(other.into())),
        };
    }
    audit_user(
        &state,
        &user.user,
        "account.email_change_requested",
        json!({}),
    )
    .await;
    Ok(see_other("/account?notice=email_change_sent"))
}

#[derive(Deserialize)]
struct LanguageForm {
    language: String,
}

async fn set_language(
    State(state): State<AppState>,
    user: CurrentUser,
    CsrfForm(form): CsrfForm<LanguageForm>,
) -> PageResult {
    state
        .store
        .set_user_language(user.user.id, Lang::parse(&form.language))
        .await?;
    Ok(see_other("/account?notice=language_saved"))
}

async fn end_session(
    State(state): State<AppState>,
    user: CurrentUser,
    axum::extract::Path(id): axum::extract::Path<String>,
    CsrfForm(_): CsrfForm<super::csrf::NoFields>,
) -> PageResult {
    let id: SessionId = id.parse().map_err(|_| PageError::NotFound)?;
    if id == user.session.id {
        return Err(PageError::BadRequest(
            "To end this session, log out.".into(),
        ));
    }
    if !state.store.end_user_session(user.user.id, id).await? {
        return Err(PageError::NotFound);
    }
    audit_user(&state, &user.user, "session.end", json!({})).await;
    Ok(see_other("/account?notice=session_ended"))
}

async fn end_other_sessions(
    State(state): State<AppState>,
    user: CurrentUser,
    CsrfForm(_): CsrfForm<super::csrf::NoFields>,
) -> PageResult {
    let n = state
        .store
        .end_other_sessions(user.user.id, user.session.id)
        .await?;
    audit_user(
        &state,
        &user.user,
        "session.end_others",
        json!({"ended": n}),
    )
    .await;
    Ok(see_other("/account?notice=sessions_ended"))
}
