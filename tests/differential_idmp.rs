//! Idempotent production (Redis 8.6: XADD IDMP/IDMPAUTO, XCFGSET, XIDMPRECORD, the
//! `stream-idmp-*` directives, XINFO STREAM's IDMP fields) against Redis 8.6.3, byte for
//! byte, in RESP2 and RESP3.
//!
//! `*` IDs would differ between the two servers (each reads its own clock), so every
//! stream here starts with an entry at ms 9999999999999: `*` then takes the next sequence
//! number on both, and replies are compared unmasked. (Such IIDs never expire by time,
//! which the time-based tests in tests/idmp.rs cover.)
#![cfg(feature = "differential")]

mod common;

use bytes::Bytes;
use common::reference::Twins;

const TOP: &str = "9999999999999-0";

/// XADD forms: new IIDs, duplicates (also of deleted and trimmed entries), per-producer
/// namespaces, IDMPAUTO's field-order independence, and options in any order.
#[test]
fn xadd_idmp_forms_match_redis() {
    let mut t = Twins::start(&[]);
    t.each_protocol(|t| {
        t.same(&["XADD", "s", TOP, "f", "v"]);
        t.same(&["XADD", "s", "IDMP", "p1", "i1", "*", "f", "v"]);
        t.same(&["XADD", "s", "IDMP", "p1", "i1", "*", "f", "v"]);
        // The IID decides, not the fields.
        t.same(&["XADD", "s", "idmp", "p1", "i1", "*", "other", "fields"]);
        t.same(&["XADD", "s", "IDMP", "p2", "i1", "*", "f", "v"]);
        t.same(&["XADD", "s", "IDMP", "p1", "i2", "*", "f", "v"]);
        t.same(&["XADD", "s", "IDMPAUTO", "p1", "*", "a", "1", "b", "2"]);
        t.same(&["XADD", "s", "IDMPAUTO", "p1", "*", "b", "2", "a", "1"]);
        t.same(&["XADD", "s", "idmpauto", "p1", "*", "a", "1", "b", "3"]);
        t.same(&["XADD", "s", "IDMPAUTO", "p1", "*", "A", "1", "b", "3"]);
        t.same(&["XADD", "s", "IDMPAUTO", "p3", "*", "a", "1", "b", "2"]);
        t.same(&["XADD", "s", "IDMPAUTO", "p3", "*", "", ""]);
        t.same(&["XADD", "s", "IDMPAUTO", "p3", "*", "", ""]);
        // Odd IIDs and producer names are just bytes.
        for iid in ["-", "+", "*", "$", "IDMP", "123-456", "ü", "\r\n"] {
            t.same(&["XADD", "s", "IDMP", iid, iid, "*", "f", "v"]);
            t.same(&["XADD", "s", "IDMP", iid, iid, "*", "f", "v"]);
        }
        // Options in any order before the ID; a duplicate does not trim.
        t.same(&[
            "XADD", "s", "MAXLEN", "~", "1000", "IDMP", "p4", "x", "*", "f", "v",
        ]);
        t.same(&[
            "XADD", "s", "IDMP", "p4", "y", "MAXLEN", "=", "3", "*", "f", "v",
        ]);
        t.same(&["XLEN", "s"]);
        t.same(&["XADD", "s", "IDMP", "p4", "y", "MAXLEN", "1", "*", "f", "v"]);
        t.same(&["XLEN", "s"]);
        t.same(&["XADD", "s", "NOMKSTREAM", "IDMP", "p4", "y", "*", "f", "v"]);
        t.same(&["XADD", "s", "IDMP", "p4", "z", "NOMKSTREAM", "*", "f", "v"]);
        t.same(&["XADD", "s", "MINID", "0", "IDMPAUTO", "p4", "*", "f", "v"]);
        // The trimmed and deleted entries' IIDs still answer with their IDs.
        t.same(&["XADD", "s", "IDMP", "p1", "i1", "*", "f", "v"]);
        let last =
            String::from_utf8_lossy(&t.same(&["XADD", "s", "IDMP", "p5", "d", "*", "f", "v"]))
                .lines()
                .nth(1)
                .unwrap_or_default()
                .to_string();
        t.same(&["XDEL", "s", &last]);
        t.same(&["XADD", "s", "IDMP", "p5", "d", "*", "f", "v"]);
        t.same(&["XINFO", "STREAM", "s"]);
        t.same(&["XINFO", "STREAM", "s", "FULL"]);
        // NOMKSTREAM on a missing key: null, nothing created.
        t.same(&[
            "XADD",
            "missing",
            "NOMKSTREAM",
            "IDMP",
            "p",
            "i",
            "*",
            "f",
            "v",
        ]);
        t.same(&["EXISTS", "missing"]);
        // A stream that never used IDMP shows the fields with defaults.
        t.same(&["XADD", "plain", TOP, "f", "v"]);
        t.same(&["XINFO", "STREAM", "plain"]);
        t.same(&["XINFO", "STREAM", "plain", "FULL"]);
        // The producer exists even though the XADD failed on a full stream.
        t.same(&[
            "XADD",
            "full",
            "18446744073709551615-18446744073709551615",
            "f",
            "v",
        ]);
        t.same(&["XADD", "full", "IDMP", "p", "i", "*", "f", "v"]);
        t.same(&["XADD", "full", "IDMPAUTO", "q", "*", "f", "v"]);
        t.same(&["XINFO", "STREAM", "full"]);
    });
}

