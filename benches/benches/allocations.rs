//! Heap allocations per request through the tower layer (memory store, axum), counted by
//! a global allocator: the figure to watch when the normal path changes (issue 14's
//! client-gone rescue must add nothing to it). `cargo bench -p idempo-benches --bench
//! allocations`; the figures are in benches/README.md.
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Body;
use axum::routing::post;
use http::Request;
use http_body_util::BodyExt;
use idempo::{Idempotency, MemoryStore};
use tower::ServiceExt;

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed on to the system allocator unchanged; only counted.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const REQUESTS: usize = 5000;

fn request(path: &str, key: Option<&str>) -> Request<Body> {
    let mut req = Request::post(path).header("content-type", "text/plain");
    if let Some(key) = key {
        req = req.header("idempotency-key", key);
    }
    req.body(Body::from("body")).expect("a valid request")
}

/// Allocations per request, the response read to its end, for `REQUESTS` requests.
async fn per_request(app: &Router, path: &str, keys: &[Option<String>]) -> f64 {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for key in keys {
        let res = app.clone().oneshot(request(path, key.as_deref())).await.expect("infallible");
        assert!(res.status().is_success());
        res.into_body().collect().await.expect("the body reads");
    }
    (ALLOCATIONS.load(Ordering::Relaxed) - before) as f64 / keys.len() as f64
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    rt.block_on(async {
        let idem = Idempotency::builder(MemoryStore::new()).build();
        let app = Router::new()
            .route("/echo", post(|body: String| async move { (http::StatusCode::CREATED, body) }))
            .route(
                "/chunks",
                post(|| async {
                    let chunks = (0..8).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from_static(&[b'x'; 16384])));
                    Body::from_stream(futures_util::stream::iter(chunks))
                }),
            )
            .layer(idem.layer())
            .with_state(());
        let fresh = |tag: &str| (0..REQUESTS).map(|i| Some(format!("{tag}-{i}"))).collect::<Vec<_>>();
        let echo_keys = fresh("echo");
        // The same app with no layer, and with a layer that does nothing but be one.
        let echo =
            || Router::new().route("/echo", post(|body: String| async move { (http::StatusCode::CREATED, body) }));
        // `with_state` as `axum::serve` does: handlers made services once, not per request.
        let bare = echo().with_state(());
        let noop = echo().layer(tower::util::MapRequestLayer::new(|req: Request<Body>| req)).with_state(());
        println!("{:<44} {:>8}", "request (tower layer, memory store)", "allocs");
        let rows = [
            ("bare app, no layer", per_request(&bare, "/echo", &vec![None; REQUESTS]).await),
            ("a no-op layer", per_request(&noop, "/echo", &vec![None; REQUESTS]).await),
            ("no key: passes through", per_request(&app, "/echo", &vec![None; REQUESTS]).await),
            ("keyed, first execution", per_request(&app, "/echo", &echo_keys).await),
            ("keyed, replay", per_request(&app, "/echo", &echo_keys).await),
            ("keyed, first execution, 8 streamed chunks", per_request(&app, "/chunks", &fresh("chunks")).await),
        ];
        for (what, allocs) in rows {
            println!("{what:<44} {allocs:>8.1}");
        }
    });
}
