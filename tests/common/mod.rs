//! Test harness: starts the real `rill` binary on a free loopback port with a
//! fresh data directory, and speaks to it with raw RESP bytes or the `redis` crate.
#![allow(dead_code)]

pub mod certs;
pub mod cluster_nodes;
pub mod netns;
pub mod reference;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running server, killed on drop.
pub struct TestServer {
    /// The address it listens on and is reached at (127.0.0.1 unless started with `start_on`).
    pub host: IpAddr,
    pub port: u16,
    pub dir: PathBuf,
    child: Child,
    /// How it was started, so `restart` can start it the same way.
    file: Option<String>,
    extra: Vec<String>,
    /// `RLIMIT_NOFILE` the server was started under, if the test set one.
    nofile: Option<u64>,
}

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// How long a server may take to print its banner and then to answer PING. Generous
/// on purpose: these are deadlines, not delays (a healthy start takes milliseconds),
/// and a fresh 2-core CI machine running a debug build next to a compile, or a restart
/// replaying a large log, can be slow.
const BANNER_WITHIN: Duration = Duration::from_secs(30);
const READY_WITHIN: Duration = Duration::from_secs(60);

/// How long [`TestServer::wait_blocked`] waits for a blocked-client count.
const BLOCKED_WITHIN: Duration = Duration::from_secs(10);

/// A port that was free a moment ago (for tests that need to know it up front).
/// The port a server started with `--port 0` (stdout piped) announces in its start-up
/// banner (`port=N`), within `within`; `None` if it never does. Its stdout keeps being
/// drained afterwards, so the server never blocks on a full pipe.
pub fn banner_port(child: &mut std::process::Child, within: Duration) -> Option<u16> {
    let stdout = child.stdout.take()?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if !sent {
                if let Some(p) = line.split("port=").nth(1) {
                    let digits: String = p.chars().take_while(|c| c.is_ascii_digit()).collect();
                    if let Ok(port) = digits.parse::<u16>() {
                        let _ = tx.send(port);
                        sent = true;
                    }
                }
            }
        }
    });
    rx.recv_timeout(within).ok()
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

impl TestServer {
    /// Starts a server with default settings.
    pub fn start() -> TestServer {
        Self::start_with(&[])
    }

    /// Starts a server with extra `--directive value` arguments.
    pub fn start_with(extra: &[&str]) -> TestServer {
        Self::start_with_nofile(None, extra)
    }

    /// One attempt at [`TestServer::start_with`]: `None` when the server did not start
    /// (e.g. a port named in `extra` was taken meanwhile), for tests that pick ports.
    pub fn try_start_with(extra: &[&str]) -> Option<TestServer> {
        Self::try_start(None, extra, None)
    }

    /// Starts a server listening on `host` (e.g. a 127.0.0.x address of its own inside a
    /// private network namespace) with extra arguments, and reaches it there; a `--bind`
    /// in `extra` may add addresses, but must keep `host`.
    pub fn start_on(host: IpAddr, extra: &[&str]) -> TestServer {
        for _ in 0..5 {
            if let Some(s) = Self::try_start_on(host, None, extra, None) {
                return s;
            }
        }
        panic!("rill did not start on {host}");
    }

    /// Starts a server under an open-files limit (`ulimit -n`, soft and hard) of
    /// `nofile`, without the privilege to raise it (kept across `restart`).
    pub fn start_with_nofile(nofile: Option<u64>, extra: &[&str]) -> TestServer {
        for _ in 0..5 {
            if let Some(s) = Self::try_start(None, extra, nofile) {
                return s;
            }
        }
        panic!("rill did not start");
    }

    /// Starts a server with a config file as first argument.
    pub fn start_with_file(file: &str, extra: &[&str]) -> TestServer {
        for _ in 0..5 {
            if let Some(s) = Self::try_start(Some(file), extra, None) {
                return s;
            }
        }
        panic!("rill did not start");
    }

