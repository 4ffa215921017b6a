//! How many times this process has been forked, as seen by the child: what a copy of a
//! parent's state (a token generator, a memory store) compares to know it must start
//! afresh, without a `getpid` system call on every use.
//!
//! Counted by a handler registered with `pthread_atfork` the first time anyone asks, so a
//! fork before that first question is not seen; callers ask when they make their state.

use std::sync::atomic::{AtomicU64, Ordering};

/// Forks this process has gone through since the handler was registered.
static FORKS: AtomicU64 = AtomicU64::new(0);

/// The fork count now (0 in a process never forked, and where there is no `fork`).
pub(crate) fn generation() -> u64 {
    register();
    FORKS.load(Ordering::Relaxed)
}

#[cfg(unix)]
fn register() {
    static REGISTER: std::sync::Once = std::sync::Once::new();
    REGISTER.call_once(|| {
        extern "C" fn in_child() {
            FORKS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the handler only increments an atomic, which is safe in a child that
        // has just been forked (no lock, no allocation).
        unsafe {
            libc::pthread_atfork(None, None, Some(in_child));
        }
    });
}

#[cfg(not(unix))]
fn register() {}
