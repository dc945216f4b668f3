//! The Pub/Sub registry: which clients listen on which channels, patterns and shard
//! channels, and the outlet through which a publisher hands each of them a message.
//!
//! No sockets here. A publish encodes its message once per protocol (RESP2 array, RESP3
//! push, with `protocol::reply::encode_push`) and appends the bytes to each subscriber's
//! [`Outlet`], as Redis appends to each client's reply buffer; the subscriber's
//! connection task, which waits on its outlet beside its socket, takes the whole buffer
//! at once. Publishers never block: they copy under the outlet's short lock and notify.
//!
//! Memory stays bounded by `client-output-buffer-limit pubsub`, counted on what the
//! subscriber holds undelivered (queued here plus unsent in its connection): a push that
//! would take it past the hard limit, or that finds it over the soft limit for longer
//! than the soft seconds, kills the subscriber instead, as Redis checks both limits each
//! time it adds to a client's reply list. The soft limit's clock lives in the outlet,
//! so the publisher and the subscriber's own connection (which checks it as it writes)
//! time the same excess.
//!
//! Matching patterns is Redis's glob (`crate::glob`), passed in by the caller (PUBLISH, keyspace
//! events), so the registry itself depends on no matching rule.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use tokio::sync::Notify;

use super::clients::ClientInfo;

/// Which namespace a subscription lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// SUBSCRIBE / PUBLISH.
    Channel,
    /// PSUBSCRIBE (glob patterns over the channels of PUBLISH).
    Pattern,
    /// SSUBSCRIBE / SPUBLISH (routed by slot in cluster mode).
    Shard,
}

/// Where a subscriber's deliveries wait for its connection task: already encoded in its
/// protocol, appended to one buffer, as Redis appends them to the client's reply buffer.
/// A publish costs each subscriber a copy of the encoded message under the outlet's
/// short lock (no allocation once the buffer has grown); the connection takes the whole
/// buffer at once ([`Outlet::take_into`]), by swapping it with its empty write buffer.
#[derive(Debug)]
pub struct Outlet {
    /// The subscriber (killed when it passes the hard limit; its `resp` is the protocol
    /// deliveries are encoded in).
    pub client: Arc<ClientInfo>,
    queue: Mutex<Queued>,
    /// Bytes in `queue`.
    queued: AtomicU64,
    /// Bytes the connection holds encoded but not yet written to the socket.
    unsent: AtomicU64,
    ready: Notify,
    /// Since when the undelivered bytes have been over the soft limit.
    /// (Nanoseconds since [`clock_base`] + 1; 0: not over it.) An atomic, not a lock:
    /// every push checks it.
    over_soft_since: AtomicU64,
}

/// What waits in an [`Outlet`].
#[derive(Debug, Default)]
struct Queued {
    /// The deliveries, encoded, oldest first.
    bytes: BytesMut,
    /// The newest log position they announce (a keyspace event's record): the
    /// subscriber's connection writes them only once the log is durable up to there.
    /// 0 when they announce nothing logged (PUBLISH).
    after: u64,
}

/// An outlet's buffer, once taken, and the registry's scratch buffers, once used, keep
/// their capacity up to this; a larger one (a burst to a slow subscriber, a large
/// message) goes back to the allocator.
const KEEP_CAPACITY: usize = 64 * 1024;

/// A `client-output-buffer-limit` class: hard bytes, soft bytes, soft seconds (0: none).
pub type Limits = (u64, u64, u64);

impl Outlet {
    /// An empty outlet for `client`.
    pub fn new(client: Arc<ClientInfo>) -> Arc<Outlet> {
        Arc::new(Outlet {
            client,
            queue: Mutex::new(Queued::default()),
            queued: AtomicU64::new(0),
            unsent: AtomicU64::new(0),
            ready: Notify::new(),
            over_soft_since: AtomicU64::new(0),
        })
    }

    /// The protocol (2 or 3) the subscriber's deliveries are encoded in.
    fn proto(&self) -> usize {
        usize::from(self.client.resp.load(Ordering::Relaxed) >= 3)
    }

