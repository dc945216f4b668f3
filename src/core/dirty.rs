//! Redis's dirty counter (`server.dirty`): how many changes a write made, as INFO
//! persistence's `rdb_changes_since_last_save` shows it. Clients and Redis's own tests
//! read it to tell whether a command changed anything (an XREADGROUP that delivers counts
//! one, a read of the consumer's own PEL counts nothing).
//!
//! Redis adds to it command by command; Rill counts the same amounts per applied [`Op`],
//! in [`super::Ctx::apply`], from what the op did. Replay does not count (Redis starts at 0
//! after loading), and nothing resets it: Rill never writes an RDB snapshot, which is
//! what resets Redis's.

use crate::engine::group::ClaimOutcome;
use crate::engine::op::{Applied, Op};

/// What the dirty increment of an op depends on besides the op and its result, taken
/// from the keyspace just before it was applied.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Before {
    /// The op made its consumer exist (Redis's `streamCreateConsumer` counts one).
    pub created_consumer: bool,
    /// A `Trim` right after an `Append` to the same key is XADD's MAXLEN/MINID, which
    /// Redis does not count beyond the XADD itself.
    pub trims_own_append: bool,
    /// Keys a FLUSHDB/FLUSHALL removes (Redis adds `emptyData`'s count).
    pub flushed_keys: u64,
}

/// The dirty increment of one applied op, following `t_stream.c`/`db.c` of Redis 8.6.
pub(crate) fn changes(op: &Op, applied: &Applied, before: Before) -> u64 {
    let Before {
        created_consumer,
        trims_own_append,
        flushed_keys,
    } = before;
    let count = match applied {
        Applied::Count(n) => *n,
        _ => 1,
    };
    let own = match op {
        // MKSTREAM's stream counts with the group it was created for; compaction moves
        // payloads without changing anything a client sees.
        Op::CreateStream { .. } | Op::Relocate { .. } => 0,
        // A moved-in stream counts with its entries' `Append`s (Redis's RESTORE counts one).
        Op::StreamState { .. } => 0,
        Op::Trim { .. } | Op::TrimEntries { .. } if trims_own_append => 0,
        // XNACK: `server.dirty += nacked` in Redis 8.8's xnackCommand, one per ID NACKed
        // (duplicates included); one that NACKed nothing was not logged and counts 0.
        Op::DeleteEntries { .. }
        | Op::Trim { .. }
        | Op::TrimEntries { .. }
        | Op::Ack { .. }
        | Op::Nack { .. } => count,
        // XDELEX counts the entries it deleted (code 1); XACKDEL the PEL entries it removed
        // (codes 1 and 2), whether or not their entries could go too.
        Op::DeleteRefs { .. } => match applied {
            Applied::Results { codes, .. } => codes.iter().filter(|&&c| c == 1).count() as u64,
            _ => 0,
        },
        Op::AckDelete { .. } => match applied {
            Applied::Results { codes, .. } => codes.iter().filter(|&&c| c != -1).count() as u64,
            _ => 0,
        },
        // XADD IDMP's history entry comes with its `Append`, which counted; a re-sent IID
        // answered from the history counts one (Redis's `server.dirty++` there); XCFGSET
        // and XIDMPRECORD one each. The once-a-second expiry and a producer created by a
        // failed XADD are not commands that changed data.
        Op::IdmpRecord { .. } | Op::IdmpProducer { .. } | Op::IdmpExpire { .. } => 0,
        Op::IdmpDuplicate { .. } | Op::IdmpConfig { .. } => 1,
        // RILL.POLICY SET/DEL: one change, as XCFGSET.
        Op::PolicySet { .. } => 1,
        // The NACK time a backoff counts from comes with its XNACK, which counted.
        Op::NackTimes { .. } => 0,
        // The keys removed.
        Op::FlushDb | Op::FlushAll => flushed_keys,
        // A created consumer is all a read that found nothing changes.
        Op::Touch { .. } | Op::ConsumerCreate { .. } => 0,
        // Redelivering from the consumer's own PEL changes only delivery counts and
        // times, which Redis decided are not worth propagating ("XREADGROUP from PEL does
        // not change dirty").
        Op::Redeliver { .. } => 0,
        // One per stream XREADGROUP delivered new entries from.
        Op::Deliver { .. } => 1,
        // One per ID claimed or dropped from the PEL. A claim that only moved the group
        // (LASTID) counts one for that; one that did nothing at all was logged as `Touch`.
        Op::Claim { .. } => match applied {
            Applied::Claims(outcomes) => {
                let changed = outcomes
                    .iter()
                    .filter(|o| **o != ClaimOutcome::Skipped)
                    .count() as u64;
                changed.max(1)
            }
            _ => 0,
        },
        Op::AutoClaim { .. } => match applied {
            Applied::AutoClaim(a) => (a.claimed.len() + a.deleted.len()) as u64,
            _ => 0,
        },
        Op::Del { .. }
        | Op::Rename { .. }
        | Op::ExpireAt { .. }
        | Op::Persist { .. }
        | Op::SetString { .. }
        | Op::Append { .. }
        | Op::SetId { .. }
        | Op::GroupCreate { .. }
        | Op::GroupSetId { .. }
        | Op::GroupDestroy { .. }
        | Op::ConsumerDelete { .. } => 1,
    };
    own + u64::from(created_consumer)
}
