//! Pub/Sub fan-out (issue #15): PUBLISH of fixed-size messages to N subscribers of one channel; messages
//! delivered per second and publish→delivery latency.
//!
//! Subscribers are one connection each, SUBSCRIBEd before publishing starts (the scenario waits until PUBSUB
//! NUMSUB counts all of them). Publishers are closed loop: each writes a window of `pipeline` PUBLISHes with one
//! syscall and reads their replies before the next window, so what is in flight stays bounded and a server that
//! falls behind its subscribers shows it as latency. Every message is `size` bytes and starts with its send time
//! (nanoseconds since a base `Instant` shared by the process, 20 digits); each PUBLISH must answer the number of
//! subscribers. The rate counts deliveries (messages × subscribers) from the first publish to the last delivery.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::io::AsyncWriteExt;

use crate::resp::{encode, Conn, Reply, RespError};

#[derive(clap::Args)]
pub struct FanoutArgs {
    /// The channel.
    #[arg(long, default_value = "fanout")]
    channel: String,
    /// Subscriber connections.
    #[arg(long, default_value_t = 10)]
    subscribers: usize,
    /// Messages published in total (each delivered to every subscriber).
    #[arg(long, default_value_t = 100_000)]
    messages: u64,
    /// Publisher connections.
    #[arg(long, default_value_t = 4)]
    publishers: u64,
    /// PUBLISHes in flight per publisher.
    #[arg(long, default_value_t = 16)]
    pipeline: u64,
    /// Bytes per message.
    #[arg(long, default_value_t = 100)]
    size: usize,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 300)]
    max_seconds: u64,
    /// Print to stderr (at most 40 lines per subscriber) each delivery slower than this
    /// many milliseconds: when it arrived (ms from the start) and its latency, to see
    /// whether slow deliveries come in one stall or spread out.
    #[arg(long)]
    trace_slower_ms: Option<f64>,
}

const STAMP_DIGITS: usize = 20;

fn new_histogram() -> Result<Histogram<u64>, RespError> {
    // Microseconds from 1 µs to 100 s at 3 significant digits.
    Histogram::new_with_bounds(1, 100_000_000, 3)
        .map_err(|e| RespError::Unexpected(format!("histogram: {e}")))
}

