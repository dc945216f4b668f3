//! Consumer-group commands: XGROUP, XREADGROUP, XACK, XNACK, XPENDING, XCLAIM, XAUTOCLAIM.
//!
//! Each command is a struct of its parsed arguments with `parse` (every syntax error, in
//! Redis's order) and `apply` (against the keyspace). Where Redis reports a state error
//! (WRONGTYPE, NOGROUP, missing key) *before* an argument error, the argument error is kept
//! in the parsed struct and raised by `apply` at the point Redis would raise it, so clients
//! see the same error for the same wrong call.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::connection::help_reply;
use super::streams::{entry_reply, keyed_reply, ReplyBudget, ReplyLimits};
use super::table::{CommandSpec, Handler};
use super::{Args, Blocked, BlockedRead, CommandError, Ctx, Outcome};
use crate::core::deadletter;
use crate::core::detached;
use crate::core::keyspace_events as events;
use crate::engine::error::StreamError;
use crate::engine::group::{
    AutoClaimScan, ClaimOptions, ClaimOutcome, ConsumerGroup, NackMode, NackOptions,
};
use crate::engine::id::StreamId;
use crate::engine::op::{Applied, Op};
use crate::engine::stream::{Entry, Stream};
use crate::protocol::Reply;

/// A blocked XREADGROUP CLAIM whose streams have nothing pending looks again this often (ms)
/// at the least: each look that finds nothing logs the consumer's seen-time.
const EMPTY_PEL_RECHECK_MS: u64 = 100;

/// A blocked XREADGROUP without COUNT serves at most this many entries per stream, as Redis's
/// `XREAD_BLOCKED_DEFAULT_COUNT`.
const BLOCKED_DEFAULT_COUNT: usize = 1000;

/// The XGROUP subcommands, for the command table.
pub const XGROUP_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec::new("xgroup|create", -5, Handler::Data(xgroup_create))
        .flags(&["write", "denyoom"])
        .keys(2, 2, 1)
        .acl(&["@write", "@stream", "@slow"])
        .doc("stream", "5.0.0", "O(1)", "Creates a consumer group."),
    CommandSpec::new(
        "xgroup|createconsumer",
        5,
        Handler::Data(xgroup_createconsumer),
    )
    .flags(&["write", "denyoom"])
    .keys(2, 2, 1)
    .acl(&["@write", "@stream", "@slow"])
    .doc(
        "stream",
        "6.2.0",
        "O(1)",
        "Creates a consumer in a consumer group.",
    ),
    CommandSpec::new("xgroup|delconsumer", 5, Handler::Data(xgroup_delconsumer))
        .flags(&["write"])
        .keys(2, 2, 1)
        .acl(&["@write", "@stream", "@slow"])
        .doc(
            "stream",
            "5.0.0",
            "O(1)",
            "Deletes a consumer from a consumer group.",
        ),
    CommandSpec::new("xgroup|destroy", 4, Handler::Data(xgroup_destroy))
        .flags(&["write"])
        .keys(2, 2, 1)
        .acl(&["@write", "@stream", "@slow"])
        .doc(
            "stream",
            "5.0.0",
            "O(N) where N is the number of entries in the group's pending entries list (PEL).",
            "Destroys a consumer group.",
        ),
    CommandSpec::new("xgroup|help", 2, Handler::Data(xgroup_help))
        .flags(&["loading", "stale"])
        .acl(&["@stream", "@slow"])
        .doc(
            "stream",
            "5.0.0",
            "O(1)",
            "Returns helpful text about the different subcommands.",
        ),
    CommandSpec::new("xgroup|setid", -5, Handler::Data(xgroup_setid))
        .flags(&["write"])
        .keys(2, 2, 1)
        .acl(&["@write", "@stream", "@slow"])
        .doc(
            "stream",
            "5.0.0",
            "O(1)",
            "Sets the last-delivered ID of a consumer group.",
        ),
];

/// XGROUP HELP's own lines, as Redis 8.6 prints them between the common header and the
/// common `HELP` lines ([`help_reply`]).
const XGROUP_HELP: &[&str] = &[
    "CREATE <key> <groupname> <id|$> [option]",
    "    Create a new consumer group. Options are:",
    "    * MKSTREAM",
    "      Create the empty stream if it does not exist.",
    "    * ENTRIESREAD entries_read",
    "      Set the group's entries_read counter (internal use).",
    "CREATECONSUMER <key> <groupname> <consumer>",
    "    Create a new consumer in the specified group.",
    "DELCONSUMER <key> <groupname> <consumer>",
    "    Remove the specified consumer.",
    "DESTROY <key> <groupname>",
    "    Remove the specified group.",
    "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
    "    Set the current group ID and entries_read counter.",
];

// ---------------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------------

/// An ID as a bulk string.
pub(crate) fn id_reply(id: StreamId) -> Reply {
    Reply::Bulk(id.to_bytes())
}

/// Milliseconds elapsed since `then`, never negative (clocks may step back).
fn elapsed(now_ms: u64, then_ms: u64) -> i64 {
    i64::try_from(now_ms.saturating_sub(then_ms)).unwrap_or(i64::MAX)
}

/// A claimed entry as XREADGROUP CLAIM shows it: `[id, [f, v, …], idle, delivery-count]`.
fn claimed_entry_reply(e: &Entry, idle: i64, count: i64) -> Reply {
    Reply::Array(vec![
        Reply::Bulk(e.id.to_bytes()),
        Reply::Array(e.fields.iter().cloned().map(Reply::Bulk).collect()),
        Reply::Int(idle),
        Reply::Int(count),
    ])
}

/// A non-negative i64 as a count (Redis clamps negative COUNTs to 0).
fn clamp_count(n: i64) -> usize {
    usize::try_from(n.max(0)).unwrap_or(usize::MAX)
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Redis's `addReplySubcommandSyntaxError` for XGROUP: names the subcommand as typed.
fn xgroup_syntax(args: &Args) -> CommandError {
    let sub = args
        .argv()
        .get(1)
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default();
    StreamError::SubcommandSyntax {
        sub,
        container: "XGROUP",
    }
    .into()
}

/// The stream under `key` (`None` when missing), WRONGTYPE for another type.
fn stream<'a>(ctx: &'a mut Ctx<'_>, key: &[u8]) -> Result<Option<&'a Stream>, CommandError> {
    ctx.stream(key)
}

/// Redis's `lookupKeyRead` of a command that reads `key` first: `keymiss` when it is
/// missing (WRONGTYPE is the caller's to report).
fn read_lookup(ctx: &mut Ctx<'_>, key: &[u8]) {
    if matches!(ctx.stream(key), Ok(None)) {
        ctx.key_miss(key);
    }
}

/// The result of an op that counts.
fn count(applied: Applied) -> u64 {
    match applied {
        Applied::Count(n) => n,
        _ => 0,
    }
}

// ---------------------------------------------------------------------------------------------
// XGROUP
// ---------------------------------------------------------------------------------------------

/// Where CREATE/SETID put the group: `$` or an explicit ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GroupStart {
    /// `$`: the stream's last generated ID at execution time.
    Last,
    /// An explicit ID.
    Id(StreamId),
}

/// `XGROUP CREATE` / `XGROUP SETID`, which share their option grammar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XGroupCreate {
    key: Bytes,
    group: Bytes,
    /// The ID argument; an invalid one is reported after the key checks, as Redis does.
    start: Result<GroupStart, StreamError>,
    mkstream: bool,
    entries_read: Option<u64>,
    /// Redis checks the argument count only after looking the key up.
    arity_ok: bool,
}

impl XGroupCreate {
    /// Parses `key group id|$ [MKSTREAM] [ENTRIESREAD n]` (SETID: no MKSTREAM).
    pub fn parse(args: &mut Args, setid: bool) -> Result<Self, CommandError> {
        let argc = args.argv().len();
        let key = args.next_bytes()?;
        let group = args.next_bytes()?;
        let id_arg = args.next_bytes()?;
        let mut mkstream = false;
        let mut entries_read = None;
        while let Some(opt) = args.next() {
            if !setid && opt.eq_ignore_ascii_case(b"MKSTREAM") {
                mkstream = true;
            } else if opt.eq_ignore_ascii_case(b"ENTRIESREAD") && args.remaining() > 0 {
                let n = args.next_i64()?;
                entries_read = match n {
                    -1 => None,
                    n if n >= 0 => Some(n.unsigned_abs()),
                    _ => return Err(StreamError::InvalidEntriesRead.into()),
                };
            } else {
                return Err(xgroup_syntax(args));
            }
        }
        let start = if id_arg.as_ref() == b"$" {
            Ok(GroupStart::Last)
        } else if setid {
            StreamId::parse(&id_arg, 0).map(GroupStart::Id)
        } else {
            StreamId::parse_strict(&id_arg, 0).map(GroupStart::Id)
        };
        let arity_ok = if setid {
            argc == 5 || argc == 7
        } else {
            (5..=8).contains(&argc)
        };
        Ok(XGroupCreate {
            key,
            group,
            start,
            mkstream,
            entries_read,
            arity_ok,
        })
    }

