//! Differential checks of keyspace notifications (issue #15) against Redis 8.6.3: a script
//! of stream and key commands runs on both servers under several `notify-keyspace-events`
//! settings, and a subscriber to every `__key*__:*` channel must receive the same pushes,
//! byte for byte and in the same order, in RESP2 and RESP3.
//!
//! After each command the client publishes a marker on a channel the subscriber also
//! listens to; the subscriber's deliveries up to the marker are the command's events, so
//! the comparison needs no expected counts and a missing or extra event shows as a
//! different list. IDs are explicit so replies carry no clock.
#![cfg(feature = "differential")]

mod common;

use std::time::Duration;

use common::reference::Twins;
use common::Raw;

/// One step of a script.
enum Step {
    /// A command sent by the command client; its reply and its events are compared.
    Cmd(&'static [&'static str]),
    /// A command sent by the (RESP3) subscriber itself: its reply comes first, then its
    /// own events, as Redis 7.2+ defers pushes to the executing client.
    Own(&'static [&'static str]),
    /// A command whose events are compared with the next step's: MULTI and the commands
    /// it queues (a marker published inside MULTI would be queued too).
    Quiet(&'static [&'static str]),
    /// As `Quiet`, sent by the subscriber.
    OwnQuiet(&'static [&'static str]),
    /// Wait (keys expire meanwhile, actively or when the next step looks them up: the
    /// events are the same either way, so Redis's expiry timing cannot make it flaky).
    Pause(u64),
}

use Step::{Cmd, Own, OwnQuiet, Pause, Quiet};

/// The pair of connections (Rill's, Redis's) of one client.
struct Client {
    rill: Raw,
    redis: Raw,
}

impl Client {
    fn connect(t: &Twins, protocol: u8) -> Client {
        let mut c = Client {
            rill: Raw::connect(t.rill.port),
            redis: Raw::connect(t.redis.port),
        };
        if protocol == 3 {
            assert_eq!(c.rill.cmd(&["HELLO", "3"])[0], b'%');
            assert_eq!(c.redis.cmd(&["HELLO", "3"])[0], b'%');
        }
        c
    }

    fn send(&mut self, args: &[&str]) {
        let bytes = common::encode(args);
        self.rill.send(&bytes);
        self.redis.send(&bytes);
    }

    #[track_caller]
    fn compare(&mut self, what: &str, context: &str) {
        let rill = self.rill.read_reply();
        let redis = self.redis.read_reply();
        assert_eq!(
            String::from_utf8_lossy(&rill),
            String::from_utf8_lossy(&redis),
            "{context}: {what} differs (left: Rill, right: Redis 8.6.3)"
        );
    }

    /// Reads the deliveries on both sides up to the marker `n`, and compares the lists.
    #[track_caller]
    fn compare_events(&mut self, n: usize, context: &str) {
        let rill = until_marker(&mut self.rill, n);
        let redis = until_marker(&mut self.redis, n);
        assert_eq!(
            rill, redis,
            "{context}: events differ (left: Rill, right: Redis 8.6.3)"
        );
    }
}

/// The deliveries read before the marker message `n` on channel `sync`.
fn until_marker(conn: &mut Raw, n: usize) -> Vec<String> {
    let n = n.to_string();
    let marker = format!("$4\r\nsync\r\n${}\r\n{n}\r\n", n.len());
    let mut got = Vec::new();
    loop {
        let reply = conn.read_reply();
        if reply.ends_with(marker.as_bytes()) {
            return got;
        }
        got.push(String::from_utf8_lossy(&reply).into_owned());
    }
}

