//! Storage: the segmented append log every mutation goes through, group commit,
//! recovery and the data-directory lock. It knows nothing of commands: it stores
//! and returns batches of argument vectors.

pub mod checkpoint;
pub mod lock;
pub mod log;
pub mod raft_record;
pub mod raftlog;
pub mod reader;
pub mod record;
pub mod recovery;
pub mod snapshot;

use std::path::{Path, PathBuf};

pub use log::{FsyncPolicy, Log, LogOptions};
pub use record::LoggedCommand;

/// The most files storage holds open at once, which the server keeps free of clients
/// (`core::fdlimit`): the directory lock (the data directory itself and its LOCK
/// file); the active segment, the next one while the committer rolls to it, and the log directory opened to fsync the new name; a
/// checkpoint's temporary file and the directory fsynced after its rename (a checkpoint
/// can run during a roll); and the segment reader's handles
/// ([`reader::MAX_OPEN_SEGMENTS`], plus two evicted while a read still used them).
/// Recovery runs before any client connects and opens one file at a time.
pub const MAX_OPEN_FILES: u64 = 2 + 3 + 2 + reader::MAX_OPEN_SEGMENTS as u64 + 2;

/// Creates `path` and any missing parents, then makes each new name durable: a directory's
/// entry in its parent survives a power cut only once the parent is fsynced, and without
/// that a new data directory (or its `log/`) can vanish with every acknowledged write in
/// it, although each segment and the log directory itself were fsynced. Found by the
/// power-cut crash test (`rill-crashtest --powercut`). Directories that already existed
/// are not synced here (see [`sync_dir`] for those a crashed run may have created).
pub fn create_dir_all_durable(path: &Path) -> std::io::Result<()> {
    let mut created = Vec::new();
    let mut p = path;
    loop {
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => break,
            Ok(_) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    format!("{} exists and is not a directory", p.display()),
                ))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                created.push(p.to_path_buf());
                match p.parent() {
                    Some(parent) if !parent.as_os_str().is_empty() => p = parent,
                    _ => break,
                }
            }
            Err(e) => return Err(e),
        }
    }
    std::fs::create_dir_all(path)?;
    // Deepest first: each new directory's entry is made durable in its parent, down to the
    // entry of the topmost new one in the directory that already existed.
    for dir in &created {
        let parent = match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        sync_dir(parent)?;
    }
    Ok(())
}

/// Fsyncs a directory, making the names in it (new files, renames, removals) durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir).and_then(|d| d.sync_all())
}

/// Storage failures, each saying what the operator must do.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A file operation failed.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A record that is not at the tail is damaged; start-up stops.
    #[error("corrupted log record in {} at offset {offset}: {reason}; run 'rill check --repair {}' to truncate the log there (everything after it is lost)", file.display(), dir.display())]
    Corrupted {
        file: PathBuf,
        offset: u64,
        reason: String,
        dir: PathBuf,
    },
    /// A write or fsync failed earlier: the kernel may have dropped dirty pages, so
    /// nothing more is accepted until a restart re-reads what is really on disk. Reads
    /// are refused too: memory may hold writes the log never accepted.
    #[error(
        "the log is poisoned after a failed write or fsync ({0}); writes and reads of data are refused until restart"
    )]
    Poisoned(String),
    /// A record's content could not be applied (reported with file and offset by
    /// the reader that found it).
    #[error("malformed record: {0}")]
    Malformed(String),
    /// Another process holds the data directory.
    #[error("the data directory {} is in use by another Rill process (lock file {} is held)", dir.display(), lock.display())]
    Locked { dir: PathBuf, lock: PathBuf },
}

impl StorageError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StorageError::Io {
            path: path.into(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // What it syncs is checked where syncs can be observed: the power-cut tests on
    // rill-lazyfs (tools/lazyfs/tests/rill.rs). Here: that it creates what it must and
    // refuses what it must.
    #[test]
    fn create_dir_all_durable_creates_nested_and_refuses_a_file() {
        let root = std::env::temp_dir().join(format!("rill-durable-dir-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let nested = root.join("a/b/c");
        create_dir_all_durable(&nested).expect("create nested");
        assert!(nested.is_dir());
        create_dir_all_durable(&nested).expect("an existing directory is fine");
        let file = root.join("file");
        std::fs::write(&file, b"x").expect("write");
        let err = create_dir_all_durable(&file.join("sub")).expect_err("under a file");
        assert_ne!(err.kind(), std::io::ErrorKind::NotFound);
        assert!(create_dir_all_durable(&file).is_err());
        let _ = std::fs::remove_dir_all(&root);
    }
}
