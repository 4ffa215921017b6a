//! The engine: every idempotency rule, independent of any web framework (docs/RULES.md).
//!
//! A request goes through two steps so that nothing is buffered for requests that are not
//! covered:
//!
//! 1. [`Idempotency::check`] looks at the head only (method, target, key header), without
//!    I/O: [`Check::Bypass`], [`Check::Respond`] (a problem), or [`Check::Proceed`].
//! 2. [`Pending::begin`] takes the buffered body, fingerprints the request and claims the
//!    key: [`Decision::Execute`] with a [`Lease`], or [`Decision::Respond`] with a replay
//!    or a problem. ([`Decision::Bypass`] only with `on_store_error = fail_open`.)

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode, header};

use crate::config::{Builder, Config, ConfigError, OnStoreError};
use crate::fingerprint::{Fingerprint, FingerprintBuilder, RecordId};
use crate::held::Held;
use crate::key::{Key, parse_key};
use crate::lease::Lease;
use crate::problem::{ProblemCode, problem};
use crate::record::Record;
use crate::shared::Shared;
use crate::stats::{Stats, StatsSnapshot};
use crate::store::{Claim, Owner, Store, StoreError};
use crate::throttle::Throttle;

/// The request header stating a wait preference (B20, RFC 7240).
const PREFER: HeaderName = HeaderName::from_static("prefer");

/// The header added to a replay whose body was too large to store (B12).
pub const REPLAY_OMITTED_HEADER: &str = "idempotency-replay";

/// Request headers, however the binding holds them.
pub trait HeaderSource {
    /// All values of `name`, in order; `name` is lower-case, matching is case-insensitive.
    fn header_values<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a [u8]> + 'a;
}

/// Up to this many header names, one that is absent is found so by comparing it with each
/// (mostly a tag or a length that differs) for less than hashing it costs: a custom name
/// such as `idempotency-key` is hashed a byte at a time. A request without a key pays
/// this on every covered request.
const SCANNED_HEADERS: usize = 16;

impl HeaderSource for HeaderMap {
    fn header_values<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a [u8]> + 'a {
        let absent = self.keys_len() <= SCANNED_HEADERS && !self.keys().any(|n| n == name);
        MapValues((!absent).then(|| self.get_all(name).iter()))
    }
}

/// A header's values in a `HeaderMap`, or none: cheaper to ask for the first than an
/// `Option` flattened (a request without a key asks on every covered request).
struct MapValues<'a>(Option<http::header::ValueIter<'a, HeaderValue>>);

impl<'a> Iterator for MapValues<'a> {
    type Item = &'a [u8];

    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        self.0.as_mut()?.next().map(HeaderValue::as_bytes)
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
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for Idempotency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Idempotency").field("config", &self.shared.config).finish_non_exhaustive()
    }
}

/// The outcome of looking at a request's head.
#[derive(Debug)]
pub enum Check {
    /// Not covered, or no key where keys are optional: run the handler, touch nothing.
    Bypass,
    /// Answer without reading the body or running the handler (a problem).
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

impl Builder {
    /// Validate and build.
    pub fn try_build(self) -> Result<Idempotency, ConfigError> {
        let (store, config) = self.validate()?;
        let mut read =
            vec![config.header.clone(), header::CONTENT_LENGTH, header::AUTHORIZATION, header::COOKIE, PREFER];
        for name in &config.fingerprint_headers {
            if !read.contains(name) {
                read.push(name.clone());
            }
        }
        Ok(Idempotency {
            shared: Arc::new(Shared {
                store,
                config,
                stats: Stats::default(),
                read,
                held: Held::default(),
                waiting: Default::default(),
                renewals: Default::default(),
            }),
        })
    }

    /// Build; panics with the reason on an invalid configuration (a programming error
    /// caught at startup). Use [`Builder::try_build`] to handle it instead.
    pub fn build(self) -> Idempotency {
        match self.try_build() {
            Ok(idem) => idem,
            Err(e) => panic!("{e}"),
        }
    }
}

impl Idempotency {
    /// Start building an engine over `store`.
    pub fn builder(store: impl Store) -> Builder {
        Builder::new(Arc::new(store))
    }

    /// Start building an engine over a shared store.
    pub fn builder_shared(store: Arc<dyn Store>) -> Builder {
        Builder::new(store)
    }

    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// The store this engine uses.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.shared.store
    }

    /// The counters (B19).
    pub fn stats(&self) -> StatsSnapshot {
        self.shared.stats.snapshot()
    }

