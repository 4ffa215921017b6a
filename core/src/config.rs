//! Every option of docs/RULES.md, its default, and the builder that validates them.
//!
//! The defaults live here and nowhere else: the bindings pass only what their user set
//! (see [`crate::host::options`]), so a default changed here reaches every language.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, Method};

use crate::fingerprint::FingerprintKey;
use crate::key::KeyRules;
use crate::store::Store;

/// The default of every option (docs/RULES.md, "Defaults").
pub mod defaults {
    use std::time::Duration;

    pub const METHODS: &[&str] = &["POST", "PATCH"];
    pub const HEADER: &str = "Idempotency-Key";
    pub const REQUIRED: bool = false;
    pub const MAX_KEY_LENGTH: usize = 255;
    pub const STRICT_KEY_SYNTAX: bool = false;
    pub const MAX_REQUEST_BODY: usize = 1 << 20;
    pub const MAX_RESPONSE_BODY: usize = 1 << 20;
    pub const LEASE_TTL: Duration = Duration::from_secs(60);
    pub const MAX_LEASE: Duration = Duration::from_secs(3600);
    pub const TTL: Duration = Duration::from_secs(24 * 3600);
    /// The replayable headers (B14).
    pub const REPLAY_HEADERS: &[&str] = &[
        "content-type",
        "content-encoding",
        "content-language",
        "content-location",
        "location",
        "etag",
        "last-modified",
        "cache-control",
        "vary",
        "link",
    ];
    pub const REPLAYED_HEADER: &str = "Idempotency-Replayed";
    pub const PROBLEM_BASE: &str = "https://idempo.dev/problems/";
    pub const ON_STORE_ERROR: super::OnStoreError = super::OnStoreError::FailClosed;
    pub const PERSIST_TIMEOUT: Duration = Duration::from_secs(10);
    /// How long a 409 tells the client to wait (B9), at most what the lease has left.
    pub const RETRY_AFTER: Duration = Duration::from_secs(1);
    /// How long a duplicate waits for an in-flight original when it states no preference
    /// (B20): not at all, a 409 at once, as the IETF draft has it.
    pub const WAIT: Duration = Duration::ZERO;
    /// The longest wait a `Prefer: wait=N` is granted (B20).
    pub const MAX_WAIT: Duration = Duration::from_secs(10);
    /// How many requests may wait at once (B20); beyond it a duplicate gets its 409 at once.
    pub const MAX_WAITERS: usize = 1000;

    /// Which statuses are stored when no `store_status` is given (B11): everything below
    /// 500 but the transient refusals a retry is meant to get past (authentication, proxy
    /// authentication, timeout, too early, too many requests). A stored 429 would be
    /// replayed for `ttl`, without the `Retry-After` that said when to come back.
    pub fn store_status(status: u16) -> bool {
        status < 500 && !TRANSIENT.contains(&status)
    }

    /// The 4xx statuses never stored by default (B11).
    pub const TRANSIENT: [u16; 5] = [401, 407, 408, 425, 429];
}

/// The longest any duration option may be: a longer one is a mistake, and would overflow
/// the clocks it is added to.
pub const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);

/// Headers that are never replayed whatever `replay_headers` says (B14): per-response
/// values, values recomputed for the replay, and hop-by-hop headers.
pub const NEVER_REPLAYED: &[&str] = &[
    "set-cookie",
    "date",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
];

/// What to do when the store fails at claim time (B16).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnStoreError {
    /// Answer 503 `store-unavailable`; the handler does not run.
    #[default]
    FailClosed,
    /// Run the handler unprotected, and log a warning.
    FailOpen,
}

impl OnStoreError {
    /// The spelling used in option values (`fail_closed`, `fail_open`).
    pub fn as_str(self) -> &'static str {
        match self {
            OnStoreError::FailClosed => "fail_closed",
            OnStoreError::FailOpen => "fail_open",
        }
    }
}

impl FromStr for OnStoreError {
    type Err = ConfigError;

    /// `fail_closed` / `fail_open`, also in camelCase (`failClosed`, JavaScript's spelling).
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        match s {
            "fail_closed" | "failClosed" => Ok(OnStoreError::FailClosed),
            "fail_open" | "failOpen" => Ok(OnStoreError::FailOpen),
            other => {
                Err(ConfigError(format!("on_store_error must be \"fail_closed\" or \"fail_open\", not {other:?}")))
            }
        }
    }
}

/// Which response statuses are stored (B11), when the default will not do.
pub type StoreStatusFn = Arc<dyn Fn(u16) -> bool + Send + Sync>;

