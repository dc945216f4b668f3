//! The append log with group commit led by a committer, not a writer thread.
//!
//! Connections append records under the keyspace lock (so log order is execution
//! order) into a shared buffer and get a log sequence number (LSN). A reply that
//! depends on a record waits for its LSN in [`Log::wait_durable`]: the first waiter
//! to take the commit lock becomes the committer — it takes everything queued,
//! writes it with one `write` and, under `appendfsync always`, one `fdatasync`, then
//! publishes the new durable LSN; the others wait on that result, and one of them
//! leads the next round with whatever was appended meanwhile (tikv/raft-engine's
//! leader/follower write barrier). So one client's durable write crosses no thread,
//! and many clients still share one fsync. Under `everysec` the committer only
//! writes and a background thread fsyncs once a second without the commit lock (as
//! Redis's bio thread); under `no`, nothing is synced but on roll and shutdown. The
//! background thread also commits what nobody waits for and serves shutdown.
//!
//! **Preallocation.** The active segment is kept zero-filled a few MiB ahead of its
//! records (by the background thread, [`PREALLOC_CHUNK`] at a time, synced). A record
//! then overwrites blocks the file already has, so its `fdatasync` flushes data only: an
//! append that grows the file also has to commit the new size and block map through the
//! file system's journal. On this project's machine (ext4 on a virtual disk) that is
//! 56 µs per fdatasync instead of 86 µs — the bulk of a single client's durable XADD.
//! A record past the zero-filled space is appended as before (under the preallocation
//! lock, so it never races the zero fill). Recovery reads zeros from a record boundary
//! to the end of the newest segment as the end of the log (`recovery.rs`); a sealed
//! segment and a clean shutdown cut the zeros off, so files at rest end at their last
//! record as before.
//!
//! After a failed write or fsync the log is poisoned (the kernel may have dropped
//! the dirty pages, so retrying could silently lose data): appends are refused and
//! waiters get an error until restart.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use parking_lot::{Condvar, Mutex};
use tokio::sync::watch;

use super::lock;
use super::record::{
    begin_ops, encode_batch, encode_seal, finish_ops, LoggedCommand, HEADER_LEN, MAX_PAYLOAD,
    SEAL_LEN,
};
use super::recovery::{self, segment_path, SEGMENT_HEADER_LEN};
use super::StorageError;
use crate::histogram::HistogramSnapshot;

/// When appended records reach the disk (`appendfsync`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// fdatasync before any reply that depends on the records (group commit).
    Always,
    /// write before replying, fdatasync once a second.
    Everysec,
    /// write before replying, leave syncing to the OS.
    No,
}

impl FsyncPolicy {
    fn to_u8(self) -> u8 {
        match self {
            FsyncPolicy::Always => 0,
            FsyncPolicy::Everysec => 1,
            FsyncPolicy::No => 2,
        }
    }

    fn from_u8(v: u8) -> Self {
        match v {
            0 => FsyncPolicy::Always,
            1 => FsyncPolicy::Everysec,
            _ => FsyncPolicy::No,
        }
    }
}

/// Log settings.
#[derive(Debug, Clone, Copy)]
pub struct LogOptions {
    /// A segment is sealed and a new one started past this size (`segment-size`).
    pub segment_size: u64,
    /// `appendfsync`.
    pub policy: FsyncPolicy,
}

struct Queue {
    buf: BytesMut,
    /// Where in `buf` a new segment starts, and its number. Appends decide the
    /// segment boundaries (not the writer), so every record's position is known the
    /// moment it is appended: the index points entries at their payloads there.
    rolls: Vec<(usize, u64)>,
    /// The segment the next append goes to, and its length once everything queued
    /// is written.
    seg: u64,
    seg_len: u64,
    /// LSN of the last record in `buf` (or appended before).
    last_lsn: u64,
    shutdown: bool,
    /// The log was dropped without [`Log::close`]: the background thread stops without
    /// writing anything more (what was queued is lost, as in a crash).
    abandoned: bool,
}

/// How much zero-filled space the background thread adds to the active segment at a
/// time, and how little left makes a commit ask for more. At 100 MB/s of records a chunk
/// lasts 40 ms; filling it takes a few ms of the background thread.
const PREALLOC_CHUNK: u64 = 4 << 20;
const PREALLOC_LOW: u64 = 2 << 20;

/// The zero-filled space of the active segment. Its lock is held while zeros are written,
/// and by a commit that writes past them, so the two never overlap. Lock order: the
/// commit lock (`Inner::active`) before this one.
struct Prealloc {
    file: Arc<File>,
    path: PathBuf,
    number: u64,
    /// The segment's size on disk: its records end at or before it, zeros follow them.
    end: u64,
    /// No more preallocation in this segment (it reached the segment size, or a zero fill
    /// failed — a full disk: records then grow the file as they are written).
    done: bool,
}

struct Inner {
    dir: PathBuf,
    prealloc: Mutex<Prealloc>,
    /// `pack_pos(segment, end)` of [`Prealloc`], read by commits without its lock.
    prealloc_end: AtomicU64,
    /// A commit found the zero-filled space running low (the background thread fills).
    prealloc_wanted: AtomicBool,
    /// Copy of [`Prealloc::done`], so commits do not ask for what will not come.
    prealloc_done: AtomicBool,
    queue: Mutex<Queue>,
    /// The open segment; holding this lock is being the committer.
    active: Mutex<Active>,
    /// Wakes the background thread (shutdown, policy change).
    wake: Condvar,
    /// Written but not yet fsynced (the background thread syncs under `everysec`).
    unsynced: AtomicBool,
    /// Held by [`background_sync`] from taking `unsynced` to the end of its fsync, so a
    /// [`Log::sync`] that finds `unsynced` already taken waits for that fsync to end
    /// instead of returning while the data it covers may still be in the page cache.
    /// Taken before `active` (never while holding it).
    bg_sync: Mutex<()>,
    last_sync: Mutex<Instant>,
    durable: watch::Sender<u64>,
    appended: AtomicU64,
    poisoned: AtomicBool,
    poison_reason: Mutex<String>,
    policy: AtomicU8,
    segment_size: AtomicU64,
    /// Position ([`pack_pos`]) up to which records are written to their segment
    /// files (readable with `pread`); payloads past it exist only in memory.
    written_pos: Arc<AtomicU64>,
    /// Bytes written to the log since start (INFO).
    pub written_bytes: AtomicU64,
    /// fsyncs performed since start (INFO).
    pub fsyncs: AtomicU64,
    /// How long each fsync of the records took, in µs (the Prometheus endpoint).
    pub fsync_usec: crate::histogram::Histogram,
    /// Records (batches of commands) each commit round wrote: group commit's batch size.
    pub commit_records: crate::histogram::Histogram,
}

/// The append log of a data directory. Dropping it does not flush: call [`Log::close`].
pub struct Log {
    inner: Arc<Inner>,
    writer: Mutex<Option<JoinHandle<()>>>,
    _lock: lock::DirLock,
}

/// The format version in a segment file's header.
fn header_version(path: &Path) -> Option<u8> {
    use std::io::Read;
    let mut h = [0u8; SEGMENT_HEADER_LEN];
    File::open(path).ok()?.read_exact(&mut h).ok()?;
    recovery::segment_version(&h)
}

/// Where a record starts: its segment and the byte offset in that file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordPos {
    /// Segment number.
    pub segment: u64,
    /// Offset of the record's first byte in the segment file.
    pub offset: u64,
}

/// Bits of a packed position that hold the offset (segments are at most 1 GiB).
pub const POS_OFFSET_BITS: u32 = 40;

/// Packs (segment, offset) into one ordered `u64`: later in the log = larger.
pub fn pack_pos(segment: u64, offset: u64) -> u64 {
    (segment << POS_OFFSET_BITS) | (offset & ((1 << POS_OFFSET_BITS) - 1))
}

