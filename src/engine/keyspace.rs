//! Databases → keys → values, with expiry, WATCH bookkeeping and the list of keys
//! that became "ready" for blocked readers.
//!
//! The keyspace is guarded by one lock in the server; every command runs with it
//! held, so the bookkeeping here needs no synchronisation of its own.
//!
//! # How a key is stored
//!
//! A database is a `hashbrown` table of 16-byte `Slot`s, plus the SCAN order. A
//! string key is one allocation holding the key and the value side by side
//! (`[key length varint][key][value]`); a stream key is a box with the key and the
//! stream. A `HashMap<Bytes, Value>` kept a 32-byte `Bytes` key and a 40-byte value per
//! slot, and each `Bytes` its own allocation and shared header: with the SCAN index that
//! made about 310 bytes a plain key, against Redis's 69
//! (`bench/results/2026-12-07-memory-per-object.md`). Readers get a [`ValueRef`]
//! (a string as `&[u8]`), so GET copies a string into its reply instead of sharing it:
//! one `memcpy` of a value Redis too copies into its output buffer.
//!
//! SCAN's cursor is a key's hash: [`Db`] keeps the hashes of its keys in order (a
//! [`ChunkMap`], about 12 bytes a key) and finds the keys of a hash in the table, so a
//! scan returns every key present for the whole iteration, whatever the table's
//! resizes do. The hash is the table's own (seeded per database, so nobody outside can
//! aim keys at one bucket); cursors are valid for the life of the process, as Redis's.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::BuildHasher;

use bytes::Bytes;
use hashbrown::HashTable;

use crate::engine::chunkmap::ChunkMap;
use crate::engine::hash::{KeyHash, U64Keys};
use crate::engine::id::StreamId;
use crate::engine::stream::Stream;

/// A value to store under a key (what `Keyspace::insert` takes and a removal gives back).
#[derive(Debug)]
pub enum Value {
    /// A stream: Rill's reason to exist.
    Stream(Box<Stream>),
    /// A plain string, so that WRONGTYPE and mixed keyspaces behave as in Redis.
    String(Bytes),
}

impl Value {
    /// The name TYPE answers and SCAN's TYPE filter matches.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Stream(_) => "stream",
            Value::String(_) => "string",
        }
    }
}

/// A stored value, borrowed from its database.
#[derive(Debug, Clone, Copy)]
pub enum ValueRef<'a> {
    /// A stream.
    Stream(&'a Stream),
    /// A plain string's bytes.
    String(&'a [u8]),
}

impl ValueRef<'_> {
    /// The name TYPE answers and SCAN's TYPE filter matches.
    pub fn type_name(self) -> &'static str {
        match self {
            ValueRef::Stream(_) => "stream",
            ValueRef::String(_) => "string",
        }
    }
}

/// A key and its value as a database's table stores them; see the module docs.
#[derive(Debug)]
enum Slot {
    /// `[key length, LEB128][key][value]`, in one allocation.
    String(Box<[u8]>),
    /// A stream and its key.
    Stream(Box<StreamSlot>),
}

#[derive(Debug)]
struct StreamSlot {
    key: Box<[u8]>,
    stream: Box<Stream>,
}

// The table's slot stays two words (the stream box sits where the string's length is).
const _: () = assert!(std::mem::size_of::<Slot>() == 16);

/// Splits a packed string slot into key and value (both empty if it is malformed,
/// which [`Slot::new`] never makes).
fn unpack(packed: &[u8]) -> (&[u8], &[u8]) {
    let mut len: usize = 0;
    for (i, &b) in packed.iter().enumerate().take(10) {
        len |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            let start = i + 1;
            return match packed.get(start..start.saturating_add(len)) {
                Some(key) => (key, &packed[start + len..]),
                None => (&[], &[]),
            };
        }
    }
    (&[], &[])
}

impl Slot {
    fn new(key: &[u8], value: Value) -> Slot {
        match value {
            Value::String(v) => {
                // Exactly the bytes needed: a shrink afterwards (`into_boxed_slice`) can
                // leave malloc's chunk at the larger size (16 bytes a key at 1 M keys).
                let varint = (usize::BITS - key.len().leading_zeros()).div_ceil(7).max(1);
                let mut packed = Vec::with_capacity(varint as usize + key.len() + v.len());
                let mut len = key.len();
                while len >= 0x80 {
                    packed.push((len as u8 & 0x7f) | 0x80);
                    len >>= 7;
                }
                packed.push(len as u8);
                packed.extend_from_slice(key);
                packed.extend_from_slice(&v);
                debug_assert_eq!(packed.len(), packed.capacity());
                Slot::String(packed.into_boxed_slice())
            }
            Value::Stream(stream) => Slot::Stream(Box::new(StreamSlot {
                key: key.into(),
                stream,
            })),
        }
    }

    fn key(&self) -> &[u8] {
        match self {
            Slot::String(packed) => unpack(packed).0,
            Slot::Stream(s) => &s.key,
        }
    }

    fn value(&self) -> ValueRef<'_> {
        match self {
            Slot::String(packed) => ValueRef::String(unpack(packed).1),
            Slot::Stream(s) => ValueRef::Stream(&s.stream),
        }
    }

    fn stream_mut(&mut self) -> Option<&mut Stream> {
        match self {
            Slot::String(_) => None,
            Slot::Stream(s) => Some(&mut s.stream),
        }
    }

    /// The value, owned again (a string shares the slot's allocation).
    fn into_value(self) -> Value {
        match self {
            Slot::String(packed) => {
                let value_len = unpack(&packed).1.len();
                let packed = Bytes::from(packed);
                Value::String(packed.slice(packed.len() - value_len..))
            }
            Slot::Stream(s) => Value::Stream(s.stream),
        }
    }
}

/// One numbered database (SELECT n).
#[derive(Debug, Default)]
pub struct Db {
    /// The keys with their values, by `hasher`'s hash of the key.
    table: HashTable<Slot>,
    hasher: KeyHash,
    /// The hashes of the keys in `table`, in order: SCAN's cursors (see the module docs).
    scan_order: ChunkMap<u64, ()>,
    expires: HashMap<Bytes, u64, KeyHash>,
    /// The same TTLs ordered by time: active expiry takes the due keys from the front
    /// instead of scanning every key with a TTL (which cost 18% CPU idle with 2 M keys).
    expiry_order: BTreeSet<(u64, Bytes)>,
    /// Keys by a caller-defined group (cluster mode: the hash slot), when enabled.
    groups: Option<KeyGroups>,
}