    /// The configured method `method` is, matched without regard to case (B1), or `None`
    /// when it is not covered. Bindings ask before converting headers, so requests that are
    /// not covered cost nothing more.
    pub fn covers(&self, method: &str) -> Option<&Method> {
        let methods = &self.shared.config.methods;
        // Methods nearly always come in their canonical (upper) case: an exact match first.
        methods
            .iter()
            .find(|m| m.as_str() == method)
            .or_else(|| methods.iter().find(|m| m.as_str().eq_ignore_ascii_case(method)))
    }

    /// B4 as data, for bindings that answer without a native call when they can: a covered
    /// request that lacks this header passes through untouched. `None` when keys are
    /// required (such a request gets a 400 from [`Idempotency::check`]).
    pub fn passes_without(&self) -> Option<&HeaderName> {
        let cfg = &self.shared.config;
        (!cfg.required).then_some(&cfg.header)
    }

    /// Count `n` covered requests a binding passed through without calling
    /// [`Idempotency::check`] because they lacked [`Idempotency::passes_without`].
    pub fn count_bypassed(&self, n: u64) {
        self.shared.stats.bypassed.fetch_add(n, Ordering::Relaxed);
    }

    /// The request headers [`Idempotency::check`] reads: the key header, `content-length`,
    /// `authorization`, `cookie`, `prefer` and the fingerprinted headers. A binding may pass only
    /// these.
    pub fn request_headers_read(&self) -> &[HeaderName] {
        &self.shared.read
    }

    /// The header [`Idempotency::check`] reads that `name` is (any case), if it is one.
    pub fn reads(&self, name: &[u8]) -> Option<&HeaderName> {
        self.shared.read.iter().find(|n| n.as_str().as_bytes().eq_ignore_ascii_case(name))
    }

    /// Look at a request's head (B1–B4, B7). `path` and `query` are raw, as received; an
    /// absolute-form path (`http://host/p`) counts as its origin form (B6).
    pub fn check<H: HeaderSource + ?Sized>(&self, method: &str, path: &[u8], query: &[u8], headers: &H) -> Check {
        match self.covers(method) {
            Some(method) => self.check_covered(method, || (path, query), headers),
            None => Check::Bypass,
        }
    }

    /// [`Idempotency::check`] for an `http` request head: the method compared as one (its
    /// tag, for the standard methods) before its name is, the target split only for a
    /// request with a key.
    #[inline]
    pub fn check_head<H: HeaderSource + ?Sized>(&self, method: &Method, uri: &http::Uri, headers: &H) -> Check {
        let cfg = &self.shared.config;
        match cfg.methods.iter().find(|m| *m == method) {
            // B4 first, for the request that comes most: no key where keys are optional.
            // (The answer `admit` gives, decided here without the frame the rest needs.)
            Some(_) if !cfg.required && headers.header_values(&cfg.header).next().is_none() => {
                Stats::inc(&self.shared.stats.bypassed);
                Check::Bypass
            }
            Some(method) => self.check_covered_head(method, uri, headers),
            // Not one of them, unless spelled in another case ("post", B1).
            None if method.as_str().bytes().any(|b| b.is_ascii_lowercase()) => {
                self.check(method.as_str(), uri.path().as_bytes(), uri.query().unwrap_or("").as_bytes(), headers)
            }
            None => Check::Bypass,
        }
    }

    #[inline(never)]
    fn check_covered_head<H: HeaderSource + ?Sized>(&self, method: &Method, uri: &http::Uri, headers: &H) -> Check {
        self.check_covered(method, || (uri.path().as_bytes(), uri.query().unwrap_or("").as_bytes()), headers)
    }

    /// What [`Idempotency::check`] would say, without fingerprinting anything: whether the
    /// request passes through, is answered at once, or proceeds (and whether it may wait
    /// for an in-flight duplicate, B20). For a binding whose calls into the core cost more
    /// than the work: it reads the body after this, then calls `check` with the same head
    /// and claims at once, holding no [`Pending`] in between.
    pub fn look<H: HeaderSource + ?Sized>(&self, method: &str, headers: &H) -> Look {
        let Some(method) = self.covers(method) else { return Look::Bypass };
        match self.admit(method, headers) {
            Admitted::Bypass => Look::Bypass,
            Admitted::Respond(res) => Look::Respond(res),
            Admitted::Keyed { .. } => {
                let prefer = crate::prefer::wait_preference(headers.header_values(&PREFER));
                Look::Proceed { may_wait: may_wait(&self.shared.config, prefer) }
            }
        }
    }

