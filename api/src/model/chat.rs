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

// --- The chat-log inbox, its exports and the conversation reference (site) ---

/// RFC 4648 base32 alphabet: no 0/1/8/9, so a reference read aloud or retyped survives.
const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// How many bytes of the id a [`Conversation::reference`] encodes (40 bits = 8 characters).
pub const REFERENCE_BYTES: usize = 5;

impl Conversation {
    /// A short reference the visitor can quote in a request: the id's last five bytes (its
    /// random part: a UUIDv7 starts with its creation time, so its first bytes are shared
    /// by conversations started in the same moment) as 8 characters of uppercase base32.
    pub fn reference(&self) -> String {
        reference_of(self.id)
    }
}

/// See [`Conversation::reference`].
pub fn reference_of(id: ConversationId) -> String {
    let b = id.0.as_bytes();
    let tail = &b[16 - REFERENCE_BYTES..];
    let bits = tail.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x));
    (0..8)
        .rev()
        .map(|i| char::from(BASE32[((bits >> (i * 5)) & 31) as usize]))
        .collect()
}

/// The id bytes a reference names, from `XXXXXXXX` or `ref:XXXXXXXX` (any case, spaces and
/// dashes ignored); `None` if the text is not a reference.
pub fn parse_reference(text: &str) -> Option<[u8; REFERENCE_BYTES]> {
    let t = text.trim();
    let t = t
        .strip_prefix("ref:")
        .or_else(|| t.strip_prefix("REF:"))
        .or_else(|| t.strip_prefix("Ref:"))
        .unwrap_or(t);
    let chars: Vec<u8> = t
        .bytes()
        .filter(|c| !matches!(c, b' ' | b'-'))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if chars.len() != 8 {
        return None;
    }
    let mut bits = 0u64;
    for c in chars {
        let v = BASE32.iter().position(|&a| a == c)?;
        bits = (bits << 5) | v as u64;
    }
    let mut out = [0u8; REFERENCE_BYTES];
    for (i, o) in out.iter_mut().enumerate() {
        *o = (bits >> (8 * (REFERENCE_BYTES - 1 - i))) as u8;
    }
    Some(out)
}

/// What the inbox lists: conversations with at least one message, newest activity first.
#[derive(Debug, Clone, Default)]
pub struct InboxQuery {
    pub bot_id: Option<BotId>,
    /// Last active at or after this.
    pub active_from: Option<Timestamp>,
    /// Last active before this.
    pub active_until: Option<Timestamp>,
    /// Only conversations without a complete assistant answer (failed, interrupted or none).
    pub unanswered: bool,
    /// Words that must all appear in one of its messages (full-text search).
    pub words: Option<String>,
    /// The conversation whose [`Conversation::reference`] decodes to these bytes. With
    /// `words` too, conversations matching either are listed.
    pub reference: Option<[u8; REFERENCE_BYTES]>,
    /// Keyset: only conversations strictly after this (last_activity_at, id) in the order.
    pub after: Option<(Timestamp, ConversationId)>,
    pub limit: u32,
}

/// One inbox line: the conversation, its first question and how many messages it has.
#[derive(Debug, Clone)]
pub struct InboxEntry {
    pub conversation: Conversation,
    /// The start of the first visitor message (empty if the visitor has not written).
    pub preview: String,
    pub message_count: i64,
}

/// One message of the workspace's log export, with its conversation's context.
#[derive(Debug, Clone, Serialize)]
pub struct ExportedMessage {
    pub conversation_id: ConversationId,
    pub conversation_reference: String,
    pub bot_id: BotId,
    pub origin: String,
    pub message_id: MessageId,
    pub role: MessageRole,
    pub status: MessageStatus,
    pub created_at: Timestamp,
    pub content: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reference_is_8_base32_characters_of_the_ids_random_tail_and_parses_back() {
        for _ in 0..200 {
            let id = ConversationId::new();
            let r = reference_of(id);
            assert_eq!(r.len(), 8);
            assert!(r.bytes().all(|b| BASE32.contains(&b)), "{r}");
            let tail = parse_reference(&r).unwrap();
            assert_eq!(&tail[..], &id.0.as_bytes()[16 - REFERENCE_BYTES..]);
            assert_eq!(
                parse_reference(&format!("ref:{}", r.to_lowercase())),
                Some(tail)
            );
            assert_eq!(
                parse_reference(&format!(" {}-{} ", &r[..4], &r[4..])),
                Some(tail)
            );
        }
        // Ids made in the same millisecond (same UUIDv7 prefix) get different references.
        let (a, b) = (ConversationId::new(), ConversationId::new());
        assert_ne!(reference_of(a), reference_of(b));
        for not_a_reference in ["", "refund", "ABCDEFG", "ABCDEFGHI", "ABCDEF01", "ref:"] {
            assert_eq!(parse_reference(not_a_reference), None, "{not_a_reference}");
        }
    }
}
