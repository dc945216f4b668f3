//! One hosted Raft group: raft-rs's `RawNode` over the Rill log (`storage.rs`), behind its
//! own mutex, and what the rest of the server sees of it — propose a critical section's
//! ops, the `committed` watch replies wait on, leadership. Design scale-out.md §3.1, §3.4.
//!
//! **Why raft-rs.** It is TiKV's consensus core: a Raft state machine with no I/O of its own
//! (design §2.1), so the log it persists to is Rill's segmented log, written with the group
//! commit the single-node server already has, and no second WAL or runtime comes with it.
//!
//! **Lock order: keyspace → raft, never the reverse.** A leader proposes with the keyspace
//! lock held (the ops were just produced there, so log order is execution order) and takes
//! the group's lock inside it. The Ready loop (`driver.rs`) takes the group's lock on its
//! own and never the keyspace lock while holding it: committed entries that still need
//! applying are taken out first and applied after the group's lock is released.
//!
//! **Write path (leader).** Under the keyspace lock, after a command's ops are produced:
//! [`RaftNode::propose`] hands raft the encoded ops, and the entry it makes (term, index) is
//! queued at once to the log as a `RaftEntry` record ([`RaftLog::queue`]), so its payload
//! positions are known before the lock is released (payload handles point into it, as into
//! an `Ops` record) and the Ready loop does not write it again. The reply's observed index
//! is the entry's Raft index; it is released once `committed` reaches it. A proposal raft
//! drops is a leadership loss: the caller's state already holds the ops, so the node stops
//! ([`RaftError::Dropped`]) and acknowledges nothing more.
//!
//! **Single voter (step D).** The server's group has one voter, this node, id 1
//! ([`RaftNode::start`]). It elects itself at start-up, and commit equals its own fsync; it
//! has no message sink, and a Ready asking to send anything stops it with an error.
//! Groups of several voters (step F, `group.rs`) are started with
//! [`RaftNode::start_group`] and a [`MessageSink`](super::group::MessageSink).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use ::raft::eraftpb::ConfState;
use ::raft::{Config, RawNode, StateRole};
use parking_lot::Mutex;
use tokio::sync::watch;

use super::group::MessageSink;
use super::storage::LogStorage;
use crate::storage::log::RecordPos;
use crate::storage::raft_record::{self, EntryKind, RaftEntryRecord};
use crate::storage::raftlog::{RaftLog, RaftLogError};
use crate::storage::StorageError;

/// This node's id in its group while groups have one voter (step J derives it from the
/// node id).
pub const SINGLE_VOTER_ID: u64 = 1;

/// Milliseconds per raft tick; heartbeat 1 tick, election 10 (design §3.7).
pub const TICK_MS: u64 = 100;
/// raft's election timeout, in ticks (check-quorum's window too).
pub const ELECTION_TICKS: usize = 10;
/// The election timeout in milliseconds.
pub const ELECTION_TIMEOUT_MS: u64 = ELECTION_TICKS as u64 * TICK_MS;

/// Why the group refused a proposal or failed a waiter.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum RaftError {
    /// This node is not the group's leader: it executes no write.
    #[error("this node is not the Raft leader of its shard")]
    NotLeader,
    /// raft dropped a proposal whose ops were already executed: leadership was lost
    /// meanwhile. The node stops acknowledging; the write's outcome is unknown.
    #[error("the Raft group dropped a proposal (leadership lost); the write's outcome is unknown and this node stopped acknowledging writes until it restarts")]
    Dropped,
    /// This leader lost leadership while its keyspace held writes not yet committed
    /// (executed ahead of the commit index): their outcome is unknown, the held replies
    /// fail, and the keyspace may differ from the group's until the node restarts.
    #[error("this node lost Raft leadership with writes up to index {executed} executed but only {committed} committed; their outcome is unknown and the node stopped: restart it to rebuild its state from the log")]
    Deposed { executed: u64, committed: u64 },
    /// The log failed (a failed write or fsync poisons it): nothing more is acknowledged.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A request the group refused without stopping (a membership change while another
    /// is in progress).
    #[error("{0}")]
    Busy(String),
    /// raft asked this node to install a snapshot (it needs entries the leader purged):
    /// the node stopped, and its host fetches the snapshot and restarts from it.
    #[error("this node stopped to install a snapshot of Raft index {0}")]
    InstallSnapshot(u64),
    /// raft-rs reported an error, or asked for something this step does not do; the node
    /// stopped.
    #[error("the Raft group stopped: {0}")]
    Stopped(String),
}

