//! What goes into the log: the ops a critical section applied.
//!
//! Every state change a command makes is an [`Op`] applied through [`Ctx::apply`], which
//! queues it here for the critical section's record; nothing is logged "as sent". Keys
//! removed because they expired are logged as `Del` before the ops of the command that
//! noticed. Reading the log back is `persist::replay`'s.
//!
//! [`Ctx::apply`]: super::Ctx::apply

use super::keyspace_events::{self, KeyEvent};
use crate::engine::keyspace::Keyspace;
use crate::engine::op::{LoggedOp, Op};

/// Ops queued for the log during one critical section.
#[derive(Debug, Default)]
pub struct Propagation {
    /// Ops to log, in the order they were applied.
    pub ops: Vec<LoggedOp>,
    /// True while replaying a format-1 record through the command handlers: what they
    /// apply is not logged again.
    pub replaying: bool,
    /// Where the ops of the command now running start in `ops` (EXEC runs several
    /// commands in one critical section).
    pub command_start: usize,
    /// Where the entries' fields landed in the last record (reused by every commit).
    pub spans: Vec<crate::engine::op::FieldSpan>,
    /// Raft mode: the ops are encoded here first (reused, so an entry costs one exact-size
    /// allocation, the one raft keeps).
    pub scratch: bytes::BytesMut,
    /// Keyspace events the critical section emitted, in order: not logged, published by
    /// [`commit`] once the record is appended (see `core::keyspace_events`).
    ///
    /// [`commit`]: super::commit
    pub events: Vec<KeyEvent>,
    /// Where the events of the command now running start in `events` (`expired` events
    /// of keys its lookups expired go there, before its own, as Redis emits them at the
    /// lookup).
    pub events_start: usize,
}

impl Propagation {
    /// Queues one applied op.
    pub fn push(&mut self, db: usize, op: Op) {
        if !self.replaying {
            self.ops.push(LoggedOp { db: db as u16, op });
        }
    }

    /// Whether the queued ops change anything a reply acknowledges. A read that found
    /// nothing logs only `Touch` (its consumer's seen-time): it is logged, but no reply
    /// waits for it to be durable (losing it in a crash is the same as the read never
    /// having happened), so an empty poll costs no fsync wait.
    pub fn acknowledges_write(&self) -> bool {
        self.ops.iter().any(|o| !matches!(o.op, Op::Touch { .. }))
    }
}

/// Moves the `Del`s of keys that expired while the command ran to position `at`, and
/// their `expired` events (Redis's `deleteExpiredKeyAndPropagate`, for lazy and active
/// expiry alike) to `props.events_start`, before the events of the command that noticed.
/// `notify_flags` is `notify-keyspace-events`.
pub(crate) fn log_expired(
    ks: &mut Keyspace,
    props: &mut Propagation,
    at: usize,
    notify_flags: u32,
) {
    let expired = ks.take_expired();
    if expired.is_empty() || props.replaying {
        return;
    }
    if keyspace_events::wanted(notify_flags, keyspace_events::EXPIRED) {
        let events: Vec<KeyEvent> = expired
            .iter()
            .map(|(db, key)| KeyEvent {
                db: *db,
                name: "expired",
                key: key.clone(),
                flags: notify_flags,
            })
            .collect();
        let ev_at = props.events_start.min(props.events.len());
        props.events.splice(ev_at..ev_at, events);
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
