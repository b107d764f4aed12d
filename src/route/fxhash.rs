//! A small, fast hasher for the index's internal maps (the FxHash scheme used inside rustc).
//!
//! Routing hashes a handful of short keys per event; SipHash, std's default, costs more than the
//! rest of a route put together. The keys hashed here are ids and the object types and actions
//! that administrators put in trigger lists: events only look keys up, they never insert, so an
//! outsider cannot grow a map with colliding keys and the HashDoS protection SipHash buys is not
//! needed.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A `HashMap` using [`FxHasher`].
pub(crate) type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// Multiply-rotate hashing, one 64-bit word at a time.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FxHasher {
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
        // The length first: otherwise zero bytes at the start would leave a zero state unchanged
        // ("" and "\0" would collide).
        self.add(bytes.len() as u64);
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
            self.add(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    #[inline]
    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

#[cfg(test)]
mod tests {
    use std::hash::{BuildHasher, BuildHasherDefault};

    use super::FxHasher;

    #[test]
    fn strings_differing_past_the_first_word_hash_apart() {
        let build = BuildHasherDefault::<FxHasher>::default();
        assert_ne!(
            build.hash_one("requirement"),
            build.hash_one("requirementx")
        );
        assert_ne!(
            build.hash_one("submitreview"),
            build.hash_one("submitreviex")
        );
        assert_ne!(build.hash_one(""), build.hash_one("\0"));
        assert_eq!(build.hash_one("bug"), build.hash_one(String::from("bug")));
    }
}
