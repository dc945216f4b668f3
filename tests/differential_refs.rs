//! Redis 8.2's reference-aware deletes against Redis 8.6.3, byte for byte in RESP2 and
//! RESP3: XDELEX and XACKDEL (every result code, every error of
//! `streamParseAckDelArgsOrReply` in its order), the `KEEPREF | DELREF | ACKED` options of
//! XADD and XTRIM (ACKED's holes, DELREF's PEL cleanup, the `~` node rules of fix #14623
//! with LIMIT, under small `stream-node-max-entries`), the stream.tcl and
//! stream-cgroups.tcl cases of the reference, COMMAND DOCS/INFO, and a seeded random
//! sequence mixing all of it with reads, acks and group changes.
#![cfg(feature = "differential")]

mod common;

use common::reference::Twins;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// XINFO STREAM fields Redis 8.6 added for IDMP (another part of issue #12): removed from
/// both replies, with the top-level length adjusted, so the rest can be compared exactly.
const IDMP_FIELDS: [&str; 6] = [
    "idmp-duration",
    "idmp-maxsize",
    "pids-tracked",
    "iids-tracked",
    "iids-added",
    "iids-duplicates",
];

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// An XINFO STREAM reply without the IDMP fields.
fn without_idmp(reply: &[u8]) -> Vec<u8> {
    let mut out = reply.to_vec();
    let mut removed = 0;
    for name in IDMP_FIELDS {
        let pat = format!("${}\r\n{name}\r\n:", name.len());
        if let Some(at) = find(&out, pat.as_bytes()) {
            let value = at + pat.len();
            let end = value + find(&out[value..], b"\r\n").expect("integer line") + 2;
            out.drain(at..end);
            removed += 1;
        }
    }
    if removed == 0 {
        return out;
    }
    let line_end = find(&out, b"\r\n").expect("header");
    let kind = out[0];
    let n: usize = std::str::from_utf8(&out[1..line_end])
        .expect("header")
        .parse()
        .expect("header");
    let n = if kind == b'*' {
        n - 2 * removed
    } else {
        n - removed
    };
    let mut fixed = format!("{}{n}", kind as char).into_bytes();
    fixed.extend_from_slice(&out[line_end..]);
    fixed
}

/// An XINFO GROUPS reply with the values of `entries-read` and `lag` blanked: Redis 8.0
/// changed how they are estimated after deletions and trims (another part of issue #12),
/// which is not what these tests are about.
fn without_lag(reply: &[u8]) -> Vec<u8> {
    let mut out = reply.to_vec();
    for name in ["entries-read", "lag"] {
        let pat = format!("${}\r\n{name}\r\n", name.len());
        let mut from = 0;
        while let Some(at) = find(&out[from..], pat.as_bytes()) {
            let value = from + at + pat.len();
            let end = value + find(&out[value..], b"\r\n").expect("value line") + 2;
            out.splice(value..end, b"?\r\n".iter().copied());
            from = value;
        }
    }
    out
}

/// Compares the whole visible state of stream `key` and its groups.
fn same_state(t: &mut Twins, key: &str, groups: &[&str]) {
    t.same(&["XLEN", key]);
    t.same(&["XRANGE", key, "-", "+"]);
    t.same_masked(&["XINFO", "STREAM", key], without_idmp);
    t.same_masked(&["XINFO", "GROUPS", key], without_lag);
    for g in groups {
        t.same(&["XPENDING", key, g]);
    }
}

fn add_entries(t: &mut Twins, key: &str, ms: std::ops::RangeInclusive<u64>) {
    for i in ms {
        t.same(&["XADD", key, &format!("{i}-0"), "f", "v"]);
    }
}

