//! The Raft record kinds: a Raft log kept in the segments, framed like every other record
//! (`u32 len | u32 crc32c | u8 kind | payload`, see `record.rs`).
//!
//! Written only when the data directory holds a Raft log (`raftlog.rs`, the server with
//! `cluster-raft yes`); the single-node server never writes them. Storage knows their framing (term, index, entry type, hard
//! state) and nothing of what an entry's data means: for Rill that is a batch of typed ops,
//! applied by the layers above once the entry is committed.
//!
//! ```text
//! kind 6, RaftEntry     u64 term | u64 index | u8 type | u32 c | c bytes context | data
//! kind 7, HardState     u64 term | u64 vote | u64 commit
//! kind 8, ConfState     4 × (u32 n | n × u64 id) | u8 auto_leave
//!                       (voters, learners, voters_outgoing, learners_next)
//! kind 9, RaftCompact   u64 index | u64 term
//! ```
//!
//! All integers little endian. `type` is raft's `EntryType`: 0 normal, 1 conf change,
//! 2 conf change v2. The context (raft's `Entry::context`, set by `propose(context, data)`)
//! is kept so an entry reads back exactly as raft handed it over; it is empty in practice.
//! `RaftCompact` says the entries up to and including `index` are purged, and keeps the
//! term of that entry (Raft asks for the term of the entry before the first one).
//!
//! Entries carry their index, so unlike `Ops` records they need no position of their own to
//! detect a copied or moved file: recovery checks that the indexes run without a gap
//! (`raftlog.rs`), and a moved block shows as a gap or a repeat.
//!
//! A checksum-valid record whose payload does not have its kind's shape is damage (it was
//! written by a bug or is a checksum collision), reported with file and offset like any.

use bytes::{BufMut, Bytes, BytesMut};

use super::record::{RecordKind, HEADER_LEN};

/// Whether `kind` is one of the Raft record kinds.
pub fn is_raft_kind(kind: u8) -> bool {
    (RecordKind::RaftEntry as u8..=RecordKind::RaftCompact as u8).contains(&kind)
}

/// Bytes of a `RaftEntry` payload before its context.
pub const ENTRY_META_LEN: usize = 8 + 8 + 1 + 4;

/// Offset of a `RaftEntry` record's data from the record's first byte, for an entry with a
/// context of `context_len` bytes: where payload handles into the entry's ops point from.
pub fn data_offset(context_len: usize) -> u64 {
    (HEADER_LEN + ENTRY_META_LEN + context_len) as u64
}

/// Raft's entry types, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum EntryKind {
    /// A normal entry: data proposed by the application (or raft's empty leader no-op).
    Normal = 0,
    /// A `ConfChange` (v1) entry.
    ConfChange = 1,
    /// A `ConfChangeV2` entry (joint consensus).
    ConfChangeV2 = 2,
}

impl EntryKind {
    fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(EntryKind::Normal),
            1 => Some(EntryKind::ConfChange),
            2 => Some(EntryKind::ConfChangeV2),
            _ => None,
        }
    }
}

/// One Raft log entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftEntryRecord {
    pub term: u64,
    pub index: u64,
    pub kind: EntryKind,
    pub context: Bytes,
    pub data: Bytes,
}

/// Raft's hard state: what a node must never forget (its term, its vote in that term,
/// and how far it knows the log is committed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HardStateRecord {
    pub term: u64,
    pub vote: u64,
    pub commit: u64,
}

/// Raft's configuration: voters and learners, and the outgoing half of a joint one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfStateRecord {
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
    pub voters_outgoing: Vec<u64>,
    pub learners_next: Vec<u64>,
    pub auto_leave: bool,
}

/// The entries up to `index` (inclusive) are purged; `term` was the term of entry `index`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompactRecord {
    pub index: u64,
    pub term: u64,
}

/// A Raft record as recovery hands it over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RaftRecord {
    Entry(RaftEntryRecord),
    HardState(HardStateRecord),
    ConfState(ConfStateRecord),
    Compact(CompactRecord),
}

