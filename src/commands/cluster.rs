//! Cluster mode as clients see it: the redirect decision taken before a keyed command runs
//! ([`route`]), the CLUSTER family with Redis Cluster's reply shapes, READONLY / READWRITE /
//! ASKING, and RILL.CLUSTER, the admin family `rill cluster` drives (a name Redis does not
//! use, so it cannot collide with a Redis command).
//!
//! The shard map is static: the Redis commands that change topology by hand (MEET,
//! ADDSLOTS, SETSLOT, REPLICATE, FAILOVER …) are refused with an error naming the
//! `rill cluster` equivalent.

use bytes::Bytes;

use super::args::Args;
use super::error::CommandError;
use super::keyspec;
use super::session::Session;
use super::table::{CommandSpec, Handler};
use super::Outcome;
use crate::cluster::slot::{key_slot, SLOTS};
use crate::cluster::topology::{NodeId, NodeInfo, Shard, Topology};
use crate::cluster::{Cluster, ShardMap, SlotOwner, SlotState};
use crate::core::Shared;
use crate::protocol::Reply;

type R = Result<Outcome, CommandError>;

/// Whether a key is in this node's keyspace (routing on a slot being moved).
pub type KeyExists<'a> = &'a dyn Fn(&[u8]) -> bool;

/// What routing decided for a request this node may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routed {
    /// Run it here.
    Here,
    /// Its slot is being moved and whether it runs here depends on which of its keys this
    /// node has: decide again with [`route_keys`] under the keyspace lock the command will
    /// run under, so no key can leave (or arrive) between the decision and the command.
    UnderLock,
}

/// Decides whether this node may run a request, as Redis's `getNodeByQuery`, before the
/// keyspace is locked: see [`route_keys`]. `asking` is whether ASKING preceded it.
///
/// # Errors
/// As [`route_keys`], except the ones that depend on which keys exist.
pub fn route(
    spec: &'static CommandSpec,
    session: &Session,
    cluster: &Cluster,
    argv: &[Bytes],
    asking: bool,
) -> Result<Routed, CommandError> {
    let (routed, writes) = if spec.full == "exec" {
        let queued: Vec<(&CommandSpec, &[Bytes])> = session
            .multi
            .iter()
            .flatten()
            .map(|(q, args)| (*q, args.argv()))
            .collect();
        let writes = queued.iter().any(|(q, _)| q.is_write());
        (route_keys(&queued, cluster, asking, None), writes)
    } else {
        (
            route_keys(&[(spec, argv)], cluster, asking, None),
            spec.is_write(),
        )
    };
    match routed {
        // Redis's READONLY: a replica serves reads of its own shard's slots (here from the
        // committed state its Raft group applied).
        Err(CommandError::Moved { slot, .. })
            if session.readonly && !writes && cluster.topology.read().in_my_shard(slot) =>
        {
            Ok(Routed::Here)
        }
        r => r,
    }
}

