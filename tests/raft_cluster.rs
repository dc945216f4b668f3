//! Replicated shards (issue #14) on real `rill` processes: three nodes started with
//! `cluster-enabled yes` and `cluster-raft yes`, made one shard of a leader and two
//! replicas by `rill cluster create --replicas 2`, replicating over their cluster bus
//! ports (the HMAC-authenticated Raft transport). What a client sees: writes on the
//! leader only (followers answer `-MOVED` to it, and serve reads after READONLY from
//! their committed state), every replica converging to the same streams, groups and
//! pending entries, a new leader within seconds of the old one's SIGKILL with every
//! acknowledged write and delivery on it, the killed node rejoining as a follower, and a
//! leader cut off from its replicas acknowledging nothing.
//!
//! Nodes run inside a private network namespace, each on its own 127.0.0.x address
//! (`common::cluster_nodes`).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::cluster_nodes::{addr, node_with, ran_in_netns, rill_ok};
use common::{Raw, TestServer};

const SECRET: &str = "raft-cluster-test-secret";

/// A node that hosts a replica of its shard, started with `extra` arguments too.
fn replica_with(extra: &[&str]) -> TestServer {
    let mut args = vec![
        "--cluster-raft",
        "yes",
        "--cluster-secret",
        SECRET,
        "--appendfsync",
        "always",
    ];
    args.extend_from_slice(extra);
    node_with(&args)
}

fn text(reply: &[u8]) -> String {
    String::from_utf8_lossy(reply).into_owned()
}

/// Three replicas made into one shard.
fn create_shard() -> Vec<TestServer> {
    create_shard_with(&[])
}

/// [`create_shard`] of nodes started with more arguments.
fn create_shard_with(extra: &[&str]) -> Vec<TestServer> {
    let nodes: Vec<TestServer> = (0..3).map(|_| replica_with(extra)).collect();
    let mut args = vec!["cluster", "create", "--replicas", "2"];
    let addrs: Vec<String> = nodes.iter().map(addr).collect();
    args.extend(addrs.iter().map(String::as_str));
    let out = rill_ok(&args);
    assert!(out.contains("Master[0] -> Slots 0 - 16383"), "{out}");
    assert_eq!(out.matches("\nS: ").count(), 2, "{out}");
    nodes
}

/// A new shard of three replicas and the index of its elected leader.
fn shard_and_leader() -> (Vec<TestServer>, usize) {
    let nodes = create_shard();
    let l = leader(&nodes, &[0, 1, 2], Duration::from_secs(10));
    (nodes, l)
}

/// `args`' reply from node `s`, or `None` while it does not answer (a node restarting).
fn try_query(s: &TestServer, args: &[&str]) -> Option<String> {
    let mut stream =
        TcpStream::connect_timeout(&SocketAddr::new(s.host, s.port), Duration::from_secs(1))
            .ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream.write_all(&common::encode(args)).ok()?;
    // One reply line is enough for INFO's fields and simple replies; read what comes.
    let mut reader = BufReader::new(stream);
    let mut first = String::new();
    reader.read_line(&mut first).ok()?;
    let len: usize = first.trim_end().strip_prefix('$')?.parse().ok()?;
    let mut body = vec![0u8; len + 2];
    reader.read_exact(&mut body).ok()?;
    Some(String::from_utf8_lossy(&body).into_owned())
}

/// An INFO field of a node (`None` while it does not answer).
fn info_field(s: &TestServer, section: &str, field: &str) -> Option<String> {
    try_query(s, &["INFO", section])?
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")).map(str::to_string))
}

