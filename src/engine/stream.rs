//! A stream: its entries (through the [`StreamIndex`]), the counters Redis keeps beside
//! them, and its consumer groups.
//!
//! The counters matter to clients: `last_id` outlives deleted entries (XADD must still
//! go above it), `entries_added` and `max_deleted_id` drive consumer-group lag, and the
//! recorded first ID is shown by XINFO. They change exactly where Redis changes them.

use bytes::Bytes;

use crate::engine::error::StreamError;
use crate::engine::group::{ConsumerGroup, StreamCounters};
use crate::engine::id::{AddIdSpec, StreamId};
use crate::engine::idmp::IdmpState;
use crate::engine::index::{IndexedEntry, NodeLimits, StreamIndex, TrimRule, TrimWalk};
use crate::engine::payload::{PayloadError, PayloadStore};
use crate::engine::policy::StreamPolicy;
use crate::engine::refs::{GroupMut, Groups, RefPolicy};

/// An entry as commands see it: ID and flat `field, value, …` list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The entry's ID.
    pub id: StreamId,
    /// Field/value pairs, flattened in insertion order.
    pub fields: Vec<Bytes>,
}

/// What [`Stream::range_within`] found: the entries it read, then the IDs of those past
/// the room it was given (empty when everything fit).
#[derive(Debug, Default)]
pub struct Ranged {
    pub entries: Vec<Entry>,
    pub beyond: Vec<StreamId>,
}

impl Entry {
    /// Reads an indexed entry's payload.
    pub fn load(e: IndexedEntry, store: &PayloadStore) -> Result<Entry, PayloadError> {
        Ok(Entry {
            id: e.id,
            fields: store.fetch(e.payload)?.fields(),
        })
    }
}

/// A trim request, parsed from `MAXLEN|MINID [=|~] threshold [LIMIT n]` and
/// `KEEPREF|DELREF|ACKED`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrimSpec {
    /// What to remove.
    pub rule: TrimRule,
    /// `~`: remove whole nodes only (with KEEPREF; see [`Stream::trim_with_refs`]).
    pub approx: bool,
    /// Maximum entries to remove (0 = unlimited); only meaningful with `approx`.
    pub limit: u64,
    /// What happens to the consumer groups' references to trimmed entries.
    pub refs: RefPolicy,
}

/// What a DELREF or ACKED trim removed, in the form its log record replays: runs of
/// deleted entries (one for DELREF; ACKED starts a new one after each entry it kept) and
/// the nodes freed. See [`TrimWalk`].
pub type RefTrim = TrimWalk;

/// XDELEX's and XACKDEL's per-ID result (`XDelexRes`, `XAckDelRes` in Redis).
pub mod delete_result {
    /// Not in the stream (XDELEX) or not pending in the group (XACKDEL).
    pub const NOT_FOUND: i64 = -1;
    /// Deleted (XACKDEL: acknowledged and deleted, or already gone from the stream).
    pub const DELETED: i64 = 1;
    /// Kept, because a consumer group still references it (ACKED).
    pub const REFERENCED: i64 = 2;
}

/// One stream value in the keyspace.
#[derive(Debug, Default, Clone)]
pub struct Stream {
    index: StreamIndex,
    /// The last ID ever generated, even if that entry was since deleted.
    last_id: StreamId,
    /// The first live entry's ID, 0-0 when empty (Redis's `first_id`).
    first_id: StreamId,
    /// The largest ID ever removed by XDEL (trimming does not count).
    max_deleted_id: StreamId,
    /// Entries ever added; never decreases (XSETID may raise it).
    entries_added: u64,
    /// Consumer groups by name, with the index of the entries they reference.
    pub groups: Groups,
    /// Idempotent production: producers' recent IIDs, limits and counters (Redis 8.6).
    idmp: IdmpState,
    /// The stream's own broker policy (`RILL.POLICY`), if it has one.
    policy: Option<Box<StreamPolicy>>,
}

impl Stream {
    /// An empty stream, as XADD (or XGROUP CREATE MKSTREAM) creates it.
    pub fn new() -> Self {
        Stream::default()
    }

    /// Live entries (XLEN).
    pub fn len(&self) -> u64 {
        self.index.len()
    }

    /// Whether the stream has no live entry (it may still carry IDs and groups).
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The last generated ID (`$` in XREAD, `last-generated-id` in XINFO).
    pub fn last_id(&self) -> StreamId {
        self.last_id
    }

    /// The first live entry's ID, if any.
    pub fn first_id(&self) -> Option<StreamId> {
        (!self.is_empty()).then_some(self.first_id)
    }

    /// XINFO's `recorded-first-entry-id`: the first live ID, 0-0 when empty.
    pub fn recorded_first_id(&self) -> StreamId {
        self.first_id
    }

    /// Entries ever added.
    pub fn entries_added(&self) -> u64 {
        self.entries_added
    }

    /// The largest ID removed by XDEL, 0-0 if none.
    pub fn max_deleted_id(&self) -> StreamId {
        self.max_deleted_id
    }

