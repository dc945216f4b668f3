//! Issue #18, defect 5: damage to the log must never pass for a torn tail, and a missing
//! segment must never go unnoticed. Each case writes acknowledged entries through a real
//! server, kills it with SIGKILL, damages the data directory the way a disk or an operator
//! could, and checks that the real binary refuses to start naming the file and offset (and
//! that `rill check` reports it) — while a genuinely torn final write still starts, with
//! every acknowledged entry.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::TestServer;

/// Entries written per case; at 10 KiB each they fill several 1 MiB segments.
const ENTRIES: usize = 400;

/// A server with 1 MiB segments, no automatic checkpoint, holding [`ENTRIES`] acknowledged
/// entries in stream `s` (IDs `1-1` …), killed with SIGKILL.
fn killed_server_with_segments() -> TestServer {
    let mut server =
        TestServer::start_with(&["--segment-size", "1mb", "--compaction-threshold", "0"]);
    let mut con = server.conn();
    let value = vec![b'v'; 10 * 1024];
    for i in 1..=ENTRIES {
        let id: String = redis::cmd("XADD")
            .arg("s")
            .arg(format!("{i}-1"))
            .arg("f")
            .arg(&value)
            .query(&mut con)
            .expect("XADD");
        assert_eq!(id, format!("{i}-1"));
    }
    server.signal_and_wait(9).expect("SIGKILL");
    assert!(
        segments(&server.dir).len() >= 4,
        "expected several segments"
    );
    server
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("log"))
        .expect("log dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

/// Offsets of the records of a segment file (after its 16-byte header), up to the zeros
/// the log preallocates after them.
fn record_offsets(data: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut off = 16;
    while off + 9 <= data.len() && data[off..off + 9].iter().any(|&b| b != 0) {
        out.push(off);
        let n = u32::from_le_bytes(data[off..off + 4].try_into().expect("4 bytes")) as usize;
        off += 9 + n;
    }
    out
}

/// Starts the real binary on `dir` and expects it to refuse, naming `file` and `offset`.
fn assert_start_refused(dir: &Path, file: &Path, offset: Option<u64>) -> String {
    // Output to a file and a deadline on the exit: a server that accepts the damage runs
    // on, and must fail the test rather than hang it.
    let log_path = dir.with_extension("start.log");
    let log = std::fs::File::create(&log_path).expect("start log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_rill"))
        .args(["--port", "0", "--bind", "127.0.0.1", "--dir"])
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("run rill");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let said = std::fs::read_to_string(&log_path).unwrap_or_default();
    let _ = std::fs::remove_file(&log_path);
    assert!(
        status.is_some_and(|s| !s.success()),
        "started on a damaged log:\n{said}"
    );
    let name = file.file_name().and_then(|n| n.to_str()).expect("name");
    assert!(said.contains(name), "does not name {name}:\n{said}");
    if let Some(offset) = offset {
        assert!(
            said.contains(&format!("at offset {offset}")),
            "does not name offset {offset}:\n{said}"
        );
    }
    let check = Command::new(env!("CARGO_BIN_EXE_rill"))
        .arg("check")
        .arg(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run rill check");
    let report = String::from_utf8_lossy(&check.stdout).to_string();
    assert_eq!(
        check.status.code(),
        Some(1),
        "rill check calls it clean:\n{report}"
    );
    assert!(
        report.contains(name),
        "rill check does not name {name}:\n{report}"
    );
    said
}

fn xlen(server: &TestServer) -> usize {
    redis::cmd("XLEN")
        .arg("s")
        .query(&mut server.conn())
        .expect("XLEN")
}

/// A flipped bit in a record's length field in the newest segment: the record now "runs
/// past the end of the file", which used to be taken for a torn write and every record after
/// it dropped.
#[test]
fn damaged_length_in_the_newest_segment_is_not_a_torn_tail() {
    let server = killed_server_with_segments();
    let newest = segments(&server.dir).pop().expect("segment");
    let mut data = std::fs::read(&newest).expect("read");
    let offs = record_offsets(&data);
    assert!(
        offs.len() >= 3,
        "newest segment holds {} records",
        offs.len()
    );
    let victim = offs[offs.len() / 2];
    data[victim + 3] ^= 0x10; // the length's high byte: now far past the end of the file
    std::fs::write(&newest, &data).expect("write");
    let said = assert_start_refused(&server.dir, &newest, Some(victim as u64));
    assert!(said.contains("valid record follows"), "{said}");
}

/// The same damage to the very last record: nothing follows it, but its checksum still
/// matches the bytes that are there, so it was complete.
#[test]
fn damaged_length_of_the_last_record_is_not_a_torn_tail() {
    let server = killed_server_with_segments();
    let newest = segments(&server.dir).pop().expect("segment");
    let mut data = std::fs::read(&newest).expect("read");
    let victim = *record_offsets(&data).last().expect("a record");
    data[victim + 2] ^= 0x01;
    std::fs::write(&newest, &data).expect("write");
    let said = assert_start_refused(&server.dir, &newest, Some(victim as u64));
    assert!(said.contains("length field damaged"), "{said}");
}

#[test]
fn deleted_oldest_segment_is_detected() {
    let server = killed_server_with_segments();
    let oldest = segments(&server.dir).remove(0);
    std::fs::remove_file(&oldest).expect("rm");
    assert_start_refused(&server.dir, &oldest, None);
}

#[test]
fn deleted_middle_segment_is_detected() {
    let server = killed_server_with_segments();
    let segs = segments(&server.dir);
    std::fs::remove_file(&segs[1]).expect("rm");
    // Named as the segment the log jumps over, at the seal of the one before it.
    let said = assert_start_refused(&server.dir, &segs[0], None);
    assert!(said.contains("is missing"), "{said}");
}

#[test]
fn deleted_newest_segment_is_detected() {
    let server = killed_server_with_segments();
    let newest = segments(&server.dir).pop().expect("segment");
    std::fs::remove_file(&newest).expect("rm");
    let segs = segments(&server.dir);
    let said = assert_start_refused(&server.dir, segs.last().expect("segment"), None);
    assert!(said.contains("is missing"), "{said}");
}

/// A middle segment cut at a record boundary looks whole record by record; its missing
/// seal gives it away.
#[test]
fn truncated_middle_segment_is_detected() {
    let server = killed_server_with_segments();
    let segs = segments(&server.dir);
    let data = std::fs::read(&segs[1]).expect("read");
    let offs = record_offsets(&data);
    std::fs::write(&segs[1], &data[..offs[offs.len() / 2]]).expect("write");
    let said = assert_start_refused(&server.dir, &segs[1], None);
    assert!(said.contains("without the seal"), "{said}");
}

/// The control: a write really cut short by a crash (at any byte of the last record, or as
/// a zero-filled hole a power cut leaves) still starts, keeping every complete record —
/// and then `rill check --repair` is not needed.
#[test]
fn torn_final_write_still_starts_with_every_complete_record() {
    let mut server = killed_server_with_segments();
    let newest = segments(&server.dir).pop().expect("segment");
    let full = std::fs::read(&newest).expect("read");
    let last = *record_offsets(&full).last().expect("a record");
    // Cut inside the payload: the last entry was "never acknowledged".
    std::fs::write(&newest, &full[..last + 100]).expect("write");
    server.restart();
    assert_eq!(xlen(&server), ENTRIES - 1);
    // Power cut: the file's length reached the disk, the last record's data did not.
    let mut con = server.conn();
    let _: String = redis::cmd("XADD")
        .arg("s")
        .arg("9999-1")
        .arg("f")
        .arg(vec![b'w'; 4096])
        .query(&mut con)
        .expect("XADD");
    server.signal_and_wait(9).expect("SIGKILL");
    let newest = segments(&server.dir).pop().expect("segment");
    let mut data = std::fs::read(&newest).expect("read");
    let last = *record_offsets(&data).last().expect("a record");
    // A page of the record (4 KiB, page-aligned) never written: zeros.
    let hole_from = (last / 4096 + 1) * 4096;
    let hole_to = (hole_from + 4096).min(data.len());
    assert!(hole_from < hole_to, "the last record spans a page boundary");
    for b in &mut data[hole_from..hole_to] {
        *b = 0;
    }
    std::fs::write(&newest, &data).expect("write");
    server.restart();
    assert_eq!(xlen(&server), ENTRIES - 1);
}

/// `rill check --repair` cuts at the damage and the server starts again.
#[test]
fn repair_after_a_deleted_segment_lets_the_server_start() {
    let mut server = killed_server_with_segments();
    let segs = segments(&server.dir);
    std::fs::remove_file(&segs[2]).expect("rm");
    let check = Command::new(env!("CARGO_BIN_EXE_rill"))
        .args(["check", "--repair"])
        .arg(&server.dir)
        .stdin(Stdio::null())
        .output()
        .expect("run rill check --repair");
    assert_eq!(
        check.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    server.restart();
    let kept = xlen(&server);
    assert!(kept > 0 && kept < ENTRIES, "kept {kept}");
    // The repaired log goes on: new writes survive another crash.
    let mut con = server.conn();
    let _: String = redis::cmd("XADD")
        .arg("s")
        .arg("9999-1")
        .arg("f")
        .arg("x")
        .query(&mut con)
        .expect("XADD");
    server.restart();
    assert_eq!(xlen(&server), kept + 1);
}
