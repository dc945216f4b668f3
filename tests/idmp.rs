//! Idempotent production (Redis 8.6's XADD IDMP/IDMPAUTO, XCFGSET, XIDMPRECORD, the
//! `stream-idmp-*` directives) against a real Rill: error texts, duplicates answered with
//! the original ID, expiry by IDMP-DURATION, eviction at IDMP-MAXSIZE, XINFO's fields,
//! and — the point of it all — a history that survives SIGKILL, checkpoints and compaction
//! (idempotency that forgets after a crash is worse than none), with DEBUG DIGEST equal
//! before and after. Byte-exactness against Redis itself is `tests/differential_idmp.rs`.
mod common;

use std::time::{Duration, Instant};

use common::{Raw, TestServer};

fn text(reply: &[u8]) -> String {
    String::from_utf8_lossy(reply).into_owned()
}

/// The bulk string of a `$n\r\n…\r\n` reply.
fn bulk(reply: &[u8]) -> String {
    let t = text(reply);
    assert!(t.starts_with('$'), "not a bulk string: {t:?}");
    t.lines().nth(1).unwrap_or_default().to_string()
}

/// An integer field of XINFO STREAM (RESP2: a flat array of names and values).
fn xinfo(r: &mut Raw, key: &str, name: &str) -> i64 {
    let t = text(&r.cmd(&["XINFO", "STREAM", key]));
    let lines: Vec<&str> = t.lines().collect();
    let at = lines
        .iter()
        .position(|l| *l == name)
        .unwrap_or_else(|| panic!("no {name} in {t:?}"));
    lines[at + 1]
        .strip_prefix(':')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{name} is not an integer in {t:?}"))
}

/// The six IDMP fields, in XINFO's order.
fn idmp_fields(r: &mut Raw, key: &str) -> [i64; 6] {
    [
        "idmp-duration",
        "idmp-maxsize",
        "pids-tracked",
        "iids-tracked",
        "iids-added",
        "iids-duplicates",
    ]
    .map(|f| xinfo(r, key, f))
}

fn digest(r: &mut Raw) -> String {
    let d = text(&r.cmd(&["DEBUG", "DIGEST"]));
    assert_ne!(d, format!("+{}\r\n", "0".repeat(40)), "empty dataset");
    d
}

/// Polls `cond` until it holds, for at most `within` (a deadline, not a delay).
fn eventually(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    cond()
}

