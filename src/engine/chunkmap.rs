//! An ordered map kept as sorted runs ("chunks") of at most [`CHUNK`] entries, found
//! through a small B-tree of their lower bounds.
//!
//! Why not `BTreeMap`: the pending-entries lists of consumer groups are the largest
//! ordered maps the engine keeps (one entry per delivered, unacknowledged stream entry),
//! and their keys arrive in ascending order (XREADGROUP `>` delivers IDs, deliveries get
//! the current time) and mostly leave oldest first (XACK). std's B-tree splits a full node
//! in the middle even when keys come in order, so its nodes stay about half full, and
//! with their parent links and edges a 40-byte entry cost about 75 bytes. Here a chunk
//! that fills by appending is left full and the next key starts a new chunk, so keys
//! that come in order are stored at full density: the entry's own bytes plus about two
//! bytes of chunk bookkeeping. Keys and values sit in two arrays, so a 12-byte key does
//! not pad to 16 beside an 8-aligned value. Keys inserted out of order split a chunk in
//! halves (at least half full) that keep no spare room, and a chunk grows an eighth of
//! a chunk at a time once past a quarter, so keys that come at random (the keyspace's
//! SCAN order of key hashes, `engine::keyspace`) fill their arrays to about 90%. A chunk
//! emptied below a quarter merges with a neighbour or gives memory back.
//!
//! Lookups, inserts and removals cost a lookup in the B-tree of chunks (n / 128
//! entries), a binary search and a move of at most one chunk's entries.

use std::collections::BTreeMap;
use std::ops::{Bound, RangeBounds};

/// Most entries in one chunk: large enough that the B-tree of chunks costs about a byte
/// per entry, small enough that moving half a chunk on an insert stays cheap.
pub const CHUNK: usize = 128;

#[derive(Clone, Debug)]
struct Chunk<K, V> {
    keys: Vec<K>,
    vals: Vec<V>,
}

impl<K: Ord + Copy, V> Chunk<K, V> {
    fn new() -> Self {
        Chunk {
            keys: Vec::new(),
            vals: Vec::new(),
        }
    }

    fn len(&self) -> usize {
        self.keys.len()
    }

    /// Makes room for one more entry, never past [`CHUNK`]: doubling up to a quarter
    /// chunk, then an eighth of a chunk at a time, so that a chunk filled at random
    /// (the SCAN order of the keyspace) wastes at most that eighth, not half.
    fn grow(&mut self) {
        fn room<T>(v: &mut Vec<T>) {
            if v.len() == v.capacity() {
                let cap = v.capacity();
                let want = if cap < CHUNK / 4 {
                    (cap * 2).max(4)
                } else {
                    cap + CHUNK / 8
                }
                .min(CHUNK);
                v.reserve_exact(want.saturating_sub(v.len()));
            }
        }
        room(&mut self.keys);
        room(&mut self.vals);
    }

    fn insert_at(&mut self, i: usize, key: K, val: V) {
        self.grow();
        self.keys.insert(i, key);
        self.vals.insert(i, val);
    }

    /// The entries from `at` on, in a new chunk; both halves keep no spare room (each
    /// grows again as entries arrive).
    fn split_off(&mut self, at: usize) -> Self {
        let right = Chunk {
            keys: self.keys.split_off(at),
            vals: self.vals.split_off(at),
        };
        self.keys.shrink_to_fit();
        self.vals.shrink_to_fit();
        right
    }

    /// Gives memory back once a chunk is at most a quarter full.
    fn shrink(&mut self) {
        fn halve<T>(v: &mut Vec<T>) {
            // Zero-sized values never allocate (their capacity is `usize::MAX`).
            if std::mem::size_of::<T>() != 0 && v.capacity() > 8 && v.len() <= v.capacity() / 4 {
                v.shrink_to(v.capacity() / 2);
            }
        }
        halve(&mut self.keys);
        halve(&mut self.vals);
    }
}

/// An ordered map from `K` to `V`; see the module docs.
///
/// Invariant: the chunk filed under bound `b` holds only keys in `[b, next bound)`, sorted,
/// and is never empty. A bound may be lower than its chunk's first key (the first key was
/// removed); it is only ever a lower bound.
#[derive(Clone, Debug)]
pub struct ChunkMap<K, V> {
    chunks: BTreeMap<K, Chunk<K, V>>,
    len: usize,
}

