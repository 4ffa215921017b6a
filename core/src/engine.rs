//! The engine: every idempotency rule, independent of any web framework (DESIGN.md §2).
//!
//! A request goes through two steps so that nothing is buffered for requests that are not
//! covered:
//!
//! 1. [`Idempotency::check`] looks at the head only (method, key header), without I/O:
//!    [`Check::Bypass`], [`Check::Respond`] (a 400 problem), or [`Check::Proceed`].
//! 2. [`Pending::begin`] takes the buffered body, fingerprints the request and claims the
//!    key: [`Decision::Execute`] with a [`Lease`], or [`Decision::Respond`] with a replay
//!    or a problem. ([`Decision::Bypass`] only with `on_store_error = fail_open`.)

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Response, header};

use crate::config::{Builder, Config, OnStoreError};
use crate::fingerprint::{FingerprintBuilder, RecordId};
use crate::key::{Key, parse_key};
use crate::lease::Lease;
use crate::problem::{ProblemCode, problem};
use crate::record::Record;
use crate::stats::{Stats, StatsSnapshot};
use crate::store::{Claim, Store, StoreError};

/// The header added to a replay whose body was too large to store (B12).
pub const REPLAY_OMITTED_HEADER: &str = "idempotency-replay";

/// Request headers, however the binding holds them.
pub trait HeaderSource {
    /// All values of `name`, in order; `name` is lower-case, matching is case-insensitive.
    fn header_values<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a [u8]> + 'a;
}

impl HeaderSource for HeaderMap {
    fn header_values<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.get_all(name).iter().map(HeaderValue::as_bytes)
    }
}

impl<N: AsRef<[u8]>, V: AsRef<[u8]>> HeaderSource for [(N, V)] {
    fn header_values<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.iter()
            .filter(move |(n, _)| n.as_ref().eq_ignore_ascii_case(name.as_str().as_bytes()))
            .map(|(_, v)| v.as_ref())
    }
}

/// The idempotency engine with its store and configuration. Cheap to clone.
#[derive(Clone)]
pub struct Idempotency {
    pub(crate) engine: Arc<Engine>,
}

pub(crate) struct Engine {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) config: Config,
    pub(crate) stats: Stats,
}

impl std::fmt::Debug for Idempotency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Idempotency").field("config", &self.engine.config).finish_non_exhaustive()
    }
}

/// The outcome of looking at a request's head.
#[derive(Debug)]
pub enum Check {
    /// Not covered: run the handler, touch nothing.
    Bypass,
    /// Answer without reading the body or running the handler (a 400 problem).
    Respond(Response<Bytes>),
    /// A keyed, covered request: buffer the body (up to [`Pending::body_limit`]), then
    /// call [`Pending::begin`].
    Proceed(Pending),
}

/// The outcome of claiming the key.
#[derive(Debug)]
pub enum Decision {
    /// Run the handler unprotected (only after a store error with `fail_open`).
    Bypass,
    /// This request owns the key: run the handler, then complete or release the lease.
    Execute(Lease),
    /// Answer without running the handler: a replay or a problem.
    Respond(Response<Bytes>),
}

/// Has `credentials` been warned about yet (B5: one warning per process).
static SCOPE_WARNED: AtomicBool = AtomicBool::new(false);

impl Idempotency {
    /// Start building an engine over `store`.
    pub fn builder(store: impl Store) -> Builder {
        Builder::new(Arc::new(store))
    }

    /// Start building an engine over a shared store.
    pub fn builder_shared(store: Arc<dyn Store>) -> Builder {
        Builder::new(store)
    }

    pub(crate) fn from_parts(store: Arc<dyn Store>, config: Config) -> Idempotency {
        Idempotency { engine: Arc::new(Engine { store, config, stats: Stats::default() }) }
    }

    pub fn config(&self) -> &Config {
        &self.engine.config
    }

