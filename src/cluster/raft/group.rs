//! Groups of several voters (issue #14 step F): what a hosted group exchanges with its
//! peers, and what a follower does with what it receives. Design scale-out.md §3.3–§3.7.
//!
//! **Messages.** The Ready loop (`driver.rs`) hands raft's outgoing messages to a
//! [`MessageSink`]: a Ready's `messages` as soon as it is taken (a leader may send appends
//! while its own fsync runs, raft thesis §10.2.1), its `persisted_messages` (votes, append
//! acknowledgements) only after the turn's group commit made what they promise durable.
//! Incoming messages enter through [`RaftNode::step`]. The network transport (step E)
//! implements the sink; the in-process tests (`tests/raft_group.rs`) implement it with a
//! simulated network. A sink must not call back into the node: it queues.
//!
//! **Follower path.** Entries from the leader are written with the Ready's hard state in
//! one write and made durable by the turn's `fdatasync` before raft is told they are
//! persisted, so an acknowledgement always follows the fsync. A conflicting suffix is cut
//! with the log's truncation (`RaftLog::append`, step C; never at or below the persisted
//! commit index). Committed entries reach the keyspace through the node's applier
//! ([`RaftNode::set_applier`]), the replay path crash recovery uses, with their payloads
//! located at this node's own log positions. raft hands over only entries that are both
//! committed and persisted here, so a follower never applies an uncommitted entry.
//!
//! **Leadership.** A node accepts writes only once it leads *and* an entry of its own term
//! is committed and everything committed is applied here: before that, entries of earlier
//! terms may still be on their way into its keyspace. A leader executes a write before its
//! entry commits (the keyspace runs ahead of the commit index, speculatively). If it loses
//! leadership with such entries outstanding, its keyspace may hold writes the new leader
//! will overwrite (design §3.7): the group **stops** with [`RaftError::Deposed`], every held
//! reply fails (never acknowledged), and the node must be restarted, which rebuilds its
//! keyspace from the log's committed entries (start-up replay applies only those). A
//! deposed leader with nothing outstanding simply becomes a follower. Rebuilding in place
//! (without a restart) is a later step.
//!
//! The server hosts these groups in `server/replication.rs`; snapshots and membership
//! changes are `membership.rs`.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use ::raft::eraftpb::{ConfState, Message};
use ::raft::{RawNode, StateRole, Storage as _};
use parking_lot::Mutex;
use tokio::sync::watch;

use super::node::{config, Applier, Group, RaftError, RaftNode, TracingDrain};
use super::storage::LogStorage;
use crate::storage::raftlog::RaftLog;

/// Where a group's outgoing messages go (the transport, or a test's network). Sending is
/// fire and forget: raft retries what is lost.
pub trait MessageSink: Send + Sync {
    /// Sends `msgs` to their peers (`Message::to`). Must not block on the network or call
    /// back into the node.
    fn send(&self, msgs: Vec<Message>);
}

impl RaftNode {
    /// Starts node `id` of a group of `voters` over `log`, whose entries up to `applied`
    /// are already in the keyspace (start-up replay). A log with no configuration yet is
    /// given `voters`; a log with one keeps it (membership changes made it, and the log,
    /// not the caller's list, says who the members are). Outgoing messages go to `sink`.
    /// The node is a follower until an election makes it leader (ticks,
    /// [`RaftNode::tick`], or [`RaftNode::campaign`]); committed entries it did not
    /// execute go to the applier ([`RaftNode::set_applier`]), which must be set before the
    /// first turn that has any.
    pub fn start_group(
        log: Arc<RaftLog>,
        applied: u64,
        id: u64,
        voters: &[u64],
        sink: Arc<dyn MessageSink>,
    ) -> Result<Arc<RaftNode>, RaftError> {
        if !voters.contains(&id) {
            return Err(RaftError::Stopped(format!(
                "node {id} is not one of the group's voters {voters:?}"
            )));
        }
        Self::start_member(log, applied, id, Some(voters), sink)
    }

    /// [`RaftNode::start_group`] for a node that may be joining: with `bootstrap` `None`
    /// and a log without a configuration, the node starts with none — a node added to a
    /// running group, which waits for the leader to send it a snapshot (the configuration
    /// comes with it). It cannot campaign meanwhile.
    pub fn start_member(
        log: Arc<RaftLog>,
        applied: u64,
        id: u64,
        bootstrap: Option<&[u64]>,
        sink: Arc<dyn MessageSink>,
    ) -> Result<Arc<RaftNode>, RaftError> {
        let state = log.state();
        if state.conf_state.voters.is_empty() && state.conf_state.learners.is_empty() {
            if let Some(voters) = bootstrap {
                let mut voters = voters.to_vec();
                voters.sort_unstable();
                voters.dedup();
                LogStorage::new(log.clone())
                    .set_conf_state(&ConfState {
                        voters,
                        ..Default::default()
                    })
                    .map_err(|e| RaftError::Stopped(e.to_string()))?;
            }
        }
        Self::open(log, applied, id, Some(sink))
    }

