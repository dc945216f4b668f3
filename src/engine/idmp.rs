//! Idempotent production (Redis 8.6): per stream, per producer, the idempotent IDs
//! (IIDs) already added and the entry ID each one got, so a producer that re-sends after
//! a lost reply gets the original ID back instead of a duplicate entry.
//!
//! The history is bounded twice, as in Redis: each producer keeps at most `max_entries`
//! IIDs (the oldest is evicted by the insertion that goes over), and a sweep drops IIDs
//! whose *entry ID's* millisecond part is `duration` seconds old. The sweep is an op
//! ([`crate::engine::op::Op::IdmpExpire`]) carrying the time it ran at, so replay removes
//! exactly what the live sweep removed, whatever the replaying clock says.
//!
//! The IIDs are kept even when their entries are deleted or trimmed: a duplicate is
//! answered with the stored ID regardless (Redis does the same).
//!
//! Redis keeps producers in a rax, so they are ordered by name bytes; a `BTreeMap` keeps
//! the same order for the checkpoint and the digest.

use std::collections::{BTreeMap, HashMap, VecDeque};

use bytes::Bytes;

use crate::engine::codec::{Put, Reader};
use crate::engine::id::StreamId;

/// `stream-idmp-duration` and XCFGSET `IDMP-DURATION`: seconds, default and bounds.
pub const DEFAULT_DURATION: u64 = 100;
/// Smallest IDMP-DURATION.
pub const MIN_DURATION: u64 = 1;
/// Largest IDMP-DURATION (one day).
pub const MAX_DURATION: u64 = 86_400;
/// `stream-idmp-maxsize` and XCFGSET `IDMP-MAXSIZE`: IIDs per producer, default and bounds.
pub const DEFAULT_MAXSIZE: u64 = 100;
/// Smallest IDMP-MAXSIZE.
pub const MIN_MAXSIZE: u64 = 1;
/// Largest IDMP-MAXSIZE.
pub const MAX_MAXSIZE: u64 = 10_000;

/// Errors of XADD IDMP/IDMPAUTO, XCFGSET and XIDMPRECORD, with Redis 8.6's wire text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdmpError {
    #[error("ERR syntax error, IDMP/IDMPAUTO specified multiple times")]
    SpecifiedTwice,
    #[error("ERR syntax error, IDMPAUTO requires a non-empty producer ID")]
    AutoEmptyProducer,
    #[error("ERR syntax error, IDMP requires a non-empty producer ID")]
    EmptyProducer,
    #[error("ERR syntax error, IDMP requires a non-empty idempotent ID")]
    EmptyIid,
    #[error("ERR syntax error, IDMP/IDMPAUTO can be used only with auto-generated IDs")]
    ExplicitId,
    #[error("ERR IDMP-DURATION specified multiple times")]
    DurationTwice,
    #[error("ERR IDMP-DURATION must be between 1 and 86400 seconds")]
    DurationRange,
    #[error("ERR IDMP-MAXSIZE specified multiple times")]
    MaxsizeTwice,
    #[error("ERR IDMP-MAXSIZE must be between 1 and 10000 entries")]
    MaxsizeRange,
    #[error("ERR At least one parameter must be specified")]
    NoParameter,
    #[error("ERR producer ID must be non-empty")]
    RecordEmptyProducer,
    #[error("ERR idempotent ID must be non-empty")]
    RecordEmptyIid,
    #[error("ERR No such message in stream")]
    NoSuchMessage,
    #[error("ERR IID already exists for this producer with a different stream ID")]
    IidConflict,
}

/// One producer's IIDs: a FIFO in insertion order (eviction and expiry take from its
/// front) and a map for the lookup. Both hold the same `Bytes` (one allocation).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Producer {
    order: VecDeque<(Bytes, StreamId)>,
    by_iid: HashMap<Bytes, StreamId>,
}

impl Producer {
    /// IIDs held.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// True when it holds no IID (a producer an XADD created before failing).
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The IIDs with their entry IDs, oldest first.
    pub fn iids(&self) -> impl Iterator<Item = &(Bytes, StreamId)> {
        self.order.iter()
    }

