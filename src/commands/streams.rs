//! The core stream commands: XADD, XRANGE, XREVRANGE, XLEN, XDEL, XTRIM, XREAD, XSETID.
//!
//! Each command is a struct of parsed arguments with `parse` (every syntax error) and
//! `apply` (against the keyspace). Argument errors come out in the order Redis's
//! `t_stream.c` finds them, because clients and test-suites match on the first error.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{Args, Blocked, BlockedRead, CommandError, Ctx, Outcome};
use crate::commands::args::parse_i64;
use crate::core::detached;
use crate::core::keyspace_events as events;
use crate::engine::error::StreamError;
use crate::engine::id::{AddIdSpec, StreamId};
use crate::engine::idmp::IdmpError;
use crate::engine::index::{NodeLimits, TrimRule};
use crate::engine::op::{Applied, Op};
use crate::engine::refs::RefPolicy;
use crate::engine::stream::{Entry, Stream, TrimSpec};
use crate::protocol::Reply;

/// A blocked XREAD without COUNT is served at most this many entries per stream, as Redis.
const XREAD_BLOCKED_DEFAULT_COUNT: usize = 1000;

/// `[id, [field, value, …]]`, the shape of one entry in every stream reply.
pub fn entry_reply(e: &Entry) -> Reply {
    Reply::Array(vec![
        Reply::Bulk(e.id.to_bytes()),
        Reply::Array(e.fields.iter().cloned().map(Reply::Bulk).collect()),
    ])
}

/// An array of entries.
pub fn entries_reply(entries: &[Entry]) -> Reply {
    Reply::Array(entries.iter().map(entry_reply).collect())
}

/// XREAD/XREADGROUP's outer shape: an array of `[key, entries]` in RESP2, a map in RESP3.
pub fn keyed_reply(proto: u8, per_key: Vec<(Bytes, Reply)>) -> Reply {
    if proto >= 3 {
        Reply::Map(
            per_key
                .into_iter()
                .map(|(k, v)| (Reply::Bulk(k), v))
                .collect(),
        )
    } else {
        Reply::Array(
            per_key
                .into_iter()
                .map(|(k, v)| Reply::Array(vec![Reply::Bulk(k), v]))
                .collect(),
        )
    }
}

/// MAXCOUNT and MAXSIZE (Redis 8.10): limits on a whole XREAD / XREADGROUP reply, across
/// all of its streams, where COUNT limits each stream.
///
/// - MAXCOUNT: at most this many entries in total, filled in command order; once reached,
///   later streams are not served (they are left out of the reply).
/// - MAXSIZE: a soft cap on the reply's RESP bytes, protocol overhead included: checked
///   before each next entry, so the reply stops at the first entry that would start at or
///   beyond the cap. Array headers are counted as if they held one element.
/// - At least one entry is always served, however large.
/// - An entry left out is neither sent nor delivered: it stays out of the PEL, and the
///   group's last-delivered ID does not move past it.
/// - Both apply to new (`>`) reads, history reads and claimed entries, and again when a
///   blocked read is served.
///
/// Validation (Redis 8.10's error texts are not published; these follow Redis's wording
/// for the same checks elsewhere): a value that is not an integer gets
/// `ERR value is not an integer or out of range`; 0 or less gets
/// `ERR value is out of range, must be positive`; MAXCOUNT below a positive COUNT gets
/// `ERR MAXCOUNT must be greater than or equal to COUNT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReplyLimits {
    /// MAXCOUNT: entries in the whole reply.
    pub max_count: Option<u64>,
    /// MAXSIZE: bytes of the whole reply (soft).
    pub max_size: Option<u64>,
}

impl ReplyLimits {
    /// Parses the value of MAXCOUNT or MAXSIZE: a positive integer.
    pub fn parse_value(raw: &[u8]) -> Result<u64, CommandError> {
        let n = parse_i64(raw).ok_or(CommandError::NotInteger)?;
        if n <= 0 {
            return Err(StreamError::ReadLimitNotPositive.into());
        }
        Ok(n.unsigned_abs())
    }

    /// The check made once all options are read: MAXCOUNT may not be below COUNT.
    pub fn check_count(&self, count: usize) -> Result<(), CommandError> {
        match self.max_count {
            Some(max) if count > 0 && (count as u64) > max => {
                Err(StreamError::MaxCountBelowCount.into())
            }
            _ => Ok(()),
        }
    }
}

/// What is left of a reply's [`ReplyLimits`] while it is being built.
#[derive(Debug)]
pub struct ReplyBudget {
    limits: ReplyLimits,
    proto: u8,
    entries: u64,
    bytes: u64,
    /// The current stream's key and headers, counted with its first entry.
    pending_key: Option<u64>,
}

/// Bytes of a RESP aggregate header holding one element (`*1\r\n`, `%1\r\n`).
const HEADER_BYTES: u64 = 4;

impl ReplyBudget {
    /// A budget for one reply.
    pub fn new(limits: ReplyLimits, proto: u8) -> Self {
        ReplyBudget {
            limits,
            proto,
            entries: 0,
            bytes: HEADER_BYTES,
            pending_key: None,
        }
    }

