//! XREADGROUP … CLAIM (Redis 8.4) and MAXCOUNT / MAXSIZE on XREAD and XREADGROUP (Redis
//! 8.10) against a running `rill`: error texts, exact reply bytes in RESP2 and RESP3, claim
//! order, blocked readers woken when an entry becomes idle enough (no write involved), a
//! large PEL served by the by-delivery-time index, delivery counts and owners across SIGKILL
//! and across a checkpoint, and the MAXCOUNT / MAXSIZE rules. The byte-for-byte comparison
//! with Redis 8.6.3 is `tests/differential_claim.rs`; MAXCOUNT/MAXSIZE exist only from 8.10,
//! so they are tested here against the rules of the reference notes.

mod common;

use std::time::{Duration, Instant};

use common::TestServer;
use redis::Value;

fn q(con: &mut redis::Connection, args: &[&str]) -> Value {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(con).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

fn err(con: &mut redis::Connection, args: &[&str]) -> String {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    match cmd.query::<Value>(con) {
        Err(e) => {
            let code = e.code().unwrap_or("");
            let detail = e.detail().unwrap_or("");
            format!("{code} {detail}")
        }
        Ok(v) => panic!("{args:?}: expected an error, got {v:?}"),
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        other => panic!("expected a string, got {other:?}"),
    }
}

fn arr(v: &Value) -> &[Value] {
    match v {
        Value::Array(a) => a,
        other => panic!("expected an array, got {other:?}"),
    }
}

fn int(v: &Value) -> i64 {
    match v {
        Value::Int(n) => *n,
        other => panic!("expected an integer, got {other:?}"),
    }
}

/// A read reply (RESP2) as `[(key, [entry])]`.
fn per_key(v: &Value) -> Vec<(String, Vec<Value>)> {
    arr(v)
        .iter()
        .map(|kv| {
            let kv = arr(kv);
            (text(&kv[0]), arr(&kv[1]).to_vec())
        })
        .collect()
}

/// The IDs of a one-stream read reply.
fn ids(v: &Value) -> Vec<String> {
    per_key(v)
        .into_iter()
        .flat_map(|(_, entries)| entries)
        .map(|e| text(&arr(&e)[0]))
        .collect()
}

/// `(id, idle, delivery-count)` of each 4-element entry of a one-stream read reply.
fn claimed(v: &Value) -> Vec<(String, i64, i64)> {
    per_key(v)
        .into_iter()
        .flat_map(|(_, entries)| entries)
        .map(|e| {
            let e = arr(&e);
            assert_eq!(e.len(), 4, "a CLAIM entry has four elements: {e:?}");
            (text(&e[0]), int(&e[2]), int(&e[3]))
        })
        .collect()
}

/// XPENDING extended rows as `(id, consumer, delivery-count)`.
fn pel(con: &mut redis::Connection, key: &str) -> Vec<(String, String, i64)> {
    arr(&q(con, &["XPENDING", key, "g", "-", "+", "1000000"]))
        .iter()
        .map(|row| {
            let row = arr(row);
            (text(&row[0]), text(&row[1]), int(&row[3]))
        })
        .collect()
}

/// Entries 1-0..=n-0 in `key`, group `g` at 0, all read by `c1`.
fn setup(con: &mut redis::Connection, key: &str, n: u64) {
    for i in 1..=n {
        q(
            con,
            &["XADD", key, &format!("{i}-0"), "f", &format!("v{i}")],
        );
    }
    q(con, &["XGROUP", "CREATE", key, "g", "0"]);
    q(
        con,
        &["XREADGROUP", "GROUP", "g", "c1", "STREAMS", key, ">"],
    );
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Moves the delivery time of `ids` to `ago_ms` before now (JUSTID keeps counts).
fn age(con: &mut redis::Connection, key: &str, ago_ms: u64, ids: &[&str]) {
    let at = (now_ms() - ago_ms).to_string();
    let mut args = vec!["XCLAIM", key, "g", "c1", "0"];
    args.extend_from_slice(ids);
    args.extend_from_slice(&["TIME", &at, "JUSTID"]);
    q(con, &args);
}

#[test]
fn claim_and_limit_errors_have_redis_texts() {
    let server = TestServer::start();
    let mut con = server.conn();
    setup(&mut con, "s", 1);
    let read = |opts: &[&str]| {
        let mut args = vec!["XREADGROUP", "GROUP", "g", "c"];
        args.extend_from_slice(opts);
        args.extend_from_slice(&["STREAMS", "s", ">"]);
        args.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let e = |con: &mut redis::Connection, args: Vec<String>| {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        err(con, &refs)
    };
    for bad in ["x", "+10", "-0", "5.5", "10e", "000", "9223372036854775808"] {
        assert_eq!(
            e(&mut con, read(&["CLAIM", bad])),
            "ERR min-idle-time is not an integer or out of range",
            "CLAIM {bad}"
        );
    }
    assert_eq!(
        e(&mut con, read(&["CLAIM", "-5"])),
        "ERR min-idle-time must be a positive integer"
    );
    assert_eq!(
        err(&mut con, &["XREAD", "CLAIM", "5", "STREAMS", "s", "0"]),
        "ERR The CLAIM option is only supported by XREADGROUP. You called XREAD instead."
    );
    // MAXCOUNT / MAXSIZE: Rill's chosen texts (Redis 8.10's are unpublished).
    for cmd in [vec!["XREAD"], vec!["XREADGROUP", "GROUP", "g", "c"]] {
        let with = |opts: &[&str]| {
            let mut args: Vec<&str> = cmd.clone();
            args.extend_from_slice(opts);
            args.extend_from_slice(&["STREAMS", "s", if cmd.len() > 1 { ">" } else { "0" }]);
            args.iter().map(|s| s.to_string()).collect::<Vec<_>>()
        };
        for opt in ["MAXCOUNT", "MAXSIZE"] {
            for bad in ["x", "1.5", ""] {
                assert_eq!(
                    e(&mut con, with(&[opt, bad])),
                    "ERR value is not an integer or out of range"
                );
            }
            for bad in ["0", "-1"] {
                assert_eq!(
                    e(&mut con, with(&[opt, bad])),
                    "ERR value is out of range, must be positive"
                );
            }
        }
        assert_eq!(
            e(&mut con, with(&["MAXCOUNT", "2", "COUNT", "3"])),
            "ERR MAXCOUNT must be greater than or equal to COUNT"
        );
        assert_eq!(
            e(&mut con, with(&["COUNT", "3", "MAXCOUNT", "2"])),
            "ERR MAXCOUNT must be greater than or equal to COUNT"
        );
        // A COUNT that means "no limit" (0 or negative) has nothing to exceed.
        let ok: Vec<String> = with(&["COUNT", "-1", "MAXCOUNT", "2"]);
        let refs: Vec<&str> = ok.iter().map(String::as_str).collect();
        q(&mut con, &refs);
        // Without a value the word is a syntax error, as for COUNT.
        let mut args = cmd.clone();
        args.extend_from_slice(&["COUNT", "1", "MAXSIZE"]);
        assert_eq!(err(&mut con, &args), "ERR syntax error");
    }
    // Nothing was served by the failed calls.
    assert_eq!(pel(&mut con, "s"), vec![("1-0".into(), "c1".into(), 1)]);
}

#[test]
fn claim_reply_bytes_in_resp2_and_resp3() {
    let server = TestServer::start();
    let mut con = server.conn();
    q(&mut con, &["XADD", "s", "1-0", "f", "v"]);
    q(&mut con, &["XGROUP", "CREATE", "s", "g", "0"]);
    // New entries under CLAIM are `[id, fields, 0, 0]`.
    let mut raw = server.raw();
    let reply = raw.cmd(&[
        "XREADGROUP",
        "GROUP",
        "g",
        "c",
        "CLAIM",
        "0",
        "STREAMS",
        "s",
        ">",
    ]);
    assert_eq!(
        reply,
        b"*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*4\r\n$3\r\n1-0\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n:0\r\n:0\r\n"
    );
    // Claimed: the count before this delivery, the idle time as an integer.
    let reply = String::from_utf8(raw.cmd(&[
        "XREADGROUP",
        "GROUP",
        "g",
        "c2",
        "CLAIM",
        "0",
        "STREAMS",
        "s",
        ">",
    ]))
    .unwrap_or_default();
    let prefix = "*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*4\r\n$3\r\n1-0\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n:";
    assert!(reply.starts_with(prefix), "{reply:?}");
    let rest = &reply[prefix.len()..];
    let idle: i64 = rest
        .split("\r\n")
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(-1);
    assert!((0..60_000).contains(&idle), "{reply:?}");
    assert!(rest.ends_with("\r\n:1\r\n"), "{reply:?}");
    // RESP3: a map of key → entries.
    raw.cmd(&["HELLO", "3"]);
    q(&mut con, &["XADD", "s", "2-0", "a", "b"]);
    let reply = raw.cmd(&[
        "XREADGROUP",
        "GROUP",
        "g",
        "c3",
        "COUNT",
        "1",
        "CLAIM",
        "9223372036854775807",
        "STREAMS",
        "s",
        ">",
    ]);
    assert_eq!(
        reply,
        b"%1\r\n$1\r\ns\r\n*1\r\n*4\r\n$3\r\n2-0\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n:0\r\n:0\r\n"
    );
    // Nothing claimable, nothing new: null (RESP3 `_`).
    let reply = raw.cmd(&[
        "XREADGROUP",
        "GROUP",
        "g",
        "c3",
        "CLAIM",
        "60000",
        "STREAMS",
        "s",
        ">",
    ]);
    assert_eq!(reply, b"_\r\n");
    // History reads ignore CLAIM: 2-element entries.
    let reply = raw.cmd(&[
        "XREADGROUP",
        "GROUP",
        "g",
        "c3",
        "CLAIM",
        "0",
        "STREAMS",
        "s",
        "0",
    ]);
    assert_eq!(
        reply,
        b"%1\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n2-0\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n"
    );
}

#[test]
fn claim_order_counts_owners_and_consumer_times() {
    let server = TestServer::start();
    let mut con = server.conn();
    setup(&mut con, "s", 6);
    age(&mut con, "s", 50_000, &["4-0"]);
    // Equal delivery times keep the order they were given in (Redis 8.6's PEL time list).
    age(&mut con, "s", 40_000, &["3-0", "1-0", "2-0"]);
    age(&mut con, "s", 20_000, &["5-0"]);
    let r = q(
        &mut con,
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "c2",
            "COUNT",
            "3",
            "CLAIM",
            "10000",
            "STREAMS",
            "s",
            ">",
        ],
    );
    let got = claimed(&r);
    let order: Vec<&str> = got.iter().map(|(id, _, _)| id.as_str()).collect();
    assert_eq!(order, ["4-0", "3-0", "1-0"]);
    assert!(got[0].1 >= 50_000 && got[1].1 >= 40_000, "{got:?}");
    assert!(got.iter().all(|(_, _, count)| *count == 1), "{got:?}");
    // COUNT is shared with new entries; 2-0 and 5-0 remain claimable, then one new entry.
    q(&mut con, &["XADD", "s", "7-0", "f", "v7"]);
    let r = q(
        &mut con,
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "c3",
            "CLAIM",
            "10000",
            "COUNT",
            "3",
            "STREAMS",
            "s",
            ">",
        ],
    );
    let got = claimed(&r);
    assert_eq!(
        got.iter()
            .map(|(id, _, c)| (id.as_str(), *c))
            .collect::<Vec<_>>(),
        [("2-0", 1), ("5-0", 1), ("7-0", 0)]
    );
    assert_eq!(got[2].1, 0);
    // Ownership and counts moved: claimed entries are owned by their claimer, count 2.
    let rows = pel(&mut con, "s");
    let row = |id: &str| rows.iter().find(|r| r.0 == id).cloned();
    assert_eq!(row("4-0"), Some(("4-0".into(), "c2".into(), 2)));
    assert_eq!(row("2-0"), Some(("2-0".into(), "c3".into(), 2)));
    assert_eq!(row("7-0"), Some(("7-0".into(), "c3".into(), 1)));
    assert_eq!(row("6-0"), Some(("6-0".into(), "c1".into(), 1)));
    // Claiming one entry again and again reports the count before each delivery.
    q(&mut con, &["XADD", "one", "1-0", "f", "v"]);
    q(&mut con, &["XGROUP", "CREATE", "one", "g", "0"]);
    q(
        &mut con,
        &["XREADGROUP", "GROUP", "g", "c1", "STREAMS", "one", ">"],
    );
    for expect in [1, 2, 3] {
        let r = q(
            &mut con,
            &[
                "XREADGROUP",
                "GROUP",
                "g",
                "c4",
                "CLAIM",
                "0",
                "STREAMS",
                "one",
                ">",
            ],
        );
        assert_eq!(claimed(&r), [("1-0".to_string(), claimed(&r)[0].1, expect)]);
    }
    q(
        &mut con,
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "c4",
            "COUNT",
            "1",
            "CLAIM",
            "0",
            "STREAMS",
            "s",
            ">",
        ],
    );
    // XINFO CONSUMERS: c4 was active just now.
    let info = q(&mut con, &["XINFO", "CONSUMERS", "s", "g"]);
    let c4 = arr(&info)
        .iter()
        .map(|c| arr(c).to_vec())
        .find(|c| text(&c[1]) == "c4")
        .expect("c4 exists");
    assert!(int(&c4[7]) < 10_000, "inactive of c4: {c4:?}");
    // NOACK: claimed entries still move, new ones stay out of the PEL.
    q(&mut con, &["XADD", "s", "8-0", "f", "v8"]);
    let before = pel(&mut con, "s").len();
    let r = q(
        &mut con,
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "c5",
            "NOACK",
            "CLAIM",
            "0",
            "COUNT",
            "2",
            "STREAMS",
            "s",
            ">",
        ],
    );
    let got = claimed(&r);
    assert_eq!(got.len(), 2);
    assert_eq!(pel(&mut con, "s").len(), before);
    let owned = pel(&mut con, "s")
        .into_iter()
        .filter(|r| r.1 == "c5")
        .count();
    assert_eq!(owned, 2);
    q(&mut con, &["XADD", "s", "9-0", "f", "v9"]);
    let r = q(
        &mut con,
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "c5",
            "NOACK",
            "CLAIM",
            "600000",
            "STREAMS",
            "s",
            ">",
        ],
    );
    // COUNT 2 was filled by claims: 8-0 is still new, and neither enters the PEL.
    assert_eq!(claimed(&r), [("8-0".into(), 0, 0), ("9-0".into(), 0, 0)]);
    assert!(pel(&mut con, "s").iter().all(|r| r.0 != "8-0"));
    assert!(pel(&mut con, "s").iter().all(|r| r.0 != "9-0"));
}

