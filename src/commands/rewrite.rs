//! Checkpoints from the command layer's side: the live keyspace rewritten as the
//! shortest command sequence that rebuilds it (as Redis's AOF rewrite does), so
//! the log segments before it can be deleted.
//!
//! Per stream: its entries as XADDs (an empty stream via `XADD … MAXLEN 0 0-1 x y`),
//! `XSETID … ENTRIESADDED … MAXDELETEDID …` for the counters, per group `XGROUP
//! CREATE … ENTRIESREAD …`, per pending entry `XCLAIM … 0 id TIME t RETRYCOUNT n
//! JUSTID FORCE`, and `XGROUP CREATECONSUMER` for consumers without pending
//! entries. As in Redis, consumers' seen/active times restart at recovery. Unlike
//! Redis's rewrite, pending entries whose stream entry was deleted are kept (see
//! `stream_commands`). Deleted-entry tombstones are not rebuilt, so
//! `radix-tree-keys` may shrink after recovery from a checkpoint.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use bytes::Bytes;

use crate::engine::id::StreamId;
use crate::engine::keyspace::Value;
use crate::engine::stream::Stream;
use crate::server::Shared;
use crate::storage::checkpoint::CheckpointWriter;
use crate::storage::{LoggedCommand, StorageError};

/// Commands per batch record in a checkpoint (bounded so no record gets huge).
const BATCH: usize = 512;

/// Set while a checkpoint is being written (INFO `aof_rewrite_in_progress`).
pub static IN_PROGRESS: AtomicBool = AtomicBool::new(false);

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn id(i: StreamId) -> Bytes {
    Bytes::from(i.to_string())
}

/// Appends the commands that rebuild `stream` under `key`.
///
/// Pending entries whose stream entry was deleted must survive too (XCLAIM FORCE
/// only claims entries that exist), so such IDs are added as placeholders, claimed,
/// then deleted again; XSETID last restores the counters XDEL changed.
fn stream_commands(key: &Bytes, s: &Stream, out: &mut Vec<Vec<Bytes>>) {
    let mut orphans: Vec<StreamId> = s
        .groups
        .values()
        .flat_map(|g| g.pending_entries().map(|p| p.id))
        .filter(|id| s.get(*id).is_none())
        .collect();
    orphans.sort();
    orphans.dedup();
    let placeholder = |id: StreamId| vec![b("XADD"), key.clone(), self::id(id), b("x"), b("y")];
    if s.is_empty() && orphans.is_empty() {
        out.push(vec![
            b("XADD"),
            key.clone(),
            b("MAXLEN"),
            b("0"),
            b("0-1"),
            b("x"),
            b("y"),
        ]);
    } else {
        let mut pending = orphans.iter().peekable();
        for e in s.range(StreamId::MIN, StreamId::MAX, None, false) {
            while let Some(&&o) = pending.peek() {
                if o >= e.id {
                    break;
                }
                out.push(placeholder(o));
                pending.next();
            }
            let mut argv = Vec::with_capacity(3 + e.fields.len());
            argv.push(b("XADD"));
            argv.push(key.clone());
            argv.push(id(e.id));
            argv.extend(e.fields.iter().cloned());
            out.push(argv);
        }
        for &o in pending {
            out.push(placeholder(o));
        }
    }
    for (name, g) in &s.groups {
        let entries_read = g.entries_read().map_or(-1i64, |n| n as i64);
        out.push(vec![
            b("XGROUP"),
            b("CREATE"),
            key.clone(),
            name.clone(),
            id(g.last_delivered_id()),
            b("ENTRIESREAD"),
            Bytes::from(entries_read.to_string()),
        ]);
        for c in g.consumers() {
            if c.pending_count() == 0 {
                out.push(vec![
                    b("XGROUP"),
                    b("CREATECONSUMER"),
                    key.clone(),
                    name.clone(),
                    c.name().clone(),
                ]);
            }
        }
        for p in g.pending_entries() {
            out.push(vec![
                b("XCLAIM"),
                key.clone(),
                name.clone(),
                p.consumer.clone(),
                b("0"),
                id(p.id),
                b("TIME"),
                Bytes::from(p.delivery_time_ms.to_string()),
                b("RETRYCOUNT"),
                Bytes::from(p.delivery_count.to_string()),
                b("JUSTID"),
                b("FORCE"),
            ]);
        }
    }
    if !orphans.is_empty() {
        let mut del = vec![b("XDEL"), key.clone()];
        del.extend(orphans.iter().map(|&o| id(o)));
        out.push(del);
    }
    out.push(vec![
        b("XSETID"),
        key.clone(),
        id(s.last_id()),
        b("ENTRIESADDED"),
        Bytes::from(s.entries_added().to_string()),
        b("MAXDELETEDID"),
        id(s.max_deleted_id()),
    ]);
}