    fn pop_front(&mut self) {
        if let Some((iid, _)) = self.order.pop_front() {
            self.by_iid.remove(&iid);
        }
    }
}

/// A stream's idempotency state: its own copy of the limits (taken from the server's
/// configuration when the stream was created, changed by XCFGSET), the producers, and two
/// lifetime counters shown by XINFO STREAM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdmpState {
    duration_s: u64,
    max_entries: u64,
    producers: BTreeMap<Bytes, Producer>,
    iids_added: u64,
    iids_duplicates: u64,
}

impl Default for IdmpState {
    fn default() -> Self {
        IdmpState {
            duration_s: DEFAULT_DURATION,
            max_entries: DEFAULT_MAXSIZE,
            producers: BTreeMap::new(),
            iids_added: 0,
            iids_duplicates: 0,
        }
    }
}

/// What recording an IID found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Added (and the producer's oldest evicted if it went over the limit).
    Added,
    /// The same IID with the same ID was already there: nothing changed.
    Same,
    /// The IID is there with another ID: nothing changed.
    Conflict(StreamId),
}

impl IdmpState {
    /// True when nothing distinguishes this from a stream that never used IDMP (the
    /// checkpoint and the digest leave such streams' state out).
    pub fn is_default(&self) -> bool {
        *self == IdmpState::default()
    }

    /// IDMP-DURATION, seconds.
    pub fn duration_s(&self) -> u64 {
        self.duration_s
    }

    /// IDMP-MAXSIZE, IIDs per producer.
    pub fn max_entries(&self) -> u64 {
        self.max_entries
    }

    /// XINFO `pids-tracked`: producers, empty ones included until the sweep drops them.
    pub fn pids_tracked(&self) -> u64 {
        self.producers.len() as u64
    }

    /// XINFO `iids-tracked`: IIDs held across producers.
    pub fn iids_tracked(&self) -> u64 {
        self.producers.values().map(|p| p.len() as u64).sum()
    }

    /// XINFO `iids-added`: IIDs ever recorded (a lifetime counter).
    pub fn iids_added(&self) -> u64 {
        self.iids_added
    }

    /// XINFO `iids-duplicates`: XADDs answered from the history (a lifetime counter).
    pub fn iids_duplicates(&self) -> u64 {
        self.iids_duplicates
    }

    /// The producers by name, in name order.
    pub fn producers(&self) -> &BTreeMap<Bytes, Producer> {
        &self.producers
    }

    /// True when some producer exists (the sweep has work to look at).
    pub fn has_producers(&self) -> bool {
        !self.producers.is_empty()
    }

    /// The entry ID recorded for `iid` under `pid`, if any. No expiry check: Redis
    /// answers from whatever the last sweep left.
    pub fn lookup(&self, pid: &[u8], iid: &[u8]) -> Option<StreamId> {
        self.producers.get(pid)?.by_iid.get(iid).copied()
    }

    /// Whether producer `pid` exists.
    pub fn has_producer(&self, pid: &[u8]) -> bool {
        self.producers.contains_key(pid)
    }

    /// Creates producer `pid` with no IIDs if it is missing; true when it was created.
    /// (Redis creates the producer before an XADD can still fail.)
    pub fn ensure_producer(&mut self, pid: &[u8]) -> bool {
        if self.producers.contains_key(pid) {
            return false;
        }
        // Owned copies: the arguments are slices of a connection's read buffer.
        self.producers
            .insert(Bytes::copy_from_slice(pid), Producer::default());
        true
    }

    /// Records `iid → id` at the tail of `pid`'s history, unless the IID is already
    /// there; evicts the producer's oldest IID when it goes over the limit.
    pub fn record(&mut self, pid: &[u8], iid: &[u8], id: StreamId) -> Recorded {
        self.ensure_producer(pid);
        let max = self.max_entries;
        let Some(p) = self.producers.get_mut(pid) else {
            return Recorded::Same;
        };
        match p.by_iid.get(iid) {
            Some(old) if *old == id => return Recorded::Same,
            Some(old) => return Recorded::Conflict(*old),
            None => {}
        }
        let iid = Bytes::copy_from_slice(iid);
        p.by_iid.insert(iid.clone(), id);
        p.order.push_back((iid, id));
        self.iids_added += 1;
        if p.len() as u64 > max {
            p.pop_front();
        }
        Recorded::Added
    }

