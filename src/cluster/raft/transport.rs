//! The Raft peer transport: carries raft-rs [`Message`]s between the replicas of a group
//! (design scale-out.md §3.1, step E of §5), and serves snapshot files to peers on the same
//! listener ([`files`]: [`Transport::fetch_file`], [`FileSource`]). Not yet wired to a driver: step D's Ready loop
//! will call [`Transport::send`] and read [`Inbound`] batches from the channel given to
//! [`Transport::start`].
//!
//! # Shape
//!
//! - **One outbound TCP connection per peer, one direction of traffic.** Node A's messages
//!   to B travel on the connection A dialed; B's replies travel on B's own connection to A.
//!   So a one-way partition (design §4.2: a fault proxy per *directed* link) is exactly one
//!   connection cut, and neither side has to decide who owns a shared connection. The
//!   listener never sends anything after the handshake; the dialer only watches its read half
//!   to notice a closed connection while idle.
//! - **A bounded queue per peer, drop-oldest.** [`Transport::send`] is synchronous and never
//!   blocks (the driver runs in the log writer thread, not on the runtime): it appends to the
//!   peer's queue and wakes that peer's task. When the queue is over its bound (messages or
//!   bytes, [`TransportConfig::queue_messages`] / [`TransportConfig::queue_bytes`]) the
//!   *oldest* messages are dropped. Raft retransmits whatever is lost, and newer messages
//!   supersede older ones: a queued heartbeat or append from an older term is ignored by the
//!   receiver anyway, while the newest carries the current term, commit index and the entries
//!   the follower is most likely missing. Dropping the newest would, after a long outage,
//!   deliver only stale traffic first and delay the probe that actually repairs the follower.
//! - **Batching.** The peer task drains everything queued (up to [`WRITE_BATCH_BYTES`]) into
//!   frames, consecutive messages of one group sharing a frame, and writes them with one
//!   `write_all`. While a write is in progress new messages queue up and go out in the next
//!   batch, so batches grow with load and a single message goes out at once.
//! - **Reconnect** with exponential backoff (from [`TransportConfig::backoff_min`] to
//!   [`TransportConfig::backoff_max`], with up to 50% random jitter so restarted nodes do not
//!   dial in lock step), reset after a successful handshake. A write that does not finish
//!   within [`TransportConfig::write_timeout`] (a blackholed or stopped peer) drops the
//!   connection and counts the batch as dropped.
//! - **Source-address binding** ([`TransportConfig::source`]): outbound sockets bind this IP
//!   (port 0) before connecting, so a test cluster on 127.0.0.x addresses, or a fault proxy,
//!   can tell every link apart (design §4.1).
//! - **Inbound:** a listener on its own address (by convention the cluster bus port,
//!   `Config::cluster_bus_port`: `cluster-port`, or the client port + 10000 as in Redis)
//!   delivers each received frame as one [`Inbound`] on a bounded `tokio::sync::mpsc`
//!   channel. A full channel stops the connection's reads, so backpressure reaches the
//!   sender's TCP window and then its drop-oldest queue: memory stays bounded end to end.
//!   **Per-sender order** is kept across reconnects: a new connection from a sender first
//!   ends the older one and waits until it has stopped delivering.
//!
//! # Handshake
//!
//! Listener → dialer, `HELLO` (58 bytes): `"RILLRAFT" | u16 version | u64 cluster | u64
//! listener node | 32-byte nonce`. Dialer → listener, `AUTH` (98 bytes): `"RILLRAFT" | u16
//! version | u64 cluster | u64 from | u64 to | 32-byte dialer nonce | 32-byte proof`, where
//! proof = HMAC-SHA256(secret, `"rill-raft-v1 dial" | listener nonce | dialer nonce |
//! cluster | from | to`). Listener → dialer, `VERDICT` (33 bytes): `u8 code | 32-byte proof`
//! (code 0 = accepted, with HMAC-SHA256(secret, `"rill-raft-v1 listen" | dialer nonce |
//! listener nonce | cluster | from | to`), so the dialer knows it reached a node holding the
//! secret and is not feeding messages to a stranger; 1–4 = refused for version, cluster, node
//! id or proof, proof zeroed). All integers are little-endian. The listener's fresh nonce
//! makes a recorded `AUTH` useless on another connection. Proofs are checked with
//! `Mac::verify_slice`, which compares in constant time (`subtle`).
//!
//! `AUTH`'s magic names what the connection carries: `"RILLRAFT"` a message link (above),
//! `"RILLSNAP"` one snapshot file fetch ([`files`]), whose proofs are keyed with
//! `"rill-snap-v1 dial"` / `"rill-snap-v1 listen"` instead, so a proof made for one kind
//! fails as the other. `HELLO` is the same for both (the listener learns the kind from
//! `AUTH`); message links' bytes are those of version 1 unchanged.
//!
//! HMAC comes from the RustCrypto `hmac` crate (over `sha2`, already a dependency, same
//! `digest` 0.10): a few lines of RFC 2104 by hand would work too, but the crate is the
//! maintained, reviewed and test-vectored version of exactly those lines. Without TLS there
//! is no encryption: Raft traffic is as private as the network it runs on, like Redis's
//! cluster bus without `tls-cluster` (design §3.7); the secret keeps strangers and
//! misconfigured nodes out.
//!
//! # TLS
//!
//! With [`TransportConfig::tls`] (`tls-cluster yes`) every link is TLS first (rustls through
//! `tokio-rustls`, the maintained async adapter of the rustls the client port already uses)
//! and the handshake above runs inside it: the listener requires a client certificate that
//! chains to the cluster's CA, and the dialer checks the listener's chain (not its name:
//! peers are dialed by address, and Redis's OpenSSL cluster bus does not check names
//! either). The TLS handshake counts against the handshake timeout. A link's stream is then
//! a boxed `AsyncRead + AsyncWrite`, split with `tokio::io::split`, and every batch is
//! flushed after it is written (TLS holds back what it encrypted until then).
//!
//! Limits of this design, on purpose for now: at most [`MAX_PENDING_HANDSHAKES`] handshakes
//! run at once (each bounded by the handshake timeout), so a flood of strangers cannot hold
//! unbounded tasks but can delay a real peer's reconnect while it lasts; `HELLO` tells anyone
//! who connects the cluster id and node id (neither is a secret).
//!
//! # Frame
//!
//! ```text
//! u32 len                      bytes of body, ≤ TransportConfig::max_frame
//! body:  u64 group             the Raft group (shard) the messages belong to
//!        u32 count             ≤ MAX_MESSAGES_PER_FRAME
//!        count × (u32 n | n bytes of a protobuf-encoded eraftpb::Message)
//! u32 crc32c(body)
//! ```
//!
//! A frame longer than the limit is refused as soon as its length is read; the reader's
//! buffer only grows as bytes actually arrive (by [`READ_CHUNK`]), so a lying length costs no
//! allocation. A checksum mismatch, a count or length that does not fit the body, a message
//! that does not decode, or a message not addressed to this node (`to`) closes that
//! connection with a logged error; the listener and other connections carry on. `from` is not
//! checked against the authenticated sender: raft-rs forwards some messages with another
//! node's `from` (a follower forwards `MsgTransferLeader`, whose `from` is the transferee),
//! and a peer holding the secret is trusted with the group anyway. The message count bound keeps decoding from multiplying a small
//! frame into a large allocation (an empty message is 4 bytes on the wire and a few hundred in
//! memory).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use hmac::{Hmac, Mac};
use protobuf::Message as _;
use raft::eraftpb::Message;
use rand::{Rng, RngCore};
use sha2::Sha256;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, Notify, Semaphore};
use tokio::task::{JoinHandle, JoinSet};

