//! XNACK (Redis 8.8), against a real listening Rill.
//!
//! Redis 8.6.3, the differential suites' reference, has no XNACK, so these tests pin the
//! behaviour of `../shared/reference/redis-8-streams.md` §4 (taken from Redis's source
//! at a3e68716 and its `stream-cgroups.tcl` XNACK tests) byte for byte against Rill alone.
//! The error texts follow Redis's source pattern with one `ERR` (the source as read would
//! send `ERR ERR`; see `engine::error`).
mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{Raw, TestServer};

/// LLONG_MAX: FATAL's delivery count, and where every increment saturates.
const MAX: &str = "9223372036854775807";

fn text(r: &mut Raw, args: &[&str]) -> String {
    String::from_utf8_lossy(&r.cmd(args)).into_owned()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Stream `s` with entries 1-0 … n-0, group `g` at 0, all of them read by `alice`
/// (each pending with one delivery).
fn setup(r: &mut Raw, n: u32) {
    for i in 1..=n {
        assert_eq!(
            text(r, &["XADD", "s", &format!("{i}-0"), "f", &format!("v{i}")]),
            format!("${}\r\n{i}-0\r\n", format!("{i}-0").len())
        );
    }
    assert_eq!(text(r, &["XGROUP", "CREATE", "s", "g", "0"]), "+OK\r\n");
    let read = text(
        r,
        &["XREADGROUP", "GROUP", "g", "alice", "STREAMS", "s", ">"],
    );
    assert!(read.contains(&format!("{n}-0")), "{read}");
}

/// One row of extended XPENDING as RESP bytes.
fn pel_row(id: &str, consumer: &str, idle: &str, count: &str) -> String {
    format!(
        "*4\r\n${}\r\n{id}\r\n${}\r\n{consumer}\r\n:{idle}\r\n:{count}\r\n",
        id.len(),
        consumer.len()
    )
}

/// The extended XPENDING row of `id` (the whole range, then the one row).
fn pending_row(r: &mut Raw, id: &str) -> String {
    text(r, &["XPENDING", "s", "g", id, id, "1"])
}

/// IDs in the order a reply lists them (every bulk string shaped like `n-0`).
fn ids_in(reply: &str) -> Vec<String> {
    reply
        .split("\r\n")
        .filter(|l| {
            l.split_once('-').is_some_and(|(a, b)| {
                !a.is_empty() && a.bytes().all(|c| c.is_ascii_digit()) && b == "0"
            })
        })
        .map(str::to_string)
        .collect()
}

fn dirty(r: &mut Raw) -> u64 {
    let info = text(r, &["INFO", "persistence"]);
    info.lines()
        .find_map(|l| l.strip_prefix("rdb_changes_since_last_save:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no rdb_changes_since_last_save in {info}"))
}

#[test]
fn every_error_text_in_redis_order() {
    let s = TestServer::start();
    let mut r = s.raw();
    setup(&mut r, 3);
    assert_eq!(text(&mut r, &["SET", "str", "x"]), "+OK\r\n");
    let cases: &[(&[&str], &str)] = &[
        (
            &["XNACK", "s", "g", "SILENT", "IDS", "1"],
            "-ERR wrong number of arguments for 'xnack' command\r\n",
        ),
        (
            &["XNACK", "str", "g", "SILENT", "IDS", "1", "1-0"],
            "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
        ),
        // NOGROUP comes before the mode is looked at.
        (
            &["XNACK", "nokey", "g", "BOGUS", "IDS", "1", "1-0"],
            "-NOGROUP No such key 'nokey' or consumer group 'g'\r\n",
        ),
        (
            &["XNACK", "s", "nogroup", "BOGUS", "IDS", "1", "1-0"],
            "-NOGROUP No such key 's' or consumer group 'nogroup'\r\n",
        ),
        (
            &["XNACK", "s", "g", "BOGUS", "IDS", "1", "1-0"],
            "-ERR mode must be SILENT, FAIL, or FATAL\r\n",
        ),
        // The mode must be the third argument.
        (
            &["XNACK", "s", "g", "IDS", "1", "1-0", "SILENT"],
            "-ERR mode must be SILENT, FAIL, or FATAL\r\n",
        ),
        (
            &["XNACK", "s", "g", "SILENT", "IDS", "0", "1-0"],
            "-ERR numids must be a positive integer\r\n",
        ),
        (
            &["XNACK", "s", "g", "SILENT", "IDS", "-1", "1-0"],
            "-ERR numids must be a positive integer\r\n",
        ),
        (
            &["XNACK", "s", "g", "SILENT", "IDS", "x", "1-0"],
            "-ERR numids must be a positive integer\r\n",
        ),
        (
            &["XNACK", "s", "g", "SILENT", "IDS", "2147483648", "1-0"],
            "-ERR numids must be a positive integer\r\n",
        ),
        (
            &["XNACK", "s", "g", "SILENT", "IDS", "3", "1-0", "2-0"],
            "-ERR number of IDs doesn't match numids\r\n",
        ),
        (
            &[
                "XNACK",
                "s",
                "g",
                "SILENT",
                "IDS",
                "1",
                "1-0",
                "RETRYCOUNT",
                "x",
            ],
            "-ERR value is not an integer or out of range\r\n",
        ),
        (
            &[
                "XNACK",
                "s",
                "g",
                "SILENT",
                "IDS",
                "1",
                "1-0",
                "RETRYCOUNT",
                "-1",
            ],
            "-ERR Invalid RETRYCOUNT value, must be >= 0\r\n",
        ),
        (
            &["XNACK", "s", "g", "SILENT", "IDS", "1", "1-0", "BOGUS"],
            "-ERR Unrecognized XNACK option 'BOGUS'\r\n",
        ),
        // A second mode word, an ID after the block, an option without its value.
        (
            &["XNACK", "s", "g", "SILENT", "FAIL", "IDS", "1", "1-0"],
            "-ERR Unrecognized XNACK option 'FAIL'\r\n",
        ),
        (
            &["XNACK", "s", "g", "SILENT", "IDS", "1", "1-0", "2-0"],
            "-ERR Unrecognized XNACK option '2-0'\r\n",
        ),
        (
            &["XNACK", "s", "g", "SILENT", "IDS", "1", "1-0", "RETRYCOUNT"],
            "-ERR Unrecognized XNACK option 'RETRYCOUNT'\r\n",
        ),
        (
            &["XNACK", "s", "g", "SILENT", "FORCE", "RETRYCOUNT", "1"],
            "-ERR syntax error, expected IDS keyword\r\n",
        ),
        (
            &["XNACK", "s", "g", "SILENT", "IDS", "1", "nope"],
            "-ERR Invalid stream ID specified as stream command argument\r\n",
        ),
        // Options are checked before the IDs are parsed, the IDS block before the IDs.
        (
            &["XNACK", "s", "g", "SILENT", "IDS", "1", "nope", "BOGUS"],
            "-ERR Unrecognized XNACK option 'BOGUS'\r\n",
        ),
        (
            &[
                "XNACK",
                "s",
                "g",
                "SILENT",
                "IDS",
                "1",
                "nope",
                "RETRYCOUNT",
                "-5",
            ],
            "-ERR Invalid RETRYCOUNT value, must be >= 0\r\n",
        ),
    ];
    let before = dirty(&mut r);
    for (args, want) in cases {
        let got = text(&mut r, args);
        assert_eq!(&got, want, "{args:?}");
        assert!(!got.starts_with("-ERR ERR"), "{args:?}: doubled ERR");
    }
    // Nothing changed: every entry is still alice's with one delivery.
    assert_eq!(dirty(&mut r), before);
    assert_eq!(
        text(&mut r, &["XPENDING", "s", "g", "-", "+", "10", "alice"])
            .matches("alice")
            .count(),
        3
    );
}

#[test]
fn modes_retrycount_and_force_set_the_delivery_count() {
    let s = TestServer::start();
    let mut r = s.raw();
    setup(&mut r, 6);
    // Two more deliveries of 1-0 and 2-0 (count 3), through the consumer's history.
    for _ in 0..2 {
        text(
            &mut r,
            &[
                "XREADGROUP",
                "GROUP",
                "g",
                "alice",
                "COUNT",
                "2",
                "STREAMS",
                "s",
                "0",
            ],
        );
    }
    let row = pending_row(&mut r, "1-0");
    assert!(
        row.starts_with(&format!("*1\r\n{}", pel_row_prefix("1-0", "alice"))),
        "{row}"
    );
    assert!(row.ends_with(":3\r\n"), "{row}");

    // SILENT: one fewer; FAIL: unchanged; FATAL: LLONG_MAX.
    assert_eq!(
        text(&mut r, &["XNACK", "s", "g", "SILENT", "IDS", "1", "1-0"]),
        ":1\r\n"
    );
    assert_eq!(
        pending_row(&mut r, "1-0"),
        format!("*1\r\n{}", pel_row("1-0", "", "-1", "2"))
    );
    assert_eq!(
        text(&mut r, &["XNACK", "s", "g", "FAIL", "IDS", "1", "2-0"]),
        ":1\r\n"
    );
    assert_eq!(
        pending_row(&mut r, "2-0"),
        format!("*1\r\n{}", pel_row("2-0", "", "-1", "3"))
    );
    assert_eq!(
        text(&mut r, &["XNACK", "s", "g", "FATAL", "IDS", "1", "3-0"]),
        ":1\r\n"
    );
    assert_eq!(
        pending_row(&mut r, "3-0"),
        format!("*1\r\n{}", pel_row("3-0", "", "-1", MAX))
    );
    // SILENT never goes below 0, re-NACKing applies the mode again.
    for _ in 0..3 {
        assert_eq!(
            text(&mut r, &["xnack", "s", "g", "silent", "ids", "1", "1-0"]),
            ":1\r\n"
        );
    }
    assert_eq!(
        pending_row(&mut r, "1-0"),
        format!("*1\r\n{}", pel_row("1-0", "", "-1", "0"))
    );
    // RETRYCOUNT overrides the mode, FATAL's included.
    assert_eq!(
        text(
            &mut r,
            &[
                "XNACK",
                "s",
                "g",
                "FATAL",
                "RETRYCOUNT",
                "5",
                "IDS",
                "1",
                "4-0"
            ]
        ),
        ":1\r\n"
    );
    assert_eq!(
        pending_row(&mut r, "4-0"),
        format!("*1\r\n{}", pel_row("4-0", "", "-1", "5"))
    );
    assert_eq!(
        text(
            &mut r,
            &[
                "XNACK",
                "s",
                "g",
                "SILENT",
                "IDS",
                "1",
                "5-0",
                "RETRYCOUNT",
                MAX
            ]
        ),
        ":1\r\n"
    );
    assert_eq!(
        pending_row(&mut r, "5-0"),
        format!("*1\r\n{}", pel_row("5-0", "", "-1", MAX))
    );

    // FORCE: an entry in the stream but not pending gets an unowned NACK, count 0 then
    // the mode; an ID not in the stream is skipped; without FORCE nothing happens.
    assert_eq!(text(&mut r, &["XACK", "s", "g", "6-0"]), ":1\r\n");
    assert_eq!(
        text(&mut r, &["XNACK", "s", "g", "FAIL", "IDS", "1", "6-0"]),
        ":0\r\n"
    );
    assert_eq!(
        text(
            &mut r,
            &["XNACK", "s", "g", "FAIL", "IDS", "1", "6-0", "FORCE"]
        ),
        ":1\r\n"
    );
    assert_eq!(
        pending_row(&mut r, "6-0"),
        format!("*1\r\n{}", pel_row("6-0", "", "-1", "0"))
    );
    assert_eq!(text(&mut r, &["XACK", "s", "g", "6-0"]), ":1\r\n");
    assert_eq!(
        text(
            &mut r,
            &["XNACK", "s", "g", "FATAL", "FORCE", "IDS", "1", "6-0"]
        ),
        ":1\r\n"
    );
    assert_eq!(
        pending_row(&mut r, "6-0"),
        format!("*1\r\n{}", pel_row("6-0", "", "-1", MAX))
    );
    assert_eq!(text(&mut r, &["XACK", "s", "g", "6-0"]), ":1\r\n");
    assert_eq!(
        text(
            &mut r,
            &[
                "XNACK",
                "s",
                "g",
                "SILENT",
                "FORCE",
                "RETRYCOUNT",
                "3",
                "IDS",
                "1",
                "6-0"
            ]
        ),
        ":1\r\n"
    );
    assert_eq!(
        pending_row(&mut r, "6-0"),
        format!("*1\r\n{}", pel_row("6-0", "", "-1", "3"))
    );
    assert_eq!(
        text(
            &mut r,
            &["XNACK", "s", "g", "FAIL", "FORCE", "IDS", "1", "99-0"]
        ),
        ":0\r\n"
    );
    assert_eq!(
        text(&mut r, &["XPENDING", "s", "g", "99-0", "99-0", "1"]),
        "*0\r\n"
    );
    // Duplicates count each time; IDS may come before or after the options.
    assert_eq!(
        text(
            &mut r,
            &["XNACK", "s", "g", "FAIL", "IDS", "3", "2-0", "2-0", "98-0", "FORCE"]
        ),
        ":2\r\n"
    );
}

/// `*4\r\n$len\r\nid\r\n$len\r\nconsumer\r\n` of an extended XPENDING row.
fn pel_row_prefix(id: &str, consumer: &str) -> String {
    format!(
        "*4\r\n${}\r\n{id}\r\n${}\r\n{consumer}\r\n",
        id.len(),
        consumer.len()
    )
}

#[test]
fn nacked_entries_in_xpending_xinfo_and_history_reads() {
    let s = TestServer::start();
    let mut r = s.raw();
    setup(&mut r, 4);
    assert_eq!(
        text(
            &mut r,
            &["XNACK", "s", "g", "FAIL", "IDS", "2", "1-0", "3-0"]
        ),
        ":2\r\n"
    );
    // Summary: the total counts them, the per-consumer list does not.
    assert_eq!(
        text(&mut r, &["XPENDING", "s", "g"]),
        "*4\r\n:4\r\n$3\r\n1-0\r\n$3\r\n4-0\r\n*1\r\n*2\r\n$5\r\nalice\r\n$1\r\n2\r\n"
    );
    // Extended: consumer "" and idle -1; an IDLE filter keeps them; a consumer filter
    // drops them.
    let all = text(&mut r, &["XPENDING", "s", "g", "-", "+", "10"]);
    assert!(
        all.starts_with(&format!("*4\r\n{}", pel_row("1-0", "", "-1", "1"))),
        "{all}"
    );
    assert!(all.contains(&pel_row("3-0", "", "-1", "1")), "{all}");
    assert_eq!(
        text(
            &mut r,
            &["XPENDING", "s", "g", "IDLE", "3600000", "-", "+", "10"]
        ),
        format!(
            "*2\r\n{}{}",
            pel_row("1-0", "", "-1", "1"),
            pel_row("3-0", "", "-1", "1")
        )
    );
    assert_eq!(
        ids_in(&text(
            &mut r,
            &["XPENDING", "s", "g", "-", "+", "10", "alice"]
        )),
        ["2-0", "4-0"]
    );
    // XINFO GROUPS `pending` includes them; XINFO CONSUMERS `pending` does not.
    let groups = text(&mut r, &["XINFO", "GROUPS", "s"]);
    assert!(groups.contains("$7\r\npending\r\n:4\r\n"), "{groups}");
    let consumers = text(&mut r, &["XINFO", "CONSUMERS", "s", "g"]);
    assert!(consumers.contains("$7\r\npending\r\n:2\r\n"), "{consumers}");
    // A history read (ID other than >) no longer sees them.
    let history = text(
        &mut r,
        &["XREADGROUP", "GROUP", "g", "alice", "STREAMS", "s", "0"],
    );
    assert_eq!(ids_in(&history), ["2-0", "4-0"]);
    // XACK works on them; DELCONSUMER keeps them and counts only what the consumer owned.
    assert_eq!(text(&mut r, &["XACK", "s", "g", "3-0"]), ":1\r\n");
    assert_eq!(
        text(&mut r, &["XGROUP", "DELCONSUMER", "s", "g", "alice"]),
        ":2\r\n"
    );
    assert_eq!(
        text(&mut r, &["XPENDING", "s", "g", "-", "+", "10"]),
        format!("*1\r\n{}", pel_row("1-0", "", "-1", "1"))
    );
    // XDEL leaves a NACKed entry in the PEL as a ghost.
    assert_eq!(text(&mut r, &["XDEL", "s", "1-0"]), ":1\r\n");
    assert_eq!(
        text(&mut r, &["XPENDING", "s", "g"]).lines().nth(1),
        Some(":1")
    );
    // XGROUP DESTROY drops them with the group.
    assert_eq!(text(&mut r, &["XGROUP", "DESTROY", "s", "g"]), ":1\r\n");
    assert_eq!(
        text(&mut r, &["XGROUP", "CREATE", "s", "g", "0"]),
        "+OK\r\n"
    );
    assert_eq!(
        text(&mut r, &["XPENDING", "s", "g"]),
        "*4\r\n:0\r\n$-1\r\n$-1\r\n*-1\r\n"
    );
}

#[test]
fn xinfo_stream_full_shows_nacked_count_and_unowned_rows_in_resp2_and_resp3() {
    let s = TestServer::start();
    let mut r = s.raw();
    setup(&mut r, 3);
    // No NACK zone: 8.6.3's layout, no nacked-count.
    let full = text(&mut r, &["XINFO", "STREAM", "s", "FULL"]);
    assert!(!full.contains("nacked-count"), "{full}");
    assert!(
        full.contains("$9\r\npel-count\r\n:3\r\n$7\r\npending\r\n"),
        "{full}"
    );
    assert_eq!(
        text(
            &mut r,
            &["XNACK", "s", "g", "FATAL", "IDS", "2", "3-0", "1-0"]
        ),
        ":2\r\n"
    );
    let full = text(&mut r, &["XINFO", "STREAM", "s", "FULL"]);
    // The group has 8 pairs; nacked-count right after pel-count; PEL rows of NACKed
    // entries show consumer "" and delivery time 0.
    assert!(full.contains("*16\r\n$4\r\nname\r\n$1\r\ng\r\n"), "{full}");
    assert!(
        full.contains("$9\r\npel-count\r\n:3\r\n$12\r\nnacked-count\r\n:2\r\n$7\r\npending\r\n"),
        "{full}"
    );
    assert!(
        full.contains(&format!("*4\r\n$3\r\n1-0\r\n$0\r\n\r\n:0\r\n:{MAX}\r\n")),
        "{full}"
    );
    assert!(
        full.contains(&format!("*4\r\n$3\r\n3-0\r\n$0\r\n\r\n:0\r\n:{MAX}\r\n")),
        "{full}"
    );
    // alice's own list keeps only 2-0.
    assert!(full.contains("$9\r\npel-count\r\n:1\r\n"), "{full}");

    let mut r3 = s.raw();
    assert!(text(&mut r3, &["HELLO", "3"]).starts_with('%'));
    let full3 = text(&mut r3, &["XINFO", "STREAM", "s", "FULL"]);
    assert!(full3.contains("%8\r\n$4\r\nname\r\n$1\r\ng\r\n"), "{full3}");
    assert!(
        full3.contains("$9\r\npel-count\r\n:3\r\n$12\r\nnacked-count\r\n:2\r\n$7\r\npending\r\n"),
        "{full3}"
    );
    // XNACK's reply and XPENDING's rows are the same in RESP3.
    assert_eq!(
        text(&mut r3, &["XNACK", "s", "g", "SILENT", "IDS", "1", "2-0"]),
        ":1\r\n"
    );
    assert_eq!(
        text(&mut r3, &["XPENDING", "s", "g", "2-0", "2-0", "1"]),
        format!("*1\r\n{}", pel_row("2-0", "", "-1", "0"))
    );
    assert_eq!(
        text(
            &mut r3,
            &["XNACK", "nokey", "g", "SILENT", "IDS", "1", "2-0"]
        ),
        "-NOGROUP No such key 'nokey' or consumer group 'g'\r\n"
    );
}

#[test]
fn nack_zone_is_served_first_in_fifo_order_and_renack_moves_to_the_end() {
    let s = TestServer::start();
    let mut r = s.raw();
    setup(&mut r, 5);
    assert_eq!(
        text(&mut r, &["XNACK", "s", "g", "FAIL", "IDS", "1", "3-0"]),
        ":1\r\n"
    );
    assert_eq!(
        text(
            &mut r,
            &["XNACK", "s", "g", "FAIL", "IDS", "2", "1-0", "2-0"]
        ),
        ":2\r\n"
    );
    // Re-NACKing 3-0 moves it to the end of the zone.
    assert_eq!(
        text(&mut r, &["XNACK", "s", "g", "SILENT", "IDS", "1", "3-0"]),
        ":1\r\n"
    );
    // A day of min-idle: alice's fresh entries do not qualify, the zone does. Its
    // entries' delivery time is 0, so the idle reported is the current Unix time.
    let before = now_ms();
    let read = text(
        &mut r,
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "bob",
            "CLAIM",
            "86400000",
            "STREAMS",
            "s",
            ">",
        ],
    );
    let after = now_ms();
    assert_eq!(ids_in(&read), ["1-0", "2-0", "3-0"], "{read}");
    let ints: Vec<u64> = read
        .split("\r\n")
        .filter_map(|l| l.strip_prefix(':'))
        .filter_map(|v| v.parse().ok())
        .collect();
    // [idle, count] per entry, the count as it was before this delivery (as for any
    // CLAIM read): 1-0 and 2-0 kept 1 (FAIL), 3-0 went to 0 (SILENT).
    assert_eq!(ints.len(), 6, "{read}");
    for idle in [ints[0], ints[2], ints[4]] {
        assert!(
            (before..=after).contains(&idle),
            "idle {idle} not in {before}..={after}"
        );
    }
    assert_eq!([ints[1], ints[3], ints[5]], [1, 1, 0]);
    assert_eq!(
        ids_in(&text(
            &mut r,
            &["XPENDING", "s", "g", "-", "+", "10", "bob"]
        )),
        ["1-0", "2-0", "3-0"]
    );
}