#[test]
fn xdelex_forms_errors_and_result_codes() {
    let mut t = Twins::start(&[]);
    t.each_protocol(|t| {
        // Arity, then the type check, then options, then the key, then the IDs.
        t.same(&["XDELEX"]);
        t.same(&["XDELEX", "s"]);
        t.same(&["XDELEX", "s", "DELREF"]);
        t.same(&["XDELEX", "s", "IDS", "1"]);
        t.same(&["SET", "str", "v"]);
        t.same(&["XDELEX", "str", "IDS", "1", "1-1"]);
        t.same(&["XDELEX", "str", "BAD", "BAD", "BAD"]);
        // A missing key: options are still checked, IDs are not.
        t.same(&["XDELEX", "nokey", "IDS", "2", "1-1", "2-2"]);
        t.same(&["XDELEX", "nokey", "IDS", "2", "bad", "-"]);
        t.same(&["XDELEX", "nokey", "IDS", "0", "1-1"]);
        t.same(&["XDELEX", "nokey", "FOO", "IDS", "1", "1-1"]);
        t.same(&["XADD", "s", "1-0", "f", "v"]);
        t.same(&["XGROUP", "CREATE", "s", "g", "0"]);
        for numids in [
            "abc",
            "0",
            "-5",
            "+1",
            "01",
            "1.5",
            " 1",
            "",
            "99999999999999999999",
            "9223372036854775807",
            "3",
        ] {
            t.same(&["XDELEX", "s", "IDS", numids, "1-1", "2-2"]);
        }
        t.same(&["XDELEX", "s", "IDS", "1", "1-1", "2-2"]);
        t.same(&["XDELEX", "s", "IDS", "1", "1-1", "IDS"]);
        t.same(&["XDELEX", "s", "KEEPREF", "DELREF", "IDS", "1", "1-1"]);
        t.same(&["XDELEX", "s", "KEEPREF", "ACKED", "IDS", "1", "1-1"]);
        t.same(&["XDELEX", "s", "ACKED", "DELREF", "IDS", "1", "1-1"]);
        t.same(&["XDELEX", "s", "IDS", "1", "1-1", "ACKED", "ACKED"]);
        t.same(&["XDELEX", "s", "IDS", "x", "ACKED", "DELREF"]);
        t.same(&["XDELEX", "s", "ACKED", "IDS", "1", "1-1", "FOO"]);
        // Bad IDs on an existing key fail the whole command before anything is deleted.
        t.same(&["XDELEX", "s", "IDS", "2", "1-0", "bad"]);
        t.same(&["XDELEX", "s", "IDS", "2", "1-0", "+"]);
        t.same(&["XDELEX", "s", "IDS", "1", "18446744073709551616-0"]);
        t.same(&["XLEN", "s"]);
        // Result codes: 1 deleted, -1 absent (even repeated), 2 referenced.
        add_entries(t, "s", 2..=6);
        t.same(&["XDELEX", "s", "ACKED", "IDS", "2", "1-0", "9-0"]);
        t.same(&[
            "XREADGROUP",
            "GROUP",
            "g",
            "c",
            "COUNT",
            "3",
            "STREAMS",
            "s",
            ">",
        ]);
        t.same(&["XACK", "s", "g", "2-0"]);
        // 2-0 acked and read: deletable; 3-0 pending; 5-0 unread; 9-0 unread and absent.
        t.same(&[
            "XDELEX", "s", "acked", "ids", "4", "2-0", "3-0", "5-0", "9-0",
        ]);
        t.same(&["XDELEX", "s", "IDS", "3", "1", "3-0", "3-0"]);
        // XDELEX KEEPREF left 3-0 pending as a ghost; DELREF of the absent entry clears it.
        t.same(&["XPENDING", "s", "g"]);
        t.same(&["XDELEX", "s", "DELREF", "IDS", "2", "3-0", "4-0"]);
        t.same(&["XPENDING", "s", "g"]);
        // A later IDS block replaces an earlier one; options after the block count.
        t.same(&[
            "XDELEX", "s", "IDS", "1", "5-0", "IDS", "1", "6-0", "KEEPREF",
        ]);
        same_state(t, "s", &["g"]);
        // Everything deleted: the key stays, an empty stream answers -1.
        t.same(&["XDELEX", "s", "IDS", "1", "5-0"]);
        t.same(&["XDELEX", "s", "IDS", "2", "5-0", "1-0"]);
        same_state(t, "s", &["g"]);
        // No groups: ACKED deletes freely.
        add_entries(t, "n", 1..=3);
        t.same(&["XDELEX", "n", "ACKED", "IDS", "3", "1-0", "3-0", "7-0"]);
        same_state(t, "n", &[]);
    });
}

