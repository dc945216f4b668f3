//! Pub/Sub against a real server, in raw RESP bytes: confirmations and deliveries in
//! RESP2 and RESP3, RESP2 subscribed mode, patterns and shard channels, PUBSUB
//! introspection, what RESET, a disconnect and CLIENT KILL leave behind (nothing), and a
//! subscriber that stops reading closed by `client-output-buffer-limit pubsub` while the
//! publisher and other clients carry on. The byte-for-byte comparison with Redis 8.6.3 is
//! `tests/differential_pubsub.rs`.
mod common;

use std::io::Read;
use std::time::{Duration, Instant};

use common::{Raw, TestServer};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The value of `field` in an INFO reply.
fn info_field(info: &[u8], field: &str) -> Option<String> {
    let prefix = format!("{field}:");
    text(info)
        .split("\r\n")
        .find_map(|l| l.strip_prefix(&prefix).map(str::to_string))
}

#[test]
fn resp2_subscribe_publish_unsubscribe() {
    let s = TestServer::start();
    let mut sub = s.raw();
    let mut publisher = s.raw();
    assert_eq!(
        text(&sub.cmd(&["UNSUBSCRIBE"])),
        "*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n"
    );
    sub.send(&common::encode(&["SUBSCRIBE", "a", "b", "a"]));
    assert_eq!(
        text(&sub.read_reply()),
        "*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n"
    );
    assert_eq!(
        text(&sub.read_reply()),
        "*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n"
    );
    assert_eq!(
        text(&sub.read_reply()),
        "*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:2\r\n"
    );
    assert_eq!(text(&publisher.cmd(&["PUBLISH", "a", "hello"])), ":1\r\n");
    assert_eq!(text(&publisher.cmd(&["PUBLISH", "nobody", "x"])), ":0\r\n");
    assert_eq!(
        text(&sub.read_reply()),
        "*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$5\r\nhello\r\n"
    );
    assert_eq!(
        text(&sub.cmd(&["UNSUBSCRIBE", "a"])),
        "*3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:1\r\n"
    );
    assert_eq!(text(&publisher.cmd(&["PUBLISH", "a", "gone"])), ":0\r\n");
    assert_eq!(
        text(&sub.cmd(&["UNSUBSCRIBE"])),
        "*3\r\n$11\r\nunsubscribe\r\n$1\r\nb\r\n:0\r\n"
    );
    // Out of subscribed mode: any command again.
    assert_eq!(text(&sub.cmd(&["PING"])), "+PONG\r\n");
}

#[test]
fn resp2_subscribed_mode_allows_only_the_pubsub_commands() {
    let s = TestServer::start();
    let mut sub = s.raw();
    sub.cmd(&["SUBSCRIBE", "c"]);
    assert_eq!(
        text(&sub.cmd(&["GET", "x"])),
        "-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n"
    );
    assert_eq!(
        text(&sub.cmd(&["CLIENT", "LIST"])),
        "-ERR Can't execute 'client|list': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n"
    );
    assert_eq!(text(&sub.cmd(&["PING"])), "*2\r\n$4\r\npong\r\n$0\r\n\r\n");
    assert_eq!(
        text(&sub.cmd(&["PING", "hi"])),
        "*2\r\n$4\r\npong\r\n$2\r\nhi\r\n"
    );
    assert_eq!(
        text(&sub.cmd(&["SSUBSCRIBE", "s"])),
        "*3\r\n$10\r\nssubscribe\r\n$1\r\ns\r\n:1\r\n"
    );
    assert_eq!(text(&sub.cmd(&["RESET"])), "+RESET\r\n");
    assert_eq!(text(&sub.cmd(&["GET", "x"])), "$-1\r\n");
    sub.cmd(&["PSUBSCRIBE", "p*"]);
    assert_eq!(text(&sub.cmd(&["QUIT"])), "+OK\r\n");
    assert!(sub.is_closed());
}

