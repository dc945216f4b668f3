//! Request framing: RESP multibulk requests and inline commands (`PING\r\n` as
//! telnet and nc send them), framed exactly as Redis's `processMultibulkBuffer` and
//! `processInlineBuffer` frame them.
//!
//! A general RESP parser re-parses a frame from its first byte on every call, which is
//! quadratic when a large bulk string trickles in through many small reads. So this
//! scanner walks the frame's headers once, remembers how far it got and where each
//! argument lies, and cuts the arguments out of the buffer when the whole frame is
//! present. It is the only parser of a request: a second one (Rill used to hand the
//! frame to `redis-protocol`) has its own rules and its own error texts, and every
//! place where the two disagree is an input Redis accepts or refuses differently.
//! Redis's rules, reproduced here:
//! - a header line ends at its first CR; the byte after it is skipped unseen;
//! - header integers are parsed with `string2ll` ([`crate::syntax::string2ll`]);
//! - the two bytes after a bulk's data are skipped unchecked.
//!
//! The scanner is also where Redis's limits are enforced, with Redis's texts.

use bytes::{Buf, Bytes, BytesMut};

use crate::syntax::string2ll;

/// Longest header line or inline request Redis accepts (`PROTO_INLINE_MAX_SIZE`).
const INLINE_MAX: usize = 64 * 1024;

/// Most arguments, and longest argument, that Redis lets a client send before it has
/// authenticated (`processMultibulkBuffer`): enough for `AUTH user pass` or `HELLO 3
/// AUTH user pass SETNAME name`, far too little to make the server buffer
/// `proto-max-bulk-len` for a client that does not know the password.
const UNAUTHENTICATED_MULTIBULK_MAX: i64 = 10;
const UNAUTHENTICATED_BULK_MAX: i64 = 16384;

/// A framing error. The connection answers with the text and closes, as Redis does.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtocolError {
    #[error("ERR Protocol error: invalid multibulk length")]
    InvalidMultibulkLength,
    #[error("ERR Protocol error: invalid bulk length")]
    InvalidBulkLength,
    #[error("ERR Protocol error: expected '$', got '{0}'")]
    ExpectedDollar(char),
    #[error("ERR Protocol error: too big mbulk count string")]
    TooBigMultibulkCount,
    #[error("ERR Protocol error: too big bulk count string")]
    TooBigBulkCount,
    #[error("ERR Protocol error: too big inline request")]
    TooBigInline,
    #[error("ERR Protocol error: unbalanced quotes in request")]
    UnbalancedQuotes,
    #[error("ERR Protocol error: unauthenticated multibulk length")]
    UnauthenticatedMultibulkLength,
    #[error("ERR Protocol error: unauthenticated bulk length")]
    UnauthenticatedBulkLength,
}

/// Where the scanner stands inside a multibulk frame that is not complete yet.
#[derive(Debug)]
struct Partial {
    /// Arguments still to scan.
    remaining: usize,
    /// Offset of the next unscanned byte of the frame.
    pos: usize,
    /// Length of the bulk whose header was scanned but whose data is not all here.
    bulk_len: Option<usize>,
    /// Where each scanned argument's data lies in the frame: (offset, length).
    args: Vec<(usize, usize)>,
}

/// Arguments reserved up front, whatever count the header announces (Redis's
/// `argv_len` cap): the count is the client's word, not memory it has sent.
const ARGS_RESERVED_MAX: usize = 1024;

/// Splits a connection's input buffer into requests (argument vectors).
#[derive(Debug)]
pub struct RequestDecoder {
    max_bulk_len: u64,
    /// Whether the unauthenticated client limits apply.
    unauthenticated: bool,
    partial: Option<Partial>,
    /// The argument positions of the last request, emptied, for the next one (no
    /// allocation per request).
    spare: Vec<(usize, usize)>,
}

