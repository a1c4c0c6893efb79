//! Bots: list, create, edit, delete; the embed page with rolling and pinned snippets; the
//! live preview on the Parlo origin.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::{Router, routing::get, routing::post};
use parlo_publish::{Manifest, embed_snippets};
use parlo_site::{
    BotFormPage, BotFormValues, BotRow, EmbedPage, PinnedSnippet, PreviewPage, WorkspaceHomePage,
    notice_text,
};
use serde::Deserialize;
use serde_json::json;

use crate::config::Config;
use crate::dist::Dist;
use crate::model::{
    Bot, BotId, BotInput, BotSettings, DEFAULT_MODEL, DEFAULT_THEME_COLOR, Provider,
};
use crate::state::AppState;

use super::account::NoticeQuery;
use super::csrf::CsrfForm;
use super::page::{PageError, PageResult, render, render_status, see_other};
use super::workspace::{Manager, Member, Ws};

/// The models a bot can use (Mistral's current chat models).
pub const MODELS: &[&str] = &[
    "mistral-small-latest",
    "mistral-medium-latest",
    "mistral-large-latest",
    "open-mistral-nemo",
    "ministral-8b-latest",
    "ministral-3b-latest",
];

const LANGUAGES: &[(&str, &str)] = &[
    ("auto", "Follow the visitor's page and browser"),
    ("en", "English"),
    ("de", "German"),
];

/// CSP of the preview page: the site's page policy plus what the widget needs to run
/// WebAssembly. Everything still comes from this origin.
const PREVIEW_CSP: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
     style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; \
     form-action 'self'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/w/{t}", get(home))
        .route("/w/{t}/bots", post(create))
        .route("/w/{t}/bots/new", get(new_form))
        .route("/w/{t}/bots/{bot}", get(edit_form).post(update))
        .route("/w/{t}/bots/{bot}/delete", post(delete))
        .route("/w/{t}/bots/{bot}/embed", get(embed))
        .route("/w/{t}/bots/{bot}/preview", get(preview))
        .route("/w/{t}/bots/{bot}/preview/session", post(preview_session))
        .route("/assets/preview.js", get(preview_js))
}

/// The bot named in the path, if it belongs to the workspace (else 404).
pub async fn bot_in(state: &AppState, ws: &Ws, raw: &str) -> PageResult<Bot> {
    let id: BotId = raw.parse().map_err(|_| PageError::NotFound)?;
    state.store.bot(ws.id, id).await?.ok_or(PageError::NotFound)
}

/// Whether the workspace has a Mistral key its bots can answer with.
async fn workspace_has_key(state: &AppState, ws: &Ws) -> PageResult<bool> {
    Ok(state
        .store
        .provider_key(ws.id, Provider::Mistral)
        .await?
        .is_some())
}

