//! Upgrade: data directories written by an earlier binary open with everything intact.
//!
//! `tests/fixtures/format1/{killed,checkpointed}/` were written by the binary of commit
//! d341658 (log records are Redis command argvs, "format 1" in issue #11) and left by
//! `kill -9`; `tests/fixtures/format1/make.sh` documents and regenerates them. Next to
//! each is `<name>.expected`, the server's state just before the kill as [`dump`] prints
//! it. The test starts today's binary on a copy of each fixture (after `rill check`)
//! and requires the same dump, byte for byte, with one exception: consumers' seen-time
//! and active-time may instead be re-stamped with the recovery time, because the binary
//! that wrote the fixtures never logged them (see [`allow_restamped_times`]). Then one
//! XADD on top of the old log must change only its stream and survive a SIGKILL.
//!
//! [`dump`] is the only implementation of the state's text form: make.sh calls it
//! against the live server through `dump_fixture` (ignored, driven by environment
//! variables) to write the `.expected` files, and the tests call it to check them.
mod common;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::TestServer;
use redis::Value;
use sha2::{Digest, Sha256};

/// XINFO STREAM's idempotent-production fields (Redis 8.6), left out of the dump.
const IDMP_FIELDS: &[&str] = &[
    "idmp-duration",
    "idmp-maxsize",
    "pids-tracked",
    "iids-tracked",
    "iids-added",
    "iids-duplicates",
];

/// Bulk strings longer than this are printed as length, SHA-256 and a prefix.
const INLINE_MAX: usize = 96;

fn query(c: &mut redis::Connection, args: &[&[u8]]) -> Value {
    let mut cmd = redis::cmd(std::str::from_utf8(args[0]).expect("command name"));
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(c)
        .unwrap_or_else(|e| panic!("{:?}: {e}", args.iter().map(|a| esc(a)).collect::<Vec<_>>()))
}

/// A byte string as a quoted, escaped, single-line literal.
fn esc(b: &[u8]) -> String {
    let mut s = String::from("\"");
    for &c in b {
        match c {
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n"),
            b'\t' => s.push_str("\\t"),
            0x20..=0x7e => s.push(c as char),
            _ => {
                let _ = write!(s, "\\x{c:02x}");
            }
        }
    }
    s.push('"');
    s
}

fn bulk(b: &[u8]) -> String {
    if b.len() <= INLINE_MAX {
        return esc(b);
    }
    let digest = Sha256::digest(b);
    let hex: String = digest.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "<{} bytes, sha256 {hex}, starts {}>",
        b.len(),
        esc(&b[..32])
    )
}

fn is_scalar(v: &Value) -> bool {
    !matches!(
        v,
        Value::Array(_)
            | Value::Map(_)
            | Value::Set(_)
            | Value::Push { .. }
            | Value::Attribute { .. }
    )
}

fn scalar(v: &Value) -> String {
    match v {
        Value::Nil => "nil".into(),
        Value::Int(n) => n.to_string(),
        Value::BulkString(b) => bulk(b),
        Value::SimpleString(s) => format!("+{s}"),
        Value::Okay => "+OK".into(),
        Value::Double(d) => format!("{d:?}"),
        Value::Boolean(b) => format!("#{b}"),
        Value::VerbatimString { text, .. } => esc(text.as_bytes()),
        Value::BigNumber(n) => format!("({n})"),
        other => panic!("unexpected reply {other:?}"),
    }
}

/// Appends `v` to `out`: scalars and arrays of scalars on the current line, anything
/// nested as indented lines below it. `out` ends in the label already written.
fn render(v: &Value, indent: usize, out: &mut String) {
    let pad = "  ".repeat(indent);
    match v {
        Value::Array(items) | Value::Set(items) if items.iter().all(is_scalar) => {
            let parts: Vec<String> = items.iter().map(scalar).collect();
            let _ = writeln!(out, " [{}]", parts.join(", "));
        }
        Value::Array(items) | Value::Set(items) => {
            let _ = writeln!(out, " ({} items)", items.len());
            for item in items {
                let _ = write!(out, "{pad}-");
                render(item, indent + 1, out);
            }
        }
        Value::Map(pairs) => {
            let _ = writeln!(out, " ({} fields)", pairs.len());
            for (k, val) in pairs {
                let _ = write!(out, "{pad}{}:", scalar(k));
                render(val, indent + 1, out);
            }
        }
        other => {
            let _ = writeln!(out, " {}", scalar(other));
        }
    }
}

