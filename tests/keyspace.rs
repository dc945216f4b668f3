//! Keyspace commands against a real server: TYPE, EXISTS, DEL/UNLINK, KEYS, SCAN,
//! RANDOMKEY, DBSIZE, FLUSHDB/FLUSHALL, RENAME/RENAMENX and the EXPIRE family,
//! including expiry of keys nobody touches.
mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::TestServer;

fn int(c: &mut redis::Connection, args: &[&str]) -> i64 {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(c).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

#[test]
fn type_exists_del_unlink() {
    let s = TestServer::start();
    let mut r = s.raw();
    assert_eq!(r.cmd(&["TYPE", "nokey"]), b"+none\r\n");
    assert_eq!(r.cmd(&["SET", "str", "v"]), b"+OK\r\n");
    assert!(r.cmd(&["XADD", "st", "*", "f", "v"]).starts_with(b"$"));
    assert_eq!(r.cmd(&["TYPE", "str"]), b"+string\r\n");
    assert_eq!(r.cmd(&["TYPE", "st"]), b"+stream\r\n");
    assert_eq!(r.cmd(&["EXISTS", "str", "str", "st", "nokey"]), b":3\r\n");
    assert_eq!(
        r.cmd(&["EXISTS"]),
        b"-ERR wrong number of arguments for 'exists' command\r\n"
    );
    assert_eq!(
        r.cmd(&["XLEN", "str"]),
        b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
    );
    assert_eq!(r.cmd(&["DEL", "str", "nokey", "str"]), b":1\r\n");
    assert_eq!(r.cmd(&["UNLINK", "st", "nokey"]), b":1\r\n");
    assert_eq!(r.cmd(&["EXISTS", "str", "st"]), b":0\r\n");
    assert_eq!(r.cmd(&["DBSIZE"]), b":0\r\n");
}

#[test]
fn keys_scan_randomkey_dbsize() {
    let s = TestServer::start();
    let mut c = s.conn();
    let mut r = s.raw();
    for i in 0..250 {
        let _: () = redis::cmd("SET")
            .arg(format!("user:{i}"))
            .arg("x")
            .query(&mut c)
            .expect("set");
    }
    for i in 0..30 {
        let _: String = redis::cmd("XADD")
            .arg(format!("events:{i}"))
            .arg("*")
            .arg("f")
            .arg("v")
            .query(&mut c)
            .expect("xadd");
    }
    assert_eq!(int(&mut c, &["DBSIZE"]), 280);
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg("user:1?")
        .query(&mut c)
        .expect("keys");
    keys.sort();
    assert_eq!(
        keys,
        (10..20).map(|i| format!("user:{i}")).collect::<Vec<_>>()
    );
    let all: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut c).expect("keys");
    assert_eq!(all.len(), 280);
    let escaped: Vec<String> = redis::cmd("KEYS")
        .arg("user:[12]\\0")
        .query(&mut c)
        .expect("keys");
    assert_eq!(escaped.len(), 2);

    // A full SCAN returns every key exactly once, whatever COUNT is.
    for count in ["1", "10", "1000"] {
        let mut seen = BTreeSet::new();
        let mut cursor = "0".to_string();
        let mut rounds = 0;
        loop {
            let (next, batch): (String, Vec<String>) = redis::cmd("SCAN")
                .arg(&cursor)
                .arg("COUNT")
                .arg(count)
                .query(&mut c)
                .expect("scan");
            for k in batch {
                assert!(seen.insert(k), "duplicate in SCAN");
            }
            rounds += 1;
            if next == "0" {
                break;
            }
            cursor = next;
            assert!(rounds < 10_000);
        }
        assert_eq!(seen.len(), 280, "COUNT {count}");
    }
    // MATCH and TYPE filter.
    let scan_all = |c: &mut redis::Connection, extra: &[&str]| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut cursor = "0".to_string();
        loop {
            let mut cmd = redis::cmd("SCAN");
            cmd.arg(&cursor);
            for e in extra {
                cmd.arg(*e);
            }
            let (next, batch): (String, Vec<String>) = cmd.query(c).expect("scan");
            seen.extend(batch);
            if next == "0" {
                return seen;
            }
            cursor = next;
        }
    };
    let streams = scan_all(&mut c, &["TYPE", "stream", "COUNT", "50"]);
    assert_eq!(streams.len(), 30);
    assert!(streams.iter().all(|k| k.starts_with("events:")));
    let matched = scan_all(&mut c, &["MATCH", "user:2?", "TYPE", "string"]);
    assert_eq!(matched.len(), 10);
    assert!(scan_all(&mut c, &["MATCH", "events:*", "TYPE", "string"]).is_empty());

    assert_eq!(r.cmd(&["SCAN", "abc"]), b"-ERR invalid cursor\r\n");
    assert_eq!(
        r.cmd(&["SCAN", "0", "COUNT", "0"]),
        b"-ERR syntax error\r\n"
    );
    assert_eq!(r.cmd(&["SCAN", "0", "TYPE"]), b"-ERR syntax error\r\n");
    assert_eq!(r.cmd(&["SCAN", "0", "foo"]), b"-ERR syntax error\r\n");
    assert_eq!(
        r.cmd(&["SCAN", "0", "COUNT", "x"]),
        b"-ERR value is not an integer or out of range\r\n"
    );

    let k: String = redis::cmd("RANDOMKEY").query(&mut c).expect("randomkey");
    assert!(k.starts_with("user:") || k.starts_with("events:"));
    assert_eq!(r.cmd(&["SELECT", "5"]), b"+OK\r\n");
    assert_eq!(r.cmd(&["RANDOMKEY"]), b"$-1\r\n");
    assert_eq!(r.cmd(&["DBSIZE"]), b":0\r\n");
    assert_eq!(r.cmd(&["SCAN", "0"]), b"*2\r\n$1\r\n0\r\n*0\r\n");
}

