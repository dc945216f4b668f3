//! Cluster mode (issue #13) against a real Redis 8.6.3 Cluster: two Redis nodes started with
//! `cluster-enabled yes`, given slots 0-8191 and 8192-16383 with CLUSTER ADDSLOTSRANGE and
//! joined with CLUSTER MEET, beside two Rill nodes given the same split by `rill cluster
//! create`. The same commands go to node A of each; replies must be byte-identical, with
//! node ids and ports masked where they necessarily differ. Covered: CLUSTER KEYSLOT over
//! edge-case and generated keys, CLUSTERDOWN before any slot is served and while only part
//! of them are, MOVED, CROSSSLOT (DEL, XREAD, XREADGROUP, RENAME, MULTI/EXEC), SELECT,
//! READONLY/READWRITE/ASKING, COUNTKEYSINSLOT/GETKEYSINSLOT and their errors, CLUSTER SLOTS,
//! SHARDS (shard by shard), NODES (epochs and peer ping times masked), MYID, MYSHARDID and
//! the fields of CLUSTER INFO that do not count bus messages; COMMAND GETKEYS; a slot open
//! for a move (ASK, TRYAGAIN, ASKING, CLUSTER NODES' `[slot->-id]`); and, without cluster
//! mode, the "cluster support disabled" error.
#![cfg(feature = "differential")]

mod common;

use std::time::{Duration, Instant};

use common::reference::{RedisServer, Twins};
use common::{free_port, Raw, TestServer};

/// A port whose bus port (port + 10000) fits in 16 bits.
fn cluster_port() -> u16 {
    std::iter::repeat_with(free_port)
        .find(|p| *p <= 55535)
        .expect("a free port")
}

fn rill_node() -> TestServer {
    let port = cluster_port().to_string();
    TestServer::start_with(&["--cluster-enabled", "yes", "--port", &port])
}

fn redis_args(cport: &str) -> Vec<&str> {
    vec!["--cluster-enabled", "yes", "--cluster-port", cport]
}

