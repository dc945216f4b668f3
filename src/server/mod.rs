//! The TCP and TLS front: listeners and admission, one task per connection, active expiry,
//! graceful shutdown. The state every connection shares (`core::Shared`) is the
//! execution core's.

pub mod connection;
pub mod cores;
pub mod executor;
pub mod handoff;
pub mod heap;
pub mod listener;
pub mod metrics;
pub mod notify;
pub mod replication;
pub mod tls;

pub use listener::run;