impl<K, V> Default for ChunkMap<K, V> {
    fn default() -> Self {
        ChunkMap {
            chunks: BTreeMap::new(),
            len: 0,
        }
    }
}

impl<K: Ord + Copy, V: PartialEq> PartialEq for ChunkMap<K, V> {
    /// Equal contents, however they are cut into chunks.
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl<K: Ord + Copy, V: Eq> Eq for ChunkMap<K, V> {}

impl<K: Ord + Copy, V> ChunkMap<K, V> {
    /// An empty map (allocates nothing).
    pub fn new() -> Self {
        ChunkMap::default()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when there is no entry.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Removes every entry.
    pub fn clear(&mut self) {
        self.chunks.clear();
        self.len = 0;
    }

    /// The value under `key`.
    pub fn get(&self, key: &K) -> Option<&V> {
        let (_, chunk) = self.chunks.range(..=*key).next_back()?;
        let i = chunk.keys.binary_search(key).ok()?;
        chunk.vals.get(i)
    }

    /// The value under `key`, to change it.
    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        let (_, chunk) = self.chunks.range_mut(..=*key).next_back()?;
        let i = chunk.keys.binary_search(key).ok()?;
        chunk.vals.get_mut(i)
    }

    /// True when `key` has a value.
    pub fn contains_key(&self, key: &K) -> bool {
        self.get(key).is_some()
    }

    /// Sets `key` to `val`, returning the value it replaced.
    pub fn insert(&mut self, key: K, val: V) -> Option<V> {
        let bound = match self.chunks.range(..=key).next_back() {
            Some((bound, _)) => *bound,
            None => {
                // Below every chunk (or none yet): the first chunk's range grows down to `key`.
                let first = self.chunks.pop_first().map_or_else(Chunk::new, |(_, c)| c);
                self.chunks.insert(key, first);
                key
            }
        };
        let chunk = self.chunks.get_mut(&bound)?;
        let i = match chunk.keys.binary_search(&key) {
            Ok(i) => return chunk.vals.get_mut(i).map(|v| std::mem::replace(v, val)),
            Err(i) => i,
        };
        self.len += 1;
        if chunk.len() < CHUNK {
            chunk.insert_at(i, key, val);
        } else if i == CHUNK {
            // Appending past a full chunk (keys in order): leave it full, start the next.
            // Past the last chunk, keys are coming in order (a PEL filling): that chunk
            // is taken at full size at once, sparing the allocator a trail of freed
            // smaller arrays (2 bytes a pending entry of RSS).
            let in_order = self
                .chunks
                .last_key_value()
                .is_some_and(|(b, _)| *b == bound);
            let mut next = if in_order {
                Chunk {
                    keys: Vec::with_capacity(CHUNK),
                    vals: Vec::with_capacity(CHUNK),
                }
            } else {
                Chunk::new()
            };
            next.insert_at(0, key, val);
            self.chunks.insert(key, next);
        } else {
            let half = CHUNK / 2;
            let mut right = chunk.split_off(half);
            if i <= half {
                chunk.insert_at(i, key, val);
            } else {
                right.insert_at(i - half, key, val);
            }
            if let Some(&right_bound) = right.keys.first() {
                self.chunks.insert(right_bound, right);
            }
        }
        None
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        let (&bound, chunk) = self.chunks.range_mut(..=*key).next_back()?;
        let i = chunk.keys.binary_search(key).ok()?;
        chunk.keys.remove(i);
        let val = chunk.vals.remove(i);
        self.len -= 1;
        if chunk.keys.is_empty() {
            self.chunks.remove(&bound);
        } else if chunk.len() < CHUNK / 4 {
            self.merge_after(bound);
        }
        Some(val)
    }

