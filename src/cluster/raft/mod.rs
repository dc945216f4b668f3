//! Each shard a Raft group (tikv/raft-rs, crate `raft` 0.7): design scale-out.md §3.
//! `storage.rs` is raft-rs's storage over the Rill log (step C); `node.rs` the hosted group
//! (its `RawNode` behind a mutex, proposals, the `committed` watch) and `driver.rs` its
//! Ready loop, run where the log's group commit runs (step D, a group of one voter:
//! `cluster-raft yes`); `group.rs` groups of several voters (step F in process: peer
//! messages through a `MessageSink`, followers writing and applying committed entries
//! through the replay path); `transport.rs` the authenticated peer links between a group's
//! replicas (step E, with the snapshot file fetch); `read.rs` batched ReadIndex;
//! `membership.rs` membership changes and the snapshot a replica installs. The server hosts
//! the groups in `server/replication.rs`.

pub mod driver;
pub mod group;
pub mod membership;
pub mod node;
pub mod read;
pub mod storage;
pub mod transport;

pub use node::{Proposed, RaftError, RaftNode};
