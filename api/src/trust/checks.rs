//! The live checks behind the trust page's claims. Each one measures the running system
//! (the database catalog, the served headers, recorded operations, the published widget)
//! and says ok, info, warn or fail with the measured value in words. Never reads the clock
//! itself: `now` is passed in, so tests can travel in time. Values never contain a secret,
//! a database address or a path.

use std::net::IpAddr;

use parlo_publish::Manifest;

use crate::config::Config;
use crate::dist::Dist;
use crate::lifecycle::operator_audit::{self, Head};
use crate::lifecycle::retention::MAX_RETENTION_DAYS;
use crate::model::{
    CheckResult, CheckStatus, IsolationReport, Operation, OperationKind, RetentionSample, Timestamp,
};
use crate::storage::Store;

/// A backup older than this is a warning (a daily backup plus two hours of slack).
pub const BACKUP_WARN_HOURS: i64 = 26;
/// A restore drill older than this is a warning: drills are promised quarterly.
pub const DRILL_WARN_DAYS: i64 = 92;
/// The operator audit chain is verified again after this long even when its head is the same.
pub const AUDIT_VERIFY_HOURS: i64 = 24;
/// A retention run older than this is a warning (it runs hourly by default).
pub const RETENTION_WARN_HOURS: i64 = 48;
/// A conversation may outlive its bot's retention by this much before it is called overdue
/// (retention runs periodically, not at the exact moment).
const RETENTION_SLACK_DAYS: i64 = 1;

/// Every check, in the order the trust page shows them: (name, title).
pub const CHECKS: &[(&str, &str)] = &[
    ("tenant_isolation", "Separation of customers"),
    ("transport", "Encryption in transit"),
    ("backups", "Backups"),
    ("restore_drill", "Restore drill"),
    ("retention", "Retention of chat logs"),
    ("operator_audit", "Operator audit log"),
    ("subprocessors", "Sub-processors"),
    ("widget", "Widget code"),
];

pub fn title(name: &str) -> &str {
    CHECKS
        .iter()
        .find(|(n, _)| *n == name)
        .map_or(name, |(_, t)| t)
}

/// What the checks read, besides the database.
pub struct Inputs<'a> {
    pub store: &'a Store,
    pub config: &'a Config,
    pub dist: &'a Dist,
    pub http: &'a reqwest::Client,
    pub now: Timestamp,
}

fn result(name: &str, status: CheckStatus, value: String, now: Timestamp) -> CheckResult {
    CheckResult {
        name: name.to_owned(),
        status,
        value,
        checked_at: now,
    }
}

/// Runs every check once. A check whose measurement fails (the database is unreachable)
/// reports `fail` with what could not be measured, never an internal error text.
pub async fn run_all(i: &Inputs<'_>) -> Vec<CheckResult> {
    let isolation = i.store.isolation_report().await;
    let isolation_measured = match &isolation {
        Ok(r) => Some(r.clone()),
        Err(e) => {
            tracing::warn!(error = %e, "reading the database catalog failed");
            None
        }
    };
    let now = i.now;
    let mut out = vec![
        match &isolation {
            Ok(r) => tenant_isolation(r.as_ref(), now),
            Err(_) => unmeasured("tenant_isolation", "the database catalog", now),
        },
        transport(i, isolation_measured.flatten().as_ref()).await,
    ];
    out.push(match i.store.operation(OperationKind::Backup).await {
        Ok(op) => backups(op.as_ref(), now),
        Err(_) => unmeasured("backups", "the recorded backups", now),
    });
    out.push(match i.store.operation(OperationKind::RestoreDrill).await {
        Ok(op) => restore_drill(op.as_ref(), now),
        Err(_) => unmeasured("restore_drill", "the recorded restore drills", now),
    });
    out.push(retention(i.store, now).await);
    out.push(operator_audit_chain(i.store, i.config, now).await);
    out.push(subprocessors(i.config, now));
    out.push(widget(i.dist.manifest().await.ok().as_ref(), now));
    out
}

fn unmeasured(name: &str, what: &str, now: Timestamp) -> CheckResult {
    result(
        name,
        CheckStatus::Fail,
        format!("Could not read {what} (is the database reachable?)."),
        now,
    )
}

fn list(names: &[String]) -> String {
    names.join(", ")
}