#[test]
fn every_error_has_redis_text() {
    let server = TestServer::start();
    let mut r = server.raw();
    r.cmd(&["XADD", "s", "1-1", "f", "v"]);
    r.cmd(&["SET", "str", "x"]);
    let cases: &[(&[&str], &str)] = &[
        (
            &["XADD", "s", "IDMP", "p", "i", "IDMPAUTO", "q", "*", "f", "v"],
            "ERR syntax error, IDMP/IDMPAUTO specified multiple times",
        ),
        (
            &["XADD", "s", "IDMPAUTO", "p", "IDMP", "q", "i", "*", "f", "v"],
            "ERR syntax error, IDMP/IDMPAUTO specified multiple times",
        ),
        (
            &["XADD", "s", "IDMPAUTO", "", "*", "f", "v"],
            "ERR syntax error, IDMPAUTO requires a non-empty producer ID",
        ),
        (
            &["XADD", "s", "IDMP", "", "i", "*", "f", "v"],
            "ERR syntax error, IDMP requires a non-empty producer ID",
        ),
        (
            &["XADD", "s", "IDMP", "p", "", "*", "f", "v"],
            "ERR syntax error, IDMP requires a non-empty idempotent ID",
        ),
        (
            &["XADD", "s", "IDMP", "p", "i", "5-5", "f", "v"],
            "ERR syntax error, IDMP/IDMPAUTO can be used only with auto-generated IDs",
        ),
        (
            &["XADD", "s", "IDMPAUTO", "p", "5-*", "f", "v"],
            "ERR syntax error, IDMP/IDMPAUTO can be used only with auto-generated IDs",
        ),
        // `*` is taken as the IID and `f` as the ID.
        (
            &["XADD", "s", "IDMP", "p", "*", "f", "v"],
            "ERR Invalid stream ID specified as stream command argument",
        ),
        (
            &["XADD", "s", "IDMP", "p", "i", "*", "f"],
            "ERR wrong number of arguments for 'xadd' command",
        ),
        (
            &["XADD", "str", "IDMP", "p", "i", "*", "f", "v"],
            "WRONGTYPE Operation against a key holding the wrong kind of value",
        ),
        (&["XCFGSET", "nokey", "IDMP-DURATION", "5"], "ERR no such key"),
        (
            &["XCFGSET", "str", "IDMP-DURATION", "5"],
            "WRONGTYPE Operation against a key holding the wrong kind of value",
        ),
        (&["XCFGSET", "s"], "ERR At least one parameter must be specified"),
        (&["XCFGSET", "s", "IDMP-DURATION"], "ERR syntax error"),
        (&["XCFGSET", "s", "BOGUS", "1"], "ERR syntax error"),
        (
            &["XCFGSET", "s", "IDMP-DURATION", "3.14"],
            "ERR value is not an integer or out of range",
        ),
        (
            &["XCFGSET", "s", "IDMP-DURATION", "000000000"],
            "ERR value is not an integer or out of range",
        ),
        (
            &["XCFGSET", "s", "IDMP-DURATION", "0"],
            "ERR IDMP-DURATION must be between 1 and 86400 seconds",
        ),
        (
            &["XCFGSET", "s", "IDMP-DURATION", "86401"],
            "ERR IDMP-DURATION must be between 1 and 86400 seconds",
        ),
        (
            &["XCFGSET", "s", "IDMP-DURATION", "1", "IDMP-DURATION", "1"],
            "ERR IDMP-DURATION specified multiple times",
        ),
        (
            &["XCFGSET", "s", "IDMP-MAXSIZE", "10001"],
            "ERR IDMP-MAXSIZE must be between 1 and 10000 entries",
        ),
        (
            &["XCFGSET", "s", "IDMP-MAXSIZE", "1", "IDMP-MAXSIZE", "2"],
            "ERR IDMP-MAXSIZE specified multiple times",
        ),
        (
            &["XIDMPRECORD", "s", "p", "i", "bad"],
            "ERR Invalid stream ID specified as stream command argument",
        ),
        (
            &["XIDMPRECORD", "s", "", "i", "1-1"],
            "ERR producer ID must be non-empty",
        ),
        (
            &["XIDMPRECORD", "s", "p", "", "1-1"],
            "ERR idempotent ID must be non-empty",
        ),
        (&["XIDMPRECORD", "nokey", "p", "i", "1-1"], "ERR no such key"),
        (
            &["XIDMPRECORD", "s", "p", "i", "2-2"],
            "ERR No such message in stream",
        ),
        (
            &["XIDMPRECORD", "s", "p"],
            "ERR wrong number of arguments for 'xidmprecord' command",
        ),
        (
            &["CONFIG", "SET", "stream-idmp-duration", "0"],
            "ERR CONFIG SET failed (possibly related to argument 'stream-idmp-duration') - argument must be between 1 and 86400 inclusive",
        ),
        (
            &["CONFIG", "SET", "stream-idmp-maxsize", "10001"],
            "ERR CONFIG SET failed (possibly related to argument 'stream-idmp-maxsize') - argument must be between 1 and 10000 inclusive",
        ),
    ];
    for (args, want) in cases {
        assert_eq!(text(&r.cmd(args)), format!("-{want}\r\n"), "{args:?}");
    }
    r.cmd(&["XADD", "s", "IDMP", "p", "i", "*", "f", "v"]);
    assert_eq!(
        text(&r.cmd(&["XIDMPRECORD", "s", "p", "i", "1-1"])),
        "-ERR IID already exists for this producer with a different stream ID\r\n"
    );
    // Only the one good XADD left a trace.
    assert_eq!(idmp_fields(&mut r, "s"), [100, 100, 1, 1, 1, 0]);
}

