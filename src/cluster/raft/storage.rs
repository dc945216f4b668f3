//! raft-rs's [`Storage`] over the Raft log kept in Rill's segmented log
//! ([`crate::storage::raftlog::RaftLog`]): the log *is* the Raft log, one record per entry,
//! with no second write-ahead log (design scale-out.md §3.3).
//!
//! **Crate features.** `raft` 0.7 is built with `default-features = false, features =
//! ["protobuf-codec"]`. `protobuf-codec` builds its message types with `protobuf-build`,
//! which runs the `protoc` bundled inside that crate for linux-x86_64 (no system `protoc`,
//! no network); `prost-codec` needs a system `protoc` (there is none here) and brings a
//! second protobuf stack. `default-logger` is left out: it pulls `slog-term`/`slog-envlogger`
//! for a logger Rill does not use (the driver will pass its own `slog::Logger`, bridged to
//! `tracing`).
//!
//! **Semantics** follow raft-rs's `MemStorage` (checked against it by the oracle test
//! below), with these differences, each on purpose:
//! - `term(first_index - 1)` after a purge returns the purged entry's term (the trait's own
//!   contract: "the term of the entry before first_index is retained"); `MemStorage`, whose
//!   `compact` forgets it, answers `Compacted`, which makes a leader send a snapshot where
//!   entries would do.
//! - Purging every entry (`compact(last_index + 1)`) keeps `first_index = last_index + 1`;
//!   `MemStorage` then falls back to its snapshot's index, moving `first_index` backwards.
//! - `entries` with `high > last_index + 1` returns `Unavailable` instead of panicking, and
//!   an empty range of an empty log returns no entries instead of panicking.
//! - Appends that would leave a hole, overwrite purged entries, or truncate committed ones
//!   are refused with an error (`MemStorage` panics or, for the last, allows it).
//! - `snapshot` describes the newest published checkpoint (`storage::snapshot`): the files
//!   a replica fetches; `SnapshotTemporarilyUnavailable` until one is published. Checkpoints
//!   purge the log only below the voters' purge floor (`RaftNode::purge_floor`), so a voter
//!   never needs one; a new replica (a learner) does.

use std::path::Path;

use ::raft::eraftpb::{ConfState, Entry, EntryType, HardState, Snapshot};
use ::raft::{GetEntriesContext, RaftState, Storage};
use protobuf::Message as _;

use crate::storage::log::LogOptions;
use crate::storage::raft_record::{ConfStateRecord, EntryKind, HardStateRecord, RaftEntryRecord};
use crate::storage::raftlog::{RaftLog, RaftLogError};
use crate::storage::recovery::BatchSink;
use crate::storage::StorageError;

/// raft-rs's storage over a data directory's log.
pub struct LogStorage {
    log: std::sync::Arc<RaftLog>,
}

/// A storage error in raft's terms: `Compacted` and `Unavailable` as raft-rs expects
/// them, everything else (I/O, damage, refused operations) as `Other`.
fn to_raft(e: RaftLogError) -> ::raft::Error {
    use ::raft::StorageError as S;
    ::raft::Error::Store(match e {
        RaftLogError::Compacted { .. } => S::Compacted,
        RaftLogError::Unavailable { .. } => S::Unavailable,
        e => S::Other(Box::new(e)),
    })
}

/// The stored form of a raft entry.
pub fn entry_record(e: &Entry) -> RaftEntryRecord {
    RaftEntryRecord {
        term: e.term,
        index: e.index,
        kind: match e.get_entry_type() {
            EntryType::EntryNormal => EntryKind::Normal,
            EntryType::EntryConfChange => EntryKind::ConfChange,
            EntryType::EntryConfChangeV2 => EntryKind::ConfChangeV2,
        },
        context: e.context.clone(),
        data: e.data.clone(),
    }
}

/// The raft entry of a stored one.
pub fn entry(r: &RaftEntryRecord) -> Entry {
    let mut e = Entry {
        term: r.term,
        index: r.index,
        context: r.context.clone(),
        data: r.data.clone(),
        ..Default::default()
    };
    e.set_entry_type(match r.kind {
        EntryKind::Normal => EntryType::EntryNormal,
        EntryKind::ConfChange => EntryType::EntryConfChange,
        EntryKind::ConfChangeV2 => EntryType::EntryConfChangeV2,
    });
    e
}

