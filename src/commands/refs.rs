//! Redis 8.2's deletes that know about consumer groups: XDELEX and XACKDEL.
//!
//! Both take `[KEEPREF|DELREF|ACKED] IDS numids id [id ...]` (in any order, parsed by
//! Redis's `streamParseAckDelArgsOrReply`) and answer one integer per ID (see
//! [`delete_result`]). What "referenced" means, and how it is answered without a walk
//! over the PELs, is in [`crate::engine::refs`]; the trimming options of XADD and XTRIM
//! are parsed with theirs in `streams.rs`.

use bytes::Bytes;

use super::args::parse_i64;
use super::{Args, CommandError, Ctx, Outcome};
use crate::core::keyspace_events as events;
use crate::engine::error::StreamError;
use crate::engine::id::StreamId;
use crate::engine::op::{Applied, Op};
use crate::engine::refs::RefPolicy;
use crate::engine::stream::delete_result;
use crate::protocol::Reply;

/// The options XDELEX and XACKDEL share, parsed.
#[derive(Debug)]
struct AckDelArgs {
    policy: RefPolicy,
    /// The IDs as given, parsed only once the key (and group) are known to exist.
    ids: Vec<Bytes>,
}

/// Reads `[KEEPREF|DELREF|ACKED] IDS numids id…` from `argv[start..]` as
/// `streamParseAckDelArgsOrReply` does: one pass, each token checked as it is met.
///
/// A policy is taken once (a second one is a syntax error); an `IDS` block may come
/// before or after it, and a later block replaces an earlier one. An ID beyond `numids`
/// is read as an option, so it is a syntax error.
fn parse_ack_del(argv: &[Bytes], start: usize) -> Result<AckDelArgs, CommandError> {
    let mut policy = None;
    let mut block: Option<(usize, usize)> = None;
    let argc = argv.len();
    let mut j = start;
    while j < argc {
        let opt = &argv[j][..];
        if let Some(p) = RefPolicy::parse(opt).filter(|_| policy.is_none()) {
            policy = Some(p);
            j += 1;
        } else if opt.eq_ignore_ascii_case(b"ids") && j + 1 < argc {
            let numids = parse_i64(&argv[j + 1])
                .filter(|n| *n >= 1)
                .ok_or(StreamError::NumIdsNotPositive)?;
            let available = argc - j - 2;
            let numids = usize::try_from(numids)
                .ok()
                .filter(|n| *n <= available)
                .ok_or(StreamError::NumIdsMismatch)?;
            block = Some((j + 2, numids));
            j += 2 + numids;
        } else {
            return Err(CommandError::Syntax);
        }
    }
    let (from, n) = block.ok_or(StreamError::IdsRequired)?;
    Ok(AckDelArgs {
        policy: policy.unwrap_or_default(),
        ids: argv[from..from + n].to_vec(),
    })
}

fn parse_ids(ids: &[Bytes]) -> Result<Vec<StreamId>, CommandError> {
    ids.iter()
        .map(|raw| Ok(StreamId::parse_strict(raw, 0)?))
        .collect()
}

/// The reply for a missing key (or group): `-1` for every ID, which are not parsed.
fn all_not_found(n: usize) -> Reply {
    Reply::Array(vec![Reply::Int(delete_result::NOT_FOUND); n])
}

fn results_reply(codes: Vec<i64>) -> Reply {
    Reply::Array(codes.into_iter().map(Reply::Int).collect())
}

/// Deletes entries by ID, with a policy for the consumer groups that reference them.
///
/// # Format
/// ```text
/// XDELEX key [KEEPREF|DELREF|ACKED] IDS numids id [id ...]
/// ```
/// KEEPREF (the default) deletes and leaves PEL entries as they are; DELREF also removes
/// each ID from every group's PEL (even when the entry is not in the stream); ACKED deletes
/// only entries no group references.
/// # Returns
/// An array with one integer per ID: `1` deleted, `-1` not in the stream, `2` kept
/// because still referenced (ACKED). A missing key gives `-1` for every ID, unparsed.
#[derive(Debug)]
pub struct XDelEx {
    key: Bytes,
    /// Option errors come after the type check, so they wait for `apply`.
    args: Result<AckDelArgs, CommandError>,
}

impl XDelEx {
    /// Parses XDELEX.
    pub fn parse(args: &Args) -> Self {
        let argv = args.argv();
        XDelEx {
            key: argv[1].clone(),
            args: parse_ack_del(argv, 2),
        }
    }

    /// Runs XDELEX, in Redis's order: WRONGTYPE, option errors, missing key, ID errors.
    /// Logged only when it changed something (an entry deleted, or a PEL entry dropped).
    pub fn apply(self, ctx: &mut Ctx<'_>) -> Result<Reply, CommandError> {
        let exists = ctx.stream(&self.key)?.is_some();
        let args = self.args?;
        if !exists {
            return Ok(all_not_found(args.ids.len()));
        }
        let ids = parse_ids(&args.ids)?;
        let Applied::Results { codes, .. } = ctx.apply(Op::DeleteRefs {
            key: self.key.clone(),
            policy: args.policy,
            ids,
        })?
        else {
            return Err(CommandError::Internal("XDELEX without results".into()));
        };
        if codes.contains(&delete_result::DELETED) {
            ctx.signal_modified(&self.key);
            ctx.notify(events::STREAM, "xdel", &self.key);
        }
        Ok(results_reply(codes))
    }
}

