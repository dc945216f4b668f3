//! Groups of three voters in one process (issue #14 step F, design scale-out.md §4.5):
//! three replicas, each with Rill's real storage in its own directory and its own keyspace,
//! joined by a simulated network that drops, duplicates, delays and reorders messages and
//! partitions nodes. Writes are real commands (XADD, XREADGROUP, XACK) through the commit
//! path on whichever node leads; a node "crashes" by being dropped without closing and is
//! re-opened from its directory (start-up replay). Checked:
//! - every acknowledged write (committed when the leader said so) is on every replica after
//!   healing;
//! - no replica ever applies an entry other than the committed one at that index (a
//!   follower applying an uncommitted entry that was later replaced would differ);
//! - the replicas' dataset digests converge;
//! - a new leader is elected when the leader is dropped.
//!
//! Everything is driven step by step from one thread: a schedule is a seed and a list of
//! actions, so a failing case replays exactly (proptest shrinks it).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};

use bytes::Bytes;
use parking_lot::Mutex;
use proptest::prelude::*;
use raft::eraftpb::Message;
use rill::cluster::raft::group::MessageSink;
use rill::cluster::raft::RaftNode;
use rill::commands::session::Session;
use rill::commands::{self, Exec};
use rill::config::Config;
use rill::core::Shared;
use rill::storage::lock::{lock_dir, LockFile};
use rill::storage::log::{FsyncPolicy, LogOptions};

/// A small deterministic generator (xorshift), seeded by the schedule.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn percent(&mut self, p: u64) -> bool {
        self.next() % 100 < p
    }
}

/// The simulated network: messages in flight with the step they arrive at.
struct Net {
    now: u64,
    rng: Rng,
    in_flight: Vec<(u64, Message)>,
    drop_pct: u64,
    dup_pct: u64,
    max_delay: u64,
    /// Nodes cut off from everyone else.
    isolated: BTreeSet<u64>,
}

impl Net {
    fn new(seed: u64) -> Net {
        Net {
            now: 0,
            rng: Rng(seed | 1),
            in_flight: Vec::new(),
            drop_pct: 0,
            dup_pct: 0,
            max_delay: 1,
            isolated: BTreeSet::new(),
        }
    }

    fn send(&mut self, msg: Message) {
        if self.isolated.contains(&msg.from) || self.isolated.contains(&msg.to) {
            return;
        }
        if self.rng.percent(self.drop_pct) {
            return;
        }
        let copies = if self.rng.percent(self.dup_pct) { 2 } else { 1 };
        for _ in 0..copies {
            // Random delays reorder messages.
            let at = self.now + 1 + self.rng.next() % self.max_delay.max(1);
            self.in_flight.push((at, msg.clone()));
        }
    }

    /// The messages due now, in a shuffled order.
    fn due(&mut self) -> Vec<Message> {
        let now = self.now;
        let (mut due, rest): (Vec<_>, Vec<_>) =
            self.in_flight.drain(..).partition(|(at, _)| *at <= now);
        self.in_flight = rest;
        for i in (1..due.len()).rev() {
            let j = (self.rng.next() % (i as u64 + 1)) as usize;
            due.swap(i, j);
        }
        due.into_iter()
            .map(|(_, m)| m)
            .filter(|m| !self.isolated.contains(&m.from) && !self.isolated.contains(&m.to))
            .collect()
    }
}

struct Sink(Arc<Mutex<Net>>);

impl MessageSink for Sink {
    fn send(&self, msgs: Vec<Message>) {
        let mut net = self.0.lock();
        for m in msgs {
            net.send(m);
        }
    }
}

/// What a replica applied from others (index → a hash of the entry's data), kept across
/// its restarts.
type Applied = Arc<Mutex<BTreeMap<u64, u64>>>;

struct Replica {
    shared: Arc<Shared>,
    node: Arc<RaftNode>,
}

fn hash(data: &[u8]) -> u64 {
    u64::from(crc32c::crc32c(data)) << 32 | data.len() as u64
}

fn opts() -> LogOptions {
    LogOptions {
        segment_size: 1 << 20,
        policy: FsyncPolicy::Always,
    }
}

