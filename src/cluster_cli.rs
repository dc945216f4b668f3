//! `rill cluster create|check|reshard|rebalance|fix|add-node|del-node`: the operator's side of cluster mode,
//! like `redis-cli --cluster create` (`--replicas R`: shards of 1 + R nodes), `check`, `reshard`, `rebalance` and
//! `fix`. All talk to running nodes over their client port with Rill's own admin family
//! (`RILL.CLUSTER NODEINFO / TOPOLOGY / SETTOPOLOGY / SETSLOT / SLOTSTATES`, `RILL.MIGRATE`)
//! and CLUSTER INFO / GETKEYSINSLOT.
//!
//! `create` asks every node for its id and announced address, refuses nodes that already
//! belong to a cluster or hold keys (as redis-cli does), splits the 16384 slots evenly in
//! the order the nodes were given (redis-cli's arithmetic), sends every node the map — each
//! persists it before answering — then checks the result.
//!
//! `check` reads the map from one node, then asks every node of it: is it up, does its id
//! match, does it serve the same map, does it report `cluster_state:ok`; and checks that
//! the map covers all 16384 slots. Exit status: 0 healthy, 1 problems found, 2 the command
//! could not run (bad arguments, the first node unreachable or not in cluster mode).
//!
//! `reshard` and `rebalance` move slots one at a time with redis-cli's procedure
//! (`clusterManagerMoveSlot`): the slot IMPORTING on the target, MIGRATING on the source,
//! its keys moved in batches of `--pipeline` with `RILL.MIGRATE` (each key stored and
//! fsynced on the target before the source deletes it; see `commands::migrate`), then a map
//! giving the slot to the target under the next epoch, sent to the target, the source and
//! every other node, each persisting it before it answers. Clients keep working throughout:
//! `-ASK` sends them to the target for keys already moved, `-TRYAGAIN` asks them to repeat
//! a multi-key command whose keys are split for the moment. Redis's own manual surface
//! (`CLUSTER SETSLOT`, `MIGRATE` with DUMP payloads) is refused or absent: these commands
//! are how slots move.
//!
//! `add-node` and `del-node` change a replicated shard's membership (`cluster-raft yes`):
//! they drive the shard leader's Raft membership changes (`RILL.CLUSTER MEMBER ADD |
//! PROMOTE | REMOVE`, one at a time, followed with `RILL.CLUSTER MEMBERS`) and send every
//! node the map with (or without) the node under the next epoch; see
//! `cluster::raft::membership` and docs/architecture.md.
//!
//! The open states are persisted on both nodes, so a move interrupted anywhere — the CLI
//! stopped, the source or the target killed — leaves the slot open; `fix` brings every node
//! to the newest map and completes each open slot's move (the steps are all repeatable).
//! Nothing acknowledged is lost meanwhile: a key is on the source, on the target, or (for
//! an instant, durably) on both, where the source's copy is the one a repeated move sends.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::cluster::peer::Auth;
use crate::cluster::peer::{Peer as Node, PeerError as CliError, Value};
use crate::cluster::slot::SLOTS;
use crate::cluster::topology::{NodeId, NodeInfo, ShardMap};