    /// Whether one more entry may go in: always the first one, then while under both caps.
    pub fn admits(&self) -> bool {
        if self.entries == 0 {
            return true;
        }
        let count_ok = self.limits.max_count.is_none_or(|max| self.entries < max);
        let size_ok = self.limits.max_size.is_none_or(|max| self.bytes < max);
        count_ok && size_ok
    }

    /// At most how many more entries may go in (`None`: no count limit).
    pub fn remaining(&self) -> Option<usize> {
        self.limits
            .max_count
            .map(|max| usize::try_from(max.saturating_sub(self.entries)).unwrap_or(usize::MAX))
    }

    /// A per-stream COUNT (0 = none) further limited by what MAXCOUNT leaves.
    pub fn limit(&self, count: usize) -> usize {
        match (count, self.remaining()) {
            (0, None) => 0,
            (0, Some(left)) => left.max(1),
            (count, None) => count,
            (count, Some(left)) => count.min(left.max(1)),
        }
    }

    /// Starts the part of the reply for stream `key`; its bytes count with its first entry.
    pub fn open(&mut self, key: &[u8]) {
        if self.limits.max_size.is_some() {
            let key_bytes = Reply::Bulk(Bytes::copy_from_slice(key))
                .to_bytes(self.proto)
                .len() as u64;
            // RESP2 wraps each stream in `[key, entries]`; RESP3 maps key → entries.
            let wrapper = if self.proto >= 3 { 0 } else { HEADER_BYTES };
            self.pending_key = Some(wrapper + key_bytes + HEADER_BYTES);
        }
    }

    /// Counts one entry (its reply as it will be sent).
    pub fn take(&mut self, entry: &Reply) {
        self.entries += 1;
        if self.limits.max_size.is_some() {
            let key = self.pending_key.take().unwrap_or(0);
            self.bytes = self
                .bytes
                .saturating_add(key)
                .saturating_add(entry.to_bytes(self.proto).len() as u64);
        }
    }
}

fn node_limits(ctx: &Ctx<'_>) -> NodeLimits {
    let (entries, bytes) = ctx.stream_node_limits();
    NodeLimits {
        max_entries: entries as u64,
        max_bytes: bytes as u64,
    }
}

/// Parses a strict ID argument (no `-`/`+`), as XDEL, XSETID and MINID do.
fn strict_id(arg: &[u8]) -> Result<StreamId, CommandError> {
    Ok(StreamId::parse_strict(arg, 0)?)
}

// ---------------------------------------------------------------------------
// Shared XADD/XTRIM option parsing
// ---------------------------------------------------------------------------

/// The trimming clause and XADD options, as `streamParseAddOrTrimArgsOrReply` reads them.
#[derive(Debug, Default)]
struct AddTrimOptions {
    trim: Option<TrimSpec>,
    no_mkstream: bool,
    /// XADD only: the ID argument and its position in argv (fields follow it).
    id: Option<AddIdSpec>,
    id_pos: usize,
    /// XADD only: `IDMP pid iid` or `IDMPAUTO pid`.
    idmp: Option<Idempotency>,
}

/// XADD's idempotency option (Redis 8.6): the producer, and its IID or `None` for
/// IDMPAUTO (derived from the fields once they are known).
#[derive(Debug, Clone)]
struct Idempotency {
    pid: Bytes,
    iid: Option<Bytes>,
}

