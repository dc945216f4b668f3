//! Cluster mode (issue #13) on real `rill` processes on loopback: `rill cluster create` over
//! three nodes, the CLUSTER replies built from the map it made, MOVED / CROSSSLOT /
//! CLUSTERDOWN in Redis's exact texts (MULTI/EXEC and multi-stream XREAD included), the
//! per-slot key index, a restart that keeps the node id and the map, and `rill cluster
//! check` passing, then failing once a node is down. Moving slots: ASK / ASKING / TRYAGAIN
//! on an open slot, `rill cluster reshard` while clients write and read through a group,
//! `rebalance`, and a source or target SIGKILLed mid-move, finished by `rill cluster fix`,
//! with every acknowledged XADD and pending entry checked afterwards.
//!
//! Where the nodes run: each test re-executes itself inside a private network namespace
//! (`unshare -rn`, see `common::netns`), where every 127.0.0.x address is the test's own,
//! and gives each node its own address, 127.0.0.11, .12, .13 …, all on port 7000, as
//! nodes on separate machines would be. Where no namespace can be made the test says
//! `SKIPPED namespace: …` on stderr and runs its nodes on 127.0.0.1, each on a free port.

mod common;

use std::collections::HashMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use common::cluster_nodes::{
    addr, next_address, node, node_with, ran_in_netns, rill, rill_command, rill_ok, succeeded,
};
use common::netns::in_netns;
use common::{Raw, TestServer};
use redis::Value;

fn text(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::VerbatimString { text, .. } => text.clone(),
        other => panic!("not text: {other:?}"),
    }
}

fn int(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        other => panic!("not an integer: {other:?}"),
    }
}

fn cmd(args: &[&str]) -> redis::Cmd {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    c
}

fn query(s: &TestServer, args: &[&str]) -> Value {
    cmd(args).query(&mut s.conn()).expect("query")
}

