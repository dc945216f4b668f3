//! Command documentation that Redis publishes through `COMMAND DOCS` and `COMMAND INFO`:
//! argument trees, command tips, key specifications, history and doc flags.
//!
//! The data is a transcription of Redis 7.4's `src/commands/*.json` (as compiled into its
//! `commands.def`), keyed by the command's full name (`xadd`, `xgroup|create`). It lives here,
//! keyed by name, rather than on each [`CommandSpec`](super::table::CommandSpec) because the
//! subcommand tables are spread over several modules; `tests` below check that every command in
//! the table has an entry and that every entry names a command, so the two cannot drift apart.
//!
//! Clients depend on this data: redis-cli builds its interactive hints from `arguments`, and
//! cluster-aware clients route by `key_specs` and the `request_policy`/`response_policy` tips.

/// The type of a command argument, as COMMAND DOCS spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgType {
    /// Any string.
    String,
    /// An integer.
    Integer,
    /// A floating-point number.
    Double,
    /// A key name (then `key_spec_index` says which key spec finds it).
    Key,
    /// A glob-style pattern.
    Pattern,
    /// A Unix timestamp.
    UnixTime,
    /// A literal token with no value of its own (e.g. `NOMKSTREAM`).
    PureToken,
    /// Exactly one of the nested arguments.
    OneOf,
    /// All the nested arguments, in order.
    Block,
}

impl ArgType {
    /// The name Redis replies with.
    pub fn as_str(self) -> &'static str {
        match self {
            ArgType::String => "string",
            ArgType::Integer => "integer",
            ArgType::Double => "double",
            ArgType::Key => "key",
            ArgType::Pattern => "pattern",
            ArgType::UnixTime => "unix-time",
            ArgType::PureToken => "pure-token",
            ArgType::OneOf => "oneof",
            ArgType::Block => "block",
        }
    }

    /// Containers carry nested `arguments` and no `display_text`.
    pub fn is_container(self) -> bool {
        matches!(self, ArgType::OneOf | ArgType::Block)
    }
}

/// Argument flag: the argument may be left out.
pub const OPTIONAL: u8 = 1;
/// Argument flag: the argument may repeat.
pub const MULTIPLE: u8 = 2;
/// Argument flag: the token is repeated along with the argument.
pub const MULTIPLE_TOKEN: u8 = 4;

/// One argument of a command (a node of the argument tree).
#[derive(Debug)]
pub struct Arg {
    /// Identifier of the argument (not shown to users).
    pub name: &'static str,
    /// Its type.
    pub kind: ArgType,
    /// What redis-cli shows for it; Redis falls back to `name`.
    pub display: Option<&'static str>,
    /// For keys: the index into the command's key specs.
    pub key_spec_index: Option<u32>,
    /// The literal token that introduces the argument.
    pub token: Option<&'static str>,
    /// A short description (rare).
    pub summary: Option<&'static str>,
    /// Redis version that added the argument.
    pub since: Option<&'static str>,
    /// Redis version that deprecated it.
    pub deprecated_since: Option<&'static str>,
    /// [`OPTIONAL`] | [`MULTIPLE`] | [`MULTIPLE_TOKEN`].
    pub flags: u8,
    /// Nested arguments of a `oneof` or `block`.
    pub args: &'static [Arg],
}

const fn arg(name: &'static str, kind: ArgType) -> Arg {
    Arg {
        name,
        kind,
        display: None,
        key_spec_index: None,
        token: None,
        summary: None,
        since: None,
        deprecated_since: None,
        flags: 0,
        args: &[],
    }
}

/// A string argument.
pub const fn string(name: &'static str) -> Arg {
    arg(name, ArgType::String)
}
/// An integer argument.
pub const fn integer(name: &'static str) -> Arg {
    arg(name, ArgType::Integer)
}
/// A floating-point argument.
pub const fn double(name: &'static str) -> Arg {
    arg(name, ArgType::Double)
}
/// A glob pattern argument.
pub const fn pattern(name: &'static str) -> Arg {
    arg(name, ArgType::Pattern)
}
/// A Unix-time argument.
pub const fn unix_time(name: &'static str) -> Arg {
    arg(name, ArgType::UnixTime)
}
/// A key argument found by key spec `spec`.
pub const fn key(name: &'static str, spec: u32) -> Arg {
    let mut a = arg(name, ArgType::Key);
    a.key_spec_index = Some(spec);
    a
}
/// A literal token.
pub const fn pure(name: &'static str, token: &'static str) -> Arg {
    let mut a = arg(name, ArgType::PureToken);
    a.token = Some(token);
    a
}
/// One of `args`.
pub const fn oneof(name: &'static str, args: &'static [Arg]) -> Arg {
    let mut a = arg(name, ArgType::OneOf);
    a.args = args;
    a
}
/// All of `args`, in order.
pub const fn block(name: &'static str, args: &'static [Arg]) -> Arg {
    let mut a = arg(name, ArgType::Block);
    a.args = args;
    a
}

impl Arg {
    /// Sets the token that introduces the argument.
    pub const fn token(mut self, token: &'static str) -> Self {
        self.token = Some(token);
        self
    }
    /// Sets the text redis-cli shows instead of the name.
    pub const fn display(mut self, text: &'static str) -> Self {
        self.display = Some(text);
        self
    }
    /// Sets the version that added the argument.
    pub const fn since(mut self, version: &'static str) -> Self {
        self.since = Some(version);
        self
    }
    /// Sets the version that deprecated the argument.
    pub const fn deprecated_since(mut self, version: &'static str) -> Self {
        self.deprecated_since = Some(version);
        self
    }
    /// Sets the summary.
    pub const fn summary(mut self, text: &'static str) -> Self {
        self.summary = Some(text);
        self
    }
    /// Marks the argument optional.
    pub const fn optional(mut self) -> Self {
        self.flags |= OPTIONAL;
        self
    }
    /// Marks the argument repeatable.
    pub const fn multiple(mut self) -> Self {
        self.flags |= MULTIPLE;
        self
    }
    /// Marks the token as repeated with each value.
    pub const fn multiple_token(mut self) -> Self {
        self.flags |= MULTIPLE_TOKEN;
        self
    }

    /// The flag names set on this argument, in Redis's order.
    pub fn flag_names(&self) -> Vec<&'static str> {
        [
            (OPTIONAL, "optional"),
            (MULTIPLE, "multiple"),
            (MULTIPLE_TOKEN, "multiple_token"),
        ]
        .iter()
        .filter(|(bit, _)| self.flags & bit != 0)
        .map(|&(_, name)| name)
        .collect()
    }
}

/// Where a key spec starts looking for keys.
#[derive(Debug)]
pub enum BeginSearch {
    /// At a fixed argument index.
    Index(i64),
    /// After a keyword, searching from `startfrom` (negative: from the end).
    Keyword(&'static str, i64),
}

/// How a key spec finds the keys once it has begun.
#[derive(Debug)]
pub enum FindKeys {
    /// A range of arguments.
    Range {
        /// Last key relative to the start (negative: from the end).
        lastkey: i64,
        /// Step between keys.
        keystep: i64,
        /// With `lastkey == -1`: only 1/limit of the remaining arguments are keys.
        limit: i64,
    },
}

/// One key specification, as COMMAND INFO reports it.
#[derive(Debug)]
pub struct KeySpec {
    /// Free-text explanation of unusual flags.
    pub notes: Option<&'static str>,
    /// Access flags: RO/RW/OW/RM and access/update/insert/delete…
    pub flags: &'static [&'static str],
    /// Where the search begins.
    pub begin_search: BeginSearch,
    /// How keys are found from there.
    pub find_keys: FindKeys,
}

