//! Raft snapshots as files (issue #14 step H; design scale-out.md §3.8): what a leader
//! sends a replica that needs entries it purged, and how that replica installs it.
//!
//! **A snapshot is a published checkpoint and the log it needs**: the checkpoint file of a
//! Raft checkpoint at index A (its `RAFT` state record names A), the older segments it keeps
//! for live payloads, and the segments from its tail through the one holding entry A, the
//! last copied only up to the end of A's record (bytes up to A are committed and never cut;
//! bytes after it may be, by a truncation, while they are copied). Installed as a data
//! directory's `log/`, that is exactly what a node restarting from the checkpoint reads.
//!
//! **Leader side** ([`SnapshotStore`]): when a Raft checkpoint is published, its files are
//! hard-linked into `snapshots/<A>/` of the data directory, so a later checkpoint or
//! compaction deleting a segment from `log/` does not pull it from under a transfer (a hard
//! link costs no copy). The two newest snapshots are kept, older ones removed (a transfer of
//! a removed one fails and the replica is sent the newer one). A restart starts with none
//! (the directory is emptied): the next checkpoint publishes one. The price: the segments
//! the last two checkpoints superseded stay on disk until the next ones.
//!
//! **Replica side**: the files are fetched into `snapshot-install/log/` (the transport's
//! authenticated fetch; the caller does that), then [`seal_staged`] opens the staged log as
//! a Raft log and writes this node's own hard state (its term and vote, commit A), the
//! snapshot's configuration and a purge point at A after the copied records, and
//! [`mark_ready`] makes it durable with a `READY` marker. The node restarts; before it opens
//! its log, [`finish_install`] swaps `snapshot-install/log` in for `log/` (renames, each
//! repeated safely after a crash) and removes the old log. Without `READY` a staging
//! directory is an unfinished transfer and is removed.

use std::collections::VecDeque;
use std::fs;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;

use super::log::LogOptions;
use super::raft_record::{ConfStateRecord, HardStateRecord};
use super::raftlog::RaftLog;
use super::recovery::log_dir;
use super::{create_dir_all_durable, sync_dir, StorageError};

/// Where a leader keeps its published snapshots (hard links), under the data directory.
pub const SNAPSHOTS_DIR: &str = "snapshots";
/// Where a replica stages a snapshot it installs, under the data directory.
pub const INSTALL_DIR: &str = "snapshot-install";
/// The marker that says a staged snapshot is complete and durable.
const READY: &str = "READY";
/// Snapshots kept on a leader.
const KEEP: usize = 2;
/// Most files one snapshot may list (a sanity bound on a decoded description).
const MAX_FILES: usize = 1 << 16;

/// A published snapshot: its Raft index and term, and its files with the bytes of each
/// that belong to it (raft's `Snapshot::data` carries this).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotFiles {
    pub index: u64,
    pub term: u64,
    /// File names (in `log/`) and lengths to copy.
    pub files: Vec<(String, u64)>,
}

