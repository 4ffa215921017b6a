//! A store that wraps a real one and fails on demand, to drive the store-error rules
//! (B16–B18) through the layer. The wrapped store does all the real work.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use idempo::fingerprint::{Fingerprint, RecordId};
use idempo::record::Record;
use idempo::{Claim, Completion, Release, Renewal, Store, StoreError, Token};

#[derive(Default)]
pub struct Faults {
    /// Every claim fails as if the store were unreachable.
    pub claim_down: AtomicBool,
    /// Every claim finds an entry whose bytes cannot be decoded.
    pub corrupt: AtomicBool,
    /// The next this-many completions fail.
    pub complete_failures: AtomicUsize,
    /// Renewals are swallowed (reported renewed, not sent), so the lease runs out.
    pub drop_renewals: AtomicBool,
    /// Every operation fails: the store is away.
    pub down: AtomicBool,
}

pub struct Faulty {
    pub inner: Arc<dyn Store>,
    pub faults: Arc<Faults>,
}

impl Faulty {
    pub fn wrap(inner: Arc<dyn Store>) -> (Arc<dyn Store>, Arc<Faults>) {
        let faults = Arc::new(Faults::default());
        (Arc::new(Faulty { inner, faults: faults.clone() }), faults)
    }
}

fn down() -> StoreError {
    StoreError::unavailable(std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "injected: store down"))
}

#[async_trait]
impl Store for Faulty {
    async fn claim(&self, id: &RecordId, fingerprint: &Fingerprint, lease_ttl: Duration) -> Result<Claim, StoreError> {
        if self.faults.claim_down.load(Ordering::SeqCst) || self.faults.down.load(Ordering::SeqCst) {
            return Err(down());
        }
        if self.faults.corrupt.load(Ordering::SeqCst) {
            // The same path a real store takes when the bytes it read do not decode.
            return Err(Record::decode(b"\x00garbage\xff").map(|_| ()).unwrap_err().into());
        }
        self.inner.claim(id, fingerprint, lease_ttl).await
    }

    async fn renew(&self, id: &RecordId, token: Token, lease_ttl: Duration) -> Result<Renewal, StoreError> {
        if self.faults.down.load(Ordering::SeqCst) {
            return Err(down());
        }
        if self.faults.drop_renewals.load(Ordering::SeqCst) {
            return Ok(Renewal::Renewed);
        }
        self.inner.renew(id, token, lease_ttl).await
    }

    async fn complete(
        &self,
        id: &RecordId,
        fingerprint: &Fingerprint,
        token: Token,
        record: &Record,
        ttl: Duration,
    ) -> Result<Completion, StoreError> {
        if self.faults.down.load(Ordering::SeqCst) {
            return Err(down());
        }
        let left = self.faults.complete_failures.load(Ordering::SeqCst);
        if left > 0 {
            self.faults.complete_failures.store(left - 1, Ordering::SeqCst);
            return Err(down());
        }
        self.inner.complete(id, fingerprint, token, record, ttl).await
    }

    async fn release(&self, id: &RecordId, token: Token) -> Result<Release, StoreError> {
        if self.faults.down.load(Ordering::SeqCst) {
            return Err(down());
        }
        self.inner.release(id, token).await
    }
}
