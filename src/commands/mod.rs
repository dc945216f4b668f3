//! The command layer: one table of commands (name, arity, flags, key positions,
//! ACL categories, docs) that drives dispatch, arity errors, COMMAND and stats;
//! one file per command family with `parse` then `apply`.

pub mod acl;
pub mod args;
pub mod cluster;
pub mod connection;
pub mod debug;
pub use crate::glob;
pub mod groups;
pub mod idmp;
pub mod keys;
pub mod keyspec;
pub mod migrate;
pub mod policy;
pub mod pubsub;
pub mod refs;
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
// The execution core's pieces every handler uses, under the names they have always had here.
pub use crate::core::error::{self, CommandError};
pub use crate::core::{blocking, commit, now_ms, propagate, Blocked, BlockedRead, Ctx, Outcome};
pub use session::Session;
pub use table::{CommandSpec, Handler};

use crate::core::{Shared, State};
use crate::protocol::Reply;
use crate::storage::record;

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
    // A client closed by another (CLIENT KILL, ACL DELUSER, ACL LOAD) runs nothing more of
    // what it pipelined, as Redis stops reading a CLIENT_CLOSE_ASAP client: a deleted
    // user's requests must not keep running on its old rules.
    if session
        .info
        .killed
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        session.suppress_reply = true;
        session.close_after_reply = true;
        return Exec::Reply(Reply::Nil);
    }
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
    session.info.touch(spec.full_name(), started);

    // Right after lookup and arity, before authentication, as Redis's processCommand.
    if spec.is_protected()
        && !shared
            .config
            .read()
            .enable_debug_command
            .allows(session.info.is_local())
    {
        if session.multi.is_some() {
            session.multi_error = true;
        }
        shared.stats.record_rejected(spec.full_name());
        return Exec::Reply(error_reply(
            shared,
            &CommandError::DebugNotAllowed,
            Some(spec),
        ));
    }

    if !session.authenticated && !spec.no_auth() && shared.requires_auth() {
        return Exec::Reply(error_reply(shared, &CommandError::NoAuth, Some(spec)));
    }
    // As Redis's processCommand: after authentication and MULTI's refusal of no-multi
    // commands (reported later here), before routing. Free for an unrestricted user.
    if !(session.multi.is_some() && spec.no_multi()) {
        if let Err(e) = acl::authorize(session, shared, spec, args.argv()) {
            if session.multi.is_some() {
                session.multi_error = true;
            }
            shared.stats.record_rejected(spec.full_name());
            return Exec::Reply(error_reply(shared, &e, Some(spec)));
        }
    }
    // ASKING holds for the one command after it, or, when that is MULTI, until the
    // transaction ends: Redis's resetClient clears it after any command but ASKING that
    // leaves the client outside MULTI.
    let asking = session.asking;
    let in_multi_after = match spec.full_name() {
        "multi" => true,
        "exec" | "discard" | "reset" => false,
        _ => session.multi.is_some(),
    };
    if spec.full_name() != "asking" && !in_multi_after {
        session.asking = false;
    }
    session.route_under_lock = None;
    // Before the loading check and MULTI queueing, as Redis's processCommand: a queued
    // command for another slot aborts the EXEC; an EXEC whose queued commands span
    // slots discards the transaction.
    if let Some(cluster) = &shared.cluster {
        let mut routed = cluster::route(spec, session, cluster, args.argv(), asking);
        if let Ok(cluster::Routed::UnderLock) = routed {
            let runs_under_lock = session.multi.is_none()
                && matches!(spec.handler, Handler::Data(_))
                || matches!(spec.full_name(), "exec" | "rill.restore");
            if runs_under_lock {
                // Finished where the command takes the lock (`run_handler`, EXEC, RILL.RESTORE).
                session.route_under_lock = Some(asking);
            } else {
                // A command queued in MULTI (routed again at EXEC) or one that does not run
                // on the keyspace: Redis's answer for the keys as they are now.
                let state = shared.state.lock();
                routed = cluster::route_locked(
                    &[(spec, args.argv())],
                    cluster,
                    asking,
                    &state.ks,
                    now_ms(),
                )
                .map(|()| cluster::Routed::Here);
            }
        }
        if let Err(e) = routed {
            if spec.full_name() == "exec" {
                transactions::discard_state(session, shared);
            } else if session.multi.is_some() {
                session.multi_error = true;
            }
            shared.stats.record_rejected(spec.full_name());
            return Exec::Reply(error_reply(shared, &e, Some(spec)));
        }
    }
    // RESP2 subscribed mode, as Redis's processCommand (after routing, before loading):
    // RESP3 has push frames, so any command may run there.
    if session.proto == 2
        && session.subs.active()
        && !pubsub::allowed_when_subscribed(spec.full_name())
    {
        if session.multi.is_some() {
            session.multi_error = true;
        }
        shared.stats.record_rejected(spec.full_name());
        let e = CommandError::SubscribedContext(spec.full_name());
        return Exec::Reply(error_reply(shared, &e, Some(spec)));
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
    // Raft mode (no plain log): as above for a stopped group, and a write executes only
    // on the leader, checked before it runs, so a refused proposal is never half done.
    if shared.log.get().is_none() {
        if let Some(raft) = shared.raft.get() {
            if spec.is_write() || spec.is_readonly() {
                if let Err(e) = raft.admits(spec.is_write()) {
                    if session.multi.is_some() {
                        session.multi_error = true;
                    }
                    return Exec::Reply(error_reply(shared, &CommandError::Raft(e), Some(spec)));
                }
                if spec.is_readonly() && !spec.is_write() && raft.reads_need_confirmation() {
                    session.read_barrier = true;
                }
            }
        } else if spec.is_write() && shared.config.read().cluster_raft {
            // A replica whose group has not started (no map yet): nothing could log it.
            if session.multi.is_some() {
                session.multi_error = true;
            }
            return Exec::Reply(error_reply(shared, &CommandError::ClusterDown, Some(spec)));
        }
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
        Ok(Outcome::Block(b)) => block(spec, session, shared, b),
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
            if let (Some(asking), Some(cluster)) =
                (session.route_under_lock.take(), &shared.cluster)
            {
                cluster::route_locked(
                    &[(spec, args.argv())],
                    cluster,
                    asking,
                    &state.ks,
                    now_ms(),
                )?;
            }
            let out = run_data(spec, session, shared, state, args, in_multi);
            session.logged = state.props.acknowledges_write();
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
    state.props.command_start = mark;
    state.props.events_start = state.props.events.len();
    let hard = shared.output_limits().0;
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
        reply_room: if hard > 0 { hard } else { u64::MAX },
        over_limit: false,
    };
    let out = f(&mut ctx, args);
    if ctx.over_limit {
        // Redis buffers the reply, finds it past the hard limit and closes the client
        // without sending it; the reply was not even built whole here.
        tracing::warn!(
            "Client id={} addr={} closed for overcoming of output buffer limits (a reply of more than {} bytes).",
            session.id,
            session.info.addr,
            hard
        );
        session.suppress_reply = true;
        session.close_after_reply = true;
    }
    propagate::log_expired(
        &mut state.ks,
        &mut state.props,
        mark,
        shared
            .notify_flags
            .load(std::sync::atomic::Ordering::Relaxed),
    );
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

/// Registers a blocked client. The handler ran under the lock and released it, so
/// a write may have slipped in between: retry once under the lock before waiting.
fn block(
    spec: &'static CommandSpec,
    session: &mut Session,
    shared: &Shared,
    mut b: Blocked,
) -> Exec {
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
        reply_room: u64::MAX,
        over_limit: false,
    };
    let served = b.retry.try_serve(&mut ctx);
    let wake_ms = match served {
        Ok(None) => b.retry.wake_at(&mut ctx),
        _ => None,
    };
    propagate::log_expired(
        &mut state.ks,
        &mut state.props,
        0,
        shared
            .notify_flags
            .load(std::sync::atomic::Ordering::Relaxed),
    );
    session.logged = state.props.acknowledges_write();
    match commit(shared, state) {
        Ok(lsn) => session.lsn = session.lsn.max(lsn),
        Err(e) => return Exec::Reply(error_reply(shared, &e, None)),
    }
    match served {
        Ok(Some(r)) => return Exec::Reply(r),
        Err(e) => return Exec::Reply(error_reply(shared, &e, None)),
        Ok(None) => {}
    }
    // Routing was checked before the handler ran; a shard map installed since (its
    // redirect of the waiting clients ran before we took the lock) must not leave this
    // client waiting for keys another node now serves.
    let replica_read = session.readonly && !spec.is_write();
    if let Some(e) = shared
        .cluster
        .as_ref()
        .and_then(|c| cluster::blocked_redirect(c, &b.keys, replica_read))
    {
        return Exec::Reply(error_reply(shared, &e, None));
    }
    let (tx, rx) = oneshot::channel();
    let mut retry = b.retry;
    retry.detach();
    let waiter = state.blocking.add(blocking::Waiter {
        client_id: session.id,
        command: spec.full_name(),
        db: session.db,
        proto: session.proto,
        keys: b.keys.iter().map(crate::core::detached).collect(),
        retry,
        tx,
        wake_ms,
        replica_read,
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
