//! The running application: shared state, the router and the server loop with graceful
//! shutdown. `spawn` is what `parlo serve` and the integration tests both call.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Config;
use crate::keys::KeyRing;
use crate::mistral::MistralClient;
use crate::ratelimit::RateLimiter;
use crate::storage::Store;

/// Everything a handler may need; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Store,
    pub keys: Arc<KeyRing>,
    pub limiter: RateLimiter,
    /// The only upstream client; its base URL is operator configuration.
    pub mistral: MistralClient,
}

impl AppState {
    pub fn new(config: Config, store: Store, keys: KeyRing) -> Self {
        Self {
            limiter: RateLimiter::new(store.clone()),
            mistral: MistralClient::new(config.mistral_base_url.clone(), config.upstream_timeouts),
            config: Arc::new(config),
            store,
            keys: Arc::new(keys),
        }
    }
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
    let router = crate::http::router(state);
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