/// raft-rs's id of a replica (`Message::from` / `to`).
pub type RaftNodeId = u64;
/// A Raft group: one shard's replicas.
pub type GroupId = u64;

/// The handshake's protocol version; a node refuses peers that speak another.
pub const PROTOCOL_VERSION: u16 = 1;
/// Most messages one frame may carry (see the module docs: bounds decoding's allocation).
pub const MAX_MESSAGES_PER_FRAME: usize = 4096;
/// Most bytes of frames one write gathers; more queued messages go in the next write.
pub const WRITE_BATCH_BYTES: usize = 1 << 20;
/// How much the reader's buffer grows per read.
pub const READ_CHUNK: usize = 64 * 1024;

const MAGIC: [u8; 8] = *b"RILLRAFT";
const NONCE_LEN: usize = 32;
const PROOF_LEN: usize = 32;
const HELLO_LEN: usize = 8 + 2 + 8 + 8 + NONCE_LEN;
const AUTH_LEN: usize = 8 + 2 + 8 + 8 + 8 + NONCE_LEN + PROOF_LEN;
const VERDICT_LEN: usize = 1 + PROOF_LEN;
/// `len` field before the body, CRC after it.
const FRAME_OVERHEAD: usize = 4 + 4;
/// `group | count` at the start of the body.
const BODY_FIXED: usize = 8 + 4;
/// Handshakes in progress at once; more connections are closed at once (a connection flood
/// from strangers cannot hold unbounded tasks and buffers).
const MAX_PENDING_HANDSHAKES: usize = 64;

/// The shared secret every node of a cluster holds. Its `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct SharedSecret(Vec<u8>);

impl SharedSecret {
    pub fn new(bytes: impl Into<Vec<u8>>) -> SharedSecret {
        SharedSecret(bytes.into())
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC accepts keys of any length (longer ones are hashed): this cannot fail.
        Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes keys of any length")
    }
}

impl fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedSecret(..)")
    }
}

/// How a [`Transport`] runs. [`TransportConfig::new`] fills in the defaults given below.
#[derive(Clone, Debug)]
pub struct TransportConfig {
    /// This node's Raft id.
    pub node: RaftNodeId,
    /// The cluster's id: nodes of another cluster are refused even with the same secret.
    pub cluster: u64,
    /// The shared secret; must not be empty.
    pub secret: SharedSecret,
    /// Where to listen for peers (port 0 picks one; [`Transport::local_addr`] tells).
    pub listen: SocketAddr,
    /// The source IP outbound connections bind; `None` lets the kernel choose.
    pub source: Option<IpAddr>,
    /// Queued messages per peer before the oldest are dropped. Default 4096.
    pub queue_messages: usize,
    /// Queued bytes (encoded size) per peer before the oldest are dropped. Default 64 MiB.
    pub queue_bytes: usize,
    /// Largest frame body accepted or sent, bytes. Default 16 MiB.
    pub max_frame: usize,
    /// Delay before the first reconnect. Default 50 ms.
    pub backoff_min: Duration,
    /// Longest delay between reconnects. Default 2 s.
    pub backoff_max: Duration,
    /// Connect timeout. Default 1 s.
    pub connect_timeout: Duration,
    /// Time the whole handshake may take, either side. Default 2 s.
    pub handshake_timeout: Duration,
    /// Time one batch's write may take before the connection is given up. Default 5 s.
    pub write_timeout: Duration,
    /// TLS on every link (`tls-cluster yes`); `None` for plain TCP. Default `None`.
    pub tls: Option<LinkTls>,
}

/// TLS for the links (module docs, "TLS"): how this node accepts peers (requiring a
/// certificate from the cluster's CA) and dials them (presenting its own), asked again for
/// every new connection, so certificates rotated meanwhile (CONFIG SET tls-cert-file …)
/// are used from the next connection on, as Redis's cluster bus does. `None` from the
/// provider: TLS is no longer configured, and the connection is refused.
#[derive(Clone)]
pub struct LinkTls(pub Arc<TlsConfigs>);

/// What [`LinkTls`] asks: the server and client configurations in force now.
pub type TlsConfigs =
    dyn Fn() -> Option<(Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>)> + Send + Sync;

impl fmt::Debug for LinkTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LinkTls")
    }
}

/// The error of a link whose TLS configuration is gone.
fn no_tls(addr: SocketAddr) -> TransportError {
    TransportError::Tls {
        addr,
        source: io::Error::other("TLS is not configured on this node any more"),
    }
}

/// A link's byte stream: TCP, or TLS over it.
trait LinkIo: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> LinkIo for T {}
type LinkStream = Box<dyn LinkIo>;

/// A sensible bound for the inbound channel given to [`Transport::start`], in frames: a full
/// channel stops reads (backpressure), so this times the frame size bounds what waits there.
pub const DEFAULT_INBOX_FRAMES: usize = 1024;
/// The largest [`TransportConfig::max_frame`] accepted: lengths are 32-bit on the wire.
pub const MAX_FRAME_CEILING: usize = 1 << 30;

impl TransportConfig {
    /// A configuration with the defaults documented on each field.
    pub fn new(
        node: RaftNodeId,
        cluster: u64,
        secret: SharedSecret,
        listen: SocketAddr,
    ) -> TransportConfig {
        TransportConfig {
            node,
            cluster,
            secret,
            listen,
            source: None,
            queue_messages: 4096,
            queue_bytes: 64 << 20,
            max_frame: 16 << 20,
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(1),
            handshake_timeout: Duration::from_secs(2),
            write_timeout: Duration::from_secs(5),
            tls: None,
        }
    }
}

