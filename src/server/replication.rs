//! A replicated shard in the server (issue #14): with `cluster-enabled yes` and
//! `cluster-raft yes`, this node's shard of the map is one Raft group whose voters are the
//! shard's nodes, and this module connects the pieces the lower layers provide — the peer
//! transport (`cluster::raft::transport`), the hosted group (`cluster::raft::node`,
//! `group.rs`), the replay path that applies committed entries (`persist::replay`) — into
//! the running server. Design scale-out.md §3.2–§3.7.
//!
//! **Start.** The log is replayed up to its last recorded commit (`persist::replay::
//! load_raft`), then [`host`] waits until the node has a map that lists its shard (a new
//! node gets one from `rill cluster create`; a restarted node has it in its cluster config
//! file), starts the transport on the cluster bus port (`cluster-port`, or the client
//! port plus 10000) with `cluster-secret`, and starts the group with the shard's members as voters
//! (raft ids from node ids, [`NodeId::raft_id`](crate::cluster::NodeId::raft_id)). Until a
//! leader is elected and has committed an entry of its term, writes answer `-CLUSTERDOWN`
//! (clients retry it), as do commands on a node that has no map yet.
//!
//! **The driver thread** (`rill-raft`): receives the peers' messages and steps them into the
//! group, ticks raft's clock every [`TICK_MS`], and takes a turn of the Ready loop after
//! either (which fsyncs on a follower, and publishes the commit index a leader's waiting
//! replies are released by). A leader's own writes still take turns in the tasks waiting
//! for them, as with one voter, so one fsync serves every write queued meanwhile; turns run
//! one at a time. Committed entries a follower did not execute are applied through the
//! replay path crash recovery uses, holding the server only weakly (the server owns the
//! group, the group its applier).
//!
//! **Who serves the slots.** The node raft reports as leader is moved to the front of its
//! shard in this node's view of the map ([`Topology::follow_leader`](crate::cluster::Topology::follow_leader)),
//! so keyed commands on a follower are answered `-MOVED` to the leader, and CLUSTER
//! SLOTS / SHARDS / NODES list the leader first, as Redis lists a promoted replica. A
//! follower serves reads after READONLY from its committed state (it applies only committed
//! entries).
//!
//! **A deposed leader** whose keyspace ran ahead of the commit index (writes executed, not
//! committed, when it learnt of a newer term) cannot go on as a follower: its state may
//! hold writes the new leader overwrites. Its held replies fail (never acknowledged), and
//! the server shuts down and starts again in the same process (`exec` of its own binary
//! and arguments, `main.rs`), which replays the log's committed entries — the crash
//! recovery path, design §3.7's rebuild. Clients reconnect, as after a failover.
//!
//! **Leader hints.** Every node is also linked to the nodes of the other shards. A leader,
//! when elected and then every second, sends each of them a heartbeat of its own group
//! (`MsgHeartbeat` with its term); not being members they never step it, but their driver
//! reads it as "the sender leads that shard" (newest term wins) and lists it first in that
//! shard of their map. So every node's `MOVED` replies and CLUSTER SLOTS name a shard's new
//! leader within a second of its election, not the dead node their map listed first.
//! (Nodes of other shards added to the map after the group started are not told.)
//!
//! **Reads on replicas.** After READONLY a replica serves reads from what it applied, and
//! a client blocked there on XREAD is served as the leader's entries are applied.
//!
//! **Snapshots and membership changes.** A replica raft sends a snapshot (it needs entries
//! the leader purged; always a node added to a running shard) stops its group, fetches the
//! snapshot's files from the leader over the bus ([`Transport::fetch_file`]), seals and
//! marks them ready (`storage::snapshot`) and restarts in place; start-up swaps them in for
//! its log, and the group's start reports the result to the leader (`MsgSnapStatus`). The
//! leader serves its published snapshots ([`Transport::set_file_source`]). Membership
//! changes the log applies (`cluster::raft::membership`) update the members this node
//! links to; a node the map lists `joined` starts with no configuration and waits for the
//! leader's snapshot.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::cluster::raft::group::MessageSink;
use crate::cluster::raft::node::TICK_MS;
use crate::cluster::raft::transport::{
    GroupId, Inbound, LinkTls, SharedSecret, Transport, TransportConfig, DEFAULT_INBOX_FRAMES,
};
use crate::cluster::raft::RaftNode;
use crate::cluster::topology::{NodeId, NodeInfo};
use crate::core::Shared;
use crate::persist::replay::{apply_committed_entry, RaftLoaded};