#[test]
fn duplicates_are_answered_with_the_original_id() {
    let server = TestServer::start();
    let mut r = server.raw();
    let first = bulk(&r.cmd(&["XADD", "s", "IDMP", "p", "order-1", "*", "f", "v"]));
    // A re-send, even with other fields, is the same entry.
    for fields in [["f", "v"], ["other", "x"]] {
        let again = r.cmd(&[
            "XADD", "s", "IDMP", "p", "order-1", "*", fields[0], fields[1],
        ]);
        assert_eq!(bulk(&again), first);
    }
    assert_eq!(text(&r.cmd(&["XLEN", "s"])), ":1\r\n");
    // Another producer's namespace is its own.
    let other = bulk(&r.cmd(&["XADD", "s", "IDMP", "q", "order-1", "*", "f", "v"]));
    assert_ne!(other, first);
    // IDMPAUTO: the same pairs in any order are the same entry; other pairs are not.
    let auto = bulk(&r.cmd(&["XADD", "s", "IDMPAUTO", "p", "*", "a", "1", "b", "2"]));
    let swapped = r.cmd(&["XADD", "s", "IDMPAUTO", "p", "*", "b", "2", "a", "1"]);
    assert_eq!(bulk(&swapped), auto);
    let changed = bulk(&r.cmd(&["XADD", "s", "IDMPAUTO", "p", "*", "a", "1", "b", "3"]));
    assert_ne!(changed, auto);
    // The entry deleted since: still its ID, and nothing appended, nothing trimmed.
    r.cmd(&["XDEL", "s", &first]);
    let len = text(&r.cmd(&["XLEN", "s"]));
    let again = r.cmd(&[
        "XADD", "s", "IDMP", "p", "order-1", "MAXLEN", "0", "*", "f", "v",
    ]);
    assert_eq!(bulk(&again), first);
    assert_eq!(text(&r.cmd(&["XLEN", "s"])), len);
    assert_eq!(idmp_fields(&mut r, "s"), [100, 100, 2, 4, 4, 4]);
    // Neither a duplicate nor XCFGSET nor XIDMPRECORD disturbs a WATCHer (Redis 8.6.3
    // signals none of them); a new entry does.
    let mut w = server.raw();
    let e0 = bulk(&r.cmd(&["XADD", "s", "*", "f", "v"]));
    for args in [
        &["XADD", "s", "IDMP", "p", "order-1", "*", "f", "v"][..],
        &["XCFGSET", "s", "IDMP-DURATION", "100"],
        &["XCFGSET", "s", "IDMP-DURATION", "99"],
        &["XIDMPRECORD", "s", "w", "x", &e0],
    ] {
        w.cmd(&["WATCH", "s"]);
        r.cmd(args);
        w.cmd(&["MULTI"]);
        w.cmd(&["PING"]);
        assert_eq!(text(&w.cmd(&["EXEC"])), "*1\r\n+PONG\r\n", "{args:?}");
    }
    w.cmd(&["WATCH", "s"]);
    r.cmd(&["XADD", "s", "IDMP", "p", "order-2", "*", "f", "v"]);
    w.cmd(&["MULTI"]);
    w.cmd(&["PING"]);
    assert_eq!(text(&w.cmd(&["EXEC"])), "*-1\r\n");
    r.cmd(&["XCFGSET", "s", "IDMP-DURATION", "100"]);
    // XIDMPRECORD makes an existing entry answer for an IID.
    let e = bulk(&r.cmd(&["XADD", "s", "*", "f", "v"]));
    assert_eq!(
        text(&r.cmd(&["XIDMPRECORD", "s", "z", "late", &e])),
        "+OK\r\n"
    );
    assert_eq!(
        text(&r.cmd(&["XIDMPRECORD", "s", "z", "late", &e])),
        "+OK\r\n"
    );
    let dup = r.cmd(&["XADD", "s", "IDMP", "z", "late", "*", "f", "v"]);
    assert_eq!(bulk(&dup), e);
}

