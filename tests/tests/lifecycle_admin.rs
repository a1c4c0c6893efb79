//! The operator CLI's actions on both backends: each one is recorded in the hash-chained
//! operator audit log, suspension is stored, and changing, inserting or deleting any entry
//! makes verification fail. Tampering goes through a direct connection (the superuser on
//! PostgreSQL; on SQLite the append-only triggers are dropped first), as an attacker with
//! database access would.

use parlo::error::AppError;
use parlo::lifecycle::admin::Operator;
use parlo::lifecycle::operator_audit::{self as audit, ChainBroken, Head};
use parlo::lifecycle::suspension;
use parlo::model::*;
use parlo::storage::*;
use parlo_tests::fixture::NewTenant;
use parlo_tests::lifecycle::RawDb;
use parlo_tests::{Backend, TestStore, both_backends, test_store};

struct Fixture {
    ts: TestStore,
    raw: RawDb,
    op: Operator,
    head_file: std::path::PathBuf,
    _dir: tempfile::TempDir,
    acme: TenantId,
    bolt: TenantId,
}

async fn fixture(backend: Backend) -> Fixture {
    let ts = test_store(backend).await;
    let raw = RawDb::of(&ts.db).await;
    let dir = tempfile::tempdir().unwrap();
    let head_file = dir.path().join("operator-audit.head");
    let store = ts.store.clone();
    let mut ids = Vec::new();
    for (email, name) in [("ann@a.example", "Acme"), ("bob@b.example", "Bolt")] {
        let t = NewTenant::owned_by(email)
            .workspace(name)
            .create(&store)
            .await;
        ids.push(t.tenant);
    }
    let op = Operator::new(store, "alice-ops", Some(head_file.clone()));
    Fixture {
        ts,
        raw,
        op,
        head_file,
        _dir: dir,
        acme: ids[0],
        bolt: ids[1],
    }
}

impl Fixture {
    fn store(&self) -> &Store {
        &self.ts.store
    }

    /// Five recorded actions.
    async fn actions(&self) {
        self.op.list_workspaces().await.unwrap();
        self.op.usage(None).await.unwrap();
        self.op
            .suspend(self.acme, Some("abuse report #12"), Timestamp::now())
            .await
            .unwrap();
        self.op.unsuspend(self.acme, None).await.unwrap();
        self.op.usage(Some(self.bolt)).await.unwrap();
    }

    async fn verify(&self) -> Result<audit::VerifyReport, ChainBroken> {
        let recorded = Head::read(&self.head_file).unwrap();
        audit::verify(
            &self.store().operator_audit().await.unwrap(),
            recorded.as_ref(),
        )
    }

    /// Lets raw SQL change the log, as someone with direct database access could.
    async fn unprotect(&self) {
        if let RawDb::Sqlite(_) = self.raw {
            self.raw
                .exec(
                    "DROP TRIGGER operator_audit_no_update; DROP TRIGGER operator_audit_no_delete",
                )
                .await;
        }
    }
}

both_backends!(
    every_action_is_recorded_and_the_chain_verifies,
    the_application_cannot_rewrite_the_log,
    changing_any_entry_fails_verification,
    deleting_any_entry_fails_verification,
    inserting_an_entry_fails_verification,
    a_fully_recomputed_chain_is_caught_by_the_recorded_head,
    a_later_command_cannot_erase_the_evidence_of_deleted_entries
);

