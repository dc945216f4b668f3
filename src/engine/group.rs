//! Consumer groups: the group's read position, its pending-entries list (PEL) and its consumers.
//!
//! A group remembers which entries it handed out and to whom until they are acknowledged. Three
//! views of the same pending entries are kept in step so that every command stays cheap:
//! - the group PEL ordered by ID (XPENDING ranges, XAUTOCLAIM cursors, XACK),
//! - each consumer's own IDs (history reads, XPENDING with a consumer, DELCONSUMER),
//! - a by-delivery-time index (XPENDING IDLE, XREADGROUP CLAIM and idle scans look only at
//!   entries old enough).
//!
//! The by-delivery-time index is Redis 8.6's PEL time list (`pel_time_head/tail`): ordered by
//! delivery time, ties in the order the entries got that time (each attach takes the next
//! number of a per-group counter), so XREADGROUP CLAIM serves the oldest delivery first and,
//! among equal times, the one that got its time first, as Redis does. It is derived state:
//! never logged nor checkpointed (but for the NACK zone, below), rebuilt at load in (time, ID) order — which is what Redis's
//! RDB load (`pelListInsertSorted` over the PEL in ID order) gives too.
//!
//! XNACK (Redis 8.8) releases pending entries without acknowledging them: a NACKed entry
//! stays in the group PEL but has no owner (it is in no consumer's list) and delivery
//! time 0, so it sits in the "NACK zone" at the head of the time index, first in first
//! out by attach order (a re-NACK re-attaches it at the zone's tail). Claims take it
//! regardless of min-idle-time. Unlike the rest of the index the zone's order is state:
//! checkpoints write it as its own record, and replay re-creates it from the log's ops.
//!
//! Deliveries, acknowledgements and claims are O(log n). The lag and entries-read counters follow
//! Redis 7.4's `t_stream.c` exactly (`streamEstimateDistanceFromFirstEverEntry`,
//! `streamRangeHasTombstones`, `streamReplyWithCGLag`), because clients display and test them.

use std::collections::BTreeMap;
use std::ops::Bound;

use bytes::Bytes;

use crate::engine::chunkmap::ChunkMap;
use crate::engine::id::StreamId;

/// A name to keep: arguments are slices of a connection's read buffer, and keeping one
/// would keep that whole buffer (other clients' payloads included) alive.
fn owned(name: &Bytes) -> Bytes {
    Bytes::copy_from_slice(name)
}

/// 0-0: "no tombstone" for `max_deleted_id`, and XAUTOCLAIM's "scan finished" cursor.
const ZERO_ID: StreamId = StreamId::MIN;

/// The few stream counters the group's lag and entries-read rules depend on.
///
/// Passed in by value so this module needs nothing of the stream's storage; the caller builds it
/// from the `Stream` just before a read or an XINFO reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamCounters {
    /// Entries currently in the stream.
    pub length: u64,
    /// Entries ever added (never decreases).
    pub entries_added: u64,
    /// ID of the first entry still in the stream (0-0 when empty).
    pub first_id: StreamId,
    /// The last generated ID (may belong to a deleted entry).
    pub last_id: StreamId,
    /// Largest ID removed by XDEL (0-0 when none): a "tombstone" that breaks counting.
    pub max_deleted_id: StreamId,
}

impl StreamCounters {
    /// Whether an XDEL tombstone lies in `[start, +inf]`; when it does, counting entries by
    /// arithmetic on `entries_added` is no longer exact (`streamRangeHasTombstones`).
    ///
    /// Redis 8.0 dropped 7.4's shortcut "a tombstone before the first live entry fragments
    /// nothing" (redis/redis#13958): the callers now check the first entry themselves.
    pub fn has_tombstone_from(&self, start: StreamId) -> bool {
        if self.length == 0 || self.max_deleted_id == ZERO_ID {
            return false;
        }
        start <= self.max_deleted_id
    }

    /// The logical read counter of `id` (how many entries were added up to and including it),
    /// when it can be known without scanning; `None` when it cannot
    /// (`streamEstimateDistanceFromFirstEverEntry`).
    pub fn estimate_distance(&self, id: StreamId) -> Option<u64> {
        if self.entries_added == 0 {
            return Some(0);
        }
        if self.length == 0 && id <= self.last_id {
            return Some(self.entries_added);
        }
        // A tombstone after `id` fragments the stream between it and the last ID (8.0).
        if id != ZERO_ID && id < self.max_deleted_id {
            return None;
        }
        if id == self.last_id {
            return Some(self.entries_added);
        }
        if id > self.last_id {
            return None;
        }
        if self.max_deleted_id == ZERO_ID || self.max_deleted_id < self.first_id {
            if id < self.first_id {
                return Some(self.entries_added.saturating_sub(self.length));
            }
            if id == self.first_id {
                return Some(self.entries_added.saturating_sub(self.length) + 1);
            }
        }
        None
    }
}

/// Largest delivery count kept: RETRYCOUNT (and so the log and checkpoints, which replay
/// counts through it) only accepts a signed 64-bit integer.
const MAX_DELIVERY_COUNT: u64 = i64::MAX as u64;

/// One more delivery, saturating where RETRYCOUNT can still express the count.
fn bump(count: u64) -> u64 {
    count.saturating_add(1).min(MAX_DELIVERY_COUNT)
}

/// One delivered-but-unacknowledged entry (a NACK in Redis's source), as the group's
/// readers see it. The group stores it more compactly (see `Record`); this is a copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingEntry {
    /// The stream entry this refers to (it may have been deleted from the stream since).
    pub id: StreamId,
    /// The consumer that currently owns it; empty for an XNACKed entry, which has none.
    pub consumer: Bytes,
    /// Unix time in ms of the last delivery; idle time is measured from here.
    pub delivery_time_ms: u64,
    /// How many times it was delivered (XCLAIM RETRYCOUNT may set it to anything).
    pub delivery_count: u64,
    /// Released by XNACK (Redis 8.8): owned by no consumer, in the group's NACK zone.
    nacked: bool,
}

impl PendingEntry {
    /// A pending entry owned by nobody in particular, for tests of policies.
    #[cfg(test)]
    pub(crate) fn for_test(id: StreamId, delivery_time_ms: u64, delivery_count: u64) -> Self {
        PendingEntry {
            id,
            consumer: Bytes::from_static(b"c"),
            delivery_time_ms,
            delivery_count,
            nacked: false,
        }
    }

    /// Whether XNACK released it: no owner, in the NACK zone, claimable regardless of
    /// min-idle-time (XPENDING shows it with consumer `""` and idle -1).
    pub fn is_nacked(&self) -> bool {
        self.nacked
    }
}

/// The owner of an XNACKed entry: none.
const NO_OWNER: u32 = u32::MAX;

/// A delivery count too large for a [`Record`]: the count is in the group's `big_counts`.
const BIG_COUNT: u32 = u32::MAX;

/// A pending entry as the group PEL stores it beside its ID: 20 bytes, 4-aligned so the
/// PEL's value array packs them without padding. The owner is the consumer's slot in the
/// group's consumer table ([`NO_OWNER`] when NACKed), not its name. The delivery count
/// is 32 bits ([`BIG_COUNT`] and up, which only XCLAIM RETRYCOUNT / XNACK RETRYCOUNT
/// reach, live in a side map): 4 bytes less a pending entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C, packed(4))]
struct Record {
    delivery_time_ms: u64,
    delivery_count: u32,
    /// Position among entries of equal delivery time in the by-delivery-time index.
    order: u32,
    owner: u32,
}

const _: () = assert!(std::mem::size_of::<Record>() == 20);

impl Record {
    fn time(&self) -> u64 {
        self.delivery_time_ms
    }

    #[cfg(test)]
    fn order(&self) -> u32 {
        self.order
    }

    fn owner(&self) -> u32 {
        self.owner
    }

    fn nacked(&self) -> bool {
        self.owner == NO_OWNER
    }

    fn time_key(&self) -> TimeKey {
        TimeKey {
            time: self.delivery_time_ms,
            order: self.order,
        }
    }
}

/// A key of the by-delivery-time index: delivery time, then attach order (12 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(C, packed(4))]
struct TimeKey {
    time: u64,
    order: u32,
}

impl TimeKey {
    fn new(time: u64, order: u32) -> TimeKey {
        TimeKey { time, order }
    }
}

/// What XNACK does to the delivery counter (Redis 8.8's `XNACK … SILENT | FAIL | FATAL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NackMode {
    /// The delivery did not count: one fewer, never below 0.
    Silent,
    /// A failed delivery: the counter stays as it is.
    Fail,
    /// The entry should not be retried: the counter goes to its maximum (`LLONG_MAX`).
    Fatal,
}

