//! Black-box tests of the core stream commands (XADD, XRANGE, XREVRANGE, XLEN, XDEL,
//! XTRIM, XREAD, XSETID) against a running `rill`: exact wire bytes in RESP2 and RESP3,
//! Redis 7.4's error texts and precedence, `~` trimming counts, and blocking XREAD timing.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::TestServer;

/// One raw RESP connection; replies are returned as their exact bytes.
struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    fn open(server: &TestServer) -> Conn {
        let stream = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let writer = stream.try_clone().expect("clone");
        Conn {
            reader: BufReader::new(stream),
            writer,
        }
    }

    fn resp3(server: &TestServer) -> Conn {
        let mut c = Conn::open(server);
        let hello = c.raw(&["HELLO", "3"]);
        assert!(hello.starts_with('%'), "HELLO 3 answered {hello:?}");
        c
    }

    fn send(&mut self, args: &[&str]) {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        self.writer.write_all(&out).expect("write");
    }

    /// Reads one complete reply and returns its exact bytes.
    fn read_reply(&mut self) -> String {
        let mut out = String::new();
        self.read_value(&mut out);
        out
    }

    fn read_value(&mut self, out: &mut String) {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("read line");
        assert!(line.ends_with("\r\n"), "truncated reply: {line:?}");
        out.push_str(&line);
        let body = &line[1..line.len() - 2];
        match line.as_bytes()[0] {
            b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => {}
            b'$' | b'=' | b'!' => {
                let n: i64 = body.parse().expect("bulk length");
                if n >= 0 {
                    let mut buf = vec![0u8; n as usize + 2];
                    self.reader.read_exact(&mut buf).expect("bulk body");
                    out.push_str(&String::from_utf8_lossy(&buf));
                }
            }
            b'*' | b'~' | b'>' => {
                let n: i64 = body.parse().expect("array length");
                for _ in 0..n.max(0) {
                    self.read_value(out);
                }
            }
            b'%' => {
                let n: i64 = body.parse().expect("map length");
                for _ in 0..n.max(0) * 2 {
                    self.read_value(out);
                }
            }
            other => panic!("unexpected RESP type byte {:?}", other as char),
        }
    }

    /// Sends a command and returns the reply's exact bytes.
    fn raw(&mut self, args: &[&str]) -> String {
        self.send(args);
        self.read_reply()
    }

    /// Sends a command and asserts its reply bytes.
    fn expect(&mut self, args: &[&str], reply: &str) {
        assert_eq!(self.raw(args), reply, "reply to {args:?}");
    }

    /// Sends a command expecting an error; returns its text without `-` and CRLF.
    fn err(&mut self, args: &[&str]) -> String {
        let r = self.raw(args);
        assert!(r.starts_with('-'), "{args:?} should fail, got {r:?}");
        r[1..r.len() - 2].to_string()
    }

    fn int(&mut self, args: &[&str]) -> i64 {
        let r = self.raw(args);
        assert!(
            r.starts_with(':'),
            "{args:?} should answer an integer, got {r:?}"
        );
        r[1..r.len() - 2].parse().expect("integer")
    }

    /// The bulk string of a reply (an ID from XADD).
    fn bulk(&mut self, args: &[&str]) -> String {
        let r = self.raw(args);
        assert!(
            r.starts_with('$'),
            "{args:?} should answer a bulk, got {r:?}"
        );
        r.split("\r\n").nth(1).unwrap_or_default().to_string()
    }
}

/// `*2\r\n$<id>\r\n*2n\r\n…`: one entry's bytes.
fn entry(id: &str, fields: &[&str]) -> String {
    let mut s = format!("*2\r\n${}\r\n{}\r\n*{}\r\n", id.len(), id, fields.len());
    for f in fields {
        s.push_str(&format!("${}\r\n{}\r\n", f.len(), f));
    }
    s
}

const INVALID_ID: &str = "ERR Invalid stream ID specified as stream command argument";