    /// Whether the subscriber, holding `extra` bytes more than it does now, is over
    /// the hard limit or has been over the soft one for longer than its seconds.
    /// Starts (or resets) the soft limit's clock.
    pub fn over_limits(&self, extra: u64, (hard, soft, soft_secs): Limits) -> bool {
        let held =
            self.queued.load(Ordering::Relaxed) + self.unsent.load(Ordering::Relaxed) + extra;
        if hard > 0 && held > hard {
            return true;
        }
        if soft > 0 && held > soft {
            let now = clock_now();
            let since = match self.over_soft_since.compare_exchange(
                0,
                now,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => now,
                Err(since) => since,
            };
            Duration::from_nanos(now.saturating_sub(since)) > Duration::from_secs(soft_secs)
        } else {
            if self.over_soft_since.load(Ordering::Relaxed) != 0 {
                self.over_soft_since.store(0, Ordering::Relaxed);
            }
            false
        }
    }

    /// When the soft limit's time runs out, if the subscriber is over it.
    pub fn soft_deadline(&self, (_, _, soft_secs): Limits) -> Option<Instant> {
        match self.over_soft_since.load(Ordering::Relaxed) {
            0 => None,
            t => Some(clock_base() + Duration::from_nanos(t - 1) + Duration::from_secs(soft_secs)),
        }
    }

    /// Queues the encoded delivery `d` (announcing log position `after`) unless that
    /// would take the subscriber past its `limits` ([`Outlet::over_limits`]); then the
    /// subscriber is killed and `false` returned.
    fn push(&self, d: &[u8], after: u64, limits: Limits) -> bool {
        let size = d.len() as u64;
        if self.over_limits(size, limits) {
            if !self.client.killed.load(Ordering::SeqCst) {
                tracing::warn!(
                    "Client id={} addr={} closed for overcoming of output buffer limits (pubsub: {} bytes undelivered).",
                    self.client.id,
                    self.client.addr,
                    self.queued.load(Ordering::Relaxed) + self.unsent.load(Ordering::Relaxed) + size
                );
                self.client.kill();
            }
            return false;
        }
        let was_empty = {
            let mut q = self.queue.lock();
            let was_empty = q.bytes.is_empty();
            q.bytes.extend_from_slice(d);
            q.after = q.after.max(after);
            was_empty
        };
        self.queued.fetch_add(size, Ordering::Relaxed);
        // One wake per batch: while the queue is not empty, the connection has a
        // notification it has not acted on yet (a take empties the whole queue).
        if was_empty {
            self.ready.notify_one();
        }
        true
    }

    /// Moves every queued delivery to the end of `out` (by swapping buffers when `out`
    /// is empty) and returns the newest log position they announce (0: none), or `None`
    /// when nothing was queued.
    pub fn take_into(&self, out: &mut BytesMut) -> Option<u64> {
        let mut q = self.queue.lock();
        if q.bytes.is_empty() {
            return None;
        }
        if out.is_empty() {
            std::mem::swap(out, &mut q.bytes);
            if q.bytes.capacity() > KEEP_CAPACITY {
                q.bytes = BytesMut::new();
            }
        } else {
            out.extend_from_slice(&q.bytes);
            if q.bytes.capacity() > KEEP_CAPACITY {
                q.bytes = BytesMut::new();
            } else {
                q.bytes.clear();
            }
        }
        self.queued.store(0, Ordering::Relaxed);
        Some(std::mem::take(&mut q.after))
    }

    /// Waits until a delivery is queued (returns at once if one came since the last wait).
    pub async fn ready(&self) {
        self.ready.notified().await
    }

    /// Records how many encoded bytes the connection has not written yet.
    pub fn set_unsent(&self, bytes: u64) {
        self.unsent.store(bytes, Ordering::Relaxed);
    }

    fn live(&self) -> bool {
        !self.client.killed.load(Ordering::SeqCst)
    }
}

/// The instant the soft limit's clocks count from.
fn clock_base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

/// Now on the soft limit's clock: nanoseconds since [`clock_base`] + 1, never 0.
fn clock_now() -> u64 {
    let base = clock_base();
    u64::try_from(base.elapsed().as_nanos())
        .unwrap_or(u64::MAX - 1)
        .saturating_add(1)
}