#[test]
fn blocked_claim_read_wakes_when_an_entry_becomes_idle_enough() {
    let server = TestServer::start();
    let mut con = server.conn();
    // Taken before the delivery, so the wait measured from here is at least the idle time
    // (less the millisecond the server's clock truncates).
    let delivered = Instant::now();
    setup(&mut con, "s", 1);
    // No write follows: only the entry's idle time can serve this reader.
    let mut reader = server.raw();
    reader.send(&common::encode(&[
        "XREADGROUP",
        "GROUP",
        "g",
        "c2",
        "BLOCK",
        "20000",
        "CLAIM",
        "400",
        "STREAMS",
        "s",
        ">",
    ]));
    let reply = String::from_utf8(reader.read_reply()).unwrap_or_default();
    let waited = delivered.elapsed();
    assert!(reply.contains("$3\r\n1-0\r\n"), "{reply:?}");
    assert!(reply.ends_with(":1\r\n"), "{reply:?}");
    assert!(
        waited >= Duration::from_millis(399),
        "served after {waited:?}"
    );
    assert!(waited < Duration::from_secs(15), "served after {waited:?}");
    assert_eq!(pel(&mut con, "s"), [("1-0".into(), "c2".into(), 2)]);

    // Nothing becomes claimable in time: the BLOCK timeout answers (null).
    let started = Instant::now();
    let reply = reader.cmd(&[
        "XREADGROUP",
        "GROUP",
        "g",
        "c3",
        "BLOCK",
        "300",
        "CLAIM",
        "600000",
        "STREAMS",
        "s",
        ">",
    ]);
    assert_eq!(reply, b"*-1\r\n");
    assert!(started.elapsed() >= Duration::from_millis(300));

    // The entry it waits for is acknowledged: the timer finds nothing and the reader keeps
    // waiting, then a new entry serves it (as `[id, fields, 0, 0]`).
    age(&mut con, "s", 0, &["1-0"]);
    reader.send(&common::encode(&[
        "XREADGROUP",
        "GROUP",
        "g",
        "c3",
        "BLOCK",
        "0",
        "CLAIM",
        "500",
        "STREAMS",
        "s",
        ">",
    ]));
    server.wait_blocked(1);
    q(&mut con, &["XACK", "s", "g", "1-0"]);
    std::thread::sleep(Duration::from_millis(800));
    server.wait_blocked(1);
    q(&mut con, &["XADD", "s", "2-0", "f", "v2"]);
    let reply = reader.read_reply();
    assert_eq!(
        reply,
        b"*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*4\r\n$3\r\n2-0\r\n*2\r\n$1\r\nf\r\n$2\r\nv2\r\n:0\r\n:0\r\n"
    );
}

