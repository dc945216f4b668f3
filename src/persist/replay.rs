//! Start-up: the log and the newest checkpoint read back into the keyspace.
//!
//! Typed records go to [`Keyspace::apply`], the function live execution uses; format-1
//! records (older releases) to [`super::format1`]; checkpoint state records straight
//! into the streams they describe.
//!
//! [`Keyspace::apply`]: crate::engine::keyspace::Keyspace::apply

use bytes::Bytes;

use crate::core::Shared;
use crate::engine::codec::Reader;
use crate::engine::op::{self, LoggedOp};
use crate::storage::log::{Log, LogOptions, RecordPos};
use crate::storage::recovery::Replay;

/// Applies one record of ops read from the log or a checkpoint (start-up). Returns what
/// could not be applied, which should be nothing: anything else means the log does not fit
/// the state, and the caller stops start-up naming the record.
pub fn replay_ops(shared: &Shared, payload: &Bytes, pos: Option<RecordPos>) -> Vec<String> {
    let payload_at = pos.map(|pos| RecordPos {
        segment: pos.segment,
        offset: pos.offset + crate::storage::record::OPS_AT,
    });
    replay_ops_at(shared, payload, payload_at)
}

/// [`replay_ops`] for ops whose first byte is at `payload_at` in the log (a Raft entry's
/// data, which starts after its term, index and context).
pub fn replay_ops_at(
    shared: &Shared,
    payload: &Bytes,
    payload_at: Option<RecordPos>,
) -> Vec<String> {
    apply_ops_at(shared, payload, payload_at, None, false)
}

/// [`replay_ops_at`]; a Raft entry's `raft_index` is recorded as the keyspace's
/// ([`crate::core::State::raft_index`]) in the same critical section, and with `serve`
/// the clients blocked on the keys it made ready are served (a replica applying its
/// leader's entries while it serves reads).
fn apply_ops_at(
    shared: &Shared,
    payload: &Bytes,
    payload_at: Option<RecordPos>,
    raft_index: Option<u64>,
    serve: bool,
) -> Vec<String> {
    let (mut ops, mut spans) = match op::decode(payload) {
        Ok(d) => d,
        Err(e) => return vec![e.to_string()],
    };
    let limits = shared.node_limits();
    let mut guard = shared.state.lock();
    let state = &mut *guard;
    let mut errors = Vec::new();
    let store = state.ks.payloads.clone();
    // Spans are in op order; an XADD's entry is pointed at its payload in this record as
    // it is applied (see `PayloadStore::preset`), the rest located after.
    let mut next_span = 0;
    let mut preset = vec![false; ops.len()];
    // Applied in place: a logged op is already in its exact form, so `apply` leaves it as
    // it is, and the spans below still point at the same ops.
    for (i, LoggedOp { db, op }) in ops.iter_mut().enumerate() {
        while spans.get(next_span).is_some_and(|s| s.0 < i) {
            next_span += 1;
        }
        let span = spans.get(next_span).filter(|s| s.0 == i);
        let presetting = match (payload_at, span) {
            (Some(at), Some(&(_, off, len))) if matches!(op, op::Op::Append { .. }) => {
                let pos = crate::storage::log::pack_pos(at.segment, at.offset + off as u64);
                // The packed fields are these bytes of the record, contiguous.
                let Some(packed) = payload.get(off..off + len as usize) else {
                    errors.push(format!("{}: payload span out of the record", op.name()));
                    break;
                };
                store.preset(pos, len, crc32c::crc32c(packed));
                true
            }
            _ => false,
        };
        let applied = state.ks.apply(*db as usize, op, limits);
        if presetting {
            preset[i] = store.take_preset();
        }
        if let Err(e) = applied {
            errors.push(format!("{}: {e}", op.name()));
            break;
        }
    }
    state.ks.take_expired();
    if let (Some(index), true) = (raft_index, errors.is_empty()) {
        state.raft_index = state.raft_index.max(index);
    }
    if serve && errors.is_empty() {
        // The command layer signals the keys a live write made ready; applied ops are
        // signalled here, those a blocked XREAD can be waiting on (a spurious signal
        // only makes a waiter look again).
        for LoggedOp { db, op } in &ops {
            let key = match op {
                op::Op::Append { key, .. }
                | op::Op::Del { key }
                | op::Op::SetString { key, .. }
                | op::Op::SetId { key, .. }
                | op::Op::Rename { to: key, .. } => key,
                _ => continue,
            };
            state.ks.signal_ready(*db as usize, key);
        }
        // Only reads are served here (XREAD after READONLY): a replica takes no writes,
        // and its clients blocked on XREADGROUP were sent to the leader when it stopped
        // leading. A read logs nothing; anything else a waiter queued is not this
        // replica's to log.
        crate::core::blocking::serve_ready(
            &mut state.ks,
            &mut state.blocking,
            &mut state.props,
            shared,
            crate::core::now_ms(),
        );
        if !state.props.ops.is_empty() {
            tracing::warn!("A client served on a replica queued writes: dropped");
            state.props.ops.clear();
        }
    } else {
        state.ks.take_ready();
    }
    if let Some(at) = payload_at {
        spans.retain(|s| !preset.get(s.0).copied().unwrap_or(false));
        if !spans.is_empty() {
            state
                .ks
                .locate_payloads(&ops, &spans, (at.segment, at.offset));
            state.ks.payloads.evict();
        }
    }
    errors
}