async fn every_action_is_recorded_and_the_chain_verifies(backend: Backend) {
    let f = fixture(backend).await;
    let (list, first) = f.op.list_workspaces().await.unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(first.seq, 1);
    assert_eq!(first.prev_hash, audit::GENESIS.to_vec());

    let (usage, _) = f.op.usage(None).await.unwrap();
    assert_eq!(usage.iter().map(|u| u.usage.members).sum::<i64>(), 2);

    f.op.suspend(
        f.acme,
        Some("abuse report #12"),
        Timestamp(1_700_000_000_000),
    )
    .await
    .unwrap();
    assert_eq!(
        f.store().suspended_at(f.acme).await.unwrap(),
        Some(Timestamp(1_700_000_000_000))
    );
    assert_eq!(f.store().suspended_at(f.bolt).await.unwrap(), None);
    let (list, _) = f.op.list_workspaces().await.unwrap();
    assert!(
        list.iter()
            .any(|w| w.id == f.acme && w.suspended_at.is_some())
    );
    let refused = AppError::from(
        suspension::refuse_if_suspended(f.store(), f.acme)
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (refused.status().as_u16(), refused.code()),
        (403, "workspace_suspended")
    );
    assert!(
        suspension::refuse_if_suspended(f.store(), f.bolt)
            .await
            .is_ok()
    );
    f.op.unsuspend(f.acme, None).await.unwrap();
    assert_eq!(f.store().suspended_at(f.acme).await.unwrap(), None);
    assert!(
        suspension::refuse_if_suspended(f.store(), f.acme)
            .await
            .is_ok()
    );

    // A failing action is recorded as attempted, then as failed.
    let missing = TenantId::new();
    assert!(f.op.suspend(missing, None, Timestamp::now()).await.is_err());

    f.op.delete_workspace(f.bolt, Some("customer asked"))
        .await
        .unwrap();
    assert!(f.store().workspace(f.bolt).await.unwrap().is_none());

    let log = f.store().operator_audit().await.unwrap();
    let actions: Vec<&str> = log.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "workspaces.list",
            "workspaces.usage",
            "workspace.suspend",
            "workspaces.list",
            "workspace.unsuspend",
            "workspace.suspend",
            "workspace.suspend.failed",
            "workspace.delete",
        ]
    );
    assert!(log.iter().all(|e| e.actor == "alice-ops"));
    assert_eq!(log[2].target, f.acme.to_string());
    assert!(log[2].details.contains("abuse report #12"));
    // The operator log survives the workspace it talks about.
    assert_eq!(log[7].target, f.bolt.to_string());

    let head = Head::read(&f.head_file)
        .unwrap()
        .expect("head file written");
    assert_eq!(head, Head::of(log.last().unwrap()).unwrap());
    let r = f.op.verify_audit(None).await.unwrap();
    assert_eq!((r.entries, r.anchored), (8, true));
    assert_eq!(
        f.store().operator_audit().await.unwrap().len(),
        8,
        "verify records nothing"
    );
}

async fn the_application_cannot_rewrite_the_log(backend: Backend) {
    let f = fixture(backend).await;
    f.actions().await;
    // Through the application's own connection (PostgreSQL: the app role, whose UPDATE
    // and DELETE were revoked; SQLite: the triggers).
    let err = match backend {
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&f.ts.db.app_url()).await.unwrap();
            let upd = sqlx::query("UPDATE operator_audit SET actor = 'x'")
                .execute(&pool)
                .await;
            let del = sqlx::query("DELETE FROM operator_audit")
                .execute(&pool)
                .await;
            assert!(del.is_err());
            upd.unwrap_err()
        }
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&f.ts.db.app_url()).await.unwrap();
            let del = sqlx::query("DELETE FROM operator_audit")
                .execute(&pool)
                .await;
            assert!(del.is_err());
            sqlx::query("UPDATE operator_audit SET actor = 'x'")
                .execute(&pool)
                .await
                .unwrap_err()
        }
    };
    assert!(
        err.to_string().contains("permission denied") || err.to_string().contains("append-only"),
        "{err}"
    );
    assert!(f.verify().await.is_ok());
}