#[test]
fn resp3_pushes_and_any_command() {
    let s = TestServer::start();
    let mut sub = s.raw();
    sub.cmd(&["HELLO", "3"]);
    assert_eq!(
        text(&sub.cmd(&["SUBSCRIBE", "c"])),
        ">3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n"
    );
    assert_eq!(text(&sub.cmd(&["GET", "x"])), "_\r\n");
    assert_eq!(text(&sub.cmd(&["PING"])), "+PONG\r\n");
    // A message to oneself follows the PUBLISH reply, as Redis defers it.
    assert_eq!(text(&sub.cmd(&["PUBLISH", "c", "me"])), ":1\r\n");
    assert_eq!(
        text(&sub.read_reply()),
        ">3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$2\r\nme\r\n"
    );
    let mut other = s.raw();
    assert_eq!(text(&other.cmd(&["PUBLISH", "c", "you"])), ":1\r\n");
    assert_eq!(
        text(&sub.read_reply()),
        ">3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$3\r\nyou\r\n"
    );
    assert_eq!(
        text(&sub.cmd(&["UNSUBSCRIBE"])),
        ">3\r\n$11\r\nunsubscribe\r\n$1\r\nc\r\n:0\r\n"
    );
    assert_eq!(
        text(&sub.cmd(&["UNSUBSCRIBE"])),
        ">3\r\n$11\r\nunsubscribe\r\n_\r\n:0\r\n"
    );
}

#[test]
fn patterns_shard_channels_and_introspection() {
    let s = TestServer::start();
    let mut psub = s.raw();
    let mut ssub = s.raw();
    let mut c = s.raw();
    assert_eq!(
        text(&psub.cmd(&["PSUBSCRIBE", "news.*"])),
        "*3\r\n$10\r\npsubscribe\r\n$6\r\nnews.*\r\n:1\r\n"
    );
    ssub.cmd(&["SSUBSCRIBE", "orders"]);
    assert_eq!(text(&c.cmd(&["PUBLISH", "news.eu", "m"])), ":1\r\n");
    assert_eq!(
        text(&psub.read_reply()),
        "*4\r\n$8\r\npmessage\r\n$6\r\nnews.*\r\n$7\r\nnews.eu\r\n$1\r\nm\r\n"
    );
    // PUBLISH does not reach shard subscribers, nor SPUBLISH pattern ones.
    assert_eq!(text(&c.cmd(&["PUBLISH", "orders", "m"])), ":0\r\n");
    assert_eq!(text(&c.cmd(&["SPUBLISH", "news.eu", "m"])), ":0\r\n");
    assert_eq!(text(&c.cmd(&["SPUBLISH", "orders", "o1"])), ":1\r\n");
    assert_eq!(
        text(&ssub.read_reply()),
        "*3\r\n$8\r\nsmessage\r\n$6\r\norders\r\n$2\r\no1\r\n"
    );
    assert_eq!(text(&c.cmd(&["PUBSUB", "NUMPAT"])), ":1\r\n");
    assert_eq!(text(&c.cmd(&["PUBSUB", "CHANNELS"])), "*0\r\n");
    assert_eq!(
        text(&c.cmd(&["PUBSUB", "SHARDCHANNELS", "ord*"])),
        "*1\r\n$6\r\norders\r\n"
    );
    assert_eq!(
        text(&c.cmd(&["PUBSUB", "SHARDNUMSUB", "orders", "x"])),
        "*4\r\n$6\r\norders\r\n:1\r\n$1\r\nx\r\n:0\r\n"
    );
    assert_eq!(
        text(&c.cmd(&["PUBSUB", "CHANNELS", "a", "b"])),
        "-ERR unknown subcommand or wrong number of arguments for 'CHANNELS'. Try PUBSUB HELP.\r\n"
    );
    let help = c.cmd(&["PUBSUB", "HELP"]);
    assert!(
        text(&help).starts_with("*14\r\n+PUBSUB <subcommand>"),
        "{}",
        text(&help)
    );
    let info = c.cmd(&["INFO", "clients"]);
    assert_eq!(info_field(&info, "pubsub_clients").as_deref(), Some("2"));
    let info = c.cmd(&["INFO", "stats"]);
    assert_eq!(info_field(&info, "pubsub_channels").as_deref(), Some("0"));
    assert_eq!(info_field(&info, "pubsub_patterns").as_deref(), Some("1"));
    assert_eq!(
        info_field(&info, "pubsubshard_channels").as_deref(),
        Some("1")
    );
    let list = text(&c.cmd(&["CLIENT", "LIST"]));
    assert!(list.contains("flags=P db=0 sub=0 psub=1 ssub=0"), "{list}");
    assert!(list.contains("flags=P db=0 sub=0 psub=0 ssub=1"), "{list}");
}

