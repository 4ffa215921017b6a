//! The in-memory store: one process, no services, for development, tests and single-node
//! deployments.
//!
//! Sharded by record id (no global lock), bounded by `max_entries` and `max_bytes` (B21).
//! The shard and the bucket of an id are chosen with a per-process random secret, so no
//! caller can compute which of its keys share a shard with someone else's.
//!
//! Every entry belongs to an owner, the namespace of B5 (a scope, a credential, or the
//! global one). An owner holds at most `max_entries_per_scope` entries and its share of
//! `max_bytes`. When an owner or the store is full, expired entries are swept, then the
//! owner's own completed records closest to expiry are evicted; another owner's live
//! entry never is, because its retry would run the handler again (promise 1). An owner
//! that still has no room gets [`StoreError::Full`] for a new key (503); a completion that
//! finds no room for its body is stored without it (B12, omitted), so the key still
//! replays and never runs twice.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::{Claim, Completion, LATE_COMPLETION, Owner, Release, Renewal, Store, StoreError, Token, Wakers, Watch};
use crate::fingerprint::{Fingerprint, RecordId};
use crate::id_hash::IdHash;
use crate::record::Record;
use crate::throttle::Throttle;

const SHARDS: usize = 64;
const SWEEP_EVERY: u32 = 512;
/// How often a full store may sweep every shard for expired entries: a store full of live
/// entries answers a new owner's claim at once rather than scanning on each.
const FULL_SWEEP_EVERY: Duration = Duration::from_millis(100);
/// The default bound on entries.
pub const DEFAULT_MAX_ENTRIES: usize = 100_000;
/// The default bound on stored record bytes (64 MiB).
pub const DEFAULT_MAX_BYTES: usize = 64 << 20;
/// The default share of the store one owner may hold: a tenth.
pub const DEFAULT_SCOPE_SHARE: usize = 10;

/// A sharded, bounded, in-process store.
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

/// The bounds of a [`MemoryStore`], as [`MemoryStore::builder`] takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryLimits {
    /// Entries (claims and records) in all (default 100 000).
    pub max_entries: usize,
    /// Entries one owner may hold (default a tenth of `max_entries`).
    pub max_entries_per_scope: usize,
    /// Bytes of stored records (status, headers and body) in all (default 64 MiB). One
    /// owner may hold the same share of them as of the entries.
    pub max_bytes: usize,
}

impl Default for MemoryLimits {
    fn default() -> Self {
        MemoryLimits::with_max_entries(DEFAULT_MAX_ENTRIES)
    }
}

impl MemoryLimits {
    fn with_max_entries(max_entries: usize) -> MemoryLimits {
        let max_entries = max_entries.max(1);
        MemoryLimits {
            max_entries,
            max_entries_per_scope: max_entries.div_ceil(DEFAULT_SCOPE_SHARE),
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }

    /// The bytes one owner may hold: its share of `max_bytes`.
    fn max_bytes_per_scope(&self) -> usize {
        let share = self.max_entries_per_scope.min(self.max_entries) as u128;
        (self.max_bytes as u128 * share / self.max_entries as u128) as usize
    }
}

/// Builds a [`MemoryStore`] with other bounds than the defaults.
#[derive(Debug, Clone, Copy)]
pub struct MemoryStoreBuilder {
    limits: MemoryLimits,
    per_scope_set: bool,
}

impl MemoryStoreBuilder {
    /// Entries in all; unless set, `max_entries_per_scope` follows as a tenth of it.
    pub fn max_entries(mut self, n: usize) -> Self {
        let per_scope = self.limits.max_entries_per_scope;
        self.limits = MemoryLimits { max_bytes: self.limits.max_bytes, ..MemoryLimits::with_max_entries(n) };
        if self.per_scope_set {
            self.limits.max_entries_per_scope = per_scope;
        }
        self
    }

    /// Entries one owner (scope) may hold. Set it to `max_entries` for an application that
    /// puts every key in one namespace.
    pub fn max_entries_per_scope(mut self, n: usize) -> Self {
        self.limits.max_entries_per_scope = n.max(1);
        self.per_scope_set = true;
        self
    }

    /// Bytes of stored records in all.
    pub fn max_bytes(mut self, n: usize) -> Self {
        self.limits.max_bytes = n;
        self
    }

    /// The bounds the store will have.
    pub fn limits(&self) -> MemoryLimits {
        self.limits
    }

