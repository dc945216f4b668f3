//! The execution core: what a command may touch, in one place — the shared server state and
//! the keyspace lock (`Shared`, `State`), the context a data command runs in (`Ctx`, whose
//! `apply` is the only way it changes data), the commit of a critical section's ops to the
//! log, blocked clients and their wake-ups, the client registry and INFO counters.
//!
//! Below `commands/` (which parses and executes) and `server/` (sockets); above `engine/` and
//! `storage/`. Nothing here knows a command's syntax or a socket.

pub mod acl;
pub mod blocking;
pub mod clients;
pub mod deadletter;
mod dirty;
pub mod error;
pub mod fdlimit;
pub mod keyspace_events;
pub mod password;
pub mod propagate;
pub mod pubsub;
pub mod stats;

use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use tokio::sync::Notify;

use crate::cluster::Cluster;
use crate::config::Config;
use crate::engine::keyspace::{Keyspace, ValueRef};
use crate::engine::op::{self, Applied, Op};
use crate::engine::payload::PayloadSource;
use crate::engine::stream::Stream;
use crate::protocol::Reply;
use crate::storage::reader::SegmentReader;
use crate::storage::record;
use crate::storage::Log;
use blocking::BlockingTable;
pub use error::CommandError;
use propagate::Propagation;

/// Everything guarded by the keyspace lock: data and blocked clients together, so
/// that a write and the serving of the readers it satisfies are one critical section.
#[derive(Debug)]
pub struct State {
    /// The databases.
    pub ks: Keyspace,
    /// Clients blocked on keys.
    pub blocking: BlockingTable,
    /// Log records queued by the current critical section.
    pub props: Propagation,
    /// Raft mode: the highest Raft index whose ops are in the keyspace (a leader's last
    /// proposal, a follower's last applied entry with ops), kept under this lock so a
    /// checkpoint's cut names exactly what it holds. 0 outside Raft mode.
    pub raft_index: u64,
}

/// Server-wide state shared by all connections.
pub struct Shared {
    /// Keyspace and blocked clients (one lock; see `State`).
    pub state: Mutex<State>,
    /// Live configuration (CONFIG SET changes it).
    pub config: RwLock<Config>,
    /// Connected clients.
    pub clients: clients::Registry,
    /// INFO counters.
    pub stats: stats::Stats,
    /// ACL users and the ACL log: node-local configuration, never logged or replicated.
    pub acl: acl::Acl,
    /// Pub/Sub subscriptions and their delivery outlets (its own lock, never the keyspace's).
    pub pubsub: pubsub::Registry,
    /// `notify-keyspace-events` as flags, read by every write that may emit an event (kept
    /// out of the config lock; CONFIG SET updates it through `apply_runtime_config`).
    pub notify_flags: AtomicU32,
    /// Process start, for `uptime_in_seconds`.
    pub started: Instant,
    /// 40 hex characters identifying this run (INFO `run_id`).
    pub run_id: String,
    /// The TCP port actually bound (differs from config when it was 0).
    pub port: AtomicU16,
    /// True while the data set is being loaded (clients get -LOADING).
    pub loading: AtomicBool,
    /// Log records to replay at start-up, and how many are done (INFO persistence).
    pub loading_total: std::sync::atomic::AtomicU64,
    /// Records replayed so far.
    pub loading_done: std::sync::atomic::AtomicU64,
    /// Set once shutdown has begun.
    pub shutting_down: AtomicBool,
    /// Set with a shutdown that must start the server again in this process (a deposed
    /// Raft leader rebuilding its keyspace from the log: `server::replication`).
    pub restart_after_shutdown: AtomicBool,
    /// Wakes the listener to begin shutdown.
    pub shutdown: Notify,
    /// The append log, set once recovery has replayed it (`get()` is `None` while
    /// loading, when nothing may be logged).
    pub log: std::sync::OnceLock<Log>,
    /// BGREWRITEAOF: asks the checkpoint task to write a checkpoint now.
    pub checkpoint_request: Notify,
    /// Set while a checkpoint is being written (INFO `aof_rewrite_in_progress`).
    pub checkpoint_in_progress: std::sync::atomic::AtomicBool,
    /// Log bytes written (since start) when the last checkpoint rolled the log.
    pub written_at_checkpoint: std::sync::atomic::AtomicU64,
    /// Reads entry payloads from the log segments (set before recovery).
    pub segments: std::sync::OnceLock<Arc<SegmentReader>>,
    /// Node id and shard map with `cluster-enabled yes`; `None` otherwise.
    pub cluster: Option<Cluster>,
    /// The Raft group this node hosts with `cluster-raft yes`, set once recovery has
    /// replayed and committed its log; `log` is then unset, and writes are proposed to it
    /// and acknowledged once committed (`cluster/raft`).
    pub raft: std::sync::OnceLock<Arc<crate::cluster::raft::RaftNode>>,
    /// The TLS contexts built from the `tls-*` directives (at start-up when TLS is in
    /// use, again by CONFIG SET of a `tls-*` directive).
    pub tls: crate::tls::TlsContext,
}

