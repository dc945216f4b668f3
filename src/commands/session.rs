//! Per-connection state that commands read and change: selected database,
//! protocol version, authentication, MULTI queue and WATCHed keys.

use std::sync::Arc;

use bytes::Bytes;

use super::args::Args;
use super::table::CommandSpec;
use crate::core::clients::ClientInfo;
use crate::core::pubsub::{Kind, Outlet};

/// A client's Pub/Sub subscriptions (the registry in `core::pubsub` holds the reverse map).
#[derive(Default)]
pub struct Subscriptions {
    /// SUBSCRIBE channels.
    pub channels: std::collections::HashSet<Bytes>,
    /// PSUBSCRIBE patterns.
    pub patterns: std::collections::HashSet<Bytes>,
    /// SSUBSCRIBE shard channels.
    pub shard: std::collections::HashSet<Bytes>,
    /// Where publishers leave this client's messages; made at the first subscription.
    pub outlet: Option<Arc<Outlet>>,
}

impl Subscriptions {
    /// The set of one kind.
    pub fn of(&self, kind: Kind) -> &std::collections::HashSet<Bytes> {
        match kind {
            Kind::Channel => &self.channels,
            Kind::Pattern => &self.patterns,
            Kind::Shard => &self.shard,
        }
    }

    /// The set of one kind, to change.
    pub fn of_mut(&mut self, kind: Kind) -> &mut std::collections::HashSet<Bytes> {
        match kind {
            Kind::Channel => &mut self.channels,
            Kind::Pattern => &mut self.patterns,
            Kind::Shard => &mut self.shard,
        }
    }

    /// True with at least one subscription of any kind (Redis's `CLIENT_PUBSUB`: the
    /// client is in the pubsub output-limit class, and in RESP2 in subscribed mode).
    pub fn active(&self) -> bool {
        !(self.channels.is_empty() && self.patterns.is_empty() && self.shard.is_empty())
    }
}

/// The state of one connection, owned by its task.
pub struct Session {
    /// The client's id (CLIENT ID).
    pub id: u64,
    /// Selected database.
    pub db: usize,
    /// Protocol version: 2 or 3 (HELLO).
    pub proto: u8,
    /// False until AUTH/HELLO AUTH succeeds when `requirepass` is set.
    pub authenticated: bool,
    /// Commands queued since MULTI; `None` outside a transaction.
    pub multi: Option<Vec<(&'static CommandSpec, Args)>>,
    /// A command was rejected while queueing: EXEC must answer EXECABORT.
    pub multi_error: bool,
    /// Upper bound of the log record the queued write commands would make.
    pub multi_log_bytes: u64,
    /// WATCHed keys.
    pub watched: Vec<(usize, Bytes)>,
    /// Close the connection once the current replies are written (QUIT, CLIENT KILL of self).
    pub close_after_reply: bool,
    /// Highest log sequence number the replies produced so far depend on: they are
    /// written only once it is durable.
    pub lsn: u64,
    /// The last command appended records to the log (its reply is an acknowledgement).
    pub logged: bool,
    /// Send no reply to the current command (SHUTDOWN closes the connection instead).
    pub suppress_reply: bool,
    /// The most subscribers one Pub/Sub message of the current batch reached (0: it
    /// published nothing): when few, they write before this client's replies go out
    /// (see `Connection::flush_batch`).
    pub published: u64,
    /// Cluster mode: READONLY was sent (reads may be served by a replica).
    pub readonly: bool,
    /// A read ran on the leader of a replicated shard: its reply waits until the node has
    /// confirmed its leadership (`cluster::raft::read`).
    pub read_barrier: bool,
    /// Cluster mode: ASKING was sent; holds for the next command only.
    pub asking: bool,
    /// Cluster mode: the current command is routed to a slot being moved, where whether
    /// it runs here depends on which of its keys exist, so routing is finished under the
    /// keyspace lock the command runs under (see `commands::cluster::Routed`), with the
    /// ASKING state it arrived with.
    pub route_under_lock: Option<bool>,
    /// Pub/Sub subscriptions.
    pub subs: Subscriptions,
    /// The part of the client's state visible to other clients (CLIENT LIST …).
    pub info: Arc<ClientInfo>,
    /// The ACL user it runs as once authenticated; `None` is the `default` user.
    pub user: Option<Arc<crate::core::acl::User>>,
}

impl Session {
    /// A fresh session for a client registered as `info`.
    pub fn new(info: Arc<ClientInfo>, authenticated: bool) -> Self {
        Session {
            id: info.id,
            db: 0,
            proto: 2,
            authenticated,
            multi: None,
            multi_error: false,
            multi_log_bytes: 0,
            watched: Vec::new(),
            close_after_reply: false,
            suppress_reply: false,
            published: 0,
            lsn: 0,
            logged: false,
            readonly: false,
            read_barrier: false,
            asking: false,
            route_under_lock: None,
            subs: Subscriptions::default(),
            info,
            user: None,
        }
    }
}
