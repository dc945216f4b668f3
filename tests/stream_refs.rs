//! Redis 8.2's reference-aware deletes against a real Rill, without a reference Redis:
//! XDELEX and XACKDEL (every result code, every error text), the `KEEPREF | DELREF |
//! ACKED` options of XADD and XTRIM (ACKED's holes, DELREF emptying every group's and
//! consumer's PEL, the `~` node rules with `stream-node-max-entries`), the stream.tcl and
//! stream-cgroups.tcl cases the reference lists, and that a SIGKILL and restart (log
//! replay, or a checkpoint plus the log after it) rebuilds the same outcome and the
//! index of referenced entries. `tests/differential_refs.rs` compares the same forms
//! with Redis 8.6.3 byte for byte.
mod common;

use common::{Raw, TestServer};

/// Sends `args` and returns the reply bytes as text.
fn r(c: &mut Raw, args: &[&str]) -> String {
    String::from_utf8_lossy(&c.cmd(args)).into_owned()
}

/// The RESP2 (and RESP3: they are the same) reply of an integer array.
fn ints(v: &[i64]) -> String {
    let mut out = format!("*{}\r\n", v.len());
    for n in v {
        out += &format!(":{n}\r\n");
    }
    out
}

fn err(text: &str) -> String {
    format!("-{text}\r\n")
}

fn add(c: &mut Raw, key: &str, ms: std::ops::RangeInclusive<u64>) {
    for i in ms {
        let id = format!("{i}-0");
        assert_eq!(
            r(c, &["XADD", key, &id, "f", "v"]),
            format!("${}\r\n{id}\r\n", id.len())
        );
    }
}

/// The IDs in the stream, as `XRANGE key - +` lists them.
fn ids(c: &mut Raw, key: &str) -> Vec<String> {
    let reply = r(c, &["XRANGE", key, "-", "+"]);
    reply
        .split("\r\n")
        .filter(|l| l.contains('-') && !l.starts_with('$') && !l.starts_with('*'))
        .map(str::to_string)
        .collect()
}

/// XPENDING's summary count for a group.
fn pending(c: &mut Raw, key: &str, group: &str) -> i64 {
    let reply = r(c, &["XPENDING", key, group]);
    let count = reply.split("\r\n").nth(1).expect("count line");
    count.trim_start_matches(':').parse().expect("count")
}

/// A field of XINFO STREAM that is an integer.
fn info_int(c: &mut Raw, key: &str, field: &str) -> i64 {
    let reply = r(c, &["XINFO", "STREAM", key]);
    let lines: Vec<&str> = reply.split("\r\n").collect();
    let at = lines.iter().position(|l| *l == field).expect("field");
    lines[at + 1].trim_start_matches(':').parse().expect("int")
}

fn read_all(c: &mut Raw, key: &str, group: &str, consumer: &str) {
    let reply = r(
        c,
        &["XREADGROUP", "GROUP", group, consumer, "STREAMS", key, ">"],
    );
    assert!(reply.starts_with('*'), "{reply}");
}

