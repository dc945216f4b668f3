//! The per-stream index: entries ordered by ID, grouped into nodes the way Redis groups
//! them into listpacks under a radix tree.
//!
//! Why nodes at all: `~` trimming in Redis removes whole listpacks only, and XINFO shows
//! `radix-tree-keys`. Clients and test-suites observe both (1000 entries, `MAXLEN ~ 555`
//! leaves 600), so a node here opens and fills under exactly Redis's rules
//! (`stream-node-max-entries`, `stream-node-max-bytes` measured in listpack bytes), and a
//! deleted entry stays in its node as a flagged tombstone until the node empties.
//!
//! Payloads are not here: each slot holds a [`PayloadHandle`] (log position, length,
//! checksum), so an entry costs 32 bytes of index whatever its size.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;

use crate::engine::id::StreamId;
use crate::engine::payload::PayloadHandle;

/// The size limits that decide when a new node starts; from `stream-node-max-*` config.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeLimits {
    /// `stream-node-max-entries` (default 100; 0 = unlimited). Counts tombstones too.
    pub max_entries: u64,
    /// `stream-node-max-bytes` (default 4096; 0 = Redis's 1 GiB listpack cap), in listpack bytes.
    pub max_bytes: u64,
}

impl Default for NodeLimits {
    fn default() -> Self {
        NodeLimits {
            max_entries: 100,
            max_bytes: 4096,
        }
    }
}

/// Redis's hard cap on one listpack (`STREAM_LISTPACK_MAX_SIZE`), used when max-bytes is 0 or larger.
const LISTPACK_MAX_SIZE: u64 = 1 << 30;

/// Flag in `Slot::len` marking a tombstone (payload lengths stay below 2^31:
/// a record is at most 1 GiB).
const DELETED: u32 = 1 << 31;

/// One slot of a node: an entry, or the tombstone it left behind. 32 bytes: the ID and
/// where its payload is, no payload bytes.
#[derive(Clone, Copy, Debug)]
struct Slot {
    id: StreamId,
    at: u64,
    /// Payload length, with [`DELETED`] set on tombstones.
    len: u32,
    crc: u32,
}

impl Slot {
    fn new(id: StreamId, h: PayloadHandle) -> Self {
        Slot {
            id,
            at: h.at,
            len: h.len & !DELETED,
            crc: h.crc,
        }
    }

    fn deleted(&self) -> bool {
        self.len & DELETED != 0
    }

    fn set_deleted(&mut self) {
        self.len |= DELETED;
    }

    fn handle(&self) -> PayloadHandle {
        PayloadHandle {
            at: self.at,
            len: self.len & !DELETED,
            crc: self.crc,
        }
    }
}

/// A group of consecutive entries, the analogue of one listpack.
#[derive(Clone, Debug)]
struct Node {
    /// Slots in ID order, tombstones included (Redis keeps them until the node is freed).
    slots: Vec<Slot>,
    /// Live (non-deleted) slots.
    live: u64,
    /// Field names of the node's first entry: Redis's "master entry", which decides
    /// whether later entries are stored compressed and so how many bytes they take.
    /// Shared between consecutive nodes with the same names (the usual case: every
    /// entry of a stream has the same fields), so a node costs no allocation for them.
    master_fields: Arc<[Bytes]>,
    /// Listpack bytes except the `count` and `deleted` header integers, which change size.
    body_bytes: u64,
}

impl Node {
    /// Bytes of the listpack Redis would hold for this node (`lpBytes`).
    fn listpack_bytes(&self) -> u64 {
        let deleted = self.slots.len() as u64 - self.live;
        self.body_bytes + lp_int_size(self.live as i64) + lp_int_size(deleted as i64)
    }

    fn position(&self, id: StreamId) -> Result<usize, usize> {
        self.slots.binary_search_by(|s| s.id.cmp(&id))
    }
}

/// An entry as the index hands it out: its ID and a handle to its payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexedEntry {
    /// The entry's ID.
    pub id: StreamId,
    /// Where its field/value pairs are.
    pub payload: PayloadHandle,
}

/// How a trim decides what goes: keep the newest N, or drop IDs below a threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrimRule {
    /// Keep at most this many entries (MAXLEN).
    MaxLen(u64),
    /// Remove entries with IDs below this one (MINID).
    MinId(StreamId),
}

