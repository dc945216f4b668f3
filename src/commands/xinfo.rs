//! XINFO STREAM / GROUPS / CONSUMERS / HELP.
//!
//! Field names and their order are Redis 7.4's exactly: go-redis (up to v9.18) rejects a reply
//! with a field it does not know, and positional RESP2 parsers rely on the order. Maps become
//! RESP3 maps or RESP2 flat lists through `Reply::Map`.

use bytes::Bytes;

use super::connection::help_reply;
use super::groups::id_reply;
use super::streams::entry_reply;
use super::table::{CommandSpec, Handler};
use super::{Args, CommandError, Ctx, Outcome};
use crate::engine::error::StreamError;
use crate::engine::group::ConsumerGroup;
use crate::engine::stream::{Entry, Stream};
use crate::protocol::Reply;

/// The XINFO subcommands, for the command table.
pub const XINFO_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec::new("xinfo|consumers", 4, Handler::Data(xinfo_consumers))
        .flags(&["readonly"])
        .keys(2, 2, 1)
        .acl(&["@read", "@stream", "@slow"])
        .doc(
            "stream",
            "5.0.0",
            "O(1)",
            "Returns a list of the consumers in a consumer group.",
        ),
    CommandSpec::new("xinfo|groups", 3, Handler::Data(xinfo_groups))
        .flags(&["readonly"])
        .keys(2, 2, 1)
        .acl(&["@read", "@stream", "@slow"])
        .doc(
            "stream",
            "5.0.0",
            "O(1)",
            "Returns a list of the consumer groups of a stream.",
        ),
    CommandSpec::new("xinfo|help", 2, Handler::Data(xinfo_help))
        .flags(&["loading", "stale"])
        .acl(&["@stream", "@slow"])
        .doc(
            "stream",
            "5.0.0",
            "O(1)",
            "Returns helpful text about the different subcommands.",
        ),
    CommandSpec::new("xinfo|stream", -3, Handler::Data(xinfo_stream))
        .flags(&["readonly"])
        .keys(2, 2, 1)
        .acl(&["@read", "@stream", "@slow"])
        .doc(
            "stream",
            "5.0.0",
            "O(1)",
            "Returns information about a stream.",
        ),
];

/// XINFO HELP's own lines, as Redis 8.6 prints them between the common header and the
/// common `HELP` lines (the missing `]` is Redis's).
const XINFO_HELP: &[&str] = &[
    "CONSUMERS <key> <groupname>",
    "    Show consumers of <groupname>.",
    "GROUPS <key>",
    "    Show the stream consumer groups.",
    "STREAM <key> [FULL [COUNT <count>]",
    "    Show information about the stream.",
];

/// XINFO STREAM FULL shows at most this many entries / PEL entries per list unless COUNT says.
const FULL_DEFAULT_COUNT: usize = 10;

fn field(name: &'static str, value: Reply) -> (Reply, Reply) {
    (Reply::Bulk(Bytes::from_static(name.as_bytes())), value)
}

