//! The reply model shared by every command, and its RESP2/RESP3 encoding.
//!
//! Commands build one `Reply` tree; the protocol version of the connection decides
//! how it is written. Where RESP2 has no native type (maps, doubles, booleans,
//! verbatim strings) the encoding falls back exactly as Redis's `addReply*` does.

use bytes::{BufMut, Bytes, BytesMut};

/// A reply to one command, independent of the wire protocol version.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `+OK`.
    Ok,
    /// A simple string (`+...`), e.g. `+PONG` or `+QUEUED`.
    Status(Bytes),
    /// An error; the text is the full wire text without the leading `-`.
    Error(Bytes),
    /// An integer (`:n`).
    Int(i64),
    /// A bulk string (`$n`).
    Bulk(Bytes),
    /// A null bulk string: `$-1` in RESP2, `_` in RESP3.
    Nil,
    /// A null array: `*-1` in RESP2, `_` in RESP3.
    NilArray,
    /// An array (`*n`).
    Array(Vec<Reply>),
    /// A map: `%n` in RESP3, a flat array of 2n elements in RESP2.
    Map(Vec<(Reply, Reply)>),
    /// A set: `~n` in RESP3, an array in RESP2.
    Set(Vec<Reply>),
    /// A double: `,x` in RESP3, a bulk string in RESP2.
    Double(f64),
    /// A boolean: `#t`/`#f` in RESP3, `:1`/`:0` in RESP2.
    Bool(bool),
    /// A verbatim string (`=n\r\ntxt:...`) in RESP3, a bulk string in RESP2.
    Verbatim(Bytes),
    /// Out-of-band data (Pub/Sub confirmations and messages): `>n` in RESP3, an array in RESP2.
    Push(Vec<Reply>),
    /// Several top-level replies to one request, written one after the other (a
    /// SUBSCRIBE of n channels answers n confirmations).
    Several(Vec<Reply>),
}

impl Reply {
    /// A bulk string from anything byte-like.
    pub fn bulk(b: impl Into<Bytes>) -> Reply {
        Reply::Bulk(b.into())
    }

    /// A simple status string.
    pub fn status(s: &'static str) -> Reply {
        Reply::Status(Bytes::from_static(s.as_bytes()))
    }

    /// An error reply from its full wire text (without the leading `-`).
    pub fn error(text: impl Into<String>) -> Reply {
        Reply::Error(Bytes::from(text.into()))
    }

    /// An array of bulk strings.
    pub fn bulks<I, B>(items: I) -> Reply
    where
        I: IntoIterator<Item = B>,
        B: Into<Bytes>,
    {
        Reply::Array(items.into_iter().map(|b| Reply::Bulk(b.into())).collect())
    }

    /// True for error replies (used by MULTI/EXEC and error statistics).
    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }

    /// Appends the encoding of this reply for protocol version `proto` (2 or 3).
    pub fn encode(&self, proto: u8, out: &mut BytesMut) {
        let resp3 = proto >= 3;
        match self {
            Reply::Ok => out.put_slice(b"+OK\r\n"),
            Reply::Status(s) => {
                out.put_u8(b'+');
                out.put_slice(s);
                out.put_slice(b"\r\n");
            }
            Reply::Error(e) => {
                out.put_u8(b'-');
                // Error text must stay on one line, as Redis's addReplyError enforces.
                for &b in e.iter() {
                    out.put_u8(if b == b'\r' || b == b'\n' { b' ' } else { b });
                }
                out.put_slice(b"\r\n");
            }
            Reply::Int(n) => header(out, b':', *n),
            Reply::Bulk(b) => bulk(out, b),
            Reply::Nil => out.put_slice(if resp3 { b"_\r\n" } else { b"$-1\r\n" }),
            Reply::NilArray => out.put_slice(if resp3 { b"_\r\n" } else { b"*-1\r\n" }),
            Reply::Array(items) => {
                header(out, b'*', items.len() as i64);
                for item in items {
                    item.encode(proto, out);
                }
            }
            Reply::Map(pairs) => {
                if resp3 {
                    header(out, b'%', pairs.len() as i64);
                } else {
                    header(out, b'*', 2 * pairs.len() as i64);
                }
                for (k, v) in pairs {
                    k.encode(proto, out);
                    v.encode(proto, out);
                }
            }
            Reply::Set(items) => {
                header(out, if resp3 { b'~' } else { b'*' }, items.len() as i64);
                for item in items {
                    item.encode(proto, out);
                }
            }
            Reply::Double(d) => {
                let text = format_double(*d);
                if resp3 {
                    out.put_u8(b',');
                    out.put_slice(text.as_bytes());
                    out.put_slice(b"\r\n");
                } else {
                    bulk(out, text.as_bytes());
                }
            }
            Reply::Bool(b) => {
                if resp3 {
                    out.put_slice(if *b { b"#t\r\n" } else { b"#f\r\n" });
                } else {
                    out.put_slice(if *b { b":1\r\n" } else { b":0\r\n" });
                }
            }
            Reply::Push(items) => {
                header(out, if resp3 { b'>' } else { b'*' }, items.len() as i64);
                for item in items {
                    item.encode(proto, out);
                }
            }
            Reply::Several(replies) => {
                for reply in replies {
                    reply.encode(proto, out);
                }
            }
            Reply::Verbatim(text) => {
                if resp3 {
                    header(out, b'=', text.len() as i64 + 4);
                    out.put_slice(b"txt:");
                    out.put_slice(text);
                    out.put_slice(b"\r\n");
                } else {
                    bulk(out, text);
                }
            }
        }
    }

    /// Encodes into a fresh buffer (convenient for tests and one-off writes).
    pub fn to_bytes(&self, proto: u8) -> BytesMut {
        let mut out = BytesMut::new();
        self.encode(proto, &mut out);
        out
    }
}

