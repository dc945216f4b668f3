//! Checkpoints: the state survives a SIGKILL after a checkpoint exactly, and the
//! log before it is deleted so space comes back.
mod common;

use std::time::{Duration, Instant};

use common::TestServer;

fn q(c: &mut redis::Connection, args: &[&str]) -> redis::Value {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(c).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

fn log_files(s: &TestServer) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(s.dir.join("log"))
        .expect("log dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().to_string())
        .collect();
    v.sort();
    v
}

fn log_bytes(s: &TestServer) -> u64 {
    std::fs::read_dir(s.dir.join("log"))
        .expect("log dir")
        .map(|e| e.expect("entry").metadata().expect("meta").len())
        .sum()
}

/// Waits until a new checkpoint file exists and the checkpoint has finished: the file
/// is renamed into place before the older segments are deleted and before
/// `aof_rewrite_in_progress` drops to 0, so the file alone does not mean done.
fn wait_for_checkpoint(s: &TestServer, previous: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut c = s.conn();
    while Instant::now() < deadline {
        let files = log_files(s);
        if files.iter().any(|f| f.ends_with(".ckp")) && files != previous {
            let info: String = redis::cmd("INFO")
                .arg("persistence")
                .query(&mut c)
                .expect("INFO persistence");
            if info.contains("aof_rewrite_in_progress:0") {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("no checkpoint written: {:?}", log_files(s));
}

/// Everything observable about the stream except consumers' seen/active times,
/// which restart at recovery as in Redis.
fn snapshot(c: &mut redis::Connection) -> String {
    let mut out = format!("{:?}\n", q(c, &["XRANGE", "s", "-", "+"]));
    // Extended XPENDING without the idle time (element 2 of each entry).
    if let redis::Value::Array(entries) = q(c, &["XPENDING", "s", "g", "-", "+", "100"]) {
        for e in entries {
            if let redis::Value::Array(f) = e {
                out += &format!("{:?} {:?} {:?}\n", f[0], f[1], f[3]);
            }
        }
    }
    out += &format!("{:?}\n", q(c, &["XINFO", "GROUPS", "s"]));
    out += &format!("{:?}\n", q(c, &["XLEN", "s"]));
    for field in [
        "entries-added",
        "max-deleted-entry-id",
        "last-generated-id",
        "recorded-first-entry-id",
    ] {
        let info = q(c, &["XINFO", "STREAM", "s"]);
        out += &format!("{field}: {}\n", extract(&info, field));
    }
    out += &format!("{:?}\n", q(c, &["XINFO", "STREAM", "empty"]));
    out += &format!("{:?}\n", q(c, &["GET", "str"]));
    out
}

fn extract(v: &redis::Value, field: &str) -> String {
    if let redis::Value::Array(items) = v {
        for pair in items.chunks(2) {
            if let redis::Value::BulkString(k) = &pair[0] {
                if k == field.as_bytes() {
                    return format!("{:?}", pair[1]);
                }
            }
        }
    }
    panic!("{field} not in {v:?}")
}

#[test]
fn state_survives_sigkill_after_checkpoint() {
    let mut s = TestServer::start();
    let mut c = s.conn();
    for i in 1..=50 {
        q(
            &mut c,
            &[
                "XADD",
                "s",
                &format!("{i}-1"),
                "f",
                &format!("v{i}"),
                "g",
                "x",
            ],
        );
    }
    q(&mut c, &["XDEL", "s", "7-1", "8-1"]);
    q(&mut c, &["XTRIM", "s", "MINID", "5-1"]);
    q(&mut c, &["XGROUP", "CREATE", "s", "g", "0"]);
    q(
        &mut c,
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "alice",
            "COUNT",
            "10",
            "STREAMS",
            "s",
            ">",
        ],
    );
    q(
        &mut c,
        &["XCLAIM", "s", "g", "bob", "0", "9-1", "RETRYCOUNT", "7"],
    );
    q(&mut c, &["XGROUP", "CREATECONSUMER", "s", "g", "carol"]);
    q(
        &mut c,
        &["XGROUP", "CREATE", "empty", "g2", "$", "MKSTREAM"],
    );
    q(&mut c, &["SET", "str", "hello"]);
    let before_files = log_files(&s);
    let _: String = redis::cmd("BGREWRITEAOF")
        .query(&mut c)
        .expect("bgrewriteaof");
    wait_for_checkpoint(&s, &before_files);
    // Writes after the checkpoint land in the new segment and are replayed on top.
    q(&mut c, &["XADD", "s", "60-1", "f", "after"]);
    q(&mut c, &["XACK", "s", "g", "5-1"]);
    // A pending entry whose stream entry is gone must survive the next checkpoint.
    q(&mut c, &["XDEL", "s", "6-1", "9-1"]);
    let files = log_files(&s);
    let _: String = redis::cmd("BGREWRITEAOF")
        .query(&mut c)
        .expect("bgrewriteaof");
    wait_for_checkpoint(&s, &files);
    let expected = snapshot(&mut c);

    s.restart();
    let mut c = s.conn();
    assert_eq!(snapshot(&mut c), expected);
    // Older checkpoints are superseded; the old segments stay, since the entries'
    // payloads live there (checkpoints hold only the index).
    let files = log_files(&s);
    assert_eq!(
        files.iter().filter(|f| f.ends_with(".ckp")).count(),
        1,
        "{files:?}"
    );
    assert!(
        files.iter().any(|f| f == "00000000000000000001.seg"),
        "segment holding live payloads was deleted: {files:?}"
    );
}

#[test]
fn checkpoint_reclaims_space_of_deleted_entries() {
    let s = TestServer::start();
    let mut c = s.conn();
    let payload = "x".repeat(1000);
    for i in 1..=2000 {
        q(&mut c, &["XADD", "big", &format!("{i}-1"), "p", &payload]);
    }
    q(&mut c, &["XTRIM", "big", "MAXLEN", "100"]);
    let before = log_bytes(&s);
    let files = log_files(&s);
    let _: String = redis::cmd("BGREWRITEAOF")
        .query(&mut c)
        .expect("bgrewriteaof");
    wait_for_checkpoint(&s, &files);
    assert!(
        before > 2_000_000,
        "log too small to be meaningful: {before}"
    );
    // The first checkpoint keeps the segment that holds the 100 live payloads;
    // compaction copies them out and a second checkpoint deletes it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut after = log_bytes(&s);
    while after >= 400_000 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
        after = log_bytes(&s);
    }
    assert!(
        after < 400_000,
        "checkpoint and compaction did not reclaim space: {before} -> {after}"
    );
    let n: u64 = redis::cmd("XLEN").arg("big").query(&mut c).expect("xlen");
    assert_eq!(n, 100);
}