#[test]
fn xclaim_and_xautoclaim_take_nacked_entries_and_clean_deleted_ones() {
    let s = TestServer::start();
    let mut r = s.raw();
    setup(&mut r, 5);
    assert_eq!(
        text(
            &mut r,
            &["XNACK", "s", "g", "FAIL", "IDS", "4", "1-0", "2-0", "3-0", "4-0"]
        ),
        ":4\r\n"
    );
    // A NACKed entry is claimable however long the min-idle-time.
    assert_eq!(
        text(
            &mut r,
            &["XCLAIM", "s", "g", "bob", "86400000", "1-0", "5-0", "JUSTID"]
        ),
        "*1\r\n$3\r\n1-0\r\n"
    );
    // JUSTID leaves the count alone.
    assert!(
        pending_row(&mut r, "1-0").starts_with(&format!("*1\r\n{}", pel_row_prefix("1-0", "bob")))
    );
    assert!(pending_row(&mut r, "1-0").ends_with(":1\r\n"));
    // Deleted NACKed entries: XCLAIM drops them without returning them, XAUTOCLAIM
    // reports them as deleted.
    assert_eq!(text(&mut r, &["XDEL", "s", "2-0", "3-0"]), ":2\r\n");
    assert_eq!(
        text(&mut r, &["XCLAIM", "s", "g", "bob", "0", "2-0"]),
        "*0\r\n"
    );
    assert_eq!(
        text(&mut r, &["XPENDING", "s", "g", "2-0", "2-0", "1"]),
        "*0\r\n"
    );
    let auto = text(
        &mut r,
        &["XAUTOCLAIM", "s", "g", "carol", "86400000", "0-0", "JUSTID"],
    );
    assert_eq!(
        auto, "*3\r\n$3\r\n0-0\r\n*1\r\n$3\r\n4-0\r\n*1\r\n$3\r\n3-0\r\n",
        "4-0 claimed, 3-0 gone, the fresh 5-0 left"
    );
    assert!(pending_row(&mut r, "4-0")
        .starts_with(&format!("*1\r\n{}", pel_row_prefix("4-0", "carol"))));
    assert_eq!(
        text(&mut r, &["XPENDING", "s", "g"]).lines().nth(1),
        Some(":3")
    );
}