/// Reads options from argv[2..] the way Redis does: one left-to-right pass, each option
/// validated as it is met, then the cross-option checks in Redis's order.
fn parse_add_or_trim(
    argv: &[Bytes],
    xadd: bool,
    node_max_entries: u64,
) -> Result<AddTrimOptions, CommandError> {
    enum Strategy {
        None,
        MaxLen(u64),
        MinId(StreamId),
    }
    let mut strategy = Strategy::None;
    let mut approx = false;
    let mut limit: i64 = 0;
    let mut limit_given = false;
    let mut refs = None;
    let mut opts = AddTrimOptions::default();
    let argc = argv.len();
    let mut i = 2;
    while i < argc {
        let more = argc - 1 - i;
        let opt = &argv[i][..];
        if xadd && opt == b"*" {
            opts.id = Some(AddIdSpec::Auto);
            break;
        } else if (opt.eq_ignore_ascii_case(b"maxlen") || opt.eq_ignore_ascii_case(b"minid"))
            && more > 0
        {
            if !matches!(strategy, Strategy::None) {
                return Err(StreamError::MaxlenAndMinid.into());
            }
            approx = false;
            let next = &argv[i + 1][..];
            if more >= 2 && next == b"~" {
                approx = true;
                i += 1;
            } else if more >= 2 && next == b"=" {
                i += 1;
            }
            let threshold = &argv[i + 1];
            strategy = if opt.eq_ignore_ascii_case(b"maxlen") {
                let n = parse_i64(threshold).ok_or(CommandError::NotInteger)?;
                let n = u64::try_from(n).map_err(|_| StreamError::NegativeMaxlen)?;
                Strategy::MaxLen(n)
            } else {
                Strategy::MinId(strict_id(threshold)?)
            };
            i += 1;
        } else if opt.eq_ignore_ascii_case(b"limit") && more > 0 {
            limit = parse_i64(&argv[i + 1]).ok_or(CommandError::NotInteger)?;
            if limit < 0 {
                return Err(StreamError::NegativeLimit.into());
            }
            limit_given = true;
            i += 1;
        } else if let Some(policy) = RefPolicy::parse(opt).filter(|_| refs.is_none()) {
            // Once only: a second one is not an option (XADD then reads it as the ID).
            refs = Some(policy);
        } else if xadd && opt.eq_ignore_ascii_case(b"nomkstream") {
            opts.no_mkstream = true;
        } else if xadd && opt.eq_ignore_ascii_case(b"idmpauto") && more > 0 {
            if opts.idmp.is_some() {
                return Err(IdmpError::SpecifiedTwice.into());
            }
            let pid = &argv[i + 1];
            if pid.is_empty() {
                return Err(IdmpError::AutoEmptyProducer.into());
            }
            opts.idmp = Some(Idempotency {
                pid: pid.clone(),
                iid: None,
            });
            i += 1;
        } else if xadd && opt.eq_ignore_ascii_case(b"idmp") && more >= 2 {
            if opts.idmp.is_some() {
                return Err(IdmpError::SpecifiedTwice.into());
            }
            let (pid, iid) = (&argv[i + 1], &argv[i + 2]);
            if pid.is_empty() {
                return Err(IdmpError::EmptyProducer.into());
            }
            if iid.is_empty() {
                return Err(IdmpError::EmptyIid.into());
            }
            opts.idmp = Some(Idempotency {
                pid: pid.clone(),
                iid: Some(iid.clone()),
            });
            i += 2;
        } else if xadd {
            opts.id = Some(AddIdSpec::parse(opt)?);
            // Only `*` (handled above) may carry IDMP: a re-sent explicit ID could not be
            // told from a new entry. (Redis lets replicas and AOF through; Rill's log
            // carries ops, not commands, so no client needs that.)
            if opts.idmp.is_some() {
                return Err(IdmpError::ExplicitId.into());
            }
            break;
        } else {
            return Err(CommandError::Syntax);
        }
        i += 1;
    }
    opts.id_pos = i;
    if limit != 0 && matches!(strategy, Strategy::None) {
        return Err(StreamError::LimitWithoutStrategy.into());
    }
    if !xadd && matches!(strategy, Strategy::None) {
        return Err(StreamError::TrimWithoutStrategy.into());
    }
    if limit_given && !approx {
        return Err(StreamError::LimitWithoutApprox.into());
    }
    if !limit_given {
        limit = if approx {
            // At most 100 nodes of work per trim, bounded as Redis bounds it.
            let l = 100i64.saturating_mul(node_max_entries as i64);
            if l <= 0 {
                10_000
            } else {
                l.min(1_000_000)
            }
        } else {
            0
        };
    }
    let rule = match strategy {
        Strategy::None => None,
        Strategy::MaxLen(n) => Some(TrimRule::MaxLen(n)),
        Strategy::MinId(id) => Some(TrimRule::MinId(id)),
    };
    opts.trim = rule.map(|rule| TrimSpec {
        rule,
        approx,
        limit: limit as u64,
        refs: refs.unwrap_or_default(),
    });
    Ok(opts)
}

// ---------------------------------------------------------------------------
// XADD
// ---------------------------------------------------------------------------

/// Appends an entry, creating the stream unless NOMKSTREAM, then trims if asked.
///
/// With `IDMP pid iid` (or `IDMPAUTO pid`, whose IID is a hash of the fields) an XADD
/// whose IID producer `pid` already sent is not appended: it is answered with the ID the
/// first one got (even if that entry is gone since), nothing is trimmed and no reader is
/// woken (Redis 8.6's idempotent production; see `engine::idmp`).
///
/// # Format
/// ```text
/// XADD key [NOMKSTREAM] [KEEPREF|DELREF|ACKED] [IDMPAUTO pid | IDMP pid iid]
///      [MAXLEN|MINID [=|~] threshold [LIMIT count]] *|id field value [field value ...]
/// ```
/// # Returns
/// The new entry's ID as a bulk string (the original entry's for a duplicate); a null bulk
/// with NOMKSTREAM on a missing key.
#[derive(Debug)]
pub struct XAdd {
    key: Bytes,
    opts: AddTrimOptions,
    fields: Vec<Bytes>,
}

impl XAdd {
    /// Parses XADD; arity and ID errors in Redis's order.
    pub fn parse(args: &Args, node_max_entries: u64) -> Result<Self, CommandError> {
        let argv = args.argv();
        let opts = parse_add_or_trim(argv, true, node_max_entries)?;
        let field_pos = opts.id_pos + 1;
        let nfields = argv.len().saturating_sub(field_pos);
        if opts.id.is_none() || field_pos > argv.len() || nfields < 2 || !nfields.is_multiple_of(2)
        {
            return Err(CommandError::WrongArity("xadd".into()));
        }
        Ok(XAdd {
            key: argv[1].clone(),
            fields: argv[field_pos..].to_vec(),
            opts,
        })
    }