/// Arguments of `rill cluster`.
#[derive(Debug, Parser)]
#[command(
    name = "rill cluster",
    about = "Create, check and reshard a Rill cluster"
)]
pub struct ClusterArgs {
    /// Password of the nodes (`requirepass`, or the `--user`'s), sent with AUTH on every
    /// connection.
    #[arg(short = 'a', long = "pass", global = true)]
    pass: Option<String>,
    /// ACL user to authenticate as (`AUTH user pass`), with `--pass`.
    #[arg(long = "user", global = true, requires = "pass")]
    user: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Make one cluster of the given nodes (started with `cluster-enabled yes`), one shard
    /// per node, the 16384 slots split evenly in the order given.
    Create {
        /// The nodes, as HOST:PORT.
        #[arg(required = true)]
        nodes: Vec<String>,
        /// Replicas per shard (`--cluster-replicas` of redis-cli): the nodes form shards of
        /// 1 + R, the first nodes given leading them. Nodes started with `cluster-raft yes`
        /// make each shard one Raft group.
        #[arg(
            long = "replicas",
            visible_alias = "cluster-replicas",
            default_value_t = 0
        )]
        replicas: usize,
    },
    /// Check that every node of the cluster is up, agrees on the map, and that all 16384
    /// slots are served. Exit status 0 when healthy, 1 otherwise.
    Check {
        /// Any node of the cluster, as HOST:PORT.
        node: String,
    },
    /// Move slots, with their keys, from one node to another while clients keep working
    /// (like `redis-cli --cluster reshard`).
    Reshard {
        /// Any node of the cluster, as HOST:PORT.
        node: String,
        /// The id of the node giving the slots.
        #[arg(long)]
        from: String,
        /// The id of the node receiving them.
        #[arg(long)]
        to: String,
        /// How many slots to move (the source's lowest first).
        #[arg(long)]
        slots: usize,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
        /// Keys per RILL.MIGRATE batch.
        #[arg(long, default_value_t = 10)]
        pipeline: usize,
        /// Milliseconds a batch may take on the target (RILL.MIGRATE's timeout).
        #[arg(long, default_value_t = 60000)]
        timeout: u64,
    },
    /// Move slots so that every node serves about as many (like `redis-cli --cluster
    /// rebalance`).
    Rebalance {
        /// Any node of the cluster, as HOST:PORT.
        node: String,
        /// Do nothing unless some node is off by more than this percentage of its share.
        #[arg(long, default_value_t = 2.0)]
        threshold: f64,
        /// Give slots to nodes that have none too.
        #[arg(long)]
        use_empty_masters: bool,
        /// Keys per RILL.MIGRATE batch.
        #[arg(long, default_value_t = 10)]
        pipeline: usize,
        /// Milliseconds a batch may take on the target (RILL.MIGRATE's timeout).
        #[arg(long, default_value_t = 60000)]
        timeout: u64,
    },
    /// Add a node to a replicated shard (`cluster-raft yes`) as a new replica, like
    /// `redis-cli --cluster add-node NEW EXISTING --cluster-slave`: it joins the shard's Raft
    /// group as a learner, catches up from the leader's snapshot and log, then becomes a
    /// voter.
    AddNode {
        /// The new node (started with `cluster-enabled yes --cluster-raft yes`, empty), as
        /// HOST:PORT.
        new_node: String,
        /// Any node of the cluster, as HOST:PORT.
        existing: String,
        /// The shard to join, named by its id or any member's node id (default: the shard
        /// with the fewest nodes).
        #[arg(long = "shard", visible_alias = "cluster-master-id")]
        shard: Option<String>,
        /// Seconds the new replica may take to catch up before it is promoted.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
    },
    /// Remove a node from its replicated shard (like `redis-cli --cluster del-node`): its
    /// Raft group drops it, every other node gets a map without it, and it is shut down.
    DelNode {
        /// Any node of the cluster, as HOST:PORT.
        existing: String,
        /// The id of the node to remove.
        node_id: String,
    },
    /// Finish what an interrupted reshard left (a node killed mid-move): bring every node
    /// to the newest map and complete every open slot's move (like `redis-cli --cluster fix`).
    Fix {
        /// Any node of the cluster, as HOST:PORT.
        node: String,
        /// Milliseconds a batch may take on the target (RILL.MIGRATE's timeout).
        #[arg(long, default_value_t = 60000)]
        timeout: u64,
    },
}

/// Entry point of `rill cluster …`.
pub fn main(args: &[String]) -> ExitCode {
    let parsed: ClusterArgs = match crate::check::parse_subcommand("cluster", args) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let auth = parsed.pass.clone().map(|pass| Auth {
        user: parsed.user.clone(),
        pass,
    });
    let pass = auth.as_ref();
    let result = match parsed.command {
        Command::Create { nodes, replicas } => create(&nodes, replicas, pass),
        Command::Check { node } => check(&node, pass),
        Command::Reshard {
            node,
            from,
            to,
            slots,
            yes,
            pipeline,
            timeout,
        } => reshard(
            &node,
            pass,
            &from,
            &to,
            slots,
            yes,
            Batches { pipeline, timeout },
        ),
        Command::Rebalance {
            node,
            threshold,
            use_empty_masters,
            pipeline,
            timeout,
        } => rebalance(
            &node,
            pass,
            threshold,
            use_empty_masters,
            Batches { pipeline, timeout },
        ),
        Command::AddNode {
            new_node,
            existing,
            shard,
            timeout,
        } => add_node(&new_node, &existing, shard.as_deref(), timeout, pass),
        Command::DelNode { existing, node_id } => del_node(&existing, &node_id, pass),
        Command::Fix { node, timeout } => fix(
            &node,
            pass,
            Batches {
                pipeline: 10,
                timeout,
            },
        ),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("[ERR] {e}");
            ExitCode::from(2)
        }
    }
}