/// Runs `script` with `flags` set on both servers, in `protocol`.
fn run(t: &Twins, protocol: u8, flags: &str, script: &[Step]) {
    let context = format!("RESP{protocol}, notify-keyspace-events {flags:?}");
    let mut cmd = Client::connect(t, protocol);
    let mut sub = Client::connect(t, protocol);
    cmd.send(&["FLUSHALL"]);
    cmd.compare("FLUSHALL", &context);
    cmd.send(&["CONFIG", "SET", "notify-keyspace-events", flags]);
    cmd.compare("CONFIG SET", &context);
    cmd.send(&["CONFIG", "GET", "notify-keyspace-events"]);
    cmd.compare("CONFIG GET", &context);
    sub.send(&["PSUBSCRIBE", "__key*__:*"]);
    sub.compare("PSUBSCRIBE", &context);
    sub.send(&["SUBSCRIBE", "sync"]);
    sub.compare("SUBSCRIBE", &context);
    for (n, step) in script.iter().enumerate() {
        let marker = n.to_string();
        match step {
            Cmd(args) => {
                cmd.send(args);
                cmd.compare(&format!("reply to {args:?}"), &context);
                cmd.send(&["PUBLISH", "sync", &marker]);
                cmd.compare("PUBLISH", &context);
                sub.compare_events(n, &format!("{context}, after {args:?}"));
            }
            Own(args) => {
                assert_eq!(protocol, 3, "only a RESP3 subscriber runs commands");
                sub.send(args);
                sub.compare(&format!("own reply to {args:?}"), &context);
                sub.send(&["PUBLISH", "sync", &marker]);
                sub.compare("own PUBLISH", &context);
                sub.compare_events(n, &format!("{context}, after own {args:?}"));
            }
            Quiet(args) => {
                cmd.send(args);
                cmd.compare(&format!("reply to {args:?}"), &context);
            }
            OwnQuiet(args) => {
                sub.send(args);
                sub.compare(&format!("own reply to {args:?}"), &context);
            }
            Pause(ms) => std::thread::sleep(Duration::from_millis(*ms)),
        }
    }
}

