//! `parlo serve`: opens the key ring and the store, starts the background jobs and the
//! HTTP server, and stops both gracefully on SIGTERM or Ctrl-C. Every secret it loads is
//! registered with the log redactor before anything is logged with it.

use crate::app;
use crate::config::Config;
use crate::keyring::{self, KeyOrigin};
use crate::lifecycle;
use crate::logging::{self, Redactor};
use crate::state::AppState;
use crate::storage;
use crate::trust;
use crate::widget;

/// `known_env`: every `PARLO_*` name the binary reads, to report misspelled ones.
pub(super) async fn serve(config: Config, known_env: Vec<String>) -> anyhow::Result<()> {
    let redactor = Redactor::default();
    if let Ok(url) = url::Url::parse(config.database_url.expose())
        && let Some(pw) = url.password()
    {
        redactor.register(pw);
    }
    logging::init(&config, redactor.clone())?;
    super::env::check_environment(&config, &known_env)?;
    let (keys, origin) =
        keyring::load(&config.key_source, &config.key_file, config.is_production())?;
    for literal in keys.literals() {
        redactor.register(&literal);
    }
    if let Some(k) = &config.platform_mistral_key {
        redactor.register(secrecy::ExposeSecret::expose_secret(k));
    }
    if let Some(smtp) = &config.mail.smtp_url
        && let Ok(url) = url::Url::parse(secrecy::ExposeSecret::expose_secret(smtp))
        && let Some(pw) = url.password()
    {
        redactor.register(pw);
    }
    if origin == KeyOrigin::Generated {
        tracing::warn!(
            key_file = %config.key_file.display(),
            "generated development keys; set PARLO_MASTER_KEYS and PARLO_TOKEN_KEYS in production"
        );
        eprintln!(
            "parlo: WARNING: no keys configured; generated development keys into {} (mode 0600). \
             Set PARLO_MASTER_KEYS and PARLO_TOKEN_KEYS in production.",
            config.key_file.display()
        );
    }
    let store = storage::open(&config.database_url, config.migration_database_url.as_ref()).await?;
    let state = AppState::new(config, store, keys);
    // One binary: without a published widget the server would answer 404 for /widget.js.
    let manifest = state.dist.load_manifest()?;
    tracing::info!(latest = %manifest.latest, source = %state.dist.describe(), "serving the widget");
    let backend = state.store.backend();
    // Listen for signals before announcing the URL, so a supervisor that stops us right
    // after start-up gets a graceful shutdown, not the default signal death.
    let signal = shutdown_signal()?;
    let jobs = lifecycle::jobs::spawn(
        state.store.clone(),
        state.config.clone(),
        state.keys.clone(),
        &state.mailer,
        state.metrics.clone(),
    )?;
    // Answers a crashed process left `pending` (this one's last run, or another's).
    let recovery =
        widget::recovery::spawn(state.store.clone(), state.config.upstream_timeouts.read);
    let trust_checks = trust::spawn(
        state.store.clone(),
        state.config.clone(),
        state.dist.clone(),
        state.metrics.clone(),
    );
    let server = app::spawn(state.clone()).await?;
    let url = local_url(server.addr);
    tracing::info!(url = %url, backend = ?backend, mail = state.mailer.transport(), "parlo is listening");
    eprintln!(
        "parlo: serving on {url} (database: {})",
        state.config.database_url.redacted()
    );
    if url.trim_end_matches('/') != state.config.public_url.as_str().trim_end_matches('/') {
        eprintln!("parlo: public URL: {}", state.config.public_url);
    }
    if let Some(m) = server.metrics_addr {
        eprintln!("parlo: metrics on http://{m}/metrics (operator only)");
    }
    signal.await?;
    tracing::info!("shutting down");
    jobs.stop();
    recovery.abort();
    drop(trust_checks);
    server.shutdown().await
}

fn local_url(addr: std::net::SocketAddr) -> String {
    let host = if addr.ip().is_unspecified() {
        "localhost".to_owned()
    } else {
        addr.ip().to_string()
    };
    format!("http://{host}:{}/", addr.port())
}

/// Registers SIGTERM and Ctrl-C handlers now; the returned future completes on either.
fn shutdown_signal() -> anyhow::Result<impl Future<Output = anyhow::Result<()>>> {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let ctrl_c = tokio::signal::ctrl_c();
    Ok(async move {
        #[cfg(unix)]
        tokio::select! {
            r = ctrl_c => r?,
            _ = term.recv() => {}
        }
        #[cfg(not(unix))]
        ctrl_c.await?;
        Ok(())
    })
}
