//! Protocol edge cases against a real listening server, in raw RESP bytes:
//! split frames, inline commands, deep pipelines, size limits, garbage input, and
//! the RESP2/RESP3 reply shapes that differ between the two protocol versions.
mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{encode, Raw, TestServer};

/// Reads everything until the server closes the connection (or `within` passes).
/// Returns the bytes and whether EOF (or a reset) was seen.
fn read_until_close(stream: &mut TcpStream, within: Duration) -> (Vec<u8>, bool) {
    let deadline = Instant::now() + within;
    let mut out = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    while Instant::now() < deadline {
        let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
        match stream.read(&mut buf) {
            Ok(0) => return (out, true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            // A reset after the server closed with unread input is a close too.
            Err(_) => return (out, true),
        }
    }
    (out, false)
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_nodelay(true).expect("nodelay");
    s
}

/// Sends `input`, expects exactly `reply` and then a closed connection.
fn expect_error_and_close(s: &TestServer, input: &[u8], reply: &[u8]) {
    let mut c = connect(s.port);
    c.write_all(input).expect("write");
    let (got, closed) = read_until_close(&mut c, Duration::from_secs(5));
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(reply),
        "input {:?}",
        String::from_utf8_lossy(input)
    );
    assert!(closed, "connection must be closed after a protocol error");
}

#[test]
fn frames_split_byte_by_byte_are_reassembled() {
    let s = TestServer::start();
    let mut r = s.raw();
    let mut input = encode(&["ECHO", "hello world"]);
    input.extend_from_slice(b"PING\r\n");
    input.extend_from_slice(&encode(&["ECHO", ""]));
    for b in &input {
        r.send(std::slice::from_ref(b));
        std::thread::sleep(Duration::from_micros(200));
    }
    assert_eq!(r.read_reply(), b"$11\r\nhello world\r\n");
    assert_eq!(r.read_reply(), b"+PONG\r\n");
    assert_eq!(r.read_reply(), b"$0\r\n\r\n");
}

