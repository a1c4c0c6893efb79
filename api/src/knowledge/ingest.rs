//! The ingestion job: claims queued sources from the durable queue in the database
//! (`knowledge_jobs`), fetches or reads them, extracts, chunks, embeds and stores their
//! chunks in one transaction. One of the two files of `knowledge/` that bring the store and
//! Mistral (with `retrieve.rs`); the rest of the module stays pure.
//!
//! - A failure the customer must fix (an unsupported, damaged or encrypted file, a page
//!   without text, a refused address, a limit) fails the source at once with a readable
//!   reason. A failure that may pass (a timeout, an upstream 5xx or rate limit, a 5xx of the
//!   site) is retried with exponential backoff, at most [`MAX_ATTEMPTS`] times.
//! - Nothing is half-indexed: the old chunks stay until the new ones replace them in one
//!   transaction.
//! - Content whose hash did not change is not processed again; chunks whose text did not
//!   change keep their vectors (no second embedding request for them).
//! - Without a Mistral key (the workspace's or the platform's), chunks are stored without
//!   vectors and retrieval uses full text alone; PDFs and images need the key for OCR.

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use sha2::{Digest, Sha256};
use url::Url;

use super::chunk::{ChunkConfig, chunk_document};
use super::extract::{self, Document, ExtractError, Extracted, ZipLimits};
use super::fetch::robots::FetchSession;
use super::fetch::{FetchConfig, FetchError, Fetcher};
use super::github::{self, GithubError};
use super::sitemap::{self, SitemapError, SitemapLimits};
use super::vector::{StoredVector, VectorFormat};
use crate::config::Config;
use crate::crypto::{self, Purpose};
use crate::keyring::{KeyRing, MasterKeys};
use crate::mistral::{EMBED_MODEL, MistralClient, OcrInput, UpstreamError};
use crate::model::{
    ClaimedJob, Embedding, KnowledgeLimits, NewChunk, Provider, SourceKind, SourcePayload,
    SourceStatus, TenantId, Timestamp,
};
use crate::storage::{Store, StoreError, StoreResult};

/// Attempts before a job that keeps failing for a passing reason fails for good.
pub const MAX_ATTEMPTS: u32 = 5;

/// How long a claimed job is leased to its worker; a worker that dies leaves it to be taken
/// again after this.
pub const LEASE: Duration = Duration::from_secs(15 * 60);

/// How often GitHub sources are synced again.
pub const RESYNC: Duration = Duration::from_secs(24 * 3600);

/// The wait before attempt `n + 1` after attempt `n` failed: 30 s, 1, 2, 4 min … at most 1 h.
pub fn backoff(attempts: u32) -> Duration {
    let secs = 30u64.saturating_mul(1 << attempts.saturating_sub(1).min(7));
    Duration::from_secs(secs.min(3600))
}

/// Why an attempt failed; the message is shown next to the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestError {
    /// The customer must change something; retrying will not help.
    Permanent(String),
    /// It may pass; retried with backoff.
    Transient(String),
}

impl IngestError {
    pub fn message(&self) -> &str {
        match self {
            IngestError::Permanent(m) | IngestError::Transient(m) => m,
        }
    }
}

impl From<ExtractError> for IngestError {
    fn from(e: ExtractError) -> Self {
        IngestError::Permanent(capitalise(&e.to_string()))
    }
}

impl From<FetchError> for IngestError {
    fn from(e: FetchError) -> Self {
        let transient = matches!(
            &e,
            FetchError::Timeout { .. }
                | FetchError::Connect { .. }
                | FetchError::Dns { .. }
                | FetchError::Transport { .. }
                | FetchError::RateLimited { .. }
                | FetchError::RobotsUnavailable { .. }
        ) || matches!(&e, FetchError::HttpStatus { status, .. } if *status >= 500);
        let m = capitalise(&e.to_string());
        if transient {
            IngestError::Transient(m)
        } else {
            IngestError::Permanent(m)
        }
    }
}

impl From<SitemapError> for IngestError {
    fn from(e: SitemapError) -> Self {
        match e {
            SitemapError::Fetch(f) => f.into(),
            other => IngestError::Permanent(capitalise(&other.to_string())),
        }
    }
}