impl NackMode {
    /// The mode token (any case), or `None`.
    pub fn parse(token: &[u8]) -> Option<NackMode> {
        if token.eq_ignore_ascii_case(b"silent") {
            Some(NackMode::Silent)
        } else if token.eq_ignore_ascii_case(b"fail") {
            Some(NackMode::Fail)
        } else if token.eq_ignore_ascii_case(b"fatal") {
            Some(NackMode::Fatal)
        } else {
            None
        }
    }

    /// The byte the log stores it as.
    pub fn code(self) -> u8 {
        match self {
            NackMode::Silent => 0,
            NackMode::Fail => 1,
            NackMode::Fatal => 2,
        }
    }

    /// The mode stored as `code`.
    pub fn from_code(code: u8) -> Option<NackMode> {
        match code {
            0 => Some(NackMode::Silent),
            1 => Some(NackMode::Fail),
            2 => Some(NackMode::Fatal),
            _ => None,
        }
    }

    /// The counter after a NACK in this mode (RETRYCOUNT, when given, replaces it).
    fn apply(self, count: u64) -> u64 {
        match self {
            NackMode::Silent => count.saturating_sub(1),
            NackMode::Fail => count,
            NackMode::Fatal => MAX_DELIVERY_COUNT,
        }
    }
}

/// Options of one XNACK call that apply to every ID it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NackOptions {
    /// How the delivery counter changes.
    pub mode: NackMode,
    /// RETRYCOUNT: the counter to store instead (at most `i64::MAX`).
    pub retry_count: Option<u64>,
    /// FORCE: create an unowned NACK for an ID that is in the stream but not pending.
    pub force: bool,
}

/// A named reader inside a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumer {
    name: Bytes,
    seen_time_ms: u64,
    active_time_ms: Option<u64>,
    /// The IDs it owns (16 bytes each; their records are in the group PEL).
    pending: ChunkMap<StreamId, ()>,
}

impl Consumer {
    fn new(name: Bytes, now_ms: u64) -> Self {
        Consumer {
            name,
            seen_time_ms: now_ms,
            active_time_ms: None,
            pending: ChunkMap::new(),
        }
    }

    /// The consumer's name.
    pub fn name(&self) -> &Bytes {
        &self.name
    }

    /// Last time (Unix ms) the consumer attempted anything (XREADGROUP, XCLAIM, XAUTOCLAIM);
    /// XINFO CONSUMERS `idle` counts from here, which Watermill relies on to spot dead consumers.
    pub fn seen_time_ms(&self) -> u64 {
        self.seen_time_ms
    }

    /// Last time (Unix ms) the consumer was actually given entries; `None` until then
    /// (shown as -1 by XINFO).
    pub fn active_time_ms(&self) -> Option<u64> {
        self.active_time_ms
    }

    /// Number of entries this consumer owns in the PEL.
    pub fn pending_count(&self) -> usize {
        self.pending.len()
    }

    /// The consumer's pending IDs in ascending order.
    pub fn pending_ids(&self) -> impl Iterator<Item = StreamId> + '_ {
        self.pending.keys().copied()
    }

    /// Records an attempt by this consumer (updates `seen-time`).
    pub fn touch(&mut self, now_ms: u64) {
        self.seen_time_ms = now_ms;
    }
}

/// What happened to one ID given to XCLAIM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// Ownership moved to (or stayed with) the claiming consumer: the ID is in the reply.
    Claimed,
    /// The entry is gone from the stream: its PEL entry was dropped (if any), nothing is returned.
    Dropped,
    /// Not pending (and no FORCE), or not idle long enough: left alone.
    Skipped,
}

/// Options of one XCLAIM call that apply to every ID it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimOptions {
    /// Only entries idle at least this long (ms) are claimed; 0 claims regardless.
    pub min_idle_ms: u64,
    /// The delivery time to store (already clamped to `[0, now]`).
    pub delivery_time_ms: u64,
    /// RETRYCOUNT: the delivery count to store, instead of incrementing it.
    pub retry_count: Option<u64>,
    /// FORCE: create a PEL entry for an ID that is in the stream but not pending.
    pub force: bool,
    /// JUSTID: do not increment the delivery count.
    pub just_id: bool,
}

/// What one XAUTOCLAIM pass looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AutoClaimScan {
    /// First PEL ID to examine (the cursor).
    pub start: StreamId,
    /// Only entries idle at least this long (ms) are claimed; 0 claims regardless.
    pub min_idle_ms: u64,
    /// Claim at most this many entries; examine at most ten times as many.
    pub count: usize,
    /// JUSTID: do not increment delivery counts.
    pub just_id: bool,
    /// The command's time.
    pub now_ms: u64,
}

/// Result of one XAUTOCLAIM pass.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AutoClaim {
    /// IDs now owned by the claiming consumer, ascending.
    pub claimed: Vec<StreamId>,
    /// IDs that were pending but whose entries are gone from the stream; dropped from the PEL.
    pub deleted: Vec<StreamId>,
    /// Where the next call should start; 0-0 when the whole PEL was scanned.
    pub next_cursor: StreamId,
}

/// XPENDING's summary form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingSummary {
    /// Total pending entries in the group.
    pub count: usize,
    /// Smallest and largest pending ID; `None` when nothing is pending.
    pub bounds: Option<(StreamId, StreamId)>,
    /// Consumers with at least one pending entry, by name, with their counts.
    pub per_consumer: Vec<(Bytes, usize)>,
}

/// A consumer group of one stream.
#[derive(Debug, Clone)]
pub struct ConsumerGroup {
    last_delivered_id: StreamId,
    entries_read: Option<u64>,
    /// ID → record: the group PEL, the one place a pending entry's data lives.
    pel: ChunkMap<StreamId, Record>,
    /// (delivery time, attach order) → ID: the PEL time list.
    by_delivery_time: ChunkMap<TimeKey, StreamId>,
    /// The attach order the next pending entry gets.
    next_order: u32,
    /// The delivery counts of entries whose record holds [`BIG_COUNT`].
    big_counts: BTreeMap<StreamId, u64>,
    /// Consumer name → slot in `slots`, in name order (byte-wise, like Redis's rax).
    names: BTreeMap<Bytes, u32>,
    /// The consumers by slot; a deleted consumer's slot is `None` until reused.
    slots: Vec<Option<Consumer>>,
    /// Slots of deleted consumers, to reuse.
    free_slots: Vec<u32>,
}

impl PartialEq for ConsumerGroup {
    /// Same position, pending entries, time order and consumers, however they are stored
    /// (consumer slots and attach numbers are not state).
    fn eq(&self, other: &Self) -> bool {
        self.last_delivered_id == other.last_delivered_id
            && self.entries_read == other.entries_read
            && self.pending_entries().eq(other.pending_entries())
            && self
                .by_delivery_time
                .iter()
                .map(|(_, id)| id)
                .eq(other.by_delivery_time.iter().map(|(_, id)| id))
            && self.consumers().eq(other.consumers())
    }
}

impl Eq for ConsumerGroup {}

impl ConsumerGroup {
    /// A group positioned after `last_delivered_id`; `entries_read` is `None` when unknown
    /// (XGROUP CREATE without ENTRIESREAD).
    pub fn new(last_delivered_id: StreamId, entries_read: Option<u64>) -> Self {
        ConsumerGroup {
            last_delivered_id,
            entries_read,
            pel: ChunkMap::new(),
            by_delivery_time: ChunkMap::new(),
            next_order: 0,
            big_counts: BTreeMap::new(),
            names: BTreeMap::new(),
            slots: Vec::new(),
            free_slots: Vec::new(),
        }
    }

    /// ID of the last entry handed out with `>`.
    pub fn last_delivered_id(&self) -> StreamId {
        self.last_delivered_id
    }

    /// The group's logical read counter; `None` when unknown.
    pub fn entries_read(&self) -> Option<u64> {
        self.entries_read
    }

    /// XGROUP SETID: moves the read position; the counter is whatever the caller says (unknown
    /// unless ENTRIESREAD was given). The PEL is left as is, as in Redis.
    pub fn set_position(&mut self, last_delivered_id: StreamId, entries_read: Option<u64>) {
        self.last_delivered_id = last_delivered_id;
        self.entries_read = entries_read;
    }

    /// XCLAIM LASTID: moves the position forward only, leaving the counter alone.
    pub fn raise_last_delivered(&mut self, id: StreamId) -> bool {
        if id > self.last_delivered_id {
            self.last_delivered_id = id;
            true
        } else {
            false
        }
    }