type Subscribers = HashMap<u64, Arc<Outlet>>;

#[derive(Debug, Default)]
struct Maps {
    channels: HashMap<Bytes, Subscribers>,
    patterns: HashMap<Bytes, Subscribers>,
    shard: HashMap<Bytes, Subscribers>,
    /// Where a publish encodes its message, per protocol (RESP2, RESP3), before copying
    /// it to each subscriber: kept, so a publish allocates nothing.
    scratch: [BytesMut; 2],
}

/// One message encoded on demand, at most once per protocol, into the registry's scratch
/// buffers.
struct Encoded<'a> {
    scratch: &'a mut [BytesMut; 2],
    parts: &'a [&'a [u8]],
    done: [bool; 2],
}

impl<'a> Encoded<'a> {
    fn new(scratch: &'a mut [BytesMut; 2], parts: &'a [&'a [u8]]) -> Encoded<'a> {
        Encoded {
            scratch,
            parts,
            done: [false; 2],
        }
    }

    /// The message as a client of protocol `proto` (0: RESP2, 1: RESP3) receives it.
    fn get(&mut self, proto: usize) -> &[u8] {
        let buf = &mut self.scratch[proto];
        if !self.done[proto] {
            buf.clear();
            crate::protocol::reply::encode_push(if proto == 1 { 3 } else { 2 }, self.parts, buf);
            self.done[proto] = true;
        }
        buf
    }
}

impl Maps {
    fn of(&mut self, kind: Kind) -> &mut HashMap<Bytes, Subscribers> {
        match kind {
            Kind::Channel => &mut self.channels,
            Kind::Pattern => &mut self.patterns,
            Kind::Shard => &mut self.shard,
        }
    }
}

/// Every subscription of the server.
#[derive(Debug, Default)]
pub struct Registry {
    maps: Mutex<Maps>,
}

impl Registry {
    /// Adds `outlet`'s client to `name` (idempotent).
    pub fn subscribe(&self, kind: Kind, name: &Bytes, outlet: &Arc<Outlet>) {
        self.maps
            .lock()
            .of(kind)
            .entry(name.clone())
            .or_default()
            .insert(outlet.client.id, outlet.clone());
    }

    /// Removes `client` from `name`; the name goes when its last subscriber does.
    pub fn unsubscribe(&self, kind: Kind, name: &[u8], client: u64) {
        let mut maps = self.maps.lock();
        let map = maps.of(kind);
        if let Some(subs) = map.get_mut(name) {
            subs.remove(&client);
            if subs.is_empty() {
                map.remove(name);
            }
        }
    }

    /// Delivers `message` to the subscribers of `channel` (for `Channel`: also to the
    /// clients whose pattern `matches` it) and returns how many received it, as
    /// PUBLISH and SPUBLISH answer. `limits` are the pubsub class's.
    pub fn publish(
        &self,
        kind: Kind,
        channel: &Bytes,
        message: &Bytes,
        limits: Limits,
        matches: impl Fn(&[u8], &[u8]) -> bool,
    ) -> i64 {
        self.publish_after(kind, channel, message, limits, matches, 0)
    }

    /// [`Registry::publish`] of a message the subscribers may see only once the log is
    /// durable up to `after` (0: at once).
    pub fn publish_after(
        &self,
        kind: Kind,
        channel: &Bytes,
        message: &Bytes,
        limits: Limits,
        matches: impl Fn(&[u8], &[u8]) -> bool,
        after: u64,
    ) -> i64 {
        let mut maps = self.maps.lock();
        let Maps {
            channels,
            patterns,
            shard,
            scratch,
        } = &mut *maps;
        let mut receivers = 0;
        let direct = match kind {
            Kind::Shard => &*shard,
            _ => &*channels,
        };
        if direct.is_empty() && (kind != Kind::Channel || patterns.is_empty()) {
            return 0;
        }
        let first = match kind {
            Kind::Shard => &b"smessage"[..],
            _ => &b"message"[..],
        };
        if let Some(subs) = direct.get(channel) {
            let parts: [&[u8]; 3] = [first, channel, message];
            let mut encoded = Encoded::new(scratch, &parts);
            for outlet in subs.values().filter(|o| o.live()) {
                let d = encoded.get(outlet.proto());
                receivers += i64::from(outlet.push(d, after, limits));
            }
        }
        if kind == Kind::Channel {
            for (pattern, subs) in patterns.iter() {
                if !matches(pattern, channel) {
                    continue;
                }
                let parts: [&[u8]; 4] = [b"pmessage", pattern, channel, message];
                let mut encoded = Encoded::new(scratch, &parts);
                for outlet in subs.values().filter(|o| o.live()) {
                    let d = encoded.get(outlet.proto());
                    receivers += i64::from(outlet.push(d, after, limits));
                }
            }
        }
        // A large message's encoding is not kept for the next publish.
        for buf in scratch.iter_mut() {
            if buf.capacity() > KEEP_CAPACITY {
                *buf = BytesMut::new();
            }
        }
        receivers
    }

    /// The names with at least one live subscriber.
    pub fn names(&self, kind: Kind) -> Vec<Bytes> {
        self.maps
            .lock()
            .of(kind)
            .iter()
            .filter(|(_, subs)| subs.values().any(|o| o.live()))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// How many live clients subscribe to `name`.
    pub fn count(&self, kind: Kind, name: &[u8]) -> usize {
        self.maps
            .lock()
            .of(kind)
            .get(name)
            .map_or(0, |subs| subs.values().filter(|o| o.live()).count())
    }

    /// How many names have a live subscriber (INFO `pubsub_channels` …, PUBSUB NUMPAT).
    pub fn len(&self, kind: Kind) -> usize {
        self.maps
            .lock()
            .of(kind)
            .values()
            .filter(|subs| subs.values().any(|o| o.live()))
            .count()
    }

    /// One client's subscriptions of each kind (ACL: a subscriber whose channel permissions
    /// were revoked is disconnected). A scan of every name: ACL changes are rare.
    pub fn subscriptions_of(&self, client: u64) -> Vec<(Kind, Bytes)> {
        let mut maps = self.maps.lock();
        let mut out = Vec::new();
        for kind in [Kind::Channel, Kind::Pattern, Kind::Shard] {
            for (name, subs) in maps.of(kind).iter() {
                if subs.contains_key(&client) {
                    out.push((kind, name.clone()));
                }
            }
        }
        out
    }

    /// True when nobody subscribes to anything.
    pub fn is_empty(&self) -> bool {
        let mut maps = self.maps.lock();
        [Kind::Channel, Kind::Pattern, Kind::Shard]
            .iter()
            .all(|&k| maps.of(k).is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(id: u64) -> Arc<ClientInfo> {
        let reg = crate::core::clients::Registry::default();
        let addr = "127.0.0.1:1".parse().unwrap();
        let mut info = reg.register(addr, addr);
        while info.id < id {
            info = reg.register(addr, addr);
        }
        info
    }

    /// What waits in `o`, and the log position it announces.
    fn taken(o: &Outlet) -> (Vec<u8>, Option<u64>) {
        let mut out = BytesMut::new();
        let after = o.take_into(&mut out);
        (out.to_vec(), after)
    }

    #[test]
    fn publish_counts_channel_and_pattern_receivers() {
        let reg = Registry::default();
        let a = Outlet::new(client(1));
        let b = Outlet::new(client(2));
        reg.subscribe(Kind::Channel, &Bytes::from("news"), &a);
        reg.subscribe(Kind::Pattern, &Bytes::from("n*"), &b);
        reg.subscribe(Kind::Pattern, &Bytes::from("x*"), &b);
        let prefix = |p: &[u8], c: &[u8]| c.starts_with(&p[..p.len() - 1]);
        let n = reg.publish(
            Kind::Channel,
            &"news".into(),
            &"hi".into(),
            (0, 0, 0),
            prefix,
        );
        assert_eq!(n, 2);
        assert_eq!(
            taken(&a),
            (
                b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$2\r\nhi\r\n".to_vec(),
                Some(0)
            )
        );
        assert_eq!(
            taken(&b),
            (
                b"*4\r\n$8\r\npmessage\r\n$2\r\nn*\r\n$4\r\nnews\r\n$2\r\nhi\r\n".to_vec(),
                Some(0)
            )
        );
        assert_eq!(taken(&a), (Vec::new(), None));
        // A shard publish reaches only shard subscribers.
        assert_eq!(
            reg.publish(Kind::Shard, &"news".into(), &"hi".into(), (0, 0, 0), prefix),
            0
        );
        reg.unsubscribe(Kind::Channel, b"news", 1);
        reg.unsubscribe(Kind::Pattern, b"n*", 2);
        reg.unsubscribe(Kind::Pattern, b"x*", 2);
        assert!(reg.is_empty());
    }

    #[test]
    fn a_push_past_the_hard_limit_kills_the_subscriber() {
        let reg = Registry::default();
        let a = Outlet::new(client(1));
        reg.subscribe(Kind::Channel, &Bytes::from("c"), &a);
        let msg = Bytes::from(vec![b'x'; 100]);
        let never = |_: &[u8], _: &[u8]| false;
        assert_eq!(
            reg.publish(Kind::Channel, &"c".into(), &msg, (1000, 0, 0), never),
            1
        );
        a.set_unsent(900);
        assert_eq!(
            reg.publish(Kind::Channel, &"c".into(), &msg, (1000, 0, 0), never),
            0
        );
        assert!(a.client.killed.load(Ordering::SeqCst));
        assert_eq!(reg.count(Kind::Channel, b"c"), 0);
        // The first delivery only.
        assert_eq!(taken(&a).0.len(), 132);
    }

    #[test]
    fn queued_bytes_over_the_soft_limit_too_long_kill_the_subscriber() {
        let reg = Registry::default();
        let a = Outlet::new(client(1));
        reg.subscribe(Kind::Channel, &Bytes::from("c"), &a);
        let msg = Bytes::from(vec![b'x'; 100]);
        let never = |_: &[u8], _: &[u8]| false;
        // Soft 150 bytes for 1 s (a delivery here is 132 bytes): the first push stays under
        // it, the second starts the clock (queued, never taken by a connection), a push
        // after the second finds it run out.
        let soft = (0, 150, 1);
        assert_eq!(
            reg.publish(Kind::Channel, &"c".into(), &msg, soft, never),
            1
        );
        assert_eq!(a.soft_deadline(soft), None);
        assert_eq!(
            reg.publish(Kind::Channel, &"c".into(), &msg, soft, never),
            1
        );
        assert!(a.soft_deadline(soft).is_some());
        assert!(!a.client.killed.load(Ordering::SeqCst));
        std::thread::sleep(Duration::from_millis(1050));
        assert_eq!(
            reg.publish(Kind::Channel, &"c".into(), &msg, soft, never),
            0
        );
        assert!(a.client.killed.load(Ordering::SeqCst));
    }

    #[test]
    fn a_large_message_leaves_no_large_buffer_behind() {
        let reg = Registry::default();
        let a = Outlet::new(client(1));
        reg.subscribe(Kind::Channel, &Bytes::from("c"), &a);
        let big = Bytes::from(vec![b'x'; 1 << 20]);
        let never = |_: &[u8], _: &[u8]| false;
        assert_eq!(
            reg.publish(Kind::Channel, &"c".into(), &big, (0, 0, 0), never),
            1
        );
        assert!(reg
            .maps
            .lock()
            .scratch
            .iter()
            .all(|b| b.capacity() <= KEEP_CAPACITY));
        // Taken into a write buffer that already holds a reply: copied, then let go.
        let mut out = BytesMut::from(&b"+OK\r\n"[..]);
        assert_eq!(a.take_into(&mut out), Some(0));
        assert_eq!(out.len(), 5 + (1 << 20) + 36);
        assert!(a.queue.lock().bytes.capacity() <= KEEP_CAPACITY);
    }

    #[test]
    fn taking_the_queue_under_the_soft_limit_stops_its_clock() {
        let a = Outlet::new(client(1));
        let soft = (0, 150, 60);
        a.set_unsent(200);
        assert!(!a.over_limits(0, soft));
        assert!(a.soft_deadline(soft).is_some());
        a.set_unsent(10);
        assert!(!a.over_limits(0, soft));
        assert_eq!(a.soft_deadline(soft), None);
    }
}
