//! The one response recorder: what every integration does with the response of a request
//! that owns its key (B11–B13). The integration tells it about the head, each chunk, and
//! how the response ended; the recorder keeps the replayable headers and a copy of the
//! body up to `max_response_body`, and turns the end into the store write (complete, or
//! complete without the body: omitted) or a release.
//!
//! Only an error from the handler or its body releases (B11). A client that goes away
//! changes nothing: the integration keeps feeding the recorder whatever the handler still
//! produces ([`Recorder::capturing`] says whether more is worth reading), and where the
//! rest cannot be had (the framework destroyed the stream) it calls [`Recorder::omit`]
//! before [`Recorder::finish`]. A recorder dropped unfinished keeps the claim until
//! `max_lease` (see [`Lease`]).

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};

use crate::lease::Lease;
use crate::record::Record;

/// Records one response for its lease. Dropped unfinished, the claim is kept until
/// `max_lease` (the handler may have done its work), then released.
#[derive(Debug)]
pub struct Recorder {
    lease: Option<Lease>,
    head: Option<Head>,
    /// Whether a chunk of the body has gone out (the head can no longer change).
    sent: bool,
}

#[derive(Debug)]
struct Head {
    status: StatusCode,
    headers: Vec<(HeaderName, HeaderValue)>,
    /// The body copy; `None` when the status is not stored (nothing to keep).
    capture: Option<Capture>,
    /// The head says there is no body (204, 304, `Content-Length: 0`).
    empty: bool,
}

/// A status code that HTTP does not have; the integration reports it as its own error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidStatus(pub u32);

impl std::fmt::Display for InvalidStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid status code {}", self.0)
    }
}

impl std::error::Error for InvalidStatus {}

impl Recorder {
    pub fn new(lease: Lease) -> Recorder {
        Recorder { lease: Some(lease), head: None, sent: false }
    }

    /// Whether the key is still held: the response has not ended.
    pub fn is_active(&self) -> bool {
        self.lease.is_some()
    }

    /// Whether the store answers in this process ([`Store::in_process`](crate::store::Store::in_process)):
    /// [`Recorder::finish`]'s future is then worth one poll on the caller's thread ([`now_if`](crate::host::now_if)).
    pub fn in_process(&self) -> bool {
        self.lease.as_ref().is_some_and(|l| l.shared().store.in_process())
    }

    /// Whether the head just given is the whole response (204, 304, `Content-Length: 0`):
    /// a server writes such a head to the client as a complete response at once, so the
    /// integration stores it before handing the head on, or a retry sent at once would
    /// meet the key still in flight.
    pub fn head_is_whole(&self) -> bool {
        self.lease.is_some() && matches!(&self.head, Some(Head { empty: true, .. }))
    }

    /// Whether the head has been seen.
    pub fn is_started(&self) -> bool {
        self.head.is_some()
    }

    /// The response head, as a binding holds it: header names and values as bytes (a pair
    /// HTTP cannot carry is not one to replay and is left out). `verdict` is what the host
    /// language's own `store_status` function answered, if it has one (`Err`: it failed).
    /// A head given again before any of the body replaces the first (WSGI's
    /// `start_response` with `exc_info`); after it, it is ignored.
    pub fn start_raw<N: AsRef<[u8]>, V: AsRef<[u8]>>(
        &mut self,
        status: u32,
        headers: impl IntoIterator<Item = (N, V)>,
        verdict: Option<Result<bool, String>>,
    ) -> Result<(), InvalidStatus> {
        let code = u16::try_from(status).ok().and_then(|s| StatusCode::from_u16(s).ok());
        let status = code.ok_or(InvalidStatus(status))?;
        let Some(lease) = self.lease.as_ref().filter(|_| !self.sent) else { return Ok(()) };
        let shared = lease.shared();
        let mut kept = Vec::new();
        let mut length = None;
        for (name, value) in headers {
            let (name, value) = (name.as_ref(), value.as_ref());
            let Ok(name) = HeaderName::from_bytes(name) else { continue };
            if name == header::CONTENT_LENGTH {
                length = std::str::from_utf8(value).ok().and_then(|v| v.trim().parse().ok());
            } else if shared.replayable(&name)
                && kept.len() < u16::MAX as usize
                && let Ok(value) = HeaderValue::from_bytes(value)
            {
                kept.push((name, value));
            }
        }
        self.begin(status, kept, length, verdict);
        Ok(())
    }

    /// The response head, as the tower layer holds it.
    pub fn start(&mut self, status: StatusCode, headers: &HeaderMap, content_length: Option<u64>) {
        if let Some(lease) = self.lease.as_ref().filter(|_| !self.sent) {
            let kept = lease.shared().replayable_headers(headers);
            self.begin(status, kept, content_length, None);
        }
    }