fn int(n: u64) -> Reply {
    Reply::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

fn len(n: usize) -> Reply {
    Reply::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

/// Milliseconds from `then` to `now`, never negative.
fn since(now_ms: u64, then_ms: u64) -> Reply {
    int(now_ms.saturating_sub(then_ms))
}

fn entries_read_reply(group: &ConsumerGroup) -> Reply {
    group.entries_read().map_or(Reply::Nil, int)
}

fn lag_reply(group: &ConsumerGroup, stream: &Stream) -> Reply {
    group.lag(&stream.counters()).map_or(Reply::Nil, Reply::Int)
}

/// The stream under `key`; XINFO on a missing key is `ERR no such key`.
fn existing_stream<'a>(ctx: &'a mut Ctx<'_>, key: &[u8]) -> Result<&'a Stream, CommandError> {
    if matches!(ctx.stream(key), Ok(None)) {
        ctx.key_miss(key);
    }
    ctx.stream(key)?
        .ok_or(CommandError::Stream(StreamError::NoSuchKey))
}

/// XINFO STREAM's parsed arguments.
#[derive(Debug)]
pub struct XInfoStream {
    key: Bytes,
    /// `None`: the summary form; `Some(n)`: FULL with at most `n` items per list (0 = all).
    /// The options are checked after the key, as in Redis.
    full: Result<Option<usize>, CommandError>,
}

impl XInfoStream {
    /// Parses `key [FULL [COUNT count]]`.
    pub fn parse(args: &mut Args) -> Result<Self, CommandError> {
        let key = args.next_bytes()?;
        let sub = args
            .argv()
            .get(1)
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default();
        let opts = args.rest();
        let syntax = || -> CommandError {
            StreamError::SubcommandSyntax {
                sub: sub.clone(),
                container: "XINFO",
            }
            .into()
        };
        let full = match opts.as_slice() {
            [] => Ok(None),
            [full] if full.eq_ignore_ascii_case(b"FULL") => Ok(Some(FULL_DEFAULT_COUNT)),
            [full, count, n]
                if full.eq_ignore_ascii_case(b"FULL") && count.eq_ignore_ascii_case(b"COUNT") =>
            {
                match super::args::parse_i64(n) {
                    // A negative COUNT falls back to the default, as in Redis.
                    Some(n) if n < 0 => Ok(Some(FULL_DEFAULT_COUNT)),
                    Some(n) => Ok(Some(usize::try_from(n).unwrap_or(usize::MAX))),
                    None => Err(CommandError::NotInteger),
                }
            }
            _ => Err(syntax()),
        };
        Ok(XInfoStream { key, full })
    }

    /// Describes the stream.
    pub fn apply(self, ctx: &mut Ctx<'_>) -> Result<Reply, CommandError> {
        let store = ctx.store();
        let stream = existing_stream(ctx, &self.key)?;
        let full = self.full?;
        let mut fields = vec![
            field("length", int(stream.len())),
            field("radix-tree-keys", int(stream.radix_tree_keys())),
            field("radix-tree-nodes", int(stream.radix_tree_nodes())),
            field("last-generated-id", id_reply(stream.last_id())),
            field("max-deleted-entry-id", id_reply(stream.max_deleted_id())),
            field("entries-added", int(stream.entries_added())),
            field(
                "recorded-first-entry-id",
                id_reply(stream.recorded_first_id()),
            ),
        ];
        // Redis 8.6: always present, also on streams that never used IDMP.
        let idmp = stream.idmp();
        fields.extend([
            field("idmp-duration", int(idmp.duration_s())),
            field("idmp-maxsize", int(idmp.max_entries())),
            field("pids-tracked", int(idmp.pids_tracked())),
            field("iids-tracked", int(idmp.iids_tracked())),
            field("iids-added", int(idmp.iids_added())),
            field("iids-duplicates", int(idmp.iids_duplicates())),
        ]);
        let Some(count) = full else {
            let entry_or_nil = |e: Option<Entry>| e.map_or(Reply::Nil, |e| entry_reply(&e));
            fields.push(field("groups", len(stream.groups.len())));
            fields.push(field(
                "first-entry",
                entry_or_nil(stream.first_entry(&store)?),
            ));
            fields.push(field(
                "last-entry",
                entry_or_nil(stream.last_entry(&store)?),
            ));
            return Ok(Reply::Map(fields));
        };
        let limit = (count > 0).then_some(count);
        let take = |n: usize| limit.map_or(n, |l| l.min(n));
        let entries = stream.range(
            crate::engine::id::StreamId::MIN,
            crate::engine::id::StreamId::MAX,
            limit,
            false,
            &store,
        )?;
        fields.push(field(
            "entries",
            Reply::Array(entries.iter().map(entry_reply).collect()),
        ));
        let groups = stream
            .groups
            .iter()
            .map(|(name, group)| {
                let pel = group
                    .pending_entries()
                    .take(take(group.pending_count()))
                    .map(|e| {
                        Reply::Array(vec![
                            id_reply(e.id),
                            Reply::Bulk(e.consumer.clone()),
                            int(e.delivery_time_ms),
                            int(e.delivery_count),
                        ])
                    })
                    .collect();
                let consumers = group
                    .consumers()
                    .map(|c| {
                        let pending = c
                            .pending_ids()
                            .take(take(c.pending_count()))
                            .filter_map(|id| group.pending_entry(id))
                            .map(|e| {
                                Reply::Array(vec![
                                    id_reply(e.id),
                                    int(e.delivery_time_ms),
                                    int(e.delivery_count),
                                ])
                            })
                            .collect();
                        Reply::Map(vec![
                            field("name", Reply::Bulk(c.name().clone())),
                            field("seen-time", int(c.seen_time_ms())),
                            field(
                                "active-time",
                                c.active_time_ms().map_or(Reply::Int(-1), int),
                            ),
                            field("pel-count", len(c.pending_count())),
                            field("pending", Reply::Array(pending)),
                        ])
                    })
                    .collect();
                let mut fields = vec![
                    field("name", Reply::Bulk(name.clone())),
                    field("last-delivered-id", id_reply(group.last_delivered_id())),
                    field("entries-read", entries_read_reply(group)),
                    field("lag", lag_reply(group, stream)),
                    field("pel-count", len(group.pending_count())),
                ];
                // Redis 8.8 always prints `nacked-count` here (8 pairs). Rill reports
                // 8.6.3, whose layout has 7, so the field appears only once XNACK (which
                // 8.6.3 lacks) has put something in the group's NACK zone: nothing an
                // 8.6.3 client can do changes this reply.
                let nacked = group.nacked_count();
                if nacked > 0 {
                    fields.push(field("nacked-count", len(nacked)));
                }
                fields.push(field("pending", Reply::Array(pel)));
                fields.push(field("consumers", Reply::Array(consumers)));
                Reply::Map(fields)
            })
            .collect();
        fields.push(field("groups", Reply::Array(groups)));
        Ok(Reply::Map(fields))
    }
}

/// XINFO STREAM.
///
/// # Format
/// `XINFO STREAM key [FULL [COUNT count]]`
///
/// # Returns
/// A map: `length, radix-tree-keys, radix-tree-nodes, last-generated-id, max-deleted-entry-id,
/// entries-added, recorded-first-entry-id, groups, first-entry, last-entry`; with FULL the
/// first seven, then `entries` and `groups` with each group's PEL and consumers.
pub fn xinfo_stream(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<Outcome, CommandError> {
    Ok(XInfoStream::parse(args)?.apply(ctx)?.into())
}

/// XINFO GROUPS.
///
/// # Format
/// `XINFO GROUPS key`
///
/// # Returns
/// Per group a map `name, consumers, pending, last-delivered-id, entries-read, lag`
/// (`entries-read`/`lag` nil when unknown).
pub fn xinfo_groups(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<Outcome, CommandError> {
    let key = args.next_bytes()?;
    args.finish()?;
    let stream = existing_stream(ctx, &key)?;
    let groups = stream
        .groups
        .iter()
        .map(|(name, group)| {
            Reply::Map(vec![
                field("name", Reply::Bulk(name.clone())),
                field("consumers", len(group.consumer_count())),
                field("pending", len(group.pending_count())),
                field("last-delivered-id", id_reply(group.last_delivered_id())),
                field("entries-read", entries_read_reply(group)),
                field("lag", lag_reply(group, stream)),
            ])
        })
        .collect();
    Ok(Reply::Array(groups).into())
}

/// XINFO CONSUMERS.
///
/// # Format
/// `XINFO CONSUMERS key group`
///
/// # Returns
/// Per consumer a map `name, pending, idle, inactive`: `idle` is ms since its last attempt
/// (any XREADGROUP/XCLAIM/XAUTOCLAIM), `inactive` ms since it was last served (-1 if never).
pub fn xinfo_consumers(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<Outcome, CommandError> {
    let key = args.next_bytes()?;
    let group_name = args.next_bytes()?;
    args.finish()?;
    let now = ctx.now_ms;
    let stream = existing_stream(ctx, &key)?;
    let group = stream
        .groups
        .get(&group_name)
        .ok_or_else(|| StreamError::no_such_group(&key, &group_name))?;
    let consumers = group
        .consumers()
        .map(|c| {
            Reply::Map(vec![
                field("name", Reply::Bulk(c.name().clone())),
                field("pending", len(c.pending_count())),
                field("idle", since(now, c.seen_time_ms())),
                field(
                    "inactive",
                    c.active_time_ms().map_or(Reply::Int(-1), |t| since(now, t)),
                ),
            ])
        })
        .collect();
    Ok(Reply::Array(consumers).into())
}

/// XINFO HELP.
///
/// # Format
/// `XINFO HELP`
///
/// # Returns
/// The help text, one status line per element.
pub fn xinfo_help(_ctx: &mut Ctx<'_>, args: &mut Args) -> Result<Outcome, CommandError> {
    args.finish()?;
    Ok(help_reply("XINFO", XINFO_HELP).into())
}