impl From<RaftLogError> for RaftError {
    fn from(e: RaftLogError) -> Self {
        match e {
            RaftLogError::Storage(e) => RaftError::Storage(e),
            e => RaftError::Stopped(e.to_string()),
        }
    }
}

/// A proposal raft accepted: its Raft index, and where its ops start in the log.
#[derive(Debug, Clone, Copy)]
pub struct Proposed {
    pub index: u64,
    pub data_at: RecordPos,
}

/// Where the group is (INFO persistence's `raft_*` fields).
#[derive(Debug, Clone, Copy)]
pub struct RaftStatus {
    pub leader: bool,
    /// The raft id of the leader this node knows of (0: none).
    pub leader_id: u64,
    pub term: u64,
    /// The highest index known committed (replies up to it are released).
    pub commit: u64,
    /// The highest index raft was told is applied.
    pub applied: u64,
    /// The last index in the log, committed or not.
    pub last_index: u64,
    /// The highest index in this node's keyspace: executed here (a leader's, possibly past
    /// `commit`) or applied from the log (never past `commit` on a follower).
    pub executed: u64,
}

/// What the group's lock protects.
pub(super) struct Group {
    pub(super) raw: RawNode<LogStorage>,
    /// Entries up to this index are in the log's queue already (queued by the proposal
    /// that made them): the Ready loop skips them.
    pub(super) queued_through: u64,
    /// Entries up to this index are in the keyspace (executed here under the keyspace
    /// lock, or replayed at start-up): the Ready loop applies only those after it.
    pub(super) executed_through: u64,
}

/// Applies one committed entry this node did not execute, whose data starts at the given
/// position (the replay path): a follower's apply, and start-up's uncommitted tail.
pub type Applier = dyn FnMut(&RaftEntryRecord, RecordPos) -> Result<(), String> + Send;

/// One hosted Raft group.
pub struct RaftNode {
    pub(super) log: Arc<RaftLog>,
    /// This node's id in the group.
    pub(super) id: u64,
    /// Where outgoing messages go; none for the single voter.
    pub(super) sink: Option<Arc<dyn MessageSink>>,
    /// Where committed entries this node did not execute go, when a turn is not given an
    /// applier of its own (taken inside a turn, after `driving`).
    pub(super) applier: Mutex<Option<Box<Applier>>>,
    /// The raft lock (after the keyspace lock, never before it).
    pub(super) group: Mutex<Group>,
    /// One Ready loop turn at a time (taken before `group`, never while holding it).
    pub(super) driving: Mutex<()>,
    /// The highest index known committed: replies wait on it (the `durable` watch of the
    /// single-node log, in Raft mode).
    pub(super) committed: watch::Sender<u64>,
    /// The last index proposed here.
    pub(super) proposed: AtomicU64,
    /// The highest index in this node's keyspace (`Group::executed_through`, readable
    /// without the group's lock): what a reply that observed the current state waits for.
    pub(super) executed: AtomicU64,
    /// Whether this node leads its group and takes writes, read without the group's lock
    /// before executing (shared with the keyspace as its expiry gate: only the leader
    /// expires keys).
    pub(super) leader: Arc<AtomicBool>,
    /// Why the node stopped, once it has (its waiters fail with it).
    pub(super) stopped: Mutex<Option<String>>,
    pub(super) failed: AtomicBool,
    /// The node stopped because it lost leadership with writes executed past the commit
    /// index ([`RaftError::Deposed`]): its keyspace must be rebuilt from the log.
    pub(super) deposed: AtomicBool,
    /// Told the leader's id each time a turn sees it change, before this node starts
    /// taking writes as leader ([`RaftNode::on_leader_change`]).
    pub(super) leader_hook: Mutex<Option<Box<LeaderHook>>>,
    /// The leader the hook was last told of.
    pub(super) leader_told: AtomicU64,
    /// Reads waiting for a leadership confirmation (`read.rs`).
    pub(super) reads: super::read::ReadBarrier,
    /// The purge floor: an index every voter's log holds committed (see
    /// [`RaftNode::purge_floor`]); only ever raised.
    pub(super) floor: AtomicU64,
    /// The last floor this node, as leader, sent in an entry's context.
    pub(super) floor_sent: AtomicU64,
    /// When a message from each peer (raft id) was last stepped in: INFO's last contact.
    pub(super) heard: Mutex<std::collections::HashMap<u64, std::time::Instant>>,
    /// Membership changes the Ready loop applied, for the host to act on (links, map).
    pub(super) conf_changes: Mutex<Vec<super::membership::MembershipChange>>,
    /// A snapshot raft asked this node to install; the node stopped for it.
    pub(super) snapshot: Mutex<Option<super::membership::PendingSnapshot>>,
}

