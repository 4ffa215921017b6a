//! A duplicate waiting for its in-flight original (B20).
//!
//! The waiter watches the record id (the store wakes it when the record is completed or
//! released, in this process or any other), then reads the record again: a read after the
//! watch is armed cannot miss an event, because one before it shows in the read. Woken, it
//! reads again: a replay on completion, a claim of its own on release (it then runs the
//! handler, like any first request), or back to waiting when another request claimed the
//! key first. Events are hints: with none, the waiter still reads again after a back-off
//! (from [`FIRST_RECHECK`] doubling to [`LAST_RECHECK`], and never later than the lease's
//! end), so a lost event costs latency, never correctness.
//!
//! Two sources wake a waiter: the store's event, and, when the original runs in this
//! process, this process letting the claim go (held.rs), which comes after its record is
//! in the store (the store's own event may come first, and a read then still finds the
//! claim held here). Waiters woken by one event share the first read after it
//! (`Watch::read_once`): hundreds of duplicates cost one store read.

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::Duration;

use tokio::time::Instant;

use crate::engine::{Decision, Settled, claim, in_use, in_use_uncounted, preference_applied, settle};
use crate::fingerprint::{Fingerprint, RecordId};
use crate::key::Key;
use crate::shared::Shared;
use crate::stats::Stats;
use crate::store::{Claim, Owner};

/// The first re-read without an event: well above an event's delivery, so that a waiter
/// answered by a re-read shows a lost event rather than hides it.
pub const FIRST_RECHECK: Duration = Duration::from_millis(250);
/// The longest time between two re-reads.
pub const LAST_RECHECK: Duration = Duration::from_secs(2);

/// What ended a nap.
enum Event {
    /// The client left.
    Gone,
    /// This process let the claim go (a holder here completed or released it).
    Here,
    /// The store told of a completion or release.
    Stored,
    /// Time for a re-read.
    Nap,
}

/// One of `max_waiters` places; given back when dropped (the waiter is answered, or its
/// client left and the future was dropped).
struct Place<'a>(&'a Shared);

impl<'a> Place<'a> {
    fn take(e: &'a Shared) -> Option<Place<'a>> {
        let max = e.config.max_waiters;
        e.waiting.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1)).ok()?;
        Some(Place(e))
    }
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A duplicate of the request in flight on `id`; `applied` is the honoured `Prefer: wait`,
/// answered with `Preference-Applied`.
pub(crate) struct Waiter<'a> {
    pub e: &'a Arc<Shared>,
    pub key: &'a Key,
    pub owner: Owner<'a>,
    pub id: RecordId,
    pub fingerprint: Fingerprint,
    pub applied: Option<Duration>,
}

impl Waiter<'_> {
    /// Wait up to `wait` for the original, or until `gone` (the client left).
    pub(crate) async fn wait<G: Future<Output = ()>>(
        self,
        wait: Duration,
        mut lease_left: Duration,
        mut gone: Pin<&mut G>,
    ) -> Decision {
        let Waiter { e, key, owner, id, fingerprint, applied } = self;
        let Some(_place) = Place::take(e) else {
            tracing::debug!(target: "idempo", outcome = "key-in-use", key = %key.redacted(), "max_waiters reached");
            return Decision::Respond(in_use(e, key, lease_left, None));
        };
        Stats::inc(&e.stats.waited);
        let deadline = Instant::now() + wait;
        let mut backoff = FIRST_RECHECK;
        let mut local = e.held.watch(&id);
        let mut watch = e.store.watch(&id).await;
        let mut claimed = claim(e, owner, &id, &fingerprint).await;
        loop {
            match settle(e, key, id, fingerprint, claimed) {
                Settled::Decided(Decision::Respond(mut res)) => {
                    if let Some(wait) = applied {
                        preference_applied(&mut res, wait);
                    }
                    return Decision::Respond(res);
                }
                Settled::Decided(decision) => return decision,
                Settled::InFlight { lease_left: left } => lease_left = left,
            }
            let now = Instant::now();
            if now >= deadline {
                Stats::inc(&e.stats.wait_timeouts);
                return Decision::Respond(in_use(e, key, lease_left, applied));
            }
            let event = {
                // A lease that ends with nobody completing it (its holder died) is
                // claimable then.
                let nap = tokio::time::sleep(backoff.min(deadline - now).min(lease_left + Duration::from_millis(1)));
                let stored = async {
                    match &mut watch {
                        Some(watch) => watch.woken().await,
                        None => std::future::pending().await,
                    }
                };
                let (mut nap, mut stored, mut here) = (pin!(nap), pin!(stored), pin!(local.woken()));
                std::future::poll_fn(|cx| {
                    if gone.as_mut().poll(cx).is_ready() {
                        Poll::Ready(Event::Gone)
                    } else if here.as_mut().poll(cx).is_ready() {
                        Poll::Ready(Event::Here)
                    } else if stored.as_mut().poll(cx).is_ready() {
                        Poll::Ready(Event::Stored)
                    } else {
                        nap.as_mut().poll(cx).map(|()| Event::Nap)
                    }
                })
                .await
            };
            if let Event::Gone = event {
                tracing::debug!(target: "idempo", outcome = "client-gone", key = %key.redacted(), "stopped waiting");
                return Decision::Respond(in_use_uncounted(e, lease_left, applied));
            }
            // The next round's watches before the last ones go, so the id stays watched.
            let (next_local, next) = (e.held.watch(&id), e.store.watch(&id).await);
            let (woken_here, woken_stored) =
                (std::mem::replace(&mut local, next_local), std::mem::replace(&mut watch, next));
            let read = || async { claim(e, owner, &id, &fingerprint).await.ok() };
            // Woken with many others: one of them reads, all use what it found.
            let shared = match event {
                Event::Here => Some(woken_here.read_once(read).await),
                Event::Stored => match &woken_stored {
                    Some(round) => Some(round.read_once(read).await),
                    None => None,
                },
                _ => None,
            };
            drop((woken_here, woken_stored));
            claimed = match shared {
                // A claim is only its reader's; the others read for themselves (and see
                // this process holding the key).
                Some((Some(Claim::Claimed { token }), true)) => Ok(Claim::Claimed { token }),
                Some((Some(found), _)) if !matches!(found, Claim::Claimed { .. }) => Ok(found),
                _ => claim(e, owner, &id, &fingerprint).await,
            };
            backoff = (backoff * 2).min(LAST_RECHECK);
        }
    }
}
