//! Keyspace notifications (`notify-keyspace-events`, issue #15) against a real server, in
//! raw RESP bytes: the directive from the command line and a config file (and refused with
//! Redis's text), CONFIG REWRITE, events from other clients, from expiry, in Raft mode, and
//! to a RESP3 subscriber blocked in XREAD. The byte-for-byte comparison with Redis 8.6.3
//! over every command is `tests/differential_notify.rs`; that replay publishes nothing is
//! `persist::replay`'s unit test.
mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Raw, TestServer};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A RESP2 `pmessage` of pattern `__key*__:*`.
fn pmessage(channel: &str, message: &str) -> String {
    format!(
        "*4\r\n$8\r\npmessage\r\n$10\r\n__key*__:*\r\n${}\r\n{channel}\r\n${}\r\n{message}\r\n",
        channel.len(),
        message.len()
    )
}

/// A subscriber to every keyspace and keyevent channel.
fn subscriber(s: &TestServer) -> Raw {
    let mut sub = s.raw();
    assert_eq!(
        text(&sub.cmd(&["PSUBSCRIBE", "__key*__:*"])),
        "*3\r\n$10\r\npsubscribe\r\n$10\r\n__key*__:*\r\n:1\r\n"
    );
    sub
}

/// Reads the keyspace and keyevent message of one event.
#[track_caller]
fn expect_event(sub: &mut Raw, db: u32, event: &str, key: &str) {
    assert_eq!(
        text(&sub.read_reply()),
        pmessage(&format!("__keyspace@{db}__:{key}"), event)
    );
    assert_eq!(
        text(&sub.read_reply()),
        pmessage(&format!("__keyevent@{db}__:{event}"), key)
    );
}

#[test]
fn the_directive_from_the_command_line_publishes_stream_and_key_events() {
    let s = TestServer::start_with(&["--notify-keyspace-events", "Etg$Kx"]);
    let mut c = s.raw();
    assert_eq!(
        text(&c.cmd(&["CONFIG", "GET", "notify-keyspace-events"])),
        "*2\r\n$22\r\nnotify-keyspace-events\r\n$6\r\ng$xtKE\r\n"
    );
    let mut sub = subscriber(&s);
    c.cmd(&["XADD", "orders", "1-1", "item", "book"]);
    expect_event(&mut sub, 0, "xadd", "orders");
    c.cmd(&["XGROUP", "CREATE", "orders", "billing", "0"]);
    expect_event(&mut sub, 0, "xgroup-create", "orders");
    c.cmd(&[
        "XREADGROUP",
        "GROUP",
        "billing",
        "w1",
        "STREAMS",
        "orders",
        ">",
    ]);
    expect_event(&mut sub, 0, "xgroup-createconsumer", "orders");
    c.cmd(&["SELECT", "3"]);
    c.cmd(&["SET", "k", "v", "PX", "30"]);
    expect_event(&mut sub, 3, "set", "k");
    expect_event(&mut sub, 3, "expire", "k");
    // Active expiry: nobody touches the key.
    expect_event(&mut sub, 3, "expired", "k");
    // Off at run time: nothing more.
    assert_eq!(
        text(&c.cmd(&["CONFIG", "SET", "notify-keyspace-events", ""])),
        "+OK\r\n"
    );
    c.cmd(&["XADD", "orders", "2-1", "item", "pen"]);
    c.cmd(&["SELECT", "0"]);
    assert_eq!(
        text(&c.cmd(&["PUBLISH", "__keyevent@0__:mark", "x"])),
        ":1\r\n"
    );
    assert_eq!(
        text(&sub.read_reply()),
        pmessage("__keyevent@0__:mark", "x")
    );
}