#[test]
fn history_expires_after_idmp_duration_and_stays_expired_after_restart() {
    let mut server = TestServer::start();
    let mut r = server.raw();
    r.cmd(&["XADD", "s", "*", "f", "v"]);
    r.cmd(&["XADD", "keep", "*", "f", "v"]);
    assert_eq!(
        text(&r.cmd(&["XCFGSET", "s", "IDMP-DURATION", "1"])),
        "+OK\r\n"
    );
    let first = bulk(&r.cmd(&["XADD", "s", "IDMP", "p", "i", "*", "f", "v"]));
    let kept = bulk(&r.cmd(&["XADD", "keep", "IDMP", "p", "i", "*", "f", "v"]));
    // (Not asserting that it is tracked now: on a slow machine a second may pass.)
    assert_eq!(xinfo(&mut r, "s", "iids-added"), 1);
    // The sweep runs once a second and forgets IIDs whose entry is a second old.
    let forgot = eventually(Duration::from_secs(10), || {
        xinfo(&mut r, "s", "iids-tracked") == 0
    });
    assert!(
        forgot,
        "IDMP-DURATION 1 did not expire: {:?}",
        idmp_fields(&mut r, "s")
    );
    assert_eq!(idmp_fields(&mut r, "s"), [1, 100, 0, 0, 1, 0]);
    // The other stream (100 s) still remembers.
    let dup = r.cmd(&["XADD", "keep", "IDMP", "p", "i", "*", "f", "v"]);
    assert_eq!(bulk(&dup), kept);
    // What the sweep forgot stays forgotten after a crash: its decision was logged with
    // the time it ran at, not re-made by the replaying clock.
    let before = digest(&mut r);
    server.restart();
    let mut r = server.raw();
    assert_eq!(digest(&mut r), before);
    assert_eq!(idmp_fields(&mut r, "s"), [1, 100, 0, 0, 1, 0]);
    let again = bulk(&r.cmd(&["XADD", "s", "IDMP", "p", "i", "*", "f", "v"]));
    assert_ne!(again, first, "an expired IID is new again");
    let dup = r.cmd(&["XADD", "keep", "IDMP", "p", "i", "*", "f", "v"]);
    assert_eq!(bulk(&dup), kept);
}

#[test]
fn idmp_maxsize_evicts_each_producers_oldest() {
    let server = TestServer::start();
    let mut r = server.raw();
    r.cmd(&["XADD", "s", "*", "f", "v"]);
    r.cmd(&["XCFGSET", "s", "IDMP-MAXSIZE", "2"]);
    let mut ids = Vec::new();
    for iid in ["a", "b", "c"] {
        ids.push(bulk(
            &r.cmd(&["XADD", "s", "IDMP", "p", iid, "*", "f", "v"]),
        ));
        r.cmd(&["XADD", "s", "IDMP", "q", iid, "*", "f", "v"]);
    }
    assert_eq!(idmp_fields(&mut r, "s"), [100, 2, 2, 4, 6, 0]);
    // "a" was evicted from p (and q): new again; "c" still answers.
    let c = r.cmd(&["XADD", "s", "IDMP", "p", "c", "*", "f", "v"]);
    assert_eq!(bulk(&c), ids[2]);
    let a = bulk(&r.cmd(&["XADD", "s", "IDMP", "p", "a", "*", "f", "v"]));
    assert_ne!(a, ids[0]);
    // …which evicted "b".
    let b = bulk(&r.cmd(&["XADD", "s", "IDMP", "p", "b", "*", "f", "v"]));
    assert_ne!(b, ids[1]);
    assert_eq!(idmp_fields(&mut r, "s"), [100, 2, 2, 4, 8, 1]);
}

