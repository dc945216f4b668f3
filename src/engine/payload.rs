//! Entry payloads: where an entry's field/value pairs live and how they are read back.
//!
//! An entry's fields are stored once, in the log record that added it. The index keeps
//! only a [`PayloadHandle`] per entry — the payload's position in the log, its length and
//! its CRC32C — so memory grows with the number of entries, not their size. The bytes
//! are the record's own encoding of the field arguments (`u32 len | bytes` each), so a
//! payload read from disk needs no conversion.
//!
//! Between an XADD and the moment its record is appended (the end of the command's
//! critical section) the payload is *resident*: held here under a temporary key. The
//! commit then *locates* it at its log position and moves it to the cache, a bounded
//! map ordered by log position that keeps the newest payloads — the hot tail readers
//! usually want — and evicts the oldest once they are on disk. Anything else is read
//! from its segment with one `pread` and checked against its CRC, so a damaged byte is
//! reported, never returned.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};

/// Marks a handle whose payload is resident (not located in the log yet).
const RESIDENT: u64 = 1 << 63;

/// Where an entry's payload is: a log position (or a resident key), length and checksum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PayloadHandle {
    /// Packed log position (segment << 40 | offset), or `RESIDENT | key`.
    pub at: u64,
    /// Bytes of the encoded field/value pairs.
    pub len: u32,
    /// CRC32C of those bytes.
    pub crc: u32,
}

impl PayloadHandle {
    /// True while the payload waits for its log record.
    pub fn is_resident(&self) -> bool {
        self.at & RESIDENT != 0
    }
}

/// An entry's field/value pairs, packed as `u32 len | bytes` per field and value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payload {
    data: Bytes,
}

impl Payload {
    /// Packs a flat `field, value, field, value…` vector.
    pub fn pack(fields: &[Bytes]) -> Self {
        let mut data = Vec::with_capacity(packed_len(fields));
        write_packed(&mut data, fields);
        Payload {
            data: Bytes::from(data),
        }
    }

    /// Wraps bytes already in the packed form.
    pub fn from_packed(data: Bytes) -> Self {
        Payload { data }
    }

    /// The packed bytes.
    pub fn packed(&self) -> &Bytes {
        &self.data
    }

    /// The flat field/value vector (slices of the packed payload, no copy).
    pub fn fields(&self) -> Vec<Bytes> {
        let mut out = Vec::new();
        let mut p = 0;
        while p + 4 <= self.data.len() {
            let len = u32::from_le_bytes([
                self.data[p],
                self.data[p + 1],
                self.data[p + 2],
                self.data[p + 3],
            ]) as usize;
            let end = (p + 4 + len).min(self.data.len());
            out.push(self.data.slice(p + 4..end));
            p = end;
        }
        out
    }
}

/// Bytes of `fields` in packed form.
fn packed_len(fields: &[Bytes]) -> usize {
    fields.iter().map(|f| 4 + f.len()).sum()
}

fn write_packed(out: &mut impl bytes::BufMut, fields: &[Bytes]) {
    for f in fields {
        out.put_u32_le(f.len() as u32);
        out.put_slice(f);
    }
}

/// CRC32C of `fields` in packed form, without packing them.
pub fn fields_crc(fields: &[Bytes]) -> u32 {
    fields.iter().fold(0u32, |crc, a| {
        let crc = crc32c::crc32c_append(crc, &(a.len() as u32).to_le_bytes());
        crc32c::crc32c_append(crc, a)
    })
}

/// True when `packed` is `fields` in packed form.
fn packed_eq(packed: &[u8], fields: &[Bytes]) -> bool {
    let mut rest = packed;
    for f in fields {
        let Some((len, tail)) = rest.split_first_chunk::<4>() else {
            return false;
        };
        if u32::from_le_bytes(*len) as usize != f.len() || !tail.starts_with(f) {
            return false;
        }
        rest = &tail[f.len()..];
    }
    rest.is_empty()
}

/// Bytes of one arena chunk.
const CHUNK: usize = 64 * 1024;

/// Payloads bigger than this get an allocation of their own.
const CHUNK_MAX_PAYLOAD: usize = CHUNK / 8;

