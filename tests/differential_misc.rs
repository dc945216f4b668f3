//! Table-driven differential checks of the smaller Redis 8 changes (issue #12, item 6)
//! against Redis 8.6.3: the 8.0 "Unbalanced" texts, `XREAD … +` after XDEL, the lag rules
//! of 8.0, ENTRIESREAD capped at entries-added (8.2.2), XINFO STREAM FULL, SCRIPT and
//! CONFIG RESETSTAT as a server without scripts, blocked clients in CLIENT LIST, the
//! counters of a blocked XREADGROUP that ends in an error, and the dirty counter
//! (`rdb_changes_since_last_save`). Same commands to both servers, byte-identical replies,
//! RESP2 and RESP3. The plain (non-differential) twin of each check is in
//! `tests/redis8_misc.rs`.
#![cfg(feature = "differential")]

mod common;

use std::time::{Duration, Instant};

use common::reference::Twins;
use common::Raw;

/// The value of `field` in an INFO reply.
fn info_field(info: &[u8], field: &str) -> Option<String> {
    let text = String::from_utf8_lossy(info);
    let prefix = format!("{field}:");
    text.split("\r\n")
        .find_map(|l| l.strip_prefix(&prefix).map(str::to_string))
}

/// Waits until `n` clients are blocked on the server `conn` talks to.
fn wait_blocked(conn: &mut Raw, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let info = conn.cmd(&["INFO", "clients"]);
        if info_field(&info, "blocked_clients").as_deref() == Some(&n.to_string()) {
            return;
        }
        assert!(Instant::now() < deadline, "never saw {n} blocked clients");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A commandstats line without its `usec=` and `usec_per_call=`, which differ run to run.
fn mask_usec(line: &str) -> String {
    line.split(',')
        .filter(|part| !part.starts_with("usec"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Unix-millisecond integers (delivery, seen and active times) in a RESP text.
fn mask_times(resp: &str) -> String {
    resp.split("\r\n")
        .map(|l| match l.strip_prefix(':') {
            Some(n) if n.len() == 13 && n.bytes().all(|b| b.is_ascii_digit()) => ":<time>",
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\r\n")
}

#[test]
fn mask_usec_keeps_the_counts() {
    assert_eq!(
        mask_usec("cmdstat_xreadgroup:calls=4,usec=58,usec_per_call=14.50,rejected_calls=0,failed_calls=4"),
        "cmdstat_xreadgroup:calls=4,rejected_calls=0,failed_calls=4"
    );
}

#[test]
fn unbalanced_texts_plus_after_xdel_and_entriesread_cap_match_redis_8() {
    let mut t = Twins::start(&[]);
    t.each_protocol(|t| {
        t.same(&["XADD", "s", "1-1", "a", "1"]);
        t.same(&["XADD", "s", "2-1", "b", "2"]);
        t.same(&["XADD", "s", "3-1", "c", "3"]);
        // 8.0: the texts name XREAD's `+`.
        t.same(&["XREAD", "STREAMS", "s"]);
        t.same(&["XREAD", "STREAMS", "s", "s", "0"]);
        t.same(&["XREADGROUP", "GROUP", "g", "c", "STREAMS", "s"]);
        // 8.0: `+` is the last entry still there, not the last ID ever generated.
        t.same(&["XREAD", "STREAMS", "s", "+"]);
        t.same(&["XDEL", "s", "3-1"]);
        t.same(&["XREAD", "STREAMS", "s", "+"]);
        t.same(&["XREAD", "COUNT", "5", "STREAMS", "s", "s", "+", "0"]);
        t.same(&["XDEL", "s", "1-1", "2-1"]);
        t.same(&["XREAD", "STREAMS", "s", "+"]);
        t.same(&["XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", "+"]);
        // 8.2.2: ENTRIESREAD above entries-added is capped.
        t.same(&["XADD", "e", "1-1", "a", "1"]);
        t.same(&["XADD", "e", "2-1", "a", "1"]);
        t.same(&["XGROUP", "CREATE", "e", "g", "0", "ENTRIESREAD", "100"]);
        t.same(&["XINFO", "GROUPS", "e"]);
        t.same(&["XGROUP", "SETID", "e", "g", "1-1", "ENTRIESREAD", "7"]);
        t.same(&["XINFO", "GROUPS", "e"]);
        t.same(&[
            "XGROUP",
            "CREATE",
            "n",
            "g",
            "$",
            "MKSTREAM",
            "ENTRIESREAD",
            "3",
        ]);
        t.same(&["XINFO", "GROUPS", "n"]);
    });
}

/// Redis 8.0's lag rules, through the situations of its tests "Consumer Group Lag with
/// XDELs and tombstone after the last_id of consume group" and "Consumer group lag with
/// XTRIM", and a stream emptied by trimming.
#[test]
fn lag_rules_match_redis_8() {
    let mut t = Twins::start(&[]);
    t.each_protocol(|t| {
        for ms in 1..=5 {
            t.same(&["XADD", "x", &format!("{ms}-0"), "data", "a"]);
        }
        t.same(&["XGROUP", "CREATE", "x", "g1", "0"]);
        t.same(&["XGROUP", "CREATE", "x", "g2", "0"]);
        t.same(&[
            "XREADGROUP",
            "GROUP",
            "g1",
            "c",
            "COUNT",
            "3",
            "STREAMS",
            "x",
            ">",
        ]);
        t.same(&["XDEL", "x", "4-0"]);
        t.same(&["XINFO", "GROUPS", "x"]);
        t.same(&["XREADGROUP", "GROUP", "g1", "c", "STREAMS", "x", ">"]);
        t.same(&["XINFO", "GROUPS", "x"]);
        // Trim past the groups and the tombstone.
        t.same(&["XTRIM", "x", "MAXLEN", "1"]);
        t.same(&["XINFO", "GROUPS", "x"]);
        t.same(&["XADD", "x", "6-0", "data", "b"]);
        t.same(&["XINFO", "GROUPS", "x"]);
        t.same(&[
            "XREADGROUP",
            "GROUP",
            "g2",
            "c",
            "COUNT",
            "1",
            "STREAMS",
            "x",
            ">",
        ]);
        t.same(&["XINFO", "GROUPS", "x"]);
        // Emptied: lag 0 for every group.
        t.same(&["XTRIM", "x", "MAXLEN", "0"]);
        t.same(&["XINFO", "GROUPS", "x"]);
    });
}

/// The IDMP fields 8.6.3 prints in XINFO STREAM belong to the IDMP work (issue #12,
/// item 3); until Rill has them, everything around them is compared, and once it prints
/// them, they are compared too.
#[test]
fn xinfo_stream_full_layout_matches_redis_8_around_idmp() {
    const IDMP: &[&str] = &[
        "idmp-duration",
        "idmp-maxsize",
        "pids-tracked",
        "iids-tracked",
        "iids-added",
        "iids-duplicates",
    ];
    let mut t = Twins::start(&[]);
    t.reconnect(2);
    t.same(&["XADD", "s", "1-1", "a", "1"]);
    t.same(&["XADD", "s", "2-1", "b", "2"]);
    t.same(&["XGROUP", "CREATE", "s", "g", "0"]);
    t.same(&[
        "XREADGROUP",
        "GROUP",
        "g",
        "c",
        "COUNT",
        "1",
        "STREAMS",
        "s",
        ">",
    ]);
    t.same(&["XDEL", "s", "2-1"]);
    for args in [
        &["XINFO", "STREAM", "s"][..],
        &["XINFO", "STREAM", "s", "FULL", "COUNT", "1"][..],
    ] {
        let (rill, redis) = t.both(args);
        let redis = String::from_utf8_lossy(&redis).to_string();
        if String::from_utf8_lossy(&rill).contains("\r\nidmp-duration\r\n") {
            // IDMP is in: everything is compared.
            assert_eq!(
                mask_times(&String::from_utf8_lossy(&rill)),
                mask_times(&redis),
                "{args:?} (left: Rill, right: Redis 8.6.3)"
            );
            continue;
        }
        // RESP2 field list: [name, value, …] with bulk names; split into lines and drop
        // the IDMP name/value pairs from the reference.
        let mut lines: Vec<&str> = redis.split("\r\n").collect();
        let mut kept = Vec::new();
        let mut removed = 0;
        let mut i = 0;
        while i < lines.len() {
            if IDMP.contains(&lines[i]) && i > 0 {
                kept.pop(); // the `$len` header of the name
                i += 2; // the name and its integer value
                removed += 1;
                continue;
            }
            kept.push(lines[i]);
            i += 1;
        }
        assert_eq!(removed, IDMP.len(), "8.6.3 prints the IDMP fields: {redis}");
        lines = kept;
        let top = format!(
            "*{}",
            (lines[0][1..].parse::<usize>().unwrap_or(0)) - 2 * IDMP.len()
        );
        lines[0] = &top;
        assert_eq!(
            mask_times(&String::from_utf8_lossy(&rill)),
            mask_times(&lines.join("\r\n")),
            "{args:?} (left: Rill, right: Redis 8.6.3 without its IDMP fields)"
        );
    }
}

#[test]
fn script_and_config_resetstat_match_redis_8() {
    let mut t = Twins::start(&[]);
    t.each_protocol(|t| {
        t.same(&["SCRIPT", "FLUSH"]);
        t.same(&["SCRIPT", "FLUSH", "ASYNC"]);
        t.same(&["SCRIPT", "FLUSH", "sync"]);
        t.same(&["SCRIPT", "FLUSH", "foo"]);
        t.same(&["SCRIPT", "FLUSH", "ASYNC", "SYNC"]);
        t.same(&["SCRIPT", "EXISTS", "a", "b"]);
        t.same(&["SCRIPT", "EXISTS"]);
        t.same(&["SCRIPT", "KILL"]);
        t.same(&["SCRIPT"]);
        t.same(&["SCRIPT", "NOPE"]);
        t.same(&["XADD", "s", "x", "f", "v"]);
        t.same(&["SET", "short", "v", "PX", "1"]);
        std::thread::sleep(Duration::from_millis(20));
        t.same(&["GET", "short"]);
        t.same(&["CONFIG", "RESETSTAT"]);
        t.same(&["CONFIG", "RESETSTAT", "x"]);
        t.same(&["INFO", "errorstats"]);
        let (rill, redis) = t.both(&["INFO", "stats"]);
        for field in [
            "total_connections_received",
            "total_commands_processed",
            "rejected_connections",
            "expired_keys",
            "total_error_replies",
        ] {
            assert_eq!(
                info_field(&rill, field),
                info_field(&redis, field),
                "{field} after CONFIG RESETSTAT (left: Rill, right: Redis 8.6.3)"
            );
        }
    });
}

/// What a blocked XREADGROUP that ends in an error leaves in the counters (Redis 7.4's
/// "XGROUP DESTROY should unblock XREADGROUP with -NOGROUP", extended to CLIENT UNBLOCK
/// ERROR and DEL), and the `flags=b` of a blocked client in CLIENT LIST.
#[test]
fn blocked_xreadgroup_errors_count_as_in_redis_8() {
    let mut t = Twins::start(&[]);
    t.reconnect(2);
    let ports = [t.rill.port, t.redis.port];
    t.same(&["CONFIG", "RESETSTAT"]);
    let mut readers: Vec<Raw> = ports.iter().map(|p| Raw::connect(*p)).collect();
    let ids: Vec<String> = readers
        .iter_mut()
        .map(|r| {
            String::from_utf8_lossy(&r.cmd(&["CLIENT", "ID"]))
                .trim_start_matches(':')
                .trim()
                .to_string()
        })
        .collect();
    let block = [
        "XREADGROUP",
        "GROUP",
        "g",
        "c",
        "BLOCK",
        "0",
        "STREAMS",
        "s",
        ">",
    ];
    let blocked_reply = |t: &mut Twins, readers: &mut Vec<Raw>, act: &dyn Fn(&mut Twins)| {
        t.same(&["XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"]);
        for r in readers.iter_mut() {
            r.send(&common::encode(&block));
        }
        wait_blocked(&mut t.rill_conn, 1);
        wait_blocked(&mut t.redis_conn, 1);
        act(t);
        let rill = readers[0].read_reply();
        let redis = readers[1].read_reply();
        assert_eq!(
            String::from_utf8_lossy(&rill),
            String::from_utf8_lossy(&redis)
        );
    };
    // CLIENT LIST shows the blocked reader with flags=b (Watermill v1.4.5 looks for it).
    blocked_reply(&mut t, &mut readers, &|t| {
        for conn in [&mut t.rill_conn, &mut t.redis_conn] {
            let list = String::from_utf8_lossy(&conn.cmd(&["CLIENT", "LIST"])).to_string();
            let line = list
                .lines()
                .find(|l| l.contains("cmd=xreadgroup"))
                .unwrap_or_else(|| panic!("no blocked xreadgroup in {list}"));
            assert!(line.contains(" flags=b "), "{line}");
        }
        t.same(&["XGROUP", "DESTROY", "s", "g"]);
    });
    blocked_reply(&mut t, &mut readers, &|t| {
        t.same(&["DEL", "s"]);
    });
    let unblock_ids = ids.clone();
    blocked_reply(&mut t, &mut readers, &move |t| {
        let r = t
            .rill_conn
            .cmd(&["CLIENT", "UNBLOCK", &unblock_ids[0], "ERROR"]);
        let p = t
            .redis_conn
            .cmd(&["CLIENT", "UNBLOCK", &unblock_ids[1], "ERROR"]);
        assert_eq!(r, p);
    });
    // A timeout is not a failure.
    t.same(&[
        "XREADGROUP",
        "GROUP",
        "g",
        "c",
        "BLOCK",
        "10",
        "STREAMS",
        "s",
        ">",
    ]);
    let (rill, redis) = t.both(&["INFO", "commandstats"]);
    for cmd in ["xreadgroup", "client|unblock", "xgroup|destroy", "del"] {
        let want = format!("cmdstat_{cmd}");
        assert_eq!(
            info_field(&rill, &want).map(|l| mask_usec(&format!("{want}:{l}"))),
            info_field(&redis, &want).map(|l| mask_usec(&format!("{want}:{l}"))),
            "{want}"
        );
    }
    t.same(&["INFO", "errorstats"]);
    let (rill, redis) = t.both(&["INFO", "stats"]);
    assert_eq!(
        info_field(&rill, "total_error_replies"),
        info_field(&redis, "total_error_replies")
    );
}

/// `rdb_changes_since_last_save` moves by what Redis adds to `server.dirty`, command by
/// command: one per XREADGROUP that delivers, nothing for a read from the PEL, one for a
/// consumer created, the deleted/acknowledged/claimed counts, and so on.
#[test]
fn dirty_counter_moves_as_in_redis_8() {
    let mut t = Twins::start(&[]);
    t.reconnect(2);
    // Read on connections of their own: the script's may be inside MULTI.
    let mut probes = (Raw::connect(t.rill.port), Raw::connect(t.redis.port));
    let mut dirty = |_: &mut Twins| -> (u64, u64) {
        let rill = probes.0.cmd(&["INFO", "persistence"]);
        let redis = probes.1.cmd(&["INFO", "persistence"]);
        let n = |info: &[u8]| -> u64 {
            info_field(info, "rdb_changes_since_last_save")
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{}", String::from_utf8_lossy(info)))
        };
        (n(&rill), n(&redis))
    };
    let script: &[&[&str]] = &[
        &["XADD", "x", "1-0", "data", "a"],
        &["XADD", "x", "2-0", "data", "b"],
        &["XADD", "x", "3-0", "data", "c"],
        &["XADD", "x", "4-0", "data", "d"],
        &["XADD", "x", "5-0", "data", "e"],
        &["XADD", "x", "6-0", "data", "f"],
        &["XGROUP", "CREATE", "x", "g1", "0"],
        &["XGROUP", "CREATECONSUMER", "x", "g1", "Alice"],
        &["XGROUP", "CREATECONSUMER", "x", "g1", "Alice"],
        &[
            "XREADGROUP",
            "GROUP",
            "g1",
            "Alice",
            "COUNT",
            "2",
            "STREAMS",
            "x",
            ">",
        ],
        &[
            "XREADGROUP",
            "GROUP",
            "g1",
            "Alice",
            "NOACK",
            "COUNT",
            "2",
            "STREAMS",
            "x",
            ">",
        ],
        &[
            "XREADGROUP",
            "GROUP",
            "g1",
            "Alice",
            "COUNT",
            "2",
            "STREAMS",
            "x",
            "0",
        ],
        &[
            "XREADGROUP",
            "GROUP",
            "g1",
            "Alice",
            "COUNT",
            "2",
            "STREAMS",
            "x",
            "9000",
        ],
        &[
            "XREADGROUP",
            "GROUP",
            "g1",
            "noconsumer",
            "COUNT",
            "2",
            "STREAMS",
            "x",
            "0",
        ],
        &["XREADGROUP", "GROUP", "g1", "Bob", "STREAMS", "x", ">"],
        &["XREADGROUP", "GROUP", "g1", "Bob", "STREAMS", "x", ">"],
        &["XACK", "x", "g1", "1-0", "9-0"],
        &[
            "XCLAIM", "x", "g1", "Carol", "0", "2-0", "5-0", "8-0", "JUSTID",
        ],
        &[
            "XCLAIM", "x", "g1", "Carol", "3600000", "2-0", "LASTID", "8-0",
        ],
        &[
            "XCLAIM", "x", "g1", "Erin", "3600000", "2-0", "LASTID", "1-0",
        ],
        &["XAUTOCLAIM", "x", "g1", "Dave", "0", "0", "JUSTID"],
        &["XDEL", "x", "6-0", "7-0"],
        &["XAUTOCLAIM", "x", "g1", "Dave", "0", "0", "JUSTID"],
        &["XADD", "x", "MAXLEN", "2", "7-0", "data", "g"],
        &["XTRIM", "x", "MAXLEN", "0"],
        &["XTRIM", "x", "MAXLEN", "0"],
        &["XSETID", "x", "9-0"],
        &["XGROUP", "SETID", "x", "g1", "0"],
        &["XGROUP", "DELCONSUMER", "x", "g1", "Bob"],
        &["XGROUP", "DESTROY", "x", "g1"],
        &["XGROUP", "CREATE", "y", "g", "$", "MKSTREAM"],
        // Redis 8.2-8.6 commands: XDELEX counts deletions, XACKDEL PEL removals, a trim
        // inside XADD nothing beyond the XADD, an XREADGROUP CLAIM one per stream it served,
        // a duplicate IDMP XADD one, XCFGSET and XIDMPRECORD one when they change something.
        &["XADD", "r", "1-0", "data", "a"],
        &["XADD", "r", "2-0", "data", "b"],
        &["XADD", "r", "3-0", "data", "c"],
        &["XADD", "r", "4-0", "data", "d"],
        &["XADD", "r", "5-0", "data", "e"],
        &["XADD", "r", "6-0", "data", "f"],
        &["XGROUP", "CREATE", "r", "g", "0"],
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "c",
            "COUNT",
            "3",
            "STREAMS",
            "r",
            ">",
        ],
        &["XDELEX", "r", "KEEPREF", "IDS", "2", "5-0", "9-0"],
        &["XDELEX", "r", "ACKED", "IDS", "2", "1-0", "4-0"],
        &["XACKDEL", "r", "g", "ACKED", "IDS", "2", "1-0", "9-0"],
        &["XACKDEL", "r", "g", "DELREF", "IDS", "1", "2-0"],
        &["XTRIM", "r", "MINID", "4-0", "DELREF"],
        &["XTRIM", "r", "MAXLEN", "0", "ACKED"],
        &["XADD", "r", "MAXLEN", "1", "ACKED", "7-0", "data", "h"],
        &[
            "(any)",
            "XREADGROUP",
            "GROUP",
            "g",
            "c2",
            "CLAIM",
            "0",
            "STREAMS",
            "r",
            ">",
        ],
        &[
            "(any)",
            "XREADGROUP",
            "GROUP",
            "g",
            "c3",
            "CLAIM",
            "0",
            "STREAMS",
            "r",
            ">",
        ],
        &[
            "(any)",
            "XREADGROUP",
            "GROUP",
            "g",
            "c3",
            "CLAIM",
            "0",
            "STREAMS",
            "r",
            ">",
        ],
        &["(any)", "XADD", "r", "IDMP", "p", "i1", "*", "f", "v"],
        &["(any)", "XADD", "r", "IDMP", "p", "i1", "*", "f", "v"],
        &["XCFGSET", "r", "IDMP-DURATION", "50"],
        &["XCFGSET", "r", "IDMP-DURATION", "50"],
        &["XIDMPRECORD", "r", "p", "i2", "7-0"],
        &["XIDMPRECORD", "r", "p", "i2", "7-0"],
        &["SET", "k", "v"],
        &["DEL", "k", "y", "nokey"],
        &["SET", "k", "v"],
        &["EXPIRE", "k", "100"],
        &["PERSIST", "k"],
        &["PERSIST", "k"],
        &["RENAME", "k", "k2"],
        &["XADD", "a", "1-1", "f", "v"],
        &["XADD", "b", "1-1", "f", "v"],
        &["UNLINK", "a", "nokey"],
        &["FLUSHDB"],
        &["XADD", "a", "1-1", "f", "v"],
        &["XADD", "b", "1-1", "f", "v"],
        &["FLUSHALL"],
        &["FLUSHALL"],
        &["MULTI"],
        &["XADD", "t", "1-1", "f", "v"],
        &["XADD", "t", "1-2", "f", "v"],
        &["XTRIM", "t", "MAXLEN", "1"],
        &["XADD", "t", "1-3", "f", "v"],
        &["XGROUP", "CREATE", "t", "g", "0"],
        &["XREADGROUP", "GROUP", "g", "c", "STREAMS", "t", ">"],
        &["EXEC"],
        &["SET", "short", "v", "PX", "1"],
        &["(sleep)"],
        &["GET", "short"],
        &["SET", "short", "v", "PX", "1"],
        &["(sleep)"],
        &["XADD", "short", "1-1", "f", "v"],
    ];
    let mut before = dirty(&mut t);
    for args in script {
        if args == &["(sleep)"] {
            // Let the `PX 1` key expire before it is touched again.
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        if args[0] == "(any)" {
            // Replies with idle times or clock IDs: only the counter is compared.
            t.both(&args[1..]);
        } else {
            // JUSTID replies and IDs are deterministic; no clock IDs are used.
            t.same(args);
        }
        let after = dirty(&mut t);
        assert_eq!(
            after.0 - before.0,
            after.1 - before.1,
            "dirty increment of {args:?} (left: Rill, right: Redis 8.6.3)"
        );
        before = after;
    }
}

/// SCRIPT as COMMAND INFO and COMMAND DOCS describe it.
#[test]
fn script_command_docs_match_redis_8() {
    let mut t = Twins::start(&[]);
    t.each_protocol(|t| {
        for sub in [
            "script|exists",
            "script|flush",
            "script|kill",
            "script|help",
        ] {
            t.same(&["COMMAND", "INFO", sub]);
            t.same(&["COMMAND", "DOCS", sub]);
        }
    });
}