    /// The counters the consumer-group lag rules need, as one value.
    pub fn counters(&self) -> StreamCounters {
        StreamCounters {
            length: self.len(),
            entries_added: self.entries_added,
            first_id: self.first_id,
            last_id: self.last_id,
            max_deleted_id: self.max_deleted_id,
        }
    }

    /// Whether a live entry has this ID (no payload read).
    pub fn contains(&self, id: StreamId) -> bool {
        self.index.get(id).is_some()
    }

    /// The live entry with this ID, payload read through `store`.
    pub fn get(&self, id: StreamId, store: &PayloadStore) -> Result<Option<Entry>, PayloadError> {
        self.index
            .get(id)
            .map(|e| Entry::load(e, store))
            .transpose()
    }

    /// Live entries with `start <= id <= end` (both inclusive), ascending or, with `rev`,
    /// descending from `end`; at most `count`.
    pub fn range(
        &self,
        start: StreamId,
        end: StreamId,
        count: Option<usize>,
        rev: bool,
        store: &PayloadStore,
    ) -> Result<Vec<Entry>, PayloadError> {
        Ok(self
            .range_within(start, end, count, rev, store, u64::MAX)?
            .entries)
    }

    /// As [`Stream::range`], loading payloads only while the fields read so far stay within
    /// `room` bytes: the entries past it come back as IDs alone, unread, so one reply's
    /// memory is bounded by what a client may be sent (its output buffer limit).
    pub fn range_within(
        &self,
        start: StreamId,
        end: StreamId,
        count: Option<usize>,
        rev: bool,
        store: &PayloadStore,
        room: u64,
    ) -> Result<Ranged, PayloadError> {
        let mut out = Ranged::default();
        let mut used: u64 = 0;
        for e in self.index.range(start, end, count, rev) {
            if used > room {
                out.beyond.push(e.id);
                continue;
            }
            let entry = Entry::load(e, store)?;
            used = entry
                .fields
                .iter()
                .fold(used, |n, f| n.saturating_add(f.len() as u64));
            out.entries.push(entry);
        }
        Ok(out)
    }

    /// The first live entry (XINFO `first-entry`).
    pub fn first_entry(&self, store: &PayloadStore) -> Result<Option<Entry>, PayloadError> {
        self.index
            .first()
            .map(|e| Entry::load(e, store))
            .transpose()
    }

    /// The last live entry (XINFO `last-entry`, XREAD `+`).
    pub fn last_entry(&self, store: &PayloadStore) -> Result<Option<Entry>, PayloadError> {
        self.index.last().map(|e| Entry::load(e, store)).transpose()
    }

    /// ID of the last live entry (no payload read).
    pub fn last_live_id(&self) -> Option<StreamId> {
        self.index.last().map(|e| e.id)
    }

    /// The entry index (checkpoints, compaction).
    pub fn index(&self) -> &StreamIndex {
        &self.index
    }

    /// The entry index, mutably (checkpoint loading, locating payloads).
    pub fn index_mut(&mut self) -> &mut StreamIndex {
        &mut self.index
    }

    /// XINFO's `radix-tree-keys`: the number of storage nodes.
    pub fn radix_tree_keys(&self) -> u64 {
        self.index.node_count()
    }

    /// XINFO's `radix-tree-nodes`.
    ///
    /// Redis counts the nodes of its radix tree, which depends on how the node keys'
    /// bytes share prefixes; `engine::rax` reproduces that structure exactly.
    pub fn radix_tree_nodes(&self) -> u64 {
        self.index.radix_tree_nodes()
    }

    /// Whether XADD can ever succeed again: false once `MAX-MAX` was used.
    pub fn is_exhausted(&self) -> bool {
        self.last_id == StreamId::MAX
    }

    /// Appends an entry (XADD) and returns its ID.
    ///
    /// ID generation follows Redis: `*` takes `max(now_ms, last.ms)` and the next
    /// sequence; `ms-*` takes sequence 0 for a new ms or `last.seq + 1`; an explicit ID
    /// must be above `last_id`. The caller rejects an explicit `0-0` before creating the key.
    pub fn add(
        &mut self,
        spec: AddIdSpec,
        fields: &[Bytes],
        now_ms: u64,
        limits: NodeLimits,
        store: &PayloadStore,
    ) -> Result<StreamId, StreamError> {
        let id = self.next_id(spec, now_ms)?;
        let payload = store.insert(fields);
        self.index.append(id, fields, payload, limits);
        self.last_id = id;
        self.entries_added += 1;
        if self.index.len() == 1 {
            self.first_id = id;
        }
        Ok(id)
    }

    /// The ID an XADD with `spec` at `now_ms` would get, or why it would be refused.
    pub fn next_id(&self, spec: AddIdSpec, now_ms: u64) -> Result<StreamId, StreamError> {
        if self.is_exhausted() {
            return Err(StreamError::IdExhausted);
        }
        let id = match spec {
            AddIdSpec::Auto => {
                if now_ms > self.last_id.ms {
                    StreamId::new(now_ms, 0)
                } else {
                    self.last_id.incr().ok_or(StreamError::IdExhausted)?
                }
            }
            AddIdSpec::AutoSeq(ms) if ms == self.last_id.ms => {
                if self.last_id.seq == u64::MAX {
                    return Err(StreamError::AddIdTooSmall);
                }
                StreamId::new(ms, self.last_id.seq + 1)
            }
            AddIdSpec::AutoSeq(ms) => StreamId::new(ms, 0),
            AddIdSpec::Explicit(id) => id,
        };
        if id <= self.last_id {
            return Err(StreamError::AddIdTooSmall);
        }
        Ok(id)
    }