fn create(addrs: &[String], replicas: usize, pass: Option<&Auth>) -> Result<bool, CliError> {
    let mut nodes = Vec::new();
    let mut infos: Vec<NodeInfo> = Vec::new();
    for addr in addrs {
        let mut node = Node::connect(addr, pass)?;
        let info = node.node_info()?;
        let map = node.topology()?;
        if map.epoch > 0 || !map.shards.is_empty() {
            eprintln!(
                "[ERR] Node {addr} is already part of a cluster (map epoch {}).",
                map.epoch
            );
            return Ok(false);
        }
        if let Value::Int(keys) = node.call(&[b"DBSIZE"])? {
            if keys != 0 {
                eprintln!("[ERR] Node {addr} is not empty: it holds {keys} keys in database 0.");
                return Ok(false);
            }
        }
        if let Some(other) = infos.iter().find(|i| i.id == info.id) {
            eprintln!(
                "[ERR] {addr} is the same node as {}:{} (id {}).",
                other.ip, other.port, info.id
            );
            return Ok(false);
        }
        infos.push(info);
        nodes.push(node);
    }
    println!(
        ">>> Performing hash slots allocation on {} nodes...",
        nodes.len()
    );
    let Some(map) = ShardMap::with_replicas(infos, replicas, 1) else {
        eprintln!(
            "[ERR] {} nodes do not make shards of 1 master + {replicas} replicas.",
            nodes.len()
        );
        return Ok(false);
    };
    for (i, shard) in map.shards.iter().enumerate() {
        for r in &shard.slots {
            println!("Master[{i}] -> Slots {} - {}", r.start, r.end);
        }
    }
    let text = map.to_text();
    for node in nodes.iter_mut() {
        node.call(&[b"RILL.CLUSTER", b"SETTOPOLOGY", text.as_bytes()])?;
    }
    for shard in &map.shards {
        let slots = shard
            .slots
            .iter()
            .map(|r| format!("[{}-{}]", r.start, r.end))
            .collect::<Vec<_>>()
            .join(",");
        for (i, n) in shard.nodes.iter().enumerate() {
            if i == 0 {
                println!(
                    "M: {} {}:{}\n   slots:{} ({} slots) master",
                    n.id,
                    n.ip,
                    n.port,
                    slots,
                    shard.slot_count()
                );
            } else {
                println!(
                    "S: {} {}:{}\n   replicates {}",
                    n.id, n.ip, n.port, shard.nodes[0].id
                );
            }
        }
    }
    println!(">>> Every node persisted the map.");
    check(&addrs[0], pass)
}

fn check(addr: &str, pass: Option<&Auth>) -> Result<bool, CliError> {
    let mut first = Node::connect(addr, pass)?;
    let map = first.topology()?;
    println!(">>> Performing Cluster Check (using node {addr})");
    if map.shards.is_empty() {
        println!("[ERR] {addr} has no shard map: create the cluster with 'rill cluster create'.");
        return Ok(false);
    }
    let mut healthy = true;
    for node_info in map.nodes() {
        let at = node_info.endpoint();
        let report = check_node(&first, &at, node_info, &map);
        match report {
            Ok(()) => println!(
                "[OK] {} {at}: up, serves this map (epoch {}).",
                node_info.id, map.epoch
            ),
            Err(problem) => {
                healthy = false;
                println!("[ERR] {} {at}: {problem}", node_info.id);
            }
        }
    }
    let covered: usize = map.shards.iter().map(|s| s.slot_count()).sum();
    if covered == usize::from(SLOTS) {
        println!("[OK] All {SLOTS} slots covered.");
    } else {
        healthy = false;
        println!("[ERR] Not all {SLOTS} slots are covered by nodes: {covered} are.");
    }
    if healthy {
        println!("[OK] All nodes agree about slots configuration.");
    }
    Ok(healthy)
}

/// One node of the map: reachable, the id the map says, the same map, state ok.
fn check_node(first: &Node, at: &str, expected: &NodeInfo, map: &ShardMap) -> Result<(), String> {
    let mut node = first.open(at).map_err(|e| e.to_string())?;
    let info = node.node_info().map_err(|e| e.to_string())?;
    if info.id != expected.id {
        return Err(format!("is node {}, not the map's", info.id));
    }
    let theirs = node.topology().map_err(|e| e.to_string())?;
    if !theirs.same_members(map) {
        return Err(format!(
            "serves another map (epoch {}, {} shards)",
            theirs.epoch,
            theirs.shards.len()
        ));
    }
    let state = node
        .text(&[b"CLUSTER", b"INFO"], "CLUSTER INFO")
        .map_err(|e| e.to_string())?;
    if !state.lines().any(|l| l == "cluster_state:ok") {
        return Err("reports cluster_state:fail".to_string());
    }
    Ok(())
}

/// How keys move: per RILL.MIGRATE, how many keys and how long it may take.
#[derive(Debug, Clone, Copy)]
struct Batches {
    pipeline: usize,
    timeout: u64,
}

/// The cluster as `reshard` / `rebalance` / `fix` work on it: the map, and a connection
/// to every node of it.
struct Cluster {
    map: ShardMap,
    nodes: Vec<(NodeInfo, Node)>,
}

impl Cluster {
    /// The map `addr` serves, and every node of it, which must all be reachable.
    fn load(addr: &str, pass: Option<&Auth>) -> Result<Cluster, CliError> {
        let mut first = Node::connect(addr, pass)?;
        let map = first.topology()?;
        let mut nodes = Vec::new();
        for info in map.nodes() {
            let node = first.open(&info.endpoint())?;
            nodes.push((info.clone(), node));
        }
        Ok(Cluster { map, nodes })
    }

    fn node(&mut self, id: &NodeId) -> Option<&mut Node> {
        self.nodes
            .iter_mut()
            .find(|(i, _)| &i.id == id)
            .map(|(_, n)| n)
    }

    fn info(&self, id: &NodeId) -> Option<&NodeInfo> {
        self.map.nodes().find(|n| &n.id == id)
    }

