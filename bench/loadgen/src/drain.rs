//! Consumer-group drain: how fast a group of consumers can read and acknowledge a pre-filled stream.
//!
//! Each consumer loops `XREADGROUP GROUP g cN COUNT c STREAMS key >` then `XACK key g id…` (one round trip each,
//! as a straightforward client does). A fresh group per run means one pre-filled stream serves many runs.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::resp::{encode, Conn, Reply, RespError};

#[derive(clap::Args)]
pub struct DrainArgs {
    /// Stream key (must exist).
    #[arg(long, default_value = "bench")]
    key: String,
    /// Group to create at ID 0; must not exist yet.
    #[arg(long)]
    group: String,
    /// Number of consumers, one connection each.
    #[arg(long, default_value_t = 4)]
    consumers: usize,
    /// COUNT of each XREADGROUP.
    #[arg(long, default_value_t = 100)]
    count: usize,
    /// Stop once this many entries were delivered (default: until the stream is exhausted).
    #[arg(long)]
    limit: Option<u64>,
    /// Stop after this many seconds and report what was done (the result line says `timed_out=1`).
    #[arg(long, default_value_t = 300)]
    max_seconds: u64,
}

/// One entry of an XREADGROUP/XREAD reply: its ID and its field/value list (empty if the entry was deleted).
pub struct StreamEntry {
    pub id: Vec<u8>,
    pub fields: Vec<Reply>,
}

/// Flattens the RESP2 reply of XREAD/XREADGROUP (`*streams [ key, *entries [ id, *fields ] ]`, or nil) into entries.
pub fn entries_of(reply: Reply) -> Result<Vec<StreamEntry>, RespError> {
    let streams = match reply.ok()? {
        Reply::Array(None) => return Ok(Vec::new()),
        Reply::Array(Some(streams)) => streams,
        other => return Err(RespError::Unexpected(format!("XREADGROUP reply {other:?}"))),
    };
    let mut out = Vec::new();
    for stream in streams {
        let Reply::Array(Some(mut pair)) = stream else {
            return Err(RespError::Unexpected(
                "stream element is not an array".into(),
            ));
        };
        let Some(Reply::Array(Some(entries))) = pair.pop() else {
            return Err(RespError::Unexpected(
                "stream element has no entry array".into(),
            ));
        };
        for entry in entries {
            let Reply::Array(Some(mut parts)) = entry else {
                return Err(RespError::Unexpected("entry is not an array".into()));
            };
            let fields = match parts.pop() {
                Some(Reply::Array(Some(fields))) => fields,
                Some(Reply::Array(None)) | Some(Reply::Bulk(None)) => Vec::new(),
                other => return Err(RespError::Unexpected(format!("entry fields {other:?}"))),
            };
            let Some(Reply::Bulk(Some(id))) = parts.pop() else {
                return Err(RespError::Unexpected("entry has no ID".into()));
            };
            out.push(StreamEntry { id, fields });
        }
    }
    Ok(out)
}

/// Acknowledges `ids` in one XACK and checks that the server counted them all.
pub async fn ack(
    conn: &mut Conn,
    key: &str,
    group: &str,
    ids: &[Vec<u8>],
) -> Result<(), RespError> {
    let mut args: Vec<&[u8]> = Vec::with_capacity(3 + ids.len());
    args.extend_from_slice(&[b"XACK", key.as_bytes(), group.as_bytes()]);
    args.extend(ids.iter().map(Vec::as_slice));
    let mut out = Vec::new();
    encode(&mut out, &args);
    conn.pipeline(&out, 0).await?;
    match conn.reader.next().await?.ok()? {
        Reply::Int(n) if n == ids.len() as i64 => Ok(()),
        other => Err(RespError::Unexpected(format!(
            "XACK of {} IDs answered {other:?}",
            ids.len()
        ))),
    }
}

/// Reports `drain delivered=… seconds=… rate=… timed_out=0|1`.
pub async fn run(addr: &str, args: DrainArgs) -> Result<String, RespError> {
    let mut admin = Conn::connect(addr).await?;
    admin
        .call(&[
            b"XGROUP",
            b"CREATE",
            args.key.as_bytes(),
            args.group.as_bytes(),
            b"0",
        ])
        .await?
        .ok()?;
    let mut conns = Vec::with_capacity(args.consumers);
    for _ in 0..args.consumers.max(1) {
        conns.push(Conn::connect(addr).await?);
    }
    let limit = args.limit.unwrap_or(u64::MAX);
    let delivered = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(conns.len());
    for (n, mut conn) in conns.into_iter().enumerate() {
        let (delivered, stop) = (Arc::clone(&delivered), Arc::clone(&stop));
        let (key, group, consumer) = (args.key.clone(), args.group.clone(), format!("c{n}"));
        let count = args.count.to_string();
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) && delivered.load(Ordering::Relaxed) < limit {
                let reply = conn
                    .call(&[
                        b"XREADGROUP",
                        b"GROUP",
                        group.as_bytes(),
                        consumer.as_bytes(),
                        b"COUNT",
                        count.as_bytes(),
                        b"STREAMS",
                        key.as_bytes(),
                        b">",
                    ])
                    .await?;
                let entries = entries_of(reply)?;
                if entries.is_empty() {
                    break;
                }
                delivered.fetch_add(entries.len() as u64, Ordering::Relaxed);
                let ids: Vec<Vec<u8>> = entries.into_iter().map(|e| e.id).collect();
                ack(&mut conn, &key, &group, &ids).await?;
            }
            Ok::<(), RespError>(())
        }));
    }
    let watchdog = {
        let stop = Arc::clone(&stop);
        let max = Duration::from_secs(args.max_seconds);
        tokio::spawn(async move {
            tokio::time::sleep(max).await;
            stop.store(true, Ordering::Relaxed);
        })
    };
    for task in tasks {
        task.await
            .map_err(|e| RespError::Unexpected(format!("consumer task died: {e}")))??;
    }
    let seconds = started.elapsed().as_secs_f64();
    let timed_out = stop.load(Ordering::Relaxed);
    watchdog.abort();
    let delivered = delivered.load(Ordering::Relaxed);
    Ok(format!(
        "drain delivered={delivered} seconds={seconds:.3} rate={:.0} timed_out={}",
        delivered as f64 / seconds,
        u8::from(timed_out)
    ))
}