    /// Deletes entries by ID (XDEL); returns how many existed.
    ///
    /// Each deleted ID raises `max_deleted_id`; the recorded first ID moves if the first
    /// entry went.
    pub fn delete(&mut self, ids: &[StreamId]) -> u64 {
        let mut deleted = 0;
        let mut first_went = false;
        for &id in ids {
            if self.index.delete(id) {
                deleted += 1;
                if id == self.first_id {
                    first_went = true;
                }
                if id > self.max_deleted_id {
                    self.max_deleted_id = id;
                }
            }
        }
        if deleted > 0 && (first_went || self.index.is_empty()) {
            self.refresh_first_id();
        }
        deleted
    }

    /// Trims from the head (XTRIM, XADD's trim clause) leaving the groups' references
    /// alone (KEEPREF; `spec.refs` is not looked at); returns entries removed.
    ///
    /// Trimming never touches `max_deleted_id`: Redis treats it as history, not fragmentation.
    pub fn trim(&mut self, spec: TrimSpec) -> u64 {
        let removed = self.index.trim(spec.rule, spec.approx, spec.limit);
        if removed > 0 {
            self.refresh_first_id();
        }
        removed
    }

    /// A DELREF or ACKED trim (`streamTrim` with a delete strategy other than KEEPREF):
    /// every node the rule reaches is walked entry by entry, never dropped whole. DELREF
    /// removes each trimmed entry from every PEL; ACKED skips entries a group references
    /// (see [`Groups::is_referenced`]), so it can leave holes and goes on past them.
    ///
    /// `~` only bounds the work: `spec.limit` (0 = none) stops the trim before a node
    /// whose live entries would take it past the limit. A node the rule covers entirely
    /// is freed once all its entries went, and the walk goes on to the next one; it stops
    /// after the first node the rule covers only in part (Redis fix #14623).
    ///
    /// Returns what went, which is also what the log records: which entries ACKED keeps
    /// depends on where node boundaries fall, and those depend on the
    /// `stream-node-max-*` settings of the time, so replay is told the outcome
    /// ([`Stream::replay_ref_trim`]) rather than the rule.
    pub fn trim_with_refs(&mut self, spec: TrimSpec) -> RefTrim {
        let Stream { index, groups, .. } = self;
        groups.refresh();
        let walk = match spec.refs {
            RefPolicy::Acked => {
                index.trim_each(spec.rule, spec.limit, |id| !groups.is_referenced(id))
            }
            // DELREF (KEEPREF trims are `Stream::trim`'s).
            RefPolicy::DelRef | RefPolicy::KeepRef => {
                index.trim_each(spec.rule, spec.limit, |id| {
                    groups.drop_everywhere(id);
                    true
                })
            }
        };
        if walk.removed > 0 {
            self.refresh_first_id();
        }
        walk
    }

    /// Replays a logged DELREF (`delref`) or ACKED trim: every live entry inside one of
    /// `trim.runs` is deleted as a trim deletes (`max_deleted_id` untouched; with `delref`
    /// it leaves every PEL too), then the empty nodes keyed up to `trim.freed_through`.
    /// Under the node layout of the original run this rebuilds its nodes exactly; under
    /// another one (the node settings changed before the restart) the same entries go.
    /// Returns how many entries were deleted.
    ///
    /// Nothing changes unless the runs ascend without overlapping and start and end on
    /// live entries.
    pub fn replay_ref_trim(&mut self, trim: &RefTrim, delref: bool) -> Result<u64, StreamError> {
        let ordered =
            trim.runs.iter().all(|(a, b)| a <= b) && trim.runs.windows(2).all(|w| w[0].1 < w[1].0);
        let ends_live = trim
            .runs
            .iter()
            .all(|(a, b)| self.contains(*a) && self.contains(*b));
        if !ordered || !ends_live {
            return Err(StreamError::InvalidId);
        }
        let mut removed = 0;
        for &(first, last) in &trim.runs {
            for e in self.index.range(first, last, None, false) {
                if delref {
                    self.groups.drop_everywhere(e.id);
                }
                self.index.tombstone(e.id);
                removed += 1;
            }
        }
        if let Some(key) = trim.freed_through {
            self.index.free_empty_through(key);
        }
        if removed > 0 {
            self.refresh_first_id();
        }
        Ok(removed)
    }

