//! Snapshot file fetches over the Raft listener: a follower or learner that needs entries the
//! leader purged receives a Raft snapshot naming files on the leader (a checkpoint and log
//! segments, each with a length to copy), and copies them from the leader's cluster bus port
//! with [`Transport::fetch_file`]. The transport knows nothing of checkpoints: it serves the
//! named files of a numbered snapshot from the paths a [`FileSource`] gives it
//! ([`Transport::set_file_source`]).
//!
//! # Connection
//!
//! A fetch dials the same listener as a message link and runs the same handshake (TLS first
//! when configured, then `HELLO` / `AUTH` / `VERDICT`, parent module docs), with two changes
//! that make the two kinds of connection impossible to confuse: `AUTH` starts with the magic
//! `"RILLSNAP"` instead of `"RILLRAFT"`, and both proofs are keyed with the label prefix
//! `"rill-snap-v1 "` instead of `"rill-raft-v1 "` (HMAC-SHA256(secret, `"rill-snap-v1 dial"
//! | …`), the rest as for message links). An `AUTH` whose magic and proof disagree fails the
//! proof check, and a `VERDICT` proof made for a message link does not pass for a fetch, so
//! neither side can be talked into the other kind. Message links' bytes are unchanged, so
//! [`super::PROTOCOL_VERSION`] stays 1 (a node predating fetches refuses `RILLSNAP` as a bad
//! magic). One connection carries one fetch and is then closed.
//!
//! # Request and response
//!
//! All integers little-endian.
//!
//! ```text
//! fetcher → server   u64 snapshot | u64 offset | u16 n | n bytes of name | u32 crc32c(all before)
//! server → fetcher   u8 status | u64 length
//!   status 0:        chunks from offset to length, each
//!                      u32 n (1 ..= CHUNK_MAX) | n bytes | u32 crc32c(bytes)
//!                    then the end marker
//!                      u32 0 | u64 total (= length) | u32 crc32c(total)
//!   status ≠ 0:      a refusal (FetchRefusal's code; length is the file's served length
//!                    for "offset past the end", else 0), and the connection closes.
//! ```
//!
//! `offset` is how many bytes the fetcher's destination already holds: a fetch cut off by a
//! closed connection resumes where it stopped (the bytes kept were checked chunk by chunk when
//! they arrived; they are not read back). `length` is what the [`FileSource`] says may be
//! served: a segment is copied up to a cut even while the leader appends beyond it. The
//! fetcher refuses a chunk that is larger than [`CHUNK_MAX`], goes past `length` or fails its
//! checksum, and an end marker whose total is not `length` or that comes early; it writes
//! only checked chunks, then fsyncs the file and its directory.
//!
//! Names are plain file names (not empty, not `.`, at most [`MAX_FILE_NAME`] bytes of UTF-8,
//! no `/`, `\`, NUL or `..`): the server checks, whatever the fetcher did.
//!
//! # Bounds
//!
//! - At most [`MAX_CONCURRENT_FETCHES`] fetches are served at once; more are refused as busy
//!   (the fetcher retries). The handshake counts against the listener's handshake limit like
//!   any connection.
//! - The request must arrive within the handshake timeout; every chunk's write (server) and
//!   read (fetcher) within [`TransportConfig::write_timeout`], so a stalled or stopped peer
//!   holds a task no longer than that.
//! - Memory per fetch is one chunk on each side. The server opens files and reads them with
//!   positional reads (`pread`) on the blocking pool, never on the runtime's threads; the
//!   fetcher writes with positional writes there too, each finished before the next chunk is
//!   read, so a failed fetch leaves no write in flight that a retry's offset would miss. (A
//!   fetch abandoned by dropping its future may leave one chunk's write running; being
//!   positional, it writes the same bytes at the same place a retry would.) The fetcher takes
//!   no lock on the destination: one fetch per destination at a time is the caller's rule.
//!
//! No crate: the exchange is two small fixed layouts over the existing authenticated link,
//! which a general-purpose file-transfer protocol would not authenticate the same way.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::task::JoinHandle;

use super::{
    dial_as, le_u32, le_u64, LinkKind, LinkStream, RaftNodeId, Shared, Transport, TransportConfig,
    TransportError,
};

