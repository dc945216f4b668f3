//! Redis 8.6's idempotent-production commands besides XADD's IDMP/IDMPAUTO options
//! (those are parsed with XADD's other options in `streams.rs`): XCFGSET, which sets a
//! stream's IDMP limits, and XIDMPRECORD, which records an IID for an existing entry
//! (Redis's AOF rewrite emits it; it is implemented as Redis does for tools that replay
//! such files). The state and its rules are `engine::idmp`'s.

use bytes::Bytes;

use super::args::parse_i64;
use super::{Args, CommandError, Ctx, Outcome};
use crate::engine::error::StreamError;
use crate::engine::id::StreamId;
use crate::engine::idmp::{self, IdmpError};
use crate::engine::op::Op;
use crate::protocol::Reply;

/// Sets a stream's IDMP limits. A value that differs from the stream's current one clears
/// every producer's history (the lifetime counters stay); repeating the current value
/// changes nothing, so every publisher may call it before it starts.
///
/// # Format
/// ```text
/// XCFGSET key [IDMP-DURATION seconds] [IDMP-MAXSIZE count]
/// ```
/// # Returns
/// `+OK`. Errors: `ERR no such key` for a missing key; durations outside 1..86400 and
/// sizes outside 1..10000 with Redis's texts.
#[derive(Debug)]
pub struct XCfgSet {
    key: Bytes,
    /// The parameters, or the first error in them: Redis looks the key up first.
    params: Result<(Option<u64>, Option<u64>), CommandError>,
}

impl XCfgSet {
    /// Parses XCFGSET; parameter errors are reported after the key lookup, as in Redis.
    pub fn parse(args: &mut Args) -> Result<Self, CommandError> {
        let key = args.next_bytes()?;
        let rest = args.rest();
        Ok(XCfgSet {
            key,
            params: Self::parse_params(&rest),
        })
    }

    fn parse_params(rest: &[Bytes]) -> Result<(Option<u64>, Option<u64>), CommandError> {
        let (mut duration, mut maxsize) = (None, None);
        let mut i = 0;
        while i < rest.len() {
            let more = rest.len() - i - 1;
            let param = &rest[i][..];
            if param.eq_ignore_ascii_case(b"IDMP-DURATION") && more > 0 {
                if duration.is_some() {
                    return Err(IdmpError::DurationTwice.into());
                }
                i += 1;
                let v = parse_i64(&rest[i]).ok_or(CommandError::NotInteger)?;
                duration = Some(
                    u64::try_from(v)
                        .ok()
                        .filter(|v| (idmp::MIN_DURATION..=idmp::MAX_DURATION).contains(v))
                        .ok_or(IdmpError::DurationRange)?,
                );
            } else if param.eq_ignore_ascii_case(b"IDMP-MAXSIZE") && more > 0 {
                if maxsize.is_some() {
                    return Err(IdmpError::MaxsizeTwice.into());
                }
                i += 1;
                let v = parse_i64(&rest[i]).ok_or(CommandError::NotInteger)?;
                maxsize = Some(
                    u64::try_from(v)
                        .ok()
                        .filter(|v| (idmp::MIN_MAXSIZE..=idmp::MAX_MAXSIZE).contains(v))
                        .ok_or(IdmpError::MaxsizeRange)?,
                );
            } else {
                return Err(CommandError::Syntax);
            }
            i += 1;
        }
        if duration.is_none() && maxsize.is_none() {
            return Err(IdmpError::NoParameter.into());
        }
        Ok((duration, maxsize))
    }

    /// Runs XCFGSET: one `IdmpConfig` op with both limits resolved, logged only if it
    /// changed something.
    pub fn apply(self, ctx: &mut Ctx<'_>) -> Result<Reply, CommandError> {
        let Some(stream) = ctx.stream(&self.key)? else {
            return Err(StreamError::NoSuchKey.into());
        };
        let (cur_duration, cur_max) = (stream.idmp().duration_s(), stream.idmp().max_entries());
        let (duration, maxsize) = self.params?;
        // Logged only if it changed something. WATCHers are not disturbed either way:
        // Redis 8.6.3 calls `keyModified(…, 0)`, which leaves watched keys alone.
        ctx.apply(Op::IdmpConfig {
            key: self.key.clone(),
            duration_s: duration.unwrap_or(cur_duration),
            max_entries: maxsize.unwrap_or(cur_max),
        })?;
        Ok(Reply::Ok)
    }
}

/// Handler for XCFGSET.
pub fn xcfgset(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<Outcome, CommandError> {
    let cmd = XCfgSet::parse(args)?;
    Ok(cmd.apply(ctx)?.into())
}

/// Records that producer `pid` added the existing entry `stream-id` under IID `iid`, as
/// an XADD IDMP would have (Redis 8.6.2's AOF rewrite emits it; clients are not meant to
/// call it). The IID joins the producer's history (which may evict its oldest).
///
/// # Format
/// ```text
/// XIDMPRECORD key pid iid stream-id
/// ```
/// # Returns
/// `+OK`, also when the same mapping is already there. Errors, in this order: an invalid
/// ID, an empty pid or iid, `ERR no such key`, `ERR No such message in stream`, and the
/// IID already recorded with another ID.
#[derive(Debug)]
pub struct XIdmpRecord {
    key: Bytes,
    pid: Bytes,
    iid: Bytes,
    id: StreamId,
}

impl XIdmpRecord {
    /// Parses XIDMPRECORD (arity is the table's: exactly four arguments).
    pub fn parse(args: &mut Args) -> Result<Self, CommandError> {
        let key = args.next_bytes()?;
        let pid = args.next_bytes()?;
        let iid = args.next_bytes()?;
        let id = StreamId::parse_strict(&args.next_bytes()?, 0)?;
        args.finish()?;
        if pid.is_empty() {
            return Err(IdmpError::RecordEmptyProducer.into());
        }
        if iid.is_empty() {
            return Err(IdmpError::RecordEmptyIid.into());
        }
        Ok(XIdmpRecord { key, pid, iid, id })
    }

    /// Runs XIDMPRECORD: an `IdmpRecord` op unless the mapping is already there.
    pub fn apply(self, ctx: &mut Ctx<'_>) -> Result<Reply, CommandError> {
        let Some(stream) = ctx.stream(&self.key)? else {
            return Err(StreamError::NoSuchKey.into());
        };
        if !stream.contains(self.id) {
            return Err(IdmpError::NoSuchMessage.into());
        }
        match stream.idmp().lookup(&self.pid, &self.iid) {
            Some(id) if id == self.id => return Ok(Reply::Ok),
            Some(_) => return Err(IdmpError::IidConflict.into()),
            None => {}
        }
        // No WATCH signal, as Redis 8.6.3 (`keyModified(…, 0)`); one change for the dirty
        // counter (XADD's own history entry counts none: its append did).
        ctx.apply_counted(
            Op::IdmpRecord {
                key: self.key.clone(),
                pid: self.pid,
                iid: self.iid,
                id: self.id,
            },
            Some(1),
        )?;
        Ok(Reply::Ok)
    }
}

/// Handler for XIDMPRECORD.
pub fn xidmprecord(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<Outcome, CommandError> {
    let cmd = XIdmpRecord::parse(args)?;
    Ok(cmd.apply(ctx)?.into())
}
