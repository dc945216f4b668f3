//! MULTI/EXEC/DISCARD/WATCH/UNWATCH with Redis semantics: queue-time errors abort
//! EXEC, a changed WATCHed key makes EXEC answer a null array, and queued commands
//! run under one keyspace lock, so readers blocked on keys written inside the
//! transaction are woken once, after EXEC.

use std::sync::atomic::Ordering;

use super::args::Args;
use super::error::CommandError;
use super::session::Session;
use super::table::{CommandSpec, Handler};
use super::{blocking, error_reply, now_ms, run_data, Outcome};
use crate::core::{Shared, State};
use crate::protocol::Reply;
use bytes::Bytes;

type R = Result<Outcome, CommandError>;

/// MULTI
///
/// # Format
/// `MULTI`
///
/// # Returns
/// `+OK`; following commands are queued until EXEC or DISCARD.
pub fn multi(s: &mut Session, _sh: &Shared, _a: &mut Args) -> R {
    if s.multi.is_some() {
        return Err(CommandError::NestedMulti);
    }
    s.multi = Some(Vec::new());
    s.multi_error = false;
    s.multi_log_bytes = 0;
    s.info.in_multi.store(true, Ordering::Relaxed);
    Ok(Reply::Ok.into())
}

/// EXEC
///
/// # Format
/// `EXEC`
///
/// # Returns
/// An array with each queued command's reply; a null array if a WATCHed key
/// changed; EXECABORT if a command was rejected while queueing.
pub fn exec(s: &mut Session, sh: &Shared, _a: &mut Args) -> R {
    let Some(queue) = s.multi.take() else {
        return Err(CommandError::ExecWithoutMulti);
    };
    let aborted = s.multi_error;
    let mut guard = sh.state.lock();
    let state: &mut State = &mut guard;
    let dirty = state.ks.is_dirty(s.id);
    state.ks.unwatch(s.id, &s.watched);
    s.watched.clear();
    s.multi_error = false;
    s.multi_log_bytes = 0;
    s.info.in_multi.store(false, Ordering::Relaxed);
    s.info.watch_len.store(0, Ordering::Relaxed);
    // A transaction on a slot being moved: which of its keys are here decides, now that
    // none can leave before it has run (see `cluster::route_keys`). As a routing error
    // before EXEC, it discards the transaction.
    if let (Some(asking), Some(cluster)) = (s.route_under_lock.take(), &sh.cluster) {
        let queued: Vec<(&CommandSpec, &[Bytes])> =
            queue.iter().map(|(q, a)| (*q, a.argv())).collect();
        super::cluster::route_locked(&queued, cluster, asking, &state.ks, now_ms())?;
    }
    if aborted {
        return Err(CommandError::ExecAbort);
    }
    if dirty {
        return Ok(Reply::NilArray.into());
    }
    if let Some(log) = sh.log.get().filter(|l| l.is_poisoned()) {
        return Err(log.poison_error().into());
    }
    if sh.log.get().is_none() {
        if let Some(raft) = sh.raft.get() {
            // A stopped group (failed fsync, lost leadership) runs nothing, as a poisoned log.
            raft.admits(false)?;
        }
    }
    let mut replies = Vec::with_capacity(queue.len());
    // Each command was resolved (and its arity checked) when it was queued.
    for (spec, mut args) in queue {
        let started = std::time::Instant::now();
        if let Err(e) = super::acl::authorize_at_exec(s, sh, spec, args.argv()) {
            replies.push(error_reply(sh, &e, Some(spec)));
            continue;
        }
        let out = match spec.handler {
            Handler::Data(_) => run_data(spec, s, sh, state, &mut args, true),
            Handler::Conn(f) => f(s, sh, &mut args),
            Handler::Container => Err(CommandError::Syntax),
        };
        let reply = match out {
            Ok(Outcome::Reply(r)) => r,
            // Inside MULTI a blocking read answers as a timeout.
            Ok(Outcome::Block(b)) => b.retry.on_timeout(),
            Err(e) => error_reply(sh, &e, Some(spec)),
        };
        sh.stats
            .record_call(spec.full_name(), started.elapsed(), reply.is_error());
        replies.push(reply);
    }
    // Readers blocked on keys the transaction wrote see the result once, now.
    blocking::serve_ready(
        &mut state.ks,
        &mut state.blocking,
        &mut state.props,
        sh,
        now_ms(),
    );
    // The whole transaction is one log record: recovery applies all of it or none.
    s.logged = state.props.acknowledges_write();
    let lsn = super::commit(sh, state)?;
    s.lsn = s.lsn.max(lsn);
    Ok(Reply::Array(replies).into())
}

/// DISCARD
///
/// # Format
/// `DISCARD`
///
/// # Returns
/// `+OK`.
pub fn discard(s: &mut Session, sh: &Shared, _a: &mut Args) -> R {
    if s.multi.is_none() {
        return Err(CommandError::DiscardWithoutMulti);
    }
    discard_state(s, sh);
    Ok(Reply::Ok.into())
}

/// Drops the transaction and the watches (DISCARD, RESET).
pub fn discard_state(s: &mut Session, sh: &Shared) {
    s.multi = None;
    s.multi_error = false;
    s.multi_log_bytes = 0;
    s.info.in_multi.store(false, Ordering::Relaxed);
    unwatch_all(s, sh);
}

fn unwatch_all(s: &mut Session, sh: &Shared) {
    if !s.watched.is_empty() {
        sh.state.lock().ks.unwatch(s.id, &s.watched);
        s.watched.clear();
    }
    s.info.watch_len.store(0, Ordering::Relaxed);
}

/// WATCH
///
/// # Format
/// `WATCH key [key ...]`
///
/// # Returns
/// `+OK`.
pub fn watch(s: &mut Session, sh: &Shared, a: &mut Args) -> R {
    if s.multi.is_some() {
        return Err(CommandError::WatchInMulti);
    }
    let mut state = sh.state.lock();
    for key in a.rest() {
        if s.watched.iter().any(|(d, k)| *d == s.db && *k == key) {
            continue;
        }
        state.ks.watch(s.id, s.db, key.clone());
        s.watched.push((s.db, key));
    }
    s.info.watch_len.store(s.watched.len(), Ordering::Relaxed);
    Ok(Reply::Ok.into())
}

/// UNWATCH
///
/// # Format
/// `UNWATCH`
///
/// # Returns
/// `+OK`.
pub fn unwatch(s: &mut Session, sh: &Shared, _a: &mut Args) -> R {
    unwatch_all(s, sh);
    Ok(Reply::Ok.into())
}