/// Where new payloads are packed: consecutive slices of shared chunks.
///
/// A payload in its own allocation pays the allocator's size-class rounding: a
/// 1 KiB value packs to 1,034 bytes and takes a 1,280-byte block, a quarter more than
/// the cache counts. Packed back to back into 64 KiB chunks, the cache holds about
/// what it counts. The cache evicts in log order, which is the order payloads are
/// packed in, so a chunk is freed as a whole soon after its last payload leaves.
#[derive(Default)]
struct Arena {
    chunk: bytes::BytesMut,
}

impl Arena {
    fn pack(&mut self, fields: &[Bytes]) -> Bytes {
        let size = packed_len(fields);
        if size > CHUNK_MAX_PAYLOAD {
            return Payload::pack(fields).data;
        }
        if self.chunk.capacity() - self.chunk.len() < size {
            self.chunk = bytes::BytesMut::with_capacity(CHUNK);
        }
        write_packed(&mut self.chunk, fields);
        self.chunk.split().freeze()
    }
}

/// Reads payload bytes from the log; implemented over the segment files by the server.
pub trait PayloadSource: Send + Sync {
    /// Reads `len` bytes at packed log position `pos`.
    fn read(&self, pos: u64, len: usize) -> Result<Vec<u8>, String>;
    /// Packed position up to which the log is in its files (readable with `read`).
    fn written_pos(&self) -> u64;
}

/// A payload could not be produced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// Reading the segment failed.
    #[error("ERR cannot read a stream entry from the log (segment {segment}, offset {offset}): {reason}")]
    Unreadable {
        segment: u64,
        offset: u64,
        reason: String,
    },
    /// The bytes read do not match the checksum stored with the entry.
    #[error("ERR stream entry damaged on disk (segment {segment}, offset {offset}: checksum mismatch); run 'rill check' on the data directory")]
    Damaged { segment: u64, offset: u64 },
}

/// Counters for INFO.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PayloadStats {
    /// Bytes of payloads in the cache.
    pub cache_bytes: u64,
    /// Payloads in the cache.
    pub cache_entries: u64,
    /// Payloads waiting for their record (normally 0 between commands).
    pub resident: u64,
    /// Reads served from memory.
    pub hits: u64,
    /// Reads that went to disk.
    pub misses: u64,
}

/// The resident keys are consecutive counters no client chooses: see [`U64Keys`].
type SeqKeys = crate::engine::hash::U64Keys;

/// The located payloads in memory, ordered by log position.
///
/// Payloads are located in log order (records are appended, and located, one critical
/// section at a time), and evicted oldest first, so a deque sorted by position takes
/// both at its ends in O(1), where a B-tree paid a descent for each (3–4 % of the CPU of
/// a pipelined XADD load). Lookups are a binary search. An insert out of order (none is
/// known to happen) still keeps the order, at the cost of a shift.
#[derive(Default)]
struct Cache {
    items: VecDeque<(u64, Bytes)>,
}

impl Cache {
    fn search(&self, pos: u64) -> Result<usize, usize> {
        self.items.binary_search_by_key(&pos, |(p, _)| *p)
    }

    fn get(&self, pos: &u64) -> Option<&Bytes> {
        self.search(*pos).ok().map(|i| &self.items[i].1)
    }

    /// Inserts (or replaces) the payload at `pos`; returns the one replaced.
    fn insert(&mut self, pos: u64, data: Bytes) -> Option<Bytes> {
        if self.items.back().is_none_or(|(last, _)| *last < pos) {
            self.items.push_back((pos, data));
            return None;
        }
        match self.search(pos) {
            Ok(i) => Some(std::mem::replace(&mut self.items[i].1, data)),
            Err(i) => {
                self.items.insert(i, (pos, data));
                None
            }
        }
    }

    fn first_pos(&self) -> Option<u64> {
        self.items.front().map(|(p, _)| *p)
    }

    fn pop_first(&mut self) -> Option<Bytes> {
        self.items.pop_front().map(|(_, d)| d)
    }

    fn len(&self) -> usize {
        self.items.len()
    }

    fn clear(&mut self) {
        self.items = VecDeque::new();
    }
}

#[derive(Default)]
struct Inner {
    /// Resident payloads by key, in insertion order; a handful at a time (one
    /// critical section's XADDs), so a vector beats a hash map.
    /// By key: located one by one as their records are appended (a hash map, not a
    /// list: an EXEC of n XADDs locates n of them, which a linear search made O(n²)).
    resident: HashMap<u64, Bytes, SeqKeys>,
    /// Resident keys whose entries could not be found by key when their record was
    /// appended (the stream was renamed in the same transaction): where the payload
    /// went. Rare; rewritten into the slots at the next checkpoint load.
    forwarded: HashMap<u64, u64>,
    next_resident: u64,
    /// Where the next inserted payload already is in the log (replay): position, length.
    preset: Option<(u64, u32, u32)>,
    /// The preset was taken by an insert.
    preset_taken: bool,
    arena: Arena,
    cache: Cache,
    cache_bytes: usize,
    budget: usize,
    hits: u64,
    misses: u64,
}