/// PostgreSQL: row-level security on every tenant table and the server's role; SQLite:
/// what isolates tenants there.
pub fn tenant_isolation(report: Option<&IsolationReport>, now: Timestamp) -> CheckResult {
    let name = "tenant_isolation";
    let Some(r) = report else {
        return result(
            name,
            CheckStatus::Info,
            "SQLite: one server process owns the database file. Every statement on workspace \
             data is scoped to one workspace (WHERE tenant_id) and rows reference each other by \
             (workspace, id) keys; there is no database-level row security on SQLite."
                .into(),
            now,
        );
    };
    let mut problems = Vec::new();
    if !r.not_enabled.is_empty() {
        problems.push(format!(
            "row-level security is not enabled on {}",
            list(&r.not_enabled)
        ));
    }
    if !r.not_forced.is_empty() {
        problems.push(format!(
            "row-level security is not forced on {}",
            list(&r.not_forced)
        ));
    }
    for (bad, what) in [
        (r.superuser, "is a superuser"),
        (r.bypass_rls, "has BYPASSRLS"),
        (r.inherit, "has INHERIT (should be NOINHERIT)"),
    ] {
        if bad {
            problems.push(format!("the server's role {what}"));
        }
    }
    if !r.owns.is_empty() {
        problems.push(format!("the server's role owns {}", list(&r.owns)));
    }
    if !r.member_of.is_empty() {
        problems.push(format!(
            "the server's role is a member of {}, which could bypass row-level security",
            list(&r.member_of)
        ));
    }
    if problems.is_empty() {
        result(
            name,
            CheckStatus::Ok,
            format!(
                "PostgreSQL: row-level security enabled and forced on all {} workspace tables; \
                 the server's role is NOSUPERUSER NOBYPASSRLS NOINHERIT, owns no table and is a \
                 member of no role that could bypass it.",
                r.tenant_tables
            ),
            now,
        )
    } else {
        result(
            name,
            CheckStatus::Fail,
            format!("{}.", problems.join("; ")),
            now,
        )
    }
}

fn is_local_host(host: Option<&str>) -> bool {
    match host {
        None | Some("") => true,
        Some(h) if h.starts_with('/') || h.eq_ignore_ascii_case("localhost") => true,
        Some(h) => h
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
    }
}

/// The HSTS max-age served at the public URL, probed through whatever is in front of the
/// server (a reverse proxy may drop or change it).
async fn served_hsts(config: &Config, http: &reqwest::Client) -> Result<Option<u64>, String> {
    let url = config
        .public_url
        .join("healthz")
        .map_err(|e| e.to_string())?;
    let resp = http
        .get(url)
        .timeout(std::time::Duration::from_secs(10))
        .send()
        .await
        .map_err(|_| "the public URL did not answer".to_owned())?;
    Ok(resp
        .headers()
        .get("strict-transport-security")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split(';').find_map(|p| {
                p.trim()
                    .strip_prefix("max-age=")
                    .and_then(|n| n.trim_matches('"').parse().ok())
            })
        }))
}

async fn transport(i: &Inputs<'_>, isolation: Option<&IsolationReport>) -> CheckResult {
    let mut status = CheckStatus::Ok;
    let mut parts = Vec::new();
    let config = i.config;
    if config.public_is_https() {
        match served_hsts(config, i.http).await {
            Ok(Some(age)) if age > 0 => parts.push(format!(
                "public URL is https and serves HSTS (max-age={age})"
            )),
            Ok(_) => {
                status = status.max(CheckStatus::Fail);
                parts.push("public URL is https but serves no HSTS header".to_owned());
            }
            Err(e) => {
                status = status.max(CheckStatus::Fail);
                parts.push(format!("HSTS could not be checked: {e}"));
            }
        }
    } else {
        status = status.max(CheckStatus::Warn);
        parts.push("public URL is plain http (a development set-up)".to_owned());
    }
    let db_host = url::Url::parse(config.database_url.expose())
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned));
    if !config.database_url.is_postgres() {
        parts.push("database is a local file".to_owned());
    } else if isolation.is_some_and(|r| r.ssl) {
        parts.push("database connection uses TLS".to_owned());
    } else if is_local_host(db_host.as_deref()) {
        parts.push("database is on this host (no TLS needed)".to_owned());
    } else {
        status = status.max(CheckStatus::Fail);
        parts.push("database connection leaves the host without TLS".to_owned());
    }
    let up = &config.mistral_base_url;
    if up.scheme() == "https" {
        parts.push(format!(
            "upstream {} over https",
            up.host_str().unwrap_or("(unknown)")
        ));
    } else if is_local_host(up.host_str()) {
        parts.push("upstream is on this host (no TLS needed)".to_owned());
    } else {
        status = status.max(CheckStatus::Fail);
        parts.push(format!(
            "upstream {} is plain http",
            up.host_str().unwrap_or("(unknown)")
        ));
    }
    let mut value = parts.join("; ");
    value.push('.');
    result("transport", status, capitalise(value), i.now)
}

