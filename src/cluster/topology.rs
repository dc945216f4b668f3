//! This node's identity and the cluster's shard map, and the file that keeps both.
//!
//! The map is static in this release: `rill cluster create` computes it, sends it to every
//! node (`RILL.CLUSTER SETTOPOLOGY`), and each node persists it here before it answers. A
//! shard owns slot ranges and lists its nodes, the one that serves writes (the master, later
//! the Raft leader) first; today every shard has exactly one node, but nothing here assumes
//! it, so replicas and leader changes fit later.
//!
//! # The cluster config file
//!
//! `cluster-config-file` inside `dir` (default `nodes.conf`, as in Redis, though the content
//! is Rill's own, not Redis's `nodes.conf` format). Text, one record per line, fields
//! separated by single spaces:
//!
//! ```text
//! rill-cluster 1                                  format name and version
//! myself <node-id>                                this node's 40-hex id
//! epoch <n>                                       the map's version; 0 = no map yet
//! shard <shard-id> <start>-<end> [<start>-<end> …] a shard and its slot ranges (inclusive)
//! node <shard-id> <node-id> <ip> <port> <cport>   a member of that shard, master first
//! migrating <slot> <node-id>                      this node is moving <slot> to that node
//! importing <slot> <node-id>                      this node is receiving <slot> from it
//! ```
//!
//! The same text (without the `myself`, `migrating` and `importing` lines) is what
//! `RILL.CLUSTER SETTOPOLOGY` carries and `RILL.CLUSTER TOPOLOGY` returns, so one parser
//! reads both.
//!
//! # Slot states (online resharding)
//!
//! A slot being moved is *open* on both ends, as in Redis: MIGRATING on the node that owns
//! it (keys it still has are served there, the rest are answered `-ASK`), IMPORTING on the
//! node receiving it (served there only after `ASKING`). The states are this node's own,
//! not part of the map: `rill cluster reshard` sets them with `RILL.CLUSTER SETSLOT`, and
//! they are persisted with the map so that a node killed in the middle of a move restarts
//! with its slot still open, and `rill cluster fix` (or the same reshard again) can finish
//! it. Installing a map closes them the way Redis's `CLUSTER SETSLOT … NODE` does: a
//! MIGRATING slot the map gives away and an IMPORTING slot the map gives to this node are
//! stable again. The file is replaced whole:
//! written to `<file>.tmp`, fsynced, renamed over the old one, and the directory fsynced, so
//! a crash leaves the old or the new map, never a mix. A file that does not parse stops the
//! start-up: regenerating an id would make the node a stranger to its own cluster.

use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::slot::SLOTS;

const FORMAT: &str = "rill-cluster 1";

/// Why the cluster config file or a shard map could not be used; each says what to do.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    #[error("can't read or write the cluster config file '{}': {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the cluster config file '{}' is damaged at line {line}: {reason}. Restore it from a backup; deleting it makes this node a new, empty one with another id", path.display())]
    Corrupt {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("invalid shard map at line {line}: {reason}")]
    InvalidMap { line: usize, reason: String },
    #[error("the shard map does not include this node ({0}); send each node a map that lists it")]
    NotAMember(String),
    #[error("the shard map has epoch {got}, older than this node's {current}")]
    StaleEpoch { got: u64, current: u64 },
    #[error("the shard map differs from this node's at the same epoch {0}; send a newer epoch")]
    ConflictingMap(u64),
    /// MIGRATING asked of a node that does not own the slot (Redis's SETSLOT text).
    #[error("I'm not the owner of hash slot {0}")]
    NotOwner(u16),
    /// IMPORTING asked of the slot's owner (Redis's SETSLOT text).
    #[error("I'm already the owner of hash slot {0}")]
    AlreadyOwner(u16),
    /// The other end of a move is not a node of the map (Redis's SETSLOT text).
    #[error("I don't know about node {0}")]
    UnknownNode(NodeId),
    /// A move between this node and itself.
    #[error("can't move slot {0} between this node and itself")]
    MoveToSelf(u16),
}

/// Sorted slots as inclusive ranges.
fn ranges_of(slots: &[u16]) -> Vec<SlotRange> {
    let mut out: Vec<SlotRange> = Vec::new();
    for &slot in slots {
        match out.last_mut() {
            Some(r) if r.end.checked_add(1) == Some(slot) => r.end = slot,
            _ => out.push(SlotRange {
                start: slot,
                end: slot,
            }),
        }
    }
    out
}

/// Lines of a file with their index.
type Numbered<'a> = Vec<(usize, &'a str)>;