    pub fn build(self) -> MemoryStore {
        let secret = RandomState::new();
        let shards = (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect();
        let owners = (0..SHARDS).map(|_| Mutex::new(HashMap::default())).collect();
        MemoryStore {
            inner: Arc::new(Inner {
                shards,
                owners,
                secret,
                ids: IdHash::default(),
                limits: self.limits,
                entries: AtomicUsize::new(0),
                bytes: AtomicUsize::new(0),
                last_full_sweep: Mutex::new(None),
                wakers: Arc::default(),
            }),
        }
    }
}

struct Inner {
    shards: Box<[Mutex<Shard>]>,
    /// What each owner holds, sharded by owner tag. Locked only briefly, and only ever
    /// after (never before) a shard.
    owners: Box<[Mutex<HashMap<u64, Usage, IdHash>>]>,
    /// The per-process secret keying the hash of owner tags (scope strings: SipHash).
    secret: RandomState,
    /// Keyed hashing of record ids (shard and bucket), uniform already (id_hash.rs).
    ids: IdHash,
    limits: MemoryLimits,
    entries: AtomicUsize,
    bytes: AtomicUsize,
    last_full_sweep: Mutex<Option<Instant>>,
    /// The requests waiting on an entry of this store (B20), woken by complete and release.
    wakers: Arc<Wakers>,
}

#[derive(Default, Clone, Copy)]
struct Usage {
    entries: usize,
    bytes: usize,
}

#[derive(Default)]
struct Shard {
    map: HashMap<Slot, Entry, BuildHasherDefault<Prehashed>>,
    inserts: u32,
}

/// A record id with its keyed hash, computed once per operation: bits 32.. choose the
/// shard, the map's buckets use the low bits and its tags the top ones.
#[derive(Clone, Copy)]
struct Slot {
    hash: u64,
    id: RecordId,
}

impl Hash for Slot {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl PartialEq for Slot {
    fn eq(&self, other: &Slot) -> bool {
        self.id == other.id
    }
}

impl Eq for Slot {}

/// Hands the map a [`Slot`]'s hash as it is.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is ever called (Slot's Hash); fold anything else in anyway.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

struct Entry {
    expires: Instant,
    owner: u64,
    /// The record's bytes as counted against `max_bytes` (0 while in flight).
    bytes: usize,
    state: State,
}

enum State {
    InFlight { token: Token, fingerprint: Fingerprint },
    Completed { fingerprint: Fingerprint, record: Arc<Record> },
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new()
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let l = &self.inner.limits;
        f.debug_struct("MemoryStore")
            .field("max_entries", &l.max_entries)
            .field("max_entries_per_scope", &l.max_entries_per_scope)
            .field("max_bytes", &l.max_bytes)
            .finish()
    }
}

/// The bytes a record is counted as: its status, header names and values, and body.
fn size_of(record: &Record) -> usize {
    let headers: usize = record.headers.iter().map(|(n, v)| n.as_str().len() + v.len()).sum();
    2 + headers + record.body.as_ref().map_or(0, |b| b.len())
}

impl MemoryStore {
    /// A store with the default bounds: 100 000 entries, 64 MiB of records, a tenth of
    /// each per scope.
    pub fn new() -> MemoryStore {
        MemoryStore::builder().build()
    }

    /// A store holding at most `max_entries` entries (a tenth of them per scope).
    pub fn with_max_entries(max_entries: usize) -> MemoryStore {
        MemoryStore::builder().max_entries(max_entries).build()
    }

    /// A store with other bounds than the defaults.
    pub fn builder() -> MemoryStoreBuilder {
        MemoryStoreBuilder { limits: MemoryLimits::default(), per_scope_set: false }
    }

    /// The bounds in force.
    pub fn limits(&self) -> MemoryLimits {
        self.inner.limits
    }

