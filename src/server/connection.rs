//! One task per connection: read, frame, execute, and write replies in batches
//! (one write per batch of pipelined requests, not one per reply).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use super::executor;
use super::handoff::{self, Handoff, Outbox, Phase};
use super::tls::TlsSession;
use crate::commands::{self, Exec, Session};
use crate::core::clients::ClientInfo;
use crate::core::Shared;
use crate::protocol::{ProtocolError, Reply, RequestDecoder};
use crate::storage::FsyncPolicy;

/// Replies are flushed once this much is buffered even mid-batch, so a long
/// pipeline does not hold all its replies in memory.
pub(super) const FLUSH_THRESHOLD: usize = 64 * 1024;

/// Whole requests waiting to run, oldest first.
type Requests = std::collections::VecDeque<Vec<bytes::Bytes>>;

/// How much a read asks the socket for (at least).
const READ_CHUNK: usize = 16 * 1024;

/// Why a connection ends.
enum End {
    /// Peer closed, QUIT, kill, idle timeout, protocol error or output limit.
    Close,
}

/// One client's connection, as mini-redis's `Connection`: its socket, read and write
/// buffers, the request decoder and the client's state (`Session`), and what the reply
/// path remembers across batches. The protocol knows no streams and the commands know no
/// sockets; this is where they meet.
struct Connection {
    shared: Arc<Shared>,
    /// The socket (shared with the outbox, so a committer can write the replies it makes
    /// durable) and, on the TLS port, the TLS session over it.
    io: Io,
    /// Replies handed to the committer ([`handoff`]), and the registry they go to.
    outbox: Arc<Outbox>,
    handoff: Arc<Handoff>,
    session: Session,
    decoder: RequestDecoder,
    rbuf: BytesMut,
    wbuf: BytesMut,
    /// Byte ranges in `wbuf` of replies that acknowledge logged writes.
    acks: Vec<(usize, usize)>,
    timers: ClientTimers,
    /// A huge reply was buffered: once it is sent, return the freed memory to the OS.
    trim_after_flush: bool,
}

/// The connection's byte stream: the socket, and on the TLS port the TLS session that
/// every byte goes through ([`super::tls`]). Plain connections pay one branch per call.
pub(super) struct Io {
    socket: Arc<TcpStream>,
    tls: Option<Box<TlsSession>>,
}

impl Io {
    /// Whether bytes the connection took from `wbuf` still wait to be sent (TLS records
    /// rustls holds; a plain socket holds none).
    fn holds_output(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.wants_write())
    }
}

/// Serves one client until it disconnects or is told to close. `tls` is the session of a
/// connection accepted on the TLS port, its handshake done.
pub async fn serve(
    shared: Arc<Shared>,
    handoff: Arc<Handoff>,
    socket: TcpStream,
    tls: Option<Box<TlsSession>>,
    info: Arc<ClientInfo>,
) {
    let mut conn = Connection::new(shared, handoff, socket, tls, info);
    let _ = conn.run().await;
    if let Some(tls) = conn.io.tls.as_deref_mut() {
        tls.close(&conn.io.socket);
    }
    cleanup(&conn.shared, &mut conn.session);
}

impl Connection {
    fn new(
        shared: Arc<Shared>,
        handoff: Arc<Handoff>,
        socket: TcpStream,
        tls: Option<Box<TlsSession>>,
        info: Arc<ClientInfo>,
    ) -> Connection {
        let authenticated = !shared.requires_auth();
        let decoder = RequestDecoder::new(shared.config.read().proto_max_bulk_len);
        let socket = Arc::new(socket);
        Connection {
            session: Session::new(info, authenticated),
            decoder,
            outbox: Outbox::new(socket.clone()),
            handoff,
            io: Io { socket, tls },
            shared,
            rbuf: BytesMut::new(),
            // Grown by the replies as needed (and kept), not 16 KiB up front: an idle
            // connection held 10.4 KB, 4 of them this buffer's first page.
            wbuf: BytesMut::new(),
            acks: Vec::new(),
            timers: ClientTimers::new(),
            trim_after_flush: false,
        }
    }