/// `AUTH`'s magic on a fetch connection.
pub(super) const FETCH_MAGIC: [u8; 8] = *b"RILLSNAP";
/// Longest file name, bytes.
pub const MAX_FILE_NAME: usize = 255;
/// Largest chunk of file data, bytes.
pub const CHUNK_MAX: usize = 1 << 20;
/// Fetches served at once by one node.
pub const MAX_CONCURRENT_FETCHES: usize = 8;

/// `snapshot | offset | name length` before the name.
const REQUEST_FIXED: usize = 8 + 8 + 2;
/// `status | length`.
const RESPONSE_LEN: usize = 1 + 8;

/// Files a node lets its authenticated peers fetch (a snapshot's checkpoint and segments).
pub trait FileSource: Send + Sync {
    /// The file `name` of snapshot `snapshot`: its path and how many of its bytes may be
    /// served (a segment is served only up to a cut, even if the file is longer). `None`: no such file.
    fn open(&self, snapshot: u64, name: &str) -> Option<(PathBuf, u64)>;
}

/// Why a node refused to serve a file: its answer's status code, as the fetcher reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FetchRefusal {
    #[error("it serves no snapshot files (no file source set)")]
    NoSource,
    #[error("it has no such file")]
    NoSuchFile,
    #[error("not a plain file name")]
    BadName,
    #[error("the destination already holds {offset} bytes, more than the file's {length}: remove it and fetch again")]
    OffsetPastEnd { offset: u64, length: u64 },
    #[error("too many fetches in progress there, retry later")]
    Busy,
    #[error("the file can't be read there (see its log)")]
    Unreadable,
    #[error("malformed fetch request")]
    BadRequest,
}

impl FetchRefusal {
    fn code(self) -> u8 {
        match self {
            FetchRefusal::NoSource => 1,
            FetchRefusal::NoSuchFile => 2,
            FetchRefusal::BadName => 3,
            FetchRefusal::OffsetPastEnd { .. } => 4,
            FetchRefusal::Busy => 5,
            FetchRefusal::Unreadable => 6,
            FetchRefusal::BadRequest => 7,
        }
    }

    /// The refusal of status `code`; `offset` is the fetcher's, `length` the server's.
    fn from_code(code: u8, offset: u64, length: u64) -> Option<FetchRefusal> {
        Some(match code {
            1 => FetchRefusal::NoSource,
            2 => FetchRefusal::NoSuchFile,
            3 => FetchRefusal::BadName,
            4 => FetchRefusal::OffsetPastEnd { offset, length },
            5 => FetchRefusal::Busy,
            6 => FetchRefusal::Unreadable,
            7 => FetchRefusal::BadRequest,
            _ => return None,
        })
    }
}

/// Why a fetcher gave up on what the server sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FetchStreamError {
    #[error("chunk of {len} bytes exceeds the limit of {max}")]
    ChunkTooLarge { len: usize, max: usize },
    #[error("chunk at offset {offset} fails its checksum (stored {stored:#010x}, computed {computed:#010x})")]
    Checksum {
        offset: u64,
        stored: u32,
        computed: u32,
    },
    #[error("chunk at offset {offset} of {len} bytes goes past the file's length {length}")]
    PastEnd {
        offset: u64,
        len: usize,
        length: u64,
    },
    #[error("the end marker says {total} bytes, the file is {length} and {received} arrived")]
    WrongEnd {
        total: u64,
        length: u64,
        received: u64,
    },
    #[error("the end marker fails its checksum")]
    EndChecksum,
    #[error("unknown answer status {0}")]
    UnknownStatus(u8),
}

/// Whether `name` may name a served file (module docs).
pub(super) fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_FILE_NAME
        && !name.contains(['/', '\\', '\0'])
        && !name.contains("..")
        && name != "."
}

pub(super) fn encode_request(snapshot: u64, offset: u64, name: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(REQUEST_FIXED + name.len() + 4);
    out.extend_from_slice(&snapshot.to_le_bytes());
    out.extend_from_slice(&offset.to_le_bytes());
    // `fetch_file` bounds names by MAX_FILE_NAME; only tests send longer ones.
    let n = name.len().min(u16::MAX as usize);
    out.extend_from_slice(&(n as u16).to_le_bytes());
    out.extend_from_slice(&name[..n]);
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Appends one data chunk (`bytes` ≤ [`CHUNK_MAX`], not empty) to `out`.
pub(super) fn encode_chunk(bytes: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
    out.extend_from_slice(&crc32c::crc32c(bytes).to_le_bytes());
}

/// Appends the end marker of a file of `total` bytes to `out`.
pub(super) fn encode_end(total: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&total.to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(&total.to_le_bytes()).to_le_bytes());
}

