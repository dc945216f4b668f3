//! A short crash test under `cargo test`: the `rill-crashtest` tool SIGKILLs the real server
//! under concurrent load a few times and checks every acknowledged write after each restart.
//! `.ci/crash` runs the same tool for a few dozen cycles on the release build.

use std::process::Command;

fn crashtest(extra: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rill-crashtest"))
        .arg("--server")
        .arg(env!("CARGO_BIN_EXE_rill"))
        .args(["--workers", "3", "--max-load-ms", "300"])
        .args(extra)
        .output()
        .expect("run rill-crashtest");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    let (code, text) = crashtest(&["--cycles", "4"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("PASS: 4 cycles"), "{text}");
}

/// The checker is not vacuous: losing the newest records after each kill (more of them than
/// there can be unanswered commands) must be reported as lost acknowledged writes.
#[test]
fn lost_acknowledged_writes_are_reported() {
    let (code, text) = crashtest(&[
        "--cycles",
        "4",
        "--seed",
        "7",
        "--sabotage-drop-records",
        "12",
    ]);
    assert_eq!(code, Some(1), "{text}");
    // Which cycle first has acknowledged records to drop depends on timing.
    assert!(text.contains("FAIL: cycle "), "{text}");
}
