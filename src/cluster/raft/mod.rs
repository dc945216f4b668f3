//! Each shard a Raft group (tikv/raft-rs, crate `raft` 0.7): design scale-out.md §3.
//! `storage.rs` is raft-rs's storage over the Rill log (step C); `node.rs` the hosted group
//! (its `RawNode` behind a mutex, proposals, the `committed` watch) and `driver.rs` its
//! Ready loop, run where the log's group commit runs (step D, a group of one voter:
//! `cluster-raft yes`). Transport, follower apply and snapshots are later steps.

pub mod driver;
pub mod group;
pub mod node;
pub mod storage;

pub use node::{Proposed, RaftError, RaftNode};
