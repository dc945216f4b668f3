//! Black-box tests of the consumer-group commands against a running `rill`: exact wire bytes
//! (RESP2 and RESP3), Redis 7.4's error texts, blocking XREADGROUP, and the command sequence
//! Watermill's redisstream Pub/Sub sends.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::TestServer;

/// A RESP value as read from the wire.
#[derive(Debug, Clone, PartialEq)]
enum V {
    Status(String),
    Err(String),
    Int(i64),
    Bulk(Vec<u8>),
    /// `$-1` or RESP3 `_`.
    Nil,
    /// `*-1`.
    NilArray,
    Arr(Vec<V>),
    Map(Vec<(V, V)>),
}

impl V {
    fn arr(&self) -> &[V] {
        match self {
            V::Arr(a) => a,
            other => panic!("expected an array, got {other:?}"),
        }
    }

    fn int(&self) -> i64 {
        match self {
            V::Int(n) => *n,
            other => panic!("expected an integer, got {other:?}"),
        }
    }

    fn text(&self) -> String {
        match self {
            V::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
            V::Status(s) | V::Err(s) => s.clone(),
            other => panic!("expected a string, got {other:?}"),
        }
    }

    /// A RESP2 flat `name, value, …` list or a RESP3 map, as pairs.
    fn pairs(&self) -> Vec<(String, V)> {
        match self {
            V::Map(m) => m.iter().map(|(k, v)| (k.text(), v.clone())).collect(),
            V::Arr(a) => a.chunks(2).map(|c| (c[0].text(), c[1].clone())).collect(),
            other => panic!("expected a map, got {other:?}"),
        }
    }

    fn field(&self, name: &str) -> V {
        self.pairs()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("no field {name} in {self:?}"))
    }

    fn keys(&self) -> Vec<String> {
        self.pairs().into_iter().map(|(k, _)| k).collect()
    }
}

/// A raw RESP connection, so replies can be checked byte for byte.
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
        Conn {
            reader: BufReader::new(stream.try_clone().expect("clone")),
            writer: stream,
        }
    }

    fn resp3(server: &TestServer) -> Conn {
        let mut c = Conn::open(server);
        c.cmd(&["HELLO", "3"]);
        c
    }

    fn send(&mut self, args: &[&str]) {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n{}\r\n", a.len(), a).as_bytes());
        }
        self.writer.write_all(&out).expect("write");
    }

    fn line(&mut self, raw: &mut Vec<u8>) -> String {
        let mut buf = Vec::new();
        self.reader.read_until(b'\n', &mut buf).expect("read");
        assert!(
            buf.ends_with(b"\r\n"),
            "truncated reply: {:?}",
            String::from_utf8_lossy(raw)
        );
        raw.extend_from_slice(&buf);
        String::from_utf8_lossy(&buf[..buf.len() - 2]).into_owned()
    }

    fn value(&mut self, raw: &mut Vec<u8>) -> V {
        let line = self.line(raw);
        let (kind, rest) = line.split_at(1);
        match kind {
            "+" => V::Status(rest.to_string()),
            "-" => V::Err(rest.to_string()),
            ":" => V::Int(rest.parse().expect("int")),
            "_" => V::Nil,
            "$" => {
                let n: i64 = rest.parse().expect("len");
                if n < 0 {
                    return V::Nil;
                }
                let mut buf = vec![0; n as usize + 2];
                self.reader.read_exact(&mut buf).expect("bulk");
                raw.extend_from_slice(&buf);
                buf.truncate(n as usize);
                V::Bulk(buf)
            }
            "*" | "~" => {
                let n: i64 = rest.parse().expect("len");
                if n < 0 {
                    return V::NilArray;
                }
                V::Arr((0..n).map(|_| self.value(raw)).collect())
            }
            "%" => {
                let n: usize = rest.parse().expect("len");
                V::Map((0..n).map(|_| (self.value(raw), self.value(raw))).collect())
            }
            other => panic!("unexpected reply type {other}"),
        }
    }

    fn read(&mut self) -> (V, String) {
        let mut raw = Vec::new();
        let v = self.value(&mut raw);
        (v, String::from_utf8_lossy(&raw).into_owned())
    }

    fn cmd(&mut self, args: &[&str]) -> V {
        self.send(args);
        self.read().0
    }

    /// The exact reply bytes.
    fn raw(&mut self, args: &[&str]) -> String {
        self.send(args);
        self.read().1
    }

    fn err(&mut self, args: &[&str]) -> String {
        match self.cmd(args) {
            V::Err(e) => e,
            other => panic!("expected an error for {args:?}, got {other:?}"),
        }
    }
}

fn ok(v: V) {
    assert_eq!(v, V::Status("OK".into()));
}

