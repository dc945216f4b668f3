//! Every stream-specific error Rill can send, with Redis 7.4's wire text.
//!
//! `Display` is the exact error line a Redis client sees, minus the leading `-`:
//! clients (Watermill, go-redis) compare some of these strings verbatim, so they
//! are written once, here, and the command layer never formats error text itself.
//! Key and group names are shown lossily as UTF-8 because Redis error lines are text.

/// A stream command failed for a reason Redis reports with a stream-specific message.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    // ----- IDs (all commands) -----
    /// An ID argument is not `ms[-seq]` (or `-`/`+` where those are refused).
    #[error("ERR Invalid stream ID specified as stream command argument")]
    InvalidId,

    // ----- XADD -----
    /// XADD with an explicit `0-0`.
    #[error("ERR The ID specified in XADD must be greater than 0-0")]
    AddIdZero,
    /// XADD with an ID not above the stream's last-generated ID (even a deleted one).
    #[error("ERR The ID specified in XADD is equal or smaller than the target stream top item")]
    AddIdTooSmall,
    /// The stream's last ID is `MAX-MAX`: no ID can follow it.
    #[error("ERR The stream has exhausted the last possible ID, unable to add more items")]
    IdExhausted,

    // ----- Trimming (XADD, XTRIM) -----
    /// Negative MAXLEN threshold.
    #[error("ERR The MAXLEN argument must be >= 0.")]
    NegativeMaxlen,
    /// Negative LIMIT.
    #[error("ERR The LIMIT argument must be >= 0.")]
    NegativeLimit,
    /// Both MAXLEN and MINID given.
    #[error("ERR syntax error, MAXLEN and MINID options at the same time are not compatible")]
    MaxlenAndMinid,
    /// LIMIT with an exact (`=` or implicit) trim.
    #[error("ERR syntax error, LIMIT cannot be used without the special ~ option")]
    LimitWithoutApprox,
    /// LIMIT without MAXLEN/MINID on XADD.
    #[error("ERR syntax error, LIMIT cannot be used without specifying a trimming strategy")]
    LimitWithoutStrategy,
    /// XTRIM without MAXLEN/MINID.
    #[error("ERR syntax error, XTRIM must be called with a trimming strategy")]
    TrimWithoutStrategy,

    // ----- XRANGE / XREVRANGE -----
    /// `(MAX` as a start: nothing can follow it.
    #[error("ERR invalid start ID for the interval")]
    InvalidStartId,
    /// `(0-0` as an end: nothing can precede it.
    #[error("ERR invalid end ID for the interval")]
    InvalidEndId,

    // ----- XREAD / XREADGROUP -----
    /// Odd number of arguments after STREAMS. `command` is `xread` or `xreadgroup`,
    /// `placeholder` is `$` or `>` accordingly. Redis 8.0 names XREAD's `+` too.
    #[error("ERR Unbalanced '{command}' list of streams: for each stream key {} must be specified.", unbalanced_choices(*placeholder))]
    Unbalanced {
        /// The command name, lowercase, as Redis prints it.
        command: &'static str,
        /// `$` for XREAD, `>` for XREADGROUP.
        placeholder: char,
    },
    /// XREAD with GROUP.
    #[error("ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead.")]
    GroupInXread,
    /// XREAD with NOACK.
    #[error("ERR The NOACK option is only supported by XREADGROUP. You called XREAD instead.")]
    NoackInXread,
    /// XREAD with `>` as an ID.
    #[error("ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option.")]
    GreaterThanInXread,
    /// BLOCK with a negative timeout.
    #[error("ERR timeout is negative")]
    NegativeTimeout,
    /// BLOCK with a non-integer timeout.
    #[error("ERR timeout is not an integer or out of range")]
    TimeoutNotInteger,
    /// BLOCK so large that the deadline would overflow.
    #[error("ERR timeout is out of range")]
    TimeoutOutOfRange,
    /// XREADGROUP without GROUP.
    #[error("ERR Missing GROUP option for XREADGROUP")]
    MissingGroup,
    /// XREADGROUP on a missing key or group.
    #[error(
        "NOGROUP No such key '{key}' or consumer group '{group}' in XREADGROUP with GROUP option"
    )]
    NoGroupForRead {
        /// The stream key.
        key: String,
        /// The group name.
        group: String,
    },
    /// XREADGROUP with `$` or `+` as an ID; `special` is that character.
    #[error("ERR The {special} ID is meaningless in the context of XREADGROUP: you want to read the history of this consumer by specifying a proper ID, or use the > ID to get new messages. The {special} ID would just return an empty result set.")]
    MeaninglessIdInGroupRead {
        /// `$` or `+`.
        special: char,
    },

    // ----- XGROUP -----
    /// XGROUP subcommand on a missing key (without MKSTREAM).
    #[error("ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically.")]
    GroupKeyMissing,
    /// XGROUP CREATE of an existing group (Watermill compares this exact text).
    #[error("BUSYGROUP Consumer Group name already exists")]
    BusyGroup,
    /// XGROUP SETID/DELCONSUMER/CREATECONSUMER on a missing group.
    #[error("NOGROUP No such consumer group '{group}' for key name '{key}'")]
    NoSuchGroup {
        /// The stream key.
        key: String,
        /// The group name.
        group: String,
    },
    /// ENTRIESREAD below -1.
    #[error("ERR value for ENTRIESREAD must be positive or -1")]
    InvalidEntriesRead,

    // ----- XPENDING / XCLAIM / XAUTOCLAIM / XACK -----
    /// Missing key or group for XPENDING/XCLAIM/XAUTOCLAIM.
    #[error("NOGROUP No such key '{key}' or consumer group '{group}'")]
    NoKeyOrGroup {
        /// The stream key.
        key: String,
        /// The group name.
        group: String,
    },
    /// XCLAIM min-idle-time not a non-negative integer.
    #[error("ERR Invalid min-idle-time argument for XCLAIM")]
    InvalidClaimMinIdle,
    /// XAUTOCLAIM min-idle-time not a non-negative integer.
    #[error("ERR Invalid min-idle-time argument for XAUTOCLAIM")]
    InvalidAutoclaimMinIdle,
    /// Unknown XCLAIM option; holds the option as written.
    #[error("ERR Unrecognized XCLAIM option '{0}'")]
    UnrecognizedClaimOption(String),
    /// Bad XCLAIM IDLE value.
    #[error("ERR Invalid IDLE option argument for XCLAIM")]
    InvalidClaimIdle,
    /// Bad XCLAIM TIME value.
    #[error("ERR Invalid TIME option argument for XCLAIM")]
    InvalidClaimTime,
    /// Bad XCLAIM RETRYCOUNT value.
    #[error("ERR Invalid RETRYCOUNT option argument for XCLAIM")]
    InvalidClaimRetryCount,
    /// XAUTOCLAIM COUNT out of range.
    #[error("ERR COUNT must be > 0")]
    CountNotPositive,

    // ----- XDELEX / XACKDEL (Redis 8.2, `streamParseAckDelArgsOrReply`) -----
    /// `IDS numids` with numids not an integer in 1..=LONG_MAX.
    #[error("ERR Number of IDs must be a positive integer")]
    NumIdsNotPositive,
    /// `IDS numids` with fewer arguments after it than numids.
    #[error("ERR The `numids` parameter must match the number of arguments")]
    NumIdsMismatch,
    /// No `IDS` block.
    #[error("ERR IDS option is required")]
    IdsRequired,

    // ----- XNACK (Redis 8.8) -----
    // Redis's unstable source at a3e68716 passes these texts to `addReplyError` with an
    // `ERR ` already in them, which would put `-ERR ERR …` on the wire; Redis's pattern
    // everywhere else (and its tests, which glob) is one `ERR`, which is what these send.
    /// The third argument is not SILENT, FAIL or FATAL.
    #[error("ERR mode must be SILENT, FAIL, or FATAL")]
    NackMode,
    /// `IDS numids` with numids not an integer in 1..=INT_MAX.
    #[error("ERR numids must be a positive integer")]
    NackNumIds,
    /// `IDS numids` with fewer arguments after it than numids.
    #[error("ERR number of IDs doesn't match numids")]
    NackNumIdsMismatch,
    /// RETRYCOUNT below 0.
    #[error("ERR Invalid RETRYCOUNT value, must be >= 0")]
    NackRetryCountNegative,
    /// A token XNACK does not know (a second mode, an ID after the IDS block, an option
    /// missing its value); holds the token as written.
    #[error("ERR Unrecognized XNACK option '{0}'")]
    UnrecognizedNackOption(String),
    /// No `IDS` block.
    #[error("ERR syntax error, expected IDS keyword")]
    NackIdsRequired,

    // ----- XINFO / XSETID -----
    /// XINFO or XSETID on a missing key.
    #[error("ERR no such key")]
    NoSuchKey,
    /// XSETID below the last entry's ID.
    #[error("ERR The ID specified in XSETID is smaller than the target stream top item")]
    SetIdTooSmall,
    /// XSETID ENTRIESADDED negative.
    #[error("ERR entries_added must be positive")]
    EntriesAddedNegative,
    /// XSETID ENTRIESADDED below the stream length.
    #[error("ERR The entries_added specified in XSETID is smaller than the target stream length")]
    EntriesAddedTooSmall,
    /// XSETID last-id below its own MAXDELETEDID.
    #[error("ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id")]
    SetIdBelowGivenMaxDeleted,
    /// XSETID last-id below the stream's current max-deleted-entry-id.
    #[error("ERR The ID specified in XSETID is smaller than current max_deleted_entry_id")]
    SetIdBelowMaxDeleted,

    // ----- XGROUP / XINFO option errors (appended by h2) -----
    /// A known subcommand with options Redis rejects (`addReplySubcommandSyntaxError`):
    /// `sub` is the subcommand as the client typed it, `container` is `XGROUP` or `XINFO`.
    #[error(
        "ERR unknown subcommand or wrong number of arguments for '{sub}'. Try {container} HELP."
    )]
    SubcommandSyntax {
        /// The subcommand name, case preserved.
        sub: String,
        /// The container command, uppercase.
        container: &'static str,
    },

    // ----- XREADGROUP CLAIM (8.4) and MAXCOUNT / MAXSIZE (8.10) -----
    /// CLAIM given to XREAD.
    #[error("ERR The CLAIM option is only supported by XREADGROUP. You called XREAD instead.")]
    ClaimInXread,
    /// CLAIM's value is not an integer (Redis's `string2ll` rules).
    #[error("ERR min-idle-time is not an integer or out of range")]
    ClaimMinIdleNotInteger,
    /// CLAIM's value is negative (0 is allowed, whatever the text says).
    #[error("ERR min-idle-time must be a positive integer")]
    ClaimMinIdleNegative,
    /// MAXCOUNT or MAXSIZE of 0 or less. Redis 8.10's text is not known to us; this is the
    /// one Redis uses for its other must-be-positive integers (`getPositiveLongFromObjectOrReply`).
    #[error("ERR value is out of range, must be positive")]
    ReadLimitNotPositive,
    /// MAXCOUNT below COUNT. Redis 8.10's text is not known to us; worded like Redis's
    /// other option-relation errors.
    #[error("ERR MAXCOUNT must be greater than or equal to COUNT")]
    MaxCountBelowCount,
}

