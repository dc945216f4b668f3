//! Stream entry IDs and the exact argument grammar Redis accepts for them.
//!
//! Redis parses IDs with `strtoull`-flavoured rules (leading `+`, leading zeros
//! and even a leading `-0` are accepted, a negative number is not). Clients and
//! test-suites rely on those corners, so the parsers here reproduce
//! `streamGenericParseIDOrReply` rather than using Rust's stricter `u64::from_str`.

use std::fmt;

use crate::engine::error::StreamError;
use crate::syntax::string2ll;

/// A stream entry ID: milliseconds and a sequence number, ordered as a 128-bit number.
///
/// Field order matters: the derived `Ord` compares `ms` first, which is the
/// stream order Redis uses.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct StreamId {
    /// Milliseconds part (usually a Unix time in ms, but any u64 is allowed).
    pub ms: u64,
    /// Sequence part, disambiguating entries added in the same millisecond.
    pub seq: u64,
}

impl StreamId {
    /// `0-0`: smaller than every ID an entry can carry (XADD refuses it).
    pub const MIN: StreamId = StreamId { ms: 0, seq: 0 };
    /// The largest ID; once a stream's last ID is this, XADD is refused.
    pub const MAX: StreamId = StreamId {
        ms: u64::MAX,
        seq: u64::MAX,
    };

    /// Builds an ID from its two parts.
    pub const fn new(ms: u64, seq: u64) -> Self {
        StreamId { ms, seq }
    }

    /// The next ID in stream order, or `None` after [`StreamId::MAX`].
    ///
    /// Used for exclusive range starts (`(id`) and cursors such as XAUTOCLAIM's.
    pub fn incr(self) -> Option<StreamId> {
        if self.seq == u64::MAX {
            if self.ms == u64::MAX {
                None
            } else {
                Some(StreamId::new(self.ms + 1, 0))
            }
        } else {
            Some(StreamId::new(self.ms, self.seq + 1))
        }
    }

    /// The previous ID in stream order, or `None` before [`StreamId::MIN`].
    ///
    /// Used for exclusive range ends (`(id` in XREVRANGE's end position and XRANGE's end).
    pub fn decr(self) -> Option<StreamId> {
        if self.seq == 0 {
            if self.ms == 0 {
                None
            } else {
                Some(StreamId::new(self.ms - 1, u64::MAX))
            }
        } else {
            Some(StreamId::new(self.ms, self.seq - 1))
        }
    }

    /// Parses an ID where `-`/`+` are allowed and a bare `ms` means `ms-missing_seq`.
    ///
    /// This is Redis's `streamParseIDOrReply`: `missing_seq` is 0 for range
    /// starts and `u64::MAX` for range ends.
    pub fn parse(arg: &[u8], missing_seq: u64) -> Result<StreamId, StreamError> {
        parse_generic(arg, missing_seq, false, false).map(|(id, _)| id)
    }

    /// Parses an ID where `-` and `+` are refused (Redis's `streamParseStrictIDOrReply`),
    /// as XDEL, XACK, XCLAIM, XSETID and XGROUP do.
    pub fn parse_strict(arg: &[u8], missing_seq: u64) -> Result<StreamId, StreamError> {
        parse_generic(arg, missing_seq, true, false).map(|(id, _)| id)
    }

    /// Parses a range bound as XRANGE/XREVRANGE/XPENDING do: an optional `(` makes it exclusive.
    ///
    /// `(-` and `(+` are invalid IDs, as in Redis. An exclusive bound that cannot be
    /// moved (`(0-0` as a start, `(MAX` as an end) is reported as
    /// [`StreamError::InvalidStartId`]/[`StreamError::InvalidEndId`] by the caller,
    /// because only it knows which end of the interval it is parsing.
    pub fn parse_range_bound(arg: &[u8], missing_seq: u64) -> Result<RangeBound, StreamError> {
        match arg.split_first() {
            Some((b'(', rest)) if arg.len() > 1 => {
                let id = StreamId::parse_strict(rest, missing_seq)?;
                Ok(RangeBound {
                    id,
                    exclusive: true,
                })
            }
            _ => Ok(RangeBound {
                id: StreamId::parse(arg, missing_seq)?,
                exclusive: false,
            }),
        }
    }
}

impl StreamId {
    /// The `ms-seq` text as bytes, without going through `core::fmt` (this runs
    /// for every XADD reply and every logged ID).
    pub fn to_bytes(self) -> bytes::Bytes {
        let mut a = itoa::Buffer::new();
        let mut b = itoa::Buffer::new();
        let (ms, seq) = (a.format(self.ms), b.format(self.seq));
        let mut out = Vec::with_capacity(ms.len() + 1 + seq.len());
        out.extend_from_slice(ms.as_bytes());
        out.push(b'-');
        out.extend_from_slice(seq.as_bytes());
        bytes::Bytes::from(out)
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut a = itoa::Buffer::new();
        let mut b = itoa::Buffer::new();
        f.write_str(a.format(self.ms))?;
        f.write_str("-")?;
        f.write_str(b.format(self.seq))
    }
}