/// One unit of a file's stream.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Chunk {
    /// This many checked bytes are in the buffer.
    Data(usize),
    /// The end marker's total.
    End(u64),
}

/// A read's failure: the socket's, or the stream's content.
#[derive(Debug)]
pub(super) enum ReadFailure {
    Io(io::Error),
    Stream(FetchStreamError),
}

impl From<io::Error> for ReadFailure {
    fn from(e: io::Error) -> Self {
        ReadFailure::Io(e)
    }
}

impl From<FetchStreamError> for ReadFailure {
    fn from(e: FetchStreamError) -> Self {
        ReadFailure::Stream(e)
    }
}

/// Reads the next chunk into `buf` (replacing its content), the fetcher being at `offset` of
/// a file of `length` bytes. Allocates at most [`CHUNK_MAX`] whatever the length read says.
pub(super) async fn read_chunk<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
    offset: u64,
    length: u64,
) -> Result<Chunk, ReadFailure> {
    let mut head = [0u8; 4];
    r.read_exact(&mut head).await?;
    let len = u32::from_le_bytes(head) as usize;
    if len == 0 {
        let mut end = [0u8; 12];
        r.read_exact(&mut end).await?;
        if le_u32(&end[8..]) != crc32c::crc32c(&end[..8]) {
            return Err(FetchStreamError::EndChecksum.into());
        }
        return Ok(Chunk::End(le_u64(&end)));
    }
    if len > CHUNK_MAX {
        return Err(FetchStreamError::ChunkTooLarge {
            len,
            max: CHUNK_MAX,
        }
        .into());
    }
    if offset.saturating_add(len as u64) > length {
        return Err(FetchStreamError::PastEnd {
            offset,
            len,
            length,
        }
        .into());
    }
    buf.resize(len + 4, 0);
    r.read_exact(buf).await?;
    let stored = le_u32(&buf[len..]);
    buf.truncate(len);
    let computed = crc32c::crc32c(buf);
    if stored != computed {
        return Err(FetchStreamError::Checksum {
            offset,
            stored,
            computed,
        }
        .into());
    }
    Ok(Chunk::Data(len))
}

// ---------------------------------------------------------------------------------------
// Fetching

