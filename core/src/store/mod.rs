//! The store contract (docs/RULES.md, "Stores") and the in-memory store.
//!
//! A store keeps one entry per [`RecordId`]: either an in-flight claim (a fencing token
//! and the claimant's fingerprint, expiring after the lease) or a completed [`Record`]
//! (expiring after the ttl). Every operation is atomic and, for a networked store, one
//! round trip. Expiry is judged by the store's own clock.

mod memory;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "postgres")]
mod postgres_events;
#[cfg(feature = "postgres")]
mod postgres_pipe;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "redis")]
mod redis_events;
mod token_rng;

pub(crate) use token_rng::fill as fill_random;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

pub use memory::{
    DEFAULT_MAX_BYTES, DEFAULT_MAX_ENTRIES, DEFAULT_SCOPE_SHARE, MemoryLimits, MemoryStore, MemoryStoreBuilder,
};
#[cfg(feature = "postgres")]
pub use postgres::{DEFAULT_SWEEP_BATCH, DEFAULT_SWEEP_INTERVAL, DEFAULT_TABLE, PostgresStore};
#[cfg(feature = "redis")]
pub use redis::{DEFAULT_PREFIX, RedisStore, check_prefix};

use crate::fingerprint::{Fingerprint, RecordId};
use crate::record::{DecodeError, Record};
pub use crate::wake::{Wakers, Watch};

/// What a networked store trusts for TLS beyond what its URL says (B22): `rediss://` and
/// PostgreSQL's `sslmode` choose TLS, this chooses whose certificates it believes.
#[cfg(any(feature = "redis", feature = "postgres"))]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tls {
    /// A PEM file of the CA certificates to trust instead of the system's. For PostgreSQL,
    /// without an `sslmode` in the URL it also means `verify-full`.
    pub ca_file: Option<std::path::PathBuf>,
}

#[cfg(any(feature = "redis", feature = "postgres"))]
impl Tls {
    /// Trust the CA certificates in `path` (PEM).
    pub fn ca_file(path: impl Into<std::path::PathBuf>) -> Tls {
        Tls { ca_file: Some(path.into()) }
    }

    /// The CA file's bytes, or an error that says which file could not be read.
    pub(crate) fn ca_pem(&self) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(path) = &self.ca_file else { return Ok(None) };
        std::fs::read(path)
            .map(Some)
            .map_err(|e| StoreError::unavailable(format!("cannot read ca_file {}: {e}", path.display())))
    }
}

/// How long an expired claim that nobody took over stays its holder's: the holder may
/// still renew, complete or release it (a completion held up by a store outage longer than
/// the lease lands, B17), until a new claim takes the id or this much time has passed.
pub const LATE_COMPLETION: Duration = Duration::from_secs(60);

/// A fencing token: unique per claim, so a holder whose lease was taken over cannot touch
/// the new owner's entry (B10).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Token(pub u128);

impl Token {
    /// A random token. Tokens must be unique across processes sharing a store.
    pub fn random() -> Token {
        let mut b = [0u8; 16];
        if token_rng::fill(&mut b).is_err() {
            // No OS randomness: fall back to time and a process-wide counter, still unique
            // within this process and very unlikely to collide across processes.
            return Token::fallback();
        }
        Token(u128::from_be_bytes(b))
    }

    fn fallback() -> Token {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        Token(((nanos as u128) << 64) | ((std::process::id() as u128) << 32) | n as u128)
    }

    pub fn to_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token({:08x}…)", (self.0 >> 96) as u32)
    }
}