    fn check_covered<'a, H: HeaderSource + ?Sized>(
        &self,
        method: &Method,
        target: impl FnOnce() -> (&'a [u8], &'a [u8]),
        headers: &H,
    ) -> Check {
        let (key, declared) = match self.admit(method, headers) {
            Admitted::Bypass => return Check::Bypass,
            Admitted::Respond(res) => return Check::Respond(res),
            Admitted::Keyed { key, declared } => (key, declared),
        };
        let cfg = &self.shared.config;
        // The configured spelling: `post` and `POST` are the same request (B1).
        let (path, query) = target();
        let path = crate::target::origin_path(path);
        let mut fingerprint = cfg.fingerprint_key.start(method.as_str().as_bytes(), path, query);
        for name in &cfg.fingerprint_headers {
            fingerprint.header(name.as_str(), headers.header_values(name));
        }
        let credential = credential(headers.header_values(&header::AUTHORIZATION));
        let cookie = headers.header_values(&header::COOKIE).next().is_some();
        Check::Proceed(Pending {
            shared: self.shared.clone(),
            key,
            fingerprint,
            credential,
            cookie,
            declared,
            scope: Scope::Default,
            prefer: crate::prefer::wait_preference(headers.header_values(&PREFER)),
        })
    }

    /// The key and the declared length of a covered request (B2–B4, B7), or what answers it
    /// without them.
    fn admit<H: HeaderSource + ?Sized>(&self, method: &Method, headers: &H) -> Admitted {
        let e = &self.shared;
        let cfg = &e.config;
        let key = match parse_key(headers.header_values(&cfg.header), cfg.key_rules) {
            Ok(Some(key)) => key,
            Ok(None) if cfg.required => {
                Stats::inc(&e.stats.invalid);
                tracing::debug!(target: "idempo", outcome = "missing-key", method = method.as_str());
                let detail = format!("this request must carry an {} header", cfg.header_label);
                return Admitted::Respond(problem(&cfg.problem_base, ProblemCode::MissingKey, &detail, None));
            }
            Ok(None) => {
                Stats::inc(&e.stats.bypassed);
                return Admitted::Bypass;
            }
            Err(err) => {
                Stats::inc(&e.stats.invalid);
                tracing::debug!(target: "idempo", outcome = "invalid-key", reason = %err);
                return Admitted::Respond(problem(&cfg.problem_base, ProblemCode::InvalidKey, &err.to_string(), None));
            }
        };
        // A declared body over the limit is refused before a byte of it is read (B7).
        let declared = match content_length(headers.header_values(&header::CONTENT_LENGTH)) {
            Ok(declared) => declared,
            Err(()) => {
                Stats::inc(&e.stats.invalid);
                let detail = "the request's Content-Length is not a number: its body cannot be read";
                return Admitted::Respond(problem(&cfg.problem_base, ProblemCode::BodyUnreadable, detail, None));
            }
        };
        if declared.is_some_and(|n| n > cfg.max_request_body as u64) {
            return Admitted::Respond(too_large(e, &key));
        }
        Admitted::Keyed { key, declared }
    }
}

/// What [`Idempotency::admit`] found.
enum Admitted {
    Bypass,
    Respond(Response<Bytes>),
    Keyed { key: Key, declared: Option<u64> },
}

/// What [`Idempotency::look`] found.
#[derive(Debug)]
pub enum Look {
    /// As [`Check::Bypass`].
    Bypass,
    /// As [`Check::Respond`].
    Respond(Response<Bytes>),
    /// As [`Check::Proceed`]; `may_wait` as [`Pending::may_wait`] would say.
    Proceed { may_wait: bool },
}

/// Whether a request preferring `prefer` seconds may wait for an in-flight duplicate (B20).
fn may_wait(cfg: &Config, prefer: Option<u64>) -> bool {
    !cfg.max_wait.is_zero() && prefer.map_or(!cfg.wait.is_zero(), |secs| secs > 0)
}

/// The SHA-256 of a request's `Authorization` values (each length-prefixed), if it has any:
/// B5's default scope. Only a hash is kept; the credential itself goes nowhere.
fn credential<'a>(values: impl Iterator<Item = &'a [u8]>) -> Option<[u8; 32]> {
    use sha2::{Digest, Sha256};
    let mut h: Option<Sha256> = None;
    for v in values {
        let h = h.get_or_insert_with(Sha256::new);
        h.update((v.len() as u64).to_be_bytes());
        h.update(v);
    }
    h.map(|h| h.finalize().into())
}

/// Whose namespace a key lives in (B5).
enum Scope {
    /// None was set: the caller's `Authorization` when it has one, else the global one.
    Default,
    /// What the scope function returned.
    Named(String),
    /// The one global namespace, chosen explicitly.
    Global,
}