/// Every XADD IDMP error, in Redis's parse order.
#[test]
fn xadd_idmp_errors_match_redis() {
    let mut t = Twins::start(&[]);
    t.each_protocol(|t| {
        t.same(&["XADD", "s", TOP, "f", "v"]);
        t.same(&["SET", "str", "x"]);
        for args in [
            &[
                "XADD", "s", "IDMP", "p", "i", "IDMP", "q", "j", "*", "f", "v",
            ][..],
            &[
                "XADD", "s", "IDMPAUTO", "p", "IDMP", "q", "j", "*", "f", "v",
            ],
            &[
                "XADD", "s", "IDMP", "p", "i", "IDMPAUTO", "q", "*", "f", "v",
            ],
            &["XADD", "s", "IDMPAUTO", "p", "IDMPAUTO", "p", "*", "f", "v"],
            &["XADD", "s", "IDMPAUTO", "", "*", "f", "v"],
            &["XADD", "s", "IDMP", "", "i", "*", "f", "v"],
            &["XADD", "s", "IDMP", "p", "", "*", "f", "v"],
            &["XADD", "s", "IDMP", "", "", "*", "f", "v"],
            &["XADD", "s", "IDMP", "p", "i", "1-1", "f", "v"],
            &["XADD", "s", "IDMP", "p", "i", "99999999999999-*", "f", "v"],
            &["XADD", "s", "IDMPAUTO", "p", "0-0", "f", "v"],
            &["XADD", "s", "IDMPAUTO", "p", "bad", "f", "v"],
            &["XADD", "s", "IDMP", "p1", "*", "f", "v"],
            &["XADD", "s", "IDMPAUTO", "p", "f", "v"],
            &["XADD", "s", "IDMP", "p", "i"],
            &["XADD", "s", "IDMP", "p", "i", "*"],
            &["XADD", "s", "IDMP", "p", "i", "*", "f"],
            &["XADD", "s", "IDMPAUTO", "p", "*", "f"],
            &["XADD", "s", "IDMPAUTO"],
            &["XADD", "s", "IDMP", "p", "i", "MAXLEN", "-1", "*", "f", "v"],
            &[
                "XADD", "s", "MAXLEN", "1", "MINID", "1", "IDMP", "p", "i", "*", "f", "v",
            ],
            &["XADD", "s", "IDMP", "p", "i", "LIMIT", "5", "*", "f", "v"],
            &["XADD", "str", "IDMP", "p", "i", "*", "f", "v"],
            &["XADD", "str", "IDMP", "", "i", "*", "f", "v"],
        ] {
            t.same(args);
        }
        // Nothing above changed the stream's history.
        t.same(&["XINFO", "STREAM", "s"]);
    });
}

