//! Shared by the mounted tests: a lazy file system mounted for the length of one test.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rill_lazyfs::control::request;

/// A mounted lazy file system; unmounted (and the daemon reaped) on drop.
pub struct Mounted {
    child: Child,
    root: PathBuf,
    pub mnt: PathBuf,
    pub ctl: PathBuf,
}

impl Mounted {
    pub fn new(name: &str, tear_seed: Option<u64>) -> Mounted {
        let root = std::env::temp_dir().join(format!("rill-lazyfs-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let mnt = root.join("mnt");
        fs::create_dir_all(&mnt).expect("create the mount point");
        let ctl = root.join("ctl.sock");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rill-lazyfs"));
        cmd.arg(&mnt).arg("--control").arg(&ctl);
        if let Some(s) = tear_seed {
            cmd.arg("--tear-seed").arg(s.to_string());
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start rill-lazyfs");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout");
        let _ = BufReader::new(stdout).read_line(&mut line);
        if line.trim() != "ready" {
            let _ = child.wait();
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            panic!(
                "rill-lazyfs did not mount (FUSE is required for this test: /dev/fuse and root \
                 or fusermount3; .ci/powercut installs fuse3): {err}"
            );
        }
        Mounted {
            child,
            root,
            mnt,
            ctl,
        }
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.mnt.join(p)
    }

    /// Power cut and back: returns the restore report.
    pub fn power_cycle(&self) -> String {
        request(&self.ctl, "cut").expect("cut");
        request(&self.ctl, "restore").expect("restore")
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = request(&self.ctl, "unmount");
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.root);
    }
}