/// Aborts the fetch task when the caller stops waiting for it.
struct AbortOnDrop(JoinHandle<Result<u64, TransportError>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Transport {
    /// Serves fetches from `source` on this transport's listener (until then, fetch requests are refused).
    pub fn set_file_source(&self, source: Arc<dyn FileSource>) {
        *self.shared.files.write() = Some(source);
    }

    /// Fetches file `name` of snapshot `snapshot` from peer `peer` (raft id) listening at `addr`
    /// into `dest`, resuming after the bytes `dest` already holds (a retry after a cut connection
    /// continues where it stopped), checking every chunk's CRC32C; fsyncs `dest` and returns its
    /// final length (= the length the source serves). Uses this transport's config (secret, cluster id,
    /// source IP binding, TLS, timeouts). Callable from any thread via an async context.
    ///
    /// The work runs on the transport's runtime; dropping the returned future abandons it
    /// (a write already handed to the blocking pool still completes). A `dest` longer than
    /// the served file is refused ([`FetchRefusal::OffsetPastEnd`]), never truncated here.
    pub async fn fetch_file(
        &self,
        addr: SocketAddr,
        peer: RaftNodeId,
        snapshot: u64,
        name: &str,
        dest: &Path,
    ) -> Result<u64, TransportError> {
        if !plain_name(name) {
            return Err(TransportError::BadFileName(name.to_owned()));
        }
        let mut task = AbortOnDrop(self.runtime.spawn(fetch(
            self.shared.clone(),
            addr,
            peer,
            snapshot,
            name.to_owned(),
            dest.to_owned(),
        )));
        match (&mut task.0).await {
            Ok(r) => r,
            Err(e) => Err(TransportError::Io {
                addr,
                source: io::Error::other(format!("the fetch task failed: {e}")),
            }),
        }
    }
}

/// The fetch itself, without checking `name` (tests use it to show the server checks).
pub(super) async fn fetch(
    shared: Arc<Shared>,
    addr: SocketAddr,
    peer: RaftNodeId,
    snapshot: u64,
    name: String,
    dest: PathBuf,
) -> Result<u64, TransportError> {
    let cfg = &shared.cfg;
    let opened = {
        let dest = dest.clone();
        move || {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(false)
                .open(&dest)?;
            let offset = file.metadata()?.len();
            Ok((Arc::new(file), offset))
        }
    };
    let (file, offset) = blocking(opened, &dest).await?;
    let mut stream = dial_as(cfg, addr, peer, LinkKind::Fetch).await?;
    let received = receive(
        cfg,
        &mut stream,
        addr,
        Wanted {
            snapshot,
            name: &name,
            offset,
        },
        (&file, &dest),
    )
    .await;
    let length = received?;
    // Close the connection politely (TLS close_notify) before syncing: the server is done.
    let _ = tokio::time::timeout(cfg.write_timeout, stream.shutdown()).await;
    drop(stream);
    // The file, then its directory entry, so a crash after the fetch cannot lose a created file.
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    blocking(
        move || {
            file.sync_all()?;
            std::fs::File::open(dir)?.sync_all()
        },
        &dest,
    )
    .await?;
    Ok(length)
}

/// Runs `work` on the blocking pool, its errors being the destination `path`'s.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> io::Result<T> + Send + 'static,
    path: &Path,
) -> Result<T, TransportError> {
    let dest_err = |source| TransportError::FetchDest {
        path: path.to_owned(),
        source,
    };
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| dest_err(io::Error::other(e)))?
        .map_err(dest_err)
}

/// What a fetch asks for.
struct Wanted<'a> {
    snapshot: u64,
    name: &'a str,
    /// Bytes the destination already holds.
    offset: u64,
}

