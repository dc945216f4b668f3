//! `cluster-raft yes` (issue #14 step D: the log is a Raft log of a group of one voter, and a
//! write is acknowledged once its entry is committed) against the real server: the replies
//! are byte for byte those of the single-node server, `kill -9` loses no acknowledged write
//! (entries whose commit the log did not record yet are committed again at start-up), and
//! what the mode refuses it refuses at start-up.

mod common;

use std::process::Command;

use common::{encode, Raw, TestServer};

fn raft() -> TestServer {
    TestServer::start_with(&["--cluster-raft", "yes", "--appendfsync", "always"])
}

fn single() -> TestServer {
    TestServer::start_with(&["--appendfsync", "always"])
}

/// Commands whose replies do not depend on the clock: explicit IDs, no idle times.
const SCRIPT: &[&[&str]] = &[
    &["XADD", "s", "1-1", "f", "v1"],
    &["XADD", "s", "2-1", "f", "v2", "g", "w"],
    &["XADD", "s", "2-1", "f", "dup"],
    &["XGROUP", "CREATE", "s", "g", "0"],
    &["XGROUP", "CREATE", "s", "g", "0"],
    &[
        "XREADGROUP",
        "GROUP",
        "g",
        "alice",
        "COUNT",
        "1",
        "STREAMS",
        "s",
        ">",
    ],
    &["XREADGROUP", "GROUP", "g", "bob", "STREAMS", "s", ">"],
    &["XREADGROUP", "GROUP", "g", "bob", "STREAMS", "s", ">"],
    &["XPENDING", "s", "g"],
    &["XACK", "s", "g", "1-1", "9-9"],
    &["XACK", "s", "g", "1-1"],
    &["XAUTOCLAIM", "s", "g", "carol", "0", "0-0"],
    &["XPENDING", "s", "g"],
    &["XREADGROUP", "GROUP", "g", "carol", "STREAMS", "s", "0"],
    &["XINFO", "GROUPS", "s"],
    &["XLEN", "s"],
    &["XRANGE", "s", "-", "+"],
    &["XDEL", "s", "1-1"],
    &["XTRIM", "s", "MAXLEN", "5"],
    &["XADD", "s", "MAXLEN", "1", "3-1", "f", "v3"],
    &["XRANGE", "s", "-", "+"],
    &["XGROUP", "SETID", "s", "g", "0"],
    &["XREADGROUP", "GROUP", "g", "dave", "STREAMS", "s", ">"],
    &["XGROUP", "CREATECONSUMER", "s", "g", "erin"],
    &["XGROUP", "DELCONSUMER", "s", "g", "dave"],
    &["MULTI"],
    &["XADD", "t", "1-1", "a", "1"],
    &["XADD", "t", "1-2", "a", "2"],
    &["XLEN", "t"],
    &["EXEC"],
    &["XADD", "t", "1-1", "a", "late"],
    &["DEL", "t"],
    &["EXISTS", "t"],
    &["XREAD", "COUNT", "5", "STREAMS", "s", "0"],
    &["XINFO", "STREAM", "s"],
];

fn run_script(server: &TestServer) -> Vec<Vec<u8>> {
    let mut c = Raw::connect(server.port);
    let mut out: Vec<Vec<u8>> = SCRIPT.iter().map(|argv| c.cmd(argv)).collect();
    // Pipelined: one batch of replies that waits for one commit.
    let mut batch = Vec::new();
    for i in 10..20 {
        batch.extend(encode(&[
            "XADD",
            "p",
            &format!("{i}-1"),
            "n",
            &i.to_string(),
        ]));
    }
    batch.extend(encode(&["XLEN", "p"]));
    c.send(&batch);
    for _ in 10..=20 {
        out.push(c.read_reply());
    }
    out
}

#[test]
fn replies_are_the_same_as_the_single_node_servers() {
    let (r, s) = (raft(), single());
    let with = run_script(&r);
    let without = run_script(&s);
    // The test can fail: the script's first reply is a known value in both.
    assert_eq!(with[0], b"$3\r\n1-1\r\n");
    for (i, (a, b)) in with.iter().zip(&without).enumerate() {
        assert_eq!(
            String::from_utf8_lossy(a),
            String::from_utf8_lossy(b),
            "reply {i} differs in Raft mode"
        );
    }
    assert_eq!(with.len(), without.len());
}