/// Entries of one stream, in ID order, grouped in nodes keyed by their first ("master") ID.
#[derive(Clone, Debug, Default)]
pub struct StreamIndex {
    nodes: BTreeMap<StreamId, Node>,
    live: u64,
    /// The shape of the radix tree Redis would keep for these node keys, so
    /// XINFO's `radix-tree-nodes` is Redis's number, not an estimate.
    rax: crate::engine::rax::RaxShape,
}

impl StreamIndex {
    /// An empty index.
    pub fn new() -> Self {
        StreamIndex::default()
    }

    /// Nodes of the radix tree Redis would hold for this index (XINFO `radix-tree-nodes`).
    pub fn radix_tree_nodes(&self) -> u64 {
        debug_assert_eq!(self.rax.keys(), self.nodes.len() as u64);
        self.rax.nodes()
    }

    /// Live entries.
    pub fn len(&self) -> u64 {
        self.live
    }

    /// Whether no live entry remains.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Number of nodes (XINFO's `radix-tree-keys`).
    pub fn node_count(&self) -> u64 {
        self.nodes.len() as u64
    }

    /// The ID the first node is keyed by: its first slot, live or a tombstone.
    ///
    /// Slots only ever leave a node with the whole node, so every ID below this key
    /// lies in nodes already freed. Logging `MINID = key` therefore replays an
    /// approximate trim exactly, node for node.
    pub fn first_node_key(&self) -> Option<StreamId> {
        self.nodes.first_key_value().map(|(k, _)| *k)
    }

    /// Appends an entry whose ID is above every ID ever stored here.
    ///
    /// Opens a new node under Redis's rule: the tail node is closed when its listpack
    /// plus the new field/value bytes would reach max-bytes, or when it already holds
    /// max-entries slots (tombstones included).
    pub fn append(
        &mut self,
        id: StreamId,
        fields: &[Bytes],
        payload: PayloadHandle,
        limits: NodeLimits,
    ) {
        let raw_len: u64 = fields.iter().map(|b| b.len() as u64).sum();
        let max_bytes = if limits.max_bytes == 0 || limits.max_bytes > LISTPACK_MAX_SIZE {
            LISTPACK_MAX_SIZE
        } else {
            limits.max_bytes
        };
        let tail_fits = self.nodes.last_key_value().is_some_and(|(_, node)| {
            node.listpack_bytes() + raw_len < max_bytes
                && (limits.max_entries == 0 || (node.slots.len() as u64) < limits.max_entries)
        });
        let names: Vec<&Bytes> = fields.iter().step_by(2).collect();
        if !tail_fits {
            // Listpack header (6) + terminator (1) + the master entry:
            // count and deleted are accounted in `listpack_bytes`, then num-fields,
            // the field names and a zero terminator.
            let mut body = 7 + lp_int_size(names.len() as i64) + lp_int_size(0);
            body += names.iter().map(|f| lp_str_size(f)).sum::<u64>();
            self.rax.insert_id(id);
            let master_fields = self.intern_names(&names);
            // The closed node will not grow again: give back its spare capacity.
            if let Some(mut tail) = self.nodes.last_entry() {
                tail.get_mut().slots.shrink_to_fit();
            }
            self.nodes.insert(
                id,
                Node {
                    slots: Vec::with_capacity(4),
                    live: 0,
                    master_fields,
                    body_bytes: body,
                },
            );
        }
        let Some(mut tail) = self.nodes.last_entry() else {
            return;
        };
        let node = tail.get_mut();
        let master = node.slots.first().map(|s| s.id).unwrap_or(id);
        let same_fields = names.len() == node.master_fields.len()
            && names
                .iter()
                .zip(node.master_fields.iter())
                .all(|(a, b)| *a == b);
        let values = fields.iter().skip(1).step_by(2);
        let mut bytes = lp_int_size(if same_fields { 2 } else { 0 })
            + lp_int_size(id.ms.wrapping_sub(master.ms) as i64)
            + lp_int_size(id.seq.wrapping_sub(master.seq) as i64);
        let n = names.len() as i64;
        let lp_count = if same_fields { n + 3 } else { 2 * n + 4 };
        if !same_fields {
            bytes += lp_int_size(n) + names.iter().map(|f| lp_str_size(f)).sum::<u64>();
        }
        bytes += values.map(|v| lp_str_size(v)).sum::<u64>() + lp_int_size(lp_count);
        node.body_bytes += bytes;
        node.slots.push(Slot::new(id, payload));
        node.live += 1;
        self.live += 1;
    }