fn capitalise(s: String) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => s,
    }
}

/// "3 h", "2 days": how long ago `then` was.
pub fn age(now: Timestamp, then: Timestamp) -> String {
    let secs = (now.0 - then.0).max(0) / 1000;
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 2 * 3600 => format!("{} min", s / 60),
        s if s < 2 * 86_400 => format!("{} h", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}

fn date(t: Timestamp) -> String {
    let iso = t.to_rfc3339();
    match (iso.get(..10), iso.get(11..16)) {
        (Some(d), Some(hm)) => format!("{d} {hm} UTC"),
        _ => iso,
    }
}

fn detail_i64(op: &Operation, key: &str) -> i64 {
    op.details.get(key).and_then(|v| v.as_i64()).unwrap_or(0)
}

/// How a recorded operation is judged: what to say when there is none, when it failed, when
/// it passed (from its details), and after how long a passed one is too old.
struct Recorded {
    name: &'static str,
    none: &'static str,
    failed: &'static str,
    passed: fn(&Operation) -> String,
    warn_after_ms: i64,
    too_old: String,
}

fn judge_recorded(r: &Recorded, op: Option<&Operation>, now: Timestamp) -> CheckResult {
    let Some(op) = op else {
        return result(r.name, CheckStatus::Warn, r.none.to_owned(), now);
    };
    let when = format!("{} ({} ago)", date(op.at), age(now, op.at));
    if !op.passed {
        let value = format!("{} {when}.", r.failed);
        return result(r.name, CheckStatus::Fail, value, now);
    }
    let value = format!("Last passed {when}: {}.", (r.passed)(op));
    if now.0 - op.at.0 > r.warn_after_ms {
        let value = format!("{value} {}.", r.too_old);
        result(r.name, CheckStatus::Warn, value, now)
    } else {
        result(r.name, CheckStatus::Ok, value, now)
    }
}

pub fn backups(op: Option<&Operation>, now: Timestamp) -> CheckResult {
    let rule = Recorded {
        name: "backups",
        none: "No backup has been recorded.",
        failed: "The last backup attempt failed:",
        passed: |op| {
            format!(
                "{:.1} MiB encrypted, {} rows",
                detail_i64(op, "bytes") as f64 / (1024.0 * 1024.0),
                detail_i64(op, "rows")
            )
        },
        warn_after_ms: BACKUP_WARN_HOURS * 3_600_000,
        too_old: format!("Older than {BACKUP_WARN_HOURS} hours"),
    };
    judge_recorded(&rule, op, now)
}

pub fn restore_drill(op: Option<&Operation>, now: Timestamp) -> CheckResult {
    let rule = Recorded {
        name: "restore_drill",
        none: "No restore drill has been recorded (`parlo restore --verify`).",
        failed: "The last restore drill failed:",
        passed: |op| {
            format!(
                "{} tables, {} rows restored and counted",
                detail_i64(op, "tables"),
                detail_i64(op, "rows")
            )
        },
        warn_after_ms: DRILL_WARN_DAYS * 86_400_000,
        too_old: format!("Older than {DRILL_WARN_DAYS} days"),
    };
    judge_recorded(&rule, op, now)
}

/// Judges retention from its last run and the samples of every bot.
pub fn judge_retention(
    last: Option<&Operation>,
    samples: &[RetentionSample],
    now: Timestamp,
) -> CheckResult {
    let name = "retention";
    let longest = samples
        .iter()
        .map(|s| s.retention_days)
        .max()
        .unwrap_or(0)
        .min(MAX_RETENTION_DAYS);
    let oldest = samples.iter().filter_map(|s| s.oldest_message).min();
    let overdue = samples
        .iter()
        .filter(|s| {
            let days = s.retention_days.clamp(1, MAX_RETENTION_DAYS) + RETENTION_SLACK_DAYS;
            s.oldest_activity.is_some_and(|a| a < now.minus_days(days))
        })
        .count();
    let oldest_text = match oldest {
        Some(t) => format!(
            "oldest stored message {} old (longest retention {longest} days)",
            age(now, t)
        ),
        None => "no stored messages".to_owned(),
    };
    let (mut status, run_text) = match last {
        None => (CheckStatus::Warn, "Retention has not run yet".to_owned()),
        Some(op) if !op.passed => (
            CheckStatus::Fail,
            format!("The last retention run failed ({} ago)", age(now, op.at)),
        ),
        Some(op) => (
            if now.0 - op.at.0 > RETENTION_WARN_HOURS * 3_600_000 {
                CheckStatus::Warn
            } else {
                CheckStatus::Ok
            },
            format!(
                "Last run {} ({} ago) deleted {} rows",
                date(op.at),
                age(now, op.at),
                detail_i64(op, "rows")
            ),
        ),
    };
    let mut value = format!("{run_text}; {oldest_text}.");
    if overdue > 0 {
        status = status.max(CheckStatus::Warn);
        value.push_str(&format!(
            " {overdue} assistant(s) keep conversations past their retention."
        ));
    }
    result(name, status, value, now)
}

async fn retention(store: &Store, now: Timestamp) -> CheckResult {
    let measured = async {
        let last = store.operation(OperationKind::Retention).await?;
        let mut samples = Vec::new();
        for t in store.tenant_ids().await? {
            samples.extend(store.retention_samples(t).await?);
        }
        Ok::<_, crate::storage::StoreError>((last, samples))
    }
    .await;
    match measured {
        Ok((last, samples)) => judge_retention(last.as_ref(), &samples, now),
        Err(_) => unmeasured("retention", "retention's progress", now),
    }
}

/// Verifies the operator audit chain when its head changed or the last verification is a
/// day old; otherwise reports the last verification.
async fn operator_audit_chain(store: &Store, config: &Config, now: Timestamp) -> CheckResult {
    let name = "operator_audit";
    let measured = async {
        let last = store.operation(OperationKind::OperatorAudit).await?;
        let head = store.last_operator_audit().await?;
        Ok::<_, crate::storage::StoreError>((last, head))
    }
    .await;
    let Ok((last, head)) = measured else {
        return unmeasured(name, "the operator audit log", now);
    };
    let head_text = head.as_ref().and_then(Head::of).map(|h| h.to_string());
    let fresh = last.as_ref().is_some_and(|op| {
        op.passed
            && now.0 - op.at.0 < AUDIT_VERIFY_HOURS * 3_600_000
            && op.details.get("head").and_then(|v| v.as_str()) == head_text.as_deref()
    });
    let op = match (fresh, last) {
        (true, Some(op)) => op,
        _ => {
            let op = verify_audit(store, config, now).await;
            if let Err(e) = store
                .record_operation(OperationKind::OperatorAudit, &op)
                .await
            {
                tracing::warn!(error = %e, "could not record the audit verification");
            }
            op
        }
    };
    describe_audit(&op, now)
}

async fn verify_audit(store: &Store, config: &Config, now: Timestamp) -> Operation {
    let entries = match store.operator_audit().await {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(error = %e, "reading the operator audit log failed");
            return Operation {
                at: now,
                passed: false,
                details: serde_json::json!({"error": "the log could not be read"}),
            };
        }
    };
    // The head file anchors the chain's end when this server can read it.
    let recorded = Head::read(&config.lifecycle.audit_head_file).ok().flatten();
    match operator_audit::verify(&entries, recorded.as_ref()) {
        Ok(r) => Operation {
            at: now,
            passed: true,
            details: serde_json::json!({
                "entries": r.entries,
                "head": r.head.map(|h| h.to_string()),
                "anchored": r.anchored,
            }),
        },
        Err(broken) => Operation {
            at: now,
            passed: false,
            details: serde_json::json!({
                "entries": entries.len(),
                "head": entries.last().and_then(Head::of).map(|h| h.to_string()),
                "error": broken.to_string(),
            }),
        },
    }
}

