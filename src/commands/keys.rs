//! Keyspace commands that work on any key: TYPE, EXISTS, DEL/UNLINK, KEYS, SCAN,
//! RANDOMKEY, DBSIZE, FLUSHDB/FLUSHALL, RENAME/RENAMENX, the EXPIRE family, and
//! plain GET/SET so that mixed keyspaces (and WRONGTYPE) behave as in Redis.

use bytes::Bytes;

use super::args::{parse_i64, parse_u64, Args};
use super::error::CommandError;
use super::glob::glob_match;
use super::{Ctx, Outcome};
use crate::core::keyspace_events as events;
use crate::engine::keyspace::ValueRef;
use crate::engine::op::Op;
use crate::protocol::Reply;

type R = Result<Outcome, CommandError>;

/// TYPE
///
/// # Format
/// `TYPE key`
///
/// # Returns
/// `+stream`, `+string` or `+none`.
pub fn type_(ctx: &mut Ctx<'_>, a: &mut Args) -> R {
    let key = a.next_bytes()?;
    let t = ctx
        .ks
        .get(ctx.db, &key, ctx.now_ms)
        .map_or("none", ValueRef::type_name);
    if t == "none" {
        ctx.key_miss(&key);
    }
    Ok(Reply::status(t).into())
}

/// EXISTS
///
/// # Format
/// `EXISTS key [key ...]`
///
/// # Returns
/// How many of the keys exist (repeats counted).
pub fn exists(ctx: &mut Ctx<'_>, a: &mut Args) -> R {
    let mut n = 0;
    for key in a.rest() {
        if ctx.ks.contains(ctx.db, &key, ctx.now_ms) {
            n += 1;
        } else {
            ctx.key_miss(&key);
        }
    }
    Ok(Reply::Int(n).into())
}

/// DEL / UNLINK
///
/// # Format
/// `DEL key [key ...]`
///
/// # Returns
/// The number of keys removed.
pub fn del(ctx: &mut Ctx<'_>, a: &mut Args) -> R {
    let mut n = 0;
    for key in a.rest() {
        if ctx.ks.contains(ctx.db, &key, ctx.now_ms) {
            ctx.apply(Op::Del { key: key.clone() })?;
            ctx.notify(events::GENERIC, "del", &key);
            n += 1;
        }
    }
    Ok(Reply::Int(n).into())
}

/// KEYS
///
/// # Format
/// `KEYS pattern`
///
/// # Returns
/// The names of all keys matching the glob pattern.
pub fn keys(ctx: &mut Ctx<'_>, a: &mut Args) -> R {
    let pattern = a.next_bytes()?;
    let db = ctx.ks.db(ctx.db);
    let all = pattern.as_ref() == b"*";
    let out: Vec<Reply> = db
        .keys()
        .filter(|k| !db.is_expired(k, ctx.now_ms) && (all || glob_match(&pattern, k, false)))
        .map(|k| Reply::Bulk(Bytes::copy_from_slice(k)))
        .collect();
    Ok(Reply::Array(out).into())
}

/// SCAN
///
/// # Format
/// `SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]`
///
/// # Returns
/// `[next-cursor, [key ...]]`; cursor `0` ends the iteration.
pub fn scan(ctx: &mut Ctx<'_>, a: &mut Args) -> R {
    let cursor = a.next_bytes()?;
    let cursor = parse_u64(&cursor).ok_or(CommandError::InvalidCursor)?;
    let mut pattern = None;
    let mut count = 10usize;
    let mut kind: Option<Bytes> = None;
    while a.remaining() > 0 {
        if a.eat("MATCH") && a.remaining() > 0 {
            pattern = Some(a.next_bytes()?);
        } else if a.eat("COUNT") && a.remaining() > 0 {
            let n = a.next_i64()?;
            if n < 1 {
                return Err(CommandError::Syntax);
            }
            count = n as usize;
        } else if a.eat("TYPE") && a.remaining() > 0 {
            kind = Some(a.next_bytes()?);
        } else {
            return Err(CommandError::Syntax);
        }
    }
    let (next, found) = ctx.ks.db(ctx.db).scan(cursor, count);
    let mut out = Vec::new();
    for key in found {
        if pattern
            .as_ref()
            .is_some_and(|p| !glob_match(p, &key, false))
        {
            continue;
        }
        let Some(v) = ctx.ks.get(ctx.db, &key, ctx.now_ms) else {
            continue;
        };
        if kind
            .as_ref()
            .is_some_and(|t| !t.eq_ignore_ascii_case(v.type_name().as_bytes()))
        {
            continue;
        }
        out.push(Reply::Bulk(key));
    }
    Ok(Reply::Array(vec![Reply::bulk(next.to_string()), Reply::Array(out)]).into())
}

