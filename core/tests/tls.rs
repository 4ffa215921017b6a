//! Transport security (docs/RULES.md B22) against real TLS servers: a Redis that only has a
//! TLS port and a PostgreSQL with ssl=on that refuses plain text, both started by `make
//! test` with a certificate signed by a CA made for the run.

mod support;

use std::sync::Arc;

use idempo::store::{PostgresStore, RedisStore, Tls};
use idempo::{Claim, Completion, Store, StoreError};
use support::services;

/// A record written and read back through the store: the connection is really usable.
async fn round_trip(store: Arc<dyn Store>) {
    let id = idempo::testing::random_id();
    let fp = idempo::testing::fingerprint(3);
    let Ok(Claim::Claimed { token }) = store.claim(&id, &fp, std::time::Duration::from_secs(30)).await else {
        panic!("a fresh id is claimed over TLS")
    };
    let record = idempo::testing::sample_record(b"over tls");
    let ttl = std::time::Duration::from_secs(30);
    assert_eq!(store.complete(&id, &fp, token, &record, ttl).await.unwrap(), Completion::Stored);
    match store.claim(&id, &fp, ttl).await {
        Ok(Claim::Completed { record: got, .. }) => assert_eq!(*got, record),
        other => panic!("expected the record back, got {other:?}"),
    }
}

fn refused<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) -> String {
    match result {
        Err(StoreError::Unavailable(e)) => e.to_string(),
        other => panic!("{what}: expected the connection to be refused, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b22_rediss_verifies_the_server_against_the_ca_file() {
    let t = services::tls();
    let store = RedisStore::connect_with(&t.redis, &Tls::ca_file(&t.ca)).await.expect("rediss:// with the right CA");
    round_trip(Arc::new(store)).await;
    let why = refused(RedisStore::connect_with(&t.redis, &Tls::ca_file(&t.wrong_ca)).await, "the wrong CA");
    assert!(why.to_lowercase().contains("certificate"), "{why}");
    // Without a CA file the system's roots are trusted, and they did not sign it.
    refused(RedisStore::connect(&t.redis).await, "the system's roots");
    // A plain-text client is not answered by a TLS port.
    let plain = t.redis.replacen("rediss://", "redis://", 1);
    refused(RedisStore::connect(&plain).await, "plain text to a TLS port");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b22_postgres_sslmode_verify_full_with_the_right_and_the_wrong_ca() {
    let t = services::tls();
    let url = |query: &str| format!("{}?{query}", t.postgres);
    let store = PostgresStore::connect_with(&url("sslmode=verify-full"), &Tls::ca_file(&t.ca)).await.expect("right CA");
    store.migrate().await.unwrap();
    let on_tls: bool = sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert!(on_tls, "the session is encrypted");
    round_trip(Arc::new(store)).await;
    let why =
        refused(PostgresStore::connect_with(&url("sslmode=verify-full"), &Tls::ca_file(&t.wrong_ca)).await, "wrong CA");
    assert!(why.to_lowercase().contains("certificate") || why.contains("UnknownIssuer"), "{why}");
    // A CA file without an sslmode means verify-full.
    refused(PostgresStore::connect_with(&t.postgres, &Tls::ca_file(&t.wrong_ca)).await, "CA file, no sslmode");
    PostgresStore::connect_with(&t.postgres, &Tls::ca_file(&t.ca)).await.expect("CA file, no sslmode, right CA");
    // The URL's own sslrootcert and verify-ca work too, for the pool and for the store's
    // own connections its operations run on (round_trip).
    let store =
        PostgresStore::connect(&url(&format!("sslmode=verify-ca&sslrootcert={}", t.ca))).await.expect("verify-ca");
    round_trip(Arc::new(store)).await;
    // require encrypts without checking whose certificate it is.
    round_trip(Arc::new(PostgresStore::connect(&url("sslmode=require")).await.expect("require"))).await;
    refused(PostgresStore::connect(&url(&format!("sslmode=verify-full&sslrootcert={}", t.wrong_ca))).await, "wrong");
    // The server refuses plain text, so a session that works was encrypted.
    refused(PostgresStore::connect(&url("sslmode=disable")).await, "sslmode=disable");
}

/// The store's own connections (its operations are pipelined on them, not run on the pool)
/// connect as the pool's options say: with a pool made lazily, nothing has checked the
/// certificate before the first operation, which must refuse the wrong CA itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b22_postgres_operations_check_the_certificate_the_pool_would() {
    use std::str::FromStr;
    let t = services::tls();
    let lazy = |ca: &str| {
        let options =
            sqlx::postgres::PgConnectOptions::from_str(&format!("{}?sslmode=verify-full&sslrootcert={ca}", t.postgres))
                .unwrap();
        PostgresStore::from_pool(sqlx::postgres::PgPoolOptions::new().max_connections(2).connect_lazy_with(options))
            .unwrap()
    };
    let id = idempo::testing::random_id();
    let claim =
        lazy(&t.wrong_ca).claim(&id, &idempo::testing::fingerprint(4), std::time::Duration::from_secs(30)).await;
    let why = refused(claim, "the wrong CA, on the store's own connection");
    assert!(why.to_lowercase().contains("certificate") || why.contains("UnknownIssuer"), "{why}");
    let store = lazy(&t.ca);
    store.migrate().await.unwrap();
    round_trip(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b22_an_unreadable_ca_file_says_which_file() {
    let t = services::tls();
    let missing = Tls::ca_file("/nonexistent/ca.pem");
    let why = refused(RedisStore::connect_with(&t.redis, &missing).await, "missing CA file");
    assert!(why.contains("/nonexistent/ca.pem"), "{why}");
    let why = refused(PostgresStore::connect_with(&t.postgres, &missing).await, "missing CA file");
    assert!(why.contains("/nonexistent/ca.pem"), "{why}");
}