fn describe_audit(op: &Operation, now: Timestamp) -> CheckResult {
    let name = "operator_audit";
    let entries = detail_i64(op, "entries");
    let head = op
        .details
        .get("head")
        .and_then(|v| v.as_str())
        .map_or("none (empty log)".to_owned(), str::to_owned);
    if op.passed {
        result(
            name,
            CheckStatus::Ok,
            format!(
                "Hash chain verified {} ({} ago): {entries} entries, head {head}.",
                date(op.at),
                age(now, op.at)
            ),
            now,
        )
    } else {
        let why = op
            .details
            .get("error")
            .and_then(|v| v.as_str())
            .unwrap_or("unknown");
        result(
            name,
            CheckStatus::Fail,
            format!(
                "Hash chain broken ({}): {why}. {entries} entries, head {head}.",
                date(op.at)
            ),
            now,
        )
    }
}

pub fn subprocessors(config: &Config, now: Timestamp) -> CheckResult {
    let list = &config.subprocessors;
    let current = list.iter().filter(|s| s.removed.is_none()).count();
    let last = list
        .iter()
        .flat_map(|s| std::iter::once(s.added).chain(s.removed))
        .max();
    let value = match last {
        Some(d) => format!("{current} in use; the list last changed on {d}."),
        None => "The operator has listed no sub-processors.".to_owned(),
    };
    result("subprocessors", CheckStatus::Info, value, now)
}