/// A configuration that cannot work; the message names the option and says why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid idempotency configuration: {}", self.0)
    }
}

impl std::error::Error for ConfigError {}

/// The validated configuration the engine runs with.
#[derive(Clone)]
pub struct Config {
    pub methods: Vec<Method>,
    pub header: HeaderName,
    /// The header name as configured, for messages (`Idempotency-Key`, not lower case).
    pub header_label: String,
    pub required: bool,
    pub key_rules: KeyRules,
    pub max_request_body: usize,
    pub max_response_body: usize,
    pub lease_ttl: Duration,
    pub max_lease: Duration,
    pub ttl: Duration,
    /// `None`: the default rule ([`defaults::store_status`]).
    pub store_status: Option<StoreStatusFn>,
    pub replay_headers: Vec<HeaderName>,
    pub replayed_header: HeaderName,
    /// The replay header as configured, for reading the options back.
    pub replayed_header_label: String,
    pub on_store_error: OnStoreError,
    pub persist_timeout: Duration,
    pub retry_after: Duration,
    pub wait: Duration,
    pub max_wait: Duration,
    pub max_waiters: usize,
    pub fingerprint_headers: Vec<HeaderName>,
    pub fingerprint_key: FingerprintKey,
    pub problem_base: String,
}

impl Config {
    /// Whether a response with `status` is stored (B11). `verdict` is what a host
    /// language's own `store_status` function answered, when it has one: `Err` if it
    /// failed, and then the default applies (storing is the safe side of at-most-once).
    pub fn stores(&self, status: u16, verdict: Option<Result<bool, String>>) -> bool {
        match verdict {
            Some(Ok(store)) => store,
            Some(Err(error)) => {
                tracing::warn!(target: "idempo", status, error, "store_status failed; using the default rule");
                defaults::store_status(status)
            }
            None => self.store_status.as_ref().map_or_else(|| defaults::store_status(status), |f| f(status)),
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("methods", &self.methods)
            .field("header", &self.header)
            .field("required", &self.required)
            .field("key_rules", &self.key_rules)
            .field("max_request_body", &self.max_request_body)
            .field("max_response_body", &self.max_response_body)
            .field("lease_ttl", &self.lease_ttl)
            .field("max_lease", &self.max_lease)
            .field("ttl", &self.ttl)
            .field("store_status", &self.store_status.as_ref().map(|_| "fn"))
            .field("replay_headers", &self.replay_headers)
            .field("replayed_header", &self.replayed_header)
            .field("on_store_error", &self.on_store_error)
            .field("persist_timeout", &self.persist_timeout)
            .field("retry_after", &self.retry_after)
            .field("wait", &self.wait)
            .field("max_wait", &self.max_wait)
            .field("max_waiters", &self.max_waiters)
            .field("fingerprint_headers", &self.fingerprint_headers)
            .field("fingerprint_key", &self.fingerprint_key)
            .field("problem_base", &self.problem_base)
            .finish()
    }
}

/// Builds an [`Idempotency`](crate::Idempotency). Every option starts at its default
/// ([`defaults`]).
pub struct Builder {
    pub(crate) store: Arc<dyn Store>,
    methods: Vec<String>,
    header: String,
    required: bool,
    max_key_length: usize,
    strict_key_syntax: bool,
    max_request_body: usize,
    max_response_body: usize,
    lease_ttl: Duration,
    max_lease: Duration,
    ttl: Duration,
    store_status: Option<StoreStatusFn>,
    replay_headers: Vec<String>,
    replayed_header: String,
    on_store_error: OnStoreError,
    persist_timeout: Duration,
    retry_after: Duration,
    wait: Duration,
    max_wait: Duration,
    max_waiters: usize,
    fingerprint_headers: Vec<String>,
    fingerprint_secret: Option<Vec<u8>>,
    problem_base: String,
}

fn strings<I: IntoIterator<Item = S>, S: AsRef<str>>(items: I) -> Vec<String> {
    items.into_iter().map(|s| s.as_ref().to_owned()).collect()
}

impl Builder {
    pub(crate) fn new(store: Arc<dyn Store>) -> Builder {
        Builder {
            store,
            methods: strings(defaults::METHODS),
            header: defaults::HEADER.into(),
            required: defaults::REQUIRED,
            max_key_length: defaults::MAX_KEY_LENGTH,
            strict_key_syntax: defaults::STRICT_KEY_SYNTAX,
            max_request_body: defaults::MAX_REQUEST_BODY,
            max_response_body: defaults::MAX_RESPONSE_BODY,
            lease_ttl: defaults::LEASE_TTL,
            max_lease: defaults::MAX_LEASE,
            ttl: defaults::TTL,
            store_status: None,
            replay_headers: strings(defaults::REPLAY_HEADERS),
            replayed_header: defaults::REPLAYED_HEADER.into(),
            on_store_error: defaults::ON_STORE_ERROR,
            persist_timeout: defaults::PERSIST_TIMEOUT,
            retry_after: defaults::RETRY_AFTER,
            wait: defaults::WAIT,
            max_wait: defaults::MAX_WAIT,
            max_waiters: defaults::MAX_WAITERS,
            fingerprint_headers: Vec::new(),
            fingerprint_secret: None,
            problem_base: defaults::PROBLEM_BASE.into(),
        }
    }

