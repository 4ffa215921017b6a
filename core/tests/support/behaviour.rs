//! The rules of docs/RULES.md through axum and the tower layer, over any store.
//!
//! Each function takes the store to test; `behaviour_suite!` turns them into tests on a
//! multi-threaded runtime. Keys are random so stores shared with other tests are fine.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::{Request, StatusCode};
use idempo::{Idempotency, OnStoreError, Store, Token};

use super::faulty::Faulty;
#[allow(unused_imports)] // for behaviour_suite!, which names every test from here
pub use super::waiting::*;
use super::{Reply, TestApp, http_client, http_post, post, quoted};
use tower::ServiceExt;

/// A key unique to this run.
pub fn key(name: &str) -> String {
    format!("{name}-{:032x}", Token::random().0)
}

pub(crate) fn app(store: &Arc<dyn Store>, configure: impl FnOnce(idempo::Builder) -> idempo::Builder) -> TestApp {
    TestApp::new(configure(Idempotency::builder_shared(store.clone())).build())
}

#[macro_export]
macro_rules! behaviour_suite {
    ($store:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let store: std::sync::Arc<dyn idempo::Store> = $store;
                $crate::support::behaviour::$name(store).await;
            }
        )*
    };
    ($store:expr) => {
        $crate::behaviour_suite!($store;
            b1_only_covered_methods_are_touched,
            b1_methods_option,
            b2_quoted_bare_and_header_case,
            b2_header_option_and_strict_syntax,
            b3_invalid_keys_are_rejected_before_the_handler,
            b4_missing_key_passes_or_is_required,
            b5_scope_separates_tenants,
            b6_fingerprint_mismatch_keeps_the_record,
            b6_mismatch_while_in_flight,
            b6_fingerprint_headers_and_secret,
            b7_body_limit_and_unchanged_body,
            b8_two_hundred_concurrent_duplicates_execute_once,
            b9_in_flight_duplicate_gets_409_with_retry_after,
            b10_renewal_keeps_a_long_handler_exclusive,
            b10_takeover_fences_the_stale_holder,
            b11_4xx_stored_5xx_released,
            b11_store_status_option,
            b11_panicking_handler_releases_the_key,
            b12_large_response_is_stored_without_body,
            b13_streamed_response_reaches_client_before_handler_finishes,
            b13_upgrade_passes_through_and_releases,
            b14_replay_headers,
            b15_problem_base_option,
            b16_store_down_at_claim_fails_closed,
            b16_fail_open_runs_unprotected,
            b17_failed_completion_is_retried_in_background,
            b17_completion_gives_up_after_persist_timeout,
            b18_corrupt_record_is_a_store_error,
            b19_stats_count_every_outcome,
            empty_response_body_is_stored,
            b11_whole_response_stored_before_its_head_is_handed_back,
            b11_a_client_gone_mid_handler_never_releases,
            b17_a_lease_lapsed_in_an_outage_is_not_run_twice,
            b11_a_client_gone_mid_body_leaves_the_rest_recorded,
            b11_an_outer_timeout_never_releases,
            b20_two_hundred_waiting_duplicates_all_get_the_response,
            b20_the_wait_option_and_its_bounds,
            b20_a_wait_that_runs_out_is_a_409,
            b20_on_release_one_waiter_executes_and_the_rest_replay_it,
            b20_max_waiters_and_a_waiter_whose_client_left,
        );
    };
}

pub async fn b1_only_covered_methods_are_touched(store: Arc<dyn Store>) {
    let app = app(&store, |b| b);
    let k = key("b1");
    for method in ["GET", "PUT", "DELETE"] {
        for _ in 0..2 {
            let req = Request::builder()
                .method(method)
                .uri("/echo")
                .header("idempotency-key", &k)
                .body(Body::from("x"))
                .unwrap();
            let r = app.send(req).await;
            assert_eq!(r.status, StatusCode::CREATED);
            assert!(!r.replayed(), "{method} must not be replayed");
        }
    }
    // Even an invalid key is ignored on a method that is not covered.
    let req = Request::get("/echo").header("idempotency-key", "\"unterminated").body(Body::empty()).unwrap();
    assert_eq!(app.send(req).await.status, StatusCode::CREATED);
    assert_eq!(app.count(), 7);
    // POST is covered: the second call is a replay.
    let first = app.send(post("/echo", Some(&k), "x")).await;
    let second = app.send(post("/echo", Some(&k), "x")).await;
    assert!(!first.replayed() && second.replayed());
    assert_eq!(app.count(), 8);
}

pub async fn b1_methods_option(store: Arc<dyn Store>) {
    let app = app(&store, |b| b.methods(["put"]));
    let k = key("b1m");
    let put = || Request::put("/echo").header("idempotency-key", &k).body(Body::from("x")).unwrap();
    app.send(put()).await;
    assert!(app.send(put()).await.replayed());
    // POST is no longer covered.
    app.send(post("/echo", Some(&k), "x")).await;
    app.send(post("/echo", Some(&k), "x")).await;
    assert_eq!(app.count(), 3);
}