    /// The store this engine uses.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.engine.store
    }

    /// The counters (B19).
    pub fn stats(&self) -> StatsSnapshot {
        self.engine.stats.snapshot()
    }

    /// Whether `method` is covered (B1). Bindings call this before converting headers, so
    /// requests that are not covered cost nothing more; [`Idempotency::bypass`] counts them.
    pub fn covers(&self, method: &str) -> bool {
        self.engine.config.methods.iter().any(|m| m.as_str() == method)
    }

    /// B4 as data, for bindings that answer without a native call when they can: a covered
    /// request that lacks this header passes through untouched. `None` when keys are
    /// required (such a request gets a 400 from [`Idempotency::check`]).
    pub fn passes_without(&self) -> Option<&HeaderName> {
        let cfg = &self.engine.config;
        (!cfg.required).then_some(&cfg.header)
    }

    /// Count a request that is not covered, as [`Idempotency::check`] would.
    pub fn bypass(&self) -> Check {
        Stats::inc(&self.engine.stats.bypassed);
        Check::Bypass
    }

    /// The request headers [`Idempotency::check`] reads: the key header, `content-length`,
    /// `authorization`, `cookie` and the fingerprinted headers. A binding may pass only
    /// these.
    pub fn request_headers_read(&self) -> Vec<HeaderName> {
        let cfg = &self.engine.config;
        let mut names = vec![cfg.header.clone(), header::CONTENT_LENGTH, header::AUTHORIZATION, header::COOKIE];
        for name in &cfg.fingerprint_headers {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        names
    }

    /// Look at a request's head (B1–B4). `path` and `query` are raw, as received.
    pub fn check<H: HeaderSource + ?Sized>(&self, method: &str, path: &[u8], query: &[u8], headers: &H) -> Check {
        let e = &self.engine;
        let cfg = &e.config;
        if !self.covers(method) {
            return self.bypass();
        }
        let key = match parse_key(headers.header_values(&cfg.header), cfg.key_rules) {
            Ok(Some(key)) => key,
            Ok(None) if cfg.required => {
                Stats::inc(&e.stats.invalid);
                tracing::debug!(target: "idempo", outcome = "missing-key", method);
                let detail = format!("this request must carry an {} header", cfg.header_label);
                return Check::Respond(problem(&cfg.problem_base, ProblemCode::MissingKey, &detail, None));
            }
            Ok(None) => {
                Stats::inc(&e.stats.bypassed);
                return Check::Bypass;
            }
            Err(err) => {
                Stats::inc(&e.stats.invalid);
                tracing::debug!(target: "idempo", outcome = "invalid-key", reason = %err);
                return Check::Respond(problem(&cfg.problem_base, ProblemCode::InvalidKey, &err.to_string(), None));
            }
        };
        // A declared body over the limit is refused before a byte of it is read (B7).
        let declared = headers
            .header_values(&header::CONTENT_LENGTH)
            .next()
            .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > cfg.max_request_body as u64) {
            return Check::Respond(too_large(e, &key));
        }
        let mut fingerprint = cfg.fingerprint_key.start(method.as_bytes(), path, query);
        for name in &cfg.fingerprint_headers {
            fingerprint.header(name.as_str(), headers.header_values(name));
        }
        let has_credentials = headers.header_values(&header::AUTHORIZATION).next().is_some()
            || headers.header_values(&header::COOKIE).next().is_some();
        Check::Proceed(Pending { engine: self.engine.clone(), key, fingerprint, has_credentials, scope: None })
    }
}

/// A keyed, covered request waiting for its body.
pub struct Pending {
    engine: Arc<Engine>,
    key: Key,
    fingerprint: FingerprintBuilder,
    has_credentials: bool,
    scope: Option<String>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending").field("key", &self.key).field("scope", &self.scope).finish_non_exhaustive()
    }
}

impl Pending {
    /// The key, validated.
    pub fn key(&self) -> &Key {
        &self.key
    }

    /// The largest body to buffer; past it call [`Pending::too_large`].
    pub fn body_limit(&self) -> usize {
        self.engine.config.max_request_body
    }

    /// Put the key in a namespace (B5), from the binding's scope function.
    pub fn set_scope(&mut self, scope: String) {
        self.scope = Some(scope);
    }

    /// The 413 answer for a body over [`Pending::body_limit`] (B7). Nothing is stored.
    pub fn too_large(self) -> Response<Bytes> {
        too_large(&self.engine, &self.key)
    }

    /// The 400 answer for a body that could not be read (the client broke off).
    pub fn unreadable(self, reason: &str) -> Response<Bytes> {
        let e = &self.engine;
        Stats::inc(&e.stats.invalid);
        tracing::debug!(target: "idempo", outcome = "body-unreadable", key = %self.key.redacted(), reason);
        problem(&e.config.problem_base, ProblemCode::BodyUnreadable, reason, None)
    }