/// Redis's `getNodeByQuery` over `commands` (one, or the queued commands of an EXEC): every
/// key must be in one slot, that slot must have an owner, the cluster must serve every slot,
/// and the owner must be this node — unless the slot is being moved:
///
/// - MIGRATING here: the request runs here if this node has all its keys; with none of them
///   it is answered `-ASK` to the node the slot moves to; with some, `-TRYAGAIN`.
/// - IMPORTING here: the request runs here only after ASKING (else `-MOVED` to the owner),
///   and a request naming several different keys only if this node has them all (else
///   `-TRYAGAIN`).
///
/// `exists` says whether a key is here; without it (before the lock is taken) a decision
/// that needs it is [`Routed::UnderLock`]. Commands without keys always run here.
///
/// # Errors
/// `CLUSTERDOWN Hash slot not served` (the first key's slot has no owner), `CROSSSLOT`,
/// `CLUSTERDOWN The cluster is down`, `ASK`, `TRYAGAIN`, `MOVED <slot> <ip>:<port>` — in
/// Redis's order.
pub fn route_keys(
    commands: &[(&CommandSpec, &[Bytes])],
    cluster: &Cluster,
    asking: bool,
    exists: Option<KeyExists<'_>>,
) -> Result<Routed, CommandError> {
    let topology = cluster.topology.read();
    let mut first: Option<(u16, SlotOwner<'_>, &Bytes)> = None;
    let (mut migrating, mut importing, mut multiple_keys) = (None, false, false);
    let (mut missing, mut existing, mut unknown) = (0usize, 0usize, false);
    for (spec, argv) in commands {
        for pos in keyspec::key_positions(spec, argv) {
            let key = &argv[pos];
            let slot = key_slot(key);
            match first {
                None => {
                    let owner = topology.owner(slot);
                    if owner == SlotOwner::Unassigned {
                        return Err(CommandError::SlotNotServed);
                    }
                    match topology.slot_state(slot) {
                        Some(SlotState::Migrating(to)) if owner == SlotOwner::Myself => {
                            migrating = Some(to);
                        }
                        Some(SlotState::Importing(_)) => importing = true,
                        _ => {}
                    }
                    first = Some((slot, owner, key));
                }
                Some((s, _, _)) if s != slot => return Err(CommandError::CrossSlot),
                Some((_, _, first_key)) => {
                    if importing && first_key != key {
                        multiple_keys = true;
                    }
                }
            }
            if migrating.is_some() || importing {
                match exists {
                    Some(f) if f(key) => existing += 1,
                    Some(_) => missing += 1,
                    None => unknown = true,
                }
            }
        }
    }
    let Some((slot, owner, _)) = first else {
        return Ok(Routed::Here);
    };
    if !topology.is_ok() {
        return Err(CommandError::ClusterDown);
    }
    if let Some(to) = migrating {
        if unknown {
            return Ok(Routed::UnderLock);
        }
        // A target the map no longer lists cannot be asked: the keys stay served here.
        let target = topology.map().nodes().find(|n| &n.id == to);
        if let (true, Some(target)) = (missing > 0, target) {
            return Err(if existing > 0 {
                CommandError::TryAgain
            } else {
                CommandError::Ask {
                    slot,
                    endpoint: target.endpoint(),
                }
            });
        }
    }
    if importing && asking {
        if multiple_keys && unknown {
            return Ok(Routed::UnderLock);
        }
        if multiple_keys && missing > 0 {
            return Err(CommandError::TryAgain);
        }
        return Ok(Routed::Here);
    }
    match owner {
        SlotOwner::Myself => Ok(Routed::Here),
        SlotOwner::Node(node) => Err(CommandError::Moved {
            slot,
            endpoint: node.endpoint(),
        }),
        SlotOwner::Unassigned => Err(CommandError::SlotNotServed),
    }
}

/// [`route_keys`] with the keyspace in hand: whether a key exists in database 0 (the only
/// one in cluster mode) at `now_ms`, an expired key counting as missing, as Redis's lookup.
pub fn route_locked(
    commands: &[(&CommandSpec, &[Bytes])],
    cluster: &Cluster,
    asking: bool,
    ks: &crate::engine::keyspace::Keyspace,
    now_ms: u64,
) -> Result<(), CommandError> {
    let db = ks.db(0);
    let exists = |k: &[u8]| db.contains_raw(k) && !db.is_expired(k, now_ms);
    route_keys(commands, cluster, asking, Some(&exists)).map(|_| ())
}

fn cluster_of(sh: &Shared) -> Result<&Cluster, CommandError> {
    sh.cluster.as_ref().ok_or(CommandError::ClusterDisabled)
}

/// This node as the map would list it, for the replies given before it has a map:
/// `cluster-announce-ip` (or nothing, as Redis before MEET), the port, the bus port.
fn myself_unmapped(sh: &Shared, topology: &Topology) -> NodeInfo {
    let cfg = sh.config.read();
    let listening = sh.port.load(std::sync::atomic::Ordering::Relaxed);
    let port = if cfg.cluster_announce_port != 0 {
        cfg.cluster_announce_port
    } else {
        listening
    };
    NodeInfo {
        id: topology.myself().clone(),
        ip: cfg.cluster_announce_ip.clone().unwrap_or_default(),
        port,
        // As Redis: the bus port follows the port listened on, not the announced one.
        cport: cfg.cluster_bus_port(listening),
        joined: false,
    }
}

/// The shards to report: the map's, or before one exists a lone shard of this node with
/// no slots (and no shard id).
fn shards_to_report(sh: &Shared, topology: &Topology) -> Vec<Shard> {
    if topology.map().shards.is_empty() {
        vec![Shard {
            id: topology.myself().clone(),
            slots: Vec::new(),
            nodes: vec![myself_unmapped(sh, topology)],
        }]
    } else {
        topology.map().shards.clone()
    }
}

fn parse_slot(a: &mut Args, err: CommandError) -> Result<u16, CommandError> {
    let slot = a.next_i64()?;
    u16::try_from(slot).ok().filter(|s| *s < SLOTS).ok_or(err)
}

/// CLUSTER INFO
///
/// # Format
/// `CLUSTER INFO`
///
/// # Returns
/// A verbatim text of `field:value` lines, as Redis's `genClusterInfoString`:
/// `cluster_state:ok` once every slot is served, slot counts, known nodes, the number of
/// shards serving slots, and the map's epoch as current and own epoch; then Redis 8.6's
/// bus-message and slot-migration counters, all 0 (nodes exchange no messages, and slots
/// do not move, in this release).
pub fn info(_s: &mut Session, sh: &Shared, _a: &mut Args) -> R {
    let topology = cluster_of(sh)?.topology.read();
    let map = topology.map();
    let assigned = topology.assigned_slots();
    let known = map.nodes().count().max(1);
    let size = map.shards.iter().filter(|s| s.slot_count() > 0).count();
    let text = format!(
        "cluster_state:{}\r\n\
         cluster_slots_assigned:{assigned}\r\n\
         cluster_slots_ok:{assigned}\r\n\
         cluster_slots_pfail:0\r\n\
         cluster_slots_fail:0\r\n\
         cluster_known_nodes:{known}\r\n\
         cluster_size:{size}\r\n\
         cluster_current_epoch:{epoch}\r\n\
         cluster_my_epoch:{epoch}\r\n\
         cluster_stats_messages_sent:0\r\n\
         cluster_stats_messages_received:0\r\n\
         total_cluster_links_buffer_limit_exceeded:0\r\n\
         cluster_slot_migration_active_tasks:0\r\n\
         cluster_slot_migration_active_trim_running:0\r\n\
         cluster_slot_migration_active_trim_current_job_keys:0\r\n\
         cluster_slot_migration_active_trim_current_job_trimmed:0\r\n\
         cluster_slot_migration_stats_active_trim_started:0\r\n\
         cluster_slot_migration_stats_active_trim_completed:0\r\n\
         cluster_slot_migration_stats_active_trim_cancelled:0\r\n",
        if topology.is_ok() { "ok" } else { "fail" },
        epoch = map.epoch,
    );
    Ok(Reply::Verbatim(Bytes::from(text)).into())
}

/// CLUSTER MYID
///
/// # Format
/// `CLUSTER MYID`
///
/// # Returns
/// This node's 40-hex id (stable across restarts: it is in the cluster config file).
pub fn myid(_s: &mut Session, sh: &Shared, _a: &mut Args) -> R {
    let topology = cluster_of(sh)?.topology.read();
    Ok(Reply::bulk(topology.myself().to_string()).into())
}

/// CLUSTER MYSHARDID
///
/// # Format
/// `CLUSTER MYSHARDID`
///
/// # Returns
/// The id of this node's shard; `No shard ID yet` before the cluster is created.
pub fn myshardid(_s: &mut Session, sh: &Shared, _a: &mut Args) -> R {
    let topology = cluster_of(sh)?.topology.read();
    let shard = topology.my_shard().ok_or(CommandError::NoShardId)?;
    Ok(Reply::bulk(shard.id.to_string()).into())
}

/// CLUSTER NODES
///
/// # Format
/// `CLUSTER NODES`
///
/// # Returns
/// One line per node, as Redis's `clusterGenNodeDescription`:
/// `<id> <ip>:<port>@<cport> <flags> <master> <ping-sent> <pong-recv> <epoch> <link> <slots>…`.
/// Nodes do not ping each other yet (the map is static), so the ping fields are 0 and
/// every node is reported `connected`.
pub fn nodes(_s: &mut Session, sh: &Shared, _a: &mut Args) -> R {
    use std::fmt::Write as _;
    let topology = cluster_of(sh)?.topology.read();
    let epoch = topology.map().epoch;
    let mut text = String::new();
    for shard in shards_to_report(sh, &topology) {
        for (i, node) in shard.nodes.iter().enumerate() {
            let myself = &node.id == topology.myself();
            let role = if i == 0 { "master" } else { "slave" };
            let flags = if myself {
                format!("myself,{role}")
            } else {
                role.to_string()
            };
            let master = match shard.nodes.first() {
                Some(m) if i > 0 => m.id.to_string(),
                _ => "-".to_string(),
            };
            let _ = write!(
                text,
                "{} {}:{}@{} {flags} {master} 0 0 {epoch} connected",
                node.id, node.ip, node.port, node.cport
            );
            if i == 0 {
                for r in &shard.slots {
                    if r.start == r.end {
                        let _ = write!(text, " {}", r.start);
                    } else {
                        let _ = write!(text, " {}-{}", r.start, r.end);
                    }
                }
            }
            // As Redis, this node's open slots: `[slot->-target]`, `[slot-<-source]`.
            if myself {
                for (slot, state) in topology.slot_states() {
                    let arrow = match state {
                        SlotState::Migrating(_) => "->-",
                        SlotState::Importing(_) => "-<-",
                    };
                    let _ = write!(text, " [{slot}{arrow}{}]", state.peer());
                }
            }
            text.push('\n');
        }
    }
    Ok(Reply::Verbatim(Bytes::from(text)).into())
}

/// One node as CLUSTER SLOTS lists it: `[ip, port, id, {}]` (the map holds the extra
/// endpoints Redis adds; there are none with IP endpoints and no hostnames).
fn slots_node(n: &NodeInfo) -> Reply {
    Reply::Array(vec![
        Reply::bulk(n.ip.clone()),
        Reply::Int(i64::from(n.port)),
        Reply::bulk(n.id.to_string()),
        Reply::Map(vec![]),
    ])
}

/// CLUSTER SLOTS
///
/// # Format
/// `CLUSTER SLOTS`
///
/// # Returns
/// One entry per slot range, in slot order: `[start, end, master, replica …]`, each node
/// `[ip, port, id, {}]`. The serving node (master, later the Raft leader) comes first:
/// go-redis takes the first as the master.
pub fn slots(_s: &mut Session, sh: &Shared, _a: &mut Args) -> R {
    let topology = cluster_of(sh)?.topology.read();
    let mut ranges: Vec<_> = topology
        .map()
        .shards
        .iter()
        .flat_map(|s| s.slots.iter().map(move |r| (r, s)))
        .collect();
    ranges.sort_by_key(|(r, _)| r.start);
    let reply = ranges
        .into_iter()
        .map(|(r, shard)| {
            let mut entry = vec![Reply::Int(i64::from(r.start)), Reply::Int(i64::from(r.end))];
            entry.extend(shard.nodes.iter().map(slots_node));
            Reply::Array(entry)
        })
        .collect();
    Ok(Reply::Array(reply).into())
}

/// CLUSTER SHARDS
///
/// # Format
/// `CLUSTER SHARDS`
///
/// # Returns
/// One map per shard: `slots` (flat start/end pairs) and `nodes`, each node a map of `id`,
/// `port`, `ip`, `endpoint`, `role`, `replication-offset` and `health`, in Redis's order.
pub fn shards(_s: &mut Session, sh: &Shared, _a: &mut Args) -> R {
    let topology = cluster_of(sh)?.topology.read();
    let reply = shards_to_report(sh, &topology)
        .iter()
        .map(|shard| {
            let slots = shard
                .slots
                .iter()
                .flat_map(|r| [Reply::Int(i64::from(r.start)), Reply::Int(i64::from(r.end))])
                .collect();
            let nodes = shard
                .nodes
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    Reply::Map(vec![
                        (Reply::bulk("id"), Reply::bulk(n.id.to_string())),
                        (Reply::bulk("port"), Reply::Int(i64::from(n.port))),
                        (Reply::bulk("ip"), Reply::bulk(n.ip.clone())),
                        (Reply::bulk("endpoint"), Reply::bulk(n.ip.clone())),
                        (
                            Reply::bulk("role"),
                            Reply::bulk(if i == 0 { "master" } else { "replica" }),
                        ),
                        (Reply::bulk("replication-offset"), Reply::Int(0)),
                        (Reply::bulk("health"), Reply::bulk("online")),
                    ])
                })
                .collect();
            Reply::Map(vec![
                (Reply::bulk("slots"), Reply::Array(slots)),
                (Reply::bulk("nodes"), Reply::Array(nodes)),
            ])
        })
        .collect();
    Ok(Reply::Array(reply).into())
}

