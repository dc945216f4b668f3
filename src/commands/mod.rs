//! The command layer: one table of commands (name, arity, flags, key positions,
//! ACL categories, docs) that drives dispatch, arity errors, COMMAND and stats;
//! one file per command family with `parse` then `apply`.

pub mod args;
pub mod blocking;
pub mod connection;
pub mod debug;
pub mod error;
pub mod glob;
pub mod groups;
pub mod keys;
pub mod propagate;
pub mod server;
pub mod session;
pub mod streams;
pub mod table;
pub mod transactions;
pub mod xinfo;

use std::time::Instant;

use bytes::Bytes;
use tokio::sync::oneshot;

pub use args::Args;
pub use error::CommandError;
pub use session::Session;
pub use table::{CommandSpec, Handler};

use crate::engine::keyspace::{Keyspace, Value};
use crate::engine::op::{self, Applied, Op};
use crate::engine::stream::Stream;
use crate::protocol::Reply;
use crate::server::{Shared, State};
use crate::storage::record;

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
}

impl Ctx<'_> {
    /// The stream under `key`, `None` when the key does not exist, WRONGTYPE for another type.
    pub fn stream(&mut self, key: &[u8]) -> Result<Option<&Stream>, CommandError> {
        match self.ks.get(self.db, key, self.now_ms) {
            None => Ok(None),
            Some(Value::Stream(s)) => Ok(Some(s)),
            Some(_) => Err(CommandError::WrongType),
        }
    }

    /// Applies a state change and queues it for the log: the only way a command changes
    /// data (see `engine::op`). Fails only on a bug (the command checks what a client can
    /// get wrong first), and then nothing changed and nothing is logged.
    pub fn apply(&mut self, mut op: Op) -> Result<Applied, CommandError> {
        let limits = self.shared.node_limits();
        let applied = self
            .ks
            .apply(self.db, &mut op, limits)
            .map_err(|e| match e {
                // Checks the engine makes itself (XSETID's), with Redis's text.
                op::ApplyError::Stream(e) => CommandError::from(e),
                e => CommandError::Internal(e.to_string()),
            })?;
        self.props.push(self.db, op);
        Ok(applied)
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
    pub fn signal_modified(&mut self, key: &[u8]) {
        self.ks.signal_modified(self.db, key);
    }

    /// Records that `key` may satisfy blocked readers; they are served after this command.
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
    /// Called under the keyspace lock, in FIFO order of blocking, each time one of
    /// the keys is signalled ready. `Ok(None)` keeps the client blocked.
    fn try_serve(&mut self, ctx: &mut Ctx<'_>) -> Result<Option<Reply>, CommandError>;

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

/// The result of executing one request on a connection.
pub enum Exec {
    /// Reply now.
    Reply(Reply),
    /// The client is blocked: the reply arrives on `rx`, or the connection times it out.
    Blocked {
        /// The waiter's id in the blocking table.
        waiter: u64,
        /// Receives the reply when a writer serves the client.
        rx: oneshot::Receiver<Reply>,
        /// When to give up.
        deadline: Option<Instant>,
    },
}

/// Current Unix time in milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// What a write command's logged form may take beyond its own arguments (an XADD `*`
/// logged with the ID it got, a trim rewritten to its exact threshold).
const LOG_SLACK_PER_COMMAND: u64 = 128;

/// The most a command or transaction may put in one log record, leaving room in
/// [`record::MAX_PAYLOAD`] for what the same critical section adds (expired keys
/// deleted, blocked readers served).
const LOG_RECORD_BUDGET: u64 = record::MAX_PAYLOAD as u64 - (64 << 20);

/// Upper bound of the bytes a write command with these arguments logs. Checked
/// before the command runs, so nothing is executed (or acknowledged) that the log
/// cannot hold as one record.
fn log_bound(argv: &[Bytes]) -> u64 {
    record::command_len(argv) + LOG_SLACK_PER_COMMAND
}

/// Executes one request for a connection: lookup, arity, auth, MULTI queueing,
/// the handler itself, statistics, and serving of blocked readers.
pub fn execute(session: &mut Session, shared: &Shared, argv: Vec<Bytes>) -> Exec {
    let started = Instant::now();
    let mut args = Args::new(argv);
    let spec = match table::resolve(&mut args) {
        Ok(spec) => spec,
        Err(e) => {
            if session.multi.is_some() {
                session.multi_error = true;
            }
            return Exec::Reply(error_reply(shared, &e, None));
        }
    };
    session.info.touch(spec.full_name());

    if !session.authenticated && !spec.no_auth() && shared.requires_auth() {
        return Exec::Reply(error_reply(shared, &CommandError::NoAuth, Some(spec)));
    }
    if shared.is_loading() && !spec.ok_loading() {
        return Exec::Reply(error_reply(shared, &CommandError::Loading, Some(spec)));
    }

    if let Some(log) = shared
        .log
        .get()
        // Reads too: the keyspace may hold what the failed write changed, which the
        // log never accepted and a restart will not show (issue #18, defect 11).
        .filter(|l| (spec.is_write() || spec.is_readonly()) && l.is_poisoned())
    {
        let e = CommandError::from(log.poison_error());
        // As Redis's rejectCommand: a command refused inside MULTI aborts the EXEC.
        if session.multi.is_some() {
            session.multi_error = true;
        }
        return Exec::Reply(error_reply(shared, &e, Some(spec)));
    }

    if session.multi.is_some() && !spec.is_transaction_control() {
        if spec.no_multi() {
            session.multi_error = true;
            return Exec::Reply(error_reply(
                shared,
                &CommandError::NotAllowedInMulti,
                Some(spec),
            ));
        }
        if spec.is_write() {
            let bytes = session
                .multi_log_bytes
                .saturating_add(log_bound(args.argv()));
            if bytes > LOG_RECORD_BUDGET {
                session.multi_error = true;
                let e = CommandError::TooLargeToLog {
                    what: "transaction",
                    bytes,
                    limit: LOG_RECORD_BUDGET,
                };
                return Exec::Reply(error_reply(shared, &e, Some(spec)));
            }
            session.multi_log_bytes = bytes;
        }
        if let Some(queue) = session.multi.as_mut() {
            queue.push((spec, args));
        }
        return Exec::Reply(Reply::status("QUEUED"));
    }
    if spec.is_write() {
        let bytes = log_bound(args.argv());
        if bytes > LOG_RECORD_BUDGET {
            let e = CommandError::TooLargeToLog {
                what: "command",
                bytes,
                limit: LOG_RECORD_BUDGET,
            };
            return Exec::Reply(error_reply(shared, &e, Some(spec)));
        }
    }

    let result = run_handler(spec, session, shared, &mut args, false);
    let exec = match result {
        Ok(Outcome::Reply(r)) => Exec::Reply(r),
        Ok(Outcome::Block(b)) => block(session, shared, b),
        Err(e) => Exec::Reply(error_reply(shared, &e, Some(spec))),
    };
    let failed = matches!(&exec, Exec::Reply(r) if r.is_error());
    shared
        .stats
        .record_call(spec.full_name(), started.elapsed(), failed);
    exec
}

/// Runs a resolved command's handler. Data handlers take the keyspace lock unless
/// the caller (EXEC) already holds it and passes the state in.
pub(crate) fn run_handler(
    spec: &'static CommandSpec,
    session: &mut Session,
    shared: &Shared,
    args: &mut Args,
    in_multi: bool,
) -> Result<Outcome, CommandError> {
    match spec.handler {
        Handler::Conn(f) => f(session, shared, args),
        Handler::Data(_) => {
            let mut guard = shared.state.lock();
            let state: &mut State = &mut guard;
            let out = run_data(spec, session, shared, state, args, in_multi);
            session.logged = !state.props.ops.is_empty();
            let committed = commit(shared, state);
            drop(guard);
            match committed {
                Ok(lsn) => session.lsn = session.lsn.max(lsn),
                Err(e) => return Err(e),
            }
            out
        }
        Handler::Container => Err(CommandError::UnknownSubcommand {
            sub: String::new(),
            container: spec.name().to_ascii_uppercase(),
        }),
    }
}

/// Runs a data handler against an already locked state, queues its log records,
/// then serves blocked readers (outside EXEC; EXEC serves once at the end).
pub(crate) fn run_data(
    spec: &'static CommandSpec,
    session: &mut Session,
    shared: &Shared,
    state: &mut State,
    args: &mut Args,
    in_multi: bool,
) -> Result<Outcome, CommandError> {
    let Handler::Data(f) = spec.handler else {
        return Err(CommandError::Syntax);
    };
    let now = now_ms();
    let mark = state.props.ops.len();
    let mut ctx = Ctx {
        ks: &mut state.ks,
        shared,
        db: session.db,
        proto: session.proto,
        client_id: session.id,
        now_ms: now,
        in_multi,
        blocking: Some(&mut state.blocking),
        props: &mut state.props,
    };
    let out = f(&mut ctx, args);
    propagate::log_expired(&mut state.ks, &mut state.props, mark);
    if !in_multi {
        blocking::serve_ready(
            &mut state.ks,
            &mut state.blocking,
            &mut state.props,
            shared,
            now,
        );
    }
    out
}

/// Appends what the critical section queued for the log as one record (so it is
/// applied entirely or not at all on recovery) and returns the LSN every reply
/// that observed this state must wait for.
pub fn commit(shared: &Shared, state: &mut State) -> Result<u64, CommandError> {
    let Some(log) = shared.log.get() else {
        state.props.ops.clear();
        return Ok(0);
    };
    if !state.props.ops.is_empty() {
        let ops = std::mem::take(&mut state.props.ops);
        let (_, pos, spans) = log.append_ops(|out| op::encode(&ops, out))?;
        // New entries now point at their payloads in the record; what stays resident
        // belonged to entries removed in the same critical section.
        let payload_at = crate::storage::log::RecordPos {
            segment: pos.segment,
            offset: pos.offset + record::OPS_AT,
        };
        state
            .ks
            .locate_payloads(&ops, &spans, (payload_at.segment, payload_at.offset));
        state.ks.payloads.evict();
    }
    Ok(log.appended_lsn())
}

/// Registers a blocked client. The handler ran under the lock and released it, so
/// a write may have slipped in between: retry once under the lock before waiting.
fn block(session: &mut Session, shared: &Shared, mut b: Blocked) -> Exec {
    let mut guard = shared.state.lock();
    let state: &mut State = &mut guard;
    let mut ctx = Ctx {
        ks: &mut state.ks,
        shared,
        db: session.db,
        proto: session.proto,
        client_id: session.id,
        now_ms: now_ms(),
        in_multi: false,
        blocking: None,
        props: &mut state.props,
    };
    let served = b.retry.try_serve(&mut ctx);
    propagate::log_expired(&mut state.ks, &mut state.props, 0);
    session.logged = !state.props.ops.is_empty();
    match commit(shared, state) {
        Ok(lsn) => session.lsn = session.lsn.max(lsn),
        Err(e) => return Exec::Reply(error_reply(shared, &e, None)),
    }
    match served {
        Ok(Some(r)) => return Exec::Reply(r),
        Err(e) => return Exec::Reply(error_reply(shared, &e, None)),
        Ok(None) => {}
    }
    let (tx, rx) = oneshot::channel();
    let waiter = state.blocking.add(blocking::Waiter {
        client_id: session.id,
        db: session.db,
        proto: session.proto,
        keys: b.keys,
        retry: b.retry,
        tx,
    });
    Exec::Blocked {
        waiter,
        rx,
        deadline: b.deadline,
    }
}

/// Turns an error into its reply and counts it in INFO errorstats.
pub fn error_reply(shared: &Shared, e: &CommandError, spec: Option<&'static CommandSpec>) -> Reply {
    let text = e.to_string();
    shared.stats.record_error(&text);
    if let Some(spec) = spec {
        if matches!(e, CommandError::NoAuth | CommandError::Loading) {
            shared.stats.record_rejected(spec.full_name());
        }
    }
    Reply::error(text)
}
