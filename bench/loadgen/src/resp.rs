//! A minimal RESP2 client connection: encode commands, parse replies.
//!
//! Why not the `redis` crate: the scenarios need exact control over what is in flight (open-loop publishing with
//! the reply reader on its own task, N commands written with one syscall) and as little client-side cost as
//! possible, so that what we measure is the server. RESP2 only: both servers speak it and nothing here needs RESP3.

use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// Errors a benchmark connection can meet; all of them end the scenario that met them.
#[derive(Debug, thiserror::Error)]
pub enum RespError {
    /// The socket failed (refused, reset, closed by the server).
    #[error("i/o error talking to the server: {0}")]
    Io(#[from] io::Error),
    /// The server sent bytes that are not RESP2; a bug on one side or the other, never retried.
    #[error("protocol error from the server: {0}")]
    Protocol(String),
    /// The server closed the connection in the middle of a reply.
    #[error("server closed the connection")]
    Closed,
    /// A reply had a shape the scenario did not expect (e.g. an error to XADD).
    #[error("unexpected reply: {0}")]
    Unexpected(String),
}

/// One parsed RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// Turns an error reply into `RespError::Unexpected`, so that callers can `?` through the happy path.
    pub fn ok(self) -> Result<Reply, RespError> {
        match self {
            Reply::Error(text) => Err(RespError::Unexpected(text)),
            other => Ok(other),
        }
    }
}

/// Appends `*N\r\n$len\r\narg\r\n…` for one command to `out`.
pub fn encode(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.push(b'*');
    push_decimal(out, args.len() as u64);
    out.extend_from_slice(b"\r\n");
    for arg in args {
        out.push(b'$');
        push_decimal(out, arg.len() as u64);
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

fn push_decimal(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(value.to_string().as_bytes());
}

/// Parses one reply from the front of `buf`: `Ok(None)` when more bytes are needed, else the reply and the number
/// of bytes it used. Synchronous over a buffer so nested arrays need no async recursion.
pub fn parse(buf: &[u8]) -> Result<Option<(Reply, usize)>, RespError> {
    let Some(line_end) = find_crlf(buf) else {
        return Ok(None);
    };
    let Some(&kind) = buf.first() else {
        return Ok(None);
    };
    let line = &buf[1..line_end];
    let after_line = line_end + 2;
    match kind {
        b'+' => Ok(Some((
            Reply::Simple(String::from_utf8_lossy(line).into_owned()),
            after_line,
        ))),
        b'-' => Ok(Some((
            Reply::Error(String::from_utf8_lossy(line).into_owned()),
            after_line,
        ))),
        b':' => Ok(Some((Reply::Int(parse_int(line)?), after_line))),
        b'$' => {
            let len = parse_int(line)?;
            if len < 0 {
                return Ok(Some((Reply::Bulk(None), after_line)));
            }
            let len =
                usize::try_from(len).map_err(|_| RespError::Protocol("bulk length".into()))?;
            let end = after_line + len;
            if buf.len() < end + 2 {
                return Ok(None);
            }
            Ok(Some((
                Reply::Bulk(Some(buf[after_line..end].to_vec())),
                end + 2,
            )))
        }
        b'*' => {
            let count = parse_int(line)?;
            if count < 0 {
                return Ok(Some((Reply::Array(None), after_line)));
            }
            let count =
                usize::try_from(count).map_err(|_| RespError::Protocol("array length".into()))?;
            let mut items = Vec::with_capacity(count.min(4096));
            let mut pos = after_line;
            for _ in 0..count {
                match parse(&buf[pos..])? {
                    Some((item, used)) => {
                        items.push(item);
                        pos += used;
                    }
                    None => return Ok(None),
                }
            }
            Ok(Some((Reply::Array(Some(items)), pos)))
        }
        other => Err(RespError::Protocol(format!(
            "unknown reply type byte {other:#04x}"
        ))),
    }
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

fn parse_int(line: &[u8]) -> Result<i64, RespError> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            RespError::Protocol(format!("bad integer {:?}", String::from_utf8_lossy(line)))
        })
}

/// The reading half of a connection with its own buffer.
pub struct ReplyReader {
    read: OwnedReadHalf,
    buf: Vec<u8>,
    start: usize,
}

impl ReplyReader {
    /// Reads the next complete reply, pulling more bytes from the socket as needed.
    pub async fn next(&mut self) -> Result<Reply, RespError> {
        loop {
            if let Some((reply, used)) = parse(&self.buf[self.start..])? {
                self.start += used;
                if self.start == self.buf.len() {
                    self.buf.clear();
                    self.start = 0;
                }
                return Ok(reply);
            }
            if self.start > 0 {
                self.buf.drain(..self.start);
                self.start = 0;
            }
            let mut chunk = [0u8; 64 * 1024];
            let n = self.read.read(&mut chunk).await?;
            if n == 0 {
                return Err(RespError::Closed);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// A connection whose halves can be used together (request/reply) or split across tasks (open loop).
pub struct Conn {
    pub reader: ReplyReader,
    pub writer: OwnedWriteHalf,
}

impl Conn {
    /// Connects with TCP_NODELAY, as redis-benchmark and real clients do.
    pub async fn connect(addr: &str) -> Result<Conn, RespError> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (read, writer) = stream.into_split();
        Ok(Conn {
            reader: ReplyReader {
                read,
                buf: Vec::with_capacity(64 * 1024),
                start: 0,
            },
            writer,
        })
    }

    /// Sends one command and waits for its reply.
    pub async fn call(&mut self, args: &[&[u8]]) -> Result<Reply, RespError> {
        let mut out = Vec::new();
        encode(&mut out, args);
        self.writer.write_all(&out).await?;
        self.reader.next().await
    }

    /// Writes pre-encoded commands in one go and reads `count` replies, failing on the first error reply.
    pub async fn pipeline(&mut self, encoded: &[u8], count: usize) -> Result<(), RespError> {
        self.writer.write_all(encoded).await?;
        for _ in 0..count {
            self.reader.next().await?.ok()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_a_command() {
        let mut out = Vec::new();
        encode(&mut out, &[b"XADD", b"s", b"*", b"f", b"v"]);
        assert_eq!(
            out,
            b"*5\r\n$4\r\nXADD\r\n$1\r\ns\r\n$1\r\n*\r\n$1\r\nf\r\n$1\r\nv\r\n"
        );
    }

    #[test]
    fn parses_nested_arrays_and_reports_incomplete_input() {
        let wire = b"*2\r\n$3\r\n1-1\r\n*2\r\n$1\r\nf\r\n$-1\r\n:7\r\n";
        let (reply, used) = parse(wire).expect("valid").expect("complete");
        assert_eq!(used, wire.len() - 4);
        assert_eq!(
            reply,
            Reply::Array(Some(vec![
                Reply::Bulk(Some(b"1-1".to_vec())),
                Reply::Array(Some(vec![
                    Reply::Bulk(Some(b"f".to_vec())),
                    Reply::Bulk(None)
                ])),
            ]))
        );
        for cut in 0..used {
            assert_eq!(
                parse(&wire[..cut]).expect("valid prefix"),
                None,
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn rejects_unknown_type_bytes() {
        assert!(parse(b"?x\r\n").is_err());
        assert_eq!(
            parse(b"-ERR no\r\n").expect("valid"),
            Some((Reply::Error("ERR no".into()), 9))
        );
    }
}
