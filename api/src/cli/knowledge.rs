//! `parlo knowledge …`: importing files and pages into a library (ingested right here, with
//! progress on stderr), searching as a bot would (JSON lines on stdout) and reindexing. The
//! work is done by `knowledge::ingest` and `knowledge::retrieve`; this file parses
//! arguments and prints.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Subcommand;

use crate::config::Config;
use crate::keyring;
use crate::knowledge::ingest::{Ingestor, mistral_key};
use crate::knowledge::retrieve;
use crate::mistral::MistralClient;
use crate::model::{
    Bot, BotId, LibraryId, LibraryInput, NewSource, SourceId, SourceKind, SourceOptions,
    SourceStatus, TenantId,
};
use crate::storage::{self, Store};

#[derive(Debug, Subcommand)]
pub(super) enum KnowledgeCommand {
    /// Add files, web pages or sitemaps to a library and ingest them now.
    Import {
        /// The workspace (its id).
        #[arg(long, value_name = "ID")]
        workspace: TenantId,
        /// The library: its id, or its name (created if no library has it).
        #[arg(long, value_name = "ID|NAME")]
        library: String,
        /// Treat URLs as sitemaps whose pages are imported.
        #[arg(long)]
        sitemap: bool,
        /// Files, or http(s) URLs of pages.
        #[arg(required = true, value_name = "FILE|URL")]
        items: Vec<String>,
    },
    /// Retrieve for a question as the bot would: JSON lines (rank, score, source, heading,
    /// page, text).
    Search {
        /// The bot: its public id (`bot_…`).
        #[arg(long, value_name = "PUBLIC_ID")]
        bot: String,
        /// Passages to show.
        #[arg(long, default_value_t = 5)]
        k: usize,
        question: String,
    },
    /// Ingest every source again (of one workspace, or of all); unchanged content keeps its
    /// chunks and vectors.
    Reindex {
        #[arg(long, value_name = "ID")]
        workspace: Option<TenantId>,
    },
}

pub(super) async fn knowledge(config: Config, command: KnowledgeCommand) -> anyhow::Result<()> {
    let (keys, _) = keyring::load(&config.key_source, &config.key_file, config.is_production())?;
    let keys = Arc::new(keys);
    let store = storage::open(&config.database_url, None).await?;
    let mistral = MistralClient::new(config.mistral_base_url.clone(), config.upstream_timeouts);
    let ingestor = Ingestor::new(store.clone(), &config, keys.clone(), mistral.clone())?;
    match command {
        KnowledgeCommand::Import {
            workspace,
            library,
            sitemap,
            items,
        } => {
            if store.workspace(workspace).await?.is_none() {
                bail!("no workspace {workspace}");
            }
            let library = find_or_create_library(&store, workspace, &library).await?;
            let mut sources = Vec::new();
            for item in &items {
                let source = new_source(library, item, sitemap)?;
                let added = store
                    .add_source(workspace, &source, ingestor.limits())
                    .await
                    .map_err(|e| anyhow::anyhow!("{item}: {e}"))?;
                sources.push((item.clone(), added.id));
            }
            ingest(&store, &ingestor, workspace, &sources).await
        }
        KnowledgeCommand::Search { bot, k, question } => {
            let t = Bot::tenant_of_public_id(&bot).context("not a bot's public id (bot_…)")?;
            let bot: BotId = store
                .bot_by_public_id(t, &bot)
                .await?
                .context("no such bot")?
                .id;
            let key = mistral_key(
                &store,
                &keys.master,
                config.platform_mistral_key.as_ref(),
                t,
            )
            .await?;
            let found =
                retrieve::retrieve(&store, &mistral, key.as_ref(), t, bot, &question, k).await?;
            let mut out = std::io::stdout().lock();
            for (i, hit) in found.hits.iter().enumerate() {
                let line = serde_json::json!({
                    "rank": i + 1,
                    "score": hit.score,
                    "source": hit.location,
                    "heading": hit.heading_path.join(" > "),
                    "page": hit.page,
                    "text": hit.text,
                });
                writeln!(out, "{line}")?;
            }
            Ok(())
        }
        KnowledgeCommand::Reindex { workspace } => {
            let tenants = match workspace {
                Some(t) => vec![t],
                None => store.tenant_ids().await?,
            };
            for t in tenants {
                let mut sources = Vec::new();
                for id in store.all_source_ids(t).await? {
                    store.queue_source(t, id).await?;
                    let name = store
                        .source(t, id)
                        .await?
                        .map_or_else(|| id.to_string(), |s| s.location);
                    sources.push((name, id));
                }
                ingest(&store, &ingestor, t, &sources).await?;
            }
            Ok(())
        }
    }
}

