//! The data lifecycle: retention, erasure, encrypted and signed backups with a restore drill,
//! master-key rotation of stored secrets, and the audited operator commands. Owns the policies (what is old, what an account deletion
//! takes with it, how backups are sealed, how the operator log is chained); the queries stay
//! in `storage`. Must never bypass row-level security: cross-tenant work iterates
//! `Store::tenant_ids` and uses tenant transactions, and never writes a backup in plaintext
//! or without a recipient. Returns its own errors and builds no HTTP response: `crate::error`
//! maps them (e.g. `suspension::SuspensionError`).

pub mod admin;
pub mod archive;
pub mod backup;
pub mod erasure;
pub mod jobs;
pub mod keys;
pub mod operator_audit;
pub mod records;
pub mod restore;
pub mod retention;
pub mod suspension;