    /// Fingerprint the request with its body and claim the key (B5–B9, B16).
    pub async fn begin(self, body: &[u8]) -> Decision {
        let Pending { engine: e, key, fingerprint, has_credentials, scope } = self;
        let fingerprint = fingerprint.finish(body);
        if scope.is_none() && has_credentials && !SCOPE_WARNED.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                target: "idempo",
                "a request carrying Authorization or Cookie used an idempotency key with no scope \
                 function: keys are one global namespace, so two users sending the same key share \
                 one response. Set `scope` to the caller's identity."
            );
        }
        let id = RecordId::new(scope.as_deref(), &key);
        let cfg = &e.config;
        match e.store.claim(&id, &fingerprint, cfg.lease_ttl).await {
            Ok(Claim::Claimed { token }) => {
                Stats::inc(&e.stats.executed);
                tracing::debug!(target: "idempo", outcome = "executed", key = %key.redacted());
                Decision::Execute(Lease::start(e.clone(), id, token, key.redacted()))
            }
            Ok(Claim::InFlight { fingerprint: theirs, lease_left }) => {
                if theirs != fingerprint {
                    return Decision::Respond(mismatch(&e, &key));
                }
                Stats::inc(&e.stats.conflicts);
                tracing::debug!(target: "idempo", outcome = "key-in-use", key = %key.redacted());
                let detail = "a request with this key is still being processed; retry after the Retry-After delay";
                Decision::Respond(problem(&cfg.problem_base, ProblemCode::KeyInUse, detail, Some(lease_left)))
            }
            Ok(Claim::Completed { fingerprint: theirs, record }) => {
                if theirs != fingerprint {
                    return Decision::Respond(mismatch(&e, &key));
                }
                Stats::inc(&e.stats.replayed);
                tracing::debug!(target: "idempo", outcome = "replayed", key = %key.redacted(), omitted = record.body.is_none());
                Decision::Respond(replay(cfg, record))
            }
            Err(err) => store_error_at_claim(&e, &key, &err),
        }
    }
}

fn too_large(e: &Engine, key: &Key) -> Response<Bytes> {
    Stats::inc(&e.stats.too_large);
    tracing::debug!(target: "idempo", outcome = "body-too-large", key = %key.redacted());
    let detail = format!(
        "a request with an {} may carry at most {} body bytes",
        e.config.header_label, e.config.max_request_body
    );
    problem(&e.config.problem_base, ProblemCode::BodyTooLarge, &detail, None)
}

fn mismatch(e: &Engine, key: &Key) -> Response<Bytes> {
    Stats::inc(&e.stats.mismatches);
    tracing::debug!(target: "idempo", outcome = "fingerprint-mismatch", key = %key.redacted());
    let detail = "this key was already used for a different request (method, path, query, headers or body differ)";
    problem(&e.config.problem_base, ProblemCode::FingerprintMismatch, detail, None)
}

fn store_error_at_claim(e: &Engine, key: &Key, err: &StoreError) -> Decision {
    Stats::inc(&e.stats.store_errors);
    match e.config.on_store_error {
        OnStoreError::FailClosed => {
            tracing::error!(target: "idempo", outcome = "store-unavailable", key = %key.redacted(), error = %err);
            let detail = "the idempotency store could not be reached; the request was not processed";
            let after = std::time::Duration::from_secs(1);
            Decision::Respond(problem(&e.config.problem_base, ProblemCode::StoreUnavailable, detail, Some(after)))
        }
        OnStoreError::FailOpen => {
            Stats::inc(&e.stats.bypassed);
            tracing::warn!(target: "idempo", outcome = "fail-open", key = %key.redacted(), error = %err,
                "idempotency store failed: running the request unprotected (on_store_error = fail_open)");
            Decision::Bypass
        }
    }
}

/// Build the replay of a stored response (B12, B14).
fn replay(cfg: &Config, record: Record) -> Response<Bytes> {
    let omitted = record.body.is_none();
    let body = record.body.unwrap_or_default();
    let length = body.len();
    let mut res = Response::new(body);
    *res.status_mut() = record.status;
    let headers = res.headers_mut();
    for (name, value) in record.headers {
        headers.append(name, value);
    }
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    headers.insert(cfg.replayed_header.clone(), HeaderValue::from_static("true"));
    if omitted {
        headers.insert(HeaderName::from_static(REPLAY_OMITTED_HEADER), HeaderValue::from_static("omitted"));
    }
    res
}

impl Engine {
    /// Keep only the replayable headers of a response (B14).
    pub(crate) fn replayable(&self, headers: &HeaderMap) -> Vec<(HeaderName, HeaderValue)> {
        headers
            .iter()
            .filter(|(name, _)| self.config.replay_headers.contains(name))
            .take(u16::MAX as usize)
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;

    #[test]
    fn b4_passes_without_names_the_key_header_unless_required() {
        let optional = Idempotency::builder(MemoryStore::new()).header("X-Key").build();
        assert_eq!(optional.passes_without().map(HeaderName::as_str), Some("x-key"));
        // And it is true: a covered request without that header is passed through.
        let none: &[(&str, &str)] = &[("content-type", "text/plain")];
        assert!(matches!(optional.check("POST", b"/", b"", none), Check::Bypass));
        let required = Idempotency::builder(MemoryStore::new()).required(true).build();
        assert_eq!(required.passes_without(), None);
        assert!(matches!(required.check("POST", b"/", b"", none), Check::Respond(_)));
    }
}