#[test]
fn two_blocked_claim_readers_are_served_one_entry_each_in_order() {
    let server = TestServer::start();
    let mut con = server.conn();
    setup(&mut con, "s", 2);
    let mut first = server.raw();
    let mut second = server.raw();
    let read = |name: &str| {
        common::encode(&[
            "XREADGROUP",
            "GROUP",
            "g",
            name,
            "COUNT",
            "1",
            "BLOCK",
            "20000",
            "CLAIM",
            "300",
            "STREAMS",
            "s",
            ">",
        ])
    };
    first.send(&read("a"));
    server.wait_blocked(1);
    second.send(&read("b"));
    let a = String::from_utf8(first.read_reply()).unwrap_or_default();
    let b = String::from_utf8(second.read_reply()).unwrap_or_default();
    assert!(a.contains("$3\r\n1-0\r\n"), "{a:?}");
    assert!(b.contains("$3\r\n2-0\r\n"), "{b:?}");
    let rows = pel(&mut con, "s");
    assert_eq!(
        rows,
        [("1-0".into(), "a".into(), 2), ("2-0".into(), "b".into(), 2)]
    );
}

#[test]
fn large_pel_is_claimed_through_the_time_index() {
    let server = TestServer::start();
    let mut con = server.conn();
    const N: usize = 100_000;
    let mut pipe = redis::pipe();
    for i in 1..=N {
        pipe.cmd("XADD")
            .arg("big")
            .arg(format!("{i}-0"))
            .arg("f")
            .arg("v")
            .ignore();
    }
    pipe.query::<()>(&mut con).expect("XADD pipeline");
    q(&mut con, &["XGROUP", "CREATE", "big", "g", "0"]);
    let r = q(
        &mut con,
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "c1",
            "COUNT",
            "100000",
            "STREAMS",
            "big",
            ">",
        ],
    );
    assert_eq!(per_key(&r)[0].1.len(), N);
    // The oldest thousand are made old; the rest stay fresh.
    let at = (now_ms() - 60_000).to_string();
    let mut args: Vec<String> = ["XCLAIM", "big", "g", "c1", "0"].map(String::from).to_vec();
    args.extend((1..=1000).map(|i| format!("{i}-0")));
    args.extend(["TIME", &at, "JUSTID"].map(String::from));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    q(&mut con, &refs);
    // A thousand CLAIM reads of one entry each, pipelined, plus a thousand that find
    // nothing idle enough among 100k pending: each looks at the head of the time index
    // only, so this is fast even in a debug build (a scan of the PEL per call is not).
    let started = Instant::now();
    let mut pipe = redis::pipe();
    for _ in 0..1000 {
        pipe.cmd("XREADGROUP").arg(&[
            "GROUP", "g", "c2", "COUNT", "1", "CLAIM", "30000", "STREAMS", "big", ">",
        ]);
    }
    let replies: Vec<Value> = pipe.query(&mut con).expect("CLAIM pipeline");
    let mut pipe = redis::pipe();
    for _ in 0..1000 {
        pipe.cmd("XREADGROUP").arg(&[
            "GROUP", "g", "c3", "COUNT", "1", "CLAIM", "30000", "STREAMS", "big", ">",
        ]);
    }
    let empty: Vec<Value> = pipe.query(&mut con).expect("CLAIM pipeline");
    let took = started.elapsed();
    let got: Vec<String> = replies.iter().flat_map(ids).collect();
    let want: Vec<String> = (1..=1000).map(|i| format!("{i}-0")).collect();
    assert_eq!(got, want);
    assert!(empty.iter().all(|v| *v == Value::Nil));
    // About 0.2 s in a debug build; a scan of the 100k-entry PEL per call took 7.5 s.
    assert!(
        took < Duration::from_secs(4),
        "2000 CLAIM reads took {took:?}"
    );
}

