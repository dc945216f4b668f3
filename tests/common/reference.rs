//! The reference server of the differential suites: a real Redis 8.6.3 `redis-server` on a
//! free loopback port, without persistence, killed on drop.
//!
//! Which binary: `RILL_REDIS_SERVER` when set (`.ci/run` sets it to what `.ci/redis8`
//! prints), else the build `.ci/redis8` caches (`$HOME/.cache/rill/redis-8.6.3`), else
//! `redis-server` from PATH. A binary that is not 8.6.3 is refused unless
//! `RILL_REDIS_ANY_VERSION=1`: Rill answers as Redis 8.6.3, and comparing it with another
//! version would report differences that are not defects. Without a reference the test
//! fails with the command that builds one; it never passes silently.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The Redis release the differential suites compare against.
pub const REFERENCE_VERSION: &str = "8.6.3";

/// The `redis-server` binary to compare against (see the module docs).
pub fn reference_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("RILL_REDIS_SERVER") {
        return PathBuf::from(path);
    }
    if let Some(home) = std::env::var_os("HOME") {
        let cached = PathBuf::from(home)
            .join(".cache/rill")
            .join(format!("redis-{REFERENCE_VERSION}"))
            .join("bin/redis-server");
        if cached.exists() {
            return cached;
        }
    }
    PathBuf::from("redis-server")
}

/// A real `redis-server` on a free loopback port, without persistence, killed on drop.
pub struct RedisServer {
    pub port: u16,
    dir: PathBuf,
    child: Child,
}

impl RedisServer {
    /// Starts the reference binary; panics with a hint when it is missing or is another
    /// version, because a differential test without its reference must not pass.
    pub fn start() -> RedisServer {
        Self::start_with(&[])
    }

    /// As [`RedisServer::start`], with extra `--directive value` arguments (e.g.
    /// `--cluster-enabled yes`; its `nodes.conf` then lands in the server's own dir).
    pub fn start_with(extra: &[&str]) -> RedisServer {
        let binary = reference_binary();
        let probe = Command::new(&binary)
            .arg("--version")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .output();
        let version = match probe {
            Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).to_string(),
            _ => panic!(
                "no reference Redis at {}: the differential tests compare against Redis \
                 {REFERENCE_VERSION}. Build it with `.ci/redis8` (cached in \
                 ~/.cache/rill), or point RILL_REDIS_SERVER at a redis-server binary.",
                binary.display()
            ),
        };
        let any = std::env::var("RILL_REDIS_ANY_VERSION").is_ok_and(|v| v == "1");
        assert!(
            any || version.contains(&format!("v={REFERENCE_VERSION} ")),
            "{} is not Redis {REFERENCE_VERSION} ({}); build the reference with `.ci/redis8`, \
             or set RILL_REDIS_ANY_VERSION=1 to compare anyway",
            binary.display(),
            version.trim()
        );
        eprintln!("differential: reference is {}", version.trim());
        for attempt in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .expect("no free port");
            let dir = std::env::temp_dir().join(format!(
                "rill-diff-redis-{}-{}-{}",
                std::process::id(),
                port,
                attempt
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("create redis dir");
            let mut child = Command::new(&binary)
                .args(["--save", "", "--appendonly", "no", "--bind", "127.0.0.1"])
                .arg("--port")
                .arg(port.to_string())
                .arg("--dir")
                .arg(&dir)
                .args(extra)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn redis-server");
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                // The port was only free a moment ago: another test's server may have
                // taken it meanwhile, so accept only an answer from this very process.
                if serves_as(port, child.id()) {
                    return RedisServer { port, dir, child };
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("redis-server did not start");
    }
}

/// True when the server listening on `port` answers `INFO server` with `process_id:pid`.
pub fn serves_as(port: u16, pid: u32) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"INFO server\r\n").is_err() {
        return false;
    }
    let want = format!("\nprocess_id:{pid}\r\n");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    // The reply is one bulk string; read until the field shows up or the reply ends.
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got);
        if text.contains(&want) {
            return true;
        }
        if text.ends_with("\r\n\r\n") {
            break;
        }
    }
    false
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Rill and the reference Redis side by side, for table-driven differential tests: the
/// same command goes to both and the reply bytes must be identical.
///
/// A script is run once per protocol with [`Twins::each_protocol`] (RESP2, then — after
/// FLUSHALL on both — RESP3), so every form is compared in both encodings. Replies that
/// carry time (idle times, `*` IDs) are compared through [`Twins::same_masked`].
pub struct Twins {
    pub rill: super::TestServer,
    pub redis: RedisServer,
    pub rill_conn: super::Raw,
    pub redis_conn: super::Raw,
    /// The protocol of the current connections (2 or 3).
    pub protocol: u8,
}

impl Twins {
    /// Starts both servers (Rill with `rill_args` added to its command line).
    pub fn start(rill_args: &[&str]) -> Twins {
        Self::start_each(rill_args, &[])
    }

    /// Starts both servers, each with its own extra arguments.
    pub fn start_each(rill_args: &[&str], redis_args: &[&str]) -> Twins {
        let rill = super::TestServer::start_with(rill_args);
        let redis = RedisServer::start_with(redis_args);
        let rill_conn = super::Raw::connect(rill.port);
        let redis_conn = super::Raw::connect(redis.port);
        Twins {
            rill,
            redis,
            rill_conn,
            redis_conn,
            protocol: 2,
        }
    }

    /// Runs `script` in RESP2, then flushes both servers and runs it again in RESP3.
    pub fn each_protocol(&mut self, mut script: impl FnMut(&mut Twins)) {
        for protocol in [2u8, 3] {
            self.reconnect(protocol);
            self.both(&["FLUSHALL"]);
            script(self);
        }
    }

    /// Fresh connections to both servers speaking `protocol`.
    pub fn reconnect(&mut self, protocol: u8) {
        self.rill_conn = super::Raw::connect(self.rill.port);
        self.redis_conn = super::Raw::connect(self.redis.port);
        self.protocol = protocol;
        if protocol == 3 {
            // HELLO's reply carries server identity (version, id); only its success matters.
            let r = self.rill_conn.cmd(&["HELLO", "3"]);
            let p = self.redis_conn.cmd(&["HELLO", "3"]);
            assert_eq!(r[0], b'%', "rill HELLO 3: {}", String::from_utf8_lossy(&r));
            assert_eq!(p[0], b'%', "redis HELLO 3: {}", String::from_utf8_lossy(&p));
        }
    }

    /// Sends `args` to both and returns (rill, redis) reply bytes, without comparing.
    pub fn both(&mut self, args: &[&str]) -> (Vec<u8>, Vec<u8>) {
        (self.rill_conn.cmd(args), self.redis_conn.cmd(args))
    }

    /// Sends `args` to both, asserts the replies are byte-identical, and returns them.
    #[track_caller]
    pub fn same(&mut self, args: &[&str]) -> Vec<u8> {
        self.same_masked(args, |b| b.to_vec())
    }

    /// As [`Twins::same`], comparing `mask(reply)` instead of the raw bytes (for replies
    /// with times or clock-made IDs in them).
    #[track_caller]
    pub fn same_masked(&mut self, args: &[&str], mask: impl Fn(&[u8]) -> Vec<u8>) -> Vec<u8> {
        let (rill, redis) = self.both(args);
        assert_eq!(
            String::from_utf8_lossy(&mask(&rill)),
            String::from_utf8_lossy(&mask(&redis)),
            "RESP{} reply to {:?} differs (left: Rill, right: Redis {REFERENCE_VERSION})",
            self.protocol,
            args
        );
        rill
    }
}
