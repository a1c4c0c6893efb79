//! `AppState`: what every handler may reach (configuration, storage, the key ring, the rate
//! limiter, the upstream client, the widget bundles and the metrics), built once at start and cheap to clone. It sits below
//! every area of the HTTP surface: handlers import it, it imports no handler, router or
//! HTTP layer.

use std::sync::Arc;

use crate::config::Config;
use crate::dist::Dist;
use crate::keyring::KeyRing;
use crate::mail::Mailer;
use crate::metrics::Metrics;
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
    /// Queues mail in the durable outbox (the background job sends it).
    pub mailer: Mailer,
    /// The published widget bundles: built in, or `PARLO_DIST_DIR`.
    pub dist: Dist,
    pub metrics: Metrics,
}

impl AppState {
    pub fn new(config: Config, store: Store, keys: KeyRing) -> Self {
        let keys = Arc::new(keys);
        Self {
            limiter: RateLimiter::new(store.clone(), &keys.master),
            mistral: MistralClient::new(config.mistral_base_url.clone(), config.upstream_timeouts),
            mailer: Mailer::new(&config.mail, store.clone(), keys.clone())
                .expect("PARLO_SMTP_URL was checked when the configuration was loaded"),
            dist: Dist::new(config.dist_dir.as_deref()),
            metrics: Metrics::new(),
            config: Arc::new(config),
            store,
            keys,
        }
    }
}