#[test]
fn xdelex_result_codes_and_side_effects() {
    let s = TestServer::start();
    let mut c = s.raw();
    // A missing key: -1 per ID, and the IDs are not even parsed.
    assert_eq!(
        r(&mut c, &["XDELEX", "s", "IDS", "2", "1-1", "x"]),
        ints(&[-1, -1])
    );
    add(&mut c, "s", 1..=6);
    // No group: ACKED deletes like KEEPREF.
    assert_eq!(
        r(&mut c, &["XDELEX", "s", "ACKED", "IDS", "1", "1-0"]),
        ints(&[1])
    );
    assert_eq!(r(&mut c, &["XGROUP", "CREATE", "s", "g", "0"]), "+OK\r\n");
    let read = r(
        &mut c,
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
    assert!(read.contains("2-0") && read.contains("3-0"), "{read}");
    assert_eq!(r(&mut c, &["XACK", "s", "g", "2-0"]), ":1\r\n");
    // 2-0 read and acked → 1; 3-0 pending → 2; 4-0 unread → 2; 9-0 absent but above the
    // group's position → 2; 1-0 absent and read → -1.
    assert_eq!(
        r(
            &mut c,
            &["XDELEX", "s", "ACKED", "IDS", "5", "2-0", "3-0", "4-0", "9-0", "1-0"]
        ),
        ints(&[1, 2, 2, 2, -1])
    );
    // KEEPREF leaves the PEL entry of what it deletes.
    assert_eq!(
        r(&mut c, &["XDELEX", "s", "IDS", "2", "3-0", "3-0"]),
        ints(&[1, -1])
    );
    assert_eq!(pending(&mut c, "s", "g"), 1);
    assert_eq!(info_int(&mut c, "s", "length"), 3);
    // DELREF clears it even though the entry is gone (-1), then deletes 4-0.
    assert_eq!(
        r(&mut c, &["XDELEX", "s", "DELREF", "IDS", "2", "3-0", "4-0"]),
        ints(&[-1, 1])
    );
    assert_eq!(pending(&mut c, "s", "g"), 0);
    assert_eq!(ids(&mut c, "s"), vec!["5-0", "6-0"]);
    // Deleting by ID is XDEL's: max-deleted-entry-id and the recorded first ID move.
    let info = r(&mut c, &["XINFO", "STREAM", "s"]);
    assert!(
        info.contains("max-deleted-entry-id\r\n$3\r\n4-0\r\n"),
        "{info}"
    );
    assert!(
        info.contains("recorded-first-entry-id\r\n$3\r\n5-0\r\n"),
        "{info}"
    );
    // RESP3: the same array of integers.
    let mut c3 = s.raw();
    assert!(r(&mut c3, &["HELLO", "3"]).starts_with('%'));
    assert_eq!(
        r(&mut c3, &["XDELEX", "s", "IDS", "2", "5-0", "7-0"]),
        ints(&[1, -1])
    );
    assert_eq!(r(&mut c3, &["XDELEX", "s", "IDS", "1", "6-0"]), ints(&[1]));
    // An emptied stream stays, and answers -1.
    assert_eq!(r(&mut c3, &["XDELEX", "s", "IDS", "1", "6-0"]), ints(&[-1]));
    assert_eq!(r(&mut c3, &["EXISTS", "s"]), ":1\r\n");
}

#[test]
fn xackdel_result_codes() {
    let s = TestServer::start();
    let mut c = s.raw();
    assert_eq!(
        r(&mut c, &["XACKDEL", "s", "g", "IDS", "1", "x"]),
        ints(&[-1])
    );
    add(&mut c, "s", 1..=4);
    // The key exists, the group does not: no NOGROUP.
    assert_eq!(
        r(&mut c, &["XACKDEL", "s", "g", "IDS", "1", "x"]),
        ints(&[-1])
    );
    r(&mut c, &["XGROUP", "CREATE", "s", "g", "0"]);
    r(&mut c, &["XGROUP", "CREATE", "s", "h", "0"]);
    read_all(&mut c, "s", "g", "c");
    // Not pending in g: -1, and nothing is deleted.
    assert_eq!(
        r(&mut c, &["XACKDEL", "s", "h", "IDS", "1", "1-0"]),
        ints(&[-1])
    );
    // h has not read anything: acked in g but kept.
    assert_eq!(
        r(
            &mut c,
            &["XACKDEL", "s", "g", "ACKED", "IDS", "3", "1-0", "1-0", "2-0"]
        ),
        ints(&[2, -1, 2])
    );
    assert_eq!(pending(&mut c, "s", "g"), 2);
    read_all(&mut c, "s", "h", "d");
    // KEEPREF deletes what it acks, even if it is still pending elsewhere, and answers 1
    // for an entry already gone.
    r(&mut c, &["XDEL", "s", "4-0"]);
    assert_eq!(
        r(&mut c, &["XACKDEL", "s", "g", "IDS", "2", "3-0", "4-0"]),
        ints(&[1, 1])
    );
    assert_eq!(pending(&mut c, "s", "h"), 4);
    // DELREF empties the other group's PEL and its consumer's.
    assert_eq!(
        r(&mut c, &["XACKDEL", "s", "h", "DELREF", "IDS", "1", "1-0"]),
        ints(&[1])
    );
    assert_eq!(pending(&mut c, "s", "h"), 3);
    assert_eq!(
        r(&mut c, &["XACKDEL", "s", "g", "IDS", "1", "1-0"]),
        ints(&[-1])
    );
    // ACKED deletes once nobody references the entry: the last group's XACKDEL.
    assert_eq!(
        r(
            &mut c,
            &["XACKDEL", "s", "h", "ACKED", "IDS", "2", "2-0", "2-0"]
        ),
        ints(&[1, -1])
    );
    assert_eq!(ids(&mut c, "s"), Vec::<String>::new());
}

#[test]
fn every_error_text_in_redis_order() {
    let s = TestServer::start();
    let mut c = s.raw();
    let arity = |cmd: &str| {
        err(&format!(
            "ERR wrong number of arguments for '{cmd}' command"
        ))
    };
    assert_eq!(r(&mut c, &["XDELEX", "s", "DELREF"]), arity("xdelex"));
    assert_eq!(r(&mut c, &["XDELEX", "s", "IDS", "1"]), arity("xdelex"));
    assert_eq!(r(&mut c, &["XACKDEL", "s", "g"]), arity("xackdel"));
    assert_eq!(
        r(&mut c, &["XACKDEL", "s", "g", "IDS", "1"]),
        arity("xackdel")
    );
    // The type is checked before the options.
    r(&mut c, &["SET", "str", "v"]);
    let wrongtype = err("WRONGTYPE Operation against a key holding the wrong kind of value");
    assert_eq!(
        r(&mut c, &["XDELEX", "str", "BAD", "BAD", "BAD"]),
        wrongtype
    );
    assert_eq!(
        r(&mut c, &["XACKDEL", "str", "g", "BAD", "BAD", "BAD"]),
        wrongtype
    );
    let positive = err("ERR Number of IDs must be a positive integer");
    let mismatch = err("ERR The `numids` parameter must match the number of arguments");
    let syntax = err("ERR syntax error");
    let bad_id = err("ERR Invalid stream ID specified as stream command argument");
    for key in ["nokey", "s"] {
        if key == "s" {
            add(&mut c, "s", 1..=1);
            r(&mut c, &["XGROUP", "CREATE", "s", "g", "0"]);
        }
        for numids in ["abc", "0", "-5", "+1", "1.5", "99999999999999999999"] {
            assert_eq!(r(&mut c, &["XDELEX", key, "IDS", numids, "1-1"]), positive);
            assert_eq!(
                r(&mut c, &["XACKDEL", key, "g", "IDS", numids, "1-1"]),
                positive
            );
        }
        assert_eq!(
            r(&mut c, &["XDELEX", key, "IDS", "3", "1-1", "2-2"]),
            mismatch
        );
        assert_eq!(
            r(&mut c, &["XACKDEL", key, "g", "IDS", "3", "1-1", "2-2"]),
            mismatch
        );
        assert_eq!(
            r(&mut c, &["XDELEX", key, "IDS", "1", "1-1", "2-2"]),
            syntax
        );
        assert_eq!(
            r(&mut c, &["XDELEX", key, "IDS", "1", "1-1", "IDS"]),
            syntax
        );
        for (a, b) in [
            ("KEEPREF", "DELREF"),
            ("KEEPREF", "ACKED"),
            ("ACKED", "DELREF"),
        ] {
            assert_eq!(r(&mut c, &["XDELEX", key, a, b, "IDS", "1", "1-1"]), syntax);
            assert_eq!(
                r(&mut c, &["XACKDEL", key, "g", a, b, "IDS", "1", "1-1"]),
                syntax
            );
        }
    }
    // IDs are parsed only on an existing key (and group), all before anything changes.
    assert_eq!(
        r(&mut c, &["XDELEX", "s", "IDS", "2", "1-0", "bad"]),
        bad_id
    );
    assert_eq!(
        r(&mut c, &["XACKDEL", "s", "g", "IDS", "2", "1-0", "+"]),
        bad_id
    );
    assert_eq!(ids(&mut c, "s"), vec!["1-0"]);
    // A second policy token: XTRIM says syntax error, XADD reads it as the ID.
    assert_eq!(
        r(&mut c, &["XTRIM", "s", "MAXLEN", "0", "ACKED", "DELREF"]),
        syntax
    );
    assert_eq!(
        r(&mut c, &["XADD", "s", "ACKED", "ACKED", "*", "f", "v"]),
        bad_id
    );
    assert_eq!(
        r(&mut c, &["XADD", "s", "KEEPREF", "DELREF", "*", "f", "v"]),
        bad_id
    );
    assert_eq!(
        r(&mut c, &["XTRIM", "s", "ACKED", "LIMIT", "5"]),
        err("ERR syntax error, LIMIT cannot be used without specifying a trimming strategy")
    );
    assert_eq!(r(&mut c, &["XTRIM", "s", "DELREF", "KEEPREF"]), syntax,);
    assert_eq!(r(&mut c, &["XTRIM", "s", "ACKED", "x", "y"]), syntax,);
    assert_eq!(ids(&mut c, "s"), vec!["1-0"]);
}

/// stream.tcl's `XADD with MAXLEN option and ACKED option` and `… and DELREF option`.
#[test]
fn xadd_maxlen_with_acked_and_delref() {
    let s = TestServer::start();
    let mut c = s.raw();
    add(&mut c, "m", 1..=5);
    r(&mut c, &["XGROUP", "CREATE", "m", "mygroup", "0"]);
    r(
        &mut c,
        &["XADD", "m", "MAXLEN", "=", "1", "ACKED", "6-0", "f", "v"],
    );
    assert_eq!(info_int(&mut c, "m", "length"), 6);
    r(
        &mut c,
        &[
            "XREADGROUP",
            "GROUP",
            "mygroup",
            "c1",
            "COUNT",
            "1",
            "STREAMS",
            "m",
            ">",
        ],
    );
    r(&mut c, &["XACK", "m", "mygroup", "1-0"]);
    r(
        &mut c,
        &["XADD", "m", "MAXLEN", "=", "1", "ACKED", "7-0", "f", "v"],
    );
    assert_eq!(info_int(&mut c, "m", "length"), 6);
    read_all(&mut c, "m", "mygroup", "c1");
    r(
        &mut c,
        &[
            "XACK", "m", "mygroup", "2-0", "3-0", "4-0", "5-0", "6-0", "7-0",
        ],
    );
    r(
        &mut c,
        &["XADD", "m", "MAXLEN", "=", "1", "ACKED", "*", "f", "v"],
    );
    assert_eq!(info_int(&mut c, "m", "length"), 1);

    add(&mut c, "d", 1..=5);
    r(&mut c, &["XGROUP", "CREATE", "d", "mygroup", "0"]);
    r(
        &mut c,
        &[
            "XREADGROUP",
            "GROUP",
            "mygroup",
            "c1",
            "COUNT",
            "1",
            "STREAMS",
            "d",
            ">",
        ],
    );
    r(
        &mut c,
        &["XADD", "d", "MAXLEN", "=", "1", "DELREF", "*", "f", "v"],
    );
    assert_eq!(info_int(&mut c, "d", "length"), 1);
    assert_eq!(pending(&mut c, "d", "mygroup"), 0);
}

/// ACKED skips what is referenced and goes on past it, leaving holes; DELREF removes
/// every trimmed entry from every group's PEL and every consumer's.
#[test]
fn acked_leaves_holes_and_delref_empties_every_pel() {
    let s = TestServer::start();
    let mut c = s.raw();
    add(&mut c, "s", 1..=10);
    r(&mut c, &["XGROUP", "CREATE", "s", "g", "0"]);
    r(&mut c, &["XGROUP", "CREATE", "s", "h", "0"]);
    read_all(&mut c, "s", "g", "alice");
    r(
        &mut c,
        &[
            "XREADGROUP",
            "GROUP",
            "h",
            "bob",
            "COUNT",
            "6",
            "STREAMS",
            "s",
            ">",
        ],
    );
    r(
        &mut c,
        &[
            "XREADGROUP",
            "GROUP",
            "h",
            "carol",
            "COUNT",
            "2",
            "STREAMS",
            "s",
            ">",
        ],
    );
    r(
        &mut c,
        &["XACK", "s", "g", "1-0", "2-0", "4-0", "7-0", "8-0", "9-0"],
    );
    r(
        &mut c,
        &["XACK", "s", "h", "1-0", "2-0", "3-0", "4-0", "7-0"],
    );
    // Referenced: 3 (g), 5 6 (both), 8 (h), 9 10 (unread by h). 1 2 4 7 go.
    assert_eq!(
        r(&mut c, &["XTRIM", "s", "MINID", "10-0", "ACKED"]),
        ":4\r\n"
    );
    assert_eq!(
        ids(&mut c, "s"),
        vec!["3-0", "5-0", "6-0", "8-0", "9-0", "10-0"]
    );
    assert_eq!(r(&mut c, &["XTRIM", "s", "MAXLEN", "0", "ACKED"]), ":0\r\n");
    // DELREF: 3 5 6 go from the stream and from g's and h's PELs and consumers.
    assert_eq!(
        r(&mut c, &["XTRIM", "s", "MAXLEN", "3", "DELREF"]),
        ":3\r\n"
    );
    assert_eq!(ids(&mut c, "s"), vec!["8-0", "9-0", "10-0"]);
    assert_eq!(pending(&mut c, "s", "g"), 1);
    assert_eq!(pending(&mut c, "s", "h"), 1);
    let consumers = r(&mut c, &["XPENDING", "s", "g"]);
    assert!(
        consumers.ends_with("$5\r\nalice\r\n$1\r\n1\r\n"),
        "{consumers}"
    );
    let h = r(&mut c, &["XPENDING", "s", "h", "-", "+", "10", "carol"]);
    assert!(h.contains("8-0"), "{h}");
    assert_eq!(
        r(&mut c, &["XPENDING", "s", "h", "-", "+", "10", "bob"]),
        "*0\r\n"
    );
    let info = r(&mut c, &["XINFO", "CONSUMERS", "s", "h"]);
    assert!(
        info.contains("$3\r\nbob\r\n$7\r\npending\r\n:0\r\n"),
        "{info}"
    );
}

/// `~` with ACKED and DELREF walks every node the rule covers, frees a node once all
/// its entries went, stops after a partly covered node, and LIMIT stops before a node.
#[test]
fn approximate_ref_trims_follow_the_node_rules() {
    let s = TestServer::start_with(&["--stream-node-max-entries", "2"]);
    let mut c = s.raw();
    // stream.tcl: nodes [1 2] [3 4] [5]; all read, 1 2 4 acked.
    add(&mut c, "m", 1..=5);
    r(&mut c, &["XGROUP", "CREATE", "m", "g", "0"]);
    read_all(&mut c, "m", "g", "c");
    r(&mut c, &["XACK", "m", "g", "1-0", "2-0", "4-0"]);
    assert_eq!(info_int(&mut c, "m", "radix-tree-keys"), 3);
    assert_eq!(
        r(&mut c, &["XTRIM", "m", "MINID", "~", "6-0", "ACKED"]),
        ":3\r\n"
    );
    assert_eq!(ids(&mut c, "m"), vec!["3-0", "5-0"]);
    // [1 2] freed; [3 4] keeps 3.
    assert_eq!(info_int(&mut c, "m", "radix-tree-keys"), 2);

    add(&mut c, "d", 1..=4);
    r(&mut c, &["XGROUP", "CREATE", "d", "g", "0"]);
    read_all(&mut c, "d", "g", "c");
    assert_eq!(
        r(&mut c, &["XTRIM", "d", "MINID", "~", "5-0", "DELREF"]),
        ":4\r\n"
    );
    assert_eq!(info_int(&mut c, "d", "length"), 0);
    assert_eq!(info_int(&mut c, "d", "radix-tree-keys"), 0);
    assert_eq!(pending(&mut c, "d", "g"), 0);

    // `~` with DELREF trims inside a partly covered node, which KEEPREF never does.
    add(&mut c, "p", 1..=5);
    assert_eq!(
        r(&mut c, &["XTRIM", "p", "MAXLEN", "~", "2", "KEEPREF"]),
        ":2\r\n"
    );
    assert_eq!(
        r(&mut c, &["XTRIM", "p", "MAXLEN", "~", "2", "DELREF"]),
        ":1\r\n"
    );
    assert_eq!(ids(&mut c, "p"), vec!["4-0", "5-0"]);
    assert_eq!(info_int(&mut c, "p", "radix-tree-keys"), 2);

    // LIMIT counts the live entries of whole nodes: 3 allows one node and a half.
    add(&mut c, "l", 1..=6);
    assert_eq!(
        r(
            &mut c,
            &["XTRIM", "l", "MAXLEN", "~", "0", "LIMIT", "3", "ACKED"]
        ),
        ":2\r\n"
    );
    assert_eq!(
        r(
            &mut c,
            &["XTRIM", "l", "MAXLEN", "~", "0", "LIMIT", "4", "DELREF"]
        ),
        ":4\r\n"
    );
    assert_eq!(info_int(&mut c, "l", "length"), 0);
}

/// XGROUP DESTROY, SETID and CREATE keep the smallest last-delivered-id right
/// (stream-cgroups.tcl's `XGROUP DESTROY correctly manage min_cgroup_last_id cache`).
#[test]
fn group_changes_move_what_is_referenced() {
    let s = TestServer::start();
    let mut c = s.raw();
    add(&mut c, "m", 1..=5);
    r(&mut c, &["XGROUP", "CREATE", "m", "group1", "1-0"]);
    r(&mut c, &["XGROUP", "CREATE", "m", "group2", "3-0"]);
    assert_eq!(
        r(&mut c, &["XDELEX", "m", "ACKED", "IDS", "1", "1-0"]),
        ints(&[1])
    );
    assert_eq!(
        r(&mut c, &["XDELEX", "m", "ACKED", "IDS", "1", "2-0"]),
        ints(&[2])
    );
    r(&mut c, &["XGROUP", "DESTROY", "m", "group1"]);
    assert_eq!(
        r(&mut c, &["XDELEX", "m", "ACKED", "IDS", "1", "2-0"]),
        ints(&[1])
    );
    r(&mut c, &["XGROUP", "SETID", "m", "group2", "0"]);
    assert_eq!(
        r(&mut c, &["XDELEX", "m", "ACKED", "IDS", "1", "3-0"]),
        ints(&[2])
    );
    r(&mut c, &["XGROUP", "SETID", "m", "group2", "$"]);
    read_all(&mut c, "m", "group2", "c");
    r(&mut c, &["XGROUP", "CREATE", "m", "late", "0"]);
    assert_eq!(
        r(&mut c, &["XDELEX", "m", "ACKED", "IDS", "1", "3-0"]),
        ints(&[2])
    );
    r(&mut c, &["XGROUP", "DESTROY", "m", "late"]);
    // A deleted consumer's entries no longer reference anything.
    r(&mut c, &["XGROUP", "SETID", "m", "group2", "0"]);
    read_all(&mut c, "m", "group2", "c");
    assert_eq!(
        r(&mut c, &["XDELEX", "m", "ACKED", "IDS", "1", "3-0"]),
        ints(&[2])
    );
    assert_eq!(
        r(&mut c, &["XGROUP", "DELCONSUMER", "m", "group2", "c"]),
        ":3\r\n"
    );
    assert_eq!(
        r(&mut c, &["XDELEX", "m", "ACKED", "IDS", "2", "3-0", "4-0"]),
        ints(&[1, 1])
    );
    // XCLAIM and XAUTOCLAIM move entries between consumers without releasing them.
    add(&mut c, "m", 6..=7);
    read_all(&mut c, "m", "group2", "a");
    r(&mut c, &["XCLAIM", "m", "group2", "b", "0", "6-0"]);
    r(&mut c, &["XAUTOCLAIM", "m", "group2", "b", "0", "0"]);
    assert_eq!(
        r(&mut c, &["XDELEX", "m", "ACKED", "IDS", "2", "6-0", "7-0"]),
        ints(&[2, 2])
    );
    r(&mut c, &["XACK", "m", "group2", "6-0", "7-0"]);
    assert_eq!(
        r(&mut c, &["XDELEX", "m", "ACKED", "IDS", "2", "6-0", "7-0"]),
        ints(&[1, 1])
    );
}

/// Everything observable about `keys`, except consumers' idle times.
fn snapshot(c: &mut Raw, keys: &[&str]) -> String {
    let mut out = String::new();
    for key in keys {
        out += &r(c, &["XRANGE", key, "-", "+"]);
        out += &r(c, &["XINFO", "STREAM", key]);
        out += &r(c, &["XINFO", "GROUPS", key]);
        out += &r(c, &["XPENDING", key, "g"]);
        out += &r(c, &["XPENDING", key, "h"]);
    }
    out += &r(c, &["DEBUG", "DIGEST"]);
    out
}

/// Builds streams `a` (ACKED trims with holes, XDELEX, XACKDEL) and `b` (DELREF) whose
/// outcome depends on the groups' PELs and positions.
fn build_history(c: &mut Raw) {
    for key in ["a", "b"] {
        add(c, key, 1..=20);
        r(c, &["XGROUP", "CREATE", key, "g", "0"]);
        r(c, &["XGROUP", "CREATE", key, "h", "0"]);
        r(
            c,
            &[
                "XREADGROUP",
                "GROUP",
                "g",
                "c1",
                "COUNT",
                "15",
                "STREAMS",
                key,
                ">",
            ],
        );
        r(
            c,
            &[
                "XREADGROUP",
                "GROUP",
                "h",
                "c2",
                "COUNT",
                "12",
                "STREAMS",
                key,
                ">",
            ],
        );
        r(
            c,
            &[
                "XACK", key, "g", "1-0", "2-0", "3-0", "5-0", "8-0", "9-0", "11-0",
            ],
        );
        r(
            c,
            &["XACK", key, "h", "1-0", "3-0", "5-0", "6-0", "8-0", "9-0"],
        );
    }
    assert_eq!(
        r(c, &["XTRIM", "a", "MINID", "~", "15-0", "ACKED"]),
        ":5\r\n"
    );
    assert_eq!(
        r(c, &["XADD", "a", "ACKED", "MAXLEN", "2", "21-0", "f", "v"]),
        "$4\r\n21-0\r\n"
    );
    assert_eq!(
        r(
            c,
            &["XDELEX", "a", "ACKED", "IDS", "3", "2-0", "4-0", "11-0"]
        ),
        ints(&[2, 2, 2])
    );
    assert_eq!(
        r(c, &["XACKDEL", "a", "h", "ACKED", "IDS", "2", "2-0", "4-0"]),
        ints(&[1, 2])
    );
    assert_eq!(
        r(c, &["XTRIM", "b", "MAXLEN", "~", "14", "DELREF"]),
        ":6\r\n"
    );
    assert_eq!(
        r(c, &["XDELEX", "b", "DELREF", "IDS", "2", "7-0", "1-0"]),
        ints(&[1, -1])
    );
    assert_eq!(
        r(c, &["XACKDEL", "b", "g", "DELREF", "IDS", "1", "10-0"]),
        ints(&[1])
    );
}

/// Checks the outcome of [`build_history`] and that the index of referenced entries was
/// rebuilt: ACKED answers from it.
fn check_rebuilt(c: &mut Raw) {
    assert_eq!(ids(c, "a").len(), 15);
    assert_eq!(
        r(c, &["XDELEX", "a", "ACKED", "IDS", "2", "4-0", "21-0"]),
        ints(&[2, 2])
    );
    assert_eq!(
        r(c, &["XACKDEL", "a", "g", "ACKED", "IDS", "1", "4-0"]),
        ints(&[1])
    );
    assert_eq!(pending(c, "b", "g") + pending(c, "b", "h"), 6);
}

/// Waits until a checkpoint file exists and no checkpoint is in progress.
fn wait_for_checkpoint(s: &TestServer, c: &mut Raw) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let written = std::fs::read_dir(s.dir.join("log"))
            .expect("log dir")
            .any(|e| {
                e.expect("entry")
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".ckp")
            });
        if written && r(c, &["INFO", "persistence"]).contains("aof_rewrite_in_progress:0") {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint written"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn sigkill_and_restart_keep_the_outcome() {
    let mut s = TestServer::start_with(&["--stream-node-max-entries", "4"]);
    let mut c = s.raw();
    build_history(&mut c);
    let before = snapshot(&mut c, &["a", "b"]);
    // Log replay from empty.
    s.restart();
    let mut c = s.raw();
    assert_eq!(snapshot(&mut c, &["a", "b"]), before);
    // A checkpoint (groups reloaded, the index rebuilt), more trims after it, a SIGKILL.
    assert!(r(&mut c, &["BGREWRITEAOF"]).starts_with('+'));
    wait_for_checkpoint(&s, &mut c);
    s.restart();
    let mut c = s.raw();
    assert_eq!(snapshot(&mut c, &["a", "b"]), before);
    check_rebuilt(&mut c);
    let after = snapshot(&mut c, &["a", "b"]);
    s.restart();
    let mut c = s.raw();
    assert_eq!(snapshot(&mut c, &["a", "b"]), after);
}