#[test]
fn large_bulk_in_many_small_writes() {
    let s = TestServer::start();
    let mut r = s.raw();
    let payload = vec![b'x'; 3 * 1024 * 1024];
    let mut input = format!("*2\r\n$4\r\nECHO\r\n${}\r\n", payload.len()).into_bytes();
    input.extend_from_slice(&payload);
    input.extend_from_slice(b"\r\n");
    let started = Instant::now();
    for chunk in input.chunks(1000) {
        r.send(chunk);
    }
    let reply = r.read_reply();
    assert_eq!(reply.len(), payload.len() + "$3145728\r\n\r\n".len());
    // Quadratic re-parsing of 3 MiB in 1 KB pieces would take far longer than this.
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn inline_commands_with_quotes() {
    let s = TestServer::start();
    let mut r = s.raw();
    r.send(b"PING\r\n");
    assert_eq!(r.read_reply(), b"+PONG\r\n");
    // nc sends a bare \n; blank lines are ignored without a reply.
    r.send(b"\r\n\nping\n");
    assert_eq!(r.read_reply(), b"+PONG\r\n");
    r.send(b"ECHO \"a b\\x41\\n\"\r\n");
    assert_eq!(r.read_reply(), b"$5\r\na bA\n\r\n");
    r.send(b"ECHO 'it\\'s'\r\n");
    assert_eq!(r.read_reply(), b"$4\r\nit's\r\n");
    r.send(b"ECHO \"a b\" 'c d'\r\n");
    assert_eq!(
        r.read_reply(),
        b"-ERR wrong number of arguments for 'echo' command\r\n"
    );
    // RESP frames with zero or negative counts are skipped, as Redis does.
    r.send(b"*0\r\n*-1\r\nPING\r\n");
    assert_eq!(r.read_reply(), b"+PONG\r\n");
}

#[test]
fn ten_thousand_pipelined_commands_answer_in_order() {
    let s = TestServer::start();
    let mut c = connect(s.port);
    let n = 10_000;
    let mut input = Vec::new();
    let mut expected = Vec::new();
    for i in 0..n {
        let v = i.to_string();
        input.extend_from_slice(&encode(&["ECHO", &v]));
        expected.extend_from_slice(format!("${}\r\n{}\r\n", v.len(), v).as_bytes());
    }
    // One write of the whole pipeline, from another thread so neither side stalls.
    let mut w = c.try_clone().expect("clone");
    let writer = std::thread::spawn(move || w.write_all(&input));
    let mut got = Vec::new();
    let mut reads = 0;
    let mut buf = vec![0u8; 1 << 20];
    c.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    while got.len() < expected.len() {
        let k = c.read(&mut buf).expect("read");
        assert!(k > 0, "server closed the connection");
        got.extend_from_slice(&buf[..k]);
        reads += 1;
    }
    writer.join().expect("join").expect("write");
    assert_eq!(got, expected);
    // Replies are batched: ~110 KB arrive in far fewer reads than there are replies.
    assert!(reads < 1000, "{reads} reads for {n} replies");
}

#[test]
fn oversized_bulk_is_refused_and_connection_closed() {
    let s = TestServer::start_with(&["--proto-max-bulk-len", "1mb"]);
    expect_error_and_close(
        &s,
        b"*2\r\n$4\r\nECHO\r\n$1048577\r\n",
        b"-ERR Protocol error: invalid bulk length\r\n",
    );
    // Exactly the limit is fine.
    let mut r = s.raw();
    let payload = "y".repeat(1024 * 1024);
    let reply = r.cmd(&["ECHO", &payload]);
    assert!(reply.starts_with(b"$1048576\r\nyyy"));
    // CONFIG SET applies to connections that already exist.
    assert_eq!(
        r.cmd(&["CONFIG", "SET", "proto-max-bulk-len", "2mb"]),
        b"+OK\r\n"
    );
    let payload = "z".repeat(1024 * 1024 + 10);
    assert!(r.cmd(&["ECHO", &payload]).starts_with(b"$1048586\r\n"));
}

#[test]
fn query_buffer_limit_closes_the_connection() {
    let s = TestServer::start_with(&["--client-query-buffer-limit", "1mb"]);
    let mut c = connect(s.port);
    // A bulk that is allowed by proto-max-bulk-len but overflows the query buffer.
    let mut input = b"*2\r\n$4\r\nECHO\r\n$3000000\r\n".to_vec();
    input.extend_from_slice(&vec![b'a'; 2_000_000]);
    // The server may close while we are still writing: a failed write is expected.
    let _ = c.write_all(&input);
    let (got, closed) = read_until_close(&mut c, Duration::from_secs(5));
    assert!(got.is_empty(), "no reply expected, got {:?}", got);
    assert!(closed);
    // The server keeps serving others.
    assert_eq!(s.raw().cmd(&["PING"]), b"+PONG\r\n");
}

#[test]
fn garbage_input_gets_an_error_and_a_close() {
    let s = TestServer::start();
    let cases: &[(&[u8], &[u8])] = &[
        (
            b"*1\r\n:1\r\n",
            b"-ERR Protocol error: expected '$', got ':'\r\n",
        ),
        (
            b"*abc\r\n",
            b"-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"*3000000000\r\n",
            b"-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"*1\r\n$abc\r\n",
            b"-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*1\r\n$-5\r\n",
            b"-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"ECHO \"abc\r\n",
            b"-ERR Protocol error: unbalanced quotes in request\r\n",
        ),
        // A good command before the garbage is still answered.
        (
            b"PING\r\n*1\r\n+x\r\n",
            b"+PONG\r\n-ERR Protocol error: expected '$', got '+'\r\n",
        ),
    ];
    // One client stays connected the whole time and must keep being served.
    let mut bystander = s.raw();
    for (input, reply) in cases {
        expect_error_and_close(&s, input, reply);
        assert_eq!(bystander.cmd(&["PING"]), b"+PONG\r\n");
    }
    // Random bytes never crash the server.
    let mut seed: u64 = 0x9e3779b97f4a7c15;
    for _ in 0..20 {
        let mut c = connect(s.port);
        let junk: Vec<u8> = (0..512)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed & 0xff) as u8
            })
            .collect();
        let _ = c.write_all(&junk);
        drop(c);
    }
    assert_eq!(bystander.cmd(&["PING"]), b"+PONG\r\n");
}

