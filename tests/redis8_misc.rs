//! The smaller Redis 8 changes of issue #12 (item 6) and the reported version (item 7),
//! against a running Rill: the exact bytes Redis 8.6.3 answers (taken from a real 8.6.3;
//! `tests/differential_misc.rs` compares the same situations with it live).

mod common;

use common::{encode, Raw, TestServer};

/// The value of `field` in an INFO reply.
fn info_field(info: &[u8], field: &str) -> Option<String> {
    let text = String::from_utf8_lossy(info);
    let prefix = format!("{field}:");
    text.split("\r\n")
        .find_map(|l| l.strip_prefix(&prefix).map(str::to_string))
}

fn dirty(r: &mut Raw) -> u64 {
    let info = r.cmd(&["INFO", "persistence"]);
    info_field(&info, "rdb_changes_since_last_save")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{}", String::from_utf8_lossy(&info)))
}

fn client_id(r: &mut Raw) -> String {
    String::from_utf8_lossy(&r.cmd(&["CLIENT", "ID"]))
        .trim_start_matches(':')
        .trim()
        .to_string()
}

#[test]
fn unbalanced_texts_are_redis_8s() {
    let s = TestServer::start();
    let mut r = s.raw();
    assert_eq!(
        r.cmd(&["XREAD", "STREAMS", "a", "b", "0"]),
        b"-ERR Unbalanced 'xread' list of streams: for each stream key an ID, '+', or '$' must be specified.\r\n"
    );
    assert_eq!(
        r.cmd(&["XREADGROUP", "GROUP", "g", "c", "STREAMS", "a", "b", "0"]),
        b"-ERR Unbalanced 'xreadgroup' list of streams: for each stream key an ID or '>' must be specified.\r\n"
    );
}

#[test]
fn xread_plus_is_the_last_entry_not_deleted() {
    let s = TestServer::start();
    let mut r = s.raw();
    for id in ["1-1", "2-1", "3-1"] {
        r.cmd(&["XADD", "s", id, "f", id]);
    }
    r.cmd(&["XDEL", "s", "3-1"]);
    assert_eq!(
        r.cmd(&["XREAD", "STREAMS", "s", "+"]),
        b"*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n2-1\r\n*2\r\n$1\r\nf\r\n$3\r\n2-1\r\n"
    );
    r.cmd(&["XDEL", "s", "1-1", "2-1"]);
    assert_eq!(r.cmd(&["XREAD", "STREAMS", "s", "+"]), b"*-1\r\n");
}

#[test]
fn entriesread_is_capped_at_entries_added() {
    let s = TestServer::start();
    let mut r = s.raw();
    r.cmd(&["XADD", "s", "1-1", "f", "v"]);
    r.cmd(&["XADD", "s", "2-1", "f", "v"]);
    assert_eq!(
        r.cmd(&["XGROUP", "CREATE", "s", "g", "0", "ENTRIESREAD", "100"]),
        b"+OK\r\n"
    );
    let groups = r.cmd(&["XINFO", "GROUPS", "s"]);
    let text = String::from_utf8_lossy(&groups);
    // The group is still before the first entry, so its lag is the length (8.0).
    assert!(
        text.contains("$12\r\nentries-read\r\n:2\r\n$3\r\nlag\r\n:2\r\n"),
        "{text}"
    );
    r.cmd(&["XGROUP", "SETID", "s", "g", "1-1", "ENTRIESREAD", "7"]);
    let text = String::from_utf8_lossy(&r.cmd(&["XINFO", "GROUPS", "s"])).to_string();
    assert!(text.contains("$12\r\nentries-read\r\n:2\r\n"), "{text}");
    // A new empty stream has added nothing: the cap is 0.
    r.cmd(&[
        "XGROUP",
        "CREATE",
        "n",
        "g",
        "$",
        "MKSTREAM",
        "ENTRIESREAD",
        "3",
    ]);
    let text = String::from_utf8_lossy(&r.cmd(&["XINFO", "GROUPS", "n"])).to_string();
    assert!(text.contains("$12\r\nentries-read\r\n:0\r\n"), "{text}");
}

