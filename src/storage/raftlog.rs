//! The Raft log kept in the segmented log: one `RaftEntry` record per Raft entry, the hard
//! and conf state as records beside them (`raft_record.rs`), and an in-memory index from
//! Raft index to where each entry is, rebuilt on recovery. Design: scale-out.md §3.3.
//!
//! **Index map.** For every entry in `[first_index, last_index]`: its packed position
//! (`segment << 40 | offset`), record length and term, 24 bytes. [`RaftLog::entries`] reads
//! the records back with `pread` ([`SegmentReader`]) and checks each one's checksum, index
//! and term again, so damage after start-up is reported with file and offset too.
//!
//! **Recovery.** The map is rebuilt from the records recovery reads (segments after the
//! newest checkpoint). Indexes must run without a gap and terms must not go down; anything
//! else is corruption (file and offset), because a truncation removes the records on disk
//! before anything is written after them. The last `HardState` and `ConfState` win. A torn
//! tail is cut as for every record: it was never fsynced, so no peer counted it.
//!
//! **Durability.** [`RaftLog::append`] queues a Ready's entries and its hard state in one
//! hold of the log's queue ([`Log::append_raft`]) and makes them durable with one group
//! commit ([`Log::sync`]: one `write`, one `fdatasync`), before the index map shows them.
//! The Raft driver (step D) splits the two: [`RaftLog::queue`] queues a leader's entries
//! under the keyspace lock and a Ready's hard state, and the Ready loop's group commit makes
//! them durable before raft is told they are persisted.
//!
//! **Truncation** (a conflicting suffix from index i) removes the records from i's position
//! on with [`Log::truncate_at`] and only ever above the persisted commit index ("truncate
//! only above commit"). Hard states are written with every Ready, so the cut usually removes
//! the latest one (with the vote in it) from the files: before cutting, the current hard
//! state, conf state and purge point go into an intent file (`log/raft-truncate.intent`,
//! written and renamed durably), and they are restated as records in the same write as the
//! entries that replace the suffix; then the intent is removed. Start-up finishes a cut a
//! crash interrupted (recognised by entry i still having its old term) and restates the
//! state. Any record kind after i goes with the cut: a node-local record written after
//! uncommitted entries is lost, which step D must allow for (design §3.7 rebuilds).
//!
//! **Purge** ([`RaftLog::compact`]) only moves `first_index` (below
//! the applied index), recorded in a `RaftCompact` record; segments are deleted by the
//! checkpoint machinery, which knows what else they hold.
//!
//! **Not the LSN.** The log's LSNs still count records in memory (one per Raft record,
//! hard states included); a Raft index is the entry's own field. In Raft mode replies wait
//! for indexes on the driver's `committed` watch (design: "LSN := Raft index").

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;

use super::log::{pack_pos, unpack_pos, Log, LogOptions, RecordPos};
use super::raft_record::{
    self, CompactRecord, ConfStateRecord, HardStateRecord, RaftEntryRecord, RaftRecord,
};
use super::reader::SegmentReader;
use super::record::{self, Decoded};
use super::recovery::{self, segment_path, Replay};
use super::StorageError;

/// Why a Raft log operation was refused.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum RaftLogError {
    /// The entries asked for are purged (raft's `StorageError::Compacted`).
    #[error("Raft entries before index {first_index} are purged")]
    Compacted { first_index: u64 },
    /// The entries asked for are past the end of the log (raft's `Unavailable`).
    #[error("Raft index {index} is past the end of the log (last index {last_index})")]
    Unavailable { index: u64, last_index: u64 },
    /// Appending these entries would leave a hole.
    #[error("Raft entries must continue the log without a gap: got index {index} after last index {last_index}")]
    Gap { index: u64, last_index: u64 },
    /// The entries would overwrite purged ones.
    #[error("Raft entry {index} would overwrite purged entries (first index {first_index})")]
    OverwritePurged { index: u64, first_index: u64 },
    /// An entry's term is below the one before it (recovery would call that corruption).
    #[error("Raft entry {index} has term {term}, below the term {prev} of the entry before it")]
    TermGoesDown { index: u64, term: u64, prev: u64 },
    /// A truncation would remove committed entries: a bug above storage, refused.
    #[error(
        "refusing to truncate the Raft log at index {index}: entries up to {commit} are committed"
    )]
    TruncateCommitted { index: u64, commit: u64 },
    /// A purge would remove entries not yet applied, or not yet received.
    #[error("refusing to purge the Raft log below index {index}: only entries up to {limit} may go ({why})")]
    PurgeTooFar {
        index: u64,
        limit: u64,
        why: &'static str,
    },
    /// The disk or the log failed (or holds damage).
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Where one entry is: its record's packed position and length, and its term.
#[derive(Debug, Clone, Copy)]
struct EntryLoc {
    pos: u64,
    len: u32,
    term: u64,
}

/// The Raft state rebuilt on recovery and kept in memory.
#[derive(Debug, Default, Clone)]
pub struct RaftIndex {
    /// The last purged entry (index 0, term 0 when nothing is).
    compacted: CompactRecord,
    /// Entries `compacted.index + 1 ..= last_index`.
    entries: VecDeque<EntryLoc>,
    hard_state: HardStateRecord,
    conf_state: ConfStateRecord,
    /// Where the first entry recovery saw is, and its index (a gap before it is checked
    /// once the compaction records, which follow the entries they purge, are all read).
    first_seen: Option<(u64, RecordPos)>,
    /// Where the hard state was read.
    hard_state_pos: Option<RecordPos>,
    /// The entries queued most recently, kept in memory.
    cache: EntryCache,
}

/// The newest entries as they were queued: a run of consecutive indexes ending at the last
/// one. Raft reads back what it has just committed (the leader's Ready hands committed
/// entries over, though it executed them already) and, with peers, what it sends; serving
/// those from memory saves a `pread`, a checksum and a decode per entry, and the index lock
/// is not held across a read. Trimmed by the driver once entries are applied
/// ([`RaftLog::trim_cache`]) and capped, so a log nobody trims holds a bounded amount.
#[derive(Debug, Default, Clone)]
struct EntryCache {
    entries: VecDeque<RaftEntryRecord>,
    bytes: usize,
}

/// At most this many entries, and this many bytes of their data, stay cached.
const CACHE_MAX_ENTRIES: usize = 1 << 16;
const CACHE_MAX_BYTES: usize = 64 << 20;

impl EntryCache {
    fn weight(e: &RaftEntryRecord) -> usize {
        e.data.len() + e.context.len()
    }

    /// Appends `e`; an entry that does not follow the last one starts the run anew.
    fn push(&mut self, e: RaftEntryRecord) {
        if self.entries.back().is_some_and(|b| b.index + 1 != e.index) {
            self.entries.clear();
            self.bytes = 0;
        }
        self.bytes += Self::weight(&e);
        self.entries.push_back(e);
        while self.entries.len() > CACHE_MAX_ENTRIES || self.bytes > CACHE_MAX_BYTES {
            self.pop_front();
        }
    }

    fn pop_front(&mut self) {
        if let Some(e) = self.entries.pop_front() {
            self.bytes -= Self::weight(&e);
        }
    }

    /// Forgets entries from `index` on (a truncation).
    fn truncate_from(&mut self, index: u64) {
        while self.entries.back().is_some_and(|e| e.index >= index) {
            if let Some(e) = self.entries.pop_back() {
                self.bytes -= Self::weight(&e);
            }
        }
    }

    /// Forgets entries up to and including `index`.
    fn drop_through(&mut self, index: u64) {
        while self.entries.front().is_some_and(|e| e.index <= index) {
            self.pop_front();
        }
    }

    /// The index of the first cached entry.
    fn first(&self) -> Option<u64> {
        self.entries.front().map(|e| e.index)
    }

    /// Entries `[lo, hi)` if all of them are cached.
    fn range(&self, lo: u64, hi: u64) -> Option<impl Iterator<Item = &RaftEntryRecord>> {
        let first = self.entries.front()?.index;
        let last = self.entries.back()?.index;
        if lo < first || hi > last + 1 || lo > hi {
            return None;
        }
        Some(
            self.entries
                .range((lo - first) as usize..(hi - first) as usize),
        )
    }
}

