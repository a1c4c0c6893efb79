//! Conversations between a bot and an end user: messages with their roles and statuses, the
//! chat turn as it starts, and attachment metadata.

use serde::{Deserialize, Serialize};

use super::bot::{Bot, Provider, ProviderKey};
use super::ids::{AttachmentId, BotId, ConversationId, MessageId, TenantId, Timestamp};

#[derive(Debug, Clone)]
pub struct NewConversation {
    pub bot_id: BotId,
    pub origin: String,
    /// SHA-256 of the resume secret given to the widget.
    pub resume_hash: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    pub tenant_id: TenantId,
    pub id: ConversationId,
    pub bot_id: BotId,
    pub origin: String,
    pub resume_hash: Vec<u8>,
    pub created_at: Timestamp,
    pub last_activity_at: Timestamp,
}

#[derive(Debug, Clone, Default)]
pub struct ConversationQuery {
    pub bot_id: Option<BotId>,
    /// Only conversations active before this (for paging, newest first).
    pub before: Option<Timestamp>,
    pub limit: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageRole {
    User,
    Assistant,
    System,
}

impl MessageRole {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageRole::User => "user",
            MessageRole::Assistant => "assistant",
            MessageRole::System => "system",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageStatus {
    /// Stored before the answer is known (an assistant message being streamed).
    Pending,
    Complete,
    /// The stream broke; the content is the partial answer.
    Interrupted,
    /// No answer at all (upstream refused); content is empty.
    Failed,
}

impl MessageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Pending => "pending",
            MessageStatus::Complete => "complete",
            MessageStatus::Interrupted => "interrupted",
            MessageStatus::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewMessage {
    pub conversation_id: ConversationId,
    pub role: MessageRole,
    pub content: String,
    pub status: MessageStatus,
}

#[derive(Debug, Clone, Default)]
pub struct TokenUsage {
    pub prompt_tokens: Option<i64>,
    pub completion_tokens: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct FinishedMessage {
    pub content: String,
    pub status: MessageStatus,
    pub usage: TokenUsage,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    pub id: MessageId,
    pub conversation_id: ConversationId,
    pub role: MessageRole,
    pub content: String,
    pub status: MessageStatus,
    pub prompt_tokens: Option<i64>,
    pub completion_tokens: Option<i64>,
    pub created_at: Timestamp,
    pub completed_at: Option<Timestamp>,
}

/// One chat turn as it starts: what the end user wrote, and how much context to read back.
#[derive(Debug, Clone)]
pub struct NewTurn {
    pub bot: BotId,
    pub conversation: ConversationId,
    /// The conversation to store first if it is not stored yet (its first message).
    pub start: Option<NewConversation>,
    /// A stored question to answer again (its answer failed): not stored a second time.
    pub retry_of: Option<MessageId>,
    pub content: String,
    pub provider: Provider,
    /// At most this many earlier messages (complete or interrupted, non-empty) come back.
    pub context: u32,
}

/// How [`NewTurn`] ended; only `Started` stored anything.
#[derive(Debug)]
pub enum TurnStart {
    Started(Box<Turn>),
    /// The workspace is suspended; nothing was stored.
    Suspended,
    /// The bot no longer exists; nothing was stored.
    NoBot,
    /// The conversation was cleared or expired; nothing was stored.
    NoConversation,
    /// `retry_of` is not the conversation's latest question (with this text) still without
    /// an answer; nothing was stored.
    NotRetryable,
}

/// A started turn: the user's message and an empty `pending` answer are stored.
#[derive(Debug)]
pub struct Turn {
    pub bot: Bot,
    /// The user's message just stored.
    pub question: MessageId,
    /// The `pending` assistant message the answer is finished into.
    pub answer: MessageId,
    /// The latest usable messages, oldest first, ending with the question.
    pub context: Vec<Message>,
    /// The tenant's stored key for the turn's provider, if any.
    pub key: Option<ProviderKey>,
}

#[derive(Debug, Clone)]
pub struct NewAttachment {
    pub conversation_id: ConversationId,
    pub message_id: Option<MessageId>,
    pub file_name: String,
    pub content_type: String,
    pub size_bytes: i64,
    pub sha256: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attachment {
    pub id: AttachmentId,
    pub conversation_id: ConversationId,
    pub message_id: Option<MessageId>,
    pub file_name: String,
    pub content_type: String,
    pub size_bytes: i64,
    #[serde(skip)]
    pub sha256: Vec<u8>,
    pub created_at: Timestamp,
}

/// The conversation a widget token names, as its verified claims say: every widget query
/// filters by both, so a token of one bot never reaches another bot's conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WidgetScope {
    pub bot: BotId,
    pub conversation: ConversationId,
}

/// What a widget request found, read in the same transaction as its work: the workspace's
/// suspension takes effect at once, whenever the token was issued.
#[derive(Debug, PartialEq, Eq)]
pub enum Scoped<T> {
    Open(T),
    /// The workspace is suspended; nothing was read or stored.
    Suspended,
    /// No conversation of this bot with this id (cleared, expired, or another bot's).
    NoConversation,
}

/// An attachment read by OCR, stored with the user's message holding its text.
#[derive(Debug, Clone)]
pub struct NewAttachmentText {
    pub file_name: String,
    pub content_type: String,
    pub size_bytes: i64,
    pub sha256: Vec<u8>,
    /// The user's message: the attachment's name and its text.
    pub content: String,
}

impl<T> Scoped<T> {
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Scoped<U> {
        match self {
            Scoped::Open(v) => Scoped::Open(f(v)),
            Scoped::Suspended => Scoped::Suspended,
            Scoped::NoConversation => Scoped::NoConversation,
        }
    }
}

impl Scoped<()> {
    /// `None` when open; otherwise the same refusal, for a result of any type.
    pub fn refusal<U>(&self) -> Option<Scoped<U>> {
        match self {
            Scoped::Open(()) => None,
            Scoped::Suspended => Some(Scoped::Suspended),
            Scoped::NoConversation => Some(Scoped::NoConversation),
        }
    }
}

/// A visitor's rating of an answer (thumbs up or down), stored as 1 or -1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Rating {
    Up,
    Down,
}

impl Rating {
    pub fn as_i64(self) -> i64 {
        match self {
            Rating::Up => 1,
            Rating::Down => -1,
        }
    }

    pub fn from_i64(v: i64) -> Option<Rating> {
        match v {
            1 => Some(Rating::Up),
            -1 => Some(Rating::Down),
            _ => None,
        }
    }
}

/// How a bot's answers were rated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RatingCounts {
    pub up: i64,
    pub down: i64,
}