/// Writes a checkpoint of the whole keyspace and deletes the log it supersedes.
///
/// The keyspace lock is held while the log rolls to a new segment and the state is
/// encoded, so the checkpoint plus the new segments are exactly the state; the
/// file is written after the lock is released. Returns (checkpoint bytes, keys).
pub fn checkpoint(shared: &Shared) -> Result<(u64, usize), StorageError> {
    let Some(log) = shared.log.get() else {
        return Ok((0, 0));
    };
    if IN_PROGRESS.swap(true, Ordering::SeqCst) {
        return Ok((0, 0));
    }
    let started = Instant::now();
    let result = (|| {
        let (writer, keys) = {
            let guard = shared.state.lock();
            let tail = log.roll()?;
            let mut w = CheckpointWriter::new(tail);
            let mut keys = 0;
            for db in 0..guard.ks.db_count() {
                let mut argvs: Vec<Vec<Bytes>> = Vec::new();
                for (key, value, expire) in guard.ks.db(db).iter() {
                    keys += 1;
                    match value {
                        Value::Stream(s) => stream_commands(key, s, &mut argvs),
                        Value::String(v) => argvs.push(vec![b("SET"), key.clone(), v.clone()]),
                    }
                    if let Some(at) = expire {
                        argvs.push(vec![
                            b("PEXPIREAT"),
                            key.clone(),
                            Bytes::from(at.to_string()),
                        ]);
                    }
                    if argvs.len() >= BATCH {
                        flush(&mut w, db, &mut argvs);
                    }
                }
                flush(&mut w, db, &mut argvs);
            }
            (w, keys)
        };
        let bytes = writer.finish(log.dir())?;
        Ok((bytes, keys))
    })();
    IN_PROGRESS.store(false, Ordering::SeqCst);
    if let Ok((bytes, keys)) = &result {
        tracing::info!(
            "Checkpoint written: {} keys, {} bytes in {:.3} s; older log segments removed",
            keys,
            bytes,
            started.elapsed().as_secs_f64()
        );
    }
    result
}

fn flush(w: &mut CheckpointWriter, db: usize, argvs: &mut Vec<Vec<Bytes>>) {
    if argvs.is_empty() {
        return;
    }
    let batch: Vec<LoggedCommand> = argvs
        .drain(..)
        .map(|argv| LoggedCommand {
            db: db as u16,
            argv,
        })
        .collect();
    w.add(&batch);
}

/// Takes a checkpoint every `checkpoint-interval` seconds once the log has grown
/// by `compaction-threshold` percent of the last checkpoint (at least 1 MiB), and
/// whenever BGREWRITEAOF asks. This keeps disk use within about
/// (1 + threshold) × the live data, plus what one interval writes.
pub async fn run_checkpoints(shared: Arc<Shared>) {
    let Some(log) = shared.log.get() else {
        return;
    };
    let mut last_size: u64 = 0;
    let mut written_at_last = log.counters().0;
    let mut last_time = Instant::now();
    loop {
        let requested = tokio::select! {
            _ = shared.checkpoint_request.notified() => true,
            _ = tokio::time::sleep(Duration::from_secs(1)) => false,
        };
        if shared.shutting_down.load(Ordering::SeqCst) {
            return;
        }
        let (interval, threshold) = {
            let cfg = shared.config.read();
            (cfg.checkpoint_interval, cfg.compaction_threshold as u64)
        };
        let grown = log.counters().0.saturating_sub(written_at_last);
        let due = interval > 0
            && threshold > 0
            && last_time.elapsed() >= Duration::from_secs(interval)
            && grown >= (last_size * threshold / 100).max(1 << 20);
        if !(requested || due) {
            continue;
        }
        let sh = shared.clone();
        let written_before = log.counters().0;
        match tokio::task::spawn_blocking(move || checkpoint(&sh)).await {
            Ok(Ok((bytes, _))) => {
                last_size = bytes;
                written_at_last = written_before;
            }
            Ok(Err(e)) => tracing::warn!("Checkpoint failed: {}", e),
            Err(e) => tracing::warn!("Checkpoint task failed: {}", e),
        }
        last_time = Instant::now();
    }
}
