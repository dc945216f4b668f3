//! The hashers of the maps on the command path.
//!
//! The std default, SipHash-1-3, cost about 180 instructions per key of a few bytes, and
//! an XADD hashed its key (and a few integers) about 16 times: a fifth of the server's
//! instructions per XADD (callgrind, `bench/results/2026-12-07-hot-path-instructions.md`). So:
//! - [`KeyHash`] for what clients choose (key names, command names): foldhash (crate
//!   `foldhash`, by the author of hashbrown's default hasher, which it is), seeded at
//!   random once per process and per map. Like Redis's seeded SipHash it keeps an
//!   outsider from precomputing colliding keys; its authors call its DoS resistance
//!   minimal (no proof against an attacker who can observe timings), which is the
//!   trade Redis-like servers that moved off SipHash (Dragonfly, Garnet) made too.
//! - [`U64Keys`] for integers no client chooses (counters, log positions, addresses):
//!   one multiplication by 2^64/φ (Fibonacci hashing) spreads consecutive integers over
//!   a table, high bits included, which is where hashbrown looks.

use std::hash::{BuildHasherDefault, Hasher};

/// Multiplicative hash of one integer; see the module docs.
#[derive(Default, Clone, Copy)]
pub struct U64KeyHasher(u64);

const PHI: u64 = 0x9E37_79B9_7F4A_7C15;

impl Hasher for U64KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    /// Not an integer key: folds the bytes in (correct, if slower; unused so far).
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(PHI);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(PHI);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

/// `HashMap<u64 or usize, V, U64Keys>` for keys no client chooses.
pub type U64Keys = BuildHasherDefault<U64KeyHasher>;

/// For keys clients choose; see the module docs.
pub type KeyHash = foldhash::fast::RandomState;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn consecutive_keys_spread_and_round_trip() {
        let mut m: HashMap<u64, u64, U64Keys> = HashMap::default();
        for i in 0..100_000u64 {
            m.insert(i, i * 2);
        }
        assert!((0..100_000u64).all(|i| m.get(&i) == Some(&(i * 2))));
        // The top 7 bits (hashbrown's tag) differ across consecutive keys.
        let tags: std::collections::HashSet<u64> = (0..128u64)
            .map(|i| {
                let mut h = U64KeyHasher::default();
                h.write_u64(i);
                h.finish() >> 57
            })
            .collect();
        assert!(tags.len() > 64, "{} distinct tags", tags.len());
    }
}
