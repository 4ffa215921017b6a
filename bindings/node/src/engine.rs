//! `Engine`, `Pending` and `Lease`: the core's two-step request handling (DESIGN.md §2),
//! shaped for the Express middleware and the Fastify plugin. No rule lives here.

use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use idempo::capture::Capture;
use idempo::{Check, Decision, Idempotency, OnStoreError};
use napi::bindgen_prelude::{Array, Buffer, Either, Null, PromiseRaw, ToNapiValue};
use napi::{Env, sys};
use napi_derive::napi;

use crate::error::{Result, config, config_error, state};
use crate::store::NativeStore;

/// A response made by the engine (a replay or a problem).
#[napi(object)]
pub struct Reply {
    pub status: u32,
    /// `[name, value, name, value, …]`.
    pub headers: Vec<String>,
    pub body: Buffer,
}

fn reply(res: http::Response<Bytes>) -> Reply {
    let mut headers = Vec::with_capacity(res.headers().len() * 2);
    for (n, v) in res.headers() {
        headers.push(n.as_str().to_owned());
        headers.push(latin1_string(v.as_bytes()));
    }
    Reply { status: u32::from(res.status().as_u16()), headers, body: Buffer::from(res.body().to_vec()) }
}

/// Node's HTTP strings hold header bytes as latin-1 code points.
fn latin1_string(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| b as char).collect()
}

fn latin1_bytes(s: &str) -> Vec<u8> {
    s.chars().map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?')).collect()
}

/// Every option of DESIGN.md §3, camelCase; durations in milliseconds.
#[napi(object)]
#[derive(Default)]
pub struct EngineOptions {
    pub methods: Option<Vec<String>>,
    pub header: Option<String>,
    pub required: Option<bool>,
    pub max_key_length: Option<u32>,
    pub strict_key_syntax: Option<bool>,
    pub max_request_body: Option<u32>,
    pub max_response_body: Option<u32>,
    pub lease_ttl: Option<f64>,
    pub max_lease: Option<f64>,
    pub ttl: Option<f64>,
    pub replay_headers: Option<Vec<String>>,
    pub replayed_header: Option<String>,
    pub on_store_error: Option<String>,
    pub persist_timeout: Option<f64>,
    pub fingerprint_headers: Option<Vec<String>>,
    pub fingerprint_secret: Option<String>,
    pub problem_base: Option<String>,
}

fn millis(option: &str, ms: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(ms / 1000.0).map_err(|_| config(format!("{option} must be milliseconds ≥ 0, got {ms}")))
}

/// The idempotency engine over a store.
#[napi]
pub struct Engine {
    idem: Idempotency,
    read: Vec<HeaderName>,
}

#[napi]
impl Engine {
    #[napi(constructor)]
    pub fn new(store: &NativeStore, options: Option<EngineOptions>) -> Result<Engine> {
        let o = options.unwrap_or_default();
        let mut b = Idempotency::builder_shared(store.inner.clone());
        if let Some(v) = o.methods {
            b = b.methods(v);
        }
        if let Some(v) = o.header {
            b = b.header(v);
        }
        if let Some(v) = o.required {
            b = b.required(v);
        }
        if let Some(v) = o.max_key_length {
            b = b.max_key_length(v as usize);
        }
        if let Some(v) = o.strict_key_syntax {
            b = b.strict_key_syntax(v);
        }
        if let Some(v) = o.max_request_body {
            b = b.max_request_body(v as usize);
        }
        if let Some(v) = o.max_response_body {
            b = b.max_response_body(v as usize);
        }
        if let Some(v) = o.lease_ttl {
            b = b.lease_ttl(millis("leaseTtl", v)?);
        }
        if let Some(v) = o.max_lease {
            b = b.max_lease(millis("maxLease", v)?);
        }
        if let Some(v) = o.ttl {
            b = b.ttl(millis("ttl", v)?);
        }
        if let Some(v) = o.persist_timeout {
            b = b.persist_timeout(millis("persistTimeout", v)?);
        }
        if let Some(v) = o.replay_headers {
            b = b.replay_headers(v);
        }
        if let Some(v) = o.replayed_header {
            b = b.replayed_header(v);
        }
        if let Some(v) = o.fingerprint_headers {
            b = b.fingerprint_headers(v);
        }
        if let Some(v) = o.fingerprint_secret {
            b = b.fingerprint_secret(v);
        }
        if let Some(v) = o.problem_base {
            b = b.problem_base(v);
        }
        if let Some(v) = o.on_store_error {
            b = b.on_store_error(match v.as_str() {
                "failClosed" | "fail_closed" => OnStoreError::FailClosed,
                "failOpen" | "fail_open" => OnStoreError::FailOpen,
                other => return Err(config(format!("onStoreError must be 'failClosed' or 'failOpen', not {other:?}"))),
            });
        }
        let idem = b.try_build().map_err(config_error)?;
        let read = idem.request_headers_read();
        Ok(Engine { idem, read })
    }