/// One recovered item applied: a checkpoint's state, or a log record through [`replay`].
/// A state the engine cannot load is reported by the reader as corruption at this
/// record's file and offset.
fn replay_item(shared: &Shared, item: Replay) -> Result<Vec<String>, crate::storage::StorageError> {
    match item {
        Replay::State(data) => apply_state(shared, data)
            .map(|()| Vec::new())
            .map_err(crate::storage::StorageError::Malformed),
        item => Ok(replay(shared, item)),
    }
}

/// Applies one item recovery read (start-up, `rill check`): what it could not apply, or
/// nothing.
pub fn replay(shared: &Shared, item: Replay) -> Vec<String> {
    match item {
        Replay::Ops { payload, pos } => replay_ops(shared, &payload, pos),
        Replay::Batch { commands, pos } => super::format1::replay_batch(shared, commands, pos),
        Replay::State(data) => apply_state(shared, data).err().into_iter().collect(),
        // The single-node server never writes Raft records: a directory that has them
        // belongs to a cluster node, whose entries apply only once committed.
        Replay::Raft { .. } => vec![
            "a Raft log record: this data directory belongs to a cluster node and cannot be opened by a single-node server".into(),
        ],
    }
}

/// Applies a committed Raft entry's ops, whose data starts at `data_at` (start-up replay
/// and the driver's apply of an uncommitted tail once it commits). Raft's own empty entries
/// (a new leader's) change nothing.
pub fn apply_entry(
    shared: &Shared,
    entry: &crate::storage::raft_record::RaftEntryRecord,
    data_at: RecordPos,
) -> Result<(), String> {
    apply_raft_entry(shared, entry, data_at, false)
}

/// [`apply_entry`] on a running replica: clients blocked on the keys the entry made ready
/// (XREAD after READONLY) are served, as a Redis replica serves them when its master's
/// writes arrive.
pub fn apply_committed_entry(
    shared: &Shared,
    entry: &crate::storage::raft_record::RaftEntryRecord,
    data_at: RecordPos,
) -> Result<(), String> {
    apply_raft_entry(shared, entry, data_at, true)
}

fn apply_raft_entry(
    shared: &Shared,
    entry: &crate::storage::raft_record::RaftEntryRecord,
    data_at: RecordPos,
    serve: bool,
) -> Result<(), String> {
    if entry.data.is_empty() || entry.kind != crate::storage::raft_record::EntryKind::Normal {
        return Ok(());
    }
    match apply_ops_at(shared, &entry.data, Some(data_at), Some(entry.index), serve)
        .into_iter()
        .next()
    {
        None => Ok(()),
        Some(e) => Err(e),
    }
}

/// What [`load_raft`] opened: the Raft log, and the index up to which its entries are in
/// the keyspace (entries after it were not yet known committed).
pub struct RaftLoaded {
    pub log: std::sync::Arc<crate::storage::raftlog::RaftLog>,
    pub applied: u64,
}

