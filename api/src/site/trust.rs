//! Public trust pages, generated from the running configuration so they cannot drift from
//! what the server does: the security overview at `/trust` with the live self-checks of
//! `crate::trust` (also as JSON at `/trust/status.json`), the sub-processor list (also as
//! JSON at `/trust/subprocessors.json`) and `/.well-known/security.txt` (RFC 9116). Also the
//! site's one stylesheet and one script.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router, routing::get};
use parlo_site::{CheckRow, Chrome, SubProcessorRow, TrustPage};
use serde_json::json;

use crate::config::{Config, SubProcessor};
use crate::model::{CheckResult, CheckStatus, MAX_RETENTION_DAYS, Timestamp};
use crate::state::AppState;
use crate::trust;

use super::page::{PageError, PageResult, render};
use super::session::CurrentUser;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/trust", get(trust_page))
        .route("/trust/subprocessors.json", get(subprocessors_json))
        .route("/trust/status.json", get(status_json))
        .route("/.well-known/security.txt", get(security_txt))
        .route("/assets/site.css", get(css))
        .route("/assets/site.js", get(js))
}

pub(super) fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            ),
        ],
        body,
    )
        .into_response()
}

async fn css() -> Response {
    asset("text/css; charset=utf-8", parlo_site::SITE_CSS)
}

async fn js() -> Response {
    asset("text/javascript; charset=utf-8", parlo_site::SITE_JS)
}

/// Where customer data is stored, without addresses or credentials.
pub fn data_location(config: &Config) -> String {
    if config.database_url.is_postgres() {
        "PostgreSQL, on a database server the operator runs (address not published). Every \
         workspace's rows are separated by row-level security in the database."
            .to_owned()
    } else {
        "SQLite, a single database file on this server's own disk.".to_owned()
    }
}

pub fn upstream(config: &Config) -> String {
    let host = config.mistral_base_url.host_str().unwrap_or("(unknown)");
    if host == "api.mistral.ai" {
        format!(
            "Mistral AI's API at {host}, hosted in the European Union. Messages are sent there \
             with the customer's own API key and nowhere else."
        )
    } else {
        format!(
            "The Mistral-compatible API at {host}, configured by the operator. Messages are sent \
             there with the customer's own API key and nowhere else."
        )
    }
}

/// The configured model provider as a sub-processor, listed whether or not the operator's
/// list names it: its name and its Markdown list line.
fn model_provider(config: &Config) -> (&'static str, String) {
    let host = config.mistral_base_url.host_str().unwrap_or("(unknown)");
    if host == "api.mistral.ai" {
        (
            "Mistral AI",
            format!(
                "- Mistral AI (language model inference with the customer's own API key), \
                 European Union, EU endpoint {host}"
            ),
        )
    } else {
        (
            "",
            format!(
                "- The Mistral-compatible API at {host} (language model inference with the \
                 customer's own API key), run for this service"
            ),
        )
    }
}

fn tenant_isolation(config: &Config) -> &'static str {
    if config.database_url.is_postgres() {
        "On PostgreSQL, row-level security is enabled and forced on every workspace table, and the \
         server connects as a role that cannot bypass it."
    } else {
        "Every query is scoped to one workspace and rows are linked by workspace-bound keys."
    }
}

fn transport(config: &Config) -> &'static str {
    if config.public_is_https() {
        "All traffic uses HTTPS with HSTS."
    } else {
        "This instance is served over plain HTTP (a development set-up)."
    }
}

/// The statements of the trust page, each derived from the configuration.
pub fn facts(config: &Config) -> Vec<(String, String)> {
    let versions = config.key_source.describe_master();
    let key_origin = if versions.contains("PARLO_MASTER_KEYS") {
        "the server's environment"
    } else {
        "a key file outside the database"
    };
    vec![
        ("Where data is stored".into(), data_location(config)),
        ("Separation of customers".into(), tenant_isolation(config).to_owned()),
        (
            "Retention of chat logs".into(),
            format!(
                "Set by each customer per assistant, at most {MAX_RETENTION_DAYS} days (default 90). \
                 Older conversations are deleted automatically; customers can wipe them at any time, \
                 and deleting a workspace deletes all of its data."
            ),
        ),
        ("Language model provider".into(), upstream(config)),
        (
            "Customers' API keys".into(),
            format!(
                "Encrypted with AES-256-GCM under a master key from {key_origin}, never from the \
                 database; each ciphertext is bound to its workspace. Only the last four characters \
                 are ever shown again."
            ),
        ),
        (
            "Accounts".into(),
            "Passwords are hashed with Argon2id (19 MiB, 2 passes). Two-factor authentication with \
             an authenticator app is available. Login attempts are rate-limited; sessions are \
             HttpOnly, SameSite cookies of which only a hash is stored."
                .into(),
        ),
        ("Transport".into(), transport(config).to_owned()),
        (
            "Widget code".into(),
            "Served only from this server, never from third parties. Published versions are \
             immutable and can be pinned with Subresource Integrity (SHA-384)."
                .into(),
        ),
        (
            "Logs".into(),
            "Server logs never contain passwords, API keys, tokens, cookies or authorisation headers."
                .into(),
        ),
        ("Backups".into(), "Operator-configured.".into()),
        (
            "Environment".into(),
            if config.is_production() {
                "Production.".into()
            } else {
                "Development (not for production data).".into()
            },
        ),
    ]
}

fn last_change(list: &[SubProcessor]) -> Option<time::Date> {
    list.iter()
        .flat_map(|s| std::iter::once(s.added).chain(s.removed))
        .max()
}

