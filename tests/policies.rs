//! Broker policies (Rill only, issue #16) against a real listening Rill: retention by age,
//! bytes and length, enforced by the server's sweep without any write; per-stream
//! `RILL.POLICY` overrides over the `stream-retention-*` defaults; Redis 8.2's KEEPREF/
//! DELREF/ACKED semantics; durability (the policy and the sweep's trims survive `kill -9`
//! and checkpoints, and replay never decides again by the clock); and Redis replies
//! (XINFO) left byte-exact.
mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{Raw, TestServer};

/// The sweep runs every 50 ms in these tests.
const FAST: &[&str] = &["--stream-retention-interval", "50"];

fn text(r: &mut Raw, args: &[&str]) -> String {
    String::from_utf8_lossy(&r.cmd(args)).into_owned()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn xlen(r: &mut Raw, key: &str) -> u64 {
    let reply = text(r, &["XLEN", key]);
    reply
        .trim_start_matches(':')
        .trim_end()
        .parse()
        .unwrap_or_else(|_| panic!("XLEN reply {reply:?}"))
}

/// Waits until `key` has `want` entries (the sweep runs in the background), or panics.
fn wait_len(r: &mut Raw, key: &str, want: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let len = xlen(r, key);
        if len == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{key} has {len} entries, want {want}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// IDs of a stream, oldest first.
fn ids(r: &mut Raw, key: &str) -> Vec<String> {
    let reply = text(r, &["XRANGE", key, "-", "+"]);
    reply
        .split("\r\n")
        .filter(|l| {
            l.contains('-') && l.chars().all(|c| c.is_ascii_digit() || c == '-') && !l.is_empty()
        })
        .map(str::to_string)
        .collect()
}

fn add(r: &mut Raw, key: &str, id: &str) {
    let reply = text(r, &["XADD", key, id, "f", "v"]);
    assert!(reply.starts_with('$'), "XADD {id}: {reply}");
}

fn info_field(r: &mut Raw, field: &str) -> Option<String> {
    let info = text(r, &["INFO", "policies"]);
    info.split("\r\n")
        .find_map(|l| l.strip_prefix(&format!("{field}:")).map(str::to_string))
}

#[test]
fn set_get_del_and_errors_with_redis_texts() {
    let server = TestServer::start();
    let mut r = server.raw();
    assert_eq!(
        text(&mut r, &["RILL.POLICY", "SET", "nokey", "MAXLEN", "1"]),
        "-ERR no such key\r\n"
    );
    assert_eq!(text(&mut r, &["SET", "str", "x"]), "+OK\r\n");
    assert_eq!(
        text(&mut r, &["RILL.POLICY", "SET", "str", "MAXLEN", "1"]),
        "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
    );
    assert_eq!(
        text(&mut r, &["RILL.POLICY", "GET", "str"]),
        "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
    );
    add(&mut r, "s", "1-0");
    for (args, want) in [
        (
            &["RILL.POLICY", "SET", "s", "MAXLEN", "-1"][..],
            "-ERR value is not an integer or out of range\r\n",
        ),
        (
            &["RILL.POLICY", "SET", "s", "MAXAGE", "x"][..],
            "-ERR value is not an integer or out of range\r\n",
        ),
        (
            &["RILL.POLICY", "SET", "s", "MAXLEN", "1", "MAXLEN", "2"][..],
            "-ERR syntax error\r\n",
        ),
        (
            &["RILL.POLICY", "SET", "s", "ACKED", "DELREF"][..],
            "-ERR syntax error\r\n",
        ),
        (
            &["RILL.POLICY", "SET", "s", "MAXLEN"][..],
            "-ERR syntax error\r\n",
        ),
        (
            &["RILL.POLICY", "SET", "s", "BOGUS", "1"][..],
            "-ERR syntax error\r\n",
        ),
        (
            &["RILL.POLICY", "SET", "s"][..],
            "-ERR wrong number of arguments for 'rill.policy|set' command\r\n",
        ),
        (
            &["RILL.POLICY", "NOPE"][..],
            "-ERR unknown subcommand 'NOPE'. Try RILL.POLICY HELP.\r\n",
        ),
    ] {
        assert_eq!(text(&mut r, args), want, "{args:?}");
    }
    // Nothing set yet: the defaults (all off), nothing of its own.
    assert_eq!(
        text(&mut r, &["RILL.POLICY", "GET", "s"]),
        "*12\r\n$7\r\nmax-age\r\n:0\r\n$9\r\nmax-bytes\r\n:0\r\n$7\r\nmax-len\r\n:0\r\n$4\r\nrefs\r\n$7\r\nkeepref\r\n$3\r\nown\r\n*0\r\n$6\r\ngroups\r\n*0\r\n"
    );
    assert_eq!(
        text(
            &mut r,
            &["RILL.POLICY", "SET", "s", "maxage", "60000", "acked"]
        ),
        "+OK\r\n"
    );
    // A second SET merges: MAXAGE and ACKED stay.
    assert_eq!(
        text(&mut r, &["RILL.POLICY", "SET", "s", "MAXBYTES", "1000000"]),
        "+OK\r\n"
    );
    assert_eq!(
        text(&mut r, &["RILL.POLICY", "GET", "s"]),
        "*12\r\n$7\r\nmax-age\r\n:60000\r\n$9\r\nmax-bytes\r\n:1000000\r\n$7\r\nmax-len\r\n:0\r\n$4\r\nrefs\r\n$5\r\nacked\r\n$3\r\nown\r\n*3\r\n$7\r\nmax-age\r\n$9\r\nmax-bytes\r\n$4\r\nrefs\r\n$6\r\ngroups\r\n*0\r\n"
    );
    // RESP3: a map.
    assert!(text(&mut r, &["HELLO", "3"]).starts_with('%'), "HELLO 3");
    assert!(text(&mut r, &["RILL.POLICY", "GET", "s"]).starts_with("%6\r\n"));
    assert_eq!(
        info_field(&mut r, "streams_with_policy").as_deref(),
        Some("1")
    );
    assert_eq!(text(&mut r, &["RILL.POLICY", "DEL", "s"]), ":1\r\n");
    assert_eq!(text(&mut r, &["RILL.POLICY", "DEL", "s"]), ":0\r\n");
    assert_eq!(text(&mut r, &["RILL.POLICY", "DEL", "nokey"]), ":0\r\n");
    assert_eq!(
        info_field(&mut r, "streams_with_policy").as_deref(),
        Some("0")
    );
    let help = text(&mut r, &["RILL.POLICY", "HELP"]);
    assert!(help.contains("MAXAGE"), "{help}");
}

#[test]
fn length_limit_is_enforced_by_the_sweep_without_any_write() {
    let server = TestServer::start_with(FAST);
    let mut r = server.raw();
    for i in 1..=10 {
        add(&mut r, "s", &format!("{i}-0"));
    }
    assert_eq!(
        text(&mut r, &["RILL.POLICY", "SET", "s", "MAXLEN", "3"]),
        "+OK\r\n"
    );
    // No XADD from here on: the server trims by itself, oldest first.
    wait_len(&mut r, "s", 3);
    assert_eq!(ids(&mut r, "s"), ["8-0", "9-0", "10-0"]);
    let trimmed = info_field(&mut r, "retention_trimmed_entries");
    assert_eq!(trimmed.as_deref(), Some("7"));
    // Trimming is not deleting: XINFO's max-deleted-entry-id stays, as with XTRIM.
    let info = text(&mut r, &["XINFO", "STREAM", "s"]);
    assert!(info.contains("max-deleted-entry-id\r\n$3\r\n0-0"), "{info}");
}

#[test]
fn age_limit_trims_by_entry_id_time() {
    let server = TestServer::start_with(FAST);
    let mut r = server.raw();
    let now = now_ms();
    // Three entries 20 s old, two 1 s old.
    for (i, age) in [20_000u64, 20_000, 20_000, 1_000, 1_000].iter().enumerate() {
        add(&mut r, "s", &format!("{}-{i}", now - age));
    }
    assert_eq!(
        text(&mut r, &["RILL.POLICY", "SET", "s", "MAXAGE", "10000"]),
        "+OK\r\n"
    );
    wait_len(&mut r, "s", 2);
    assert_eq!(
        ids(&mut r, "s"),
        [format!("{}-3", now - 1000), format!("{}-4", now - 1000)]
    );
}

#[test]
fn byte_limit_trims_oldest_whole_nodes_and_keeps_the_newest() {
    // 10 entries per node, each entry about 110 bytes.
    let server = TestServer::start_with(&[
        "--stream-retention-interval",
        "50",
        "--stream-node-max-entries",
        "10",
    ]);
    let mut r = server.raw();
    let value = "x".repeat(100);
    for i in 1..=50 {
        let reply = text(&mut r, &["XADD", "s", &format!("{i}-0"), "f", &value]);
        assert!(reply.starts_with('$'));
    }
    // About 2.5 nodes' worth: the two newest nodes stay.
    assert_eq!(
        text(&mut r, &["RILL.POLICY", "SET", "s", "MAXBYTES", "2800"]),
        "+OK\r\n"
    );
    wait_len(&mut r, "s", 20);
    assert_eq!(ids(&mut r, "s").first().map(String::as_str), Some("31-0"));
    // A limit below one node keeps the newest node.
    assert_eq!(
        text(&mut r, &["RILL.POLICY", "SET", "s", "MAXBYTES", "1"]),
        "+OK\r\n"
    );
    wait_len(&mut r, "s", 10);
    assert_eq!(ids(&mut r, "s").first().map(String::as_str), Some("41-0"));
}

#[test]
fn config_defaults_apply_to_every_stream_and_a_stream_may_opt_out() {
    let server = TestServer::start_with(&[
        "--stream-retention-interval",
        "50",
        "--stream-retention-max-len",
        "2",
    ]);
    let mut r = server.raw();
    // `b` turns the length limit off for itself (0 = no limit) before it grows past it.
    add(&mut r, "b", "1-0");
    assert_eq!(
        text(&mut r, &["RILL.POLICY", "SET", "b", "MAXLEN", "0"]),
        "+OK\r\n"
    );
    for i in 2..=5 {
        add(&mut r, "b", &format!("{i}-0"));
    }
    for i in 1..=5 {
        add(&mut r, "a", &format!("{i}-0"));
    }
    wait_len(&mut r, "a", 2);
    // Several sweeps later `b` is still whole.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(xlen(&mut r, "b"), 5);
    assert_eq!(
        info_field(&mut r, "retention_max_len").as_deref(),
        Some("2")
    );
    // The defaults change at run time.
    assert_eq!(
        text(&mut r, &["CONFIG", "SET", "stream-retention-max-len", "1"]),
        "+OK\r\n"
    );
    wait_len(&mut r, "a", 1);
    assert_eq!(
        text(&mut r, &["CONFIG", "GET", "stream-retention-refs"]),
        "*2\r\n$21\r\nstream-retention-refs\r\n$7\r\nkeepref\r\n"
    );
}

#[test]
fn acked_never_drops_what_a_group_has_not_acknowledged() {
    let server = TestServer::start_with(FAST);
    let mut r = server.raw();
    for i in 1..=6 {
        add(&mut r, "s", &format!("{i}-0"));
    }
    assert_eq!(
        text(&mut r, &["XGROUP", "CREATE", "s", "g", "0"]),
        "+OK\r\n"
    );
    // g reads 1..4; acknowledges 1 and 2 only; 5 and 6 are not delivered yet.
    let read = text(
        &mut r,
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "c",
            "COUNT",
            "4",
            "STREAMS",
            "s",
            ">",
        ],
    );
    assert!(read.contains("4-0"), "{read}");
    assert_eq!(text(&mut r, &["XACK", "s", "g", "1-0", "2-0"]), ":2\r\n");
    assert_eq!(
        text(&mut r, &["RILL.POLICY", "SET", "s", "MAXLEN", "0", "ACKED"]),
        "+OK\r\n"
    );
    // MAXLEN 0 turns the limit off; MAXLEN 1 asks for everything but the newest.
    assert_eq!(
        text(&mut r, &["RILL.POLICY", "SET", "s", "MAXLEN", "1"]),
        "+OK\r\n"
    );
    wait_len(&mut r, "s", 4);
    assert_eq!(ids(&mut r, "s"), ["3-0", "4-0", "5-0", "6-0"]);
    // The rest goes as it is acknowledged.
    assert_eq!(text(&mut r, &["XACK", "s", "g", "3-0", "4-0"]), ":2\r\n");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(ids(&mut r, "s"), ["5-0", "6-0"]);
    let read = text(
        &mut r,
        &["XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", ">"],
    );
    assert!(read.contains("6-0"), "{read}");
    assert_eq!(text(&mut r, &["XACK", "s", "g", "5-0"]), ":1\r\n");
    wait_len(&mut r, "s", 1);
    assert_eq!(ids(&mut r, "s"), ["6-0"]);
}

#[test]
fn delref_drops_trimmed_entries_from_the_pels_keepref_leaves_them() {
    let server = TestServer::start_with(FAST);
    let mut r = server.raw();
    for key in ["keep", "del"] {
        for i in 1..=4 {
            add(&mut r, key, &format!("{i}-0"));
        }
        assert_eq!(
            text(&mut r, &["XGROUP", "CREATE", key, "g", "0"]),
            "+OK\r\n"
        );
        let read = text(
            &mut r,
            &["XREADGROUP", "GROUP", "g", "c", "STREAMS", key, ">"],
        );
        assert!(read.contains("4-0"), "{read}");
    }
    assert_eq!(
        text(&mut r, &["RILL.POLICY", "SET", "keep", "MAXLEN", "1"]),
        "+OK\r\n"
    );
    assert_eq!(
        text(
            &mut r,
            &["RILL.POLICY", "SET", "del", "MAXLEN", "1", "DELREF"]
        ),
        "+OK\r\n"
    );
    wait_len(&mut r, "keep", 1);
    wait_len(&mut r, "del", 1);
    assert!(text(&mut r, &["XPENDING", "keep", "g"]).starts_with("*4\r\n:4\r\n"));
    assert!(text(&mut r, &["XPENDING", "del", "g"]).starts_with("*4\r\n:1\r\n"));
}

#[test]
fn xinfo_replies_are_unchanged_by_a_policy() {
    let server = TestServer::start();
    let mut r = server.raw();
    for i in 1..=3 {
        add(&mut r, "s", &format!("{i}-0"));
    }
    assert_eq!(
        text(&mut r, &["XGROUP", "CREATE", "s", "g", "0"]),
        "+OK\r\n"
    );
    let before = (
        text(&mut r, &["XINFO", "STREAM", "s"]),
        text(&mut r, &["XINFO", "STREAM", "s", "FULL"]),
        text(&mut r, &["XINFO", "GROUPS", "s"]),
        text(&mut r, &["XPENDING", "s", "g"]),
    );
    assert_eq!(
        text(
            &mut r,
            &["RILL.POLICY", "SET", "s", "MAXAGE", "999999999999", "ACKED"]
        ),
        "+OK\r\n"
    );
    let after = (
        text(&mut r, &["XINFO", "STREAM", "s"]),
        text(&mut r, &["XINFO", "STREAM", "s", "FULL"]),
        text(&mut r, &["XINFO", "GROUPS", "s"]),
        text(&mut r, &["XPENDING", "s", "g"]),
    );
    assert_eq!(before, after);
}

#[test]
fn policy_and_trims_survive_kill_9_and_checkpoints_and_replay_does_not_decide_again() {
    // No automatic checkpoint: the first restart replays the log from empty.
    let mut server = TestServer::start_with(&[
        "--stream-retention-interval",
        "50",
        "--compaction-threshold",
        "0",
    ]);
    let mut r = server.raw();
    let now = now_ms();
    for i in 0..10u64 {
        add(&mut r, "s", &format!("{}-0", now - 60_000 + i * 1000));
    }
    for i in 1..=3 {
        add(&mut r, "t", &format!("{i}-0"));
    }
    assert_eq!(
        text(&mut r, &["RILL.POLICY", "SET", "s", "MAXAGE", "55500"]),
        "+OK\r\n"
    );
    assert_eq!(
        text(
            &mut r,
            &["RILL.POLICY", "SET", "t", "MAXLEN", "2", "DELREF"]
        ),
        "+OK\r\n"
    );
    // Entries 0..=4 of `s` are older than 55.5 s when the sweep runs.
    wait_len(&mut r, "s", 5);
    wait_len(&mut r, "t", 2);
    // Stop the sweep deciding anything more (the surviving entries age past the limit
    // as the test runs), then remember the state.
    assert_eq!(
        text(&mut r, &["RILL.POLICY", "SET", "s", "MAXAGE", "0"]),
        "+OK\r\n"
    );
    let digest = text(&mut r, &["DEBUG", "DIGEST"]);
    let s_ids = ids(&mut r, "s");
    let policy = text(&mut r, &["RILL.POLICY", "GET", "t"]);

    // kill -9 and restart: replay applies the logged trims, not the clock.
    server.restart();
    let mut r = server.raw();
    assert_eq!(text(&mut r, &["DEBUG", "DIGEST"]), digest);
    assert_eq!(ids(&mut r, "s"), s_ids);
    assert_eq!(text(&mut r, &["RILL.POLICY", "GET", "t"]), policy);

    // A checkpoint holds the policies too.
    checkpoint_now(&mut r, &server.dir);
    server.restart();
    let mut r = server.raw();
    assert_eq!(text(&mut r, &["DEBUG", "DIGEST"]), digest);
    assert_eq!(text(&mut r, &["RILL.POLICY", "GET", "t"]), policy);
    // …and is still enforced after the restart.
    add(&mut r, "t", "10-0");
    wait_len(&mut r, "t", 2);
    assert_eq!(ids(&mut r, "t"), ["3-0", "10-0"]);
}

#[test]
fn policy_set_inside_multi_and_renamed_streams_keep_their_policy() {
    let server = TestServer::start_with(FAST);
    let mut r = server.raw();
    for i in 1..=5 {
        add(&mut r, "s", &format!("{i}-0"));
    }
    assert_eq!(text(&mut r, &["MULTI"]), "+OK\r\n");
    assert_eq!(
        text(&mut r, &["RILL.POLICY", "SET", "s", "MAXLEN", "2"]),
        "+QUEUED\r\n"
    );
    assert_eq!(text(&mut r, &["RENAME", "s", "moved"]), "+QUEUED\r\n");
    assert_eq!(text(&mut r, &["EXEC"]), "*2\r\n+OK\r\n+OK\r\n");
    wait_len(&mut r, "moved", 2);
    assert!(text(&mut r, &["RILL.POLICY", "GET", "moved"]).contains("max-len\r\n:2"));
}

// ---------------------------------------------------------------------------------------------
// Dead-lettering
// ---------------------------------------------------------------------------------------------

/// The field/value pairs of the entries of `key`, oldest first, as `field=value` strings.
fn entries(r: &mut Raw, key: &str) -> Vec<Vec<String>> {
    let _ = r;
    let mut con = redis::Client::open(format!(
        "redis://127.0.0.1:{}/",
        r.stream.peer_addr().map(|a| a.port()).unwrap_or(0)
    ))
    .and_then(|c| c.get_connection())
    .expect("a redis-rs connection");
    let range: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
        .arg(key)
        .arg("-")
        .arg("+")
        .query(&mut con)
        .expect("XRANGE");
    range
        .into_iter()
        .map(|(_, flat)| {
            flat.chunks(2)
                .map(|p| format!("{}={}", p[0], p.get(1).map_or("", |v| v)))
                .collect()
        })
        .collect()
}

fn field_of(entry: &[String], name: &str) -> Option<String> {
    entry
        .iter()
        .find_map(|p| p.strip_prefix(&format!("{name}=")).map(str::to_string))
}

/// Waits until `key` has `want` entries pending in group `g`.
fn wait_pending(r: &mut Raw, key: &str, want: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = text(r, &["XPENDING", key, "g"]);
        if reply.starts_with(&format!("*4\r\n:{want}\r\n")) {
            return;
        }
        assert!(Instant::now() < deadline, "XPENDING {key} g: {reply}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn group_policy_commands_and_errors() {
    let server = TestServer::start();
    let mut r = server.raw();
    add(&mut r, "s", "1-0");
    assert_eq!(
        text(
            &mut r,
            &["RILL.POLICY", "GROUP", "s", "g", "MAXDELIVER", "3"]
        ),
        "-NOGROUP No such key 's' or consumer group 'g'\r\n"
    );
    assert_eq!(
        text(&mut r, &["XGROUP", "CREATE", "s", "g", "0"]),
        "+OK\r\n"
    );
    for (args, want) in [
        (
            &["RILL.POLICY", "GROUP", "s", "g", "DEADLETTER", "s"][..],
            "-ERR syntax error\r\n",
        ),
        (
            &["RILL.POLICY", "GROUP", "s", "g", "MAXDELIVER", "-3"][..],
            "-ERR value is not an integer or out of range\r\n",
        ),
        (
            &["RILL.POLICY", "GROUP", "s", "g", "MAXDELIVER"][..],
            "-ERR syntax error\r\n",
        ),
        (
            &["RILL.POLICY", "GROUP", "s", "g", "TIMES", "3"][..],
            "-ERR syntax error\r\n",
        ),
    ] {
        assert_eq!(text(&mut r, args), want, "{args:?}");
    }
    assert_eq!(
        text(
            &mut r,
            &["RILL.POLICY", "GROUP", "s", "g", "MAXDELIVER", "3"]
        ),
        "+OK\r\n"
    );
    // Defaults filled in: <key>:dlq, a 30 s ack wait.
    let get = text(&mut r, &["RILL.POLICY", "GET", "s"]);
    assert!(
        get.ends_with("$6\r\ngroups\r\n*2\r\n$1\r\ng\r\n*8\r\n$11\r\nmax-deliver\r\n:3\r\n$11\r\ndead-letter\r\n$5\r\ns:dlq\r\n$8\r\nack-wait\r\n:30000\r\n$7\r\nbackoff\r\n*0\r\n"),
        "{get}"
    );
    assert_eq!(
        text(
            &mut r,
            &[
                "RILL.POLICY",
                "GROUP",
                "s",
                "g",
                "DEADLETTER",
                "dead",
                "ACKWAIT",
                "10"
            ]
        ),
        "+OK\r\n"
    );
    let get = text(&mut r, &["RILL.POLICY", "GET", "s"]);
    assert!(
        get.contains(
            "max-deliver\r\n:3\r\n$11\r\ndead-letter\r\n$4\r\ndead\r\n$8\r\nack-wait\r\n:10\r\n"
        ),
        "{get}"
    );
    assert_eq!(
        text(&mut r, &["RILL.POLICY", "DELGROUP", "s", "g"]),
        ":1\r\n"
    );
    assert_eq!(
        text(&mut r, &["RILL.POLICY", "DELGROUP", "s", "g"]),
        ":0\r\n"
    );
    // XINFO GROUPS and XPENDING are Redis's whatever the policy.
    assert!(text(&mut r, &["RILL.POLICY", "GET", "s"]).ends_with("$6\r\ngroups\r\n*0\r\n"));
}

#[test]
fn entries_past_maxdeliver_move_to_the_dead_letter_stream_while_others_flow() {
    let server = TestServer::start_with(FAST);
    let mut r = server.raw();
    add(&mut r, "jobs", "1-0");
    assert_eq!(
        text(&mut r, &["XADD", "jobs", "2-0", "task", "poison"]),
        "$3\r\n2-0\r\n"
    );
    add(&mut r, "jobs", "3-0");
    assert_eq!(
        text(&mut r, &["XGROUP", "CREATE", "jobs", "g", "0"]),
        "+OK\r\n"
    );
    assert_eq!(
        text(
            &mut r,
            &[
                "RILL.POLICY",
                "GROUP",
                "jobs",
                "g",
                "MAXDELIVER",
                "3",
                "ACKWAIT",
                "100"
            ]
        ),
        "+OK\r\n"
    );
    // Delivery 1: everything; the good ones are acknowledged, the poison is not.
    let read = text(
        &mut r,
        &["XREADGROUP", "GROUP", "g", "w1", "STREAMS", "jobs", ">"],
    );
    assert!(read.contains("3-0"), "{read}");
    assert_eq!(text(&mut r, &["XACK", "jobs", "g", "1-0", "3-0"]), ":2\r\n");
    // Deliveries 2 and 3 through XREADGROUP … CLAIM (Redis 8.4), as an unchanged client
    // redelivers; new entries keep flowing beside it.
    for (delivery, fresh) in [(2, "4-0"), (3, "5-0")] {
        add(&mut r, "jobs", fresh);
        std::thread::sleep(Duration::from_millis(30));
        let read = text(
            &mut r,
            &[
                "XREADGROUP",
                "GROUP",
                "g",
                "w2",
                "CLAIM",
                "20",
                "STREAMS",
                "jobs",
                ">",
            ],
        );
        assert!(
            read.contains("2-0") && read.contains(fresh),
            "delivery {delivery}: {read:?}"
        );
        let row = text(&mut r, &["XPENDING", "jobs", "g", "2-0", "2-0", "1"]);
        assert!(
            row.ends_with(&format!(":{delivery}\r\n")),
            "delivery {delivery}: {row}"
        );
        assert_eq!(text(&mut r, &["XACK", "jobs", "g", fresh]), ":1\r\n");
    }
    // Three deliveries, the last one failed (not acknowledged within 100 ms): dead-lettered.
    wait_pending(&mut r, "jobs", 0);
    let dlq = entries(&mut r, "jobs:dlq");
    assert_eq!(dlq.len(), 1, "{dlq:?}");
    let e = &dlq[0];
    assert_eq!(e[0], "task=poison");
    assert_eq!(field_of(e, "rill-dlq-source-key").as_deref(), Some("jobs"));
    assert_eq!(field_of(e, "rill-dlq-source-id").as_deref(), Some("2-0"));
    assert_eq!(field_of(e, "rill-dlq-group").as_deref(), Some("g"));
    assert_eq!(field_of(e, "rill-dlq-consumer").as_deref(), Some("w2"));
    assert_eq!(field_of(e, "rill-dlq-deliveries").as_deref(), Some("3"));
    assert_eq!(
        field_of(e, "rill-dlq-reason").as_deref(),
        Some("max-deliver")
    );
    let at: u64 = field_of(e, "rill-dlq-time")
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    assert!(at.abs_diff(now_ms()) < 60_000, "time {at}");
    // The source entry stays in the stream (it is acknowledged, not deleted).
    assert_eq!(xlen(&mut r, "jobs"), 5);
    assert_eq!(
        info_field(&mut r, "dead_lettered_entries").as_deref(),
        Some("1")
    );
}

/// Stream `s` with entry `1-0` and group `g` from the start, under `MAXDELIVER max`
/// and an ACKWAIT of a minute (no lease ends during a test).
fn one_entry_under_maxdeliver(r: &mut Raw, max: &str) {
    add(r, "s", "1-0");
    assert_eq!(text(r, &["XGROUP", "CREATE", "s", "g", "0"]), "+OK\r\n");
    assert_eq!(
        text(
            r,
            &[
                "RILL.POLICY",
                "GROUP",
                "s",
                "g",
                "MAXDELIVER",
                max,
                "ACKWAIT",
                "60000"
            ]
        ),
        "+OK\r\n"
    );
}

#[test]
fn an_entry_still_within_its_ack_wait_is_not_dead_lettered() {
    let server = TestServer::start_with(FAST);
    let mut r = server.raw();
    one_entry_under_maxdeliver(&mut r, "1");
    let read = text(
        &mut r,
        &["XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", ">"],
    );
    assert!(read.contains("1-0"));
    std::thread::sleep(Duration::from_millis(400));
    // Delivered once (= MAXDELIVER) but still leased: the consumer may yet acknowledge.
    wait_pending(&mut r, "s", 1);
    assert_eq!(text(&mut r, &["EXISTS", "s:dlq"]), ":0\r\n");
    // XNACK FAIL ends the lease: the next sweep moves it.
    assert_eq!(
        text(&mut r, &["XNACK", "s", "g", "FAIL", "IDS", "1", "1-0"]),
        ":1\r\n"
    );
    wait_pending(&mut r, "s", 0);
    let dlq = entries(&mut r, "s:dlq");
    assert_eq!(
        field_of(&dlq[0], "rill-dlq-deliveries").as_deref(),
        Some("1")
    );
    // XNACK releases the entry from its owner: no consumer to report.
    assert_eq!(field_of(&dlq[0], "rill-dlq-consumer").as_deref(), Some(""));
}

#[test]
fn claim_reads_and_xclaim_never_deliver_an_entry_past_maxdeliver() {
    let server = TestServer::start_with(FAST);
    let mut r = server.raw();
    // A long ACKWAIT: the sweep leaves the spent entry alone while the reads below run.
    one_entry_under_maxdeliver(&mut r, "2");
    let claim_read = [
        "XREADGROUP",
        "GROUP",
        "g",
        "c",
        "CLAIM",
        "0",
        "STREAMS",
        "s",
        ">",
    ];
    assert!(text(
        &mut r,
        &["XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", ">"]
    )
    .contains("1-0"));
    // Delivery 2, through the claim path.
    assert!(text(&mut r, &claim_read).contains("1-0"));
    // A third delivery would pass MAXDELIVER: nothing to claim, nothing new.
    assert_eq!(text(&mut r, &claim_read), "*-1\r\n");
    // Nor XCLAIM (Watermill's redelivery), which JUSTID may still use to move it.
    assert_eq!(
        text(&mut r, &["XCLAIM", "s", "g", "c2", "0", "1-0"]),
        "*0\r\n"
    );
    assert_eq!(
        text(&mut r, &["XCLAIM", "s", "g", "c2", "0", "1-0", "JUSTID"]),
        "*1\r\n$3\r\n1-0\r\n"
    );
    let pending = text(&mut r, &["XPENDING", "s", "g", "-", "+", "10"]);
    assert!(
        pending.contains(":2\r\n"),
        "still delivered twice: {pending}"
    );
    // A blocked claim read is not woken for it either: it times out empty.
    let started = std::time::Instant::now();
    let blocked = [
        "XREADGROUP",
        "GROUP",
        "g",
        "c",
        "BLOCK",
        "300",
        "CLAIM",
        "0",
        "STREAMS",
        "s",
        ">",
    ];
    assert_eq!(text(&mut r, &blocked), "*-1\r\n");
    assert!(started.elapsed() >= Duration::from_millis(290));
}

#[test]
fn xnack_fatal_dead_letters_at_once_only_under_a_policy() {
    let server = TestServer::start();
    let mut r = server.raw();
    for key in ["with", "without"] {
        assert_eq!(
            text(&mut r, &["XADD", key, "1-0", "f", key]),
            "$3\r\n1-0\r\n"
        );
        assert_eq!(
            text(&mut r, &["XGROUP", "CREATE", key, "g", "0"]),
            "+OK\r\n"
        );
        let read = text(
            &mut r,
            &["XREADGROUP", "GROUP", "g", "alice", "STREAMS", key, ">"],
        );
        assert!(read.contains("1-0"));
    }
    assert_eq!(
        text(
            &mut r,
            &[
                "RILL.POLICY",
                "GROUP",
                "with",
                "g",
                "DEADLETTER",
                "graveyard"
            ]
        ),
        "+OK\r\n"
    );
    // The reply is XNACK's own; the move happens in the same record.
    assert_eq!(
        text(&mut r, &["XNACK", "with", "g", "FATAL", "IDS", "1", "1-0"]),
        ":1\r\n"
    );
    assert_eq!(
        text(
            &mut r,
            &["XNACK", "without", "g", "FATAL", "IDS", "1", "1-0"]
        ),
        ":1\r\n"
    );
    assert_eq!(
        text(&mut r, &["XPENDING", "with", "g"]),
        "*4\r\n:0\r\n$-1\r\n$-1\r\n*-1\r\n"
    );
    assert!(text(&mut r, &["XPENDING", "without", "g"]).starts_with("*4\r\n:1\r\n"));
    let dlq = entries(&mut r, "graveyard");
    assert_eq!(dlq.len(), 1);
    assert_eq!(dlq[0][0], "f=with");
    assert_eq!(
        field_of(&dlq[0], "rill-dlq-consumer").as_deref(),
        Some("alice")
    );
    assert_eq!(
        field_of(&dlq[0], "rill-dlq-deliveries").as_deref(),
        Some("1")
    );
    assert_eq!(
        field_of(&dlq[0], "rill-dlq-reason").as_deref(),
        Some("nack-fatal")
    );
    assert_eq!(text(&mut r, &["EXISTS", "without:dlq"]), ":0\r\n");
}

#[test]
fn a_dead_letter_key_of_another_type_leaves_the_entry_pending() {
    let server = TestServer::start_with(FAST);
    let mut r = server.raw();
    add(&mut r, "s", "1-0");
    assert_eq!(text(&mut r, &["SET", "s:dlq", "not a stream"]), "+OK\r\n");
    assert_eq!(
        text(&mut r, &["XGROUP", "CREATE", "s", "g", "0"]),
        "+OK\r\n"
    );
    assert_eq!(
        text(
            &mut r,
            &[
                "RILL.POLICY",
                "GROUP",
                "s",
                "g",
                "MAXDELIVER",
                "1",
                "ACKWAIT",
                "10"
            ]
        ),
        "+OK\r\n"
    );
    let read = text(
        &mut r,
        &["XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", ">"],
    );
    assert!(read.contains("1-0"));
    std::thread::sleep(Duration::from_millis(300));
    wait_pending(&mut r, "s", 1);
    assert_eq!(text(&mut r, &["GET", "s:dlq"]), "$12\r\nnot a stream\r\n");
    // Once the key is a stream the move happens.
    assert_eq!(text(&mut r, &["DEL", "s:dlq"]), ":1\r\n");
    wait_pending(&mut r, "s", 0);
    assert_eq!(xlen(&mut r, "s:dlq"), 1);
}

#[test]
fn dead_letters_and_group_policies_survive_kill_9_and_checkpoints() {
    let mut server = TestServer::start_with(&[
        "--stream-retention-interval",
        "50",
        "--compaction-threshold",
        "0",
    ]);
    let mut r = server.raw();
    for i in 1..=4 {
        add(&mut r, "s", &format!("{i}-0"));
    }
    assert_eq!(
        text(&mut r, &["XGROUP", "CREATE", "s", "g", "0"]),
        "+OK\r\n"
    );
    assert_eq!(
        text(
            &mut r,
            &[
                "RILL.POLICY",
                "GROUP",
                "s",
                "g",
                "MAXDELIVER",
                "1",
                "ACKWAIT",
                "50"
            ]
        ),
        "+OK\r\n"
    );
    let read = text(
        &mut r,
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
    assert!(read.contains("2-0"));
    wait_pending(&mut r, "s", 0);
    assert_eq!(xlen(&mut r, "s:dlq"), 2);
    // Stop further moves so the state is stable, keeping a group policy to check.
    assert_eq!(
        text(
            &mut r,
            &["RILL.POLICY", "GROUP", "s", "g", "MAXDELIVER", "0"]
        ),
        "+OK\r\n"
    );
    let digest = text(&mut r, &["DEBUG", "DIGEST"]);
    let policy = text(&mut r, &["RILL.POLICY", "GET", "s"]);
    let dlq = entries(&mut r, "s:dlq");
    server.restart();
    let mut r = server.raw();
    assert_eq!(text(&mut r, &["DEBUG", "DIGEST"]), digest);
    assert_eq!(text(&mut r, &["RILL.POLICY", "GET", "s"]), policy);
    assert_eq!(entries(&mut r, "s:dlq"), dlq);
    assert!(text(&mut r, &["BGREWRITEAOF"]).starts_with('+'));
    std::thread::sleep(Duration::from_millis(500));
    server.restart();
    let mut r = server.raw();
    assert_eq!(text(&mut r, &["DEBUG", "DIGEST"]), digest);
    assert_eq!(text(&mut r, &["RILL.POLICY", "GET", "s"]), policy);
}

// ---------------------------------------------------------------------------------------------
// Redelivery with backoff
// ---------------------------------------------------------------------------------------------

/// The IDs an `XREADGROUP … CLAIM 0` by `consumer` gets now (claimed and new).
fn claim_now(r: &mut Raw, consumer: &str) -> String {
    text(
        r,
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            consumer,
            "CLAIM",
            "0",
            "STREAMS",
            "s",
            ">",
        ],
    )
}

#[test]
fn backoff_holds_redelivery_through_claim_until_its_step_passed() {
    let server = TestServer::start();
    let mut r = server.raw();
    add(&mut r, "s", "1-0");
    assert_eq!(
        text(&mut r, &["XGROUP", "CREATE", "s", "g", "0"]),
        "+OK\r\n"
    );
    for (args, want) in [
        (
            &["RILL.POLICY", "GROUP", "s", "g", "BACKOFF", "1x"][..],
            "-ERR syntax error\r\n",
        ),
        (
            &["RILL.POLICY", "GROUP", "s", "g", "BACKOFF", ""][..],
            "-ERR syntax error\r\n",
        ),
    ] {
        assert_eq!(text(&mut r, args), want, "{args:?}");
    }
    assert_eq!(
        text(
            &mut r,
            &[
                "RILL.POLICY",
                "GROUP",
                "s",
                "g",
                "ACKWAIT",
                "100",
                "BACKOFF",
                "200ms 1s"
            ]
        ),
        "+OK\r\n"
    );
    assert!(text(&mut r, &["RILL.POLICY", "GET", "s"])
        .ends_with("$7\r\nbackoff\r\n*2\r\n:200\r\n:1000\r\n"));
    // Timed from before each request that got a delivery: the server delivered after it,
    // so a step measured from there can only be longer, however slow the round trip.
    let delivered = Instant::now();
    let first = claim_now(&mut r, "c1");
    assert!(first.contains("1-0"), "{first}");
    // Without the policy CLAIM 0 would take it back at once; with it, not before
    // ACKWAIT + 200 ms after the first delivery.
    assert_eq!(claim_now(&mut r, "c2"), "*-1\r\n");
    let mut again = String::new();
    let mut redelivered = Instant::now();
    while delivered.elapsed() < Duration::from_secs(5) {
        redelivered = Instant::now();
        again = claim_now(&mut r, "c2");
        if again.contains("1-0") {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let waited = delivered.elapsed();
    assert!(again.contains("1-0"), "{again}");
    // Whole milliseconds on the server (see a_nacked_entry_waits_…): up to 1 ms early.
    assert!(
        waited >= Duration::from_millis(299) && waited < Duration::from_millis(2000),
        "second delivery after {waited:?}"
    );
    // The second step (1 s) applies after the second delivery; the last step repeats.
    assert_eq!(claim_now(&mut r, "c3"), "*-1\r\n");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(claim_now(&mut r, "c3"), "*-1\r\n");
    let mut third = String::new();
    while redelivered.elapsed() < Duration::from_secs(5) {
        third = claim_now(&mut r, "c3");
        if third.contains("1-0") {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(third.contains("1-0"), "{third}");
    assert!(redelivered.elapsed() >= Duration::from_millis(1100));
    // Redis's XPENDING shows three deliveries.
    assert!(text(&mut r, &["XPENDING", "s", "g", "-", "+", "10"]).ends_with(":3\r\n"));
}

#[test]
fn a_blocked_claim_read_wakes_when_the_backoff_step_has_passed() {
    let server = TestServer::start();
    let mut r = server.raw();
    delivered_under_backoff(&mut r, "0", "400");
    let started = Instant::now();
    let woke = text(
        &mut r,
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "c2",
            "BLOCK",
            "5000",
            "CLAIM",
            "0",
            "STREAMS",
            "s",
            ">",
        ],
    );
    let waited = started.elapsed();
    assert!(woke.contains("1-0"), "{woke}");
    assert!(
        waited >= Duration::from_millis(350) && waited < Duration::from_millis(3000),
        "woke after {waited:?}"
    );
}

#[test]
fn without_backoff_claim_keeps_redis_rules() {
    let server = TestServer::start();
    let mut r = server.raw();
    add(&mut r, "s", "1-0");
    assert_eq!(
        text(&mut r, &["XGROUP", "CREATE", "s", "g", "0"]),
        "+OK\r\n"
    );
    // A dead-letter policy alone changes nothing about CLAIM.
    assert_eq!(
        text(
            &mut r,
            &[
                "RILL.POLICY",
                "GROUP",
                "s",
                "g",
                "MAXDELIVER",
                "5",
                "ACKWAIT",
                "60000"
            ]
        ),
        "+OK\r\n"
    );
    assert!(claim_now(&mut r, "c1").contains("1-0"));
    assert!(claim_now(&mut r, "c2").contains("1-0"));
}

#[test]
fn a_nacked_entry_waits_for_its_backoff_step_from_the_nack() {
    let server = TestServer::start();
    let mut r = server.raw();
    delivered_under_backoff(&mut r, "60000", "300");
    // The consumer gives up at once: XNACK ends the lease, the 300 ms step counts from here
    // (timed from before the request: the server's time of the NACK is after it).
    let nacked = Instant::now();
    assert_eq!(
        text(&mut r, &["XNACK", "s", "g", "FAIL", "IDS", "1", "1-0"]),
        ":1\r\n"
    );
    assert_eq!(claim_now(&mut r, "c2"), "*-1\r\n");
    let mut again = String::new();
    while nacked.elapsed() < Duration::from_secs(5) {
        again = claim_now(&mut r, "c2");
        if again.contains("1-0") {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(again.contains("1-0"), "{again}");
    // The server keeps times in whole milliseconds (as Redis): the NACK's is rounded down,
    // so the step may end up to a millisecond before 300 ms of real time have passed.
    let waited = nacked.elapsed();
    assert!(
        waited >= Duration::from_millis(299) && waited < Duration::from_millis(2000),
        "redelivered {waited:?} after the NACK"
    );
}

/// The time a NACKed entry's backoff counts from is state: logged with the XNACK and kept
/// in checkpoints, so after kill -9 — from the log, or from a checkpoint — the entry still
/// waits for its step instead of being claimable at once.
#[test]
fn a_nacked_entrys_backoff_survives_kill_9_and_checkpoints() {
    for checkpoint in [false, true] {
        let mut server = TestServer::start_with(&["--appendfsync", "always"]);
        let mut r = server.raw();
        delivered_under_backoff(&mut r, "0", "60000");
        assert_eq!(
            text(&mut r, &["XNACK", "s", "g", "FAIL", "IDS", "1", "1-0"]),
            ":1\r\n"
        );
        assert_eq!(claim_now(&mut r, "c2"), "*-1\r\n");
        if checkpoint {
            checkpoint_now(&mut r, &server.dir);
        }
        drop(r);
        server.restart();
        let mut r = server.raw();
        assert_eq!(
            claim_now(&mut r, "c2"),
            "*-1\r\n",
            "claimable at once after kill -9 (checkpoint: {checkpoint})"
        );
    }
}

/// Asks a server that has none yet for a checkpoint and waits until it is written.
fn checkpoint_now(r: &mut Raw, dir: &std::path::Path) {
    assert!(text(r, &["BGREWRITEAOF"]).starts_with('+'));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_dir(dir.join("log"))
        .map(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().ends_with(".ckp"))
        })
        .unwrap_or(false)
    {
        assert!(Instant::now() < deadline, "no checkpoint written");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Entry 1-0 of stream `s` delivered to consumer c1 of group `g`, whose policy has
/// `ACKWAIT ack_wait` and `BACKOFF backoff`.
fn delivered_under_backoff(r: &mut Raw, ack_wait: &str, backoff: &str) {
    add(r, "s", "1-0");
    assert_eq!(text(r, &["XGROUP", "CREATE", "s", "g", "0"]), "+OK\r\n");
    assert_eq!(
        text(
            r,
            &[
                "RILL.POLICY",
                "GROUP",
                "s",
                "g",
                "ACKWAIT",
                ack_wait,
                "BACKOFF",
                backoff
            ]
        ),
        "+OK\r\n"
    );
    assert!(claim_now(r, "c1").contains("1-0"));
}
