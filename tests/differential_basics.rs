//! Table-driven differential checks of the Redis 7.4 stream basics against Redis 8.6.3
//! (the reference `.ci/redis8` builds): the same commands, byte-identical replies, in
//! RESP2 and RESP3. The Redis 8 additions have files of their own
//! (`tests/differential_<topic>.rs`); the random-sequence suite is `tests/differential.rs`.
#![cfg(feature = "differential")]

mod common;

use common::reference::Twins;

#[test]
fn stream_basics_match_redis_8() {
    let mut t = Twins::start(&[]);
    t.each_protocol(|t| {
        t.same(&["XADD", "s", "1-1", "f", "v"]);
        t.same(&["XADD", "s", "1-2", "f", "v", "g", "w"]);
        t.same(&["XADD", "s", "1-1", "f", "v"]);
        t.same(&["XLEN", "s"]);
        t.same(&["XRANGE", "s", "-", "+"]);
        t.same(&["XREVRANGE", "s", "+", "-", "COUNT", "1"]);
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
        // Arguments past the consumer are ignored (Redis never reads them), up to the
        // arity limit of 9. (A consumer with nothing pending: the idle times of `c`'s
        // entries differ by the millisecond between the servers.)
        t.same(&["XPENDING", "s", "g", "-", "+", "10", "nobody", "extra"]);
        t.same(&["XPENDING", "s", "g", "-", "+", "10", "nobody", "x", "y"]);
        t.same(&[
            "XPENDING", "s", "g", "-", "+", "10", "nobody", "x", "y", "z",
        ]);
        t.same(&[
            "XPENDING", "s", "g", "IDLE", "0", "-", "+", "10", "nobody", "x",
        ]);
        t.same(&["XPENDING", "s", "g", "-", "+", "x", "nobody", "extra"]);
        t.same(&["XACK", "s", "g", "1-1", "9-9"]);
        t.same(&["XTRIM", "s", "MAXLEN", "1"]);
        t.same(&["XDEL", "s", "1-2", "1-3"]);
        t.same(&["XADD", "s", "MAXLEN", "x", "*", "f", "v"]);
    });
}

/// Unknown commands and subcommands, and the HELP texts of the stream containers: Redis 8 drops ", with args beginning with: " when the
/// command came alone, and cuts the arguments it shows at 128 bytes (the last one mid-way).
#[test]
fn unknown_command_texts_match_redis_8() {
    let mut t = Twins::start(&[]);
    let long = "x".repeat(200);
    let mid = "y".repeat(100);
    t.each_protocol(|t| {
        t.same(&["FOO"]);
        t.same(&["FOO", "a", "b"]);
        t.same(&["FOO", &long]);
        t.same(&["FOO", &mid, &mid, "z"]);
        t.same(&[&long, "a"]);
        t.same(&["XINFO", "NOPE"]);
        t.same(&["XINFO"]);
        t.same(&["XGROUP", &long]);
        // Redis 8 says "Print this help." where 7.x said "Prints".
        t.same(&["XGROUP", "HELP"]);
        t.same(&["XINFO", "HELP"]);
    });
}