/// Why a frame was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    #[error("frame body of {len} bytes exceeds the limit of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("frame body of {0} bytes is shorter than its 12-byte header")]
    Short(usize),
    #[error("frame checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    Checksum { stored: u32, computed: u32 },
    #[error("malformed frame: {0}")]
    Malformed(&'static str),
    #[error("message {index} of the frame does not decode: {reason}")]
    Message { index: u32, reason: String },
}

/// Why a handshake failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    #[error("not a Rill Raft peer (bad magic)")]
    BadMagic,
    #[error("peer speaks protocol version {theirs}, this node {ours}")]
    Version { ours: u16, theirs: u16 },
    #[error("peer belongs to cluster {theirs:#x}, this node to {ours:#x}")]
    WrongCluster { ours: u64, theirs: u64 },
    #[error("peer is node {theirs}, expected node {expected}")]
    WrongNode { expected: u64, theirs: u64 },
    #[error("shared-secret proof does not match: the nodes' secrets differ")]
    BadProof,
    #[error("refused by the peer: {0}")]
    Refused(&'static str),
}

/// Errors of the transport. The peer and inbound tasks log theirs and carry on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    #[error("the Raft transport's shared secret is empty: every node of a cluster needs the same non-empty secret")]
    EmptySecret,
    #[error("can't listen for Raft peers on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("no Raft peer {0} is known to the transport (add_peer first)")]
    UnknownPeer(RaftNodeId),
    #[error("Raft peer {addr}: {source}")]
    Io {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("Raft peer {addr}: timed out {what}")]
    Timeout {
        addr: SocketAddr,
        what: &'static str,
    },
    #[error("Raft peer {addr}: handshake failed: {source}")]
    Handshake {
        addr: SocketAddr,
        #[source]
        source: HandshakeError,
    },
    #[error("Raft peer {addr}: TLS handshake failed: {source}")]
    Tls {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("Raft peer {addr}: {source}")]
    Frame {
        addr: SocketAddr,
        #[source]
        source: FrameError,
    },
    #[error("Raft peer {addr} (node {sender}) sent a message for node {to} to node {node}")]
    Misaddressed {
        addr: SocketAddr,
        sender: RaftNodeId,
        node: RaftNodeId,
        to: RaftNodeId,
    },
    #[error("max_frame of {0} bytes is above the ceiling of {MAX_FRAME_CEILING}")]
    FrameLimit(usize),
    #[error("{0:?} is not a snapshot file name (a plain name: not empty and not '.', at most {max} bytes, no '/', '\\', NUL or '..')", max = files::MAX_FILE_NAME)]
    BadFileName(String),
    #[error("Raft peer {addr} refused to serve snapshot {snapshot} file {name:?}: {reason}")]
    FetchRefused {
        addr: SocketAddr,
        snapshot: u64,
        name: String,
        reason: FetchRefusal,
    },
    #[error("Raft peer {addr}: fetching snapshot file {name:?}: {source}")]
    FetchStream {
        addr: SocketAddr,
        name: String,
        #[source]
        source: FetchStreamError,
    },
    #[error("can't write the fetched snapshot file {path}: {source}")]
    FetchDest {
        path: std::path::PathBuf,
        #[source]
        source: io::Error,
    },
}

/// One received frame: messages of one group from one sender, in the order sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Inbound {
    pub from: RaftNodeId,
    pub group: GroupId,
    pub messages: Vec<Message>,
}

/// One outbound link's counters, as [`Transport::stats`] reports them. Reconnects are
/// `connects - 1`; a link replaced by [`Transport::add_peer`] starts from zero.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerStats {
    pub peer: RaftNodeId,
    pub addr: Option<SocketAddr>,
    /// A handshaken connection is up.
    pub connected: bool,
    pub queued_messages: usize,
    pub queued_bytes: usize,
    pub sent_messages: u64,
    pub sent_frames: u64,
    /// Bytes written to the socket (frames, not handshakes).
    pub sent_bytes: u64,
    /// Messages dropped: pushed out of a full queue, too large for a frame, or in a batch
    /// whose write failed (some of which the peer may have received).
    pub dropped_messages: u64,
    /// Successful handshakes (the first connection counts too).
    pub connects: u64,
    /// Failed connects or handshakes.
    pub connect_failures: u64,
}

/// The transport's counters, for INFO.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransportStats {
    pub peers: Vec<PeerStats>,
    pub received_messages: u64,
    pub received_frames: u64,
    /// Bytes read after handshakes.
    pub received_bytes: u64,
    /// Inbound connections that completed the handshake.
    pub inbound_connections: u64,
    /// Inbound handshakes refused or timed out.
    pub handshakes_refused: u64,
    /// Inbound connections closed for a bad frame.
    pub bad_frames: u64,
}

// ---------------------------------------------------------------------------------------
// Frames

/// Appends one frame of `messages` (all of `group`) to `out`. On error `out` is unchanged.
pub fn encode_frame(
    group: GroupId,
    messages: &[Message],
    out: &mut Vec<u8>,
) -> Result<(), protobuf::ProtobufError> {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&group.to_le_bytes());
    out.extend_from_slice(&(messages.len() as u32).to_le_bytes());
    for m in messages {
        let at = out.len();
        out.extend_from_slice(&[0; 4]);
        if let Err(e) = m.write_to_vec(out) {
            out.truncate(start);
            return Err(e);
        }
        let n = (out.len() - at - 4) as u32;
        out[at..at + 4].copy_from_slice(&n.to_le_bytes());
    }
    let body_len = out.len() - start - 4;
    let crc = crc32c::crc32c(&out[start + 4..]);
    out[start..start + 4].copy_from_slice(&(body_len as u32).to_le_bytes());
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// A decoded frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub group: GroupId,
    pub messages: Vec<Message>,
}