/// CLUSTER KEYSLOT
///
/// # Format
/// `CLUSTER KEYSLOT key`
///
/// # Returns
/// The key's hash slot: CRC16 of the key (or of its `{hash tag}`) mod 16384.
pub fn keyslot(_s: &mut Session, sh: &Shared, a: &mut Args) -> R {
    cluster_of(sh)?;
    let key = a.next_bytes()?;
    Ok(Reply::Int(i64::from(key_slot(&key))).into())
}

/// CLUSTER COUNTKEYSINSLOT
///
/// # Format
/// `CLUSTER COUNTKEYSINSLOT slot`
///
/// # Returns
/// The number of keys this node holds in `slot` (from the per-slot index).
pub fn countkeysinslot(_s: &mut Session, sh: &Shared, a: &mut Args) -> R {
    cluster_of(sh)?;
    let slot = parse_slot(a, CommandError::InvalidSlot)?;
    let n = sh.state.lock().ks.db(0).count_in_group(slot);
    Ok(Reply::Int(n as i64).into())
}

/// CLUSTER GETKEYSINSLOT
///
/// # Format
/// `CLUSTER GETKEYSINSLOT slot count`
///
/// # Returns
/// Up to `count` key names this node holds in `slot`.
pub fn getkeysinslot(_s: &mut Session, sh: &Shared, a: &mut Args) -> R {
    cluster_of(sh)?;
    let slot = a.next_i64()?;
    let count = a.next_i64()?;
    let slot = u16::try_from(slot)
        .ok()
        .filter(|s| *s < SLOTS && count >= 0)
        .ok_or(CommandError::InvalidSlotOrCount)?;
    let max = usize::try_from(count).unwrap_or(usize::MAX);
    let keys = sh.state.lock().ks.db(0).keys_in_group(slot, max);
    Ok(Reply::Array(keys.into_iter().map(Reply::Bulk).collect()).into())
}

