//! `rill check [--repair] DIR`: verifies a data directory offline, like `redis-check-aof`.
//!
//! Start-up already refuses a damaged log (naming the file and offset); this is the tool an
//! operator runs next. Without `--repair` it reads (it changes no log or checkpoint data): every segment, every record's length,
//! checksum and batch framing, exactly as recovery does (it calls [`recovery::read_log`], so the
//! verdict cannot drift from what start-up would decide), then replays the records into a scratch
//! keyspace with start-up's own replay code, so an intact record start-up could not apply ("Bad
//! command in the log") is reported too, not called clean. With `--repair` it first says precisely
//! what truncation at the first bad record loses (bytes, the records that can still be counted
//! after it, later segments), then cuts there with [`recovery::apply_truncation`].
//!
//! Exit status: 0 clean (or repaired), 1 damaged (check only), 2 the check itself could not run
//! (unreadable directory, a running server holds it, bad arguments). Both modes take the
//! directory's LOCK as the server does and refuse while a server runs there.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use bytes::Bytes;
use clap::Parser;

use crate::storage::checkpoint;
use crate::storage::lock::{self, DirLock, LockFile};
use crate::storage::raft_record;
use crate::storage::raftlog::{self, RaftSummary};
use crate::storage::record::{self, Decoded, RecordKind, HEADER_LEN};
use crate::storage::recovery::{self, Damage, SEGMENT_HEADER_LEN};
use crate::storage::StorageError;

/// Arguments of `rill check`.
#[derive(Debug, Parser)]
#[command(
    name = "rill check",
    about = "Verify (and optionally repair) a Rill data directory",
    long_about = "Verifies every segment and record of a Rill data directory without modifying it.\n\
                  Exit status: 0 clean, 1 damaged, 2 the check could not run.\n\
                  With --repair, says what will be lost and truncates the log at the first bad record."
)]
pub struct CheckArgs {
    /// Truncate the log at the first damaged record (everything after it is lost).
    #[arg(long)]
    pub repair: bool,
    /// The data directory (the server's `dir`), which holds `log/` and `LOCK`.
    pub dir: PathBuf,
}

/// Why the check could not run at all (as opposed to finding damage, which is a result).
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// Reading the log failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The directory has no log to check; probably a wrong path.
    #[error("{} is not a Rill data directory (no log/ directory in it)", .0.display())]
    NotADataDir(PathBuf),
    /// A running server holds the directory: repairing under it would corrupt what it writes.
    #[error("the data directory {} is in use by a running Rill server (lock file {} is held); stop it first", dir.display(), lock.display())]
    Locked { dir: PathBuf, lock: PathBuf },
    /// Writing the report failed (closed stdout).
    #[error("cannot write the report: {0}")]
    Output(#[source] std::io::Error),
}

/// What the check found in one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentReport {
    /// Segment file.
    pub path: PathBuf,
    /// Size of the file on disk.
    pub file_bytes: u64,
    /// Bytes of the valid prefix (header and good records).
    pub valid_bytes: u64,
    /// Good records in it.
    pub records: u64,
    /// State changes inside those records: ops (format 3) or commands (format 1).
    pub commands: u64,
}

/// What truncation at the damage loses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loss {
    /// Bytes of the damaged file from the bad record to its end.
    pub bytes_in_file: u64,
    /// Records that still decode after the bad record in the same file (a lower bound: the bad
    /// record's own length field may be what is damaged, so the walk may stop early).
    pub records_after_in_file: u64,
    /// Later segments, each with its size and the records that decode in it.
    pub later_segments: Vec<(PathBuf, u64, u64)>,
}

impl Loss {
    /// Every byte truncation removes.
    pub fn total_bytes(&self) -> u64 {
        self.bytes_in_file + self.later_segments.iter().map(|s| s.1).sum::<u64>()
    }

    /// Every record truncation removes, the damaged one included (a lower bound).
    pub fn total_records(&self) -> u64 {
        1 + self.records_after_in_file + self.later_segments.iter().map(|s| s.2).sum::<u64>()
    }
}

/// The result of checking a directory.
#[derive(Debug, Clone)]
pub struct CheckReport {
    /// Segments read, in order (the damaged one last if there is damage).
    pub segments: Vec<SegmentReport>,
    /// The first damaged record, if any.
    pub damage: Option<Damage>,
    /// What truncating at the damage would lose.
    pub loss: Option<Loss>,
    /// The checkpoint recovery starts from: its file, records and bytes.
    pub checkpoint: Option<(PathBuf, u64, u64)>,
    /// A damaged checkpoint: (file, offset, reason). Truncating the log cannot repair it (the
    /// history it replaced is gone), so `--repair` refuses.
    pub checkpoint_damage: Option<(PathBuf, u64, String)>,
    /// Files a checkpoint superseded that a crash left behind; start-up deletes them.
    pub obsolete: Vec<PathBuf>,
    /// Segments before the checkpoint, kept because live entries' payloads are in them.
    pub retained: Vec<SegmentReport>,
    /// The first record that is intact but that start-up could not apply.
    pub unreplayable: Option<Unreplayable>,
    /// The Raft log, in a cluster node's directory.
    pub raft: Option<RaftSummary>,
    /// Raft records that are intact but do not form a Raft log (a gap in the indexes, a
    /// term going down, a commit past the end): (file, offset, reason).
    pub raft_damage: Option<(PathBuf, u64, String)>,
}

