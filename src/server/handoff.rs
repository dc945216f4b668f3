//! Replies handed to the committer: a group commit writes the replies it makes durable.
//!
//! A connection whose batch of replies waits for its records to be durable does not wait
//! for them itself. It puts the replies in its [`Outbox`], registers the outbox here, and
//! goes back to reading its socket. The first connection to register while no commit is
//! under way becomes the committer: it yields once (so the connections ready on its
//! thread append and register too), commits the log — one `write` and, under `always`,
//! one `fdatasync` for all of them — and then writes every registered reply that commit
//! made durable to its socket, as Redis's `handleClientsWithPendingWrites` does after its
//! one AOF fsync per event-loop turn. Connections registering meanwhile just leave their
//! outbox: the committer commits again for them before it stops.
//!
//! So a group commit costs one task's work instead of a wake-up of every task that waited
//! on it (issue #10: at one request per round trip, those wake-ups were most of the CPU
//! Rill spent beyond Redis). The rules that keep it exact:
//! - A reply leaves only after the commit that made its records durable; a poisoned log
//!   turns every reply that acknowledges a write into the error, as in the connection.
//! - A connection's replies stay in order: before it writes anything else it waits until
//!   its outbox is delivered or takes back what the committer could not write (a full
//!   socket buffer), and then writes that first, under its own output limits.
//! - One commit leader at a time, decided under the registry's lock, so a registered
//!   outbox always has a committer that will see it. A leader that has led
//!   [`ROUNDS_INLINE`] rounds hands the rest to a task of its own, so the client it serves
//!   is not starved by a steady stream of others' commits.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::{Buf, BytesMut};
use parking_lot::Mutex;
use tokio::net::TcpStream;
use tokio::sync::Notify;

use crate::core::Shared;
use crate::protocol::Reply;

/// Commit rounds a connection leads before a task of its own takes over.
const ROUNDS_INLINE: usize = 4;

/// Where a connection's handed-off replies are.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Phase {
    /// Nothing handed off: the connection writes its own replies.
    Idle,
    /// Waiting for the commit that makes LSN `lsn` durable.
    Pending,
    /// The committer wrote what the socket took; the rest (or the error replies of a
    /// poisoned log) is for the connection to write, before anything else.
    Returned,
}

struct OutState {
    phase: Phase,
    /// The replies, and the byte ranges of those that acknowledge logged writes.
    buf: BytesMut,
    acks: Vec<(usize, usize)>,
    lsn: u64,
    /// The connection waits for this outbox (wake it when it settles).
    waited: bool,
}

/// One connection's handed-off replies.
pub struct Outbox {
    socket: Arc<TcpStream>,
    state: Mutex<OutState>,
    settled: Notify,
}

impl Outbox {
    pub fn new(socket: Arc<TcpStream>) -> Arc<Outbox> {
        Arc::new(Outbox {
            socket,
            state: Mutex::new(OutState {
                phase: Phase::Idle,
                buf: BytesMut::new(),
                acks: Vec::new(),
                lsn: 0,
                waited: false,
            }),
            settled: Notify::new(),
        })
    }