/// CLUSTER REPLICAS / SLAVES
///
/// # Format
/// `CLUSTER REPLICAS node-id`
///
/// # Returns
/// The CLUSTER NODES lines of the master's replicas (none in this release); `Unknown node`
/// for an id the map does not hold.
pub fn replicas(_s: &mut Session, sh: &Shared, a: &mut Args) -> R {
    let topology = cluster_of(sh)?.topology.read();
    let id = a.next_bytes()?;
    let id = String::from_utf8_lossy(&id).to_string();
    let shard = topology
        .map()
        .shards
        .iter()
        .find(|s| s.nodes.iter().any(|n| n.id.as_str() == id))
        .ok_or_else(|| CommandError::Invalid(format!("Unknown node {id}")))?;
    if shard.nodes.first().is_some_and(|m| m.id.as_str() != id) {
        return Err(CommandError::Invalid(
            "The specified node is not a master".into(),
        ));
    }
    Ok(Reply::Array(vec![]).into())
}

/// CLUSTER SAVECONFIG
///
/// # Format
/// `CLUSTER SAVECONFIG`
///
/// # Returns
/// `+OK`: the cluster config file is already written (and fsynced) whenever it changes.
pub fn saveconfig(_s: &mut Session, sh: &Shared, _a: &mut Args) -> R {
    cluster_of(sh)?;
    Ok(Reply::Ok.into())
}

/// CLUSTER HELP
pub fn help(_s: &mut Session, sh: &Shared, _a: &mut Args) -> R {
    cluster_of(sh)?;
    Ok(super::connection::help_reply(
        "CLUSTER",
        &[
            "COUNTKEYSINSLOT <slot>",
            "    Return the number of keys in <slot>.",
            "GETKEYSINSLOT <slot> <count>",
            "    Return key names stored by current node in a slot.",
            "INFO",
            "    Return information about the cluster.",
            "KEYSLOT <key>",
            "    Return the hash slot for <key>.",
            "MYID",
            "    Return the node id.",
            "MYSHARDID",
            "    Return the node's shard id.",
            "NODES",
            "    Return cluster configuration seen by node. Output format:",
            "    <id> <ip:port@bus-port[,hostname]> <flags> <master> <pings> <pongs> <epoch> <link> <slot> ...",
            "REPLICAS <node-id>",
            "    Return <node-id> replicas.",
            "SLOTS",
            "    Return information about slots range mappings. Each range is made of:",
            "    start, end, master and replicas IP addresses, ports and ids",
            "SHARDS",
            "    Return information about slot range mappings and the nodes associated with them.",
            "(Topology is managed with 'rill cluster create|reshard|rebalance|fix'; MEET, ADDSLOTS, SETSLOT, REPLICATE, FAILOVER … are refused.)",
        ],
    )
    .into())
}

/// A CLUSTER subcommand that changes topology by hand: refused, naming what to use.
pub fn refused(_s: &mut Session, sh: &Shared, a: &mut Args) -> R {
    cluster_of(sh)?;
    let sub = a
        .argv()
        .get(1)
        .map(|s| String::from_utf8_lossy(s).to_ascii_uppercase())
        .unwrap_or_default();
    let instead = match sub.as_str() {
        "SETSLOT" => "rill cluster reshard",
        "REPLICATE" => "rill cluster create --replicas",
        "FAILOVER" => "rill cluster create --replicas with cluster-raft yes",
        _ => "rill cluster create",
    };
    Err(CommandError::TopologyManaged {
        command: sub,
        instead,
    })
}

/// CLUSTER FAILOVER
///
/// # Format
/// `CLUSTER FAILOVER [FORCE | TAKEOVER]`
///
/// # Returns
/// `+OK` once a replica of a replicated shard (`cluster-raft yes`) has asked its leader to
/// hand over leadership (Raft's leader transfer: the leader brings it up to date first), or
/// with FORCE / TAKEOVER has started an election itself; the failover completes
/// asynchronously, as in Redis. On the leader: Redis's "You should send CLUSTER FAILOVER to
/// a replica". Without replicated shards the topology is the CLI's to manage (refused).
pub fn failover(s: &mut Session, sh: &Shared, a: &mut Args) -> R {
    let (Some(raft), true) = (
        sh.raft.get(),
        sh.log.get().is_none() && sh.cluster.is_some(),
    ) else {
        return refused(s, sh, a);
    };
    let force = a.eat("FORCE") || a.eat("TAKEOVER");
    if a.remaining() > 0 {
        return Err(CommandError::Syntax);
    }
    if raft.is_leader() {
        return Err(CommandError::FailoverOnMaster);
    }
    raft.failover(force)?;
    Ok(Reply::Ok.into())
}

