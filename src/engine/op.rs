//! Typed log records: the state changes the log is made of, in the engine's vocabulary,
//! and [`Keyspace::apply`], the one function that performs them.
//!
//! A write command does not mutate the keyspace itself: it works out an [`Op`] (an XADD's
//! ID, the IDs an XREADGROUP delivers, the absolute time of an EXPIRE) and hands it to
//! [`Keyspace::apply`] through the command context, which queues the op for the log only
//! if it applied. Recovery applies the same ops, decoded from the log, through the same
//! function; a replica will too. So what the log says happened is what happened, by
//! construction: there is no path that changes state without producing its record.
//!
//! Every op is deterministic: applying it to the same state gives the same state on any
//! machine and at any time. It carries whatever live execution decided from the clock or
//! the configuration (times, IDs, an approximate trim resolved to an exact rule — see
//! [`Keyspace::apply`], which rewrites such an op to its exact form before it is logged).
//! Where the effect follows from the state alone (XCLAIM's min-idle test against stored
//! delivery times, XAUTOCLAIM's scan) the op records the command's inputs with its time,
//! and replay re-runs the same engine code on the same state.
//!
//! # Encoding (the payload of a log record of kind `Ops`, see `storage::record`)
//!
//! ```text
//! payload := op*
//! op      := u16 db | u8 tag | body (by tag, below)
//! bytes   := u32 len | len bytes          id  := u64 ms | u64 seq      (little endian)
//! ids     := u32 n | n × id               opt := u8 present | u64 value (0 when absent)
//! ```
//!
//! | tag | op | body |
//! |---|---|---|
//! | 1 | `Del` | key |
//! | 2 | `FlushDb` | — |
//! | 3 | `FlushAll` | — |
//! | 4 | `Rename` | from, to |
//! | 5 | `ExpireAt` | key, u64 at_ms |
//! | 6 | `Persist` | key |
//! | 7 | `SetString` | key, value, opt at_ms |
//! | 10 | `CreateStream` | key |
//! | 11 | `Append` | key, id, u32 n, n × bytes (the fields: exactly a packed payload) |
//! | 12 | `Relocate` | key, id, u32 n, n × bytes |
//! | 13 | `DeleteEntries` | key, ids |
//! | 14 | `Trim` | key, u8 rule (1 maxlen, 2 minid), u64 n \| id |
//! | 15 | `SetId` | key, id, opt entries_added, u8 present, id max_deleted |
//! | 20 | `GroupCreate` | key, group, id last, opt entries_read |
//! | 21 | `GroupSetId` | key, group, id last, opt entries_read |
//! | 22 | `GroupDestroy` | key, group |
//! | 23 | `ConsumerCreate` | key, group, consumer, u64 time |
//! | 24 | `ConsumerDelete` | key, group, consumer |
//! | 25 | `Touch` | key, group, consumer, u64 time |
//! | 26 | `Deliver` | key, group, consumer, u64 time, u8 noack, ids |
//! | 27 | `Redeliver` | key, group, consumer, u64 time, ids |
//! | 28 | `Ack` | key, group, ids |
//! | 29 | `Claim` | key, group, consumer, u64 time, u64 min_idle, u64 delivery_time, opt retry_count, u8 flags (1 force, 2 justid), opt-id last_id, ids |
//! | 30 | `AutoClaim` | key, group, consumer, u64 time, id start, u64 min_idle, u64 count, u8 justid |
//! | 31 | `TrimEntries` | key, u8 delref, ids (runs: first, last, first, last …), opt-id freed_through |
//! | 32 | `DeleteRefs` | key, u8 policy (0 keepref, 1 delref, 2 acked), ids |
//! | 33 | `AckDelete` | key, group, u8 policy, ids |
//! | 40 | `IdmpRecord` | key, pid, iid, id |
//! | 41 | `IdmpDuplicate` | key |
//! | 42 | `IdmpProducer` | key, pid |
//! | 43 | `IdmpConfig` | key, u64 duration_s, u64 max_entries |
//! | 44 | `IdmpExpire` | key, u64 now_ms |
//! | 45 | `Nack` | key, group, u8 mode (0 silent, 1 fail, 2 fatal), opt retry_count, u8 force, ids |
//! | 46 | `StreamState` | key, bytes state (`Stream::encode_state`: counters, groups, PELs, consumers, IDMP, NACK zones, policy) |
//! | 47 | `PolicySet` | key, bytes policy (`StreamPolicy::encode`; no field set = the stream's own policy removed) |
//! | 48 | `NackTimes` | key, group, u64 at_ms, ids |
//!
//! The retention sweep (`engine::policy`) adds no op of its own: what it decided is logged
//! as exact `Trim`s (`MINID` cut-off, `MAXLEN` count) or the `TrimEntries` an ACKED/DELREF
//! trim amounted to, so replay never consults the clock or the `stream-retention-*` defaults.
//!
//! A stream moved in from another node (`RILL.RESTORE`, cluster resharding) is logged as
//! one record of `Append`s of its live entries (or a `CreateStream` when it has none), then
//! one `StreamState` with the rest of it, then its TTL as an `ExpireAt`: its entries'
//! payloads live in that record like any XADD's, and replay rebuilds exactly the stream
//! the other node had.
//!
//! XREADGROUP … CLAIM (Redis 8.4) adds no op: per stream it logs a `Claim` of exactly the
//! IDs it took over (min-idle 0, delivery time = the command's time, no FORCE/JUSTID/
//! RETRYCOUNT: each moves to the consumer with one more delivery), then the usual `Deliver`
//! of the new entries — so replay needs neither the clock nor an idle test.
//!
//! An unknown tag or a body that does not parse is reported as a malformed record, never
//! skipped: recovery stops naming the file and offset.

use bytes::{BufMut, Bytes, BytesMut};

use crate::engine::codec::Reader;
use crate::engine::error::StreamError;
use crate::engine::group::{
    AutoClaim, AutoClaimScan, ClaimOptions, ClaimOutcome, ConsumerGroup, NackMode, NackOptions,
};
use crate::engine::id::{AddIdSpec, StreamId};
use crate::engine::idmp::{IdmpError, Recorded};
use crate::engine::index::{NodeLimits, TrimRule};
use crate::engine::keyspace::{Keyspace, Value};
use crate::engine::policy::StreamPolicy;
use crate::engine::refs::{GroupMut, RefPolicy};
use crate::engine::stream::{RefTrim, Stream, TrimSpec};