#[test]
fn xadd_ids_and_errors() {
    let server = TestServer::start();
    let mut c = Conn::open(&server);
    c.expect(&["XADD", "s", "1-1", "f", "v"], "$3\r\n1-1\r\n");
    c.expect(&["XADD", "s", "1-*", "f", "v"], "$3\r\n1-2\r\n");
    c.expect(&["XADD", "s", "5", "f", "v"], "$3\r\n5-0\r\n");
    c.expect(&["XADD", "s", "5-*", "f", "v"], "$3\r\n5-1\r\n");
    c.expect(&["XADD", "s", "7-*", "f", "v"], "$3\r\n7-0\r\n");
    assert_eq!(
        c.err(&["XADD", "s", "5-5", "f", "v"]),
        "ERR The ID specified in XADD is equal or smaller than the target stream top item"
    );
    assert_eq!(
        c.err(&["XADD", "s", "6-*", "f", "v"]),
        "ERR The ID specified in XADD is equal or smaller than the target stream top item"
    );
    assert_eq!(
        c.err(&["XADD", "s", "0-0", "f", "v"]),
        "ERR The ID specified in XADD must be greater than 0-0"
    );
    // 0-0 is refused before the key is created.
    assert_eq!(
        c.err(&["XADD", "fresh", "0", "f", "v"]),
        "ERR The ID specified in XADD must be greater than 0-0"
    );
    c.expect(&["EXISTS", "fresh"], ":0\r\n");
    // On a new stream "0-*" gives 0-1.
    c.expect(&["XADD", "zero", "0-*", "f", "v"], "$3\r\n0-1\r\n");
    for bad in ["-", "+", "abc", "1-x", "-1"] {
        assert_eq!(c.err(&["XADD", "s", bad, "f", "v"]), INVALID_ID, "{bad}");
    }
    // "*" picks max(now, last.ms).
    let id = c.bulk(&["XADD", "t", "*", "f", "v"]);
    let ms: u64 = id.split('-').next().unwrap_or("0").parse().expect("ms");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    assert!(ms.abs_diff(now) < 5_000, "{id} far from now {now}");
    c.expect(
        &["XADD", "fut", "99999999999999-5", "f", "v"],
        "$16\r\n99999999999999-5\r\n",
    );
    c.expect(
        &["XADD", "fut", "*", "f", "v"],
        "$16\r\n99999999999999-6\r\n",
    );
    // Arity.
    let arity = "ERR wrong number of arguments for 'xadd' command";
    assert_eq!(c.err(&["XADD", "s", "*", "f"]), arity);
    assert_eq!(c.err(&["XADD", "s", "*", "f", "v", "g"]), arity);
    assert_eq!(c.err(&["XADD", "s", "MAXLEN", "5", "NOMKSTREAM"]), arity);
    // Exhaustion.
    let max = "18446744073709551615-18446744073709551615";
    c.expect(
        &["XADD", "m", max, "f", "v"],
        &format!("${}\r\n{}\r\n", max.len(), max),
    );
    assert_eq!(
        c.err(&["XADD", "m", "*", "f", "v"]),
        "ERR The stream has exhausted the last possible ID, unable to add more items"
    );
    // Wrong type.
    c.expect(&["SET", "str", "x"], "+OK\r\n");
    assert_eq!(
        c.err(&["XADD", "str", "*", "f", "v"]),
        "WRONGTYPE Operation against a key holding the wrong kind of value"
    );
    c.expect(&["TYPE", "s"], "+stream\r\n");
}

#[test]
fn xadd_nomkstream_null_in_both_protocols() {
    let server = TestServer::start();
    let mut c = Conn::open(&server);
    c.expect(&["XADD", "nokey", "NOMKSTREAM", "*", "f", "v"], "$-1\r\n");
    c.expect(&["EXISTS", "nokey"], ":0\r\n");
    let mut c3 = Conn::resp3(&server);
    c3.expect(&["XADD", "nokey", "NOMKSTREAM", "*", "f", "v"], "_\r\n");
    c.expect(&["XADD", "k", "1-1", "f", "v"], "$3\r\n1-1\r\n");
    c.expect(
        &["XADD", "k", "NOMKSTREAM", "2-1", "f", "v"],
        "$3\r\n2-1\r\n",
    );
}

