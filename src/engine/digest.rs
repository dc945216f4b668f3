//! A canonical digest of the whole dataset (`DEBUG DIGEST`), of one value
//! (`DEBUG DIGEST-VALUE`), and the same walk as text (`DEBUG DIGEST-DUMP`).
//!
//! Why: the state a restart rebuilds — from the log alone after a crash, or from a
//! checkpoint plus the log after a clean shutdown — must be the state the live server
//! had. Two digests taken before and after a restart say whether it is; the text form
//! says where it is not. The log is becoming a sequence of typed records applied by one
//! engine function (issue #11), and the determinism test (`tests/determinism.rs`) holds
//! that rewrite to this.
//!
//! # What is covered, and why
//!
//! Everything a client can observe, or that decides what a later command does, and
//! nothing that depends on when or how the state was built (payload positions, the
//! cache, memory layout). Per key, in this order:
//!
//! - **db, key name**: where the value lives.
//! - **type**: `string` or `stream` (TYPE, WRONGTYPE).
//! - **expire-at**, absolute Unix ms or none: PTTL, and when the key disappears. A
//!   relative TTL would differ between two readings; the absolute time must not.
//! - **string value**: GET.
//! - Stream counters, which outlive the entries that set them:
//!   - **length**: XLEN.
//!   - **last-id**: XADD must stay above it even when that entry is gone; `$`.
//!   - **entries-added**, **max-deleted-id**: consumer-group lag and entries-read
//!     estimates (XINFO), which Redis derives from them.
//!   - **recorded-first-id**: XINFO's `recorded-first-entry-id`, and lag arithmetic.
//! - **node** shapes (first and last slot ID, slots with tombstones, live entries,
//!   listpack bytes, master field names): which entries a later `~` trim removes, when
//!   the next node opens, and XINFO's `radix-tree-keys`. Checkpoints store exactly this
//!   so that "trimming goes on as if the stream had never left memory"; replaying the
//!   log with the same `stream-node-max-*` settings must rebuild it too.
//! - Every live **entry**: its ID and field/value pairs in order, read through the
//!   keyspace's payload store as XRANGE reads them (so a payload that cannot be read
//!   back fails the digest instead of being skipped).
//! - Per consumer **group**, by name:
//!   - **last-delivered-id**: where `>` reads resume.
//!   - **entries-read** (or unknown): lag in XINFO GROUPS.
//!   - every **pel** entry: ID, owning consumer, delivery time (ms), delivery count —
//!     XPENDING, XCLAIM/XAUTOCLAIM min-idle decisions, and history reads.
//!   - every **consumer**: name, seen-time, active-time (or never), and how many entries
//!     it owns — XINFO CONSUMERS `idle`/`inactive`, which clients (Watermill) use to spot
//!     dead consumers and delete them; the count catches a consumer view of the PEL that
//!     disagrees with the PEL itself.
//!
//! - The **idmp** state (Redis 8.6 idempotent production), only where it differs from a
//!   stream that never used it: IDMP-DURATION and IDMP-MAXSIZE (XCFGSET, or the
//!   `stream-idmp-*` settings when the stream was created), the lifetime counters
//!   `iids-added` and `iids-duplicates`, and per **producer** (by name) every IID with
//!   its entry ID, oldest first — whether a re-sent XADD is a duplicate, and which IID
//!   the next insertion or sweep evicts.
//!
//! - The stream's own **broker policy** (`RILL.POLICY`), where it has one, in its log
//!   encoding — which limits the retention sweep applies to it.
//!
//! Not covered: WATCH state, blocked clients, the ready-key queue (they belong to
//! connections, which a restart does not keep), and `expired_keys` and other statistics.
//!
//! Keys whose TTL has passed are left out, also by DIGEST-VALUE (a missing key digests
//! as zeros, as in Redis). Redis's digest still counts a logically expired key until it
//! is reclaimed; here no command can see such a key any more, and whether it has been
//! reclaimed depends only on when active expiry last ran — a digest that depended on
//! that could not compare two servers.
//!
//! # Shape
//!
//! As Redis's `DEBUG DIGEST`: 20 bytes (40 hex digits), all zeros for an empty dataset,
//! independent of key order. Each key is hashed (SHA-256 over an unambiguous encoding of
//! the walk: every field tagged and length-prefixed, truncated to 20 bytes), and the
//! per-key digests are XORed together; key names are unique within a database and the
//! database is part of each key's digest, so nothing cancels. SHA-256 because `sha2` is
//! already a dependency; truncating it keeps Redis's reply width.

