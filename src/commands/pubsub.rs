//! Pub/Sub commands: PUBLISH, SPUBLISH, (P|S)SUBSCRIBE, (P|S)UNSUBSCRIBE and PUBSUB.
//!
//! Subscriptions live in two places: the client's own sets (`Session::subs`, which
//! give the counts of the confirmations and what to drop at RESET or disconnect) and
//! the server's registry (`core::pubsub`, the reverse map publishers use). Deliveries
//! reach a subscriber through its outlet, encoded by the publish in the subscriber's
//! protocol; its connection writes them (see `server/connection.rs`).
//!
//! PUBLISH reaches the subscribers of this node only: in cluster mode there is no
//! cluster-bus broadcast yet. SPUBLISH and SSUBSCRIBE route by slot like keys (their
//! channels are key-spec'd, as in Redis), so a shard channel lives on its slot's node.

use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::args::Args;
use super::connection::help_reply;
use super::error::CommandError;
use super::glob::glob_match;
use super::session::Session;
use super::table::{CommandSpec, Handler};
use super::Outcome;
use crate::core::pubsub::{Kind, Outlet};
use crate::core::Shared;
use crate::engine::error::StreamError;
use crate::protocol::Reply;

type R = Result<Outcome, CommandError>;

/// PUBLISH
///
/// # Format
/// `PUBLISH channel message`
///
/// # Returns
/// The number of clients that received the message (channel and pattern subscribers).
pub fn publish(s: &mut Session, sh: &Shared, args: &mut Args) -> R {
    publish_to(s, sh, Kind::Channel, args)
}

/// SPUBLISH
///
/// # Format
/// `SPUBLISH shardchannel message`
///
/// # Returns
/// The number of clients that received the message (shard channel subscribers).
pub fn spublish(s: &mut Session, sh: &Shared, args: &mut Args) -> R {
    publish_to(s, sh, Kind::Shard, args)
}

fn publish_to(s: &mut Session, sh: &Shared, kind: Kind, args: &mut Args) -> R {
    let channel = args.next_bytes()?;
    let message = args.next_bytes()?;
    let limits = sh.pubsub_output_limits();
    let n = sh.pubsub.publish(kind, &channel, &message, limits, |p, c| {
        glob_match(p, c, false)
    });
    s.published = s.published.max(n.unsigned_abs());
    Ok(Reply::Int(n).into())
}

/// SUBSCRIBE
///
/// # Format
/// `SUBSCRIBE channel [channel ...]`
///
/// # Returns
/// One `subscribe` push per channel: `[subscribe, channel, count]`, count being the
/// client's channels plus patterns.
pub fn subscribe(s: &mut Session, sh: &Shared, args: &mut Args) -> R {
    add(s, sh, Kind::Channel, args)
}

/// PSUBSCRIBE
///
/// # Format
/// `PSUBSCRIBE pattern [pattern ...]`
///
/// # Returns
/// One `psubscribe` push per pattern: `[psubscribe, pattern, count]`.
pub fn psubscribe(s: &mut Session, sh: &Shared, args: &mut Args) -> R {
    add(s, sh, Kind::Pattern, args)
}

/// SSUBSCRIBE
///
/// # Format
/// `SSUBSCRIBE shardchannel [shardchannel ...]`
///
/// # Returns
/// One `ssubscribe` push per channel: `[ssubscribe, channel, count]`, count being the
/// client's shard channels only.
pub fn ssubscribe(s: &mut Session, sh: &Shared, args: &mut Args) -> R {
    add(s, sh, Kind::Shard, args)
}

/// UNSUBSCRIBE
///
/// # Format
/// `UNSUBSCRIBE [channel [channel ...]]`
///
/// # Returns
/// One `unsubscribe` push per channel named (all of the client's when none is); with
/// nothing to unsubscribe from, `[unsubscribe, nil, 0]`.
pub fn unsubscribe(s: &mut Session, sh: &Shared, args: &mut Args) -> R {
    remove(s, sh, Kind::Channel, args)
}

/// PUNSUBSCRIBE
///
/// # Format
/// `PUNSUBSCRIBE [pattern [pattern ...]]`
///
/// # Returns
/// As UNSUBSCRIBE, with `punsubscribe`.
pub fn punsubscribe(s: &mut Session, sh: &Shared, args: &mut Args) -> R {
    remove(s, sh, Kind::Pattern, args)
}