/// `v` without the map fields named in `drop` (at any depth).
fn without_fields(v: Value, drop: &[&str]) -> Value {
    match v {
        Value::Map(pairs) => Value::Map(
            pairs
                .into_iter()
                .filter(|(k, _)| {
                    !matches!(k, Value::BulkString(b) if drop.iter().any(|d| d.as_bytes() == b.as_slice()))
                })
                .map(|(k, val)| (k, without_fields(val, drop)))
                .collect(),
        ),
        Value::Array(items) => {
            Value::Array(items.into_iter().map(|i| without_fields(i, drop)).collect())
        }
        other => other,
    }
}

fn int(v: &Value) -> i64 {
    match v {
        Value::Int(n) => *n,
        Value::BulkString(b) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("not an integer: {v:?}")),
        other => panic!("not an integer: {other:?}"),
    }
}

fn items(v: Value) -> Vec<Value> {
    match v {
        Value::Array(items) | Value::Set(items) => items,
        other => panic!("not an array: {other:?}"),
    }
}

/// The key's absolute expiry in ms since the epoch, or `None`. Rill has no PEXPIRETIME,
/// so this brackets PTTL between two TIMEs; when both fall in the same millisecond, the
/// server's clock read for PTTL was that millisecond too (commands read the clock each),
/// and `now + PTTL` is exact.
fn expire_at(c: &mut redis::Connection, key: &[u8]) -> Option<i64> {
    let ms = |t: &Value| {
        let t = items(t.clone());
        int(&t[0]) * 1000 + int(&t[1]) / 1000
    };
    for _ in 0..10_000 {
        let replies: Vec<Value> = redis::pipe()
            .cmd("TIME")
            .cmd("PTTL")
            .arg(key)
            .cmd("TIME")
            .query(c)
            .expect("TIME PTTL TIME");
        let pttl = int(&replies[1]);
        match pttl {
            -1 => return None,
            -2 => panic!("key {} vanished", esc(key)),
            _ => {}
        }
        let (before, after) = (ms(&replies[0]), ms(&replies[2]));
        if before == after {
            return Some(before + pttl);
        }
    }
    panic!(
        "TIME never stayed within one millisecond around PTTL {}",
        esc(key)
    );
}

/// One key's part of a dump: the `key ...` line and everything below it.
fn dump_key(c: &mut redis::Connection, db: i64, key: &[u8]) -> String {
    let mut out = format!("key {db} {}\n", esc(key));
    let section = |out: &mut String, label: &str, v: &Value| {
        let _ = write!(out, "  {label}:");
        render(v, 2, out);
    };
    let ty = query(c, &[b"TYPE", key]);
    section(&mut out, "TYPE", &ty);
    let at = expire_at(c, key).map_or(Value::Nil, Value::Int);
    section(&mut out, "expire-at-ms (PTTL + TIME)", &at);
    match ty {
        Value::SimpleString(ref t) if t == "string" => {
            section(&mut out, "GET", &query(c, &[b"GET", key]));
        }
        Value::SimpleString(ref t) if t == "stream" => {
            section(&mut out, "XLEN", &query(c, &[b"XLEN", key]));
            section(
                &mut out,
                "XRANGE - +",
                &query(c, &[b"XRANGE", key, b"-", b"+"]),
            );
            let full = query(c, &[b"XINFO", b"STREAM", key, b"FULL", b"COUNT", b"0"]);
            // Redis 8.6's IDMP fields postdate the fixtures (whose binary had no IDMP);
            // streams that never used IDMP show defaults there, checked in tests/idmp.rs.
            let full = without_fields(full, IDMP_FIELDS);
            section(&mut out, "XINFO STREAM FULL COUNT 0", &full);
            let groups = query(c, &[b"XINFO", b"GROUPS", key]);
            section(&mut out, "XINFO GROUPS", &groups);
            for g in items(groups) {
                let Value::Map(fields) = g else {
                    panic!("XINFO GROUPS item {g:?}")
                };
                let name = fields
                    .into_iter()
                    .find_map(|(k, v)| match (k, v) {
                        (Value::BulkString(k), Value::BulkString(v)) if k == b"name" => Some(v),
                        _ => None,
                    })
                    .expect("group name");
                let g = esc(&name);
                let summary = query(c, &[b"XPENDING", key, &name]);
                section(&mut out, &format!("XPENDING {g}"), &summary);
                // Each row is [id, consumer, idle ms, deliveries]: idle is relative.
                let rows = items(query(c, &[b"XPENDING", key, &name, b"-", b"+", b"1000"]));
                let rows = rows
                    .into_iter()
                    .map(|r| {
                        let mut r = items(r);
                        r.remove(2);
                        Value::Array(r)
                    })
                    .collect();
                let label = format!("XPENDING {g} - + 1000 (without idle)");
                section(&mut out, &label, &Value::Array(rows));
                let consumers = query(c, &[b"XINFO", b"CONSUMERS", key, &name]);
                let consumers = without_fields(consumers, &["idle", "inactive"]);
                let label = format!("XINFO CONSUMERS {g} (without idle, inactive)");
                section(&mut out, &label, &consumers);
            }
        }
        other => panic!("key {} has type {other:?}", esc(key)),
    }
    out
}