/// Everything COMMAND DOCS/INFO say about a command beyond what the table itself holds.
#[derive(Debug)]
pub struct CommandDoc {
    /// Command tips (`nondeterministic_output`, `request_policy:…`).
    pub tips: &'static [&'static str],
    /// `(version, change)` pairs.
    pub history: &'static [(&'static str, &'static str)],
    /// The argument tree; empty when the command takes none (Redis then omits `arguments`).
    pub args: &'static [Arg],
    /// Key specifications.
    pub key_specs: &'static [KeySpec],
    /// Doc flags (`deprecated`, `syscmd`).
    pub doc_flags: &'static [&'static str],
    /// Version that deprecated the command.
    pub deprecated_since: Option<&'static str>,
    /// What replaces a deprecated command.
    pub replaced_by: Option<&'static str>,
}

impl CommandDoc {
    /// No tips, history, arguments or key specs.
    pub const fn new() -> Self {
        CommandDoc {
            tips: &[],
            history: &[],
            args: &[],
            key_specs: &[],
            doc_flags: &[],
            deprecated_since: None,
            replaced_by: None,
        }
    }
    /// Sets the tips.
    pub const fn tips(mut self, tips: &'static [&'static str]) -> Self {
        self.tips = tips;
        self
    }
    /// Sets the history.
    pub const fn history(mut self, history: &'static [(&'static str, &'static str)]) -> Self {
        self.history = history;
        self
    }
    /// Sets the arguments.
    pub const fn args(mut self, args: &'static [Arg]) -> Self {
        self.args = args;
        self
    }
    /// Sets the key specs.
    pub const fn key_specs(mut self, specs: &'static [KeySpec]) -> Self {
        self.key_specs = specs;
        self
    }
    /// Marks an internal command (`syscmd`: DEBUG), which redis-cli leaves out of its hints.
    pub const fn syscmd(mut self) -> Self {
        self.doc_flags = &["syscmd"];
        self
    }
    /// Marks the command deprecated.
    pub const fn deprecated(mut self, since: &'static str, replaced_by: &'static str) -> Self {
        self.doc_flags = &["deprecated"];
        self.deprecated_since = Some(since);
        self.replaced_by = Some(replaced_by);
        self
    }
}

impl Default for CommandDoc {
    fn default() -> Self {
        Self::new()
    }
}

/// The docs of a command or subcommand by full lower-case name (`xgroup|create`).
pub fn lookup(full: &str) -> Option<&'static CommandDoc> {
    DOCS.iter().find(|(n, _)| *n == full).map(|(_, d)| d)
}

/// Every documented name, for consistency checks.
pub fn names() -> impl Iterator<Item = &'static str> {
    DOCS.iter().map(|(n, _)| *n)
}

