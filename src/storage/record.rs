//! The log record format.
//!
//! ```text
//! offset  width  field
//! 0       4      payload length n (u32, little endian)
//! 4       4      CRC32C of bytes 8 .. 9+n (kind and payload)
//! 8       1      kind
//! 9       n      payload
//! ```
//!
//! A record is the unit of atomicity: everything one command (or one EXEC, or one
//! write together with the blocked readers it served) changed is one record, so
//! recovery never applies half of it.
//!
//! Kind 1, `Batch`: the payload is a sequence of commands, each
//! `u16 db | u32 argc | argc × (u32 len | bytes)`, replayed in order through the
//! command layer. The commands are deterministic rewrites of what ran (an XADD
//! with `*` is logged with the ID it got, an XREADGROUP as the claims it made).
//!
//! Kind 2, `State` (checkpoints only): engine-defined binary state — a stream's
//! index nodes, counters and groups — handed to the command layer as is.
//!
//! Kind 3, `Segments` (checkpoints only): `u64` numbers of the segments before the
//! checkpoint that still hold payloads of live entries, and so must be kept.
//!
//! Kind 4, `Seal` (segments only): `u64` number of the next segment. The last
//! record of every segment but the newest since format 2 (`RILLLOG2`), written
//! after the next segment exists durably, so a missing newest segment is seen.
//!
//! Kind 5, `Ops` (segments since format 3, `RILLSEG3`, and checkpoints since
//! `RILLSNP3`): `u64 position | ops`. The position is where the record was written,
//! `segment << 40 | offset` of its first byte (`u64::MAX` in a checkpoint), covered by
//! the checksum: a valid record found anywhere else (a copied or renamed file, a block
//! written at the wrong place) is damage, which no checksum over the bytes alone can
//! see. The ops are typed state changes, encoded and applied by the engine
//! (`engine::op`, whose docs give the layout); storage frames them and knows nothing
//! of their content. Kind 1 is no longer written; it is still read from older data
//! directories (`persist::format1`).
//!
//! Kinds 6–9 (segments only; written only when the directory holds a Raft log, never by
//! the single-node server): `RaftEntry`, `HardState`, `ConfState` and `RaftCompact`, the
//! Raft log and the Raft state that must survive a restart. Storage frames them and
//! checks their indexes; it knows nothing of what an entry's data means. Their layouts
//! are in `raft_record.rs`, next to their encoders.
//!
//! What recovery tells apart at the end of the newest segment (see `recovery.rs`):
//! a torn write (a record cut short, or a zero-filled hole a power cut left) is
//! truncated with a warning; a damaged record (valid records after it, a length
//! field whose record checksum matches a shorter length, garbage without a hole) is
//! corruption and stops start-up naming the file and offset.

use bytes::{BufMut, Bytes, BytesMut};

/// Bytes before the payload.
pub const HEADER_LEN: usize = 9;
/// Largest payload: what the 32-bit length field can express. The command layer refuses a
/// command or transaction whose record could exceed it *before* running it (see
/// [`command_len`]), and [`crate::storage::Log::append_at`] refuses (poisoning the log) a
/// record that still does, so no acknowledged write is ever too large to read back. (Until
/// 9ce2e6f this was 1 GiB while nothing stopped a larger EXEC from being acknowledged;
/// recovery then took it for a torn tail.)
pub const MAX_PAYLOAD: usize = u32::MAX as usize;

/// Bytes one command with these arguments takes inside a batch record's payload.
pub fn command_len(argv: &[Bytes]) -> u64 {
    6 + argv.iter().map(|a| 4 + a.len() as u64).sum::<u64>()
}

/// Record kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum RecordKind {
    /// A batch of commands to replay.
    Batch = 1,
    /// Binary state written by a checkpoint.
    State = 2,
    /// The older segments a checkpoint still refers to.
    Segments = 3,
    /// The last record of a segment: the number of the segment that follows, written
    /// once that segment exists durably.
    Seal = 4,
    /// Typed state changes (`engine::op`).
    Ops = 5,
    /// One Raft log entry (`raft_record.rs`).
    RaftEntry = 6,
    /// Raft's hard state: term, vote, commit.
    HardState = 7,
    /// Raft's configuration (voters and learners).
    ConfState = 8,
    /// The Raft log's entries up to an index are purged.
    RaftCompact = 9,
}

/// Bytes of the position that starts an `Ops` record's payload.
pub const POS_LEN: usize = 8;

/// Offset of an `Ops` record's ops from the record's first byte.
pub const OPS_AT: u64 = (HEADER_LEN + POS_LEN) as u64;

/// The position an `Ops` record in a checkpoint carries (it is in no segment).
pub const NO_POS: u64 = u64::MAX;