    /// Number of entries pending in the whole group.
    pub fn pending_count(&self) -> usize {
        self.pel.len()
    }

    /// Whether `id` is pending in this group.
    pub fn is_pending(&self, id: StreamId) -> bool {
        self.pel.contains_key(&id)
    }

    /// Number of consumers.
    pub fn consumer_count(&self) -> usize {
        self.names.len()
    }

    /// Consumers in name order (byte-wise, like Redis's radix tree).
    pub fn consumers(&self) -> impl Iterator<Item = &Consumer> {
        self.names.values().filter_map(|&slot| self.slot(slot))
    }

    /// Looks a consumer up by name.
    pub fn consumer(&self, name: &[u8]) -> Option<&Consumer> {
        self.names.get(name).and_then(|&slot| self.slot(slot))
    }

    /// Looks up one pending entry.
    pub fn pending_entry(&self, id: StreamId) -> Option<PendingEntry> {
        self.pel.get(&id).map(|r| self.view(id, r))
    }

    /// The whole PEL in ID order.
    pub fn pending_entries(&self) -> impl Iterator<Item = PendingEntry> + '_ {
        self.pel.iter().map(|(id, r)| self.view(*id, r))
    }

    /// XGROUP CREATECONSUMER: creates the consumer; false when it already exists.
    pub fn create_consumer(&mut self, name: &Bytes, now_ms: u64) -> bool {
        if self.names.contains_key(name) {
            return false;
        }
        self.add_consumer(owned(name), now_ms);
        true
    }

    /// Finds or creates a consumer and records an attempt by it (seen-time = now), as every
    /// XREADGROUP / XCLAIM / XAUTOCLAIM does. Returns true when the consumer was created.
    pub fn touch_consumer(&mut self, name: &Bytes, now_ms: u64) -> bool {
        match self.names.get(name) {
            Some(&slot) => {
                if let Some(consumer) = self.slot_mut(slot) {
                    consumer.touch(now_ms);
                }
                false
            }
            None => {
                self.add_consumer(owned(name), now_ms);
                true
            }
        }
    }

    /// XGROUP DELCONSUMER: removes the consumer and its pending entries (they are not
    /// re-assigned). Returns how many pending entries it had, or `None` if it did not exist.
    pub fn delete_consumer(&mut self, name: &[u8]) -> Option<usize> {
        let slot = self.names.remove(name)?;
        let consumer = self.slots.get_mut(slot as usize).and_then(Option::take)?;
        self.free_slots.push(slot);
        for id in consumer.pending.keys() {
            if let Some(record) = self.pel.remove(id) {
                self.by_delivery_time.remove(&record.time_key());
                if record.delivery_count == BIG_COUNT {
                    self.big_counts.remove(id);
                }
            }
        }
        Some(consumer.pending.len())
    }

    /// Moves the read position past `id` (an entry being delivered with `>`), keeping the
    /// entries-read counter exact where Redis can, and estimating it where it cannot.
    pub fn advance(&mut self, id: StreamId, stream: &StreamCounters) {
        if id <= self.last_delivered_id {
            return;
        }
        match self.entries_read {
            // Redis 8.0 tests the group's old position, not the new ID, and only counts on
            // from a position inside the stream (`streamReplyWithRange`).
            Some(read)
                if self.last_delivered_id >= stream.first_id
                    && !stream.has_tombstone_from(self.last_delivered_id) =>
            {
                self.entries_read = Some(read + 1);
            }
            _ => {
                if stream.entries_added != 0 {
                    self.entries_read = stream.estimate_distance(id);
                }
            }
        }
        self.last_delivered_id = id;
    }

    /// Records a first delivery of `id` to `consumer` (XREADGROUP `>` without NOACK).
    ///
    /// If the ID is already pending (possible after XGROUP SETID moved the group backwards) it
    /// is re-assigned to this consumer with a delivery count of 1, as Redis does.
    /// The consumer must exist (see [`touch_consumer`](Self::touch_consumer)); it becomes active.
    pub fn deliver(&mut self, id: StreamId, consumer: &Bytes, now_ms: u64) {
        self.detach(id);
        let owner = self.ensure_consumer(consumer, now_ms);
        self.attach(id, now_ms, 1, owner);
        self.mark_active(owner, now_ms);
    }

    /// Records that `id` was delivered again from the consumer's history (XREADGROUP with an
    /// explicit ID): delivery time reset, count + 1.
    pub fn redeliver(&mut self, id: StreamId, now_ms: u64) {
        if let Some((record, count)) = self.detach(id) {
            self.attach(id, now_ms, bump(count), record.owner());
        }
    }

    /// XACK of one ID: true when it was pending.
    pub fn ack(&mut self, id: StreamId) -> bool {
        self.detach(id).is_some()
    }

    /// Drops a pending entry whose stream entry no longer exists. True when it was pending.
    pub fn drop_pending(&mut self, id: StreamId) -> bool {
        self.detach(id).is_some()
    }

    /// The consumer's pending IDs in `(after, +inf]`, at most `count` (0 = all): the IDs a
    /// history read (XREADGROUP with an explicit ID) returns.
    pub fn history(&self, consumer: &[u8], after: StreamId, count: usize) -> Vec<StreamId> {
        let Some(consumer) = self.consumer(consumer) else {
            return Vec::new();
        };
        let iter = consumer
            .pending
            .range((Bound::Excluded(after), Bound::Unbounded))
            .map(|(id, _)| *id);
        if count == 0 {
            iter.collect()
        } else {
            iter.take(count).collect()
        }
    }

    /// XCLAIM of one ID by `consumer` (which must exist). `in_stream` says whether the entry
    /// still exists in the stream.
    pub fn claim(
        &mut self,
        id: StreamId,
        consumer: &Bytes,
        in_stream: bool,
        opts: &ClaimOptions,
        now_ms: u64,
    ) -> ClaimOutcome {
        if !in_stream {
            // Redis drops the PEL entry of a deleted stream entry and never returns it.
            return if self.detach(id).is_some() {
                ClaimOutcome::Dropped
            } else {
                ClaimOutcome::Skipped
            };
        }
        let count = match self.pel.get(&id).copied() {
            Some(existing) => {
                // A NACKed entry is up for grabs whatever its idle time (Redis 8.8).
                if opts.min_idle_ms > 0
                    && !existing.nacked()
                    && now_ms.saturating_sub(existing.time()) < opts.min_idle_ms
                {
                    return ClaimOutcome::Skipped;
                }
                match self.detach(id) {
                    Some((_, count)) => count,
                    None => return ClaimOutcome::Skipped,
                }
            }
            // FORCE creates the entry; min-idle does not apply to it (it had no owner).
            // Like Redis's streamCreateNACK it starts at one delivery, which the
            // claim below then bumps: a forced claim reports 2, as in Redis.
            None if opts.force => 1,
            None => return ClaimOutcome::Skipped,
        };
        let count = match opts.retry_count {
            Some(count) => count,
            None if !opts.just_id => bump(count),
            None => count,
        };
        let owner = self.ensure_consumer(consumer, opts.delivery_time_ms);
        self.attach(id, opts.delivery_time_ms, count, owner);
        self.mark_active(owner, now_ms);
        ClaimOutcome::Claimed
    }

    /// XAUTOCLAIM: scans the PEL in ID order from `start`, examining at most `count × 10`
    /// entries, and claims for `consumer` (which must exist) up to `count` entries idle at least
    /// `min_idle_ms`. Pending entries gone from the stream (`exists` false) are dropped and
    /// reported; they count against `count` like Redis 7.4 does.
    pub fn auto_claim(
        &mut self,
        consumer: &Bytes,
        scan: &AutoClaimScan,
        mut exists: impl FnMut(StreamId) -> bool,
    ) -> AutoClaim {
        let AutoClaimScan {
            start,
            min_idle_ms,
            count,
            just_id,
            now_ms,
        } = *scan;
        let mut result = AutoClaim::default();
        let mut attempts = count.saturating_mul(10);
        let mut remaining = count;
        let mut cursor = Bound::Included(start);
        loop {
            let next = self
                .pel
                .range((cursor, Bound::Unbounded))
                .next()
                .map(|(id, record)| (*id, *record));
            let Some((id, record)) = next else {
                result.next_cursor = ZERO_ID;
                return result;
            };
            if attempts == 0 || remaining == 0 {
                result.next_cursor = id;
                return result;
            }
            attempts -= 1;
            cursor = Bound::Excluded(id);
            if !exists(id) {
                self.detach(id);
                result.deleted.push(id);
                remaining -= 1;
                continue;
            }
            if min_idle_ms > 0
                && !record.nacked()
                && now_ms.saturating_sub(record.time()) < min_idle_ms
            {
                continue;
            }
            if let Some((_, count)) = self.detach(id) {
                let count = if just_id { count } else { bump(count) };
                let owner = self.ensure_consumer(consumer, now_ms);
                self.attach(id, now_ms, count, owner);
            }
            if let Some(&owner) = self.names.get(consumer) {
                self.mark_active(owner, now_ms);
            }
            result.claimed.push(id);
            remaining -= 1;
        }
    }

    /// XPENDING summary.
    pub fn summary(&self) -> PendingSummary {
        let bounds = match (self.pel.first(), self.pel.last()) {
            (Some((first, _)), Some((last, _))) => Some((*first, *last)),
            _ => None,
        };
        let per_consumer = self
            .consumers()
            .filter(|c| !c.pending.is_empty())
            .map(|c| (c.name.clone(), c.pending.len()))
            .collect();
        PendingSummary {
            count: self.pel.len(),
            bounds,
            per_consumer,
        }
    }

    /// XPENDING extended form: pending entries with `start <= id <= end` (ascending), owned by
    /// `consumer` when given, idle at least `min_idle_ms` when non-zero, at most `count`.
    ///
    /// With an idle filter and no consumer, only the by-delivery-time prefix of entries old
    /// enough is examined, so a claim pass over a large, mostly fresh PEL stays cheap.
    pub fn pending_range(
        &self,
        start: StreamId,
        end: StreamId,
        count: usize,
        consumer: Option<&[u8]>,
        min_idle_ms: u64,
        now_ms: u64,
    ) -> Vec<PendingEntry> {
        if count == 0 || start > end {
            return Vec::new();
        }
        let idle_enough =
            |r: &Record| min_idle_ms == 0 || now_ms.saturating_sub(r.time()) >= min_idle_ms;
        match consumer {
            Some(name) => {
                let Some(consumer) = self.consumer(name) else {
                    return Vec::new();
                };
                consumer
                    .pending
                    .range(start..=end)
                    .filter_map(|(id, _)| self.pel.get(id).map(|r| (*id, r)))
                    .filter(|(_, r)| idle_enough(r))
                    .take(count)
                    .map(|(id, r)| self.view(id, r))
                    .collect()
            }
            None if min_idle_ms > 0 => {
                // The NACK zone (delivery time 0, at the head) passes any IDLE filter.
                let cutoff = now_ms.saturating_sub(min_idle_ms);
                let mut ids: Vec<StreamId> = self
                    .by_delivery_time
                    .range(..=TimeKey::new(cutoff, u32::MAX))
                    .map(|(_, id)| *id)
                    .filter(|id| {
                        now_ms >= min_idle_ms || self.pel.get(id).is_some_and(Record::nacked)
                    })
                    .filter(|id| *id >= start && *id <= end)
                    .collect();
                ids.sort_unstable();
                ids.truncate(count);
                ids.iter()
                    .filter_map(|id| self.pending_entry(*id))
                    .collect()
            }
            None => self
                .pel
                .range(start..=end)
                .take(count)
                .map(|(id, r)| self.view(*id, r))
                .collect(),
        }
    }

    /// Pending entries idle at least `min_idle_ms`, oldest delivery first, without looking at
    /// fresher ones.
    pub fn idle_entries(
        &self,
        min_idle_ms: u64,
        now_ms: u64,
    ) -> impl Iterator<Item = PendingEntry> + '_ {
        let cutoff = now_ms.checked_sub(min_idle_ms);
        // The NACK zone first (FIFO), whatever the idle time asked for, then by age.
        self.by_delivery_time
            .iter()
            .filter_map(|(_, id)| self.pel.get(id).map(|r| (*id, r)))
            .take_while(move |(_, r)| r.nacked() || cutoff.is_some_and(|c| r.time() <= c))
            .map(|(id, r)| self.view(id, r))
    }

    /// XNACK of one ID: releases it from its owner into the tail of the NACK zone, its
    /// counter changed by the mode (or set by RETRYCOUNT). An ID not pending gets a new,
    /// unowned NACK with FORCE when `in_stream`. True when the ID was NACKed (counted).
    pub fn nack(&mut self, id: StreamId, in_stream: bool, opts: &NackOptions) -> bool {
        let count = match self.detach(id) {
            Some((_, count)) => count,
            None if opts.force && in_stream => 0,
            None => return false,
        };
        let count = match opts.retry_count {
            Some(count) => count.min(MAX_DELIVERY_COUNT),
            None => opts.mode.apply(count),
        };
        self.attach(id, 0, count, NO_OWNER);
        true
    }

    /// Heap bytes the pending entries take: the PEL, the time index and the consumers'
    /// sets (consumer names and the group itself not counted).
    pub fn pel_heap_bytes(&self) -> usize {
        self.pel.heap_bytes()
            + self.by_delivery_time.heap_bytes()
            + self
                .consumers()
                .map(|c| c.pending.heap_bytes())
                .sum::<usize>()
    }

    /// Entries in the NACK zone (`nacked-count` of XINFO STREAM FULL).
    pub fn nacked_count(&self) -> usize {
        self.nack_zone().count()
    }

    /// The NACK zone in its order (oldest NACK first): what XREADGROUP CLAIM serves first.
    pub fn nack_zone(&self) -> impl Iterator<Item = PendingEntry> + '_ {
        self.by_delivery_time
            .range(..TimeKey::new(1, 0))
            .filter_map(|(_, id)| self.pel.get(id).map(|r| (*id, r)))
            .filter(|(_, r)| r.nacked())
            .map(|(id, r)| self.view(id, r))
    }

    /// Appends the NACK zone in checkpoint form, in zone order: `u32 n | n × (id, u64
    /// count)`. Kept out of [`encode`](Self::encode) (which lists pending entries under
    /// their owners) so that checkpoints written before XNACK still read.
    pub fn encode_nack_zone(&self, out: &mut Vec<u8>) {
        use crate::engine::codec::Put;
        out.put_u32v(self.nacked_count() as u32);
        for e in self.nack_zone() {
            out.put_id(e.id);
            out.put_u64v(e.delivery_count);
        }
    }

    /// Restores a NACK zone written by [`encode_nack_zone`](Self::encode_nack_zone) at the
    /// tail of this group's zone; `None` when malformed or when an ID is already pending.
    pub fn decode_nack_zone(&mut self, r: &mut crate::engine::codec::Reader) -> Option<()> {
        let n = r.count(24)?;
        for _ in 0..n {
            let id = r.id()?;
            let delivery_count = r.u64()?;
            if self.pel.contains_key(&id) || delivery_count > MAX_DELIVERY_COUNT {
                return None;
            }
            self.attach(id, 0, delivery_count, NO_OWNER);
        }
        Some(())
    }

    /// The whole PEL, oldest delivery first (ties in the order they got their time): the
    /// order XREADGROUP CLAIM serves pending entries in.
    pub fn pending_by_delivery_time(&self) -> impl Iterator<Item = PendingEntry> + '_ {
        self.by_delivery_time
            .iter()
            .filter_map(|(_, id)| self.pending_entry(*id))
    }

    /// The group's lag: entries in the stream not yet delivered to it, `None` when it cannot be
    /// known because of XDEL fragmentation (`streamReplyWithCGLag` in Redis 8.6).
    pub fn lag(&self, stream: &StreamCounters) -> Option<i64> {
        let added = i64::try_from(stream.entries_added).unwrap_or(i64::MAX);
        if stream.entries_added == 0 || stream.length == 0 {
            // Never written, or everything deleted since: nothing left to deliver (8.0).
            return Some(0);
        }
        if self.last_delivered_id < stream.first_id && stream.max_deleted_id < stream.first_id {
            // Both the group and the newest tombstone are behind the first entry: every entry
            // still in the stream is undelivered (8.0).
            return Some(i64::try_from(stream.length).unwrap_or(i64::MAX));
        }
        if let Some(read) = self.entries_read {
            if !stream.has_tombstone_from(self.last_delivered_id) {
                return Some(added - i64::try_from(read).unwrap_or(i64::MAX));
            }
        }
        stream
            .estimate_distance(self.last_delivered_id)
            .map(|read| added - i64::try_from(read).unwrap_or(i64::MAX))
    }

    /// Restores a consumer's times as recorded on disk (recovery).
    pub fn restore_consumer(
        &mut self,
        name: &Bytes,
        seen_time_ms: u64,
        active_time_ms: Option<u64>,
    ) {
        let slot = self.ensure_consumer(name, seen_time_ms);
        if let Some(consumer) = self.slot_mut(slot) {
            consumer.seen_time_ms = seen_time_ms;
            consumer.active_time_ms = active_time_ms;
        }
    }

    /// Appends the group in checkpoint form: position, consumers with their times,
    /// and every pending entry (owner, delivery time, count).
    pub fn encode(&self, out: &mut Vec<u8>) {
        use crate::engine::codec::Put;
        out.put_id(self.last_delivered_id);
        out.put_u64v(self.entries_read.map_or(u64::MAX, |n| n));
        out.put_u32v(self.names.len() as u32);
        for c in self.consumers() {
            out.put_bytes(&c.name);
            out.put_u64v(c.seen_time_ms);
            out.put_u64v(c.active_time_ms.map_or(u64::MAX, |t| t));
            out.put_u32v(c.pending.len() as u32);
            for id in c.pending.keys() {
                if let Some(p) = self.pel.get(id) {
                    out.put_id(*id);
                    out.put_u64v(p.time());
                    out.put_u64v(self.count_of(*id, p));
                }
            }
        }
    }

    /// Reads a group written by [`ConsumerGroup::encode`]; `None` when malformed.
    pub fn decode(r: &mut crate::engine::codec::Reader) -> Option<ConsumerGroup> {
        let last = r.id()?;
        let entries_read = Some(r.u64()?).filter(|&n| n != u64::MAX);
        let mut g = ConsumerGroup::new(last, entries_read);
        let consumers = r.count(24)?;
        for _ in 0..consumers {
            // A copy: the reader's bytes are the whole checkpoint record.
            let name = owned(&r.bytes()?);
            let seen = r.u64()?;
            let active = Some(r.u64()?).filter(|&t| t != u64::MAX);
            if g.names.contains_key(&name) {
                return None;
            }
            let slot = g.add_consumer(name, seen);
            let mut pending = ChunkMap::new();
            let n = r.count(32)?;
            for _ in 0..n {
                let id = r.id()?;
                let delivery_time_ms = r.u64()?;
                let count = r.u64()?;
                if g.pel.contains_key(&id) {
                    return None;
                }
                let record = Record {
                    delivery_time_ms,
                    delivery_count: g.compact_count(id, count),
                    order: 0,
                    owner: slot,
                };
                g.pel.insert(id, record);
                pending.insert(id, ());
            }
            let consumer = g.slot_mut(slot)?;
            consumer.active_time_ms = active;
            consumer.pending = pending;
        }
        g.rebuild_time_index();
        Some(g)
    }

    /// Rebuilds the by-delivery-time index from the PEL after a load: sorted by delivery
    /// time, ties by ID (the order Redis's RDB load leaves them in).
    fn rebuild_time_index(&mut self) {
        let mut by_time: Vec<(u64, StreamId)> =
            self.pel.iter().map(|(id, r)| (r.time(), *id)).collect();
        by_time.sort_unstable();
        self.renumber(by_time.into_iter());
    }

    /// Numbers the entries from 0 in the given (time-list) order and fills the time index
    /// with them.
    fn renumber(&mut self, in_order: impl Iterator<Item = (u64, StreamId)>) {
        self.by_delivery_time.clear();
        self.next_order = 0;
        for (time, id) in in_order {
            if let Some(record) = self.pel.get_mut(&id) {
                record.order = self.next_order;
                self.by_delivery_time
                    .insert(TimeKey::new(time, self.next_order), id);
                self.next_order = self.next_order.saturating_add(1);
            }
        }
    }

    /// The next attach number; when they run out (after 4 billion attaches), the time
    /// list is numbered again from 0, keeping its order.
    fn take_order(&mut self) -> u32 {
        if self.next_order == u32::MAX {
            let in_order: Vec<(u64, StreamId)> = self
                .by_delivery_time
                .iter()
                .map(|(k, id)| (k.time, *id))
                .collect();
            self.renumber(in_order.into_iter());
        }
        let order = self.next_order;
        self.next_order += 1;
        order
    }

    fn slot(&self, slot: u32) -> Option<&Consumer> {
        self.slots.get(slot as usize).and_then(Option::as_ref)
    }

    fn slot_mut(&mut self, slot: u32) -> Option<&mut Consumer> {
        self.slots.get_mut(slot as usize).and_then(Option::as_mut)
    }

    /// Files a new consumer (whose name is not taken) in a free slot; returns the slot.
    fn add_consumer(&mut self, name: Bytes, now_ms: u64) -> u32 {
        let consumer = Consumer::new(name.clone(), now_ms);
        let slot = match self.free_slots.pop() {
            Some(slot) => {
                if let Some(cell) = self.slots.get_mut(slot as usize) {
                    *cell = Some(consumer);
                }
                slot
            }
            None => {
                self.slots.push(Some(consumer));
                (self.slots.len() - 1) as u32
            }
        };
        self.names.insert(name, slot);
        slot
    }

    /// The slot of consumer `name`, created (seen at `now_ms`) if it does not exist.
    fn ensure_consumer(&mut self, name: &Bytes, now_ms: u64) -> u32 {
        match self.names.get(name) {
            Some(&slot) => slot,
            None => self.add_consumer(owned(name), now_ms),
        }
    }

    /// The reader's copy of the entry stored as `record` under `id`.
    fn view(&self, id: StreamId, record: &Record) -> PendingEntry {
        let consumer = match self.slot(record.owner()) {
            Some(c) if !record.nacked() => c.name.clone(),
            _ => Bytes::new(),
        };
        PendingEntry {
            id,
            consumer,
            delivery_time_ms: record.time(),
            delivery_count: self.count_of(id, record),
            nacked: record.nacked(),
        }
    }

    /// The delivery count of the entry stored as `record` under `id`.
    fn count_of(&self, id: StreamId, record: &Record) -> u64 {
        match record.delivery_count {
            BIG_COUNT => self
                .big_counts
                .get(&id)
                .copied()
                .unwrap_or(u64::from(BIG_COUNT)),
            small => u64::from(small),
        }
    }

    /// The record's form of delivery count `count` of `id`, filing a large one in
    /// `big_counts`.
    fn compact_count(&mut self, id: StreamId, count: u64) -> u32 {
        match u32::try_from(count) {
            Ok(small) if small != BIG_COUNT => small,
            _ => {
                self.big_counts.insert(id, count);
                BIG_COUNT
            }
        }
    }

    /// Removes a pending entry from all three views, returning its record and its
    /// delivery count.
    fn detach(&mut self, id: StreamId) -> Option<(Record, u64)> {
        let record = self.pel.remove(&id)?;
        let count = match record.delivery_count {
            BIG_COUNT => self.big_counts.remove(&id).unwrap_or(u64::from(BIG_COUNT)),
            small => u64::from(small),
        };
        self.by_delivery_time.remove(&record.time_key());
        if !record.nacked() {
            if let Some(owner) = self.slot_mut(record.owner()) {
                owner.pending.remove(&id);
            }
        }
        Some((record, count))
    }

    /// Inserts a pending entry into all three views; `owner` is a consumer's slot (which
    /// must hold a consumer) or [`NO_OWNER`] for a NACKed entry.
    fn attach(&mut self, id: StreamId, delivery_time_ms: u64, delivery_count: u64, owner: u32) {
        // Redis's pelListInsertSorted: after every entry with the same or an earlier time.
        let order = self.take_order();
        self.by_delivery_time
            .insert(TimeKey::new(delivery_time_ms, order), id);
        if owner != NO_OWNER {
            if let Some(consumer) = self.slot_mut(owner) {
                consumer.pending.insert(id, ());
            }
        }
        if !self.big_counts.is_empty() {
            // Only a detached ID is attached, so none is left there; kept exact regardless.
            self.big_counts.remove(&id);
        }
        let delivery_count = self.compact_count(id, delivery_count);
        self.pel.insert(
            id,
            Record {
                delivery_time_ms,
                delivery_count,
                order,
                owner,
            },
        );
    }

    fn mark_active(&mut self, slot: u32, now_ms: u64) {
        if let Some(c) = self.slot_mut(slot) {
            c.active_time_ms = Some(now_ms);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(ms: u64, seq: u64) -> StreamId {
        StreamId { ms, seq }
    }

    fn name(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    /// A stream with entries 1-0..=n-0, none deleted.
    fn plain(n: u64) -> StreamCounters {
        StreamCounters {
            length: n,
            entries_added: n,
            first_id: if n == 0 { ZERO_ID } else { id(1, 0) },
            last_id: if n == 0 { ZERO_ID } else { id(n, 0) },
            max_deleted_id: ZERO_ID,
        }
    }

    fn check_views(g: &ConsumerGroup) {
        g.pel.check();
        g.by_delivery_time.check();
        assert_eq!(g.pel.len(), g.by_delivery_time.len());
        let owned: usize = g.consumers().map(|c| c.pending.len()).sum();
        assert_eq!(owned + g.nacked_count(), g.pel.len());
        for (id, r) in g.pel.iter() {
            assert_eq!(g.by_delivery_time.get(&r.time_key()), Some(id));
            assert!(r.order() < g.next_order);
            if r.nacked() {
                assert_eq!(r.time(), 0);
                assert!(g.consumers().all(|c| !c.pending.contains_key(id)));
            } else {
                assert!(g
                    .slot(r.owner())
                    .is_some_and(|c| c.pending.contains_key(id)));
            }
        }
        for (name, &slot) in &g.names {
            assert_eq!(g.slot(slot).map(|c| &c.name), Some(name));
        }
        // A large count is in the side map exactly when its record says so.
        for (id, r) in g.pel.iter() {
            let big = r.delivery_count == BIG_COUNT;
            assert_eq!(g.big_counts.contains_key(id), big);
            if big {
                assert!(g.big_counts[id] >= u64::from(BIG_COUNT));
            }
        }
        assert!(g.big_counts.keys().all(|id| g.pel.contains_key(id)));
        let live = g.slots.iter().filter(|s| s.is_some()).count();
        assert_eq!(live, g.names.len());
        assert_eq!(live + g.free_slots.len(), g.slots.len());
    }

    #[test]
    fn deliveries_count_entries_read_exactly_without_tombstones() {
        let s = plain(5);
        let mut g = ConsumerGroup::new(ZERO_ID, None);
        assert_eq!(g.lag(&s), Some(5));
        let alice = name("alice");
        g.touch_consumer(&alice, 10);
        for ms in 1..=3 {
            g.advance(id(ms, 0), &s);
            g.deliver(id(ms, 0), &alice, 10);
        }
        // Unknown counter at 0-0 becomes exact through the first-entry estimate.
        assert_eq!(g.entries_read(), Some(3));
        assert_eq!(g.lag(&s), Some(2));
        assert_eq!(g.last_delivered_id(), id(3, 0));
        check_views(&g);
    }

    #[test]
    fn estimate_follows_redis_rules() {
        let mut s = plain(10);
        assert_eq!(s.estimate_distance(id(10, 0)), Some(10));
        assert_eq!(s.estimate_distance(id(11, 0)), None);
        assert_eq!(s.estimate_distance(id(1, 0)), Some(1));
        assert_eq!(s.estimate_distance(id(0, 5)), Some(0));
        assert_eq!(s.estimate_distance(id(5, 0)), None);
        // Trimmed head: first entry is 4-0, 7 left, 10 added.
        s.length = 7;
        s.first_id = id(4, 0);
        assert_eq!(s.estimate_distance(id(2, 0)), Some(3));
        assert_eq!(s.estimate_distance(id(4, 0)), Some(4));
        // A tombstone inside the stream makes the head unknown.
        s.max_deleted_id = id(6, 0);
        s.length = 6;
        assert_eq!(s.estimate_distance(id(2, 0)), None);
        assert!(s.has_tombstone_from(id(5, 0)));
        assert!(!s.has_tombstone_from(id(7, 0)));
        // Empty stream: anything up to the last ID counts as everything.
        let empty = StreamCounters {
            length: 0,
            entries_added: 3,
            first_id: ZERO_ID,
            last_id: id(3, 0),
            max_deleted_id: id(3, 0),
        };
        assert_eq!(empty.estimate_distance(id(1, 0)), Some(3));
        assert!(!empty.has_tombstone_from(ZERO_ID));
        assert_eq!(plain(0).estimate_distance(id(9, 9)), Some(0));
    }

    #[test]
    fn lag_through_a_tombstone_matches_redis_test_suite() {
        // Redis's "Consumer group lag with XDELs": 1-0..5-0 added, 3-0 deleted.
        let s = StreamCounters {
            length: 4,
            entries_added: 5,
            first_id: id(1, 0),
            last_id: id(5, 0),
            max_deleted_id: id(3, 0),
        };
        let mut g = ConsumerGroup::new(ZERO_ID, None);
        assert_eq!(g.lag(&s), None);
        for ms in [1, 2, 4] {
            g.advance(id(ms, 0), &s);
            assert_eq!(g.entries_read(), None);
            assert_eq!(g.lag(&s), None);
        }
        g.advance(id(5, 0), &s);
        assert_eq!(g.entries_read(), Some(5));
        assert_eq!(g.lag(&s), Some(0));
        // A valid counter with the tombstone behind the position stays exact.
        let g = ConsumerGroup::new(id(4, 0), Some(4));
        assert_eq!(g.lag(&s), Some(1));
        let g = ConsumerGroup::new(id(2, 0), Some(2));
        assert_eq!(g.lag(&s), None);
        assert_eq!(ConsumerGroup::new(ZERO_ID, None).lag(&plain(0)), Some(0));
    }

    /// The lag rules Redis 8.0 added (#13338, #13473, #13958; `streamReplyWithCGLag`).
    #[test]
    fn lag_follows_redis_8_rules() {
        // Everything deleted since: lag 0, even for a group that never read.
        let emptied = StreamCounters {
            length: 0,
            entries_added: 3,
            first_id: ZERO_ID,
            last_id: id(3, 0),
            max_deleted_id: id(3, 0),
        };
        assert_eq!(ConsumerGroup::new(ZERO_ID, None).lag(&emptied), Some(0));
        // Group and newest tombstone both before the first entry: lag = length.
        let trimmed = StreamCounters {
            length: 2,
            entries_added: 5,
            first_id: id(4, 0),
            last_id: id(5, 0),
            max_deleted_id: id(2, 0),
        };
        assert_eq!(ConsumerGroup::new(id(1, 0), None).lag(&trimmed), Some(2));
        // A tombstone after the ID makes its distance unknown.
        let holed = StreamCounters {
            length: 3,
            entries_added: 5,
            first_id: id(1, 0),
            last_id: id(5, 0),
            max_deleted_id: id(4, 0),
        };
        assert_eq!(holed.estimate_distance(id(1, 0)), None);
        assert_eq!(holed.estimate_distance(id(5, 0)), Some(5));
        // The tombstone-before-first shortcut is gone: any tombstone at or after the start counts.
        assert!(trimmed.has_tombstone_from(id(1, 0)));
    }

    #[test]
    fn ack_claim_and_delete_consumer_keep_views_in_step() {
        let s = plain(4);
        let mut g = ConsumerGroup::new(ZERO_ID, None);
        let (a, b) = (name("a"), name("b"));
        g.touch_consumer(&a, 0);
        for ms in 1..=4 {
            g.advance(id(ms, 0), &s);
            g.deliver(id(ms, 0), &a, ms * 100);
        }
        assert!(g.ack(id(2, 0)));
        assert!(!g.ack(id(2, 0)));
        g.touch_consumer(&b, 1000);
        let opts = ClaimOptions {
            min_idle_ms: 700,
            delivery_time_ms: 1000,
            retry_count: None,
            force: false,
            just_id: false,
        };
        assert_eq!(
            g.claim(id(1, 0), &b, true, &opts, 1000),
            ClaimOutcome::Claimed
        );
        assert_eq!(
            g.claim(id(4, 0), &b, true, &opts, 1000),
            ClaimOutcome::Skipped
        );
        assert_eq!(
            g.claim(id(3, 0), &b, false, &opts, 1000),
            ClaimOutcome::Dropped
        );
        assert_eq!(
            g.claim(id(9, 0), &b, true, &opts, 1000),
            ClaimOutcome::Skipped
        );
        let forced = ClaimOptions {
            force: true,
            retry_count: Some(7),
            ..opts
        };
        assert_eq!(
            g.claim(id(2, 0), &b, true, &forced, 1000),
            ClaimOutcome::Claimed
        );
        assert_eq!(g.pending_entry(id(2, 0)).map(|e| e.delivery_count), Some(7));
        assert_eq!(g.pending_entry(id(1, 0)).map(|e| e.delivery_count), Some(2));
        assert_eq!(g.consumer(&b).and_then(|c| c.active_time_ms()), Some(1000));
        check_views(&g);
        let summary = g.summary();
        assert_eq!(summary.count, 3);
        assert_eq!(summary.bounds, Some((id(1, 0), id(4, 0))));
        assert_eq!(summary.per_consumer, vec![(a.clone(), 1), (b.clone(), 2)]);
        assert_eq!(g.delete_consumer(&b), Some(2));
        assert_eq!(g.delete_consumer(&b), None);
        assert_eq!(g.pending_count(), 1);
        check_views(&g);
    }

    #[test]
    fn pending_range_with_idle_uses_time_view_and_keeps_id_order() {
        let s = plain(6);
        let mut g = ConsumerGroup::new(ZERO_ID, None);
        let a = name("a");
        g.touch_consumer(&a, 0);
        // Delivered in reverse time order: 6-0 oldest.
        for ms in 1..=6 {
            g.advance(id(ms, 0), &s);
            g.deliver(id(ms, 0), &a, 1000 - ms * 100);
        }
        let ids = |v: Vec<PendingEntry>| v.iter().map(|e| e.id.ms).collect::<Vec<_>>();
        // now = 1000: idle of k-0 is k*100.
        assert_eq!(
            ids(g.pending_range(ZERO_ID, StreamId::MAX, 10, None, 350, 1000)),
            vec![4, 5, 6]
        );
        assert_eq!(
            ids(g.pending_range(ZERO_ID, StreamId::MAX, 2, None, 350, 1000)),
            vec![4, 5]
        );
        assert_eq!(
            ids(g.pending_range(id(5, 0), StreamId::MAX, 10, None, 350, 1000)),
            vec![5, 6]
        );
        assert_eq!(
            ids(g.pending_range(ZERO_ID, id(3, 0), 10, None, 0, 1000)),
            vec![1, 2, 3]
        );
        assert_eq!(
            ids(g.pending_range(ZERO_ID, StreamId::MAX, 10, Some(b"a"), 550, 1000)),
            vec![6]
        );
        assert!(g
            .pending_range(ZERO_ID, StreamId::MAX, 10, Some(b"zz"), 0, 1000)
            .is_empty());
        assert_eq!(
            g.idle_entries(450, 1000)
                .map(|e| e.id.ms)
                .collect::<Vec<_>>(),
            vec![6, 5]
        );
    }

    #[test]
    fn auto_claim_scans_bounded_and_reports_deleted() {
        let s = plain(30);
        let mut g = ConsumerGroup::new(ZERO_ID, None);
        let (a, b) = (name("a"), name("b"));
        g.touch_consumer(&a, 0);
        for ms in 1..=30 {
            g.advance(id(ms, 0), &s);
            // Only multiples of 5 are old.
            let t = if ms % 5 == 0 { 0 } else { 900 };
            g.deliver(id(ms, 0), &a, t);
        }
        g.touch_consumer(&b, 1000);
        // COUNT 1: at most 10 examined; 5-0 claimed, cursor at 6-0.
        let r = g.auto_claim(
            &b,
            &AutoClaimScan {
                start: ZERO_ID,
                min_idle_ms: 500,
                count: 1,
                just_id: false,
                now_ms: 1000,
            },
            |i| i.ms != 3,
        );
        assert_eq!(r.deleted, vec![id(3, 0)]);
        assert_eq!(r.claimed, Vec::<StreamId>::new());
        assert_eq!(r.next_cursor, id(4, 0));
        let r = g.auto_claim(
            &b,
            &AutoClaimScan {
                start: r.next_cursor,
                min_idle_ms: 500,
                count: 1,
                just_id: true,
                now_ms: 1000,
            },
            |_| true,
        );
        assert_eq!(r.claimed, vec![id(5, 0)]);
        assert_eq!(r.next_cursor, id(6, 0));
        assert_eq!(g.pending_entry(id(5, 0)).map(|e| e.delivery_count), Some(1));
        let r = g.auto_claim(
            &b,
            &AutoClaimScan {
                start: id(6, 0),
                min_idle_ms: 500,
                count: 100,
                just_id: false,
                now_ms: 1000,
            },
            |_| true,
        );
        assert_eq!(
            r.claimed,
            vec![id(10, 0), id(15, 0), id(20, 0), id(25, 0), id(30, 0)]
        );
        assert_eq!(r.next_cursor, ZERO_ID);
        // Scan budget: COUNT 1 examines 10 entries at most, without claiming fresh ones.
        let r = g.auto_claim(
            &b,
            &AutoClaimScan {
                start: ZERO_ID,
                min_idle_ms: 500,
                count: 1,
                just_id: false,
                now_ms: 1000,
            },
            |_| true,
        );
        assert!(r.claimed.is_empty());
        assert_eq!(r.next_cursor, id(12, 0));
        check_views(&g);
    }

    #[test]
    fn delivery_count_saturates_where_retrycount_can_replay_it() {
        let s = plain(1);
        let mut g = ConsumerGroup::new(ZERO_ID, None);
        let a = name("a");
        g.touch_consumer(&a, 0);
        g.advance(id(1, 0), &s);
        g.deliver(id(1, 0), &a, 5);
        let opts = ClaimOptions {
            min_idle_ms: 0,
            delivery_time_ms: 5,
            retry_count: Some(i64::MAX as u64),
            force: false,
            just_id: false,
        };
        g.claim(id(1, 0), &a, true, &opts, 5);
        g.redeliver(id(1, 0), 6);
        let count = g.pending_entry(id(1, 0)).map(|e| e.delivery_count);
        assert_eq!(count, Some(i64::MAX as u64));
    }

    #[test]
    fn nack_releases_into_a_fifo_zone_that_checkpoints_in_order() {
        let mut g = ConsumerGroup::new(id(0, 0), None);
        let alice = name("alice");
        g.touch_consumer(&alice, 100);
        for ms in 1..=4 {
            g.deliver(id(ms, 0), &alice, 100 + ms);
        }
        let nack = |mode, retry_count, force| NackOptions {
            mode,
            retry_count,
            force,
        };
        assert!(g.nack(id(3, 0), true, &nack(NackMode::Fail, None, false)));
        assert!(g.nack(id(1, 0), true, &nack(NackMode::Silent, None, false)));
        assert!(g.nack(id(2, 0), true, &nack(NackMode::Fatal, Some(7), false)));
        // Re-NACK moves to the end; not pending without FORCE, or not in the stream, is
        // skipped; FORCE creates an unowned entry from 0.
        assert!(g.nack(id(3, 0), true, &nack(NackMode::Fatal, None, false)));
        assert!(!g.nack(id(9, 0), true, &nack(NackMode::Fail, None, false)));
        assert!(!g.nack(id(9, 0), false, &nack(NackMode::Fail, None, true)));
        assert!(g.nack(id(8, 0), true, &nack(NackMode::Silent, None, true)));
        check_views(&g);
        let zone: Vec<(StreamId, u64)> = g.nack_zone().map(|e| (e.id, e.delivery_count)).collect();
        let expected = vec![
            (id(1, 0), 0),
            (id(2, 0), 7),
            (id(3, 0), MAX_DELIVERY_COUNT),
            (id(8, 0), 0),
        ];
        assert_eq!(zone, expected);
        assert_eq!(g.consumer(b"alice").map(Consumer::pending_count), Some(1));
        // The zone comes first for an idle scan, whatever the min-idle.
        let idle: Vec<StreamId> = g.idle_entries(u64::MAX, 200).map(|e| e.id).collect();
        assert_eq!(idle, vec![id(1, 0), id(2, 0), id(3, 0), id(8, 0)]);
        // Checkpoint form: owners in `encode`, the zone in order beside it.
        let mut bytes = Vec::new();
        g.encode(&mut bytes);
        g.encode_nack_zone(&mut bytes);
        let mut r = crate::engine::codec::Reader::new(Bytes::from(bytes));
        let mut back = ConsumerGroup::decode(&mut r).expect("group");
        back.decode_nack_zone(&mut r).expect("zone");
        assert!(r.is_empty());
        check_views(&back);
        let zone_back: Vec<(StreamId, u64)> =
            back.nack_zone().map(|e| (e.id, e.delivery_count)).collect();
        assert_eq!(zone_back, expected);
        // A claim takes a NACKed entry whatever its idle time and gives it an owner.
        let opts = ClaimOptions {
            min_idle_ms: u64::MAX,
            delivery_time_ms: 300,
            retry_count: None,
            force: false,
            just_id: false,
        };
        assert_eq!(
            g.claim(id(2, 0), &alice, true, &opts, 300),
            ClaimOutcome::Claimed
        );
        assert_eq!(g.pending_entry(id(2, 0)).map(|e| e.delivery_count), Some(8));
        check_views(&g);
    }

    #[test]
    fn time_index_keeps_tie_order_and_is_rebuilt_by_id_on_load() {
        let s = plain(3);
        let mut g = ConsumerGroup::new(ZERO_ID, None);
        let a = name("a");
        g.touch_consumer(&a, 0);
        for ms in 1..=3 {
            g.advance(id(ms, 0), &s);
            g.deliver(id(ms, 0), &a, 100);
        }
        // XCLAIM … TIME 50 JUSTID of 3-0, then of 1-0: equal times, in the order given.
        let opts = ClaimOptions {
            min_idle_ms: 0,
            delivery_time_ms: 50,
            retry_count: None,
            force: false,
            just_id: true,
        };
        g.claim(id(3, 0), &a, true, &opts, 100);
        g.claim(id(1, 0), &a, true, &opts, 100);
        let order = |g: &ConsumerGroup| {
            g.pending_by_delivery_time()
                .map(|e| e.id.ms)
                .collect::<Vec<_>>()
        };
        assert_eq!(order(&g), vec![3, 1, 2]);
        let idle = |g: &ConsumerGroup, min: u64| {
            g.idle_entries(min, 100)
                .map(|e| e.id.ms)
                .collect::<Vec<_>>()
        };
        assert_eq!(idle(&g, 50), vec![3, 1]);
        assert_eq!(idle(&g, 51), Vec::<u64>::new());
        assert_eq!(idle(&g, 0), vec![3, 1, 2]);
        // A later delivery at an equal time goes after the others with that time.
        g.redeliver(id(3, 0), 100);
        assert_eq!(order(&g), vec![1, 2, 3]);
        check_views(&g);
        // Loaded from a checkpoint, ties come in ID order (as Redis's RDB load).
        g.claim(id(3, 0), &a, true, &opts, 100);
        assert_eq!(order(&g), vec![1, 3, 2]);
        let mut buf = Vec::new();
        g.encode(&mut buf);
        let mut r = crate::engine::codec::Reader::new(Bytes::from(buf));
        let loaded = ConsumerGroup::decode(&mut r).expect("decodes");
        assert_eq!(order(&loaded), vec![1, 3, 2]);
        check_views(&loaded);
        let mut g2 = loaded;
        g2.claim(id(2, 0), &a, true, &opts, 100);
        assert_eq!(order(&g2), vec![1, 3, 2]);
        g2.claim(id(1, 0), &a, true, &opts, 100);
        assert_eq!(order(&g2), vec![3, 2, 1]);
        check_views(&g2);
    }

    #[test]
    fn redelivery_after_setid_reassigns_with_count_one() {
        let s = plain(2);
        let mut g = ConsumerGroup::new(ZERO_ID, None);
        let (a, b) = (name("a"), name("b"));
        g.touch_consumer(&a, 0);
        g.advance(id(1, 0), &s);
        g.deliver(id(1, 0), &a, 5);
        g.redeliver(id(1, 0), 6);
        assert_eq!(g.pending_entry(id(1, 0)).map(|e| e.delivery_count), Some(2));
        assert_eq!(g.history(&a, ZERO_ID, 0), vec![id(1, 0)]);
        assert!(g.history(&a, id(1, 0), 0).is_empty());
        g.set_position(ZERO_ID, None);
        g.touch_consumer(&b, 7);
        g.advance(id(1, 0), &s);
        g.deliver(id(1, 0), &b, 7);
        let e = g.pending_entry(id(1, 0));
        assert_eq!(
            e.map(|e| (e.consumer, e.delivery_count)),
            Some((b.clone(), 1))
        );
        assert_eq!(g.consumer(&a).map(|c| c.pending_count()), Some(0));
        check_views(&g);
    }

    #[test]
    fn a_pending_entry_takes_at_most_88_bytes() {
        // 88 bytes: the Redis figure of issue #18 (Redis 8.6.3 measures 219 B RSS a
        // pending entry, Rill ~90; the BTreeMap views this replaced, ~330; see
        // bench/results/2026-12-07-memory-per-object.md). Heap bytes of the three views
        // here: 16 + 24 (PEL) + 12 + 16 (time index) + 16 (owner's set) and chunk upkeep.
        let n = 100_000u64;
        let s = plain(n);
        let mut g = ConsumerGroup::new(ZERO_ID, None);
        let (a, b) = (name("a"), name("b"));
        g.touch_consumer(&a, 0);
        g.touch_consumer(&b, 0);
        for ms in 1..=n {
            g.advance(id(ms, 0), &s);
            g.deliver(
                id(ms, 0),
                if ms % 3 == 0 { &b } else { &a },
                1000 + ms / 100,
            );
        }
        let per_entry = g.pel_heap_bytes() as f64 / n as f64;
        assert!(per_entry <= 88.0, "{per_entry:.1} bytes a pending entry");
        check_views(&g);
    }

    #[test]
    fn attach_numbers_run_out_and_restart_in_order() {
        let mut g = ConsumerGroup::new(ZERO_ID, None);
        let a = name("a");
        g.touch_consumer(&a, 0);
        for ms in 1..=5 {
            g.deliver(id(ms, 0), &a, 100);
        }
        g.next_order = u32::MAX - 2;
        let opts = ClaimOptions {
            min_idle_ms: 0,
            delivery_time_ms: 100,
            retry_count: None,
            force: false,
            just_id: true,
        };
        for ms in [2, 4, 1, 3] {
            g.claim(id(ms, 0), &a, true, &opts, 100);
        }
        let order: Vec<u64> = g.pending_by_delivery_time().map(|e| e.id.ms).collect();
        assert_eq!(order, vec![5, 2, 4, 1, 3]);
        assert!(g.next_order < 10);
        check_views(&g);
    }

    #[test]
    fn deleted_consumer_slots_are_reused_without_mixing_owners() {
        let mut g = ConsumerGroup::new(ZERO_ID, None);
        let (a, b, c) = (name("a"), name("b"), name("c"));
        g.touch_consumer(&a, 0);
        g.touch_consumer(&b, 0);
        g.deliver(id(1, 0), &a, 10);
        g.deliver(id(2, 0), &b, 10);
        assert_eq!(g.delete_consumer(b"a"), Some(1));
        g.touch_consumer(&c, 20);
        g.deliver(id(3, 0), &c, 20);
        assert_eq!(
            g.pending_entry(id(2, 0)).map(|e| e.consumer),
            Some(b.clone())
        );
        assert_eq!(
            g.pending_entry(id(3, 0)).map(|e| e.consumer),
            Some(c.clone())
        );
        assert_eq!(g.pending_entry(id(1, 0)), None);
        assert_eq!(g.history(b"c", ZERO_ID, 0), vec![id(3, 0)]);
        let names: Vec<&[u8]> = g.consumers().map(|c| &c.name()[..]).collect();
        assert_eq!(names, vec![&b"b"[..], &b"c"[..]]);
        check_views(&g);
    }

    #[test]
    fn counts_past_32_bits_survive_claims_redeliveries_checkpoints_and_removal() {
        let mut g = ConsumerGroup::new(ZERO_ID, None);
        let (a, b) = (name("a"), name("b"));
        g.touch_consumer(&a, 0);
        g.touch_consumer(&b, 0);
        for ms in 1..=4 {
            g.deliver(id(ms, 0), &a, 10);
        }
        let edge = u64::from(u32::MAX);
        let claim = |retry_count| ClaimOptions {
            min_idle_ms: 0,
            delivery_time_ms: 20,
            retry_count: Some(retry_count),
            force: false,
            just_id: false,
        };
        g.claim(id(1, 0), &a, true, &claim(edge + 5), 20);
        g.claim(id(2, 0), &b, true, &claim(edge), 20);
        g.claim(id(3, 0), &a, true, &claim(edge - 1), 20);
        let counts = |g: &ConsumerGroup| -> Vec<u64> {
            g.pending_entries().map(|e| e.delivery_count).collect()
        };
        assert_eq!(counts(&g), vec![edge + 5, edge, edge - 1, 1]);
        assert_eq!(g.big_counts.len(), 2);
        check_views(&g);
        g.redeliver(id(3, 0), 30);
        g.redeliver(id(1, 0), 30);
        assert_eq!(counts(&g), vec![edge + 6, edge, edge, 1]);
        check_views(&g);
        let mut buf = Vec::new();
        g.encode(&mut buf);
        let mut r = crate::engine::codec::Reader::new(Bytes::from(buf));
        let back = ConsumerGroup::decode(&mut r).expect("decodes");
        assert_eq!(counts(&back), counts(&g));
        check_views(&back);
        // XACK and DELCONSUMER leave nothing behind in the side map.
        assert!(g.ack(id(2, 0)));
        assert_eq!(g.delete_consumer(b"a"), Some(3));
        assert!(g.big_counts.is_empty() && g.pel.is_empty());
        check_views(&g);
    }
}