    /// XDELEX: deletes each ID under `policy` and returns its result code (see
    /// [`delete_result`]), and whether anything changed (an entry deleted, or with
    /// DELREF a PEL entry dropped, even for an ID not in the stream).
    ///
    /// Deleting is XDEL's: `max_deleted_id` and the recorded first ID follow.
    pub fn delete_with_refs(&mut self, ids: &[StreamId], policy: RefPolicy) -> (Vec<i64>, bool) {
        self.groups.refresh();
        let mut changed = false;
        let codes = ids
            .iter()
            .map(|&id| {
                match policy {
                    RefPolicy::Acked if self.groups.is_referenced(id) => {
                        return delete_result::REFERENCED;
                    }
                    RefPolicy::DelRef => changed |= self.groups.drop_everywhere(id),
                    _ => {}
                }
                if self.delete(&[id]) == 1 {
                    changed = true;
                    delete_result::DELETED
                } else {
                    delete_result::NOT_FOUND
                }
            })
            .collect();
        (codes, changed)
    }

    /// XACKDEL: for each ID pending in `group`, acknowledges it, then deletes the entry
    /// under `policy` (see [`delete_result`]); `None` when the group does not exist.
    /// Also returns whether anything was acknowledged (then something changed).
    pub fn ack_delete(
        &mut self,
        group: &[u8],
        ids: &[StreamId],
        policy: RefPolicy,
    ) -> Option<(Vec<i64>, bool)> {
        self.groups.get_mut(group)?;
        self.groups.refresh();
        let mut acked_any = false;
        let mut codes = Vec::with_capacity(ids.len());
        for &id in ids {
            let acked = self.groups.get_mut(group).is_some_and(|mut g| g.ack(id));
            if !acked {
                codes.push(delete_result::NOT_FOUND);
                continue;
            }
            acked_any = true;
            match policy {
                RefPolicy::Acked if self.groups.is_referenced(id) => {
                    codes.push(delete_result::REFERENCED);
                    continue;
                }
                RefPolicy::DelRef => {
                    self.groups.drop_everywhere(id);
                }
                _ => {}
            }
            // Deleted, or already gone from the stream: Redis answers 1 either way.
            self.delete(&[id]);
            codes.push(delete_result::DELETED);
        }
        Some((codes, acked_any))
    }

    /// The group `name` to change, with the entry index to consult meanwhile (XAUTOCLAIM
    /// asks whether entries still exist while it changes the group).
    pub fn group_and_index_mut(&mut self, name: &[u8]) -> Option<(GroupMut<'_>, &StreamIndex)> {
        let Stream { index, groups, .. } = self;
        groups.get_mut(name).map(|g| (g, &*index))
    }

    /// XSETID: moves `last_id` (and optionally `entries_added`/`max_deleted_id`).
    ///
    /// Checks run in Redis's order; `max_deleted` has already been checked against `id`
    /// by the parser, since that error precedes the key lookup.
    pub fn set_id(
        &mut self,
        id: StreamId,
        entries_added: Option<u64>,
        max_deleted: Option<StreamId>,
    ) -> Result<(), StreamError> {
        if id < self.max_deleted_id {
            return Err(StreamError::SetIdBelowMaxDeleted);
        }
        if let Some(last) = self.index.last() {
            if id < last.id {
                return Err(StreamError::SetIdTooSmall);
            }
            if entries_added.is_some_and(|n| n < self.len()) {
                return Err(StreamError::EntriesAddedTooSmall);
            }
        }
        self.last_id = id;
        if let Some(n) = entries_added {
            self.entries_added = n;
        }
        if let Some(m) = max_deleted.filter(|m| *m != StreamId::MIN) {
            self.max_deleted_id = m;
        }
        Ok(())
    }

    /// An exact trim rule that, applied to this stream as it was before an approximate
    /// (`~`) trim, removes exactly what that trim removed; the log records this rule
    /// instead of `~`.
    ///
    /// `~` removes whole nodes only, and how many depends on the node layout (and so on
    /// `stream-node-max-*` at the time). `MINID = <first node key>` removes the same
    /// entries under any layout, and the same nodes (empty ones included) under the
    /// same layout. With no node left, every ID up to `last_id` went: `MINID` just
    /// above it, or `MAXLEN = 0` when `last_id` is the maximum ID.
    pub fn exact_head_rule(&self) -> TrimRule {
        match self.index.first_node_key() {
            Some(key) => TrimRule::MinId(key),
            None => match self.last_id.incr() {
                Some(above) => TrimRule::MinId(above),
                None => TrimRule::MaxLen(0),
            },
        }
    }

    /// Appends the stream's counters and groups in checkpoint form (the entries are
    /// written separately, by [`StreamIndex::encode_nodes`]).
    pub fn encode_meta(&self, out: &mut Vec<u8>) {
        use crate::engine::codec::Put;
        out.put_id(self.last_id);
        out.put_id(self.first_id);
        out.put_id(self.max_deleted_id);
        out.put_u64v(self.entries_added);
        out.put_u32v(self.groups.len() as u32);
        for (name, g) in &self.groups {
            out.put_bytes(name);
            g.encode(out);
        }
    }

    /// Restores what [`Stream::encode_meta`] wrote; `None` when malformed.
    pub fn decode_meta(&mut self, r: &mut crate::engine::codec::Reader) -> Option<()> {
        self.last_id = r.id()?;
        self.first_id = r.id()?;
        self.max_deleted_id = r.id()?;
        self.entries_added = r.u64()?;
        let groups = r.count(32)?;
        for _ in 0..groups {
            let name = r.bytes()?;
            let g = ConsumerGroup::decode(r)?;
            self.groups.insert(name, g);
        }
        Some(())
    }

