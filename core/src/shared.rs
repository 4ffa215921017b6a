//! What the engine and its leases share: the store, the configuration and the counters.
//! Its own module so that `engine` (which makes leases) and `lease` (which reports back)
//! both depend on it and not on each other.

use std::sync::Arc;

use http::{HeaderName, HeaderValue};

use crate::config::Config;
use crate::held::Held;
use crate::stats::Stats;
use crate::store::Store;

pub(crate) struct Shared {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) config: Config,
    pub(crate) stats: Stats,
    /// The request headers `check` reads.
    pub(crate) read: Vec<HeaderName>,
    /// The claims this process holds.
    pub(crate) held: Held,
    /// How many requests wait on an in-flight duplicate now (B20, `max_waiters`).
    pub(crate) waiting: std::sync::atomic::AtomicUsize,
    /// The leases to renew, and the one task renewing them (B10).
    pub(crate) renewals: crate::renewal::Renewals,
}

impl Shared {
    /// Whether a response header is one to keep for the replay (B14).
    pub(crate) fn replayable(&self, name: &HeaderName) -> bool {
        self.config.replay_headers.contains(name)
    }

    /// Keep the replayable headers, in order, at most as many as a record can hold.
    pub(crate) fn replayable_headers<'a>(
        &self,
        headers: impl IntoIterator<Item = (&'a HeaderName, &'a HeaderValue)>,
    ) -> Vec<(HeaderName, HeaderValue)> {
        headers
            .into_iter()
            .filter(|(name, _)| self.replayable(name))
            .take(u16::MAX as usize)
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect()
    }
}