    /// Runs XADD: an `Append` op with the ID it got, then, if it trims, a `Trim` op
    /// (logged as the exact rule that removed what it removed, see `engine::op`).
    /// NOMKSTREAM on a missing key changes nothing.
    pub fn apply(self, ctx: &mut Ctx<'_>) -> Result<Reply, CommandError> {
        let spec = self.opts.id.unwrap_or(AddIdSpec::Auto);
        // Refused before the key is looked up, so no empty stream is left behind.
        if spec == AddIdSpec::Explicit(StreamId::MIN) {
            return Err(StreamError::AddIdZero.into());
        }
        let now = ctx.now_ms;
        let iid = self.opts.idmp.as_ref().map(|i| match &i.iid {
            Some(iid) => iid.clone(),
            None => Bytes::copy_from_slice(&crate::engine::idmp::auto_iid(&self.fields)),
        });
        let (id, created) = match ctx.stream(&self.key)? {
            Some(stream) => {
                if let (Some(idmp), Some(iid)) = (&self.opts.idmp, &iid) {
                    if let Some(original) = stream.idmp().lookup(&idmp.pid, iid) {
                        return duplicate(ctx, &self.key, original);
                    }
                    if stream.is_exhausted() && !stream.idmp().has_producer(&idmp.pid) {
                        // Redis has created the producer by the time it finds the
                        // stream full; `pids-tracked` shows it.
                        ctx.apply(Op::IdmpProducer {
                            key: self.key.clone(),
                            pid: idmp.pid.clone(),
                        })?;
                    }
                }
                (stream_next_id(ctx, &self.key, spec, now)?, false)
            }
            None if self.opts.no_mkstream => return Ok(Reply::Nil),
            None => (Stream::new().next_id(spec, now)?, true),
        };
        ctx.apply(Op::Append {
            key: self.key.clone(),
            id,
            fields: self.fields,
        })?;
        ctx.notify(events::STREAM, "xadd", &self.key);
        if created {
            configure_new_stream(ctx, &self.key)?;
        }
        if let (Some(idmp), Some(iid)) = (self.opts.idmp, iid) {
            ctx.apply(Op::IdmpRecord {
                key: self.key.clone(),
                pid: idmp.pid,
                iid,
                id,
            })?;
        }
        if let Some(spec) = self.opts.trim {
            if trim(ctx, &self.key, spec)? > 0 {
                ctx.notify(events::STREAM, "xtrim", &self.key);
            }
        }
        ctx.signal_modified(&self.key);
        ctx.signal_ready(&self.key);
        Ok(Reply::Bulk(id.to_bytes()))
    }
}

/// The ID the next XADD to the existing stream under `key` gets.
fn stream_next_id(
    ctx: &mut Ctx<'_>,
    key: &[u8],
    spec: AddIdSpec,
    now: u64,
) -> Result<StreamId, CommandError> {
    match ctx.stream(key)? {
        Some(s) => Ok(s.next_id(spec, now)?),
        None => Ok(Stream::new().next_id(spec, now)?),
    }
}

/// An XADD IDMP whose IID was already recorded: counted (logged, so `iids-duplicates`
/// survives a restart, and so the reply waits until the original entry is durable) and
/// answered with the original ID. Nothing else happens: no trim, no wake-up, and — as in
/// Redis 8.6.3, which calls `keyModified(…, 0)` here — WATCHers are not disturbed.
fn duplicate(ctx: &mut Ctx<'_>, key: &Bytes, original: StreamId) -> Result<Reply, CommandError> {
    ctx.apply(Op::IdmpDuplicate { key: key.clone() })?;
    Ok(Reply::Bulk(original.to_bytes()))
}

/// Gives a stream just created under `key` the IDMP limits configured now (see
/// [`Ctx::configure_new_stream`]).
pub fn configure_new_stream(ctx: &mut Ctx<'_>, key: &Bytes) -> Result<(), CommandError> {
    ctx.configure_new_stream(key)
}

/// Trims the stream under `key` and returns the entries removed. Logged unless it changed
/// nothing (no entry and no emptied node went).
fn trim(ctx: &mut Ctx<'_>, key: &Bytes, spec: TrimSpec) -> Result<u64, CommandError> {
    if ctx.stream(key)?.is_none() {
        return Ok(0);
    }
    match ctx.apply(Op::Trim {
        key: key.clone(),
        spec,
    })? {
        Applied::Count(n) => Ok(n),
        _ => Ok(0),
    }
}

