//! `RILL.POLICY`: a stream's own broker policy (Rill only; issue #16). The `RILL.` prefix
//! keeps the family clear of every Redis command name, and nothing here changes a Redis
//! reply: XINFO and XPENDING stay byte-exact. What the settings mean and how the sweep
//! enforces them is `engine::policy`'s; the server-wide defaults are the
//! `stream-retention-*` directives.
//!
//! The subcommands are in the `@read`/`@write` ACL categories but not in `@stream`, so
//! `COMMAND LIST FILTERBY ACLCAT stream` (and a `+@stream` user) stay as Redis has them.

use bytes::Bytes;

use super::args::parse_u64;
use super::connection::help_reply;
use super::table::{CommandSpec, Handler};
use super::{Args, CommandError, Ctx, Outcome};
use crate::engine::error::StreamError;
use crate::engine::op::Op;
use crate::engine::policy::{GroupPolicy, StreamPolicy};
use crate::engine::refs::RefPolicy;
use crate::protocol::Reply;

/// The RILL.POLICY subcommands.
pub const RILL_POLICY_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec::new("rill.policy|set", -4, Handler::Data(policy_set))
        .flags(&["write", "fast"])
        .keys(2, 2, 1)
        .acl(&["@write", "@fast"])
        .doc(
            "stream",
            "0.1.0",
            "O(1)",
            "Sets a stream's own retention limits, overriding the stream-retention-* defaults.",
        ),
    CommandSpec::new("rill.policy|get", 3, Handler::Data(policy_get))
        .flags(&["readonly", "fast"])
        .keys(2, 2, 1)
        .acl(&["@read", "@fast"])
        .doc(
            "stream",
            "0.1.0",
            "O(1)",
            "Returns the retention limits in force for a stream and which of them are its own.",
        ),
    CommandSpec::new("rill.policy|del", 3, Handler::Data(policy_del))
        .flags(&["write", "fast"])
        .keys(2, 2, 1)
        .acl(&["@write", "@fast"])
        .doc(
            "stream",
            "0.1.0",
            "O(1)",
            "Removes a stream's own policy: the stream follows the defaults again.",
        ),
    CommandSpec::new("rill.policy|group", -5, Handler::Data(policy_group))
        .flags(&["write", "fast"])
        .keys(2, 2, 1)
        .acl(&["@write", "@fast"])
        .doc(
            "stream",
            "0.1.0",
            "O(1)",
            "Sets a consumer group's dead-letter policy: MAXDELIVER, the dead-letter stream and the ack wait.",
        ),
    CommandSpec::new("rill.policy|delgroup", 4, Handler::Data(policy_delgroup))
        .flags(&["write", "fast"])
        .keys(2, 2, 1)
        .acl(&["@write", "@fast"])
        .doc(
            "stream",
            "0.1.0",
            "O(1)",
            "Removes a consumer group's dead-letter policy.",
        ),
    CommandSpec::new("rill.policy|help", 2, Handler::Data(policy_help))
        .flags(&["loading", "stale"])
        .acl(&["@slow"])
        .doc(
            "stream",
            "0.1.0",
            "O(1)",
            "Returns helpful text about the different subcommands.",
        ),
];

const HELP: &[&str] = &[
    "SET <key> [MAXAGE <ms>] [MAXBYTES <bytes>] [MAXLEN <count>] [KEEPREF|DELREF|ACKED]",
    "    Set the stream's own retention limits (0 turns a limit off for this stream);",
    "    unset ones follow the stream-retention-* configuration.",
    "GET <key>",
    "    Show the limits in force and which of them are the stream's own.",
    "DEL <key>",
    "    Remove the stream's own limits and its groups' policies.",
    "GROUP <key> <group> [MAXDELIVER <n>] [DEADLETTER <stream>] [ACKWAIT <ms>] [BACKOFF \"1s 5s\"]",
    "    Dead-letter entries of <group> delivered <n> times whose last delivery failed (XNACKed",
    "    or not acknowledged within ACKWAIT, default 30000) to <stream> (default <key>:dlq);",
    "    XNACK FATAL dead-letters at once. With BACKOFF, XREADGROUP CLAIM redelivers an entry after",
    "    its k-th delivery only once idle ACKWAIT + step k (the last step repeats).",
    "DELGROUP <key> <group>",
    "    Remove the group's policy.",
];

