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
//! checksum), so an entry costs 32 bytes of index whatever its size. The slots of all
//! nodes sit in one deque in ID order and a node is a 24-byte run of it, so a stream of
//! 1 KiB entries (three to a 4 KB node) costs about 40 bytes per entry, with no
//! allocation per node: memory grows with the number of entries, not their size.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};

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

/// Slots left behind by freed nodes are compacted away once there are at least this
/// many and they are half of all slots. Small in unit tests, so that they compact often.
const GARBAGE_MIN: u64 = if cfg!(test) { 64 } else { 4096 };

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

/// A group of consecutive entries, the analogue of one listpack: a run of slots.
#[derive(Clone, Copy, Debug)]
struct Node {
    /// Absolute number of its first slot (see [`StreamIndex::base`]). That slot, live or
    /// a tombstone, is the node's master entry and its ID the node's key.
    start: u64,
    /// Slots, tombstones included (Redis keeps them until the node is freed).
    count: u32,
    /// Live (non-deleted) slots.
    live: u32,
    /// Listpack bytes except the `count` and `deleted` header integers, which change
    /// size. Saturates; a listpack never passes 2 GiB (1 GiB cap plus one entry).
    body_bytes: u32,
    /// The master entry's field names, in [`FieldSets`]: they decide whether later
    /// entries are stored compressed and so how many bytes they take.
    fields: u32,
}

impl Node {
    /// Bytes of the listpack Redis would hold for this node (`lpBytes`).
    fn listpack_bytes(&self) -> u64 {
        let deleted = self.count - self.live;
        u64::from(self.body_bytes)
            + lp_int_size(i64::from(self.live))
            + lp_int_size(i64::from(deleted))
    }
}

/// The master field-name lists of a stream's nodes, each stored once however many
/// consecutive nodes share it (the usual case: every entry has the same fields).
#[derive(Clone, Debug, Default)]
struct FieldSets {
    /// Name lists and how many nodes use each; `None` when free.
    sets: Vec<Option<(Box<[Bytes]>, u32)>>,
    free: Vec<u32>,
}

impl FieldSets {
    fn names(&self, i: u32) -> &[Bytes] {
        self.sets
            .get(i as usize)
            .and_then(|s| s.as_ref())
            .map_or(&[], |(names, _)| names)
    }

    /// One more node uses set `i`.
    fn share(&mut self, i: u32) {
        if let Some(Some((_, users))) = self.sets.get_mut(i as usize) {
            *users += 1;
        }
    }

    fn add(&mut self, names: Box<[Bytes]>) -> u32 {
        match self.free.pop() {
            Some(i) => {
                self.sets[i as usize] = Some((names, 1));
                i
            }
            None => {
                self.sets.push(Some((names, 1)));
                // One set per node at most; a stream cannot hold 2^32 nodes in memory.
                u32::try_from(self.sets.len() - 1).unwrap_or(u32::MAX)
            }
        }
    }