#[test]
fn flushdb_and_flushall() {
    let s = TestServer::start();
    let mut r = s.raw();
    assert_eq!(r.cmd(&["SET", "a", "1"]), b"+OK\r\n");
    assert_eq!(r.cmd(&["SELECT", "1"]), b"+OK\r\n");
    assert_eq!(r.cmd(&["SET", "b", "1"]), b"+OK\r\n");
    assert_eq!(r.cmd(&["FLUSHDB", "foo"]), b"-ERR syntax error\r\n");
    assert_eq!(r.cmd(&["FLUSHDB"]), b"+OK\r\n");
    assert_eq!(r.cmd(&["DBSIZE"]), b":0\r\n");
    assert_eq!(r.cmd(&["SELECT", "0"]), b"+OK\r\n");
    assert_eq!(r.cmd(&["DBSIZE"]), b":1\r\n");
    assert_eq!(r.cmd(&["SELECT", "1"]), b"+OK\r\n");
    assert_eq!(r.cmd(&["SET", "b", "1"]), b"+OK\r\n");
    assert_eq!(r.cmd(&["FLUSHALL", "ASYNC"]), b"+OK\r\n");
    assert_eq!(r.cmd(&["DBSIZE"]), b":0\r\n");
    assert_eq!(r.cmd(&["SELECT", "0"]), b"+OK\r\n");
    assert_eq!(r.cmd(&["DBSIZE"]), b":0\r\n");
    assert_eq!(r.cmd(&["FLUSHALL", "SYNC"]), b"+OK\r\n");
}

#[test]
fn rename_and_renamenx() {
    let s = TestServer::start();
    let mut r = s.raw();
    assert_eq!(r.cmd(&["RENAME", "nokey", "x"]), b"-ERR no such key\r\n");
    assert_eq!(r.cmd(&["RENAMENX", "nokey", "x"]), b"-ERR no such key\r\n");
    assert!(r.cmd(&["XADD", "s", "1-1", "f", "v"]).starts_with(b"$"));
    assert_eq!(r.cmd(&["PEXPIRE", "s", "100000"]), b":1\r\n");
    assert_eq!(r.cmd(&["RENAME", "s", "s"]), b"+OK\r\n");
    assert_eq!(r.cmd(&["RENAMENX", "s", "s"]), b":0\r\n");
    assert_eq!(r.cmd(&["RENAME", "s", "t"]), b"+OK\r\n");
    assert_eq!(r.cmd(&["EXISTS", "s"]), b":0\r\n");
    assert_eq!(r.cmd(&["TYPE", "t"]), b"+stream\r\n");
    assert_eq!(r.cmd(&["XLEN", "t"]), b":1\r\n");
    // The TTL travels with the key.
    let pttl = String::from_utf8_lossy(&r.cmd(&["PTTL", "t"])).to_string();
    let pttl: i64 = pttl.trim_start_matches(':').trim().parse().expect("pttl");
    assert!(pttl > 90_000 && pttl <= 100_000, "{pttl}");
    assert_eq!(r.cmd(&["SET", "u", "x"]), b"+OK\r\n");
    assert_eq!(r.cmd(&["RENAMENX", "t", "u"]), b":0\r\n");
    assert_eq!(r.cmd(&["RENAMENX", "t", "v"]), b":1\r\n");
    // RENAME overwrites the destination, whatever its type.
    assert_eq!(r.cmd(&["RENAME", "v", "u"]), b"+OK\r\n");
    assert_eq!(r.cmd(&["TYPE", "u"]), b"+stream\r\n");
    assert_eq!(r.cmd(&["DBSIZE"]), b":1\r\n");
}

