//! Membership changes of a hosted group (issue #14 step J; design scale-out.md §3.9): a
//! replica is added as a learner, catches up (from the leader's log, or from a snapshot
//! when the entries it needs were purged), and is then promoted to voter; a replica is
//! removed by a conf change of its own.
//!
//! **One change at a time**, each a `ConfChangeV2` with a single change (raft's "simple"
//! change: never two voters at once, so no joint consensus is needed). A leader refuses a
//! second change while one is not yet applied.
//!
//! **Applied at commit, by every member** (leader included, though it proposed it): the
//! Ready loop hands committed conf changes to raft (`apply_conf_change`) and persists the
//! resulting configuration with its own fsync *before* the turn queues the hard state that
//! records the commit. So on disk the configuration is never behind a recorded commit; it
//! may be ahead of it (a crash between the two), and then raft delivers the change again
//! after the restart and applying it again changes nothing. Each change carries, in its
//! context, the node it is about (`id ip port cport`), so every member learns a new
//! member's address from the log itself; the host ([`RaftNode::take_membership_changes`])
//! links to it and updates its map.
//!
//! **Learners do not hold the purge floor** (`RaftNode::raise_floor`): a learner that
//! needs purged entries is sent a snapshot.

use ::raft::eraftpb::{
    ConfChangeSingle, ConfChangeType, ConfChangeV2, ConfState, Entry, EntryType,
};
use ::raft::StateRole;
use protobuf::Message as _;

use super::node::{Group, RaftError, RaftNode};
use super::storage::LogStorage;

/// What a membership change did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A node joins as a learner: it receives the log, does not vote.
    AddLearner,
    /// A node becomes (or stays) a voter.
    AddVoter,
    /// A node leaves the group.
    Remove,
}

/// A membership change the Ready loop applied.
#[derive(Debug, Clone)]
pub struct MembershipChange {
    /// Its Raft index.
    pub index: u64,
    /// The change and the raft id it is about.
    pub change: Change,
    pub node: u64,
    /// The proposer's description of the node (the host's `id ip port cport`).
    pub context: Vec<u8>,
    /// The configuration after it.
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
}

/// A snapshot raft asked this node to install, with what the node must write after it.
#[derive(Debug, Clone)]
pub struct PendingSnapshot {
    pub snapshot: ::raft::eraftpb::Snapshot,
    /// The leader that sent it (raft id): where its files are fetched from.
    pub leader: u64,
    /// This node's term and vote when it was received: its hard state after the install.
    pub term: u64,
    pub vote: u64,
}

fn conf_change(change: &Change, node: u64) -> ConfChangeV2 {
    let mut single = ConfChangeSingle::default();
    single.set_change_type(match change {
        Change::AddLearner => ConfChangeType::AddLearnerNode,
        Change::AddVoter => ConfChangeType::AddNode,
        Change::Remove => ConfChangeType::RemoveNode,
    });
    single.node_id = node;
    let mut cc = ConfChangeV2::default();
    cc.mut_changes().push(single);
    cc
}

/// The changes a committed conf-change entry makes (v1 or v2), or `None` for other entries.
fn decode(e: &Entry) -> Option<Result<ConfChangeV2, String>> {
    match e.get_entry_type() {
        EntryType::EntryNormal => None,
        EntryType::EntryConfChange => Some(
            ::raft::eraftpb::ConfChange::parse_from_bytes(&e.data)
                .map(|cc| {
                    let mut single = ConfChangeSingle::default();
                    single.set_change_type(cc.get_change_type());
                    single.node_id = cc.node_id;
                    let mut v2 = ConfChangeV2::default();
                    v2.mut_changes().push(single);
                    v2
                })
                .map_err(|err| format!("entry {}: bad conf change: {err}", e.index)),
        ),
        EntryType::EntryConfChangeV2 => Some(
            ConfChangeV2::parse_from_bytes(&e.data)
                .map_err(|err| format!("entry {}: bad conf change: {err}", e.index)),
        ),
    }
}

