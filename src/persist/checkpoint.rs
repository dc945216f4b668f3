//! Checkpoints from the keyspace's side: the live keyspace's metadata written
//! as one file, so the log before it need not be replayed, and compaction, which
//! moves the payloads that keep old segments alive so those segments can go.
//!
//! Per stream: its index nodes (entry IDs and where their payloads are in the log —
//! never the payloads), then its counters and groups with every consumer and pending
//! entry, as binary `State` records (`replay::apply_state` reads them). Tombstones,
//! consumers' seen/active times and pending entries of deleted entries survive as they
//! are. Plain keys are written as `SetString` ops, streams' TTLs as `ExpireAt`. A stream's
//! IDMP history, limits and counters follow as one optional `IDMP` state record, and each
//! group's XNACK zone (Redis 8.8) as one optional `NACK` record per group that has one,
//! and a stream's own broker policy (`RILL.POLICY`) as one optional `POLICY` record.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use bytes::Bytes;

use super::replay::state_tag;
use crate::core::Shared;
use crate::engine::codec::Put;
use crate::engine::id::StreamId;
use crate::engine::keyspace::ValueRef;
use crate::engine::op::{LoggedOp, Op};
use crate::engine::stream::Stream;
use crate::storage::checkpoint::CheckpointWriter;
use crate::storage::log::unpack_pos;
use crate::storage::StorageError;

/// Commands per batch record in a checkpoint (bounded so no record gets huge).
const BATCH: usize = 512;

/// Bytes of IDMP producers per state record (a producer is never split): IIDs are any
/// length and a stream may have many producers, and a record is at most 4 GiB.
const IDMP_RECORD_BYTES: usize = 16 << 20;

/// Index nodes per state record (about 100 entries and 3 KiB each by default).
const NODES_PER_RECORD: usize = 1024;

/// Whether anything was logged since the last checkpoint (or since start).
pub fn log_grew_since_checkpoint(shared: &Shared, log: &crate::storage::Log) -> bool {
    log.counters().0 > shared.written_at_checkpoint.load(Ordering::SeqCst)
}

fn state_header(tag: u8, db: usize, key: &Bytes) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + key.len());
    out.put_u8v(tag);
    out.put_u32v(db as u32);
    out.put_bytes(key);
    out
}

/// Writes `stream` as state records and adds the bytes of its live payloads to
/// `usage` (per segment).
fn stream_state(
    db: usize,
    key: &Bytes,
    s: &Stream,
    w: &mut CheckpointWriter,
    usage: &mut BTreeMap<u64, u64>,
) {
    let mut from = Some(StreamId::MIN);
    while let Some(start) = from {
        let mut rec = state_header(state_tag::NODES, db, key);
        from = s.index().encode_nodes(start, NODES_PER_RECORD, &mut rec);
        w.add_state(&rec);
    }
    s.index().for_each_payload(|_, h| {
        if !h.is_resident() {
            *usage.entry(unpack_pos(h.at).0).or_default() += u64::from(h.len);
        }
    });
    let mut rec = state_header(state_tag::META, db, key);
    s.encode_meta(&mut rec);
    w.add_state(&rec);
    if !s.idmp().is_default() {
        let header = state_header(state_tag::IDMP, db, key);
        for rec in s.idmp().encode_chunks(&header, IDMP_RECORD_BYTES) {
            w.add_state(&rec);
        }
    }
    if let Some(p) = s.policy() {
        let mut rec = state_header(state_tag::POLICY, db, key);
        p.encode(&mut rec);
        w.add_state(&rec);
    }
    for (name, g) in s.groups.iter() {
        if g.nacked_count() > 0 {
            let mut rec = state_header(state_tag::NACK, db, key);
            rec.put_bytes(name);
            g.encode_nack_zone(&mut rec);
            w.add_state(&rec);
        }
    }
}

/// A key's value as the checkpoint saw it under the lock.
enum Snapshot {
    Stream(Box<crate::engine::stream::Stream>),
    String(Bytes),
}

/// What a checkpoint found: its size, the keys written, and live payload bytes per
/// segment before its tail (compaction's input).
#[derive(Debug, Default)]
pub struct CheckpointInfo {
    /// Bytes of the checkpoint file.
    pub bytes: u64,
    /// Keys written.
    pub keys: usize,
    /// First segment after the checkpoint.
    pub tail: u64,
    /// Live payload bytes in each older segment that is kept.
    pub usage: BTreeMap<u64, u64>,
}