#[test]
fn claims_survive_sigkill_and_checkpoint_with_counts_owners_and_order() {
    let mut server = TestServer::start();
    let mut con = server.conn();
    setup(&mut con, "s", 4);
    age(&mut con, "s", 40_000, &["3-0", "1-0"]);
    age(&mut con, "s", 30_000, &["4-0"]);
    // 3-0, 1-0 and 4-0 claimed by c2 (count 2); then the oldest delivery, 2-0 (from the
    // first read), by c3.
    q(
        &mut con,
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "c2",
            "CLAIM",
            "10000",
            "STREAMS",
            "s",
            ">",
        ],
    );
    q(
        &mut con,
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "c3",
            "COUNT",
            "1",
            "CLAIM",
            "0",
            "STREAMS",
            "s",
            ">",
        ],
    );
    let before = pel(&mut con, "s");
    let consumers = |con: &mut redis::Connection| -> Vec<(String, i64)> {
        arr(&q(con, &["XINFO", "CONSUMERS", "s", "g"]))
            .iter()
            .map(|c| {
                let c = arr(c);
                (text(&c[1]), int(&c[3]))
            })
            .collect()
    };
    let owners = consumers(&mut con);
    let times: Vec<Value> = arr(&q(&mut con, &["XPENDING", "s", "g", "-", "+", "10"]))
        .iter()
        .map(|r| arr(r)[0].clone())
        .collect();
    server.restart();
    let mut con = server.conn();
    assert_eq!(pel(&mut con, "s"), before);
    assert_eq!(consumers(&mut con), owners);
    assert_eq!(
        arr(&q(&mut con, &["XPENDING", "s", "g", "-", "+", "10"]))
            .iter()
            .map(|r| arr(r)[0].clone())
            .collect::<Vec<_>>(),
        times
    );
    // Through a checkpoint too (the time index is rebuilt from the PEL, not stored).
    q(&mut con, &["BGREWRITEAOF"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let info = text(&q(&mut con, &["INFO", "persistence"]));
        if info.contains("aof_rewrite_in_progress:0")
            && server.dir.join("log").read_dir().is_ok_and(|d| {
                d.flatten()
                    .any(|e| e.file_name().to_string_lossy().ends_with(".ckp"))
            })
        {
            break;
        }
        assert!(Instant::now() < deadline, "no checkpoint: {info}");
        std::thread::sleep(Duration::from_millis(20));
    }
    server.restart();
    let mut con = server.conn();
    assert_eq!(pel(&mut con, "s"), before);
    // Claim order after the restart: oldest delivery first.
    age(&mut con, "s", 90_000, &["2-0"]);
    let r = q(
        &mut con,
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "c9",
            "COUNT",
            "1",
            "CLAIM",
            "0",
            "STREAMS",
            "s",
            ">",
        ],
    );
    assert_eq!(claimed(&r).first().map(|c| c.0.clone()), Some("2-0".into()));
    // 2-0 was claimed by c3 before the restarts (count 2); the count survived them.
    assert_eq!(claimed(&r).first().map(|c| c.2), Some(2));
    assert!(
        before.contains(&("2-0".into(), "c3".into(), 2)),
        "{before:?}"
    );
}