    fn resolve(&self, stream: &Stream) -> Result<StreamId, CommandError> {
        match &self.start {
            Ok(GroupStart::Last) => Ok(stream.last_id()),
            Ok(GroupStart::Id(id)) => Ok(*id),
            Err(e) => Err(e.clone().into()),
        }
    }

    /// Creates the group (`CreateStream` first with MKSTREAM on a missing key), with `$`
    /// resolved, so replay does not depend on what the stream held.
    pub fn apply_create(self, ctx: &mut Ctx<'_>, args: &Args) -> Result<Reply, CommandError> {
        let exists = stream(ctx, &self.key)?.is_some();
        if !exists && !self.mkstream {
            return Err(StreamError::GroupKeyMissing.into());
        }
        if !self.arity_ok {
            return Err(xgroup_syntax(args));
        }
        let start = match &self.start {
            Ok(GroupStart::Id(id)) => Some(*id),
            Ok(GroupStart::Last) => None,
            Err(e) => return Err(e.clone().into()),
        };
        if exists {
            if let Some(s) = stream(ctx, &self.key)? {
                if s.groups.contains_key(&self.group) {
                    return Err(StreamError::BusyGroup.into());
                }
            }
        } else {
            ctx.apply(Op::CreateStream {
                key: self.key.clone(),
            })?;
            super::streams::configure_new_stream(ctx, &self.key)?;
            // Only creating the key touches WATCH (`keyModified(…, 1)` after `dbAdd` in
            // Redis's xgroupCommand); the group itself is `keyModified(…, 0)`.
            ctx.signal_modified(&self.key);
        }
        let (last, added) = match (start, stream(ctx, &self.key)?) {
            (Some(id), s) => (id, s.map_or(0, Stream::entries_added)),
            (None, Some(s)) => (s.last_id(), s.entries_added()),
            (None, None) => (StreamId::MIN, 0),
        };
        ctx.apply(Op::GroupCreate {
            key: self.key.clone(),
            group: self.group.clone(),
            last,
            entries_read: self.entries_read.map(|n| n.min(added)),
        })?;
        ctx.notify(events::STREAM, "xgroup-create", &self.key);
        Ok(Reply::Ok)
    }

    /// Moves an existing group, with `$` resolved.
    pub fn apply_setid(self, ctx: &mut Ctx<'_>, args: &Args) -> Result<Reply, CommandError> {
        let Some(s) = stream(ctx, &self.key)? else {
            return Err(StreamError::GroupKeyMissing.into());
        };
        if !s.groups.contains_key(&self.group) {
            return Err(StreamError::no_such_group(&self.key, &self.group).into());
        }
        if !self.arity_ok {
            return Err(xgroup_syntax(args));
        }
        let last = self.resolve(s)?;
        // A group cannot have read more than was ever added (Redis 8.2.2, #14259).
        let entries_read = self.entries_read.map(|n| n.min(s.entries_added()));
        ctx.apply(Op::GroupSetId {
            key: self.key.clone(),
            group: self.group.clone(),
            last,
            entries_read,
        })?;
        ctx.notify(events::STREAM, "xgroup-setid", &self.key);
        // Not a WATCH change: Redis's xgroupCommand SETID calls `keyModified(…, 0)`.
        // Moving the group back makes entries available again to readers blocked on it.
        ctx.signal_ready(&self.key);
        Ok(Reply::Ok)
    }
}