/// A function that puts a key in one of 65536 groups. The engine does not know what a
/// group is; cluster mode passes the hash slot function, so CLUSTER COUNTKEYSINSLOT and
/// GETKEYSINSLOT read an index instead of scanning every key.
pub type KeyGroupFn = fn(&[u8]) -> u16;

/// The keys of a database by group, kept in step with its entries.
#[derive(Debug)]
struct KeyGroups {
    group_of: KeyGroupFn,
    /// (group, key): a group's keys are one range.
    members: BTreeSet<(u16, Bytes)>,
    /// Keys per group.
    counts: HashMap<u16, usize>,
}

impl KeyGroups {
    fn new(group_of: KeyGroupFn) -> Self {
        KeyGroups {
            group_of,
            members: BTreeSet::new(),
            counts: HashMap::new(),
        }
    }

    fn insert(&mut self, key: &[u8]) {
        let g = (self.group_of)(key);
        if self.members.insert((g, Bytes::copy_from_slice(key))) {
            *self.counts.entry(g).or_default() += 1;
        }
    }

    fn remove(&mut self, key: &[u8]) {
        let g = (self.group_of)(key);
        if self.members.remove(&(g, Bytes::copy_from_slice(key))) {
            if let Some(n) = self.counts.get_mut(&g) {
                *n -= 1;
                if *n == 0 {
                    self.counts.remove(&g);
                }
            }
        }
    }
}

impl Db {
    /// The table's hash of `key`, which is also its SCAN position.
    fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    fn slot(&self, key: &[u8]) -> Option<&Slot> {
        self.table.find(self.hash(key), |s| s.key() == key)
    }

    fn slot_mut(&mut self, key: &[u8]) -> Option<&mut Slot> {
        let h = self.hash(key);
        self.table.find_mut(h, |s| s.key() == key)
    }

    /// The keys whose hash is `h` (almost always one).
    fn keys_with_hash(&self, h: u64) -> impl Iterator<Item = &[u8]> + '_ {
        self.table
            .iter_hash(h)
            .map(Slot::key)
            .filter(move |k| self.hash(k) == h)
    }

    /// Number of keys (expired keys not yet reclaimed included, as DBSIZE in Redis).
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// True when the database holds no key.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// True when `key` holds a value, expired or not (ops apply without a clock).
    pub fn contains_raw(&self, key: &[u8]) -> bool {
        self.slot(key).is_some()
    }

    /// Number of keys with a time to live.
    pub fn expires_len(&self) -> usize {
        self.expires.len()
    }

    /// The expiry time of `key` in Unix ms, if it has one.
    pub fn expire_at(&self, key: &[u8]) -> Option<u64> {
        self.expires.get(key).copied()
    }

    /// Sets `key`'s expiry (`key` is an owned copy, shared by both TTL maps).
    fn set_expiry(&mut self, key: Bytes, at_ms: u64) {
        if let Some(old) = self.expires.insert(key.clone(), at_ms) {
            self.expiry_order.remove(&(old, key.clone()));
        }
        self.expiry_order.insert((at_ms, key));
    }

    /// Clears `key`'s expiry; returns it.
    fn clear_expiry(&mut self, key: &[u8]) -> Option<u64> {
        let (k, at) = self.expires.remove_entry(key)?;
        self.expiry_order.remove(&(at, k));
        Some(at)
    }

    /// Up to `max` keys whose TTL passed at `now_ms`, earliest first.
    fn due(&self, now_ms: u64, max: usize) -> Vec<Bytes> {
        self.expiry_order
            .iter()
            .take_while(|(at, _)| *at <= now_ms)
            .take(max)
            .map(|(_, k)| k.clone())
            .collect()
    }

    fn remove_raw(&mut self, key: &[u8]) -> Option<Value> {
        let h = self.hash(key);
        let slot = match self.table.find_entry(h, |s| s.key() == key) {
            Ok(found) => found.remove().0,
            Err(_) => return None,
        };
        self.clear_expiry(key);
        if self.keys_with_hash(h).next().is_none() {
            self.scan_order.remove(&h);
        }
        if let Some(g) = self.groups.as_mut() {
            g.remove(key);
        }
        Some(slot.into_value())
    }

    fn insert_raw(&mut self, key: &[u8], value: Value) {
        // The slot copies the key: the argument is a slice of a connection's read
        // buffer, and keeping it would keep that whole buffer alive.
        let slot = Slot::new(key, value);
        if let Some(old) = self.slot_mut(key) {
            *old = slot;
            return;
        }
        let h = self.hash(key);
        let hasher = &self.hasher;
        self.table
            .insert_unique(h, slot, |s| hasher.hash_one(s.key()));
        self.scan_order.insert(h, ());
        if let Some(g) = self.groups.as_mut() {
            g.insert(key);
        }
    }

    /// The stream under `key`, expired or not.
    fn stream_mut(&mut self, key: &[u8]) -> Option<&mut Stream> {
        self.slot_mut(key)?.stream_mut()
    }

    /// Number of keys in `group` (0 when groups are not enabled).
    pub fn count_in_group(&self, group: u16) -> usize {
        self.groups
            .as_ref()
            .and_then(|g| g.counts.get(&group).copied())
            .unwrap_or(0)
    }

    /// Up to `max` keys of `group`, in byte order.
    pub fn keys_in_group(&self, group: u16, max: usize) -> Vec<Bytes> {
        let Some(g) = self.groups.as_ref() else {
            return Vec::new();
        };
        g.members
            .range((group, Bytes::new())..)
            .take_while(|(gr, _)| *gr == group)
            .take(max)
            .map(|(_, k)| k.clone())
            .collect()
    }

    /// Up to `count` keys from `cursor` on (more when keys share a hash), and the
    /// cursor to continue from (0 = done).
    pub fn scan(&self, cursor: u64, count: usize) -> (u64, Vec<Bytes>) {
        let mut out = Vec::new();
        for (&h, _) in self.scan_order.range(cursor..) {
            if out.len() >= count {
                return (h, out);
            }
            out.extend(self.keys_with_hash(h).map(Bytes::copy_from_slice));
        }
        (0, out)
    }

    /// The value under `key`, expired or not, without touching anything (digests).
    pub fn peek(&self, key: &[u8]) -> Option<ValueRef<'_>> {
        self.slot(key).map(Slot::value)
    }

    /// All keys (expired ones included; callers filter with `is_expired`).
    pub fn keys(&self) -> impl Iterator<Item = &[u8]> {
        self.table.iter().map(Slot::key)
    }

    /// True when `key` has a TTL that has passed at `now_ms`.
    pub fn is_expired(&self, key: &[u8], now_ms: u64) -> bool {
        matches!(self.expires.get(key), Some(&at) if at <= now_ms)
    }

    /// A key chosen at random, if any: the first in hash order at or after a random
    /// hash, O(log n) (walking the map to a random index cost ~45 ms at 2 M keys).
    pub fn random_key(&self) -> Option<Bytes> {
        use rand::Rng;
        let h: u64 = rand::thread_rng().gen();
        let (&found, _) = self
            .scan_order
            .range(h..)
            .next()
            .or_else(|| self.scan_order.first())?;
        self.keys_with_hash(found)
            .next()
            .map(Bytes::copy_from_slice)
    }

    /// Every key with its value and expiry (checkpoints).
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], ValueRef<'_>, Option<u64>)> {
        self.table.iter().map(|s| {
            let key = s.key();
            (key, s.value(), self.expires.get(key).copied())
        })
    }

    /// An iterator over the streams of this database (INFO, memory accounting).
    pub fn streams(&self) -> impl Iterator<Item = (&[u8], &Stream)> {
        self.table.iter().filter_map(|s| match s {
            Slot::Stream(s) => Some((&s.key[..], &*s.stream)),
            Slot::String(_) => None,
        })
    }
}