    /// Master field names for a new node: the tail node's, when equal; else owned
    /// copies (the arguments are slices of a connection's read buffer, which must not
    /// stay alive with the node).
    fn intern_names<B: AsRef<[u8]>>(&self, names: &[B]) -> Arc<[Bytes]> {
        if let Some((_, tail)) = self.nodes.last_key_value() {
            let same = tail.master_fields.len() == names.len()
                && tail
                    .master_fields
                    .iter()
                    .zip(names)
                    .all(|(a, b)| a[..] == *b.as_ref());
            if same {
                return tail.master_fields.clone();
            }
        }
        names
            .iter()
            .map(|n| Bytes::copy_from_slice(n.as_ref()))
            .collect()
    }

    /// The live entry with this ID.
    pub fn get(&self, id: StreamId) -> Option<IndexedEntry> {
        let (_, node) = self.nodes.range(..=id).next_back()?;
        let slot = &node.slots[node.position(id).ok()?];
        (!slot.deleted()).then(|| IndexedEntry {
            id: slot.id,
            payload: slot.handle(),
        })
    }

    /// Points the live entry `id` at a new payload position (its record was appended,
    /// or compaction moved it) if `check` accepts its current handle; returns that handle.
    pub fn relocate_if(
        &mut self,
        id: StreamId,
        at: u64,
        check: impl FnOnce(&PayloadHandle) -> bool,
    ) -> Option<PayloadHandle> {
        // The tail node first: where a just-appended entry is.
        let node = match self.nodes.last_key_value() {
            Some((k, _)) if *k <= id => self.nodes.last_entry()?.into_mut(),
            _ => self.nodes.range_mut(..=id).next_back()?.1,
        };
        let pos = node.position(id).ok()?;
        let slot = &mut node.slots[pos];
        if slot.deleted() || !check(&slot.handle()) {
            return None;
        }
        let old = slot.handle();
        slot.at = at;
        Some(old)
    }

    /// Replaces resident handles with what `resolve` says (forwarded positions), so
    /// a checkpoint records only log positions. Returns how many were rewritten.
    pub fn settle_resident(&mut self, resolve: impl Fn(PayloadHandle) -> PayloadHandle) -> u64 {
        let mut n = 0;
        for node in self.nodes.values_mut() {
            for slot in node.slots.iter_mut().filter(|s| !s.deleted()) {
                let h = slot.handle();
                if h.is_resident() {
                    let r = resolve(h);
                    if !r.is_resident() {
                        slot.at = r.at;
                        n += 1;
                    }
                }
            }
        }
        n
    }

    /// Calls `f` with the handle of every live entry (space accounting for compaction).
    pub fn for_each_payload(&self, mut f: impl FnMut(StreamId, PayloadHandle)) {
        for node in self.nodes.values() {
            for slot in node.slots.iter().filter(|s| !s.deleted()) {
                f(slot.id, slot.handle());
            }
        }
    }

    /// Flags the entry as deleted; frees its node when no live entry remains in it.
    ///
    /// Returns whether a live entry was deleted.
    pub fn delete(&mut self, id: StreamId) -> bool {
        let Some((&key, node)) = self.nodes.range_mut(..=id).next_back() else {
            return false;
        };
        let Ok(pos) = node.position(id) else {
            return false;
        };
        if node.slots[pos].deleted() {
            return false;
        }
        node.slots[pos].set_deleted();
        node.live -= 1;
        self.live -= 1;
        if node.live == 0 {
            self.nodes.remove(&key);
            self.rax.remove_id(key);
        }
        true
    }