/// XGROUP CREATE.
///
/// # Format
/// `XGROUP CREATE key group id|$ [MKSTREAM] [ENTRIESREAD entries-read]`
///
/// # Returns
/// `+OK`; `BUSYGROUP` if the group exists; an error if the key is missing without MKSTREAM.
pub fn xgroup_create(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<Outcome, CommandError> {
    let cmd = XGroupCreate::parse(args, false)?;
    Ok(cmd.apply_create(ctx, args)?.into())
}

/// XGROUP SETID.
///
/// # Format
/// `XGROUP SETID key group id|$ [ENTRIESREAD entries-read]`
///
/// # Returns
/// `+OK`; NOGROUP if the group does not exist.
pub fn xgroup_setid(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<Outcome, CommandError> {
    let cmd = XGroupCreate::parse(args, true)?;
    Ok(cmd.apply_setid(ctx, args)?.into())
}

/// `XGROUP DESTROY | CREATECONSUMER | DELCONSUMER`: a key, a group and maybe a consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XGroupMember {
    key: Bytes,
    group: Bytes,
    consumer: Option<Bytes>,
}

impl XGroupMember {
    /// Parses `key group [consumer]`.
    pub fn parse(args: &mut Args, with_consumer: bool) -> Result<Self, CommandError> {
        let key = args.next_bytes()?;
        let group = args.next_bytes()?;
        let consumer = if with_consumer {
            Some(args.next_bytes()?)
        } else {
            None
        };
        args.finish()?;
        Ok(XGroupMember {
            key,
            group,
            consumer,
        })
    }

    /// The stream's (required) group, with Redis's errors.
    fn group<'a>(&self, ctx: &'a mut Ctx<'_>) -> Result<&'a ConsumerGroup, CommandError> {
        let Some(s) = stream(ctx, &self.key)? else {
            return Err(StreamError::GroupKeyMissing.into());
        };
        s.groups
            .get(&self.group)
            .ok_or_else(|| StreamError::no_such_group(&self.key, &self.group).into())
    }

    fn consumer(&self) -> Bytes {
        self.consumer.clone().unwrap_or_default()
    }
}

/// XGROUP DESTROY.
///
/// # Format
/// `XGROUP DESTROY key group`
///
/// # Returns
/// `:1` if the group was destroyed, `:0` if it did not exist. Clients blocked on the group get
/// the NOGROUP error a fresh XREADGROUP would.
pub fn xgroup_destroy(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<Outcome, CommandError> {
    let cmd = XGroupMember::parse(args, false)?;
    let Some(s) = stream(ctx, &cmd.key)? else {
        return Err(StreamError::GroupKeyMissing.into());
    };
    if !s.groups.contains_key(&cmd.group) {
        return Ok(Reply::Int(0).into());
    }
    ctx.apply(Op::GroupDestroy {
        key: cmd.key.clone(),
        group: cmd.group.clone(),
    })?;
    ctx.notify(events::STREAM, "xgroup-destroy", &cmd.key);
    // Not a WATCH change (`keyModified(…, 0)` in Redis's xgroupCommand DESTROY); blocked
    // readers are still woken, to get their NOGROUP error.
    ctx.signal_ready(&cmd.key);
    Ok(Reply::Int(1).into())
}

/// XGROUP CREATECONSUMER.
///
/// # Format
/// `XGROUP CREATECONSUMER key group consumer`
///
/// # Returns
/// `:1` if the consumer was created, `:0` if it existed.
pub fn xgroup_createconsumer(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<Outcome, CommandError> {
    let cmd = XGroupMember::parse(args, true)?;
    let consumer = cmd.consumer();
    if cmd.group(ctx)?.consumer(&consumer).is_some() {
        return Ok(Reply::Int(0).into());
    }
    ctx.apply(Op::ConsumerCreate {
        key: cmd.key.clone(),
        group: cmd.group.clone(),
        consumer,
        time_ms: ctx.now_ms,
    })?;
    // Its `xgroup-createconsumer` event is `Ctx::apply`'s, as for every consumer created.
    // No WATCH signal: Redis's xgroupCommand CREATECONSUMER calls `keyModified(…, 0)`.
    Ok(Reply::Int(1).into())
}

/// XGROUP DELCONSUMER.
///
/// # Format
/// `XGROUP DELCONSUMER key group consumer`
///
/// # Returns
/// The number of pending entries the consumer had (they are dropped), `:0` if it did not exist.
pub fn xgroup_delconsumer(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<Outcome, CommandError> {
    let cmd = XGroupMember::parse(args, true)?;
    let consumer = cmd.consumer();
    if cmd.group(ctx)?.consumer(&consumer).is_none() {
        return Ok(Reply::Int(0).into());
    }
    let pending = count(ctx.apply(Op::ConsumerDelete {
        key: cmd.key.clone(),
        group: cmd.group.clone(),
        consumer,
    })?);
    ctx.notify(events::STREAM, "xgroup-delconsumer", &cmd.key);
    // No WATCH signal: Redis's xgroupCommand DELCONSUMER calls `keyModified(…, 0)`.
    Ok(Reply::Int(i64::try_from(pending).unwrap_or(i64::MAX)).into())
}

/// XGROUP HELP.
///
/// # Format
/// `XGROUP HELP`
///
/// # Returns
/// The help text, one status line per element.
pub fn xgroup_help(_ctx: &mut Ctx<'_>, args: &mut Args) -> Result<Outcome, CommandError> {
    args.finish()?;
    Ok(help_reply("XGROUP", XGROUP_HELP).into())
}

// ---------------------------------------------------------------------------------------------
// XREADGROUP
// ---------------------------------------------------------------------------------------------

/// The ID given for one stream of XREADGROUP.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ReadFrom {
    /// `>`: entries never delivered to the group.
    New,
    /// An explicit ID: this consumer's pending history after it.
    History(StreamId),
    /// `$` or `+`, meaningless for a group (reported after the key checks).
    Meaningless(char),
    /// Not an ID (reported after the key checks).
    Invalid,
}

/// XREADGROUP's parsed arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XReadGroup {
    group: Bytes,
    consumer: Bytes,
    /// 0 = no limit.
    count: usize,
    /// Milliseconds; `Some(0)` blocks forever.
    block: Option<u64>,
    noack: bool,
    /// CLAIM min-idle-time (ms): serve idle pending entries of other consumers first.
    claim: Option<u64>,
    /// MAXCOUNT / MAXSIZE over the whole reply.
    limits: ReplyLimits,
    streams: Vec<(Bytes, ReadFrom)>,
}

impl XReadGroup {
    /// Parses `GROUP g c [COUNT n] [MAXCOUNT n] [MAXSIZE bytes] [BLOCK ms] [CLAIM ms] [NOACK]
    /// STREAMS key … id …` in Redis's order: options in any order, repeated ones override.
    pub fn parse(args: &mut Args) -> Result<Self, CommandError> {
        let mut group = None;
        let mut count = 0;
        let mut block = None;
        let mut noack = false;
        let mut claim = None;
        let mut limits = ReplyLimits::default();
        let mut streams_args = None;
        while let Some(opt) = args.next() {
            let more = args.remaining();
            if opt.eq_ignore_ascii_case(b"CLAIM") && more > 0 {
                let raw = args.next_bytes()?;
                let ms = super::args::parse_i64(&raw).ok_or(StreamError::ClaimMinIdleNotInteger)?;
                if ms < 0 {
                    return Err(StreamError::ClaimMinIdleNegative.into());
                }
                claim = Some(ms.unsigned_abs());
            } else if opt.eq_ignore_ascii_case(b"MAXCOUNT") && more > 0 {
                limits.max_count = Some(ReplyLimits::parse_value(&args.next_bytes()?)?);
            } else if opt.eq_ignore_ascii_case(b"MAXSIZE") && more > 0 {
                limits.max_size = Some(ReplyLimits::parse_value(&args.next_bytes()?)?);
            } else if opt.eq_ignore_ascii_case(b"BLOCK") && more > 0 {
                let raw = args.next_bytes()?;
                let ms = super::args::parse_i64(&raw).ok_or(StreamError::TimeoutNotInteger)?;
                if ms < 0 {
                    return Err(StreamError::NegativeTimeout.into());
                }
                if ms > i64::MAX - to_i64(super::now_ms()) {
                    return Err(StreamError::TimeoutOutOfRange.into());
                }
                block = Some(ms.unsigned_abs());
            } else if opt.eq_ignore_ascii_case(b"COUNT") && more > 0 {
                count = clamp_count(args.next_i64()?);
            } else if opt.eq_ignore_ascii_case(b"STREAMS") && more > 0 {
                let rest = args.rest();
                if !rest.len().is_multiple_of(2) {
                    return Err(StreamError::Unbalanced {
                        command: "xreadgroup",
                        placeholder: '>',
                    }
                    .into());
                }
                streams_args = Some(rest);
                break;
            } else if opt.eq_ignore_ascii_case(b"GROUP") && more >= 2 {
                let g = args.next_bytes()?;
                let c = args.next_bytes()?;
                group = Some((g, c));
            } else if opt.eq_ignore_ascii_case(b"NOACK") {
                noack = true;
            } else {
                return Err(CommandError::Syntax);
            }
        }
        let Some(rest) = streams_args else {
            return Err(CommandError::Syntax);
        };
        let Some((group, consumer)) = group else {
            return Err(StreamError::MissingGroup.into());
        };
        limits.check_count(count)?;
        let half = rest.len() / 2;
        let streams = rest[..half]
            .iter()
            .zip(&rest[half..])
            .map(|(key, id)| {
                let from = match id.as_ref() {
                    b">" => ReadFrom::New,
                    b"$" => ReadFrom::Meaningless('$'),
                    b"+" => ReadFrom::Meaningless('+'),
                    raw => match StreamId::parse_strict(raw, 0) {
                        // Redis encodes `>` as the maximum ID, so spelling that ID out
                        // reads new entries exactly as `>` does.
                        Ok(id) if id == StreamId::MAX => ReadFrom::New,
                        Ok(id) => ReadFrom::History(id),
                        Err(_) => ReadFrom::Invalid,
                    },
                };
                (key.clone(), from)
            })
            .collect();
        Ok(XReadGroup {
            group,
            consumer,
            count,
            block,
            noack,
            claim,
            limits,
            streams,
        })
    }

    /// The checks Redis makes per stream before serving anything: type, key and group, then
    /// the ID. Nothing is changed.
    fn validate(&self, ctx: &mut Ctx<'_>) -> Result<(), CommandError> {
        for (key, from) in &self.streams {
            read_lookup(ctx, key);
            let has_group = match ctx.stream(key)? {
                Some(stream) => stream.groups.contains_key(&self.group),
                None => false,
            };
            if !has_group {
                return Err(StreamError::no_group_for_read(key, &self.group).into());
            }
            match from {
                ReadFrom::Meaningless(special) => {
                    return Err(StreamError::MeaninglessIdInGroupRead { special: *special }.into())
                }
                ReadFrom::Invalid => return Err(StreamError::InvalidId.into()),
                ReadFrom::New | ReadFrom::History(_) => {}
            }
        }
        Ok(())
    }

    /// Serves every stream that has something for this consumer; `None` when none has.
    /// Creates the consumer and updates its seen-time on every stream, as Redis 7.2+ does.
    ///
    /// Per stream, the ops: `Redeliver` (the consumer's own pending entries, with an ID),
    /// or for `>` a `Claim` (with CLAIM: idle pending entries taken over, with the command's
    /// time) then a `Deliver` (new entries); `Touch` when nothing was served (seen-time, and
    /// the consumer's creation). Whether run by the command or for a blocked client, the
    /// ops join the critical section's record.
    ///
    /// With CLAIM (Redis 8.4, `streamReplyWithRange`): pending entries idle at least
    /// min-idle-time come first, oldest delivery first, as `[id, fields, idle, count]` with
    /// the count before this delivery; pending entries whose stream entry is gone are
    /// skipped and left in the PEL; NOACK does not apply to them. New entries follow as
    /// `[id, fields, 0, 0]`, and COUNT covers both. A history read (ID other than `>`)
    /// ignores CLAIM, and so does every later stream of the same command (Redis keeps
    /// min-idle-time in one command-wide variable).
    fn serve(&self, ctx: &mut Ctx<'_>, count: usize) -> Result<Option<Reply>, CommandError> {
        let now = ctx.now_ms;
        let store = ctx.store();
        let room = ctx.reply_room;
        let mut over_limit = false;
        let mut budget = ReplyBudget::new(self.limits, ctx.proto);
        let mut claim = self.claim;
        let mut served: Vec<(Bytes, Reply)> = Vec::new();
        for (key, from) in &self.streams {
            let no_group = || StreamError::no_group_for_read(key, &self.group);
            // Broker policies: when this process saw the group's entries XNACKed.
            let nacked_at = match claim {
                Some(_) => ctx.ks.nack_times(ctx.db, key, &self.group).cloned(),
                None => None,
            };
            let Some(s) = stream(ctx, key)? else {
                return Err(no_group().into());
            };
            let Some(group) = s.groups.get(&self.group) else {
                return Err(no_group().into());
            };
            // MAXCOUNT / MAXSIZE reached: later streams are not served (seen-time still is).
            let open = budget.admits();
            let mut ops = Vec::new();
            let reply = match from {
                ReadFrom::History(after) if open => {
                    claim = None;
                    let ids = group.history(&self.consumer, *after, budget.limit(count));
                    // Every payload is read before anything changes, so a read error
                    // leaves the group as it was.
                    let found = ids
                        .iter()
                        .map(|id| s.get(*id, &store))
                        .collect::<Result<Vec<_>, _>>()?;
                    budget.open(key);
                    let mut entries = Vec::with_capacity(ids.len());
                    let mut again = Vec::new();
                    for (id, found) in ids.into_iter().zip(found) {
                        if !budget.admits() {
                            break;
                        }
                        let reply = match found {
                            Some(entry) => {
                                again.push(id);
                                entry_reply(&entry)
                            }
                            // Acknowledge-able but gone from the stream: Redis shows `[id, nil]`.
                            None => Reply::Array(vec![id_reply(id), Reply::NilArray]),
                        };
                        budget.take(&reply);
                        entries.push(reply);
                    }
                    ops.push(Op::Redeliver {
                        key: key.clone(),
                        group: self.group.clone(),
                        consumer: self.consumer.clone(),
                        time_ms: now,
                        ids: again,
                    });
                    Some(Reply::Array(entries))
                }
                ReadFrom::History(_) => {
                    claim = None;
                    None
                }
                ReadFrom::New if open => {
                    budget.open(key);
                    let mut entries = Vec::new();
                    // Claim phase: idle pending entries, oldest delivery first.
                    let mut claimed = Vec::new();
                    if let Some(min_idle) = claim {
                        // Broker policies: a group's backoff schedule holds entries back
                        // until their step has passed (Rill only; off unless set).
                        let group_policy = s.policy().and_then(|p| p.group(&self.group));
                        let backoff = group_policy.filter(|g| g.backoff_ms.is_some());
                        for pending in group.idle_entries(min_idle, now) {
                            if count > 0 && claimed.len() >= count {
                                break;
                            }
                            // An entry delivered MAXDELIVER times is the dead-letter
                            // sweep's (JetStream's MaxDeliver).
                            if group_policy
                                .is_some_and(|g| !g.may_deliver_again(pending.delivery_count))
                            {
                                continue;
                            }
                            let nack_time =
                                nacked_at.as_ref().and_then(|m| m.get(&pending.id).copied());
                            if backoff
                                .and_then(|g| g.redelivery_at(&pending, nack_time))
                                .is_some_and(|at| at > now)
                            {
                                continue;
                            }
                            if !budget.admits() {
                                break;
                            }
                            let Some(entry) = s.get(pending.id, &store)? else {
                                continue;
                            };
                            let reply = claimed_entry_reply(
                                &entry,
                                elapsed(now, pending.delivery_time_ms),
                                to_i64(pending.delivery_count),
                            );
                            budget.take(&reply);
                            entries.push(reply);
                            claimed.push(pending.id);
                        }
                    }
                    // New entries fill what COUNT leaves.
                    let from_id = group.last_delivered_id();
                    let left = if count == 0 {
                        0
                    } else {
                        count.saturating_sub(claimed.len())
                    };
                    let mut fresh = Vec::new();
                    if (count == 0 || left > 0) && budget.admits() {
                        if let (Some(last), Some(start)) = (s.last_live_id(), from_id.incr()) {
                            if last > from_id {
                                let limit = budget.limit(left);
                                let limit = (limit > 0).then_some(limit);
                                let ranged = s.range_within(
                                    start,
                                    StreamId::MAX,
                                    limit,
                                    false,
                                    &store,
                                    room,
                                )?;
                                let mut stopped = false;
                                for entry in ranged.entries {
                                    if !budget.admits() {
                                        stopped = true;
                                        break;
                                    }
                                    let reply = if claim.is_some() {
                                        claimed_entry_reply(&entry, 0, 0)
                                    } else {
                                        entry_reply(&entry)
                                    };
                                    budget.take(&reply);
                                    entries.push(reply);
                                    fresh.push(entry.id);
                                }
                                if !stopped && !ranged.beyond.is_empty() {
                                    // Past the client's output limit: delivered as Redis
                                    // delivers them (into the PEL), but not read, as the
                                    // client is closed without the reply.
                                    fresh.extend(ranged.beyond);
                                    over_limit = true;
                                }
                            }
                        }
                    }
                    if !claimed.is_empty() {
                        ops.push(Op::Claim {
                            key: key.clone(),
                            group: self.group.clone(),
                            consumer: self.consumer.clone(),
                            time_ms: now,
                            // Exactly these IDs, taken over now with one more delivery:
                            // replay needs no clock and no idle test.
                            opts: ClaimOptions {
                                min_idle_ms: 0,
                                delivery_time_ms: now,
                                retry_count: None,
                                force: false,
                                just_id: false,
                            },
                            last_id: None,
                            ids: claimed,
                        });
                    }
                    if !fresh.is_empty() {
                        ops.push(Op::Deliver {
                            key: key.clone(),
                            group: self.group.clone(),
                            consumer: self.consumer.clone(),
                            time_ms: now,
                            noack: self.noack,
                            ids: fresh,
                        });
                    }
                    (!entries.is_empty()).then_some(Reply::Array(entries))
                }
                ReadFrom::New | ReadFrom::Meaningless(_) | ReadFrom::Invalid => None,
            };
            if ops.is_empty() {
                ops.push(self.touch(key, now));
            }
            // Redis counts one change per stream a read served, claims and new entries
            // together (`propCount` in xreadCommand).
            let mut counted = false;
            for op in ops {
                let dirty = match op {
                    Op::Claim { .. } | Op::Deliver { .. } => Some(u64::from(!counted)),
                    _ => None,
                };
                counted |= dirty.is_some();
                ctx.apply_counted(op, dirty)?;
            }
            // No WATCH signal: deliveries, claims and new consumers change the group, not the
            // entries, and Redis's xreadCommand only updates the LRM (`keyModified(…, 0)`).
            if let Some(reply) = reply {
                served.push((key.clone(), reply));
            }
        }
        ctx.over_limit |= over_limit;
        if served.is_empty() {
            return Ok(None);
        }
        Ok(Some(keyed_reply(ctx.proto, served)))
    }

    /// With CLAIM, when a blocked read should be retried although no key was written: when
    /// the oldest pending entry (still in its stream) of any of its streams reaches
    /// min-idle-time, or min-idle-time from now when none has one (Redis 8.4's
    /// `trackStreamClaimTimeouts`). Never earlier than the next millisecond, so a retry that
    /// finds nothing does not spin; and with empty PELs not before
    /// [`EMPTY_PEL_RECHECK_MS`] (an entry entering a PEL wakes nobody, so this is polling;
    /// an idle Redis notices it at its 100 ms `hz` tick too).
    fn claim_wake_at(&self, ctx: &mut Ctx<'_>) -> Option<u64> {
        /// Pending entries a backoff wake looks at (oldest deliveries first).
        const BACKOFF_WAKE_SCAN: usize = 1000;
        let min_idle = self.claim?;
        let now = ctx.now_ms;
        let mut oldest: Option<u64> = None;
        for (key, _) in &self.streams {
            let nacked_at = ctx.ks.nack_times(ctx.db, key, &self.group).cloned();
            let Ok(Some(s)) = ctx.stream(key) else {
                continue;
            };
            let Some(group) = s.groups.get(&self.group) else {
                continue;
            };
            // Broker policies: with a backoff schedule, the earliest entry its schedule
            // releases (looked for among the oldest deliveries only, so a wait stays cheap);
            // entries delivered MAXDELIVER times are never claimed again.
            let group_policy = s.policy().and_then(|p| p.group(&self.group));
            let backoff = group_policy.filter(|g| g.backoff_ms.is_some());
            let claimable = |p: &crate::engine::group::PendingEntry| {
                s.contains(p.id)
                    && group_policy.is_none_or(|g| g.may_deliver_again(p.delivery_count))
            };
            if let Some(g) = backoff {
                let due = group
                    .pending_by_delivery_time()
                    .filter(|p| claimable(p))
                    .take(BACKOFF_WAKE_SCAN)
                    .filter_map(|p| {
                        let nack_time = nacked_at.as_ref().and_then(|m| m.get(&p.id).copied());
                        let at = g.redelivery_at(&p, nack_time)?;
                        Some(at.max(p.delivery_time_ms.saturating_add(min_idle)))
                    })
                    .min();
                if let Some(at) = due {
                    // As an entry's delivery time would: `wake` adds min-idle back.
                    let as_delivery = at.saturating_sub(min_idle);
                    oldest = Some(oldest.map_or(as_delivery, |t| t.min(as_delivery)));
                }
                continue;
            }
            if let Some(first) = group.pending_by_delivery_time().find(|p| claimable(p)) {
                oldest =
                    Some(oldest.map_or(first.delivery_time_ms, |t| t.min(first.delivery_time_ms)));
            }
        }
        let wake = match oldest {
            Some(delivered) => delivered.saturating_add(min_idle),
            None => now.saturating_add(min_idle.max(EMPTY_PEL_RECHECK_MS)),
        };
        Some(wake.max(now.saturating_add(1)))
    }

    fn touch(&self, key: &Bytes, now: u64) -> Op {
        Op::Touch {
            key: key.clone(),
            group: self.group.clone(),
            consumer: self.consumer.clone(),
            time_ms: now,
        }
    }

    /// Runs the read: serves at once, or blocks, or answers null.
    pub fn apply(self, ctx: &mut Ctx<'_>) -> Result<Outcome, CommandError> {
        self.validate(ctx)?;
        if let Some(reply) = self.serve(ctx, self.count)? {
            return Ok(reply.into());
        }
        let Some(block_ms) = self.block else {
            return Ok(Reply::NilArray.into());
        };
        if ctx.in_multi {
            // A transaction cannot wait: Redis answers as if the timeout had passed.
            return Ok(Reply::NilArray.into());
        }
        let deadline = (block_ms > 0).then(|| Instant::now() + Duration::from_millis(block_ms));
        // A history read never blocks (it always answers), so CLAIM is still in force here.
        let keys = self.streams.iter().map(|(k, _)| k.clone()).collect();
        Ok(Outcome::Block(Blocked {
            keys,
            deadline,
            retry: Box::new(BlockedGroupRead { read: self }),
        }))
    }
}

/// A blocked XREADGROUP waiting for new entries (all of its IDs are `>`), or with CLAIM for
/// a pending entry to become idle enough.
struct BlockedGroupRead {
    read: XReadGroup,
}

impl BlockedRead for BlockedGroupRead {
    fn detach(&mut self) {
        let read = &mut self.read;
        read.group = detached(&read.group);
        read.consumer = detached(&read.consumer);
        for (key, _) in &mut read.streams {
            *key = detached(key);
        }
    }

    fn wake_at(&self, ctx: &mut Ctx<'_>) -> Option<u64> {
        self.read.claim_wake_at(ctx)
    }

    fn try_serve(&mut self, ctx: &mut Ctx<'_>) -> Result<Option<Reply>, CommandError> {
        for (key, _) in &self.read.streams {
            match ctx.stream(key)? {
                // Deleted key or destroyed group: re-running the command fails as a fresh
                // call would (7.2+; 8.x answers the destroyed group this way too).
                None => return Err(StreamError::no_group_for_read(key, &self.read.group).into()),
                Some(stream) if !stream.groups.contains_key(&self.read.group) => {
                    return Err(StreamError::no_group_for_read(key, &self.read.group).into())
                }
                Some(_) => {}
            }
        }
        let count = if self.read.count == 0 {
            BLOCKED_DEFAULT_COUNT
        } else {
            self.read.count
        };
        self.read.serve(ctx, count)
    }
}

/// XREADGROUP.
///
/// # Format
/// ```text
/// XREADGROUP GROUP group consumer [COUNT count] [MAXCOUNT n] [MAXSIZE bytes] [BLOCK ms]
///            [CLAIM min-idle-time] [NOACK] STREAMS key [key ...] id [id ...]
/// ```
///
/// # Returns
/// Per stream with data, its entries: RESP2 `[[key, [[id, [f, v, …]], …]], …]`, RESP3 a map.
/// With `>` only new entries (added to the PEL unless NOACK); with an ID the consumer's own
/// pending history, deleted entries as `[id, nil]`. Null when nothing was served (after BLOCK).
///
/// With CLAIM and `>`, every entry has four elements, `[id, [f, v, …], idle-ms,
/// delivery-count]`: first the group's pending entries idle at least min-idle-time (oldest
/// delivery first; they move to this consumer, count + 1), then new ones as `idle 0, count 0`.
/// A blocked CLAIM read is served when a pending entry becomes idle enough.
///
/// Errors beyond Redis 7.4's: `ERR min-idle-time is not an integer or out of range`,
/// `ERR min-idle-time must be a positive integer` (negative; 0 is allowed); MAXCOUNT and
/// MAXSIZE as documented on [`ReplyLimits`].
pub fn xreadgroup(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<Outcome, CommandError> {
    XReadGroup::parse(args)?.apply(ctx)
}

// ---------------------------------------------------------------------------------------------
// XACK
// ---------------------------------------------------------------------------------------------

/// XACK's parsed arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XAck {
    key: Bytes,
    group: Bytes,
    /// Invalid IDs fail the whole command, but only once the group is found.
    ids: Result<Vec<StreamId>, StreamError>,
}

impl XAck {
    /// Parses `key group id [id ...]`.
    pub fn parse(args: &mut Args) -> Result<Self, CommandError> {
        let key = args.next_bytes()?;
        let group = args.next_bytes()?;
        let ids = args
            .rest()
            .iter()
            .map(|raw| StreamId::parse_strict(raw, 0))
            .collect();
        Ok(XAck { key, group, ids })
    }

    /// Acknowledges the IDs; logged only when something was pending.
    pub fn apply(self, ctx: &mut Ctx<'_>) -> Result<Reply, CommandError> {
        read_lookup(ctx, &self.key);
        let Some(s) = stream(ctx, &self.key)? else {
            return Ok(Reply::Int(0));
        };
        if !s.groups.contains_key(&self.group) {
            return Ok(Reply::Int(0));
        }
        let ids = self.ids?;
        // An ack changes the group, not the entries: Redis's xackCommand calls
        // `keyModified(…, 0)` (LRM only), so WATCHers of the key are not aborted.
        let acked = count(ctx.apply(Op::Ack {
            key: self.key.clone(),
            group: self.group.clone(),
            ids,
        })?);
        Ok(Reply::Int(i64::try_from(acked).unwrap_or(i64::MAX)))
    }
}

/// XACK.
///
/// # Format
/// `XACK key group id [id ...]`
///
/// # Returns
/// The number of IDs that were pending and are now acknowledged; 0 for a missing key or group.
pub fn xack(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<Outcome, CommandError> {
    let cmd = XAck::parse(args)?;
    Ok(cmd.apply(ctx)?.into())
}

// ---------------------------------------------------------------------------------------------
// XNACK (Redis 8.8)
// ---------------------------------------------------------------------------------------------

/// Everything after XNACK's group; Redis reports its errors only once the group is found.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NackTail {
    opts: NackOptions,
    ids: Vec<StreamId>,
}

impl NackTail {
    /// Parses `SILENT|FAIL|FATAL` then `IDS numids id…`, `RETRYCOUNT n` and `FORCE` in any
    /// order, with errors in Redis's order: the mode, then the options left to right, then
    /// a missing IDS block, then the IDs.
    fn parse(argv: &[Bytes]) -> Result<NackTail, CommandError> {
        let mode = argv
            .first()
            .and_then(|m| NackMode::parse(m))
            .ok_or(StreamError::NackMode)?;
        let mut retry_count = None;
        let mut force = false;
        let mut raw_ids: Option<&[Bytes]> = None;
        let mut j = 1;
        while j < argv.len() {
            let opt = &argv[j];
            let more = argv.len() - 1 - j;
            if opt.eq_ignore_ascii_case(b"IDS") && more > 0 {
                let numids = crate::commands::args::parse_i64(&argv[j + 1])
                    .filter(|n| (1..=i64::from(i32::MAX)).contains(n))
                    .ok_or(StreamError::NackNumIds)? as usize;
                if numids > more - 1 {
                    return Err(StreamError::NackNumIdsMismatch.into());
                }
                // A second IDS block replaces the first, as a repeated option does.
                raw_ids = Some(&argv[j + 2..j + 2 + numids]);
                j += 2 + numids;
            } else if opt.eq_ignore_ascii_case(b"RETRYCOUNT") && more > 0 {
                let n = crate::commands::args::parse_i64(&argv[j + 1])
                    .ok_or(CommandError::NotInteger)?;
                let n = u64::try_from(n).map_err(|_| StreamError::NackRetryCountNegative)?;
                retry_count = Some(n);
                j += 2;
            } else if opt.eq_ignore_ascii_case(b"FORCE") {
                force = true;
                j += 1;
            } else {
                return Err(StreamError::UnrecognizedNackOption(
                    String::from_utf8_lossy(opt).into_owned(),
                )
                .into());
            }
        }
        let raw_ids = raw_ids.ok_or(StreamError::NackIdsRequired)?;
        let ids = raw_ids
            .iter()
            .map(|raw| StreamId::parse_strict(raw, 0))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(NackTail {
            opts: NackOptions {
                mode,
                retry_count,
                force,
            },
            ids,
        })
    }
}

/// XNACK's parsed arguments.
#[derive(Debug)]
pub struct XNack {
    key: Bytes,
    group: Bytes,
    /// Mode and option errors come after NOGROUP, as in Redis.
    tail: Result<NackTail, CommandError>,
}

impl XNack {
    /// Parses `key group mode …` (see [`NackTail::parse`]).
    pub fn parse(args: &mut Args) -> Result<Self, CommandError> {
        let key = args.next_bytes()?;
        let group = args.next_bytes()?;
        let tail = NackTail::parse(&args.rest());
        Ok(XNack { key, group, tail })
    }

    /// Releases the IDs into the group's NACK zone: one `Nack` op, logged only when it
    /// NACKed something. Blocked `XREADGROUP … CLAIM` readers are woken, as Redis's
    /// `signalKeyAsReady` does.
    pub fn apply(self, ctx: &mut Ctx<'_>) -> Result<Reply, CommandError> {
        let no_group = || StreamError::no_key_or_group(&self.key, &self.group);
        let s = stream(ctx, &self.key)?.ok_or_else(no_group)?;
        if !s.groups.contains_key(&self.group) {
            return Err(no_group().into());
        }
        let tail = self.tail?;
        // Broker policies: under a group with dead-lettering on, FATAL moves the entries to
        // the dead-letter stream at once (same record as the NACK). Their owners and counts
        // are taken before the NACK releases them.
        let dead_letter = match (
            tail.opts.mode,
            s.policy().and_then(|p| p.group(&self.group)),
        ) {
            (NackMode::Fatal, Some(gp)) if gp.dead_letters() => {
                let g = s.groups.get(&self.group[..]);
                let doomed: Vec<deadletter::Doomed> = tail
                    .ids
                    .iter()
                    .filter_map(|id| g.and_then(|g| g.pending_entry(*id)))
                    .map(|e| deadletter::Doomed {
                        id: e.id,
                        consumer: e.consumer,
                        deliveries: e.delivery_count,
                    })
                    .collect();
                Some((gp.dead_letter_key(&self.key), doomed))
            }
            _ => None,
        };
        let backoff = s
            .policy()
            .and_then(|p| p.group(&self.group))
            .is_some_and(|g| g.backoff_ms.is_some());
        let nack_ids = if backoff {
            tail.ids.clone()
        } else {
            Vec::new()
        };
        let nacked = count(ctx.apply(Op::Nack {
            key: self.key.clone(),
            group: self.group.clone(),
            opts: tail.opts,
            ids: tail.ids,
        })?);
        if backoff && nacked > 0 {
            // The backoff step of a NACKed entry counts from now: logged with the NACK, so
            // a restart and the replicas count from the same time.
            let now = ctx.now_ms;
            ctx.apply(Op::NackTimes {
                key: self.key.clone(),
                group: self.group.clone(),
                at_ms: now,
                ids: nack_ids,
            })?;
        }
        if let Some((dlq, doomed)) = dead_letter {
            let mut seen = std::collections::BTreeSet::new();
            let doomed: Vec<_> = doomed.into_iter().filter(|d| seen.insert(d.id)).collect();
            match deadletter::dead_letter(
                ctx,
                &self.key,
                &self.group,
                &dlq,
                &doomed,
                deadletter::Reason::NackFatal,
            ) {
                Ok(n) => {
                    ctx.shared
                        .stats
                        .dead_lettered
                        .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                }
                // The NACK stands (the entries stay in the NACK zone); the policy sweep does
                // not retry a FATAL, so say why.
                Err(e) => tracing::warn!("XNACK FATAL could not dead-letter: {e}"),
            }
        }
        // Redis 8.8's xnackCommand only wakes CLAIM readers (`signalKeyAsReady`); like
        // XACK it does not touch WATCHers (XNACK is newer than the 8.6.3 we compare with).
        if nacked > 0 {
            ctx.signal_ready(&self.key);
        }
        Ok(Reply::Int(i64::try_from(nacked).unwrap_or(i64::MAX)))
    }
}

/// XNACK (Redis 8.8).
///
/// # Format
/// `XNACK key group SILENT|FAIL|FATAL IDS numids id [id ...] [RETRYCOUNT count] [FORCE]`
///
/// # Returns
/// The number of IDs NACKed (each occurrence of a repeated ID counts): pending ones are
/// released by their owner into the group's NACK zone, with SILENT one delivery fewer, FAIL
/// the count unchanged, FATAL the largest count, RETRYCOUNT exactly `count`; with FORCE an
/// ID in the stream but not pending gets a new unowned NACK. NOGROUP for a missing key or
/// group.
pub fn xnack(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<Outcome, CommandError> {
    Ok(XNack::parse(args)?.apply(ctx)?.into())
}

// ---------------------------------------------------------------------------------------------
// XPENDING
// ---------------------------------------------------------------------------------------------

/// The extended form's range.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PendingRange {
    min_idle_ms: u64,
    start: StreamId,
    end: StreamId,
    count: usize,
    consumer: Option<Bytes>,
}

/// XPENDING's parsed arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XPending {
    key: Bytes,
    group: Bytes,
    /// `None` for the summary form.
    range: Option<PendingRange>,
}

impl XPending {
    /// Parses `key group [[IDLE min-idle] start end count [consumer]]`.
    pub fn parse(args: &mut Args) -> Result<Self, CommandError> {
        let argc = args.argv().len();
        if argc != 3 && !(6..=9).contains(&argc) {
            return Err(CommandError::Syntax);
        }
        let key = args.next_bytes()?;
        let group = args.next_bytes()?;
        if argc == 3 {
            return Ok(XPending {
                key,
                group,
                range: None,
            });
        }
        let mut min_idle = 0;
        if args.eat("IDLE") {
            min_idle = args.next_i64()?;
            if argc < 8 {
                return Err(CommandError::Syntax);
            }
        }
        let start_arg = args.next_bytes()?;
        let end_arg = args.next_bytes()?;
        let count = clamp_count(args.next_i64()?);
        let start = StreamId::parse_range_bound(&start_arg, 0)?
            .as_start()
            .ok_or(StreamError::InvalidStartId)?;
        let end = StreamId::parse_range_bound(&end_arg, u64::MAX)?
            .as_end()
            .ok_or(StreamError::InvalidEndId)?;
        let consumer = args.next();
        // Redis reads the consumer at its place and never looks past it: up to two more
        // arguments (the arity check above caps them) are ignored, not a syntax error.
        let _ = args.rest();
        Ok(XPending {
            key,
            group,
            range: Some(PendingRange {
                // A negative IDLE filters nothing, like 0.
                min_idle_ms: u64::try_from(min_idle).unwrap_or(0),
                start,
                end,
                count,
                consumer,
            }),
        })
    }

    /// Reports the PEL.
    pub fn apply(self, ctx: &mut Ctx<'_>) -> Result<Reply, CommandError> {
        let now = ctx.now_ms;
        let no_group = || StreamError::no_key_or_group(&self.key, &self.group);
        read_lookup(ctx, &self.key);
        let stream = ctx.stream(&self.key)?.ok_or_else(no_group)?;
        let group = stream.groups.get(&self.group).ok_or_else(no_group)?;
        let Some(range) = &self.range else {
            let summary = group.summary();
            let Some((min, max)) = summary.bounds else {
                return Ok(Reply::Array(vec![
                    Reply::Int(0),
                    Reply::Nil,
                    Reply::Nil,
                    Reply::NilArray,
                ]));
            };
            let consumers = summary
                .per_consumer
                .into_iter()
                .map(|(name, n)| {
                    Reply::Array(vec![
                        Reply::Bulk(name),
                        Reply::Bulk(Bytes::from(n.to_string())),
                    ])
                })
                .collect();
            return Ok(Reply::Array(vec![
                Reply::Int(i64::try_from(summary.count).unwrap_or(i64::MAX)),
                id_reply(min),
                id_reply(max),
                Reply::Array(consumers),
            ]));
        };
        let entries = group.pending_range(
            range.start,
            range.end,
            range.count,
            range.consumer.as_deref(),
            range.min_idle_ms,
            now,
        );
        Ok(Reply::Array(
            entries
                .into_iter()
                .map(|e| {
                    // A NACKed entry has no owner and no delivery to be idle since.
                    let idle = if e.is_nacked() {
                        -1
                    } else {
                        elapsed(now, e.delivery_time_ms)
                    };
                    Reply::Array(vec![
                        id_reply(e.id),
                        Reply::Bulk(e.consumer.clone()),
                        Reply::Int(idle),
                        Reply::Int(to_i64(e.delivery_count)),
                    ])
                })
                .collect(),
        ))
    }
}

/// XPENDING.
///
/// # Format
/// `XPENDING key group [[IDLE min-idle-time] start end count [consumer]]`
///
/// # Returns
/// Summary: `[count, min-id, max-id, [[consumer, "count"], …]]` (`[0, nil, nil, nil]` when
/// empty). Extended: `[[id, consumer, idle-ms, deliveries], …]` in ID order.
pub fn xpending(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<Outcome, CommandError> {
    Ok(XPending::parse(args)?.apply(ctx)?.into())
}

// ---------------------------------------------------------------------------------------------
// XCLAIM
// ---------------------------------------------------------------------------------------------

/// How XCLAIM sets the delivery time: IDLE is relative to now, TIME absolute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DeliveryTime {
    Idle(i64),
    Unix(i64),
}

/// Everything after XCLAIM's consumer; Redis reports its errors only once the group is found.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ClaimTail {
    min_idle_ms: u64,
    ids: Vec<StreamId>,
    delivery: Option<DeliveryTime>,
    retry_count: Option<u64>,
    force: bool,
    just_id: bool,
    last_id: Option<StreamId>,
}