#[test]
fn xcfgset_clears_only_on_a_change_and_counters_survive() {
    let server = TestServer::start();
    let mut r = server.raw();
    r.cmd(&["XADD", "s", "*", "f", "v"]);
    let id = bulk(&r.cmd(&["XADD", "s", "IDMP", "p", "i", "*", "f", "v"]));
    r.cmd(&["XADD", "s", "IDMP", "p", "i", "*", "f", "v"]);
    // The current values: nothing changes (every publisher may call this first).
    assert_eq!(
        text(&r.cmd(&[
            "XCFGSET",
            "s",
            "IDMP-DURATION",
            "100",
            "IDMP-MAXSIZE",
            "100"
        ])),
        "+OK\r\n"
    );
    let dup = r.cmd(&["XADD", "s", "IDMP", "p", "i", "*", "f", "v"]);
    assert_eq!(bulk(&dup), id);
    assert_eq!(idmp_fields(&mut r, "s"), [100, 100, 1, 1, 1, 2]);
    // A new value clears the history, not the entries or the lifetime counters.
    assert_eq!(
        text(&r.cmd(&["XCFGSET", "s", "IDMP-DURATION", "50"])),
        "+OK\r\n"
    );
    assert_eq!(idmp_fields(&mut r, "s"), [50, 100, 0, 0, 1, 2]);
    assert_eq!(text(&r.cmd(&["XLEN", "s"])), ":2\r\n");
    let fresh = bulk(&r.cmd(&["XADD", "s", "IDMP", "p", "i", "*", "f", "v"]));
    assert_ne!(fresh, id);
    assert_eq!(
        text(&r.cmd(&["XCFGSET", "s", "idmp-maxsize", "7"])),
        "+OK\r\n"
    );
    assert_eq!(idmp_fields(&mut r, "s"), [50, 7, 0, 0, 2, 2]);
}

/// XINFO STREAM shows the six fields on every stream, in Redis 8.6's places, in both the
/// summary and the FULL form (RESP3 maps of 16 and 15 pairs).
#[test]
fn xinfo_stream_fields() {
    let server = TestServer::start();
    let mut r = server.raw();
    r.cmd(&["XADD", "s", "1-1", "f", "v"]);
    let names = |reply: &[u8]| -> Vec<String> {
        let t = text(reply);
        let lines: Vec<&str> = t.lines().collect();
        // Field names are the bulk strings right after a `$n` line at even positions.
        let mut out = Vec::new();
        let mut i = 1;
        while i + 1 < lines.len() && out.len() < 13 {
            out.push(lines[i + 1].to_string());
            // Skip the name, then the value (an integer or a bulk ID here).
            i += 2;
            i += if lines[i].starts_with('$') { 2 } else { 1 };
        }
        out
    };
    let want = [
        "length",
        "radix-tree-keys",
        "radix-tree-nodes",
        "last-generated-id",
        "max-deleted-entry-id",
        "entries-added",
        "recorded-first-entry-id",
        "idmp-duration",
        "idmp-maxsize",
        "pids-tracked",
        "iids-tracked",
        "iids-added",
        "iids-duplicates",
    ];
    let plain = r.cmd(&["XINFO", "STREAM", "s"]);
    assert!(text(&plain).starts_with("*32\r\n"), "{}", text(&plain));
    assert_eq!(names(&plain), want);
    let full = r.cmd(&["XINFO", "STREAM", "s", "FULL"]);
    assert!(text(&full).starts_with("*30\r\n"), "{}", text(&full));
    assert_eq!(names(&full), want);
    r.cmd(&["HELLO", "3"]);
    assert!(text(&r.cmd(&["XINFO", "STREAM", "s"])).starts_with("%16\r\n"));
    assert!(text(&r.cmd(&["XINFO", "STREAM", "s", "FULL"])).starts_with("%15\r\n"));
}