impl RaftIndex {
    /// Records what one write put in the log: `records` (entries first, then the hard
    /// state if any) at `positions`, for `entries`, and the new hard state.
    fn written(
        &mut self,
        records: &[RaftRecord],
        positions: &[RecordPos],
        entries: &[RaftEntryRecord],
        hard_state: Option<HardStateRecord>,
    ) {
        for ((rec, pos), e) in records.iter().zip(positions).zip(entries) {
            self.entries.push_back(EntryLoc {
                pos: pack_pos(pos.segment, pos.offset),
                len: raft_record::encoded_len(rec) as u32,
                term: e.term,
            });
            self.cache.push(e.clone());
        }
        if let Some(h) = hard_state {
            self.hard_state = h;
            self.hard_state_pos = positions.last().copied();
        }
    }

    fn first_index(&self) -> u64 {
        self.compacted.index + 1
    }

    fn last_index(&self) -> u64 {
        self.compacted.index + self.entries.len() as u64
    }

    fn corrupted(dir: &Path, pos: RecordPos, reason: String) -> StorageError {
        StorageError::Corrupted {
            file: segment_path(dir, pos.segment),
            offset: pos.offset,
            reason,
            dir: dir.to_path_buf(),
        }
    }

    /// Takes one Raft record recovery read at `pos` (of `len` bytes).
    pub fn observe(
        &mut self,
        dir: &Path,
        record: RaftRecord,
        pos: RecordPos,
        len: u64,
    ) -> Result<(), StorageError> {
        match record {
            RaftRecord::Entry(e) => {
                if self.first_seen.is_none() && self.entries.is_empty() {
                    // The first entry after the checkpoint: the log may start anywhere
                    // (checked against the purge point in `finish`).
                    self.first_seen = Some((e.index, pos));
                    if e.index > self.compacted.index + 1 {
                        self.compacted = CompactRecord {
                            index: e.index - 1,
                            term: 0,
                        };
                    }
                }
                let expected = self.last_index() + 1;
                if e.index != expected {
                    return Err(Self::corrupted(
                        dir,
                        pos,
                        format!(
                            "Raft entry has index {} where {expected} was expected: the log has a gap or a repeat",
                            e.index
                        ),
                    ));
                }
                let prev = self.entries.back().map_or(self.compacted.term, |l| l.term);
                if e.term < prev {
                    return Err(Self::corrupted(
                        dir,
                        pos,
                        format!(
                            "Raft entry {} has term {} after an entry of term {prev}",
                            e.index, e.term
                        ),
                    ));
                }
                self.entries.push_back(EntryLoc {
                    pos: pack_pos(pos.segment, pos.offset),
                    len: len as u32,
                    term: e.term,
                });
            }
            RaftRecord::HardState(h) => {
                self.hard_state = h;
                self.hard_state_pos = Some(pos);
            }
            RaftRecord::ConfState(c) => self.conf_state = c,
            RaftRecord::Compact(c) => {
                if self.first_seen.is_none() && self.entries.is_empty() {
                    // Before any entry: a purge point restated after a checkpoint's roll.
                    if c.index >= self.compacted.index {
                        self.compacted = c;
                    }
                    return Ok(());
                }
                if c.index < self.compacted.index && self.compacted.term == 0 {
                    // A purge point restated before a later checkpoint's cut, below where
                    // the log read now starts (the older purge point is in the checkpoint).
                    return Ok(());
                }
                if c.index < self.compacted.index {
                    return Err(Self::corrupted(
                        dir,
                        pos,
                        format!(
                            "Raft log purged to index {} after it was purged to {}",
                            c.index, self.compacted.index
                        ),
                    ));
                }
                if c.index > self.last_index() {
                    return Err(Self::corrupted(
                        dir,
                        pos,
                        format!(
                            "Raft log purged to index {} past its last entry {}",
                            c.index,
                            self.last_index()
                        ),
                    ));
                }
                let drop = (c.index - self.compacted.index) as usize;
                if drop > 0 {
                    if let Some(l) = self.entries.get(drop - 1) {
                        if l.term != c.term {
                            return Err(Self::corrupted(
                                dir,
                                pos,
                                format!(
                                    "Raft log purged to index {} of term {}, but that entry has term {}",
                                    c.index, c.term, l.term
                                ),
                            ));
                        }
                    }
                }
                self.entries.drain(..drop);
                self.compacted = c;
            }
        }
        Ok(())
    }

    /// Checks what only the whole log shows: the log starts right after its purge point,
    /// and the commit index is in the log.
    pub fn finish(&self, dir: &Path) -> Result<(), StorageError> {
        if let Some((index, pos)) = self.first_seen {
            if self.compacted.term == 0 && index > 1 && self.compacted.index == index - 1 {
                return Err(Self::corrupted(
                    dir,
                    pos,
                    format!(
                        "the Raft log starts at index {index}, but no record says the entries before it were purged (segments deleted?)"
                    ),
                ));
            }
        }
        if self.hard_state.commit > self.last_index() {
            let pos = self.hard_state_pos.unwrap_or(RecordPos {
                segment: 0,
                offset: 0,
            });
            return Err(Self::corrupted(
                dir,
                pos,
                format!(
                    "the Raft commit index {} is past the last entry {}: entries this node acknowledged are missing",
                    self.hard_state.commit,
                    self.last_index()
                ),
            ));
        }
        Ok(())
    }

    /// The records that restate the current hard state, conf state and purge point.
    fn restatement(&self) -> Vec<RaftRecord> {
        let mut recs = vec![
            RaftRecord::HardState(self.hard_state),
            RaftRecord::ConfState(self.conf_state.clone()),
        ];
        if self.compacted.index > 0 && self.compacted.term > 0 {
            recs.push(RaftRecord::Compact(self.compacted));
        }
        recs
    }

    /// (first index, last index).
    pub fn bounds(&self) -> (u64, u64) {
        (self.first_index(), self.last_index())
    }
}

/// What `rill check` reports of a data directory's Raft log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftSummary {
    /// First and last index in the log.
    pub first_index: u64,
    pub last_index: u64,
    /// Raft records read (entries and state).
    pub records: u64,
    pub hard_state: HardStateRecord,
    /// A truncation was cut short by a crash; start-up finishes it.
    pub interrupted_truncation: bool,
}

/// Reads the Raft records of `dir` as start-up does (without opening the log for writing)
/// and checks them: indexes without a gap, terms that do not go down, purges and commit
/// inside the log. `None` when the directory has no Raft record (a single-node directory).
/// Segment damage is not reported here (recovery's reader reports it); the check stops
/// where it is.
pub fn verify(dir: &Path) -> Result<Option<RaftSummary>, StorageError> {
    let mut index = RaftIndex::default();
    let mut records = 0u64;
    let rec = recovery::read_log_with(dir, &mut |r, len| {
        if let Replay::Raft { record, pos } = r {
            records += 1;
            index.observe(dir, record, pos, len)?;
        }
        Ok(())
    })?;
    let interrupted_truncation = intent::read(dir)?.is_some();
    if records == 0 && !interrupted_truncation {
        return Ok(None);
    }
    if rec.damage.as_ref().is_none_or(|d| d.torn_tail) && !interrupted_truncation {
        index.finish(dir)?;
    }
    Ok(Some(RaftSummary {
        first_index: index.first_index(),
        last_index: index.last_index(),
        records,
        hard_state: index.hard_state,
        interrupted_truncation,
    }))
}

/// The most bytes [`RaftLog::entries`] reads with one `pread`, and the most bytes of other
/// records it reads over between two entries rather than starting another `pread`.
const READ_RUN: u64 = 1 << 20;
const MAX_GAP: u64 = 4096;

/// A Raft log over a data directory's segmented log.
pub struct RaftLog {
    log: Log,
    reader: SegmentReader,
    dir: PathBuf,
    index: Mutex<RaftIndex>,
    /// Published snapshots (`storage::snapshot`).
    snapshots: super::snapshot::SnapshotStore,
}

/// Raft's persistent state as the log holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RaftState {
    pub hard_state: HardStateRecord,
    pub conf_state: ConfStateRecord,
}

impl RaftLog {
    /// Opens (recovering) the log of `dir` and rebuilds the Raft index from it. Every
    /// record goes on to `sink` too, as [`Log::open_with`] hands them over, Raft records
    /// included once the index has checked them: which entries to apply (those up to the
    /// commit index, known for certain only at the end) is the caller's decision.
    pub fn open(
        dir: &Path,
        opts: LogOptions,
        sink: &mut recovery::BatchSink<'_>,
    ) -> Result<RaftLog, StorageError> {
        super::create_dir_all_durable(dir).map_err(|e| StorageError::io(dir, e))?;
        let lock = super::lock::lock_dir(dir, super::lock::LockFile::Create)?;
        Self::open_locked(lock, dir, opts, sink)
    }

