//! A stream's consumer groups, and which of its entries they still need (Redis 8.2).
//!
//! XDELEX, XACKDEL and the `KEEPREF | DELREF | ACKED` options of XADD and XTRIM ask, per
//! entry, whether any group still *references* it (`streamEntryIsReferenced`): some group
//! has not read it yet (its ID is above the smallest last-delivered-id of the groups), or
//! it is in some group's PEL. Trimming asks that of every entry it walks, so the answer
//! must not cost a walk over every PEL. [`Groups`] therefore keeps, beside the groups,
//! `min_last`: the smallest last-delivered-id over the groups (Redis's
//! `min_cgroup_last_id`), invalidated like Redis's cache when the group holding it moves.
//! It is derived and never persisted; it stays exact because a group can only be changed
//! through [`GroupMut`], whose `Drop` notices a moved last-delivered-id. Reading the
//! groups (`Deref` to the map) needs no guard.
//!
//! "Pending in some group" is asked of each group's PEL (an O(log n) lookup per group).
//! Redis keeps a second index for it (`cgroups_ref`: entry ID → the groups that have it
//! pending), and Rill kept one too (ID → count of groups), but it cost about 40 bytes per
//! pending entry — as much again as half the PEL itself — to save lookups only for
//! streams with several groups, and a bookkeeping step on every PEL change.

use std::collections::BTreeMap;
use std::ops::{Deref, DerefMut};

use bytes::Bytes;

use crate::engine::group::ConsumerGroup;
use crate::engine::id::StreamId;

/// What deleting or trimming an entry does about the consumer groups that reference it:
/// the `KEEPREF | DELREF | ACKED` option of XDELEX, XACKDEL, XADD and XTRIM.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RefPolicy {
    /// Delete the entry and leave PEL entries pointing at it (Redis 7.4's behaviour).
    #[default]
    KeepRef,
    /// Delete the entry and remove it from every group's (and consumer's) PEL.
    DelRef,
    /// Delete the entry only if no group references it; otherwise keep it.
    Acked,
}

impl RefPolicy {
    /// The option token (`KEEPREF`, `DELREF`, `ACKED`, any case), or `None`.
    pub fn parse(token: &[u8]) -> Option<RefPolicy> {
        if token.eq_ignore_ascii_case(b"keepref") {
            Some(RefPolicy::KeepRef)
        } else if token.eq_ignore_ascii_case(b"delref") {
            Some(RefPolicy::DelRef)
        } else if token.eq_ignore_ascii_case(b"acked") {
            Some(RefPolicy::Acked)
        } else {
            None
        }
    }

    /// The byte the log stores it as.
    pub fn code(self) -> u8 {
        match self {
            RefPolicy::KeepRef => 0,
            RefPolicy::DelRef => 1,
            RefPolicy::Acked => 2,
        }
    }

    /// The policy stored as `code`.
    pub fn from_code(code: u8) -> Option<RefPolicy> {
        match code {
            0 => Some(RefPolicy::KeepRef),
            1 => Some(RefPolicy::DelRef),
            2 => Some(RefPolicy::Acked),
            _ => None,
        }
    }
}

/// The smallest last-delivered-id over the groups, cached as Redis caches it.
#[derive(Debug, Clone, Copy, Default)]
struct MinLast {
    /// The minimum when `!stale`; `None` when there is no group.
    value: Option<StreamId>,
    /// The group that held the minimum moved up or went away: compute it again.
    stale: bool,
}

/// A stream's consumer groups by name, with the index of the entries they reference.
///
/// Reads go through `Deref` to the map (`get`, `contains_key`, `len`, iteration); changes
/// through [`Groups::get_mut`], [`Groups::insert`] and [`Groups::remove`].
#[derive(Debug, Clone, Default)]
pub struct Groups {
    map: BTreeMap<Bytes, ConsumerGroup>,
    min_last: MinLast,
}

impl Deref for Groups {
    type Target = BTreeMap<Bytes, ConsumerGroup>;

    fn deref(&self) -> &Self::Target {
        &self.map
    }
}

impl<'a> IntoIterator for &'a Groups {
    type Item = (&'a Bytes, &'a ConsumerGroup);
    type IntoIter = std::collections::btree_map::Iter<'a, Bytes, ConsumerGroup>;

    fn into_iter(self) -> Self::IntoIter {
        self.map.iter()
    }
}