/// The engine's payload store reads through the segment reader.
impl PayloadSource for SegmentReader {
    fn read(&self, pos: u64, len: usize) -> Result<Vec<u8>, String> {
        let (segment, offset) = crate::storage::log::unpack_pos(pos);
        self.read_at(segment, offset, len)
            .map_err(|e| e.to_string())
    }

    fn written_pos(&self) -> u64 {
        SegmentReader::written_pos(self)
    }
}

impl Shared {
    /// Builds the shared state for `config`, persisting through `log` if given.
    pub fn new(config: Config, log: Option<Log>) -> Self {
        use rand::Rng;
        let mut rng = rand::thread_rng();
        let run_id: String = (0..40)
            .map(|_| std::char::from_digit(rng.gen_range(0..16), 16).unwrap_or('0'))
            .collect();
        let databases = config.databases as usize;
        let notify_flags = AtomicU32::new(config.notify_keyspace_events);
        let mut ks = Keyspace::new(databases);
        ks.payloads
            .set_budget(usize::try_from(config.cache_size).unwrap_or(usize::MAX));
        let blocking = BlockingTable::default();
        ks.gate_signals(blocking.count_handle());
        Shared {
            state: Mutex::new(State {
                ks,
                blocking,
                props: Propagation::default(),
                raft_index: 0,
            }),
            acl: acl::Acl::new(config.requirepass.as_deref()),
            config: RwLock::new(config),
            clients: clients::Registry::default(),
            stats: stats::Stats::default(),
            pubsub: pubsub::Registry::default(),
            notify_flags,
            started: Instant::now(),
            run_id,
            port: AtomicU16::new(0),
            loading: AtomicBool::new(false),
            loading_total: std::sync::atomic::AtomicU64::new(0),
            loading_done: std::sync::atomic::AtomicU64::new(0),
            shutting_down: AtomicBool::new(false),
            restart_after_shutdown: AtomicBool::new(false),
            shutdown: Notify::new(),
            log: match log {
                Some(l) => std::sync::OnceLock::from(l),
                None => std::sync::OnceLock::new(),
            },
            checkpoint_request: Notify::new(),
            checkpoint_in_progress: std::sync::atomic::AtomicBool::new(false),
            written_at_checkpoint: std::sync::atomic::AtomicU64::new(0),
            segments: std::sync::OnceLock::new(),
            cluster: None,
            raft: std::sync::OnceLock::new(),
            tls: crate::tls::TlsContext::default(),
        }
    }

    /// Serves in cluster mode with `cluster`'s id and map; keys are indexed by hash slot
    /// from now on (call before the data set loads).
    pub fn with_cluster(mut self, cluster: Cluster) -> Self {
        self.state
            .get_mut()
            .ks
            .enable_key_groups(crate::cluster::slot::key_slot);
        self.cluster = Some(cluster);
        self
    }

    /// Connects the payload store to the segment files of `dir` (before recovery).
    pub fn attach_segments(&self, dir: &std::path::Path) -> Arc<SegmentReader> {
        let reader = self
            .segments
            .get_or_init(|| Arc::new(SegmentReader::new(dir.to_path_buf())))
            .clone();
        self.state.lock().ks.payloads.set_source(reader.clone());
        reader
    }

    /// Redis's `authRequired` for a client that has not authenticated: the `default` user
    /// has a password (`requirepass`) or is `off`.
    pub fn requires_auth(&self) -> bool {
        !self.acl.default.is_open()
    }

