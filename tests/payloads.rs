//! Entries live on disk: memory follows the number of entries, not their size; payloads
//! come back from the log segments after a restart; a damaged payload is reported.

mod common;

use std::time::{Duration, Instant};

use common::TestServer;

fn info_field(c: &mut redis::Connection, section: &str, name: &str) -> u64 {
    let text: String = redis::cmd("INFO").arg(section).query(c).expect("info");
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in INFO {section}"))
}

fn log_files(s: &TestServer) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(s.dir.join("log"))
        .expect("log dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn checkpoint_now(s: &TestServer, c: &mut redis::Connection) {
    let before = log_files(s);
    let _: String = redis::cmd("BGREWRITEAOF").query(c).expect("bgrewriteaof");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let files = log_files(s);
        // The file is renamed into place before older segments go and the
        // in-progress flag drops: done means both.
        if files.iter().any(|f| f.ends_with(".ckp"))
            && files != before
            && info_field(c, "persistence", "aof_rewrite_in_progress") == 0
        {
            return;
        }
        assert!(Instant::now() < deadline, "no checkpoint: {files:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A value unique to entry `i`, `size` bytes long.
fn value(i: usize, size: usize) -> String {
    let head = format!("entry-{i:06}-");
    let mut v = head.clone();
    while v.len() < size {
        v.push(char::from(b'a' + (v.len() % 26) as u8));
    }
    v
}

fn fill(c: &mut redis::Connection, n: usize, size: usize) {
    for chunk in (0..n).collect::<Vec<_>>().chunks(100) {
        let mut p = redis::pipe();
        for &i in chunk {
            p.cmd("XADD")
                .arg("big")
                .arg(format!("{}-1", i + 1))
                .arg("v")
                .arg(value(i, size))
                .arg("n")
                .arg(i)
                .ignore();
        }
        let () = p.query(c).expect("xadd pipeline");
    }
}

fn verify(c: &mut redis::Connection, n: usize, size: usize) {
    type Entries = Vec<(String, Vec<(String, String)>)>;
    let mut start = "-".to_string();
    let mut seen = 0;
    loop {
        let page: Entries = redis::cmd("XRANGE")
            .arg("big")
            .arg(&start)
            .arg("+")
            .arg("COUNT")
            .arg(500)
            .query(c)
            .expect("xrange");
        for (id, fields) in &page {
            assert_eq!(id, &format!("{}-1", seen + 1));
            assert_eq!(
                fields,
                &vec![
                    ("v".to_string(), value(seen, size)),
                    ("n".to_string(), seen.to_string())
                ],
                "entry {id}"
            );
            seen += 1;
        }
        match page.last() {
            Some((id, _)) if page.len() == 500 => start = format!("({id}"),
            _ => break,
        }
    }
    assert_eq!(seen, n);
}

#[test]
fn memory_follows_entry_count_not_size_and_payloads_survive_restart() {
    // 2,500 entries of 32 KiB: 80 MB of payload against a 1 MB cache.
    let (n, size) = (2_500, 32 * 1024);
    let mut s = TestServer::start_with(&["--cache-size", "1mb"]);
    let mut c = s.conn();
    fill(&mut c, n, size);
    let rss = info_field(&mut c, "memory", "used_memory_rss");
    assert!(
        rss < 60 << 20,
        "RSS {} MiB after {} MiB of payloads: payloads are being kept in memory (cache {} bytes, {} entries)",
        rss >> 20,
        (n * size) >> 20,
        info_field(&mut c, "persistence", "payload_cache_bytes"),
        info_field(&mut c, "persistence", "payload_cache_entries"),
    );
    assert!(info_field(&mut c, "persistence", "payload_cache_bytes") <= 1 << 20);
    let misses = info_field(&mut c, "persistence", "payload_cache_misses");
    verify(&mut c, n, size);
    assert!(
        info_field(&mut c, "persistence", "payload_cache_misses") > misses + 1_000,
        "old entries were not read from disk"
    );

    // The checkpoint holds the index only; the payloads stay in the segments it keeps.
    checkpoint_now(&s, &mut c);
    let ckp: u64 = std::fs::read_dir(s.dir.join("log"))
        .expect("log dir")
        .map(|e| e.expect("entry"))
        .filter(|e| e.file_name().to_string_lossy().ends_with(".ckp"))
        .map(|e| e.metadata().expect("meta").len())
        .sum();
    assert!(ckp < 200_000, "checkpoint of {ckp} bytes holds payloads");
    let () = redis::cmd("XADD")
        .arg("big")
        .arg(format!("{}-1", n + 1))
        .arg("v")
        .arg(value(n, size))
        .arg("n")
        .arg(n)
        .query(&mut c)
        .map(|_: String| ())
        .expect("xadd after checkpoint");

    s.restart();
    let mut c = s.conn();
    // Measured before reading everything back (reads allocate reply buffers).
    let rss = info_field(&mut c, "memory", "used_memory_rss");
    assert!(rss < 60 << 20, "RSS {} MiB after restart", rss >> 20);
    verify(&mut c, n + 1, size);
}

#[test]
fn a_damaged_payload_is_reported_never_returned() {
    let mut s = TestServer::start_with(&["--cache-size", "0"]);
    let mut c = s.conn();
    fill(&mut c, 50, 100);
    checkpoint_now(&s, &mut c);
    s.restart();
    // Flip one byte inside entry 7's value in the segment the checkpoint keeps.
    let seg = s.dir.join("log").join("00000000000000000001.seg");
    let mut data = std::fs::read(&seg).expect("segment");
    let needle = value(6, 100);
    let at = data
        .windows(needle.len())
        .position(|w| w == needle.as_bytes())
        .expect("payload in segment 1");
    data[at + 20] ^= 0x01;
    std::fs::write(&seg, &data).expect("write segment");

    let mut c = s.conn();
    let err = redis::cmd("XRANGE")
        .arg("big")
        .arg("7-1")
        .arg("7-1")
        .query::<redis::Value>(&mut c)
        .expect_err("damaged entry returned");
    let text = err.to_string();
    assert!(
        text.contains("damaged on disk") && text.contains("segment 1"),
        "{text}"
    );
    // Its neighbours are intact, and the server keeps serving.
    let ok: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg("big")
        .arg("8-1")
        .arg("8-1")
        .query(&mut c)
        .expect("xrange");
    assert_eq!(ok[0].1[0].1, value(7, 100));
}

#[test]
fn cache_size_is_a_runtime_setting() {
    let s = TestServer::start();
    let mut c = s.conn();
    let v: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("cache-size")
        .query(&mut c)
        .expect("config get");
    assert_eq!(v, vec!["cache-size".to_string(), (32u64 << 20).to_string()]);
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("cache-size")
        .arg("0")
        .query(&mut c)
        .map(|_: String| ())
        .expect("config set");
    fill(&mut c, 20, 1000);
    verify(&mut c, 20, 1000);
    assert_eq!(info_field(&mut c, "persistence", "cache_size"), 0);
}

#[test]
fn entries_renamed_in_the_transaction_that_added_them_keep_their_payloads() {
    let mut s = TestServer::start();
    let mut c = s.conn();
    type Entries = Vec<(String, Vec<(String, String)>)>;
    let range = |c: &mut redis::Connection, key: &str| -> Entries {
        redis::cmd("XRANGE")
            .arg(key)
            .arg("-")
            .arg("+")
            .query(c)
            .expect("xrange")
    };
    let (): () = redis::pipe()
        .atomic()
        .cmd("XADD")
        .arg("a")
        .arg("1-1")
        .arg("f")
        .arg("first")
        .ignore()
        .cmd("RENAME")
        .arg("a")
        .arg("b")
        .ignore()
        .cmd("XADD")
        .arg("a")
        .arg("1-1")
        .arg("f")
        .arg("second")
        .ignore()
        .cmd("XADD")
        .arg("gone")
        .arg("1-1")
        .arg("f")
        .arg("x")
        .ignore()
        .cmd("DEL")
        .arg("gone")
        .ignore()
        .query(&mut c)
        .expect("exec");
    let want_b = vec![(
        "1-1".to_string(),
        vec![("f".to_string(), "first".to_string())],
    )];
    let want_a = vec![(
        "1-1".to_string(),
        vec![("f".to_string(), "second".to_string())],
    )];
    assert_eq!(range(&mut c, "b"), want_b);
    assert_eq!(range(&mut c, "a"), want_a);
    // Replayed from the log, then from a checkpoint.
    s.restart();
    let mut c = s.conn();
    assert_eq!(range(&mut c, "b"), want_b);
    assert_eq!(range(&mut c, "a"), want_a);
    checkpoint_now(&s, &mut c);
    s.restart();
    let mut c = s.conn();
    assert_eq!(range(&mut c, "b"), want_b);
    assert_eq!(range(&mut c, "a"), want_a);
}