    /// Counts one XADD answered from the history.
    pub fn count_duplicate(&mut self) {
        self.iids_duplicates += 1;
    }

    /// XCFGSET: sets the limits; a value that differs from the current one clears every
    /// producer (the counters stay). Returns whether anything changed.
    pub fn configure(&mut self, duration_s: u64, max_entries: u64) -> bool {
        let mut changed = false;
        if duration_s != self.duration_s {
            self.duration_s = duration_s;
            changed = true;
        }
        if max_entries != self.max_entries {
            self.max_entries = max_entries;
            changed = true;
        }
        if changed {
            self.producers.clear();
        }
        changed
    }

    /// The sweep at `now_ms`: from each producer's front, IIDs whose entry ID's ms is at
    /// or before `now_ms - duration`; producers left empty are dropped. Returns how many
    /// IIDs and producers went.
    pub fn expire(&mut self, now_ms: u64) -> (u64, u64) {
        let cutoff = now_ms.saturating_sub(self.duration_s.saturating_mul(1000));
        let mut iids = 0;
        let before = self.producers.len();
        self.producers.retain(|_, p| {
            while p.order.front().is_some_and(|(_, id)| id.ms <= cutoff) {
                p.pop_front();
                iids += 1;
            }
            !p.is_empty()
        });
        (iids, (before - self.producers.len()) as u64)
    }

    /// Whether [`IdmpState::expire`] at `now_ms` would change anything (cheap: looks at
    /// each producer's oldest IID only).
    pub fn expiry_due(&self, now_ms: u64) -> bool {
        let cutoff = now_ms.saturating_sub(self.duration_s.saturating_mul(1000));
        self.producers
            .values()
            .any(|p| p.order.front().is_none_or(|(_, id)| id.ms <= cutoff))
    }

    /// The state in checkpoint form, as records of about `budget` bytes at most (one
    /// producer is never split), each `prefix` followed by
    /// `u64 duration | u64 max | u64 added | u64 duplicates | u32 producers |
    /// per producer: bytes pid | u32 n | n × (bytes iid | id)`, IIDs oldest first.
    /// Always at least one record, so the limits and counters are written.
    pub fn encode_chunks(&self, prefix: &[u8], budget: usize) -> Vec<Vec<u8>> {
        let start = |out: &mut Vec<u8>| -> usize {
            out.extend_from_slice(prefix);
            out.put_u64v(self.duration_s);
            out.put_u64v(self.max_entries);
            out.put_u64v(self.iids_added);
            out.put_u64v(self.iids_duplicates);
            let at = out.len();
            out.put_u32v(0);
            at
        };
        let mut chunks = Vec::new();
        let mut out = Vec::new();
        let mut count_at = start(&mut out);
        let mut n = 0u32;
        for (pid, p) in &self.producers {
            if n > 0 && out.len() >= budget {
                out[count_at..count_at + 4].copy_from_slice(&n.to_le_bytes());
                chunks.push(std::mem::take(&mut out));
                count_at = start(&mut out);
                n = 0;
            }
            out.put_bytes(pid);
            out.put_u32v(p.order.len() as u32);
            for (iid, id) in &p.order {
                out.put_bytes(iid);
                out.put_id(*id);
            }
            n += 1;
        }
        out[count_at..count_at + 4].copy_from_slice(&n.to_le_bytes());
        chunks.push(out);
        chunks
    }