/// Hands the group's outgoing messages to the transport (never blocks: it queues).
struct TransportSink {
    transport: Arc<Transport>,
    group: GroupId,
}

impl MessageSink for TransportSink {
    fn send(&self, msgs: Vec<raft::eraftpb::Message>) {
        for m in msgs {
            if let Err(e) = self.transport.send(self.group, m) {
                tracing::debug!("Raft message not sent: {e}");
            }
        }
    }
}

/// Starts this node's replica of its shard once the node has a map (see the module docs).
/// Returns when the group runs, or at shutdown; an error stops the server (the log it was
/// given is closed then).
pub async fn host(shared: Arc<Shared>, loaded: RaftLoaded) -> Result<(), String> {
    let started = start(&shared, &loaded).await;
    if !matches!(started, Ok(true)) {
        loaded.log.close();
    }
    started.map(|_| ())
}

/// [`host`]'s work: `Ok(false)` when the server shut down before the map came.
async fn start(shared: &Arc<Shared>, loaded: &RaftLoaded) -> Result<bool, String> {
    let Some(cluster) = shared.cluster.as_ref() else {
        return Err("a replicated shard needs cluster-enabled yes".into());
    };
    let (shard, me) = loop {
        if shared.shutting_down.load(Ordering::SeqCst) {
            return Ok(false);
        }
        {
            let t = cluster.topology.read();
            if let Some(s) = t.my_shard() {
                break (s.clone(), t.myself().clone());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    if shard.raft_voters().is_none() {
        return Err(format!(
            "two nodes of shard {} have node ids that begin with the same 16 hex digits; give one a new id",
            shard.id
        ));
    }
    let Some(mine) = shard.nodes.iter().find(|n| n.id == me).cloned() else {
        return Err(format!(
            "the map's shard {} does not list this node",
            shard.id
        ));
    };
    // The group's founders: the shard's nodes but those added later (a node added to a
    // running group starts with no configuration and waits for the leader's snapshot).
    let voters: Vec<u64> = shard
        .nodes
        .iter()
        .filter(|n| !n.joined)
        .map(|n| n.id.raft_id())
        .collect();
    check_identity(shared, loaded, &me)?;
    let secret = shared.config.read().cluster_secret.clone();
    if secret.is_empty() && shard.nodes.len() > 1 {
        return Err(
            "cluster-raft yes with cluster-enabled yes needs cluster-secret: every node of the cluster must set the same one".into(),
        );
    }
    // A group of one member needs no peer, but the transport still checks a secret.
    let secret = if secret.is_empty() {
        me.to_string()
    } else {
        secret
    };
    let ip: Option<IpAddr> = mine.ip.parse().ok();
    let listen = SocketAddr::new(
        ip.unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)),
        mine.cport,
    );
    let mut cfg = TransportConfig::new(me.raft_id(), 0, SharedSecret::new(secret), listen);
    // Outbound links from this node's own address: a fault proxy (or a firewall) can tell
    // every directed link apart.
    cfg.source = ip.filter(|ip| !ip.is_unspecified());
    if shared.config.read().tls.cluster {
        if shared.tls.cluster_link().is_none() {
            return Err(
                "tls-cluster yes needs tls-cert-file, tls-key-file and tls-ca-cert-file (or tls-ca-cert-dir): the peers' certificates are checked against the CA".into(),
            );
        }
        // Asked per connection: CONFIG SET tls-* rebuilds them (certificate rotation).
        let weak = Arc::downgrade(shared);
        cfg.tls = Some(LinkTls(Arc::new(move || {
            weak.upgrade().and_then(|sh| sh.tls.cluster_link())
        })));
    }
    let (tx, inbox) = mpsc::channel(DEFAULT_INBOX_FRAMES);
    let transport = Transport::start(cfg, tx)
        .await
        .map_err(|e| format!("can't start the Raft transport on {listen}: {e}"))?;
    let transport = Arc::new(transport);
    let members = Members::default();
    for n in &shard.nodes {
        members.add(shared, &transport, &me, n)?;
    }
    // The nodes of the other shards, told of this shard's leader (leader hints, module
    // docs). A node whose raft id another node shares is left out: links are by raft id.
    let mut observers: Vec<(u64, NodeId)> = Vec::new();
    {
        let t = cluster.topology.read();
        let all: Vec<&NodeInfo> = t.map().shards.iter().flat_map(|s| s.nodes.iter()).collect();
        for n in all
            .iter()
            .filter(|n| !shard.nodes.iter().any(|m| m.id == n.id))
        {
            let rid = n.id.raft_id();
            if all.iter().filter(|m| m.id.raft_id() == rid).count() > 1 {
                tracing::warn!(
                    "Node {} shares its raft id with another node: it will not be told of this shard's leader",
                    n.id
                );
                continue;
            }
            transport.add_peer(rid, peer_addr(n)?);
            observers.push((rid, n.id.clone()));
        }
    }
    let group = shard.id.raft_id();
    let sink = Arc::new(TransportSink {
        transport: transport.clone(),
        group,
    });
    if !mine.joined && !voters.contains(&me.raft_id()) {
        return Err(format!(
            "the map's shard {} does not list this node among its founders",
            shard.id
        ));
    }
    let node = RaftNode::start_member(
        loaded.log.clone(),
        loaded.applied,
        me.raft_id(),
        (!mine.joined).then_some(voters.as_slice()),
        sink,
    )
    .map_err(|e| format!("can't start the Raft group of shard {}: {e}", shard.id))?;
    // Replicas that need entries this node purged fetch its published snapshots.
    transport.set_file_source(Arc::new(SnapshotFiles(loaded.log.clone())));
    let weak = Arc::downgrade(shared);
    node.set_applier(Box::new(move |entry, at| match weak.upgrade() {
        Some(sh) => apply_committed_entry(&sh, entry, at),
        None => Err("the server is shutting down".into()),
    }));
    // The map names a new leader before it takes its first write (and a follower learns
    // of one), so requests are routed to it and CLUSTER SLOTS lists it first.
    let weak = Arc::downgrade(shared);
    let ids = members.clone();
    node.on_leader_change(Box::new(move |leader| {
        if let (Some(sh), Some(id)) = (weak.upgrade(), ids.node_id(leader)) {
            follow(&sh, &id, true);
        }
    }));
    // A member from its first configuration on: a node added to a running shard is one
    // once its snapshot is installed (before, its empty log is no loss: it may restart).
    let cs = loaded.log.state().conf_state;
    if !cs.voters.is_empty() || !cs.learners.is_empty() {
        mark_member(shared, &me)?;
    }
    // Only the leader expires keys (and IIDs); a replica applies the deletions it logs.
    shared.state.lock().ks.set_expiry_gate(node.leader_flag());
    if shared.raft.set(node.clone()).is_err() {
        return Err("a Raft group is already running on this node".into());
    }
    let cs = node.conf_state();
    tracing::info!(
        "Raft group of shard {} started: voters {:x?}, learners {:x?}, this node {} (raft id {:#x}), log committed to index {}",
        shard.id,
        cs.voters,
        cs.learners,
        me,
        me.raft_id(),
        loaded.applied
    );
    // A snapshot installed (or given up) before the restart that brought this node here:
    // tell the leader that sent it, which sends this node nothing while it waits.
    if let Some((leader, installed)) = take_snapshot_report(shared) {
        report_snapshot(&transport, group, me.raft_id(), leader, installed);
    }
    // The driver thread waits on one channel for the peers' frames and the clock's ticks,
    // fed by two tasks, so it needs no timer of the runtime's (which panics once the runtime
    // shuts down) and ends when the runtime drops them.
    let (wake_tx, wake_rx) = mpsc::channel(DEFAULT_INBOX_FRAMES);
    tokio::spawn(forward_frames(inbox, wake_tx.clone()));
    tokio::spawn(tick(wake_tx));
    let weak = Arc::downgrade(shared);
    std::thread::Builder::new()
        .name("rill-raft".into())
        .spawn(move || {
            drive(
                weak,
                node,
                wake_rx,
                Hosted {
                    group,
                    me,
                    members,
                    observers,
                },
                transport,
            )
        })
        .map_err(|e| format!("can't start the Raft driver thread: {e}"))?;
    Ok(true)
}

/// What wakes the driver thread.
enum Wake {
    /// A frame of messages from a peer.
    Frame(Inbound),
    /// Raft's clock: one tick.
    Tick,
}

/// Hands the transport's frames to the driver thread.
async fn forward_frames(mut inbox: mpsc::Receiver<Inbound>, to: mpsc::Sender<Wake>) {
    while let Some(frame) = inbox.recv().await {
        if to.send(Wake::Frame(frame)).await.is_err() {
            return;
        }
    }
}

/// Sends the driver thread a tick every [`TICK_MS`].
async fn tick(to: mpsc::Sender<Wake>) {
    let mut every = tokio::time::interval(Duration::from_millis(TICK_MS));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if to.send(Wake::Tick).await.is_err() {
            return;
        }
    }
}

