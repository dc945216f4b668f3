//! Bulk XADD: pre-fills streams for the drain, memory and restart scenarios.
//!
//! Every entry gets its own pseudo-random printable payload: identical or repetitive values would let Redis's RDB
//! (LZF over whole listpacks) compress them away and make its memory and disk numbers look better than real data.

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
        let (count, pipeline, size) = (args.count, args.pipeline.max(1), args.size);
        let mut rng = XorShift::new(tasks.len() as u64 + 1);
        tasks.push(tokio::spawn(async move {
            let mut batch = Vec::new();
            let mut payload = vec![0u8; size];
            loop {
                let first = claimed.fetch_add(pipeline, Ordering::Relaxed);
                if first >= count {
                    return Ok::<(), RespError>(());
                }
                let n = pipeline.min(count - first) as usize;
                batch.clear();
                for _ in 0..n {
                    rng.fill_printable(&mut payload);
                    encode(&mut batch, &[b"XADD", key.as_bytes(), b"*", b"p", &payload]);
                }
                conn.pipeline(&batch, n).await?;
            }
        }));
    }
    for task in tasks {
        task.await
            .map_err(|e| RespError::Unexpected(format!("fill task died: {e}")))??;
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(format!(
        "fill entries={} seconds={seconds:.3} rate={:.0}",
        args.count,
        args.count as f64 / seconds
    ))
}

/// xorshift64: cheap enough to generate a gigabyte of payload without becoming the bottleneck.
pub struct XorShift(u64);

impl XorShift {
    /// A generator for connection `n` (distinct `n`, distinct sequences; never seeded with 0).
    pub fn new(n: u64) -> XorShift {
        XorShift(0x9E37_79B9_7F4A_7C15 ^ n)
    }

    pub fn fill_printable(&mut self, out: &mut [u8]) {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        for chunk in out.chunks_mut(8) {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            let mut bits = self.0;
            for byte in chunk {
                *byte = ALPHABET[(bits & 63) as usize];
                bits >>= 6;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::XorShift;

    #[test]
    fn payloads_differ_between_entries_and_are_printable() {
        let mut rng = XorShift(1);
        let (mut a, mut b) = (vec![0u8; 100], vec![0u8; 100]);
        rng.fill_printable(&mut a);
        rng.fill_printable(&mut b);
        assert_ne!(a, b);
        assert!(a
            .iter()
            .chain(&b)
            .all(|c| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/'));
    }
}