impl StreamError {
    /// Builds [`StreamError::NoGroupForRead`] from raw key/group bytes.
    pub fn no_group_for_read(key: &[u8], group: &[u8]) -> Self {
        StreamError::NoGroupForRead {
            key: lossy(key),
            group: lossy(group),
        }
    }

    /// Builds [`StreamError::NoSuchGroup`] from raw key/group bytes.
    pub fn no_such_group(key: &[u8], group: &[u8]) -> Self {
        StreamError::NoSuchGroup {
            key: lossy(key),
            group: lossy(group),
        }
    }

    /// Builds [`StreamError::NoKeyOrGroup`] from raw key/group bytes.
    pub fn no_key_or_group(key: &[u8], group: &[u8]) -> Self {
        StreamError::NoKeyOrGroup {
            key: lossy(key),
            group: lossy(group),
        }
    }
}

/// What the "Unbalanced" error says each key needs: XREAD also takes `+` (the last entry)
/// since 7.4, and Redis 8.0 says so; XREADGROUP takes `>`.
fn unbalanced_choices(placeholder: char) -> String {
    if placeholder == '$' {
        "an ID, '+', or '$'".to_string()
    } else {
        format!("an ID or '{placeholder}'")
    }
}

/// Names inside error lines are text; Redis would copy raw bytes, we replace invalid UTF-8.
fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameterised_texts() {
        assert_eq!(
            StreamError::Unbalanced {
                command: "xread",
                placeholder: '$'
            }
            .to_string(),
            "ERR Unbalanced 'xread' list of streams: for each stream key an ID, '+', or '$' must be specified."
        );
        assert_eq!(
            StreamError::Unbalanced {
                command: "xreadgroup",
                placeholder: '>'
            }
            .to_string(),
            "ERR Unbalanced 'xreadgroup' list of streams: for each stream key an ID or '>' must be specified."
        );
        assert_eq!(
            StreamError::no_such_group(b"k", b"g").to_string(),
            "NOGROUP No such consumer group 'g' for key name 'k'"
        );
        assert_eq!(
            StreamError::no_group_for_read(b"k", b"g").to_string(),
            "NOGROUP No such key 'k' or consumer group 'g' in XREADGROUP with GROUP option"
        );
        assert!(StreamError::MeaninglessIdInGroupRead { special: '+' }
            .to_string()
            .starts_with("ERR The + ID is meaningless"));
    }
}