/// One end of an XRANGE-like interval, before exclusivity is folded into the ID.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RangeBound {
    /// The ID as written (without the `(`).
    pub id: StreamId,
    /// Whether the bound was written `(id`.
    pub exclusive: bool,
}

impl RangeBound {
    /// The inclusive start equivalent to this bound, or `None` if it is `(MAX` (empty range).
    pub fn as_start(self) -> Option<StreamId> {
        if self.exclusive {
            self.id.incr()
        } else {
            Some(self.id)
        }
    }

    /// The inclusive end equivalent to this bound, or `None` if it is `(0-0` (empty range).
    pub fn as_end(self) -> Option<StreamId> {
        if self.exclusive {
            self.id.decr()
        } else {
            Some(self.id)
        }
    }
}

/// The ID argument of XADD: what the client asked for, before the stream resolves it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum AddIdSpec {
    /// `*`: the server picks `max(now_ms, last.ms)` with the next sequence.
    Auto,
    /// `ms-*`: the caller fixes the milliseconds, the server picks the sequence.
    AutoSeq(u64),
    /// `ms-seq` or a bare `ms` (meaning `ms-0`).
    Explicit(StreamId),
}

impl AddIdSpec {
    /// Parses XADD's ID argument exactly as `streamParseAddOrTrimArgsOrReply` does:
    /// strictly, so `-` and `+` are invalid IDs here.
    pub fn parse(arg: &[u8]) -> Result<AddIdSpec, StreamError> {
        if arg == b"*" {
            return Ok(AddIdSpec::Auto);
        }
        let (id, seq_given) = parse_generic(arg, 0, true, true)?;
        if seq_given {
            Ok(AddIdSpec::Explicit(id))
        } else {
            Ok(AddIdSpec::AutoSeq(id.ms))
        }
    }
}

/// Redis copies the argument into a 128-byte buffer; longer arguments are invalid.
const MAX_ID_ARG_LEN: usize = 127;

/// The shared parser: returns the ID and whether the sequence was given (false only for `ms-*`).
fn parse_generic(
    arg: &[u8],
    missing_seq: u64,
    strict: bool,
    allow_auto_seq: bool,
) -> Result<(StreamId, bool), StreamError> {
    if arg.len() > MAX_ID_ARG_LEN {
        return Err(StreamError::InvalidId);
    }
    // Redis works on a C string: an embedded NUL ends the argument.
    let arg = match arg.iter().position(|&b| b == 0) {
        Some(nul) => &arg[..nul],
        None => arg,
    };
    match arg {
        b"-" | b"+" if strict => Err(StreamError::InvalidId),
        b"-" => Ok((StreamId::MIN, true)),
        b"+" => Ok((StreamId::MAX, true)),
        _ => {
            let (ms_part, seq_part) = match arg.iter().position(|&b| b == b'-') {
                Some(dash) => (&arg[..dash], Some(&arg[dash + 1..])),
                None => (arg, None),
            };
            let ms = parse_c_u64(ms_part).ok_or(StreamError::InvalidId)?;
            match seq_part {
                None => Ok((StreamId::new(ms, missing_seq), true)),
                Some(b"*") if allow_auto_seq => Ok((StreamId::new(ms, 0), false)),
                Some(seq) => {
                    let seq = parse_c_u64(seq).ok_or(StreamError::InvalidId)?;
                    Ok((StreamId::new(ms, seq), true))
                }
            }
        }
    }
}

/// Redis's `string2ull`: a canonical `long long` if possible (negatives refused),
/// otherwise `strtoull` semantics (leading spaces, sign, leading zeros; overflow refused).
fn parse_c_u64(s: &[u8]) -> Option<u64> {
    if let Some(v) = string2ll(s) {
        return u64::try_from(v).ok();
    }
    strtoull(s)
}