async fn home(
    State(state): State<AppState>,
    Member(ws): Member,
    Query(q): Query<NoticeQuery>,
) -> PageResult {
    let bots = state.store.bots(ws.id).await?;
    let has_key = workspace_has_key(&state, &ws).await?;
    let mut chrome = ws.chrome(format!("Bots of {}", ws.name), "bots");
    chrome.notice = notice_text(&q.notice).map(str::to_owned);
    Ok(render(&WorkspaceHomePage {
        chrome,
        ws: ws.link(),
        bots: bots
            .into_iter()
            .map(|b| BotRow {
                id: b.id.to_string(),
                origins: b
                    .settings
                    .allowed_origins
                    .iter()
                    .map(|o| o.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                name: b.settings.name,
                model: b.settings.model,
                retention_days: b.settings.retention_days,
            })
            .collect(),
        can_manage: ws.can_manage(),
        has_key,
    }))
}

#[derive(Deserialize, Clone)]
struct BotForm {
    name: String,
    #[serde(default)]
    greeting: String,
    #[serde(default)]
    system_prompt: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    allowed_origins: String,
    #[serde(default)]
    theme_color: String,
    #[serde(default)]
    language: String,
    #[serde(default)]
    retention_days: String,
}

impl BotForm {
    fn values(&self) -> BotFormValues {
        BotFormValues {
            name: self.name.clone(),
            greeting: self.greeting.clone(),
            system_prompt: self.system_prompt.clone(),
            model: self.model.clone(),
            allowed_origins: self.allowed_origins.clone(),
            theme_color: self.theme_color.clone(),
            language: self.language.clone(),
            retention_days: self.retention_days.clone(),
        }
    }

    fn parse(&self) -> Result<BotSettings, String> {
        if !self.model.is_empty() && !MODELS.contains(&self.model.as_str()) {
            return Err("Choose a model from the list.".into());
        }
        let retention_days = match self.retention_days.trim() {
            "" => None,
            d => Some(
                d.parse::<u16>()
                    .map_err(|_| "Retention is between 1 and 365 days.".to_owned())?,
            ),
        };
        BotSettings::parse(&BotInput {
            name: self.name.clone(),
            greeting: self.greeting.clone(),
            system_prompt: self.system_prompt.clone(),
            model: self.model.clone(),
            allowed_origins: self.allowed_origins.clone(),
            theme_color: self.theme_color.clone(),
            language: self.language.clone(),
            retention_days,
        })
        .map_err(|e| e.0)
    }
}

fn values_of(s: &BotSettings) -> BotFormValues {
    BotFormValues {
        name: s.name.clone(),
        greeting: s.greeting.clone(),
        system_prompt: s.system_prompt.clone(),
        model: s.model.clone(),
        allowed_origins: s
            .allowed_origins
            .iter()
            .map(|o| o.as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        theme_color: s.theme_color.clone(),
        language: s.language.as_str().to_owned(),
        retention_days: s.retention_days.to_string(),
    }
}

fn form_page(
    ws: &Ws,
    bot: Option<&Bot>,
    form: BotFormValues,
    error: Option<String>,
    notice: Option<String>,
    deletes: (i64, i64),
) -> Response {
    let title = bot.map_or_else(|| "New bot".to_owned(), |b| b.settings.name.clone());
    let mut chrome = ws.chrome(title, "bots");
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    chrome.error = error;
    chrome.notice = notice;
    render_status(
        status,
        &BotFormPage {
            chrome,
            ws: ws.link(),
            bot_id: bot.map(|b| b.id.to_string()),
            action: bot.map_or_else(|| ws.path("/bots"), |b| ws.path(&format!("/bots/{}", b.id))),
            form,
            models: MODELS.iter().map(|m| (*m).to_owned()).collect(),
            languages: LANGUAGES
                .iter()
                .map(|(v, l)| ((*v).to_owned(), (*l).to_owned()))
                .collect(),
            can_manage: ws.can_manage(),
            deletes,
        },
    )
}

/// The bot's page, with what deleting it would delete counted.
async fn bot_page(
    state: &AppState,
    ws: &Ws,
    bot: &Bot,
    form: BotFormValues,
    error: Option<String>,
    notice: Option<String>,
) -> PageResult {
    let deletes = state.store.bot_content_counts(ws.id, bot.id).await?;
    Ok(form_page(ws, Some(bot), form, error, notice, deletes))
}

async fn new_form(Manager(ws): Manager) -> Response {
    form_page(
        &ws,
        None,
        BotFormValues {
            name: String::new(),
            greeting: "Hello! How can I help you?".into(),
            system_prompt: String::new(),
            model: DEFAULT_MODEL.into(),
            allowed_origins: String::new(),
            theme_color: DEFAULT_THEME_COLOR.into(),
            language: "auto".into(),
            retention_days: "90".into(),
        },
        None,
        None,
        (0, 0),
    )
}

async fn create(
    State(state): State<AppState>,
    Manager(ws): Manager,
    CsrfForm(form): CsrfForm<BotForm>,
) -> PageResult {
    let settings = match form.parse() {
        Ok(s) => s,
        Err(e) => return Ok(form_page(&ws, None, form.values(), Some(e), None, (0, 0))),
    };
    let bot = state.store.create_bot(ws.id, &settings).await?;
    ws.audit(
        &state,
        "bot.create",
        &bot.public_id,
        json!({"name": bot.settings.name, "model": bot.settings.model}),
    )
    .await;
    Ok(see_other(&ws.path(&format!(
        "/bots/{}/embed?notice=bot_created",
        bot.id
    ))))
}

async fn edit_form(
    State(state): State<AppState>,
    Member(ws): Member,
    Path((_, bot)): Path<(String, String)>,
    Query(q): Query<NoticeQuery>,
) -> PageResult {
    let bot = bot_in(&state, &ws, &bot).await?;
    bot_page(
        &state,
        &ws,
        &bot,
        values_of(&bot.settings),
        None,
        notice_text(&q.notice).map(str::to_owned),
    )
    .await
}

async fn update(
    State(state): State<AppState>,
    Manager(ws): Manager,
    Path((_, bot)): Path<(String, String)>,
    CsrfForm(form): CsrfForm<BotForm>,
) -> PageResult {
    let bot = bot_in(&state, &ws, &bot).await?;
    let settings = match form.parse() {
        Ok(s) => s,
        Err(e) => return bot_page(&state, &ws, &bot, form.values(), Some(e), None).await,
    };
    state.store.update_bot(ws.id, bot.id, &settings).await?;
    ws.audit(
        &state,
        "bot.update",
        &bot.public_id,
        json!({"name": settings.name, "model": settings.model}),
    )
    .await;
    Ok(see_other(
        &ws.path(&format!("/bots/{}?notice=bot_saved", bot.id)),
    ))
}

#[derive(Deserialize)]
struct ConfirmName {
    #[serde(default)]
    confirm: String,
}

/// Deletes the bot with its logs, only when its name was typed in to confirm.
async fn delete(
    State(state): State<AppState>,
    Manager(ws): Manager,
    Path((_, bot)): Path<(String, String)>,
    CsrfForm(form): CsrfForm<ConfirmName>,
) -> PageResult {
    let bot = bot_in(&state, &ws, &bot).await?;
    if form.confirm.trim() != bot.settings.name {
        let error = format!(
            "Type the bot's name, {}, exactly to delete it. Nothing was deleted.",
            bot.settings.name
        );
        return bot_page(
            &state,
            &ws,
            &bot,
            values_of(&bot.settings),
            Some(error),
            None,
        )
        .await;
    }
    state.store.delete_bot(ws.id, bot.id).await?;
    ws.audit(
        &state,
        "bot.delete",
        &bot.public_id,
        json!({"name": bot.settings.name}),
    )
    .await;
    Ok(see_other(&ws.path("?notice=bot_deleted")))
}

fn version_key(v: &str) -> Vec<u64> {
    v.split(['.', '-'])
        .map(|p| p.parse().unwrap_or(0))
        .collect()
}

fn safe_version(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 32
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}

fn safe_integrity(i: &str) -> bool {
    i.strip_prefix("sha384-").is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b))
    })
}