/// Writes a checkpoint of the whole keyspace and deletes the log it supersedes
/// (except the older segments that still hold live payloads).
///
/// The keyspace lock is held while the log rolls to a new segment and the state is
/// encoded, so the checkpoint plus the new segments are exactly the state; the
/// file is written after the lock is released. The encoding is the entries' index,
/// 32 bytes per entry, not their payloads.
pub fn checkpoint(shared: &Shared) -> Result<CheckpointInfo, StorageError> {
    if let Some(node) = shared.raft.get() {
        return checkpoint_raft(shared, node);
    }
    let Some(log) = shared.log.get() else {
        return Ok(CheckpointInfo::default());
    };
    if shared.checkpoint_in_progress.swap(true, Ordering::SeqCst) {
        return Ok(CheckpointInfo::default());
    }
    let started = Instant::now();
    let result = (|| {
        // Under the lock only what must be consistent with the roll: a snapshot of the
        // keyspace (streams cloned: their index is 32 bytes per entry, copied far faster
        // than it is encoded; strings shared by reference count). Encoding and writing
        // happen after the lock is released, so clients wait for the copy, not for the
        // checkpoint (issue #18, defect 12).
        log.sync()?;
        let (snapshot, tail) = {
            let mut guard = shared.state.lock();
            let tail = log.roll()?;
            shared
                .written_at_checkpoint
                .store(log.counters().0, Ordering::SeqCst);
            (take_snapshot(&mut guard), tail)
        };
        let mut w = CheckpointWriter::create(log.dir(), tail)?;
        let (keys, usage) = encode_snapshot(snapshot, &mut w, tail);
        let bytes = finish_writer(shared, w, log.dir(), &[])?;
        Ok(CheckpointInfo {
            bytes,
            keys,
            tail,
            usage,
        })
    })();
    shared.checkpoint_in_progress.store(false, Ordering::SeqCst);
    log_checkpoint(shared, &result, started);
    result
}

/// The keyspace as a checkpoint encodes it, copied under the lock (`guard`).
fn take_snapshot(guard: &mut crate::core::State) -> Taken {
    // Entries whose payload was forwarded (renamed in the transaction that added them)
    // get their log position, so the checkpoint holds positions only.
    let store = guard.ks.payloads.clone();
    if store.has_forwarded() {
        guard.ks.settle_resident_payloads(|h| store.resolve(h));
    }
    let mut snapshot = Vec::new();
    for db in 0..guard.ks.db_count() {
        for (key, value, expire) in guard.ks.db(db).iter() {
            let value = match value {
                ValueRef::Stream(s) => Snapshot::Stream(Box::new(s.clone())),
                ValueRef::String(v) => Snapshot::String(Bytes::copy_from_slice(v)),
            };
            snapshot.push((db, Bytes::copy_from_slice(key), value, expire));
        }
    }
    Taken {
        keys: snapshot,
        nack_times: guard.ks.nack_time_ops(),
    }
}

/// The keyspace as [`take_snapshot`] copied it: every key, and the NACK times the backoff
/// of groups with a redelivery policy counts from (kept beside the streams).
struct Taken {
    keys: Vec<(usize, Bytes, Snapshot, Option<u64>)>,
    nack_times: Vec<LoggedOp>,
}

/// Encodes `snapshot` into `w`: the number of keys, and the live payload bytes of each
/// segment before `tail` (the segments the checkpoint keeps).
fn encode_snapshot(
    taken: Taken,
    w: &mut CheckpointWriter,
    tail: u64,
) -> (usize, BTreeMap<u64, u64>) {
    let Taken {
        keys: snapshot,
        nack_times,
    } = taken;
    let keys = snapshot.len();
    let mut usage = BTreeMap::new();
    let mut ops: Vec<LoggedOp> = Vec::new();
    for (db, key, value, expire) in snapshot {
        let db16 = db as u16;
        match value {
            Snapshot::Stream(s) => {
                stream_state(db, &key, &s, w, &mut usage);
                if let Some(at_ms) = expire {
                    ops.push(LoggedOp {
                        db: db16,
                        op: Op::ExpireAt { key, at_ms },
                    });
                }
            }
            Snapshot::String(value) => ops.push(LoggedOp {
                db: db16,
                op: Op::SetString {
                    key,
                    value,
                    at_ms: expire,
                },
            }),
        }
        if ops.len() >= BATCH {
            flush(w, &mut ops);
        }
    }
    flush(w, &mut ops);
    for chunk in nack_times.chunks(BATCH) {
        let mut chunk = chunk.to_vec();
        flush(w, &mut chunk);
    }
    usage.retain(|seg, _| *seg < tail);
    w.keep_segments(usage.keys().copied().collect());
    (keys, usage)
}

