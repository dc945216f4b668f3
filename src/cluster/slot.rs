//! Hash slots: `CRC16(key) mod 16384`, where a key with a non-empty `{…}` hashes only what
//! is between its first `{` and the first `}` after it (a hash tag), exactly as Redis's
//! `keyHashSlot` (`cluster.c`).
//!
//! The CRC is CRC-16/XMODEM (polynomial 0x1021, initial value 0, no reflection), the
//! variant Redis's `crc16.c` implements. It is 20 lines with a table built at compile
//! time, so no crate is taken for it: the `crc16` crate on crates.io has had no release
//! since 2018, and a hand-written table is checked here against the vectors Redis's own
//! tests and documentation give (`123456789` → 0x31C3, `{user1000}.following` → 3443 …)
//! and, in `tests/differential_cluster.rs`, against a real Redis 8.6.3's CLUSTER KEYSLOT.

/// The number of hash slots of a Redis cluster.
pub const SLOTS: u16 = 16384;

/// CRC-16/XMODEM lookup table, one entry per byte value.
const TABLE: [u16; 256] = {
    let mut table = [0u16; 256];
    let mut byte = 0;
    while byte < 256 {
        let mut crc = (byte as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
            bit += 1;
        }
        table[byte] = crc;
        byte += 1;
    }
    table
};

/// CRC-16/XMODEM of `bytes`.
pub fn crc16(bytes: &[u8]) -> u16 {
    bytes.iter().fold(0u16, |crc, &b| {
        (crc << 8) ^ TABLE[usize::from((crc >> 8) as u8 ^ b)]
    })
}

/// The part of `key` that decides its slot: the hash tag if there is a non-empty one,
/// else the whole key. `{}` (empty tag) and a `{` without a later `}` hash the whole key.
pub fn hash_tag(key: &[u8]) -> &[u8] {
    let Some(open) = key.iter().position(|&b| b == b'{') else {
        return key;
    };
    match key[open + 1..].iter().position(|&b| b == b'}') {
        Some(len) if len > 0 => &key[open + 1..open + 1 + len],
        _ => key,
    }
}

/// The hash slot of `key` (0..16384).
pub fn key_slot(key: &[u8]) -> u16 {
    crc16(hash_tag(key)) & (SLOTS - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_matches_the_xmodem_check_value() {
        // The CRC catalogue's check value for CRC-16/XMODEM, and Redis's crc16.c comment.
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(crc16(b""), 0);
    }

    #[test]
    fn slots_match_redis_documentation_and_tests() {
        // From the Redis Cluster specification and tests/unit/cluster/*.tcl.
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"bar"), 5061);
        assert_eq!(key_slot(b"somekey"), 11058);
        assert_eq!(key_slot(b"{user1000}.following"), 3443);
        assert_eq!(key_slot(b"{user1000}.followers"), 3443);
        assert_eq!(key_slot(b"user1000"), 3443);
    }

    #[test]
    fn hash_tags_follow_keyhashslot() {
        assert_eq!(hash_tag(b"{a}b"), b"a");
        assert_eq!(hash_tag(b"x{a}{b}"), b"a");
        assert_eq!(
            hash_tag(b"{}a"),
            b"{}a",
            "an empty tag hashes the whole key"
        );
        assert_eq!(hash_tag(b"{}{a}"), b"{}{a}", "only the first {{ counts");
        assert_eq!(hash_tag(b"a{b"), b"a{b", "no closing brace");
        assert_eq!(hash_tag(b"a}b{c}"), b"c");
        assert_eq!(hash_tag(b"{{a}}"), b"{a");
        assert_eq!(key_slot(b"foo{}{bar}"), key_slot(b"foo{}{bar}"));
        assert_ne!(key_slot(b"foo{}{bar}"), key_slot(b"bar"));
        assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
        assert_eq!(key_slot(b"foo{bar}{zap}"), key_slot(b"bar"));
    }

    #[test]
    fn every_slot_is_below_16384() {
        for i in 0..100_000u32 {
            assert!(key_slot(i.to_string().as_bytes()) < SLOTS);
        }
    }
}