    /// Sends `map` to every node: `first` before the others (the node a slot moved to, so
    /// that from then on the source's `-ASK`s and the others' `-MOVED`s lead to a node that
    /// serves it), then `second`, then the rest.
    fn propagate(&mut self, map: &ShardMap, order: &[&NodeId]) -> Result<(), CliError> {
        let text = map.to_text();
        let mut ids: Vec<NodeId> = order.iter().map(|id| (*id).clone()).collect();
        ids.extend(
            self.map
                .nodes()
                .map(|n| n.id.clone())
                .filter(|id| !order.contains(&id)),
        );
        for id in ids {
            if let Some(node) = self.node(&id) {
                node.call(&[b"RILL.CLUSTER", b"SETTOPOLOGY", text.as_bytes()])?;
            }
        }
        self.map = map.clone();
        Ok(())
    }

    /// Moves `slot` from the node `source` (its owner) to `target`, as redis-cli's
    /// `clusterManagerMoveSlot`: IMPORTING on the target, MIGRATING on the source, the keys
    /// in batches (each key stored and fsynced on the target before the source deletes it),
    /// then the slot given to the target's shard under a new epoch, on every node. Every
    /// step may be repeated, so a move interrupted anywhere is finished by running it again.
    fn move_slot(
        &mut self,
        slot: u16,
        source: &NodeId,
        target: &NodeId,
        batches: Batches,
        pass: Option<&Auth>,
    ) -> Result<usize, CliError> {
        let slot_text = slot.to_string();
        let unknown = |id: &NodeId| CliError::BadAddress(format!("node {id} is not in the map"));
        let target_info = self.info(target).cloned().ok_or_else(|| unknown(target))?;
        let target_shard = self
            .map
            .shard_of(target)
            .map(|s| s.id.clone())
            .ok_or_else(|| unknown(target))?;
        self.node(target).ok_or_else(|| unknown(target))?.call(&[
            b"RILL.CLUSTER",
            b"SETSLOT",
            slot_text.as_bytes(),
            b"IMPORTING",
            source.as_str().as_bytes(),
        ])?;
        let src = self.node(source).ok_or_else(|| unknown(source))?;
        src.call(&[
            b"RILL.CLUSTER",
            b"SETSLOT",
            slot_text.as_bytes(),
            b"MIGRATING",
            target.as_str().as_bytes(),
        ])?;
        let port = target_info.port.to_string();
        let timeout = batches.timeout.to_string();
        let count = batches.pipeline.max(1).to_string();
        let mut moved = 0;
        loop {
            let Value::Array(keys) = src.call(&[
                b"CLUSTER",
                b"GETKEYSINSLOT",
                slot_text.as_bytes(),
                count.as_bytes(),
            ])?
            else {
                return Err(CliError::Unexpected {
                    addr: src.addr().to_string(),
                    what: "CLUSTER GETKEYSINSLOT",
                });
            };
            let keys: Vec<Vec<u8>> = keys
                .into_iter()
                .filter_map(|k| match k {
                    Value::Bulk(Some(k)) => Some(k),
                    _ => None,
                })
                .collect();
            if keys.is_empty() {
                break;
            }
            let mut args: Vec<&[u8]> = vec![
                b"RILL.MIGRATE",
                target_info.ip.as_bytes(),
                port.as_bytes(),
                timeout.as_bytes(),
            ];
            if let Some(p) = pass {
                args.push(if p.user.is_some() { b"AUTH2" } else { b"AUTH" });
                args.extend(p.args());
            }
            args.push(b"KEYS");
            args.extend(keys.iter().map(Vec::as_slice));
            src.call(&args)?;
            moved += keys.len();
        }
        let next = self
            .map
            .with_slot_moved(slot, &target_shard)
            .ok_or_else(|| unknown(target))?;
        self.propagate(&next, &[target, source])?;
        Ok(moved)
    }
}

/// Asks on stdin, as redis-cli does before it moves anything.
fn confirmed(question: &str) -> bool {
    use std::io::Write as _;
    print!("{question} (type 'yes' to accept): ");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer).is_ok() && answer.trim() == "yes"
}

/// Loads the cluster `addr` belongs to and says so, as `fix`, `reshard` and `rebalance` begin.
fn load_checking(addr: &str, pass: Option<&Auth>) -> Result<Cluster, CliError> {
    let cluster = Cluster::load(addr, pass)?;
    println!(">>> Performing Cluster Check (using node {addr})");
    Ok(cluster)
}

/// `load_checking` for a command that moves slots: `None`, having said why, unless the
/// cluster is `settled`.
fn load_settled(addr: &str, pass: Option<&Auth>) -> Result<Option<Cluster>, CliError> {
    let mut cluster = load_checking(addr, pass)?;
    Ok(settled(&mut cluster)?.then_some(cluster))
}

/// Refuses to start a move on a cluster that is not healthy and settled: every node must
/// serve the map and have no slot open (else `rill cluster fix` first).
fn settled(cluster: &mut Cluster) -> Result<bool, CliError> {
    let map = cluster.map.clone();
    let mut ok = true;
    for (info, node) in &mut cluster.nodes {
        if node.topology()? != map {
            println!(
                "[ERR] {} {} serves another map: run 'rill cluster fix' first.",
                info.id,
                info.endpoint()
            );
            ok = false;
        }
        if !open_slots(node)?.is_empty() {
            println!(
                "[ERR] {} {} has slots in migrating or importing state: run 'rill cluster fix' first.",
                info.id,
                info.endpoint()
            );
            ok = false;
        }
    }
    Ok(ok)
}

