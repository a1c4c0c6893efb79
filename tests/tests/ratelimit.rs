//! Rate limits counted in the database: enforced per key, shared by separate processes'
//! pools on one database, stored under an HMAC (never a plain hash of a client IP), and
//! purged by retention once their window has ended.

use std::sync::Arc;
use std::time::Duration;

use parlo::config::{Config, DatabaseUrl, Settings};
use parlo::keyring::MasterKeys;
use parlo::lifecycle::retention::{self, RetentionOptions, RetentionOutcome};
use parlo::model::Timestamp;
use parlo::ratelimit::{Limit, RateLimiter};
use parlo::storage::Store;
use parlo_tests::lifecycle::RawDb;
use parlo_tests::{
    Backend, PgTestDb, TEST_MASTER_KEYS, TEST_TOKEN_KEYS, both_backends, test_env, test_store,
};

both_backends!(
    limit_applies_per_key_with_retry_after,
    limits_counted_together_refuse_when_any_is_exceeded,
    stored_rate_limit_keys_are_not_reversible_hashes_of_client_ips,
    ended_rate_limit_windows_are_purged_by_the_job_and_by_retention_run
);

fn limiter(store: &Store) -> RateLimiter {
    RateLimiter::new(store.clone(), &MasterKeys::parse(TEST_MASTER_KEYS).unwrap())
}

async fn stored_keys(raw: &RawDb) -> Vec<Vec<u8>> {
    let sql = "SELECT key_hash FROM rate_limits ORDER BY key_hash";
    match raw {
        RawDb::Sqlite(p) => sqlx::query_scalar(sql).fetch_all(p).await.unwrap(),
        RawDb::Postgres(p) => sqlx::query_scalar(sql).fetch_all(p).await.unwrap(),
    }
}

/// Attack: `rate_limits` held SHA-256 of each client IP; all 2^32 IPv4 addresses are hashed
/// in minutes, so a database dump listed every visitor's address. The stored key is an HMAC
/// under a key derived from the master key: not SHA-256 of the key, and different under
/// another master key.
async fn stored_rate_limit_keys_are_not_reversible_hashes_of_client_ips(backend: Backend) {
    let ts = test_store(backend).await;
    let raw = RawDb::of(&ts.db).await;
    let key = "widget-ip:203.0.113.9/32";
    let ours = limiter(&ts.store);
    ours.hit(key, 10, Duration::from_secs(60)).await.unwrap();
    let stored = stored_keys(&raw).await;
    assert_eq!(stored, vec![ours.stored_key(key)]);
    let plain = parlo::crypto::sha256(key.as_bytes());
    assert_ne!(stored[0], plain, "a plain SHA-256 of the client's key");
    assert_ne!(
        stored[0],
        parlo::crypto::sha256(b"203.0.113.9"),
        "a plain SHA-256 of the IP"
    );
    let other = RateLimiter::new(
        ts.store.clone(),
        &MasterKeys::parse("1:b3RoZXItbWFzdGVyLWtleS0wMTIzNDU2Nzg5YWJjZGU=").unwrap(),
    );
    assert_ne!(
        other.stored_key(key),
        stored[0],
        "keyed by the server's secret"
    );
    raw.close().await;
}