/// [`load`] for a node whose log is a Raft log (`cluster-raft yes`): records of the
/// single-node kinds replay as there (a directory may have been a single node's before),
/// and a Raft entry is applied once a hard state read after it shows it committed. Entries
/// no hard state commits (the tail of the last group commits before a crash: the commit
/// index on disk trails the entries by a group) are not applied here; the driver applies
/// them once the group has committed them again (`RaftNode::recover`).
pub fn load_raft(
    shared: &Shared,
    lock: crate::storage::lock::DirLock,
    dir: &std::path::Path,
    opts: LogOptions,
) -> Result<RaftLoaded, String> {
    use crate::storage::raft_record::{RaftEntryRecord, RaftRecord};
    use crate::storage::raftlog::RaftLog;
    let mut progress = Progress::new(shared, dir);
    let reader = shared.attach_segments(dir);
    let mut commit = 0u64;
    let mut applied = 0u64;
    // A checkpoint's cut: the entries it holds, and the segment its records end before.
    let mut cut: Option<(u64, u64)> = None;
    let mut held: std::collections::VecDeque<(RaftEntryRecord, RecordPos)> = Default::default();
    let opened = RaftLog::open_locked(lock, dir, opts, &mut |item, bytes| {
        let roll = cut.map(|(_, roll)| roll);
        let before_cut = |pos: Option<RecordPos>| matches!((roll, pos), (Some(roll), Some(p)) if p.segment < roll);
        let errors = match item {
            Replay::State(data) if data.first() == Some(&state_tag::RAFT) => {
                let mut r = Reader::new(data);
                let parsed = (|| {
                    r.u8()?;
                    r.u32()?;
                    r.bytes()?;
                    Some((r.u64()?, r.u64()?))
                })();
                let Some((at, roll)) = parsed else {
                    return Err(crate::storage::StorageError::Malformed(
                        "malformed Raft checkpoint state".into(),
                    ));
                };
                cut = Some((at, roll));
                applied = at;
                shared.state.lock().raft_index = at;
                Vec::new()
            }
            // Records before the cut other than Raft's are in the checkpoint already.
            Replay::Ops { pos, .. } | Replay::Batch { pos, .. } if before_cut(pos) => Vec::new(),
            Replay::Raft { record, pos } => {
                match record {
                    RaftRecord::Entry(e) => held.push_back((e, pos)),
                    RaftRecord::HardState(h) => commit = commit.max(h.commit),
                    _ => {}
                }
                let mut errors = Vec::new();
                while held.front().is_some_and(|(e, _)| e.index <= commit) {
                    let Some((e, pos)) = held.pop_front() else {
                        break;
                    };
                    let data_at = RecordPos {
                        segment: pos.segment,
                        offset: pos.offset
                            + crate::storage::raft_record::data_offset(e.context.len()),
                    };
                    // Entries up to the checkpoint's cut are in it.
                    if e.index <= applied {
                        continue;
                    }
                    if let Err(why) = apply_entry(shared, &e, data_at) {
                        errors.push(format!("Raft entry {}: {why}", e.index));
                        break;
                    }
                    applied = e.index;
                }
                errors
            }
            item => replay_item(shared, item)?,
        };
        progress.record(bytes, errors)
    });
    let log = progress.finish(opened)?;
    reader.set_written(log.log().written_handle());
    Ok(RaftLoaded {
        log: std::sync::Arc::new(log),
        applied,
    })
}

/// Start-up progress: counts what was replayed, logs it for long recoveries, and keeps the
/// first replay failure.
struct Progress<'a> {
    shared: &'a Shared,
    dir: &'a std::path::Path,
    started: std::time::Instant,
    done: u64,
    records: u64,
    /// A bar on a terminal, `Loading: …` log lines otherwise (`crate::progress`).
    shown: crate::progress::Progress,
    failure: Option<String>,
}

impl<'a> Progress<'a> {
    fn new(shared: &'a Shared, dir: &'a std::path::Path) -> Self {
        let total = crate::storage::recovery::log_size(dir);
        shared
            .loading_total
            .store(total, std::sync::atomic::Ordering::Relaxed);
        Progress {
            shared,
            dir,
            started: std::time::Instant::now(),
            done: 0,
            records: 0,
            shown: crate::progress::Progress::new(
                "Loading",
                total,
                Box::new(|line| tracing::info!("{}", line)),
            ),
            failure: None,
        }
    }

    /// Counts one record of `bytes` that replayed with `errors`.
    fn record(
        &mut self,
        bytes: u64,
        errors: Vec<String>,
    ) -> Result<(), crate::storage::StorageError> {
        self.records += 1;
        self.done += bytes;
        self.shared
            .loading_done
            .store(self.done, std::sync::atomic::Ordering::Relaxed);
        if let Some(e) = errors.first() {
            self.failure = Some(format!(
                "Bad command in the log at record {}: {e} — the log was written by a newer version or is damaged; run 'rill check {}'",
                self.records,
                self.dir.display()
            ));
            return Err(crate::storage::StorageError::Poisoned(
                "replay failed".into(),
            ));
        }
        self.shown.advance(bytes);
        Ok(())
    }

