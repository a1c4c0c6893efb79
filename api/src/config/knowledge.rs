//! Knowledge libraries' configuration: per-workspace limits, the ingestion worker's poll
//! interval, the operator-only fetch allow-list and the GitHub API base URL.

use std::time::Duration;

use url::Url;

use super::settings::Settings;
use crate::model::KnowledgeLimits;

pub const DEFAULT_GITHUB_API_URL: &str = "https://api.github.com";

#[derive(Debug, Clone)]
pub struct KnowledgeConfig {
    pub limits: KnowledgeLimits,
    /// `None`: `parlo serve` runs no ingestion worker.
    pub poll: Option<Duration>,
    /// Networks fetches may reach although private (tests' loopback hosts).
    pub fetch_allow: Vec<ipnet::IpNet>,
    pub github_api_url: Url,
}

impl KnowledgeConfig {
    pub(super) fn from_settings(s: &Settings) -> Self {
        let d = KnowledgeLimits::default();
        KnowledgeConfig {
            limits: KnowledgeLimits {
                max_documents: s.knowledge_max_documents.unwrap_or(d.max_documents),
                max_bytes: s
                    .knowledge_max_mb
                    .map_or(d.max_bytes, |mb| mb.saturating_mul(1024 * 1024)),
                max_chunks: s.knowledge_max_chunks.unwrap_or(d.max_chunks),
            },
            poll: Some(s.knowledge_poll_ms.unwrap_or(2000))
                .filter(|&ms| ms > 0)
                .map(Duration::from_millis),
            fetch_allow: s.knowledge_fetch_allow.clone().unwrap_or_default(),
            github_api_url: s
                .github_api_url
                .clone()
                .unwrap_or_else(|| Url::parse(DEFAULT_GITHUB_API_URL).expect("valid default")),
        }
    }
}