/// One pinned snippet per published version (newest first) from `dist/manifest.json`.
/// Versions whose entry does not look right are left out rather than shown broken.
pub async fn pinned_snippets(config: &Config, dist: &Dist, public_id: &str) -> Vec<PinnedSnippet> {
    let origin = config.public_url.origin().ascii_serialization();
    let manifest: Manifest = match dist.read("manifest.json").await {
        Some(bytes) => match serde_json::from_slice::<Manifest>(&bytes) {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(error = %e, "the widget manifest does not parse");
                return Vec::new();
            }
        },
        None => return Vec::new(),
    };
    let mut out: Vec<(Vec<u64>, PinnedSnippet)> = manifest
        .versions
        .iter()
        .filter(|(v, _)| safe_version(v))
        .filter_map(|(v, entry)| {
            let integrity = &entry.files.get("widget.js")?.integrity;
            if !safe_integrity(integrity) {
                return None;
            }
            Some((
                version_key(v),
                PinnedSnippet {
                    version: v.clone(),
                    published_at: entry.published_at.clone(),
                    latest: manifest.latest == *v,
                    snippet: embed_snippets(&origin, public_id, v, integrity).pinned,
                },
            ))
        })
        .collect();
    out.sort_by(|a, b| b.0.cmp(&a.0));
    out.into_iter().map(|(_, s)| s).collect()
}