    /// What opening the log came to, with the replay failure first.
    fn finish<L>(self, opened: Result<L, crate::storage::StorageError>) -> Result<L, String> {
        self.shown.finish();
        let log = match (opened, self.failure) {
            (_, Some(msg)) => return Err(msg),
            (Err(e), None) => {
                return Err(format!(
                    "Can't open the data directory {}: {}",
                    self.dir.display(),
                    e
                ))
            }
            (Ok(log), None) => log,
        };
        if self.records > 0 {
            tracing::info!(
                "DB loaded from the log: {} records, {} MB in {:.3} seconds",
                self.records,
                self.done >> 20,
                self.started.elapsed().as_secs_f64()
            );
        }
        Ok(log)
    }
}

/// Opens the log, replaying it into the keyspace as it is read (one segment in
/// memory at a time), and logs progress (percent and MB/s) for long recoveries.
pub fn load(
    shared: &Shared,
    lock: crate::storage::lock::DirLock,
    dir: &std::path::Path,
    opts: LogOptions,
) -> Result<Log, String> {
    let mut progress = Progress::new(shared, dir);
    let reader = shared.attach_segments(dir);
    let opened = Log::open_locked(lock, dir, opts, &mut |item, bytes| {
        let errors = replay_item(shared, item)?;
        progress.record(bytes, errors)
    });
    let log = progress.finish(opened)?;
    reader.set_written(log.written_handle());
    Ok(log)
}

/// Tags of a checkpoint's binary state records.
pub mod state_tag {
    /// `u16 db | key | index nodes`: a run of a stream's nodes (creates the stream).
    pub const NODES: u8 = 1;
    /// `u16 db | key | counters and groups`: the rest of a stream (creates it if needed).
    pub const META: u8 = 2;
    /// `u16 db | key | IDMP state` (`IdmpState::encode_chunks`: limits, counters and some of
    /// the producers; a stream with many has several): written only for streams whose
    /// idempotent-production state differs from a fresh stream's, so checkpoints of
    /// releases before it (which have no such record) load as streams without IDMP history.
    pub const IDMP: u8 = 8;
    /// `u16 db | key | group | NACK zone` (`ConsumerGroup::encode_nack_zone`: the group's
    /// XNACKed entries in zone order), after the stream's `META`: written only for groups
    /// with NACKed entries, so checkpoints of releases before XNACK load unchanged.
    pub const NACK: u8 = 9;
    /// `u16 db | key | policy` (`StreamPolicy::encode`), after the stream's `META`: written
    /// only for streams with their own broker policy, so older checkpoints load unchanged.
    pub const POLICY: u8 = 10;
    /// `u16 db (0) | key (empty) | u64 applied | u64 roll`: a Raft node's checkpoint
    /// (`checkpoint_raft`): the keyspace holds the entries through Raft index `applied`, and
    /// the records before segment `roll` are in it. Read by [`super::load_raft`] only.
    pub const RAFT: u8 = 11;
}

/// Applies one binary state record of a checkpoint (start-up).
pub fn apply_state(shared: &Shared, data: Bytes) -> Result<(), String> {
    let mut r = Reader::new(data);
    let malformed = || "malformed stream state".to_string();
    let tag = r.u8().ok_or_else(malformed)?;
    if tag == state_tag::RAFT {
        return Err(
            "a Raft checkpoint: this data directory belongs to a cluster node and cannot be opened by a single-node server"
                .into(),
        );
    }
    let db = r.u32().ok_or_else(malformed)? as usize;
    let key = r.bytes().ok_or_else(malformed)?;
    let mut guard = shared.state.lock();
    let stream = guard
        .ks
        .checkpoint_stream(db, key.clone())
        .ok_or_else(|| "stream state for a key of another type or database".to_string())?;
    let ok = match tag {
        state_tag::NODES => stream.index_mut().decode_nodes(&mut r),
        state_tag::META => stream.decode_meta(&mut r),
        state_tag::IDMP => stream.idmp_mut().decode_chunk(&mut r),
        state_tag::NACK => r.bytes().and_then(|group| {
            // Through the groups' guard, so the stream's referenced-entries index counts them.
            stream
                .groups
                .get_mut(&group[..])
                .and_then(|mut g| g.decode_nack_zone(&mut r))
        }),
        state_tag::POLICY => {
            crate::engine::policy::StreamPolicy::decode(&mut r).map(|p| stream.set_policy(p))
        }
        _ => None,
    };
    if tag == state_tag::POLICY {
        guard.ks.note_policy();
    }
    let has_iids = tag == state_tag::IDMP
        && guard
            .ks
            .stream_raw(db, &key)
            .is_some_and(|s| s.idmp().iids_tracked() > 0);
    if has_iids {
        guard.ks.track_idmp(db, &key);
    }
    match ok {
        Some(()) if r.is_empty() => Ok(()),
        _ => Err(malformed()),
    }
}

