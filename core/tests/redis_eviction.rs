//! Redis `maxmemory` eviction (issue 15, item 10), on redis-servers of the test's own. Every
//! idempo key carries a TTL, so with a `maxmemory` set any policy but `noeviction` may drop
//! an in-flight claim, and the retry then runs the handler again: shown here, and warned
//! about when the store is made. Under `noeviction` a full Redis refuses writes instead: a
//! new key gets a store error (503), and no claim is lost. In its own process, because the
//! log subscriber is process-wide.

mod support;

use std::time::Duration;

use idempo::store::RedisStore;
use idempo::{Claim, Store};
use support::captured::Captured;
use support::services::OwnRedis;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Write other keys with a TTL, as a cache sharing the server would, `size` bytes each,
/// `count` of them or until the server refuses one. Whether it refused.
async fn fill(url: &str, size: usize, count: usize) -> bool {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let value = vec![b'v'; size];
    for n in 0..count {
        let mut set = redis::cmd("SET");
        set.arg(format!("cache:{}:{size}:{n}", idempo::Token::random().0)).arg(&value).arg("EX").arg(3600);
        if set.query_async::<()>(&mut conn).await.is_err() {
            return true;
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eviction_policies_and_what_they_do_to_claims() {
    let logs = Captured::install("warn");
    let (fp, lease) = (idempo::testing::fingerprint(1), Duration::from_secs(600));

    // volatile-lru: the store warns when it is made, and the claim can be evicted.
    let evicting = OwnRedis::start(free_port(), &["--maxmemory", "4mb", "--maxmemory-policy", "volatile-lru"]);
    let url = format!("redis://127.0.0.1:{}", evicting.port);
    let store = RedisStore::connect(&url).await.unwrap();
    let warned = logs.take();
    assert!(warned.contains("maxmemory-policy volatile-lru") && warned.contains("noeviction"), "{warned}");
    let id = idempo::testing::random_id();
    assert!(matches!(store.claim(&id, &fp, lease).await, Ok(Claim::Claimed { .. })));
    assert!(!fill(&url, 64 * 1024, 256).await, "volatile-lru makes room rather than refuse");
    assert!(
        matches!(store.claim(&id, &fp, lease).await, Ok(Claim::Claimed { .. })),
        "the in-flight claim was evicted, so a duplicate claims the key again: why the warning"
    );

    // noeviction: no warning; a full server refuses the new key, and keeps the claim.
    let strict = OwnRedis::start(free_port(), &["--maxmemory", "4mb", "--maxmemory-policy", "noeviction"]);
    let url = format!("redis://127.0.0.1:{}", strict.port);
    let store = RedisStore::connect(&url).await.unwrap();
    assert_eq!(logs.take(), "", "no warning under noeviction");
    let id = idempo::testing::random_id();
    assert!(matches!(store.claim(&id, &fp, lease).await, Ok(Claim::Claimed { .. })));
    assert!(fill(&url, 64 * 1024, 256).await, "the server filled up");
    assert!(matches!(store.claim(&id, &fp, lease).await, Ok(Claim::InFlight { .. })), "the claim is kept");
    // Full to the last bytes (a connection's buffers come and go, so fill until a new key
    // is refused): the refusal is a store error, never a claim the server did not keep.
    let mut refused = None;
    for _ in 0..50 {
        fill(&url, 64, 100_000).await;
        match store.claim(&idempo::testing::random_id(), &fp, lease).await {
            Err(e) => {
                refused = Some(e);
                break;
            }
            Ok(Claim::Claimed { .. }) => continue,
            Ok(other) => panic!("a fresh id found {other:?}"),
        }
    }
    let refused = refused.expect("a full server refuses a new key");
    assert!(refused.to_string().contains("OOM"), "{refused}");
    assert!(matches!(store.claim(&id, &fp, lease).await, Ok(Claim::InFlight { .. })), "the claim is still kept");
}