pub fn widget(manifest: Option<&Manifest>, now: Timestamp) -> CheckResult {
    let name = "widget";
    let Some(release) = manifest.and_then(|m| m.versions.get(&m.latest).map(|r| (m, r))) else {
        return result(
            name,
            CheckStatus::Fail,
            "No published widget is served.".into(),
            now,
        );
    };
    let (m, r) = release;
    let hashes = r
        .files
        .iter()
        .map(|(f, b)| format!("{f} {}", b.integrity))
        .collect::<Vec<_>>()
        .join("; ");
    result(
        name,
        CheckStatus::Ok,
        format!(
            "Latest version {} (published {}), served from this server only: {hashes}.",
            m.latest, r.published_at
        ),
        now,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(hours_ago: i64, passed: bool, now: Timestamp) -> Operation {
        Operation {
            at: now.plus_secs(-hours_ago * 3600),
            passed,
            details: serde_json::json!({"bytes": 2_097_152, "rows": 10, "tables": 3}),
        }
    }

    #[test]
    fn backups_warn_after_26_hours_and_fail_on_a_failed_run() {
        let now = Timestamp::now();
        assert_eq!(
            backups(Some(&op(25, true, now)), now).status,
            CheckStatus::Ok
        );
        let old = backups(Some(&op(27, true, now)), now);
        assert_eq!(old.status, CheckStatus::Warn);
        assert!(old.value.contains("2.0 MiB"), "{}", old.value);
        assert_eq!(
            backups(Some(&op(1, false, now)), now).status,
            CheckStatus::Fail
        );
        assert_eq!(backups(None, now).status, CheckStatus::Warn);
    }

    #[test]
    fn drills_warn_after_92_days() {
        let now = Timestamp::now();
        assert_eq!(
            restore_drill(Some(&op(91 * 24, true, now)), now).status,
            CheckStatus::Ok
        );
        assert_eq!(
            restore_drill(Some(&op(93 * 24, true, now)), now).status,
            CheckStatus::Warn
        );
        assert_eq!(
            restore_drill(Some(&op(1, false, now)), now).status,
            CheckStatus::Fail
        );
    }

    #[test]
    fn retention_warns_on_overdue_conversations() {
        let now = Timestamp::now();
        let ran = op(1, true, now);
        let fine = RetentionSample {
            retention_days: 30,
            oldest_activity: Some(now.minus_days(30)),
            oldest_message: Some(now.minus_days(40)),
        };
        let r = judge_retention(Some(&ran), &[fine], now);
        assert_eq!(r.status, CheckStatus::Ok, "{}", r.value);
        assert!(r.value.contains("40 days"), "{}", r.value);
        let overdue = RetentionSample {
            oldest_activity: Some(now.minus_days(32)),
            ..fine
        };
        let r = judge_retention(Some(&ran), &[overdue], now);
        assert_eq!(r.status, CheckStatus::Warn, "{}", r.value);
    }

    #[test]
    fn local_hosts_need_no_tls() {
        assert!(is_local_host(Some("127.0.0.1")));
        assert!(is_local_host(Some("[::1]")));
        assert!(is_local_host(Some("/run/postgresql")));
        assert!(!is_local_host(Some("db.example.com")));
        assert!(!is_local_host(Some("10.0.0.5")));
    }
}