/// Whose a key is: the namespace of B5 its record id was made in. A store that bounds
/// what one owner may hold (the memory store, B21) keeps owners apart with it; the
/// others need only the id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Owner<'a> {
    /// The one global namespace.
    Global,
    /// A scope the application named.
    Scope(&'a str),
    /// The caller holding this credential (the SHA-256 of its `Authorization`).
    Credential(&'a [u8; 32]),
}

/// What a claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The id was absent or expired: the caller now owns it.
    Claimed { token: Token },
    /// Another claim holds the id for `lease_left` more.
    InFlight { fingerprint: Fingerprint, lease_left: Duration },
    /// A response is stored; shared, so a store that keeps records in memory hands out
    /// the one it holds rather than a copy.
    Completed { fingerprint: Fingerprint, record: Arc<Record> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renewal {
    Renewed,
    LeaseLost,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    Stored,
    LeaseLost,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    Released,
    LeaseLost,
}

/// A store failure. The engine answers it per `on_store_error` (B16) and never panics.
#[derive(Debug)]
pub enum StoreError {
    /// The store could not be reached or refused the operation.
    Unavailable(Box<dyn std::error::Error + Send + Sync>),
    /// An entry exists but cannot be decoded (B18).
    Corrupt(DecodeError),
    /// The store is at capacity and nothing could be reclaimed.
    Full,
    /// A record could not be sealed, or a sealed one could not be opened (B24): the error
    /// names the record's key id.
    Encryption(crate::encryption::EncryptionError),
}

impl StoreError {
    pub fn unavailable(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> StoreError {
        StoreError::Unavailable(e.into())
    }

    /// Whether the store answered with an entry for the id that cannot be read: a corrupt
    /// record (B18), or an encrypted one that does not open (B24). Such an id has been
    /// claimed before, so it is never run unprotected, whatever `on_store_error` says.
    pub fn is_unreadable_record(&self) -> bool {
        use crate::encryption::EncryptionError as E;
        match self {
            StoreError::Corrupt(_) => true,
            StoreError::Encryption(e) => matches!(e, E::UnknownKey { .. } | E::NoKeys { .. } | E::DoesNotOpen { .. }),
            StoreError::Unavailable(_) | StoreError::Full => false,
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Unavailable(e) => write!(f, "idempotency store unavailable: {e}"),
            StoreError::Corrupt(e) => write!(f, "idempotency store holds a corrupt entry: {e}"),
            StoreError::Full => f.write_str("idempotency store is full (raise max_entries or use a durable store)"),
            StoreError::Encryption(e) => write!(f, "idempotency store encryption: {e}"),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Unavailable(e) => Some(e.as_ref()),
            StoreError::Corrupt(e) => Some(e),
            StoreError::Full => None,
            StoreError::Encryption(e) => Some(e),
        }
    }
}

impl From<DecodeError> for StoreError {
    fn from(e: DecodeError) -> Self {
        StoreError::Corrupt(e)
    }
}

/// The store contract. Implementations must pass [`crate::testing::store_contract`].
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Claim `id` for `lease_ttl`, atomically: of concurrent claims on an absent or
    /// expired id exactly one returns [`Claim::Claimed`].
    async fn claim(&self, id: &RecordId, fingerprint: &Fingerprint, lease_ttl: Duration) -> Result<Claim, StoreError>;

    /// [`Store::claim`] for a key of `owner`'s. The engine claims through this; a store
    /// that keeps owners apart (B21) overrides it, the others need only the id.
    async fn claim_for(
        &self,
        owner: Owner<'_>,
        id: &RecordId,
        fingerprint: &Fingerprint,
        lease_ttl: Duration,
    ) -> Result<Claim, StoreError> {
        let _ = owner;
        self.claim(id, fingerprint, lease_ttl).await
    }

    /// Whether [`Store::claim_in_process`] and [`Store::complete_in_process`] answer (the
    /// memory store). A binding polls an operation on its own thread only then: polling a
    /// network store's operation there starts its I/O there, and the wake-ups of the
    /// runtime's threads it costs are dearer than the poll saves.
    fn in_process(&self) -> bool {
        false
    }

    /// [`Store::claim_for`] answered at once, by a store that keeps its records in this
    /// process and so never waits on I/O (the memory store). `None`, the default, means
    /// only `claim_for` can answer. The engine asks this first: it spares such a store
    /// the boxed future of an async call on every request.
    fn claim_in_process(
        &self,
        owner: Owner<'_>,
        id: &RecordId,
        fingerprint: &Fingerprint,
        lease_ttl: Duration,
    ) -> Option<Result<Claim, StoreError>> {
        let _ = (owner, id, fingerprint, lease_ttl);
        None
    }

    /// [`Store::complete`] answered at once, as [`Store::claim_in_process`].
    fn complete_in_process(
        &self,
        id: &RecordId,
        fingerprint: &Fingerprint,
        token: Token,
        record: &Record,
        ttl: Duration,
    ) -> Option<Result<Completion, StoreError>> {
        let _ = (id, fingerprint, token, record, ttl);
        None
    }

    /// Extend the claim held with `token` to `lease_ttl` from now. Like `complete` and
    /// `release`, fenced by the token alone: a claim whose lease expired is still its
    /// holder's until a new claim takes it (or [`LATE_COMPLETION`] passes).
    async fn renew(&self, id: &RecordId, token: Token, lease_ttl: Duration) -> Result<Renewal, StoreError>;

    /// Replace the claim held with `token` by `record`, kept for `ttl`. `fingerprint` is the
    /// claim's: a store that encrypts records binds the two together (B24).
    async fn complete(
        &self,
        id: &RecordId,
        fingerprint: &Fingerprint,
        token: Token,
        record: &Record,
        ttl: Duration,
    ) -> Result<Completion, StoreError>;

    /// Drop the claim held with `token`, so the next request executes.
    async fn release(&self, id: &RecordId, token: Token) -> Result<Release, StoreError>;

    /// Watch `id` for its completion or release, for a request waiting on it (B20): the
    /// watch must see every completion or release that happens after this returns, in this
    /// process or any other. `None` when the store cannot tell (the default): the waiter
    /// then re-reads the record after a bounded back-off alone.
    async fn watch(&self, id: &RecordId) -> Option<Watch> {
        let _ = id;
        None
    }

    /// Whether the records this store writes are encrypted (B24). The engine warns once when
    /// they are and fingerprints are not keyed.
    fn encrypts(&self) -> bool {
        false
    }
}