impl Groups {
    /// The group named `name`, to change it; the cached minimum follows when the guard
    /// is dropped.
    pub fn get_mut(&mut self, name: &[u8]) -> Option<GroupMut<'_>> {
        let Groups { map, min_last } = self;
        let group = map.get_mut(name)?;
        let last_before = group.last_delivered_id();
        Some(GroupMut {
            group,
            min_last,
            last_before,
        })
    }

    /// Adds (or replaces) a group.
    pub fn insert(&mut self, name: Bytes, group: ConsumerGroup) -> Option<ConsumerGroup> {
        let old = self.remove(&name);
        let last = group.last_delivered_id();
        if !self.min_last.stale {
            self.min_last.value = Some(self.min_last.value.map_or(last, |m| m.min(last)));
        }
        self.map.insert(name, group);
        old
    }

    /// Removes a group (XGROUP DESTROY): its PEL no longer references anything.
    pub fn remove(&mut self, name: &[u8]) -> Option<ConsumerGroup> {
        let group = self.map.remove(name)?;
        if self.map.is_empty() {
            self.min_last = MinLast::default();
        } else if self.min_last.value == Some(group.last_delivered_id()) {
            self.min_last.stale = true;
        }
        Some(group)
    }

    /// The smallest last-delivered-id over the groups; `None` without groups.
    pub fn min_last_delivered(&self) -> Option<StreamId> {
        if self.min_last.stale {
            self.map
                .values()
                .map(ConsumerGroup::last_delivered_id)
                .min()
        } else {
            self.min_last.value
        }
    }

    /// Computes the cached minimum again if it is stale, so that a run of
    /// [`is_referenced`](Self::is_referenced) calls costs O(log n) each.
    pub fn refresh(&mut self) {
        if self.min_last.stale {
            self.min_last = MinLast {
                value: self.min_last_delivered(),
                stale: false,
            };
        }
    }

    /// Whether some group still needs entry `id` (`streamEntryIsReferenced`): a group has
    /// not read it yet (it is above the smallest last-delivered-id), or it is pending in a
    /// group. With no group nothing is referenced. Only the ID is looked at: an ID that is
    /// not in the stream can be referenced too.
    pub fn is_referenced(&self, id: StreamId) -> bool {
        match self.min_last_delivered() {
            None => false,
            Some(min) => min < id || self.is_pending_anywhere(id),
        }
    }

    /// Whether `id` is pending in at least one group.
    pub fn is_pending_anywhere(&self, id: StreamId) -> bool {
        self.map.values().any(|g| g.is_pending(id))
    }

    /// How many (group, entry) pending pairs there are: the sum of the PEL sizes.
    pub fn pending_refs(&self) -> u64 {
        self.map.values().map(|g| g.pending_count() as u64).sum()
    }

    /// DELREF: removes `id` from every group's PEL and its owner's (`streamCleanupEntryCGroupRefs`).
    /// Returns whether it was pending anywhere.
    pub fn drop_everywhere(&mut self, id: StreamId) -> bool {
        let mut dropped = false;
        for group in self.map.values_mut() {
            dropped |= group.drop_pending(id);
        }
        dropped
    }

    /// Panics unless the index matches the groups (tests).
    #[cfg(test)]
    pub fn check(&self) {
        assert_eq!(
            self.min_last_delivered(),
            self.map
                .values()
                .map(ConsumerGroup::last_delivered_id)
                .min(),
            "smallest last-delivered-id"
        );
    }
}

/// One group, borrowed for a change: derefs to the [`ConsumerGroup`]; when dropped, a
/// moved last-delivered-id updates (or invalidates) the cached minimum.
pub struct GroupMut<'a> {
    group: &'a mut ConsumerGroup,
    min_last: &'a mut MinLast,
    last_before: StreamId,
}

impl Deref for GroupMut<'_> {
    type Target = ConsumerGroup;

    fn deref(&self) -> &ConsumerGroup {
        self.group
    }
}

impl DerefMut for GroupMut<'_> {
    fn deref_mut(&mut self) -> &mut ConsumerGroup {
        self.group
    }
}

