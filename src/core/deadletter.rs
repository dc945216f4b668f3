//! Dead-lettering (broker policies, issue #16; the settings are `engine::policy`'s
//! `GroupPolicy`): an entry a consumer group failed to process is moved to a dead-letter
//! stream and acknowledged in the group.
//!
//! A move is ordinary ops in the caller's critical section — per entry one `Append` to the
//! dead-letter stream (its fields, then the origin metadata below), then one `Ack` in the
//! source group — so it lands in one log record: after a crash either both halves are
//! there or neither (the entry is then still pending and is dead-lettered again). The
//! decision (which entries, the new IDs, the time) is made here, live; replay and Raft
//! followers apply the logged ops and never decide again.
//!
//! Metadata fields, after the entry's own: `rill-dlq-source-key`, `rill-dlq-source-id`,
//! `rill-dlq-group`, `rill-dlq-consumer` (the last owner; empty when the entry had been
//! XNACKed, which releases it from its owner), `rill-dlq-deliveries` (the delivery counter),
//! `rill-dlq-time` (Unix ms of the move) and `rill-dlq-reason` (`max-deliver` or
//! `nack-fatal`). An entry deleted from the source stream since its delivery is dead-lettered
//! with the metadata alone.

use bytes::Bytes;

use super::{keyspace_events as events, CommandError, Ctx};
use crate::engine::error::StreamError;
use crate::engine::id::{AddIdSpec, StreamId};
use crate::engine::op::Op;
use crate::engine::stream::Stream;

/// One pending entry to dead-letter.
#[derive(Debug, Clone)]
pub struct Doomed {
    /// The entry's ID in the source stream.
    pub id: StreamId,
    /// Its last owner (empty when it was XNACKed).
    pub consumer: Bytes,
    /// Its delivery counter.
    pub deliveries: u64,
}

/// Why an entry is dead-lettered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Its delivery counter reached the group's MAXDELIVER and its last delivery failed.
    MaxDeliver,
    /// `XNACK … FATAL` under a group with dead-lettering on.
    NackFatal,
}

impl Reason {
    fn as_bytes(self) -> &'static [u8] {
        match self {
            Reason::MaxDeliver => b"max-deliver",
            Reason::NackFatal => b"nack-fatal",
        }
    }
}

/// Moves `entries` of `key`'s group `group` to the stream `dlq` (created if missing) and
/// acknowledges them in the group; returns how many moved. Errors before any change when
/// `dlq` is `key` itself, holds another type, or (cluster mode) is in another hash slot.
pub fn dead_letter(
    ctx: &mut Ctx<'_>,
    key: &Bytes,
    group: &Bytes,
    dlq: &Bytes,
    entries: &[Doomed],
    reason: Reason,
) -> Result<u64, CommandError> {
    if entries.is_empty() {
        return Ok(0);
    }
    if dlq == key {
        return Err(CommandError::Internal(
            "the dead-letter stream is the source stream".into(),
        ));
    }
    if !ctx.ks.same_key_group(key, dlq) {
        // Cluster mode: this node may not own the dead-letter stream's slot.
        return Err(CommandError::Internal(
            "the dead-letter stream is in another hash slot than the source stream (use a hash tag)".into(),
        ));
    }
    let created = ctx.stream(dlq)?.is_none();
    let now = ctx.now_ms;
    let store = ctx.ks.payloads.clone();
    let mut moved = Vec::with_capacity(entries.len());
    for e in entries {
        let mut fields = match ctx.stream(key)? {
            Some(s) => match s.get(e.id, &store) {
                Ok(Some(entry)) => entry.fields,
                Ok(None) => Vec::new(),
                Err(err) => return Err(CommandError::Internal(err.to_string())),
            },
            None => return Err(StreamError::NoSuchKey.into()),
        };
        let meta: [(&[u8], Bytes); 7] = [
            (b"rill-dlq-source-key", key.clone()),
            (b"rill-dlq-source-id", e.id.to_bytes()),
            (b"rill-dlq-group", group.clone()),
            (b"rill-dlq-consumer", e.consumer.clone()),
            (
                b"rill-dlq-deliveries",
                Bytes::from(e.deliveries.to_string()),
            ),
            (b"rill-dlq-time", Bytes::from(now.to_string())),
            (b"rill-dlq-reason", Bytes::from_static(reason.as_bytes())),
        ];
        for (name, value) in meta {
            fields.push(Bytes::from_static(name));
            fields.push(value);
        }
        let id = match ctx.stream(dlq)? {
            Some(s) => s.next_id(AddIdSpec::Auto, now)?,
            None => Stream::new().next_id(AddIdSpec::Auto, now)?,
        };
        ctx.apply(Op::Append {
            key: dlq.clone(),
            id,
            fields,
        })?;
        moved.push(e.id);
    }
    ctx.notify(events::STREAM, "xadd", dlq);
    if created {
        ctx.configure_new_stream(dlq)?;
    }
    ctx.signal_modified(dlq);
    ctx.signal_ready(dlq);
    let n = moved.len() as u64;
    ctx.apply(Op::Ack {
        key: key.clone(),
        group: group.clone(),
        ids: moved,
    })?;
    Ok(n)
}