/// The declared body length (B7): `Ok(None)` without `Content-Length`, `Err` when it is not
/// a number, or is repeated with different values (RFC 9112 §6.3: a broken message).
fn content_length<'a>(mut values: impl Iterator<Item = &'a [u8]>) -> Result<Option<u64>, ()> {
    let parse = |v: &[u8]| -> Result<u64, ()> {
        let v = std::str::from_utf8(v).map_err(|_| ())?.trim();
        if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
            return Err(());
        }
        v.parse().map_err(|_| ())
    };
    let Some(first) = values.next() else { return Ok(None) };
    let mut length = None;
    // One line may hold a list of equal values ("5, 5"), as may repeated lines.
    for line in std::iter::once(first).chain(values) {
        for v in line.split(|&b| b == b',') {
            let n = parse(v)?;
            if length.is_some_and(|l| l != n) {
                return Err(());
            }
            length = Some(n);
        }
    }
    Ok(length)
}

/// A keyed, covered request waiting for its body.
pub struct Pending {
    shared: Arc<Shared>,
    key: Key,
    fingerprint: FingerprintBuilder,
    credential: Option<[u8; 32]>,
    cookie: bool,
    declared: Option<u64>,
    scope: Scope,
    /// The seconds the request prefers to wait for an in-flight duplicate (B20).
    prefer: Option<u64>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scope = match &self.scope {
            Scope::Default => None,
            Scope::Named(s) => Some(s.as_str()),
            Scope::Global => Some("(global)"),
        };
        f.debug_struct("Pending").field("key", &self.key).field("scope", &scope).finish_non_exhaustive()
    }
}

impl Pending {
    /// The key, validated.
    pub fn key(&self) -> &Key {
        &self.key
    }

    /// Whether this request may wait for an in-flight duplicate (B20): it prefers a wait, or
    /// the server waits by default. A binding watches for its client leaving only then.
    pub fn may_wait(&self) -> bool {
        may_wait(&self.shared.config, self.prefer)
    }

    /// The largest body to buffer; past it call [`Pending::too_large`].
    pub fn body_limit(&self) -> usize {
        self.shared.config.max_request_body
    }

    /// The body length the request declared (`Content-Length`), already checked against
    /// [`Pending::body_limit`]; `None` when it declared none.
    pub fn declared_length(&self) -> Option<u64> {
        self.declared
    }

    /// Put the key in a namespace (B5), from the binding's scope function.
    pub fn set_scope(&mut self, scope: String) {
        self.scope = Scope::Named(scope);
    }

    /// Put the key in the one global namespace, as asked for explicitly (B5): every caller
    /// shares it, whatever its credentials.
    pub fn set_global_scope(&mut self) {
        self.scope = Scope::Global;
    }

    /// The 413 answer for a body over [`Pending::body_limit`] (B7). Nothing is stored.
    pub fn too_large(self) -> Response<Bytes> {
        too_large(&self.shared, &self.key)
    }

    /// The 400 answer for a body that could not be read (the client broke off).
    pub fn unreadable(self, reason: &str) -> Response<Bytes> {
        let e = &self.shared;
        Stats::inc(&e.stats.invalid);
        tracing::debug!(target: "idempo", outcome = "body-unreadable", key = %self.key.redacted(), reason);
        problem(&e.config.problem_base, ProblemCode::BodyUnreadable, reason, None)
    }

    /// Fingerprint the request with its body and claim the key (B5–B9, B16), waiting for
    /// an in-flight duplicate where B20 says so.
    pub async fn begin(self, body: &[u8]) -> Decision {
        self.begin_until(body, std::future::pending()).await
    }

    /// [`Pending::begin`] for a client that may leave while it waits (B20): once `gone`
    /// resolves, a wait for an in-flight duplicate stops (with a 409 nobody reads) and its
    /// place among `max_waiters` is free. Store operations under way are finished first.
    pub async fn begin_until<G: Future<Output = ()>>(self, body: &[u8], gone: G) -> Decision {
        match self.begin_now(body) {
            Begun::Decided(decision) => decision,
            Begun::Claiming(claiming) => claiming.finish(gone).await,
        }
    }

    /// [`Pending::begin`] as far as it goes without waiting: the decision when the store
    /// answers in this process (the memory store) or the claim is this process's own,
    /// else what is left to await ([`Claiming::finish`]). A binding answers the first kind
    /// directly, with no future, task or Promise at all.
    pub fn begin_now(self, body: &[u8]) -> Begun {
        let Pending { shared: e, key, fingerprint, credential, cookie, scope, prefer, .. } = self;
        let fingerprint = fingerprint.finish(body);
        let id = match (&scope, &credential) {
            (Scope::Named(s), _) => RecordId::new(Some(s), &key),
            (Scope::Global, _) => RecordId::new(None, &key),
            (Scope::Default, Some(credential)) => RecordId::of_credential(credential, &key),
            (Scope::Default, None) => {
                if cookie && !SCOPE_WARNED.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        target: "idempo",
                        "a request authenticated by a Cookie used an idempotency key with no scope \
                         function: without Authorization such requests share one namespace, so two \
                         users sending the same key share one response. Set `scope` to the caller's \
                         identity."
                    );
                }
                RecordId::new(None, &key)
            }
        };
        let mut claiming = Claiming { e, key, id, fingerprint, scope, credential, prefer, in_flight: None };
        let owner = owner_of(&claiming.scope, &claiming.credential);
        let Some(claim) = claim_now(&claiming.e, owner, &id, &fingerprint) else { return Begun::Claiming(claiming) };
        match settle(&claiming.e, &claiming.key, id, fingerprint, claim) {
            Settled::Decided(decision) => Begun::Decided(decision),
            Settled::InFlight { lease_left } => match claiming.wait() {
                None => Begun::Decided(Decision::Respond(in_use(&claiming.e, &claiming.key, lease_left, None))),
                Some(_) => {
                    claiming.in_flight = Some(lease_left);
                    Begun::Claiming(claiming)
                }
            },
        }
    }
}