impl RequestDecoder {
    /// A decoder that rejects bulk strings longer than `max_bulk_len` (`proto-max-bulk-len`).
    pub fn new(max_bulk_len: u64) -> Self {
        RequestDecoder {
            max_bulk_len,
            unauthenticated: false,
            partial: None,
            spare: Vec::new(),
        }
    }

    /// Updates the bulk length limit (CONFIG SET proto-max-bulk-len).
    pub fn set_max_bulk_len(&mut self, max: u64) {
        self.max_bulk_len = max;
    }

    /// Turns the limits for a client that must authenticate and has not yet on or off
    /// (Redis's `authRequired`). The connection says so before each request, since
    /// AUTH, HELLO AUTH or RESET earlier in the same read can change it.
    pub fn set_unauthenticated(&mut self, unauthenticated: bool) {
        self.unauthenticated = unauthenticated;
    }

    /// Takes the next complete request off the front of `buf`.
    ///
    /// Returns `Ok(None)` when more bytes are needed. Empty requests (an empty
    /// inline line, `*0`) are skipped without a reply, as Redis does.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        loop {
            if self.partial.is_none() {
                if buf.is_empty() {
                    return Ok(None);
                }
                if buf[0] != b'*' {
                    match decode_inline(buf)? {
                        Some(args) if args.is_empty() => continue,
                        other => return Ok(other),
                    }
                }
                let Some((line_end, next)) = find_line(buf, 0) else {
                    if buf.len() > INLINE_MAX {
                        return Err(ProtocolError::TooBigMultibulkCount);
                    }
                    return Ok(None);
                };
                let count =
                    string2ll(&buf[1..line_end]).ok_or(ProtocolError::InvalidMultibulkLength)?;
                if count > i32::MAX as i64 {
                    return Err(ProtocolError::InvalidMultibulkLength);
                }
                if self.unauthenticated && count > UNAUTHENTICATED_MULTIBULK_MAX {
                    return Err(ProtocolError::UnauthenticatedMultibulkLength);
                }
                if count <= 0 {
                    buf.advance(next);
                    continue;
                }
                let mut args = std::mem::take(&mut self.spare);
                args.clear();
                args.reserve((count as usize).min(ARGS_RESERVED_MAX));
                self.partial = Some(Partial {
                    remaining: count as usize,
                    pos: next,
                    bulk_len: None,
                    args,
                });
            }
            return self.continue_multibulk(buf);
        }
    }

    fn continue_multibulk(
        &mut self,
        buf: &mut BytesMut,
    ) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        let Some(mut p) = self.partial.take() else {
            return Ok(None);
        };
        while p.remaining > 0 {
            if let Some(len) = p.bulk_len {
                if buf.len() < p.pos + len + 2 {
                    self.partial = Some(p);
                    return Ok(None);
                }
                p.args.push((p.pos, len));
                p.pos += len + 2;
                p.bulk_len = None;
                p.remaining -= 1;
                continue;
            }
            let Some((line_end, next)) = find_line(buf, p.pos) else {
                if buf.len() - p.pos > INLINE_MAX {
                    return Err(ProtocolError::TooBigBulkCount);
                }
                self.partial = Some(p);
                return Ok(None);
            };
            if buf[p.pos] != b'$' {
                return Err(ProtocolError::ExpectedDollar(buf[p.pos] as char));
            }
            let len = match string2ll(&buf[p.pos + 1..line_end]) {
                Some(len) if len >= 0 && (len as u64) <= self.max_bulk_len => len,
                _ => return Err(ProtocolError::InvalidBulkLength),
            };
            if self.unauthenticated && len > UNAUTHENTICATED_BULK_MAX {
                return Err(ProtocolError::UnauthenticatedBulkLength);
            }
            p.bulk_len = Some(len as usize);
            p.pos = next;
        }
        // The whole frame is in the buffer: cut the arguments out of it, sharing
        // its memory rather than copying.
        let frame = buf.split_to(p.pos).freeze();
        let argv = p
            .args
            .iter()
            .map(|&(start, len)| frame.slice(start..start + len))
            .collect();
        // Kept for the next request unless a huge one grew it.
        if p.args.capacity() <= ARGS_RESERVED_MAX {
            self.spare = p.args;
        }
        Ok(Some(argv))
    }
}