/// Stream commands: every event `t_stream.c` emits, and the cases that emit none.
const STREAMS: &[Step] = &[
    Cmd(&["XADD", "s", "1-1", "f", "v"]),
    Cmd(&["XADD", "s", "2-1", "f", "v"]),
    Cmd(&["XADD", "s", "MAXLEN", "1", "3-1", "f", "v"]),
    Cmd(&["XADD", "s", "MAXLEN", "5", "4-1", "f", "v"]),
    Cmd(&["XADD", "nokey", "NOMKSTREAM", "1-1", "f", "v"]),
    Cmd(&["XADD", "s", "1-1", "f", "v"]),
    Cmd(&["XTRIM", "s", "MAXLEN", "0"]),
    Cmd(&["XTRIM", "s", "MAXLEN", "0"]),
    Cmd(&["XTRIM", "nokey", "MAXLEN", "0"]),
    Cmd(&["XADD", "s", "5-1", "a", "1"]),
    Cmd(&["XADD", "s", "6-1", "a", "2"]),
    Cmd(&["XDEL", "s", "5-1"]),
    Cmd(&["XDEL", "s", "99-1"]),
    Cmd(&["XDELEX", "s", "IDS", "1", "6-1"]),
    Cmd(&["XDELEX", "s", "IDS", "1", "6-1"]),
    Cmd(&["XSETID", "s", "10-1"]),
    Cmd(&["XSETID", "s", "1-1"]),
    Cmd(&["XGROUP", "CREATE", "s", "g", "0"]),
    Cmd(&["XGROUP", "CREATE", "s", "g", "0"]),
    Cmd(&["XGROUP", "CREATE", "m", "g", "$", "MKSTREAM"]),
    Cmd(&["XGROUP", "CREATE", "nokey", "g", "$"]),
    Cmd(&["XGROUP", "CREATECONSUMER", "s", "g", "c1"]),
    Cmd(&["XGROUP", "CREATECONSUMER", "s", "g", "c1"]),
    Cmd(&["XADD", "s", "11-1", "a", "1"]),
    Cmd(&["XADD", "s", "12-1", "a", "2"]),
    Cmd(&[
        "XREADGROUP",
        "GROUP",
        "g",
        "c2",
        "COUNT",
        "1",
        "STREAMS",
        "s",
        ">",
    ]),
    Cmd(&[
        "XREADGROUP",
        "GROUP",
        "g",
        "c2",
        "COUNT",
        "1",
        "STREAMS",
        "s",
        ">",
    ]),
    Cmd(&["XACK", "s", "g", "11-1"]),
    Cmd(&["XCLAIM", "s", "g", "c3", "0", "12-1", "JUSTID"]),
    Cmd(&["XAUTOCLAIM", "s", "g", "c4", "0", "0", "JUSTID"]),
    Cmd(&["XACKDEL", "s", "g", "IDS", "1", "12-1"]),
    Cmd(&["XACKDEL", "s", "g", "IDS", "1", "12-1"]),
    Cmd(&["XGROUP", "SETID", "s", "g", "0"]),
    Cmd(&["XGROUP", "DELCONSUMER", "s", "g", "c1"]),
    Cmd(&["XGROUP", "DELCONSUMER", "s", "g", "c1"]),
    Cmd(&["XGROUP", "DESTROY", "s", "g"]),
    Cmd(&["XGROUP", "DESTROY", "s", "g"]),
    // Read lookups of a missing key (keymiss, class m).
    Cmd(&["XRANGE", "nokey", "-", "+"]),
    Cmd(&["XREVRANGE", "nokey", "+", "-"]),
    Cmd(&["XLEN", "nokey"]),
    Cmd(&["XREAD", "STREAMS", "nokey", "s", "0", "0"]),
    Cmd(&["XINFO", "STREAM", "nokey"]),
    Cmd(&["XPENDING", "nokey", "g"]),
    Cmd(&["XACK", "nokey", "g", "1-1"]),
    Cmd(&["XCLAIM", "nokey", "g", "c", "0", "1-1"]),
    Cmd(&["XAUTOCLAIM", "nokey", "g", "c", "0", "0"]),
    Cmd(&["XACKDEL", "nokey", "g", "IDS", "1", "1-1"]),
    Cmd(&["XREADGROUP", "GROUP", "g", "c", "STREAMS", "nokey", ">"]),
    // Another database's channels.
    Cmd(&["SELECT", "1"]),
    Cmd(&["XADD", "s", "1-1", "f", "v"]),
    Cmd(&["SELECT", "0"]),
];