/// Lists `leader` first in its shard in this node's map (also after a new map from
/// SETTOPOLOGY put another first), taking the map's write lock only to change it.
fn follow(shared: &Shared, leader: &NodeId, news: bool) {
    let Some(cluster) = shared.cluster.as_ref() else {
        return;
    };
    let first = cluster
        .topology
        .read()
        .my_shard()
        .and_then(|s| s.nodes.first())
        .map(|n| &n.id == leader);
    if first == Some(false) && cluster.topology.write().follow_leader(leader) && news {
        tracing::info!("Raft: node {leader} leads this shard now");
    }
}

/// The file in the data directory (beside the cluster config file, outside `log/`) that
/// says this node id has been a member of its shard's Raft group.
const MEMBER_MARKER: &str = "raft-member";

/// Refuses to start the group when this node id has been a member before but its Raft log
/// is empty: its log was lost or replaced (a new disk, a deleted `log/`). Rejoining under
/// the same id with a shorter log could undo votes and acknowledgements it gave, and lose
/// committed writes (design §3.3: such a node must come back under a new id).
fn check_identity(shared: &Shared, loaded: &RaftLoaded, me: &NodeId) -> Result<(), String> {
    let marker = shared.config.read().dir.join(MEMBER_MARKER);
    let was_member = std::fs::read_to_string(&marker).is_ok_and(|id| id.trim() == me.to_string());
    let state = loaded.log.state();
    // What starting the group writes first is its configuration: a log without one never
    // held anything of the group's (a marker written after it means the log went).
    let empty = loaded.log.last_index() == 0
        && state.hard_state.term == 0
        && state.conf_state.voters.is_empty()
        && state.conf_state.learners.is_empty();
    if was_member && empty {
        return Err(format!(
            "This node ({me}) has been a member of its shard's Raft group, but its Raft log is empty: its data was lost or replaced. \
             A node must not rejoin under its old id with a shorter log (it could undo votes and acknowledgements it gave). \
             Give it a new id (remove {} and the cluster config file) and add it to the shard again.",
            marker.display()
        ));
    }
    Ok(())
}