    /// A chunk fell below a quarter: it joins the chunk before it, or takes in the chunk
    /// after it, when the two fit in half a chunk (so that a run of removals leaves no
    /// trail of nearly empty chunks), and gives memory back otherwise.
    fn merge_after(&mut self, bound: K) {
        let small_len = self.chunks.get(&bound).map_or(0, Chunk::len);
        let prev = self
            .chunks
            .range(..bound)
            .next_back()
            .map(|(b, c)| (*b, c.len()));
        if let Some((prev_bound, prev_len)) = prev {
            if small_len + prev_len <= CHUNK / 2 {
                if let Some(mut small) = self.chunks.remove(&bound) {
                    if let Some(before) = self.chunks.get_mut(&prev_bound) {
                        before.keys.append(&mut small.keys);
                        before.vals.append(&mut small.vals);
                    }
                }
                return;
            }
        }
        let next = self
            .chunks
            .range((Bound::Excluded(bound), Bound::Unbounded))
            .next()
            .map(|(b, c)| (*b, c.len()));
        if let Some((next_bound, next_len)) = next {
            if small_len + next_len <= CHUNK / 2 {
                if let Some(mut taken) = self.chunks.remove(&next_bound) {
                    if let Some(small) = self.chunks.get_mut(&bound) {
                        small.keys.append(&mut taken.keys);
                        small.vals.append(&mut taken.vals);
                    }
                }
                return;
            }
        }
        if let Some(small) = self.chunks.get_mut(&bound) {
            small.shrink();
        }
    }

    /// The entry with the smallest key.
    pub fn first(&self) -> Option<(&K, &V)> {
        let (_, chunk) = self.chunks.first_key_value()?;
        Some((chunk.keys.first()?, chunk.vals.first()?))
    }

    /// The entry with the largest key.
    pub fn last(&self) -> Option<(&K, &V)> {
        let (_, chunk) = self.chunks.last_key_value()?;
        Some((chunk.keys.last()?, chunk.vals.last()?))
    }

    /// Every entry in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> + '_ {
        self.range(..)
    }

