//! The Prometheus endpoint (`metrics-port`, issue #17 item 4) against a real server: scraped
//! over HTTP, parsed by an independent text-format parser (the `prometheus-parse` crate),
//! its values checked as XADD / XREADGROUP / XACK move them; the per-stream series bounded
//! by `metrics-max-streams` / `metrics-streams`; bad HTTP answered or dropped while the
//! data port goes on serving.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{free_port, TestServer};
use prometheus_parse::{Sample, Scrape, Value};

/// A server with the endpoint on a port of its own; the metrics port.
fn start(extra: &[&str]) -> (TestServer, u16) {
    for _ in 0..5 {
        let port = free_port();
        let p = port.to_string();
        let mut args = vec!["--metrics-port", &p, "--appendfsync", "always"];
        args.extend_from_slice(extra);
        if let Some(s) = TestServer::try_start_with(&args) {
            return (s, port);
        }
    }
    panic!("rill with a metrics port did not start");
}

/// Sends `request` as is and returns everything the endpoint answered until it closed.
fn http(port: u16, request: &[u8]) -> String {
    let mut c = TcpStream::connect(("127.0.0.1", port)).expect("connect to metrics");
    c.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    c.write_all(request).expect("write request");
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// `GET /metrics`: the body, after checking the status and content type.
fn scrape_text(port: u16) -> String {
    let resp = http(
        port,
        b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    let (head, body) = resp.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/openmetrics-text"),
        "{head}"
    );
    assert!(
        body.ends_with("# EOF\n"),
        "body does not end the exposition"
    );
    body.to_string()
}

fn scrape(port: u16) -> Scrape {
    let text = scrape_text(port);
    Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("parse exposition")
}

fn number(v: &Value) -> f64 {
    match v {
        Value::Counter(x) | Value::Gauge(x) | Value::Untyped(x) => *x,
        other => panic!("not a number: {other:?}"),
    }
}

fn find<'a>(s: &'a Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<&'a Sample> {
    s.samples
        .iter()
        .find(|x| x.metric == metric && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
}

fn value(s: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    number(
        &find(s, metric, labels)
            .unwrap_or_else(|| panic!("no {metric} {labels:?}"))
            .value,
    )
}

/// A histogram's count (its `+Inf` bucket).
fn histogram_count(s: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    match &find(s, metric, labels)
        .unwrap_or_else(|| panic!("no histogram {metric} {labels:?}"))
        .value
    {
        Value::Histogram(b) => b
            .iter()
            .find(|b| b.less_than.is_infinite())
            .map(|b| b.count)
            .expect("+Inf bucket"),
        other => panic!("{metric} is not a histogram: {other:?}"),
    }
}

#[test]
fn series_follow_xadd_xreadgroup_and_xack() {
    let (s, mport) = start(&[]);
    let mut c = s.conn();
    let before = scrape(mport);
    assert_eq!(value(&before, "rill_loading", &[]), 0.0);
    assert_eq!(value(&before, "rill_streams", &[]), 0.0);
    let fsyncs_before = histogram_count(&before, "rill_log_fsync_duration_seconds", &[]);

    let mut ids = Vec::new();
    for i in 0..5 {
        let id: String = redis::cmd("XADD")
            .arg("orders")
            .arg("*")
            .arg("n")
            .arg(i)
            .query(&mut c)
            .expect("XADD");
        ids.push(id);
    }
    let _: () = redis::cmd("XGROUP")
        .arg(&["CREATE", "orders", "billing", "0"])
        .query(&mut c)
        .expect("XGROUP CREATE");
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg(&[
            "GROUP", "billing", "alice", "COUNT", "3", "STREAMS", "orders", ">",
        ])
        .query(&mut c)
        .expect("XREADGROUP");

    let m = scrape(mport);
    let stream = [("db", "0"), ("stream", "orders")];
    let group = [("db", "0"), ("stream", "orders"), ("group", "billing")];
    let alice = [
        ("db", "0"),
        ("stream", "orders"),
        ("group", "billing"),
        ("consumer", "alice"),
    ];
    assert_eq!(value(&m, "rill_streams", &[]), 1.0);
    assert_eq!(value(&m, "rill_stream_length", &stream), 5.0);
    assert!(value(&m, "rill_stream_bytes", &stream) > 0.0);
    assert_eq!(value(&m, "rill_group_pending", &group), 3.0);
    assert_eq!(value(&m, "rill_group_lag", &group), 2.0);
    assert!(value(&m, "rill_group_oldest_pending_age_seconds", &group) >= 0.0);
    assert_eq!(value(&m, "rill_consumer_pending", &alice), 3.0);
    assert!(value(&m, "rill_consumer_idle_seconds", &alice) < 60.0);
    // Per-command counts and latency histograms (counters carry OpenMetrics' _total).
    assert_eq!(value(&m, "rill_commands_total", &[("cmd", "xadd")]), 5.0);
    assert_eq!(
        histogram_count(&m, "rill_command_duration_seconds", &[("cmd", "xadd")]),
        5.0
    );
    assert_eq!(
        value(
            &m,
            "rill_command_duration_seconds_count",
            &[("cmd", "xreadgroup")]
        ),
        1.0
    );
    // Every XADD was fsynced under appendfsync always, each in a group commit.
    assert!(
        histogram_count(&m, "rill_log_fsync_duration_seconds", &[]) >= fsyncs_before + 5.0,
        "fsync histogram did not move"
    );
    assert!(histogram_count(&m, "rill_log_commit_batch_records", &[]) >= 5.0);
    assert!(value(&m, "rill_connected_clients", &[]) >= 1.0);
    assert_eq!(value(&m, "rill_blocked_clients", &[]), 0.0);

    // XACK two of alice's three: pending follows.
    let acked: i64 = redis::cmd("XACK")
        .arg("orders")
        .arg("billing")
        .arg(&ids[0])
        .arg(&ids[1])
        .query(&mut c)
        .expect("XACK");
    assert_eq!(acked, 2);
    let m = scrape(mport);
    assert_eq!(value(&m, "rill_group_pending", &group), 1.0);
    assert_eq!(value(&m, "rill_consumer_pending", &alice), 1.0);
    assert_eq!(value(&m, "rill_commands_total", &[("cmd", "xack")]), 1.0);

    // A client blocked in XREADGROUP (of a group with nothing left to deliver) shows as
    // blocked.
    let _: () = redis::cmd("XGROUP")
        .arg(&["CREATE", "orders", "audit", "$"])
        .query(&mut c)
        .expect("XGROUP CREATE");
    let port = s.port;
    let blocker = std::thread::spawn(move || {
        let mut b = common::Raw::connect(port);
        b.cmd(&[
            "XREADGROUP",
            "GROUP",
            "audit",
            "bob",
            "BLOCK",
            "10000",
            "STREAMS",
            "orders",
            ">",
        ])
    });
    s.wait_blocked(1);
    let m = scrape(mport);
    assert_eq!(value(&m, "rill_blocked_clients", &[]), 1.0);
    let _: String = redis::cmd("XADD")
        .arg(&["orders", "*", "n", "wake"])
        .query(&mut c)
        .expect("XADD");
    let reply = blocker.join().expect("blocked reader");
    assert!(
        reply.starts_with(b"*1\r\n"),
        "{:?}",
        String::from_utf8_lossy(&reply)
    );
    let m = scrape(mport);
    assert_eq!(value(&m, "rill_blocked_clients", &[]), 0.0);
    assert_eq!(value(&m, "rill_stream_length", &stream), 6.0);
    let audit = [("db", "0"), ("stream", "orders"), ("group", "audit")];
    assert_eq!(value(&m, "rill_group_pending", &audit), 1.0);
    assert_eq!(value(&m, "rill_group_lag", &audit), 0.0);
    assert_eq!(value(&m, "rill_group_lag", &group), 3.0);
}

#[test]
fn per_stream_series_are_bounded() {
    let (s, mport) = start(&["--metrics-max-streams", "3", "--metrics-streams", "keep-*"]);
    let mut c = s.conn();
    for n in 1..=10 {
        for i in 0..n {
            let _: String = redis::cmd("XADD")
                .arg(format!("s{n}"))
                .arg("*")
                .arg("i")
                .arg(i)
                .query(&mut c)
                .expect("XADD");
        }
        // Each with a group and a consumer, whose series must be bounded too.
        let _: () = redis::cmd("XGROUP")
            .arg(&["CREATE", &format!("s{n}"), "g", "0"])
            .query(&mut c)
            .expect("XGROUP");
    }
    let _: String = redis::cmd("XADD")
        .arg(&["keep-me", "*", "i", "0"])
        .query(&mut c)
        .expect("XADD");
    // Five consumers in s10's group, three of them holding 3, 2 and 1 entries: only three
    // consumer series in all, the most pending first.
    for (consumer, count) in [("c1", "3"), ("c2", "2"), ("c3", "1")] {
        let _: redis::Value = redis::cmd("XREADGROUP")
            .arg(&[
                "GROUP", "g", consumer, "COUNT", count, "STREAMS", "s10", ">",
            ])
            .query(&mut c)
            .expect("XREADGROUP");
    }
    // And one in s9's group with 1 pending: the bound is over all groups (four consumers
    // would pass a per-group bound of 3); the tie with c3 goes to the longer stream, s10.
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg(&["GROUP", "g", "d1", "COUNT", "1", "STREAMS", "s9", ">"])
        .query(&mut c)
        .expect("XREADGROUP");
    for idle in ["c4", "c5"] {
        let _: i64 = redis::cmd("XGROUP")
            .arg(&["CREATECONSUMER", "s10", "g", idle])
            .query(&mut c)
            .expect("XGROUP CREATECONSUMER");
    }

    let m = scrape(mport);
    assert_eq!(value(&m, "rill_streams", &[]), 11.0);
    assert_eq!(value(&m, "rill_metrics_streams_described", &[]), 3.0);
    let described: Vec<&str> = m
        .samples
        .iter()
        .filter(|x| x.metric == "rill_stream_length")
        .filter_map(|x| x.labels.get("stream"))
        .collect();
    assert_eq!(described.len(), 3, "{described:?}");
    // The allow-listed stream first, then the longest others.
    for want in ["keep-me", "s10", "s9"] {
        assert!(
            described.contains(&want),
            "{want} missing from {described:?}"
        );
    }
    let groups = m
        .samples
        .iter()
        .filter(|x| x.metric == "rill_group_pending")
        .count();
    assert_eq!(groups, 2, "only the described streams' groups");
    let mut consumers: Vec<&str> = m
        .samples
        .iter()
        .filter(|x| x.metric == "rill_consumer_pending")
        .filter_map(|x| x.labels.get("consumer"))
        .collect();
    consumers.sort_unstable();
    assert_eq!(consumers, ["c1", "c2", "c3"]);
    assert_eq!(
        value(
            &m,
            "rill_consumer_pending",
            &[("stream", "s10"), ("consumer", "c1")]
        ),
        3.0
    );

    // Changed at run time: no per-stream series at all.
    let _: () = redis::cmd("CONFIG")
        .arg(&["SET", "metrics-max-streams", "0"])
        .query(&mut c)
        .expect("CONFIG SET");
    let m = scrape(mport);
    assert!(find(&m, "rill_stream_length", &[]).is_none());
    assert_eq!(value(&m, "rill_metrics_streams_described", &[]), 0.0);
    assert_eq!(value(&m, "rill_streams", &[]), 11.0);
}

#[test]
fn label_values_are_escaped() {
    let (s, mport) = start(&[]);
    let mut raw = s.raw();
    let name = "a\"b\\c\nd";
    assert!(raw.cmd(&["XADD", name, "*", "f", "v"]).starts_with(b"$"));
    let text = scrape_text(mport);
    assert!(
        text.contains("rill_stream_length{db=\"0\",stream=\"a\\\"b\\\\c\\nd\"} 1\n"),
        "{text}"
    );
    // No sample line is broken by the name's newline.
    for line in text.lines() {
        assert!(
            line.starts_with('#') || line.starts_with("rill_"),
            "stray line {line:?}"
        );
    }
}

#[test]
fn bad_http_is_refused_and_the_server_goes_on() {
    let (s, mport) = start(&[]);
    let mut raw = s.raw();
    let not_found = http(
        mport,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(not_found.starts_with("HTTP/1.1 404"), "{not_found}");
    let post = http(
        mport,
        b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
    );
    assert!(post.starts_with("HTTP/1.1 405"), "{post}");
    assert!(
        post.to_ascii_lowercase().contains("allow: get, head"),
        "{post}"
    );
    // Not HTTP at all: a 400 or a closed connection, never a hang.
    let garbage = http(mport, b"\x00\x01\x02 hello\r\n\r\n");
    assert!(
        garbage.is_empty() || garbage.starts_with("HTTP/1.1 400"),
        "{garbage}"
    );
    // RESP on the metrics port.
    let resp = http(mport, b"*1\r\n$4\r\nPING\r\n\r\n");
    assert!(
        resp.is_empty() || resp.starts_with("HTTP/1.1 400"),
        "{resp}"
    );
    // An oversized header: refused, not buffered without bound.
    let mut huge = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 1 << 20));
    huge.extend_from_slice(b"\r\n\r\n");
    let mut c = TcpStream::connect(("127.0.0.1", mport)).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let _ = c.write_all(&huge); // the server may close before it has all of it
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    let out = String::from_utf8_lossy(&out);
    assert!(out.is_empty() || out.starts_with("HTTP/1.1 431"), "{out}");
    // Idle connections that never send a request do not stop a scrape.
    let idle: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(("127.0.0.1", mport)).expect("connect"))
        .collect();
    let m = scrape(mport);
    assert_eq!(value(&m, "rill_loading", &[]), 0.0);
    drop(idle);
    // The data port never noticed.
    assert_eq!(raw.cmd(&["PING"]), b"+PONG\r\n");
    // HEAD answers the headers only.
    let head = http(
        mport,
        b"HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.ends_with("\r\n\r\n"), "{head}");
}

