//! Unpredictable numbers for the fields an attacker must not guess: NAT's
//! outside ports (RFC 6056), IP identifications (RFC 7739), hash seeds.
//! xorshift64* (Vigna), seeded from the keys std draws from the OS: fast
//! enough per packet, not a cryptographic generator.

use std::hash::{BuildHasher, Hasher};

/// A xorshift64* generator.
#[derive(Debug, Clone)]
pub struct Random(u64);

impl Random {
    /// A generator seeded at random.
    pub fn seeded() -> Random {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(0x5eed);
        Random(h.finish() | 1)
    }

    /// A generator that always gives the same numbers (a fuzzer's inputs
    /// must replay the same way).
    pub fn from_seed(seed: u64) -> Random {
        Random(seed | 1)
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        let (state, out) = self.peek();
        self.0 = state;
        out
    }

    /// The next number and the state after it, without moving on (a dry
    /// run takes what the real run will).
    pub fn peek(&self) -> (u64, u64) {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        (x, x.wrapping_mul(0x2545_f491_4f6c_dd1d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peek_then_next_agree_and_seeds_differ() {
        let mut r = Random::seeded();
        let (_, out) = r.peek();
        assert_eq!(r.next_u64(), out);
        assert_ne!(r.next_u64(), out);
        assert_ne!(Random::seeded().next_u64(), Random::seeded().next_u64());
    }
}