#[test]
fn delivery_counts_saturate_at_llong_max() {
    let s = TestServer::start();
    let mut r = s.raw();
    setup(&mut r, 3);
    assert_eq!(
        text(
            &mut r,
            &["XNACK", "s", "g", "FATAL", "IDS", "3", "1-0", "2-0", "3-0"]
        ),
        ":3\r\n"
    );
    // XCLAIM, XAUTOCLAIM and XREADGROUP CLAIM would each add one: they stay at LLONG_MAX.
    assert_eq!(
        ids_in(&text(&mut r, &["XCLAIM", "s", "g", "bob", "0", "1-0"])),
        ["1-0"]
    );
    assert!(pending_row(&mut r, "1-0").ends_with(&format!(":{MAX}\r\n")));
    let auto = text(
        &mut r,
        &["XAUTOCLAIM", "s", "g", "bob", "0", "2-0", "COUNT", "1"],
    );
    assert_eq!(ids_in(&auto)[1], "2-0", "{auto}");
    assert!(pending_row(&mut r, "2-0").ends_with(&format!(":{MAX}\r\n")));
    let read = text(
        &mut r,
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "bob",
            "CLAIM",
            "0",
            "STREAMS",
            "s",
            ">",
        ],
    );
    assert!(read.contains(&format!(":{MAX}\r\n")), "{read}");
    assert!(pending_row(&mut r, "3-0").ends_with(&format!(":{MAX}\r\n")));
    // A history read too.
    text(
        &mut r,
        &["XREADGROUP", "GROUP", "g", "bob", "STREAMS", "s", "0"],
    );
    let all = text(&mut r, &["XPENDING", "s", "g", "-", "+", "10"]);
    assert_eq!(all.matches(&format!(":{MAX}\r\n")).count(), 3, "{all}");
}