async fn find_or_create_library(
    store: &Store,
    t: TenantId,
    wanted: &str,
) -> anyhow::Result<LibraryId> {
    let libraries = store.libraries(t).await?;
    if let Ok(id) = wanted.parse::<LibraryId>() {
        return libraries
            .iter()
            .find(|l| l.id == id)
            .map(|l| l.id)
            .with_context(|| format!("no library {id} in this workspace"));
    }
    if let Some(l) = libraries.iter().find(|l| l.name == wanted.trim()) {
        return Ok(l.id);
    }
    let input = LibraryInput::parse(wanted, "").map_err(|e| anyhow::anyhow!("{e}"))?;
    let created = store.create_library(t, &input).await?;
    eprintln!("parlo: created library {:?} ({})", created.name, created.id);
    Ok(created.id)
}

fn new_source(library: LibraryId, item: &str, sitemap: bool) -> anyhow::Result<NewSource> {
    let is_url = item.starts_with("https://") || item.starts_with("http://");
    let (kind, title, content) = if is_url {
        let kind = if sitemap {
            SourceKind::Sitemap
        } else {
            SourceKind::Url
        };
        (kind, item.to_owned(), None)
    } else {
        let path = Path::new(item);
        let bytes = std::fs::read(path).with_context(|| format!("reading {item}"))?;
        let name = path
            .file_name()
            .map_or_else(|| item.to_owned(), |n| n.to_string_lossy().into_owned());
        (SourceKind::File, name, Some(bytes))
    };
    Ok(NewSource {
        id: SourceId::new(),
        library_id: library,
        kind,
        location: if is_url {
            item.to_owned()
        } else {
            title.clone()
        },
        title,
        options: SourceOptions::default(),
        content,
        token: None,
    })
}

/// Runs the workspace's due jobs and prints each source's outcome as `[i/n] name: …`.
async fn ingest(
    store: &Store,
    ingestor: &Ingestor,
    t: TenantId,
    sources: &[(String, SourceId)],
) -> anyhow::Result<()> {
    let total = sources.len();
    eprintln!("parlo: ingesting {total} source(s)…");
    ingestor.run_due_in(t).await?;
    let mut failed = 0;
    for (i, (name, id)) in sources.iter().enumerate() {
        let Some(s) = store.source(t, *id).await? else {
            continue;
        };
        let bar = progress_bar(i + 1, total);
        match s.status {
            SourceStatus::Ready => eprintln!(
                "{bar} [{}/{total}] {name}: ready ({} pages, {} passages)",
                i + 1,
                s.pages,
                s.chunks
            ),
            other => {
                failed += 1;
                eprintln!(
                    "{bar} [{}/{total}] {name}: {} — {}",
                    i + 1,
                    other.as_str(),
                    s.reason.as_deref().unwrap_or("")
                );
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {total} source(s) could not be ingested");
    }
    Ok(())
}

fn progress_bar(done: usize, total: usize) -> String {
    let width = 20;
    let filled = (done * width).checked_div(total).unwrap_or(width);
    format!("[{}{}]", "#".repeat(filled), ".".repeat(width - filled))
}