/// The whole observable state of the server on `port`, as text: per database its size,
/// then per key (in byte order) its type, absolute expiry and contents; for streams
/// every entry, XINFO STREAM FULL (groups, PELs with delivery times and counts,
/// consumers with seen/active times), XINFO GROUPS, XPENDING (summary and every entry,
/// without idle) and XINFO CONSUMERS (without idle/inactive).
fn dump(port: u16) -> String {
    let url = format!("redis://127.0.0.1:{port}/?protocol=resp3");
    let mut c = redis::Client::open(url)
        .expect("client")
        .get_connection()
        .expect("connection");
    let databases = match query(&mut c, &[b"CONFIG", b"GET", b"databases"]) {
        Value::Map(m) if m.len() == 1 => int(&m[0].1),
        other => panic!("CONFIG GET databases: {other:?}"),
    };
    let mut out = format!("databases {databases}\n");
    for db in 0..databases {
        query(&mut c, &[b"SELECT", db.to_string().as_bytes()]);
        let mut keys = BTreeSet::new();
        let mut cursor = b"0".to_vec();
        loop {
            let reply = items(query(&mut c, &[b"SCAN", &cursor, b"COUNT", b"1000"]));
            let [next, batch] = <[Value; 2]>::try_from(reply).expect("SCAN reply");
            for k in items(batch) {
                let Value::BulkString(k) = k else {
                    panic!("SCAN key {k:?}")
                };
                keys.insert(k);
            }
            let Value::BulkString(next) = next else {
                panic!("SCAN cursor {next:?}")
            };
            if next == b"0" {
                break;
            }
            cursor = next;
        }
        let size = int(&query(&mut c, &[b"DBSIZE"]));
        assert_eq!(size, keys.len() as i64, "DBSIZE of db {db} against SCAN");
        let _ = writeln!(out, "db {db} dbsize {size}");
        for k in &keys {
            out.push_str(&dump_key(&mut c, db, k));
        }
    }
    out
}

/// The dump split into its header and its `key ...` sections, by `(db, key)` line.
fn sections(dump: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = vec![(String::new(), String::new())];
    for line in dump.lines() {
        if line.starts_with("key ") {
            out.push((line.to_string(), String::new()));
        }
        let last = out.last_mut().expect("header section");
        last.1.push_str(line);
        last.1.push('\n');
    }
    out
}

/// Panics with the lines that differ (a small unified-style diff) unless equal.
fn assert_same(what: &str, expected: &str, actual: &str) {
    if expected == actual {
        return;
    }
    let (e, a): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    // Longest common subsequence, then walk it to print `-`/`+` lines with context.
    let (n, m) = (e.len(), a.len());
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if e[i] == a[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut ops: Vec<(char, &str)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && e[i] == a[j] {
            ops.push((' ', e[i]));
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            ops.push(('-', e[i]));
            i += 1;
        } else {
            ops.push(('+', a[j]));
            j += 1;
        }
    }
    let near = |k: usize| {
        ops[k.saturating_sub(3)..(k + 4).min(ops.len())]
            .iter()
            .any(|o| o.0 != ' ')
    };
    let mut diff = String::new();
    let mut skipped = false;
    for (k, (op, line)) in ops.iter().enumerate() {
        if near(k) {
            let _ = writeln!(diff, "{op} {line}");
            skipped = false;
        } else if !skipped {
            diff.push_str("  ...\n");
            skipped = true;
        }
    }
    panic!("{what}: state differs (- expected, + actual):\n{diff}");
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/format1")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create copy");
    for entry in std::fs::read_dir(from).expect("read fixture") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy file");
        }
    }
}

