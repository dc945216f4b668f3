//! `rill-lazyfs`: a FUSE file system that forgets, at a simulated power cut, everything a disk
//! would not be bound to keep: file data not fsynced, and names (creates, renames, unlinks,
//! new directories) whose directory was not fsynced. The power-cut crash test
//! (`rill-crashtest --powercut`, `.ci/powercut`) runs the real `rill` binary with its data
//! directory on it, cuts the power at random moments under load, and checks that every
//! acknowledged write survives.
//!
//! **Why FUSE, not a file-system trait inside the engine** (as raft-engine does): the test
//! then exercises the very binary we ship, with its real `open`/`write`/`fsync`/`rename`
//! calls, including those outside the storage engine (the lock file, the pid file, the
//! checkpoint writer, `create_dir_all` of the log directory) — a trait only sees the calls
//! that were routed through it, and routing them would mean refactoring the engine. The cost
//! is a FUSE mount (root or `fusermount3`, `/dev/fuse`), which only `.ci/powercut` needs.
//!
//! **Why the `fuser` crate**: pure Rust (no libfuse to link: it mounts with `mount(2)` as root,
//! or through `fusermount3` otherwise), maintained, and its low-level inode API is exactly the
//! shape of the model — inode numbers, explicit `fsync`/`fsyncdir` requests — with no
//! path-based layer in between that could hide a directory sync.
//!
//! **Why in memory, not a pass-through over a backing directory**: the durable view must be
//! kept next to the current one per file and per directory entry; in memory both are exact and
//! a cut is a swap, while a backing directory would have to be rewritten (and itself trusted)
//! at every cut. The server's data under test is small (tens of MB).
//!
//! The durability rules are in [`model`]; the control protocol in [`control`].

pub mod control;
pub mod fs;
pub mod model;

/// Why the file system or its control socket failed.
#[derive(Debug, thiserror::Error)]
pub enum LazyFsError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("usage: {0}")]
    Usage(String),
    #[error("control: {0}")]
    Control(String),
}

impl LazyFsError {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> LazyFsError {
        LazyFsError::Io {
            what: what.into(),
            source,
        }
    }
}