/// The inverse of [`pack_pos`].
pub fn unpack_pos(pos: u64) -> (u64, u64) {
    (pos >> POS_OFFSET_BITS, pos & ((1 << POS_OFFSET_BITS) - 1))
}

/// The open segment the committer appends to.
struct Active {
    number: u64,
    /// Shared so the background fsync runs without the commit lock.
    file: Arc<File>,
    path: PathBuf,
    len: u64,
}

fn create_segment(dir: &Path, number: u64) -> Result<Active, StorageError> {
    let path = segment_path(dir, number);
    let mut file = OpenOptions::new()
        .create_new(true)
        .write(true)
        .open(&path)
        .map_err(|e| StorageError::io(&path, e))?;
    file.write_all(&recovery::segment_header(number))
        .map_err(|e| StorageError::io(&path, e))?;
    file.sync_all().map_err(|e| StorageError::io(&path, e))?;
    sync_dir(&recovery::log_dir(dir))?;
    Ok(Active {
        number,
        file: Arc::new(file),
        path,
        len: SEGMENT_HEADER_LEN as u64,
    })
}

fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StorageError::io(dir, e))
}

impl Log {
    /// Locks `dir`, recovers the log (truncating a torn tail with a warning,
    /// refusing corruption), and opens it for appending. Returns the batches to replay.
    pub fn open(
        dir: &Path,
        opts: LogOptions,
    ) -> Result<(Log, Vec<Vec<LoggedCommand>>), StorageError> {
        let mut batches = Vec::new();
        let log = Self::open_with(dir, opts, &mut |r, _| {
            if let recovery::Replay::Batch { commands, .. } = r {
                batches.push(commands);
            }
            Ok(())
        })?;
        Ok((log, batches))
    }

    /// As [`Log::open`], but hands each recovered batch to `replay` as it is read
    /// (with the bytes it occupied), so recovery needs memory for one segment, not
    /// the whole log.
    pub fn open_with(
        dir: &Path,
        opts: LogOptions,
        replay: &mut recovery::BatchSink<'_>,
    ) -> Result<Log, StorageError> {
        super::create_dir_all_durable(dir).map_err(|e| StorageError::io(dir, e))?;
        let lock = lock::lock_dir(dir, lock::LockFile::Create)?;
        Self::open_locked(lock, dir, opts, replay)
    }

    /// As [`Log::open_with`], with the directory's lock already taken (the server takes
    /// it before anything else touches the directory, its pidfile included).
    pub fn open_locked(
        lock: lock::DirLock,
        dir: &Path,
        opts: LogOptions,
        replay: &mut recovery::BatchSink<'_>,
    ) -> Result<Log, StorageError> {
        let ld = recovery::log_dir(dir);
        super::create_dir_all_durable(&ld).map_err(|e| StorageError::io(&ld, e))?;
        // Also when `log/` already existed: a run that crashed (the process, not the power)
        // right after creating it left its name in the page cache only, and every segment in
        // it would go with it at a later power cut.
        super::sync_dir(dir).map_err(|e| StorageError::io(dir, e))?;
        let rec = recovery::read_log_with(dir, replay)?;
        recovery::remove_obsolete(dir, &rec)?;
        if let Some(d) = &rec.damage {
            if !d.torn_tail {
                return Err(StorageError::Corrupted {
                    file: d.file.clone(),
                    offset: d.offset,
                    reason: d.reason.clone(),
                    dir: dir.to_path_buf(),
                });
            }
            tracing::warn!(
                "Torn record at the end of {} (offset {}, {}): truncating {} bytes that were never acknowledged",
                d.file.display(),
                d.offset,
                d.reason,
                d.lost_bytes
            );
            recovery::apply_truncation(d)?;
        }
        // After a truncation the damaged segment is the newest, cut to its valid records
        // (or to a fresh header when the cut was inside its header).
        // A newest segment of an older format is not appended to: its header names the
        // format of every record in it. The log goes on in a new segment (after the roll
        // below, once the log is running).
        let older_tail = rec.segments.last().is_some_and(|last| {
            last.valid_len > SEGMENT_HEADER_LEN as u64
                && header_version(&last.path).is_some_and(|v| v < 3)
        });
        let active = match rec.segments.last() {
            Some(last) => {
                let file = OpenOptions::new()
                    .write(true)
                    .open(&last.path)
                    .map_err(|e| StorageError::io(&last.path, e))?;
                // Records end where recovery found their end; what follows (if anything)
                // is zeros preallocated before a crash, written over from here on. A segment
                // whose header was torn has just been given a fresh one: records go after it.
                Active {
                    number: last.number,
                    file: Arc::new(file),
                    path: last.path.clone(),
                    len: last.valid_len.max(SEGMENT_HEADER_LEN as u64),
                }
            }
            None => create_segment(dir, rec.checkpoint.as_ref().map_or(1, |c| c.1.max(1)))?,
        };
        let on_disk = active
            .file
            .metadata()
            .map_err(|e| StorageError::io(&active.path, e))?
            .len()
            .max(active.len);
        let prealloc = Prealloc {
            file: active.file.clone(),
            path: active.path.clone(),
            number: active.number,
            end: on_disk,
            done: false,
        };
        let (durable, _) = watch::channel(0u64);
        let start_pos = pack_pos(active.number, active.len);
        let inner = Arc::new(Inner {
            dir: dir.to_path_buf(),
            prealloc_end: AtomicU64::new(pack_pos(prealloc.number, prealloc.end)),
            prealloc: Mutex::new(prealloc),
            prealloc_wanted: AtomicBool::new(false),
            prealloc_done: AtomicBool::new(false),
            queue: Mutex::new(Queue {
                buf: BytesMut::with_capacity(64 * 1024),
                rolls: Vec::new(),
                seg: active.number,
                seg_len: active.len,
                last_lsn: 0,
                shutdown: false,
                abandoned: false,
            }),
            active: Mutex::new(active),
            wake: Condvar::new(),
            unsynced: AtomicBool::new(false),
            bg_sync: Mutex::new(()),
            last_sync: Mutex::new(Instant::now()),
            durable,
            appended: AtomicU64::new(0),
            poisoned: AtomicBool::new(false),
            poison_reason: Mutex::new(String::new()),
            policy: AtomicU8::new(opts.policy.to_u8()),
            segment_size: AtomicU64::new(opts.segment_size.max(1024)),
            written_pos: Arc::new(AtomicU64::new(start_pos)),
            written_bytes: AtomicU64::new(0),
            fsyncs: AtomicU64::new(0),
            fsync_usec: Default::default(),
            commit_records: Default::default(),
        });
        let w = inner.clone();
        let writer = std::thread::Builder::new()
            .name("rill-log-sync".into())
            .spawn(move || background_loop(w))
            .map_err(|e| StorageError::io(dir, e))?;
        let log = Log {
            inner,
            writer: Mutex::new(Some(writer)),
            _lock: lock,
        };
        if older_tail {
            log.roll()?;
        }
        Ok(log)
    }

    /// Queues a batch record; returns its LSN. Refused once the log is poisoned.
    pub fn append(&self, commands: &[LoggedCommand]) -> Result<u64, StorageError> {
        self.append_at(commands).map(|(lsn, _)| lsn)
    }

    /// Queues a batch record; returns its LSN and where it will be in the log.
    pub fn append_at(&self, commands: &[LoggedCommand]) -> Result<(u64, RecordPos), StorageError> {
        if self.inner.poisoned.load(Ordering::Acquire) {
            return Err(self.poison_error());
        }
        let mut q = self.inner.queue.lock();
        let start = q.buf.len();
        encode_batch(commands, &mut q.buf);
        self.queued_with(q, start, |_, _| {})
    }

