//! Storage: every query of the product, for both backends, behind one concrete [`Store`].
//! Handlers and jobs call `store.method(…)` with model types (`crate::model`) and never see a
//! driver. Owns the SQL, the transactions and the database encoding of the model; must never
//! import axum or decide what an error means to a client beyond [`StoreError::kind`], and
//! must never run a statement on a tenant table outside a [`sql::TenantTx`] of that tenant.
//!
//! - `sql.rs`: the runtime dispatch that lets a query be written once for both backends, and
//!   the transaction types (a tenant transaction binds its own tenant as `$1`);
//! - one file per aggregate, its row types next to its SQL: `accounts.rs`, `workspaces.rs`
//!   (with members, invitations and the workspace audit log), `bots.rs` (with provider keys),
//!   `conversations.rs` (with attachments), `messages.rs` (with the chat turn), `limits.rs`,
//!   `lifecycle.rs` (retention, suspension, usage, job locks, operator audit), `mail.rs` (the
//!   mail outbox), `knowledge/` (libraries, sources, the ingestion queue, chunks and full
//!   text, citations, gaps), `trust.rs` (the trust page's checks and recorded operations, the
//!   PostgreSQL catalog); `census.rs`
//!   counts and checks whole databases for backup and restore;
//! - `sqlite.rs`, `postgres.rs`: connecting, migrating and beginning units of work — the only
//!   code that differs between the backends (PostgreSQL: row-level security, advisory locks);
//! - `codec.rs`: how ids and timestamps are stored.
//!
//! Timestamps are unix milliseconds (UTC) in both backends so that one query text serves both.

mod accounts;
mod backend;
mod bots;
pub mod census;
mod codec;
mod conversations;
mod error;
mod jobs;
mod knowledge;
mod lifecycle;
mod limits;
mod mail;
mod messages;
mod postgres;
mod sql;
mod sqlite;
mod store;
mod trust;
mod usage;
mod workspaces;

pub use error::{StoreError, StoreErrorKind, StoreResult};
pub use jobs::{Job, JobLock};
pub use postgres::{GLOBAL_TABLES, MIGRATOR as PG_MIGRATOR};
pub use store::{Backend, Store, migrate, open};
pub use workspaces::LAST_OWNER;