#[test]
fn xgroup_create_setid_destroy_and_consumers() {
    let server = TestServer::start();
    let mut c = Conn::open(&server);
    // Watermill's Subscribe: the second CREATE must fail with this exact line.
    assert_eq!(
        c.raw(&["XGROUP", "CREATE", "t", "g", "0", "MKSTREAM"]),
        "+OK\r\n"
    );
    assert_eq!(
        c.raw(&["XGROUP", "CREATE", "t", "g", "0", "MKSTREAM"]),
        "-BUSYGROUP Consumer Group name already exists\r\n"
    );
    assert_eq!(c.cmd(&["TYPE", "t"]), V::Status("stream".into()));
    assert_eq!(
        c.err(&["XGROUP", "CREATE", "missing", "g", "$"]),
        "ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically."
    );
    assert_eq!(
        c.err(&["XGROUP", "CREATE", "t", "g2", "$", "MKSTREAM", "foo"]),
        "ERR unknown subcommand or wrong number of arguments for 'CREATE'. Try XGROUP HELP."
    );
    assert_eq!(
        c.err(&["XGROUP", "CREATE", "t", "g2", "$", "ENTRIESREAD", "-2"]),
        "ERR value for ENTRIESREAD must be positive or -1"
    );
    assert_eq!(
        c.err(&["XGROUP", "CREATE", "t", "g2", "$", "ENTRIESREAD", "x"]),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        c.err(&["XGROUP", "CREATE", "t", "g2", "-"]),
        "ERR Invalid stream ID specified as stream command argument"
    );
    assert_eq!(
        c.err(&["XGROUP", "CREATE", "t"]),
        "ERR wrong number of arguments for 'xgroup|create' command"
    );
    assert_eq!(
        c.err(&["XGROUP", "FOO", "t", "g"]),
        "ERR unknown subcommand 'FOO'. Try XGROUP HELP."
    );
    assert_eq!(
        c.err(&["XGROUP", "SETID", "t", "g", "0", "MKSTREAM"]),
        "ERR unknown subcommand or wrong number of arguments for 'SETID'. Try XGROUP HELP."
    );
    assert_eq!(
        c.err(&["XGROUP", "SETID", "t", "nog", "0"]),
        "NOGROUP No such consumer group 'nog' for key name 't'"
    );
    assert_eq!(
        c.err(&["XGROUP", "CREATECONSUMER", "t", "nog", "c"]),
        "NOGROUP No such consumer group 'nog' for key name 't'"
    );
    c.cmd(&["SET", "str", "x"]);
    assert_eq!(
        c.err(&["XGROUP", "CREATE", "str", "g", "0", "MKSTREAM"]),
        "WRONGTYPE Operation against a key holding the wrong kind of value"
    );

    // `$` is the last generated ID; SETID accepts `+` and ENTRIESREAD.
    c.cmd(&["XADD", "t", "5-0", "f", "v"]);
    ok(c.cmd(&["XGROUP", "CREATE", "t", "g2", "$", "ENTRIESREAD", "1"]));
    let groups = c.cmd(&["XINFO", "GROUPS", "t"]);
    let g2 = &groups.arr()[1];
    assert_eq!(g2.field("last-delivered-id").text(), "5-0");
    assert_eq!(g2.field("entries-read"), V::Int(1));
    assert_eq!(g2.field("lag"), V::Int(0));
    ok(c.cmd(&["XGROUP", "SETID", "t", "g2", "0", "ENTRIESREAD", "0"]));
    let g2 = c.cmd(&["XINFO", "GROUPS", "t"]).arr()[1].clone();
    assert_eq!(g2.field("last-delivered-id").text(), "0-0");
    assert_eq!(g2.field("lag"), V::Int(1));
    ok(c.cmd(&["XGROUP", "SETID", "t", "g2", "$"]));
    let g2 = c.cmd(&["XINFO", "GROUPS", "t"]).arr()[1].clone();
    assert_eq!(g2.field("entries-read"), V::Nil);

    assert_eq!(
        c.cmd(&["XGROUP", "CREATECONSUMER", "t", "g", "alice"]),
        V::Int(1)
    );
    assert_eq!(
        c.cmd(&["XGROUP", "CREATECONSUMER", "t", "g", "alice"]),
        V::Int(0)
    );
    c.cmd(&["XREADGROUP", "GROUP", "g", "alice", "STREAMS", "t", ">"]);
    assert_eq!(
        c.cmd(&["XGROUP", "DELCONSUMER", "t", "g", "alice"]),
        V::Int(1)
    );
    assert_eq!(
        c.cmd(&["XGROUP", "DELCONSUMER", "t", "g", "alice"]),
        V::Int(0)
    );
    assert_eq!(c.cmd(&["XPENDING", "t", "g"]).arr()[0], V::Int(0));
    assert_eq!(c.cmd(&["XGROUP", "DESTROY", "t", "g"]), V::Int(1));
    assert_eq!(c.cmd(&["XGROUP", "DESTROY", "t", "g"]), V::Int(0));

    let help = c.cmd(&["XGROUP", "HELP"]);
    assert_eq!(
        help.arr()[0],
        V::Status("XGROUP <subcommand> [<arg> [value] [opt] ...]. Subcommands are:".into())
    );
    assert_eq!(help.arr().len(), 17);
    assert_eq!(help.arr()[16], V::Status("    Print this help.".into()));
}

