//! What the engine tells operators: the one-time scope warning (B5) and a tracing event
//! per decision with a redacted key (B19). One test in its own process, because both the
//! warning and the subscriber are process-wide.

mod support;

use axum::body::Body;
use http::Request;
use idempo::{Idempotency, MemoryStore};
use support::captured::Captured;
use support::{TestApp, post};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b5_warning_once_and_b19_events_with_redacted_keys() {
    let logs = Captured::install("debug");

    let secret_key = "customer-42-secret-key-material";
    let with = |credential: &str, key: &str| {
        let (name, value) = credential.split_once(": ").unwrap();
        Request::post("/echo").header("idempotency-key", key).header(name, value).body(Body::from("x")).unwrap()
    };
    let with_auth = |key: &str| with("authorization: Bearer t", key);
    let with_cookie = |key: &str| with("cookie: session=t", key);

    // With a scope function, credentials raise no warning.
    let idem = Idempotency::builder(MemoryStore::new()).build();
    let layer = idem.layer().scope(|_| "tenant".into());
    let scoped = TestApp::with_layer(idem, layer);
    scoped.send(with_auth("scoped-key")).await;
    let out = logs.take();
    assert!(!out.contains("WARN"), "no warning with a scope function:\n{out}");

    // Without one, Authorization is the scope (B5): no warning.
    let app = TestApp::new(Idempotency::builder(MemoryStore::new()).build());
    app.send(with_auth("auth-key")).await;
    let out = logs.take();
    assert!(!out.contains("WARN"), "no warning when Authorization scopes the key:\n{out}");

    // A Cookie without Authorization shares the global namespace: it warns, once per process.
    app.send(with_cookie(secret_key)).await;
    app.send(with_cookie(secret_key)).await;
    app.send(with_cookie("another-key")).await;
    let other = TestApp::new(Idempotency::builder(MemoryStore::new()).build());
    other.send(with_cookie("third-key")).await;
    let out = logs.take();
    assert_eq!(out.matches("WARN").count(), 1, "one warning per process:\n{out}");
    assert!(out.contains("Set `scope`"), "the warning says what to do:\n{out}");

    // Each decision is an event with its outcome and a redacted key, never the raw key.
    assert!(out.contains("outcome=\"executed\"") && out.contains("outcome=\"replayed\""), "{out}");
    assert!(out.contains("key=cust…(31)"), "the key is redacted:\n{out}");
    assert!(!out.contains(secret_key), "the raw key never reaches the logs:\n{out}");
    app.send(post("/echo", Some("\"broken"), "x")).await;
    app.send(post("/echo", Some(secret_key), "changed")).await;
    let out = logs.take();
    assert!(out.contains("outcome=\"invalid-key\"") && out.contains("outcome=\"fingerprint-mismatch\""), "{out}");
}
