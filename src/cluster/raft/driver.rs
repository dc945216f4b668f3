//! The Ready loop of a hosted group (raft-rs's async ready), run where the log's group
//! commit runs. Design scale-out.md §3.4.
//!
//! **Where it runs.** The single-node log has no writer thread: the first task that waits
//! for a record leads a group commit (`storage/log.rs`). The Ready loop runs in the same
//! place: a task waiting for index *i* ([`RaftNode::wait_committed`]), the reply hand-off's
//! committer ([`RaftNode::commit`]) and the tick timer ([`run_ticks`]) each take a turn of
//! it when none is under way, and the others wait on the `committed` watch. So, as today,
//! one client's durable write crosses no thread, and many clients share one fsync.
//!
//! **One turn** ([`RaftNode::round`]):
//! 1. `ready()`; its entries that a proposal already queued are skipped, the rest (raft's
//!    own, such as a new leader's empty entry) and its hard state are queued
//!    ([`RaftLog::queue`](crate::storage::raftlog::RaftLog::queue));
//!    `advance_append_async`.
//! 2. The log's group commit: one `write` and one `fdatasync` for every record queued —
//!    the proposals' entries, the hard state, anything else.
//! 3. `on_persist_ready`: in a group of one voter, raft commits what its own fsync made
//!    durable. The commit index is published on the watch, and replies up to it leave.
//!
//! In a group of several voters (`group.rs`) the turn also sends the Ready's `messages`
//! when it takes them and its `persisted_messages` after step 2; a follower's entries are
//! queued in step 1 like raft's own (a conflicting suffix is cut and rewritten there, with
//! its own fsync), and committed entries it did not execute are applied through the node's
//! applier before the fsync (raft hands over only entries already persisted here). A
//! leader's commit then advances when peers' acknowledgements are stepped in, and the next
//! turn publishes it.
//!
//! A hard state with a new commit index is produced by the turn *after* the one that made
//! the entries durable, so on disk the commit index trails the entries by a group; the
//! replies do not wait for it (raft's commit is the quorum's fsync, not the record of it),
//! and after a crash the single voter re-elects itself and commits its whole log again
//! (start-up applies that tail only then, [`RaftNode::recover`]). The tick timer's turns
//! write the trailing hard state when no write follows.
//!
//! A failed write or fsync poisons the log, and the node stops: every waiter not yet
//! committed gets the poison error, as in the single-node server.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use ::raft::eraftpb::Message;
use ::raft::StateRole;

use super::node::{RaftError, RaftNode, TICK_MS};
use super::storage::entry_record;
use crate::storage::log::RecordPos;
use crate::storage::raft_record::{self, RaftEntryRecord};

/// What one turn took from a Ready.
#[derive(Default)]
struct Taken {
    /// The Ready's number, for `on_persist_ready` (none: raft had nothing).
    number: Option<u64>,
    /// Committed entries this node did not execute, with where their data starts.
    to_apply: Vec<(RaftEntryRecord, RecordPos)>,
    /// Messages that may leave before the turn's fsync (a leader's appends).
    early: Vec<Message>,
    /// Messages that may leave only after it (votes, acknowledgements).
    after_persist: Vec<Message>,
}

/// Applies one committed entry this node has not executed (start-up's uncommitted tail):
/// the entry and where its data starts in the log.
pub type ApplyEntry<'a> = dyn FnMut(&RaftEntryRecord, RecordPos) -> Result<(), String> + 'a;

impl RaftNode {
    /// One turn of the Ready loop (see the module docs). Committed entries this node did
    /// not execute go to `apply`, or with none given to the node's applier (a follower's;
    /// without either they stop the node). Messages go to the node's sink. Returns the
    /// committed index.
    pub fn round(&self, apply: Option<&mut ApplyEntry<'_>>) -> Result<u64, RaftError> {
        let _turn = self.driving.lock();
        self.round_locked(apply)
    }

