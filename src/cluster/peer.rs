//! A blocking RESP client to another node: what `rill cluster` talks to nodes with, and
//! what a node moving keys (`RILL.MIGRATE`) talks to the node receiving them with. Knows
//! RESP replies and the `RILL.CLUSTER` admin family's reply shapes, nothing of streams.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use super::topology::{NodeId, NodeInfo, ShardMap};

/// Why a command to a node failed.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("can't reach {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{addr}: {source}")]
    Io {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{addr} answered with an error: {text}")]
    Server { addr: String, text: String },
    #[error("{addr} answered something unexpected to {what}")]
    Unexpected { addr: String, what: &'static str },
    #[error("'{0}' is not HOST:PORT")]
    BadAddress(String),
}

/// A RESP reply, as much of it as the CLI reads.
#[derive(Debug)]
pub enum Value {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Vec<Value>),
}

/// How a connection authenticates: `AUTH pass`, or with a user `AUTH user pass` (an ACL
/// user, as redis-cli's `--user`).
#[derive(Debug, Clone)]
pub struct Auth {
    pub user: Option<String>,
    pub pass: String,
}

impl Auth {
    /// The arguments after `AUTH` (also RILL.MIGRATE's `AUTH pass` / `AUTH2 user pass`).
    pub fn args(&self) -> Vec<&[u8]> {
        match &self.user {
            Some(u) => vec![u.as_bytes(), self.pass.as_bytes()],
            None => vec![self.pass.as_bytes()],
        }
    }
}

/// One blocking connection to a node.
pub struct Peer {
    addr: String,
    pass: Option<Auth>,
    host: String,
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

/// How long the CLI waits to connect, send or read.
pub const TIMEOUT: Duration = Duration::from_secs(5);

impl Peer {
    /// Connects (and authenticates with `pass`) with the default timeout.
    pub fn connect(addr: &str, pass: Option<&Auth>) -> Result<Peer, PeerError> {
        Peer::connect_with(addr, pass, TIMEOUT)
    }

    /// Connects with `timeout` for connecting, each write and each read.
    pub fn connect_with(
        addr: &str,
        pass: Option<&Auth>,
        timeout: Duration,
    ) -> Result<Peer, PeerError> {
        let (host, _) = addr
            .rsplit_once(':')
            .filter(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
            .ok_or_else(|| PeerError::BadAddress(addr.to_string()))?;
        let connect = |source| PeerError::Connect {
            addr: addr.to_string(),
            source,
        };
        let sock = addr
            .to_socket_addrs()
            .map_err(connect)?
            .next()
            .ok_or_else(|| PeerError::BadAddress(addr.to_string()))?;
        let stream = TcpStream::connect_timeout(&sock, timeout).map_err(connect)?;
        let io = |source| PeerError::Io {
            addr: addr.to_string(),
            source,
        };
        stream.set_read_timeout(Some(timeout)).map_err(io)?;
        stream.set_write_timeout(Some(timeout)).map_err(io)?;
        let mut node = Peer {
            addr: addr.to_string(),
            pass: pass.cloned(),
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            reader: BufReader::new(stream.try_clone().map_err(io)?),
            writer: stream,
        };
        if let Some(p) = pass {
            let mut args: Vec<&[u8]> = vec![b"AUTH"];
            args.extend(p.args());
            node.call(&args)?;
        }
        Ok(node)
    }

    /// Another node, with the same password.
    pub fn open(&self, addr: &str) -> Result<Peer, PeerError> {
        Peer::connect(addr, self.pass.as_ref())
    }

    fn io(&self, source: std::io::Error) -> PeerError {
        PeerError::Io {
            addr: self.addr.clone(),
            source,
        }
    }

    /// The address this client reached.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends one command without reading its reply (pipelining).
    pub fn send(&mut self, args: &[&[u8]]) -> Result<(), PeerError> {
        let mut req = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            req.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            req.extend_from_slice(a);
            req.extend_from_slice(b"\r\n");
        }
        self.writer.write_all(&req).map_err(|e| self.io(e))
    }

    /// Reads the next reply; an error reply becomes [`PeerError::Server`].
    pub fn reply(&mut self) -> Result<Value, PeerError> {
        match self.read_value()? {
            Value::Error(text) => Err(PeerError::Server {
                addr: self.addr.clone(),
                text,
            }),
            v => Ok(v),
        }
    }

