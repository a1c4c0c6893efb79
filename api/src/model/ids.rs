//! Ids (UUIDv7, time-ordered) and timestamps (unix milliseconds, UTC), the same in both
//! backends so that one query text serves both.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id_type {
    ($($(#[$m:meta])* $name:ident),* $(,)?) => {$(
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new time-ordered id (UUIDv7).
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    )*};
}

id_type!(
    /// A workspace: the unit of tenancy. Every tenant-scoped row carries it as `tenant_id`.
    /// Storage never lets a query bind one: a tenant transaction binds its own (see
    /// `storage::sql::TenantTx`).
    TenantId,
    UserId,
    SessionId,
    BotId,
    ConversationId,
    MessageId,
    AttachmentId,
    AuditId,
    InvitationId,
    LibraryId,
    SourceId,
    ChunkId,
    KnowledgeJobId,
    GapId,
);

/// Unix time in milliseconds, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn now() -> Self {
        Self((time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64)
    }

    pub fn plus_secs(self, secs: i64) -> Self {
        Self(self.0 + secs * 1000)
    }

    pub fn minus_days(self, days: i64) -> Self {
        Self(self.0 - days * 86_400_000)
    }

    pub fn to_rfc3339(self) -> String {
        time::OffsetDateTime::from_unix_timestamp_nanos(self.0 as i128 * 1_000_000)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_default()
    }
}
