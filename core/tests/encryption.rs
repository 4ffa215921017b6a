//! Encryption at rest (docs/RULES.md B24) on real Redis and PostgreSQL, through the tower
//! layer: the store contract with encryption on, what the raw store holds, records altered
//! or copied in the store, key rotation, and the warning when fingerprints are not keyed.
//! It reads idempo's log, so it is a test binary of its own.

mod support;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use idempo::fingerprint::RecordId;
use idempo::key::{KeyRules, parse_value};
use idempo::store::{PostgresStore, RedisStore};
use idempo::{EncryptionKeys, Idempotency, Store};
use support::behaviour::key;
use support::captured::Captured;
use support::{TestApp, post, services};

const TABLE: &str = "idempo_records";

/// A test of `check` on Redis and one on PostgreSQL.
macro_rules! on_both_stores {
    ($check:ident: $redis:ident, $postgres:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $redis() {
            $check(Kind::Redis).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $postgres() {
            $check(Kind::Postgres).await;
        }
    };
}

fn logs() -> &'static Captured {
    static LOGS: OnceLock<Captured> = OnceLock::new();
    LOGS.get_or_init(|| Captured::install("info"))
}

/// Keys named `ids`, each 32 bytes of its own (derived from the id: tests only).
fn keys(ids: &[&str]) -> Arc<EncryptionKeys> {
    let key = |id: &str| {
        let mut k = [0u8; 32];
        for (i, b) in id.bytes().cycle().take(32).enumerate() {
            k[i] = b.wrapping_mul(31).wrapping_add(i as u8);
        }
        k
    };
    Arc::new(EncryptionKeys::new(ids.iter().map(|id| (*id, key(id)))).unwrap())
}

/// A key id no other test uses, so log lines are told apart.
fn unique(label: &str) -> String {
    format!("{label}-{:08x}", idempo::Token::random().0 as u32)
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Redis,
    Postgres,
}

/// One store over the shared server, encrypted with `keys` when given.
async fn store(kind: Kind, keys: Option<Arc<EncryptionKeys>>) -> Arc<dyn Store> {
    match (kind, keys) {
        (Kind::Redis, None) => Arc::new(services::redis().await),
        (Kind::Redis, Some(k)) => Arc::new(services::redis().await.with_encryption_keys(k)),
        (Kind::Postgres, None) => Arc::new(services::postgres().await),
        (Kind::Postgres, Some(k)) => Arc::new(services::postgres().await.with_encryption_keys(k)),
    }
}

fn app(store: Arc<dyn Store>) -> TestApp {
    TestApp::new(Idempotency::builder_shared(store).build())
}

fn id_of(raw_key: &str) -> RecordId {
    RecordId::new(None, &parse_value(raw_key.as_bytes(), KeyRules::default()).unwrap())
}

fn redis_key(id: &RecordId) -> String {
    format!("{}{{{}}}", idempo::store::DEFAULT_PREFIX, id.hex())
}

async fn redis_conn() -> redis::aio::MultiplexedConnection {
    redis::Client::open(services::redis_url()).unwrap().get_multiplexed_async_connection().await.unwrap()
}

async fn pg() -> sqlx::PgPool {
    sqlx::PgPool::connect(&services::database_url()).await.unwrap()
}

/// The record bytes the store holds for `raw_key`, read straight from the server.
async fn raw_record(kind: Kind, raw_key: &str) -> Vec<u8> {
    let id = id_of(raw_key);
    match kind {
        Kind::Redis => {
            redis::cmd("HGET").arg(redis_key(&id)).arg("r").query_async(&mut redis_conn().await).await.unwrap()
        }
        Kind::Postgres => sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT record FROM {TABLE} WHERE id = $1")))
            .bind(&id.0[..])
            .fetch_one(&pg().await)
            .await
            .unwrap(),
    }
}

async fn write_raw_record(kind: Kind, raw_key: &str, bytes: &[u8]) {
    let id = id_of(raw_key);
    match kind {
        Kind::Redis => {
            let _: () = redis::cmd("HSET")
                .arg(redis_key(&id))
                .arg("r")
                .arg(bytes)
                .query_async(&mut redis_conn().await)
                .await
                .unwrap();
        }
        Kind::Postgres => {
            sqlx::query(sqlx::AssertSqlSafe(format!("UPDATE {TABLE} SET record = $2 WHERE id = $1")))
                .bind(&id.0[..])
                .bind(bytes)
                .execute(&pg().await)
                .await
                .unwrap();
        }
    }
}

