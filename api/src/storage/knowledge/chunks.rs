//! Chunks: replacing a source's chunks with their full-text rows and embeddings, and reading them back for retrieval (full text, vectors, hits).

use super::*;

impl Store {
    /// The chunks of a source already embedded with `model`, by content hash, so unchanged
    /// chunks keep their vectors instead of being sent upstream again.
    pub async fn source_embeddings(
        &self,
        t: TenantId,
        id: SourceId,
    ) -> StoreResult<Vec<(String, Embedding)>> {
        #[derive(sqlx::FromRow)]
        struct Row {
            hash: String,
            embedding: Vec<u8>,
            embedding_model: String,
            embedding_dim: i32,
        }
        let rows: Vec<Row> = self
            .in_tenant(t, async |tx| {
                Ok(tx
                    .query_as(
                        "SELECT hash, embedding, embedding_model, embedding_dim \
                         FROM knowledge_chunks WHERE tenant_id = $1 AND source_id = $2 \
                         AND embedding IS NOT NULL",
                    )
                    .bind(id)
                    .fetch_all()
                    .await?)
            })
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                (
                    r.hash,
                    Embedding {
                        model: r.embedding_model,
                        dim: u32::try_from(r.embedding_dim).unwrap_or(0),
                        bytes: r.embedding,
                    },
                )
            })
            .collect())
    }

    /// Replaces a source's chunks with `chunks` and marks it ready, in one transaction: a
    /// reader sees the old chunks or the new ones, never a mix, and nothing half-indexed is
    /// left if this fails. Refuses (changing nothing) when the workspace would exceed its
    /// chunk or byte limit. `bytes` is the size of what was fetched or uploaded.
    #[allow(clippy::too_many_arguments)]
    pub async fn replace_chunks(
        &self,
        t: TenantId,
        source: SourceId,
        library: LibraryId,
        content_hash: &[u8],
        bytes: i64,
        pages: i64,
        chunks: &[NewChunk],
        limits: &KnowledgeLimits,
    ) -> StoreResult<()> {
        let now = Timestamp::now();
        self.in_tenant_write(t, async |tx| {
            let others: i64 = tx
                .query_scalar(
                    "SELECT count(*) FROM knowledge_chunks WHERE tenant_id = $1 AND source_id <> $2",
                )
                .bind(source)
                .fetch_optional()
                .await?
                .unwrap_or(0);
            if (others + chunks.len() as i64) as u64 > limits.max_chunks {
                return Err(StoreError::Limit(format!(
                    "This workspace has reached its limit of {} indexed passages; this \
                     source would need {} more.",
                    limits.max_chunks,
                    chunks.len()
                )));
            }
            let usage: UsageRow = tx
                .query_as(
                    "SELECT count(*) AS documents, \
                     CAST(COALESCE(sum(bytes), 0) AS BIGINT) AS bytes \
                     FROM knowledge_sources WHERE tenant_id = $1 AND id <> $2",
                )
                .bind(source)
                .fetch_one()
                .await?;
            check_documents(&usage, 0, bytes, limits)?;
            tx.query("DELETE FROM knowledge_chunks WHERE tenant_id = $1 AND source_id = $2")
                .bind(source)
                .execute()
                .await?;
            for c in chunks {
                let e = c.embedding.as_ref();
                tx.query(
                    "INSERT INTO knowledge_chunks (tenant_id, id, seq, source_id, library_id, \
                     ordinal, heading_path, page, url, text, hash, embedding, embedding_model, \
                     embedding_dim, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
                )
                .bind(ChunkId::new())
                .bind(new_seq())
                .bind(source)
                .bind(library)
                .bind(c.ordinal as i32)
                .bind(heading_json(&c.heading_path))
                .bind(c.page.map(|p| p as i32))
                .bind(c.url.as_deref())
                .bind(&c.text)
                .bind(&c.hash)
                .bind(e.map(|e| e.bytes.as_slice()))
                .bind(e.map(|e| e.model.as_str()))
                .bind(e.map(|e| e.dim as i32))
                .bind(now)
                .execute()
                .await?;
            }
            let n = tx
                .query(
                    "UPDATE knowledge_sources SET status = 'ready', reason = NULL, pages = $3, \
                     chunks = $4, bytes = $5, content_hash = $6, updated_at = $7 \
                     WHERE tenant_id = $1 AND id = $2",
                )
                .bind(source)
                .bind(pages)
                .bind(chunks.len() as i64)
                .bind(bytes)
                .bind(content_hash)
                .bind(now)
                .execute()
                .await?;
            if n == 0 {
                // Deleted while the job ran: keep nothing.
                return Err(StoreError::NotFound);
            }
            tx.query(
                "UPDATE knowledge_libraries SET revision = revision + 1 \
                 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(library)
            .execute()
            .await?;
            Ok(())
        })
        .await
    }

    /// Full-text search over bot `bot`'s libraries: the best `k` chunks for any of `words`,
    /// best first, with the engine's score (higher is better). Each engine stems the words
    /// itself (SQLite: Porter; PostgreSQL: the library's language).
    pub async fn search_fulltext(
        &self,
        t: TenantId,
        bot: BotId,
        words: &[String],
        k: usize,
    ) -> StoreResult<Vec<(ChunkId, f32)>> {
        let backend = self.backend();
        let Some(query) = any_word_query(words, backend) else {
            return Ok(Vec::new());
        };
        let k = k as i64;
        let rows: Vec<RankRow> = self
            .in_tenant(t, async |tx| match backend {
                super::super::Backend::Sqlite => Ok(tx
                    .query_as(
                        "SELECT c.id AS chunk_id, -bm25(knowledge_chunks_fts) AS rank \
                         FROM knowledge_chunks_fts \
                         JOIN knowledge_chunks c ON c.seq = knowledge_chunks_fts.rowid \
                         WHERE knowledge_chunks_fts MATCH $2 AND c.tenant_id = $1 \
                         AND c.library_id IN (SELECT library_id FROM knowledge_bot_libraries \
                         WHERE tenant_id = $1 AND bot_id = $3) \
                         ORDER BY bm25(knowledge_chunks_fts) LIMIT $4",
                    )
                    .bind(&query)
                    .bind(bot)
                    .bind(k)
                    .fetch_all()
                    .await?),
                super::super::Backend::Postgres => {
                    // One query per language of the bot's libraries, so the tsquery is a
                    // constant and the GIN index serves it.
                    let languages: Vec<String> = tx
                        .query_scalar(
                            "SELECT DISTINCT l.language FROM knowledge_bot_libraries b \
                             JOIN knowledge_libraries l \
                             ON l.tenant_id = b.tenant_id AND l.id = b.library_id \
                             WHERE b.tenant_id = $1 AND b.bot_id = $2",
                        )
                        .bind(bot)
                        .fetch_all()
                        .await?;
                    let mut all = Vec::new();
                    for language in languages {
                        let rows: Vec<RankRow> = tx
                            .query_as(
                                "SELECT c.id AS chunk_id, \
                                 ts_rank_cd(c.tsv, q)::float8 AS rank \
                                 FROM knowledge_chunks c, to_tsquery($3::regconfig, $2) q \
                                 WHERE c.tenant_id = $1 AND c.tsv @@ q \
                                 AND c.library_id IN (SELECT b.library_id \
                                 FROM knowledge_bot_libraries b JOIN knowledge_libraries l \
                                 ON l.tenant_id = b.tenant_id AND l.id = b.library_id \
                                 WHERE b.tenant_id = $1 AND b.bot_id = $4 AND l.language = $3) \
                                 ORDER BY rank DESC, c.id LIMIT $5",
                            )
                            .bind(&query)
                            .bind(language)
                            .bind(bot)
                            .bind(k)
                            .fetch_all()
                            .await?;
                        all.extend(rows);
                    }
                    all.sort_by(|a, b| b.rank.total_cmp(&a.rank));
                    all.truncate(k as usize);
                    Ok(all)
                }
            })
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| (r.chunk_id, r.rank as f32))
            .collect())
    }

    /// The libraries of bot `bot` with their revisions: changes whenever a chunk of one of
    /// them changes or the bot's set of libraries does.
    pub async fn bot_knowledge_revision(
        &self,
        t: TenantId,
        bot: BotId,
    ) -> StoreResult<Vec<(LibraryId, i64)>> {
        self.in_tenant(t, async |tx| {
            Ok(tx
                .query_as(
                    "SELECT l.id, l.revision FROM knowledge_bot_libraries b \
                     JOIN knowledge_libraries l ON l.tenant_id = b.tenant_id AND l.id = b.library_id \
                     WHERE b.tenant_id = $1 AND b.bot_id = $2 ORDER BY l.id",
                )
                .bind(bot)
                .fetch_all()
                .await?)
        })
        .await
    }

    /// The embedded chunks of bot `bot`'s libraries (for brute-force vector search).
    pub async fn bot_embeddings(
        &self,
        t: TenantId,
        bot: BotId,
    ) -> StoreResult<Vec<(ChunkId, Embedding)>> {
        let rows: Vec<EmbeddingRow> = self
            .in_tenant(t, async |tx| {
                Ok(tx
                    .query_as(
                        "SELECT id, embedding, embedding_model, embedding_dim \
                         FROM knowledge_chunks WHERE tenant_id = $1 AND embedding IS NOT NULL \
                         AND library_id IN (SELECT library_id FROM knowledge_bot_libraries \
                         WHERE tenant_id = $1 AND bot_id = $2)",
                    )
                    .bind(bot)
                    .fetch_all()
                    .await?)
            })
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                (
                    r.id,
                    Embedding {
                        model: r.embedding_model,
                        dim: u32::try_from(r.embedding_dim).unwrap_or(0),
                        bytes: r.embedding,
                    },
                )
            })
            .collect())
    }

    /// The chunks `ids` (with their sources), in the order and with the scores given; ids
    /// of other workspaces or deleted chunks are skipped.
    pub async fn chunk_hits(
        &self,
        t: TenantId,
        ids: &[(ChunkId, f32)],
    ) -> StoreResult<Vec<ChunkHit>> {
        let rows: Vec<Option<HitRow>> = self
            .in_tenant(t, async |tx| {
                let mut out = Vec::with_capacity(ids.len());
                for (id, _) in ids {
                    out.push(
                        tx.query_as(&format!(
                            "SELECT {HIT_COLUMNS} FROM knowledge_chunks c \
                             JOIN knowledge_sources s \
                             ON s.tenant_id = c.tenant_id AND s.id = c.source_id \
                             WHERE c.tenant_id = $1 AND c.id = $2"
                        ))
                        .bind(*id)
                        .fetch_optional()
                        .await?,
                    );
                }
                Ok(out)
            })
            .await?;
        rows.into_iter()
            .zip(ids)
            .filter_map(|(row, (_, score))| row.map(|r| r.into_hit(*score)))
            .collect()
    }

    /// How many chunks the workspace holds (all sources).
    pub async fn knowledge_chunk_count(&self, t: TenantId) -> StoreResult<i64> {
        self.in_tenant(t, async |tx| {
            Ok(tx
                .query_scalar("SELECT count(*) FROM knowledge_chunks WHERE tenant_id = $1")
                .fetch_optional()
                .await?
                .unwrap_or(0))
        })
        .await
    }
}