/// SUNSUBSCRIBE
///
/// # Format
/// `SUNSUBSCRIBE [shardchannel [shardchannel ...]]`
///
/// # Returns
/// As UNSUBSCRIBE, with `sunsubscribe`; counts are of shard channels.
pub fn sunsubscribe(s: &mut Session, sh: &Shared, args: &mut Args) -> R {
    remove(s, sh, Kind::Shard, args)
}

fn verb(kind: Kind, on: bool) -> &'static str {
    match (kind, on) {
        (Kind::Channel, true) => "subscribe",
        (Kind::Channel, false) => "unsubscribe",
        (Kind::Pattern, true) => "psubscribe",
        (Kind::Pattern, false) => "punsubscribe",
        (Kind::Shard, true) => "ssubscribe",
        (Kind::Shard, false) => "sunsubscribe",
    }
}

/// The count a confirmation carries: Redis's `clientSubscriptionsCount` (channels and
/// patterns) or, for shard channels, `clientShardSubscriptionsCount`.
fn count(s: &Session, kind: Kind) -> i64 {
    let n = match kind {
        Kind::Shard => s.subs.shard.len(),
        _ => s.subs.channels.len() + s.subs.patterns.len(),
    };
    n as i64
}

fn confirmation(kind: Kind, on: bool, name: Option<Bytes>, count: i64) -> Reply {
    Reply::Push(vec![
        Reply::bulk(verb(kind, on)),
        name.map_or(Reply::Nil, Reply::Bulk),
        Reply::Int(count),
    ])
}

/// Keeps `sub=`/`psub=`/`ssub=` of CLIENT LIST in step with the session.
fn publish_counts(s: &Session) {
    for (i, kind) in [Kind::Channel, Kind::Pattern, Kind::Shard]
        .iter()
        .enumerate()
    {
        s.info.subscriptions[i].store(s.subs.of(*kind).len(), Ordering::Relaxed);
    }
}

fn add(s: &mut Session, sh: &Shared, kind: Kind, args: &mut Args) -> R {
    let outlet = s
        .subs
        .outlet
        .get_or_insert_with(|| Outlet::new(s.info.clone()))
        .clone();
    let mut replies = Vec::with_capacity(args.remaining());
    while let Some(name) = args.next() {
        // Kept for as long as the subscription lasts: a copy, not a slice of the
        // connection's read buffer (which a slice would keep whole).
        let name = crate::core::detached(&name);
        if s.subs.of_mut(kind).insert(name.clone()) {
            sh.pubsub.subscribe(kind, &name, &outlet);
        }
        replies.push(confirmation(kind, true, Some(name), count(s, kind)));
    }
    publish_counts(s);
    Ok(several(replies).into())
}

fn remove(s: &mut Session, sh: &Shared, kind: Kind, args: &mut Args) -> R {
    let names: Vec<Bytes> = if args.remaining() == 0 {
        s.subs.of(kind).iter().cloned().collect()
    } else {
        args.rest()
    };
    if names.is_empty() {
        return Ok(confirmation(kind, false, None, count(s, kind)).into());
    }
    let mut replies = Vec::with_capacity(names.len());
    for name in names {
        if s.subs.of_mut(kind).remove(&name) {
            sh.pubsub.unsubscribe(kind, &name, s.id);
        }
        replies.push(confirmation(kind, false, Some(name), count(s, kind)));
    }
    publish_counts(s);
    Ok(several(replies).into())
}

fn several(mut replies: Vec<Reply>) -> Reply {
    if replies.len() == 1 {
        replies.pop().unwrap_or(Reply::Several(Vec::new()))
    } else {
        Reply::Several(replies)
    }
}

/// Drops every subscription of the session (RESET, disconnect).
pub fn unsubscribe_all(s: &mut Session, sh: &Shared) {
    for kind in [Kind::Channel, Kind::Pattern, Kind::Shard] {
        for name in s.subs.of_mut(kind).drain() {
            sh.pubsub.unsubscribe(kind, &name, s.id);
        }
    }
    publish_counts(s);
}

/// Whether a RESP2 client in subscribed mode may run `full_name` (Redis's
/// `processCommand` list).
pub fn allowed_when_subscribed(full_name: &str) -> bool {
    matches!(
        full_name,
        "ping"
            | "subscribe"
            | "ssubscribe"
            | "unsubscribe"
            | "sunsubscribe"
            | "psubscribe"
            | "punsubscribe"
            | "quit"
            | "reset"
    )
}