    /// Accounts for the record just encoded at `start` of the queue: checks its size,
    /// places it in a segment, gives it an LSN.
    /// `finish` completes the record's bytes once its position is known.
    fn queued_with(
        &self,
        mut q: parking_lot::MutexGuard<'_, Queue>,
        start: usize,
        finish: impl FnOnce(&mut [u8], RecordPos),
    ) -> Result<(u64, RecordPos), StorageError> {
        match self.place(&mut q, start, finish) {
            Ok(placed) => Ok(placed),
            Err(why) => {
                drop(q);
                poison(&self.inner, why);
                Err(self.poison_error())
            }
        }
    }

    /// [`Log::queued_with`] with the queue lock held: the reason to poison the log when the
    /// record is too large.
    fn place(
        &self,
        q: &mut Queue,
        start: usize,
        finish: impl FnOnce(&mut [u8], RecordPos),
    ) -> Result<(u64, RecordPos), String> {
        let len = (q.buf.len() - start) as u64;
        if len - HEADER_LEN as u64 > MAX_PAYLOAD as u64 {
            // The command layer bounds records before it runs anything, so this is a
            // bug; the state already shows what cannot be logged, so stop accepting
            // writes rather than acknowledge one that recovery could not read.
            q.buf.truncate(start);
            return Err(format!(
                "a record of {len} bytes exceeds the log's limit of {MAX_PAYLOAD}"
            ));
        }
        // A record never straddles segments: one that would pass the size limit
        // opens the next segment (unless the current one is still empty).
        if q.seg_len + len > self.inner.segment_size.load(Ordering::Acquire)
            && q.seg_len > SEGMENT_HEADER_LEN as u64
        {
            q.seg += 1;
            let seg = q.seg;
            q.rolls.push((start, seg));
            q.seg_len = SEGMENT_HEADER_LEN as u64;
        }
        let pos = RecordPos {
            segment: q.seg,
            offset: q.seg_len,
        };
        finish(&mut q.buf[start..], pos);
        q.seg_len += len;
        q.last_lsn += 1;
        let lsn = q.last_lsn;
        self.inner.appended.store(lsn, Ordering::Release);
        // No wake-up: whoever waits for this record commits it (the background
        // thread picks up what nobody waits for).
        Ok((lsn, pos))
    }

    /// Queues Raft records (`raft_record.rs`) back to back, under one hold of the queue
    /// lock, so they go to disk in one group commit and nothing lands between them: a
    /// Ready's entries and the hard state it produced are made durable together (by
    /// [`Log::wait_durable`] on the returned LSN, or [`Log::sync`]). Returns the LSN of the
    /// last record and where each one will be. Refused once the log is poisoned.
    pub fn append_raft(
        &self,
        records: &[super::raft_record::RaftRecord],
    ) -> Result<(u64, Vec<RecordPos>), StorageError> {
        if self.inner.poisoned.load(Ordering::Acquire) {
            return Err(self.poison_error());
        }
        let mut q = self.inner.queue.lock();
        let mut out = Vec::with_capacity(records.len());
        let mut lsn = q.last_lsn;
        for rec in records {
            let start = q.buf.len();
            super::raft_record::encode(rec, &mut q.buf);
            match self.place(&mut q, start, |_, _| {}) {
                Ok((l, pos)) => {
                    lsn = l;
                    out.push(pos);
                }
                Err(why) => {
                    drop(q);
                    poison(&self.inner, why);
                    return Err(self.poison_error());
                }
            }
        }
        Ok((lsn, out))
    }

    /// [`Log::append_raft`] for one record, without the lists (a leader queues one entry
    /// per critical section).
    pub fn append_raft_one(
        &self,
        record: &super::raft_record::RaftRecord,
    ) -> Result<(u64, RecordPos), StorageError> {
        if self.inner.poisoned.load(Ordering::Acquire) {
            return Err(self.poison_error());
        }
        let mut q = self.inner.queue.lock();
        let start = q.buf.len();
        super::raft_record::encode(record, &mut q.buf);
        self.queued_with(q, start, |_, _| {})
    }

    /// Cuts the log at `at` (the first byte of a record, as [`Log::append_raft`] returned
    /// it): everything from there on is removed from the disk, and the next record goes
    /// to `at`. This is Raft's truncation of a conflicting suffix; records of any kind
    /// after `at` go with it (a node-local record there was written after entries that
    /// were never committed, and the layers above rebuild from the log after a
    /// truncation, design §3.7).
    ///
    /// Everything queued is written first. Then, newest segment first, each later segment
    /// is emptied to its header, the one before it is cut (to `at`, or to its header),
    /// and the emptied segment is deleted, each step synced; so a crash anywhere leaves a
    /// directory recovery opens: at worst an unsealed segment followed by an empty one,
    /// which is the torn roll recovery already repairs. The caller forgets cached read
    /// handles of the deleted segments (returned).
    pub fn truncate_at(&self, at: RecordPos) -> Result<Vec<u64>, StorageError> {
        if self.is_poisoned() {
            return Err(self.poison_error());
        }
        let inner = &*self.inner;
        let mut active = inner.active.lock();
        let mut q = loop {
            commit_round(inner, &mut active);
            let q = inner.queue.lock();
            if (q.buf.is_empty() && q.rolls.is_empty()) || self.is_poisoned() {
                break q;
            }
        };
        if self.is_poisoned() {
            return Err(self.poison_error());
        }
        if at.segment > active.number
            || (at.segment == active.number && at.offset > active.len)
            || at.offset < SEGMENT_HEADER_LEN as u64
        {
            return Err(StorageError::Malformed(format!(
                "truncation at segment {} offset {} is outside the log (it ends at segment {} offset {})",
                at.segment, at.offset, active.number, active.len
            )));
        }
        // Nothing is cut unless the whole cut can be made: the segment of `at` must still be
        // there (a checkpoint may have deleted it) and hold `at`.
        let target = segment_path(&inner.dir, at.segment);
        match std::fs::metadata(&target) {
            Ok(m) if m.len() >= at.offset => {}
            Ok(m) => {
                return Err(StorageError::Malformed(format!(
                    "truncation at offset {} of {}, which is {} bytes long",
                    at.offset,
                    target.display(),
                    m.len()
                )))
            }
            Err(e) => return Err(StorageError::io(&target, e)),
        }
        let mut p = inner.prealloc.lock();
        let mut deleted = Vec::new();
        let result = (|| -> Result<(), StorageError> {
            let cut = |number: u64, len: u64| -> Result<File, StorageError> {
                let path = segment_path(&inner.dir, number);
                #[cfg(feature = "failpoints")]
                fail::fail_point!("log::truncate", |_| Err(StorageError::io(
                    &path,
                    std::io::Error::other("injected truncation failure")
                )));
                let f = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(|e| StorageError::io(&path, e))?;
                f.set_len(len)
                    .and_then(|()| f.sync_all())
                    .map_err(|e| StorageError::io(&path, e))?;
                Ok(f)
            };
            let header = SEGMENT_HEADER_LEN as u64;
            for k in (at.segment + 1..=active.number).rev() {
                cut(k, header)?;
                cut(
                    k - 1,
                    if k - 1 == at.segment {
                        at.offset
                    } else {
                        header
                    },
                )?;
                let path = segment_path(&inner.dir, k);
                std::fs::remove_file(&path).map_err(|e| StorageError::io(&path, e))?;
                sync_dir(&recovery::log_dir(&inner.dir))?;
                deleted.push(k);
            }
            let file = cut(at.segment, at.offset)?;
            *active = Active {
                number: at.segment,
                file: Arc::new(file),
                path: segment_path(&inner.dir, at.segment),
                len: at.offset,
            };
            Ok(())
        })();
        if let Err(e) = result {
            drop(p);
            drop(q);
            // The files are somewhere between the old and the new end: nothing more may
            // be written until a restart reads what is there.
            poison(inner, format!("truncation failed: {e}"));
            return Err(e);
        }
        *p = Prealloc {
            file: active.file.clone(),
            path: active.path.clone(),
            number: active.number,
            end: active.len,
            done: false,
        };
        inner
            .prealloc_end
            .store(pack_pos(active.number, active.len), Ordering::Release);
        inner.prealloc_done.store(false, Ordering::Release);
        inner.unsynced.store(false, Ordering::Release);
        inner
            .written_pos
            .store(pack_pos(active.number, active.len), Ordering::Release);
        q.seg = active.number;
        q.seg_len = active.len;
        Ok(deleted)
    }