/// `rill check DIR` must call the directory clean (exit status 0).
fn assert_check_clean(dir: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_rill"))
        .arg("check")
        .arg(dir)
        .output()
        .expect("run rill check");
    assert!(
        out.status.success(),
        "rill check {} exited {:?}:\n{}{}",
        dir.display(),
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn now_ms() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock");
    i64::try_from(d.as_millis()).expect("ms")
}

/// `actual` with each consumer `seen-time` / `active-time` line that differs from
/// `expected` replaced by the expected line, when the actual time lies in `recovered`
/// (the milliseconds in which the server started and was dumped); also how many were.
///
/// Today's binary does not log seen/active times: replaying a log record that touches a
/// consumer stamps it with the replay time (tests/durability.rs: "like Redis, replay does
/// not promise them"); a checkpoint keeps them exactly. So a time is either the recorded
/// one or a recovery-time stamp; a consumer without an active-time (-1) must stay so. Any
/// other difference is left in place for [`assert_same`] to show.
fn allow_restamped_times(expected: &str, actual: &str, recovered: (i64, i64)) -> (String, usize) {
    let (e, a): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    if e.len() != a.len() {
        return (actual.to_string(), 0);
    }
    let time = |line: &str| -> Option<(String, i64)> {
        let t = line.trim_start();
        ["\"seen-time\": ", "\"active-time\": "]
            .iter()
            .find_map(|f| {
                let v = t.strip_prefix(f)?.parse().ok()?;
                Some((line[..line.len() - t.len()].to_string() + f, v))
            })
    };
    let mut restamped = 0;
    let mut out = String::with_capacity(actual.len());
    for (el, al) in e.iter().zip(&a) {
        let line = match (time(el), time(al)) {
            (Some((ef, ev)), Some((af, av)))
                if ef == af
                    && ev != av
                    && ev != -1
                    && (recovered.0..=recovered.1).contains(&av) =>
            {
                restamped += 1;
                el
            }
            _ => al,
        };
        out.push_str(line);
        out.push('\n');
    }
    (out, restamped)
}

/// Opens a copy of fixture `name` and checks it against `<name>.expected`; then adds an
/// entry to `orders` in db 0, SIGKILLs, restarts and checks the state again.
fn fixture_opens_intact(name: &str) {
    let expected = std::fs::read_to_string(fixtures().join(format!("{name}.expected")))
        .expect("read .expected (tests/fixtures/format1/make.sh writes it)");
    let copy = std::env::temp_dir().join(format!("rill-upgrade-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&copy);
    copy_dir(&fixtures().join(name), &copy);
    assert_check_clean(&copy);

    let started = now_ms();
    let mut s = TestServer::start_in(copy.clone(), &[]);
    let opened = dump(s.port);
    let (checked, restamped) = allow_restamped_times(&expected, &opened, (started, now_ms()));
    eprintln!("{name}: {restamped} consumer seen/active times re-stamped by log replay");
    assert_same(&format!("{name} as opened"), &expected, &checked);

    // One entry on top of the old log: only `orders` in db 0 changes, by that entry.
    let mut c = s.conn();
    let before: Vec<Value> = items(query(&mut c, &[b"XRANGE", b"orders", b"-", b"+"]));
    let Value::BulkString(id) = query(&mut c, &[b"XADD", b"orders", b"*", b"after", b"upgrade"])
    else {
        panic!("XADD reply")
    };
    let after = items(query(&mut c, &[b"XRANGE", b"orders", b"-", b"+"]));
    let added = Value::Array(vec![
        Value::BulkString(id),
        Value::Array(vec![
            Value::BulkString(b"after".to_vec()),
            Value::BulkString(b"upgrade".to_vec()),
        ]),
    ]);
    assert_eq!(
        after[..after.len() - 1],
        before[..],
        "older entries of orders"
    );
    assert_eq!(after[after.len() - 1], added, "the new entry");
    let written = dump(s.port);
    let (was, now) = (sections(&opened), sections(&written));
    assert_eq!(was.len(), now.len(), "keys after one XADD");
    let changed: Vec<String> = was
        .into_iter()
        .zip(now)
        .filter(|(w, n)| w != n)
        .map(|(w, n)| format!("{} / {}", w.0, n.0))
        .collect();
    assert_eq!(
        changed,
        vec!["key 0 \"orders\" / key 0 \"orders\"".to_string()],
        "sections changed by one XADD to orders"
    );

    let restarted = now_ms();
    s.restart();
    let reopened = dump(s.port);
    let (checked, _) = allow_restamped_times(&written, &reopened, (restarted, now_ms()));
    assert_same(
        &format!("{name} after a write and SIGKILL"),
        &written,
        &checked,
    );

    // The first checkpoint rewrites the state in the new format: after it, start-up replays
    // no format-1 record, and the state (consumer times included, now exactly) is the same.
    let before_checkpoint = dump(s.port);
    checkpoint(&mut s.conn(), &copy);
    s.restart();
    assert_same(
        &format!("{name} after its first checkpoint and a restart"),
        &before_checkpoint,
        &dump(s.port),
    );
    assert_new_format_after_checkpoint(&copy);
    s.signal_and_wait(9).expect("server killed");
    assert_check_clean(&copy);
}

/// Asks for a checkpoint (BGREWRITEAOF) and waits until it is done.
fn checkpoint(c: &mut redis::Connection, dir: &Path) {
    let before = newest_checkpoint(dir);
    query(c, &[b"BGREWRITEAOF"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let info = match query(c, &[b"INFO", b"persistence"]) {
            Value::BulkString(b) => String::from_utf8_lossy(&b).into_owned(),
            Value::VerbatimString { text, .. } => text,
            other => panic!("INFO reply {other:?}"),
        };
        if newest_checkpoint(dir) != before && info.contains("aof_rewrite_in_progress:0") {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "checkpoint not done");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn newest_checkpoint(dir: &Path) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir.join("log"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "ckp"))
        .collect();
    found.sort();
    found.pop()
}

/// The checkpoint is format 3 (`RILLSNP3`) and every segment from its tail on is format 3
/// (`RILLSEG3`): what start-up replays is typed ops only. Older segments may remain only as
/// the places live entries' payloads are read from (their bytes are the same in both
/// formats), never replayed.
fn assert_new_format_after_checkpoint(dir: &Path) {
    let ckp = newest_checkpoint(dir).expect("a checkpoint");
    let data = std::fs::read(&ckp).expect("read checkpoint");
    assert_eq!(&data[..8], b"RILLSNP3", "checkpoint format");
    let tail = u64::from_le_bytes(data[8..16].try_into().expect("tail"));
    let log = dir.join("log");
    let mut replayed = 0;
    for e in std::fs::read_dir(&log).expect("log dir").flatten() {
        let p = e.path();
        if p.extension().is_none_or(|x| x != "seg") {
            continue;
        }
        let Some(n) = p
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| s.parse::<u64>().ok())
        else {
            continue;
        };
        if n >= tail {
            let head = std::fs::read(&p).expect("read segment");
            assert_eq!(&head[..8], b"RILLSEG3", "segment {n} after the checkpoint");
            replayed += 1;
        }
    }
    assert!(replayed >= 1, "the checkpoint's tail segment exists");
}

#[test]
fn killed_format1_dir_opens_intact() {
    fixture_opens_intact("killed");
}

#[test]
fn checkpointed_format1_dir_opens_intact() {
    fixture_opens_intact("checkpointed");
}

/// Writes [`dump`] of the server on `RILL_FIXTURE_PORT` to the file `RILL_FIXTURE_DUMP`
/// (tests/fixtures/format1/make.sh runs this before it kills the server).
#[test]
#[ignore = "run by tests/fixtures/format1/make.sh against a live server"]
fn dump_fixture() {
    let port: u16 = std::env::var("RILL_FIXTURE_PORT")
        .expect("RILL_FIXTURE_PORT")
        .parse()
        .expect("RILL_FIXTURE_PORT is a port");
    let path = std::env::var("RILL_FIXTURE_DUMP").expect("RILL_FIXTURE_DUMP");
    std::fs::write(&path, dump(port)).expect("write the dump");
}