fn le_u32(b: &[u8]) -> u32 {
    let mut a = [0; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

/// Takes one complete frame off the front of `buf`: `Ok(None)` when more bytes are needed
/// (nothing consumed), an error for a frame that can never become valid. Allocates only the
/// decoded messages, never by a length read from the input.
pub fn decode_frame(buf: &mut BytesMut, max_frame: usize) -> Result<Option<Frame>, FrameError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = le_u32(buf) as usize;
    if len > max_frame {
        return Err(FrameError::TooLarge {
            len,
            max: max_frame,
        });
    }
    if len < BODY_FIXED {
        return Err(FrameError::Short(len));
    }
    if buf.len() < len + FRAME_OVERHEAD {
        return Ok(None);
    }
    let body = &buf[4..4 + len];
    let stored = le_u32(&buf[4 + len..]);
    let computed = crc32c::crc32c(body);
    if stored != computed {
        return Err(FrameError::Checksum { stored, computed });
    }
    let group = le_u64(body);
    let count = le_u32(&body[8..]) as usize;
    if count > MAX_MESSAGES_PER_FRAME {
        return Err(FrameError::Malformed("too many messages"));
    }
    let mut rest = &body[BODY_FIXED..];
    let mut messages = Vec::new();
    for index in 0..count as u32 {
        if rest.len() < 4 {
            return Err(FrameError::Malformed("message length past the end"));
        }
        let n = le_u32(rest) as usize;
        rest = &rest[4..];
        if n > rest.len() {
            return Err(FrameError::Malformed("message past the end"));
        }
        let m = Message::parse_from_bytes(&rest[..n]).map_err(|e| FrameError::Message {
            index,
            reason: e.to_string(),
        })?;
        messages.push(m);
        rest = &rest[n..];
    }
    if !rest.is_empty() {
        return Err(FrameError::Malformed("bytes after the last message"));
    }
    buf.advance(len + FRAME_OVERHEAD);
    Ok(Some(Frame { group, messages }))
}

// ---------------------------------------------------------------------------------------
// Handshake

const REFUSALS: [&str; 5] = [
    "accepted",
    "protocol version",
    "wrong cluster",
    "wrong node id",
    "bad shared-secret proof",
];

fn refusal_code(e: &HandshakeError) -> u8 {
    match e {
        HandshakeError::Version { .. } => 1,
        HandshakeError::WrongCluster { .. } => 2,
        HandshakeError::WrongNode { .. } => 3,
        _ => 4,
    }
}

/// The HMAC of a handshake's fields, keyed by `label`: the link kind's prefix and the side
/// (`"dial"` / `"listen"`).
fn proof(
    secret: &SharedSecret,
    label: [&[u8]; 2],
    first: &[u8],
    second: &[u8],
    cluster: u64,
    from: u64,
    to: u64,
) -> Hmac<Sha256> {
    let mut mac = secret.mac();
    mac.update(label[0]);
    mac.update(label[1]);
    mac.update(first);
    mac.update(second);
    mac.update(&cluster.to_le_bytes());
    mac.update(&from.to_le_bytes());
    mac.update(&to.to_le_bytes());
    mac
}

fn nonce() -> [u8; NONCE_LEN] {
    let mut n = [0; NONCE_LEN];
    rand::thread_rng().fill_bytes(&mut n);
    n
}

/// What an authenticated connection carries, named by the dialer's `AUTH` and bound into
/// both proofs (module docs, "Handshake").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LinkKind {
    /// A message link: frames of Raft messages.
    Messages,
    /// A snapshot file fetch ([`files`]).
    Fetch,
}

impl LinkKind {
    /// `AUTH`'s magic.
    fn magic(self) -> &'static [u8; 8] {
        match self {
            LinkKind::Messages => &MAGIC,
            LinkKind::Fetch => &files::FETCH_MAGIC,
        }
    }

    /// The prefix of both proofs' HMAC input.
    fn label(self) -> &'static [u8] {
        match self {
            LinkKind::Messages => b"rill-raft-v1 ",
            LinkKind::Fetch => b"rill-snap-v1 ",
        }
    }

    fn of_magic(magic: &[u8]) -> Option<LinkKind> {
        [LinkKind::Messages, LinkKind::Fetch]
            .into_iter()
            .find(|k| k.magic()[..] == *magic)
    }
}

/// The listener's side: returns the authenticated sender and what its connection carries.
/// Refusals after `AUTH` was read are told to the dialer before the error is returned.
pub(crate) async fn listener_handshake<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    cfg: &TransportConfig,
) -> Result<(RaftNodeId, LinkKind), HandshakeFailure> {
    let mine = nonce();
    let mut hello = Vec::with_capacity(HELLO_LEN);
    hello.extend_from_slice(&MAGIC);
    hello.extend_from_slice(&PROTOCOL_VERSION.to_le_bytes());
    hello.extend_from_slice(&cfg.cluster.to_le_bytes());
    hello.extend_from_slice(&cfg.node.to_le_bytes());
    hello.extend_from_slice(&mine);
    s.write_all(&hello).await?;
    let mut auth = [0u8; AUTH_LEN];
    s.read_exact(&mut auth).await?;
    let Some(kind) = LinkKind::of_magic(&auth[..8]) else {
        return Err(HandshakeError::BadMagic.into());
    };
    let version = u16::from_le_bytes([auth[8], auth[9]]);
    let cluster = le_u64(&auth[10..]);
    let from = le_u64(&auth[18..]);
    let to = le_u64(&auth[26..]);
    let theirs = &auth[34..34 + NONCE_LEN];
    let tag = &auth[34 + NONCE_LEN..];
    let check = if version != PROTOCOL_VERSION {
        Err(HandshakeError::Version {
            ours: PROTOCOL_VERSION,
            theirs: version,
        })
    } else if cluster != cfg.cluster {
        Err(HandshakeError::WrongCluster {
            ours: cfg.cluster,
            theirs: cluster,
        })
    } else if to != cfg.node {
        Err(HandshakeError::WrongNode {
            expected: cfg.node,
            theirs: to,
        })
    } else if proof(
        &cfg.secret,
        [kind.label(), b"dial"],
        &mine,
        theirs,
        cluster,
        from,
        to,
    )
    .verify_slice(tag)
    .is_err()
    {
        Err(HandshakeError::BadProof)
    } else {
        Ok(())
    };
    let mut verdict = [0u8; VERDICT_LEN];
    match check {
        Ok(()) => {
            let p = proof(
                &cfg.secret,
                [kind.label(), b"listen"],
                theirs,
                &mine,
                cluster,
                from,
                to,
            );
            verdict[1..].copy_from_slice(&p.finalize().into_bytes());
            s.write_all(&verdict).await?;
            Ok((from, kind))
        }
        Err(e) => {
            verdict[0] = refusal_code(&e);
            // Best effort: the dialer learns why; the connection closes either way.
            let _ = s.write_all(&verdict).await;
            Err(e.into())
        }
    }
}