/// Sets (merges into) a stream's own policy.
///
/// # Format
/// ```text
/// RILL.POLICY SET key [MAXAGE ms] [MAXBYTES bytes] [MAXLEN count] [KEEPREF|DELREF|ACKED]
/// ```
/// # Returns
/// `+OK`. Errors: `ERR no such key` for a missing key, `WRONGTYPE` for another type,
/// `ERR syntax error` for an unknown or repeated option, Redis's integer error for a value
/// that is not a non-negative integer.
#[derive(Debug)]
pub struct PolicySet {
    key: Bytes,
    policy: StreamPolicy,
}

impl PolicySet {
    /// Parses RILL.POLICY SET's arguments (after the subcommand name).
    pub fn parse(args: &mut Args) -> Result<Self, CommandError> {
        let key = args.next_bytes()?;
        let mut policy = StreamPolicy::default();
        while let Some(opt) = args.next() {
            if let Some(refs) = RefPolicy::parse(&opt) {
                if policy.refs.replace(refs).is_some() {
                    return Err(CommandError::Syntax);
                }
                continue;
            }
            let slot = if opt.eq_ignore_ascii_case(b"MAXAGE") {
                &mut policy.max_age_ms
            } else if opt.eq_ignore_ascii_case(b"MAXBYTES") {
                &mut policy.max_bytes
            } else if opt.eq_ignore_ascii_case(b"MAXLEN") {
                &mut policy.max_len
            } else {
                return Err(CommandError::Syntax);
            };
            let value = args.next().ok_or(CommandError::Syntax)?;
            let value = parse_u64(&value)
                .filter(|v| i64::try_from(*v).is_ok())
                .ok_or(CommandError::NotInteger)?;
            if slot.replace(value).is_some() {
                return Err(CommandError::Syntax);
            }
        }
        if policy.is_empty() {
            return Err(CommandError::Syntax);
        }
        Ok(PolicySet { key, policy })
    }

    /// Logs the stream's merged policy as one `PolicySet` op (nothing when unchanged).
    pub fn apply(self, ctx: &mut Ctx<'_>) -> Result<Reply, CommandError> {
        let Some(stream) = ctx.stream(&self.key)? else {
            return Err(StreamError::NoSuchKey.into());
        };
        let policy = stream
            .policy()
            .cloned()
            .unwrap_or_default()
            .merged(&self.policy);
        ctx.apply(Op::PolicySet {
            key: self.key,
            policy,
        })?;
        Ok(Reply::Ok)
    }
}