impl From<GithubError> for IngestError {
    fn from(e: GithubError) -> Self {
        let m = capitalise(&e.to_string());
        match e {
            GithubError::Fetch(f) => match IngestError::from(f) {
                IngestError::Transient(_) => IngestError::Transient(m),
                IngestError::Permanent(_) => IngestError::Permanent(m),
            },
            _ => IngestError::Permanent(m),
        }
    }
}

impl From<UpstreamError> for IngestError {
    fn from(e: UpstreamError) -> Self {
        let m = format!("Mistral: {e}");
        match e {
            UpstreamError::RateLimited { .. }
            | UpstreamError::Unavailable { .. }
            | UpstreamError::Timeout
            | UpstreamError::Interrupted => IngestError::Transient(m),
            _ => IngestError::Permanent(m),
        }
    }
}

impl From<StoreError> for IngestError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Limit(m) => IngestError::Permanent(m),
            StoreError::NotFound => {
                IngestError::Permanent("The source was deleted while it was read.".to_owned())
            }
            other => {
                tracing::error!(error = %other, "knowledge ingestion: storage failed");
                IngestError::Transient("The database was unavailable.".to_owned())
            }
        }
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect::<String>(),
        None => String::new(),
    }
}

/// The workspace's own Mistral key, else the operator's platform key, else `None`.
pub async fn mistral_key(
    store: &Store,
    master: &MasterKeys,
    platform: Option<&SecretString>,
    t: TenantId,
) -> StoreResult<Option<SecretString>> {
    match store.provider_key(t, Provider::Mistral).await? {
        Some(k) => match crypto::open(
            master,
            Purpose::ProviderKey(t, Provider::Mistral),
            &k.sealed,
        ) {
            Ok(key) => Ok(Some(key)),
            Err(e) => {
                tracing::error!(tenant = %t, error = %e, "a stored provider key cannot be opened");
                Ok(None)
            }
        },
        None => Ok(platform.cloned()),
    }
}

/// What a job read: documents with their page counts, the bytes and their hash.
struct Read {
    /// Each document with the page URL it came from, when the source has several pages.
    documents: Vec<(Document, Option<String>)>,
    pages: i64,
    bytes: i64,
    hash: Vec<u8>,
}

/// Runs ingestion jobs. Cheap to clone.
#[derive(Clone)]
pub struct Ingestor {
    store: Store,
    mistral: MistralClient,
    keys: Arc<KeyRing>,
    platform_key: Option<SecretString>,
    limits: KnowledgeLimits,
    fetcher: Fetcher,
    github_api: Url,
    sitemap_limits: SitemapLimits,
    zip_limits: ZipLimits,
}

impl Ingestor {
    pub fn new(
        store: Store,
        config: &Config,
        keys: Arc<KeyRing>,
        mistral: MistralClient,
    ) -> anyhow::Result<Self> {
        let mut fetch = FetchConfig::new(&config.public_url);
        fetch.allow = config.knowledge.fetch_allow.clone();
        let fetcher = Fetcher::new(fetch).map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(Self {
            store,
            mistral,
            keys,
            platform_key: config.platform_mistral_key.clone(),
            limits: config.knowledge.limits,
            fetcher,
            github_api: config.knowledge.github_api_url.clone(),
            sitemap_limits: SitemapLimits::default(),
            zip_limits: ZipLimits::default(),
        })
    }

    /// Replaces the fetcher (tests: a resolver for their own host names).
    pub fn with_fetcher(mut self, fetcher: Fetcher) -> Self {
        self.fetcher = fetcher;
        self
    }

    pub fn limits(&self) -> &KnowledgeLimits {
        &self.limits
    }

    /// Claims and runs every due job of every workspace until none is left; returns how
    /// many ran. Other processes may claim jobs at the same time (never the same one).
    pub async fn run_due(&self) -> StoreResult<usize> {
        let mut ran = 0;
        for t in self.store.tenant_ids().await? {
            ran += self.run_due_in(t).await?;
        }
        Ok(ran)
    }

    /// The same for one workspace, after queueing the GitHub sources due for their daily
    /// re-sync.
    pub async fn run_due_in(&self, t: TenantId) -> StoreResult<usize> {
        let day_ago = Timestamp(Timestamp::now().0 - RESYNC.as_millis() as i64);
        for id in self.store.github_sources_synced_before(t, day_ago).await? {
            self.store.queue_source(t, id).await?;
        }
        let mut ran = 0;
        loop {
            let now = Timestamp::now();
            let lease = now.plus_secs(LEASE.as_secs() as i64);
            let Some(job) = self.store.claim_knowledge_job(t, now, lease).await? else {
                return Ok(ran);
            };
            self.run(&job).await;
            ran += 1;
        }
    }

