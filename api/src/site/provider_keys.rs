//! The workspace's Mistral API key (BYOK): the customer's provider key, set and deleted on
//! the workspace's key page. The key is sealed with the master key, bound to the workspace
//! and provider, before it reaches the store; pages only ever show its last four
//! characters. Only owners and admins may set or delete it. (The server's own key rings are
//! `crate::keyring`.)

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::{Router, routing::get, routing::post};
use parlo_site::{KeyInfo, KeysPage, notice_text};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;

use crate::crypto::{self, Purpose};
use crate::mistral::UpstreamError;
use crate::model::{Provider, ProviderKey, Timestamp};
use crate::state::AppState;

use super::account::NoticeQuery;
use super::csrf::CsrfForm;
use super::page::{PageResult, render_status, see_other, when};
use super::workspace::{Manager, Member, Ws};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/w/{t}/keys", get(page).post(save))
        .route("/w/{t}/keys/delete", post(delete))
}

async fn render_page(
    state: &AppState,
    ws: &Ws,
    notice: Option<String>,
    error: Option<String>,
) -> PageResult {
    let key = state.store.provider_key(ws.id, Provider::Mistral).await?;
    let bots = state.store.bots(ws.id).await?.len();
    let mut chrome = ws.chrome("API key", "keys");
    chrome.notice = notice;
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    chrome.error = error;
    Ok(render_status(
        status,
        &KeysPage {
            chrome,
            ws: ws.link(),
            key: key.map(|k| KeyInfo {
                last_four: k.last_four,
                updated_at: when(k.updated_at),
            }),
            can_manage: ws.can_manage(),
            bots,
        },
    ))
}

async fn page(
    State(state): State<AppState>,
    Member(ws): Member,
    Query(q): Query<NoticeQuery>,
) -> PageResult {
    render_page(&state, &ws, notice_text(&q.notice).map(str::to_owned), None).await
}

#[derive(Deserialize)]
struct KeyForm {
    api_key: SecretString,
}

/// Asks Mistral about the key before it is saved. `Ok(true)`: accepted; `Ok(false)`: could
/// not be checked (unreachable, timeout, Mistral's own trouble), saved anyway and the page
/// says so; `Err(message)`: Mistral refused the key.
async fn check_with_upstream(state: &AppState, key: &SecretString) -> Result<bool, String> {
    match state.mistral.check_key(key).await {
        Ok(()) => Ok(true),
        Err(UpstreamError::InvalidKey) => {
            Err("Mistral refused this key. Check that it is active and copied completely.".into())
        }
        Err(e) => {
            tracing::warn!(code = e.code(), "could not check a provider key upstream");
            Ok(false)
        }
    }
}

fn plausible(key: &str) -> bool {
    (8..=200).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic())
}

async fn save(
    State(state): State<AppState>,
    Manager(ws): Manager,
    CsrfForm(form): CsrfForm<KeyForm>,
) -> PageResult {
    let key = SecretString::from(form.api_key.expose_secret().trim().to_owned());
    if !plausible(key.expose_secret()) {
        return render_page(
            &state,
            &ws,
            None,
            Some("That does not look like an API key.".into()),
        )
        .await;
    }
    let notice = match check_with_upstream(&state, &key).await {
        Ok(true) => "key_saved",
        Ok(false) => "key_saved_unchecked",
        Err(message) => {
            ws.audit(
                &state,
                "provider_key.rejected",
                "mistral",
                json!({"last_four": crypto::last_four(&key)}),
            )
            .await;
            return render_page(&state, &ws, None, Some(message)).await;
        }
    };
    let sealed = crypto::seal(
        &state.keys.master,
        Purpose::ProviderKey(ws.id, Provider::Mistral),
        key.expose_secret().as_bytes(),
    );
    let last_four = crypto::last_four(&key);
    state
        .store
        .put_provider_key(
            ws.id,
            &ProviderKey {
                provider: Provider::Mistral,
                sealed,
                last_four: last_four.clone(),
                updated_at: Timestamp::now(),
            },
        )
        .await?;
    ws.audit(
        &state,
        "provider_key.set",
        "mistral",
        json!({"last_four": last_four}),
    )
    .await;
    Ok(see_other(&ws.path(&format!("/keys?notice={notice}"))))
}

#[derive(Deserialize)]
struct ConfirmLastFour {
    #[serde(default)]
    confirm: String,
}

/// Deletes the key, only when its last four characters were typed in to confirm.
async fn delete(
    State(state): State<AppState>,
    Manager(ws): Manager,
    CsrfForm(form): CsrfForm<ConfirmLastFour>,
) -> PageResult {
    let key = state.store.provider_key(ws.id, Provider::Mistral).await?;
    if let Some(k) = key
        && form.confirm.trim().trim_start_matches('…') != k.last_four
    {
        let error = "Type the key's last four characters exactly to delete it. \
                     Nothing was deleted."
            .to_owned();
        return render_page(&state, &ws, None, Some(error)).await;
    }
    if state
        .store
        .delete_provider_key(ws.id, Provider::Mistral)
        .await?
    {
        ws.audit(&state, "provider_key.delete", "mistral", json!({}))
            .await;
    }
    Ok(see_other(&ws.path("/keys?notice=key_deleted")))
}