#[test]
fn maxcount_limits_the_whole_reply_across_streams() {
    let server = TestServer::start();
    let mut con = server.conn();
    for key in ["a", "b", "c"] {
        for i in 1..=3 {
            q(&mut con, &["XADD", key, &format!("{i}-0"), "f", "v"]);
        }
    }
    let read = |con: &mut redis::Connection, opts: &[&str]| {
        let mut args = vec!["XREAD"];
        args.extend_from_slice(opts);
        args.extend_from_slice(&["STREAMS", "a", "b", "c", "0", "0", "0"]);
        per_key(&q(con, &args))
            .into_iter()
            .map(|(k, e)| (k, e.len()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        read(&mut con, &["MAXCOUNT", "4"]),
        [("a".to_string(), 3), ("b".to_string(), 1)]
    );
    assert_eq!(
        read(&mut con, &["COUNT", "2", "MAXCOUNT", "5"]),
        [
            ("a".to_string(), 2),
            ("b".to_string(), 2),
            ("c".to_string(), 1)
        ]
    );
    assert_eq!(read(&mut con, &["MAXCOUNT", "100"]).len(), 3);
    // XREADGROUP: entries left out are not delivered; the next read starts with them.
    for key in ["a", "b", "c"] {
        q(&mut con, &["XGROUP", "CREATE", key, "g", "0"]);
    }
    let group_read = |con: &mut redis::Connection, opts: &[&str], id: &str| {
        let mut args = vec!["XREADGROUP", "GROUP", "g", "c"];
        args.extend_from_slice(opts);
        args.extend_from_slice(&["STREAMS", "a", "b", "c", id, id, id]);
        let v = q(con, &args);
        if v == Value::Nil {
            return Vec::new();
        }
        per_key(&v)
            .into_iter()
            .map(|(k, e)| {
                let ids: Vec<String> = e.iter().map(|e| text(&arr(e)[0])).collect();
                (k, ids)
            })
            .collect::<Vec<_>>()
    };
    let first = group_read(&mut con, &["MAXCOUNT", "4"], ">");
    assert_eq!(
        first,
        [
            (
                "a".to_string(),
                vec!["1-0".to_string(), "2-0".into(), "3-0".into()]
            ),
            ("b".to_string(), vec!["1-0".to_string()]),
        ]
    );
    assert_eq!(pel(&mut con, "b").len(), 1);
    assert_eq!(pel(&mut con, "c").len(), 0);
    let second = group_read(&mut con, &["MAXCOUNT", "4"], ">");
    assert_eq!(
        second,
        [
            ("b".to_string(), vec!["2-0".to_string(), "3-0".into()]),
            ("c".to_string(), vec!["1-0".to_string(), "2-0".into()]),
        ]
    );
    // History reads are limited too.
    let history = group_read(&mut con, &["MAXCOUNT", "2"], "0");
    assert_eq!(
        history,
        [("a".to_string(), vec!["1-0".to_string(), "2-0".into()])]
    );
    // With CLAIM, claimed entries count as well (oldest delivery first: the history read
    // just delivered 1-0 and 2-0 again, so 3-0 leads).
    let claim = group_read(&mut con, &["MAXCOUNT", "3", "CLAIM", "0"], ">");
    assert_eq!(
        claim,
        [(
            "a".to_string(),
            vec!["3-0".to_string(), "1-0".into(), "2-0".into()]
        )]
    );
}

#[test]
fn maxsize_is_a_soft_cap_checked_before_each_entry() {
    let server = TestServer::start();
    let mut con = server.conn();
    let big = "x".repeat(1000);
    for i in 1..=5 {
        q(&mut con, &["XADD", "s", &format!("{i}-0"), "f", &big]);
    }
    q(&mut con, &["XADD", "t", "1-0", "f", "v"]);
    let read = |con: &mut redis::Connection, size: &str| {
        per_key(&q(
            con,
            &["XREAD", "MAXSIZE", size, "STREAMS", "s", "t", "0", "0"],
        ))
        .into_iter()
        .map(|(k, e)| (k, e.len()))
        .collect::<Vec<_>>()
    };
    // One entry always comes, however small the cap.
    assert_eq!(read(&mut con, "1"), [("s".to_string(), 1)]);
    // Each entry is ~1030 bytes on the wire: a 2500-byte cap admits a third entry (the
    // reply is still under the cap before it) and nothing after.
    assert_eq!(read(&mut con, "2500"), [("s".to_string(), 3)]);
    assert_eq!(
        read(&mut con, "1000000"),
        [("s".to_string(), 5), ("t".to_string(), 1)]
    );
    // The size counted is the reply's: the bytes sent stay under the cap plus one entry.
    let mut raw = server.raw();
    let reply = raw.cmd(&["XREAD", "MAXSIZE", "3000", "STREAMS", "s", "t", "0", "0"]);
    assert!(reply.len() < 3000 + 1100, "{} bytes", reply.len());
    assert!(reply.len() >= 3000, "{} bytes", reply.len());
    // XREADGROUP: what MAXSIZE leaves out stays undelivered.
    q(&mut con, &["XGROUP", "CREATE", "s", "g", "0"]);
    let r = q(
        &mut con,
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "c",
            "MAXSIZE",
            "1500",
            "STREAMS",
            "s",
            ">",
        ],
    );
    assert_eq!(ids(&r), ["1-0", "2-0"]);
    assert_eq!(pel(&mut con, "s").len(), 2);
    let r = q(
        &mut con,
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "c",
            "MAXSIZE",
            "1",
            "STREAMS",
            "s",
            ">",
        ],
    );
    assert_eq!(ids(&r), ["3-0"]);
}