    /// Runs one claimed job to its end: done, queued again with backoff, or failed.
    pub async fn run(&self, job: &ClaimedJob) {
        let t = job.tenant_id;
        let outcome = self.ingest(job).await;
        let stored = match outcome {
            Ok(()) => self.store.finish_knowledge_job(t, job.id).await,
            Err(e) => {
                let retry_at = match &e {
                    IngestError::Transient(_) if job.attempts < MAX_ATTEMPTS => {
                        Some(Timestamp::now().plus_secs(backoff(job.attempts).as_secs() as i64))
                    }
                    _ => None,
                };
                tracing::info!(
                    tenant = %t,
                    source = %job.source_id,
                    attempts = job.attempts,
                    retry = retry_at.is_some(),
                    "knowledge source failed: {}",
                    e.message()
                );
                self.store
                    .fail_knowledge_job(t, job, e.message(), retry_at)
                    .await
            }
        };
        if let Err(e) = stored {
            // The lease runs out and another attempt takes the job.
            tracing::error!(error = %e, "knowledge ingestion: recording the outcome failed");
        }
    }

    async fn ingest(&self, job: &ClaimedJob) -> Result<(), IngestError> {
        let t = job.tenant_id;
        let Some(payload) = self.store.source_payload(t, job.source_id).await? else {
            return Ok(()); // deleted meanwhile: nothing to do
        };
        let source = &payload.source;
        self.progress(source, SourceStatus::Fetching).await?;
        let key = mistral_key(
            &self.store,
            &self.keys.master,
            self.platform_key.as_ref(),
            t,
        )
        .await?;
        let read = self.read(&payload, key.as_ref()).await?;
        if source.content_hash.as_deref() == Some(read.hash.as_slice())
            && source.chunks > 0
            && !needs_vectors(&self.store, t, source.id, key.is_some(), source.chunks).await?
        {
            self.store.source_unchanged(t, source.id).await?;
            return Ok(());
        }
        let config = ChunkConfig::default();
        let chunks: Vec<_> = read
            .documents
            .iter()
            .flat_map(|(d, url)| {
                chunk_document(d, &config)
                    .into_iter()
                    .map(move |c| (c, url.clone()))
            })
            .collect();
        if chunks.is_empty() {
            return Err(IngestError::Permanent(
                "No readable text was found in the source.".to_owned(),
            ));
        }
        if chunks.len() as u64 > self.limits.max_chunks {
            return Err(IngestError::Permanent(format!(
                "The source has {} passages, more than the workspace's limit of {}.",
                chunks.len(),
                self.limits.max_chunks
            )));
        }
        let mut stored: Vec<NewChunk> = chunks
            .iter()
            .enumerate()
            .map(|(i, (c, url))| NewChunk {
                ordinal: i as u32,
                heading_path: c.heading_path.clone(),
                page: c.page,
                url: url.clone(),
                text: c.text.clone(),
                hash: c.hash.clone(),
                embedding: None,
            })
            .collect();
        if let Some(key) = &key {
            self.store
                .set_source_progress(
                    t,
                    source.id,
                    SourceStatus::Embedding,
                    read.pages,
                    stored.len() as i64,
                )
                .await?;
            let known = self.store.source_embeddings(t, source.id).await?;
            let mut missing = Vec::new();
            for (i, c) in stored.iter_mut().enumerate() {
                match known
                    .iter()
                    .find(|(h, e)| *h == c.hash && e.model == EMBED_MODEL)
                {
                    Some((_, e)) => c.embedding = Some(e.clone()),
                    None => missing.push(i),
                }
            }
            let inputs: Vec<String> = missing
                .iter()
                .map(|&i| chunks[i].0.embedding_input())
                .collect();
            if !inputs.is_empty() {
                let vectors = self.mistral.embed(key, &inputs).await?;
                for (&i, v) in missing.iter().zip(vectors) {
                    let v = StoredVector::encode(EMBED_MODEL, &v, VectorFormat::DEFAULT)
                        .map_err(|e| IngestError::Permanent(format!("Mistral: {e}")))?;
                    stored[i].embedding = Some(Embedding {
                        dim: v.dim as u32,
                        model: v.model,
                        bytes: v.bytes,
                    });
                }
            }
        }
        self.store
            .replace_chunks(
                t,
                source.id,
                source.library_id,
                &read.hash,
                read.bytes,
                read.pages,
                &stored,
                &self.limits,
            )
            .await?;
        Ok(())
    }

