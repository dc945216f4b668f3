//! Counters behind INFO stats, commandstats and errorstats.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

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
    commands: Mutex<BTreeMap<&'static str, CommandStat>>,
    errors: Mutex<BTreeMap<String, u64>>,
}

impl Stats {
    /// Counts one execution of `cmd`.
    pub fn record_call(&self, cmd: &'static str, took: Duration, failed: bool) {
        self.commands_processed.fetch_add(1, Ordering::Relaxed);
        let mut map = self.commands.lock();
        let s = map.entry(cmd).or_default();
        s.calls += 1;
        s.usec += took.as_micros() as u64;
        if failed {
            s.failed += 1;
        }
    }

    /// Counts a failure of `cmd` already counted as a call: a blocked command unblocked
    /// with an error, or a command whose execution sent another client an error reply
    /// (Redis counts a call as failed when the error counter moved while it ran).
    pub fn record_failed(&self, cmd: &'static str) {
        self.commands.lock().entry(cmd).or_default().failed += 1;
    }

    /// Counts a command refused before it ran.
    pub fn record_rejected(&self, cmd: &'static str) {
        self.commands.lock().entry(cmd).or_default().rejected += 1;
    }

    /// Counts an error reply by its prefix (`ERR`, `WRONGTYPE` …).
    pub fn record_error(&self, text: &str) {
        self.error_replies.fetch_add(1, Ordering::Relaxed);
        let prefix = text.split(' ').next().unwrap_or("ERR").to_string();
        *self.errors.lock().entry(prefix).or_default() += 1;
    }

    /// A copy of the per-command counters.
    pub fn commands(&self) -> Vec<(&'static str, CommandStat)> {
        self.commands.lock().iter().map(|(k, v)| (*k, *v)).collect()
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
        self.commands.lock().clear();
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
