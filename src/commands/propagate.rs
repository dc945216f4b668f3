//! What goes into the log, and how start-up reads it back.
//!
//! Every state change a command makes is an [`Op`] applied through [`Ctx::apply`], which
//! queues it here for the critical section's record; nothing is logged "as sent". Keys
//! removed because they expired are logged as `Del` before the ops of the command that
//! noticed. At start-up [`replay`] hands each record to the same [`Keyspace::apply`]
//! (format-1 records, from older releases, go to [`super::format1`]).
//!
//! [`Ctx::apply`]: super::Ctx::apply

use bytes::Bytes;

use crate::engine::codec::Reader;
use crate::engine::keyspace::Keyspace;
use crate::engine::op::{self, FieldSpan, LoggedOp, Op};
use crate::engine::payload::Payload;
use crate::server::Shared;
use crate::storage::log::{pack_pos, RecordPos};
use crate::storage::record::HEADER_LEN;
use crate::storage::recovery::Replay;

/// Ops queued for the log during one critical section.
#[derive(Debug, Default)]
pub struct Propagation {
    /// Ops to log, in the order they were applied.
    pub ops: Vec<LoggedOp>,
    /// True while replaying a format-1 record through the command handlers: what they
    /// apply is not logged again.
    pub replaying: bool,
}

impl Propagation {
    /// Queues one applied op.
    pub fn push(&mut self, db: usize, op: Op) {
        if !self.replaying {
            self.ops.push(LoggedOp { db: db as u16, op });
        }
    }
}

/// Moves the `Del`s of keys that expired while the command ran to position `at`.
pub(crate) fn log_expired(ks: &mut Keyspace, props: &mut Propagation, at: usize) {
    let expired = ks.take_expired();
    if expired.is_empty() || props.replaying {
        return;
    }
    let dels: Vec<LoggedOp> = expired
        .into_iter()
        .map(|(db, key)| LoggedOp {
            db: db as u16,
            op: Op::Del { key },
        })
        .collect();
    let at = at.min(props.ops.len());
    props.ops.splice(at..at, dels);
}

/// Points the entries a just-appended (or just-replayed) record carries at their payloads
/// inside it: new entries leave the resident set for the cache, relocated entries move to
/// their new copy. `payload_at` is where the record's payload starts in the log; `spans`
/// are where each op's fields are in it. Entries deleted since (an XADD then a DEL in one
/// EXEC) are skipped.
pub fn locate_payloads(
    ks: &mut Keyspace,
    ops: &[LoggedOp],
    spans: &[FieldSpan],
    payload_at: RecordPos,
) {
    let store = ks.payloads.clone();
    let mut unlocated = Vec::new();
    for &(i, off, len) in spans {
        let Some(LoggedOp { db, op }) = ops.get(i) else {
            continue;
        };
        let (Op::Append { key, id, fields } | Op::Relocate { key, id, fields }) = op else {
            continue;
        };
        let at = pack_pos(payload_at.segment, payload_at.offset + off as u64);
        // The entry under this key and ID must hold these very bytes (same length and
        // checksum): a stream renamed in the same transaction, and another created under
        // the old name, must not swap payloads.
        let crc = fields.iter().fold(0u32, |crc, a| {
            let crc = crc32c::crc32c_append(crc, &(a.len() as u32).to_le_bytes());
            crc32c::crc32c_append(crc, a)
        });
        let located = ks
            .relocate_payload(*db as usize, key, *id, at, |h| h.len == len && h.crc == crc)
            .map(|old| store.locate(old, at));
        if located.is_none() {
            unlocated.push((at, Payload::pack(fields).packed().clone()));
        }
    }
    store.settle_resident(&unlocated);
}

/// Applies one record of ops read from the log or a checkpoint (start-up). Returns what
/// could not be applied, which should be nothing: anything else means the log does not fit
/// the state, and the caller stops start-up naming the record.
pub fn replay_ops(shared: &Shared, payload: &Bytes, pos: Option<RecordPos>) -> Vec<String> {
    let (ops, spans) = match op::decode(payload) {
        Ok(d) => d,
        Err(e) => return vec![e.to_string()],
    };
    let limits = shared.node_limits();
    let mut guard = shared.state.lock();
    let state = &mut *guard;
    let mut errors = Vec::new();
    for LoggedOp { db, op } in &ops {
        let mut op = op.clone();
        if let Err(e) = state.ks.apply(*db as usize, &mut op, limits) {
            errors.push(format!("{op:?}: {e}"));
            break;
        }
    }
    state.ks.take_expired();
    state.ks.take_ready();
    if let Some(pos) = pos {
        let payload_at = RecordPos {
            segment: pos.segment,
            offset: pos.offset + HEADER_LEN as u64,
        };
        locate_payloads(&mut state.ks, &ops, &spans, payload_at);
        state.ks.payloads.evict();
    }
    errors
}

/// Applies one item recovery read (start-up, `rill check`): what it could not apply, or
/// nothing.
pub fn replay(shared: &Shared, item: Replay) -> Vec<String> {
    match item {
        Replay::Ops { payload, pos } => replay_ops(shared, &payload, pos),
        Replay::Batch { commands, pos } => super::format1::replay_batch(shared, commands, pos),
        Replay::State(data) => apply_state(shared, data).err().into_iter().collect(),
    }
}

/// Tags of a checkpoint's binary state records.
pub mod state_tag {
    /// `u16 db | key | index nodes`: a run of a stream's nodes (creates the stream).
    pub const NODES: u8 = 1;
    /// `u16 db | key | counters and groups`: the rest of a stream (creates it if needed).
    pub const META: u8 = 2;
}

/// Applies one binary state record of a checkpoint (start-up).
pub fn apply_state(shared: &Shared, data: Bytes) -> Result<(), String> {
    let mut r = Reader::new(data);
    let malformed = || "malformed stream state".to_string();
    let tag = r.u8().ok_or_else(malformed)?;
    let db = r.u32().ok_or_else(malformed)? as usize;
    let key = r.bytes().ok_or_else(malformed)?;
    let mut guard = shared.state.lock();
    let stream = guard
        .ks
        .checkpoint_stream(db, key)
        .ok_or_else(|| "stream state for a key of another type or database".to_string())?;
    let ok = match tag {
        state_tag::NODES => stream.index_mut().decode_nodes(&mut r),
        state_tag::META => stream.decode_meta(&mut r),
        _ => None,
    };
    match ok {
        Some(()) if r.is_empty() => Ok(()),
        _ => Err(malformed()),
    }
}