/// Parses a `migrating|importing <slot> <node-id>` line.
fn parse_state(line: &str) -> Option<(u16, SlotState)> {
    let mut f = line.split(' ');
    let (word, slot, id) = (f.next()?, f.next()?, f.next()?);
    if f.next().is_some() {
        return None;
    }
    let slot: u16 = slot.parse().ok().filter(|s| *s < SLOTS)?;
    let id = NodeId::parse(id)?;
    match word {
        "migrating" => Some((slot, SlotState::Migrating(id))),
        "importing" => Some((slot, SlotState::Importing(id))),
        _ => None,
    }
}

/// A 40-hex-digit identifier (node ids, shard ids), as Redis Cluster uses.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(String);

impl NodeId {
    /// A fresh random id.
    pub fn random() -> NodeId {
        use rand::Rng;
        let mut rng = rand::thread_rng();
        NodeId(
            (0..40)
                .map(|_| char::from(b"0123456789abcdef"[rng.gen_range(0..16)]))
                .collect(),
        )
    }

    /// Parses 40 lower-case hex digits.
    pub fn parse(text: &str) -> Option<NodeId> {
        (text.len() == 40
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        .then(|| NodeId(text.to_string()))
    }

    /// The id's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id raft-rs knows this node (or a shard, as its group) by: the first 16 hex
    /// digits as a number, or 1 should they all be zero (raft-rs reserves 0 for "none").
    /// Two members of one group whose ids share those 64 bits are refused when the group
    /// starts (`Shard::raft_voters`).
    pub fn raft_id(&self) -> u64 {
        u64::from_str_radix(&self.0[..16], 16).unwrap_or(1).max(1)
    }
}

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// An inclusive range of slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SlotRange {
    /// First slot.
    pub start: u16,
    /// Last slot (inclusive).
    pub end: u16,
}

/// A node of the map: its id and where clients and peers reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// The node's id.
    pub id: NodeId,
    /// The address clients are redirected to.
    pub ip: String,
    /// Client port.
    pub port: u16,
    /// Cluster bus port.
    pub cport: u16,
    /// Added to its shard after the shard's Raft group was created (`rill cluster
    /// add-node`): with an empty log it starts with no configuration and waits for the
    /// leader's snapshot, rather than found the group with the others. Written as a
    /// trailing `joined` on its `node` line.
    pub joined: bool,
}

impl NodeInfo {
    /// `ip:port`, as MOVED shows it.
    pub fn endpoint(&self) -> String {
        format!("{}:{}", self.ip, self.port)
    }

    /// The node as a Raft membership change's context: `id ip port cport` (every member
    /// learns a new member's address from the log itself).
    pub fn member_context(&self) -> Vec<u8> {
        format!("{} {} {} {}", self.id, self.ip, self.port, self.cport).into_bytes()
    }

    /// Parses [`NodeInfo::member_context`] (a node so added is `joined`).
    pub fn from_member_context(c: &[u8]) -> Option<NodeInfo> {
        let text = std::str::from_utf8(c).ok()?;
        let mut f = text.split(' ');
        let (id, ip, port, cport) = (f.next()?, f.next()?, f.next()?, f.next()?);
        if f.next().is_some() || ip.is_empty() {
            return None;
        }
        Some(NodeInfo {
            id: NodeId::parse(id)?,
            ip: ip.to_string(),
            port: port.parse().ok()?,
            cport: cport.parse().ok()?,
            joined: true,
        })
    }
}

/// A shard: slot ranges and the nodes that hold them, the one serving writes first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    /// The shard's id (CLUSTER MYSHARDID).
    pub id: NodeId,
    /// Slot ranges, sorted.
    pub slots: Vec<SlotRange>,
    /// Members; `nodes[0]` serves writes.
    pub nodes: Vec<NodeInfo>,
}

impl Shard {
    /// The raft ids of the shard's members (its group's voters), in the map's order;
    /// `None` when two members share one (see [`NodeId::raft_id`]).
    pub fn raft_voters(&self) -> Option<Vec<u64>> {
        let ids: Vec<u64> = self.nodes.iter().map(|n| n.id.raft_id()).collect();
        let mut unique = ids.clone();
        unique.sort_unstable();
        unique.dedup();
        (unique.len() == ids.len()).then_some(ids)
    }

    /// Number of slots the shard owns.
    pub fn slot_count(&self) -> usize {
        self.slots
            .iter()
            .map(|r| usize::from(r.end - r.start) + 1)
            .sum()
    }