#[test]
fn xreadgroup_new_history_and_errors_resp2() {
    let server = TestServer::start();
    let mut c = Conn::open(&server);
    c.cmd(&["XADD", "s", "1-0", "a", "1"]);
    c.cmd(&["XADD", "s", "2-0", "b", "2"]);
    c.cmd(&["XADD", "s", "3-0", "c", "3"]);
    ok(c.cmd(&["XGROUP", "CREATE", "s", "g", "0"]));
    // COUNT is honoured exactly (Watermill reads COUNT 1).
    assert_eq!(
        c.raw(&[
            "XREADGROUP",
            "GROUP",
            "g",
            "c1",
            "COUNT",
            "1",
            "STREAMS",
            "s",
            ">"
        ]),
        "*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n1-0\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n"
    );
    let rest = c.cmd(&["XREADGROUP", "GROUP", "g", "c1", "STREAMS", "s", ">"]);
    assert_eq!(rest.arr()[0].arr()[1].arr().len(), 2);
    assert_eq!(
        c.raw(&["XREADGROUP", "GROUP", "g", "c1", "STREAMS", "s", ">"]),
        "*-1\r\n"
    );
    // History: deleted entries come back as [id, nil]; each returned entry counts a delivery.
    assert_eq!(c.cmd(&["XDEL", "s", "2-0"]), V::Int(1));
    assert_eq!(
        c.raw(&["XREADGROUP", "GROUP", "g", "c1", "COUNT", "2", "STREAMS", "s", "0"]),
        "*1\r\n*2\r\n$1\r\ns\r\n*2\r\n*2\r\n$3\r\n1-0\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n*2\r\n$3\r\n2-0\r\n*-1\r\n"
    );
    let pending = c.cmd(&["XPENDING", "s", "g", "-", "+", "10"]);
    let counts: Vec<i64> = pending.arr().iter().map(|e| e.arr()[3].int()).collect();
    assert_eq!(counts, vec![2, 1, 1]);
    // Another consumer has no history.
    assert_eq!(
        c.raw(&["XREADGROUP", "GROUP", "g", "c2", "STREAMS", "s", "0"]),
        "*1\r\n*2\r\n$1\r\ns\r\n*0\r\n"
    );
    // Neither a read that finds nothing nor a delivery touches WATCH: Redis's xreadCommand
    // changes only the group and calls `keyModified(…, 0)` (tests/differential_watch.rs).
    ok(c.cmd(&["WATCH", "s"]));
    c.cmd(&["XREADGROUP", "GROUP", "g", "c1", "STREAMS", "s", ">"]);
    ok(c.cmd(&["MULTI"]));
    c.cmd(&["PING"]);
    assert_eq!(c.cmd(&["EXEC"]), V::Arr(vec![V::Status("PONG".into())]));
    c.cmd(&["XADD", "s", "3-5", "e", "5"]);
    ok(c.cmd(&["WATCH", "s"]));
    c.cmd(&["XREADGROUP", "GROUP", "g", "c1", "STREAMS", "s", ">"]);
    ok(c.cmd(&["MULTI"]));
    c.cmd(&["PING"]);
    assert_eq!(c.cmd(&["EXEC"]), V::Arr(vec![V::Status("PONG".into())]));
    c.cmd(&["XACK", "s", "g", "3-5"]);
    // NOACK delivers without a PEL entry.
    c.cmd(&["XADD", "s", "4-0", "d", "4"]);
    c.cmd(&[
        "XREADGROUP",
        "GROUP",
        "g",
        "c2",
        "NOACK",
        "STREAMS",
        "s",
        ">",
    ]);
    assert_eq!(c.cmd(&["XPENDING", "s", "g"]).arr()[0], V::Int(3));

    assert_eq!(
        c.err(&[
            "XREADGROUP",
            "GROUP",
            "g",
            "c",
            "STREAMS",
            "s",
            "nokey",
            ">",
            ">"
        ]),
        "NOGROUP No such key 'nokey' or consumer group 'g' in XREADGROUP with GROUP option"
    );
    assert_eq!(
        c.err(&["XREADGROUP", "GROUP", "nog", "c", "STREAMS", "s", ">"]),
        "NOGROUP No such key 's' or consumer group 'nog' in XREADGROUP with GROUP option"
    );
    assert!(c
        .err(&["XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", "$"])
        .starts_with("ERR The $ ID is meaningless in the context of XREADGROUP"));
    assert!(c
        .err(&["XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", "+"])
        .starts_with("ERR The + ID is meaningless in the context of XREADGROUP"));
    assert_eq!(
        c.err(&["XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", "bad"]),
        "ERR Invalid stream ID specified as stream command argument"
    );
    assert_eq!(
        c.err(&["XREADGROUP", "GROUP", "g", "c", "STREAMS", "s"]),
        "ERR wrong number of arguments for 'xreadgroup' command"
    );
    assert_eq!(
        c.err(&["XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", "s", ">"]),
        "ERR Unbalanced 'xreadgroup' list of streams: for each stream key an ID or '>' must be specified."
    );
    assert_eq!(
        c.err(&["XREADGROUP", "COUNT", "1", "NOACK", "STREAMS", "s", ">"]),
        "ERR Missing GROUP option for XREADGROUP"
    );
    assert_eq!(
        c.err(&[
            "XREADGROUP",
            "GROUP",
            "g",
            "c",
            "BLOCK",
            "-1",
            "STREAMS",
            "s",
            ">"
        ]),
        "ERR timeout is negative"
    );
    c.cmd(&["SET", "str", "x"]);
    assert_eq!(
        c.err(&["XREADGROUP", "GROUP", "g", "c", "STREAMS", "str", ">"]),
        "WRONGTYPE Operation against a key holding the wrong kind of value"
    );
}

#[test]
fn xreadgroup_resp3_shapes() {
    let server = TestServer::start();
    let mut c = Conn::resp3(&server);
    c.cmd(&["XADD", "s", "1-0", "a", "1"]);
    ok(c.cmd(&["XGROUP", "CREATE", "s", "g", "0"]));
    assert_eq!(
        c.raw(&["XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", ">"]),
        "%1\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n1-0\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n"
    );
    assert_eq!(
        c.raw(&["XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", ">"]),
        "_\r\n"
    );
    assert_eq!(
        c.raw(&[
            "XREADGROUP",
            "GROUP",
            "g",
            "c",
            "BLOCK",
            "20",
            "STREAMS",
            "s",
            ">"
        ]),
        "_\r\n"
    );
    let summary = c.cmd(&["XPENDING", "s", "g"]);
    assert_eq!(summary.arr()[3].arr()[0].arr()[1], V::Bulk(b"1".to_vec()));
    let info = c.cmd(&["XINFO", "CONSUMERS", "s", "g"]);
    assert!(matches!(info.arr()[0], V::Map(_)));
    assert_eq!(
        info.arr()[0].keys(),
        vec!["name", "pending", "idle", "inactive"]
    );
}

