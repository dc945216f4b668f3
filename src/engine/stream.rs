//! A stream: its entries (through the [`StreamIndex`]), the counters Redis keeps beside
//! them, and its consumer groups.
//!
//! The counters matter to clients: `last_id` outlives deleted entries (XADD must still
//! go above it), `entries_added` and `max_deleted_id` drive consumer-group lag, and the
//! recorded first ID is shown by XINFO. They change exactly where Redis changes them.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::engine::error::StreamError;
use crate::engine::group::{ConsumerGroup, StreamCounters};
use crate::engine::id::{AddIdSpec, StreamId};
use crate::engine::idmp::IdmpState;
use crate::engine::index::{IndexedEntry, NodeLimits, StreamIndex, TrimRule};
use crate::engine::payload::{PayloadError, PayloadStore};

/// An entry as commands see it: ID and flat `field, value, …` list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The entry's ID.
    pub id: StreamId,
    /// Field/value pairs, flattened in insertion order.
    pub fields: Vec<Bytes>,
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

/// A trim request, parsed from `MAXLEN|MINID [=|~] threshold [LIMIT n]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrimSpec {
    /// What to remove.
    pub rule: TrimRule,
    /// `~`: remove whole nodes only.
    pub approx: bool,
    /// Maximum entries to remove (0 = unlimited); only meaningful with `approx`.
    pub limit: u64,
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
    /// Consumer groups by name.
    pub groups: BTreeMap<Bytes, ConsumerGroup>,
    /// Idempotent production: producers' recent IIDs, limits and counters (Redis 8.6).
    idmp: IdmpState,
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
        self.index
            .range(start, end, count, rev)
            .into_iter()
            .map(|e| Entry::load(e, store))
            .collect()
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

    /// Trims from the head (XTRIM, XADD's trim clause); returns entries removed.
    ///
    /// Trimming never touches `max_deleted_id`: Redis treats it as history, not fragmentation.
    pub fn trim(&mut self, spec: TrimSpec) -> u64 {
        let removed = self.index.trim(spec.rule, spec.approx, spec.limit);
        if removed > 0 {
            self.refresh_first_id();
        }
        removed
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
            });
            let mut replayed = build();
            replayed.trim(TrimSpec {
                rule: original.exact_head_rule(),
                approx: false,
                limit: 0,
            });
            assert_eq!(shape(&original), shape(&replayed), "{rule:?} limit {limit}");
        }
        // 900 live: MAXLEN ~ 555 frees the empty node and three full ones.
        let mut s = build();
        assert_eq!(
            s.trim(TrimSpec {
                rule: TrimRule::MaxLen(555),
                approx: true,
                limit: 10_000
            }),
            300
        );
        assert_eq!(s.exact_head_rule(), TrimRule::MinId(StreamId::new(401, 0)));
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
