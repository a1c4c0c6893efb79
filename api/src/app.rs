//! The running application: the router assembled from every area (the top of the import
//! graph: it depends on the areas, nothing depends on it but the command line) and the
//! server loop with graceful shutdown. `spawn` is what `parlo serve` and the integration
//! tests both call. The state handlers share is `crate::state::AppState`.

use std::net::SocketAddr;

use anyhow::Context;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::state::AppState;
use crate::{http, site, widget};

/// The whole HTTP surface: each area's router (health probes, widget API and bundles, the
/// site) on one state, wrapped in the layers every response goes through.
pub fn router(state: AppState) -> Router {
    let config = state.config.clone();
    let metrics = state.metrics.clone();
    let areas = Router::new()
        .merge(http::health::router())
        .merge(widget::router(&state))
        .merge(site::router())
        .route_layer(axum::middleware::from_fn_with_state(
            metrics,
            crate::metrics::track,
        ))
        .with_state(state);
    http::layers(areas, &config)
}

/// A server bound to its socket and running in the background.
pub struct RunningServer {
    pub addr: SocketAddr,
    /// The operator-only metrics listener, when `PARLO_METRICS_LISTEN` is set.
    pub metrics_addr: Option<SocketAddr>,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    metrics_task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if let Some(t) = &self.metrics_task {
            t.abort();
        }
    }
}

impl RunningServer {
    /// Stops accepting, lets in-flight requests finish (up to the grace period) and waits.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(true);
        (&mut self.task).await.context("server task panicked")?
    }

    /// Waits until the server stops (after a signal handled by the caller's future).
    pub async fn wait(mut self) -> anyhow::Result<()> {
        (&mut self.task).await.context("server task panicked")?
    }

    pub fn trigger_shutdown(&self) {
        let _ = self.shutdown.send(true);
    }
}

/// Binds `config.listen` and serves the application until shutdown is triggered.
pub async fn spawn(state: AppState) -> anyhow::Result<RunningServer> {
    let listener = TcpListener::bind(state.config.listen)
        .await
        .with_context(|| format!("listening on {}", state.config.listen))?;
    let addr = listener.local_addr()?;
    // Answers stream as many small SSE frames: without TCP_NODELAY, Nagle's algorithm and
    // the client's delayed ACK hold each one back by up to 40 ms.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
    });
    let grace = state.config.shutdown_grace;
    let (metrics_addr, metrics_task) = match state.config.metrics_listen {
        Some(at) => {
            let (addr, task) = spawn_metrics(at, state.metrics.clone()).await?;
            (Some(addr), Some(task))
        }
        None => (None, None),
    };
    let router = router(state);
    let (tx, mut rx) = watch::channel(false);
    let mut rx_grace = rx.clone();
    let task = tokio::spawn(async move {
        let server = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = rx.wait_for(|stop| *stop).await;
        });
        let server = std::pin::pin!(server.into_future());
        // Once shutdown starts, in-flight requests (long SSE streams included) get
        // `grace` to finish before the process stops waiting for them.
        tokio::select! {
            r = server => r.context("serving HTTP"),
            _ = async {
                let _ = rx_grace.wait_for(|stop| *stop).await;
                tokio::time::sleep(grace).await;
            } => {
                tracing::warn!(grace_secs = grace.as_secs(), "shutdown grace period over; dropping open connections");
                Ok(())
            }
        }
    });
    Ok(RunningServer {
        addr,
        metrics_addr,
        shutdown: tx,
        task,
        metrics_task,
    })
}

/// The operator-only metrics listener: a separate socket serving `/metrics` only, stopped
/// with the server.
async fn spawn_metrics(
    at: SocketAddr,
    metrics: crate::metrics::Metrics,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(at)
        .await
        .with_context(|| format!("listening for metrics on {at} (PARLO_METRICS_LISTEN)"))?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, crate::metrics::router(metrics)).await {
            tracing::error!(error = %e, "the metrics listener stopped");
        }
    });
    Ok((addr, task))
}