#[test]
fn xack_and_xpending_forms() {
    let server = TestServer::start();
    let mut c = Conn::open(&server);
    ok(c.cmd(&["XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"]));
    assert_eq!(
        c.raw(&["XPENDING", "s", "g"]),
        "*4\r\n:0\r\n$-1\r\n$-1\r\n*-1\r\n"
    );
    for i in 1..=4 {
        c.cmd(&["XADD", "s", &format!("{i}-0"), "f", "v"]);
    }
    c.cmd(&[
        "XREADGROUP",
        "GROUP",
        "g",
        "bob",
        "COUNT",
        "1",
        "STREAMS",
        "s",
        ">",
    ]);
    c.cmd(&["XREADGROUP", "GROUP", "g", "alice", "STREAMS", "s", ">"]);
    assert_eq!(
        c.raw(&["XPENDING", "s", "g"]),
        "*4\r\n:4\r\n$3\r\n1-0\r\n$3\r\n4-0\r\n*2\r\n*2\r\n$5\r\nalice\r\n$1\r\n3\r\n*2\r\n$3\r\nbob\r\n$1\r\n1\r\n"
    );
    let ext = c.cmd(&["XPENDING", "s", "g", "-", "+", "10"]);
    assert_eq!(ext.arr().len(), 4);
    let first = ext.arr()[0].arr();
    assert_eq!(first.len(), 4);
    assert_eq!(first[0].text(), "1-0");
    assert_eq!(first[1].text(), "bob");
    assert!(first[2].int() >= 0);
    assert_eq!(first[3], V::Int(1));
    assert_eq!(
        c.cmd(&["XPENDING", "s", "g", "(1-0", "3-0", "10"])
            .arr()
            .len(),
        2
    );
    assert_eq!(c.cmd(&["XPENDING", "s", "g", "-", "+", "2"]).arr().len(), 2);
    assert_eq!(
        c.cmd(&["XPENDING", "s", "g", "-", "+", "10", "bob"])
            .arr()
            .len(),
        1
    );
    assert_eq!(
        c.cmd(&["XPENDING", "s", "g", "-", "+", "10", "nobody"])
            .arr()
            .len(),
        0
    );
    assert_eq!(
        c.cmd(&["XPENDING", "s", "g", "-", "+", "-1"]).arr().len(),
        0
    );
    // IDLE filters on time since the last delivery.
    assert_eq!(
        c.cmd(&["XPENDING", "s", "g", "IDLE", "60000", "-", "+", "10"])
            .arr()
            .len(),
        0
    );
    sleep(Duration::from_millis(30));
    assert_eq!(
        c.cmd(&["XPENDING", "s", "g", "IDLE", "20", "-", "+", "10"])
            .arr()
            .len(),
        4
    );

    assert_eq!(c.err(&["XPENDING", "s", "g", "-", "+"]), "ERR syntax error");
    assert_eq!(
        c.err(&["XPENDING", "s", "g", "IDLE", "10", "-", "+"]),
        "ERR syntax error"
    );
    assert_eq!(
        c.err(&["XPENDING", "s", "g", "-", "+", "x"]),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        c.err(&["XPENDING", "s", "nog", "-", "+", "5"]),
        "NOGROUP No such key 's' or consumer group 'nog'"
    );
    assert_eq!(
        c.err(&["XPENDING", "nokey", "g"]),
        "NOGROUP No such key 'nokey' or consumer group 'g'"
    );

    // XACK: counts only pending IDs; an invalid ID fails the whole call; missing group → 0.
    assert_eq!(c.cmd(&["XACK", "s", "g", "1-0", "1-0", "9-0"]), V::Int(1));
    assert_eq!(
        c.err(&["XACK", "s", "g", "2-0", "bad"]),
        "ERR Invalid stream ID specified as stream command argument"
    );
    assert_eq!(c.cmd(&["XPENDING", "s", "g"]).arr()[0], V::Int(3));
    assert_eq!(c.cmd(&["XACK", "s", "nog", "bad"]), V::Int(0));
    assert_eq!(c.cmd(&["XACK", "nokey", "g", "1-0"]), V::Int(0));
    assert_eq!(c.cmd(&["XACK", "s", "g", "2-0", "3-0", "4-0"]), V::Int(3));
    assert_eq!(
        c.raw(&["XPENDING", "s", "g"]),
        "*4\r\n:0\r\n$-1\r\n$-1\r\n*-1\r\n"
    );
}