/// The subcommands of PUBSUB.
pub static PUBSUB_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec::new("pubsub|channels", -2, Handler::Conn(channels))
        .flags(&["pubsub", "loading", "stale"])
        .acl(&["@pubsub", "@slow"])
        .doc("pubsub", "2.8.0", "O(N) where N is the number of active channels, and assuming constant time pattern matching (relatively short channels and patterns)", "Returns the active channels."),
    CommandSpec::new("pubsub|numsub", -2, Handler::Conn(numsub))
        .flags(&["pubsub", "loading", "stale"])
        .acl(&["@pubsub", "@slow"])
        .doc("pubsub", "2.8.0", "O(N) for the NUMSUB subcommand, where N is the number of requested channels", "Returns a count of subscribers to channels."),
    CommandSpec::new("pubsub|numpat", 2, Handler::Conn(numpat))
        .flags(&["pubsub", "loading", "stale"])
        .acl(&["@pubsub", "@slow"])
        .doc("pubsub", "2.8.0", "O(1)", "Returns a count of unique pattern subscriptions."),
    CommandSpec::new("pubsub|shardchannels", -2, Handler::Conn(shardchannels))
        .flags(&["pubsub", "loading", "stale"])
        .acl(&["@pubsub", "@slow"])
        .doc("pubsub", "7.0.0", "O(N) where N is the number of active shard channels, and assuming constant time pattern matching (relatively short shard channels).", "Returns the active shard channels."),
    CommandSpec::new("pubsub|shardnumsub", -2, Handler::Conn(shardnumsub))
        .flags(&["pubsub", "loading", "stale"])
        .acl(&["@pubsub", "@slow"])
        .doc("pubsub", "7.0.0", "O(N) for the SHARDNUMSUB subcommand, where N is the number of requested shard channels", "Returns the count of subscribers of shard channels."),
    CommandSpec::new("pubsub|help", 2, Handler::Conn(help))
        .flags(&["loading", "stale"])
        .acl(&["@slow"])
        .doc("pubsub", "6.2.0", "O(1)", "Returns helpful text about the different subcommands."),
];

/// PUBSUB CHANNELS / SHARDCHANNELS: `[pattern]`, the names with a subscriber.
fn names(sh: &Shared, kind: Kind, args: &mut Args) -> R {
    let pattern = args.next();
    if args.remaining() > 0 {
        // Redis's addReplySubcommandSyntaxError, with the subcommand as typed.
        let sub = String::from_utf8_lossy(&args.argv()[1]).into_owned();
        return Err(StreamError::SubcommandSyntax {
            sub,
            container: "PUBSUB",
        }
        .into());
    }
    let names = sh
        .pubsub
        .names(kind)
        .into_iter()
        .filter(|n| pattern.as_ref().is_none_or(|p| glob_match(p, n, false)));
    Ok(Reply::bulks(names).into())
}

fn channels(_s: &mut Session, sh: &Shared, args: &mut Args) -> R {
    names(sh, Kind::Channel, args)
}

fn shardchannels(_s: &mut Session, sh: &Shared, args: &mut Args) -> R {
    names(sh, Kind::Shard, args)
}

/// PUBSUB NUMSUB / SHARDNUMSUB: `[channel ...]`, a flat array of channel, count.
fn counts(sh: &Shared, kind: Kind, args: &mut Args) -> R {
    let mut out = Vec::with_capacity(2 * args.remaining());
    for name in args.rest() {
        let n = sh.pubsub.count(kind, &name);
        out.push(Reply::Bulk(name));
        out.push(Reply::Int(n as i64));
    }
    Ok(Reply::Array(out).into())
}

fn numsub(_s: &mut Session, sh: &Shared, args: &mut Args) -> R {
    counts(sh, Kind::Channel, args)
}

fn shardnumsub(_s: &mut Session, sh: &Shared, args: &mut Args) -> R {
    counts(sh, Kind::Shard, args)
}

fn numpat(_s: &mut Session, sh: &Shared, _args: &mut Args) -> R {
    Ok(Reply::Int(sh.pubsub.len(Kind::Pattern) as i64).into())
}

fn help(_s: &mut Session, _sh: &Shared, _args: &mut Args) -> R {
    Ok(help_reply(
        "PUBSUB",
        &[
            "CHANNELS [<pattern>]",
            "    Return the currently active channels matching a <pattern> (default: '*').",
            "NUMPAT",
            "    Return number of subscriptions to patterns.",
            "NUMSUB [<channel> ...]",
            "    Return the number of subscribers for the specified channels, excluding",
            "    pattern subscriptions(default: no channels).",
            "SHARDCHANNELS [<pattern>]",
            "    Return the currently active shard level channels matching a <pattern> (default: '*').",
            "SHARDNUMSUB [<shardchannel> ...]",
            "    Return the number of subscribers for the specified shard level channel(s)",
        ],
    )
    .into())
}
