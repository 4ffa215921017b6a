//! Store round trips per request, counted on the servers themselves (docs/RULES.md, "Stores"):
//! a new key costs one claim and one complete, a replay one claim. Its own test binary,
//! so no other test's traffic reaches the counters while it runs.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use idempo::Idempotency;
use idempo::store::PostgresStore;
use sqlx::postgres::PgPoolOptions;
use support::behaviour::key;
use support::{TestApp, post, services};

/// Commands the idempo scripts run inside Redis: `INFO commandstats` counts them too, but
/// they are not round trips.
const INSIDE_SCRIPTS: &[&str] = &["type", "hset", "hmget", "hget", "hdel", "pexpire", "pttl", "del", "time", "publish"];

/// Client commands since the last reset, from `INFO commandstats`, leaving out the
/// commands run inside scripts and those this test sends to read and reset the counters.
async fn redis_calls(admin: &mut redis::aio::MultiplexedConnection) -> BTreeMap<String, u64> {
    let info: String = redis::cmd("INFO").arg("commandstats").query_async(admin).await.unwrap();
    info.lines()
        .filter_map(|line| {
            let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest.strip_prefix("calls=")?.split(',').next()?.parse().ok()?;
            let own = name.starts_with("info") || name.starts_with("config") || INSIDE_SCRIPTS.contains(&name);
            (!own).then(|| (name.to_owned(), calls))
        })
        .collect()
}

async fn redis_reset(admin: &mut redis::aio::MultiplexedConnection) {
    let _: () = redis::cmd("CONFIG").arg("RESETSTAT").query_async(admin).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_new_key_costs_two_round_trips_and_replay_one() {
    let mut admin =
        redis::Client::open(services::redis_url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let app = TestApp::new(Idempotency::builder(services::redis().await).build());
    // Warm up: the connection is made and both scripts are loaded.
    app.send(post("/echo", Some(&key("warm")), "x")).await;

    let k = key("rt");
    redis_reset(&mut admin).await;
    app.send(post("/echo", Some(&k), "x")).await;
    let first = redis_calls(&mut admin).await;
    assert_eq!(first, BTreeMap::from([("evalsha".to_owned(), 2)]), "a new key: claim + complete");

    redis_reset(&mut admin).await;
    assert!(app.send(post("/echo", Some(&k), "x")).await.replayed());
    let replay = redis_calls(&mut admin).await;
    assert_eq!(replay, BTreeMap::from([("evalsha".to_owned(), 1)]), "a replay: one claim");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_new_key_costs_two_statements_and_replay_one() {
    let admin = services::postgres().await;
    sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements").execute(admin.pool()).await.expect(
        "pg_stat_statements must be loaded (shared_preload_libraries); make test's throwaway PostgreSQL loads it",
    );
    // One connection: every statement runs on a connection that has it prepared already,
    // so each statement is exactly one round trip (Bind/Execute/Sync).
    let pool = PgPoolOptions::new().max_connections(1).connect(&services::database_url()).await.unwrap();
    let table = format!("rt_{:x}", idempo::Token::random().0 as u32);
    let store = PostgresStore::with_table(pool.clone(), &table).unwrap();
    store.migrate().await.unwrap();
    let app = TestApp::new(Idempotency::builder(store).build());
    app.send(post("/echo", Some(&key("warm")), "x")).await;

    let calls = || async {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT query, calls FROM pg_stat_statements WHERE query LIKE '%' || $1 || '%'")
                .bind(&table)
                .fetch_all(admin.pool())
                .await
                .unwrap();
        let claims: i64 = rows.iter().filter(|(q, _)| q.trim_start().starts_with("WITH live")).map(|r| r.1).sum();
        let total: i64 = rows.iter().map(|r| r.1).sum();
        (claims, total)
    };
    let reset = || async {
        sqlx::query("SELECT pg_stat_statements_reset()").execute(admin.pool()).await.unwrap();
    };

    let k = key("rt");
    reset().await;
    app.send(post("/echo", Some(&k), "x")).await;
    assert_eq!(calls().await, (1, 2), "a new key: one claim and one complete, nothing else");

    reset().await;
    assert!(app.send(post("/echo", Some(&k), "x")).await.replayed());
    assert_eq!(calls().await, (1, 1), "a replay: one claim");
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE \"{table}\""))).execute(&pool).await.unwrap();
}

