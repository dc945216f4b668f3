//! The stream engine: IDs, the per-stream index, consumer groups and their PELs.
//!
//! Nothing here knows RESP or sockets: the command layer turns engine results into replies.

pub mod chunkmap;
pub mod codec;
pub mod digest;
pub mod error;
pub mod group;
pub mod hash;
pub mod id;
pub mod idmp;
pub mod index;
pub mod keyspace;
pub mod observe;
pub mod op;
pub mod payload;
pub mod policy;
pub mod rax;
pub mod refs;
pub mod stream;
pub mod transfer;

/// A small deterministic xorshift64 generator for randomized unit tests: the same
/// seed gives the same history, so a failure replays.
#[cfg(test)]
pub(crate) fn test_rng(mut state: u64) -> impl FnMut() -> u64 {
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}