pub fn rolling_snippet(config: &Config, public_id: &str) -> String {
    let origin = config.public_url.origin().ascii_serialization();
    parlo_publish::rolling_snippet(&origin, public_id)
}

async fn embed(
    State(state): State<AppState>,
    Member(ws): Member,
    Path((_, bot)): Path<(String, String)>,
    Query(q): Query<NoticeQuery>,
) -> PageResult {
    let bot = bot_in(&state, &ws, &bot).await?;
    let has_key = workspace_has_key(&state, &ws).await?;
    let config = &state.config;
    let origin = config.public_url.origin().ascii_serialization();
    let mut chrome = ws.chrome(format!("Embed {}", bot.settings.name), "bots");
    chrome.notice = notice_text(&q.notice).map(str::to_owned);
    Ok(render(&EmbedPage {
        chrome,
        ws: ws.link(),
        bot_id: bot.id.to_string(),
        bot_name: bot.settings.name.clone(),
        rolling: rolling_snippet(config, &bot.public_id),
        pinned: pinned_snippets(config, &state.dist, &bot.public_id).await,
        csp: format!("script-src {origin} 'wasm-unsafe-eval';\nconnect-src {origin};"),
        origins: bot
            .settings
            .allowed_origins
            .iter()
            .map(|o| o.as_str().to_owned())
            .collect(),
        has_key,
        can_manage: ws.can_manage(),
    }))
}

async fn preview(
    State(state): State<AppState>,
    Member(ws): Member,
    Path((_, bot)): Path<(String, String)>,
) -> PageResult {
    let bot = bot_in(&state, &ws, &bot).await?;
    let origin = state.config.public_url.origin().ascii_serialization();
    let mut resp = render(&PreviewPage {
        chrome: ws.chrome(format!("Preview of {}", bot.settings.name), "bots"),
        ws: ws.link(),
        bot_id: bot.id.to_string(),
        bot_name: bot.settings.name.clone(),
        public_id: bot.public_id.clone(),
        script_src: format!("{origin}/widget.js"),
        widget_session: format!("{origin}/api/widget/v1/session"),
    });
    resp.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PREVIEW_CSP),
    );
    Ok(resp)
}

/// What the preview's script sends in place of the widget's `POST /session` body.
#[derive(Deserialize)]
struct PreviewSessionForm {
    #[serde(default)]
    resume: Option<String>,
}

/// The preview's widget session: only for a signed-in member of the bot's workspace, with
/// the page's CSRF token, from this origin. The widget API itself no longer exempts
/// Parlo's own origin, so this is the only way to a token for it.
async fn preview_session(
    State(state): State<AppState>,
    Member(ws): Member,
    Path((_, bot)): Path<(String, String)>,
    CsrfForm(form): CsrfForm<PreviewSessionForm>,
) -> PageResult {
    let bot = bot_in(&state, &ws, &bot).await?;
    Ok(
        match crate::widget::preview_session(&state, ws.id, bot, form.resume.as_deref()).await {
            Ok(resp) => resp,
            Err(e) => axum::response::IntoResponse::into_response(e),
        },
    )
}

/// The preview page's script: hands the widget its session through the site.
async fn preview_js() -> Response {
    super::trust::asset("text/javascript; charset=utf-8", parlo_site::PREVIEW_JS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_numerically_and_odd_entries_are_refused() {
        assert!(version_key("0.10.0") > version_key("0.9.3"));
        assert!(safe_version("1.4.2"));
        assert!(!safe_version("1.4.2\"><script>"));
        assert!(safe_integrity(&format!("sha384-{}", "A".repeat(64))));
        assert!(!safe_integrity("sha256-abc"));
    }
}