    /// Look at a request head. `url` is the request target as received (`/path?query`);
    /// `headers` is `[name, value, …]`: Node's `req.rawHeaders`, or only the headers named
    /// by `requestHeadersRead()`. Returns `null` (pass through), a `Reply`, or a `Pending`.
    #[napi(ts_return_type = "Pending | Reply | null")]
    pub fn check(&self, method: String, url: String, headers: Array) -> Result<Either<Either<Pending, Reply>, Null>> {
        if !self.idem.covers(&method) {
            self.idem.bypass();
            return Ok(Either::B(Null));
        }
        let mut read: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let mut i = 0;
        while i + 1 < headers.len() {
            let name: String = headers.get(i).map_err(crate::error::napi)?.unwrap_or_default();
            if self.read.iter().any(|n| n.as_str().eq_ignore_ascii_case(&name)) {
                let value: String = headers.get(i + 1).map_err(crate::error::napi)?.unwrap_or_default();
                read.push((name.into_bytes(), latin1_bytes(&value)));
            }
            i += 2;
        }
        let target = latin1_bytes(&url);
        let (path, query) = match target.iter().position(|&b| b == b'?') {
            Some(q) => (&target[..q], &target[q + 1..]),
            None => (&target[..], &[][..]),
        };
        Ok(match self.idem.check(&method, path, query, &read[..]) {
            Check::Bypass => Either::B(Null),
            Check::Respond(res) => Either::A(Either::B(reply(res))),
            Check::Proceed(p) => Either::A(Either::A(Pending { inner: Some(p) })),
        })
    }

    /// The request headers `check` reads (lower case): the key header, content-length,
    /// authorization, cookie and the fingerprinted headers. Passing only these is enough.
    #[napi]
    pub fn request_headers_read(&self) -> Vec<String> {
        self.read.iter().map(|n| n.as_str().to_owned()).collect()
    }

    /// The header without which a covered request passes through untouched (B4, lower
    /// case), or `null` when keys are required. The integrations skip the native call for
    /// requests without it.
    #[napi]
    pub fn passes_without(&self) -> Option<String> {
        self.idem.passes_without().map(|h| h.as_str().to_owned())
    }

    /// Count `n` requests the integration passed through without calling `check`.
    #[napi]
    pub fn count_bypassed(&self, n: u32) {
        for _ in 0..n {
            self.idem.bypass();
        }
    }

    /// Whether requests with `method` are covered (B1). The integrations ask once per
    /// method; Fastify attaches its hook only to routes with a covered method.
    #[napi]
    pub fn covers(&self, method: String) -> bool {
        self.idem.covers(&method.to_ascii_uppercase())
    }

    /// The counters (B19).
    #[napi]
    pub fn stats(&self) -> Stats {
        let s = self.idem.stats();
        let v = |n: u64| n as f64;
        Stats {
            bypassed: v(s.bypassed),
            executed: v(s.executed),
            replayed: v(s.replayed),
            conflicts: v(s.conflicts),
            mismatches: v(s.mismatches),
            invalid: v(s.invalid),
            too_large: v(s.too_large),
            store_errors: v(s.store_errors),
            lease_lost: v(s.lease_lost),
            omitted: v(s.omitted),
        }
    }
}

/// The engine's counters (DESIGN.md B19).
#[napi(object)]
pub struct Stats {
    pub bypassed: f64,
    pub executed: f64,
    pub replayed: f64,
    pub conflicts: f64,
    pub mismatches: f64,
    pub invalid: f64,
    pub too_large: f64,
    pub store_errors: f64,
    pub lease_lost: f64,
    pub omitted: f64,
}

/// A keyed request waiting for its body.
#[napi]
pub struct Pending {
    inner: Option<idempo::Pending>,
}

/// What claiming a key decided: a lease, a response, or `null` (run unprotected).
pub enum Decided {
    Lease(Lease),
    Reply(Reply),
    Bypass,
}

impl ToNapiValue for Decided {
    unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> napi::Result<sys::napi_value> {
        // SAFETY: delegating to the generated conversions with the env we were given.
        unsafe {
            match val {
                Decided::Lease(l) => Lease::to_napi_value(env, l),
                Decided::Reply(r) => Reply::to_napi_value(env, r),
                Decided::Bypass => Null::to_napi_value(env, Null),
            }
        }
    }
}

fn decided(d: Decision) -> Decided {
    match d {
        Decision::Bypass => Decided::Bypass,
        Decision::Respond(res) => Decided::Reply(reply(res)),
        Decision::Execute(lease) => Decided::Lease(Lease::new(lease)),
    }
}

/// Run `fut`: its value at once if the store answered on the first poll (memory), else a
/// Promise settled from the runtime.
fn settle<'env, T, F>(env: &'env Env, fut: F) -> Result<Either<T, PromiseRaw<'env, T>>>
where
    T: ToNapiValue + Send + 'static,
    F: std::future::Future<Output = T> + Send + 'static,
{
    let mut fut = Box::pin(fut);
    let first = napi::bindgen_prelude::within_runtime_if_available(|| {
        fut.as_mut().poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
    });
    if let Poll::Ready(v) = first {
        return Ok(Either::A(v));
    }
    env.spawn_future(async move { Ok(fut.await) }).map(Either::B).map_err(crate::error::napi)
}