    /// Read, then execute every whole request the read completed, then write their
    /// replies once they are durable: one write per batch of pipelined requests, not
    /// one per reply, by the committer when the batch waits for a commit.
    async fn run(&mut self) -> Result<(), End> {
        if executor::running() {
            return self.run_on_executor().await;
        }
        loop {
            self.read().await?;
            while let Some(argv) = self.next_request().await? {
                self.execute(argv).await?;
            }
            self.flush_batch().await?;
        }
    }

    /// `run` for the single-executor model ([`executor`]): every whole request a read
    /// completed goes to the executor thread in one batch, which executes and encodes
    /// them; this task only reads, waits and writes.
    async fn run_on_executor(&mut self) -> Result<(), End> {
        loop {
            self.read().await?;
            loop {
                let (requests, bad) = self.decode_batch();
                if requests.is_empty() && bad.is_none() {
                    break;
                }
                self.execute_batch(requests).await?;
                if let Some(e) = bad {
                    self.protocol_error(e).await;
                    return Err(End::Close);
                }
            }
            self.flush_batch().await?;
        }
    }

    /// The whole requests in `rbuf`, and the protocol error that ends them if any. A
    /// client that must still authenticate gets one request per batch, so that the
    /// header limits of an unauthenticated client end with its AUTH, as they do when
    /// each request is decoded after the previous one ran.
    fn decode_batch(&mut self) -> (Requests, Option<ProtocolError>) {
        let one = self.shared.requires_auth() && !self.session.authenticated;
        let mut requests = Requests::new();
        loop {
            match self.decode_next() {
                Ok(Some(argv)) => {
                    requests.push_back(argv);
                    if one {
                        return (requests, None);
                    }
                }
                Ok(None) => return (requests, None),
                Err(e) => return (requests, Some(e)),
            }
        }
    }

    /// Runs `requests` on the executor thread, waiting for blocked ones and writing
    /// replies past the flush threshold between parts.
    async fn execute_batch(&mut self, mut requests: Requests) -> Result<(), End> {
        while !requests.is_empty() {
            let placeholder = Session::new(self.session.info.clone(), false);
            let batch = executor::Batch {
                session: std::mem::replace(&mut self.session, placeholder),
                requests,
                wbuf: std::mem::take(&mut self.wbuf),
                acks: std::mem::take(&mut self.acks),
                stop: None,
                huge: false,
            };
            let Some(batch) = executor::execute(&self.shared, batch).await else {
                return Err(End::Close);
            };
            self.session = batch.session;
            self.wbuf = batch.wbuf;
            self.acks = batch.acks;
            requests = batch.requests;
            self.trim_after_flush |= batch.huge;
            match batch.stop {
                None => {}
                Some(executor::Stop::Blocked(exec)) => {
                    let start = self.wbuf.len();
                    self.finish(exec, start).await?;
                }
                Some(executor::Stop::Close) => {
                    let _ = self.flush_durable(FlushMode::Drain).await;
                    return Err(End::Close);
                }
                Some(executor::Stop::Flush) => self.flush_durable(FlushMode::NoWait).await?,
            }
        }
        Ok(())
    }