/// A record whose bytes are intact but whose commands start-up could not apply (it stops
/// with "Bad command in the log"). Found by replaying the whole directory into a scratch
/// keyspace with the code start-up uses, so the verdict cannot drift from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreplayable {
    /// The segment, or the checkpoint, holding the record.
    pub file: PathBuf,
    /// The record's offset in a segment (`None` in a checkpoint).
    pub offset: Option<u64>,
    /// Its number in replay order, from 1, as start-up's message counts.
    pub record: u64,
    /// The command and why it failed.
    pub error: String,
}

impl CheckReport {
    /// True when nothing is damaged.
    pub fn is_clean(&self) -> bool {
        self.damage.is_none()
            && self.checkpoint_damage.is_none()
            && self.unreplayable.is_none()
            && self.raft_damage.is_none()
    }
}

/// Walks every record of a sealed segment kept for its payloads. Any bad record there is
/// corruption (they were complete and synced before the checkpoint that keeps them):
/// returns the report and, if damaged, (offset, reason).
fn verify_retained(path: &Path) -> Result<(SegmentReport, Option<(u64, String)>), CheckError> {
    let data = read_file(path)?;
    let mut report = SegmentReport {
        path: path.to_path_buf(),
        file_bytes: data.len() as u64,
        valid_bytes: 0,
        records: 0,
        commands: 0,
    };
    if recovery::segment_version(&data).is_none() {
        return Ok((report, Some((0, "bad segment header".into()))));
    }
    let w = walk_records(&data, SEGMENT_HEADER_LEN, data.len());
    report.records = w.records;
    report.commands = w.commands;
    report.valid_bytes = w.end as u64;
    Ok((
        report,
        w.error.map(|reason| (w.end as u64, reason.to_string())),
    ))
}

