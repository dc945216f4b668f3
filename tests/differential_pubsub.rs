//! Table-driven differential checks of Pub/Sub (issue #15) against Redis 8.6.3: every
//! command form's reply bytes, in RESP2 and RESP3, from a subscriber, from a second client
//! that publishes and inspects, and the deliveries the subscriber then reads. Same
//! commands to both servers, byte-identical replies.
//!
//! Where Redis's answer depends on its dict's hash order (several channels in one
//! UNSUBSCRIBE without arguments, several patterns matching one PUBLISH, PUBSUB CHANNELS
//! with several channels) the table keeps to one element, so the comparison is exact.
#![cfg(feature = "differential")]

mod common;

use common::reference::Twins;
use common::Raw;

/// One step of a script, run on both servers.
enum Step {
    /// A command on connection `0` (subscriber) or `1` (publisher); one reply compared.
    Cmd(usize, &'static [&'static str]),
    /// A command answered by `n` top-level replies, each compared.
    Multi(usize, &'static [&'static str], usize),
    /// One more reply (a delivery) read on the connection and compared.
    Read(usize),
}

use Step::{Cmd, Multi, Read};

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

    #[track_caller]
    fn compare(&mut self, what: &str, protocol: u8) {
        let rill = self.rill.read_reply();
        let redis = self.redis.read_reply();
        assert_eq!(
            String::from_utf8_lossy(&rill),
            String::from_utf8_lossy(&redis),
            "RESP{protocol} {what} differs (left: Rill, right: Redis 8.6.3)"
        );
    }

    fn send(&mut self, args: &[&str]) {
        let bytes = common::encode(args);
        self.rill.send(&bytes);
        self.redis.send(&bytes);
    }
}

fn run(t: &Twins, protocol: u8, script: &[Step]) {
    let mut clients = [Client::connect(t, protocol), Client::connect(t, protocol)];
    for step in script {
        match step {
            Cmd(c, args) => {
                clients[*c].send(args);
                clients[*c].compare(&format!("reply to {args:?}"), protocol);
            }
            Multi(c, args, n) => {
                clients[*c].send(args);
                for i in 0..*n {
                    clients[*c].compare(&format!("reply {i} to {args:?}"), protocol);
                }
            }
            Read(c) => clients[*c].compare("delivery", protocol),
        }
    }
}

const SUB: usize = 0;
const PUB: usize = 1;

/// The forms every protocol shares.
const COMMON: &[Step] = &[
    Cmd(SUB, &["UNSUBSCRIBE"]),
    Cmd(SUB, &["PUNSUBSCRIBE"]),
    Cmd(SUB, &["SUNSUBSCRIBE"]),
    Cmd(SUB, &["SUBSCRIBE"]),
    Cmd(PUB, &["PUBLISH", "a"]),
    Cmd(PUB, &["SPUBLISH", "a"]),
    Cmd(PUB, &["PUBSUB"]),
    Cmd(PUB, &["PUBSUB", "FOO"]),
    Cmd(PUB, &["PUBSUB", "NUMPAT", "x"]),
    Cmd(PUB, &["PUBSUB", "CHANNELS", "a", "b"]),
    Cmd(PUB, &["PUBSUB", "SHARDCHANNELS", "a", "b"]),
    Cmd(PUB, &["PUBSUB", "HELP"]),
    Cmd(PUB, &["PUBSUB", "NUMSUB"]),
    Cmd(PUB, &["PUBSUB", "SHARDNUMSUB"]),
    Cmd(PUB, &["PUBSUB", "NUMPAT"]),
    Cmd(PUB, &["PUBSUB", "CHANNELS"]),
    Cmd(PUB, &["PUBLISH", "news", "nobody"]),
    Multi(SUB, &["SUBSCRIBE", "news", "sport", "news"], 3),
    Cmd(SUB, &["PSUBSCRIBE", "n*"]),
    Cmd(SUB, &["SSUBSCRIBE", "orders"]),
    Cmd(SUB, &["UNSUBSCRIBE", "zz"]),
    Cmd(SUB, &["UNSUBSCRIBE", "sport"]),
    Cmd(PUB, &["PUBSUB", "CHANNELS"]),
    Cmd(PUB, &["PUBSUB", "CHANNELS", "n?ws"]),
    Cmd(PUB, &["PUBSUB", "CHANNELS", "x*"]),
    Cmd(PUB, &["PUBSUB", "NUMSUB", "news", "sport", "news"]),
    Cmd(PUB, &["PUBSUB", "NUMPAT"]),
    Cmd(PUB, &["PUBSUB", "SHARDCHANNELS"]),
    Cmd(PUB, &["PUBSUB", "SHARDCHANNELS", "o*"]),
    Cmd(PUB, &["PUBSUB", "SHARDNUMSUB", "orders", "news"]),
    // A channel message and the pattern's, in Redis's order: channel first.
    Cmd(PUB, &["PUBLISH", "news", "hello"]),
    Read(SUB),
    Read(SUB),
    Cmd(PUB, &["PUBLISH", "nation", ""]),
    Read(SUB),
    Cmd(PUB, &["PUBLISH", "orders", "not-shard"]),
    Cmd(PUB, &["SPUBLISH", "orders", "o1"]),
    Read(SUB),
    Cmd(PUB, &["SPUBLISH", "news", "x"]),
    Cmd(SUB, &["PUNSUBSCRIBE", "n*"]),
    Cmd(SUB, &["SUNSUBSCRIBE", "orders"]),
    Cmd(SUB, &["SUNSUBSCRIBE"]),
    Cmd(SUB, &["PING"]),
    Cmd(SUB, &["PING", "hi"]),
    Cmd(SUB, &["UNSUBSCRIBE"]),
    Cmd(SUB, &["UNSUBSCRIBE"]),
    Cmd(SUB, &["PING"]),
    // RESET leaves nothing behind.
    Cmd(SUB, &["SUBSCRIBE", "r"]),
    Cmd(SUB, &["PSUBSCRIBE", "r*"]),
    Cmd(SUB, &["SSUBSCRIBE", "rs"]),
    Cmd(SUB, &["RESET"]),
    Cmd(PUB, &["PUBSUB", "NUMSUB", "r"]),
    Cmd(PUB, &["PUBSUB", "SHARDNUMSUB", "rs"]),
    Cmd(PUB, &["PUBSUB", "NUMPAT"]),
    Cmd(PUB, &["PUBLISH", "r", "gone"]),
    // Inside MULTI: EXEC's array counts commands, and a SUBSCRIBE of two channels writes
    // two confirmations into it, as Redis does (so the framing is Redis's, not a tree).
    Cmd(SUB, &["MULTI"]),
    Cmd(SUB, &["SUBSCRIBE", "t1", "t2"]),
    Cmd(SUB, &["PING"]),
    Multi(SUB, &["EXEC"], 2),
    Cmd(SUB, &["UNSUBSCRIBE", "t1"]),
    Cmd(SUB, &["UNSUBSCRIBE", "t2"]),
];

