//! Random reads of entry payloads from the log segments.
//!
//! The stream index points each entry at the bytes of its fields inside the log
//! record that added it (or that relocated it during compaction), so payloads are
//! read back with one `pread` instead of being kept in memory. Files are opened on
//! first use and kept open, at most [`MAX_OPEN_SEGMENTS`] of them (the least recently
//! used is closed), so the descriptors storage needs stay bounded however many old
//! segments hold live payloads; a segment that compaction deletes is forgotten first,
//! so its space is returned to the file system.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use super::log::pack_pos;
use super::recovery::segment_path;

/// Segment files the reader keeps open at most.
pub const MAX_OPEN_SEGMENTS: usize = 16;

/// Reads byte ranges of segment files, for the payload store.
pub struct SegmentReader {
    dir: PathBuf,
    /// Open segments, each with the tick of its last use.
    files: Mutex<HashMap<u64, (Arc<File>, u64)>>,
    tick: AtomicU64,
    written: std::sync::OnceLock<Arc<AtomicU64>>,
}

/// Why a payload could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The bytes are not in the file yet (only the writer's queue has them).
    #[error("segment {segment} offset {offset}: not written yet")]
    NotWritten { segment: u64, offset: u64 },
    /// The file could not be opened or read.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl SegmentReader {
    /// A reader for the segments of data directory `dir`.
    pub fn new(dir: PathBuf) -> Self {
        SegmentReader {
            dir,
            files: Mutex::new(HashMap::new()),
            tick: AtomicU64::new(0),
            written: std::sync::OnceLock::new(),
        }
    }

    /// From now on, reads past what the log writer has written (`Log::written_handle`)
    /// are refused instead of returning short data.
    pub fn set_written(&self, written: Arc<AtomicU64>) {
        let _ = self.written.set(written);
    }

    fn file(&self, segment: u64) -> Result<Arc<File>, ReadError> {
        let now = self.tick.fetch_add(1, Ordering::Relaxed);
        let mut files = self.files.lock();
        if let Some((f, used)) = files.get_mut(&segment) {
            *used = now;
            return Ok(f.clone());
        }
        if files.len() >= MAX_OPEN_SEGMENTS {
            let oldest = files
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(n, _)| *n);
            if let Some(n) = oldest {
                files.remove(&n);
            }
        }
        let path = segment_path(&self.dir, segment);
        let f = Arc::new(File::open(&path).map_err(|source| ReadError::Io { path, source })?);
        files.insert(segment, (f.clone(), now));
        Ok(f)
    }

    /// Reads `len` bytes at `offset` of segment `segment`.
    pub fn read_at(&self, segment: u64, offset: u64, len: usize) -> Result<Vec<u8>, ReadError> {
        if let Some(w) = self.written.get() {
            if pack_pos(segment, offset + len as u64) > w.load(Ordering::Acquire) {
                return Err(ReadError::NotWritten { segment, offset });
            }
        }
        let f = self.file(segment)?;
        let mut buf = vec![0u8; len];
        f.read_exact_at(&mut buf, offset)
            .map_err(|source| ReadError::Io {
                path: segment_path(&self.dir, segment),
                source,
            })?;
        Ok(buf)
    }

    /// Closes the handle of a segment about to be deleted.
    pub fn forget(&self, segment: u64) {
        self.files.lock().remove(&segment);
    }

    /// The position up to which the log is written (everything when there is no log).
    pub fn written_pos(&self) -> u64 {
        self.written
            .get()
            .map_or(u64::MAX, |w| w.load(Ordering::Acquire))
    }
}