impl ClaimTail {
    fn parse(rest: &[Bytes]) -> Result<Self, CommandError> {
        use super::args::parse_i64;
        let (min_idle_arg, rest) = rest.split_first().ok_or(CommandError::Syntax)?;
        let min_idle = parse_i64(min_idle_arg).ok_or(StreamError::InvalidClaimMinIdle)?;
        // IDs run until the first argument that is not one; the rest are options.
        let mut ids = Vec::new();
        let mut pos = 0;
        while let Some(raw) = rest.get(pos) {
            match StreamId::parse_strict(raw, 0) {
                Ok(id) => ids.push(id),
                Err(_) => break,
            }
            pos += 1;
        }
        let mut tail = ClaimTail {
            min_idle_ms: u64::try_from(min_idle).unwrap_or(0),
            ids,
            delivery: None,
            retry_count: None,
            force: false,
            just_id: false,
            last_id: None,
        };
        while let Some(opt) = rest.get(pos) {
            let value = rest.get(pos + 1);
            let upper = opt.to_ascii_uppercase();
            match (upper.as_slice(), value) {
                (b"FORCE", _) => tail.force = true,
                (b"JUSTID", _) => tail.just_id = true,
                (b"IDLE", Some(v)) => {
                    let ms = parse_i64(v).ok_or(StreamError::InvalidClaimIdle)?;
                    tail.delivery = Some(DeliveryTime::Idle(ms));
                    pos += 1;
                }
                (b"TIME", Some(v)) => {
                    let at = parse_i64(v).ok_or(StreamError::InvalidClaimTime)?;
                    tail.delivery = Some(DeliveryTime::Unix(at));
                    pos += 1;
                }
                (b"RETRYCOUNT", Some(v)) => {
                    let n = parse_i64(v).ok_or(StreamError::InvalidClaimRetryCount)?;
                    // A negative count means "not given", as in Redis.
                    tail.retry_count = u64::try_from(n).ok();
                    pos += 1;
                }
                (b"LASTID", Some(v)) => {
                    tail.last_id = Some(StreamId::parse_strict(v, 0)?);
                    pos += 1;
                }
                _ => {
                    return Err(StreamError::UnrecognizedClaimOption(
                        String::from_utf8_lossy(opt).into_owned(),
                    )
                    .into())
                }
            }
            pos += 1;
        }
        Ok(tail)
    }

