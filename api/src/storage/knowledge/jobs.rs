//! The ingestion queue: claiming a job (one process at a time), progress, finishing and failing with a retry time.

use super::*;

impl Store {
    /// Claims the workspace's next due job: a queued job whose time has come, or a running
    /// one whose lease ran out (its worker died). The claim leases it until `lease_until`
    /// and counts the attempt. On PostgreSQL, `FOR UPDATE SKIP LOCKED` lets several
    /// processes claim at once without taking the same job or waiting for each other.
    pub async fn claim_knowledge_job(
        &self,
        t: TenantId,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> StoreResult<Option<ClaimedJob>> {
        let lock = match &self.db {
            Db::Sqlite(_) => "",
            Db::Postgres(_) => " FOR UPDATE SKIP LOCKED",
        };
        let row: Option<ClaimRow> = self
            .in_tenant_write(t, async |tx| {
                Ok(tx
                    .query_as(&format!(
                        "UPDATE knowledge_jobs SET status = 'running', attempts = attempts + 1, \
                         lease_until = $3, updated_at = $2 \
                         WHERE tenant_id = $1 AND id = (SELECT id FROM knowledge_jobs \
                         WHERE tenant_id = $1 AND ((status = 'queued' AND run_after <= $2) \
                         OR (status = 'running' AND lease_until < $2)) \
                         ORDER BY run_after, id LIMIT 1{lock}) \
                         RETURNING id, source_id, attempts"
                    ))
                    .bind(now)
                    .bind(lease_until)
                    .fetch_optional()
                    .await?)
            })
            .await?;
        Ok(row.map(|r| ClaimedJob {
            tenant_id: t,
            id: r.id,
            source_id: r.source_id,
            attempts: u32::try_from(r.attempts).unwrap_or(0),
        }))
    }

    /// Sets a source's status and progress while its job runs.
    pub async fn set_source_progress(
        &self,
        t: TenantId,
        id: SourceId,
        status: SourceStatus,
        pages: i64,
        chunks: i64,
    ) -> StoreResult<()> {
        self.in_tenant(t, async |tx| {
            tx.query(
                "UPDATE knowledge_sources SET status = $3, reason = NULL, pages = $4, \
                 chunks = $5, updated_at = $6 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(id)
            .bind(status.as_str())
            .bind(pages)
            .bind(chunks)
            .bind(Timestamp::now())
            .execute()
            .await?;
            Ok(())
        })
        .await
    }

    /// Marks a source ready without touching its chunks (its content did not change).
    pub async fn source_unchanged(&self, t: TenantId, id: SourceId) -> StoreResult<()> {
        self.in_tenant(t, async |tx| {
            tx.query(
                "UPDATE knowledge_sources SET status = 'ready', reason = NULL, updated_at = $3 \
                 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(id)
            .bind(Timestamp::now())
            .execute()
            .await?;
            Ok(())
        })
        .await
    }

    /// Ends a job that succeeded.
    pub async fn finish_knowledge_job(&self, t: TenantId, job: KnowledgeJobId) -> StoreResult<()> {
        self.in_tenant(t, async |tx| {
            tx.query(
                "UPDATE knowledge_jobs SET status = 'done', lease_until = NULL, \
                 last_error = NULL, updated_at = $3 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(job)
            .bind(Timestamp::now())
            .execute()
            .await?;
            Ok(())
        })
        .await
    }

    /// Ends an attempt that failed: with `retry_at`, the job is queued again for then (the
    /// source shows the reason while it waits); without, the job and its source fail.
    pub async fn fail_knowledge_job(
        &self,
        t: TenantId,
        job: &ClaimedJob,
        reason: &str,
        retry_at: Option<Timestamp>,
    ) -> StoreResult<()> {
        let now = Timestamp::now();
        self.in_tenant(t, async |tx| {
            tx.query(
                "UPDATE knowledge_jobs SET status = $3, run_after = $4, lease_until = NULL, \
                 last_error = $5, updated_at = $6 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(job.id)
            .bind(if retry_at.is_some() {
                "queued"
            } else {
                "failed"
            })
            .bind(retry_at.unwrap_or(now))
            .bind(reason)
            .bind(now)
            .execute()
            .await?;
            tx.query(
                "UPDATE knowledge_sources SET status = $3, reason = $4, updated_at = $5 \
                 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(job.source_id)
            .bind(if retry_at.is_some() {
                "queued"
            } else {
                "failed"
            })
            .bind(reason)
            .bind(now)
            .execute()
            .await?;
            Ok(())
        })
        .await
    }

    /// The jobs of a source, newest first.
    pub async fn knowledge_jobs(
        &self,
        t: TenantId,
        source: SourceId,
    ) -> StoreResult<Vec<KnowledgeJob>> {
        let rows: Vec<JobRow> = self
            .in_tenant(t, async |tx| {
                Ok(tx
                    .query_as(
                        "SELECT id, source_id, status, attempts, run_after, last_error \
                         FROM knowledge_jobs WHERE tenant_id = $1 AND source_id = $2 \
                         ORDER BY created_at DESC, id DESC",
                    )
                    .bind(source)
                    .fetch_all()
                    .await?)
            })
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| KnowledgeJob {
                id: r.id,
                source_id: r.source_id,
                status: r.status,
                attempts: u32::try_from(r.attempts).unwrap_or(0),
                run_after: r.run_after,
                last_error: r.last_error,
            })
            .collect())
    }

    /// Ingestion jobs waiting to run (queued, due or not) in every workspace: the queue's
    /// depth for the metrics.
    pub async fn knowledge_queue_depth(&self) -> StoreResult<i64> {
        let mut depth = 0;
        for t in self.tenant_ids().await? {
            depth += self
                .in_tenant(t, async |tx| {
                    Ok(tx
                        .query_scalar(
                            "SELECT count(*) FROM knowledge_jobs \
                             WHERE tenant_id = $1 AND status = 'queued'",
                        )
                        .fetch_optional()
                        .await?
                        .unwrap_or(0))
                })
                .await?;
        }
        Ok(depth)
    }
}