/// The dialer's side of a message link, connecting as `cfg.node` to `peer`.
#[cfg(test)]
pub(crate) async fn dialer_handshake<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    cfg: &TransportConfig,
    peer: RaftNodeId,
) -> Result<(), HandshakeFailure> {
    dialer_handshake_as(
        s,
        cfg,
        peer,
        LinkKind::Messages.magic(),
        LinkKind::Messages.label(),
    )
    .await
}

/// The dialer's side, announcing `magic` and proving with `label` (a [`LinkKind`]'s; tests
/// mix them to show a proof made for one kind does not pass for the other).
pub(crate) async fn dialer_handshake_as<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    cfg: &TransportConfig,
    peer: RaftNodeId,
    magic: &[u8; 8],
    label: &[u8],
) -> Result<(), HandshakeFailure> {
    let mut hello = [0u8; HELLO_LEN];
    s.read_exact(&mut hello).await?;
    if hello[..8] != MAGIC {
        return Err(HandshakeError::BadMagic.into());
    }
    let version = u16::from_le_bytes([hello[8], hello[9]]);
    if version != PROTOCOL_VERSION {
        return Err(HandshakeError::Version {
            ours: PROTOCOL_VERSION,
            theirs: version,
        }
        .into());
    }
    let cluster = le_u64(&hello[10..]);
    if cluster != cfg.cluster {
        return Err(HandshakeError::WrongCluster {
            ours: cfg.cluster,
            theirs: cluster,
        }
        .into());
    }
    let node = le_u64(&hello[18..]);
    if node != peer {
        return Err(HandshakeError::WrongNode {
            expected: peer,
            theirs: node,
        }
        .into());
    }
    let theirs = &hello[26..26 + NONCE_LEN];
    let mine = nonce();
    let p = proof(
        &cfg.secret,
        [label, b"dial"],
        theirs,
        &mine,
        cfg.cluster,
        cfg.node,
        peer,
    );
    let mut auth = Vec::with_capacity(AUTH_LEN);
    auth.extend_from_slice(magic);
    auth.extend_from_slice(&PROTOCOL_VERSION.to_le_bytes());
    auth.extend_from_slice(&cfg.cluster.to_le_bytes());
    auth.extend_from_slice(&cfg.node.to_le_bytes());
    auth.extend_from_slice(&peer.to_le_bytes());
    auth.extend_from_slice(&mine);
    auth.extend_from_slice(&p.finalize().into_bytes());
    s.write_all(&auth).await?;
    let mut verdict = [0u8; VERDICT_LEN];
    s.read_exact(&mut verdict).await?;
    if verdict[0] != 0 {
        let why = REFUSALS
            .get(usize::from(verdict[0]))
            .copied()
            .unwrap_or("unknown reason");
        return Err(HandshakeError::Refused(why).into());
    }
    let p = proof(
        &cfg.secret,
        [label, b"listen"],
        &mine,
        theirs,
        cfg.cluster,
        cfg.node,
        peer,
    );
    if p.verify_slice(&verdict[1..]).is_err() {
        return Err(HandshakeError::BadProof.into());
    }
    Ok(())
}

/// A handshake's failure: the protocol's, or the socket's.
#[derive(Debug)]
pub(crate) enum HandshakeFailure {
    Protocol(HandshakeError),
    Io(io::Error),
}

impl From<HandshakeError> for HandshakeFailure {
    fn from(e: HandshakeError) -> Self {
        HandshakeFailure::Protocol(e)
    }
}

impl From<io::Error> for HandshakeFailure {
    fn from(e: io::Error) -> Self {
        HandshakeFailure::Io(e)
    }
}

impl HandshakeFailure {
    fn at(self, addr: SocketAddr) -> TransportError {
        match self {
            HandshakeFailure::Protocol(source) => TransportError::Handshake { addr, source },
            HandshakeFailure::Io(source) => TransportError::Io { addr, source },
        }
    }
}

// ---------------------------------------------------------------------------------------
// Outbound

struct Queued {
    group: GroupId,
    msg: Message,
    /// Encoded size.
    size: usize,
}

#[derive(Default)]
struct Outbox {
    items: VecDeque<Queued>,
    bytes: usize,
}

#[derive(Default)]
struct PeerCounters {
    sent_messages: AtomicU64,
    sent_frames: AtomicU64,
    sent_bytes: AtomicU64,
    dropped_messages: AtomicU64,
    connects: AtomicU64,
    connect_failures: AtomicU64,
}

/// One peer's outbound half: its queue, its counters and the task that empties the queue.
struct PeerLink {
    id: RaftNodeId,
    addr: SocketAddr,
    outbox: parking_lot::Mutex<Outbox>,
    wake: Notify,
    connected: AtomicBool,
    counters: PeerCounters,
}

impl PeerLink {
    fn push(&self, q: Queued, cfg: &TransportConfig) {
        let mut dropped = 0u64;
        {
            let mut o = self.outbox.lock();
            o.bytes += q.size;
            o.items.push_back(q);
            while o.items.len() > cfg.queue_messages.max(1)
                || (o.bytes > cfg.queue_bytes && o.items.len() > 1)
            {
                if let Some(old) = o.items.pop_front() {
                    o.bytes -= old.size;
                    dropped += 1;
                }
            }
        }
        if dropped > 0 {
            self.counters
                .dropped_messages
                .fetch_add(dropped, Ordering::Relaxed);
        }
        self.wake.notify_one();
    }

    /// Takes what one write should carry, as frames of one group each.
    fn take_batch(&self, max_frame: usize) -> Vec<(GroupId, Vec<Message>)> {
        let mut o = self.outbox.lock();
        let mut frames: Vec<(GroupId, Vec<Message>)> = Vec::new();
        let mut total = 0usize;
        let mut frame_body = 0usize;
        while let Some(front) = o.items.front() {
            let need = 4 + front.size;
            if total > 0 && total + need > WRITE_BATCH_BYTES {
                break;
            }
            let fits = match frames.last() {
                Some((g, ms)) => {
                    *g == front.group
                        && ms.len() < MAX_MESSAGES_PER_FRAME
                        && frame_body + need <= max_frame
                }
                None => false,
            };
            let Some(q) = o.items.pop_front() else { break };
            o.bytes -= q.size;
            if fits {
                frame_body += need;
                if let Some((_, ms)) = frames.last_mut() {
                    ms.push(q.msg);
                }
                total += need;
            } else {
                frame_body = BODY_FIXED + need;
                total += FRAME_OVERHEAD + frame_body;
                frames.push((q.group, vec![q.msg]));
            }
        }
        frames
    }

