//! The load test of issue #18: crowds of clients doing what careless or hostile ones do, while a probe client
//! measures how well everyone else is still served, and the server's resident memory is watched.
//!
//! Phases, one after another against one running server (each ends by closing its clients):
//! - `conns`: N authenticated idle connections (memory per connection; all still answer).
//! - `blocked`: B clients blocked in `XREAD BLOCK 0` over 1,000 streams, all woken by one XADD per stream
//!   (memory per blocked client; time until the last is served).
//! - `slow`: S clients pipelining `XRANGE` of a 10 MB stream and never reading: the server must drop them at its
//!   `client-output-buffer-limit normal` instead of buffering without bound.
//! - `unauth`: U clients that never authenticate and announce a 100 MB bulk string, plus connect/close churn:
//!   each must be refused (`-ERR Protocol error: unauthenticated bulk length`, then closed).
//! - `ttl`: K keys (streams) with TTLs of 2–4 s, written with 50 pipelined connections: all must expire within
//!   `--expire-within` seconds while the probe keeps its latency.
//!
//! The probe is one connection doing `XADD probe MAXLEN ~ 1000 * f v` every 5 ms; its p99 per phase is
//! reported. A phase fails (exit status 1) when a client is not served, memory exceeds its bound, or the probe's
//! p99 exceeds `--max-p99-ms`. Memory is the server's `VmRSS` from `/proc/PID/status` (same machine only).
//!
//! The limits of the machine bound the counts: every client is a socket in both processes, so B + the other
//! clients must stay under the per-process descriptor limit (`ulimit -n`) of each.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

use crate::resp::{encode, Conn, Reply, RespError};

#[derive(clap::Args)]
pub struct StressArgs {
    /// The server's process id, to read its resident memory.
    #[arg(long)]
    pid: u32,
    /// The server's `requirepass`.
    #[arg(long)]
    password: String,
    /// Phases to run, comma-separated.
    #[arg(long, default_value = "conns,blocked,slow,unauth,ttl")]
    phases: String,
    /// Idle connections in `conns`.
    #[arg(long, default_value_t = 10_000)]
    conns: usize,
    /// Blocked readers in `blocked`.
    #[arg(long, default_value_t = 15_000)]
    blocked: usize,
    /// Slow readers in `slow`.
    #[arg(long, default_value_t = 20)]
    slow: usize,
    /// Unauthenticated clients in `unauth`.
    #[arg(long, default_value_t = 5_000)]
    unauth: usize,
    /// Keys with a TTL in `ttl`.
    #[arg(long, default_value_t = 1_000_000)]
    keys: usize,
    /// Seconds within which every key of `ttl` must have expired (after the last one's TTL).
    #[arg(long, default_value_t = 30)]
    expire_within: u64,
    /// Most resident memory a phase may add, per client (idle or blocked), in bytes.
    #[arg(long, default_value_t = 16 * 1024)]
    max_bytes_per_client: u64,
    /// Most resident memory the `slow` and `unauth` phases may add, and `ttl` may keep once its keys expired, in MiB.
    #[arg(long, default_value_t = 512)]
    max_phase_mib: u64,
    /// Most the probe's p99 may be in any phase, in milliseconds.
    #[arg(long, default_value_t = 500)]
    max_p99_ms: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum StressError {
    #[error(transparent)]
    Resp(#[from] RespError),
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot read the server's memory: {0}")]
    Rss(String),
    #[error("{0}")]
    Failed(String),
}

/// Resident memory of process `pid`, in bytes.
fn rss(pid: u32) -> Result<u64, StressError> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| StressError::Rss(format!("/proc/{pid}/status: {e}")))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| StressError::Rss("no VmRSS line".into()))
}

/// The probe: one XADD every 5 ms, round trips recorded until stopped.
struct Probe {
    hist: Mutex<Histogram<u64>>,
    failures: AtomicU64,
    stop: AtomicBool,
}

