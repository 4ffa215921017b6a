//! Random bytes for fencing tokens (B10) without a system call per claim: a ChaCha12
//! generator per thread, seeded from the OS (`getrandom`).
//!
//! A forked child (Python's multiprocessing, gunicorn's pre-fork workers) starts with a
//! copy of its parent's generators and would draw the same tokens: a handler registered
//! with `pthread_atfork` counts forks (`crate::forks`), and a generator seeded before the
//! latest fork seeds itself again before it is used.

use std::cell::RefCell;

use chacha20::ChaCha12Rng;
use rand_core::{Rng, SeedableRng};

thread_local! {
    /// This thread's generator and the fork count it was seeded under.
    static GENERATOR: RefCell<Option<(u64, ChaCha12Rng)>> = const { RefCell::new(None) };
}

/// Fill `out` with random bytes; an error only when the OS has no randomness to seed with.
pub(crate) fn fill(out: &mut [u8]) -> Result<(), getrandom::Error> {
    let forks = crate::forks::generation();
    let drawn = GENERATOR.try_with(|cell| {
        let mut cell = cell.borrow_mut();
        let rng = match &mut *cell {
            Some((seeded, rng)) if *seeded == forks => rng,
            slot => {
                let mut seed = [0u8; 32];
                getrandom::fill(&mut seed)?;
                &mut slot.insert((forks, ChaCha12Rng::from_seed(seed))).1
            }
        };
        rng.fill_bytes(out);
        Ok(())
    });
    // A thread being torn down has no generator left: ask the OS directly.
    drawn.unwrap_or_else(|_| getrandom::fill(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draw() -> [u8; 16] {
        let mut b = [0u8; 16];
        fill(&mut b).expect("OS randomness");
        b
    }

    #[test]
    fn draws_differ_within_and_across_threads() {
        let mut seen: Vec<[u8; 16]> = (0..1000).map(|_| draw()).collect();
        seen.extend(std::thread::spawn(|| (0..1000).map(|_| draw()).collect::<Vec<_>>()).join().unwrap());
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 2000);
    }

    #[cfg(unix)]
    #[test]
    fn a_forked_child_draws_other_tokens_than_its_parent() {
        draw(); // this thread's generator exists before the fork
        let mut pipe = [0i32; 2];
        // SAFETY: plain POSIX calls; the child only draws, writes 16 bytes and exits.
        unsafe {
            assert_eq!(libc::pipe(pipe.as_mut_ptr()), 0);
            let pid = libc::fork();
            assert!(pid >= 0);
            if pid == 0 {
                let b = draw();
                libc::write(pipe[1], b.as_ptr().cast(), 16);
                libc::_exit(0);
            }
            let parent = draw();
            let mut child = [0u8; 16];
            assert_eq!(libc::read(pipe[0], child.as_mut_ptr().cast(), 16), 16);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
            assert_ne!(parent, child, "the child reseeded after the fork");
        }
    }
}