/// `field:value` lines of an INFO-like text.
fn fields(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Three nodes made into one cluster by `rill cluster create`.
fn create_cluster() -> Vec<TestServer> {
    let nodes: Vec<TestServer> = (0..3).map(|_| node()).collect();
    let addrs: Vec<String> = nodes.iter().map(addr).collect();
    if in_netns() {
        assert_eq!(
            addrs,
            ["127.0.0.11:7000", "127.0.0.12:7000", "127.0.0.13:7000"]
        );
    }
    let mut args = vec!["cluster", "create"];
    args.extend(addrs.iter().map(String::as_str));
    let stdout = rill_ok(&args);
    assert!(stdout.contains("Master[0] -> Slots 0 - 5460"), "{stdout}");
    assert!(
        stdout.contains("Master[1] -> Slots 5461 - 10922"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Master[2] -> Slots 10923 - 16383"),
        "{stdout}"
    );
    assert!(stdout.contains("[OK] All 16384 slots covered."), "{stdout}");
    nodes
}

/// The node (index) that owns `slot` in the three-node layout.
fn owner_index(slot: i64) -> usize {
    match slot {
        0..=5460 => 0,
        5461..=10922 => 1,
        _ => 2,
    }
}

fn keyslot(s: &TestServer, key: &str) -> i64 {
    int(&query(s, &["CLUSTER", "KEYSLOT", key]))
}

/// A key whose slot node `i` owns, with a given prefix.
fn key_on(nodes: &[TestServer], i: usize, prefix: &str) -> (String, i64) {
    (0..)
        .map(|n| format!("{prefix}{n}"))
        .map(|k| {
            let slot = keyslot(&nodes[0], &k);
            (k, slot)
        })
        .find(|(_, slot)| owner_index(*slot) == i)
        .expect("some key")
}

#[test]
fn create_reports_the_map_on_every_node_in_redis_shapes() {
    if ran_in_netns("create_reports_the_map_on_every_node_in_redis_shapes") {
        return;
    }
    let nodes = create_cluster();
    let ids: Vec<String> = nodes
        .iter()
        .map(|n| text(&query(n, &["CLUSTER", "MYID"])))
        .collect();
    for id in &ids {
        assert_eq!(id.len(), 40);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    }
    let ranges = [(0, 5460), (5461, 10922), (10923, 16383)];
    for n in &nodes {
        // CLUSTER SLOTS: [start, end, [ip, port, id, {}]] per range, in slot order.
        let Value::Array(entries) = query(n, &["CLUSTER", "SLOTS"]) else {
            panic!("SLOTS is not an array");
        };
        assert_eq!(entries.len(), 3);
        for (i, entry) in entries.iter().enumerate() {
            let Value::Array(parts) = entry else {
                panic!("slot entry is not an array")
            };
            assert_eq!(parts.len(), 3, "one node per shard");
            assert_eq!((int(&parts[0]), int(&parts[1])), ranges[i]);
            let Value::Array(master) = &parts[2] else {
                panic!("node is not an array")
            };
            assert_eq!(text(&master[0]), nodes[i].host.to_string());
            assert_eq!(int(&master[1]), i64::from(nodes[i].port));
            assert_eq!(text(&master[2]), ids[i]);
            assert_eq!(master[3], Value::Array(vec![]), "RESP2 empty map");
        }

        // CLUSTER NODES: one line per node, `myself` on this one.
        let lines = text(&query(n, &["CLUSTER", "NODES"]));
        let lines: Vec<&str> = lines.lines().collect();
        assert_eq!(lines.len(), 3);
        for (i, id) in ids.iter().enumerate() {
            let line = lines
                .iter()
                .find(|l| l.starts_with(id.as_str()))
                .expect("every node listed");
            let f: Vec<&str> = line.split(' ').collect();
            let port = nodes[i].port;
            assert_eq!(f[1], format!("{}@{}", addr(&nodes[i]), port + 10000));
            let myself = addr(n) == addr(&nodes[i]);
            assert_eq!(
                f[2],
                if myself { "myself,master" } else { "master" },
                "{line}"
            );
            assert_eq!(&f[3..8], &["-", "0", "0", "1", "connected"]);
            assert_eq!(f[8], format!("{}-{}", ranges[i].0, ranges[i].1));
        }

        let info = fields(&text(&query(n, &["CLUSTER", "INFO"])));
        assert_eq!(info["cluster_state"], "ok");
        assert_eq!(info["cluster_slots_assigned"], "16384");
        assert_eq!(info["cluster_slots_ok"], "16384");
        assert_eq!(info["cluster_known_nodes"], "3");
        assert_eq!(info["cluster_size"], "3");
        assert_eq!(info["cluster_current_epoch"], "1");

        let server_info = text(&query(n, &["INFO", "cluster"]));
        assert!(server_info.contains("cluster_enabled:1"), "{server_info}");
    }

    // CLUSTER SHARDS over RESP3: maps with slots and nodes, the shard ids MYSHARDID gives.
    let mut c = nodes[1].conn3();
    let shards: Value = redis::cmd("CLUSTER")
        .arg("SHARDS")
        .query(&mut c)
        .expect("shards");
    let Value::Array(shards) = shards else {
        panic!("SHARDS is not an array")
    };
    assert_eq!(shards.len(), 3);
    for (i, shard) in shards.iter().enumerate() {
        let Value::Map(kv) = shard else {
            panic!("shard is not a map: {shard:?}")
        };
        assert_eq!(text(&kv[0].0), "slots");
        assert_eq!(
            kv[0].1,
            Value::Array(vec![Value::Int(ranges[i].0), Value::Int(ranges[i].1)])
        );
        assert_eq!(text(&kv[1].0), "nodes");
        let Value::Array(members) = &kv[1].1 else {
            panic!("nodes is not an array")
        };
        let Value::Map(member) = &members[0] else {
            panic!("node is not a map")
        };
        let names: Vec<String> = member.iter().map(|(k, _)| text(k)).collect();
        assert_eq!(
            names,
            [
                "id",
                "port",
                "ip",
                "endpoint",
                "role",
                "replication-offset",
                "health"
            ]
        );
        assert_eq!(text(&member[0].1), ids[i]);
        assert_eq!(int(&member[1].1), i64::from(nodes[i].port));
        assert_eq!(text(&member[4].1), "master");
        assert_eq!(text(&member[6].1), "online");
    }
    let shard_ids: Vec<String> = nodes
        .iter()
        .map(|n| text(&query(n, &["CLUSTER", "MYSHARDID"])))
        .collect();
    assert!(shard_ids[0] != shard_ids[1] && shard_ids[1] != shard_ids[2]);
}

#[test]
fn keyed_commands_are_routed_with_redis_texts() {
    if ran_in_netns("keyed_commands_are_routed_with_redis_texts") {
        return;
    }
    let nodes = create_cluster();
    let (key, slot) = key_on(&nodes, 2, "stream:");
    // Asked on the wrong node: MOVED to the owner, nothing written there.
    let mut wrong = nodes[0].raw();
    assert_eq!(
        wrong.cmd(&["XADD", &key, "*", "f", "v"]),
        format!("-MOVED {slot} {}\r\n", addr(&nodes[2])).into_bytes()
    );
    assert_eq!(
        wrong.cmd(&["DBSIZE"]),
        b":0\r\n",
        "keyless commands run here"
    );
    // On the owner it runs.
    let mut right = nodes[2].raw();
    assert!(right
        .cmd(&["XADD", &key, "1-1", "f", "v"])
        .starts_with(b"$3\r\n1-1"));
    assert_eq!(right.cmd(&["XLEN", &key]), b":1\r\n");
    // Subcommand keys count too.
    assert_eq!(
        wrong.cmd(&["XGROUP", "CREATE", &key, "g", "0"]),
        format!("-MOVED {slot} {}\r\n", addr(&nodes[2])).into_bytes()
    );
    assert_eq!(right.cmd(&["XGROUP", "CREATE", &key, "g", "0"]), b"+OK\r\n");

    // Keys in two slots: CROSSSLOT, even when this node owns both.
    let (a, sa) = key_on(&nodes, 2, "a:");
    let (b, sb) = key_on(&nodes, 2, "b:");
    assert_ne!(sa, sb);
    let crossslot = b"-CROSSSLOT Keys in request don't hash to the same slot\r\n".to_vec();
    assert_eq!(right.cmd(&["DEL", &a, &b]), crossslot);
    assert_eq!(
        right.cmd(&["XREAD", "STREAMS", &a, &b, "0", "0"]),
        crossslot
    );
    assert_eq!(
        right.cmd(&["XREADGROUP", "GROUP", "g", "c", "STREAMS", &a, &b, ">", ">"]),
        crossslot
    );
    assert_eq!(right.cmd(&["RENAME", &a, &b]), crossslot);
    // Hash tags put keys in one slot: multi-stream reads work.
    let t1 = format!("{{{key}}}.one");
    let t2 = format!("{{{key}}}.two");
    assert_eq!(right.cmd(&["XADD", &t1, "1-1", "f", "v"]), b"$3\r\n1-1\r\n");
    assert!(right
        .cmd(&["XREAD", "STREAMS", &t1, &t2, "0", "0"])
        .starts_with(b"*1\r\n"));

    // MULTI: a queued command for another node aborts EXEC, as Redis's flagTransaction.
    assert_eq!(right.cmd(&["MULTI"]), b"+OK\r\n");
    let (elsewhere, eslot) = key_on(&nodes, 0, "x:");
    assert_eq!(
        right.cmd(&["XADD", &elsewhere, "*", "f", "v"]),
        format!("-MOVED {eslot} {}\r\n", addr(&nodes[0])).into_bytes()
    );
    assert_eq!(right.cmd(&["XLEN", &key]), b"+QUEUED\r\n");
    assert_eq!(
        right.cmd(&["EXEC"]),
        b"-EXECABORT Transaction discarded because of previous errors.\r\n"
    );
    // Queued commands each in one slot but not the same one: EXEC answers CROSSSLOT and
    // the transaction is gone (Redis's discardTransaction).
    assert_eq!(right.cmd(&["MULTI"]), b"+OK\r\n");
    assert_eq!(right.cmd(&["XADD", &a, "1-1", "f", "v"]), b"+QUEUED\r\n");
    assert_eq!(right.cmd(&["XADD", &b, "1-1", "f", "v"]), b"+QUEUED\r\n");
    assert_eq!(right.cmd(&["EXEC"]), crossslot);
    assert_eq!(right.cmd(&["EXEC"]), b"-ERR EXEC without MULTI\r\n");
    assert_eq!(right.cmd(&["EXISTS", &a]), b":0\r\n", "nothing ran");
    // Same slot: the transaction runs.
    assert_eq!(right.cmd(&["MULTI"]), b"+OK\r\n");
    assert_eq!(right.cmd(&["XADD", &t1, "2-1", "f", "v"]), b"+QUEUED\r\n");
    assert_eq!(right.cmd(&["XLEN", &t1]), b"+QUEUED\r\n");
    assert_eq!(right.cmd(&["EXEC"]), b"*2\r\n$3\r\n2-1\r\n:2\r\n");

    // SELECT n != 0 is refused; connection flags answer +OK.
    assert_eq!(
        right.cmd(&["SELECT", "1"]),
        b"-ERR SELECT is not allowed in cluster mode\r\n"
    );
    assert_eq!(right.cmd(&["SELECT", "0"]), b"+OK\r\n");
    for flag in ["READONLY", "READWRITE", "ASKING"] {
        assert_eq!(right.cmd(&[flag]), b"+OK\r\n", "{flag}");
    }
    // Topology is the CLI's: Redis's hand-made changes are refused, naming it.
    let meet = String::from_utf8(right.cmd(&["CLUSTER", "MEET", "127.0.0.1", "1"])).expect("utf8");
    assert!(
        meet.starts_with("-ERR CLUSTER MEET is not supported")
            && meet.contains("rill cluster create"),
        "{meet}"
    );
    let addslots = String::from_utf8(right.cmd(&["CLUSTER", "ADDSLOTS", "1"])).expect("utf8");
    assert!(addslots.contains("rill cluster create"), "{addslots}");
}

#[test]
fn slot_key_index_counts_and_lists_keys() {
    if ran_in_netns("slot_key_index_counts_and_lists_keys") {
        return;
    }
    let nodes = create_cluster();
    let (key, slot) = key_on(&nodes, 1, "s:");
    let tagged: Vec<String> = (0..5).map(|i| format!("{{{key}}}:{i}")).collect();
    let mut c = nodes[1].raw();
    for k in &tagged {
        assert!(c.cmd(&["XADD", k, "*", "f", "v"]).starts_with(b"$"));
    }
    let slot_s = slot.to_string();
    assert_eq!(c.cmd(&["CLUSTER", "COUNTKEYSINSLOT", &slot_s]), b":5\r\n");
    let Value::Array(listed) = query(&nodes[1], &["CLUSTER", "GETKEYSINSLOT", &slot_s, "3"]) else {
        panic!("not an array")
    };
    assert_eq!(listed.len(), 3);
    for k in &listed {
        assert!(tagged.contains(&text(k)));
    }
    assert_eq!(c.cmd(&["DEL", &tagged[0]]), b":1\r\n");
    assert_eq!(c.cmd(&["CLUSTER", "COUNTKEYSINSLOT", &slot_s]), b":4\r\n");
    assert_eq!(
        c.cmd(&["CLUSTER", "COUNTKEYSINSLOT", "16384"]),
        b"-ERR Invalid slot\r\n"
    );
    assert_eq!(
        c.cmd(&["CLUSTER", "GETKEYSINSLOT", "1", "-1"]),
        b"-ERR Invalid slot or number of keys\r\n"
    );
}

#[test]
fn a_restarted_node_keeps_its_id_map_and_keys() {
    if ran_in_netns("a_restarted_node_keeps_its_id_map_and_keys") {
        return;
    }
    let mut nodes = create_cluster();
    let (key, slot) = key_on(&nodes, 0, "r:");
    let mut c = nodes[0].raw();
    assert!(c.cmd(&["XADD", &key, "*", "f", "v"]).starts_with(b"$"));
    let id = text(&query(&nodes[0], &["CLUSTER", "MYID"]));
    let slots = query(&nodes[0], &["CLUSTER", "SLOTS"]);
    let conf = std::fs::read_to_string(nodes[0].dir.join("nodes.conf")).expect("nodes.conf");
    assert!(conf.contains(&format!("myself {id}")), "{conf}");

    nodes[0].restart();
    assert_eq!(text(&query(&nodes[0], &["CLUSTER", "MYID"])), id);
    assert_eq!(query(&nodes[0], &["CLUSTER", "SLOTS"]), slots);
    let slot_s = slot.to_string();
    assert_eq!(
        int(&query(&nodes[0], &["CLUSTER", "COUNTKEYSINSLOT", &slot_s])),
        1,
        "the slot index is rebuilt from the log"
    );
    let mut c = nodes[0].raw();
    assert_eq!(c.cmd(&["XLEN", &key]), b":1\r\n");
    rill_ok(&["cluster", "check", &addr(&nodes[0])]);
}

#[test]
fn check_fails_when_a_node_is_down() {
    if ran_in_netns("check_fails_when_a_node_is_down") {
        return;
    }
    let mut nodes = create_cluster();
    let stdout = rill_ok(&["cluster", "check", &addr(&nodes[1])]);
    assert!(
        stdout.contains("[OK] All nodes agree about slots configuration."),
        "{stdout}"
    );

    let down_id = text(&query(&nodes[2], &["CLUSTER", "MYID"]));
    assert!(nodes[2].signal_and_wait(9).is_some());
    let bad = rill(&["cluster", "check", &addr(&nodes[0])]);
    let stdout = String::from_utf8_lossy(&bad.stdout);
    assert_eq!(bad.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!("[ERR] {down_id} {}", addr(&nodes[2]))),
        "{stdout}"
    );
}

#[test]
fn create_refuses_nodes_already_in_a_cluster_and_foreign_maps() {
    if ran_in_netns("create_refuses_nodes_already_in_a_cluster_and_foreign_maps") {
        return;
    }
    let nodes = create_cluster();
    let fresh = node();
    let out = rill(&["cluster", "create", &addr(&nodes[0]), &addr(&fresh)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already part of a cluster"));

    let other = node();
    // Before create every slot is unassigned: keyed commands get CLUSTERDOWN.
    let mut c = other.raw();
    assert_eq!(
        c.cmd(&["SET", "k", "v"]),
        b"-CLUSTERDOWN Hash slot not served\r\n"
    );
    let out = rill(&["cluster", "create", &addr(&fresh), &addr(&fresh)]);
    assert_eq!(out.status.code(), Some(1), "the same node twice");
    // A map that does not list the node is refused by the node itself.
    let foreign = "rill-cluster 1\nepoch 1\nshard 0000000000000000000000000000000000000001 0-16383\nnode 0000000000000000000000000000000000000001 0000000000000000000000000000000000000002 127.0.0.1 1 10001\n";
    let refused =
        String::from_utf8(c.cmd(&["RILL.CLUSTER", "SETTOPOLOGY", foreign])).expect("utf8");
    assert!(
        refused.starts_with("-ERR the shard map does not include this node"),
        "{refused}"
    );
}

#[test]
fn a_node_before_create_answers_as_an_empty_redis_cluster_node() {
    if ran_in_netns("a_node_before_create_answers_as_an_empty_redis_cluster_node") {
        return;
    }
    let n = node();
    let mut c = n.raw();
    assert_eq!(
        c.cmd(&["XADD", "s", "*", "f", "v"]),
        b"-CLUSTERDOWN Hash slot not served\r\n"
    );
    assert_eq!(c.cmd(&["PING"]), b"+PONG\r\n");
    assert_eq!(c.cmd(&["CLUSTER", "SLOTS"]), b"*0\r\n");
    assert_eq!(
        c.cmd(&["CLUSTER", "MYSHARDID"]),
        b"-ERR No shard ID yet\r\n"
    );
    let info = fields(&text(&query(&n, &["CLUSTER", "INFO"])));
    assert_eq!(info["cluster_state"], "fail");
    assert_eq!(info["cluster_slots_assigned"], "0");
    assert_eq!(info["cluster_known_nodes"], "1");
    let nodes = text(&query(&n, &["CLUSTER", "NODES"]));
    let id = text(&query(&n, &["CLUSTER", "MYID"]));
    assert_eq!(
        nodes,
        format!(
            "{id} :{}@{} myself,master - 0 0 0 connected\n",
            n.port,
            n.port + 10000
        )
    );
    let check = rill(&["cluster", "check", &addr(&n)]);
    assert_eq!(check.status.code(), Some(1));
}

#[test]
fn without_cluster_mode_cluster_commands_are_disabled_and_directives_show() {
    if ran_in_netns("without_cluster_mode_cluster_commands_are_disabled_and_directives_show") {
        return;
    }
    let s = TestServer::start();
    let mut c = s.raw();
    let disabled = b"-ERR This instance has cluster support disabled\r\n".to_vec();
    for cmd in [
        &["CLUSTER", "INFO"][..],
        &["CLUSTER", "KEYSLOT", "k"],
        &["CLUSTER", "MEET", "127.0.0.1", "1"],
        &["READONLY"],
        &["ASKING"],
        &["RILL.CLUSTER", "TOPOLOGY"],
    ] {
        assert_eq!(c.cmd(cmd), disabled, "{cmd:?}");
    }
    assert_eq!(c.cmd(&["SELECT", "1"]), b"+OK\r\n");
    assert_eq!(c.cmd(&["SET", "k", "v"]), b"+OK\r\n");
    let info = text(&query(&s, &["INFO", "cluster"]));
    assert!(info.contains("cluster_enabled:0"), "{info}");
    let Value::Array(kv) = query(&s, &["CONFIG", "GET", "cluster-*"]) else {
        panic!("not an array")
    };
    let got: HashMap<String, String> = kv.chunks(2).map(|p| (text(&p[0]), text(&p[1]))).collect();
    assert_eq!(got["cluster-enabled"], "no");
    assert_eq!(got["cluster-config-file"], "nodes.conf");
    assert_eq!(got["cluster-node-timeout"], "15000");
    assert_eq!(got["cluster-announce-ip"], "");
    assert_eq!(got["cluster-announce-port"], "0");
    assert_eq!(got["cluster-port"], "0");
    assert!(
        !s.dir.join("nodes.conf").exists(),
        "no cluster config file outside cluster mode"
    );
}

#[test]
fn blocked_readers_are_moved_when_their_slot_leaves_the_node() {
    if ran_in_netns("blocked_readers_are_moved_when_their_slot_leaves_the_node") {
        return;
    }
    let nodes = create_cluster();
    let (key, slot) = key_on(&nodes, 0, "blocked:");
    let mut reader = nodes[0].raw();
    reader.send(&common::encode(&[
        "XREAD", "BLOCK", "0", "STREAMS", &key, "$",
    ]));
    nodes[0].wait_blocked(1);
    // A newer map that gives node 0's range to node 1 and node 1's to node 0.
    let Value::BulkString(map) = query(&nodes[0], &["RILL.CLUSTER", "TOPOLOGY"]) else {
        panic!("TOPOLOGY is not a bulk string")
    };
    let map = String::from_utf8(map)
        .expect("utf8")
        .replace("epoch 1", "epoch 2")
        .replace(" 0-5460", " SWAP")
        .replace(" 5461-10922", " 0-5460")
        .replace(" SWAP", " 5461-10922");
    let mut admin = nodes[0].raw();
    assert_eq!(
        admin.cmd(&["RILL.CLUSTER", "SETTOPOLOGY", &map]),
        b"+OK\r\n"
    );
    assert_eq!(
        reader.read_reply(),
        format!("-MOVED {slot} {}\r\n", addr(&nodes[1])).into_bytes()
    );
    nodes[0].wait_blocked(0);
    // An older map is refused.
    let old = map.replace("epoch 2", "epoch 1");
    let refused =
        String::from_utf8(admin.cmd(&["RILL.CLUSTER", "SETTOPOLOGY", &old])).expect("utf8");
    assert!(
        refused.starts_with("-ERR the shard map has epoch 1, older"),
        "{refused}"
    );
}

#[test]
fn announced_addresses_are_what_the_map_and_redirects_show() {
    if ran_in_netns("announced_addresses_are_what_the_map_and_redirects_show") {
        return;
    }
    // Node B listens on its own address (for the harness) and 127.0.0.2, and announces the
    // latter with another port number written in: the map, MOVED and `check` use the
    // announced address.
    let a = node();
    let (host_b, port_b) = next_address();
    let bind_b = host_b.to_string();
    let b = TestServer::start_on(
        host_b,
        &[
            "--cluster-enabled",
            "yes",
            "--port",
            &port_b,
            "--bind",
            &bind_b,
            "127.0.0.2",
            "--cluster-announce-ip",
            "127.0.0.2",
            "--cluster-port",
            "7999",
        ],
    );
    rill_ok(&["cluster", "create", &addr(&a), &addr(&b)]);
    let Value::Array(slots) = query(&a, &["CLUSTER", "SLOTS"]) else {
        panic!("not an array")
    };
    let Value::Array(second) = &slots[1] else {
        panic!("not an array")
    };
    let Value::Array(node_b) = &second[2] else {
        panic!("not an array")
    };
    assert_eq!(text(&node_b[0]), "127.0.0.2");
    assert_eq!(int(&node_b[1]), i64::from(b.port));
    let nodes = text(&query(&b, &["CLUSTER", "NODES"]));
    assert!(
        nodes.contains(&format!("127.0.0.2:{}@7999 myself,master", b.port)),
        "{nodes}"
    );
    let (key, slot) = (0..)
        .map(|i| format!("k{i}"))
        .map(|k| {
            let s = keyslot(&a, &k);
            (k, s)
        })
        .find(|(_, s)| *s >= 8192)
        .expect("a key of B");
    let mut c = a.raw();
    assert_eq!(
        c.cmd(&["XADD", &key, "*", "f", "v"]),
        format!("-MOVED {slot} 127.0.0.2:{}\r\n", b.port).into_bytes()
    );
    rill_ok(&["cluster", "check", &addr(&a)]);
}

#[test]
fn the_cli_authenticates_with_a_password() {
    if ran_in_netns("the_cli_authenticates_with_a_password") {
        return;
    }
    let start = || node_with(&["--requirepass", "s3cret"]);
    let (a, b) = (start(), start());
    let without = rill(&["cluster", "create", &addr(&a), &addr(&b)]);
    assert_eq!(without.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&without.stderr).contains("NOAUTH"));
    rill_ok(&["cluster", "create", "-a", "s3cret", &addr(&a), &addr(&b)]);
    rill_ok(&["cluster", "check", "--pass", "s3cret", &addr(&b)]);
    let mut c = a.raw();
    assert_eq!(c.cmd(&["AUTH", "s3cret"]), b"+OK\r\n");
    assert!(c
        .cmd(&["CLUSTER", "INFO"])
        .windows(16)
        .any(|w| w == b"cluster_state:ok"));
}

/// `--user`: the CLI authenticates as an ACL user (`AUTH user pass`), and the slot moves
/// it drives do too (RILL.MIGRATE … AUTH2 user pass), with the default user off.
#[test]
fn the_cli_authenticates_as_an_acl_user() {
    if ran_in_netns("the_cli_authenticates_as_an_acl_user") {
        return;
    }
    let start = || {
        node_with(&[
            "--user", "default", "off", "--user", "admin", "on", ">pw", "~*", "&*", "+@all",
        ])
    };
    let (a, b) = (start(), start());
    let without = rill(&["cluster", "create", "-a", "pw", &addr(&a), &addr(&b)]);
    assert_eq!(without.status.code(), Some(2), "{without:?}");
    rill_ok(&[
        "cluster",
        "create",
        "--user",
        "admin",
        "-a",
        "pw",
        &addr(&a),
        &addr(&b),
    ]);
    let login = |s: &TestServer| {
        let mut c = s.raw();
        assert_eq!(c.cmd(&["AUTH", "admin", "pw"]), b"+OK\r\n");
        c
    };
    let (mut ca, mut cb) = (login(&a), login(&b));
    // A key in the first node's lowest 32 slots (the ones a reshard moves first).
    let key = (0..100_000)
        .map(|i| format!("u{i}"))
        .find(|k| {
            let slot = String::from_utf8_lossy(&ca.cmd(&["CLUSTER", "KEYSLOT", k])).into_owned();
            slot.trim_start_matches(':')
                .trim_end()
                .parse::<u16>()
                .is_ok_and(|s| s < 32)
        })
        .expect("a key of the first node");
    assert_eq!(ca.cmd(&["XADD", &key, "1-1", "f", "v"]), b"$3\r\n1-1\r\n");
    // `$40\r\n<id>\r\n`.
    let id = |c: &mut Raw| {
        let reply = String::from_utf8_lossy(&c.cmd(&["CLUSTER", "MYID"])).into_owned();
        reply.lines().nth(1).unwrap_or_default().to_string()
    };
    let (ida, idb) = (id(&mut ca), id(&mut cb));
    reshard(&a, &ida, &idb, 32, &["--user", "admin", "--pass", "pw"]);
    assert_eq!(cb.cmd(&["XLEN", &key]), b":1\r\n");
    rill_ok(&[
        "cluster",
        "check",
        "--user",
        "admin",
        "--pass",
        "pw",
        &addr(&b),
    ]);
}

#[test]
fn the_slot_index_is_rebuilt_from_a_checkpoint() {
    if ran_in_netns("the_slot_index_is_rebuilt_from_a_checkpoint") {
        return;
    }
    let mut nodes = create_cluster();
    let (key, slot) = key_on(&nodes, 1, "ckp:");
    let keys: Vec<String> = (0..4).map(|i| format!("{{{key}}}{i}")).collect();
    let mut c = nodes[1].raw();
    for k in &keys {
        assert!(c.cmd(&["XADD", k, "*", "f", "v"]).starts_with(b"$"));
    }
    assert_eq!(c.cmd(&["BGREWRITEAOF"]).first(), Some(&b'+'));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let has_ckp = std::fs::read_dir(nodes[1].dir.join("log"))
            .expect("log dir")
            .any(|e| {
                e.expect("entry")
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".ckp")
            });
        let info = text(&query(&nodes[1], &["INFO", "persistence"]));
        if has_ckp && info.contains("aof_rewrite_in_progress:0") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint written"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    nodes[1].restart();
    let slot_s = slot.to_string();
    assert_eq!(
        int(&query(&nodes[1], &["CLUSTER", "COUNTKEYSINSLOT", &slot_s])),
        4
    );
    let Value::Array(listed) = query(&nodes[1], &["CLUSTER", "GETKEYSINSLOT", &slot_s, "10"])
    else {
        panic!("not an array")
    };
    let mut listed: Vec<String> = listed.iter().map(text).collect();
    listed.sort();
    assert_eq!(listed, keys);
}

#[test]
fn cluster_mode_refuses_a_data_set_with_keys_outside_database_0() {
    if ran_in_netns("cluster_mode_refuses_a_data_set_with_keys_outside_database_0") {
        return;
    }
    let mut s = TestServer::start();
    let mut c = s.raw();
    assert_eq!(c.cmd(&["SELECT", "3"]), b"+OK\r\n");
    assert!(c.cmd(&["XADD", "s", "*", "f", "v"]).starts_with(b"$"));
    drop(c);
    assert!(s.signal_and_wait(15).is_some());
    let mut child = Command::new(env!("CARGO_BIN_EXE_rill"))
        .args([
            "--port",
            "0",
            "--bind",
            "127.0.0.1",
            "--cluster-enabled",
            "yes",
            "--dir",
        ])
        .arg(&s.dir)
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run rill");
    // It must stop by itself; a server that kept running is killed and fails the test.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while child.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    assert!(!out.status.success());
    let log = String::from_utf8_lossy(&out.stdout);
    assert!(
        log.contains("Cluster mode serves database 0 only, but database 3 holds keys"),
        "{log}"
    );
}

#[test]
fn nodeinfo_follows_the_announce_directives() {
    if ran_in_netns("nodeinfo_follows_the_announce_directives") {
        return;
    }
    let n = node();
    let mut c = n.raw();
    let id = text(&query(&n, &["CLUSTER", "MYID"]));
    let info =
        |c: &mut Raw| String::from_utf8_lossy(&c.cmd(&["RILL.CLUSTER", "NODEINFO"])).into_owned();
    assert_eq!(
        info(&mut c),
        format!(
            "*4\r\n$40\r\n{id}\r\n$0\r\n\r\n:{}\r\n:{}\r\n",
            n.port,
            n.port + 10000
        )
    );
    assert_eq!(
        c.cmd(&["CONFIG", "SET", "cluster-announce-ip", "10.1.2.3"]),
        b"+OK\r\n"
    );
    assert_eq!(
        c.cmd(&["CONFIG", "SET", "cluster-announce-port", "7777"]),
        b"+OK\r\n"
    );
    assert_eq!(
        info(&mut c),
        format!(
            "*4\r\n$40\r\n{id}\r\n$8\r\n10.1.2.3\r\n:7777\r\n:{}\r\n",
            n.port + 10000
        ),
        "the bus port follows the port listened on"
    );
}

// ---------------------------------------------------------------------------------------
// Moving slots online: ASK / ASKING / TRYAGAIN, `rill cluster reshard` under load, and a
// source or target killed in the middle of a move.
// ---------------------------------------------------------------------------------------

fn ids(nodes: &[TestServer]) -> Vec<String> {
    nodes
        .iter()
        .map(|n| text(&query(n, &["CLUSTER", "MYID"])))
        .collect()
}

/// A hash tag whose slot node `i` owns and is below `below` (so that a reshard of the
/// owner's lowest slots moves it), different from the ones in `taken`.
fn tag_in(i: usize, below: u16, taken: &[String]) -> (String, u16) {
    (0..)
        .map(|n| format!("t{n}"))
        .filter(|t| !taken.contains(t))
        .map(|t| {
            let slot = rill::cluster::slot::key_slot(format!("{{{t}}}").as_bytes());
            (t, slot)
        })
        .find(|(_, slot)| owner_index(i64::from(*slot)) == i && slot_rank(i, *slot) < below)
        .expect("some tag")
}

/// A slot's position among its owner's slots in the three-node layout.
fn slot_rank(i: usize, slot: u16) -> u16 {
    slot - [0, 5461, 10923][i]
}

/// A cluster client as go-redis or redis-py are: sends a key's command to the node its map
/// says, learns from `-MOVED`, follows `-ASK` once with ASKING, retries `-TRYAGAIN`.
struct Follower {
    conns: HashMap<String, redis::Connection>,
    slots: HashMap<u16, String>,
    seed: String,
}

impl Follower {
    fn new_at(seed: String) -> Follower {
        Follower {
            conns: HashMap::new(),
            slots: HashMap::new(),
            seed,
        }
    }

    fn conn(&mut self, at: &str) -> redis::RedisResult<&mut redis::Connection> {
        if !self.conns.contains_key(at) {
            let c = redis::Client::open(format!("redis://{at}/"))?
                .get_connection_with_timeout(std::time::Duration::from_secs(5))?;
            c.set_read_timeout(Some(std::time::Duration::from_secs(20)))?;
            self.conns.insert(at.to_string(), c);
        }
        Ok(self.conns.get_mut(at).expect("just inserted"))
    }

    /// Runs `cmd` (whose keys hash to `key`'s slot) where the cluster says.
    fn run(&mut self, key: &str, cmd: &redis::Cmd) -> redis::RedisResult<Value> {
        let slot = rill::cluster::slot::key_slot(key.as_bytes());
        let mut at = self
            .slots
            .get(&slot)
            .cloned()
            .unwrap_or_else(|| self.seed.clone());
        let mut asking = false;
        let mut last = None;
        for _ in 0..200 {
            let result = self.conn(&at).and_then(|c| {
                if asking {
                    redis::pipe()
                        .cmd("ASKING")
                        .ignore()
                        .add_command(cmd.clone())
                        .query::<Vec<Value>>(c)
                        .map(|mut v| v.pop().unwrap_or(Value::Nil))
                } else {
                    cmd.query::<Value>(c)
                }
            });
            asking = false;
            match result {
                Err(e) if e.kind() == redis::ErrorKind::Moved => {
                    let (node, s) = e.redirect_node().expect("MOVED names a node");
                    at = node.to_string();
                    self.slots.insert(s, at.clone());
                }
                Err(e) if e.kind() == redis::ErrorKind::Ask => {
                    at = e.redirect_node().expect("ASK names a node").0.to_string();
                    asking = true;
                }
                Err(e) if e.kind() == redis::ErrorKind::TryAgain => {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                    last = Some(e);
                }
                Err(e) => {
                    // A broken connection is opened again next time.
                    self.conns.remove(&at);
                    return Err(e);
                }
                Ok(v) => return Ok(v),
            }
        }
        Err(last.unwrap_or_else(|| {
            redis::RedisError::from((redis::ErrorKind::TryAgain, "too many redirects"))
        }))
    }
}

/// The IDs of a stream's entries, as a node answers XRANGE.
fn stream_ids(s: &TestServer, key: &str) -> Vec<String> {
    let Value::Array(entries) = query(s, &["XRANGE", key, "-", "+"]) else {
        panic!("XRANGE is not an array")
    };
    entries
        .iter()
        .map(|e| match e {
            Value::Array(parts) => text(&parts[0]),
            other => panic!("not an entry: {other:?}"),
        })
        .collect()
}

/// The IDs pending in a group, as a node answers XPENDING's extended form.
fn pending_ids(s: &TestServer, key: &str, group: &str) -> Vec<(String, String, i64)> {
    let Value::Array(rows) = query(s, &["XPENDING", key, group, "-", "+", "1000000"]) else {
        panic!("XPENDING is not an array")
    };
    rows.iter()
        .map(|r| match r {
            Value::Array(p) => (text(&p[0]), text(&p[1]), int(&p[3])),
            other => panic!("not a pending entry: {other:?}"),
        })
        .collect()
}

fn setslot(s: &TestServer, slot: u16, what: &str, id: Option<&str>) {
    let slot = slot.to_string();
    let mut args = vec!["RILL.CLUSTER", "SETSLOT", &slot, what];
    args.extend(id);
    assert_eq!(query(s, &args), Value::Okay);
}

/// A node's open slots, as RILL.CLUSTER SLOTSTATES answers.
fn slot_states(s: &TestServer) -> Vec<Value> {
    let Value::Array(states) = query(s, &["RILL.CLUSTER", "SLOTSTATES"]) else {
        panic!("SLOTSTATES is not an array")
    };
    states
}

/// CLUSTER SLOTS on `at`: each range, and the id of the node serving it.
fn slot_ranges(at: &TestServer) -> Vec<(i64, i64, String)> {
    let Value::Array(ranges) = query(at, &["CLUSTER", "SLOTS"]) else {
        panic!("SLOTS is not an array")
    };
    ranges
        .iter()
        .map(|r| {
            let Value::Array(p) = r else {
                panic!("not a range: {r:?}")
            };
            let Value::Array(master) = &p[2] else {
                panic!("node is not an array")
            };
            (int(&p[0]), int(&p[1]), text(&master[2]))
        })
        .collect()
}

/// `rill cluster reshard` through `at`, moving `slots` slots from node `from` to node `to`
/// without asking, with `extra` arguments.
fn reshard_command(at: &TestServer, from: &str, to: &str, slots: u16, extra: &[&str]) -> Command {
    let (at, slots) = (addr(at), slots.to_string());
    let mut args = vec![
        "cluster", "reshard", &at, "--from", from, "--to", to, "--slots", &slots, "--yes",
    ];
    args.extend_from_slice(extra);
    rill_command(&args)
}

/// `reshard_command`, run to its end, which must be a success.
fn reshard(at: &TestServer, from: &str, to: &str, slots: u16, extra: &[&str]) {
    let out = reshard_command(at, from, to, slots, extra)
        .output()
        .expect("run rill cluster reshard");
    succeeded(&out, "rill cluster reshard");
}

/// XREADGROUP of up to `count` new entries of `key` for consumer `c` of group `g`.
fn read_group(key: &str, count: usize) -> redis::Cmd {
    let count = count.to_string();
    cmd(&[
        "XREADGROUP",
        "GROUP",
        "g",
        "c",
        "COUNT",
        &count,
        "STREAMS",
        key,
        ">",
    ])
}

/// Stream `key` with the entries `ids` (field `f`, the value its position), group `g`
/// from the start, the first two delivered to consumer `c` and the first acknowledged:
/// one entry pending.
fn stream_with_pending(c: &mut redis::Connection, key: &str, ids: &[String]) {
    for (j, id) in ids.iter().enumerate() {
        let _: String = cmd(&["XADD", key, id, "f", &j.to_string()])
            .query(c)
            .expect("XADD");
    }
    let _: () = cmd(&["XGROUP", "CREATE", key, "g", "0"])
        .query(c)
        .expect("XGROUP");
    let _: Value = read_group(key, 2).query(c).expect("XREADGROUP");
    let _: i64 = cmd(&["XACK", key, "g", &ids[0]]).query(c).expect("XACK");
}

/// A client that appends to `streams` in turn through a `Follower` seeded at `seed` until
/// `stop`, and returns every (stream, ID) acknowledged. A failed XADD (a node down, say)
/// is tried again a little later.
fn spawn_writer(
    stop: Arc<AtomicBool>,
    streams: Vec<String>,
    seed: String,
) -> JoinHandle<Vec<(String, String)>> {
    std::thread::spawn(move || {
        let mut c = Follower::new_at(seed);
        let mut acked: Vec<(String, String)> = Vec::new();
        let mut n = 0u64;
        while !stop.load(Ordering::SeqCst) {
            let key = &streams[n as usize % streams.len()];
            let v = n.to_string();
            match c.run(key, &cmd(&["XADD", key, "*", "n", &v])) {
                Ok(id) => acked.push((key.clone(), text(&id))),
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
            }
            n += 1;
        }
        acked
    })
}

/// Asserts that no ID stands twice in `ids` (in order, as a node lists them).
fn assert_no_repeats(ids: &[String], what: &str) {
    let mut unique = ids.to_vec();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "{what}");
}