/// Attack: nothing ever deleted `rate_limits` rows (`purge_rate_limits` had no caller), so
/// the table grew forever and kept a trace of every client. Retention deletes ended windows:
/// `parlo retention run` and the job inside `parlo serve` both.
async fn ended_rate_limit_windows_are_purged_by_the_job_and_by_retention_run(backend: Backend) {
    let ts = test_store(backend).await;
    let raw = RawDb::of(&ts.db).await;
    let l = limiter(&ts.store);
    let second = Duration::from_secs(1);
    let week = Duration::from_secs(7 * 86_400);

    // `parlo retention run` (what the command calls), two minutes later.
    l.hit("ended", 10, Duration::from_secs(60)).await.unwrap();
    l.hit("current", 10, week).await.unwrap();
    let later = Timestamp::now().plus_secs(120);
    let RetentionOutcome::Ran(r) = retention::run(&ts.store, later, RetentionOptions::default())
        .await
        .unwrap()
    else {
        panic!("retention did not run");
    };
    assert_eq!(r.rate_limit_windows, 1, "{r}");
    assert_eq!(stored_keys(&raw).await, vec![l.stored_key("current")]);

    // The job inside `parlo serve`, on its own clock.
    l.hit("short", 10, second).await.unwrap();
    let config = Config::load(
        &Settings {
            database_url: Some(ts.db.app_url()),
            retention_interval_secs: Some(1),
            ..Settings::default()
        },
        None,
        &test_env,
    )
    .unwrap();
    let keys = parlo::keyring::KeyRing {
        master: MasterKeys::parse(TEST_MASTER_KEYS).unwrap(),
        token: parlo::keyring::TokenKeys::parse(TEST_TOKEN_KEYS).unwrap(),
    };
    let (config, keys) = (Arc::new(config), Arc::new(keys));
    let mailer = parlo::mail::Mailer::new(&config.mail, ts.store.clone(), keys.clone()).unwrap();
    let jobs = parlo::lifecycle::jobs::spawn(
        ts.store.clone(),
        config,
        keys,
        &mailer,
        parlo::metrics::Metrics::new(),
    )
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while stored_keys(&raw).await.len() > 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the job did not purge the ended window"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    jobs.stop();
    assert_eq!(stored_keys(&raw).await, vec![l.stored_key("current")]);
    raw.close().await;
}

async fn limit_applies_per_key_with_retry_after(backend: Backend) {
    let ts = test_store(backend).await;
    let limiter = limiter(&ts.store);
    let window = Duration::from_secs(60);
    for _ in 0..3 {
        limiter.hit("ip:203.0.113.9", 3, window).await.unwrap();
    }
    let refused = limiter.hit("ip:203.0.113.9", 3, window).await.unwrap_err();
    assert!((1..=60).contains(&refused.secs), "{refused:?}");
    limiter
        .hit("ip:198.51.100.7", 3, window)
        .await
        .expect("another key has its own budget");
    // Expired windows are purged.
    assert!(
        ts.store
            .purge_rate_limits(Timestamp::now().plus_secs(120))
            .await
            .unwrap()
            >= 2
    );
    limiter
        .hit("ip:203.0.113.9", 3, window)
        .await
        .expect("a purged window starts over");
}

async fn limits_counted_together_refuse_when_any_is_exceeded(backend: Backend) {
    let ts = test_store(backend).await;
    let limiter = limiter(&ts.store);
    let minute = Duration::from_secs(60);
    let both = |ip_limit| {
        [
            Limit {
                key: "ip:203.0.113.9",
                limit: ip_limit,
                window: minute,
            },
            Limit {
                key: "conv:1",
                limit: 2,
                window: minute,
            },
        ]
    };
    limiter.hit_all(&both(10)).await.unwrap();
    limiter.hit_all(&both(10)).await.unwrap();
    // The conversation's third request is one too many, though the IP has room.
    assert!(limiter.hit_all(&both(10)).await.is_err());
    // Both counters moved every time: the IP has now been counted three times.
    limiter.hit("ip:203.0.113.9", 4, minute).await.unwrap();
    assert!(limiter.hit("ip:203.0.113.9", 4, minute).await.is_err());
}

#[tokio::test]
async fn two_processes_share_one_limit_on_postgres() {
    let db = PgTestDb::new().await;
    let url = DatabaseUrl::new(db.app_url.clone());
    // Two stores with their own pools stand for two `parlo serve` processes.
    let one: Store = Store::connect_postgres(&url).await.unwrap();
    let two: Store = Store::connect_postgres(&url).await.unwrap();
    let (a, b) = (limiter(&one), limiter(&two));
    let window = Duration::from_secs(60);
    a.hit("conv:x", 2, window).await.unwrap();
    b.hit("conv:x", 2, window).await.unwrap();
    assert!(a.hit("conv:x", 2, window).await.is_err());
    assert!(b.hit("conv:x", 2, window).await.is_err());
}