/// Records (durably, once) that this node id is a member of its shard's group.
fn mark_member(shared: &Shared, me: &NodeId) -> Result<(), String> {
    let marker = shared.config.read().dir.join(MEMBER_MARKER);
    if std::fs::read_to_string(&marker).is_ok_and(|id| id.trim() == me.to_string()) {
        return Ok(());
    }
    let tmp = marker.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        writeln!(f, "{me}")?;
        f.sync_all()?;
        std::fs::rename(&tmp, &marker)?;
        if let Some(parent) = marker.parent() {
            std::fs::File::open(parent)?.sync_all()?;
        }
        Ok(())
    };
    write().map_err(|e| format!("can't write {}: {e}", marker.display()))
}

/// Where a member's Raft listener is: its map address and cluster bus port.
fn peer_addr(n: &NodeInfo) -> Result<SocketAddr, String> {
    (n.ip.as_str(), n.cport)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| format!("can't resolve node {}'s address {}:{}", n.id, n.ip, n.cport))
}

/// The group a driver thread runs and who it talks to.
struct Hosted {
    group: GroupId,
    /// This node.
    me: NodeId,
    /// The group's members.
    members: Members,
    /// The nodes of the other shards, told of this shard's leader while this node leads.
    observers: Vec<(u64, NodeId)>,
}