    /// The shard's slots, one by one, in order.
    pub fn each_slot(&self) -> impl Iterator<Item = u16> + '_ {
        self.slots.iter().flat_map(|r| r.start..=r.end)
    }
}

/// The whole cluster as one node knows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShardMap {
    /// Version of the map; 0 = none yet.
    pub epoch: u64,
    /// The shards.
    pub shards: Vec<Shard>,
}

impl ShardMap {
    /// Splits all 16384 slots evenly over one shard per node, in the given order, with
    /// `redis-cli --cluster create`'s arithmetic (a float cursor, `lround`), so the same
    /// nodes get the same ranges as with Redis: 0-5460, 5461-10922, 10923-16383 for three.
    pub fn even(nodes: Vec<NodeInfo>, epoch: u64) -> ShardMap {
        let count = nodes.len().max(1);
        let per_node = f32::from(SLOTS) / count as f32;
        let mut cursor = 0.0f32;
        let mut first = 0i64;
        let last_slot = i64::from(SLOTS) - 1;
        let shards = nodes
            .into_iter()
            .enumerate()
            .map(|(i, node)| {
                let mut last = (cursor + per_node - 1.0).round() as i64;
                if last > last_slot || i == count - 1 {
                    last = last_slot;
                }
                last = last.max(first);
                let range = SlotRange {
                    start: first as u16,
                    end: last as u16,
                };
                first = last + 1;
                cursor += per_node;
                Shard {
                    id: NodeId::random(),
                    slots: vec![range],
                    nodes: vec![node],
                }
            })
            .collect();
        ShardMap { epoch, shards }
    }

    /// `redis-cli --cluster create --cluster-replicas R`'s layout: the nodes split into
    /// shards of `1 + replicas`, the first `nodes / (1 + replicas)` nodes each leading one
    /// (slots split evenly over them as [`ShardMap::even`]) and the rest given to the shards
    /// in turn. `None` when the nodes do not divide into such shards.
    pub fn with_replicas(nodes: Vec<NodeInfo>, replicas: usize, epoch: u64) -> Option<ShardMap> {
        let per_shard = replicas.checked_add(1)?;
        if nodes.is_empty() || !nodes.len().is_multiple_of(per_shard) {
            return None;
        }
        let masters = nodes.len() / per_shard;
        let mut rest = nodes;
        let others = rest.split_off(masters);
        let mut map = ShardMap::even(rest, epoch);
        for (i, node) in others.into_iter().enumerate() {
            map.shards[i % masters].nodes.push(node);
        }
        Some(map)
    }

    /// Whether `other` is this map but for the order of each shard's members (a Raft
    /// group's leader is listed first where it is known: [`Topology::follow_leader`]).
    pub fn same_members(&self, other: &ShardMap) -> bool {
        let sorted = |m: &ShardMap| {
            let mut m = m.clone();
            for s in &mut m.shards {
                s.nodes.sort_by(|a, b| a.id.cmp(&b.id));
            }
            m
        };
        self.epoch == other.epoch && sorted(self) == sorted(other)
    }

    /// The map as text (see the module docs).
    pub fn to_text(&self) -> String {
        let mut out = format!("{FORMAT}\nepoch {}\n", self.epoch);
        for shard in &self.shards {
            let _ = write!(out, "shard {}", shard.id);
            for r in &shard.slots {
                let _ = write!(out, " {}-{}", r.start, r.end);
            }
            out.push('\n');
            for n in &shard.nodes {
                let _ = writeln!(
                    out,
                    "node {} {} {} {} {}{}",
                    shard.id,
                    n.id,
                    n.ip,
                    n.port,
                    n.cport,
                    if n.joined { " joined" } else { "" }
                );
            }
        }
        out
    }

