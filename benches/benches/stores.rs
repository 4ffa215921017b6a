//! Store operations through the engine's store contract, per store, on loopback:
//! claim+complete of a new key and the claim of a replay, sequential (latency) and with
//! 32 in flight (throughput), beside the bare round trip of the server (Redis PING,
//! PostgreSQL `SELECT 1`) over the same client library.
//!
//! `make bench-stores` starts throwaway servers; by hand, set REDIS_URL and DATABASE_URL.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http::StatusCode;
use idempo::fingerprint::{Fingerprint, RecordId};
use idempo::record::Record;
use idempo::store::{PostgresStore, RedisStore};
use idempo::testing::random_id;
use idempo::{Claim, MemoryStore, Store};

const LEASE: Duration = Duration::from_secs(60);
const TTL: Duration = Duration::from_secs(3600);
const IN_FLIGHT: u64 = 32;

fn record() -> Record {
    Record {
        status: StatusCode::CREATED,
        headers: vec![(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"))],
        body: Some(Bytes::from_static(br#"{"id":"ch_1","amount":4200,"currency":"eur","status":"succeeded"}"#)),
    }
}

async fn claim_complete(store: &dyn Store, fp: &Fingerprint, record: &Record) {
    let id = random_id();
    let Ok(Claim::Claimed { token }) = store.claim(&id, fp, LEASE).await else { panic!("claim failed") };
    store.complete(&id, fp, token, record, TTL).await.expect("complete");
}

async fn replay(store: &dyn Store, id: &RecordId, fp: &Fingerprint) {
    let Ok(Claim::Completed { .. }) = store.claim(id, fp, LEASE).await else { panic!("replay failed") };
}

/// `iters` operations spread over IN_FLIGHT concurrent tasks; returns the wall time.
async fn concurrently<F, Fut>(iters: u64, op: F) -> Duration
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let start = Instant::now();
    let tasks: Vec<_> = (0..IN_FLIGHT)
        .map(|i| {
            let op = op.clone();
            let n = iters / IN_FLIGHT + u64::from(i < iters % IN_FLIGHT);
            tokio::spawn(async move {
                for _ in 0..n {
                    op().await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("bench task");
    }
    start.elapsed()
}

fn bench_store(c: &mut Criterion, rt: &tokio::runtime::Runtime, name: &str, store: Arc<dyn Store>) {
    let fp = Fingerprint([7; 32]);
    let rec = record();
    let replay_id = random_id();
    rt.block_on(async {
        let Ok(Claim::Claimed { token }) = store.claim(&replay_id, &fp, LEASE).await else { panic!() };
        store.complete(&replay_id, &fp, token, &rec, TTL).await.unwrap();
    });

    let mut g = c.benchmark_group(format!("{name}/latency"));
    g.bench_function("claim+complete", |b| b.to_async(rt).iter(|| claim_complete(&*store, &fp, &rec)));
    g.bench_function("replay", |b| b.to_async(rt).iter(|| replay(&*store, &replay_id, &fp)));
    g.finish();

    let mut g = c.benchmark_group(format!("{name}/throughput"));
    g.throughput(Throughput::Elements(1));
    g.bench_function("claim+complete", |b| {
        b.to_async(rt).iter_custom(|iters| {
            let (store, rec) = (store.clone(), rec.clone());
            concurrently(iters, move || {
                let (store, rec) = (store.clone(), rec.clone());
                async move { claim_complete(&*store, &fp, &rec).await }
            })
        })
    });
    g.bench_function("replay", |b| {
        b.to_async(rt).iter_custom(|iters| {
            let store = store.clone();
            concurrently(iters, move || {
                let store = store.clone();
                async move { replay(&*store, &replay_id, &fp).await }
            })
        })
    });
    g.finish();
}

fn stores(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let redis_url = std::env::var("REDIS_URL").expect("REDIS_URL (make bench-stores starts a throwaway Redis)");
    let database_url =
        std::env::var("DATABASE_URL").expect("DATABASE_URL (make bench-stores starts a throwaway PostgreSQL)");

    // Large enough that the benchmark never fills it: this measures operations, not eviction.
    bench_store(
        c,
        &rt,
        "memory",
        Arc::new(
            MemoryStore::builder()
                .max_entries(50_000_000)
                .max_entries_per_scope(50_000_000)
                .max_bytes(usize::MAX)
                .build(),
        ),
    );

    let redis = rt.block_on(RedisStore::connect(&redis_url)).unwrap();
    let ping = rt.block_on(redis::Client::open(redis_url.as_str()).unwrap().get_connection_manager()).unwrap();
    c.bench_function("redis/latency/PING (round trip)", |b| {
        b.to_async(&rt).iter(|| {
            let mut conn = ping.clone();
            async move {
                let _: String = redis::cmd("PING").query_async(&mut conn).await.unwrap();
            }
        })
    });
    bench_store(c, &rt, "redis", Arc::new(redis));

    let postgres = rt.block_on(PostgresStore::connect(&database_url)).unwrap();
    rt.block_on(postgres.migrate()).unwrap();
    let pool = postgres.pool().clone();
    c.bench_function("postgres/latency/SELECT 1 (round trip)", |b| {
        b.to_async(&rt).iter(|| {
            let pool = pool.clone();
            async move {
                let _: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&pool).await.unwrap();
            }
        })
    });
    bench_store(c, &rt, "postgres", Arc::new(postgres));
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = stores
}
criterion_main!(benches);