    /// Covered methods (B1), matched without regard to case. Default `POST`, `PATCH`.
    pub fn methods<I: IntoIterator<Item = S>, S: AsRef<str>>(mut self, methods: I) -> Self {
        self.methods = strings(methods);
        self
    }

    /// The key header's name (B2). Default `Idempotency-Key`.
    pub fn header(mut self, name: impl AsRef<str>) -> Self {
        self.header = name.as_ref().to_owned();
        self
    }

    /// Answer 400 `missing-key` when a covered request has no key (B4). Default false.
    pub fn required(mut self, required: bool) -> Self {
        self.required = required;
        self
    }

    /// Longest accepted key, in characters after unescaping (B3). Default 255.
    pub fn max_key_length(mut self, n: usize) -> Self {
        self.max_key_length = n;
        self
    }

    /// Accept only RFC 9651 quoted keys, not bare ones (B2). Default false.
    pub fn strict_key_syntax(mut self, strict: bool) -> Self {
        self.strict_key_syntax = strict;
        self
    }

    /// Largest request body buffered for a keyed request (B7). Default 1 MiB.
    pub fn max_request_body(mut self, bytes: usize) -> Self {
        self.max_request_body = bytes;
        self
    }

    /// Largest response body stored for replay (B12). Default 1 MiB.
    pub fn max_response_body(mut self, bytes: usize) -> Self {
        self.max_response_body = bytes;
        self
    }

    /// How long a claim lasts without renewal (B10). Default 60 s.
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl;
        self
    }

    /// The longest a claim is kept alive by renewal (B10). Default 1 h.
    pub fn max_lease(mut self, max: Duration) -> Self {
        self.max_lease = max;
        self
    }

    /// How long a completed response is kept (B11). Default 24 h.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Which statuses are stored (B11). Default: below 500, except the transient 401, 407,
    /// 408, 425 and 429.
    pub fn store_status(mut self, f: impl Fn(u16) -> bool + Send + Sync + 'static) -> Self {
        self.store_status = Some(Arc::new(f));
        self
    }

    /// Response headers kept and replayed (B14). `set-cookie`, `date`, `content-length`,
    /// `transfer-encoding` and hop-by-hop headers are dropped even if listed.
    pub fn replay_headers<I: IntoIterator<Item = S>, S: AsRef<str>>(mut self, names: I) -> Self {
        self.replay_headers = strings(names);
        self
    }

    /// The header marking a replay (B14). Default `Idempotency-Replayed`.
    pub fn replayed_header(mut self, name: impl AsRef<str>) -> Self {
        self.replayed_header = name.as_ref().to_owned();
        self
    }

    /// Fail closed (503, default) or open when the store fails at claim (B16).
    pub fn on_store_error(mut self, policy: OnStoreError) -> Self {
        self.on_store_error = policy;
        self
    }

    /// How long a failed completion is retried in the background (B17). Default 10 s.
    pub fn persist_timeout(mut self, timeout: Duration) -> Self {
        self.persist_timeout = timeout;
        self
    }

    /// The `Retry-After` of a 409 for a key in flight (B9), in whole seconds (at least 1),
    /// never more than what the lease has left. Default 1 s.
    pub fn retry_after(mut self, after: Duration) -> Self {
        self.retry_after = after;
        self
    }

