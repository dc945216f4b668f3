//! Rill: a Redis-compatible streams server.
//!
//! Bytes arrive on a TCP connection (`server`), are framed into requests
//! (`protocol`), parsed into typed commands and executed (`commands`) against the
//! keyspace and the stream engine (`engine`). Replies flow back up the same way.

pub mod check;
pub mod commands;
pub mod config;
pub mod engine;
#[cfg(feature = "fuzzing")]
pub mod fuzz;
pub mod protocol;
pub mod server;
pub mod storage;
pub mod syntax;
