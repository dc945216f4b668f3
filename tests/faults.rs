//! Fault injection: a failed write or fsync poisons the log, nothing more is accepted,
//! every waiter learns it, data is neither written nor read (memory may hold what the log did
//! not accept), and after a restart nothing acknowledged is lost.
//!
//! Run with `cargo test --features failpoints --test faults`; without the feature this file
//! compiles to nothing. The in-process tests drive `rill::storage::Log` directly with the
//! `log::write` and `log::fsync` failpoints; the black-box test starts the real server with
//! `FAILPOINTS=log::fsync=…`, which `main` hands to `fail::FailScenario::setup()`.
#![cfg(feature = "failpoints")]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rill::storage::{FsyncPolicy, Log, LogOptions, LoggedCommand, StorageError};

/// Opens a data directory this process closed a moment ago. Another test of this binary
/// may be spawning a server at that moment: between its fork and its exec the child holds
/// a copy of every descriptor, the directory's lock included (close-on-exec closes it
/// only at the exec), so the flock can still look taken for that instant. Retried for up
/// to 2 s; any other error, or a lock still held after that, fails the test.
fn reopen<T, E: LockError>(what: &str, mut open: impl FnMut() -> Result<T, E>) -> T {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match open() {
            Ok(v) => return v,
            Err(e) if e.is_locked() && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("{what}: {e:?}"),
        }
    }
}

/// An open's error that may say the directory is locked.
trait LockError: std::fmt::Debug {
    fn is_locked(&self) -> bool;
}

impl LockError for StorageError {
    fn is_locked(&self) -> bool {
        matches!(self, StorageError::Locked { .. })
    }
}

impl LockError for rill::storage::raftlog::RaftLogError {
    fn is_locked(&self) -> bool {
        matches!(
            self,
            rill::storage::raftlog::RaftLogError::Storage(StorageError::Locked { .. })
        )
    }
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rill-faults-{}-{}", name, std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn opts() -> LogOptions {
    LogOptions {
        segment_size: 1 << 20,
        policy: FsyncPolicy::Always,
    }
}

fn record(i: usize) -> Vec<LoggedCommand> {
    vec![LoggedCommand {
        db: 0,
        argv: vec![
            Bytes::from("XADD"),
            Bytes::from("s"),
            Bytes::from(format!("{}-1", i + 1)),
            Bytes::from("n"),
            Bytes::from(i.to_string()),
        ],
    }]
}

/// Appends `n` records one commit at a time, each acknowledged (durable) before the next.
async fn acknowledged(log: &Log, from: usize, n: usize) {
    for i in from..from + n {
        let lsn = log.append(&record(i)).expect("append");
        log.wait_durable(lsn).await.expect("durable");
    }
}

fn is_poisoned(e: &StorageError) -> bool {
    matches!(e, StorageError::Poisoned(_))
}

/// Reopens `dir` and checks that the first `acked` records are exactly the acknowledged ones;
/// at most `unacked` more (written, never acknowledged) may follow.
fn assert_recovered(dir: &Path, acked: usize, unacked: usize) {
    let (log, batches) = reopen("reopen after the failure", || Log::open(dir, opts()));
    assert!(
        (acked..=acked + unacked).contains(&batches.len()),
        "recovered {} records, acknowledged {acked}, unacknowledged {unacked}",
        batches.len()
    );
    for (i, b) in batches.iter().enumerate() {
        assert_eq!(b, &record(i), "record {i}");
    }
    log.close();
}