/// READONLY
///
/// # Format
/// `READONLY`
///
/// # Returns
/// `+OK`; the connection may read from replicas (kept for when shards have them).
pub fn readonly(s: &mut Session, sh: &Shared, _a: &mut Args) -> R {
    cluster_of(sh)?;
    s.readonly = true;
    Ok(Reply::Ok.into())
}

/// READWRITE
///
/// # Format
/// `READWRITE`
///
/// # Returns
/// `+OK`; ends READONLY.
pub fn readwrite(s: &mut Session, sh: &Shared, _a: &mut Args) -> R {
    cluster_of(sh)?;
    s.readonly = false;
    Ok(Reply::Ok.into())
}

/// ASKING
///
/// # Format
/// `ASKING`
///
/// # Returns
/// `+OK`; the next command may be served for a slot being imported (slot migration is
/// not implemented yet, so the flag is only kept).
pub fn asking(s: &mut Session, sh: &Shared, _a: &mut Args) -> R {
    cluster_of(sh)?;
    s.asking = true;
    Ok(Reply::Ok.into())
}

/// RILL.CLUSTER SETTOPOLOGY
///
/// # Format
/// `RILL.CLUSTER SETTOPOLOGY map`
///
/// # Returns
/// `+OK` once the map (the text format of `cluster::topology`) is persisted in the cluster
/// config file and served; an error if it does not parse, does not list this node, or is
/// older than the map this node has.
pub fn settopology(_s: &mut Session, sh: &Shared, a: &mut Args) -> R {
    let cluster = cluster_of(sh)?;
    let text = a.next_bytes()?;
    a.finish()?;
    let text = std::str::from_utf8(&text)
        .map_err(|_| CommandError::Invalid("the shard map is not UTF-8 text".into()))?;
    let (map, _) = ShardMap::parse(text)?;
    cluster.set_map(map)?;
    redirect_blocked(sh, cluster);
    Ok(Reply::Ok.into())
}

/// Answers the clients blocked on keys whose slot this node no longer serves (a new map, or
/// a replicated shard's new leader elsewhere), as Redis's
/// `clusterRedirectBlockedClientIfNeeded`: `MOVED` to the new owner, `CLUSTERDOWN` when
/// the slot has none or the cluster does not serve every slot. A blocked command's keys are
/// all in one slot (routing checked it), so the first key decides.
pub fn redirect_blocked(sh: &Shared, cluster: &Cluster) {
    let mut state = sh.state.lock();
    let moved = state
        .blocking
        .take_where(|w| blocked_redirect(cluster, &w.keys, w.replica_read).is_some());
    for waiter in moved {
        if let Some(error) = blocked_redirect(cluster, &waiter.keys, waiter.replica_read) {
            waiter.fail(sh, error.to_string());
        }
    }
}

/// What a client blocked on `keys` must be answered now that the map may have changed:
/// `None` while this node serves their slot (all in one: routing checked it, so the first
/// key decides), else `MOVED` to the new owner, or `CLUSTERDOWN` when the slot has no owner
/// or the cluster does not serve every slot. Called under the keyspace lock both when a map
/// is installed (for the clients already waiting) and when a client is about to wait
/// (`commands::block`), so a map installed between a command's route check and its
/// registration cannot leave it waiting for keys that are no longer here. A `replica_read`
/// (a read-only command of a READONLY client) keeps waiting on any node of the slot's
/// shard, as [`route`] lets it run there.
pub fn blocked_redirect(
    cluster: &Cluster,
    keys: &[bytes::Bytes],
    replica_read: bool,
) -> Option<CommandError> {
    let topology = cluster.topology.read();
    if !topology.is_ok() {
        return Some(CommandError::ClusterDown);
    }
    let slot = key_slot(keys.first()?);
    if replica_read && topology.in_my_shard(slot) {
        return None;
    }
    // As Redis: a client blocked on a slot this node is importing (it came with ASKING)
    // keeps waiting; the slot is about to be this node's.
    if let Some(SlotState::Importing(_)) = topology.slot_state(slot) {
        return None;
    }
    match topology.owner(slot) {
        SlotOwner::Myself => None,
        SlotOwner::Node(node) => Some(CommandError::Moved {
            slot,
            endpoint: node.endpoint(),
        }),
        _ => Some(CommandError::SlotNotServed),
    }
}

/// RILL.CLUSTER SETSLOT
///
/// # Format
/// `RILL.CLUSTER SETSLOT slot MIGRATING node-id | IMPORTING node-id | STABLE`
///
/// # Returns
/// `+OK` once the slot's new state is persisted in the cluster config file and served:
/// what Redis's `CLUSTER SETSLOT` does for these three forms, with its checks (only the
/// owner migrates a slot, only another node imports it). Assigning the slot (Redis's
/// `SETSLOT … NODE`) is a new map, sent with SETTOPOLOGY by `rill cluster reshard`.
pub fn setslot(_s: &mut Session, sh: &Shared, a: &mut Args) -> R {
    let cluster = cluster_of(sh)?;
    let slot = parse_slot(a, CommandError::InvalidSlot)?;
    let what = a.next_bytes()?;
    let node = |a: &mut Args| -> Result<NodeId, CommandError> {
        let id = a.next_bytes()?;
        let id = String::from_utf8_lossy(&id).to_string();
        NodeId::parse(&id)
            .ok_or_else(|| CommandError::Invalid(format!("I don't know about node {id}")))
    };
    let state = if what.eq_ignore_ascii_case(b"migrating") {
        Some(SlotState::Migrating(node(a)?))
    } else if what.eq_ignore_ascii_case(b"importing") {
        Some(SlotState::Importing(node(a)?))
    } else if what.eq_ignore_ascii_case(b"stable") {
        None
    } else {
        return Err(CommandError::Syntax);
    };
    a.finish()?;
    cluster.set_slot_state(slot, state)?;
    // A slot no longer importing: clients blocked on it with ASKING go to its owner.
    redirect_blocked(sh, cluster);
    Ok(Reply::Ok.into())
}