    /// Reads one record [`IdmpState::encode_chunks`] wrote (after its prefix) into this
    /// state: the limits and counters, and the producers it carries. `None` when
    /// malformed (limits out of range, a producer or IID twice, more IIDs than the limit).
    pub fn decode_chunk(&mut self, r: &mut Reader) -> Option<()> {
        let duration_s = r.u64()?;
        let max_entries = r.u64()?;
        if !(MIN_DURATION..=MAX_DURATION).contains(&duration_s)
            || !(MIN_MAXSIZE..=MAX_MAXSIZE).contains(&max_entries)
        {
            return None;
        }
        self.duration_s = duration_s;
        self.max_entries = max_entries;
        self.iids_added = r.u64()?;
        self.iids_duplicates = r.u64()?;
        let n = r.count(8)?;
        for _ in 0..n {
            let pid = Bytes::copy_from_slice(&r.bytes()?);
            let count = r.count(20)?;
            if count as u64 > max_entries || self.producers.contains_key(&pid) {
                return None;
            }
            let mut p = Producer::default();
            for _ in 0..count {
                let iid = Bytes::copy_from_slice(&r.bytes()?);
                let id = r.id()?;
                if p.by_iid.insert(iid.clone(), id).is_some() {
                    return None;
                }
                p.order.push_back((iid, id));
            }
            self.producers.insert(pid, p);
        }
        Some(())
    }
}