/// An entry context that carries the purge floor: this tag, then the index (u64 LE).
const FLOOR_TAG: u8 = 1;

/// How far the floor must have moved before a leader sends it again (in entries): one
/// 9-byte context per this many entries at most.
const FLOOR_STEP: u64 = 256;

/// The purge floor an entry's context carries, if it carries one.
pub(super) fn floor_in(context: &[u8]) -> Option<u64> {
    match context {
        [FLOOR_TAG, rest @ ..] => Some(u64::from_le_bytes(rest.try_into().ok()?)),
        _ => None,
    }
}

/// A leader's view of one other voter (INFO replication), from raft's progress tracker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaProgress {
    /// The replica's raft id.
    pub id: u64,
    /// The highest index known to be in its log (`Progress::matched`).
    pub matched: u64,
    /// The next index the leader will send it.
    pub next: u64,
    /// raft's replication state for it: `probe`, `replicate` or `snapshot`.
    pub state: &'static str,
    /// Whether it was heard from within the last election timeout.
    pub active: bool,
    /// Milliseconds since a message from it was last stepped in (`None`: never, since start).
    pub last_contact_ms: Option<u64>,
}

/// See [`RaftNode::on_leader_change`].
pub type LeaderHook = dyn Fn(u64) + Send + Sync;

/// raft-rs logs through slog; Rill logs through tracing.
pub(super) struct TracingDrain;

impl slog::Drain for TracingDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, r: &slog::Record<'_>, _: &slog::OwnedKVList) -> Result<(), slog::Never> {
        match r.level() {
            slog::Level::Critical | slog::Level::Error => tracing::error!("raft: {}", r.msg()),
            slog::Level::Warning => tracing::warn!("raft: {}", r.msg()),
            slog::Level::Info => tracing::info!("raft: {}", r.msg()),
            _ => tracing::debug!("raft: {}", r.msg()),
        }
        Ok(())
    }
}

/// The group's raft configuration: pre-vote and check-quorum on (design §3.7), `applied`
/// where start-up replay stopped.
pub(super) fn config(id: u64, applied: u64) -> Config {
    Config {
        id,
        election_tick: ELECTION_TICKS,
        heartbeat_tick: 1,
        applied,
        pre_vote: true,
        check_quorum: true,
        max_size_per_msg: 1 << 20,
        max_inflight_msgs: 256,
        ..Default::default()
    }
}

impl RaftNode {
    /// Starts the group over `log`, whose entries up to `applied` are already in the
    /// keyspace (start-up replay applies entries only once a hard state shows them
    /// committed). A log with no configuration yet is bootstrapped as a group of one voter,
    /// this node. The node is not leader until [`RaftNode::recover`] has run.
    pub fn start(log: Arc<RaftLog>, applied: u64) -> Result<Arc<RaftNode>, RaftError> {
        let state = log.state();
        if state.conf_state.voters.is_empty() && state.conf_state.learners.is_empty() {
            let storage = LogStorage::new(log.clone());
            storage
                .set_conf_state(&ConfState {
                    voters: vec![SINGLE_VOTER_ID],
                    ..Default::default()
                })
                .map_err(|e| RaftError::Stopped(e.to_string()))?;
        } else if state.conf_state.voters != [SINGLE_VOTER_ID] {
            return Err(RaftError::Stopped(format!(
                "the log's Raft configuration has voters {:?}: groups of more than this node are not supported yet",
                state.conf_state.voters
            )));
        }
        Self::open(log, applied, SINGLE_VOTER_ID, None)
    }

    /// The Raft log underneath.
    pub fn raft_log(&self) -> &Arc<RaftLog> {
        &self.log
    }

    /// The flag that is true while this node leads and takes writes: the keyspace's expiry
    /// gate on a replica ([`crate::engine::keyspace::Keyspace::set_expiry_gate`]).
    pub fn leader_flag(&self) -> Arc<AtomicBool> {
        self.leader.clone()
    }

