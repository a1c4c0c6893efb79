//! The mail outbox (global: mail to a person is not a workspace's data). Messages are queued
//! sealed, claimed by one sender at a time with a compare-and-set on `claimed_until` (so
//! several processes on one PostgreSQL never send a message twice at once, and a sender that
//! died releases its claim when the lease runs out), and erased once handed over.

use uuid::Uuid;

use super::error::{StoreResult, corrupt};
use super::store::Store;
use crate::model::{
    NewOutboxMail, OutboxEntry, OutboxMail, OutboxStatus, OutboxSummary, SealedSecret, Timestamp,
};

#[derive(sqlx::FromRow)]
struct ClaimedRow {
    id: Uuid,
    recipient: String,
    kind: String,
    ciphertext: Option<Vec<u8>>,
    nonce: Option<Vec<u8>>,
    key_version: Option<i32>,
    attempts: i32,
}

#[derive(sqlx::FromRow)]
struct EntryRow {
    id: Uuid,
    recipient: String,
    kind: String,
    status: String,
    attempts: i32,
    next_attempt_at: Timestamp,
    last_error: Option<String>,
    created_at: Timestamp,
    sent_at: Option<Timestamp>,
}

#[derive(sqlx::FromRow)]
struct CountRow {
    status: String,
    n: i64,
}

/// The columns a finished message keeps: no content, no claim.
const FINISHED: &str = "ciphertext = NULL, nonce = NULL, key_version = NULL, \
                        claimed_by = NULL, claimed_until = NULL";

impl Store {
    /// Queues a message for sending.
    pub async fn enqueue_mail(&self, m: &NewOutboxMail) -> StoreResult<()> {
        self.in_global(async |tx| {
            tx.query(
                "INSERT INTO mail_outbox (id, recipient, kind, status, ciphertext, nonce, \
                 key_version, attempts, next_attempt_at, created_at) \
                 VALUES ($1, $2, $3, 'pending', $4, $5, $6, 0, $7, $8)",
            )
            .bind(m.id)
            .bind(&m.recipient)
            .bind(&m.kind)
            .bind(&m.sealed.ciphertext)
            .bind(&m.sealed.nonce)
            .bind(m.sealed.key_version)
            .bind(m.next_attempt_at)
            .bind(Timestamp::now())
            .execute()
            .await?;
            Ok(())
        })
        .await
    }

    /// Messages due at `now` that nobody holds a claim on, oldest due first.
    pub async fn due_mail(&self, now: Timestamp, limit: i64) -> StoreResult<Vec<Uuid>> {
        self.in_global(async |tx| {
            Ok(tx
                .query_scalar(
                    "SELECT id FROM mail_outbox WHERE status = 'pending' \
                     AND next_attempt_at <= $1 AND (claimed_until IS NULL OR claimed_until < $1) \
                     ORDER BY next_attempt_at LIMIT $2",
                )
                .bind(now)
                .bind(limit)
                .fetch_all()
                .await?)
        })
        .await
    }

    /// Claims message `id` for `sender` until `until` and counts the attempt; `None` if it is
    /// no longer due or another sender claimed it first.
    pub async fn claim_mail(
        &self,
        id: Uuid,
        sender: Uuid,
        now: Timestamp,
        until: Timestamp,
    ) -> StoreResult<Option<OutboxMail>> {
        self.in_global(async |tx| {
            let n = tx
                .query(
                    "UPDATE mail_outbox SET claimed_by = $2, claimed_until = $4, \
                     attempts = attempts + 1 \
                     WHERE id = $1 AND status = 'pending' AND next_attempt_at <= $3 \
                     AND (claimed_until IS NULL OR claimed_until < $3)",
                )
                .bind(id)
                .bind(sender)
                .bind(now)
                .bind(until)
                .execute()
                .await?;
            if n != 1 {
                return Ok(None);
            }
            let r: ClaimedRow = tx
                .query_as(
                    "SELECT id, recipient, kind, ciphertext, nonce, key_version, attempts \
                     FROM mail_outbox WHERE id = $1",
                )
                .bind(id)
                .fetch_one()
                .await?;
            let (Some(ciphertext), Some(nonce), Some(key_version)) =
                (r.ciphertext, r.nonce, r.key_version)
            else {
                return Err(corrupt("mail_outbox.ciphertext"));
            };
            Ok(Some(OutboxMail {
                id: r.id,
                recipient: r.recipient,
                kind: r.kind,
                sealed: SealedSecret {
                    ciphertext,
                    nonce,
                    key_version,
                },
                attempts: r.attempts,
            }))
        })
        .await
    }