/// RANDOMKEY
///
/// # Format
/// `RANDOMKEY`
///
/// # Returns
/// A random key name, or nil when the database is empty.
pub fn randomkey(ctx: &mut Ctx<'_>, _a: &mut Args) -> R {
    for _ in 0..100 {
        let Some(k) = ctx.ks.db(ctx.db).random_key() else {
            return Ok(Reply::Nil.into());
        };
        if ctx.ks.contains(ctx.db, &k, ctx.now_ms) {
            return Ok(Reply::Bulk(k).into());
        }
    }
    Ok(Reply::Nil.into())
}

/// DBSIZE
///
/// # Format
/// `DBSIZE`
///
/// # Returns
/// The number of keys in the selected database.
pub fn dbsize(ctx: &mut Ctx<'_>, _a: &mut Args) -> R {
    Ok(Reply::Int(ctx.ks.db(ctx.db).len() as i64).into())
}

fn flush_mode(a: &mut Args) -> Result<(), CommandError> {
    if a.remaining() > 0 && !(a.eat("ASYNC") || a.eat("SYNC")) {
        return Err(CommandError::Syntax);
    }
    a.finish()
}

/// FLUSHDB
///
/// # Format
/// `FLUSHDB [ASYNC|SYNC]`
///
/// # Returns
/// `+OK`.
pub fn flushdb(ctx: &mut Ctx<'_>, a: &mut Args) -> R {
    flush_mode(a)?;
    ctx.apply(Op::FlushDb)?;
    Ok(Reply::Ok.into())
}

/// FLUSHALL
///
/// # Format
/// `FLUSHALL [ASYNC|SYNC]`
///
/// # Returns
/// `+OK`.
pub fn flushall(ctx: &mut Ctx<'_>, a: &mut Args) -> R {
    flush_mode(a)?;
    ctx.apply(Op::FlushAll)?;
    Ok(Reply::Ok.into())
}

fn rename_generic(ctx: &mut Ctx<'_>, a: &mut Args, nx: bool) -> Result<bool, CommandError> {
    let from = a.next_bytes()?;
    let to = a.next_bytes()?;
    if !ctx.ks.contains(ctx.db, &from, ctx.now_ms) {
        return Err(CommandError::NoSuchKey);
    }
    if from == to {
        return Ok(!nx);
    }
    if nx && ctx.ks.contains(ctx.db, &to, ctx.now_ms) {
        return Ok(false);
    }
    // `to` may hold an expired key: its DEL is logged before the rename.
    let replaced = ctx.ks.get(ctx.db, &to, ctx.now_ms).map(ValueRef::type_name);
    let moved = ctx
        .ks
        .get(ctx.db, &from, ctx.now_ms)
        .map(ValueRef::type_name);
    ctx.apply(Op::Rename {
        from: from.clone(),
        to: to.clone(),
    })?;
    ctx.notify(events::GENERIC, "rename_from", &from);
    ctx.notify(events::GENERIC, "rename_to", &to);
    if let Some(old) = replaced {
        ctx.notify(events::OVERWRITTEN, "overwritten", &to);
        if Some(old) != moved {
            ctx.notify(events::TYPE_CHANGED, "type_changed", &to);
        }
    }
    Ok(true)
}

/// RENAME
///
/// # Format
/// `RENAME key newkey`
///
/// # Returns
/// `+OK`, or `ERR no such key`.
pub fn rename(ctx: &mut Ctx<'_>, a: &mut Args) -> R {
    rename_generic(ctx, a, false)?;
    Ok(Reply::Ok.into())
}

/// RENAMENX
///
/// # Format
/// `RENAMENX key newkey`
///
/// # Returns
/// 1 if renamed, 0 if `newkey` already exists.
pub fn renamenx(ctx: &mut Ctx<'_>, a: &mut Args) -> R {
    let done = rename_generic(ctx, a, true)?;
    Ok(Reply::Int(done as i64).into())
}

