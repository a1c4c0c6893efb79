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
    let areas = Router::new()
        .merge(http::health::router())
        .merge(widget::router(&state))
        .merge(site::router())
        .with_state(state);
    http::layers(areas, &config)
}

/// A server bound to its socket and running in the background.
pub struct RunningServer {
    pub addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl RunningServer {
    /// Stops accepting, lets in-flight requests finish (up to the grace period) and waits.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(true);
        self.task.await.context("server task panicked")?
    }

    /// Waits until the server stops (after a signal handled by the caller's future).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await.context("server task panicked")?
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
        shutdown: tx,
        task,
    })
}
