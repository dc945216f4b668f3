//! What packaging relies on (issue #17, item 5): `rill --version` names the version and the
//! build the way `redis-server --version` does, and INFO server agrees with it; under
//! `supervised systemd` (a `Type=notify` unit) the server sends `READY=1` on
//! `$NOTIFY_SOCKET` once it accepts connections and `STOPPING=1` when it shuts down.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixDatagram;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn version_line() -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_rill"))
        .arg("--version")
        .output()
        .expect("rill --version");
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_string()
}

/// `key=value` fields of the version line.
fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split(' ')
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}

#[test]
fn version_names_the_build_as_redis_server_does() {
    let line = version_line();
    assert!(line.starts_with("Rill server v="), "{line}");
    assert_eq!(field(&line, "v"), env!("CARGO_PKG_VERSION"));
    let (sha, dirty) = field(&line, "sha").split_once(':').expect("sha=X:D");
    assert_eq!(sha.len(), 8, "{line}");
    assert!(sha.bytes().all(|b| b.is_ascii_hexdigit()), "{line}");
    assert!(dirty == "0" || dirty == "1", "{line}");
    assert_eq!(field(&line, "bits"), "64");
    let build = field(&line, "build");
    assert_eq!(build.len(), 16, "{line}");
    // Built from a git checkout: the commit is the one checked out.
    let head = Command::new("git")
        .args(["rev-parse", "--short=8", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output();
    if let Ok(head) = head {
        if head.status.success() {
            assert_eq!(sha, String::from_utf8_lossy(&head.stdout).trim(), "{line}");
        }
    }
    // INFO server says the same.
    let (mut child, port) = start(&[], None);
    let mut c = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    c.write_all(b"INFO server\r\n").expect("write");
    let info = read_bulk(&mut c);
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        info.contains(&format!("redis_git_sha1:{sha}\r\n")),
        "{info}"
    );
    assert!(
        info.contains(&format!("redis_git_dirty:{dirty}\r\n")),
        "{info}"
    );
    assert!(
        info.contains(&format!("redis_build_id:{build}\r\n")),
        "{info}"
    );
}

fn read_bulk(c: &mut TcpStream) -> String {
    let mut r = BufReader::new(c);
    let mut header = String::new();
    r.read_line(&mut header).expect("header");
    let n: usize = header
        .trim()
        .strip_prefix('$')
        .and_then(|n| n.parse().ok())
        .expect("bulk");
    let mut body = vec![0u8; n + 2];
    r.read_exact(&mut body).expect("body");
    String::from_utf8_lossy(&body).into_owned()
}

/// Starts rill on a fresh directory with `args`, optionally with `NOTIFY_SOCKET`; returns
/// the child and its port (from the start-up banner).
fn start(args: &[&str], notify: Option<&std::path::Path>) -> (Child, u16) {
    let dir = std::env::temp_dir().join(format!(
        "rill-packaging-{}-{}",
        std::process::id(),
        args.join("-")
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rill"));
    cmd.args(["--port", "0", "--bind", "127.0.0.1", "--dir"])
        .arg(&dir)
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("RILL_LOG")
        .env_remove("NOTIFY_SOCKET")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(path) = notify {
        cmd.env("NOTIFY_SOCKET", path);
    }
    let mut child = cmd.spawn().expect("spawn rill");
    let port = common::banner_port(&mut child, Duration::from_secs(30)).expect("server banner");
    (child, port)
}

fn receive(socket: &UnixDatagram) -> Option<String> {
    let mut buf = [0u8; 512];
    socket
        .recv(&mut buf)
        .ok()
        .map(|n| String::from_utf8_lossy(&buf[..n]).into_owned())
}

#[test]
fn supervised_systemd_notifies_ready_and_stopping() {
    let path = std::env::temp_dir().join(format!("rill-notify-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let socket = UnixDatagram::bind(&path).expect("bind notify socket");
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");

    let (mut child, port) = start(&["--supervised", "systemd"], Some(&path));
    let ready = receive(&socket).expect("no notification");
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready:?}");
    // Ready means serving.
    let mut c = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    c.write_all(b"PING\r\n").expect("write");
    let mut pong = [0u8; 7];
    c.read_exact(&mut pong).expect("pong");
    assert_eq!(&pong, b"+PONG\r\n");
    c.write_all(b"SHUTDOWN\r\n").expect("shutdown");
    let stopping = receive(&socket).expect("no STOPPING");
    assert!(stopping.lines().any(|l| l == "STOPPING=1"), "{stopping:?}");
    let _ = child.wait();

    // `supervised no` sends nothing even when a socket is offered.
    let (mut child, port) = start(&["--supervised", "no"], Some(&path));
    let mut c = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    c.write_all(b"PING\r\n").expect("write");
    c.read_exact(&mut pong).expect("pong");
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    assert_eq!(receive(&socket), None, "notified without supervised");
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_file(&path);
}

#[test]
fn dash_v_is_version() {
    let v = Command::new(env!("CARGO_BIN_EXE_rill"))
        .arg("-v")
        .output()
        .expect("rill -v");
    assert!(v.status.success());
    assert_eq!(String::from_utf8_lossy(&v.stdout).trim(), version_line());
}

/// A data directory whose log holds `entries` XADDs that were never checkpointed (the
/// server was SIGKILLed): both `rill check` and start-up read them all. Kept alive by
/// the returned server handle (dropping it removes the directory).
fn unclean_dir(entries: usize) -> common::TestServer {
    let mut s = common::TestServer::start_with(&["--compaction-threshold", "0"]);
    let mut raw = s.raw();
    let mut pipeline = Vec::new();
    for i in 0..entries {
        pipeline.extend(common::encode(&[
            "XADD",
            "events",
            "*",
            "payload",
            &format!("{i:0>64}"),
        ]));
    }
    raw.send(&pipeline);
    for _ in 0..entries {
        assert!(raw.read_reply().starts_with(b"$"));
    }
    s.signal_and_wait(9).expect("SIGKILL");
    s
}

/// Percentages of progress lines `prefix…: P% (…`, in order.
fn percents(text: &str, prefix: &str) -> Vec<f64> {
    text.lines()
        .filter_map(|l| l.split_once(prefix).map(|(_, rest)| rest))
        .filter_map(|rest| rest.trim().split('%').next()?.parse::<f64>().ok())
        .collect()
}

#[test]
fn check_reports_progress_lines_when_not_on_a_terminal() {
    let s = unclean_dir(3000);
    let out = Command::new(env!("CARGO_BIN_EXE_rill"))
        .arg("check")
        .arg(&s.dir)
        .env("RILL_PROGRESS_INTERVAL_MS", "0")
        .env_remove("RILL_PROGRESS")
        .stdin(Stdio::null())
        .output()
        .expect("rill check");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    // Lines on stderr (a pipe here), one per 256 records at this interval, advancing.
    for phase in ["rill check: Verifying segments:", "rill check: Replaying:"] {
        let p = percents(&stderr, phase);
        assert!(!p.is_empty(), "no '{phase}' lines in {stderr}");
        assert!(
            p.windows(2).all(|w| w[0] <= w[1]),
            "{phase} went back: {p:?}"
        );
    }
    assert!(
        percents(&stderr, "rill check: Replaying:").len() >= 3000 / 256,
        "{stderr}"
    );
    assert!(stderr.contains(" MB/s)"), "{stderr}");
    // No bar escape codes, and the report on stdout stays free of progress.
    assert!(!stderr.contains('\u{1b}'), "{stderr:?}");
    assert!(!stdout.contains("Replaying"), "{stdout}");

    // At the default interval (1 s) a quick check prints no progress at all.
    let quiet = Command::new(env!("CARGO_BIN_EXE_rill"))
        .arg("check")
        .arg(&s.dir)
        .env_remove("RILL_PROGRESS_INTERVAL_MS")
        .output()
        .expect("rill check");
    assert!(quiet.status.success());
    let quiet_err = String::from_utf8_lossy(&quiet.stderr);
    assert!(!quiet_err.contains("Replaying"), "{quiet_err}");
}

#[test]
fn recovery_logs_progress_lines_when_not_on_a_terminal() {
    let s = unclean_dir(3000);
    let mut child = Command::new(env!("CARGO_BIN_EXE_rill"))
        .args(["--port", "0", "--bind", "127.0.0.1", "--dir"])
        .arg(&s.dir)
        .env("RILL_PROGRESS_INTERVAL_MS", "0")
        .env("NO_COLOR", "1")
        .env_remove("RILL_LOG")
        .env_remove("RILL_PROGRESS")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rill");
    let stdout = child.stdout.take().expect("stdout");
    let mut log = String::new();
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        log.push_str(&line);
        log.push('\n');
        if line.contains("Ready to accept connections") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let p = percents(&log, "Loading:");
    assert!(p.len() >= 3000 / 256, "{log}");
    assert!(p.windows(2).all(|w| w[0] <= w[1]), "{p:?}");
    assert!(
        log.contains("DB loaded from the log: 3000 records"),
        "{log}"
    );
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    assert!(
        !stderr.contains('\u{1b}'),
        "a bar was drawn on a pipe: {stderr:?}"
    );
}
