//! Every query of the product, written once and instantiated for both backends by
//! [`impl_store!`]. A backend provides only how a unit of work begins:
//! - `tenant_tx(t)`: a transaction scoped to tenant `t` (PostgreSQL sets `app.tenant_id`);
//! - `tenant_write_tx(t)`: the same for work that reads before it writes (SQLite takes the
//!   write lock at `BEGIN`);
//! - `counter_pool()`: where rate-limit counters run as single autocommit statements (on
//!   PostgreSQL their commits may be lost in a crash);
//! - `user_tx(u)`: a transaction that may read user `u`'s own memberships;
//! - `global_tx()`: a transaction with no tenant (global tables only).
//!
//! Every statement on a tenant table also filters by `tenant_id` itself, so the SQLite backend
//! is scoped by the same text and PostgreSQL gets the policy as a second, independent fence.

use super::types::*;
use super::{StoreError, StoreResult};

pub(super) fn conflict_on_unique(what: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
    move |e| match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what),
        _ => StoreError::Database(e),
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct WorkspaceRow {
    pub id: TenantId,
    pub name: String,
    pub created_at: Timestamp,
}

impl From<WorkspaceRow> for Workspace {
    fn from(r: WorkspaceRow) -> Self {
        Workspace {
            id: r.id,
            name: r.name,
            created_at: r.created_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct UserRow {
    pub id: UserId,
    pub email: String,
    pub password_hash: String,
    pub totp_ciphertext: Option<Vec<u8>>,
    pub totp_nonce: Option<Vec<u8>>,
    pub totp_key_version: Option<i32>,
    pub created_at: Timestamp,
}

impl From<UserRow> for User {
    fn from(r: UserRow) -> Self {
        let totp = match (r.totp_ciphertext, r.totp_nonce, r.totp_key_version) {
            (Some(ciphertext), Some(nonce), Some(key_version)) => Some(SealedSecret {
                ciphertext,
                nonce,
                key_version,
            }),
            _ => None,
        };
        User {
            id: r.id,
            email: r.email,
            password_hash: r.password_hash,
            totp,
            created_at: r.created_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct SessionRow {
    pub id: SessionId,
    pub user_id: UserId,
    pub mfa_verified: bool,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

impl From<SessionRow> for LoginSession {
    fn from(r: SessionRow) -> Self {
        LoginSession {
            id: r.id,
            user_id: r.user_id,
            mfa_verified: r.mfa_verified,
            created_at: r.created_at,
            expires_at: r.expires_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct MembershipRow {
    pub tenant_id: TenantId,
    pub user_id: UserId,
    pub role: String,
}

impl MembershipRow {
    pub fn into_membership(self) -> StoreResult<Membership> {
        Ok(Membership {
            tenant_id: self.tenant_id,
            user_id: self.user_id,
            role: parse_role(&self.role)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct MemberRow {
    pub user_id: UserId,
    pub email: String,
    pub role: String,
}

pub(super) fn parse_role(s: &str) -> StoreResult<Role> {
    Role::parse(s).map_err(|_| corrupt("memberships.role"))
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Database(sqlx::Error::Decode(
        format!("unexpected value in {what}").into(),
    ))
}

#[derive(sqlx::FromRow)]
pub(super) struct BotRow {
    pub tenant_id: TenantId,
    pub id: BotId,
    pub public_id: String,
    pub name: String,
    pub greeting: String,
    pub system_prompt: String,
    pub model: String,
    pub allowed_origins: String,
    pub theme_color: String,
    pub language: String,
    pub retention_days: i32,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl BotRow {
    pub fn into_bot(self) -> StoreResult<Bot> {
        Ok(Bot {
            tenant_id: self.tenant_id,
            id: self.id,
            public_id: self.public_id,
            settings: BotSettings {
                name: self.name,
                greeting: self.greeting,
                system_prompt: self.system_prompt,
                model: self.model,
                allowed_origins: serde_json::from_str(&self.allowed_origins)
                    .map_err(|_| corrupt("bots.allowed_origins"))?,
                theme_color: self.theme_color,
                language: BotLanguage::parse(&self.language)
                    .map_err(|_| corrupt("bots.language"))?,
                retention_days: u16::try_from(self.retention_days)
                    .map_err(|_| corrupt("bots.retention_days"))?,
            },
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

pub(super) fn origins_json(s: &BotSettings) -> String {
    serde_json::to_string(&s.allowed_origins).expect("origins serialise")
}

#[derive(sqlx::FromRow)]
pub(super) struct ProviderKeyRow {
    pub ciphertext: Vec<u8>,
    pub nonce: Vec<u8>,
    pub key_version: i32,
    pub last_four: String,
    pub updated_at: Timestamp,
}

/// The bot of a turn with its workspace's suspension and the tenant's provider key.
#[derive(sqlx::FromRow)]
pub(super) struct TurnHeadRow {
    #[sqlx(flatten)]
    pub bot: BotRow,
    pub suspended_at: Option<Timestamp>,
    pub key_ciphertext: Option<Vec<u8>>,
    pub key_nonce: Option<Vec<u8>>,
    pub key_version: Option<i32>,
    pub key_last_four: Option<String>,
    pub key_updated_at: Option<Timestamp>,
}

impl TurnHeadRow {
    pub fn key(&mut self, provider: Provider) -> Option<ProviderKey> {
        Some(ProviderKey {
            provider,
            sealed: SealedSecret {
                ciphertext: self.key_ciphertext.take()?,
                nonce: self.key_nonce.take()?,
                key_version: self.key_version?,
            },
            last_four: self.key_last_four.take()?,
            updated_at: self.key_updated_at?,
        })
    }
}

/// `INSERT INTO rate_limits … VALUES ($1, $2, 1, $3), ($4, $5, 1, $6), …` for `n` hits.
pub(super) fn rate_limit_upsert(n: usize) -> String {
    let values: Vec<String> = (0..n)
        .map(|i| format!("(${}, ${}, 1, ${})", 3 * i + 1, 3 * i + 2, 3 * i + 3))
        .collect();
    format!(
        "INSERT INTO rate_limits (key_hash, window_start, count, expires_at) VALUES {} \
         ON CONFLICT (key_hash, window_start) DO UPDATE SET count = rate_limits.count + 1 \
         RETURNING key_hash, count",
        values.join(", ")
    )
}

#[derive(sqlx::FromRow)]
pub(super) struct ConversationRow {
    pub tenant_id: TenantId,
    pub id: ConversationId,
    pub bot_id: BotId,
    pub origin: String,
    pub resume_hash: Vec<u8>,
    pub created_at: Timestamp,
    pub last_activity_at: Timestamp,
}

impl From<ConversationRow> for Conversation {
    fn from(r: ConversationRow) -> Self {
        Conversation {
            tenant_id: r.tenant_id,
            id: r.id,
            bot_id: r.bot_id,
            origin: r.origin,
            resume_hash: r.resume_hash,
            created_at: r.created_at,
            last_activity_at: r.last_activity_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct MessageRow {
    pub id: MessageId,
    pub conversation_id: ConversationId,
    pub role: String,
    pub content: String,
    pub status: String,
    pub prompt_tokens: Option<i64>,
    pub completion_tokens: Option<i64>,
    pub created_at: Timestamp,
    pub completed_at: Option<Timestamp>,
}

impl MessageRow {
    pub fn into_message(self) -> StoreResult<Message> {
        let role = match self.role.as_str() {
            "user" => MessageRole::User,
            "assistant" => MessageRole::Assistant,
            "system" => MessageRole::System,
            _ => return Err(corrupt("messages.role")),
        };
        let status = match self.status.as_str() {
            "pending" => MessageStatus::Pending,
            "complete" => MessageStatus::Complete,
            "interrupted" => MessageStatus::Interrupted,
            "failed" => MessageStatus::Failed,
            _ => return Err(corrupt("messages.status")),
        };
        Ok(Message {
            id: self.id,
            conversation_id: self.conversation_id,
            role,
            content: self.content,
            status,
            prompt_tokens: self.prompt_tokens,
            completion_tokens: self.completion_tokens,
            created_at: self.created_at,
            completed_at: self.completed_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct AttachmentRow {
    pub id: AttachmentId,
    pub conversation_id: ConversationId,
    pub message_id: Option<MessageId>,
    pub file_name: String,
    pub content_type: String,
    pub size_bytes: i64,
    pub sha256: Vec<u8>,
    pub created_at: Timestamp,
}

impl From<AttachmentRow> for Attachment {
    fn from(r: AttachmentRow) -> Self {
        Attachment {
            id: r.id,
            conversation_id: r.conversation_id,
            message_id: r.message_id,
            file_name: r.file_name,
            content_type: r.content_type,
            size_bytes: r.size_bytes,
            sha256: r.sha256,
            created_at: r.created_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct AuditRow {
    pub id: AuditId,
    pub actor: Option<UserId>,
    pub action: String,
    pub target: String,
    pub details: String,
    pub created_at: Timestamp,
}

impl From<AuditRow> for AuditEntry {
    fn from(r: AuditRow) -> Self {
        AuditEntry {
            id: r.id,
            actor: r.actor,
            action: r.action,
            target: r.target,
            details: r.details,
            created_at: r.created_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct InvitationRow {
    pub id: InvitationId,
    pub role: String,
    pub created_by: Option<UserId>,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

impl InvitationRow {
    pub fn into_invitation(self) -> StoreResult<Invitation> {
        Ok(Invitation {
            id: self.id,
            role: parse_role(&self.role)?,
            created_by: self.created_by,
            created_at: self.created_at,
            expires_at: self.expires_at,
        })
    }
}

pub(super) const INVITATION_COLUMNS: &str = "id, role, created_by, created_at, expires_at";

pub(super) fn parse_code_hashes(json: &str) -> StoreResult<Vec<String>> {
    serde_json::from_str(json).map_err(|_| corrupt("users.recovery_codes"))
}

pub(super) const BOT_COLUMNS: &str = "tenant_id, id, public_id, name, greeting, system_prompt, model, \
     allowed_origins, theme_color, language, retention_days, created_at, updated_at";
pub(super) const CONVERSATION_COLUMNS: &str =
    "tenant_id, id, bot_id, origin, resume_hash, created_at, last_activity_at";
pub(super) const MESSAGE_COLUMNS: &str = "id, conversation_id, role, content, status, prompt_tokens, \
     completion_tokens, created_at, completed_at";
pub(super) const USER_COLUMNS: &str =
    "id, email, password_hash, totp_ciphertext, totp_nonce, totp_key_version, created_at";

/// The first conversations of bot `$2` in tenant `$1` last active before `$3`, at most `$4`:
/// the chunk one retention transaction works on. Ordered so that consecutive transactions
/// take the same chunk until it is gone, never rescanning emptied conversations.
pub(super) const EXPIRED_CHUNK: &str = "SELECT id FROM conversations \
     WHERE tenant_id = $1 AND bot_id = $2 AND last_activity_at < $3 \
     ORDER BY last_activity_at, id LIMIT $4";
pub(super) const OPERATOR_AUDIT_COLUMNS: &str =
    "seq, created_at, actor, action, target, details, prev_hash, hash";

#[derive(sqlx::FromRow)]
pub(super) struct UsageRow {
    pub members: i64,
    pub bots: i64,
    pub conversations: i64,
    pub messages: i64,
    pub attachments: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub last_activity_at: Option<Timestamp>,
}

impl From<UsageRow> for super::WorkspaceUsage {
    fn from(r: UsageRow) -> Self {
        super::WorkspaceUsage {
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

/// Implements [`super::Store`] for a backend type that has `tenant_tx`, `tenant_write_tx`,
/// `user_tx`, `global_tx`, `counter_pool`, `ping_db` and `BACKEND`.
macro_rules! impl_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::storage::Store for $store {
            fn backend(&self) -> $crate::storage::Backend {
                Self::BACKEND
            }

            async fn ping(&self) -> StoreResult<()> {
                self.ping_db().await
            }

            async fn create_workspace(&self, name: &WorkspaceName, owner: UserId) -> StoreResult<Workspace> {
                let t = TenantId::new();
                let now = Timestamp::now();
                let mut tx = self.tenant_tx(t).await?;
                sqlx::query("INSERT INTO workspaces (id, created_at) VALUES ($1, $2)")
                    .bind(t).bind(now).execute(&mut *tx).await?;
                sqlx::query("INSERT INTO workspace_profiles (tenant_id, name) VALUES ($1, $2)")
                    .bind(t).bind(name.as_str()).execute(&mut *tx).await?;
                sqlx::query("INSERT INTO memberships (tenant_id, user_id, role, created_at) VALUES ($1, $2, 'owner', $3)")
                    .bind(t).bind(owner).bind(now).execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(Workspace { id: t, name: name.as_str().to_owned(), created_at: now })
            }

            async fn workspace(&self, t: TenantId) -> StoreResult<Option<Workspace>> {
                let mut tx = self.tenant_tx(t).await?;
                let row = sqlx::query_as::<_, WorkspaceRow>(
                    "SELECT w.id, p.name, w.created_at FROM workspaces w \
                     JOIN workspace_profiles p ON p.tenant_id = w.id WHERE w.id = $1 AND p.tenant_id = $1")
                    .bind(t).fetch_optional(&mut *tx).await?;
                tx.commit().await?;
                Ok(row.map(Into::into))
            }

            async fn rename_workspace(&self, t: TenantId, name: &WorkspaceName) -> StoreResult<()> {
                let mut tx = self.tenant_tx(t).await?;
                let n = sqlx::query("UPDATE workspace_profiles SET name = $2 WHERE tenant_id = $1")
                    .bind(t).bind(name.as_str()).execute(&mut *tx).await?.rows_affected();
                tx.commit().await?;
                if n == 0 { Err(StoreError::NotFound) } else { Ok(()) }
            }

            async fn delete_workspace(&self, t: TenantId) -> StoreResult<bool> {
                let mut tx = self.tenant_tx(t).await?;
                let n = sqlx::query("DELETE FROM workspaces WHERE id = $1")
                    .bind(t).execute(&mut *tx).await?.rows_affected();
                tx.commit().await?;
                Ok(n > 0)
            }

            async fn tenant_ids(&self) -> StoreResult<Vec<TenantId>> {
                let mut tx = self.global_tx().await?;
                let ids = sqlx::query_scalar::<_, TenantId>("SELECT id FROM workspaces ORDER BY id")
                    .fetch_all(&mut *tx).await?;
                tx.commit().await?;
                Ok(ids)
            }

            async fn create_user(&self, email: &Email, password_hash: &str) -> StoreResult<User> {
                let user = User {
                    id: UserId::new(),
                    email: email.as_str().to_owned(),
                    password_hash: password_hash.to_owned(),
                    totp: None,
                    created_at: Timestamp::now(),
                };
                let mut tx = self.global_tx().await?;
                sqlx::query("INSERT INTO users (id, email, password_hash, created_at) VALUES ($1, $2, $3, $4)")
                    .bind(user.id).bind(&user.email).bind(&user.password_hash).bind(user.created_at)
                    .execute(&mut *tx).await.map_err(conflict_on_unique("email already registered"))?;
                tx.commit().await?;
                Ok(user)
            }

            async fn user(&self, id: UserId) -> StoreResult<Option<User>> {
                let mut tx = self.global_tx().await?;
                let row = sqlx::query_as::<_, UserRow>(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
                    .bind(id).fetch_optional(&mut *tx).await?;
                tx.commit().await?;
                Ok(row.map(Into::into))
            }

            async fn user_by_email(&self, email: &Email) -> StoreResult<Option<User>> {
                let mut tx = self.global_tx().await?;
                let row = sqlx::query_as::<_, UserRow>(&format!("SELECT {USER_COLUMNS} FROM users WHERE email = $1"))
                    .bind(email.as_str()).fetch_optional(&mut *tx).await?;
                tx.commit().await?;
                Ok(row.map(Into::into))
            }

            async fn set_password_hash(&self, id: UserId, password_hash: &str) -> StoreResult<()> {
                let mut tx = self.global_tx().await?;
                sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
                    .bind(id).bind(password_hash).execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn set_totp(&self, id: UserId, totp: Option<&SealedSecret>) -> StoreResult<()> {
                let mut tx = self.global_tx().await?;
                sqlx::query("UPDATE users SET totp_ciphertext = $2, totp_nonce = $3, totp_key_version = $4 WHERE id = $1")
                    .bind(id)
                    .bind(totp.map(|s| s.ciphertext.clone()))
                    .bind(totp.map(|s| s.nonce.clone()))
                    .bind(totp.map(|s| s.key_version))
                    .execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn create_login_session(&self, s: &NewLoginSession) -> StoreResult<LoginSession> {
                let session = LoginSession {
                    id: SessionId::new(),
                    user_id: s.user_id,
                    mfa_verified: s.mfa_verified,
                    created_at: Timestamp::now(),
                    expires_at: s.expires_at,
                };
                let mut tx = self.global_tx().await?;
                sqlx::query("INSERT INTO login_sessions (id, user_id, token_hash, mfa_verified, created_at, expires_at) \
                             VALUES ($1, $2, $3, $4, $5, $6)")
                    .bind(session.id).bind(s.user_id).bind(&s.token_hash).bind(s.mfa_verified)
                    .bind(session.created_at).bind(s.expires_at)
                    .execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(session)
            }

            async fn login_session(&self, token_hash: &[u8]) -> StoreResult<Option<LoginSession>> {
                let mut tx = self.global_tx().await?;
                let row = sqlx::query_as::<_, SessionRow>(
                    "SELECT id, user_id, mfa_verified, created_at, expires_at FROM login_sessions \
                     WHERE token_hash = $1 AND expires_at > $2")
                    .bind(token_hash).bind(Timestamp::now()).fetch_optional(&mut *tx).await?;
                tx.commit().await?;
                Ok(row.map(Into::into))
            }

            async fn mark_login_session_mfa(&self, id: SessionId) -> StoreResult<()> {
                let mut tx = self.global_tx().await?;
                sqlx::query("UPDATE login_sessions SET mfa_verified = true WHERE id = $1")
                    .bind(id).execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn delete_login_session(&self, token_hash: &[u8]) -> StoreResult<()> {
                let mut tx = self.global_tx().await?;
                sqlx::query("DELETE FROM login_sessions WHERE token_hash = $1")
                    .bind(token_hash).execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn delete_user_sessions(&self, user: UserId) -> StoreResult<u64> {
                let mut tx = self.global_tx().await?;
                let n = sqlx::query("DELETE FROM login_sessions WHERE user_id = $1")
                    .bind(user).execute(&mut *tx).await?.rows_affected();
                tx.commit().await?;
                Ok(n)
            }

            async fn delete_user(&self, id: UserId) -> StoreResult<bool> {
                let mut tx = self.global_tx().await?;
                let n = sqlx::query("DELETE FROM users WHERE id = $1")
                    .bind(id).execute(&mut *tx).await?.rows_affected();
                tx.commit().await?;
                Ok(n > 0)
            }

            async fn set_recovery_codes(&self, id: UserId, hashes: &[Vec<u8>]) -> StoreResult<()> {
                let json = serde_json::to_string(&hashes.iter().map(hex::encode).collect::<Vec<_>>())
                    .expect("strings serialise");
                let mut tx = self.global_tx().await?;
                sqlx::query("UPDATE users SET recovery_codes = $2 WHERE id = $1")
                    .bind(id).bind(json).execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn recovery_codes_left(&self, id: UserId) -> StoreResult<usize> {
                let mut tx = self.global_tx().await?;
                let json: Option<String> = sqlx::query_scalar("SELECT recovery_codes FROM users WHERE id = $1")
                    .bind(id).fetch_optional(&mut *tx).await?;
                tx.commit().await?;
                Ok(match json { Some(j) => parse_code_hashes(&j)?.len(), None => 0 })
            }

            async fn consume_recovery_code(&self, id: UserId, hash: &[u8]) -> StoreResult<bool> {
                let mut tx = self.global_tx().await?;
                let Some(json): Option<String> = sqlx::query_scalar("SELECT recovery_codes FROM users WHERE id = $1")
                    .bind(id).fetch_optional(&mut *tx).await? else { return Ok(false) };
                let mut codes = parse_code_hashes(&json)?;
                let wanted = hex::encode(hash);
                let Some(pos) = codes.iter().position(|c| *c == wanted) else { return Ok(false) };
                codes.remove(pos);
                let left = serde_json::to_string(&codes).expect("strings serialise");
                // Compare-and-set: of two concurrent uses of one code, only one changes the row.
                let n = sqlx::query("UPDATE users SET recovery_codes = $2 WHERE id = $1 AND recovery_codes = $3")
                    .bind(id).bind(left).bind(&json).execute(&mut *tx).await?.rows_affected();
                tx.commit().await?;
                Ok(n == 1)
            }

            async fn consume_totp_step(&self, id: UserId, step: i64) -> StoreResult<bool> {
                let mut tx = self.global_tx().await?;
                let n = sqlx::query("UPDATE users SET totp_last_step = $2 WHERE id = $1 \
                                     AND (totp_last_step IS NULL OR totp_last_step < $2)")
                    .bind(id).bind(step).execute(&mut *tx).await?.rows_affected();
                tx.commit().await?;
                Ok(n == 1)
            }

            async fn create_invitation(&self, t: TenantId, i: &NewInvitation) -> StoreResult<Invitation> {
                let mut tx = self.tenant_tx(t).await?;
                let row = sqlx::query_as::<_, InvitationRow>(&format!(
                    "INSERT INTO invitations (tenant_id, id, token_hash, role, created_by, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {INVITATION_COLUMNS}"))
                    .bind(t).bind(InvitationId::new()).bind(&i.token_hash).bind(i.role.as_str())
                    .bind(i.created_by).bind(Timestamp::now()).bind(i.expires_at)
                    .fetch_one(&mut *tx).await?;
                tx.commit().await?;
                row.into_invitation()
            }

            async fn invitations(&self, t: TenantId) -> StoreResult<Vec<Invitation>> {
                let mut tx = self.tenant_tx(t).await?;
                let rows = sqlx::query_as::<_, InvitationRow>(&format!(
                    "SELECT {INVITATION_COLUMNS} FROM invitations WHERE tenant_id = $1 ORDER BY created_at, id"))
                    .bind(t).fetch_all(&mut *tx).await?;
                tx.commit().await?;
                rows.into_iter().map(InvitationRow::into_invitation).collect()
            }

            async fn invitation_by_token(&self, t: TenantId, token_hash: &[u8]) -> StoreResult<Option<Invitation>> {
                let mut tx = self.tenant_tx(t).await?;
                let row = sqlx::query_as::<_, InvitationRow>(&format!(
                    "SELECT {INVITATION_COLUMNS} FROM invitations WHERE tenant_id = $1 AND token_hash = $2 \
                     AND expires_at > $3"))
                    .bind(t).bind(token_hash).bind(Timestamp::now()).fetch_optional(&mut *tx).await?;
                tx.commit().await?;
                row.map(InvitationRow::into_invitation).transpose()
            }

            async fn delete_invitation(&self, t: TenantId, id: InvitationId) -> StoreResult<bool> {
                let mut tx = self.tenant_tx(t).await?;
                let n = sqlx::query("DELETE FROM invitations WHERE tenant_id = $1 AND id = $2")
                    .bind(t).bind(id).execute(&mut *tx).await?.rows_affected();
                tx.commit().await?;
                Ok(n > 0)
            }

            async fn accept_invitation(&self, t: TenantId, token_hash: &[u8], user: UserId) -> StoreResult<Role> {
                let mut tx = self.tenant_tx(t).await?;
                let role: Option<String> = sqlx::query_scalar(
                    "DELETE FROM invitations WHERE tenant_id = $1 AND token_hash = $2 AND expires_at > $3 RETURNING role")
                    .bind(t).bind(token_hash).bind(Timestamp::now()).fetch_optional(&mut *tx).await?;
                let role = parse_role(&role.ok_or(StoreError::NotFound)?)?;
                sqlx::query("INSERT INTO memberships (tenant_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)")
                    .bind(t).bind(user).bind(role.as_str()).bind(Timestamp::now())
                    .execute(&mut *tx).await.map_err(conflict_on_unique("already a member of this workspace"))?;
                tx.commit().await?;
                Ok(role)
            }

            async fn memberships_of(&self, user: UserId) -> StoreResult<Vec<Membership>> {
                let mut tx = self.user_tx(user).await?;
                let rows = sqlx::query_as::<_, MembershipRow>(
                    "SELECT tenant_id, user_id, role FROM memberships WHERE user_id = $1 ORDER BY created_at")
                    .bind(user).fetch_all(&mut *tx).await?;
                tx.commit().await?;
                rows.into_iter().map(MembershipRow::into_membership).collect()
            }

            async fn members(&self, t: TenantId) -> StoreResult<Vec<Member>> {
                let mut tx = self.tenant_tx(t).await?;
                let rows = sqlx::query_as::<_, MemberRow>(
                    "SELECT m.user_id, u.email, m.role FROM memberships m JOIN users u ON u.id = m.user_id \
                     WHERE m.tenant_id = $1 ORDER BY m.created_at")
                    .bind(t).fetch_all(&mut *tx).await?;
                tx.commit().await?;
                rows.into_iter()
                    .map(|r| Ok(Member { user_id: r.user_id, email: r.email, role: parse_role(&r.role)? }))
                    .collect()
            }

            async fn add_member(&self, t: TenantId, user: UserId, role: Role) -> StoreResult<()> {
                let mut tx = self.tenant_tx(t).await?;
                sqlx::query("INSERT INTO memberships (tenant_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)")
                    .bind(t).bind(user).bind(role.as_str()).bind(Timestamp::now())
                    .execute(&mut *tx).await.map_err(conflict_on_unique("already a member"))?;
                tx.commit().await?;
                Ok(())
            }

            async fn set_member_role(&self, t: TenantId, user: UserId, role: Role) -> StoreResult<bool> {
                let mut tx = self.tenant_tx(t).await?;
                let n = sqlx::query("UPDATE memberships SET role = $3 WHERE tenant_id = $1 AND user_id = $2")
                    .bind(t).bind(user).bind(role.as_str()).execute(&mut *tx).await?.rows_affected();
                tx.commit().await?;
                Ok(n > 0)
            }

            async fn remove_member(&self, t: TenantId, user: UserId) -> StoreResult<bool> {
                let mut tx = self.tenant_tx(t).await?;
                let n = sqlx::query("DELETE FROM memberships WHERE tenant_id = $1 AND user_id = $2")
                    .bind(t).bind(user).execute(&mut *tx).await?.rows_affected();
                tx.commit().await?;
                Ok(n > 0)
            }

            async fn create_bot(&self, t: TenantId, b: &BotSettings) -> StoreResult<Bot> {
                let now = Timestamp::now();
                let mut tx = self.tenant_tx(t).await?;
                let row = sqlx::query_as::<_, BotRow>(&format!(
                    "INSERT INTO bots ({BOT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12) \
                     RETURNING {BOT_COLUMNS}"))
                    .bind(t).bind(BotId::new()).bind(Bot::new_public_id(t))
                    .bind(&b.name).bind(&b.greeting).bind(&b.system_prompt).bind(&b.model)
                    .bind(origins_json(b)).bind(&b.theme_color).bind(b.language.as_str())
                    .bind(i32::from(b.retention_days)).bind(now)
                    .fetch_one(&mut *tx).await?;
                tx.commit().await?;
                row.into_bot()
            }

            async fn update_bot(&self, t: TenantId, id: BotId, b: &BotSettings) -> StoreResult<Bot> {
                let mut tx = self.tenant_tx(t).await?;
                let row = sqlx::query_as::<_, BotRow>(&format!(
                    "UPDATE bots SET name = $3, greeting = $4, system_prompt = $5, model = $6, \
                     allowed_origins = $7, theme_color = $8, language = $9, retention_days = $10, updated_at = $11 \
                     WHERE tenant_id = $1 AND id = $2 RETURNING {BOT_COLUMNS}"))
                    .bind(t).bind(id)
                    .bind(&b.name).bind(&b.greeting).bind(&b.system_prompt).bind(&b.model)
                    .bind(origins_json(b)).bind(&b.theme_color).bind(b.language.as_str())
                    .bind(i32::from(b.retention_days)).bind(Timestamp::now())
                    .fetch_optional(&mut *tx).await?;
                tx.commit().await?;
                row.ok_or(StoreError::NotFound)?.into_bot()
            }

            async fn bot(&self, t: TenantId, id: BotId) -> StoreResult<Option<Bot>> {
                let mut tx = self.tenant_tx(t).await?;
                let row = sqlx::query_as::<_, BotRow>(&format!(
                    "SELECT {BOT_COLUMNS} FROM bots WHERE tenant_id = $1 AND id = $2"))
                    .bind(t).bind(id).fetch_optional(&mut *tx).await?;
                tx.commit().await?;
                row.map(BotRow::into_bot).transpose()
            }

            async fn bot_by_public_id(&self, t: TenantId, public_id: &str) -> StoreResult<Option<Bot>> {
                let mut tx = self.tenant_tx(t).await?;
                let row = sqlx::query_as::<_, BotRow>(&format!(
                    "SELECT {BOT_COLUMNS} FROM bots WHERE tenant_id = $1 AND public_id = $2"))
                    .bind(t).bind(public_id).fetch_optional(&mut *tx).await?;
                tx.commit().await?;
                row.map(BotRow::into_bot).transpose()
            }

            async fn bots(&self, t: TenantId) -> StoreResult<Vec<Bot>> {
                let mut tx = self.tenant_tx(t).await?;
                let rows = sqlx::query_as::<_, BotRow>(&format!(
                    "SELECT {BOT_COLUMNS} FROM bots WHERE tenant_id = $1 ORDER BY created_at, id"))
                    .bind(t).fetch_all(&mut *tx).await?;
                tx.commit().await?;
                rows.into_iter().map(BotRow::into_bot).collect()
            }

            async fn delete_bot(&self, t: TenantId, id: BotId) -> StoreResult<bool> {
                let mut tx = self.tenant_tx(t).await?;
                let n = sqlx::query("DELETE FROM bots WHERE tenant_id = $1 AND id = $2")
                    .bind(t).bind(id).execute(&mut *tx).await?.rows_affected();
                tx.commit().await?;
                Ok(n > 0)
            }

            async fn put_provider_key(&self, t: TenantId, k: &ProviderKey) -> StoreResult<()> {
                let mut tx = self.tenant_tx(t).await?;
                sqlx::query(
                    "INSERT INTO provider_keys (tenant_id, provider, ciphertext, nonce, key_version, last_four, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (tenant_id, provider) DO UPDATE SET ciphertext = excluded.ciphertext, \
                     nonce = excluded.nonce, key_version = excluded.key_version, last_four = excluded.last_four, \
                     updated_at = excluded.updated_at")
                    .bind(t).bind(k.provider.as_str()).bind(&k.sealed.ciphertext).bind(&k.sealed.nonce)
                    .bind(k.sealed.key_version).bind(&k.last_four).bind(k.updated_at)
                    .execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn provider_key(&self, t: TenantId, provider: Provider) -> StoreResult<Option<ProviderKey>> {
                let mut tx = self.tenant_tx(t).await?;
                let row = sqlx::query_as::<_, ProviderKeyRow>(
                    "SELECT ciphertext, nonce, key_version, last_four, updated_at FROM provider_keys \
                     WHERE tenant_id = $1 AND provider = $2")
                    .bind(t).bind(provider.as_str()).fetch_optional(&mut *tx).await?;
                tx.commit().await?;
                Ok(row.map(|r| ProviderKey {
                    provider,
                    sealed: SealedSecret { ciphertext: r.ciphertext, nonce: r.nonce, key_version: r.key_version },
                    last_four: r.last_four,
                    updated_at: r.updated_at,
                }))
            }

            async fn delete_provider_key(&self, t: TenantId, provider: Provider) -> StoreResult<bool> {
                let mut tx = self.tenant_tx(t).await?;
                let n = sqlx::query("DELETE FROM provider_keys WHERE tenant_id = $1 AND provider = $2")
                    .bind(t).bind(provider.as_str()).execute(&mut *tx).await?.rows_affected();
                tx.commit().await?;
                Ok(n > 0)
            }

            async fn create_conversation(&self, t: TenantId, c: &NewConversation) -> StoreResult<Conversation> {
                let now = Timestamp::now();
                let mut tx = self.tenant_tx(t).await?;
                let row = sqlx::query_as::<_, ConversationRow>(&format!(
                    "INSERT INTO conversations ({CONVERSATION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $6) \
                     RETURNING {CONVERSATION_COLUMNS}"))
                    .bind(t).bind(ConversationId::new()).bind(c.bot_id).bind(&c.origin).bind(&c.resume_hash).bind(now)
                    .fetch_one(&mut *tx).await?;
                tx.commit().await?;
                Ok(row.into())
            }

            async fn conversation(&self, t: TenantId, id: ConversationId) -> StoreResult<Option<Conversation>> {
                let mut tx = self.tenant_tx(t).await?;
                let row = sqlx::query_as::<_, ConversationRow>(&format!(
                    "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE tenant_id = $1 AND id = $2"))
                    .bind(t).bind(id).fetch_optional(&mut *tx).await?;
                tx.commit().await?;
                Ok(row.map(Into::into))
            }

            async fn conversation_by_resume(&self, t: TenantId, bot: BotId, resume_hash: &[u8]) -> StoreResult<Option<Conversation>> {
                let mut tx = self.tenant_tx(t).await?;
                let row = sqlx::query_as::<_, ConversationRow>(&format!(
                    "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE tenant_id = $1 AND bot_id = $2 AND resume_hash = $3"))
                    .bind(t).bind(bot).bind(resume_hash).fetch_optional(&mut *tx).await?;
                tx.commit().await?;
                Ok(row.map(Into::into))
            }

            async fn conversations(&self, t: TenantId, q: &ConversationQuery) -> StoreResult<Vec<Conversation>> {
                let mut tx = self.tenant_tx(t).await?;
                let rows = sqlx::query_as::<_, ConversationRow>(&format!(
                    "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE tenant_id = $1 \
                     AND ($2 IS NULL OR bot_id = $2) AND ($3 IS NULL OR last_activity_at < $3) \
                     ORDER BY last_activity_at DESC, id DESC LIMIT $4"))
                    .bind(t).bind(q.bot_id).bind(q.before).bind(i64::from(q.limit.clamp(1, 500)))
                    .fetch_all(&mut *tx).await?;
                tx.commit().await?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            async fn delete_conversation(&self, t: TenantId, id: ConversationId) -> StoreResult<bool> {
                let mut tx = self.tenant_tx(t).await?;
                let n = sqlx::query("DELETE FROM conversations WHERE tenant_id = $1 AND id = $2")
                    .bind(t).bind(id).execute(&mut *tx).await?.rows_affected();
                tx.commit().await?;
                Ok(n > 0)
            }

            async fn delete_conversations_before(&self, t: TenantId, bot: BotId, cutoff: Timestamp) -> StoreResult<u64> {
                let mut tx = self.tenant_tx(t).await?;
                let n = sqlx::query("DELETE FROM conversations WHERE tenant_id = $1 AND bot_id = $2 AND last_activity_at < $3")
                    .bind(t).bind(bot).bind(cutoff).execute(&mut *tx).await?.rows_affected();
                tx.commit().await?;
                Ok(n)
            }

            async fn wipe_conversations(&self, t: TenantId, bot: Option<BotId>) -> StoreResult<u64> {
                let mut tx = self.tenant_tx(t).await?;
                let n = sqlx::query("DELETE FROM conversations WHERE tenant_id = $1 AND ($2 IS NULL OR bot_id = $2)")
                    .bind(t).bind(bot).execute(&mut *tx).await?.rows_affected();
                tx.commit().await?;
                Ok(n)
            }

            async fn append_message(&self, t: TenantId, m: &NewMessage) -> StoreResult<Message> {
                let now = Timestamp::now();
                let mut tx = self.tenant_tx(t).await?;
                let touched = sqlx::query("UPDATE conversations SET last_activity_at = $3 WHERE tenant_id = $1 AND id = $2")
                    .bind(t).bind(m.conversation_id).bind(now).execute(&mut *tx).await?.rows_affected();
                if touched == 0 {
                    return Err(StoreError::NotFound);
                }
                let completed_at = (m.status != MessageStatus::Pending).then_some(now);
                let row = sqlx::query_as::<_, MessageRow>(&format!(
                    "INSERT INTO messages (tenant_id, {MESSAGE_COLUMNS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, NULL, NULL, $7, $8) RETURNING {MESSAGE_COLUMNS}"))
                    .bind(t).bind(MessageId::new()).bind(m.conversation_id).bind(m.role.as_str())
                    .bind(&m.content).bind(m.status.as_str()).bind(now).bind(completed_at)
                    .fetch_one(&mut *tx).await?;
                tx.commit().await?;
                row.into_message()
            }

            async fn begin_turn(&self, t: TenantId, turn: &NewTurn) -> StoreResult<TurnStart> {
                let now = Timestamp::now();
                // Writes follow reads here, so SQLite takes the write lock up front.
                let mut tx = self.tenant_write_tx(t).await?;
                let head = sqlx::query_as::<_, TurnHeadRow>(&format!(
                    "SELECT b.*, w.suspended_at, k.ciphertext AS key_ciphertext, k.nonce AS key_nonce, \
                     k.key_version AS key_version, k.last_four AS key_last_four, k.updated_at AS key_updated_at \
                     FROM (SELECT {BOT_COLUMNS} FROM bots WHERE tenant_id = $1 AND id = $2) b \
                     JOIN workspaces w ON w.id = b.tenant_id \
                     LEFT JOIN provider_keys k ON k.tenant_id = b.tenant_id AND k.provider = $3"))
                    .bind(t).bind(turn.bot).bind(turn.provider.as_str())
                    .fetch_optional(&mut *tx).await?;
                // Returning early drops `tx`, which rolls back: a refused turn stores nothing.
                let Some(mut head) = head else { return Ok(TurnStart::NoBot) };
                if head.suspended_at.is_some() {
                    return Ok(TurnStart::Suspended);
                }
                let touched = sqlx::query("UPDATE conversations SET last_activity_at = $3 WHERE tenant_id = $1 AND id = $2")
                    .bind(t).bind(turn.conversation).bind(now).execute(&mut *tx).await?.rows_affected();
                if touched == 0 {
                    return Ok(TurnStart::NoConversation);
                }
                // UUIDv7: the answer's id sorts after the question's within the same millisecond.
                let (question, answer) = (MessageId::new(), MessageId::new());
                sqlx::query(&format!(
                    "INSERT INTO messages (tenant_id, {MESSAGE_COLUMNS}) VALUES \
                     ($1, $2, $4, $5, $6, $7, NULL, NULL, $10, $10), \
                     ($1, $3, $4, $8, '', $9, NULL, NULL, $10, NULL)"))
                    .bind(t).bind(question).bind(answer).bind(turn.conversation)
                    .bind(MessageRole::User.as_str()).bind(&turn.content).bind(MessageStatus::Complete.as_str())
                    .bind(MessageRole::Assistant.as_str()).bind(MessageStatus::Pending.as_str()).bind(now)
                    .execute(&mut *tx).await?;
                let rows = sqlx::query_as::<_, MessageRow>(&format!(
                    "SELECT {MESSAGE_COLUMNS} FROM messages WHERE tenant_id = $1 AND conversation_id = $2 \
                     AND status IN ($3, $4) AND content <> '' ORDER BY created_at DESC, id DESC LIMIT $5"))
                    .bind(t).bind(turn.conversation)
                    .bind(MessageStatus::Complete.as_str()).bind(MessageStatus::Interrupted.as_str())
                    .bind(i64::from(turn.context.max(1)))
                    .fetch_all(&mut *tx).await?;
                tx.commit().await?;
                let context = rows.into_iter().rev().map(MessageRow::into_message).collect::<StoreResult<Vec<_>>>()?;
                let key = head.key(turn.provider);
                Ok(TurnStart::Started(Box::new(Turn {
                    bot: head.bot.into_bot()?,
                    question,
                    answer,
                    context,
                    key,
                })))
            }

            async fn finish_message(&self, t: TenantId, id: MessageId, f: &FinishedMessage) -> StoreResult<()> {
                let mut tx = self.tenant_tx(t).await?;
                let n = sqlx::query(
                    "UPDATE messages SET content = $3, status = $4, prompt_tokens = $5, completion_tokens = $6, \
                     completed_at = $7 WHERE tenant_id = $1 AND id = $2")
                    .bind(t).bind(id).bind(&f.content).bind(f.status.as_str())
                    .bind(f.usage.prompt_tokens).bind(f.usage.completion_tokens).bind(Timestamp::now())
                    .execute(&mut *tx).await?.rows_affected();
                tx.commit().await?;
                if n == 0 { Err(StoreError::NotFound) } else { Ok(()) }
            }

            async fn messages(&self, t: TenantId, conversation: ConversationId) -> StoreResult<Vec<Message>> {
                let mut tx = self.tenant_tx(t).await?;
                let rows = sqlx::query_as::<_, MessageRow>(&format!(
                    "SELECT {MESSAGE_COLUMNS} FROM messages WHERE tenant_id = $1 AND conversation_id = $2 \
                     ORDER BY created_at, id"))
                    .bind(t).bind(conversation).fetch_all(&mut *tx).await?;
                tx.commit().await?;
                rows.into_iter().map(MessageRow::into_message).collect()
            }

            async fn add_attachment(&self, t: TenantId, a: &NewAttachment) -> StoreResult<Attachment> {
                let mut tx = self.tenant_tx(t).await?;
                let row = sqlx::query_as::<_, AttachmentRow>(
                    "INSERT INTO attachments (tenant_id, id, conversation_id, message_id, file_name, content_type, \
                     size_bytes, sha256, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                     RETURNING id, conversation_id, message_id, file_name, content_type, size_bytes, sha256, created_at")
                    .bind(t).bind(AttachmentId::new()).bind(a.conversation_id).bind(a.message_id)
                    .bind(&a.file_name).bind(&a.content_type).bind(a.size_bytes).bind(&a.sha256).bind(Timestamp::now())
                    .fetch_one(&mut *tx).await?;
                tx.commit().await?;
                Ok(row.into())
            }

            async fn attachments(&self, t: TenantId, conversation: ConversationId) -> StoreResult<Vec<Attachment>> {
                let mut tx = self.tenant_tx(t).await?;
                let rows = sqlx::query_as::<_, AttachmentRow>(
                    "SELECT id, conversation_id, message_id, file_name, content_type, size_bytes, sha256, created_at \
                     FROM attachments WHERE tenant_id = $1 AND conversation_id = $2 ORDER BY created_at, id")
                    .bind(t).bind(conversation).fetch_all(&mut *tx).await?;
                tx.commit().await?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            async fn hit_rate_limits(&self, hits: &[RateLimitHit]) -> StoreResult<Vec<i64>> {
                if hits.is_empty() {
                    return Ok(Vec::new());
                }
                let sql = rate_limit_upsert(hits.len());
                let mut q = sqlx::query_as::<_, (Vec<u8>, i32)>(&sql);
                for h in hits {
                    q = q.bind(&h.key_hash).bind(h.window_start).bind(h.expires_at);
                }
                let rows = q.fetch_all(self.counter_pool()).await?;
                hits.iter()
                    .map(|h| {
                        rows.iter()
                            .find(|(k, _)| *k == h.key_hash)
                            .map(|(_, n)| i64::from(*n))
                            .ok_or(StoreError::NotFound)
                    })
                    .collect()
            }

            async fn purge_rate_limits(&self, now: Timestamp) -> StoreResult<u64> {
                let mut tx = self.global_tx().await?;
                let n = sqlx::query("DELETE FROM rate_limits WHERE expires_at < $1")
                    .bind(now).execute(&mut *tx).await?.rows_affected();
                tx.commit().await?;
                Ok(n)
            }

            async fn append_audit(&self, t: TenantId, e: &NewAuditEntry) -> StoreResult<()> {
                let mut tx = self.tenant_tx(t).await?;
                sqlx::query("INSERT INTO audit_log (tenant_id, id, actor, action, target, details, created_at) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7)")
                    .bind(t).bind(AuditId::new()).bind(e.actor).bind(&e.action).bind(&e.target)
                    .bind(e.details.to_string()).bind(Timestamp::now())
                    .execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn audit_log(&self, t: TenantId, limit: u32) -> StoreResult<Vec<AuditEntry>> {
                let mut tx = self.tenant_tx(t).await?;
                let rows = sqlx::query_as::<_, AuditRow>(
                    "SELECT id, actor, action, target, details, created_at FROM audit_log \
                     WHERE tenant_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2")
                    .bind(t).bind(i64::from(limit.clamp(1, 1000))).fetch_all(&mut *tx).await?;
                tx.commit().await?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            // -- data lifecycle --

            async fn try_lock_job(&self, job: $crate::storage::Job) -> StoreResult<Option<$crate::storage::JobLock>> {
                self.job_lock(job).await
            }

            async fn purge_expired(
                &self,
                t: TenantId,
                bot: BotId,
                cutoff: Timestamp,
                limits: $crate::storage::PurgeLimits,
            ) -> StoreResult<$crate::storage::PurgeCounts> {
                let rows = i64::from(limits.rows.max(1));
                let chunk = i64::from(limits.conversations.max(1));
                let mut tx = self.tenant_tx(t).await?;
                let messages = sqlx::query(&format!(
                    "DELETE FROM messages WHERE tenant_id = $1 AND id IN (\
                     SELECT id FROM messages WHERE tenant_id = $1 AND conversation_id IN ({EXPIRED_CHUNK}) LIMIT $5)"))
                    .bind(t).bind(bot).bind(cutoff).bind(chunk).bind(rows)
                    .execute(&mut *tx).await?.rows_affected();
                let room = rows - messages as i64;
                let attachments = if room > 0 {
                    sqlx::query(&format!(
                        "DELETE FROM attachments WHERE tenant_id = $1 AND id IN (\
                         SELECT id FROM attachments WHERE tenant_id = $1 AND conversation_id IN ({EXPIRED_CHUNK}) LIMIT $5)"))
                        .bind(t).bind(bot).bind(cutoff).bind(chunk).bind(room)
                        .execute(&mut *tx).await?.rows_affected()
                } else {
                    0
                };
                // Only once the chunk's messages and attachments are all gone (neither limit
                // was reached) are its conversations deleted, so the cascade adds no rows
                // beyond the budget (except messages written concurrently, which it takes too).
                let conversations = if room > 0 && (attachments as i64) < room {
                    sqlx::query(&format!(
                        "DELETE FROM conversations WHERE tenant_id = $1 AND id IN ({EXPIRED_CHUNK})"))
                        .bind(t).bind(bot).bind(cutoff).bind(chunk)
                        .execute(&mut *tx).await?.rows_affected()
                } else {
                    0
                };
                tx.commit().await?;
                Ok($crate::storage::PurgeCounts { conversations, messages, attachments })
            }

            async fn suspended_at(&self, t: TenantId) -> StoreResult<Option<Timestamp>> {
                let mut tx = self.tenant_tx(t).await?;
                let at: Option<Option<Timestamp>> = sqlx::query_scalar("SELECT suspended_at FROM workspaces WHERE id = $1")
                    .bind(t).fetch_optional(&mut *tx).await?;
                tx.commit().await?;
                Ok(at.flatten())
            }

            async fn set_suspended(&self, t: TenantId, at: Option<Timestamp>) -> StoreResult<bool> {
                let mut tx = self.tenant_tx(t).await?;
                let n = sqlx::query("UPDATE workspaces SET suspended_at = $2 WHERE id = $1")
                    .bind(t).bind(at).execute(&mut *tx).await?.rows_affected();
                tx.commit().await?;
                Ok(n > 0)
            }

            async fn workspace_usage(&self, t: TenantId) -> StoreResult<$crate::storage::WorkspaceUsage> {
                let mut tx = self.tenant_tx(t).await?;
                let row = sqlx::query_as::<_, UsageRow>(
                    "SELECT \
                       (SELECT count(*) FROM memberships WHERE tenant_id = $1) AS members, \
                       (SELECT count(*) FROM bots WHERE tenant_id = $1) AS bots, \
                       (SELECT count(*) FROM conversations WHERE tenant_id = $1) AS conversations, \
                       (SELECT count(*) FROM messages WHERE tenant_id = $1) AS messages, \
                       (SELECT count(*) FROM attachments WHERE tenant_id = $1) AS attachments, \
                       (SELECT CAST(COALESCE(sum(prompt_tokens), 0) AS BIGINT) FROM messages WHERE tenant_id = $1) AS prompt_tokens, \
                       (SELECT CAST(COALESCE(sum(completion_tokens), 0) AS BIGINT) FROM messages WHERE tenant_id = $1) AS completion_tokens, \
                       (SELECT max(last_activity_at) FROM conversations WHERE tenant_id = $1) AS last_activity_at")
                    .bind(t).fetch_one(&mut *tx).await?;
                tx.commit().await?;
                Ok(row.into())
            }

            async fn last_operator_audit(&self) -> StoreResult<Option<$crate::storage::OperatorAuditEntry>> {
                let mut tx = self.global_tx().await?;
                let row = sqlx::query_as::<_, $crate::storage::OperatorAuditEntry>(&format!(
                    "SELECT {OPERATOR_AUDIT_COLUMNS} FROM operator_audit ORDER BY seq DESC LIMIT 1"))
                    .fetch_optional(&mut *tx).await?;
                tx.commit().await?;
                Ok(row)
            }

            async fn insert_operator_audit(&self, e: &$crate::storage::OperatorAuditEntry) -> StoreResult<()> {
                let mut tx = self.global_tx().await?;
                sqlx::query(&format!(
                    "INSERT INTO operator_audit ({OPERATOR_AUDIT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"))
                    .bind(e.seq).bind(e.created_at).bind(&e.actor).bind(&e.action).bind(&e.target)
                    .bind(&e.details).bind(&e.prev_hash).bind(&e.hash)
                    .execute(&mut *tx).await.map_err(conflict_on_unique("operator audit sequence number taken"))?;
                tx.commit().await?;
                Ok(())
            }

            async fn operator_audit(&self) -> StoreResult<Vec<$crate::storage::OperatorAuditEntry>> {
                let mut tx = self.global_tx().await?;
                let rows = sqlx::query_as::<_, $crate::storage::OperatorAuditEntry>(&format!(
                    "SELECT {OPERATOR_AUDIT_COLUMNS} FROM operator_audit ORDER BY seq"))
                    .fetch_all(&mut *tx).await?;
                tx.commit().await?;
                Ok(rows)
            }
        }
    };
}

pub(super) use impl_store;
