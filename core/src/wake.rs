//! Waking the requests that wait on an in-flight duplicate (B20).
//!
//! A store that can tell when a record is completed or released keeps one [`Wakers`]: a
//! waiter takes a [`Watch`] on the record id, the store calls [`Wakers::wake`] when its
//! event for that id arrives (the memory store from `complete`/`release` itself, Redis from
//! its subscriber connection, PostgreSQL from its `LISTEN` connection), and every watch on
//! the id resolves. Delivery is a hint, never the truth: a woken waiter reads the record
//! again, and one that hears nothing re-checks after a bounded back-off anyway.
//!
//! Arming (subscribing to the id's channel, marking the row as waited on) is done once per
//! id and event in the process, however many requests wait on it: the first watch arms,
//! the others wait for that to finish. A wake starts a new round, so the waiters still
//! waiting afterwards (a release was followed by another claim) arm again.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::{OnceCell, mpsc, watch};

use crate::fingerprint::RecordId;
use crate::id_hash::IdHash;
use crate::store::Claim;

const SHARDS: usize = 16;

struct Slot {
    wake: watch::Sender<()>,
    /// Whether this round's arming was done (and worked).
    armed: Arc<OnceCell<bool>>,
    /// The round's first read of the record after its wake, shared by the waiters it woke.
    read: Arc<OnceCell<Option<Claim>>>,
    watchers: usize,
}

impl Slot {
    fn next_round(&mut self) {
        self.armed = Arc::default();
        self.read = Arc::default();
        self.wake.send_replace(());
    }
}

/// The ids waited on in this process, each with the waiters to wake.
pub struct Wakers {
    shards: Box<[Mutex<HashMap<RecordId, Slot, IdHash>>]>,
    /// How many ids are watched: `wake` costs one load when none is.
    watched: AtomicUsize,
    /// Told of an id nobody waits on any more (to unsubscribe from its channel).
    idle: Option<mpsc::UnboundedSender<RecordId>>,
}

impl Default for Wakers {
    fn default() -> Self {
        Wakers { shards: (0..SHARDS).map(|_| Mutex::default()).collect(), watched: AtomicUsize::new(0), idle: None }
    }
}

impl std::fmt::Debug for Wakers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wakers").field("watched", &self.watched.load(Ordering::Relaxed)).finish()
    }
}

impl Wakers {
    /// Wakers that send every id left without a waiter to `idle`.
    pub fn with_idle(idle: mpsc::UnboundedSender<RecordId>) -> Wakers {
        Wakers { idle: Some(idle), ..Wakers::default() }
    }

    fn shard(&self, id: &RecordId) -> MutexGuard<'_, HashMap<RecordId, Slot, IdHash>> {
        // Record ids are hashes: any byte picks a shard evenly.
        self.shards[id.0[1] as usize % SHARDS].lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wait on `id`: the watch resolves on the next [`Wakers::wake`] of it.
    pub fn watch(self: &Arc<Self>, id: &RecordId) -> Watch {
        let mut shard = self.shard(id);
        let slot = shard.entry(*id).or_insert_with(|| {
            self.watched.fetch_add(1, Ordering::Relaxed);
            Slot { wake: watch::Sender::new(()), armed: Arc::default(), read: Arc::default(), watchers: 0 }
        });
        slot.watchers += 1;
        let mut woken = slot.wake.subscribe();
        woken.mark_unchanged();
        Watch { wakers: self.clone(), id: *id, woken, armed: slot.armed.clone(), read: slot.read.clone() }
    }

    /// Wake every waiter on `id`.
    pub fn wake(&self, id: &RecordId) {
        if self.watched.load(Ordering::Relaxed) == 0 {
            return;
        }
        if let Some(slot) = self.shard(id).get_mut(id) {
            slot.next_round();
        }
    }

    /// Wake every waiter (events may have been lost: a subscriber reconnected).
    pub fn wake_all(&self) {
        for shard in &self.shards {
            for slot in shard.lock().unwrap_or_else(PoisonError::into_inner).values_mut() {
                slot.next_round();
            }
        }
    }

    /// Whether anyone waits on `id`.
    pub fn is_watched(&self, id: &RecordId) -> bool {
        self.watched.load(Ordering::Relaxed) > 0 && self.shard(id).contains_key(id)
    }