async fn changing_any_entry_fails_verification(backend: Backend) {
    for seq in 1..=5 {
        let f = fixture(backend).await;
        f.actions().await;
        assert!(f.verify().await.is_ok());
        f.unprotect().await;
        f.raw
            .exec(&format!(
                "UPDATE operator_audit SET target = 'someone-else' WHERE seq = {seq}"
            ))
            .await;
        assert_eq!(f.verify().await, Err(ChainBroken::Changed { seq }));
        assert!(f.op.verify_audit(None).await.is_err());
    }
    // Changing only a timestamp or the stored hash is caught too.
    let f = fixture(backend).await;
    f.actions().await;
    f.unprotect().await;
    f.raw
        .exec("UPDATE operator_audit SET created_at = created_at + 1 WHERE seq = 3")
        .await;
    assert_eq!(f.verify().await, Err(ChainBroken::Changed { seq: 3 }));
}

async fn deleting_any_entry_fails_verification(backend: Backend) {
    for seq in 1..=5 {
        let f = fixture(backend).await;
        f.actions().await;
        f.unprotect().await;
        f.raw
            .exec(&format!("DELETE FROM operator_audit WHERE seq = {seq}"))
            .await;
        let r = f.verify().await;
        if seq == 5 {
            // The newest entry: only the recorded head reveals it.
            assert_eq!(
                r,
                Err(ChainBroken::Truncated {
                    entries: 4,
                    head_seq: 5
                })
            );
            let log = f.store().operator_audit().await.unwrap();
            assert!(
                audit::verify(&log, None).is_ok(),
                "documented limit without a head"
            );
        } else {
            assert!(
                matches!(r, Err(ChainBroken::Sequence { .. })),
                "{seq}: {r:?}"
            );
        }
    }
    // Deleting everything.
    let f = fixture(backend).await;
    f.actions().await;
    f.unprotect().await;
    f.raw.exec("DELETE FROM operator_audit").await;
    assert!(matches!(
        f.verify().await,
        Err(ChainBroken::Truncated { entries: 0, .. })
    ));
}

async fn inserting_an_entry_fails_verification(backend: Backend) {
    // Appended at the end with a made-up hash.
    let f = fixture(backend).await;
    f.actions().await;
    f.unprotect().await;
    f.raw.exec_with(
        "INSERT INTO operator_audit (seq, created_at, actor, action, target, details, prev_hash, hash) \
         VALUES ($3, $4, 'mallory', 'workspace.delete', 'x', '{}', $1, $2)",
        &[vec![0; 32], vec![1; 32]], &[6, 1],
    ).await;
    assert!(matches!(
        f.verify().await,
        Err(ChainBroken::Link { seq: 6 })
    ));

    // Slipped in between entries 2 and 3, correctly linked to entry 2 and with a correct
    // hash of its own, the later entries renumbered: entry 3 no longer links to it.
    let f = fixture(backend).await;
    f.actions().await;
    f.unprotect().await;
    let log = f.store().operator_audit().await.unwrap();
    f.raw
        .exec("UPDATE operator_audit SET seq = seq + 100 WHERE seq >= 3")
        .await;
    f.raw
        .exec("UPDATE operator_audit SET seq = seq - 99 WHERE seq >= 100")
        .await;
    let mut forged = OperatorAuditEntry {
        seq: 3,
        created_at: Timestamp(log[1].created_at.0 + 1),
        actor: "mallory".into(),
        action: "workspace.unsuspend".into(),
        target: f.acme.to_string(),
        details: "{}".into(),
        prev_hash: log[1].hash.clone(),
        hash: vec![],
    };
    forged.hash = audit::entry_hash(&forged.prev_hash, &forged).to_vec();
    f.raw.exec_with(
        &format!(
            "INSERT INTO operator_audit (seq, created_at, actor, action, target, details, prev_hash, hash) \
             VALUES ($3, $4, 'mallory', 'workspace.unsuspend', '{}', '{{}}', $1, $2)",
            forged.target
        ),
        &[forged.prev_hash.clone(), forged.hash.clone()], &[3, forged.created_at.0],
    ).await;
    let r = f.verify().await;
    assert_eq!(r, Err(ChainBroken::Link { seq: 4 }), "{r:?}");
}