/// Handler for XDELEX.
pub fn xdelex(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<Outcome, CommandError> {
    let cmd = XDelEx::parse(args);
    Ok(cmd.apply(ctx)?.into())
}

/// Acknowledges entries in a group and deletes them, with a policy for the other groups.
///
/// # Format
/// ```text
/// XACKDEL key group [KEEPREF|DELREF|ACKED] IDS numids id [id ...]
/// ```
/// Each ID pending in the group is acknowledged, then its entry deleted: always (KEEPREF,
/// the default), after removing it from every other group's PEL too (DELREF), or only if
/// no group references it any more (ACKED).
/// # Returns
/// An array with one integer per ID: `-1` not pending in the group (nothing done), `1`
/// acknowledged and deleted (or already gone from the stream), `2` acknowledged but kept
/// because still referenced (ACKED). A missing key or group gives `-1` for every ID.
#[derive(Debug)]
pub struct XAckDel {
    key: Bytes,
    group: Bytes,
    args: Result<AckDelArgs, CommandError>,
}

impl XAckDel {
    /// Parses XACKDEL.
    pub fn parse(args: &Args) -> Self {
        let argv = args.argv();
        XAckDel {
            key: argv[1].clone(),
            group: argv[2].clone(),
            args: parse_ack_del(argv, 3),
        }
    }

    /// Runs XACKDEL, in Redis's order: WRONGTYPE, option errors, missing key or group, ID
    /// errors. Logged only when something was acknowledged.
    pub fn apply(self, ctx: &mut Ctx<'_>) -> Result<Reply, CommandError> {
        // Redis looks the key up for reading (`keymiss`), before the option errors.
        if matches!(ctx.stream(&self.key), Ok(None)) {
            ctx.key_miss(&self.key);
        }
        let has_group = ctx
            .stream(&self.key)?
            .is_some_and(|s| s.groups.contains_key(&self.group));
        let args = self.args?;
        if !has_group {
            return Ok(all_not_found(args.ids.len()));
        }
        let ids = parse_ids(&args.ids)?;
        let before = ctx.stream(&self.key)?.map_or(0, |s| s.len());
        let Applied::Results { codes, .. } = ctx.apply(Op::AckDelete {
            key: self.key.clone(),
            group: self.group.clone(),
            policy: args.policy,
            ids,
        })?
        else {
            return Err(CommandError::Internal("XACKDEL without results".into()));
        };
        // WATCH is touched only when an entry left the stream (`deleted` in Redis's
        // xackdelCommand): an acknowledged ID whose entry was already gone answers 1 too,
        // but then only the group changed, which is `keyModified(…, 0)`.
        if ctx.stream(&self.key)?.map_or(0, |s| s.len()) < before {
            ctx.signal_modified(&self.key);
            ctx.notify(events::STREAM, "xdel", &self.key);
        }
        Ok(results_reply(codes))
    }
}

/// Handler for XACKDEL.
pub fn xackdel(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<Outcome, CommandError> {
    let cmd = XAckDel::parse(args);
    Ok(cmd.apply(ctx)?.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str], start: usize) -> Result<(RefPolicy, Vec<String>), String> {
        let argv: Vec<Bytes> = args.iter().map(|a| Bytes::from(a.to_string())).collect();
        parse_ack_del(&argv, start)
            .map(|a| {
                (
                    a.policy,
                    a.ids
                        .iter()
                        .map(|b| String::from_utf8_lossy(b).into_owned())
                        .collect(),
                )
            })
            .map_err(|e| e.to_string())
    }

    #[test]
    fn option_block_in_redis_order() {
        let ok = |a: &[&str]| parse(a, 2).expect("parses");
        assert_eq!(
            ok(&["xdelex", "s", "IDS", "2", "1-1", "2-2"]),
            (RefPolicy::KeepRef, vec!["1-1".into(), "2-2".into()])
        );
        assert_eq!(
            ok(&["xdelex", "s", "IDS", "1", "1-1", "acked"]).0,
            RefPolicy::Acked
        );
        // A later IDS block replaces an earlier one.
        assert_eq!(
            ok(&["xdelex", "s", "ids", "1", "a", "IDS", "1", "b"]).1,
            vec!["b".to_string()]
        );
        let err = |a: &[&str]| parse(a, 2).expect_err("fails");
        assert_eq!(
            err(&["xdelex", "s", "KEEPREF", "DELREF", "IDS", "1", "1-1"]),
            "ERR syntax error"
        );
        for n in ["abc", "0", "-5", "+1", "01"] {
            assert_eq!(
                err(&["xdelex", "s", "IDS", n, "1-1"]),
                "ERR Number of IDs must be a positive integer",
                "{n}"
            );
        }
        assert_eq!(
            err(&["xdelex", "s", "IDS", "3", "1-1", "2-2"]),
            "ERR The `numids` parameter must match the number of arguments"
        );
        assert_eq!(
            err(&["xdelex", "s", "IDS", "9223372036854775807", "1-1"]),
            "ERR The `numids` parameter must match the number of arguments"
        );
        assert_eq!(
            err(&["xdelex", "s", "IDS", "1", "1-1", "2-2"]),
            "ERR syntax error"
        );
        assert_eq!(err(&["xdelex", "s", "ACKED", "IDS"]), "ERR syntax error");
        assert_eq!(err(&["xdelex", "s", "ACKED"]), "ERR IDS option is required");
        // Numids is checked before the policy that follows it.
        assert_eq!(
            err(&["xdelex", "s", "IDS", "x", "ACKED", "DELREF"]),
            "ERR Number of IDs must be a positive integer"
        );
    }
}
