//! Retention on both backends, with time travel: the purge takes `now` as a parameter, and
//! conversations are staged at chosen ages by setting their last activity directly.

use std::time::Duration;

use parlo::lifecycle::retention::{self, RetentionOptions, RetentionOutcome, RetentionReport};
use parlo::model::*;
use parlo::storage::*;
use parlo_tests::fixture::{self, NewTenant, Tenant};
use parlo_tests::lifecycle::RawDb;
use parlo_tests::{Backend, both_backends, test_store};

const DAY: i64 = 86_400_000;

fn bot_input(name: &str, retention_days: u16) -> BotInput {
    BotInput {
        name: name.into(),
        allowed_origins: "https://shop.example".into(),
        retention_days: Some(retention_days),
        ..BotInput::default()
    }
}

/// A workspace "Acme" of Ann's with one bot keeping conversations for `retention_days`.
async fn acme(store: &Store, retention_days: u16) -> Tenant {
    NewTenant::owned_by("ann@a.example")
        .workspace("Acme")
        .bot(bot_input("A", retention_days))
        .create(store)
        .await
}

/// A conversation with `messages` messages and one attachment.
async fn conversation(store: &Store, t: TenantId, bot: BotId, messages: usize) -> ConversationId {
    let texts: Vec<String> = (0..messages).map(|i| format!("message {i}")).collect();
    let roles = [MessageRole::User, MessageRole::Assistant]
        .into_iter()
        .cycle();
    let messages: Vec<_> = roles.zip(&texts).map(|(r, t)| (r, t.as_str())).collect();
    let (c, stored) = fixture::chat(store, t, bot, &messages).await;
    fixture::attachment(store, t, c.id, stored.first(), "invoice.pdf").await;
    c.id
}

async fn ran(store: &Store, now: Timestamp, batch_rows: u32) -> RetentionReport {
    match retention::run(
        store,
        now,
        RetentionOptions {
            batch_rows,
            pause: Duration::ZERO,
        },
    )
    .await
    .unwrap()
    {
        RetentionOutcome::Ran(r) => r,
        RetentionOutcome::AlreadyRunning => panic!("nothing else holds the lock"),
    }
}

async fn alive(store: &Store, t: TenantId, c: ConversationId) -> bool {
    let exists = store.conversation(t, c).await.unwrap().is_some();
    let messages = store.messages(t, c).await.unwrap().len();
    let attachments = store.attachments(t, c).await.unwrap().len();
    if !exists {
        assert_eq!((messages, attachments), (0, 0), "orphans of {c}");
    }
    exists
}

both_backends!(
    old_conversations_go_young_ones_stay,
    purge_works_in_small_transactions,
    a_held_lock_keeps_a_second_run_out
);

async fn old_conversations_go_young_ones_stay(backend: Backend) {
    let ts = test_store(backend).await;
    let store = &ts.store;
    let raw = RawDb::of(&ts.db).await;
    let acme = acme(&ts.store, 30).await;
    let bolt = NewTenant::owned_by("bob@b.example")
        .workspace("Bolt")
        .bot(bot_input("C", 365))
        .create(&ts.store)
        .await;
    let (w1, w2) = (acme.tenant, bolt.tenant);
    let a = acme.bot.id;
    let b = store
        .create_bot(w1, &BotSettings::parse(&bot_input("B", 90)).unwrap())
        .await
        .unwrap()
        .id;
    let c = bolt.bot.id;

    let a_old = conversation(store, w1, a, 3).await;
    let a_edge = conversation(store, w1, a, 2).await;
    let a_young = conversation(store, w1, a, 2).await;
    let b_mid = conversation(store, w1, b, 2).await;
    let b_old = conversation(store, w1, b, 2).await;
    let c_old = conversation(store, w2, c, 2).await;
    let c_young = conversation(store, w2, c, 2).await;
    let t0 = Timestamp::now();
    raw.set_last_activity(w1.0, a_old.0, t0.0 - 30 * DAY - 1)
        .await;
    raw.set_last_activity(w1.0, a_edge.0, t0.0 - 30 * DAY).await;
    raw.set_last_activity(w1.0, a_young.0, t0.0 - 29 * DAY)
        .await;
    raw.set_last_activity(w1.0, b_mid.0, t0.0 - 31 * DAY).await;
    raw.set_last_activity(w1.0, b_old.0, t0.0 - 91 * DAY).await;
    raw.set_last_activity(w2.0, c_old.0, t0.0 - 300 * DAY).await;
    raw.set_last_activity(w2.0, c_young.0, t0.0).await;
    let messages_before = raw.count("messages").await;

    // Now: exactly what is older than its own bot's retention goes.
    let r = ran(store, t0, 1000).await;
    assert_eq!(
        r.deleted,
        PurgeCounts {
            conversations: 2,
            messages: 5,
            attachments: 2
        }
    );
    assert_eq!((r.workspaces, r.bots), (2, 3));
    assert!(!alive(store, w1, a_old).await);
    assert!(!alive(store, w1, b_old).await);
    for (t, conv) in [
        (w1, a_edge),
        (w1, a_young),
        (w1, b_mid),
        (w2, c_old),
        (w2, c_young),
    ] {
        assert!(
            alive(store, t, conv).await,
            "{conv} is within its retention"
        );
        assert!(!store.messages(t, conv).await.unwrap().is_empty());
        assert_eq!(store.attachments(t, conv).await.unwrap().len(), 1);
    }
    assert_eq!(raw.count("messages").await, messages_before - 5);

    // Running again at the same instant finds nothing.
    assert_eq!(ran(store, t0, 1000).await.deleted, PurgeCounts::default());

    // Travel two days: bot A's edge and young conversations are now too old; B and the
    // other workspace are untouched.
    let r = ran(store, Timestamp(t0.0 + 2 * DAY), 1000).await;
    assert_eq!(r.deleted.conversations, 2);
    assert!(!alive(store, w1, a_edge).await && !alive(store, w1, a_young).await);
    assert!(alive(store, w1, b_mid).await);
    assert!(alive(store, w2, c_old).await && alive(store, w2, c_young).await);

    // A year later everything is gone; bots and workspaces stay.
    let r = ran(store, Timestamp(t0.0 + 366 * DAY), 1000).await;
    assert_eq!(r.deleted.conversations, 3);
    for table in ["conversations", "messages", "attachments"] {
        assert_eq!(raw.count(table).await, 0, "{table}");
    }
    assert_eq!(raw.count("bots").await, 3);
    assert_eq!(raw.count("workspaces").await, 2);
    raw.close().await;
}