    /// Starts a server on an existing data directory `dir` (e.g. a copy of a fixture);
    /// like every `TestServer`, it removes `dir` when dropped.
    pub fn start_in(dir: PathBuf, extra: &[&str]) -> TestServer {
        for _ in 0..5 {
            if let Some(s) = Self::spawn_on(LOCALHOST, None, extra, dir.clone(), None) {
                return s;
            }
        }
        panic!("rill did not start on {}", dir.display());
    }

    fn try_start(file: Option<&str>, extra: &[&str], nofile: Option<u64>) -> Option<TestServer> {
        Self::try_start_on(LOCALHOST, file, extra, nofile)
    }

    fn try_start_on(
        host: IpAddr,
        file: Option<&str>,
        extra: &[&str],
        nofile: Option<u64>,
    ) -> Option<TestServer> {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("rill-test-{}-{}", std::process::id(), n));
        let _ = std::fs::remove_dir_all(&dir);
        let started = Self::spawn_on(host, file, extra, dir.clone(), nofile);
        if started.is_none() {
            // A failed attempt must not leave its directory behind in /tmp.
            let _ = std::fs::remove_dir_all(&dir);
        }
        started
    }

    /// Starts the binary on `dir` with `--port 0` and learns the port the OS chose
    /// from the start-up banner, so parallel tests never race for a port.
    fn spawn_on(
        host: IpAddr,
        file: Option<&str>,
        extra: &[&str],
        dir: PathBuf,
        nofile: Option<u64>,
    ) -> Option<TestServer> {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rill"));
        if let Some(n) = nofile {
            limit_open_files(&mut cmd, n);
        }
        if let Some(f) = file {
            cmd.arg(f);
        }
        cmd.arg("--port")
            .arg("0")
            .arg("--bind")
            .arg(host.to_string())
            .arg("--dir")
            .arg(&dir)
            // As Redis's own test suite: tests read DEBUG DIGEST (refused by default).
            .arg("--enable-debug-command")
            .arg("local")
            .args(extra)
            .env("NO_COLOR", "1")
            .env_remove("RILL_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        // RILL_TEST_SERVER_ARGS="--cluster-raft yes" runs every black-box test against the
        // server in another mode (after the test's own arguments, so it wins).
        if let Ok(more) = std::env::var("RILL_TEST_SERVER_ARGS") {
            cmd.args(more.split_whitespace());
        }
        let mut child = cmd.spawn().expect("spawn rill");
        let Some(port) = banner_port(&mut child, BANNER_WITHIN) else {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        };
        // NOAUTH is answered before the loading check (as in Redis), so it does not
        // prove the log is replayed: with a password on the command line, authenticate
        // and expect PONG like everyone else.
        let password = extra
            .windows(2)
            .find(|w| w[0] == "--requirepass" && !w[1].is_empty())
            .map(|w| w[1]);
        let (probe, ready): (Vec<u8>, &[u8]) = match password {
            Some(pw) => {
                let mut probe = encode(&["AUTH", pw]);
                probe.extend_from_slice(b"PING\r\n");
                (probe, b"+OK\r\n+PONG\r\n")
            }
            None => (b"PING\r\n".to_vec(), b"+PONG\r\n"),
        };
        let deadline = Instant::now() + READY_WITHIN;
        while Instant::now() < deadline {
            if let Ok(mut s) = TcpStream::connect((host, port)) {
                // Ready once it answers (not -LOADING).
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                if s.write_all(&probe).is_ok() {
                    // PONG, or NOAUTH when a config file sets a password the harness
                    // does not know: then it is serving, though maybe still loading.
                    let mut buf = vec![0u8; ready.len()];
                    if s.read_exact(&mut buf).is_ok()
                        && (buf == ready || (password.is_none() && buf.starts_with(b"-NOAUTH")))
                    {
                        return Some(TestServer {
                            host,
                            port,
                            dir,
                            child,
                            file: file.map(str::to_string),
                            extra: extra.iter().map(|a| a.to_string()).collect(),
                            nofile,
                        });
                    }
                }
            }
            if let Ok(Some(_)) = child.try_wait() {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// Kills the server with SIGKILL (no chance to flush anything) and starts it
    /// again on the same data directory; `port` changes.
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let extra: Vec<&str> = self.extra.iter().map(String::as_str).collect();
        // Retried like a first start: a slow machine may miss a deadline once.
        let mut next = (0..3)
            .find_map(|_| {
                Self::spawn_on(
                    self.host,
                    self.file.as_deref(),
                    &extra,
                    self.dir.clone(),
                    self.nofile,
                )
            })
            .expect("rill did not restart");
        std::mem::swap(self, &mut next);
        // `next` now holds the dead child; do not let its Drop remove the data dir.
        next.dir = PathBuf::new();
    }

    /// Runs the server again on its directory, as [`TestServer::restart`] would, for a
    /// start-up that must fail: its exit status (`None` if it still runs after `within`,
    /// then it is killed) and what it printed. The server must not be running.
    pub fn start_expecting_exit(
        &self,
        within: Duration,
    ) -> (Option<std::process::ExitStatus>, String) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rill"));
        if let Some(f) = &self.file {
            cmd.arg(f);
        }
        cmd.arg("--port")
            .arg("0")
            .arg("--bind")
            .arg(self.host.to_string())
            .arg("--dir")
            .arg(&self.dir)
            .arg("--enable-debug-command")
            .arg("local")
            .args(&self.extra)
            .env("NO_COLOR", "1")
            .env_remove("RILL_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn rill");
        let deadline = Instant::now() + within;
        let status = loop {
            if let Ok(Some(status)) = child.try_wait() {
                break Some(status);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut out = String::new();
        if let Some(mut o) = child.stdout.take() {
            let _ = o.read_to_string(&mut out);
        }
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut out);
        }
        (status, out)
    }

    /// The server process's id (for reading its /proc entries).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's resident memory (`VmRSS` in /proc/<pid>/status), in bytes.
    pub fn rss_bytes(&self) -> u64 {
        self.proc_status_bytes("VmRSS")
    }

    /// The server's peak resident memory so far (`VmHWM`), in bytes.
    pub fn peak_rss_bytes(&self) -> u64 {
        self.proc_status_bytes("VmHWM")
    }

    /// A `kB` field of /proc/<pid>/status, in bytes.
    fn proc_status_bytes(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/<pid>/status");
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("{field} in /proc/<pid>/status"));
        kb * 1024
    }

    /// `redis://host:port`.
    pub fn url(&self) -> String {
        format!("redis://{}:{}/", self.host, self.port)
    }

    /// A `redis` crate client.
    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.url()).expect("client")
    }

    /// A synchronous `redis` crate connection (RESP2).
    pub fn conn(&self) -> redis::Connection {
        self.client().get_connection().expect("connection")
    }

    /// A synchronous `redis` crate connection speaking RESP3.
    pub fn conn3(&self) -> redis::Connection {
        redis::Client::open(format!("{}?protocol=resp3", self.url()))
            .expect("client")
            .get_connection()
            .expect("connection")
    }

    /// A raw RESP connection.
    pub fn raw(&self) -> Raw {
        Raw::connect_to(self.host, self.port)
    }

    /// Waits until exactly `n` clients are blocked (INFO `blocked_clients`), so a test
    /// that sent a blocking read knows the server has registered it before it writes the
    /// data the reader waits for; a fixed sleep loses that race on a loaded machine.
    /// Uses its own connection, which never blocks.
    pub fn wait_blocked(&self, n: usize) {
        let want = format!("blocked_clients:{n}\r\n");
        let mut r = self.raw();
        let deadline = Instant::now() + BLOCKED_WITHIN;
        loop {
            let info = String::from_utf8_lossy(&r.cmd(&["INFO", "clients"])).to_string();
            if info.contains(&want) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "never saw {want:?} within {BLOCKED_WITHIN:?}: {info}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends a signal and waits for the exit status.
    pub fn signal_and_wait(&mut self, sig: i32) -> Option<std::process::ExitStatus> {
        unsafe {
            libc_kill(self.child.id() as i32, sig);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    /// Waits for the process to exit by itself.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }
}

/// Linux's capability number of CAP_SYS_RESOURCE (what lets a process raise a hard limit).
const CAP_SYS_RESOURCE: libc::c_ulong = 24;

/// Makes `cmd` run under `RLIMIT_NOFILE` = `n` (soft and hard), and without
/// CAP_SYS_RESOURCE (dropped from the bounding set; best effort), so that even as root
/// the server cannot raise the limit and has to live within it.
pub fn limit_open_files(cmd: &mut Command, n: u64) {
    use std::os::unix::process::CommandExt;
    // SAFETY: between fork and exec only async-signal-safe calls (setrlimit, prctl).
    unsafe {
        cmd.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: n as libc::rlim_t,
                rlim_max: n as libc::rlim_t,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // Without CAP_SETPCAP this fails; then the process is not privileged anyway.
            let _ = libc::prctl(libc::PR_CAPBSET_DROP, CAP_SYS_RESOURCE, 0, 0, 0);
            Ok(())
        });
    }
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !self.dir.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A raw RESP connection: write bytes, read exactly one reply's bytes back.
pub struct Raw {
    pub reader: BufReader<TcpStream>,
    pub stream: TcpStream,
}

impl Raw {
    /// Connects to 127.0.0.1:`port`.
    pub fn connect(port: u16) -> Raw {
        Self::connect_to(LOCALHOST, port)
    }

    pub fn connect_to(host: IpAddr, port: u16) -> Raw {
        let stream = TcpStream::connect((host, port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        Raw {
            reader: BufReader::new(stream.try_clone().expect("clone")),
            stream,
        }
    }

    /// Sends raw bytes.
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    /// Sends a command as a RESP multibulk array.
    pub fn cmd(&mut self, args: &[&str]) -> Vec<u8> {
        self.send(&encode(args));
        self.read_reply()
    }

    /// Sends a command given as byte slices.
    pub fn cmd_bytes(&mut self, args: &[&[u8]]) -> Vec<u8> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        self.send(&out);
        self.read_reply()
    }

    /// Reads exactly one complete reply (any RESP2/RESP3 type) and returns its bytes.
    pub fn read_reply(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        self.read_one(&mut out);
        out
    }

    fn read_line(&mut self, out: &mut Vec<u8>) -> String {
        let mut line = Vec::new();
        self.reader.read_until(b'\n', &mut line).expect("read line");
        assert!(
            line.ends_with(b"\r\n"),
            "connection closed or bad line: {:?}",
            String::from_utf8_lossy(&line)
        );
        out.extend_from_slice(&line);
        String::from_utf8_lossy(&line[..line.len() - 2]).to_string()
    }

    fn read_one(&mut self, out: &mut Vec<u8>) {
        let line = self.read_line(out);
        let (kind, rest) = line.split_at(1);
        match kind {
            "+" | "-" | ":" | "_" | "," | "#" | "(" => {}
            "$" | "=" | "!" => {
                let n: i64 = rest.parse().expect("len");
                if n >= 0 {
                    let mut buf = vec![0u8; n as usize + 2];
                    self.reader.read_exact(&mut buf).expect("read bulk");
                    out.extend_from_slice(&buf);
                }
            }
            "*" | "~" | ">" => {
                let n: i64 = rest.parse().expect("len");
                for _ in 0..n.max(0) {
                    self.read_one(out);
                }
            }
            "%" | "|" => {
                let n: i64 = rest.parse().expect("len");
                for _ in 0..(2 * n.max(0)) {
                    self.read_one(out);
                }
            }
            _ => panic!("unknown reply type {kind:?} in {line:?}"),
        }
    }

    /// True when the server closed the connection (reads EOF within the timeout).
    pub fn is_closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.reader.read(&mut b), Ok(0))
    }
}

/// Encodes a command as a RESP multibulk array.
pub fn encode(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n{}\r\n", a.len(), a).as_bytes());
    }
    out
}