/// Key commands: generic, string and expiry events.
const KEYS: &[Step] = &[
    Cmd(&["SET", "k", "v"]),
    Cmd(&["SET", "k", "v2"]),
    Cmd(&["SET", "k", "v3", "EX", "100"]),
    Cmd(&["SET", "k", "v4", "NX"]),
    Cmd(&["EXPIRE", "k", "200"]),
    Cmd(&["EXPIRE", "k", "100", "GT"]),
    Cmd(&["PERSIST", "k"]),
    Cmd(&["PERSIST", "k"]),
    Cmd(&["PEXPIRE", "k", "100000"]),
    Cmd(&["PEXPIREAT", "k", "1"]),
    Cmd(&["SET", "k", "v"]),
    Cmd(&["EXPIRE", "k", "0"]),
    Cmd(&["EXPIRE", "nokey", "10"]),
    Cmd(&["SET", "a", "1"]),
    Cmd(&["RENAME", "a", "b"]),
    Cmd(&["SET", "c", "1"]),
    Cmd(&["RENAME", "c", "b"]),
    Cmd(&["XADD", "st", "1-1", "f", "v"]),
    Cmd(&["RENAME", "st", "b"]),
    Cmd(&["RENAME", "b", "b"]),
    Cmd(&["SET", "d", "1"]),
    Cmd(&["RENAMENX", "d", "b"]),
    Cmd(&["RENAMENX", "d", "e"]),
    Cmd(&["RENAME", "nokey", "x"]),
    Cmd(&["XADD", "q", "1-1", "f", "v"]),
    Cmd(&["SET", "q", "str"]),
    Cmd(&["DEL", "b", "e", "nokey", "q"]),
    Cmd(&["SET", "u", "1"]),
    Cmd(&["UNLINK", "u"]),
    Cmd(&["GET", "nokey"]),
    Cmd(&["TYPE", "nokey"]),
    Cmd(&["EXISTS", "nokey", "nokey2"]),
    Cmd(&["TTL", "nokey"]),
    Cmd(&["PTTL", "nokey"]),
    // Lazy expiry: the key's `expired` comes before the lookup's `keymiss`.
    Cmd(&["SET", "lazy", "1", "PX", "1"]),
    Pause(20),
    Cmd(&["GET", "lazy"]),
    Cmd(&["XADD", "lazys", "1-1", "f", "v"]),
    Cmd(&["PEXPIRE", "lazys", "1"]),
    Pause(20),
    Cmd(&["XADD", "lazys", "1-1", "f", "v"]),
    Cmd(&["SET", "lazy", "1", "PX", "1"]),
    Pause(20),
    Cmd(&["DEL", "lazy"]),
    // Active expiry: the marker after the pause comes after the key's `expired`.
    Cmd(&["SET", "active", "1", "PX", "50"]),
    Pause(700),
    Cmd(&["PING"]),
    // A transaction's events, in order.
    Quiet(&["MULTI"]),
    Quiet(&["SET", "t", "1"]),
    Quiet(&["XADD", "t2", "1-1", "a", "b"]),
    Quiet(&["DEL", "t"]),
    Cmd(&["EXEC"]),
    Cmd(&["FLUSHALL"]),
];

/// The subscriber runs commands itself (RESP3 only).
const OWN: &[Step] = &[
    Own(&["XADD", "o", "1-1", "f", "v"]),
    Own(&["XGROUP", "CREATE", "o", "g", "0"]),
    Own(&["XREADGROUP", "GROUP", "g", "c", "STREAMS", "o", ">"]),
    Own(&["SET", "ok", "v", "EX", "10"]),
    Own(&["DEL", "o", "ok"]),
    OwnQuiet(&["MULTI"]),
    OwnQuiet(&["XADD", "o", "1-1", "f", "v"]),
    OwnQuiet(&["RENAME", "o", "p"]),
    Own(&["EXEC"]),
];

/// The settings each script runs under: every class with both channel kinds (and the
/// classes A leaves out), only one channel kind, and single classes.
const FLAGS: &[&str] = &["KEA", "AKEnocm", "Et", "Kg$x", "Em", "KEnoc"];

#[test]
fn stream_events_match_redis() {
    let t = Twins::start(&[]);
    for protocol in [2, 3] {
        for flags in FLAGS {
            run(&t, protocol, flags, STREAMS);
        }
    }
}

#[test]
fn key_events_match_redis() {
    let t = Twins::start(&[]);
    for protocol in [2, 3] {
        for flags in FLAGS {
            run(&t, protocol, flags, KEYS);
        }
    }
}

#[test]
fn own_events_follow_the_reply_as_in_redis() {
    let t = Twins::start(&[]);
    for flags in ["KEA", "AKEn"] {
        run(&t, 3, flags, OWN);
    }
}

#[test]
fn config_values_match_redis() {
    let mut t = Twins::start(&[]);
    for value in [
        "",
        "KEA",
        "A",
        "KE",
        "Eg$lshzxetd",
        "AKEnocm",
        "mnocKE",
        "t",
        "gx",
        "xg",
        "KEq",
        "a",
        "AA",
        "$",
    ] {
        t.same(&["CONFIG", "SET", "notify-keyspace-events", value]);
        t.same(&["CONFIG", "GET", "notify-keyspace-events"]);
    }
    t.same(&["CONFIG", "SET", "notify-keyspace-events"]);
}
