//! Redis's parsing rules that more than one layer needs, defined once.
//!
//! Redis parses every integer a client or a config file gives it — a request header's
//! `*3` and `$5`, a command's `COUNT 10`, `port 6379` — with `string2ll` (util.c). Copies
//! of it drift (one accepted `+4`, another `01`), and each drift is a place where Rill
//! answers differently from Redis, so every layer calls [`string2ll`].

/// Parses a signed 64-bit integer exactly as Redis's `string2ll`: an optional `-`, then
/// digits without a leading zero (only "0" itself starts with one); no `+`, no blanks, no
/// `-0`, no overflow, and nothing of 21 bytes or more (`LONG_STR_SIZE`).
pub fn string2ll(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() >= 21 {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let (negative, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    match digits.first() {
        Some(b'1'..=b'9') => {}
        _ => return None,
    }
    let mut v: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    if negative {
        // |i64::MIN| is one more than i64::MAX.
        0i64.checked_sub_unsigned(v)
    } else {
        i64::try_from(v).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string2ll_rules() {
        assert_eq!(string2ll(b"10"), Some(10));
        assert_eq!(string2ll(b"-10"), Some(-10));
        assert_eq!(string2ll(b"0"), Some(0));
        assert_eq!(string2ll(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(string2ll(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b""[..],
            b"-",
            b"+",
            b"+1",
            b"01",
            b"-01",
            b"00",
            b"-0",
            b" 1",
            b"1 ",
            b"1\r",
            b"--1",
            b"1-",
            b"1.0",
            b"0x10",
            b"9223372036854775808",
            b"-9223372036854775809",
            b"18446744073709551616",
            b"100000000000000000000",
        ] {
            assert_eq!(string2ll(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
