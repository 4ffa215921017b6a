//! Repeated log lines, throttled: during a store outage every request fails the same way,
//! and one line per request would bury everything else in the log (issue 15). Each call
//! site keeps a [`Throttle`]; it lets one line through per window and counts the rest,
//! which the next line reports as `suppressed`. The counters (`stats()`) still count every
//! one.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// At most one line per call site in this long.
pub(crate) const WINDOW: Duration = Duration::from_secs(1);

pub(crate) struct Throttle {
    /// When the next line may go out, in milliseconds since the process's first use.
    next: AtomicU64,
    suppressed: AtomicU64,
}

fn now_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64
}

impl Throttle {
    pub(crate) const fn new() -> Throttle {
        Throttle { next: AtomicU64::new(0), suppressed: AtomicU64::new(0) }
    }

    /// `Some(n)` when a line may be logged now (`n` were suppressed since the last one);
    /// `None` when this one is to be dropped.
    pub(crate) fn admit(&self) -> Option<u64> {
        let now = now_ms();
        let next = self.next.load(Ordering::Relaxed);
        if now >= next
            && self
                .next
                .compare_exchange(next, now + WINDOW.as_millis() as u64, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::AcqRel));
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_window_then_the_count_of_the_rest() {
        let t = Throttle::new();
        assert_eq!(t.admit(), Some(0));
        for _ in 0..99 {
            assert_eq!(t.admit(), None);
        }
        std::thread::sleep(WINDOW + Duration::from_millis(20));
        assert_eq!(t.admit(), Some(99));
        assert_eq!(t.admit(), None);
    }
}
