//! Conversations between a bot and an end user, and their attachments' metadata. Messages
//! and the chat turn are in `messages.rs`.

use super::codec::{parse_role, parse_status};
use super::error::StoreResult;
use super::sql::TenantTx;
use super::store::Store;
use crate::model::{Attachment, AttachmentId, BotId, Conversation, ConversationId};
use crate::model::{ConversationQuery, MessageId, NewAttachment, NewConversation, TenantId};
use crate::model::{ExportedMessage, InboxEntry, InboxQuery, reference_of};
use crate::model::{MessageRole, MessageStatus, NewAttachmentText, Scoped, Timestamp, WidgetScope};

const CONVERSATION_COLUMNS: &str =
    "tenant_id, id, bot_id, origin, resume_hash, created_at, last_activity_at";
const ATTACHMENT_COLUMNS: &str =
    "id, conversation_id, message_id, file_name, content_type, size_bytes, sha256, created_at";

#[derive(sqlx::FromRow)]
struct ConversationRow {
    tenant_id: TenantId,
    id: ConversationId,
    bot_id: BotId,
    origin: String,
    resume_hash: Vec<u8>,
    created_at: Timestamp,
    last_activity_at: Timestamp,
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
struct AttachmentRow {
    id: AttachmentId,
    conversation_id: ConversationId,
    message_id: Option<MessageId>,
    file_name: String,
    content_type: String,
    size_bytes: i64,
    sha256: Vec<u8>,
    created_at: Timestamp,
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

/// The workspace's suspension and whether the scope's conversation exists for its bot.
#[derive(sqlx::FromRow)]
struct ScopeRow {
    suspended_at: Option<Timestamp>,
    found: i64,
}

/// Whether a widget token's conversation may be used, read inside the request's own
/// transaction: a suspended workspace first (whenever the token was issued), then a
/// conversation with this id *of this bot*.
pub(super) async fn open_scope(tx: &mut TenantTx, s: WidgetScope) -> StoreResult<Scoped<()>> {
    let row: Option<ScopeRow> = tx
        .query_as(
            "SELECT w.suspended_at, (SELECT count(*) FROM conversations c \
             WHERE c.tenant_id = $1 AND c.id = $2 AND c.bot_id = $3) AS found \
             FROM workspaces w WHERE w.id = $1",
        )
        .bind(s.conversation)
        .bind(s.bot)
        .fetch_optional()
        .await?;
    Ok(match row {
        Some(r) if r.suspended_at.is_some() => Scoped::Suspended,
        Some(r) if r.found > 0 => Scoped::Open(()),
        _ => Scoped::NoConversation,
    })
}

/// Stores the conversation a widget token names but that was not stored yet (a
/// conversation starts with its first message, not with the session): with the token's id,
/// bot, origin and resume hash, if the bot still exists; an id already taken (by this
/// conversation or any other) is left as it is, so the scope check that follows decides.
pub(super) async fn start_if_absent(
    tx: &mut TenantTx,
    id: ConversationId,
    c: &NewConversation,
    now: Timestamp,
) -> StoreResult<()> {
    tx.query(&format!(
        "INSERT INTO conversations ({CONVERSATION_COLUMNS}) \
         SELECT b.tenant_id, $2, b.id, $4, $5, $6, $6 FROM bots b \
         WHERE b.tenant_id = $1 AND b.id = $3 ON CONFLICT DO NOTHING"
    ))
    .bind(id)
    .bind(c.bot_id)
    .bind(&c.origin)
    .bind(&c.resume_hash)
    .bind(now)
    .execute()
    .await?;
    Ok(())
}

async fn insert_attachment(
    tx: &mut TenantTx,
    a: &NewAttachment,
    now: Timestamp,
) -> StoreResult<Attachment> {
    let row: AttachmentRow = tx
        .query_as(&format!(
            "INSERT INTO attachments (tenant_id, {ATTACHMENT_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {ATTACHMENT_COLUMNS}"
        ))
        .bind(AttachmentId::new())
        .bind(a.conversation_id)
        .bind(a.message_id)
        .bind(&a.file_name)
        .bind(&a.content_type)
        .bind(a.size_bytes)
        .bind(&a.sha256)
        .bind(now)
        .fetch_one()
        .await?;
    Ok(row.into())
}

impl Store {
    /// Whether a widget token's conversation may be used now (see [`Scoped`]).
    pub async fn widget_scope(&self, t: TenantId, s: WidgetScope) -> StoreResult<Scoped<()>> {
        self.in_tenant(t, async |tx| open_scope(tx, s).await).await
    }