#[test]
fn xrange_and_xrevrange() {
    let server = TestServer::start();
    let mut c = Conn::open(&server);
    for id in ["1-1", "1-2", "2-1", "3-0"] {
        c.raw(&["XADD", "s", id, "f", id]);
    }
    let all = format!(
        "*4\r\n{}{}{}{}",
        entry("1-1", &["f", "1-1"]),
        entry("1-2", &["f", "1-2"]),
        entry("2-1", &["f", "2-1"]),
        entry("3-0", &["f", "3-0"])
    );
    c.expect(&["XRANGE", "s", "-", "+"], &all);
    c.expect(
        &["XRANGE", "s", "1", "1"],
        &format!(
            "*2\r\n{}{}",
            entry("1-1", &["f", "1-1"]),
            entry("1-2", &["f", "1-2"])
        ),
    );
    c.expect(
        &["XRANGE", "s", "(1-1", "(3-0"],
        &format!(
            "*2\r\n{}{}",
            entry("1-2", &["f", "1-2"]),
            entry("2-1", &["f", "2-1"])
        ),
    );
    c.expect(
        &["XRANGE", "s", "-", "+", "COUNT", "1"],
        &format!("*1\r\n{}", entry("1-1", &["f", "1-1"])),
    );
    c.expect(
        &["XREVRANGE", "s", "+", "-", "COUNT", "2"],
        &format!(
            "*2\r\n{}{}",
            entry("3-0", &["f", "3-0"]),
            entry("2-1", &["f", "2-1"])
        ),
    );
    c.expect(
        &["XREVRANGE", "s", "(3-0", "(1-1"],
        &format!(
            "*2\r\n{}{}",
            entry("2-1", &["f", "2-1"]),
            entry("1-2", &["f", "1-2"])
        ),
    );
    // COUNT 0 or negative: null array (a Redis quirk); missing key: empty array first.
    c.expect(&["XRANGE", "s", "-", "+", "COUNT", "0"], "*-1\r\n");
    c.expect(&["XRANGE", "s", "-", "+", "COUNT", "-3"], "*-1\r\n");
    c.expect(&["XRANGE", "nokey", "-", "+", "COUNT", "0"], "*0\r\n");
    c.expect(&["XRANGE", "s", "5", "1"], "*0\r\n");
    // A bare ms as an exclusive end means ms-MAX minus one: 3-0 is still inside.
    c.expect(
        &["XREVRANGE", "s", "(3", "(2-1"],
        &format!("*1\r\n{}", entry("3-0", &["f", "3-0"])),
    );
    let mut c3 = Conn::resp3(&server);
    c3.expect(&["XRANGE", "s", "-", "+", "COUNT", "0"], "_\r\n");
    // Errors, in order: start, then its exclusivity, then end, then options.
    assert_eq!(c.err(&["XRANGE", "s", "x", "y"]), INVALID_ID);
    assert_eq!(c.err(&["XRANGE", "s", "(-", "+"]), INVALID_ID);
    assert_eq!(c.err(&["XRANGE", "s", "-", "(+"]), INVALID_ID);
    assert_eq!(
        c.err(&[
            "XRANGE",
            "s",
            "(18446744073709551615-18446744073709551615",
            "x"
        ]),
        "ERR invalid start ID for the interval"
    );
    assert_eq!(
        c.err(&["XRANGE", "s", "-", "(0-0"]),
        "ERR invalid end ID for the interval"
    );
    assert_eq!(
        c.err(&["XRANGE", "s", "-", "+", "COUNT"]),
        "ERR syntax error"
    );
    assert_eq!(
        c.err(&["XRANGE", "s", "-", "+", "COUNT", "x"]),
        "ERR value is not an integer or out of range"
    );
    c.raw(&["SET", "str", "x"]);
    assert_eq!(
        c.err(&["XRANGE", "str", "-", "+"]),
        "WRONGTYPE Operation against a key holding the wrong kind of value"
    );
}

