//! Moving keys between nodes, the part of online resharding that carries data:
//! `RILL.MIGRATE` on the node that has the keys, `RILL.RESTORE` on the node receiving them
//! (Redis's `MIGRATE … KEYS` and `RESTORE-ASKING`, with Rill's own payload: see
//! `engine::transfer`; Redis's DUMP/RDB format is not spoken).
//!
//! # Atomic and durable per key
//!
//! `RILL.MIGRATE` holds the keyspace lock from the moment it reads the keys until their
//! deletion is on disk, as Redis's MIGRATE blocks its one thread: no client command can
//! change a key between its copy and its deletion, and none can be told `-ASK` (the key is
//! missing) before the deletion is durable. In between, it pipelines each key to the target
//! as `ASKING` + `RILL.RESTORE key payload REPLACE NOSYNC`, the last one without `NOSYNC`:
//! the target answers that one only once it is applied, logged and fsynced (whatever
//! `appendfsync` says), and that fsync covers the keys restored before it on the same node.
//! The source deletes the keys acknowledged only when that last one is acknowledged. So at
//! every instant a moved key is durably on the source, or on both (the source's copy then
//! wins: re-running the move replaces the target's), or only on the target — never on
//! neither; and a batch costs the target one forced fsync, not one per key. The price, as
//! in Redis, is that the source's clients wait during a batch (bounded by the timeout).

use std::time::Duration;

use bytes::Bytes;

use super::args::Args;
use super::error::CommandError;
use super::session::Session;
use super::table::CommandSpec;
use super::{blocking, commit, now_ms, propagate, Ctx, Outcome};
use crate::cluster::peer::{Peer, PeerError, Value};
use crate::core::keyspace_events as events;
use crate::core::{Shared, State};
use crate::engine::op::Op;
use crate::engine::transfer;
use crate::protocol::Reply;

type R = Result<Outcome, CommandError>;