/// All databases, plus the cross-cutting bookkeeping commands need.
#[derive(Debug)]
pub struct Keyspace {
    dbs: Vec<Db>,
    /// Keys that got new data (or were deleted) since blocked readers were last served,
    /// in signalling order, and the same keys as a set: a DEL of n keys signals n keys,
    /// which a linear membership test made O(n²) (issue #18, defect 8).
    ready: Vec<(usize, Bytes)>,
    /// The same keys by database, to find a key already queued without copying it.
    ready_set: HashMap<usize, HashSet<Bytes, KeyHash>, U64Keys>,
    /// WATCHed keys → the clients watching them.
    watched: HashMap<(usize, Bytes), HashSet<u64, U64Keys>, KeyHash>,
    /// Clients whose WATCHed keys changed: their next EXEC fails.
    dirty: HashSet<u64, U64Keys>,
    /// Keys removed because their TTL passed (INFO stats `expired_keys`).
    pub expired_keys: u64,
    /// Keys expired since the last `take_expired` (logged as DEL).
    expired_log: Vec<(usize, Bytes)>,
    /// Where the streams' entry payloads are read from (log, cache).
    pub payloads: std::sync::Arc<crate::engine::payload::PayloadStore>,
    /// Streams that may hold IDMP history, for the sweep (Redis's `stream_idmp_keys`).
    /// A hint, not state: a key is added when an IID is recorded, or a stream holding
    /// IIDs is renamed or loaded, and dropped by the sweep once it is gone or holds no
    /// producer. (Redis also adds a renamed or loaded stream whose only producer is an
    /// empty one — left by an XADD IDMP that failed — so its sweep drops that producer
    /// after a restart; here it stays until the stream records an IID, so a restart
    /// changes nothing.)
    idmp_keys: BTreeMap<usize, BTreeSet<Bytes>>,
    /// Whether some stream was ever given its own broker policy: until then, with no
    /// `stream-retention-*` default on, the retention sweep looks at nothing. A hint, never
    /// reset (a stale `true` only costs the sweep a pass over the streams).
    policies_seen: bool,
    /// When entries of groups with a backoff schedule were XNACKed (`Op::NackTimes`, logged
    /// with the XNACK and written by checkpoints): what their backoff step counts from on
    /// the CLAIM path. Pruned by the policy sweep once an entry is no longer NACKed.
    nack_times: HashMap<(usize, Bytes, Bytes), BTreeMap<StreamId, u64>>,
    /// How many clients are blocked, kept by whoever serves them (see
    /// [`Keyspace::gate_signals`]): with none, a write signals nothing, so a plain
    /// XADD does not copy its key and hash it twice for a set nobody reads.
    waiters: Option<std::sync::Arc<std::sync::atomic::AtomicUsize>>,
    /// Whether this node may expire keys itself ([`Keyspace::set_expiry_gate`]): none for a
    /// node alone; on a replica of a replicated shard, true only while it leads.
    expiry_gate: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

/// What the dead-letter sweep found in one group ([`Keyspace::dead_letter_due`]).
#[derive(Debug)]
pub struct DeadLetterDue {
    /// The database.
    pub db: usize,
    /// The source stream.
    pub key: Bytes,
    /// The consumer group.
    pub group: Bytes,
    /// Its dead-letter stream.
    pub dead_letter: Bytes,
    /// The entries to move, oldest delivery first.
    pub entries: Vec<crate::engine::group::PendingEntry>,
}

impl Keyspace {
    /// A keyspace of `databases` empty databases.
    pub fn new(databases: usize) -> Self {
        Keyspace {
            dbs: (0..databases.max(1)).map(|_| Db::default()).collect(),
            ready: Vec::new(),
            ready_set: HashMap::default(),
            watched: HashMap::default(),
            dirty: HashSet::default(),
            expired_keys: 0,
            expired_log: Vec::new(),
            idmp_keys: BTreeMap::new(),
            policies_seen: false,
            nack_times: HashMap::default(),
            payloads: std::sync::Arc::new(crate::engine::payload::PayloadStore::new(64 << 20)),
            waiters: None,
            expiry_gate: None,
        }
    }

    /// Makes expiry conditional on `gate`: while it is false the node expires nothing itself
    /// — keys past their TTL read as absent but stay, neither the lazy nor the active half
    /// removes them, and the IDMP sweep waits — as a replica leaves expiry to its leader,
    /// whose logged deletions it applies (design scale-out.md §3.5; Redis replicas do the
    /// same). A replicated shard's node passes its "leads and takes writes" flag.
    pub fn set_expiry_gate(&mut self, gate: std::sync::Arc<std::sync::atomic::AtomicBool>) {
        self.expiry_gate = Some(gate);
    }

    /// Whether this node expires keys (and IIDs) itself now.
    pub fn expires_locally(&self) -> bool {
        self.expiry_gate
            .as_ref()
            .is_none_or(|g| g.load(std::sync::atomic::Ordering::Acquire))
    }