    /// Every key in order.
    pub fn keys(&self) -> impl Iterator<Item = &K> + '_ {
        self.iter().map(|(k, _)| k)
    }

    /// The entries whose keys are in `range`, in key order.
    pub fn range<R: RangeBounds<K>>(&self, range: R) -> impl Iterator<Item = (&K, &V)> + '_ {
        let start = range.start_bound().cloned();
        let end = range.end_bound().cloned();
        let from = match start {
            Bound::Included(k) | Bound::Excluded(k) => {
                self.chunks.range(..=k).next_back().map(|(b, _)| *b)
            }
            Bound::Unbounded => None,
        };
        let chunks = match from {
            Some(b) => self.chunks.range(b..),
            None => self.chunks.range(..),
        };
        chunks
            .flat_map(move |(_, chunk)| {
                let skip = match start {
                    Bound::Included(k) => chunk.keys.partition_point(|x| *x < k),
                    Bound::Excluded(k) => chunk.keys.partition_point(|x| *x <= k),
                    Bound::Unbounded => 0,
                };
                chunk.keys[skip..].iter().zip(&chunk.vals[skip..])
            })
            .take_while(move |(k, _)| match end {
                Bound::Included(e) => **k <= e,
                Bound::Excluded(e) => **k < e,
                Bound::Unbounded => true,
            })
    }

    /// Bytes of heap this map holds (entry arrays and chunk tree), for tests and accounting.
    pub fn heap_bytes(&self) -> usize {
        let per_chunk = std::mem::size_of::<K>() + std::mem::size_of::<Chunk<K, V>>();
        self.chunks
            .values()
            .map(|c| {
                c.keys.capacity() * std::mem::size_of::<K>()
                    + if std::mem::size_of::<V>() == 0 {
                        0
                    } else {
                        c.vals.capacity() * std::mem::size_of::<V>()
                    }
                    + per_chunk
            })
            .sum()
    }

    /// Panics unless the chunks keep the invariant (tests).
    #[cfg(test)]
    pub fn check(&self) {
        let bounds: Vec<K> = self.chunks.keys().copied().collect();
        let mut total = 0;
        for (n, (b, chunk)) in self.chunks.iter().enumerate() {
            assert!(!chunk.keys.is_empty(), "empty chunk");
            assert_eq!(chunk.keys.len(), chunk.vals.len());
            assert!(chunk.len() <= CHUNK);
            assert!(chunk.keys.windows(2).all(|w| w[0] < w[1]), "unsorted chunk");
            assert!(chunk.keys[0] >= *b, "key below its chunk's bound");
            if let Some(next) = bounds.get(n + 1) {
                assert!(
                    chunk.keys[chunk.len() - 1] < *next,
                    "key past the next bound"
                );
            }
            total += chunk.len();
        }
        assert_eq!(total, self.len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_a_btreemap_through_random_changes() {
        let mut next = crate::engine::test_rng(0x5eed_cafe);
        let mut map: ChunkMap<u64, u64> = ChunkMap::new();
        let mut model: BTreeMap<u64, u64> = BTreeMap::new();
        for step in 0..60_000u64 {
            let r = next() % 100;
            // Mostly ascending keys (as PELs get them), some anywhere.
            let key = if r < 50 { step } else { next() % 70_000 };
            if r < 70 {
                assert_eq!(map.insert(key, step), model.insert(key, step));
            } else {
                assert_eq!(map.remove(&key), model.remove(&key));
                let old = next() % 70_000;
                assert_eq!(map.remove(&old), model.remove(&old));
            }
            if step % 997 == 0 {
                map.check();
                assert!(map.iter().map(|(k, v)| (*k, *v)).eq(model.clone()));
                let (lo, hi) = (next() % 70_000, next() % 70_000);
                let got: Vec<u64> = map.range(lo..=hi).map(|(k, _)| *k).collect();
                let want: Vec<u64> = if lo <= hi {
                    model.range(lo..=hi).map(|(k, _)| *k).collect()
                } else {
                    Vec::new()
                };
                assert_eq!(got, want);
                let got: Vec<u64> = map
                    .range((Bound::Excluded(lo), Bound::Unbounded))
                    .map(|(k, _)| *k)
                    .take(50)
                    .collect();
                let want: Vec<u64> = model
                    .range((Bound::Excluded(lo), Bound::Unbounded))
                    .map(|(k, _)| *k)
                    .take(50)
                    .collect();
                assert_eq!(got, want);
                assert_eq!(map.first(), model.first_key_value());
                assert_eq!(map.last(), model.last_key_value());
            }
            assert_eq!(map.len(), model.len());
        }
        map.check();
        for k in model.keys() {
            assert_eq!(map.get(k), model.get(k));
        }
    }

    #[test]
    fn keys_in_order_fill_chunks_completely() {
        let mut map: ChunkMap<u64, u64> = ChunkMap::new();
        let n = 100_000u64;
        for k in 0..n {
            map.insert(k, k);
        }
        map.check();
        // 16 bytes an entry, plus a little for the chunk tree.
        let per_entry = map.heap_bytes() as f64 / n as f64;
        assert!(per_entry < 17.0, "{per_entry} bytes an entry");
        // Removing the oldest first (XACK) leaves no empty chunk behind.
        for k in 0..n - 10 {
            assert_eq!(map.remove(&k), Some(k));
        }
        map.check();
        assert_eq!(map.len(), 10);
        assert!(
            map.heap_bytes() < 2 * CHUNK * 16 + 200,
            "{}",
            map.heap_bytes()
        );
    }

    #[test]
    fn sparse_removals_merge_chunks() {
        let mut map: ChunkMap<u64, ()> = ChunkMap::new();
        for k in 0..10_000u64 {
            map.insert(k, ());
        }
        for k in (0..10_000u64).filter(|k| k % 50 != 0) {
            map.remove(&k);
        }
        map.check();
        assert_eq!(map.len(), 200);
        // 200 keys merged into chunks of up to 64: a handful of chunks, not 78.
        assert!(map.chunks.len() <= 8, "{} chunks", map.chunks.len());
    }

    /// One step of the property test below.
    #[derive(Debug, Clone)]
    enum Step {
        Insert(u16, u32),
        Remove(u16),
        /// `n` keys from `from` upwards, as a PEL fills.
        Ascending(u16, u16),
        /// Every key in `[from, from + n)`, as XACK of a batch.
        RemoveRun(u16, u16),
        Get(u16),
        Range(Bound<u16>, Bound<u16>),
    }

    fn bound() -> impl proptest::strategy::Strategy<Value = Bound<u16>> {
        use proptest::prelude::*;
        prop_oneof![
            (0u16..1200).prop_map(Bound::Included),
            (0u16..1200).prop_map(Bound::Excluded),
            Just(Bound::Unbounded),
        ]
    }

    fn step() -> impl proptest::strategy::Strategy<Value = Step> {
        use proptest::prelude::*;
        prop_oneof![
            6 => (0u16..1200, any::<u32>()).prop_map(|(k, v)| Step::Insert(k, v)),
            4 => (0u16..1200).prop_map(Step::Remove),
            2 => (0u16..1200, 0u16..400).prop_map(|(k, n)| Step::Ascending(k, n)),
            2 => (0u16..1200, 0u16..400).prop_map(|(k, n)| Step::RemoveRun(k, n)),
            2 => (0u16..1200).prop_map(Step::Get),
            2 => (bound(), bound()).prop_map(|(a, b)| Step::Range(a, b)),
        ]
    }

    /// `model.range(..)` without std's panic on a start past the end (ChunkMap answers
    /// nothing there).
    fn model_range(model: &BTreeMap<u16, u32>, lo: Bound<u16>, hi: Bound<u16>) -> Vec<(u16, u32)> {
        model
            .iter()
            .filter(|(k, _)| (lo, hi).contains(*k))
            .map(|(k, v)| (*k, *v))
            .collect()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 256, ..Default::default() })]

        /// Any sequence of changes leaves the map equal to a `BTreeMap` given the same
        /// changes, answering every lookup and range the same, with its chunks in order.
        #[test]
        fn behaves_as_a_btreemap(steps in proptest::collection::vec(step(), 1..80)) {
            use proptest::{prop_assert, prop_assert_eq};
            let mut map: ChunkMap<u16, u32> = ChunkMap::new();
            let mut model: BTreeMap<u16, u32> = BTreeMap::new();
            for (n, s) in steps.into_iter().enumerate() {
                match s {
                    Step::Insert(k, v) => prop_assert_eq!(map.insert(k, v), model.insert(k, v)),
                    Step::Remove(k) => prop_assert_eq!(map.remove(&k), model.remove(&k)),
                    Step::Ascending(from, len) => {
                        for k in from..from.saturating_add(len) {
                            prop_assert_eq!(map.insert(k, n as u32), model.insert(k, n as u32));
                        }
                    }
                    Step::RemoveRun(from, len) => {
                        for k in from..from.saturating_add(len) {
                            prop_assert_eq!(map.remove(&k), model.remove(&k));
                        }
                    }
                    Step::Get(k) => {
                        prop_assert_eq!(map.get(&k), model.get(&k));
                        prop_assert_eq!(map.contains_key(&k), model.contains_key(&k));
                        if let Some(v) = map.get_mut(&k) {
                            *v = v.wrapping_add(1);
                        }
                        if let Some(v) = model.get_mut(&k) {
                            *v = v.wrapping_add(1);
                        }
                    }
                    Step::Range(lo, hi) => {
                        let got: Vec<(u16, u32)> = map.range((lo, hi)).map(|(k, v)| (*k, *v)).collect();
                        prop_assert_eq!(got, model_range(&model, lo, hi));
                    }
                }
                map.check();
                prop_assert_eq!(map.len(), model.len());
                prop_assert_eq!(map.is_empty(), model.is_empty());
                prop_assert_eq!(map.first(), model.first_key_value());
                prop_assert_eq!(map.last(), model.last_key_value());
            }
            prop_assert!(map.iter().map(|(k, v)| (*k, *v)).eq(model.iter().map(|(k, v)| (*k, *v))));
            let rebuilt: ChunkMap<u16, u32> = {
                let mut m = ChunkMap::new();
                for (k, v) in &model {
                    m.insert(*k, *v);
                }
                m
            };
            prop_assert!(map == rebuilt, "equal however chunked");
            map.clear();
            map.check();
            prop_assert!(map.is_empty() && map.heap_bytes() == 0);
        }
    }
}