#[test]
fn xdelex_cases_of_stream_tcl() {
    let mut t = Twins::start(&[]);
    t.each_protocol(|t| {
        // DELREF removes the entry from every group's PEL.
        add_entries(t, "m", 1..=2);
        t.same(&["XGROUP", "CREATE", "m", "group1", "0"]);
        t.same(&["XGROUP", "CREATE", "m", "group2", "0"]);
        t.same(&[
            "XREADGROUP",
            "GROUP",
            "group1",
            "consumer1",
            "STREAMS",
            "m",
            ">",
        ]);
        t.same(&[
            "XREADGROUP",
            "GROUP",
            "group2",
            "consumer2",
            "STREAMS",
            "m",
            ">",
        ]);
        t.same(&["XDELEX", "m", "DELREF", "IDS", "2", "1-0", "2-0"]);
        same_state(t, "m", &["group1", "group2"]);
        t.same(&["DEL", "m"]);
        // ACKED deletes only what every group acknowledged (and read).
        add_entries(t, "m", 1..=2);
        for g in ["group1", "group2", "group3"] {
            t.same(&["XGROUP", "CREATE", "m", g, "0"]);
        }
        t.same(&[
            "XREADGROUP",
            "GROUP",
            "group1",
            "consumer1",
            "STREAMS",
            "m",
            ">",
        ]);
        t.same(&[
            "XREADGROUP",
            "GROUP",
            "group2",
            "consumer2",
            "STREAMS",
            "m",
            ">",
        ]);
        t.same(&["XACK", "m", "group1", "1-0", "2-0"]);
        t.same(&["XDELEX", "m", "ACKED", "IDS", "2", "1-0", "2-0"]);
        t.same(&["XACK", "m", "group2", "1-0", "2-0"]);
        t.same(&["XDELEX", "m", "ACKED", "IDS", "2", "1-0", "2-0"]);
        t.same(&[
            "XREADGROUP",
            "GROUP",
            "group3",
            "consumer3",
            "STREAMS",
            "m",
            ">",
        ]);
        t.same(&["XDELEX", "m", "ACKED", "IDS", "2", "1-0", "2-0"]);
        t.same(&["XACK", "m", "group3", "1-0", "2-0"]);
        t.same(&["XDELEX", "m", "ACKED", "IDS", "2", "1-0", "2-0"]);
        same_state(t, "m", &["group1", "group2", "group3"]);
        t.same(&["DEL", "m"]);
        // A group created later has not read anything: ACKED keeps entries for it.
        add_entries(t, "m", 1..=3);
        t.same(&["XGROUP", "CREATE", "m", "group1", "0"]);
        t.same(&[
            "XREADGROUP",
            "GROUP",
            "group1",
            "consumer1",
            "STREAMS",
            "m",
            ">",
        ]);
        t.same(&["XACK", "m", "group1", "1-0", "2-0", "3-0"]);
        t.same(&["XDELEX", "m", "ACKED", "IDS", "1", "1-0"]);
        t.same(&["XGROUP", "CREATE", "m", "group2", "0"]);
        t.same(&["XDELEX", "m", "ACKED", "IDS", "1", "2-0"]);
        t.same(&[
            "XREADGROUP",
            "GROUP",
            "group2",
            "consumer1",
            "STREAMS",
            "m",
            ">",
        ]);
        t.same(&["XACK", "m", "group2", "2-0", "3-0"]);
        t.same(&["XDELEX", "m", "ACKED", "IDS", "2", "2-0", "3-0"]);
        same_state(t, "m", &["group1", "group2"]);
        t.same(&["DEL", "m"]);
        // KEEPREF deletes and leaves the PELs alone.
        add_entries(t, "m", 1..=2);
        t.same(&["XGROUP", "CREATE", "m", "group1", "0"]);
        t.same(&["XGROUP", "CREATE", "m", "group2", "0"]);
        t.same(&[
            "XREADGROUP",
            "GROUP",
            "group1",
            "consumer1",
            "STREAMS",
            "m",
            ">",
        ]);
        t.same(&[
            "XREADGROUP",
            "GROUP",
            "group2",
            "consumer2",
            "STREAMS",
            "m",
            ">",
        ]);
        t.same(&["XDELEX", "m", "KEEPREF", "IDS", "2", "1-0", "2-0"]);
        same_state(t, "m", &["group1", "group2"]);
        t.same(&["DEL", "m"]);
        // XGROUP DESTROY drops the group's references, and the cached smallest last ID.
        for j in 0..5 {
            t.same(&["XADD", "m", &format!("{j}-1"), "item", &j.to_string()]);
        }
        t.same(&["XGROUP", "CREATE", "m", "mygroup", "0"]);
        t.same(&[
            "XREADGROUP",
            "GROUP",
            "mygroup",
            "consumer1",
            "STREAMS",
            "m",
            ">",
        ]);
        let ids = ["IDS", "5", "0-1", "1-1", "2-1", "3-1", "4-1"];
        let mut cmd = vec!["XDELEX", "m", "ACKED"];
        cmd.extend(ids);
        t.same(&cmd);
        t.same(&["XGROUP", "DESTROY", "m", "mygroup"]);
        t.same(&cmd);
        t.same(&["DEL", "m"]);
        add_entries(t, "m", 1..=5);
        t.same(&["XGROUP", "CREATE", "m", "group1", "1-0"]);
        t.same(&["XGROUP", "CREATE", "m", "group2", "3-0"]);
        t.same(&["XDELEX", "m", "ACKED", "IDS", "1", "1-0"]);
        t.same(&["XDELEX", "m", "ACKED", "IDS", "1", "2-0"]);
        t.same(&["XGROUP", "DESTROY", "m", "group1"]);
        t.same(&["XDELEX", "m", "ACKED", "IDS", "1", "2-0"]);
        // SETID moves the smallest last ID both ways.
        t.same(&["XGROUP", "SETID", "m", "group2", "0"]);
        t.same(&["XDELEX", "m", "ACKED", "IDS", "1", "3-0"]);
        t.same(&["XGROUP", "SETID", "m", "group2", "$"]);
        t.same(&["XDELEX", "m", "ACKED", "IDS", "2", "3-0", "9-0"]);
        same_state(t, "m", &["group2"]);
    });
}

