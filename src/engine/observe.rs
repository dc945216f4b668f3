//! What the engine tells a monitor about its streams, read at one moment: per stream its
//! length and bytes, per group its pending count, lag and oldest pending delivery, per
//! consumer its pending count and idle time. The Prometheus endpoint (`server::metrics`)
//! renders it; nothing here knows the text format.
//!
//! Nothing is maintained on the write path: a reading walks the keyspace once (with the
//! keyspace lock held by the caller) and picks the streams to describe with a bounded heap,
//! so its cost is O(streams · log limit) plus the chosen streams' nodes, groups and
//! consumers, and the number of streams, groups and consumers it yields is each bounded by
//! [`Selection`]'s limits whatever the keyspace holds.

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
    /// At most this many groups and this many consumers in all (over every stream
    /// described), the ones with the most pending entries first.
    pub max_groups: usize,
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
            let consumers_omitted = consumers.len().saturating_sub(sel.max_groups);
            consumers.truncate(sel.max_groups);
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
    groups.truncate(sel.max_groups);
    StreamReading {
        db,
        key: Bytes::copy_from_slice(key),
        length: s.len(),
        bytes: s.index().node_shapes().map(|n| n.listpack_bytes).sum(),
        groups,
    }
}

/// Keeps at most `max` groups over all `streams`, and at most `max` consumers over the
/// groups kept: the most pending first (ties: the earlier stream, then name order), so the
/// series a reading yields are bounded by `max` per family, not by a product of limits.
fn bound_groups(streams: &mut [StreamReading], max: usize) {
    let mut groups: Vec<(u64, usize, usize)> = streams
        .iter()
        .enumerate()
        .flat_map(|(si, s)| {
            s.groups
                .iter()
                .enumerate()
                .map(move |(gi, g)| (g.pending, si, gi))
        })
        .collect();
    if groups.len() > max {
        groups.sort_by(|a, b| b.0.cmp(&a.0).then((a.1, a.2).cmp(&(b.1, b.2))));
        let keep: std::collections::HashSet<(usize, usize)> = groups
            .iter()
            .take(max)
            .map(|&(_, si, gi)| (si, gi))
            .collect();
        for (si, s) in streams.iter_mut().enumerate() {
            let mut gi = 0;
            s.groups.retain(|_| {
                let kept = keep.contains(&(si, gi));
                gi += 1;
                kept
            });
        }
    }
    let mut consumers: Vec<(u64, usize, usize, usize)> = Vec::new();
    for (si, s) in streams.iter().enumerate() {
        for (gi, g) in s.groups.iter().enumerate() {
            consumers.extend(
                g.consumers
                    .iter()
                    .enumerate()
                    .map(|(ci, c)| (c.pending, si, gi, ci)),
            );
        }
    }
    if consumers.len() > max {
        consumers.sort_by(|a, b| b.0.cmp(&a.0).then((a.1, a.2, a.3).cmp(&(b.1, b.2, b.3))));
        let keep: std::collections::HashSet<(usize, usize, usize)> = consumers
            .iter()
            .take(max)
            .map(|&(_, si, gi, ci)| (si, gi, ci))
            .collect();
        for (si, s) in streams.iter_mut().enumerate() {
            for (gi, g) in s.groups.iter_mut().enumerate() {
                let before = g.consumers.len();
                let mut ci = 0;
                g.consumers.retain(|_| {
                    let kept = keep.contains(&(si, gi, ci));
                    ci += 1;
                    kept
                });
                g.consumers_omitted += before - g.consumers.len();
            }
        }
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
        let mut streams: Vec<StreamReading> = chosen
            .into_iter()
            .filter_map(|(_, _, db, key)| {
                let s = self.stream_raw(db, &key)?;
                Some(describe(db, &key, s, sel, now_ms))
            })
            .collect();
        bound_groups(&mut streams, sel.max_groups);
        StreamsReading {
            total_streams: total,
            streams,
        }
    }
}
