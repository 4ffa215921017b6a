//! The in-memory store: one process, no services, for development, tests and single-node
//! deployments.
//!
//! Sharded by record id (no global lock), bounded by `max_entries`. Expired entries are
//! dropped when met, and swept from a shard when it fills or every few hundred inserts.
//! When a shard is full of live entries, the completed record closest to expiry is evicted
//! (a cache's choice: the alternative, refusing new keys, lets one client deny service to
//! all); in-flight claims are never evicted, and a shard full of them refuses new claims
//! with [`StoreError::Full`].

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::{Claim, Completion, LATE_COMPLETION, Release, Renewal, Store, StoreError, Token};
use crate::fingerprint::{Fingerprint, RecordId};
use crate::record::Record;

const SHARDS: usize = 64;
const SWEEP_EVERY: u32 = 512;
/// The default bound on entries.
pub const DEFAULT_MAX_ENTRIES: usize = 100_000;

/// A sharded, bounded, in-process store.
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

struct Inner {
    shards: Box<[Mutex<Shard>]>,
    per_shard: usize,
}

#[derive(Default)]
struct Shard {
    map: HashMap<RecordId, Entry, BuildHasherDefault<IdHasher>>,
    inserts: u32,
}

struct Entry {
    expires: Instant,
    state: State,
}

enum State {
    InFlight { token: Token, fingerprint: Fingerprint },
    Completed { fingerprint: Fingerprint, record: Arc<Record> },
}

/// Record ids are already uniform hashes: use their first bytes as the hash.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8).take(1) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.0 ^= u64::from_le_bytes(b);
        }
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new()
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore").field("max_entries", &(self.inner.per_shard * SHARDS)).finish()
    }
}

impl MemoryStore {
    /// A store holding at most 100 000 entries.
    pub fn new() -> MemoryStore {
        MemoryStore::with_max_entries(DEFAULT_MAX_ENTRIES)
    }

