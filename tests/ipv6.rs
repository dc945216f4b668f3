//! IPv6 and dual-stack listening against the real `rill` binary (issue #18, defect 13):
//! an IPv6 `bind` address listens on IPv6 only (Redis's `IPV6_V6ONLY`), `bind * -::*` puts
//! an IPv4 and an IPv6 listener on one port, protected mode judges peers by their
//! canonical address, and CLIENT LIST shows that address.
//!
//! Where the tests run: in a private network namespace (`unshare -rn`, which gives a
//! loopback with 127.0.0.1 and ::1, plus the non-loopback 10.0.0.1 and fd00::1 added
//! there for protected mode) when the machine allows one; each test then re-executes
//! itself inside it. Otherwise the loopback parts run on the host, and what needs an
//! absent ::1 or a non-loopback address is skipped with a message on stderr.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::netns::{self, in_netns, skipped};

/// Non-loopback addresses that exist only inside the private namespace.
const REMOTE_V4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const REMOTE_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
const NETNS_SETUP: &str = "ip link set lo up && ip addr add 10.0.0.1/8 dev lo && \
     { ip -6 addr add fd00::1/128 dev lo nodad 2>/dev/null || true; }";

const LOCAL_V4: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const LOCAL_V6: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs the test named `test` again inside a private network namespace with the
/// non-loopback addresses above, and asserts that it passed there. False when no
/// namespace can be made (the caller runs what it can).
fn rerun_in_netns(test: &str) -> bool {
    netns::rerun_in_netns(test, NETNS_SETUP)
}

/// Whether this network stack has ::1 (binding it is the test; nothing is sent).
fn has_ipv6_loopback() -> bool {
    std::net::TcpListener::bind((LOCAL_V6, 0)).is_ok()
}

/// A `rill` process listening on the addresses it was given, killed on drop.
struct Rill {
    port: u16,
    dir: PathBuf,
    child: Child,
}

impl Drop for Rill {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Rill {
    /// Starts `rill --port 0 --bind <bind…>` and waits until `probe` answers PING on the
    /// port it chose. Retried: with `* -::*` the port the OS picked for IPv4 may be
    /// taken for IPv6, which ends that attempt (as it would end Redis).
    fn start(bind: &[&str], probe: IpAddr) -> Rill {
        for attempt in 0..5 {
            if let Some(r) = Self::try_start(bind, probe, attempt) {
                return r;
            }
        }
        panic!("rill --bind {bind:?} did not start");
    }

