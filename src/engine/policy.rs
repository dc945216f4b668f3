//! Broker policies (Rill-only, issue #16): retention per stream — maximum age, maximum
//! bytes and maximum length, enforced by the server's retention sweep whether or not anyone
//! writes.
//!
//! A stream's own settings ([`StreamPolicy`], set by `RILL.POLICY SET`) override the
//! server-wide defaults (`stream-retention-*` directives) field by field; an unset field
//! takes the default, a field set to 0 turns that limit off for the stream.
//!
//! The sweep *decides* here ([`retention_trims`]) and logs what it decided as ordinary
//! exact `Trim` ops (a `MINID` with the cut-off ID, a `MAXLEN` with the count; a DELREF or
//! ACKED trim becomes the `TrimEntries` it amounted to, as XTRIM's does), so replay and
//! Raft followers remove exactly the same entries without reading a clock or the
//! configuration. The stream's own settings are state: an `Op::PolicySet` in the log, a
//! `POLICY` record in checkpoints, part of a stream moved between nodes.
//!
//! Limits, each trimming whole entries oldest first:
//! - *age* (ms): entries whose ID time is more than `max_age_ms` before the sweep's time go
//!   (`MINID now − max_age`); an entry's age is its ID's, as Redis's `MINID` and IDMP count it.
//! - *bytes*: the stream's index nodes are summed newest first with the listpack bytes Redis
//!   would hold for them (the figure `stream-node-max-bytes` bounds); the oldest nodes whose
//!   bytes no longer fit go whole (`MINID` = the first kept node's key), the newest node is
//!   always kept. Node granularity keeps this O(nodes) and costs at most one node
//!   (`stream-node-max-bytes`, 4 KiB by default) of precision.
//! - *length*: `MAXLEN n`.
//! - *refs*: what trimming does about the groups' references, as Redis 8.2's trimming
//!   options: KEEPREF (default; Redis's), DELREF (also drop them from every PEL) or ACKED
//!   (never remove an entry some group has not delivered and acknowledged).

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::engine::codec::{Put, Reader};
use crate::engine::id::StreamId;
use crate::engine::index::TrimRule;
use crate::engine::refs::RefPolicy;
use crate::engine::stream::{Stream, TrimSpec};

/// A stream's own retention settings: `None` = take the server's default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamPolicy {
    /// Maximum entry age in milliseconds (0 = no age limit).
    pub max_age_ms: Option<u64>,
    /// Maximum bytes (0 = no byte limit).
    pub max_bytes: Option<u64>,
    /// Maximum entries (0 = no length limit).
    pub max_len: Option<u64>,
    /// What trimming does about the groups' references.
    pub refs: Option<RefPolicy>,
    /// Per consumer group (by name): dead-lettering.
    pub groups: BTreeMap<Bytes, GroupPolicy>,
}

/// A consumer group's dead-letter settings (`RILL.POLICY GROUP`).
///
/// An entry whose delivery counter reached `max_deliver` and whose last delivery failed —
/// XNACKed, or not acknowledged within `ack_wait_ms` — is moved by the policy sweep to the
/// dead-letter stream with its fields and origin metadata and acknowledged in the group, in
/// one log record. `XNACK … FATAL` dead-letters at once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupPolicy {
    /// Deliveries after which a failed entry is dead-lettered (0 = never by count).
    pub max_deliver: Option<u64>,
    /// The dead-letter stream (`None`: `<key>:dlq`).
    pub dead_letter: Option<Bytes>,
    /// How long a delivery may stay unacknowledged before it counts as failed, in ms
    /// (`None`: [`DEFAULT_ACK_WAIT_MS`]).
    pub ack_wait_ms: Option<u64>,
    /// Redelivery backoff, in ms: after its k-th delivery an entry may be claimed by
    /// `XREADGROUP … CLAIM` only once idle for ACKWAIT + `backoff[k-1]` (the last step
    /// repeats). `None`: no backoff, Redis's CLAIM rule alone.
    pub backoff_ms: Option<Vec<u64>>,
}

