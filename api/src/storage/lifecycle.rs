//! The data lifecycle's queries: retention purges, suspension, a workspace's usage, the
//! operator audit log, re-sealing secrets under a new master key, and taking a job lock
//! (`jobs.rs`). Owns no policy: what to purge, hash
//! or refuse is decided in `crate::lifecycle`.

use super::backend::Db;
use super::error::{StoreError, StoreResult, conflict_on_unique};
use super::jobs::{Job, JobLock};
use super::store::Store;
use crate::model::WorkspaceUsage;
use crate::model::{
    BotId, OperatorAuditEntry, Provider, PurgeCounts, PurgeLimits, SealedSecret, TenantId,
    Timestamp, UserId,
};

/// The first conversations of bot `$2` in tenant `$1` last active before `$3`, at most `$4`:
/// the chunk one retention transaction works on. Ordered so that consecutive transactions
/// take the same chunk until it is gone, never rescanning emptied conversations.
const EXPIRED_CHUNK: &str = "SELECT id FROM conversations \
     WHERE tenant_id = $1 AND bot_id = $2 AND last_activity_at < $3 \
     ORDER BY last_activity_at, id LIMIT $4";

const OPERATOR_AUDIT_COLUMNS: &str =
    "seq, created_at, actor, action, target, details, prev_hash, hash";

#[derive(sqlx::FromRow)]
struct UsageRow {
    members: i64,
    bots: i64,
    conversations: i64,
    messages: i64,
    attachments: i64,
    prompt_tokens: i64,
    completion_tokens: i64,
    last_activity_at: Option<Timestamp>,
}

impl From<UsageRow> for WorkspaceUsage {
    fn from(r: UsageRow) -> Self {
        WorkspaceUsage {
            members: r.members,
            bots: r.bots,
            conversations: r.conversations,
            messages: r.messages,
            attachments: r.attachments,
            prompt_tokens: r.prompt_tokens,
            completion_tokens: r.completion_tokens,
            last_activity_at: r.last_activity_at,
        }
    }
}

#[derive(sqlx::FromRow)]
struct SealedRow<K> {
    owner: K,
    ciphertext: Vec<u8>,
    nonce: Vec<u8>,
    key_version: i32,
}

impl<K> SealedRow<K> {
    fn split(self) -> (K, SealedSecret) {
        (
            self.owner,
            SealedSecret {
                ciphertext: self.ciphertext,
                nonce: self.nonce,
                key_version: self.key_version,
            },
        )
    }
}

#[derive(sqlx::FromRow)]
struct OperatorAuditRow {
    seq: i64,
    created_at: Timestamp,
    actor: String,
    action: String,
    target: String,
    details: String,
    prev_hash: Vec<u8>,
    hash: Vec<u8>,
}

impl From<OperatorAuditRow> for OperatorAuditEntry {
    fn from(r: OperatorAuditRow) -> Self {
        OperatorAuditEntry {
            seq: r.seq,
            created_at: r.created_at,
            actor: r.actor,
            action: r.action,
            target: r.target,
            details: r.details,
            prev_hash: r.prev_hash,
            hash: r.hash,
        }
    }
}

impl Store {
    /// Takes `job`'s lock if no other process (PostgreSQL: advisory lock) or task (SQLite)
    /// holds it; `None` when it is taken.
    pub async fn try_lock_job(&self, job: Job) -> StoreResult<Option<JobLock>> {
        match &self.db {
            Db::Sqlite(db) => Ok(db.try_lock_job(job)),
            Db::Postgres(db) => db.try_lock_job(job).await,
        }
    }