/// RILL.CLUSTER SLOTSTATES
///
/// # Format
/// `RILL.CLUSTER SLOTSTATES`
///
/// # Returns
/// The open slots of this node: `[slot, "migrating" | "importing", node-id]` each, in slot
/// order.
pub fn slotstates(_s: &mut Session, sh: &Shared, _a: &mut Args) -> R {
    let topology = cluster_of(sh)?.topology.read();
    let reply = topology
        .slot_states()
        .iter()
        .map(|(slot, state)| {
            Reply::Array(vec![
                Reply::Int(i64::from(*slot)),
                Reply::bulk(state.word()),
                Reply::bulk(state.peer().to_string()),
            ])
        })
        .collect();
    Ok(Reply::Array(reply).into())
}

/// RILL.CLUSTER TOPOLOGY
///
/// # Format
/// `RILL.CLUSTER TOPOLOGY`
///
/// # Returns
/// The shard map this node serves, as text (epoch 0 and no shards before `create`).
pub fn topology(_s: &mut Session, sh: &Shared, _a: &mut Args) -> R {
    let topology = cluster_of(sh)?.topology.read();
    Ok(Reply::bulk(topology.map().to_text()).into())
}

/// RILL.CLUSTER NODEINFO
///
/// # Format
/// `RILL.CLUSTER NODEINFO`
///
/// # Returns
/// `[id, announce-ip, port, cport]`: what `rill cluster create` puts in the map for this
/// node. `announce-ip` is empty unless `cluster-announce-ip` is set (the CLI then uses the
/// address it reached the node on).
pub fn nodeinfo(_s: &mut Session, sh: &Shared, _a: &mut Args) -> R {
    let topology = cluster_of(sh)?.topology.read();
    let me = myself_unmapped(sh, &topology);
    Ok(Reply::Array(vec![
        Reply::bulk(me.id.to_string()),
        Reply::bulk(me.ip),
        Reply::Int(i64::from(me.port)),
        Reply::Int(i64::from(me.cport)),
    ])
    .into())
}

/// The Raft group of this node's replicated shard, or the error for a node without one.
fn replicated_group(
    sh: &Shared,
) -> Result<&std::sync::Arc<crate::cluster::raft::RaftNode>, CommandError> {
    match (sh.raft.get(), sh.cluster.is_some()) {
        (Some(raft), true) => Ok(raft),
        _ => Err(CommandError::Invalid(
            "this node does not run a replicated shard (cluster-enabled yes, cluster-raft yes)"
                .into(),
        )),
    }
}

/// RILL.CLUSTER MEMBER
///
/// # Format
/// `RILL.CLUSTER MEMBER ADD|PROMOTE node-id ip port cport` |
/// `RILL.CLUSTER MEMBER REMOVE node-id`
///
/// # Returns
/// The Raft index of the membership change proposed on the shard's leader (`rill cluster
/// add-node` / `del-node` send it, then follow `RILL.CLUSTER MEMBERS` until it is applied):
/// ADD makes the node a learner (it catches up by the log or a snapshot), PROMOTE a voter,
/// REMOVE takes it out. One change at a time. ADD is refused while the leader's Raft log
/// still starts at its first entry (a new replica must be sent a snapshot: run
/// BGREWRITEAOF there first) or while it has published no snapshot yet.
pub fn member(_s: &mut Session, sh: &Shared, a: &mut Args) -> R {
    use crate::cluster::raft::membership::Change;
    let raft = replicated_group(sh)?;
    let what = a.next_bytes()?;
    let change = if what.eq_ignore_ascii_case(b"add") {
        Change::AddLearner
    } else if what.eq_ignore_ascii_case(b"promote") {
        Change::AddVoter
    } else if what.eq_ignore_ascii_case(b"remove") {
        Change::Remove
    } else {
        return Err(CommandError::Syntax);
    };
    let id = String::from_utf8_lossy(&a.next_bytes()?).to_string();
    let id =
        NodeId::parse(&id).ok_or_else(|| CommandError::Invalid(format!("Invalid node id {id}")))?;
    let context = if change == Change::Remove {
        Vec::new()
    } else {
        let ip = String::from_utf8_lossy(&a.next_bytes()?).to_string();
        let mut port = |what: &str| -> Result<u16, CommandError> {
            crate::syntax::string2ll(&a.next_bytes()?)
                .and_then(|p| u16::try_from(p).ok())
                .ok_or_else(|| CommandError::Invalid(format!("Invalid {what}")))
        };
        let (port, cport) = (port("port")?, port("bus port")?);
        if ip.is_empty() || ip.contains(' ') {
            return Err(CommandError::Invalid("Invalid address".into()));
        }
        NodeInfo {
            id: id.clone(),
            ip,
            port,
            cport,
            joined: true,
        }
        .member_context()
    };
    a.finish()?;
    if !raft.is_leader() {
        return Err(CommandError::Raft(
            crate::cluster::raft::RaftError::NotLeader,
        ));
    }
    if change == Change::AddLearner {
        let log = raft.raft_log();
        if log.first_index() <= 1 || log.snapshots().newest().is_none() {
            return Err(CommandError::Invalid(
                "this leader has no snapshot to send a new replica yet (its Raft log was never purged): run BGREWRITEAOF here and retry".into(),
            ));
        }
    }
    let index = raft.propose_membership(change, id.raft_id(), context)?;
    Ok(Reply::Int(index as i64).into())
}