/// The group's members as this node knows them: raft id, node id, and the address its
/// Raft link dials (the map's bus address, or its `cluster-peer-route`). Starts as the
/// map's shard and follows the membership changes the log applies.
#[derive(Clone, Default)]
struct Members(Arc<parking_lot::Mutex<Vec<Member>>>);

/// A member: raft id, node id, and where its link dials (`None`: this node).
type Member = (u64, NodeId, Option<SocketAddr>);

impl Members {
    /// Adds `n` (linking to it unless it is this node), replacing what was known of it.
    fn add(
        &self,
        shared: &Shared,
        transport: &Transport,
        me: &NodeId,
        n: &NodeInfo,
    ) -> Result<(), String> {
        let rid = n.id.raft_id();
        let dial = if n.id == *me {
            None
        } else {
            let addr = peer_addr(n)?;
            // `cluster-peer-route`: dial a proxy (or a NAT address) for this peer instead.
            let dial = shared
                .config
                .read()
                .cluster_peer_routes
                .iter()
                .find(|(peer, _)| *peer == addr)
                .map_or(addr, |(_, via)| *via);
            if dial != addr {
                tracing::info!("Raft link to node {} ({addr}) dialled via {dial}", n.id);
            }
            transport.add_peer(rid, dial);
            Some(dial)
        };
        let mut m = self.0.lock();
        m.retain(|(r, _, _)| *r != rid);
        m.push((rid, n.id.clone(), dial));
        Ok(())
    }

    /// Forgets member `rid` and drops the link to it.
    fn remove(&self, transport: &Transport, rid: u64) {
        self.0.lock().retain(|(r, _, _)| *r != rid);
        transport.remove_peer(rid);
    }

    fn node_id(&self, rid: u64) -> Option<NodeId> {
        self.0
            .lock()
            .iter()
            .find(|(r, _, _)| *r == rid)
            .map(|(_, id, _)| id.clone())
    }

    fn dial(&self, rid: u64) -> Option<SocketAddr> {
        self.0
            .lock()
            .iter()
            .find(|(r, _, _)| *r == rid)
            .and_then(|(_, _, a)| *a)
    }
}

/// The files of this node's published snapshots, served to replicas on the bus port.
struct SnapshotFiles(Arc<crate::storage::raftlog::RaftLog>);

impl crate::cluster::raft::transport::FileSource for SnapshotFiles {
    fn open(&self, snapshot: u64, name: &str) -> Option<(std::path::PathBuf, u64)> {
        self.0.snapshots().file(snapshot, name)
    }
}

/// The file (beside the cluster config file) a replica leaves itself across the restart
/// that installs a snapshot: the leader that sent it, and whether it was installed.
const SNAPSHOT_REPORT: &str = "raft-snapshot-report";

fn write_snapshot_report(shared: &Shared, leader: u64, installed: bool) {
    let path = shared.config.read().dir.join(SNAPSHOT_REPORT);
    let text = format!(
        "{leader:x} {}\n",
        if installed { "installed" } else { "failed" }
    );
    if let Err(e) = std::fs::write(&path, text) {
        tracing::warn!("Can't write {}: {e}", path.display());
    }
}