    /// A node using set `i` is gone.
    fn release(&mut self, i: u32) {
        if let Some(slot) = self.sets.get_mut(i as usize) {
            if let Some((_, users)) = slot {
                *users -= 1;
                if *users == 0 {
                    *slot = None;
                    self.free.push(i);
                }
            }
        }
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

/// One node as [`StreamIndex::node_shapes`] describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeShape<'a> {
    /// The ID of its first slot (live or a tombstone): the node's key.
    pub key: StreamId,
    /// The ID of its last slot, live or a tombstone: MINID trimming compares it.
    pub last: StreamId,
    /// Slots, tombstones included (`stream-node-max-entries` counts them).
    pub slots: u32,
    /// Live entries: `~` trimming removes a node whole only if these may all go.
    pub live: u32,
    /// The listpack bytes Redis would hold (`stream-node-max-bytes` is checked against them).
    pub listpack_bytes: u64,
    /// The master entry's field names, which decide how later entries are sized.
    pub master_fields: &'a [Bytes],
}

/// What an entry-by-entry trim ([`StreamIndex::trim_each`]) removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrimWalk {
    /// The entries deleted, as runs `(first, last)`: every entry live before the trim
    /// with an ID in a run was deleted, and between two runs at least one was kept.
    pub runs: Vec<(StreamId, StreamId)>,
    /// How many entries were deleted.
    pub removed: u64,
    /// The key of the last node freed, if any. Every node up to it was walked and was
    /// covered whole by the rule, so the nodes freed are exactly those keyed up to it
    /// that hold no live entry afterwards (see [`StreamIndex::free_empty_through`]).
    pub freed_through: Option<StreamId>,
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
///
/// Invariants: nodes are in key order, each a run of `slots` starting at its key; the
/// first node starts at `base` and nothing follows the last node's slots. Slots between
/// nodes (`garbage`) belonged to nodes freed in the middle of the stream; they are
/// never reached (every walk goes node by node) and are compacted away in bulk.
#[derive(Debug, Default)]
pub struct StreamIndex {
    slots: VecDeque<Slot>,
    /// Absolute number of `slots[0]`: slots dropped from the front advance it, so the
    /// nodes' `start` stay valid.
    base: u64,
    nodes: VecDeque<Node>,
    live: u64,
    /// Slots no node owns.
    garbage: u64,
    field_sets: FieldSets,
    /// rax node count for XINFO, computed when asked; 0 = not known (a rax has at least
    /// its head node).
    rax_nodes: AtomicU64,
}

impl Clone for StreamIndex {
    fn clone(&self) -> Self {
        StreamIndex {
            slots: self.slots.clone(),
            base: self.base,
            nodes: self.nodes.clone(),
            live: self.live,
            garbage: self.garbage,
            field_sets: self.field_sets.clone(),
            rax_nodes: AtomicU64::new(self.rax_nodes.load(Ordering::Relaxed)),
        }
    }
}

impl StreamIndex {
    /// An empty index.
    pub fn new() -> Self {
        StreamIndex::default()
    }

    /// Nodes of the radix tree Redis would hold for this index (XINFO `radix-tree-nodes`).
    ///
    /// Computed from the node keys (see [`crate::engine::rax`]) on the first call after
    /// the set of nodes changed: O(nodes) then, O(1) while the nodes stay the same.
    pub fn radix_tree_nodes(&self) -> u64 {
        let known = self.rax_nodes.load(Ordering::Relaxed);
        if known != 0 {
            return known;
        }
        let n = crate::engine::rax::count_nodes(self.nodes.iter().map(|n| self.key(n)));
        self.rax_nodes.store(n, Ordering::Relaxed);
        n
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
        self.nodes.front().map(|n| self.key(n))
    }

    /// The shape of every node, first to last: what decides which entries a later `~`
    /// trim removes, where the next node opens and what XINFO reports, so a restart
    /// must rebuild it exactly (the digest covers it; see [`crate::engine::digest`]).
    pub fn node_shapes(&self) -> impl DoubleEndedIterator<Item = NodeShape<'_>> + '_ {
        self.nodes.iter().map(|n| NodeShape {
            key: self.key(n),
            last: self.slots_of(n).next_back().map_or(StreamId::MIN, |s| s.id),
            slots: n.count,
            live: n.live,
            listpack_bytes: n.listpack_bytes(),
            master_fields: self.field_sets.names(n.fields),
        })
    }

    /// Position in `slots` of absolute slot number `abs`.
    fn at(&self, abs: u64) -> usize {
        (abs - self.base) as usize
    }

    fn key(&self, n: &Node) -> StreamId {
        self.slots[self.at(n.start)].id
    }

    /// The node's slots.
    fn slots_of(&self, n: &Node) -> std::collections::vec_deque::Iter<'_, Slot> {
        let a = self.at(n.start);
        self.slots.range(a..a + n.count as usize)
    }

    /// Index of the last node keyed at or below `id`: the one that would hold it.
    fn node_for(&self, id: StreamId) -> Option<usize> {
        // The tail node first: where appends, relocations and recent reads go.
        let last = self.nodes.len().checked_sub(1)?;
        if self.key(&self.nodes[last]) <= id {
            return Some(last);
        }
        self.nodes
            .partition_point(|n| self.key(n) <= id)
            .checked_sub(1)
    }