/// The IID IDMPAUTO derives from an entry's fields, byte for byte as Redis 8.6 computes
/// it (`createIdempotencyHash`): per field/value pair `XXH3_128(field ‖ len(field) as a
/// native 8-byte long ‖ value)`, combined with sums and XORs so that the order of the
/// pairs does not matter, then `lo = Σlo ^ rotl(⊕hi, 1)`, `hi = Σhi ^ rotl(⊕lo, 1)`, stored
/// as Redis's `XXH128_hash_t` (low 64 bits first, native byte order). Rill targets
/// little-endian x86-64/aarch64 as Redis's builds do, so the bytes match.
pub fn auto_iid(fields: &[Bytes]) -> [u8; 16] {
    let (mut sum_lo, mut sum_hi, mut xor_lo, mut xor_hi) = (0u64, 0u64, 0u64, 0u64);
    for pair in fields.chunks(2) {
        let (field, value) = match pair {
            [f, v] => (f, v),
            [f] => (f, &Bytes::new()),
            _ => continue,
        };
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        h.update(field);
        h.update(&(field.len() as i64).to_ne_bytes());
        h.update(value);
        let digest = h.digest128();
        let (lo, hi) = (digest as u64, (digest >> 64) as u64);
        sum_lo = sum_lo.wrapping_add(lo);
        sum_hi = sum_hi.wrapping_add(hi);
        xor_lo ^= lo;
        xor_hi ^= hi;
    }
    let lo = sum_lo ^ xor_hi.rotate_left(1);
    let hi = sum_hi ^ xor_lo.rotate_left(1);
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&lo.to_ne_bytes());
    out[8..].copy_from_slice(&hi.to_ne_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(ms: u64) -> StreamId {
        StreamId::new(ms, 0)
    }

    #[test]
    fn record_lookup_and_eviction_per_producer() {
        let mut s = IdmpState::default();
        s.configure(DEFAULT_DURATION, 2);
        assert_eq!(s.record(b"p", b"a", id(1)), Recorded::Added);
        assert_eq!(s.record(b"p", b"a", id(1)), Recorded::Same);
        assert_eq!(s.record(b"p", b"a", id(9)), Recorded::Conflict(id(1)));
        assert_eq!(s.record(b"p", b"b", id(2)), Recorded::Added);
        assert_eq!(s.record(b"q", b"a", id(3)), Recorded::Added);
        assert_eq!(s.record(b"p", b"c", id(4)), Recorded::Added);
        // p went over 2: its oldest ("a") is gone, q's "a" is not.
        assert_eq!(s.lookup(b"p", b"a"), None);
        assert_eq!(s.lookup(b"p", b"b"), Some(id(2)));
        assert_eq!(s.lookup(b"q", b"a"), Some(id(3)));
        assert_eq!(
            (s.pids_tracked(), s.iids_tracked(), s.iids_added()),
            (2, 3, 4)
        );
    }

    #[test]
    fn expiry_goes_by_entry_id_time_and_drops_empty_producers() {
        let mut s = IdmpState::default();
        s.configure(1, DEFAULT_MAXSIZE);
        s.record(b"p", b"a", id(1_000));
        s.record(b"p", b"b", id(2_000));
        s.record(b"q", b"a", id(1_500));
        s.ensure_producer(b"empty");
        assert!(s.expiry_due(1_000), "the empty producer is due at once");
        assert_eq!(s.expire(1_999), (0, 1), "1000 is not yet 1 s old at 1999");
        assert_eq!(s.expire(2_000), (1, 0));
        assert_eq!(s.lookup(b"p", b"a"), None);
        assert!(!s.expiry_due(2_499));
        assert_eq!(s.expire(2_500), (1, 1));
        assert_eq!(s.expire(3_000), (1, 1));
        assert!(!s.has_producers());
        assert_eq!(s.iids_added(), 3, "a lifetime counter");
    }

    #[test]
    fn configure_clears_only_on_change() {
        let mut s = IdmpState::default();
        s.record(b"p", b"a", id(1));
        s.count_duplicate();
        assert!(!s.configure(DEFAULT_DURATION, DEFAULT_MAXSIZE));
        assert_eq!(s.iids_tracked(), 1);
        assert!(s.configure(DEFAULT_DURATION, 5));
        assert_eq!(
            (s.pids_tracked(), s.iids_added(), s.iids_duplicates()),
            (0, 1, 1)
        );
    }

    #[test]
    fn checkpoint_form_round_trips_and_rejects_damage() {
        let mut s = IdmpState::default();
        s.configure(7, 3);
        for (i, iid) in [&b"x"[..], b"", b"\0\r\n"].iter().enumerate() {
            s.record(b"p", iid, id(i as u64));
        }
        s.record(b"q\xff", b"x", StreamId::MAX);
        s.ensure_producer(b"r");
        s.count_duplicate();
        let decode = |chunks: &[Vec<u8>]| -> Option<IdmpState> {
            let mut back = IdmpState::default();
            for c in chunks {
                let mut r = Reader::new(Bytes::copy_from_slice(c));
                back.decode_chunk(&mut r)?;
                r.is_empty().then_some(())?;
            }
            Some(back)
        };
        // One record, or one per producer with a tiny budget: the same state.
        for budget in [usize::MAX, 1] {
            let chunks = s.encode_chunks(b"", budget);
            assert_eq!(chunks.len(), if budget == 1 { 3 } else { 1 });
            assert_eq!(decode(&chunks).as_ref(), Some(&s), "budget {budget}");
        }
        let out = s.encode_chunks(b"", usize::MAX).remove(0);
        for cut in 0..out.len() {
            let mut r = Reader::new(Bytes::copy_from_slice(&out[..cut]));
            assert!(
                IdmpState::default().decode_chunk(&mut r).is_none(),
                "cut at {cut}"
            );
        }
        let mut bad = out.clone();
        bad[..8].copy_from_slice(&0u64.to_le_bytes());
        assert!(decode(&[bad]).is_none());
        // The same producer in two records is damage.
        let twice = s.encode_chunks(b"", usize::MAX);
        assert!(decode(&[twice[0].clone(), twice[0].clone()]).is_none());
        // A stream without IDMP still writes its limits and counters.
        assert_eq!(IdmpState::default().encode_chunks(b"pre", 0).len(), 1);
    }

    #[test]
    fn auto_iid_ignores_pair_order_but_not_names() {
        let f =
            |v: &[&str]| -> Vec<Bytes> { v.iter().map(|s| Bytes::from(s.to_string())).collect() };
        assert_eq!(
            auto_iid(&f(&["a", "1", "b", "2"])),
            auto_iid(&f(&["b", "2", "a", "1"]))
        );
        assert_ne!(auto_iid(&f(&["a", "1"])), auto_iid(&f(&["b", "1"])));
        // The length separator keeps "ab"+"c" apart from "a"+"bc".
        assert_ne!(auto_iid(&f(&["ab", "c"])), auto_iid(&f(&["a", "bc"])));
    }
}