#[test]
fn xclaim_semantics_and_errors() {
    let server = TestServer::start();
    let mut c = Conn::open(&server);
    for i in 1..=4 {
        c.cmd(&["XADD", "s", &format!("{i}-0"), "f", &format!("v{i}")]);
    }
    ok(c.cmd(&["XGROUP", "CREATE", "s", "g", "0"]));
    c.cmd(&[
        "XREADGROUP",
        "GROUP",
        "g",
        "a",
        "COUNT",
        "3",
        "STREAMS",
        "s",
        ">",
    ]);
    // Not idle long enough: nothing claimed.
    assert_eq!(
        c.cmd(&["XCLAIM", "s", "g", "b", "60000", "1-0"]),
        V::Arr(vec![])
    );
    sleep(Duration::from_millis(20));
    assert_eq!(
        c.raw(&["XCLAIM", "s", "g", "b", "10", "1-0"]),
        "*1\r\n*2\r\n$3\r\n1-0\r\n*2\r\n$1\r\nf\r\n$2\r\nv1\r\n"
    );
    let e = c.cmd(&["XPENDING", "s", "g", "-", "1-0", "1"]);
    assert_eq!(e.arr()[0].arr()[1].text(), "b");
    assert_eq!(e.arr()[0].arr()[3], V::Int(2));
    // JUSTID returns IDs and leaves the delivery count alone.
    assert_eq!(
        c.raw(&["XCLAIM", "s", "g", "c", "0", "1-0", "JUSTID"]),
        "*1\r\n$3\r\n1-0\r\n"
    );
    let e = c.cmd(&["XPENDING", "s", "g", "-", "1-0", "1"]);
    assert_eq!(e.arr()[0].arr()[1].text(), "c");
    assert_eq!(e.arr()[0].arr()[3], V::Int(2));
    // RETRYCOUNT and IDLE set the counters.
    c.cmd(&[
        "XCLAIM",
        "s",
        "g",
        "c",
        "0",
        "2-0",
        "IDLE",
        "5000",
        "RETRYCOUNT",
        "7",
    ]);
    let e = c.cmd(&["XPENDING", "s", "g", "2-0", "2-0", "1"]);
    assert!(e.arr()[0].arr()[2].int() >= 5000);
    assert_eq!(e.arr()[0].arr()[3], V::Int(7));
    // Entries deleted from the stream are dropped from the PEL and not returned.
    c.cmd(&["XDEL", "s", "3-0"]);
    assert_eq!(
        c.cmd(&["XCLAIM", "s", "g", "c", "0", "3-0"]),
        V::Arr(vec![])
    );
    assert_eq!(c.cmd(&["XPENDING", "s", "g"]).arr()[0], V::Int(2));
    // FORCE creates a PEL entry, but only for IDs still in the stream.
    assert_eq!(
        c.cmd(&["XCLAIM", "s", "g", "c", "0", "4-0", "9-0", "FORCE", "JUSTID"])
            .arr()
            .len(),
        1
    );
    assert_eq!(c.cmd(&["XPENDING", "s", "g"]).arr()[0], V::Int(3));
    // LASTID moves the group forward.
    c.cmd(&["XCLAIM", "s", "g", "c", "0", "4-0", "LASTID", "4-0"]);
    let g = c.cmd(&["XINFO", "GROUPS", "s"]).arr()[0].clone();
    assert_eq!(g.field("last-delivered-id").text(), "4-0");

    assert_eq!(
        c.err(&["XCLAIM", "s", "g", "c", "x", "1-0"]),
        "ERR Invalid min-idle-time argument for XCLAIM"
    );
    assert_eq!(
        c.err(&["XCLAIM", "s", "nog", "c", "x", "1-0"]),
        "NOGROUP No such key 's' or consumer group 'nog'"
    );
    assert_eq!(
        c.err(&["XCLAIM", "s", "g", "c", "0", "1-0", "FOO"]),
        "ERR Unrecognized XCLAIM option 'FOO'"
    );
    assert_eq!(
        c.err(&["XCLAIM", "s", "g", "c", "0", "1-0", "IDLE", "x"]),
        "ERR Invalid IDLE option argument for XCLAIM"
    );
    assert_eq!(
        c.err(&["XCLAIM", "s", "g", "c", "0", "1-0", "TIME", "x"]),
        "ERR Invalid TIME option argument for XCLAIM"
    );
    assert_eq!(
        c.err(&["XCLAIM", "s", "g", "c", "0", "1-0", "RETRYCOUNT", "x"]),
        "ERR Invalid RETRYCOUNT option argument for XCLAIM"
    );
    assert_eq!(
        c.err(&["XCLAIM", "s", "g", "c", "0", "1-0", "IDLE"]),
        "ERR Unrecognized XCLAIM option 'IDLE'"
    );
    assert_eq!(
        c.err(&["XCLAIM", "s", "g", "c", "0", "1-0", "LASTID", "bad"]),
        "ERR Invalid stream ID specified as stream command argument"
    );
    assert_eq!(
        c.err(&["XCLAIM", "s", "g", "c", "0"]),
        "ERR wrong number of arguments for 'xclaim' command"
    );
    // FORCE on an entry nobody had pending creates it at one delivery and the
    // claim counts another, as Redis's streamCreateNACK + increment (found by the
    // differential test).
    c.cmd(&["XADD", "s", "50-0", "f", "v"]);
    c.cmd(&["XCLAIM", "s", "g", "b", "0", "50-0", "FORCE"]);
    let e = c.cmd(&["XPENDING", "s", "g", "50-0", "50-0", "1"]);
    assert_eq!(e.arr()[0].arr()[3], V::Int(2));
}

