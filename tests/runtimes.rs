//! The opt-in execution models of issue #10's comparison (`RILL_RUNTIME=percore`,
//! `RILL_RUNTIME=executor`, `src/server/cores.rs` and `src/server/executor.rs`) serve
//! the same protocol as the default: pipelined requests answered in order, a blocked
//! reader woken by another connection's write, a transaction, an unauthenticated
//! client's header limits lifted by an AUTH in the same read, and every acknowledged
//! write still there after `kill -9`. The whole suite also passes under either
//! (`RILL_RUNTIME=executor cargo test`); this keeps them from rotting in CI.
//!
//! One test, modes in turn: the mode reaches the server through the environment it
//! inherits, which is process-wide.

mod common;

use common::{encode, TestServer};

fn scenario(mode: &str) {
    let mut server = TestServer::start();
    let mut a = server.raw();

    // A pipeline of writes and a read, answered in order.
    let mut batch = Vec::new();
    for i in 1..=3 {
        batch.extend(encode(&[
            "XADD",
            "s",
            &format!("{i}-1"),
            "n",
            &i.to_string(),
        ]));
    }
    batch.extend(encode(&["XLEN", "s"]));
    a.send(&batch);
    for i in 1..=3 {
        assert_eq!(
            a.read_reply(),
            format!("${}\r\n{i}-1\r\n", format!("{i}-1").len()).into_bytes(),
            "{mode}: XADD {i}"
        );
    }
    assert_eq!(a.read_reply(), b":3\r\n", "{mode}: XLEN");

    // A blocked reader is woken by another connection's write.
    assert_eq!(a.cmd(&["XGROUP", "CREATE", "s", "g", "$"]), b"+OK\r\n");
    let mut reader = server.raw();
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
    server.wait_blocked(1);
    assert_eq!(a.cmd(&["XADD", "s", "4-1", "n", "4"]), b"$3\r\n4-1\r\n");
    let delivered = String::from_utf8_lossy(&reader.read_reply()).into_owned();
    assert!(
        delivered.contains("4-1"),
        "{mode}: woken with {delivered:?}"
    );

    // A transaction.
    assert_eq!(a.cmd(&["MULTI"]), b"+OK\r\n");
    assert_eq!(a.cmd(&["XADD", "s", "5-1", "n", "5"]), b"+QUEUED\r\n");
    assert_eq!(a.cmd(&["XLEN", "s"]), b"+QUEUED\r\n");
    assert_eq!(a.cmd(&["EXEC"]), b"*2\r\n$3\r\n5-1\r\n:5\r\n");

    // Unauthenticated, the header limits are small; an AUTH in the same read lifts them
    // for the next request (a 20 KB bulk), as when each request runs before the next is
    // decoded.
    assert_eq!(a.cmd(&["CONFIG", "SET", "requirepass", "pw"]), b"+OK\r\n");
    let mut c = server.raw();
    let big = "x".repeat(20_000);
    let mut pipelined = encode(&["AUTH", "pw"]);
    pipelined.extend(encode(&["SET", "big", &big]));
    c.send(&pipelined);
    assert_eq!(c.read_reply(), b"+OK\r\n", "{mode}: AUTH");
    assert_eq!(c.read_reply(), b"+OK\r\n", "{mode}: SET after AUTH");

    // Every acknowledged write survives kill -9 (the password was not saved).
    server.restart();
    let mut b = server.raw();
    assert_eq!(b.cmd(&["XLEN", "s"]), b":5\r\n", "{mode}: after kill -9");
    assert_eq!(
        b.cmd(&["XPENDING", "s", "g"]),
        b"*4\r\n:1\r\n$3\r\n4-1\r\n$3\r\n4-1\r\n*1\r\n*2\r\n$1\r\nc\r\n$1\r\n1\r\n",
        "{mode}: the delivery to the blocked reader is pending after kill -9"
    );
    assert_eq!(
        b.cmd(&["GET", "big"]),
        format!("$20000\r\n{big}\r\n").into_bytes()
    );
}

#[test]
fn opt_in_execution_models_serve_like_the_default() {
    for mode in ["percore", "executor"] {
        std::env::set_var("RILL_RUNTIME", mode);
        scenario(mode);
    }
    std::env::remove_var("RILL_RUNTIME");
}