    /// The end of a batch. Replies that wait for a commit are handed to its committer
    /// ([`handoff`]), which writes them once they are durable, and the connection goes
    /// back to reading; anything else is written now.
    async fn flush_batch(&mut self) -> Result<(), End> {
        let fanout = std::mem::take(&mut self.session.published);
        if fanout > 0 && fanout <= YIELD_FANOUT {
            // The few subscribers this batch woke are in this thread's queue: they write
            // their messages before this client's replies go out, the order Redis writes
            // them in (`publishCommand` queues the subscriber for writing before the
            // publisher's reply). Without it a publisher whose socket already holds its
            // next batch runs on while they wait: at one subscriber, p99
            // publish→delivery 7 ms without it, 1.5–2 ms with it, 0.4 ms with it and
            // no LIFO slot in the runtime (main.rs; bench/results/
            // 2026-12-08-pubsub-outlet.md).
            tokio::task::yield_now().await;
        }
        if self.wbuf.is_empty() && self.outbox.phase() != Phase::Returned && !self.io.holds_output()
        {
            // Nothing to write (a handed-off batch is the committer's to write; TLS
            // records a mid-pipeline flush left in the session are not nothing).
            return Ok(());
        }
        self.settle_outbox().await;
        let pending = match self.shared.log.get() {
            // Only an fsync is worth handing off: under `everysec` and `no` the wait is a
            // write(2), cheaper done inline than by a committer that must then be woken.
            Some(log) => {
                self.session.lsn > log.durable_lsn() && log.policy() == FsyncPolicy::Always
            }
            // Raft mode (no plain log): the observed index is not committed yet.
            None => self
                .shared
                .raft
                .get()
                .is_some_and(|raft| self.session.lsn > raft.committed()),
        };
        {
            // A read that must confirm leadership first is flushed here (below), not by
            // the committer. Nor does a TLS connection hand off: the committer would write
            // its replies to the socket around the TLS session. It waits for the commit itself.
            if pending
                && self.wbuf.len() < FLUSH_THRESHOLD
                && !self.trim_after_flush
                && !self.session.read_barrier
                && self.io.tls.is_none()
            {
                let lsn = self.session.lsn;
                self.handoff
                    .hand(
                        &self.shared,
                        &self.outbox,
                        &mut self.wbuf,
                        &mut self.acks,
                        lsn,
                    )
                    .await;
                return Ok(());
            }
        }
        self.flush_durable(FlushMode::Drain).await
    }

    /// Waits until no handed-off reply is pending; what the committer could not write
    /// goes first in `wbuf`, before the replies buffered since.
    async fn settle_outbox(&mut self) {
        if self.outbox.phase() == Phase::Idle {
            return;
        }
        let mut back = self.outbox.settle().await;
        if back.is_empty() {
            return;
        }
        let shift = back.len();
        back.extend_from_slice(&self.wbuf);
        self.wbuf = back;
        for a in self.acks.iter_mut() {
            a.0 += shift;
            a.1 += shift;
        }
    }

    /// Waits for bytes (or a kill, or the idle timeout) and appends them to `rbuf`.
    async fn read(&mut self) -> Result<(), End> {
        let (idle_timeout, qbuf_limit, max_bulk) = {
            let cfg = self.shared.config.read();
            (
                cfg.timeout as u64,
                cfg.client_query_buffer_limit,
                cfg.proto_max_bulk_len,
            )
        };
        self.decoder.set_max_bulk_len(max_bulk);
        if self.session.info.killed.load(Ordering::SeqCst) {
            return Err(End::Close);
        }
        let handed_off = self.outbox.phase() != Phase::Idle;
        let outlet = self.session.subs.outlet.clone();
        let n = tokio::select! {
            r = read_some(&mut self.io, &mut self.rbuf) => r.map_err(|_| End::Close)?,
            _ = self.session.info.kill_notify.notified() => return Err(End::Close),
            // The committer gave back replies it could not write: write them now.
            _ = self.outbox.settled(), if handed_off => return Ok(()),
            // Pub/Sub deliveries: encode them for the batch's flush to write.
            _ = deliveries(outlet.as_deref()) => {
                self.take_deliveries();
                return Ok(());
            }
            // A subscriber is never idle, as Redis's clientsCronHandleTimeout skips
            // pubsub clients: it waits for messages, not for its own commands.
            _ = until(self.timers.idle_deadline(if self.session.subs.active() { 0 } else { idle_timeout })) => {
                tracing::debug!("Closing idle client id={}", self.session.id);
                return Err(End::Close);
            }
        };
        if n == 0 {
            return Err(End::Close);
        }
        self.timers.interacted();
        self.shared
            .stats
            .net_input_bytes
            .fetch_add(n as u64, Ordering::Relaxed);
        check_query_buffer(&self.session, &self.rbuf, qbuf_limit)
    }

    /// Moves the Pub/Sub deliveries waiting in the client's outlet (encoded in its
    /// protocol: arrays in RESP2, push frames in RESP3) to `wbuf`.
    fn take_deliveries(&mut self) {
        let Some(outlet) = &self.session.subs.outlet else {
            return;
        };
        if let Some(after) = outlet.take_into(&mut self.wbuf) {
            // A keyspace event is written with the replies that wait for its record.
            self.session.lsn = self.session.lsn.max(after);
            outlet.set_unsent(self.wbuf.len() as u64);
        }
    }