    /// Queues a record of typed ops that `fill` encodes straight into the queue; returns
    /// its LSN, where the record will be in the log (its ops start [`OPS_AT`] bytes in), and
    /// what `fill` returned. Refused once the log is poisoned.
    pub fn append_ops<R>(
        &self,
        fill: impl FnOnce(&mut BytesMut) -> R,
    ) -> Result<(u64, RecordPos, R), StorageError> {
        if self.inner.poisoned.load(Ordering::Acquire) {
            return Err(self.poison_error());
        }
        let mut q = self.inner.queue.lock();
        let start = begin_ops(&mut q.buf);
        let r = fill(&mut q.buf);
        let (lsn, pos) = self.queued_with(q, start, |rec, pos| {
            finish_ops(rec, pack_pos(pos.segment, pos.offset));
        })?;
        Ok((lsn, pos, r))
    }

    /// Position up to which records are in their segment files (see [`pack_pos`]).
    pub fn written_pos(&self) -> u64 {
        self.inner.written_pos.load(Ordering::Acquire)
    }

    /// A shared handle on [`Log::written_pos`], for readers that outlive a borrow.
    pub fn written_handle(&self) -> Arc<AtomicU64> {
        self.inner.written_pos.clone()
    }

    /// LSN of the last appended record: a reply that observed the current state
    /// waits for this one.
    pub fn appended_lsn(&self) -> u64 {
        self.inner.appended.load(Ordering::Acquire)
    }

    /// LSN up to which records are durable under the current policy.
    pub fn durable_lsn(&self) -> u64 {
        *self.inner.durable.borrow()
    }

    /// Commits everything appended so far on the calling thread (after a commit under
    /// way, if any, ends) and returns the durable LSN. For a caller that leads commits
    /// for others and hands them their results itself, instead of waking each waiter
    /// (the server's reply hand-off); waiters in [`Log::wait_durable`] are woken as
    /// after any commit.
    pub fn commit(&self) -> Result<u64, StorageError> {
        let inner = &*self.inner;
        {
            let mut active = inner.active.lock();
            commit_round(inner, &mut active);
        }
        if self.is_poisoned() {
            return Err(self.poison_error());
        }
        Ok(self.durable_lsn())
    }

    /// Waits until record `lsn` is durable under the current policy, committing it
    /// (and everything queued with it) itself when no commit is under way.
    ///
    /// The commit runs inline on the calling task's thread: a blocking `write` and,
    /// under `always`, `fdatasync`, as Redis does them on its one thread; meanwhile
    /// other tasks append and wait, and the next of them to find the lock free
    /// commits all of that together.
    pub async fn wait_durable(&self, lsn: u64) -> Result<(), StorageError> {
        let inner = &*self.inner;
        let done = |d: u64| -> Option<Result<(), StorageError>> {
            if lsn == 0 || d >= lsn {
                Some(Ok(()))
            } else if inner.poisoned.load(Ordering::Acquire) {
                Some(Err(self.poison_error()))
            } else {
                None
            }
        };
        if let Some(r) = done(*inner.durable.borrow()) {
            return r;
        }
        // Subscribed before each attempt at the lock, so a commit that ends after a
        // failed attempt always wakes this waiter.
        let mut rx = inner.durable.subscribe();
        let mut yielded = false;
        loop {
            if let Some(r) = done(*rx.borrow_and_update()) {
                return r;
            }
            if !yielded {
                yielded = true;
                tokio::task::yield_now().await;
                continue;
            }
            if let Some(mut active) = inner.active.try_lock() {
                commit_round(inner, &mut active);
                continue;
            }
            if rx.changed().await.is_err() {
                return Err(self.poison_error());
            }
        }
    }

    /// True after a failed write or fsync.
    pub fn is_poisoned(&self) -> bool {
        self.inner.poisoned.load(Ordering::Acquire)
    }

    /// The poison error with its cause.
    pub fn poison_error(&self) -> StorageError {
        StorageError::Poisoned(self.inner.poison_reason.lock().clone())
    }

    /// The fsync policy in force.
    pub fn policy(&self) -> FsyncPolicy {
        FsyncPolicy::from_u8(self.inner.policy.load(Ordering::Acquire))
    }

    /// CONFIG SET appendfsync.
    pub fn set_policy(&self, p: FsyncPolicy) {
        self.inner.policy.store(p.to_u8(), Ordering::Release);
        self.inner.wake.notify_one();
    }

    /// CONFIG SET segment-size.
    pub fn set_segment_size(&self, bytes: u64) {
        self.inner
            .segment_size
            .store(bytes.max(1024), Ordering::Release);
    }

    /// fsync latency (µs) and records per commit round, since start.
    pub fn histograms(&self) -> (HistogramSnapshot, HistogramSnapshot) {
        (
            self.inner.fsync_usec.snapshot(),
            self.inner.commit_records.snapshot(),
        )
    }

    /// (bytes written, fsyncs) since start.
    pub fn counters(&self) -> (u64, u64) {
        (
            self.inner.written_bytes.load(Ordering::Relaxed),
            self.inner.fsyncs.load(Ordering::Relaxed),
        )
    }

    /// Makes everything appended so far durable in the current segment and starts a
    /// new one; returns the new segment's number. Called with the keyspace locked, so
    /// the new segment holds exactly the records that follow a checkpoint taken now.
    pub fn roll(&self) -> Result<u64, StorageError> {
        if self.is_poisoned() {
            return Err(self.poison_error());
        }
        let seg = {
            let mut q = self.inner.queue.lock();
            q.seg += 1;
            let (at, seg) = (q.buf.len(), q.seg);
            q.rolls.push((at, seg));
            q.seg_len = SEGMENT_HEADER_LEN as u64;
            seg
        };
        // Whoever holds the lock now may already have taken the marker; either way,
        // once this round is done the old segment was synced and `seg` exists.
        let mut active = self.inner.active.lock();
        commit_round(&self.inner, &mut active);
        if self.is_poisoned() || active.number < seg {
            return Err(self.poison_error());
        }
        Ok(seg)
    }

    /// Writes and fsyncs everything appended so far; when it returns, all of it is on
    /// disk (a background fsync that had already taken the work is waited for). A
    /// checkpoint calls it before it takes the keyspace lock, so the roll under the lock
    /// has little left to sync.
    pub fn sync(&self) -> Result<(), StorageError> {
        commit_round(&self.inner, &mut self.inner.active.lock());
        background_sync(&self.inner);
        if self.is_poisoned() {
            return Err(self.poison_error());
        }
        Ok(())
    }

    /// Writes everything appended so far and fsyncs the active segment under the commit
    /// lock before it returns, whatever the policy: one fsync of its own, never one shared
    /// with another thread. For an acknowledgement that must mean "on disk" (a key moved
    /// between cluster nodes). ([`Log::sync`] gives the same guarantee, waiting for a
    /// background fsync under way instead of issuing one.)
    pub fn sync_now(&self) -> Result<(), StorageError> {
        let mut active = self.inner.active.lock();
        commit_round(&self.inner, &mut active);
        if self.is_poisoned() {
            return Err(self.poison_error());
        }
        let started = Instant::now();
        if let Err(e) = sync_file(&active.file) {
            poison(
                &self.inner,
                format!("fsync of {} failed: {}", active.path.display(), e),
            );
            return Err(self.poison_error());
        }
        count_fsync(&self.inner, started);
        Ok(())
    }

