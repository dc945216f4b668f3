//! The Pub/Sub registry: which clients listen on which channels, patterns and shard
//! channels, and the outlet through which a publisher hands each of them a message.
//!
//! No RESP and no sockets here. A delivery is a value (`Delivery`: kind, pattern,
//! channel, message, all refcounted `Bytes`, so a message published to a thousand
//! subscribers is stored once); the subscriber's connection task encodes it in its own
//! protocol (RESP2 array or RESP3 push) when it takes it from its [`Outlet`], which it
//! waits on beside its socket. Publishers never block: they push under the outlet's
//! short lock and notify.
//!
//! Memory stays bounded by `client-output-buffer-limit pubsub`, counted on what the
//! subscriber holds undelivered (queued here plus unsent in its connection): a push that
//! would take it past the hard limit, or that finds it over the soft limit for longer
//! than the soft seconds, kills the subscriber instead, as Redis checks both limits each
//! time it adds to a client's reply list. The soft limit's clock lives in the outlet,
//! so the publisher and the subscriber's own connection (which checks it as it writes)
//! time the same excess.
//!
//! Matching patterns is the command layer's glob (`commands::glob`), passed in by the
//! caller, since this layer sits below it.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
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

/// One message for one subscriber.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// `Channel` (`message`), `Pattern` (`pmessage`, with `pattern`) or `Shard` (`smessage`).
    pub kind: Kind,
    /// The pattern that matched, for `Pattern`.
    pub pattern: Option<Bytes>,
    /// The channel it was published to.
    pub channel: Bytes,
    /// The payload.
    pub message: Bytes,
}

impl Delivery {
    /// About what the delivery takes once encoded (RESP headers included), the unit the
    /// output limits count in.
    fn size(&self) -> u64 {
        let pattern = self.pattern.as_ref().map_or(0, |p| p.len() + 16);
        (self.channel.len() + self.message.len() + pattern + 48) as u64
    }
}

/// Where a subscriber's deliveries wait for its connection task.
#[derive(Debug)]
pub struct Outlet {
    /// The subscriber (killed when it passes the hard limit).
    pub client: Arc<ClientInfo>,
    queue: Mutex<VecDeque<Delivery>>,
    /// Bytes in `queue`.
    queued: AtomicU64,
    /// Bytes the connection holds encoded but not yet written to the socket.
    unsent: AtomicU64,
    ready: Notify,
    /// Since when the undelivered bytes have been over the soft limit.
    over_soft_since: Mutex<Option<Instant>>,
}

/// A `client-output-buffer-limit` class: hard bytes, soft bytes, soft seconds (0: none).
pub type Limits = (u64, u64, u64);

impl Outlet {
    /// An empty outlet for `client`.
    pub fn new(client: Arc<ClientInfo>) -> Arc<Outlet> {
        Arc::new(Outlet {
            client,
            queue: Mutex::new(VecDeque::new()),
            queued: AtomicU64::new(0),
            unsent: AtomicU64::new(0),
            ready: Notify::new(),
            over_soft_since: Mutex::new(None),
        })
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
        let mut since = self.over_soft_since.lock();
        if soft > 0 && held > soft {
            let t = *since.get_or_insert_with(Instant::now);
            t.elapsed() > Duration::from_secs(soft_secs)
        } else {
            *since = None;
            false
        }
    }

    /// When the soft limit's time runs out, if the subscriber is over it.
    pub fn soft_deadline(&self, (_, _, soft_secs): Limits) -> Option<Instant> {
        self.over_soft_since
            .lock()
            .map(|t| t + Duration::from_secs(soft_secs))
    }

    /// Queues `d` unless that would take the subscriber past its `limits`
    /// ([`Outlet::over_limits`]); then the subscriber is killed and `false` returned.
    fn push(&self, d: Delivery, limits: Limits) -> bool {
        let size = d.size();
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
        self.queue.lock().push_back(d);
        self.queued.fetch_add(size, Ordering::Relaxed);
        self.ready.notify_one();
        true
    }

    /// Takes every queued delivery, oldest first.
    pub fn take(&self) -> VecDeque<Delivery> {
        let taken = std::mem::take(&mut *self.queue.lock());
        self.queued.store(0, Ordering::Relaxed);
        taken
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

type Subscribers = HashMap<u64, Arc<Outlet>>;

#[derive(Debug, Default)]
struct Maps {
    channels: HashMap<Bytes, Subscribers>,
    patterns: HashMap<Bytes, Subscribers>,
    shard: HashMap<Bytes, Subscribers>,
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
        let maps = self.maps.lock();
        let mut receivers = 0;
        let direct = match kind {
            Kind::Shard => &maps.shard,
            _ => &maps.channels,
        };
        if let Some(subs) = direct.get(channel) {
            for outlet in subs.values().filter(|o| o.live()) {
                let d = Delivery {
                    kind,
                    pattern: None,
                    channel: channel.clone(),
                    message: message.clone(),
                };
                receivers += i64::from(outlet.push(d, limits));
            }
        }
        if kind == Kind::Channel {
            for (pattern, subs) in &maps.patterns {
                if !matches(pattern, channel) {
                    continue;
                }
                for outlet in subs.values().filter(|o| o.live()) {
                    let d = Delivery {
                        kind: Kind::Pattern,
                        pattern: Some(pattern.clone()),
                        channel: channel.clone(),
                        message: message.clone(),
                    };
                    receivers += i64::from(outlet.push(d, limits));
                }
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
        assert_eq!(a.take().len(), 1);
        let got = b.take();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].pattern.as_deref(), Some(&b"n*"[..]));
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
        assert_eq!(a.take().len(), 1);
    }

    #[test]
    fn queued_bytes_over_the_soft_limit_too_long_kill_the_subscriber() {
        let reg = Registry::default();
        let a = Outlet::new(client(1));
        reg.subscribe(Kind::Channel, &Bytes::from("c"), &a);
        let msg = Bytes::from(vec![b'x'; 100]);
        let never = |_: &[u8], _: &[u8]| false;
        // Soft 150 bytes for 1 s (a delivery here is 149): the first push stays under
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