    /// Number of databases.
    pub fn db_count(&self) -> usize {
        self.dbs.len()
    }

    /// Read access to database `db` (no lazy expiry: callers check `is_expired`).
    pub fn db(&self, db: usize) -> &Db {
        &self.dbs[db]
    }

    /// Removes `key`, whose TTL has passed (the caller checked), counting and logging it.
    fn remove_expired(&mut self, db: usize, key: &[u8]) {
        let was_stream = matches!(self.dbs[db].remove_raw(key), Some(Value::Stream(_)));
        self.expired_keys += 1;
        self.expired_log.push((db, Bytes::copy_from_slice(key)));
        self.signal_modified(db, key);
        if was_stream {
            self.signal_ready(db, key);
        }
    }

    /// The value under `key`, honouring expiry: a key past its TTL is absent — removed, or,
    /// on a node that does not expire keys itself, left for its leader's logged deletion.
    pub fn get(&mut self, db: usize, key: &[u8], now_ms: u64) -> Option<ValueRef<'_>> {
        if self.dbs[db].is_expired(key, now_ms) {
            if self.expires_locally() {
                self.remove_expired(db, key);
            }
            return None;
        }
        self.dbs[db].peek(key)
    }

    /// The stream under `key`, ignoring expiry (compaction reads where payloads are).
    pub fn stream_raw(&self, db: usize, key: &[u8]) -> Option<&Stream> {
        match self.dbs.get(db)?.peek(key)? {
            ValueRef::Stream(s) => Some(s),
            ValueRef::String(_) => None,
        }
    }

    /// Points entry `id` of the stream under `key` at its payload's copy at log position
    /// `at` if `check` accepts the handle it has now; returns that old handle. Where an entry's
    /// bytes are is not state the log records (a record's position says it), so this is
    /// not an op.
    pub fn relocate_payload(
        &mut self,
        db: usize,
        key: &[u8],
        id: crate::engine::id::StreamId,
        at: u64,
        check: impl FnOnce(&crate::engine::payload::PayloadHandle) -> bool,
    ) -> Option<crate::engine::payload::PayloadHandle> {
        self.stream_raw_mut(db, key)?
            .index_mut()
            .relocate_if(id, at, check)
    }

    /// Gives every resident payload of every stream the log position `resolve` finds for it
    /// (before a checkpoint, which records positions only).
    pub fn settle_resident_payloads(
        &mut self,
        resolve: impl Fn(crate::engine::payload::PayloadHandle) -> crate::engine::payload::PayloadHandle,
    ) {
        for db in &mut self.dbs {
            for slot in db.table.iter_mut() {
                if let Some(s) = slot.stream_mut() {
                    s.index_mut().settle_resident(&resolve);
                }
            }
        }
    }

    /// The stream under `key`, ignoring expiry (locating payloads, loading checkpoints:
    /// bookkeeping that must not expire keys or signal anyone).
    pub(in crate::engine) fn stream_raw_mut(
        &mut self,
        db: usize,
        key: &[u8],
    ) -> Option<&mut Stream> {
        self.dbs.get_mut(db)?.stream_mut(key)
    }

    /// The stream under `key`, created empty if missing: for loading a checkpoint's state
    /// records only (a checkpoint is state, not ops). `None` for another type or a `db`
    /// out of range.
    pub fn checkpoint_stream(&mut self, db: usize, key: Bytes) -> Option<&mut Stream> {
        let d = self.dbs.get_mut(db)?;
        if !d.contains_raw(&key) {
            d.insert_raw(&key, Value::Stream(Box::default()));
        }
        d.stream_mut(&key)
    }

    /// Registers the stream under `key` for the IDMP sweep.
    pub fn track_idmp(&mut self, db: usize, key: &[u8]) {
        let keys = self.idmp_keys.entry(db).or_default();
        // Copied only when new (once per stream, not per XADD): the argument is a slice
        // of a connection's read buffer.
        if !keys.contains(key) {
            keys.insert(Bytes::copy_from_slice(key));
        }
    }

    /// The streams whose IDMP history has something to expire at `now_ms` (the sweep
    /// then applies an `IdmpExpire` op to each). Forgets keys that are gone or hold no
    /// producer any more.
    pub fn idmp_due(&mut self, now_ms: u64) -> Vec<(usize, Bytes)> {
        let mut due = Vec::new();
        let dbs = &self.dbs;
        for (db, keys) in self.idmp_keys.iter_mut() {
            keys.retain(|key| {
                let Some(ValueRef::Stream(s)) = dbs.get(*db).and_then(|d| d.peek(key)) else {
                    return false;
                };
                if !s.idmp().has_producers() {
                    return false;
                }
                if s.idmp().expiry_due(now_ms) {
                    due.push((*db, key.clone()));
                }
                true
            });
        }
        self.idmp_keys.retain(|_, keys| !keys.is_empty());
        due
    }

    /// Notes that a stream has its own broker policy (the retention sweep must look).
    pub fn note_policy(&mut self) {
        self.policies_seen = true;
    }

    /// Remembers that `ids` of `key`'s group were XNACKed at `now_ms` (see `nack_times`).
    pub fn note_nacks(
        &mut self,
        db: usize,
        key: &[u8],
        group: &[u8],
        ids: &[StreamId],
        now_ms: u64,
    ) {
        let times = self
            .nack_times
            .entry((
                db,
                Bytes::copy_from_slice(key),
                Bytes::copy_from_slice(group),
            ))
            .or_default();
        for id in ids {
            times.insert(*id, now_ms);
        }
    }

    /// When entries of `key`'s group were XNACKed, as far as this process saw.
    pub fn nack_times(
        &self,
        db: usize,
        key: &[u8],
        group: &[u8],
    ) -> Option<&BTreeMap<StreamId, u64>> {
        if self.nack_times.is_empty() {
            return None;
        }
        self.nack_times.get(&(
            db,
            Bytes::copy_from_slice(key),
            Bytes::copy_from_slice(group),
        ))
    }