    /// How long a duplicate of a request still in flight waits for it when the request
    /// states no `Prefer: wait=N` (B20), at most `max_wait`. Default 0: a 409 at once.
    pub fn wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    /// The longest wait granted, to a `Prefer: wait=N` or by `wait` (B20). Default 10 s;
    /// 0 turns waiting off whatever a request prefers.
    pub fn max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = max_wait;
        self
    }

    /// How many requests may wait at once in this engine (B20); a duplicate beyond it gets
    /// its 409 at once. Default 1 000.
    pub fn max_waiters(mut self, max_waiters: usize) -> Self {
        self.max_waiters = max_waiters;
        self
    }

    /// Request headers that are part of the fingerprint (B6). Default none.
    pub fn fingerprint_headers<I: IntoIterator<Item = S>, S: AsRef<str>>(mut self, names: I) -> Self {
        self.fingerprint_headers = strings(names);
        self
    }

    /// Key the fingerprint with HMAC-SHA256 (B6), so stored fingerprints reveal nothing
    /// about request bodies. Default none (plain SHA-256).
    pub fn fingerprint_secret(mut self, secret: impl AsRef<[u8]>) -> Self {
        self.fingerprint_secret = Some(secret.as_ref().to_vec());
        self
    }

    /// Prefix of every problem `type` URI (B15). Default `https://idempo.dev/problems/`.
    pub fn problem_base(mut self, base: impl AsRef<str>) -> Self {
        self.problem_base = base.as_ref().to_owned();
        self
    }

    /// Validate every option.
    pub(crate) fn validate(self) -> Result<(Arc<dyn Store>, Config), ConfigError> {
        let header_name = |option: &str, name: &str| {
            HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| ConfigError(format!("{option}: {name:?} is not a valid header name")))
        };
        let mut methods = Vec::with_capacity(self.methods.len());
        for m in &self.methods {
            let method = Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                .map_err(|_| ConfigError(format!("methods: {m:?} is not a valid HTTP method")))?;
            methods.push(method);
        }
        let header = header_name("header", &self.header)?;
        let replayed_header = header_name("replayed_header", &self.replayed_header)?;
        let mut replay_headers = Vec::new();
        for name in &self.replay_headers {
            let name = header_name("replay_headers", name)?;
            if !NEVER_REPLAYED.contains(&name.as_str()) && !replay_headers.contains(&name) {
                replay_headers.push(name);
            }
        }
        let fingerprint_headers = self
            .fingerprint_headers
            .iter()
            .map(|n| header_name("fingerprint_headers", n))
            .collect::<Result<Vec<_>, _>>()?;
        if self.max_key_length == 0 {
            return Err(ConfigError("max_key_length must be at least 1".into()));
        }
        if self.max_response_body > u32::MAX as usize {
            return Err(ConfigError("max_response_body must be below 4 GiB".into()));
        }
        for (option, d) in [
            ("lease_ttl", self.lease_ttl),
            ("max_lease", self.max_lease),
            ("ttl", self.ttl),
            ("persist_timeout", self.persist_timeout),
            ("retry_after", self.retry_after),
            ("wait", self.wait),
            ("max_wait", self.max_wait),
        ] {
            if d > MAX_DURATION {
                return Err(ConfigError(format!("{option} must be at most 366 days")));
            }
        }
        if self.lease_ttl < Duration::from_millis(3) {
            return Err(ConfigError("lease_ttl must be at least 3 ms".into()));
        }
        if self.max_lease < self.lease_ttl {
            return Err(ConfigError("max_lease must be at least lease_ttl".into()));
        }
        if self.ttl.is_zero() {
            return Err(ConfigError("ttl must be above zero".into()));
        }
        if self.wait > self.max_wait {
            return Err(ConfigError("wait must be at most max_wait".into()));
        }
        let config = Config {
            methods,
            header,
            header_label: self.header,
            required: self.required,
            key_rules: KeyRules { max_len: self.max_key_length, strict: self.strict_key_syntax },
            max_request_body: self.max_request_body,
            max_response_body: self.max_response_body,
            lease_ttl: self.lease_ttl,
            max_lease: self.max_lease,
            ttl: self.ttl,
            store_status: self.store_status,
            replay_headers,
            replayed_header,
            replayed_header_label: self.replayed_header,
            on_store_error: self.on_store_error,
            persist_timeout: self.persist_timeout,
            retry_after: self.retry_after,
            wait: self.wait,
            max_wait: self.max_wait,
            max_waiters: self.max_waiters,
            fingerprint_headers,
            fingerprint_key: FingerprintKey::new(self.fingerprint_secret.as_deref()),
            problem_base: self.problem_base,
        };
        if self.store.encrypts() && !config.fingerprint_key.is_keyed() {
            warn_unkeyed_fingerprints();
        }
        Ok((self.store, config))
    }
}