    /// Live entries with `start <= id <= end`, ascending (or descending if `rev`), at most `count`.
    ///
    /// O(log n + scanned): the first node is found through the ordered map, then slots are
    /// walked; tombstones cost a step but are never returned.
    pub fn range(
        &self,
        start: StreamId,
        end: StreamId,
        count: Option<usize>,
        rev: bool,
    ) -> Vec<IndexedEntry> {
        let mut out = Vec::new();
        let limit = count.unwrap_or(usize::MAX);
        if start > end || limit == 0 {
            return out;
        }
        // The node holding `start` is keyed at or below it.
        let first_key = self
            .nodes
            .range(..=start)
            .next_back()
            .map(|(k, _)| *k)
            .unwrap_or(start);
        let nodes = self
            .nodes
            .range((Bound::Included(first_key), Bound::Included(end)))
            .map(|(_, n)| n);
        let mut take = |slot: &Slot| -> bool {
            if !slot.deleted() {
                out.push(IndexedEntry {
                    id: slot.id,
                    payload: slot.handle(),
                });
            }
            out.len() < limit
        };
        if rev {
            'rev: for node in nodes.rev() {
                let upper = match node.position(end) {
                    Ok(i) => i + 1,
                    Err(i) => i,
                };
                for slot in node.slots[..upper].iter().rev() {
                    if slot.id < start || !take(slot) {
                        break 'rev;
                    }
                }
            }
        } else {
            'fwd: for node in nodes {
                let (Ok(lower) | Err(lower)) = node.position(start);
                for slot in &node.slots[lower..] {
                    if slot.id > end || !take(slot) {
                        break 'fwd;
                    }
                }
            }
        }
        out
    }

    /// The first live entry (XINFO's `first-entry`, the recorded-first-entry-id).
    pub fn first(&self) -> Option<IndexedEntry> {
        self.range(StreamId::MIN, StreamId::MAX, Some(1), false)
            .pop()
    }

    /// The last live entry (XINFO's `last-entry`, XREAD's `+`).
    pub fn last(&self) -> Option<IndexedEntry> {
        self.range(StreamId::MIN, StreamId::MAX, Some(1), true)
            .pop()
    }

    /// Removes entries from the head under `rule`, exactly like Redis's `streamTrim`.
    ///
    /// Whole nodes go first; with `approx` the trim stops at the first node that cannot
    /// go entirely, otherwise entries inside that node are flagged deleted (the node keeps
    /// their tombstones). `limit` (0 = none) caps the entries removed, counted in whole
    /// nodes, as Redis does for `~ … LIMIT n`. Returns the number of entries removed.
    pub fn trim(&mut self, rule: TrimRule, approx: bool, limit: u64) -> u64 {
        let mut removed = 0u64;
        while let Some(mut first) = self.nodes.first_entry() {
            if let TrimRule::MaxLen(max) = rule {
                if self.live <= max {
                    break;
                }
            }
            let node = first.get_mut();
            let entries = node.live;
            if limit != 0 && removed + entries > limit {
                break;
            }
            let whole = match rule {
                TrimRule::MaxLen(max) => self.live - entries >= max,
                // Redis compares the node's last slot, tombstone or not.
                TrimRule::MinId(min) => node.slots.last().is_some_and(|s| s.id < min),
            };
            if whole {
                let key = *first.key();
                first.remove();
                self.rax.remove_id(key);
                self.live -= entries;
                removed += entries;
                continue;
            }
            if approx {
                break;
            }
            for slot in node.slots.iter_mut() {
                let stop = match rule {
                    TrimRule::MaxLen(max) => self.live <= max,
                    TrimRule::MinId(min) => slot.id >= min,
                };
                if stop {
                    break;
                }
                if !slot.deleted() {
                    slot.set_deleted();
                    node.live -= 1;
                    self.live -= 1;
                    removed += 1;
                }
            }
            break;
        }
        removed
    }
}

