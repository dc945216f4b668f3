//! Rill: a Redis-compatible streams server.
//!
//! Bytes arrive on a TCP connection (`server`), are framed into requests
//! (`protocol`), parsed into typed commands and executed (`commands`) against the
//! keyspace and the stream engine (`engine`). Replies flow back up the same way.
//! Every change is a typed op the log (`storage`) records; `persist` reads the log
//! back at start-up and writes checkpoints.

pub mod check;
pub mod cluster;
pub mod cluster_cli;
pub mod commands;
pub mod config;
pub mod core;
pub mod engine;
#[cfg(feature = "fuzzing")]
pub mod fuzz;
pub mod glob;
pub mod histogram;
pub mod persist;
pub mod progress;
pub mod protocol;
pub mod server;
pub mod storage;
pub mod syntax;
pub mod tls;