    /// `client-output-buffer-limit normal`: (hard bytes, soft bytes, soft seconds).
    pub fn output_limits(&self) -> (u64, u64, u64) {
        let l = self.config.read().client_output_buffer_limit.normal;
        (l.hard_bytes, l.soft_bytes, l.soft_seconds)
    }

    /// `client-output-buffer-limit pubsub` (hard bytes, soft bytes, soft seconds): the
    /// class of a client with at least one subscription, as Redis's `getClientType`.
    pub fn pubsub_output_limits(&self) -> (u64, u64, u64) {
        let l = self.config.read().client_output_buffer_limit.pubsub;
        (l.hard_bytes, l.soft_bytes, l.soft_seconds)
    }

    /// True while loading the data set.
    pub fn is_loading(&self) -> bool {
        self.loading.load(Ordering::Relaxed)
    }

    /// `stream-node-max-entries` and `stream-node-max-bytes`.
    pub fn node_limits(&self) -> crate::engine::index::NodeLimits {
        let (entries, bytes) = self.stream_node_limits();
        crate::engine::index::NodeLimits {
            max_entries: entries as u64,
            max_bytes: bytes as u64,
        }
    }

    /// `stream-node-max-entries` and `stream-node-max-bytes`, as configured now.
    pub fn stream_node_limits(&self) -> (usize, usize) {
        let cfg = self.config.read();
        (
            cfg.stream_node_max_entries as usize,
            cfg.stream_node_max_bytes as usize,
        )
    }

    /// Pushes settings that live outside the config struct (the log's fsync policy
    /// and segment size) after CONFIG SET. (The cache size is pushed by CONFIG SET
    /// itself, which holds the keyspace.)
    pub fn apply_runtime_config(&self) {
        let cfg = self.config.read();
        self.notify_flags
            .store(cfg.notify_keyspace_events, Ordering::Relaxed);
        if let Some(log) = self.log.get() {
            log.set_policy(match cfg.appendfsync {
                crate::config::AppendFsync::Always => crate::storage::FsyncPolicy::Always,
                crate::config::AppendFsync::Everysec => crate::storage::FsyncPolicy::Everysec,
                crate::config::AppendFsync::No => crate::storage::FsyncPolicy::No,
            });
            log.set_segment_size(cfg.segment_size);
        }
    }

    /// Begins a graceful shutdown.
    pub fn begin_shutdown(&self) {
        if !self.shutting_down.swap(true, Ordering::SeqCst) {
            self.shutdown.notify_waiters();
            self.shutdown.notify_one();
        }
    }
}

/// What a data command sees while it runs: the locked keyspace and who is asking.
pub struct Ctx<'a> {
    /// All databases; locked for the whole command.
    pub ks: &'a mut Keyspace,
    /// Server-wide state: configuration, clients, statistics.
    pub shared: &'a Shared,
    /// The selected database.
    pub db: usize,
    /// The client's protocol version (2 or 3), for replies whose shape differs.
    pub proto: u8,
    /// The client's id.
    pub client_id: u64,
    /// The command's time, in Unix milliseconds (one clock reading per command, as Redis).
    pub now_ms: u64,
    /// True inside EXEC: blocking reads answer as a timeout instead of blocking.
    pub in_multi: bool,
    /// Blocked clients (CLIENT UNBLOCK, INFO); `None` while serving blocked clients.
    pub blocking: Option<&'a mut blocking::BlockingTable>,
    /// Ops queued for the log in this critical section.
    pub props: &'a mut propagate::Propagation,
    /// Most bytes of entry fields one reply may hold: the client's output buffer hard limit
    /// (`client-output-buffer-limit normal`), `u64::MAX` when there is none. A read whose
    /// reply would pass it stops reading payloads and sets `over_limit`.
    pub reply_room: u64,
    /// The reply passed `reply_room`: it is incomplete, and the client is closed without
    /// it, as Redis closes a client whose output passes the hard limit.
    pub over_limit: bool,
}