/// An ACKED trim is logged as what it removed: replayed with other node settings (so
/// other node boundaries) it removes the same entries, where re-running the rule would not.
#[test]
fn acked_trims_replay_the_same_entries_under_other_node_settings() {
    // Appended into nodes of 3; the restart replays the log under the default of 100.
    let mut s = TestServer::start();
    let mut c = s.raw();
    r(&mut c, &["CONFIG", "SET", "stream-node-max-entries", "3"]);
    add(&mut c, "m", 1..=5);
    r(&mut c, &["XGROUP", "CREATE", "m", "g", "0"]);
    read_all(&mut c, "m", "g", "c");
    r(&mut c, &["XACK", "m", "g", "3-0", "4-0", "5-0"]);
    // Nodes [1 2 3] [4 5]: the first node is partly covered and ends the walk with one
    // entry removed. With one node of five, 3 and 4 would both go.
    assert_eq!(r(&mut c, &["XTRIM", "m", "MAXLEN", "3", "ACKED"]), ":1\r\n");
    let kept = ids(&mut c, "m");
    assert_eq!(kept, vec!["1-0", "2-0", "4-0", "5-0"]);
    drop(c);
    s.restart();
    let mut c = s.raw();
    assert_eq!(ids(&mut c, "m"), kept);
    assert_eq!(pending(&mut c, "m", "g"), 2);
}
