//! The lease: ownership of a claimed key while the handler runs (B10, B11, B17).
//!
//! A `Lease` holds the fencing token; the engine's renewal task (renewal.rs) renews the
//! claim every `lease_ttl / 3`, for at most `max_lease`. Releasing it stops the renewal at once;
//! completing it keeps renewing until the record has landed (B17), so a lease shorter
//! than a store hiccup cannot expire under a completion on its way. A lease dropped
//! without either (a handler that never finished its response) keeps its claim: the
//! handler's side effect may have happened, so a retry must not run it again. Renewal goes
//! on until `max_lease`, and then the key is released, with a warning.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use tokio::runtime::Handle;
use tokio::time::Instant;

use crate::fingerprint::{Fingerprint, RecordId};
use crate::key::Redacted;
use crate::ready::{Now, now_or_later};
use crate::record::Record;
use crate::renewal::{Entry, Ticket};
use crate::shared::Shared;
use crate::stats::Stats;
use crate::store::{Completion, Release, Renewal, Token};
use crate::throttle::Throttle;

/// How long `complete` waits for the store before handing the write to the background.
/// Waiting at all means a client that retries right after its response sees the replay.
const INLINE_PERSIST_WAIT: Duration = Duration::from_secs(1);

/// Ownership of a claimed key. Complete it with the response, or release it.
pub struct Lease {
    shared: Arc<Shared>,
    id: RecordId,
    /// The claim's fingerprint: a store that encrypts binds the record to it (B24).
    fingerprint: Fingerprint,
    token: Token,
    state: Arc<State>,
    /// Its place among the engine's renewals (renewal.rs), while it is renewed.
    renewal: Option<Ticket>,
    runtime: Option<Handle>,
    finished: bool,
}

/// What the lease and its renewals share.
pub(crate) struct State {
    /// The key, redacted, for log lines.
    key: Redacted,
    /// Set once the lease is known to be taken over, so it is counted once.
    lost: AtomicBool,
    /// Set once the record is on its way: a renewal refused then is left to the completion
    /// to judge (refused too if the lease was taken over; if not, the claim was completed).
    completing: AtomicBool,
    /// Set when the lease was dropped unfinished: released at `max_lease`.
    abandoned: AtomicBool,
    /// This process's note that it holds the claim (`Shared::held`).
    hold: Hold,
}

/// Taken off `Shared::held` once the claim's fate is settled (stored, released, given up),
/// or at the latest when the lease and its tasks are all gone.
struct Hold {
    shared: Arc<Shared>,
    id: RecordId,
    ended: AtomicBool,
}

impl Hold {
    fn end(&self) {
        if !self.ended.swap(true, Ordering::Relaxed) {
            self.shared.held.remove(&self.id);
        }
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.end();
    }
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease").field("id", &self.id).field("token", &self.token).field("key", &self.state.key).finish()
    }
}

impl Lease {
    pub(crate) fn start(
        shared: Arc<Shared>,
        id: RecordId,
        fingerprint: Fingerprint,
        token: Token,
        key: Redacted,
    ) -> Lease {
        let runtime = Handle::try_current().ok();
        let hold = Hold { shared: shared.clone(), id, ended: AtomicBool::new(false) };
        let state = Arc::new(State {
            key,
            lost: AtomicBool::new(false),
            completing: AtomicBool::new(false),
            abandoned: AtomicBool::new(false),
            hold,
        });
        let cfg = &shared.config;
        // Renew only while the claim stays within max_lease; with max_lease equal to
        // lease_ttl no renewal happens at all.
        let renewal = runtime.as_ref().filter(|_| cfg.max_lease > cfg.lease_ttl).map(|rt| {
            let now = Instant::now();
            let entry = Entry { started: now, renewed: now, id, token, state: state.clone() };
            shared.renewals.add(&shared, rt, entry)
        });
        Lease { shared, id, fingerprint, token, state, renewal, runtime, finished: false }
    }