#[test]
fn limits_apply_when_a_blocked_read_is_served() {
    let server = TestServer::start();
    let mut con = server.conn();
    q(&mut con, &["XADD", "a", "1-0", "f", "v"]);
    q(&mut con, &["XGROUP", "CREATE", "a", "g", "$"]);
    q(&mut con, &["XGROUP", "CREATE", "b", "g", "$", "MKSTREAM"]);
    let mut reader = server.raw();
    reader.send(&common::encode(&[
        "XREADGROUP",
        "GROUP",
        "g",
        "c",
        "MAXCOUNT",
        "2",
        "BLOCK",
        "20000",
        "STREAMS",
        "a",
        "b",
        ">",
        ">",
    ]));
    server.wait_blocked(1);
    let mut pipe = redis::pipe();
    pipe.atomic();
    for i in 2..=4 {
        pipe.cmd("XADD")
            .arg("a")
            .arg(format!("{i}-0"))
            .arg("f")
            .arg("v")
            .ignore();
    }
    pipe.cmd("XADD")
        .arg("b")
        .arg("1-0")
        .arg("f")
        .arg("v")
        .ignore();
    pipe.query::<()>(&mut con).expect("MULTI");
    let reply = reader.read_reply();
    assert_eq!(
        reply,
        b"*1\r\n*2\r\n$1\r\na\r\n*2\r\n*2\r\n$3\r\n2-0\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n*2\r\n$3\r\n3-0\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n"
    );
    assert_eq!(pel(&mut con, "a").len(), 2);
    assert_eq!(pel(&mut con, "b").len(), 0);
    // XREAD too.
    reader.send(&common::encode(&[
        "XREAD", "MAXCOUNT", "1", "BLOCK", "20000", "STREAMS", "a", "$",
    ]));
    server.wait_blocked(1);
    let mut pipe = redis::pipe();
    pipe.atomic();
    for i in 5..=6 {
        pipe.cmd("XADD")
            .arg("a")
            .arg(format!("{i}-0"))
            .arg("f")
            .arg("v")
            .ignore();
    }
    pipe.query::<()>(&mut con).expect("MULTI");
    let reply = reader.read_reply();
    assert_eq!(
        reply,
        b"*1\r\n*2\r\n$1\r\na\r\n*1\r\n*2\r\n$3\r\n5-0\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n"
    );
}

