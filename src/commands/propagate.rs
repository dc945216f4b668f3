//! What goes into the log: deterministic rewrites of the commands that changed
//! state, and the replay of those records at start-up.
//!
//! By default a successful write command is logged as it was sent. Commands whose
//! effect depends on time or on state that replay would not reproduce log what
//! they did instead (`ctx.propagate`): an XADD with `*` logs the ID it got, an
//! XREADGROUP the claims it made, EXPIRE the absolute time. Keys removed because
//! they expired are logged as DEL before the command that noticed.

use bytes::Bytes;

use super::args::Args;
use super::table::{self, CommandSpec, Handler};
use super::{Ctx, Outcome};
use crate::engine::codec::Reader;
use crate::engine::id::StreamId;
use crate::engine::keyspace::Keyspace;
use crate::server::Shared;
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
                ks.stream_raw_mut(cmd.db as usize, &cmd.argv[1])?
                    .index_mut()
                    .relocate_if(id, at, |h| h.len == len && h.crc == crc)
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

/// Commands queued for the log during one critical section.
#[derive(Debug, Default)]
pub struct Propagation {
    /// Commands to log, in execution order.
    pub cmds: Vec<LoggedCommand>,
    /// True while replaying the log: nothing is logged again.
    pub replaying: bool,
}

impl Propagation {
    /// Queues one command.
    pub fn push(&mut self, db: usize, argv: Vec<Bytes>) {
        if !self.replaying {
            self.cmds.push(LoggedCommand {
                db: db as u16,
                argv,
            });
        }
    }
}

/// Logs a successful write command that did not log itself: as sent, except for
/// the commands whose meaning depends on the clock (the EXPIRE family, SET with a
/// TTL), which are logged as their absolute effect.
pub(crate) fn default_propagation(ctx: &mut Ctx<'_>, spec: &CommandSpec, args: &Args) {
    let argv = args.argv();
    match spec.full {
        "expire" | "pexpire" | "expireat" | "pexpireat" | "set" => {
            let key = argv[1].clone();
            let at = ctx.ks.db(ctx.db).expire_at(&key);
            let exists = ctx.ks.contains(ctx.db, &key, ctx.now_ms);
            if spec.full == "set" {
                if exists {
                    ctx.props.push(
                        ctx.db,
                        vec![Bytes::from_static(b"SET"), key.clone(), argv[2].clone()],
                    );
                }
            } else if !exists {
                ctx.props
                    .push(ctx.db, vec![Bytes::from_static(b"DEL"), key.clone()]);
            }
            if let Some(at) = at {
                if exists {
                    ctx.props.push(
                        ctx.db,
                        vec![
                            Bytes::from_static(b"PEXPIREAT"),
                            key,
                            Bytes::from(at.to_string()),
                        ],
                    );
                }
            }
        }
        _ => ctx.props.push(ctx.db, argv.to_vec()),
    }
}

/// Moves the DELs of keys that expired while the command ran to position `at`.
pub(crate) fn log_expired(ks: &mut Keyspace, props: &mut Propagation, at: usize) {
    let expired = ks.take_expired();
    if expired.is_empty() || props.replaying {
        return;
    }
    let dels: Vec<LoggedCommand> = expired
        .into_iter()
        .map(|(db, key)| LoggedCommand {
            db: db as u16,
            argv: vec![Bytes::from_static(b"DEL"), key],
        })
        .collect();
    let at = at.min(props.cmds.len());
    props.cmds.splice(at..at, dels);
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
        let now = super::now_ms();
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
            custom_propagation: false,
        };
        match f(&mut ctx, &mut args) {
            Ok(Outcome::Reply(r)) if r.is_error() => errors.push(format!("{name}: {r:?}")),
            Err(e) => errors.push(format!("{name}: {e}")),
            _ => {}
        }
    }
    state.props.replaying = false;
    state.props.cmds.clear();
    state.ks.take_expired();
    state.ks.take_ready();
    if let (Some(pos), Some(batch)) = (pos, located) {
        locate_payloads(&mut state.ks, &batch, pos);
        state.ks.payloads.evict();
    }
    errors
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
        .stream_or_create(db, key)
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