/// Steps a backoff schedule may have.
pub const MAX_BACKOFF_STEPS: usize = 32;

/// A delivery's lease when the group sets none: JetStream's default AckWait.
pub const DEFAULT_ACK_WAIT_MS: u64 = 30_000;

impl GroupPolicy {
    /// True when dead-lettering is on (a MAXDELIVER or a DEADLETTER stream is set): then
    /// XNACK FATAL dead-letters at once.
    pub fn dead_letters(&self) -> bool {
        self.delivery_limit().is_some() || self.dead_letter.is_some()
    }

    /// MAXDELIVER when it limits deliveries (set and not 0): an entry delivered that many
    /// times is the dead-letter sweep's, never delivered again.
    pub fn delivery_limit(&self) -> Option<u64> {
        self.max_deliver.filter(|n| *n > 0)
    }

    /// True when an entry delivered `deliveries` times may be delivered again.
    pub fn may_deliver_again(&self, deliveries: u64) -> bool {
        self.delivery_limit().is_none_or(|n| deliveries < n)
    }

    /// The dead-letter stream of `key`'s group.
    pub fn dead_letter_key(&self, key: &[u8]) -> Bytes {
        match &self.dead_letter {
            Some(k) => k.clone(),
            None => {
                let mut k = key.to_vec();
                k.extend_from_slice(b":dlq");
                Bytes::from(k)
            }
        }
    }

    /// The lease of a delivery, in ms.
    pub fn ack_wait(&self) -> u64 {
        self.ack_wait_ms.unwrap_or(DEFAULT_ACK_WAIT_MS)
    }

    /// `self` with every field `other` sets replaced by `other`'s.
    pub fn merged(&self, other: &GroupPolicy) -> GroupPolicy {
        GroupPolicy {
            max_deliver: other.max_deliver.or(self.max_deliver),
            dead_letter: other
                .dead_letter
                .clone()
                .or_else(|| self.dead_letter.clone()),
            ack_wait_ms: other.ack_wait_ms.or(self.ack_wait_ms),
            backoff_ms: other.backoff_ms.clone().or_else(|| self.backoff_ms.clone()),
        }
    }

    /// The earliest time (Unix ms) `XREADGROUP … CLAIM` may redeliver `e` under the
    /// backoff schedule; `None` without one. A lease counts from the last delivery plus
    /// ACKWAIT; an XNACKed entry's step counts from `nacked_at`, when it was NACKed (XNACK
    /// stores no time in the PEL: the caller keeps it, live only), and without it the
    /// entry is due at once.
    pub fn redelivery_at(
        &self,
        e: &crate::engine::group::PendingEntry,
        nacked_at: Option<u64>,
    ) -> Option<u64> {
        let steps = self.backoff_ms.as_ref().filter(|s| !s.is_empty())?;
        let k = usize::try_from(e.delivery_count.saturating_sub(1))
            .unwrap_or(usize::MAX)
            .min(steps.len() - 1);
        if e.is_nacked() {
            return Some(nacked_at.map_or(0, |t| t.saturating_add(steps[k])));
        }
        Some(
            e.delivery_time_ms
                .saturating_add(self.ack_wait())
                .saturating_add(steps[k]),
        )
    }

    fn encode(&self, out: &mut Vec<u8>) {
        let mut fields: Vec<(u8, Vec<u8>)> = Vec::new();
        if let Some(v) = self.max_deliver {
            fields.push((group_tag::MAX_DELIVER, v.to_le_bytes().to_vec()));
        }
        if let Some(k) = &self.dead_letter {
            fields.push((group_tag::DEAD_LETTER, k.to_vec()));
        }
        if let Some(v) = self.ack_wait_ms {
            fields.push((group_tag::ACK_WAIT, v.to_le_bytes().to_vec()));
        }
        if let Some(steps) = &self.backoff_ms {
            fields.push((
                group_tag::BACKOFF,
                steps.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ));
        }
        out.put_u32v(fields.len() as u32);
        for (t, v) in fields {
            out.put_u8v(t);
            out.put_bytes(&v);
        }
    }