    /// The server took the message: it is sent, and its content is erased.
    pub async fn mail_sent(&self, id: Uuid, sender: Uuid, now: Timestamp) -> StoreResult<bool> {
        self.in_global(async |tx| {
            let n = tx
                .query(&format!(
                    "UPDATE mail_outbox SET status = 'sent', sent_at = $3, last_error = NULL, \
                     {FINISHED} WHERE id = $1 AND claimed_by = $2"
                ))
                .bind(id)
                .bind(sender)
                .bind(now)
                .execute()
                .await?;
            Ok(n == 1)
        })
        .await
    }

    /// The attempt failed for now: try again at `next`.
    pub async fn mail_retry(
        &self,
        id: Uuid,
        sender: Uuid,
        next: Timestamp,
        error: &str,
    ) -> StoreResult<bool> {
        self.in_global(async |tx| {
            let n = tx
                .query(
                    "UPDATE mail_outbox SET next_attempt_at = $3, last_error = $4, \
                     claimed_by = NULL, claimed_until = NULL WHERE id = $1 AND claimed_by = $2",
                )
                .bind(id)
                .bind(sender)
                .bind(next)
                .bind(error)
                .execute()
                .await?;
            Ok(n == 1)
        })
        .await
    }

    /// The message cannot be delivered (refused, or out of attempts): given up, content erased.
    pub async fn mail_failed(&self, id: Uuid, sender: Uuid, error: &str) -> StoreResult<bool> {
        self.in_global(async |tx| {
            let n = tx
                .query(&format!(
                    "UPDATE mail_outbox SET status = 'failed', last_error = $3, {FINISHED} \
                     WHERE id = $1 AND claimed_by = $2"
                ))
                .bind(id)
                .bind(sender)
                .bind(error)
                .execute()
                .await?;
            Ok(n == 1)
        })
        .await
    }

    /// Forgets finished messages (their recipients' addresses) finished before `before`.
    pub async fn purge_finished_mail(&self, before: Timestamp) -> StoreResult<u64> {
        self.in_global(async |tx| {
            Ok(tx
                .query(
                    "DELETE FROM mail_outbox WHERE (status = 'sent' AND sent_at < $1) \
                     OR (status = 'failed' AND next_attempt_at < $1)",
                )
                .bind(before)
                .execute()
                .await?)
        })
        .await
    }

    /// How many messages are pending, sent and failed, and the oldest pending one.
    pub async fn outbox_summary(&self) -> StoreResult<OutboxSummary> {
        self.in_global(async |tx| {
            let rows: Vec<CountRow> = tx
                .query_as("SELECT status, COUNT(*) AS n FROM mail_outbox GROUP BY status")
                .fetch_all()
                .await?;
            let mut s = OutboxSummary::default();
            for r in rows {
                match OutboxStatus::parse(&r.status) {
                    Some(OutboxStatus::Pending) => s.pending = r.n,
                    Some(OutboxStatus::Sent) => s.sent = r.n,
                    Some(OutboxStatus::Failed) => s.failed = r.n,
                    None => return Err(corrupt("mail_outbox.status")),
                }
            }
            s.oldest_pending = tx
                .query_scalar(
                    "SELECT MIN(created_at) FROM mail_outbox WHERE status = 'pending' \
                     HAVING COUNT(*) > 0",
                )
                .fetch_optional()
                .await?;
            Ok(s)
        })
        .await
    }

    /// The newest `limit` messages, newest first (never their content).
    pub async fn outbox_entries(&self, limit: i64) -> StoreResult<Vec<OutboxEntry>> {
        self.in_global(async |tx| {
            let rows: Vec<EntryRow> = tx
                .query_as(
                    "SELECT id, recipient, kind, status, attempts, next_attempt_at, last_error, \
                     created_at, sent_at FROM mail_outbox ORDER BY created_at DESC, id DESC \
                     LIMIT $1",
                )
                .bind(limit)
                .fetch_all()
                .await?;
            rows.into_iter()
                .map(|r| {
                    Ok(OutboxEntry {
                        id: r.id,
                        recipient: r.recipient,
                        kind: r.kind,
                        status: OutboxStatus::parse(&r.status)
                            .ok_or_else(|| corrupt("mail_outbox.status"))?,
                        attempts: r.attempts,
                        next_attempt_at: r.next_attempt_at,
                        last_error: r.last_error,
                        created_at: r.created_at,
                        sent_at: r.sent_at,
                    })
                })
                .collect()
        })
        .await
    }
}