#[test]
fn an_open_slot_answers_ask_asking_and_tryagain_as_redis_does() {
    if ran_in_netns("an_open_slot_answers_ask_asking_and_tryagain_as_redis_does") {
        return;
    }
    let mut nodes = create_cluster();
    let ids = ids(&nodes);
    let (tag, slot) = tag_in(0, 5461, &[]);
    let k = |name: &str| format!("{{{tag}}}{name}");
    let (here, gone, gone2) = (k("here"), k("gone"), k("gone2"));
    query(&nodes[0], &["XADD", &here, "1-1", "f", "v"]);
    setslot(&nodes[1], slot, "IMPORTING", Some(&ids[0]));
    setslot(&nodes[0], slot, "MIGRATING", Some(&ids[1]));
    let ask = format!("-ASK {slot} {}\r\n", addr(&nodes[1]));
    let moved = format!("-MOVED {slot} {}\r\n", addr(&nodes[0]));
    let tryagain = b"-TRYAGAIN Multiple keys request during rehashing of slot\r\n";

    // The source serves the keys it has, sends the rest to the target.
    let mut src = nodes[0].raw();
    assert_eq!(src.cmd(&["XLEN", &here]), b":1\r\n");
    assert_eq!(src.cmd(&["XLEN", &gone]), ask.as_bytes());
    assert_eq!(src.cmd(&["XADD", &gone, "*", "f", "v"]), ask.as_bytes());
    assert_eq!(src.cmd(&["DEL", &gone, &gone2]), ask.as_bytes());
    assert_eq!(src.cmd(&["DEL", &here, &gone]), tryagain);
    // In a transaction, at queue time and at EXEC.
    assert_eq!(src.cmd(&["MULTI"]), b"+OK\r\n");
    assert_eq!(src.cmd(&["XLEN", &gone]), ask.as_bytes());
    assert!(src.cmd(&["EXEC"]).starts_with(b"-EXECABORT"));
    assert_eq!(src.cmd(&["MULTI"]), b"+OK\r\n");
    assert_eq!(src.cmd(&["XLEN", &here]), b"+QUEUED\r\n");
    assert_eq!(src.cmd(&["EXEC"]), b"*1\r\n:1\r\n");

    // The target serves the slot only right after ASKING; otherwise MOVED to the owner.
    let mut dst = nodes[1].raw();
    assert_eq!(dst.cmd(&["XADD", &gone, "1-1", "f", "v"]), moved.as_bytes());
    assert_eq!(dst.cmd(&["ASKING"]), b"+OK\r\n");
    assert!(dst
        .cmd(&["XADD", &gone, "1-1", "f", "v"])
        .starts_with(b"$3\r\n1-1"));
    assert_eq!(
        dst.cmd(&["XLEN", &gone]),
        moved.as_bytes(),
        "ASKING is one-shot"
    );
    assert_eq!(dst.cmd(&["ASKING"]), b"+OK\r\n");
    assert_eq!(dst.cmd(&["XLEN", &gone]), b":1\r\n");
    assert_eq!(dst.cmd(&["ASKING"]), b"+OK\r\n");
    assert_eq!(dst.cmd(&["DEL", &gone, &gone2]), tryagain);
    assert_eq!(dst.cmd(&["ASKING"]), b"+OK\r\n");
    assert_eq!(
        dst.cmd(&["EXISTS", &gone, &gone]),
        b":2\r\n",
        "one key twice"
    );

    // The states show in CLUSTER NODES and SLOTSTATES, and survive a SIGKILL.
    let nodes_line = text(&query(&nodes[0], &["CLUSTER", "NODES"]));
    assert!(
        nodes_line.contains(&format!("[{slot}->-{}]", ids[1])),
        "{nodes_line}"
    );
    let nodes_line = text(&query(&nodes[1], &["CLUSTER", "NODES"]));
    assert!(
        nodes_line.contains(&format!("[{slot}-<-{}]", ids[0])),
        "{nodes_line}"
    );
    nodes[0].restart();
    nodes[1].restart();
    assert_eq!(
        slot_states(&nodes[0]),
        vec![Value::Array(vec![
            Value::Int(i64::from(slot)),
            Value::BulkString(b"migrating".to_vec()),
            Value::BulkString(ids[1].clone().into_bytes()),
        ])]
    );
    let mut src = nodes[0].raw();
    assert_eq!(src.cmd(&["XLEN", &gone]), ask.as_bytes());
    let mut dst = nodes[1].raw();
    assert_eq!(dst.cmd(&["ASKING"]), b"+OK\r\n");
    assert_eq!(dst.cmd(&["XLEN", &gone]), b":1\r\n");

    // Redis's manual SETSLOT is refused, naming what moves slots here.
    let refused = String::from_utf8(src.cmd(&["CLUSTER", "SETSLOT", &slot.to_string(), "STABLE"]))
        .expect("utf8");
    assert!(refused.contains("rill cluster reshard"), "{refused}");
    // Only the owner migrates a slot, only another node imports it (Redis's texts).
    assert_eq!(
        String::from_utf8(dst.cmd(&[
            "RILL.CLUSTER",
            "SETSLOT",
            &slot.to_string(),
            "MIGRATING",
            &ids[0]
        ]))
        .expect("utf8"),
        format!("-ERR I'm not the owner of hash slot {slot}\r\n")
    );

    // RILL.RESTORE is routed on its key like any write: served by the owner, by the
    // importing node only after ASKING, by no other node.
    let busy = k("busy");
    let payload = rill::engine::transfer::encode(vec![rill::engine::op::Op::SetString {
        key: busy.clone().into(),
        value: "moved".into(),
        at_ms: None,
    }]);
    let restore = |c: &mut Raw, replace: bool| {
        let mut args: Vec<&[u8]> = vec![b"RILL.RESTORE", busy.as_bytes(), &payload];
        if replace {
            args.push(b"REPLACE");
        }
        c.cmd_bytes(&args)
    };
    let mut other = nodes[2].raw();
    assert_eq!(other.cmd(&["ASKING"]), b"+OK\r\n");
    assert_eq!(restore(&mut other, false), moved.as_bytes());
    assert_eq!(restore(&mut dst, false), moved.as_bytes());

    // Closed again: the owner serves every key, the other node redirects even after ASKING.
    setslot(&nodes[0], slot, "STABLE", None);
    setslot(&nodes[1], slot, "STABLE", None);
    let mut src = nodes[0].raw();
    assert_eq!(src.cmd(&["XLEN", &gone]), b":0\r\n");
    let mut dst = nodes[1].raw();
    assert_eq!(dst.cmd(&["ASKING"]), b"+OK\r\n");
    assert_eq!(dst.cmd(&["XLEN", &gone]), moved.as_bytes());
    // On the owner of a stable slot: BUSYKEY without REPLACE, payloads checked.
    assert_eq!(src.cmd(&["SET", &busy, "here"]), b"+OK\r\n");
    assert_eq!(
        restore(&mut src, false),
        b"-BUSYKEY Target key name already exists.\r\n"
    );
    assert_eq!(
        src.cmd_bytes(&[
            b"RILL.RESTORE",
            busy.as_bytes(),
            &payload,
            b"REPLACE",
            b"BOGUS"
        ]),
        b"-ERR syntax error\r\n"
    );
    // Keyspace events of a restore that replaces a key, as Redis's RESTORE REPLACE sends them.
    assert_eq!(
        src.cmd(&["CONFIG", "SET", "notify-keyspace-events", "Kgo"]),
        b"+OK\r\n"
    );
    let mut events = nodes[0].raw();
    let channel = format!("__keyspace@0__:{busy}");
    events.cmd(&["SUBSCRIBE", &channel]);
    assert_eq!(restore(&mut src, true), b"+OK\r\n");
    for event in ["restore", "overwritten"] {
        assert_eq!(
            String::from_utf8(events.read_reply()).expect("utf8"),
            format!(
                "*3\r\n$7\r\nmessage\r\n${}\r\n{channel}\r\n${}\r\n{event}\r\n",
                channel.len(),
                event.len()
            )
        );
    }
    assert_eq!(
        src.cmd(&["CONFIG", "SET", "notify-keyspace-events", ""]),
        b"+OK\r\n"
    );
    // NOSYNC (all but the last key of a batch) stores the key all the same.
    assert_eq!(
        src.cmd_bytes(&[
            b"RILL.RESTORE",
            busy.as_bytes(),
            &payload,
            b"NOSYNC",
            b"REPLACE"
        ]),
        b"+OK\r\n"
    );
    assert_eq!(src.cmd(&["GET", &busy]), b"$5\r\nmoved\r\n");
    assert_eq!(
        src.cmd(&["RILL.RESTORE", &busy, "RILLKEY1garbage", "REPLACE"]),
        b"-ERR DUMP payload version or checksum are wrong\r\n"
    );
    assert_eq!(src.cmd(&["GET", &busy]), b"$5\r\nmoved\r\n");
    // A payload for another key than the one it is restored as is refused.
    assert_eq!(
        src.cmd_bytes(&[b"RILL.RESTORE", here.as_bytes(), &payload, b"REPLACE"]),
        b"-ERR DUMP payload does not hold the key it is restored as\r\n"
    );
    assert_eq!(src.cmd(&["XLEN", &here]), b":1\r\n");
    // RILL.MIGRATE to where nothing listens: Redis's MIGRATE text, and the key stays.
    let host = nodes[2].host.to_string();
    assert_eq!(
        src.cmd(&["RILL.MIGRATE", &host, "1", "1000", "KEYS", &busy]),
        b"-IOERR error or timeout connecting to the client\r\n"
    );
    assert_eq!(src.cmd(&["GET", &busy]), b"$5\r\nmoved\r\n");
    assert_eq!(
        src.cmd(&["RILL.MIGRATE", &host, "1", "1000", "KEYS", &gone]),
        b"+NOKEY\r\n"
    );
}