    /// Whether this node leads its group (checked before a write executes).
    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Acquire) && !self.failed.load(Ordering::Acquire)
    }

    /// Whether a command may run: nothing once the group stopped, and a write only on the
    /// leader (checked before it executes; [`RaftNode::propose`] checks again).
    pub fn admits(&self, write: bool) -> Result<(), RaftError> {
        self.check()?;
        if write && !self.leader.load(Ordering::Acquire) {
            return Err(RaftError::NotLeader);
        }
        Ok(())
    }

    /// Whether the node stopped with a keyspace ahead of its log: a deposed leader whose
    /// writes ran past the commit index ([`RaftError::Deposed`]), or a proposal refused after
    /// its ops ran. What it holds must be rebuilt from the log's committed entries (a restart
    /// does that) before it can serve again.
    pub fn is_deposed(&self) -> bool {
        self.deposed.load(Ordering::Acquire)
    }

    /// Sets what is told the group's leader (its raft id) whenever a turn of the Ready loop
    /// sees it change — before this node, newly elected, takes its first write, so whoever
    /// routes requests (the cluster map) already names it. Called with the group's lock
    /// held: it must not call back into the node.
    pub fn on_leader_change(&self, hook: Box<LeaderHook>) {
        *self.leader_hook.lock() = Some(hook);
    }

    /// Tells the hook of a new leader (`g` held).
    pub(super) fn tell_leader(&self, g: &Group) {
        let id = g.raw.raft.leader_id;
        if id != 0 && self.leader_told.swap(id, Ordering::AcqRel) != id {
            if let Some(hook) = self.leader_hook.lock().as_ref() {
                hook(id);
            }
        }
    }

    /// The highest committed index.
    pub fn committed(&self) -> u64 {
        *self.committed.borrow()
    }

    /// The last index proposed here.
    pub fn proposed(&self) -> u64 {
        self.proposed.load(Ordering::Acquire)
    }

    /// The highest index in this node's keyspace: what a reply that observed the current
    /// state waits for to be committed. On the leader, its last proposal; on a follower,
    /// what it applied (committed already); on a leader deposed with writes outstanding,
    /// past the commit index, so a read of that state waits until the node stops and
    /// fails it. (Not [`RaftNode::proposed`]: a follower's log may hold entries past the
    /// commit index that a new leader cuts off; a read waiting for them would wait on.)
    pub fn executed(&self) -> u64 {
        self.executed.load(Ordering::Acquire)
    }

    /// Where the group is, for INFO.
    pub fn status(&self) -> RaftStatus {
        let g = self.group.lock();
        RaftStatus {
            leader: self.is_leader(),
            leader_id: g.raw.raft.leader_id,
            term: g.raw.raft.term,
            commit: self.committed(),
            applied: g.raw.raft.raft_log.applied,
            last_index: g.raw.raft.raft_log.last_index(),
            executed: g.executed_through,
        }
    }

    /// On the leader, every other voter's progress (empty on a follower): INFO's per-replica
    /// lag. The matched index is raft's, so a replica counts what it acknowledged (after its
    /// fsync), not what was sent to it.
    pub fn replicas(&self) -> Vec<ReplicaProgress> {
        let g = self.group.lock();
        if g.raw.raft.state != StateRole::Leader {
            return Vec::new();
        }
        let heard = self.heard.lock();
        let now = std::time::Instant::now();
        let mut out: Vec<ReplicaProgress> = g
            .raw
            .raft
            .prs()
            .iter()
            .filter(|(id, _)| **id != self.id)
            .map(|(id, pr)| {
                let last_contact_ms = heard
                    .get(id)
                    .map(|t| u64::try_from(now.duration_since(*t).as_millis()).unwrap_or(u64::MAX));
                ReplicaProgress {
                    id: *id,
                    matched: pr.matched,
                    next: pr.next_idx,
                    state: match pr.state {
                        ::raft::ProgressState::Probe => "probe",
                        ::raft::ProgressState::Replicate => "replicate",
                        ::raft::ProgressState::Snapshot => "snapshot",
                    },
                    // check-quorum clears `recent_active` for every peer at each election
                    // timeout and sets it again on the next message, so right after the check a
                    // healthy peer reads inactive for up to a heartbeat round trip; a message
                    // stepped in within the election timeout is the same window without the gap.
                    active: pr.recent_active
                        || last_contact_ms.is_some_and(|ms| ms < ELECTION_TIMEOUT_MS),
                    last_contact_ms,
                }
            })
            .collect();
        out.sort_by_key(|r| r.id);
        out
    }

    /// Milliseconds since a message from `peer` (raft id) was last stepped in; `None` if
    /// none came since this node started.
    pub fn last_contact_ms(&self, peer: u64) -> Option<u64> {
        self.heard
            .lock()
            .get(&peer)
            .map(|t| u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    /// Proposes one critical section's encoded ops; call with the keyspace lock held, after
    /// the ops were executed. The entry is queued to the log before this returns.
    pub fn propose(&self, data: Vec<u8>) -> Result<Proposed, RaftError> {
        self.check()?;
        let mut g = self.group.lock();
        if g.raw.raft.state != StateRole::Leader {
            // The ops already ran (`admits` said leader a moment ago): as a dropped proposal.
            drop(g);
            self.stop_ahead_of_log("leadership was lost between the check and the proposal".into());
            return Err(RaftError::Dropped);
        }
        let before = g.raw.raft.raft_log.last_index();
        let context = self.floor_context();
        if let Err(e) = g.raw.propose(context, data) {
            // The ops already changed the keyspace, and the log will not have them.
            let err = match e {
                ::raft::Error::ProposalDropped => RaftError::Dropped,
                e => RaftError::Stopped(e.to_string()),
            };
            drop(g);
            self.stop_ahead_of_log(err.to_string());
            return Err(err);
        }
        let Some(entry) = g.raw.raft.raft_log.unstable.entries.last() else {
            drop(g);
            self.stop("raft accepted a proposal but made no entry".into());
            return Err(RaftError::Dropped);
        };
        if entry.index != before + 1 {
            let why = format!(
                "raft made entry {} for a proposal after entry {before}",
                entry.index
            );
            drop(g);
            self.stop(why.clone());
            return Err(RaftError::Stopped(why));
        }
        let record = RaftEntryRecord {
            term: entry.term,
            index: entry.index,
            kind: EntryKind::Normal,
            context: entry.context.clone(),
            data: entry.data.clone(),
        };
        let context_len = record.context.len();
        let index = record.index;
        // The write's ops are in the keyspace already.
        g.executed_through = index;
        self.executed.store(index, Ordering::Release);
        let pos = self.queue_proposed(g, &record)?;
        Ok(Proposed {
            index,
            data_at: RecordPos {
                segment: pos.segment,
                offset: pos.offset + raft_record::data_offset(context_len),
            },
        })
    }

    /// Queues the entry raft just made for a proposal (`g` held, leader) to the log at once,
    /// so the next proposal is queued after it and the Ready loop does not write it again;
    /// then sends the appends raft produced. Returns where the record starts.
    ///
    /// A leader's appends may leave before its own fsync (raft thesis §10.2.1; raft-rs hands
    /// a leader's messages out at once): they go now rather than at the next turn of the
    /// Ready loop — which may be behind an fsync, or not come until a peer's message or a
    /// tick (100 ms) wakes the driver — so the followers' fsyncs overlap the leader's, and a
    /// quiet shard commits a write in one round trip.
    pub(super) fn queue_proposed(
        &self,
        mut g: parking_lot::MutexGuard<'_, Group>,
        record: &RaftEntryRecord,
    ) -> Result<RecordPos, RaftError> {
        let pos = match self.log.queue_entry(record) {
            Ok((_, pos)) => pos,
            Err(e) => {
                drop(g);
                let e = RaftError::from(e);
                self.stop(e.to_string());
                return Err(e);
            }
        };
        g.queued_through = record.index;
        self.proposed.store(record.index, Ordering::Release);
        if let Some(sink) = &self.sink {
            if !g.raw.raft.msgs.is_empty() {
                let msgs = std::mem::take(&mut g.raw.raft.msgs);
                drop(g);
                sink.send(msgs);
            }
        }
        Ok(pos)
    }

    /// The purge floor: an index below which no voter will ever need this node's entries,
    /// so a checkpoint at or past it may purge them (`persist::checkpoint`, design §3.8).
    /// A leader computes it as the smallest index every peer has acknowledged (its match),
    /// capped at the commit index, and sends it to the followers in the context of an
    /// entry it proposes; they adopt it when the entry commits. It only rises: a voter's
    /// log never loses committed entries (a node that lost its disk must come back under
    /// a new id), so an index every voter held once, committed, stays held by all. Until
    /// snapshots can be shipped (not built yet), a voter that is down holds the floor —
    /// and with it every log's purge — at what it had acknowledged.
    pub fn purge_floor(&self) -> u64 {
        self.floor.load(Ordering::Acquire)
    }

    /// The purge floor, raised first if this node leads (a leader's follows its commit
    /// index each turn of the Ready loop; a checkpoint must not purge less than it may
    /// because the last turn ran before the newest commit).
    pub fn current_purge_floor(&self) -> u64 {
        let g = self.group.lock();
        if g.raw.raft.state == StateRole::Leader {
            self.raise_floor(&g);
        }
        drop(g);
        self.purge_floor()
    }

    /// Adopts a floor an entry's context carried (a committed entry's).
    pub(super) fn adopt_floor(&self, context: &[u8]) {
        if let Some(f) = floor_in(context) {
            self.floor.fetch_max(f, Ordering::AcqRel);
        }
    }

    /// Raises this leader's floor to the smallest index every peer has acknowledged,
    /// capped at the commit index (`g` held, leader); returns it.
    pub(super) fn raise_floor(&self, g: &Group) -> u64 {
        let raft = &g.raw.raft;
        let voters = raft.prs().conf().voters();
        let matched = raft
            .prs()
            .iter()
            // Learners catch up by snapshot when they need purged entries: only voters
            // hold the floor.
            .filter(|(id, _)| voters.contains(**id))
            .map(|(id, p)| {
                if *id == raft.id {
                    raft.raft_log.last_index()
                } else {
                    p.matched
                }
            })
            .min()
            .unwrap_or(0);
        let floor = matched.min(raft.raft_log.committed);
        self.floor.fetch_max(floor, Ordering::AcqRel);
        floor
    }

    /// The context for a proposal: the floor (raised by the Ready loop each turn,
    /// [`RaftNode::raise_floor`]) when it moved by [`FLOOR_STEP`] since it was last sent,
    /// else none.
    fn floor_context(&self) -> Vec<u8> {
        let floor = self.floor.load(Ordering::Acquire);
        if floor < self.floor_sent.load(Ordering::Acquire) + FLOOR_STEP {
            return Vec::new();
        }
        self.floor_sent.store(floor, Ordering::Release);
        let mut c = Vec::with_capacity(9);
        c.push(FLOOR_TAG);
        c.extend_from_slice(&floor.to_le_bytes());
        c
    }

    /// The commit index in the hard state last written to the log: what a restart
    /// starts from (raft refuses an applied index past it).
    pub fn persisted_commit(&self) -> u64 {
        self.log.state().hard_state.commit
    }

    /// Whether the node stopped (deposed, failed, or shut down).
    pub fn is_stopped(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// The error a stopped node answers with, if it has stopped.
    pub(super) fn check(&self) -> Result<(), RaftError> {
        if !self.failed.load(Ordering::Acquire) {
            return Ok(());
        }
        if self.log.log().is_poisoned() {
            return Err(RaftError::Storage(self.log.log().poison_error()));
        }
        let why = self.stopped.lock().clone().unwrap_or_default();
        Err(RaftError::Stopped(why))
    }

    /// Stops the node after a proposal was refused once its ops had run: the keyspace holds
    /// what the log will not, so it must be rebuilt from the log, as a deposed leader's.
    fn stop_ahead_of_log(&self, why: String) {
        self.deposed.store(true, Ordering::Release);
        self.stop(why);
    }

    /// Stops the node: no more proposals, and every waiter not yet committed fails.
    pub(super) fn stop(&self, why: String) {
        {
            let mut s = self.stopped.lock();
            if s.is_none() {
                tracing::error!("Raft group stopped: {why}");
                *s = Some(why);
            }
        }
        // Failed before no longer leading: whoever sees the leader gone sees the stop.
        self.failed.store(true, Ordering::Release);
        self.leader.store(false, Ordering::Release);
        // Wake the waiters so they see it.
        self.committed.send_modify(|_| {});
    }

    /// Writes and syncs what is queued, then stops the log (shutdown).
    pub fn close(&self) {
        let _turn = self.driving.lock();
        self.log.close();
    }
}
