//! Sources of a library: adding (within the workspace's limits), reading, deleting and queueing them.

use super::*;

impl Store {
    /// Adds a source and queues its ingestion, in one transaction; refuses (changing
    /// nothing) when the workspace would exceed its document or byte limit, and `NotFound`
    /// when the library does not exist.
    pub async fn add_source(
        &self,
        t: TenantId,
        s: &NewSource,
        limits: &KnowledgeLimits,
    ) -> StoreResult<Source> {
        let now = Timestamp::now();
        let bytes = s.content.as_ref().map_or(0, Vec::len) as i64;
        let row: SourceRow = self
            .in_tenant_write(t, async |tx| {
                let usage: UsageRow = tx
                    .query_as(
                        "SELECT count(*) AS documents, \
                         CAST(COALESCE(sum(bytes), 0) AS BIGINT) AS bytes \
                         FROM knowledge_sources WHERE tenant_id = $1",
                    )
                    .fetch_one()
                    .await?;
                check_documents(&usage, 1, bytes, limits)?;
                let token = s.token.as_ref();
                let row: SourceRow = tx
                    .query_as(&format!(
                        "INSERT INTO knowledge_sources (tenant_id, id, library_id, kind, \
                         location, options, title, status, reason, pages, chunks, bytes, \
                         content_hash, content, token_ciphertext, token_nonce, \
                         token_key_version, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, 'queued', NULL, 0, 0, $8, NULL, \
                         $9, $10, $11, $12, $13, $13) RETURNING {SOURCE_COLUMNS}"
                    ))
                    .bind(s.id)
                    .bind(s.library_id)
                    .bind(s.kind.as_str())
                    .bind(&s.location)
                    .bind(serde_json::to_string(&s.options).expect("options serialise"))
                    .bind(&s.title)
                    .bind(bytes)
                    .bind(s.content.as_deref())
                    .bind(token.map(|k| k.ciphertext.as_slice()))
                    .bind(token.map(|k| k.nonce.as_slice()))
                    .bind(token.map(|k| k.key_version))
                    .bind(now)
                    .fetch_one()
                    .await
                    .map_err(not_found_on_foreign_key)?;
                enqueue(tx, row.id, now).await?;
                Ok(row)
            })
            .await?;
        row.into_source()
    }

    pub async fn sources(&self, t: TenantId, library: LibraryId) -> StoreResult<Vec<Source>> {
        let rows: Vec<SourceRow> = self
            .in_tenant(t, async |tx| {
                Ok(tx
                    .query_as(&format!(
                        "SELECT {SOURCE_COLUMNS} FROM knowledge_sources \
                         WHERE tenant_id = $1 AND library_id = $2 ORDER BY created_at, id"
                    ))
                    .bind(library)
                    .fetch_all()
                    .await?)
            })
            .await?;
        rows.into_iter().map(SourceRow::into_source).collect()
    }

    pub async fn source(&self, t: TenantId, id: SourceId) -> StoreResult<Option<Source>> {
        let row: Option<SourceRow> = self
            .in_tenant(t, async |tx| {
                Ok(tx
                    .query_as(&format!(
                        "SELECT {SOURCE_COLUMNS} FROM knowledge_sources \
                         WHERE tenant_id = $1 AND id = $2"
                    ))
                    .bind(id)
                    .fetch_optional()
                    .await?)
            })
            .await?;
        row.map(SourceRow::into_source).transpose()
    }

    /// A source with its stored bytes and sealed token, for the ingestion job.
    pub async fn source_payload(
        &self,
        t: TenantId,
        id: SourceId,
    ) -> StoreResult<Option<SourcePayload>> {
        let row: Option<PayloadRow> = self
            .in_tenant(t, async |tx| {
                Ok(tx
                    .query_as(&format!(
                        "SELECT {SOURCE_COLUMNS}, content, token_ciphertext, token_nonce, \
                         token_key_version FROM knowledge_sources \
                         WHERE tenant_id = $1 AND id = $2"
                    ))
                    .bind(id)
                    .fetch_optional()
                    .await?)
            })
            .await?;
        let Some(p) = row else {
            return Ok(None);
        };
        let token = match (p.token_ciphertext, p.token_nonce, p.token_key_version) {
            (Some(ciphertext), Some(nonce), Some(key_version)) => Some(SealedSecret {
                ciphertext,
                nonce,
                key_version,
            }),
            _ => None,
        };
        Ok(Some(SourcePayload {
            source: p.source.into_source()?,
            content: p.content,
            token,
        }))
    }

    /// Deletes a source; its chunks (and their full-text entries) and jobs go in the same
    /// transaction.
    pub async fn delete_source(&self, t: TenantId, id: SourceId) -> StoreResult<bool> {
        self.in_tenant(t, async |tx| {
            tx.query(
                "UPDATE knowledge_libraries SET revision = revision + 1 \
                 WHERE tenant_id = $1 AND id IN (SELECT library_id FROM knowledge_sources \
                 WHERE tenant_id = $1 AND id = $2)",
            )
            .bind(id)
            .execute()
            .await?;
            let n = tx
                .query("DELETE FROM knowledge_sources WHERE tenant_id = $1 AND id = $2")
                .bind(id)
                .execute()
                .await?;
            Ok(n > 0)
        })
        .await
    }

    /// Queues a new ingestion of a source (re-sync, reindex) unless one is already queued or
    /// running. True if a job was queued.
    pub async fn queue_source(&self, t: TenantId, id: SourceId) -> StoreResult<bool> {
        let now = Timestamp::now();
        self.in_tenant_write(t, async |tx| {
            let exists: Option<SourceId> = tx
                .query_scalar("SELECT id FROM knowledge_sources WHERE tenant_id = $1 AND id = $2")
                .bind(id)
                .fetch_optional()
                .await?;
            if exists.is_none() {
                return Err(StoreError::NotFound);
            }
            let pending: Option<KnowledgeJobId> = tx
                .query_scalar(
                    "SELECT id FROM knowledge_jobs WHERE tenant_id = $1 AND source_id = $2 \
                     AND status IN ('queued', 'running') LIMIT 1",
                )
                .bind(id)
                .fetch_optional()
                .await?;
            if pending.is_some() {
                return Ok(false);
            }
            enqueue(tx, id, now).await?;
            tx.query(
                "UPDATE knowledge_sources SET status = 'queued', reason = NULL, updated_at = $3 \
                 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(id)
            .bind(now)
            .execute()
            .await?;
            Ok(true)
        })
        .await
    }

    /// GitHub sources last synced before `before` and not queued or running (the daily
    /// re-sync).
    pub async fn github_sources_synced_before(
        &self,
        t: TenantId,
        before: Timestamp,
    ) -> StoreResult<Vec<SourceId>> {
        self.in_tenant(t, async |tx| {
            Ok(tx
                .query_scalar(
                    "SELECT id FROM knowledge_sources WHERE tenant_id = $1 AND kind = 'github' \
                     AND status IN ('ready', 'failed') AND updated_at < $2 ORDER BY id",
                )
                .bind(before)
                .fetch_all()
                .await?)
        })
        .await
    }

    /// Every source of the workspace (for `parlo knowledge reindex`).
    pub async fn all_source_ids(&self, t: TenantId) -> StoreResult<Vec<SourceId>> {
        self.in_tenant(t, async |tx| {
            Ok(tx
                .query_scalar(
                    "SELECT id FROM knowledge_sources WHERE tenant_id = $1 ORDER BY created_at, id",
                )
                .fetch_all()
                .await?)
        })
        .await
    }
}