#[test]
fn reshard_under_load_keeps_every_acknowledged_entry_and_pending_entry_once() {
    if ran_in_netns("reshard_under_load_keeps_every_acknowledged_entry_and_pending_entry_once") {
        return;
    }
    const SLOTS_MOVED: u16 = 12;
    let nodes = create_cluster();
    let ids = ids(&nodes);
    let mut tags = Vec::new();
    for _ in 0..4 {
        let (t, _) = tag_in(0, SLOTS_MOVED, &tags);
        tags.push(t);
    }
    let streams: Vec<String> = tags.iter().map(|t| format!("{{{t}}}events")).collect();
    for s in &streams {
        query(&nodes[0], &["XGROUP", "CREATE", s, "g", "$", "MKSTREAM"]);
    }
    let stop = Arc::new(AtomicBool::new(false));
    // The writer: XADD round-robin, remembering every ID acknowledged.
    let writer = spawn_writer(stop.clone(), streams.clone(), addr(&nodes[2]));
    // The consumer: XREADGROUP, then XACK every other entry it got.
    let consumer = {
        let (stop, streams, seed) = (stop.clone(), streams.clone(), addr(&nodes[1]));
        std::thread::spawn(move || {
            let mut c = Follower::new_at(seed);
            let mut delivered: Vec<(String, String)> = Vec::new();
            let mut acked: Vec<(String, String)> = Vec::new();
            let mut tried: Vec<(String, String)> = Vec::new();
            let mut n = 0usize;
            while !stop.load(Ordering::SeqCst) {
                let key = &streams[n % streams.len()];
                n += 1;
                let Ok(Value::Array(per_stream)) = c.run(key, &read_group(key, 5)) else {
                    continue;
                };
                for s in per_stream {
                    let Value::Array(parts) = s else { continue };
                    let Value::Array(entries) = &parts[1] else {
                        continue;
                    };
                    for (i, e) in entries.iter().enumerate() {
                        let Value::Array(e) = e else { continue };
                        let id = text(&e[0]);
                        delivered.push((key.clone(), id.clone()));
                        if i % 2 == 0 {
                            tried.push((key.clone(), id.clone()));
                            if let Ok(Value::Int(1)) = c.run(key, &cmd(&["XACK", key, "g", &id])) {
                                acked.push((key.clone(), id));
                            }
                        }
                    }
                }
            }
            (delivered, acked, tried)
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(500));
    reshard(
        &nodes[0],
        &ids[0],
        &ids[1],
        SLOTS_MOVED,
        &["--pipeline", "1"],
    );
    std::thread::sleep(std::time::Duration::from_millis(500));
    stop.store(true, Ordering::SeqCst);
    let written = writer.join().expect("writer");
    let (delivered, acked, tried) = consumer.join().expect("consumer");
    assert!(
        written.len() > 50,
        "the writer wrote during the move: {}",
        written.len()
    );
    assert!(delivered.len() > 20, "the consumer read during the move");

    // Every node serves the new map: the moved slots are node 1's.
    for n in &nodes {
        assert_eq!(
            slot_ranges(n)[0],
            (0, i64::from(SLOTS_MOVED) - 1, ids[1].clone())
        );
    }
    for s in &streams {
        let slot = rill::cluster::slot::key_slot(s.as_bytes()).to_string();
        assert_eq!(
            int(&query(&nodes[0], &["CLUSTER", "COUNTKEYSINSLOT", &slot])),
            0,
            "nothing left on the source"
        );
        // Every acknowledged XADD exactly once, nothing else.
        let on_target = stream_ids(&nodes[1], s);
        assert_no_repeats(&on_target, &format!("no entry twice in {s}"));
        let mine: Vec<&String> = written
            .iter()
            .filter(|(k, _)| k == s)
            .map(|(_, id)| id)
            .collect();
        for id in &mine {
            assert!(on_target.contains(id), "acknowledged {id} of {s} lost");
        }
        // Pending: what was delivered and not acknowledged is pending, once; what was
        // acknowledged is not.
        let pending: Vec<String> = pending_ids(&nodes[1], s, "g")
            .into_iter()
            .map(|(id, consumer, _)| {
                assert_eq!(consumer, "c");
                id
            })
            .collect();
        assert_no_repeats(&pending, &format!("no pending entry twice in {s}"));
        for (k, id) in &delivered {
            let was_acked = acked.contains(&(k.clone(), id.clone()));
            let ack_unknown = !was_acked && tried.contains(&(k.clone(), id.clone()));
            if k == s && !was_acked && !ack_unknown {
                assert!(pending.contains(id), "delivered {id} of {s} not pending");
            }
            if k == s && was_acked {
                assert!(
                    !pending.contains(id),
                    "acknowledged {id} of {s} still pending"
                );
            }
        }
    }
    rill_ok(&["cluster", "check", &addr(&nodes[2])]);
}

/// What one stream looked like before the move, to compare with after.
#[derive(Debug, PartialEq)]
struct StreamShape {
    ids: Vec<String>,
    pending: Vec<(String, String, i64)>,
    info: Vec<(String, String)>,
}

fn shape(s: &TestServer, key: &str) -> StreamShape {
    let Value::Array(info) = query(s, &["XINFO", "STREAM", key]) else {
        panic!("XINFO is not an array")
    };
    let info = info
        .chunks(2)
        .filter_map(|kv| match (&kv[0], &kv[1]) {
            (Value::BulkString(k), Value::BulkString(v)) => Some((
                String::from_utf8_lossy(k).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            )),
            (Value::BulkString(k), Value::Int(v)) => {
                Some((String::from_utf8_lossy(k).into_owned(), v.to_string()))
            }
            _ => None,
        })
        .collect();
    StreamShape {
        ids: stream_ids(s, key),
        pending: pending_ids(s, key, "g"),
        info,
    }
}

/// Kills the source (`victim` 0) or the target (1) of a reshard in the middle of moving
/// its keys, restarts it, finishes with `rill cluster fix`, and checks that every key is on
/// the target exactly as it was, and nowhere else.
fn kill_mid_move(victim: usize) {
    const SLOTS_MOVED: u16 = 3;
    let mut nodes = create_cluster();
    let ids = ids(&nodes);
    // Many small keys, so that the move takes long enough to be interrupted.
    let mut keys = Vec::new();
    let mut n = 0u64;
    while keys.len() < 300 {
        let k = format!("k{n}");
        n += 1;
        if rill::cluster::slot::key_slot(k.as_bytes()) < SLOTS_MOVED {
            keys.push(k);
        }
    }
    let mut c = nodes[0].conn();
    for (i, k) in keys.iter().enumerate() {
        if i % 10 == 9 {
            let _: () = redis::cmd("SET").arg(k).arg(i).query(&mut c).expect("SET");
            continue;
        }
        let entries: Vec<String> = (0..3).map(|j| format!("{}-{j}", i + 1)).collect();
        stream_with_pending(&mut c, k, &entries);
    }
    let before: Vec<Option<StreamShape>> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (i % 10 != 9).then(|| shape(&nodes[0], k)))
        .collect();
    // Pending one entry each: the second delivered, unacknowledged.
    assert_eq!(before[0].as_ref().map(|s| s.pending.len()), Some(1));

    // A client keeps appending to a stream in a moved slot throughout, through the kill.
    let live = (0..)
        .map(|n| format!("live{n}"))
        .find(|k| rill::cluster::slot::key_slot(k.as_bytes()) < SLOTS_MOVED)
        .expect("a key");
    query(&nodes[0], &["XADD", &live, "*", "n", "first"]);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = spawn_writer(stop.clone(), vec![live.clone()], addr(&nodes[2]));
    let cli = reshard_command(
        &nodes[0],
        &ids[0],
        &ids[1],
        SLOTS_MOVED,
        &["--pipeline", "5"],
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .expect("run rill cluster reshard");
    // Some keys moved, most not yet: kill.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let moved = int(&query(&nodes[1], &["DBSIZE"]));
        if moved >= 20 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the move did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    nodes[victim].restart();
    let out = cli.wait_with_output().expect("reshard exits");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "the reshard was interrupted: {stdout}"
    );
    assert!(stdout.contains("rill cluster fix"), "{stdout}");

    let stdout = rill_ok(&["cluster", "fix", &addr(&nodes[2])]);
    assert!(stdout.contains("Completing the move of slot"), "{stdout}");
    // `fix` finished the slot that was open; the slots the reshard had not reached yet
    // are still the source's, with their keys there.
    let moved_slots = (0..SLOTS_MOVED)
        .filter(|slot| {
            let key = keys
                .iter()
                .find(|k| rill::cluster::slot::key_slot(k.as_bytes()) == *slot)
                .expect("a key in every moved slot");
            let mut raw = nodes[1].raw();
            !raw.cmd(&["EXISTS", key]).starts_with(b"-MOVED")
        })
        .count();
    assert!(moved_slots >= 1, "fix moved the open slot: {stdout}");
    for slot in 0..SLOTS_MOVED {
        let on = usize::from(usize::from(slot) < moved_slots);
        let slot = slot.to_string();
        assert_eq!(
            int(&query(
                &nodes[1 - on],
                &["CLUSTER", "COUNTKEYSINSLOT", &slot]
            )),
            0,
            "slot {slot}'s keys are on one node only"
        );
    }
    // Key `i` on `at` is as it was before the move.
    let as_before = |i: usize, at: &TestServer| {
        let k = &keys[i];
        match &before[i] {
            Some(shape_before) => assert_eq!(&shape(at, k), shape_before, "{k}"),
            None => assert_eq!(text(&query(at, &["GET", k])), i.to_string()),
        }
    };
    for (i, k) in keys.iter().enumerate() {
        let slot = rill::cluster::slot::key_slot(k.as_bytes());
        as_before(i, &nodes[usize::from(usize::from(slot) < moved_slots)]);
    }
    for n in &nodes {
        assert!(slot_states(n).is_empty(), "every slot closed");
    }
    // The rest of the plan, run again, moves what was left.
    if moved_slots < usize::from(SLOTS_MOVED) {
        let rest = SLOTS_MOVED - u16::try_from(moved_slots).expect("a few slots");
        reshard(&nodes[2], &ids[0], &ids[1], rest, &[]);
    }
    stop.store(true, Ordering::SeqCst);
    let written = writer.join().expect("writer");
    assert!(written.len() > 20, "the writer wrote: {}", written.len());
    assert_eq!(
        int(&query(&nodes[0], &["DBSIZE"])),
        0,
        "nothing left on the source"
    );
    let total = keys.len() as i64 + 1;
    assert_eq!(int(&query(&nodes[1], &["DBSIZE"])), total);
    for i in 0..keys.len() {
        as_before(i, &nodes[1]);
    }
    // Every XADD acknowledged while a node died and the slot moved is there, once.
    let check_written = |n: &TestServer| {
        let ids = stream_ids(n, &live);
        assert_no_repeats(&ids, "no entry twice");
        for (_, id) in &written {
            assert!(ids.contains(id), "acknowledged {id} lost");
        }
    };
    check_written(&nodes[1]);
    // And it all survives a SIGKILL of the target.
    nodes[1].restart();
    assert_eq!(int(&query(&nodes[1], &["DBSIZE"])), total);
    if let Some(first) = &before[0] {
        assert_eq!(&shape(&nodes[1], &keys[0]), first);
    }
    check_written(&nodes[1]);
    // The offline checker reads the moved keys' records (Appends and a StreamState each).
    nodes[1].signal_and_wait(9);
    let dir = nodes[1].dir.to_string_lossy().into_owned();
    rill_ok(&["check", &dir]);
}

#[test]
fn a_source_killed_mid_move_loses_nothing_and_fix_completes_the_move() {
    if ran_in_netns("a_source_killed_mid_move_loses_nothing_and_fix_completes_the_move") {
        return;
    }
    kill_mid_move(0);
}

#[test]
fn a_target_killed_mid_move_loses_nothing_and_fix_completes_the_move() {
    if ran_in_netns("a_target_killed_mid_move_loses_nothing_and_fix_completes_the_move") {
        return;
    }
    kill_mid_move(1);
}

/// The number of slots each node serves, as CLUSTER SLOTS on `at` says, by node id.
fn slot_counts(at: &TestServer) -> HashMap<String, i64> {
    let mut counts = HashMap::new();
    for (start, end, id) in slot_ranges(at) {
        *counts.entry(id).or_insert(0) += end - start + 1;
    }
    counts
}

#[test]
fn rebalance_evens_out_slots_and_moves_their_streams_whole() {
    if ran_in_netns("rebalance_evens_out_slots_and_moves_their_streams_whole") {
        return;
    }
    let nodes = create_cluster();
    let ids = ids(&nodes);
    // Streams in node 1's highest slots: the ones it gives away once it has too many.
    let keys: Vec<String> = (0..)
        .map(|n| format!("r{n}"))
        .filter(|k| (10_900..=10_922).contains(&rill::cluster::slot::key_slot(k.as_bytes())))
        .take(10)
        .collect();
    let mut c = nodes[1].conn();
    for k in &keys {
        let entries: Vec<String> = (1..=3).map(|j| format!("{j}-0")).collect();
        stream_with_pending(&mut c, k, &entries);
    }
    // A pending entry deleted from the stream, an idempotent producer's history, a TTL.
    query(&nodes[1], &["XDEL", &keys[0], "2-0"]);
    let idmp_id = text(&query(
        &nodes[1],
        &["XADD", &keys[1], "IDMP", "p", "i1", "*", "f", "v"],
    ));
    query(&nodes[1], &["PEXPIRE", &keys[2], "100000000"]);
    let before: Vec<StreamShape> = keys.iter().map(|k| shape(&nodes[1], k)).collect();
    assert_eq!(before[0].pending.len(), 1);
    assert_eq!(before[0].ids, ["1-0", "3-0"]);

    // 40 slots from node 0 to node 1: 5421 / 5502 / 5461, under 1% off.
    reshard(&nodes[0], &ids[0], &ids[1], 40, &[]);
    let stdout = rill_ok(&["cluster", "rebalance", &addr(&nodes[2])]);
    assert!(stdout.contains("No rebalancing needed"), "{stdout}");

    let stdout = rill_ok(&[
        "cluster",
        "rebalance",
        &addr(&nodes[2]),
        "--threshold",
        "0.5",
    ]);
    assert!(stdout.contains("moving 40 slots"), "{stdout}");
    for n in &nodes {
        let counts = slot_counts(n);
        assert_eq!(counts.get(&ids[0]), Some(&5461), "{counts:?}");
        assert_eq!(counts.get(&ids[1]), Some(&5462), "{counts:?}");
        assert_eq!(counts.get(&ids[2]), Some(&5461), "{counts:?}");
    }
    // Node 1 gave its highest 40 slots (10883-10922) to node 0, the streams with them.
    assert_eq!(int(&query(&nodes[1], &["DBSIZE"])), 0);
    assert_eq!(int(&query(&nodes[0], &["DBSIZE"])), keys.len() as i64);
    for (k, shape_before) in keys.iter().zip(&before) {
        assert_eq!(&shape(&nodes[0], k), shape_before, "{k}");
        let mut raw = nodes[1].raw();
        let slot = rill::cluster::slot::key_slot(k.as_bytes());
        assert_eq!(
            raw.cmd(&["XLEN", k]),
            format!("-MOVED {slot} {}\r\n", addr(&nodes[0])).into_bytes()
        );
    }
    // The producer's history came along: the same IID is not added twice.
    assert_eq!(
        text(&query(
            &nodes[0],
            &["XADD", &keys[1], "IDMP", "p", "i1", "*", "f", "v"]
        )),
        idmp_id
    );
    assert_eq!(int(&query(&nodes[0], &["XLEN", &keys[1]])), 4);
    let ttl = int(&query(&nodes[0], &["PTTL", &keys[2]]));
    assert!(ttl > 99_000_000 && ttl <= 100_000_000, "TTL moved: {ttl}");
    assert_eq!(int(&query(&nodes[0], &["PTTL", &keys[3]])), -1);
    let out = rill(&[
        "cluster",
        "rebalance",
        &addr(&nodes[0]),
        "--threshold",
        "0.5",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("No rebalancing needed"), "{stdout}");
}

/// SPUBLISH/SSUBSCRIBE route by slot like keys (MOVED, CROSSSLOT); PUBLISH and SUBSCRIBE
/// run on any node and reach only that node's subscribers (no cluster-bus broadcast yet).
#[test]
fn shard_channels_route_by_slot_and_publish_stays_local() {
    if ran_in_netns("shard_channels_route_by_slot_and_publish_stays_local") {
        return;
    }
    let nodes = create_cluster();
    let (channel, slot) = key_on(&nodes, 1, "orders:");
    let moved = format!("-MOVED {slot} {}\r\n", addr(&nodes[1])).into_bytes();
    let mut wrong = nodes[0].raw();
    assert_eq!(wrong.cmd(&["SSUBSCRIBE", &channel]), moved);
    assert_eq!(wrong.cmd(&["SPUBLISH", &channel, "m"]), moved);
    let mut sub = nodes[1].raw();
    let mut publisher = nodes[1].raw();
    assert_eq!(
        sub.cmd(&["SSUBSCRIBE", &channel]),
        format!(
            "*3\r\n$10\r\nssubscribe\r\n${}\r\n{channel}\r\n:1\r\n",
            channel.len()
        )
        .into_bytes()
    );
    assert_eq!(publisher.cmd(&["SPUBLISH", &channel, "m"]), b":1\r\n");
    assert_eq!(
        sub.read_reply(),
        format!(
            "*3\r\n$8\r\nsmessage\r\n${}\r\n{channel}\r\n$1\r\nm\r\n",
            channel.len()
        )
        .into_bytes()
    );
    let (a, _) = key_on(&nodes, 1, "a:");
    let (b, _) = key_on(&nodes, 1, "b:");
    assert_eq!(
        publisher.cmd(&["SSUBSCRIBE", &a, &b]),
        b"-CROSSSLOT Keys in request don't hash to the same slot\r\n".to_vec()
    );
    // PUBLISH is local: a subscriber on node 1 does not hear a PUBLISH sent to node 0.
    let mut local = nodes[1].raw();
    local.cmd(&["SUBSCRIBE", "news"]);
    assert_eq!(wrong.cmd(&["PUBLISH", "news", "x"]), b":0\r\n");
    assert_eq!(publisher.cmd(&["PUBLISH", "news", "y"]), b":1\r\n");
}