impl SnapshotFiles {
    /// `u64 index | u64 term | u32 count | count × (u16 name length | name | u64 length)`,
    /// little-endian.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(20 + self.files.len() * 40);
        out.extend_from_slice(&self.index.to_le_bytes());
        out.extend_from_slice(&self.term.to_le_bytes());
        out.extend_from_slice(&(self.files.len() as u32).to_le_bytes());
        for (name, len) in &self.files {
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&len.to_le_bytes());
        }
        out
    }

    /// Parses [`SnapshotFiles::encode`]'s bytes; names must be plain file names.
    pub fn decode(mut b: &[u8]) -> Result<SnapshotFiles, StorageError> {
        let bad = |why: &str| StorageError::Malformed(format!("snapshot description: {why}"));
        fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
            if b.len() < n {
                return None;
            }
            let (head, rest) = b.split_at(n);
            *b = rest;
            Some(head)
        }
        let u64_of =
            |b: &mut &[u8]| take(b, 8).and_then(|x| x.try_into().ok().map(u64::from_le_bytes));
        let index = u64_of(&mut b).ok_or_else(|| bad("cut short"))?;
        let term = u64_of(&mut b).ok_or_else(|| bad("cut short"))?;
        let count = take(&mut b, 4)
            .and_then(|x| x.try_into().ok().map(u32::from_le_bytes))
            .ok_or_else(|| bad("cut short"))? as usize;
        if count > MAX_FILES {
            return Err(bad("too many files"));
        }
        let mut files = Vec::with_capacity(count);
        for _ in 0..count {
            let n = take(&mut b, 2)
                .and_then(|x| x.try_into().ok().map(u16::from_le_bytes))
                .ok_or_else(|| bad("cut short"))? as usize;
            let name = take(&mut b, n)
                .and_then(|x| std::str::from_utf8(x).ok())
                .ok_or_else(|| bad("bad file name"))?
                .to_string();
            if !plain_name(&name) {
                return Err(bad("a file name that is not a plain name"));
            }
            let len = u64_of(&mut b).ok_or_else(|| bad("cut short"))?;
            files.push((name, len));
        }
        if !b.is_empty() {
            return Err(bad("trailing bytes"));
        }
        Ok(SnapshotFiles { index, term, files })
    }
}

/// A name with no directory in it.
fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.contains('\\')
        && !name.contains('\0')
}

/// A leader's published snapshots (module docs).
pub struct SnapshotStore {
    root: PathBuf,
    published: Mutex<VecDeque<SnapshotFiles>>,
    /// A replica needed a snapshot and none (or only a stale one) was published: the
    /// checkpoint task takes one now instead of waiting for its interval.
    wanted: std::sync::atomic::AtomicBool,
}

