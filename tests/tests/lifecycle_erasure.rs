//! Erasure on both backends, proven by counting rows in every table of the schema (found in
//! the catalog, so a table added later is counted too) before and after.

use std::collections::BTreeMap;

use parlo::lifecycle::erasure::{self, ErasureError};
use parlo::model::*;
use parlo::storage::*;
use parlo_tests::fixture::{self, NewTenant};
use parlo_tests::lifecycle::RawDb;
use parlo_tests::{Backend, both_backends, test_store};
use uuid::Uuid;

/// Tables without tenant data, and how their rows are tied to a person, if at all.
const GLOBAL: &[(&str, Option<&str>)] = &[
    ("users", Some("id")),
    ("login_sessions", Some("user_id")),
    ("account_tokens", Some("user_id")),
    // Recipients' addresses, not accounts: a closed account's closing notice must still go
    // out; finished messages are forgotten after 7 days (docs/operations.md).
    ("mail_outbox", None),
    ("rate_limits", None),
    ("operator_audit", None),
    // The trust page's check results and recorded operations: counts and dates, no person.
    ("trust_checks", None),
    ("operations", None),
    ("_sqlx_migrations", None),
];

struct World {
    ann: UserId,
    bob: UserId,
    carol: UserId,
    /// Ann is its only member.
    solo: TenantId,
    /// Bob owns it; Ann and Carol are members.
    shared: TenantId,
}

/// A row in every tenant table for both workspaces, sessions for everyone.
async fn world(store: &Store) -> World {
    let solo = NewTenant::owned_by("ann@a.example")
        .workspace("Solo")
        .with_key("sk-erasure-solo-abcd")
        .create(store)
        .await;
    let shared = NewTenant::owned_by("bob@b.example")
        .workspace("Shared")
        .with_key("sk-erasure-shared-abcd")
        .create(store)
        .await;
    let carol = store
        .create_user(&Email::parse("carol@c.example").unwrap(), "h")
        .await
        .unwrap()
        .id;
    let (ann, bob) = (solo.user, shared.user);
    for user_id in [ann, bob, carol] {
        store
            .create_login_session(&NewLoginSession {
                user_id,
                token_hash: Uuid::new_v4().as_bytes().to_vec(),
                mfa_verified: false,
                expires_at: Timestamp(Timestamp::now().0 + 3_600_000),
            })
            .await
            .unwrap();
        store
            .create_account_token(
                user_id,
                TokenPurpose::Reset,
                Uuid::new_v4().as_bytes(),
                None,
                Timestamp(Timestamp::now().0 + 3_600_000),
            )
            .await
            .unwrap();
    }
    store
        .add_member(shared.tenant, ann, Role::Member)
        .await
        .unwrap();
    store
        .add_member(shared.tenant, carol, Role::Admin)
        .await
        .unwrap();
    for tenant in [&solo, &shared] {
        let (t, bot) = (tenant.tenant, &tenant.bot);
        store
            .create_invitation(
                t,
                &NewInvitation {
                    token_hash: t.0.as_bytes().to_vec(),
                    role: Role::Member,
                    created_by: None,
                    expires_at: Timestamp::now().plus_secs(3600),
                    email: None,
                },
            )
            .await
            .unwrap();
        let (c, m) = fixture::chat(
            store,
            t,
            bot.id,
            &[(MessageRole::User, "my address is 1 Main St")],
        )
        .await;
        fixture::attachment(store, t, c.id, m.first(), "id.png").await;
        parlo_tests::knowledge::stage_rows(store, t, bot.id, c.id, m[0].id).await;
        let target = bot.id.to_string();
        fixture::audit_entry(store, t, Some(ann), "bot.update", &target).await;
    }
    store
        .hit_rate_limits(&[RateLimitHit {
            key_hash: vec![9; 32],
            window_start: Timestamp(0),
            expires_at: Timestamp(60_000),
        }])
        .await
        .unwrap();
    World {
        ann,
        bob,
        carol,
        solo: solo.tenant,
        shared: shared.tenant,
    }
}

/// For every table: (total rows, rows of `tenant`, rows of `user`). Fails on a table it does
/// not know how to attribute, so new tables cannot escape the erasure tests.
async fn census(raw: &RawDb, tenant: TenantId, user: UserId) -> BTreeMap<String, (i64, i64, i64)> {
    let mut out = BTreeMap::new();
    for table in raw.tables().await {
        let total = raw.count(&table).await;
        let (of_tenant, of_user) = if table == "workspaces" {
            (raw.count_where(&table, "id", tenant.0).await, 0)
        } else if raw.has_column(&table, "tenant_id").await {
            let u = if raw.has_column(&table, "user_id").await {
                raw.count_where(&table, "user_id", user.0).await
            } else {
                0
            };
            (raw.count_where(&table, "tenant_id", tenant.0).await, u)
        } else {
            let Some((_, person)) = GLOBAL.iter().find(|(n, _)| *n == table) else {
                panic!(
                    "table {table} is neither tenant-scoped (tenant_id) nor a known global table"
                );
            };
            let u = match person {
                Some(col) => raw.count_where(&table, col, user.0).await,
                None => 0,
            };
            (0, u)
        };
        out.insert(table, (total, of_tenant, of_user));
    }
    out
}

fn tenant_tables(c: &BTreeMap<String, (i64, i64, i64)>) -> Vec<&String> {
    c.iter()
        .filter(|(_, (_, t, _))| *t > 0)
        .map(|(n, _)| n)
        .collect()
}

