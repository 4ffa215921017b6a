//! The engine and the host layer's response recorder fed arbitrary request heads and
//! bodies (raw header bytes, as the Python and Node bindings pass them, recorded back as
//! response headers): never a panic, every answer a 4xx problem or a stored response, and
//! the same request sent again after it executed is replayed unchanged and never executed
//! twice (B1, B3, B6, B7, B11, B14).
#![no_main]

use std::sync::OnceLock;

use bytes::Bytes;
use http::StatusCode;
use idempo::host::Recorder;
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
                let mut rec = Recorder::new(lease);
                // The request's headers as the response's, but for a length of their own.
                let head = headers.iter().copied().filter(|(n, _)| !n.eq_ignore_ascii_case(b"content-length"));
                rec.start_raw(201, head, None).expect("201 is a status");
                rec.push(&answer);
                if let Some(write) = rec.finish() {
                    write.await;
                }
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
    if status == StatusCode::CREATED && ran && engine().covers(method).is_some() {
        // Executed under a key: the same request again is the stored answer, not a rerun.
        let (again, replayed, reran) = pass(method, path, query, &headers, body);
        assert!(!reran, "a repeated keyed request ran the handler twice");
        assert_eq!((again, replayed), (StatusCode::CREATED, answer));
    }
});
