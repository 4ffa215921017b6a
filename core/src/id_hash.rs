//! The hash of the in-process maps keyed by record ids (held claims, waiters, the memory
//! store) and by renewal tickets.
//!
//! A record id is already a SHA-256 output, so its bits are uniform, and no client can
//! choose more than a few dozen of them (each bit costs doubling the keys it tries). What
//! protects the maps from keys ground to collide is a per-process secret mixed in, not a
//! second cryptographic hash: two rounds of a keyed folded multiply over the id's first
//! 128 bits, about 20 instructions where SipHash over all 32 bytes takes ~270.

use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;

/// Per-process secret keys, drawn from the standard library's randomly seeded hasher.
fn keys() -> (u64, u64) {
    static KEYS: OnceLock<(u64, u64)> = OnceLock::new();
    *KEYS.get_or_init(|| {
        let random = std::collections::hash_map::RandomState::new();
        (random.hash_one(0x1d_u64), random.hash_one(0xe3_u64) | 1)
    })
}

/// The folded 64×64→128-bit product: every input bit reaches every output bit.
fn fold(a: u64, b: u64) -> u64 {
    let p = (a as u128).wrapping_mul(b as u128);
    (p as u64) ^ ((p >> 64) as u64)
}

#[derive(Clone, Copy)]
pub(crate) struct IdHash {
    k0: u64,
    k1: u64,
}

impl Default for IdHash {
    fn default() -> Self {
        let (k0, k1) = keys();
        IdHash { k0, k1 }
    }
}

impl BuildHasher for IdHash {
    type Hasher = IdHasher;

    fn build_hasher(&self) -> IdHasher {
        IdHasher { h: self.k0, k: self.k1 }
    }
}

pub(crate) struct IdHasher {
    h: u64,
    k: u64,
}

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        fold(self.h, self.k)
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.h = fold(self.h ^ n, self.k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fingerprint::RecordId;

    #[test]
    fn ids_spread_over_buckets() {
        // 4 096 ids that share all but 12 bits (more than a client could grind) still
        // spread evenly over 64 buckets.
        let build = IdHash::default();
        let mut buckets = [0u32; 64];
        for i in 0..4096u32 {
            let mut id = [7u8; 32];
            id[15] = (i & 0xff) as u8;
            id[14] = (i >> 8) as u8;
            buckets[(build.hash_one(RecordId(id)) % 64) as usize] += 1;
        }
        assert!(buckets.iter().all(|&n| (24..=104).contains(&n)), "{buckets:?}");
    }

    #[test]
    fn equal_ids_hash_alike_and_keys_differ_per_hasher_state() {
        let build = IdHash::default();
        assert_eq!(build.hash_one(RecordId([1; 32])), build.hash_one(RecordId([1; 32])));
        assert_ne!(build.hash_one(RecordId([1; 32])), build.hash_one(RecordId([2; 32])));
    }
}