    /// The next whole request in `rbuf`, if any. A protocol error is answered and closes
    /// the connection, as in Redis.
    async fn next_request(&mut self) -> Result<Option<Vec<bytes::Bytes>>, End> {
        // Redis's `authRequired`: until this client authenticates, its requests are held
        // to small header limits, so it cannot make us buffer large bulks.
        let requires_auth = self.shared.requires_auth();
        self.decoder
            .set_unauthenticated(requires_auth && !self.session.authenticated);
        match self.decoder.decode(&mut self.rbuf) {
            Ok(argv) => Ok(argv),
            Err(e) => {
                self.protocol_error(e).await;
                Err(End::Close)
            }
        }
    }

    /// `next_request`'s decoding alone, for a batch sent to the executor. The header
    /// limits of an unauthenticated client are those of the session before the batch
    /// (an AUTH inside the batch lifts them from the next read on).
    fn decode_next(&mut self) -> Result<Option<Vec<bytes::Bytes>>, ProtocolError> {
        let requires_auth = self.shared.requires_auth();
        self.decoder
            .set_unauthenticated(requires_auth && !self.session.authenticated);
        self.decoder.decode(&mut self.rbuf)
    }

    /// Answers a protocol error, as Redis does before it closes the connection.
    async fn protocol_error(&mut self, e: ProtocolError) {
        self.shared.stats.record_error(&e.to_string());
        Reply::error(e.to_string()).encode(self.session.proto, &mut self.wbuf);
        let _ = self.flush_durable(FlushMode::Drain).await;
    }

    /// Executes one request and buffers its reply (waiting first if it blocks).
    async fn execute(&mut self, argv: Vec<bytes::Bytes>) -> Result<(), End> {
        let start = self.wbuf.len();
        let exec = commands::execute(&mut self.session, &self.shared, argv);
        self.finish(exec, start).await
    }

    /// Buffers the reply of an executed request (waiting for it first if it blocked);
    /// its encoding starts at `start` in `wbuf`.
    async fn finish(&mut self, exec: Exec, start: usize) -> Result<(), End> {
        match exec {
            Exec::Reply(r) => {
                if !self.session.suppress_reply {
                    r.encode(self.session.proto, &mut self.wbuf);
                }
                // Messages a command published to this very client follow its reply, as
                // Redis 7.2+ defers the pushes to the client it is executing.
                self.take_deliveries();
            }
            Exec::Blocked {
                waiter,
                rx,
                deadline,
            } => {
                self.flush_durable(FlushMode::Drain).await?;
                let mut rx = rx;
                let reply = loop {
                    let waited = wait_blocked(
                        &self.shared,
                        &mut self.io,
                        &self.session,
                        &mut self.rbuf,
                        waiter,
                        &mut rx,
                        deadline,
                    )
                    .await?;
                    if let Some(reply) = waited {
                        break reply;
                    }
                    // A (RESP3) subscriber gets its messages while it is blocked, as in
                    // Redis; what the socket does not take now goes before the reply.
                    self.take_deliveries();
                    self.wait_logged().await;
                    write_ready(&self.shared, &mut self.io, &mut self.wbuf)?;
                    if let Some(outlet) = &self.session.subs.outlet {
                        outlet.set_unsent(self.wbuf.len() as u64);
                    }
                };
                // Redis does not time out a blocked client: its idle time counts from
                // the end of the block.
                self.timers.interacted();
                // The writer that served us may have logged the delivery; the reply
                // waits for everything logged up to now.
                if let Some(log) = self.shared.log.get() {
                    // The writer (or CLAIM timer) that served us holds the keyspace lock
                    // until its record is appended: take it once so the LSN read below
                    // includes that record.
                    drop(self.shared.state.lock());
                    self.session.lsn = self.session.lsn.max(log.appended_lsn());
                } else if let Some(raft) = self.shared.raft.get() {
                    // As above, with the entry the writer proposed.
                    drop(self.shared.state.lock());
                    self.session.lsn = self.session.lsn.max(raft.executed());
                }
                // The keyspace events of the write that served us were published before
                // its critical section ended (the lock taken above waited for it): they
                // go before the reply, as Redis pushes them before it writes the reply of
                // a client it unblocks.
                self.take_deliveries();
                reply.encode(self.session.proto, &mut self.wbuf);
            }
        }
        if std::mem::take(&mut self.session.logged) {
            self.acks.push((start, self.wbuf.len()));
        }
        if self.wbuf.len() - start > HUGE_REPLY {
            self.trim_after_flush = true;
        }
        if self.session.close_after_reply {
            let _ = self.flush_durable(FlushMode::Drain).await;
            return Err(End::Close);
        }
        if self.wbuf.len() >= FLUSH_THRESHOLD {
            self.flush_durable(FlushMode::NoWait).await?;
        }
        Ok(())
    }