    /// Every NACK time held, as the ops that record them (one per key, group and time),
    /// for a checkpoint.
    pub fn nack_time_ops(&self) -> Vec<crate::engine::op::LoggedOp> {
        let mut out = Vec::new();
        for ((db, key, group), times) in &self.nack_times {
            let mut by_time: BTreeMap<u64, Vec<StreamId>> = BTreeMap::new();
            for (id, at) in times {
                by_time.entry(*at).or_default().push(*id);
            }
            for (at_ms, ids) in by_time {
                out.push(crate::engine::op::LoggedOp {
                    db: *db as u16,
                    op: crate::engine::op::Op::NackTimes {
                        key: key.clone(),
                        group: group.clone(),
                        at_ms,
                        ids,
                    },
                });
            }
        }
        out
    }

    /// Forgets NACK times of entries no longer in their group's NACK zone.
    pub fn prune_nack_times(&mut self) {
        let dbs = &self.dbs;
        self.nack_times.retain(|(db, key, group), times| {
            let Some(ValueRef::Stream(s)) = dbs.get(*db).and_then(|d| d.peek(key)) else {
                return false;
            };
            let Some(g) = s.groups.get(&group[..]) else {
                return false;
            };
            times.retain(|id, _| g.pending_entry(*id).is_some_and(|e| e.is_nacked()));
            !times.is_empty()
        });
    }

    /// The trims the retention sweep at `now_ms` decides, per stream: each stream's own
    /// policy over `defaults` (see [`crate::engine::policy`]). Streams past their TTL are
    /// left to expiry. Empty, without a look at any stream, when no default is on and no
    /// stream ever had a policy.
    pub fn retention_due(
        &self,
        now_ms: u64,
        defaults: &crate::engine::policy::RetentionDefaults,
    ) -> Vec<(usize, Bytes, Vec<crate::engine::stream::TrimSpec>)> {
        let mut due = Vec::new();
        if !defaults.is_active() && !self.policies_seen {
            return due;
        }
        for (db, d) in self.dbs.iter().enumerate() {
            for (key, stream) in d.streams() {
                let limits = match stream.policy() {
                    Some(p) => p.effective(defaults),
                    None => *defaults,
                };
                if !limits.is_active() || d.is_expired(key, now_ms) {
                    continue;
                }
                let trims = crate::engine::policy::retention_trims(stream, &limits, now_ms);
                if !trims.is_empty() {
                    due.push((db, Bytes::copy_from_slice(key), trims));
                }
            }
        }
        due
    }

    /// The entries the dead-letter sweep at `now_ms` moves, per group whose policy sets
    /// MAXDELIVER: pending entries whose delivery counter reached it and whose last delivery
    /// failed — XNACKed, or idle for the group's ACKWAIT — at most `max` per group, oldest
    /// delivery first. Empty at once when no stream ever had a policy.
    pub fn dead_letter_due(&self, now_ms: u64, max: usize) -> Vec<DeadLetterDue> {
        let mut due = Vec::new();
        if !self.policies_seen {
            return due;
        }
        for (db, d) in self.dbs.iter().enumerate() {
            for (key, stream) in d.streams() {
                let Some(policy) = stream.policy() else {
                    continue;
                };
                if d.is_expired(key, now_ms) {
                    continue;
                }
                for (name, gp) in &policy.groups {
                    let Some(limit) = gp.delivery_limit() else {
                        continue;
                    };
                    let Some(group) = stream.groups.get(&name[..]) else {
                        continue;
                    };
                    let entries: Vec<_> = group
                        .idle_entries(gp.ack_wait(), now_ms)
                        .filter(|e| e.delivery_count >= limit)
                        .take(max)
                        .collect();
                    if !entries.is_empty() {
                        due.push(DeadLetterDue {
                            db,
                            key: Bytes::copy_from_slice(key),
                            group: name.clone(),
                            dead_letter: gp.dead_letter_key(key),
                            entries,
                        });
                    }
                }
            }
        }
        due
    }

    /// True when `key` exists (and has not expired).
    pub fn contains(&mut self, db: usize, key: &[u8], now_ms: u64) -> bool {
        self.get(db, key, now_ms).is_some()
    }

    /// Stores `value` under `key`, replacing any old value and clearing its TTL.
    pub(in crate::engine) fn insert(&mut self, db: usize, key: Bytes, value: Value) {
        self.dbs[db].clear_expiry(&key);
        self.dbs[db].insert_raw(&key, value);
    }

    /// Deletes `key` whether or not its TTL passed (applying a logged `Del`); signals WATCH
    /// and blocked readers. True when it existed.
    pub(crate) fn remove_now(&mut self, db: usize, key: &[u8]) -> bool {
        let Some(old) = self.dbs[db].remove_raw(key) else {
            return false;
        };
        self.signal_modified(db, key);
        if matches!(old, Value::Stream(_)) {
            self.signal_ready(db, key);
        }
        true
    }

    /// RENAME without a clock (applying a logged `Rename`): moves the value and its TTL,
    /// replacing `to`. False when `from` does not exist.
    pub(crate) fn rename_now(&mut self, db: usize, from: &[u8], to: Bytes) -> bool {
        if from == &to[..] {
            return self.dbs[db].contains_raw(from);
        }
        let ttl = self.dbs[db].expires.get(from).copied();
        let Some(v) = self.dbs[db].remove_raw(from) else {
            return false;
        };
        self.signal_modified(db, from);
        if matches!(v, Value::Stream(_)) {
            self.signal_ready(db, from);
        }
        self.remove_now(db, &to);
        let is_stream = matches!(v, Value::Stream(_));
        if matches!(&v, Value::Stream(s) if s.idmp().iids_tracked() > 0) {
            self.track_idmp(db, &to);
        }
        self.insert(db, to.clone(), v);
        if let Some(at) = ttl {
            self.set_expire(db, &to, at);
        }
        self.signal_modified(db, &to);
        if is_stream {
            self.signal_ready(db, &to);
        }
        true
    }

    /// Sets the absolute expiry of an existing key.
    ///
    /// `at_ms` must not exceed `i64::MAX`: the log records it as `PEXPIREAT`, whose
    /// argument replay parses as a signed integer (the commands check this, as Redis does).
    pub(in crate::engine) fn set_expire(&mut self, db: usize, key: &[u8], at_ms: u64) {
        debug_assert!(
            i64::try_from(at_ms).is_ok(),
            "expiry {at_ms} cannot be logged"
        );
        if self.dbs[db].contains_raw(key) {
            self.dbs[db].set_expiry(Bytes::copy_from_slice(key), at_ms);
        }
    }

    /// Removes the expiry of `key`; true when it had one.
    pub(in crate::engine) fn persist(&mut self, db: usize, key: &[u8]) -> bool {
        self.dbs[db].clear_expiry(key).is_some()
    }