/// One state change. Keys, groups and consumers are byte strings; `db` travels beside the
/// op (see [`LoggedOp`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// A key removed (DEL, expiry, a key's replacement by another type is `SetString`).
    Del { key: Bytes },
    /// Every key of the op's database removed.
    FlushDb,
    /// Every key of every database removed.
    FlushAll,
    /// `from` moved to `to` (replacing it) with its TTL.
    Rename { from: Bytes, to: Bytes },
    /// An existing key's absolute expiry (Unix ms, at most `i64::MAX`).
    ExpireAt { key: Bytes, at_ms: u64 },
    /// An existing key's expiry removed.
    Persist { key: Bytes },
    /// A string stored (replacing any value and TTL), with its absolute expiry if any.
    SetString {
        key: Bytes,
        value: Bytes,
        at_ms: Option<u64>,
    },
    /// An empty stream created (XGROUP CREATE … MKSTREAM).
    CreateStream { key: Bytes },
    /// An entry appended under an ID above the stream's last; creates the stream.
    Append {
        key: Bytes,
        id: StreamId,
        fields: Vec<Bytes>,
    },
    /// A live entry's fields copied into a newer record by compaction: the state does not
    /// change, the entry's payload moves to this record.
    Relocate {
        key: Bytes,
        id: StreamId,
        fields: Vec<Bytes>,
    },
    /// Entries deleted by ID (XDEL).
    DeleteEntries { key: Bytes, ids: Vec<StreamId> },
    /// Entries trimmed from the head. Live execution may pass an approximate spec;
    /// [`Keyspace::apply`] rewrites it to the exact rule that removes the same entries,
    /// and a DELREF or ACKED one to the [`Op::TrimEntries`] it amounted to.
    Trim { key: Bytes, spec: TrimSpec },
    /// A DELREF (`delref`) or ACKED trim as it came out: the live entries inside these
    /// runs `(first, last)` deleted (and with `delref` dropped from every PEL), then the
    /// empty nodes keyed up to `freed_through` freed. Logged instead of the rule because which entries ACKED
    /// keeps depends on the node layout; as runs, so that trimming a million entries
    /// logs a few bytes, as a KEEPREF trim does.
    TrimEntries {
        key: Bytes,
        delref: bool,
        runs: Vec<(StreamId, StreamId)>,
        freed_through: Option<StreamId>,
    },
    /// XDELEX: entries deleted by ID under a reference policy. Replays exactly: the
    /// policy looks only at the groups, which replay rebuilds first.
    DeleteRefs {
        key: Bytes,
        policy: RefPolicy,
        ids: Vec<StreamId>,
    },
    /// XACKDEL: IDs acknowledged in `group`, then their entries deleted under `policy`.
    AckDelete {
        key: Bytes,
        group: Bytes,
        policy: RefPolicy,
        ids: Vec<StreamId>,
    },
    /// XSETID.
    SetId {
        key: Bytes,
        last: StreamId,
        entries_added: Option<u64>,
        max_deleted: Option<StreamId>,
    },
    /// A consumer group created at a position.
    GroupCreate {
        key: Bytes,
        group: Bytes,
        last: StreamId,
        entries_read: Option<u64>,
    },
    /// A group moved (XGROUP SETID).
    GroupSetId {
        key: Bytes,
        group: Bytes,
        last: StreamId,
        entries_read: Option<u64>,
    },
    /// A group destroyed.
    GroupDestroy { key: Bytes, group: Bytes },
    /// A consumer created (XGROUP CREATECONSUMER) at `time_ms`.
    ConsumerCreate {
        key: Bytes,
        group: Bytes,
        consumer: Bytes,
        time_ms: u64,
    },
    /// A consumer and its pending entries removed.
    ConsumerDelete {
        key: Bytes,
        group: Bytes,
        consumer: Bytes,
    },
    /// A read attempt that delivered nothing: the consumer is created if needed and its
    /// seen-time set.
    Touch {
        key: Bytes,
        group: Bytes,
        consumer: Bytes,
        time_ms: u64,
    },
    /// XREADGROUP `>`: these new entries delivered to `consumer` at `time_ms` (added to the
    /// PEL unless `noack`), the group's position moved past each. One op per stream read.
    Deliver {
        key: Bytes,
        group: Bytes,
        consumer: Bytes,
        time_ms: u64,
        noack: bool,
        ids: Vec<StreamId>,
    },
    /// XREADGROUP with an ID: the consumer's own pending entries delivered again.
    Redeliver {
        key: Bytes,
        group: Bytes,
        consumer: Bytes,
        time_ms: u64,
        ids: Vec<StreamId>,
    },
    /// XACK.
    Ack {
        key: Bytes,
        group: Bytes,
        ids: Vec<StreamId>,
    },
    /// XCLAIM, with the command's time and options.
    Claim {
        key: Bytes,
        group: Bytes,
        consumer: Bytes,
        time_ms: u64,
        opts: ClaimOptions,
        last_id: Option<StreamId>,
        ids: Vec<StreamId>,
    },
    /// XNACK (Redis 8.8): these IDs released into the group's NACK zone, in order. Needs
    /// no time: a NACKed entry's delivery time is 0 whenever it happens.
    Nack {
        key: Bytes,
        group: Bytes,
        opts: NackOptions,
        ids: Vec<StreamId>,
    },
    /// XAUTOCLAIM, with the command's time and arguments.
    AutoClaim {
        key: Bytes,
        group: Bytes,
        consumer: Bytes,
        scan: AutoClaimScan,
    },
    /// XADD IDMP/IDMPAUTO (logged after its `Append`, before any trim) or XIDMPRECORD:
    /// `iid → id` recorded at the tail of producer `pid`'s history (which evicts its
    /// oldest IID past the stream's IDMP-MAXSIZE). IDMPAUTO's IID is logged as computed.
    IdmpRecord {
        key: Bytes,
        pid: Bytes,
        iid: Bytes,
        id: StreamId,
    },
    /// An XADD IDMP answered from the history: counted in `iids-duplicates`.
    IdmpDuplicate { key: Bytes },
    /// An XADD IDMP that failed after Redis had already created its producer (which
    /// then shows in `pids-tracked`).
    IdmpProducer { key: Bytes, pid: Bytes },
    /// XCFGSET (and a stream created while `stream-idmp-*` differ from their defaults):
    /// the stream's limits; a changed value clears its producers.
    IdmpConfig {
        key: Bytes,
        duration_s: u64,
        max_entries: u64,
    },
    /// The IDMP sweep at `now_ms`: IIDs whose entry ID is IDMP-DURATION old, and
    /// producers left empty, removed (the time is the live sweep's, never the replay's).
    IdmpExpire { key: Bytes, now_ms: u64 },
    /// A stream's counters, groups (consumers, PELs, NACK zones) and IDMP state, as another
    /// node had them, put on the stream just rebuilt from its entries (a stream moved
    /// between cluster nodes). The stream must exist and have no group yet.
    StreamState { key: Bytes, state: Bytes },
    /// RILL.POLICY SET/DEL: the stream's own broker policy, replaced whole (an empty one
    /// removes it and the stream follows the server's defaults again).
    PolicySet { key: Bytes, policy: StreamPolicy },
    /// When these IDs of a group with a redelivery backoff (broker policies) were XNACKed:
    /// logged after the `Nack` in the same record, so the backoff step of a NACKed entry
    /// counts from the same time after a restart and on every replica.
    NackTimes {
        key: Bytes,
        group: Bytes,
        at_ms: u64,
        ids: Vec<StreamId>,
    },
}

impl Op {
    /// The op's name, for messages (its fields may be megabytes).
    pub fn name(&self) -> &'static str {
        match self {
            Op::Del { .. } => "Del",
            Op::FlushDb => "FlushDb",
            Op::FlushAll => "FlushAll",
            Op::Rename { .. } => "Rename",
            Op::ExpireAt { .. } => "ExpireAt",
            Op::Persist { .. } => "Persist",
            Op::SetString { .. } => "SetString",
            Op::CreateStream { .. } => "CreateStream",
            Op::Append { .. } => "Append",
            Op::Relocate { .. } => "Relocate",
            Op::DeleteEntries { .. } => "DeleteEntries",
            Op::Trim { .. } => "Trim",
            Op::TrimEntries { .. } => "TrimEntries",
            Op::DeleteRefs { .. } => "DeleteRefs",
            Op::AckDelete { .. } => "AckDelete",
            Op::SetId { .. } => "SetId",
            Op::GroupCreate { .. } => "GroupCreate",
            Op::GroupSetId { .. } => "GroupSetId",
            Op::GroupDestroy { .. } => "GroupDestroy",
            Op::ConsumerCreate { .. } => "ConsumerCreate",
            Op::ConsumerDelete { .. } => "ConsumerDelete",
            Op::Touch { .. } => "Touch",
            Op::Deliver { .. } => "Deliver",
            Op::Redeliver { .. } => "Redeliver",
            Op::Ack { .. } => "Ack",
            Op::Claim { .. } => "Claim",
            Op::AutoClaim { .. } => "AutoClaim",
            Op::Nack { .. } => "Nack",
            Op::IdmpRecord { .. } => "IdmpRecord",
            Op::IdmpDuplicate { .. } => "IdmpDuplicate",
            Op::IdmpProducer { .. } => "IdmpProducer",
            Op::IdmpConfig { .. } => "IdmpConfig",
            Op::IdmpExpire { .. } => "IdmpExpire",
            Op::StreamState { .. } => "StreamState",
            Op::PolicySet { .. } => "PolicySet",
            Op::NackTimes { .. } => "NackTimes",
        }
    }
}

/// An op with the database it applies to: the unit a log record is a sequence of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedOp {
    /// Database index.
    pub db: u16,
    /// The change.
    pub op: Op,
}

/// What applying an op produced, for the reply of the command that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Nothing to report.
    Done,
    /// The op changed nothing (no entry deleted, trimmed or acknowledged): it is not logged.
    /// Deciding that here, where the change is made, spares each command a dry run of it.
    Unchanged,
    /// A count: entries deleted or trimmed, IDs acknowledged, pending entries dropped.
    Count(u64),
    /// Per ID given to XCLAIM, what happened to it.
    Claims(Vec<ClaimOutcome>),
    /// XAUTOCLAIM's result.
    AutoClaim(AutoClaim),
    /// Per ID given to XDELEX or XACKDEL, its result code (see
    /// [`crate::engine::stream::delete_result`]); `changed` false when nothing changed,
    /// and then the op is not logged.
    Results { codes: Vec<i64>, changed: bool },
}

impl Applied {
    /// Whether the op changed the state, and so is logged.
    pub fn changed(&self) -> bool {
        !matches!(
            self,
            Applied::Unchanged | Applied::Results { changed: false, .. }
        )
    }
}

