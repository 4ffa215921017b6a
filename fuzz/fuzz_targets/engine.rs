//! The engine fed arbitrary request heads and bodies (raw header bytes, as the Python and
//! Node bindings pass them): never a panic, every answer a 4xx problem or a stored
//! response, and the same request sent again after it executed is replayed unchanged and
//! never executed twice (B1, B3, B6, B7, B11).
#![no_main]

use std::sync::OnceLock;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use idempo::{Check, Decision, Idempotency, MemoryStore};
use libfuzzer_sys::fuzz_target;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Builder::new_current_thread().enable_time().build().expect("a runtime"))
}

fn engine() -> &'static Idempotency {
    static IDEM: OnceLock<Idempotency> = OnceLock::new();
    IDEM.get_or_init(|| {
        Idempotency::builder(MemoryStore::new()).max_request_body(4096).fingerprint_headers(["content-type"]).build()
    })
}

/// method \0 path \0 query \0 header lines ("name: value", one per line) \0 body
fn request(data: &[u8]) -> (&[u8], &[u8], &[u8], Vec<(&[u8], &[u8])>, &[u8]) {
    let mut parts = data.splitn(5, |&b| b == 0);
    let mut next = || parts.next().unwrap_or(b"");
    let (method, path, query, head, body) = (next(), next(), next(), next(), next());
    let headers = head
        .split(|&b| b == b'\n')
        .filter_map(|line| {
            let at = line.iter().position(|&b| b == b':')?;
            let value = &line[at + 1..];
            Some((&line[..at], value.strip_prefix(b" ").unwrap_or(value)))
        })
        .collect();
    (method, path, query, headers, body)
}

/// One pass through the engine: the answer (status, body) and whether the handler ran.
fn pass(method: &str, path: &[u8], query: &[u8], headers: &[(&[u8], &[u8])], body: &[u8]) -> (StatusCode, Bytes, bool) {
    let pending = match engine().check(method, path, query, headers) {
        Check::Bypass => return (StatusCode::OK, Bytes::new(), true),
        Check::Respond(res) => return (res.status(), res.into_body(), false),
        Check::Proceed(pending) => pending,
    };
    if body.len() > pending.body_limit() {
        let res = pending.too_large();
        return (res.status(), res.into_body(), false);
    }
    runtime().block_on(async {
        match pending.begin(body).await {
            Decision::Bypass => (StatusCode::OK, Bytes::new(), true),
            Decision::Respond(res) => (res.status(), res.into_body(), false),
            Decision::Execute(lease) => {
                let answer = Bytes::copy_from_slice(body);
                lease.complete(StatusCode::CREATED, &HeaderMap::new(), Some(answer.clone())).await;
                (StatusCode::CREATED, answer, true)
            }
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let (method, path, query, headers, body) = request(data);
    let Ok(method) = std::str::from_utf8(method) else { return };
    let (status, answer, ran) = pass(method, path, query, &headers, body);
    assert!(
        ran || status.is_client_error() || status == StatusCode::CREATED,
        "{method} answered {status} without running the handler"
    );
    if status == StatusCode::CREATED && ran && engine().covers(method) {
        // Executed under a key: the same request again is the stored answer, not a rerun.
        let (again, replayed, reran) = pass(method, path, query, &headers, body);
        assert!(!reran, "a repeated keyed request ran the handler twice");
        assert_eq!((again, replayed), (StatusCode::CREATED, answer));
    }
});