impl SnapshotStore {
    /// The store of data directory `dir`; what a previous run left is removed.
    pub fn new(dir: &Path) -> SnapshotStore {
        let root = dir.join(SNAPSHOTS_DIR);
        let _ = fs::remove_dir_all(&root);
        SnapshotStore {
            root,
            published: Mutex::new(VecDeque::new()),
            wanted: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Publishes the checkpoint at `checkpoint` of Raft index `index` (term `term`) with
    /// the segments of data directory `dir` it needs (`(number, bytes to copy)`, `None`:
    /// the whole file): hard links in `snapshots/<index>/`. Older snapshots beyond the
    /// newest [`KEEP`] are removed.
    pub fn publish(
        &self,
        dir: &Path,
        checkpoint: &Path,
        segments: &[(u64, Option<u64>)],
        index: u64,
        term: u64,
    ) -> Result<SnapshotFiles, StorageError> {
        let at = self.root.join(index.to_string());
        let _ = fs::remove_dir_all(&at);
        create_dir_all_durable(&at).map_err(|e| StorageError::io(&at, e))?;
        let mut files = Vec::with_capacity(segments.len() + 1);
        let link = |from: &Path| -> Result<(String, u64), StorageError> {
            let name = from
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| {
                    StorageError::Malformed(format!("{} has no file name", from.display()))
                })?
                .to_string();
            fs::hard_link(from, at.join(&name)).map_err(|e| StorageError::io(from, e))?;
            let len = fs::metadata(from)
                .map_err(|e| StorageError::io(from, e))?
                .len();
            Ok((name, len))
        };
        files.push(link(checkpoint)?);
        for &(n, len) in segments {
            let (name, whole) = link(&super::recovery::segment_path(dir, n))?;
            files.push((name, len.unwrap_or(whole).min(whole)));
        }
        let snap = SnapshotFiles { index, term, files };
        let mut p = self.published.lock();
        p.retain(|s| s.index != index);
        p.push_back(snap.clone());
        while p.len() > KEEP {
            if let Some(old) = p.pop_front() {
                let _ = fs::remove_dir_all(self.root.join(old.index.to_string()));
            }
        }
        Ok(snap)
    }

    /// Asks for a snapshot to be published ([`SnapshotStore::take_wanted`]).
    pub fn want(&self) {
        self.wanted
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// Whether a snapshot was asked for since the last call.
    pub fn take_wanted(&self) -> bool {
        self.wanted.swap(false, std::sync::atomic::Ordering::AcqRel)
    }

    /// The newest published snapshot.
    pub fn newest(&self) -> Option<SnapshotFiles> {
        self.published.lock().back().cloned()
    }

    /// File `name` of published snapshot `index`: its path and the bytes of it to serve.
    pub fn file(&self, index: u64, name: &str) -> Option<(PathBuf, u64)> {
        if !plain_name(name) {
            return None;
        }
        let p = self.published.lock();
        let snap = p.iter().find(|s| s.index == index)?;
        let (_, len) = snap.files.iter().find(|(n, _)| n == name)?;
        Some((self.root.join(index.to_string()).join(name), *len))
    }
}

/// The staging directory of data directory `dir` (a data directory of its own: the
/// snapshot's files go in its `log/`).
pub fn staging_dir(dir: &Path) -> PathBuf {
    dir.join(INSTALL_DIR)
}

/// Starts staging a snapshot: an empty `snapshot-install/log/` (what an earlier attempt
/// left is removed). Returns that log directory, where the files go.
pub fn begin_install(dir: &Path) -> Result<PathBuf, StorageError> {
    let staging = staging_dir(dir);
    let _ = fs::remove_dir_all(&staging);
    let ld = log_dir(&staging);
    create_dir_all_durable(&ld).map_err(|e| StorageError::io(&ld, e))?;
    Ok(ld)
}

/// Writes this node's Raft state after the staged snapshot's records (module docs): a purge
/// point at the snapshot's index (the leader restates its own purge point after the cut,
/// so the copied records name none), the snapshot's configuration, and this node's
/// `hard_state` (commit = the snapshot's index). Then opens the result as a Raft log to
/// check that it is one, ending at the snapshot's index.
pub fn seal_staged(
    dir: &Path,
    opts: LogOptions,
    index: u64,
    term: u64,
    hard_state: HardStateRecord,
    conf_state: ConfStateRecord,
) -> Result<(), StorageError> {
    use super::raft_record::{CompactRecord, RaftRecord};
    let staging = staging_dir(dir);
    let log = super::log::Log::open_with(&staging, opts, &mut |_, _| Ok(()))?;
    let written = log
        .append_raft(&[
            RaftRecord::Compact(CompactRecord { index, term }),
            RaftRecord::ConfState(conf_state),
            RaftRecord::HardState(hard_state),
        ])
        .and_then(|_| log.sync());
    log.close();
    drop(log);
    written?;
    let log = RaftLog::open(&staging, opts, &mut |_, _| Ok(()))?;
    let (first, last) = (log.first_index(), log.last_index());
    log.close();
    if first != index + 1 || last != index {
        return Err(StorageError::Malformed(format!(
            "the staged snapshot's Raft log holds entries {first}..={last}, not none after index {index}"
        )));
    }
    Ok(())
}

/// Marks the staged snapshot complete: its files and directories synced, then `READY`
/// written durably. From here a restart installs it.
pub fn mark_ready(dir: &Path) -> Result<(), StorageError> {
    let staging = staging_dir(dir);
    let ld = log_dir(&staging);
    let rd = fs::read_dir(&ld).map_err(|e| StorageError::io(&ld, e))?;
    for entry in rd {
        let path = entry.map_err(|e| StorageError::io(&ld, e))?.path();
        fs::File::open(&path)
            .and_then(|f| f.sync_all())
            .map_err(|e| StorageError::io(&path, e))?;
    }
    sync_dir(&ld).map_err(|e| StorageError::io(&ld, e))?;
    let marker = staging.join(READY);
    fs::File::create(&marker)
        .and_then(|f| f.sync_all())
        .map_err(|e| StorageError::io(&marker, e))?;
    sync_dir(&staging).map_err(|e| StorageError::io(&staging, e))?;
    Ok(())
}

/// At start-up, before the log is opened: installs a staged snapshot marked ready (swaps
/// it in for `log/`), or removes an unfinished one. Returns whether one was installed.
/// Each step can be repeated after a crash in the middle.
pub fn finish_install(dir: &Path) -> Result<bool, StorageError> {
    let staging = staging_dir(dir);
    if !staging.exists() {
        return Ok(false);
    }
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |e| StorageError::io(p, e)
    };
    if !staging.join(READY).exists() {
        fs::remove_dir_all(&staging).map_err(io(&staging))?;
        return Ok(false);
    }
    let live = log_dir(dir);
    let staged = log_dir(&staging);
    let old = dir.join("log.replaced");
    if staged.exists() {
        if live.exists() {
            let _ = fs::remove_dir_all(&old);
            fs::rename(&live, &old).map_err(io(&live))?;
        }
        fs::rename(&staged, &live).map_err(io(&staged))?;
        sync_dir(dir).map_err(io(dir))?;
    }
    // `log/` is the snapshot's now (the rename is durable): the rest is cleaning up.
    let _ = fs::remove_dir_all(&old);
    fs::remove_dir_all(&staging).map_err(io(&staging))?;
    sync_dir(dir).map_err(io(dir))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_description_round_trips_and_refuses_paths() {
        let s = SnapshotFiles {
            index: 42,
            term: 7,
            files: vec![
                ("checkpoint-00000000000000000003.ckp".into(), 1234),
                ("00000000000000000003.seg".into(), 99),
            ],
        };
        assert_eq!(SnapshotFiles::decode(&s.encode()).expect("decode"), s);
        for bad in ["../x", "a/b", "", ".."] {
            let t = SnapshotFiles {
                files: vec![(bad.into(), 1)],
                ..s.clone()
            };
            assert!(
                SnapshotFiles::decode(&t.encode()).is_err(),
                "{bad:?} accepted"
            );
        }
        let enc = s.encode();
        for cut in 0..enc.len() {
            assert!(SnapshotFiles::decode(&enc[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn finish_install_swaps_a_ready_staging_and_drops_an_unfinished_one() {
        let dir = std::env::temp_dir().join(format!("rill-snapinstall-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(log_dir(&dir)).expect("log");
        fs::write(log_dir(&dir).join("old"), b"old").expect("old");
        // Unfinished: removed, the log untouched.
        let ld = begin_install(&dir).expect("begin");
        fs::write(ld.join("new"), b"new").expect("new");
        assert!(!finish_install(&dir).expect("finish"));
        assert!(log_dir(&dir).join("old").exists());
        assert!(!staging_dir(&dir).exists());
        // Ready: swapped in.
        let ld = begin_install(&dir).expect("begin");
        fs::write(ld.join("new"), b"new").expect("new");
        mark_ready(&dir).expect("ready");
        assert!(finish_install(&dir).expect("finish"));
        assert!(log_dir(&dir).join("new").exists());
        assert!(!log_dir(&dir).join("old").exists());
        assert!(!staging_dir(&dir).exists());
        // A crash after the first rename: the second completes it.
        let ld = begin_install(&dir).expect("begin");
        fs::write(ld.join("newer"), b"x").expect("newer");
        mark_ready(&dir).expect("ready");
        fs::rename(log_dir(&dir), dir.join("log.replaced")).expect("first rename");
        assert!(finish_install(&dir).expect("finish"));
        assert!(log_dir(&dir).join("newer").exists());
        assert!(!dir.join("log.replaced").exists());
        let _ = fs::remove_dir_all(&dir);
    }
}