/// RESP2 subscribed mode (RESET brings the subscriber back to RESP2, so this runs after
/// the RESP3 table too).
const SUBSCRIBED_MODE: &[Step] = &[
    Cmd(SUB, &["SUBSCRIBE", "m"]),
    Cmd(SUB, &["GET", "x"]),
    Cmd(SUB, &["CLIENT", "LIST"]),
    Cmd(SUB, &["PUBLISH", "m", "x"]),
    Cmd(SUB, &["PUBSUB", "HELP"]),
    Cmd(SUB, &["NOSUCHCOMMAND"]),
    Cmd(SUB, &["SUBSCRIBE"]),
    Cmd(SUB, &["PING", "a", "b"]),
    Cmd(SUB, &["PING"]),
    Cmd(SUB, &["PSUBSCRIBE", "m*"]),
    Cmd(PUB, &["PUBLISH", "m", "both"]),
    Read(SUB),
    Read(SUB),
    Cmd(SUB, &["PUNSUBSCRIBE"]),
    Cmd(SUB, &["UNSUBSCRIBE", "m"]),
    Cmd(SUB, &["GET", "x"]),
];

/// RESP3: any command while subscribed, and a message to oneself after the reply.
const RESP3_ONLY: &[Step] = &[
    Cmd(SUB, &["SUBSCRIBE", "me"]),
    Cmd(SUB, &["GET", "x"]),
    Cmd(SUB, &["PING"]),
    Cmd(SUB, &["PUBLISH", "me", "self"]),
    Read(SUB),
    Cmd(SUB, &["PUBSUB", "NUMSUB", "me"]),
    Cmd(SUB, &["UNSUBSCRIBE", "me"]),
];

#[test]
fn pubsub_replies_match_redis() {
    let t = Twins::start(&[]);
    run(&t, 2, COMMON);
    run(&t, 3, COMMON);
    run(&t, 2, SUBSCRIBED_MODE);
    run(&t, 3, RESP3_ONLY);
}

#[test]
fn pubsub_command_info_and_docs_match_redis() {
    let mut t = Twins::start(&[]);
    t.each_protocol(|t| {
        for name in [
            "publish",
            "subscribe",
            "unsubscribe",
            "psubscribe",
            "punsubscribe",
            "spublish",
            "ssubscribe",
            "sunsubscribe",
            "pubsub|channels",
            "pubsub|numsub",
            "pubsub|numpat",
            "pubsub|shardchannels",
            "pubsub|shardnumsub",
            "pubsub|help",
        ] {
            t.same(&["COMMAND", "INFO", name]);
            t.same(&["COMMAND", "DOCS", name]);
        }
        t.same(&["COMMAND", "GETKEYS", "SPUBLISH", "ch", "m"]);
        t.same(&["COMMAND", "GETKEYS", "SSUBSCRIBE", "a", "b"]);
    });
}