    /// Where `id` is (or would go) among the node's slots, as `binary_search` says.
    fn position(&self, n: &Node, id: StreamId) -> Result<usize, usize> {
        let a = self.at(n.start);
        let (mut lo, mut hi) = (0usize, n.count as usize);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.slots[a + mid].id.cmp(&id) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Ok(mid),
            }
        }
        Err(lo)
    }

    /// Absolute slot number of the live entry `id`.
    fn find(&self, id: StreamId) -> Option<(usize, u64)> {
        let i = self.node_for(id)?;
        let node = &self.nodes[i];
        let pos = self.position(node, id).ok()?;
        let abs = node.start + pos as u64;
        (!self.slots[self.at(abs)].deleted()).then_some((i, abs))
    }

    /// The set of nodes changed: the rax count must be computed again.
    fn nodes_changed(&mut self) {
        *self.rax_nodes.get_mut() = 0;
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
        let tail_fits = self.nodes.back().is_some_and(|node| {
            node.listpack_bytes() + raw_len < max_bytes
                && (limits.max_entries == 0 || u64::from(node.count) < limits.max_entries)
        });
        // The field names, without collecting them (an allocation per entry otherwise).
        let names = || fields.iter().step_by(2);
        let names_len = fields.len().div_ceil(2);
        if !tail_fits {
            // Listpack header (6) + terminator (1) + the master entry:
            // count and deleted are accounted in `listpack_bytes`, then num-fields,
            // the field names and a zero terminator.
            let mut body = 7 + lp_int_size(names_len as i64) + lp_int_size(0);
            body += names().map(|f| lp_str_size(f)).sum::<u64>();
            let fields = self.intern_names(&names().collect::<Vec<_>>());
            self.nodes.push_back(Node {
                start: self.base + self.slots.len() as u64,
                count: 0,
                live: 0,
                body_bytes: u32::try_from(body).unwrap_or(u32::MAX),
                fields,
            });
            self.nodes_changed();
        }
        let Some(&node) = self.nodes.back() else {
            return;
        };
        let master = if node.count == 0 { id } else { self.key(&node) };
        let master_fields = self.field_sets.names(node.fields);
        let same_fields =
            names_len == master_fields.len() && names().zip(master_fields).all(|(a, b)| a == b);
        let values = fields.iter().skip(1).step_by(2);
        let mut bytes = lp_int_size(if same_fields { 2 } else { 0 })
            + lp_int_size(id.ms.wrapping_sub(master.ms) as i64)
            + lp_int_size(id.seq.wrapping_sub(master.seq) as i64);
        let n = names_len as i64;
        let lp_count = if same_fields { n + 3 } else { 2 * n + 4 };
        if !same_fields {
            bytes += lp_int_size(n) + names().map(|f| lp_str_size(f)).sum::<u64>();
        }
        bytes += values.map(|v| lp_str_size(v)).sum::<u64>() + lp_int_size(lp_count);
        self.slots.push_back(Slot::new(id, payload));
        if let Some(node) = self.nodes.back_mut() {
            node.body_bytes = node
                .body_bytes
                .saturating_add(u32::try_from(bytes).unwrap_or(u32::MAX));
            node.count += 1;
            node.live += 1;
        }
        self.live += 1;
    }

    /// Master field names for a new node: the tail node's set, when equal; else owned
    /// copies (the arguments are slices of a connection's read buffer, which must not
    /// stay alive with the node).
    fn intern_names<B: AsRef<[u8]>>(&mut self, names: &[B]) -> u32 {
        if let Some(tail) = self.nodes.back() {
            let set = self.field_sets.names(tail.fields);
            let same = set.len() == names.len()
                && set.iter().zip(names).all(|(a, b)| a[..] == *b.as_ref());
            if same {
                let i = tail.fields;
                self.field_sets.share(i);
                return i;
            }
        }
        self.field_sets.add(
            names
                .iter()
                .map(|n| Bytes::copy_from_slice(n.as_ref()))
                .collect(),
        )
    }

    /// Removes node `i` and its slots (or leaves them as garbage when other nodes are
    /// on both sides). Live counts are the caller's business.
    fn free_node(&mut self, i: usize) {
        let Some(node) = self.nodes.remove(i) else {
            return;
        };
        self.field_sets.release(node.fields);
        self.nodes_changed();
        let owned = u64::from(node.count);
        if self.nodes.is_empty() {
            self.base += self.slots.len() as u64;
            self.slots.clear();
            self.garbage = 0;
        } else if i == 0 {
            // Drop everything before the new first node, garbage included.
            let next = self.nodes[0].start;
            let drop = self.at(next);
            self.slots.drain(..drop);
            self.base = next;
            self.garbage -= drop as u64 - owned;
        } else if i == self.nodes.len() {
            // Drop everything after the new last node.
            let prev = self.nodes[i - 1];
            let keep = self.at(prev.start) + prev.count as usize;
            let dropped = (self.slots.len() - keep) as u64;
            self.slots.truncate(keep);
            self.garbage -= dropped - owned;
        } else {
            self.garbage += owned;
            self.compact_if_needed();
        }
    }

    /// Rewrites `slots` without garbage once garbage is most of it (amortised O(1)
    /// per freed slot).
    fn compact_if_needed(&mut self) {
        if self.garbage < GARBAGE_MIN || self.garbage * 2 < self.slots.len() as u64 {
            return;
        }
        let mut slots = VecDeque::with_capacity(self.slots.len() - self.garbage as usize);
        for i in 0..self.nodes.len() {
            let node = self.nodes[i];
            slots.extend(self.slots_of(&node).copied());
            self.nodes[i].start = self.base + (slots.len() - node.count as usize) as u64;
        }
        self.slots = slots;
        self.garbage = 0;
    }

    /// The live entry with this ID.
    pub fn get(&self, id: StreamId) -> Option<IndexedEntry> {
        let (_, abs) = self.find(id)?;
        let slot = &self.slots[self.at(abs)];
        Some(IndexedEntry {
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
        let (_, abs) = self.find(id)?;
        let i = self.at(abs);
        let slot = &mut self.slots[i];
        if !check(&slot.handle()) {
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
        // Garbage slots may be rewritten too; nothing reads them.
        for slot in self.slots.iter_mut().filter(|s| !s.deleted()) {
            let h = slot.handle();
            if h.is_resident() {
                let r = resolve(h);
                if !r.is_resident() {
                    slot.at = r.at;
                    n += 1;
                }
            }
        }
        n
    }

    /// Calls `f` with the handle of every live entry (space accounting for compaction).
    pub fn for_each_payload(&self, mut f: impl FnMut(StreamId, PayloadHandle)) {
        for node in &self.nodes {
            for slot in self.slots_of(node).filter(|s| !s.deleted()) {
                f(slot.id, slot.handle());
            }
        }
    }

    /// Flags the entry as deleted; frees its node when no live entry remains in it.
    ///
    /// Returns whether a live entry was deleted.
    pub fn delete(&mut self, id: StreamId) -> bool {
        let Some((i, abs)) = self.find(id) else {
            return false;
        };
        let at = self.at(abs);
        self.slots[at].set_deleted();
        self.nodes[i].live -= 1;
        self.live -= 1;
        if self.nodes[i].live == 0 {
            self.free_node(i);
        }
        true
    }

    /// Live entries with `start <= id <= end`, ascending (or descending if `rev`), at most `count`.
    ///
    /// O(log n + scanned): the first node is found by binary search over the nodes, then
    /// slots are walked; tombstones cost a step but are never returned.
    pub fn range(
        &self,
        start: StreamId,
        end: StreamId,
        count: Option<usize>,
        rev: bool,
    ) -> Vec<IndexedEntry> {
        let mut out = Vec::new();
        let limit = count.unwrap_or(usize::MAX);
        if start > end || limit == 0 || self.nodes.is_empty() {
            return out;
        }
        // The node holding `start` is keyed at or below it; if none is, the first.
        let first = self.node_for(start).unwrap_or(0);
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
            let Some(last) = self.node_for(end) else {
                return out;
            };
            'rev: for i in (first..=last).rev() {
                let node = &self.nodes[i];
                let upper = match self.position(node, end) {
                    Ok(i) => i + 1,
                    Err(i) => i,
                };
                let a = self.at(node.start);
                for slot in self.slots.range(a..a + upper).rev() {
                    if slot.id < start || !take(slot) {
                        break 'rev;
                    }
                }
            }
        } else {
            'fwd: for node in self.nodes.range(first..) {
                if self.key(node) > end {
                    break;
                }
                let (Ok(lower) | Err(lower)) = self.position(node, start);
                let a = self.at(node.start);
                for slot in self.slots.range(a + lower..a + node.count as usize) {
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

    /// Whether a trim under `rule` removes the head node (holding `entries` live ones) whole.
    fn trim_takes_whole(&self, node: &Node, rule: TrimRule, entries: u64) -> bool {
        match rule {
            TrimRule::MaxLen(max) => self.live - entries >= max,
            // Redis compares the node's last slot, tombstone or not.
            TrimRule::MinId(min) => self.slots_of(node).next_back().is_some_and(|s| s.id < min),
        }
    }

    /// Whether an exact trim under `rule`, deleting inside the head node, stops at slot `k`.
    fn trim_stops_at(&self, k: usize, rule: TrimRule) -> bool {
        match rule {
            TrimRule::MaxLen(max) => self.live <= max,
            TrimRule::MinId(min) => self.slots[k].id >= min,
        }
    }

    /// Removes entries from the head under `rule`, exactly like Redis's `streamTrim`.
    ///
    /// Whole nodes go first; with `approx` the trim stops at the first node that cannot
    /// go entirely, otherwise entries inside that node are flagged deleted (the node keeps
    /// their tombstones). `limit` (0 = none) caps the entries removed, counted in whole
    /// nodes, as Redis does for `~ … LIMIT n`. Returns the number of entries removed.
    pub fn trim(&mut self, rule: TrimRule, approx: bool, limit: u64) -> u64 {
        let mut removed = 0u64;
        while let Some(&node) = self.nodes.front() {
            if let TrimRule::MaxLen(max) = rule {
                if self.live <= max {
                    break;
                }
            }
            let entries = u64::from(node.live);
            if limit != 0 && removed + entries > limit {
                break;
            }
            if self.trim_takes_whole(&node, rule, entries) {
                self.free_node(0);
                self.live -= entries;
                removed += entries;
                continue;
            }
            if approx {
                break;
            }
            let a = self.at(node.start);
            for k in a..a + node.count as usize {
                if self.trim_stops_at(k, rule) {
                    break;
                }
                if !self.slots[k].deleted() {
                    self.slots[k].set_deleted();
                    self.nodes[0].live -= 1;
                    self.live -= 1;
                    removed += 1;
                }
            }
            break;
        }
        removed
    }

    /// Trims from the head entry by entry, as Redis's `streamTrim` does for DELREF and
    /// ACKED: `delete` is asked about each live entry the rule reaches (true deletes it,
    /// leaving a tombstone) and no node is dropped without this walk.
    ///
    /// Per node, from the head: stop once MAXLEN is met; stop before the node if its live
    /// entries would take the count past `limit` (0 = none); walk its slots until the rule
    /// is met. A node the rule covers entirely is freed if every live entry it had went,
    /// and the walk moves on to the next node; a node the rule covers in part ends it.
    pub fn trim_each(
        &mut self,
        rule: TrimRule,
        limit: u64,
        mut delete: impl FnMut(StreamId) -> bool,
    ) -> TrimWalk {
        let mut walk = TrimWalk::default();
        // Whether the last live entry walked was deleted: the next one extends its run.
        let mut in_run = false;
        let mut i = 0;
        while let Some(&node) = self.nodes.get(i) {
            if let TrimRule::MaxLen(max) = rule {
                if self.live <= max {
                    break;
                }
            }
            let entries = u64::from(node.live);
            if limit != 0 && walk.removed + entries > limit {
                break;
            }
            let whole = self.trim_takes_whole(&node, rule, entries);
            let a = self.at(node.start);
            let mut deleted_here = 0u64;
            for k in a..a + node.count as usize {
                if self.trim_stops_at(k, rule) {
                    break;
                }
                let slot = self.slots[k];
                if slot.deleted() {
                    continue;
                }
                if !delete(slot.id) {
                    in_run = false;
                    continue;
                }
                self.slots[k].set_deleted();
                self.nodes[i].live -= 1;
                self.live -= 1;
                deleted_here += 1;
                match walk.runs.last_mut() {
                    Some(run) if in_run => run.1 = slot.id,
                    _ => walk.runs.push((slot.id, slot.id)),
                }
                in_run = true;
            }
            walk.removed += deleted_here;
            if whole && deleted_here == entries {
                walk.freed_through = Some(self.key(&node));
                self.free_node(i);
                continue;
            }
            if !whole {
                break;
            }
            i += 1;
        }
        walk
    }

    /// Flags the live entry `id` deleted the way a trim does: its node stays, even if
    /// emptied (see [`StreamIndex::free_empty_through`]). Returns whether it was live.
    pub fn tombstone(&mut self, id: StreamId) -> bool {
        let Some((i, abs)) = self.find(id) else {
            return false;
        };
        let at = self.at(abs);
        self.slots[at].set_deleted();
        self.nodes[i].live -= 1;
        self.live -= 1;
        true
    }

    /// Frees every node keyed at or below `key` that holds no live entry; returns how many.
    pub fn free_empty_through(&mut self, key: StreamId) -> usize {
        let mut freed = 0;
        let mut i = 0;
        while let Some(&node) = self.nodes.get(i) {
            if self.key(&node) > key {
                break;
            }
            if node.live == 0 {
                self.free_node(i);
                freed += 1;
            } else {
                i += 1;
            }
        }
        freed
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
        let first = self.nodes.partition_point(|n| self.key(n) < from);
        let count_at = out.len();
        out.put_u32v(0);
        let mut n = 0u32;
        let mut iter = self.nodes.range(first..);
        for node in iter.by_ref().take(max_nodes) {
            out.put_id(self.key(node));
            out.put_u64v(u64::from(node.body_bytes));
            let names = self.field_sets.names(node.fields);
            out.put_u32v(names.len() as u32);
            for f in names {
                out.put_bytes(f);
            }
            out.put_u32v(node.count);
            for s in self.slots_of(node) {
                out.put_id(s.id);
                out.put_u64v(s.at);
                out.put_u32v(s.len);
                out.put_u32v(s.crc);
            }
            n += 1;
        }
        out[count_at..count_at + 4].copy_from_slice(&n.to_le_bytes());
        iter.next().map(|node| self.key(node))
    }

    /// Adds nodes written by [`StreamIndex::encode_nodes`] (in key order, after every
    /// node already here). `None` when the bytes are malformed.
    pub fn decode_nodes(&mut self, r: &mut crate::engine::codec::Reader) -> Option<()> {
        let count = r.count(28)?;
        for _ in 0..count {
            let key = r.id()?;
            let after_last = self.slots.back().is_none_or(|s| s.id < key);
            if !after_last {
                return None;
            }
            let body_bytes = u32::try_from(r.u64()?).unwrap_or(u32::MAX);
            let nf = r.count(4)?;
            let mut names = Vec::with_capacity(nf);
            for _ in 0..nf {
                names.push(r.bytes()?);
            }
            let ns = r.count(32)?;
            let mut slots = Vec::with_capacity(ns);
            let mut live = 0u32;
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
            if slots.first().is_none_or(|s| s.id != key)
                || slots.windows(2).any(|w| w[0].id >= w[1].id)
            {
                return None;
            }
            let fields = self.intern_names(&names);
            let start = self.base + self.slots.len() as u64;
            self.slots.extend(slots);
            self.nodes.push_back(Node {
                start,
                count: u32::try_from(ns).ok()?,
                live,
                body_bytes,
                fields,
            });
            self.live += u64::from(live);
            self.nodes_changed();
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
    if let Some(v) = crate::syntax::string2ll(s) {
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

    impl StreamIndex {
        /// Panics unless the structure's invariants hold.
        fn check(&self) {
            let mut owned = 0u64;
            let mut live = 0u64;
            let mut prev_end = self.base;
            let mut prev_id = None;
            for (i, n) in self.nodes.iter().enumerate() {
                assert!(n.count > 0);
                assert!(n.start >= prev_end, "node {i} overlaps");
                if i == 0 {
                    assert_eq!(n.start, self.base, "first node starts at base");
                }
                let slots: Vec<&Slot> = self.slots_of(n).collect();
                assert_eq!(slots.len(), n.count as usize);
                assert_eq!(slots.iter().filter(|s| !s.deleted()).count() as u32, n.live);
                for s in slots {
                    assert!(prev_id < Some(s.id), "IDs ascend");
                    prev_id = Some(s.id);
                }
                owned += u64::from(n.count);
                live += u64::from(n.live);
                prev_end = n.start + u64::from(n.count);
            }
            assert_eq!(
                prev_end,
                self.base + self.slots.len() as u64,
                "nothing after the last node"
            );
            assert_eq!(self.garbage, self.slots.len() as u64 - owned);
            assert_eq!(self.live, live);
        }
    }

    /// Appends, XDEL-style deletes anywhere (freeing nodes in the middle, so garbage
    /// builds up and is compacted) and exact trims, against a plain set of live IDs.
    #[test]
    fn random_history_matches_a_model() {
        let mut next = crate::engine::test_rng(0x2545_f491_4f6c_dd1du64);
        let limits = NodeLimits {
            max_entries: 4,
            max_bytes: 4096,
        };
        let mut ix = StreamIndex::new();
        let mut model = std::collections::BTreeSet::new();
        let mut ms = 0;
        let mut compactions = 0;
        for step in 0..80_000u64 {
            // Phases: mostly appends, then mostly deletes, and so on.
            let appending = (step / 20_000) % 2 == 0;
            let r = next() % 100;
            if r < if appending { 90 } else { 5 } {
                ms += 1 + next() % 3;
                ix.append(id(ms, 0), &fields("v"), h(), limits);
                model.insert(id(ms, 0));
            } else if r < 99 || !next().is_multiple_of(20) {
                let victim = if model.is_empty() || next().is_multiple_of(10) {
                    id(next() % (ms + 1), 0)
                } else {
                    *model
                        .iter()
                        .nth((next() % model.len() as u64) as usize)
                        .expect("non-empty")
                };
                let garbage = ix.garbage;
                assert_eq!(ix.delete(victim), model.remove(&victim), "step {step}");
                // Compaction empties a garbage pile big enough to be worth it.
                if garbage + 4 >= GARBAGE_MIN && ix.garbage == 0 {
                    compactions += 1;
                }
            } else {
                let keep = model.len() as u64 * 3 / 4;
                let removed = ix.trim(TrimRule::MaxLen(keep), false, 0);
                let mut n = 0;
                while model.len() as u64 > keep {
                    model.pop_first();
                    n += 1;
                }
                assert_eq!(removed, n);
            }
            if step % 97 == 0 {
                ix.check();
                let all: Vec<StreamId> = ix
                    .range(StreamId::MIN, StreamId::MAX, None, false)
                    .iter()
                    .map(|e| e.id)
                    .collect();
                assert_eq!(
                    all,
                    model.iter().copied().collect::<Vec<_>>(),
                    "step {step}"
                );
                let (x, y) = (next() % (ms + 1), next() % (ms + 1));
                let (a, b) = (id(x.min(y), 0), id(x.max(y), 0));
                let rev: Vec<StreamId> =
                    ix.range(a, b, Some(5), true).iter().map(|e| e.id).collect();
                let want: Vec<StreamId> = model.range(a..=b).rev().take(5).copied().collect();
                assert_eq!(rev, want, "step {step}");
                assert_eq!(ix.len(), model.len() as u64);
                assert_eq!(ix.first().map(|e| e.id), model.first().copied());
                assert_eq!(ix.last().map(|e| e.id), model.last().copied());
            }
        }
        assert!(compactions > 0, "garbage was never compacted");
    }

    /// A checkpoint's node records rebuild the same index.
    #[test]
    fn encode_decode_round_trip() {
        let mut ix = filled(1000, NodeLimits::default());
        for i in (1..=1000).step_by(7) {
            ix.delete(id(i, 0));
        }
        for i in 301..=400 {
            ix.delete(id(i, 0));
        }
        let mut back = StreamIndex::new();
        let mut from = StreamId::MIN;
        loop {
            let mut buf = Vec::new();
            let next = ix.encode_nodes(from, 3, &mut buf);
            let mut r = crate::engine::codec::Reader::new(Bytes::from(buf));
            back.decode_nodes(&mut r).expect("well-formed");
            match next {
                Some(k) => from = k,
                None => break,
            }
        }
        back.check();
        assert_eq!(back.node_count(), ix.node_count());
        assert_eq!(back.radix_tree_nodes(), ix.radix_tree_nodes());
        assert_eq!(
            back.range(StreamId::MIN, StreamId::MAX, None, false),
            ix.range(StreamId::MIN, StreamId::MAX, None, false)
        );
    }

    #[test]
    fn listpack_sizes() {
        assert_eq!(lp_str_size(b"123"), 2);
        assert_eq!(lp_str_size(b"abc"), 5);
        assert_eq!(lp_str_size(&[b'a'; 100]), 103);
        assert_eq!(lp_int_size(-1), 3);
    }
}