/// A blocked XREADGROUP served by another client's XADD: the delivery is in the writer's
/// entry, and the reader's reply waits for its commit, as for the durable LSN.
#[test]
fn a_blocked_reader_is_served_the_same_way() {
    for server in [raft(), single()] {
        let mut w = Raw::connect(server.port);
        assert_eq!(
            w.cmd(&["XGROUP", "CREATE", "b", "g", "$", "MKSTREAM"]),
            b"+OK\r\n"
        );
        let mut reader = Raw::connect(server.port);
        reader.send(&encode(&[
            "XREADGROUP",
            "GROUP",
            "g",
            "c",
            "BLOCK",
            "0",
            "STREAMS",
            "b",
            ">",
        ]));
        server.wait_blocked(1);
        assert_eq!(w.cmd(&["XADD", "b", "5-5", "k", "v"]), b"$3\r\n5-5\r\n");
        let got = reader.read_reply();
        assert_eq!(
            String::from_utf8_lossy(&got),
            "*1\r\n*2\r\n$1\r\nb\r\n*1\r\n*2\r\n$3\r\n5-5\r\n*2\r\n$1\r\nk\r\n$1\r\nv\r\n"
        );
        assert_eq!(
            w.cmd(&["XPENDING", "b", "g"]),
            b"*4\r\n:1\r\n$3\r\n5-5\r\n$3\r\n5-5\r\n*1\r\n*2\r\n$1\r\nc\r\n$1\r\n1\r\n"
        );
    }
}

/// What the server holds, as text (no clock-dependent fields).
fn state(c: &mut Raw) -> String {
    let mut out = String::new();
    for argv in [
        &["XLEN", "k"][..],
        &["XRANGE", "k", "-", "+"],
        &["XPENDING", "k", "g"],
        &["XPENDING", "k", "g", "-", "+", "1000000"],
        &["XINFO", "GROUPS", "k"],
    ] {
        let reply = c.cmd(argv);
        // Idle times in the extended XPENDING depend on the clock: keep owners and counts.
        let text = String::from_utf8_lossy(&reply).into_owned();
        if argv.len() == 6 {
            let lines: Vec<&str> = text.split("\r\n").collect();
            // Each entry: *4, $id-len, id, $owner-len, owner, :idle, :count.
            let kept: Vec<&str> = lines
                .iter()
                .enumerate()
                .filter(|(i, _)| *i == 0 || (*i - 1) % 7 != 5)
                .map(|(_, l)| *l)
                .collect();
            out.push_str(&kept.join("|"));
        } else {
            out.push_str(&text);
        }
        out.push('\n');
    }
    out
}

#[test]
fn kill_9_loses_no_acknowledged_write() {
    let mut server = raft();
    let mut c = Raw::connect(server.port);
    assert_eq!(
        c.cmd(&["XGROUP", "CREATE", "k", "g", "$", "MKSTREAM"]),
        b"+OK\r\n"
    );
    let mut acked = 0u64;
    for round in 0..3u64 {
        for i in 0..40u64 {
            let id = format!("{}-{}", round + 1, i + 1);
            let reply = c.cmd(&["XADD", "k", &id, "n", &i.to_string()]);
            assert_eq!(reply, format!("${}\r\n{id}\r\n", id.len()).into_bytes());
            acked += 1;
        }
        // This round's entries delivered, two of them acknowledged.
        let read = c.cmd(&[
            "XREADGROUP",
            "GROUP",
            "g",
            "c",
            "COUNT",
            "40",
            "STREAMS",
            "k",
            ">",
        ]);
        assert!(
            read.starts_with(b"*1\r\n"),
            "{}",
            String::from_utf8_lossy(&read)
        );
        assert_eq!(
            c.cmd(&[
                "XACK",
                "k",
                "g",
                &format!("{}-1", round + 1),
                &format!("{}-2", round + 1)
            ]),
            b":2\r\n"
        );
        let before = state(&mut c);
        // SIGKILL right after the acknowledgements: the commit index on disk trails them.
        server.restart();
        c = Raw::connect(server.port);
        let after = state(&mut c);
        assert_eq!(before, after, "state after kill -9 (round {round})");
        assert_eq!(c.cmd(&["XLEN", "k"]), format!(":{acked}\r\n").into_bytes());
    }
    // The group keeps accepting writes after its restarts, at the next index.
    assert_eq!(c.cmd(&["XADD", "k", "9-9", "n", "x"]), b"$3\r\n9-9\r\n");
    // `rill check` counts the writes inside the Raft entries: the stream and group of
    // XGROUP CREATE … MKSTREAM (2), 121 appends, 3 deliveries and 3 acks (the restarts'
    // leader no-ops carry none).
    drop(c);
    let text = killed_and_checked(&mut server);
    assert!(text.contains(", 129 changes,"), "{text}");
}