both_backends!(
    deleting_a_workspace_removes_every_row_of_it,
    deleting_an_account_removes_its_rows_and_solo_workspaces,
    the_only_owner_of_a_shared_workspace_is_refused_and_nothing_changes
);

async fn deleting_a_workspace_removes_every_row_of_it(backend: Backend) {
    let ts = test_store(backend).await;
    let store = &ts.store;
    let raw = RawDb::of(&ts.db).await;
    let w = world(&ts.store).await;
    let before = census(&raw, w.solo, w.ann).await;
    let other_before = census(&raw, w.shared, w.bob).await;
    // The fixture reaches every tenant table, so the test can fail.
    for (table, (_, of_tenant, _)) in &before {
        if !GLOBAL.iter().any(|(n, _)| n == table) {
            assert!(
                *of_tenant > 0,
                "fixture has no {table} row for the workspace"
            );
        }
    }
    assert!(erasure::erase_workspace(store, w.solo).await.unwrap());
    let after = census(&raw, w.solo, w.ann).await;
    let other_after = census(&raw, w.shared, w.bob).await;
    for (table, (total, of_tenant, _)) in &after {
        assert_eq!(
            *of_tenant, 0,
            "{table} still holds rows of the deleted workspace"
        );
        let (total_before, of_tenant_before, _) = before[table];
        assert_eq!(
            *total,
            total_before - of_tenant_before,
            "{table}: other rows changed"
        );
        assert_eq!(
            (other_after[table].1, other_after[table].2),
            (other_before[table].1, other_before[table].2),
            "{table}: the other workspace or its owner changed"
        );
    }
    assert!(tenant_tables(&after).is_empty());
    assert!(
        !erasure::erase_workspace(store, w.solo).await.unwrap(),
        "already gone"
    );
    raw.close().await;
}

async fn deleting_an_account_removes_its_rows_and_solo_workspaces(backend: Backend) {
    let ts = test_store(backend).await;
    let store = &ts.store;
    let raw = RawDb::of(&ts.db).await;
    let w = world(&ts.store).await;
    let solo_before = census(&raw, w.solo, w.ann).await;
    let shared_before = census(&raw, w.shared, w.ann).await;
    assert_eq!(shared_before["memberships"].1, 3);
    let bob_before = census(&raw, w.shared, w.bob).await;
    assert_eq!(
        solo_before["memberships"].2, 2,
        "Ann belongs to both workspaces"
    );

    let r = erasure::erase_account(store, w.ann).await.unwrap();
    assert_eq!(r.workspaces_deleted, vec![w.solo]);
    assert_eq!((r.memberships_removed, r.sessions_deleted), (1, 1));

    let solo_after = census(&raw, w.solo, w.ann).await;
    let shared_after = census(&raw, w.shared, w.ann).await;
    let bob_after = census(&raw, w.shared, w.bob).await;
    for (table, (total, of_solo, of_ann)) in &solo_after {
        assert_eq!(
            *of_solo, 0,
            "{table} still holds rows of Ann's solo workspace"
        );
        assert_eq!(*of_ann, 0, "{table} still holds rows of Ann");
        let (total_before, of_solo_before, of_ann_before) = solo_before[table];
        // Rows of the solo workspace and rows of Ann, counting her solo membership once.
        let overlap = if table == "memberships" { 1 } else { 0 };
        assert_eq!(
            *total,
            total_before - of_solo_before - of_ann_before + overlap,
            "{table}"
        );
        // The shared workspace keeps all of its data but Ann's membership; Bob keeps his.
        let shared_expected = shared_before[table].1 - if table == "memberships" { 1 } else { 0 };
        assert_eq!(
            shared_after[table].1, shared_expected,
            "{table} of the shared workspace"
        );
        assert_eq!(
            bob_after[table].2, bob_before[table].2,
            "{table}: Bob's rows"
        );
    }
    assert!(store.user(w.ann).await.unwrap().is_none());
    assert!(store.user(w.carol).await.unwrap().is_some());
    assert!(matches!(
        erasure::erase_account(store, w.ann).await,
        Err(ErasureError::NoSuchAccount)
    ));
    raw.close().await;
}

async fn the_only_owner_of_a_shared_workspace_is_refused_and_nothing_changes(backend: Backend) {
    let ts = test_store(backend).await;
    let store = &ts.store;
    let raw = RawDb::of(&ts.db).await;
    let w = world(&ts.store).await;
    let before = census(&raw, w.shared, w.bob).await;
    let err = erasure::erase_account(store, w.bob).await.unwrap_err();
    assert!(
        matches!(&err, ErasureError::SoleOwner(ts) if ts == &vec![w.shared]),
        "{err}"
    );
    assert!(
        err.to_string().contains("make another member an owner"),
        "{err}"
    );
    assert_eq!(census(&raw, w.shared, w.bob).await, before);
    // With a second owner, Bob may go; the workspace and its data stay.
    store
        .set_member_role(w.shared, w.carol, Role::Owner)
        .await
        .unwrap();
    let r = erasure::erase_account(store, w.bob).await.unwrap();
    assert!(r.workspaces_deleted.is_empty());
    let after = census(&raw, w.shared, w.bob).await;
    assert_eq!(after["messages"], before["messages"]);
    assert_eq!(after["users"].2, 0);
    assert_eq!(after["login_sessions"].2, 0);
    assert_eq!(after["account_tokens"].2, 0);
    assert_eq!(after["memberships"].2, 0);
    raw.close().await;
}
