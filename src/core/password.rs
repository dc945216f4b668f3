//! Password checks that take the same time whatever the guess.
//!
//! A plain `==` on the password stops at the first differing byte (and at once when the
//! lengths differ), so a client that can time AUTH replies learns the password's length
//! and then its bytes one at a time. Redis avoids this by comparing SHA-256 digests of
//! the two passwords with `time_independent_strcmp` (acl.c): the digests have a fixed
//! length, so neither the content nor the length of the password shows in the timing.
//!
//! Rill does the same with two small, widely used and audited crates rather than
//! hand-written code: `sha2` for the digests and `subtle`'s `ConstantTimeEq` for the
//! comparison, which is written so the optimiser cannot turn it back into an early exit
//! (a hand-rolled XOR loop gives no such guarantee). ACL users keep only the hex digest
//! (`requirepass` too, as the `default` user's password), so the stored side is hashed once.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Redis's `ACLHashPassword`: the SHA-256 of the password as 64 lower-case hex digits, the
/// form ACL users keep (and ACL LIST / GETUSER show), so no clear-text password is stored.
pub fn hash_password(pass: &[u8]) -> String {
    use std::fmt::Write;
    let digest = Sha256::digest(pass);
    let mut out = String::with_capacity(64);
    for b in digest {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Redis's `ACLCheckPasswordHash`: exactly 64 lower-case hex digits.
pub fn is_password_hash(text: &[u8]) -> bool {
    text.len() == 64 && text.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

/// True when `given` hashes to `stored` (a [`hash_password`] string), in time independent
/// of the contents and lengths of both (beyond hashing `given`, which is linear in it and
/// reveals nothing of the stored password), as Redis's `time_independent_strcmp` over the
/// two hashes.
pub fn hash_matches(stored: &str, given: &[u8]) -> bool {
    let given = hash_password(given);
    stored.as_bytes().ct_eq(given.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_passwords_match_and_others_do_not() {
        let stored = hash_password(b"s3cr3t pass!");
        assert!(hash_matches(&stored, b"s3cr3t pass!"));
        assert!(hash_matches(&hash_password(b""), b""));
        for wrong in [
            &b""[..],
            b"s",
            b"s3cr3t pass",
            b"s3cr3t pass!!",
            b"S3cr3t pass!",
            b"s3cr3t pass?",
            b"s3cr3t pass!\0",
        ] {
            assert!(
                !hash_matches(&stored, wrong),
                "{:?}",
                String::from_utf8_lossy(wrong)
            );
        }
        assert_eq!(
            hash_password(b"pw"),
            "30c952fab122c3f9759f02a6d95c3758b246b4fee239957b2d4fee46e26170c4"
        );
        assert!(hash_matches(&hash_password(b"pw"), b"pw"));
        assert!(!hash_matches(&hash_password(b"pw"), b"pW"));
        assert!(is_password_hash(hash_password(b"").as_bytes()));
        assert!(!is_password_hash(
            b"30C952fab122c3f9759f02a6d95c3758b246b4fee239957b2d4fee46e26170c4"
        ));
        // Binary passwords are bytes, not text.
        assert!(hash_matches(&hash_password(&[0xff, 0, 7]), &[0xff, 0, 7]));
        assert!(!hash_matches(&hash_password(&[0xff, 0, 7]), &[0xff, 0, 8]));
    }
}