pub async fn b2_quoted_bare_and_header_case(store: Arc<dyn Store>) {
    let app = app(&store, |b| b);
    let k = key("b2");
    let first = app.send(post("/echo", Some(&quoted(&k)), "x")).await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert!(!first.replayed(), "a first response carries no replay header (B14)");
    let bare = app.send(post("/echo", Some(&k), "x")).await;
    assert!(bare.replayed(), "a bare key denotes the same key as its quoted form");
    let req = Request::post("/echo").header("IDEMPOTENCY-KEY", quoted(&k)).body(Body::from("x")).unwrap();
    assert!(app.send(req).await.replayed(), "the header name is case-insensitive");
    // Escapes: "a\"b" is the key a"b.
    let esc = key("e");
    let r1 = app.send(post("/echo", Some(&format!("\"{esc}\\\\x\"")), "x")).await;
    let r2 = app.send(post("/echo", Some(&format!("{esc}\\x")), "x")).await;
    assert!(!r1.replayed() && r2.replayed(), "an escaped backslash unescapes to the bare key");
    assert_eq!(app.count(), 2);
}

pub async fn b2_header_option_and_strict_syntax(store: Arc<dyn Store>) {
    let app = app(&store, |b| b.header("X-Request-Key").strict_key_syntax(true));
    let k = key("b2s");
    let req = |v: &str| Request::post("/echo").header("x-request-key", v).body(Body::from("x")).unwrap();
    app.send(req(&quoted(&k))).await;
    assert!(app.send(req(&quoted(&k))).await.replayed());
    app.send(req(&k)).await.assert_problem(400, "invalid-key");
    // The default header name is now ignored.
    app.send(post("/echo", Some(&quoted(&k)), "x")).await;
    app.send(post("/echo", Some(&quoted(&k)), "x")).await;
    assert_eq!(app.count(), 3);
}

pub async fn b3_invalid_keys_are_rejected_before_the_handler(store: Arc<dyn Store>) {
    let app = app(&store, |b| b.max_key_length(16));
    for bad in ["\"\"", "\"a\", \"b\"", "a,b", "\"unterminated", "\"bad\\escape\"", &"k".repeat(17), "\"tab\there\""] {
        let r = app.send(post("/echo", Some(bad), "x")).await;
        r.assert_problem(400, "invalid-key");
    }
    let non_ascii = Request::post("/echo")
        .header("idempotency-key", http::HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap())
        .body(Body::from("x"))
        .unwrap();
    app.send(non_ascii).await.assert_problem(400, "invalid-key");
    let repeated = Request::post("/echo")
        .header("idempotency-key", "a")
        .header("idempotency-key", "a")
        .body(Body::from("x"))
        .unwrap();
    app.send(repeated).await.assert_problem(400, "invalid-key");
    assert_eq!(app.count(), 0, "no invalid key reaches the handler");
    let max = app.send(post("/echo", Some(&"k".repeat(16)), "x")).await;
    assert_eq!(max.status, StatusCode::CREATED);
}

pub async fn b4_missing_key_passes_or_is_required(store: Arc<dyn Store>) {
    let optional = app(&store, |b| b);
    optional.send(post("/echo", None, "x")).await;
    let r = optional.send(post("/echo", None, "x")).await;
    assert!(!r.replayed());
    assert_eq!(optional.count(), 2);

    let required = app(&store, |b| b.required(true));
    let r = required.send(post("/echo", None, "x")).await;
    r.assert_problem(400, "missing-key");
    assert!(r.text().contains("\"title\":\"Idempotency-Key is missing\""));
    assert_eq!(required.count(), 0);
    // Required applies to covered methods only.
    let get = required.send(Request::get("/counter").body(Body::empty()).unwrap()).await;
    assert_eq!(get.status, StatusCode::OK);
}

pub async fn b5_scope_separates_tenants(store: Arc<dyn Store>) {
    let idem = Idempotency::builder_shared(store.clone()).build();
    let layer = idem
        .layer()
        .scope(|parts| parts.headers.get("x-tenant").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned());
    let app = TestApp::with_layer(idem, layer);
    let k = key("b5");
    let req = |tenant: &str| {
        Request::post("/echo").header("idempotency-key", &k).header("x-tenant", tenant).body(Body::from("x")).unwrap()
    };
    let a1 = app.send(req("a")).await;
    let b1 = app.send(req("b")).await;
    assert!(!a1.replayed() && !b1.replayed(), "tenants do not share keys");
    let a2 = app.send(req("a")).await;
    assert!(a2.replayed());
    assert_eq!(a2.header("location"), a1.header("location"));
    assert_eq!(app.count(), 2);
}

pub async fn b6_fingerprint_mismatch_keeps_the_record(store: Arc<dyn Store>) {
    let app = app(&store, |b| b);
    let k = key("b6");
    let first = app.send(post("/echo?a=1", Some(&k), "original")).await;
    let changed_body = app.send(post("/echo?a=1", Some(&k), "changed")).await;
    changed_body.assert_problem(422, "fingerprint-mismatch");
    assert!(changed_body.text().contains("\"title\":\"Idempotency-Key is already used\""));
    app.send(post("/echo?a=2", Some(&k), "original")).await.assert_problem(422, "fingerprint-mismatch");
    app.send(post("/status/201", Some(&k), "original")).await.assert_problem(422, "fingerprint-mismatch");
    let patch = Request::patch("/echo?a=1").header("idempotency-key", &k).body(Body::from("original")).unwrap();
    app.send(patch).await.assert_problem(422, "fingerprint-mismatch");
    // The stored record is intact: the corrected retry replays.
    let retry = app.send(post("/echo?a=1", Some(&k), "original")).await;
    assert!(retry.replayed());
    assert_eq!(retry.body, first.body);
    assert_eq!(app.count(), 1);
}