/// Opens replica `id` from `dir`: start-up replay, then the group's node, whose applier is
/// the replay path.
fn open(id: u64, voters: &[u64], dir: &Path, net: &Arc<Mutex<Net>>, applied: &Applied) -> Replica {
    let shared = Arc::new(Shared::new(Config::default(), None));
    let lock = lock_dir(dir, LockFile::Create).expect("lock");
    let loaded = rill::persist::replay::load_raft(&shared, lock, dir, opts()).expect("load");
    let node = RaftNode::start_group(
        loaded.log.clone(),
        loaded.applied,
        id,
        voters,
        Arc::new(Sink(net.clone())),
    )
    .expect("start");
    let weak: Weak<Shared> = Arc::downgrade(&shared);
    let seen = applied.clone();
    node.set_applier(Box::new(move |e, at| {
        let Some(shared) = weak.upgrade() else {
            return Err("the replica is gone".into());
        };
        if !e.data.is_empty() {
            let mut seen = seen.lock();
            let h = hash(&e.data);
            if let Some(before) = seen.insert(e.index, h) {
                assert_eq!(
                    before, h,
                    "node {id} applied two different entries at index {}",
                    e.index
                );
            }
        }
        rill::persist::replay::apply_entry(&shared, e, at)
    }));
    assert!(shared.raft.set(node.clone()).is_ok());
    Replica { shared, node }
}

struct Cluster {
    voters: Vec<u64>,
    dirs: Vec<PathBuf>,
    net: Arc<Mutex<Net>>,
    replicas: Vec<Option<Replica>>,
    applied: Vec<Applied>,
    /// Per node: what its leader executed here (index → hash), to compare with the others.
    sessions: Vec<Session>,
    /// XADD IDs acknowledged (committed) so far.
    acked: BTreeSet<u64>,
    /// Writes awaiting commit: (node, index, id).
    pending: Vec<(u64, u64, u64)>,
    next_id: u64,
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "rill-raftgroup-{}-{name}-{}",
        std::process::id(),
        rand_suffix()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("mkdir");
    d
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn argv(args: &[&str]) -> Vec<Bytes> {
    args.iter()
        .map(|a| Bytes::copy_from_slice(a.as_bytes()))
        .collect()
}

impl Cluster {
    fn new(name: &str, seed: u64) -> Cluster {
        Cluster::with_voters(name, seed, 3)
    }