/// Handler for RILL.POLICY SET.
pub fn policy_set(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<Outcome, CommandError> {
    let cmd = PolicySet::parse(args)?;
    Ok(cmd.apply(ctx)?.into())
}

/// The limits in force for a stream.
///
/// # Format
/// ```text
/// RILL.POLICY GET key
/// ```
/// # Returns
/// A map (a flat array in RESP2): `max-age` (ms), `max-bytes`, `max-len` (integers, 0 =
/// no limit), `refs` (`keepref`, `delref` or `acked`) and `own` (an array of the names set
/// on the stream itself; the others are the `stream-retention-*` defaults), `groups` (a map
/// of group name → `max-deliver`, `dead-letter`, `ack-wait`, `backoff` (ms steps), with defaults
/// filled in). Errors:
/// `ERR no such key`, `WRONGTYPE`.
pub fn policy_get(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<Outcome, CommandError> {
    let key = args.next_bytes()?;
    args.finish()?;
    let defaults = crate::core::retention_defaults(ctx.shared);
    let Some(stream) = ctx.stream(&key)? else {
        return Err(StreamError::NoSuchKey.into());
    };
    let own = stream.policy().cloned().unwrap_or_default();
    let e = own.effective(&defaults);
    let name = |s: &'static str| Reply::Bulk(Bytes::from_static(s.as_bytes()));
    let int = |v: u64| Reply::Int(i64::try_from(v).unwrap_or(i64::MAX));
    let refs = match e.refs {
        RefPolicy::KeepRef => "keepref",
        RefPolicy::DelRef => "delref",
        RefPolicy::Acked => "acked",
    };
    let groups = own
        .groups
        .iter()
        .map(|(g, p)| {
            (
                Reply::Bulk(g.clone()),
                Reply::Map(vec![
                    (name("max-deliver"), int(p.max_deliver.unwrap_or(0))),
                    (name("dead-letter"), Reply::Bulk(p.dead_letter_key(&key))),
                    (name("ack-wait"), int(p.ack_wait())),
                    (
                        name("backoff"),
                        Reply::Array(p.backoff_ms.iter().flatten().map(|v| int(*v)).collect()),
                    ),
                ]),
            )
        })
        .collect();
    let mut set = Vec::new();
    for (field, present) in [
        ("max-age", own.max_age_ms.is_some()),
        ("max-bytes", own.max_bytes.is_some()),
        ("max-len", own.max_len.is_some()),
        ("refs", own.refs.is_some()),
    ] {
        if present {
            set.push(name(field));
        }
    }
    Ok(Reply::Map(vec![
        (name("max-age"), int(e.max_age_ms)),
        (name("max-bytes"), int(e.max_bytes)),
        (name("max-len"), int(e.max_len)),
        (name("refs"), name(refs)),
        (name("own"), Reply::Array(set)),
        (name("groups"), Reply::Map(groups)),
    ])
    .into())
}

/// Removes a stream's own policy.
///
/// # Format
/// ```text
/// RILL.POLICY DEL key
/// ```
/// # Returns
/// `:1` when the stream had its own policy, `:0` when it had none or does not exist.
/// Errors: `WRONGTYPE`.
pub fn policy_del(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<Outcome, CommandError> {
    let key = args.next_bytes()?;
    args.finish()?;
    let had = match ctx.stream(&key)? {
        Some(s) => s.policy().is_some(),
        None => false,
    };
    if had {
        ctx.apply(Op::PolicySet {
            key,
            policy: StreamPolicy::default(),
        })?;
    }
    Ok(Reply::Int(i64::from(had)).into())
}

/// RILL.POLICY HELP.
pub fn policy_help(_ctx: &mut Ctx<'_>, args: &mut Args) -> Result<Outcome, CommandError> {
    args.finish()?;
    Ok(help_reply("RILL.POLICY", HELP).into())
}

/// Sets (merges into) a consumer group's dead-letter policy.
///
/// # Format
/// ```text
/// RILL.POLICY GROUP key group [MAXDELIVER n] [DEADLETTER stream] [ACKWAIT ms] [BACKOFF schedule]
/// ```
/// `schedule` is one argument, e.g. `"1s 5s 30s 2m"`: after its k-th delivery an entry is
/// redelivered by `XREADGROUP … CLAIM` only once idle ACKWAIT + step k (the last step repeats).
/// # Returns
/// `+OK`. Errors: `NOGROUP` for a missing key or group, `WRONGTYPE`, `ERR syntax error` for
/// an unknown or repeated option or a dead-letter stream that is the stream itself, Redis's
/// integer error for a value that is not a non-negative integer, and in cluster mode
/// `CROSSSLOT` when the dead-letter stream (default `<key>:dlq`) hashes to another slot.
#[derive(Debug)]
pub struct PolicyGroup {
    key: Bytes,
    group: Bytes,
    policy: GroupPolicy,
}

impl PolicyGroup {
    /// Parses RILL.POLICY GROUP's arguments (after the subcommand name).
    pub fn parse(args: &mut Args) -> Result<Self, CommandError> {
        let key = args.next_bytes()?;
        let group = args.next_bytes()?;
        let mut policy = GroupPolicy::default();
        while let Some(opt) = args.next() {
            let value = args.next().ok_or(CommandError::Syntax)?;
            if opt.eq_ignore_ascii_case(b"BACKOFF") {
                let steps =
                    crate::engine::policy::parse_backoff(&value).ok_or(CommandError::Syntax)?;
                if policy.backoff_ms.replace(steps).is_some() {
                    return Err(CommandError::Syntax);
                }
                continue;
            }
            if opt.eq_ignore_ascii_case(b"DEADLETTER") {
                if value == key || policy.dead_letter.replace(value).is_some() {
                    return Err(CommandError::Syntax);
                }
                continue;
            }
            let slot = if opt.eq_ignore_ascii_case(b"MAXDELIVER") {
                &mut policy.max_deliver
            } else if opt.eq_ignore_ascii_case(b"ACKWAIT") {
                &mut policy.ack_wait_ms
            } else {
                return Err(CommandError::Syntax);
            };
            let value = parse_u64(&value)
                .filter(|v| i64::try_from(*v).is_ok())
                .ok_or(CommandError::NotInteger)?;
            if slot.replace(value).is_some() {
                return Err(CommandError::Syntax);
            }
        }
        if policy == GroupPolicy::default() {
            return Err(CommandError::Syntax);
        }
        Ok(PolicyGroup { key, group, policy })
    }

    /// Logs the stream's policy with this group's merged in (nothing when unchanged).
    pub fn apply(self, ctx: &mut Ctx<'_>) -> Result<Reply, CommandError> {
        let no_group = || StreamError::no_key_or_group(&self.key, &self.group);
        let Some(stream) = ctx.stream(&self.key)? else {
            return Err(no_group().into());
        };
        if !stream.groups.contains_key(&self.group) {
            return Err(no_group().into());
        }
        // Cluster mode: the sweep writes the dead-letter stream on this node, so it must be
        // in the source's hash slot (both named with one hash tag).
        let merged = stream
            .policy()
            .and_then(|p| p.group(&self.group))
            .cloned()
            .unwrap_or_default()
            .merged(&self.policy);
        if !ctx
            .ks
            .same_key_group(&self.key, &merged.dead_letter_key(&self.key))
        {
            return Err(CommandError::CrossSlot);
        }
        let Some(stream) = ctx.stream(&self.key)? else {
            return Err(no_group().into());
        };
        let mut change = StreamPolicy::default();
        change
            .groups
            .insert(Bytes::copy_from_slice(&self.group), self.policy);
        let policy = stream.policy().cloned().unwrap_or_default().merged(&change);
        ctx.apply(Op::PolicySet {
            key: self.key,
            policy,
        })?;
        Ok(Reply::Ok)
    }
}

/// Handler for RILL.POLICY GROUP.
pub fn policy_group(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<Outcome, CommandError> {
    let cmd = PolicyGroup::parse(args)?;
    Ok(cmd.apply(ctx)?.into())
}

/// Removes a consumer group's dead-letter policy.
///
/// # Format
/// ```text
/// RILL.POLICY DELGROUP key group
/// ```
/// # Returns
/// `:1` when the group had a policy, else `:0`. Errors: `WRONGTYPE`.
pub fn policy_delgroup(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<Outcome, CommandError> {
    let key = args.next_bytes()?;
    let group = args.next_bytes()?;
    args.finish()?;
    let Some(mut policy) = ctx.stream(&key)?.and_then(|s| s.policy().cloned()) else {
        return Ok(Reply::Int(0).into());
    };
    if policy.groups.remove(&group[..]).is_none() {
        return Ok(Reply::Int(0).into());
    }
    ctx.apply(Op::PolicySet { key, policy })?;
    Ok(Reply::Int(1).into())
}
