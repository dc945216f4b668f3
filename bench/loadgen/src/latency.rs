//! Publish→delivery latency at a fixed rate, with consumers blocked in XREADGROUP.
//!
//! Open loop: each publisher connection writes its XADDs on schedule and a separate task reads the replies, so a
//! slow reply (an fsync) never delays the next publish and queueing shows up in the latency instead of being
//! hidden by a slower send rate. Each entry carries its send time (nanoseconds since a base `Instant` shared by
//! the whole process), and consumers record `receive time - send time` in an HDR histogram. Samples from the first
//! `warmup` seconds are discarded.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::io::AsyncWriteExt;

use crate::drain::{ack, entries_of};
use crate::resp::{encode, Conn, Reply, RespError};

#[derive(clap::Args)]
pub struct LatencyArgs {
    /// Stream key; created with the group if missing.
    #[arg(long, default_value = "latency")]
    key: String,
    /// Group, created at `$`.
    #[arg(long, default_value = "lat")]
    group: String,
    /// Total messages per second over all publishers.
    #[arg(long, default_value_t = 10_000)]
    rate: u64,
    /// Seconds of publishing, warm-up included.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Seconds at the start whose samples are discarded.
    #[arg(long, default_value_t = 1)]
    warmup: u64,
    /// Publisher connections.
    #[arg(long, default_value_t = 10)]
    publishers: u64,
    /// Consumers, one connection each, blocked in XREADGROUP … BLOCK.
    #[arg(long, default_value_t = 4)]
    consumers: usize,
    /// Bytes of padding per message, on top of the timestamp field.
    #[arg(long, default_value_t = 100)]
    size: usize,
}

fn new_histogram() -> Result<Histogram<u64>, RespError> {
    // Microseconds from 1 µs to 100 s at 3 significant digits.
    Histogram::new_with_bounds(1, 100_000_000, 3)
        .map_err(|e| RespError::Unexpected(format!("histogram: {e}")))
}