/// Starts an `Ops` record at the end of `out`: header and position left to
/// [`finish_ops`]. Returns the record's start.
pub fn begin_ops(out: &mut BytesMut) -> usize {
    let start = out.len();
    out.put_u32_le(0);
    out.put_u32_le(0);
    out.put_u8(RecordKind::Ops as u8);
    out.put_u64_le(0);
    start
}

/// Completes the `Ops` record `rec` (all of its bytes, from its header on) once where it
/// goes is known: its position, length and checksum.
pub fn finish_ops(rec: &mut [u8], pos: u64) {
    rec[HEADER_LEN..HEADER_LEN + POS_LEN].copy_from_slice(&pos.to_le_bytes());
    let payload_len = (rec.len() - HEADER_LEN) as u32;
    let crc = crc32c::crc32c(&rec[8..]);
    rec[..4].copy_from_slice(&payload_len.to_le_bytes());
    rec[4..8].copy_from_slice(&crc.to_le_bytes());
}

/// Splits an `Ops` record's payload into its position and its ops.
pub fn split_ops(payload: &Bytes) -> Option<(u64, Bytes)> {
    let pos = u64::from_le_bytes(payload.get(..POS_LEN)?.try_into().ok()?);
    Some((pos, payload.slice(POS_LEN..)))
}

/// Whether a record of `kind` carries state to replay (a batch or ops): what recovery's
/// damage checks look for after a bad record.
pub fn carries_state(kind: u8) -> bool {
    kind == RecordKind::Batch as u8
        || kind == RecordKind::Ops as u8
        || super::raft_record::is_raft_kind(kind)
}

/// Bytes of a whole seal record.
pub const SEAL_LEN: usize = HEADER_LEN + 8;

/// Appends a seal record naming `next` to `out`.
pub fn encode_seal(next: u64, out: &mut BytesMut) {
    encode_record(RecordKind::Seal, &next.to_le_bytes(), out);
}

/// The next segment's number, if `kind`/`payload` is a seal record.
pub fn parse_seal(kind: u8, payload: &[u8]) -> Option<u64> {
    if kind != RecordKind::Seal as u8 {
        return None;
    }
    Some(u64::from_le_bytes(payload.try_into().ok()?))
}

/// Appends a record of `kind` with `payload` to `out`.
pub fn encode_record(kind: RecordKind, payload: &[u8], out: &mut BytesMut) {
    out.put_u32_le(payload.len() as u32);
    let mut crc = crc32c::crc32c(&[kind as u8]);
    crc = crc32c::crc32c_append(crc, payload);
    out.put_u32_le(crc);
    out.put_u8(kind as u8);
    out.put_slice(payload);
}

/// Where the arguments `from..` of each selected command start inside a batch
/// record encoded by [`encode_batch`], and how many bytes they span.
///
/// Used to point stream entries at their payloads: the field/value arguments of an
/// XADD are stored as `u32 len | bytes` each, which is exactly the packed payload form.
/// `select` returns, for a command, the index of its first payload argument.
/// Returns (command index, offset from the record's start, length).
pub fn arg_spans(
    commands: &[LoggedCommand],
    mut select: impl FnMut(&LoggedCommand) -> Option<usize>,
) -> Vec<(usize, u64, u32)> {
    let mut out = Vec::new();
    let mut off = HEADER_LEN as u64;
    for (i, c) in commands.iter().enumerate() {
        off += 6;
        let from = select(c).filter(|&f| f < c.argv.len());
        let mut start = off;
        for (j, a) in c.argv.iter().enumerate() {
            if Some(j) == from {
                start = off;
            }
            off += 4 + a.len() as u64;
        }
        if from.is_some() {
            out.push((i, start, (off - start) as u32));
        }
    }
    out
}

/// One command inside a batch: the database it ran in and its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedCommand {
    /// Database index.
    pub db: u16,
    /// Command name and arguments.
    pub argv: Vec<Bytes>,
}