/// Encrypted records next to plain SHA-256 fingerprints: a record stays sealed, but its
/// fingerprint lets whoever reads the store test guesses of a low-entropy body (an amount,
/// a card's last digits) offline. Said once per process.
fn warn_unkeyed_fingerprints() {
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        tracing::warn!(
            target: "idempo",
            "records are encrypted (encryption_keys) but fingerprints are plain SHA-256 of the request: \
             whoever reads the store can confirm a guessed request body against them; \
             set fingerprint_secret to key them with HMAC"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Idempotency, MemoryStore};

    #[test]
    fn b11_transient_refusals_are_not_stored_by_default() {
        let idem = Idempotency::builder(MemoryStore::new()).build();
        for status in [401, 407, 408, 425, 429, 500, 503] {
            assert!(!idem.config().stores(status, None), "{status} is stored");
        }
        for status in [200, 201, 204, 301, 400, 403, 404, 409, 410, 422, 499] {
            assert!(idem.config().stores(status, None), "{status} is not stored");
        }
    }

    #[test]
    fn defaults_are_the_documented_defaults() {
        let idem = Idempotency::builder(MemoryStore::new()).build();
        let c = idem.config();
        assert_eq!(c.methods, [Method::POST, Method::PATCH]);
        assert_eq!(c.header, "idempotency-key");
        assert_eq!(c.header_label, "Idempotency-Key");
        assert!(!c.required);
        assert_eq!((c.key_rules.max_len, c.key_rules.strict), (255, false));
        assert_eq!((c.max_request_body, c.max_response_body), (1 << 20, 1 << 20));
        assert_eq!(c.lease_ttl, Duration::from_secs(60));
        assert_eq!(c.max_lease, Duration::from_secs(3600));
        assert_eq!(c.ttl, Duration::from_secs(86_400));
        assert!(c.stores(499, None) && !c.stores(500, None));
        let names: Vec<&str> = c.replay_headers.iter().map(HeaderName::as_str).collect();
        assert_eq!(names, defaults::REPLAY_HEADERS);
        assert_eq!(c.replayed_header, "idempotency-replayed");
        assert_eq!(c.on_store_error, OnStoreError::FailClosed);
        assert_eq!(c.persist_timeout, Duration::from_secs(10));
        assert!(c.fingerprint_headers.is_empty());
        assert_eq!(c.problem_base, defaults::PROBLEM_BASE);
    }

    #[test]
    fn invalid_options_are_named() {
        let b = || Idempotency::builder(MemoryStore::new());
        let err = |b: Builder| b.try_build().unwrap_err().to_string();
        assert!(err(b().header("bad header")).contains("header: \"bad header\""));
        assert!(err(b().methods(["PO ST"])).contains("methods"));
        assert!(err(b().replayed_header("")).contains("replayed_header"));
        assert!(err(b().fingerprint_headers(["x y"])).contains("fingerprint_headers"));
        assert!(err(b().max_key_length(0)).contains("max_key_length"));
        assert!(err(b().lease_ttl(Duration::ZERO)).contains("lease_ttl"));
        assert!(err(b().lease_ttl(Duration::from_secs(10)).max_lease(Duration::from_secs(5))).contains("max_lease"));
        assert!(err(b().ttl(Duration::ZERO)).contains("ttl"));
        // A duration that would overflow a clock is refused, not a panic later.
        assert!(err(b().ttl(Duration::MAX)).contains("ttl must be at most 366 days"));
        assert!(err(b().persist_timeout(Duration::from_secs(1 << 40))).contains("persist_timeout"));
        // Lower-case methods are accepted; never-replayed headers are dropped from the list.
        let idem = b().methods(["put"]).replay_headers(["Set-Cookie", "ETag", "etag"]).build();
        assert_eq!(idem.config().methods, [Method::PUT]);
        assert_eq!(idem.config().replay_headers, [http::header::ETAG]);
    }

    #[test]
    fn b11_a_failed_host_verdict_falls_back_to_the_default_rule() {
        let c = Idempotency::builder(MemoryStore::new()).store_status(|s| s == 201).build();
        assert!(c.config().stores(201, None) && !c.config().stores(200, None));
        assert!(!c.config().stores(201, Some(Ok(false))), "a host function's answer wins");
        assert!(c.config().stores(200, Some(Err("boom".into()))), "a failed host function: the default (< 500)");
        assert!(!c.config().stores(503, Some(Err("boom".into()))));
    }

    #[test]
    fn b16_on_store_error_spellings() {
        for (s, want) in [
            ("fail_closed", OnStoreError::FailClosed),
            ("failClosed", OnStoreError::FailClosed),
            ("fail_open", OnStoreError::FailOpen),
            ("failOpen", OnStoreError::FailOpen),
        ] {
            assert_eq!(s.parse::<OnStoreError>(), Ok(want));
        }
        assert!("open".parse::<OnStoreError>().unwrap_err().to_string().contains("\"fail_closed\" or \"fail_open\""));
    }
}