#[test]
fn expire_family_options_and_errors() {
    let s = TestServer::start();
    let mut r = s.raw();
    assert_eq!(r.cmd(&["EXPIRE", "nokey", "10"]), b":0\r\n");
    assert_eq!(r.cmd(&["TTL", "nokey"]), b":-2\r\n");
    assert_eq!(r.cmd(&["PTTL", "nokey"]), b":-2\r\n");
    assert_eq!(r.cmd(&["PERSIST", "nokey"]), b":0\r\n");
    assert!(r.cmd(&["XADD", "k", "*", "f", "v"]).starts_with(b"$"));
    assert_eq!(r.cmd(&["TTL", "k"]), b":-1\r\n");
    assert_eq!(r.cmd(&["PERSIST", "k"]), b":0\r\n");
    assert_eq!(
        r.cmd(&["EXPIRE", "k", "10", "NX", "XX"]),
        b"-ERR NX and XX, GT or LT options at the same time are not compatible\r\n"
    );
    assert_eq!(
        r.cmd(&["EXPIRE", "k", "10", "GT", "LT"]),
        b"-ERR GT and LT options at the same time are not compatible\r\n"
    );
    assert_eq!(
        r.cmd(&["EXPIRE", "k", "abc"]),
        b"-ERR value is not an integer or out of range\r\n"
    );
    assert_eq!(
        r.cmd(&["EXPIRE", "k", "10", "foo"]),
        b"-ERR Unsupported option foo\r\n"
    );
    assert_eq!(
        r.cmd(&["EXPIRE", "k", "9223372036854775807"]),
        b"-ERR invalid expire time in 'expire' command\r\n"
    );
    // No TTL counts as infinite: XX and GT refuse, LT and NX set.
    assert_eq!(r.cmd(&["EXPIRE", "k", "100", "XX"]), b":0\r\n");
    assert_eq!(r.cmd(&["EXPIRE", "k", "100", "GT"]), b":0\r\n");
    assert_eq!(r.cmd(&["EXPIRE", "k", "100", "LT"]), b":1\r\n");
    assert_eq!(r.cmd(&["EXPIRE", "k", "50", "NX"]), b":0\r\n");
    assert_eq!(r.cmd(&["EXPIRE", "k", "200", "LT"]), b":0\r\n");
    assert_eq!(r.cmd(&["EXPIRE", "k", "200", "GT"]), b":1\r\n");
    assert_eq!(r.cmd(&["EXPIRE", "k", "300", "XX"]), b":1\r\n");
    assert_eq!(r.cmd(&["TTL", "k"]), b":300\r\n");
    let pttl = String::from_utf8_lossy(&r.cmd(&["PTTL", "k"])).to_string();
    let pttl: i64 = pttl.trim_start_matches(':').trim().parse().expect("pttl");
    assert!(pttl > 299_000 && pttl <= 300_000, "{pttl}");
    assert_eq!(r.cmd(&["PERSIST", "k"]), b":1\r\n");
    assert_eq!(r.cmd(&["TTL", "k"]), b":-1\r\n");
    // Absolute forms.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let at = (now + 1000).to_string();
    assert_eq!(r.cmd(&["EXPIREAT", "k", &at]), b":1\r\n");
    let ttl = String::from_utf8_lossy(&r.cmd(&["TTL", "k"])).to_string();
    let ttl: i64 = ttl.trim_start_matches(':').trim().parse().expect("ttl");
    assert!((998..=1000).contains(&ttl), "{ttl}");
    let pat = ((now + 2000) * 1000).to_string();
    assert_eq!(r.cmd(&["PEXPIREAT", "k", &pat]), b":1\r\n");
    // A time in the past deletes the key at once.
    assert_eq!(r.cmd(&["PEXPIREAT", "k", "1000"]), b":1\r\n");
    assert_eq!(r.cmd(&["EXISTS", "k"]), b":0\r\n");
    assert_eq!(r.cmd(&["SET", "k", "v"]), b"+OK\r\n");
    assert_eq!(r.cmd(&["EXPIRE", "k", "-1"]), b":1\r\n");
    assert_eq!(r.cmd(&["TYPE", "k"]), b"+none\r\n");
    // SET without KEEPTTL clears the TTL.
    assert_eq!(r.cmd(&["SET", "k", "v", "EX", "100"]), b"+OK\r\n");
    assert_eq!(r.cmd(&["SET", "k", "w"]), b"+OK\r\n");
    assert_eq!(r.cmd(&["TTL", "k"]), b":-1\r\n");
}