    /// Writes and syncs everything queued, then stops the background thread (shutdown).
    pub fn close(&self) {
        self.inner.queue.lock().shutdown = true;
        self.inner.wake.notify_one();
        if let Some(h) = self.writer.lock().take() {
            let _ = h.join();
        }
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }
}

impl Drop for Log {
    /// A log dropped without [`Log::close`] writes nothing more, and its background thread
    /// is gone before the directory lock is released (the fields drop after this): another
    /// instance opened on the directory afterwards is its only writer. Before, the thread
    /// went on zero-filling ahead of the old end and committing what was queued, over the
    /// records the next instance wrote (found by `tests/raft_group.rs`' crashes, which drop
    /// a replica's log and reopen it in the same process).
    fn drop(&mut self) {
        if let Some(h) = self.writer.lock().take() {
            self.inner.queue.lock().abandoned = true;
            self.inner.wake.notify_one();
            let _ = h.join();
        }
    }
}

fn poison(inner: &Inner, what: String) {
    tracing::error!("Log poisoned: {}. Writes are refused until restart.", what);
    *inner.poison_reason.lock() = what;
    inner.poisoned.store(true, Ordering::Release);
    // Wake every waiter so it sees the poison.
    inner.durable.send_modify(|_| {});
}

/// One commit: writes everything queued, segment by segment at the boundaries the
/// appends chose (sealing each finished segment once the next exists), fsyncs under
/// `always`, and publishes the durable LSN. Runs with the commit lock held.
fn commit_round(inner: &Inner, active: &mut Active) {
    let (buf, rolls, lsn) = {
        let mut q = inner.queue.lock();
        (q.buf.split(), std::mem::take(&mut q.rolls), q.last_lsn)
    };
    if inner.poisoned.load(Ordering::Acquire) || (buf.is_empty() && rolls.is_empty()) {
        return;
    }
    let mut from = 0usize;
    for &(at, number) in rolls.iter().chain(std::iter::once(&(buf.len(), u64::MAX))) {
        if at > from {
            if let Err(e) = write_records(inner, active, &buf[from..at]) {
                poison(
                    inner,
                    format!("write to {} failed: {}", active.path.display(), e),
                );
                return;
            }
            active.len += (at - from) as u64;
            inner
                .written_bytes
                .fetch_add((at - from) as u64, Ordering::Relaxed);
            inner
                .written_pos
                .store(pack_pos(active.number, active.len), Ordering::Release);
            inner.unsynced.store(true, Ordering::Release);
            from = at;
        }
        if number == u64::MAX {
            break;
        }
        // Seal the segment (durable before it is left) and start the next.
        if let Err(e) = sync_file(&active.file) {
            poison(
                inner,
                format!("fsync of {} failed: {}", active.path.display(), e),
            );
            return;
        }
        // The seal goes in only once the next segment exists durably: a newest
        // segment that ends in a seal means the one it names was lost.
        let next = create_segment(&inner.dir, number).and_then(|next| {
            let mut seal = BytesMut::with_capacity(SEAL_LEN);
            encode_seal(number, &mut seal);
            // Under the preallocation lock: no zero fill runs on the old segment while it
            // is sealed and cut to its seal's end, and the next fill goes to the new one.
            let mut p = inner.prealloc.lock();
            let end = active.len + SEAL_LEN as u64;
            write_buf(&active.file, &seal, active.len)
                .and_then(|()| active.file.set_len(end))
                .and_then(|()| active.file.sync_all())
                .map_err(|e| StorageError::io(&active.path, e))?;
            *p = Prealloc {
                file: next.file.clone(),
                path: next.path.clone(),
                number: next.number,
                end: next.len,
                done: false,
            };
            inner
                .prealloc_end
                .store(pack_pos(next.number, next.len), Ordering::Release);
            inner.prealloc_done.store(false, Ordering::Release);
            Ok(next)
        });
        match next {
            Ok(next) => {
                *active = next;
                inner.unsynced.store(false, Ordering::Release);
                inner
                    .written_pos
                    .store(pack_pos(active.number, active.len), Ordering::Release);
            }
            Err(e) => {
                poison(inner, e.to_string());
                return;
            }
        }
    }
    let policy = FsyncPolicy::from_u8(inner.policy.load(Ordering::Acquire));
    // What this round wrote is fsynced here whatever `unsynced` says: a background
    // fsync that took the flag (under `everysec`, just before a switch to `always`) may
    // still be running, and the waiters told `durable` below must not depend on it.
    let wrote = !buf.is_empty();
    if policy == FsyncPolicy::Always && (inner.unsynced.swap(false, Ordering::AcqRel) | wrote) {
        let started = Instant::now();
        if let Err(e) = sync_file(&active.file) {
            poison(
                inner,
                format!("fsync of {} failed: {}", active.path.display(), e),
            );
            return;
        }
        count_fsync(inner, started);
        *inner.last_sync.lock() = Instant::now();
    }
    if !buf.is_empty() {
        let before = inner.durable.send_replace(lsn);
        inner.commit_records.record(lsn.saturating_sub(before));
    }
}

/// Counts an fsync that began at `started` (INFO's count and the latency histogram).
fn count_fsync(inner: &Inner, started: Instant) {
    inner.fsyncs.fetch_add(1, Ordering::Relaxed);
    inner
        .fsync_usec
        .record(started.elapsed().as_micros().try_into().unwrap_or(u64::MAX));
}

/// Fsyncs the active segment if anything is written but not synced, without the
/// commit lock (appends and commits go on meanwhile).
fn background_sync(inner: &Inner) {
    let _in_flight = inner.bg_sync.lock();
    if !inner.unsynced.swap(false, Ordering::AcqRel) {
        return;
    }
    let (file, path) = {
        let a = inner.active.lock();
        (a.file.clone(), a.path.clone())
    };
    let started = Instant::now();
    if let Err(e) = sync_file(&file) {
        poison(inner, format!("fsync of {} failed: {}", path.display(), e));
        return;
    }
    count_fsync(inner, started);
    *inner.last_sync.lock() = Instant::now();
}

/// The background thread: the once-a-second fsync under `everysec`, commits of what
/// nobody waits for, and the final write and fsync at shutdown.
fn background_loop(inner: Arc<Inner>) {
    loop {
        let (shutdown, queued) = {
            let mut q = inner.queue.lock();
            if !q.shutdown && !q.abandoned && !inner.prealloc_wanted.load(Ordering::Acquire) {
                inner.wake.wait_for(&mut q, Duration::from_millis(250));
            }
            if q.abandoned {
                return;
            }
            (q.shutdown, !q.buf.is_empty() || !q.rolls.is_empty())
        };
        if !shutdown && inner.prealloc_wanted.swap(false, Ordering::AcqRel) {
            preallocate(&inner);
        }
        if queued || shutdown {
            commit_round(&inner, &mut inner.active.lock());
        }
        let policy = FsyncPolicy::from_u8(inner.policy.load(Ordering::Acquire));
        let due = policy == FsyncPolicy::Everysec
            && inner.last_sync.lock().elapsed() >= Duration::from_secs(1);
        if (shutdown || due) && !inner.poisoned.load(Ordering::Acquire) {
            background_sync(&inner);
        }
        if shutdown {
            trim_preallocated(&inner);
            return;
        }
    }
}