    /// One transaction of retention: among the first `limits.conversations` conversations of
    /// `bot` last active before `cutoff`, deletes up to `limits.rows` messages and
    /// attachments, and the conversations themselves once they are empty. All zero when
    /// nothing is left to purge.
    pub async fn purge_expired(
        &self,
        t: TenantId,
        bot: BotId,
        cutoff: Timestamp,
        limits: PurgeLimits,
    ) -> StoreResult<PurgeCounts> {
        let rows = i64::from(limits.rows.max(1));
        let chunk = i64::from(limits.conversations.max(1));
        self.in_tenant(t, async |tx| {
            let messages = tx
                .query(&format!(
                    "DELETE FROM messages WHERE tenant_id = $1 AND id IN (\
                     SELECT id FROM messages WHERE tenant_id = $1 \
                     AND conversation_id IN ({EXPIRED_CHUNK}) LIMIT $5)"
                ))
                .bind(bot)
                .bind(cutoff)
                .bind(chunk)
                .bind(rows)
                .execute()
                .await?;
            let room = rows - messages as i64;
            let attachments = if room > 0 {
                tx.query(&format!(
                    "DELETE FROM attachments WHERE tenant_id = $1 AND id IN (\
                     SELECT id FROM attachments WHERE tenant_id = $1 \
                     AND conversation_id IN ({EXPIRED_CHUNK}) LIMIT $5)"
                ))
                .bind(bot)
                .bind(cutoff)
                .bind(chunk)
                .bind(room)
                .execute()
                .await?
            } else {
                0
            };
            // Only once the chunk's messages and attachments are all gone (neither limit
            // was reached) are its conversations deleted, so the cascade adds no rows
            // beyond the budget (except messages written concurrently, which it takes too).
            let conversations = if room > 0 && (attachments as i64) < room {
                tx.query(&format!(
                    "DELETE FROM conversations WHERE tenant_id = $1 AND id IN ({EXPIRED_CHUNK})"
                ))
                .bind(bot)
                .bind(cutoff)
                .bind(chunk)
                .execute()
                .await?
            } else {
                0
            };
            Ok(PurgeCounts {
                conversations,
                messages,
                attachments,
            })
        })
        .await
    }

    /// When the workspace was suspended, `None` if it is active (or does not exist).
    pub async fn suspended_at(&self, t: TenantId) -> StoreResult<Option<Timestamp>> {
        self.in_tenant(t, async |tx| {
            let at: Option<Option<Timestamp>> = tx
                .query_scalar("SELECT suspended_at FROM workspaces WHERE id = $1")
                .fetch_optional()
                .await?;
            Ok(at.flatten())
        })
        .await
    }

    /// Suspends (`Some`) or reactivates (`None`) a workspace; false if it does not exist.
    pub async fn set_suspended(&self, t: TenantId, at: Option<Timestamp>) -> StoreResult<bool> {
        self.in_tenant(t, async |tx| {
            let n = tx
                .query("UPDATE workspaces SET suspended_at = $2 WHERE id = $1")
                .bind(at)
                .execute()
                .await?;
            Ok(n > 0)
        })
        .await
    }

    pub async fn workspace_usage(&self, t: TenantId) -> StoreResult<WorkspaceUsage> {
        self.in_tenant(t, async |tx| {
            let row: UsageRow = tx
                .query_as(
                    "SELECT \
                       (SELECT count(*) FROM memberships WHERE tenant_id = $1) AS members, \
                       (SELECT count(*) FROM bots WHERE tenant_id = $1) AS bots, \
                       (SELECT count(*) FROM conversations WHERE tenant_id = $1) AS conversations, \
                       (SELECT count(*) FROM messages WHERE tenant_id = $1) AS messages, \
                       (SELECT count(*) FROM attachments WHERE tenant_id = $1) AS attachments, \
                       (SELECT CAST(COALESCE(sum(prompt_tokens), 0) AS BIGINT) \
                        FROM messages WHERE tenant_id = $1) AS prompt_tokens, \
                       (SELECT CAST(COALESCE(sum(completion_tokens), 0) AS BIGINT) \
                        FROM messages WHERE tenant_id = $1) AS completion_tokens, \
                       (SELECT max(last_activity_at) FROM conversations WHERE tenant_id = $1) \
                        AS last_activity_at",
                )
                .fetch_one()
                .await?;
            Ok(row.into())
        })
        .await
    }

    pub async fn last_operator_audit(&self) -> StoreResult<Option<OperatorAuditEntry>> {
        self.in_global(async |tx| {
            let row: Option<OperatorAuditRow> = tx
                .query_as(&format!(
                    "SELECT {OPERATOR_AUDIT_COLUMNS} FROM operator_audit ORDER BY seq DESC LIMIT 1"
                ))
                .fetch_optional()
                .await?;
            Ok(row.map(Into::into))
        })
        .await
    }