impl<'a> Ctx<'a> {
    /// A context for the server's own housekeeping in database `db` (sweeps, expiry): no
    /// client, RESP2, not in MULTI, never blocking, no reply limit.
    pub fn housekeeping(
        ks: &'a mut Keyspace,
        props: &'a mut Propagation,
        shared: &'a Shared,
        db: usize,
        now_ms: u64,
    ) -> Ctx<'a> {
        Ctx {
            ks,
            shared,
            db,
            proto: 2,
            client_id: 0,
            now_ms,
            in_multi: false,
            blocking: None,
            props,
            reply_room: u64::MAX,
            over_limit: false,
        }
    }
}

impl Ctx<'_> {
    /// The stream under `key`, `None` when the key does not exist, WRONGTYPE for another type.
    pub fn stream(&mut self, key: &[u8]) -> Result<Option<&Stream>, CommandError> {
        match self.ks.get(self.db, key, self.now_ms) {
            None => Ok(None),
            Some(ValueRef::Stream(s)) => Ok(Some(s)),
            Some(_) => Err(CommandError::WrongType),
        }
    }

    /// Applies a state change and queues it for the log (unless it changed nothing): the
    /// only way a command changes data (see `engine::op`). Fails only on a bug (the command checks what a client can
    /// get wrong first), and then nothing changed and nothing is logged.
    pub fn apply(&mut self, op: Op) -> Result<Applied, CommandError> {
        self.apply_counted(op, None)
    }

    /// As [`Ctx::apply`], adding `dirty` to the dirty counter instead of what the op alone
    /// implies (when set): for a command whose ops Redis counts as one change together,
    /// such as an XREADGROUP … CLAIM that claims and delivers on one stream (a consumer the
    /// op creates still counts one).
    pub fn apply_counted(
        &mut self,
        mut op: Op,
        dirty: Option<u64>,
    ) -> Result<Applied, CommandError> {
        let limits = self.shared.node_limits();
        // The stream whose group gains a consumer through this op, if it does.
        let consumer_on = self.consumer_missing(&op);
        let before = dirty::Before {
            created_consumer: consumer_on.is_some(),
            trims_own_append: self.trims_own_append(&op),
            flushed_keys: match op {
                Op::FlushDb => self.ks.db(self.db).len() as u64,
                Op::FlushAll => (0..self.ks.db_count())
                    .map(|d| self.ks.db(d).len() as u64)
                    .sum(),
                _ => 0,
            },
        };
        let creates = self.creates_key(&op);
        let applied = self
            .ks
            .apply(self.db, &mut op, limits)
            .map_err(|e| match e {
                // Checks the engine makes itself (XSETID's), with Redis's text.
                op::ApplyError::Stream(e) => CommandError::from(e),
                e => CommandError::Internal(e.to_string()),
            })?;
        if applied.changed() {
            // Replaying an old log is loading, which Redis does not count either.
            if !self.props.replaying {
                let changes = match dirty {
                    // The override replaces the op's own count; a consumer it created
                    // still counts.
                    Some(n) => n + u64::from(before.created_consumer),
                    None => dirty::changes(&op, &applied, before),
                };
                self.shared
                    .stats
                    .dirty
                    .fetch_add(changes, std::sync::atomic::Ordering::Relaxed);
            }
            // Redis's dbAdd says `new` and streamCreateConsumer `xgroup-createconsumer`,
            // below the commands that create keys and consumers.
            if let Some(key) = creates {
                self.notify(keyspace_events::NEW, "new", &key);
            }
            if let Some(key) = consumer_on {
                self.notify(keyspace_events::STREAM, "xgroup-createconsumer", &key);
            }
            self.props.push(
                self.db,
                creation_logged_as_such(op, before.created_consumer),
            );
        }
        Ok(applied)
    }

    /// The key `op` adds to the database, if it adds one (Redis's `dbAdd`): a stream or
    /// string stored where there was none, and a rename's destination (Redis deletes an
    /// existing destination and adds the key anew).
    fn creates_key(&self, op: &Op) -> Option<Bytes> {
        if !keyspace_events::wanted(self.notify_flags(), keyspace_events::NEW) {
            return None;
        }
        let absent = |key: &Bytes| (!self.ks.db(self.db).contains_raw(key)).then(|| key.clone());
        match op {
            Op::Append { key, .. } | Op::CreateStream { key } | Op::SetString { key, .. } => {
                absent(key)
            }
            Op::Rename { to, .. } => Some(to.clone()),
            _ => None,
        }
    }

    fn notify_flags(&self) -> u32 {
        self.shared.notify_flags.load(Ordering::Relaxed)
    }

    /// Emits keyspace event `name` of `class` for `key`, where Redis calls
    /// `notifyKeyspaceEvent`: published once the critical section's record is appended
    /// (see [`keyspace_events`]), not at all while replaying or when `notify-keyspace-events`
    /// leaves the class out.
    pub fn notify(&mut self, class: u32, name: &'static str, key: &[u8]) {
        let flags = self.notify_flags();
        if self.props.replaying || !keyspace_events::wanted(flags, class) {
            return;
        }
        self.props.events.push(keyspace_events::KeyEvent {
            db: self.db,
            name,
            key: Bytes::copy_from_slice(key),
            flags,
        });
    }

    /// `keymiss` for `key` (class `m`): a read found no key, as Redis's `lookupKeyRead`.
    pub fn key_miss(&mut self, key: &[u8]) {
        self.notify(keyspace_events::KEY_MISS, "keymiss", key);
    }

    /// Whether `op` is XADD's own trimming: a `Trim` right after an `Append` to its key
    /// by the same command.
    fn trims_own_append(&self, op: &Op) -> bool {
        let op = match op {
            Op::TrimEntries { key, .. } => key,
            Op::Trim { key, .. } => key,
            _ => return false,
        };
        let own = &self.props.ops[self.props.command_start.min(self.props.ops.len())..];
        // An XADD IDMP logs its IID record between the append and the trim.
        let last = own
            .iter()
            .rev()
            .find(|o| !matches!(o.op, Op::IdmpRecord { .. }));
        match (op, last) {
            (
                key,
                Some(op::LoggedOp {
                    db,
                    op: Op::Append { key: added, .. },
                }),
            ) => usize::from(*db) == self.db && added == key,
            _ => false,
        }
    }

    /// The stream of `op` when `op` names a consumer its group does not have yet (it will
    /// create it).
    fn consumer_missing(&mut self, op: &Op) -> Option<Bytes> {
        let (key, group, consumer) = match op {
            Op::ConsumerCreate {
                key,
                group,
                consumer,
                ..
            }
            | Op::Touch {
                key,
                group,
                consumer,
                ..
            }
            | Op::Deliver {
                key,
                group,
                consumer,
                ..
            }
            | Op::Redeliver {
                key,
                group,
                consumer,
                ..
            }
            | Op::Claim {
                key,
                group,
                consumer,
                ..
            }
            | Op::AutoClaim {
                key,
                group,
                consumer,
                ..
            } => (key, group, consumer),
            _ => return None,
        };
        let missing = match self.ks.get(self.db, key, self.now_ms) {
            Some(ValueRef::Stream(s)) => s
                .groups
                .get(&group[..])
                .is_some_and(|g| g.consumer(consumer).is_none()),
            _ => false,
        };
        missing.then(|| key.clone())
    }

    /// The payload store, to read entries' fields (a cheap handle: it is shared).
    pub fn store(&self) -> std::sync::Arc<crate::engine::payload::PayloadStore> {
        self.ks.payloads.clone()
    }

    /// `stream-node-max-entries` and `stream-node-max-bytes`, as currently configured.
    pub fn stream_node_limits(&self) -> (usize, usize) {
        self.shared.stream_node_limits()
    }

    /// Records that `key` changed: WATCHers' transactions will fail.
    ///
    /// Call it exactly where Redis calls `keyModified(…, 1)` (formerly `signalModifiedKey`).
    /// For streams that is when entries are added or deleted or the key is created: group and
    /// consumer changes (XACK, XCLAIM, XREADGROUP deliveries, XGROUP SETID …) are
    /// `keyModified(…, 0)` in Redis 8.6.3 and leave WATCH alone (tests/differential_watch.rs).
    pub fn signal_modified(&mut self, key: &[u8]) {
        self.ks.signal_modified(self.db, key);
    }

    /// Records that `key` may satisfy blocked readers; they are served after this command.
    /// Gives a stream just created under `key` the IDMP limits configured now
    /// (`stream-idmp-duration`, `stream-idmp-maxsize`), which each stream keeps as its own.
    /// Streams are created with Redis's defaults, so only a difference is logged, as its own
    /// op: replay then gets the same limits whatever the configuration is when it runs.
    pub fn configure_new_stream(&mut self, key: &Bytes) -> Result<(), CommandError> {
        let (duration_s, max_entries) = {
            let cfg = self.shared.config.read();
            (cfg.stream_idmp_duration, cfg.stream_idmp_maxsize)
        };
        // Part of creating the stream, which the command counts already.
        self.apply_counted(
            Op::IdmpConfig {
                key: key.clone(),
                duration_s,
                max_entries,
            },
            Some(0),
        )?;
        Ok(())
    }

    pub fn signal_ready(&mut self, key: &[u8]) {
        self.ks.signal_ready(self.db, key);
    }

    /// True while the log is being replayed at start-up (handlers must not depend on it,
    /// but may skip work that only matters to live clients).
    pub fn replaying(&self) -> bool {
        self.props.replaying
    }
}

