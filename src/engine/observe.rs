//! What the engine tells a monitor about its streams, read at one moment: per stream its
//! length and bytes, per group its pending count, lag and oldest pending delivery, per
//! consumer its pending count and idle time. The Prometheus endpoint (`server::metrics`)
//! renders it; nothing here knows the text format.
//!
//! Nothing is maintained on the write path: a reading walks the keyspace once (with the
//! keyspace lock held by the caller) and picks the streams to describe with a bounded heap,
//! so its cost is O(streams · log limit) plus the chosen streams' nodes, groups and
//! consumers, and the number of series it yields is bounded by [`Selection`]'s limits
//! whatever the keyspace holds.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use bytes::Bytes;

use super::keyspace::Keyspace;
use super::stream::Stream;

/// Which streams a reading describes.
#[derive(Debug, Clone)]
pub struct Selection<'a> {
    /// At most this many streams (0: none).
    pub max_streams: usize,
    /// Streams whose name a pattern matches come first (glob, as KEYS); the rest of the
    /// places go to the longest other streams.
    pub always: &'a [String],
    /// At most this many groups per stream and consumers per group, the ones with the most
    /// pending entries first.
    pub max_per_stream: usize,
}

/// One stream at the moment of the reading.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamReading {
    pub db: usize,
    pub key: Bytes,
    /// Live entries (XLEN).
    pub length: u64,
    /// Bytes of its entries as Redis would hold them (listpack bytes, summed over nodes).
    pub bytes: u64,
    pub groups: Vec<GroupReading>,
}

/// One consumer group.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupReading {
    pub name: Bytes,
    /// Entries delivered and not acknowledged (PEL size).
    pub pending: u64,
    /// Entries not delivered to the group yet (XINFO's `lag`); `None` when XDEL made it
    /// unknowable, as XINFO's nil.
    pub lag: Option<i64>,
    /// Milliseconds since the oldest pending entry was (last) delivered; `None` with no
    /// pending entry.
    pub oldest_pending_ms: Option<u64>,
    pub consumers: Vec<ConsumerReading>,
    /// Consumers left out by the per-group limit.
    pub consumers_omitted: usize,
}

/// One consumer.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumerReading {
    pub name: Bytes,
    pub pending: u64,
    /// Milliseconds since it was last seen (XINFO CONSUMERS `idle`).
    pub idle_ms: u64,
}

/// A reading of the keyspace's streams.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamsReading {
    /// Streams in the keyspace, all databases.
    pub total_streams: u64,
    /// The streams chosen, longest first.
    pub streams: Vec<StreamReading>,
}

fn describe(db: usize, key: &[u8], s: &Stream, sel: &Selection<'_>, now_ms: u64) -> StreamReading {
    let counters = s.counters();
    let mut groups: Vec<GroupReading> = s
        .groups
        .iter()
        .map(|(name, g)| {
            let mut consumers: Vec<ConsumerReading> = g
                .consumers()
                .map(|c| ConsumerReading {
                    name: c.name().clone(),
                    pending: c.pending_count() as u64,
                    idle_ms: now_ms.saturating_sub(c.seen_time_ms()),
                })
                .collect();
            consumers.sort_by(|a, b| b.pending.cmp(&a.pending).then(a.name.cmp(&b.name)));
            let consumers_omitted = consumers.len().saturating_sub(sel.max_per_stream);
            consumers.truncate(sel.max_per_stream);
            GroupReading {
                name: name.clone(),
                pending: g.pending_count() as u64,
                lag: g.lag(&counters),
                oldest_pending_ms: g
                    .pending_by_delivery_time()
                    .next()
                    .map(|p| now_ms.saturating_sub(p.delivery_time_ms)),
                consumers,
                consumers_omitted,
            }
        })
        .collect();
    groups.sort_by(|a, b| b.pending.cmp(&a.pending).then(a.name.cmp(&b.name)));
    groups.truncate(sel.max_per_stream);
    StreamReading {
        db,
        key: Bytes::copy_from_slice(key),
        length: s.len(),
        bytes: s.index().node_shapes().map(|n| n.listpack_bytes).sum(),
        groups,
    }
}

impl Keyspace {
    /// Reads the streams `sel` chooses: allow-listed ones first, then the longest, at most
    /// `sel.max_streams` in all.
    pub fn observe_streams(&self, sel: &Selection<'_>, now_ms: u64) -> StreamsReading {
        // Min-heap of the best `max_streams` so far by (allow-listed, length).
        let mut best: BinaryHeap<Reverse<(bool, u64, usize, Bytes)>> = BinaryHeap::new();
        let mut total = 0u64;
        for db in 0..self.db_count() {
            for (key, s) in self.db(db).streams() {
                total += 1;
                if sel.max_streams == 0 {
                    continue;
                }
                let allowed = sel
                    .always
                    .iter()
                    .any(|p| crate::glob::glob_match(p.as_bytes(), key, false));
                let rank = (allowed, s.len());
                if best.len() < sel.max_streams {
                    best.push(Reverse((rank.0, rank.1, db, Bytes::copy_from_slice(key))));
                } else if let Some(Reverse(low)) = best.peek() {
                    if rank > (low.0, low.1) {
                        best.pop();
                        best.push(Reverse((rank.0, rank.1, db, Bytes::copy_from_slice(key))));
                    }
                }
            }
        }
        let mut chosen: Vec<(bool, u64, usize, Bytes)> =
            best.into_iter().map(|Reverse(t)| t).collect();
        chosen.sort_by(|a, b| (b.0, b.1).cmp(&(a.0, a.1)).then(a.3.cmp(&b.3)));
        let streams = chosen
            .into_iter()
            .filter_map(|(_, _, db, key)| {
                let s = self.stream_raw(db, &key)?;
                Some(describe(db, &key, s, sel, now_ms))
            })
            .collect();
        StreamsReading {
            total_streams: total,
            streams,
        }
    }
}