impl Pending {
    fn take(&mut self) -> Result<idempo::Pending> {
        self.inner.take().ok_or_else(|| state("this request was already decided"))
    }
}

#[napi]
impl Pending {
    /// The largest body to buffer; past it answer `tooLarge()`.
    #[napi(getter)]
    pub fn body_limit(&self) -> Result<u32> {
        self.inner.as_ref().map(|p| p.body_limit() as u32).ok_or_else(|| state("already decided"))
    }

    /// Put the key in a namespace (B5).
    #[napi]
    pub fn set_scope(&mut self, scope: String) -> Result<()> {
        self.inner.as_mut().ok_or_else(|| state("already decided"))?.set_scope(scope);
        Ok(())
    }

    /// The 413 reply for a body over `bodyLimit` (B7).
    #[napi]
    pub fn too_large(&mut self) -> Result<Reply> {
        Ok(reply(self.take()?.too_large()))
    }

    /// The 400 reply for a body that could not be read.
    #[napi]
    pub fn unreadable(&mut self, reason: String) -> Result<Reply> {
        Ok(reply(self.take()?.unreadable(&reason)))
    }

    /// Claim the key: a `Lease` (run the handler), a `Reply`, or `null` — or a Promise of
    /// one when the store needs I/O.
    #[napi(ts_return_type = "Lease | Reply | null | Promise<Lease | Reply | null>")]
    pub fn begin<'env>(&mut self, env: &'env Env, body: Buffer) -> Result<Either<Decided, PromiseRaw<'env, Decided>>> {
        let pending = self.take()?;
        let body = Bytes::copy_from_slice(&body);
        settle(env, async move { decided(pending.begin(&body).await) })
    }
}

/// Ownership of a claimed key while the handler runs.
#[napi]
pub struct Lease {
    inner: Option<idempo::Lease>,
    status: Option<StatusCode>,
    headers: HeaderMap,
    capture: Option<Capture>,
}

impl Lease {
    fn new(lease: idempo::Lease) -> Lease {
        Lease { inner: Some(lease), status: None, headers: HeaderMap::new(), capture: None }
    }
}

#[napi]
impl Lease {
    /// The response head: status and `[name, value, …]`.
    #[napi]
    pub fn start(&mut self, status: u32, headers: Vec<String>) -> Result<()> {
        let code = u16::try_from(status).ok().and_then(|s| StatusCode::from_u16(s).ok());
        self.status = Some(code.ok_or_else(|| config(format!("invalid status code {status}")))?);
        let mut map = HeaderMap::new();
        for pair in headers.chunks_exact(2) {
            // A header HTTP cannot carry is not one to replay.
            if let (Ok(n), Ok(v)) =
                (HeaderName::from_bytes(pair[0].as_bytes()), HeaderValue::from_bytes(&latin1_bytes(&pair[1])))
            {
                map.append(n, v);
            }
        }
        let length = map.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse().ok());
        self.capture = self.inner.as_ref().map(|l| l.capture(length));
        self.headers = map;
        Ok(())
    }

    /// A chunk of the body, as it goes to the client.
    #[napi]
    pub fn push(&mut self, chunk: &[u8]) {
        if let Some(c) = &mut self.capture {
            c.push(chunk);
        }
    }

    /// Store the response (or release the key when `store` is false or the status is not
    /// stored): `undefined` when done at once, else a Promise.
    #[napi(ts_return_type = "void | Promise<void>")]
    pub fn complete<'env>(&mut self, env: &'env Env, store: Option<bool>) -> Result<Either<(), PromiseRaw<'env, ()>>> {
        let lease = self.inner.take().ok_or_else(|| state("this lease was already finished"))?;
        if store == Some(false) {
            return settle(env, lease.release());
        }
        let status = self.status.ok_or_else(|| state("complete() before start()"))?;
        let body = self.capture.take().and_then(Capture::finish);
        let headers = std::mem::take(&mut self.headers);
        settle(env, async move { lease.complete(status, &headers, body).await })
    }

    /// Give the key up so that a retry runs the handler again: `undefined` when done at
    /// once, else a Promise.
    #[napi(ts_return_type = "void | Promise<void>")]
    pub fn release<'env>(&mut self, env: &'env Env) -> Result<Either<(), PromiseRaw<'env, ()>>> {
        match self.inner.take() {
            Some(lease) => settle(env, lease.release()),
            None => Ok(Either::A(())),
        }
    }

    /// Whether the lease is still open.
    #[napi(getter)]
    pub fn active(&self) -> bool {
        self.inner.is_some()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // Garbage-collected unfinished: the core lease releases the key in the background.
        if let Some(lease) = self.inner.take() {
            napi::bindgen_prelude::within_runtime_if_available(move || drop(lease));
        }
    }
}