#[test]
fn xlen_and_xdel() {
    let server = TestServer::start();
    let mut c = Conn::open(&server);
    assert_eq!(c.int(&["XLEN", "nokey"]), 0);
    for id in ["1-1", "2-1", "3-1"] {
        c.raw(&["XADD", "s", id, "f", "v"]);
    }
    assert_eq!(c.int(&["XLEN", "s"]), 3);
    // One invalid ID fails the whole command, nothing is deleted.
    assert_eq!(c.err(&["XDEL", "s", "1-1", "bad"]), INVALID_ID);
    assert_eq!(c.err(&["XDEL", "s", "+"]), INVALID_ID);
    assert_eq!(c.int(&["XLEN", "s"]), 3);
    // A missing key answers 0 before IDs are checked.
    assert_eq!(c.int(&["XDEL", "nokey", "bad"]), 0);
    assert_eq!(c.int(&["XDEL", "s", "1-1", "1-1", "9-9"]), 1);
    assert_eq!(c.int(&["XLEN", "s"]), 2);
    assert_eq!(c.int(&["XDEL", "s", "2-1", "3-1"]), 2);
    // The deleted top ID still blocks reuse.
    assert_eq!(
        c.err(&["XADD", "s", "3-1", "f", "v"]),
        "ERR The ID specified in XADD is equal or smaller than the target stream top item"
    );
    c.expect(&["EXISTS", "s"], ":1\r\n");
    c.raw(&["SET", "str", "x"]);
    assert!(c.err(&["XLEN", "str"]).starts_with("WRONGTYPE"));
    assert!(c.err(&["XDEL", "str", "1-1"]).starts_with("WRONGTYPE"));
}

#[test]
fn approximate_trimming_removes_whole_nodes() {
    let server = TestServer::start();
    let mut c = Conn::open(&server);
    for i in 1..=1000 {
        c.raw(&["XADD", "s", &format!("{i}-0"), "f", "v"]);
    }
    assert_eq!(c.int(&["XTRIM", "s", "MAXLEN", "~", "555"]), 400);
    assert_eq!(c.int(&["XLEN", "s"]), 600);
    // ~ never goes below the threshold and removes nothing partial.
    assert_eq!(c.int(&["XTRIM", "s", "MAXLEN", "~", "590"]), 0);
    // LIMIT caps the work in whole nodes.
    assert_eq!(
        c.int(&["XTRIM", "s", "MAXLEN", "~", "0", "LIMIT", "250"]),
        200
    );
    assert_eq!(c.int(&["XLEN", "s"]), 400);
    // Exact trimming.
    assert_eq!(c.int(&["XTRIM", "s", "MAXLEN", "=", "390"]), 10);
    assert_eq!(c.int(&["XTRIM", "s", "MAXLEN", "390"]), 0);
    c.expect(
        &["XRANGE", "s", "-", "+", "COUNT", "1"],
        &format!("*1\r\n{}", entry("611-0", &["f", "v"])),
    );
    // MINID.
    assert_eq!(c.int(&["XTRIM", "s", "MINID", "700"]), 89);
    // The first node holds only 700-0 now; it and the next two nodes go whole.
    assert_eq!(c.int(&["XTRIM", "s", "MINID", "~", "950"]), 201);
    assert_eq!(c.int(&["XLEN", "s"]), 100);
    assert_eq!(c.int(&["XTRIM", "nokey", "MAXLEN", "0"]), 0);
    // XADD's trim clause: Watermill's "MAXLEN ~ n".
    c.raw(&["DEL", "w"]);
    for i in 1..=250 {
        c.raw(&[
            "XADD",
            "w",
            "MAXLEN",
            "~",
            "100",
            &format!("{i}-0"),
            "f",
            "v",
        ]);
    }
    assert_eq!(c.int(&["XLEN", "w"]), 150);
    c.raw(&["XADD", "w", "MAXLEN", "0", "*", "f", "v"]);
    assert_eq!(c.int(&["XLEN", "w"]), 0);
}

#[test]
fn trimming_follows_node_size_config() {
    let server = TestServer::start();
    let mut c = Conn::open(&server);
    c.expect(
        &["CONFIG", "SET", "stream-node-max-entries", "10"],
        "+OK\r\n",
    );
    for i in 1..=100 {
        c.raw(&["XADD", "s", &format!("{i}-0"), "f", "v"]);
    }
    assert_eq!(c.int(&["XTRIM", "s", "MAXLEN", "~", "55"]), 40);
    // Default LIMIT with ~ is 100 × node-max-entries = 1000, more than enough here.
    assert_eq!(c.int(&["XTRIM", "s", "MAXLEN", "~", "0"]), 60);
}