    /// Builds the node (the configuration is on the log already).
    pub(super) fn open(
        log: Arc<RaftLog>,
        applied: u64,
        id: u64,
        sink: Option<Arc<dyn MessageSink>>,
    ) -> Result<Arc<RaftNode>, RaftError> {
        // Reads need a leadership confirmation only when another node could lead: a group
        // of several members, or one that may grow (membership changes).
        let cs = log.state().conf_state;
        let replicated = cs.voters.len() > 1 || !cs.learners.is_empty() || sink.is_some();
        let storage = LogStorage::new(log.clone());
        let last = storage
            .last_index()
            .map_err(|e| RaftError::Stopped(e.to_string()))?;
        let logger = slog::Logger::root(slog::Drain::fuse(TracingDrain), slog::o!());
        let raw = RawNode::new(&config(id, applied), storage, &logger)
            .map_err(|e| RaftError::Stopped(e.to_string()))?;
        let (committed, _) = watch::channel(applied);
        Ok(Arc::new(RaftNode {
            log,
            id,
            sink,
            applier: Mutex::new(None),
            group: Mutex::new(Group {
                raw,
                queued_through: last,
                executed_through: applied,
            }),
            driving: Mutex::new(()),
            committed,
            proposed: std::sync::atomic::AtomicU64::new(last),
            executed: std::sync::atomic::AtomicU64::new(applied),
            leader: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            stopped: Mutex::new(None),
            failed: std::sync::atomic::AtomicBool::new(false),
            deposed: std::sync::atomic::AtomicBool::new(false),
            leader_hook: Mutex::new(None),
            leader_told: std::sync::atomic::AtomicU64::new(0),
            reads: super::read::ReadBarrier::new(replicated),
            floor: std::sync::atomic::AtomicU64::new(0),
            floor_sent: std::sync::atomic::AtomicU64::new(0),
            heard: Mutex::new(std::collections::HashMap::new()),
            conf_changes: Mutex::new(Vec::new()),
            snapshot: Mutex::new(None),
        }))
    }

    /// This node's id in its group.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Sets where committed entries this node did not execute go: the keyspace's replay
    /// path ([`crate::persist::replay::apply_entry`]). It runs in a turn of the Ready loop,
    /// without the group's lock, and may take the keyspace lock.
    pub fn set_applier(&self, applier: Box<Applier>) {
        *self.applier.lock() = Some(applier);
    }

    /// Hands raft one message from a peer. A message raft refuses (a local kind, or a
    /// response from a node outside the group) is dropped: the network is not trusted.
    /// The caller then takes a turn ([`RaftNode::round`]) when convenient.
    pub fn step(&self, msg: Message) -> Result<(), RaftError> {
        self.check()?;
        let mut g = self.group.lock();
        // Last contact, for INFO: only members are tracked, so the map stays bounded.
        if msg.from != self.id && g.raw.raft.prs().get(msg.from).is_some() {
            self.heard
                .lock()
                .insert(msg.from, std::time::Instant::now());
        }
        match g.raw.step(msg) {
            Ok(()) => {
                // A leader's commit index moves when a quorum's acknowledgements come in
                // (each sent after that node's fsync): the replies waiting for it leave now,
                // not after the next turn of the Ready loop (which may be behind an fsync).
                if g.raw.raft.state == StateRole::Leader {
                    let commit = g.raw.raft.raft_log.committed;
                    if commit > *self.committed.borrow() {
                        self.committed.send_replace(commit);
                    }
                }
            }
            Err(::raft::Error::StepLocalMsg | ::raft::Error::StepPeerNotFound) => {}
            Err(e) => {
                drop(g);
                let e = RaftError::Stopped(e.to_string());
                self.stop(e.to_string());
                return Err(e);
            }
        }
        self.check_leadership(&g);
        Ok(())
    }

    /// Advances raft's clock one tick ([`super::node::TICK_MS`] in the server). Returns
    /// whether a turn has work.
    pub fn tick(&self) -> bool {
        if self.failed.load(Ordering::Acquire) {
            return false;
        }
        let mut g = self.group.lock();
        g.raw.tick();
        self.check_leadership(&g);
        g.raw.has_ready()
    }

    /// Starts an election now (tests; `CLUSTER FAILOVER` later).
    pub fn campaign(&self) -> Result<(), RaftError> {
        self.check()?;
        let mut g = self.group.lock();
        g.raw
            .campaign()
            .map_err(|e| RaftError::Stopped(e.to_string()))
    }

    /// `CLUSTER FAILOVER`: asks the leader to hand leadership to this node (raft's leader
    /// transfer: the leader brings it up to date, then tells it to campaign at once); with
    /// `force`, starts an election now without the leader (it wins only with a log as up to
    /// date as a majority's). Sent by the next turn of the Ready loop.
    pub fn failover(&self, force: bool) -> Result<(), RaftError> {
        self.check()?;
        let mut g = self.group.lock();
        if force {
            g.raw
                .campaign()
                .map_err(|e| RaftError::Stopped(e.to_string()))
        } else {
            let me = self.id;
            g.raw.transfer_leader(me);
            Ok(())
        }
    }

    /// The leader this node knows of (0: none).
    pub fn leader_id(&self) -> u64 {
        self.group.lock().raw.raft.leader_id
    }

    /// After raft's role may have changed: a node that no longer leads takes no more
    /// writes, and one whose keyspace ran ahead of the commit index stops (module docs).
    pub(super) fn check_leadership(&self, g: &Group) {
        if g.raw.raft.state == StateRole::Leader {
            return;
        }
        let committed = g.raw.raft.raft_log.committed;
        if g.executed_through <= committed {
            self.leader.store(false, Ordering::Release);
        } else {
            self.deposed.store(true, Ordering::Release);
            self.stop(
                RaftError::Deposed {
                    executed: g.executed_through,
                    committed,
                }
                .to_string(),
            );
        }
    }

    /// Whether this node may take writes: it leads and is not handing leadership over (raft
    /// drops proposals meanwhile), an entry of its term is committed, and everything
    /// committed is in its keyspace.
    pub(super) fn may_lead(g: &Group) -> bool {
        let r = &g.raw.raft;
        r.state == StateRole::Leader
            && r.lead_transferee.is_none()
            && r.commit_to_current_term()
            && g.executed_through >= r.raft_log.committed
    }
}