    /// Reads the source's bytes and extracts its documents.
    async fn read(
        &self,
        payload: &SourcePayload,
        key: Option<&SecretString>,
    ) -> Result<Read, IngestError> {
        let source = &payload.source;
        let t = source.tenant_id;
        match source.kind {
            SourceKind::File => {
                let bytes = payload.content.clone().ok_or_else(|| {
                    IngestError::Permanent("The uploaded file is no longer stored.".to_owned())
                })?;
                self.progress(source, SourceStatus::Parsing).await?;
                let hash = Sha256::digest(&bytes).to_vec();
                let document = self.document(&bytes, &source.location, key).await?;
                Ok(Read {
                    pages: pages_of(&document),
                    documents: vec![(document, None)],
                    bytes: bytes.len() as i64,
                    hash,
                })
            }
            SourceKind::Url => {
                let url = parse_url(&source.location)?;
                let mut session = FetchSession::new(&self.fetcher);
                let fetched = session.get(&url).await?;
                self.progress(source, SourceStatus::Parsing).await?;
                let hash = Sha256::digest(&fetched.body).to_vec();
                let mut document = self.document(&fetched.body, url.as_str(), key).await?;
                document.title.get_or_insert_with(|| url.to_string());
                Ok(Read {
                    pages: 1,
                    documents: vec![(document, None)],
                    bytes: fetched.body.len() as i64,
                    hash,
                })
            }
            SourceKind::Sitemap => {
                let root = parse_url(&source.location)?;
                let mut session = FetchSession::new(&self.fetcher);
                let pages = sitemap::discover(&mut session, &root, self.sitemap_limits).await?;
                if pages.is_empty() {
                    return Err(IngestError::Permanent(
                        "The sitemap lists no page of this site.".to_owned(),
                    ));
                }
                let mut documents = Vec::new();
                let mut hasher = Sha256::new();
                let mut bytes = 0i64;
                let mut skipped = Vec::new();
                for (i, page) in pages.iter().enumerate() {
                    let fetched = match session.get(page).await {
                        Ok(f) => f,
                        Err(e) => {
                            let e = IngestError::from(e);
                            if matches!(e, IngestError::Transient(_)) {
                                return Err(e);
                            }
                            skipped.push(e.message().to_owned());
                            continue;
                        }
                    };
                    hasher.update(page.as_str().as_bytes());
                    hasher.update(&fetched.body);
                    bytes += fetched.body.len() as i64;
                    match extract::extract(&fetched.body, &self.zip_limits) {
                        Ok(Extracted::Text(mut d)) => {
                            d.title.get_or_insert_with(|| page.to_string());
                            documents.push((d, Some(page.to_string())));
                        }
                        Ok(Extracted::NeedsOcr { .. }) => {
                            skipped.push(format!("{page}: PDFs and images in sitemaps are skipped"))
                        }
                        Err(e) => skipped.push(format!("{page}: {e}")),
                    }
                    self.store
                        .set_source_progress(
                            t,
                            source.id,
                            SourceStatus::Fetching,
                            i as i64 + 1,
                            source.chunks,
                        )
                        .await?;
                }
                if documents.is_empty() {
                    return Err(IngestError::Permanent(format!(
                        "No page of the sitemap had readable text ({}).",
                        skipped.first().map_or("", String::as_str)
                    )));
                }
                Ok(Read {
                    pages: documents.len() as i64,
                    documents,
                    bytes,
                    hash: hasher.finalize().to_vec(),
                })
            }
            SourceKind::Github => {
                let token = match &payload.token {
                    Some(sealed) => Some(
                        crypto::open(
                            &self.keys.master,
                            Purpose::SourceToken(t, source.id),
                            sealed,
                        )
                        .map_err(|_| {
                            IngestError::Permanent(
                                "The GitHub token can no longer be read: enter it again."
                                    .to_owned(),
                            )
                        })?,
                    ),
                    None => None,
                };
                let files = github::read_markdown(
                    &self.fetcher,
                    &self.github_api,
                    &source.location,
                    &source.options.path,
                    &source.options.git_ref,
                    token.as_ref(),
                )
                .await?;
                drop(token);
                self.store
                    .set_source_progress(
                        t,
                        source.id,
                        SourceStatus::Parsing,
                        files.len() as i64,
                        source.chunks,
                    )
                    .await?;
                let mut hasher = Sha256::new();
                let mut bytes = 0i64;
                let mut documents = Vec::new();
                for f in &files {
                    hasher.update(f.path.as_bytes());
                    hasher.update(f.sha.as_bytes());
                    bytes += f.text.len() as i64;
                    match extract::extract(f.text.as_bytes(), &self.zip_limits) {
                        Ok(Extracted::Text(mut d)) => {
                            d.title.get_or_insert_with(|| f.path.clone());
                            documents.push((d, f.html_url.clone()));
                        }
                        // An empty README or a file of only front matter: nothing to index.
                        Ok(Extracted::NeedsOcr { .. }) | Err(_) => {}
                    }
                }
                if documents.is_empty() {
                    return Err(IngestError::Permanent(
                        "No Markdown file with text was found under this path.".to_owned(),
                    ));
                }
                Ok(Read {
                    pages: documents.len() as i64,
                    documents,
                    bytes,
                    hash: hasher.finalize().to_vec(),
                })
            }
        }
    }