#[test]
fn xackdel_forms_errors_and_result_codes() {
    let mut t = Twins::start(&[]);
    t.each_protocol(|t| {
        t.same(&["XACKDEL"]);
        t.same(&["XACKDEL", "s"]);
        t.same(&["XACKDEL", "s", "g"]);
        t.same(&["XACKDEL", "s", "g", "IDS", "1"]);
        t.same(&["SET", "str", "v"]);
        t.same(&["XACKDEL", "str", "g", "IDS", "1", "1-1"]);
        t.same(&["XACKDEL", "str", "g", "BAD", "BAD", "BAD"]);
        // Missing key, then missing group: -1 each, no NOGROUP, IDs not parsed.
        t.same(&["XACKDEL", "s", "g", "IDS", "2", "1-1", "2-2"]);
        t.same(&["XADD", "s", "1-0", "f", "v"]);
        t.same(&["XACKDEL", "s", "g", "IDS", "2", "1-1", "bad"]);
        t.same(&["XACKDEL", "s", "g", "IDS", "0", "1-1"]);
        t.same(&["XGROUP", "CREATE", "s", "g", "0"]);
        for numids in ["abc", "0", "-5", "3"] {
            t.same(&["XACKDEL", "s", "g", "IDS", numids, "1-1", "2-2"]);
        }
        t.same(&["XACKDEL", "s", "g", "IDS", "1", "1-1", "2-2"]);
        t.same(&["XACKDEL", "s", "g", "KEEPREF", "DELREF", "IDS", "1", "1-1"]);
        t.same(&["XACKDEL", "s", "g", "KEEPREF", "ACKED", "IDS", "1", "1-1"]);
        t.same(&["XACKDEL", "s", "g", "DELREF", "ACKED", "IDS", "1", "1-1"]);
        t.same(&["XACKDEL", "s", "g", "IDS", "1", "1-1", "IDS"]);
        t.same(&["XACKDEL", "s", "g", "IDS", "2", "1-0", "bad"]);
        // Nothing pending: -1, nothing changes.
        t.same(&["XACKDEL", "s", "g", "IDS", "1", "1-0"]);
        add_entries(t, "s", 2..=5);
        t.same(&["XGROUP", "CREATE", "s", "h", "0"]);
        t.same(&["XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", ">"]);
        t.same(&[
            "XREADGROUP",
            "GROUP",
            "h",
            "d",
            "COUNT",
            "2",
            "STREAMS",
            "s",
            ">",
        ]);
        // ACKED: 1-0 still pending in h → 2; 3-0 unread by h → 2; duplicate → -1.
        t.same(&[
            "XACKDEL", "s", "g", "ACKED", "IDS", "4", "1-0", "3-0", "3-0", "7-0",
        ]);
        t.same(&["XACKDEL", "s", "h", "ACKED", "IDS", "2", "1-0", "2-0"]);
        // KEEPREF answers 1 for an entry already gone from the stream.
        t.same(&["XDEL", "s", "4-0"]);
        t.same(&["XACKDEL", "s", "g", "IDS", "2", "4-0", "2-0"]);
        // DELREF removes the entry from the other groups' PELs too.
        t.same(&["XREADGROUP", "GROUP", "h", "d", "STREAMS", "s", ">"]);
        t.same(&["XACKDEL", "s", "g", "DELREF", "IDS", "1", "5-0"]);
        t.same(&["XACKDEL", "s", "h", "DELREF", "IDS", "1", "5-0"]);
        same_state(t, "s", &["g", "h"]);
        // More IDs than Redis's static vector.
        t.same(&["DEL", "big"]);
        t.same(&["XGROUP", "CREATE", "big", "g", "$", "MKSTREAM"]);
        add_entries(t, "big", 1..=20);
        t.same(&["XREADGROUP", "GROUP", "g", "c", "STREAMS", "big", ">"]);
        let ids: Vec<String> = (1..=20).map(|i| format!("{i}-0")).collect();
        let mut cmd = vec!["XACKDEL", "big", "g", "IDS", "20"];
        cmd.extend(ids.iter().map(String::as_str));
        t.same(&cmd);
        same_state(t, "big", &["g"]);
    });
}