    /// As [`RaftLog::open`], with the directory's lock already taken (the server takes it
    /// before anything else touches the directory).
    pub fn open_locked(
        lock: super::lock::DirLock,
        dir: &Path,
        opts: LogOptions,
        sink: &mut recovery::BatchSink<'_>,
    ) -> Result<RaftLog, StorageError> {
        let mut index = RaftIndex::default();
        let log = Log::open_locked(lock, dir, opts, &mut |r, len| match r {
            Replay::Raft { record, pos } => {
                index.observe(dir, record.clone(), pos, len)?;
                sink(Replay::Raft { record, pos }, len)
            }
            other => sink(other, len),
        })?;
        let reader = SegmentReader::new(dir.to_path_buf());
        reader.set_written(log.written_handle());
        let raft = RaftLog {
            log,
            reader,
            dir: dir.to_path_buf(),
            index: Mutex::new(index),
            snapshots: super::snapshot::SnapshotStore::new(dir),
        };
        let checked = raft
            .finish_truncation()
            .and_then(|()| raft.index.lock().finish(dir));
        if let Err(e) = checked {
            raft.log.close();
            return Err(e);
        }
        Ok(raft)
    }

    /// Completes a truncation a crash interrupted (its intent file is still there): cuts
    /// what is left of the old suffix and restates the state it kept, unless the entries
    /// that replaced the suffix, and so the restated state written before them, are
    /// already in the log.
    fn finish_truncation(&self) -> Result<(), StorageError> {
        let Some(t) = intent::read(&self.dir)? else {
            return Ok(());
        };
        let mut i = self.index.lock();
        let first = i.first_index();
        let old_entry = t
            .index
            .checked_sub(first)
            .and_then(|k| i.entries.get(k as usize).map(|l| (k as usize, *l)));
        let replaced = match old_entry {
            Some((_, l)) if l.term != t.old_term => true,
            Some((keep, l)) => {
                if l.pos != pack_pos(t.at.segment, t.at.offset) {
                    return Err(RaftIndex::corrupted(
                        &self.dir,
                        t.at,
                        format!(
                            "an unfinished truncation of the Raft log names this position for entry {}, which is elsewhere",
                            t.index
                        ),
                    ));
                }
                for n in self.log.truncate_at(t.at)? {
                    self.reader.forget(n);
                }
                i.entries.truncate(keep);
                false
            }
            None => false,
        };
        if !replaced {
            tracing::warn!(
                "Finishing a truncation of the Raft log at index {} that a crash interrupted",
                t.index
            );
            self.log.append_raft(&t.restate)?;
            self.log.sync()?;
            for r in &t.restate {
                match r {
                    RaftRecord::HardState(h) => i.hard_state = *h,
                    RaftRecord::ConfState(c) => i.conf_state = c.clone(),
                    RaftRecord::Compact(c) if c.index > i.compacted.index => {
                        let drop = ((c.index - i.compacted.index) as usize).min(i.entries.len());
                        i.entries.drain(..drop);
                        i.compacted = *c;
                    }
                    _ => {}
                }
            }
        }
        intent::remove(&self.dir)
    }

    /// The reader the entries are read back with (a checkpoint that deletes segments tells
    /// it to forget them).
    pub fn reader(&self) -> &SegmentReader {
        &self.reader
    }

    /// The underlying log (for the records that are not Raft's).
    pub fn log(&self) -> &Log {
        &self.log
    }

    /// Writes and syncs what is queued, then stops the log (shutdown).
    pub fn close(&self) {
        self.log.close();
    }

    /// The hard and conf state (raft's `initial_state`).
    pub fn state(&self) -> RaftState {
        let i = self.index.lock();
        RaftState {
            hard_state: i.hard_state,
            conf_state: i.conf_state.clone(),
        }
    }

    /// The first index still in the log (the one after the last purged).
    pub fn first_index(&self) -> u64 {
        self.index.lock().first_index()
    }

    /// The last index in the log (the last purged one when it is empty).
    pub fn last_index(&self) -> u64 {
        self.index.lock().last_index()
    }

    /// Queues one entry that continues the log ([`RaftLog::queue`] without the lists):
    /// a leader's proposal, under the keyspace lock. Returns its LSN and position.
    pub fn queue_entry(&self, e: &RaftEntryRecord) -> Result<(u64, RecordPos), RaftLogError> {
        let mut i = self.index.lock();
        self.queue_one(&mut i, e)
    }

    fn queue_one(
        &self,
        i: &mut RaftIndex,
        e: &RaftEntryRecord,
    ) -> Result<(u64, RecordPos), RaftLogError> {
        let last = i.last_index();
        if e.index != last + 1 {
            return Err(RaftLogError::Gap {
                index: e.index,
                last_index: last,
            });
        }
        let prev = i.entries.back().map_or(i.compacted.term, |l| l.term);
        if e.term < prev {
            return Err(RaftLogError::TermGoesDown {
                index: e.index,
                term: e.term,
                prev,
            });
        }
        let rec = RaftRecord::Entry(e.clone());
        let (lsn, pos) = self.log.append_raft_one(&rec)?;
        i.entries.push_back(EntryLoc {
            pos: pack_pos(pos.segment, pos.offset),
            len: raft_record::encoded_len(&rec) as u32,
            term: e.term,
        });
        i.cache.push(e.clone());
        Ok((lsn, pos))
    }

    /// Lets the in-memory copies of entries up to `index` go (they are applied, and no
    /// peer needs them from memory); they are read from the segments if asked for again.
    pub fn trim_cache(&self, index: u64) {
        self.index.lock().cache.drop_through(index);
    }

    /// Where entry `idx`'s record ends (the first byte after it).
    pub fn entry_end(&self, idx: u64) -> Result<RecordPos, RaftLogError> {
        let len = {
            let i = self.index.lock();
            idx.checked_sub(i.first_index())
                .and_then(|k| i.entries.get(k as usize))
                .map(|l| u64::from(l.len))
        };
        let at = self.entry_pos(idx)?;
        Ok(RecordPos {
            segment: at.segment,
            offset: at.offset + len.unwrap_or(0),
        })
    }

    /// The snapshots this node publishes for replicas that need purged entries.
    pub fn snapshots(&self) -> &super::snapshot::SnapshotStore {
        &self.snapshots
    }

    /// Where entry `idx`'s record starts.
    pub fn entry_pos(&self, idx: u64) -> Result<RecordPos, RaftLogError> {
        let i = self.index.lock();
        if idx < i.first_index() {
            return Err(RaftLogError::Compacted {
                first_index: i.first_index(),
            });
        }
        match i.entries.get((idx - i.first_index()) as usize) {
            Some(l) => {
                let (segment, offset) = unpack_pos(l.pos);
                Ok(RecordPos { segment, offset })
            }
            None => Err(RaftLogError::Unavailable {
                index: idx,
                last_index: i.last_index(),
            }),
        }
    }

    /// The term of entry `idx`. The last purged entry's term is kept, so the term of
    /// `first_index - 1` is known too.
    pub fn term(&self, idx: u64) -> Result<u64, RaftLogError> {
        let i = self.index.lock();
        if idx == i.compacted.index {
            return Ok(i.compacted.term);
        }
        if idx == 0 {
            // Raft's index 0 is before every log, of term 0 (as `MemStorage` answers).
            return Ok(0);
        }
        if idx < i.compacted.index {
            return Err(RaftLogError::Compacted {
                first_index: i.first_index(),
            });
        }
        let last = i.last_index();
        match i.entries.get((idx - i.first_index()) as usize) {
            Some(l) => Ok(l.term),
            None => Err(RaftLogError::Unavailable {
                index: idx,
                last_index: last,
            }),
        }
    }

