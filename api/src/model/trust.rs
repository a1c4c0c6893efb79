//! The live self-checks of the trust page and the operations they report on.

use super::ids::Timestamp;

/// How a check came out. `Info` states a fact that has nothing to pass or fail (e.g. what
/// isolates tenants on SQLite); `Warn` needs the operator's attention; `Fail` means the
/// claim on the trust page does not hold right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Ok,
    Info,
    Warn,
    Fail,
}

impl CheckStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Ok => "ok",
            CheckStatus::Info => "info",
            CheckStatus::Warn => "warn",
            CheckStatus::Fail => "fail",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "ok" => CheckStatus::Ok,
            "info" => CheckStatus::Info,
            "warn" => CheckStatus::Warn,
            "fail" => CheckStatus::Fail,
            _ => return None,
        })
    }
}

/// The latest result of one check: what was measured and when.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CheckResult {
    /// Stable identifier (`tenant_isolation`, `transport`, `backups`, …).
    pub name: String,
    pub status: CheckStatus,
    /// The measured value, in words (never a secret or an address of the database).
    pub value: String,
    pub checked_at: Timestamp,
}

/// Operations whose latest outcome the checks report on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperationKind {
    Backup,
    RestoreDrill,
    Retention,
    /// The daily verification of the operator audit chain.
    OperatorAudit,
}

impl OperationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OperationKind::Backup => "backup",
            OperationKind::RestoreDrill => "restore_drill",
            OperationKind::Retention => "retention",
            OperationKind::OperatorAudit => "operator_audit",
        }
    }
}

/// The latest recorded outcome of an operation; `details` is a JSON object whose fields
/// depend on the kind (a backup's size, a drill's tables and rows, rows deleted, …).
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    pub at: Timestamp,
    pub passed: bool,
    pub details: serde_json::Value,
}

/// What the database says about tenant isolation on PostgreSQL.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IsolationReport {
    /// Tables other than the global ones.
    pub tenant_tables: usize,
    /// Tenant tables whose row-level security is not enabled, or not forced.
    pub not_enabled: Vec<String>,
    pub not_forced: Vec<String>,
    pub role: String,
    pub superuser: bool,
    pub bypass_rls: bool,
    pub inherit: bool,
    /// Tables the role owns (or could own through a role it is a member of).
    pub owns: Vec<String>,
    /// Roles it is a member of that are superuser, bypass RLS or own a table.
    pub member_of: Vec<String>,
    /// Whether this connection to the database is encrypted (`pg_stat_ssl`).
    pub ssl: bool,
}

/// Per bot: its retention and the oldest last activity of its conversations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionSample {
    pub retention_days: i64,
    pub oldest_activity: Option<Timestamp>,
    pub oldest_message: Option<Timestamp>,
}