    pub(super) fn round_locked(
        &self,
        apply: Option<&mut ApplyEntry<'_>>,
    ) -> Result<u64, RaftError> {
        self.check()?;
        let taken = match self.take_ready() {
            Ok(r) => r,
            Err(e) => return Err(self.fail(e)),
        };
        if let Some(sink) = &self.sink {
            if !taken.early.is_empty() {
                sink.send(taken.early);
            }
        }
        if !taken.to_apply.is_empty() {
            self.apply_committed(&taken.to_apply, apply)?;
        }
        // The group commit: the proposals' entries and this Ready's records, one fsync.
        if let Err(e) = self.log.log().commit() {
            return Err(self.fail(e.into()));
        }
        let (commit, after_persist) = {
            let mut g = self.group.lock();
            if let Some(n) = taken.number {
                g.raw.on_persist_ready(n);
            }
            let log = &g.raw.raft.raft_log;
            let commit = log.committed;
            if g.raw.raft.state == StateRole::Leader {
                // The leader's own floor follows the commit (its followers' follows the
                // contexts it sends).
                self.raise_floor(&g);
            }
            // Entries executed here are applied; tell raft so it does not hold them.
            let applied = commit.min(log.persisted).min(g.executed_through);
            if applied > log.applied {
                g.raw.advance_apply_to(applied);
            }
            self.tell_leader(&g);
            self.leader.store(Self::may_lead(&g), Ordering::Release);
            self.check_leadership(&g);
            // Acknowledgements and votes promise what the fsync above made durable.
            (commit, taken.after_persist)
        };
        if let Some(sink) = &self.sink {
            if !after_persist.is_empty() {
                sink.send(after_persist);
            }
        }
        self.check()?;
        if commit > *self.committed.borrow() {
            self.committed.send_replace(commit);
        }
        Ok(commit)
    }

