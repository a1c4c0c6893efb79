//! The storage interface and the product's data model. Handlers depend on [`Store`], never on
//! a driver. Two backends implement it from one set of queries (`queries.rs`): SQLite (the
//! embedded default) and PostgreSQL (row-level security; see `postgres.rs`).
//!
//! Every tenant-scoped method takes the [`TenantId`] first and runs in one transaction scoped
//! to that tenant; no method takes a tenant-scoped id without its tenant. Timestamps are
//! unix milliseconds (UTC) in both backends so that one query text serves both.

mod lifecycle;
mod postgres;
mod queries;
mod sqlite;
pub mod types;

use std::sync::Arc;

use async_trait::async_trait;

pub use lifecycle::{Job, JobLock, OperatorAuditEntry, PurgeCounts, PurgeLimits, WorkspaceUsage};
pub use postgres::{GLOBAL_TABLES, MIGRATOR as PG_MIGRATOR, PgStore};
pub use sqlite::SqliteStore;
pub use types::*;

use crate::config::DatabaseUrl;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A uniqueness rule was violated (e.g. e-mail already registered).
    #[error("conflict: {0}")]
    Conflict(&'static str),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0}")]
    Unsafe(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Opens the backend named by the URL. On PostgreSQL, `migration_url` (the owner role)
/// applies migrations first and grants the application role its privileges; the application
/// connection then refuses to run if its role could bypass row-level security.
pub async fn open(
    url: &DatabaseUrl,
    migration_url: Option<&DatabaseUrl>,
) -> anyhow::Result<Arc<dyn Store>> {
    if url.is_postgres() {
        if let Some(owner) = migration_url {
            postgres::migrate(owner, url.user().as_deref()).await?;
        }
        Ok(Arc::new(PgStore::connect(url).await?))
    } else {
        Ok(Arc::new(SqliteStore::open(url).await?))
    }
}

/// Applies migrations only (`parlo migrate`).
pub async fn migrate(url: &DatabaseUrl, migration_url: Option<&DatabaseUrl>) -> anyhow::Result<()> {
    if url.is_postgres() {
        let owner = migration_url.unwrap_or(url);
        let app_role = if migration_url.is_some() {
            url.user()
        } else {
            None
        };
        postgres::migrate(owner, app_role.as_deref()).await
    } else {
        SqliteStore::open(url).await.map(drop)
    }
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    fn backend(&self) -> Backend;
    /// A cheap round trip, for `/readyz`.
    async fn ping(&self) -> StoreResult<()>;

    // -- workspaces (tenants) --
    /// Creates a workspace and makes `owner` its owner, in one transaction.
    async fn create_workspace(&self, name: &WorkspaceName, owner: UserId)
    -> StoreResult<Workspace>;
    async fn workspace(&self, t: TenantId) -> StoreResult<Option<Workspace>>;
    async fn rename_workspace(&self, t: TenantId, name: &WorkspaceName) -> StoreResult<()>;
    /// Deletes the workspace and, by cascade, every row of its data.
    async fn delete_workspace(&self, t: TenantId) -> StoreResult<bool>;
    /// Every tenant's id (and nothing else), for background jobs that then work per tenant.
    async fn tenant_ids(&self) -> StoreResult<Vec<TenantId>>;

    // -- users and login sessions (global, not tenant data) --
    async fn create_user(&self, email: &Email, password_hash: &str) -> StoreResult<User>;
    async fn user(&self, id: UserId) -> StoreResult<Option<User>>;
    async fn user_by_email(&self, email: &Email) -> StoreResult<Option<User>>;
    async fn set_password_hash(&self, id: UserId, password_hash: &str) -> StoreResult<()>;
    async fn set_totp(&self, id: UserId, totp: Option<&SealedSecret>) -> StoreResult<()>;
    async fn create_login_session(&self, s: &NewLoginSession) -> StoreResult<LoginSession>;
    async fn login_session(&self, token_hash: &[u8]) -> StoreResult<Option<LoginSession>>;
    async fn mark_login_session_mfa(&self, id: SessionId) -> StoreResult<()>;
    async fn delete_login_session(&self, token_hash: &[u8]) -> StoreResult<()>;
    async fn delete_user_sessions(&self, user: UserId) -> StoreResult<u64>;
    /// Deletes the account, its sessions and its memberships (not its workspaces).
    async fn delete_user(&self, id: UserId) -> StoreResult<bool>;
    /// Replaces the user's MFA recovery codes (SHA-256 of each; the codes are shown once).
    async fn set_recovery_codes(&self, id: UserId, hashes: &[Vec<u8>]) -> StoreResult<()>;
    async fn recovery_codes_left(&self, id: UserId) -> StoreResult<usize>;
    /// Uses up a recovery code: true if it was unused (and now is gone), false otherwise.
    async fn consume_recovery_code(&self, id: UserId, hash: &[u8]) -> StoreResult<bool>;
    /// Records the TOTP time step a login used: false if that step or a later one was used
    /// before, so a code cannot be replayed.
    async fn consume_totp_step(&self, id: UserId, step: i64) -> StoreResult<bool>;

    // -- memberships --
    /// The workspaces a user belongs to (read across tenants by user id only).
    async fn memberships_of(&self, user: UserId) -> StoreResult<Vec<Membership>>;
    async fn members(&self, t: TenantId) -> StoreResult<Vec<Member>>;
    async fn add_member(&self, t: TenantId, user: UserId, role: Role) -> StoreResult<()>;
    async fn set_member_role(&self, t: TenantId, user: UserId, role: Role) -> StoreResult<bool>;
    async fn remove_member(&self, t: TenantId, user: UserId) -> StoreResult<bool>;

    // -- invitations (links carry a token; only its hash is stored) --
    async fn create_invitation(&self, t: TenantId, i: &NewInvitation) -> StoreResult<Invitation>;
    async fn invitations(&self, t: TenantId) -> StoreResult<Vec<Invitation>>;
    async fn invitation_by_token(
        &self,
        t: TenantId,
        token_hash: &[u8],
    ) -> StoreResult<Option<Invitation>>;
    async fn delete_invitation(&self, t: TenantId, id: InvitationId) -> StoreResult<bool>;
    /// Makes `user` a member with the invitation's role and deletes the invitation, in one
    /// transaction. `NotFound` if it does not exist or expired, `Conflict` if already a member.
    async fn accept_invitation(
        &self,
        t: TenantId,
        token_hash: &[u8],
        user: UserId,
    ) -> StoreResult<Role>;

    // -- bots --
    async fn create_bot(&self, t: TenantId, bot: &BotSettings) -> StoreResult<Bot>;
    async fn update_bot(&self, t: TenantId, id: BotId, bot: &BotSettings) -> StoreResult<Bot>;
    async fn bot(&self, t: TenantId, id: BotId) -> StoreResult<Option<Bot>>;
    async fn bot_by_public_id(&self, t: TenantId, public_id: &str) -> StoreResult<Option<Bot>>;
    async fn bots(&self, t: TenantId) -> StoreResult<Vec<Bot>>;
    async fn delete_bot(&self, t: TenantId, id: BotId) -> StoreResult<bool>;

    // -- provider keys (ciphertext only; see crypto) --
    async fn put_provider_key(&self, t: TenantId, key: &ProviderKey) -> StoreResult<()>;
    async fn provider_key(
        &self,
        t: TenantId,
        provider: Provider,
    ) -> StoreResult<Option<ProviderKey>>;
    async fn delete_provider_key(&self, t: TenantId, provider: Provider) -> StoreResult<bool>;

    // -- conversations, messages, attachments --
    async fn create_conversation(
        &self,
        t: TenantId,
        c: &NewConversation,
    ) -> StoreResult<Conversation>;
    async fn conversation(
        &self,
        t: TenantId,
        id: ConversationId,
    ) -> StoreResult<Option<Conversation>>;
    /// The conversation of `bot` whose resume secret hashes to `resume_hash`.
    async fn conversation_by_resume(
        &self,
        t: TenantId,
        bot: BotId,
        resume_hash: &[u8],
    ) -> StoreResult<Option<Conversation>>;
    async fn conversations(
        &self,
        t: TenantId,
        q: &ConversationQuery,
    ) -> StoreResult<Vec<Conversation>>;
    async fn delete_conversation(&self, t: TenantId, id: ConversationId) -> StoreResult<bool>;
    /// Deletes a bot's conversations last active before `cutoff`; returns how many.
    async fn delete_conversations_before(
        &self,
        t: TenantId,
        bot: BotId,
        cutoff: Timestamp,
    ) -> StoreResult<u64>;
    /// Deletes every conversation of the tenant (optionally of one bot); returns how many.
    async fn wipe_conversations(&self, t: TenantId, bot: Option<BotId>) -> StoreResult<u64>;
    async fn append_message(&self, t: TenantId, m: &NewMessage) -> StoreResult<Message>;
    /// Starts a chat turn in one transaction: refuses a suspended workspace or a deleted
    /// bot, stores the user's message and an empty `pending` answer in the conversation, and
    /// reads the bot, the latest context and the tenant's provider key. This is the whole
    /// database cost of a turn before its upstream call.
    async fn begin_turn(&self, t: TenantId, turn: &NewTurn) -> StoreResult<TurnStart>;
    /// Sets the final content and state of a message that was stored `pending`.
    async fn finish_message(
        &self,
        t: TenantId,
        id: MessageId,
        f: &FinishedMessage,
    ) -> StoreResult<()>;
    async fn messages(
        &self,
        t: TenantId,
        conversation: ConversationId,
    ) -> StoreResult<Vec<Message>>;
    async fn add_attachment(&self, t: TenantId, a: &NewAttachment) -> StoreResult<Attachment>;
    async fn attachments(
        &self,
        t: TenantId,
        conversation: ConversationId,
    ) -> StoreResult<Vec<Attachment>>;

    // -- rate limits (global counters, keys hashed) --
    /// Adds one to each counter (one statement, one transaction) and returns the new counts
    /// in the order of `hits`. The key hashes must be distinct.
    async fn hit_rate_limits(&self, hits: &[RateLimitHit]) -> StoreResult<Vec<i64>>;
    async fn purge_rate_limits(&self, now: Timestamp) -> StoreResult<u64>;

    // -- audit log (append-only) --
    async fn append_audit(&self, t: TenantId, e: &NewAuditEntry) -> StoreResult<()>;
    async fn audit_log(&self, t: TenantId, limit: u32) -> StoreResult<Vec<AuditEntry>>;

    // -- data lifecycle (see `crate::lifecycle`) --
    /// Takes `job`'s lock if no other process (PostgreSQL: advisory lock) or task (SQLite)
    /// holds it; `None` when it is taken.
    async fn try_lock_job(&self, job: Job) -> StoreResult<Option<JobLock>>;
    /// One transaction of retention: among the first `limits.conversations` conversations of
    /// `bot` last active before `cutoff`, deletes up to `limits.rows` messages and
    /// attachments, and the conversations themselves once they are empty. All zero when
    /// nothing is left to purge.
    async fn purge_expired(
        &self,
        t: TenantId,
        bot: BotId,
        cutoff: Timestamp,
        limits: PurgeLimits,
    ) -> StoreResult<PurgeCounts>;
    /// When the workspace was suspended, `None` if it is active (or does not exist).
    async fn suspended_at(&self, t: TenantId) -> StoreResult<Option<Timestamp>>;
    /// Suspends (`Some`) or reactivates (`None`) a workspace; false if it does not exist.
    async fn set_suspended(&self, t: TenantId, at: Option<Timestamp>) -> StoreResult<bool>;
    async fn workspace_usage(&self, t: TenantId) -> StoreResult<WorkspaceUsage>;
    async fn last_operator_audit(&self) -> StoreResult<Option<OperatorAuditEntry>>;
    /// Appends an entry; `Conflict` if its sequence number is taken (a concurrent append).
    async fn insert_operator_audit(&self, e: &OperatorAuditEntry) -> StoreResult<()>;
    /// The whole operator audit log in sequence order.
    async fn operator_audit(&self) -> StoreResult<Vec<OperatorAuditEntry>>;
}