#[test]
fn xackdel_cases_of_stream_cgroups_tcl() {
    let mut t = Twins::start(&[]);
    t.each_protocol(|t| {
        for policy in ["DELREF", "ACKED", "KEEPREF"] {
            t.same(&["DEL", "m"]);
            add_entries(t, "m", 1..=2);
            t.same(&["XGROUP", "CREATE", "m", "group1", "0"]);
            t.same(&["XGROUP", "CREATE", "m", "group2", "0"]);
            t.same(&[
                "XREADGROUP",
                "GROUP",
                "group1",
                "consumer1",
                "STREAMS",
                "m",
                ">",
            ]);
            t.same(&[
                "XREADGROUP",
                "GROUP",
                "group2",
                "consumer2",
                "STREAMS",
                "m",
                ">",
            ]);
            t.same(&["XACKDEL", "m", "group1", policy, "IDS", "2", "1-0", "2-0"]);
            same_state(t, "m", &["group1", "group2"]);
            t.same(&["XACKDEL", "m", "group2", policy, "IDS", "2", "1-0", "2-0"]);
            same_state(t, "m", &["group1", "group2"]);
        }
    });
}

#[test]
fn xadd_and_xtrim_policy_options() {
    let mut t = Twins::start(&[]);
    t.each_protocol(|t| {
        // Where the option may go, and what a second one becomes.
        t.same(&["XADD", "s", "ACKED", "1-0", "f", "v"]);
        t.same(&["XADD", "s", "KEEPREF", "MAXLEN", "5", "2-0", "f", "v"]);
        t.same(&["XADD", "s", "MAXLEN", "5", "delref", "3-0", "f", "v"]);
        t.same(&[
            "XADD",
            "s",
            "NOMKSTREAM",
            "ACKED",
            "MINID",
            "0",
            "4-0",
            "f",
            "v",
        ]);
        t.same(&["XADD", "s", "KEEPREF", "KEEPREF", "5-0", "f", "v"]);
        t.same(&["XADD", "s", "ACKED", "DELREF", "*", "f", "v"]);
        t.same(&[
            "XADD", "s", "ACKED", "MAXLEN", "~", "1", "LIMIT", "1", "5-0", "f", "v",
        ]);
        t.same(&[
            "XADD",
            "nokey",
            "NOMKSTREAM",
            "ACKED",
            "MAXLEN",
            "1",
            "*",
            "f",
            "v",
        ]);
        t.same(&["XADD", "s", "ACKED", "LIMIT", "5", "6-0", "f", "v"]);
        t.same(&[
            "XADD", "s", "ACKED", "MAXLEN", "1", "LIMIT", "5", "6-0", "f", "v",
        ]);
        t.same(&["XTRIM", "s", "ACKED"]);
        t.same(&["XTRIM", "s", "ACKED", "DELREF"]);
        t.same(&["XTRIM", "s", "ACKED", "KEEPREF", "MAXLEN", "1"]);
        t.same(&["XTRIM", "s", "MAXLEN", "1", "ACKED", "ACKED"]);
        t.same(&["XTRIM", "s", "DELREF", "LIMIT", "5", "FOO"]);
        t.same(&["XTRIM", "s", "DELREF", "LIMIT", "5"]);
        t.same(&["XTRIM", "s", "MAXLEN", "x", "ACKED"]);
        t.same(&["XTRIM", "s", "ACKED", "MAXLEN", "=", "10"]);
        t.same(&["XTRIM", "nokey", "ACKED", "MAXLEN", "0"]);
        t.same(&["XTRIM", "str", "ACKED", "MAXLEN", "0"]);
        t.same(&["SET", "str", "v"]);
        t.same(&["XTRIM", "str", "ACKED", "MAXLEN", "0"]);
        t.same(&["XTRIM", "str", "ACKED", "ACKED", "MAXLEN", "0"]);
        t.same(&["XTRIM", "s", "MINID", "3", "Acked"]);
        same_state(t, "s", &[]);
        t.same(&["XTRIM", "s", "MAXLEN", "0", "DELREF"]);
        same_state(t, "s", &[]);
    });
}

