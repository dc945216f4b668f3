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
        t.same(&["XACK", "s", "g", "1-1", "9-9"]);
        t.same(&["XTRIM", "s", "MAXLEN", "1"]);
        t.same(&["XDEL", "s", "1-2", "1-3"]);
        t.same(&["XADD", "s", "MAXLEN", "x", "*", "f", "v"]);
    });
}