#[cfg(test)]
mod tests {
    use crate::storage::lock::{lock_dir, LockFile};
    use crate::storage::raftlog::RaftLog;
    use crate::storage::{FsyncPolicy, LogOptions};

    /// The single-node server never writes Raft records, and refuses a directory that has
    /// them instead of starting without the entries in them.
    #[test]
    fn a_cluster_nodes_directory_is_refused_by_the_single_node_server() {
        let dir = std::env::temp_dir().join(format!("rill-replay-raft-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let opts = LogOptions {
            segment_size: 1 << 20,
            policy: FsyncPolicy::Always,
        };
        let log = RaftLog::open(&dir, opts, &mut |_, _| Ok(())).expect("open");
        let entry = crate::storage::raft_record::RaftEntryRecord {
            term: 1,
            index: 1,
            kind: crate::storage::raft_record::EntryKind::Normal,
            context: bytes::Bytes::new(),
            data: bytes::Bytes::from_static(b"ops"),
        };
        log.append(&[entry], None).expect("append");
        log.close();
        drop(log);
        let shared = crate::core::Shared::new(crate::config::Config::default(), None);
        let lock = lock_dir(&dir, LockFile::Create).expect("lock");
        let err = match super::load(&shared, lock, &dir, opts) {
            Err(e) => e,
            Ok(_) => panic!("a directory with a Raft log was opened as a single node's"),
        };
        assert!(err.contains("belongs to a cluster node"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Replay (start-up, and a Raft follower's apply, which goes through the same
    /// function) publishes no keyspace event, even to a client subscribed while the data
    /// set loads; the same change made by a command does.
    #[test]
    fn replay_publishes_no_keyspace_event_and_a_command_does() {
        use crate::core::pubsub::{Kind, Outlet};
        use crate::engine::id::StreamId;
        use crate::engine::op::{self, LoggedOp, Op};
        use bytes::Bytes;

        let mut config = crate::config::Config::default();
        config.notify_keyspace_events = crate::config::keyspace_events::parse("KEA").unwrap_or(0);
        let shared = crate::core::Shared::new(config, None);
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 6379));
        let outlet = Outlet::new(shared.clients.register(addr, addr));
        shared
            .pubsub
            .subscribe(Kind::Pattern, &Bytes::from_static(b"*"), &outlet);

        let ops = vec![LoggedOp {
            db: 0,
            op: Op::Append {
                key: Bytes::from_static(b"s"),
                id: StreamId { ms: 1, seq: 1 },
                fields: vec![Bytes::from_static(b"f"), Bytes::from_static(b"v")],
            },
        }];
        let mut record = bytes::BytesMut::new();
        op::encode_into(&ops, &mut record, &mut Vec::new());
        assert!(super::replay_ops(&shared, &record.freeze(), None).is_empty());
        assert_eq!(shared.state.lock().ks.db(0).len(), 1);
        let mut out = bytes::BytesMut::new();
        assert_eq!(
            outlet.take_into(&mut out),
            None,
            "replay published an event"
        );

        let mut session = crate::commands::Session::new(shared.clients.register(addr, addr), true);
        let argv = ["XADD", "s", "2-1", "f", "v"].map(|a| Bytes::from(a.as_bytes().to_vec()));
        crate::commands::execute(&mut session, &shared, argv.to_vec());
        assert!(outlet.take_into(&mut out).is_some());
        assert_eq!(
            &out[..],
            &b"*4\r\n$8\r\npmessage\r\n$1\r\n*\r\n$16\r\n__keyspace@0__:s\r\n$4\r\nxadd\r\n\
               *4\r\n$8\r\npmessage\r\n$1\r\n*\r\n$19\r\n__keyevent@0__:xadd\r\n$1\r\ns\r\n"[..]
        );
    }
}
