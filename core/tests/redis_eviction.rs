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
    // Full: maxmemory below what the server already holds, so every write is refused
    // whatever its connections' buffers do meanwhile (filling up to the limit by writing
    // left it a few KB under or over, from one moment to the next).
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("CONFIG").arg("SET").arg("maxmemory").arg("1").query_async(&mut conn).await.unwrap();
    assert!(fill(&url, 64, 1).await, "the server refuses writes");
    assert!(matches!(store.claim(&id, &fp, lease).await, Ok(Claim::InFlight { .. })), "the claim is kept");
    let refused = store.claim(&idempo::testing::random_id(), &fp, lease).await;
    let Err(refused) = refused else { panic!("a full server refuses a new key, not {refused:?}") };
    assert!(refused.to_string().contains("OOM"), "{refused}");
    assert!(matches!(store.claim(&id, &fp, lease).await, Ok(Claim::InFlight { .. })), "the claim is still kept");
}