#[tokio::test]
async fn failed_fsync_poisons_and_nothing_acknowledged_is_lost() {
    let scenario = fail::FailScenario::setup();
    let dir = tmp("fsync");
    let (log, _) = reopen("open", || Log::open(&dir, opts()));
    acknowledged(&log, 0, 5).await;

    fail::cfg("log::fsync", "return").expect("failpoint");
    let lsn = log
        .append(&record(5))
        .expect("append before the failure is known");
    let err = log.wait_durable(lsn).await.expect_err("not durable");
    assert!(is_poisoned(&err), "{err}");
    assert!(err.to_string().contains("injected fsync failure"), "{err}");
    assert!(log.is_poisoned());

    // The disk is healthy again, but the log stays poisoned: the kernel may have dropped the
    // dirty pages, so only a restart (which re-reads what is on disk) may accept writes.
    fail::remove("log::fsync");
    let refused = log.append(&record(6)).expect_err("refused");
    assert!(is_poisoned(&refused), "{refused}");
    assert!(
        refused
            .to_string()
            .contains("writes and reads of data are refused until restart"),
        "{refused}"
    );
    // Waiting for something already durable still succeeds: readers of old state go on.
    log.wait_durable(lsn - 1)
        .await
        .expect("old records stay durable");
    log.close();
    drop(log);
    assert_recovered(&dir, 5, 1);
    let _ = std::fs::remove_dir_all(&dir);
    scenario.teardown();
}

#[tokio::test]
async fn failed_write_poisons_and_every_waiter_gets_the_error() {
    let scenario = fail::FailScenario::setup();
    let dir = tmp("write");
    let (log, _) = reopen("open", || Log::open(&dir, opts()));
    let log = std::sync::Arc::new(log);
    acknowledged(&log, 0, 3).await;

    fail::cfg("log::write", "return").expect("failpoint");
    // Several clients wait on records that share the failed group commit (or a later one).
    let mut waiters = Vec::new();
    for i in 3..11 {
        match log.append(&record(i)) {
            Ok(lsn) => {
                let log = log.clone();
                waiters.push(tokio::spawn(async move { log.wait_durable(lsn).await }));
            }
            Err(e) => assert!(is_poisoned(&e), "{e}"),
        }
    }
    assert!(!waiters.is_empty());
    for w in waiters {
        let r = tokio::time::timeout(Duration::from_secs(10), w)
            .await
            .expect("a waiter hung after the failure")
            .expect("join");
        let e = r.expect_err("a waiter was told its record is durable");
        assert!(is_poisoned(&e), "{e}");
        assert!(e.to_string().contains("injected write failure"), "{e}");
    }
    fail::remove("log::write");
    assert!(log.append(&record(20)).is_err());
    log.close();
    drop(log);
    // Nothing was written after the failure: exactly the acknowledged records come back.
    assert_recovered(&dir, 3, 0);
    let _ = std::fs::remove_dir_all(&dir);
    scenario.teardown();
}

#[tokio::test]
async fn fsync_failing_after_some_commits_keeps_every_earlier_commit() {
    let scenario = fail::FailScenario::setup();
    let dir = tmp("later");
    let (log, _) = reopen("open", || Log::open(&dir, opts()));
    // Four fsyncs succeed, then every one fails.
    fail::cfg("log::fsync", "4*off->return").expect("failpoint");
    let mut acked = 0;
    let mut first_error = None;
    for i in 0..10 {
        let Ok(lsn) = log.append(&record(i)) else {
            break;
        };
        match log.wait_durable(lsn).await {
            Ok(()) => acked += 1,
            Err(e) => {
                first_error = Some(e);
                break;
            }
        }
    }
    assert_eq!(acked, 4);
    assert!(first_error.as_ref().is_some_and(is_poisoned));
    log.close();
    drop(log);
    fail::remove("log::fsync");
    assert_recovered(&dir, 4, 1);
    let _ = std::fs::remove_dir_all(&dir);
    scenario.teardown();
}

// ---------------------------------------------------------------------------------------------
// Black box: the real server with a failing disk.
// ---------------------------------------------------------------------------------------------

struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(dir: &Path, failpoints: Option<&str>) -> Server {
    start_with(dir, failpoints, &[])
}