/// Reports `latency received=… p50_ms=… p99_ms=… p999_ms=… max_ms=… publish_rate=…`.
pub async fn run(addr: &str, args: LatencyArgs) -> Result<String, RespError> {
    let mut admin = Conn::connect(addr).await?;
    admin
        .call(&[
            b"XGROUP",
            b"CREATE",
            args.key.as_bytes(),
            args.group.as_bytes(),
            b"$",
            b"MKSTREAM",
        ])
        .await?
        .ok()?;

    let base = Instant::now();
    let warmup_ns = Duration::from_secs(args.warmup).as_nanos() as u64;
    let published = Arc::new(AtomicU64::new(0));
    let received = Arc::new(AtomicU64::new(0));
    let publishing_done = Arc::new(AtomicBool::new(false));

    let mut consumers = Vec::with_capacity(args.consumers);
    for n in 0..args.consumers.max(1) {
        let mut conn = Conn::connect(addr).await?;
        let (key, group, consumer) = (args.key.clone(), args.group.clone(), format!("c{n}"));
        let (published, received, done) = (
            Arc::clone(&published),
            Arc::clone(&received),
            Arc::clone(&publishing_done),
        );
        consumers.push(tokio::spawn(async move {
            let mut hist = new_histogram()?;
            loop {
                if done.load(Ordering::Acquire)
                    && received.load(Ordering::Acquire) >= published.load(Ordering::Acquire)
                {
                    return Ok::<Histogram<u64>, RespError>(hist);
                }
                let reply = conn
                    .call(&[
                        b"XREADGROUP",
                        b"GROUP",
                        group.as_bytes(),
                        consumer.as_bytes(),
                        b"COUNT",
                        b"100",
                        b"BLOCK",
                        b"100",
                        b"STREAMS",
                        key.as_bytes(),
                        b">",
                    ])
                    .await?;
                let now_ns = base.elapsed().as_nanos() as u64;
                let entries = entries_of(reply)?;
                if entries.is_empty() {
                    continue;
                }
                for entry in &entries {
                    let sent_ns = sent_time(&entry.fields)?;
                    if sent_ns >= warmup_ns {
                        let micros = now_ns.saturating_sub(sent_ns) / 1_000;
                        hist.saturating_record(micros.max(1));
                    }
                }
                received.fetch_add(entries.len() as u64, Ordering::AcqRel);
                let ids: Vec<Vec<u8>> = entries.into_iter().map(|e| e.id).collect();
                ack(&mut conn, &key, &group, &ids).await?;
            }
        }));
    }

    // Publishers: each sends rate/publishers messages per second on its own schedule.
    let per_publisher = (args.rate / args.publishers.max(1)).max(1);
    let interval_ns = 1_000_000_000 / per_publisher;
    let total_per_publisher = per_publisher * args.seconds;
    let padding = vec![b'x'; args.size];
    let mut publishers = Vec::new();
    for n in 0..args.publishers.max(1) {
        let conn = Conn::connect(addr).await?;
        let (mut reader, mut writer) = (conn.reader, conn.writer);
        let (key, padding, published) = (args.key.clone(), padding.clone(), Arc::clone(&published));
        // Stagger publishers across one interval so their sends interleave instead of arriving together.
        let offset_ns = interval_ns * n / args.publishers.max(1);
        let writer_task = tokio::spawn(async move {
            let mut sent = 0u64;
            let mut out = Vec::new();
            while sent < total_per_publisher {
                let now_ns = base.elapsed().as_nanos() as u64;
                let due = if now_ns < offset_ns {
                    0
                } else {
                    ((now_ns - offset_ns) / interval_ns + 1).min(total_per_publisher)
                };
                out.clear();
                let stamp = now_ns.to_string();
                let before = sent;
                while sent < due {
                    encode(
                        &mut out,
                        &[
                            b"XADD",
                            key.as_bytes(),
                            b"*",
                            b"t",
                            stamp.as_bytes(),
                            b"p",
                            &padding,
                        ],
                    );
                    sent += 1;
                }
                if !out.is_empty() {
                    writer.write_all(&out).await?;
                    published.fetch_add(sent - before, Ordering::Relaxed);
                }
                let next_ns = offset_ns + sent * interval_ns;
                let now_ns = base.elapsed().as_nanos() as u64;
                if next_ns > now_ns {
                    tokio::time::sleep(Duration::from_nanos(next_ns - now_ns)).await;
                }
            }
            Ok::<(), RespError>(())
        });
        let reader_task = tokio::spawn(async move {
            for _ in 0..total_per_publisher {
                reader.next().await?.ok()?;
            }
            Ok::<(), RespError>(())
        });
        publishers.push((writer_task, reader_task));
    }
    for (writer_task, reader_task) in publishers {
        writer_task
            .await
            .map_err(|e| RespError::Unexpected(format!("publisher died: {e}")))??;
        reader_task
            .await
            .map_err(|e| RespError::Unexpected(format!("publisher reader died: {e}")))??;
    }
    let publish_seconds = base.elapsed().as_secs_f64();
    publishing_done.store(true, Ordering::Release);

    let mut hist = new_histogram()?;
    for consumer in consumers {
        let part = consumer
            .await
            .map_err(|e| RespError::Unexpected(format!("consumer died: {e}")))??;
        hist.add(&part)
            .map_err(|e| RespError::Unexpected(format!("histogram merge: {e}")))?;
    }
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1_000.0;
    Ok(format!(
        "latency received={} p50_ms={:.3} p99_ms={:.3} p999_ms={:.3} max_ms={:.3} publish_rate={:.0}",
        received.load(Ordering::Relaxed),
        ms(0.5),
        ms(0.99),
        ms(0.999),
        hist.max() as f64 / 1_000.0,
        published.load(Ordering::Relaxed) as f64 / publish_seconds,
    ))
}

/// The `t` field of a latency message: its send time in nanoseconds since the process's base instant.
fn sent_time(fields: &[Reply]) -> Result<u64, RespError> {
    for pair in fields.chunks(2) {
        if let [Reply::Bulk(Some(name)), Reply::Bulk(Some(value))] = pair {
            if name == b"t" {
                return std::str::from_utf8(value)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| RespError::Unexpected("bad t field".into()));
            }
        }
    }
    Err(RespError::Unexpected("message without a t field".into()))
}
