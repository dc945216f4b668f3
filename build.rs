//! Build facts for `rill --version` and INFO server, as Redis's `release.h`: the git commit
//! the binary was built from (`RILL_GIT_SHA1`, 8 hex digits, `00000000` outside a git
//! checkout), whether the tree had uncommitted changes (`RILL_GIT_DIRTY`, 0 or 1), and a
//! build id that tells builds apart (`RILL_BUILD_ID`: a hash of the version, commit,
//! target and profile).
//!
//! Outside a git checkout (a source tarball, a container build without `.git`) the commit
//! can be given as `RILL_BUILD_GIT_SHA` (at least 8 hex digits; the Dockerfile passes its
//! `RILL_GIT_SHA` build argument); without it the commit is `00000000`.
//!
//! The script re-runs when the checked-out commit moves (`HEAD`, the branch's ref,
//! `packed-refs`, wherever git keeps them: a linked worktree's are not under `.git/`), not
//! on every edit, so a build rebuilds the crate once per commit, not once per change of
//! the index; the dirty flag is that of the moment the script ran.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    // Re-run when the checked-out commit moves (a missing file is simply not watched). Paths
    // come from git (`--git-path`): in a linked worktree `.git` is a file, HEAD is under
    // the worktree's git dir and the branch refs under the common one.
    let git_path = |p: &str| git(&["rev-parse", "--git-path", p]);
    let mut watched: Vec<String> = ["HEAD", "packed-refs"]
        .iter()
        .filter_map(|p| git_path(p))
        .collect();
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.extend(git_path(&branch));
    }
    for f in watched {
        if std::path::Path::new(&f).exists() {
            println!("cargo:rerun-if-changed={f}");
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=RILL_BUILD_GIT_SHA");
    let given = std::env::var("RILL_BUILD_GIT_SHA")
        .ok()
        .filter(|s| s.len() >= 8 && s.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(|s| s[..8].to_ascii_lowercase());
    let sha = git(&["rev-parse", "--short=8", "HEAD"])
        .filter(|s| s.len() == 8 && s.bytes().all(|b| b.is_ascii_hexdigit()))
        .or(given)
        .unwrap_or_else(|| "00000000".into());
    let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
        .map(|s| u8::from(!s.is_empty()))
        .unwrap_or(0);
    let target = std::env::var("TARGET").unwrap_or_default();
    let profile = std::env::var("PROFILE").unwrap_or_default();
    // FNV-1a over what identifies the build (no dependency for a build script's hash).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in format!(
        "{}/{sha}/{dirty}/{target}/{profile}",
        env!("CARGO_PKG_VERSION")
    )
    .bytes()
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    println!("cargo:rustc-env=RILL_GIT_SHA1={sha}");
    println!("cargo:rustc-env=RILL_GIT_DIRTY={dirty}");
    println!("cargo:rustc-env=RILL_BUILD_ID={h:016x}");
}