#[test]
fn trim_cases_of_stream_tcl() {
    let mut t = Twins::start(&[]);
    t.each_protocol(|t| {
        // XADD with MAXLEN and ACKED keeps what the group has not acknowledged.
        add_entries(t, "m", 1..=5);
        t.same(&["XGROUP", "CREATE", "m", "mygroup", "0"]);
        t.same(&["XADD", "m", "MAXLEN", "=", "1", "ACKED", "6-0", "f", "v"]);
        t.same(&["XLEN", "m"]);
        t.same(&[
            "XREADGROUP",
            "GROUP",
            "mygroup",
            "consumer1",
            "COUNT",
            "1",
            "STREAMS",
            "m",
            ">",
        ]);
        t.same(&["XACK", "m", "mygroup", "1-0"]);
        t.same(&["XADD", "m", "MAXLEN", "=", "1", "ACKED", "7-0", "f", "v"]);
        t.same(&["XLEN", "m"]);
        t.same(&[
            "XREADGROUP",
            "GROUP",
            "mygroup",
            "consumer1",
            "STREAMS",
            "m",
            ">",
        ]);
        let ids: Vec<String> = (2..=7).map(|i| format!("{i}-0")).collect();
        let mut ack = vec!["XACK", "m", "mygroup"];
        ack.extend(ids.iter().map(String::as_str));
        t.same(&ack);
        t.same(&["XADD", "m", "MAXLEN", "=", "1", "ACKED", "8-0", "f", "v"]);
        same_state(t, "m", &["mygroup"]);
        t.same(&["DEL", "m"]);
        // XADD with MAXLEN and DELREF empties the PEL of what it trims.
        add_entries(t, "m", 1..=5);
        t.same(&["XGROUP", "CREATE", "m", "mygroup", "0"]);
        t.same(&[
            "XREADGROUP",
            "GROUP",
            "mygroup",
            "consumer1",
            "COUNT",
            "1",
            "STREAMS",
            "m",
            ">",
        ]);
        t.same(&["XADD", "m", "MAXLEN", "=", "1", "DELREF", "6-0", "f", "v"]);
        same_state(t, "m", &["mygroup"]);
        t.same(&["DEL", "m"]);
        t.same(&["CONFIG", "SET", "stream-node-max-entries", "2"]);
        // XTRIM MINID ~ ACKED walks every node the rule covers: 3 removed, holes left.
        add_entries(t, "m", 1..=5);
        t.same(&["XGROUP", "CREATE", "m", "mygroup", "0"]);
        t.same(&[
            "XREADGROUP",
            "GROUP",
            "mygroup",
            "consumer1",
            "STREAMS",
            "m",
            ">",
        ]);
        t.same(&["XACK", "m", "mygroup", "1-0", "2-0", "4-0"]);
        t.same(&["XTRIM", "m", "MINID", "~", "6-0", "ACKED"]);
        same_state(t, "m", &["mygroup"]);
        t.same(&["DEL", "m"]);
        // XTRIM MINID ~ DELREF removes every covered entry and its PEL entries.
        add_entries(t, "m", 1..=4);
        t.same(&["XGROUP", "CREATE", "m", "mygroup", "0"]);
        t.same(&[
            "XREADGROUP",
            "GROUP",
            "mygroup",
            "consumer1",
            "STREAMS",
            "m",
            ">",
        ]);
        t.same(&["XTRIM", "m", "MINID", "~", "5-0", "DELREF"]);
        same_state(t, "m", &["mygroup"]);
        t.same(&["CONFIG", "SET", "stream-node-max-entries", "100"]);
    });
}