    fn stats(&self) -> PeerStats {
        let (queued_messages, queued_bytes) = {
            let o = self.outbox.lock();
            (o.items.len(), o.bytes)
        };
        let c = &self.counters;
        PeerStats {
            peer: self.id,
            addr: Some(self.addr),
            connected: self.connected.load(Ordering::Relaxed),
            queued_messages,
            queued_bytes,
            sent_messages: c.sent_messages.load(Ordering::Relaxed),
            sent_frames: c.sent_frames.load(Ordering::Relaxed),
            sent_bytes: c.sent_bytes.load(Ordering::Relaxed),
            dropped_messages: c.dropped_messages.load(Ordering::Relaxed),
            connects: c.connects.load(Ordering::Relaxed),
            connect_failures: c.connect_failures.load(Ordering::Relaxed),
        }
    }
}

async fn dial(cfg: &TransportConfig, link: &PeerLink) -> Result<LinkStream, TransportError> {
    dial_as(cfg, link.addr, link.id, LinkKind::Messages).await
}

/// Connects to `peer` at `addr` (from `cfg.source`, within `cfg.connect_timeout`), runs TLS if
/// configured and the handshake for a connection of `kind` (within `cfg.handshake_timeout`).
async fn dial_as(
    cfg: &TransportConfig,
    addr: SocketAddr,
    peer: RaftNodeId,
    kind: LinkKind,
) -> Result<LinkStream, TransportError> {
    let io = |source| TransportError::Io { addr, source };
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(io)?;
    if let Some(ip) = cfg.source {
        socket.bind(SocketAddr::new(ip, 0)).map_err(io)?;
    }
    let stream = tokio::time::timeout(cfg.connect_timeout, socket.connect(addr))
        .await
        .map_err(|_| TransportError::Timeout {
            addr,
            what: "connecting",
        })?
        .map_err(io)?;
    stream.set_nodelay(true).map_err(io)?;
    let handshake = async {
        let mut stream: LinkStream = match &cfg.tls {
            Some(tls) => {
                // The peer is named by its address; its certificate must chain to the
                // cluster's CA (names are not checked, as Redis does not: see the docs).
                let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
                let (_, dial) = (tls.0)().ok_or_else(|| no_tls(addr))?;
                let tls_stream = tokio_rustls::TlsConnector::from(dial)
                    .connect(name, stream)
                    .await
                    .map_err(|source| TransportError::Tls { addr, source })?;
                Box::new(tls_stream)
            }
            None => Box::new(stream),
        };
        dialer_handshake_as(&mut stream, cfg, peer, kind.magic(), kind.label())
            .await
            .map_err(|e| e.at(addr))?;
        Ok::<_, TransportError>(stream)
    };
    tokio::time::timeout(cfg.handshake_timeout, handshake)
        .await
        .map_err(|_| TransportError::Timeout {
            addr,
            what: "in the handshake",
        })?
}

/// Sends the queue's batches until the connection fails.
async fn pump(
    cfg: &TransportConfig,
    link: &PeerLink,
    stream: LinkStream,
) -> Result<(), TransportError> {
    let addr = link.addr;
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut probe = [0u8; 1];
    let mut out = Vec::new();
    loop {
        let frames = link.take_batch(cfg.max_frame);
        if frames.is_empty() {
            tokio::select! {
                _ = link.wake.notified() => continue,
                r = rd.read(&mut probe) => {
                    return Err(match r {
                        Ok(0) => TransportError::Io {
                            addr,
                            source: io::ErrorKind::UnexpectedEof.into(),
                        },
                        Ok(_) => TransportError::Io {
                            addr,
                            source: io::Error::new(
                                io::ErrorKind::InvalidData,
                                "the listener sent data after the handshake",
                            ),
                        },
                        Err(source) => TransportError::Io { addr, source },
                    });
                }
            }
        }
        out.clear();
        let mut messages = 0u64;
        let mut sent_frames = 0u64;
        for (group, ms) in &frames {
            match encode_frame(*group, ms, &mut out) {
                Ok(()) => {
                    messages += ms.len() as u64;
                    sent_frames += 1;
                }
                Err(e) => {
                    tracing::error!(peer = link.id, "Raft messages not encodable, dropped: {e}");
                    link.counters
                        .dropped_messages
                        .fetch_add(ms.len() as u64, Ordering::Relaxed);
                }
            }
        }
        // TLS holds back what it encrypted until flushed.
        let written = tokio::time::timeout(cfg.write_timeout, async {
            wr.write_all(&out).await?;
            wr.flush().await
        })
        .await;
        let failed = match written {
            Ok(Ok(())) => None,
            Ok(Err(source)) => Some(TransportError::Io { addr, source }),
            Err(_) => Some(TransportError::Timeout {
                addr,
                what: "writing (the peer does not read)",
            }),
        };
        if let Some(e) = failed {
            link.counters
                .dropped_messages
                .fetch_add(messages, Ordering::Relaxed);
            return Err(e);
        }
        let c = &link.counters;
        c.sent_messages.fetch_add(messages, Ordering::Relaxed);
        c.sent_frames.fetch_add(sent_frames, Ordering::Relaxed);
        c.sent_bytes.fetch_add(out.len() as u64, Ordering::Relaxed);
    }
}

/// A peer's task: connect, send until the connection fails, back off, again; forever (the
/// task is aborted when the peer is removed or the transport shut down).
async fn run_peer(shared: Arc<Shared>, link: Arc<PeerLink>) {
    let cfg = &shared.cfg;
    let mut backoff = cfg.backoff_min;
    // Warn once per outage, not on every retry.
    let mut quiet = false;
    loop {
        match dial(cfg, &link).await {
            Ok(stream) => {
                link.counters.connects.fetch_add(1, Ordering::Relaxed);
                link.connected.store(true, Ordering::Relaxed);
                tracing::info!(peer = link.id, addr = %link.addr, "Raft peer connected");
                backoff = cfg.backoff_min;
                quiet = false;
                let e = pump(cfg, &link, stream).await;
                link.connected.store(false, Ordering::Relaxed);
                if let Err(e) = e {
                    tracing::warn!(peer = link.id, "Raft peer connection lost: {e}");
                }
            }
            Err(e) => {
                link.counters
                    .connect_failures
                    .fetch_add(1, Ordering::Relaxed);
                if quiet {
                    tracing::debug!(peer = link.id, "Raft peer still unreachable: {e}");
                } else {
                    tracing::warn!(peer = link.id, "Raft peer unreachable, retrying: {e}");
                    quiet = true;
                }
            }
        }
        let jitter = rand::thread_rng().gen_range(0..=backoff.as_micros() as u64 / 2);
        tokio::time::sleep(backoff + Duration::from_micros(jitter)).await;
        backoff = (backoff * 2).min(cfg.backoff_max);
    }
}