fn hard_state_record(h: &HardState) -> HardStateRecord {
    HardStateRecord {
        term: h.term,
        vote: h.vote,
        commit: h.commit,
    }
}

fn conf_state(c: &ConfStateRecord) -> ConfState {
    ConfState {
        voters: c.voters.clone(),
        learners: c.learners.clone(),
        voters_outgoing: c.voters_outgoing.clone(),
        learners_next: c.learners_next.clone(),
        auto_leave: c.auto_leave,
        ..Default::default()
    }
}

/// The stored form of a configuration.
pub fn conf_state_record(cs: &ConfState) -> ConfStateRecord {
    ConfStateRecord {
        voters: cs.voters.clone(),
        learners: cs.learners.clone(),
        voters_outgoing: cs.voters_outgoing.clone(),
        learners_next: cs.learners_next.clone(),
        auto_leave: cs.auto_leave,
    }
}

impl LogStorage {
    /// Opens the log of `dir` (recovering it), handing records that are not Raft's to
    /// `sink`.
    pub fn open_with(
        dir: &Path,
        opts: LogOptions,
        sink: &mut BatchSink<'_>,
    ) -> Result<LogStorage, StorageError> {
        Ok(LogStorage {
            log: std::sync::Arc::new(RaftLog::open(dir, opts, sink)?),
        })
    }

    /// Raft's storage over a Raft log already open (the server opens it while replaying,
    /// and the driver keeps a handle on it to queue and commit records).
    pub fn new(log: std::sync::Arc<RaftLog>) -> LogStorage {
        LogStorage { log }
    }

    /// Opens the log of `dir`, which holds only Raft records (tests, tools).
    pub fn open(dir: &Path, opts: LogOptions) -> Result<LogStorage, StorageError> {
        Self::open_with(dir, opts, &mut |_, _| Ok(()))
    }

    /// The Raft log underneath.
    pub fn raft_log(&self) -> &std::sync::Arc<RaftLog> {
        &self.log
    }

    /// Writes and syncs what is queued, then stops the log.
    pub fn close(&self) {
        self.log.close();
    }

    /// Persists a Ready's entries and hard state together (one write, one fsync),
    /// overwriting a conflicting uncommitted suffix.
    pub fn append(&self, entries: &[Entry], hard_state: Option<&HardState>) -> ::raft::Result<()> {
        let recs: Vec<RaftEntryRecord> = entries.iter().map(entry_record).collect();
        self.log
            .append(&recs, hard_state.map(hard_state_record))
            .map_err(to_raft)
    }

    /// Persists a hard state on its own (a Ready with a new commit index but no entries).
    pub fn set_hard_state(&self, hard_state: &HardState) -> ::raft::Result<()> {
        self.log
            .set_hard_state(hard_state_record(hard_state))
            .map_err(to_raft)
    }

    /// Persists the configuration a conf change produced.
    pub fn set_conf_state(&self, cs: &ConfState) -> ::raft::Result<()> {
        self.log
            .set_conf_state(conf_state_record(cs))
            .map_err(to_raft)
    }

    /// Purges the entries before `compact_index`, which must not pass `applied + 1`.
    pub fn compact(&self, compact_index: u64, applied: u64) -> ::raft::Result<()> {
        self.log.compact(compact_index, applied).map_err(to_raft)
    }
}