impl From<crate::engine::id::StreamId> for Reply {
    fn from(id: crate::engine::id::StreamId) -> Reply {
        Reply::Bulk(id.to_bytes())
    }
}

/// Appends a push message of bulk strings — a RESP3 push frame (`>`), a RESP2 array — as
/// [`Reply::Push`] of [`Reply::Bulk`]s encodes it, without building the `Reply`: a Pub/Sub
/// delivery is encoded this way once per publish and protocol, then copied to each
/// subscriber.
pub fn encode_push(proto: u8, parts: &[&[u8]], out: &mut BytesMut) {
    header(
        out,
        if proto >= 3 { b'>' } else { b'*' },
        parts.len() as i64,
    );
    for part in parts {
        bulk(out, part);
    }
}

fn header(out: &mut BytesMut, kind: u8, n: i64) {
    let mut buf = itoa::Buffer::new();
    out.put_u8(kind);
    out.put_slice(buf.format(n).as_bytes());
    out.put_slice(b"\r\n");
}

fn bulk(out: &mut BytesMut, b: &[u8]) {
    header(out, b'$', b.len() as i64);
    out.put_slice(b);
    out.put_slice(b"\r\n");
}

/// Formats a double the way Redis's `addReplyDouble` does (`%.17g`, `inf`, `-inf`, `nan`).
fn format_double(d: f64) -> String {
    if d.is_nan() {
        "nan".to_string()
    } else if d.is_infinite() {
        if d > 0.0 { "inf" } else { "-inf" }.to_string()
    } else if d == d.trunc() && d.abs() < 1e17 {
        format!("{}", d as i64)
    } else {
        format!("{}", d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nulls_differ_by_protocol() {
        assert_eq!(&Reply::Nil.to_bytes(2)[..], b"$-1\r\n");
        assert_eq!(&Reply::NilArray.to_bytes(2)[..], b"*-1\r\n");
        assert_eq!(&Reply::Nil.to_bytes(3)[..], b"_\r\n");
        assert_eq!(&Reply::NilArray.to_bytes(3)[..], b"_\r\n");
    }

    #[test]
    fn maps_flatten_in_resp2() {
        let m = Reply::Map(vec![(Reply::bulk("a"), Reply::Int(1))]);
        assert_eq!(&m.to_bytes(2)[..], b"*2\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(&m.to_bytes(3)[..], b"%1\r\n$1\r\na\r\n:1\r\n");
    }

    #[test]
    fn error_text_is_one_line() {
        let e = Reply::error("ERR a\r\nb");
        assert_eq!(&e.to_bytes(2)[..], b"-ERR a  b\r\n");
    }

    #[test]
    fn push_and_several() {
        let push = Reply::Push(vec![Reply::bulk("subscribe"), Reply::Nil, Reply::Int(0)]);
        assert_eq!(
            &push.to_bytes(2)[..],
            b"*3\r\n$9\r\nsubscribe\r\n$-1\r\n:0\r\n"
        );
        assert_eq!(
            &push.to_bytes(3)[..],
            b">3\r\n$9\r\nsubscribe\r\n_\r\n:0\r\n"
        );
        let two = Reply::Several(vec![Reply::Int(1), Reply::Int(2)]);
        assert_eq!(&two.to_bytes(2)[..], b":1\r\n:2\r\n");
    }

    #[test]
    fn encode_push_is_a_push_of_bulks() {
        let parts: [&[u8]; 3] = [b"message", b"ch", b""];
        for proto in [2, 3] {
            let mut out = BytesMut::new();
            encode_push(proto, &parts, &mut out);
            assert_eq!(
                out,
                Reply::Push(vec![
                    Reply::bulk("message"),
                    Reply::bulk("ch"),
                    Reply::bulk("")
                ])
                .to_bytes(proto)
            );
        }
    }

    #[test]
    fn verbatim_and_bool() {
        assert_eq!(
            &Reply::Verbatim(Bytes::from("hi")).to_bytes(3)[..],
            b"=6\r\ntxt:hi\r\n"
        );
        assert_eq!(&Reply::Bool(true).to_bytes(2)[..], b":1\r\n");
        assert_eq!(&Reply::Double(1.5).to_bytes(3)[..], b",1.5\r\n");
    }
}