/// RILL.CLUSTER MEMBERS
///
/// # Format
/// `RILL.CLUSTER MEMBERS`
///
/// # Returns
/// The members of this node's Raft group as its applied configuration has them:
/// `[raft-id (16 hex digits), "voter" | "learner", match]` each, `match` the highest index
/// the leader knows the member holds (-1 on a node that does not lead).
pub fn members(_s: &mut Session, sh: &Shared, _a: &mut Args) -> R {
    let raft = replicated_group(sh)?;
    let cs = raft.conf_state();
    let progress = raft.replicas();
    let matched = |id: u64| -> i64 {
        if id == raft.id() && raft.is_leader() {
            return raft.status().last_index as i64;
        }
        progress
            .iter()
            .find(|r| r.id == id)
            .map_or(-1, |r| r.matched as i64)
    };
    let mut out = Vec::new();
    for (ids, role) in [(&cs.voters, "voter"), (&cs.learners, "learner")] {
        let mut ids = ids.clone();
        ids.sort_unstable();
        for id in ids {
            out.push(Reply::Array(vec![
                Reply::bulk(format!("{id:016x}")),
                Reply::bulk(role),
                Reply::Int(matched(id)),
            ]));
        }
    }
    Ok(Reply::Array(out).into())
}

/// RILL.CLUSTER HELP
pub fn rill_help(_s: &mut Session, _sh: &Shared, _a: &mut Args) -> R {
    Ok(super::connection::help_reply(
        "RILL.CLUSTER",
        &[
            "NODEINFO",
            "    Return this node's id, announced ip, port and bus port.",
            "TOPOLOGY",
            "    Return the shard map this node serves.",
            "SETTOPOLOGY <map>",
            "    Persist and serve a shard map (sent by 'rill cluster create' and 'reshard').",
            "SETSLOT <slot> MIGRATING|IMPORTING <node-id> | STABLE",
            "    Open or close a slot being moved (sent by 'rill cluster reshard').",
            "SLOTSTATES",
            "    Return this node's open slots: [slot, migrating|importing, node-id] each.",
            "MEMBER ADD|PROMOTE <node-id> <ip> <port> <cport> | REMOVE <node-id>",
            "    Propose a Raft membership change on the shard's leader (sent by 'rill cluster add-node' and 'del-node').",
            "MEMBERS",
            "    Return the members of this node's Raft group: [raft-id, voter|learner, match] each.",
        ],
    )
    .into())
}

const STALE: &[&str] = &["stale"];
const LOADING_STALE: &[&str] = &["loading", "stale"];
const ADMIN: &[&str] = &["admin", "stale", "no_async_loading"];

const fn sub(full: &'static str, arity: i32, f: super::table::ConnFn) -> CommandSpec {
    CommandSpec::new(full, arity, Handler::Conn(f))
}

