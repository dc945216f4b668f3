//! A key moved whole to another node (cluster resharding): what the source sends, and what
//! the target checks before it applies it.
//!
//! The payload is the key as the typed ops that rebuild it, in the log's own op encoding
//! (see [`crate::engine::op`]), so the target applies and logs exactly what it received and
//! replay rebuilds the same key:
//!
//! - a string: one `SetString` with its expiry;
//! - a stream: an `Append` per live entry, oldest first (or a `CreateStream` when it has
//!   none), then one `StreamState` with its counters (last ID, entries added, max deleted
//!   ID), its groups with every consumer and pending entry, their NACK zones and its IDMP
//!   state, then its TTL as an `ExpireAt`.
//!
//! ```text
//! payload := "RILLKEY1" | u32 crc32c(ops) (LE) | ops (op::encode_into, database 0)
//! ```
//!
//! This is Rill's own format, not Redis's DUMP/RDB serialization: only Rill nodes exchange
//! it (`RILL.MIGRATE` → `RILL.RESTORE`). The checksum catches a payload damaged on the way;
//! the target also refuses ops of any other kind, or for any other key, than a moved key
//! is made of.

use bytes::{Bytes, BytesMut};

use crate::engine::id::StreamId;
use crate::engine::keyspace::{Keyspace, ValueRef};
use crate::engine::op::{self, LoggedOp, Op};
use crate::engine::payload::PayloadError;

/// First bytes of a moved key's payload.
pub const MAGIC: &[u8; 8] = b"RILLKEY1";

/// Why a payload was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransferError {
    /// Not a payload of this format (or a damaged one).
    #[error("payload version or checksum are wrong")]
    BadPayload,
    /// Well-formed, but not the ops of one moved key named as the request says.
    #[error("payload does not hold the key it is restored as")]
    WrongContent,
}

/// The ops that rebuild `key` of database `db` elsewhere, or `None` when it does not exist
/// (an expired key counts as missing). Entry payloads are read through the keyspace's
/// payload store (from the log when they are not cached).
pub fn export(
    ks: &Keyspace,
    db: usize,
    key: &Bytes,
    now_ms: u64,
) -> Result<Option<Vec<Op>>, PayloadError> {
    let d = ks.db(db);
    if d.is_expired(key, now_ms) {
        return Ok(None);
    }
    let at_ms = d.expire_at(key);
    let mut ops = Vec::new();
    match d.peek(key) {
        None => return Ok(None),
        Some(ValueRef::String(value)) => ops.push(Op::SetString {
            key: key.clone(),
            value: Bytes::copy_from_slice(value),
            at_ms,
        }),
        Some(ValueRef::Stream(s)) => {
            let entries = s.range(StreamId::MIN, StreamId::MAX, None, false, &ks.payloads)?;
            if entries.is_empty() {
                ops.push(Op::CreateStream { key: key.clone() });
            }
            ops.extend(entries.into_iter().map(|e| Op::Append {
                key: key.clone(),
                id: e.id,
                fields: e.fields,
            }));
            ops.push(Op::StreamState {
                key: key.clone(),
                state: Bytes::from(s.encode_state()),
            });
            if let Some(at_ms) = at_ms {
                ops.push(Op::ExpireAt {
                    key: key.clone(),
                    at_ms,
                });
            }
        }
    }
    Ok(Some(ops))
}