/// XCFGSET: every error in order, effects (a changed value clears the history, the same
/// value keeps it, counters survive), and eviction at IDMP-MAXSIZE.
#[test]
fn xcfgset_matches_redis() {
    let mut t = Twins::start(&[]);
    t.each_protocol(|t| {
        t.same(&["SET", "str", "x"]);
        t.same(&["XCFGSET", "nokey", "IDMP-DURATION", "5"]);
        t.same(&["XCFGSET", "nokey"]);
        t.same(&["XCFGSET", "nokey", "BAD"]);
        t.same(&["XCFGSET", "str", "IDMP-DURATION", "5"]);
        t.same(&["XCFGSET"]);
        t.same(&["XADD", "s", TOP, "f", "v"]);
        for args in [
            &["XCFGSET", "s"][..],
            &["XCFGSET", "s", "IDMP-DURATION"],
            &["XCFGSET", "s", "IDMP-MAXSIZE"],
            &["XCFGSET", "s", "FOO", "1"],
            &["XCFGSET", "s", "IDMP-DURATION", "0"],
            &["XCFGSET", "s", "IDMP-DURATION", "86401"],
            &["XCFGSET", "s", "IDMP-DURATION", "-1"],
            &["XCFGSET", "s", "IDMP-DURATION", "abc"],
            &["XCFGSET", "s", "IDMP-DURATION", "3.14"],
            &["XCFGSET", "s", "IDMP-DURATION", "000000000"],
            &["XCFGSET", "s", "IDMP-DURATION", "120-5"],
            &["XCFGSET", "s", "IDMP-DURATION", "99999999999999999999"],
            &["XCFGSET", "s", "IDMP-DURATION", "5", "IDMP-DURATION", "6"],
            &["XCFGSET", "s", "IDMP-DURATION", "5", "IDMP-DURATION", "x"],
            &["XCFGSET", "s", "IDMP-MAXSIZE", "0"],
            &["XCFGSET", "s", "IDMP-MAXSIZE", "10001"],
            &["XCFGSET", "s", "IDMP-MAXSIZE", "x"],
            &["XCFGSET", "s", "IDMP-MAXSIZE", "5", "IDMP-MAXSIZE", "5"],
            &["XCFGSET", "s", "IDMP-DURATION", "0", "IDMP-MAXSIZE", "0"],
            &["XCFGSET", "s", "IDMP-MAXSIZE", "5", "IDMP-DURATION", "0"],
            &["XCFGSET", "s", "IDMP-DURATION", "5", "FOO"],
        ] {
            t.same(args);
        }
        t.same(&["XINFO", "STREAM", "s"]);
        for i in 0..4 {
            t.same(&["XADD", "s", "IDMP", "p", &format!("i{i}"), "*", "f", "v"]);
        }
        t.same(&["XADD", "s", "IDMP", "p", "i0", "*", "f", "v"]);
        t.same(&[
            "XCFGSET",
            "s",
            "IDMP-DURATION",
            "100",
            "IDMP-MAXSIZE",
            "100",
        ]);
        t.same(&["XINFO", "STREAM", "s"]);
        t.same(&["XCFGSET", "s", "idmp-maxsize", "3"]);
        t.same(&["XINFO", "STREAM", "s"]);
        for i in 0..5 {
            t.same(&["XADD", "s", "IDMP", "p", &format!("j{i}"), "*", "f", "v"]);
            t.same(&["XADD", "s", "IDMP", "q", &format!("j{i}"), "*", "f", "v"]);
        }
        // p holds j2..j4: j0 and j1 were evicted and now count as new.
        t.same(&["XADD", "s", "IDMP", "p", "j0", "*", "f", "v"]);
        t.same(&["XADD", "s", "IDMP", "p", "j4", "*", "f", "v"]);
        t.same(&["XINFO", "STREAM", "s"]);
        t.same(&["XCFGSET", "s", "IDMP-MAXSIZE", "3", "IDMP-DURATION", "100"]);
        t.same(&["XINFO", "STREAM", "s"]);
        t.same(&["XCFGSET", "s", "IDMP-DURATION", "60"]);
        t.same(&["XINFO", "STREAM", "s", "FULL"]);
        t.same(&["XADD", "s", "IDMP", "p", "j4", "*", "f", "v"]);
    });
}