#[test]
fn xautoclaim_cursor_deleted_and_errors() {
    let server = TestServer::start();
    let mut c = Conn::open(&server);
    for i in 1..=5 {
        c.cmd(&["XADD", "s", &format!("{i}-0"), "f", "v"]);
    }
    ok(c.cmd(&["XGROUP", "CREATE", "s", "g", "0"]));
    c.cmd(&["XREADGROUP", "GROUP", "g", "a", "STREAMS", "s", ">"]);
    c.cmd(&["XDEL", "s", "2-0"]);
    assert_eq!(
        c.raw(&[
            "XAUTOCLAIM",
            "s",
            "g",
            "b",
            "0",
            "0",
            "COUNT",
            "2",
            "JUSTID"
        ]),
        "*3\r\n$3\r\n3-0\r\n*1\r\n$3\r\n1-0\r\n*1\r\n$3\r\n2-0\r\n"
    );
    let r = c.cmd(&["XAUTOCLAIM", "s", "g", "b", "0", "3-0"]);
    assert_eq!(r.arr()[0].text(), "0-0");
    assert_eq!(r.arr()[1].arr().len(), 3);
    assert_eq!(r.arr()[1].arr()[0].arr()[0].text(), "3-0");
    assert_eq!(r.arr()[2], V::Arr(vec![]));
    assert_eq!(
        c.cmd(&["XPENDING", "s", "g", "-", "+", "10", "b"])
            .arr()
            .len(),
        4
    );
    // Nothing idle long enough: the scan still advances the cursor to the end.
    let r = c.cmd(&["XAUTOCLAIM", "s", "g", "a", "60000", "0"]);
    assert_eq!(r.arr()[0].text(), "0-0");
    assert_eq!(r.arr()[1], V::Arr(vec![]));

    assert_eq!(
        c.err(&["XAUTOCLAIM", "s", "g", "c", "x", "0"]),
        "ERR Invalid min-idle-time argument for XAUTOCLAIM"
    );
    assert_eq!(
        c.err(&["XAUTOCLAIM", "s", "g", "c", "0", "0", "COUNT", "0"]),
        "ERR COUNT must be > 0"
    );
    assert_eq!(
        c.err(&["XAUTOCLAIM", "s", "g", "c", "0", "0", "FOO"]),
        "ERR syntax error"
    );
    assert_eq!(
        c.err(&["XAUTOCLAIM", "s", "g", "c", "0", "bad"]),
        "ERR Invalid stream ID specified as stream command argument"
    );
    assert_eq!(
        c.err(&["XAUTOCLAIM", "s", "nog", "c", "0", "0"]),
        "NOGROUP No such key 's' or consumer group 'nog'"
    );
}

#[test]
fn xinfo_stream_groups_consumers() {
    let server = TestServer::start();
    let mut c = Conn::open(&server);
    assert_eq!(c.err(&["XINFO", "STREAM", "nokey"]), "ERR no such key");
    c.cmd(&["XADD", "s", "1-0", "a", "1"]);
    c.cmd(&["XADD", "s", "2-0", "b", "2"]);
    c.cmd(&["XADD", "s", "3-0", "c", "3"]);
    c.cmd(&["XDEL", "s", "2-0"]);
    let info = c.cmd(&["XINFO", "STREAM", "s"]);
    assert_eq!(
        info.keys(),
        vec![
            "length",
            "radix-tree-keys",
            "radix-tree-nodes",
            "last-generated-id",
            "max-deleted-entry-id",
            "entries-added",
            "recorded-first-entry-id",
            "idmp-duration",
            "idmp-maxsize",
            "pids-tracked",
            "iids-tracked",
            "iids-added",
            "iids-duplicates",
            "groups",
            "first-entry",
            "last-entry"
        ]
    );
    assert_eq!(info.field("length"), V::Int(2));
    assert!(info.field("radix-tree-keys").int() >= 1);
    assert_eq!(info.field("max-deleted-entry-id").text(), "2-0");
    assert_eq!(info.field("entries-added"), V::Int(3));
    assert_eq!(info.field("first-entry").arr()[0].text(), "1-0");
    assert_eq!(info.field("last-entry").arr()[0].text(), "3-0");

    ok(c.cmd(&["XGROUP", "CREATE", "s", "g", "0"]));
    // A tombstone ahead of the group: lag unknown until the group reads past it.
    let g = c.cmd(&["XINFO", "GROUPS", "s"]).arr()[0].clone();
    assert_eq!(
        g.keys(),
        vec![
            "name",
            "consumers",
            "pending",
            "last-delivered-id",
            "entries-read",
            "lag"
        ]
    );
    assert_eq!(g.field("entries-read"), V::Nil);
    assert_eq!(g.field("lag"), V::Nil);
    c.cmd(&["XREADGROUP", "GROUP", "g", "alice", "STREAMS", "s", ">"]);
    let g = c.cmd(&["XINFO", "GROUPS", "s"]).arr()[0].clone();
    assert_eq!(g.field("entries-read"), V::Int(3));
    assert_eq!(g.field("lag"), V::Int(0));
    assert_eq!(g.field("pending"), V::Int(2));
    assert_eq!(g.field("consumers"), V::Int(1));

    let full = c.cmd(&["XINFO", "STREAM", "s", "FULL", "COUNT", "1"]);
    assert_eq!(
        full.keys(),
        vec![
            "length",
            "radix-tree-keys",
            "radix-tree-nodes",
            "last-generated-id",
            "max-deleted-entry-id",
            "entries-added",
            "recorded-first-entry-id",
            "idmp-duration",
            "idmp-maxsize",
            "pids-tracked",
            "iids-tracked",
            "iids-added",
            "iids-duplicates",
            "entries",
            "groups"
        ]
    );
    assert_eq!(full.field("entries").arr().len(), 1);
    let fg = full.field("groups").arr()[0].clone();
    assert_eq!(
        fg.keys(),
        vec![
            "name",
            "last-delivered-id",
            "entries-read",
            "lag",
            "pel-count",
            "pending",
            "consumers"
        ]
    );
    assert_eq!(fg.field("pel-count"), V::Int(2));
    assert_eq!(fg.field("pending").arr().len(), 1);
    let fc = fg.field("consumers").arr()[0].clone();
    assert_eq!(
        fc.keys(),
        vec!["name", "seen-time", "active-time", "pel-count", "pending"]
    );
    assert_eq!(fc.field("pending").arr()[0].arr().len(), 3);
    assert_eq!(
        c.cmd(&["XINFO", "STREAM", "s", "FULL"])
            .field("entries")
            .arr()
            .len(),
        2
    );

    c.cmd(&["XGROUP", "CREATECONSUMER", "s", "g", "bob"]);
    let consumers = c.cmd(&["XINFO", "CONSUMERS", "s", "g"]);
    let bob = consumers.arr()[1].clone();
    assert_eq!(bob.field("name").text(), "bob");
    assert_eq!(bob.field("pending"), V::Int(0));
    assert_eq!(bob.field("inactive"), V::Int(-1));

    assert_eq!(
        c.err(&["XINFO", "CONSUMERS", "s", "nog"]),
        "NOGROUP No such consumer group 'nog' for key name 's'"
    );
    assert_eq!(
        c.err(&["XINFO", "STREAM", "s", "FOO"]),
        "ERR unknown subcommand or wrong number of arguments for 'STREAM'. Try XINFO HELP."
    );
    assert_eq!(
        c.err(&["XINFO", "STREAM", "s", "FULL", "COUNT", "x"]),
        "ERR value is not an integer or out of range"
    );
    c.cmd(&["SET", "str", "x"]);
    assert_eq!(
        c.err(&["XINFO", "GROUPS", "str"]),
        "WRONGTYPE Operation against a key holding the wrong kind of value"
    );
    let help = c.cmd(&["XINFO", "HELP"]);
    assert_eq!(help.arr().len(), 9);
    assert_eq!(
        help.arr()[5],
        V::Status("STREAM <key> [FULL [COUNT <count>]".into())
    );

    // RESP3: maps.
    let mut c3 = Conn::resp3(&server);
    assert!(matches!(c3.cmd(&["XINFO", "STREAM", "s"]), V::Map(_)));
    assert!(matches!(
        c3.cmd(&["XINFO", "GROUPS", "s"]).arr()[0],
        V::Map(_)
    ));
    assert_eq!(c3.cmd(&["XINFO", "STREAM", "s"]).field("groups"), V::Int(1));
}