    fn begin(
        &mut self,
        status: StatusCode,
        headers: Vec<(HeaderName, HeaderValue)>,
        length: Option<u64>,
        verdict: Option<Result<bool, String>>,
    ) {
        let Some(lease) = &self.lease else { return };
        let config = &lease.shared().config;
        // An informational head (101: an upgrade) is never a response to replay (B13).
        let stored = !status.is_informational() && config.stores(status.as_u16(), verdict);
        let capture = stored.then(|| Capture::new(config.max_response_body, length));
        let empty = matches!(status, StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED) || length == Some(0);
        self.head = Some(Head { status, headers, capture, empty });
    }

    /// How long a claim may be kept alive by renewal (`max_lease`).
    pub fn max_lease(&self) -> std::time::Duration {
        self.lease.as_ref().map_or(std::time::Duration::ZERO, |l| l.shared().config.max_lease)
    }

    /// The most body the copy holds (`max_response_body`).
    pub fn limit(&self) -> usize {
        self.lease.as_ref().map_or(0, |l| l.shared().config.max_response_body)
    }

    /// A chunk of the body, as it goes to the client.
    pub fn push(&mut self, chunk: &[u8]) {
        self.sent = true;
        if let Some(Head { capture: Some(capture), .. }) = &mut self.head {
            capture.push(chunk);
        }
    }

    /// The response ended: the store write, or the release when its status is not stored
    /// or no head was ever seen. `None` when the recorder was already finished.
    pub fn finish(&mut self) -> Option<impl Future<Output = ()> + Send + 'static> {
        let lease = self.lease.take()?;
        let head = self.head.take();
        Some(async move {
            match head {
                Some(Head { status, headers, capture: Some(capture), .. }) => {
                    lease.store(Record { status, headers, body: capture.finish() }).await;
                }
                _ => lease.release().await,
            }
        })
    }

    /// Whether the body is still being copied whole: false once it went over the limit, or
    /// when its status is not stored. A client gone, the integration reads the rest of the
    /// handler's body for the record while this holds, and may stop when it does not.
    pub fn capturing(&self) -> bool {
        matches!(&self.head, Some(Head { capture: Some(c), .. }) if c.buf.is_some())
    }

    /// The rest of the body cannot be had (the framework destroyed the stream once the
    /// client left): [`Recorder::finish`] then stores the response without its body (B12),
    /// so a retry gets its status and headers, not a second execution; a status that is
    /// not stored still releases. Without a head, the recorder lets go of the lease, which
    /// keeps the claim until `max_lease`: the handler may have done its work.
    pub fn omit(&mut self) {
        match &mut self.head {
            Some(Head { capture: Some(capture), .. }) => capture.buf = None,
            Some(_) => {}
            None => drop(self.lease.take()),
        }
    }

    /// The response failed (an error or exception from the handler or its body): the
    /// release, so a retry runs again (B11). `None` when already finished.
    pub fn fail(&mut self) -> Option<impl Future<Output = ()> + Send + 'static> {
        self.head = None;
        self.lease.take().map(Lease::release)
    }

    /// Like [`Recorder::fail`], the release left to the background, for callers that
    /// cannot wait (a poll function).
    pub fn fail_in_background(&mut self) {
        self.head = None;
        if let Some(lease) = self.lease.take() {
            lease.release_in_background();
        }
    }
}

/// A copy of a response body, kept up to a limit. Past it the copy is dropped and the
/// record is stored without a body (B12); the client still gets every byte.
#[derive(Debug)]
struct Capture {
    limit: usize,
    /// `None` once the body is known to exceed `limit`.
    buf: Option<BytesMut>,
}

impl Capture {
    /// A `content_length` already over the limit skips copying altogether.
    fn new(limit: usize, content_length: Option<u64>) -> Capture {
        let buf = match content_length {
            Some(n) if n > limit as u64 => None,
            Some(n) => Some(BytesMut::with_capacity(n as usize)),
            None => Some(BytesMut::new()),
        };
        Capture { limit, buf }
    }

    fn push(&mut self, chunk: &[u8]) {
        if let Some(buf) = &mut self.buf {
            if buf.len() + chunk.len() > self.limit {
                self.buf = None;
            } else {
                buf.extend_from_slice(chunk);
            }
        }
    }