impl Storage for LogStorage {
    fn initial_state(&self) -> ::raft::Result<RaftState> {
        let s = self.log.state();
        let hs = HardState {
            term: s.hard_state.term,
            vote: s.hard_state.vote,
            commit: s.hard_state.commit,
            ..Default::default()
        };
        Ok(RaftState::new(hs, conf_state(&s.conf_state)))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> ::raft::Result<Vec<Entry>> {
        let max_size = max_size.into().filter(|&m| m != ::raft::NO_LIMIT);
        // Sized as raft's `limit_size` sizes them: the encoded protobuf message.
        let recs = self
            .log
            .entries(low, high, max_size, |r| u64::from(entry(r).compute_size()))
            .map_err(to_raft)?;
        Ok(recs.iter().map(entry).collect())
    }

    fn term(&self, idx: u64) -> ::raft::Result<u64> {
        self.log.term(idx).map_err(to_raft)
    }

    fn first_index(&self) -> ::raft::Result<u64> {
        Ok(self.log.first_index())
    }

    fn last_index(&self) -> ::raft::Result<u64> {
        Ok(self.log.last_index())
    }

    /// The newest published snapshot (`storage::snapshot`): its index and term, the
    /// configuration in force now, and as data the list of its files, which the replica
    /// fetches over the cluster bus. The configuration may be newer than the snapshot's
    /// index, by conf changes committed and applied since: it then already includes the
    /// replica being sent it (raft-rs refuses a snapshot whose configuration does not), and
    /// applying those changes again when their entries arrive changes nothing. None
    /// published yet, or one older than the log's purge point: raft tries again later.
    fn snapshot(&self, request_index: u64, _to: u64) -> ::raft::Result<Snapshot> {
        let unavailable =
            || ::raft::Error::Store(::raft::StorageError::SnapshotTemporarilyUnavailable);
        let store = self.log.snapshots();
        let snap = match store.newest() {
            Some(s) if s.index + 1 >= self.log.first_index() && s.index >= request_index => s,
            _ => {
                // The checkpoint task publishes one at once; raft asks again meanwhile.
                store.want();
                return Err(unavailable());
            }
        };
        let mut out = Snapshot {
            data: snap.encode().into(),
            ..Default::default()
        };
        let meta = out.mut_metadata();
        meta.index = snap.index;
        meta.term = snap.term;
        meta.set_conf_state(conf_state(&self.log.state().conf_state));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::raft::storage::MemStorage;
    use bytes::Bytes;
    use proptest::prelude::*;
    use std::path::PathBuf;

    use crate::storage::raftlog::test_support::opts;

    fn tmp(name: &str) -> PathBuf {
        crate::storage::raftlog::test_support::tmp("raftstorage", name)
    }

    fn ctx() -> GetEntriesContext {
        GetEntriesContext::empty(false)
    }

    #[derive(Debug, Clone)]
    enum Step {
        /// Append `n` entries starting `back` entries before the end (clamped to what may
        /// be overwritten), with a new term when `bump`, and data of `size` bytes.
        Append {
            back: u64,
            n: u64,
            bump: bool,
            size: usize,
        },
        /// Move the commit index forward by up to `by`.
        Commit {
            by: u64,
        },
        /// Purge up to `by` entries past first_index (never past commit + 1, never all).
        Compact {
            by: u64,
        },
        ConfState {
            voters: Vec<u64>,
        },
        Reopen,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            6 => (0u64..6, 1u64..6, any::<bool>(), 0usize..300)
                .prop_map(|(back, n, bump, size)| Step::Append { back, n, bump, size }),
            2 => (0u64..8).prop_map(|by| Step::Commit { by }),
            2 => (0u64..6).prop_map(|by| Step::Compact { by }),
            1 => proptest::collection::vec(1u64..6, 0..4).prop_map(|voters| Step::ConfState { voters }),
            2 => Just(Step::Reopen),
        ]
    }

    fn entry_of(index: u64, term: u64, size: usize, kind: EntryType) -> Entry {
        let mut e = Entry {
            index,
            term,
            data: Bytes::from(vec![(index * 7 + term) as u8; size]),
            context: if index.is_multiple_of(5) {
                Bytes::from_static(b"ctx")
            } else {
                Bytes::new()
            },
            ..Default::default()
        };
        e.set_entry_type(kind);
        e
    }

    /// Everything raft can ask, compared between the two storages (MemStorage's panics
    /// and documented differences avoided or checked on their own).
    fn compare(ours: &LogStorage, oracle: &MemStorage, applied_purge: bool) {
        let (f, l) = (oracle.first_index().unwrap(), oracle.last_index().unwrap());
        assert_eq!(ours.first_index().unwrap(), f, "first_index");
        assert_eq!(ours.last_index().unwrap(), l, "last_index");
        let ours_state = ours.initial_state().unwrap();
        let oracle_state = oracle.initial_state().unwrap();
        assert_eq!(ours_state.hard_state, oracle_state.hard_state);
        assert_eq!(ours_state.conf_state, oracle_state.conf_state);
        for idx in f.saturating_sub(3)..=l + 2 {
            let (a, b) = (ours.term(idx), oracle.term(idx));
            if idx + 1 == f && idx > 0 && applied_purge {
                // Ours keeps the purged entry's term (documented); MemStorage forgets it.
                assert_eq!(
                    b,
                    Err(::raft::Error::Store(::raft::StorageError::Compacted))
                );
                assert!(a.is_ok(), "term({idx}) of the last purged entry");
            } else {
                assert_eq!(a, b, "term({idx})");
            }
        }
        if l >= f {
            for lo in f.saturating_sub(1).max(1)..=l + 1 {
                for hi in [lo, lo + 1, lo + 3, l + 1] {
                    if hi < lo || hi > l + 1 {
                        continue;
                    }
                    for max in [None, Some(0), Some(100), Some(700), Some(::raft::NO_LIMIT)] {
                        let a = ours.entries(lo, hi, max, ctx());
                        let b = oracle.entries(lo, hi, max, ctx());
                        assert_eq!(a, b, "entries({lo}, {hi}, {max:?})");
                    }
                }
            }
        }
    }

    fn run(steps: Vec<Step>, name: &str) {
        let dir = tmp(name);
        let mut ours = LogStorage::open(&dir, opts()).unwrap();
        let oracle = MemStorage::new();
        let mut commit = 0u64;
        let mut purged = false;
        for s in steps {
            let (f, l) = (oracle.first_index().unwrap(), oracle.last_index().unwrap());
            let last_term = oracle.term(l).unwrap_or(0);
            match s {
                Step::Append {
                    back,
                    n,
                    bump,
                    size,
                } => {
                    // Truncation only above commit and never into purged entries.
                    let start = (l + 1).saturating_sub(back).max(commit + 1).max(f);
                    let term = last_term.max(1) + u64::from(bump || start <= l);
                    let ents: Vec<Entry> = (start..start + n)
                        .map(|i| {
                            let kind = if i.is_multiple_of(9) {
                                EntryType::EntryConfChangeV2
                            } else {
                                EntryType::EntryNormal
                            };
                            entry_of(i, term, size, kind)
                        })
                        .collect();
                    ours.append(&ents, None).unwrap();
                    oracle.wl().append(&ents).unwrap();
                }
                Step::Commit { by } => {
                    commit = (commit + by).min(l);
                    let hs = HardState {
                        term: last_term,
                        vote: 1,
                        commit,
                        ..Default::default()
                    };
                    ours.set_hard_state(&hs).unwrap();
                    oracle.wl().set_hardstate(hs);
                }
                Step::Compact { by } => {
                    // MemStorage forgets first_index when every entry goes (documented).
                    let to = (f + by).min(commit + 1).min(l);
                    if to > f {
                        ours.compact(to, commit).unwrap();
                        oracle.wl().compact(to).unwrap();
                        purged = true;
                    }
                }
                Step::ConfState { voters } => {
                    let cs = ConfState {
                        voters,
                        learners: vec![9],
                        ..Default::default()
                    };
                    ours.set_conf_state(&cs).unwrap();
                    oracle.wl().set_conf_state(cs);
                }
                Step::Reopen => {
                    ours.close();
                    drop(ours);
                    ours = LogStorage::open(&dir, opts()).unwrap();
                }
            }
            compare(&ours, &oracle, purged);
        }
        // And once more after a restart, whatever the last step was.
        ours.close();
        drop(ours);
        let ours = LogStorage::open(&dir, opts()).unwrap();
        compare(&ours, &oracle, purged);
        ours.close();
        let _ = std::fs::remove_dir_all(&dir);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        /// Random appends (overwriting uncommitted suffixes), commits, purges, conf changes
        /// and restarts on our storage and on raft-rs's MemStorage: the same answers.
        #[test]
        fn behaves_as_raft_rs_mem_storage(steps in proptest::collection::vec(step(), 1..40)) {
            run(steps, "oracle");
        }
    }

    #[test]
    fn snapshot_is_not_available_yet() {
        let dir = tmp("snap");
        let s = LogStorage::open(&dir, opts()).unwrap();
        assert_eq!(
            s.snapshot(0, 2),
            Err(::raft::Error::Store(
                ::raft::StorageError::SnapshotTemporarilyUnavailable
            ))
        );
        s.close();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_truncation_restates_the_conf_state_written_after_the_cut() {
        run(
            vec![
                Step::Append {
                    back: 0,
                    n: 1,
                    bump: false,
                    size: 0,
                },
                Step::ConfState { voters: vec![] },
                Step::Append {
                    back: 1,
                    n: 1,
                    bump: false,
                    size: 0,
                },
            ],
            "conf-after-cut",
        );
    }

    /// Runs the Ready loop until raft has nothing more: persists entries and hard state
    /// together before applying anything (commit persisted with or before apply), then
    /// applies the committed entries (here: records their index and data).
    fn drive(node: &mut ::raft::RawNode<LogStorage>, applied: &mut Vec<(u64, Bytes)>) {
        let mut apply = |ents: Vec<Entry>| {
            for e in ents {
                if !e.data.is_empty() {
                    applied.push((e.index, e.data.clone()));
                }
            }
        };
        while node.has_ready() {
            let mut rd = node.ready();
            assert!(rd.messages().is_empty(), "a single node sends nothing");
            node.store().append(rd.entries(), rd.hs()).unwrap();
            apply(rd.take_committed_entries());
            let mut light = node.advance(rd);
            if let Some(commit) = light.commit_index() {
                let mut hs = node.raft.hard_state();
                hs.commit = commit;
                node.store().set_hard_state(&hs).unwrap();
            }
            apply(light.take_committed_entries());
            node.advance_apply();
        }
    }

    fn node(dir: &std::path::Path, applied: u64) -> ::raft::RawNode<LogStorage> {
        let cfg = ::raft::Config {
            id: 1,
            election_tick: 10,
            heartbeat_tick: 1,
            applied,
            ..Default::default()
        };
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        ::raft::RawNode::new(&cfg, LogStorage::open(dir, opts()).unwrap(), &logger).unwrap()
    }

    #[test]
    fn a_single_node_group_commits_proposals_through_the_log_and_survives_a_reopen() {
        let dir = tmp("rawnode");
        {
            let s = LogStorage::open(&dir, opts()).unwrap();
            s.set_conf_state(&ConfState {
                voters: vec![1],
                ..Default::default()
            })
            .unwrap();
            s.close();
        }
        let mut applied = Vec::new();
        let mut n = node(&dir, 0);
        n.campaign().unwrap();
        drive(&mut n, &mut applied);
        assert_eq!(n.raft.state, ::raft::StateRole::Leader);
        // Index 1 is the new leader's empty entry; proposals follow it.
        for i in 0..25 {
            n.propose(vec![], format!("op {i}").into_bytes()).unwrap();
            drive(&mut n, &mut applied);
        }
        let want: Vec<(u64, Bytes)> = (0..25)
            .map(|i| (i + 2, Bytes::from(format!("op {i}"))))
            .collect();
        assert_eq!(applied, want);
        assert_eq!(n.store().last_index().unwrap(), 26);
        assert_eq!(n.store().initial_state().unwrap().hard_state.commit, 26);
        let term = n.raft.term;
        n.store().close();
        drop(n);

        // A restart: everything is in the log, committed and (as this test's state machine
        // says) applied; the node becomes leader again in a new term and goes on.
        let mut n = node(&dir, 26);
        assert_eq!(n.raft.raft_log.last_index(), 26);
        assert_eq!(n.raft.raft_log.committed, 26);
        assert_eq!(n.raft.term, term);
        let stored = n.store().entries(2, 27, None, ctx()).unwrap();
        assert_eq!(
            stored
                .iter()
                .map(|e| (e.index, e.data.clone()))
                .collect::<Vec<_>>(),
            want
        );
        n.campaign().unwrap();
        drive(&mut n, &mut applied);
        assert_eq!(n.raft.term, term + 1);
        n.propose(vec![], b"after restart".to_vec()).unwrap();
        drive(&mut n, &mut applied);
        assert_eq!(
            applied.last(),
            Some(&(28, Bytes::from_static(b"after restart")))
        );
        n.store().close();
        drop(n);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