async fn purge_works_in_small_transactions(backend: Backend) {
    let ts = test_store(backend).await;
    let store = &ts.store;
    let t = acme(&ts.store, 1).await;
    let (w, bot) = (t.tenant, t.bot.id);
    for _ in 0..3 {
        conversation(store, w, bot, 12).await;
    }
    // 36 messages and 3 attachments with at most 10 rows per transaction.
    let r = ran(store, Timestamp(Timestamp::now().0 + 2 * DAY), 10).await;
    assert_eq!(
        r.deleted,
        PurgeCounts {
            conversations: 3,
            messages: 36,
            attachments: 3
        }
    );
    assert!(r.transactions >= 5, "{r:?}");
}

async fn a_held_lock_keeps_a_second_run_out(backend: Backend) {
    let ts = test_store(backend).await;
    let store = &ts.store;
    let t = acme(&ts.store, 1).await;
    let (w, bot) = (t.tenant, t.bot.id);
    let conv = conversation(store, w, bot, 2).await;
    let later = Timestamp(Timestamp::now().0 + 2 * DAY);

    let lock = store
        .try_lock_job(Job::Retention)
        .await
        .unwrap()
        .expect("free");
    assert!(store.try_lock_job(Job::Retention).await.unwrap().is_none());
    // Another job's lock is independent.
    let other = store
        .try_lock_job(Job::Backup)
        .await
        .unwrap()
        .expect("backup lock is separate");
    other.release().await;
    let outcome = retention::run(store, later, RetentionOptions::default())
        .await
        .unwrap();
    assert!(matches!(outcome, RetentionOutcome::AlreadyRunning));
    assert!(alive(store, w, conv).await, "a refused run deletes nothing");
    lock.release().await;
    assert_eq!(ran(store, later, 1000).await.deleted.conversations, 1);
}

mod postgres_only {
    use super::*;
    use parlo::config::DatabaseUrl;

    /// Two processes on one database: while one runs retention, the other's run is refused.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn advisory_lock_lets_one_process_run_at_a_time() {
        let ts = test_store(Backend::Postgres).await;
        let url = DatabaseUrl::new(ts.db.app_url());
        let first = Store::connect_postgres(&url).await.unwrap();
        let second = Store::connect_postgres(&url).await.unwrap();
        let t = acme(&first, 1).await;
        let (w, bot) = (t.tenant, t.bot.id);
        for _ in 0..2 {
            conversation(&first, w, bot, 4).await;
        }
        let later = Timestamp(Timestamp::now().0 + 2 * DAY);
        // One row per transaction and a pause: the first run lasts a while.
        let slow = RetentionOptions {
            batch_rows: 1,
            pause: Duration::from_millis(100),
        };
        let running =
            tokio::spawn(async move { retention::run(&first, later, slow).await.unwrap() });
        tokio::time::sleep(Duration::from_millis(250)).await;
        let refused = retention::run(&second, later, RetentionOptions::default())
            .await
            .unwrap();
        assert!(
            matches!(refused, RetentionOutcome::AlreadyRunning),
            "{refused:?}"
        );
        let RetentionOutcome::Ran(r) = running.await.unwrap() else {
            panic!("first run refused")
        };
        assert_eq!(r.deleted.messages, 8);
        // Released afterwards: the second process can run now.
        assert!(matches!(
            retention::run(&second, later, RetentionOptions::default())
                .await
                .unwrap(),
            RetentionOutcome::Ran(_)
        ));
    }

    /// A job that dies without releasing its lock cannot block the others: the lock lives
    /// only as long as its connection.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dropped_lock_is_released_with_its_connection() {
        let ts = test_store(Backend::Postgres).await;
        let url = DatabaseUrl::new(ts.db.app_url());
        let other = Store::connect_postgres(&url).await.unwrap();
        let lock = ts
            .store
            .try_lock_job(Job::Retention)
            .await
            .unwrap()
            .expect("free");
        assert!(other.try_lock_job(Job::Retention).await.unwrap().is_none());
        drop(lock);
        let mut freed = false;
        for _ in 0..50 {
            if let Some(l) = other.try_lock_job(Job::Retention).await.unwrap() {
                l.release().await;
                freed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(freed, "the lock outlived its connection");
    }
}
