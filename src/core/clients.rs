//! The client registry: what CLIENT LIST/KILL/INFO and INFO clients see of every
//! connection, and how one connection asks another to close.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use dashmap::DashMap;
use parking_lot::Mutex;
use tokio::sync::Notify;

/// The shared, observable part of a connection.
#[derive(Debug)]
pub struct ClientInfo {
    /// Unique, increasing id.
    pub id: u64,
    /// Peer address.
    pub addr: SocketAddr,
    /// Local address.
    pub laddr: SocketAddr,
    /// When the connection was accepted.
    pub created: Instant,
    /// CLIENT SETNAME.
    pub name: Mutex<Bytes>,
    /// CLIENT SETINFO LIB-NAME.
    pub lib_name: Mutex<Bytes>,
    /// CLIENT SETINFO LIB-VER.
    pub lib_ver: Mutex<Bytes>,
    /// Selected database.
    pub db: AtomicUsize,
    /// Protocol version.
    pub resp: AtomicU8,
    /// Milliseconds since `created` of the last command (for `idle=`).
    pub last_interaction_ms: AtomicU64,
    /// Last command name.
    pub last_cmd: Mutex<&'static str>,
    /// Inside MULTI (flag `x`).
    pub in_multi: AtomicBool,
    /// Number of queued MULTI commands.
    pub multi_len: AtomicUsize,
    /// Number of WATCHed keys.
    pub watch_len: AtomicUsize,
    /// CLIENT NO-EVICT.
    pub no_evict: AtomicBool,
    /// Pub/Sub channels, patterns and shard channels subscribed (`sub=`, `psub=`, `ssub=`).
    pub subscriptions: [AtomicUsize; 3],
    /// The ACL user it is authenticated as (`user=`; CLIENT KILL USER, ACL DELUSER).
    pub user: Mutex<Bytes>,
    /// Set by CLIENT KILL; the connection closes as soon as it sees it.
    pub killed: AtomicBool,
    /// Wakes the connection task to notice `killed`.
    pub kill_notify: Notify,
}

impl ClientInfo {
    /// Records a command for `idle=` and `cmd=`.
    pub fn touch(&self, cmd: &'static str, now: std::time::Instant) {
        // `now` is the time the command's execution already read: a second clock read
        // per command showed in profiles.
        self.last_interaction_ms.store(
            now.saturating_duration_since(self.created).as_millis() as u64,
            Ordering::Relaxed,
        );
        *self.last_cmd.lock() = cmd;
    }

    /// Seconds since the last command.
    pub fn idle_secs(&self) -> u64 {
        let now = self.created.elapsed().as_millis() as u64;
        now.saturating_sub(self.last_interaction_ms.load(Ordering::Relaxed)) / 1000
    }

    /// Redis's `connIsLocal`: the peer is a loopback address (`127.*`, `::1`). `addr` is
    /// registered in its canonical form (a mapped `::ffff:127.0.0.1` as `127.0.0.1`).
    pub fn is_local(&self) -> bool {
        self.addr.ip().is_loopback()
    }

    /// True with at least one Pub/Sub subscription (Redis's `pubsub` client type).
    pub fn is_pubsub(&self) -> bool {
        self.subscriptions
            .iter()
            .any(|n| n.load(Ordering::Relaxed) > 0)
    }

    /// Asks the connection to close.
    pub fn kill(&self) {
        self.killed.store(true, Ordering::SeqCst);
        self.kill_notify.notify_one();
    }

    /// One line of CLIENT LIST / CLIENT INFO, in Redis's field order.
    pub fn describe(&self, blocked: bool) -> String {
        let mut flags = String::new();
        let [sub, psub, ssub] = self
            .subscriptions
            .each_ref()
            .map(|n| n.load(Ordering::Relaxed));
        if sub + psub + ssub > 0 {
            flags.push('P');
        }
        if self.in_multi.load(Ordering::Relaxed) {
            flags.push('x');
        }
        if blocked {
            flags.push('b');
        }
        if self.no_evict.load(Ordering::Relaxed) {
            flags.push('e');
        }
        if flags.is_empty() {
            flags.push('N');
        }
        let multi = if self.in_multi.load(Ordering::Relaxed) {
            self.multi_len.load(Ordering::Relaxed) as i64
        } else {
            -1
        };
        format!(
            "id={} addr={} laddr={} fd=8 name={} age={} idle={} flags={} db={} sub={} psub={} ssub={} multi={} watch={} qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=1024 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd={} user={} redir=-1 resp={} lib-name={} lib-ver={}",
            self.id,
            self.addr,
            self.laddr,
            String::from_utf8_lossy(&self.name.lock()),
            self.created.elapsed().as_secs(),
            self.idle_secs(),
            flags,
            self.db.load(Ordering::Relaxed),
            sub,
            psub,
            ssub,
            multi,
            self.watch_len.load(Ordering::Relaxed),
            self.last_cmd.lock(),
            String::from_utf8_lossy(&self.user.lock()),
            self.resp.load(Ordering::Relaxed),
            String::from_utf8_lossy(&self.lib_name.lock()),
            String::from_utf8_lossy(&self.lib_ver.lock()),
        )
    }
}

/// All live connections.
#[derive(Debug, Default)]
pub struct Registry {
    next_id: AtomicU64,
    clients: DashMap<u64, Arc<ClientInfo>>,
}

impl Registry {
    /// Registers a new connection and returns its info.
    pub fn register(&self, addr: SocketAddr, laddr: SocketAddr) -> Arc<ClientInfo> {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst) + 1;
        let info = Arc::new(ClientInfo {
            id,
            addr,
            laddr,
            created: Instant::now(),
            name: Mutex::new(Bytes::new()),
            lib_name: Mutex::new(Bytes::new()),
            lib_ver: Mutex::new(Bytes::new()),
            db: AtomicUsize::new(0),
            resp: AtomicU8::new(2),
            last_interaction_ms: AtomicU64::new(0),
            last_cmd: Mutex::new("NULL"),
            in_multi: AtomicBool::new(false),
            multi_len: AtomicUsize::new(0),
            watch_len: AtomicUsize::new(0),
            no_evict: AtomicBool::new(false),
            subscriptions: Default::default(),
            user: Mutex::new(Bytes::from_static(b"default")),
            killed: AtomicBool::new(false),
            kill_notify: Notify::new(),
        });
        self.clients.insert(id, info.clone());
        info
    }

    /// Forgets a closed connection.
    pub fn unregister(&self, id: u64) {
        self.clients.remove(&id);
    }

    /// Number of connections.
    pub fn len(&self) -> usize {
        self.clients.len()
    }

    /// True when no client is connected.
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// A client by id. A killed client is gone for every command at once, as Redis frees it
    /// synchronously, even if its task has not deregistered yet.
    pub fn get(&self, id: u64) -> Option<Arc<ClientInfo>> {
        self.clients
            .get(&id)
            .map(|c| c.clone())
            .filter(|c| !c.killed.load(Ordering::SeqCst))
    }

    /// All live clients, ordered by id (CLIENT LIST order); killed ones are left out.
    pub fn snapshot(&self) -> Vec<Arc<ClientInfo>> {
        let mut v: Vec<_> = self
            .clients
            .iter()
            .filter(|c| !c.killed.load(Ordering::SeqCst))
            .map(|c| c.clone())
            .collect();
        v.sort_by_key(|c| c.id);
        v
    }

    /// Asks every client to close (shutdown).
    pub fn kill_all(&self) {
        for c in self.clients.iter() {
            c.kill();
        }
    }
}