#[test]
fn too_long_inline_request_is_refused() {
    let s = TestServer::start();
    let mut input = b"ECHO ".to_vec();
    input.extend_from_slice(&vec![b'a'; 70 * 1024]);
    expect_error_and_close(
        &s,
        &input,
        b"-ERR Protocol error: too big inline request\r\n",
    );
}

#[test]
fn resp3_and_resp2_reply_shapes() {
    let s = TestServer::start();
    let mut r = s.raw();
    // RESP2 by default: nulls are $-1 / *-1, maps are flat arrays.
    assert_eq!(r.cmd(&["CLIENT", "GETNAME"]), b"$-1\r\n");
    let hello2 = r.cmd(&["HELLO", "2"]);
    assert!(hello2.starts_with(b"*14\r\n$6\r\nserver\r\n$5\r\nredis\r\n"));
    let config2 = r.cmd(&["CONFIG", "GET", "port"]);
    assert!(config2.starts_with(b"*2\r\n$4\r\nport\r\n"));
    let info2 = r.cmd(&["INFO", "server"]);
    assert!(info2.starts_with(b"$"), "INFO is a bulk string in RESP2");

    let hello3 = r.cmd(&["HELLO", "3"]);
    let id = String::from_utf8_lossy(&r.cmd(&["CLIENT", "ID"]))
        .trim_start_matches(':')
        .trim()
        .to_string();
    let version = rill::commands::connection::REDIS_VERSION;
    let expected = format!(
        "%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n${}\r\n{version}\r\n$5\r\nproto\r\n:3\r\n$2\r\nid\r\n:{id}\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n",
        version.len()
    );
    assert_eq!(String::from_utf8_lossy(&hello3), expected);
    assert_eq!(r.cmd(&["CLIENT", "GETNAME"]), b"_\r\n");
    assert!(r
        .cmd(&["CONFIG", "GET", "port"])
        .starts_with(b"%1\r\n$4\r\nport\r\n"));
    // INFO and CLIENT LIST/INFO are verbatim strings in RESP3.
    assert!(r.cmd(&["INFO", "server"]).starts_with(b"="));
    let list = r.cmd(&["CLIENT", "LIST"]);
    assert!(
        list.starts_with(b"="),
        "{:?}",
        String::from_utf8_lossy(&list)
    );
    assert!(String::from_utf8_lossy(&list).contains("\r\ntxt:id="));
    assert!(r.cmd(&["CLIENT", "INFO"]).starts_with(b"="));
    // Back to RESP2.
    assert!(r.cmd(&["HELLO", "2"]).starts_with(b"*14\r\n"));
    assert_eq!(r.cmd(&["CLIENT", "GETNAME"]), b"$-1\r\n");
    assert!(r.cmd(&["CLIENT", "LIST"]).starts_with(b"$"));
}

#[test]
fn hello_errors_and_options() {
    let s = TestServer::start();
    let mut r = s.raw();
    assert_eq!(
        r.cmd(&["HELLO", "4"]),
        b"-NOPROTO unsupported protocol version\r\n"
    );
    assert_eq!(
        r.cmd(&["HELLO", "abc"]),
        b"-ERR Protocol version is not an integer or out of range\r\n"
    );
    assert_eq!(
        r.cmd(&["HELLO", "3", "foo"]),
        b"-ERR Syntax error in HELLO option 'foo'\r\n"
    );
    // A failed HELLO leaves the protocol unchanged.
    assert_eq!(r.cmd(&["CLIENT", "GETNAME"]), b"$-1\r\n");
    assert!(r
        .cmd(&["HELLO", "3", "SETNAME", "conn-a"])
        .starts_with(b"%7\r\n"));
    assert_eq!(r.cmd(&["CLIENT", "GETNAME"]), b"$6\r\nconn-a\r\n");
    // HELLO without a version reports the current protocol and does not change it.
    assert!(r.cmd(&["HELLO"]).starts_with(b"%7\r\n"));
}

#[test]
fn redis_crate_speaks_resp3() {
    let s = TestServer::start();
    let mut c = s.conn3();
    let pong: String = redis::cmd("PING").query(&mut c).expect("ping");
    assert_eq!(pong, "PONG");
    let name: Option<String> = redis::cmd("CLIENT")
        .arg("GETNAME")
        .query(&mut c)
        .expect("getname");
    assert_eq!(name, None);
    let mut raw = Raw::connect(s.port);
    assert_eq!(raw.cmd(&["PING"]), b"+PONG\r\n");
}

