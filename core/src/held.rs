//! The claims this process holds, with their fingerprints (B10, B17).
//!
//! A duplicate that reaches the process holding its key is answered here (409, or 422 for
//! a different request) without asking the store. Beyond the saved round trip, this is
//! what keeps a short lease safe through a store outage: while the store is away the
//! holder cannot renew, its lease lapses in the store, and once the store is back the
//! first request to reach it could take the key over and run the handler again, before
//! the holder's completion, retried with back-off, lands. A retry sent to the same process
//! never gets that far. (One sent to another process can; hence a lease well above the
//! store's worst outage, docs/RULES.md B17.)

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::fingerprint::{Fingerprint, RecordId};
use crate::id_hash::IdHash;
use crate::wake::{Wakers, Watch};

const SHARDS: usize = 64;

pub(crate) struct Held {
    shards: Box<[Mutex<HashMap<RecordId, Fingerprint, IdHash>>]>,
    /// Requests of this process waiting for a claim it holds (B20), woken when the claim's
    /// fate is settled: its record is then in the store (a store's own event may come
    /// before that, while this process still holds the id).
    released: Arc<Wakers>,
}

impl Default for Held {
    fn default() -> Self {
        Held { shards: (0..SHARDS).map(|_| Mutex::default()).collect(), released: Arc::default() }
    }
}

impl Held {
    fn shard(&self, id: &RecordId) -> MutexGuard<'_, HashMap<RecordId, Fingerprint, IdHash>> {
        // Record ids are hashes: any byte picks a shard evenly. A panic elsewhere while
        // the lock was held leaves a map that is still whole.
        self.shards[id.0[0] as usize % SHARDS].lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The fingerprint of the request holding `id` in this process, if one does.
    pub(crate) fn get(&self, id: &RecordId) -> Option<Fingerprint> {
        self.shard(id).get(id).copied()
    }

    pub(crate) fn insert(&self, id: RecordId, fingerprint: Fingerprint) {
        self.shard(&id).insert(id, fingerprint);
    }

    pub(crate) fn remove(&self, id: &RecordId) {
        self.shard(id).remove(id);
        self.released.wake(id);
    }

    /// Wait for this process to let `id` go.
    pub(crate) fn watch(&self, id: &RecordId) -> Watch {
        self.released.watch(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_until_removed() {
        let held = Held::default();
        let (id, fp) = (RecordId([7; 32]), Fingerprint([1; 32]));
        assert_eq!(held.get(&id), None);
        held.insert(id, fp);
        assert_eq!(held.get(&id), Some(fp));
        assert_eq!(held.get(&RecordId([8; 32])), None);
        held.remove(&id);
        assert_eq!(held.get(&id), None);
    }
}
