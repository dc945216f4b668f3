//! Re-running a test inside a private network namespace (`unshare -rn`).
//!
//! There the test owns the loopback: every 127.0.0.x address is its own (so several
//! nodes can each have an address and the same port, as on separate machines), nothing
//! else on the machine listens, and addresses that are not loopback can be added.
//! A test calls [`rerun_in_netns`] first; when that returns true the test has already
//! run (and passed) inside a namespace and returns. Without user and network
//! namespaces (a container that forbids them, no `unshare` or `ip`), it returns false
//! and the test runs on the host, saying what it could not do with [`skipped`].

use std::io::Write;
use std::process::{Command, Stdio};

/// Set in the environment of a test re-executed inside the private namespace.
const IN_NETNS: &str = "RILL_TEST_NETNS";

/// The least a namespace needs: its loopback is down until brought up.
pub const LOOPBACK_UP: &str = "ip link set lo up";

/// Says why part of a test did not run, past libtest's output capture, so a skip is
/// never silent.
pub fn skipped(what: &str) {
    let _ = writeln!(std::io::stderr(), "SKIPPED: {what}");
}

/// True in a test re-executed inside the private namespace.
pub fn in_netns() -> bool {
    std::env::var_os(IN_NETNS).is_some()
}

/// Whether `unshare -rn` works here and `setup` (a `sh -c` script) succeeds inside it.
pub fn netns_available(setup: &str) -> bool {
    Command::new("unshare")
        .args(["-rn", "sh", "-c", setup])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs the test named `test` of this test binary again inside a private network
/// namespace prepared by `setup`, and asserts that it passed there. True when it did
/// (the caller returns); false inside the namespace already, and when no namespace can
/// be made (the caller runs on the host).
pub fn rerun_in_netns(test: &str, setup: &str) -> bool {
    if in_netns() || !netns_available(setup) {
        return false;
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let out = Command::new("unshare")
        .args(["-rn", "sh", "-c", &format!("{setup} && exec \"$@\""), "sh"])
        .arg(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(IN_NETNS, "1")
        .output()
        .expect("run the test inside unshare -rn");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let _ = writeln!(std::io::stderr(), "{stderr}");
    assert!(
        out.status.success(),
        "{test} failed inside a private network namespace:\n{stdout}\n{stderr}"
    );
    // An exact filter that matched nothing would pass vacuously.
    assert!(stdout.contains("1 passed"), "{test} did not run:\n{stdout}");
    true
}