/// Sends `input`, expects exactly `reply` and a connection that stays open.
fn expect_reply_and_open(s: &TestServer, input: &[u8], reply: &[u8]) {
    let mut c = connect(s.port);
    c.write_all(input).expect("write");
    let (got, closed) = read_until_close(&mut c, Duration::from_millis(600));
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(reply),
        "input {:?}",
        String::from_utf8_lossy(input)
    );
    assert!(
        !closed,
        "input {:?} must not close",
        String::from_utf8_lossy(input)
    );
}

/// Header integers follow Redis's `string2ll` (no `+`, no leading zeros, no `-0`, no
/// blanks), and a header line ends at its first CR whatever byte follows, as in
/// `processMultibulkBuffer`. Expected replies were taken from redis-server 7.0.
#[test]
fn header_integers_follow_string2ll() {
    let s = TestServer::start();
    let multibulk = b"-ERR Protocol error: invalid multibulk length\r\n";
    let bulk = b"-ERR Protocol error: invalid bulk length\r\n";
    let refused: &[(&[u8], &[u8])] = &[
        (b"*+1\r\n$4\r\nPING\r\n", multibulk),
        (b"*01\r\n$4\r\nPING\r\n", multibulk),
        (b"*-0\r\nPING\r\n", multibulk),
        (b"* 1\r\n$4\r\nPING\r\n", multibulk),
        (b"*1 \r\n$4\r\nPING\r\n", multibulk),
        (b"*\r\n", multibulk),
        (b"*9223372036854775808\r\n", multibulk),
        (b"*1\r\n$+4\r\nPING\r\n", bulk),
        (b"*1\r\n$04\r\nPING\r\n", bulk),
        (b"*1\r\n$-0\r\n", bulk),
        (b"*1\r\n$\r\n", bulk),
        (b"*1\r\n$4 \r\nPING\r\n", bulk),
        // A lone CR ends the count line; the next header then lacks its '$'.
        (
            b"*1\rX*1\r\n$4\r\nPING\r\n",
            b"-ERR Protocol error: expected '$', got '*'\r\n",
        ),
    ];
    for (input, reply) in refused {
        expect_error_and_close(&s, input, reply);
    }
    let served: &[(&[u8], &[u8])] = &[
        (b"*1\r\n$4\r\nPING\r\n", b"+PONG\r\n"),
        // A count <= 0 is an empty request, skipped without a reply.
        (b"*-5\r\nPING\r\n", b"+PONG\r\n"),
        (b"*0\r\n*1\r\n$4\r\nPING\r\n", b"+PONG\r\n"),
        (b"*-9223372036854775808\r\nPING\r\n", b"+PONG\r\n"),
        // Redis skips the byte after a header's CR unseen, and the two bytes after a
        // bulk's data unchecked: a lone CR is framing noise, not an internal error.
        (b"*1\rX$4\r\nPING\r\n", b"+PONG\r\n"),
        (b"*2\r\n$4\rXECHO\r\n$2\r\nhi\r\n", b"$2\r\nhi\r\n"),
        (
            b"*2\r\n$4\r\nECHO\r\n$2\r\nhiXY*1\r\n$4\r\nPING\r\n",
            b"$2\r\nhi\r\n+PONG\r\n",
        ),
        // Inline commands have no header integers and still work.
        (b"PING\r\nECHO \"a b\"\n", b"+PONG\r\n$3\r\na b\r\n"),
    ];
    for (input, reply) in served {
        expect_reply_and_open(&s, input, reply);
    }
}