/// Replaces every 40-hex-digit run (node and shard ids) with `<id>`, and each given port
/// with its label.
fn mask(reply: &[u8], ports: &[(u16, &str)]) -> String {
    let mut text = String::from_utf8_lossy(reply).into_owned();
    for (port, label) in ports {
        text = text.replace(&port.to_string(), label);
    }
    let bytes = text.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < bytes.len() {
        let run = bytes[i..]
            .iter()
            .take_while(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            .count();
        if run == 40 {
            out.push_str("<id>");
            i += 40;
        } else {
            let n = run.max(1);
            out.push_str(&text[i..i + n]);
            i += n;
        }
    }
    out
}

/// What stands beside node A of each side (the `Twins`): node B of each, all four in
/// cluster mode and not yet joined, and the labels `mask` gives their ports.
struct Beside {
    rill_a_port: String,
    rill_b: TestServer,
    redis_b: RedisServer,
    redis_cport_b: String,
    masks: Masks,
}

fn start_pairs() -> (Twins, Beside) {
    let redis_cport_a = free_port().to_string();
    let redis_cport_b = free_port().to_string();
    let rill_a_port = cluster_port().to_string();
    let t = Twins::start_each(
        &["--cluster-enabled", "yes", "--port", &rill_a_port],
        &redis_args(&redis_cport_a),
    );
    let rill_b = rill_node();
    let redis_b = RedisServer::start_with(&redis_args(&redis_cport_b));
    let port = |p: &str| p.parse::<u16>().expect("port");
    let masks = Masks {
        rill: [
            (t.rill.port + 10000, "<cport-a>"),
            (rill_b.port + 10000, "<cport-b>"),
            (t.rill.port, "<port-a>"),
            (rill_b.port, "<port-b>"),
        ],
        redis: [
            (port(&redis_cport_a), "<cport-a>"),
            (port(&redis_cport_b), "<cport-b>"),
            (t.redis.port, "<port-a>"),
            (redis_b.port, "<port-b>"),
        ],
    };
    let beside = Beside {
        rill_a_port,
        rill_b,
        redis_b,
        redis_cport_b,
        masks,
    };
    (t, beside)
}

/// The labels `mask` gives each side's ports.
struct Masks {
    rill: [(u16, &'static str); 4],
    redis: [(u16, &'static str); 4],
}

impl Masks {
    /// Asserts that Rill's reply `r` and Redis's `p` (to `what`) read the same, masked.
    fn assert_same(&self, r: &[u8], p: &[u8], what: std::fmt::Arguments) {
        assert_eq!(
            mask(r, &self.rill),
            mask(p, &self.redis),
            "{what} differs (left: Rill, right: Redis)"
        );
    }
}

/// Redis node B takes slots 8192-16383 and meets node A (which has the rest already); both
/// then serve the cluster. A connection to node B.
fn join_redis(t: &mut Twins, redis_b: &RedisServer, redis_cport_b: &str) -> Raw {
    let mut rb = Raw::connect(redis_b.port);
    rb.cmd(&["CLUSTER", "ADDSLOTSRANGE", "8192", "16383"]);
    let meet = t.redis_conn.cmd(&[
        "CLUSTER",
        "MEET",
        "127.0.0.1",
        &redis_b.port.to_string(),
        redis_cport_b,
    ]);
    assert_eq!(meet, b"+OK\r\n");
    wait_cluster_ok(t.redis.port);
    wait_cluster_ok(redis_b.port);
    rb
}

fn rill(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_rill"))
        .args(args)
        .output()
        .expect("run rill")
}

/// A node's id, as CLUSTER MYID answers.
fn myid(c: &mut Raw) -> String {
    let reply = String::from_utf8_lossy(&c.cmd(&["CLUSTER", "MYID"])).into_owned();
    reply.lines().nth(1).expect("id").to_string()
}

/// The slot of `key`, which both sides must answer alike.
fn keyslot(t: &mut Twins, key: &str) -> String {
    let slot = String::from_utf8_lossy(&t.same(&["CLUSTER", "KEYSLOT", key])).into_owned();
    slot.trim_start_matches(':').trim_end().to_string()
}

fn wait_cluster_ok(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut c = Raw::connect(port);
    loop {
        let info = String::from_utf8_lossy(&c.cmd(&["CLUSTER", "INFO"])).into_owned();
        let slots = c.cmd(&["CLUSTER", "SLOTS"]);
        if info.contains("cluster_state:ok") && slots.starts_with(b"*2\r\n") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "Redis cluster never became ok: {info}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The first key, among `prefix0`, `prefix1` …, whose slot is in `range`.
fn key_in(t: &mut Twins, prefix: &str, range: std::ops::RangeInclusive<i64>) -> String {
    (0..)
        .map(|i| format!("{prefix}{i}"))
        .find(|k| {
            let r = t.rill_conn.cmd(&["CLUSTER", "KEYSLOT", k]);
            let slot: i64 = String::from_utf8_lossy(&r[1..r.len() - 2])
                .parse()
                .expect("slot");
            range.contains(&slot)
        })
        .expect("a key")
}

#[test]
fn cluster_texts_and_replies_match_redis() {
    let (mut t, beside) = start_pairs();
    let rill_a_port = &beside.rill_a_port;

    // Before any slot is served.
    t.same(&["GET", "foo"]);
    t.same(&["XADD", "s", "*", "f", "v"]);
    t.same(&["PING"]);
    t.same(&["CLUSTER", "SLOTS"]);

    // Only node A's half is served (Redis: ADDSLOTSRANGE before MEET; Rill: a map of A
    // alone, sent as RILL.CLUSTER SETTOPOLOGY): an owned slot is "cluster down", an
    // unowned one "not served".
    t.redis_conn.cmd(&["CLUSTER", "ADDSLOTSRANGE", "0", "8191"]);
    let id_a = myid(&mut t.rill_conn);
    let half = format!(
        "rill-cluster 1\nepoch 1\nshard {id_a} 0-8191\nnode {id_a} {id_a} 127.0.0.1 {rill_a_port} 1\n"
    );
    assert_eq!(
        t.rill_conn.cmd(&["RILL.CLUSTER", "SETTOPOLOGY", &half]),
        b"+OK\r\n"
    );
    let low = key_in(&mut t, "low", 0..=8191);
    let high = key_in(&mut t, "high", 8192..=16383);
    t.same(&["GET", &low]);
    t.same(&["GET", &high]);

    // The full two-node cluster on both sides.
    let rill_b_port = beside.rill_b.port.to_string();
    let out = rill(&[
        "cluster",
        "create",
        &format!("127.0.0.1:{rill_a_port}"),
        &format!("127.0.0.1:{rill_b_port}"),
    ]);
    // A already has a map (the half one), so create refuses it; give both nodes the map
    // create would make instead, with a newer epoch.
    assert_eq!(out.status.code(), Some(1));
    let mut b = Raw::connect(beside.rill_b.port);
    let id_b = myid(&mut b);
    let full = format!(
        "rill-cluster 1\nepoch 2\nshard {id_a} 0-8191\nnode {id_a} {id_a} 127.0.0.1 {rill_a_port} {}\nshard {id_b} 8192-16383\nnode {id_b} {id_b} 127.0.0.1 {rill_b_port} {}\n",
        rill_a_port.parse::<u32>().expect("port") + 10000,
        beside.rill_b.port as u32 + 10000
    );
    for c in [&mut t.rill_conn, &mut b] {
        assert_eq!(c.cmd(&["RILL.CLUSTER", "SETTOPOLOGY", &full]), b"+OK\r\n");
    }
    let check = rill(&["cluster", "check", &format!("127.0.0.1:{rill_a_port}")]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    join_redis(&mut t, &beside.redis_b, &beside.redis_cport_b);

    for protocol in [2u8, 3] {
        t.reconnect(protocol);
        let compare = |t: &mut Twins, args: &[&str]| {
            let (r, p) = t.both(args);
            beside
                .masks
                .assert_same(&r, &p, format_args!("RESP{protocol} reply to {args:?}"));
        };
        // MOVED, with the other node's address.
        compare(&mut t, &["GET", &high]);
        compare(&mut t, &["XADD", &high, "*", "f", "v"]);
        compare(&mut t, &["XGROUP", "CREATE", &high, "g", "$", "MKSTREAM"]);
        compare(&mut t, &["XREAD", "STREAMS", &high, "0"]);
        // Served here.
        t.same(&["XADD", &low, "1-1", "f", "v"]);
        t.same(&["XLEN", &low]);
        // CROSSSLOT.
        let low2 = key_in(&mut t, "other", 0..=8191);
        t.same(&["DEL", &low, &low2]);
        t.same(&["DEL", &low, &high]);
        t.same(&["RENAME", &low, &low2]);
        t.same(&["XREAD", "STREAMS", &low, &low2, "0", "0"]);
        t.same(&["XREAD", "COUNT", "1", "STREAMS", &low, &high, "0", "0"]);
        t.same(&[
            "XREADGROUP",
            "GROUP",
            "g",
            "c",
            "STREAMS",
            &low,
            &low2,
            ">",
            ">",
        ]);
        // Unbalanced stream lists name no keys: the command's own error, not a redirect.
        t.same(&["XREAD", "STREAMS", &low, &high, "0"]);
        // Hash tags: one slot.
        let tag1 = format!("{{{low}}}.a");
        let tag2 = format!("{{{low}}}.b");
        t.same(&["XADD", &tag1, "1-1", "f", "v"]);
        t.same(&["XREAD", "STREAMS", &tag1, &tag2, "0", "0"]);
        // MULTI/EXEC.
        t.same(&["MULTI"]);
        compare(&mut t, &["XADD", &high, "*", "f", "v"]);
        t.same(&["XLEN", &low]);
        t.same(&["EXEC"]);
        t.same(&["MULTI"]);
        t.same(&["XLEN", &low]);
        t.same(&["XLEN", &low2]);
        t.same(&["EXEC"]);
        t.same(&["EXEC"]);
        t.same(&["MULTI"]);
        t.same(&["XLEN", &tag1]);
        t.same(&["XLEN", &tag2]);
        t.same(&["EXEC"]);
        // Connection commands.
        t.same(&["SELECT", "1"]);
        t.same(&["SELECT", "0"]);
        t.same(&["SELECT", "x"]);
        t.same(&["READONLY"]);
        t.same(&["READWRITE"]);
        t.same(&["ASKING"]);
        t.same(&["GET", &low]);
        // The slot index.
        let slot = keyslot(&mut t, &tag1);
        t.same(&["CLUSTER", "COUNTKEYSINSLOT", &slot]);
        // Listing order within a slot is Redis's dict order: list a slot with one key.
        t.same(&["XADD", &low2, "1-1", "f", "v"]);
        let solo = keyslot(&mut t, &low2);
        t.same(&["CLUSTER", "COUNTKEYSINSLOT", &solo]);
        t.same(&["CLUSTER", "GETKEYSINSLOT", &solo, "10"]);
        t.same(&["CLUSTER", "GETKEYSINSLOT", &slot, "0"]);
        t.same(&["CLUSTER", "COUNTKEYSINSLOT", "16384"]);
        t.same(&["CLUSTER", "COUNTKEYSINSLOT", "-1"]);
        t.same(&["CLUSTER", "COUNTKEYSINSLOT", "x"]);
        t.same(&["CLUSTER", "GETKEYSINSLOT", "1", "-1"]);
        t.same(&["CLUSTER", "GETKEYSINSLOT", "16384", "1"]);
        t.same(&["CLUSTER", "KEYSLOT"]);
        // Topology.
        compare(&mut t, &["CLUSTER", "SLOTS"]);
        compare(&mut t, &["CLUSTER", "MYID"]);
        compare(&mut t, &["CLUSTER", "MYSHARDID"]);
        // CLUSTER SHARDS, shard by shard (Redis lists them in its dict's order).
        let (r, p) = t.both(&["CLUSTER", "SHARDS"]);
        let shards = |b: &[u8], ports: &[(u16, &str)]| -> Vec<String> {
            // Each shard starts `*4` (RESP2) or `%2` (RESP3), `$5`, `slots`: cut there, so
            // no part carries the next shard's header.
            let mut parts: Vec<String> = mask(b, ports)
                .split("$5\r\nslots")
                .map(|p| {
                    p.strip_suffix("*4\r\n")
                        .or_else(|| p.strip_suffix("%2\r\n"))
                        .unwrap_or(p)
                        .to_string()
                })
                .collect();
            parts.sort();
            parts
        };
        let ours = shards(&r, &beside.masks.rill);
        assert_eq!(ours.len(), 3, "two shards: {ours:?}");
        assert_eq!(
            ours,
            shards(&p, &beside.masks.redis),
            "CLUSTER SHARDS (RESP{protocol})"
        );
        // CLUSTER NODES: this node's line and the other's, field for field, but for the
        // config epochs (Redis bumps them while the nodes meet) and the other node's
        // ping/pong times (Rill's nodes do not ping each other).
        let (r, p) = t.both(&["CLUSTER", "NODES"]);
        let lines = |b: &[u8], ports: &[(u16, &str)]| -> Vec<String> {
            let text = mask(b, ports);
            // The text after the bulk (`$n`) or verbatim (`=n` … `txt:`) header.
            let body = text.split_once("\r\n").map_or("", |(_, rest)| rest);
            let body = body.strip_prefix("txt:").unwrap_or(body);
            let mut lines: Vec<String> = body
                .split('\n')
                .filter(|l| !l.trim().is_empty())
                .map(|l| {
                    let mut f: Vec<&str> = l.split(' ').collect();
                    assert!(f.len() >= 8, "short CLUSTER NODES line {l:?}");
                    f[6] = "<epoch>";
                    if !f[2].starts_with("myself") {
                        f[4] = "<ping>";
                        f[5] = "<pong>";
                    }
                    f.join(" ")
                })
                .collect();
            lines.sort();
            lines
        };
        let ours = lines(&r, &beside.masks.rill);
        assert_eq!(ours.len(), 2, "{ours:?}");
        assert!(
            ours.iter().any(|l| {
                l
                == "<id> 127.0.0.1:<port-a>@<cport-a> myself,master - 0 0 <epoch> connected 0-8191"
            }),
            "{ours:?}"
        );
        assert_eq!(
            ours,
            lines(&p, &beside.masks.redis),
            "CLUSTER NODES (RESP{protocol})"
        );
        let (r, p) = t.both(&["CLUSTER", "INFO"]);
        for field in [
            "cluster_state:",
            "cluster_slots_assigned:",
            "cluster_slots_ok:",
            "cluster_slots_pfail:",
            "cluster_slots_fail:",
            "cluster_known_nodes:",
            "cluster_size:",
        ] {
            let line = |b: &[u8]| {
                String::from_utf8_lossy(b)
                    .split("\r\n")
                    .find(|l| l.contains(field))
                    .map(|l| l[l.find(field).unwrap_or(0)..].to_string())
            };
            assert_eq!(line(&r), line(&p), "CLUSTER INFO {field} (RESP{protocol})");
        }
        // The same fields in the same order, apart from Redis's per-message-type counters,
        // which appear only once such messages were sent.
        let names = |b: &[u8]| -> Vec<String> {
            String::from_utf8_lossy(b)
                .split("\r\n")
                .map(|l| l.strip_prefix("txt:").unwrap_or(l))
                .filter_map(|l| l.split_once(':').map(|(k, _)| k.to_string()))
                .filter(|k| {
                    !k.starts_with("cluster_stats_messages_")
                        || k == "cluster_stats_messages_sent"
                        || k == "cluster_stats_messages_received"
                })
                .collect()
        };
        assert_eq!(names(&r), names(&p), "CLUSTER INFO fields (RESP{protocol})");
        t.both(&["DEL", &low, &tag1]);
        t.both(&["DEL", &low2]);
    }
}

#[test]
fn keyslot_vectors_match_redis() {
    let rill_port = cluster_port().to_string();
    let cport = free_port().to_string();
    let mut t = Twins::start_each(
        &["--cluster-enabled", "yes", "--port", &rill_port],
        &redis_args(&cport),
    );
    let mut keys: Vec<Vec<u8>> = [
        "",
        "foo",
        "bar",
        "123456789",
        "{user1000}.following",
        "{user1000}.followers",
        "{}",
        "{}a",
        "{}{a}",
        "a{b",
        "a}b{c}",
        "{{a}}",
        "foo{{bar}}zap",
        "foo{bar}{zap}",
        "{a",
        "a}",
        "}{",
        "{a}",
        "x{}y{z}",
        "ключ",
        "{ключ}.x",
    ]
    .iter()
    .map(|k| k.as_bytes().to_vec())
    .collect();
    keys.push(vec![0, 255, 123, 1, 125]);
    keys.push(vec![b'k'; 5000]);
    // A deterministic spread of generated keys and hash tags.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in 0..2000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = (x % 24) as usize;
        let mut k: Vec<u8> = (0..len).map(|j| (x >> (j % 8 * 8)) as u8).collect();
        if i % 3 == 0 {
            k.extend_from_slice(format!("{{tag{}}}", x % 97).as_bytes());
        }
        keys.push(k);
    }
    for protocol in [2u8, 3] {
        t.reconnect(protocol);
        for key in &keys {
            let args: [&[u8]; 3] = [b"CLUSTER", b"KEYSLOT", key];
            let r = t.rill_conn.cmd_bytes(&args);
            let p = t.redis_conn.cmd_bytes(&args);
            assert_eq!(r, p, "KEYSLOT {key:?} (RESP{protocol})");
        }
    }
}

#[test]
fn without_cluster_mode_both_refuse_cluster_commands() {
    let mut t = Twins::start(&[]);
    t.each_protocol(|t| {
        t.same(&["CLUSTER", "INFO"]);
        t.same(&["CLUSTER", "KEYSLOT", "foo"]);
        t.same(&["CLUSTER", "SLOTS"]);
        t.same(&["CLUSTER", "NODES"]);
        t.same(&["CLUSTER", "SHARDS"]);
        t.same(&["CLUSTER", "MYID"]);
        t.same(&["CLUSTER", "COUNTKEYSINSLOT", "1"]);
        t.same(&["CLUSTER", "NOSUCH"]);
        t.same(&["READONLY"]);
        t.same(&["READWRITE"]);
        t.same(&["ASKING"]);
        t.same(&["SELECT", "1"]);
    });
}

#[test]
fn command_getkeys_matches_redis() {
    // What cluster clients ask when they cannot find keys themselves (redis-py does for
    // XREAD and XREADGROUP): the same key extraction routing uses.
    let mut t = Twins::start(&[]);
    t.each_protocol(|t| {
        for with in ["GETKEYS", "GETKEYSANDFLAGS"] {
            t.same(&["COMMAND", with, "XADD", "s", "*", "f", "v"]);
            t.same(&[
                "COMMAND", with, "XREAD", "COUNT", "1", "STREAMS", "a", "b", "0", "0",
            ]);
            t.same(&[
                "COMMAND",
                with,
                "XREADGROUP",
                "GROUP",
                "g",
                "c",
                "STREAMS",
                "a",
                ">",
            ]);
            t.same(&["COMMAND", with, "DEL", "a", "b", "c"]);
            t.same(&["COMMAND", with, "RENAME", "a", "b"]);
            t.same(&["COMMAND", with, "XGROUP", "CREATE", "s", "g", "$"]);
            t.same(&["COMMAND", with, "XINFO", "STREAM", "s"]);
            t.same(&["COMMAND", with, "SET", "k", "v"]);
            t.same(&["COMMAND", with, "SET", "k", "v", "GET"]);
            t.same(&["COMMAND", with, "PING"]);
            t.same(&["COMMAND", with, "NOSUCH", "x"]);
            t.same(&["COMMAND", with, "XADD", "s"]);
            t.same(&["COMMAND", with, "XGROUP", "NOSUCH"]);
            t.same(&["COMMAND", with]);
        }
    });
}

/// A slot being moved (MIGRATING on node A, IMPORTING on node B), on both: Redis's set with
/// `CLUSTER SETSLOT`, Rill's with `RILL.CLUSTER SETSLOT` (what `rill cluster reshard`
/// sends). `-ASK`, `-TRYAGAIN`, the one-shot ASKING, `-MOVED` from the importing node,
/// MULTI/EXEC on the migrating node, and the open slot in CLUSTER NODES must read the same.
#[test]
fn open_slot_texts_match_redis() {
    let (mut t, beside) = start_pairs();
    let rill_a_port = &beside.rill_a_port;
    let out = rill(&[
        "cluster",
        "create",
        &format!("127.0.0.1:{rill_a_port}"),
        &format!("127.0.0.1:{}", beside.rill_b.port),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    t.redis_conn.cmd(&["CLUSTER", "ADDSLOTSRANGE", "0", "8191"]);
    let mut rb = join_redis(&mut t, &beside.redis_b, &beside.redis_cport_b);
    let mut b = Raw::connect(beside.rill_b.port);
    let (rill_a_id, rill_b_id) = (myid(&mut t.rill_conn), myid(&mut b));
    let (redis_a_id, redis_b_id) = (myid(&mut t.redis_conn), myid(&mut rb));

    let tag = key_in(&mut t, "tag", 0..=8191);
    let slot = keyslot(&mut t, &tag);
    let (here, gone, gone2) = (
        format!("{{{tag}}}here"),
        format!("{{{tag}}}gone"),
        format!("{{{tag}}}gone2"),
    );
    t.same(&["XADD", &here, "1-1", "f", "v"]);
    let ok = b"+OK\r\n".to_vec();
    assert_eq!(
        rb.cmd(&["CLUSTER", "SETSLOT", &slot, "IMPORTING", &redis_a_id]),
        ok
    );
    assert_eq!(
        t.redis_conn
            .cmd(&["CLUSTER", "SETSLOT", &slot, "MIGRATING", &redis_b_id]),
        ok
    );
    assert_eq!(
        b.cmd(&["RILL.CLUSTER", "SETSLOT", &slot, "IMPORTING", &rill_a_id]),
        ok
    );
    assert_eq!(
        t.rill_conn
            .cmd(&["RILL.CLUSTER", "SETSLOT", &slot, "MIGRATING", &rill_b_id]),
        ok
    );

    // The migrating node.
    let compare_a = |t: &mut Twins, args: &[&str]| {
        let (r, p) = t.both(args);
        beside.masks.assert_same(
            &r,
            &p,
            format_args!("reply to {args:?} on the migrating node"),
        );
    };
    compare_a(&mut t, &["XLEN", &here]);
    compare_a(&mut t, &["XLEN", &gone]);
    compare_a(&mut t, &["XADD", &gone, "*", "f", "v"]);
    compare_a(&mut t, &["DEL", &gone, &gone2]);
    compare_a(&mut t, &["DEL", &here, &gone]);
    compare_a(&mut t, &["EXISTS", &here, &here]);
    compare_a(&mut t, &["XREAD", "STREAMS", &here, &gone, "0", "0"]);
    compare_a(&mut t, &["MULTI"]);
    compare_a(&mut t, &["XLEN", &gone]);
    compare_a(&mut t, &["EXEC"]);
    compare_a(&mut t, &["MULTI"]);
    compare_a(&mut t, &["XLEN", &here]);
    compare_a(&mut t, &["EXEC"]);
    // Only the node's own line shows the open slot; the other's is compared elsewhere.
    let own_line = |reply: &[u8], ports: &[(u16, &str)]| -> String {
        let text = mask(reply, ports);
        let line = text
            .split('\n')
            .find(|l| l.contains("myself"))
            .expect("own line")
            .to_string();
        let mut f: Vec<&str> = line.split(' ').collect();
        f[6] = "<epoch>";
        f.join(" ")
    };
    let (r, p) = t.both(&["CLUSTER", "NODES"]);
    let ours = own_line(&r, &beside.masks.rill);
    assert!(ours.contains(&format!("[{slot}->-<id>]")), "{ours}");
    assert_eq!(ours, own_line(&p, &beside.masks.redis));

    // The importing node.
    let mut compare_b = |args: &[&str]| {
        let (r, p) = (b.cmd(args), rb.cmd(args));
        beside.masks.assert_same(
            &r,
            &p,
            format_args!("reply to {args:?} on the importing node"),
        );
        r
    };
    compare_b(&["XLEN", &gone]);
    compare_b(&["ASKING"]);
    compare_b(&["XADD", &gone, "1-1", "f", "v"]);
    compare_b(&["XLEN", &gone]);
    compare_b(&["ASKING"]);
    compare_b(&["XLEN", &gone]);
    compare_b(&["ASKING"]);
    compare_b(&["DEL", &gone, &gone2]);
    compare_b(&["ASKING"]);
    compare_b(&["EXISTS", &gone, &gone]);
    compare_b(&["ASKING"]);
    compare_b(&["MULTI"]);
    compare_b(&["XLEN", &gone]);
    compare_b(&["EXEC"]);
    compare_b(&["XLEN", &gone]);
    compare_b(&["MULTI"]);
    compare_b(&["XLEN", &gone]);
    compare_b(&["EXEC"]);
    compare_b(&["ASKING"]);
    compare_b(&["MULTI"]);
    compare_b(&["DISCARD"]);
    compare_b(&["XLEN", &gone]);
    let nodes = compare_b(&["CLUSTER", "MYID"]);
    assert!(!nodes.is_empty());
    let (r, p) = (b.cmd(&["CLUSTER", "NODES"]), rb.cmd(&["CLUSTER", "NODES"]));
    let ours = own_line(&r, &beside.masks.rill);
    assert!(ours.contains(&format!("[{slot}-<-<id>]")), "{ours}");
    assert_eq!(ours, own_line(&p, &beside.masks.redis));
}