    /// Appends an entry; `Conflict` if its sequence number is taken (a concurrent append).
    pub async fn insert_operator_audit(&self, e: &OperatorAuditEntry) -> StoreResult<()> {
        self.in_global(async |tx| {
            tx.query(&format!(
                "INSERT INTO operator_audit ({OPERATOR_AUDIT_COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            ))
            .bind(e.seq)
            .bind(e.created_at)
            .bind(&e.actor)
            .bind(&e.action)
            .bind(&e.target)
            .bind(&e.details)
            .bind(&e.prev_hash)
            .bind(&e.hash)
            .execute()
            .await
            .map_err(conflict_on_unique("operator audit sequence number taken"))?;
            Ok(())
        })
        .await
    }

    /// The whole operator audit log in sequence order.
    pub async fn operator_audit(&self) -> StoreResult<Vec<OperatorAuditEntry>> {
        self.in_global(async |tx| {
            let rows: Vec<OperatorAuditRow> = tx
                .query_as(&format!(
                    "SELECT {OPERATOR_AUDIT_COLUMNS} FROM operator_audit ORDER BY seq"
                ))
                .fetch_all()
                .await?;
            Ok(rows.into_iter().map(Into::into).collect())
        })
        .await
    }

    // -- re-sealing under the newest master key (`lifecycle::keys`) --

    /// Every provider key of tenant `t`, sealed as stored.
    pub async fn sealed_provider_keys(
        &self,
        t: TenantId,
    ) -> StoreResult<Vec<(Provider, SealedSecret)>> {
        let rows: Vec<SealedRow<String>> = self
            .in_tenant(t, async |tx| {
                Ok(tx
                    .query_as(
                        "SELECT provider AS owner, ciphertext, nonce, key_version \
                         FROM provider_keys WHERE tenant_id = $1 ORDER BY provider",
                    )
                    .fetch_all()
                    .await?)
            })
            .await?;
        rows.into_iter()
            .map(|r| {
                let (provider, sealed) = r.split();
                [Provider::Mistral]
                    .into_iter()
                    .find(|p| p.as_str() == provider)
                    .map(|p| (p, sealed))
                    .ok_or_else(|| {
                        StoreError::Unsafe(format!(
                            "a provider key of unknown provider {provider:?}"
                        ))
                    })
            })
            .collect()
    }

    /// Replaces a provider key's sealing `old` with `new` (the same secret sealed again);
    /// `false` if the row no longer holds `old` (the key was changed or deleted meanwhile).
    pub async fn reseal_provider_key(
        &self,
        t: TenantId,
        provider: Provider,
        old: &SealedSecret,
        new: &SealedSecret,
    ) -> StoreResult<bool> {
        self.in_tenant(t, async |tx| {
            let n = tx
                .query(
                    "UPDATE provider_keys SET ciphertext = $3, nonce = $4, key_version = $5 \
                     WHERE tenant_id = $1 AND provider = $2 AND nonce = $6 AND key_version = $7",
                )
                .bind(provider.as_str())
                .bind(&new.ciphertext)
                .bind(&new.nonce)
                .bind(new.key_version)
                .bind(&old.nonce)
                .bind(old.key_version)
                .execute()
                .await?;
            Ok(n > 0)
        })
        .await
    }

    /// Every user's TOTP secret, sealed as stored.
    pub async fn sealed_totp_secrets(&self) -> StoreResult<Vec<(UserId, SealedSecret)>> {
        let rows: Vec<SealedRow<UserId>> = self
            .in_global(async |tx| {
                Ok(tx
                    .query_as(
                        "SELECT id AS owner, totp_ciphertext AS ciphertext, totp_nonce AS nonce, \
                         totp_key_version AS key_version FROM users \
                         WHERE totp_ciphertext IS NOT NULL AND totp_nonce IS NOT NULL \
                         AND totp_key_version IS NOT NULL ORDER BY id",
                    )
                    .fetch_all()
                    .await?)
            })
            .await?;
        Ok(rows.into_iter().map(SealedRow::split).collect())
    }

    /// Like [`Self::reseal_provider_key`], for a user's TOTP secret.
    pub async fn reseal_totp(
        &self,
        user: UserId,
        old: &SealedSecret,
        new: &SealedSecret,
    ) -> StoreResult<bool> {
        self.in_global(async |tx| {
            let n = tx
                .query(
                    "UPDATE users SET totp_ciphertext = $2, totp_nonce = $3, totp_key_version = $4 \
                     WHERE id = $1 AND totp_nonce = $5 AND totp_key_version = $6",
                )
                .bind(user)
                .bind(&new.ciphertext)
                .bind(&new.nonce)
                .bind(new.key_version)
                .bind(&old.nonce)
                .bind(old.key_version)
                .execute()
                .await?;
            Ok(n > 0)
        })
        .await
    }
}