/// The rows of a `RILL.CLUSTER <sub>` reply (an array of arrays), each parsed by `row`;
/// anything else, or a row `row` rejects, is [`CliError::Unexpected`].
fn cluster_rows<T>(
    node: &mut Node,
    sub: &'static str,
    row: impl Fn(&[Value]) -> Option<T>,
) -> Result<Vec<T>, CliError> {
    let unexpected = |addr: &str| CliError::Unexpected {
        addr: addr.to_string(),
        what: sub,
    };
    let words: Vec<&[u8]> = sub.split(' ').map(str::as_bytes).collect();
    let Value::Array(items) = node.call(&words)? else {
        return Err(unexpected(node.addr()));
    };
    items
        .iter()
        .map(|item| match item {
            Value::Array(parts) => row(parts),
            _ => None,
        })
        .collect::<Option<Vec<T>>>()
        .ok_or_else(|| unexpected(node.addr()))
}

/// A node's open slots: (slot, "migrating" | "importing", other node).
fn open_slots(node: &mut Node) -> Result<Vec<(u16, String, NodeId)>, CliError> {
    cluster_rows(node, "RILL.CLUSTER SLOTSTATES", |parts| match parts {
        [Value::Int(slot), Value::Bulk(Some(word)), Value::Bulk(Some(id))] => Some((
            u16::try_from(*slot).ok()?,
            String::from_utf8_lossy(word).into_owned(),
            NodeId::parse(&String::from_utf8_lossy(id))?,
        )),
        _ => None,
    })
}

/// Parses a node id given on the command line.
fn node_id(text: &str, cluster: &Cluster) -> Option<NodeId> {
    NodeId::parse(text).filter(|id| cluster.info(id).is_some())
}

fn reshard(
    addr: &str,
    pass: Option<&Auth>,
    from: &str,
    to: &str,
    count: usize,
    yes: bool,
    batches: Batches,
) -> Result<bool, CliError> {
    let Some(mut cluster) = load_settled(addr, pass)? else {
        return Ok(false);
    };
    let (Some(source), Some(target)) = (node_id(from, &cluster), node_id(to, &cluster)) else {
        println!("[ERR] --from and --to must be ids of nodes of the cluster (CLUSTER MYID).");
        return Ok(false);
    };
    let shard_slots = |id: &NodeId| -> Vec<u16> {
        cluster
            .map
            .shard_of(id)
            .filter(|s| s.nodes.first().map(|n| &n.id) == Some(id))
            .map(|s| s.each_slot().collect())
            .unwrap_or_default()
    };
    let available = shard_slots(&source);
    if source == target {
        println!("[ERR] Target node is also listed among the source nodes!");
        return Ok(false);
    }
    if count == 0 || count > available.len() {
        println!(
            "[ERR] The source node serves {} slots; can't move {count}.",
            available.len()
        );
        return Ok(false);
    }
    let plan: Vec<u16> = available.into_iter().take(count).collect();
    println!("Ready to move {count} slots.");
    println!("  Source node: {source}");
    println!("  Destination node: {target}");
    println!("  Slots: {}", ranges_text(&plan));
    if !yes && !confirmed("Do you want to proceed with the proposed reshard plan?") {
        println!("*** Aborting...");
        return Ok(false);
    }
    for slot in plan {
        let keys = move_or_explain(&mut cluster, slot, &source, &target, batches, pass)?;
        println!("Moving slot {slot} from {source} to {target}: {keys} keys");
    }
    println!(
        ">>> Every node serves the new map (epoch {}).",
        cluster.map.epoch
    );
    check(addr, pass)
}

/// `move_slot`, with what to do when it fails half-way.
fn move_or_explain(
    cluster: &mut Cluster,
    slot: u16,
    source: &NodeId,
    target: &NodeId,
    batches: Batches,
    pass: Option<&Auth>,
) -> Result<usize, CliError> {
    cluster
        .move_slot(slot, source, target, batches, pass)
        .inspect_err(|e| {
            println!("[ERR] Moving slot {slot} from {source} to {target} failed: {e}");
            println!("[ERR] The slot stays open on both nodes; once both are up, 'rill cluster fix' completes the move.");
        })
}