use bytes::Bytes;
use sha2::{Digest as _, Sha256};

use crate::engine::group::ConsumerGroup;
use crate::engine::id::StreamId;
use crate::engine::keyspace::{Keyspace, ValueRef};
use crate::engine::payload::{PayloadError, PayloadStore};
use crate::engine::stream::Stream;

/// Bytes in a digest: Redis's SHA-1 width, so replies have its shape.
pub const DIGEST_LEN: usize = 20;

/// A dataset or value digest.
pub type Digest = [u8; DIGEST_LEN];

/// The digest of nothing: an empty dataset, or a missing key.
pub const EMPTY: Digest = [0; DIGEST_LEN];

/// Entries read per payload batch while walking a stream: bounds the memory one digest
/// of a large stream takes.
const ENTRY_BATCH: usize = 1024;

/// Lowercase hex, as Redis replies with digests.
pub fn hex(d: &Digest) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(2 * DIGEST_LEN);
    for b in d {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// The digest of every key of every database that has not expired at `now_ms`.
pub fn dataset_digest(ks: &Keyspace, now_ms: u64) -> Result<Digest, PayloadError> {
    let mut total = EMPTY;
    for db in 0..ks.db_count() {
        let d = ks.db(db);
        for (key, value, expire_at) in d.iter() {
            if d.is_expired(key, now_ms) {
                continue;
            }
            let v = digest_of(|sink| walk_value(sink, value, expire_at, &ks.payloads))?;
            let k = key_digest(db, key, &v);
            for (t, b) in total.iter_mut().zip(k) {
                *t ^= b;
            }
        }
    }
    Ok(total)
}

/// The digest of the value under `key` in `db` (type, expiry and content, not the name):
/// [`EMPTY`] when the key is missing or expired, as Redis's `DEBUG DIGEST-VALUE`.
pub fn value_digest(
    ks: &Keyspace,
    db: usize,
    key: &[u8],
    now_ms: u64,
) -> Result<Digest, PayloadError> {
    let d = ks.db(db);
    if d.is_expired(key, now_ms) {
        return Ok(EMPTY);
    }
    match d.peek(key) {
        Some(value) => digest_of(|sink| walk_value(sink, value, d.expire_at(key), &ks.payloads)),
        None => Ok(EMPTY),
    }
}

/// The walk the digest hashes, as text: one line per key, node, entry, group, PEL entry
/// and consumer, in a fixed order (databases ascending, keys byte-wise, the rest in ID or
/// name order), so that two dumps can be diffed line by line to find what differs.
/// `only`: just these keys of that database (missing ones are left out).
pub fn describe(
    ks: &Keyspace,
    now_ms: u64,
    only: Option<(usize, &[Bytes])>,
) -> Result<String, PayloadError> {
    let mut text = TextSink::default();
    let dbs: Vec<usize> = match only {
        Some((db, _)) => vec![db],
        None => (0..ks.db_count()).collect(),
    };
    for db in dbs {
        let d = ks.db(db);
        let mut keys: Vec<(&[u8], ValueRef<'_>, Option<u64>)> = d
            .iter()
            .filter(|(k, _, _)| !d.is_expired(k, now_ms))
            .filter(|(k, _, _)| only.is_none_or(|(_, wanted)| wanted.iter().any(|w| w == k)))
            .collect();
        keys.sort_by(|a, b| a.0.cmp(b.0));
        for (key, value, expire_at) in keys {
            text.open("key");
            text.uint("db", db as u64);
            text.bytes("name", key);
            walk_value(&mut text, value, expire_at, &ks.payloads)?;
            text.close();
        }
    }
    Ok(text.out)
}

/// A key's share of the dataset digest: its database, name and value digest.
fn key_digest(db: usize, key: &[u8], value: &Digest) -> Digest {
    let mut h = HashSink::default();
    h.uint("db", db as u64);
    h.bytes("name", key);
    h.bytes("value", value);
    h.finish()
}

fn digest_of(
    walk: impl FnOnce(&mut HashSink) -> Result<(), PayloadError>,
) -> Result<Digest, PayloadError> {
    let mut h = HashSink::default();
    walk(&mut h)?;
    Ok(h.finish())
}

/// Where the walk writes each field, in order. Records nest (`open` … `close`).
trait Sink {
    fn open(&mut self, record: &'static str);
    fn close(&mut self);
    fn bytes(&mut self, field: &'static str, v: &[u8]);
    fn uint(&mut self, field: &'static str, v: u64);
    fn opt(&mut self, field: &'static str, v: Option<u64>);
    fn id(&mut self, field: &'static str, v: StreamId);
    fn list(&mut self, field: &'static str, items: &[Bytes]);
}

fn walk_value(
    sink: &mut impl Sink,
    value: ValueRef<'_>,
    expire_at: Option<u64>,
    store: &PayloadStore,
) -> Result<(), PayloadError> {
    sink.bytes("type", value.type_name().as_bytes());
    sink.opt("expire-at", expire_at);
    match value {
        ValueRef::String(s) => sink.bytes("value", s),
        ValueRef::Stream(s) => walk_stream(sink, s, store)?,
    }
    Ok(())
}

fn walk_stream(sink: &mut impl Sink, s: &Stream, store: &PayloadStore) -> Result<(), PayloadError> {
    sink.uint("length", s.len());
    sink.id("last-id", s.last_id());
    sink.uint("entries-added", s.entries_added());
    sink.id("max-deleted-id", s.max_deleted_id());
    sink.id("recorded-first-id", s.recorded_first_id());
    for node in s.index().node_shapes() {
        sink.open("node");
        sink.id("key", node.key);
        sink.id("last", node.last);
        sink.uint("slots", u64::from(node.slots));
        sink.uint("live", u64::from(node.live));
        sink.uint("listpack-bytes", node.listpack_bytes);
        sink.list("master-fields", node.master_fields);
        sink.close();
    }
    let mut from = Some(StreamId::MIN);
    while let Some(start) = from {
        let batch = s.range(start, StreamId::MAX, Some(ENTRY_BATCH), false, store)?;
        for e in &batch {
            sink.open("entry");
            sink.id("id", e.id);
            sink.list("fields", &e.fields);
            sink.close();
        }
        from = match batch.last() {
            Some(last) if batch.len() == ENTRY_BATCH => last.id.incr(),
            _ => None,
        };
    }
    for (name, group) in &s.groups {
        walk_group(sink, name, group);
    }
    walk_idmp(sink, s.idmp());
    if let Some(p) = s.policy() {
        // The stream's own broker policy (RILL.POLICY): only fields it sets.
        sink.open("policy");
        let mut body = Vec::new();
        p.encode(&mut body);
        sink.bytes("encoded", &body);
        sink.close();
    }
    Ok(())
}

fn walk_idmp(sink: &mut impl Sink, idmp: &crate::engine::idmp::IdmpState) {
    if idmp.is_default() {
        return;
    }
    sink.open("idmp");
    sink.uint("duration", idmp.duration_s());
    sink.uint("maxsize", idmp.max_entries());
    sink.uint("iids-added", idmp.iids_added());
    sink.uint("iids-duplicates", idmp.iids_duplicates());
    for (pid, p) in idmp.producers() {
        sink.open("producer");
        sink.bytes("pid", pid);
        for (iid, id) in p.iids() {
            sink.open("iid");
            sink.bytes("iid", iid);
            sink.id("id", *id);
            sink.close();
        }
        sink.close();
    }
    sink.close();
}

fn walk_group(sink: &mut impl Sink, name: &[u8], g: &ConsumerGroup) {
    sink.open("group");
    sink.bytes("name", name);
    sink.id("last-delivered-id", g.last_delivered_id());
    sink.opt("entries-read", g.entries_read());
    for p in g.pending_entries() {
        sink.open("pel");
        sink.id("id", p.id);
        sink.bytes("consumer", &p.consumer);
        sink.uint("delivery-time", p.delivery_time_ms);
        sink.uint("delivery-count", p.delivery_count);
        if p.is_nacked() {
            // Only NACKed entries carry the mark, so digests of states without XNACK
            // are what they were before it.
            sink.uint("nacked", 1);
        }
        sink.close();
    }
    // The NACK zone's order is state: XREADGROUP CLAIM serves it first in first out.
    for p in g.nack_zone() {
        sink.open("nack-zone");
        sink.id("id", p.id);
        sink.close();
    }
    for c in g.consumers() {
        sink.open("consumer");
        sink.bytes("name", c.name());
        sink.uint("seen-time", c.seen_time_ms());
        sink.opt("active-time", c.active_time_ms());
        sink.uint("pending", c.pending_count() as u64);
        sink.close();
    }
    sink.close();
}

/// Hashes the walk. Every item starts with a tag byte and its field name, and every
/// variable-length part is length-prefixed, so two different walks never encode to the
/// same bytes.
#[derive(Default)]
struct HashSink {
    h: Sha256,
}

impl HashSink {
    fn tag(&mut self, tag: u8, name: &'static str) {
        self.h.update([tag, name.len() as u8]);
        self.h.update(name.as_bytes());
    }

    fn len_prefixed(&mut self, v: &[u8]) {
        self.h.update((v.len() as u64).to_le_bytes());
        self.h.update(v);
    }

    fn finish(self) -> Digest {
        let full = self.h.finalize();
        let mut d = EMPTY;
        d.copy_from_slice(&full[..DIGEST_LEN]);
        d
    }
}

impl Sink for HashSink {
    fn open(&mut self, record: &'static str) {
        self.tag(1, record);
    }
    fn close(&mut self) {
        self.h.update([2]);
    }
    fn bytes(&mut self, field: &'static str, v: &[u8]) {
        self.tag(3, field);
        self.len_prefixed(v);
    }
    fn uint(&mut self, field: &'static str, v: u64) {
        self.tag(4, field);
        self.h.update(v.to_le_bytes());
    }
    fn opt(&mut self, field: &'static str, v: Option<u64>) {
        match v {
            Some(v) => {
                self.tag(5, field);
                self.h.update(v.to_le_bytes());
            }
            None => self.tag(6, field),
        }
    }
    fn id(&mut self, field: &'static str, v: StreamId) {
        self.tag(7, field);
        self.h.update(v.ms.to_le_bytes());
        self.h.update(v.seq.to_le_bytes());
    }
    fn list(&mut self, field: &'static str, items: &[Bytes]) {
        self.tag(8, field);
        self.h.update((items.len() as u64).to_le_bytes());
        for item in items {
            self.len_prefixed(item);
        }
    }
}

/// Writes the walk as lines: `record field value …`, nested records indented.
#[derive(Default)]
struct TextSink {
    out: String,
    depth: usize,
}

impl TextSink {
    fn field(&mut self, name: &str, value: &str) {
        self.out.push(' ');
        self.out.push_str(name);
        self.out.push(' ');
        self.out.push_str(value);
    }
}

/// `"…"` with Redis's `sdscatrepr` escapes, so binary names and values stay on one line.
fn quoted(v: &[u8]) -> String {
    let mut s = String::with_capacity(v.len() + 2);
    s.push('"');
    for &b in v {
        match b {
            b'\\' => s.push_str("\\\\"),
            b'"' => s.push_str("\\\""),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            b'\t' => s.push_str("\\t"),
            0x20..=0x7e => s.push(b as char),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    s.push('"');
    s
}

impl Sink for TextSink {
    fn open(&mut self, record: &'static str) {
        if !self.out.is_empty() {
            self.out.push('\n');
        }
        for _ in 0..self.depth {
            self.out.push_str("  ");
        }
        self.out.push_str(record);
        self.depth += 1;
    }
    fn close(&mut self) {
        self.depth -= 1;
    }
    fn bytes(&mut self, field: &'static str, v: &[u8]) {
        self.field(field, &quoted(v));
    }
    fn uint(&mut self, field: &'static str, v: u64) {
        self.field(field, &v.to_string());
    }
    fn opt(&mut self, field: &'static str, v: Option<u64>) {
        let v = v.map_or_else(|| "none".to_string(), |v| v.to_string());
        self.field(field, &v);
    }
    fn id(&mut self, field: &'static str, v: StreamId) {
        self.field(field, &v.to_string());
    }
    fn list(&mut self, field: &'static str, items: &[Bytes]) {
        let items: Vec<String> = items.iter().map(|i| quoted(i)).collect();
        self.field(field, &format!("[{}]", items.join(" ")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::id::AddIdSpec;
    use crate::engine::index::NodeLimits;
    use crate::engine::keyspace::Value;

    fn fields(v: &[&str]) -> Vec<Bytes> {
        v.iter()
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect()
    }

    fn stream_with(ks: &Keyspace, ids: &[u64]) -> Stream {
        let mut s = Stream::new();
        for &ms in ids {
            let spec = AddIdSpec::Explicit(StreamId::new(ms, 0));
            s.add(
                spec,
                &fields(&["f", "v"]),
                0,
                NodeLimits::default(),
                &ks.payloads,
            )
            .unwrap();
        }
        s
    }

    fn digest(ks: &Keyspace) -> Digest {
        dataset_digest(ks, 1_000).unwrap()
    }

    #[test]
    fn empty_dataset_is_all_zeros() {
        let ks = Keyspace::new(16);
        assert_eq!(hex(&digest(&ks)), "0".repeat(40));
        assert_eq!(value_digest(&ks, 0, b"nope", 0).unwrap(), EMPTY);
    }

    #[test]
    fn key_order_does_not_matter_but_databases_and_names_do() {
        let mut a = Keyspace::new(2);
        let mut b = Keyspace::new(2);
        for k in ["x", "y", "z"] {
            a.insert(0, Bytes::from(k), Value::String(Bytes::from("1")));
        }
        for k in ["z", "x", "y"] {
            b.insert(0, Bytes::from(k), Value::String(Bytes::from("1")));
        }
        assert_eq!(digest(&a), digest(&b));
        assert_ne!(digest(&a), EMPTY);
        b.remove_now(0, b"z");
        b.insert(1, Bytes::from("z"), Value::String(Bytes::from("1")));
        assert_ne!(digest(&a), digest(&b));
        // Same value, other name: the value digest agrees, the dataset's does not.
        let mut c = Keyspace::new(2);
        c.insert(0, Bytes::from("q"), Value::String(Bytes::from("1")));
        let mut d = Keyspace::new(2);
        d.insert(0, Bytes::from("r"), Value::String(Bytes::from("1")));
        assert_eq!(
            value_digest(&c, 0, b"q", 0).unwrap(),
            value_digest(&d, 0, b"r", 0).unwrap()
        );
        assert_ne!(digest(&c), digest(&d));
    }

    #[test]
    fn expiry_counts_and_expired_keys_do_not() {
        let mut a = Keyspace::new(1);
        a.insert(0, Bytes::from("k"), Value::String(Bytes::from("v")));
        let plain = digest(&a);
        a.set_expire(0, b"k", 5_000);
        let with_ttl = digest(&a);
        assert_ne!(plain, with_ttl);
        a.set_expire(0, b"k", 6_000);
        assert_ne!(with_ttl, digest(&a));
        a.set_expire(0, b"k", 500);
        assert_eq!(digest(&a), EMPTY, "expired at 1000, not yet reclaimed");
    }

    #[test]
    fn stream_counters_groups_and_consumers_all_count() {
        let ks = Keyspace::new(1);
        let base = stream_with(&ks, &[1, 2, 3]);
        let mut seen = Vec::new();
        let mut check = |s: Stream, what: &str| {
            let mut ks2 = Keyspace::new(1);
            ks2.payloads = ks.payloads.clone();
            ks2.insert(0, Bytes::from("s"), Value::Stream(Box::new(s)));
            let d = digest(&ks2);
            assert!(!seen.contains(&d), "{what} did not change the digest");
            seen.push(d);
        };
        check(base.clone(), "base");
        let mut s = base.clone();
        s.set_id(StreamId::new(9, 0), None, None).unwrap();
        check(s, "last-id");
        let mut s = base.clone();
        s.set_id(StreamId::new(3, 0), Some(10), None).unwrap();
        check(s, "entries-added");
        let mut s = base.clone();
        s.set_id(StreamId::new(3, 0), None, Some(StreamId::new(2, 5)))
            .unwrap();
        check(s, "max-deleted-id");
        let mut s = base.clone();
        s.delete(&[StreamId::new(2, 0)]);
        check(s, "a deleted entry");
        let mut s = base.clone();
        s.groups
            .insert(Bytes::from("g"), ConsumerGroup::new(StreamId::MIN, None));
        check(s.clone(), "a group");
        s.groups
            .get_mut(&b"g"[..])
            .unwrap()
            .set_position(StreamId::MIN, Some(0));
        check(s.clone(), "entries-read");
        s.groups
            .get_mut(&b"g"[..])
            .unwrap()
            .touch_consumer(&Bytes::from("c"), 100);
        check(s.clone(), "a consumer");
        s.groups
            .get_mut(&b"g"[..])
            .unwrap()
            .touch_consumer(&Bytes::from("c"), 101);
        check(s.clone(), "seen-time");
        s.groups
            .get_mut(&b"g"[..])
            .unwrap()
            .deliver(StreamId::new(1, 0), &Bytes::from("c"), 102);
        check(s.clone(), "a PEL entry and active-time");
        s.groups
            .get_mut(&b"g"[..])
            .unwrap()
            .redeliver(StreamId::new(1, 0), 102);
        check(s.clone(), "delivery count");
        s.idmp_mut().record(b"p", b"i", StreamId::new(1, 0));
        check(s.clone(), "an IID");
        s.idmp_mut().record(b"p", b"j", StreamId::new(2, 0));
        check(s.clone(), "a second IID");
        s.idmp_mut().count_duplicate();
        check(s.clone(), "iids-duplicates");
        s.idmp_mut().configure(5, 100);
        check(s, "IDMP-DURATION");
    }

    #[test]
    fn dump_names_the_fields_it_hashes() {
        let mut ks = Keyspace::new(2);
        let mut s = stream_with(&ks, &[1, 2]);
        let mut g = ConsumerGroup::new(StreamId::MIN, None);
        g.touch_consumer(&Bytes::from("c"), 7);
        s.groups.insert(Bytes::from("g"), g);
        ks.insert(1, Bytes::from("s"), Value::Stream(Box::new(s)));
        ks.insert(0, Bytes::from("a\n"), Value::String(Bytes::from("v")));
        ks.set_expire(0, b"a\n", 99_999);
        let text = describe(&ks, 1_000, None).unwrap();
        let want = [
            r#"key db 0 name "a\n" type "string" expire-at 99999 value "v""#,
            r#"key db 1 name "s" type "stream" expire-at none length 2 last-id 2-0 entries-added 2 max-deleted-id 0-0 recorded-first-id 1-0"#,
            r#"  node key 1-0 last 2-0 slots 2 live 2 listpack-bytes 40 master-fields ["f"]"#,
            r#"  entry id 1-0 fields ["f" "v"]"#,
            r#"  entry id 2-0 fields ["f" "v"]"#,
            r#"  group name "g" last-delivered-id 0-0 entries-read none"#,
            r#"    consumer name "c" seen-time 7 active-time none pending 0"#,
        ]
        .join("\n");
        assert_eq!(text, want);
        let only = describe(&ks, 1_000, Some((0, &[Bytes::from("a\n")]))).unwrap();
        assert_eq!(only.lines().count(), 1);
    }

    #[test]
    fn long_streams_are_read_in_batches() {
        let mut ks = Keyspace::new(1);
        let ids: Vec<u64> = (1..=(ENTRY_BATCH as u64 * 2 + 3)).collect();
        let s = stream_with(&ks, &ids);
        ks.insert(0, Bytes::from("s"), Value::Stream(Box::new(s)));
        let text = describe(&ks, 0, None).unwrap();
        assert_eq!(
            text.lines().filter(|l| l.starts_with("  entry")).count(),
            ids.len()
        );
    }
}