#[test]
fn reset_disconnect_and_kill_leave_no_subscription() {
    let s = TestServer::start();
    let mut c = s.raw();
    let numsub = |c: &mut Raw| text(&c.cmd(&["PUBSUB", "NUMSUB", "ch"]));

    let mut a = s.raw();
    a.cmd(&["SUBSCRIBE", "ch"]);
    assert_eq!(numsub(&mut c), "*2\r\n$2\r\nch\r\n:1\r\n");
    assert_eq!(text(&a.cmd(&["RESET"])), "+RESET\r\n");
    assert_eq!(numsub(&mut c), "*2\r\n$2\r\nch\r\n:0\r\n");

    a.cmd(&["SUBSCRIBE", "ch"]);
    drop(a);
    let deadline = Instant::now() + Duration::from_secs(5);
    while numsub(&mut c) != "*2\r\n$2\r\nch\r\n:0\r\n" {
        assert!(
            Instant::now() < deadline,
            "a closed subscriber is still counted"
        );
        std::thread::sleep(Duration::from_millis(10));
    }

    let mut b = s.raw();
    b.cmd(&["HELLO", "3"]);
    b.cmd(&["PSUBSCRIBE", "*"]);
    let id = text(&b.cmd(&["CLIENT", "ID"]));
    let id = id.trim_start_matches(':').trim();
    assert_eq!(text(&c.cmd(&["CLIENT", "KILL", "ID", id])), ":1\r\n");
    // CLIENT KILL takes effect at once for every other client, as in Redis.
    assert_eq!(text(&c.cmd(&["PUBSUB", "NUMPAT"])), ":0\r\n");
    assert_eq!(text(&c.cmd(&["PUBLISH", "x", "y"])), ":0\r\n");
    let info = c.cmd(&["INFO", "stats"]);
    assert_eq!(info_field(&info, "pubsub_patterns").as_deref(), Some("0"));
}

#[test]
fn slow_subscriber_is_closed_by_the_pubsub_limit() {
    let s = TestServer::start_with(&["--client-output-buffer-limit", "pubsub 1mb 0 0"]);
    let mut slow = s.raw();
    slow.cmd(&["SUBSCRIBE", "firehose"]);
    let mut fast = s.raw();
    fast.cmd(&["SUBSCRIBE", "other"]);
    let mut publisher = s.raw();
    let payload = "x".repeat(64 * 1024);
    // The slow subscriber never reads: its kernel buffers fill, then 1 MB more is held,
    // then it is closed and PUBLISH stops counting it. Nothing here blocks the publisher.
    let started = Instant::now();
    let mut closed_after = None;
    for i in 0..2000 {
        let n = publisher.cmd(&["PUBLISH", "firehose", &payload]);
        if n == b":0\r\n" {
            closed_after = Some(i);
            break;
        }
        assert_eq!(text(&n), ":1\r\n");
    }
    let closed_after = closed_after.expect("the slow subscriber was never closed");
    assert!(closed_after > 0);
    assert!(started.elapsed() < Duration::from_secs(30));
    // The others are fine.
    assert_eq!(text(&publisher.cmd(&["PUBLISH", "other", "hi"])), ":1\r\n");
    assert_eq!(
        text(&fast.read_reply()),
        "*3\r\n$7\r\nmessage\r\n$5\r\nother\r\n$2\r\nhi\r\n"
    );
    assert_eq!(text(&publisher.cmd(&["PING"])), "+PONG\r\n");
    assert_eq!(
        text(&publisher.cmd(&["PUBSUB", "NUMSUB", "firehose"])),
        "*2\r\n$8\r\nfirehose\r\n:0\r\n"
    );
    // What the slow client gets is what was written before the close, then EOF.
    let mut rest = Vec::new();
    slow.stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let _ = slow.reader.read_to_end(&mut rest);
    assert!(
        rest.len() < (closed_after + 2) * (64 * 1024 + 64),
        "read {} bytes",
        rest.len()
    );
}