impl StreamIndex {
    /// Appends up to `max_nodes` nodes starting at the node keyed `from` (all of them
    /// with `from = MIN`) in checkpoint form; returns the key of the next node, if any.
    ///
    /// Per node: key, listpack body bytes, master field names, slots (ID, payload
    /// position, length with tombstone flag, CRC) — exactly what `append`/`trim`
    /// need to go on as if the stream had never left memory.
    pub fn encode_nodes(
        &self,
        from: StreamId,
        max_nodes: usize,
        out: &mut Vec<u8>,
    ) -> Option<StreamId> {
        use crate::engine::codec::Put;
        let mut iter = self.nodes.range(from..);
        let count_at = out.len();
        out.put_u32v(0);
        let mut n = 0u32;
        for (key, node) in iter.by_ref().take(max_nodes) {
            out.put_id(*key);
            out.put_u64v(node.body_bytes);
            out.put_u32v(node.master_fields.len() as u32);
            for f in node.master_fields.iter() {
                out.put_bytes(f);
            }
            out.put_u32v(node.slots.len() as u32);
            for s in &node.slots {
                out.put_id(s.id);
                out.put_u64v(s.at);
                out.put_u32v(s.len);
                out.put_u32v(s.crc);
            }
            n += 1;
        }
        out[count_at..count_at + 4].copy_from_slice(&n.to_le_bytes());
        iter.next().map(|(k, _)| *k)
    }

    /// Adds nodes written by [`StreamIndex::encode_nodes`] (in key order, after every
    /// node already here). `None` when the bytes are malformed.
    pub fn decode_nodes(&mut self, r: &mut crate::engine::codec::Reader) -> Option<()> {
        let count = r.count(28)?;
        for _ in 0..count {
            let key = r.id()?;
            if self.nodes.last_key_value().is_some_and(|(k, _)| *k >= key) {
                return None;
            }
            let body_bytes = r.u64()?;
            let nf = r.count(4)?;
            let mut names = Vec::with_capacity(nf);
            for _ in 0..nf {
                names.push(r.bytes()?);
            }
            let master_fields = self.intern_names(&names);
            let ns = r.count(32)?;
            let mut slots = Vec::with_capacity(ns);
            let mut live = 0;
            for _ in 0..ns {
                let slot = Slot {
                    id: r.id()?,
                    at: r.u64()?,
                    len: r.u32()?,
                    crc: r.u32()?,
                };
                if !slot.deleted() {
                    live += 1;
                }
                slots.push(slot);
            }
            if slots.first().is_some_and(|s| s.id != key)
                || slots.windows(2).any(|w| w[0].id >= w[1].id)
            {
                return None;
            }
            self.rax.insert_id(key);
            self.live += live;
            self.nodes.insert(
                key,
                Node {
                    slots,
                    live,
                    master_fields,
                    body_bytes,
                },
            );
        }
        Some(())
    }
}

/// Bytes one integer element takes in a listpack (encoding + data + back-length).
fn lp_int_size(v: i64) -> u64 {
    match v {
        0..=127 => 2,
        -4096..=4095 => 3,
        -32768..=32767 => 4,
        -8_388_608..=8_388_607 => 5,
        -2_147_483_648..=2_147_483_647 => 6,
        _ => 10,
    }
}