    /// Waits until the log is durable (Raft: committed) up to `session.lsn`, for keyspace
    /// events written while the client is blocked. A failed log is the replies' concern
    /// ([`Connection::flush_durable`]); here it only ends the wait.
    async fn wait_logged(&self) {
        match self.shared.log.get() {
            Some(log) => {
                let _ = log.wait_durable(self.session.lsn).await;
            }
            None => {
                if let Some(raft) = self.shared.raft.get() {
                    let _ = raft.wait_committed(self.session.lsn).await;
                }
            }
        }
    }

    /// Waits until every record the buffered replies depend on is durable, then writes
    /// them. If the log was poisoned meanwhile, the replies that acknowledge writes are
    /// replaced by the error: nothing is acknowledged that is not on disk.
    async fn flush_durable(&mut self, mode: FlushMode) -> Result<(), End> {
        self.settle_outbox().await;
        if std::mem::take(&mut self.session.read_barrier) {
            // Reads on a replicated shard's leader: answered only once this node has
            // confirmed it still leads. A node that no longer does answers nothing: the
            // client reconnects and is redirected, as after a failover.
            if let Some(raft) = self.shared.raft.get() {
                if let Err(e) = raft.confirm_leadership().await {
                    tracing::debug!(
                        "Closing client id={}: its reads can't be confirmed ({e})",
                        self.session.id
                    );
                    return Err(End::Close);
                }
            }
        }
        let waited = match self.shared.log.get() {
            Some(log) => log.wait_durable(self.session.lsn).await.map_err(Into::into),
            // Raft mode (no plain log): replies wait for the commit of what they observed.
            None => match self.shared.raft.get() {
                Some(raft) => raft
                    .wait_committed(self.session.lsn)
                    .await
                    .map_err(Into::into),
                None => Ok(()),
            },
        };
        if let Err(e) = waited {
            if !self.acks.is_empty() {
                let err = handoff::poison_reply(e);
                self.wbuf = handoff::replace_acks(&self.wbuf, &self.acks, &err);
            }
        }
        self.acks.clear();
        flush(
            &self.shared,
            &mut self.io,
            &self.session,
            &mut self.wbuf,
            &mut self.timers,
            mode,
        )
        .await?;
        if self.trim_after_flush && self.wbuf.is_empty() {
            self.trim_after_flush = false;
            // A huge reply (an `XREADGROUP COUNT 1000000000` over a large stream) is
            // many small allocations whose pages glibc keeps once freed: 537 MB of RSS
            // after a 300 k × 1 KiB reply, 63 MB before it (issue #18, defect 14).
            super::heap::release();
        }
        Ok(())
    }
}

/// Sleeps until `deadline`, or forever when there is none.
async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
        None => std::future::pending::<()>().await,
    }
}

/// What the limits that close a client remember across reads and flushes.
struct ClientTimers {
    /// `client-output-buffer-limit normal`: since when the unsent replies have been
    /// above the soft limit.
    over_soft_since: Option<Instant>,
    /// `timeout`: when the client last sent us bytes or took some of its replies
    /// (Redis's `lastinteraction`, updated by both its read and its write handler).
    /// A client that stops reading its replies is thus idle from its last command or
    /// the last byte it took, even while we wait to write to it.
    last_interaction: Instant,
}

impl ClientTimers {
    fn new() -> ClientTimers {
        ClientTimers {
            over_soft_since: None,
            last_interaction: Instant::now(),
        }
    }

    fn interacted(&mut self) {
        self.last_interaction = Instant::now();
    }

    /// When the client counts as idle under `timeout` = `secs` (never when 0).
    fn idle_deadline(&self, secs: u64) -> Option<Instant> {
        (secs > 0).then(|| self.last_interaction + Duration::from_secs(secs))
    }
}

