//! Reading the log back: every segment in order, every record checked.
//!
//! A damaged record at the very end of the newest segment is a write that was
//! torn by a crash: it was never acknowledged, so it is cut off with a warning.
//! A damaged record anywhere else is corruption: recovery stops and names the
//! file and offset, and only `rill check --repair` truncates there.

use std::fs;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::log::RecordPos;
use super::record::{self, Decoded, LoggedCommand, HEADER_LEN};
use super::StorageError;

/// First bytes of every segment file.
pub const SEGMENT_MAGIC: &[u8; 8] = b"RILLLOG1";
/// Segment header: magic and the segment number (u64 LE).
pub const SEGMENT_HEADER_LEN: usize = 16;

/// A segment file found on disk.
#[derive(Debug, Clone)]
pub struct SegmentFile {
    /// Its number (file name).
    pub number: u64,
    /// Its path.
    pub path: PathBuf,
    /// Length of its valid prefix.
    pub valid_len: u64,
}

/// Where the valid log ends, when it does not end at the end of the files.
#[derive(Debug, Clone)]
pub struct Damage {
    /// The file with the first bad record.
    pub file: PathBuf,
    /// Offset of the first bad record.
    pub offset: u64,
    /// What is wrong with it.
    pub reason: String,
    /// True when it is a torn tail (last record of the newest segment).
    pub torn_tail: bool,
    /// Bytes from the bad record to the end of all segments (what truncation loses).
    pub lost_bytes: u64,
    /// Whole segment files after the damaged one (lost too).
    pub later_segments: Vec<PathBuf>,
}

/// Everything read from the log.
#[derive(Debug, Default)]
pub struct Recovered {
    /// The checkpoint recovery started from: (its path, the first segment after it).
    pub checkpoint: Option<(PathBuf, u64)>,
    /// Files superseded by the checkpoint (left over by a crash during clean-up).
    pub obsolete: Vec<PathBuf>,
    /// The batches, in log order.
    pub batches: Vec<Vec<LoggedCommand>>,
    /// The segments after the checkpoint, in order, with their valid lengths.
    pub segments: Vec<SegmentFile>,
    /// Segments before the checkpoint kept because live entries' payloads are there.
    pub retained: Vec<u64>,
    /// The first damaged record, if any.
    pub damage: Option<Damage>,
    /// Bytes of valid records read.
    pub bytes: u64,
}

/// Directory holding the segments.
pub fn log_dir(dir: &Path) -> PathBuf {
    dir.join("log")
}

/// Path of segment `n`.
pub fn segment_path(dir: &Path, n: u64) -> PathBuf {
    log_dir(dir).join(format!("{n:020}.seg"))
}

