//! MULTI/EXEC/DISCARD/WATCH/UNWATCH against a real server, in raw RESP, with the
//! replies a Redis 7 server gives (compared by hand against redis-server).
mod common;

use common::TestServer;

#[test]
fn exec_runs_the_queue_and_reports_run_time_errors_inline() {
    let s = TestServer::start();
    let mut r = s.raw();
    assert_eq!(r.cmd(&["SET", "s", "1"]), b"+OK\r\n");
    assert_eq!(r.cmd(&["MULTI"]), b"+OK\r\n");
    assert_eq!(r.cmd(&["XLEN", "s"]), b"+QUEUED\r\n");
    assert_eq!(r.cmd(&["SET", "s", "2"]), b"+QUEUED\r\n");
    assert_eq!(r.cmd(&["GET", "s"]), b"+QUEUED\r\n");
    assert_eq!(r.cmd(&["XADD", "x", "1-1", "f", "v"]), b"+QUEUED\r\n");
    assert_eq!(r.cmd(&["XADD", "x", "1-1", "f", "v"]), b"+QUEUED\r\n");
    assert_eq!(r.cmd(&["CLIENT", "ID"]), b"+QUEUED\r\n");
    let reply = r.cmd(&["EXEC"]);
    let fixed: &[u8] = b"*6\r\n-WRONGTYPE Operation against a key holding the wrong kind of value\r\n+OK\r\n$1\r\n2\r\n$3\r\n1-1\r\n-ERR The ID specified in XADD is equal or smaller than the target stream top item\r\n:";
    assert!(
        reply.starts_with(fixed),
        "{}",
        String::from_utf8_lossy(&reply)
    );
    // Connection commands run inside EXEC too.
    assert!(reply.ends_with(b"\r\n") && reply.len() > fixed.len() + 2);
}

#[test]
fn queue_time_errors_abort_exec() {
    let s = TestServer::start();
    let mut r = s.raw();
    // Unknown command.
    assert_eq!(r.cmd(&["MULTI"]), b"+OK\r\n");
    assert_eq!(r.cmd(&["FOO"]), b"-ERR unknown command 'FOO'\r\n");
    assert_eq!(r.cmd(&["SET", "a", "1"]), b"+QUEUED\r\n");
    assert_eq!(
        r.cmd(&["EXEC"]),
        b"-EXECABORT Transaction discarded because of previous errors.\r\n"
    );
    assert_eq!(r.cmd(&["GET", "a"]), b"$-1\r\n");
    // Wrong arity.
    assert_eq!(r.cmd(&["MULTI"]), b"+OK\r\n");
    assert_eq!(
        r.cmd(&["SET", "a"]),
        b"-ERR wrong number of arguments for 'set' command\r\n"
    );
    assert_eq!(
        r.cmd(&["EXEC"]),
        b"-EXECABORT Transaction discarded because of previous errors.\r\n"
    );
    // A command that is never allowed in a transaction.
    assert_eq!(r.cmd(&["MULTI"]), b"+OK\r\n");
    assert_eq!(
        r.cmd(&["SHUTDOWN"]),
        b"-ERR Command not allowed inside a transaction\r\n"
    );
    assert_eq!(
        r.cmd(&["EXEC"]),
        b"-EXECABORT Transaction discarded because of previous errors.\r\n"
    );
    // Nested MULTI and WATCH inside MULTI are refused but do not abort.
    assert_eq!(r.cmd(&["MULTI"]), b"+OK\r\n");
    assert_eq!(r.cmd(&["MULTI"]), b"-ERR MULTI calls can not be nested\r\n");
    assert_eq!(
        r.cmd(&["WATCH", "x"]),
        b"-ERR WATCH inside MULTI is not allowed\r\n"
    );
    assert_eq!(r.cmd(&["SET", "a", "1"]), b"+QUEUED\r\n");
    assert_eq!(r.cmd(&["EXEC"]), b"*1\r\n+OK\r\n");
    // The server stays usable after all of it.
    assert_eq!(r.cmd(&["GET", "a"]), b"$1\r\n1\r\n");
}