/// A batch whose messages reached at most this many subscribers each lets them write
/// first ([`Connection::flush_batch`]). Messages to more subscribers do not wait for
/// them: each subscriber's write is worth gathering across several publishers' batches
/// (yielding at 100 subscribers cost a fifth of the deliveries per second).
const YIELD_FANOUT: u64 = 4;

/// Whether a flush may wait for the client to read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum FlushMode {
    /// Mid-pipeline: write what the socket takes now and keep the rest, so the
    /// next commands' replies accumulate and the limits can see a client that
    /// does not read.
    NoWait,
    /// End of a batch (or before blocking/closing): wait until everything is written.
    Drain,
}

/// Writes the buffered replies, enforcing `client-output-buffer-limit normal` on
/// the bytes the client has not taken yet, as Redis does on its reply list: over
/// the hard limit, or over the soft limit for longer than its seconds, the client
/// is disconnected. Memory per connection thus stays bounded by the limit plus
/// one reply, whatever a client pipelines without reading.
///
/// Waiting for the client to read is also bounded by `timeout`: a client that takes
/// nothing for that long is idle, as in Redis, whose timeout check runs whether or
/// not replies are pending.
async fn flush(
    shared: &Shared,
    io: &mut Io,
    session: &Session,
    wbuf: &mut BytesMut,
    timers: &mut ClientTimers,
    mode: FlushMode,
) -> Result<(), End> {
    loop {
        if write_ready(shared, io, wbuf)? > 0 {
            timers.interacted();
        }
        if let Some(outlet) = &session.subs.outlet {
            // What publishers add to while we wait counts against the pubsub limit.
            outlet.set_unsent(wbuf.len() as u64);
        }
        check_output_limits(shared, session, wbuf.len() as u64, timers)?;
        if (wbuf.is_empty() && !io.holds_output()) || mode == FlushMode::NoWait {
            return Ok(());
        }
        let limits = output_limits(shared, session);
        let soft_deadline = match subscriber_outlet(session) {
            Some(outlet) => outlet.soft_deadline(limits),
            None => timers
                .over_soft_since
                .map(|t| t + Duration::from_secs(limits.2)),
        };
        let idle_secs = if session.subs.active() {
            0
        } else {
            u64::from(shared.config.read().timeout)
        };
        let idle_deadline = timers.idle_deadline(idle_secs);
        tokio::select! {
            r = io.socket.writable() => r.map_err(|_| End::Close)?,
            _ = session.info.kill_notify.notified() => {
                // CLIENT KILL closes at once; a shutdown lets in-flight replies finish.
                if !shared.shutting_down.load(Ordering::SeqCst) {
                    return Err(End::Close);
                }
            }
            _ = until(soft_deadline) => {}
            _ = until(idle_deadline) => {
                tracing::debug!(
                    "Closing idle client id={} ({} bytes of replies not taken)",
                    session.id,
                    wbuf.len()
                );
                return Err(End::Close);
            }
        }
    }
}

/// Reads what the socket has into `rbuf`, waiting for it to be readable (0 at EOF); on
/// the TLS port, what it has decrypted. Through `&TcpStream`, as the socket is shared with
/// the outbox's writer.
///
/// An empty buffer is parked in its thread's spares before the wait and one is taken
/// back when bytes arrive, as Redis 8 reads into a shared query buffer until a client
/// has a partial request: an idle or blocked client holds no read buffer (a 16 KiB
/// buffer is most of what a connection cost: 6.9 KB of RSS per idle client, 2.8 KB
/// without), and a busy one reuses a spare instead of calling the allocator.
async fn read_some(io: &mut Io, rbuf: &mut BytesMut) -> std::io::Result<usize> {
    let socket = &*io.socket;
    if let Some(tls) = io.tls.as_deref_mut() {
        return read_some_tls(socket, tls, rbuf).await;
    }
    loop {
        park_read_buffer(rbuf);
        socket.readable().await?;
        unpark_read_buffer(rbuf);
        match socket.try_read_buf(rbuf) {
            // The readiness was stale: park the buffer again for the next wait.
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            r => return r,
        }
    }
}