// ---------------------------------------------------------------------------------------
// Inbound

#[derive(Default)]
struct InboundCounters {
    received_messages: AtomicU64,
    received_frames: AtomicU64,
    received_bytes: AtomicU64,
    connections: AtomicU64,
    handshakes_refused: AtomicU64,
    bad_frames: AtomicU64,
}

/// The connection currently delivering a sender's messages, and the turn it holds.
struct SenderSlot {
    /// Held while a connection delivers, so a newer connection from the same sender starts
    /// only after the older one stopped: per-sender order across reconnects.
    turn: Arc<tokio::sync::Mutex<()>>,
    current: Option<(u64, Arc<Notify>)>,
}

struct Shared {
    cfg: TransportConfig,
    inbox: mpsc::Sender<Inbound>,
    inbound: InboundCounters,
    senders: parking_lot::Mutex<HashMap<RaftNodeId, SenderSlot>>,
    generation: AtomicU64,
    handshakes: Arc<Semaphore>,
    /// When the last refusal was logged at warn level (ms since `started`).
    refusal_logged: AtomicU64,
    started: std::time::Instant,
    /// What fetch connections may read ([`Transport::set_file_source`]); `None` refuses them.
    files: parking_lot::RwLock<Option<Arc<dyn FileSource>>>,
    /// Fetches being served at once ([`files::MAX_CONCURRENT_FETCHES`]).
    fetches: Arc<Semaphore>,
}