/// How a blocked read is retried when one of its keys becomes ready.
pub trait BlockedRead: Send {
    /// Copies what it holds of the request (keys, group and consumer names) out of the
    /// connection's read buffer, which its `Bytes` slices would otherwise keep whole
    /// (16 KiB) for as long as the client waits. Called once, when the client blocks.
    fn detach(&mut self);

    /// Called under the keyspace lock, in FIFO order of blocking, each time one of
    /// the keys is signalled ready. `Ok(None)` keeps the client blocked.
    fn try_serve(&mut self, ctx: &mut Ctx<'_>) -> Result<Option<Reply>, CommandError>;

    /// When (Unix ms) to retry the read even if none of its keys is written: XREADGROUP
    /// CLAIM waits for a pending entry to become idle enough. `None`: only writes wake it.
    fn wake_at(&self, _ctx: &mut Ctx<'_>) -> Option<u64> {
        None
    }

    /// The reply when the deadline passes (or CLIENT UNBLOCK without ERROR).
    fn on_timeout(&self) -> Reply {
        Reply::NilArray
    }
}

/// A read that found nothing and wants to wait.
pub struct Blocked {
    /// Keys whose changes may satisfy the read.
    pub keys: Vec<Bytes>,
    /// Absolute deadline; `None` waits forever (BLOCK 0).
    pub deadline: Option<Instant>,
    /// How to retry.
    pub retry: Box<dyn BlockedRead>,
}

/// What a command handler produced.
pub enum Outcome {
    /// A reply to send now.
    Reply(Reply),
    /// Nothing yet: block the client.
    Block(Blocked),
}

impl From<Reply> for Outcome {
    fn from(r: Reply) -> Self {
        Outcome::Reply(r)
    }
}

/// A copy of `b` that shares no buffer (see [`BlockedRead::detach`]).
pub fn detached(b: &Bytes) -> Bytes {
    Bytes::copy_from_slice(b)
}

/// Current Unix time in milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The IDMP sweep at `now_ms`: every stream with IIDs due (by its own IDMP-DURATION) gets
/// an `IdmpExpire` op carrying `now_ms`, so replay forgets exactly what this forgot, in
/// the same place in the log. One lock hold and one record for all of them.
pub fn sweep_idmp(shared: &Shared, now_ms: u64) -> Result<(), CommandError> {
    let mut guard = shared.state.lock();
    let state = &mut *guard;
    if !state.ks.expires_locally() {
        // A replica forgets IIDs when its leader's logged sweep says so.
        return Ok(());
    }
    let due = state.ks.idmp_due(now_ms);
    if due.is_empty() {
        return Ok(());
    }
    for (db, key) in due {
        let mut ctx = Ctx::housekeeping(&mut state.ks, &mut state.props, shared, db, now_ms);
        // Expiry is housekeeping, not a change a client made: no dirty count.
        if let Err(e) = ctx.apply_counted(Op::IdmpExpire { key, now_ms }, Some(0)) {
            tracing::warn!("IDMP sweep: {e}");
        }
    }
    commit(shared, state).map(|_| ())
}

/// The server-wide retention defaults (`stream-retention-*`), as configured now.
pub fn retention_defaults(shared: &Shared) -> crate::engine::policy::RetentionDefaults {
    let cfg = shared.config.read();
    crate::engine::policy::RetentionDefaults {
        max_age_ms: cfg.stream_retention_max_age,
        max_bytes: cfg.stream_retention_max_bytes,
        max_len: cfg.stream_retention_max_len,
        refs: crate::engine::refs::RefPolicy::from_code(cfg.stream_retention_refs as u8)
            .unwrap_or_default(),
    }
}

/// The retention sweep at `now_ms` (broker policies, `engine::policy`): every stream over
/// its age, byte or length limit is trimmed by exact `Trim` ops, oldest entries first,
/// so replay and followers remove exactly these entries whatever their clock and
/// configuration. One lock hold and one record for all streams. Returns the entries
/// removed.
pub fn sweep_retention(shared: &Shared, now_ms: u64) -> Result<u64, CommandError> {
    let defaults = retention_defaults(shared);
    let mut guard = shared.state.lock();
    let state = &mut *guard;
    if !state.ks.expires_locally() {
        // A replica trims when its leader's logged sweep says so.
        return Ok(0);
    }
    let due = state.ks.retention_due(now_ms, &defaults);
    shared
        .stats
        .retention_sweeps
        .fetch_add(1, Ordering::Relaxed);
    if due.is_empty() {
        return Ok(0);
    }
    let mut removed = 0;
    for (db, key, trims) in due {
        let mut ctx = Ctx::housekeeping(&mut state.ks, &mut state.props, shared, db, now_ms);
        for spec in trims {
            // Housekeeping, as expiry: no dirty count.
            match ctx.apply_counted(
                Op::Trim {
                    key: key.clone(),
                    spec,
                },
                Some(0),
            ) {
                Ok(Applied::Count(n)) => removed += n,
                Ok(_) => {}
                Err(e) => tracing::warn!("retention sweep: {e}"),
            }
        }
    }
    shared
        .stats
        .retention_trimmed
        .fetch_add(removed, Ordering::Relaxed);
    commit(shared, state).map(|_| removed)
}

/// Entries one group may dead-letter per sweep (the rest wait for the next one), so a
/// sweep holds the keyspace lock for a bounded time.
const DEAD_LETTER_BATCH: usize = 1000;

/// The dead-letter sweep at `now_ms` (broker policies): in every group whose policy sets
/// MAXDELIVER, the entries whose delivery counter reached it and whose last delivery
/// failed (XNACKed, or unacknowledged for the group's ACKWAIT) move to the group's
/// dead-letter stream (see [`deadletter`]). One lock hold and one record for all of them.
/// Returns the entries moved.
pub fn sweep_dead_letters(shared: &Shared, now_ms: u64) -> Result<u64, CommandError> {
    let mut guard = shared.state.lock();
    let state = &mut *guard;
    if !state.ks.expires_locally() {
        return Ok(0);
    }
    state.ks.prune_nack_times();
    let due = state.ks.dead_letter_due(now_ms, DEAD_LETTER_BATCH);
    if due.is_empty() {
        return Ok(0);
    }
    let mut moved = 0;
    for d in due {
        let mut ctx = Ctx::housekeeping(&mut state.ks, &mut state.props, shared, d.db, now_ms);
        let doomed: Vec<deadletter::Doomed> = d
            .entries
            .into_iter()
            .map(|e| deadletter::Doomed {
                id: e.id,
                consumer: e.consumer,
                deliveries: e.delivery_count,
            })
            .collect();
        match deadletter::dead_letter(
            &mut ctx,
            &d.key,
            &d.group,
            &d.dead_letter,
            &doomed,
            deadletter::Reason::MaxDeliver,
        ) {
            Ok(n) => moved += n,
            Err(e) => tracing::warn!(
                "dead-letter sweep: {} group {}: {e}",
                String::from_utf8_lossy(&d.key),
                String::from_utf8_lossy(&d.group)
            ),
        }
    }
    shared
        .stats
        .dead_lettered
        .fetch_add(moved, Ordering::Relaxed);
    crate::core::blocking::serve_ready(
        &mut state.ks,
        &mut state.blocking,
        &mut state.props,
        shared,
        now_ms,
    );
    commit(shared, state).map(|_| moved)
}

/// Appends what the critical section queued for the log as one record (so it is
/// applied entirely or not at all on recovery) and returns the LSN every reply
/// that observed this state must wait for.
pub fn commit(shared: &Shared, state: &mut State) -> Result<u64, CommandError> {
    let committed = commit_ops(shared, state);
    let events = std::mem::take(&mut state.props.events);
    state.props.events_start = 0;
    // A record the log refused announces nothing: its events are dropped.
    if let Ok(lsn) = committed {
        keyspace_events::publish(shared, &events, lsn);
    }
    if events.capacity() <= 1024 {
        // Reused, as the ops' queue is.
        state.props.events = events;
        state.props.events.clear();
    }
    committed
}

/// [`commit`]'s log half: appends the queued ops as one record.
fn commit_ops(shared: &Shared, state: &mut State) -> Result<u64, CommandError> {
    let Some(log) = shared.log.get() else {
        // Raft mode has no plain log: its branch is off the single-node path.
        if let Some(raft) = shared.raft.get() {
            return propose(raft, state);
        }
        state.props.ops.clear();
        return Ok(0);
    };
    // What a reply must wait for: everything appended so far, and this section's own
    // record unless it holds only seen-time marks (see `Propagation::acknowledges_write`).
    let mut wait_for = log.appended_lsn();
    if !state.props.ops.is_empty() {
        let State { ks, props, .. } = state;
        let acknowledged = props.acknowledges_write();
        props.spans.clear();
        let appended = log
            .append_ops(|out| op::encode_into(&props.ops, out, &mut props.spans))
            .map(|(_, pos, ())| {
                // New entries now point at their payloads in the record; what stays
                // resident belonged to entries removed in the same critical section.
                ks.locate_payloads(
                    &props.ops,
                    &props.spans,
                    (pos.segment, pos.offset + record::OPS_AT),
                );
                ks.payloads.evict();
            });
        // The queue is reused (no allocation per command), unless a huge transaction grew it.
        if props.ops.capacity() > 4096 {
            props.ops = Vec::new();
        } else {
            props.ops.clear();
        }
        appended?;
        if acknowledged {
            wait_for = log.appended_lsn();
        }
    }
    Ok(wait_for)
}

/// [`commit`] in Raft mode: the critical section's ops become one Raft entry, proposed with
/// the keyspace lock still held (lock order keyspace → raft) and queued to the log at once,
/// so its payloads are located as an `Ops` record's are. Returns the Raft index every reply
/// that observed this state must wait for (the `committed` watch replaces the durable LSN).
/// A refused proposal is an error reply, never an acknowledgement: the node has stopped.
fn propose(raft: &crate::cluster::raft::RaftNode, state: &mut State) -> Result<u64, CommandError> {
    let mut wait_for = raft.executed();
    if state.props.ops.is_empty() {
        return Ok(wait_for);
    }
    let State { ks, props, .. } = state;
    let acknowledged = props.acknowledges_write();
    props.spans.clear();
    props.scratch.clear();
    op::encode_into(&props.ops, &mut props.scratch, &mut props.spans);
    let data = props.scratch[..].to_vec();
    if props.scratch.capacity() > 1 << 20 {
        // A huge transaction's buffer is not kept.
        props.scratch = bytes::BytesMut::new();
    }
    let proposed = raft.propose(data).map(|p| {
        ks.locate_payloads(
            &props.ops,
            &props.spans,
            (p.data_at.segment, p.data_at.offset),
        );
        ks.payloads.evict();
        p.index
    });
    if props.ops.capacity() > 4096 {
        props.ops = Vec::new();
    } else {
        props.ops.clear();
    }
    let index = proposed.map_err(CommandError::Raft)?;
    state.raft_index = index;
    if acknowledged {
        wait_for = index;
    }
    Ok(wait_for)
}

/// A `Touch` that created its consumer is logged as `ConsumerCreate` (the same state:
/// both create it with seen- and active-time `time_ms`), so the reply waits for it to
/// be durable: a consumer a client was told about (XINFO CONSUMERS, XPENDING, its later
/// reads) must survive a crash. A `Touch` of an existing consumer changes only its
/// seen-time, which no reply acknowledges ([`Propagation::acknowledges_write`]).
///
/// [`Propagation::acknowledges_write`]: propagate::Propagation::acknowledges_write
fn creation_logged_as_such(op: Op, created: bool) -> Op {
    match op {
        Op::Touch {
            key,
            group,
            consumer,
            time_ms,
        } if created => Op::ConsumerCreate {
            key,
            group,
            consumer,
            time_ms,
        },
        op => op,
    }
}