#[test]
fn exec_discard_without_multi() {
    let s = TestServer::start();
    let mut r = s.raw();
    assert_eq!(r.cmd(&["EXEC"]), b"-ERR EXEC without MULTI\r\n");
    assert_eq!(r.cmd(&["DISCARD"]), b"-ERR DISCARD without MULTI\r\n");
    assert_eq!(r.cmd(&["MULTI"]), b"+OK\r\n");
    assert_eq!(r.cmd(&["SET", "a", "1"]), b"+QUEUED\r\n");
    assert_eq!(r.cmd(&["DISCARD"]), b"+OK\r\n");
    assert_eq!(r.cmd(&["GET", "a"]), b"$-1\r\n");
    assert_eq!(r.cmd(&["MULTI"]), b"+OK\r\n");
    assert_eq!(r.cmd(&["EXEC"]), b"*0\r\n");
}

#[test]
fn watch_aborts_when_another_client_writes() {
    let s = TestServer::start();
    let mut a = s.raw();
    let mut b = s.raw();
    assert_eq!(a.cmd(&["SET", "k", "1"]), b"+OK\r\n");
    assert_eq!(a.cmd(&["WATCH", "k"]), b"+OK\r\n");
    assert_eq!(b.cmd(&["SET", "k", "2"]), b"+OK\r\n");
    assert_eq!(a.cmd(&["MULTI"]), b"+OK\r\n");
    assert_eq!(a.cmd(&["SET", "k", "3"]), b"+QUEUED\r\n");
    assert_eq!(a.cmd(&["EXEC"]), b"*-1\r\n");
    assert_eq!(a.cmd(&["GET", "k"]), b"$1\r\n2\r\n");
    // EXEC forgets the watches: the next transaction goes through.
    assert_eq!(a.cmd(&["MULTI"]), b"+OK\r\n");
    assert_eq!(a.cmd(&["SET", "k", "3"]), b"+QUEUED\r\n");
    assert_eq!(a.cmd(&["EXEC"]), b"*1\r\n+OK\r\n");

    // A stream write by another client aborts too, and RESP3 shows the null as `_`.
    assert!(a.cmd(&["HELLO", "3"]).starts_with(b"%"));
    assert_eq!(a.cmd(&["WATCH", "s"]), b"+OK\r\n");
    assert!(b.cmd(&["XADD", "s", "*", "f", "v"]).starts_with(b"$"));
    assert_eq!(a.cmd(&["MULTI"]), b"+OK\r\n");
    assert_eq!(a.cmd(&["XLEN", "s"]), b"+QUEUED\r\n");
    assert_eq!(a.cmd(&["EXEC"]), b"_\r\n");
}

#[test]
fn watch_untouched_unwatch_and_discard() {
    let s = TestServer::start();
    let mut a = s.raw();
    let mut b = s.raw();
    // Unchanged watched key: EXEC runs.
    assert_eq!(a.cmd(&["WATCH", "k", "other"]), b"+OK\r\n");
    assert_eq!(b.cmd(&["SET", "unrelated", "1"]), b"+OK\r\n");
    assert_eq!(a.cmd(&["MULTI"]), b"+OK\r\n");
    assert_eq!(a.cmd(&["PING"]), b"+QUEUED\r\n");
    assert_eq!(a.cmd(&["EXEC"]), b"*1\r\n+PONG\r\n");
    // UNWATCH forgets.
    assert_eq!(a.cmd(&["WATCH", "k"]), b"+OK\r\n");
    assert_eq!(a.cmd(&["UNWATCH"]), b"+OK\r\n");
    assert_eq!(b.cmd(&["SET", "k", "1"]), b"+OK\r\n");
    assert_eq!(a.cmd(&["MULTI"]), b"+OK\r\n");
    assert_eq!(a.cmd(&["PING"]), b"+QUEUED\r\n");
    assert_eq!(a.cmd(&["EXEC"]), b"*1\r\n+PONG\r\n");
    // DISCARD forgets too.
    assert_eq!(a.cmd(&["WATCH", "k"]), b"+OK\r\n");
    assert_eq!(a.cmd(&["MULTI"]), b"+OK\r\n");
    assert_eq!(a.cmd(&["DISCARD"]), b"+OK\r\n");
    assert_eq!(b.cmd(&["SET", "k", "2"]), b"+OK\r\n");
    assert_eq!(a.cmd(&["MULTI"]), b"+OK\r\n");
    assert_eq!(a.cmd(&["PING"]), b"+QUEUED\r\n");
    assert_eq!(a.cmd(&["EXEC"]), b"*1\r\n+PONG\r\n");
    // Deleting a key that does not exist changes nothing.
    assert_eq!(a.cmd(&["WATCH", "nokey"]), b"+OK\r\n");
    assert_eq!(b.cmd(&["DEL", "nokey"]), b":0\r\n");
    assert_eq!(a.cmd(&["MULTI"]), b"+OK\r\n");
    assert_eq!(a.cmd(&["PING"]), b"+QUEUED\r\n");
    assert_eq!(a.cmd(&["EXEC"]), b"*1\r\n+PONG\r\n");
}