impl Drop for GroupMut<'_> {
    fn drop(&mut self) {
        let now = self.group.last_delivered_id();
        if now != self.last_before && !self.min_last.stale {
            // As `streamUpdateCGroupLastId`: a new minimum is known at once; the group
            // that held the minimum moving up means it must be computed again.
            match self.min_last.value {
                Some(min) if now < min => self.min_last.value = Some(now),
                Some(min) if self.last_before == min => self.min_last.stale = true,
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(ms: u64) -> StreamId {
        StreamId::new(ms, 0)
    }

    fn name(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn policy_tokens_and_codes() {
        assert_eq!(RefPolicy::parse(b"acked"), Some(RefPolicy::Acked));
        assert_eq!(RefPolicy::parse(b"DelRef"), Some(RefPolicy::DelRef));
        assert_eq!(RefPolicy::parse(b"KEEPREF"), Some(RefPolicy::KeepRef));
        assert_eq!(RefPolicy::parse(b"KEEP"), None);
        for p in [RefPolicy::KeepRef, RefPolicy::DelRef, RefPolicy::Acked] {
            assert_eq!(RefPolicy::from_code(p.code()), Some(p));
        }
        assert_eq!(RefPolicy::from_code(3), None);
    }

    #[test]
    fn the_index_follows_every_pel_change() {
        let mut groups = Groups::default();
        assert!(!groups.is_referenced(id(1)));
        groups.insert(name("a"), ConsumerGroup::new(StreamId::MIN, None));
        groups.insert(name("b"), ConsumerGroup::new(id(3), None));
        // Group a has read nothing: everything above 0-0 is referenced.
        assert!(groups.is_referenced(id(1)));
        let (c, d) = (name("c"), name("d"));
        {
            let mut a = groups.get_mut(b"a").unwrap();
            a.touch_consumer(&c, 0);
            for ms in 1..=4 {
                a.set_position(id(ms), None);
                a.deliver(id(ms), &c, ms);
            }
        }
        groups.check();
        assert_eq!(groups.min_last_delivered(), Some(id(3)));
        assert!(groups.is_referenced(id(2)), "pending in a");
        assert!(groups.is_referenced(id(5)), "unread by b");
        {
            let mut a = groups.get_mut(b"a").unwrap();
            assert!(a.ack(id(2)));
            a.redeliver(id(1), 9);
        }
        groups.check();
        assert!(!groups.is_referenced(id(2)));
        {
            let mut b = groups.get_mut(b"b").unwrap();
            b.touch_consumer(&d, 0);
            b.deliver(id(1), &d, 5);
            b.set_position(id(9), None);
        }
        groups.check();
        assert_eq!(groups.min_last_delivered(), Some(id(4)));
        assert_eq!(groups.pending_refs(), 4);
        assert!(groups.drop_everywhere(id(1)));
        assert!(!groups.drop_everywhere(id(1)));
        groups.check();
        assert_eq!(groups.pending_refs(), 2);
        groups.get_mut(b"a").unwrap().delete_consumer(&c);
        groups.check();
        assert_eq!(groups.pending_refs(), 0);
        groups.remove(b"a");
        groups.refresh();
        groups.check();
        assert_eq!(groups.min_last_delivered(), Some(id(9)));
        groups.remove(b"b");
        assert!(!groups.is_referenced(id(100)));
        groups.check();
    }

    #[test]
    fn a_random_history_keeps_the_index_exact() {
        let mut next = crate::engine::test_rng(0x9e37_79b9_7f4a_7c15);
        let mut groups = Groups::default();
        let consumers = [name("x"), name("y")];
        for step in 0..20_000u64 {
            let g = format!("g{}", next() % 3);
            let r = next() % 100;
            if !groups.contains_key(g.as_bytes()) || r < 2 {
                groups.remove(g.as_bytes());
                groups.insert(name(&g), ConsumerGroup::new(id(next() % 50), None));
                continue;
            }
            if r < 5 {
                groups.remove(g.as_bytes());
                continue;
            }
            let target = id(next() % 60);
            let c = &consumers[(next() % 2) as usize];
            if r >= 90 {
                groups.drop_everywhere(target);
            } else {
                let mut group = groups.get_mut(g.as_bytes()).unwrap();
                match r {
                    5..=39 => {
                        group.touch_consumer(c, step);
                        group.deliver(target, c, step);
                    }
                    40..=59 => {
                        group.ack(target);
                    }
                    60..=69 => {
                        let opts = crate::engine::group::ClaimOptions {
                            min_idle_ms: 0,
                            delivery_time_ms: step,
                            retry_count: None,
                            force: next().is_multiple_of(2),
                            just_id: false,
                        };
                        group.touch_consumer(c, step);
                        group.claim(target, c, !next().is_multiple_of(4), &opts, step);
                    }
                    70..=74 => {
                        group.delete_consumer(c);
                    }
                    _ => group.set_position(target, None),
                }
            }
            if step % 7 == 0 {
                groups.check();
            }
            if step % 13 == 0 {
                groups.refresh();
            }
        }
        groups.check();
    }
}