/// XIDMPRECORD: errors in order, idempotence, conflicts, and deduplication after it.
#[test]
fn xidmprecord_matches_redis() {
    let mut t = Twins::start(&[]);
    t.each_protocol(|t| {
        t.same(&["SET", "str", "x"]);
        t.same(&["XADD", "s", TOP, "f", "v"]);
        t.same(&["XADD", "s", "9999999999999-1", "f", "v"]);
        for args in [
            &["XIDMPRECORD", "s", "p", "i"][..],
            &["XIDMPRECORD", "s", "p", "i", "1-1", "x"],
            &["XIDMPRECORD", "s", "p", "i", "bad"],
            &["XIDMPRECORD", "s", "p", "i", "-"],
            &["XIDMPRECORD", "s", "p", "i", "+"],
            &["XIDMPRECORD", "s", "", "i", "bad"],
            &["XIDMPRECORD", "s", "", "i", "1-1"],
            &["XIDMPRECORD", "s", "", "", "1-1"],
            &["XIDMPRECORD", "s", "p", "", "1-1"],
            &["XIDMPRECORD", "nokey", "p", "i", "1-1"],
            &["XIDMPRECORD", "nokey", "", "i", "1-1"],
            &["XIDMPRECORD", "str", "p", "i", "1-1"],
            &["XIDMPRECORD", "s", "p", "i", "1-1"],
            &["XIDMPRECORD", "s", "p", "i", TOP],
            &["XIDMPRECORD", "s", "p", "i", "9999999999999"],
            &["XIDMPRECORD", "s", "p", "i", "9999999999999-1"],
            &["XIDMPRECORD", "s", "q", "i", "9999999999999-1"],
            &["XADD", "s", "IDMP", "p", "i", "*", "f", "v"],
            &["XADD", "s", "IDMP", "q", "i", "*", "f", "v"],
            &["XIDMPRECORD", "s", "p", "\u{fc}\u{fc}", TOP],
            &["XINFO", "STREAM", "s"],
        ] {
            t.same(args);
        }
    });
}

/// IDMPAUTO's IID is Redis's hash byte for byte: XIDMPRECORD with the IID Rill computes
/// for the same fields, against another entry, is a conflict on both servers (on Redis
/// it would be recorded as new if the bytes differed).
#[test]
fn idmpauto_hash_is_redis_s() {
    let mut t = Twins::start(&[]);
    t.each_protocol(|t| {
        t.same(&["XADD", "s", TOP, "x", "y"]);
        let cases: &[&[&str]] = &[
            &["f", "v"],
            &["a", "1", "b", "2", "c", "3"],
            &["", ""],
            &["field\0with\0nul", "ünïcode"],
        ];
        for fields in cases {
            let mut args = vec!["XADD", "s", "IDMPAUTO", "p", "*"];
            args.extend_from_slice(fields);
            t.same(&args);
            let owned: Vec<Bytes> = fields.iter().map(|f| Bytes::from(f.to_string())).collect();
            let iid = rill::engine::idmp::auto_iid(&owned);
            let args: [&[u8]; 5] = [b"XIDMPRECORD", b"s", b"p", &iid, TOP.as_bytes()];
            let rill = t.rill_conn.cmd_bytes(&args);
            let redis = t.redis_conn.cmd_bytes(&args);
            assert_eq!(
                String::from_utf8_lossy(&rill),
                String::from_utf8_lossy(&redis),
                "IDMPAUTO IID of {fields:?}"
            );
            assert!(
                rill.starts_with(b"-ERR IID already exists"),
                "{}",
                String::from_utf8_lossy(&rill)
            );
        }
        t.same(&["XINFO", "STREAM", "s"]);
    });
}