/// The CLUSTER subcommands.
pub static CLUSTER_SUBCOMMANDS: &[CommandSpec] = &[
    sub("cluster|info", 2, info)
        .flags(STALE)
        .acl(&["@slow"])
        .doc("cluster", "3.0.0", "O(1)", "Returns information about the state of a node."),
    sub("cluster|myid", 2, myid)
        .flags(STALE)
        .acl(&["@slow"])
        .doc("cluster", "3.0.0", "O(1)", "Returns the ID of a node."),
    sub("cluster|myshardid", 2, myshardid)
        .flags(STALE)
        .acl(&["@slow"])
        .doc("cluster", "7.2.0", "O(1)", "Returns the shard ID of a node."),
    sub("cluster|nodes", 2, nodes)
        .flags(STALE)
        .acl(&["@slow"])
        .doc("cluster", "3.0.0", "O(N) where N is the total number of Cluster nodes", "Returns the cluster configuration for a node."),
    sub("cluster|slots", 2, slots)
        .flags(LOADING_STALE)
        .acl(&["@slow"])
        .doc("cluster", "3.0.0", "O(N) where N is the total number of Cluster nodes", "Returns the mapping of cluster slots to nodes."),
    sub("cluster|shards", 2, shards)
        .flags(LOADING_STALE)
        .acl(&["@slow"])
        .doc("cluster", "7.0.0", "O(N) where N is the total number of cluster nodes", "Returns the mapping of cluster slots to shards."),
    sub("cluster|keyslot", 3, keyslot)
        .flags(STALE)
        .acl(&["@slow"])
        .doc("cluster", "3.0.0", "O(N) where N is the number of bytes in the key", "Returns the hash slot for a key."),
    sub("cluster|countkeysinslot", 3, countkeysinslot)
        .flags(STALE)
        .acl(&["@slow"])
        .doc("cluster", "3.0.0", "O(1)", "Returns the number of keys in a hash slot."),
    sub("cluster|getkeysinslot", 4, getkeysinslot)
        .flags(STALE)
        .acl(&["@slow"])
        .doc("cluster", "3.0.0", "O(N) where N is the number of requested keys", "Returns the key names in a hash slot."),
    sub("cluster|replicas", 3, replicas)
        .flags(ADMIN)
        .acl(&["@admin", "@slow", "@dangerous"])
        .doc("cluster", "5.0.0", "O(N) where N is the number of replicas.", "Lists the replica nodes of a master node."),
    sub("cluster|slaves", 3, replicas)
        .flags(ADMIN)
        .acl(&["@admin", "@slow", "@dangerous"])
        .doc("cluster", "3.0.0", "O(N) where N is the number of replicas.", "Lists the replica nodes of a master node."),
    sub("cluster|saveconfig", 2, saveconfig)
        .flags(ADMIN)
        .acl(&["@admin", "@slow", "@dangerous"])
        .doc("cluster", "3.0.0", "O(1)", "Forces a node to save the cluster configuration to disk."),
    sub("cluster|help", 2, help)
        .flags(LOADING_STALE)
        .acl(&["@slow"])
        .doc("cluster", "5.0.0", "O(1)", "Returns helpful text about the different subcommands."),
    sub("cluster|meet", -4, refused)
        .flags(ADMIN)
        .acl(&["@admin", "@slow", "@dangerous"])
        .doc("cluster", "3.0.0", "O(1)", "Forces a node to handshake with another node."),
    sub("cluster|addslots", -3, refused)
        .flags(ADMIN)
        .acl(&["@admin", "@slow", "@dangerous"])
        .doc("cluster", "3.0.0", "O(N) where N is the total number of hash slot arguments", "Assigns new hash slots to a node."),
    sub("cluster|addslotsrange", -4, refused)
        .flags(ADMIN)
        .acl(&["@admin", "@slow", "@dangerous"])
        .doc("cluster", "7.0.0", "O(N) where N is the total number of the slots between the start slot and end slot arguments.", "Assigns new hash slot ranges to a node."),
    sub("cluster|delslots", -3, refused)
        .flags(ADMIN)
        .acl(&["@admin", "@slow", "@dangerous"])
        .doc("cluster", "3.0.0", "O(N) where N is the total number of hash slot arguments", "Sets hash slots as unbound for a node."),
    sub("cluster|delslotsrange", -4, refused)
        .flags(ADMIN)
        .acl(&["@admin", "@slow", "@dangerous"])
        .doc("cluster", "7.0.0", "O(N) where N is the total number of the slots between the start slot and end slot arguments.", "Sets hash slot ranges as unbound for a node."),
    sub("cluster|flushslots", 2, refused)
        .flags(ADMIN)
        .acl(&["@admin", "@slow", "@dangerous"])
        .doc("cluster", "3.0.0", "O(1)", "Deletes all slots information from a node."),
    sub("cluster|setslot", -4, refused)
        .flags(ADMIN)
        .acl(&["@admin", "@slow", "@dangerous"])
        .doc("cluster", "3.0.0", "O(1)", "Binds a hash slot to a node."),
    sub("cluster|forget", 3, refused)
        .flags(ADMIN)
        .acl(&["@admin", "@slow", "@dangerous"])
        .doc("cluster", "3.0.0", "O(1)", "Removes a node from the nodes table."),
    sub("cluster|replicate", 3, refused)
        .flags(ADMIN)
        .acl(&["@admin", "@slow", "@dangerous"])
        .doc("cluster", "3.0.0", "O(1)", "Configure a node as replica of a master node."),
    sub("cluster|failover", -2, failover)
        .flags(ADMIN)
        .acl(&["@admin", "@slow", "@dangerous"])
        .doc("cluster", "3.0.0", "O(1)", "Forces a replica to perform a manual failover of its master."),
    sub("cluster|reset", -2, refused)
        .flags(&["admin", "noscript", "stale"])
        .acl(&["@admin", "@slow", "@dangerous"])
        .doc("cluster", "3.0.0", "O(N) where N is the number of known nodes. The command may execute a FLUSHALL as a side effect.", "Resets a node."),
    sub("cluster|bumpepoch", 2, refused)
        .flags(ADMIN)
        .acl(&["@admin", "@slow", "@dangerous"])
        .doc("cluster", "3.0.0", "O(1)", "Advances the cluster config epoch."),
    sub("cluster|set-config-epoch", 3, refused)
        .flags(ADMIN)
        .acl(&["@admin", "@slow", "@dangerous"])
        .doc("cluster", "3.0.0", "O(1)", "Sets the configuration epoch for a new node."),
];

/// The RILL.CLUSTER subcommands (Rill's own admin family).
pub static RILL_CLUSTER_SUBCOMMANDS: &[CommandSpec] = &[
    sub("rill.cluster|nodeinfo", 2, nodeinfo)
        .flags(LOADING_STALE)
        .acl(&["@admin", "@slow"])
        .doc(
            "cluster",
            "0.1.0",
            "O(1)",
            "Returns this node's id, announced address, port and bus port.",
        ),
    sub("rill.cluster|topology", 2, topology)
        .flags(LOADING_STALE)
        .acl(&["@admin", "@slow"])
        .doc(
            "cluster",
            "0.1.0",
            "O(N) where N is the number of nodes",
            "Returns the shard map this node serves.",
        ),
    sub("rill.cluster|settopology", 3, settopology)
        .flags(&["admin", "loading", "stale"])
        .acl(&["@admin", "@slow", "@dangerous"])
        .doc(
            "cluster",
            "0.1.0",
            "O(N) where N is the number of nodes",
            "Persists and serves a shard map (used by 'rill cluster create').",
        ),
    sub("rill.cluster|setslot", -4, setslot)
        .flags(&["admin", "loading", "stale"])
        .acl(&["@admin", "@slow", "@dangerous"])
        .doc(
            "cluster",
            "0.1.0",
            "O(1)",
            "Opens or closes a slot being moved (used by 'rill cluster reshard').",
        ),
    sub("rill.cluster|slotstates", 2, slotstates)
        .flags(LOADING_STALE)
        .acl(&["@admin", "@slow"])
        .doc(
            "cluster",
            "0.1.0",
            "O(N) where N is the number of open slots",
            "Returns the slots this node is migrating or importing.",
        ),
    sub("rill.cluster|member", -4, member)
        .flags(ADMIN)
        .acl(&["@admin", "@slow", "@dangerous"])
        .doc(
            "cluster",
            "0.1.0",
            "O(1)",
            "Proposes a Raft membership change: add a learner, promote it, or remove a member (used by 'rill cluster add-node' and 'del-node').",
        ),
    sub("rill.cluster|members", 2, members)
        .flags(STALE)
        .acl(&["@admin", "@slow"])
        .doc(
            "cluster",
            "0.1.0",
            "O(N) where N is the number of members",
            "Returns the members of this node's Raft group, their roles and how far they are.",
        ),
    sub("rill.cluster|help", 2, rill_help)
        .flags(LOADING_STALE)
        .acl(&["@slow"])
        .doc(
            "cluster",
            "0.1.0",
            "O(1)",
            "Returns helpful text about the different subcommands.",
        ),
];