/// What [`Pending::begin_now`] came to.
#[derive(Debug)]
pub enum Begun {
    Decided(Decision),
    /// The store must be asked over the network, or the request waits for an in-flight
    /// duplicate (B20).
    Claiming(Claiming),
}

/// A claim to finish by awaiting the store, or the original it waits for.
pub struct Claiming {
    e: Arc<Shared>,
    key: Key,
    id: RecordId,
    fingerprint: Fingerprint,
    scope: Scope,
    credential: Option<[u8; 32]>,
    prefer: Option<u64>,
    /// Already seen in flight, with this much of its lease left: only the wait is left.
    in_flight: Option<Duration>,
}

impl std::fmt::Debug for Claiming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Claiming").field("key", &self.key).field("id", &self.id).finish_non_exhaustive()
    }
}

/// The namespace a claim is made in, for the store (B5, B21).
fn owner_of<'a>(scope: &'a Scope, credential: &'a Option<[u8; 32]>) -> Owner<'a> {
    match (scope, credential) {
        (Scope::Named(s), _) => Owner::Scope(s),
        (Scope::Global, _) => Owner::Global,
        (Scope::Default, Some(credential)) => Owner::Credential(credential),
        (Scope::Default, None) => Owner::Global,
    }
}

impl Claiming {
    /// How long this request waits for an in-flight duplicate (B20), if at all.
    fn wait(&self) -> Option<Duration> {
        let wait = match self.prefer {
            Some(secs) => Duration::from_secs(secs).min(self.e.config.max_wait),
            None => self.e.config.wait,
        };
        (!wait.is_zero()).then_some(wait)
    }

    /// Claim the key through the store, and wait for an in-flight duplicate where B20 says
    /// so, until `gone` resolves (see [`Pending::begin_until`]).
    pub async fn finish<G: Future<Output = ()>>(self, gone: G) -> Decision {
        let Claiming { e, key, id, fingerprint, .. } = &self;
        let owner = owner_of(&self.scope, &self.credential);
        let lease_left = match self.in_flight {
            Some(lease_left) => lease_left,
            None => {
                let claim = claim(e, owner, id, fingerprint).await;
                match settle(e, key, *id, *fingerprint, claim) {
                    Settled::Decided(decision) => return decision,
                    Settled::InFlight { lease_left } => lease_left,
                }
            }
        };
        let Some(wait) = self.wait() else { return Decision::Respond(in_use(e, key, lease_left, None)) };
        let applied = self.prefer.map(|_| wait);
        let waiter = crate::waiting::Waiter { e, key, owner, id: *id, fingerprint: *fingerprint, applied };
        waiter.wait(wait, lease_left, std::pin::pin!(gone)).await
    }
}

/// Claim `id`, or see that this process holds it. A duplicate of a request this process is
/// running is answered without the store (held.rs); renewed every third of the lease, its
/// lease has at least 2/3 left.
pub(crate) async fn claim(
    e: &Shared,
    owner: Owner<'_>,
    id: &RecordId,
    fingerprint: &Fingerprint,
) -> Result<Claim, StoreError> {
    match claim_now(e, owner, id, fingerprint) {
        Some(claim) => claim,
        None => e.store.claim_for(owner, id, fingerprint, e.config.lease_ttl).await,
    }
}

/// [`claim`] where it needs no waiting: a duplicate of a request this process is running
/// (in flight, with most of its lease), or a store that answers in this process. `None`
/// when only the store's own claim, awaited, can answer.
fn claim_now(
    e: &Shared,
    owner: Owner<'_>,
    id: &RecordId,
    fingerprint: &Fingerprint,
) -> Option<Result<Claim, StoreError>> {
    if let Some(theirs) = e.held.get(id) {
        return Some(Ok(Claim::InFlight { fingerprint: theirs, lease_left: e.config.lease_ttl * 2 / 3 }));
    }
    e.store.claim_in_process(owner, id, fingerprint, e.config.lease_ttl)
}