/// Blocks a client on `XREADGROUP … BLOCK ms STREAMS s >` without waiting for the reply.
fn block_on(server: &TestServer, consumer: &str, ms: &str) -> Conn {
    let mut c = Conn::open(server);
    c.send(&[
        "XREADGROUP",
        "GROUP",
        "g",
        consumer,
        "COUNT",
        "1",
        "BLOCK",
        ms,
        "STREAMS",
        "s",
        ">",
    ]);
    c
}

#[test]
fn blocking_xreadgroup_serves_first_blocked_consumer_first() {
    let server = TestServer::start();
    let mut c = Conn::open(&server);
    ok(c.cmd(&["XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"]));
    let mut first = block_on(&server, "c1", "0");
    server.wait_blocked(1);
    let mut second = block_on(&server, "c2", "0");
    server.wait_blocked(2);
    // Both consumers exist although neither was served.
    assert_eq!(c.cmd(&["XINFO", "CONSUMERS", "s", "g"]).arr().len(), 2);
    c.cmd(&["XADD", "s", "1-0", "f", "v"]);
    let (reply, _) = first.read();
    assert_eq!(reply.arr()[0].arr()[1].arr()[0].arr()[0].text(), "1-0");
    c.cmd(&["XADD", "s", "2-0", "f", "v"]);
    let (reply, _) = second.read();
    assert_eq!(reply.arr()[0].arr()[1].arr()[0].arr()[0].text(), "2-0");
    let summary = c.cmd(&["XPENDING", "s", "g"]);
    assert_eq!(summary.arr()[0], V::Int(2));

    // A timeout answers null, no earlier than asked.
    let started = Instant::now();
    assert_eq!(
        c.raw(&[
            "XREADGROUP",
            "GROUP",
            "g",
            "c1",
            "BLOCK",
            "150",
            "STREAMS",
            "s",
            ">"
        ]),
        "*-1\r\n"
    );
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(140), "{waited:?}");
    assert!(waited < Duration::from_millis(1500), "{waited:?}");
    // An explicit ID never blocks.
    assert_eq!(
        c.cmd(&[
            "XREADGROUP",
            "GROUP",
            "g",
            "c1",
            "BLOCK",
            "0",
            "STREAMS",
            "s",
            "0"
        ])
        .arr()[0]
            .arr()[1]
            .arr()
            .len(),
        1
    );
}