    /// The delivery time to store, clamped to `[0, now]` like Redis (a client's clock running
    /// ahead is no reason to fail).
    fn delivery_time(&self, now_ms: u64) -> u64 {
        let now = to_i64(now_ms);
        let at = match self.delivery {
            None => return now_ms,
            Some(DeliveryTime::Idle(idle)) => now.saturating_sub(idle),
            Some(DeliveryTime::Unix(at)) => at,
        };
        if at < 0 || at > now {
            now_ms
        } else {
            at.unsigned_abs()
        }
    }
}

/// XCLAIM's parsed arguments.
#[derive(Debug)]
pub struct XClaim {
    key: Bytes,
    group: Bytes,
    consumer: Bytes,
    tail: Result<ClaimTail, CommandError>,
}

impl XClaim {
    /// Parses `key group consumer min-idle id [id ...] [options]`.
    pub fn parse(args: &mut Args) -> Result<Self, CommandError> {
        let key = args.next_bytes()?;
        let group = args.next_bytes()?;
        let consumer = args.next_bytes()?;
        let tail = ClaimTail::parse(&args.rest());
        Ok(XClaim {
            key,
            group,
            consumer,
            tail,
        })
    }

    /// Transfers ownership of the IDs that qualify: one `Claim` op with the command's time
    /// and options (replay re-runs the same claim against the same state).
    pub fn apply(self, ctx: &mut Ctx<'_>) -> Result<Reply, CommandError> {
        let now = ctx.now_ms;
        let no_group = || StreamError::no_key_or_group(&self.key, &self.group);
        read_lookup(ctx, &self.key);
        let s = stream(ctx, &self.key)?.ok_or_else(no_group)?;
        if !s.groups.contains_key(&self.group) {
            return Err(no_group().into());
        }
        let mut tail = self.tail?;
        // Look entries up first (payloads too, unless JUSTID): a read error must leave the
        // group unchanged.
        let store = ctx.store();
        let s = stream(ctx, &self.key)?.ok_or_else(no_group)?;
        // Broker policies: an entry delivered MAXDELIVER times is the dead-letter sweep's,
        // not delivered again (JUSTID delivers nothing). Decided here and left out of the
        // logged claim, so replay needs no policy.
        let policy = s.policy().and_then(|p| p.group(&self.group));
        if let (Some(policy), false, Some(group)) =
            (policy, tail.just_id, s.groups.get(&self.group))
        {
            tail.ids.retain(|id| {
                !s.contains(*id)
                    || group
                        .pending_entry(*id)
                        .is_none_or(|p| policy.may_deliver_again(p.delivery_count))
            });
        }
        let entries: Vec<Option<Entry>> = tail
            .ids
            .iter()
            .map(|id| {
                if tail.just_id {
                    Ok(s.contains(*id).then(|| Entry {
                        id: *id,
                        fields: Vec::new(),
                    }))
                } else {
                    s.get(*id, &store)
                }
            })
            .collect::<Result<_, _>>()?;
        let opts = ClaimOptions {
            min_idle_ms: tail.min_idle_ms,
            delivery_time_ms: tail.delivery_time(now),
            retry_count: tail.retry_count,
            force: tail.force,
            just_id: tail.just_id,
        };
        let outcomes = match ctx.apply(Op::Claim {
            key: self.key.clone(),
            group: self.group.clone(),
            consumer: self.consumer.clone(),
            time_ms: now,
            opts,
            last_id: tail.last_id,
            ids: tail.ids.clone(),
        })? {
            Applied::Claims(o) => o,
            _ => Vec::new(),
        };
        let mut out = Vec::new();
        for ((id, entry), outcome) in tail.ids.iter().zip(entries).zip(outcomes) {
            if outcome != ClaimOutcome::Claimed {
                continue;
            }
            match (&entry, tail.just_id) {
                (Some(entry), false) => out.push(entry_reply(entry)),
                _ => out.push(id_reply(*id)),
            }
        }
        // Claims move pending entries between consumers: Redis's xclaimCommand ends with
        // `keyModified(…, 0)`, which does not touch WATCH.
        Ok(Reply::Array(out))
    }
}

