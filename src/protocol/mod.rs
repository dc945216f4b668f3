//! The RESP codec: request framing (RESP multibulk and inline commands, with size
//! limits) and reply encoding for RESP2 and RESP3.
//!
//! Nothing here knows what a command means; it only turns bytes into argument
//! vectors and replies into bytes.

pub mod reply;
pub mod request;

pub use reply::Reply;
pub use request::{ProtocolError, RequestDecoder};