    /// Completes when the outbox settles while the connection waits for it, or when the
    /// committer gives replies back.
    pub fn settled(&self) -> tokio::sync::futures::Notified<'_> {
        self.settled.notified()
    }

    pub fn phase(&self) -> Phase {
        self.state.lock().phase
    }

    /// Waits until nothing is pending; returns what the committer gave back (to be
    /// written before anything buffered after it), empty when it delivered everything.
    pub async fn settle(&self) -> BytesMut {
        loop {
            let notified = self.settled.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut st = self.state.lock();
                match st.phase {
                    Phase::Idle => return BytesMut::new(),
                    Phase::Returned => {
                        st.phase = Phase::Idle;
                        st.waited = false;
                        st.acks.clear();
                        return std::mem::take(&mut st.buf);
                    }
                    Phase::Pending => st.waited = true,
                }
            }
            notified.await;
        }
    }

    /// Hands `wbuf`'s replies (acknowledging writes at `acks`) over until `lsn` is
    /// durable. The outbox must be idle.
    fn hand(&self, wbuf: &mut BytesMut, acks: &mut Vec<(usize, usize)>, lsn: u64) {
        let mut st = self.state.lock();
        debug_assert_eq!(st.phase, Phase::Idle);
        // The connection keeps the outbox's old allocation, so neither side allocates
        // per batch once both buffers have grown.
        std::mem::swap(&mut st.buf, wbuf);
        wbuf.clear();
        std::mem::swap(&mut st.acks, acks);
        acks.clear();
        st.lsn = lsn;
        st.phase = Phase::Pending;
    }

    /// Delivers the replies if `durable` covers them (or the log is poisoned); false
    /// while they must wait for a later commit.
    fn deliver(&self, shared: &Shared, durable: u64, poison: Option<&[u8]>) -> bool {
        let mut st = self.state.lock();
        if st.phase != Phase::Pending {
            return true;
        }
        if st.lsn > durable && poison.is_none() {
            return false;
        }
        if let Some(err) = poison {
            if !st.acks.is_empty() {
                let out = replace_acks(&st.buf, &st.acks, err);
                st.buf = out;
            }
        }
        st.acks.clear();
        let mut written = 0;
        let mut closed = false;
        while written < st.buf.len() {
            match self.socket.try_write(&st.buf[written..]) {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(n) => written += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    closed = true;
                    break;
                }
            }
        }
        shared
            .stats
            .net_output_bytes
            .fetch_add(written as u64, Ordering::Relaxed);
        st.buf.advance(written);
        if st.buf.is_empty() || closed {
            // A closed socket: the connection learns it from its next read.
            st.buf.clear();
            st.phase = Phase::Idle;
        } else {
            st.phase = Phase::Returned;
        }
        let wake = st.waited || st.phase == Phase::Returned;
        st.waited = false;
        drop(st);
        if wake {
            self.settled.notify_one();
        }
        true
    }
}

/// The reply that stands in for an acknowledgement the log could not make durable (the
/// same bytes in RESP2 and RESP3: a simple error).
pub fn poison_reply(e: crate::core::CommandError) -> BytesMut {
    Reply::error(e.to_string()).to_bytes(2)
}

/// `buf` with each range in `acks` replaced by `err`.
pub fn replace_acks(buf: &[u8], acks: &[(usize, usize)], err: &[u8]) -> BytesMut {
    let mut out = BytesMut::with_capacity(buf.len());
    let mut pos = 0;
    for &(s, e) in acks {
        out.extend_from_slice(&buf[pos..s]);
        out.extend_from_slice(err);
        pos = e;
    }
    out.extend_from_slice(&buf[pos..]);
    out
}

/// Gives up commit leadership if dropped before it is forgotten (see [`Handoff::hand`]).
struct Abdication<'a>(&'a Handoff);

impl Drop for Abdication<'_> {
    fn drop(&mut self) {
        self.0.registry.lock().leading = false;
    }
}

struct Registry {
    pending: Vec<Arc<Outbox>>,
    /// A commit leader is at work: it will see everything registered.
    leading: bool,
}

/// The outboxes waiting for a commit, and who leads the next one.
pub struct Handoff {
    registry: Mutex<Registry>,
}

impl Default for Handoff {
    fn default() -> Self {
        Handoff {
            registry: Mutex::new(Registry {
                pending: Vec::new(),
                leading: false,
            }),
        }
    }
}