/// Takes the directory's lock the way the server does (see [`lock::lock_dir`]), without
/// creating a `LOCK` file. `Ok(None)`: a running server holds it.
fn try_lock(dir: &Path) -> Result<Option<DirLock>, CheckError> {
    match lock::lock_dir(dir, LockFile::IfPresent) {
        Ok(l) => Ok(Some(l)),
        Err(StorageError::Locked { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// What walking the records of `data[from..to]` found.
struct Walk {
    records: u64,
    commands: u64,
    /// Where the walk stopped: `to`, or the first record that does not decode.
    end: usize,
    /// Why it stopped early.
    error: Option<&'static str>,
}

/// Walks the records in `data[from..to]`, stopping at the first that does not decode.
fn walk_records(data: &Bytes, from: usize, to: usize) -> Walk {
    let mut w = Walk {
        records: 0,
        commands: 0,
        end: from,
        error: None,
    };
    while w.end < to {
        match record::decode(&data.slice(w.end..to)) {
            Decoded::Record { kind, len, .. } if kind == RecordKind::Seal as u8 => {
                w.end += len;
                // Zeros after a seal: preallocated space a crash kept from being cut
                // (start-up accepts them too).
                if recovery::all_zero(&data[w.end..to]) {
                    break;
                }
            }
            Decoded::Record { kind, len, .. } if kind == RecordKind::Ops as u8 => {
                // The engine's decoder: a record whose checksum holds but whose ops do not
                // parse is damage (start-up would stop at it too).
                let payload = data.slice(w.end + HEADER_LEN..w.end + len);
                let ops = record::split_ops(&payload).map(|(_, ops)| ops);
                match ops.map(|ops| crate::engine::op::decode(&ops)) {
                    Some(Ok((ops, _))) => w.commands += ops.len() as u64,
                    _ => {
                        w.error = Some("malformed ops payload");
                        break;
                    }
                }
                w.records += 1;
                w.end += len;
            }
            Decoded::Record { kind, len, .. } if raft_record::is_raft_kind(kind) => {
                // Framing and indexes are checked by `raftlog::verify`; a normal entry's
                // data is a critical section's ops (Raft mode), counted as changes.
                let payload = data.slice(w.end + HEADER_LEN..w.end + len);
                if let Some(Ok(raft_record::RaftRecord::Entry(e))) =
                    raft_record::decode(kind, &payload)
                {
                    if e.kind == raft_record::EntryKind::Normal && !e.data.is_empty() {
                        match crate::engine::op::decode(&e.data) {
                            Ok((ops, _)) => w.commands += ops.len() as u64,
                            Err(_) => {
                                w.error = Some("malformed ops in a Raft entry");
                                break;
                            }
                        }
                    }
                }
                w.records += 1;
                w.end += len;
            }
            Decoded::Record { payload, len, .. } => {
                w.records += 1;
                w.commands += record::parse_batch(&payload).map_or(0, |b| b.len() as u64);
                w.end += len;
            }
            Decoded::Incomplete => {
                w.error = Some("record cut short");
                break;
            }
            Decoded::Invalid(reason) => {
                w.error = Some(reason);
                break;
            }
        }
    }
    w
}

/// Counts the records and commands in `data[from..to]`, stopping at the first that does not decode.
fn count_records(data: &Bytes, from: usize, to: usize) -> (u64, u64) {
    let w = walk_records(data, from, to);
    (w.records, w.commands)
}

fn read_file(path: &Path) -> Result<Bytes, CheckError> {
    fs::read(path).map(Bytes::from).map_err(|e| {
        StorageError::Io {
            path: path.to_path_buf(),
            source: e,
        }
        .into()
    })
}

/// What truncating at `damage` loses, counted as far as the damaged bytes allow.
fn measure_loss(damage: &Damage) -> Result<Loss, CheckError> {
    // A missing segment is damage too; nothing of it is left to lose.
    let data = if damage.file.exists() {
        read_file(&damage.file)?
    } else {
        Bytes::new()
    };
    let off = damage.offset as usize;
    let bytes_in_file = (data.len() as u64).saturating_sub(damage.offset);
    // Past the bad record only if its length field still points inside the file.
    let mut records_after_in_file = 0;
    if off >= SEGMENT_HEADER_LEN && off + HEADER_LEN <= data.len() {
        let n = u32::from_le_bytes([data[off], data[off + 1], data[off + 2], data[off + 3]]);
        let next = off + HEADER_LEN + n as usize;
        if next <= data.len() {
            records_after_in_file = count_records(&data, next, data.len()).0;
        }
    }
    let mut later_segments = Vec::new();
    for p in &damage.later_segments {
        let d = read_file(p)?;
        let records = if recovery::segment_version(&d).is_some() {
            count_records(&d, SEGMENT_HEADER_LEN, d.len()).0
        } else {
            0
        };
        later_segments.push((p.clone(), d.len() as u64, records));
    }
    Ok(Loss {
        bytes_in_file,
        records_after_in_file,
        later_segments,
    })
}

/// Verifies `dir` without modifying its log. Refused while a server runs on it: a live tail
/// would look torn, and reading the log removes unfinished checkpoint files (`*.ckp.tmp`),
/// which under a running server would be the checkpoint it is writing.
pub fn check_dir(dir: &Path) -> Result<CheckReport, CheckError> {
    if !recovery::log_dir(dir).is_dir() {
        return Err(CheckError::NotADataDir(dir.to_path_buf()));
    }
    // Held while reading, so that no server starts meanwhile.
    let Some(_lock) = try_lock(dir)? else {
        return Err(CheckError::Locked {
            dir: dir.to_path_buf(),
            lock: dir.join("LOCK"),
        });
    };
    check_unlocked(dir)
}

fn check_unlocked(dir: &Path) -> Result<CheckReport, CheckError> {
    let rec = match recovery::read_log(dir) {
        Ok(rec) => rec,
        // Only a checkpoint makes read_log fail on content; segment damage is a result.
        Err(StorageError::Corrupted {
            file,
            offset,
            reason,
            ..
        }) => {
            return Ok(CheckReport {
                segments: Vec::new(),
                damage: None,
                loss: None,
                checkpoint: None,
                checkpoint_damage: Some((file, offset, reason)),
                obsolete: Vec::new(),
                retained: Vec::new(),
                unreplayable: None,
                raft: None,
                raft_damage: None,
            })
        }
        Err(e) => return Err(e.into()),
    };
    let checkpoint = match &rec.checkpoint {
        Some((path, _)) => {
            let records = checkpoint::read_checkpoint(dir, path)?.len() as u64;
            let bytes = fs::metadata(path)
                .map_err(|e| StorageError::Io {
                    path: path.clone(),
                    source: e,
                })?
                .len();
            Some((path.clone(), records, bytes))
        }
        None => None,
    };
    let mut retained = Vec::with_capacity(rec.retained.len());
    let mut checkpoint_damage = None;
    for &n in &rec.retained {
        let (report, damage) = verify_retained(&recovery::segment_path(dir, n))?;
        if let (Some((offset, reason)), None) = (damage, &checkpoint_damage) {
            checkpoint_damage = Some((report.path.clone(), offset, reason));
        }
        retained.push(report);
    }
    let mut segments = Vec::with_capacity(rec.segments.len());
    let mut shown = progress("Verifying segments", recovery::log_size(dir));
    for seg in &rec.segments {
        let data = read_file(&seg.path)?;
        shown.advance(data.len() as u64);
        let valid = (seg.valid_len as usize).min(data.len());
        let (records, commands) = if valid >= SEGMENT_HEADER_LEN {
            count_records(&data, SEGMENT_HEADER_LEN, valid)
        } else {
            (0, 0)
        };
        segments.push(SegmentReport {
            path: seg.path.clone(),
            file_bytes: data.len() as u64,
            valid_bytes: seg.valid_len,
            records,
            commands,
        });
    }
    shown.finish();
    let loss = rec.damage.as_ref().map(measure_loss).transpose()?;
    let unreplayable = if checkpoint_damage.is_none() {
        find_unreplayable(dir, rec.checkpoint.as_ref().map(|c| c.0.clone()))
    } else {
        None
    };
    let (raft, raft_damage) = match raftlog::verify(dir) {
        Ok(summary) => (summary, None),
        Err(StorageError::Corrupted {
            file,
            offset,
            reason,
            ..
        }) => (None, Some((file, offset, reason))),
        Err(e) => return Err(e.into()),
    };
    Ok(CheckReport {
        segments,
        damage: rec.damage,
        loss,
        checkpoint,
        checkpoint_damage,
        obsolete: rec.obsolete,
        retained,
        unreplayable,
        raft,
        raft_damage,
    })
}

/// Replays the directory as start-up does (`persist::replay::replay`) into a
/// scratch keyspace, and returns the first record it could not apply. Like start-up it
/// holds the data set's index in memory while it runs. Records after damage are not
/// replayed (start-up never reaches them).
fn find_unreplayable(dir: &Path, checkpoint: Option<PathBuf>) -> Option<Unreplayable> {
    let mut config = crate::config::Config::default();
    // Every database a record can name (its `db` is 16 bits): the check does not know
    // the server's `databases`.
    config.databases = u32::from(u16::MAX) + 1;
    let shared = crate::core::Shared::new(config, None);
    shared.attach_segments(dir);
    let mut record = 0u64;
    let mut found: Option<Unreplayable> = None;
    let mut shown = progress("Replaying", recovery::log_size(dir));
    let _ = recovery::read_log_with(dir, &mut |item, bytes| {
        record += 1;
        shown.advance(bytes);
        let pos = match &item {
            recovery::Replay::Batch { pos, .. } | recovery::Replay::Ops { pos, .. } => *pos,
            // A Raft checkpoint's cut: read by a cluster node's start-up only.
            recovery::Replay::State(d)
                if d.first() == Some(&crate::persist::replay::state_tag::RAFT) =>
            {
                return Ok(())
            }
            recovery::Replay::State(_) => None,
            // Checked by `check_raft` (framing and index contiguity); what an entry's data
            // means is applied only by a cluster node once it is committed.
            recovery::Replay::Raft { .. } => return Ok(()),
        };
        let errors = crate::persist::replay::replay(&shared, item);
        if let Some(error) = errors.into_iter().next() {
            found = Some(Unreplayable {
                file: match (pos, &checkpoint) {
                    (Some(p), _) => recovery::segment_path(dir, p.segment),
                    (None, Some(c)) => c.clone(),
                    (None, None) => recovery::log_dir(dir),
                },
                offset: pos.map(|p| p.offset),
                record,
                error,
            });
            // Stops the reader, as start-up stops.
            return Err(StorageError::Malformed("replay failed".into()));
        }
        Ok(())
    });
    shown.finish();
    found
}

/// Progress of one pass over the log: a bar on a terminal, otherwise a line on standard
/// error every second (standard output carries the report).
fn progress(what: &'static str, total: u64) -> crate::progress::Progress {
    crate::progress::Progress::new(
        what,
        total,
        Box::new(|line| eprintln!("rill check: {line}")),
    )
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

/// Writes the human-readable report.
pub fn print_report(dir: &Path, r: &CheckReport, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(out, "Checking {}", recovery::log_dir(dir).display())?;
    if let Some((file, offset, reason)) = &r.checkpoint_damage {
        writeln!(
            out,
            "  {}  DAMAGED at offset {}: {}",
            file_name(file),
            offset,
            reason
        )?;
        writeln!(
            out,
            "First damaged record: {} at offset {} ({})",
            file.display(),
            offset,
            reason
        )?;
        writeln!(
            out,
            "It is a damaged checkpoint, or a damaged segment the checkpoint keeps for its entries: truncating the log cannot repair it (the history it replaced was deleted). Restore the directory from a backup."
        )?;
        return writeln!(out, "Result: damaged");
    }
    if let Some((path, records, bytes)) = &r.checkpoint {
        writeln!(
            out,
            "  {}  {} records  {} bytes  ok (the log below continues it)",
            file_name(path),
            records,
            bytes
        )?;
    }
    for s in &r.retained {
        writeln!(
            out,
            "  {}  {} records  {} bytes  ok (kept: live entries' payloads are here)",
            file_name(&s.path),
            s.records,
            s.file_bytes
        )?;
    }
    for p in &r.obsolete {
        writeln!(
            out,
            "  {}  superseded by the checkpoint (left by a crash; start-up deletes it)",
            file_name(p)
        )?;
    }
    let damaged_file = r.damage.as_ref().map(|d| d.file.clone());
    for s in &r.segments {
        let status = match (&r.damage, Some(&s.path) == damaged_file.as_ref()) {
            (Some(d), true) => format!("DAMAGED at offset {}: {}", d.offset, d.reason),
            _ => "ok".to_string(),
        };
        writeln!(
            out,
            "  {}  {} records  {} changes  {} bytes  {}",
            file_name(&s.path),
            s.records,
            s.commands,
            s.file_bytes,
            status
        )?;
    }
    if let Some(d) = &r.damage {
        for p in &d.later_segments {
            writeln!(out, "  {}  not verified (after the damage)", file_name(p))?;
        }
    }
    let records: u64 = r.segments.iter().map(|s| s.records).sum();
    let commands: u64 = r.segments.iter().map(|s| s.commands).sum();
    let bytes: u64 = r.segments.iter().map(|s| s.valid_bytes).sum();
    writeln!(
        out,
        "{} segment(s), {} valid records, {} changes, {} valid bytes",
        r.segments.len() + r.damage.as_ref().map_or(0, |d| d.later_segments.len()),
        records,
        commands,
        bytes
    )?;
    if let Some(raft) = &r.raft {
        writeln!(
            out,
            "Raft log: entries {} to {} ({} Raft records), hard state term {} vote {} commit {}: indexes contiguous",
            raft.first_index,
            raft.last_index,
            raft.records,
            raft.hard_state.term,
            raft.hard_state.vote,
            raft.hard_state.commit
        )?;
        if raft.interrupted_truncation {
            writeln!(
                out,
                "A truncation of the Raft log was interrupted by a crash; start-up finishes it."
            )?;
        }
    }
    if let Some((file, offset, reason)) = &r.raft_damage {
        writeln!(
            out,
            "Raft log DAMAGED: {} at offset {}: {}",
            file.display(),
            offset,
            reason
        )?;
        writeln!(
            out,
            "The records are intact but do not form a Raft log; the server refuses to start. Truncation does not make this node safe to rejoin its group: re-provision it under a new node ID."
        )?;
        if r.damage.is_none() {
            return writeln!(out, "Result: damaged");
        }
    }
    if let Some(u) = &r.unreplayable {
        writeln!(
            out,
            "Record {} ({}{}) is intact but cannot be replayed: {}",
            u.record,
            u.file.display(),
            u.offset
                .map_or(String::new(), |o| format!(" at offset {o}")),
            u.error
        )?;
        writeln!(
            out,
            "The server refuses to start on it (\"Bad command in the log\"); truncation does not repair it."
        )?;
        if r.damage.is_none() {
            return writeln!(out, "Result: damaged");
        }
    }
    match &r.damage {
        None => writeln!(out, "Result: clean")?,
        Some(d) => {
            writeln!(
                out,
                "First damaged record: {} at offset {} ({})",
                d.file.display(),
                d.offset,
                d.reason
            )?;
            if d.torn_tail {
                writeln!(
                    out,
                    "It is a torn tail: the last write of the newest segment, cut short by a crash and never acknowledged. The server truncates it at start-up with a warning."
                )?;
            } else {
                writeln!(
                    out,
                    "It is corruption: the server refuses to start. 'rill check --repair {}' truncates the log there.",
                    dir.display()
                )?;
            }
            writeln!(out, "Result: damaged")?;
        }
    }
    Ok(())
}

/// Writes what truncation at the damage loses.
fn print_loss(d: &Damage, loss: &Loss, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(
        out,
        "Repair truncates {} at offset {}. This loses:",
        d.file.display(),
        d.offset
    )?;
    writeln!(
        out,
        "  {} bytes of {} (offset {} to its end): the damaged record and at least {} record(s) after it",
        loss.bytes_in_file,
        file_name(&d.file),
        d.offset,
        loss.records_after_in_file
    )?;
    for (p, bytes, records) in &loss.later_segments {
        writeln!(
            out,
            "  later segment {} ({} bytes, {} record(s)): deleted",
            file_name(p),
            bytes,
            records
        )?;
    }
    writeln!(
        out,
        "  in total {} bytes and at least {} record(s)",
        loss.total_bytes(),
        loss.total_records()
    )
}

/// Checks, and with `repair` truncates at the first damaged record. Returns whether the
/// directory is clean at the end.
pub fn run(dir: &Path, repair: bool, out: &mut impl Write) -> Result<bool, CheckError> {
    if !recovery::log_dir(dir).is_dir() {
        return Err(CheckError::NotADataDir(dir.to_path_buf()));
    }
    if !repair {
        let report = check_dir(dir)?;
        print_report(dir, &report, out).map_err(CheckError::Output)?;
        return Ok(report.is_clean());
    }
    // Held until the repair is done, so that no server starts on a half-repaired directory.
    let Some(_lock) = try_lock(dir)? else {
        return Err(CheckError::Locked {
            dir: dir.to_path_buf(),
            lock: dir.join("LOCK"),
        });
    };
    let report = check_unlocked(dir)?;
    print_report(dir, &report, out).map_err(CheckError::Output)?;
    if report.checkpoint_damage.is_some() {
        writeln!(
            out,
            "Not repaired: a damaged checkpoint cannot be repaired by truncation."
        )
        .map_err(CheckError::Output)?;
        return Ok(false);
    }
    let (Some(d), Some(loss)) = (&report.damage, &report.loss) else {
        if report.raft_damage.is_some() {
            writeln!(
                out,
                "Not repaired: the records are intact, and a Raft log is not repaired by truncation."
            )
            .map_err(CheckError::Output)?;
            return Ok(false);
        }
        if report.unreplayable.is_some() {
            writeln!(
                out,
                "Not repaired: the record is intact, so there is nothing to truncate."
            )
            .map_err(CheckError::Output)?;
            return Ok(false);
        }
        writeln!(out, "Nothing to repair.").map_err(CheckError::Output)?;
        return Ok(true);
    };
    print_loss(d, loss, out).map_err(CheckError::Output)?;
    recovery::apply_truncation(d)?;
    writeln!(out, "Truncated. Checking again:").map_err(CheckError::Output)?;
    let after = check_unlocked(dir)?;
    print_report(dir, &after, out).map_err(CheckError::Output)?;
    Ok(after.is_clean())
}

/// Parses the arguments of the subcommand `rill NAME …` (`args` are those after NAME)
/// with clap; on `--help`/`--version` or an error, prints what clap says and gives the
/// exit code to return (0 for help, 2 for a usage error). Shared by `rill check` and
/// `rill cluster`.
pub fn parse_subcommand<T: Parser>(name: &str, args: &[String]) -> Result<T, ExitCode> {
    T::try_parse_from(std::iter::once(format!("rill {name}")).chain(args.iter().cloned())).map_err(
        |e| {
            let _ = e.print();
            if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            }
        },
    )
}

/// Entry point of `rill check`: `args` are the arguments after `check`.
pub fn main(args: &[String]) -> ExitCode {
    let parsed: CheckArgs = match parse_subcommand("check", args) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match run(&parsed.dir, parsed.repair, &mut out) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            let _ = out.flush();
            eprintln!("rill check: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::record::LoggedCommand;
    use crate::storage::recovery::segment_path;
    use crate::storage::{FsyncPolicy, Log, LogOptions};

    /// Log options with tiny segments, so a few records roll several.
    fn small_segments() -> LogOptions {
        LogOptions {
            segment_size: 1024,
            policy: FsyncPolicy::Always,
        }
    }
    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("rill-check-{}-{}", name, std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    fn cmd(i: usize) -> Vec<LoggedCommand> {
        vec![LoggedCommand {
            db: 0,
            argv: vec![
                Bytes::from("XADD"),
                Bytes::from("k"),
                Bytes::from(format!("{i}-1")),
                Bytes::from("f"),
                Bytes::from("v"),
            ],
        }]
    }

    /// Writes `n` records through the real log with small segments, then closes it.
    async fn fill(dir: &Path, n: usize) {
        let (log, _) = Log::open(
            dir,
            LogOptions {
                segment_size: 1024,
                policy: FsyncPolicy::Always,
            },
        )
        .expect("open");
        // One commit per record, so that the 1 KiB segments really roll over.
        for i in 0..n {
            let lsn = log.append(&cmd(i)).expect("append");
            log.wait_durable(lsn).await.expect("durable");
        }
        log.close();
    }

    fn text(dir: &Path, repair: bool) -> (Result<bool, String>, String) {
        let mut out = Vec::new();
        let r = run(dir, repair, &mut out).map_err(|e| e.to_string());
        (r, String::from_utf8_lossy(&out).into_owned())
    }

    #[tokio::test]
    async fn clean_directory_counts_every_record() {
        let dir = tmp("clean");
        fill(&dir, 200).await;
        let report = check_dir(&dir).expect("check");
        assert!(report.is_clean());
        assert!(report.segments.len() > 1, "small segments roll over");
        assert_eq!(report.segments.iter().map(|s| s.records).sum::<u64>(), 200);
        assert_eq!(report.segments.iter().map(|s| s.commands).sum::<u64>(), 200);
        let (r, out) = text(&dir, false);
        assert_eq!(r, Ok(true));
        assert!(out.contains("200 valid records"), "{out}");
        assert!(out.contains("Result: clean"), "{out}");
        let _ = fs::remove_dir_all(&dir);
    }

    /// A record that every checksum passes but that replay refuses (here the PEXPIREAT past
    /// `i64::MAX` that `SET k v PX 9223372036854775807` used to log) is reported, as
    /// start-up would refuse it, instead of calling the directory clean.
    #[tokio::test]
    async fn record_that_cannot_be_replayed_is_reported() {
        let dir = tmp("unreplayable");
        fill(&dir, 3).await;
        let (log, _) = Log::open(&dir, small_segments()).expect("open");
        let bad = vec![
            LoggedCommand {
                db: 0,
                argv: vec![Bytes::from("SET"), Bytes::from("k"), Bytes::from("v")],
            },
            LoggedCommand {
                db: 0,
                argv: vec![
                    Bytes::from("PEXPIREAT"),
                    Bytes::from("k"),
                    Bytes::from("9223373833466473206"),
                ],
            },
        ];
        let lsn = log.append(&bad).expect("append");
        log.wait_durable(lsn).await.expect("durable");
        log.close();
        drop(log);
        let report = check_dir(&dir).expect("check");
        assert!(report.damage.is_none());
        let u = report.unreplayable.clone().expect("reported");
        assert_eq!(u.record, 4);
        assert!(u.error.contains("PEXPIREAT"), "{}", u.error);
        assert!(!report.is_clean());
        let (r, out) = text(&dir, false);
        assert_eq!(r, Ok(false));
        assert!(out.contains("cannot be replayed"), "{out}");
        assert!(out.contains("Result: damaged"), "{out}");
        let (r, out) = text(&dir, true);
        assert_eq!(r, Ok(false), "{out}");
        let _ = fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn flipped_byte_is_named_and_repair_truncates_there() {
        let dir = tmp("flip");
        fill(&dir, 200).await;
        let segs = recovery::list_segments(&dir).expect("list");
        assert!(segs.len() >= 3);
        // Damage the third record of the first segment.
        let path = segment_path(&dir, segs[0].0);
        let mut data = fs::read(&path).expect("read");
        let rec_len = {
            let b = Bytes::from(data.clone());
            match record::decode(&b.slice(SEGMENT_HEADER_LEN..)) {
                Decoded::Record { len, .. } => len,
                other => panic!("{other:?}"),
            }
        };
        let bad = SEGMENT_HEADER_LEN + 2 * rec_len;
        data[bad + HEADER_LEN + 3] ^= 0x10;
        let file_len = data.len() as u64;
        fs::write(&path, &data).expect("write");

        let report = check_dir(&dir).expect("check");
        let d = report.damage.clone().expect("damage found");
        assert_eq!(d.file, path);
        assert_eq!(d.offset, bad as u64);
        assert!(!d.torn_tail);
        let loss = report.loss.clone().expect("loss");
        assert_eq!(loss.bytes_in_file, file_len - bad as u64);
        // Every record after the bad one in that file still decodes: all are counted.
        let per_file = (file_len as usize - SEGMENT_HEADER_LEN) / rec_len;
        assert_eq!(loss.records_after_in_file as usize, per_file - 3);
        assert_eq!(loss.later_segments.len(), segs.len() - 1);
        assert_eq!(loss.total_records(), 198);

        let (r, out) = text(&dir, false);
        assert_eq!(r, Ok(false));
        assert!(
            out.contains(&format!("at offset {bad}")) && out.contains("Result: damaged"),
            "{out}"
        );
        // The check only reads.
        assert_eq!(fs::read(&path).expect("read"), data);

        let (r, out) = text(&dir, true);
        assert_eq!(r, Ok(true), "{out}");
        assert!(out.contains("at least 198 record(s)"), "{out}");
        assert_eq!(fs::metadata(&path).expect("meta").len(), bad as u64);
        assert_eq!(recovery::list_segments(&dir).expect("list").len(), 1);
        let (log, batches) = Log::open(&dir, small_segments()).expect("opens after repair");
        assert_eq!(batches.len(), 2);
        log.close();
        let _ = fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn torn_tail_is_reported_as_torn() {
        let dir = tmp("torn");
        fill(&dir, 5).await;
        let segs = recovery::list_segments(&dir).expect("list");
        let path = &segs[segs.len() - 1].1;
        let len = fs::metadata(path).expect("meta").len();
        let f = fs::OpenOptions::new().write(true).open(path).expect("open");
        f.set_len(len - 3).expect("cut");
        let (r, out) = text(&dir, false);
        assert_eq!(r, Ok(false));
        assert!(out.contains("torn tail"), "{out}");
        let _ = fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn check_and_repair_are_refused_while_a_server_holds_the_directory() {
        let dir = tmp("locked");
        fill(&dir, 3).await;
        let (log, _) = Log::open(&dir, small_segments()).expect("open");
        let (r, _) = text(&dir, true);
        let err = r.expect_err("refused");
        assert!(err.contains("in use by a running Rill server"), "{err}");
        let (r, _) = text(&dir, false);
        let err = r.expect_err("refused");
        assert!(err.contains("in use by a running Rill server"), "{err}");
        log.close();
        drop(log);
        assert_eq!(
            text(&dir, false).0,
            Ok(true),
            "runs once the server is gone"
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn checkpoint_is_reported_and_its_damage_is_not_repaired_by_truncation() {
        let dir = tmp("ckp");
        fill(&dir, 60).await;
        let segs = recovery::list_segments(&dir).expect("list");
        let tail = segs[segs.len() - 1].0;
        let mut w = checkpoint::CheckpointWriter::new(tail);
        for i in 0..3 {
            w.add(&cmd(i));
        }
        w.finish(&dir, &mut |_| {}).expect("checkpoint");
        let report = check_dir(&dir).expect("check");
        assert!(report.is_clean());
        let (path, records, _) = report.checkpoint.clone().expect("checkpoint reported");
        assert_eq!(records, 3);
        assert_eq!(report.segments.len(), 1, "older segments were superseded");
        let (r, out) = text(&dir, false);
        assert_eq!(r, Ok(true));
        assert!(out.contains("3 records"), "{out}");

        let mut data = fs::read(&path).expect("read");
        let last = data.len() - 1;
        data[last] ^= 0x01;
        fs::write(&path, &data).expect("write");
        let (r, out) = text(&dir, false);
        assert_eq!(r, Ok(false));
        assert!(out.contains("damaged checkpoint"), "{out}");
        let (r, out) = text(&dir, true);
        assert_eq!(r, Ok(false));
        assert!(out.contains("Not repaired"), "{out}");
        assert_eq!(fs::read(&path).expect("read"), data, "repair left it alone");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn not_a_data_directory() {
        let dir = tmp("empty");
        fs::create_dir_all(&dir).expect("mkdir");
        let (r, _) = text(&dir, false);
        assert!(r
            .expect_err("refused")
            .contains("not a Rill data directory"));
        let _ = fs::remove_dir_all(&dir);
    }

    fn raft_entries(from: u64, to: u64) -> Vec<raft_record::RaftRecord> {
        (from..=to)
            .map(|index| {
                raft_record::RaftRecord::Entry(raft_record::RaftEntryRecord {
                    term: 1,
                    index,
                    kind: raft_record::EntryKind::Normal,
                    context: Bytes::new(),
                    data: Bytes::from(vec![7u8; 100]),
                })
            })
            .collect()
    }

    /// A cluster node's directory: Raft records only, through the real log.
    fn fill_raft(
        dir: &Path,
        recs: &[raft_record::RaftRecord],
    ) -> Vec<crate::storage::log::RecordPos> {
        let (log, _) = Log::open(dir, small_segments()).expect("open");
        let (_, pos) = log.append_raft(recs).expect("append");
        log.sync().expect("sync");
        log.close();
        pos
    }

    #[test]
    fn a_raft_log_is_reported_and_its_gaps_and_flips_are_damage() {
        let dir = tmp("raft");
        let mut recs = raft_entries(1, 30);
        recs.push(raft_record::RaftRecord::HardState(
            raft_record::HardStateRecord {
                term: 1,
                vote: 1,
                commit: 12,
            },
        ));
        let pos = fill_raft(&dir, &recs);
        let (ok, out) = text(&dir, false);
        assert_eq!(ok, Ok(true), "{out}");
        assert!(
            out.contains(
                "Raft log: entries 1 to 30 (31 Raft records), hard state term 1 vote 1 commit 12"
            ),
            "{out}"
        );
        // A bit flipped inside entry 5 (an older segment): damage named by file and offset.
        let at = pos[4];
        let path = segment_path(&dir, at.segment);
        let mut data = fs::read(&path).unwrap();
        data[at.offset as usize + 20] ^= 1;
        fs::write(&path, &data).unwrap();
        let (ok, out) = text(&dir, false);
        assert_eq!(ok, Ok(false), "{out}");
        assert!(
            out.contains(&format!(
                "First damaged record: {} at offset {}",
                path.display(),
                at.offset
            )),
            "{out}"
        );
        let _ = fs::remove_dir_all(&dir);
        // Intact records whose indexes skip one.
        let mut recs = raft_entries(1, 3);
        recs.extend(raft_entries(5, 6));
        let pos = fill_raft(&dir, &recs);
        let (ok, out) = text(&dir, false);
        assert_eq!(ok, Ok(false), "{out}");
        assert!(
            out.contains(&format!(
                "Raft log DAMAGED: {} at offset {}: Raft entry has index 5 where 4 was expected",
                segment_path(&dir, pos[3].segment).display(),
                pos[3].offset
            )),
            "{out}"
        );
        let (ok, out) = text(&dir, true);
        assert_eq!(ok, Ok(false), "{out}");
        assert!(out.contains("Not repaired"), "{out}");
        let _ = fs::remove_dir_all(&dir);
    }
}