/// Runs `f` on the locked keyspace the way a data command runs (its ops queued for the log,
/// blocked readers served, the record committed), finishing the routing of a command to a
/// slot being moved first; with `sync`, makes the log durable (fsync, whatever the policy)
/// before the lock is released. For the handlers that do more under the lock than a data
/// handler may: a network round trip, an fsync.
fn locked<T>(
    session: &mut Session,
    sh: &Shared,
    routed: (&'static CommandSpec, &[Bytes]),
    sync: bool,
    f: impl FnOnce(&mut Ctx<'_>) -> Result<T, CommandError>,
) -> Result<T, CommandError> {
    let mut guard = sh.state.lock();
    let state: &mut State = &mut guard;
    let now = now_ms();
    if let (Some(asking), Some(cluster)) = (session.route_under_lock.take(), &sh.cluster) {
        super::cluster::route_locked(&[routed], cluster, asking, &state.ks, now)?;
    }
    let mark = state.props.ops.len();
    state.props.command_start = mark;
    let mut ctx = Ctx {
        ks: &mut state.ks,
        shared: sh,
        db: session.db,
        proto: session.proto,
        client_id: session.id,
        now_ms: now,
        in_multi: false,
        blocking: Some(&mut state.blocking),
        props: &mut state.props,
        reply_room: u64::MAX,
        over_limit: false,
    };
    let out = f(&mut ctx);
    propagate::log_expired(
        &mut state.ks,
        &mut state.props,
        mark,
        sh.notify_flags.load(std::sync::atomic::Ordering::Relaxed),
    );
    blocking::serve_ready(
        &mut state.ks,
        &mut state.blocking,
        &mut state.props,
        sh,
        now,
    );
    session.logged = state.props.acknowledges_write();
    let lsn = commit(sh, state)?;
    session.lsn = session.lsn.max(lsn);
    if sync {
        if let Some(log) = sh.log.get() {
            log.sync_now()?;
        } else if let Some(raft) = sh.raft.get() {
            // Committed (fsynced) before the lock is released, as `sync_now` does: the
            // Ready loop never takes the keyspace lock, so this keeps the lock order.
            raft.commit()?;
        }
    }
    drop(guard);
    out
}

/// RILL.RESTORE
///
/// # Format
/// `RILL.RESTORE key payload [REPLACE] [NOSYNC]`
///
/// # Returns
/// `+OK` once the key the payload holds (from `RILL.MIGRATE` on another node) is stored,
/// logged as one record and fsynced — with everything logged before it, so a batch sends
/// `NOSYNC` (acknowledged under the `appendfsync` policy, like any write) on all its keys
/// but the last; `BUSYKEY` when the key exists and REPLACE is not given. Routed like any keyed command: on a slot this node is importing it needs ASKING
/// just before, as Redis's `RESTORE-ASKING` does.
pub fn restore(s: &mut Session, sh: &Shared, a: &mut Args) -> R {
    let spec = super::table::lookup_raw(b"rill.restore").ok_or(CommandError::Syntax)?;
    let key = a.next_bytes()?;
    let payload = a.next_bytes()?;
    let (mut replace, mut sync) = (false, true);
    while a.remaining() > 0 {
        if a.eat("REPLACE") {
            replace = true;
        } else if a.eat("NOSYNC") {
            sync = false;
        } else {
            return Err(CommandError::Syntax);
        }
    }
    let ops = transfer::decode(&payload, &key)?;
    let argv = a.argv().to_vec();
    locked(s, sh, (spec, &argv), sync, |ctx| {
        if !replace && ctx.ks.contains(ctx.db, &key, ctx.now_ms) {
            return Err(CommandError::BusyKey);
        }
        let replaced = ctx
            .ks
            .db(ctx.db)
            .peek(&key)
            .map(crate::engine::keyspace::ValueRef::type_name);
        if replaced.is_some() {
            ctx.apply(Op::Del { key: key.clone() })?;
        }
        for op in ops {
            if let Err(e) = ctx.apply(op) {
                // Nothing half-built is left behind (nor logged as such).
                ctx.apply(Op::Del { key: key.clone() })?;
                return Err(e);
            }
        }
        // As Redis's RESTORE (the target's half of MIGRATE): `restore`, and `overwritten`
        // for a REPLACE that replaced a key (`new` is `Ctx::apply`'s).
        ctx.notify(events::GENERIC, "restore", &key);
        if let Some(old) = replaced {
            ctx.notify(events::OVERWRITTEN, "overwritten", &key);
            let new = ctx
                .ks
                .db(ctx.db)
                .peek(&key)
                .map(crate::engine::keyspace::ValueRef::type_name);
            if new != Some(old) {
                ctx.notify(events::TYPE_CHANGED, "type_changed", &key);
            }
        }
        Ok(())
    })?;
    Ok(Reply::Ok.into())
}

/// Why moving keys to the target failed, as MIGRATE reports it.
fn peer_error(e: PeerError) -> CommandError {
    match e {
        PeerError::Connect { .. } | PeerError::BadAddress(_) => CommandError::MigrateConnect,
        PeerError::Io { .. } => CommandError::MigrateIo("reading"),
        PeerError::Server { text, .. } => CommandError::TargetError(text),
        PeerError::Unexpected { what, .. } => {
            CommandError::TargetError(format!("unexpected reply to {what}"))
        }
    }
}

/// RILL.MIGRATE
///
/// # Format
/// `RILL.MIGRATE host port timeout [AUTH password | AUTH2 username password] KEYS key [key ...]`
///
/// # Returns
/// `+OK` once every key named that exists here is stored on the node at `host:port`
/// (acknowledged after its fsync there) and deleted here (fsynced before anyone can see it
/// missing); `+NOKEY` when none exists. On an error nothing is deleted: a key the target
/// did not acknowledge stays here. `timeout` (milliseconds) bounds connecting and each
/// reply. See the module docs for why this is atomic per key. The keys are not routed
/// (not key specs): this is an operator's command on the node that has them, and it moves
/// what of them it has.
pub fn migrate(s: &mut Session, sh: &Shared, a: &mut Args) -> R {
    let spec = super::table::lookup_raw(b"rill.migrate").ok_or(CommandError::Syntax)?;
    let host = a.next_bytes()?;
    let port = a.next_i64()?;
    let timeout = a.next_i64()?;
    let port = u16::try_from(port).map_err(|_| CommandError::Invalid("Invalid port".into()))?;
    let timeout = u64::try_from(timeout).map_err(|_| CommandError::NotPositive)?;
    let mut auth: Option<Vec<Bytes>> = None;
    loop {
        if a.eat("AUTH") {
            auth = Some(vec![a.next_bytes()?]);
        } else if a.eat("AUTH2") {
            auth = Some(vec![a.next_bytes()?, a.next_bytes()?]);
        } else if a.eat("KEYS") {
            break;
        } else {
            return Err(CommandError::Syntax);
        }
    }
    let keys = a.rest();
    if keys.is_empty() {
        return Err(CommandError::Syntax);
    }
    let host = String::from_utf8_lossy(&host).into_owned();
    let addr = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let timeout = Duration::from_millis(timeout.max(1));
    let argv = a.argv().to_vec();
    let moved = locked(s, sh, (spec, &argv), true, |ctx| {
        let mut payloads = Vec::new();
        for key in &keys {
            // A key whose TTL passed is deleted now, as Redis's lookup does, so that it
            // stops being listed by CLUSTER GETKEYSINSLOT (and the reshard moves on).
            if !ctx.ks.contains(ctx.db, key, ctx.now_ms) {
                continue;
            }
            if let Some(ops) = transfer::export(ctx.ks, ctx.db, key, ctx.now_ms)? {
                payloads.push((key.clone(), transfer::encode(ops)));
            }
        }
        if payloads.is_empty() {
            return Ok(0);
        }
        let mut target = Peer::connect_with(&addr, None, timeout).map_err(peer_error)?;
        if let Some(auth) = &auth {
            let mut args: Vec<&[u8]> = vec![b"AUTH"];
            args.extend(auth.iter().map(|b| b.as_ref()));
            target.call(&args).map_err(peer_error)?;
        }
        let last = payloads.len() - 1;
        for (i, (key, payload)) in payloads.iter().enumerate() {
            target.send(&[b"ASKING"]).map_err(peer_error)?;
            let mut args: Vec<&[u8]> = vec![b"RILL.RESTORE", key, payload, b"REPLACE"];
            if i != last {
                args.push(b"NOSYNC");
            }
            target.send(&args).map_err(peer_error)?;
        }
        let mut stored = Vec::new();
        let mut failure = None;
        let mut synced = false;
        for (i, (key, _)) in payloads.iter().enumerate() {
            let asked = target.reply();
            let restored = target.reply();
            match (asked, restored) {
                (Ok(_), Ok(Value::Simple(_))) => {
                    stored.push(key.clone());
                    synced = i == last;
                }
                (Err(e), _) | (_, Err(e)) => {
                    failure.get_or_insert(peer_error(e));
                }
                (Ok(_), Ok(_)) => {
                    failure.get_or_insert(CommandError::TargetError(
                        "unexpected reply to RILL.RESTORE".into(),
                    ));
                }
            }
        }
        // Only what the target acknowledged, and then fsynced with the last key, leaves
        // this node.
        if synced {
            for key in &stored {
                ctx.apply(Op::Del { key: key.clone() })?;
                // As Redis's MIGRATE: each key that left is a `del` here.
                ctx.notify(events::GENERIC, "del", key);
            }
        } else {
            failure.get_or_insert(CommandError::TargetError(
                "the last key of the batch was not stored".into(),
            ));
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(stored.len()),
        }
    })?;
    Ok(if moved == 0 {
        Reply::status("NOKEY")
    } else {
        Reply::Ok
    }
    .into())
}