    /// Entries `[lo, hi)`, read from the segments; stops before the entry that takes the
    /// running total of `size_of` past `max_size` (but returns at least one entry), as
    /// raft's `limit_size` does.
    pub fn entries(
        &self,
        lo: u64,
        hi: u64,
        max_size: Option<u64>,
        mut size_of: impl FnMut(&RaftEntryRecord) -> u64,
    ) -> Result<Vec<RaftEntryRecord>, RaftLogError> {
        let i = self.index.lock();
        if lo < i.first_index() {
            return Err(RaftLogError::Compacted {
                first_index: i.first_index(),
            });
        }
        if hi > i.last_index() + 1 || lo > hi {
            return Err(RaftLogError::Unavailable {
                index: hi.saturating_sub(1).max(lo),
                last_index: i.last_index(),
            });
        }
        let mut out = Vec::with_capacity((hi - lo) as usize);
        let mut total = 0u64;
        // The cache holds a suffix of the log: the part of the range before it is read from
        // the segments (written by then: raft asks only for entries it was told are
        // persisted, or older), the rest is cloned from memory — which is also what serves
        // entries queued but not yet written.
        let disk_hi = i.cache.first().map_or(hi, |f| f.clamp(lo, hi));
        let loc = |idx: u64| i.entries[(idx - i.first_index()) as usize];
        let mut idx = lo;
        while idx < disk_hi {
            // Entries close together in one segment (a Ready's entries, the hard states
            // between Readies) are read with one pread of up to READ_RUN bytes: a leader
            // catching a follower up reads runs of entries.
            let (segment, offset) = unpack_pos(loc(idx).pos);
            let mut end = idx + 1;
            let mut span = u64::from(loc(idx).len);
            while end < disk_hi {
                let (s, o) = unpack_pos(loc(end).pos);
                let to = o + u64::from(loc(end).len);
                if s != segment
                    || o < offset + span
                    || o - (offset + span) > MAX_GAP
                    || to - offset > READ_RUN
                {
                    break;
                }
                span = to - offset;
                end += 1;
            }
            let run = self.read_run(RecordPos { segment, offset }, span)?;
            for k in idx..end {
                let l = loc(k);
                let at = unpack_pos(l.pos).1;
                let rel = (at - offset) as usize;
                let rec = run.slice(rel..rel + l.len as usize);
                let e = self.decode_entry(
                    k,
                    l,
                    RecordPos {
                        segment,
                        offset: at,
                    },
                    &rec,
                )?;
                total += size_of(&e);
                if !out.is_empty() && max_size.is_some_and(|m| total > m) {
                    return Ok(out);
                }
                out.push(e);
            }
            idx = end;
        }
        if let Some(cached) = i.cache.range(disk_hi, hi) {
            for e in cached {
                if let Some(m) = max_size {
                    total += size_of(e);
                    if !out.is_empty() && total > m {
                        break;
                    }
                }
                out.push(e.clone());
            }
        }
        Ok(out)
    }

    /// Reads `len` bytes of the log at `at`.
    fn read_run(&self, at: RecordPos, len: u64) -> Result<bytes::Bytes, StorageError> {
        self.reader
            .read_at(at.segment, at.offset, len as usize)
            .map(bytes::Bytes::from)
            .map_err(|e| match e {
                super::reader::ReadError::Io { path, source } => StorageError::io(path, source),
                e @ super::reader::ReadError::NotWritten { .. } => {
                    RaftIndex::corrupted(&self.dir, at, e.to_string())
                }
            })
    }

    /// Checks that the record read at `at` is intact and is entry `idx` of the map.
    fn decode_entry(
        &self,
        idx: u64,
        loc: EntryLoc,
        at: RecordPos,
        rec: &bytes::Bytes,
    ) -> Result<RaftEntryRecord, StorageError> {
        let reason = match record::decode(rec) {
            Decoded::Record { kind, payload, .. } => match raft_record::decode(kind, &payload) {
                Some(Ok(RaftRecord::Entry(e))) if e.index == idx && e.term == loc.term => {
                    return Ok(e)
                }
                Some(Ok(_)) => format!("the record is not Raft entry {idx} of term {}", loc.term),
                Some(Err(why)) => why.to_string(),
                None => format!("a record of kind {kind} where Raft entry {idx} was"),
            },
            other => format!("Raft entry {idx} unreadable: {other:?}"),
        };
        Err(RaftIndex::corrupted(&self.dir, at, reason))
    }

    /// Appends `entries` (which may overwrite a suffix from `entries[0].index`, never a
    /// committed one) and `hard_state` together, durable when this returns.
    pub fn append(
        &self,
        entries: &[RaftEntryRecord],
        hard_state: Option<HardStateRecord>,
    ) -> Result<(), RaftLogError> {
        let mut i = self.index.lock();
        if let Some(first) = entries.first() {
            if first.index < i.first_index() {
                return Err(RaftLogError::OverwritePurged {
                    index: first.index,
                    first_index: i.first_index(),
                });
            }
            if first.index > i.last_index() + 1 {
                return Err(RaftLogError::Gap {
                    index: first.index,
                    last_index: i.last_index(),
                });
            }
            // The term before the first new entry: the kept entry's, or the purge point's.
            let mut prev = match (first.index - i.first_index()).checked_sub(1) {
                Some(k) => i.entries[k as usize].term,
                None => i.compacted.term,
            };
            for (n, e) in entries.iter().enumerate() {
                if e.index != first.index + n as u64 {
                    return Err(RaftLogError::Gap {
                        index: e.index,
                        last_index: first.index + n as u64 - 1,
                    });
                }
                if e.term < prev {
                    return Err(RaftLogError::TermGoesDown {
                        index: e.index,
                        term: e.term,
                        prev,
                    });
                }
                prev = e.term;
            }
        }
        let truncated = match entries.first() {
            Some(first) if first.index <= i.last_index() => {
                self.truncate_locked(&mut i, first.index)?;
                true
            }
            _ => false,
        };
        // After a truncation the state records it cut are restated first, in the same
        // write as the entries (the intent file kept them meanwhile).
        let restated = if truncated {
            i.restatement()
        } else {
            Vec::new()
        };
        let mut records = restated.clone();
        records.extend(entries.iter().cloned().map(RaftRecord::Entry));
        if let Some(h) = hard_state {
            records.push(RaftRecord::HardState(h));
        }
        if records.is_empty() {
            return Ok(());
        }
        let (_, positions) = self.log.append_raft(&records)?;
        self.log.sync()?;
        if truncated {
            intent::remove(&self.dir)?;
        }
        i.written(
            &records[restated.len()..],
            &positions[restated.len()..],
            entries,
            hard_state,
        );
        Ok(())
    }

    /// Queues `entries`, which must continue the log (the next index, no overwrite), and
    /// `hard_state` after them, in one hold of the log's queue, without waiting for them:
    /// the caller makes them durable with a group commit ([`Log::commit`]) and only then
    /// tells raft they are persisted. This is the Raft driver's write (step D): a leader
    /// queues each proposal's entry under the keyspace lock, and the Ready loop queues the
    /// hard state, so entries and hard state share the group's one `write` + `fdatasync`.
    ///
    /// The index map shows the entries at once, so raft can ask their terms; reading one
    /// back ([`RaftLog::entries`]) before its group commit wrote it reports it unwritten,
    /// which raft never does for entries it has not been told are persisted. Returns the
    /// LSN of the last record queued and each entry's position.
    pub fn queue(
        &self,
        entries: &[RaftEntryRecord],
        hard_state: Option<HardStateRecord>,
    ) -> Result<(u64, Vec<RecordPos>), RaftLogError> {
        let mut i = self.index.lock();
        if let ([e], None) = (entries, hard_state) {
            // A leader's proposal: one entry, no lists.
            let pos = self.queue_one(&mut i, e)?;
            return Ok((pos.0, vec![pos.1]));
        }
        let mut prev = i.entries.back().map_or(i.compacted.term, |l| l.term);
        for (n, e) in entries.iter().enumerate() {
            let expected = i.last_index() + 1 + n as u64;
            if e.index != expected {
                return Err(RaftLogError::Gap {
                    index: e.index,
                    last_index: expected - 1,
                });
            }
            if e.term < prev {
                return Err(RaftLogError::TermGoesDown {
                    index: e.index,
                    term: e.term,
                    prev,
                });
            }
            prev = e.term;
        }
        let mut records: Vec<RaftRecord> = entries.iter().cloned().map(RaftRecord::Entry).collect();
        if let Some(h) = hard_state {
            records.push(RaftRecord::HardState(h));
        }
        if records.is_empty() {
            return Ok((self.log.appended_lsn(), Vec::new()));
        }
        let (lsn, positions) = self.log.append_raft(&records)?;
        i.written(&records, &positions, entries, hard_state);
        let mut positions = positions;
        positions.truncate(entries.len());
        Ok((lsn, positions))
    }