/// [`read_some`] through the TLS session: a readable socket may hold only part of a
/// record (or a key update), so it waits again until some plaintext comes out.
async fn read_some_tls(
    socket: &TcpStream,
    tls: &mut TlsSession,
    rbuf: &mut BytesMut,
) -> std::io::Result<usize> {
    loop {
        unpark_read_buffer(rbuf);
        let n = tls.read_ready(socket, rbuf)?;
        if n > 0 || tls.closed() {
            return Ok(n);
        }
        park_read_buffer(rbuf);
        socket.readable().await?;
    }
}

/// How many empty read buffers a runtime thread keeps for the next read.
const SPARE_READ_BUFFERS: usize = 8;

thread_local! {
    static SPARES: std::cell::RefCell<Vec<BytesMut>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Gives an empty read buffer to this thread's spares (or back to the allocator).
fn park_read_buffer(rbuf: &mut BytesMut) {
    if !rbuf.is_empty() || rbuf.capacity() == 0 {
        return;
    }
    let spare = std::mem::take(rbuf);
    SPARES.with(|s| {
        let mut s = s.borrow_mut();
        if s.len() < SPARE_READ_BUFFERS {
            s.push(spare);
        }
    });
}

/// Makes sure `rbuf` has room for a read, from this thread's spares if it has none.
fn unpark_read_buffer(rbuf: &mut BytesMut) {
    if rbuf.capacity() == 0 {
        if let Some(spare) = SPARES.with(|s| s.borrow_mut().pop()) {
            *rbuf = spare;
        }
    }
    if rbuf.capacity() - rbuf.len() < READ_CHUNK / 4 {
        rbuf.reserve(READ_CHUNK);
    }
}

/// Writes as much of `wbuf` as the socket accepts without waiting; returns how much.
fn write_ready(shared: &Shared, io: &mut Io, wbuf: &mut BytesMut) -> Result<usize, End> {
    let mut written = 0;
    let socket = &*io.socket;
    if let Some(tls) = io.tls.as_deref_mut() {
        // Plaintext bytes, as Redis counts what SSL_write took.
        written = tls.write_ready(socket, wbuf).map_err(|_| End::Close)?;
        shared
            .stats
            .net_output_bytes
            .fetch_add(written as u64, Ordering::Relaxed);
    }
    while !wbuf.is_empty() && io.tls.is_none() {
        match socket.try_write(wbuf) {
            Ok(0) => return Err(End::Close),
            Ok(n) => {
                wbuf.advance(n);
                written += n;
                shared
                    .stats
                    .net_output_bytes
                    .fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return Err(End::Close),
        }
    }
    if wbuf.is_empty() {
        // Keep the allocation small again after a burst of large replies.
        if wbuf.capacity() > 4 * FLUSH_THRESHOLD {
            *wbuf = BytesMut::new();
        } else {
            wbuf.clear();
        }
    }
    Ok(written)
}

/// Reply size past which, once the reply is sent, the freed memory is handed back to the OS.
pub(super) const HUGE_REPLY: usize = 32 << 20;

/// The client's `client-output-buffer-limit` class: `pubsub` while it has a
/// subscription (as Redis's `getClientType`), `normal` otherwise.
fn output_limits(shared: &Shared, session: &Session) -> (u64, u64, u64) {
    if session.subs.active() {
        shared.pubsub_output_limits()
    } else {
        shared.output_limits()
    }
}

/// The outlet of a client in the pubsub class (with at least one subscription).
fn subscriber_outlet(session: &Session) -> Option<&crate::core::pubsub::Outlet> {
    session
        .subs
        .outlet
        .as_deref()
        .filter(|_| session.subs.active())
}

/// Waits for a Pub/Sub delivery to `outlet`, forever when the client has none.
async fn deliveries(outlet: Option<&crate::core::pubsub::Outlet>) {
    match outlet {
        Some(o) => o.ready().await,
        None => std::future::pending().await,
    }
}

/// Applies the hard and soft limits to `pending` unsent bytes.
fn check_output_limits(
    shared: &Shared,
    session: &Session,
    pending: u64,
    timers: &mut ClientTimers,
) -> Result<(), End> {
    let limits = output_limits(shared, session);
    if let Some(outlet) = subscriber_outlet(session) {
        // A subscriber's limits count what waits in its outlet too, on the outlet's
        // clock, which publishers check as well.
        outlet.set_unsent(pending);
        if outlet.over_limits(0, limits) {
            warn_output_limit(session, pending);
            return Err(End::Close);
        }
        return Ok(());
    }
    let (hard, soft, soft_secs) = limits;
    let over_hard = hard > 0 && pending > hard;
    let mut over_soft_too_long = false;
    if soft > 0 && pending > soft {
        let since = *timers.over_soft_since.get_or_insert_with(Instant::now);
        over_soft_too_long = since.elapsed() > Duration::from_secs(soft_secs);
    } else {
        timers.over_soft_since = None;
    }
    if over_hard || over_soft_too_long {
        warn_output_limit(session, pending);
        return Err(End::Close);
    }
    Ok(())
}

fn warn_output_limit(session: &Session, pending: u64) {
    tracing::warn!(
        "Client id={} addr={} closed for overcoming of output buffer limits ({} bytes unsent).",
        session.id,
        session.info.addr,
        pending
    );
}

/// Applies `client-query-buffer-limit` to the unparsed input: over it, the client is
/// closed, as Redis's `readQueryFromClient` does.
fn check_query_buffer(session: &Session, rbuf: &BytesMut, limit: u64) -> Result<(), End> {
    if limit > 0 && rbuf.len() as u64 > limit {
        tracing::warn!(
            "Closing client that reached max query buffer length: id={} addr={} (qbuf initial bytes: {:?})",
            session.id,
            session.info.addr,
            String::from_utf8_lossy(&rbuf[..rbuf.len().min(64)])
        );
        return Err(End::Close);
    }
    Ok(())
}

/// Waits for a blocked read's reply, its deadline, a disconnect or a kill; `None` when
/// Pub/Sub deliveries arrived first (the caller writes them and waits again).
///
/// Bytes the client sends meanwhile are kept for after the reply, as Redis does. The
/// socket is read all along, however much arrives: a close can only be seen after
/// every byte sent before it, so a reader that stopped at some size would never
/// learn that the client left, and would hold its waiter, buffers and slot until
/// the key is written. What it keeps is bounded by `client-query-buffer-limit`, as
/// Redis bounds a blocked client's query buffer.
async fn wait_blocked(
    shared: &Shared,
    io: &mut Io,
    session: &Session,
    rbuf: &mut BytesMut,
    waiter: u64,
    rx: &mut oneshot::Receiver<Reply>,
    deadline: Option<std::time::Instant>,
) -> Result<Option<Reply>, End> {
    let sleep = until(deadline);
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            r = &mut *rx => return Ok(Some(r.unwrap_or(Reply::NilArray))),
            _ = &mut sleep => {
                let mut state = shared.state.lock();
                return Ok(Some(match state.blocking.remove(waiter) {
                    Some(w) => w.retry.on_timeout(),
                    // Served between the timer firing and taking the lock.
                    None => rx.try_recv().unwrap_or(Reply::NilArray),
                }));
            }
            _ = deliveries(session.subs.outlet.as_deref()) => return Ok(None),
            r = read_some(io, rbuf) => {
                let closed = match r {
                    // Watermill frees a read stuck in BLOCK 0 by closing the socket:
                    // forget the waiter now, not at the next write to the key.
                    Ok(0) | Err(_) => true,
                    Ok(n) => {
                        shared
                            .stats
                            .net_input_bytes
                            .fetch_add(n as u64, Ordering::Relaxed);
                        let limit = shared.config.read().client_query_buffer_limit;
                        check_query_buffer(session, rbuf, limit).is_err()
                    }
                };
                if closed {
                    shared.state.lock().blocking.remove(waiter);
                    return Err(End::Close);
                }
            }
            _ = session.info.kill_notify.notified() => {
                shared.state.lock().blocking.remove(waiter);
                return Err(End::Close);
            }
        }
    }
}

/// Forgets everything the connection left behind.
fn cleanup(shared: &Shared, session: &mut Session) {
    commands::pubsub::unsubscribe_all(session, shared);
    let mut state = shared.state.lock();
    state.blocking.remove_client(session.id);
    state.ks.unwatch(session.id, &session.watched);
}