/// The node (index, among `alive`) that leads the shard and takes writes, waiting up to
/// `within` for an election.
fn leader(nodes: &[TestServer], alive: &[usize], within: Duration) -> usize {
    let deadline = Instant::now() + within;
    loop {
        for &i in alive {
            if info_field(&nodes[i], "persistence", "raft_role").as_deref() == Some("leader") {
                return i;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no leader among nodes {alive:?} within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What a follower must agree with the leader on: the stream, its group and its PEL.
const STATE: &[&[&str]] = &[
    &["XLEN", "s"],
    &["XRANGE", "s", "-", "+"],
    &["XINFO", "GROUPS", "s"],
    &["XPENDING", "s", "g"],
    &["XPENDING", "s", "g", "-", "+", "1000"],
];

/// The replies of [`STATE`] on node `s` (after READONLY, so a follower answers itself),
/// the idle times of pending entries (which grow while the test waits) masked.
fn state(s: &TestServer) -> Vec<String> {
    let mut c = s.raw();
    assert_eq!(c.cmd(&["READONLY"]), b"+OK\r\n");
    STATE.iter().map(|q| mask_idle(&text(&c.cmd(q)))).collect()
}

/// An extended XPENDING reply with each entry's idle time (`*4`, id, consumer, *idle*,
/// deliveries) replaced by `?`; other replies unchanged.
fn mask_idle(reply: &str) -> String {
    let lines: Vec<&str> = reply.split("\r\n").collect();
    let mut out = Vec::with_capacity(lines.len());
    let mut i = 0;
    while i < lines.len() {
        // `*4`, `$n`, id, `$n`, consumer, idle, deliveries.
        if lines[i] == "*4" && lines.get(i + 5).is_some_and(|l| l.starts_with(':')) {
            out.extend_from_slice(&lines[i..i + 5]);
            out.push(":?");
            i += 6;
        } else {
            out.push(lines[i]);
            i += 1;
        }
    }
    out.join("\r\n")
}

/// Waits until every node in `alive` answers [`STATE`] as `expected`.
fn converge(nodes: &[TestServer], alive: &[usize], expected: &[String]) {
    await_all(nodes, alive, &expected.to_vec(), state);
}

/// Waits (10 s at most) until `read` of every node in `alive` is `expected`.
fn await_all<T: PartialEq + std::fmt::Debug>(
    nodes: &[TestServer],
    alive: &[usize],
    expected: &T,
    read: impl Fn(&TestServer) -> T,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    for &i in alive {
        loop {
            let got = read(&nodes[i]);
            if &got == expected {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {i} did not converge:\n{got:?}\nexpected\n{expected:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The ids of the first `n` entries `XREADGROUP` delivered in `reply` (RESP2).
fn delivered_ids(reply: &[u8]) -> Vec<String> {
    text(reply)
        .split("\r\n")
        .filter(|l| l.len() > 3 && l.contains('-') && l.as_bytes()[0].is_ascii_digit())
        .map(str::to_string)
        .collect()
}

/// Through `c` (the leader): `n` entries in stream `s` (field `n`, and a `pad` of `pad`
/// bytes when not 0), group `g` from the start, `read` of them delivered to consumer `c1`
/// and the first `acked` of those acknowledged.
fn stream_with_group(c: &mut Raw, n: usize, pad: usize, read: usize, acked: usize) {
    let padding = "x".repeat(pad);
    for i in 0..n {
        let i = i.to_string();
        let mut args = vec!["XADD", "s", "*", "n", i.as_str()];
        if pad > 0 {
            args.extend(["pad", padding.as_str()]);
        }
        let r = c.cmd(&args);
        assert!(r.starts_with(b"$"), "XADD {i}: {}", text(&r));
    }
    assert_eq!(c.cmd(&["XGROUP", "CREATE", "s", "g", "0"]), b"+OK\r\n");
    let count = read.to_string();
    let reply = c.cmd(&[
        "XREADGROUP",
        "GROUP",
        "g",
        "c1",
        "COUNT",
        &count,
        "STREAMS",
        "s",
        ">",
    ]);
    let ids = delivered_ids(&reply);
    assert_eq!(ids.len(), read, "{}", text(&reply));
    let mut ack = vec!["XACK", "s", "g"];
    ack.extend(ids[..acked].iter().map(String::as_str));
    assert_eq!(c.cmd(&ack), format!(":{acked}\r\n").as_bytes());
}

#[test]
fn a_replicated_shard_fails_over_without_losing_an_acknowledged_write() {
    if ran_in_netns("a_replicated_shard_fails_over_without_losing_an_acknowledged_write") {
        return;
    }
    let (mut nodes, l) = shard_and_leader();
    let all = [0, 1, 2];
    let slot = text(&nodes[l].raw().cmd(&["CLUSTER", "KEYSLOT", "s"]));
    let slot = slot.trim_start_matches(':').trim_end();

    // Writes on the leader, acknowledged once a majority has them.
    let mut c = nodes[l].raw();
    stream_with_group(&mut c, 200, 0, 50, 10);

    // Followers redirect writes and plain reads to the leader, and serve reads after
    // READONLY; all agree with the leader.
    let moved = format!("-MOVED {slot} {}\r\n", addr(&nodes[l]));
    for f in all.iter().copied().filter(|&i| i != l) {
        let mut fc = nodes[f].raw();
        assert_eq!(text(&fc.cmd(&["XADD", "s", "*", "n", "x"])), moved);
        assert_eq!(text(&fc.cmd(&["XLEN", "s"])), moved);
        // CLUSTER SLOTS lists the leader first.
        let slots = text(&fc.cmd(&["CLUSTER", "SLOTS"]));
        let at = |n: &TestServer| slots.find(&format!("{}\r\n:{}\r\n", n.host, n.port));
        let first = all.iter().filter_map(|&i| at(&nodes[i])).min();
        assert_eq!(first, at(&nodes[l]), "{slots}");
    }
    let before = state(&nodes[l]);
    assert!(before[0].starts_with(":200"), "{before:?}");
    assert!(before[3].starts_with("*4\r\n:40\r\n"), "{before:?}");
    converge(&nodes, &all, &before);

    // The leader dies: another is elected and has everything acknowledged.
    let killed_at = Instant::now();
    nodes[l].signal_and_wait(9);
    let rest: Vec<usize> = all.iter().copied().filter(|&i| i != l).collect();
    let l2 = leader(&nodes, &rest, Duration::from_secs(15));
    let failover = killed_at.elapsed();
    eprintln!("new leader after {failover:?}");
    assert_eq!(state(&nodes[l2]), before);
    let mut c2 = nodes[l2].raw();
    assert!(c2.cmd(&["XADD", "s", "*", "n", "after"]).starts_with(b"$"));
    let read = c2.cmd(&[
        "XREADGROUP",
        "GROUP",
        "g",
        "c2",
        "COUNT",
        "5",
        "STREAMS",
        "s",
        ">",
    ]);
    assert_eq!(delivered_ids(&read).len(), 5, "{}", text(&read));
    let after = state(&nodes[l2]);
    assert!(after[0].starts_with(":201"), "{after:?}");

    // The killed node comes back as a follower of the new leader and catches up.
    nodes[l].restart();
    converge(&nodes, &all, &after);
    let moved = format!("-MOVED {slot} {}\r\n", addr(&nodes[l2]));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = text(&nodes[l].raw().cmd(&["XADD", "s", "*", "n", "x"]));
        if r == moved {
            break;
        }
        // Until it hears from the leader it cannot take the write either.
        assert!(
            r.starts_with("-CLUSTERDOWN") || r.starts_with("-MOVED"),
            "{r}"
        );
        assert!(Instant::now() < deadline, "still {r}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let nodes_text = text(&nodes[l].raw().cmd(&["CLUSTER", "NODES"]));
    let master_line = nodes_text
        .lines()
        .find(|line| line.contains(" master "))
        .unwrap_or_default();
    assert!(master_line.contains(&addr(&nodes[l2])), "{nodes_text}");
    rill_ok(&["cluster", "check", &addr(&nodes[l2])]);
}

#[test]
fn a_leader_cut_off_from_its_replicas_acknowledges_nothing() {
    if ran_in_netns("a_leader_cut_off_from_its_replicas_acknowledges_nothing") {
        return;
    }
    let (mut nodes, l) = shard_and_leader();
    let all = [0, 1, 2];
    let mut c = nodes[l].raw();
    assert!(c.cmd(&["XADD", "s", "1-1", "f", "v"]).starts_with(b"$"));
    let before = state(&nodes[l]);
    converge(&nodes, &all, &before);
    let followers: Vec<usize> = all.iter().copied().filter(|&i| i != l).collect();
    for &f in &followers {
        nodes[f].signal_and_wait(9);
    }
    // Alone, the leader cannot commit: the write is answered with an error once it steps
    // down (check-quorum, about an election timeout), never with its ID.
    let started = Instant::now();
    let r = text(&c.cmd(&["XADD", "s", "2-1", "f", "v"]));
    assert!(r.starts_with("-CLUSTERDOWN"), "{r}");
    assert!(started.elapsed() < Duration::from_secs(10));

    // Its keyspace ran ahead of the commit index: it restarts in place (same process) to
    // rebuild it from the log, and rejoins once its replicas are back. One state for all;
    // the unacknowledged write may or may not have survived, the acknowledged one has.
    let pid = nodes[l].pid();
    for &f in &followers {
        nodes[f].restart();
    }
    let l2 = leader(&nodes, &all, Duration::from_secs(20));
    assert!(nodes[l].is_running(), "the deposed leader exited");
    assert_eq!(nodes[l].pid(), pid);
    let now = state(&nodes[l2]);
    assert!(now[1].contains("1-1"), "{now:?}");
    converge(&nodes, &all, &now);
}

/// Sends SIGSTOP or SIGCONT to a node.
fn signal(s: &TestServer, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([&format!("-{sig}"), &s.pid().to_string()])
        .status()
        .map(|st| st.success())
        .unwrap_or(false);
    assert!(ok, "kill -{sig} failed");
}

#[test]
fn a_paused_leader_never_answers_a_read_with_state_older_than_an_acknowledged_write() {
    if ran_in_netns(
        "a_paused_leader_never_answers_a_read_with_state_older_than_an_acknowledged_write",
    ) {
        return;
    }
    let (nodes, l) = shard_and_leader();
    let all = [0, 1, 2];
    let mut c = nodes[l].raw();
    assert!(c.cmd(&["XADD", "s", "1-1", "f", "old"]).starts_with(b"$"));
    converge(&nodes, &all, &state(&nodes[l]));

    // The leader stops; the others elect one of them, which acknowledges a newer write.
    signal(&nodes[l], "STOP");
    let rest: Vec<usize> = all.iter().copied().filter(|&i| i != l).collect();
    let l2 = leader(&nodes, &rest, Duration::from_secs(15));
    assert!(nodes[l2]
        .raw()
        .cmd(&["XADD", "s", "2-1", "f", "new"])
        .starts_with(b"$"));

    // A read reaches the old leader while it is stopped, and runs when it continues, still
    // believing it leads: it must not be answered from its old state.
    c.send(&common::encode(&["XRANGE", "s", "-", "+"]));
    signal(&nodes[l], "CONT");
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    c.stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    loop {
        match c.reader.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                reply.extend_from_slice(&buf[..n]);
                if reply.ends_with(b"\r\n") && (reply[0] != b'*' || text(&reply).contains("new")) {
                    break;
                }
            }
        }
    }
    let reply = text(&reply);
    assert!(
        reply.is_empty() || reply.starts_with('-') || reply.contains("new"),
        "the deposed leader answered from its old state: {reply:?}"
    );
}

#[test]
fn clients_blocked_on_a_leader_that_steps_down_are_moved_to_the_new_one() {
    if ran_in_netns("clients_blocked_on_a_leader_that_steps_down_are_moved_to_the_new_one") {
        return;
    }
    let (nodes, l) = shard_and_leader();
    let all = [0, 1, 2];
    let mut c = nodes[l].raw();
    assert_eq!(
        c.cmd(&["XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"]),
        b"+OK\r\n"
    );
    let slot = text(&c.cmd(&["CLUSTER", "KEYSLOT", "s"]));
    let slot = slot.trim_start_matches(':').trim_end().to_string();
    let mut blocked = nodes[l].raw();
    blocked.send(&common::encode(&[
        "XREADGROUP",
        "GROUP",
        "g",
        "c",
        "BLOCK",
        "0",
        "STREAMS",
        "s",
        ">",
    ]));
    nodes[l].wait_blocked(1);
    // Paused past the election timeout, the leader comes back as a follower (it had no
    // write outstanding): its blocked client is sent to the new leader.
    signal(&nodes[l], "STOP");
    let rest: Vec<usize> = all.iter().copied().filter(|&i| i != l).collect();
    let l2 = leader(&nodes, &rest, Duration::from_secs(15));
    signal(&nodes[l], "CONT");
    assert_eq!(
        text(&blocked.read_reply()),
        format!("-MOVED {slot} {}\r\n", addr(&nodes[l2]))
    );
}

#[test]
fn cluster_failover_on_a_replica_hands_it_the_leadership() {
    if ran_in_netns("cluster_failover_on_a_replica_hands_it_the_leadership") {
        return;
    }
    let (nodes, l) = shard_and_leader();
    let all = [0, 1, 2];
    let mut c = nodes[l].raw();
    assert!(c.cmd(&["XADD", "s", "1-1", "f", "v"]).starts_with(b"$"));
    assert_eq!(
        text(&c.cmd(&["CLUSTER", "FAILOVER"])),
        "-ERR You should send CLUSTER FAILOVER to a replica\r\n"
    );
    let f = (l + 1) % 3;
    let mut fc = nodes[f].raw();
    assert_eq!(
        text(&fc.cmd(&["CLUSTER", "FAILOVER", "NOW"])),
        "-ERR syntax error\r\n"
    );
    assert_eq!(fc.cmd(&["CLUSTER", "FAILOVER"]), b"+OK\r\n");
    // The leader transfer brings the replica up to date and makes it campaign at once.
    let deadline = Instant::now() + Duration::from_secs(10);
    while info_field(&nodes[f], "persistence", "raft_role").as_deref() != Some("leader") {
        assert!(Instant::now() < deadline, "node {f} did not take over");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut fc = nodes[f].raw();
    assert!(fc.cmd(&["XADD", "s", "2-1", "f", "v"]).starts_with(b"$"));
    assert_eq!(text(&fc.cmd(&["XLEN", "s"])), ":2\r\n");
    // The old leader follows it and redirects there.
    let slot = text(&fc.cmd(&["CLUSTER", "KEYSLOT", "s"]));
    let moved = format!(
        "-MOVED {} {}\r\n",
        slot.trim_start_matches(':').trim_end(),
        addr(&nodes[f])
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = text(&nodes[l].raw().cmd(&["XLEN", "s"]));
        if r == moved {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the old leader does not redirect: {r:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    converge(&nodes, &all, &state(&nodes[f]));
}

#[test]
fn only_the_leader_expires_keys_and_replicas_apply_its_deletions() {
    if ran_in_netns("only_the_leader_expires_keys_and_replicas_apply_its_deletions") {
        return;
    }
    let (nodes, l) = shard_and_leader();
    let all = [0, 1, 2];
    let mut c = nodes[l].raw();
    assert!(c.cmd(&["XADD", "s", "1-1", "f", "v"]).starts_with(b"$"));
    assert!(c.cmd(&["XADD", "kept", "1-1", "f", "v"]).starts_with(b"$"));
    // IIDs a sweep forgets after IDMP-DURATION (1 s), and a key that expires.
    assert!(c
        .cmd(&["XCFGSET", "kept", "IDMP-DURATION", "1"])
        .starts_with(b"+OK"));
    assert!(c
        .cmd(&["XADD", "kept", "IDMP", "p", "i1", "*", "f", "v"])
        .starts_with(b"$"));
    assert_eq!(c.cmd(&["PEXPIRE", "s", "300"]), b":1\r\n");
    std::thread::sleep(Duration::from_millis(1500));
    // Replicas read the expired key as absent; the leader's deletion reaches them; no
    // group stopped (a replica that expired or swept on its own would have proposed).
    for i in all {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut r = nodes[i].raw();
            assert_eq!(r.cmd(&["READONLY"]), b"+OK\r\n");
            assert_eq!(text(&r.cmd(&["XLEN", "s"])), ":0\r\n", "node {i}");
            let info = text(&r.cmd(&["XINFO", "STREAM", "kept"]));
            if text(&r.cmd(&["EXISTS", "s"])) == ":0\r\n" && info.contains("iids-tracked\r\n:0") {
                break;
            }
            assert!(Instant::now() < deadline, "node {i}: {info}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    assert_eq!(
        info_field(&nodes[l], "persistence", "raft_role").as_deref(),
        Some("leader")
    );
    assert!(nodes[l]
        .raw()
        .cmd(&["XADD", "kept", "*", "f", "v"])
        .starts_with(b"$"));
    converge(&nodes, &all, &state(&nodes[l]));
}

/// `field` of INFO persistence on node `s`, as a number (waiting while it restarts).
fn persisted(s: &TestServer, field: &str) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = info_field(s, "persistence", field).and_then(|v| v.parse().ok()) {
            return v;
        }
        assert!(Instant::now() < deadline, "no {field} from {}", addr(s));
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Asks node `s` for a checkpoint and waits for it to finish; its Raft first index after.
fn checkpoint(s: &TestServer) -> u64 {
    let mut c = s.raw();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = text(&c.cmd(&["BGREWRITEAOF"]));
        if r.starts_with("+Background append only file rewriting started") {
            break;
        }
        assert!(r.contains("already in progress"), "{r}");
        assert!(Instant::now() < deadline, "{r}");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The request is taken within a poll of the checkpoint task (250 ms).
    std::thread::sleep(Duration::from_millis(400));
    while persisted(s, "aof_rewrite_in_progress") != 0 {
        assert!(Instant::now() < deadline, "checkpoint still running");
        std::thread::sleep(Duration::from_millis(20));
    }
    persisted(s, "raft_first_index")
}

/// Step I in a shard: every replica checkpoints and purges its Raft log, but never below
/// what each replica holds — a follower that is down holds the purge floor, and so every
/// log's purge, at what it had acknowledged, and once back it catches up from the
/// leader's log (there are no snapshots to ship yet); then the purge goes on.
#[test]
fn replicas_purge_their_logs_only_below_what_every_replica_holds() {
    if ran_in_netns("replicas_purge_their_logs_only_below_what_every_replica_holds") {
        return;
    }
    let mut nodes = create_shard_with(&["--segment-size", "1mb", "--checkpoint-interval", "3600"]);
    let all = [0, 1, 2];
    let l = leader(&nodes, &all, Duration::from_secs(10));
    let pad = "p".repeat(2048);
    let write = |s: &TestServer, from: u64, n: u64| {
        let mut c = s.raw();
        for i in from..from + n {
            let r = c.cmd(&[
                "XADD",
                "s",
                &format!("{i}-1"),
                "n",
                &i.to_string(),
                "pad",
                &pad,
            ]);
            assert!(r.starts_with(b"$"), "XADD {i}: {}", text(&r));
        }
        assert!(c.cmd(&["XTRIM", "s", "MAXLEN", "20"]).starts_with(b":"));
    };
    write(&nodes[l], 1, 700);
    let expected = state(&nodes[l]);
    converge(&nodes, &all, &expected);
    for s in &nodes {
        let first = checkpoint(s);
        assert!(first > 256, "{} purged only below {first}", addr(s));
    }

    // A follower goes down: the others' purges stop at what it holds.
    let f = (l + 1) % 3;
    let held = persisted(&nodes[f], "raft_last_index");
    nodes[f].signal_and_wait(9);
    write(&nodes[l], 701, 700);
    let others: Vec<usize> = all.iter().copied().filter(|&i| i != f).collect();
    for &i in &others {
        let first = checkpoint(&nodes[i]);
        assert!(
            first <= held + 1,
            "node {i} purged below {first}, but the follower that is down holds only {held}"
        );
        assert!(persisted(&nodes[i], "raft_purge_floor") <= held);
    }

    // It comes back and catches up from the leader's log; then the purge moves past it.
    nodes[f].restart();
    let expected = state(&nodes[l]);
    converge(&nodes, &all, &expected);
    write(&nodes[l], 1401, 300);
    let expected = state(&nodes[l]);
    converge(&nodes, &all, &expected);
    for s in &nodes {
        let first = checkpoint(s);
        assert!(
            first > held + 1,
            "{} still purged only below {first} (the follower had {held})",
            addr(s)
        );
    }
    // And a node restarted past its checkpoint has the same state.
    nodes[f].restart();
    converge(&nodes, &all, &expected);
}

/// A client blocked on XREAD on a replica (after READONLY) is served when the leader's
/// entry is applied there, as a Redis replica serves it when its master's write arrives.
#[test]
fn a_reader_blocked_on_a_replica_is_served_when_the_leaders_write_is_applied() {
    if ran_in_netns("a_reader_blocked_on_a_replica_is_served_when_the_leaders_write_is_applied") {
        return;
    }
    let (nodes, l) = shard_and_leader();
    let f = (l + 1) % 3;
    let mut c = nodes[l].raw();
    assert_eq!(c.cmd(&["XADD", "s", "1-1", "n", "0"]), b"$3\r\n1-1\r\n");
    let mut blocked = nodes[f].raw();
    assert_eq!(blocked.cmd(&["READONLY"]), b"+OK\r\n");
    // Waits until the replica has the first entry, so `$` is past it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while blocked.cmd(&["XLEN", "s"]) != b":1\r\n" {
        assert!(Instant::now() < deadline, "the replica never applied 1-1");
        std::thread::sleep(Duration::from_millis(20));
    }
    blocked.send(&common::encode(&[
        "XREAD", "BLOCK", "0", "STREAMS", "s", "$",
    ]));
    nodes[f].wait_blocked(1);
    assert_eq!(c.cmd(&["XADD", "s", "2-1", "n", "1"]), b"$3\r\n2-1\r\n");
    assert_eq!(
        text(&blocked.read_reply()),
        "*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n2-1\r\n*2\r\n$1\r\nn\r\n$1\r\n1\r\n"
    );
}

/// Leader hints: the nodes of the other shards learn a shard's new leader from it (its
/// heartbeats to them over the cluster bus), so their `MOVED` replies name it within
/// seconds — not the dead node their map listed first.
#[test]
fn the_other_shards_learn_a_shards_new_leader() {
    if ran_in_netns("the_other_shards_learn_a_shards_new_leader") {
        return;
    }
    let mut nodes: Vec<TestServer> = (0..6).map(|_| replica_with(&[])).collect();
    let mut args = vec!["cluster", "create", "--replicas", "2"];
    let addrs: Vec<String> = nodes.iter().map(addr).collect();
    args.extend(addrs.iter().map(String::as_str));
    let out = rill_ok(&args);
    assert!(out.contains("Master[1]"), "{out}");
    // The two shards, by CLUSTER MYSHARDID.
    let shard_of: Vec<String> = nodes
        .iter()
        .map(|n| text(&n.raw().cmd(&["CLUSTER", "MYSHARDID"])))
        .collect();
    let a: Vec<usize> = (0..6).filter(|&i| shard_of[i] == shard_of[0]).collect();
    let b: Vec<usize> = (0..6).filter(|&i| shard_of[i] != shard_of[0]).collect();
    assert_eq!((a.len(), b.len()), (3, 3), "{shard_of:?}");
    let lb = leader(&nodes, &b, Duration::from_secs(10));
    // A key of shard B: its leader serves it.
    let key = (0..1000)
        .map(|i| format!("k{i}"))
        .find(|k| nodes[lb].raw().cmd(&["XLEN", k]) == b":0\r\n")
        .expect("a key of shard B");
    let slot = text(&nodes[lb].raw().cmd(&["CLUSTER", "KEYSLOT", &key]));
    let slot = slot.trim_start_matches(':').trim_end().to_string();
    // Every node of shard A redirects the key to node `l`, within seconds.
    let wait_for = |nodes: &[TestServer], l: usize| {
        let expect = format!("-MOVED {slot} {}\r\n", addr(&nodes[l]));
        await_all(nodes, &a, &expect, |n| text(&n.raw().cmd(&["XLEN", &key])));
    };
    wait_for(&nodes, lb);
    // B's leader dies; B elects another, and A's nodes learn of it.
    nodes[lb].signal_and_wait(9);
    let rest: Vec<usize> = b.iter().copied().filter(|&i| i != lb).collect();
    let lb2 = leader(&nodes, &rest, Duration::from_secs(15));
    let elected = Instant::now();
    wait_for(&nodes, lb2);
    eprintln!(
        "shard A's nodes knew the new leader {:?} after its election",
        elected.elapsed()
    );
}

/// `tls-cluster yes`: the Raft links are TLS with certificates from the cluster's CA. The
/// shard replicates over them; the bus port speaks no plain text; a node whose
/// certificate comes from another CA is cut off (the others go on without it) until it
/// has a good one again, then catches up.
#[test]
fn raft_links_use_tls_with_the_clusters_ca() {
    if ran_in_netns("raft_links_use_tls_with_the_clusters_ca") {
        return;
    }
    use rcgen::ExtendedKeyUsagePurpose::{ClientAuth, ServerAuth};
    let dir = std::env::temp_dir().join(format!("rill-raft-tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("cert dir");
    let ca = common::certs::ca("Rill cluster CA");
    let rogue = common::certs::ca("Another CA");
    std::fs::write(dir.join("ca.crt"), ca.0.pem()).expect("write ca");
    // One certificate per node (names are not checked on the bus: any of the CA's).
    for i in 0..3 {
        common::certs::leaf(
            &dir,
            &format!("node{i}"),
            &["rill-node"],
            &ca,
            vec![ServerAuth, ClientAuth],
        );
    }
    let path = |f: &str| dir.join(f).to_string_lossy().into_owned();
    let mut nodes: Vec<TestServer> = (0..3)
        .map(|i| {
            let (crt, key, cafile) = (
                path(&format!("node{i}.crt")),
                path(&format!("node{i}.key")),
                path("ca.crt"),
            );
            replica_with(&[
                "--tls-cluster",
                "yes",
                "--tls-cert-file",
                &crt,
                "--tls-key-file",
                &key,
                "--tls-ca-cert-file",
                &cafile,
            ])
        })
        .collect();
    let mut args = vec!["cluster", "create", "--replicas", "2"];
    let addrs: Vec<String> = nodes.iter().map(addr).collect();
    args.extend(addrs.iter().map(String::as_str));
    rill_ok(&args);
    let all = [0, 1, 2];
    let l = leader(&nodes, &all, Duration::from_secs(10));
    let mut c = nodes[l].raw();
    for i in 1..=50 {
        let id = format!("{i}-1");
        assert_eq!(
            text(&c.cmd(&["XADD", "s", &id, "n", "x"])),
            format!("${}\r\n{id}\r\n", id.len())
        );
    }
    let expected = state(&nodes[l]);
    converge(&nodes, &all, &expected);

    // The bus port answers a plain-text peer with no Raft handshake (a plain bus sends its
    // HELLO, "RILLRAFT…", at once): it waits for a TLS ClientHello.
    let bus = SocketAddr::new(nodes[l].host, nodes[l].port + 10000);
    let mut plain = TcpStream::connect_timeout(&bus, Duration::from_secs(2)).expect("bus");
    plain
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let mut first = [0u8; 8];
    let got = plain.read(&mut first).unwrap_or(0);
    assert!(
        got == 0 || first[..got] != b"RILLRAFT"[..got],
        "the bus spoke plain text"
    );

    // Certificates rotate as Redis's do: new files, CONFIG SET, and the next connection to
    // the bus is served with them (here: a TLS client presenting another node's certificate
    // is shown the leader's new one).
    common::certs::leaf(
        &dir,
        &format!("node{l}"),
        &["rill-node-rotated"],
        &ca,
        vec![ServerAuth, ClientAuth],
    );
    let mut admin = nodes[l].raw();
    for (directive, file) in [("tls-cert-file", "crt"), ("tls-key-file", "key")] {
        assert_eq!(
            admin.cmd(&[
                "CONFIG",
                "SET",
                directive,
                &path(&format!("node{l}.{file}"))
            ]),
            b"+OK\r\n"
        );
    }
    let presented = bus_certificate(&bus, "rill-node-rotated", &dir, (l + 1) % 3);
    let rotated = {
        use rustls::pki_types::pem::PemObject;
        rustls::pki_types::CertificateDer::from_pem_file(dir.join(format!("node{l}.crt")))
            .expect("the rotated certificate")
    };
    assert!(
        presented == rotated,
        "the bus still presents the old certificate"
    );
    assert!(c.cmd(&["XADD", "s", "50-2", "n", "x"]).starts_with(b"$"));
    let expected = state(&nodes[l]);
    converge(&nodes, &all, &expected);

    // A follower with a certificate of another CA is cut off; writes go on without it.
    let f = (l + 1) % 3;
    common::certs::leaf(
        &dir,
        &format!("node{f}"),
        &["rill-node"],
        &rogue,
        vec![ServerAuth, ClientAuth],
    );
    nodes[f].restart();
    for i in 51..=59 {
        let id = format!("{i}-1");
        assert!(c.cmd(&["XADD", "s", &id, "n", "x"]).starts_with(b"$"));
    }
    std::thread::sleep(Duration::from_secs(2));
    let len = |s: &TestServer| {
        let mut r = s.raw();
        assert_eq!(r.cmd(&["READONLY"]), b"+OK\r\n");
        text(&r.cmd(&["XLEN", "s"]))
    };
    assert_eq!(
        len(&nodes[f]),
        ":51\r\n",
        "the node with a foreign certificate"
    );
    // With a certificate of the CA again, it catches up.
    common::certs::leaf(
        &dir,
        &format!("node{f}"),
        &["rill-node"],
        &ca,
        vec![ServerAuth, ClientAuth],
    );
    nodes[f].restart();
    let expected = state(&nodes[l]);
    assert!(expected[0].starts_with(":60"), "{expected:?}");
    converge(&nodes, &all, &expected);
    let _ = std::fs::remove_dir_all(&dir);
}

/// INFO replication's fields of node `s`, as `name → value` (empty while it does not answer).
fn replication(s: &TestServer) -> std::collections::BTreeMap<String, String> {
    try_query(s, &["INFO", "replication"])
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The `k=v,…` fields of an INFO value such as `slave0:ip=…,port=…`.
fn subfields(v: &str) -> std::collections::BTreeMap<String, String> {
    v.split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Waits up to `within` until `check` holds for node `s`'s INFO replication; the fields
/// then (the last ones seen in the failure message otherwise).
fn replication_until(
    s: &TestServer,
    within: Duration,
    what: &str,
    check: impl Fn(&std::collections::BTreeMap<String, String>) -> bool,
) -> std::collections::BTreeMap<String, String> {
    let deadline = Instant::now() + within;
    loop {
        let r = replication(s);
        if check(&r) {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "{what} not seen within {within:?}: {r:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The replica entry (`slaveN` and `raft_replicaN` fields merged) of the node with
/// client port `port` in a leader's INFO replication.
fn replica_entry(
    r: &std::collections::BTreeMap<String, String>,
    node: &TestServer,
) -> Option<std::collections::BTreeMap<String, String>> {
    (0..r.len()).find_map(|i| {
        let slave = subfields(r.get(&format!("slave{i}"))?);
        if slave.get("ip")? != &node.host.to_string()
            || slave.get("port")? != &node.port.to_string()
        {
            return None;
        }
        let mut all = subfields(r.get(&format!("raft_replica{i}"))?);
        all.extend(slave);
        Some(all)
    })
}

#[test]
fn info_replication_shows_each_replicas_lag_on_the_leader_and_the_leader_on_a_replica() {
    if ran_in_netns(
        "info_replication_shows_each_replicas_lag_on_the_leader_and_the_leader_on_a_replica",
    ) {
        return;
    }
    let (mut nodes, l) = shard_and_leader();
    let all = [0, 1, 2];
    let followers: Vec<usize> = all.iter().copied().filter(|&i| i != l).collect();
    let mut c = nodes[l].raw();
    for i in 1..=5 {
        let id = format!("{i}-1");
        assert!(c.cmd(&["XADD", "s", &id, "f", "v"]).starts_with(b"$"));
    }
    // The leader: Redis's master lines, one slaveN per replica with its address, and the
    // Raft lines; once the replicas caught up, each matches the leader's last index.
    let r = replication_until(
        &nodes[l],
        Duration::from_secs(10),
        "replicas caught up",
        |r| {
            let last = r.get("raft_last_index");
            followers.iter().all(|&f| {
                replica_entry(r, &nodes[f]).is_some_and(|e| {
                    e.get("state").map(String::as_str) == Some("online")
                        && e.get("lag_entries").map(String::as_str) == Some("0")
                        && e.get("offset") == last
                        && e.get("match") == last
                })
            })
        },
    );
    assert_eq!(r["role"], "master", "{r:?}");
    assert_eq!(r["raft_role"], "leader", "{r:?}");
    assert_eq!(r["connected_slaves"], "2", "{r:?}");
    assert_eq!(r["raft_commit_index"], r["raft_last_index"], "{r:?}");
    assert_eq!(r["master_repl_offset"], r["raft_last_index"], "{r:?}");
    let leader_id = text(&nodes[l].raw().cmd(&["CLUSTER", "MYID"]));
    let leader_id = leader_id.lines().nth(1).unwrap_or_default()[..16].to_string();
    assert_eq!(r["raft_leader_id"], leader_id, "{r:?}");
    for &f in &followers {
        let e = replica_entry(&r, &nodes[f]).expect("an entry per replica");
        // Heartbeats every tick (100 ms): the leader heard from it just now (within the
        // election timeout; a loaded machine may delay a heartbeat or two).
        assert!(["0", "1"].contains(&e["lag"].as_str()), "{e:?}");
        let contact: i64 = e["last_contact_ms"].parse().expect("a number");
        assert!((0..1000).contains(&contact), "{e:?}");
        assert_eq!(e["active"], "1", "{e:?}");
        assert_eq!(e["state"], "online", "{e:?}");
        // A replica: role slave, its master the leader (address and id), the link up, and
        // everything committed applied.
        let fr = replication_until(&nodes[f], Duration::from_secs(10), "applied", |fr| {
            fr.get("raft_applied_index") == r.get("raft_commit_index")
        });
        assert_eq!(fr["role"], "slave", "{fr:?}");
        assert_eq!(fr["raft_role"], "follower", "{fr:?}");
        assert_eq!(fr["master_host"], nodes[l].host.to_string(), "{fr:?}");
        assert_eq!(fr["master_port"], nodes[l].port.to_string(), "{fr:?}");
        assert_eq!(fr["master_link_status"], "up", "{fr:?}");
        assert!(
            ["0", "1"].contains(&fr["master_last_io_seconds_ago"].as_str()),
            "{fr:?}"
        );
        assert_eq!(fr["raft_leader_id"], leader_id, "{fr:?}");
        assert_eq!(fr["raft_term"], r["raft_term"], "{fr:?}");
        assert_eq!(fr["slave_repl_offset"], fr["raft_applied_index"], "{fr:?}");
        assert_eq!(fr["connected_slaves"], "0", "{fr:?}");
        assert!(!fr.contains_key("slave0"), "{fr:?}");
    }

    // A replica killed: the leader goes on with the other, and shows the dead one
    // unreachable, not heard from for seconds, and lagging by the entries written since.
    let dead = followers[0];
    nodes[dead].signal_and_wait(9);
    for i in 6..=9 {
        let id = format!("{i}-1");
        assert!(c.cmd(&["XADD", "s", &id, "f", "v"]).starts_with(b"$"));
    }
    let r = replication_until(
        &nodes[l],
        Duration::from_secs(10),
        "the dead replica unreachable",
        |r| {
            replica_entry(r, &nodes[dead]).is_some_and(|e| {
                e.get("state").map(String::as_str) == Some("unreachable")
                    && e.get("active").map(String::as_str) == Some("0")
                    && e.get("last_contact_ms")
                        .and_then(|v| v.parse::<i64>().ok())
                        .is_some_and(|ms| ms >= 1000)
            })
        },
    );
    let e = replica_entry(&r, &nodes[dead]).expect("still listed");
    let last: u64 = r["raft_last_index"].parse().expect("a number");
    let matched: u64 = e["match"].parse().expect("a number");
    assert!(matched + 4 <= last, "{r:?}");
    assert_eq!(e["lag_entries"], (last - matched).to_string(), "{e:?}");
    assert_eq!(r["connected_slaves"], "2", "{r:?}");
    let live = replica_entry(&r, &nodes[followers[1]]).expect("listed");
    assert_eq!(live["state"], "online", "{live:?}");

    // Back: it catches up, and is online with no lag again.
    nodes[dead].restart();
    replication_until(
        &nodes[l],
        Duration::from_secs(20),
        "the replica back online",
        |r| {
            let last = r.get("raft_last_index");
            replica_entry(r, &nodes[dead]).is_some_and(|e| {
                e.get("state").map(String::as_str) == Some("online") && e.get("match") == last
            })
        },
    );
}

/// A `rill-faultproxy` with the given links (`name`, target address); each gets a listener
/// on 127.0.0.1 and a free port.
struct LinkProxy {
    child: std::process::Child,
    control: BufReader<TcpStream>,
    listen: Vec<(String, String)>,
}

impl Drop for LinkProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl LinkProxy {
    fn start(links: &[(&str, String)]) -> LinkProxy {
        let control = common::free_port();
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_rill-faultproxy"));
        cmd.args(["--control", &format!("127.0.0.1:{control}")]);
        let mut listen = Vec::new();
        for (name, target) in links {
            let l = format!("127.0.0.1:{}", common::free_port());
            cmd.args(["--link", &format!("{name}={l}={target}")]);
            listen.push((name.to_string(), l));
        }
        let mut child = cmd
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn rill-faultproxy");
        let mut banner = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut banner)
            .expect("banner");
        assert!(banner.starts_with("ready control="), "{banner}");
        let stream = TcpStream::connect(("127.0.0.1", control)).expect("control");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        LinkProxy {
            child,
            control: BufReader::new(stream),
            listen,
        }
    }

    fn addr(&self, name: &str) -> &str {
        &self
            .listen
            .iter()
            .find(|(n, _)| n == name)
            .expect("a link")
            .1
    }

    fn set(&mut self, name: &str, mode: &str) {
        self.control
            .get_mut()
            .write_all(format!("SET {name} {mode}\n").as_bytes())
            .expect("control write");
        let mut answer = String::new();
        self.control.read_line(&mut answer).expect("control read");
        assert_eq!(answer.trim_end(), "OK");
    }

    /// Bytes forwarded on a link so far (`LIST`).
    fn forwarded(&mut self, name: &str) -> u64 {
        self.control
            .get_mut()
            .write_all(b"LIST\n")
            .expect("control write");
        let mut found = None;
        loop {
            let mut line = String::new();
            self.control.read_line(&mut line).expect("control read");
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["END"] => break,
                [n, .., bytes] if *n == name => found = bytes.parse().ok(),
                _ => {}
            }
        }
        found.expect("the link is listed")
    }
}

#[test]
fn a_peer_route_carries_a_raft_link_and_cutting_it_is_a_one_way_partition() {
    if ran_in_netns("a_peer_route_carries_a_raft_link_and_cutting_it_is_a_one_way_partition") {
        return;
    }
    // B and C first, so A can be told their bus addresses: A dials each through a proxy
    // link (`cluster-peer-route`), while B and C dial A directly.
    let b = replica_with(&[]);
    let c = replica_with(&[]);
    let bus = |s: &TestServer| format!("{}:{}", s.host, s.port + 10000);
    let mut proxy = LinkProxy::start(&[("a2b", bus(&b)), ("a2c", bus(&c))]);
    let routes = [
        "--cluster-peer-route".to_string(),
        bus(&b),
        proxy.addr("a2b").to_string(),
        "--cluster-peer-route".to_string(),
        bus(&c),
        proxy.addr("a2c").to_string(),
    ];
    let mut args = vec![
        "--cluster-raft",
        "yes",
        "--cluster-secret",
        SECRET,
        "--appendfsync",
        "always",
    ];
    args.extend(routes.iter().map(String::as_str));
    let a = node_with(&args);
    let nodes = vec![a, b, c];
    let addrs: Vec<String> = nodes.iter().map(addr).collect();
    let mut create = vec!["cluster", "create", "--replicas", "2"];
    create.extend(addrs.iter().map(String::as_str));
    rill_ok(&create);
    let l = leader(&nodes, &[0, 1, 2], Duration::from_secs(10));
    assert!(text(&nodes[l].raw().cmd(&["XADD", "s", "1-1", "f", "v"])).starts_with('$'));
    // A's traffic took the routes: both links carried bytes.
    let deadline = Instant::now() + Duration::from_secs(5);
    while proxy.forwarded("a2b") == 0 || proxy.forwarded("a2c") == 0 {
        assert!(
            Instant::now() < deadline,
            "A's Raft links bypassed the proxy"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Cut A's outbound links only: B and C still reach A, A reaches no one. A cannot lead
    // (if it did, check-quorum deposes it); B or C leads, with A listed as unreachable and
    // falling behind, although A still receives (and applies) the leader's entries.
    proxy.set("a2b", "blackhole");
    proxy.set("a2c", "blackhole");
    let l = leader(&nodes, &[1, 2], Duration::from_secs(20));
    let mut w = nodes[l].raw();
    for i in 2..=4 {
        let id = format!("{i}-1");
        assert!(text(&w.cmd(&["XADD", "s", &id, "f", "v"])).starts_with('$'));
    }
    let r = replication_until(
        &nodes[l],
        Duration::from_secs(10),
        "A unreachable, lagging",
        |r| {
            let last: Option<u64> = r.get("raft_last_index").and_then(|v| v.parse().ok());
            replica_entry(r, &nodes[0]).is_some_and(|e| {
                e.get("state").map(String::as_str) == Some("unreachable")
                    && e.get("match")
                        .and_then(|m| m.parse::<u64>().ok())
                        .zip(last)
                        .is_some_and(|(m, last)| m < last)
            })
        },
    );
    assert_eq!(r["role"], "master", "{r:?}");
    let other = 3 - l; // the other of 1 and 2
    let e = replica_entry(&r, &nodes[other]).expect("listed");
    assert_eq!(e["state"], "online", "{e:?}");
    assert_ne!(
        info_field(&nodes[0], "replication", "raft_role").as_deref(),
        Some("leader")
    );

    // Heal: A's acknowledgements reach the leader again; it is online, caught up, and every
    // replica holds the same stream.
    proxy.set("a2b", "pass");
    proxy.set("a2c", "pass");
    replication_until(&nodes[l], Duration::from_secs(20), "A back online", |r| {
        let last = r.get("raft_last_index");
        replica_entry(r, &nodes[0]).is_some_and(|e| {
            e.get("state").map(String::as_str) == Some("online") && e.get("match") == last
        })
    });
    let now = state(&nodes[l]);
    assert!(now[1].contains("4-1"), "{now:?}");
    converge(&nodes, &[0, 1, 2], &now);
}

/// The certificate node `bus` presents to a TLS client on its bus port that expects it to
/// be for `name` and presents node `as_node`'s certificate from `dir` (the handshake only:
/// the Raft handshake inside is not answered).
fn bus_certificate(
    bus: &SocketAddr,
    name: &str,
    dir: &std::path::Path,
    as_node: usize,
) -> rustls::pki_types::CertificateDer<'static> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(dir.join("ca.crt")).expect("ca") {
        roots.add(c.expect("ca cert")).expect("add ca");
    }
    let chain = CertificateDer::pem_file_iter(dir.join(format!("node{as_node}.crt")))
        .expect("chain")
        .collect::<Result<Vec<_>, _>>()
        .expect("chain certs");
    let key = PrivateKeyDer::from_pem_file(dir.join(format!("node{as_node}.key"))).expect("key");
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .expect("client auth");
    let name = rustls::pki_types::ServerName::try_from(name.to_string()).expect("a DNS name");
    let mut conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).expect("tls");
    let mut sock = TcpStream::connect_timeout(bus, Duration::from_secs(2)).expect("bus");
    sock.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    while conn.is_handshaking() {
        conn.complete_io(&mut sock)
            .expect("TLS handshake with the bus");
    }
    conn.peer_certificates()
        .and_then(|c| c.first())
        .expect("a server certificate")
        .clone()
        .into_owned()
}

/// A node whose Raft log was lost (its `log/` deleted, as a replaced disk would) does not
/// rejoin its shard under its old id: it refuses to start its replica, and the shard goes on
/// without it.
#[test]
fn a_node_that_lost_its_raft_log_does_not_rejoin_under_its_old_id() {
    if ran_in_netns("a_node_that_lost_its_raft_log_does_not_rejoin_under_its_old_id") {
        return;
    }
    let (mut nodes, l) = shard_and_leader();
    let all = [0, 1, 2];
    let mut c = nodes[l].raw();
    for i in 1..=20 {
        let id = format!("{i}-1");
        assert!(c.cmd(&["XADD", "s", &id, "n", "x"]).starts_with(b"$"));
    }
    converge(&nodes, &all, &state(&nodes[l]));
    let f = (l + 1) % 3;
    nodes[f].signal_and_wait(9);
    std::fs::remove_dir_all(nodes[f].dir.join("log")).expect("remove the log");
    let (status, out) = nodes[f].start_expecting_exit(Duration::from_secs(20));
    let status = status.unwrap_or_else(|| panic!("the node with no log kept running: {out}"));
    // A refusal is a failure (a supervisor restarting on failure must see it).
    assert!(!status.success(), "exited with {status}: {out}");
    assert!(
        out.contains("must not rejoin under its old id with a shorter log"),
        "{out}"
    );
    // The others go on.
    assert!(c.cmd(&["XADD", "s", "21-1", "n", "x"]).starts_with(b"$"));
    let rest: Vec<usize> = all.iter().copied().filter(|&i| i != f).collect();
    converge(&nodes, &rest, &state(&nodes[l]));
}

/// Segment files of node `s`.
fn segment_count(s: &TestServer) -> usize {
    std::fs::read_dir(s.dir.join("log"))
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "seg"))
                .count()
        })
        .unwrap_or(0)
}

/// Compaction in a shard: the leader relocates the live payloads of mostly-dead segments
/// through the log; every replica applies the `Relocate` entries (moving those payloads
/// out of its own older segments), so its next checkpoint deletes them too, and every
/// replica reads the same entries before and after a restart.
#[test]
fn replicas_apply_the_leaders_compaction() {
    if ran_in_netns("replicas_apply_the_leaders_compaction") {
        return;
    }
    let mut nodes = create_shard_with(&["--segment-size", "4mb", "--checkpoint-interval", "3600"]);
    let all = [0, 1, 2];
    let l = leader(&nodes, &all, Duration::from_secs(10));
    let mut c = nodes[l].raw();
    let big = "z".repeat(16384);
    for i in 1..=1000u64 {
        let id = format!("{i}-1");
        assert!(c.cmd(&["XADD", "s", &id, "pad", &big]).starts_with(b"$"));
    }
    for i in (1..=1000u64).filter(|i| i % 100 != 0) {
        assert_eq!(c.cmd(&["XDEL", "s", &format!("{i}-1")]), b":1\r\n");
    }
    let expected = state(&nodes[l]);
    converge(&nodes, &all, &expected);
    let before: Vec<usize> = nodes.iter().map(segment_count).collect();
    // The leader checkpoints and compacts; then every node checkpoints.
    checkpoint(&nodes[l]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        for s in &nodes {
            checkpoint(s);
        }
        let now: Vec<usize> = nodes.iter().map(segment_count).collect();
        if now.iter().all(|&n| n <= 2) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "segments per node {before:?} before, {now:?} now"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    converge(&nodes, &all, &expected);
    let f = (l + 1) % 3;
    nodes[f].restart();
    converge(&nodes, &all, &expected);
}

/// The members of a node's Raft group (`RILL.CLUSTER MEMBERS`): raft id and role each.
fn members(s: &TestServer) -> Vec<(String, String)> {
    let reply = text(&s.raw().cmd(&["RILL.CLUSTER", "MEMBERS"]));
    let lines: Vec<&str> = reply.split("\r\n").collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i] == "*3" {
            out.push((lines[i + 2].to_string(), lines[i + 4].to_string()));
            i += 6;
        } else {
            i += 1;
        }
    }
    out.sort();
    out
}

/// A node's raft id as MEMBERS shows it: the first 16 hex digits of its node id.
fn raft_id(s: &TestServer) -> String {
    let id = text(&s.raw().cmd(&["CLUSTER", "MYID"]));
    id.lines().nth(1).expect("id")[..16].to_string()
}

/// Membership changes (steps H–J): a node added to a running shard whose logs were
/// purged joins as a learner, installs the leader's snapshot (checkpoint + segments over
/// the bus: it cannot get the purged entries any other way), catches up from the log,
/// and is promoted; it then counts in the quorum (with one original replica dead, writes
/// need its acknowledgement). `del-node` removes the dead replica, and the shard of three
/// — the new node among them — survives its leader's death without losing a write.
#[test]
fn a_node_added_to_a_purged_shard_installs_a_snapshot_votes_and_a_dead_one_is_removed() {
    if ran_in_netns(
        "a_node_added_to_a_purged_shard_installs_a_snapshot_votes_and_a_dead_one_is_removed",
    ) {
        return;
    }
    let (mut nodes, l) = shard_and_leader();
    let all = [0, 1, 2];
    let mut c = nodes[l].raw();
    stream_with_group(&mut c, 300, 200, 40, 15);
    converge(&nodes, &all, &state(&nodes[l]));
    // Every replica purges: the early entries exist nowhere but in checkpoints.
    for i in all {
        checkpoint(&nodes[i]);
    }
    let purged = persisted(&nodes[l], "raft_first_index");
    assert!(
        purged > 2,
        "the leader's log was not purged: first index {purged}"
    );
    // Entries past the checkpoint, which the new node gets from the log.
    for i in 0..50 {
        assert!(c
            .cmd(&["XADD", "s", "*", "late", &i.to_string()])
            .starts_with(b"$"));
    }

    nodes.push(replica_with(&[]));
    let new = 3;
    let out = rill_ok(&[
        "cluster",
        "add-node",
        &addr(&nodes[new]),
        &addr(&nodes[l]),
        "--timeout",
        "60",
    ]);
    assert!(out.contains("is a voting replica"), "{out}");
    let expected = state(&nodes[l]);
    assert!(expected[0].starts_with(":350"), "{expected:?}");
    converge(&nodes, &[0, 1, 2, 3], &expected);
    // It started from the snapshot: its log begins past the leader's purge point.
    let first = persisted(&nodes[new], "raft_first_index");
    assert!(
        first >= purged,
        "the new node's log starts at {first}, before the leader's purge point {purged}: it did not install a snapshot"
    );
    let mut want: Vec<(String, String)> = nodes
        .iter()
        .map(|n| (raft_id(n), "voter".to_string()))
        .collect();
    want.sort();
    assert_eq!(members(&nodes[l]), want);
    rill_ok(&["cluster", "check", &addr(&nodes[new])]);

    // One original follower dies: three voters of four remain, a quorum only with the new
    // node's acknowledgements.
    let dead = all.iter().copied().find(|&i| i != l).expect("a follower");
    let dead_id = text(&nodes[dead].raw().cmd(&["CLUSTER", "MYID"]));
    let dead_id = dead_id.lines().nth(1).expect("id").to_string();
    nodes[dead].signal_and_wait(9);
    for i in 0..20 {
        let r = c.cmd(&["XADD", "s", "*", "quorum", &i.to_string()]);
        assert!(
            r.starts_with(b"$"),
            "XADD with the new voter in the quorum: {}",
            text(&r)
        );
    }
    let alive: Vec<usize> = (0..4).filter(|&i| i != dead).collect();
    let expected = state(&nodes[l]);
    converge(&nodes, &alive, &expected);

    // The dead node is removed; the shard is the leader, one original follower and the
    // new node.
    let out = rill_ok(&["cluster", "del-node", &addr(&nodes[l]), &dead_id]);
    assert!(out.contains("Removing node"), "{out}");
    assert_eq!(members(&nodes[l]).len(), 3);
    let map = text(&nodes[new].raw().cmd(&["RILL.CLUSTER", "TOPOLOGY"]));
    assert!(!map.contains(&dead_id), "{map}");

    // The leader dies too: two voters of three elect a new leader that has every write.
    nodes[l].signal_and_wait(9);
    let rest: Vec<usize> = alive.iter().copied().filter(|&i| i != l).collect();
    let l2 = leader(&nodes, &rest, Duration::from_secs(15));
    assert_eq!(state(&nodes[l2]), expected);
    let mut c2 = nodes[l2].raw();
    assert!(c2.cmd(&["XADD", "s", "*", "after", "1"]).starts_with(b"$"));
    converge(&nodes, &rest, &state(&nodes[l2]));
}

/// `del-node` of the shard's live leader: leadership moves to another member first, the
/// group drops the old leader, the others get a map without it, it is shut down, and the
/// shard of two goes on taking writes with everything acknowledged before.
#[test]
fn del_node_of_the_leader_hands_leadership_over_and_shuts_it_down() {
    if ran_in_netns("del_node_of_the_leader_hands_leadership_over_and_shuts_it_down") {
        return;
    }
    let (mut nodes, l) = shard_and_leader();
    let mut c = nodes[l].raw();
    for i in 0..100 {
        assert!(c
            .cmd(&["XADD", "s", "*", "n", &i.to_string()])
            .starts_with(b"$"));
    }
    let expected = state(&nodes[l]);
    converge(&nodes, &[0, 1, 2], &expected);
    let id = text(&nodes[l].raw().cmd(&["CLUSTER", "MYID"]));
    let id = id.lines().nth(1).expect("id").to_string();
    let other = (l + 1) % 3;
    let out = rill_ok(&["cluster", "del-node", &addr(&nodes[other]), &id]);
    assert!(out.contains("transferring leadership"), "{out}");
    assert!(
        nodes[l].wait_exit(Duration::from_secs(10)).is_some(),
        "the removed node is still running"
    );
    let rest: Vec<usize> = (0..3).filter(|&i| i != l).collect();
    let l2 = leader(&nodes, &rest, Duration::from_secs(10));
    assert_eq!(members(&nodes[l2]).len(), 2);
    assert_eq!(state(&nodes[l2]), expected);
    let map = text(&nodes[l2].raw().cmd(&["RILL.CLUSTER", "TOPOLOGY"]));
    assert!(!map.contains(&id), "{map}");
    let mut c2 = nodes[l2].raw();
    assert!(c2.cmd(&["XADD", "s", "*", "after", "1"]).starts_with(b"$"));
    converge(&nodes, &rest, &state(&nodes[l2]));
}