    /// Parses a map (and a `myself` line, returned if present), checking that slot ranges
    /// are valid and that no slot, node or shard appears twice.
    pub fn parse(text: &str) -> Result<(ShardMap, Option<NodeId>), TopologyError> {
        let bad = |line: usize, reason: &str| TopologyError::InvalidMap {
            line,
            reason: reason.to_string(),
        };
        let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
        match lines.next() {
            Some((_, l)) if l == FORMAT => {}
            _ => return Err(bad(1, "expected 'rill-cluster 1'")),
        }
        let mut map = ShardMap::default();
        let mut myself = None;
        let mut owned = vec![false; usize::from(SLOTS)];
        for (no, line) in lines {
            let fields: Vec<&str> = line.split(' ').collect();
            match fields.as_slice() {
                [""] => {}
                ["myself", id] => {
                    myself = Some(NodeId::parse(id).ok_or_else(|| bad(no, "bad node id"))?);
                }
                ["epoch", n] => {
                    map.epoch = n.parse().map_err(|_| bad(no, "bad epoch"))?;
                }
                ["shard", id, ranges @ ..] => {
                    let id = NodeId::parse(id).ok_or_else(|| bad(no, "bad shard id"))?;
                    if map.shards.iter().any(|s| s.id == id) {
                        return Err(bad(no, "shard listed twice"));
                    }
                    let mut slots = Vec::new();
                    for r in ranges {
                        let (a, b) = r.split_once('-').ok_or_else(|| bad(no, "bad range"))?;
                        let (start, end): (u16, u16) = match (a.parse(), b.parse()) {
                            (Ok(a), Ok(b)) if a <= b && b < SLOTS => (a, b),
                            _ => return Err(bad(no, "bad range")),
                        };
                        for slot in start..=end {
                            if std::mem::replace(&mut owned[usize::from(slot)], true) {
                                return Err(bad(no, "slot owned twice"));
                            }
                        }
                        slots.push(SlotRange { start, end });
                    }
                    slots.sort();
                    map.shards.push(Shard {
                        id,
                        slots,
                        nodes: Vec::new(),
                    });
                }
                ["node", shard, id, ip, port, cport, flags @ ..] => {
                    let joined = match flags {
                        [] => false,
                        ["joined"] => true,
                        _ => return Err(bad(no, "unknown node flag")),
                    };
                    let id = NodeId::parse(id).ok_or_else(|| bad(no, "bad node id"))?;
                    if map.nodes().any(|n| n.id == id) {
                        return Err(bad(no, "node listed twice"));
                    }
                    let (Ok(port), Ok(cport)) = (port.parse(), cport.parse()) else {
                        return Err(bad(no, "bad port"));
                    };
                    if ip.is_empty() {
                        return Err(bad(no, "empty address"));
                    }
                    let shard = map
                        .shards
                        .iter_mut()
                        .find(|s| s.id.as_str() == *shard)
                        .ok_or_else(|| bad(no, "node of an unknown shard"))?;
                    shard.nodes.push(NodeInfo {
                        id,
                        ip: ip.to_string(),
                        port,
                        cport,
                        joined,
                    });
                }
                _ => return Err(bad(no, "unknown record")),
            }
        }
        if let Some(s) = map.shards.iter().find(|s| s.nodes.is_empty()) {
            return Err(bad(0, &format!("shard {} has no node", s.id)));
        }
        Ok((map, myself))
    }

    /// The shard that owns `slot`, if any.
    pub fn shard_owning(&self, slot: u16) -> Option<&Shard> {
        self.shards
            .iter()
            .find(|s| s.slots.iter().any(|r| r.start <= slot && slot <= r.end))
    }

    /// This map with `slot` given to the shard `to` (its ranges merged again), under the
    /// next epoch: what a finished slot move installs on every node. `None` when `to` is not
    /// a shard of the map.
    pub fn with_slot_moved(&self, slot: u16, to: &NodeId) -> Option<ShardMap> {
        if !self.shards.iter().any(|s| &s.id == to) {
            return None;
        }
        let mut next = self.clone();
        next.epoch = self.epoch + 1;
        for shard in &mut next.shards {
            let mut slots: Vec<u16> = shard.each_slot().filter(|s| *s != slot).collect();
            if &shard.id == to {
                slots.push(slot);
                slots.sort_unstable();
            }
            shard.slots = ranges_of(&slots);
        }
        Some(next)
    }

    /// Every node of every shard.
    pub fn nodes(&self) -> impl Iterator<Item = &NodeInfo> {
        self.shards.iter().flat_map(|s| s.nodes.iter())
    }

    /// The shard `node` belongs to.
    pub fn shard_of(&self, node: &NodeId) -> Option<&Shard> {
        self.shards
            .iter()
            .find(|s| s.nodes.iter().any(|n| &n.id == node))
    }
}

/// A slot being moved, as this node sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotState {
    /// This node owns the slot and is moving its keys to the node named.
    Migrating(NodeId),
    /// This node is receiving the slot from the node named (its owner).
    Importing(NodeId),
}

impl SlotState {
    /// The word the cluster config file and `RILL.CLUSTER SLOTSTATES` use.
    pub fn word(&self) -> &'static str {
        match self {
            SlotState::Migrating(_) => "migrating",
            SlotState::Importing(_) => "importing",
        }
    }

    /// The other end of the move.
    pub fn peer(&self) -> &NodeId {
        match self {
            SlotState::Migrating(n) | SlotState::Importing(n) => n,
        }
    }
}