    /// Deletes every key of `db`, signalling watchers and blocked readers of those keys.
    pub(in crate::engine) fn flush_db(&mut self, db: usize) {
        let watched: Vec<Bytes> = self
            .watched
            .keys()
            .filter(|(d, _)| *d == db)
            .map(|(_, k)| k.clone())
            .collect();
        for key in watched {
            if self.dbs[db].contains_raw(&key) {
                self.signal_modified(db, &key);
            }
        }
        let streams: Vec<Bytes> = self.dbs[db]
            .streams()
            .map(|(k, _)| Bytes::copy_from_slice(k))
            .collect();
        for key in streams {
            self.signal_ready(db, &key);
        }
        let groups = self.dbs[db]
            .groups
            .as_ref()
            .map(|g| KeyGroups::new(g.group_of));
        self.dbs[db] = Db {
            groups,
            ..Db::default()
        };
    }

    /// Whether `a` and `b` are in the same key group (cluster mode: the same hash slot);
    /// always true without groups.
    pub fn same_key_group(&self, a: &[u8], b: &[u8]) -> bool {
        match self.dbs.first().and_then(|d| d.groups.as_ref()) {
            Some(g) => (g.group_of)(a) == (g.group_of)(b),
            None => true,
        }
    }

    /// Indexes every database's keys by `group_of` from now on (and the keys already
    /// there), for [`Db::count_in_group`] and [`Db::keys_in_group`].
    pub fn enable_key_groups(&mut self, group_of: KeyGroupFn) {
        for db in &mut self.dbs {
            let mut groups = KeyGroups::new(group_of);
            for key in db.keys() {
                groups.insert(key);
            }
            db.groups = Some(groups);
        }
    }

    /// Removes up to `max` keys whose TTL has passed, earliest first, across the
    /// databases (the active half of expiry; the lazy half is in `get`). Returns how
    /// many it removed and whether due keys remain (the caller decides, by time spent,
    /// whether to go on now — Redis's adaptive cycle).
    pub fn active_expire(&mut self, now_ms: u64, max: usize) -> (usize, bool) {
        if !self.expires_locally() {
            return (0, false);
        }
        let mut removed = 0;
        for db in 0..self.dbs.len() {
            if removed >= max {
                return (removed, true);
            }
            for key in self.dbs[db].due(now_ms, max - removed) {
                if self.dbs[db].is_expired(&key, now_ms) {
                    self.remove_expired(db, &key);
                    removed += 1;
                }
            }
        }
        let more = self
            .dbs
            .iter()
            .any(|d| d.expiry_order.first().is_some_and(|(at, _)| *at <= now_ms));
        (removed, more)
    }

    /// Takes the keys expired since the last call, so they can be logged as DEL.
    pub fn take_expired(&mut self) -> Vec<(usize, Bytes)> {
        std::mem::take(&mut self.expired_log)
    }

    /// Marks clients WATCHing `key` so that their EXEC fails (Redis's `signalModifiedKey`).
    pub fn signal_modified(&mut self, db: usize, key: &[u8]) {
        if self.watched.is_empty() {
            return;
        }
        if let Some(clients) = self.watched.get(&(db, Bytes::copy_from_slice(key))) {
            self.dirty.extend(clients.iter().copied());
        }
    }

    /// Queues `key` so blocked readers are served after the current command.
    /// Signals only while `waiters` (a count of blocked clients, updated under the same
    /// lock as this keyspace) is above zero; without a gate every write signals.
    pub fn gate_signals(&mut self, waiters: std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        self.waiters = Some(waiters);
    }

    pub fn signal_ready(&mut self, db: usize, key: &[u8]) {
        if self
            .waiters
            .as_ref()
            .is_some_and(|w| w.load(std::sync::atomic::Ordering::Relaxed) == 0)
        {
            return;
        }
        if self
            .ready_set
            .get(&db)
            .is_some_and(|keys| keys.contains(key))
        {
            return;
        }
        // Copied only when new: the key is a slice of a connection's read buffer.
        let key = Bytes::copy_from_slice(key);
        self.ready_set.entry(db).or_default().insert(key.clone());
        self.ready.push((db, key));
    }

    /// Takes the keys signalled ready since the last call, in signalling order.
    pub fn take_ready(&mut self) -> Vec<(usize, Bytes)> {
        // Emptied, not dropped: the sets keep their capacity for the next command.
        for keys in self.ready_set.values_mut() {
            keys.clear();
        }
        std::mem::take(&mut self.ready)
    }

    /// Registers `client` as watching `key`.
    pub fn watch(&mut self, client: u64, db: usize, key: Bytes) {
        self.watched.entry((db, key)).or_default().insert(client);
    }

    /// Forgets all of `client`'s watches (EXEC, DISCARD, UNWATCH, disconnect).
    pub fn unwatch(&mut self, client: u64, keys: &[(usize, Bytes)]) {
        for k in keys {
            if let Some(set) = self.watched.get_mut(k) {
                set.remove(&client);
                if set.is_empty() {
                    self.watched.remove(k);
                }
            }
        }
        self.dirty.remove(&client);
    }

    /// Marks `client`'s transaction as failed (a watched key expired before WATCH, …).
    pub fn mark_dirty(&mut self, client: u64) {
        self.dirty.insert(client);
    }

