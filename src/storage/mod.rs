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

use std::path::PathBuf;

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
