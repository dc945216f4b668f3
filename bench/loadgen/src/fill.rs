//! Bulk XADD: pre-fills streams for the drain, memory and restart scenarios.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::resp::{encode, Conn, RespError};

#[derive(clap::Args)]
pub struct FillArgs {
    /// Stream key.
    #[arg(long, default_value = "bench")]
    key: String,
    /// Number of entries to append.
    #[arg(long)]
    count: u64,
    /// Bytes in the entry's single field value.
    #[arg(long, default_value_t = 100)]
    size: usize,
    /// Parallel connections.
    #[arg(long, default_value_t = 50)]
    conns: usize,
    /// Commands written per round trip on each connection.
    #[arg(long, default_value_t = 16)]
    pipeline: u64,
}

/// Appends `count` entries and reports `fill entries=… seconds=… rate=…`.
pub async fn run(addr: &str, args: FillArgs) -> Result<String, RespError> {
    let payload = vec![b'x'; args.size];
    let mut conns = Vec::with_capacity(args.conns);
    for _ in 0..args.conns.max(1) {
        conns.push(Conn::connect(addr).await?);
    }
    // Connections claim batches from one counter so the total is exact whatever their relative speed.
    let claimed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(conns.len());
    for mut conn in conns {
        let claimed = Arc::clone(&claimed);
        let key = args.key.clone();
        let payload = payload.clone();
        let (count, pipeline) = (args.count, args.pipeline.max(1));
        tasks.push(tokio::spawn(async move {
            let mut one = Vec::new();
            encode(&mut one, &[b"XADD", key.as_bytes(), b"*", b"p", &payload]);
            let full_batch = one.repeat(pipeline as usize);
            loop {
                let first = claimed.fetch_add(pipeline, Ordering::Relaxed);
                if first >= count {
                    return Ok::<(), RespError>(());
                }
                let n = pipeline.min(count - first) as usize;
                conn.pipeline(&full_batch[..one.len() * n], n).await?;
            }
        }));
    }
    for task in tasks {
        task.await.map_err(|e| RespError::Unexpected(format!("fill task died: {e}")))??;
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(format!(
        "fill entries={} seconds={seconds:.3} rate={:.0}",
        args.count,
        args.count as f64 / seconds
    ))
}