#[test]
fn xnack_counts_in_the_dirty_counter_per_id() {
    let s = TestServer::start();
    let mut r = s.raw();
    setup(&mut r, 3);
    let before = dirty(&mut r);
    assert_eq!(
        text(
            &mut r,
            &["XNACK", "s", "g", "FAIL", "IDS", "3", "1-0", "1-0", "2-0"]
        ),
        ":3\r\n"
    );
    assert_eq!(dirty(&mut r), before + 3);
    assert_eq!(
        text(&mut r, &["XNACK", "s", "g", "FAIL", "IDS", "1", "9-0"]),
        ":0\r\n"
    );
    assert_eq!(dirty(&mut r), before + 3);
}

#[test]
fn blocked_claim_read_wakes_on_xnack() {
    let s = TestServer::start();
    let mut r = s.raw();
    setup(&mut r, 2);
    let mut reader = s.raw();
    // Nothing new and nothing a day idle: the read blocks.
    reader.send(&common::encode(&[
        "XREADGROUP",
        "GROUP",
        "g",
        "bob",
        "BLOCK",
        "0",
        "CLAIM",
        "86400000",
        "STREAMS",
        "s",
        ">",
    ]));
    s.wait_blocked(1);
    assert_eq!(
        text(&mut r, &["XNACK", "s", "g", "SILENT", "IDS", "1", "2-0"]),
        ":1\r\n"
    );
    let got = String::from_utf8_lossy(&reader.read_reply()).into_owned();
    assert_eq!(ids_in(&got), ["2-0"], "{got}");
    assert!(
        pending_row(&mut r, "2-0").starts_with(&format!("*1\r\n{}", pel_row_prefix("2-0", "bob")))
    );
}