    /// A store holding at most `max_entries` entries (rounded up to a multiple of the
    /// shard count).
    pub fn with_max_entries(max_entries: usize) -> MemoryStore {
        let per_shard = max_entries.div_ceil(SHARDS).max(1);
        let shards = (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect();
        MemoryStore { inner: Arc::new(Inner { shards, per_shard }) }
    }

    /// Live entries (in flight or completed), for tests and metrics.
    pub fn len(&self) -> usize {
        let now = Instant::now();
        self.inner.shards.iter().map(|s| lock(s).map.values().filter(|e| e.expires > now).count()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn shard(&self, id: &RecordId) -> MutexGuard<'_, Shard> {
        // Bytes 8.. choose the shard, bytes ..8 the bucket within it.
        let i = u64::from_le_bytes([id.0[8], id.0[9], id.0[10], id.0[11], id.0[12], id.0[13], id.0[14], id.0[15]]);
        lock(&self.inner.shards[(i % SHARDS as u64) as usize])
    }

    /// [`Store::claim`] without a future: the memory store never waits.
    pub fn claim_now(
        &self,
        id: &RecordId,
        fingerprint: &Fingerprint,
        lease_ttl: Duration,
    ) -> Result<Claim, StoreError> {
        let now = Instant::now();
        let mut shard = self.shard(id);
        if let Some(entry) = shard.map.get(id)
            && entry.expires > now
        {
            return Ok(match &entry.state {
                State::InFlight { fingerprint, .. } => {
                    Claim::InFlight { fingerprint: *fingerprint, lease_left: entry.expires - now }
                }
                State::Completed { fingerprint, record } => {
                    Claim::Completed { fingerprint: *fingerprint, record: Record::clone(record) }
                }
            });
        }
        let token = Token::random();
        let entry = Entry { expires: now + lease_ttl, state: State::InFlight { token, fingerprint: *fingerprint } };
        shard.insert(*id, entry, self.inner.per_shard, now)?;
        Ok(Claim::Claimed { token })
    }

    /// [`Store::renew`] without a future.
    pub fn renew_now(&self, id: &RecordId, token: Token, lease_ttl: Duration) -> Renewal {
        let now = Instant::now();
        let mut shard = self.shard(id);
        match shard.held(id, token, now) {
            Some(entry) => {
                entry.expires = now + lease_ttl;
                Renewal::Renewed
            }
            None => Renewal::LeaseLost,
        }
    }

    /// [`Store::complete`] without a future.
    pub fn complete_now(&self, id: &RecordId, token: Token, record: &Record, ttl: Duration) -> Completion {
        let now = Instant::now();
        let mut shard = self.shard(id);
        match shard.held(id, token, now) {
            Some(entry) => {
                let State::InFlight { fingerprint, .. } = entry.state else { return Completion::LeaseLost };
                entry.state = State::Completed { fingerprint, record: Arc::new(record.clone()) };
                entry.expires = now + ttl;
                Completion::Stored
            }
            None => Completion::LeaseLost,
        }
    }

    /// [`Store::release`] without a future.
    pub fn release_now(&self, id: &RecordId, token: Token) -> Release {
        let now = Instant::now();
        let mut shard = self.shard(id);
        if shard.held(id, token, now).is_some() {
            shard.map.remove(id);
            Release::Released
        } else {
            Release::LeaseLost
        }
    }
}

fn lock(m: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    // Nothing panics while a shard is locked; if something ever did, the map is still
    // consistent (every mutation is a single insert/remove/assignment).
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Entry {
    /// Whether the entry still counts: a completed record until it expires, a claim until
    /// [`LATE_COMPLETION`] after (its holder may still finish it).
    fn kept(&self, now: Instant) -> bool {
        match self.state {
            State::Completed { .. } => self.expires > now,
            State::InFlight { .. } => self.expires + LATE_COMPLETION > now,
        }
    }
}

impl Shard {
    /// The in-flight entry for `id` if `token` holds it: its lease may have expired, as
    /// long as no new claim took it over.
    fn held(&mut self, id: &RecordId, token: Token, now: Instant) -> Option<&mut Entry> {
        self.map
            .get_mut(id)
            .filter(|e| e.kept(now) && matches!(e.state, State::InFlight { token: t, .. } if t == token))
    }

    /// Make room in a full shard by evicting the completed records closest to expiry: an
    /// eighth of the shard at once, so a full shard pays one sort per many inserts rather
    /// than one scan per insert.
    fn evict_completed(&mut self, cap: usize) -> Result<(), StoreError> {
        let mut completed: Vec<(Instant, RecordId)> = self
            .map
            .iter()
            .filter(|(_, e)| matches!(e.state, State::Completed { .. }))
            .map(|(k, e)| (e.expires, *k))
            .collect();
        if completed.is_empty() {
            return Err(StoreError::Full);
        }
        let n = (cap / 8).clamp(1, completed.len());
        completed.select_nth_unstable_by_key(n - 1, |(expires, _)| *expires);
        for (_, k) in &completed[..n] {
            self.map.remove(k);
        }
        tracing::debug!(target: "idempo", evicted = n, "memory store full: evicted the completed records closest to expiry");
        Ok(())
    }

    fn insert(&mut self, id: RecordId, entry: Entry, cap: usize, now: Instant) -> Result<(), StoreError> {
        self.inserts = self.inserts.wrapping_add(1);
        if self.inserts.is_multiple_of(SWEEP_EVERY) {
            self.map.retain(|_, e| e.kept(now));
        }
        if !self.map.contains_key(&id) && self.map.len() >= cap {
            // Full: expired claims go too, late completion or not.
            self.map.retain(|_, e| e.expires > now);
            if self.map.len() >= cap {
                self.evict_completed(cap)?;
            }
        }
        self.map.insert(id, entry);
        Ok(())
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn claim(&self, id: &RecordId, fingerprint: &Fingerprint, lease_ttl: Duration) -> Result<Claim, StoreError> {
        self.claim_now(id, fingerprint, lease_ttl)
    }

    async fn renew(&self, id: &RecordId, token: Token, lease_ttl: Duration) -> Result<Renewal, StoreError> {
        Ok(self.renew_now(id, token, lease_ttl))
    }

    async fn complete(
        &self,
        id: &RecordId,
        token: Token,
        record: &Record,
        ttl: Duration,
    ) -> Result<Completion, StoreError> {
        Ok(self.complete_now(id, token, record, ttl))
    }

    async fn release(&self, id: &RecordId, token: Token) -> Result<Release, StoreError> {
        Ok(self.release_now(id, token))
    }
}
