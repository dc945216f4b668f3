//! The stream engine: IDs, the per-stream index, consumer groups and their PELs.
//!
//! Nothing here knows RESP or sockets: the command layer turns engine results into replies.

pub mod codec;
pub mod error;
pub mod group;
pub mod id;
pub mod index;
pub mod keyspace;
pub mod payload;
pub mod rax;
pub mod stream;