#[test]
fn second_blocked_claim_reader_claims_what_the_first_got_once_it_is_idle() {
    // Redis's "XREADGROUP CLAIM with two blocked clients": an XADD serves the first reader;
    // the second, retried by that write, finds nothing yet and must be woken by the idle
    // time of the entry the first one got.
    let server = TestServer::start();
    let mut con = server.conn();
    q(&mut con, &["XADD", "s", "1-0", "f", "v1"]);
    q(&mut con, &["XDEL", "s", "1-0"]);
    q(&mut con, &["XGROUP", "CREATE", "s", "g", "0"]);
    let mut first = server.raw();
    let mut second = server.raw();
    let read = |name: &str| {
        common::encode(&[
            "XREADGROUP",
            "GROUP",
            "g",
            name,
            "BLOCK",
            "0",
            "CLAIM",
            "200",
            "STREAMS",
            "s",
            ">",
        ])
    };
    first.send(&read("c1"));
    server.wait_blocked(1);
    second.send(&read("c2"));
    server.wait_blocked(2);
    q(&mut con, &["XADD", "s", "2-0", "f", "v2"]);
    let a = first.read_reply();
    assert_eq!(
        a,
        b"*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*4\r\n$3\r\n2-0\r\n*2\r\n$1\r\nf\r\n$2\r\nv2\r\n:0\r\n:0\r\n"
    );
    let b = String::from_utf8(second.read_reply()).unwrap_or_default();
    assert!(b.contains("$3\r\n2-0\r\n"), "{b:?}");
    assert!(b.ends_with(":1\r\n"), "{b:?}");
    assert_eq!(pel(&mut con, "s"), [("2-0".into(), "c2".into(), 2)]);
}