/// Appends the encoding of a batch record to `out`.
pub fn encode_batch(commands: &[LoggedCommand], out: &mut BytesMut) {
    let start = out.len();
    out.put_u32_le(0);
    out.put_u32_le(0);
    out.put_u8(RecordKind::Batch as u8);
    for c in commands {
        out.put_u16_le(c.db);
        out.put_u32_le(c.argv.len() as u32);
        for a in &c.argv {
            out.put_u32_le(a.len() as u32);
            out.put_slice(a);
        }
    }
    let payload_len = (out.len() - start - HEADER_LEN) as u32;
    let crc = crc32c::crc32c(&out[start + 8..]);
    out[start..start + 4].copy_from_slice(&payload_len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// What decoding the bytes at some offset found.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// A valid record of `len` bytes in total.
    Record {
        kind: u8,
        payload: Bytes,
        len: usize,
    },
    /// The bytes end inside the record (`needed` bytes would be required).
    Incomplete,
    /// The record is complete but invalid.
    Invalid(&'static str),
}

/// Decodes the record at the start of `buf`.
pub fn decode(buf: &Bytes) -> Decoded {
    if buf.len() < HEADER_LEN {
        return Decoded::Incomplete;
    }
    let n = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    let crc = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
    if n > MAX_PAYLOAD {
        return Decoded::Invalid("record length out of range");
    }
    if buf.len() < HEADER_LEN + n {
        return Decoded::Incomplete;
    }
    if crc32c::crc32c(&buf[8..HEADER_LEN + n]) != crc {
        return Decoded::Invalid("checksum mismatch");
    }
    Decoded::Record {
        kind: buf[8],
        payload: buf.slice(HEADER_LEN..HEADER_LEN + n),
        len: HEADER_LEN + n,
    }
}

/// Whether `payload` has the shape of a batch (commands whose argument lengths add
/// up to exactly its length), without copying anything. Recovery uses it to look
/// for valid records after a damaged one cheaply before checking a checksum.
pub fn batch_well_formed(payload: &[u8]) -> bool {
    let mut p = 0usize;
    let u32_at = |p: usize| -> Option<usize> {
        let b = payload.get(p..p.checked_add(4)?)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    if payload.is_empty() {
        return false;
    }
    while p < payload.len() {
        let Some(argc) = u32_at(p + 2) else {
            return false;
        };
        p += 6;
        if argc == 0 || argc > (payload.len() - p.min(payload.len())) / 4 {
            return false;
        }
        for _ in 0..argc {
            let Some(len) = u32_at(p) else {
                return false;
            };
            p = match p.checked_add(4 + len) {
                Some(end) if end <= payload.len() => end,
                _ => return false,
            };
        }
    }
    true
}

/// Parses a batch payload into its commands.
pub fn parse_batch(payload: &Bytes) -> Option<Vec<LoggedCommand>> {
    // One copy per record: the arguments are slices of it. Slicing the segment
    // buffer instead would keep a whole segment alive for as long as any replayed
    // key or name refers to it; copying each argument costs an allocation each.
    let owned = Bytes::copy_from_slice(payload);
    let mut out = Vec::new();
    let mut p = 0usize;
    let take = |p: &mut usize, n: usize| -> Option<usize> {
        let start = *p;
        let end = start.checked_add(n)?;
        if end > payload.len() {
            return None;
        }
        *p = end;
        Some(start)
    };
    while p < payload.len() {
        let s = take(&mut p, 2)?;
        let db = u16::from_le_bytes([payload[s], payload[s + 1]]);
        let s = take(&mut p, 4)?;
        let argc = u32::from_le_bytes(payload[s..s + 4].try_into().ok()?) as usize;
        let mut argv = Vec::with_capacity(argc.min(1024));
        for _ in 0..argc {
            let s = take(&mut p, 4)?;
            let len = u32::from_le_bytes(payload[s..s + 4].try_into().ok()?) as usize;
            let s = take(&mut p, len)?;
            argv.push(owned.slice(s..s + len));
        }
        out.push(LoggedCommand { db, argv });
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<LoggedCommand> {
        vec![
            LoggedCommand {
                db: 0,
                argv: vec![
                    Bytes::from("XADD"),
                    Bytes::from("k"),
                    Bytes::from("1-1"),
                    Bytes::from("f"),
                    Bytes::from("v"),
                ],
            },
            LoggedCommand {
                db: 3,
                argv: vec![Bytes::from("DEL"), Bytes::from("")],
            },
        ]
    }

    #[test]
    fn command_len_is_what_a_batch_encodes() {
        let cmds = sample();
        let mut buf = BytesMut::new();
        encode_batch(&cmds, &mut buf);
        let sum: u64 = cmds.iter().map(|c| command_len(&c.argv)).sum();
        assert_eq!(buf.len() as u64, HEADER_LEN as u64 + sum);
    }

    #[test]
    fn roundtrip() {
        let mut buf = BytesMut::new();
        encode_batch(&sample(), &mut buf);
        let buf = buf.freeze();
        match decode(&buf) {
            Decoded::Record { kind, payload, len } => {
                assert_eq!(kind, RecordKind::Batch as u8);
                assert_eq!(len, buf.len());
                assert_eq!(parse_batch(&payload).unwrap(), sample());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_cut_is_incomplete_and_every_flip_is_detected() {
        let mut buf = BytesMut::new();
        encode_batch(&sample(), &mut buf);
        let full = buf.freeze();
        for cut in 0..full.len() {
            assert_eq!(
                decode(&full.slice(..cut)),
                Decoded::Incomplete,
                "cut at {cut}"
            );
        }
        for i in 4..full.len() {
            let mut b = full.to_vec();
            b[i] ^= 0x40;
            assert!(
                matches!(decode(&Bytes::from(b)), Decoded::Invalid(_)),
                "flip at {i}"
            );
        }
    }
}
