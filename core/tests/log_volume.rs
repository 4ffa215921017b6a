//! During a store outage every request fails the same way: the log gets one line per
//! second for it, saying how many were left out, while `stats()` still counts each one.
//! In its own process, because the subscriber is process-wide.

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use idempo::{Idempotency, MemoryStore};
use support::captured::Captured;
use support::faulty::Faulty;
use support::{TestApp, post};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_outage_logs_a_line_a_second_not_a_line_a_request() {
    let logs = Captured::install("info");

    let (store, faults) = Faulty::wrap(Arc::new(MemoryStore::new()));
    faults.claim_down.store(true, Ordering::SeqCst);
    let app = Arc::new(TestApp::new(Idempotency::builder_shared(store).build()));
    let requests = (0..500).map(|n| {
        let app = app.clone();
        tokio::spawn(async move { app.send(post("/echo", Some(&format!("outage-{n}")), "x")).await.status })
    });
    for r in futures_util::future::join_all(requests).await {
        assert_eq!(r.unwrap(), http::StatusCode::SERVICE_UNAVAILABLE);
    }
    let lines = logs.lines_with("store-unavailable");
    assert!(lines.len() <= 2, "{} lines for 500 failed requests", lines.len());
    assert_eq!(app.idem.stats().store_errors, 500, "every failure is still counted");

    // The next window's line says how many were left out.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    app.send(post("/echo", Some("outage-last"), "x")).await;
    let lines = logs.lines_with("store-unavailable");
    let last = lines.last().unwrap();
    let suppressed: u64 = last.split("suppressed=").nth(1).and_then(|s| s.split(' ').next()).unwrap().parse().unwrap();
    assert!(suppressed >= 498, "{last}");
}