    /// Every id waited on.
    pub fn ids(&self) -> Vec<RecordId> {
        self.shards
            .iter()
            .flat_map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).keys().copied().collect::<Vec<_>>())
            .collect()
    }

    fn unwatch(&self, id: &RecordId) {
        let mut shard = self.shard(id);
        let Some(slot) = shard.get_mut(id) else { return };
        slot.watchers -= 1;
        if slot.watchers == 0 {
            shard.remove(id);
            self.watched.fetch_sub(1, Ordering::Relaxed);
            drop(shard);
            if let Some(idle) = &self.idle {
                let _ = idle.send(*id);
            }
        }
    }
}

/// One waiter's interest in one record id. Dropping it (the waiter is done, or its client
/// left) frees it.
pub struct Watch {
    wakers: Arc<Wakers>,
    id: RecordId,
    woken: watch::Receiver<()>,
    armed: Arc<OnceCell<bool>>,
    read: Arc<OnceCell<Option<Claim>>>,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch").field("id", &self.id).finish_non_exhaustive()
    }
}

impl Watch {
    /// Run `arm` unless another waiter of this round already has (then wait for it to
    /// finish): what the store must do before it can deliver an event for the id. Its
    /// answer, whether the store will deliver, is the round's.
    pub async fn arm<F: Future<Output = bool>>(&self, arm: impl FnOnce() -> F) -> bool {
        *self.armed.get_or_init(arm).await
    }

    /// The record as read once for every waiter of this round (taken after their wake):
    /// one store read where a completion woke hundreds. `read` runs for the first caller
    /// only; the second value says whether it was this one. `None` when that read failed.
    pub(crate) async fn read_once<F: Future<Output = Option<Claim>>>(
        &self,
        read: impl FnOnce() -> F,
    ) -> (Option<Claim>, bool) {
        let mut mine = false;
        let claim = self
            .read
            .get_or_init(|| {
                mine = true;
                read()
            })
            .await;
        (claim.clone(), mine)
    }

    /// Resolve on the next wake of the id after this watch was taken.
    pub async fn woken(&mut self) {
        if self.woken.changed().await.is_err() {
            // The slot cannot go while this watch holds it; never wake on nothing.
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.wakers.unwatch(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_wake_reaches_every_watch_of_the_id_and_no_other() {
        let wakers = Arc::new(Wakers::default());
        let (a, b) = (RecordId([1; 32]), RecordId([2; 32]));
        let mut w1 = wakers.watch(&a);
        let mut w2 = wakers.watch(&a);
        let mut other = wakers.watch(&b);
        wakers.wake(&a);
        w1.woken().await;
        w2.woken().await;
        let quiet = tokio::time::timeout(std::time::Duration::from_millis(20), other.woken()).await;
        assert!(quiet.is_err(), "a wake of one id does not wake another");
        assert_eq!(wakers.ids().len(), 2);
        drop((w1, w2, other));
        assert!(wakers.ids().is_empty(), "dropped watches free their ids");
    }

    #[tokio::test]
    async fn arming_runs_once_per_round() {
        let wakers = Arc::new(Wakers::default());
        let id = RecordId([3; 32]);
        let runs = AtomicUsize::new(0);
        let arm = || async {
            runs.fetch_add(1, Ordering::Relaxed);
            true
        };
        let (w1, w2) = (wakers.watch(&id), wakers.watch(&id));
        assert!(w1.arm(arm).await && w2.arm(arm).await);
        assert_eq!(runs.load(Ordering::Relaxed), 1);
        wakers.wake(&id);
        let w3 = wakers.watch(&id);
        w3.arm(arm).await;
        assert_eq!(runs.load(Ordering::Relaxed), 2, "a wake starts a new round");
    }

    #[tokio::test]
    async fn the_last_watch_of_an_id_reports_it_idle() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let wakers = Arc::new(Wakers::with_idle(tx));
        let id = RecordId([4; 32]);
        let (w1, w2) = (wakers.watch(&id), wakers.watch(&id));
        drop(w1);
        assert!(rx.try_recv().is_err());
        drop(w2);
        assert_eq!(rx.try_recv().ok(), Some(id));
        assert!(!wakers.is_watched(&id));
    }
}