#[test]
fn keys_expire_passively_and_actively() {
    let s = TestServer::start();
    let mut r = s.raw();
    assert!(r.cmd(&["XADD", "s", "*", "f", "v"]).starts_with(b"$"));
    assert_eq!(r.cmd(&["PEXPIRE", "s", "150"]), b":1\r\n");
    assert_eq!(r.cmd(&["SET", "t", "v", "PX", "150"]), b"+OK\r\n");
    assert_eq!(r.cmd(&["SET", "keep", "v"]), b"+OK\r\n");
    let info = String::from_utf8_lossy(&r.cmd(&["INFO", "keyspace"])).to_string();
    assert!(info.contains("db0:keys=3,expires=2"), "{info}");
    // Nobody touches the keys: active expiry must remove them (DBSIZE does not
    // look at TTLs, so it only drops when the keys are really gone).
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        if r.cmd(&["DBSIZE"]) == b":1\r\n" {
            break;
        }
        assert!(Instant::now() < deadline, "keys were not actively expired");
        std::thread::sleep(Duration::from_millis(50));
    }
    let stats = String::from_utf8_lossy(&r.cmd(&["INFO", "stats"])).to_string();
    assert!(stats.contains("expired_keys:2\r\n"), "{stats}");
    assert_eq!(r.cmd(&["XLEN", "s"]), b":0\r\n");
    // Passive expiry: a lookup right after the deadline sees no key.
    assert_eq!(r.cmd(&["SET", "p", "v", "PX", "30"]), b"+OK\r\n");
    std::thread::sleep(Duration::from_millis(60));
    assert_eq!(r.cmd(&["GET", "p"]), b"$-1\r\n");
    assert_eq!(r.cmd(&["TTL", "p"]), b":-2\r\n");
}

/// Reads an integer reply's value.
fn int_reply(reply: &[u8]) -> i64 {
    let text = String::from_utf8_lossy(reply);
    text.strip_prefix(':')
        .and_then(|t| t.trim_end().parse().ok())
        .unwrap_or_else(|| panic!("not an integer reply: {text:?}"))
}