    /// The fencing token of this claim.
    pub fn token(&self) -> Token {
        self.token
    }

    #[cfg(feature = "host")]
    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    fn finish(&mut self) {
        self.finished = true;
        if let Some(ticket) = self.renewal.take() {
            self.shared.renewals.remove(ticket);
        }
    }

    /// Store the response (B11, B12) if `store_status` says so, else release the key.
    /// `body` is `None` when it was too large to keep. A failed write is retried in the
    /// background for up to `persist_timeout` (B17); this returns once the write landed or
    /// was handed to the background.
    pub async fn complete(self, status: StatusCode, headers: &HeaderMap, body: Option<Bytes>) {
        if !self.shared.config.stores(status.as_u16(), None) {
            return self.release().await;
        }
        let headers = self.shared.replayable_headers(headers);
        self.store(Record { status, headers, body }).await;
    }

    /// Store `record` (its headers already the replayable ones). A failed write is retried
    /// in the background for up to `persist_timeout` (B17): this returns once the write
    /// landed or was handed to the background, so the caller can finish its response
    /// either way.
    pub(crate) async fn store(mut self, record: Record) {
        let e = self.shared.clone();
        self.finished = true;
        self.state.completing.store(true, Ordering::Relaxed);
        if record.body.is_none() {
            Stats::inc(&e.stats.omitted);
        }
        // Renewal goes on until the record has landed or persisting gave up (B17).
        let renewal = self.renewal.take();
        // A store that answers without I/O (memory) is done here: no future, no task.
        let at_once = e.store.complete_in_process(&self.id, &self.fingerprint, self.token, &record, e.config.ttl);
        if let Some(Ok(done)) = at_once {
            if done == Completion::LeaseLost {
                lease_lost(&e, &self.state, self.state.key, "completion");
            }
            return landed(&e, &self.state, renewal);
        }
        let persisted = persist(e.clone(), self.id, self.fingerprint, self.token, record, self.state.clone());
        let state = self.state.clone();
        let job = async move {
            persisted.await;
            landed(&e, &state, renewal);
        };
        // A write that is done on the first poll needs no task.
        let Now::Later(job) = now_or_later(job) else { return };
        match &self.runtime {
            // A task, so the write finishes even if the caller is dropped while waiting.
            Some(rt) => {
                let _ = tokio::time::timeout(INLINE_PERSIST_WAIT, rt.spawn(job)).await;
            }
            None => job.await,
        }
    }

    /// Give the key up so that a retry runs the handler again (B11: 5xx, error, panic).
    pub async fn release(mut self) {
        self.finish();
        release(self.shared.clone(), self.id, self.token, self.state.clone()).await;
    }