    fn finish(self) -> Option<Bytes> {
        self.buf.map(BytesMut::freeze)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::engine::{Check, Decision, Idempotency};
    use crate::{MemoryStore, StatsSnapshot};

    /// A recorder for a freshly claimed key of `idem`, and a way to see what it left.
    async fn claimed(idem: &Idempotency, key: &str) -> Recorder {
        let headers = [("idempotency-key", key)];
        let Check::Proceed(p) = idem.check("POST", b"/r", b"", &headers[..]) else { panic!("not keyed") };
        let Decision::Execute(lease) = p.begin(b"body").await else { panic!("not claimed") };
        Recorder::new(lease)
    }

    async fn replay(idem: &Idempotency, key: &str) -> http::Response<Bytes> {
        let headers = [("idempotency-key", key)];
        let Check::Proceed(p) = idem.check("POST", b"/r", b"", &headers[..]) else { panic!("not keyed") };
        match p.begin(b"body").await {
            Decision::Respond(res) => res,
            other => panic!("{key}: expected a replay, got {other:?}"),
        }
    }

    fn idem() -> Idempotency {
        Idempotency::builder(MemoryStore::new()).max_response_body(8).lease_ttl(Duration::from_secs(5)).build()
    }

    fn counts(s: StatsSnapshot) -> (u64, u64) {
        (s.executed, s.omitted)
    }

    #[tokio::test]
    async fn b11_b14_a_finished_response_is_stored_with_its_replayable_headers() {
        let idem = idem();
        let mut rec = claimed(&idem, "a").await;
        let head: &[(&[u8], &[u8])] =
            &[(b"Link", b"<a>"), (b"set-cookie", b"s=1"), (b"link", b"<b>"), (b"bad name", b"x"), (b"etag", b"\x7f")];
        rec.start_raw(201, head.iter().copied(), None).unwrap();
        rec.push(b"hel");
        rec.push(b"lo");
        rec.finish().unwrap().await;
        assert!(!rec.is_active() && rec.finish().is_none());
        let res = replay(&idem, "a").await;
        assert_eq!((res.status().as_u16(), &res.body()[..]), (201, &b"hello"[..]));
        let links: Vec<_> = res.headers().get_all("link").iter().collect();
        assert_eq!(links, ["<a>", "<b>"]);
        assert!(res.headers().get("set-cookie").is_none() && res.headers().get("etag").is_none());
    }

    #[tokio::test]
    async fn b11_a_head_given_again_before_the_body_replaces_the_first() {
        let idem = idem();
        let mut rec = claimed(&idem, "again").await;
        rec.start_raw(200, [("etag", "\"a\"")], None).unwrap();
        rec.start_raw(404, [("etag", "\"b\"")], None).unwrap(); // WSGI start_response with exc_info
        rec.push(b"gone");
        rec.start_raw(500, [("etag", "\"c\"")], None).unwrap(); // too late: ignored
        rec.finish().unwrap().await;
        let res = replay(&idem, "again").await;
        assert_eq!((res.status().as_u16(), &res.body()[..]), (404, &b"gone"[..]));
        assert_eq!(res.headers()["etag"], "\"b\"");
    }

    #[tokio::test]
    async fn b12_a_body_over_the_limit_is_stored_as_omitted() {
        let idem = idem();
        let mut rec = claimed(&idem, "big").await;
        rec.start_raw(200, [(b"x", b"y")], None).unwrap();
        rec.push(b"12345");
        rec.push(b"67890");
        rec.finish().unwrap().await;
        let res = replay(&idem, "big").await;
        assert_eq!(res.headers()["idempotency-replay"], "omitted");
        assert_eq!(counts(idem.stats()), (1, 1));
        // A declared length over the limit keeps no copy from the start.
        let mut rec = claimed(&idem, "declared").await;
        rec.start_raw(200, [(&b"content-length"[..], &b"9"[..])], None).unwrap();
        rec.push(b"1");
        rec.finish().unwrap().await;
        assert_eq!(replay(&idem, "declared").await.headers()["idempotency-replay"], "omitted");
    }

    #[tokio::test]
    async fn b11_statuses_not_stored_failures_and_missing_heads_release() {
        let idem = idem();
        let run = |key: &'static str, status: Option<u16>, verdict: Option<Result<bool, String>>, fail: bool| {
            let idem = idem.clone();
            async move {
                let mut rec = claimed(&idem, key).await;
                if let Some(status) = status {
                    rec.start_raw(u32::from(status), [("content-type", "text/plain")], verdict).unwrap();
                }
                if fail {
                    rec.fail().unwrap().await
                } else {
                    rec.finish().unwrap().await
                }
                // Released: the same key claims again.
                let headers = [("idempotency-key", key)];
                let Check::Proceed(p) = idem.check("POST", b"/r", b"", &headers[..]) else { panic!() };
                matches!(p.begin(b"body").await, Decision::Execute(_))
            }
        };
        assert!(run("5xx", Some(503), None, false).await);
        assert!(run("101", Some(101), None, false).await);
        assert!(run("verdict", Some(200), Some(Ok(false)), false).await);
        assert!(run("failed", Some(200), None, true).await);
        assert!(run("no-head", None, None, false).await);
        assert!(!run("stored", Some(200), Some(Err("boom".into())), false).await, "a failed verdict: default rule");
        let mut rec = claimed(&idem, "bad").await;
        assert_eq!(rec.start_raw(1000, [("a", "b")], None), Err(InvalidStatus(1000)));
        assert_eq!(rec.start_raw(70_000, [("a", "b")], None), Err(InvalidStatus(70_000)));
    }
}
