//! Restart time: how long after its start a server first answers PING with PONG.
//!
//! The start time is taken by the caller (bench/run, just before it spawns the server) as nanoseconds since the
//! Unix epoch, so the measurement includes process start, recovery or AOF loading, and the first accept.
//! Redis answers `-LOADING` while it loads its AOF; that, refused connections and resets all mean "not yet".

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::resp::{Conn, Reply, RespError};

#[derive(clap::Args)]
pub struct ReadyArgs {
    /// When the server was started, in nanoseconds since the Unix epoch (`date +%s%N`).
    #[arg(long)]
    since_ns: u128,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
}

/// Polls every millisecond; reports `ready seconds=…`.
pub async fn run(addr: &str, args: ReadyArgs) -> Result<String, RespError> {
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    loop {
        if let Ok(mut conn) = Conn::connect(addr).await {
            loop {
                match conn.call(&[b"PING"]).await {
                    Ok(Reply::Simple(pong)) if pong == "PONG" => {
                        return Ok(elapsed_line(args.since_ns))
                    }
                    Ok(_) => tokio::time::sleep(Duration::from_millis(1)).await,
                    Err(_) => break,
                }
                if Instant::now() > deadline {
                    break;
                }
            }
        }
        if Instant::now() > deadline {
            return Err(RespError::Unexpected(format!(
                "server at {addr} did not answer PONG within {} s",
                args.timeout
            )));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn elapsed_line(since_ns: u128) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(since_ns);
    let seconds = now.saturating_sub(since_ns) as f64 / 1e9;
    format!("ready seconds={seconds:.3}")
}
