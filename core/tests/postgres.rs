//! The PostgreSQL store against a real server: the store contract, the tower-layer
//! behaviour suite, corrupt rows, killed backends, sweeping and migration.

mod support;

use std::sync::Arc;
use std::time::Duration;

use idempo::fingerprint::RecordId;
use idempo::key::{KeyRules, parse_value};
use idempo::store::PostgresStore;
use idempo::{Idempotency, Store};
use sqlx::postgres::PgPoolOptions;
use support::behaviour::key;
use support::{TestApp, post, services};

behaviour_suite!(services::shared(services::postgres().await).await);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_store_passes_the_contract() {
    idempo::testing::store_contract(Arc::new(services::postgres().await)).await;
}

fn id_for(raw_key: &str) -> Vec<u8> {
    let key = parse_value(raw_key.as_bytes(), KeyRules::default()).unwrap();
    RecordId::new(None, &key).0.to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn b18_corrupt_rows_are_store_errors_never_reexecuted() {
    let store = services::postgres().await;
    let app = TestApp::new(Idempotency::builder(store.clone()).build());
    let pool = store.pool();
    let k = key("garbage");
    app.send(post("/echo", Some(&k), "x")).await;
    sqlx::query("UPDATE idempo_records SET record = '\\xdeadbeef'::bytea WHERE id = $1")
        .bind(id_for(&k))
        .execute(pool)
        .await
        .unwrap();
    app.send(post("/echo", Some(&k), "x")).await.assert_problem(503, "store-unavailable");
    let k2 = key("short-fp");
    sqlx::query("INSERT INTO idempo_records VALUES ($1, '\\x0102'::bytea, NULL, NULL, now() + interval '1 hour')")
        .bind(id_for(&k2))
        .execute(pool)
        .await
        .unwrap();
    app.send(post("/echo", Some(&k2), "x")).await.assert_problem(503, "store-unavailable");
    let k3 = key("neither");
    sqlx::query("INSERT INTO idempo_records VALUES ($1, $2, NULL, NULL, now() + interval '1 hour')")
        .bind(id_for(&k3))
        .bind(vec![0u8; 32])
        .execute(pool)
        .await
        .unwrap();
    app.send(post("/echo", Some(&k3), "x")).await.assert_problem(503, "store-unavailable");
    assert_eq!(app.count(), 1, "a corrupt row never runs the handler again");
    let kept: Vec<u8> = sqlx::query_scalar("SELECT record FROM idempo_records WHERE id = $1")
        .bind(id_for(&k))
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(kept, b"\xde\xad\xbe\xef", "the corrupt row was left for inspection, not overwritten");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_backends_fail_cleanly_then_recover() {
    let url = format!("{}?application_name=idempo_kill_test", services::database_url());
    let store = PostgresStore::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    let app = TestApp::new(Idempotency::builder(store.clone()).build());
    let k = key("before-kill");
    app.send(post("/echo", Some(&k), "x")).await;
    assert!(app.send(post("/echo", Some(&k), "x")).await.replayed());

    let admin = services::postgres().await;
    let killed: i64 = sqlx::query_scalar(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'idempo_kill_test'",
    )
    .fetch_one(admin.pool())
    .await
    .unwrap();
    assert!(killed >= 1, "the store's backends were terminated");

    let (mut failures, mut recovered) = (0, false);
    for _ in 0..40 {
        let r = app.send(post("/echo", Some(&key("after-kill")), "x")).await;
        if r.status == http::StatusCode::CREATED {
            recovered = true;
            break;
        }
        r.assert_problem(503, "store-unavailable");
        failures += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("after pg_terminate_backend: {failures} failed requests before recovery");
    assert!(recovered, "the pool reconnected without restarting the process ({failures} failures first)");
    assert!(app.send(post("/echo", Some(&k), "x")).await.replayed(), "records stored before the kill are intact");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sweep_deletes_expired_rows_in_batches() {
    let pool = PgPoolOptions::new().max_connections(4).connect(&services::database_url()).await.unwrap();
    let table = format!("sweep_{:x}", idempo::Token::random().0 as u32);
    let store = PostgresStore::with_table(pool.clone(), &table).unwrap();
    store.migrate().await.unwrap();
    store.migrate().await.unwrap(); // idempotent
    let fp = idempo::testing::fingerprint(1);
    let record = idempo::testing::sample_record(b"r");
    for _ in 0..25 {
        let id = idempo::testing::random_id();
        let Ok(idempo::Claim::Claimed { token }) = store.claim(&id, &fp, Duration::from_secs(60)).await else {
            panic!("a fresh id is claimed")
        };
        store.complete(&id, &fp, token, &record, Duration::from_millis(1)).await.unwrap();
    }
    let live = idempo::testing::random_id();
    store.claim(&live, &fp, Duration::from_secs(60)).await.unwrap();
    // An expired claim stays for its holder's late completion (LATE_COMPLETION).
    store.claim(&idempo::testing::random_id(), &fp, Duration::from_millis(1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(store.sweep(10).await.unwrap(), 25);
    let left: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM \"{table}\"")))
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 2, "claims are kept: live ones, and expired ones for their holder's late completion");
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE \"{table}\""))).execute(&pool).await.unwrap();
}