/// The directives (CONFIG GET/SET, ranges and texts) and that each new stream keeps the
/// values it was created with; COMMAND DOCS and COMMAND INFO of the new commands.
#[test]
fn config_and_command_docs_match_redis() {
    let mut t = Twins::start(&[]);
    t.each_protocol(|t| {
        for name in ["stream-idmp-duration", "stream-idmp-maxsize"] {
            t.same(&["CONFIG", "GET", name]);
            for bad in ["0", "-1", "abc", "1.5", "86401", "10001", ""] {
                t.same(&["CONFIG", "SET", name, bad]);
            }
        }
        t.same(&["XADD", "before", TOP, "f", "v"]);
        t.same(&["CONFIG", "SET", "stream-idmp-duration", "7"]);
        t.same(&["CONFIG", "SET", "stream-idmp-maxsize", "10000"]);
        t.same(&["CONFIG", "GET", "stream-idmp-duration"]);
        t.same(&["CONFIG", "GET", "stream-idmp-maxsize"]);
        t.same(&["XADD", "after", TOP, "f", "v"]);
        t.same(&["XGROUP", "CREATE", "mk", "g", "$", "MKSTREAM"]);
        t.same(&["XINFO", "STREAM", "before"]);
        t.same(&["XINFO", "STREAM", "after"]);
        t.same(&["XINFO", "STREAM", "mk"]);
        t.same(&["CONFIG", "SET", "stream-idmp-duration", "86400"]);
        t.same(&["CONFIG", "SET", "stream-idmp-duration", "100"]);
        t.same(&["CONFIG", "SET", "stream-idmp-maxsize", "1"]);
        t.same(&["CONFIG", "SET", "stream-idmp-maxsize", "100"]);
        t.same(&["XINFO", "STREAM", "after"]);
        // RENAME carries the history; DEL drops it.
        t.same(&["XADD", "after", "IDMP", "p", "i", "*", "f", "v"]);
        t.same(&["RENAME", "after", "moved"]);
        t.same(&["XADD", "moved", "IDMP", "p", "i", "*", "f", "v"]);
        t.same(&["XINFO", "STREAM", "moved"]);
        t.same(&["DEL", "moved"]);
        t.same(&["XADD", "moved", TOP, "f", "v"]);
        t.same(&["XINFO", "STREAM", "moved"]);
        t.same(&["COMMAND", "DOCS", "xcfgset"]);
        t.same(&["COMMAND", "DOCS", "xidmprecord"]);
        t.same(&["COMMAND", "INFO", "xcfgset", "xidmprecord"]);
    });
}

/// WATCH: a duplicate XADD, XCFGSET and XIDMPRECORD from another client leave a watcher's
/// EXEC alone (Redis 8.6.3 signals none of them); a new IDMP entry aborts it.
#[test]
fn watch_matches_redis() {
    let mut t = Twins::start(&[]);
    t.each_protocol(|t| {
        t.same(&["XADD", "s", TOP, "f", "v"]);
        t.same(&["XADD", "s", "IDMP", "p", "i", "*", "f", "v"]);
        let mut rill_other = common::Raw::connect(t.rill.port);
        let mut redis_other = common::Raw::connect(t.redis.port);
        for args in [
            &["XADD", "s", "IDMP", "p", "i", "*", "f", "v"][..],
            &["XCFGSET", "s", "IDMP-DURATION", "100"],
            &["XCFGSET", "s", "IDMP-DURATION", "50"],
            &["XIDMPRECORD", "s", "q", "j", TOP],
            &["XIDMPRECORD", "s", "q", "j", TOP],
            &["XADD", "s", "IDMP", "p", "new", "*", "f", "v"],
        ] {
            t.same(&["WATCH", "s"]);
            let (rill, redis) = (rill_other.cmd(args), redis_other.cmd(args));
            assert_eq!(
                String::from_utf8_lossy(&rill),
                String::from_utf8_lossy(&redis)
            );
            t.same(&["MULTI"]);
            t.same(&["PING"]);
            t.same(&["EXEC"]);
        }
    });
}