/// Writes `bytes` (whole records) at the end of the active segment's records. Inside the
/// zero-filled space no lock is needed (a fill only ever writes past it); past it, the
/// preallocation lock waits out a fill in progress and the space's end moves past the
/// records. Asks the background thread for more space when little is left.
fn write_records(inner: &Inner, active: &Active, bytes: &[u8]) -> std::io::Result<()> {
    let end = active.len + bytes.len() as u64;
    let ready = inner.prealloc_end.load(Ordering::Acquire);
    if pack_pos(active.number, end) <= ready {
        write_buf(&active.file, bytes, active.len)?;
    } else {
        let mut p = inner.prealloc.lock();
        write_buf(&active.file, bytes, active.len)?;
        if p.number == active.number && end > p.end {
            p.end = end;
            inner
                .prealloc_end
                .store(pack_pos(p.number, end), Ordering::Release);
        }
    }
    let (number, space_end) = unpack_pos(inner.prealloc_end.load(Ordering::Acquire));
    if number == active.number
        && space_end.saturating_sub(end) < PREALLOC_LOW
        && !inner.prealloc_done.load(Ordering::Acquire)
        && !inner.prealloc_wanted.swap(true, Ordering::AcqRel)
    {
        inner.wake.notify_one();
    }
    Ok(())
}

/// Zeros written past the active segment's space, [`PREALLOC_CHUNK`] at a time up to the
/// segment size, and synced, so records written there later sync without a journal
/// commit. A failed write stops preallocation in this segment (records still append); a
/// failed fsync poisons the log, as it may have dropped records' pages too.
fn preallocate(inner: &Inner) {
    static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];
    if inner.poisoned.load(Ordering::Acquire) {
        return;
    }
    let mut p = inner.prealloc.lock();
    let limit = inner.segment_size.load(Ordering::Acquire);
    let target = (p.end + PREALLOC_CHUNK).min(limit);
    if p.done || target <= p.end {
        p.done = true;
        inner.prealloc_done.store(true, Ordering::Release);
        return;
    }
    let mut at = p.end;
    while at < target {
        let n = (target - at).min(ZEROS.len() as u64) as usize;
        if let Err(e) = write_zeros(&p.file, &ZEROS[..n], at) {
            tracing::warn!(
                "Preallocating {} failed ({}): records now grow the file as they are written",
                p.path.display(),
                e
            );
            p.done = true;
            inner.prealloc_done.store(true, Ordering::Release);
            return;
        }
        at += n as u64;
    }
    if let Err(e) = sync_zeros(&p.file) {
        let what = format!("fsync of {} failed: {}", p.path.display(), e);
        drop(p);
        poison(inner, what);
        return;
    }
    p.end = target;
    inner
        .prealloc_end
        .store(pack_pos(p.number, target), Ordering::Release);
}

/// At shutdown, cuts the zeros off the active segment, so a cleanly closed log ends at its
/// last record.
fn trim_preallocated(inner: &Inner) {
    if inner.poisoned.load(Ordering::Acquire) {
        return;
    }
    let active = inner.active.lock();
    let mut p = inner.prealloc.lock();
    if p.number != active.number || p.end <= active.len {
        return;
    }
    let cut = active
        .file
        .set_len(active.len)
        .and_then(|()| active.file.sync_all());
    match cut {
        Ok(()) => {
            p.end = active.len;
            inner
                .prealloc_end
                .store(pack_pos(p.number, p.end), Ordering::Release);
        }
        // Harmless: recovery reads the zeros as the end of the log.
        Err(e) => tracing::warn!(
            "Cutting the preallocated end of {} failed: {}",
            active.path.display(),
            e
        ),
    }
}

fn write_buf(file: &File, buf: &[u8], offset: u64) -> std::io::Result<()> {
    #[cfg(feature = "failpoints")]
    fail::fail_point!("log::write", |_| Err(std::io::Error::other(
        "injected write failure"
    )));
    file.write_all_at(buf, offset)
}

/// The zero fill's write and fsync, with failpoints of their own (`log::prealloc_write`,
/// `log::prealloc_fsync`) so fault tests that count the records' writes and fsyncs are not
/// thrown off by the background thread.
fn write_zeros(file: &File, buf: &[u8], offset: u64) -> std::io::Result<()> {
    #[cfg(feature = "failpoints")]
    fail::fail_point!("log::prealloc_write", |_| Err(std::io::Error::other(
        "injected write failure"
    )));
    file.write_all_at(buf, offset)
}

fn sync_zeros(file: &File) -> std::io::Result<()> {
    #[cfg(feature = "failpoints")]
    fail::fail_point!("log::prealloc_fsync", |_| Err(std::io::Error::other(
        "injected fsync failure"
    )));
    file.sync_data()
}

