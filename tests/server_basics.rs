//! Smoke tests of the server core against a real listening server.
mod common;

use common::TestServer;

#[test]
fn ping_echo_and_unknown_command() {
    let s = TestServer::start();
    let mut r = s.raw();
    assert_eq!(r.cmd(&["PING"]), b"+PONG\r\n");
    assert_eq!(r.cmd(&["ECHO", "hi"]), b"$2\r\nhi\r\n");
    assert_eq!(
        r.cmd(&["FOO", "a", "b"]),
        b"-ERR unknown command 'FOO', with args beginning with: 'a' 'b' \r\n"
    );
    assert_eq!(r.cmd(&["PING", "a", "b"]), b"-ERR wrong number of arguments for 'ping' command\r\n");
}

#[test]
fn redis_crate_roundtrip() {
    let s = TestServer::start();
    let mut c = s.conn();
    let _: () = redis::cmd("SET").arg("k").arg("v").query(&mut c).unwrap();
    let v: String = redis::cmd("GET").arg("k").query(&mut c).unwrap();
    assert_eq!(v, "v");
    let t: String = redis::cmd("TYPE").arg("k").query(&mut c).unwrap();
    assert_eq!(t, "string");
}
