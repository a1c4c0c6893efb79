//! The trust page's live checks (issue 17), on both backends: each test breaks the condition
//! a check measures and sees `/trust` and `/trust/status.json` report it within one check
//! interval (1 s here), then repairs it and sees the check recover. Also `/readyz` and the
//! operator-only metrics listener.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use parlo::lifecycle::operator_audit::{self, OperatorAction};
use parlo::lifecycle::records;
use parlo::lifecycle::retention::{self, RetentionOptions};
use parlo::model::*;
use parlo::storage::Job;
use parlo::trust::job::RunOutcome;
use parlo::trust::{TrustJob, run_once};
use parlo_tests::fake_mistral::FakeMistral;
use parlo_tests::fixture::{NewTenant, SHOP};
use parlo_tests::lifecycle::RawDb;
use parlo_tests::{Backend, TestApp, both_backends, spawn_app_with};
use serde_json::{Value, json};

/// How long a change may take to show: one check interval (1 s) and the run itself.
const WITHIN: Duration = Duration::from_millis(3000);

/// An app whose checks run every second, and the running schedule.
async fn checked(
    backend: Backend,
    adjust: impl FnOnce(&mut parlo::config::Settings),
) -> (TestApp, TrustJob) {
    let app = spawn_app_with(backend, |s| {
        s.trust_check_interval_secs = Some(1);
        adjust(s);
    })
    .await;
    let s = &app.state;
    let job = parlo::trust::spawn(
        s.store.clone(),
        s.config.clone(),
        s.dist.clone(),
        s.metrics.clone(),
    );
    (app, job)
}