    fn decode(r: &mut Reader) -> Option<GroupPolicy> {
        let mut p = GroupPolicy::default();
        let int = |b: &Bytes| Some(u64::from_le_bytes(b[..].try_into().ok()?));
        for _ in 0..r.count(5)? {
            let t = r.u8()?;
            let v = r.bytes()?;
            match t {
                group_tag::MAX_DELIVER => p.max_deliver = Some(int(&v)?),
                group_tag::DEAD_LETTER => p.dead_letter = Some(v),
                group_tag::ACK_WAIT => p.ack_wait_ms = Some(int(&v)?),
                group_tag::BACKOFF => {
                    if v.len() % 8 != 0 || v.len() / 8 > MAX_BACKOFF_STEPS {
                        return None;
                    }
                    p.backoff_ms = Some(
                        v.chunks(8)
                            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                            .collect(),
                    );
                }
                _ => return None,
            }
        }
        Some(p)
    }
}

/// Field tags of a [`GroupPolicy`]'s encoding.
mod group_tag {
    pub const MAX_DELIVER: u8 = 1;
    pub const DEAD_LETTER: u8 = 2;
    pub const ACK_WAIT: u8 = 3;
    pub const BACKOFF: u8 = 4;
}

/// Field tags of [`StreamPolicy::encode`].
mod tag {
    pub const MAX_AGE: u8 = 1;
    pub const MAX_BYTES: u8 = 2;
    pub const MAX_LEN: u8 = 3;
    pub const REFS: u8 = 4;
}

impl StreamPolicy {
    /// True when nothing is set (the stream follows the defaults entirely).
    pub fn is_empty(&self) -> bool {
        *self == StreamPolicy::default()
    }

    /// `self` with every field `other` sets replaced by `other`'s (group settings merge
    /// group by group).
    pub fn merged(&self, other: &StreamPolicy) -> StreamPolicy {
        let mut groups = self.groups.clone();
        for (name, g) in &other.groups {
            let merged = groups.get(name).cloned().unwrap_or_default().merged(g);
            groups.insert(name.clone(), merged);
        }
        StreamPolicy {
            max_age_ms: other.max_age_ms.or(self.max_age_ms),
            max_bytes: other.max_bytes.or(self.max_bytes),
            max_len: other.max_len.or(self.max_len),
            refs: other.refs.or(self.refs),
            groups,
        }
    }

    /// The dead-letter settings of group `name`, if it has any.
    pub fn group(&self, name: &[u8]) -> Option<&GroupPolicy> {
        self.groups.get(name)
    }

    /// The settings in force: each field this stream sets, else the default's.
    pub fn effective(&self, defaults: &RetentionDefaults) -> RetentionDefaults {
        RetentionDefaults {
            max_age_ms: self.max_age_ms.unwrap_or(defaults.max_age_ms),
            max_bytes: self.max_bytes.unwrap_or(defaults.max_bytes),
            max_len: self.max_len.unwrap_or(defaults.max_len),
            refs: self.refs.unwrap_or(defaults.refs),
        }
    }