    /// Give the key up in the background, for callers that cannot wait (a poll function).
    pub fn release_in_background(mut self) {
        self.finish();
        let job = release(self.shared.clone(), self.id, self.token, self.state.clone());
        // Without a runtime (it is shutting down) the claim simply expires after lease_ttl.
        if let Some(rt) = &self.runtime {
            rt.spawn(job);
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // Neither completed nor released: the handler may have done its work, so the claim
        // is kept (renewals go on) and released at max_lease.
        self.state.abandoned.store(true, Ordering::Relaxed);
        tracing::debug!(target: "idempo", key = %self.state.key,
            "the response never finished: the claim is kept until max_lease, then released");
    }
}

fn lease_lost(e: &Shared, state: &State, key: Redacted, during: &str) {
    if !state.lost.swap(true, Ordering::Relaxed) {
        Stats::inc(&e.stats.lease_lost);
        tracing::warn!(target: "idempo", outcome = "lease-lost", key = %key, during,
            "the lease on this key expired and was taken over; this holder's {during} was refused");
    }
}

/// The record's fate is settled (stored, refused, or given up after `persist_timeout`): the
/// claim is no longer this process's, and no longer renewed.
fn landed(e: &Shared, state: &State, renewal: Option<Ticket>) {
    state.hold.end();
    if let Some(ticket) = renewal {
        e.renewals.remove(ticket);
    }
}

/// One renewal of a lease that is due (renewal.rs); whether to renew it again. `live` says
/// whether the lease still wants renewals (it may have ended while this one was on its
/// way: a refusal then is no lost lease).
pub(crate) async fn renew_once(e: &Arc<Shared>, entry: Entry, live: impl Fn() -> bool) -> bool {
    let cfg = &e.config;
    let Entry { id, token, state, started, .. } = entry;
    let key = state.key;
    if started.elapsed() + cfg.lease_ttl > cfg.max_lease {
        if state.abandoned.load(Ordering::Relaxed) {
            tracing::warn!(target: "idempo", key = %key,
                "the response never finished: the key is released at max_lease, and a retry runs again");
            release(e.clone(), id, token, state.clone()).await;
        } else {
            tracing::warn!(target: "idempo", key = %key, "handler still running at max_lease: the claim is no longer renewed");
        }
        return false;
    }
    match e.store.renew(&id, token, cfg.lease_ttl).await {
        Ok(Renewal::Renewed) => true,
        Ok(Renewal::LeaseLost) if state.completing.load(Ordering::Relaxed) => false,
        Ok(Renewal::LeaseLost) => {
            if live() {
                lease_lost(e, &state, key, "renewal");
            }
            false
        }
        Err(err) => {
            Stats::inc(&e.stats.store_errors);
            static LOG: Throttle = Throttle::new();
            if let Some(suppressed) = LOG.admit() {
                tracing::warn!(target: "idempo", key = %key, error = %err, suppressed, "could not renew the claim; retrying");
            }
            true
        }
    }
}

async fn release(e: Arc<Shared>, id: RecordId, token: Token, state: Arc<State>) {
    let key = state.key;
    let released = e.store.release(&id, token).await;
    state.hold.end();
    match released {
        Ok(Release::Released) => tracing::debug!(target: "idempo", outcome = "released", key = %key),
        Ok(Release::LeaseLost) => lease_lost(&e, &state, key, "release"),
        Err(err) => {
            Stats::inc(&e.stats.store_errors);
            static LOG: Throttle = Throttle::new();
            if let Some(suppressed) = LOG.admit() {
                tracing::warn!(target: "idempo", key = %key, error = %err, suppressed,
                    "could not release the claim; it expires after lease_ttl");
            }
        }
    }
}

async fn persist(
    e: Arc<Shared>,
    id: RecordId,
    fingerprint: Fingerprint,
    token: Token,
    record: Record,
    state: Arc<State>,
) {
    let key = state.key;
    let deadline = Instant::now() + e.config.persist_timeout;
    let mut backoff = Duration::from_millis(50);
    let mut failures = 0u32;
    loop {
        let attempt =
            tokio::time::timeout_at(deadline, e.store.complete(&id, &fingerprint, token, &record, e.config.ttl)).await;
        let err = match attempt {
            Ok(Ok(Completion::Stored)) => {
                if failures > 0 {
                    tracing::info!(target: "idempo", key = %key, failures, "response stored after retrying");
                }
                return;
            }
            Ok(Ok(Completion::LeaseLost)) => return lease_lost(&e, &state, key, "completion"),
            Ok(Err(err)) => err.to_string(),
            Err(_) => "timed out".to_owned(),
        };
        failures += 1;
        if failures == 1 {
            static LOG: Throttle = Throttle::new();
            if let Some(suppressed) = LOG.admit() {
                tracing::warn!(target: "idempo", key = %key, error = %err, suppressed,
                    "could not store the response; retrying in the background");
            }
        }
        if Instant::now() + backoff >= deadline {
            Stats::inc(&e.stats.store_errors);
            static LOG: Throttle = Throttle::new();
            if let Some(suppressed) = LOG.admit() {
                tracing::error!(target: "idempo", key = %key, error = %err, failures, suppressed,
                    "gave up storing the response after persist_timeout: a retry will run the handler again once the lease expires");
            }
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}