pub async fn b6_mismatch_while_in_flight(store: Arc<dyn Store>) {
    let app = Arc::new(app(&store, |b| b));
    let k = key("b6f");
    let a = app.clone();
    let k2 = k.clone();
    let first = tokio::spawn(async move { a.send(post("/slow?ms=400", Some(&k2), "one")).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    app.send(post("/slow?ms=400", Some(&k), "two")).await.assert_problem(422, "fingerprint-mismatch");
    assert_eq!(first.await.unwrap().status, StatusCode::OK);
    assert_eq!(app.count(), 1);
}

pub async fn b6_fingerprint_headers_and_secret(store: Arc<dyn Store>) {
    let app = app(&store, |b| b.fingerprint_headers(["x-account"]).fingerprint_secret("s3cret"));
    let k = key("b6h");
    let req = |acct: &str| {
        Request::post("/echo").header("idempotency-key", &k).header("x-account", acct).body(Body::from("x")).unwrap()
    };
    app.send(req("1")).await;
    assert!(app.send(req("1")).await.replayed());
    app.send(req("2")).await.assert_problem(422, "fingerprint-mismatch");
    // Headers not listed are not part of the fingerprint.
    let other = Request::post("/echo")
        .header("idempotency-key", &k)
        .header("x-account", "1")
        .header("x-trace", "z")
        .body(Body::from("x"))
        .unwrap();
    assert!(app.send(other).await.replayed());
    assert_eq!(app.count(), 1);
}

pub async fn b7_body_limit_and_unchanged_body(store: Arc<dyn Store>) {
    let app = app(&store, |b| b.max_request_body(1024));
    let k = key("b7");
    // Declared too large: refused before reading.
    app.send(post("/echo", Some(&k), vec![b'x'; 1025])).await.assert_problem(413, "body-too-large");
    // Streamed without a length, too large: refused once the limit is passed.
    let chunks = futures_util::stream::iter((0..4).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b'y'; 400]))));
    app.send(post("/echo", Some(&k), Body::from_stream(chunks))).await.assert_problem(413, "body-too-large");
    assert_eq!(app.count(), 0);
    // Nothing was stored: the same key then executes, and the handler sees the body as sent,
    // also when it came in several chunks.
    let chunks =
        futures_util::stream::iter(["hello ", "chunked ", "world"].map(|c| Ok::<_, std::io::Error>(Bytes::from(c))));
    let r = app.send(post("/echo", Some(&k), Body::from_stream(chunks))).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.text(), "hello chunked world");
    assert_eq!(app.count(), 1);
    // Bodies without a key are not limited.
    let big = app.send(post("/echo", None, vec![b'z'; 4096])).await;
    assert_eq!(big.body.len(), 4096);
}

pub async fn b8_two_hundred_concurrent_duplicates_execute_once(store: Arc<dyn Store>) {
    let app = app(&store, |b| b);
    let addr = app.serve().await;
    let k = key("b8");
    let replies = super::concurrent_posts(addr, "/slow?ms=200", &k, 200, &[]).await;
    let mut originals = 0;
    let mut body = None;
    for r in replies {
        match r.status {
            StatusCode::OK => {
                if !r.replayed() {
                    originals += 1;
                }
                let b = body.get_or_insert_with(|| r.body.clone());
                assert_eq!(&r.body, b, "every success is the original response or its replay");
            }
            StatusCode::CONFLICT => r.assert_problem(409, "key-in-use"),
            other => panic!("unexpected status {other}: {}", r.text()),
        }
    }
    assert_eq!(app.count(), 1, "the handler ran exactly once");
    assert_eq!(originals, 1);
}

/// A keyed `/slow?ms=500` sent to `app`, and a duplicate sent 150 ms later while the first
/// still runs: the duplicate's answer, once the first has finished.
async fn duplicate_while_running(app: &Arc<TestApp>, k: &str) -> Reply {
    let (a, k2) = (app.clone(), k.to_owned());
    let first = tokio::spawn(async move { a.send(post("/slow?ms=500", Some(&k2), "")).await });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let dup = app.send(post("/slow?ms=500", Some(k), "")).await;
    first.await.unwrap();
    dup
}

pub async fn b9_in_flight_duplicate_gets_409_with_retry_after(store: Arc<dyn Store>) {
    let app = Arc::new(app(&store, |b| b.lease_ttl(Duration::from_secs(5))));
    let k = key("b9");
    let dup = duplicate_while_running(&app, &k).await;
    dup.assert_problem(409, "key-in-use");
    assert!(dup.text().contains("\"title\":\"A request is outstanding for this Idempotency-Key\""));
    assert_eq!(dup.header("retry-after"), Some("1"), "retry_after's default");
    let replay = app.send(post("/slow?ms=500", Some(&k), "")).await;
    assert!(replay.replayed());
    assert_eq!(app.count(), 1);
    // `retry_after` as set, and never more than the lease has left.
    for (retry_after, lease, expected) in [(3, 60, 3..=3), (30, 5, 2..=5)] {
        let other = Arc::new(self::app(&store, |b| {
            b.lease_ttl(Duration::from_secs(lease)).retry_after(Duration::from_secs(retry_after))
        }));
        let dup = duplicate_while_running(&other, &key("b9-retry-after")).await;
        dup.assert_problem(409, "key-in-use");
        let after: u64 = dup.header("retry-after").unwrap().parse().unwrap();
        assert!(expected.contains(&after), "retry_after {retry_after} s, lease {lease} s: Retry-After {after}");
    }
}