/// What a claim comes to: a decision, or the same request still in flight elsewhere.
pub(crate) enum Settled {
    Decided(Decision),
    InFlight { lease_left: Duration },
}

/// B8, B9, B14, B16: what a claim's outcome means for this request.
pub(crate) fn settle(
    e: &Arc<Shared>,
    key: &Key,
    id: RecordId,
    fingerprint: Fingerprint,
    claim: Result<Claim, StoreError>,
) -> Settled {
    let decision = match claim {
        Ok(Claim::Claimed { token }) => {
            e.held.insert(id, fingerprint);
            Stats::inc(&e.stats.executed);
            tracing::debug!(target: "idempo", outcome = "executed", key = %key.redacted());
            Decision::Execute(Lease::start(e.clone(), id, fingerprint, token, key.redacted()))
        }
        Ok(Claim::InFlight { fingerprint: theirs, lease_left }) => {
            if theirs != fingerprint {
                return Settled::Decided(Decision::Respond(mismatch(e, key)));
            }
            return Settled::InFlight { lease_left };
        }
        Ok(Claim::Completed { fingerprint: theirs, record }) => {
            if theirs != fingerprint {
                return Settled::Decided(Decision::Respond(mismatch(e, key)));
            }
            Stats::inc(&e.stats.replayed);
            tracing::debug!(target: "idempo", outcome = "replayed", key = %key.redacted(), omitted = record.body.is_none());
            Decision::Respond(replay(&e.config, &record))
        }
        Err(err) => store_error_at_claim(e, key, &err),
    };
    Settled::Decided(decision)
}

/// The 409 for a key in flight (B9), `Retry-After` capped by what the lease has left.
/// Counted in `conflicts`; `in_use_uncounted` for a waiter whose client left (nobody reads it).
pub(crate) fn in_use(e: &Shared, key: &Key, lease_left: Duration, applied: Option<Duration>) -> Response<Bytes> {
    Stats::inc(&e.stats.conflicts);
    tracing::debug!(target: "idempo", outcome = "key-in-use", key = %key.redacted());
    in_use_uncounted(e, lease_left, applied)
}

pub(crate) fn in_use_uncounted(e: &Shared, lease_left: Duration, applied: Option<Duration>) -> Response<Bytes> {
    let cfg = &e.config;
    let detail = "a request with this key is still being processed; retry after the Retry-After delay";
    let mut res = problem(&cfg.problem_base, ProblemCode::KeyInUse, detail, Some(cfg.retry_after.min(lease_left)));
    if let Some(wait) = applied {
        preference_applied(&mut res, wait);
    }
    res
}

/// `Preference-Applied: wait=N` (RFC 7240 §3): the request's wait preference was honoured,
/// for `wait` (whole seconds).
pub(crate) fn preference_applied<B>(res: &mut Response<B>, wait: Duration) {
    if let Ok(value) = HeaderValue::try_from(format!("wait={}", wait.as_secs())) {
        res.headers_mut().insert(HeaderName::from_static("preference-applied"), value);
    }
}

fn too_large(e: &Shared, key: &Key) -> Response<Bytes> {
    Stats::inc(&e.stats.too_large);
    tracing::debug!(target: "idempo", outcome = "body-too-large", key = %key.redacted());
    let detail = format!(
        "a request with an {} may carry at most {} body bytes",
        e.config.header_label, e.config.max_request_body
    );
    problem(&e.config.problem_base, ProblemCode::BodyTooLarge, &detail, None)
}

fn mismatch(e: &Shared, key: &Key) -> Response<Bytes> {
    Stats::inc(&e.stats.mismatches);
    tracing::debug!(target: "idempo", outcome = "fingerprint-mismatch", key = %key.redacted());
    let detail = "this key was already used for a different request (method, path, query, headers or body differ)";
    problem(&e.config.problem_base, ProblemCode::FingerprintMismatch, detail, None)
}