/// Where a slot's requests go, as this node sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotOwner<'a> {
    /// This node serves it.
    Myself,
    /// Another node serves it.
    Node(&'a NodeInfo),
    /// No shard owns it.
    Unassigned,
}

/// This node's id and map, with the slot → shard table derived from the map.
#[derive(Debug, Clone)]
pub struct Topology {
    myself: NodeId,
    map: ShardMap,
    /// For each slot, the index of its shard in `map.shards`.
    owner: Vec<Option<u16>>,
    /// Number of slots with an owner (checked on every keyed command).
    assigned: usize,
    /// Open slots (MIGRATING / IMPORTING), by slot.
    states: std::collections::BTreeMap<u16, SlotState>,
}

impl Topology {
    /// A node with no map yet.
    pub fn new(myself: NodeId) -> Topology {
        Topology {
            myself,
            map: ShardMap::default(),
            owner: vec![None; usize::from(SLOTS)],
            assigned: 0,
            states: std::collections::BTreeMap::new(),
        }
    }

    /// Opens the cluster config file, or creates it with a new node id when there is none.
    pub fn open(path: &Path) -> Result<Topology, TopologyError> {
        let io = |source| TopologyError::Io {
            path: path.to_path_buf(),
            source,
        };
        match fs::read_to_string(path) {
            Ok(text) => {
                // The slot states are this node's own lines; the rest is a map.
                let (state_lines, map_lines): (Numbered<'_>, Numbered<'_>) = text
                    .lines()
                    .enumerate()
                    .partition(|(_, l)| l.starts_with("migrating ") || l.starts_with("importing "));
                let text: String = map_lines.iter().map(|(_, l)| format!("{l}\n")).collect();
                let mut states = std::collections::BTreeMap::new();
                for (i, line) in state_lines {
                    let (slot, state) =
                        parse_state(line).ok_or_else(|| TopologyError::Corrupt {
                            path: path.to_path_buf(),
                            line: i + 1,
                            reason: "bad slot state".to_string(),
                        })?;
                    states.insert(slot, state);
                }
                let corrupt = |e: TopologyError| match e {
                    TopologyError::InvalidMap { line, reason } => TopologyError::Corrupt {
                        path: path.to_path_buf(),
                        line,
                        reason,
                    },
                    other => other,
                };
                let (map, myself) = ShardMap::parse(&text).map_err(corrupt)?;
                let myself = myself.ok_or_else(|| TopologyError::Corrupt {
                    path: path.to_path_buf(),
                    line: 0,
                    reason: "no 'myself' line".to_string(),
                })?;
                let mut t = Topology::new(myself);
                t.install(map);
                t.states = states;
                Ok(t)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let t = Topology::new(NodeId::random());
                t.save(path)?;
                Ok(t)
            }
            Err(e) => Err(io(e)),
        }
    }

    /// Writes the file atomically (see the module docs).
    pub fn save(&self, path: &Path) -> Result<(), TopologyError> {
        let io = |source| TopologyError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut text = self.map.to_text();
        // `myself` right after the format line.
        let at = FORMAT.len() + 1;
        text.insert_str(at, &format!("myself {}\n", self.myself));
        for (slot, state) in &self.states {
            let _ = writeln!(text, "{} {slot} {}", state.word(), state.peer());
        }
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let mut f = fs::File::create(&tmp).map_err(io)?;
        f.write_all(text.as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
        drop(f);
        fs::rename(&tmp, path).map_err(io)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
        }
        Ok(())
    }

    /// Checks a new map against this node: it must list this node and not be older.
    pub fn check(&self, map: &ShardMap) -> Result<(), TopologyError> {
        if map.epoch < self.map.epoch {
            return Err(TopologyError::StaleEpoch {
                got: map.epoch,
                current: self.map.epoch,
            });
        }
        // Two different maps under one epoch would leave nodes disagreeing with no way to
        // tell which is newer.
        // (Which member leads a shard is Raft's to say, not the map's: order does not count.)
        if map.epoch == self.map.epoch && self.map.epoch > 0 && !map.same_members(&self.map) {
            return Err(TopologyError::ConflictingMap(map.epoch));
        }
        if map.shard_of(&self.myself).is_none() {
            return Err(TopologyError::NotAMember(self.myself.to_string()));
        }
        Ok(())
    }

