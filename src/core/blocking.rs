//! Clients blocked in XREAD/XREADGROUP, served in FIFO order per key.
//!
//! Serving happens on the writer's side, under the keyspace lock, right after the
//! command (or EXEC) that made a key ready — as Redis's `handleClientsBlockedOnKeys`
//! — so the first client to block is the first to see new entries, and a reply is
//! computed against exactly the state the write produced.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;
use tokio::sync::oneshot;

use super::propagate::Propagation;
use super::{BlockedRead, Ctx};
use crate::core::Shared;
use crate::engine::keyspace::Keyspace;
use crate::protocol::Reply;

/// One blocked client.
pub struct Waiter {
    /// The blocked client's id (CLIENT UNBLOCK, disconnect clean-up).
    pub client_id: u64,
    /// The blocked command's full name, whose failed calls an error ending the wait counts.
    pub command: &'static str,
    /// The database the command ran in.
    pub db: usize,
    /// The client's protocol version, for reply shapes.
    pub proto: u8,
    /// The keys it waits on.
    pub keys: Vec<Bytes>,
    /// How to retry the read.
    pub retry: Box<dyn BlockedRead>,
    /// Where the reply goes.
    pub tx: oneshot::Sender<Reply>,
}

impl Waiter {
    /// Ends the wait with an error, counted as Redis's `updateStatsOnUnblock` counts it:
    /// an error reply (errorstats, `total_error_replies`) and a failed call of the
    /// blocked command (its call was counted when it blocked).
    pub fn fail(self, shared: &Shared, text: String) {
        shared.stats.record_error(&text);
        shared.stats.record_failed(self.command);
        // The receiver is gone only if the client disconnected meanwhile.
        let _ = self.tx.send(Reply::error(text));
    }
}

/// All blocked clients, indexed by key (FIFO) and by client.
#[derive(Default)]
pub struct BlockingTable {
    next_id: u64,
    waiters: HashMap<u64, Waiter>,
    by_key: HashMap<(usize, Bytes), VecDeque<u64>>,
    by_client: HashMap<u64, u64>,
}

impl std::fmt::Debug for BlockingTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingTable")
            .field("waiters", &self.waiters.len())
            .finish()
    }
}

impl BlockingTable {
    /// Number of blocked clients (INFO `blocked_clients`).
    pub fn len(&self) -> usize {
        self.waiters.len()
    }

    /// True when no client is blocked.
    pub fn is_empty(&self) -> bool {
        self.waiters.is_empty()
    }

    /// True when `client_id` is blocked.
    pub fn is_blocked(&self, client_id: u64) -> bool {
        self.by_client.contains_key(&client_id)
    }

    /// Registers a waiter at the back of each of its keys' queues; returns its id.
    pub fn add(&mut self, waiter: Waiter) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        for key in &waiter.keys {
            self.by_key
                .entry((waiter.db, key.clone()))
                .or_default()
                .push_back(id);
        }
        self.by_client.insert(waiter.client_id, id);
        self.waiters.insert(id, waiter);
        id
    }

    /// Removes a waiter (served, timed out, disconnected or unblocked).
    pub fn remove(&mut self, id: u64) -> Option<Waiter> {
        let w = self.waiters.remove(&id)?;
        for key in &w.keys {
            let k = (w.db, key.clone());
            if let Some(q) = self.by_key.get_mut(&k) {
                q.retain(|&x| x != id);
                if q.is_empty() {
                    self.by_key.remove(&k);
                }
            }
        }
        self.by_client.remove(&w.client_id);
        Some(w)
    }

    /// Removes the waiter of `client_id`, if that client is blocked.
    pub fn remove_client(&mut self, client_id: u64) -> Option<Waiter> {
        let id = *self.by_client.get(&client_id)?;
        self.remove(id)
    }
}

/// Serves blocked clients on every key signalled ready, until no key is ready.
pub fn serve_ready(
    ks: &mut Keyspace,
    table: &mut BlockingTable,
    props: &mut Propagation,
    shared: &Shared,
    now_ms: u64,
) {
    // Serving a reader may signal keys again (XREADGROUP changes its group); the
    // bound only guards against a handler that would signal forever.
    for _ in 0..64 {
        let ready = ks.take_ready();
        if ready.is_empty() {
            return;
        }
        if table.is_empty() {
            continue;
        }
        for (db, key) in ready {
            let Some(queue) = table.by_key.get(&(db, key)) else {
                continue;
            };
            let ids: Vec<u64> = queue.iter().copied().collect();
            for id in ids {
                let Some(w) = table.waiters.get_mut(&id) else {
                    continue;
                };
                let mut ctx = Ctx {
                    ks,
                    shared,
                    db: w.db,
                    proto: w.proto,
                    client_id: w.client_id,
                    now_ms,
                    in_multi: false,
                    blocking: None,
                    props,
                };
                let served = match w.retry.try_serve(&mut ctx) {
                    Ok(None) => continue,
                    Ok(Some(reply)) => Ok(reply),
                    Err(e) => Err(e.to_string()),
                };
                if let Some(w) = table.remove(id) {
                    match served {
                        // The receiver is gone only if the client disconnected meanwhile.
                        Ok(reply) => drop(w.tx.send(reply)),
                        Err(text) => w.fail(shared, text),
                    }
                }
            }
        }
    }
}