/// Shared body of EXPIRE/PEXPIRE/EXPIREAT/PEXPIREAT (Redis's `expireGenericCommand`).
fn expire_generic(ctx: &mut Ctx<'_>, a: &mut Args, name: &str, unit_ms: i64, absolute: bool) -> R {
    let key = a.next_bytes()?;
    // Parsed after the options: Redis reports a bad option before a bad number.
    let when = a.next_bytes()?;
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    while let Some(opt) = a.next() {
        match String::from_utf8_lossy(&opt).to_ascii_uppercase().as_str() {
            "NX" => nx = true,
            "XX" => xx = true,
            "GT" => gt = true,
            "LT" => lt = true,
            _ => {
                return Err(CommandError::Invalid(format!(
                    "Unsupported option {}",
                    String::from_utf8_lossy(&opt)
                )))
            }
        }
    }
    if nx && (xx || gt || lt) {
        return Err(CommandError::ExpireOptionsIncompatible);
    }
    if gt && lt {
        return Err(CommandError::ExpireGtLt);
    }
    let when = parse_i64(&when).ok_or(CommandError::NotInteger)?;
    // Negative times are allowed (the key is deleted), but an overflow in the unit
    // conversion or the addition of the clock is refused, as Redis does.
    let invalid = || CommandError::InvalidExpire(name.to_string());
    let mut at = when.checked_mul(unit_ms).ok_or_else(invalid)?;
    if !absolute {
        at = at.checked_add(ctx.now_ms as i64).ok_or_else(invalid)?;
    }
    if !ctx.ks.contains(ctx.db, &key, ctx.now_ms) {
        return Ok(Reply::Int(0).into());
    }
    let current = ctx.ks.db(ctx.db).expire_at(&key);
    // A key without TTL counts as an infinite TTL for GT/LT.
    let refused = (nx && current.is_some())
        || (xx && current.is_none())
        || (gt && current.is_none_or(|c| at <= c as i64))
        || (lt && current.is_some_and(|c| at >= c as i64));
    if refused {
        return Ok(Reply::Int(0).into());
    }
    if at <= ctx.now_ms as i64 {
        ctx.apply(Op::Del { key: key.clone() })?;
        ctx.notify(events::GENERIC, "del", &key);
    } else {
        ctx.apply(Op::ExpireAt {
            key: key.clone(),
            at_ms: at as u64,
        })?;
        ctx.signal_modified(&key);
        ctx.notify(events::GENERIC, "expire", &key);
    }
    Ok(Reply::Int(1).into())
}

/// EXPIRE
///
/// # Format
/// `EXPIRE key seconds [NX|XX|GT|LT]`
///
/// # Returns
/// 1 if the timeout was set, 0 otherwise.
pub fn expire(ctx: &mut Ctx<'_>, a: &mut Args) -> R {
    expire_generic(ctx, a, "expire", 1000, false)
}

/// PEXPIRE
///
/// # Format
/// `PEXPIRE key milliseconds [NX|XX|GT|LT]`
///
/// # Returns
/// 1 if the timeout was set, 0 otherwise.
pub fn pexpire(ctx: &mut Ctx<'_>, a: &mut Args) -> R {
    expire_generic(ctx, a, "pexpire", 1, false)
}

/// EXPIREAT
///
/// # Format
/// `EXPIREAT key unix-time-seconds [NX|XX|GT|LT]`
///
/// # Returns
/// 1 if the timeout was set, 0 otherwise.
pub fn expireat(ctx: &mut Ctx<'_>, a: &mut Args) -> R {
    expire_generic(ctx, a, "expireat", 1000, true)
}

/// PEXPIREAT
///
/// # Format
/// `PEXPIREAT key unix-time-milliseconds [NX|XX|GT|LT]`
///
/// # Returns
/// 1 if the timeout was set, 0 otherwise.
pub fn pexpireat(ctx: &mut Ctx<'_>, a: &mut Args) -> R {
    expire_generic(ctx, a, "pexpireat", 1, true)
}

fn ttl_generic(ctx: &mut Ctx<'_>, a: &mut Args, unit_ms: u64) -> R {
    let key = a.next_bytes()?;
    if !ctx.ks.contains(ctx.db, &key, ctx.now_ms) {
        ctx.key_miss(&key);
        return Ok(Reply::Int(-2).into());
    }
    Ok(Reply::Int(match ctx.ks.db(ctx.db).expire_at(&key) {
        None => -1,
        Some(at) => {
            let left = at.saturating_sub(ctx.now_ms);
            ((left + unit_ms / 2) / unit_ms) as i64
        }
    })
    .into())
}

/// TTL
///
/// # Format
/// `TTL key`
///
/// # Returns
/// Seconds to live, -1 without expiry, -2 when the key does not exist.
pub fn ttl(ctx: &mut Ctx<'_>, a: &mut Args) -> R {
    ttl_generic(ctx, a, 1000)
}

/// PTTL
///
/// # Format
/// `PTTL key`
///
/// # Returns
/// Milliseconds to live, -1 without expiry, -2 when the key does not exist.
pub fn pttl(ctx: &mut Ctx<'_>, a: &mut Args) -> R {
    ttl_generic(ctx, a, 1)
}