#[test]
fn directives_apply_to_new_streams_and_survive_a_restart_without_them() {
    let mut server = TestServer::start_with(&["--stream-idmp-maxsize", "9"]);
    let mut r = server.raw();
    let get = |r: &mut Raw, name: &str| text(&r.cmd(&["CONFIG", "GET", name]));
    assert_eq!(
        get(&mut r, "stream-idmp-duration"),
        "*2\r\n$20\r\nstream-idmp-duration\r\n$3\r\n100\r\n"
    );
    assert_eq!(
        get(&mut r, "stream-idmp-maxsize"),
        "*2\r\n$19\r\nstream-idmp-maxsize\r\n$1\r\n9\r\n"
    );
    r.cmd(&["XADD", "old", "*", "f", "v"]);
    assert_eq!(
        text(&r.cmd(&["CONFIG", "SET", "stream-idmp-duration", "7"])),
        "+OK\r\n"
    );
    r.cmd(&["XADD", "new", "*", "f", "v"]);
    r.cmd(&["XGROUP", "CREATE", "mk", "g", "$", "MKSTREAM"]);
    assert_eq!(idmp_fields(&mut r, "old"), [100, 9, 0, 0, 0, 0]);
    assert_eq!(idmp_fields(&mut r, "new"), [7, 9, 0, 0, 0, 0]);
    assert_eq!(idmp_fields(&mut r, "mk"), [7, 9, 0, 0, 0, 0]);
    let before = digest(&mut r);
    // The restarted server starts with duration 100 again (CONFIG SET is not saved);
    // the streams keep what they were created with, because the log says so.
    server.restart();
    let mut r = server.raw();
    assert_eq!(
        get(&mut r, "stream-idmp-duration"),
        "*2\r\n$20\r\nstream-idmp-duration\r\n$3\r\n100\r\n"
    );
    assert_eq!(idmp_fields(&mut r, "new"), [7, 9, 0, 0, 0, 0]);
    assert_eq!(idmp_fields(&mut r, "mk"), [7, 9, 0, 0, 0, 0]);
    assert_eq!(digest(&mut r), before);
}

/// Builds IDMP state of every kind on `r`: producers with IIDs, IDMPAUTO, duplicates,
/// evictions, XCFGSET limits, XIDMPRECORD, a renamed stream, an empty producer.
/// Returns the (key, producer, iid, id) of every IID that must still answer.
fn build_history(r: &mut Raw, payload: &str) -> Vec<(String, String, String, String)> {
    let mut live = Vec::new();
    for key in ["a", "b"] {
        r.cmd(&["XADD", key, "*", "f", "v"]);
    }
    r.cmd(&["XCFGSET", "b", "IDMP-MAXSIZE", "3", "IDMP-DURATION", "3600"]);
    for key in ["a", "b"] {
        for p in ["p1", "p2"] {
            for i in 0..5 {
                let iid = format!("{p}-{i}");
                let id = bulk(&r.cmd(&["XADD", key, "IDMP", p, &iid, "*", "d", payload]));
                r.cmd(&["XADD", key, "IDMP", p, &iid, "*", "d", payload]);
                // b keeps each producer's last three.
                if key == "a" || i >= 2 {
                    live.push((key.to_string(), p.to_string(), iid, id));
                }
            }
        }
    }
    let auto = bulk(&r.cmd(&["XADD", "a", "IDMPAUTO", "auto", "*", "x", "1", "y", "2"]));
    r.cmd(&["XADD", "a", "IDMPAUTO", "auto", "*", "y", "2", "x", "1"]);
    let e = bulk(&r.cmd(&["XADD", "a", "*", "f", "v"]));
    r.cmd(&["XIDMPRECORD", "a", "rec", "late", &e]);
    live.push(("a".into(), "rec".into(), "late".into(), e));
    r.cmd(&["XADD", "c", "*", "f", "v"]);
    let moved = bulk(&r.cmd(&["XADD", "c", "IDMP", "m", "i", "*", "f", "v"]));
    r.cmd(&["RENAME", "c", "renamed"]);
    live.push(("renamed".into(), "m".into(), "i".into(), moved));
    // A full stream: the failed IDMP XADD still leaves its producer.
    r.cmd(&[
        "XADD",
        "full",
        "18446744073709551615-18446744073709551615",
        "f",
        "v",
    ]);
    r.cmd(&["XADD", "full", "IDMP", "p", "i", "*", "f", "v"]);
    // The IDMPAUTO entry is checked by its fields, separately.
    let dup = r.cmd(&["XADD", "a", "IDMPAUTO", "auto", "*", "y", "2", "x", "1"]);
    assert_eq!(bulk(&dup), auto);
    live
}