/// Lists the segment files of `dir` in order.
pub fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, StorageError> {
    let ld = log_dir(dir);
    let rd = match fs::read_dir(&ld) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StorageError::io(&ld, e)),
    };
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| StorageError::io(&ld, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if let Some(num) = name.strip_suffix(".seg") {
            if let Ok(n) = num.parse::<u64>() {
                out.push((n, entry.path()));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Reads the newest checkpoint, then every segment after it, checking every record,
/// and collects the batches. Never modifies anything; see [`apply_truncation`] and
/// [`remove_obsolete`].
pub fn read_log(dir: &Path) -> Result<Recovered, StorageError> {
    let mut batches = Vec::new();
    let mut rec = read_log_with(dir, &mut |r, _| {
        if let Replay::Batch { commands, .. } = r {
            batches.push(commands);
        }
        Ok(())
    })?;
    rec.batches = batches;
    Ok(rec)
}

/// Total bytes of the checkpoint and segments recovery will read (progress reports).
pub fn log_size(dir: &Path) -> u64 {
    let size = |p: &Path| fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let ckps = super::checkpoint::list_checkpoints(dir).unwrap_or_default();
    let first = ckps.last().map_or(0, |(t, _)| *t);
    ckps.last().map_or(0, |(_, p)| size(p))
        + list_segments(dir)
            .unwrap_or_default()
            .iter()
            .filter(|(n, _)| *n >= first)
            .map(|(_, p)| size(p))
            .sum::<u64>()
}

/// One thing recovery hands to the command layer.
#[derive(Debug)]
pub enum Replay {
    /// Commands to replay, with where their record is in the log (`None` for a
    /// checkpoint's records).
    Batch {
        commands: Vec<LoggedCommand>,
        pos: Option<RecordPos>,
    },
    /// Binary state from a checkpoint (a stream's index, counters, groups).
    State(Bytes),
}

/// Receives each valid record in log order, with the bytes it occupied.
pub type BatchSink<'a> = dyn FnMut(Replay, u64) -> Result<(), StorageError> + 'a;

/// As [`read_log`], but hands each batch to `sink` as soon as it is read, so a
/// log larger than memory can be replayed one segment at a time.
/// `Recovered::batches` stays empty.
pub fn read_log_with(dir: &Path, sink: &mut BatchSink<'_>) -> Result<Recovered, StorageError> {
    let mut rec = Recovered::default();
    rec.obsolete.extend(super::checkpoint::list_unfinished(dir));
    let checkpoints = super::checkpoint::list_checkpoints(dir)?;
    let mut first_segment = 0;
    if let Some((tail, path)) = checkpoints.last() {
        rec.retained = super::checkpoint::read_checkpoint_with(dir, path, sink)?;
        rec.checkpoint = Some((path.clone(), *tail));
        first_segment = *tail;
        for (_, p) in &checkpoints[..checkpoints.len() - 1] {
            rec.obsolete.push(p.clone());
        }
    }
    let mut segments = list_segments(dir)?;
    for &n in &rec.retained {
        if !segments.iter().any(|(m, _)| *m == n) {
            return Err(StorageError::Corrupted {
                file: segment_path(dir, n),
                offset: 0,
                reason: "segment missing: the checkpoint refers to entries stored in it".into(),
                dir: dir.to_path_buf(),
            });
        }
    }
    segments.retain(|(n, p)| {
        if *n < first_segment {
            if !rec.retained.contains(n) {
                rec.obsolete.push(p.clone());
            }
            false
        } else {
            true
        }
    });
    let count = segments.len();
    for (i, (number, path)) in segments.iter().enumerate() {
        let last = i + 1 == count;
        let data = Bytes::from(fs::read(path).map_err(|e| StorageError::io(path, e))?);
        let file_len = data.len() as u64;
        let damage = |offset: u64, reason: &str, torn: bool, rec: &mut Recovered| {
            let later: Vec<PathBuf> = segments[i + 1..].iter().map(|(_, p)| p.clone()).collect();
            let later_bytes: u64 = later
                .iter()
                .map(|p| fs::metadata(p).map(|m| m.len()).unwrap_or(0))
                .sum();
            rec.damage = Some(Damage {
                file: path.clone(),
                offset,
                reason: reason.to_string(),
                torn_tail: torn,
                lost_bytes: file_len - offset + later_bytes,
                later_segments: later,
            });
        };
        if data.len() < SEGMENT_HEADER_LEN || &data[..8] != SEGMENT_MAGIC {
            let torn = last
                && data.len() < SEGMENT_HEADER_LEN
                && SEGMENT_MAGIC.starts_with(&data[..data.len().min(8)]);
            rec.segments.push(SegmentFile {
                number: *number,
                path: path.clone(),
                valid_len: 0,
            });
            damage(0, "bad segment header", torn, &mut rec);
            return Ok(rec);
        }
        let mut off = SEGMENT_HEADER_LEN;
        loop {
            if off == data.len() {
                break;
            }
            let rest = data.slice(off..);
            match record::decode(&rest) {
                Decoded::Record { kind, payload, len } => {
                    if kind != record::RecordKind::Batch as u8 {
                        damage(off as u64, "unknown record kind", false, &mut rec);
                        break;
                    }
                    let Some(batch) = record::parse_batch(&payload) else {
                        damage(off as u64, "malformed batch payload", false, &mut rec);
                        break;
                    };
                    sink(
                        Replay::Batch {
                            commands: batch,
                            pos: Some(RecordPos {
                                segment: *number,
                                offset: off as u64,
                            }),
                        },
                        len as u64,
                    )
                    .map_err(|e| match e {
                        StorageError::Malformed(reason) => StorageError::Corrupted {
                            file: path.clone(),
                            offset: off as u64,
                            reason,
                            dir: dir.to_path_buf(),
                        },
                        e => e,
                    })?;
                    rec.bytes += len as u64;
                    off += len;
                }
                Decoded::Incomplete => {
                    damage(off as u64, "record cut short", last, &mut rec);
                    break;
                }
                Decoded::Invalid(reason) => {
                    // The last record of the newest segment may be a torn write whose
                    // length made it to disk before its payload.
                    let n = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                    let reaches_end = off + HEADER_LEN + n >= data.len();
                    damage(off as u64, reason, last && reaches_end, &mut rec);
                    break;
                }
            }
        }
        rec.segments.push(SegmentFile {
            number: *number,
            path: path.clone(),
            valid_len: off as u64,
        });
        if rec.damage.is_some() {
            return Ok(rec);
        }
    }
    Ok(rec)
}

/// Deletes files a checkpoint made obsolete that a crash left behind.
pub fn remove_obsolete(dir: &Path, rec: &Recovered) -> Result<(), StorageError> {
    for p in &rec.obsolete {
        fs::remove_file(p).map_err(|e| StorageError::io(p, e))?;
    }
    if !rec.obsolete.is_empty() {
        fs::File::open(log_dir(dir))
            .and_then(|d| d.sync_all())
            .map_err(|e| StorageError::io(log_dir(dir), e))?;
    }
    Ok(())
}

/// Cuts the log at the damage: truncates the damaged file and removes later segments.
pub fn apply_truncation(damage: &Damage) -> Result<(), StorageError> {
    let f = fs::OpenOptions::new()
        .write(true)
        .open(&damage.file)
        .map_err(|e| StorageError::io(&damage.file, e))?;
    let keep = if damage.offset == 0 { 0 } else { damage.offset };
    f.set_len(keep)
        .map_err(|e| StorageError::io(&damage.file, e))?;
    f.sync_all()
        .map_err(|e| StorageError::io(&damage.file, e))?;
    if keep == 0 {
        fs::remove_file(&damage.file).map_err(|e| StorageError::io(&damage.file, e))?;
    }
    for p in &damage.later_segments {
        fs::remove_file(p).map_err(|e| StorageError::io(p, e))?;
    }
    Ok(())
}