/// XCLAIM.
///
/// # Format
/// `XCLAIM key group consumer min-idle-time id [id ...] [IDLE ms] [TIME unix-ms] [RETRYCOUNT n] [FORCE] [JUSTID] [LASTID id]`
///
/// # Returns
/// The claimed entries (or their IDs with JUSTID). Entries gone from the stream are removed
/// from the PEL and not returned.
pub fn xclaim(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<Outcome, CommandError> {
    Ok(XClaim::parse(args)?.apply(ctx)?.into())
}

// ---------------------------------------------------------------------------------------------
// XAUTOCLAIM
// ---------------------------------------------------------------------------------------------

/// XAUTOCLAIM's parsed arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XAutoClaim {
    key: Bytes,
    group: Bytes,
    consumer: Bytes,
    min_idle_ms: u64,
    start: StreamId,
    count: usize,
    just_id: bool,
}

/// Redis bounds COUNT so that `COUNT × 10` scan attempts and the deleted-ID buffer fit.
const AUTOCLAIM_MAX_COUNT: i64 = i64::MAX / 16;

impl XAutoClaim {
    /// Parses `key group consumer min-idle start [COUNT n] [JUSTID]`.
    pub fn parse(args: &mut Args) -> Result<Self, CommandError> {
        use super::args::parse_i64;
        let key = args.next_bytes()?;
        let group = args.next_bytes()?;
        let consumer = args.next_bytes()?;
        let min_idle_arg = args.next_bytes()?;
        let min_idle = parse_i64(&min_idle_arg).ok_or(StreamError::InvalidAutoclaimMinIdle)?;
        let start_arg = args.next_bytes()?;
        let start = StreamId::parse_range_bound(&start_arg, 0)?
            .as_start()
            .ok_or(StreamError::InvalidStartId)?;
        let mut count = 100;
        let mut just_id = false;
        while let Some(opt) = args.next() {
            if opt.eq_ignore_ascii_case(b"COUNT") && args.remaining() > 0 {
                let raw = args.next_bytes()?;
                count = parse_i64(&raw)
                    .filter(|n| (1..=AUTOCLAIM_MAX_COUNT).contains(n))
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or(StreamError::CountNotPositive)?;
            } else if opt.eq_ignore_ascii_case(b"JUSTID") {
                just_id = true;
            } else {
                return Err(CommandError::Syntax);
            }
        }
        Ok(XAutoClaim {
            key,
            group,
            consumer,
            min_idle_ms: u64::try_from(min_idle).unwrap_or(0),
            start,
            count,
            just_id,
        })
    }