/// Appends the whole record (header and payload) of `rec` to `out`.
pub fn encode(rec: &RaftRecord, out: &mut BytesMut) {
    let start = out.len();
    out.put_u32_le(0);
    out.put_u32_le(0);
    match rec {
        RaftRecord::Entry(e) => {
            out.put_u8(RecordKind::RaftEntry as u8);
            out.put_u64_le(e.term);
            out.put_u64_le(e.index);
            out.put_u8(e.kind as u8);
            out.put_u32_le(e.context.len() as u32);
            out.put_slice(&e.context);
            out.put_slice(&e.data);
        }
        RaftRecord::HardState(h) => {
            out.put_u8(RecordKind::HardState as u8);
            out.put_u64_le(h.term);
            out.put_u64_le(h.vote);
            out.put_u64_le(h.commit);
        }
        RaftRecord::ConfState(c) => {
            out.put_u8(RecordKind::ConfState as u8);
            for ids in [&c.voters, &c.learners, &c.voters_outgoing, &c.learners_next] {
                out.put_u32_le(ids.len() as u32);
                for id in ids {
                    out.put_u64_le(*id);
                }
            }
            out.put_u8(u8::from(c.auto_leave));
        }
        RaftRecord::Compact(c) => {
            out.put_u8(RecordKind::RaftCompact as u8);
            out.put_u64_le(c.index);
            out.put_u64_le(c.term);
        }
    }
    let payload_len = (out.len() - start - HEADER_LEN) as u32;
    let crc = crc32c::crc32c(&out[start + 8..]);
    out[start..start + 4].copy_from_slice(&payload_len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Bytes `rec` takes in the log, header included.
pub fn encoded_len(rec: &RaftRecord) -> usize {
    HEADER_LEN
        + match rec {
            RaftRecord::Entry(e) => ENTRY_META_LEN + e.context.len() + e.data.len(),
            RaftRecord::HardState(_) => 24,
            RaftRecord::ConfState(c) => {
                16 + 8
                    * (c.voters.len()
                        + c.learners.len()
                        + c.voters_outgoing.len()
                        + c.learners_next.len())
                    + 1
            }
            RaftRecord::Compact(_) => 16,
        }
}

fn u64_at(p: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        p.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

fn u32_at(p: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        p.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// Whether a payload of `n` bytes can have the shape of a Raft record of `kind` (recovery's
/// cheap test before it computes a checksum while looking for valid records after damage).
pub fn plausible_len(kind: u8, n: usize) -> bool {
    match kind {
        k if k == RecordKind::RaftEntry as u8 => n >= ENTRY_META_LEN,
        k if k == RecordKind::HardState as u8 => n == 24,
        k if k == RecordKind::ConfState as u8 => n >= 17 && (n - 17).is_multiple_of(8),
        k if k == RecordKind::RaftCompact as u8 => n == 16,
        _ => false,
    }
}

/// Decodes the payload of a record of `kind`: `None` when `kind` is no Raft kind,
/// `Some(Err(why))` when the payload does not have its kind's shape.
pub fn decode(kind: u8, payload: &Bytes) -> Option<Result<RaftRecord, &'static str>> {
    if !is_raft_kind(kind) {
        return None;
    }
    let p = &payload[..];
    let rec = match kind {
        k if k == RecordKind::RaftEntry as u8 => (|| {
            let term = u64_at(p, 0).ok_or("Raft entry too short")?;
            let index = u64_at(p, 8).ok_or("Raft entry too short")?;
            let kind = p
                .get(16)
                .copied()
                .and_then(EntryKind::from_u8)
                .ok_or("Raft entry of an unknown type")?;
            let c = u32_at(p, 17).ok_or("Raft entry too short")? as usize;
            if c > p.len() - ENTRY_META_LEN {
                return Err("Raft entry context runs past the record");
            }
            Ok(RaftRecord::Entry(RaftEntryRecord {
                term,
                index,
                kind,
                context: payload.slice(ENTRY_META_LEN..ENTRY_META_LEN + c),
                data: payload.slice(ENTRY_META_LEN + c..),
            }))
        })(),
        k if k == RecordKind::HardState as u8 => {
            match (p.len(), u64_at(p, 0), u64_at(p, 8), u64_at(p, 16)) {
                (24, Some(term), Some(vote), Some(commit)) => {
                    Ok(RaftRecord::HardState(HardStateRecord {
                        term,
                        vote,
                        commit,
                    }))
                }
                _ => Err("hard state record of the wrong length"),
            }
        }
        k if k == RecordKind::ConfState as u8 => (|| {
            let mut at = 0usize;
            let mut lists: [Vec<u64>; 4] = Default::default();
            for list in &mut lists {
                let n = u32_at(p, at).ok_or("conf state record cut short")? as usize;
                at += 4;
                if n > (p.len() - at) / 8 {
                    return Err("conf state list runs past the record");
                }
                for i in 0..n {
                    list.push(u64_at(p, at + 8 * i).ok_or("conf state record cut short")?);
                }
                at += 8 * n;
            }
            let auto_leave = match (p.get(at), p.len() == at + 1) {
                (Some(0), true) => false,
                (Some(1), true) => true,
                _ => return Err("conf state record of the wrong length"),
            };
            let [voters, learners, voters_outgoing, learners_next] = lists;
            Ok(RaftRecord::ConfState(ConfStateRecord {
                voters,
                learners,
                voters_outgoing,
                learners_next,
                auto_leave,
            }))
        })(),
        _ => match (p.len(), u64_at(p, 0), u64_at(p, 8)) {
            (16, Some(index), Some(term)) => Ok(RaftRecord::Compact(CompactRecord { index, term })),
            _ => Err("Raft compaction record of the wrong length"),
        },
    };
    Some(rec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::record::{self, Decoded};

    fn samples() -> Vec<RaftRecord> {
        vec![
            RaftRecord::Entry(RaftEntryRecord {
                term: 3,
                index: 17,
                kind: EntryKind::Normal,
                context: Bytes::new(),
                data: Bytes::from_static(b"ops"),
            }),
            RaftRecord::Entry(RaftEntryRecord {
                term: u64::MAX,
                index: 1,
                kind: EntryKind::ConfChangeV2,
                context: Bytes::from_static(b"ctx"),
                data: Bytes::new(),
            }),
            RaftRecord::HardState(HardStateRecord {
                term: 4,
                vote: 2,
                commit: 9,
            }),
            RaftRecord::ConfState(ConfStateRecord {
                voters: vec![1, 2, 3],
                learners: vec![4],
                voters_outgoing: vec![],
                learners_next: vec![5, 6],
                auto_leave: true,
            }),
            RaftRecord::ConfState(ConfStateRecord::default()),
            RaftRecord::Compact(CompactRecord { index: 8, term: 2 }),
        ]
    }

    #[test]
    fn every_kind_roundtrips_and_every_flip_is_detected() {
        for rec in samples() {
            let mut buf = BytesMut::new();
            encode(&rec, &mut buf);
            assert_eq!(buf.len(), encoded_len(&rec));
            let buf = buf.freeze();
            let Decoded::Record { kind, payload, len } = record::decode(&buf) else {
                panic!("{rec:?} does not decode");
            };
            assert_eq!(len, buf.len());
            assert!(plausible_len(kind, payload.len()));
            assert!(record::carries_state(kind));
            assert_eq!(decode(kind, &payload), Some(Ok(rec.clone())));
            if let RaftRecord::Entry(e) = &rec {
                let at = data_offset(e.context.len()) as usize;
                assert_eq!(&buf[at..], &e.data[..]);
            }
            for i in 4..buf.len() {
                let mut b = buf.to_vec();
                b[i] ^= 0x10;
                assert!(matches!(
                    record::decode(&Bytes::from(b)),
                    Decoded::Invalid(_)
                ));
            }
        }
    }

    #[test]
    fn payloads_of_the_wrong_shape_are_refused() {
        let k = RecordKind::HardState as u8;
        assert!(matches!(decode(k, &Bytes::from(vec![0; 23])), Some(Err(_))));
        let k = RecordKind::RaftEntry as u8;
        let mut e = vec![0u8; ENTRY_META_LEN];
        e[16] = 9;
        assert!(matches!(decode(k, &Bytes::from(e.clone())), Some(Err(_))));
        e[16] = 0;
        e[17] = 1; // a context of 1 byte with no byte left for it
        assert!(matches!(decode(k, &Bytes::from(e)), Some(Err(_))));
        assert_eq!(decode(RecordKind::Ops as u8, &Bytes::new()), None);
    }
}