    /// Applies committed entries this node did not execute, through `apply` or else the
    /// node's applier; with neither, the node stops (a single voter has such entries only at
    /// start-up, where `recover` passes the replay path).
    fn apply_committed(
        &self,
        to_apply: &[(RaftEntryRecord, RecordPos)],
        apply: Option<&mut ApplyEntry<'_>>,
    ) -> Result<(), RaftError> {
        let mut stored = self.applier.lock();
        let apply: &mut ApplyEntry<'_> = match (apply, stored.as_mut()) {
            (Some(a), _) => a,
            (None, Some(b)) => &mut **b,
            (None, None) => {
                let why = format!(
                    "entry {} was committed but not executed here, and this node has no applier",
                    to_apply[0].0.index
                );
                self.stop(why.clone());
                return Err(RaftError::Stopped(why));
            }
        };
        for (e, at) in to_apply {
            if let Err(why) = apply(e, *at) {
                let why = format!("applying Raft entry {}: {why}", e.index);
                self.stop(why.clone());
                return Err(RaftError::Stopped(why));
            }
            // One at a time: a failure later leaves the ones before it counted.
            let mut g = self.group.lock();
            g.executed_through = g.executed_through.max(e.index);
            self.executed.fetch_max(e.index, Ordering::AcqRel);
        }
        Ok(())
    }

    /// Step 1 of a turn: takes a Ready (if any), queues what it asks to persist (entries
    /// a proposal queued already are skipped; a conflicting suffix is cut and replaced in
    /// one durable write), and hands back its number, the committed entries to apply with
    /// where their data is, and the messages to send before and after the turn's fsync.
    fn take_ready(&self) -> Result<Taken, RaftError> {
        let mut g = self.group.lock();
        if !g.raw.has_ready() {
            return Ok(Taken::default());
        }
        let mut rd = g.raw.ready();
        if !rd.snapshot().is_empty() {
            // The entries this node needs were purged from the leader's log: it installs
            // the leader's checkpoint instead. Nothing of this Ready is persisted; the
            // host fetches the snapshot's files and restarts the node from them
            // (`membership.rs`, `server/replication.rs`).
            let index = rd.snapshot().get_metadata().index;
            *self.snapshot.lock() = Some(super::membership::PendingSnapshot {
                snapshot: rd.snapshot().clone(),
                leader: g.raw.raft.leader_id,
                term: g.raw.raft.term,
                vote: g.raw.raft.vote,
            });
            drop(g);
            self.stop(format!("installing a snapshot of Raft index {index}"));
            return Err(RaftError::InstallSnapshot(index));
        }
        // Committed conf changes are applied, and the configuration persisted, before the
        // hard state recording their commit is queued (`membership.rs`).
        let committed = rd.take_committed_entries();
        if let Some(last) = self.apply_membership(&mut g, &committed)? {
            // A conf change has no ops: it counts as executed once applied (raft holds
            // the next change until the applied index passes it).
            if committed
                .iter()
                .filter(|e| e.index < last)
                .all(|e| e.index <= g.executed_through)
            {
                g.executed_through = g.executed_through.max(last);
                self.executed.fetch_max(last, Ordering::AcqRel);
            }
        }
        let (early, after_persist) = if self.sink.is_some() {
            (rd.take_messages(), rd.take_persisted_messages())
        } else if !rd.messages().is_empty() || !rd.persisted_messages().is_empty() {
            // The single voter sends nothing.
            return Err(RaftError::Stopped(
                "raft asked to send messages to peers, and this group of one voter has none".into(),
            ));
        } else {
            (Vec::new(), Vec::new())
        };
        // Entries already in the log (same index and term: the same entry) are skipped.
        let skip = rd
            .entries()
            .iter()
            .take_while(|e| {
                e.index <= g.queued_through && self.log.term(e.index).ok() == Some(e.term)
            })
            .count();
        let fresh: Vec<RaftEntryRecord> = rd.entries()[skip..].iter().map(entry_record).collect();
        let hard_state = rd.hs().map(|h| raft_record::HardStateRecord {
            term: h.term,
            vote: h.vote,
            commit: h.commit,
        });
        match fresh.first() {
            Some(first) if first.index <= self.log.last_index() => {
                // A conflicting suffix from the new leader. Entries executed here (this
                // node led and ran them ahead of commit) cannot be cut from the keyspace.
                if first.index <= g.executed_through {
                    return Err(RaftError::Deposed {
                        executed: g.executed_through,
                        committed: g.raw.raft.raft_log.committed,
                    });
                }
                self.log.append(&fresh, hard_state)?;
                // What was proposed here past the cut is gone: `proposed` names the log's
                // last own proposal, never an index the log no longer has.
                self.proposed.fetch_min(first.index - 1, Ordering::AcqRel);
            }
            _ => {
                if !fresh.is_empty() || hard_state.is_some() {
                    self.log.queue(&fresh, hard_state)?;
                }
            }
        }
        if let Some(last) = fresh.last() {
            g.queued_through = last.index;
        }
        let executed = g.executed_through;
        for e in &committed {
            self.adopt_floor(&e.context);
        }
        if let Some(last) = committed.last() {
            // Raft hands each committed entry over once: the cached copies can go (a
            // lagging peer's entries are read back from the segments).
            self.log.trim_cache(last.index);
        }
        let mut to_apply = Vec::new();
        for e in committed.iter().filter(|e| e.index > executed) {
            let at = self.log.entry_pos(e.index)?;
            let data_at = RecordPos {
                segment: at.segment,
                offset: at.offset + raft_record::data_offset(e.context.len()),
            };
            to_apply.push((entry_record(e), data_at));
        }
        for rs in rd.take_read_states() {
            // On the leader, everything up to the ReadState's index is executed already.
            self.reads.confirm(&rs.request_ctx);
        }
        let number = rd.number();
        g.raw.advance_append_async(rd);
        // Proposers (holding the keyspace lock) wait for this lock: free it before the
        // handed-over entries are dropped.
        drop(g);
        drop(committed);
        Ok(Taken {
            number: Some(number),
            to_apply,
            early,
            after_persist,
        })
    }

    /// Stops the node for `e` and returns it.
    fn fail(&self, e: RaftError) -> RaftError {
        self.stop(e.to_string());
        e
    }

    /// Leads turns until everything proposed before the call is committed (or a turn makes
    /// no progress), for a caller that hands replies out itself (the reply hand-off's
    /// committer). Returns the committed index.
    pub fn commit(&self) -> Result<u64, RaftError> {
        let target = self.proposed();
        let _turn = self.driving.lock();
        let mut last = self.committed();
        loop {
            let c = self.round_locked(None)?;
            if c >= target || c == last {
                return Ok(c);
            }
            last = c;
        }
    }

    /// Waits until entry `index` is committed, leading turns of the Ready loop itself when
    /// none is under way (as [`Log::wait_durable`](crate::storage::Log::wait_durable)
    /// leads group commits). One turn that finds the entry proposed commits it in a group of
    /// one voter (turns run one at a time, and each tells raft what its fsync persisted);
    /// a turn that moves nothing waits for another's commit, or a tick, before trying again.
    pub async fn wait_committed(&self, index: u64) -> Result<(), RaftError> {
        if index == 0 || self.committed() >= index {
            return Ok(());
        }
        let mut rx = self.committed.subscribe();
        let mut yielded = false;
        loop {
            if *rx.borrow_and_update() >= index {
                return Ok(());
            }
            self.check()?;
            if !yielded {
                // Let the tasks ready on this thread propose first: one fsync for all.
                yielded = true;
                tokio::task::yield_now().await;
                continue;
            }
            if let Some(_turn) = self.driving.try_lock() {
                let before = self.committed();
                let c = self.round_locked(None)?;
                if c >= index {
                    return Ok(());
                }
                if c > before {
                    continue;
                }
            }
            let _ = tokio::time::timeout(Duration::from_millis(TICK_MS), rx.changed()).await;
        }
    }

    /// Start-up: elects this node (the single voter) and commits its whole log, applying
    /// the entries after `applied` through `apply` (the replay path) as they commit. The
    /// server serves nothing before this returns.
    pub fn recover(&self, apply: &mut ApplyEntry<'_>) -> Result<(), RaftError> {
        {
            let mut g = self.group.lock();
            if g.raw.raft.state != StateRole::Leader {
                g.raw
                    .campaign()
                    .map_err(|e| RaftError::Stopped(e.to_string()))?;
            }
        }
        // Each turn persists what the last one produced; a handful suffice (vote, the new
        // term's entry, its commit). More means raft is not converging: refuse to start.
        for _ in 0..16 {
            let commit = self.round(Some(&mut *apply))?;
            let last = self.log.last_index();
            let done = {
                let g = self.group.lock();
                g.raw.raft.state == StateRole::Leader
                    && commit >= last
                    && g.executed_through >= last
                    && !g.raw.has_ready()
            };
            if done {
                self.proposed.store(last, Ordering::Release);
                self.leader.store(true, Ordering::Release);
                return Ok(());
            }
        }
        Err(RaftError::Stopped(
            "the group of one voter did not elect itself and commit its log at start-up".into(),
        ))
    }

    /// Ticks the group every [`TICK_MS`] and takes a turn of the Ready loop when raft has
    /// something to do (a hard state that trails the last writes, elections later on).
    /// Ends when `running` returns false.
    pub async fn run_ticks(self: Arc<Self>, running: impl Fn() -> bool) {
        let mut every = tokio::time::interval(Duration::from_millis(TICK_MS));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while running() {
            every.tick().await;
            if self.failed.load(Ordering::Acquire) {
                continue;
            }
            let pending = self.tick();
            if pending {
                let me = self.clone();
                // A turn may fsync: off the runtime's threads.
                let _ = tokio::task::spawn_blocking(move || {
                    if let Some(_turn) = me.driving.try_lock() {
                        let _ = me.round_locked(None);
                    }
                })
                .await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::storage::raftlog::test_support::{opts, tmp};
    use crate::storage::raftlog::RaftLog;

    fn open(dir: &std::path::Path) -> Arc<RaftLog> {
        Arc::new(RaftLog::open(dir, opts(), &mut |_, _| Ok(())).expect("open"))
    }

    /// The bytes at `at` in the log's segment files.
    fn bytes_at(dir: &std::path::Path, at: RecordPos, len: usize) -> Vec<u8> {
        use std::os::unix::fs::FileExt;
        let f = std::fs::File::open(crate::storage::recovery::segment_path(dir, at.segment))
            .expect("segment");
        let mut buf = vec![0u8; len];
        f.read_exact_at(&mut buf, at.offset).expect("read");
        buf
    }

    #[test]
    fn no_write_runs_before_the_group_has_elected_this_node() {
        let dir = tmp("raftdriver", "not-leader");
        let log = open(&dir);
        let node = RaftNode::start(log.clone(), 0).expect("start");
        assert!(!node.is_leader());
        assert!(matches!(node.admits(true), Err(RaftError::NotLeader)));
        assert!(node.admits(false).is_ok(), "reads are not refused");
        node.recover(&mut |_, _| Ok(())).expect("elect");
        assert!(node.is_leader());
        assert!(node.admits(true).is_ok());
        log.close();
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A proposal comes after its ops ran: one a non-leader cannot make leaves the keyspace
    /// ahead of the log, so the group stops rather than go on acknowledging.
    #[test]
    fn a_proposal_refused_after_execution_stops_the_group() {
        let dir = tmp("raftdriver", "refused");
        let log = open(&dir);
        let node = RaftNode::start(log.clone(), 0).expect("start");
        assert!(matches!(
            node.propose(b"x".to_vec()),
            Err(RaftError::Dropped)
        ));
        assert!(matches!(node.admits(false), Err(RaftError::Stopped(_))));
        assert!(node.recover(&mut |_, _| Ok(())).is_err());
        log.close();
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A proposal is queued at once (its data readable at the position it was given once
    /// written), committed by the group commit, and read back after a reopen with its term.
    #[tokio::test]
    async fn proposals_commit_with_the_group_commit_and_survive_a_reopen() {
        let dir = tmp("raftdriver", "commit");
        let log = open(&dir);
        let node = RaftNode::start(log.clone(), 0).expect("start");
        node.recover(&mut |_, _| Ok(())).expect("elect");
        let base = node.committed();
        assert_eq!(base, log.last_index(), "the new term's entry is committed");
        let mut placed = Vec::new();
        for i in 0..20u32 {
            let data = format!("ops-{i}").into_bytes();
            let p = node.propose(data.clone()).expect("propose");
            assert_eq!(p.index, base + 1 + u64::from(i));
            assert_eq!(node.proposed(), p.index);
            // Not committed before its group commit.
            assert!(node.committed() < p.index);
            placed.push((p, data));
        }
        let last = placed[19].0.index;
        node.wait_committed(last).await.expect("committed");
        assert!(node.committed() >= last);
        for (p, data) in &placed {
            assert_eq!(&bytes_at(&dir, p.data_at, data.len()), data);
        }
        // The trailing hard state goes out with the next turn.
        node.round(None).expect("turn");
        assert_eq!(log.state().hard_state.commit, last);
        log.close();
        drop(node);
        drop(log);
        let log = open(&dir);
        assert_eq!(log.last_index(), last);
        assert_eq!(log.state().hard_state.commit, last);
        let entries = log
            .entries(base + 1, last + 1, None, |_| 0)
            .expect("entries");
        for (e, (_, data)) in entries.iter().zip(&placed) {
            assert_eq!(&e.data[..], &data[..]);
            assert_eq!(e.term, 1);
        }
        log.close();
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Many waiters share fsyncs: the Ready loop runs in whichever waiter finds it free,
    /// and one turn's group commit covers every entry queued before it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_waiters_share_group_commits() {
        let dir = tmp("raftdriver", "group");
        let log = open(&dir);
        let node = RaftNode::start(log.clone(), 0).expect("start");
        node.recover(&mut |_, _| Ok(())).expect("elect");
        let fsyncs_before = log.log().counters().1;
        let mut tasks = Vec::new();
        for t in 0..16 {
            let node = node.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..25 {
                    let index = node
                        .propose(format!("{t}-{i}").into_bytes())
                        .expect("propose")
                        .index;
                    node.wait_committed(index).await.expect("commit");
                    assert!(node.committed() >= index);
                }
            }));
        }
        for t in tasks {
            t.await.expect("task");
        }
        let fsyncs = log.log().counters().1 - fsyncs_before;
        assert!(fsyncs > 0);
        assert!(
            fsyncs < 400,
            "{fsyncs} fsyncs for 400 proposals: the group commit is not shared"
        );
        log.close();
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The commit index on disk trails the entries by a turn: entries a crash left past it
    /// are applied only when the group commits them again at start-up, in order, each with
    /// the position its data is at.
    #[tokio::test]
    async fn a_tail_past_the_recorded_commit_is_applied_once_committed_again() {
        let dir = tmp("raftdriver", "tail");
        let log = open(&dir);
        let node = RaftNode::start(log.clone(), 0).expect("start");
        node.recover(&mut |_, _| Ok(())).expect("elect");
        let mut last = 0;
        for i in 0..5u32 {
            last = node
                .propose(vec![b'a' + i as u8; 3])
                .expect("propose")
                .index;
        }
        node.wait_committed(last).await.expect("commit");
        // No further turn: the hard state on disk does not yet say `last` is committed.
        let recorded = log.state().hard_state.commit;
        assert!(recorded < last, "commit {recorded} already recorded");
        log.close();
        drop(node);
        drop(log);

        let log = open(&dir);
        let node = RaftNode::start(log.clone(), recorded).expect("restart");
        let mut applied = Vec::new();
        node.recover(&mut |e, at| {
            if !e.data.is_empty() {
                applied.push((e.index, e.data.to_vec(), at));
            }
            Ok(())
        })
        .expect("recover");
        let expected: Vec<u64> = (recorded + 1..=last)
            .filter(|i| applied.iter().any(|(j, _, _)| j == i))
            .collect();
        assert_eq!(
            applied.iter().map(|(i, _, _)| *i).collect::<Vec<_>>(),
            expected
        );
        assert_eq!(applied.last().map(|a| a.0), Some(last));
        for (_, data, at) in &applied {
            assert_eq!(&bytes_at(&dir, *at, data.len()), data);
        }
        assert!(node.is_leader());
        assert!(
            node.committed() > last,
            "the new term's entry commits the tail"
        );
        log.close();
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// An applier that fails stops the group instead of serving a state without the entry.
    #[tokio::test]
    async fn a_failed_apply_stops_the_group() {
        let dir = tmp("raftdriver", "apply-fails");
        let log = open(&dir);
        let node = RaftNode::start(log.clone(), 0).expect("start");
        node.recover(&mut |_, _| Ok(())).expect("elect");
        let last = node.propose(b"x".to_vec()).expect("propose").index;
        node.wait_committed(last).await.expect("commit");
        log.close();
        drop(node);
        drop(log);
        let log = open(&dir);
        let node = RaftNode::start(log.clone(), 0).expect("restart");
        let err = node
            .recover(&mut |e, _| {
                if e.data.is_empty() {
                    Ok(())
                } else {
                    Err("does not fit".into())
                }
            })
            .expect_err("recovered past a failed apply");
        assert!(err.to_string().contains("does not fit"), "{err}");
        assert!(node.propose(b"y".to_vec()).is_err());
        log.close();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