#[test]
fn trim_argument_errors() {
    let server = TestServer::start();
    let mut c = Conn::open(&server);
    c.raw(&["XADD", "s", "1-1", "f", "v"]);
    assert_eq!(
        c.err(&["XTRIM", "s", "MAXLEN", "-1"]),
        "ERR The MAXLEN argument must be >= 0."
    );
    assert_eq!(
        c.err(&["XTRIM", "s", "MAXLEN", "~", "1", "LIMIT", "-1"]),
        "ERR The LIMIT argument must be >= 0."
    );
    assert_eq!(
        c.err(&["XTRIM", "s", "MAXLEN", "1", "MINID", "1"]),
        "ERR syntax error, MAXLEN and MINID options at the same time are not compatible"
    );
    assert_eq!(
        c.err(&["XTRIM", "s", "MAXLEN", "1", "LIMIT", "10"]),
        "ERR syntax error, LIMIT cannot be used without the special ~ option"
    );
    assert_eq!(
        c.err(&["XADD", "s", "LIMIT", "10", "*", "f", "v"]),
        "ERR syntax error, LIMIT cannot be used without specifying a trimming strategy"
    );
    assert_eq!(
        c.err(&["XTRIM", "s", "LIMIT", "10"]),
        "ERR syntax error, LIMIT cannot be used without specifying a trimming strategy"
    );
    assert_eq!(
        c.err(&["XTRIM", "s", "LIMIT", "0"]),
        "ERR syntax error, XTRIM must be called with a trimming strategy"
    );
    assert_eq!(c.err(&["XTRIM", "s", "FOO", "1"]), "ERR syntax error");
    assert_eq!(
        c.err(&["XTRIM", "s", "MAXLEN", "x"]),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(c.err(&["XTRIM", "s", "MINID", "+"]), INVALID_ID);
    assert_eq!(
        c.err(&["XTRIM", "s", "MAXLEN"]),
        "ERR wrong number of arguments for 'xtrim' command"
    );
    // Argument errors win over a missing key (XTRIM parses first).
    assert_eq!(
        c.err(&["XTRIM", "nokey", "MAXLEN", "-1"]),
        "ERR The MAXLEN argument must be >= 0."
    );
}

#[test]
fn xsetid_rules() {
    let server = TestServer::start();
    let mut c = Conn::open(&server);
    assert_eq!(c.err(&["XSETID", "nokey", "1-1"]), "ERR no such key");
    for id in ["1-1", "2-1", "3-1"] {
        c.raw(&["XADD", "s", id, "f", "v"]);
    }
    assert_eq!(
        c.err(&["XSETID", "s", "2-0"]),
        "ERR The ID specified in XSETID is smaller than the target stream top item"
    );
    assert_eq!(
        c.err(&["XSETID", "s", "5-0", "ENTRIESADDED", "-1"]),
        "ERR entries_added must be positive"
    );
    assert_eq!(
        c.err(&["XSETID", "s", "5-0", "ENTRIESADDED", "2"]),
        "ERR The entries_added specified in XSETID is smaller than the target stream length"
    );
    assert_eq!(
        c.err(&["XSETID", "s", "5-0", "MAXDELETEDID", "6-0"]),
        "ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id"
    );
    assert_eq!(
        c.err(&["XSETID", "s", "5-0", "FOO", "1"]),
        "ERR syntax error"
    );
    assert_eq!(c.err(&["XSETID", "s", "+"]), INVALID_ID);
    c.expect(
        &[
            "XSETID",
            "s",
            "9-0",
            "ENTRIESADDED",
            "10",
            "MAXDELETEDID",
            "8-0",
        ],
        "+OK\r\n",
    );
    assert_eq!(
        c.err(&["XSETID", "s", "7-0"]),
        "ERR The ID specified in XSETID is smaller than current max_deleted_entry_id"
    );
    // XADD must now go above 9-0.
    assert_eq!(
        c.err(&["XADD", "s", "9-0", "f", "v"]),
        "ERR The ID specified in XADD is equal or smaller than the target stream top item"
    );
    c.expect(&["XADD", "s", "9-1", "f", "v"], "$3\r\n9-1\r\n");
}

#[test]
fn xread_shapes_and_special_ids() {
    let server = TestServer::start();
    let mut c = Conn::open(&server);
    c.raw(&["XADD", "a", "1-1", "f", "v"]);
    c.raw(&["XADD", "a", "2-1", "g", "w"]);
    c.raw(&["XADD", "b", "5-0", "h", "x"]);
    c.expect(
        &["XREAD", "STREAMS", "a", "b", "1-1", "0"],
        &format!(
            "*2\r\n*2\r\n$1\r\na\r\n*1\r\n{}*2\r\n$1\r\nb\r\n*1\r\n{}",
            entry("2-1", &["g", "w"]),
            entry("5-0", &["h", "x"])
        ),
    );
    // Only keys with data appear; nothing at all is a null array.
    c.expect(
        &["XREAD", "COUNT", "1", "STREAMS", "a", "b", "0", "5-0"],
        &format!("*1\r\n*2\r\n$1\r\na\r\n*1\r\n{}", entry("1-1", &["f", "v"])),
    );
    c.expect(&["XREAD", "STREAMS", "a", "nokey", "$", "$"], "*-1\r\n");
    // "+" (7.4): the last entry.
    c.expect(
        &["XREAD", "STREAMS", "a", "+"],
        &format!("*1\r\n*2\r\n$1\r\na\r\n*1\r\n{}", entry("2-1", &["g", "w"])),
    );
    c.expect(&["XREAD", "STREAMS", "nokey", "+"], "*-1\r\n");
    let mut c3 = Conn::resp3(&server);
    c3.expect(
        &["XREAD", "STREAMS", "a", "1-1"],
        &format!("%1\r\n$1\r\na\r\n*1\r\n{}", entry("2-1", &["g", "w"])),
    );
    c3.expect(&["XREAD", "STREAMS", "a", "$"], "_\r\n");
}

#[test]
fn xread_argument_errors() {
    let server = TestServer::start();
    let mut c = Conn::open(&server);
    c.raw(&["XADD", "a", "1-1", "f", "v"]);
    c.raw(&["SET", "str", "x"]);
    assert_eq!(
        c.err(&["XREAD", "STREAMS", "a", "b", "0"]),
        "ERR Unbalanced 'xread' list of streams: for each stream key an ID, '+', or '$' must be specified."
    );
    assert_eq!(
        c.err(&["XREAD", "GROUP", "g", "c", "STREAMS", "a", "0"]),
        "ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead."
    );
    assert_eq!(
        c.err(&["XREAD", "NOACK", "STREAMS", "a", "0"]),
        "ERR The NOACK option is only supported by XREADGROUP. You called XREAD instead."
    );
    assert_eq!(
        c.err(&["XREAD", "STREAMS", "a", ">"]),
        "ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option."
    );
    assert_eq!(
        c.err(&["XREAD", "BLOCK", "-1", "STREAMS", "a", "0"]),
        "ERR timeout is negative"
    );
    assert_eq!(
        c.err(&["XREAD", "BLOCK", "x", "STREAMS", "a", "0"]),
        "ERR timeout is not an integer or out of range"
    );
    assert_eq!(
        c.err(&["XREAD", "COUNT", "x", "STREAMS", "a", "0"]),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        c.err(&["XREAD", "FOO", "STREAMS", "a", "0"]),
        "ERR syntax error"
    );
    assert_eq!(
        c.err(&["XREAD", "COUNT", "1", "a", "0"]),
        "ERR syntax error"
    );
    assert_eq!(c.err(&["XREAD", "STREAMS", "a", "x"]), INVALID_ID);
    // Keys are checked in order: WRONGTYPE of the first key beats a bad ID of the second.
    assert!(c
        .err(&["XREAD", "STREAMS", "str", "a", "0", "x"])
        .starts_with("WRONGTYPE"));
    assert_eq!(
        c.err(&["XREAD", "STREAMS", "a", "str", "x", "0"]),
        INVALID_ID
    );
}

#[test]
fn blocking_xread_times_out_punctually() {
    let server = TestServer::start();
    let mut c = Conn::open(&server);
    let start = Instant::now();
    c.expect(&["XREAD", "BLOCK", "200", "STREAMS", "s", "$"], "*-1\r\n");
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(200) && took < Duration::from_millis(260),
        "took {took:?}"
    );
    let mut c3 = Conn::resp3(&server);
    c3.expect(&["XREAD", "BLOCK", "50", "STREAMS", "s", "$"], "_\r\n");
}