/// The lag of a group, from XINFO GROUPS's RESP2 reply.
fn lags(r: &mut Raw, key: &str) -> Vec<String> {
    let text = String::from_utf8_lossy(&r.cmd(&["XINFO", "GROUPS", key])).to_string();
    text.split("$3\r\nlag\r\n")
        .skip(1)
        .map(|rest| rest.split("\r\n").next().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn lag_follows_redis_8_rules() {
    let s = TestServer::start();
    let mut r = s.raw();
    for ms in 1..=5 {
        r.cmd(&["XADD", "x", &format!("{ms}-0"), "data", "a"]);
    }
    r.cmd(&["XGROUP", "CREATE", "x", "g1", "0"]);
    r.cmd(&[
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
    // A tombstone after the group's position: the lag cannot be known.
    r.cmd(&["XDEL", "x", "4-0"]);
    assert_eq!(lags(&mut r, "x"), [("$-1")]);
    // Trimmed past the group and the tombstone: every entry left is lag.
    r.cmd(&["XTRIM", "x", "MAXLEN", "1"]);
    r.cmd(&["XADD", "x", "6-0", "data", "b"]);
    r.cmd(&["XGROUP", "SETID", "x", "g1", "1-0"]);
    assert_eq!(lags(&mut r, "x"), [":2"]);
    // Emptied: nothing left to deliver.
    r.cmd(&["XTRIM", "x", "MAXLEN", "0"]);
    assert_eq!(lags(&mut r, "x"), [":0"]);
}

#[test]
fn xinfo_stream_full_fields_in_redis_8_order() {
    let s = TestServer::start();
    let mut r = s.raw();
    r.cmd(&["XADD", "s", "1-1", "a", "1"]);
    r.cmd(&["XGROUP", "CREATE", "s", "g", "0"]);
    r.cmd(&["XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", ">"]);
    let text = String::from_utf8_lossy(&r.cmd(&["XINFO", "STREAM", "s", "FULL"])).to_string();
    let names: Vec<&str> = [
        "length",
        "radix-tree-keys",
        "radix-tree-nodes",
        "last-generated-id",
        "max-deleted-entry-id",
        "entries-added",
        "recorded-first-entry-id",
        "entries",
        "groups",
        "name",
        "last-delivered-id",
        "entries-read",
        "lag",
        "pel-count",
        "pending",
        "consumers",
        "name",
        "seen-time",
        "active-time",
        "pel-count",
        "pending",
    ]
    .to_vec();
    let mut at = 0;
    for name in names {
        let needle = format!("${}\r\n{name}\r\n", name.len());
        let found = text[at..]
            .find(&needle)
            .unwrap_or_else(|| panic!("{name} missing or out of order in {text}"));
        at += found + needle.len();
    }
}

#[test]
fn script_and_config_resetstat_answer_as_without_scripts() {
    let s = TestServer::start();
    let mut r = s.raw();
    assert_eq!(r.cmd(&["SCRIPT", "FLUSH"]), b"+OK\r\n");
    assert_eq!(r.cmd(&["SCRIPT", "FLUSH", "async"]), b"+OK\r\n");
    assert_eq!(r.cmd(&["SCRIPT", "FLUSH", "SYNC"]), b"+OK\r\n");
    assert_eq!(
        r.cmd(&["SCRIPT", "FLUSH", "foo"]),
        b"-ERR SCRIPT FLUSH only support SYNC|ASYNC option\r\n"
    );
    assert_eq!(
        r.cmd(&["SCRIPT", "EXISTS", "a", "b"]),
        b"*2\r\n:0\r\n:0\r\n"
    );
    assert_eq!(
        r.cmd(&["SCRIPT", "KILL"]),
        b"-NOTBUSY No scripts in execution right now.\r\n"
    );
    assert_eq!(
        r.cmd(&["SCRIPT"]),
        b"-ERR wrong number of arguments for 'script' command\r\n"
    );
    assert_eq!(
        r.cmd(&["SCRIPT", "NOPE"]),
        b"-ERR unknown subcommand 'NOPE'. Try SCRIPT HELP.\r\n"
    );
    // CONFIG RESETSTAT clears the error, command and expiry counters.
    r.cmd(&["XADD", "s", "x", "f", "v"]);
    r.cmd(&["SET", "short", "v", "PX", "1"]);
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(r.cmd(&["GET", "short"]), b"$-1\r\n");
    let stats = r.cmd(&["INFO", "stats"]);
    assert_eq!(info_field(&stats, "expired_keys").as_deref(), Some("1"));
    assert_eq!(r.cmd(&["CONFIG", "RESETSTAT"]), b"+OK\r\n");
    let errors = r.cmd(&["INFO", "errorstats"]);
    assert_eq!(errors, b"$14\r\n# Errorstats\r\n\r\n");
    let stats = r.cmd(&["INFO", "stats"]);
    assert_eq!(
        info_field(&stats, "total_error_replies").as_deref(),
        Some("0")
    );
    assert_eq!(info_field(&stats, "expired_keys").as_deref(), Some("0"));
}

#[test]
fn client_list_marks_a_blocked_client_with_flag_b() {
    let s = TestServer::start();
    let mut r = s.raw();
    r.cmd(&["XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"]);
    let mut reader = s.raw();
    reader.send(&encode(&[
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
    s.wait_blocked(1);
    let list = String::from_utf8_lossy(&r.cmd(&["CLIENT", "LIST"])).to_string();
    let blocked: Vec<&str> = list.lines().filter(|l| l.contains(" flags=b ")).collect();
    assert_eq!(blocked.len(), 1, "{list}");
    assert!(blocked[0].contains(" cmd=xreadgroup "), "{list}");
    r.cmd(&["XADD", "s", "1-1", "f", "v"]);
    reader.read_reply();
    let list = String::from_utf8_lossy(&r.cmd(&["CLIENT", "LIST"])).to_string();
    assert!(!list.contains(" flags=b "), "{list}");
}

/// Redis 7.4's "XGROUP DESTROY should unblock XREADGROUP with -NOGROUP": the error of a
/// blocked call counts as a failed call, an error reply and an errorstat; CLIENT UNBLOCK
/// ERROR likewise (and counts itself failed, as Redis does).
#[test]
fn blocked_xreadgroup_ended_by_an_error_is_a_failed_call() {
    let s = TestServer::start();
    let mut r = s.raw();
    r.cmd(&["CONFIG", "RESETSTAT"]);
    r.cmd(&["XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"]);
    let mut reader = s.raw();
    let id = client_id(&mut reader);
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
    reader.send(&encode(&block));
    s.wait_blocked(1);
    r.cmd(&["XGROUP", "DESTROY", "s", "g"]);
    assert_eq!(
        reader.read_reply(),
        b"-NOGROUP No such key 's' or consumer group 'g' in XREADGROUP with GROUP option\r\n"
    );
    let stats = r.cmd(&["INFO", "commandstats"]);
    let line = info_field(&stats, "cmdstat_xreadgroup").unwrap_or_default();
    assert!(line.starts_with("calls=1,"), "{line}");
    assert!(line.ends_with(",rejected_calls=0,failed_calls=1"), "{line}");
    assert_eq!(
        info_field(&r.cmd(&["INFO", "errorstats"]), "errorstat_NOGROUP").as_deref(),
        Some("count=1")
    );
    assert_eq!(
        info_field(&r.cmd(&["INFO", "stats"]), "total_error_replies").as_deref(),
        Some("1")
    );

    r.cmd(&["XGROUP", "CREATE", "s", "g", "$"]);
    reader.send(&encode(&block));
    s.wait_blocked(1);
    assert_eq!(r.cmd(&["CLIENT", "UNBLOCK", &id, "ERROR"]), b":1\r\n");
    assert_eq!(
        reader.read_reply(),
        b"-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n"
    );
    let stats = r.cmd(&["INFO", "commandstats"]);
    let line = info_field(&stats, "cmdstat_xreadgroup").unwrap_or_default();
    assert!(line.ends_with(",failed_calls=2"), "{line}");
    let line = info_field(&stats, "cmdstat_client|unblock").unwrap_or_default();
    assert!(line.ends_with(",failed_calls=1"), "{line}");
    assert_eq!(
        info_field(&r.cmd(&["INFO", "errorstats"]), "errorstat_UNBLOCKED").as_deref(),
        Some("count=1")
    );

    // A timeout is an ordinary call.
    r.cmd(&[
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
    let stats = r.cmd(&["INFO", "commandstats"]);
    let line = info_field(&stats, "cmdstat_xreadgroup").unwrap_or_default();
    assert!(line.starts_with("calls=3,"), "{line}");
    assert!(line.ends_with(",failed_calls=2"), "{line}");
}

/// Redis's "XREADGROUP will not report data on empty history" neighbours: "Dirty counter
/// is incremented by XREADGROUP when entries are delivered" and "XREADGROUP from PEL does
/// not change dirty".
#[test]
fn dirty_counter_moves_once_per_delivering_xreadgroup_and_not_for_the_pel() {
    let s = TestServer::start();
    let mut r = s.raw();
    for (id, v) in [("1-0", "a"), ("2-0", "b"), ("3-0", "c"), ("4-0", "d")] {
        r.cmd(&["XADD", "x", id, "data", v]);
    }
    r.cmd(&["XGROUP", "CREATE", "x", "g1", "0"]);
    r.cmd(&["XGROUP", "CREATECONSUMER", "x", "g1", "Alice"]);
    let read = |r: &mut Raw, extra: &[&str], id: &str| -> u64 {
        let before = dirty(r);
        let mut args = vec!["XREADGROUP", "GROUP", "g1"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["COUNT", "2", "STREAMS", "x", id]);
        r.cmd(&args);
        dirty(r) - before
    };
    assert_eq!(read(&mut r, &["Alice"], ">"), 1);
    assert_eq!(read(&mut r, &["Alice", "NOACK"], ">"), 1);
    assert_eq!(read(&mut r, &["Alice"], "0"), 0);
    assert_eq!(read(&mut r, &["Alice"], "9000"), 0);
    // Reading the PEL creates the consumer, which counts.
    assert_eq!(read(&mut r, &["noconsumer"], "0"), 1);
    // Nothing new to deliver to an existing consumer: no change.
    assert_eq!(read(&mut r, &["Alice"], ">"), 0);
    // Writes count too: one per XADD, the deleted entries for XDEL.
    let before = dirty(&mut r);
    r.cmd(&["XADD", "x", "5-0", "data", "e"]);
    r.cmd(&["XDEL", "x", "1-0", "2-0", "9-0"]);
    assert_eq!(dirty(&mut r) - before, 3);
    // Loading the log at start-up is not a change (Redis starts from 0 after loading).
    let mut s = s;
    s.restart();
    let mut r = s.raw();
    assert_eq!(r.cmd(&["XLEN", "x"]), b":3\r\n");
    assert_eq!(dirty(&mut r), 0);
}

#[test]
fn version_fields_come_from_one_constant() {
    let s = TestServer::start();
    let mut r = s.raw();
    let info = r.cmd(&["INFO", "server"]);
    let version = rill::commands::connection::REDIS_VERSION;
    assert_eq!(info_field(&info, "redis_version").as_deref(), Some(version));
    assert_eq!(
        info_field(&info, "rill_version").as_deref(),
        Some(env!("CARGO_PKG_VERSION"))
    );
    for field in [
        "redis_git_sha1",
        "redis_git_dirty",
        "redis_build_id",
        "redis_mode",
    ] {
        assert!(info_field(&info, field).is_some(), "{field} missing");
    }
    let hello = String::from_utf8_lossy(&r.cmd(&["HELLO", "3"])).to_string();
    assert!(
        hello.contains(&format!(
            "$7\r\nversion\r\n${}\r\n{version}\r\n",
            version.len()
        )),
        "{hello}"
    );
}