    fn try_start(bind: &[&str], probe: IpAddr, attempt: u32) -> Option<Rill> {
        let dir = std::env::temp_dir().join(format!(
            "rill-ipv6-{}-{}-{attempt}",
            std::process::id(),
            bind.join("_").replace([':', '*'], "x")
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let child = Command::new(env!("CARGO_BIN_EXE_rill"))
            .args(["--port", "0", "--bind"])
            .args(bind)
            .arg("--dir")
            .arg(&dir)
            .env("NO_COLOR", "1")
            .env_remove("RILL_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn rill");
        // Owned by a `Rill` from here on, so every early return kills and reaps it.
        let mut rill = Rill {
            port: 0,
            dir,
            child,
        };
        let stdout = rill.child.stdout.take()?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut bytes = std::io::BufReader::new(stdout);
            let mut line = String::new();
            let mut sent = false;
            // Keep draining after the banner so the server never blocks on a full pipe.
            while matches!(std::io::BufRead::read_line(&mut bytes, &mut line), Ok(n) if n > 0) {
                if !sent {
                    if let Some(p) = line.split("port=").nth(1) {
                        let digits: String = p.chars().take_while(|c| c.is_ascii_digit()).collect();
                        if let Ok(port) = digits.parse::<u16>() {
                            let _ = tx.send(port);
                            sent = true;
                        }
                    }
                }
                line.clear();
            }
        });
        rill.port = rx.recv_timeout(Duration::from_secs(30)).ok()?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if matches!(ping(probe, rill.port), Ok(reply) if reply == b"+PONG\r\n") {
                return Some(rill);
            }
            if let Ok(Some(_)) = rill.child.try_wait() {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

fn connect(ip: IpAddr, port: u16) -> std::io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&SocketAddr::new(ip, port), IO_TIMEOUT)?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    Ok(s)
}

/// Everything the server sends until it closes, or the first reply line.
fn read_line_or_close(s: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.ends_with(b"\r\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    got
}

/// Connects from the same family's address and sends PING; the first reply line.
fn ping(ip: IpAddr, port: u16) -> std::io::Result<Vec<u8>> {
    let mut s = connect(ip, port)?;
    s.write_all(b"PING\r\n")?;
    Ok(read_line_or_close(&mut s))
}

/// Connects from `from` (a local address of this network stack) to `to`.
fn connect_from(from: IpAddr, to: IpAddr, port: u16) -> TcpStream {
    let domain = if to.is_ipv6() {
        socket2::Domain::IPV6
    } else {
        socket2::Domain::IPV4
    };
    let s = socket2::Socket::new(domain, socket2::Type::STREAM, None).expect("socket");
    s.bind(&SocketAddr::new(from, 0).into())
        .expect("bind the client's source address");
    s.connect_timeout(&SocketAddr::new(to, port).into(), IO_TIMEOUT)
        .expect("connect");
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    s
}

/// Sends an inline command and reads one bulk-string reply.
fn bulk(s: &mut TcpStream, command: &str) -> String {
    s.write_all(format!("{command}\r\n").as_bytes())
        .expect("write");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = got.windows(2).position(|w| w == b"\r\n") {
            let header = String::from_utf8_lossy(&got[..end]).to_string();
            let len: usize = header
                .strip_prefix('$')
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("not a bulk reply: {header}"));
            if got.len() >= end + 2 + len + 2 {
                return String::from_utf8_lossy(&got[end + 2..end + 2 + len]).to_string();
            }
        }
        let n = s.read(&mut buf).expect("read a reply");
        assert!(n > 0, "closed before the reply");
        got.extend_from_slice(&buf[..n]);
    }
}

/// CLIENT LIST's `addr=`/`laddr=` of the connection that sends it.
fn own_addrs(s: &mut TcpStream) -> (String, String) {
    let list = bulk(s, "CLIENT INFO");
    let field = |name: &str| {
        list.split(' ')
            .find_map(|f| f.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {list}"))
            .to_string()
    };
    (field("addr="), field("laddr="))
}

fn assert_refused(ip: IpAddr, port: u16) {
    match connect(ip, port) {
        Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{ip}: {e}"),
        Ok(_) => panic!("{ip} port {port} accepted a connection; nothing should listen there"),
    }
}

#[test]
fn bind_any_and_optional_any6_listen_on_both_families_on_one_port() {
    if !in_netns()
        && rerun_in_netns("bind_any_and_optional_any6_listen_on_both_families_on_one_port")
    {
        return;
    }
    let rill = Rill::start(&["*", "-::*"], LOCAL_V4);
    assert_eq!(ping(LOCAL_V4, rill.port).expect("IPv4"), b"+PONG\r\n");

    let mut v4 = connect(LOCAL_V4, rill.port).expect("IPv4");
    let (addr, laddr) = own_addrs(&mut v4);
    let local = v4.local_addr().expect("local address");
    assert_eq!(addr, local.to_string());
    assert_eq!(laddr, format!("127.0.0.1:{}", rill.port));

    if !has_ipv6_loopback() {
        skipped("no ::1 here and no private network namespace: the IPv6 half of `bind * -::*` was not tested");
        return;
    }
    assert_eq!(
        ping(LOCAL_V6, rill.port).expect("IPv6 on the same port"),
        b"+PONG\r\n"
    );
    let mut v6 = connect(LOCAL_V6, rill.port).expect("IPv6");
    let (addr, laddr) = own_addrs(&mut v6);
    let local = v6.local_addr().expect("local address");
    assert_eq!(addr, format!("[::1]:{}", local.port()));
    assert_eq!(laddr, format!("[::1]:{}", rill.port));

    // CLIENT KILL ADDR matches the address as CLIENT LIST shows it.
    let mut admin = connect(LOCAL_V4, rill.port).expect("IPv4");
    admin
        .write_all(format!("CLIENT KILL ADDR {addr}\r\n").as_bytes())
        .expect("write");
    assert_eq!(read_line_or_close(&mut admin), b":1\r\n");
    assert_eq!(read_line_or_close(&mut v6), b"");
}

#[test]
fn an_optional_address_that_is_missing_is_skipped() {
    if !in_netns() && rerun_in_netns("an_optional_address_that_is_missing_is_skipped") {
        return;
    }
    // 192.0.2.1 (TEST-NET-1) is on no interface: binding it fails with EADDRNOTAVAIL,
    // without a packet sent.
    let rill = Rill::start(&["127.0.0.1", "-192.0.2.1"], LOCAL_V4);
    assert_eq!(ping(LOCAL_V4, rill.port).expect("IPv4"), b"+PONG\r\n");

    // Without the `-`, as in Redis, start-up fails.
    let text = fails_to_start(&["127.0.0.1", "192.0.2.1"]);
    assert!(
        text.contains("Could not create server TCP listening socket 192.0.2.1:"),
        "{text}"
    );
    assert!(
        text.contains("bind: Cannot assign requested address"),
        "{text}"
    );
    assert!(text.contains("(tcp), aborting."), "{text}");
    // Nothing left to listen on: Redis's words, and no start either.
    for nowhere in [&["-192.0.2.1"][..], &[""][..]] {
        let text = fails_to_start(nowhere);
        assert!(
            text.contains("Configured to not listen anywhere, exiting."),
            "{nowhere:?}: {text}"
        );
    }
}

/// Runs `rill --bind <bind…>`, expects it to exit with a failure, and returns its output.
fn fails_to_start(bind: &[&str]) -> String {
    let dir = std::env::temp_dir().join(format!("rill-ipv6-{}-fatal", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_rill"))
        .args(["--port", "0", "--bind"])
        .args(bind)
        .arg("--dir")
        .arg(&dir)
        .env("NO_COLOR", "1")
        .env_remove("RILL_LOG")
        .output()
        .expect("run rill");
    let _ = std::fs::remove_dir_all(&dir);
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{bind:?} started: {text}");
    text
}

#[test]
fn an_ipv6_address_listens_on_ipv6_only() {
    if !in_netns() && rerun_in_netns("an_ipv6_address_listens_on_ipv6_only") {
        return;
    }
    if !has_ipv6_loopback() {
        skipped("no ::1 here and no private network namespace: `bind ::1` / `bind ::` not tested");
        return;
    }
    let rill = Rill::start(&["::1"], LOCAL_V6);
    assert_eq!(ping(LOCAL_V6, rill.port).expect("IPv6"), b"+PONG\r\n");
    assert_refused(LOCAL_V4, rill.port);
    drop(rill);

    // The IPv6 wildcard too: without V6ONLY it would take IPv4 as `::ffff:127.0.0.1`.
    let rill = Rill::start(&["::"], LOCAL_V6);
    assert_eq!(ping(LOCAL_V6, rill.port).expect("IPv6"), b"+PONG\r\n");
    assert_refused(LOCAL_V4, rill.port);
}

#[test]
fn protected_mode_denies_remote_peers_and_serves_loopback_on_both_families() {
    let test = "protected_mode_denies_remote_peers_and_serves_loopback_on_both_families";
    if !in_netns() && rerun_in_netns(test) {
        return;
    }
    // No password and protected mode on (the default).
    let rill = Rill::start(&["*", "-::*"], LOCAL_V4);
    assert_eq!(ping(LOCAL_V4, rill.port).expect("IPv4"), b"+PONG\r\n");
    let v6 = has_ipv6_loopback();
    if v6 {
        assert_eq!(ping(LOCAL_V6, rill.port).expect("IPv6"), b"+PONG\r\n");
    } else {
        skipped("no ::1 here and no private network namespace: IPv6 loopback in protected mode not tested");
    }
    if !in_netns() {
        skipped("no private network namespace: denial of non-loopback peers not tested here (tests/connection.rs covers it when the host has an address)");
        return;
    }
    let denied = |from: IpAddr| {
        let mut c = connect_from(from, from, rill.port);
        c.write_all(b"PING\r\n").expect("write");
        let mut got = Vec::new();
        let _ = c.read_to_end(&mut got);
        let text = String::from_utf8_lossy(&got).to_string();
        assert!(
            text.starts_with("-DENIED Redis is running in protected mode"),
            "{from}: {text}"
        );
    };
    denied(IpAddr::V4(REMOTE_V4));
    if v6 && std::net::TcpListener::bind((REMOTE_V6, 0)).is_ok() {
        denied(IpAddr::V6(REMOTE_V6));
    } else {
        skipped("fd00::1 could not be added in the namespace: IPv6 denial not tested");
    }
    // Loopback is still served after the denials.
    assert_eq!(ping(LOCAL_V4, rill.port).expect("IPv4"), b"+PONG\r\n");
}