#[test]
fn blocking_xread_is_woken_by_xadd_fifo() {
    let server = TestServer::start();
    let mut w = Conn::open(&server);
    w.raw(&["XADD", "s", "1-1", "old", "x"]);
    let mut readers: Vec<Conn> = (0..3).map(|_| Conn::open(&server)).collect();
    for (n, r) in readers.iter_mut().enumerate() {
        r.send(&["XREAD", "BLOCK", "0", "STREAMS", "s", "$"]);
        server.wait_blocked(n + 1);
    }
    w.raw(&["XADD", "s", "2-1", "f", "v"]);
    let expected = format!("*1\r\n*2\r\n$1\r\ns\r\n*1\r\n{}", entry("2-1", &["f", "v"]));
    for r in readers.iter_mut() {
        assert_eq!(r.read_reply(), expected);
    }
    // "$" was resolved when blocking: a second XADD is not seen by a new "$" reader
    // registered after it, but is by one registered before.
    let mut late = Conn::open(&server);
    late.send(&["XREAD", "BLOCK", "0", "STREAMS", "s", "$"]);
    server.wait_blocked(1);
    w.raw(&["XADD", "s", "3-1", "f", "v"]);
    assert_eq!(
        late.read_reply(),
        format!("*1\r\n*2\r\n$1\r\ns\r\n*1\r\n{}", entry("3-1", &["f", "v"]))
    );
}

