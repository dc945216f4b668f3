//! The Raft log under `kill -9`: a child process (this test binary, run again with
//! `RILL_RAFT_CRASH_CHILD` set) appends, overwrites uncommitted suffixes, commits and purges,
//! printing each operation once it is durable; the parent kills it at a random moment and
//! reopens the directory. What recovery finds must be the state after the last acknowledged
//! operation, after the one in flight, or (for an append in flight) its cut done and a
//! prefix of its entries written: nothing acknowledged lost, no gap, never a hard state
//! without the entries before it. `RAFT_CRASH_ROUNDS=N` runs more rounds (default 12).
//!
//! The operations come from a seeded generator both processes run, so the parent knows
//! every state the child went through.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rill::storage::raft_record::{EntryKind, HardStateRecord, RaftEntryRecord};
use rill::storage::raftlog::RaftLog;
use rill::storage::{FsyncPolicy, LogOptions};

const CHILD: &str = "RILL_RAFT_CRASH_CHILD";

fn opts() -> LogOptions {
    LogOptions {
        segment_size: 4096,
        policy: FsyncPolicy::Always,
    }
}

/// A small deterministic generator (xorshift), the same in both processes.
struct Gen(u64);

impl Gen {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

/// What the log should hold: entries (index, term) from `first`, and the hard state.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Model {
    first: u64,
    terms: Vec<u64>,
    hs: HardStateRecord,
}

impl Model {
    fn last(&self) -> u64 {
        self.first + self.terms.len() as u64 - 1
    }
}

enum Op {
    Append {
        entries: Vec<RaftEntryRecord>,
        hs: HardStateRecord,
    },
    Compact(u64),
}

fn entry(index: u64, term: u64, size: usize) -> RaftEntryRecord {
    RaftEntryRecord {
        term,
        index,
        kind: EntryKind::Normal,
        context: Bytes::new(),
        data: Bytes::from(vec![(index as u8) ^ (term as u8); size]),
    }
}

/// The next operation on `m`, and `m` after it.
fn next_op(g: &mut Gen, m: &mut Model) -> Op {
    if g.next(8) == 0 && m.hs.commit >= m.first {
        let to = m.first + 1 + g.next(m.hs.commit - m.first + 1);
        let drop = (to - m.first) as usize;
        m.terms.drain(..drop);
        m.first = to;
        return Op::Compact(to);
    }
    let last = m.last();
    let term = m.terms.last().copied().unwrap_or(1).max(m.hs.term);
    // Now and then overwrite an uncommitted suffix, in a new term.
    let (start, term) = if g.next(5) == 0 && last > m.hs.commit {
        (m.hs.commit + 1 + g.next(last - m.hs.commit), term + 1)
    } else {
        (last + 1, term)
    };
    let n = 1 + g.next(6);
    let entries: Vec<RaftEntryRecord> = (start..start + n)
        .map(|i| entry(i, term, g.next(400) as usize))
        .collect();
    m.terms.truncate((start - m.first) as usize);
    m.terms.extend(entries.iter().map(|e| e.term));
    let commit = (m.hs.commit + g.next(4)).min(m.last());
    m.hs = HardStateRecord {
        term,
        vote: 1 + term % 3,
        commit,
    };
    Op::Append { entries, hs: m.hs }
}

fn start_model() -> Model {
    Model {
        first: 1,
        terms: Vec::new(),
        hs: HardStateRecord::default(),
    }
}

fn child(dir: &Path, seed: u64) {
    let log = RaftLog::open(dir, opts(), &mut |_, _| Ok(())).expect("child open");
    let mut g = Gen(seed);
    let mut m = start_model();
    for k in 1.. {
        match next_op(&mut g, &mut m) {
            Op::Append { entries, hs } => log.append(&entries, Some(hs)).expect("append"),
            Op::Compact(to) => log.compact(to, m.hs.commit).expect("compact"),
        }
        println!("done {k}");
    }
}

fn observed(log: &RaftLog) -> Model {
    let first = log.first_index();
    let last = log.last_index();
    let entries = log
        .entries(first, last + 1, None, |_| 0)
        .expect("entries read back");
    for (n, e) in entries.iter().enumerate() {
        assert_eq!(e.index, first + n as u64);
        assert_eq!(
            e.data,
            entry(e.index, e.term, e.data.len()).data,
            "entry {}",
            e.index
        );
    }
    Model {
        first,
        terms: entries.iter().map(|e| e.term).collect(),
        hs: log.state().hard_state,
    }
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rill-raftcrash-{}-{}", name, std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn killed_mid_write_the_raft_log_keeps_every_acknowledged_operation() {
    if let Ok(v) = std::env::var(CHILD) {
        let (dir, seed) = v.split_once(':').expect("dir:seed");
        child(Path::new(dir), seed.parse().expect("seed"));
        return;
    }
    let exe = std::env::current_exe().expect("test binary");
    let rounds: u64 = std::env::var("RAFT_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let mut g = Gen(0x9e37_79b9_7f4a_7c15);
    for round in 0..rounds {
        let dir = tmp(&format!("r{round}"));
        let seed = 1 + round * 7919;
        let mut proc = Command::new(&exe)
            .args([
                "--exact",
                "killed_mid_write_the_raft_log_keeps_every_acknowledged_operation",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, format!("{}:{seed}", dir.display()))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the child");
        let stdout = proc.stdout.take().expect("stdout");
        let acked = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let reader = {
            let acked = acked.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if let Some(k) = line.strip_prefix("done ").and_then(|k| k.parse().ok()) {
                        acked.store(k, std::sync::atomic::Ordering::SeqCst);
                    }
                }
            })
        };
        // Let it get going (the log opened, some operations done), then kill it at a
        // random moment.
        let started = Instant::now();
        while acked.load(std::sync::atomic::Ordering::SeqCst) < 3
            && started.elapsed() < Duration::from_secs(20)
        {
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(5 + g.next(150)));
        proc.kill().expect("kill -9");
        proc.wait().expect("reap");
        reader.join().expect("reader");
        let k = acked.load(std::sync::atomic::Ordering::SeqCst);
        assert!(k >= 3, "round {round}: the child made no progress");

        let log = RaftLog::open(&dir, opts(), &mut |_, _| Ok(())).expect("reopen after kill -9");
        let found = observed(&log);
        log.close();
        drop(log);
        // The states the child can have been in: after op k (acknowledged), after op k+1,
        // and for an append in flight, its cut (if it overwrites) done and a prefix of its
        // entries written, without the hard state that follows them (a write cut short, or
        // a group split by a segment roll). Harmless to Raft: nothing of it was
        // acknowledged, and the hard state kept is the one last acted on.
        let mut gm = Gen(seed);
        let mut m = start_model();
        for _ in 0..k {
            next_op(&mut gm, &mut m);
        }
        let after_k = m.clone();
        let op = next_op(&mut gm, &mut m);
        let mut allowed = vec![after_k.clone(), m.clone()];
        if let Op::Append { entries, .. } = &op {
            let mut partial = after_k.clone();
            partial
                .terms
                .truncate((entries[0].index - partial.first) as usize);
            for e in entries {
                allowed.push(partial.clone());
                partial.terms.push(e.term);
            }
            allowed.push(partial);
        }
        assert!(
            allowed.contains(&found),
            "round {round}: killed after {k} acknowledged operations, found {found:?}, expected one of {allowed:?}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
