//! The tower layer in process (issue 17): an axum app bare, behind a no-op layer, and
//! behind idempo's layer (memory store) for a request without a key (passthrough), a
//! replay, and a first execution. Each request is built outside the measured part and
//! read to its end inside it.
//!
//! `cargo bench -p idempo-benches --bench tower`: criterion. With `TOWER_CALLS=variant:n`
//! the binary instead sends `n` requests of one variant and exits, for counting
//! instructions under callgrind (scripts/bench-tower.sh, which writes benches/README.md);
//! `TOWER_CALLS=sha:n` hashes `n` SHA-256 blocks instead, to price one block.

use std::hint::black_box;

use axum::Router;
use axum::body::Body;
use axum::routing::post;
use criterion::{BatchSize, Criterion};
use http::Request;
use http_body_util::BodyExt;
use idempo::{Idempotency, MemoryStore};
use tower::ServiceExt;

const VARIANTS: [&str; 5] = ["bare", "noop", "passthrough", "replay", "first"];

fn app(variant: &str) -> Router {
    let router = Router::new().route("/echo", post(|| async { "ok" }));
    let router = match variant {
        "bare" => router,
        // A layer that does nothing but be one: what any middleware costs in axum.
        "noop" => router.layer(tower::util::MapRequestLayer::new(|req: Request<Body>| req)),
        _ => router.layer(Idempotency::builder(MemoryStore::new()).build().layer()),
    };
    // As `axum::serve` does (`into_make_service`): handlers become services once, not
    // per request, so a layer is not rebuilt around each one for every request.
    router.with_state(())
}

/// The `i`th request of `variant`: the same head for all, but for the key header's name.
fn request(variant: &str, i: u64) -> Request<Body> {
    let value = match variant {
        "replay" => "replay-key-00000000".to_owned(),
        _ => format!("key-{i:015}"),
    };
    let name = if matches!(variant, "replay" | "first") { "idempotency-key" } else { "x-unrelated-hd" };
    Request::post("/echo").header("content-type", "text/plain").header(name, value).body(Body::from("body")).unwrap()
}

async fn send(app: &Router, req: Request<Body>) {
    let res = app.clone().oneshot(req).await.unwrap();
    black_box(res.into_body().collect().await.unwrap());
}

fn calls(spec: &str) {
    let (variant, n) = spec.split_once(':').expect("TOWER_CALLS=variant:n");
    let n: u64 = n.parse().expect("a count");
    if variant == "sha" {
        // Calibration: `n` SHA-256 blocks in one call, for the instructions one block costs
        // (the same sha2 as idempo's; its portable code under callgrind).
        use sha2::Digest;
        let data = vec![0x5a_u8; 64 * n as usize];
        black_box(sha2::Sha256::digest(black_box(&data)));
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let app = app(variant);
        send(&app, request(variant, u64::MAX)).await; // a replay's original
        for i in 0..n {
            send(&app, request(variant, i)).await;
        }
    });
}

fn main() {
    if let Ok(spec) = std::env::var("TOWER_CALLS") {
        return calls(&spec);
    }
    let mut c = Criterion::default().configure_from_args();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut group = c.benchmark_group("tower");
    for variant in VARIANTS {
        let app = app(variant);
        rt.block_on(send(&app, request(variant, u64::MAX)));
        let mut i = 0u64;
        group.bench_function(variant, |b| {
            b.to_async(&rt).iter_batched(
                || {
                    i += 1;
                    request(variant, i)
                },
                |req| send(&app, req),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
    c.final_summary();
}