/// The stored results in the page's order; a check the store has no result for yet is left
/// out. A result older than three intervals is marked stale (no process is checking).
async fn stored_checks(state: &AppState) -> Result<Vec<(CheckResult, bool)>, PageError> {
    let stored = state.store.checks().await?;
    let stale_after = 3 * state.config.trust_check_interval.as_millis() as i64;
    let now = Timestamp::now();
    Ok(trust::CHECKS
        .iter()
        .filter_map(|(name, _)| stored.iter().find(|c| c.name == *name))
        .map(|c| (c.clone(), now.0 - c.checked_at.0 > stale_after))
        .collect())
}

fn interval_words(secs: u64) -> String {
    match secs {
        1 => "every second".to_owned(),
        s if s % 3600 == 0 => format!("every {} hour(s)", s / 3600),
        s if s % 60 == 0 => format!("every {} minute(s)", s / 60),
        s => format!("every {s} seconds"),
    }
}

async fn status_json(State(state): State<AppState>) -> PageResult<Response> {
    let checks = stored_checks(&state).await?;
    let overall = checks
        .iter()
        .map(|(c, stale)| {
            if *stale {
                c.status.max(CheckStatus::Warn)
            } else {
                c.status
            }
        })
        .max();
    let body = json!({
        "status": overall.map(CheckStatus::as_str),
        "interval_secs": state.config.trust_check_interval.as_secs(),
        "checks": checks.iter().map(|(c, stale)| json!({
            "name": c.name,
            "title": trust::title(&c.name),
            "status": c.status,
            "value": c.value,
            "checked_at": c.checked_at.to_rfc3339(),
            "stale": stale,
        })).collect::<Vec<_>>(),
    });
    let mut resp = Json(body).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

async fn trust_page(State(state): State<AppState>, user: Option<CurrentUser>) -> PageResult {
    let config = &state.config;
    let checks = stored_checks(&state)
        .await?
        .into_iter()
        .map(|(c, stale)| CheckRow {
            title: trust::title(&c.name).to_owned(),
            status: c.status.as_str().to_owned(),
            value: if stale {
                format!(
                    "{} (stale: not re-checked for over three intervals)",
                    c.value
                )
            } else {
                c.value
            },
            checked_at: super::page::when(c.checked_at),
        })
        .collect();
    let chrome = match &user {
        Some(u) => Chrome {
            title: "Trust and security".into(),
            csrf: u.csrf.clone(),
            user: Some(u.user.email.clone()),
            section: "trust",
            ..Chrome::default()
        },
        None => Chrome::new("Trust and security"),
    };
    Ok(render(&TrustPage {
        chrome,
        generated: super::page::when(Timestamp::now()),
        checks,
        check_interval: interval_words(config.trust_check_interval.as_secs()),
        facts: facts(config),
        subprocessors: config
            .subprocessors
            .iter()
            .map(|s| SubProcessorRow {
                name: s.name.clone(),
                purpose: s.purpose.clone(),
                location: s.location.clone(),
                added: s.added.to_string(),
                removed: s.removed.map(|d| d.to_string()).unwrap_or_default(),
            })
            .collect(),
        last_change: last_change(&config.subprocessors).map(|d| d.to_string()),
        contact: config.security_contact.clone(),
    }))
}

async fn subprocessors_json(State(state): State<AppState>) -> Response {
    let list = &state.config.subprocessors;
    Json(json!({
        "last_change": last_change(list).map(|d| d.to_string()),
        "subprocessors": list,
    }))
    .into_response()
}

async fn security_txt(State(state): State<AppState>) -> PageResult<Response> {
    let config = &state.config;
    let Some(contact) = &config.security_contact else {
        return Err(PageError::NotFound);
    };
    let origin = config.public_url.origin().ascii_serialization();
    let expires = Timestamp::now().plus_secs(365 * 86_400).to_rfc3339();
    let expires = expires
        .split('.')
        .next()
        .unwrap_or(&expires)
        .trim_end_matches('Z')
        .to_owned()
        + "Z";
    let body = format!(
        "Contact: {contact}\nExpires: {expires}\nCanonical: {origin}/.well-known/security.txt\n\
         Policy: {origin}/trust\nPreferred-Languages: en\n"
    );
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        body,
    )
        .into_response())
}

/// Values for the `{{placeholders}}` of the legal texts.
pub fn legal_values(config: &Config) -> Vec<(&'static str, String)> {
    let origin = config.public_url.origin().ascii_serialization();
    let (provider, provider_line) = model_provider(config);
    let subprocessors = std::iter::once(provider_line)
        .chain(
            config
                .subprocessors
                .iter()
                .filter(|s| s.removed.is_none() && s.name != provider)
                .map(|s| {
                    format!(
                        "- {} ({}), {}, since {}",
                        s.name, s.purpose, s.location, s.added
                    )
                }),
        )
        .collect::<Vec<_>>()
        .join("\n");
    vec![
        ("public_url", origin),
        ("generated", super::page::when(Timestamp::now())),
        ("tenant_isolation", tenant_isolation(config).to_owned()),
        ("transport", transport(config).to_owned()),
        ("backups", "operator-configured.".to_owned()),
        ("retention_max_days", MAX_RETENTION_DAYS.to_string()),
        ("subprocessors", subprocessors),
        (
            "security_contact",
            config
                .security_contact
                .clone()
                .unwrap_or_else(|| "The operator has not published a security contact.".into()),
        ),
    ]
}