/// Bytes one string element takes in a listpack; strings that are canonical
/// integers are stored as integers, as `lpAppend` does.
fn lp_str_size(s: &[u8]) -> u64 {
    if let Some(v) = crate::engine::id::parse_canonical_i64(s) {
        return lp_int_size(v);
    }
    let len = s.len() as u64;
    let header = if len < 64 {
        1
    } else if len < 4096 {
        2
    } else {
        5
    };
    let element = header + len;
    let backlen = match element {
        0..=127 => 1,
        128..=16382 => 2,
        16383..=2_097_150 => 3,
        2_097_151..=268_435_454 => 4,
        _ => 5,
    };
    element + backlen
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A payload handle; the index never looks inside it.
    fn h() -> PayloadHandle {
        PayloadHandle {
            at: 1 << 40,
            len: 6,
            crc: 0,
        }
    }

    fn id(ms: u64, seq: u64) -> StreamId {
        StreamId::new(ms, seq)
    }

    fn fields(v: &str) -> Vec<Bytes> {
        vec![
            Bytes::from_static(b"f"),
            Bytes::copy_from_slice(v.as_bytes()),
        ]
    }

    fn filled(n: u64, limits: NodeLimits) -> StreamIndex {
        let mut ix = StreamIndex::new();
        for i in 1..=n {
            ix.append(id(i, 0), &fields("v"), h(), limits);
        }
        ix
    }

    #[test]
    fn nodes_split_by_entry_count() {
        let ix = filled(1000, NodeLimits::default());
        assert_eq!(ix.len(), 1000);
        assert_eq!(ix.node_count(), 10);
    }

    #[test]
    fn nodes_split_by_bytes() {
        let mut ix = StreamIndex::new();
        let big = "x".repeat(1000);
        for i in 1..=10 {
            ix.append(id(i, 0), &fields(&big), h(), NodeLimits::default());
        }
        // ~1 KiB per entry and 4 KiB per node: several entries share a node, not all.
        assert!(
            ix.node_count() > 1 && ix.node_count() < 10,
            "{}",
            ix.node_count()
        );
    }

    #[test]
    fn approx_maxlen_trims_whole_nodes() {
        let mut ix = filled(1000, NodeLimits::default());
        assert_eq!(ix.trim(TrimRule::MaxLen(555), true, 10_000), 400);
        assert_eq!(ix.len(), 600);
        assert_eq!(ix.first().map(|e| e.id), Some(id(401, 0)));
    }

    #[test]
    fn exact_maxlen_leaves_tombstones_in_node() {
        let mut ix = filled(1000, NodeLimits::default());
        assert_eq!(ix.trim(TrimRule::MaxLen(555), false, 0), 445);
        assert_eq!(ix.len(), 555);
        assert_eq!(ix.node_count(), 6);
        assert_eq!(ix.first().map(|e| e.id), Some(id(446, 0)));
    }

    #[test]
    fn limit_counts_whole_nodes() {
        let mut ix = filled(1000, NodeLimits::default());
        assert_eq!(ix.trim(TrimRule::MaxLen(0), true, 250), 200);
        assert_eq!(ix.len(), 800);
    }

    #[test]
    fn minid_trim() {
        let mut ix = filled(300, NodeLimits::default());
        assert_eq!(ix.trim(TrimRule::MinId(id(150, 0)), true, 0), 100);
        assert_eq!(ix.trim(TrimRule::MinId(id(150, 0)), false, 0), 49);
        assert_eq!(ix.first().map(|e| e.id), Some(id(150, 0)));
    }

    #[test]
    fn delete_and_ranges() {
        let mut ix = filled(250, NodeLimits::default());
        assert!(ix.delete(id(5, 0)));
        assert!(!ix.delete(id(5, 0)));
        assert!(!ix.delete(id(5, 1)));
        assert!(ix.get(id(5, 0)).is_none());
        assert!(ix.get(id(6, 0)).is_some());
        let r = ix.range(id(3, 0), id(7, 0), None, false);
        let ids: Vec<_> = r.iter().map(|e| e.id.ms).collect();
        assert_eq!(ids, vec![3, 4, 6, 7]);
        let r = ix.range(id(95, 0), id(105, 0), Some(3), true);
        let ids: Vec<_> = r.iter().map(|e| e.id.ms).collect();
        assert_eq!(ids, vec![105, 104, 103]);
        let r = ix.range(id(98, 0), id(103, 0), Some(4), false);
        let ids: Vec<_> = r.iter().map(|e| e.id.ms).collect();
        assert_eq!(ids, vec![98, 99, 100, 101]);
        assert!(ix.range(id(7, 0), id(3, 0), None, false).is_empty());
        // Emptying a node frees it.
        for i in 201..=250 {
            assert!(ix.delete(id(i, 0)));
        }
        assert_eq!(ix.node_count(), 2);
        assert_eq!(ix.last().map(|e| e.id), Some(id(200, 0)));
    }

    #[test]
    fn tombstones_count_toward_node_capacity() {
        let limits = NodeLimits {
            max_entries: 2,
            max_bytes: 4096,
        };
        let mut ix = StreamIndex::new();
        ix.append(id(1, 0), &fields("a"), h(), limits);
        ix.append(id(2, 0), &fields("a"), h(), limits);
        assert!(ix.delete(id(2, 0)));
        ix.append(id(3, 0), &fields("a"), h(), limits);
        assert_eq!(ix.node_count(), 2);
    }

    #[test]
    fn listpack_sizes() {
        assert_eq!(lp_str_size(b"123"), 2);
        assert_eq!(lp_str_size(b"abc"), 5);
        assert_eq!(lp_str_size(&[b'a'; 100]), 103);
        assert_eq!(lp_int_size(-1), 3);
    }
}