async fn status(app: &TestApp) -> Value {
    let resp = app
        .client
        .get(app.url("/trust/status.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

async fn page(app: &TestApp) -> String {
    let resp = app.client.get(app.url("/trust")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.text().await.unwrap()
}

fn check<'a>(status: &'a Value, name: &str) -> Option<&'a Value> {
    status["checks"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == name)
}

/// Waits until check `name` has `want` status whose value contains `text`, in the JSON and
/// on the page (HTML-escaped as the template escapes it), and returns its JSON.
async fn wait_for(app: &TestApp, name: &str, want: &str, text: &str) -> Value {
    let started = Instant::now();
    loop {
        let s = status(app).await;
        if let Some(c) = check(&s, name)
            && c["status"] == want
            && c["value"].as_str().is_some_and(|v| v.contains(text))
        {
            let html = page(app).await;
            let title = format!("<th scope=\"row\">{}</th>", parlo::trust::title(name));
            let row = html
                .split("<tr class=\"check-")
                .find(|r| r.contains(&title))
                .unwrap_or_else(|| panic!("no row {title} on /trust:\n{html}"));
            let row = unescape(row.split("</tr>").next().unwrap());
            assert!(row.starts_with(want), "row {row}");
            assert!(row.contains(&format!("<strong>{want}</strong>")), "{row}");
            assert!(row.contains(text), "{text:?} not in {row}");
            return c.clone();
        }
        assert!(
            started.elapsed() < WITHIN,
            "{name} did not become {want} with {text:?} within {WITHIN:?}: {:#}",
            check(&s, name).cloned().unwrap_or(Value::Null)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The text of HTML-escaped markup, as a browser would show it.
fn unescape(s: &str) -> String {
    s.replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&#34;", "\"")
        .replace("&quot;", "\"")
        .replace("&#x2f;", "/")
        .replace("&#x2F;", "/")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

both_backends!(
    every_check_reports_with_its_time,
    backups_older_than_26_hours_warn_and_a_fresh_one_recovers,
    a_failed_restore_drill_fails_and_a_passed_one_recovers,
    overdue_conversations_warn_until_retention_runs,
    a_broken_audit_chain_fails_until_it_is_repaired,
    the_widget_check_follows_the_published_bundles,
    transport_reports_plain_http_hops,
    readyz_needs_every_migration,
    one_process_at_a_time_runs_the_checks,
    a_chat_turn_is_counted_on_the_operator_listener_only,
);

async fn every_check_reports_with_its_time(backend: Backend) {
    let (app, _job) = checked(backend, |_| {}).await;
    wait_for(&app, "widget", "ok", "sha384-").await;
    let s = status(&app).await;
    let names: Vec<&str> = s["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        parlo::trust::CHECKS
            .iter()
            .map(|(n, _)| *n)
            .collect::<Vec<_>>()
    );
    for c in s["checks"].as_array().unwrap() {
        let at = c["checked_at"].as_str().unwrap();
        assert!(at.starts_with("20") && at.ends_with('Z'), "{c}");
        assert_eq!(c["stale"], false, "{c}");
    }
    assert_eq!(s["interval_secs"], 1);
    // Nothing has been backed up or drilled yet: the page says so instead of claiming it.
    assert_eq!(check(&s, "backups").unwrap()["status"], "warn");
    assert_eq!(check(&s, "restore_drill").unwrap()["status"], "warn");
    let html = page(&app).await;
    assert!(html.contains("Checked continuously"), "{html}");
    assert!(html.contains("every second"), "{html}");
}

async fn backups_older_than_26_hours_warn_and_a_fresh_one_recovers(backend: Backend) {
    let (app, _job) = checked(backend, |_| {}).await;
    let store = app.store();
    let backup = |hours_ago: i64| Operation {
        at: Timestamp::now().plus_secs(-hours_ago * 3600),
        passed: true,
        details: json!({"bytes": 3 * 1024 * 1024, "rows": 42, "tables": 12}),
    };
    store
        .record_operation(OperationKind::Backup, &backup(27))
        .await
        .unwrap();
    wait_for(&app, "backups", "warn", "Older than 26 hours").await;
    store
        .record_operation(OperationKind::Backup, &backup(0))
        .await
        .unwrap();
    let c = wait_for(&app, "backups", "ok", "3.0 MiB encrypted, 42 rows").await;
    assert!(!c["value"].as_str().unwrap().contains("Older"), "{c}");
    // A failed attempt (as the serve job records it) fails the check.
    records::backup(store, &Err(anyhow::anyhow!("disk full"))).await;
    wait_for(&app, "backups", "fail", "failed").await;
}

async fn a_failed_restore_drill_fails_and_a_passed_one_recovers(backend: Backend) {
    let (app, _job) = checked(backend, |_| {}).await;
    let store = app.store();
    wait_for(&app, "restore_drill", "warn", "No restore drill").await;
    // What `parlo restore --verify` records when the drill fails.
    records::restore_drill(store, &Err(anyhow::anyhow!("row counts differ"))).await;
    let c = wait_for(
        &app,
        "restore_drill",
        "fail",
        "The last restore drill failed",
    )
    .await;
    assert!(!c["value"].as_str().unwrap().contains("row counts"), "{c}");
    let drill = |days_ago: i64| Operation {
        at: Timestamp::now().minus_days(days_ago),
        passed: true,
        details: json!({"tables": 14, "rows": 1234}),
    };
    store
        .record_operation(OperationKind::RestoreDrill, &drill(93))
        .await
        .unwrap();
    wait_for(&app, "restore_drill", "warn", "Older than 92 days").await;
    store
        .record_operation(OperationKind::RestoreDrill, &drill(0))
        .await
        .unwrap();
    wait_for(&app, "restore_drill", "ok", "14 tables, 1234 rows").await;
}

async fn overdue_conversations_warn_until_retention_runs(backend: Backend) {
    let (app, _job) = checked(backend, |_| {}).await;
    let store = app.store();
    wait_for(&app, "retention", "warn", "Retention has not run yet").await;
    let t = NewTenant::owned_by("ann@a.example")
        .bot(BotInput {
            name: "Short memory".into(),
            allowed_origins: SHOP.into(),
            retention_days: Some(30),
            ..BotInput::default()
        })
        .create(store)
        .await;
    let c = store
        .create_conversation(
            t.tenant,
            &NewConversation {
                bot_id: t.bot.id,
                origin: SHOP.into(),
                resume_hash: vec![1; 32],
            },
        )
        .await
        .unwrap();
    store
        .append_message(
            t.tenant,
            &NewMessage {
                conversation_id: c.id,
                role: MessageRole::User,
                content: "hello".into(),
                status: MessageStatus::Complete,
            },
        )
        .await
        .unwrap();
    let opts = RetentionOptions::default();
    retention::run(store, Timestamp::now(), opts).await.unwrap();
    wait_for(&app, "retention", "ok", "longest retention 30 days").await;
    // Forty days without activity: retention (30 days) should have deleted it.
    let raw = RawDb::of(&app.db).await;
    let old = Timestamp::now().minus_days(40).0;
    raw.set_last_activity(t.tenant.0, c.id.0, old).await;
    raw.exec(&format!("UPDATE messages SET created_at = {old}"))
        .await;
    let c = wait_for(&app, "retention", "warn", "past their retention").await;
    assert!(c["value"].as_str().unwrap().contains("40 days old"), "{c}");
    retention::run(store, Timestamp::now(), opts).await.unwrap();
    wait_for(
        &app,
        "retention",
        "ok",
        "deleted 2 rows; no stored messages",
    )
    .await;
}

async fn a_broken_audit_chain_fails_until_it_is_repaired(backend: Backend) {
    let (app, _job) = checked(backend, |_| {}).await;
    let store = app.store();
    for action in ["workspace.suspend", "workspace.unsuspend"] {
        operator_audit::append(
            store,
            &OperatorAction {
                actor: "ops".into(),
                action: action.into(),
                target: "w".into(),
                details: json!({}),
            },
            None,
        )
        .await
        .unwrap();
    }
    let ok = wait_for(&app, "operator_audit", "ok", "2 entries, head 2:").await;
    let head = store.last_operator_audit().await.unwrap().unwrap();
    assert!(
        ok["value"].as_str().unwrap().contains(
            &head
                .hash
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        ),
        "{ok}"
    );
    // Someone with database access appends an entry that does not link to the chain.
    let raw = RawDb::of(&app.db).await;
    raw.exec_with(
        "INSERT INTO operator_audit (seq, created_at, actor, action, target, details, prev_hash, hash) \
         VALUES ($3, $4, 'mallory', 'workspace.delete', 'x', '{}', $1, $2)",
        &[vec![0; 32], vec![1; 32]],
        &[3, 1],
    )
    .await;
    wait_for(&app, "operator_audit", "fail", "entry 3 does not link").await;
    if let RawDb::Sqlite(_) = raw {
        raw.exec("DROP TRIGGER operator_audit_no_delete").await;
    }
    raw.exec("DELETE FROM operator_audit WHERE seq = 3").await;
    wait_for(&app, "operator_audit", "ok", "2 entries").await;
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

async fn the_widget_check_follows_the_published_bundles(backend: Backend) {
    let dist = tempfile::tempdir().unwrap();
    let dir = dist.path().to_owned();
    let (app, _job) = checked(backend, |s| s.dist_dir = Some(dir)).await;
    wait_for(&app, "widget", "fail", "No published widget").await;
    copy_dir(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dist"),
        dist.path(),
    );
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(dist.path().join("manifest.json")).unwrap()).unwrap();
    let latest = manifest["latest"].as_str().unwrap();
    let hash = manifest["versions"][latest]["files"]["widget.js"]["integrity"]
        .as_str()
        .unwrap();
    let c = wait_for(&app, "widget", "ok", &format!("widget.js {hash}")).await;
    assert!(
        c["value"]
            .as_str()
            .unwrap()
            .contains(&format!("Latest version {latest}")),
        "{c}"
    );
}

async fn transport_reports_plain_http_hops(backend: Backend) {
    // The test set-up: plain http public URL, upstream and database on this host.
    let (app, _job) = checked(backend, |_| {}).await;
    let c = wait_for(&app, "transport", "warn", "Public URL is plain http").await;
    let v = c["value"].as_str().unwrap();
    assert!(v.contains("upstream api.mistral.ai over https"), "{v}");
    assert!(
        v.contains("database is a local file") || v.contains("database is on this host"),
        "{v}"
    );
    // An upstream reached over plain http across the network fails the check.
    let (broken, _job2) = checked(backend, |s| {
        s.mistral_base_url = Some("http://llm.example.net".parse().unwrap())
    })
    .await;
    wait_for(
        &broken,
        "transport",
        "fail",
        "upstream llm.example.net is plain http",
    )
    .await;
}

async fn one_process_at_a_time_runs_the_checks(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let s = &app.state;
    // Another process (or task) is running them: this one does nothing and stores nothing.
    let held = s
        .store
        .try_lock_job(Job::TrustChecks)
        .await
        .unwrap()
        .unwrap();
    let outcome = run_once(&s.store, &s.config, &s.dist, Timestamp::now())
        .await
        .unwrap();
    assert_eq!(outcome, RunOutcome::AlreadyRunning);
    assert!(s.store.checks().await.unwrap().is_empty());
    held.release().await;
    let outcome = run_once(&s.store, &s.config, &s.dist, Timestamp::now())
        .await
        .unwrap();
    assert_eq!(
        outcome,
        RunOutcome::Ran {
            checks: parlo::trust::CHECKS.len()
        }
    );
    assert_eq!(
        s.store.checks().await.unwrap().len(),
        parlo::trust::CHECKS.len()
    );
}

async fn readyz_needs_every_migration(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let resp = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["migrations"], "current");
    let raw = RawDb::of(&app.db).await;
    raw.exec("DELETE FROM _sqlx_migrations WHERE version = 9")
        .await;
    let resp = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["reason"], "database migrations are not current");
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200, "the process is still alive");
}

async fn a_chat_turn_is_counted_on_the_operator_listener_only(backend: Backend) {
    const KEY: &str = "mk-tenant-key-0123456789abcdef";
    let fake = FakeMistral::start().await;
    fake.accept_key(KEY);
    let base = fake.base_url.clone();
    let app = spawn_app_with(backend, move |s| {
        s.mistral_base_url = Some(base);
        s.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let metrics = app.metrics_addr.expect("a metrics listener");
    assert_ne!(metrics, app.addr);
    let t = NewTenant::owned_by("ann@example.com")
        .with_key(KEY)
        .create(app.store())
        .await;
    let widget = t.widget(&app, SHOP).session().await;
    let resp = widget.send("Hello?").await;
    assert_eq!(resp.status(), 200);
    let body = resp.text().await.unwrap();
    assert!(body.contains("event: done"), "{body}");
    let scrape = || async {
        let resp = reqwest::get(format!("http://{metrics}/metrics"))
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.text().await.unwrap()
    };
    // The answer is finished (and counted) just before the last event is sent.
    let mut text = scrape().await;
    let started = Instant::now();
    while !text.contains("parlo_chat_turns_total{outcome=\"complete\"} 1") {
        assert!(started.elapsed() < WITHIN, "turn not counted:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
        text = scrape().await;
    }
    assert!(
        text.contains(
            "parlo_http_request_duration_seconds_count{method=\"POST\",route=\"/api/widget/v1/messages\",status=\"2xx\"} 1"
        ),
        "{text}"
    );
    assert!(
        text.contains("parlo_time_to_first_token_seconds_count 1"),
        "{text}"
    );
    assert!(text.contains("parlo_open_streams 0"), "{text}");
    // An upstream failure is counted by its kind.
    fake.set_fault(parlo_tests::fake_mistral::Fault::Status500);
    let body = widget.send("Again?").await.text().await.unwrap();
    assert!(body.contains("upstream_unavailable"), "{body}");
    let started = Instant::now();
    while !text.contains("parlo_upstream_errors_total{kind=\"upstream_unavailable\"} 1") {
        assert!(
            started.elapsed() < WITHIN,
            "upstream error not counted:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        text = scrape().await;
    }
    assert!(
        text.contains("parlo_chat_turns_total{outcome=\"failed\"} 1"),
        "{text}"
    );
    // Background jobs are counted with their durations.
    let s = &app.state;
    let _job = parlo::trust::spawn(
        s.store.clone(),
        s.config.clone(),
        s.dist.clone(),
        s.metrics.clone(),
    );
    let started = Instant::now();
    while !text.contains("parlo_job_runs_total{job=\"trust_checks\",outcome=\"ok\"} 1") {
        assert!(started.elapsed() < WITHIN, "job run not counted:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
        text = scrape().await;
    }
    // The durable queues' depths are reported (nothing waits in either here).
    parlo::lifecycle::jobs::record_queue_depths(&s.store, &s.metrics).await;
    let text = scrape().await;
    assert!(
        text.contains("parlo_queue_depth{queue=\"knowledge\"} 0"),
        "{text}"
    );
    assert!(
        text.contains("parlo_queue_depth{queue=\"mail\"} 0"),
        "{text}"
    );
    assert!(
        text.contains("parlo_job_duration_seconds_count{job=\"trust_checks\"} 1"),
        "{text}"
    );
    // The public listener does not serve metrics.
    let public = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(public.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rls_switched_off_on_one_table_fails_isolation_until_forced_again() {
    let (app, _job) = checked(Backend::Postgres, |_| {}).await;
    let ok = wait_for(&app, "tenant_isolation", "ok", "enabled and forced on all").await;
    assert!(ok["value"].as_str().unwrap().contains("NOINHERIT"), "{ok}");
    let raw = RawDb::of(&app.db).await;
    raw.exec("ALTER TABLE messages NO FORCE ROW LEVEL SECURITY")
        .await;
    wait_for(
        &app,
        "tenant_isolation",
        "fail",
        "row-level security is not forced on messages",
    )
    .await;
    raw.exec("ALTER TABLE messages FORCE ROW LEVEL SECURITY")
        .await;
    wait_for(&app, "tenant_isolation", "ok", "enabled and forced on all").await;
    raw.exec("ALTER TABLE bots DISABLE ROW LEVEL SECURITY")
        .await;
    wait_for(
        &app,
        "tenant_isolation",
        "fail",
        "row-level security is not enabled on bots",
    )
    .await;
    raw.exec("ALTER TABLE bots ENABLE ROW LEVEL SECURITY").await;
    wait_for(&app, "tenant_isolation", "ok", "enabled and forced on all").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_says_what_isolates_tenants() {
    let (app, _job) = checked(Backend::Sqlite, |_| {}).await;
    wait_for(&app, "tenant_isolation", "info", "WHERE tenant_id").await;
}