impl Probe {
    async fn run(self: Arc<Self>, addr: String, password: String) {
        let mut conn = match connect_authed(&addr, &password).await {
            Ok(c) => c,
            Err(_) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        let mut tick = tokio::time::interval(Duration::from_millis(5));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        while !self.stop.load(Ordering::Relaxed) {
            tick.tick().await;
            let t = Instant::now();
            let r = conn
                .call(&[
                    b"XADD", b"probe", b"MAXLEN", b"~", b"1000", b"*", b"f", b"v",
                ])
                .await;
            match r {
                Ok(Reply::Bulk(Some(_))) => {
                    let us = t.elapsed().as_micros() as u64;
                    let _ = self.hist.lock().await.record(us.max(1));
                }
                _ => {
                    self.failures.fetch_add(1, Ordering::Relaxed);
                    // Reconnect: a probe that lost its connection still measures.
                    if let Ok(c) = connect_authed(&addr, &password).await {
                        conn = c;
                    }
                }
            }
        }
    }

    /// p99 and max (ms) since the last call, and the failures since the start.
    async fn take(&self) -> (f64, f64, u64) {
        let mut h = self.hist.lock().await;
        let p99 = h.value_at_quantile(0.99) as f64 / 1000.0;
        let max = h.max() as f64 / 1000.0;
        h.reset();
        (p99, max, self.failures.load(Ordering::Relaxed))
    }
}

async fn connect_authed(addr: &str, password: &str) -> Result<Conn, RespError> {
    let mut c = Conn::connect(addr).await?;
    c.call(&[b"AUTH", password.as_bytes()]).await?.ok()?;
    Ok(c)
}

/// Opens `n` authenticated connections, `parallel` at a time.
async fn open_many(addr: &str, password: &str, n: usize) -> Result<Vec<Conn>, StressError> {
    let mut out = Vec::with_capacity(n);
    let mut left = n;
    while left > 0 {
        let batch = left.min(500);
        let mut tasks = Vec::with_capacity(batch);
        for _ in 0..batch {
            let (a, p) = (addr.to_string(), password.to_string());
            tasks.push(tokio::spawn(async move { connect_authed(&a, &p).await }));
        }
        for t in tasks {
            let c = t
                .await
                .map_err(|e| StressError::Failed(format!("connect task: {e}")))??;
            out.push(c);
        }
        left -= batch;
    }
    Ok(out)
}

struct Report {
    lines: Vec<String>,
    failed: Vec<String>,
}

impl Report {
    fn check(&mut self, ok: bool, what: String) {
        if !ok {
            eprintln!("rill-loadgen stress: FAILED: {what}");
            self.failed.push(what);
        }
    }
}

pub async fn run(addr: &str, args: StressArgs) -> Result<String, StressError> {
    let probe = Arc::new(Probe {
        hist: Mutex::new(
            Histogram::new_with_bounds(1, 60_000_000, 3)
                .map_err(|e| StressError::Failed(format!("histogram: {e}")))?,
        ),
        failures: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let probe_task = tokio::spawn(probe.clone().run(addr.to_string(), args.password.clone()));
    let mut report = Report {
        lines: Vec::new(),
        failed: Vec::new(),
    };
    let started = Instant::now();
    for phase in args.phases.split(',') {
        let t0 = Instant::now();
        let before = rss(args.pid)?;
        let _ = probe.take().await;
        let detail = match phase {
            "conns" => conns(addr, &args, &mut report).await?,
            "blocked" => blocked(addr, &args, &mut report).await?,
            "slow" => slow(addr, &args, before, &mut report).await?,
            "unauth" => unauth(addr, &args, before, &mut report).await?,
            "ttl" => ttl(addr, &args, before, &mut report).await?,
            other => return Err(StressError::Failed(format!("unknown phase {other}"))),
        };
        let (p99, max, failures) = probe.take().await;
        report.check(
            p99 <= args.max_p99_ms as f64,
            format!("{phase}: probe p99 {p99:.1} ms > {} ms", args.max_p99_ms),
        );
        report.check(failures == 0, format!("{phase}: {failures} probe failures"));
        let line = format!(
            "phase={phase} {detail} probe_p99_ms={p99:.2} probe_max_ms={max:.2} rss_before_mib={:.1} rss_after_mib={:.1} secs={:.1}",
            before as f64 / 1048576.0,
            rss(args.pid)? as f64 / 1048576.0,
            t0.elapsed().as_secs_f64()
        );
        eprintln!("rill-loadgen stress: {line}");
        report.lines.push(line);
    }
    probe.stop.store(true, Ordering::Relaxed);
    let _ = probe_task.await;
    let mut out = report.lines.join("\n");
    out.push_str(&format!(
        "\nstress total_secs={:.1} failures={}",
        started.elapsed().as_secs_f64(),
        report.failed.len()
    ));
    if report.failed.is_empty() {
        Ok(out)
    } else {
        Err(StressError::Failed(format!(
            "{out}\n{}",
            report.failed.join("\n")
        )))
    }
}

/// N idle authenticated connections: memory per connection, and every one still answers.
async fn conns(addr: &str, args: &StressArgs, report: &mut Report) -> Result<String, StressError> {
    let before = rss(args.pid)?;
    let mut conns = open_many(addr, &args.password, args.conns).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let per = rss(args.pid)?.saturating_sub(before) / args.conns.max(1) as u64;
    report.check(
        per <= args.max_bytes_per_client,
        format!(
            "conns: {per} B per idle connection > {}",
            args.max_bytes_per_client
        ),
    );
    let mut pongs = 0usize;
    for c in conns.iter_mut() {
        if let Ok(Reply::Simple(s)) = c.call(&[b"PING"]).await {
            pongs += usize::from(s == "PONG");
        }
    }
    report.check(
        pongs == args.conns,
        format!("conns: {pongs} of {} answered PING", args.conns),
    );
    drop(conns);
    Ok(format!("n={} bytes_per_conn={per}", args.conns))
}

/// B clients blocked over 1,000 streams; one XADD per stream must serve them all.
async fn blocked(
    addr: &str,
    args: &StressArgs,
    report: &mut Report,
) -> Result<String, StressError> {
    const STREAMS: usize = 1000;
    let before = rss(args.pid)?;
    let conns = open_many(addr, &args.password, args.blocked).await?;
    let served = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(conns.len());
    for (i, mut c) in conns.into_iter().enumerate() {
        let served = served.clone();
        tasks.push(tokio::spawn(async move {
            let key = format!("blk:{}", i % STREAMS);
            let r = c
                .call(&[b"XREAD", b"BLOCK", b"0", b"STREAMS", key.as_bytes(), b"$"])
                .await;
            if matches!(r, Ok(Reply::Array(Some(_)))) {
                served.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let mut admin = connect_authed(addr, &args.password).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut blocked_now = 0;
    while Instant::now() < deadline {
        blocked_now = info_field(&mut admin, "clients", "blocked_clients").await?;
        if blocked_now >= args.blocked as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    report.check(
        blocked_now >= args.blocked as u64,
        format!(
            "blocked: only {blocked_now} of {} clients blocked",
            args.blocked
        ),
    );
    let per = rss(args.pid)?.saturating_sub(before) / args.blocked.max(1) as u64;
    report.check(
        per <= args.max_bytes_per_client,
        format!(
            "blocked: {per} B per blocked client > {}",
            args.max_bytes_per_client
        ),
    );
    let t = Instant::now();
    let mut buf = Vec::new();
    for s in 0..STREAMS {
        encode(
            &mut buf,
            &[b"XADD", format!("blk:{s}").as_bytes(), b"*", b"f", b"v"],
        );
    }
    admin.pipeline(&buf, STREAMS).await?;
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(60), task).await;
    }
    let wake_ms = t.elapsed().as_secs_f64() * 1000.0;
    let n = served.load(Ordering::Relaxed);
    report.check(
        n == args.blocked as u64,
        format!("blocked: {n} of {} readers served", args.blocked),
    );
    Ok(format!(
        "n={} bytes_per_blocked={per} all_served_ms={wake_ms:.1}",
        args.blocked
    ))
}

/// S clients that request 10 MB replies again and again and never read: each must be dropped at the output
/// buffer limit, and memory must stay bounded.
async fn slow(
    addr: &str,
    args: &StressArgs,
    before: u64,
    report: &mut Report,
) -> Result<String, StressError> {
    let mut admin = connect_authed(addr, &args.password).await?;
    let value = vec![b'x'; 1024];
    let mut buf = Vec::new();
    for _ in 0..10_000 {
        encode(&mut buf, &[b"XADD", b"slow:big", b"*", b"f", &value]);
    }
    admin.call(&[b"DEL", b"slow:big"]).await?;
    admin.pipeline(&buf, 10_000).await?;
    let mut req = Vec::new();
    for _ in 0..50 {
        encode(&mut req, &[b"XRANGE", b"slow:big", b"-", b"+"]);
    }
    let mut tasks = Vec::new();
    for _ in 0..args.slow {
        let addr = addr.to_string();
        let password = args.password.clone();
        let req = req.clone();
        tasks.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(&addr).await?;
            let mut auth = Vec::new();
            encode(&mut auth, &[b"AUTH", password.as_bytes()]);
            s.write_all(&auth).await?;
            let mut ok = [0u8; 5];
            s.read_exact(&mut ok).await?;
            // Ask and never read; the server's limit must end it.
            let end = Instant::now() + Duration::from_secs(30);
            while Instant::now() < end {
                match tokio::time::timeout(Duration::from_millis(200), s.write_all(&req)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return Ok::<bool, std::io::Error>(true),
                    Err(_) => {
                        // Our send buffer is full too: is the socket closed?
                        if closed_by_peer(&s) {
                            return Ok(true);
                        }
                    }
                }
            }
            Ok(closed_by_peer(&s))
        }));
    }
    let mut peak = 0u64;
    let watch_end = Instant::now() + Duration::from_secs(35);
    while Instant::now() < watch_end && tasks.iter().any(|t| !t.is_finished()) {
        peak = peak.max(rss(args.pid)?);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut dropped = 0;
    for t in tasks {
        if let Ok(Ok(Ok(true))) = tokio::time::timeout(Duration::from_secs(5), t).await {
            dropped += 1;
        }
    }
    let added = peak.saturating_sub(before) / 1048576;
    report.check(
        dropped == args.slow,
        format!(
            "slow: {dropped} of {} slow readers dropped by the server",
            args.slow
        ),
    );
    report.check(
        added <= args.max_phase_mib,
        format!(
            "slow: peak memory +{added} MiB > {} MiB",
            args.max_phase_mib
        ),
    );
    admin.call(&[b"DEL", b"slow:big"]).await?;
    Ok(format!(
        "n={} dropped={dropped} peak_added_mib={added}",
        args.slow
    ))
}

/// Whether the peer has closed or reset `s` (a zero-byte read or an error, without blocking).
fn closed_by_peer(s: &TcpStream) -> bool {
    let mut b = [0u8; 4096];
    loop {
        match s.try_read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
    }
}

/// U clients that never authenticate and announce a 100 MB bulk string, plus connect/close churn: each must get
/// the protocol error and be closed, memory must stay bounded.
async fn unauth(
    addr: &str,
    args: &StressArgs,
    before: u64,
    report: &mut Report,
) -> Result<String, StressError> {
    const WANT: &[u8] = b"-ERR Protocol error: unauthenticated bulk length\r\n";
    let refused = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    let mut peak = 0u64;
    for batch in 0..args.unauth.div_ceil(500) {
        for _ in 0..500.min(args.unauth - batch * 500) {
            let to = addr.to_string();
            let refused = refused.clone();
            tasks.push(tokio::spawn(async move {
                let Ok(mut s) = TcpStream::connect(&to).await else {
                    return;
                };
                // 100 MB: under proto-max-bulk-len, far over what an unauthenticated client may send.
                let _ = s.write_all(b"*1\r\n$100000000\r\n").await;
                let mut got = Vec::new();
                let _ =
                    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut got)).await;
                if got == WANT {
                    refused.fetch_add(1, Ordering::Relaxed);
                }
            }));
            // Churn: a connection that says nothing and goes.
            if let Ok(s) = TcpStream::connect(addr).await {
                drop(s);
            }
        }
        peak = peak.max(rss(args.pid)?);
    }
    for t in tasks {
        let _ = t.await;
        peak = peak.max(rss(args.pid)?);
    }
    let n = refused.load(Ordering::Relaxed);
    let added = peak.saturating_sub(before) / 1048576;
    report.check(
        n == args.unauth as u64,
        format!(
            "unauth: {n} of {} refused with the protocol error and closed",
            args.unauth
        ),
    );
    report.check(
        added <= args.max_phase_mib,
        format!(
            "unauth: peak memory +{added} MiB > {} MiB",
            args.max_phase_mib
        ),
    );
    Ok(format!(
        "n={} refused={n} peak_added_mib={added}",
        args.unauth
    ))
}

/// K streams with a TTL of 2–4 s: all must expire within `expire_within` s after the last TTL.
async fn ttl(
    addr: &str,
    args: &StressArgs,
    before: u64,
    report: &mut Report,
) -> Result<String, StressError> {
    const CONNS: usize = 50;
    let per = args.keys.div_ceil(CONNS);
    let mut tasks = Vec::new();
    let t = Instant::now();
    for c in 0..CONNS {
        let addr = addr.to_string();
        let password = args.password.clone();
        let keys = args.keys;
        tasks.push(tokio::spawn(async move {
            let mut conn = connect_authed(&addr, &password).await?;
            let mut buf = Vec::new();
            let mut n = 0;
            for i in (c * per)..((c + 1) * per).min(keys) {
                let key = format!("ttl:{i}");
                let ms = (2000 + i % 2000).to_string();
                encode(&mut buf, &[b"XADD", key.as_bytes(), b"*", b"f", b"v"]);
                encode(&mut buf, &[b"PEXPIRE", key.as_bytes(), ms.as_bytes()]);
                n += 2;
                if n >= 256 {
                    conn.pipeline(&buf, n).await?;
                    buf.clear();
                    n = 0;
                }
            }
            if n > 0 {
                conn.pipeline(&buf, n).await?;
            }
            Ok::<(), RespError>(())
        }));
    }
    for task in tasks {
        task.await
            .map_err(|e| StressError::Failed(format!("ttl writer: {e}")))??;
    }
    let fill_s = t.elapsed().as_secs_f64();
    let peak = rss(args.pid)?;
    let mut admin = connect_authed(addr, &args.password).await?;
    let deadline = Instant::now() + Duration::from_secs(4 + args.expire_within);
    let mut left = u64::MAX;
    while Instant::now() < deadline {
        left = ttl_keys_left(&mut admin).await?;
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    report.check(
        left == 0,
        format!(
            "ttl: {left} keys with a TTL still there after {} s",
            4 + args.expire_within
        ),
    );
    let expired_s = t.elapsed().as_secs_f64() - fill_s;
    // What the keys took must go back: a server whose memory stays at the peak of every
    // burst is not bounded by what it holds.
    let give_back = Instant::now() + Duration::from_secs(20);
    let mut after = rss(args.pid)?;
    while after.saturating_sub(before) > args.max_phase_mib << 20 && Instant::now() < give_back {
        tokio::time::sleep(Duration::from_millis(500)).await;
        after = rss(args.pid)?;
    }
    let kept = after.saturating_sub(before) >> 20;
    report.check(
        kept <= args.max_phase_mib,
        format!(
            "ttl: {kept} MiB still resident 20 s after every key expired > {} MiB",
            args.max_phase_mib
        ),
    );
    Ok(format!(
        "keys={} fill_secs={fill_s:.1} expired_after_fill_secs={expired_s:.1} peak_added_mib={} kept_mib={kept}",
        args.keys,
        peak.saturating_sub(before) >> 20
    ))
}

/// `expires=` of db0 in INFO keyspace (0 when the db line is gone).
async fn ttl_keys_left(admin: &mut Conn) -> Result<u64, StressError> {
    let info = info_text(admin, "keyspace").await?;
    Ok(info
        .lines()
        .find_map(|l| l.strip_prefix("db0:"))
        .and_then(|l| {
            l.split(',')
                .find_map(|kv| kv.strip_prefix("expires="))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0))
}

async fn info_text(admin: &mut Conn, section: &str) -> Result<String, StressError> {
    match admin.call(&[b"INFO", section.as_bytes()]).await? {
        Reply::Bulk(Some(b)) => Ok(String::from_utf8_lossy(&b).into_owned()),
        other => Err(StressError::Failed(format!("INFO {section}: {other:?}"))),
    }
}

/// One numeric field of an INFO section.
async fn info_field(admin: &mut Conn, section: &str, field: &str) -> Result<u64, StressError> {
    let info = info_text(admin, section).await?;
    info.lines()
        .find_map(|l| l.strip_prefix(field).and_then(|r| r.strip_prefix(':')))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| StressError::Failed(format!("INFO {section}: no {field}")))
}