/// The node rules of DELREF and ACKED trims (fix #14623) where they differ from KEEPREF:
/// `~` walks partly covered nodes too, LIMIT stops before a node, a node is freed only
/// when every live entry it had went, MAXLEN stops at a partly covered node even when
/// ACKED skipped entries there, and an emptied node whose last slot is a tombstone at or
/// above MINID stays.
#[test]
fn ref_trims_follow_redis_node_rules() {
    let mut t = Twins::start(&[]);
    t.each_protocol(|t| {
        t.same(&["CONFIG", "SET", "stream-node-max-entries", "3"]);
        let trims: &[&[&str]] = &[
            &["MAXLEN", "=", "3"],
            &["MAXLEN", "~", "3"],
            &["MAXLEN", "~", "3", "LIMIT", "2"],
            &["MAXLEN", "~", "3", "LIMIT", "3"],
            &["MAXLEN", "~", "3", "LIMIT", "5"],
            &["MAXLEN", "~", "0", "LIMIT", "0"],
            &["MAXLEN", "0"],
            &["MAXLEN", "~", "4"],
            &["MINID", "8-0"],
            &["MINID", "~", "8-0"],
            &["MINID", "~", "8-0", "LIMIT", "4"],
            &["MINID", "~", "99-0"],
            &["MINID", "=", "3-0"],
        ];
        for policy in ["ACKED", "DELREF", "KEEPREF"] {
            for trim in trims {
                t.same(&["DEL", "m"]);
                // Nodes [1 2 3] [4 5 6] [7 8 9] [10 11]; 4-0 deleted, so node 2 has a hole.
                add_entries(t, "m", 1..=11);
                t.same(&["XDEL", "m", "4-0"]);
                t.same(&["XGROUP", "CREATE", "m", "g", "0"]);
                t.same(&["XGROUP", "CREATE", "m", "h", "0"]);
                t.same(&["XREADGROUP", "GROUP", "g", "c", "STREAMS", "m", ">"]);
                t.same(&[
                    "XREADGROUP",
                    "GROUP",
                    "h",
                    "c",
                    "COUNT",
                    "9",
                    "STREAMS",
                    "m",
                    ">",
                ]);
                t.same(&["XACK", "m", "g", "1-0", "2-0", "3-0", "6-0", "8-0", "10-0"]);
                t.same(&[
                    "XACK", "m", "h", "1-0", "2-0", "3-0", "5-0", "6-0", "7-0", "8-0",
                ]);
                let mut cmd = vec!["XTRIM", "m"];
                cmd.extend_from_slice(trim);
                cmd.push(policy);
                t.same(&cmd);
                same_state(t, "m", &["g", "h"]);
                // The same trim again changes nothing more, or what is left to change.
                t.same(&cmd);
                same_state(t, "m", &["g", "h"]);
            }
        }
        // MAXLEN ACKED stops at a partly covered node whose entries it had to skip.
        t.same(&["DEL", "m"]);
        add_entries(t, "m", 1..=5);
        t.same(&["XGROUP", "CREATE", "m", "g", "2-0"]);
        t.same(&["XTRIM", "m", "MAXLEN", "3", "ACKED"]);
        same_state(t, "m", &["g"]);
        // An emptied node ending in a tombstone at MINID stays, then a later trim frees it.
        t.same(&["DEL", "m"]);
        add_entries(t, "m", 1..=6);
        t.same(&["XDEL", "m", "3-0"]);
        t.same(&["XTRIM", "m", "MINID", "3-0", "ACKED"]);
        same_state(t, "m", &[]);
        t.same(&["XTRIM", "m", "MINID", "4-0", "DELREF"]);
        same_state(t, "m", &[]);
        t.same(&["XADD", "m", "MAXLEN", "~", "1", "ACKED", "7-0", "f", "v"]);
        same_state(t, "m", &[]);
        t.same(&["CONFIG", "SET", "stream-node-max-entries", "100"]);
    });
}

#[test]
fn command_docs_and_info_of_the_new_commands() {
    let mut t = Twins::start(&[]);
    t.each_protocol(|t| {
        for name in ["xdelex", "xackdel", "xtrim", "xadd"] {
            t.same(&["COMMAND", "DOCS", name]);
            t.same(&["COMMAND", "INFO", name]);
        }
    });
}

