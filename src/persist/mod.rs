//! Persistence: what ties the keyspace to its log and checkpoints — start-up's replay, the
//! reader of the older (format-1) log, checkpoints and compaction, and their schedule.
//!
//! The command layer only executes commands: it applies ops and hands the critical section's
//! record to the log. Everything that reads the log back, or rewrites it, is here. Below it,
//! `storage` knows files, records and checksums; `engine` knows what an op does.

pub mod checkpoint;
pub mod format1;
pub mod replay;
