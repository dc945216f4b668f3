//! The control socket: a Unix stream socket taking one command per line, answering one line
//! (`ok …` or `err …`).
//!
//! * `cut` — the power goes: every later change or sync fails with `EIO`, so nothing written
//!   after this instant can become durable. The caller then SIGKILLs the program under test.
//! * `restore` — the power comes back: the tree becomes its durable view (unsynced data torn
//!   when the daemon was started with a tear seed). Answers what was dropped:
//!   `ok files_reverted=F bytes_dropped=B bytes_torn_kept=K names_reverted=N inodes_removed=I`.
//! * `status` — `ok frozen=0|1 inodes=N bytes=B cuts=C`.
//! * `unmount` — answers `ok`, then unmounts and exits.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use crate::fs::Shared;
use crate::model::{CutReport, TearRng};
use crate::LazyFsError;

/// What the daemon keeps between commands.
pub struct Controller {
    pub tree: Shared,
    pub tear: Option<TearRng>,
    pub cuts: u64,
}

/// What the connection loop should do after a command.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    Continue,
    Unmount,
}

fn report_line(r: &CutReport) -> String {
    format!(
        "ok files_reverted={} bytes_dropped={} bytes_torn_kept={} names_reverted={} inodes_removed={}",
        r.files_reverted, r.bytes_dropped, r.bytes_torn_kept, r.names_reverted, r.inodes_removed
    )
}

impl Controller {
    /// Runs one command; returns the answer line and what to do next.
    pub fn command(&mut self, line: &str) -> (String, Next) {
        match line.trim() {
            "cut" => {
                self.tree.lock().cut();
                self.cuts += 1;
                ("ok".into(), Next::Continue)
            }
            "restore" => {
                let mut t = self.tree.lock();
                if !t.is_frozen() {
                    return ("err restore without a cut".into(), Next::Continue);
                }
                let r = t.restore(self.tear.as_mut());
                (report_line(&r), Next::Continue)
            }
            "status" => {
                let t = self.tree.lock();
                (
                    format!(
                        "ok frozen={} inodes={} bytes={} cuts={}",
                        u8::from(t.is_frozen()),
                        t.inode_count(),
                        t.bytes_held(),
                        self.cuts
                    ),
                    Next::Continue,
                )
            }
            "unmount" => ("ok".into(), Next::Unmount),
            other => (format!("err unknown command {other:?}"), Next::Continue),
        }
    }

    /// Serves one connection until it closes or asks to unmount.
    pub fn serve(&mut self, conn: UnixStream) -> Result<Next, LazyFsError> {
        let mut writer = conn
            .try_clone()
            .map_err(|e| LazyFsError::io("control socket", e))?;
        for line in BufReader::new(conn).lines() {
            let line = line.map_err(|e| LazyFsError::io("control socket", e))?;
            let (answer, next) = self.command(&line);
            writeln!(writer, "{answer}").map_err(|e| LazyFsError::io("control socket", e))?;
            if next == Next::Unmount {
                return Ok(next);
            }
        }
        Ok(Next::Continue)
    }
}

/// Sends one command to the daemon at `socket` and returns its `ok` answer (without `ok`);
/// an `err` answer or a broken socket is an error.
pub fn request(socket: &Path, command: &str) -> Result<String, LazyFsError> {
    let what = || format!("control socket {}", socket.display());
    let mut s = UnixStream::connect(socket).map_err(|e| LazyFsError::io(what(), e))?;
    writeln!(s, "{command}").map_err(|e| LazyFsError::io(what(), e))?;
    let mut line = String::new();
    BufReader::new(s)
        .read_line(&mut line)
        .map_err(|e| LazyFsError::io(what(), e))?;
    let line = line.trim_end();
    match line.strip_prefix("ok") {
        Some(rest) => Ok(rest.trim_start().to_string()),
        None => Err(LazyFsError::Control(format!("{command}: {line:?}"))),
    }
}