/// Sends the request and writes the answer's chunks to `file` (at `path`); returns the
/// file's length.
async fn receive(
    cfg: &TransportConfig,
    stream: &mut LinkStream,
    addr: SocketAddr,
    Wanted {
        snapshot,
        name,
        offset,
    }: Wanted<'_>,
    (file, path): (&Arc<std::fs::File>, &Path),
) -> Result<u64, TransportError> {
    let io = |source| TransportError::Io { addr, source };
    let timeout = |what| TransportError::Timeout { addr, what };
    let stream_err = |source| TransportError::FetchStream {
        addr,
        name: name.to_owned(),
        source,
    };
    let request = encode_request(snapshot, offset, name.as_bytes());
    tokio::time::timeout(cfg.write_timeout, async {
        stream.write_all(&request).await?;
        stream.flush().await
    })
    .await
    .map_err(|_| timeout("sending a fetch request"))?
    .map_err(io)?;
    let mut head = [0u8; RESPONSE_LEN];
    tokio::time::timeout(cfg.write_timeout, stream.read_exact(&mut head))
        .await
        .map_err(|_| timeout("waiting for a fetch's answer"))?
        .map_err(io)?;
    let length = le_u64(&head[1..]);
    if head[0] != 0 {
        let reason = FetchRefusal::from_code(head[0], offset, length)
            .ok_or_else(|| stream_err(FetchStreamError::UnknownStatus(head[0])))?;
        return Err(TransportError::FetchRefused {
            addr,
            snapshot,
            name: name.to_owned(),
            reason,
        });
    }
    if length < offset {
        // The server should have refused; do not write past what it serves.
        return Err(TransportError::FetchRefused {
            addr,
            snapshot,
            name: name.to_owned(),
            reason: FetchRefusal::OffsetPastEnd { offset, length },
        });
    }
    let mut at = offset;
    let mut buf = Vec::new();
    loop {
        let chunk =
            tokio::time::timeout(cfg.write_timeout, read_chunk(stream, &mut buf, at, length))
                .await
                .map_err(|_| timeout("reading a snapshot file (the peer stopped sending)"))?
                .map_err(|e| match e {
                    ReadFailure::Io(e) => io(e),
                    ReadFailure::Stream(e) => stream_err(e),
                })?;
        match chunk {
            Chunk::Data(n) => {
                // Positional, and finished when the await returns: a failed or abandoned
                // fetch leaves no write in flight that a retry's offset would miss.
                let f = file.clone();
                let data = std::mem::take(&mut buf);
                buf = blocking(
                    move || {
                        use std::os::unix::fs::FileExt;
                        f.write_all_at(&data[..n], at)?;
                        Ok(data)
                    },
                    path,
                )
                .await?;
                at += n as u64;
            }
            Chunk::End(total) => {
                if total != length || at != length {
                    return Err(stream_err(FetchStreamError::WrongEnd {
                        total,
                        length,
                        received: at - offset,
                    }));
                }
                return Ok(length);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Serving

/// Serves one fetch on an authenticated connection from `from`, logging the outcome.
pub(super) async fn serve(
    shared: &Shared,
    mut stream: LinkStream,
    addr: SocketAddr,
    from: RaftNodeId,
) {
    match serve_one(shared, &mut stream, addr).await {
        Ok(Served::File {
            snapshot,
            name,
            offset,
            length,
        }) => {
            tracing::info!(%addr, peer = from, snapshot, name, offset, length, "served a snapshot file");
            let _ = tokio::time::timeout(shared.cfg.write_timeout, stream.shutdown()).await;
        }
        Ok(Served::Refused(why)) => {
            tracing::info!(%addr, peer = from, "refused a snapshot file fetch: {why}");
            let _ = tokio::time::timeout(shared.cfg.write_timeout, stream.shutdown()).await;
        }
        Err(e) => tracing::info!(%addr, peer = from, "snapshot file fetch ended: {e}"),
    }
}

/// How a fetch connection ended without a socket error.
enum Served {
    File {
        snapshot: u64,
        name: String,
        offset: u64,
        length: u64,
    },
    Refused(String),
}

async fn serve_one(
    shared: &Shared,
    stream: &mut LinkStream,
    addr: SocketAddr,
) -> Result<Served, TransportError> {
    let cfg = &shared.cfg;
    let io = |source| TransportError::Io { addr, source };
    let request = tokio::time::timeout(cfg.handshake_timeout, read_request(stream))
        .await
        .map_err(|_| TransportError::Timeout {
            addr,
            what: "waiting for a fetch request",
        })?
        .map_err(io)?;
    let Some((snapshot, offset, name)) = request else {
        return refuse(
            cfg,
            stream,
            addr,
            FetchRefusal::BadRequest,
            0,
            "bad request",
        )
        .await;
    };
    let Ok(_permit) = shared.fetches.clone().try_acquire_owned() else {
        return refuse(cfg, stream, addr, FetchRefusal::Busy, 0, &name).await;
    };
    if !plain_name(&name) {
        return refuse(cfg, stream, addr, FetchRefusal::BadName, 0, &name).await;
    }
    let Some(source) = shared.files.read().clone() else {
        return refuse(cfg, stream, addr, FetchRefusal::NoSource, 0, &name).await;
    };
    let opened = {
        let name = name.clone();
        tokio::task::spawn_blocking(move || open_served(&*source, snapshot, &name))
            .await
            .unwrap_or_else(|e| Err((FetchRefusal::Unreadable, format!("{e}"))))
    };
    let (file, length) = match opened {
        Ok(opened) => opened,
        Err((why, detail)) => {
            if why == FetchRefusal::Unreadable {
                tracing::warn!(%addr, snapshot, name, "can't serve a snapshot file: {detail}");
            }
            return refuse(cfg, stream, addr, why, 0, &name).await;
        }
    };
    if offset > length {
        let why = FetchRefusal::OffsetPastEnd { offset, length };
        return refuse(cfg, stream, addr, why, length, &name).await;
    }
    let mut head = Vec::with_capacity(RESPONSE_LEN);
    head.push(0);
    head.extend_from_slice(&length.to_le_bytes());
    write_timed(cfg, stream, addr, &head).await?;
    let file = Arc::new(file);
    let mut at = offset;
    let mut out = Vec::with_capacity(CHUNK_MAX + 8);
    while at < length {
        let n = (length - at).min(CHUNK_MAX as u64) as usize;
        let f = file.clone();
        let data = tokio::task::spawn_blocking(move || {
            use std::os::unix::fs::FileExt;
            let mut buf = vec![0u8; n];
            f.read_exact_at(&mut buf, at).map(|()| buf)
        })
        .await
        .map_err(|e| io(io::Error::other(e)))?
        .map_err(|e| {
            tracing::warn!(%addr, snapshot, name, at, "can't read a snapshot file being served: {e}");
            io(e)
        })?;
        out.clear();
        encode_chunk(&data, &mut out);
        write_timed(cfg, stream, addr, &out).await?;
        at += n as u64;
    }
    out.clear();
    encode_end(length, &mut out);
    write_timed(cfg, stream, addr, &out).await?;
    Ok(Served::File {
        snapshot,
        name,
        offset,
        length,
    })
}

/// Reads the request: `None` for one that is malformed (a name too long or not UTF-8 is
/// returned as given, lossily, for the name check to refuse).
async fn read_request<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<Option<(u64, u64, String)>> {
    let mut fixed = [0u8; REQUEST_FIXED];
    r.read_exact(&mut fixed).await?;
    let n = usize::from(u16::from_le_bytes([fixed[16], fixed[17]]));
    if n > MAX_FILE_NAME {
        return Ok(None);
    }
    let mut rest = vec![0u8; n + 4];
    r.read_exact(&mut rest).await?;
    let mut crc = crc32c::crc32c(&fixed);
    crc = crc32c::crc32c_append(crc, &rest[..n]);
    if crc != le_u32(&rest[n..]) {
        return Ok(None);
    }
    let Ok(name) = String::from_utf8(rest[..n].to_vec()) else {
        return Ok(None);
    };
    Ok(Some((le_u64(&fixed), le_u64(&fixed[8..]), name)))
}

/// Asks `source` for the file and opens it (on the blocking pool: both may touch the disk).
fn open_served(
    source: &dyn FileSource,
    snapshot: u64,
    name: &str,
) -> Result<(std::fs::File, u64), (FetchRefusal, String)> {
    let Some((path, length)) = source.open(snapshot, name) else {
        return Err((FetchRefusal::NoSuchFile, String::new()));
    };
    let file = std::fs::File::open(&path).map_err(|e| {
        let why = if e.kind() == io::ErrorKind::NotFound {
            FetchRefusal::NoSuchFile
        } else {
            FetchRefusal::Unreadable
        };
        (why, format!("{}: {e}", path.display()))
    })?;
    let on_disk = file
        .metadata()
        .map_err(|e| (FetchRefusal::Unreadable, format!("{}: {e}", path.display())))?
        .len();
    if on_disk < length {
        return Err((
            FetchRefusal::Unreadable,
            format!(
                "{} holds {on_disk} bytes, fewer than the {length} it is to serve",
                path.display()
            ),
        ));
    }
    Ok((file, length))
}

async fn refuse<S: AsyncWrite + Unpin>(
    cfg: &TransportConfig,
    stream: &mut S,
    addr: SocketAddr,
    why: FetchRefusal,
    length: u64,
    name: &str,
) -> Result<Served, TransportError> {
    let mut head = Vec::with_capacity(RESPONSE_LEN);
    head.push(why.code());
    head.extend_from_slice(&length.to_le_bytes());
    write_timed(cfg, stream, addr, &head).await?;
    Ok(Served::Refused(format!("{name:?}: {why}")))
}

async fn write_timed<S: AsyncWrite + Unpin>(
    cfg: &TransportConfig,
    stream: &mut S,
    addr: SocketAddr,
    bytes: &[u8],
) -> Result<(), TransportError> {
    tokio::time::timeout(cfg.write_timeout, async {
        stream.write_all(bytes).await?;
        stream.flush().await
    })
    .await
    .map_err(|_| TransportError::Timeout {
        addr,
        what: "writing a snapshot file (the fetcher does not read)",
    })?
    .map_err(|source| TransportError::Io { addr, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream_of(chunks: &[&[u8]], total: u64) -> Vec<u8> {
        let mut out = Vec::new();
        for c in chunks {
            encode_chunk(c, &mut out);
        }
        encode_end(total, &mut out);
        out
    }

    #[tokio::test]
    async fn chunks_round_trip() {
        let wire = stream_of(&[b"hello ", b"world"], 11);
        let mut r = &wire[..];
        let mut buf = Vec::new();
        assert_eq!(
            read_chunk(&mut r, &mut buf, 0, 11).await.ok(),
            Some(Chunk::Data(6))
        );
        assert_eq!(buf, b"hello ");
        assert_eq!(
            read_chunk(&mut r, &mut buf, 6, 11).await.ok(),
            Some(Chunk::Data(5))
        );
        assert_eq!(buf, b"world");
        assert_eq!(
            read_chunk(&mut r, &mut buf, 11, 11).await.ok(),
            Some(Chunk::End(11))
        );
        assert!(r.is_empty());
    }

    #[tokio::test]
    async fn a_corrupted_chunk_is_detected_at_every_byte() {
        let wire = stream_of(&[b"0123456789"], 10);
        // Every byte of the data and of its checksum (the length field's corruption is the
        // next test's: it reads as another length).
        for i in 4..4 + 10 + 4 {
            let mut bad = wire.clone();
            bad[i] ^= 0x20;
            let mut r = &bad[..];
            let mut buf = Vec::new();
            let got = read_chunk(&mut r, &mut buf, 0, 10).await;
            assert!(
                matches!(
                    got,
                    Err(ReadFailure::Stream(FetchStreamError::Checksum {
                        offset: 0,
                        ..
                    }))
                ),
                "byte {i}: {got:?}"
            );
        }
        // The end marker's total.
        let mut bad = wire.clone();
        let at = 4 + 10 + 4 + 4;
        bad[at] ^= 1;
        let mut r = &bad[at - 4..];
        let got = read_chunk(&mut r, &mut Vec::new(), 10, 10).await;
        assert!(matches!(
            got,
            Err(ReadFailure::Stream(FetchStreamError::EndChecksum))
        ));
    }

    #[tokio::test]
    async fn lengths_past_the_limit_or_the_file_are_refused_before_reading() {
        let mut wire = Vec::new();
        wire.extend_from_slice(&((CHUNK_MAX + 1) as u32).to_le_bytes());
        let mut buf = Vec::new();
        let got = read_chunk(&mut &wire[..], &mut buf, 0, u64::MAX).await;
        assert!(matches!(
            got,
            Err(ReadFailure::Stream(FetchStreamError::ChunkTooLarge { .. }))
        ));
        assert_eq!(buf.capacity(), 0, "a lying length allocated");
        let wire = stream_of(&[b"abcd"], 4);
        let got = read_chunk(&mut &wire[..], &mut buf, 2, 4).await;
        assert!(matches!(
            got,
            Err(ReadFailure::Stream(FetchStreamError::PastEnd {
                offset: 2,
                len: 4,
                length: 4
            }))
        ));
        // Cut short: an I/O error (EOF), not a chunk.
        let got = read_chunk(&mut &wire[..6], &mut buf, 0, 4).await;
        assert!(matches!(got, Err(ReadFailure::Io(_))));
    }

    #[tokio::test]
    async fn requests_round_trip_and_bad_ones_are_malformed() {
        let wire = encode_request(7, 42, b"seg-0001.log");
        assert_eq!(
            read_request(&mut &wire[..]).await.expect("read"),
            Some((7, 42, "seg-0001.log".to_string()))
        );
        let mut bad = wire.clone();
        bad[3] ^= 1;
        assert_eq!(read_request(&mut &bad[..]).await.expect("read"), None);
        let long = encode_request(7, 0, &[b'a'; MAX_FILE_NAME + 1]);
        assert_eq!(read_request(&mut &long[..]).await.expect("read"), None);
    }

    #[test]
    fn only_plain_names_pass() {
        for ok in ["checkpoint", "seg-00000001.log", "a.b", ".hidden"] {
            assert!(plain_name(ok), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "../x",
            "x..",
            "a/b",
            "/etc/passwd",
            "a\0b",
            "a\\b",
        ] {
            assert!(!plain_name(bad), "{bad:?}");
        }
        assert!(!plain_name(&"a".repeat(MAX_FILE_NAME + 1)));
        assert!(plain_name(&"a".repeat(MAX_FILE_NAME)));
    }
}
