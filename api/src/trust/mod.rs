//! The trust page's live self-checks (issue 17): each claim of `/trust` is measured on the
//! running system — row-level security in the database catalog, the served HSTS header,
//! recorded backups, restore drills and retention runs, the operator audit chain, the
//! published widget — at start and every `PARLO_TRUST_CHECK_INTERVAL_SECS`, by one process at
//! a time (`Job::TrustChecks`), and stored where every process reads them (`trust_checks`).
//!
//! | file | holds |
//! |---|---|
//! | `checks.rs` | the checks: what is measured and what counts as ok, warn or fail |
//! | `job.rs` | the schedule: run at start and on the interval under the job lock |

pub mod checks;
pub mod job;

pub use checks::{CHECKS, title};
pub use job::{TrustJob, run_once, spawn};