    /// Makes `map` the current map (the caller checked it, and persists the result), closing
    /// the open slots the map settles as Redis's `CLUSTER SETSLOT … NODE` does: a MIGRATING
    /// slot that is no longer this node's, an IMPORTING slot that now is.
    pub fn install(&mut self, map: ShardMap) {
        self.install_map(map);
        let states = std::mem::take(&mut self.states);
        self.states = states
            .into_iter()
            .filter(|(slot, state)| match (state, self.owner(*slot)) {
                (SlotState::Migrating(_), SlotOwner::Myself) => true,
                (SlotState::Migrating(_), _) => false,
                (SlotState::Importing(_), SlotOwner::Myself) => false,
                (SlotState::Importing(_), _) => true,
            })
            .collect();
    }

    /// This node with `map` installed in place of its map (its open slots carried over and
    /// closed as [`Topology::install`] says).
    pub fn successor(&self, map: ShardMap) -> Topology {
        let mut next = Topology::new(self.myself.clone());
        next.states = self.states.clone();
        next.install(map);
        next
    }

    /// The open slots.
    pub fn slot_states(&self) -> &std::collections::BTreeMap<u16, SlotState> {
        &self.states
    }

    /// The state of `slot`, if it is open.
    pub fn slot_state(&self, slot: u16) -> Option<&SlotState> {
        self.states.get(&slot)
    }

    /// True when some slot is open (checked on every keyed command).
    pub fn has_open_slots(&self) -> bool {
        !self.states.is_empty()
    }

    /// Opens `slot` (or closes it with `None`), as `CLUSTER SETSLOT … MIGRATING | IMPORTING |
    /// STABLE`, with Redis's checks: only the owner migrates a slot, only a non-owner imports
    /// it, and the other end must be a node of the map other than this one.
    pub fn set_slot_state(
        &mut self,
        slot: u16,
        state: Option<SlotState>,
    ) -> Result<(), TopologyError> {
        let Some(state) = state else {
            self.states.remove(&slot);
            return Ok(());
        };
        // Redis's checks, in its order.
        match (&state, self.owner(slot)) {
            (SlotState::Migrating(_), SlotOwner::Myself) => {}
            (SlotState::Migrating(_), _) => return Err(TopologyError::NotOwner(slot)),
            (SlotState::Importing(_), SlotOwner::Myself) => {
                return Err(TopologyError::AlreadyOwner(slot))
            }
            (SlotState::Importing(_), _) => {}
        }
        let peer = state.peer();
        if !self.map.nodes().any(|n| &n.id == peer) {
            return Err(TopologyError::UnknownNode(peer.clone()));
        }
        // Redis accepts this node itself, and would then ASK clients back to itself.
        if peer == &self.myself {
            return Err(TopologyError::MoveToSelf(slot));
        }
        self.states.insert(slot, state);
        Ok(())
    }

    fn install_map(&mut self, map: ShardMap) {
        let mut owner = vec![None; usize::from(SLOTS)];
        for (i, shard) in map.shards.iter().enumerate() {
            for r in &shard.slots {
                for slot in r.start..=r.end {
                    owner[usize::from(slot)] = Some(i as u16);
                }
            }
        }
        self.assigned = owner.iter().filter(|o| o.is_some()).count();
        self.owner = owner;
        self.map = map;
    }

    /// Makes `leader` the first node of its shard, the one slots are served by and
    /// reported with (a Raft group's new leader, as the group elected it): a node-local
    /// view of who leads, not a new map. Returns whether anything changed.
    pub fn follow_leader(&mut self, leader: &NodeId) -> bool {
        for shard in &mut self.map.shards {
            if let Some(at) = shard.nodes.iter().position(|n| &n.id == leader) {
                if at == 0 {
                    return false;
                }
                let node = shard.nodes.remove(at);
                shard.nodes.insert(0, node);
                return true;
            }
        }
        false
    }

    /// This node's id.
    pub fn myself(&self) -> &NodeId {
        &self.myself
    }

    /// The current map.
    pub fn map(&self) -> &ShardMap {
        &self.map
    }

    /// This node's shard, once it has a map.
    pub fn my_shard(&self) -> Option<&Shard> {
        self.map.shard_of(&self.myself)
    }

    /// Whether `slot` belongs to this node's shard (served here, or by the node this one
    /// replicates).
    pub fn in_my_shard(&self, slot: u16) -> bool {
        let mine = self
            .map
            .shards
            .iter()
            .position(|s| s.nodes.iter().any(|n| n.id == self.myself));
        mine.is_some()
            && self
                .owner
                .get(usize::from(slot))
                .copied()
                .flatten()
                .map(usize::from)
                == mine
    }

