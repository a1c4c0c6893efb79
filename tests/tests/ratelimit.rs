//! Rate limits counted in the database: enforced per key, and shared by separate processes'
//! pools on one database.

use std::time::Duration;

use parlo::config::DatabaseUrl;
use parlo::model::Timestamp;
use parlo::ratelimit::{Limit, RateLimiter};
use parlo::storage::Store;
use parlo_tests::{Backend, PgTestDb, both_backends, test_store};

both_backends!(
    limit_applies_per_key_with_retry_after,
    limits_counted_together_refuse_when_any_is_exceeded
);

async fn limit_applies_per_key_with_retry_after(backend: Backend) {
    let ts = test_store(backend).await;
    let limiter = RateLimiter::new(ts.store.clone());
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
    let limiter = RateLimiter::new(ts.store.clone());
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
    let (a, b) = (RateLimiter::new(one), RateLimiter::new(two));
    let window = Duration::from_secs(60);
    a.hit("conv:x", 2, window).await.unwrap();
    b.hit("conv:x", 2, window).await.unwrap();
    assert!(a.hit("conv:x", 2, window).await.is_err());
    assert!(b.hit("conv:x", 2, window).await.is_err());
}