    /// Like [`Store::widget_scope`], first storing the token's not-yet-stored conversation
    /// (`start`) unless the workspace is suspended.
    pub async fn widget_scope_starting(
        &self,
        t: TenantId,
        s: WidgetScope,
        start: Option<&NewConversation>,
    ) -> StoreResult<Scoped<()>> {
        let now = Timestamp::now();
        self.in_tenant(t, async |tx| {
            let open = open_scope(tx, s).await?;
            match (open, start) {
                (Scoped::NoConversation, Some(c)) => {
                    start_if_absent(tx, s.conversation, c, now).await?;
                    open_scope(tx, s).await
                }
                (open, _) => Ok(open),
            }
        })
        .await
    }

    /// The end user clears their conversation: deleted only if it is the token's bot's and
    /// the workspace is not suspended.
    pub async fn widget_clear(&self, t: TenantId, s: WidgetScope) -> StoreResult<Scoped<()>> {
        self.in_tenant(t, async |tx| {
            let open = open_scope(tx, s).await?;
            if open == Scoped::Open(()) {
                tx.query(
                    "DELETE FROM conversations WHERE tenant_id = $1 AND id = $2 AND bot_id = $3",
                )
                .bind(s.conversation)
                .bind(s.bot)
                .execute()
                .await?;
            }
            Ok(open)
        })
        .await
    }

