//! Command-layer errors. Their `Display` is the exact Redis wire text (without the
//! leading `-`): this enum, together with `engine::error::StreamError` and
//! `protocol::ProtocolError`, is the one place where error text is produced.

use crate::engine::error::StreamError;

/// Everything a command can fail with, as the client will read it.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("ERR syntax error")]
    Syntax,
    #[error("ERR value is not an integer or out of range")]
    NotInteger,
    #[error("ERR value is out of range, must be positive")]
    NotPositive,
    #[error("WRONGTYPE Operation against a key holding the wrong kind of value")]
    WrongType,
    #[error("ERR wrong number of arguments for '{0}' command")]
    WrongArity(String),
    /// `args` is empty when the command came alone: Redis 8 then ends the text after the
    /// name (7.x always added ", with args beginning with: ").
    #[error("ERR unknown command '{name}'{}", args_suffix(args))]
    UnknownCommand { name: String, args: String },
    #[error("ERR unknown subcommand '{sub}'. Try {container} HELP.")]
    UnknownSubcommand { sub: String, container: String },
    #[error("ERR no such key")]
    NoSuchKey,
    /// A state change the engine refused after the command had checked it: a bug, reported
    /// rather than applied half-way (nothing changed, nothing was logged).
    #[error("ERR internal error: {0}")]
    Internal(String),
    #[error("ERR DB index is out of range")]
    DbIndexOutOfRange,
    #[error("ERR invalid expire time in '{0}' command")]
    InvalidExpire(String),
    #[error("ERR NX and XX, GT or LT options at the same time are not compatible")]
    ExpireOptionsIncompatible,
    #[error("ERR GT and LT options at the same time are not compatible")]
    ExpireGtLt,
    #[error("ERR invalid cursor")]
    InvalidCursor,
    #[error("ERR source and destination objects are the same")]
    SameObject,
    /// DEBUG refused by `enable-debug-command` (Redis's text for its protected commands).
    #[error("ERR DEBUG command not allowed. If the enable-debug-command option is set to \"local\", you can run it from a local connection, otherwise you need to set this option in the configuration file, and then restart the server.")]
    DebugNotAllowed,
    /// An ACL refusal (Redis's `getAclErrorMessage`, not verbose).
    #[error("NOPERM {0}")]
    NoPerm(AclDenial),
    /// A queued command the ACL no longer allows at EXEC.
    #[error("NOPERM ACLs rules changed between the moment the transaction was accumulated and the EXEC call. This command is no longer allowed for the following reason: {0}")]
    NoPermAtExec(&'static str),
    #[error("ERR Error in ACL SETUSER modifier '{op}': {reason}")]
    AclModifier { op: String, reason: AclRuleError },
    #[error("ERR Unmatched parenthesis in acl selector starting at '{0}'.")]
    AclUnmatchedParen(String),
    #[error("ERR Usernames can't contain spaces or null characters")]
    AclBadUsername,
    #[error("ERR The 'default' user cannot be removed")]
    AclDeleteDefault,
    #[error("ERR This Redis instance is not configured to use an ACL file. You may want to specify users via the ACL SETUSER command and then issue a CONFIG REWRITE (assuming you have a Redis configuration file set) in order to store users in the Redis configuration.")]
    AclNoFile,
    #[error("ERR Unknown category '{0}'")]
    AclUnknownCategory(String),
    #[error("ERR ACL GENPASS argument must be the number of bits for the output password, a positive number up to 4096")]
    AclGenpassBits,
    /// CLIENT KILL USER with a user that does not exist.
    #[error("ERR No such user '{0}'")]
    NoSuchUser(String),
    #[error("ERR User '{0}' not found")]
    AclUserNotFound(String),
    #[error("ERR Command '{0}' not found")]
    AclCommandNotFound(String),
    /// ACL LOAD: the file's errors, as Redis lists them (see [`AclFileError`]).
    #[error("ERR {0}")]
    AclLoad(String),
    #[error("ERR There was an error trying to save the ACLs. Please check the server logs for more information")]
    AclSaveFailed,
    #[error("NOAUTH Authentication required.")]
    NoAuth,
    #[error("WRONGPASS invalid username-password pair or user is disabled.")]
    WrongPass,
    #[error("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?")]
    AuthNotConfigured,
    #[error("NOPROTO unsupported protocol version")]
    NoProto,
    #[error("ERR Protocol version is not an integer or out of range")]
    ProtoNotInteger,
    #[error("ERR MULTI calls can not be nested")]
    NestedMulti,
    #[error("ERR EXEC without MULTI")]
    ExecWithoutMulti,
    #[error("ERR DISCARD without MULTI")]
    DiscardWithoutMulti,
    #[error("ERR WATCH inside MULTI is not allowed")]
    WatchInMulti,
    #[error("EXECABORT Transaction discarded because of previous errors.")]
    ExecAbort,
    #[error("ERR Command not allowed inside a transaction")]
    NotAllowedInMulti,
    /// A command (or the transaction it would join) could not fit in one log record.
    #[error("ERR {what} too large to log: its record could take {bytes} bytes, at most {limit} fit in one")]
    TooLargeToLog {
        what: &'static str,
        bytes: u64,
        limit: u64,
    },
    #[error("ERR Client names cannot contain spaces, newlines or special characters.")]
    BadClientName,
    #[error("ERR No such client")]
    NoSuchClient,
    #[error("ERR CLIENT KILL with no matching clients")]
    ClientKillNoMatch,
    #[error("ERR {0}")]
    Config(String),
    #[error("ERR Errors trying to SHUTDOWN. Check logs.")]
    ShutdownFailed,
    #[error("ERR max number of clients reached")]
    MaxClients,
    #[error("UNBLOCKED client unblocked via CLIENT UNBLOCK")]
    Unblocked,
    #[error("LOADING Rill is loading the dataset in memory")]
    Loading,
    #[error("ERR {0}")]
    Invalid(String),
    /// Text that does not start with ERR (HELLO's NOAUTH, …), verbatim.
    #[error("{0}")]
    Raw(String),
    /// Cluster mode: the key's slot is served by another node.
    #[error("MOVED {slot} {endpoint}")]
    Moved { slot: u16, endpoint: String },
    /// Cluster mode: the key's slot is being moved and the key is not (or no longer) on this
    /// node: ask the node the slot is moving to, once (`ASKING`), without updating the map.
    #[error("ASK {slot} {endpoint}")]
    Ask { slot: u16, endpoint: String },
    /// Cluster mode: a multi-key request on a slot being moved, with some keys here and
    /// some not.
    #[error("TRYAGAIN Multiple keys request during rehashing of slot")]
    TryAgain,
    /// RILL.RESTORE onto an existing key without REPLACE (Redis's RESTORE text).
    #[error("BUSYKEY Target key name already exists.")]
    BusyKey,
    /// RILL.RESTORE: a payload that is not a moved key's.
    #[error("ERR DUMP {0}")]
    Transfer(#[from] crate::engine::transfer::TransferError),
    /// RILL.MIGRATE could not connect to the target (Redis's MIGRATE text, which says
    /// "client").
    #[error("IOERR error or timeout connecting to the client")]
    MigrateConnect,
    /// RILL.MIGRATE lost or timed out talking to the target (Redis's MIGRATE text).
    #[error("IOERR error or timeout {0} to target instance")]
    MigrateIo(&'static str),
    /// RILL.MIGRATE: the target refused a key (Redis's MIGRATE text).
    #[error("ERR Target instance replied with error: {0}")]
    TargetError(String),
    /// Cluster mode: the keys of a request (or of a transaction) are in several slots.
    #[error("CROSSSLOT Keys in request don't hash to the same slot")]
    CrossSlot,
    /// Cluster mode: no shard owns the key's slot (e.g. before `rill cluster create`).
    #[error("CLUSTERDOWN Hash slot not served")]
    SlotNotServed,
    /// Cluster mode: not every slot is served, so no keyed command is (Redis's default
    /// `cluster-require-full-coverage yes`).
    #[error("CLUSTERDOWN The cluster is down")]
    ClusterDown,
    /// RESP2 subscribed mode: a command other than (P|S)(UN)SUBSCRIBE, PING, QUIT, RESET.
    #[error("ERR Can't execute '{0}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context")]
    SubscribedContext(&'static str),
    #[error("ERR This instance has cluster support disabled")]
    ClusterDisabled,
    #[error("ERR SELECT is not allowed in cluster mode")]
    SelectInClusterMode,
    #[error("ERR Invalid slot")]
    InvalidSlot,
    #[error("ERR Invalid slot or number of keys")]
    InvalidSlotOrCount,
    #[error("ERR No shard ID yet")]
    NoShardId,
    /// CLUSTER FAILOVER sent to the node that already leads its shard (Redis's text for a master).
    #[error("ERR You should send CLUSTER FAILOVER to a replica")]
    FailoverOnMaster,
    /// A Redis command that changes the cluster's topology by hand; Rill's topology is
    /// managed by the `rill cluster` CLI.
    #[error("ERR CLUSTER {command} is not supported: Rill's cluster topology is managed with '{instead}'")]
    TopologyManaged {
        command: String,
        instead: &'static str,
    },
    /// A shard map sent with RILL.CLUSTER was refused, or could not be persisted.
    #[error("ERR {0}")]
    Topology(#[from] crate::cluster::TopologyError),
    #[error(transparent)]
    Stream(#[from] StreamError),
    /// XADD IDMP/IDMPAUTO, XCFGSET, XIDMPRECORD (Redis 8.6).
    #[error(transparent)]
    Idmp(#[from] crate::engine::idmp::IdmpError),
    /// An entry's payload could not be read back from the log.
    #[error(transparent)]
    Payload(#[from] crate::engine::payload::PayloadError),
    /// The log refused a write (poisoned after a failed write or fsync).
    #[error("MISCONF {0}")]
    Storage(#[from] crate::storage::StorageError),
    /// The node's Raft group refused the write or failed its wait (`cluster-raft yes`).
    #[error("{}", raft_text(.0))]
    Raft(#[from] crate::cluster::raft::RaftError),
}

/// A Raft error's wire text: a poisoned log reads as in the single-node server; a node that
/// is not (or no longer) leader, or whose group stopped, is down for this shard.
fn raft_text(e: &crate::cluster::raft::RaftError) -> String {
    use crate::cluster::raft::RaftError;
    match e {
        RaftError::Storage(e) => format!("MISCONF {e}"),
        RaftError::Busy(e) => format!("ERR {e}"),
        e => format!("CLUSTERDOWN {e}"),
    }
}

impl CommandError {
    /// The error's first word (`ERR`, `WRONGTYPE` …), as INFO errorstats counts them.
    pub fn prefix(text: &str) -> &str {
        text.split(' ').next().unwrap_or("ERR")
    }
}

/// The `, with args beginning with: …` part of an unknown-command error, present only
/// when the command had arguments (Redis 8's `commandCheckExistence`).
fn args_suffix(args: &str) -> String {
    if args.is_empty() {
        String::new()
    } else {
        format!(", with args beginning with: {args}")
    }
}

/// Why an ACL rule was refused: Redis's errno values and `ACLSetUserStringError` texts.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AclRuleError {
    #[error("Syntax error")]
    Syntax,
    #[error("Unknown command or category name in ACL")]
    UnknownName,
    #[error("Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and does not have any effect. Try 'resetkeys' to start with an empty list of patterns")]
    AfterAllKeys,
    #[error("Adding a pattern after the * pattern (or the 'allchannels' flag) is not valid and does not have any effect. Try 'resetchannels' to start with an empty list of channels")]
    AfterAllChannels,
    #[error("The password you are trying to remove from the user does not exist")]
    NoSuchPassword,
    #[error("The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters")]
    BadHash,
    #[error("Duplicate user found. A user can only be defined once in config files")]
    Duplicate,
    #[error("Allowing first-arg of a subcommand is not supported")]
    SubcommandFirstArg,
}

/// What the ACL refused, as Redis's `getAclErrorMessage` words it: the `Verbose…` forms
/// name the key or channel (ACL DRYRUN), the others do not (NOPERM replies, which any
/// client may provoke).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AclDenial {
    #[error("User {user} has no permissions to run the '{command}' command")]
    Command { user: String, command: &'static str },
    #[error("No permissions to access a key")]
    Key,
    #[error("No permissions to access a channel")]
    Channel,
    #[error("User {user} has no permissions to access the '{key}' key")]
    VerboseKey { user: String, key: String },
    #[error("User {user} has no permissions to access the '{channel}' channel")]
    VerboseChannel { user: String, channel: String },
}

/// One problem of an ACL file or of the `user` lines, in Redis's words (`ACLLoadFromFile`,
/// `ACLLoadConfiguredUsers`); ACL LOAD lists them all, then
/// [`AclFileError::NOTHING_CHANGED`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AclFileError {
    #[error("{file}:{line} should start with user keyword followed by the username. ")]
    NotAUser { file: String, line: usize },
    // Redis's text opens with a stray quote.
    #[error("'{file}:{line}: username '{name}' contains invalid characters. ")]
    BadName {
        file: String,
        line: usize,
        name: String,
    },
    #[error("WARNING: Duplicate user '{name}' found on line {line}. ")]
    Duplicate { name: String, line: usize },
    #[error("{file}:{line}: Unmatched parenthesis in selector definition.")]
    UnmatchedParen { file: String, line: usize },
    #[error("{file}:{line}: Error in applying operation '{op}': {reason}. ")]
    UnknownName {
        file: String,
        line: usize,
        op: String,
        reason: AclRuleError,
    },
    #[error("{file}:{line}: {reason}. ")]
    Rule {
        file: String,
        line: usize,
        reason: AclRuleError,
    },
    #[error("Error loading ACLs, opening file '{file}': {reason}")]
    Open { file: String, reason: String },
    /// A `user` line of the configuration (start-up).
    #[error("Error in user declaration '{op}': {reason}")]
    Declaration { op: String, reason: AclRuleError },
    /// A `user` line naming an unknown command or category (Redis finds these only when it
    /// creates the users, after modules could have added commands).
    #[error("Error loading ACL rule '{op}' for the user named '{user}': {reason}")]
    LoadingRule {
        op: String,
        user: String,
        reason: AclRuleError,
    },
    #[error("Spaces not allowed in ACL usernames")]
    SpacesInName,
    #[error("Configuring Redis with users defined in redis.conf and at the same setting an ACL file path is invalid. This setup is very likely to lead to configuration errors and security holes, please define either an ACL file or declare users directly in your redis.conf, but not both.")]
    BothSources,
}

impl AclFileError {
    /// What ACL LOAD's error ends with.
    pub const NOTHING_CHANGED: &'static str =
        "WARNING: ACL errors detected, no change to the previously active ACL rules was performed";
}