#[test]
fn subscribers_are_never_idle_and_are_their_own_client_type() {
    let s = TestServer::start_with(&["--timeout", "1"]);
    let mut sub = s.raw();
    sub.cmd(&["SUBSCRIBE", "tick"]);
    let mut plain = s.raw();
    let list = text(&plain.cmd(&["CLIENT", "LIST", "TYPE", "pubsub"]));
    assert_eq!(list.matches("id=").count(), 1, "{list}");
    assert!(list.contains("sub=1"), "{list}");
    let list = text(&plain.cmd(&["CLIENT", "LIST", "TYPE", "normal"]));
    assert_eq!(list.matches("id=").count(), 1, "{list}");
    assert!(list.contains("cmd=client|list"), "{list}");
    // `timeout` closes idle normal clients, never subscribers (as Redis).
    std::thread::sleep(Duration::from_millis(2500));
    assert!(plain.is_closed());
    let mut publisher = s.raw();
    assert_eq!(text(&publisher.cmd(&["PUBLISH", "tick", "1"])), ":1\r\n");
    assert_eq!(
        text(&sub.read_reply()),
        "*3\r\n$7\r\nmessage\r\n$4\r\ntick\r\n$1\r\n1\r\n"
    );
    assert_eq!(
        text(&publisher.cmd(&["CLIENT", "KILL", "TYPE", "pubsub"])),
        ":1\r\n"
    );
    assert!(sub.is_closed());
}

#[test]
fn a_blocked_resp3_subscriber_gets_its_messages_while_blocked() {
    let s = TestServer::start();
    let mut sub = s.raw();
    sub.cmd(&["HELLO", "3"]);
    sub.cmd(&["SUBSCRIBE", "c"]);
    sub.send(&common::encode(&[
        "XREAD", "BLOCK", "0", "STREAMS", "s", "$",
    ]));
    s.wait_blocked(1);
    let mut other = s.raw();
    assert_eq!(text(&other.cmd(&["PUBLISH", "c", "during"])), ":1\r\n");
    assert_eq!(
        text(&sub.read_reply()),
        ">3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$6\r\nduring\r\n"
    );
    other.cmd(&["XADD", "s", "1-1", "f", "v"]);
    assert!(text(&sub.read_reply()).starts_with("%1\r\n$1\r\ns\r\n"));
}

#[test]
fn slow_subscriber_over_the_soft_limit_too_long_is_closed() {
    let s = TestServer::start_with(&["--client-output-buffer-limit", "pubsub 0 256kb 1"]);
    let mut slow = s.raw();
    slow.cmd(&["SUBSCRIBE", "firehose"]);
    let mut publisher = s.raw();
    let payload = "x".repeat(16 * 1024);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut sent = 0usize;
    // With no hard limit, only the soft limit's second ends it. The kernel's socket
    // buffers (several MB on loopback) fill before the server's own output buffer grows,
    // so the publishing goes on at ~3 MB/s until it does, then for the soft second.
    loop {
        let n = publisher.cmd(&["PUBLISH", "firehose", &payload]);
        if n == b":0\r\n" {
            break;
        }
        sent += 1;
        assert!(
            Instant::now() < deadline,
            "still subscribed after {sent} messages"
        );
        if sent > 512 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    assert_eq!(text(&publisher.cmd(&["PING"])), "+PONG\r\n");
    assert_eq!(
        text(&publisher.cmd(&["PUBSUB", "NUMSUB", "firehose"])),
        "*2\r\n$8\r\nfirehose\r\n:0\r\n"
    );
}