    /// Everything about the stream but its entries, in one blob: the counters and groups
    /// with every consumer and pending entry ([`Stream::encode_meta`]), the IDMP state and
    /// each group's NACK zone, in the checkpoint's encodings, then the stream's own broker
    /// policy if it has one —
    /// `meta | u32 n | n × bytes idmp-chunk | u32 m | m × (bytes group | bytes zone) | [bytes policy]`.
    /// What a stream moved to another node carries beside its entries (`Op::StreamState`).
    pub fn encode_state(&self) -> Vec<u8> {
        use crate::engine::codec::Put;
        let mut out = Vec::new();
        self.encode_meta(&mut out);
        let chunks = self.idmp.encode_chunks(&[], usize::MAX);
        out.put_u32v(chunks.len() as u32);
        for c in &chunks {
            out.put_bytes(c);
        }
        let nacked: Vec<_> = self
            .groups
            .iter()
            .filter(|(_, g)| g.nacked_count() > 0)
            .collect();
        out.put_u32v(nacked.len() as u32);
        for (name, g) in nacked {
            out.put_bytes(name);
            let mut zone = Vec::new();
            g.encode_nack_zone(&mut zone);
            out.put_bytes(&zone);
        }
        if let Some(p) = self.policy() {
            let mut policy = Vec::new();
            p.encode(&mut policy);
            out.put_bytes(&policy);
        }
        out
    }

    /// Restores what [`Stream::encode_state`] wrote into a stream that has its entries and
    /// no groups yet; `None` when malformed or when the stream already has groups.
    pub fn restore_state(&mut self, state: Bytes) -> Option<()> {
        use crate::engine::codec::Reader;
        if !self.groups.is_empty() {
            return None;
        }
        let mut r = Reader::new(state);
        let live = (self.len(), self.last_live_id());
        self.decode_meta(&mut r)?;
        // The counters must agree with the entries already rebuilt (the state may come
        // from any client of RILL.RESTORE): new IDs keep growing past every entry.
        let consistent = live.1.is_none_or(|last| last <= self.last_id)
            && self.max_deleted_id <= self.last_id
            && self.entries_added >= live.0
            && self.index.first().is_none_or(|e| e.id == self.first_id);
        consistent.then_some(())?;
        for _ in 0..r.count(4)? {
            let mut chunk = Reader::new(r.bytes()?);
            self.idmp.decode_chunk(&mut chunk)?;
            chunk.is_empty().then_some(())?;
        }
        for _ in 0..r.count(8)? {
            let group = r.bytes()?;
            let mut zone = Reader::new(r.bytes()?);
            self.groups
                .get_mut(&group[..])
                .and_then(|mut g| g.decode_nack_zone(&mut zone))?;
            zone.is_empty().then_some(())?;
        }
        // Optional, so a state from a node without broker policies restores unchanged.
        if !r.is_empty() {
            self.set_policy(StreamPolicy::from_bytes(r.bytes()?)?);
        }
        r.is_empty().then_some(())
    }

    /// The stream's own broker policy (`RILL.POLICY`); `None` follows the defaults.
    pub fn policy(&self) -> Option<&StreamPolicy> {
        self.policy.as_deref()
    }

    /// Replaces the stream's own policy (an empty one removes it).
    pub fn set_policy(&mut self, policy: StreamPolicy) {
        self.policy = (!policy.is_empty()).then(|| Box::new(policy));
    }

    /// The idempotent-production state (XADD IDMP, XCFGSET, XINFO).
    pub fn idmp(&self) -> &IdmpState {
        &self.idmp
    }

    /// The idempotent-production state, mutably (ops, checkpoint loading).
    pub fn idmp_mut(&mut self) -> &mut IdmpState {
        &mut self.idmp
    }