/// Resident payloads, the cache, and the way to disk. One per keyspace; used under
/// the keyspace lock, so its own mutex is never contended.
#[derive(Default)]
pub struct PayloadStore {
    inner: Mutex<Inner>,
    source: RwLock<Option<Arc<dyn PayloadSource>>>,
}

impl std::fmt::Debug for PayloadStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PayloadStore")
            .field("stats", &self.stats())
            .finish()
    }
}

impl PayloadStore {
    /// A store whose cache keeps at most `budget` bytes of located payloads.
    pub fn new(budget: usize) -> Self {
        let store = PayloadStore::default();
        store.inner.lock().budget = budget;
        store
    }

    /// Connects the store to the log files.
    pub fn set_source(&self, source: Arc<dyn PayloadSource>) {
        *self.source.write() = Some(source);
    }

    /// Changes the cache budget (CONFIG SET cache-size).
    pub fn set_budget(&self, budget: usize) {
        self.inner.lock().budget = budget;
        self.evict();
    }

    /// Replay: the next [`PayloadStore::insert`] is of a payload already in the log at
    /// `at` (`len` packed bytes with checksum `crc`, computed by the caller over those
    /// bytes in one pass), so it gets that position at once — no copy, no resident stage,
    /// no cache entry (replay fills no cache: most of what it reads is old).
    /// [`PayloadStore::take_preset`] says afterwards whether an insert used it.
    pub fn preset(&self, at: u64, len: u32, crc: u32) {
        let mut inner = self.inner.lock();
        inner.preset = Some((at, len, crc));
        inner.preset_taken = false;
    }

    /// True when an insert took the preset position; clears it either way.
    pub fn take_preset(&self) -> bool {
        let mut inner = self.inner.lock();
        inner.preset = None;
        std::mem::take(&mut inner.preset_taken)
    }

    /// Takes a new entry's fields; the handle is resident until the commit locates it
    /// ([`PayloadStore::locate_if_same`]).
    pub fn insert(&self, fields: &[Bytes]) -> PayloadHandle {
        let mut inner = self.inner.lock();
        if let Some((at, len, crc)) = inner.preset.take() {
            if packed_len(fields) == len as usize {
                inner.preset_taken = true;
                return PayloadHandle { at, len, crc };
            }
        }
        let data = inner.arena.pack(fields);
        inner.next_resident = (inner.next_resident + 1) & !RESIDENT;
        let key = inner.next_resident;
        let handle = PayloadHandle {
            at: RESIDENT | key,
            len: data.len() as u32,
            crc: crc32c::crc32c(&data),
        };
        inner.resident.insert(key, data);
        handle
    }

    /// The payload of `h`: from memory if it is resident or cached, else from the log.
    pub fn fetch(&self, h: PayloadHandle) -> Result<Payload, PayloadError> {
        let h = self.resolve(h);
        {
            let mut inner = self.inner.lock();
            let found = if h.is_resident() {
                let key = h.at & !RESIDENT;
                inner.resident.get(&key).cloned()
            } else {
                inner.cache.get(&h.at).cloned()
            };
            if let Some(data) = found {
                inner.hits += 1;
                return Ok(Payload { data });
            }
            inner.misses += 1;
        }
        let (segment, offset) = crate::storage::log::unpack_pos(h.at);
        if h.is_resident() {
            return Err(PayloadError::Unreadable {
                segment,
                offset,
                reason: "payload not in memory".into(),
            });
        }
        let source = self.source.read().clone();
        let Some(source) = source else {
            return Err(PayloadError::Unreadable {
                segment,
                offset,
                reason: "no log to read from".into(),
            });
        };
        let data =
            source
                .read(h.at, h.len as usize)
                .map_err(|reason| PayloadError::Unreadable {
                    segment,
                    offset,
                    reason,
                })?;
        if crc32c::crc32c(&data) != h.crc {
            return Err(PayloadError::Damaged { segment, offset });
        }
        Ok(Payload {
            data: Bytes::from(data),
        })
    }