/// [`start`] with extra `--directive value` arguments.
fn start_with(dir: &Path, failpoints: Option<&str>, extra: &[&str]) -> Server {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rill"));
    cmd.args(["--port", "0", "--bind", "127.0.0.1", "--dir"])
        .arg(dir)
        .args(extra)
        .env("NO_COLOR", "1")
        .env_remove("RILL_LOG")
        .env_remove("FAILPOINTS")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(f) = failpoints {
        cmd.env("FAILPOINTS", f);
    }
    let mut child = cmd.spawn().expect("spawn rill");
    let port = common::banner_port(&mut child, Duration::from_secs(30)).expect("server banner");
    let server = Server { child, port };
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = [0u8; 7];
            if s.write_all(b"PING\r\n").is_ok()
                && s.read_exact(&mut buf).is_ok()
                && &buf == b"+PONG\r\n"
            {
                return server;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("server did not become ready");
}

/// Sends one inline command and reads one reply line (all replies used here are one line,
/// or a bulk whose header line is enough).
fn send(s: &mut BufReader<TcpStream>, cmd: &str) -> String {
    s.get_mut()
        .write_all(format!("{cmd}\r\n").as_bytes())
        .expect("write");
    let mut line = String::new();
    s.read_line(&mut line).expect("read");
    if let Some(n) = line
        .strip_prefix('$')
        .and_then(|n| n.trim().parse::<usize>().ok())
    {
        let mut body = vec![0u8; n + 2];
        s.read_exact(&mut body).expect("bulk");
        return String::from_utf8_lossy(&body[..n]).into_owned();
    }
    line.trim_end().to_string()
}

#[test]
fn server_with_failing_fsync_refuses_writes_and_reads_and_loses_nothing() {
    let dir = tmp("server");
    {
        // Three commits succeed; every fsync after that fails.
        let server = start(&dir, Some("log::fsync=3*off->return"));
        let stream = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut c = BufReader::new(stream);
        for i in 1..=3 {
            assert_eq!(
                send(&mut c, &format!("XADD s {i}-1 n {i}")),
                format!("{i}-1")
            );
        }
        let failed = send(&mut c, "XADD s 4-1 n 4");
        assert!(
            failed.starts_with("-MISCONF") && failed.contains("poisoned"),
            "the write whose fsync failed must not be acknowledged: {failed}"
        );
        let refused = send(&mut c, "XADD s 5-1 n 5");
        assert!(
            refused.starts_with('-') && refused.contains("poisoned"),
            "later writes are refused: {refused}"
        );
        // The server stays up, but data is not read either: memory holds the XADD the
        // log did not accept, which a restart may not show (issue #18, defect 11).
        assert_eq!(send(&mut c, "PING"), "+PONG");
        let len = send(&mut c, "XLEN s");
        assert!(
            len.starts_with("-MISCONF") && len.contains("poisoned"),
            "a read showed state the log did not accept: {len}"
        );
        assert!(send(&mut c, "XRANGE s - +").starts_with("-MISCONF"));
        assert_eq!(send(&mut c, "MULTI"), "+OK");
        assert!(send(&mut c, "XLEN s").starts_with("-MISCONF"));
        assert!(send(&mut c, "EXEC").starts_with("-EXECABORT"));
        // No checkpoint of a state the log did not accept.
        assert!(send(&mut c, "BGREWRITEAOF").starts_with("-MISCONF"));
    }
    // Restarted on a healthy disk: every acknowledged entry is there; the refused one is not.
    let server = start(&dir, None);
    let stream = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut c = BufReader::new(stream);
    let len = send(&mut c, "XLEN s");
    assert!(len == ":3" || len == ":4", "XLEN after restart {len}");
    for i in 1..=3 {
        // XRANGE s i-1 i-1 → *1, *2, $id, id, *2, $1 n, $v …: the count line says it exists.
        assert_eq!(
            send(&mut c, &format!("XRANGE s {i}-1 {i}-1")),
            "*1",
            "entry {i}-1"
        );
        let mut rest = String::new();
        for _ in 0..8 {
            rest.clear();
            c.read_line(&mut rest).expect("entry");
        }
        assert_eq!(rest.trim_end(), i.to_string(), "field value of {i}-1");
    }
    assert_eq!(send(&mut c, "XRANGE s 5-1 5-1"), "*0");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A read that finds nothing but creates its consumer changes what later replies show
/// (XINFO CONSUMERS, the consumer's own reads), so its reply waits for the log like a
/// write's: with the fsync failing it answers the error, not an empty read the next crash
/// would take back. Found by the power-cut test: a consumer created by an empty
/// XREADGROUP was gone after the cut.
#[test]
fn empty_read_that_creates_its_consumer_waits_for_the_fsync() {
    let dir = tmp("consumer-create");
    let server = start(&dir, Some("log::fsync=2*off->return"));
    let stream = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut c = BufReader::new(stream);
    assert_eq!(send(&mut c, "XADD s 1-1 n 1"), "1-1");
    assert_eq!(send(&mut c, "XGROUP CREATE s g $"), "+OK");
    let read = send(&mut c, "XREADGROUP GROUP g alice STREAMS s >");
    assert!(
        read.starts_with("-MISCONF") && read.contains("poisoned"),
        "a read that created its consumer was answered before it was durable: {read}"
    );
    drop(c);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The background zero fill ahead of the records (preallocation) shares the segment file
/// with them: its failed fsync may have dropped their pages too, so it poisons the log like
/// a failed commit, and every record acknowledged before is still there after a restart.
#[tokio::test]
async fn failed_fsync_of_the_preallocated_space_poisons_the_log() {
    let scenario = fail::FailScenario::setup();
    let dir = tmp("prealloc");
    let (log, _) = reopen("open", || Log::open(&dir, opts()));
    fail::cfg("log::prealloc_fsync", "return").expect("failpoint");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut acked = 0;
    let mut error = None;
    while Instant::now() < deadline {
        let lsn = match log.append(&record(acked)) {
            Ok(lsn) => lsn,
            Err(e) => {
                error = Some(e);
                break;
            }
        };
        match log.wait_durable(lsn).await {
            Ok(()) => acked += 1,
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    let error = error.expect("the failed zero fill never poisoned the log");
    assert!(is_poisoned(&error), "{error}");
    log.close();
    drop(log);
    fail::remove("log::prealloc_fsync");
    // The record whose wait saw the poison may or may not have reached the file.
    assert_recovered(&dir, acked, 1);
    let _ = std::fs::remove_dir_all(&dir);
    scenario.teardown();
}

mod raft_log {
    use super::*;
    use rill::storage::raft_record::{EntryKind, HardStateRecord, RaftEntryRecord};
    use rill::storage::raftlog::{RaftLog, RaftLogError};

    fn small() -> LogOptions {
        LogOptions {
            segment_size: 1024,
            policy: FsyncPolicy::Always,
        }
    }

    fn ents(from: u64, to: u64, term: u64) -> Vec<RaftEntryRecord> {
        (from..=to)
            .map(|index| RaftEntryRecord {
                term,
                index,
                kind: EntryKind::Normal,
                context: Bytes::new(),
                data: Bytes::from(format!("entry {index} term {term} {}", "x".repeat(60))),
            })
            .collect()
    }

    fn hs(term: u64, vote: u64, commit: u64) -> HardStateRecord {
        HardStateRecord { term, vote, commit }
    }

    fn open(dir: &Path) -> RaftLog {
        reopen("open", || RaftLog::open(dir, small(), &mut |_, _| Ok(())))
    }

    fn all(log: &RaftLog) -> Vec<RaftEntryRecord> {
        log.entries(log.first_index(), log.last_index() + 1, None, |_| 0)
            .expect("entries")
    }

    fn poisoned(e: &RaftLogError) -> bool {
        matches!(e, RaftLogError::Storage(StorageError::Poisoned(_)))
    }

    #[test]
    fn a_failed_fsync_of_raft_entries_poisons_and_the_log_reopens_without_a_gap() {
        let scenario = fail::FailScenario::setup();
        let dir = tmp("raft-fsync");
        let log = open(&dir);
        log.append(&ents(1, 10, 1), Some(hs(1, 1, 5)))
            .expect("append");
        fail::cfg("log::fsync", "return").expect("failpoint");
        let err = log
            .append(&ents(11, 15, 1), Some(hs(1, 1, 12)))
            .expect_err("not durable");
        assert!(poisoned(&err), "{err}");
        fail::remove("log::fsync");
        let refused = log.append(&ents(11, 11, 1), None).expect_err("refused");
        assert!(poisoned(&refused), "{refused}");
        // The map never showed what was not made durable.
        assert_eq!(log.last_index(), 10);
        log.close();
        drop(log);
        // The written but unsynced records may be there after a restart (the page cache
        // kept them) or not, but whole: never a gap, and the state with its entries.
        let log = open(&dir);
        let last = log.last_index();
        assert!(last == 10 || last == 15, "last index {last}");
        assert_eq!(all(&log), ents(1, last, 1));
        let commit = log.state().hard_state.commit;
        assert!(
            commit == 5 || (commit == 12 && last == 15),
            "commit {commit}"
        );
        log.close();
        let _ = std::fs::remove_dir_all(&dir);
        scenario.teardown();
    }

    #[test]
    fn a_truncation_that_fails_midway_is_finished_at_restart_and_keeps_the_vote() {
        let scenario = fail::FailScenario::setup();
        for fail_at in 0..6 {
            let dir = tmp(&format!("raft-cut-{fail_at}"));
            let log = open(&dir);
            log.append(&ents(1, 60, 1), Some(hs(1, 1, 5)))
                .expect("append");
            log.set_hard_state(hs(2, 3, 5)).expect("vote");
            fail::cfg("log::truncate", &format!("{fail_at}*off->return")).expect("failpoint");
            let err = log
                .append(&ents(10, 12, 2), Some(hs(2, 3, 6)))
                .expect_err("the cut fails");
            assert!(
                poisoned(&err) || matches!(err, RaftLogError::Storage(_)),
                "{err}"
            );
            fail::remove("log::truncate");
            log.close();
            drop(log);
            let log = open(&dir);
            assert_eq!(all(&log), ents(1, 9, 1), "failed at step {fail_at}");
            assert_eq!(
                log.state().hard_state,
                hs(2, 3, 5),
                "failed at step {fail_at}"
            );
            log.append(&ents(10, 12, 2), Some(hs(2, 3, 6)))
                .expect("append after the restart");
            log.close();
            drop(log);
            let log = open(&dir);
            let mut want = ents(1, 9, 1);
            want.extend(ents(10, 12, 2));
            assert_eq!(all(&log), want);
            assert_eq!(log.state().hard_state, hs(2, 3, 6));
            log.close();
            let _ = std::fs::remove_dir_all(&dir);
        }
        scenario.teardown();
    }
}

/// `Log::sync` (checkpoints, the Raft log) must not return while the fsync that covers its
/// data is still running on another thread: under `everysec` the background fsync takes the
/// "unsynced" mark before it syncs, and a `sync` that found the mark gone used to return at
/// once, with the data possibly still only in the page cache.
#[tokio::test]
async fn sync_waits_for_a_background_fsync_under_way() {
    let scenario = fail::FailScenario::setup();
    let dir = tmp("sync-wait");
    let (log, _) = Log::open(
        &dir,
        LogOptions {
            segment_size: 1 << 20,
            policy: FsyncPolicy::Everysec,
        },
    )
    .expect("open");
    let lsn = log.append(&record(0)).expect("append");
    log.wait_durable(lsn).await.expect("written");
    // The next fsync, whoever runs it, takes 800 ms.
    fail::cfg("log::fsync", "1*sleep(800)->off").expect("failpoint");
    let log = std::sync::Arc::new(log);
    let first = {
        let log = log.clone();
        std::thread::spawn(move || log.sync())
    };
    std::thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    log.sync().expect("sync");
    let waited = t.elapsed();
    first.join().expect("thread").expect("first sync");
    assert!(
        waited >= Duration::from_millis(400),
        "sync returned after {waited:?}, while the fsync covering its data was still running"
    );
    log.close();
    let _ = std::fs::remove_dir_all(&dir);
    scenario.teardown();
}

/// Raft mode (`cluster-raft yes`): a write is acknowledged once its entry is committed, which
/// in a group of one voter is once the group commit's fsync succeeded. When an fsync fails,
/// the log is poisoned and the group stops: the write waiting for it gets the error, never an
/// acknowledgement, and every later command touching data is refused. After a restart on a
/// healthy disk every acknowledged write is there. Start-up fsyncs (the group's
/// configuration, its election) come first, so the writes run until the first failure
/// rather than counting on a number.
#[test]
fn raft_mode_with_failing_fsync_acknowledges_nothing_it_did_not_sync() {
    let dir = tmp("raft");
    let raft = ["--cluster-raft", "yes", "--appendfsync", "always"];
    let mut acked = Vec::new();
    {
        let server = start_with(&dir, Some("log::fsync=12*off->return"), &raft);
        let stream = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut c = BufReader::new(stream);
        let mut failed = None;
        for i in 1..=200 {
            let reply = send(&mut c, &format!("XADD s {i}-1 n {i}"));
            if reply == format!("{i}-1") {
                acked.push(i);
                continue;
            }
            failed = Some(reply);
            break;
        }
        let failed = failed.expect("an fsync failed, so some write must have been refused");
        assert!(
            failed.starts_with("-MISCONF") && failed.contains("poisoned"),
            "the write whose fsync failed must not be acknowledged: {failed}"
        );
        assert!(!acked.is_empty(), "no write succeeded before the failure");
        let refused = send(&mut c, "XADD s 999-1 n x");
        assert!(
            refused.starts_with("-MISCONF") && refused.contains("poisoned"),
            "later writes are refused: {refused}"
        );
        assert!(send(&mut c, "XLEN s").starts_with("-MISCONF"));
        assert_eq!(send(&mut c, "PING"), "+PONG");
    }
    let server = start_with(&dir, None, &raft);
    let stream = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut c = BufReader::new(stream);
    let len: usize = send(&mut c, "XLEN s")
        .trim_start_matches(':')
        .parse()
        .expect("XLEN");
    // The refused write may have reached the disk before its fsync failed; nothing else.
    assert!(
        len == acked.len() || len == acked.len() + 1,
        "XLEN {len} after restart, {} acknowledged",
        acked.len()
    );
    for i in &acked {
        assert_eq!(
            send(&mut c, &format!("XRANGE s {i}-1 {i}-1")),
            "*1",
            "entry {i}-1"
        );
        let mut rest = String::new();
        for _ in 0..8 {
            rest.clear();
            c.read_line(&mut rest).expect("entry");
        }
    }
    assert_eq!(send(&mut c, "XRANGE s 999-1 999-1"), "*0");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The Raft driver in process: a proposal whose group commit's fsync fails is never
/// committed — its waiter gets the poison error, the `committed` index stays where the last
/// good fsync left it, and the group refuses further proposals.
#[tokio::test]
async fn raft_driver_commits_nothing_after_a_failed_fsync() {
    use rill::cluster::raft::{RaftError, RaftNode};
    use rill::storage::raftlog::RaftLog;
    let scenario = fail::FailScenario::setup();
    let dir = tmp("raft-driver");
    let log = std::sync::Arc::new(RaftLog::open(&dir, opts(), &mut |_, _| Ok(())).expect("open"));
    let node = RaftNode::start(log.clone(), 0).expect("start");
    node.recover(&mut |_, _| Ok(())).expect("elect");
    let good = node.propose(b"one".to_vec()).expect("propose").index;
    node.wait_committed(good).await.expect("committed");
    let committed = node.committed();
    assert!(committed >= good);

    fail::cfg("log::fsync", "return").expect("failpoint");
    let bad = node.propose(b"two".to_vec()).expect("propose").index;
    let err = node.wait_committed(bad).await.expect_err("not committed");
    assert!(matches!(err, RaftError::Storage(_)), "{err}");
    assert!(err.to_string().contains("injected fsync failure"), "{err}");
    assert_eq!(
        node.committed(),
        committed,
        "commit moved past a failed fsync"
    );
    fail::remove("log::fsync");
    assert!(
        node.propose(b"three".to_vec()).is_err(),
        "a stopped group proposed"
    );
    assert!(node.wait_committed(bad).await.is_err());
    log.close();
    drop(node);
    scenario.teardown();
    let _ = std::fs::remove_dir_all(&dir);
}
