//! Each shard a Raft group (tikv/raft-rs, crate `raft` 0.7): design scale-out.md §3.
//! So far only the Raft log's storage (`storage.rs`); the driver, transport and snapshots
//! are later steps.

pub mod storage;
pub mod transport;