pub async fn b10_renewal_keeps_a_long_handler_exclusive(store: Arc<dyn Store>) {
    let lease = Duration::from_millis(300);
    let app = Arc::new(app(&store, |b| b.lease_ttl(lease)));
    let k = key("b10");
    let (a, k2) = (app.clone(), k.clone());
    let first = tokio::spawn(async move { a.send(post("/slow?ms=900", Some(&k2), "")).await });
    // Probe past several lease lengths: the renewed claim is still held each time.
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        app.send(post("/slow?ms=900", Some(&k), "")).await.assert_problem(409, "key-in-use");
    }
    assert_eq!(first.await.unwrap().status, StatusCode::OK);
    assert!(app.send(post("/slow?ms=900", Some(&k), "")).await.replayed());
    assert_eq!(app.count(), 1, "a handler three times longer than the lease ran once");
}

pub async fn b10_takeover_fences_the_stale_holder(store: Arc<dyn Store>) {
    // Two processes on one store. The first holder's renewals are swallowed, so its short
    // lease lapses while it runs, and the second process takes the key over. (Within one
    // process a live holder is never taken over: see b17_a_lease_lapsed_in_an_outage…)
    let (faulty, faults) = Faulty::wrap(store.clone());
    let lease = Duration::from_millis(300);
    let a = Arc::new(TestApp::new(Idempotency::builder_shared(faulty).lease_ttl(lease).build()));
    let b = Arc::new(TestApp::beside(&a, Idempotency::builder_shared(store).lease_ttl(lease).build()));
    faults.drop_renewals.store(true, Ordering::SeqCst);
    let k = key("b10t");
    let (a2, k2) = (a.clone(), k.clone());
    let stale = tokio::spawn(async move { a2.send(post("/slow?ms=1500", Some(&k2), "")).await });
    // Timed from the claim, not from the spawn (on a loaded machine the claim can come
    // hundreds of milliseconds late): the handler starts once the key is claimed.
    until(|| a.count() == 1, "the first holder's handler starts").await;
    tokio::time::sleep(lease + Duration::from_millis(150)).await;
    let (b2, k3) = (b.clone(), k.clone());
    let owner = tokio::spawn(async move { b2.send(post("/slow?ms=1500", Some(&k3), "")).await });
    // Renewals come back once the second process holds the key, so none can revive the
    // lapsed lease first: the stale holder's next renewal is the one fenced out.
    until(|| a.count() == 2, "the second process takes the key over and runs").await;
    faults.drop_renewals.store(false, Ordering::SeqCst);
    let stale = stale.await.unwrap();
    let owner = owner.await.unwrap();
    assert_eq!(stale.status, StatusCode::OK, "the stale holder's client still gets its response");
    assert!(!owner.replayed(), "the second request took the key over and executed");
    assert_eq!(a.count(), 2, "one run in each process");
    assert_eq!(a.idem.stats().lease_lost, 1, "the stale holder was fenced out, and counted once");
    for app in [&a, &b] {
        let replay = app.send(post("/slow?ms=1500", Some(&k), "")).await;
        assert!(replay.replayed());
        assert_eq!(replay.body, owner.body, "the new owner's response is the one replayed");
        assert_ne!(replay.body, stale.body);
    }
}