#[test]
fn metrics_port_is_off_by_default_and_declared() {
    let s = TestServer::start();
    let mut raw = s.raw();
    let got = raw.cmd(&["CONFIG", "GET", "metrics-*"]);
    let text = String::from_utf8_lossy(&got);
    for name in [
        "metrics-port",
        "metrics-bind",
        "metrics-max-streams",
        "metrics-streams",
    ] {
        assert!(text.contains(name), "{name} not in {text}");
    }
    assert!(
        text.contains("$12\r\nmetrics-port\r\n$1\r\n0\r\n"),
        "{text}"
    );
    // metrics-port cannot change at run time.
    let set = raw.cmd(&["CONFIG", "SET", "metrics-port", "9121"]);
    assert!(
        set.starts_with(b"-ERR"),
        "{:?}",
        String::from_utf8_lossy(&set)
    );
}

/// The Grafana dashboard (packaging/grafana/rill.json) queries only series the endpoint
/// exports: every `rill_…` name in its expressions is a sample name of a scrape.
#[test]
fn dashboard_uses_only_exported_series() {
    let (s, mport) = start(&[]);
    let mut raw = s.raw();
    raw.cmd(&["XADD", "orders", "*", "n", "1"]);
    raw.cmd(&["XGROUP", "CREATE", "orders", "billing", "0"]);
    raw.cmd(&[
        "XREADGROUP",
        "GROUP",
        "billing",
        "alice",
        "STREAMS",
        "orders",
        ">",
    ]);
    let text = scrape_text(mport);
    let dashboard = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/packaging/grafana/rill.json"
    ))
    .expect("packaging/grafana/rill.json");
    let mut names: Vec<&str> = dashboard
        .match_indices("rill_")
        .map(|(at, _)| {
            let rest = &dashboard[at..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .collect();
    names.sort_unstable();
    names.dedup();
    assert!(names.len() > 20, "{names:?}");
    for name in names {
        let exported = text.lines().any(|l| {
            l.strip_prefix(name)
                .is_some_and(|r| r.starts_with([' ', '{']))
        });
        assert!(
            exported,
            "the dashboard queries {name}, which is not exported"
        );
    }
}

/// A checkpoint (forced by BGREWRITEAOF, as Redis's AOF rewrite) is counted and timed.
#[test]
fn checkpoints_are_counted() {
    let (s, mport) = start(&[]);
    let mut raw = s.raw();
    let m = scrape(mport);
    let before = value(&m, "rill_checkpoints_total", &[]);
    assert_eq!(value(&m, "rill_compaction_entries_todo", &[]), 0.0);
    raw.cmd(&["XADD", "orders", "*", "n", "1"]);
    let reply = raw.cmd(&["BGREWRITEAOF"]);
    assert!(
        reply.starts_with(b"+"),
        "{:?}",
        String::from_utf8_lossy(&reply)
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let m = scrape(mport);
        if value(&m, "rill_checkpoints_total", &[]) > before {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock")
                .as_secs_f64();
            let at = value(&m, "rill_last_checkpoint_timestamp_seconds", &[]);
            assert!((now - at).abs() < 60.0, "checkpoint at {at}, now {now}");
            assert!(value(&m, "rill_last_checkpoint_duration_seconds", &[]) >= 0.0);
            assert_eq!(value(&m, "rill_checkpoint_in_progress", &[]), 0.0);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint counted"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Broker policies (issue #16) show in the metrics: what the retention sweep trimmed and
/// what was dead-lettered, as INFO policies counts them.
#[test]
fn broker_policy_sweeps_are_counted() {
    let (s, mport) = start(&["--stream-retention-interval", "50"]);
    let mut raw = s.raw();
    for i in 1..=5 {
        raw.cmd(&["XADD", "ret", &format!("{i}-1"), "n", "x"]);
    }
    assert_eq!(
        raw.cmd(&["RILL.POLICY", "SET", "ret", "MAXLEN", "2"]),
        b"+OK\r\n"
    );
    // A group whose poison entry is XNACKed FATAL under a dead-letter policy.
    raw.cmd(&["XADD", "jobs", "1-1", "n", "poison"]);
    assert_eq!(raw.cmd(&["XGROUP", "CREATE", "jobs", "g", "0"]), b"+OK\r\n");
    assert_eq!(
        raw.cmd(&["RILL.POLICY", "GROUP", "jobs", "g", "MAXDELIVER", "1"]),
        b"+OK\r\n"
    );
    assert!(raw
        .cmd(&["XREADGROUP", "GROUP", "g", "c", "STREAMS", "jobs", ">"])
        .starts_with(b"*1\r\n"));
    assert_eq!(
        raw.cmd(&["XNACK", "jobs", "g", "FATAL", "IDS", "1", "1-1"]),
        b":1\r\n"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let m = scrape(mport);
        let trimmed = value(&m, "rill_retention_trimmed_entries_total", &[]);
        let dead = value(&m, "rill_dead_lettered_entries_total", &[]);
        if trimmed >= 3.0 && dead >= 1.0 {
            assert!(value(&m, "rill_retention_sweeps_total", &[]) >= 1.0);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "trimmed {trimmed}, dead-lettered {dead}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(raw.cmd(&["XLEN", "ret"]), b":2\r\n");
    assert_eq!(raw.cmd(&["XLEN", "jobs:dlq"]), b":1\r\n");
}
