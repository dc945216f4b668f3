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

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use bytes::Bytes;

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

/// One delivered-but-unacknowledged entry (a NACK in Redis's source).
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
    /// Position among entries of equal delivery time in the by-delivery-time index.
    order: u64,
}

impl PendingEntry {
    /// Whether XNACK released it: no owner, in the NACK zone, claimable regardless of
    /// min-idle-time (XPENDING shows it with consumer `""` and idle -1).
    pub fn is_nacked(&self) -> bool {
        self.nacked
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
    pending: BTreeSet<StreamId>,
}

impl Consumer {
    fn new(name: Bytes, now_ms: u64) -> Self {
        Consumer {
            name,
            seen_time_ms: now_ms,
            active_time_ms: None,
            pending: BTreeSet::new(),
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
    pub fn pending_ids(&self) -> impl DoubleEndedIterator<Item = StreamId> + '_ {
        self.pending.iter().copied()
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

/// The IDs that entered (`true`) or left (`false`) a group's PEL since the stream last
/// looked, in order: how the stream keeps its index of referenced entries (see
/// [`crate::engine::refs`]) exact without being told by every PEL mutation separately.
///
/// Every insertion into or removal from the PEL goes through `attach`/`detach` (or
/// `delete_consumer`), which record it here; the stream's `GroupMut` guard drains it as
/// soon as the mutation is over. It is bookkeeping, not state: equal groups compare equal
/// whatever their journals hold.
#[derive(Debug, Clone, Default)]
pub(crate) struct PelJournal(Vec<(StreamId, bool)>);

impl PartialEq for PelJournal {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for PelJournal {}

/// A consumer group of one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroup {
    last_delivered_id: StreamId,
    entries_read: Option<u64>,
    pel: BTreeMap<StreamId, PendingEntry>,
    /// (delivery time, attach order) → ID: the PEL time list.
    by_delivery_time: BTreeMap<(u64, u64), StreamId>,
    /// The attach order the next pending entry gets.
    next_order: u64,
    consumers: BTreeMap<Bytes, Consumer>,
    journal: PelJournal,
}

impl ConsumerGroup {
    /// A group positioned after `last_delivered_id`; `entries_read` is `None` when unknown
    /// (XGROUP CREATE without ENTRIESREAD).
    pub fn new(last_delivered_id: StreamId, entries_read: Option<u64>) -> Self {
        ConsumerGroup {
            last_delivered_id,
            entries_read,
            pel: BTreeMap::new(),
            by_delivery_time: BTreeMap::new(),
            next_order: 0,
            consumers: BTreeMap::new(),
            journal: PelJournal::default(),
        }
    }

    /// Hands the PEL changes recorded since the last call to `f` (ID, entered), in order,
    /// and forgets them.
    pub(crate) fn drain_pel_changes(&mut self, mut f: impl FnMut(StreamId, bool)) {
        let changes = &mut self.journal.0;
        let mut i = 0;
        while i < changes.len() {
            let (id, entered) = changes[i];
            // A detach and re-attach of the same ID (a claim, a redelivery) changes nothing.
            if !entered && changes.get(i + 1) == Some(&(id, true)) {
                i += 2;
                continue;
            }
            f(id, entered);
            i += 1;
        }
        changes.clear();
        if changes.capacity() > 1024 {
            changes.shrink_to(64);
        }
    }

    /// Forgets the recorded PEL changes (the caller counts the PEL as it is).
    pub(crate) fn clear_pel_changes(&mut self) {
        self.journal.0 = Vec::new();
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

    /// Number of consumers.
    pub fn consumer_count(&self) -> usize {
        self.consumers.len()
    }

    /// Consumers in name order (byte-wise, like Redis's radix tree).
    pub fn consumers(&self) -> impl Iterator<Item = &Consumer> {
        self.consumers.values()
    }

    /// Looks a consumer up by name.
    pub fn consumer(&self, name: &[u8]) -> Option<&Consumer> {
        self.consumers.get(name)
    }

    /// Looks up one pending entry.
    pub fn pending_entry(&self, id: StreamId) -> Option<&PendingEntry> {
        self.pel.get(&id)
    }

    /// The whole PEL in ID order.
    pub fn pending_entries(&self) -> impl Iterator<Item = &PendingEntry> {
        self.pel.values()
    }

    /// XGROUP CREATECONSUMER: creates the consumer; false when it already exists.
    pub fn create_consumer(&mut self, name: &Bytes, now_ms: u64) -> bool {
        if self.consumers.contains_key(name) {
            return false;
        }
        self.consumers
            .insert(owned(name), Consumer::new(owned(name), now_ms));
        true
    }

    /// Finds or creates a consumer and records an attempt by it (seen-time = now), as every
    /// XREADGROUP / XCLAIM / XAUTOCLAIM does. Returns true when the consumer was created.
    pub fn touch_consumer(&mut self, name: &Bytes, now_ms: u64) -> bool {
        match self.consumers.get_mut(name) {
            Some(consumer) => {
                consumer.touch(now_ms);
                false
            }
            None => {
                self.consumers
                    .insert(owned(name), Consumer::new(owned(name), now_ms));
                true
            }
        }
    }

    /// XGROUP DELCONSUMER: removes the consumer and its pending entries (they are not
    /// re-assigned). Returns how many pending entries it had, or `None` if it did not exist.
    pub fn delete_consumer(&mut self, name: &[u8]) -> Option<usize> {
        let consumer = self.consumers.remove(name)?;
        for id in &consumer.pending {
            if let Some(entry) = self.pel.remove(id) {
                self.by_delivery_time
                    .remove(&(entry.delivery_time_ms, entry.order));
                self.journal.0.push((entry.id, false));
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
        self.attach(PendingEntry {
            id,
            consumer: self.stored_name(consumer),
            delivery_time_ms: now_ms,
            delivery_count: 1,
            nacked: false,
            order: 0,
        });
        self.mark_active(consumer, now_ms);
    }

    /// Records that `id` was delivered again from the consumer's history (XREADGROUP with an
    /// explicit ID): delivery time reset, count + 1.
    pub fn redeliver(&mut self, id: StreamId, now_ms: u64) {
        if let Some(mut entry) = self.detach(id) {
            entry.delivery_time_ms = now_ms;
            entry.delivery_count = bump(entry.delivery_count);
            self.attach(entry);
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
        let Some(consumer) = self.consumers.get(consumer) else {
            return Vec::new();
        };
        let iter = consumer
            .pending
            .range((Bound::Excluded(after), Bound::Unbounded))
            .copied();
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
        let mut entry = match self.pel.get(&id) {
            Some(existing) => {
                // A NACKed entry is up for grabs whatever its idle time (Redis 8.8).
                if opts.min_idle_ms > 0
                    && !existing.nacked
                    && now_ms.saturating_sub(existing.delivery_time_ms) < opts.min_idle_ms
                {
                    return ClaimOutcome::Skipped;
                }
                match self.detach(id) {
                    Some(entry) => entry,
                    None => return ClaimOutcome::Skipped,
                }
            }
            // FORCE creates the entry; min-idle does not apply to it (it had no owner).
            // Like Redis's streamCreateNACK it starts at one delivery, which the
            // claim below then bumps: a forced claim reports 2, as in Redis.
            None if opts.force => PendingEntry {
                id,
                consumer: self.stored_name(consumer),
                delivery_time_ms: opts.delivery_time_ms,
                delivery_count: 1,
                nacked: false,
                order: 0,
            },
            None => return ClaimOutcome::Skipped,
        };
        entry.consumer = self.stored_name(consumer);
        entry.nacked = false;
        entry.delivery_time_ms = opts.delivery_time_ms;
        if let Some(count) = opts.retry_count {
            entry.delivery_count = count;
        } else if !opts.just_id {
            entry.delivery_count = bump(entry.delivery_count);
        }
        self.attach(entry);
        self.mark_active(consumer, now_ms);
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
                .map(|(id, entry)| (*id, entry.delivery_time_ms, entry.nacked));
            let Some((id, delivery_time, nacked)) = next else {
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
            if min_idle_ms > 0 && !nacked && now_ms.saturating_sub(delivery_time) < min_idle_ms {
                continue;
            }
            if let Some(mut entry) = self.detach(id) {
                entry.consumer = self.stored_name(consumer);
                entry.nacked = false;
                entry.delivery_time_ms = now_ms;
                if !just_id {
                    entry.delivery_count = bump(entry.delivery_count);
                }
                self.attach(entry);
            }
            self.mark_active(consumer, now_ms);
            result.claimed.push(id);
            remaining -= 1;
        }
    }

    /// XPENDING summary.
    pub fn summary(&self) -> PendingSummary {
        let bounds = match (self.pel.keys().next(), self.pel.keys().next_back()) {
            (Some(first), Some(last)) => Some((*first, *last)),
            _ => None,
        };
        let per_consumer = self
            .consumers
            .values()
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
    ) -> Vec<&PendingEntry> {
        if count == 0 || start > end {
            return Vec::new();
        }
        let idle_enough = |e: &PendingEntry| {
            min_idle_ms == 0 || now_ms.saturating_sub(e.delivery_time_ms) >= min_idle_ms
        };
        match consumer {
            Some(name) => {
                let Some(consumer) = self.consumers.get(name) else {
                    return Vec::new();
                };
                consumer
                    .pending
                    .range(start..=end)
                    .filter_map(|id| self.pel.get(id))
                    .filter(|e| idle_enough(e))
                    .take(count)
                    .collect()
            }
            None if min_idle_ms > 0 => {
                // The NACK zone (delivery time 0, at the head) passes any IDLE filter.
                let cutoff = now_ms.saturating_sub(min_idle_ms);
                let mut ids: Vec<StreamId> = self
                    .by_delivery_time
                    .range(..=(cutoff, u64::MAX))
                    .map(|(_, id)| *id)
                    .filter(|id| {
                        now_ms >= min_idle_ms || self.pel.get(id).is_some_and(|e| e.nacked)
                    })
                    .filter(|id| *id >= start && *id <= end)
                    .collect();
                ids.sort_unstable();
                ids.truncate(count);
                ids.iter().filter_map(|id| self.pel.get(id)).collect()
            }
            None => self
                .pel
                .range(start..=end)
                .map(|(_, e)| e)
                .take(count)
                .collect(),
        }
    }

    /// Pending entries idle at least `min_idle_ms`, oldest delivery first, without looking at
    /// fresher ones.
    pub fn idle_entries(
        &self,
        min_idle_ms: u64,
        now_ms: u64,
    ) -> impl Iterator<Item = &PendingEntry> {
        let cutoff = now_ms.checked_sub(min_idle_ms);
        // The NACK zone first (FIFO), whatever the idle time asked for, then by age.
        self.by_delivery_time
            .values()
            .filter_map(|id| self.pel.get(id))
            .take_while(move |e| e.nacked || cutoff.is_some_and(|c| e.delivery_time_ms <= c))
    }

    /// XNACK of one ID: releases it from its owner into the tail of the NACK zone, its
    /// counter changed by the mode (or set by RETRYCOUNT). An ID not pending gets a new,
    /// unowned NACK with FORCE when `in_stream`. True when the ID was NACKed (counted).
    pub fn nack(&mut self, id: StreamId, in_stream: bool, opts: &NackOptions) -> bool {
        let mut entry = match self.detach(id) {
            Some(entry) => entry,
            None if opts.force && in_stream => PendingEntry {
                id,
                consumer: Bytes::new(),
                delivery_time_ms: 0,
                delivery_count: 0,
                nacked: true,
                order: 0,
            },
            None => return false,
        };
        entry.delivery_count = match opts.retry_count {
            Some(count) => count.min(MAX_DELIVERY_COUNT),
            None => opts.mode.apply(entry.delivery_count),
        };
        entry.consumer = Bytes::new();
        entry.delivery_time_ms = 0;
        entry.nacked = true;
        self.attach(entry);
        true
    }

    /// Entries in the NACK zone (`nacked-count` of XINFO STREAM FULL).
    pub fn nacked_count(&self) -> usize {
        self.nack_zone().count()
    }

    /// The NACK zone in its order (oldest NACK first): what XREADGROUP CLAIM serves first.
    pub fn nack_zone(&self) -> impl Iterator<Item = &PendingEntry> {
        self.by_delivery_time
            .range(..(1, 0))
            .filter_map(|(_, id)| self.pel.get(id))
            .filter(|e| e.nacked)
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
            self.attach(PendingEntry {
                id,
                consumer: Bytes::new(),
                delivery_time_ms: 0,
                delivery_count,
                nacked: true,
                order: 0,
            });
        }
        Some(())
    }

    /// The whole PEL, oldest delivery first (ties in the order they got their time): the
    /// order XREADGROUP CLAIM serves pending entries in.
    pub fn pending_by_delivery_time(&self) -> impl Iterator<Item = &PendingEntry> {
        self.by_delivery_time
            .values()
            .filter_map(|id| self.pel.get(id))
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

    /// Restores a pending entry as recorded on disk (recovery); creates its consumer if needed.
    pub fn restore_pending(&mut self, entry: PendingEntry, now_ms: u64) {
        if !self.consumers.contains_key(&entry.consumer) {
            self.consumers.insert(
                entry.consumer.clone(),
                Consumer::new(entry.consumer.clone(), now_ms),
            );
        }
        self.detach(entry.id);
        self.attach(entry);
    }

    /// Restores a consumer's times as recorded on disk (recovery).
    pub fn restore_consumer(
        &mut self,
        name: &Bytes,
        seen_time_ms: u64,
        active_time_ms: Option<u64>,
    ) {
        let consumer = self
            .consumers
            .entry(owned(name))
            .or_insert_with(|| Consumer::new(owned(name), seen_time_ms));
        consumer.seen_time_ms = seen_time_ms;
        consumer.active_time_ms = active_time_ms;
    }

    /// Appends the group in checkpoint form: position, consumers with their times,
    /// and every pending entry (owner, delivery time, count).
    pub fn encode(&self, out: &mut Vec<u8>) {
        use crate::engine::codec::Put;
        out.put_id(self.last_delivered_id);
        out.put_u64v(self.entries_read.map_or(u64::MAX, |n| n));
        out.put_u32v(self.consumers.len() as u32);
        for c in self.consumers.values() {
            out.put_bytes(&c.name);
            out.put_u64v(c.seen_time_ms);
            out.put_u64v(c.active_time_ms.map_or(u64::MAX, |t| t));
            out.put_u32v(c.pending.len() as u32);
            for id in &c.pending {
                if let Some(p) = self.pel.get(id) {
                    out.put_id(p.id);
                    out.put_u64v(p.delivery_time_ms);
                    out.put_u64v(p.delivery_count);
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
            let name = r.bytes()?;
            let seen = r.u64()?;
            let active = Some(r.u64()?).filter(|&t| t != u64::MAX);
            let mut consumer = Consumer::new(name.clone(), seen);
            consumer.active_time_ms = active;
            let pending = r.count(32)?;
            for _ in 0..pending {
                let entry = PendingEntry {
                    id: r.id()?,
                    consumer: name.clone(),
                    delivery_time_ms: r.u64()?,
                    delivery_count: r.u64()?,
                    nacked: false,
                    order: 0,
                };
                if g.pel.contains_key(&entry.id) {
                    return None;
                }
                consumer.pending.insert(entry.id);
                g.pel.insert(entry.id, entry);
            }
            if g.consumers.insert(name, consumer).is_some() {
                return None;
            }
        }
        g.rebuild_time_index();
        Some(g)
    }

    /// Rebuilds the by-delivery-time index from the PEL after a load: sorted by delivery
    /// time, ties by ID (the order Redis's RDB load leaves them in).
    fn rebuild_time_index(&mut self) {
        let mut by_time: Vec<(u64, StreamId)> = self
            .pel
            .values()
            .map(|e| (e.delivery_time_ms, e.id))
            .collect();
        by_time.sort_unstable();
        self.by_delivery_time.clear();
        self.next_order = 0;
        for (time, id) in by_time {
            if let Some(entry) = self.pel.get_mut(&id) {
                entry.order = self.next_order;
                self.by_delivery_time.insert((time, self.next_order), id);
                self.next_order += 1;
            }
        }
    }

    /// The consumer's name as stored in the group (shared by its pending entries), or an
    /// owned copy if it is not a consumer yet.
    fn stored_name(&self, name: &Bytes) -> Bytes {
        self.consumers
            .get_key_value(name)
            .map(|(k, _)| k.clone())
            .unwrap_or_else(|| owned(name))
    }

    /// Removes a pending entry from all three views, returning it.
    fn detach(&mut self, id: StreamId) -> Option<PendingEntry> {
        let entry = self.pel.remove(&id)?;
        self.journal.0.push((id, false));
        self.by_delivery_time
            .remove(&(entry.delivery_time_ms, entry.order));
        if !entry.nacked {
            if let Some(owner) = self.consumers.get_mut(&entry.consumer) {
                owner.pending.remove(&id);
            }
        }
        Some(entry)
    }

    /// Inserts a pending entry into all three views; its consumer must exist.
    fn attach(&mut self, mut entry: PendingEntry) {
        // Redis's pelListInsertSorted: after every entry with the same or an earlier time.
        entry.order = self.next_order;
        self.next_order += 1;
        self.by_delivery_time
            .insert((entry.delivery_time_ms, entry.order), entry.id);
        if entry.nacked {
            // Owned by no consumer: only the group PEL and the time index know it.
        } else if let Some(owner) = self.consumers.get_mut(&entry.consumer) {
            owner.pending.insert(entry.id);
        } else {
            let mut owner = Consumer::new(entry.consumer.clone(), entry.delivery_time_ms);
            owner.pending.insert(entry.id);
            self.consumers.insert(entry.consumer.clone(), owner);
        }
        self.journal.0.push((entry.id, true));
        self.pel.insert(entry.id, entry);
    }

    fn mark_active(&mut self, consumer: &[u8], now_ms: u64) {
        if let Some(c) = self.consumers.get_mut(consumer) {
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
        assert_eq!(g.pel.len(), g.by_delivery_time.len());
        let owned: usize = g.consumers.values().map(|c| c.pending.len()).sum();
        assert_eq!(owned + g.nacked_count(), g.pel.len());
        for e in g.pel.values() {
            assert_eq!(
                g.by_delivery_time.get(&(e.delivery_time_ms, e.order)),
                Some(&e.id)
            );
            if e.nacked {
                assert_eq!((e.delivery_time_ms, e.consumer.len()), (0, 0));
                assert!(g.consumers.values().all(|c| !c.pending.contains(&e.id)));
            } else {
                assert!(g.consumers[&e.consumer].pending.contains(&e.id));
            }
        }
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
        let ids = |v: Vec<&PendingEntry>| v.iter().map(|e| e.id.ms).collect::<Vec<_>>();
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
        let e = g.pending_entry(id(1, 0)).cloned();
        assert_eq!(
            e.map(|e| (e.consumer, e.delivery_count)),
            Some((b.clone(), 1))
        );
        assert_eq!(g.consumer(&a).map(|c| c.pending_count()), Some(0));
        check_views(&g);
    }
}