#[test]
fn blocking_xreadgroup_fails_when_group_or_key_goes_away() {
    let server = TestServer::start();
    let mut c = Conn::open(&server);
    ok(c.cmd(&["XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"]));
    let mut blocked = block_on(&server, "c1", "0");
    server.wait_blocked(1);
    assert_eq!(c.cmd(&["XGROUP", "DESTROY", "s", "g"]), V::Int(1));
    assert_eq!(
        blocked.read().1,
        "-NOGROUP No such key 's' or consumer group 'g' in XREADGROUP with GROUP option\r\n"
    );

    ok(c.cmd(&["XGROUP", "CREATE", "s", "g", "$"]));
    let mut blocked = block_on(&server, "c1", "0");
    server.wait_blocked(1);
    assert_eq!(c.cmd(&["DEL", "s"]), V::Int(1));
    assert_eq!(
        blocked.read().1,
        "-NOGROUP No such key 's' or consumer group 'g' in XREADGROUP with GROUP option\r\n"
    );

    ok(c.cmd(&["XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"]));
    let mut blocked = block_on(&server, "c1", "0");
    server.wait_blocked(1);
    ok(c.cmd(&["FLUSHALL"]));
    assert_eq!(
        blocked.read().1,
        "-NOGROUP No such key 's' or consumer group 'g' in XREADGROUP with GROUP option\r\n"
    );

    // The key replaced by another type: the re-run fails with WRONGTYPE.
    ok(c.cmd(&["XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"]));
    let mut blocked = block_on(&server, "c1", "0");
    server.wait_blocked(1);
    ok(c.cmd(&["SET", "s", "x"]));
    assert_eq!(
        blocked.read().1,
        "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
    );
    assert_eq!(c.cmd(&["DEL", "s"]), V::Int(1));

    // Inside MULTI a blocking read answers as a timeout.
    ok(c.cmd(&["XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"]));
    ok(c.cmd(&["MULTI"]));
    c.cmd(&[
        "XREADGROUP",
        "GROUP",
        "g",
        "c",
        "BLOCK",
        "0",
        "STREAMS",
        "s",
        ">",
    ]);
    assert_eq!(c.raw(&["EXEC"]), "*1\r\n*-1\r\n");
}

/// The sequence Watermill's redisstream subscriber and its claim/cleanup loops send.
#[test]
fn watermill_sequence() {
    let server = TestServer::start();
    let mut sub = Conn::open(&server);
    let mut publisher = Conn::open(&server);
    ok(sub.cmd(&["XGROUP", "CREATE", "topic", "grp", "0", "MKSTREAM"]));
    assert_eq!(
        sub.err(&["XGROUP", "CREATE", "topic", "grp", "0", "MKSTREAM"]),
        "BUSYGROUP Consumer Group name already exists"
    );
    sub.send(&[
        "XREADGROUP",
        "GROUP",
        "grp",
        "old",
        "COUNT",
        "1",
        "BLOCK",
        "0",
        "STREAMS",
        "topic",
        ">",
    ]);
    server.wait_blocked(1);
    let id = publisher
        .cmd(&[
            "XADD",
            "topic",
            "*",
            "_watermill_message_uuid",
            "u1",
            "payload",
            "p1",
        ])
        .text();
    let (msg, _) = sub.read();
    assert_eq!(msg.arr()[0].arr()[1].arr()[0].arr()[0].text(), id);
    // The consumer "dies" without acking; a new process claims the stale entry.
    assert_eq!(
        sub.cmd(&[
            "XREADGROUP",
            "GROUP",
            "grp",
            "old",
            "COUNT",
            "1",
            "BLOCK",
            "50",
            "STREAMS",
            "topic",
            ">"
        ]),
        V::NilArray
    );
    // The entry has been idle for 300 ms at least (delivered before the 50 ms block).
    // The claims below ask for 250 ms: the first must find it stale; the second, which
    // only passes if the first reset the idle time, then has 250 ms of slack for the
    // gap between two commands on a loaded machine (50 ms was not enough on CI).
    sleep(Duration::from_millis(250));
    let stale = publisher.cmd(&["XPENDING", "topic", "grp", "IDLE", "250", "0", "+", "100"]);
    assert_eq!(stale.arr().len(), 1);
    assert_eq!(stale.arr()[0].arr()[1].text(), "old");
    let claimed = publisher.cmd(&["XCLAIM", "topic", "grp", "new", "250", &id]);
    assert_eq!(claimed.arr()[0].arr()[0].text(), id);
    // A second claim right after finds it no longer idle.
    assert_eq!(
        publisher.cmd(&["XCLAIM", "topic", "grp", "other", "250", &id]),
        V::Arr(vec![])
    );
    assert_eq!(publisher.cmd(&["XACK", "topic", "grp", &id]), V::Int(1));

    // XINFO CONSUMERS: idle resets on every read attempt, even one that returns nothing.
    sleep(Duration::from_millis(120));
    let before = consumer_field(&mut publisher, "old", "idle");
    assert!(before >= 100, "{before}");
    let attempt = Instant::now();
    sub.cmd(&[
        "XREADGROUP",
        "GROUP",
        "grp",
        "old",
        "COUNT",
        "1",
        "BLOCK",
        "10",
        "STREAMS",
        "topic",
        ">",
    ]);
    let after = consumer_field(&mut publisher, "old", "idle");
    // Idle counts from the attempt, so it cannot exceed the time since the attempt was
    // sent (+1 for the server's millisecond rounding), however slow the machine.
    let since = attempt.elapsed().as_millis() as i64;
    assert!(
        after <= since + 1 && after < before,
        "{after} ms idle, attempt {since} ms ago, before {before}"
    );
    assert_eq!(consumer_field(&mut publisher, "old", "pending"), 0);
    assert!(consumer_field(&mut publisher, "new", "inactive") >= 0);
    assert_eq!(
        publisher.cmd(&["XGROUP", "DELCONSUMER", "topic", "grp", "old"]),
        V::Int(0)
    );
}

fn consumer_field(c: &mut Conn, consumer: &str, field: &str) -> i64 {
    let list = c.cmd(&["XINFO", "CONSUMERS", "topic", "grp"]);
    list.arr()
        .iter()
        .find(|e| e.field("name").text() == consumer)
        .map(|e| e.field(field).int())
        .unwrap_or_else(|| panic!("no consumer {consumer}"))
}