    /// Log and checkpoint form: `u32 n | n × (u8 tag | u64 value) | u32 g | g × (bytes
    /// group | u32 m | m × (u8 tag | bytes value))` (group values: u64 little endian, or
    /// the dead-letter key).
    pub fn encode(&self, out: &mut Vec<u8>) {
        let fields = [
            (tag::MAX_AGE, self.max_age_ms),
            (tag::MAX_BYTES, self.max_bytes),
            (tag::MAX_LEN, self.max_len),
            (tag::REFS, self.refs.map(|r| u64::from(r.code()))),
        ];
        let set: Vec<_> = fields
            .iter()
            .filter_map(|(t, v)| v.map(|v| (*t, v)))
            .collect();
        out.put_u32v(set.len() as u32);
        for (t, v) in set {
            out.put_u8v(t);
            out.put_u64v(v);
        }
        out.put_u32v(self.groups.len() as u32);
        for (name, g) in &self.groups {
            out.put_bytes(name);
            g.encode(out);
        }
    }

    /// Reads what [`StreamPolicy::encode`] wrote; `None` when malformed.
    pub fn decode(r: &mut Reader) -> Option<StreamPolicy> {
        let mut p = StreamPolicy::default();
        for _ in 0..r.count(9)? {
            let t = r.u8()?;
            let v = r.u64()?;
            let slot = match t {
                tag::MAX_AGE => &mut p.max_age_ms,
                tag::MAX_BYTES => &mut p.max_bytes,
                tag::MAX_LEN => &mut p.max_len,
                tag::REFS => {
                    p.refs = Some(RefPolicy::from_code(u8::try_from(v).ok()?)?);
                    continue;
                }
                _ => return None,
            };
            *slot = Some(v);
        }
        for _ in 0..r.count(8)? {
            let name = r.bytes()?;
            let g = GroupPolicy::decode(r)?;
            p.groups.insert(name, g);
        }
        Some(p)
    }

    /// [`StreamPolicy::decode`] of a whole buffer.
    pub fn from_bytes(b: Bytes) -> Option<StreamPolicy> {
        let mut r = Reader::new(b);
        let p = StreamPolicy::decode(&mut r)?;
        r.is_empty().then_some(p)
    }
}

/// Retention settings in force (a stream's, or the server's `stream-retention-*`
/// defaults); 0 turns a limit off.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetentionDefaults {
    /// Maximum entry age in milliseconds.
    pub max_age_ms: u64,
    /// Maximum bytes.
    pub max_bytes: u64,
    /// Maximum entries.
    pub max_len: u64,
    /// What trimming does about the groups' references.
    pub refs: RefPolicy,
}

impl RetentionDefaults {
    /// True when some limit is on.
    pub fn is_active(&self) -> bool {
        self.max_age_ms > 0 || self.max_bytes > 0 || self.max_len > 0
    }
}

/// The exact trims the retention sweep at `now_ms` applies to `stream` under `limits`
/// (at most two: one `MINID` for age and bytes, one `MAXLEN`), or none when nothing is
/// over a limit. Each is an exact rule, so its log record replays the same anywhere.
pub fn retention_trims(stream: &Stream, limits: &RetentionDefaults, now_ms: u64) -> Vec<TrimSpec> {
    let mut trims = Vec::new();
    let Some(first) = stream.first_id() else {
        return trims;
    };
    let spec = |rule| TrimSpec {
        rule,
        approx: false,
        limit: 0,
        refs: limits.refs,
    };
    let mut min_id: Option<StreamId> = None;
    if limits.max_age_ms > 0 {
        let cut = StreamId {
            ms: now_ms.saturating_sub(limits.max_age_ms),
            seq: 0,
        };
        if first < cut {
            min_id = Some(cut);
        }
    }
    if limits.max_bytes > 0 {
        if let Some(cut) = bytes_cut(stream, limits.max_bytes) {
            if first < cut {
                min_id = Some(min_id.map_or(cut, |m| m.max(cut)));
            }
        }
    }
    if let Some(cut) = min_id {
        trims.push(spec(TrimRule::MinId(cut)));
    }
    if limits.max_len > 0 && stream.len() > limits.max_len {
        trims.push(spec(TrimRule::MaxLen(limits.max_len)));
    }
    trims
}