/// Redis 7.4's docs for every command in the table. Names changed in 7.2 (e.g. XADD's
/// `id_or_auto` became `id-selector`), so this follows 7.2+/7.4, not 7.0.
static DOCS: &[(&str, CommandDoc)] = &[
    // ---- cluster (Redis 8's src/commands/cluster-*.json; RILL.CLUSTER is Rill's) ----
    ("cluster|info", CommandDoc::new().tips(&["nondeterministic_output"])),
    ("cluster|myid", CommandDoc::new()),
    ("cluster|myshardid", CommandDoc::new().tips(&["nondeterministic_output"])),
    ("cluster|nodes", CommandDoc::new().tips(&["nondeterministic_output"])),
    ("cluster|slots", CommandDoc::new().tips(&["nondeterministic_output"]).history(&[("4.0.0", "Added node IDs."), ("7.0.0", "Added additional networking metadata field.")]).deprecated("7.0.0", "`CLUSTER SHARDS`")),
    ("cluster|shards", CommandDoc::new().tips(&["nondeterministic_output"])),
    ("cluster|keyslot", CommandDoc::new().args(&[string("key")])),
    ("cluster|countkeysinslot", CommandDoc::new().args(&[integer("slot")])),
    ("cluster|getkeysinslot", CommandDoc::new().tips(&["nondeterministic_output"]).args(&[integer("slot"), integer("count")])),
    ("cluster|replicas", CommandDoc::new().tips(&["nondeterministic_output"]).args(&[string("node-id")])),
    ("cluster|slaves", CommandDoc::new().tips(&["nondeterministic_output"]).args(&[string("node-id")]).deprecated("5.0.0", "`CLUSTER REPLICAS`")),
    ("cluster|saveconfig", CommandDoc::new()),
    ("cluster|help", CommandDoc::new()),
    ("cluster|meet", CommandDoc::new().history(&[("4.0.0", "Added the optional `cluster_bus_port` argument.")]).args(&[string("ip"), integer("port"), integer("cluster-bus-port").optional()])),
    ("cluster|addslots", CommandDoc::new().args(&[integer("slot").multiple()])),
    ("cluster|addslotsrange", CommandDoc::new().args(&[block("range", &[integer("start-slot"), integer("end-slot")]).multiple()])),
    ("cluster|delslots", CommandDoc::new().args(&[integer("slot").multiple()])),
    ("cluster|delslotsrange", CommandDoc::new().args(&[block("range", &[integer("start-slot"), integer("end-slot")]).multiple()])),
    ("cluster|flushslots", CommandDoc::new()),
    ("cluster|setslot", CommandDoc::new().args(&[integer("slot"), oneof("subcommand", &[string("importing").token("IMPORTING"), string("migrating").token("MIGRATING"), string("node").token("NODE"), pure("stable", "STABLE")])])),
    ("cluster|forget", CommandDoc::new().args(&[string("node-id")])),
    ("cluster|replicate", CommandDoc::new().args(&[string("node-id")])),
    ("cluster|failover", CommandDoc::new().args(&[oneof("options", &[pure("force", "FORCE"), pure("takeover", "TAKEOVER")]).optional()])),
    ("cluster|reset", CommandDoc::new().args(&[oneof("reset-type", &[pure("hard", "HARD"), pure("soft", "SOFT")]).optional()])),
    ("cluster|bumpepoch", CommandDoc::new().tips(&["nondeterministic_output"])),
    ("cluster|set-config-epoch", CommandDoc::new().args(&[integer("config-epoch")])),

    ("cluster", CommandDoc::new()),
    ("readonly", CommandDoc::new()),
    ("readwrite", CommandDoc::new()),
    ("asking", CommandDoc::new()),
    ("rill.cluster", CommandDoc::new()),
    ("rill.cluster|nodeinfo", CommandDoc::new().tips(&["nondeterministic_output"])),
    ("rill.cluster|topology", CommandDoc::new().tips(&["nondeterministic_output"])),
    ("rill.cluster|settopology", CommandDoc::new().args(&[string("map")])),
    ("rill.cluster|help", CommandDoc::new()),
    ("rill.cluster|setslot", CommandDoc::new().args(&[integer("slot"), oneof("subcommand", &[string("importing").token("IMPORTING"), string("migrating").token("MIGRATING"), pure("stable", "STABLE")])])),
    ("rill.cluster|slotstates", CommandDoc::new().tips(&["nondeterministic_output"])),
    ("rill.cluster|member", CommandDoc::new().args(&[oneof("change", &[block("add", &[string("node-id"), string("ip"), integer("port"), integer("cport")]).token("ADD"), block("promote", &[string("node-id"), string("ip"), integer("port"), integer("cport")]).token("PROMOTE"), string("node-id").token("REMOVE")])])),
    ("rill.cluster|members", CommandDoc::new().tips(&["nondeterministic_output"])),
    ("rill.policy", CommandDoc::new()),
    ("rill.policy|set", CommandDoc::new().key_specs(&[KeySpec { notes: None, flags: &["RW", "update"], begin_search: BeginSearch::Index(2), find_keys: FindKeys::Range { lastkey: 0, keystep: 1, limit: 0 } }]).args(&[key("key", 0), integer("max-age").token("MAXAGE").optional(), integer("max-bytes").token("MAXBYTES").optional(), integer("max-len").token("MAXLEN").optional(), oneof("condition", &[pure("keepref", "KEEPREF"), pure("delref", "DELREF"), pure("acked", "ACKED")]).optional()])),
    ("rill.policy|get", CommandDoc::new().key_specs(&[KeySpec { notes: None, flags: &["RO", "access"], begin_search: BeginSearch::Index(2), find_keys: FindKeys::Range { lastkey: 0, keystep: 1, limit: 0 } }]).args(&[key("key", 0)])),
    ("rill.policy|del", CommandDoc::new().key_specs(&[KeySpec { notes: None, flags: &["RW", "update"], begin_search: BeginSearch::Index(2), find_keys: FindKeys::Range { lastkey: 0, keystep: 1, limit: 0 } }]).args(&[key("key", 0)])),
    ("rill.policy|help", CommandDoc::new()),
    ("rill.policy|group", CommandDoc::new().key_specs(&[KeySpec { notes: None, flags: &["RW", "update"], begin_search: BeginSearch::Index(2), find_keys: FindKeys::Range { lastkey: 0, keystep: 1, limit: 0 } }]).args(&[key("key", 0), string("group"), integer("max-deliver").token("MAXDELIVER").optional(), string("dead-letter").token("DEADLETTER").optional(), integer("ack-wait").token("ACKWAIT").optional(), string("backoff").token("BACKOFF").optional()])),
    ("rill.policy|delgroup", CommandDoc::new().key_specs(&[KeySpec { notes: None, flags: &["RW", "update"], begin_search: BeginSearch::Index(2), find_keys: FindKeys::Range { lastkey: 0, keystep: 1, limit: 0 } }]).args(&[key("key", 0), string("group")])),
    ("rill.migrate", CommandDoc::new().args(&[string("host"), integer("port"), integer("timeout"), string("password").token("AUTH").optional(), block("username-password", &[string("username"), string("password")]).token("AUTH2").optional(), string("key").token("KEYS").multiple()])),
    ("rill.restore", CommandDoc::new().key_specs(&[KeySpec { notes: None, flags: &["OW", "update"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { lastkey: 0, keystep: 1, limit: 0 } }]).args(&[key("key", 0), string("payload"), pure("replace", "REPLACE").optional(), pure("nosync", "NOSYNC").optional()])),
    // ---- ACL (Redis 8.6.3's src/commands/acl-*.json) ----
    ("acl", CommandDoc::new()),
    ("acl|cat", CommandDoc::new().args(&[string("category").optional()])),
    ("acl|deluser", CommandDoc::new().tips(&["request_policy:all_nodes", "response_policy:all_succeeded"]).args(&[string("username").multiple()])),
    ("acl|dryrun", CommandDoc::new().args(&[string("username"), string("command"), string("arg").optional().multiple()])),
    ("acl|genpass", CommandDoc::new().args(&[integer("bits").optional()])),
    ("acl|getuser", CommandDoc::new().history(&[("6.2.0", "Added Pub/Sub channel patterns."), ("7.0.0", "Added selectors and changed the format of key and channel patterns from a list to their rule representation.")]).args(&[string("username")])),
    ("acl|help", CommandDoc::new()),
    ("acl|list", CommandDoc::new()),
    ("acl|load", CommandDoc::new()),
    ("acl|log", CommandDoc::new().history(&[("7.2.0", "Added entry ID, timestamp created, and timestamp last updated.")]).args(&[oneof("operation", &[integer("count"), pure("reset", "RESET")]).optional()])),
    ("acl|save", CommandDoc::new().tips(&["request_policy:all_nodes", "response_policy:all_succeeded"])),
    ("acl|setuser", CommandDoc::new().tips(&["request_policy:all_nodes", "response_policy:all_succeeded"]).history(&[("6.2.0", "Added Pub/Sub channel patterns."), ("7.0.0", "Added selectors and key based permissions.")]).args(&[string("username"), string("rule").optional().multiple()])),
    ("acl|users", CommandDoc::new()),
    ("acl|whoami", CommandDoc::new()),
    // ---- pub/sub (Redis 8.6.3's COMMAND DOCS; shard channels are `not_key` key specs) ----
    ("publish", CommandDoc::new().args(&[string("channel"), string("message")])),
    ("subscribe", CommandDoc::new().args(&[string("channel").multiple()])),
    ("unsubscribe", CommandDoc::new().args(&[string("channel").optional().multiple()])),
    ("psubscribe", CommandDoc::new().args(&[pattern("pattern").multiple()])),
    ("punsubscribe", CommandDoc::new().args(&[pattern("pattern").optional().multiple()])),
    ("spublish", CommandDoc::new().key_specs(&[KeySpec { notes: None, flags: &["not_key"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { lastkey: 0, keystep: 1, limit: 0 } }]).args(&[string("shardchannel"), string("message")])),
    ("ssubscribe", CommandDoc::new().key_specs(&[KeySpec { notes: None, flags: &["not_key"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { lastkey: -1, keystep: 1, limit: 0 } }]).args(&[string("shardchannel").multiple()])),
    ("sunsubscribe", CommandDoc::new().key_specs(&[KeySpec { notes: None, flags: &["not_key"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { lastkey: -1, keystep: 1, limit: 0 } }]).args(&[string("shardchannel").optional().multiple()])),
    ("pubsub", CommandDoc::new()),
    ("pubsub|channels", CommandDoc::new().args(&[pattern("pattern").optional()])),
    ("pubsub|numsub", CommandDoc::new().args(&[string("channel").optional().multiple()])),
    ("pubsub|numpat", CommandDoc::new()),
    ("pubsub|shardchannels", CommandDoc::new().args(&[pattern("pattern").optional()])),
    ("pubsub|shardnumsub", CommandDoc::new().args(&[string("shardchannel").optional().multiple()])),
    ("pubsub|help", CommandDoc::new()),
    (
        "auth",
        CommandDoc::new()
            .history(&[("6.0.0", "Added ACL style (username and password).")])
            .args(&[
                string("username").since("6.0.0").optional(),
                string("password"),
            ]),
    ),
    (
        "bgrewriteaof",
        CommandDoc::new(),
    ),
    (
        "client",
        CommandDoc::new(),
    ),
    (
        "client|getname",
        CommandDoc::new(),
    ),
    (
        "client|help",
        CommandDoc::new(),
    ),
    (
        "client|id",
        CommandDoc::new(),
    ),
    (
        "client|info",
        CommandDoc::new()
            .tips(&["nondeterministic_output"]),
    ),
    (
        "client|kill",
        CommandDoc::new()
            .history(&[("2.8.12", "Added new filter format."), ("2.8.12", "`ID` option."), ("3.2.0", "Added `master` type in for `TYPE` option."), ("5.0.0", "Replaced `slave` `TYPE` with `replica`. `slave` still supported for backward compatibility."), ("6.2.0", "`LADDR` option."), ("7.4.0", "`MAXAGE` option.")])
            .args(&[
                oneof("filter", &[
                    string("old-format").display("ip:port").deprecated_since("2.8.12"),
                    oneof("new-format", &[
                        integer("client-id").token("ID").since("2.8.12").optional(),
                        oneof("client-type", &[
                            pure("normal", "NORMAL"),
                            pure("master", "MASTER").since("3.2.0"),
                            pure("slave", "SLAVE"),
                            pure("replica", "REPLICA").since("5.0.0"),
                            pure("pubsub", "PUBSUB"),
                        ]).token("TYPE").since("2.8.12").optional(),
                        string("username").token("USER").optional(),
                        string("addr").display("ip:port").token("ADDR").optional(),
                        string("laddr").display("ip:port").token("LADDR").since("6.2.0").optional(),
                        oneof("skipme", &[
                            pure("yes", "YES"),
                            pure("no", "NO"),
                        ]).token("SKIPME").optional(),
                        integer("maxage").token("MAXAGE").since("7.4.0").optional(),
                    ]).multiple(),
                ]),
            ]),
    ),
    (
        "client|list",
        CommandDoc::new()
            .history(&[("2.8.12", "Added unique client `id` field."), ("5.0.0", "Added optional `TYPE` filter."), ("6.0.0", "Added `user` field."), ("6.2.0", "Added `argv-mem`, `tot-mem`, `laddr` and `redir` fields and the optional `ID` filter."), ("7.0.0", "Added `resp`, `multi-mem`, `rbs` and `rbp` fields."), ("7.0.3", "Added `ssub` field.")])
            .tips(&["nondeterministic_output"])
            .args(&[
                oneof("client-type", &[
                    pure("normal", "NORMAL"),
                    pure("master", "MASTER"),
                    pure("replica", "REPLICA"),
                    pure("pubsub", "PUBSUB"),
                ]).token("TYPE").since("5.0.0").optional(),
                integer("client-id").token("ID").since("6.2.0").optional().multiple(),
            ]),
    ),
    (
        "client|no-evict",
        CommandDoc::new()
            .args(&[
                oneof("enabled", &[
                    pure("on", "ON"),
                    pure("off", "OFF"),
                ]),
            ]),
    ),
    (
        "client|setinfo",
        CommandDoc::new()
            .tips(&["request_policy:all_nodes", "response_policy:all_succeeded"])
            .args(&[
                oneof("attr", &[
                    string("libname").token("LIB-NAME"),
                    string("libver").token("LIB-VER"),
                ]),
            ]),
    ),
    (
        "client|setname",
        CommandDoc::new()
            .tips(&["request_policy:all_nodes", "response_policy:all_succeeded"])
            .args(&[
                string("connection-name"),
            ]),
    ),
    (
        "client|unblock",
        CommandDoc::new()
            .args(&[
                integer("client-id"),
                oneof("unblock-type", &[
                    pure("timeout", "TIMEOUT"),
                    pure("error", "ERROR"),
                ]).optional(),
            ]),
    ),
    (
        "command",
        CommandDoc::new()
            .tips(&["nondeterministic_output_order"]),
    ),
    (
        "command|count",
        CommandDoc::new(),
    ),
    (
        "command|docs",
        CommandDoc::new()
            .tips(&["nondeterministic_output_order"])
            .args(&[
                string("command-name").optional().multiple(),
            ]),
    ),
    (
        "command|getkeys",
        CommandDoc::new().args(&[string("command"), string("arg").optional().multiple()]),
    ),
    (
        "command|getkeysandflags",
        CommandDoc::new().args(&[string("command"), string("arg").optional().multiple()]),
    ),
    (
        "command|help",
        CommandDoc::new(),
    ),
    (
        "command|info",
        CommandDoc::new()
            .history(&[("7.0.0", "Allowed to be called with no argument to get info on all commands.")])
            .tips(&["nondeterministic_output_order"])
            .args(&[
                string("command-name").optional().multiple(),
            ]),
    ),
    (
        "command|list",
        CommandDoc::new()
            .tips(&["nondeterministic_output_order"])
            .args(&[
                oneof("filterby", &[
                    string("module-name").token("MODULE"),
                    string("category").token("ACLCAT"),
                    pattern("pattern").token("PATTERN"),
                ]).token("FILTERBY").optional(),
            ]),
    ),
    (
        "config",
        CommandDoc::new(),
    ),
    (
        "config|get",
        CommandDoc::new()
            .history(&[("7.0.0", "Added the ability to pass multiple pattern parameters in one call")])
            .args(&[
                string("parameter").multiple(),
            ]),
    ),
    (
        "config|help",
        CommandDoc::new(),
    ),
    (
        "config|resetstat",
        CommandDoc::new()
            .tips(&["request_policy:all_nodes", "response_policy:all_succeeded"]),
    ),
    (
        "config|rewrite",
        CommandDoc::new()
            .tips(&["request_policy:all_nodes", "response_policy:all_succeeded"]),
    ),
    (
        "config|set",
        CommandDoc::new()
            .history(&[("7.0.0", "Added the ability to set multiple parameters in one call.")])
            .tips(&["request_policy:all_nodes", "response_policy:all_succeeded"])
            .args(&[
                block("data", &[
                    string("parameter"),
                    string("value"),
                ]).multiple(),
            ]),
    ),
    (
        "dbsize",
        CommandDoc::new()
            .tips(&["request_policy:all_shards", "response_policy:agg_sum"]),
    ),
    (
        "debug",
        CommandDoc::new().syscmd(),
    ),
    (
        "del",
        CommandDoc::new()
            .tips(&["request_policy:multi_shard", "response_policy:agg_sum"])
            .key_specs(&[KeySpec { notes: None, flags: &["RM", "delete"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { lastkey: -1, keystep: 1, limit: 0 } }])
            .args(&[
                key("key", 0).multiple(),
            ]),
    ),
    (
        "discard",
        CommandDoc::new(),
    ),
    (
        "echo",
        CommandDoc::new()
            .args(&[
                string("message"),
            ]),
    ),
    (
        "exec",
        CommandDoc::new(),
    ),
    (
        "exists",
        CommandDoc::new()
            .history(&[("3.0.3", "Accepts multiple `key` arguments.")])
            .tips(&["request_policy:multi_shard", "response_policy:agg_sum"])
            .key_specs(&[KeySpec { notes: None, flags: &["RO"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { lastkey: -1, keystep: 1, limit: 0 } }])
            .args(&[
                key("key", 0).multiple(),
            ]),
    ),
    (
        "expire",
        CommandDoc::new()
            .history(&[("7.0.0", "Added options: `NX`, `XX`, `GT` and `LT`.")])
            .key_specs(&[KeySpec { notes: None, flags: &["RW", "update"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { lastkey: 0, keystep: 1, limit: 0 } }])
            .args(&[
                key("key", 0),
                integer("seconds"),
                oneof("condition", &[
                    pure("nx", "NX"),
                    pure("xx", "XX"),
                    pure("gt", "GT"),
                    pure("lt", "LT"),
                ]).since("7.0.0").optional(),
            ]),
    ),
    (
        "expireat",
        CommandDoc::new()
            .history(&[("7.0.0", "Added options: `NX`, `XX`, `GT` and `LT`.")])
            .key_specs(&[KeySpec { notes: None, flags: &["RW", "update"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { lastkey: 0, keystep: 1, limit: 0 } }])
            .args(&[
                key("key", 0),
                unix_time("unix-time-seconds"),
                oneof("condition", &[
                    pure("nx", "NX"),
                    pure("xx", "XX"),
                    pure("gt", "GT"),
                    pure("lt", "LT"),
                ]).since("7.0.0").optional(),
            ]),
    ),
    (
        "flushall",
        CommandDoc::new()
            .history(&[("4.0.0", "Added the `ASYNC` flushing mode modifier."), ("6.2.0", "Added the `SYNC` flushing mode modifier.")])
            .tips(&["request_policy:all_shards", "response_policy:all_succeeded"])
            .args(&[
                oneof("flush-type", &[
                    pure("async", "ASYNC").since("4.0.0"),
                    pure("sync", "SYNC").since("6.2.0"),
                ]).optional(),
            ]),
    ),
    (
        "flushdb",
        CommandDoc::new()
            .history(&[("4.0.0", "Added the `ASYNC` flushing mode modifier."), ("6.2.0", "Added the `SYNC` flushing mode modifier.")])
            .tips(&["request_policy:all_shards", "response_policy:all_succeeded"])
            .args(&[
                oneof("flush-type", &[
                    pure("async", "ASYNC").since("4.0.0"),
                    pure("sync", "SYNC").since("6.2.0"),
                ]).optional(),
            ]),
    ),
    (
        "function",
        CommandDoc::new(),
    ),
    (
        "function|flush",
        CommandDoc::new()
            .tips(&["request_policy:all_shards", "response_policy:all_succeeded"])
            .args(&[
                oneof("flush-type", &[
                    pure("async", "ASYNC"),
                    pure("sync", "SYNC"),
                ]).optional(),
            ]),
    ),
    (
        "function|list",
        CommandDoc::new()
            .tips(&["nondeterministic_output_order"])
            .args(&[
                string("library-name-pattern").token("LIBRARYNAME").optional(),
                pure("withcode", "WITHCODE").optional(),
            ]),
    ),
    (
        "get",
        CommandDoc::new()
            .key_specs(&[KeySpec { notes: None, flags: &["RO", "access"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { lastkey: 0, keystep: 1, limit: 0 } }])
            .args(&[
                key("key", 0),
            ]),
    ),
    (
        "hello",
        CommandDoc::new()
            .history(&[("6.2.0", "`protover` made optional; when called without arguments the command reports the current connection's context.")])
            .args(&[
                block("arguments", &[
                    integer("protover"),
                    block("auth", &[
                        string("username"),
                        string("password"),
                    ]).token("AUTH").optional(),
                    string("clientname").token("SETNAME").optional(),
                ]).optional(),
            ]),
    ),
    (
        "info",
        CommandDoc::new()
            .history(&[("7.0.0", "Added support for taking multiple section arguments.")])
            .tips(&["nondeterministic_output", "request_policy:all_shards", "response_policy:special"])
            .args(&[
                string("section").optional().multiple(),
            ]),
    ),
    (
        "keys",
        CommandDoc::new()
            .tips(&["request_policy:all_shards", "nondeterministic_output_order"])
            .args(&[
                pattern("pattern"),
            ]),
    ),
    (
        "multi",
        CommandDoc::new(),
    ),
    (
        "persist",
        CommandDoc::new()
            .key_specs(&[KeySpec { notes: None, flags: &["RW", "update"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { lastkey: 0, keystep: 1, limit: 0 } }])
            .args(&[
                key("key", 0),
            ]),
    ),
    (
        "pexpire",
        CommandDoc::new()
            .history(&[("7.0.0", "Added options: `NX`, `XX`, `GT` and `LT`.")])
            .key_specs(&[KeySpec { notes: None, flags: &["RW", "update"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { lastkey: 0, keystep: 1, limit: 0 } }])
            .args(&[
                key("key", 0),
                integer("milliseconds"),
                oneof("condition", &[
                    pure("nx", "NX"),
                    pure("xx", "XX"),
                    pure("gt", "GT"),
                    pure("lt", "LT"),
                ]).since("7.0.0").optional(),
            ]),
    ),
    (
        "pexpireat",
        CommandDoc::new()
            .history(&[("7.0.0", "Added options: `NX`, `XX`, `GT` and `LT`.")])
            .key_specs(&[KeySpec { notes: None, flags: &["RW", "update"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { lastkey: 0, keystep: 1, limit: 0 } }])
            .args(&[
                key("key", 0),
                unix_time("unix-time-milliseconds"),
                oneof("condition", &[
                    pure("nx", "NX"),
                    pure("xx", "XX"),
                    pure("gt", "GT"),
                    pure("lt", "LT"),
                ]).since("7.0.0").optional(),
            ]),
    ),
    (
        "ping",
        CommandDoc::new()
            .tips(&["request_policy:all_shards", "response_policy:all_succeeded"])
            .args(&[
                string("message").optional(),
            ]),
    ),
    (
        "pttl",
        CommandDoc::new()
            .history(&[("2.8.0", "Added the -2 reply.")])
            .tips(&["nondeterministic_output"])
            .key_specs(&[KeySpec { notes: None, flags: &["RO", "access"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { lastkey: 0, keystep: 1, limit: 0 } }])
            .args(&[
                key("key", 0),
            ]),
    ),
    (
        "quit",
        CommandDoc::new().deprecated("7.2.0", "just closing the connection"),
    ),
    (
        "randomkey",
        CommandDoc::new()
            .tips(&["request_policy:all_shards", "nondeterministic_output"]),
    ),
    (
        "rename",
        CommandDoc::new()
            .key_specs(&[KeySpec { notes: None, flags: &["RW", "access", "delete"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { lastkey: 0, keystep: 1, limit: 0 } }, KeySpec { notes: None, flags: &["OW", "update"], begin_search: BeginSearch::Index(2), find_keys: FindKeys::Range { lastkey: 0, keystep: 1, limit: 0 } }])
            .args(&[
                key("key", 0),
                key("newkey", 1),
            ]),
    ),
    (
        "renamenx",
        CommandDoc::new()
            .history(&[("3.2.0", "The command no longer returns an error when source and destination names are the same.")])
            .key_specs(&[KeySpec { notes: None, flags: &["RW", "access", "delete"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { lastkey: 0, keystep: 1, limit: 0 } }, KeySpec { notes: None, flags: &["OW", "insert"], begin_search: BeginSearch::Index(2), find_keys: FindKeys::Range { lastkey: 0, keystep: 1, limit: 0 } }])
            .args(&[
                key("key", 0),
                key("newkey", 1),
            ]),
    ),
    (
        "reset",
        CommandDoc::new(),
    ),
    (
        "scan",
        CommandDoc::new()
            .history(&[("6.0.0", "Added the `TYPE` subcommand.")])
            .tips(&["nondeterministic_output", "request_policy:special"])
            .args(&[
                integer("cursor"),
                pattern("pattern").token("MATCH").optional(),
                integer("count").token("COUNT").optional(),
                string("type").token("TYPE").since("6.0.0").optional(),
            ]),
    ),
    (
        "script",
        CommandDoc::new(),
    ),
    (
        "script|exists",
        CommandDoc::new()
            .tips(&["request_policy:all_shards", "response_policy:agg_logical_and"])
            .args(&[
                string("sha1").multiple(),
            ]),
    ),
    (
        "script|flush",
        CommandDoc::new()
            .history(&[("6.2.0", "Added the `ASYNC` and `SYNC` flushing mode modifiers.")])
            .tips(&["request_policy:all_nodes", "response_policy:all_succeeded"])
            .args(&[
                oneof("flush-type", &[
                    pure("async", "ASYNC"),
                    pure("sync", "SYNC"),
                ]).since("6.2.0").optional(),
            ]),
    ),
    (
        "script|help",
        CommandDoc::new(),
    ),
    (
        "script|kill",
        CommandDoc::new()
            .tips(&["request_policy:all_shards", "response_policy:one_succeeded"]),
    ),
    (
        "select",
        CommandDoc::new()
            .args(&[
                integer("index"),
            ]),
    ),
    (
        "set",
        CommandDoc::new()
            .history(&[("2.6.12", "Added the `EX`, `PX`, `NX` and `XX` options."), ("6.0.0", "Added the `KEEPTTL` option."), ("6.2.0", "Added the `GET`, `EXAT` and `PXAT` option."), ("7.0.0", "Allowed the `NX` and `GET` options to be used together.")])
            .key_specs(&[KeySpec { notes: Some("RW and ACCESS due to the optional `GET` argument"), flags: &["RW", "access", "update", "variable_flags"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { lastkey: 0, keystep: 1, limit: 0 } }])
            .args(&[
                key("key", 0),
                string("value"),
                oneof("condition", &[
                    pure("nx", "NX"),
                    pure("xx", "XX"),
                ]).since("2.6.12").optional(),
                pure("get", "GET").since("6.2.0").optional(),
                oneof("expiration", &[
                    integer("seconds").token("EX").since("2.6.12"),
                    integer("milliseconds").token("PX").since("2.6.12"),
                    unix_time("unix-time-seconds").token("EXAT").since("6.2.0"),
                    unix_time("unix-time-milliseconds").token("PXAT").since("6.2.0"),
                    pure("keepttl", "KEEPTTL").since("6.0.0"),
                ]).optional(),
            ]),
    ),
    (
        "shutdown",
        CommandDoc::new()
            .history(&[("7.0.0", "Added the `NOW`, `FORCE` and `ABORT` modifiers.")])
            .args(&[
                oneof("save-selector", &[
                    pure("nosave", "NOSAVE"),
                    pure("save", "SAVE"),
                ]).optional(),
                pure("now", "NOW").since("7.0.0").optional(),
                pure("force", "FORCE").since("7.0.0").optional(),
                pure("abort", "ABORT").since("7.0.0").optional(),
            ]),
    ),
    (
        "time",
        CommandDoc::new()
            .tips(&["nondeterministic_output"]),
    ),
    (
        "ttl",
        CommandDoc::new()
            .history(&[("2.8.0", "Added the -2 reply.")])
            .tips(&["nondeterministic_output"])
            .key_specs(&[KeySpec { notes: None, flags: &["RO", "access"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { lastkey: 0, keystep: 1, limit: 0 } }])
            .args(&[
                key("key", 0),
            ]),
    ),
    (
        "type",
        CommandDoc::new()
            .key_specs(&[KeySpec { notes: None, flags: &["RO"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { lastkey: 0, keystep: 1, limit: 0 } }])
            .args(&[
                key("key", 0),
            ]),
    ),
    (
        "unlink",
        CommandDoc::new()
            .tips(&["request_policy:multi_shard", "response_policy:agg_sum"])
            .key_specs(&[KeySpec { notes: None, flags: &["RM", "delete"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { lastkey: -1, keystep: 1, limit: 0 } }])
            .args(&[
                key("key", 0).multiple(),
            ]),
    ),
    (
        "unwatch",
        CommandDoc::new(),
    ),
    (
        "watch",
        CommandDoc::new()
            .key_specs(&[KeySpec { notes: None, flags: &["RO"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { lastkey: -1, keystep: 1, limit: 0 } }])
            .args(&[
                key("key", 0).multiple(),
            ]),
    ),
    (
        "xack",
        CommandDoc::new()
            .key_specs(&[KeySpec { notes: None, flags: &["RW", "update"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { lastkey: 0, keystep: 1, limit: 0 } }])
            .args(&[
                key("key", 0),
                string("group"),
                string("id").multiple(),
            ]),
    ),
    (
        "xadd",
        CommandDoc::new()
            .history(&[("6.2.0", "Added the `NOMKSTREAM` option, `MINID` trimming strategy and the `LIMIT` option."), ("7.0.0", "Added support for the `<ms>-*` explicit ID form."), ("8.2.0", "Added the `KEEPREF`, `DELREF` and `ACKED` options.")])
            .tips(&["nondeterministic_output"])
            .key_specs(&[KeySpec { notes: Some("UPDATE instead of INSERT because of the optional trimming feature"), flags: &["RW", "update"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { lastkey: 0, keystep: 1, limit: 0 } }])
            .args(&[
                key("key", 0),
                pure("nomkstream", "NOMKSTREAM").since("6.2.0").optional(),
                oneof("condition", REF_POLICY).optional(),
                oneof("idmp", &[
                    block("idmpauto-with-pid", &[
                        pure("idmpauto-token", "IDMPAUTO"),
                        string("pid"),
                    ]),
                    block("idmp-with-pid-iid", &[
                        pure("idmp-token", "IDMP"),
                        string("pid"),
                        string("iid"),
                    ]),
                ]).optional(),
                block("trim", &[
                    oneof("strategy", &[
                        pure("maxlen", "MAXLEN"),
                        pure("minid", "MINID").since("6.2.0"),
                    ]),
                    oneof("operator", &[
                        pure("equal", "="),
                        pure("approximately", "~"),
                    ]).optional(),
                    string("threshold"),
                    integer("count").token("LIMIT").since("6.2.0").optional(),
                ]).optional(),
                oneof("id-selector", &[
                    pure("auto-id", "*"),
                    string("id"),
                ]),
                block("data", &[
                    string("field"),
                    string("value"),
                ]).multiple(),
            ]),
    ),
    (
        "xautoclaim",
        CommandDoc::new()
            .history(&[("7.0.0", "Added an element to the reply array, containing deleted entries the command cleared from the PEL")])
            .tips(&["nondeterministic_output"])
            .key_specs(&[KeySpec { notes: None, flags: &["RW", "delete"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { lastkey: 0, keystep: 1, limit: 0 } }])
            .args(&[
                key("key", 0),
                string("group"),
                string("consumer"),
                string("min-idle-time"),
                string("start"),
                integer("count").token("COUNT").optional(),
                pure("justid", "JUSTID").optional(),
            ]),
    ),
    (
        "xclaim",
        CommandDoc::new()
            .tips(&["nondeterministic_output"])
            .key_specs(&[KeySpec { notes: None, flags: &["RW", "update"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { lastkey: 0, keystep: 1, limit: 0 } }])
            .args(&[
                key("key", 0),
                string("group"),
                string("consumer"),
                string("min-idle-time"),
                string("id").multiple(),
                integer("ms").token("IDLE").optional(),
                unix_time("unix-time-milliseconds").token("TIME").optional(),
                integer("count").token("RETRYCOUNT").optional(),
                pure("force", "FORCE").optional(),
                pure("justid", "JUSTID").optional(),
                string("lastid").token("LASTID").optional(),
            ]),
    ),
    (
        "xackdel",
        CommandDoc::new()
            .key_specs(&[KeySpec { notes: None, flags: &["RW", "update", "delete"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { lastkey: 0, keystep: 1, limit: 0 } }])
            .args(&[
                key("key", 0),
                string("group"),
                oneof("condition", REF_POLICY).optional(),
                block("ids", &[
                    integer("numids"),
                    string("id").multiple(),
                ]).token("IDS"),
            ]),
    ),
    (
        "xnack",
        CommandDoc::new()
            .key_specs(&[KeySpec { notes: None, flags: &["RW", "update"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { lastkey: 0, keystep: 1, limit: 0 } }])
            .args(&[
                key("key", 0),
                string("group"),
                oneof("mode", &[
                    pure("silent", "SILENT"),
                    pure("fail", "FAIL"),
                    pure("fatal", "FATAL"),
                ]),
                block("ids", &[
                    integer("numids"),
                    string("id").multiple(),
                ]).token("IDS"),
                integer("count").token("RETRYCOUNT").optional(),
                pure("force", "FORCE").optional(),
            ]),
    ),
    (
        "xdelex",
        CommandDoc::new()
            .key_specs(&[KeySpec { notes: None, flags: &["RW", "delete"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { lastkey: 0, keystep: 1, limit: 0 } }])
            .args(&[
                key("key", 0),
                oneof("condition", REF_POLICY).optional(),
                block("ids", &[
                    integer("numids"),
                    string("id").multiple(),
                ]).token("IDS"),
            ]),
    ),
    (
        "xcfgset",
        CommandDoc::new()
            .key_specs(&[KeySpec { notes: None, flags: &["RW", "update"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { lastkey: 0, keystep: 1, limit: 0 } }])
            .args(&[
                key("key", 0),
                block("idmp-duration-block", &[
                    pure("idmp-duration-token", "IDMP-DURATION"),
                    integer("duration"),
                ]).optional(),
                block("idmp-maxsize-block", &[
                    pure("idmp-maxsize-token", "IDMP-MAXSIZE"),
                    integer("maxsize"),
                ]).optional(),
            ]),
    ),
    (
        "xdel",
        CommandDoc::new()
            .key_specs(&[KeySpec { notes: None, flags: &["RW", "delete"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { lastkey: 0, keystep: 1, limit: 0 } }])
            .args(&[
                key("key", 0),
                string("id").multiple(),
            ]),
    ),
    (
        "xgroup",
        CommandDoc::new(),
    ),
    (
        "xgroup|create",
        CommandDoc::new()
            .history(&[("7.0.0", "Added the `entries_read` named argument.")])
            .key_specs(&[KeySpec { notes: None, flags: &["RW", "insert"], begin_search: BeginSearch::Index(2), find_keys: FindKeys::Range { lastkey: 0, keystep: 1, limit: 0 } }])
            .args(&[
                key("key", 0),
                string("group"),
                oneof("id-selector", &[
                    string("id"),
                    pure("new-id", "$"),
                ]),
                pure("mkstream", "MKSTREAM").optional(),
                integer("entries-read").token("ENTRIESREAD").optional(),
            ]),
    ),
    (
        "xgroup|createconsumer",
        CommandDoc::new()
            .key_specs(&[KeySpec { notes: None, flags: &["RW", "insert"], begin_search: BeginSearch::Index(2), find_keys: FindKeys::Range { lastkey: 0, keystep: 1, limit: 0 } }])
            .args(&[
                key("key", 0),
                string("group"),
                string("consumer"),
            ]),
    ),
    (
        "xgroup|delconsumer",
        CommandDoc::new()
            .key_specs(&[KeySpec { notes: None, flags: &["RW", "delete"], begin_search: BeginSearch::Index(2), find_keys: FindKeys::Range { lastkey: 0, keystep: 1, limit: 0 } }])
            .args(&[
                key("key", 0),
                string("group"),
                string("consumer"),
            ]),
    ),
    (
        "xgroup|destroy",
        CommandDoc::new()
            .key_specs(&[KeySpec { notes: None, flags: &["RW", "delete"], begin_search: BeginSearch::Index(2), find_keys: FindKeys::Range { lastkey: 0, keystep: 1, limit: 0 } }])
            .args(&[
                key("key", 0),
                string("group"),
            ]),
    ),
    (
        "xgroup|help",
        CommandDoc::new(),
    ),
    (
        "xgroup|setid",
        CommandDoc::new()
            .history(&[("7.0.0", "Added the optional `entries_read` argument.")])
            .key_specs(&[KeySpec { notes: None, flags: &["RW", "update"], begin_search: BeginSearch::Index(2), find_keys: FindKeys::Range { lastkey: 0, keystep: 1, limit: 0 } }])
            .args(&[
                key("key", 0),
                string("group"),
                oneof("id-selector", &[
                    string("id"),
                    pure("new-id", "$"),
                ]),
                integer("entriesread").display("entries-read").token("ENTRIESREAD").optional(),
            ]),
    ),
    (
        "xidmprecord",
        CommandDoc::new()
            .key_specs(&[KeySpec { notes: None, flags: &["RW", "update"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { lastkey: 0, keystep: 1, limit: 0 } }])
            .args(&[
                key("key", 0),
                string("pid"),
                string("iid"),
                string("stream-id"),
            ]),
    ),
    (
        "xinfo",
        CommandDoc::new(),
    ),
    (
        "xinfo|consumers",
        CommandDoc::new()
            .history(&[("7.2.0", "Added the `inactive` field.")])
            .tips(&["nondeterministic_output"])
            .key_specs(&[KeySpec { notes: None, flags: &["RO", "access"], begin_search: BeginSearch::Index(2), find_keys: FindKeys::Range { lastkey: 0, keystep: 1, limit: 0 } }])
            .args(&[
                key("key", 0),
                string("group"),
            ]),
    ),
    (
        "xinfo|groups",
        CommandDoc::new()
            .history(&[("7.0.0", "Added the `entries-read` and `lag` fields")])
            .key_specs(&[KeySpec { notes: None, flags: &["RO", "access"], begin_search: BeginSearch::Index(2), find_keys: FindKeys::Range { lastkey: 0, keystep: 1, limit: 0 } }])
            .args(&[
                key("key", 0),
            ]),
    ),
    (
        "xinfo|help",
        CommandDoc::new(),
    ),
    (
        "xinfo|stream",
        CommandDoc::new()
            .history(&[("6.0.0", "Added the `FULL` modifier."), ("7.0.0", "Added the `max-deleted-entry-id`, `entries-added`, `recorded-first-entry-id`, `entries-read` and `lag` fields"), ("7.2.0", "Added the `active-time` field, and changed the meaning of `seen-time`.")])
            .key_specs(&[KeySpec { notes: None, flags: &["RO", "access"], begin_search: BeginSearch::Index(2), find_keys: FindKeys::Range { lastkey: 0, keystep: 1, limit: 0 } }])
            .args(&[
                key("key", 0),
                block("full-block", &[
                    pure("full", "FULL"),
                    integer("count").token("COUNT").optional(),
                ]).optional(),
            ]),
    ),
    (
        "xlen",
        CommandDoc::new()
            .key_specs(&[KeySpec { notes: None, flags: &["RO"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { lastkey: 0, keystep: 1, limit: 0 } }])
            .args(&[
                key("key", 0),
            ]),
    ),
    (
        "xpending",
        CommandDoc::new()
            .history(&[("6.2.0", "Added the `IDLE` option and exclusive range intervals.")])
            .tips(&["nondeterministic_output"])
            .key_specs(&[KeySpec { notes: None, flags: &["RO", "access"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { lastkey: 0, keystep: 1, limit: 0 } }])
            .args(&[
                key("key", 0),
                string("group"),
                block("filters", &[
                    integer("min-idle-time").token("IDLE").since("6.2.0").optional(),
                    string("start"),
                    string("end"),
                    integer("count"),
                    string("consumer").optional(),
                ]).optional(),
            ]),
    ),
    (
        "xrange",
        CommandDoc::new()
            .history(&[("6.2.0", "Added exclusive ranges.")])
            .key_specs(&[KeySpec { notes: None, flags: &["RO", "access"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { lastkey: 0, keystep: 1, limit: 0 } }])
            .args(&[
                key("key", 0),
                string("start"),
                string("end"),
                integer("count").token("COUNT").optional(),
            ]),
    ),
    (
        "xread",
        // MAXCOUNT / MAXSIZE and the history entry as Redis 8.10's xread.json has them.
        CommandDoc::new()
            .history(&[("8.10.0", "Added the `MAXCOUNT` and `MAXSIZE` options.")])
            .key_specs(&[KeySpec { notes: None, flags: &["RO", "access"], begin_search: BeginSearch::Keyword("STREAMS", 1), find_keys: FindKeys::Range { lastkey: -1, keystep: 1, limit: 2 } }])
            .args(&[
                integer("count").token("COUNT").optional(),
                integer("maxcount").token("MAXCOUNT").since("8.10.0").optional(),
                integer("maxsize").token("MAXSIZE").since("8.10.0").optional(),
                integer("milliseconds").token("BLOCK").optional(),
                block("streams", &[
                    key("key", 0).multiple(),
                    string("id").multiple(),
                ]).token("STREAMS"),
            ]),
    ),
    (
        "xreadgroup",
        // CLAIM (8.4), MAXCOUNT / MAXSIZE (8.10) and the history as Redis 8.10's xreadgroup.json.
        CommandDoc::new()
            .history(&[
                ("8.4.0", "Added the `CLAIM` option."),
                ("8.10.0", "Added the `MAXCOUNT` and `MAXSIZE` options."),
            ])
            .key_specs(&[KeySpec { notes: None, flags: &["RO", "access"], begin_search: BeginSearch::Keyword("STREAMS", 4), find_keys: FindKeys::Range { lastkey: -1, keystep: 1, limit: 2 } }])
            .args(&[
                block("group-block", &[
                    string("group"),
                    string("consumer"),
                ]).token("GROUP"),
                integer("count").token("COUNT").optional(),
                integer("maxcount").token("MAXCOUNT").since("8.10.0").optional(),
                integer("maxsize").token("MAXSIZE").since("8.10.0").optional(),
                integer("milliseconds").token("BLOCK").optional(),
                integer("min-idle-time").token("CLAIM").since("8.4.0").optional(),
                pure("noack", "NOACK").optional(),
                block("streams", &[
                    key("key", 0).multiple(),
                    string("id").multiple(),
                ]).token("STREAMS"),
            ]),
    ),
    (
        "xrevrange",
        CommandDoc::new()
            .history(&[("6.2.0", "Added exclusive ranges.")])
            .key_specs(&[KeySpec { notes: None, flags: &["RO", "access"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { lastkey: 0, keystep: 1, limit: 0 } }])
            .args(&[
                key("key", 0),
                string("end"),
                string("start"),
                integer("count").token("COUNT").optional(),
            ]),
    ),
    (
        "xsetid",
        CommandDoc::new()
            .history(&[("7.0.0", "Added the `entries_added` and `max_deleted_entry_id` arguments.")])
            .key_specs(&[KeySpec { notes: None, flags: &["RW", "update"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { lastkey: 0, keystep: 1, limit: 0 } }])
            .args(&[
                key("key", 0),
                string("last-id"),
                integer("entries-added").token("ENTRIESADDED").since("7.0.0").optional(),
                string("max-deleted-id").token("MAXDELETEDID").since("7.0.0").optional(),
            ]),
    ),
    (
        "xtrim",
        CommandDoc::new()
            .history(&[("6.2.0", "Added the `MINID` trimming strategy and the `LIMIT` option."), ("8.2.0", "Added the `KEEPREF`, `DELREF` and `ACKED` options.")])
            .tips(&["nondeterministic_output"])
            .key_specs(&[KeySpec { notes: None, flags: &["RW", "delete"], begin_search: BeginSearch::Index(1), find_keys: FindKeys::Range { lastkey: 0, keystep: 1, limit: 0 } }])
            .args(&[
                key("key", 0),
                block("trim", &[
                    oneof("strategy", &[
                        pure("maxlen", "MAXLEN"),
                        pure("minid", "MINID").since("6.2.0"),
                    ]),
                    oneof("operator", &[
                        pure("equal", "="),
                        pure("approximately", "~"),
                    ]).optional(),
                    string("threshold"),
                    integer("count").token("LIMIT").since("6.2.0").optional(),
                    oneof("condition", REF_POLICY).optional(),
                ]),
            ]),
    ),
];

/// `KEEPREF | DELREF | ACKED` (Redis 8.2), as XADD, XTRIM, XDELEX and XACKDEL document it.
const REF_POLICY: &[Arg] = &[
    pure("keepref", "KEEPREF"),
    pure("delref", "DELREF"),
    pure("acked", "ACKED"),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::table;

    fn every_spec() -> Vec<&'static table::CommandSpec> {
        table::all()
            .iter()
            .flat_map(|c| std::iter::once(c).chain(c.subcommands.iter()))
            .collect()
    }

    #[test]
    fn every_command_in_the_table_is_documented() {
        let missing: Vec<_> = every_spec()
            .iter()
            .map(|s| s.full)
            .filter(|n| lookup(n).is_none())
            .collect();
        assert!(missing.is_empty(), "no docs for {missing:?}");
    }

    #[test]
    fn every_documented_name_is_a_command() {
        let known: Vec<_> = every_spec().iter().map(|s| s.full).collect();
        let stray: Vec<_> = names().filter(|n| !known.contains(n)).collect();
        assert!(stray.is_empty(), "docs for unknown commands {stray:?}");
        let mut seen = std::collections::HashSet::new();
        assert!(
            names().all(|n| seen.insert(n)),
            "a name is documented twice"
        );
    }

    fn check_args(cmd: &str, args: &[Arg], specs: usize) {
        for a in args {
            assert_eq!(
                a.kind.is_container(),
                !a.args.is_empty(),
                "{cmd}: {} nests arguments iff it is a oneof/block",
                a.name
            );
            assert_eq!(
                a.kind == ArgType::Key,
                a.key_spec_index.is_some(),
                "{cmd}: {} has a key spec index iff it is a key",
                a.name
            );
            if let Some(i) = a.key_spec_index {
                assert!(
                    (i as usize) < specs,
                    "{cmd}: {} points past the key specs",
                    a.name
                );
            }
            if a.kind == ArgType::PureToken {
                assert!(
                    a.token.is_some(),
                    "{cmd}: pure-token {} needs a token",
                    a.name
                );
            }
            check_args(cmd, a.args, specs);
        }
    }

    #[test]
    fn argument_trees_are_well_formed() {
        for (name, doc) in DOCS {
            check_args(name, doc.args, doc.key_specs.len());
        }
    }

    #[test]
    fn commands_with_keys_have_key_specs() {
        // The reverse does not hold: XREAD/XREADGROUP find keys after STREAMS (a keyword
        // key spec) and report first_key 0, as Redis does.
        for s in every_spec() {
            let specs = lookup(s.full).map_or(0, |d| d.key_specs.len());
            assert!(
                s.first_key <= 0 || specs > 0,
                "{} has keys but no key spec",
                s.full
            );
        }
    }
}