/// XNACK changes the group, not the entries: like XACK (whose WATCH behaviour
/// tests/differential_watch.rs compares with Redis 8.6.3) it leaves a WATCHer's transaction
/// alone, whether it NACKs something or not. Redis 8.8's xnackCommand (a3e68716) only
/// calls `signalKeyAsReady`.
#[test]
fn xnack_does_not_abort_a_watchers_transaction() {
    let s = TestServer::start();
    let mut r = s.raw();
    setup(&mut r, 2);
    let mut watcher = s.raw();
    for (nack, reply) in [
        (
            &["XNACK", "s", "g", "SILENT", "IDS", "1", "1-0"][..],
            ":1\r\n",
        ),
        (
            &["XNACK", "s", "g", "FATAL", "IDS", "1", "9-0"][..],
            ":0\r\n",
        ),
        (
            &[
                "XNACK",
                "s",
                "g",
                "FAIL",
                "FORCE",
                "RETRYCOUNT",
                "3",
                "IDS",
                "1",
                "2-0",
            ][..],
            ":1\r\n",
        ),
    ] {
        assert_eq!(text(&mut watcher, &["WATCH", "s"]), "+OK\r\n");
        assert_eq!(text(&mut r, nack), reply, "{nack:?}");
        assert_eq!(text(&mut watcher, &["MULTI"]), "+OK\r\n");
        assert_eq!(text(&mut watcher, &["PING"]), "+QUEUED\r\n");
        assert_eq!(
            text(&mut watcher, &["EXEC"]),
            "*1\r\n+PONG\r\n",
            "after {nack:?}"
        );
    }
}