/// Publishes the checkpoint `w` and deletes what it supersedes, telling every reader of
/// the segments (the payload reader, and `more`) to forget the deleted ones.
fn finish_writer(
    shared: &Shared,
    w: CheckpointWriter,
    dir: &std::path::Path,
    more: &[&crate::storage::reader::SegmentReader],
) -> Result<u64, StorageError> {
    let reader = shared.segments.get().cloned();
    w.finish(dir, &mut |n| {
        if let Some(r) = &reader {
            r.forget(n);
        }
        for r in more {
            r.forget(n);
        }
    })
}

/// Counts a checkpoint that ran (for the Prometheus endpoint) and logs it.
fn log_checkpoint(
    shared: &Shared,
    result: &Result<CheckpointInfo, StorageError>,
    started: Instant,
) {
    if let Ok(info) = result {
        let progress = &shared.stats.progress;
        progress.checkpoints.fetch_add(1, Ordering::Relaxed);
        progress.last_checkpoint_usec.store(
            started.elapsed().as_micros().try_into().unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        progress
            .last_checkpoint_unix
            .store(crate::core::now_ms() / 1000, Ordering::Relaxed);
        if info.bytes > 0 {
            tracing::info!(
                "Checkpoint written: {} keys, {} bytes in {:.3} s; {} older segments kept for live entries, the rest removed",
                info.keys,
                info.bytes,
                started.elapsed().as_secs_f64(),
                info.usage.len()
            );
        }
    }
}

/// How long a Raft checkpoint waits for its cut to be committed and recorded committed
/// on disk before it is given up (a leader that lost its majority).
const RAFT_CUT_WAIT: Duration = Duration::from_secs(30);

/// [`checkpoint`] in Raft mode (design §3.8): the keyspace at a Raft index A — the highest
/// whose ops it holds, kept under the keyspace lock ([`crate::core::State::raft_index`]),
/// so the Ready loop runs on while the keyspace is copied — written
/// with A and the segment R the log rolled to; then the Raft log is purged below the
/// smaller of A and the group's purge floor ([`RaftNode::purge_floor`]: entries no voter
/// will need), and the segments before the first entry kept are deleted unless they hold
/// live payloads.
///
/// The checkpoint's tail T is the segment of the first entry kept, not R: a follower's
/// log holds entries past A that it has not applied, and on a leader they may trail the
/// roll too, so recovery reads from T, indexes every entry, applies only those past A, and
/// skips other records before R (they are in the checkpoint). A leader's A may be past
/// the commit index (it executes before commit): the checkpoint is published only once A
/// is committed and a hard state recording that is on disk (raft refuses to restart with
/// an applied index past the commit on disk); a leader deposed meanwhile restarts from
/// the previous checkpoint, and this one is dropped.
fn checkpoint_raft(
    shared: &Shared,
    node: &crate::cluster::raft::RaftNode,
) -> Result<CheckpointInfo, StorageError> {
    let raft_log = node.raft_log();
    let log = raft_log.log();
    if shared.checkpoint_in_progress.swap(true, Ordering::SeqCst) {
        return Ok(CheckpointInfo::default());
    }
    let started = Instant::now();
    let mut tmp = None;
    let result = (|| {
        let (snapshot, applied, roll) = {
            let mut guard = shared.state.lock();
            let applied = guard.raft_index;
            let roll = log.roll()?;
            shared
                .written_at_checkpoint
                .store(log.counters().0, Ordering::SeqCst);
            (take_snapshot(&mut guard), applied, roll)
        };
        // Publish only a committed cut, recorded committed on disk.
        let deadline = Instant::now() + RAFT_CUT_WAIT;
        while node.committed() < applied || node.persisted_commit() < applied {
            if node.is_stopped() || shared.shutting_down.load(Ordering::SeqCst) {
                return Err(StorageError::Poisoned(format!(
                    "the Raft group stopped before the checkpoint's cut (index {applied}) was committed"
                )));
            }
            if Instant::now() >= deadline {
                return Err(StorageError::Poisoned(format!(
                    "the checkpoint's cut (Raft index {applied}) was not committed within {} s",
                    RAFT_CUT_WAIT.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        // Entries up to `keep - 1` may go: applied here, and no voter needs them. The floor
        // is read once the cut is committed (a leader's follows its commit index), so a
        // cut made just after a write does not keep that write's segment for nothing.
        let keep = applied
            .min(node.current_purge_floor())
            .saturating_add(1)
            .max(raft_log.first_index());
        let tail = if keep <= raft_log.last_index() {
            raft_log
                .entry_pos(keep)
                .map_err(|e| StorageError::Poisoned(e.to_string()))?
                .segment
                .min(roll)
        } else {
            roll
        };
        let mut w = CheckpointWriter::create(log.dir(), tail)?;
        tmp = Some(
            crate::storage::checkpoint::checkpoint_path(log.dir(), tail).with_extension("ckp.tmp"),
        );
        let mut meta = state_header(state_tag::RAFT, 0, &Bytes::new());
        meta.put_u64v(applied);
        meta.put_u64v(roll);
        w.add_state(&meta);
        let (keys, usage) = encode_snapshot(snapshot, &mut w, tail);
        // The purge, then the hard state (with a commit index of at least `applied`),
        // configuration and purge point restated in the new segments: the older ones may
        // be deleted.
        raft_log
            .compact(keep, applied)
            .map_err(|e| StorageError::Poisoned(e.to_string()))?;
        raft_log
            .restate()
            .map_err(|e| StorageError::Poisoned(e.to_string()))?;
        let bytes = finish_writer(shared, w, log.dir(), &[raft_log.reader()])?;
        tmp = None;
        if node.has_peers() {
            // Only a group that may have other members sends snapshots.
            publish_snapshot(raft_log, log.dir(), tail, &usage, applied);
        }
        tracing::info!(
            "Raft checkpoint at index {applied}: log purged below index {keep}, replay starts at segment {tail}"
        );
        Ok(CheckpointInfo {
            bytes,
            keys,
            tail,
            usage,
        })
    })();
    if let Some(tmp) = tmp {
        let _ = std::fs::remove_file(tmp);
    }
    shared.checkpoint_in_progress.store(false, Ordering::SeqCst);
    log_checkpoint(shared, &result, started);
    result
}

/// Publishes the checkpoint just written (tail `tail`, cut at Raft index `applied`) as the
/// snapshot a replica that needs purged entries is sent (`storage::snapshot`): the
/// checkpoint, the older segments it keeps, and the segments from its tail through the end
/// of entry `applied`'s record. A failure is logged: replicas then get the previous one.
fn publish_snapshot(
    raft_log: &crate::storage::raftlog::RaftLog,
    dir: &std::path::Path,
    tail: u64,
    usage: &BTreeMap<u64, u64>,
    applied: u64,
) {
    let first = raft_log.first_index();
    if applied == 0 || applied + 1 < first {
        return;
    }
    let published = (|| {
        let malformed =
            |e: crate::storage::raftlog::RaftLogError| StorageError::Malformed(e.to_string());
        // Where the snapshot's log ends: after entry A's record, or — A purged with the
        // rest (the purge point is A) — before the first entry kept, or at the start of the
        // tail segment when none is (the replica writes its own purge point after it).
        let end = if applied >= first {
            raft_log.entry_end(applied).map_err(malformed)?
        } else if first <= raft_log.last_index() {
            raft_log.entry_pos(first).map_err(malformed)?
        } else {
            crate::storage::log::RecordPos {
                segment: tail,
                offset: crate::storage::recovery::SEGMENT_HEADER_LEN as u64,
            }
        };
        let term = raft_log.term(applied).map_err(malformed)?;
        let mut segments: Vec<(u64, Option<u64>)> = usage.keys().map(|&n| (n, None)).collect();
        for n in tail..=end.segment {
            segments.push((n, (n == end.segment).then_some(end.offset)));
        }
        let ckp = crate::storage::checkpoint::checkpoint_path(dir, tail);
        raft_log
            .snapshots()
            .publish(dir, &ckp, &segments, applied, term)
    })();
    match published {
        Ok(s) => tracing::debug!(
            "Snapshot of Raft index {applied} published: {} files",
            s.files.len()
        ),
        Err(e) => tracing::warn!("Snapshot of Raft index {applied} not published: {e}"),
    }
}

/// Entries relocated per acquisition of the keyspace lock, so compaction never
/// stalls clients for long.
const RELOCATE_CHUNK: usize = 256;

/// Log (in segments) recovery may have to replay before a checkpoint is taken
/// regardless of `checkpoint-interval`, unless the last checkpoint was bigger than that
/// (then its size is the bound: a checkpoint never costs more writing than the log it
/// saves replaying, and a restart replays no more than it loads). Replay reads about
/// 1 GB/s here (`bench/results/2026-12-07-restart.md`), so two 64 MiB segments plus
/// what arrives while the checkpoint is written keep a crash restart near a quarter
/// second.
const MAX_REPLAY_SEGMENTS: u64 = 2;

/// How often the checkpoint task looks at how far the log has grown.
const CHECKPOINT_POLL: Duration = Duration::from_millis(250);

/// Dead bytes a segment must hold before compaction copies its live entries out.
const MIN_DEAD_BYTES: u64 = 1 << 20;

/// Moves the live payloads out of older segments that are mostly dead (live bytes
/// below `threshold`% of the file), so the next checkpoint can delete them.
///
/// Each live entry there is copied into the log as `RILL-RELOCATE key id fields…`
/// and pointed at the copy, a chunk at a time under the keyspace lock (so no write
/// interleaves with a chunk). Returns the number of entries moved.
pub fn compact(
    shared: &Shared,
    info: &CheckpointInfo,
    threshold: u64,
) -> Result<u64, StorageError> {
    // In Raft mode the leader relocates, through the log like any write: every replica
    // applies the same `Relocate`s and moves those payloads out of its own older segments
    // too (a replica's segments hold the same entries). A replica does not propose.
    let raft = shared.raft.get();
    let log = match (shared.log.get(), raft) {
        (Some(log), _) => log,
        (None, Some(node)) if node.is_leader() => node.raft_log().log(),
        _ => return Ok(0),
    };
    // A 1 MiB floor, but never more than half a segment: with small segments
    // (`segment-size 1mb`) a segment could otherwise never hold enough dead bytes to
    // qualify, and its few live payloads would keep it forever.
    let min_dead = MIN_DEAD_BYTES.min(shared.config.read().segment_size / 2);
    let victims: Vec<u64> = info
        .usage
        .iter()
        .filter(|(seg, live)| {
            let size = std::fs::metadata(crate::storage::recovery::segment_path(log.dir(), **seg))
                .map_or(0, |m| m.len());
            // Small dead remainders are not worth a copy (and copying them would
            // only make another small, mostly-dead segment).
            size.saturating_sub(**live) >= min_dead && **live * 100 < size * threshold
        })
        .map(|(seg, _)| *seg)
        .collect();
    if victims.is_empty() {
        return Ok(0);
    }
    // Which entries live there (db, key, id); re-checked under the lock when moved.
    let mut todo: Vec<(usize, Bytes, StreamId)> = Vec::new();
    {
        let guard = shared.state.lock();
        for db in 0..guard.ks.db_count() {
            for (key, s) in guard.ks.db(db).streams() {
                s.index().for_each_payload(|id, h| {
                    if !h.is_resident() && victims.contains(&unpack_pos(h.at).0) {
                        todo.push((db, Bytes::copy_from_slice(key), id));
                    }
                });
            }
        }
    }
    // Progress for the Prometheus endpoint, cleared however this returns.
    struct Running<'a>(&'a crate::core::stats::Progress);
    impl Drop for Running<'_> {
        fn drop(&mut self) {
            self.0.compaction_todo.store(0, Ordering::Relaxed);
            self.0.compaction_done.store(0, Ordering::Relaxed);
        }
    }
    let progress = &shared.stats.progress;
    progress.compactions.fetch_add(1, Ordering::Relaxed);
    progress.compaction_done.store(0, Ordering::Relaxed);
    progress
        .compaction_todo
        .store(todo.len() as u64, Ordering::Relaxed);
    let _running = Running(progress);
    let mut moved = 0u64;
    for chunk in todo.chunks(RELOCATE_CHUNK) {
        let moved_before = moved;
        let mut guard = shared.state.lock();
        if raft.is_some_and(|node| !node.is_leader()) {
            // Leadership moved: the new leader compacts.
            break;
        }
        let state = &mut *guard;
        let store = state.ks.payloads.clone();
        for (db, key, id) in chunk {
            let Some(stream) = state.ks.stream_raw(*db, key) else {
                continue;
            };
            let Some(entry) = stream.index().get(*id) else {
                continue;
            };
            if entry.payload.is_resident() || !victims.contains(&unpack_pos(entry.payload.at).0) {
                continue;
            }
            let payload = match store.fetch(entry.payload) {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!("Compaction skipped entry {} of a stream: {}", id, e);
                    continue;
                }
            };
            // Not through `apply`: the state does not change, only where the payload is.
            state.props.push(
                *db,
                Op::Relocate {
                    key: key.clone(),
                    id: *id,
                    fields: payload.fields(),
                },
            );
            moved += 1;
        }
        crate::core::commit(shared, state).map_err(|e| match e {
            crate::core::CommandError::Storage(e) => e,
            other => StorageError::Poisoned(other.to_string()),
        })?;
        progress
            .compaction_done
            .fetch_add(chunk.len() as u64, Ordering::Relaxed);
        progress
            .compacted_entries
            .fetch_add(moved - moved_before, Ordering::Relaxed);
    }
    if moved > 0 {
        tracing::info!(
            "Compaction: moved {} live entries out of {} mostly-dead segments",
            moved,
            victims.len()
        );
    }
    Ok(moved)
}

fn flush(w: &mut CheckpointWriter, ops: &mut Vec<LoggedOp>) {
    if !ops.is_empty() {
        w.add_ops(|out| {
            crate::engine::op::encode(ops, out);
        });
        ops.clear();
    }
}

/// Takes a checkpoint every `checkpoint-interval` seconds once the log has grown by
/// `compaction-threshold` percent of the live data (at least 1 MiB) since the last
/// one, and whenever BGREWRITEAOF asks; after each, compacts the older segments
/// whose live payloads fell below the same percentage, and checkpoints again at once
/// if it moved anything, so their files go. Disk use so stays within about
/// 1 / threshold × the live data, plus what the log grows between checkpoints.
pub async fn run_checkpoints(shared: Arc<Shared>) {
    // In Raft mode the log is the group's, there once the group has started.
    let raft_mode = shared.config.read().cluster_raft;
    let log = loop {
        if let Some(log) = shared.log.get() {
            break log;
        }
        match shared.raft.get() {
            Some(node) => break node.raft_log().log(),
            None if raft_mode && !shared.shutting_down.load(Ordering::SeqCst) => {
                tokio::time::sleep(CHECKPOINT_POLL).await
            }
            None => return,
        }
    };
    // Live data as of the last checkpoint: its index plus the payloads it keeps.
    let mut live: u64 = 0;
    // Bytes of the last checkpoint written.
    let mut last_size: u64 = 0;
    let mut written_at_last = log.counters().0;
    let mut last_time = Instant::now();
    let mut again = false;
    loop {
        let requested = again
            || tokio::select! {
                _ = shared.checkpoint_request.notified() => true,
                _ = tokio::time::sleep(CHECKPOINT_POLL) => false,
            }
            // A replica needs a snapshot and none is published (Raft mode).
            || shared
                .raft
                .get()
                .is_some_and(|n| n.raft_log().snapshots().take_wanted());
        if shared.shutting_down.load(Ordering::SeqCst) {
            return;
        }
        let (interval, threshold, segment_size) = {
            let cfg = shared.config.read();
            (
                cfg.checkpoint_interval,
                cfg.compaction_threshold as u64,
                cfg.segment_size,
            )
        };
        let grown = log.counters().0.saturating_sub(written_at_last);
        // Recovery replays what was logged since the last checkpoint: past two
        // segments of it (or the last checkpoint's size, if bigger), checkpoint without
        // waiting for the interval, so a crash restart stays short however fast the
        // writes come.
        let replay_bound = segment_size
            .saturating_mul(MAX_REPLAY_SEGMENTS)
            .max(last_size);
        let due = interval > 0
            && threshold > 0
            && ((last_time.elapsed() >= Duration::from_secs(interval)
                && grown >= (live * threshold / 100).max(1 << 20))
                || grown >= replay_bound);
        if !(requested || due) {
            continue;
        }
        let sh = shared.clone();
        let written_before = log.counters().0;
        // Right after a compaction, checkpoint only: that is what deletes the
        // segments it emptied.
        let after_compaction = again;
        again = false;
        match tokio::task::spawn_blocking(move || {
            let info = checkpoint(&sh)?;
            let moved = if threshold > 0 && !after_compaction {
                compact(&sh, &info, threshold)?
            } else {
                0
            };
            Ok::<_, StorageError>((info, moved))
        })
        .await
        {
            Ok(Ok((info, moved))) => {
                live = info.bytes + info.usage.values().sum::<u64>();
                last_size = info.bytes;
                written_at_last = written_before;
                again = moved > 0;
            }
            Ok(Err(e)) => tracing::warn!("Checkpoint failed: {}", e),
            Err(e) => tracing::warn!("Checkpoint task failed: {}", e),
        }
        last_time = Instant::now();
    }
}