/// Expiry times that would overflow are refused with Redis's texts, and every expiry the
/// server acknowledges — the largest, the negative, the already-past — is logged in a form
/// that replays: after SIGKILL the server starts again with the same keys and TTLs.
/// (`SET k v PX 9223372036854775807` used to answer +OK and log a PEXPIREAT past
/// `i64::MAX` that made every later start fail.)
#[test]
fn overflowing_expiry_is_refused_and_acknowledged_expiries_replay() {
    let mut s = TestServer::start();
    let mut r = s.raw();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let invalid = |cmd: &str| format!("-ERR invalid expire time in '{cmd}' command\r\n");
    for (args, cmd) in [
        (vec!["SET", "bad", "v", "PX", "9223372036854775807"], "set"),
        // Fits once multiplied by 1000, overflows when the clock is added.
        (vec!["SET", "bad", "v", "EX", "9223372036854775"], "set"),
        // Overflows in the multiplication.
        (vec!["SET", "bad", "v", "EX", "9223372036854776"], "set"),
        (vec!["SET", "bad", "v", "PX", "0"], "set"),
        (vec!["SET", "bad", "v", "EX", "-1"], "set"),
        (
            vec!["SET", "bad", "v", "NX", "PX", "-9223372036854775808"],
            "set",
        ),
    ] {
        assert_eq!(
            String::from_utf8_lossy(&r.cmd(&args)),
            invalid(cmd),
            "{args:?}"
        );
    }
    // Redis reports a syntax error before a bad number, and a bad number before a bad time.
    assert_eq!(
        r.cmd(&["SET", "bad", "v", "PX", "abc", "FOO"]),
        b"-ERR syntax error\r\n"
    );
    assert_eq!(
        r.cmd(&["SET", "bad", "v", "PX", "abc"]),
        b"-ERR value is not an integer or out of range\r\n"
    );
    assert_eq!(r.cmd(&["EXISTS", "bad"]), b":0\r\n");

    assert_eq!(r.cmd(&["SET", "target", "v"]), b"+OK\r\n");
    for (args, cmd) in [
        (vec!["PEXPIRE", "target", "9223372036854775807"], "pexpire"),
        (vec!["EXPIRE", "target", "9223372036854775"], "expire"),
        (vec!["EXPIRE", "target", "-9223372036854776"], "expire"),
        (vec!["EXPIREAT", "target", "9223372036854776"], "expireat"),
        (vec!["PEXPIRE", "nokey", "9223372036854775807"], "pexpire"),
    ] {
        assert_eq!(
            String::from_utf8_lossy(&r.cmd(&args)),
            invalid(cmd),
            "{args:?}"
        );
    }
    assert_eq!(r.cmd(&["TTL", "target"]), b":-1\r\n");

    // Acknowledged edge cases.
    let near_max = (i64::MAX - now_ms - 3_600_000).to_string();
    let ok = [
        (vec!["SET", "px1", "v", "PX", "1"], "+OK"),
        (vec!["SET", "nearmax", "v", "PX", &near_max], "+OK"),
        (vec!["SET", "ex", "v", "EX", "100000"], "+OK"),
        (vec!["SET", "far", "v"], "+OK"),
        (vec!["EXPIREAT", "far", "4102444800"], ":1"),
        (vec!["SET", "max", "v"], "+OK"),
        (vec!["PEXPIREAT", "max", "9223372036854775807"], ":1"),
        (vec!["SET", "maxs", "v"], "+OK"),
        (vec!["EXPIREAT", "maxs", "9223372036854775"], ":1"),
        (vec!["SET", "past", "v"], "+OK"),
        (vec!["PEXPIREAT", "past", "1000"], ":1"),
        (vec!["SET", "neg", "v"], "+OK"),
        (vec!["EXPIRE", "neg", "-9223372036854775"], ":1"),
        (vec!["SET", "negat", "v"], "+OK"),
        (vec!["PEXPIREAT", "negat", "-9223372036854775808"], ":1"),
        (vec!["SET", "persisted", "v", "EX", "100"], "+OK"),
        (vec!["PERSIST", "persisted"], ":1"),
        (vec!["SET", "gt", "v", "EX", "500"], "+OK"),
        (vec!["EXPIRE", "gt", "100", "GT"], ":0"),
        (vec!["EXPIRE", "gt", "9223372036", "GT"], ":1"),
        (vec!["PEXPIRE", "nokey", "100"], ":0"),
        (vec!["XADD", "stream", "1-1", "f", "v"], "$3"),
        (vec!["PEXPIRE", "stream", "100000000"], ":1"),
    ];
    for (args, want) in &ok {
        let got = String::from_utf8_lossy(&r.cmd(args)).to_string();
        assert!(got.starts_with(want), "{args:?}: {got:?}");
    }
    // PX 1 has certainly run out once a millisecond has passed.
    std::thread::sleep(Duration::from_millis(5));

    let check = |r: &mut common::Raw, when: &str| {
        for gone in ["bad", "px1", "past", "neg", "negat", "nokey"] {
            assert_eq!(r.cmd(&["EXISTS", gone]), b":0\r\n", "{when}: {gone}");
        }
        for no_ttl in ["target", "persisted"] {
            assert_eq!(r.cmd(&["PTTL", no_ttl]), b":-1\r\n", "{when}: {no_ttl}");
        }
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis() as i64;
        let pttl = |r: &mut common::Raw, key: &str| int_reply(&r.cmd(&["PTTL", key]));
        // The expiry time, give or take the moment between the server's clock and ours.
        let mut expires_at = |key: &str, want: i64, slack: i64| {
            let at = pttl(r, key) + now_ms;
            assert!(
                (want - slack..=want.saturating_add(slack)).contains(&at),
                "{when}: {key} expires at {at}"
            );
        };
        expires_at("max", i64::MAX, 1000);
        expires_at("nearmax", i64::MAX - 3_600_000, 100_000);
        expires_at("maxs", 9_223_372_036_854_775_000, 1000);
        expires_at("far", 4_102_444_800_000, 1000);
        let ex = pttl(r, "ex");
        assert!((99_000_000..=100_000_000).contains(&ex), "{when}: ex {ex}");
        let gt = int_reply(&r.cmd(&["TTL", "gt"]));
        assert!(
            (9_223_372_000..=9_223_372_036).contains(&gt),
            "{when}: gt {gt}"
        );
        let st = pttl(r, "stream");
        assert!(
            (99_000_000..=100_000_000).contains(&st),
            "{when}: stream {st}"
        );
        assert_eq!(r.cmd(&["XLEN", "stream"]), b":1\r\n", "{when}");
    };
    check(&mut r, "before the restart");
    s.restart();
    let mut r = s.raw();
    check(&mut r, "after SIGKILL and restart");
}