/// Finds the end of the line starting at `from`: (index of `\r`, index after `\n`).
fn find_line(buf: &[u8], from: usize) -> Option<(usize, usize)> {
    let rel = buf[from..].iter().position(|&b| b == b'\r')?;
    let cr = from + rel;
    if cr + 1 < buf.len() {
        Some((cr, cr + 2))
    } else {
        None
    }
}

/// Decodes one inline command line (Redis's `processInlineBuffer`).
fn decode_inline(buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
        if buf.len() > INLINE_MAX {
            return Err(ProtocolError::TooBigInline);
        }
        return Ok(None);
    };
    let line = buf.split_to(nl + 1);
    let mut end = nl;
    if end > 0 && line[end - 1] == b'\r' {
        end -= 1;
    }
    split_args(&line[..end])
        .map(Some)
        .ok_or(ProtocolError::UnbalancedQuotes)
}

/// Splits a line into arguments with Redis's `sdssplitargs` rules: blanks separate,
/// `"..."` understands `\n \r \t \b \a \\ \" \xHH`, `'...'` only `\'`, and a closing
/// quote must be followed by a blank. Returns `None` on unbalanced quotes.
pub fn split_args(line: &[u8]) -> Option<Vec<Bytes>> {
    let mut args = Vec::new();
    let mut i = 0;
    let n = line.len();
    loop {
        while i < n && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= n {
            return Some(args);
        }
        let mut cur = Vec::new();
        let (mut inq, mut insq) = (false, false);
        loop {
            if inq {
                if i >= n {
                    return None;
                }
                if line[i] == b'\\'
                    && i + 3 < n
                    && line[i + 1] == b'x'
                    && line[i + 2].is_ascii_hexdigit()
                    && line[i + 3].is_ascii_hexdigit()
                {
                    let hex = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
                    cur.push(hex(line[i + 2]) * 16 + hex(line[i + 3]));
                    i += 3;
                } else if line[i] == b'\\' && i + 1 < n {
                    i += 1;
                    cur.push(match line[i] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        c => c,
                    });
                } else if line[i] == b'"' {
                    if i + 1 < n && !line[i + 1].is_ascii_whitespace() {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(line[i]);
                }
            } else if insq {
                if i >= n {
                    return None;
                }
                if line[i] == b'\\' && i + 1 < n && line[i + 1] == b'\'' {
                    i += 1;
                    cur.push(b'\'');
                } else if line[i] == b'\'' {
                    if i + 1 < n && !line[i + 1].is_ascii_whitespace() {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(line[i]);
                }
            } else {
                if i >= n {
                    break;
                }
                match line[i] {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => {
                        i += 1;
                        break;
                    }
                    b'"' => inq = true,
                    b'\'' => insq = true,
                    c => cur.push(c),
                }
            }
            i += 1;
        }
        args.push(Bytes::from(cur));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8]) -> Result<Vec<Vec<Bytes>>, ProtocolError> {
        let mut d = RequestDecoder::new(512 * 1024 * 1024);
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(args) = d.decode(&mut buf)? {
            out.push(args);
        }
        Ok(out)
    }

    #[test]
    fn multibulk_and_inline() {
        let got =
            decode_all(b"*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\nPING\r\n\r\nset a \"b c\"\n").unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], vec![Bytes::from("ECHO"), Bytes::from("hi")]);
        assert_eq!(got[1], vec![Bytes::from("PING")]);
        assert_eq!(
            got[2],
            vec![Bytes::from("set"), Bytes::from("a"), Bytes::from("b c")]
        );
    }

    #[test]
    fn byte_at_a_time() {
        let input = b"*3\r\n$4\r\nXADD\r\n$1\r\nk\r\n$10\r\n0123456789\r\n";
        let mut d = RequestDecoder::new(1 << 20);
        let mut buf = BytesMut::new();
        let mut got = None;
        for &b in input.iter() {
            buf.extend_from_slice(&[b]);
            if let Some(args) = d.decode(&mut buf).unwrap() {
                got = Some(args);
            }
        }
        let args = got.unwrap();
        assert_eq!(args[2], Bytes::from("0123456789"));
        assert!(buf.is_empty());
    }

    #[test]
    fn limits_and_errors() {
        let mut d = RequestDecoder::new(10);
        let mut buf = BytesMut::from(&b"*1\r\n$11\r\n"[..]);
        assert_eq!(d.decode(&mut buf), Err(ProtocolError::InvalidBulkLength));
        assert_eq!(
            decode_all(b"*1\r\n:1\r\n"),
            Err(ProtocolError::ExpectedDollar(':'))
        );
        assert_eq!(
            decode_all(b"*x\r\n"),
            Err(ProtocolError::InvalidMultibulkLength)
        );
        assert_eq!(
            decode_all(b"ECHO \"abc\n"),
            Err(ProtocolError::UnbalancedQuotes)
        );
        let big = vec![b'a'; INLINE_MAX + 1];
        assert_eq!(decode_all(&big), Err(ProtocolError::TooBigInline));
    }

    #[test]
    fn headers_follow_string2ll_and_redis_framing() {
        for bad in [&b"*+1\r\n"[..], b"*01\r\n", b"*-0\r\n", b"* 1\r\n"] {
            assert_eq!(decode_all(bad), Err(ProtocolError::InvalidMultibulkLength));
        }
        for bad in [&b"*1\r\n$+4\r\n"[..], b"*1\r\n$04\r\n", b"*1\r\n$-0\r\n"] {
            assert_eq!(decode_all(bad), Err(ProtocolError::InvalidBulkLength));
        }
        // The byte after a header's CR and the two after a bulk's data are not checked.
        let got = decode_all(b"*2\r\n$4\rXECHO\r\n$2\r\nhiXY*-3\r\n").unwrap();
        assert_eq!(got, vec![vec![Bytes::from("ECHO"), Bytes::from("hi")]]);
    }

    #[test]
    fn unauthenticated_limits() {
        let mut d = RequestDecoder::new(512 * 1024 * 1024);
        d.set_unauthenticated(true);
        let mut buf = BytesMut::from(&b"*11\r\n"[..]);
        assert_eq!(
            d.decode(&mut buf),
            Err(ProtocolError::UnauthenticatedMultibulkLength)
        );
        let mut buf = BytesMut::from(&b"*2\r\n$16385\r\n"[..]);
        assert_eq!(
            d.decode(&mut buf),
            Err(ProtocolError::UnauthenticatedBulkLength)
        );
        // A header that is invalid anyway says so first, as in Redis.
        let mut buf = BytesMut::from(&b"*1\r\n$-2\r\n"[..]);
        assert_eq!(d.decode(&mut buf), Err(ProtocolError::InvalidBulkLength));
        // At the limits, and once the limits are off, requests pass.
        let mut input = b"*10\r\n$16384\r\n".to_vec();
        input.extend_from_slice(&[b'a'; 16384]);
        input.extend_from_slice(b"\r\n");
        input.extend_from_slice(&b"$1\r\nb\r\n".repeat(9));
        let mut buf = BytesMut::from(&input[..]);
        assert_eq!(d.decode(&mut buf).unwrap().map(|a| a.len()), Some(10));
        d.set_unauthenticated(false);
        let mut buf = BytesMut::from(&b"*11\r\n$100000000\r\n"[..]);
        assert_eq!(d.decode(&mut buf), Ok(None));
    }

    #[test]
    fn split_args_escapes() {
        let a = split_args(b"a \"\\x41\\n\" 'it\\'s'").unwrap();
        assert_eq!(
            a,
            vec![Bytes::from("a"), Bytes::from("A\n"), Bytes::from("it's")]
        );
        assert!(split_args(b"\"a\"b").is_none());
    }
}
