//! What the data lifecycle reads and changes in bulk: retention budgets and counts, and a
//! workspace's size. The policies live in `crate::lifecycle`.

use serde::Serialize;

use super::ids::Timestamp;

/// What one purge transaction deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PurgeCounts {
    pub conversations: u64,
    pub messages: u64,
    pub attachments: u64,
}

impl PurgeCounts {
    pub fn total(&self) -> u64 {
        self.conversations + self.messages + self.attachments
    }

    pub fn add(&mut self, other: PurgeCounts) {
        self.conversations += other.conversations;
        self.messages += other.messages;
        self.attachments += other.attachments;
    }
}

/// Row budget of one purge transaction.
#[derive(Debug, Clone, Copy)]
pub struct PurgeLimits {
    /// Most messages plus attachments deleted in one transaction.
    pub rows: u32,
    /// Most conversations handled in one transaction (their messages first).
    pub conversations: u32,
}

/// One workspace's size, for `parlo admin workspaces usage`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WorkspaceUsage {
    pub members: i64,
    pub bots: i64,
    pub conversations: i64,
    pub messages: i64,
    pub attachments: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub last_activity_at: Option<Timestamp>,
}