/// Why an op could not be applied. Live execution checks everything a client can get wrong
/// before it builds an op, so this is a bug there; in recovery it means the log does not fit
/// the state (damage or a foreign log), reported with the record's file and offset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// The key is missing or holds another type.
    #[error("no stream under key '{0}'")]
    NoStream(String),
    /// The key is missing.
    #[error("no key '{0}'")]
    NoKey(String),
    /// The key exists (creating a stream over it).
    #[error("key '{0}' already exists")]
    KeyExists(String),
    /// The group is missing.
    #[error("no group '{group}' in stream '{key}'")]
    NoGroup { key: String, group: String },
    /// A group that already exists.
    #[error("group '{group}' already exists in stream '{key}'")]
    GroupExists { key: String, group: String },
    /// The stream refused the change (an ID not above the last, …).
    #[error("{0}")]
    Stream(#[from] StreamError),
    /// The database index is out of range.
    #[error("database {0} out of range")]
    NoDb(usize),
    /// An IDMP change that does not fit the stream's history (an IID recorded with
    /// another ID, an entry that does not exist).
    #[error("{0}")]
    Idmp(#[from] IdmpError),
    /// A moved stream's state that does not decode, or a stream that already has groups.
    #[error("malformed or misplaced stream state for key '{0}'")]
    BadState(String),
}

/// `Count(n)`, or `Unchanged` when `n` is 0.
fn changed(n: u64) -> Applied {
    if n == 0 {
        Applied::Unchanged
    } else {
        Applied::Count(n)
    }
}

/// The `Touch` an op that changed only a consumer's seen-time is logged as.
fn touch(key: &Bytes, group: &Bytes, consumer: &Bytes, time_ms: u64) -> Op {
    Op::Touch {
        key: key.clone(),
        group: group.clone(),
        consumer: consumer.clone(),
        time_ms,
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

impl Keyspace {
    fn stream_for_op(&mut self, db: usize, key: &[u8]) -> Result<&mut Stream, ApplyError> {
        self.stream_raw_mut(db, key)
            .ok_or_else(|| ApplyError::NoStream(text(key)))
    }

    fn group_for_op(
        &mut self,
        db: usize,
        key: &[u8],
        group: &[u8],
    ) -> Result<GroupMut<'_>, ApplyError> {
        self.stream_for_op(db, key)?
            .groups
            .get_mut(group)
            .ok_or_else(|| ApplyError::NoGroup {
                key: text(key),
                group: text(group),
            })
    }

    /// [`Self::group_for_op`], plus whether each of `ids` is still an entry of the stream
    /// (XCLAIM and XNACK treat the PEL entries of deleted entries differently).
    fn group_and_presence(
        &mut self,
        db: usize,
        key: &[u8],
        group: &[u8],
        ids: &[StreamId],
    ) -> Result<(GroupMut<'_>, Vec<bool>), ApplyError> {
        let stream = self.stream_for_op(db, key)?;
        let present = ids.iter().map(|id| stream.contains(*id)).collect();
        let g = stream
            .groups
            .get_mut(group)
            .ok_or_else(|| ApplyError::NoGroup {
                key: text(key),
                group: text(group),
            })?;
        Ok((g, present))
    }

    /// Applies `op` to database `db`: the one way the keyspace's data changes, used by live
    /// execution, recovery and replicas alike.
    ///
    /// Nothing here reads the clock or expires keys (an expiry is its own `Del`), and the
    /// only configuration used is `limits`, which decides how entries are grouped into
    /// nodes, never which entries exist. An approximate `Trim` is rewritten in place to the
    /// exact rule that removed the same entries, so the logged op replays the same way under
    /// any node layout. On error nothing changed.
    pub fn apply(
        &mut self,
        db: usize,
        op: &mut Op,
        limits: NodeLimits,
    ) -> Result<Applied, ApplyError> {
        if db >= self.db_count() {
            return Err(ApplyError::NoDb(db));
        }
        match op {
            Op::Del { key } => {
                let existed = self.remove_now(db, key);
                Ok(Applied::Count(u64::from(existed)))
            }
            Op::FlushDb => {
                self.flush_db(db);
                Ok(Applied::Done)
            }
            Op::FlushAll => {
                for d in 0..self.db_count() {
                    self.flush_db(d);
                }
                Ok(Applied::Done)
            }
            Op::Rename { from, to } => {
                if !self.rename_now(db, from, to.clone()) {
                    return Err(ApplyError::NoKey(text(from)));
                }
                Ok(Applied::Done)
            }
            Op::ExpireAt { key, at_ms } => {
                if !self.db(db).contains_raw(key) {
                    return Err(ApplyError::NoKey(text(key)));
                }
                self.set_expire(db, key, *at_ms);
                Ok(Applied::Done)
            }
            Op::Persist { key } => Ok(Applied::Count(u64::from(self.persist(db, key)))),
            Op::SetString { key, value, at_ms } => {
                self.insert(db, key.clone(), Value::String(value.clone()));
                if let Some(at) = at_ms {
                    self.set_expire(db, key, *at);
                }
                Ok(Applied::Done)
            }
            Op::CreateStream { key } => {
                if self.db(db).contains_raw(key) {
                    return Err(ApplyError::KeyExists(text(key)));
                }
                self.insert(db, key.clone(), Value::Stream(Box::default()));
                Ok(Applied::Done)
            }
            Op::Append { key, id, fields } => {
                if !self.db(db).contains_raw(key) {
                    self.insert(db, key.clone(), Value::Stream(Box::default()));
                }
                let store = self.payloads.clone();
                let stream = self.stream_for_op(db, key)?;
                stream.add(AddIdSpec::Explicit(*id), fields, 0, limits, &store)?;
                Ok(Applied::Done)
            }
            // The payload's new home is taken from the record by whoever appended or read it.
            Op::Relocate { key, id, .. } => {
                let stream = self.stream_for_op(db, key)?;
                Ok(Applied::Count(u64::from(stream.contains(*id))))
            }
            Op::DeleteEntries { key, ids } => {
                let stream = self.stream_for_op(db, key)?;
                Ok(changed(stream.delete(ids)))
            }
            Op::Trim { key, spec } if spec.refs != RefPolicy::KeepRef => {
                let delref = spec.refs == RefPolicy::DelRef;
                let stream = self.stream_for_op(db, key)?;
                let RefTrim {
                    runs,
                    removed,
                    freed_through,
                } = stream.trim_with_refs(*spec);
                if runs.is_empty() && freed_through.is_none() {
                    return Ok(Applied::Unchanged);
                }
                *op = Op::TrimEntries {
                    key: key.clone(),
                    delref,
                    runs,
                    freed_through,
                };
                Ok(Applied::Count(removed))
            }
            Op::TrimEntries {
                key,
                delref,
                runs,
                freed_through,
            } => {
                let stream = self.stream_for_op(db, key)?;
                let trim = RefTrim {
                    runs: std::mem::take(runs),
                    removed: 0,
                    freed_through: *freed_through,
                };
                let result = stream.replay_ref_trim(&trim, *delref);
                *runs = trim.runs;
                Ok(Applied::Count(result?))
            }
            Op::DeleteRefs { key, policy, ids } => {
                let stream = self.stream_for_op(db, key)?;
                let (codes, changed) = stream.delete_with_refs(ids, *policy);
                Ok(Applied::Results { codes, changed })
            }
            Op::AckDelete {
                key,
                group,
                policy,
                ids,
            } => {
                let stream = self.stream_for_op(db, key)?;
                let (codes, changed) =
                    stream
                        .ack_delete(group, ids, *policy)
                        .ok_or_else(|| ApplyError::NoGroup {
                            key: text(key),
                            group: text(group),
                        })?;
                Ok(Applied::Results { codes, changed })
            }
            Op::Trim { key, spec } => {
                let stream = self.stream_for_op(db, key)?;
                let nodes = stream.radix_tree_keys();
                let removed = stream.trim(*spec);
                // An emptied node freed is a change too (XINFO shows it), even with no entry.
                if removed == 0 && nodes == stream.radix_tree_keys() {
                    return Ok(Applied::Unchanged);
                }
                if spec.approx {
                    *spec = TrimSpec {
                        rule: stream.exact_head_rule(),
                        approx: false,
                        limit: 0,
                        refs: RefPolicy::KeepRef,
                    };
                }
                Ok(Applied::Count(removed))
            }
            Op::SetId {
                key,
                last,
                entries_added,
                max_deleted,
            } => {
                let stream = self.stream_for_op(db, key)?;
                stream.set_id(*last, *entries_added, *max_deleted)?;
                Ok(Applied::Done)
            }
            Op::GroupCreate {
                key,
                group,
                last,
                entries_read,
            } => {
                let stream = self.stream_for_op(db, key)?;
                if stream.groups.contains_key(group) {
                    return Err(ApplyError::GroupExists {
                        key: text(key),
                        group: text(group),
                    });
                }
                // An owned copy of the name: the argument may pin a connection's read buffer.
                stream.groups.insert(
                    Bytes::copy_from_slice(group),
                    ConsumerGroup::new(*last, *entries_read),
                );
                Ok(Applied::Done)
            }
            Op::GroupSetId {
                key,
                group,
                last,
                entries_read,
            } => {
                self.group_for_op(db, key, group)?
                    .set_position(*last, *entries_read);
                Ok(Applied::Done)
            }
            Op::GroupDestroy { key, group } => {
                let stream = self.stream_for_op(db, key)?;
                Ok(Applied::Count(u64::from(
                    stream.groups.remove(&group[..]).is_some(),
                )))
            }
            Op::ConsumerCreate {
                key,
                group,
                consumer,
                time_ms,
            } => {
                let created = self
                    .group_for_op(db, key, group)?
                    .create_consumer(consumer, *time_ms);
                Ok(Applied::Count(u64::from(created)))
            }
            Op::ConsumerDelete {
                key,
                group,
                consumer,
            } => {
                let dropped = self.group_for_op(db, key, group)?.delete_consumer(consumer);
                Ok(Applied::Count(dropped.map_or(0, |n| n as u64)))
            }
            Op::Touch {
                key,
                group,
                consumer,
                time_ms,
            } => {
                let created = self
                    .group_for_op(db, key, group)?
                    .touch_consumer(consumer, *time_ms);
                Ok(Applied::Count(u64::from(created)))
            }
            Op::Deliver {
                key,
                group,
                consumer,
                time_ms,
                noack,
                ids,
            } => {
                let stream = self.stream_for_op(db, key)?;
                let counters = stream.counters();
                let mut g =
                    stream
                        .groups
                        .get_mut(&group[..])
                        .ok_or_else(|| ApplyError::NoGroup {
                            key: text(key),
                            group: text(group),
                        })?;
                g.touch_consumer(consumer, *time_ms);
                for id in ids.iter() {
                    g.advance(*id, &counters);
                    if !*noack {
                        g.deliver(*id, consumer, *time_ms);
                    }
                }
                Ok(Applied::Done)
            }
            Op::Redeliver {
                key,
                group,
                consumer,
                time_ms,
                ids,
            } => {
                let mut g = self.group_for_op(db, key, group)?;
                g.touch_consumer(consumer, *time_ms);
                for id in ids.iter() {
                    g.redeliver(*id, *time_ms);
                }
                Ok(Applied::Done)
            }
            Op::Ack { key, group, ids } => {
                let mut g = self.group_for_op(db, key, group)?;
                let acked = ids.iter().filter(|id| g.ack(**id)).count();
                Ok(changed(acked as u64))
            }
            Op::Claim {
                key,
                group,
                consumer,
                time_ms,
                opts,
                last_id,
                ids,
            } => {
                let (mut g, present) = self.group_and_presence(db, key, group, ids)?;
                let moved = last_id.is_some_and(|last| g.raise_last_delivered(last));
                g.touch_consumer(consumer, *time_ms);
                let outcomes: Vec<ClaimOutcome> = ids
                    .iter()
                    .zip(present)
                    .map(|(id, in_stream)| g.claim(*id, consumer, in_stream, opts, *time_ms))
                    .collect();
                if !moved && outcomes.iter().all(|o| *o == ClaimOutcome::Skipped) {
                    // Nothing but the consumer's seen-time changed (a claimer's empty poll):
                    // logged as what it was, so no reply waits for it.
                    *op = touch(key, group, consumer, *time_ms);
                }
                Ok(Applied::Claims(outcomes))
            }
            Op::Nack {
                key,
                group,
                opts,
                ids,
            } => {
                let (mut g, present) = self.group_and_presence(db, key, group, ids)?;
                let nacked = ids
                    .iter()
                    .zip(present)
                    .filter(|(id, in_stream)| g.nack(**id, *in_stream, opts))
                    .count();
                Ok(changed(nacked as u64))
            }
            Op::AutoClaim {
                key,
                group,
                consumer,
                scan,
            } => {
                let stream = self.stream_for_op(db, key)?;
                // The scan asks the index whether entries exist while it changes the group.
                let (mut g, index) =
                    stream
                        .group_and_index_mut(group)
                        .ok_or_else(|| ApplyError::NoGroup {
                            key: text(key),
                            group: text(group),
                        })?;
                g.touch_consumer(consumer, scan.now_ms);
                let result = g.auto_claim(consumer, scan, |id| index.get(id).is_some());
                drop(g);
                if result.claimed.is_empty() && result.deleted.is_empty() {
                    *op = touch(key, group, consumer, scan.now_ms);
                }
                Ok(Applied::AutoClaim(result))
            }
            Op::IdmpRecord { key, pid, iid, id } => {
                let stream = self.stream_for_op(db, key)?;
                if !stream.contains(*id) {
                    return Err(IdmpError::NoSuchMessage.into());
                }
                match stream.idmp_mut().record(pid, iid, *id) {
                    Recorded::Added => {
                        self.track_idmp(db, key);
                        Ok(Applied::Done)
                    }
                    Recorded::Same => Ok(Applied::Unchanged),
                    Recorded::Conflict(_) => Err(IdmpError::IidConflict.into()),
                }
            }
            Op::IdmpDuplicate { key } => {
                self.stream_for_op(db, key)?.idmp_mut().count_duplicate();
                Ok(Applied::Done)
            }
            Op::IdmpProducer { key, pid } => {
                let created = self.stream_for_op(db, key)?.idmp_mut().ensure_producer(pid);
                Ok(if created {
                    Applied::Done
                } else {
                    Applied::Unchanged
                })
            }
            Op::IdmpConfig {
                key,
                duration_s,
                max_entries,
            } => {
                let stream = self.stream_for_op(db, key)?;
                if !(crate::engine::idmp::MIN_DURATION..=crate::engine::idmp::MAX_DURATION)
                    .contains(duration_s)
                {
                    return Err(IdmpError::DurationRange.into());
                }
                if !(crate::engine::idmp::MIN_MAXSIZE..=crate::engine::idmp::MAX_MAXSIZE)
                    .contains(max_entries)
                {
                    return Err(IdmpError::MaxsizeRange.into());
                }
                let changed = stream.idmp_mut().configure(*duration_s, *max_entries);
                Ok(if changed {
                    Applied::Done
                } else {
                    Applied::Unchanged
                })
            }
            Op::IdmpExpire { key, now_ms } => {
                let (iids, producers) = self.stream_for_op(db, key)?.idmp_mut().expire(*now_ms);
                Ok(changed(iids + producers))
            }
            Op::StreamState { key, state } => {
                let stream = self.stream_for_op(db, key)?;
                // Checked on a copy, so a malformed state changes nothing.
                let mut restored = stream.clone();
                restored
                    .restore_state(state.clone())
                    .ok_or_else(|| ApplyError::BadState(text(key)))?;
                let has_iids = restored.idmp().iids_tracked() > 0;
                let has_policy = restored.policy().is_some();
                *stream = restored;
                if has_policy {
                    self.note_policy();
                }
                if has_iids {
                    self.track_idmp(db, key);
                }
                Ok(Applied::Done)
            }
            Op::PolicySet { key, policy } => {
                let stream = self.stream_for_op(db, key)?;
                let old = stream.policy().cloned().unwrap_or_default();
                if old == *policy {
                    return Ok(Applied::Unchanged);
                }
                stream.set_policy(policy.clone());
                self.note_policy();
                Ok(Applied::Done)
            }
            Op::NackTimes {
                key,
                group,
                at_ms,
                ids,
            } => {
                self.note_nacks(db, key, group, ids, *at_ms);
                Ok(Applied::Done)
            }
        }
    }
}

impl Keyspace {
    /// Points the entries a just-appended (or just-replayed) record carries at their
    /// payloads inside it: new entries leave the resident set for the cache, relocated
    /// entries move to their new copy. `payload_at` is where the record's payload starts in
    /// the log (segment, offset); `spans` are where each op's fields are in it. Entries
    /// deleted since (an XADD then a DEL in one EXEC) are skipped.
    pub fn locate_payloads(
        &mut self,
        ops: &[LoggedOp],
        spans: &[FieldSpan],
        payload_at: (u64, u64),
    ) {
        let store = self.payloads.clone();
        let mut unlocated = Vec::new();
        for &(i, off, len) in spans {
            let Some(LoggedOp { db, op }) = ops.get(i) else {
                continue;
            };
            let (Op::Append { key, id, fields } | Op::Relocate { key, id, fields }) = op else {
                continue;
            };
            let at = crate::storage::log::pack_pos(payload_at.0, payload_at.1 + off as u64);
            // The entry under this key and ID must hold these very bytes: a stream renamed
            // in the same transaction, and another created under the old name, must not
            // swap payloads.
            let located = self.relocate_payload(*db as usize, key, *id, at, |h| {
                store.locate_if_same(h, at, fields, len)
            });
            if located.is_none() {
                unlocated.push((
                    at,
                    crate::engine::payload::Payload::pack(fields)
                        .packed()
                        .clone(),
                ));
            }
        }
        store.settle_resident(&unlocated);
    }
}

// -------------------------------------------------------------------------------------------
// Encoding
// -------------------------------------------------------------------------------------------

mod tag {
    pub const DEL: u8 = 1;
    pub const FLUSHDB: u8 = 2;
    pub const FLUSHALL: u8 = 3;
    pub const RENAME: u8 = 4;
    pub const EXPIREAT: u8 = 5;
    pub const PERSIST: u8 = 6;
    pub const SETSTRING: u8 = 7;
    pub const CREATESTREAM: u8 = 10;
    pub const APPEND: u8 = 11;
    pub const RELOCATE: u8 = 12;
    pub const DELETEENTRIES: u8 = 13;
    pub const TRIM: u8 = 14;
    pub const SETID: u8 = 15;
    pub const GROUPCREATE: u8 = 20;
    pub const GROUPSETID: u8 = 21;
    pub const GROUPDESTROY: u8 = 22;
    pub const CONSUMERCREATE: u8 = 23;
    pub const CONSUMERDELETE: u8 = 24;
    pub const TOUCH: u8 = 25;
    pub const DELIVER: u8 = 26;
    pub const REDELIVER: u8 = 27;
    pub const ACK: u8 = 28;
    pub const CLAIM: u8 = 29;
    pub const AUTOCLAIM: u8 = 30;
    pub const TRIMENTRIES: u8 = 31;
    pub const DELETEREFS: u8 = 32;
    pub const ACKDELETE: u8 = 33;
    pub const IDMPRECORD: u8 = 40;
    pub const IDMPDUPLICATE: u8 = 41;
    pub const IDMPPRODUCER: u8 = 42;
    pub const IDMPCONFIG: u8 = 43;
    pub const IDMPEXPIRE: u8 = 44;
    pub const NACK: u8 = 45;
    pub const STREAMSTATE: u8 = 46;
    pub const POLICYSET: u8 = 47;
    pub const NACKTIMES: u8 = 48;
}

/// Where one op's entry fields landed inside the encoded payload: the op's index, the
/// offset of its first field from the start of the payload, and the bytes they span.
/// The fields are stored exactly in the packed payload form, so the index can point at
/// them in the log without another copy.
pub type FieldSpan = (usize, usize, u32);

struct Enc<'a>(&'a mut BytesMut);

impl Enc<'_> {
    fn u8(&mut self, v: u8) {
        self.0.put_u8(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.put_u32_le(v);
    }
    fn u64(&mut self, v: u64) {
        self.0.put_u64_le(v);
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.0.put_slice(b);
    }
    fn id(&mut self, id: StreamId) {
        self.u64(id.ms);
        self.u64(id.seq);
    }
    fn ids(&mut self, ids: &[StreamId]) {
        self.u32(ids.len() as u32);
        for id in ids {
            self.id(*id);
        }
    }
    fn opt(&mut self, v: Option<u64>) {
        self.u8(u8::from(v.is_some()));
        self.u64(v.unwrap_or(0));
    }
    fn opt_id(&mut self, v: Option<StreamId>) {
        self.u8(u8::from(v.is_some()));
        self.id(v.unwrap_or_default());
    }
}

/// Appends the encoding of `ops` to `out`; returns where entries' fields landed, relative
/// to the first byte written.
pub fn encode(ops: &[LoggedOp], out: &mut BytesMut) -> Vec<FieldSpan> {
    let mut spans = Vec::new();
    encode_into(ops, out, &mut spans);
    spans
}

/// [`encode`], with the spans appended to a vector the caller reuses (the commit path:
/// no allocation per command).
pub fn encode_into(ops: &[LoggedOp], out: &mut BytesMut, spans: &mut Vec<FieldSpan>) {
    let start = out.len();
    for (i, LoggedOp { db, op }) in ops.iter().enumerate() {
        let mut e = Enc(out);
        e.0.put_u16_le(*db);
        match op {
            Op::Del { key } => {
                e.u8(tag::DEL);
                e.bytes(key);
            }
            Op::FlushDb => e.u8(tag::FLUSHDB),
            Op::FlushAll => e.u8(tag::FLUSHALL),
            Op::Rename { from, to } => {
                e.u8(tag::RENAME);
                e.bytes(from);
                e.bytes(to);
            }
            Op::ExpireAt { key, at_ms } => {
                e.u8(tag::EXPIREAT);
                e.bytes(key);
                e.u64(*at_ms);
            }
            Op::Persist { key } => {
                e.u8(tag::PERSIST);
                e.bytes(key);
            }
            Op::SetString { key, value, at_ms } => {
                e.u8(tag::SETSTRING);
                e.bytes(key);
                e.bytes(value);
                e.opt(*at_ms);
            }
            Op::CreateStream { key } => {
                e.u8(tag::CREATESTREAM);
                e.bytes(key);
            }
            Op::Append { key, id, fields } | Op::Relocate { key, id, fields } => {
                e.u8(if matches!(op, Op::Append { .. }) {
                    tag::APPEND
                } else {
                    tag::RELOCATE
                });
                e.bytes(key);
                e.id(*id);
                e.u32(fields.len() as u32);
                let from = e.0.len();
                for f in fields {
                    e.bytes(f);
                }
                spans.push((i, from - start, (e.0.len() - from) as u32));
            }
            Op::DeleteEntries { key, ids } => {
                e.u8(tag::DELETEENTRIES);
                e.bytes(key);
                e.ids(ids);
            }
            Op::TrimEntries {
                key,
                delref,
                runs,
                freed_through,
            } => {
                e.u8(tag::TRIMENTRIES);
                e.bytes(key);
                e.u8(u8::from(*delref));
                let ends: Vec<StreamId> = runs.iter().flat_map(|&(a, b)| [a, b]).collect();
                e.ids(&ends);
                e.opt_id(*freed_through);
            }
            Op::DeleteRefs { key, policy, ids } => {
                e.u8(tag::DELETEREFS);
                e.bytes(key);
                e.u8(policy.code());
                e.ids(ids);
            }
            Op::Nack {
                key,
                group,
                opts,
                ids,
            } => {
                e.u8(tag::NACK);
                e.bytes(key);
                e.bytes(group);
                e.u8(opts.mode.code());
                e.opt(opts.retry_count);
                e.u8(u8::from(opts.force));
                e.ids(ids);
            }
            Op::AckDelete {
                key,
                group,
                policy,
                ids,
            } => {
                e.u8(tag::ACKDELETE);
                e.bytes(key);
                e.bytes(group);
                e.u8(policy.code());
                e.ids(ids);
            }
            Op::Trim { key, spec } => {
                // Only KEEPREF trims are logged as rules (`apply` rewrites the others).
                debug_assert_eq!(spec.refs, RefPolicy::KeepRef);
                e.u8(tag::TRIM);
                e.bytes(key);
                match spec.rule {
                    TrimRule::MaxLen(n) => {
                        e.u8(1);
                        e.u64(n);
                    }
                    TrimRule::MinId(id) => {
                        e.u8(2);
                        e.id(id);
                    }
                }
            }
            Op::SetId {
                key,
                last,
                entries_added,
                max_deleted,
            } => {
                e.u8(tag::SETID);
                e.bytes(key);
                e.id(*last);
                e.opt(*entries_added);
                e.opt_id(*max_deleted);
            }
            Op::GroupCreate {
                key,
                group,
                last,
                entries_read,
            }
            | Op::GroupSetId {
                key,
                group,
                last,
                entries_read,
            } => {
                e.u8(if matches!(op, Op::GroupCreate { .. }) {
                    tag::GROUPCREATE
                } else {
                    tag::GROUPSETID
                });
                e.bytes(key);
                e.bytes(group);
                e.id(*last);
                e.opt(*entries_read);
            }
            Op::GroupDestroy { key, group } => {
                e.u8(tag::GROUPDESTROY);
                e.bytes(key);
                e.bytes(group);
            }
            Op::ConsumerCreate {
                key,
                group,
                consumer,
                time_ms,
            }
            | Op::Touch {
                key,
                group,
                consumer,
                time_ms,
            } => {
                e.u8(if matches!(op, Op::Touch { .. }) {
                    tag::TOUCH
                } else {
                    tag::CONSUMERCREATE
                });
                e.bytes(key);
                e.bytes(group);
                e.bytes(consumer);
                e.u64(*time_ms);
            }
            Op::ConsumerDelete {
                key,
                group,
                consumer,
            } => {
                e.u8(tag::CONSUMERDELETE);
                e.bytes(key);
                e.bytes(group);
                e.bytes(consumer);
            }
            Op::Deliver {
                key,
                group,
                consumer,
                time_ms,
                noack,
                ids,
            } => {
                e.u8(tag::DELIVER);
                e.bytes(key);
                e.bytes(group);
                e.bytes(consumer);
                e.u64(*time_ms);
                e.u8(u8::from(*noack));
                e.ids(ids);
            }
            Op::Redeliver {
                key,
                group,
                consumer,
                time_ms,
                ids,
            } => {
                e.u8(tag::REDELIVER);
                e.bytes(key);
                e.bytes(group);
                e.bytes(consumer);
                e.u64(*time_ms);
                e.ids(ids);
            }
            Op::Ack { key, group, ids } => {
                e.u8(tag::ACK);
                e.bytes(key);
                e.bytes(group);
                e.ids(ids);
            }
            Op::Claim {
                key,
                group,
                consumer,
                time_ms,
                opts,
                last_id,
                ids,
            } => {
                e.u8(tag::CLAIM);
                e.bytes(key);
                e.bytes(group);
                e.bytes(consumer);
                e.u64(*time_ms);
                e.u64(opts.min_idle_ms);
                e.u64(opts.delivery_time_ms);
                e.opt(opts.retry_count);
                e.u8(u8::from(opts.force) | (u8::from(opts.just_id) << 1));
                e.opt_id(*last_id);
                e.ids(ids);
            }
            Op::AutoClaim {
                key,
                group,
                consumer,
                scan,
            } => {
                e.u8(tag::AUTOCLAIM);
                e.bytes(key);
                e.bytes(group);
                e.bytes(consumer);
                e.u64(scan.now_ms);
                e.id(scan.start);
                e.u64(scan.min_idle_ms);
                e.u64(scan.count as u64);
                e.u8(u8::from(scan.just_id));
            }
            Op::IdmpRecord { key, pid, iid, id } => {
                e.u8(tag::IDMPRECORD);
                e.bytes(key);
                e.bytes(pid);
                e.bytes(iid);
                e.id(*id);
            }
            Op::IdmpDuplicate { key } => {
                e.u8(tag::IDMPDUPLICATE);
                e.bytes(key);
            }
            Op::IdmpProducer { key, pid } => {
                e.u8(tag::IDMPPRODUCER);
                e.bytes(key);
                e.bytes(pid);
            }
            Op::IdmpConfig {
                key,
                duration_s,
                max_entries,
            } => {
                e.u8(tag::IDMPCONFIG);
                e.bytes(key);
                e.u64(*duration_s);
                e.u64(*max_entries);
            }
            Op::IdmpExpire { key, now_ms } => {
                e.u8(tag::IDMPEXPIRE);
                e.bytes(key);
                e.u64(*now_ms);
            }
            Op::PolicySet { key, policy } => {
                e.u8(tag::POLICYSET);
                e.bytes(key);
                let mut body = Vec::new();
                policy.encode(&mut body);
                e.bytes(&body);
            }
            Op::StreamState { key, state } => {
                e.u8(tag::STREAMSTATE);
                e.bytes(key);
                e.bytes(state);
            }
            Op::NackTimes {
                key,
                group,
                at_ms,
                ids,
            } => {
                e.u8(tag::NACKTIMES);
                e.bytes(key);
                e.bytes(group);
                e.u64(*at_ms);
                e.ids(ids);
            }
        }
    }
}

/// Why a record's payload did not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed op record at byte {offset}: {reason}")]
pub struct DecodeError {
    /// Offset of the op that failed, from the start of the payload.
    pub offset: usize,
    /// What was wrong.
    pub reason: &'static str,
}

struct Dec {
    r: Reader,
}

impl Dec {
    fn u8(&mut self) -> Option<u8> {
        self.r.u8()
    }
    fn u64(&mut self) -> Option<u64> {
        self.r.u64()
    }
    fn bytes(&mut self) -> Option<Bytes> {
        self.r.bytes()
    }
    fn id(&mut self) -> Option<StreamId> {
        self.r.id()
    }
    fn ids(&mut self) -> Option<Vec<StreamId>> {
        let n = self.r.count(16)?;
        (0..n).map(|_| self.id()).collect()
    }
    fn opt(&mut self) -> Option<Option<u64>> {
        let present = self.u8()?;
        let v = self.u64()?;
        match present {
            0 => Some(None),
            1 => Some(Some(v)),
            _ => None,
        }
    }
    fn opt_id(&mut self) -> Option<Option<StreamId>> {
        let present = self.u8()?;
        let v = self.id()?;
        match present {
            0 => Some(None),
            1 => Some(Some(v)),
            _ => None,
        }
    }
    fn fields(&mut self) -> Option<Vec<Bytes>> {
        let n = self.r.count(4)?;
        (0..n).map(|_| self.bytes()).collect()
    }
    fn bool(&mut self) -> Option<bool> {
        match self.u8()? {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }
    }
}

/// Decodes a record's payload (zero-copy: keys and fields are slices of `payload`), with
/// where each entry's fields are, as [`encode`] reports them.
pub fn decode(payload: &Bytes) -> Result<(Vec<LoggedOp>, Vec<FieldSpan>), DecodeError> {
    let mut d = Dec {
        r: Reader::new(payload.clone()),
    };
    let mut ops = Vec::new();
    let mut spans = Vec::new();
    while !d.r.is_empty() {
        let offset = d.r.position();
        let bad = |reason| DecodeError { offset, reason };
        let db_lo = d.u8().ok_or(bad("truncated op"))?;
        let db_hi = d.u8().ok_or(bad("truncated op"))?;
        let db = u16::from_le_bytes([db_lo, db_hi]);
        let t = d.u8().ok_or(bad("truncated op"))?;
        let op = decode_body(&mut d, t, &mut spans, ops.len()).ok_or(bad(if known_tag(t) {
            "truncated or invalid op"
        } else {
            "unknown op tag"
        }))?;
        ops.push(LoggedOp { db, op });
    }
    Ok((ops, spans))
}

fn known_tag(t: u8) -> bool {
    matches!(t, 1..=7 | 10..=15 | 20..=33 | 40..=46)
}

fn decode_body(d: &mut Dec, t: u8, spans: &mut Vec<FieldSpan>, index: usize) -> Option<Op> {
    Some(match t {
        tag::DEL => Op::Del { key: d.bytes()? },
        tag::FLUSHDB => Op::FlushDb,
        tag::FLUSHALL => Op::FlushAll,
        tag::RENAME => Op::Rename {
            from: d.bytes()?,
            to: d.bytes()?,
        },
        tag::EXPIREAT => {
            let key = d.bytes()?;
            let at_ms = d.u64()?;
            (at_ms <= i64::MAX as u64).then_some(Op::ExpireAt { key, at_ms })?
        }
        tag::PERSIST => Op::Persist { key: d.bytes()? },
        tag::SETSTRING => Op::SetString {
            key: d.bytes()?,
            value: d.bytes()?,
            at_ms: d.opt()?,
        },
        tag::CREATESTREAM => Op::CreateStream { key: d.bytes()? },
        tag::APPEND | tag::RELOCATE => {
            let key = d.bytes()?;
            let id = d.id()?;
            let from = d.r.position() + 4;
            let fields = d.fields()?;
            if fields.is_empty() || fields.len() % 2 != 0 {
                return None;
            }
            spans.push((index, from, (d.r.position() - from) as u32));
            if t == tag::APPEND {
                Op::Append { key, id, fields }
            } else {
                Op::Relocate { key, id, fields }
            }
        }
        tag::DELETEENTRIES => Op::DeleteEntries {
            key: d.bytes()?,
            ids: d.ids()?,
        },
        tag::TRIM => {
            let key = d.bytes()?;
            let rule = match d.u8()? {
                1 => TrimRule::MaxLen(d.u64()?),
                2 => TrimRule::MinId(d.id()?),
                _ => return None,
            };
            Op::Trim {
                key,
                spec: TrimSpec {
                    rule,
                    approx: false,
                    limit: 0,
                    refs: RefPolicy::KeepRef,
                },
            }
        }
        tag::TRIMENTRIES => {
            let key = d.bytes()?;
            let delref = d.bool()?;
            let ends = d.ids()?;
            if ends.len() % 2 != 0 {
                return None;
            }
            Op::TrimEntries {
                key,
                delref,
                runs: ends.chunks(2).map(|p| (p[0], p[1])).collect(),
                freed_through: d.opt_id()?,
            }
        }
        tag::DELETEREFS => Op::DeleteRefs {
            key: d.bytes()?,
            policy: RefPolicy::from_code(d.u8()?)?,
            ids: d.ids()?,
        },
        tag::ACKDELETE => Op::AckDelete {
            key: d.bytes()?,
            group: d.bytes()?,
            policy: RefPolicy::from_code(d.u8()?)?,
            ids: d.ids()?,
        },
        tag::NACK => Op::Nack {
            key: d.bytes()?,
            group: d.bytes()?,
            opts: NackOptions {
                mode: NackMode::from_code(d.u8()?)?,
                retry_count: d.opt()?,
                force: match d.u8()? {
                    0 => false,
                    1 => true,
                    _ => return None,
                },
            },
            ids: d.ids()?,
        },
        tag::SETID => Op::SetId {
            key: d.bytes()?,
            last: d.id()?,
            entries_added: d.opt()?,
            max_deleted: d.opt_id()?,
        },
        tag::GROUPCREATE | tag::GROUPSETID => {
            let key = d.bytes()?;
            let group = d.bytes()?;
            let last = d.id()?;
            let entries_read = d.opt()?;
            if t == tag::GROUPCREATE {
                Op::GroupCreate {
                    key,
                    group,
                    last,
                    entries_read,
                }
            } else {
                Op::GroupSetId {
                    key,
                    group,
                    last,
                    entries_read,
                }
            }
        }
        tag::GROUPDESTROY => Op::GroupDestroy {
            key: d.bytes()?,
            group: d.bytes()?,
        },
        tag::CONSUMERCREATE | tag::TOUCH => {
            let key = d.bytes()?;
            let group = d.bytes()?;
            let consumer = d.bytes()?;
            let time_ms = d.u64()?;
            if t == tag::TOUCH {
                Op::Touch {
                    key,
                    group,
                    consumer,
                    time_ms,
                }
            } else {
                Op::ConsumerCreate {
                    key,
                    group,
                    consumer,
                    time_ms,
                }
            }
        }
        tag::CONSUMERDELETE => Op::ConsumerDelete {
            key: d.bytes()?,
            group: d.bytes()?,
            consumer: d.bytes()?,
        },
        tag::DELIVER => Op::Deliver {
            key: d.bytes()?,
            group: d.bytes()?,
            consumer: d.bytes()?,
            time_ms: d.u64()?,
            noack: d.bool()?,
            ids: d.ids()?,
        },
        tag::REDELIVER => Op::Redeliver {
            key: d.bytes()?,
            group: d.bytes()?,
            consumer: d.bytes()?,
            time_ms: d.u64()?,
            ids: d.ids()?,
        },
        tag::ACK => Op::Ack {
            key: d.bytes()?,
            group: d.bytes()?,
            ids: d.ids()?,
        },
        tag::CLAIM => {
            let key = d.bytes()?;
            let group = d.bytes()?;
            let consumer = d.bytes()?;
            let time_ms = d.u64()?;
            let min_idle_ms = d.u64()?;
            let delivery_time_ms = d.u64()?;
            let retry_count = d.opt()?;
            let flags = d.u8()?;
            if flags > 3 {
                return None;
            }
            Op::Claim {
                key,
                group,
                consumer,
                time_ms,
                opts: ClaimOptions {
                    min_idle_ms,
                    delivery_time_ms,
                    retry_count,
                    force: flags & 1 != 0,
                    just_id: flags & 2 != 0,
                },
                last_id: d.opt_id()?,
                ids: d.ids()?,
            }
        }
        tag::AUTOCLAIM => {
            let key = d.bytes()?;
            let group = d.bytes()?;
            let consumer = d.bytes()?;
            let now_ms = d.u64()?;
            let start = d.id()?;
            let min_idle_ms = d.u64()?;
            let count = usize::try_from(d.u64()?).ok()?;
            let just_id = d.bool()?;
            Op::AutoClaim {
                key,
                group,
                consumer,
                scan: AutoClaimScan {
                    start,
                    min_idle_ms,
                    count,
                    just_id,
                    now_ms,
                },
            }
        }
        tag::IDMPRECORD => Op::IdmpRecord {
            key: d.bytes()?,
            pid: d.bytes()?,
            iid: d.bytes()?,
            id: d.id()?,
        },
        tag::IDMPDUPLICATE => Op::IdmpDuplicate { key: d.bytes()? },
        tag::IDMPPRODUCER => Op::IdmpProducer {
            key: d.bytes()?,
            pid: d.bytes()?,
        },
        tag::IDMPCONFIG => Op::IdmpConfig {
            key: d.bytes()?,
            duration_s: d.u64()?,
            max_entries: d.u64()?,
        },
        tag::IDMPEXPIRE => Op::IdmpExpire {
            key: d.bytes()?,
            now_ms: d.u64()?,
        },
        tag::STREAMSTATE => Op::StreamState {
            key: d.bytes()?,
            state: d.bytes()?,
        },
        tag::POLICYSET => Op::PolicySet {
            key: d.bytes()?,
            policy: StreamPolicy::from_bytes(d.bytes()?)?,
        },
        tag::NACKTIMES => Op::NackTimes {
            key: d.bytes()?,
            group: d.bytes()?,
            at_ms: d.u64()?,
            ids: d.ids()?,
        },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn every_op() -> Vec<LoggedOp> {
        let id = StreamId::new(5, 1);
        let ops = vec![
            Op::Del { key: b("k") },
            Op::FlushDb,
            Op::FlushAll,
            Op::Rename {
                from: b("a"),
                to: b("b"),
            },
            Op::ExpireAt {
                key: b("k"),
                at_ms: 99,
            },
            Op::Persist { key: b("k") },
            Op::SetString {
                key: b("k"),
                value: b("v\r\n\0"),
                at_ms: Some(7),
            },
            Op::CreateStream { key: b("s") },
            Op::Append {
                key: b("s"),
                id,
                fields: vec![b("f"), b("")],
            },
            Op::Relocate {
                key: b("s"),
                id,
                fields: vec![b("f"), b("v")],
            },
            Op::DeleteEntries {
                key: b("s"),
                ids: vec![id, StreamId::MAX],
            },
            Op::Trim {
                key: b("s"),
                spec: TrimSpec {
                    rule: TrimRule::MinId(id),
                    approx: false,
                    limit: 0,
                    refs: RefPolicy::KeepRef,
                },
            },
            Op::Trim {
                key: b("s"),
                spec: TrimSpec {
                    rule: TrimRule::MaxLen(3),
                    approx: false,
                    limit: 0,
                    refs: RefPolicy::KeepRef,
                },
            },
            Op::TrimEntries {
                key: b("s"),
                delref: true,
                runs: vec![(id, id), (StreamId::new(9, 0), StreamId::new(12, 3))],
                freed_through: Some(id),
            },
            Op::DeleteRefs {
                key: b("s"),
                policy: RefPolicy::Acked,
                ids: vec![id],
            },
            Op::AckDelete {
                key: b("s"),
                group: b("g"),
                policy: RefPolicy::DelRef,
                ids: vec![id, StreamId::MAX],
            },
            Op::Nack {
                key: b("s"),
                group: b("g"),
                opts: NackOptions {
                    mode: NackMode::Fatal,
                    retry_count: Some(7),
                    force: true,
                },
                ids: vec![id, id, StreamId::MAX],
            },
            Op::SetId {
                key: b("s"),
                last: id,
                entries_added: Some(4),
                max_deleted: None,
            },
            Op::GroupCreate {
                key: b("s"),
                group: b("g"),
                last: id,
                entries_read: None,
            },
            Op::GroupSetId {
                key: b("s"),
                group: b("g"),
                last: id,
                entries_read: Some(0),
            },
            Op::GroupDestroy {
                key: b("s"),
                group: b("g"),
            },
            Op::ConsumerCreate {
                key: b("s"),
                group: b("g"),
                consumer: b("c"),
                time_ms: 3,
            },
            Op::ConsumerDelete {
                key: b("s"),
                group: b("g"),
                consumer: b("c"),
            },
            Op::Touch {
                key: b("s"),
                group: b("g"),
                consumer: b("c"),
                time_ms: 4,
            },
            Op::Deliver {
                key: b("s"),
                group: b("g"),
                consumer: b("c"),
                time_ms: 4,
                noack: true,
                ids: vec![id],
            },
            Op::Redeliver {
                key: b("s"),
                group: b("g"),
                consumer: b("c"),
                time_ms: 4,
                ids: vec![id],
            },
            Op::Ack {
                key: b("s"),
                group: b("g"),
                ids: vec![],
            },
            Op::Claim {
                key: b("s"),
                group: b("g"),
                consumer: b("c"),
                time_ms: 9,
                opts: ClaimOptions {
                    min_idle_ms: 1,
                    delivery_time_ms: 2,
                    retry_count: Some(3),
                    force: true,
                    just_id: false,
                },
                last_id: Some(id),
                ids: vec![id],
            },
            Op::AutoClaim {
                key: b("s"),
                group: b("g"),
                consumer: b("c"),
                scan: AutoClaimScan {
                    start: id,
                    min_idle_ms: 5,
                    count: 10,
                    just_id: true,
                    now_ms: 11,
                },
            },
            Op::IdmpRecord {
                key: b("s"),
                pid: b("p"),
                iid: b("i\0"),
                id,
            },
            Op::IdmpDuplicate { key: b("s") },
            Op::IdmpProducer {
                key: b("s"),
                pid: b("p"),
            },
            Op::IdmpConfig {
                key: b("s"),
                duration_s: 5,
                max_entries: 6,
            },
            Op::IdmpExpire {
                key: b("s"),
                now_ms: 12,
            },
            Op::StreamState {
                key: b("s"),
                state: b("\0state"),
            },
            Op::NackTimes {
                key: b("s"),
                group: b("g"),
                at_ms: 1_700_000_000_123,
                ids: vec![id, StreamId::MAX],
            },
            Op::PolicySet {
                key: b("s"),
                policy: StreamPolicy {
                    max_age_ms: Some(1000),
                    max_bytes: None,
                    max_len: Some(0),
                    refs: Some(RefPolicy::Acked),
                    ..Default::default()
                },
            },
        ];
        ops.into_iter()
            .enumerate()
            .map(|(i, op)| LoggedOp { db: i as u16, op })
            .collect()
    }

    #[test]
    fn every_op_round_trips_and_fields_are_packed_payloads() {
        let ops = every_op();
        let mut buf = BytesMut::from(&b"prefix"[..]);
        let spans = encode(&ops, &mut buf);
        let payload = buf.split_off(6).freeze();
        let (decoded, decoded_spans) = decode(&payload).expect("decodes");
        assert_eq!(decoded, ops);
        assert_eq!(spans, decoded_spans);
        assert_eq!(spans.len(), 2);
        for (i, off, len) in spans {
            let (Op::Append { fields, .. } | Op::Relocate { fields, .. }) = &ops[i].op else {
                panic!("span for a non-entry op");
            };
            let packed = crate::engine::payload::Payload::pack(fields);
            assert_eq!(&payload[off..off + len as usize], &packed.packed()[..]);
        }
    }

    #[test]
    fn every_truncation_and_unknown_tag_is_an_error_not_a_panic() {
        let ops = every_op();
        let mut buf = BytesMut::new();
        encode(&ops, &mut buf);
        let payload = buf.freeze();
        for cut in 0..payload.len() {
            let r = decode(&payload.slice(..cut));
            // A cut at an op boundary decodes to the ops before it; anything else fails.
            if let Ok((got, _)) = r {
                assert_eq!(&got[..], &ops[..got.len()]);
            }
        }
        assert!(decode(&Bytes::from_static(&[0, 0, 99])).is_err());
        assert!(decode(&Bytes::from_static(&[0, 0, 8])).is_err());
    }

    #[test]
    fn claims_that_claim_nothing_are_logged_as_the_touch_they_were() {
        let mut ks = Keyspace::new(1);
        let limits = NodeLimits::default();
        let id = StreamId::new(1, 0);
        for mut op in [
            Op::Append {
                key: b("s"),
                id,
                fields: vec![b("f"), b("v")],
            },
            Op::GroupCreate {
                key: b("s"),
                group: b("g"),
                last: StreamId::MIN,
                entries_read: None,
            },
        ] {
            ks.apply(0, &mut op, limits).expect("setup");
        }
        // Nothing pending: XCLAIM and XAUTOCLAIM change only the consumer's seen-time.
        let opts = ClaimOptions {
            min_idle_ms: 0,
            delivery_time_ms: 5,
            retry_count: None,
            force: false,
            just_id: false,
        };
        let mut claim = Op::Claim {
            key: b("s"),
            group: b("g"),
            consumer: b("c"),
            time_ms: 5,
            opts,
            last_id: None,
            ids: vec![id],
        };
        ks.apply(0, &mut claim, limits).expect("claim");
        assert!(matches!(claim, Op::Touch { time_ms: 5, .. }), "{claim:?}");
        let mut auto = Op::AutoClaim {
            key: b("s"),
            group: b("g"),
            consumer: b("c"),
            scan: AutoClaimScan {
                start: StreamId::MIN,
                min_idle_ms: 0,
                count: 10,
                just_id: false,
                now_ms: 6,
            },
        };
        ks.apply(0, &mut auto, limits).expect("autoclaim");
        assert!(matches!(auto, Op::Touch { time_ms: 6, .. }), "{auto:?}");
        // FORCE claims the entry: logged as the claim.
        let mut forced = Op::Claim {
            key: b("s"),
            group: b("g"),
            consumer: b("c"),
            time_ms: 7,
            opts: ClaimOptions {
                force: true,
                ..opts
            },
            last_id: None,
            ids: vec![id],
        };
        ks.apply(0, &mut forced, limits).expect("forced claim");
        assert!(matches!(forced, Op::Claim { .. }), "{forced:?}");
    }

    /// An ACKED trim is logged as the entries and nodes it removed; XDELEX and XACKDEL as
    /// themselves, and not at all when they changed nothing.
    #[test]
    fn reference_aware_deletes_log_what_replays_them() {
        let limits = NodeLimits {
            max_entries: 2,
            max_bytes: 0,
        };
        let build = || {
            let mut ks = Keyspace::new(1);
            for i in 1..=5u64 {
                let mut op = Op::Append {
                    key: b("s"),
                    id: StreamId::new(i, 0),
                    fields: vec![b("f"), b("v")],
                };
                ks.apply(0, &mut op, limits).expect("append");
            }
            let mut ops = vec![
                Op::GroupCreate {
                    key: b("s"),
                    group: b("g"),
                    last: StreamId::MIN,
                    entries_read: None,
                },
                Op::Deliver {
                    key: b("s"),
                    group: b("g"),
                    consumer: b("c"),
                    time_ms: 1,
                    noack: false,
                    ids: (1..=5).map(|i| StreamId::new(i, 0)).collect(),
                },
                Op::Ack {
                    key: b("s"),
                    group: b("g"),
                    ids: [1, 2, 4].map(|i| StreamId::new(i, 0)).to_vec(),
                },
            ];
            for op in &mut ops {
                ks.apply(0, op, limits).expect("setup");
            }
            ks
        };
        let mut ks = build();
        let mut op = Op::Trim {
            key: b("s"),
            spec: TrimSpec {
                rule: TrimRule::MinId(StreamId::new(6, 0)),
                approx: true,
                limit: 100,
                refs: RefPolicy::Acked,
            },
        };
        assert_eq!(ks.apply(0, &mut op, limits), Ok(Applied::Count(3)));
        let logged = Op::TrimEntries {
            key: b("s"),
            delref: false,
            runs: vec![
                (StreamId::new(1, 0), StreamId::new(2, 0)),
                (StreamId::new(4, 0), StreamId::new(4, 0)),
            ],
            freed_through: Some(StreamId::new(1, 0)),
        };
        assert_eq!(op, logged);
        let mut replayed = build();
        let mut again = logged.clone();
        assert_eq!(replayed.apply(0, &mut again, limits), Ok(Applied::Count(3)));
        let digest = |ks: &Keyspace| crate::engine::digest::describe(ks, 0, None).ok();
        assert_eq!(digest(&replayed), digest(&ks));
        // Nothing left to trim: not logged.
        let mut op = Op::Trim {
            key: b("s"),
            spec: TrimSpec {
                rule: TrimRule::MinId(StreamId::new(6, 0)),
                approx: false,
                limit: 0,
                refs: RefPolicy::Acked,
            },
        };
        assert_eq!(ks.apply(0, &mut op, limits), Ok(Applied::Unchanged));
        let mut op = Op::DeleteRefs {
            key: b("s"),
            policy: RefPolicy::Acked,
            ids: vec![StreamId::new(3, 0), StreamId::new(9, 0)],
        };
        let applied = ks.apply(0, &mut op, limits).expect("xdelex");
        assert_eq!(
            applied,
            Applied::Results {
                codes: vec![2, 2],
                changed: false
            }
        );
        assert!(!applied.changed());
        let mut op = Op::AckDelete {
            key: b("s"),
            group: b("g"),
            policy: RefPolicy::Acked,
            ids: vec![StreamId::new(3, 0)],
        };
        let applied = ks.apply(0, &mut op, limits).expect("xackdel");
        assert!(applied.changed());
        assert_eq!(
            applied,
            Applied::Results {
                codes: vec![1],
                changed: true
            }
        );
        let mut op = Op::AckDelete {
            key: b("s"),
            group: b("nope"),
            policy: RefPolicy::Acked,
            ids: vec![StreamId::new(3, 0)],
        };
        assert!(matches!(
            ks.apply(0, &mut op, limits),
            Err(ApplyError::NoGroup { .. })
        ));
    }

    #[test]
    fn an_approximate_trim_is_logged_as_the_exact_rule_that_removed_the_same_entries() {
        let mut ks = Keyspace::new(1);
        let limits = NodeLimits {
            max_entries: 10,
            max_bytes: 0,
        };
        for i in 1..=95u64 {
            let mut op = Op::Append {
                key: b("s"),
                id: StreamId::new(i, 0),
                fields: vec![b("f"), b("v")],
            };
            ks.apply(0, &mut op, limits).expect("append");
        }
        let mut op = Op::Trim {
            key: b("s"),
            spec: TrimSpec {
                rule: TrimRule::MaxLen(42),
                approx: true,
                limit: 0,
                refs: RefPolicy::KeepRef,
            },
        };
        let removed = ks.apply(0, &mut op, limits).expect("trim");
        assert_eq!(removed, Applied::Count(50));
        assert_eq!(
            op,
            Op::Trim {
                key: b("s"),
                spec: TrimSpec {
                    rule: TrimRule::MinId(StreamId::new(51, 0)),
                    approx: false,
                    limit: 0,
                    refs: RefPolicy::KeepRef,
                },
            }
        );
    }

    #[test]
    fn idmp_history_is_swept_by_the_time_in_the_op_and_renamed_streams_stay_tracked() {
        let mut ks = Keyspace::new(1);
        let limits = NodeLimits::default();
        let id = StreamId::new(10_000, 0);
        for mut op in [
            Op::Append {
                key: b("s"),
                id,
                fields: vec![b("f"), b("v")],
            },
            Op::IdmpConfig {
                key: b("s"),
                duration_s: 1,
                max_entries: 100,
            },
            Op::IdmpRecord {
                key: b("s"),
                pid: b("p"),
                iid: b("i"),
                id,
            },
            Op::Rename {
                from: b("s"),
                to: b("t"),
            },
        ] {
            ks.apply(0, &mut op, limits).expect("setup");
        }
        // Recording the same mapping again changes nothing; another ID is refused.
        let mut same = Op::IdmpRecord {
            key: b("t"),
            pid: b("p"),
            iid: b("i"),
            id,
        };
        assert_eq!(ks.apply(0, &mut same, limits), Ok(Applied::Unchanged));
        let mut other = Op::IdmpRecord {
            key: b("t"),
            pid: b("p"),
            iid: b("i"),
            id: StreamId::new(1, 0),
        };
        assert!(ks.apply(0, &mut other, limits).is_err());
        assert_eq!(ks.idmp_due(10_999), vec![]);
        assert_eq!(ks.idmp_due(11_000), vec![(0, b("t"))]);
        // The op decides by its own time, whatever the caller's clock says.
        let mut early = Op::IdmpExpire {
            key: b("t"),
            now_ms: 10_500,
        };
        assert_eq!(ks.apply(0, &mut early, limits), Ok(Applied::Unchanged));
        let mut sweep = Op::IdmpExpire {
            key: b("t"),
            now_ms: 11_000,
        };
        assert_eq!(ks.apply(0, &mut sweep, limits), Ok(Applied::Count(2)));
        assert_eq!(ks.idmp_due(99_999), vec![], "nothing left to track");
    }
}