fn take_snapshot_report(shared: &Shared) -> Option<(u64, bool)> {
    let path = shared.config.read().dir.join(SNAPSHOT_REPORT);
    let text = std::fs::read_to_string(&path).ok()?;
    let _ = std::fs::remove_file(&path);
    let (leader, what) = text.trim().split_once(' ')?;
    Some((u64::from_str_radix(leader, 16).ok()?, what == "installed"))
}

/// Tells `leader` whether the snapshot it sent was installed (raft's `MsgSnapStatus`, a
/// local message type raft-rs does not step from the network: the leader's driver reads
/// it and calls `report_snapshot`).
fn report_snapshot(transport: &Transport, group: GroupId, me: u64, leader: u64, installed: bool) {
    let mut m = raft::eraftpb::Message::default();
    m.set_msg_type(raft::eraftpb::MessageType::MsgSnapStatus);
    m.from = me;
    m.to = leader;
    m.reject = !installed;
    if let Err(e) = transport.send(group, m) {
        tracing::warn!("Snapshot report not sent to the leader: {e}");
    }
}

/// How many times a snapshot's file is fetched before the install is given up.
const FETCH_ATTEMPTS: usize = 5;

/// Installs the snapshot raft asked for (the node stopped for it): fetches its files from
/// the leader into the staging directory, seals them with this node's Raft state and marks
/// them ready (`storage::snapshot`); the caller restarts the server, which swaps them in.
fn install_snapshot(
    shared: &Shared,
    transport: &Transport,
    members: &Members,
    pending: &crate::cluster::raft::membership::PendingSnapshot,
) -> Result<(), String> {
    use crate::storage::snapshot;
    let meta = pending.snapshot.get_metadata();
    let files =
        snapshot::SnapshotFiles::decode(&pending.snapshot.data).map_err(|e| e.to_string())?;
    let addr = members
        .dial(pending.leader)
        .ok_or_else(|| format!("the leader {:#x} is not a known member", pending.leader))?;
    let (dir, segment_size) = {
        let cfg = shared.config.read();
        (cfg.dir.clone(), cfg.segment_size)
    };
    let staging = snapshot::begin_install(&dir).map_err(|e| e.to_string())?;
    let started = std::time::Instant::now();
    let mut bytes = 0u64;
    // The fetch runs on the transport's runtime; this thread (the driver's, outside any
    // runtime) only waits for it.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|e| format!("can't wait for the fetch: {e}"))?;
    for (name, len) in &files.files {
        let dest = staging.join(name);
        let mut attempt = 0;
        loop {
            attempt += 1;
            match rt.block_on(transport.fetch_file(addr, pending.leader, files.index, name, &dest))
            {
                Ok(got) if got == *len => break,
                Ok(got) => {
                    return Err(format!(
                        "{name}: {got} bytes fetched, the snapshot lists {len}"
                    ))
                }
                Err(e) if attempt < FETCH_ATTEMPTS => {
                    tracing::warn!("Fetching {name} of snapshot {}: {e}; retrying", files.index);
                    std::thread::sleep(Duration::from_millis(200 * attempt as u64));
                }
                Err(e) => return Err(format!("fetching {name}: {e}")),
            }
        }
        bytes += len;
    }
    snapshot::seal_staged(
        &dir,
        crate::storage::log::LogOptions {
            segment_size,
            policy: crate::storage::log::FsyncPolicy::Always,
        },
        meta.index,
        meta.term,
        crate::storage::raft_record::HardStateRecord {
            term: pending.term.max(meta.term),
            vote: pending.vote,
            commit: meta.index,
        },
        crate::cluster::raft::storage::conf_state_record(meta.get_conf_state()),
    )
    .map_err(|e| e.to_string())?;
    snapshot::mark_ready(&dir).map_err(|e| e.to_string())?;
    tracing::info!(
        "Snapshot of Raft index {} (term {}) fetched from the leader: {} files, {bytes} bytes in {:.3} s",
        meta.index,
        meta.term,
        files.files.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Acts on the membership changes the log applied: links to a new member (its address
/// comes in the change's context), drops the link to a removed one.
fn membership_changes(
    shared: &Shared,
    node: &RaftNode,
    transport: &Transport,
    me: &NodeId,
    members: &Members,
) {
    use crate::cluster::raft::membership::Change;
    for ch in node.take_membership_changes() {
        match ch.change {
            Change::AddLearner | Change::AddVoter => {
                match NodeInfo::from_member_context(&ch.context) {
                    Some(n) if n.id.raft_id() == ch.node => {
                        if members.node_id(ch.node).is_none() || members.dial(ch.node).is_none() {
                            if let Err(e) = members.add(shared, transport, me, &n) {
                                tracing::warn!("New member {}: {e}", n.id);
                            }
                        }
                    }
                    _ => {
                        if members.node_id(ch.node).is_none() {
                            tracing::warn!(
                            "Membership change at index {} adds {:#x} without its address: not linked",
                            ch.index,
                            ch.node
                        );
                        }
                    }
                }
            }
            Change::Remove => {
                if ch.node == me.raft_id() {
                    tracing::warn!(
                        "This node was removed from its shard's Raft group (index {})",
                        ch.index
                    );
                } else {
                    members.remove(transport, ch.node);
                }
            }
        }
    }
}

/// How often a leader tells the other shards' nodes that it leads (in ticks), besides at
/// once when elected.
const HINT_TICKS: u64 = 10;

/// The driver thread (module docs). Ends at shutdown, or when the runtime drops the tasks
/// that feed it.
fn drive(
    shared: Weak<Shared>,
    node: Arc<RaftNode>,
    mut wake: mpsc::Receiver<Wake>,
    hosted: Hosted,
    transport: Arc<Transport>,
) {
    let Hosted {
        group,
        me,
        members,
        observers,
    } = hosted;
    let mut leader_seen = 0u64;
    let mut stopped_logged = false;
    // Per other shard's group: the newest term a leader hint came with.
    let mut hint_terms: std::collections::HashMap<GroupId, u64> = Default::default();
    let mut ticks_since_hint = 0u64;
    loop {
        match shared.upgrade() {
            Some(sh) if !sh.shutting_down.load(Ordering::SeqCst) => {}
            _ => break,
        }
        let Some(first) = wake.blocking_recv() else {
            break;
        };
        let mut ticks = 0;
        let mut batches = Vec::new();
        for w in std::iter::once(first).chain(std::iter::from_fn(|| wake.try_recv().ok())) {
            match w {
                Wake::Frame(b) => batches.push(b),
                Wake::Tick => ticks += 1,
            }
        }
        for batch in batches {
            if batch.group != group {
                if let Some(sh) = shared.upgrade() {
                    leader_hint(&sh, &batch, &mut hint_terms);
                }
                continue;
            }
            for m in batch.messages {
                if m.get_msg_type() == raft::eraftpb::MessageType::MsgSnapStatus {
                    // A replica's report on the snapshot this leader sent it.
                    if members.node_id(m.from).is_some() {
                        tracing::info!(
                            "Raft: replica {:#x} {} the snapshot",
                            m.from,
                            if m.reject {
                                "failed to install"
                            } else {
                                "installed"
                            }
                        );
                        node.report_snapshot(m.from, !m.reject);
                    }
                    continue;
                }
                let _ = node.step(m);
            }
        }
        for _ in 0..ticks {
            node.tick();
        }
        ticks_since_hint += ticks;
        let turn = node.round(None);
        if let Some(sh) = shared.upgrade() {
            membership_changes(&sh, &node, &transport, &me, &members);
        }
        if let Err(e) = turn {
            if let Some(pending) = node.take_snapshot_to_install() {
                if let Some(sh) = shared.upgrade() {
                    let installed = match install_snapshot(&sh, &transport, &members, &pending) {
                        Ok(()) => true,
                        Err(e) => {
                            tracing::error!("Installing the Raft snapshot failed: {e}");
                            false
                        }
                    };
                    write_snapshot_report(&sh, pending.leader, installed);
                    if !installed {
                        // Not at once: the leader sends the snapshot again on the report.
                        std::thread::sleep(Duration::from_secs(1));
                    }
                    tracing::warn!(
                        "Restarting to {} the log from the snapshot",
                        if installed {
                            "rebuild the keyspace and"
                        } else {
                            "retry after failing to replace"
                        }
                    );
                    sh.restart_after_shutdown.store(true, Ordering::SeqCst);
                    sh.begin_shutdown();
                }
                break;
            }
            if !stopped_logged {
                tracing::error!("Raft driver: {e}");
                stopped_logged = true;
            }
            if node.is_deposed() {
                if let Some(sh) = shared.upgrade() {
                    tracing::warn!(
                        "This node lost leadership with writes not committed in its keyspace: restarting to rebuild it from the log's committed entries"
                    );
                    sh.restart_after_shutdown.store(true, Ordering::SeqCst);
                    sh.begin_shutdown();
                }
                break;
            }
            continue;
        }
        let leader = node.leader_id();
        if leader == node.id()
            && node.is_leader()
            && (leader != leader_seen || ticks_since_hint >= HINT_TICKS)
        {
            ticks_since_hint = 0;
            tell_observers(&node, &transport, group, &observers);
        }
        if leader != 0 {
            if let Some(id) = members.node_id(leader) {
                if let Some(sh) = shared.upgrade() {
                    follow(&sh, &id, leader != leader_seen);
                    if leader != leader_seen {
                        // Clients blocked here on the shard's keys follow the leader, as
                        // Redis redirects them when its master changes (not under the
                        // group's lock: this takes the keyspace lock).
                        if let Some(cluster) = sh.cluster.as_ref() {
                            crate::commands::cluster::redirect_blocked(&sh, cluster);
                        }
                    }
                }
            }
            leader_seen = leader;
        }
    }
    tracing::debug!("Raft driver thread ends");
}

/// A leader hint: a heartbeat this node, leader of `group` at its current term, sends the
/// nodes of the other shards. They are not members, so raft never sees it; their driver
/// reads it as "the sender leads its shard" ([`leader_hint`]).
fn tell_observers(
    node: &RaftNode,
    transport: &Transport,
    group: GroupId,
    observers: &[(u64, NodeId)],
) {
    let term = node.status().term;
    for (rid, _) in observers {
        let mut m = raft::eraftpb::Message::default();
        m.set_msg_type(raft::eraftpb::MessageType::MsgHeartbeat);
        m.from = node.id();
        m.to = *rid;
        m.term = term;
        if let Err(e) = transport.send(group, m) {
            tracing::debug!("Leader hint not sent: {e}");
        }
    }
}

/// Reads a frame of another shard's group as a leader hint (see [`tell_observers`]): its
/// authenticated sender leads that shard, unless a hint with a newer term came already.
/// The sender is listed first in its shard in this node's map, so this node's MOVED
/// replies and CLUSTER SLOTS name it — without this a node learns another shard's new
/// leader only from its clients' redirections.
fn leader_hint(sh: &Shared, batch: &Inbound, terms: &mut std::collections::HashMap<GroupId, u64>) {
    let Some(cluster) = sh.cluster.as_ref() else {
        return;
    };
    let Some(term) = batch
        .messages
        .iter()
        .filter(|m| m.get_msg_type() == raft::eraftpb::MessageType::MsgHeartbeat)
        .map(|m| m.term)
        .max()
    else {
        return;
    };
    if terms.get(&batch.group).is_some_and(|&t| t > term) {
        return;
    }
    let leader = {
        let t = cluster.topology.read();
        t.map()
            .shards
            .iter()
            .find(|s| s.id.raft_id() == batch.group)
            .and_then(|s| s.nodes.iter().find(|n| n.id.raft_id() == batch.from))
            .map(|n| n.id.clone())
    };
    let Some(leader) = leader else {
        tracing::debug!(
            "A leader hint from {:#x} for group {:#x}, which this node's map does not have",
            batch.from,
            batch.group
        );
        return;
    };
    terms.insert(batch.group, term);
    if cluster.topology.write().follow_leader(&leader) {
        tracing::info!("Raft: node {leader} leads its shard now (term {term}, told by it)");
    }
}