    /// Claims idle entries from the cursor on: one `AutoClaim` op with the command's time
    /// and arguments (replay re-runs the same scan against the same state).
    pub fn apply(self, ctx: &mut Ctx<'_>) -> Result<Reply, CommandError> {
        let now = ctx.now_ms;
        let no_group = || StreamError::no_key_or_group(&self.key, &self.group);
        let store = ctx.store();
        read_lookup(ctx, &self.key);
        let s = stream(ctx, &self.key)?.ok_or_else(no_group)?;
        if !s.groups.contains_key(&self.group) {
            return Err(no_group().into());
        }
        let scan = AutoClaimScan {
            start: self.start,
            min_idle_ms: self.min_idle_ms,
            count: self.count,
            just_id: self.just_id,
            now_ms: now,
        };
        let result = match ctx.apply(Op::AutoClaim {
            key: self.key.clone(),
            group: self.group.clone(),
            consumer: self.consumer.clone(),
            scan,
        })? {
            Applied::AutoClaim(r) => r,
            _ => Default::default(),
        };
        // No WATCH signal: Redis's xautoclaimCommand calls `keyModified(…, 0)`.
        // The claims stand (and are logged) even if a payload could not be read.
        let s = stream(ctx, &self.key)?.ok_or_else(no_group)?;
        let claimed: Vec<Reply> = result
            .claimed
            .iter()
            .map(|id| {
                Ok(match (self.just_id, s.get(*id, &store)?) {
                    (false, Some(entry)) => entry_reply(&entry),
                    _ => id_reply(*id),
                })
            })
            .collect::<Result<_, _>>()
            .map_err(CommandError::Payload)?;
        Ok(Reply::Array(vec![
            id_reply(result.next_cursor),
            Reply::Array(claimed),
            Reply::Array(result.deleted.into_iter().map(id_reply).collect()),
        ]))
    }
}