fn store_error_at_claim(e: &Shared, key: &Key, err: &StoreError) -> Decision {
    Stats::inc(&e.stats.store_errors);
    // Failing open is for a store that cannot answer. One that returned a record it holds
    // for this key, unreadable or not (B18, B24), has shown the key ran: never again.
    let policy = if err.is_unreadable_record() { OnStoreError::FailClosed } else { e.config.on_store_error };
    match policy {
        OnStoreError::FailClosed => {
            static LOG: Throttle = Throttle::new();
            if let Some(suppressed) = LOG.admit() {
                tracing::error!(target: "idempo", outcome = "store-unavailable", key = %key.redacted(), error = %err,
                    suppressed, "idempotency store failed: answered 503");
            }
            let detail = "the idempotency store could not be reached; the request was not processed";
            let after = std::time::Duration::from_secs(1);
            Decision::Respond(problem(&e.config.problem_base, ProblemCode::StoreUnavailable, detail, Some(after)))
        }
        OnStoreError::FailOpen => {
            Stats::inc(&e.stats.bypassed);
            static LOG: Throttle = Throttle::new();
            if let Some(suppressed) = LOG.admit() {
                tracing::warn!(target: "idempo", outcome = "fail-open", key = %key.redacted(), error = %err, suppressed,
                    "idempotency store failed: running the request unprotected (on_store_error = fail_open)");
            }
            Decision::Bypass
        }
    }
}

/// Whether a response with `status` carries no body and no `Content-Length` (B14).
fn bodiless(status: StatusCode) -> bool {
    status.is_informational() || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED
}

/// A `Content-Length` value in one allocation of its exact size (`HeaderValue::from(usize)`
/// takes two: a buffer, then a copy shrunk to fit).
fn content_length_value(length: usize) -> HeaderValue {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut n = length;
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // Digits only: always a valid header value.
    HeaderValue::from_bytes(&digits[at..]).unwrap_or(HeaderValue::from_static("0"))
}