impl Handoff {
    /// Hands the replies in `wbuf` to the committer of LSN `lsn`, leading the commit if
    /// no one is. Returns once they are handed over (or, when this task leads, once its
    /// rounds are done).
    pub async fn hand(
        self: &Arc<Self>,
        shared: &Arc<Shared>,
        outbox: &Arc<Outbox>,
        wbuf: &mut BytesMut,
        acks: &mut Vec<(usize, usize)>,
        lsn: u64,
    ) {
        outbox.hand(wbuf, acks, lsn);
        {
            let mut reg = self.registry.lock();
            reg.pending.push(outbox.clone());
            if reg.leading {
                return;
            }
            reg.leading = true;
        }
        // Let the connections ready on this thread execute and register first, so this
        // commit covers them too. Leadership is held across this await: should the task
        // be dropped here (runtime shutdown), the guard gives it up, so a later
        // registrant leads instead of waiting for a leader that is gone.
        let guard = Abdication(self);
        tokio::task::yield_now().await;
        std::mem::forget(guard);
        if self.lead(shared, ROUNDS_INLINE) {
            let me = self.clone();
            let shared = shared.clone();
            tokio::spawn(async move {
                loop {
                    // In a replicated group the commit index moves with the peers'
                    // acknowledgements, not with this node's rounds: wait for it to move
                    // rather than spin on rounds that find nothing to do.
                    let replicated = match (shared.log.get(), shared.raft.get()) {
                        (None, Some(raft)) if raft.has_peers() => Some(raft.committed()),
                        _ => None,
                    };
                    match (replicated, shared.raft.get()) {
                        (Some(from), Some(raft)) => raft.commit_moved(from).await,
                        _ => tokio::task::yield_now().await,
                    }
                    if !me.lead(&shared, ROUNDS_INLINE) {
                        break;
                    }
                }
            });
        }
    }

    /// Leads up to `rounds` commits, delivering what each makes durable. Returns true
    /// if outboxes are still pending (the caller goes on leading), false once leadership
    /// is given up with nothing pending.
    fn lead(&self, shared: &Shared, rounds: usize) -> bool {
        // Outboxes are handed over only when there is a log (the connection checks), and
        // the log, once set, stays: with none, nothing can be pending.
        let Some(log) = shared.log.get() else {
            if let Some(raft) = shared.raft.get() {
                return self.lead_raft(shared, raft, rounds);
            }
            return self.deliver_all(shared, u64::MAX, None);
        };
        for _ in 0..rounds {
            let (durable, poison) = match log.commit() {
                Ok(d) => (d, None),
                Err(e) => (log.durable_lsn(), Some(poison_reply(e.into()))),
            };
            if !self.deliver_all(shared, durable, poison.as_deref()) {
                return false;
            }
        }
        true
    }

    /// [`Handoff::lead`] in Raft mode: each round is a turn of the group's Ready loop (its
    /// group commit included), and replies leave once their index is committed.
    fn lead_raft(
        &self,
        shared: &Shared,
        raft: &crate::cluster::raft::RaftNode,
        rounds: usize,
    ) -> bool {
        for _ in 0..rounds {
            let (committed, poison) = match raft.commit() {
                Ok(c) => (c, None),
                Err(e) => (raft.committed(), Some(poison_reply(e.into()))),
            };
            if !self.deliver_all(shared, committed, poison.as_deref()) {
                return false;
            }
        }
        true
    }

    /// Delivers every pending outbox `durable` covers. Returns whether some remain; when
    /// none do, leadership ends under the same lock, so a connection registering after
    /// this becomes the next leader.
    fn deliver_all(&self, shared: &Shared, durable: u64, poison: Option<&[u8]>) -> bool {
        let (ready, still) = {
            let mut reg = self.registry.lock();
            let all = std::mem::take(&mut reg.pending);
            let mut ready = Vec::with_capacity(all.len());
            for ob in all {
                if poison.is_some() || ob.state.lock().lsn <= durable {
                    ready.push(ob);
                } else {
                    reg.pending.push(ob);
                }
            }
            let still = !reg.pending.is_empty();
            if !still {
                reg.leading = false;
            }
            (ready, still)
        };
        for ob in &ready {
            ob.deliver(shared, durable, poison);
        }
        still
    }
}