#[test]
fn blocking_xread_on_missing_key_and_other_keys() {
    let server = TestServer::start();
    let mut w = Conn::open(&server);
    let mut r = Conn::resp3(&server);
    r.send(&["XREAD", "BLOCK", "0", "STREAMS", "x", "y", "$", "$"]);
    server.wait_blocked(1);
    w.raw(&["XADD", "y", "1-1", "f", "v"]);
    assert_eq!(
        r.read_reply(),
        format!("%1\r\n$1\r\ny\r\n*1\r\n{}", entry("1-1", &["f", "v"]))
    );
}

#[test]
fn blocking_xread_inside_multi_answers_as_timeout() {
    let server = TestServer::start();
    let mut c = Conn::open(&server);
    c.expect(&["MULTI"], "+OK\r\n");
    c.expect(&["XREAD", "BLOCK", "0", "STREAMS", "s", "$"], "+QUEUED\r\n");
    c.expect(&["EXEC"], "*1\r\n*-1\r\n");
}

#[test]
fn xadd_maxlen_zero_wakes_with_empty_entries_and_xdel_does_not() {
    let server = TestServer::start();
    let mut w = Conn::open(&server);
    w.raw(&["XADD", "s", "1-1", "f", "v"]);
    let mut r = Conn::open(&server);
    r.send(&["XREAD", "BLOCK", "0", "STREAMS", "s", "$"]);
    server.wait_blocked(1);
    // XADD + XDEL in one transaction: no new entry survives, the reader stays blocked.
    w.expect(&["MULTI"], "+OK\r\n");
    w.raw(&["XADD", "s", "2-1", "f", "v"]);
    w.raw(&["XDEL", "s", "2-1"]);
    w.expect(&["EXEC"], "*2\r\n$3\r\n2-1\r\n:1\r\n");
    w.raw(&["XADD", "s", "MAXLEN", "0", "3-1", "f", "v"]);
    assert_eq!(r.read_reply(), "*1\r\n*2\r\n$1\r\ns\r\n*0\r\n");
    // The stream is empty now: a read from an older ID blocks and times out,
    // it is not answered with an empty list at once.
    r.expect(&["XREAD", "BLOCK", "100", "STREAMS", "s", "0"], "*-1\r\n");
}

#[test]
fn blocked_xread_without_count_is_capped_at_1000() {
    let server = TestServer::start();
    let mut w = Conn::open(&server);
    let mut r = Conn::open(&server);
    r.send(&["XREAD", "BLOCK", "0", "STREAMS", "s", "0-0"]);
    server.wait_blocked(1);
    // 1200 entries land in one transaction before the reader is served.
    w.expect(&["MULTI"], "+OK\r\n");
    for i in 1..=1200 {
        w.raw(&["XADD", "s", &format!("{i}-0"), "f", "v"]);
    }
    let exec = w.raw(&["EXEC"]);
    assert!(exec.starts_with("*1200\r\n"));
    let reply = r.read_reply();
    assert!(
        reply.starts_with("*1\r\n*2\r\n$1\r\ns\r\n*1000\r\n"),
        "{}",
        &reply[..40]
    );
}