/// PERSIST
///
/// # Format
/// `PERSIST key`
///
/// # Returns
/// 1 if a timeout was removed, 0 otherwise.
pub fn persist(ctx: &mut Ctx<'_>, a: &mut Args) -> R {
    let key = a.next_bytes()?;
    if !ctx.ks.contains(ctx.db, &key, ctx.now_ms) {
        return Ok(Reply::Int(0).into());
    }
    if ctx.ks.db(ctx.db).expire_at(&key).is_none() {
        return Ok(Reply::Int(0).into());
    }
    ctx.apply(Op::Persist { key: key.clone() })?;
    ctx.signal_modified(&key);
    ctx.notify(events::GENERIC, "persist", &key);
    Ok(Reply::Int(1).into())
}

/// GET
///
/// # Format
/// `GET key`
///
/// # Returns
/// The string value, nil, or WRONGTYPE for a stream.
pub fn get(ctx: &mut Ctx<'_>, a: &mut Args) -> R {
    let key = a.next_bytes()?;
    match ctx.ks.get(ctx.db, &key, ctx.now_ms) {
        None => {
            ctx.key_miss(&key);
            Ok(Reply::Nil.into())
        }
        Some(ValueRef::String(v)) => Ok(Reply::Bulk(Bytes::copy_from_slice(v)).into()),
        Some(_) => Err(CommandError::WrongType),
    }
}

/// SET
///
/// # Format
/// `SET key value [NX|XX] [EX seconds|PX milliseconds]`
///
/// # Returns
/// `+OK`, or nil when NX/XX prevented the write.
pub fn set(ctx: &mut Ctx<'_>, a: &mut Args) -> R {
    let key = a.next_bytes()?;
    let value = a.next_bytes()?;
    let (mut nx, mut xx) = (false, false);
    // (the argument, its unit in ms): read only once every option parsed, since Redis
    // reports a syntax error before a bad number.
    let mut ttl: Option<(Bytes, i64)> = None;
    while let Some(opt) = a.next() {
        match String::from_utf8_lossy(&opt).to_ascii_uppercase().as_str() {
            "NX" if !xx => nx = true,
            "XX" if !nx => xx = true,
            "EX" if ttl.is_none() => ttl = Some((a.next_bytes()?, 1000)),
            "PX" if ttl.is_none() => ttl = Some((a.next_bytes()?, 1)),
            _ => return Err(CommandError::Syntax),
        }
    }
    let at = match ttl {
        Some((n, unit_ms)) => {
            let n = parse_i64(&n).ok_or(CommandError::NotInteger)?;
            Some(relative_expire_at(n, unit_ms, ctx.now_ms, "set")?)
        }
        None => None,
    };
    let exists = ctx.ks.contains(ctx.db, &key, ctx.now_ms);
    if (nx && exists) || (xx && !exists) {
        return Ok(Reply::Nil.into());
    }
    let was_stream = matches!(
        ctx.ks.get(ctx.db, &key, ctx.now_ms),
        Some(ValueRef::Stream(_))
    );
    ctx.apply(Op::SetString {
        key: key.clone(),
        value,
        at_ms: at,
    })?;
    // Redis's setKey: `overwritten` (and `type_changed`) for an existing key, `new`
    // (`Ctx::apply`'s) for a created one; then SET's own events.
    if exists {
        ctx.notify(events::OVERWRITTEN, "overwritten", &key);
        if was_stream {
            ctx.notify(events::TYPE_CHANGED, "type_changed", &key);
        }
    }
    ctx.notify(events::STRING, "set", &key);
    if at.is_some() {
        ctx.notify(events::GENERIC, "expire", &key);
    }
    ctx.signal_modified(&key);
    if was_stream {
        // A reader blocked on this stream must re-run and see WRONGTYPE.
        ctx.signal_ready(&key);
    }
    Ok(Reply::Ok.into())
}

/// The absolute expiry (Unix ms) of a TTL given to SET as `n` units of `unit_ms`, checked as
/// Redis's `getExpireMillisecondsOrReply` does: the TTL must be positive, and neither its
/// conversion to milliseconds nor adding the clock may overflow a signed 64-bit integer. The
/// result is what the log records as `PEXPIREAT`, and replay parses that as a signed integer:
/// a time past `i64::MAX` would be acknowledged and then refuse every later start.
fn relative_expire_at(n: i64, unit_ms: i64, now_ms: u64, name: &str) -> Result<u64, CommandError> {
    let invalid = || CommandError::InvalidExpire(name.to_string());
    if n <= 0 {
        return Err(invalid());
    }
    let at = n
        .checked_mul(unit_ms)
        .and_then(|ms| ms.checked_add(i64::try_from(now_ms).ok()?))
        .ok_or_else(invalid)?;
    // Positive: both terms are.
    Ok(at as u64)
}