    /// Stores an attachment that OCR has read, with the user's message holding its text,
    /// in one transaction (so a failed OCR, which never gets here, stores nothing).
    pub async fn widget_attach(
        &self,
        t: TenantId,
        s: WidgetScope,
        a: &NewAttachmentText,
    ) -> StoreResult<Scoped<Attachment>> {
        let now = Timestamp::now();
        self.in_tenant(t, async |tx| {
            if let Some(refused) = open_scope(tx, s).await?.refusal() {
                return Ok(refused);
            }
            tx.query(
                "UPDATE conversations SET last_activity_at = $3 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(s.conversation)
            .bind(now)
            .execute()
            .await?;
            let message = MessageId::new();
            tx.query(
                "INSERT INTO messages (tenant_id, id, conversation_id, role, content, status, \
                 created_at, completed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
            )
            .bind(message)
            .bind(s.conversation)
            .bind(MessageRole::User.as_str())
            .bind(&a.content)
            .bind(MessageStatus::Complete.as_str())
            .bind(now)
            .execute()
            .await?;
            let attachment = NewAttachment {
                conversation_id: s.conversation,
                message_id: Some(message),
                file_name: a.file_name.clone(),
                content_type: a.content_type.clone(),
                size_bytes: a.size_bytes,
                sha256: a.sha256.clone(),
            };
            Ok(Scoped::Open(insert_attachment(tx, &attachment, now).await?))
        })
        .await
    }

    pub async fn create_conversation(
        &self,
        t: TenantId,
        c: &NewConversation,
    ) -> StoreResult<Conversation> {
        let now = Timestamp::now();
        self.in_tenant(t, async |tx| {
            let row: ConversationRow = tx
                .query_as(&format!(
                    "INSERT INTO conversations ({CONVERSATION_COLUMNS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING {CONVERSATION_COLUMNS}"
                ))
                .bind(ConversationId::new())
                .bind(c.bot_id)
                .bind(&c.origin)
                .bind(&c.resume_hash)
                .bind(now)
                .fetch_one()
                .await?;
            Ok(row.into())
        })
        .await
    }

    pub async fn conversation(
        &self,
        t: TenantId,
        id: ConversationId,
    ) -> StoreResult<Option<Conversation>> {
        self.in_tenant(t, async |tx| {
            let row: Option<ConversationRow> = tx
                .query_as(&format!(
                    "SELECT {CONVERSATION_COLUMNS} FROM conversations \
                     WHERE tenant_id = $1 AND id = $2"
                ))
                .bind(id)
                .fetch_optional()
                .await?;
            Ok(row.map(Into::into))
        })
        .await
    }

    /// The conversation of `bot` whose resume secret hashes to `resume_hash`.
    pub async fn conversation_by_resume(
        &self,
        t: TenantId,
        bot: BotId,
        resume_hash: &[u8],
    ) -> StoreResult<Option<Conversation>> {
        self.in_tenant(t, async |tx| {
            let row: Option<ConversationRow> = tx
                .query_as(&format!(
                    "SELECT {CONVERSATION_COLUMNS} FROM conversations \
                     WHERE tenant_id = $1 AND bot_id = $2 AND resume_hash = $3"
                ))
                .bind(bot)
                .bind(resume_hash)
                .fetch_optional()
                .await?;
            Ok(row.map(Into::into))
        })
        .await
    }

    pub async fn conversations(
        &self,
        t: TenantId,
        q: &ConversationQuery,
    ) -> StoreResult<Vec<Conversation>> {
        self.in_tenant(t, async |tx| {
            let rows: Vec<ConversationRow> = tx
                .query_as(&format!(
                    "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE tenant_id = $1 \
                     AND ($2 IS NULL OR bot_id = $2) AND ($3 IS NULL OR last_activity_at < $3) \
                     ORDER BY last_activity_at DESC, id DESC LIMIT $4"
                ))
                .bind(q.bot_id)
                .bind(q.before)
                .bind(i64::from(q.limit.clamp(1, 500)))
                .fetch_all()
                .await?;
            Ok(rows.into_iter().map(Into::into).collect())
        })
        .await
    }

    pub async fn delete_conversation(&self, t: TenantId, id: ConversationId) -> StoreResult<bool> {
        self.in_tenant(t, async |tx| {
            let n = tx
                .query("DELETE FROM conversations WHERE tenant_id = $1 AND id = $2")
                .bind(id)
                .execute()
                .await?;
            Ok(n > 0)
        })
        .await
    }

    /// Deletes a bot's conversations last active before `cutoff`; returns how many.
    pub async fn delete_conversations_before(
        &self,
        t: TenantId,
        bot: BotId,
        cutoff: Timestamp,
    ) -> StoreResult<u64> {
        self.in_tenant(t, async |tx| {
            Ok(tx
                .query(
                    "DELETE FROM conversations \
                     WHERE tenant_id = $1 AND bot_id = $2 AND last_activity_at < $3",
                )
                .bind(bot)
                .bind(cutoff)
                .execute()
                .await?)
        })
        .await
    }

    /// Deletes every conversation of the tenant (optionally of one bot); returns how many.
    pub async fn wipe_conversations(&self, t: TenantId, bot: Option<BotId>) -> StoreResult<u64> {
        self.in_tenant(t, async |tx| {
            Ok(tx
                .query("DELETE FROM conversations WHERE tenant_id = $1 AND ($2 IS NULL OR bot_id = $2)")
                .bind(bot)
                .execute()
                .await?)
        })
        .await
    }

    pub async fn add_attachment(&self, t: TenantId, a: &NewAttachment) -> StoreResult<Attachment> {
        let now = Timestamp::now();
        self.in_tenant(t, async |tx| insert_attachment(tx, a, now).await)
            .await
    }

    pub async fn attachments(
        &self,
        t: TenantId,
        conversation: ConversationId,
    ) -> StoreResult<Vec<Attachment>> {
        self.in_tenant(t, async |tx| {
            let rows: Vec<AttachmentRow> = tx
                .query_as(&format!(
                    "SELECT {ATTACHMENT_COLUMNS} FROM attachments \
                     WHERE tenant_id = $1 AND conversation_id = $2 ORDER BY created_at, id"
                ))
                .bind(conversation)
                .fetch_all()
                .await?;
            Ok(rows.into_iter().map(Into::into).collect())
        })
        .await
    }
}

// --- The chat-log inbox and the streamed export (site/logs.rs, site/log_export.rs) ---

/// A value the inbox query binds, in placeholder order.
enum InboxParam {
    Bot(BotId),
    At(Timestamp),
    Id(ConversationId),
    Text(String),
    Bytes(Vec<u8>),
    Int(i64),
}

/// Adds `p` to the parameters and returns its placeholder (`$1` is the tenant).
fn placeholder(p: InboxParam, params: &mut Vec<InboxParam>) -> String {
    params.push(p);
    format!("${}", params.len() + 1)
}

#[derive(sqlx::FromRow)]
struct InboxRow {
    #[sqlx(flatten)]
    conversation: ConversationRow,
    preview: Option<String>,
    message_count: i64,
}

#[derive(sqlx::FromRow)]
struct ExportRow {
    conversation_id: ConversationId,
    bot_id: BotId,
    origin: String,
    message_id: MessageId,
    role: String,
    status: String,
    created_at: Timestamp,
    content: String,
}

/// Longest preview of the first question, in characters.
const PREVIEW_CHARS: i64 = 160;

impl Store {
    /// The inbox: conversations with at least one message, last activity first, filtered
    /// and paged by the keyset (last_activity_at, id) — no OFFSET, so page 2,000 costs what
    /// page 1 does (index `conversations_inbox`). Full-text search is PostgreSQL's
    /// `to_tsvector('simple', content)` (GIN index `messages_search`) and a case-insensitive
    /// substring match on SQLite; a reference matches the last five bytes of the id.
    pub async fn inbox(&self, t: TenantId, q: &InboxQuery) -> StoreResult<Vec<InboxEntry>> {
        let postgres = self.backend() == super::store::Backend::Postgres;
        let mut conditions = vec![
            "EXISTS (SELECT 1 FROM messages e WHERE e.tenant_id = $1 AND e.conversation_id = c.id)"
                .to_owned(),
        ];
        let mut params = Vec::new();
        let param = placeholder;
        if let Some(b) = q.bot_id {
            let n = param(InboxParam::Bot(b), &mut params);
            conditions.push(format!("c.bot_id = {n}"));
        }
        if let Some(from) = q.active_from {
            let n = param(InboxParam::At(from), &mut params);
            conditions.push(format!("c.last_activity_at >= {n}"));
        }
        if let Some(until) = q.active_until {
            let n = param(InboxParam::At(until), &mut params);
            conditions.push(format!("c.last_activity_at < {n}"));
        }
        if q.unanswered {
            conditions.push(
                "NOT EXISTS (SELECT 1 FROM messages a WHERE a.tenant_id = $1 \
                 AND a.conversation_id = c.id AND a.role = 'assistant' AND a.status = 'complete')"
                    .to_owned(),
            );
        }
        // Words and a reference together (a bare 8-letter query may be either) match
        // conversations that have either.
        let mut found_by = Vec::new();
        if let Some(words) = q.words.as_deref().map(str::trim).filter(|w| !w.is_empty()) {
            let n = param(InboxParam::Text(words.to_owned()), &mut params);
            let matches = if postgres {
                format!("to_tsvector('simple', s.content) @@ plainto_tsquery('simple', {n})")
            } else {
                format!("instr(lower(s.content), lower({n})) > 0")
            };
            found_by.push(format!(
                "c.id IN (SELECT s.conversation_id FROM messages s \
                 WHERE s.tenant_id = $1 AND {matches})"
            ));
        }
        if let Some(r) = q.reference {
            let n = param(InboxParam::Bytes(r.to_vec()), &mut params);
            let tail = if postgres {
                "substring(uuid_send(c.id) from 12 for 5)"
            } else {
                "substr(c.id, 12, 5)"
            };
            found_by.push(format!("{tail} = {n}"));
        }
        if !found_by.is_empty() {
            conditions.push(format!("({})", found_by.join(" OR ")));
        }
        if let Some((at, id)) = q.after {
            let a = param(InboxParam::At(at), &mut params);
            let i = param(InboxParam::Id(id), &mut params);
            conditions.push(format!("(c.last_activity_at, c.id) < ({a}, {i})"));
        }
        let limit = param(
            InboxParam::Int(i64::from(q.limit.clamp(1, 500))),
            &mut params,
        );
        let columns = CONVERSATION_COLUMNS
            .split(", ")
            .map(|c| format!("c.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT {columns}, \
             (SELECT substr(p.content, 1, {PREVIEW_CHARS}) FROM messages p WHERE p.tenant_id = $1 \
              AND p.conversation_id = c.id AND p.role = 'user' ORDER BY p.created_at, p.id LIMIT 1) \
              AS preview, \
             (SELECT count(*) FROM messages m WHERE m.tenant_id = $1 AND m.conversation_id = c.id) \
              AS message_count \
             FROM conversations c WHERE c.tenant_id = $1 AND {} \
             ORDER BY c.last_activity_at DESC, c.id DESC LIMIT {limit}",
            conditions.join(" AND ")
        );
        self.in_tenant(t, async |tx| {
            let mut query = tx.query_as::<InboxRow>(&sql);
            for p in params {
                query = match p {
                    InboxParam::Bot(b) => query.bind(b),
                    InboxParam::At(at) => query.bind(at),
                    InboxParam::Id(id) => query.bind(id),
                    InboxParam::Text(s) => query.bind(s),
                    InboxParam::Bytes(b) => query.bind(b),
                    InboxParam::Int(n) => query.bind(n),
                };
            }
            let rows = query.fetch_all().await?;
            Ok(rows
                .into_iter()
                .map(|r| InboxEntry {
                    conversation: r.conversation.into(),
                    preview: r.preview.unwrap_or_default(),
                    message_count: r.message_count,
                })
                .collect())
        })
        .await
    }

    /// One page of the workspace's messages for the log export, in id order (UUIDv7: the
    /// order they were written) after `after`: the caller fetches page after page, so the
    /// export never holds more than one page.
    pub async fn export_messages(
        &self,
        t: TenantId,
        after: Option<MessageId>,
        limit: u32,
    ) -> StoreResult<Vec<ExportedMessage>> {
        // Two texts rather than `$2 IS NULL OR`, so each page is an index range scan on
        // the primary key (tenant_id, id) even under a generic plan.
        let sql = format!(
            "SELECT m.conversation_id, c.bot_id, c.origin, m.id AS message_id, m.role, \
             m.status, m.created_at, m.content \
             FROM messages m JOIN conversations c \
             ON c.tenant_id = m.tenant_id AND c.id = m.conversation_id \
             WHERE m.tenant_id = $1 {} ORDER BY m.id LIMIT $2",
            if after.is_some() { "AND m.id > $3" } else { "" }
        );
        self.in_tenant(t, async |tx| {
            let mut query = tx
                .query_as::<ExportRow>(&sql)
                .bind(i64::from(limit.clamp(1, 5000)));
            if let Some(a) = after {
                query = query.bind(a);
            }
            let rows = query.fetch_all().await?;
            rows.into_iter()
                .map(|r| {
                    Ok(ExportedMessage {
                        conversation_reference: reference_of(r.conversation_id),
                        conversation_id: r.conversation_id,
                        bot_id: r.bot_id,
                        origin: r.origin,
                        message_id: r.message_id,
                        role: parse_role(&r.role)?,
                        status: parse_status(&r.status)?,
                        created_at: r.created_at,
                        content: r.content,
                    })
                })
                .collect()
        })
        .await
    }
}