#[test]
fn bad_letters_are_refused_with_redis_s_text() {
    let s = TestServer::start();
    let mut c = s.raw();
    assert_eq!(
        text(&c.cmd(&["CONFIG", "SET", "notify-keyspace-events", "KEq"])),
        "-ERR CONFIG SET failed (possibly related to argument 'notify-keyspace-events') - Invalid event class character. Use 'Ag$lshzxeKEtmdn'.\r\n"
    );
    // At start-up, the command line's value stops the server with the same reason.
    let dir = std::env::temp_dir().join(format!("rill-notify-bad-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_rill"))
        .args(["--port", "0", "--notify-keyspace-events", "KEq"])
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rill");
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
        std::thread::sleep(Duration::from_millis(20));
    }
    if matches!(child.try_wait(), Ok(None)) {
        let _ = child.kill();
    }
    let output = child.wait_with_output().expect("collect output");
    let all = format!("{}{}", text(&output.stdout), text(&output.stderr));
    assert!(!output.status.success(), "{all}");
    assert!(all.contains("*** FATAL CONFIG FILE ERROR"), "{all}");
    assert!(
        all.contains("Invalid event class character. Use 'Ag$lshzxeKEtmdn'."),
        "{all}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn config_rewrite_writes_the_normalised_letters_and_a_restart_reads_them() {
    let dir = std::env::temp_dir().join(format!("rill-notify-rewrite-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("rill.conf");
    std::fs::write(&file, "# keyspace events\n").expect("write");
    let file_arg = file.to_str().expect("utf-8");
    {
        let s = TestServer::start_with_file(file_arg, &[]);
        let mut c = s.raw();
        assert_eq!(
            text(&c.cmd(&["CONFIG", "SET", "notify-keyspace-events", "xEKtg"])),
            "+OK\r\n"
        );
        assert_eq!(text(&c.cmd(&["CONFIG", "REWRITE"])), "+OK\r\n");
    }
    let rewritten = std::fs::read_to_string(&file).expect("read");
    assert!(
        rewritten.contains("\nnotify-keyspace-events \"gxtKE\"\n"),
        "{rewritten}"
    );
    let s = TestServer::start_with_file(file_arg, &[]);
    let mut c = s.raw();
    assert_eq!(
        text(&c.cmd(&["CONFIG", "GET", "notify-keyspace-events"])),
        "*2\r\n$22\r\nnotify-keyspace-events\r\n$5\r\ngxtKE\r\n"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn events_arrive_in_raft_mode() {
    let s = TestServer::start_with(&[
        "--cluster-raft",
        "yes",
        "--appendfsync",
        "always",
        "--notify-keyspace-events",
        "KEA",
    ]);
    let mut sub = subscriber(&s);
    let mut c = s.raw();
    assert_eq!(
        text(&c.cmd(&["XADD", "s", "MAXLEN", "0", "1-1", "f", "v"])),
        "$3\r\n1-1\r\n"
    );
    expect_event(&mut sub, 0, "xadd", "s");
    expect_event(&mut sub, 0, "xtrim", "s");
    c.cmd(&["DEL", "s"]);
    expect_event(&mut sub, 0, "del", "s");
}

#[test]
fn a_resp3_subscriber_blocked_in_xread_gets_events_while_it_waits() {
    let s = TestServer::start_with(&["--notify-keyspace-events", "KEt"]);
    let mut sub = s.raw();
    assert_eq!(sub.cmd(&["HELLO", "3"])[0], b'%');
    assert_eq!(
        text(&sub.cmd(&["SUBSCRIBE", "__keyevent@0__:xadd"])),
        ">3\r\n$9\r\nsubscribe\r\n$19\r\n__keyevent@0__:xadd\r\n:1\r\n"
    );
    sub.send(&common::encode(&[
        "XREAD", "BLOCK", "0", "STREAMS", "wanted", "$",
    ]));
    s.wait_blocked(1);
    let mut c = s.raw();
    c.cmd(&["XADD", "other", "1-1", "f", "v"]);
    assert_eq!(
        text(&sub.read_reply()),
        ">3\r\n$7\r\nmessage\r\n$19\r\n__keyevent@0__:xadd\r\n$5\r\nother\r\n"
    );
    // The XADD that serves the read: its event, then the XREAD reply, as Redis 8.6.3
    // sends them (the event is published before the blocked client is served).
    c.cmd(&["XADD", "wanted", "1-1", "f", "v"]);
    assert_eq!(
        text(&sub.read_reply()),
        ">3\r\n$7\r\nmessage\r\n$19\r\n__keyevent@0__:xadd\r\n$6\r\nwanted\r\n"
    );
    assert_eq!(
        text(&sub.read_reply()),
        "%1\r\n$6\r\nwanted\r\n*1\r\n*2\r\n$3\r\n1-1\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n"
    );
}