async fn rows(pool: &sqlx::PgPool, table: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM \"{table}\""))).fetch_one(pool).await.unwrap()
}

/// `n` records kept for `ttl`, written through `store`.
async fn completed(store: &PostgresStore, n: usize, ttl: Duration) {
    let (fp, record) = (idempo::testing::fingerprint(1), idempo::testing::sample_record(b"r"));
    for _ in 0..n {
        let id = idempo::testing::random_id();
        let Ok(idempo::Claim::Claimed { token }) = store.claim(&id, &fp, Duration::from_secs(60)).await else {
            panic!("a fresh id is claimed")
        };
        store.complete(&id, &fp, token, &record, ttl).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn b23_expired_rows_are_swept_in_the_background_with_two_stores_running() {
    // Two stores with pools of their own, as two processes have: both sweep every 300 ms,
    // one at a time (the advisory lock), and no row outlives its expiry by much more.
    let url = services::database_url();
    let table = format!("bgsweep_{:x}", idempo::Token::random().0 as u32);
    let interval = Duration::from_millis(300);
    let mut stores = Vec::new();
    for _ in 0..2 {
        let pool = PgPoolOptions::new().max_connections(4).connect(&url).await.unwrap();
        let store = PostgresStore::with_table(pool, &table).unwrap().with_sweep_interval(interval);
        store.migrate().await.unwrap();
        stores.push(store);
    }
    let pool = stores[0].pool().clone();
    for store in &stores {
        completed(store, 20, Duration::from_millis(200)).await;
    }
    completed(&stores[1], 3, Duration::from_secs(3600)).await;
    assert_eq!(rows(&pool, &table).await, 43);
    let expired_at = tokio::time::Instant::now() + Duration::from_millis(200);
    let mut left = 43;
    while left > 3 && expired_at.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(25)).await;
        left = rows(&pool, &table).await;
    }
    assert_eq!(left, 3, "the expired rows were not swept; the live ones stay");
    let took = expired_at.elapsed();
    assert!(
        took < interval * 2 + Duration::from_millis(500),
        "swept {took:?} after expiry, with a {interval:?} interval"
    );
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE \"{table}\""))).execute(&pool).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn b23_a_zero_sweep_interval_turns_the_background_sweep_off() {
    let pool = PgPoolOptions::new().max_connections(4).connect(&services::database_url()).await.unwrap();
    let table = format!("nosweep_{:x}", idempo::Token::random().0 as u32);
    let store = PostgresStore::with_table(pool.clone(), &table).unwrap().with_sweep_interval(Duration::ZERO);
    assert_eq!(store.sweep_interval(), Duration::ZERO);
    assert_eq!(PostgresStore::with_table(pool.clone(), &table).unwrap().sweep_interval(), Duration::from_secs(60));
    store.migrate().await.unwrap();
    completed(&store, 10, Duration::from_millis(1)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(rows(&pool, &table).await, 10, "nothing swept them");
    // While another process sweeps (holds the table's advisory lock), this one deletes nothing.
    let mut other = pool.begin().await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(store.sweep_lock()).execute(&mut *other).await.unwrap();
    assert_eq!(store.sweep(100).await.unwrap(), 0);
    other.commit().await.unwrap();
    assert_eq!(store.sweep(100).await.unwrap(), 10, "sweep() by hand still does");
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE \"{table}\""))).execute(&pool).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_migrations_from_many_processes_do_not_collide() {
    let pool = PgPoolOptions::new().max_connections(10).connect(&services::database_url()).await.unwrap();
    let table = format!("migrate_{:x}", idempo::Token::random().0 as u32);
    let store = PostgresStore::with_table(pool.clone(), &table).unwrap();
    let runs: Vec<_> = (0..10)
        .map(|_| {
            tokio::spawn({
                let s = store.clone();
                async move { s.migrate().await }
            })
        })
        .collect();
    for r in runs {
        r.await.unwrap().expect("migrate");
    }
    idempo::testing::concurrent_claims(Arc::new(store), 200).await;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE \"{table}\""))).execute(&pool).await.unwrap();
}