/// Copy the whole entry of `from` (fingerprint and record) to the id of `to`, as someone
/// with write access to the store could.
async fn copy_entry(kind: Kind, from: &str, to: &str) {
    let (from, to) = (id_of(from), id_of(to));
    match kind {
        Kind::Redis => {
            let mut c = redis_conn().await;
            let fields: Vec<(Vec<u8>, Vec<u8>)> =
                redis::cmd("HGETALL").arg(redis_key(&from)).query_async(&mut c).await.unwrap();
            let _: () = redis::cmd("HSET").arg(redis_key(&to)).arg(fields).query_async(&mut c).await.unwrap();
            let _: () = redis::cmd("PEXPIRE").arg(redis_key(&to)).arg(60_000).query_async(&mut c).await.unwrap();
        }
        Kind::Postgres => {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO {TABLE} (id, fingerprint, token, record, expires_at)
                 SELECT $2, fingerprint, token, record, expires_at FROM {TABLE} WHERE id = $1"
            )))
            .bind(&from.0[..])
            .bind(&to.0[..])
            .execute(&pg().await)
            .await
            .unwrap();
        }
    }
}

/// Change the last byte (the tag's) of the record stored for `raw_key`.
async fn tamper(kind: Kind, raw_key: &str) {
    let mut raw = raw_record(kind, raw_key).await;
    let last = raw.len() - 1;
    raw[last] ^= 0x01;
    write_raw_record(kind, raw_key, &raw).await;
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn b24_redis_store_passes_the_contract_encrypted() {
    logs();
    idempo::testing::store_contract(store(Kind::Redis, Some(keys(&["contract"]))).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn b24_postgres_store_passes_the_contract_encrypted() {
    logs();
    idempo::testing::store_contract(store(Kind::Postgres, Some(keys(&["contract"]))).await).await;
}

/// A marker in a response body is in the store's bytes without encryption and not with it;
/// both replay it.
async fn the_store_never_holds_the_body(kind: Kind) {
    logs();
    for encrypted in [false, true] {
        let app = app(store(kind, encrypted.then(|| keys(&["k1"]))).await);
        let marker = format!("card-{}", unique("marker"));
        let k = key(&format!("marker-{encrypted}"));
        app.send(post("/echo", Some(&k), marker.clone())).await;
        let raw = raw_record(kind, &k).await;
        assert_eq!(contains(&raw, marker.as_bytes()), !encrypted, "{kind:?} encrypted={encrypted}: {raw:?}");
        assert_eq!(raw.starts_with(b"IDR\x02\x02k1"), encrypted);
        let again = app.send(post("/echo", Some(&k), marker.clone())).await;
        assert!(again.replayed() && again.text() == marker, "{kind:?} encrypted={encrypted}");
        assert_eq!(app.count(), 1);
    }
}

on_both_stores!(the_store_never_holds_the_body: b24_redis_holds_no_plain_body, b24_postgres_holds_no_plain_body);

/// One byte changed in a sealed record, or a whole entry copied to another key's id: the
/// retry answers 503, the handler does not run, the next request is served. Without
/// encryption the copied entry replays to the other key: what encryption closes.
async fn altered_and_copied_records_are_refused(kind: Kind) {
    logs();
    let id = unique("alter");
    let app = app(store(kind, Some(keys(&[&id]))).await);
    let k = key("tampered");
    app.send(post("/echo", Some(&k), "pay 10")).await;
    tamper(kind, &k).await;
    app.send(post("/echo", Some(&k), "pay 10")).await.assert_problem(503, "store-unavailable");
    assert_eq!(app.count(), 1, "the handler ran again on a tampered record");

    let (a, b) = (key("copied-from"), key("copied-to"));
    app.send(post("/echo", Some(&a), "pay 20")).await;
    copy_entry(kind, &a, &b).await;
    app.send(post("/echo", Some(&b), "pay 20")).await.assert_problem(503, "store-unavailable");
    assert_eq!(app.count(), 2);
    let fresh = app.send(post("/echo", Some(&key("after")), "pay 30")).await;
    assert!(!fresh.replayed() && fresh.text() == "pay 30", "the app keeps serving");

    let plain = self::app(store(kind, None).await);
    let (a, b) = (key("plain-from"), key("plain-to"));
    plain.send(post("/echo", Some(&a), "pay 40")).await;
    copy_entry(kind, &a, &b).await;
    let moved = plain.send(post("/echo", Some(&b), "pay 40")).await;
    assert!(moved.replayed(), "without encryption the copied record replays (the test can tell)");
}

/// `on_store_error = fail_open` lets a request run when the store cannot answer; a record
/// the store did return but that does not open proves the key ran already, so it is
/// refused all the same (B16, B18, B24).
async fn fail_open_never_runs_a_recorded_key_again(kind: Kind) {
    logs();
    let store = store(kind, Some(keys(&[&unique("open")]))).await;
    let app = TestApp::new(Idempotency::builder_shared(store).on_store_error(idempo::OnStoreError::FailOpen).build());
    let k = key("fail-open-tampered");
    app.send(post("/echo", Some(&k), "pay 10")).await;
    tamper(kind, &k).await;
    app.send(post("/echo", Some(&k), "pay 10")).await.assert_problem(503, "store-unavailable");
    assert_eq!(app.count(), 1, "fail open ran a key whose record is in the store");
}

on_both_stores!(fail_open_never_runs_a_recorded_key_again: b24_redis_fail_open_never_runs_a_recorded_key_again, b24_postgres_fail_open_never_runs_a_recorded_key_again);

on_both_stores!(altered_and_copied_records_are_refused: b24_redis_refuses_altered_and_copied_records, b24_postgres_refuses_altered_and_copied_records);

/// Records under k1 replay once k2 is put first; with k1 gone they answer 503 and the log
/// names k1; records written before encryption was on replay throughout.
async fn keys_rotate(kind: Kind) {
    let logs = logs();
    let (k1, k2) = (unique("k1"), unique("k2"));
    let plain = app(store(kind, None).await);
    let before = key("written-plain");
    plain.send(post("/echo", Some(&before), "plain")).await;
    let old = TestApp::beside(&plain, Idempotency::builder_shared(store(kind, Some(keys(&[&k1]))).await).build());
    let under_k1 = key("written-k1");
    old.send(post("/echo", Some(&under_k1), "one")).await;

    let rotated =
        TestApp::beside(&plain, Idempotency::builder_shared(store(kind, Some(keys(&[&k2, &k1]))).await).build());
    for (k, body) in [(&under_k1, "one"), (&before, "plain")] {
        let r = rotated.send(post("/echo", Some(k), body)).await;
        assert!(r.replayed() && r.text() == body, "{kind:?}: {body} did not replay after rotation");
    }
    let under_k2 = key("written-k2");
    rotated.send(post("/echo", Some(&under_k2), "two")).await;
    assert!(raw_record(kind, &under_k2).await.starts_with(format!("IDR\x02{}{k2}", k2.len() as u8 as char).as_bytes()));

    let retired = TestApp::beside(&plain, Idempotency::builder_shared(store(kind, Some(keys(&[&k2]))).await).build());
    for (k, body) in [(&under_k2, "two"), (&before, "plain")] {
        assert!(retired.send(post("/echo", Some(k), body)).await.replayed(), "{kind:?}: {body} after k1 went");
    }
    // Store errors are logged once a second per call site: ask until the line is out.
    for _ in 0..5 {
        retired.send(post("/echo", Some(&under_k1), "one")).await.assert_problem(503, "store-unavailable");
        if !logs.lines_with(&k1).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    let lines = logs.lines_with(&k1);
    assert!(
        lines.iter().any(|l| l.contains("which is not among encryption_keys") && l.contains("answered 503")),
        "{lines:?}"
    );
    assert_eq!(plain.count(), 3, "nothing ran twice");
}

on_both_stores!(keys_rotate: b24_redis_keys_rotate, b24_postgres_keys_rotate);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn b24_unkeyed_fingerprints_are_warned_about_once() {
    let logs = logs();
    let store = store(Kind::Redis, Some(keys(&["warn"]))).await;
    for _ in 0..3 {
        Idempotency::builder_shared(store.clone()).build();
    }
    Idempotency::builder_shared(store).fingerprint_secret("s").build();
    let warnings = logs.lines_with("set fingerprint_secret to key them with HMAC");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("WARN"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn b24_keys_are_never_shown() {
    logs();
    let store = services::redis().await.with_encryption_keys(keys(&["shown"]));
    let shown = format!("{store:?}");
    assert!(shown.contains("EncryptionKeys { ids: [\"shown\"] }"), "{shown}");
    let pg = services::postgres().await.with_encryption_keys(keys(&["shown"]));
    assert!(format!("{pg:?}").contains("ids: [\"shown\"]"));
    let _: (RedisStore, PostgresStore) = (store, pg);
}