    /// The payload of a resident handle now lives at log position `pos`; returns the
    /// located handle. A handle that is not resident (replay of a record whose entry
    /// was loaded from a checkpoint, a relocation) just moves to `pos`.
    pub fn locate(&self, h: PayloadHandle, pos: u64) -> PayloadHandle {
        let mut inner = self.inner.lock();
        if h.is_resident() {
            let key = h.at & !RESIDENT;
            if let Some(data) = inner.resident.remove(&key) {
                inner.cache_bytes += data.len();
                if let Some(old) = inner.cache.insert(pos, data) {
                    inner.cache_bytes -= old.len();
                }
            }
        }
        PayloadHandle { at: pos, ..h }
    }

    /// Locates the payload of `h` at `pos` if it is the payload of `fields` (packed, `len`
    /// bytes): a resident payload must hold these very bytes (compared, and then moved to
    /// the cache at `pos`); one already located (replay of a record whose entry a
    /// checkpoint loaded, a relocation) must have the same length and checksum. False
    /// leaves everything as it was.
    ///
    /// One lock and a byte comparison, where checking by checksum first and locating
    /// after cost a second CRC pass over every payload and a second lock.
    pub fn locate_if_same(&self, h: &PayloadHandle, pos: u64, fields: &[Bytes], len: u32) -> bool {
        if h.len != len {
            return false;
        }
        if !h.is_resident() {
            // A payload moved from an older segment (compaction's relocation, or its
            // replay): its new copy may not be written yet when a reader comes, so the
            // bytes wait in the cache (which keeps what is not written) as new ones do.
            if fields_crc(fields) != h.crc {
                return false;
            }
            let data = Payload::pack(fields).packed().clone();
            let mut inner = self.inner.lock();
            inner.cache_bytes += data.len();
            if let Some(old) = inner.cache.insert(pos, data) {
                inner.cache_bytes -= old.len();
            }
            return true;
        }
        let mut inner = self.inner.lock();
        let key = h.at & !RESIDENT;
        let same = inner
            .resident
            .get(&key)
            .is_some_and(|data| packed_eq(data, fields));
        if !same {
            return false;
        }
        if let Some(data) = inner.resident.remove(&key) {
            inner.cache_bytes += data.len();
            if let Some(old) = inner.cache.insert(pos, data) {
                inner.cache_bytes -= old.len();
            }
        }
        true
    }

    /// True when some entries' payloads were forwarded (see [`PayloadStore::settle_resident`]).
    pub fn has_forwarded(&self) -> bool {
        !self.inner.lock().forwarded.is_empty()
    }

    /// The handle with a forwarded resident key replaced by its log position.
    pub fn resolve(&self, h: PayloadHandle) -> PayloadHandle {
        if !h.is_resident() {
            return h;
        }
        match self.inner.lock().forwarded.get(&(h.at & !RESIDENT)) {
            Some(&pos) => PayloadHandle { at: pos, ..h },
            None => h,
        }
    }

    /// Settles the payloads still resident after a record's entries were located by
    /// key. `spans` are the record's unlocated payloads (log position, packed bytes).
    /// A resident payload equal to one of them belongs to an entry that moved (RENAME
    /// in the same transaction): it is forwarded there (equal bytes, so any equal span
    /// is right). The rest belonged to entries removed in the same critical section
    /// and are dropped. Called after a successful commit or replay.
    pub fn settle_resident(&self, spans: &[(u64, Bytes)]) {
        let mut inner = self.inner.lock();
        if inner.resident.is_empty() {
            return;
        }
        let resident = std::mem::take(&mut inner.resident);
        let by_bytes: HashMap<&Bytes, u64> = spans.iter().map(|(pos, b)| (b, *pos)).collect();
        for (key, data) in resident {
            if let Some(&pos) = by_bytes.get(&data) {
                inner.forwarded.insert(key, pos);
                inner.cache_bytes += data.len();
                if let Some(old) = inner.cache.insert(pos, data) {
                    inner.cache_bytes -= old.len();
                }
            }
        }
    }

