//! Cluster nodes as real `rill` processes, for the cluster and replication tests: each
//! test re-executes itself inside a private network namespace (`unshare -rn`, see
//! `netns`), where every 127.0.0.x address is the test's own, and gives each node its own
//! address, 127.0.0.11, .12, .13 …, all on port 7000, as nodes on separate machines would
//! be. Where no namespace can be made the test says `SKIPPED namespace: …` on stderr and
//! runs its nodes on 127.0.0.1, each on a free port.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU8, Ordering};

use super::netns::{self, in_netns};
use super::{free_port, TestServer};

/// The port of every node inside the namespace (their addresses differ).
pub const NETNS_PORT: u16 = 7000;

/// The last byte of the next node's address inside the namespace: 127.0.0.11, .12, …
/// (one test per process there, so every test starts from .11).
static NEXT_HOST: AtomicU8 = AtomicU8::new(11);

/// Runs the test named `test` inside a private network namespace; true when it ran (and
/// passed) there, so the caller returns. False inside the namespace, and on a machine
/// without one, which the output says.
pub fn ran_in_netns(test: &str) -> bool {
    if in_netns() {
        return false;
    }
    if netns::rerun_in_netns(test, netns::LOOPBACK_UP) {
        return true;
    }
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED namespace: `unshare -rn` is not available here; {test} runs its nodes on \
         127.0.0.1 with a free port each"
    );
    false
}

/// Where the next node listens: its own address and port 7000 inside the namespace;
/// else 127.0.0.1 and a free port. Fixed either way, so a restart keeps the address the
/// map holds; the bus port (port + 10000) must fit in 16 bits, as in Redis.
pub fn next_address() -> (IpAddr, String) {
    if in_netns() {
        let last = NEXT_HOST.fetch_add(1, Ordering::SeqCst);
        (
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)),
            NETNS_PORT.to_string(),
        )
    } else {
        let port = std::iter::repeat_with(free_port)
            .find(|p| *p <= 55535)
            .expect("a free port");
        (IpAddr::V4(Ipv4Addr::LOCALHOST), port.to_string())
    }
}

/// A cluster-mode node at the next address, with extra arguments.
pub fn node_with(extra: &[&str]) -> TestServer {
    let (host, port) = next_address();
    let mut args = vec!["--cluster-enabled", "yes", "--port", &port];
    args.extend_from_slice(extra);
    TestServer::start_on(host, &args)
}

/// A cluster-mode node at the next address.
pub fn node() -> TestServer {
    node_with(&[])
}

pub fn rill_command(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rill"));
    c.args(args);
    c
}

pub fn rill(args: &[&str]) -> Output {
    rill_command(args).output().expect("run rill")
}

/// The standard output of a `rill` run (`what`) that must have succeeded.
pub fn succeeded(out: &Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Runs `rill` with `args`, which must succeed; its standard output.
pub fn rill_ok(args: &[&str]) -> String {
    succeeded(&rill(args), &format!("rill {}", args.join(" ")))
}

/// `host:port`, as the map, MOVED and the CLI show a node.
pub fn addr(s: &TestServer) -> String {
    format!("{}:{}", s.host, s.port)
}