fn assert_history(r: &mut Raw, live: &[(String, String, String, String)]) {
    for (key, p, iid, id) in live {
        let again = r.cmd(&["XADD", key, "IDMP", p, iid, "*", "f", "v"]);
        assert_eq!(bulk(&again), *id, "{key} {p} {iid}");
    }
}

#[test]
fn sigkill_restart_keeps_the_history() {
    let mut server = TestServer::start();
    let mut r = server.raw();
    let live = build_history(&mut r, "v");
    let fields: Vec<[i64; 6]> = ["a", "b", "renamed"]
        .iter()
        .map(|k| idmp_fields(&mut r, k))
        .collect();
    assert_eq!(fields[1], [3600, 3, 2, 6, 10, 10]);
    assert_eq!(idmp_fields(&mut r, "full"), [100, 100, 1, 0, 0, 0]);
    let before = digest(&mut r);
    server.restart();
    let mut r = server.raw();
    assert_eq!(digest(&mut r), before, "DEBUG DIGEST after SIGKILL");
    let after: Vec<[i64; 6]> = ["a", "b", "renamed"]
        .iter()
        .map(|k| idmp_fields(&mut r, k))
        .collect();
    assert_eq!(after, fields);
    assert_history(&mut r, &live);
    // Nothing re-sent after the restart was appended.
    assert_eq!(xinfo(&mut r, "b", "iids-duplicates"), 10 + 6);
}

#[test]
fn checkpoint_and_compaction_keep_the_history() {
    let mut server = TestServer::start();
    let mut r = server.raw();
    let payload = "x".repeat(1000);
    let live = build_history(&mut r, &payload);
    // Enough dead bytes in the first segment for compaction to move its live payloads
    // out, so a second checkpoint deletes it, and with it the ops that built the history.
    for i in 0..2500 {
        r.cmd(&["XADD", "bulk", &format!("{}-1", i + 1), "p", &payload]);
    }
    r.cmd(&["DEL", "bulk"]);
    let before = digest(&mut r);
    let fields = idmp_fields(&mut r, "a");
    let first_segment = server.dir.join("log/00000000000000000001.seg");
    assert!(first_segment.exists());
    let gone = eventually(Duration::from_secs(30), || {
        r.cmd(&["BGREWRITEAOF"]);
        std::thread::sleep(Duration::from_millis(200));
        !first_segment.exists()
    });
    assert!(
        gone,
        "checkpoint + compaction did not delete the first segment"
    );
    let has_checkpoint = std::fs::read_dir(server.dir.join("log"))
        .expect("log dir")
        .any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".ckp")));
    assert!(has_checkpoint);
    server.restart();
    let mut r = server.raw();
    assert_eq!(
        digest(&mut r),
        before,
        "DEBUG DIGEST after checkpoint, compaction, SIGKILL"
    );
    assert_eq!(idmp_fields(&mut r, "a"), fields);
    assert_eq!(idmp_fields(&mut r, "full"), [100, 100, 1, 0, 0, 0]);
    assert_history(&mut r, &live);
}