/// Slots as `a-b,c,…`.
fn ranges_text(slots: &[u16]) -> String {
    let mut sorted = slots.to_vec();
    sorted.sort_unstable();
    let mut parts: Vec<(u16, u16)> = Vec::new();
    for s in sorted {
        match parts.last_mut() {
            Some((_, end)) if end.checked_add(1) == Some(s) => *end = s,
            _ => parts.push((s, s)),
        }
    }
    parts
        .iter()
        .map(|(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn rebalance(
    addr: &str,
    pass: Option<&Auth>,
    threshold: f64,
    use_empty: bool,
    batches: Batches,
) -> Result<bool, CliError> {
    let Some(mut cluster) = load_settled(addr, pass)? else {
        return Ok(false);
    };
    // The masters taking part, and the slots each has.
    let mut nodes: Vec<(NodeId, Vec<u16>)> = cluster
        .map
        .shards
        .iter()
        .filter(|s| use_empty || s.slot_count() > 0)
        .filter_map(|s| {
            s.nodes
                .first()
                .map(|n| (n.id.clone(), s.each_slot().collect()))
        })
        .collect();
    if nodes.len() < 2 {
        println!("*** No rebalancing needed: fewer than two masters take part.");
        return Ok(true);
    }
    let total: usize = nodes.iter().map(|(_, s)| s.len()).sum();
    let n = nodes.len();
    // The most slotted first, so the extra slots of an uneven split stay where they are.
    nodes.sort_by_key(|(_, s)| std::cmp::Reverse(s.len()));
    let expected: Vec<usize> = (0..n)
        .map(|i| total / n + usize::from(i < total % n))
        .collect();
    let off = nodes
        .iter()
        .zip(&expected)
        .map(|((_, s), e)| (s.len() as f64 - *e as f64).abs() / (*e).max(1) as f64 * 100.0)
        .fold(0.0, f64::max);
    if off <= threshold {
        println!("*** No rebalancing needed! All nodes are within the {threshold:.2}% threshold.");
        return Ok(true);
    }
    // Donors give their highest slots to receivers, in order.
    let mut moves: Vec<(u16, NodeId, NodeId)> = Vec::new();
    let mut give: Vec<(NodeId, Vec<u16>)> = Vec::new();
    let mut need: Vec<(NodeId, usize)> = Vec::new();
    for ((id, slots), e) in nodes.iter().zip(&expected) {
        if slots.len() > *e {
            give.push((id.clone(), slots[*e..].to_vec()));
        } else if slots.len() < *e {
            need.push((id.clone(), e - slots.len()));
        }
    }
    let mut donors = give
        .into_iter()
        .flat_map(|(id, slots)| slots.into_iter().map(move |s| (s, id.clone())));
    for (to, want) in need {
        for _ in 0..want {
            if let Some((slot, from)) = donors.next() {
                moves.push((slot, from, to.clone()));
            }
        }
    }
    println!(
        ">>> Rebalancing across {n} nodes: moving {} slots.",
        moves.len()
    );
    for (slot, from, to) in moves {
        move_or_explain(&mut cluster, slot, &from, &to, batches, pass)?;
        println!("Moved slot {slot} from {from} to {to}");
    }
    check(addr, pass)
}

fn fix(addr: &str, pass: Option<&Auth>, batches: Batches) -> Result<bool, CliError> {
    let mut cluster = load_checking(addr, pass)?;
    // The newest map any node has (a reshard stopped while sending it) goes to all.
    let mut newest = cluster.map.clone();
    for (_, node) in &mut cluster.nodes {
        let theirs = node.topology()?;
        if theirs.epoch > newest.epoch {
            newest = theirs;
        }
    }
    let lagging = cluster
        .nodes
        .iter_mut()
        .map(|(i, n)| n.topology().map(|m| (i.id.clone(), m != newest)))
        .collect::<Result<Vec<_>, _>>()?;
    if lagging.iter().any(|(_, behind)| *behind) {
        println!(
            ">>> Sending the newest map (epoch {}) to every node.",
            newest.epoch
        );
        cluster.propagate(&newest, &[])?;
    }
    cluster.map = newest;
    // Every open slot: finish its move from its owner to the node named.
    let mut open: Vec<(u16, NodeId, NodeId)> = Vec::new();
    let ids: Vec<NodeId> = cluster.nodes.iter().map(|(i, _)| i.id.clone()).collect();
    for id in ids {
        let Some(node) = cluster.node(&id) else {
            continue;
        };
        for (slot, word, other) in open_slots(node)? {
            let (source, target) = if word == "migrating" {
                (id.clone(), other)
            } else {
                (other, id.clone())
            };
            if !open.iter().any(|(s, _, _)| *s == slot) {
                open.push((slot, source, target));
            }
        }
    }
    if open.is_empty() {
        println!("[OK] No slot is being moved.");
    }
    for (slot, source, target) in open {
        // The map decides who owns the slot now: the move may only be left to announce.
        let owner = cluster
            .map
            .shard_owning(slot)
            .and_then(|s| s.nodes.first())
            .map(|n| n.id.clone());
        if owner.as_ref() == Some(&target) {
            println!(">>> Slot {slot} already belongs to {target}: closing it on {source}.");
            if let Some(node) = cluster.node(&source) {
                node.call(&[
                    b"RILL.CLUSTER",
                    b"SETSLOT",
                    slot.to_string().as_bytes(),
                    b"STABLE",
                ])?;
            }
            continue;
        }
        if owner.as_ref() != Some(&source) {
            println!("[ERR] Slot {slot} is open between {source} and {target}, but owned by neither; fix by hand.");
            return Ok(false);
        }
        println!(">>> Completing the move of slot {slot} from {source} to {target}.");
        let keys = move_or_explain(&mut cluster, slot, &source, &target, batches, pass)?;
        println!("Moved slot {slot}: {keys} keys");
    }
    check(addr, pass)
}

/// A replicated shard's members as its leader reports them (`RILL.CLUSTER MEMBERS`):
/// raft id (16 hex digits), whether a voter, and the index the leader knows it holds.
fn members(node: &mut Node) -> Result<Vec<(String, bool, i64)>, CliError> {
    cluster_rows(node, "RILL.CLUSTER MEMBERS", |parts| match parts {
        [Value::Bulk(Some(id)), Value::Bulk(Some(role)), Value::Int(m)] => Some((
            String::from_utf8_lossy(id).into_owned(),
            role.as_slice() == b"voter",
            *m,
        )),
        _ => None,
    })
}

/// An INFO field of `node`.
fn info_field(node: &mut Node, section: &str, field: &str) -> Result<Option<String>, CliError> {
    let text = node.text(&[b"INFO", section.as_bytes()], "INFO")?;
    Ok(text.lines().find_map(|l| {
        l.strip_prefix(field)
            .and_then(|r| r.strip_prefix(':'))
            .map(|v| v.trim().to_string())
    }))
}

/// The leader of `shard` among its nodes (the one whose INFO says `role:master`).
fn shard_leader(
    first: &Node,
    shard: &crate::cluster::topology::Shard,
) -> Result<(NodeInfo, Node), CliError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        for n in &shard.nodes {
            let Ok(mut node) = first.open(&n.endpoint()) else {
                continue;
            };
            if info_field(&mut node, "replication", "role")?.as_deref() == Some("master") {
                return Ok((n.clone(), node));
            }
        }
        if std::time::Instant::now() > deadline {
            return Err(CliError::Server {
                addr: shard.nodes[0].endpoint(),
                text: format!("shard {} has no leader", shard.id),
            });
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// Sends `map` to every node of it (each persists it before answering), `first` the
/// nodes in `first_to`.
fn send_map(first: &Node, map: &ShardMap, first_to: &[&NodeInfo]) -> Result<(), CliError> {
    let text = map.to_text();
    let mut order: Vec<&NodeInfo> = first_to.to_vec();
    order.extend(
        map.nodes()
            .filter(|n| !first_to.iter().any(|f| f.id == n.id)),
    );
    for n in order {
        let mut node = first.open(&n.endpoint())?;
        node.call(&[b"RILL.CLUSTER", b"SETTOPOLOGY", text.as_bytes()])?;
    }
    Ok(())
}

/// Waits until `done` says the leader's members are as wanted, or `timeout` passes.
fn wait_members(
    leader: &mut Node,
    timeout: std::time::Duration,
    what: &str,
    mut done: impl FnMut(&[(String, bool, i64)], i64) -> bool,
) -> Result<bool, CliError> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let m = members(leader)?;
        let last: i64 = info_field(leader, "replication", "raft_last_index")?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if done(&m, last) {
            return Ok(true);
        }
        if std::time::Instant::now() > deadline {
            eprintln!("[ERR] Timed out waiting for {what}.");
            return Ok(false);
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

fn add_node(
    new_addr: &str,
    existing: &str,
    shard_name: Option<&str>,
    timeout: u64,
    pass: Option<&Auth>,
) -> Result<bool, CliError> {
    let mut first = Node::connect(existing, pass)?;
    let mut map = first.topology()?;
    if map.shards.is_empty() {
        eprintln!("[ERR] {existing} has no shard map: create the cluster first.");
        return Ok(false);
    }
    let mut new = Node::connect(new_addr, pass)?;
    let mut info = new.node_info()?;
    let theirs = new.topology()?;
    if theirs.epoch > 0 || !theirs.shards.is_empty() {
        eprintln!(
            "[ERR] Node {new_addr} is already part of a cluster (map epoch {}).",
            theirs.epoch
        );
        return Ok(false);
    }
    if let Value::Int(keys) = new.call(&[b"DBSIZE"])? {
        if keys != 0 {
            eprintln!("[ERR] Node {new_addr} is not empty: it holds {keys} keys in database 0.");
            return Ok(false);
        }
    }
    if map.nodes().any(|n| n.id == info.id) {
        eprintln!(
            "[ERR] Node {new_addr} (id {}) is in the map already.",
            info.id
        );
        return Ok(false);
    }
    if info.ip.is_empty() {
        info.ip = new_addr
            .rsplit_once(':')
            .map_or(new_addr, |(h, _)| h)
            .to_string();
    }
    info.joined = true;
    let shard_index = match shard_name {
        Some(name) => map
            .shards
            .iter()
            .position(|s| s.id.as_str() == name || s.nodes.iter().any(|n| n.id.as_str() == name)),
        None => (0..map.shards.len()).min_by_key(|&i| map.shards[i].nodes.len()),
    };
    let Some(si) = shard_index else {
        eprintln!(
            "[ERR] No shard or node {} in the map.",
            shard_name.unwrap_or("")
        );
        return Ok(false);
    };
    let shard = map.shards[si].clone();
    println!(
        ">>> Adding node {new_addr} ({}) to shard {} as a replica",
        info.id, shard.id
    );
    let (leader_info, mut leader) = shard_leader(&first, &shard)?;
    // A new replica is sent a snapshot: the leader publishes one with a checkpoint.
    leader.call(&[b"BGREWRITEAOF"])?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while info_field(&mut leader, "persistence", "raft_snapshot_index")?
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        == 0
    {
        if std::time::Instant::now() > deadline {
            eprintln!(
                "[ERR] The leader {} published no snapshot within 60 s.",
                leader_info.endpoint()
            );
            return Ok(false);
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // The new node first: it starts its replica with no configuration and waits.
    map.epoch += 1;
    map.shards[si].nodes.push(info.clone());
    send_map(&first, &map, &[&info])?;
    println!(">>> Every node persisted the map (epoch {}).", map.epoch);
    let rid = format!("{:016x}", info.id.raft_id());
    let port = info.port.to_string();
    let cport = info.cport.to_string();
    let id = info.id.to_string();
    let member = |what: &[u8], leader: &mut Node| {
        leader.call(&[
            b"RILL.CLUSTER",
            b"MEMBER",
            what,
            id.as_bytes(),
            info.ip.as_bytes(),
            port.as_bytes(),
            cport.as_bytes(),
        ])
    };
    member(b"ADD", &mut leader)?;
    println!(">>> Learner added; waiting for it to catch up");
    let limit = std::time::Duration::from_secs(timeout);
    if !wait_members(
        &mut leader,
        limit,
        "the new replica to catch up",
        |m, last| {
            m.iter().any(|(r, voter, matched)| {
                *r == rid && !voter && *matched >= last - 16 && *matched > 0
            })
        },
    )? {
        return Ok(false);
    }
    member(b"PROMOTE", &mut leader)?;
    if !wait_members(&mut leader, limit, "the promotion", |m, _| {
        m.iter().any(|(r, voter, _)| *r == rid && *voter)
    })? {
        return Ok(false);
    }
    println!(
        "[OK] Node {} is a voting replica of shard {}.",
        info.id, shard.id
    );
    check(existing, pass)
}

fn del_node(existing: &str, node_id: &str, pass: Option<&Auth>) -> Result<bool, CliError> {
    let first = Node::connect(existing, pass)?;
    let mut map = first.open(existing)?.topology()?;
    let Some(si) = map
        .shards
        .iter()
        .position(|s| s.nodes.iter().any(|n| n.id.as_str() == node_id))
    else {
        eprintln!("[ERR] No such node ID {node_id}");
        return Ok(false);
    };
    let shard = map.shards[si].clone();
    if shard.nodes.len() == 1 {
        eprintln!(
            "[ERR] Node {node_id} is the only node of its shard: reshard its slots away first."
        );
        return Ok(false);
    }
    let Some(gone) = shard
        .nodes
        .iter()
        .find(|n| n.id.as_str() == node_id)
        .cloned()
    else {
        return Ok(false);
    };
    let (mut leader_info, mut leader) = shard_leader(&first, &shard)?;
    if leader_info.id == gone.id {
        // The leader cannot remove itself cleanly: hand leadership to another first.
        println!(">>> {node_id} leads its shard: transferring leadership");
        for n in shard.nodes.iter().filter(|n| n.id != gone.id) {
            if let Ok(mut other) = first.open(&n.endpoint()) {
                if other.call(&[b"CLUSTER", b"FAILOVER"]).is_ok() {
                    break;
                }
            }
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            std::thread::sleep(std::time::Duration::from_millis(200));
            let rest = crate::cluster::topology::Shard {
                nodes: shard
                    .nodes
                    .iter()
                    .filter(|n| n.id != gone.id)
                    .cloned()
                    .collect(),
                ..shard.clone()
            };
            if let Ok((i, l)) = shard_leader(&first, &rest) {
                leader_info = i;
                leader = l;
                break;
            }
            if std::time::Instant::now() > deadline {
                eprintln!("[ERR] Leadership did not move off {node_id}.");
                return Ok(false);
            }
        }
    }
    println!(
        ">>> Removing node {node_id} from shard {} (leader {})",
        shard.id,
        leader_info.endpoint()
    );
    leader.call(&[b"RILL.CLUSTER", b"MEMBER", b"REMOVE", node_id.as_bytes()])?;
    let rid = format!("{:016x}", gone.id.raft_id());
    if !wait_members(
        &mut leader,
        std::time::Duration::from_secs(30),
        "the removal",
        |m, _| !m.iter().any(|(r, _, _)| *r == rid),
    )? {
        return Ok(false);
    }
    map.epoch += 1;
    map.shards[si].nodes.retain(|n| n.id != gone.id);
    send_map(&first, &map, &[])?;
    println!(
        ">>> Every other node persisted the map (epoch {}).",
        map.epoch
    );
    println!(">>> Sending SHUTDOWN to {node_id}");
    if let Ok(mut node) = first.open(&gone.endpoint()) {
        let _ = node.send(&[b"SHUTDOWN", b"NOSAVE"]);
    }
    check(existing, pass)
}