/// XAUTOCLAIM.
///
/// # Format
/// `XAUTOCLAIM key group consumer min-idle-time start [COUNT count] [JUSTID]`
///
/// # Returns
/// `[next-cursor, [claimed entries or IDs], [IDs deleted from the stream]]`; the cursor is
/// `0-0` once the whole PEL was scanned. At most `COUNT × 10` pending entries are examined.
pub fn xautoclaim(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<Outcome, CommandError> {
    Ok(XAutoClaim::parse(args)?.apply(ctx)?.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(parts: &[&str]) -> Args {
        let mut a = Args::new(parts.iter().map(|p| Bytes::from(p.to_string())).collect());
        a.seek(1);
        a
    }

    #[test]
    fn xreadgroup_parse_follows_redis_order() {
        let err = |parts: &[&str]| {
            XReadGroup::parse(&mut args(parts))
                .err()
                .map(|e| e.to_string())
        };
        assert_eq!(
            err(&["xreadgroup", "GROUP", "g", "c", "STREAMS", "a", "b", ">"]).as_deref(),
            Some("ERR Unbalanced 'xreadgroup' list of streams: for each stream key an ID or '>' must be specified.")
        );
        assert_eq!(
            err(&["xreadgroup", "STREAMS", "a", ">"]).as_deref(),
            Some("ERR Missing GROUP option for XREADGROUP")
        );
        assert_eq!(
            err(&[
                "xreadgroup",
                "GROUP",
                "g",
                "c",
                "BLOCK",
                "-1",
                "STREAMS",
                "a",
                ">"
            ])
            .as_deref(),
            Some("ERR timeout is negative")
        );
        assert_eq!(
            err(&[
                "xreadgroup",
                "GROUP",
                "g",
                "c",
                "BLOCK",
                "x",
                "STREAMS",
                "a",
                ">"
            ])
            .as_deref(),
            Some("ERR timeout is not an integer or out of range")
        );
        assert_eq!(
            err(&["xreadgroup", "GROUP", "g", "c", "FOO", "STREAMS", "a", ">"]).as_deref(),
            Some("ERR syntax error")
        );
        let ok = XReadGroup::parse(&mut args(&[
            "xreadgroup",
            "group",
            "g",
            "c",
            "count",
            "-3",
            "noack",
            "streams",
            "a",
            "b",
            ">",
            "5",
        ]));
        let ok = ok.ok();
        assert_eq!(ok.as_ref().map(|r| r.count), Some(0));
        assert_eq!(ok.as_ref().map(|r| r.noack), Some(true));
        assert_eq!(
            ok.map(|r| r.streams.into_iter().map(|(_, f)| f).collect::<Vec<_>>()),
            Some(vec![ReadFrom::New, ReadFrom::History(StreamId::new(5, 0))])
        );
    }

    #[test]
    fn xclaim_tail_parses_options_after_ids() {
        let raw: Vec<Bytes> = [
            "10",
            "1-0",
            "2",
            "IDLE",
            "5",
            "RETRYCOUNT",
            "-1",
            "justid",
            "LASTID",
            "9-9",
        ]
        .iter()
        .map(|s| Bytes::from(s.to_string()))
        .collect();
        let tail = ClaimTail::parse(&raw).ok();
        assert_eq!(tail.as_ref().map(|t| t.ids.len()), Some(2));
        assert_eq!(tail.as_ref().and_then(|t| t.retry_count), None);
        assert_eq!(tail.as_ref().map(|t| t.just_id), Some(true));
        assert_eq!(
            tail.as_ref().and_then(|t| t.last_id),
            Some(StreamId::new(9, 9))
        );
        assert_eq!(tail.as_ref().map(|t| t.delivery_time(1000)), Some(995));
        let bad: Vec<Bytes> = ["0", "1-0", "bad", "2-0"]
            .iter()
            .map(|s| Bytes::from(s.to_string()))
            .collect();
        assert_eq!(
            ClaimTail::parse(&bad)
                .err()
                .map(|e| e.to_string())
                .as_deref(),
            Some("ERR Unrecognized XCLAIM option 'bad'")
        );
        let idle: Vec<Bytes> = ["0", "1-0", "IDLE"]
            .iter()
            .map(|s| Bytes::from(s.to_string()))
            .collect();
        assert_eq!(
            ClaimTail::parse(&idle)
                .err()
                .map(|e| e.to_string())
                .as_deref(),
            Some("ERR Unrecognized XCLAIM option 'IDLE'")
        );
    }

    #[test]
    fn xpending_and_xautoclaim_parse_errors() {
        let pending = |parts: &[&str]| {
            XPending::parse(&mut args(parts))
                .err()
                .map(|e| e.to_string())
        };
        assert_eq!(
            pending(&["xpending", "k", "g", "-", "+"]).as_deref(),
            Some("ERR syntax error")
        );
        assert_eq!(
            pending(&["xpending", "k", "g", "IDLE", "x", "-", "+", "5"]).as_deref(),
            Some("ERR value is not an integer or out of range")
        );
        assert_eq!(
            pending(&["xpending", "k", "g", "IDLE", "10", "-", "+"]).as_deref(),
            Some("ERR syntax error")
        );
        assert_eq!(
            pending(&["xpending", "k", "g", "-", "(0-0", "5"]).as_deref(),
            Some("ERR invalid end ID for the interval")
        );
        let auto = |parts: &[&str]| {
            XAutoClaim::parse(&mut args(parts))
                .err()
                .map(|e| e.to_string())
        };
        assert_eq!(
            auto(&["xautoclaim", "k", "g", "c", "x", "0"]).as_deref(),
            Some("ERR Invalid min-idle-time argument for XAUTOCLAIM")
        );
        assert_eq!(
            auto(&["xautoclaim", "k", "g", "c", "0", "0", "COUNT", "0"]).as_deref(),
            Some("ERR COUNT must be > 0")
        );
        assert_eq!(
            auto(&["xautoclaim", "k", "g", "c", "0", "0", "COUNT"]).as_deref(),
            Some("ERR syntax error")
        );
    }
}