    fn with_voters(name: &str, seed: u64, n: u64) -> Cluster {
        let net = Arc::new(Mutex::new(Net::new(seed)));
        let voters: Vec<u64> = (1..=n).collect();
        let mut c = Cluster {
            voters: voters.clone(),
            dirs: Vec::new(),
            net,
            replicas: Vec::new(),
            applied: Vec::new(),
            sessions: Vec::new(),
            acked: BTreeSet::new(),
            pending: Vec::new(),
            next_id: 1,
        };
        for id in voters {
            let dir = tmp(&format!("{name}-{id}"));
            let applied: Applied = Default::default();
            let r = open(id, &c.voters, &dir, &c.net, &applied);
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 6379));
            c.sessions
                .push(Session::new(r.shared.clients.register(addr, addr), true));
            c.dirs.push(dir);
            c.applied.push(applied);
            c.replicas.push(Some(r));
        }
        c
    }

    fn node(&self, id: u64) -> Option<&Replica> {
        self.replicas[(id - 1) as usize].as_ref()
    }

    /// Drops replica `id` without closing it: what was not written is lost.
    fn crash(&mut self, id: u64) {
        self.replicas[(id - 1) as usize] = None;
        // Its clients' replies are lost with it: never acknowledged.
        self.pending.retain(|p| p.0 != id);
    }

    fn restart(&mut self, id: u64) {
        let i = (id - 1) as usize;
        if self.replicas[i].is_none() {
            let r = open(id, &self.voters, &self.dirs[i], &self.net, &self.applied[i]);
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 6379));
            self.sessions[i] = Session::new(r.shared.clients.register(addr, addr), true);
            self.replicas[i] = Some(r);
        }
    }

    /// One step of simulated time: each live node takes a turn of its Ready loop, ticks
    /// when `tick`, and the messages due are delivered. A node whose group stopped (a
    /// deposed leader) is restarted from its directory, as an operator would.
    fn step(&mut self, tick: bool) {
        let mut stopped = Vec::new();
        for id in self.voters.clone() {
            if let Some(r) = self.node(id) {
                if tick {
                    r.node.tick();
                }
                if r.node.round(None).is_err() {
                    stopped.push(id);
                }
            }
        }
        let due = {
            let mut net = self.net.lock();
            net.now += 1;
            net.due()
        };
        for m in due {
            if let Some(r) = self.node(m.to) {
                if r.node.step(m).is_err() {
                    stopped.push(r.node.id());
                }
            }
        }
        for id in stopped {
            self.crash(id);
            self.restart(id);
        }
        // No node but the leader has anything in its keyspace past the commit index.
        for id in self.voters.clone() {
            if let Some(r) = self.node(id) {
                let s = r.node.status();
                if !s.leader && r.node.admits(false).is_ok() {
                    assert!(
                        s.executed <= s.commit,
                        "node {id} (not leader) has index {} in its keyspace, commit {}",
                        s.executed,
                        s.commit
                    );
                }
            }
        }
        self.settle_acks();
    }

    /// Moves pending writes whose entry the node that took them has committed to `acked`,
    /// as the server releases replies; ones whose node stopped are never acknowledged.
    fn settle_acks(&mut self) {
        let mut still = Vec::new();
        for (node, index, id) in std::mem::take(&mut self.pending) {
            match self.node(node) {
                Some(r) if r.node.admits(false).is_ok() => {
                    if r.node.committed() >= index {
                        self.acked.insert(id);
                    } else {
                        still.push((node, index, id));
                    }
                }
                // Crashed or stopped: the client got an error or nothing.
                _ => {}
            }
        }
        self.pending = still;
    }

    fn leader(&self) -> Option<u64> {
        self.voters
            .iter()
            .copied()
            .find(|&id| self.node(id).is_some_and(|r| r.node.is_leader()))
    }

    /// Runs one command on node `id`.
    fn exec(&mut self, id: u64, args: &[&str]) -> Option<Vec<u8>> {
        let i = (id - 1) as usize;
        let r = self.replicas[i].as_ref()?;
        match commands::execute(&mut self.sessions[i], &r.shared, argv(args)) {
            Exec::Reply(reply) => {
                if reply.is_error() {
                    None
                } else {
                    Some(reply.to_bytes(2).to_vec())
                }
            }
            Exec::Blocked { waiter, .. } => {
                r.shared.state.lock().blocking.remove(waiter);
                None
            }
        }
    }

    /// A write on the leader (if any): an XADD with a fresh ID, and now and then a read
    /// by a consumer group and an acknowledgement.
    fn write(&mut self, kind: u8) {
        let Some(leader) = self.leader() else {
            return;
        };
        let id = self.next_id;
        self.next_id += 1;
        let sid = format!("{id}-1");
        let before = self.node(leader).map_or(0, |r| r.node.proposed());
        if self
            .exec(leader, &["XADD", "s", &sid, "f", &format!("v{id}")])
            .is_some()
        {
            if let Some(r) = self.node(leader) {
                let index = r.node.proposed();
                assert!(index > before, "an XADD proposed nothing");
                self.pending.push((leader, index, id));
            }
        }
        match kind % 3 {
            0 => {
                let _ = self.exec(leader, &["XGROUP", "CREATE", "s", "g", "0", "MKSTREAM"]);
                let _ = self.exec(
                    leader,
                    &[
                        "XREADGROUP",
                        "GROUP",
                        "g",
                        "c",
                        "COUNT",
                        "2",
                        "STREAMS",
                        "s",
                        ">",
                    ],
                );
            }
            1 => {
                let _ = self.exec(leader, &["XACK", "s", "g", &sid]);
            }
            _ => {}
        }
    }

    /// Heals everything and runs until the group is quiet: a leader, every node's commit
    /// and applied index equal, nothing in flight. Panics if that never happens.
    fn heal(&mut self) {
        {
            let mut net = self.net.lock();
            net.isolated.clear();
            net.drop_pct = 0;
            net.dup_pct = 0;
            net.max_delay = 1;
        }
        for id in self.voters.clone() {
            self.restart(id);
        }
        for n in 0..3000 {
            self.step(n % 2 == 0);
            if n % 20 == 0 {
                if let Some(l) = self.leader() {
                    // A write commits everything before it in the leader's term.
                    if n > 200 {
                        self.write(2);
                    }
                    let _ = l;
                }
            }
            if self.quiet() {
                return;
            }
        }
        panic!("the group did not converge after healing");
    }

    fn quiet(&self) -> bool {
        let Some(l) = self.leader() else {
            return false;
        };
        let Some(lr) = self.node(l) else {
            return false;
        };
        let target = lr.node.status().last_index;
        self.pending.is_empty()
            && self.net.lock().in_flight.is_empty()
            && self.voters.iter().all(|&id| {
                self.node(id).is_some_and(|r| {
                    let s = r.node.status();
                    r.node.committed() >= target && s.applied >= target
                })
            })
    }

    /// The checks after healing.
    fn check(&mut self) {
        let now = rill::core::now_ms();
        let mut digests = Vec::new();
        for id in self.voters.clone() {
            let r = self.node(id).expect("healed");
            let d = {
                let state = r.shared.state.lock();
                rill::engine::digest::dataset_digest(&state.ks, now).expect("digest")
            };
            digests.push(d);
        }
        assert!(
            digests.iter().all(|d| *d == digests[0]),
            "replicas' digests differ after healing"
        );
        let acked: Vec<u64> = self.acked.iter().copied().collect();
        for id in self.voters.clone() {
            for &a in &acked {
                let sid = format!("{a}-1");
                let got = self.exec(id, &["XRANGE", "s", &sid, &sid]).expect("xrange");
                assert!(
                    got.len() > 4,
                    "node {id} lacks acknowledged entry {sid}: {}",
                    String::from_utf8_lossy(&got)
                );
            }
        }
        // Entries applied from others agree with each other at every index.
        let maps: Vec<BTreeMap<u64, u64>> = self.applied.iter().map(|a| a.lock().clone()).collect();
        for a in &maps {
            for b in &maps {
                for (i, h) in a {
                    if let Some(h2) = b.get(i) {
                        assert_eq!(h, h2, "two replicas applied different entries at {i}");
                    }
                }
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for r in self.replicas.iter_mut() {
            *r = None;
        }
        // A failing run's directories are kept when RILL_KEEP_FAILED is set, to inspect
        // them (`rill check`).
        if std::thread::panicking() && std::env::var_os("RILL_KEEP_FAILED").is_some() {
            eprintln!("kept: {:?}", self.dirs);
            return;
        }
        for d in &self.dirs {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// Steps until some node leads, or panics.
fn elect(c: &mut Cluster) -> u64 {
    for n in 0..500 {
        c.step(n % 2 == 0);
        if let Some(l) = c.leader() {
            return l;
        }
    }
    panic!("no leader elected");
}

#[test]
fn three_replicas_elect_replicate_and_converge() {
    let mut c = Cluster::new("basic", 7);
    let leader = elect(&mut c);
    for k in 0..30 {
        c.write(k);
        c.step(false);
    }
    c.heal();
    assert!(
        c.acked.len() >= 25,
        "only {} writes acknowledged",
        c.acked.len()
    );
    c.check();
    // Followers applied the leader's entries from their own logs.
    for id in [1, 2, 3].into_iter().filter(|&id| id != leader) {
        assert!(
            c.applied[(id - 1) as usize].lock().len() >= 25,
            "follower {id} applied too little"
        );
    }
}

#[test]
fn a_new_leader_is_elected_when_the_leader_dies_and_nothing_acknowledged_is_lost() {
    let mut c = Cluster::new("failover", 11);
    let first = elect(&mut c);
    for k in 0..10 {
        c.write(k);
        c.step(false);
    }
    for _ in 0..10 {
        c.step(false);
    }
    let acked_before = c.acked.len();
    assert!(acked_before >= 8);
    c.crash(first);
    let second = elect(&mut c);
    assert_ne!(first, second, "a dropped node cannot lead");
    for k in 0..10 {
        c.write(k);
        c.step(false);
    }
    c.heal();
    assert!(c.acked.len() > acked_before);
    c.check();
}

/// A leader cut off with writes of its own that never commit: they are never acknowledged,
/// the majority elects another leader, and the old one, healed, stops (its keyspace ran
/// ahead) and comes back from its log with the majority's state.
#[test]
fn an_isolated_leaders_writes_are_never_acknowledged() {
    let mut c = Cluster::new("isolated", 13);
    let first = elect(&mut c);
    for k in 0..5 {
        c.write(k);
        c.step(false);
    }
    for _ in 0..10 {
        c.step(false);
    }
    c.net.lock().isolated.insert(first);
    // Writes on the isolated leader (it still believes it leads for a while).
    let mut stranded = Vec::new();
    for _ in 0..5 {
        if c.node(first).is_some_and(|r| r.node.is_leader()) {
            let id = c.next_id;
            c.next_id += 1;
            let sid = format!("{id}-1");
            if c.exec(first, &["XADD", "s", &sid, "f", "lost"]).is_some() {
                let index = c.node(first).map_or(0, |r| r.node.proposed());
                c.pending.push((first, index, id));
                stranded.push(id);
            }
        }
        c.step(false);
    }
    assert!(!stranded.is_empty(), "the isolated leader took no write");
    // Cut off, the leader steps down (check-quorum) with its writes executed but not
    // committed: its group stops, and a client still waiting for one gets an error.
    {
        let old = c.node(first).expect("alive").node.clone();
        let held = old.proposed();
        assert!(old.committed() < held);
        let mut deposed = false;
        for _ in 0..100 {
            old.tick();
            if old.round(None).is_err() {
                deposed = true;
                break;
            }
        }
        assert!(deposed, "an isolated leader went on leading");
        assert!(!old.is_leader());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        let err = rt
            .block_on(old.wait_committed(held))
            .expect_err("a deposed leader released a held reply");
        assert!(
            err.to_string().contains("lost Raft leadership"),
            "unexpected error: {err}"
        );
    }
    for n in 0..400 {
        c.step(n % 2 == 0);
        if c.leader().is_some_and(|l| l != first) {
            break;
        }
    }
    let second = c.leader().expect("the majority elects a leader");
    assert_ne!(second, first);
    for k in 0..5 {
        c.write(k);
        c.step(false);
    }
    c.heal();
    for id in &stranded {
        assert!(
            !c.acked.contains(id),
            "a write of the isolated leader was acknowledged"
        );
    }
    c.check();
    // The stranded writes are nowhere.
    for node in [1, 2, 3] {
        for id in &stranded {
            let sid = format!("{id}-1");
            let got = c.exec(node, &["XRANGE", "s", &sid, &sid]).expect("xrange");
            assert_eq!(
                got, b"*0\r\n",
                "node {node} has an unacknowledged write {sid}"
            );
        }
    }
}

#[derive(Debug, Clone)]
enum Action {
    Write(u8),
    Steps(u8),
    Crash(u64),
    Restart(u64),
    Isolate(u64),
    Heal,
    Faults { drop: u8, dup: u8, delay: u8 },
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        6 => any::<u8>().prop_map(Action::Write),
        4 => (1u8..30).prop_map(Action::Steps),
        1 => (1u64..=3).prop_map(Action::Crash),
        1 => (1u64..=3).prop_map(Action::Restart),
        1 => (1u64..=3).prop_map(Action::Isolate),
        1 => Just(Action::Heal),
        1 => (0u8..30, 0u8..20, 1u8..6).prop_map(|(drop, dup, delay)| Action::Faults { drop, dup, delay }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, max_shrink_iters: 50, ..ProptestConfig::default() })]

    /// Random schedules of writes, crashes, partitions and a lossy, duplicating,
    /// reordering network: after healing, nothing acknowledged is missing anywhere and the
    /// replicas agree.
    #[test]
    fn random_schedules_lose_no_acknowledged_write(seed in any::<u64>(), actions in prop::collection::vec(action(), 1..40)) {
        let mut c = Cluster::new("prop", seed);
        elect(&mut c);
        let mut ticks = 0u64;
        for a in actions {
            match a {
                Action::Write(k) => {
                    c.write(k);
                    c.step(false);
                }
                Action::Steps(n) => {
                    for _ in 0..n {
                        ticks += 1;
                        c.step(ticks.is_multiple_of(2));
                    }
                }
                Action::Crash(id) => {
                    // Keep a majority able to run most of the time.
                    if c.replicas.iter().filter(|r| r.is_some()).count() > 2 {
                        c.crash(id);
                    }
                }
                Action::Restart(id) => c.restart(id),
                Action::Isolate(id) => {
                    let mut net = c.net.lock();
                    net.isolated.clear();
                    net.isolated.insert(id);
                }
                Action::Heal => c.net.lock().isolated.clear(),
                Action::Faults { drop, dup, delay } => {
                    let mut net = c.net.lock();
                    net.drop_pct = u64::from(drop);
                    net.dup_pct = u64::from(dup);
                    net.max_delay = u64::from(delay);
                }
            }
        }
        c.heal();
        c.check();
    }
}

/// A group of five rides out two nodes down at once: with one more lost it stops
/// committing, and after healing everything acknowledged is everywhere.
#[test]
fn five_replicas_survive_two_failures() {
    let mut c = Cluster::with_voters("five", 17, 5);
    let first = elect(&mut c);
    for k in 0..10 {
        c.write(k);
        c.step(false);
    }
    c.crash(first);
    let other = c
        .voters
        .iter()
        .copied()
        .find(|&id| id != first)
        .expect("peer");
    c.crash(other);
    let second = elect(&mut c);
    assert!(second != first && second != other);
    let acked_before = c.acked.len();
    for k in 0..10 {
        c.write(k);
        c.step(false);
    }
    for _ in 0..20 {
        c.step(false);
    }
    assert!(c.acked.len() > acked_before, "three of five commit");
    // A third failure: no quorum, nothing more is acknowledged.
    let third = c
        .voters
        .iter()
        .copied()
        .find(|&id| id != first && id != other && id != second)
        .expect("peer");
    c.crash(third);
    let stuck = c.acked.len();
    for k in 0..5 {
        c.write(k);
        c.step(false);
    }
    for n in 0..100 {
        c.step(n % 2 == 0);
    }
    assert_eq!(c.acked.len(), stuck, "two of five acknowledged a write");
    c.heal();
    c.check();
}