    /// Live entries (in flight or completed), for tests and metrics.
    pub fn len(&self) -> usize {
        let now = Instant::now();
        self.inner.shards.iter().map(|s| lock(s).map.values().filter(|e| e.expires > now).count()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes of every record held, summed from the records themselves (not from the
    /// store's running count), for tests and metrics.
    pub fn stored_bytes(&self) -> usize {
        let records = self.inner.shards.iter().flat_map(|s| {
            lock(s)
                .map
                .values()
                .filter_map(|e| match &e.state {
                    State::Completed { record, .. } => Some(size_of(record)),
                    State::InFlight { .. } => None,
                })
                .collect::<Vec<_>>()
        });
        records.sum()
    }

    fn slot(&self, id: &RecordId) -> Slot {
        Slot { hash: self.inner.ids.hash_one(id), id: *id }
    }

    fn shard(&self, slot: &Slot) -> MutexGuard<'_, Shard> {
        lock(&self.inner.shards[((slot.hash >> 32) % SHARDS as u64) as usize])
    }

    fn owner_tag(&self, owner: Owner<'_>) -> u64 {
        self.inner.secret.hash_one(owner)
    }

    /// [`Store::claim`] without a future, for the global namespace.
    pub fn claim_now(
        &self,
        id: &RecordId,
        fingerprint: &Fingerprint,
        lease_ttl: Duration,
    ) -> Result<Claim, StoreError> {
        self.claim_now_for(Owner::Global, id, fingerprint, lease_ttl)
    }

    /// [`Store::claim_for`] without a future: the memory store never waits.
    pub fn claim_now_for(
        &self,
        owner: Owner<'_>,
        id: &RecordId,
        fingerprint: &Fingerprint,
        lease_ttl: Duration,
    ) -> Result<Claim, StoreError> {
        let slot = self.slot(id);
        let mut tag = None;
        for attempt in 0..2 {
            let now = Instant::now();
            {
                let mut shard = self.shard(&slot);
                if let Some(entry) = shard.map.get(&slot) {
                    if entry.expires > now {
                        return Ok(match &entry.state {
                            State::InFlight { fingerprint, .. } => {
                                Claim::InFlight { fingerprint: *fingerprint, lease_left: entry.expires - now }
                            }
                            State::Completed { fingerprint, record } => {
                                Claim::Completed { fingerprint: *fingerprint, record: record.clone() }
                            }
                        });
                    }
                    // Expired: the new claim takes the id over.
                    if let Some(old) = shard.map.remove(&slot) {
                        self.inner.forget(&old);
                    }
                }
                shard.inserts = shard.inserts.wrapping_add(1);
                if shard.inserts.is_multiple_of(SWEEP_EVERY) {
                    shard.sweep(&self.inner, |e| !e.kept(now));
                }
                // Only a new entry needs its owner: a replay never hashes it.
                let owner = *tag.get_or_insert_with(|| self.owner_tag(owner));
                if self.inner.reserve(owner, 1, 0) {
                    let token = Token::random();
                    let state = State::InFlight { token, fingerprint: *fingerprint };
                    shard.map.insert(slot, Entry { expires: now + lease_ttl, owner, bytes: 0, state });
                    return Ok(Claim::Claimed { token });
                }
            }
            if attempt == 0
                && let Some(owner) = tag
            {
                self.make_room(owner, 1, 0, now);
            }
        }
        static LOG: Throttle = Throttle::new();
        if let Some(suppressed) = LOG.admit() {
            tracing::warn!(
                target: "idempo",
                suppressed,
                "memory store full for this scope: its new key is refused (raise max_entries or \
                 max_entries_per_scope, or use a durable store)"
            );
        }
        Err(StoreError::Full)
    }

    /// [`Store::renew`] without a future.
    pub fn renew_now(&self, id: &RecordId, token: Token, lease_ttl: Duration) -> Renewal {
        let now = Instant::now();
        let slot = self.slot(id);
        let mut shard = self.shard(&slot);
        match shard.held(&slot, token, now) {
            Some(entry) => {
                entry.expires = now + lease_ttl;
                Renewal::Renewed
            }
            None => Renewal::LeaseLost,
        }
    }

    /// [`Store::complete`] without a future.
    pub fn complete_now(&self, id: &RecordId, token: Token, record: &Record, ttl: Duration) -> Completion {
        let size = size_of(record);
        let slot = self.slot(id);
        for attempt in 0..2 {
            let now = Instant::now();
            let mut shard = self.shard(&slot);
            let Some(entry) = shard.held(&slot, token, now) else { return Completion::LeaseLost };
            let tag = entry.owner;
            if self.inner.reserve(tag, 0, size) {
                entry.finish(record.clone(), size, now + ttl);
                drop(shard);
                self.inner.wakers.wake(id);
                return Completion::Stored;
            }
            drop(shard);
            if attempt == 0 {
                self.make_room(tag, 0, size, now);
            }
        }
        // No room for the body, even after the owner's own records made way: the key is
        // still kept, without it (B12), so a retry replays and never runs again. When the
        // headers do not fit either, only the status is kept.
        let now = Instant::now();
        let mut shard = self.shard(&slot);
        let Some(entry) = shard.held(&slot, token, now) else { return Completion::LeaseLost };
        let tag = entry.owner;
        let mut omitted = Record { body: None, ..record.clone() };
        let mut size = size_of(&omitted);
        if !self.inner.reserve(tag, 0, size) {
            omitted.headers.clear();
            size = 0;
        }
        static LOG: Throttle = Throttle::new();
        if let Some(suppressed) = LOG.admit() {
            tracing::warn!(
                target: "idempo",
                bytes = size_of(record),
                suppressed,
                "memory store over max_bytes for this scope: the response is kept without its body \
                 (replayed with Idempotency-Replay: omitted)"
            );
        }
        entry.finish(omitted, size, now + ttl);
        drop(shard);
        self.inner.wakers.wake(id);
        Completion::Stored
    }

    /// [`Store::release`] without a future.
    pub fn release_now(&self, id: &RecordId, token: Token) -> Release {
        let now = Instant::now();
        let slot = self.slot(id);
        let mut shard = self.shard(&slot);
        if shard.held(&slot, token, now).is_some() {
            if let Some(old) = shard.map.remove(&slot) {
                self.inner.forget(&old);
            }
            drop(shard);
            self.inner.wakers.wake(id);
            Release::Released
        } else {
            Release::LeaseLost
        }
    }

    /// Make room for `entries` and `bytes` more of `owner`'s: sweep expired entries (at most
    /// every [`FULL_SWEEP_EVERY`]), then evict the owner's own completed records closest
    /// to expiry, never anyone else's live entry. Locks one shard at a time.
    fn make_room(&self, owner: u64, entries: usize, bytes: usize, now: Instant) {
        let inner = &self.inner;
        let sweep_due = {
            let mut last = lock(&inner.last_full_sweep);
            let due = last.is_none_or(|at| now.saturating_duration_since(at) >= FULL_SWEEP_EVERY);
            if due {
                *last = Some(now);
            }
            due
        };
        if sweep_due {
            // At capacity an expired claim goes too, late completion or not.
            for shard in inner.shards.iter() {
                lock(shard).sweep(inner, |e| e.expires <= now);
            }
        }
        let (entries_over, bytes_over) = inner.excess(owner, entries, bytes);
        if entries_over == 0 && bytes_over == 0 {
            return;
        }
        let mut own: Vec<(Instant, Slot, usize)> = Vec::new();
        for shard in inner.shards.iter() {
            own.extend(lock(shard).map.iter().filter_map(|(slot, e)| match e.state {
                State::Completed { .. } if e.owner == owner && e.expires > now => Some((e.expires, *slot, e.bytes)),
                _ => None,
            }));
        }
        own.sort_unstable_by_key(|(expires, _, _)| *expires);
        // Evict an eighth of the owner's share at once when it is out of entries, so a full
        // owner pays one scan per many claims; when out of bytes, as many as it takes.
        let batch = if entries_over > 0 { (inner.limits.max_entries_per_scope / 8).max(entries_over) } else { 0 };
        let (mut evicted, mut freed) = (0usize, 0usize);
        for (_, slot, size) in own {
            if evicted >= batch && freed >= bytes_over {
                break;
            }
            let mut shard = self.shard(&slot);
            let still_theirs =
                shard.map.get(&slot).is_some_and(|e| e.owner == owner && matches!(e.state, State::Completed { .. }));
            if still_theirs && let Some(old) = shard.map.remove(&slot) {
                inner.forget(&old);
                evicted += 1;
                freed += size;
            }
        }
        tracing::debug!(target: "idempo", evicted, freed, "memory store full for a scope: evicted its own records closest to expiry");
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while a lock is held; if something ever did, the maps are still
    // consistent (every mutation is a single insert/remove/assignment).
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Inner {
    fn usage(&self, owner: u64) -> MutexGuard<'_, HashMap<u64, Usage, IdHash>> {
        lock(&self.owners[(owner % SHARDS as u64) as usize])
    }

    /// Count `entries` and `bytes` more for `owner` if both it and the store stay within
    /// their bounds; false (nothing counted) if not.
    fn reserve(&self, owner: u64, entries: usize, bytes: usize) -> bool {
        let l = &self.limits;
        let mut owners = self.usage(owner);
        let usage = owners.get(&owner).copied().unwrap_or_default();
        if usage.entries + entries > l.max_entries_per_scope || usage.bytes + bytes > l.max_bytes_per_scope() {
            return false;
        }
        let add = |total: &AtomicUsize, n: usize, max: usize| {
            n == 0
                || total.fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| (t + n <= max).then_some(t + n)).is_ok()
        };
        if !add(&self.entries, entries, l.max_entries) {
            return false;
        }
        if !add(&self.bytes, bytes, l.max_bytes) {
            self.entries.fetch_sub(entries, Ordering::AcqRel);
            return false;
        }
        let usage = owners.entry(owner).or_default();
        usage.entries += entries;
        usage.bytes += bytes;
        true
    }

    /// Uncount an entry that left the store.
    fn forget(&self, entry: &Entry) {
        let mut owners = self.usage(entry.owner);
        if let Some(usage) = owners.get_mut(&entry.owner) {
            usage.entries = usage.entries.saturating_sub(1);
            usage.bytes = usage.bytes.saturating_sub(entry.bytes);
            if usage.entries == 0 {
                owners.remove(&entry.owner);
            }
        }
        drop(owners);
        self.entries.fetch_sub(1, Ordering::AcqRel);
        self.bytes.fetch_sub(entry.bytes, Ordering::AcqRel);
    }

    /// How many entries and bytes `owner` would have to free for `entries` and `bytes`
    /// more to fit, within its own share and within the store.
    fn excess(&self, owner: u64, entries: usize, bytes: usize) -> (usize, usize) {
        let l = &self.limits;
        let usage = self.usage(owner).get(&owner).copied().unwrap_or_default();
        let over = |used: usize, n: usize, max: usize| (used + n).saturating_sub(max);
        let total_entries = self.entries.load(Ordering::Acquire);
        let total_bytes = self.bytes.load(Ordering::Acquire);
        (
            over(usage.entries, entries, l.max_entries_per_scope).max(over(total_entries, entries, l.max_entries)),
            over(usage.bytes, bytes, l.max_bytes_per_scope()).max(over(total_bytes, bytes, l.max_bytes)),
        )
    }
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

    /// Turn a claim into its record (its bytes already counted).
    fn finish(&mut self, record: Record, bytes: usize, expires: Instant) {
        if let State::InFlight { fingerprint, .. } = self.state {
            self.state = State::Completed { fingerprint, record: Arc::new(record) };
            self.bytes = bytes;
            self.expires = expires;
        }
    }
}

impl Shard {
    /// The in-flight entry for `id` if `token` holds it: its lease may have expired, as
    /// long as no new claim took it over.
    fn held(&mut self, slot: &Slot, token: Token, now: Instant) -> Option<&mut Entry> {
        self.map
            .get_mut(slot)
            .filter(|e| e.kept(now) && matches!(e.state, State::InFlight { token: t, .. } if t == token))
    }

    /// Remove the entries `gone` picks, uncounting each.
    fn sweep(&mut self, inner: &Inner, gone: impl Fn(&Entry) -> bool) {
        self.map.retain(|_, e| {
            let remove = gone(e);
            if remove {
                inner.forget(e);
            }
            !remove
        });
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn claim(&self, id: &RecordId, fingerprint: &Fingerprint, lease_ttl: Duration) -> Result<Claim, StoreError> {
        self.claim_now(id, fingerprint, lease_ttl)
    }

    async fn claim_for(
        &self,
        owner: Owner<'_>,
        id: &RecordId,
        fingerprint: &Fingerprint,
        lease_ttl: Duration,
    ) -> Result<Claim, StoreError> {
        self.claim_now_for(owner, id, fingerprint, lease_ttl)
    }

    fn in_process(&self) -> bool {
        true
    }

    fn claim_in_process(
        &self,
        owner: Owner<'_>,
        id: &RecordId,
        fingerprint: &Fingerprint,
        lease_ttl: Duration,
    ) -> Option<Result<Claim, StoreError>> {
        Some(self.claim_now_for(owner, id, fingerprint, lease_ttl))
    }

    fn complete_in_process(
        &self,
        id: &RecordId,
        _fingerprint: &Fingerprint,
        token: Token,
        record: &Record,
        ttl: Duration,
    ) -> Option<Result<Completion, StoreError>> {
        Some(Ok(self.complete_now(id, token, record, ttl)))
    }

    async fn renew(&self, id: &RecordId, token: Token, lease_ttl: Duration) -> Result<Renewal, StoreError> {
        Ok(self.renew_now(id, token, lease_ttl))
    }

    async fn complete(
        &self,
        id: &RecordId,
        _fingerprint: &Fingerprint,
        token: Token,
        record: &Record,
        ttl: Duration,
    ) -> Result<Completion, StoreError> {
        Ok(self.complete_now(id, token, record, ttl))
    }

    async fn release(&self, id: &RecordId, token: Token) -> Result<Release, StoreError> {
        Ok(self.release_now(id, token))
    }

    async fn watch(&self, id: &RecordId) -> Option<Watch> {
        Some(self.inner.wakers.watch(id))
    }
}
