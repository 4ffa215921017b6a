//! Decision counters (B19), readable from every binding as `stats()`.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        #[derive(Debug, Default)]
        pub(crate) struct Stats { $(pub(crate) $name: AtomicU64,)* }

        /// A point-in-time copy of the engine's counters.
        #[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
        #[non_exhaustive]
        pub struct StatsSnapshot { $($(#[$doc])* pub $name: u64,)* }

        impl Stats {
            pub(crate) fn snapshot(&self) -> StatsSnapshot {
                StatsSnapshot { $($name: self.$name.load(Ordering::Relaxed),)* }
            }
        }

        impl StatsSnapshot {
            /// The counter names, in order (B19): the one list every binding reads.
            pub const NAMES: &'static [&'static str] = &[$(stringify!($name),)*];

            /// `(name, value)` pairs, for bindings that expose a dict or an object.
            pub fn fields(&self) -> [(&'static str, u64); counters!(@count $($name)*)] {
                [$((stringify!($name), self.$name),)*]
            }
        }
    };
    (@count $($name:ident)*) => { 0 $(+ counters!(@one $name))* };
    (@one $name:ident) => { 1 };
}

counters! {
    /// Covered requests passed through untouched: no key (where keys are optional), or run
    /// unprotected after a store error with `fail_open`. Requests whose method is not
    /// covered are not counted (an integration may never see them).
    bypassed,
    /// Requests that claimed their key and ran the handler.
    executed,
    /// Stored responses replayed.
    replayed,
    /// 409 answers: the key was in flight.
    conflicts,
    /// 422 answers: the key was used for a different request.
    mismatches,
    /// 400 answers: a missing (when required) or malformed key, or an unreadable body.
    invalid,
    /// 413 answers: the request body was larger than `max_request_body`.
    too_large,
    /// Store operations that failed (claim, renew, complete, release).
    store_errors,
    /// Completions or releases refused because the lease had been taken over.
    lease_lost,
    /// Responses stored without their body because they exceeded `max_response_body`.
    omitted,
    /// Duplicates that waited for their in-flight original (B20), whatever came of it.
    waited,
    /// Waits that ran out before the original finished: answered 409 (also counted in
    /// `conflicts`).
    wait_timeouts,
}

impl Stats {
    pub(crate) fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}