    fn refresh_first_id(&mut self) {
        self.first_id = self.index.first().map(|e| e.id).unwrap_or_default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::group::ConsumerGroup;

    fn fv() -> Vec<Bytes> {
        vec![Bytes::from_static(b"f"), Bytes::from_static(b"v")]
    }

    fn add(s: &mut Stream, spec: AddIdSpec, now: u64) -> Result<StreamId, StreamError> {
        s.add(
            spec,
            &fv(),
            now,
            NodeLimits::default(),
            &PayloadStore::new(1 << 20),
        )
    }

    #[test]
    fn auto_ids_never_go_back() {
        let mut s = Stream::new();
        assert_eq!(add(&mut s, AddIdSpec::Auto, 100), Ok(StreamId::new(100, 0)));
        assert_eq!(add(&mut s, AddIdSpec::Auto, 100), Ok(StreamId::new(100, 1)));
        // The clock went backwards: stay on the last ms.
        assert_eq!(add(&mut s, AddIdSpec::Auto, 50), Ok(StreamId::new(100, 2)));
        assert_eq!(add(&mut s, AddIdSpec::Auto, 101), Ok(StreamId::new(101, 0)));
    }

    #[test]
    fn partial_and_explicit_ids() {
        let mut s = Stream::new();
        assert_eq!(
            add(&mut s, AddIdSpec::AutoSeq(0), 0),
            Ok(StreamId::new(0, 1))
        );
        assert_eq!(
            add(&mut s, AddIdSpec::AutoSeq(5), 0),
            Ok(StreamId::new(5, 0))
        );
        assert_eq!(
            add(&mut s, AddIdSpec::AutoSeq(5), 0),
            Ok(StreamId::new(5, 1))
        );
        assert_eq!(
            add(&mut s, AddIdSpec::AutoSeq(4), 0),
            Err(StreamError::AddIdTooSmall)
        );
        assert_eq!(
            add(&mut s, AddIdSpec::Explicit(StreamId::new(5, 1)), 0),
            Err(StreamError::AddIdTooSmall)
        );
        let max_seq = StreamId::new(7, u64::MAX);
        assert_eq!(add(&mut s, AddIdSpec::Explicit(max_seq), 0), Ok(max_seq));
        assert_eq!(
            add(&mut s, AddIdSpec::AutoSeq(7), 0),
            Err(StreamError::AddIdTooSmall)
        );
        assert_eq!(add(&mut s, AddIdSpec::Auto, 0), Ok(StreamId::new(8, 0)));
        assert_eq!(
            add(&mut s, AddIdSpec::Explicit(StreamId::MAX), 0),
            Ok(StreamId::MAX)
        );
        assert_eq!(
            add(&mut s, AddIdSpec::Auto, 0),
            Err(StreamError::IdExhausted)
        );
        assert_eq!(s.entries_added(), 6);
    }

    #[test]
    fn delete_tracks_first_and_max_deleted() {
        let mut s = Stream::new();
        for ms in 1..=3 {
            add(&mut s, AddIdSpec::Explicit(StreamId::new(ms, 0)), 0).ok();
        }
        assert_eq!(s.delete(&[StreamId::new(2, 0), StreamId::new(9, 0)]), 1);
        assert_eq!(s.max_deleted_id(), StreamId::new(2, 0));
        assert_eq!(s.first_id(), Some(StreamId::new(1, 0)));
        assert_eq!(s.delete(&[StreamId::new(1, 0)]), 1);
        assert_eq!(s.first_id(), Some(StreamId::new(3, 0)));
        assert_eq!(s.delete(&[StreamId::new(3, 0)]), 1);
        assert_eq!(s.first_id(), None);
        assert_eq!(s.recorded_first_id(), StreamId::MIN);
        assert_eq!(s.last_id(), StreamId::new(3, 0));
        // Deleted IDs still block reuse.
        assert_eq!(
            add(&mut s, AddIdSpec::Explicit(StreamId::new(3, 0)), 0),
            Err(StreamError::AddIdTooSmall)
        );
    }

    #[test]
    fn trim_keeps_max_deleted_and_moves_first() {
        let mut s = Stream::new();
        for ms in 1..=10 {
            add(&mut s, AddIdSpec::Explicit(StreamId::new(ms, 0)), 0).ok();
        }
        let spec = TrimSpec {
            rule: TrimRule::MaxLen(4),
            approx: false,
            limit: 0,
            refs: RefPolicy::KeepRef,
        };
        assert_eq!(s.trim(spec), 6);
        assert_eq!(s.first_id(), Some(StreamId::new(7, 0)));
        assert_eq!(s.max_deleted_id(), StreamId::MIN);
        assert_eq!(s.len(), 4);
    }

    /// The rule logged for a `~` trim, replayed on the untrimmed stream, leaves the same
    /// entries, nodes and counters, including a node emptied earlier by an exact MINID
    /// trim (which only a whole-node trim removes).
    #[test]
    fn exact_head_rule_replays_approx_trims() {
        let build = || {
            let mut s = Stream::new();
            for ms in 1..=1000 {
                add(&mut s, AddIdSpec::Explicit(StreamId::new(ms, 0)), 0).ok();
            }
            // Node 1..=100: 100 is a tombstone, then an exact MINID empties the node.
            s.delete(&[StreamId::new(100, 0)]);
            s.trim(TrimSpec {
                rule: TrimRule::MinId(StreamId::new(100, 0)),
                approx: false,
                limit: 0,
                refs: RefPolicy::KeepRef,
            });
            s
        };
        let shape = |s: &Stream| {
            (
                s.len(),
                s.radix_tree_keys(),
                s.first_id(),
                s.entries_added(),
                s.max_deleted_id(),
            )
        };
        let cases = [
            (TrimRule::MaxLen(555), 10_000),
            (TrimRule::MaxLen(0), 10_000),
            (TrimRule::MaxLen(0), 250),
            (TrimRule::MinId(StreamId::new(350, 0)), 10_000),
            (TrimRule::MinId(StreamId::new(5000, 0)), 10_000),
        ];
        for (rule, limit) in cases {
            let mut original = build();
            assert_eq!(original.radix_tree_keys(), 10);
            original.trim(TrimSpec {
                rule,
                approx: true,
                limit,
                refs: RefPolicy::KeepRef,
            });
            let mut replayed = build();
            replayed.trim(TrimSpec {
                rule: original.exact_head_rule(),
                approx: false,
                limit: 0,
                refs: RefPolicy::KeepRef,
            });
            assert_eq!(shape(&original), shape(&replayed), "{rule:?} limit {limit}");
        }
        // 900 live: MAXLEN ~ 555 frees the empty node and three full ones.
        let mut s = build();
        assert_eq!(
            s.trim(TrimSpec {
                rule: TrimRule::MaxLen(555),
                approx: true,
                limit: 10_000,
                refs: RefPolicy::KeepRef,
            }),
            300
        );
        assert_eq!(s.exact_head_rule(), TrimRule::MinId(StreamId::new(401, 0)));
    }

    /// A stream of `n` entries in nodes of `per_node`, one group that read them all and
    /// acknowledged those `acked` says, and a second group that read the first `h_read`.
    fn referenced_stream(
        n: u64,
        per_node: u64,
        acked: impl Fn(u64) -> bool,
        h_read: u64,
    ) -> Stream {
        let limits = NodeLimits {
            max_entries: per_node,
            max_bytes: 0,
        };
        let store = PayloadStore::new(1 << 20);
        let mut s = Stream::new();
        for ms in 1..=n {
            s.add(
                AddIdSpec::Explicit(StreamId::new(ms, 0)),
                &fv(),
                0,
                limits,
                &store,
            )
            .ok();
        }
        let c = Bytes::from_static(b"c");
        for (name, read) in [("g", n), ("h", h_read)] {
            s.groups
                .insert(Bytes::from(name), ConsumerGroup::new(StreamId::MIN, None));
            let counters = s.counters();
            let mut g = s.groups.get_mut(name.as_bytes()).expect("group");
            g.touch_consumer(&c, 0);
            for ms in 1..=read {
                g.advance(StreamId::new(ms, 0), &counters);
                g.deliver(StreamId::new(ms, 0), &c, 0);
                if name == "h" || acked(ms) {
                    g.ack(StreamId::new(ms, 0));
                }
            }
        }
        s
    }

    fn live(s: &Stream) -> Vec<u64> {
        s.index()
            .range(StreamId::MIN, StreamId::MAX, None, false)
            .iter()
            .map(|e| e.id.ms)
            .collect()
    }

    /// What an ACKED or DELREF trim logs, replayed on the stream as it was, rebuilds the
    /// same entries, nodes, counters and PELs; replayed under other node boundaries, the
    /// same entries and PELs, where re-running the rule would remove others.
    #[test]
    fn ref_trims_replay_from_what_they_removed() {
        let acked = |ms: u64| !ms.is_multiple_of(3);
        let shape = |s: &Stream| {
            let pel: Vec<Vec<StreamId>> = s
                .groups
                .values()
                .map(|g| g.pending_entries().map(|p| p.id).collect())
                .collect();
            (live(s), s.radix_tree_keys(), s.first_id(), pel)
        };
        for refs in [RefPolicy::Acked, RefPolicy::DelRef] {
            for (rule, approx, limit) in [
                (TrimRule::MaxLen(5), false, 0),
                (TrimRule::MaxLen(2), true, 7),
                (TrimRule::MinId(StreamId::new(14, 0)), false, 0),
                (TrimRule::MinId(StreamId::new(30, 0)), true, 4),
            ] {
                let spec = TrimSpec {
                    rule,
                    approx,
                    limit,
                    refs,
                };
                let mut live_run = referenced_stream(20, 4, acked, 12);
                let trim = live_run.trim_with_refs(spec);
                live_run.groups.check();
                let mut replayed = referenced_stream(20, 4, acked, 12);
                let delref = refs == RefPolicy::DelRef;
                assert_eq!(replayed.replay_ref_trim(&trim, delref), Ok(trim.removed));
                replayed.groups.check();
                assert_eq!(shape(&replayed), shape(&live_run), "{spec:?}");
                let mut other = referenced_stream(20, 7, acked, 12);
                assert!(other.replay_ref_trim(&trim, delref).is_ok());
                assert_eq!(live(&other), live(&live_run), "{spec:?} other nodes");
            }
        }
        // ACKED with MAXLEN stops at a partly covered node: where node boundaries fall
        // decides what goes, which is why the log records the outcome.
        let spec = TrimSpec {
            rule: TrimRule::MaxLen(3),
            approx: false,
            limit: 0,
            refs: RefPolicy::Acked,
        };
        let pending_12 = |ms: u64| ms > 2;
        let mut three = referenced_stream(5, 3, pending_12, 5);
        let mut five = referenced_stream(5, 5, pending_12, 5);
        let run = |a: u64, b: u64| vec![(StreamId::new(a, 0), StreamId::new(b, 0))];
        assert_eq!(three.trim_with_refs(spec).runs, run(3, 3));
        assert_eq!(five.trim_with_refs(spec).runs, run(3, 4));
        // ACKED holes split runs; DELREF makes one.
        let spec = TrimSpec {
            rule: TrimRule::MinId(StreamId::new(9, 0)),
            approx: false,
            limit: 0,
            refs: RefPolicy::Acked,
        };
        let mut holes = referenced_stream(10, 3, |ms| ms != 3 && ms != 6, 10);
        let trim = holes.trim_with_refs(spec);
        assert_eq!(trim.removed, 6);
        assert_eq!(trim.runs, [run(1, 2), run(4, 5), run(7, 8)].concat());
        let delref = TrimSpec {
            refs: RefPolicy::DelRef,
            ..spec
        };
        let mut all = referenced_stream(10, 3, |ms| ms != 3 && ms != 6, 10);
        assert_eq!(all.trim_with_refs(delref).runs, run(1, 8));
        // A replay refuses what it cannot apply whole: an ID not live, or out of order.
        let mut s = referenced_stream(5, 3, pending_12, 5);
        let bad = RefTrim {
            runs: vec![(StreamId::new(4, 0), StreamId::new(3, 0))],
            ..RefTrim::default()
        };
        assert!(s.replay_ref_trim(&bad, false).is_err());
        let overlapping = RefTrim {
            runs: vec![
                (StreamId::new(1, 0), StreamId::new(3, 0)),
                (StreamId::new(3, 0), StreamId::new(4, 0)),
            ],
            ..RefTrim::default()
        };
        assert!(s.replay_ref_trim(&overlapping, false).is_err());
        let gone = RefTrim {
            runs: vec![(StreamId::new(3, 0), StreamId::new(9, 0))],
            ..RefTrim::default()
        };
        assert!(s.replay_ref_trim(&gone, false).is_err());
        assert_eq!(live(&s), vec![1, 2, 3, 4, 5]);
    }

    /// Redis keeps a node a MINID trim emptied when its last slot (a tombstone) is at or
    /// above MINID; the next trim that covers it frees it. Replays keep both.
    #[test]
    fn ref_trims_keep_and_later_free_an_emptied_node() {
        let mut s = referenced_stream(6, 3, |_| true, 6);
        s.delete(&[StreamId::new(3, 0)]);
        let before = s.clone();
        let first = TrimSpec {
            rule: TrimRule::MinId(StreamId::new(3, 0)),
            approx: false,
            limit: 0,
            refs: RefPolicy::Acked,
        };
        let trim = s.trim_with_refs(first);
        assert_eq!(trim.removed, 2);
        assert_eq!(trim.freed_through, None);
        assert_eq!((s.radix_tree_keys(), live(&s)), (2, vec![4, 5, 6]));
        let mut replayed = before.clone();
        assert_eq!(replayed.replay_ref_trim(&trim, false), Ok(2));
        assert_eq!(replayed.radix_tree_keys(), 2);
        let before = s.clone();
        let second = TrimSpec {
            rule: TrimRule::MinId(StreamId::new(5, 0)),
            refs: RefPolicy::DelRef,
            ..first
        };
        let trim = s.trim_with_refs(second);
        assert_eq!(trim.freed_through, Some(StreamId::new(1, 0)));
        assert_eq!((s.radix_tree_keys(), live(&s)), (1, vec![5, 6]));
        let mut replayed = before;
        assert_eq!(replayed.replay_ref_trim(&trim, true), Ok(1));
        assert_eq!(
            (replayed.radix_tree_keys(), live(&replayed)),
            (1, vec![5, 6])
        );
    }

    #[test]
    fn deletes_by_id_answer_per_id() {
        let mut s = referenced_stream(6, 100, |ms| ms != 2, 3);
        // g: 2 pending; h: read 1..3 and acked them, 4.. unread.
        let ids = |v: &[u64]| v.iter().map(|&ms| StreamId::new(ms, 0)).collect::<Vec<_>>();
        let (codes, changed) = s.delete_with_refs(&ids(&[1, 2, 4, 9]), RefPolicy::Acked);
        assert_eq!((codes, changed), (vec![1, 2, 2, 2], true));
        assert_eq!(s.max_deleted_id(), StreamId::new(1, 0));
        let (codes, changed) = s.delete_with_refs(&ids(&[9]), RefPolicy::DelRef);
        assert_eq!((codes, changed), (vec![-1], false));
        let acked = s.ack_delete(b"g", &ids(&[2, 2, 3]), RefPolicy::Acked);
        assert_eq!(acked, Some((vec![1, -1, -1], true)));
        assert_eq!(s.ack_delete(b"x", &ids(&[2]), RefPolicy::Acked), None);
        s.groups.check();
        assert_eq!(live(&s), vec![3, 4, 5, 6]);
    }

    #[test]
    fn set_id_rules() {
        let mut s = Stream::new();
        for ms in 1..=3 {
            add(&mut s, AddIdSpec::Explicit(StreamId::new(ms, 0)), 0).ok();
        }
        assert_eq!(
            s.set_id(StreamId::new(2, 0), None, None),
            Err(StreamError::SetIdTooSmall)
        );
        assert_eq!(
            s.set_id(StreamId::new(5, 0), Some(2), None),
            Err(StreamError::EntriesAddedTooSmall)
        );
        assert_eq!(
            s.set_id(StreamId::new(5, 0), Some(10), Some(StreamId::new(4, 0))),
            Ok(())
        );
        assert_eq!(s.last_id(), StreamId::new(5, 0));
        assert_eq!(s.entries_added(), 10);
        assert_eq!(
            s.set_id(StreamId::new(3, 5), None, None),
            Err(StreamError::SetIdBelowMaxDeleted)
        );
    }
}