    /// Drops the oldest cached payloads until the cache fits its budget. Payloads the
    /// log writer has not written yet stay: they cannot be read back from disk.
    pub fn evict(&self) {
        {
            let inner = self.inner.lock();
            if inner.cache_bytes <= inner.budget {
                return;
            }
        }
        let written = self.source.read().as_ref().map_or(0, |s| s.written_pos());
        let mut inner = self.inner.lock();
        while inner.cache_bytes > inner.budget {
            match inner.cache.first_pos() {
                Some(pos) if pos < written => {}
                _ => break,
            }
            if let Some(data) = inner.cache.pop_first() {
                inner.cache_bytes -= data.len();
            }
        }
    }

    /// Empties the cache (FLUSHALL).
    pub fn clear_cache(&self) {
        let mut inner = self.inner.lock();
        inner.cache.clear();
        inner.cache_bytes = 0;
    }

    /// Counters for INFO.
    pub fn stats(&self) -> PayloadStats {
        let inner = self.inner.lock();
        PayloadStats {
            cache_bytes: inner.cache_bytes as u64,
            cache_entries: inner.cache.len() as u64,
            resident: inner.resident.len() as u64,
            hits: inner.hits,
            misses: inner.misses,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Mem(Mutex<Vec<u8>>);

    impl PayloadSource for Mem {
        fn read(&self, pos: u64, len: usize) -> Result<Vec<u8>, String> {
            let (_, off) = crate::storage::log::unpack_pos(pos);
            let d = self.0.lock();
            d.get(off as usize..off as usize + len)
                .map(|s| s.to_vec())
                .ok_or_else(|| "short read".to_string())
        }
        fn written_pos(&self) -> u64 {
            crate::storage::log::pack_pos(1, self.0.lock().len() as u64)
        }
    }

    fn fields(v: &str) -> Vec<Bytes> {
        vec![
            Bytes::from_static(b"f"),
            Bytes::copy_from_slice(v.as_bytes()),
        ]
    }

    #[test]
    fn resident_then_cached_then_read_from_disk_with_crc_check() {
        let disk = Arc::new(Mem(Mutex::new(Vec::new())));
        let store = PayloadStore::new(0);
        store.set_source(disk.clone());
        let h = store.insert(&fields("hello"));
        assert!(h.is_resident());
        assert_eq!(store.fetch(h).unwrap().fields(), fields("hello"));
        // The record lands at offset 100 of segment 1; not written yet, so it stays cached.
        let packed = Payload::pack(&fields("hello")).data;
        let pos = crate::storage::log::pack_pos(1, 100);
        let h = store.locate(h, pos);
        store.evict();
        assert_eq!(store.stats().cache_entries, 1);
        // Written: evictable (budget 0), then served from "disk".
        {
            let mut d = disk.0.lock();
            d.resize(100, 0);
            d.extend_from_slice(&packed);
        }
        store.evict();
        assert_eq!(store.stats().cache_entries, 0);
        assert_eq!(store.fetch(h).unwrap().fields(), fields("hello"));
        assert_eq!(store.stats().misses, 1);
        // A flipped byte is reported, not returned.
        disk.0.lock()[105] ^= 1;
        assert!(matches!(
            store.fetch(h),
            Err(PayloadError::Damaged {
                segment: 1,
                offset: 100
            })
        ));
    }

    /// A payload relocated out of an older segment (compaction) is readable at its new
    /// place before the log writer has written the record that holds it: the bytes wait in
    /// the cache. (Before, a read in that window failed with "not written yet".)
    #[test]
    fn a_relocated_payload_is_readable_before_its_new_copy_is_written() {
        let disk = Arc::new(Mem(Mutex::new(Vec::new())));
        let store = PayloadStore::new(0);
        store.set_source(disk.clone());
        let packed = Payload::pack(&fields("moved")).data;
        {
            let mut d = disk.0.lock();
            d.resize(10, 0);
            d.extend_from_slice(&packed);
        }
        let old = store.locate(
            store.insert(&fields("moved")),
            crate::storage::log::pack_pos(1, 10),
        );
        store.evict();
        assert!(!old.is_resident());
        // Relocated to offset 1000, past what is written.
        let new = crate::storage::log::pack_pos(1, 1000);
        assert!(store.locate_if_same(&old, new, &fields("moved"), old.len));
        let moved = PayloadHandle { at: new, ..old };
        store.evict();
        assert_eq!(store.fetch(moved).unwrap().fields(), fields("moved"));
        // A relocation whose fields are not the entry's is refused and caches nothing.
        let before = store.stats().cache_entries;
        assert!(!store.locate_if_same(&old, new + 100, &fields("other"), old.len));
        assert_eq!(store.stats().cache_entries, before);
    }

    /// Payloads share arena chunks (big ones get their own allocation) and each reads
    /// back exactly, however they straddle chunk boundaries.
    #[test]
    fn arena_packs_payloads_back_to_back() {
        let store = PayloadStore::new(1 << 30);
        let sizes = [
            0,
            1,
            1000,
            CHUNK_MAX_PAYLOAD - 20,
            CHUNK_MAX_PAYLOAD + 1,
            3,
            CHUNK,
        ];
        let mut handles = Vec::new();
        for round in 0..40 {
            for (i, size) in sizes.iter().enumerate() {
                let v = format!("{round}-{i}-{}", "x".repeat(*size));
                handles.push((store.insert(&fields(&v)), v));
            }
        }
        for (h, v) in &handles {
            assert_eq!(store.fetch(*h).expect("resident").fields(), fields(v));
        }
        // Small payloads really are slices of one chunk: consecutive addresses.
        let a = store.fetch(handles[0].0).expect("resident");
        let b = store.fetch(handles[1].0).expect("resident");
        assert_eq!(
            a.packed().as_ptr() as usize + a.packed().len(),
            b.packed().as_ptr() as usize
        );
    }

    #[test]
    fn unlocated_resident_payloads_are_discarded() {
        let store = PayloadStore::new(1 << 20);
        let h = store.insert(&fields("x"));
        store.settle_resident(&[]);
        assert!(store.fetch(h).is_err());
        assert_eq!(store.stats().resident, 0);
    }

    #[test]
    fn cache_keeps_log_order_whatever_the_insert_order() {
        let mut c = Cache::default();
        for pos in [10u64, 20, 30] {
            assert!(c.insert(pos, Bytes::from(pos.to_string())).is_none());
        }
        // Out of order and a replacement: still sorted, replaced value returned.
        assert!(c.insert(15, Bytes::from_static(b"15")).is_none());
        assert_eq!(
            c.insert(20, Bytes::from_static(b"twenty")),
            Some(Bytes::from_static(b"20"))
        );
        assert_eq!(c.get(&20), Some(&Bytes::from_static(b"twenty")));
        assert_eq!(c.get(&25), None);
        let order: Vec<u64> = c.items.iter().map(|(p, _)| *p).collect();
        assert_eq!(order, vec![10, 15, 20, 30]);
        assert_eq!(c.first_pos(), Some(10));
        assert_eq!(c.pop_first(), Some(Bytes::from_static(b"10")));
        assert_eq!(c.len(), 3);
    }

    #[test]
    fn locate_if_same_moves_only_the_same_bytes() {
        let store = PayloadStore::new(1 << 20);
        let h = store.insert(&fields("hello"));
        let len = h.len;
        // Other bytes of the same length: not this entry's payload; nothing moves.
        assert!(!store.locate_if_same(&h, 100, &fields("hellO"), len));
        assert!(!store.locate_if_same(&h, 100, &fields("hello"), len + 1));
        assert_eq!(store.stats().resident, 1);
        // The same bytes: moved to the cache at the position.
        assert!(store.locate_if_same(&h, 100, &fields("hello"), len));
        assert_eq!(store.stats().resident, 0);
        let located = PayloadHandle { at: 100, ..h };
        assert_eq!(
            store.fetch(located).expect("cached").fields(),
            fields("hello")
        );
        // A located handle (replay over a checkpoint): checked by length and checksum.
        assert!(store.locate_if_same(&located, 200, &fields("hello"), len));
        assert!(!store.locate_if_same(&located, 200, &fields("world"), len));
    }

    #[test]
    fn a_preset_insert_takes_the_position_and_caches_nothing() {
        let store = PayloadStore::new(1 << 20);
        let packed = Payload::pack(&fields("v")).packed().clone();
        store.preset(4242, packed.len() as u32, crc32c::crc32c(&packed));
        let h = store.insert(&fields("v"));
        assert!(store.take_preset());
        assert_eq!(
            (h.at, h.len, h.crc),
            (4242, packed.len() as u32, fields_crc(&fields("v")))
        );
        assert_eq!(store.stats().resident, 0);
        assert_eq!(store.stats().cache_entries, 0);
        // Unused (or of another length): cleared, and the next insert is resident as usual.
        store.preset(4343, 1, 0);
        assert!(!store.take_preset());
        assert!(store.insert(&fields("w")).is_resident());
    }
}