#[tokio::test]
async fn bad_configuration_is_a_typed_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let err = PostgresStore::connect(&format!("postgres://postgres@127.0.0.1:{port}/postgres")).await.unwrap_err();
    assert!(matches!(err, idempo::StoreError::Unavailable(_)), "{err}");
    let pool = PgPoolOptions::new().connect_lazy("postgres://x@127.0.0.1:1/x").unwrap();
    let err = PostgresStore::with_table(pool, "records; DROP TABLE x").unwrap_err();
    assert!(err.to_string().contains("invalid table name"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn b20_a_completion_or_release_in_one_process_wakes_a_waiter_in_another() {
    let (a, b) = (services::postgres().await, services::postgres().await);
    // Without any re-read: the watch itself resolves, only from the notification.
    assert!(support::waiting::woken_across(&a, &b, false, Duration::from_secs(5)).await, "woken by the completion");
    assert!(support::waiting::woken_across(&a, &b, true, Duration::from_secs(5)).await, "woken by the release");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn b20_the_listener_connects_again_after_its_backend_is_killed() {
    let a = services::postgres().await;
    let url = format!("{}?application_name=idempo_listener_test", services::database_url());
    let b = PostgresStore::connect(&url).await.unwrap();
    assert!(support::waiting::woken_across(&a, &b, false, Duration::from_secs(5)).await);
    let killed: i64 = sqlx::query_scalar(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
         WHERE application_name = 'idempo_listener_test' AND query LIKE 'LISTEN%'",
    )
    .fetch_one(a.pool())
    .await
    .unwrap();
    assert_eq!(killed, 1, "the listening connection was terminated");
    assert!(
        support::waiting::woken_again(&a, &b).await,
        "waiters are woken by notifications again after the listener reconnected"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn migrate_adds_the_waited_column_to_a_table_made_before_it() {
    let pool = PgPoolOptions::new().max_connections(4).connect(&services::database_url()).await.unwrap();
    let table = format!("before_waits_{:x}", idempo::Token::random().0 as u32);
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE \"{table}\" (id bytea PRIMARY KEY, fingerprint bytea NOT NULL, token bytea, record bytea,
         expires_at timestamptz NOT NULL)"
    )))
    .execute(&pool)
    .await
    .unwrap();
    let store = PostgresStore::with_table(pool.clone(), &table).unwrap();
    store.migrate().await.unwrap();
    idempo::testing::store_contract(Arc::new(store.clone())).await;
    assert!(support::waiting::woken_across(&store, &store, false, Duration::from_secs(5)).await);
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE \"{table}\""))).execute(&pool).await.unwrap();
}
