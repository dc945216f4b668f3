//! The real `rill` server on the lazy file system: fixed power-cut scenarios that once lost
//! acknowledged writes (the random ones are `rill-crashtest --powercut`). Each starts the
//! release server with `appendfsync always`, has one `XADD` acknowledged, SIGKILLs the server,
//! cuts the power, restarts it and reads the entry back.
//!
//! The server binary is `RILL_SERVER`, else the repo's `target/release/rill` (under
//! `CARGO_TARGET_DIR` when set); `.ci/powercut` builds it first. A missing binary or a missing
//! FUSE FAILS these tests with the reason, never skips them.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::Mounted;

fn server_bin() -> PathBuf {
    let bin = match std::env::var_os("RILL_SERVER") {
        Some(p) => PathBuf::from(p),
        None => {
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
            target.join("release/rill")
        }
    };
    assert!(
        bin.is_file(),
        "the rill server is not at {} (build it with `cargo build --release --bin rill` at the \
         repo root, or set RILL_SERVER; .ci/powercut does the former)",
        bin.display()
    );
    bin
}

/// A running server; SIGKILLed (the crash) when dropped.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(dir: &Path) -> Server {
        let mut child = Command::new(server_bin())
            .args([
                "--port",
                "0",
                "--bind",
                "127.0.0.1",
                "--appendfsync",
                "always",
            ])
            .args(["--save", ""])
            .arg("--dir")
            .arg(dir)
            .env("NO_COLOR", "1")
            .env_remove("RILL_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start rill");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let port = loop {
            let line = match lines.next() {
                Some(Ok(l)) => l,
                _ => {
                    let status = child.wait().expect("wait for rill");
                    panic!("rill exited ({status}) before printing its port");
                }
            };
            if let Some(p) = line.split("port=").nth(1) {
                let digits: String = p.chars().take_while(|c| c.is_ascii_digit()).collect();
                if let Ok(port) = digits.parse::<u16>() {
                    break port;
                }
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(s) = TcpStream::connect(("127.0.0.1", port)) {
                drop(s);
                if call(port, &["PING"]) == "+PONG" {
                    return Server { child, port };
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        panic!("rill did not answer PING within 60 s");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends one command and returns the whole reply, read until the server stops sending for a
/// moment (the replies here are small), as raw RESP text.
fn call(port: u16, args: &[&str]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    s.write_all(req.as_bytes()).expect("send");
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) if !out.is_empty() => break,
            Err(_) => {}
        }
    }
    String::from_utf8_lossy(&out).trim_end().to_string()
}

/// XADD acknowledged, kill -9, power cut, restart: the entry must be there.
fn acknowledged_xadd_survives(m: &Mounted, data: &Path) {
    let server = Server::start(data);
    let id = call(server.port, &["XADD", "s", "*", "f", "acknowledged"]);
    assert!(id.starts_with('$'), "XADD answered {id:?}");
    drop(server);
    let report = m.power_cycle();
    let server = Server::start(data);
    let range = call(server.port, &["XRANGE", "s", "-", "+"]);
    assert!(
        range.contains("acknowledged"),
        "the acknowledged entry is lost after the power cut ({report}); XRANGE answered {range:?}"
    );
}

#[test]
fn a_data_directory_the_server_creates_survives_a_power_cut() {
    // Found by the power-cut crash test: the server created DIR and DIR/log and fsynced the
    // segment and log/, but never DIR's parent nor DIR, so both names (and every segment in
    // them) were lost.
    let m = Mounted::new("rill-fresh", None);
    acknowledged_xadd_survives(&m, &m.path("data"));
}

#[test]
fn a_log_directory_a_crashed_run_left_unsynced_survives_a_power_cut() {
    // A run killed right after creating log/ left its name in memory only; the next run saw
    // log/ existing and must still make its name durable before acknowledging anything.
    let m = Mounted::new("rill-unsynced-log", None);
    let data = m.path("data");
    fs::create_dir(&data).expect("mkdir data");
    File::open(&m.mnt)
        .and_then(|d| d.sync_all())
        .expect("fsync the mount root");
    fs::create_dir(data.join("log")).expect("mkdir data/log (not synced)");
    acknowledged_xadd_survives(&m, &data);
}