/// A lease shorter than a store outage (B17): the store goes away while the handler runs,
/// the lease lapses in the store, and a retry reaches the same process the moment the
/// store is back, before the holder's completion (retried with back-off) has landed. It
/// gets 409, then the replay: the handler ran once.
pub async fn b17_a_lease_lapsed_in_an_outage_is_not_run_twice(store: Arc<dyn Store>) {
    let (faulty, faults) = Faulty::wrap(store);
    let app = Arc::new(TestApp::new(Idempotency::builder_shared(faulty).lease_ttl(Duration::from_millis(300)).build()));
    let k = key("b17-outage");
    let (a, k2) = (app.clone(), k.clone());
    let first = tokio::spawn(async move { a.send(post("/slow?ms=500", Some(&k2), "x")).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    faults.down.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(900)).await; // three leases long
    faults.down.store(false, Ordering::SeqCst);
    app.send(post("/slow?ms=500", Some(&k), "x")).await.assert_problem(409, "key-in-use");
    let first = first.await.unwrap();
    assert_eq!((first.status, first.text()), (StatusCode::OK, "slept:500:run1"));
    let retry = retry_until_answered(&app, "/slow?ms=500", &k).await;
    assert!(retry.replayed(), "the retry replays the first run: {} {}", retry.status, retry.text());
    assert_eq!(retry.text(), "slept:500:run1");
    assert_eq!(app.count(), 1, "the handler ran once");
}

pub async fn b11_4xx_stored_5xx_released(store: Arc<dyn Store>) {
    let app = app(&store, |b| b);
    let k4 = key("b11-4xx");
    let first = app.send(post("/status/404", Some(&k4), "")).await;
    assert_eq!(first.status, StatusCode::NOT_FOUND);
    let replay = app.send(post("/status/404", Some(&k4), "")).await;
    assert!(replay.replayed());
    assert_eq!((replay.status, replay.text()), (StatusCode::NOT_FOUND, "status:404"));
    let k5 = key("b11-5xx");
    for _ in 0..2 {
        let r = app.send(post("/status/503", Some(&k5), "")).await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(!r.replayed(), "a 5xx is not stored: the retry runs again");
    }
    assert_eq!(app.count(), 3);
}

pub async fn b11_store_status_option(store: Arc<dyn Store>) {
    let app = app(&store, |b| b.store_status(|s| (200..300).contains(&s)));
    let k = key("b11s");
    app.send(post("/status/409", Some(&k), "")).await;
    assert!(!app.send(post("/status/409", Some(&k), "")).await.replayed());
    assert_eq!(app.count(), 2);
}

pub async fn b11_panicking_handler_releases_the_key(store: Arc<dyn Store>) {
    let app = Arc::new(app(&store, |b| b));
    let k = key("b11p");
    for _ in 0..2 {
        let (a, k2) = (app.clone(), k.clone());
        let crashed = tokio::spawn(async move { a.send(post("/raise", Some(&k2), "")).await }).await;
        // The key is released before the panic reaches the caller: the retry runs at once.
        assert!(crashed.unwrap_err().is_panic());
    }
    assert_eq!(app.count(), 2, "the retry ran the handler again");
}

pub async fn b12_large_response_is_stored_without_body(store: Arc<dyn Store>) {
    let app = app(&store, |b| b.max_response_body(64 * 1024));
    let k = key("b12");
    let first = app.send(post("/large?bytes=200000", Some(&k), "")).await;
    assert_eq!(first.body.len(), 200_000, "the client gets all of a large response");
    assert!(first.header("idempotency-replay").is_none());
    let replay = app.send(post("/large?bytes=200000", Some(&k), "")).await;
    assert_eq!(replay.status, StatusCode::OK);
    assert!(replay.replayed());
    assert_eq!(replay.header("idempotency-replay"), Some("omitted"));
    assert_eq!(replay.header("content-type"), Some("application/octet-stream"));
    assert!(replay.body.is_empty());
    assert_eq!(app.count(), 1);
    assert_eq!(app.idem.stats().omitted, 1);
    // A response at the cap is kept whole.
    let k2 = key("b12-fit");
    let fits = app.send(post("/large?bytes=65536", Some(&k2), "")).await;
    let replay = app.send(post("/large?bytes=65536", Some(&k2), "")).await;
    assert_eq!(replay.body, fits.body);
}

pub async fn b13_streamed_response_reaches_client_before_handler_finishes(store: Arc<dyn Store>) {
    use http_body_util::BodyExt;
    let app = app(&store, |b| b);
    let addr = app.serve().await;
    let k = key("b13");
    let client = http_client();
    let req = || http_post(addr, "/stream", &k, b"");
    let res = client.request(req()).await.unwrap();
    let mut body = res.into_body();
    let first = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .expect("first chunk arrives while the handler waits");
    let first = first.unwrap().unwrap().into_data().unwrap();
    assert_eq!(&first[..], b"data: one\n\n");
    // While the handler is blocked the key is in flight.
    app.send(post("/stream", Some(&k), "")).await.assert_problem(409, "key-in-use");
    app.state.gate.add_permits(1);
    let rest = body.collect().await.unwrap().to_bytes();
    let mut whole = first.to_vec();
    whole.extend_from_slice(&rest);
    assert_eq!(whole, b"data: one\n\ndata: two\n\n");
    let replay = Reply::read(client.request(req()).await.unwrap()).await;
    assert!(replay.replayed());
    assert_eq!(replay.body, Bytes::from(whole), "the replay is byte-identical");
    assert_eq!(replay.header("content-type"), Some("text/event-stream"));
    assert_eq!(app.count(), 1);
}

pub async fn b13_upgrade_passes_through_and_releases(store: Arc<dyn Store>) {
    let app = app(&store, |b| b);
    let k = key("b13u");
    for _ in 0..2 {
        let r = app.send(post("/upgrade", Some(&k), "")).await;
        assert_eq!(r.status, StatusCode::SWITCHING_PROTOCOLS);
        assert!(!r.replayed());
    }
    assert_eq!(app.count(), 2, "an upgrade is never replayed");
}

pub async fn b14_replay_headers(store: Arc<dyn Store>) {
    let app = app(&store, |b| b);
    let k = key("b14");
    let req = || {
        Request::post("/echo")
            .header("idempotency-key", &k)
            .header("content-type", "application/json")
            .body(Body::from("{}"))
            .unwrap()
    };
    let first = app.send(req()).await;
    assert!(first.header("set-cookie").is_some() && first.header("x-custom").is_some());
    let replay = app.send(req()).await;
    assert_eq!(replay.status, StatusCode::CREATED);
    assert_eq!(replay.body, first.body);
    for h in ["content-type", "location", "etag"] {
        assert_eq!(replay.header(h), first.header(h), "{h} is replayed");
    }
    for h in ["set-cookie", "x-custom", "x-execution"] {
        assert_eq!(replay.header(h), None, "{h} is not replayed");
    }
    assert_eq!(replay.header("content-length"), Some("2"), "content-length is recomputed");

    let custom = self::app(&store, |b| b.replay_headers(["x-custom", "set-cookie"]).replayed_header("X-Replayed"));
    let k2 = key("b14c");
    custom.send(post("/echo", Some(&k2), "x")).await;
    let replay = custom.send(post("/echo", Some(&k2), "x")).await;
    assert_eq!(replay.header("x-replayed"), Some("true"));
    assert_eq!(replay.header("idempotency-replayed"), None);
    assert_eq!(replay.header("x-custom"), Some("custom"));
    assert_eq!(replay.header("set-cookie"), None, "set-cookie is never replayed, even when listed");
    assert_eq!(replay.header("content-type"), None, "only the listed headers are replayed");
}

pub async fn b15_problem_base_option(store: Arc<dyn Store>) {
    let app = app(&store, |b| b.required(true).problem_base("https://errors.example.com/idem#"));
    let r = app.send(post("/echo", None, "x")).await;
    r.assert_problem(400, "missing-key");
    assert!(r.text().starts_with("{\"type\":\"https://errors.example.com/idem#missing-key\",\"title\":"));
    assert!(r.text().contains("\"status\":400,\"detail\":\""));
}

pub async fn b16_store_down_at_claim_fails_closed(store: Arc<dyn Store>) {
    let (faulty, faults) = Faulty::wrap(store);
    let app = TestApp::new(Idempotency::builder_shared(faulty).build());
    faults.claim_down.store(true, Ordering::SeqCst);
    let r = app.send(post("/echo", Some(&key("b16")), "x")).await;
    r.assert_problem(503, "store-unavailable");
    assert!(r.header("retry-after").is_some());
    assert_eq!(app.count(), 0, "fail closed: the handler did not run");
    assert_eq!(app.idem.stats().store_errors, 1);
    // Requests the engine does not cover are unaffected.
    assert_eq!(app.send(post("/echo", None, "x")).await.status, StatusCode::CREATED);
}

pub async fn b16_fail_open_runs_unprotected(store: Arc<dyn Store>) {
    let (faulty, faults) = Faulty::wrap(store);
    let app = TestApp::new(Idempotency::builder_shared(faulty).on_store_error(OnStoreError::FailOpen).build());
    faults.claim_down.store(true, Ordering::SeqCst);
    let k = key("b16o");
    let first = app.send(post("/echo", Some(&k), "x")).await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!(first.text(), "x", "the handler still gets the body");
    app.send(post("/echo", Some(&k), "x")).await;
    assert_eq!(app.count(), 2);
    assert_eq!(app.idem.stats().store_errors, 2);
}

pub async fn b17_failed_completion_is_retried_in_background(store: Arc<dyn Store>) {
    let (faulty, faults) = Faulty::wrap(store);
    let app = TestApp::new(Idempotency::builder_shared(faulty).persist_timeout(Duration::from_secs(5)).build());
    faults.complete_failures.store(3, Ordering::SeqCst);
    let k = key("b17");
    let first = app.send(post("/echo", Some(&k), "x")).await;
    assert_eq!(first.status, StatusCode::CREATED, "the client gets its response despite the store");
    let mut replayed = false;
    for _ in 0..100 {
        let r = app.send(post("/echo", Some(&k), "x")).await;
        if r.replayed() {
            assert_eq!(r.body, first.body);
            replayed = true;
            break;
        }
        r.assert_problem(409, "key-in-use");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(replayed, "the background completion landed");
    assert_eq!(app.count(), 1);
    assert_eq!(app.idem.stats().store_errors, 0, "a completion that landed is not a lost one");
}

pub async fn b17_completion_gives_up_after_persist_timeout(store: Arc<dyn Store>) {
    let (faulty, faults) = Faulty::wrap(store);
    let lease = Duration::from_millis(600);
    let app = TestApp::new(
        Idempotency::builder_shared(faulty).persist_timeout(Duration::from_millis(300)).lease_ttl(lease).build(),
    );
    faults.complete_failures.store(usize::MAX, Ordering::SeqCst);
    let k = key("b17g");
    assert_eq!(app.send(post("/echo", Some(&k), "x")).await.status, StatusCode::CREATED);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.idem.stats().store_errors, 1, "giving up is counted");
    // The claim was never completed: once the lease is over, a retry runs again.
    tokio::time::sleep(lease).await;
    faults.complete_failures.store(0, Ordering::SeqCst);
    let retry = app.send(post("/echo", Some(&k), "x")).await;
    assert!(!retry.replayed());
    assert_eq!(app.count(), 2);
}

pub async fn b18_corrupt_record_is_a_store_error(store: Arc<dyn Store>) {
    let (faulty, faults) = Faulty::wrap(store);
    let app = TestApp::new(Idempotency::builder_shared(faulty).build());
    let k = key("b18");
    app.send(post("/echo", Some(&k), "x")).await;
    faults.corrupt.store(true, Ordering::SeqCst);
    app.send(post("/echo", Some(&k), "x")).await.assert_problem(503, "store-unavailable");
    assert_eq!(app.count(), 1, "a corrupt record never re-executes");
    faults.corrupt.store(false, Ordering::SeqCst);
    assert!(app.send(post("/echo", Some(&k), "x")).await.replayed(), "and the stored record was not lost");
}

pub async fn b19_stats_count_every_outcome(store: Arc<dyn Store>) {
    let app = Arc::new(app(&store, |b| b.max_request_body(8).max_response_body(16)));
    let k = key("b19");
    app.send(Request::get("/counter").body(Body::empty()).unwrap()).await; // not covered: not counted
    app.send(post("/echo", None, "x")).await; // bypassed
    app.send(post("/echo", Some(&k), "x")).await; // executed
    app.send(post("/echo", Some(&k), "x")).await; // replayed
    app.send(post("/echo", Some(&k), "y")).await; // mismatch
    app.send(post("/echo", Some("\"bad"), "x")).await; // invalid
    app.send(post("/echo", Some(&key("b19b")), "0123456789")).await; // too large
    app.send(post("/large?bytes=100", Some(&key("b19o")), "")).await; // executed, omitted
    let (a, k2) = (app.clone(), key("b19c"));
    let k3 = k2.clone();
    let slow = tokio::spawn(async move { a.send(post("/slow?ms=300", Some(&k2), "")).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    app.send(post("/slow?ms=300", Some(&k3), "")).await; // conflict
    slow.await.unwrap(); // executed
    let s = app.idem.stats();
    assert_eq!(
        (
            s.bypassed,
            s.executed,
            s.replayed,
            s.mismatches,
            s.invalid,
            s.too_large,
            s.omitted,
            s.conflicts,
            s.store_errors,
            s.lease_lost
        ),
        (1, 3, 1, 1, 1, 1, 1, 1, 0, 0)
    );
    let names: Vec<_> = s.fields().iter().map(|(n, _)| *n).collect();
    assert_eq!(names, idempo::StatsSnapshot::NAMES);
    assert_eq!(
        names,
        [
            "bypassed",
            "executed",
            "replayed",
            "conflicts",
            "mismatches",
            "invalid",
            "too_large",
            "store_errors",
            "lease_lost",
            "omitted",
            "waited",
            "wait_timeouts"
        ]
    );
}

pub async fn empty_response_body_is_stored(store: Arc<dyn Store>) {
    // A 204 has no body frames at all; over real HTTP the record must still be stored.
    let app = app(&store, |b| b);
    let addr = app.serve().await;
    let k = key("empty");
    let client = http_client();
    let req = || http_post(addr, "/status/204", &k, b"");
    let first = Reply::read(client.request(req()).await.unwrap()).await;
    assert_eq!(first.status, StatusCode::NO_CONTENT);
    let replay = Reply::read(client.request(req()).await.unwrap()).await;
    assert_eq!(replay.status, StatusCode::NO_CONTENT);
    assert!(replay.replayed());
    assert_eq!(app.count(), 1);
}

pub async fn b11_whole_response_stored_before_its_head_is_handed_back(store: Arc<dyn Store>) {
    // A handler's answer whose body is already complete is stored before the response
    // head goes back to the server, so the server can write head and body in one go
    // (written separately, Nagle's algorithm and delayed ACKs stall each first execution
    // by 40 ms on sockets without TCP_NODELAY), and the retry that follows meets the replay.
    let app = app(&store, |b| b);
    let k = key("whole");
    let first = app.router.clone().oneshot(post("/echo", Some(&k), "whole body")).await.expect("router is infallible");
    assert_eq!(first.status(), StatusCode::CREATED);
    assert_eq!(http_body::Body::size_hint(first.body()).exact(), Some(10), "the length is known up front");
    // The first body has not been read at all, yet the record is there.
    let retry = app.send(post("/echo", Some(&k), "whole body")).await;
    assert_eq!(retry.status, StatusCode::CREATED);
    assert!(retry.replayed(), "the retry must be a replay: {retry:?}");
    assert_eq!(retry.text(), "whole body");
    assert_eq!(Reply::read(first).await.text(), "whole body");
    assert_eq!(app.count(), 1);
}

/// Send `raw` on a new connection to `addr`; after `wait` (or once `until` has been read),
/// close it, as a client that gave up would.
async fn leave(addr: std::net::SocketAddr, raw: String, until: Option<&[u8]>, wait: Duration) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    sock.write_all(raw.as_bytes()).await.unwrap();
    if let Some(until) = until {
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while !seen.windows(until.len()).any(|w| w == until) {
            let n = tokio::time::timeout(Duration::from_secs(5), sock.read(&mut buf)).await.unwrap().unwrap();
            assert!(n > 0, "the server closed before sending {until:?}");
            seen.extend_from_slice(&buf[..n]);
        }
    }
    tokio::time::sleep(wait).await;
    drop(sock);
}

fn raw_post(path: &str, key: &str) -> String {
    format!("POST {path} HTTP/1.1\r\nHost: t\r\nIdempotency-Key: {key}\r\nContent-Length: 1\r\n\r\nx")
}

/// Wait (up to 10 s) until `done` holds; panics naming what did not happen.
async fn until(done: impl Fn() -> bool, what: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "{what}: not within 10 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The retry a client sends after giving up: 409 while the first run goes on, then the
/// replay of it; never a second execution.
async fn retry_until_answered(app: &TestApp, path: &str, key: &str) -> Reply {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = app.send(post(path, Some(key), "x")).await;
        if r.status != StatusCode::CONFLICT || tokio::time::Instant::now() > deadline {
            return r;
        }
        r.assert_problem(409, "key-in-use");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A client that goes away while the handler runs (hyper drops the layer's future) does
/// not give the key back: the handler runs to its end, its response is stored, and the
/// retry gets it (B11). The retry sent at once meets 409 while the first run goes on.
/// Two hundred clients at once, each with its own key, each gone mid-handler.
pub async fn b11_a_client_gone_mid_handler_never_releases(store: Arc<dyn Store>) {
    const CLIENTS: usize = 200;
    let app = Arc::new(app(&store, |b| b));
    let addr = app.serve().await;
    let keys: Vec<String> = (0..CLIENTS).map(|i| key(&format!("b11-gone-{i}"))).collect();
    let gone = keys.iter().map(|k| leave(addr, raw_post("/slow?ms=3000", k), None, Duration::from_millis(150)));
    futures_util::future::join_all(gone).await;
    app.send(post("/slow?ms=3000", Some(&keys[0]), "x")).await.assert_problem(409, "key-in-use");
    let retries = keys.iter().map(|k| {
        let app = app.clone();
        async move { retry_until_answered(&app, "/slow?ms=3000", k).await }
    });
    let mut runs = Vec::new();
    for retry in futures_util::future::join_all(retries).await {
        assert!(retry.replayed(), "the retry replays the first run: {} {}", retry.status, retry.text());
        runs.push(retry.text().to_owned());
    }
    runs.sort();
    runs.dedup();
    assert_eq!(runs.len(), CLIENTS, "each retry replays its own key's run");
    assert_eq!(app.count(), CLIENTS, "each handler ran once");
}

/// A client that goes away after the head of a streamed response: the rest of the body is
/// read for the record (up to max_response_body, then omitted), and the retry replays it.
/// Over a real socket first; then with the body dropped after its first frame, as hyper
/// does once a write to the gone client fails (over loopback that may come only after
/// the whole body went into the socket's buffer).
pub async fn b11_a_client_gone_mid_body_leaves_the_rest_recorded(store: Arc<dyn Store>) {
    let app = app(&store, |b| b);
    let addr = app.serve().await;
    // Over the limit: the record is stored without its body (B12).
    let k = key("b11-large");
    leave(addr, raw_post("/large?bytes=2000000", &k), Some(b"\r\n\r\n"), Duration::ZERO).await;
    let retry = retry_until_answered(&app, "/large?bytes=2000000", &k).await;
    assert!(retry.replayed(), "{} {}", retry.status, retry.text());
    assert_eq!(retry.header("idempotency-replay"), Some("omitted"));
    assert_eq!(app.count(), 1);
    // Within the limit: the whole stream, read on after the client left, is the replay.
    let k = key("b11-stream");
    leave(addr, raw_post("/stream", &k), Some(b"data: one"), Duration::ZERO).await;
    app.state.gate.add_permits(1); // the handler sends the rest after the client left
    let retry = retry_until_answered(&app, "/stream", &k).await;
    assert!(retry.replayed(), "{} {}", retry.status, retry.text());
    assert_eq!(retry.text(), "data: one\n\ndata: two\n\n");
    assert_eq!(app.count(), 2);
    // The body dropped after one frame.
    let k = key("b11-dropped");
    drop_after_first_frame(&app, "/stream", &k).await;
    // One permit for the first run's rest, one so a wrong second run ends rather than hangs.
    app.state.gate.add_permits(2);
    let retry = retry_until_answered(&app, "/stream", &k).await;
    assert!(retry.replayed(), "{} {}", retry.status, retry.text());
    assert_eq!(retry.text(), "data: one\n\ndata: two\n\n");
    let k = key("b11-dropped-large");
    drop_after_first_frame(&app, "/large?bytes=3000000", &k).await;
    let retry = retry_until_answered(&app, "/large?bytes=3000000", &k).await;
    assert!(retry.replayed(), "{} {}", retry.status, retry.text());
    assert_eq!(retry.header("idempotency-replay"), Some("omitted"));
    assert_eq!(app.count(), 4);
}

async fn drop_after_first_frame(app: &TestApp, path: &str, key: &str) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let res = app.router.clone().oneshot(post(path, Some(key), "x")).await.expect("router is infallible");
    assert_eq!(res.status(), StatusCode::OK);
    let mut body = res.into_body();
    let first = body.frame().await.expect("a first frame").expect("the body does not fail");
    assert!(first.is_data());
    drop(body);
}

/// An outer timeout that gives up on the request (it drops the layer's future) is a client
/// gone too: the handler finishes, its response is stored, the retry replays it (B11).
pub async fn b11_an_outer_timeout_never_releases(store: Arc<dyn Store>) {
    use tower::ServiceExt;
    let app = app(&store, |b| b);
    let timed = app.router.clone().layer(tower_http::timeout::TimeoutLayer::with_status_code(
        StatusCode::GATEWAY_TIMEOUT,
        Duration::from_millis(100),
    ));
    let k = key("b11-timeout");
    let first = timed.oneshot(post("/slow?ms=500", Some(&k), "x")).await.unwrap();
    assert_eq!(first.status(), StatusCode::GATEWAY_TIMEOUT, "the outer timeout answered");
    let retry = retry_until_answered(&app, "/slow?ms=500", &k).await;
    assert!(retry.replayed(), "{} {}", retry.status, retry.text());
    assert_eq!(retry.text(), "slept:500:run1");
    assert_eq!(app.count(), 1);
}