    /// Sends one command and reads its reply; an error reply becomes [`PeerError::Server`].
    pub fn call(&mut self, args: &[&[u8]]) -> Result<Value, PeerError> {
        self.send(args)?;
        match self.read_value()? {
            Value::Error(text) => Err(PeerError::Server {
                addr: self.addr.clone(),
                text,
            }),
            v => Ok(v),
        }
    }

    fn read_line(&mut self) -> Result<String, PeerError> {
        let mut line = String::new();
        let n = self.reader.read_line(&mut line).map_err(|e| self.io(e))?;
        if n == 0 {
            return Err(self.io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        Ok(line.trim_end_matches("\r\n").to_string())
    }

    fn read_value(&mut self) -> Result<Value, PeerError> {
        let line = self.read_line()?;
        let bad = || PeerError::Unexpected {
            addr: self.addr.clone(),
            what: "a RESP reply",
        };
        let (kind, rest) = line.split_at_checked(1).ok_or_else(bad)?;
        let num = || rest.parse::<i64>().map_err(|_| bad());
        Ok(match kind {
            "+" => Value::Simple(rest.to_string()),
            "-" => Value::Error(rest.to_string()),
            ":" => Value::Int(num()?),
            "$" => {
                let len = num()?;
                if len < 0 {
                    Value::Bulk(None)
                } else {
                    // Read as it arrives: a length from the wire is not an allocation size.
                    let want = u64::try_from(len).map_err(|_| bad())?.saturating_add(2);
                    let mut buf = Vec::new();
                    (&mut self.reader)
                        .take(want)
                        .read_to_end(&mut buf)
                        .map_err(|e| self.io(e))?;
                    if buf.len() as u64 != want || !buf.ends_with(b"\r\n") {
                        return Err(self.io(std::io::ErrorKind::UnexpectedEof.into()));
                    }
                    buf.truncate(buf.len() - 2);
                    Value::Bulk(Some(buf))
                }
            }
            "*" => {
                let len = num()?;
                let mut items = Vec::new();
                for _ in 0..len.max(0) {
                    items.push(self.read_value()?);
                }
                Value::Array(items)
            }
            _ => return Err(bad()),
        })
    }

    pub fn text(&mut self, args: &[&[u8]], what: &'static str) -> Result<String, PeerError> {
        match self.call(args)? {
            Value::Bulk(Some(b)) => Ok(String::from_utf8_lossy(&b).into_owned()),
            Value::Simple(s) => Ok(s),
            _ => Err(PeerError::Unexpected {
                addr: self.addr.clone(),
                what,
            }),
        }
    }

    /// This node as the map should list it (`RILL.CLUSTER NODEINFO`); an empty announced
    /// address means "the address you reached me on".
    pub fn node_info(&mut self) -> Result<NodeInfo, PeerError> {
        let unexpected = |addr: &str| PeerError::Unexpected {
            addr: addr.to_string(),
            what: "RILL.CLUSTER NODEINFO",
        };
        let Value::Array(items) = self.call(&[b"RILL.CLUSTER", b"NODEINFO"])? else {
            return Err(unexpected(&self.addr));
        };
        match items.as_slice() {
            [Value::Bulk(Some(id)), Value::Bulk(Some(ip)), Value::Int(port), Value::Int(cport)] => {
                let id = NodeId::parse(&String::from_utf8_lossy(id))
                    .ok_or_else(|| unexpected(&self.addr))?;
                let ip = String::from_utf8_lossy(ip).into_owned();
                Ok(NodeInfo {
                    id,
                    ip: if ip.is_empty() { self.host.clone() } else { ip },
                    port: u16::try_from(*port).map_err(|_| unexpected(&self.addr))?,
                    cport: u16::try_from(*cport).map_err(|_| unexpected(&self.addr))?,
                    joined: false,
                })
            }
            _ => Err(unexpected(&self.addr)),
        }
    }

    pub fn topology(&mut self) -> Result<ShardMap, PeerError> {
        let text = self.text(&[b"RILL.CLUSTER", b"TOPOLOGY"], "RILL.CLUSTER TOPOLOGY")?;
        ShardMap::parse(&text)
            .map(|(map, _)| map)
            .map_err(|_| PeerError::Unexpected {
                addr: self.addr.clone(),
                what: "RILL.CLUSTER TOPOLOGY",
            })
    }
}