    /// Removes entries from `from` on (disk first, then the map).
    fn truncate_locked(&self, i: &mut RaftIndex, from: u64) -> Result<(), RaftLogError> {
        if from <= i.hard_state.commit {
            return Err(RaftLogError::TruncateCommitted {
                index: from,
                commit: i.hard_state.commit,
            });
        }
        let keep = (from - i.first_index()) as usize;
        let Some(loc) = i.entries.get(keep).copied() else {
            return Ok(());
        };
        let (segment, offset) = unpack_pos(loc.pos);
        let at = RecordPos { segment, offset };
        // The cut removes state records after `at` too (hard states are written with every
        // Ready): the intent keeps the current ones durable until they are restated, so a
        // crash in between never forgets a vote.
        intent::write(
            &self.dir,
            &intent::Intent {
                index: from,
                old_term: loc.term,
                at,
                restate: i.restatement(),
            },
        )?;
        let deleted = match self.log.truncate_at(at) {
            Ok(deleted) => deleted,
            Err(e) => {
                // Refused before anything was cut: the intent must not make start-up try
                // again. A failure midway poisons the log and leaves it for start-up.
                if !self.log.is_poisoned() {
                    intent::remove(&self.dir)?;
                }
                return Err(e.into());
            }
        };
        for n in deleted {
            self.reader.forget(n);
        }
        i.entries.truncate(keep);
        i.cache.truncate_from(from);
        Ok(())
    }

    /// Persists a new hard state.
    pub fn set_hard_state(&self, hard_state: HardStateRecord) -> Result<(), RaftLogError> {
        self.append(&[], Some(hard_state))
    }

    /// Persists a new conf state (raft's `initial_state` returns it after a restart).
    pub fn set_conf_state(&self, conf_state: ConfStateRecord) -> Result<(), RaftLogError> {
        let mut i = self.index.lock();
        self.log
            .append_raft(&[RaftRecord::ConfState(conf_state.clone())])?;
        self.log.sync()?;
        i.conf_state = conf_state;
        Ok(())
    }

    /// Purges the entries before `compact_index` (raft-rs's `MemStorage::compact`):
    /// `first_index` becomes `compact_index`. Nothing happens when it is not above
    /// `first_index`. Refused past `applied + 1` ("purge only below applied") and past
    /// `last_index + 1`.
    pub fn compact(&self, compact_index: u64, applied: u64) -> Result<(), RaftLogError> {
        let mut i = self.index.lock();
        if compact_index <= i.first_index() {
            return Ok(());
        }
        if compact_index > i.last_index() + 1 {
            return Err(RaftLogError::PurgeTooFar {
                index: compact_index,
                limit: i.last_index() + 1,
                why: "past the last entry",
            });
        }
        if compact_index > applied + 1 {
            return Err(RaftLogError::PurgeTooFar {
                index: compact_index,
                limit: applied + 1,
                why: "not applied yet",
            });
        }
        let drop = (compact_index - i.first_index()) as usize;
        let term = i.entries[drop - 1].term;
        let c = CompactRecord {
            index: compact_index - 1,
            term,
        };
        self.log.append_raft(&[RaftRecord::Compact(c)])?;
        self.log.sync()?;
        i.entries.drain(..drop);
        i.cache.drop_through(c.index);
        i.compacted = c;
        Ok(())
    }

    /// Re-appends the hard state, conf state and purge point, so a log whose older segments
    /// a checkpoint removes still has them: call right after a checkpoint's roll, before
    /// the checkpoint is published (step I).
    pub fn restate(&self) -> Result<(), RaftLogError> {
        let i = self.index.lock();
        self.log.append_raft(&i.restatement())?;
        self.log.sync()?;
        Ok(())
    }
}

/// Fixtures shared by the Raft log's tests here and in `cluster::raft::storage`.
#[cfg(test)]
pub(crate) mod test_support {
    use super::*;
    use crate::storage::log::FsyncPolicy;

    /// Tiny segments (1 KiB), so a few entries already span several; fsync always.
    pub fn opts() -> LogOptions {
        LogOptions {
            segment_size: 1024,
            policy: FsyncPolicy::Always,
        }
    }