fn sync_file(file: &File) -> std::io::Result<()> {
    #[cfg(feature = "failpoints")]
    fail::fail_point!("log::fsync", |_| Err(std::io::Error::other(
        "injected fsync failure"
    )));
    file.sync_data()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn cmd(i: usize) -> Vec<LoggedCommand> {
        vec![LoggedCommand {
            db: 0,
            argv: vec![
                Bytes::from("XADD"),
                Bytes::from("k"),
                Bytes::from(format!("{i}-1")),
            ],
        }]
    }

    fn opts() -> LogOptions {
        LogOptions {
            segment_size: 4096,
            policy: FsyncPolicy::Always,
        }
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("rill-log-{}-{}", name, std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[tokio::test]
    async fn append_recover_and_roll_segments() {
        let dir = tmp("roll");
        {
            let (log, batches) = Log::open(&dir, opts()).unwrap();
            assert!(batches.is_empty());
            for i in 0..500 {
                let lsn = log.append(&cmd(i)).unwrap();
                if i % 50 == 49 {
                    log.wait_durable(lsn).await.unwrap();
                }
            }
            log.close();
        }
        assert!(recovery::list_segments(&dir).unwrap().len() > 1);
        let (log, batches) = Log::open(&dir, opts()).unwrap();
        assert_eq!(batches.len(), 500);
        assert_eq!(batches[499], cmd(499));
        log.close();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn truncate_at_cuts_the_log_and_refuses_positions_outside_it() {
        let dir = tmp("cut");
        let (log, _) = Log::open(&dir, opts()).unwrap();
        let lsn = log.append(&cmd(1)).unwrap();
        log.wait_durable(lsn).await.unwrap();
        for outside in [
            RecordPos {
                segment: 9,
                offset: SEGMENT_HEADER_LEN as u64,
            },
            RecordPos {
                segment: 1,
                offset: 3,
            },
            RecordPos {
                segment: 1,
                offset: 1 << 30,
            },
        ] {
            assert!(log.truncate_at(outside).is_err(), "{outside:?}");
        }
        assert!(!log.is_poisoned());
        let (_, pos) = log.append_at(&cmd(2)).unwrap();
        let lsn = log.append(&cmd(3)).unwrap();
        log.wait_durable(lsn).await.unwrap();
        assert_eq!(log.truncate_at(pos).unwrap(), Vec::<u64>::new());
        let lsn = log.append(&cmd(4)).unwrap();
        log.wait_durable(lsn).await.unwrap();
        log.close();
        drop(log);
        let (log, batches) = Log::open(&dir, opts()).unwrap();
        assert_eq!(batches, vec![cmd(1), cmd(4)]);
        log.close();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn second_open_is_refused() {
        let dir = tmp("lock");
        let (log, _) = Log::open(&dir, opts()).unwrap();
        assert!(matches!(
            Log::open(&dir, opts()),
            Err(StorageError::Locked { .. })
        ));
        log.close();
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Cuts the newest segment at every byte offset: recovery keeps exactly the
    /// complete records before the cut and never reports corruption.
    #[tokio::test]
    async fn torn_tail_at_every_offset() {
        let dir = tmp("torn");
        let (log, _) = Log::open(
            &dir,
            LogOptions {
                segment_size: 1 << 20,
                policy: FsyncPolicy::Always,
            },
        )
        .unwrap();
        let mut ends = vec![SEGMENT_HEADER_LEN as u64];
        for i in 0..3 {
            let lsn = log.append(&cmd(i)).unwrap();
            log.wait_durable(lsn).await.unwrap();
            // Where the records end (the file itself runs on into preallocated zeros).
            ends.push(unpack_pos(log.written_pos()).1);
        }
        log.close();
        drop(log);
        let full = std::fs::read(segment_path(&dir, 1)).unwrap();
        for cut in SEGMENT_HEADER_LEN..full.len() {
            std::fs::write(segment_path(&dir, 1), &full[..cut]).unwrap();
            let (log, batches) = Log::open(&dir, opts()).unwrap();
            let complete = ends.iter().filter(|&&e| e <= cut as u64).count() - 1;
            assert_eq!(batches.len(), complete, "cut at {cut}");
            log.close();
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn corruption_in_the_middle_is_refused_with_file_and_offset() {
        let dir = tmp("corrupt");
        let (log, _) = Log::open(&dir, opts()).unwrap();
        let mut lsn = 0;
        for i in 0..3 {
            lsn = log.append(&cmd(i)).unwrap();
        }
        log.wait_durable(lsn).await.unwrap();
        log.close();
        drop(log);
        let path = segment_path(&dir, 1);
        let mut data = std::fs::read(&path).unwrap();
        data[SEGMENT_HEADER_LEN + 12] ^= 1;
        std::fs::write(&path, &data).unwrap();
        match Log::open(&dir, opts()) {
            Err(StorageError::Corrupted { file, offset, .. }) => {
                assert_eq!(file, path);
                assert_eq!(offset, SEGMENT_HEADER_LEN as u64);
            }
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("corruption not detected"),
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Writes records until the log has rolled into segment 2 and segment 2 holds records;
    /// returns how many batches were appended.
    /// A valid segment copied to another place (as the next segment, its header's number
    /// fixed) holds valid records at the wrong position: damage naming where they were
    /// written, not a log that goes on.
    #[tokio::test]
    async fn ops_records_found_at_the_wrong_position_are_damage() {
        let dir = tmp("moved");
        let (log, _) = Log::open(&dir, opts()).unwrap();
        let mut n = 0u8;
        while recovery::list_segments(&dir).unwrap().len() < 2
            || std::fs::metadata(segment_path(&dir, 2)).unwrap().len() <= SEGMENT_HEADER_LEN as u64
        {
            let (lsn, _, ()) = log
                .append_ops(|out| out.extend_from_slice(&[n; 40]))
                .unwrap();
            log.wait_durable(lsn).await.unwrap();
            n = n.wrapping_add(1);
        }
        log.close();
        drop(log);
        let rec = recovery::read_log(&dir).unwrap();
        assert!(rec.damage.is_none(), "{:?}", rec.damage);
        assert_eq!(rec.ops.len(), usize::from(n));
        assert_eq!(&rec.ops[1][..], &[1u8; 40][..]);
        // Sealed segment 1 copied over segment 2, its header naming 2: every check on the
        // bytes alone passes.
        let mut copy = std::fs::read(segment_path(&dir, 1)).unwrap();
        copy[8..16].copy_from_slice(&2u64.to_le_bytes());
        std::fs::write(segment_path(&dir, 2), &copy).unwrap();
        let rec = recovery::read_log(&dir).unwrap();
        let damage = rec.damage.expect("damage");
        assert!(!damage.torn_tail, "{damage:?}");
        assert!(
            damage.reason.contains("written for segment 1 offset 16"),
            "{}",
            damage.reason
        );
        assert!(Log::open(&dir, opts()).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    async fn two_segments(dir: &Path) -> usize {
        let (log, _) = Log::open(dir, opts()).unwrap();
        let mut n = 0;
        while recovery::list_segments(dir).unwrap().len() < 2
            || std::fs::metadata(segment_path(dir, 2)).unwrap().len() <= SEGMENT_HEADER_LEN as u64
        {
            let lsn = log.append(&cmd(n)).unwrap();
            log.wait_durable(lsn).await.unwrap();
            n += 1;
        }
        log.close();
        n
    }

    /// Segment 1's records: every batch appended before the roll.
    fn batches_in_segment_1(dir: &Path) -> usize {
        let data = Bytes::from(std::fs::read(segment_path(dir, 1)).unwrap());
        let mut off = SEGMENT_HEADER_LEN;
        let mut n = 0;
        while let crate::storage::record::Decoded::Record { kind, len, .. } =
            crate::storage::record::decode(&data.slice(off..))
        {
            if kind == crate::storage::record::RecordKind::Batch as u8 {
                n += 1;
            }
            off += len;
        }
        n
    }

    /// A crash between creating segment 2 and sealing segment 1 (the seal missing or cut
    /// short) is a torn roll: segment 2 had no records yet; it is dropped and the log goes on
    /// in segment 1, sealing it properly at the next roll.
    #[tokio::test]
    async fn roll_cut_before_the_seal_recovers() {
        for cut_seal_to in [0, 5, SEAL_LEN - 1] {
            let dir = tmp("tornroll");
            two_segments(&dir).await;
            let in_1 = batches_in_segment_1(&dir);
            let p1 = segment_path(&dir, 1);
            let len = std::fs::metadata(&p1).unwrap().len();
            let f = OpenOptions::new().write(true).open(&p1).unwrap();
            f.set_len(len - SEAL_LEN as u64 + cut_seal_to as u64)
                .unwrap();
            let f2 = OpenOptions::new()
                .write(true)
                .open(segment_path(&dir, 2))
                .unwrap();
            f2.set_len(SEGMENT_HEADER_LEN as u64).unwrap();
            let (log, batches) = Log::open(&dir, opts()).unwrap();
            assert_eq!(batches.len(), in_1, "seal cut to {cut_seal_to}");
            assert!(!segment_path(&dir, 2).exists());
            for i in 0..200 {
                let lsn = log.append(&cmd(i)).unwrap();
                log.wait_durable(lsn).await.unwrap();
            }
            log.close();
            drop(log);
            let (log, batches) = Log::open(&dir, opts()).unwrap();
            assert_eq!(batches.len(), in_1 + 200);
            log.close();
            let _ = std::fs::remove_dir_all(&dir);
        }
    }

    /// Without its seal, segment 1 followed by a segment with records means segment 1 lost
    /// its end: corruption, named at the end of segment 1.
    #[tokio::test]
    async fn unsealed_segment_followed_by_records_is_refused() {
        let dir = tmp("unsealed");
        two_segments(&dir).await;
        let p1 = segment_path(&dir, 1);
        let len = std::fs::metadata(&p1).unwrap().len();
        let f = OpenOptions::new().write(true).open(&p1).unwrap();
        f.set_len(len - SEAL_LEN as u64).unwrap();
        match Log::open(&dir, opts()) {
            Err(StorageError::Corrupted { file, offset, .. }) => {
                assert_eq!(file, p1);
                assert_eq!(offset, len - SEAL_LEN as u64);
            }
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("missing end of segment 1 not detected"),
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Copies the log files of `from` into a fresh directory `to`, as a crash would leave
    /// them (the log in `from` stays open: its preallocated zeros are in the copy).
    fn crash_copy(from: &Path, to: &Path) {
        let _ = std::fs::remove_dir_all(to);
        std::fs::create_dir_all(recovery::log_dir(to)).unwrap();
        for (_, p) in recovery::list_segments(from).unwrap() {
            std::fs::copy(&p, recovery::log_dir(to).join(p.file_name().unwrap())).unwrap();
        }
    }

    fn big_opts() -> LogOptions {
        LogOptions {
            segment_size: 1 << 20,
            policy: FsyncPolicy::Always,
        }
    }

    /// The newest segment of a log that crashed ends in the zeros preallocated ahead of its
    /// records: recovery finds every record, reports nothing, and the log goes on right
    /// after the last record (not after the zeros). A clean close cuts the zeros off.
    #[tokio::test]
    async fn preallocated_tail_after_a_crash_is_the_end_of_the_log() {
        let dir = tmp("prealloc");
        let copy = tmp("prealloc-copy");
        let (log, _) = Log::open(&dir, big_opts()).unwrap();
        for i in 0..20 {
            let lsn = log.append(&cmd(i)).unwrap();
            log.wait_durable(lsn).await.unwrap();
        }
        let records_end = unpack_pos(log.written_pos()).1;
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::fs::metadata(segment_path(&dir, 1)).unwrap().len() <= records_end {
            assert!(Instant::now() < deadline, "nothing was preallocated");
            std::thread::sleep(Duration::from_millis(5));
        }
        crash_copy(&dir, &copy);
        let on_disk = std::fs::metadata(segment_path(&copy, 1)).unwrap().len();
        assert_eq!(on_disk, 1 << 20, "preallocated up to the segment size");
        let rec = recovery::read_log(&copy).unwrap();
        assert!(rec.damage.is_none(), "{:?}", rec.damage);
        assert_eq!(rec.segments.last().unwrap().valid_len, records_end);
        let (log2, batches) = Log::open(&copy, big_opts()).unwrap();
        assert_eq!(batches.len(), 20);
        for i in 20..30 {
            let lsn = log2.append(&cmd(i)).unwrap();
            log2.wait_durable(lsn).await.unwrap();
        }
        log2.close();
        drop(log2);
        let len = std::fs::metadata(segment_path(&copy, 1)).unwrap().len();
        let (log2, batches) = Log::open(&copy, big_opts()).unwrap();
        assert_eq!(batches.len(), 30);
        assert_eq!(batches[29], cmd(29));
        assert_eq!(
            len,
            unpack_pos(log2.written_pos()).1,
            "close cut the zeros off"
        );
        log2.close();
        log.close();
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(&copy);
    }

    /// Zeros do not hide damage: the newest record with a flipped byte is corruption even
    /// when preallocated zeros follow it, and a record whose second page never reached the
    /// disk (zeros there, then the zeros after it) is a torn write.
    #[tokio::test]
    async fn zeros_after_the_last_record_do_not_hide_damage() {
        let dir = tmp("prealloc-damage");
        let (log, _) = Log::open(&dir, big_opts()).unwrap();
        let mut last_at = 0;
        for i in 0..3u8 {
            last_at = unpack_pos(log.written_pos()).1;
            let (lsn, _, ()) = log
                .append_ops(|out| out.extend_from_slice(&[i + 1; 6000]))
                .unwrap();
            log.wait_durable(lsn).await.unwrap();
        }
        log.close();
        drop(log);
        let path = segment_path(&dir, 1);
        let clean = std::fs::read(&path).unwrap();
        let last_at = last_at as usize;
        // A flipped byte in the last record, zeros after it.
        let mut data = clean.clone();
        data[last_at + 100] ^= 1;
        data.extend_from_slice(&[0; 64 * 1024]);
        std::fs::write(&path, &data).unwrap();
        match Log::open(&dir, big_opts()) {
            Err(StorageError::Corrupted { file, offset, .. }) => {
                assert_eq!(file, path);
                assert_eq!(offset, last_at as u64);
            }
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("damage behind preallocated zeros not detected"),
        }
        // The last record's length made longer, zeros after it: its checksum still
        // matches the bytes up to the zeros, so it was complete.
        let mut data = clean.clone();
        data[last_at + 2] ^= 1;
        data.extend_from_slice(&[0; 128 * 1024]);
        std::fs::write(&path, &data).unwrap();
        match Log::open(&dir, big_opts()) {
            Err(StorageError::Corrupted { offset, reason, .. }) => {
                assert_eq!(offset, last_at as u64);
                assert!(reason.contains("length field damaged"), "{reason}");
            }
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("damaged length behind preallocated zeros not detected"),
        }
        // The last record's second page lost to a power cut, zeros after it.
        let mut data = clean.clone();
        let page = (last_at / 4096 + 1) * 4096;
        for b in &mut data[page..(page + 4096).min(clean.len())] {
            *b = 0;
        }
        data.extend_from_slice(&[0; 64 * 1024]);
        std::fs::write(&path, &data).unwrap();
        let rec = recovery::read_log(&dir).unwrap();
        let damage = rec.damage.clone().expect("a torn write");
        assert!(damage.torn_tail, "{damage:?}");
        assert_eq!(damage.offset, last_at as u64);
        assert_eq!(rec.ops.len(), 2);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A newest segment whose header was torn (cut inside its 16 bytes) gets a fresh header
    /// at start-up, and the log goes on after it — not over it (found by the recovery fuzzer
    /// when the log first took its end from recovery instead of the file's length).
    #[tokio::test]
    async fn torn_header_is_rewritten_and_records_go_after_it() {
        let dir = tmp("tornheader");
        two_segments(&dir).await;
        let in_1 = batches_in_segment_1(&dir);
        std::fs::write(segment_path(&dir, 2), &recovery::segment_header(2)[..7]).unwrap();
        let (log, batches) = Log::open(&dir, opts()).unwrap();
        assert_eq!(batches.len(), in_1);
        let lsn = log.append(&cmd(7)).unwrap();
        log.wait_durable(lsn).await.unwrap();
        log.close();
        drop(log);
        let rec = recovery::read_log(&dir).unwrap();
        assert!(rec.damage.is_none(), "{:?}", rec.damage);
        let (log, batches) = Log::open(&dir, opts()).unwrap();
        assert_eq!(batches.len(), in_1 + 1);
        assert_eq!(batches[in_1], cmd(7));
        log.close();
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A crash after the seal was written but before the zeros behind it were cut, and a
    /// crash during a roll whose new segment was already preallocated: both recover.
    #[tokio::test]
    async fn zeros_around_a_roll_recover() {
        let dir = tmp("prealloc-roll");
        let n = two_segments(&dir).await;
        let p1 = segment_path(&dir, 1);
        let mut sealed = std::fs::read(&p1).unwrap();
        let seal_at = sealed.len() - SEAL_LEN;
        sealed.extend_from_slice(&[0; 8192]);
        std::fs::write(&p1, &sealed).unwrap();
        let rec = recovery::read_log(&dir).unwrap();
        assert!(rec.damage.is_none(), "{:?}", rec.damage);
        let (log, batches) = Log::open(&dir, opts()).unwrap();
        assert_eq!(batches.len(), n);
        log.close();
        drop(log);
        // Seal missing from segment 1 (the roll was cut), segment 2 holding only its header
        // and preallocated zeros.
        let in_1 = batches_in_segment_1(&dir);
        let data = std::fs::read(&p1).unwrap();
        std::fs::write(&p1, &data[..seal_at]).unwrap();
        let p2 = segment_path(&dir, 2);
        let mut empty = recovery::segment_header(2).to_vec();
        empty.extend_from_slice(&[0; 8192]);
        std::fs::write(&p2, &empty).unwrap();
        let (log, batches) = Log::open(&dir, opts()).unwrap();
        assert_eq!(batches.len(), in_1);
        assert!(!p2.exists(), "{:?}", recovery::list_segments(&dir));
        log.close();
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Format-1 segments (no seals) written by earlier versions still open, and the log
    /// goes on in them.
    #[tokio::test]
    async fn format_1_segments_still_open() {
        let dir = tmp("v1");
        let n = two_segments(&dir).await;
        for seg in [1, 2] {
            let p = segment_path(&dir, seg);
            let mut data = std::fs::read(&p).unwrap();
            data[..8].copy_from_slice(recovery::SEGMENT_MAGIC_V1);
            if seg == 1 {
                data.truncate(data.len() - SEAL_LEN);
            }
            std::fs::write(&p, &data).unwrap();
        }
        let (log, batches) = Log::open(&dir, opts()).unwrap();
        assert_eq!(batches.len(), n);
        log.close();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
