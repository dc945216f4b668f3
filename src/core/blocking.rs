//! Clients blocked in XREAD/XREADGROUP, served in FIFO order per key.
//!
//! Serving happens on the writer's side, under the keyspace lock, right after the
//! command (or EXEC) that made a key ready — as Redis's `handleClientsBlockedOnKeys`
//! — so the first client to block is the first to see new entries, and a reply is
//! computed against exactly the state the write produced.
//!
//! A waiter may also have a wake time (XREADGROUP CLAIM: when a pending entry becomes idle
//! enough, which no write announces). Wake times are kept in one ordered index, and one
//! task ([`claim_timer_loop`]) sleeps until the earliest, retries the waiters that are due
//! and gives the ones still unserved their next wake time — a timer per due waiter, not a
//! poll of every blocked client (Redis 8.4's `handleClaimableStreamEntries`).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::oneshot;

use super::propagate::Propagation;
use super::{BlockedRead, Ctx};
use crate::core::Shared;
use crate::engine::hash::{KeyHash, U64Keys};
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
    /// When to retry even without a write (Unix ms), see [`BlockedRead::wake_at`].
    pub wake_ms: Option<u64>,
    /// A read a replica may serve: a read-only command from a client in READONLY mode
    /// (Redis's `clusterRedirectBlockedClientIfNeeded` keeps such a client waiting on a
    /// replica of the slot's shard).
    pub replica_read: bool,
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
    waiters: HashMap<u64, Waiter, U64Keys>,
    by_key: HashMap<(usize, Bytes), VecDeque<u64>, KeyHash>,
    by_client: HashMap<u64, u64, U64Keys>,
    /// (wake time, waiter id) of waiters with a wake time.
    timers: BTreeSet<(u64, u64)>,
    /// Wakes [`claim_timer_loop`] when an earlier wake time is registered.
    timer_notify: Arc<tokio::sync::Notify>,
    /// The number of waiters, shared with the keyspace, which signals ready keys only
    /// while someone waits (see `Keyspace::gate_signals`).
    count: Arc<std::sync::atomic::AtomicUsize>,
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
        if let Some(at) = waiter.wake_ms {
            self.set_timer(id, at);
        }
        self.waiters.insert(id, waiter);
        self.count
            .store(self.waiters.len(), std::sync::atomic::Ordering::Relaxed);
        id
    }

    /// The waiter count the keyspace gates its signals on.
    pub fn count_handle(&self) -> Arc<std::sync::atomic::AtomicUsize> {
        self.count.clone()
    }

    /// Registers (or moves) the wake time of waiter `id`.
    fn set_timer(&mut self, id: u64, at: u64) {
        let earliest = self.timers.first().map(|(t, _)| *t);
        self.timers.insert((at, id));
        if earliest.is_none_or(|t| at < t) {
            self.timer_notify.notify_one();
        }
    }

    /// The earliest wake time of any waiter (Unix ms).
    pub fn next_wake(&self) -> Option<u64> {
        self.timers.first().map(|(t, _)| *t)
    }

    /// What [`claim_timer_loop`] waits on.
    pub fn timer_notify(&self) -> Arc<tokio::sync::Notify> {
        self.timer_notify.clone()
    }

    /// Takes the waiters whose wake time is at or before `now_ms` off the timer index.
    fn take_due(&mut self, now_ms: u64) -> Vec<u64> {
        let mut due = Vec::new();
        while let Some(&(at, id)) = self.timers.first() {
            if at > now_ms {
                break;
            }
            self.timers.remove(&(at, id));
            if let Some(w) = self.waiters.get_mut(&id) {
                w.wake_ms = None;
                due.push(id);
            }
        }
        due
    }

    /// Removes a waiter (served, timed out, disconnected or unblocked).
    pub fn remove(&mut self, id: u64) -> Option<Waiter> {
        let w = self.waiters.remove(&id)?;
        self.count
            .store(self.waiters.len(), std::sync::atomic::Ordering::Relaxed);
        if let Some(at) = w.wake_ms {
            self.timers.remove(&(at, id));
        }
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

    /// Removes and returns the waiters `pred` picks (e.g. cluster mode: those whose keys'
    /// slot this node no longer serves).
    pub fn take_where(&mut self, mut pred: impl FnMut(&Waiter) -> bool) -> Vec<Waiter> {
        let ids: Vec<u64> = self
            .waiters
            .iter()
            .filter(|(_, w)| pred(w))
            .map(|(id, _)| *id)
            .collect();
        ids.into_iter().filter_map(|id| self.remove(id)).collect()
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
                    reply_room: u64::MAX,
                    over_limit: false,
                };
                let served = match w.retry.try_serve(&mut ctx) {
                    Ok(None) => {
                        // Still waiting: what it waits for may have moved (a CLAIM read's
                        // oldest pending entry acknowledged, say).
                        let wake = w.retry.wake_at(&mut ctx);
                        table.reschedule(id, wake);
                        continue;
                    }
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

impl BlockingTable {
    /// Gives waiter `id` a new wake time (or none).
    fn reschedule(&mut self, id: u64, wake: Option<u64>) {
        let Some(w) = self.waiters.get_mut(&id) else {
            return;
        };
        let old = std::mem::replace(&mut w.wake_ms, wake);
        if old == wake {
            return;
        }
        if let Some(at) = old {
            self.timers.remove(&(at, id));
        }
        if let Some(at) = wake {
            self.set_timer(id, at);
        }
    }
}

/// Retries the waiters whose wake time has come, in wake-time order; each one served gets
/// its reply, each one still unserved its next wake time. Then serves readers on keys the
/// retries signalled, as after any command.
pub fn serve_due(
    ks: &mut Keyspace,
    table: &mut BlockingTable,
    props: &mut Propagation,
    shared: &Shared,
    now_ms: u64,
) {
    for id in table.take_due(now_ms) {
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
            reply_room: u64::MAX,
            over_limit: false,
        };
        let served = match w.retry.try_serve(&mut ctx) {
            Ok(None) => {
                let wake = w.retry.wake_at(&mut ctx);
                table.reschedule(id, wake);
                continue;
            }
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
    serve_ready(ks, table, props, shared, now_ms);
}

/// Serves blocked reads that have a wake time (XREADGROUP … BLOCK … CLAIM) when it comes.
///
/// Sleeps until the earliest wake time, or until an earlier one is registered; then, under
/// the keyspace lock, retries the due waiters and commits what they delivered as one record
/// (the served clients' replies wait for it to be durable, as any reader's do).
pub async fn claim_timer_loop(shared: Arc<Shared>) {
    let notify = shared.state.lock().blocking.timer_notify();
    loop {
        let next = shared.state.lock().blocking.next_wake();
        let Some(at) = next else {
            notify.notified().await;
            continue;
        };
        let now = crate::core::now_ms();
        if at > now {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(at - now)) => {}
                _ = notify.notified() => {}
            }
            continue;
        }
        if shared.is_loading() {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        let mut guard = shared.state.lock();
        let state = &mut *guard;
        let now = crate::core::now_ms();
        serve_due(
            &mut state.ks,
            &mut state.blocking,
            &mut state.props,
            &shared,
            now,
        );
        crate::core::propagate::log_expired(
            &mut state.ks,
            &mut state.props,
            0,
            shared
                .notify_flags
                .load(std::sync::atomic::Ordering::Relaxed),
        );
        if let Err(e) = crate::core::commit(&shared, state) {
            tracing::warn!("Could not log the deliveries of blocked CLAIM reads: {}", e);
        }
    }
}
