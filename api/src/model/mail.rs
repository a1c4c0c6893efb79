//! Mail: the languages mail is written in, account tokens (what a link in a mail may do) and
//! the outbox's records. No I/O.

use serde::Serialize;
use uuid::Uuid;

use super::account::SealedSecret;
use super::ids::{Timestamp, UserId};

/// What a single-use account token (sent by mail, stored as its SHA-256) may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPurpose {
    /// Confirms the address given at sign-up.
    Verify,
    /// Sets a new password (and so also confirms the address).
    Reset,
    /// Confirms a new address, sent to that address.
    EmailChange,
}

impl TokenPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenPurpose::Verify => "verify",
            TokenPurpose::Reset => "reset",
            TokenPurpose::EmailChange => "email_change",
        }
    }

    /// How long a link stays valid, in seconds.
    pub fn lifetime_secs(self) -> i64 {
        match self {
            TokenPurpose::Verify => 24 * 3600,
            TokenPurpose::Reset => 30 * 60,
            TokenPurpose::EmailChange => 3600,
        }
    }
}

/// A token that was valid and is now used up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsedToken {
    pub user_id: UserId,
    /// The new address, for [`TokenPurpose::EmailChange`].
    pub new_email: Option<String>,
}

/// A message to queue: the recipient's address, what kind of mail it is (for the queue
/// status, never its content) and the sealed RFC 5322 message.
#[derive(Debug, Clone)]
pub struct NewOutboxMail {
    pub id: Uuid,
    pub recipient: String,
    pub kind: String,
    pub sealed: SealedSecret,
    pub next_attempt_at: Timestamp,
}

/// A queued message claimed by one sender.
#[derive(Debug, Clone)]
pub struct OutboxMail {
    pub id: Uuid,
    pub recipient: String,
    pub kind: String,
    pub sealed: SealedSecret,
    /// Attempts so far, this one included.
    pub attempts: i32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxStatus {
    Pending,
    Sent,
    Failed,
}

impl OutboxStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxStatus::Pending => "pending",
            OutboxStatus::Sent => "sent",
            OutboxStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<OutboxStatus> {
        Some(match s {
            "pending" => OutboxStatus::Pending,
            "sent" => OutboxStatus::Sent,
            "failed" => OutboxStatus::Failed,
            _ => return None,
        })
    }
}

/// One message as `parlo admin mail status` shows it (never its content).
#[derive(Debug, Clone, Serialize)]
pub struct OutboxEntry {
    pub id: Uuid,
    pub recipient: String,
    pub kind: String,
    pub status: OutboxStatus,
    pub attempts: i32,
    pub next_attempt_at: Timestamp,
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    pub sent_at: Option<Timestamp>,
}

/// The queue at a glance.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OutboxSummary {
    pub pending: i64,
    pub sent: i64,
    pub failed: i64,
    pub oldest_pending: Option<Timestamp>,
}