/// `ops` as a payload.
pub fn encode(ops: Vec<Op>) -> Bytes {
    let logged: Vec<LoggedOp> = ops.into_iter().map(|op| LoggedOp { db: 0, op }).collect();
    let mut body = BytesMut::new();
    op::encode_into(&logged, &mut body, &mut Vec::new());
    let mut out = BytesMut::with_capacity(12 + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
    out.extend_from_slice(&body);
    out.freeze()
}

/// The ops of a payload, checked: the right format and checksum, and the ops of one moved
/// key, all naming `key` (see the module docs).
pub fn decode(payload: &Bytes, key: &[u8]) -> Result<Vec<Op>, TransferError> {
    let body = payload
        .strip_prefix(MAGIC.as_slice())
        .filter(|rest| rest.len() >= 4)
        .ok_or(TransferError::BadPayload)?;
    let (crc, _) = body.split_at(4);
    let crc = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    let body = payload.slice(MAGIC.len() + 4..);
    if crc32c::crc32c(&body) != crc {
        return Err(TransferError::BadPayload);
    }
    let (ops, _) = op::decode(&body).map_err(|_| TransferError::BadPayload)?;
    let ops: Vec<Op> = ops.into_iter().map(|l| l.op).collect();
    let named = |k: &Bytes| k.as_ref() == key;
    let string = matches!(ops.as_slice(), [Op::SetString { key: k, .. }] if named(k));
    let stream = {
        let body = match ops.as_slice() {
            [rest @ .., Op::ExpireAt { key: k, .. }] if named(k) => rest,
            all => all,
        };
        match body {
            [Op::CreateStream { key: k }, Op::StreamState { key: s, .. }] => named(k) && named(s),
            [appends @ .., Op::StreamState { key: s, .. }] if !appends.is_empty() => {
                named(s)
                    && appends
                        .iter()
                        .all(|o| matches!(o, Op::Append { key: k, .. } if named(k)))
            }
            _ => false,
        }
    };
    if string || stream {
        Ok(ops)
    } else {
        Err(TransferError::WrongContent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::index::NodeLimits;

    fn stream_with(ids: &[u64]) -> Keyspace {
        let mut ks = Keyspace::new(1);
        let mut ops: Vec<Op> = ids
            .iter()
            .map(|ms| Op::Append {
                key: b("s"),
                id: StreamId::new(*ms, 0),
                fields: vec![b("f"), b("v")],
            })
            .collect();
        ops.push(Op::GroupCreate {
            key: b("s"),
            group: b("g"),
            last: StreamId::MIN,
            entries_read: None,
        });
        for mut op in ops {
            ks.apply(0, &mut op, NodeLimits::default()).expect("setup");
        }
        ks
    }

    fn counters(ks: &Keyspace) -> (u64, StreamId, u64, usize) {
        match ks.db(0).peek(b"s") {
            Some(ValueRef::Stream(s)) => (s.len(), s.last_id(), s.entries_added(), s.groups.len()),
            other => panic!("not a stream: {other:?}"),
        }
    }

    #[test]
    fn an_exported_stream_rebuilds_whole_and_inconsistent_state_is_refused() {
        let source = stream_with(&[1, 5]);
        let ops = export(&source, 0, &b("s"), 0)
            .expect("readable")
            .expect("exists");
        let ops = decode(&encode(ops), b"s").expect("a moved key");
        let mut target = Keyspace::new(1);
        for mut op in ops {
            target
                .apply(0, &mut op, NodeLimits::default())
                .expect("applies");
        }
        assert_eq!(counters(&target), counters(&source));

        // A state whose last ID is below the entries it is put on (a forged RILL.RESTORE):
        // refused, and the stream keeps its own counters.
        let old = stream_with(&[1]);
        let Some(ValueRef::Stream(s)) = old.db(0).peek(b"s") else {
            panic!("not a stream")
        };
        let forged = Bytes::from(s.encode_state());
        let mut bare = Keyspace::new(1);
        for ms in [1, 5] {
            let mut op = Op::Append {
                key: b("s"),
                id: StreamId::new(ms, 0),
                fields: vec![b("f"), b("v")],
            };
            bare.apply(0, &mut op, NodeLimits::default())
                .expect("append");
        }
        let before = counters(&bare);
        let mut op = Op::StreamState {
            key: b("s"),
            state: forged,
        };
        assert!(bare.apply(0, &mut op, NodeLimits::default()).is_err());
        assert_eq!(counters(&bare), before);
    }

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn payloads_round_trip_and_damage_or_other_keys_are_refused() {
        let ops = vec![
            Op::Append {
                key: b("s"),
                id: StreamId::new(1, 0),
                fields: vec![b("f"), b("v")],
            },
            Op::StreamState {
                key: b("s"),
                state: b("x"),
            },
            Op::ExpireAt {
                key: b("s"),
                at_ms: 5,
            },
        ];
        let payload = encode(ops.clone());
        assert_eq!(decode(&payload, b"s"), Ok(ops));
        assert_eq!(decode(&payload, b"t"), Err(TransferError::WrongContent));
        let mut damaged = payload.to_vec();
        let last = damaged.len() - 1;
        damaged[last] ^= 1;
        assert_eq!(
            decode(&Bytes::from(damaged), b"s"),
            Err(TransferError::BadPayload)
        );
        assert_eq!(decode(&b("RILLKEY0"), b"s"), Err(TransferError::BadPayload));
        let del = encode(vec![Op::Del { key: b("s") }]);
        assert_eq!(decode(&del, b"s"), Err(TransferError::WrongContent));
        let string = encode(vec![Op::SetString {
            key: b("k"),
            value: b("v"),
            at_ms: None,
        }]);
        assert!(decode(&string, b"k").is_ok());
    }
}
