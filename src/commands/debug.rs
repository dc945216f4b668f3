//! DEBUG: the subcommands Rill implements — Redis's DIGEST and DIGEST-VALUE, and its own
//! DIGEST-DUMP, the text the digest is computed from, to say where two digests differ.
//!
//! Like Redis's, DEBUG is one command whose first argument selects what it does (not a
//! container with its own table entries): COMMAND DOCS lists no subcommands for it.
//! What the digest covers, and why, is documented in [`crate::engine::digest`].

use bytes::Bytes;

use super::connection::help_reply;
use super::{Args, CommandError, Ctx, Outcome};
use crate::engine::digest;
use crate::protocol::Reply;

type R = Result<Outcome, CommandError>;

/// What a DEBUG call asks for, parsed before the keyspace is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Debug {
    /// `DIGEST`: the whole dataset.
    Digest,
    /// `DIGEST-VALUE key [key ...]`: each value, in the current database.
    DigestValue(Vec<Bytes>),
    /// `DIGEST-DUMP [key ...]`: the walk as text; every database without keys.
    DigestDump(Vec<Bytes>),
    /// `HELP`.
    Help,
}

impl Debug {
    /// Parses the subcommand and its arguments, with Redis's error for anything else.
    pub fn parse(a: &mut Args) -> Result<Self, CommandError> {
        let sub = a.next_bytes()?;
        let argc = a.argv().len();
        let name = String::from_utf8_lossy(&sub).to_ascii_uppercase();
        match name.as_str() {
            "DIGEST" if argc == 2 => Ok(Debug::Digest),
            "DIGEST-VALUE" => Ok(Debug::DigestValue(a.rest())),
            "DIGEST-DUMP" => Ok(Debug::DigestDump(a.rest())),
            "HELP" if argc == 2 => Ok(Debug::Help),
            _ => Err(CommandError::Invalid(format!(
                "unknown subcommand or wrong number of arguments for '{}'. Try DEBUG HELP.",
                String::from_utf8_lossy(&sub)
                    .chars()
                    .take(128)
                    .collect::<String>()
            ))),
        }
    }

    /// Reads the keyspace (never changes it: no lazy expiry, nothing logged).
    pub fn apply(self, ctx: &mut Ctx<'_>) -> Result<Reply, CommandError> {
        let hex = |d: &digest::Digest| Reply::Status(Bytes::from(digest::hex(d)));
        match self {
            Debug::Digest => Ok(hex(&digest::dataset_digest(ctx.ks, ctx.now_ms)?)),
            Debug::DigestValue(keys) => {
                let mut out = Vec::with_capacity(keys.len());
                for key in &keys {
                    out.push(hex(&digest::value_digest(ctx.ks, ctx.db, key, ctx.now_ms)?));
                }
                Ok(Reply::Array(out))
            }
            Debug::DigestDump(keys) => {
                let only = (!keys.is_empty()).then_some((ctx.db, &keys[..]));
                Ok(Reply::bulk(digest::describe(ctx.ks, ctx.now_ms, only)?))
            }
            Debug::Help => Ok(help_reply(
                "DEBUG",
                &[
                    "DIGEST",
                    "    Output a hex signature representing the current DB content.",
                    "DIGEST-VALUE <key> [<key> ...]",
                    "    Output a hex signature of the values of all the specified keys.",
                    "DIGEST-DUMP [<key> ...]",
                    "    Output, as text, what DIGEST hashes: every key (or the given keys of the",
                    "    current DB) with its expiry, value, stream counters, nodes, entries,",
                    "    groups, pending entries and consumers.",
                ],
            )),
        }
    }
}

/// DEBUG
///
/// # Format
/// `DEBUG DIGEST | DIGEST-VALUE key [key ...] | DIGEST-DUMP [key ...] | HELP`
///
/// # Returns
/// DIGEST: a status of 40 hex digits (all zeros for an empty dataset), as Redis.
/// DIGEST-VALUE: an array of such statuses, one per key (zeros for a missing key).
/// DIGEST-DUMP: a bulk string, one line per key and per nested record.
pub fn debug(ctx: &mut Ctx<'_>, a: &mut Args) -> R {
    Ok(Debug::parse(a)?.apply(ctx)?.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(parts: &[&str]) -> Result<Debug, String> {
        let mut a = Args::new(parts.iter().map(|p| Bytes::from(p.to_string())).collect());
        a.seek(1);
        Debug::parse(&mut a).map_err(|e| e.to_string())
    }

    #[test]
    fn subcommands_and_redis_errors() {
        assert_eq!(parse(&["debug", "digest"]), Ok(Debug::Digest));
        assert_eq!(
            parse(&["DEBUG", "Digest-Value"]),
            Ok(Debug::DigestValue(vec![]))
        );
        assert_eq!(
            parse(&["debug", "digest-dump", "a", "b"]),
            Ok(Debug::DigestDump(vec![Bytes::from("a"), Bytes::from("b")]))
        );
        assert_eq!(
            parse(&["debug", "digest", "x"]),
            Err(
                "ERR unknown subcommand or wrong number of arguments for 'digest'. Try DEBUG HELP."
                    .into()
            )
        );
        assert_eq!(
            parse(&["debug", "sleep", "0"]),
            Err(
                "ERR unknown subcommand or wrong number of arguments for 'sleep'. Try DEBUG HELP."
                    .into()
            )
        );
    }
}