/// A seeded random mix of appends (with trims and policies), reads, acks, claims, group
/// changes, XDEL, XTRIM, XDELEX and XACKDEL on one stream with three groups and small
/// nodes; every reply and, every few steps, the whole state must match.
#[test]
fn random_sequences_match_redis() {
    let mut t = Twins::start(&[]);
    // What the sequences did, so that a generator gone wrong (everything an error,
    // nothing ever trimmed or kept) fails instead of passing on nothing.
    let mut seen = std::collections::BTreeMap::<&str, u32>::new();
    for seed in [1u64, 2, 3] {
        let mut rng = StdRng::seed_from_u64(seed);
        t.each_protocol(|t| {
            t.same(&["CONFIG", "SET", "stream-node-max-entries", "4"]);
            let groups = ["g0", "g1", "g2"];
            let mut next_ms = 1u64;
            for g in groups {
                t.same(&["XGROUP", "CREATE", "s", g, "0", "MKSTREAM"]);
            }
            let policies = ["KEEPREF", "DELREF", "ACKED"];
            for step in 0..400 {
                let g = groups[rng.gen_range(0..groups.len())];
                let c = ["c0", "c1"][rng.gen_range(0..2)];
                let policy = policies[rng.gen_range(0..3)];
                let some_id = |rng: &mut StdRng| format!("{}-0", rng.gen_range(1..next_ms + 2));
                let cmd: Vec<String> = match rng.gen_range(0..100) {
                    0..=29 => {
                        let id = format!("{next_ms}-0");
                        next_ms += 1;
                        let mut cmd = vec!["XADD".to_string(), "s".into()];
                        if rng.gen_bool(0.3) {
                            cmd.push(policy.into());
                            cmd.push("MAXLEN".into());
                            if rng.gen_bool(0.5) {
                                cmd.push("~".into());
                            }
                            cmd.push(rng.gen_range(0..12).to_string());
                        }
                        cmd.extend([id, "f".into(), "v".into()]);
                        cmd
                    }
                    30..=49 => vec![
                        "XREADGROUP".into(),
                        "GROUP".into(),
                        g.into(),
                        c.into(),
                        "COUNT".into(),
                        rng.gen_range(1..5).to_string(),
                        "STREAMS".into(),
                        "s".into(),
                        ">".into(),
                    ],
                    50..=61 => {
                        let mut cmd = vec!["XACK".to_string(), "s".into(), g.into()];
                        for _ in 0..rng.gen_range(1..4) {
                            cmd.push(some_id(&mut rng));
                        }
                        cmd
                    }
                    62..=69 => {
                        let n = rng.gen_range(1..4);
                        let mut cmd = vec!["XDELEX".to_string(), "s".into()];
                        if rng.gen_bool(0.8) {
                            cmd.push(policy.into());
                        }
                        cmd.extend(["IDS".into(), n.to_string()]);
                        for _ in 0..n {
                            cmd.push(some_id(&mut rng));
                        }
                        cmd
                    }
                    70..=77 => {
                        let n = rng.gen_range(1..4);
                        let mut cmd = vec!["XACKDEL".to_string(), "s".into(), g.into()];
                        cmd.push(policy.into());
                        cmd.extend(["IDS".into(), n.to_string()]);
                        for _ in 0..n {
                            cmd.push(some_id(&mut rng));
                        }
                        cmd
                    }
                    78..=85 => {
                        let mut cmd = vec!["XTRIM".to_string(), "s".into()];
                        if rng.gen_bool(0.5) {
                            cmd.push("MAXLEN".into());
                            cmd.push(if rng.gen_bool(0.5) { "~" } else { "=" }.into());
                            cmd.push(rng.gen_range(0..10).to_string());
                        } else {
                            cmd.push("MINID".into());
                            cmd.push(if rng.gen_bool(0.5) { "~" } else { "=" }.into());
                            cmd.push(some_id(&mut rng));
                        }
                        if cmd[3] == "~" && rng.gen_bool(0.5) {
                            cmd.push("LIMIT".into());
                            cmd.push(rng.gen_range(0..8).to_string());
                        }
                        cmd.push(policy.into());
                        cmd
                    }
                    86..=89 => vec!["XDEL".into(), "s".into(), some_id(&mut rng)],
                    90..=93 => vec![
                        "XCLAIM".into(),
                        "s".into(),
                        g.into(),
                        c.into(),
                        "0".into(),
                        some_id(&mut rng),
                        "JUSTID".into(),
                    ],
                    94..=96 => {
                        let to = if rng.gen_bool(0.5) {
                            "$".to_string()
                        } else {
                            some_id(&mut rng)
                        };
                        vec!["XGROUP".into(), "SETID".into(), "s".into(), g.into(), to]
                    }
                    97 => vec![
                        "XGROUP".into(),
                        "DELCONSUMER".into(),
                        "s".into(),
                        g.into(),
                        c.into(),
                    ],
                    _ => {
                        t.same(&["XGROUP", "DESTROY", "s", g]);
                        vec![
                            "XGROUP".into(),
                            "CREATE".into(),
                            "s".into(),
                            g.into(),
                            some_id(&mut rng),
                        ]
                    }
                };
                let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
                let reply = String::from_utf8_lossy(&t.same(&args)).into_owned();
                let name = match args[0] {
                    "XTRIM" if !reply.starts_with(":0") && reply.starts_with(':') => "trimmed",
                    "XADD" if args.len() > 5 => "xadd with a trim",
                    "XDELEX" | "XACKDEL" if reply.contains(":1\r\n") => "deleted by ID",
                    "XDELEX" | "XACKDEL" if reply.contains(":2\r\n") => "kept as referenced",
                    _ if reply.starts_with('-') => "errors",
                    _ => "other",
                };
                *seen.entry(name).or_default() += 1;
                if step % 25 == 0 {
                    same_state(t, "s", &groups);
                }
            }
            same_state(t, "s", &groups);
            t.same(&["CONFIG", "SET", "stream-node-max-entries", "100"]);
        });
    }
    eprintln!("random sequences: {seen:?}");
    for what in [
        "trimmed",
        "xadd with a trim",
        "deleted by ID",
        "kept as referenced",
    ] {
        assert!(
            seen.get(what).copied().unwrap_or(0) >= 20,
            "{what}: {seen:?}"
        );
    }
    assert!(seen.get("errors").copied().unwrap_or(0) < 100, "{seen:?}");
}