    /// True when a key `client` watches was modified since WATCH.
    pub fn is_dirty(&self, client: u64) -> bool {
        self.dirty.contains(&client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn active_expiry_takes_due_keys_earliest_first() {
        let mut ks = Keyspace::new(2);
        for i in 0..10u64 {
            let key = Bytes::from(format!("k{i}"));
            ks.insert(0, key.clone(), Value::String(Bytes::new()));
            ks.set_expire(0, &key, 100 + i);
        }
        ks.insert(1, Bytes::from("late"), Value::String(Bytes::new()));
        ks.set_expire(1, b"late", 10_000);
        // A TTL changed or removed leaves nothing stale behind in the order.
        ks.set_expire(0, b"k0", 5_000);
        assert!(ks.persist(0, b"k1"));
        ks.insert(0, Bytes::from("k2"), Value::String(Bytes::new()));
        assert_eq!(ks.active_expire(99, 100), (0, false));
        assert_eq!(ks.active_expire(105, 2), (2, true));
        assert!(!ks.db(0).contains_raw(b"k3"));
        assert!(!ks.db(0).contains_raw(b"k4"));
        assert_eq!(ks.active_expire(1_000, 100), (5, false));
        assert_eq!(ks.db(0).len(), 3, "k0, k1 and k2 stay");
        assert_eq!(ks.active_expire(20_000, 100), (2, false));
        assert_eq!(ks.db(0).len(), 2);
        assert_eq!(ks.db(1).len(), 0);
        assert_eq!(ks.db(0).expiry_order.len(), 0);
    }

    #[test]
    fn key_groups_follow_inserts_removals_renames_and_flushes() {
        fn first_byte(key: &[u8]) -> u16 {
            key.first().copied().map_or(0, u16::from)
        }
        let mut ks = Keyspace::new(1);
        ks.insert(0, Bytes::from_static(b"a1"), Value::String(Bytes::new()));
        ks.enable_key_groups(first_byte);
        ks.insert(0, Bytes::from_static(b"a2"), Value::String(Bytes::new()));
        ks.insert(0, Bytes::from_static(b"b1"), Value::String(Bytes::new()));
        ks.insert(0, Bytes::from_static(b"a2"), Value::String(Bytes::new()));
        assert_eq!(ks.db(0).count_in_group(u16::from(b'a')), 2);
        assert_eq!(
            ks.db(0).keys_in_group(u16::from(b'a'), 10),
            vec![Bytes::from_static(b"a1"), Bytes::from_static(b"a2")]
        );
        assert_eq!(ks.db(0).keys_in_group(u16::from(b'a'), 1).len(), 1);
        assert!(ks.rename_now(0, b"a1", Bytes::from_static(b"b2")));
        assert_eq!(ks.db(0).count_in_group(u16::from(b'a')), 1);
        assert_eq!(ks.db(0).count_in_group(u16::from(b'b')), 2);
        assert!(ks.remove_now(0, b"b1"));
        assert_eq!(ks.db(0).count_in_group(u16::from(b'b')), 1);
        ks.flush_db(0);
        assert_eq!(ks.db(0).count_in_group(u16::from(b'b')), 0);
        ks.insert(0, Bytes::from_static(b"c"), Value::String(Bytes::new()));
        assert_eq!(
            ks.db(0).count_in_group(u16::from(b'c')),
            1,
            "still indexed after a flush"
        );
    }

    #[test]
    fn random_key_finds_keys_and_none_when_empty() {
        let mut ks = Keyspace::new(1);
        assert_eq!(ks.db(0).random_key(), None);
        for i in 0..100 {
            ks.insert(0, Bytes::from(format!("k{i}")), Value::String(Bytes::new()));
        }
        let seen: HashSet<Bytes> = (0..2000).filter_map(|_| ks.db(0).random_key()).collect();
        assert!(seen.len() > 50, "only {} distinct keys", seen.len());
    }

    #[test]
    fn ready_keys_are_deduplicated_in_signalling_order() {
        let mut ks = Keyspace::new(2);
        for k in ["b", "a", "b", "c", "a"] {
            ks.signal_ready(0, k.as_bytes());
        }
        ks.signal_ready(1, b"a");
        let taken = ks.take_ready();
        let taken: Vec<(usize, &[u8])> = taken.iter().map(|(d, k)| (*d, &k[..])).collect();
        assert_eq!(taken, [(0, &b"b"[..]), (0, b"a"), (0, b"c"), (1, b"a")]);
        // Taken means forgotten: the same key signals again.
        ks.signal_ready(0, b"a");
        assert_eq!(ks.take_ready(), vec![(0, Bytes::from_static(b"a"))]);
    }

    #[test]
    fn scan_visits_every_key_once() {
        let mut ks = Keyspace::new(1);
        for i in 0..1000 {
            ks.insert(0, Bytes::from(format!("k{i}")), Value::String(Bytes::new()));
        }
        let mut seen = HashSet::new();
        let mut cursor = 0;
        loop {
            let (next, keys) = ks.db(0).scan(cursor, 7);
            for k in keys {
                assert!(seen.insert(k));
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        assert_eq!(seen.len(), 1000);
    }

    #[test]
    fn expiry_is_lazy_and_counted() {
        let mut ks = Keyspace::new(1);
        ks.insert(0, Bytes::from("a"), Value::String(Bytes::new()));
        ks.set_expire(0, b"a", 100);
        assert!(ks.contains(0, b"a", 99));
        assert!(!ks.contains(0, b"a", 100));
        assert_eq!(ks.expired_keys, 1);
    }

    #[test]
    fn watch_marks_dirty() {
        let mut ks = Keyspace::new(1);
        ks.watch(7, 0, Bytes::from("a"));
        ks.signal_modified(0, b"a");
        assert!(ks.is_dirty(7));
        ks.unwatch(7, &[(0, Bytes::from("a"))]);
        assert!(!ks.is_dirty(7));
    }

    #[test]
    fn packed_slots_round_trip_any_key_and_value_length() {
        for (klen, vlen) in [
            (0, 0),
            (1, 0),
            (0, 5),
            (127, 3),
            (128, 0),
            (300, 70_000),
            (20_000, 1),
        ] {
            let key = vec![b'k'; klen];
            let value = Bytes::from(vec![b'v'; vlen]);
            let slot = Slot::new(&key, Value::String(value.clone()));
            assert_eq!(slot.key(), &key[..]);
            assert!(matches!(slot.value(), ValueRef::String(v) if v == &value[..]));
            assert!(matches!(slot.into_value(), Value::String(v) if v == value));
        }
        // A malformed packing (never made) reads as empty, without a panic.
        assert_eq!(unpack(&[0x85]), (&[][..], &[][..]));
        assert_eq!(unpack(&[0xff; 12]), (&[][..], &[][..]));
        assert_eq!(unpack(&[]), (&[][..], &[][..]));
    }

    #[test]
    fn values_read_back_and_removals_give_them_back() {
        let mut ks = Keyspace::new(2);
        ks.insert(0, Bytes::from("s"), Value::Stream(Box::default()));
        ks.insert(0, Bytes::from("k"), Value::String(Bytes::from("v1")));
        ks.insert(0, Bytes::from("k"), Value::String(Bytes::from("v2")));
        assert!(matches!(ks.get(0, b"k", 0), Some(ValueRef::String(b"v2"))));
        assert!(matches!(ks.get(0, b"s", 0), Some(ValueRef::Stream(_))));
        assert!(ks.get(1, b"k", 0).is_none());
        assert_eq!(ks.db(0).len(), 2);
        assert!(ks.stream_raw(0, b"s").is_some() && ks.stream_raw(0, b"k").is_none());
        // A string replaced by a stream under the same key, and back.
        ks.insert(0, Bytes::from("k"), Value::Stream(Box::default()));
        assert!(matches!(ks.get(0, b"k", 0), Some(ValueRef::Stream(_))));
        assert!(matches!(ks.dbs[0].remove_raw(b"k"), Some(Value::Stream(_))));
        assert!(matches!(ks.dbs[0].remove_raw(b"s"), Some(Value::Stream(_))));
        assert!(ks.dbs[0].remove_raw(b"s").is_none());
        assert!(ks.db(0).is_empty() && ks.db(0).scan_order.is_empty());
        ks.set_expire(0, b"gone", 5);
        assert_eq!(ks.db(0).expires_len(), 0, "no TTL on a missing key");
    }

    /// One change of the property test below.
    #[derive(Debug, Clone)]
    enum Change {
        Set(u16, u8),
        Stream(u16),
        Del(u16),
        Rename(u16, u16),
        Expire(u16, u64),
        /// One SCAN call with this COUNT, if a scan is under way.
        Scan(usize),
    }

    fn change() -> impl proptest::strategy::Strategy<Value = Change> {
        use proptest::prelude::*;
        prop_oneof![
            8 => (0u16..400, any::<u8>()).prop_map(|(k, v)| Change::Set(k, v)),
            1 => (0u16..400).prop_map(Change::Stream),
            4 => (0u16..400).prop_map(Change::Del),
            1 => (0u16..400, 0u16..400).prop_map(|(a, b)| Change::Rename(a, b)),
            1 => (0u16..400, 1u64..100).prop_map(|(k, t)| Change::Expire(k, t)),
            4 => (1usize..40).prop_map(Change::Scan),
        ]
    }

    fn key(k: u16) -> Bytes {
        // Some keys long enough for a two-byte length.
        if k.is_multiple_of(7) {
            Bytes::from(format!("{k}:{}", "x".repeat(130)))
        } else {
            Bytes::from(format!("key:{k}"))
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 128, ..Default::default() })]

        /// The keyspace holds what a BTreeMap given the same changes holds, and a SCAN
        /// running through the changes returns every key present for its whole course,
        /// none twice, while the table grows and shrinks.
        #[test]
        fn keyspace_follows_a_model_and_scan_misses_nothing(
            changes in proptest::collection::vec(change(), 1..300)
        ) {
            use proptest::prop_assert;
            use proptest::prop_assert_eq;
            #[derive(Debug, PartialEq, Clone)]
            enum M { Str(Vec<u8>), Stream }
            let mut ks = Keyspace::new(1);
            let mut model: BTreeMap<Bytes, M> = BTreeMap::new();
            let mut ttl: BTreeMap<Bytes, u64> = BTreeMap::new();
            // The scan under way: cursor, keys returned, keys present since it began.
            let mut cursor: Option<u64> = None;
            let mut returned: Vec<Bytes> = Vec::new();
            let mut stayed: BTreeSet<Bytes> = model.keys().cloned().collect();
            for c in changes {
                match c {
                    Change::Set(k, v) => {
                        ks.insert(0, key(k), Value::String(Bytes::from(vec![v; usize::from(v % 40)])));
                        model.insert(key(k), M::Str(vec![v; usize::from(v % 40)]));
                        ttl.remove(&key(k));
                    }
                    Change::Stream(k) => {
                        ks.insert(0, key(k), Value::Stream(Box::default()));
                        model.insert(key(k), M::Stream);
                        ttl.remove(&key(k));
                    }
                    Change::Del(k) => {
                        prop_assert_eq!(ks.remove_now(0, &key(k)), model.remove(&key(k)).is_some());
                        ttl.remove(&key(k));
                        stayed.remove(&key(k));
                    }
                    Change::Rename(a, b) => {
                        prop_assert_eq!(ks.rename_now(0, &key(a), key(b)), model.contains_key(&key(a)));
                        if a != b {
                            if let Some(v) = model.remove(&key(a)) {
                                model.insert(key(b), v);
                                ttl.remove(&key(b));
                                if let Some(t) = ttl.remove(&key(a)) {
                                    ttl.insert(key(b), t);
                                }
                                stayed.remove(&key(a));
                                stayed.remove(&key(b));
                            }
                        }
                    }
                    Change::Expire(k, t) => {
                        ks.set_expire(0, &key(k), t);
                        if model.contains_key(&key(k)) {
                            ttl.insert(key(k), t);
                        }
                    }
                    Change::Scan(count) => {
                        let (next, keys) = ks.db(0).scan(cursor.unwrap_or(0), count);
                        returned.extend(keys);
                        if next == 0 {
                            let got: BTreeSet<Bytes> = returned.iter().cloned().collect();
                            prop_assert_eq!(got.len(), returned.len(), "a key returned twice");
                            prop_assert!(stayed.is_subset(&got), "missed {:?}", stayed.difference(&got).collect::<Vec<_>>());
                            cursor = None;
                            returned.clear();
                            stayed = model.keys().cloned().collect();
                        } else {
                            cursor = Some(next);
                        }
                    }
                }
            }
            let d = ks.db(0);
            prop_assert_eq!(d.len(), model.len());
            prop_assert_eq!(d.scan_order.len(), model.len(), "one hash a key (no collisions here)");
            for (k, m) in &model {
                let got = match d.peek(k) {
                    Some(ValueRef::String(v)) => Some(M::Str(v.to_vec())),
                    Some(ValueRef::Stream(_)) => Some(M::Stream),
                    None => None,
                };
                prop_assert_eq!(got.as_ref(), Some(m));
                prop_assert_eq!(d.expire_at(k), ttl.get(k).copied());
            }
            let keys: BTreeSet<Vec<u8>> = d.keys().map(<[u8]>::to_vec).collect();
            prop_assert_eq!(keys, model.keys().map(|k| k.to_vec()).collect::<BTreeSet<_>>());
            prop_assert_eq!(d.expires_len(), ttl.len());
            prop_assert_eq!(d.streams().count(), model.values().filter(|m| **m == M::Stream).count());
            if let Some(k) = d.random_key() {
                prop_assert!(model.contains_key(&k));
            } else {
                prop_assert!(model.is_empty());
            }
        }
    }
}