impl Shared {
    /// Counts a refused inbound connection and logs it: at warn level at most once a second,
    /// so strangers knocking (or a peer with the wrong secret retrying every backoff) cannot
    /// flood the log; the rest at debug level.
    fn refused(&self, addr: SocketAddr, why: &dyn fmt::Display) {
        self.inbound
            .handshakes_refused
            .fetch_add(1, Ordering::Relaxed);
        let now = self.started.elapsed().as_millis() as u64;
        let last = self.refusal_logged.load(Ordering::Relaxed);
        let due = (last == 0 || now.saturating_sub(last) >= 1000)
            && self
                .refusal_logged
                .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok();
        if due {
            tracing::warn!(%addr, "Raft listener refused a connection: {why} (more within a second are logged at debug level)");
        } else {
            tracing::debug!(%addr, "Raft listener refused a connection: {why}");
        }
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, addr)) => {
                    let Ok(permit) = shared.handshakes.clone().try_acquire_owned() else {
                        shared.refused(addr, &"too many handshakes in progress");
                        continue;
                    };
                    conns.spawn(serve_inbound(shared.clone(), stream, addr, permit));
                }
                Err(e) => {
                    // EMFILE and friends: keep listening, after a pause that lets them clear.
                    tracing::warn!("Raft listener: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

async fn serve_inbound(
    shared: Arc<Shared>,
    stream: TcpStream,
    addr: SocketAddr,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    let cfg = &shared.cfg;
    let _ = stream.set_nodelay(true);
    let handshake = async {
        let mut stream: LinkStream = match &cfg.tls {
            Some(tls) => {
                let (accept, _) = (tls.0)().ok_or_else(|| no_tls(addr))?;
                let tls_stream = tokio_rustls::TlsAcceptor::from(accept)
                    .accept(stream)
                    .await
                    .map_err(|source| TransportError::Tls { addr, source })?;
                Box::new(tls_stream)
            }
            None => Box::new(stream),
        };
        let from = listener_handshake(&mut stream, cfg)
            .await
            .map_err(|e| e.at(addr))?;
        Ok::<_, TransportError>((stream, from))
    };
    let (stream, (from, kind)) = match tokio::time::timeout(cfg.handshake_timeout, handshake).await
    {
        Ok(Ok(done)) => done,
        Ok(Err(e)) => {
            shared.refused(addr, &e);
            return;
        }
        Err(_) => {
            shared.refused(addr, &"handshake timed out");
            return;
        }
    };
    drop(permit);
    if kind == LinkKind::Fetch {
        files::serve(&shared, stream, addr, from).await;
        return;
    }
    shared.inbound.connections.fetch_add(1, Ordering::Relaxed);
    let gen = shared.generation.fetch_add(1, Ordering::Relaxed);
    let stop = Arc::new(Notify::new());
    let turn = {
        let mut senders = shared.senders.lock();
        let slot = senders.entry(from).or_insert_with(|| SenderSlot {
            turn: Arc::new(tokio::sync::Mutex::new(())),
            current: None,
        });
        if let Some((_, older)) = slot.current.replace((gen, stop.clone())) {
            older.notify_one();
        }
        slot.turn.clone()
    };
    let result = tokio::select! {
        r = async {
            let _turn = turn.lock().await;
            deliver(&shared, stream, addr, from).await
        } => r,
        _ = stop.notified() => Ok(()),
    };
    {
        let mut senders = shared.senders.lock();
        if let Some(slot) = senders.get_mut(&from) {
            if slot.current.as_ref().is_some_and(|(g, _)| *g == gen) {
                slot.current = None;
            }
        }
    }
    if let Err(e) = result {
        if matches!(
            e,
            TransportError::Frame { .. } | TransportError::Misaddressed { .. }
        ) {
            shared.inbound.bad_frames.fetch_add(1, Ordering::Relaxed);
            tracing::error!(%addr, peer = from, "Raft connection closed: {e}");
        } else {
            tracing::info!(%addr, peer = from, "Raft connection closed: {e}");
        }
    }
}

/// Reads frames and hands them to the inbox until the connection ends or misbehaves.
async fn deliver(
    shared: &Shared,
    mut stream: LinkStream,
    addr: SocketAddr,
    from: RaftNodeId,
) -> Result<(), TransportError> {
    let cfg = &shared.cfg;
    let c = &shared.inbound;
    let mut buf = BytesMut::new();
    loop {
        while let Some(frame) = decode_frame(&mut buf, cfg.max_frame)
            .map_err(|source| TransportError::Frame { addr, source })?
        {
            if let Some(m) = frame.messages.iter().find(|m| m.to != cfg.node) {
                return Err(TransportError::Misaddressed {
                    addr,
                    sender: from,
                    node: cfg.node,
                    to: m.to,
                });
            }
            c.received_frames.fetch_add(1, Ordering::Relaxed);
            c.received_messages
                .fetch_add(frame.messages.len() as u64, Ordering::Relaxed);
            let inbound = Inbound {
                from,
                group: frame.group,
                messages: frame.messages,
            };
            if shared.inbox.send(inbound).await.is_err() {
                // Nobody listens any more: the node is shutting down.
                return Ok(());
            }
        }
        buf.reserve(READ_CHUNK);
        let n = stream
            .read_buf(&mut buf)
            .await
            .map_err(|source| TransportError::Io { addr, source })?;
        if n == 0 {
            return if buf.is_empty() {
                Ok(())
            } else {
                Err(TransportError::Io {
                    addr,
                    source: io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "connection closed mid-frame",
                    ),
                })
            };
        }
        c.received_bytes.fetch_add(n as u64, Ordering::Relaxed);
    }
}

// ---------------------------------------------------------------------------------------
// The transport

/// A node's Raft transport: a listener for its peers and one outbound link per peer.
/// Dropping it (or [`Transport::shutdown`]) stops every task and closes every socket.
pub struct Transport {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    runtime: tokio::runtime::Handle,
    accept: Option<JoinHandle<()>>,
    peers: parking_lot::Mutex<HashMap<RaftNodeId, PeerTask>>,
}

/// A peer's link and the task that serves it.
type PeerTask = (Arc<PeerLink>, JoinHandle<()>);

impl Transport {
    /// Binds the listener and starts accepting peers; received frames go to `inbox`. Call
    /// from within a tokio runtime; the transport's tasks run on it, and the other methods
    /// may then be called from any thread.
    pub async fn start(
        cfg: TransportConfig,
        inbox: mpsc::Sender<Inbound>,
    ) -> Result<Transport, TransportError> {
        if cfg.secret.0.is_empty() {
            return Err(TransportError::EmptySecret);
        }
        if cfg.max_frame > MAX_FRAME_CEILING {
            return Err(TransportError::FrameLimit(cfg.max_frame));
        }
        let listener =
            TcpListener::bind(cfg.listen)
                .await
                .map_err(|source| TransportError::Listen {
                    addr: cfg.listen,
                    source,
                })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| TransportError::Listen {
                addr: cfg.listen,
                source,
            })?;
        let shared = Arc::new(Shared {
            cfg,
            inbox,
            inbound: InboundCounters::default(),
            senders: parking_lot::Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
            handshakes: Arc::new(Semaphore::new(MAX_PENDING_HANDSHAKES)),
            refusal_logged: AtomicU64::new(0),
            started: std::time::Instant::now(),
            files: parking_lot::RwLock::new(None),
            fetches: Arc::new(Semaphore::new(files::MAX_CONCURRENT_FETCHES)),
        });
        let runtime = tokio::runtime::Handle::current();
        let accept = runtime.spawn(accept_loop(listener, shared.clone()));
        Ok(Transport {
            shared,
            local_addr,
            runtime,
            accept: Some(accept),
            peers: parking_lot::Mutex::new(HashMap::new()),
        })
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Starts a link to `peer` at `addr` (its Raft listener), replacing any link it had; the
    /// old link's queued messages are dropped.
    pub fn add_peer(&self, peer: RaftNodeId, addr: SocketAddr) {
        let link = Arc::new(PeerLink {
            id: peer,
            addr,
            outbox: parking_lot::Mutex::new(Outbox::default()),
            wake: Notify::new(),
            connected: AtomicBool::new(false),
            counters: PeerCounters::default(),
        });
        let task = self
            .runtime
            .spawn(run_peer(self.shared.clone(), link.clone()));
        if let Some((_, old)) = self.peers.lock().insert(peer, (link, task)) {
            old.abort();
        }
    }

    /// Stops the link to `peer` (a removed member).
    pub fn remove_peer(&self, peer: RaftNodeId) {
        if let Some((_, task)) = self.peers.lock().remove(&peer) {
            task.abort();
        }
    }

    /// Queues `msg` for its recipient (`msg.to`). Never blocks: a full queue drops its oldest
    /// messages, and a message too large for any frame is dropped with an error logged.
    pub fn send(&self, group: GroupId, msg: Message) -> Result<(), TransportError> {
        let link = match self.peers.lock().get(&msg.to) {
            Some((link, _)) => link.clone(),
            None => return Err(TransportError::UnknownPeer(msg.to)),
        };
        let size = msg.compute_size() as usize;
        if BODY_FIXED + 4 + size > self.shared.cfg.max_frame {
            tracing::error!(
                peer = msg.to,
                size,
                max = self.shared.cfg.max_frame,
                "Raft message larger than a frame, dropped"
            );
            link.counters
                .dropped_messages
                .fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        link.push(Queued { group, msg, size }, &self.shared.cfg);
        Ok(())
    }

    /// The counters, for INFO; peers in id order.
    pub fn stats(&self) -> TransportStats {
        let mut peers: Vec<PeerStats> = self
            .peers
            .lock()
            .values()
            .map(|(link, _)| link.stats())
            .collect();
        peers.sort_by_key(|p| p.peer);
        let c = &self.shared.inbound;
        TransportStats {
            peers,
            received_messages: c.received_messages.load(Ordering::Relaxed),
            received_frames: c.received_frames.load(Ordering::Relaxed),
            received_bytes: c.received_bytes.load(Ordering::Relaxed),
            inbound_connections: c.connections.load(Ordering::Relaxed),
            handshakes_refused: c.handshakes_refused.load(Ordering::Relaxed),
            bad_frames: c.bad_frames.load(Ordering::Relaxed),
        }
    }

    /// Stops every task and waits until the listener socket is closed, so the address can
    /// be bound again at once (a restarted node).
    pub async fn shutdown(mut self) {
        let mut tasks: Vec<JoinHandle<()>> =
            self.peers.lock().drain().map(|(_, (_, t))| t).collect();
        tasks.extend(self.accept.take());
        for t in &tasks {
            t.abort();
        }
        for t in tasks {
            let _ = t.await;
        }
    }
}

impl Drop for Transport {
    fn drop(&mut self) {
        if let Some(t) = self.accept.take() {
            t.abort();
        }
        for (_, (_, t)) in self.peers.lock().drain() {
            t.abort();
        }
    }
}

mod files;
pub use files::{FetchRefusal, FetchStreamError, FileSource};

#[cfg(test)]
mod tests;
