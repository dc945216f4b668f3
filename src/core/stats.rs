//! Counters behind INFO stats, commandstats and errorstats.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};

use crate::engine::hash::U64Keys;
use crate::histogram::{Histogram, HistogramSnapshot};

/// Per-command counters (INFO commandstats).
#[derive(Debug, Default, Clone, Copy)]
pub struct CommandStat {
    /// Executions.
    pub calls: u64,
    /// Total time in microseconds.
    pub usec: u64,
    /// Refused before running (auth, loading…).
    pub rejected: u64,
    /// Ran and answered with an error.
    pub failed: u64,
}

/// Server counters.
/// One command's counters.
#[derive(Debug)]
struct CallCounters {
    name: &'static str,
    calls: AtomicU64,
    rejected: AtomicU64,
    failed: AtomicU64,
    /// Latency of each execution in µs (the Prometheus endpoint's histogram); its sum is
    /// INFO commandstats' `usec`.
    latency: Histogram,
}

#[derive(Debug, Default)]
pub struct Stats {
    /// Connections accepted.
    pub connections_received: AtomicU64,
    /// Connections refused (maxclients).
    pub rejected_connections: AtomicU64,
    /// Commands executed.
    pub commands_processed: AtomicU64,
    /// Bytes read from clients.
    pub net_input_bytes: AtomicU64,
    /// Bytes written to clients.
    pub net_output_bytes: AtomicU64,
    /// Error replies sent.
    pub error_replies: AtomicU64,
    /// Redis's dirty counter (`rdb_changes_since_last_save`, see `core::dirty`). Not
    /// reset by CONFIG RESETSTAT, as in Redis.
    pub dirty: AtomicU64,
    /// Runs of the retention sweep (broker policies; INFO policies).
    pub retention_sweeps: AtomicU64,
    /// Entries the retention sweep trimmed.
    pub retention_trimmed: AtomicU64,
    /// Entries moved to a dead-letter stream (sweep and XNACK FATAL).
    pub dead_lettered: AtomicU64,
    /// Per command, by the address of its name (each spec's `&'static str`): looked up
    /// without comparing strings and counted without a lock shared by every command —
    /// the mutex and name comparisons this replaced showed in XADD profiles. Names
    /// that arrive from different places are merged when read.
    commands: RwLock<std::collections::HashMap<usize, Arc<CallCounters>, U64Keys>>,
    errors: Mutex<BTreeMap<String, u64>>,
    /// Checkpoint and compaction progress (not reset by CONFIG RESETSTAT: it describes
    /// the data, not the traffic).
    pub progress: Progress,
}

/// What the background storage work has done and is doing (the Prometheus endpoint).
#[derive(Debug, Default)]
pub struct Progress {
    /// Checkpoints written since start.
    pub checkpoints: AtomicU64,
    /// Unix time (s) the last checkpoint finished; 0 before the first.
    pub last_checkpoint_unix: AtomicU64,
    /// How long the last checkpoint took, µs.
    pub last_checkpoint_usec: AtomicU64,
    /// Entries the compaction under way has to relocate (0 when none runs).
    pub compaction_todo: AtomicU64,
    /// Entries it relocated so far.
    pub compaction_done: AtomicU64,
    /// Entries relocated by compaction since start.
    pub compacted_entries: AtomicU64,
    /// Compactions run since start.
    pub compactions: AtomicU64,
}

impl Stats {
    /// Counts one execution of `cmd`.
    /// The counters of `cmd`, created on first use.
    fn counters(&self, cmd: &'static str) -> Arc<CallCounters> {
        let key = cmd.as_ptr() as usize;
        if let Some(c) = self.commands.read().get(&key) {
            return c.clone();
        }
        self.commands
            .write()
            .entry(key)
            .or_insert_with(|| {
                Arc::new(CallCounters {
                    name: cmd,
                    calls: AtomicU64::new(0),
                    rejected: AtomicU64::new(0),
                    failed: AtomicU64::new(0),
                    latency: Histogram::default(),
                })
            })
            .clone()
    }

    pub fn record_call(&self, cmd: &'static str, took: Duration, failed: bool) {
        self.commands_processed.fetch_add(1, Ordering::Relaxed);
        let key = cmd.as_ptr() as usize;
        let add = |c: &CallCounters| {
            let usec = took.as_micros() as u64;
            c.calls.fetch_add(1, Ordering::Relaxed);
            c.latency.record(usec);
            if failed {
                c.failed.fetch_add(1, Ordering::Relaxed);
            }
        };
        if let Some(c) = self.commands.read().get(&key) {
            add(c);
            return;
        }
        add(&self.counters(cmd));
    }

    pub fn record_failed(&self, cmd: &'static str) {
        self.counters(cmd).failed.fetch_add(1, Ordering::Relaxed);
    }

    pub fn record_rejected(&self, cmd: &'static str) {
        self.counters(cmd).rejected.fetch_add(1, Ordering::Relaxed);
    }

    pub fn record_error(&self, text: &str) {
        self.error_replies.fetch_add(1, Ordering::Relaxed);
        let prefix = text.split(' ').next().unwrap_or("ERR").to_string();
        *self.errors.lock().entry(prefix).or_default() += 1;
    }

    /// A copy of the per-command counters.
    /// Per command name, in name order.
    pub fn commands(&self) -> Vec<(&'static str, CommandStat)> {
        let mut by_name: BTreeMap<&'static str, CommandStat> = BTreeMap::new();
        for c in self.commands.read().values() {
            let s = by_name.entry(c.name).or_default();
            s.calls += c.calls.load(Ordering::Relaxed);
            s.usec += c.latency.sum();
            s.rejected += c.rejected.load(Ordering::Relaxed);
            s.failed += c.failed.load(Ordering::Relaxed);
        }
        by_name.into_iter().collect()
    }

    /// Per command name, in name order: the latency histogram (µs) of its executions.
    pub fn command_latencies(&self) -> Vec<(&'static str, HistogramSnapshot)> {
        let mut by_name: BTreeMap<&'static str, HistogramSnapshot> = BTreeMap::new();
        for c in self.commands.read().values() {
            let snap = c.latency.snapshot();
            match by_name.get_mut(c.name) {
                Some(s) => {
                    for (a, b) in s.buckets.iter_mut().zip(&snap.buckets) {
                        a.1 += b.1;
                    }
                    s.sum += snap.sum;
                    s.count += snap.count;
                }
                None => {
                    by_name.insert(c.name, snap);
                }
            }
        }
        by_name.into_iter().collect()
    }

    /// A copy of the per-error counters.
    pub fn errors(&self) -> Vec<(String, u64)> {
        self.errors
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }

    /// CONFIG RESETSTAT.
    pub fn reset(&self) {
        self.commands.write().clear();
        self.errors.lock().clear();
        for c in [
            &self.connections_received,
            &self.rejected_connections,
            &self.commands_processed,
            &self.net_input_bytes,
            &self.net_output_bytes,
            &self.error_replies,
        ] {
            c.store(0, Ordering::Relaxed);
        }
    }
}