    /// Shows `status` on the source, keeping its counts until new ones are known.
    async fn progress(
        &self,
        source: &crate::model::Source,
        status: SourceStatus,
    ) -> StoreResult<()> {
        self.store
            .set_source_progress(
                source.tenant_id,
                source.id,
                status,
                source.pages,
                source.chunks,
            )
            .await
    }

    /// Extracts one file's text; PDFs and images go through Mistral OCR.
    async fn document(
        &self,
        bytes: &[u8],
        name: &str,
        key: Option<&SecretString>,
    ) -> Result<Document, IngestError> {
        match extract::extract(bytes, &self.zip_limits)? {
            Extracted::Text(d) => Ok(d),
            Extracted::NeedsOcr { mime } => {
                let Some(key) = key else {
                    return Err(IngestError::Permanent(
                        "Reading PDFs and images needs a Mistral API key: add one in the \
                         workspace settings."
                            .to_owned(),
                    ));
                };
                let pages = self
                    .mistral
                    .ocr_pages(
                        key,
                        OcrInput {
                            content_type: mime.to_owned(),
                            bytes: bytes.to_vec(),
                            file_name: Some(name.to_owned()),
                        },
                    )
                    .await?;
                let document = Document::from_ocr_pages(&pages);
                if document.sections.iter().all(|s| s.text.trim().is_empty()) {
                    return Err(ExtractError::NoText.into());
                }
                Ok(document)
            }
        }
    }
}

fn parse_url(s: &str) -> Result<Url, IngestError> {
    Url::parse(s).map_err(|_| IngestError::Permanent(format!("{s:?} is not a URL.")))
}

fn pages_of(d: &Document) -> i64 {
    d.sections
        .iter()
        .filter_map(|s| s.page)
        .max()
        .map_or(1, i64::from)
}

/// True when a key is there now but some chunks were stored without vectors (the content is
/// unchanged, but it is worth embedding).
async fn needs_vectors(
    store: &Store,
    t: TenantId,
    source: crate::model::SourceId,
    have_key: bool,
    chunks: i64,
) -> StoreResult<bool> {
    if !have_key {
        return Ok(false);
    }
    let embedded = store.source_embeddings(t, source).await?;
    Ok((embedded.len() as i64) < chunks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_thirty_seconds_to_an_hour() {
        assert_eq!(backoff(1), Duration::from_secs(30));
        assert_eq!(backoff(2), Duration::from_secs(60));
        assert_eq!(backoff(3), Duration::from_secs(120));
        assert_eq!(backoff(20), Duration::from_secs(3600));
    }

    #[test]
    fn damaged_files_fail_for_good_and_timeouts_are_retried() {
        assert!(matches!(
            IngestError::from(ExtractError::PdfEncrypted),
            IngestError::Permanent(_)
        ));
        assert!(matches!(
            IngestError::from(UpstreamError::Timeout),
            IngestError::Transient(_)
        ));
        assert!(matches!(
            IngestError::from(UpstreamError::InvalidKey),
            IngestError::Permanent(_)
        ));
    }
}