/// Reports `fanout subscribers=… delivered=… rate=… p50_ms=… p99_ms=… p999_ms=… max_ms=… publish_rate=…`.
pub async fn run(addr: &str, args: FanoutArgs) -> Result<String, RespError> {
    if args.size < STAMP_DIGITS {
        return Err(RespError::Unexpected(format!(
            "--size must be at least {STAMP_DIGITS} (the send time)"
        )));
    }
    let base = Instant::now();
    let channel = Arc::new(args.channel.clone().into_bytes());
    let mut subscribers = Vec::with_capacity(args.subscribers);
    for _ in 0..args.subscribers.max(1) {
        let mut conn = Conn::connect(addr).await?;
        conn.call(&[b"SUBSCRIBE", &channel]).await?.ok()?;
        let expected = args.messages;
        let channel = Arc::clone(&channel);
        let trace_us = args.trace_slower_ms.map(|ms| (ms * 1000.0) as u64);
        subscribers.push(tokio::spawn(async move {
            let mut traced = 0;
            // Held whole: a dropped write half shuts the socket's sending side, and servers close a
            // client that does that.
            let conn = &mut conn;
            let mut hist = new_histogram()?;
            for _ in 0..expected {
                let reply = conn.reader.next().await?;
                let now_ns = base.elapsed().as_nanos() as u64;
                let sent_ns = sent_time(reply, &channel)?;
                let us = (now_ns.saturating_sub(sent_ns) / 1_000).max(1);
                hist.saturating_record(us);
                if trace_us.is_some_and(|t| us > t) && traced < 4000 {
                    traced += 1;
                    if traced % 100 == 1 {
                        eprintln!(
                            "slow delivery at {:.3} ms: {:.3} ms",
                            now_ns as f64 / 1e6,
                            us as f64 / 1e3
                        );
                    }
                }
            }
            Ok::<(Histogram<u64>, Instant), RespError>((hist, Instant::now()))
        }));
    }
    // Every subscription registered before the first publish.
    let mut admin = Conn::connect(addr).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let reply = admin.call(&[b"PUBSUB", b"NUMSUB", &channel]).await?;
        if let Reply::Array(Some(items)) = &reply {
            if items.get(1) == Some(&Reply::Int(args.subscribers.max(1) as i64)) {
                break;
            }
        }
        if Instant::now() > deadline {
            return Err(RespError::Unexpected(format!(
                "subscribers not all registered: {reply:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let started = Instant::now();
    let per_publisher = args.messages / args.publishers.max(1);
    let mut publishers = Vec::new();
    for n in 0..args.publishers.max(1) {
        let mut conn = Conn::connect(addr).await?;
        // The last publisher takes the remainder.
        let count = if n + 1 == args.publishers.max(1) {
            args.messages - per_publisher * n
        } else {
            per_publisher
        };
        let (channel, size, window, receivers) = (
            Arc::clone(&channel),
            args.size,
            args.pipeline.max(1),
            args.subscribers.max(1) as i64,
        );
        publishers.push(tokio::spawn(async move {
            let mut out = Vec::new();
            let mut message = vec![b'x'; size];
            let mut sent = 0u64;
            while sent < count {
                let batch = window.min(count - sent);
                out.clear();
                let stamp = format!(
                    "{:0width$}",
                    base.elapsed().as_nanos() as u64,
                    width = STAMP_DIGITS
                );
                message[..STAMP_DIGITS].copy_from_slice(stamp.as_bytes());
                for _ in 0..batch {
                    encode(&mut out, &[b"PUBLISH", &channel, &message]);
                }
                conn.writer.write_all(&out).await?;
                for _ in 0..batch {
                    match conn.reader.next().await? {
                        Reply::Int(n) if n == receivers => {}
                        other => {
                            return Err(RespError::Unexpected(format!(
                                "PUBLISH reached {other:?} subscribers, not {receivers}"
                            )))
                        }
                    }
                }
                sent += batch;
            }
            Ok::<(), RespError>(())
        }));
    }
    let limit = Duration::from_secs(args.max_seconds);
    for publisher in publishers {
        tokio::time::timeout(limit, publisher)
            .await
            .map_err(|_| RespError::Unexpected("publishing timed out".into()))?
            .map_err(|e| RespError::Unexpected(format!("publisher died: {e}")))??;
    }
    let publish_seconds = started.elapsed().as_secs_f64();
    let mut hist = new_histogram()?;
    let mut last = started;
    for subscriber in subscribers {
        let (part, done) = tokio::time::timeout(limit, subscriber)
            .await
            .map_err(|_| RespError::Unexpected("delivery timed out".into()))?
            .map_err(|e| RespError::Unexpected(format!("subscriber died: {e}")))??;
        hist.add(&part)
            .map_err(|e| RespError::Unexpected(format!("histogram merge: {e}")))?;
        last = last.max(done);
    }
    let delivered = hist.len();
    let seconds = last.duration_since(started).as_secs_f64();
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1_000.0;
    Ok(format!(
        "fanout subscribers={} delivered={} rate={:.0} p50_ms={:.3} p99_ms={:.3} p999_ms={:.3} max_ms={:.3} publish_rate={:.0}",
        args.subscribers.max(1),
        delivered,
        delivered as f64 / seconds,
        ms(0.5),
        ms(0.99),
        ms(0.999),
        hist.max() as f64 / 1_000.0,
        args.messages as f64 / publish_seconds,
    ))
}

/// The send time at the start of a `message` delivery on `channel`.
fn sent_time(reply: Reply, channel: &[u8]) -> Result<u64, RespError> {
    let Reply::Array(Some(items)) = reply else {
        return Err(RespError::Unexpected(format!("not a delivery: {reply:?}")));
    };
    match items.as_slice() {
        [Reply::Bulk(Some(kind)), Reply::Bulk(Some(ch)), Reply::Bulk(Some(payload))]
            if kind == b"message" && ch == channel =>
        {
            payload
                .get(..STAMP_DIGITS)
                .and_then(|d| std::str::from_utf8(d).ok())
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| RespError::Unexpected("a message without its send time".into()))
        }
        _ => Err(RespError::Unexpected(format!("not a delivery: {items:?}"))),
    }
}