    /// Who serves `slot`: its shard's first node (the master).
    pub fn owner(&self, slot: u16) -> SlotOwner<'_> {
        let shard = self
            .owner
            .get(usize::from(slot))
            .copied()
            .flatten()
            .and_then(|i| self.map.shards.get(usize::from(i)));
        match shard.and_then(|s| s.nodes.first()) {
            None => SlotOwner::Unassigned,
            Some(n) if n.id == self.myself => SlotOwner::Myself,
            Some(n) => SlotOwner::Node(n),
        }
    }

    /// Number of slots that have an owner.
    pub fn assigned_slots(&self) -> usize {
        self.assigned
    }

    /// Redis's `cluster_state:ok`: every slot has an owner (Redis's default
    /// `cluster-require-full-coverage yes`; with a static map no node is ever failing).
    pub fn is_ok(&self) -> bool {
        self.assigned == usize::from(SLOTS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(port: u16) -> NodeInfo {
        NodeInfo {
            id: NodeId::random(),
            ip: "127.0.0.1".into(),
            port,
            cport: port + 10000,
            joined: false,
        }
    }

    #[test]
    fn replicas_make_shards_of_one_leader_and_r_followers_like_redis_cli() {
        let nodes: Vec<NodeInfo> = (0..6).map(|i| node(7000 + i)).collect();
        let map = ShardMap::with_replicas(nodes.clone(), 1, 1).expect("6 = 3 × 2");
        assert_eq!(map.shards.len(), 3);
        for (i, shard) in map.shards.iter().enumerate() {
            assert_eq!(shard.nodes, vec![nodes[i].clone(), nodes[i + 3].clone()]);
        }
        assert_eq!(map.shards[0].slots, ranges_from(&[(0, 5460)]));
        assert!(
            ShardMap::with_replicas(nodes.clone(), 3, 1).is_none(),
            "6 ≠ k × 4"
        );
        assert_eq!(
            ShardMap::with_replicas(nodes.clone(), 0, 1).map(|m| m.shards.len()),
            Some(6)
        );
    }

    #[test]
    fn the_raft_leader_serves_its_shard_and_the_map_still_matches() {
        let nodes: Vec<NodeInfo> = (0..3).map(|i| node(7000 + i)).collect();
        let map = ShardMap::with_replicas(nodes.clone(), 2, 1).expect("one shard");
        let mut t = Topology::new(nodes[1].id.clone());
        t.install(map.clone());
        assert_eq!(t.owner(0), SlotOwner::Node(&nodes[0]));
        assert!(t.in_my_shard(0) && t.in_my_shard(16383));
        assert!(t.follow_leader(&nodes[1].id));
        assert!(!t.follow_leader(&nodes[1].id), "already first");
        assert_eq!(t.owner(0), SlotOwner::Myself);
        // Resending the map of the same epoch is not a conflict: order is Raft's to say.
        assert!(t.map().same_members(&map));
        assert!(t.check(&map).is_ok());
        let voters = t.my_shard().and_then(Shard::raft_voters).expect("distinct");
        assert_eq!(voters[0], nodes[1].id.raft_id());
        assert!(voters.iter().all(|&v| v != 0));
    }

    #[test]
    fn raft_ids_come_from_the_node_ids_first_64_bits_and_are_never_zero() {
        let id = NodeId::parse("00000000000000ff0123456789abcdef01234567").expect("id");
        assert_eq!(id.raft_id(), 0xff);
        let zero = NodeId::parse(&"0".repeat(40)).expect("id");
        assert_eq!(zero.raft_id(), 1);
        let mut twins = ShardMap::with_replicas(vec![node(1), node(2)], 1, 1).expect("map");
        let twin = format!("00000000000000ff{}", "1".repeat(24));
        twins.shards[0].nodes[1].id = NodeId::parse(&twin).expect("id");
        twins.shards[0].nodes[0].id = id;
        assert_eq!(twins.shards[0].raft_voters(), None);
    }

    /// Slot ranges from `(start, end)` pairs.
    fn ranges_from(pairs: &[(u16, u16)]) -> Vec<SlotRange> {
        pairs
            .iter()
            .map(|&(start, end)| SlotRange { start, end })
            .collect()
    }

    #[test]
    fn even_split_covers_every_slot_once_like_redis_cli() {
        let map = ShardMap::even(vec![node(7000), node(7001), node(7002)], 1);
        let ranges: Vec<_> = map.shards.iter().map(|s| s.slots[0]).collect();
        // redis-cli --cluster create with 3 masters: 0-5460, 5461-10922, 10923-16383.
        assert_eq!(
            ranges,
            ranges_from(&[(0, 5460), (5461, 10922), (10923, 16383)])
        );
    }

    #[test]
    fn text_round_trips_and_rejects_overlaps() {
        let map = ShardMap::even(vec![node(7000), node(7001)], 4);
        let (back, myself) = ShardMap::parse(&map.to_text()).expect("parse");
        assert_eq!(back, map);
        assert_eq!(myself, None);
        let overlapping = map.to_text().replace("8192-16383", "8191-16383");
        assert!(ShardMap::parse(&overlapping).is_err());
        assert!(ShardMap::parse("rill-cluster 2\n").is_err());
        let no_node = format!("{FORMAT}\nepoch 1\nshard {} 0-1\n", NodeId::random());
        assert!(ShardMap::parse(&no_node).is_err());
    }

    #[test]
    fn a_moved_slot_changes_owner_under_the_next_epoch_and_states_close() {
        let map = ShardMap::even(vec![node(7000), node(7001)], 3);
        let to = map.shards[1].id.clone();
        let next = map.with_slot_moved(5, &to).expect("known shard");
        assert_eq!(next.epoch, 4);
        assert_eq!(next.shards[0].slots, ranges_from(&[(0, 4), (6, 8191)]));
        assert_eq!(next.shards[1].slots, ranges_from(&[(5, 5), (8192, 16383)]));
        assert_eq!(next.shard_owning(5).map(|s| &s.id), Some(&to));
        assert!(map.with_slot_moved(5, &NodeId::random()).is_none());
        // Back again: the ranges merge.
        let back = next
            .with_slot_moved(5, &map.shards[0].id)
            .expect("known shard");
        assert_eq!(back.shards[0].slots, map.shards[0].slots);

        // The source's MIGRATING closes when the map gives the slot away; the target's
        // IMPORTING when the map gives it the slot.
        let source_id = map.shards[0].nodes[0].id.clone();
        let target_id = map.shards[1].nodes[0].id.clone();
        let mut source = Topology::new(source_id.clone());
        source.install(map.clone());
        let mut target = Topology::new(target_id.clone());
        target.install(map.clone());
        assert!(source
            .set_slot_state(5, Some(SlotState::Importing(target_id.clone())))
            .is_err());
        source
            .set_slot_state(5, Some(SlotState::Migrating(target_id.clone())))
            .expect("owner migrates");
        assert!(target
            .set_slot_state(5, Some(SlotState::Migrating(source_id.clone())))
            .is_err());
        target
            .set_slot_state(5, Some(SlotState::Importing(source_id.clone())))
            .expect("other imports");
        assert!(source.successor(map.clone()).slot_state(5).is_some());
        assert!(source.successor(next.clone()).slot_state(5).is_none());
        assert!(target.successor(map.clone()).slot_state(5).is_some());
        assert!(target.successor(next).slot_state(5).is_none());
    }

    #[test]
    fn file_keeps_the_id_and_map_across_opens() {
        let dir = std::env::temp_dir().join(format!("rill-topology-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("nodes.conf");
        let mut t = Topology::open(&path).expect("create");
        let id = t.myself().clone();
        assert_eq!(t.owner(0), SlotOwner::Unassigned);
        let mut me = node(7000);
        me.id = id.clone();
        let map = ShardMap::even(vec![me, node(7001)], 1);
        t.check(&map).expect("member");
        let mut other = map.clone();
        other.shards.reverse();
        t.install(map.clone());
        assert!(matches!(
            t.check(&other),
            Err(TopologyError::ConflictingMap(1))
        ));
        t.check(&map).expect("the same map again is fine");
        t.install(map.clone());
        t.save(&path).expect("save");
        let other = map.shards[1].nodes[0].id.clone();
        t.set_slot_state(3, Some(SlotState::Migrating(other.clone())))
            .expect("migrating");
        t.save(&path).expect("save");
        let again = Topology::open(&path).expect("reopen");
        assert_eq!(again.slot_state(3), Some(&SlotState::Migrating(other)));
        assert_eq!(again.myself(), &id);
        assert_eq!(again.map(), &map);
        assert_eq!(again.owner(0), SlotOwner::Myself);
        assert!(matches!(again.owner(16383), SlotOwner::Node(n) if n.port == 7001));
        fs::write(&path, "rill-cluster 1\nmyself zz\n").expect("damage");
        assert!(matches!(
            Topology::open(&path),
            Err(TopologyError::Corrupt { .. })
        ));
        let _ = fs::remove_dir_all(&dir);
    }
}