/// DEBUG DIGEST and XINFO STREAM FULL (stored delivery times, not idle times, and the
/// groups' `nacked-count`): what must survive a restart.
fn state(r: &mut Raw) -> (String, String) {
    let digest = text(r, &["DEBUG", "DIGEST"]);
    let full = text(r, &["XINFO", "STREAM", "s", "FULL"]);
    assert!(full.contains("nacked-count"), "{full}");
    (digest, full)
}

fn nack_workload(r: &mut Raw) {
    setup(r, 8);
    assert_eq!(
        text(r, &["XNACK", "s", "g", "FAIL", "IDS", "1", "5-0"]),
        ":1\r\n"
    );
    assert_eq!(
        text(r, &["XNACK", "s", "g", "FATAL", "IDS", "2", "2-0", "7-0"]),
        ":2\r\n"
    );
    assert_eq!(
        text(
            r,
            &[
                "XNACK",
                "s",
                "g",
                "SILENT",
                "RETRYCOUNT",
                "4",
                "IDS",
                "1",
                "1-0"
            ]
        ),
        ":1\r\n"
    );
    // Re-NACK: 5-0 to the end of the zone.
    assert_eq!(
        text(r, &["XNACK", "s", "g", "SILENT", "IDS", "1", "5-0"]),
        ":1\r\n"
    );
    assert_eq!(text(r, &["XACK", "s", "g", "8-0"]), ":1\r\n");
    assert_eq!(
        text(r, &["XNACK", "s", "g", "FAIL", "FORCE", "IDS", "1", "8-0"]),
        ":1\r\n"
    );
    assert_eq!(text(r, &["XDEL", "s", "7-0"]), ":1\r\n");
}