/// Handler for XADD.
pub fn xadd(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<Outcome, CommandError> {
    let cmd = XAdd::parse(args, node_limits(ctx).max_entries)?;
    Ok(cmd.apply(ctx)?.into())
}

// ---------------------------------------------------------------------------
// XTRIM
// ---------------------------------------------------------------------------

/// Trims a stream from its head.
///
/// # Format
/// ```text
/// XTRIM key MAXLEN|MINID [=|~] threshold [LIMIT count] [KEEPREF|DELREF|ACKED]
/// ```
/// Options may come in any order; KEEPREF (the default) leaves the groups' PEL entries of
/// trimmed entries, DELREF removes them, ACKED trims only entries no group references.
/// # Returns
/// Integer: entries removed (0 for a missing key).
#[derive(Debug)]
pub struct XTrim {
    key: Bytes,
    spec: TrimSpec,
}

impl XTrim {
    /// Parses XTRIM.
    pub fn parse(args: &Args, node_max_entries: u64) -> Result<Self, CommandError> {
        let argv = args.argv();
        let opts = parse_add_or_trim(argv, false, node_max_entries)?;
        let spec = opts.trim.ok_or(StreamError::TrimWithoutStrategy)?;
        Ok(XTrim {
            key: argv[1].clone(),
            spec,
        })
    }

    /// Runs XTRIM (see [`trim`]).
    pub fn apply(self, ctx: &mut Ctx<'_>) -> Result<Reply, CommandError> {
        let removed = trim(ctx, &self.key, self.spec)?;
        if removed > 0 {
            ctx.signal_modified(&self.key);
            ctx.notify(events::STREAM, "xtrim", &self.key);
        }
        Ok(Reply::Int(removed as i64))
    }
}

/// Handler for XTRIM.
pub fn xtrim(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<Outcome, CommandError> {
    let cmd = XTrim::parse(args, node_limits(ctx).max_entries)?;
    Ok(cmd.apply(ctx)?.into())
}

// ---------------------------------------------------------------------------
// XDEL / XLEN
// ---------------------------------------------------------------------------

/// Deletes entries by ID.
///
/// # Format
/// ```text
/// XDEL key id [id ...]
/// ```
/// # Returns
/// Integer: entries actually deleted (0 for a missing key, even with invalid IDs,
/// because Redis looks the key up first). One invalid ID fails the whole command.
#[derive(Debug)]
pub struct XDel {
    key: Bytes,
    ids: Vec<Bytes>,
}

impl XDel {
    /// Parses XDEL (IDs are validated in `apply`, after the key lookup, as Redis does).
    pub fn parse(args: &mut Args) -> Result<Self, CommandError> {
        let key = args.next_bytes()?;
        Ok(XDel {
            key,
            ids: args.rest(),
        })
    }

    /// Runs XDEL. Nothing deleted, nothing logged.
    pub fn apply(self, ctx: &mut Ctx<'_>) -> Result<Reply, CommandError> {
        if ctx.stream(&self.key)?.is_none() {
            return Ok(Reply::Int(0));
        }
        let ids = self
            .ids
            .iter()
            .map(|a| strict_id(a))
            .collect::<Result<Vec<_>, _>>()?;
        let deleted = match ctx.apply(Op::DeleteEntries {
            key: self.key.clone(),
            ids,
        })? {
            Applied::Count(n) => n,
            _ => 0,
        };
        if deleted > 0 {
            ctx.signal_modified(&self.key);
            ctx.notify(events::STREAM, "xdel", &self.key);
        }
        Ok(Reply::Int(deleted as i64))
    }
}

/// Handler for XDEL.
pub fn xdel(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<Outcome, CommandError> {
    let cmd = XDel::parse(args)?;
    Ok(cmd.apply(ctx)?.into())
}

/// Counts a stream's entries.
///
/// # Format
/// ```text
/// XLEN key
/// ```
/// # Returns
/// Integer: live entries, 0 for a missing key.
pub fn xlen(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<Outcome, CommandError> {
    let key = args.next_bytes()?;
    args.finish()?;
    let Some(stream) = ctx.stream(&key)? else {
        ctx.key_miss(&key);
        return Ok(Reply::Int(0).into());
    };
    let len = stream.len();
    Ok(Reply::Int(len as i64).into())
}

// ---------------------------------------------------------------------------
// XRANGE / XREVRANGE
// ---------------------------------------------------------------------------

/// Reads a range of entries, ascending (XRANGE) or descending (XREVRANGE).
///
/// # Format
/// ```text
/// XRANGE key start end [COUNT count]
/// XREVRANGE key end start [COUNT count]
/// ```
/// `-`/`+` are the extremes, a bare `ms` is `ms-0` as a start and `ms-MAX` as an end,
/// `(id` is exclusive.
/// # Returns
/// Array of `[id, [field, value, ...]]`; empty for a missing key; a null array when
/// COUNT is 0 or negative (a Redis quirk).
#[derive(Debug)]
pub struct XRange {
    key: Bytes,
    start: StreamId,
    end: StreamId,
    count: Option<i64>,
    rev: bool,
}

impl XRange {
    /// Parses XRANGE (`rev = false`) or XREVRANGE (`rev = true`).
    pub fn parse(args: &mut Args, rev: bool) -> Result<Self, CommandError> {
        let key = args.next_bytes()?;
        let a = args.next_bytes()?;
        let b = args.next_bytes()?;
        let (start_arg, end_arg) = if rev { (b, a) } else { (a, b) };
        let start = StreamId::parse_range_bound(&start_arg, 0)?
            .as_start()
            .ok_or(StreamError::InvalidStartId)?;
        let end = StreamId::parse_range_bound(&end_arg, u64::MAX)?
            .as_end()
            .ok_or(StreamError::InvalidEndId)?;
        let mut count = None;
        while args.remaining() > 0 {
            if args.remaining() >= 2 && args.eat("COUNT") {
                let n = args.next_i64()?;
                count = Some(n.max(0));
            } else {
                return Err(CommandError::Syntax);
            }
        }
        Ok(XRange {
            key,
            start,
            end,
            count,
            rev,
        })
    }

    /// Runs the range read.
    pub fn apply(self, ctx: &mut Ctx<'_>) -> Result<Reply, CommandError> {
        let store = ctx.store();
        let room = ctx.reply_room;
        let Some(stream) = ctx.stream(&self.key)? else {
            ctx.key_miss(&self.key);
            return Ok(Reply::Array(Vec::new()));
        };
        if self.count == Some(0) {
            return Ok(Reply::NilArray);
        }
        let count = self.count.map(|n| usize::try_from(n).unwrap_or(usize::MAX));
        let ranged = stream.range_within(self.start, self.end, count, self.rev, &store, room)?;
        ctx.over_limit |= !ranged.beyond.is_empty();
        Ok(entries_reply(&ranged.entries))
    }
}

/// Handler for XRANGE.
pub fn xrange(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<Outcome, CommandError> {
    let cmd = XRange::parse(args, false)?;
    Ok(cmd.apply(ctx)?.into())
}

/// Handler for XREVRANGE.
pub fn xrevrange(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<Outcome, CommandError> {
    let cmd = XRange::parse(args, true)?;
    Ok(cmd.apply(ctx)?.into())
}

// ---------------------------------------------------------------------------
// XSETID
// ---------------------------------------------------------------------------

/// Sets a stream's last-generated ID (and optionally its counters), as replication does.
///
/// # Format
/// ```text
/// XSETID key last-id [ENTRIESADDED entries-added] [MAXDELETEDID max-deleted-id]
/// ```
/// # Returns
/// `+OK`; `ERR no such key` for a missing key.
#[derive(Debug)]
pub struct XSetId {
    key: Bytes,
    id: StreamId,
    entries_added: Option<u64>,
    max_deleted: Option<StreamId>,
}

impl XSetId {
    /// Parses XSETID; option errors come before the key lookup, as in Redis.
    pub fn parse(args: &mut Args) -> Result<Self, CommandError> {
        let key = args.next_bytes()?;
        let id = strict_id(&args.next_bytes()?)?;
        let mut entries_added = None;
        let mut max_deleted = None;
        while args.remaining() > 0 {
            if args.remaining() >= 2 && args.eat("ENTRIESADDED") {
                let n = args.next_i64()?;
                let n = u64::try_from(n).map_err(|_| StreamError::EntriesAddedNegative)?;
                entries_added = Some(n);
            } else if args.remaining() >= 2 && args.eat("MAXDELETEDID") {
                let m = strict_id(&args.next_bytes()?)?;
                if id < m {
                    return Err(StreamError::SetIdBelowGivenMaxDeleted.into());
                }
                max_deleted = Some(m);
            } else {
                return Err(CommandError::Syntax);
            }
        }
        Ok(XSetId {
            key,
            id,
            entries_added,
            max_deleted,
        })
    }

    /// Runs XSETID.
    pub fn apply(self, ctx: &mut Ctx<'_>) -> Result<Reply, CommandError> {
        if ctx.stream(&self.key)?.is_none() {
            return Err(StreamError::NoSuchKey.into());
        }
        ctx.apply(Op::SetId {
            key: self.key.clone(),
            last: self.id,
            entries_added: self.entries_added,
            max_deleted: self.max_deleted,
        })?;
        ctx.notify(events::STREAM, "xsetid", &self.key);
        // Not a WATCH change: Redis's xsetidCommand calls `keyModified(…, 0)`.
        Ok(Reply::Ok)
    }
}

/// Handler for XSETID.
pub fn xsetid(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<Outcome, CommandError> {
    let cmd = XSetId::parse(args)?;
    Ok(cmd.apply(ctx)?.into())
}

// ---------------------------------------------------------------------------
// XREAD
// ---------------------------------------------------------------------------

/// An XREAD ID argument before it is resolved against the stream.
#[derive(Debug, Clone)]
enum ReadFrom {
    /// `$`: after the last generated ID at call time.
    Last,
    /// `+` (7.4): the last live entry itself.
    LastEntry,
    /// An explicit ID (entries strictly after it), still unparsed: its error must
    /// come after earlier keys' WRONGTYPE checks.
    Raw(Bytes),
}

/// Reads entries after given IDs from one or more streams, optionally blocking.
///
/// # Format
/// ```text
/// XREAD [COUNT count] [MAXCOUNT n] [MAXSIZE bytes] [BLOCK milliseconds]
///       STREAMS key [key ...] id|$|+ [id|$|+ ...]
/// ```
/// # Returns
/// RESP2: array of `[key, entries]`; RESP3: map key → entries; only keys with data.
/// A null array when nothing is available (after the timeout when blocking). MAXCOUNT and
/// MAXSIZE limit the whole reply (see [`ReplyLimits`]).
#[derive(Debug)]
pub struct XRead {
    count: usize,
    limits: ReplyLimits,
    /// Absolute deadline: `Some(None)` = BLOCK 0 (forever), `None` = no BLOCK.
    block: Option<Option<Instant>>,
    keys: Vec<Bytes>,
    from: Vec<ReadFrom>,
}

impl XRead {
    /// Parses XREAD's options in Redis's order.
    pub fn parse(args: &Args, now_ms: u64) -> Result<Self, CommandError> {
        let argv = args.argv();
        let argc = argv.len();
        let mut count = 0usize;
        let mut limits = ReplyLimits::default();
        let mut block = None;
        let mut streams_at = None;
        let mut i = 1;
        while i < argc {
            let more = argc - i - 1;
            let opt = &argv[i][..];
            if opt.eq_ignore_ascii_case(b"BLOCK") && more > 0 {
                i += 1;
                let ms = parse_i64(&argv[i]).ok_or(StreamError::TimeoutNotInteger)?;
                if ms < 0 {
                    return Err(StreamError::NegativeTimeout.into());
                }
                if ms > 0 && ms > i64::MAX - now_ms as i64 {
                    return Err(StreamError::TimeoutOutOfRange.into());
                }
                block = Some((ms > 0).then(|| Instant::now() + Duration::from_millis(ms as u64)));
            } else if opt.eq_ignore_ascii_case(b"COUNT") && more > 0 {
                i += 1;
                let n = parse_i64(&argv[i]).ok_or(CommandError::NotInteger)?;
                count = usize::try_from(n).unwrap_or(0);
            } else if opt.eq_ignore_ascii_case(b"MAXCOUNT") && more > 0 {
                i += 1;
                limits.max_count = Some(ReplyLimits::parse_value(&argv[i])?);
            } else if opt.eq_ignore_ascii_case(b"MAXSIZE") && more > 0 {
                i += 1;
                limits.max_size = Some(ReplyLimits::parse_value(&argv[i])?);
            } else if opt.eq_ignore_ascii_case(b"CLAIM") && more > 0 {
                return Err(StreamError::ClaimInXread.into());
            } else if opt.eq_ignore_ascii_case(b"STREAMS") && more > 0 {
                if !more.is_multiple_of(2) {
                    return Err(StreamError::Unbalanced {
                        command: "xread",
                        placeholder: '$',
                    }
                    .into());
                }
                streams_at = Some(i + 1);
                break;
            } else if opt.eq_ignore_ascii_case(b"GROUP") && more >= 2 {
                return Err(StreamError::GroupInXread.into());
            } else if opt.eq_ignore_ascii_case(b"NOACK") {
                return Err(StreamError::NoackInXread.into());
            } else {
                return Err(CommandError::Syntax);
            }
            i += 1;
        }
        let Some(at) = streams_at else {
            return Err(CommandError::Syntax);
        };
        limits.check_count(count)?;
        let n = (argc - at) / 2;
        let keys = argv[at..at + n].to_vec();
        let from = argv[at + n..]
            .iter()
            .map(|a| match &a[..] {
                b"$" => ReadFrom::Last,
                b"+" => ReadFrom::LastEntry,
                _ => ReadFrom::Raw(a.clone()),
            })
            .collect();
        Ok(XRead {
            count,
            limits,
            block,
            keys,
            from,
        })
    }

    /// Resolves IDs key by key (WRONGTYPE and ID errors interleaved as in Redis),
    /// serves what is available, or blocks.
    pub fn apply(self, ctx: &mut Ctx<'_>) -> Result<Outcome, CommandError> {
        let mut after = Vec::with_capacity(self.keys.len());
        for (key, from) in self.keys.iter().zip(&self.from) {
            if ctx.stream(key)?.is_none() {
                ctx.key_miss(key);
            }
            let stream = ctx.stream(key)?;
            let id = match from {
                ReadFrom::Last => stream.map_or(StreamId::MIN, Stream::last_id),
                ReadFrom::LastEntry => stream
                    .and_then(Stream::last_live_id)
                    .and_then(|id| id.decr())
                    .unwrap_or(StreamId::MIN),
                ReadFrom::Raw(arg) if &arg[..] == b">" => {
                    return Err(StreamError::GreaterThanInXread.into())
                }
                ReadFrom::Raw(arg) => strict_id(arg)?,
            };
            after.push(id);
        }
        // The last IDs as of now: only a write after blocking may wake with `[[key, []]]`.
        let mut last_seen = Vec::with_capacity(self.keys.len());
        for key in &self.keys {
            last_seen.push(ctx.stream(key)?.map_or(StreamId::MIN, Stream::last_id));
        }
        let mut read = PendingXRead {
            keys: self.keys,
            after,
            last_seen,
            count: self.count,
            limits: self.limits,
        };
        if let Some(reply) = read.serve(ctx, false) {
            return Ok(reply.into());
        }
        match self.block {
            None => Ok(Reply::NilArray.into()),
            // Inside MULTI (and scripts) Redis answers a blocking read as a timeout.
            Some(_) if ctx.in_multi => Ok(Reply::NilArray.into()),
            Some(deadline) => {
                if read.count == 0 {
                    read.count = XREAD_BLOCKED_DEFAULT_COUNT;
                }
                Ok(Outcome::Block(Blocked {
                    keys: read.keys.clone(),
                    deadline,
                    retry: Box::new(read),
                }))
            }
        }
    }
}

/// Handler for XREAD.
pub fn xread(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<Outcome, CommandError> {
    let cmd = XRead::parse(args, ctx.now_ms)?;
    cmd.apply(ctx)
}

/// An XREAD with its IDs resolved: served now, or kept while the client is blocked.
#[derive(Debug)]
struct PendingXRead {
    keys: Vec<Bytes>,
    /// Per key: entries strictly after this ID are wanted.
    after: Vec<StreamId>,
    /// Per key: the stream's last-generated ID when the read was issued.
    last_seen: Vec<StreamId>,
    /// 0 = no limit.
    count: usize,
    /// MAXCOUNT / MAXSIZE over the whole reply.
    limits: ReplyLimits,
}

impl PendingXRead {
    /// The reply if any key has data; `woken` enables the wake-up rule for a stream
    /// trimmed empty by the write that signalled it (Redis answers `[[key, []]]`).
    fn serve(&self, ctx: &mut Ctx<'_>, woken: bool) -> Option<Reply> {
        let store = ctx.store();
        let mut budget = ReplyBudget::new(self.limits, ctx.proto);
        let mut per_key = Vec::new();
        for ((key, &after), &seen) in self.keys.iter().zip(&self.after).zip(&self.last_seen) {
            // MAXCOUNT / MAXSIZE reached: later streams are not served.
            if !budget.admits() {
                break;
            }
            // A key deleted or replaced by another type keeps an XREAD blocked.
            let room = ctx.reply_room;
            let stream = match ctx.stream(key) {
                Ok(Some(stream)) => stream,
                Ok(None) => {
                    // Redis looks every key up again to serve the read: a second
                    // `keymiss` (a woken read is not re-run from its start here).
                    if !woken {
                        ctx.key_miss(key);
                    }
                    continue;
                }
                Err(_) => continue,
            };
            let has_new = stream.last_live_id().is_some_and(|id| id > after);
            if has_new {
                let start = after.incr().unwrap_or(StreamId::MAX);
                let limit = budget.limit(self.count);
                let count = (limit > 0).then_some(limit);
                let entries =
                    match stream.range_within(start, StreamId::MAX, count, false, &store, room) {
                        Ok(ranged) => {
                            ctx.over_limit |= !ranged.beyond.is_empty();
                            ranged.entries
                        }
                        Err(e) => return Some(Reply::error(e.to_string())),
                    };
                budget.open(key);
                let mut out = Vec::with_capacity(entries.len());
                for entry in &entries {
                    if !budget.admits() {
                        break;
                    }
                    let reply = entry_reply(entry);
                    budget.take(&reply);
                    out.push(reply);
                }
                per_key.push((key.clone(), Reply::Array(out)));
            } else if woken
                && stream.is_empty()
                && stream.last_id() > after.max(seen)
                && stream.max_deleted_id() != stream.last_id()
            {
                // New entries arrived and were trimmed away at once (XADD MAXLEN 0);
                // an XDEL of the new entry, by contrast, leaves the reader blocked.
                per_key.push((key.clone(), Reply::Array(Vec::new())));
            }
        }
        (!per_key.is_empty()).then(|| keyed_reply(ctx.proto, per_key))
    }
}

impl BlockedRead for PendingXRead {
    fn detach(&mut self) {
        for key in &mut self.keys {
            *key = detached(key);
        }
    }

    fn try_serve(&mut self, ctx: &mut Ctx<'_>) -> Result<Option<Reply>, CommandError> {
        Ok(self.serve(ctx, true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<Bytes> {
        words
            .iter()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect()
    }

    fn add_trim(words: &[&str], xadd: bool) -> Result<AddTrimOptions, String> {
        parse_add_or_trim(&argv(words), xadd, 100).map_err(|e| e.to_string())
    }

    #[test]
    fn trim_option_errors_in_redis_order() {
        assert_eq!(
            add_trim(&["xtrim", "k", "maxlen", "1", "minid", "1"], false).err(),
            Some(StreamError::MaxlenAndMinid.to_string())
        );
        assert_eq!(
            add_trim(&["xtrim", "k", "maxlen", "-1"], false).err(),
            Some(StreamError::NegativeMaxlen.to_string())
        );
        assert_eq!(
            add_trim(&["xtrim", "k", "maxlen", "1", "limit", "10"], false).err(),
            Some(StreamError::LimitWithoutApprox.to_string())
        );
        assert_eq!(
            add_trim(&["xtrim", "k", "limit", "10"], false).err(),
            Some(StreamError::LimitWithoutStrategy.to_string())
        );
        // LIMIT 0 alone is not "without strategy" (Redis checks the value) …
        assert_eq!(
            add_trim(&["xtrim", "k", "limit", "0"], false).err(),
            Some(StreamError::TrimWithoutStrategy.to_string())
        );
        assert_eq!(
            add_trim(&["xadd", "k", "limit", "0", "*", "f", "v"], true).err(),
            Some(StreamError::LimitWithoutApprox.to_string())
        );
        assert_eq!(
            add_trim(&["xtrim", "k", "foo"], false).err(),
            Some("ERR syntax error".to_string())
        );
    }

    #[test]
    fn approx_default_limit() {
        let o = add_trim(&["xtrim", "k", "maxlen", "~", "5"], false);
        let spec = o.ok().and_then(|o| o.trim);
        assert_eq!(
            spec,
            Some(TrimSpec {
                rule: TrimRule::MaxLen(5),
                approx: true,
                limit: 10_000,
                refs: RefPolicy::KeepRef,
            })
        );
    }

    #[test]
    fn xadd_id_position() {
        let o = add_trim(
            &[
                "xadd",
                "k",
                "nomkstream",
                "maxlen",
                "=",
                "3",
                "5-*",
                "f",
                "v",
            ],
            true,
        );
        let o = o.ok();
        assert_eq!(o.as_ref().map(|o| o.id_pos), Some(6));
        assert_eq!(o.and_then(|o| o.id), Some(AddIdSpec::AutoSeq(5)));
    }
}