/// What the counting proxy saw the client do.
#[derive(Clone, Default)]
struct Wire {
    /// Round trips: every time the client sends after the server has answered (or first).
    turns: Arc<AtomicUsize>,
    /// Reads of what the client sent: at most one per write the client made.
    sends: Arc<AtomicUsize>,
}

/// A TCP proxy in front of PostgreSQL counting round trips on the wire. It sees what
/// `pg_stat_statements` does not: a pool's ping of every connection given back to it.
async fn counting_proxy(target: std::net::SocketAddr) -> (std::net::SocketAddr, Wire) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let wire = Wire::default();
    let counted = wire.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = tokio::net::TcpStream::connect(target).await else { continue };
            let (mut client_rx, mut client_tx) = client.into_split();
            let (mut server_rx, mut server_tx) = server.into_split();
            let answered = Arc::new(AtomicBool::new(true));
            let (wire, answered2) = (counted.clone(), answered.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                while let Ok(n @ 1..) = client_rx.read(&mut buf).await {
                    wire.sends.fetch_add(1, Ordering::SeqCst);
                    if answered.swap(false, Ordering::SeqCst) {
                        wire.turns.fetch_add(1, Ordering::SeqCst);
                    }
                    if server_tx.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                while let Ok(n @ 1..) = server_rx.read(&mut buf).await {
                    answered2.store(true, Ordering::SeqCst);
                    if client_tx.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (addr, wire)
}

/// A store over the counting proxy, on a table of its own.
async fn proxied_store(max_connections: u32) -> (PostgresStore, sqlx::PgPool, String, Wire) {
    use std::str::FromStr;
    let options = sqlx::postgres::PgConnectOptions::from_str(&services::database_url()).unwrap();
    let target =
        tokio::net::lookup_host((options.get_host().to_owned(), options.get_port())).await.unwrap().next().unwrap();
    let (proxy, wire) = counting_proxy(target).await;
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .connect_with(options.host("127.0.0.1").port(proxy.port()).ssl_mode(sqlx::postgres::PgSslMode::Disable))
        .await
        .unwrap();
    let table = format!("wire_{:x}", idempo::Token::random().0 as u32);
    let store = PostgresStore::with_table(pool.clone(), &table).unwrap().with_sweep_interval(std::time::Duration::ZERO);
    store.migrate().await.unwrap();
    (store, pool, table, wire)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_operations_cost_one_round_trip_each_on_the_wire() {
    let (store, pool, table, wire) = proxied_store(4).await;
    let turns = wire.turns;
    let app = TestApp::new(Idempotency::builder(store).build());
    // Warm up: the store's connection is made and its statements prepared.
    let warm = key("warm");
    app.send(post("/echo", Some(&warm), "x")).await;
    app.send(post("/echo", Some(&warm), "x")).await;

    let k = key("wire");
    turns.store(0, Ordering::SeqCst);
    app.send(post("/echo", Some(&k), "x")).await;
    assert_eq!(turns.swap(0, Ordering::SeqCst), 2, "a new key: claim and complete, one round trip each");
    assert!(app.send(post("/echo", Some(&k), "x")).await.replayed());
    assert_eq!(turns.swap(0, Ordering::SeqCst), 1, "a replay: one round trip");
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE \"{table}\""))).execute(&pool).await.unwrap();
}

/// Concurrent operations share the store's writes to PostgreSQL (postgres_pipe.rs): 400
/// replays at once, on a store allowed 4 connections, are sent in far fewer writes than
/// there are statements. One statement per connection would make a write each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_concurrent_operations_share_writes() {
    const REPLAYS: usize = 400;
    let (store, pool, table, wire) = proxied_store(4).await;
    let app = Arc::new(TestApp::new(Idempotency::builder(store).build()));
    let k = key("shared");
    app.send(post("/echo", Some(&k), "x")).await;
    assert!(app.send(post("/echo", Some(&k), "x")).await.replayed()); // connections made, statements prepared
    wire.sends.store(0, Ordering::SeqCst);
    let replays = (0..REPLAYS).map(|_| {
        let (app, k) = (app.clone(), k.clone());
        tokio::spawn(async move { app.send(post("/echo", Some(&k), "x")).await.replayed() })
    });
    for replayed in futures_util::future::join_all(replays).await {
        assert!(replayed.unwrap(), "every concurrent duplicate replays");
    }
    let sends = wire.sends.load(Ordering::SeqCst);
    assert!(sends * 2 <= REPLAYS, "{REPLAYS} concurrent claims took {sends} writes: not pipelined");
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE \"{table}\""))).execute(&pool).await.unwrap();
}