/// The zone in the order XREADGROUP CLAIM serves it (changes the state: call last).
fn zone_order(r: &mut Raw) -> Vec<String> {
    ids_in(&text(
        r,
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "zed",
            "CLAIM",
            "86400000",
            "STREAMS",
            "s",
            ">",
        ],
    ))
}

#[test]
fn nack_state_survives_sigkill_and_checkpoint() {
    let mut s = TestServer::start_with(&["--compaction-threshold", "0"]);
    let mut r = s.raw();
    nack_workload(&mut r);
    let expected = state(&mut r);
    assert!(expected.0.starts_with('+'), "{}", expected.0);

    // SIGKILL: everything comes back from the log.
    s.restart();
    let mut r = s.raw();
    assert_eq!(state(&mut r), expected);

    // A checkpoint, then more NACKs in the log after it, then SIGKILL.
    let _ = text(&mut r, &["BGREWRITEAOF"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let files: Vec<String> = std::fs::read_dir(s.dir.join("log"))
            .expect("log dir")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        let info = text(&mut r, &["INFO", "persistence"]);
        if files.iter().any(|f| f.ends_with(".ckp")) && info.contains("aof_rewrite_in_progress:0") {
            break;
        }
        assert!(Instant::now() < deadline, "no checkpoint: {files:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    s.restart();
    let mut r = s.raw();
    assert_eq!(state(&mut r), expected, "loaded from the checkpoint");
    assert_eq!(
        text(&mut r, &["XNACK", "s", "g", "FAIL", "IDS", "1", "2-0"]),
        ":1\r\n"
    );
    let expected = state(&mut r);
    s.restart();
    let mut r = s.raw();
    assert_eq!(state(&mut r), expected, "checkpoint plus log");
    // The zone's order came back too: 1-0, 5-0, 8-0, 2-0 (7-0 is deleted, so skipped).
    assert_eq!(zone_order(&mut r), ["1-0", "5-0", "8-0", "2-0"]);
}

#[test]
fn command_info_and_docs() {
    let s = TestServer::start();
    let mut r = s.raw();
    let info = text(&mut r, &["COMMAND", "INFO", "xnack"]);
    assert!(
        info.starts_with("*1\r\n*10\r\n$5\r\nxnack\r\n:-7\r\n*2\r\n+write\r\n+fast\r\n:1\r\n:1\r\n:1\r\n*3\r\n+@write\r\n+@stream\r\n+@fast\r\n"),
        "{info}"
    );
    let docs = text(&mut r, &["COMMAND", "DOCS", "xnack"]);
    for needle in [
        "8.8.0",
        "SILENT",
        "FAIL",
        "FATAL",
        "IDS",
        "numids",
        "RETRYCOUNT",
        "FORCE",
    ] {
        assert!(docs.contains(needle), "{needle} not in {docs}");
    }
}

#[test]
fn nacked_entries_stay_referenced_for_acked_deletes() {
    let s = TestServer::start();
    let mut r = s.raw();
    setup(&mut r, 3);
    assert_eq!(text(&mut r, &["XACK", "s", "g", "1-0", "2-0"]), ":2\r\n");
    // A FORCE NACK puts 1-0 back in the PEL: ACKED must keep it now.
    assert_eq!(
        text(
            &mut r,
            &["XNACK", "s", "g", "FAIL", "FORCE", "IDS", "1", "1-0"]
        ),
        ":1\r\n"
    );
    assert_eq!(
        text(&mut r, &["XDELEX", "s", "ACKED", "IDS", "2", "1-0", "2-0"]),
        "*2\r\n:2\r\n:1\r\n"
    );
    // A NACK of an owned entry keeps it referenced too; XACK releases it.
    assert_eq!(
        text(&mut r, &["XNACK", "s", "g", "SILENT", "IDS", "1", "3-0"]),
        ":1\r\n"
    );
    assert_eq!(
        text(&mut r, &["XDELEX", "s", "ACKED", "IDS", "1", "3-0"]),
        "*1\r\n:2\r\n"
    );
    assert_eq!(text(&mut r, &["XACK", "s", "g", "1-0", "3-0"]), ":2\r\n");
    assert_eq!(
        text(&mut r, &["XDELEX", "s", "ACKED", "IDS", "2", "1-0", "3-0"]),
        "*2\r\n:1\r\n:1\r\n"
    );
}