/// Build the replay of a stored response (B12, B14).
fn replay(cfg: &Config, record: &Record) -> Response<Bytes> {
    let omitted = record.body.is_none();
    let body = if bodiless(record.status) { Bytes::new() } else { record.body.clone().unwrap_or_default() };
    let length = body.len();
    let mut res = Response::new(body);
    *res.status_mut() = record.status;
    let headers = res.headers_mut();
    headers.reserve(record.headers.len() + 3);
    for (name, value) in &record.headers {
        // Checked again on the way out: a record written by someone else replays only what
        // this process would have stored (`replay_headers` never holds NEVER_REPLAYED).
        if cfg.replay_headers.contains(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    if !bodiless(record.status) {
        headers.insert(header::CONTENT_LENGTH, content_length_value(length));
    }
    headers.insert(cfg.replayed_header.clone(), HeaderValue::from_static("true"));
    if omitted {
        headers.remove(header::CONTENT_ENCODING);
        headers.insert(HeaderName::from_static(REPLAY_OMITTED_HEADER), HeaderValue::from_static("omitted"));
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;

    fn none() -> &'static [(&'static str, &'static str)] {
        &[("content-type", "text/plain")]
    }

    #[test]
    fn b4_passes_without_names_the_key_header_unless_required() {
        let optional = Idempotency::builder(MemoryStore::new()).header("X-Key").build();
        assert_eq!(optional.passes_without().map(HeaderName::as_str), Some("x-key"));
        // And it is true: a covered request without that header is passed through.
        assert!(matches!(optional.check("POST", b"/", b"", none()), Check::Bypass));
        let required = Idempotency::builder(MemoryStore::new()).required(true).build();
        assert_eq!(required.passes_without(), None);
        assert!(matches!(required.check("POST", b"/", b"", none()), Check::Respond(_)));
    }

    #[test]
    fn b1_methods_match_without_regard_to_case() {
        let idem = Idempotency::builder(MemoryStore::new()).required(true).build();
        for method in ["post", "Post", "patch"] {
            assert!(matches!(idem.check(method, b"/", b"", none()), Check::Respond(_)), "{method} is covered");
            let method = Method::from_bytes(method.as_bytes()).unwrap();
            let uri = http::Uri::from_static("/");
            assert!(matches!(idem.check_head(&method, &uri, none()), Check::Respond(_)), "{method} is covered");
        }
        assert!(matches!(idem.check("get", b"/", b"", none()), Check::Bypass));
        for method in [Method::GET, Method::PUT, Method::from_bytes(b"get").unwrap()] {
            let uri = http::Uri::from_static("/");
            assert!(matches!(idem.check_head(&method, &uri, none()), Check::Bypass), "{method} is not");
        }
        assert_eq!(idem.covers("pOsT"), Some(&Method::POST));
        // Passing uncovered methods through is not counted: only covered requests are.
        assert_eq!(idem.stats().bypassed, 0);
    }

    #[test]
    fn b7_a_content_length_that_is_not_a_number_is_a_broken_message() {
        let idem = Idempotency::builder(MemoryStore::new()).build();
        for bad in ["-1", "abc", "", "1e3", "5, 6", "+5"] {
            let headers = [("idempotency-key", "k"), ("content-length", bad)];
            match idem.check("POST", b"/", b"", &headers[..]) {
                Check::Respond(res) => assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{bad:?}"),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        let repeated = [("idempotency-key", "k"), ("content-length", "5"), ("content-length", "5, 5")];
        match idem.check("POST", b"/", b"", &repeated[..]) {
            Check::Proceed(p) => assert_eq!(p.declared_length(), Some(5)),
            other => panic!("{other:?}"),
        }
        let over = [("idempotency-key", "k"), ("content-length", "99999999999999999999999")];
        assert!(matches!(idem.check("POST", b"/", b"", &over[..]), Check::Respond(_)));
    }

    #[test]
    fn look_says_what_check_would_without_fingerprinting() {
        let waits = Idempotency::builder(MemoryStore::new()).wait(Duration::from_secs(2)).build();
        let plain = Idempotency::builder(MemoryStore::new()).build();
        let required = Idempotency::builder(MemoryStore::new()).required(true).build();
        let heads: &[(&str, &[(&str, &str)])] = &[
            ("GET", &[("idempotency-key", "k")]),
            ("POST", none()),
            ("POST", &[("idempotency-key", "k")]),
            ("post", &[("idempotency-key", "k"), ("prefer", "wait=3")]),
            ("POST", &[("idempotency-key", "k"), ("prefer", "wait=0")]),
            ("POST", &[("idempotency-key", "\"unterminated")]),
            ("POST", &[("idempotency-key", "a"), ("idempotency-key", "b")]),
            ("POST", &[("idempotency-key", "k"), ("content-length", "x")]),
            ("POST", &[("idempotency-key", "k"), ("content-length", "99999999999")]),
        ];
        for idem in [&waits, &plain, &required] {
            for (method, headers) in heads {
                let looked = idem.look(method, *headers);
                match (idem.check(method, b"/p", b"q=1", *headers), looked) {
                    (Check::Bypass, Look::Bypass) => {}
                    (Check::Respond(a), Look::Respond(b)) => assert_eq!(a.status(), b.status(), "{method} {headers:?}"),
                    (Check::Proceed(p), Look::Proceed { may_wait }) => {
                        assert_eq!(p.may_wait(), may_wait, "{method} {headers:?}")
                    }
                    (checked, looked) => panic!("{method} {headers:?}: check {checked:?}, look {looked:?}"),
                }
            }
        }
        // Both ways of asking were counted, and alike.
        let stats = required.stats();
        assert_eq!((stats.invalid % 2, stats.too_large % 2), (0, 0));
    }

    fn record(status: u16, headers: &[(&'static str, &'static str)]) -> Record {
        Record {
            status: StatusCode::from_u16(status).unwrap(),
            headers: headers.iter().map(|(n, v)| (HeaderName::from_static(n), HeaderValue::from_static(v))).collect(),
            body: Some(Bytes::new()),
        }
    }

    #[test]
    fn b14_bodiless_replays_have_no_content_length() {
        let idem = Idempotency::builder(MemoryStore::new()).build();
        for status in [204, 304] {
            let res = replay(idem.config(), &record(status, &[("etag", "\"1\"")]));
            assert!(res.headers().get(header::CONTENT_LENGTH).is_none(), "{status}");
            assert_eq!(res.headers()["idempotency-replayed"], "true");
        }
        let res = replay(idem.config(), &record(200, &[]));
        assert_eq!(res.headers()[header::CONTENT_LENGTH], "0");
    }

    #[test]
    fn b14_a_record_cannot_inject_headers_that_are_never_replayed() {
        let idem = Idempotency::builder(MemoryStore::new()).build();
        let res = replay(
            idem.config(),
            &record(200, &[("set-cookie", "s=1"), ("link", "<a>"), ("transfer-encoding", "chunked"), ("link", "<b>")]),
        );
        assert!(res.headers().get(header::SET_COOKIE).is_none());
        assert!(res.headers().get(header::TRANSFER_ENCODING).is_none());
        let links: Vec<_> = res.headers().get_all(header::LINK).iter().collect();
        assert_eq!(links, ["<a>", "<b>"], "repeated headers stay, in order");
        let res = replay(idem.config(), &record(200, &[("access-control-allow-origin", "*"), ("etag", "\"1\"")]));
        assert!(res.headers().get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none(), "not in replay_headers");
        assert_eq!(res.headers()[header::ETAG], "\"1\"");
    }

    #[test]
    fn b12_an_omitted_body_is_not_replayed_as_encoded() {
        let idem = Idempotency::builder(MemoryStore::new()).build();
        let mut rec = record(200, &[("content-encoding", "gzip"), ("content-type", "text/plain")]);
        rec.body = None;
        let res = replay(idem.config(), &rec);
        assert!(res.headers().get(header::CONTENT_ENCODING).is_none());
        assert_eq!(res.headers()["idempotency-replay"], "omitted");
        assert_eq!(res.headers()["content-type"], "text/plain");
    }
}
