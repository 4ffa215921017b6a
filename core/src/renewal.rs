//! Renewing the claims of running handlers (B10): one task per engine, over the live
//! leases, rather than a task per lease (issue 17: a spawned and aborted task cost every
//! first execution two allocations and some 2 600 instructions, for a renewal most
//! handlers never need).
//!
//! A lease is entered in a sharded map when it starts and taken out when it ends. Every
//! half period (`lease_ttl / 6`) the task looks over the map and renews each lease last
//! renewed a period (`lease_ttl / 3`) or more ago, so a claim is renewed at most half a
//! lease after its last renewal, well before it could lapse. Each renewal is a task of its
//! own, so a slow store holds up no other lease. The task holds the engine weakly and ends
//! with it; it is started again by the next lease if its runtime has gone.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::fingerprint::RecordId;
use crate::id_hash::IdHash;
use crate::lease::{State, renew_once};
use crate::shared::Shared;
use crate::store::Token;

const SHARDS: usize = 16;

/// A live lease.
#[derive(Clone)]
pub(crate) struct Entry {
    pub started: Instant,
    pub renewed: Instant,
    pub id: RecordId,
    pub token: Token,
    pub state: Arc<State>,
}

/// A lease's place in the map, to take it out with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket(u64);

pub(crate) struct Renewals {
    shards: Box<[Mutex<HashMap<u64, Entry, IdHash>>]>,
    next: AtomicU64,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Default for Renewals {
    fn default() -> Self {
        Renewals {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            next: AtomicU64::new(0),
            task: Mutex::default(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Renewals {
    fn shard(&self, ticket: u64) -> MutexGuard<'_, HashMap<u64, Entry, IdHash>> {
        lock(&self.shards[ticket as usize % SHARDS])
    }

    /// Renew this lease until [`Renewals::remove`], with the engine's task (started on
    /// `rt` if it is not running: the first lease, or its runtime has shut down).
    pub(crate) fn add(&self, shared: &Arc<Shared>, rt: &Handle, entry: Entry) -> Ticket {
        let ticket = self.next.fetch_add(1, Ordering::Relaxed);
        self.shard(ticket).insert(ticket, entry);
        let mut task = lock(&self.task);
        if task.as_ref().is_none_or(JoinHandle::is_finished) {
            *task = Some(rt.spawn(run(Arc::downgrade(shared), shared.config.lease_ttl / 3)));
        }
        Ticket(ticket)
    }

    /// No more renewals for this lease.
    pub(crate) fn remove(&self, ticket: Ticket) {
        self.shard(ticket.0).remove(&ticket.0);
    }

    /// Whether this lease is still renewed.
    fn is_live(&self, ticket: Ticket) -> bool {
        self.shard(ticket.0).contains_key(&ticket.0)
    }

    /// Mark the leases last renewed at or before `stale` as renewed now, and hand them out.
    fn due(&self, stale: Instant, now: Instant) -> Vec<(u64, Entry)> {
        let mut due = Vec::new();
        for shard in &self.shards {
            for (ticket, entry) in lock(shard).iter_mut() {
                if entry.renewed <= stale {
                    entry.renewed = now;
                    due.push((*ticket, entry.clone()));
                }
            }
        }
        due
    }
}

async fn run(engine: Weak<Shared>, period: Duration) {
    let mut tick = tokio::time::interval((period / 2).max(Duration::from_millis(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(e) = engine.upgrade() else { return };
        let now = Instant::now();
        let Some(stale) = now.checked_sub(period) else { continue };
        for (ticket, entry) in e.renewals.due(stale, now) {
            let e = e.clone();
            tokio::spawn(async move {
                if !renew_once(&e, entry, || e.renewals.is_live(Ticket(ticket))).await {
                    e.renewals.remove(Ticket(ticket));
                }
            });
        }
    }
}
