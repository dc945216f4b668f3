//! Keyspace notifications (`notify-keyspace-events`): the events Redis's
//! `notifyKeyspaceEvent` publishes — `xadd`, `del`, `expired`, `rename_from` … — on
//! `__keyspace@<db>__:<key>` and `__keyevent@<db>__:<event>`.
//!
//! Commands emit events where Redis calls `notifyKeyspaceEvent` ([`Ctx::notify`]); the core
//! emits the ones Redis emits below the commands (`expired` for lazy and active expiry,
//! `xgroup-createconsumer` for a consumer a read or claim creates, `new` for a created key).
//! An event is queued with the critical section's ops and published once the section's
//! record is appended ([`super::commit`]), still under the keyspace lock, so subscribers see
//! events in execution order; each delivery carries the record's log position and the
//! subscriber's connection writes it only once that position is durable (as Redis writes
//! no output before its AOF fsync under `appendfsync always`). A section whose record the
//! log refused publishes nothing: what it announced did not happen.
//!
//! Replay (start-up recovery, Raft followers applying committed entries) applies ops to the
//! keyspace directly, never through a command or [`Ctx`], so it publishes nothing; the
//! format-1 replay that does run handlers sets `Propagation::replaying`, which
//! [`Ctx::notify`] honours.
//!
//! [`Ctx`]: super::Ctx
//! [`Ctx::notify`]: super::Ctx::notify

use bytes::{BufMut, Bytes, BytesMut};

pub use crate::config::keyspace_events::*;

use super::pubsub::Kind;
use super::Shared;

/// One event waiting for its critical section's record.
#[derive(Debug, Clone)]
pub struct KeyEvent {
    /// The database of the key.
    pub db: usize,
    /// The event's name (`xadd`, `expired` …), Redis's text.
    pub name: &'static str,
    /// The key.
    pub key: Bytes,
    /// `notify-keyspace-events` when it was emitted: which channels it goes to.
    pub flags: u32,
}

/// Whether an event of `class` is published under `flags` (its class is on, and at
/// least one of `K` and `E`).
pub fn wanted(flags: u32, class: u32) -> bool {
    flags & class != 0 && flags & (KEYSPACE | KEYEVENT) != 0
}

/// Publishes `events` to their channels' subscribers, to be written once the log is
/// durable up to `after` (0: at once).
pub fn publish(shared: &Shared, events: &[KeyEvent], after: u64) {
    if events.is_empty() || shared.pubsub.is_empty() {
        return;
    }
    let limits = shared.pubsub_output_limits();
    let matches = |p: &[u8], c: &[u8]| crate::glob::glob_match(p, c, false);
    for e in events {
        let name = Bytes::from_static(e.name.as_bytes());
        if e.flags & KEYSPACE != 0 {
            let channel = channel("__keyspace@", e.db, &e.key);
            shared
                .pubsub
                .publish_after(Kind::Channel, &channel, &name, limits, matches, after);
        }
        if e.flags & KEYEVENT != 0 {
            let channel = channel("__keyevent@", e.db, e.name.as_bytes());
            shared
                .pubsub
                .publish_after(Kind::Channel, &channel, &e.key, limits, matches, after);
        }
    }
}

/// `<prefix><db>__:<suffix>`.
fn channel(prefix: &str, db: usize, suffix: &[u8]) -> Bytes {
    let db = db.to_string();
    let mut out = BytesMut::with_capacity(prefix.len() + db.len() + 3 + suffix.len());
    out.put_slice(prefix.as_bytes());
    out.put_slice(db.as_bytes());
    out.put_slice(b"__:");
    out.put_slice(suffix);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_are_redis_s() {
        assert_eq!(&channel("__keyspace@", 0, b"s")[..], b"__keyspace@0__:s");
        assert_eq!(
            &channel("__keyevent@", 15, b"xadd")[..],
            b"__keyevent@15__:xadd"
        );
        assert!(wanted(KEYSPACE | STREAM, STREAM));
        assert!(!wanted(STREAM, STREAM));
        assert!(!wanted(KEYEVENT | GENERIC, STREAM));
        assert!(wanted(KEYEVENT | ALL, EXPIRED));
        assert!(!wanted(KEYEVENT | ALL, NEW));
    }
}
