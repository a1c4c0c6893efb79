//! Messages and the two units of work of a chat turn: `begin_turn` before the upstream
//! call, `finish_message` after it.

use super::bots::{BOT_COLUMNS, BotRow};
use super::codec::{parse_role, parse_status};
use super::conversations::{open_scope, start_if_absent};
use super::error::{StoreError, StoreResult, corrupt};
use super::sql::TenantTx;
use super::store::Store;
use crate::model::WidgetScope;
use crate::model::{BotId, Rating, RatingCounts, Scoped, TenantId, Timestamp, Turn, TurnStart};
use crate::model::{ConversationId, FinishedMessage, Message, MessageId, MessageRole};
use crate::model::{MessageStatus, NewMessage, NewTurn, Provider, ProviderKey, SealedSecret};

const MESSAGE_COLUMNS: &str = "id, conversation_id, role, content, status, prompt_tokens, \
     completion_tokens, created_at, completed_at";

#[derive(sqlx::FromRow)]
struct MessageRow {
    id: MessageId,
    conversation_id: ConversationId,
    role: String,
    content: String,
    status: String,
    prompt_tokens: Option<i64>,
    completion_tokens: Option<i64>,
    created_at: Timestamp,
    completed_at: Option<Timestamp>,
}

impl MessageRow {
    fn into_message(self) -> StoreResult<Message> {
        let role = parse_role(&self.role)?;
        let status = parse_status(&self.status)?;
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

/// The bot of a turn with its workspace's suspension and the tenant's provider key.
#[derive(sqlx::FromRow)]
struct TurnHeadRow {
    #[sqlx(flatten)]
    bot: BotRow,
    suspended_at: Option<Timestamp>,
    key_ciphertext: Option<Vec<u8>>,
    key_nonce: Option<Vec<u8>>,
    key_version: Option<i32>,
    key_last_four: Option<String>,
    key_updated_at: Option<Timestamp>,
}

impl TurnHeadRow {
    fn key(&mut self, provider: Provider) -> Option<ProviderKey> {
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

impl Store {
    pub async fn append_message(&self, t: TenantId, m: &NewMessage) -> StoreResult<Message> {
        let now = Timestamp::now();
        let row: MessageRow = self
            .in_tenant(t, async |tx| {
                let touched = tx
                    .query(
                        "UPDATE conversations SET last_activity_at = $3 \
                         WHERE tenant_id = $1 AND id = $2",
                    )
                    .bind(m.conversation_id)
                    .bind(now)
                    .execute()
                    .await?;
                if touched == 0 {
                    return Err(StoreError::NotFound);
                }
                let completed_at = (m.status != MessageStatus::Pending).then_some(now);
                Ok(tx
                    .query_as(&format!(
                        "INSERT INTO messages (tenant_id, {MESSAGE_COLUMNS}) \
                         VALUES ($1, $2, $3, $4, $5, $6, NULL, NULL, $7, $8) \
                         RETURNING {MESSAGE_COLUMNS}"
                    ))
                    .bind(MessageId::new())
                    .bind(m.conversation_id)
                    .bind(m.role.as_str())
                    .bind(&m.content)
                    .bind(m.status.as_str())
                    .bind(now)
                    .bind(completed_at)
                    .fetch_one()
                    .await?)
            })
            .await?;
        row.into_message()
    }

    /// Starts a chat turn in one transaction: refuses a suspended workspace or a deleted
    /// bot, stores the user's message and an empty `pending` answer in the conversation, and
    /// reads the bot, the latest context and the tenant's provider key. This is the whole
    /// database cost of a turn before its upstream call.
    pub async fn begin_turn(&self, t: TenantId, turn: &NewTurn) -> StoreResult<TurnStart> {
        let now = Timestamp::now();
        // Writes follow reads here, so SQLite takes the write lock up front.
        let mut tx = self.tenant_write_tx(t).await?;
        let head: Option<TurnHeadRow> = tx
            .query_as(&format!(
                "SELECT b.*, w.suspended_at, k.ciphertext AS key_ciphertext, \
                 k.nonce AS key_nonce, k.key_version AS key_version, \
                 k.last_four AS key_last_four, k.updated_at AS key_updated_at \
                 FROM (SELECT {BOT_COLUMNS} FROM bots WHERE tenant_id = $1 AND id = $2) b \
                 JOIN workspaces w ON w.id = b.tenant_id \
                 LEFT JOIN provider_keys k ON k.tenant_id = b.tenant_id AND k.provider = $3"
            ))
            .bind(turn.bot)
            .bind(turn.provider.as_str())
            .fetch_optional()
            .await?;
        // Returning early drops `tx`, which rolls back: a refused turn stores nothing.
        let Some(head) = head else {
            return Ok(TurnStart::NoBot);
        };
        if head.suspended_at.is_some() {
            return Ok(TurnStart::Suspended);
        }
        // The first message of a conversation stores it (a session start stores nothing).
        if let Some(start) = &turn.start {
            start_if_absent(&mut tx, turn.conversation, start, now).await?;
        }
        // Only a conversation of the turn's bot: a token names both.
        let touched = tx
            .query(
                "UPDATE conversations SET last_activity_at = $3 \
                 WHERE tenant_id = $1 AND id = $2 AND bot_id = $4",
            )
            .bind(turn.conversation)
            .bind(now)
            .bind(turn.bot)
            .execute()
            .await?;
        if touched == 0 {
            return Ok(TurnStart::NoConversation);
        }
        if let Some(q) = turn.retry_of {
            // The question must be this conversation's, with the same text, and nothing with
            // content may have been stored since (only its failed answers).
            let retryable: Option<i64> = tx
                .query_scalar(
                    "SELECT count(*) FROM messages q WHERE q.tenant_id = $1 \
                     AND q.conversation_id = $2 AND q.id = $3 AND q.role = $4 AND q.content = $5 \
                     AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.tenant_id = $1 \
                     AND m.conversation_id = $2 AND m.id <> q.id AND m.content <> '' \
                     AND m.created_at >= q.created_at)",
                )
                .bind(turn.conversation)
                .bind(q)
                .bind(MessageRole::User.as_str())
                .bind(&turn.content)
                .fetch_optional()
                .await?;
            if retryable.unwrap_or(0) == 0 {
                return Ok(TurnStart::NotRetryable);
            }
            let answer = MessageId::new();
            tx.query(&format!(
                "INSERT INTO messages (tenant_id, {MESSAGE_COLUMNS}) VALUES \
                 ($1, $2, $3, $4, '', $5, NULL, NULL, $6, NULL)"
            ))
            .bind(answer)
            .bind(turn.conversation)
            .bind(MessageRole::Assistant.as_str())
            .bind(MessageStatus::Pending.as_str())
            .bind(now)
            .execute()
            .await?;
            return finish_begin(tx, head, turn, q, answer).await;
        }
        // UUIDv7: the answer's id sorts after the question's within the same millisecond.
        let (question, answer) = (MessageId::new(), MessageId::new());
        tx.query(&format!(
            "INSERT INTO messages (tenant_id, {MESSAGE_COLUMNS}) VALUES \
             ($1, $2, $4, $5, $6, $7, NULL, NULL, $10, $10), \
             ($1, $3, $4, $8, '', $9, NULL, NULL, $10, NULL)"
        ))
        .bind(question)
        .bind(answer)
        .bind(turn.conversation)
        .bind(MessageRole::User.as_str())
        .bind(&turn.content)
        .bind(MessageStatus::Complete.as_str())
        .bind(MessageRole::Assistant.as_str())
        .bind(MessageStatus::Pending.as_str())
        .bind(now)
        .execute()
        .await?;
        finish_begin(tx, head, turn, question, answer).await
    }

    /// Sets the final content and state of a message that was stored `pending`.
    pub async fn finish_message(
        &self,
        t: TenantId,
        id: MessageId,
        f: &FinishedMessage,
    ) -> StoreResult<()> {
        let n = self
            .in_tenant(t, async |tx| {
                Ok(tx
                    .query(
                        "UPDATE messages SET content = $3, status = $4, prompt_tokens = $5, \
                         completion_tokens = $6, completed_at = $7 \
                         WHERE tenant_id = $1 AND id = $2",
                    )
                    .bind(id)
                    .bind(&f.content)
                    .bind(f.status.as_str())
                    .bind(f.usage.prompt_tokens)
                    .bind(f.usage.completion_tokens)
                    .bind(Timestamp::now())
                    .execute()
                    .await?)
            })
            .await?;
        if n == 0 {
            Err(StoreError::NotFound)
        } else {
            Ok(())
        }
    }

    /// Saves the text streamed so far into a still `pending` answer, and with it the
    /// answer's heartbeat (`saved_at`): one small UPDATE, so a crash loses at most the text
    /// of the last save interval. Returns whether the answer was still pending.
    pub async fn save_partial(
        &self,
        t: TenantId,
        id: MessageId,
        content: &str,
    ) -> StoreResult<bool> {
        let n = self
            .in_tenant(t, async |tx| {
                Ok(tx
                    .query(
                        "UPDATE messages SET content = $3, saved_at = $4 \
                         WHERE tenant_id = $1 AND id = $2 AND status = $5",
                    )
                    .bind(id)
                    .bind(content)
                    .bind(Timestamp::now())
                    .bind(MessageStatus::Pending.as_str())
                    .execute()
                    .await?)
            })
            .await?;
        Ok(n > 0)
    }

    /// Ends the tenant's `pending` answers whose last save (or creation) is before `cutoff`:
    /// the process streaming them is gone. What was saved stays, as `interrupted`; an answer
    /// with no text becomes `failed`, like a turn that failed before its first word.
    /// Returns how many.
    pub async fn interrupt_stale_answers(
        &self,
        t: TenantId,
        cutoff: Timestamp,
    ) -> StoreResult<u64> {
        self.in_tenant(t, async |tx| {
            Ok(tx
                .query(
                    "UPDATE messages SET status = CASE WHEN content = '' THEN $3 ELSE $4 END, \
                     completed_at = $5 \
                     WHERE tenant_id = $1 AND status = $6 AND COALESCE(saved_at, created_at) < $2",
                )
                .bind(cutoff)
                .bind(MessageStatus::Failed.as_str())
                .bind(MessageStatus::Interrupted.as_str())
                .bind(Timestamp::now())
                .bind(MessageStatus::Pending.as_str())
                .execute()
                .await?)
        })
        .await
    }

    /// A widget's history: the messages of the token's conversation, if it is the token's
    /// bot's and the workspace is not suspended.
    pub async fn widget_history(
        &self,
        t: TenantId,
        s: WidgetScope,
    ) -> StoreResult<Scoped<Vec<Message>>> {
        let rows: Scoped<Vec<MessageRow>> = self
            .in_tenant(t, async |tx| {
                if let Some(refused) = open_scope(tx, s).await?.refusal() {
                    return Ok(refused);
                }
                Ok(Scoped::Open(
                    tx.query_as(&format!(
                        "SELECT {MESSAGE_COLUMNS} FROM messages \
                         WHERE tenant_id = $1 AND conversation_id = $2 ORDER BY created_at, id"
                    ))
                    .bind(s.conversation)
                    .fetch_all()
                    .await?,
                ))
            })
            .await?;
        Ok(match rows {
            Scoped::Open(rows) => Scoped::Open(
                rows.into_iter()
                    .map(MessageRow::into_message)
                    .collect::<StoreResult<_>>()?,
            ),
            other => other.map(|_| Vec::new()),
        })
    }

    pub async fn messages(
        &self,
        t: TenantId,
        conversation: ConversationId,
    ) -> StoreResult<Vec<Message>> {
        let rows: Vec<MessageRow> = self
            .in_tenant(t, async |tx| {
                Ok(tx
                    .query_as(&format!(
                        "SELECT {MESSAGE_COLUMNS} FROM messages \
                         WHERE tenant_id = $1 AND conversation_id = $2 ORDER BY created_at, id"
                    ))
                    .bind(conversation)
                    .fetch_all()
                    .await?)
            })
            .await?;
        rows.into_iter().map(MessageRow::into_message).collect()
    }

    /// A visitor rates an answer of the token's conversation (`None` takes the rating
    /// back). `Open(false)`: no such answer in this conversation (a question, a failed or
    /// pending answer, or another conversation's message).
    pub async fn widget_rate(
        &self,
        t: TenantId,
        s: WidgetScope,
        message: MessageId,
        rating: Option<Rating>,
    ) -> StoreResult<Scoped<bool>> {
        self.in_tenant(t, async |tx| {
            if let Some(refused) = open_scope(tx, s).await?.refusal() {
                return Ok(refused);
            }
            let n = tx
                .query(
                    "UPDATE messages SET rating = $4 WHERE tenant_id = $1 AND id = $2 \
                     AND conversation_id = $3 AND role = $5 AND status IN ($6, $7)",
                )
                .bind(message)
                .bind(s.conversation)
                .bind(rating.map(Rating::as_i64))
                .bind(MessageRole::Assistant.as_str())
                .bind(MessageStatus::Complete.as_str())
                .bind(MessageStatus::Interrupted.as_str())
                .execute()
                .await?;
            Ok(Scoped::Open(n > 0))
        })
        .await
    }

    /// The ratings of one conversation's answers, by message.
    pub async fn ratings(
        &self,
        t: TenantId,
        conversation: ConversationId,
    ) -> StoreResult<Vec<(MessageId, Rating)>> {
        self.in_tenant(t, async |tx| {
            let rows: Vec<(MessageId, i64)> = tx
                .query_as(
                    "SELECT id, rating FROM messages WHERE tenant_id = $1 \
                     AND conversation_id = $2 AND rating IS NOT NULL ORDER BY created_at, id",
                )
                .bind(conversation)
                .fetch_all()
                .await?;
            rows.into_iter()
                .map(|(id, r)| {
                    Ok((
                        id,
                        Rating::from_i64(r).ok_or_else(|| corrupt("messages.rating"))?,
                    ))
                })
                .collect()
        })
        .await
    }

    /// How a bot's answers were rated, over its stored conversations.
    pub async fn rating_counts(&self, t: TenantId, bot: BotId) -> StoreResult<RatingCounts> {
        self.in_tenant(t, async |tx| {
            let (up, down): (i64, i64) = tx
                .query_as(
                    "SELECT CAST(COALESCE(sum(CASE WHEN m.rating = 1 THEN 1 ELSE 0 END), 0) AS BIGINT), \
                     CAST(COALESCE(sum(CASE WHEN m.rating = -1 THEN 1 ELSE 0 END), 0) AS BIGINT) \
                     FROM messages m JOIN conversations c \
                     ON c.tenant_id = m.tenant_id AND c.id = m.conversation_id \
                     WHERE m.tenant_id = $1 AND c.bot_id = $2 AND m.rating IS NOT NULL",
                )
                .bind(bot)
                .fetch_one()
                .await?;
            Ok(RatingCounts { up, down })
        })
        .await
    }
}

/// The rest of [`Store::begin_turn`] once the question and the pending answer are stored:
/// read the context, commit, and hand back the turn.
async fn finish_begin(
    mut tx: TenantTx,
    mut head: TurnHeadRow,
    turn: &NewTurn,
    question: MessageId,
    answer: MessageId,
) -> StoreResult<TurnStart> {
    let rows: Vec<MessageRow> = tx
        .query_as(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages \
                 WHERE tenant_id = $1 AND conversation_id = $2 \
                 AND status IN ($3, $4) AND content <> '' \
                 ORDER BY created_at DESC, id DESC LIMIT $5"
        ))
        .bind(turn.conversation)
        .bind(MessageStatus::Complete.as_str())
        .bind(MessageStatus::Interrupted.as_str())
        .bind(i64::from(turn.context.max(1)))
        .fetch_all()
        .await?;
    tx.commit().await?;
    let context = rows
        .into_iter()
        .rev()
        .map(MessageRow::into_message)
        .collect::<StoreResult<Vec<_>>>()?;
    let key = head.key(turn.provider);
    Ok(TurnStart::Started(Box::new(Turn {
        bot: head.bot.into_bot()?,
        question,
        answer,
        context,
        key,
    })))
}
