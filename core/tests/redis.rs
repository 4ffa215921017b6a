//! The Redis store against real servers: the store contract on a single node and on a
//! 3-master cluster, the tower-layer behaviour suite, corrupt keys, and a restart.

mod support;

use std::sync::Arc;
use std::time::Duration;

use idempo::fingerprint::RecordId;
use idempo::key::{KeyRules, parse_value};
use idempo::store::RedisStore;
use idempo::{Idempotency, Store};
use support::behaviour::key;
use support::{TestApp, post, services};

behaviour_suite!(services::shared(services::redis().await).await);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_store_passes_the_contract() {
    idempo::testing::store_contract(Arc::new(services::redis().await)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_cluster_store_passes_the_contract() {
    idempo::testing::store_contract(Arc::new(services::redis_cluster().await)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_cluster_spreads_keys_over_slots_and_replays() {
    let store = services::redis_cluster().await;
    let app = TestApp::new(Idempotency::builder(store).build());
    // Enough keys to land on every master; each replays through whichever node holds it.
    for i in 0..30 {
        let k = key(&format!("cluster{i}"));
        app.send(post("/echo", Some(&k), "x")).await;
        assert!(app.send(post("/echo", Some(&k), "x")).await.replayed());
    }
    assert_eq!(app.count(), 30);
}

fn redis_key_for(store: &RedisStore, raw_key: &str) -> String {
    let key = parse_value(raw_key.as_bytes(), KeyRules::default()).unwrap();
    store.key_of(&RecordId::new(None, &key))
}

async fn raw() -> redis::aio::MultiplexedConnection {
    redis::Client::open(services::redis_url()).unwrap().get_multiplexed_async_connection().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn b18_corrupt_redis_entries_are_store_errors_never_reexecuted() {
    let store = services::redis().await;
    let app = TestApp::new(Idempotency::builder(store.clone()).build());
    let mut conn = raw().await;
    type Fields = Vec<(&'static str, Vec<u8>)>;
    let cases: [(&str, Fields); 3] = [
        ("garbage-record", vec![("f", vec![0; 32]), ("r", b"\x00garbage\xff".to_vec())]),
        ("short-fingerprint", vec![("f", vec![1, 2, 3]), ("t", vec![0; 16])]),
        ("no-fields", vec![("x", b"y".to_vec())]),
    ];
    for (name, fields) in cases {
        let k = key(name);
        let rkey = redis_key_for(&store, &k);
        let _: () = redis::cmd("HSET").arg(&rkey).arg(fields).query_async(&mut conn).await.unwrap();
        app.send(post("/echo", Some(&k), "x")).await.assert_problem(503, "store-unavailable");
    }
    // A key of the wrong Redis type.
    let k = key("wrong-type");
    let _: () =
        redis::cmd("SET").arg(redis_key_for(&store, &k)).arg("not a hash").query_async(&mut conn).await.unwrap();
    app.send(post("/echo", Some(&k), "x")).await.assert_problem(503, "store-unavailable");
    assert_eq!(app.count(), 0, "a corrupt entry never runs the handler");
    assert_eq!(app.idem.stats().store_errors, 4);
    // The corrupt entries were left alone: nothing was overwritten.
    let kind: String = redis::cmd("TYPE").arg(redis_key_for(&store, &k)).query_async(&mut conn).await.unwrap();
    assert_eq!(kind, "string");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_restart_mid_test_fails_cleanly_then_recovers() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut server = services::OwnRedis::start(port, &[]);
    let store = RedisStore::connect(&format!("redis://127.0.0.1:{}", server.port)).await.unwrap();
    let app = TestApp::new(Idempotency::builder(store.clone()).build());
    let k = key("restart");
    assert!(!app.send(post("/echo", Some(&k), "x")).await.replayed());
    assert!(app.send(post("/echo", Some(&k), "x")).await.replayed());

    server.stop();
    for _ in 0..3 {
        app.send(post("/echo", Some(&key("down")), "x")).await.assert_problem(503, "store-unavailable");
    }
    let direct =
        store.claim(&idempo::testing::random_id(), &idempo::testing::fingerprint(1), Duration::from_secs(1)).await;
    assert!(matches!(direct, Err(idempo::StoreError::Unavailable(_))), "a typed error, not a panic: {direct:?}");

    // Same port, empty server (nothing persisted), scripts not loaded: the store reconnects
    // and reloads its scripts by itself.
    let _server = services::OwnRedis::start(port, &[]);
    let mut recovered = false;
    for _ in 0..50 {
        let r = app.send(post("/echo", Some(&key("back")), "x")).await;
        if r.status == http::StatusCode::CREATED {
            recovered = true;
            break;
        }
        r.assert_problem(503, "store-unavailable");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "the store works again without restarting the process");
    let k2 = key("after");
    app.send(post("/echo", Some(&k2), "x")).await;
    assert!(app.send(post("/echo", Some(&k2), "x")).await.replayed());
}

#[tokio::test]
async fn unreachable_redis_is_a_typed_error_at_construction() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let err = RedisStore::connect(&format!("redis://127.0.0.1:{port}")).await.unwrap_err();
    assert!(matches!(err, idempo::StoreError::Unavailable(_)), "{err}");
    let err = RedisStore::connect("not a url").await.unwrap_err();
    assert!(err.to_string().contains("invalid Redis URL"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn b20_a_completion_or_release_in_one_process_wakes_a_waiter_in_another() {
    let (a, b) = (services::redis().await, services::redis().await);
    // Without any re-read: the watch itself resolves, only from the published event.
    assert!(support::waiting::woken_across(&a, &b, false, Duration::from_secs(5)).await, "woken by the completion");
    assert!(support::waiting::woken_across(&a, &b, true, Duration::from_secs(5)).await, "woken by the release");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn b20_the_subscriber_connects_again_after_a_redis_restart() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut server = services::OwnRedis::start(port, &[]);
    let url = format!("redis://127.0.0.1:{port}");
    let (a, b) = (RedisStore::connect(&url).await.unwrap(), RedisStore::connect(&url).await.unwrap());
    assert!(support::waiting::woken_across(&a, &b, false, Duration::from_secs(5)).await);
    server.stop();
    let _server = services::OwnRedis::start(port, &[]);
    // Both the store's connection and the subscriber's come back by themselves.
    assert!(support::waiting::woken_again(&a, &b).await, "waiters are woken by events again after Redis restarted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn b20_on_a_cluster_a_completion_wakes_a_waiter_in_another_process() {
    let (a, b) = (services::redis_cluster().await, services::redis_cluster().await);
    // Keys on every node: the cluster-wide publish reaches the one node subscribed to.
    for _ in 0..6 {
        assert!(support::waiting::woken_across(&a, &b, false, Duration::from_secs(5)).await, "woken by the completion");
        assert!(support::waiting::woken_across(&a, &b, true, Duration::from_secs(5)).await, "woken by the release");
    }
}