/// The key of the oldest node kept under a byte limit: newest nodes first while their
/// listpack bytes fit (the newest always), `None` when every node fits.
fn bytes_cut(stream: &Stream, max_bytes: u64) -> Option<StreamId> {
    let mut total = 0u64;
    let mut kept: Option<StreamId> = None;
    for node in stream.index().node_shapes().rev() {
        total = total.saturating_add(node.listpack_bytes);
        if total > max_bytes && kept.is_some() {
            return kept;
        }
        kept = Some(node.key);
    }
    None
}

/// Parses a backoff schedule: durations separated by spaces or commas, each a number with
/// an optional unit `ms` (the default), `s`, `m` or `h` (`"1s 5s 30s 2m"`); `None` when a
/// step does not parse or there are none or more than [`MAX_BACKOFF_STEPS`].
pub fn parse_backoff(text: &[u8]) -> Option<Vec<u64>> {
    let text = std::str::from_utf8(text).ok()?;
    let steps: Option<Vec<u64>> = text
        .split([' ', ','])
        .filter(|s| !s.is_empty())
        .map(|step| {
            let split = step
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(step.len());
            let (digits, unit) = step.split_at(split);
            let n: u64 = if digits.is_empty() {
                return None;
            } else {
                digits.parse().ok()?
            };
            let scale = match unit.to_ascii_lowercase().as_str() {
                "" | "ms" => 1,
                "s" => 1000,
                "m" => 60_000,
                "h" => 3_600_000,
                _ => return None,
            };
            n.checked_mul(scale).filter(|v| *v <= i64::MAX as u64)
        })
        .collect();
    steps.filter(|s| !s.is_empty() && s.len() <= MAX_BACKOFF_STEPS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::id::AddIdSpec;
    use crate::engine::index::NodeLimits;
    use crate::engine::payload::PayloadStore;

    fn stream_of(ids: &[u64], value_len: usize) -> Stream {
        let store = PayloadStore::new(1 << 20);
        let mut s = Stream::new();
        let limits = NodeLimits {
            max_entries: 10,
            max_bytes: 0,
        };
        for &ms in ids {
            let fields = vec![Bytes::from_static(b"f"), Bytes::from(vec![b'x'; value_len])];
            s.add(
                AddIdSpec::Explicit(StreamId { ms, seq: 0 }),
                &fields,
                ms,
                limits,
                &store,
            )
            .expect("ascending IDs");
        }
        s
    }

    #[test]
    fn maxdeliver_zero_or_unset_never_stops_deliveries() {
        let limited = GroupPolicy {
            max_deliver: Some(2),
            ..Default::default()
        };
        assert!(limited.may_deliver_again(1));
        assert!(!limited.may_deliver_again(2));
        assert_eq!(limited.delivery_limit(), Some(2));
        for open in [None, Some(0)] {
            let p = GroupPolicy {
                max_deliver: open,
                ..Default::default()
            };
            assert!(p.may_deliver_again(u64::MAX));
            assert_eq!(p.delivery_limit(), None);
        }
    }

    #[test]
    fn backoff_schedules_parse_with_units_and_pick_their_step_by_delivery_count() {
        assert_eq!(
            parse_backoff(b"1s 5s 30s 2m"),
            Some(vec![1000, 5000, 30_000, 120_000])
        );
        assert_eq!(parse_backoff(b"250,1h"), Some(vec![250, 3_600_000]));
        for bad in [&b""[..], b"1x", b"s", b"-1", b"1.5s"] {
            assert_eq!(parse_backoff(bad), None, "{bad:?}");
        }
        let g = GroupPolicy {
            ack_wait_ms: Some(100),
            backoff_ms: Some(vec![1000, 5000]),
            ..Default::default()
        };
        let e = |count| crate::engine::group::PendingEntry::for_test(StreamId::MIN, 10_000, count);
        assert_eq!(g.redelivery_at(&e(1), None), Some(11_100));
        assert_eq!(g.redelivery_at(&e(2), None), Some(15_100));
        assert_eq!(g.redelivery_at(&e(9), None), Some(15_100));
        assert_eq!(GroupPolicy::default().redelivery_at(&e(1), None), None);
    }

    #[test]
    fn encoding_round_trips_and_rejects_unknown_tags() {
        let p = StreamPolicy {
            max_age_ms: Some(60_000),
            max_bytes: None,
            max_len: Some(0),
            refs: Some(RefPolicy::Acked),
            groups: BTreeMap::from([(
                Bytes::from_static(b"g"),
                GroupPolicy {
                    max_deliver: Some(3),
                    dead_letter: Some(Bytes::from_static(b"dead")),
                    ack_wait_ms: None,
                    backoff_ms: Some(vec![1000, 5000]),
                },
            )]),
        };
        let mut out = Vec::new();
        p.encode(&mut out);
        assert_eq!(StreamPolicy::from_bytes(Bytes::from(out.clone())), Some(p));
        out[4] = 99;
        assert_eq!(StreamPolicy::from_bytes(Bytes::from(out)), None);
        let mut empty = Vec::new();
        StreamPolicy::default().encode(&mut empty);
        assert_eq!(
            StreamPolicy::from_bytes(Bytes::from(empty)),
            Some(StreamPolicy::default())
        );
    }

    #[test]
    fn overrides_take_precedence_field_by_field_and_zero_turns_a_limit_off() {
        let defaults = RetentionDefaults {
            max_age_ms: 1000,
            max_bytes: 0,
            max_len: 50,
            refs: RefPolicy::KeepRef,
        };
        let own = StreamPolicy {
            max_len: Some(0),
            refs: Some(RefPolicy::Acked),
            ..Default::default()
        };
        let e = own.effective(&defaults);
        assert_eq!(
            (e.max_age_ms, e.max_len, e.refs),
            (1000, 0, RefPolicy::Acked)
        );
    }

    #[test]
    fn age_and_length_become_exact_rules() {
        let s = stream_of(&(1..=30).collect::<Vec<_>>(), 4);
        let limits = RetentionDefaults {
            max_age_ms: 10,
            max_len: 5,
            ..Default::default()
        };
        let trims = retention_trims(&s, &limits, 25);
        assert_eq!(trims.len(), 2);
        assert_eq!(trims[0].rule, TrimRule::MinId(StreamId { ms: 15, seq: 0 }));
        assert!(!trims[0].approx);
        assert_eq!(trims[1].rule, TrimRule::MaxLen(5));
        // Nothing over the limits: nothing to do.
        let loose = RetentionDefaults {
            max_age_ms: 100,
            max_len: 30,
            ..Default::default()
        };
        assert!(retention_trims(&s, &loose, 25).is_empty());
    }

    #[test]
    fn bytes_cut_whole_nodes_and_keeps_the_newest() {
        // 3 nodes of 10 entries each.
        let s = stream_of(&(1..=30).collect::<Vec<_>>(), 100);
        let sizes: Vec<u64> = s.index().node_shapes().map(|n| n.listpack_bytes).collect();
        assert_eq!(sizes.len(), 3);
        let limits = RetentionDefaults {
            max_bytes: sizes[2] + sizes[1],
            ..Default::default()
        };
        let trims = retention_trims(&s, &limits, 0);
        assert_eq!(trims[0].rule, TrimRule::MinId(StreamId { ms: 11, seq: 0 }));
        let tiny = RetentionDefaults {
            max_bytes: 1,
            ..Default::default()
        };
        let trims = retention_trims(&s, &tiny, 0);
        assert_eq!(trims[0].rule, TrimRule::MinId(StreamId { ms: 21, seq: 0 }));
        let roomy = RetentionDefaults {
            max_bytes: sizes.iter().sum(),
            ..Default::default()
        };
        assert!(retention_trims(&s, &roomy, 0).is_empty());
    }
}
