//! A small, fast, non-cryptographic string hasher for the engine's lookup tables (`IN`
//! sets, trait-name slots): hashing is on the per-identity hot path, and SipHash's
//! flooding resistance buys nothing here, since the tables are fixed at compile time and
//! a lookup cannot grow them.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// Word-at-a-time multiply-rotate hashing with a SplitMix64 finaliser, so that every
/// output bit depends on every input bit (hashbrown uses both the low and the top bits).
#[derive(Debug, Default, Clone, Copy)]
pub struct FxHasher {
    hash: u64,
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            // The length keeps "a" and "a\0" apart.
            self.add(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 59));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        let mut z = self.hash;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

pub type FxBuildHasher = BuildHasherDefault<FxHasher>;
pub type FxHashMap<K, V> = HashMap<K, V, FxBuildHasher>;
pub type FxHashSet<T> = HashSet<T, FxBuildHasher>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_find_exactly_their_members() {
        let members: FxHashSet<Box<str>> = (0..500).map(|i| format!("C{i:03}").into()).collect();
        for i in 0..500 {
            assert!(members.contains(format!("C{i:03}").as_str()));
        }
        for probe in ["C500", "", "C0", "C0000", "c001", "C001\0"] {
            assert!(!members.contains(probe));
        }
    }

    #[test]
    fn similar_strings_spread_over_buckets() {
        use std::hash::BuildHasher;
        let b = FxBuildHasher::default();
        let low: HashSet<u64> = (0..1000)
            .map(|i| b.hash_one(format!("C{i:03}")) & 1023)
            .collect();
        assert!(low.len() > 500, "{} distinct low-bit buckets", low.len());
    }
}
