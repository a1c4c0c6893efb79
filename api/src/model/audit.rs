//! The two audit logs: a workspace's own (tenant data, append-only) and the operator's
//! (global, append-only, hash-chained; see `lifecycle::audit`).

use serde::Serialize;

use super::ids::{AuditId, Timestamp, UserId};

#[derive(Debug, Clone)]
pub struct NewAuditEntry {
    pub actor: Option<UserId>,
    /// A stable verb such as `bot.update` or `provider_key.set`.
    pub action: String,
    pub target: String,
    /// JSON object with non-secret details.
    pub details: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    pub id: AuditId,
    pub actor: Option<UserId>,
    pub action: String,
    pub target: String,
    pub details: String,
    pub created_at: Timestamp,
}

/// An entry of the operator audit log (global, append-only, hash-chained).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OperatorAuditEntry {
    pub seq: i64,
    pub created_at: Timestamp,
    pub actor: String,
    pub action: String,
    pub target: String,
    /// A JSON object.
    pub details: String,
    #[serde(with = "hex_bytes")]
    pub prev_hash: Vec<u8>,
    #[serde(with = "hex_bytes")]
    pub hash: Vec<u8>,
}

mod hex_bytes {
    pub fn serialize<S: serde::Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(b))
    }
}