/// With `requirepass` set, a client that has not authenticated gets Redis's small
/// header limits (`processMultibulkBuffer`: at most 10 arguments of at most 16384
/// bytes), so it cannot make the server buffer `proto-max-bulk-len` before AUTH.
#[test]
fn unauthenticated_clients_get_small_header_limits() {
    let s = TestServer::start_with(&["--requirepass", "secret"]);
    let bulk = b"-ERR Protocol error: unauthenticated bulk length\r\n";
    let multibulk = b"-ERR Protocol error: unauthenticated multibulk length\r\n";
    // The header alone is refused and the connection closed at once: the server does
    // not wait for (or read) the 100 MB it announces.
    let started = Instant::now();
    expect_error_and_close(&s, b"*2\r\n$100000000\r\n", bulk);
    assert!(started.elapsed() < Duration::from_secs(2));
    expect_error_and_close(&s, b"*2\r\n$4\r\nECHO\r\n$16385\r\n", bulk);
    expect_error_and_close(&s, b"*11\r\n", multibulk);
    // A malformed header is still reported as such, as in Redis.
    expect_error_and_close(
        &s,
        b"*2\r\n$-1\r\n",
        b"-ERR Protocol error: invalid bulk length\r\n",
    );
    expect_error_and_close(
        &s,
        b"*2147483648\r\n",
        b"-ERR Protocol error: invalid multibulk length\r\n",
    );
    // Exactly the limits are accepted (and the command then refused by NOAUTH).
    let mut r = s.raw();
    let big = "x".repeat(16384);
    let mut args = vec!["DEL", big.as_str()];
    args.extend(["y"; 8]);
    let reply = r.cmd(&args);
    assert!(
        reply.starts_with(b"-NOAUTH"),
        "{:?}",
        String::from_utf8_lossy(&reply)
    );
    // After AUTH, even in the same write, large and long requests are fine.
    let mut r = s.raw();
    let payload = "z".repeat(1024 * 1024);
    let mut input = b"AUTH secret\r\n".to_vec();
    input.extend_from_slice(&encode(&["ECHO", &payload]));
    r.send(&input);
    assert_eq!(r.read_reply(), b"+OK\r\n");
    let reply = r.read_reply();
    assert!(
        reply.starts_with(b"$1048576\r\nzzz"),
        "{:?}",
        String::from_utf8_lossy(&reply[..reply.len().min(80)])
    );
    let mut args = vec!["DEL"];
    args.extend(["a"; 11]);
    assert_eq!(r.cmd(&args), b":0\r\n");
    // RESET forgets the authentication, and the limits apply again.
    assert_eq!(r.cmd(&["RESET"]), b"+RESET\r\n");
    r.send(b"*11\r\n");
    assert_eq!(r.read_reply(), multibulk);
    let mut rest = Vec::new();
    r.reader.read_to_end(&mut rest).expect("closed");
    assert!(rest.is_empty());
}

/// Eight unauthenticated clients announcing 100 MB bulks and sending data after the
/// header must not grow the server's memory: each is refused at the header.
#[test]
fn unauthenticated_big_bulks_do_not_grow_memory() {
    const CLIENTS: usize = 8;
    const SENT_EACH: usize = 8 * 1024 * 1024;
    let s = TestServer::start_with(&["--requirepass", "secret"]);
    let mut probe = s.raw();
    assert!(probe.cmd(&["PING"]).starts_with(b"-NOAUTH"));
    let before = s.rss_bytes();
    let chunk = vec![b'a'; 64 * 1024];
    let mut held = Vec::new();
    for _ in 0..CLIENTS {
        let mut c = connect(s.port);
        c.set_write_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        // The server closes while we write: failed writes are expected, and stop.
        let _ = c.write_all(b"*2\r\n$4\r\nECHO\r\n$100000000\r\n");
        let mut sent = 0;
        while sent < SENT_EACH && c.write_all(&chunk).is_ok() {
            sent += chunk.len();
        }
        held.push(c);
    }
    // Give the server time to read what the kernel holds for it, then look at its
    // memory while every client is still connected.
    std::thread::sleep(Duration::from_millis(500));
    let after = s.rss_bytes();
    let grown = after.saturating_sub(before);
    assert!(
        grown < 8 * 1024 * 1024,
        "RSS grew by {} KiB ({} -> {} KiB) for {CLIENTS} unauthenticated clients",
        grown / 1024,
        before / 1024,
        after / 1024
    );
    for mut c in held {
        let (got, closed) = read_until_close(&mut c, Duration::from_secs(5));
        assert!(closed, "unauthenticated big bulk must close the connection");
        // The reply may be lost to the reset our unread data causes; if it came, it
        // is Redis's text.
        if !got.is_empty() {
            assert_eq!(got, b"-ERR Protocol error: unauthenticated bulk length\r\n");
        }
    }
    assert!(probe.cmd(&["PING"]).starts_with(b"-NOAUTH"));
}