async fn a_fully_recomputed_chain_is_caught_by_the_recorded_head(backend: Backend) {
    let f = fixture(backend).await;
    f.actions().await;
    f.unprotect().await;
    // Rewrite entry 3 and recompute every hash from there: internally consistent.
    let mut log = f.store().operator_audit().await.unwrap();
    log[2].target = "forged".into();
    for i in 2..log.len() {
        log[i].prev_hash = log[i - 1].hash.clone();
        log[i].hash = audit::entry_hash(&log[i].prev_hash, &log[i]).to_vec();
    }
    f.raw
        .exec("DELETE FROM operator_audit WHERE seq >= 3")
        .await;
    for e in &log[2..] {
        f.raw.exec_with(
            &format!(
                "INSERT INTO operator_audit (seq, created_at, actor, action, target, details, prev_hash, hash) \
                 VALUES ($3, $4, '{}', '{}', '{}', '{}', $1, $2)",
                e.actor, e.action, e.target, e.details.replace('\'', "''")
            ),
            &[e.prev_hash.clone(), e.hash.clone()], &[e.seq, e.created_at.0],
        ).await;
    }
    let entries = f.store().operator_audit().await.unwrap();
    assert!(
        audit::verify(&entries, None).is_ok(),
        "documented limit: a rewrite with recomputed hashes"
    );
    assert_eq!(f.verify().await, Err(ChainBroken::HeadMismatch { seq: 5 }));
}

/// Attack: after the newest entries were deleted, the next action (even a listing) re-used
/// their sequence numbers and overwrote the head file, so `audit verify` said intact. Every
/// append now checks the log's tip against the recorded head first and refuses on a
/// mismatch: nothing is appended, the head file keeps the evidence. Another operator's
/// appends since the head was written (a tip that chains from it) are not a mismatch.
async fn a_later_command_cannot_erase_the_evidence_of_deleted_entries(backend: Backend) {
    let f = fixture(backend).await;
    f.actions().await;
    // Another operator, with a head file of their own, appends after ours was written.
    let dir = tempfile::tempdir().unwrap();
    let other = Operator::new(
        f.store().clone(),
        "bob-ops",
        Some(dir.path().join("bob.head")),
    );
    other.list_workspaces().await.unwrap();
    f.op.list_workspaces()
        .await
        .expect("a tip that chains from the recorded head is fine");
    assert_eq!(f.store().operator_audit().await.unwrap().len(), 7);

    let head_before = std::fs::read_to_string(&f.head_file).unwrap();
    assert!(head_before.starts_with("7:"), "{head_before}");
    f.unprotect().await;
    f.raw
        .exec("DELETE FROM operator_audit WHERE seq >= 6")
        .await;
    let err = f.op.list_workspaces().await.unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("refusing to append")
            && msg.contains(&format!("entry {}", head_before.trim()))
            && msg.contains("newest entry is 5:"),
        "{msg}"
    );
    assert!(
        f.op.suspend(f.acme, None, Timestamp::now()).await.is_err(),
        "no action runs unrecorded"
    );
    assert_eq!(f.store().suspended_at(f.acme).await.unwrap(), None);
    assert_eq!(std::fs::read_to_string(&f.head_file).unwrap(), head_before);
    assert_eq!(f.store().operator_audit().await.unwrap().len(), 5);
    assert_eq!(
        f.verify().await,
        Err(ChainBroken::Truncated {
            entries: 5,
            head_seq: 7
        })
    );

    // Everything deleted: refused too.
    f.raw.exec("DELETE FROM operator_audit").await;
    let err = f.op.usage(None).await.unwrap_err();
    assert!(format!("{err:#}").contains("the log is empty"), "{err:#}");
    assert!(f.store().operator_audit().await.unwrap().is_empty());
}
