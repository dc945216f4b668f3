//! Format 1 of the log: records that are batches of Redis command argvs, written by
//! releases before typed ops (segments `RILLLOG1`/`RILLLOG2`, checkpoints
//! `RILLCKP1`/`RILLCKP2`). Still read, so a data directory written by an older
//! release starts with everything it held; nothing writes this format any more, and
//! the first checkpoint after the upgrade rewrites what it holds as ops.
//!
//! Such a record is replayed as it always was: each command through the live command
//! parsers and handlers (which, while replaying, apply their ops without logging them).
//! Everything that knows format 1 is in this module.

use crate::commands::args::Args;
use crate::commands::table::{self, CommandSpec, Handler};
use crate::core::Shared;
use crate::core::{Ctx, Outcome};
use crate::engine::id::StreamId;
use crate::engine::keyspace::Keyspace;
use crate::storage::log::{pack_pos, RecordPos};
use crate::storage::record::arg_spans;
use crate::storage::LoggedCommand;

/// Internal log command written by compaction: `RILL-RELOCATE key id field value …`
/// carries a live entry's payload into a new record, and the entry is pointed there,
/// so the old segment can go. Not in the command table: clients cannot send it.
pub const RELOCATE: &[u8] = b"RILL-RELOCATE";

/// For a logged command that carries an entry's payload (`XADD key id field value …`
/// or `RILL-RELOCATE key id field value …`), the index of its first field argument.
fn payload_from(cmd: &LoggedCommand) -> Option<usize> {
    let argv = &cmd.argv;
    let name = argv.first()?;
    let carries = name.eq_ignore_ascii_case(b"XADD") || &name[..] == RELOCATE;
    (carries
        && argv.len() >= 5
        && (argv.len() - 3).is_multiple_of(2)
        && StreamId::parse_strict(&argv[2], 0).is_ok())
    .then_some(3)
}

/// Points the entries a just-appended (or just-replayed) record carries at their
/// payloads inside it: the XADDs' new entries leave the resident set for the cache,
/// relocated entries move to their new copy. Entries deleted since (an XADD then a
/// DEL in one EXEC) are skipped.
pub fn locate_payloads(ks: &mut Keyspace, cmds: &[LoggedCommand], pos: RecordPos) {
    let store = ks.payloads.clone();
    let mut unlocated = Vec::new();
    for (i, off, len) in arg_spans(cmds, payload_from) {
        let cmd = &cmds[i];
        let at = pack_pos(pos.segment, pos.offset + off);
        // The entry under this key and ID must hold these very bytes (same length and
        // checksum): a stream renamed in the same transaction, and another created under
        // the old name, must not swap payloads.
        let crc = cmd.argv[3..].iter().fold(0u32, |crc, a| {
            let crc = crc32c::crc32c_append(crc, &(a.len() as u32).to_le_bytes());
            crc32c::crc32c_append(crc, a)
        });
        let located = StreamId::parse_strict(&cmd.argv[2], 0)
            .ok()
            .and_then(|id| {
                ks.relocate_payload(cmd.db as usize, &cmd.argv[1], id, at, |h| {
                    h.len == len && h.crc == crc
                })
            })
            .map(|old| store.locate(old, at));
        if located.is_none() {
            unlocated.push((
                at,
                crate::engine::payload::Payload::pack(&cmd.argv[3..])
                    .packed()
                    .clone(),
            ));
        }
    }
    store.settle_resident(&unlocated);
}

/// Replays one logged batch against the keyspace (start-up). Returns the number
/// of commands that failed, which should be zero: a failure means the log holds
/// something this version cannot apply, and is reported by the caller.
pub fn replay_batch(
    shared: &Shared,
    batch: Vec<LoggedCommand>,
    pos: Option<RecordPos>,
) -> Vec<String> {
    let mut errors = Vec::new();
    let mut guard = shared.state.lock();
    let state = &mut *guard;
    state.props.replaying = true;
    // The payload positions are worked out from the batch after it ran.
    let located = pos.map(|_| batch.clone());
    for cmd in batch {
        if cmd.argv.first().is_some_and(|n| &n[..] == RELOCATE) {
            continue;
        }
        let name =
            String::from_utf8_lossy(cmd.argv.first().map_or(&b""[..], |b| &b[..])).to_string();
        let mut args = Args::new(cmd.argv);
        let spec: &'static CommandSpec = match table::resolve(&mut args) {
            Ok(s) => s,
            Err(e) => {
                errors.push(format!("{name}: {e}"));
                continue;
            }
        };
        let Handler::Data(f) = spec.handler else {
            errors.push(format!("{name}: not a data command"));
            continue;
        };
        let now = crate::core::now_ms();
        let mut ctx = Ctx {
            ks: &mut state.ks,
            shared,
            db: cmd.db as usize,
            proto: 2,
            client_id: 0,
            now_ms: now,
            in_multi: true,
            blocking: None,
            props: &mut state.props,
            reply_room: u64::MAX,
            over_limit: false,
        };
        match f(&mut ctx, &mut args) {
            Ok(Outcome::Reply(r)) if r.is_error() => errors.push(format!("{name}: {r:?}")),
            Err(e) => errors.push(format!("{name}: {e}")),
            _ => {}
        }
    }
    state.props.replaying = false;
    state.props.ops.clear();
    state.ks.take_expired();
    state.ks.take_ready();
    if let (Some(pos), Some(batch)) = (pos, located) {
        locate_payloads(&mut state.ks, &batch, pos);
        state.ks.payloads.evict();
    }
    errors
}