#[test]
fn watch_sees_expire_flush_rename_and_own_writes() {
    let s = TestServer::start();
    let mut a = s.raw();
    let mut b = s.raw();
    let cases: &[&[&str]] = &[
        &["EXPIRE", "w", "100"],
        &["FLUSHALL"],
        &["FLUSHDB"],
        &["RENAME", "w", "w2"],
        &["DEL", "w"],
    ];
    for change in cases {
        assert_eq!(a.cmd(&["SET", "w", "1"]), b"+OK\r\n");
        assert_eq!(a.cmd(&["WATCH", "w"]), b"+OK\r\n");
        b.cmd(change);
        assert_eq!(a.cmd(&["MULTI"]), b"+OK\r\n");
        assert_eq!(a.cmd(&["PING"]), b"+QUEUED\r\n");
        assert_eq!(a.cmd(&["EXEC"]), b"*-1\r\n", "after {change:?}");
    }
    // The watching client's own write before MULTI also aborts (as in Redis).
    assert_eq!(a.cmd(&["SET", "w", "1"]), b"+OK\r\n");
    assert_eq!(a.cmd(&["WATCH", "w"]), b"+OK\r\n");
    assert_eq!(a.cmd(&["SET", "w", "2"]), b"+OK\r\n");
    assert_eq!(a.cmd(&["MULTI"]), b"+OK\r\n");
    assert_eq!(a.cmd(&["PING"]), b"+QUEUED\r\n");
    assert_eq!(a.cmd(&["EXEC"]), b"*-1\r\n");
    // PERSIST on a key without TTL is not a change.
    assert_eq!(a.cmd(&["WATCH", "w"]), b"+OK\r\n");
    assert_eq!(b.cmd(&["PERSIST", "w"]), b":0\r\n");
    assert_eq!(a.cmd(&["MULTI"]), b"+OK\r\n");
    assert_eq!(a.cmd(&["PING"]), b"+QUEUED\r\n");
    assert_eq!(a.cmd(&["EXEC"]), b"*1\r\n+PONG\r\n");
}

#[test]
fn blocking_read_inside_multi_answers_as_timeout_and_writes_wake_after_exec() {
    let s = TestServer::start();
    let mut a = s.raw();
    assert_eq!(a.cmd(&["MULTI"]), b"+OK\r\n");
    assert_eq!(
        a.cmd(&["XREAD", "BLOCK", "0", "STREAMS", "nos", "$"]),
        b"+QUEUED\r\n"
    );
    assert_eq!(a.cmd(&["EXEC"]), b"*1\r\n*-1\r\n");

    // A reader blocked on a key sees the transaction's writes once, after EXEC.
    let mut reader = s.raw();
    reader.send(&common::encode(&[
        "XREAD", "BLOCK", "5000", "STREAMS", "q", "$",
    ]));
    s.wait_blocked(1);
    assert_eq!(a.cmd(&["MULTI"]), b"+OK\r\n");
    assert_eq!(a.cmd(&["XADD", "q", "1-1", "f", "v"]), b"+QUEUED\r\n");
    assert_eq!(a.cmd(&["XADD", "q", "1-2", "f", "v"]), b"+QUEUED\r\n");
    assert_eq!(a.cmd(&["EXEC"]), b"*2\r\n$3\r\n1-1\r\n$3\r\n1-2\r\n");
    let got = String::from_utf8_lossy(&reader.read_reply()).to_string();
    assert!(got.contains("1-1") && got.contains("1-2"), "{got}");

    // The redis crate's atomic pipeline is MULTI/EXEC.
    let mut c = s.conn();
    let (n, len): (i64, i64) = redis::pipe()
        .atomic()
        .cmd("EXISTS")
        .arg("q")
        .cmd("XLEN")
        .arg("q")
        .query(&mut c)
        .expect("pipeline");
    assert_eq!((n, len), (1, 2));
}