/// C's `strtoull(s, &end, 10)` accepted only when it consumed the whole, non-empty string.
fn strtoull(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let mut i = 0;
    while i < s.len() && matches!(s[i], b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r') {
        i += 1;
    }
    let mut negative = false;
    if i < s.len() && (s[i] == b'+' || s[i] == b'-') {
        negative = s[i] == b'-';
        i += 1;
    }
    let digits = &s[i..];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut v: u64 = 0;
    for &d in digits {
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    // strtoull negates in unsigned arithmetic: "-1" would be u64::MAX, but that
    // case never reaches here (string2ll handles it and refuses negatives).
    Some(if negative { v.wrapping_neg() } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(ms: u64, seq: u64) -> StreamId {
        StreamId::new(ms, seq)
    }

    #[test]
    fn order_and_display() {
        assert!(id(1, 5) < id(2, 0));
        assert!(id(1, 5) < id(1, 6));
        assert_eq!(id(12, 3).to_string(), "12-3");
        assert_eq!(
            StreamId::MAX.to_string(),
            "18446744073709551615-18446744073709551615"
        );
    }

    #[test]
    fn incr_decr_carry_and_saturate() {
        assert_eq!(id(1, u64::MAX).incr(), Some(id(2, 0)));
        assert_eq!(StreamId::MAX.incr(), None);
        assert_eq!(id(2, 0).decr(), Some(id(1, u64::MAX)));
        assert_eq!(StreamId::MIN.decr(), None);
    }

    #[test]
    fn parse_defaults_missing_seq() {
        assert_eq!(StreamId::parse(b"5", 0).ok(), Some(id(5, 0)));
        assert_eq!(StreamId::parse(b"5", u64::MAX).ok(), Some(id(5, u64::MAX)));
        assert_eq!(StreamId::parse(b"5-7", u64::MAX).ok(), Some(id(5, 7)));
        assert_eq!(StreamId::parse(b"-", 0).ok(), Some(StreamId::MIN));
        assert_eq!(StreamId::parse(b"+", 0).ok(), Some(StreamId::MAX));
    }

    #[test]
    fn parse_accepts_strtoull_corners() {
        assert_eq!(StreamId::parse(b"007-01", 0).ok(), Some(id(7, 1)));
        assert_eq!(StreamId::parse(b"+5", 0).ok(), Some(id(5, 0)));
        assert_eq!(StreamId::parse(b" 5", 0).ok(), Some(id(5, 0)));
        assert_eq!(
            StreamId::parse(b"18446744073709551615-18446744073709551615", 0).ok(),
            Some(StreamId::MAX)
        );
        // "1--0": the seq part is "-0", which string2ll refuses and strtoull accepts.
        assert_eq!(StreamId::parse(b"1--0", 0).ok(), Some(id(1, 0)));
    }

    #[test]
    fn parse_rejects_garbage() {
        for bad in [
            &b""[..],
            b"abc",
            b"1-",
            b"-1",
            b"1--1",
            b"1-2-3",
            b"18446744073709551616",
            b"1-x",
            b"1 ",
            b"++",
        ] {
            assert!(
                StreamId::parse(bad, 0).is_err(),
                "{:?} should be invalid",
                String::from_utf8_lossy(bad)
            );
        }
        let long = vec![b'1'; 128];
        assert!(StreamId::parse(&long, 0).is_err());
    }

    #[test]
    fn strict_refuses_dash_and_plus() {
        assert!(StreamId::parse_strict(b"-", 0).is_err());
        assert!(StreamId::parse_strict(b"+", 0).is_err());
        assert_eq!(StreamId::parse_strict(b"3", 0).ok(), Some(id(3, 0)));
    }

    #[test]
    fn range_bounds() {
        let b = StreamId::parse_range_bound(b"(5-1", 0).ok();
        assert_eq!(
            b,
            Some(RangeBound {
                id: id(5, 1),
                exclusive: true
            })
        );
        assert_eq!(b.and_then(RangeBound::as_start), Some(id(5, 2)));
        assert_eq!(b.and_then(RangeBound::as_end), Some(id(5, 0)));
        assert!(StreamId::parse_range_bound(b"(-", 0).is_err());
        assert!(StreamId::parse_range_bound(b"(+", 0).is_err());
        // A lone "(" is parsed as an ID and is invalid.
        assert!(StreamId::parse_range_bound(b"(", 0).is_err());
        let open_end = StreamId::parse_range_bound(b"(5", u64::MAX).ok();
        assert_eq!(
            open_end.and_then(RangeBound::as_end),
            Some(id(5, u64::MAX - 1))
        );
    }

    #[test]
    fn xadd_specs() {
        assert_eq!(AddIdSpec::parse(b"*").ok(), Some(AddIdSpec::Auto));
        assert_eq!(AddIdSpec::parse(b"5-*").ok(), Some(AddIdSpec::AutoSeq(5)));
        assert_eq!(
            AddIdSpec::parse(b"5").ok(),
            Some(AddIdSpec::Explicit(id(5, 0)))
        );
        assert_eq!(
            AddIdSpec::parse(b"5-3").ok(),
            Some(AddIdSpec::Explicit(id(5, 3)))
        );
        assert!(AddIdSpec::parse(b"-").is_err());
        assert!(AddIdSpec::parse(b"+").is_err());
        assert!(AddIdSpec::parse(b"*-5").is_err());
        assert!(AddIdSpec::parse(b"5-**").is_err());
        // Elsewhere "ms-*" is not an ID.
        assert!(StreamId::parse(b"5-*", 0).is_err());
    }
}