impl RaftNode {
    /// Proposes one membership change (leader only; one at a time) with `context`, the
    /// node's description. Returns the entry's index; the change is in force once the
    /// Ready loop applied it ([`RaftNode::conf_state`], [`RaftNode::take_membership_changes`]).
    pub fn propose_membership(
        &self,
        change: Change,
        node: u64,
        context: Vec<u8>,
    ) -> Result<u64, RaftError> {
        self.check()?;
        let mut g = self.group.lock();
        if g.raw.raft.state != StateRole::Leader {
            return Err(RaftError::NotLeader);
        }
        if g.raw.raft.has_pending_conf() {
            return Err(RaftError::Busy(
                "a membership change is already in progress".into(),
            ));
        }
        let before = g.raw.raft.raft_log.last_index();
        g.raw
            .propose_conf_change(context, conf_change(&change, node))
            .map_err(|e| RaftError::Busy(e.to_string()))?;
        let Some(entry) = g.raw.raft.raft_log.unstable.entries.last() else {
            return Err(RaftError::Busy(
                "raft did not accept the membership change".into(),
            ));
        };
        if entry.index != before + 1 {
            return Err(RaftError::Busy(
                "raft did not accept the membership change".into(),
            ));
        }
        // Queued to the log at once, as a write's proposal is: the leader's next write is
        // queued directly after it, so the Ready loop must not be the one to queue it later.
        let record = super::storage::entry_record(entry);
        let index = record.index;
        self.queue_proposed(g, &record)?;
        Ok(index)
    }

    /// The configuration in force here: voters and learners.
    pub fn conf_state(&self) -> ConfState {
        self.group.lock().raw.raft.prs().conf().to_conf_state()
    }

    /// The membership changes applied since the last call, oldest first.
    pub fn take_membership_changes(&self) -> Vec<MembershipChange> {
        std::mem::take(&mut *self.conf_changes.lock())
    }

    /// Tells raft (on the leader) that the snapshot sent to `peer` was installed there, or
    /// failed: raft sends it nothing while it believes a snapshot is on its way.
    pub fn report_snapshot(&self, peer: u64, installed: bool) {
        let mut g = self.group.lock();
        if g.raw.raft.state == StateRole::Leader {
            g.raw.report_snapshot(
                peer,
                if installed {
                    ::raft::SnapshotStatus::Finish
                } else {
                    ::raft::SnapshotStatus::Failure
                },
            );
        }
    }

    /// The snapshot raft asked this node to install, if it stopped for one.
    pub fn take_snapshot_to_install(&self) -> Option<PendingSnapshot> {
        self.snapshot.lock().take()
    }

    /// Applies the committed conf changes among `committed` (`g` held), persisting each
    /// resulting configuration before anything recording their commit is queued (module
    /// docs). Returns the index of the last one applied.
    pub(super) fn apply_membership(
        &self,
        g: &mut Group,
        committed: &[Entry],
    ) -> Result<Option<u64>, RaftError> {
        let mut last = None;
        for e in committed {
            let Some(cc) = decode(e) else { continue };
            let cc = cc.map_err(RaftError::Stopped)?;
            let cs = g
                .raw
                .apply_conf_change(&cc)
                .map_err(|err| RaftError::Stopped(format!("entry {}: {err}", e.index)))?;
            LogStorage::new(self.log.clone())
                .set_conf_state(&cs)
                .map_err(|err| RaftError::Stopped(err.to_string()))?;
            self.reads
                .set_replicated(cs.voters.len() > 1 || !cs.learners.is_empty());
            for single in cc.get_changes() {
                let change = match single.get_change_type() {
                    ConfChangeType::AddLearnerNode => Change::AddLearner,
                    ConfChangeType::AddNode => Change::AddVoter,
                    ConfChangeType::RemoveNode => Change::Remove,
                };
                tracing::info!(
                    "Raft membership change at index {}: {change:?} {:#x}; voters {:?}, learners {:?}",
                    e.index,
                    single.node_id,
                    cs.voters,
                    cs.learners
                );
                self.conf_changes.lock().push(MembershipChange {
                    index: e.index,
                    change,
                    node: single.node_id,
                    context: e.context.to_vec(),
                    voters: cs.voters.clone(),
                    learners: cs.learners.clone(),
                });
            }
            last = Some(e.index);
        }
        Ok(last)
    }
}