#[test]
fn raft_mode_requires_appendfsync_always() {
    let dir = std::env::temp_dir().join(format!("rill-raft-everysec-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = Command::new(env!("CARGO_BIN_EXE_rill"))
        .args([
            "--port",
            "0",
            "--cluster-raft",
            "yes",
            "--appendfsync",
            "everysec",
        ])
        .arg("--dir")
        .arg(&dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("run rill");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!out.status.success(), "started without appendfsync always");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("requires appendfsync always"), "{text}");
}

/// A field of INFO's persistence section.
fn persistence(c: &mut Raw, field: &str) -> u64 {
    let info = String::from_utf8_lossy(&c.cmd(&["INFO", "persistence"])).into_owned();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in {info}"))
}

/// Segment files in the data directory.
fn segments(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir.join("log"))
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "seg"))
                .count()
        })
        .unwrap_or(0)
}

/// Asks for a checkpoint (once one the server took on its own has finished) and waits
/// until the Raft log's first index passes `past`.
fn checkpoint_past(c: &mut Raw, past: u64) -> u64 {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let reply = c.cmd(&["BGREWRITEAOF"]);
        if reply == b"+Background append only file rewriting started\r\n" {
            break;
        }
        assert_eq!(
            reply,
            b"-ERR Background append only file rewriting already in progress\r\n"
        );
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    loop {
        let first = persistence(c, "raft_first_index");
        if first > past && persistence(c, "aof_rewrite_in_progress") == 0 {
            return first;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the checkpoint did not purge the Raft log (first index {first})"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Step I: a checkpoint of a Raft node's keyspace lets the log's prefix go — the Raft
/// entries it holds are purged and the segments holding nothing live are deleted — and a
/// restart (kill -9) loads it and replays only what follows, with the same state.
#[test]
fn a_checkpoint_purges_the_raft_log_and_a_restart_starts_from_it() {
    let mut server = TestServer::start_with(&[
        "--cluster-raft",
        "yes",
        "--appendfsync",
        "always",
        "--segment-size",
        "1mb",
        "--checkpoint-interval",
        "3600",
    ]);
    let mut c = Raw::connect(server.port);
    assert_eq!(
        c.cmd(&["XGROUP", "CREATE", "k", "g", "$", "MKSTREAM"]),
        b"+OK\r\n"
    );
    let big = "x".repeat(4096);
    for i in 1..=1200u64 {
        let id = format!("{i}-1");
        let reply = c.cmd(&["XADD", "k", &id, "n", &i.to_string(), "pad", &big]);
        assert_eq!(reply, format!("${}\r\n{id}\r\n", id.len()).into_bytes());
    }
    let read = c.cmd(&[
        "XREADGROUP",
        "GROUP",
        "g",
        "c",
        "COUNT",
        "1150",
        "STREAMS",
        "k",
        ">",
    ]);
    assert!(read.starts_with(b"*1\r\n"));
    // Most entries die, so most segments hold nothing live.
    assert_eq!(c.cmd(&["XTRIM", "k", "MAXLEN", "100"]), b":1100\r\n");
    assert_eq!(c.cmd(&["XACK", "k", "g", "1101-1", "1102-1"]), b":2\r\n");
    let before_segments = segments(&server.dir);
    assert!(before_segments >= 5, "{before_segments} segments");
    // (The server may have taken checkpoints on its own: the log grew past two segments.)
    let first = persistence(&mut c, "raft_first_index");
    let first = checkpoint_past(&mut c, first);
    let after_segments = segments(&server.dir);
    assert!(
        after_segments <= 3,
        "{before_segments} segments before the checkpoint, {after_segments} after"
    );
    // Writes after the cut, then kill -9: the state is the checkpoint plus these.
    for i in 1201..=1250u64 {
        let id = format!("{i}-1");
        assert_eq!(
            c.cmd(&["XADD", "k", &id, "n", &i.to_string()]),
            format!("${}\r\n{id}\r\n", id.len()).into_bytes()
        );
    }
    assert_eq!(c.cmd(&["XACK", "k", "g", "1103-1"]), b":1\r\n");
    let before = state(&mut c);
    server.restart();
    c = Raw::connect(server.port);
    assert_eq!(
        state(&mut c),
        before,
        "state after kill -9 past a checkpoint"
    );
    assert_eq!(persistence(&mut c, "raft_first_index"), first);
    // A second checkpoint after a write (the restart's own entry is not a proposal), and
    // the group goes on at the next index.
    assert_eq!(
        c.cmd(&["XADD", "k", "9999-1", "n", "x"]),
        b"$6\r\n9999-1\r\n"
    );
    let second = checkpoint_past(&mut c, first);
    assert_eq!(
        c.cmd(&["XADD", "k", "9999-2", "n", "y"]),
        b"$6\r\n9999-2\r\n"
    );
    let before = state(&mut c);
    server.restart();
    c = Raw::connect(server.port);
    assert_eq!(
        state(&mut c),
        before,
        "state after kill -9 past a second checkpoint"
    );
    assert!(persistence(&mut c, "raft_first_index") >= second);
    // `rill check` reads the directory as the server does.
    drop(c);
    killed_and_checked(&mut server);
}

/// Kills `server` (SIGKILL) and runs `rill check` on its directory, which must pass; its
/// report.
fn killed_and_checked(server: &mut TestServer) -> String {
    server.signal_and_wait(9);
    let out = Command::new(env!("CARGO_BIN_EXE_rill"))
        .arg("check")
        .arg(&server.dir)
        .output()
        .expect("rill check");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    text
}

#[test]
fn info_shows_the_group() {
    let server = raft();
    let mut c = Raw::connect(server.port);
    assert_eq!(c.cmd(&["XADD", "i", "1-1", "a", "b"]), b"$3\r\n1-1\r\n");
    let info = String::from_utf8_lossy(&c.cmd(&["INFO", "persistence"])).into_owned();
    let field = |name: &str| -> String {
        info.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .unwrap_or_else(|| panic!("no {name} in {info}"))
            .to_string()
    };
    assert_eq!(field("raft_enabled"), "1");
    assert_eq!(field("raft_role"), "leader");
    assert_eq!(field("raft_term"), "1");
    let commit: u64 = field("raft_commit_index").parse().expect("commit");
    let last: u64 = field("raft_last_index").parse().expect("last");
    // The group's own entry of term 1, then the XADD: acknowledged, so committed.
    assert_eq!(commit, 2);
    assert_eq!(last, 2);
    assert_eq!(field("log_poisoned"), "0");
    // The single-node server has none of these.
    let plain = single();
    let mut p = Raw::connect(plain.port);
    let info = String::from_utf8_lossy(&p.cmd(&["INFO", "persistence"])).into_owned();
    assert!(!info.contains("raft_"), "{info}");
}

#[test]
fn appendfsync_cannot_be_weakened_at_run_time() {
    let server = raft();
    let mut c = Raw::connect(server.port);
    let reply =
        String::from_utf8_lossy(&c.cmd(&["CONFIG", "SET", "appendfsync", "everysec"])).into_owned();
    assert!(
        reply.starts_with("-ERR") && reply.contains("requires appendfsync always"),
        "{reply}"
    );
    assert_eq!(
        c.cmd(&["CONFIG", "GET", "appendfsync"]),
        b"*2\r\n$11\r\nappendfsync\r\n$6\r\nalways\r\n"
    );
}

/// Compaction in Raft mode: the leader relocates the few live payloads of mostly-dead
/// older segments through the log (a `Relocate` entry every replica applies), so the next
/// checkpoint deletes those segments; the entries read the same after kill -9.
#[test]
fn compaction_moves_live_payloads_out_of_dead_segments_in_raft_mode() {
    let mut server = TestServer::start_with(&[
        "--cluster-raft",
        "yes",
        "--appendfsync",
        "always",
        "--segment-size",
        "4mb",
        "--checkpoint-interval",
        "3600",
    ]);
    let mut c = Raw::connect(server.port);
    // 16 KiB entries in 4 MiB segments: a segment's dead bytes pass compaction's 1 MiB
    // minimum once most of its entries are gone.
    let big = "y".repeat(16384);
    for i in 1..=1000u64 {
        let id = format!("{i}-1");
        assert!(c
            .cmd(&["XADD", "k", &id, "n", &i.to_string(), "pad", &big])
            .starts_with(b"$"));
    }
    // Every 100th entry stays: each older segment keeps a few live payloads.
    for i in (1..=1000u64).filter(|i| i % 100 != 0) {
        assert_eq!(c.cmd(&["XDEL", "k", &format!("{i}-1")]), b":1\r\n");
    }
    let range = c.cmd(&["XRANGE", "k", "-", "+"]);
    let before = segments(&server.dir);
    assert!(before >= 4, "{before} segments");
    let first = persistence(&mut c, "raft_first_index");
    checkpoint_past(&mut c, first);
    // The checkpoint keeps the segments with live payloads; compaction moves them out and
    // checkpoints again, which deletes them.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while segments(&server.dir) > 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "{before} segments before, still {} (compaction did not empty the old ones)",
            segments(&server.dir)
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(c.cmd(&["XRANGE", "k", "-", "+"]), range);
    drop(c);
    server.restart();
    let mut c = Raw::connect(server.port);
    assert_eq!(c.cmd(&["XRANGE", "k", "-", "+"]), range);
}