    /// An empty directory for test `name` of suite `suite`, unique to this process.
    pub fn tmp(suite: &str, name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("rill-{suite}-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::opts;
    use super::*;
    use crate::storage::log::FsyncPolicy;
    use crate::storage::raft_record::EntryKind;
    use bytes::Bytes;

    fn tmp(name: &str) -> PathBuf {
        super::test_support::tmp("raftlog", name)
    }

    fn open(dir: &Path) -> RaftLog {
        RaftLog::open(dir, opts(), &mut |_, _| Ok(())).expect("open")
    }

    /// Queued entries are readable at once (from memory) before their group commit wrote
    /// them, the same after it, and from the segments once trimmed or after a reopen; a
    /// queue that does not continue the log is refused and changes nothing.
    #[test]
    fn queued_entries_are_read_from_memory_then_from_the_segments() {
        let dir = tmp("queue");
        let log = open(&dir);
        let (lsn, pos) = log.queue(&[ent(1, 1), ent(2, 1)], None).expect("queue");
        assert_eq!(pos.len(), 2);
        assert!(log.log().durable_lsn() < lsn, "queued, not yet written");
        assert_eq!(log.last_index(), 2);
        assert_eq!(log.term(2).expect("term"), 1);
        let (_, p3) = log.queue_entry(&ent(3, 2)).expect("queue one");
        assert!(p3.offset > 0);
        let got = log.entries(1, 4, None, |_| 0).expect("from memory");
        assert_eq!(got, vec![ent(1, 1), ent(2, 1), ent(3, 2)]);
        assert!(matches!(
            log.queue_entry(&ent(5, 2)),
            Err(RaftLogError::Gap { .. })
        ));
        assert!(matches!(
            log.queue(&[ent(4, 1)], None),
            Err(RaftLogError::TermGoesDown { .. })
        ));
        assert_eq!(log.last_index(), 3);
        log.log().commit().expect("group commit");
        log.trim_cache(3);
        let got = log.entries(1, 4, None, |_| 0).expect("from the segments");
        assert_eq!(got, vec![ent(1, 1), ent(2, 1), ent(3, 2)]);
        // Size limits hold on both paths: at least one entry, then up to the limit.
        log.queue_entry(&ent(4, 2)).expect("queue");
        assert_eq!(
            log.entries(3, 5, Some(1), |_| 10).expect("limited").len(),
            1
        );
        assert_eq!(
            log.entries(4, 5, Some(1), |_| 10).expect("limited").len(),
            1
        );
        log.log().commit().expect("group commit");
        log.close();
        drop(log);
        let log = open(&dir);
        let got = log.entries(1, 5, None, |_| 0).expect("after reopen");
        assert_eq!(got, vec![ent(1, 1), ent(2, 1), ent(3, 2), ent(4, 2)]);
        log.close();
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn ent(index: u64, term: u64) -> RaftEntryRecord {
        RaftEntryRecord {
            term,
            index,
            kind: EntryKind::Normal,
            context: Bytes::new(),
            data: Bytes::from(format!(
                "entry {index} of term {term} {}",
                "x".repeat(index as usize % 50)
            )),
        }
    }

    fn ents(from: u64, to: u64, term: u64) -> Vec<RaftEntryRecord> {
        (from..=to).map(|i| ent(i, term)).collect()
    }

    fn all(log: &RaftLog) -> Vec<RaftEntryRecord> {
        log.entries(log.first_index(), log.last_index() + 1, None, |_| 0)
            .expect("entries")
    }

    fn hs(term: u64, commit: u64) -> HardStateRecord {
        HardStateRecord {
            term,
            vote: 1,
            commit,
        }
    }

    #[test]
    fn entries_and_state_survive_a_reopen_across_segments() {
        let dir = tmp("reopen");
        let log = open(&dir);
        assert_eq!((log.first_index(), log.last_index()), (1, 0));
        assert_eq!(log.term(0).unwrap(), 0);
        log.append(&ents(1, 60, 1), Some(hs(1, 30))).unwrap();
        log.set_conf_state(ConfStateRecord {
            voters: vec![1, 2, 3],
            ..Default::default()
        })
        .unwrap();
        log.close();
        drop(log);
        assert!(recovery::list_segments(&dir).unwrap().len() > 3);
        let log = open(&dir);
        assert_eq!((log.first_index(), log.last_index()), (1, 60));
        assert_eq!(all(&log), ents(1, 60, 1));
        assert_eq!(log.state().hard_state, hs(1, 30));
        assert_eq!(log.state().conf_state.voters, vec![1, 2, 3]);
        // max_size: at least one entry, then stop before the one that passes the limit.
        let some = log
            .entries(5, 20, Some(25), |e| e.data.len() as u64)
            .unwrap();
        assert_eq!(some.len(), 1);
        let some = log.entries(5, 20, Some(0), |_| 10).unwrap();
        assert_eq!(some.len(), 1);
        let some = log.entries(5, 20, Some(30), |_| 10).unwrap();
        assert_eq!(some.len(), 3);
        assert!(matches!(
            log.entries(5, 62, None, |_| 0),
            Err(RaftLogError::Unavailable { .. })
        ));
        assert!(matches!(
            log.term(61),
            Err(RaftLogError::Unavailable { .. })
        ));
        log.close();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_conflicting_suffix_is_cut_across_segments_and_never_below_commit() {
        let dir = tmp("truncate");
        let log = open(&dir);
        log.append(&ents(1, 80, 1), Some(hs(1, 10))).unwrap();
        let segs_before = recovery::list_segments(&dir).unwrap().len();
        assert!(matches!(
            log.append(&ents(10, 12, 2), None),
            Err(RaftLogError::TruncateCommitted {
                index: 10,
                commit: 10
            })
        ));
        assert!(matches!(
            log.append(&ents(82, 83, 2), None),
            Err(RaftLogError::Gap { .. })
        ));
        assert!(matches!(
            log.append(&ents(81, 81, 0), None),
            Err(RaftLogError::TermGoesDown { .. })
        ));
        // Nothing was changed by the refusals.
        assert_eq!(all(&log), ents(1, 80, 1));
        log.append(&ents(15, 20, 2), Some(hs(2, 10))).unwrap();
        assert_eq!(log.last_index(), 20);
        let mut want = ents(1, 14, 1);
        want.extend(ents(15, 20, 2));
        assert_eq!(all(&log), want);
        assert!(recovery::list_segments(&dir).unwrap().len() < segs_before);
        // The log goes on after the cut, and a restart sees exactly that.
        log.append(&ents(21, 40, 2), None).unwrap();
        want.extend(ents(21, 40, 2));
        log.close();
        drop(log);
        let log = open(&dir);
        assert_eq!(all(&log), want);
        assert_eq!(log.state().hard_state, hs(2, 10));
        // A cut in the newest segment, then one at its very first record.
        log.append(&ents(40, 41, 3), None).unwrap();
        want.truncate(39);
        want.extend(ents(40, 41, 3));
        assert_eq!(all(&log), want);
        log.close();
        drop(log);
        assert_eq!(all(&open(&dir)), want);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn purge_moves_first_index_only_below_applied_and_survives_a_reopen() {
        let dir = tmp("purge");
        let log = open(&dir);
        log.append(&ents(1, 30, 1), Some(hs(1, 25))).unwrap();
        log.append(&ents(31, 40, 2), None).unwrap();
        assert!(matches!(
            log.compact(22, 20),
            Err(RaftLogError::PurgeTooFar { .. })
        ));
        assert!(matches!(
            log.compact(42, 100),
            Err(RaftLogError::PurgeTooFar { .. })
        ));
        log.compact(21, 20).unwrap();
        log.compact(5, 20).unwrap(); // below first_index: nothing to do
        let check = |log: &RaftLog| {
            assert_eq!((log.first_index(), log.last_index()), (21, 40));
            assert_eq!(log.term(20).unwrap(), 1);
            assert!(matches!(log.term(19), Err(RaftLogError::Compacted { .. })));
            assert!(matches!(
                log.entries(20, 22, None, |_| 0),
                Err(RaftLogError::Compacted { .. })
            ));
            assert_eq!(log.entries(21, 41, None, |_| 0).unwrap()[10], ent(31, 2));
            assert!(matches!(
                log.append(&ents(20, 21, 3), None),
                Err(RaftLogError::OverwritePurged { .. })
            ));
        };
        check(&log);
        log.close();
        drop(log);
        let log = open(&dir);
        check(&log);
        // Purging everything: first_index passes last_index, and the log goes on from there.
        log.compact(41, 40).unwrap();
        assert_eq!((log.first_index(), log.last_index()), (41, 40));
        assert_eq!(log.term(40).unwrap(), 2);
        log.append(&ents(41, 42, 2), None).unwrap();
        log.close();
        drop(log);
        let log = open(&dir);
        assert_eq!((log.first_index(), log.last_index()), (41, 42));
        assert_eq!(all(&log), ents(41, 42, 2));
        log.close();
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Recovery after a Raft checkpoint reads from the segment of the first entry kept: a
    /// purge point an older checkpoint restated later in the log, below where the log read
    /// now starts, is stale and ignored; a purge point that goes back below a confirmed
    /// one is still corruption.
    #[test]
    fn a_stale_purge_point_restated_before_a_later_cut_is_ignored_on_recovery() {
        let dir = tmp("stale-purge");
        let at = |offset| RecordPos { segment: 7, offset };
        let compact = |index, term| RaftRecord::Compact(CompactRecord { index, term });
        let mut i = RaftIndex::default();
        for (k, idx) in (100..=130).enumerate() {
            i.observe(
                &dir,
                RaftRecord::Entry(ent(idx, 2)),
                at(k as u64 * 100),
                100,
            )
            .unwrap();
        }
        // An older checkpoint's purge point, restated after the entries read first.
        i.observe(&dir, compact(50, 1), at(9000), 20).unwrap();
        assert_eq!(i.bounds(), (100, 130));
        // The newest checkpoint's purge point confirms where the log starts.
        i.observe(&dir, compact(119, 2), at(9100), 20).unwrap();
        assert_eq!(i.bounds(), (120, 130));
        i.finish(&dir).unwrap();
        // Below a confirmed purge point, a purge point is damage.
        let err = i.observe(&dir, compact(60, 1), at(9200), 20).unwrap_err();
        assert!(
            err.to_string()
                .contains("purged to index 60 after it was purged to 119"),
            "{err}"
        );
    }

    #[test]
    fn a_vote_written_after_the_cut_survives_the_truncation() {
        let dir = tmp("vote");
        let log = open(&dir);
        log.append(&ents(1, 30, 1), Some(hs(1, 5))).unwrap();
        log.set_conf_state(ConfStateRecord {
            voters: vec![1, 2, 3],
            ..Default::default()
        })
        .unwrap();
        log.compact(3, 5).unwrap();
        let voted = HardStateRecord {
            term: 2,
            vote: 3,
            commit: 5,
        };
        log.set_hard_state(voted).unwrap();
        // All of those records are after entry 10's: the cut removes them from the files.
        log.append(&ents(10, 11, 2), None).unwrap();
        log.close();
        drop(log);
        let log = open(&dir);
        assert_eq!(log.state().hard_state, voted);
        assert_eq!(log.state().conf_state.voters, vec![1, 2, 3]);
        assert_eq!((log.first_index(), log.last_index()), (3, 11));
        assert_eq!(log.term(2).unwrap(), 1);
        assert!(!recovery::log_dir(&dir)
            .join("raft-truncate.intent")
            .exists());
        log.close();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_cut_refused_before_it_starts_leaves_no_intent() {
        let dir = tmp("refusedcut");
        let log = open(&dir);
        log.append(&ents(1, 60, 1), None).unwrap();
        let at = position_of(&log, 2);
        // As if a checkpoint had deleted the segment (the caller's bug): nothing is cut.
        std::fs::remove_file(segment_path(&dir, at.segment)).unwrap();
        assert!(matches!(
            log.append(&ents(2, 3, 2), None),
            Err(RaftLogError::Storage(StorageError::Io { .. }))
        ));
        assert!(!log.log().is_poisoned());
        assert!(!recovery::log_dir(&dir)
            .join("raft-truncate.intent")
            .exists());
        assert_eq!(log.last_index(), 60);
        log.close();
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Where each entry's record is, read back from the files.
    fn position_of(log: &RaftLog, idx: u64) -> RecordPos {
        let i = log.index.lock();
        let (segment, offset) = unpack_pos(i.entries[(idx - i.first_index()) as usize].pos);
        RecordPos { segment, offset }
    }

    fn flip(dir: &Path, at: RecordPos, byte: u64) {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(segment_path(dir, at.segment))
            .unwrap();
        let mut b = [0u8; 1];
        f.read_exact_at(&mut b, at.offset + byte).unwrap();
        b[0] ^= 0x04;
        f.write_all_at(&b, at.offset + byte).unwrap();
    }

    #[test]
    fn a_flipped_bit_in_an_entry_is_reported_with_file_and_offset() {
        let dir = tmp("flip");
        let log = open(&dir);
        log.append(&ents(1, 40, 1), Some(hs(1, 40))).unwrap();
        // An entry in an older segment, and one in the newest with records after it.
        let older = position_of(&log, 3);
        let newest = position_of(&log, 39);
        assert!(older.segment < newest.segment);
        log.close();
        drop(log);
        for (at, byte) in [(older, 30), (newest, 12)] {
            flip(&dir, at, byte);
            match RaftLog::open(&dir, opts(), &mut |_, _| Ok(())) {
                Err(StorageError::Corrupted { file, offset, .. }) => {
                    assert_eq!(file, segment_path(&dir, at.segment));
                    assert_eq!(offset, at.offset);
                }
                Err(e) => panic!("{e}"),
                Ok(_) => panic!("a damaged entry was accepted"),
            }
            flip(&dir, at, byte);
        }
        // Damage found after start-up, by a read, is reported the same way.
        let log = open(&dir);
        flip(&dir, older, 20);
        match log.entries(1, 10, None, |_| 0) {
            Err(RaftLogError::Storage(StorageError::Corrupted { file, offset, .. })) => {
                assert_eq!(file, segment_path(&dir, older.segment));
                assert_eq!(offset, older.offset);
            }
            other => panic!("{other:?}"),
        }
        log.close();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_torn_last_write_is_cut_at_every_offset_and_the_log_goes_on() {
        let dir = tmp("torn");
        let big = LogOptions {
            segment_size: 1 << 20,
            policy: FsyncPolicy::Always,
        };
        let log = RaftLog::open(&dir, big, &mut |_, _| Ok(())).unwrap();
        log.append(&ents(1, 3, 1), Some(hs(1, 2))).unwrap();
        log.append(&ents(4, 5, 1), Some(hs(1, 4))).unwrap();
        let ends = [position_of(&log, 4), position_of(&log, 5)];
        let from = ends[0].offset;
        log.close();
        drop(log);
        let path = segment_path(&dir, ends[0].segment);
        let full = std::fs::read(&path).unwrap();
        let end_of = |idx: usize| -> u64 {
            // Where entry 4 + idx's record ends: the next record's start, or the hard state's.
            if idx == 0 {
                ends[1].offset
            } else {
                full.len() as u64 - (record::HEADER_LEN as u64 + 24)
            }
        };
        for cut in from..full.len() as u64 {
            std::fs::write(&path, &full[..cut as usize]).unwrap();
            let log = RaftLog::open(&dir, big, &mut |_, _| Ok(())).expect("a torn tail opens");
            let complete = (0..2).filter(|&k| end_of(k) <= cut).count() as u64;
            assert_eq!(log.last_index(), 3 + complete, "cut at {cut}");
            assert_eq!(all(&log), ents(1, 3 + complete, 1), "cut at {cut}");
            assert_eq!(log.state().hard_state, hs(1, 2), "cut at {cut}");
            log.close();
        }
        // And the log goes on after the cut.
        let log = RaftLog::open(&dir, big, &mut |_, _| Ok(())).unwrap();
        log.append(&ents(5, 6, 2), Some(hs(2, 5))).unwrap();
        log.close();
        drop(log);
        let log = RaftLog::open(&dir, big, &mut |_, _| Ok(())).unwrap();
        let mut want = ents(1, 4, 1);
        want.extend(ents(5, 6, 2));
        assert_eq!(all(&log), want);
        assert_eq!(log.state().hard_state, hs(2, 5));
        log.close();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_flip_of_any_byte_of_an_older_entry_is_damage_at_its_offset() {
        let dir = tmp("everyflip");
        let log = open(&dir);
        log.append(&ents(1, 30, 1), Some(hs(1, 30))).unwrap();
        let at = position_of(&log, 2);
        let len = log.index.lock().entries[1].len as u64;
        log.close();
        drop(log);
        for byte in 0..len {
            flip(&dir, at, byte);
            match RaftLog::open(&dir, opts(), &mut |_, _| Ok(())) {
                Err(StorageError::Corrupted { file, offset, .. }) => {
                    assert_eq!(file, segment_path(&dir, at.segment), "byte {byte}");
                    assert_eq!(offset, at.offset, "byte {byte}");
                }
                Err(e) => panic!("byte {byte}: {e}"),
                Ok(_) => panic!("byte {byte}: a damaged entry was accepted"),
            }
            flip(&dir, at, byte);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_gap_or_a_lost_commit_in_the_records_is_corruption() {
        // Written below the Raft log's checks, as a bug or a moved block would.
        let dir = tmp("gap");
        let (log, _) = Log::open(&dir, opts()).unwrap();
        let recs: Vec<RaftRecord> = [1, 2, 4]
            .into_iter()
            .map(|i| RaftRecord::Entry(ent(i, 1)))
            .collect();
        let (_, pos) = log.append_raft(&recs).unwrap();
        log.sync().unwrap();
        log.close();
        drop(log);
        match RaftLog::open(&dir, opts(), &mut |_, _| Ok(())) {
            Err(StorageError::Corrupted {
                file,
                offset,
                reason,
                ..
            }) => {
                assert_eq!(file, segment_path(&dir, pos[2].segment));
                assert_eq!(offset, pos[2].offset);
                assert!(reason.contains("index 4 where 3"), "{reason}");
            }
            other => panic!("{:?}", other.err()),
        }
        let _ = std::fs::remove_dir_all(&dir);
        let (log, _) = Log::open(&dir, opts()).unwrap();
        let recs = vec![
            RaftRecord::Entry(ent(1, 1)),
            RaftRecord::HardState(hs(1, 2)),
        ];
        log.append_raft(&recs).unwrap();
        log.sync().unwrap();
        log.close();
        drop(log);
        match RaftLog::open(&dir, opts(), &mut |_, _| Ok(())) {
            Err(StorageError::Corrupted { reason, .. }) => {
                assert!(reason.contains("commit index 2"), "{reason}")
            }
            other => panic!("{:?}", other.err()),
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Runs the first `steps` file operations of a truncation of segments `s..=n` at
    /// (`s`, `offset`), as `Log::truncate_at` does them: each state a crash can leave.
    fn partial_truncation(dir: &Path, s: u64, n: u64, offset: u64, steps: usize) {
        let header = recovery::SEGMENT_HEADER_LEN as u64;
        let cut = |k: u64, len: u64| {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(segment_path(dir, k))
                .unwrap();
            f.set_len(len).unwrap();
        };
        let mut done = 0;
        for k in (s + 1..=n).rev() {
            for step in 0..3 {
                if done == steps {
                    return;
                }
                match step {
                    0 => cut(k, header),
                    1 => cut(k - 1, if k - 1 == s { offset } else { header }),
                    _ => std::fs::remove_file(segment_path(dir, k)).unwrap(),
                }
                done += 1;
            }
        }
    }

    #[test]
    fn every_state_a_crash_leaves_mid_truncation_opens() {
        let dir = tmp("midcut");
        let log = open(&dir);
        log.append(&ents(1, 60, 1), Some(hs(1, 5))).unwrap();
        let at = position_of(&log, 10);
        let last = recovery::list_segments(&dir).unwrap().last().unwrap().0;
        assert!(last >= at.segment + 3);
        log.close();
        drop(log);
        let copy = tmp("midcut-copy");
        let snapshot = |from: &Path, to: &Path| {
            let _ = std::fs::remove_dir_all(to);
            std::fs::create_dir_all(recovery::log_dir(to)).unwrap();
            for (_, p) in recovery::list_segments(from).unwrap() {
                std::fs::copy(&p, recovery::log_dir(to).join(p.file_name().unwrap())).unwrap();
            }
        };
        let voted = hs(2, 5);
        for steps in 0..=3 * (last - at.segment) as usize {
            snapshot(&dir, &copy);
            // As `truncate_locked` leaves it: the intent, then some of the cut's steps.
            intent::write(
                &copy,
                &intent::Intent {
                    index: 10,
                    old_term: 1,
                    at,
                    restate: vec![RaftRecord::HardState(voted)],
                },
            )
            .unwrap();
            partial_truncation(&copy, at.segment, last, at.offset, steps);
            // `rill check` sees the interrupted cut and leaves it to start-up.
            let summary = verify(&copy).unwrap().unwrap();
            assert!(summary.interrupted_truncation, "after {steps} steps");
            let log = open(&copy);
            // The cut is finished, and the state it could have cut is restated.
            assert_eq!(all(&log), ents(1, 9, 1), "after {steps} steps");
            assert_eq!(log.state().hard_state, voted, "after {steps} steps");
            log.append(&ents(10, 12, 2), None).unwrap();
            log.close();
            drop(log);
            // An intent left behind after the entries that replaced the suffix were
            // durable (a crash before its removal) cuts nothing.
            intent::write(
                &copy,
                &intent::Intent {
                    index: 10,
                    old_term: 1,
                    at,
                    restate: vec![RaftRecord::HardState(hs(1, 5))],
                },
            )
            .unwrap();
            let log = open(&copy);
            let mut want = ents(1, 9, 1);
            want.extend(ents(10, 12, 2));
            assert_eq!(all(&log), want, "after {steps} steps");
            assert_eq!(log.state().hard_state, voted, "after {steps} steps");
            log.close();
        }
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(&copy);
    }

    /// Operations with arbitrary arguments, valid or not.
    #[derive(Debug, Clone)]
    enum Attempt {
        Append { start: u64, n: u64 },
        Commit { to: u64 },
        Compact { to: u64, applied: u64 },
        Reopen,
    }

    fn attempt() -> impl proptest::strategy::Strategy<Value = Attempt> {
        use proptest::prelude::*;
        prop_oneof![
            5 => (0u64..40, 1u64..5).prop_map(|(start, n)| Attempt::Append { start, n }),
            2 => (0u64..40).prop_map(|to| Attempt::Commit { to }),
            2 => (0u64..40, 0u64..40).prop_map(|(to, applied)| Attempt::Compact { to, applied }),
            1 => Just(Attempt::Reopen),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 32, ..Default::default() })]

        /// The invariants, against arbitrary requests: no hole, truncation only above the
        /// commit index, purge only below the applied index and within the log. A refused
        /// request changes nothing, on disk either (checked across reopens).
        #[test]
        fn refused_requests_are_exactly_the_invalid_ones_and_change_nothing(
            attempts in proptest::collection::vec(attempt(), 1..40)
        ) {
            let dir = tmp("invariants");
            let mut log = open(&dir);
            // The model: terms of entries first.. and the commit index.
            let (mut first, mut terms, mut commit) = (1u64, Vec::<u64>::new(), 0u64);
            let mut term = 1;
            for a in attempts {
                let last = first + terms.len() as u64 - 1;
                match a {
                    Attempt::Append { start, n } => {
                        term += 1;
                        let r = log.append(&ents(start, start + n - 1, term), None);
                        let valid = start >= first && start <= last + 1 && (start > last || start > commit);
                        proptest::prop_assert_eq!(r.is_ok(), valid, "{:?}", r.err());
                        if valid {
                            terms.truncate((start - first) as usize);
                            terms.extend(std::iter::repeat_n(term, n as usize));
                        }
                    }
                    Attempt::Commit { to } => {
                        commit = commit.max(to.min(last));
                        log.set_hard_state(hs(term, commit)).unwrap();
                    }
                    Attempt::Compact { to, applied } => {
                        let r = log.compact(to, applied);
                        let valid = to <= first || (to <= last + 1 && to <= applied + 1);
                        proptest::prop_assert_eq!(r.is_ok(), valid, "{:?}", r.err());
                        if valid && to > first {
                            terms.drain(..(to - first) as usize);
                            first = to;
                        }
                    }
                    Attempt::Reopen => {
                        log.close();
                        drop(log);
                        log = open(&dir);
                    }
                }
                let last = first + terms.len() as u64 - 1;
                proptest::prop_assert_eq!((log.first_index(), log.last_index()), (first, last));
                let got: Vec<u64> = all(&log).iter().map(|e| e.term).collect();
                proptest::prop_assert_eq!(&got, &terms);
                proptest::prop_assert_eq!(log.state().hard_state.commit, commit);
            }
            log.close();
            drop(log);
            let log = open(&dir);
            let got: Vec<u64> = all(&log).iter().map(|e| e.term).collect();
            proptest::prop_assert_eq!(&got, &terms);
            log.close();
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

/// The truncation intent: a small file, written (and renamed into place, durably) before a
/// truncation cuts anything, that keeps the hard state, conf state and purge point the cut
/// may remove, and says where the cut is. Removed once the state is restated in the log.
///
/// ```text
/// "RILLRTI1" | u64 index | u64 old term | u64 segment | u64 offset | records… | u32 crc32c
/// ```
///
/// The records are Raft records framed as in a segment; the checksum covers everything
/// before it. A file that fails its checksum is damage (the rename made it whole).
mod intent {
    use std::fs;
    use std::io::Write;
    use std::path::{Path, PathBuf};

    use bytes::{BufMut, Bytes, BytesMut};

    use super::super::log::RecordPos;
    use super::super::raft_record::{self, RaftRecord};
    use super::super::record::{self, Decoded};
    use super::super::recovery::log_dir;
    use super::super::StorageError;

    const MAGIC: &[u8; 8] = b"RILLRTI1";

    pub(super) struct Intent {
        pub index: u64,
        pub old_term: u64,
        pub at: RecordPos,
        pub restate: Vec<RaftRecord>,
    }

    fn path(dir: &Path) -> PathBuf {
        log_dir(dir).join("raft-truncate.intent")
    }

    fn sync_dir(dir: &Path) -> Result<(), StorageError> {
        let d = log_dir(dir);
        fs::File::open(&d)
            .and_then(|f| f.sync_all())
            .map_err(|e| StorageError::io(&d, e))
    }

    pub(super) fn write(dir: &Path, t: &Intent) -> Result<(), StorageError> {
        let mut buf = BytesMut::new();
        buf.put_slice(MAGIC);
        buf.put_u64_le(t.index);
        buf.put_u64_le(t.old_term);
        buf.put_u64_le(t.at.segment);
        buf.put_u64_le(t.at.offset);
        for r in &t.restate {
            raft_record::encode(r, &mut buf);
        }
        let crc = crc32c::crc32c(&buf);
        buf.put_u32_le(crc);
        let tmp = path(dir).with_extension("tmp");
        let mut f = fs::File::create(&tmp).map_err(|e| StorageError::io(&tmp, e))?;
        f.write_all(&buf)
            .and_then(|()| f.sync_all())
            .map_err(|e| StorageError::io(&tmp, e))?;
        fs::rename(&tmp, path(dir)).map_err(|e| StorageError::io(path(dir), e))?;
        sync_dir(dir)
    }

    pub(super) fn read(dir: &Path) -> Result<Option<Intent>, StorageError> {
        let p = path(dir);
        let data = match fs::read(&p) {
            Ok(d) => Bytes::from(d),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StorageError::io(&p, e)),
        };
        let damaged = |offset: usize, reason: &str| StorageError::Corrupted {
            file: p.clone(),
            offset: offset as u64,
            reason: reason.to_string(),
            dir: dir.to_path_buf(),
        };
        if data.len() < 44 || &data[..8] != MAGIC {
            return Err(damaged(0, "not a Raft truncation intent"));
        }
        let body = data.len() - 4;
        let stored = u32::from_le_bytes(data[body..].try_into().unwrap_or([0; 4]));
        if crc32c::crc32c(&data[..body]) != stored {
            return Err(damaged(body, "checksum mismatch"));
        }
        let u64_at = |at: usize| u64::from_le_bytes(data[at..at + 8].try_into().unwrap_or([0; 8]));
        let mut restate = Vec::new();
        let mut off = 40;
        while off < body {
            match record::decode(&data.slice(off..body)) {
                Decoded::Record { kind, payload, len } => {
                    match raft_record::decode(kind, &payload) {
                        Some(Ok(r)) => restate.push(r),
                        _ => return Err(damaged(off, "not a Raft state record")),
                    }
                    off += len;
                }
                _ => return Err(damaged(off, "record cut short")),
            }
        }
        Ok(Some(Intent {
            index: u64_at(8),
            old_term: u64_at(16),
            at: RecordPos {
                segment: u64_at(24),
                offset: u64_at(32),
            },
            restate,
        }))
    }

    pub(super) fn remove(dir: &Path) -> Result<(), StorageError> {
        // A temporary file a crash left before its rename is no intent; it goes too.
        let _ = fs::remove_file(path(dir).with_extension("tmp"));
        match fs::remove_file(path(dir)) {
            Ok(()) => sync_dir(dir),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StorageError::io(path(dir), e)),
        }
    }
}
