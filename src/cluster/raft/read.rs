//! Reads that stay linearizable on a replicated shard's leader (design scale-out.md §3.5
//! (c), step H): a read's reply waits until the node has confirmed it still leads, with a
//! confirmation that began after the read executed — raft-rs's ReadIndex
//! (`ReadOnlyOption::Safe`: a heartbeat round answered by a quorum). Had another leader
//! been elected before the confirmation began, a quorum would be in its newer term and
//! the heartbeats would fail: this node steps down and the read is not answered. So a
//! read never returns a state older than a write acknowledged before it began.
//!
//! **Batched.** One ReadIndex covers every read that executed before it was issued: a read
//! takes a sequence number; if no ReadIndex was issued since it took it, it issues one whose
//! context is the newest sequence number, and every read up to that number is released by
//! its ReadState. Under load a heartbeat round serves many reads.
//!
//! A group of one voter (and a follower serving READONLY reads, which Redis allows to be
//! stale) skips the barrier. Writes need none: their replies wait for their own entry's
//! commit, which a deposed leader never gets.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ::raft::StateRole;
use tokio::sync::watch;

use super::node::{RaftError, RaftNode, TICK_MS};

/// How long a read waits for its confirmation before it is failed: two election timeouts
/// (by then this node has either heard from a quorum or stepped down).
const READ_TIMEOUT: Duration = Duration::from_millis(20 * TICK_MS);

/// The reads of one node waiting for leadership confirmations.
pub(crate) struct ReadBarrier {
    /// Whether reads wait at all (another node could lead).
    replicated: std::sync::atomic::AtomicBool,
    /// The last sequence number a read took.
    taken: AtomicU64,
    /// The newest sequence number a ReadIndex was issued for.
    issued: AtomicU64,
    /// The newest sequence number a ReadState confirmed.
    confirmed: watch::Sender<u64>,
}

impl ReadBarrier {
    pub(crate) fn new(replicated: bool) -> ReadBarrier {
        ReadBarrier {
            replicated: std::sync::atomic::AtomicBool::new(replicated),
            taken: AtomicU64::new(0),
            issued: AtomicU64::new(0),
            confirmed: watch::channel(0).0,
        }
    }

    /// Reads wait from now on when the group has members besides this node.
    pub(crate) fn set_replicated(&self, replicated: bool) {
        if replicated {
            self.replicated.store(true, Ordering::Release);
        }
    }

    /// A ReadState came back for sequence number `seq` (its request context).
    pub(crate) fn confirm(&self, ctx: &[u8]) {
        let Ok(bytes) = <[u8; 8]>::try_from(ctx) else {
            return;
        };
        let seq = u64::from_le_bytes(bytes);
        self.confirmed.send_if_modified(|c| {
            let newer = seq > *c;
            if newer {
                *c = seq;
            }
            newer
        });
    }
}

impl RaftNode {
    /// Whether the group has members besides this node (its commit index then moves with
    /// their acknowledgements).
    pub fn has_peers(&self) -> bool {
        self.reads.replicated.load(Ordering::Acquire)
    }

    /// Waits until the commit index is past `from`, or a tick at most.
    pub async fn commit_moved(&self, from: u64) {
        let mut rx = self.committed.subscribe();
        if *rx.borrow_and_update() > from {
            return;
        }
        let _ = tokio::time::timeout(Duration::from_millis(TICK_MS), rx.changed()).await;
    }

    /// Whether a read executed here must wait for [`RaftNode::confirm_leadership`]: this
    /// node leads a group where another could.
    pub fn reads_need_confirmation(&self) -> bool {
        self.reads.replicated.load(Ordering::Acquire) && self.is_leader()
    }

    /// Waits until this node has confirmed, with a quorum, that it still leads, in a round
    /// that began after the call (module docs). Fails when it does not lead (any more),
    /// when its group stopped, or after [`READ_TIMEOUT`].
    pub async fn confirm_leadership(&self) -> Result<(), RaftError> {
        if !self.reads.replicated.load(Ordering::Acquire) {
            return Ok(());
        }
        self.check()?;
        let seq = self.reads.taken.fetch_add(1, Ordering::AcqRel) + 1;
        let mut rx = self.reads.confirmed.subscribe();
        if self.reads.issued.load(Ordering::Acquire) < seq {
            let newest = self.reads.taken.load(Ordering::Acquire);
            {
                let mut g = self.group.lock();
                if g.raw.raft.state != StateRole::Leader {
                    return Err(RaftError::NotLeader);
                }
                g.raw.read_index(newest.to_le_bytes().to_vec());
            }
            self.reads.issued.fetch_max(newest, Ordering::AcqRel);
            // Send the heartbeats now if no turn is under way (one that is, or the driver's
            // next, sends them otherwise).
            if let Some(_turn) = self.driving.try_lock() {
                self.round_locked(None)?;
            }
        }
        let wait = async {
            loop {
                if *rx.borrow_and_update() >= seq {
                    return Ok(());
                }
                self.check()?;
                if !self.is_leader() {
                    return Err(RaftError::NotLeader);
                }
                // A tick's wait at most: a stopped node or a lost leadership is noticed.
                let _ = tokio::time::timeout(Duration::from_millis(TICK_MS), rx.changed()).await;
            }
        };
        match tokio::time::timeout(READ_TIMEOUT, wait).await {
            Ok(r) => r,
            Err(_) => Err(RaftError::NotLeader),
        }
    }
}
