//! The command table: the single source of names, arities, flags, key positions,
//! ACL categories and docs. Dispatch, arity errors, COMMAND COUNT/INFO/DOCS/LIST
//! and INFO commandstats are all driven by it.

use super::args::Args;

/// Argument docs, tips and key specs for COMMAND DOCS/INFO. Declared here (its file is
/// `src/commands/docs.rs`) because the table is what it documents.
#[path = "docs.rs"]
pub mod docs;
use super::error::CommandError;
use super::session::Session;
use super::{acl, cluster, connection, debug, keys, pubsub, server, transactions, Ctx, Outcome};
use crate::core::Shared;

/// A handler that runs against the locked keyspace.
pub type DataFn = fn(&mut Ctx<'_>, &mut Args) -> Result<Outcome, CommandError>;
/// A handler that works on the connection's session (and never locks the keyspace).
pub type ConnFn = fn(&mut Session, &Shared, &mut Args) -> Result<Outcome, CommandError>;

/// How a command runs.
#[derive(Clone, Copy)]
pub enum Handler {
    /// Against the keyspace.
    Data(DataFn),
    /// Against the connection.
    Conn(ConnFn),
    /// A container: the next argument names a subcommand.
    Container,
}

/// One command (or subcommand) of the table.
pub struct CommandSpec {
    /// Lower-case name; for a subcommand `container|sub`.
    pub full: &'static str,
    /// Redis arity: exact if positive, minimum if negative; counts the name(s).
    pub arity: i32,
    /// COMMAND flags, e.g. `write`, `readonly`, `fast`, `blocking`, `no_auth`.
    pub flags: &'static [&'static str],
    /// First key position (0 = no keys).
    pub first_key: i32,
    /// Last key position (-1 = last argument).
    pub last_key: i32,
    /// Step between keys.
    pub step: i32,
    /// ACL categories, e.g. `@stream`, `@write`.
    pub acl: &'static [&'static str],
    /// Command group for COMMAND DOCS.
    pub group: &'static str,
    /// One-line summary for COMMAND DOCS.
    pub summary: &'static str,
    /// Redis version that introduced it.
    pub since: &'static str,
    /// Time complexity for COMMAND DOCS.
    pub complexity: &'static str,
    /// How it runs.
    pub handler: Handler,
    /// Subcommands of a container.
    pub subcommands: &'static [CommandSpec],
    /// The flags execution tests on every request, as bits (see [`bit`]), computed
    /// when the spec is built: matching the flag strings cost a few percent of a
    /// pipelined XADD load.
    bits: u8,
}

/// Bits of [`CommandSpec::bits`].
mod bit {
    pub const NO_AUTH: u8 = 1;
    pub const LOADING: u8 = 2;
    pub const WRITE: u8 = 4;
    pub const READONLY: u8 = 8;
    pub const NO_MULTI: u8 = 16;
    pub const TRANSACTION_CONTROL: u8 = 32;
    /// Redis's `CMD_PROTECTED` (not shown by COMMAND INFO): DEBUG, refused unless
    /// `enable-debug-command` allows the client.
    pub const PROTECTED: u8 = 64;
}

/// `a == b`, usable in a const fn.
const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The [`bit`]s of a flag list.
const fn flag_bits(flags: &[&str]) -> u8 {
    let mut bits = 0;
    let mut i = 0;
    while i < flags.len() {
        let f = flags[i];
        if str_eq(f, "no_auth") {
            bits |= bit::NO_AUTH;
        } else if str_eq(f, "loading") {
            bits |= bit::LOADING;
        } else if str_eq(f, "write") {
            bits |= bit::WRITE;
        } else if str_eq(f, "readonly") {
            bits |= bit::READONLY;
        } else if str_eq(f, "no_multi") {
            bits |= bit::NO_MULTI;
        }
        i += 1;
    }
    bits
}

/// [`bit::TRANSACTION_CONTROL`] for the commands executed at once inside MULTI, and
/// [`bit::PROTECTED`] for DEBUG: bits that depend on the name, not on COMMAND's flags.
const fn control_bit(full: &str) -> u8 {
    if str_eq(full, "debug") {
        return bit::PROTECTED;
    }
    let names = ["exec", "discard", "multi", "watch", "quit", "reset"];
    let mut i = 0;
    while i < names.len() {
        if str_eq(full, names[i]) {
            return bit::TRANSACTION_CONTROL;
        }
        i += 1;
    }
    0
}

impl CommandSpec {
    /// Starts a spec with no flags, keys or docs.
    pub const fn new(full: &'static str, arity: i32, handler: Handler) -> Self {
        CommandSpec {
            full,
            arity,
            flags: &[],
            first_key: 0,
            last_key: 0,
            step: 0,
            acl: &[],
            group: "generic",
            summary: "",
            since: "1.0.0",
            complexity: "O(1)",
            handler,
            subcommands: &[],
            bits: control_bit(full),
        }
    }

    /// Sets the flags.
    pub const fn flags(mut self, flags: &'static [&'static str]) -> Self {
        self.flags = flags;
        self.bits = flag_bits(flags) | control_bit(self.full);
        self
    }

    /// Sets the key positions.
    pub const fn keys(mut self, first: i32, last: i32, step: i32) -> Self {
        self.first_key = first;
        self.last_key = last;
        self.step = step;
        self
    }

    /// Sets the ACL categories.
    pub const fn acl(mut self, acl: &'static [&'static str]) -> Self {
        self.acl = acl;
        self
    }

    /// Sets the docs.
    pub const fn doc(
        mut self,
        group: &'static str,
        since: &'static str,
        complexity: &'static str,
        summary: &'static str,
    ) -> Self {
        self.group = group;
        self.since = since;
        self.complexity = complexity;
        self.summary = summary;
        self
    }

    /// Sets the subcommands of a container.
    pub const fn subs(mut self, subs: &'static [CommandSpec]) -> Self {
        self.subcommands = subs;
        self
    }

    /// The name as COMMAND reports it (`xgroup|create` for subcommands).
    pub fn full_name(&self) -> &'static str {
        self.full
    }

    /// The last component of the name.
    pub fn name(&self) -> &'static str {
        self.full.rsplit('|').next().unwrap_or(self.full)
    }

    /// Allowed before authentication.
    pub fn no_auth(&self) -> bool {
        self.bits & bit::NO_AUTH != 0
    }

    /// Allowed while the data set is loading.
    pub fn ok_loading(&self) -> bool {
        self.bits & bit::LOADING != 0
    }

    /// Changes data: logged, and refused while the log is poisoned.
    pub fn is_write(&self) -> bool {
        self.bits & bit::WRITE != 0
    }

    /// Reads data (refused, like writes, while the log is poisoned).
    pub fn is_readonly(&self) -> bool {
        self.bits & bit::READONLY != 0
    }

    /// Refused inside MULTI.
    pub fn no_multi(&self) -> bool {
        self.bits & bit::NO_MULTI != 0
    }

    /// Redis's `CMD_PROTECTED`: refused unless `enable-debug-command` allows the client.
    pub fn is_protected(&self) -> bool {
        self.bits & bit::PROTECTED != 0
    }

    /// Executed at once inside MULTI rather than queued.
    pub fn is_transaction_control(&self) -> bool {
        self.bits & bit::TRANSACTION_CONTROL != 0
    }

    fn arity_ok(&self, argc: usize) -> bool {
        let argc = argc as i32;
        if self.arity >= 0 {
            argc == self.arity
        } else {
            argc >= -self.arity
        }
    }
}

/// Finds the spec for a request and checks its arity; leaves the cursor after the
/// command name (or the subcommand name).
pub fn resolve(args: &mut Args) -> Result<&'static CommandSpec, CommandError> {
    let argv = args.argv();
    let Some(spec) = lookup_raw(&argv[0]) else {
        // Redis's `'%.*s' ` with 128 minus what is shown so far, while under 128 bytes:
        // the last argument shown may be cut.
        let mut shown: Vec<u8> = Vec::new();
        for a in argv.iter().skip(1) {
            if shown.len() >= 128 {
                break;
            }
            let room = 128 - shown.len();
            shown.push(b'\'');
            shown.extend_from_slice(&a[..a.len().min(room)]);
            shown.extend_from_slice(b"' ");
        }
        return Err(CommandError::UnknownCommand {
            name: String::from_utf8_lossy(&argv[0][..argv[0].len().min(128)]).into_owned(),
            args: String::from_utf8_lossy(&shown).into_owned(),
        });
    };
    if matches!(spec.handler, Handler::Container) {
        if argv.len() < 2 {
            return Err(CommandError::WrongArity(spec.full.to_string()));
        }
        let sub_name = String::from_utf8_lossy(&argv[1]).to_ascii_lowercase();
        let Some(sub) = spec.subcommands.iter().find(|s| s.name() == sub_name) else {
            return Err(CommandError::UnknownSubcommand {
                sub: String::from_utf8_lossy(&argv[1])
                    .chars()
                    .take(128)
                    .collect(),
                container: spec.full.to_ascii_uppercase(),
            });
        };
        if !sub.arity_ok(argv.len()) {
            return Err(CommandError::WrongArity(sub.full.to_string()));
        }
        args.seek(2);
        return Ok(sub);
    }
    if !spec.arity_ok(argv.len()) {
        return Err(CommandError::WrongArity(spec.full.to_string()));
    }
    args.seek(1);
    Ok(spec)
}

/// The spec of a top-level command by lower-case name.
pub fn lookup(name: &str) -> Option<&'static CommandSpec> {
    by_name().get(name.as_bytes()).copied()
}

/// Finds a command by its name as the client sent it (any case) without
/// allocating: this runs for every request.
pub(crate) fn lookup_raw(raw: &[u8]) -> Option<&'static CommandSpec> {
    let mut buf = [0u8; 32];
    if raw.len() > buf.len() {
        return None;
    }
    let lower = &mut buf[..raw.len()];
    lower.copy_from_slice(raw);
    lower.make_ascii_lowercase();
    by_name().get(&*lower).copied()
}

type ByName =
    std::collections::HashMap<&'static [u8], &'static CommandSpec, crate::engine::hash::KeyHash>;

fn by_name() -> &'static ByName {
    static MAP: std::sync::OnceLock<ByName> = std::sync::OnceLock::new();
    MAP.get_or_init(|| all().iter().map(|c| (c.full.as_bytes(), c)).collect())
}

/// Every top-level command.
pub fn all() -> &'static [CommandSpec] {
    COMMANDS
}

use Handler::{Conn, Container, Data};

const CONN_FLAGS: &[&str] = &["noscript", "loading", "stale", "fast"];

static COMMANDS: &[CommandSpec] = &[
    // ---- connection ----
    CommandSpec::new("ping", -1, Conn(connection::ping))
        .flags(&["fast"])
        .acl(&["@fast", "@connection"])
        .doc("connection", "1.0.0", "O(1)", "Returns the server's liveliness response."),
    CommandSpec::new("echo", 2, Conn(connection::echo))
        .flags(&["fast"])
        .acl(&["@fast", "@connection"])
        .doc("connection", "1.0.0", "O(1)", "Returns the given string."),
    CommandSpec::new("quit", -1, Conn(connection::quit))
        .flags(&["allow_busy", "noscript", "loading", "stale", "fast", "no_auth"])
        .acl(&["@fast", "@connection"])
        .doc("connection", "1.0.0", "O(1)", "Closes the connection."),
    CommandSpec::new("reset", 1, Conn(connection::reset))
        .flags(&["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"])
        .acl(&["@fast", "@connection"])
        .doc("connection", "6.2.0", "O(1)", "Resets the connection."),
    CommandSpec::new("hello", -1, Conn(connection::hello))
        .flags(&["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"])
        .acl(&["@fast", "@connection"])
        .doc("connection", "6.0.0", "O(1)", "Handshakes with the Redis server."),
    CommandSpec::new("auth", -2, Conn(connection::auth))
        .flags(&["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"])
        .acl(&["@fast", "@connection"])
        .doc("connection", "1.0.0", "O(N) where N is the number of passwords defined for the user", "Authenticates the connection."),
    CommandSpec::new("select", 2, Conn(connection::select))
        .flags(CONN_FLAGS)
        .acl(&["@fast", "@connection"])
        .doc("connection", "1.0.0", "O(1)", "Changes the selected database."),
    CommandSpec::new("client", -2, Container)
        .acl(&["@slow"])
        .doc("connection", "2.4.0", "Depends on subcommand.", "A container for client connection commands.")
        .subs(connection::CLIENT_SUBCOMMANDS),
    // ---- ACL (acl.rs) ----
    CommandSpec::new("acl", -2, Container)
        .acl(&["@slow"])
        .doc("server", "6.0.0", "Depends on subcommand.", "A container for Access List Control commands.")
        .subs(acl::ACL_SUBCOMMANDS),
    // ---- transactions ----
    CommandSpec::new("multi", 1, Conn(transactions::multi))
        .flags(&["noscript", "loading", "stale", "fast", "allow_busy"])
        .acl(&["@fast", "@transaction"])
        .doc("transactions", "1.2.0", "O(1)", "Starts a transaction."),
    CommandSpec::new("exec", 1, Conn(transactions::exec))
        .flags(&["noscript", "loading", "stale", "skip_slowlog"])
        .acl(&["@slow", "@transaction"])
        .doc("transactions", "1.2.0", "Depends on commands in the transaction", "Executes all commands in a transaction."),
    CommandSpec::new("discard", 1, Conn(transactions::discard))
        .flags(&["noscript", "loading", "stale", "fast", "allow_busy"])
        .acl(&["@fast", "@transaction"])
        .doc("transactions", "2.0.0", "O(N), when N is the number of queued commands", "Discards a transaction."),
    CommandSpec::new("watch", -2, Conn(transactions::watch))
        .flags(&["noscript", "loading", "stale", "fast", "allow_busy"])
        .keys(1, -1, 1)
        .acl(&["@fast", "@transaction"])
        .doc("transactions", "2.2.0", "O(1) for every key.", "Monitors changes to keys to determine the execution of a transaction."),
    CommandSpec::new("unwatch", 1, Conn(transactions::unwatch))
        .flags(&["noscript", "loading", "stale", "fast", "allow_busy"])
        .acl(&["@fast", "@transaction"])
        .doc("transactions", "2.2.0", "O(1)", "Forgets about watched keys of a transaction."),
    // ---- pub/sub (pubsub.rs) ----
    CommandSpec::new("publish", 3, Conn(pubsub::publish))
        .flags(&["pubsub", "loading", "stale", "fast"])
        .acl(&["@pubsub", "@fast"])
        .doc("pubsub", "2.0.0", "O(N+M) where N is the number of clients subscribed to the receiving channel and M is the total number of subscribed patterns (by any client).", "Posts a message to a channel."),
    CommandSpec::new("subscribe", -2, Conn(pubsub::subscribe))
        .flags(&["denyoom", "pubsub", "noscript", "loading", "stale"])
        .acl(&["@pubsub", "@slow"])
        .doc("pubsub", "2.0.0", "O(N) where N is the number of channels to subscribe to.", "Listens for messages published to channels."),
    CommandSpec::new("unsubscribe", -1, Conn(pubsub::unsubscribe))
        .flags(&["pubsub", "noscript", "loading", "stale"])
        .acl(&["@pubsub", "@slow"])
        .doc("pubsub", "2.0.0", "O(N) where N is the number of channels to unsubscribe.", "Stops listening to messages posted to channels."),
    CommandSpec::new("psubscribe", -2, Conn(pubsub::psubscribe))
        .flags(&["denyoom", "pubsub", "noscript", "loading", "stale"])
        .acl(&["@pubsub", "@slow"])
        .doc("pubsub", "2.0.0", "O(N) where N is the number of patterns to subscribe to.", "Listens for messages published to channels that match one or more patterns."),
    CommandSpec::new("punsubscribe", -1, Conn(pubsub::punsubscribe))
        .flags(&["pubsub", "noscript", "loading", "stale"])
        .acl(&["@pubsub", "@slow"])
        .doc("pubsub", "2.0.0", "O(N) where N is the number of patterns to unsubscribe.", "Stops listening to messages published to channels that match one or more patterns."),
    CommandSpec::new("spublish", 3, Conn(pubsub::spublish))
        .flags(&["pubsub", "loading", "stale", "fast"])
        .keys(1, 1, 1)
        .acl(&["@pubsub", "@fast"])
        .doc("pubsub", "7.0.0", "O(N) where N is the number of clients subscribed to the receiving shard channel.", "Post a message to a shard channel"),
    CommandSpec::new("ssubscribe", -2, Conn(pubsub::ssubscribe))
        .flags(&["denyoom", "pubsub", "noscript", "loading", "stale"])
        .keys(1, -1, 1)
        .acl(&["@pubsub", "@slow"])
        .doc("pubsub", "7.0.0", "O(N) where N is the number of shard channels to subscribe to.", "Listens for messages published to shard channels."),
    CommandSpec::new("sunsubscribe", -1, Conn(pubsub::sunsubscribe))
        .flags(&["pubsub", "noscript", "loading", "stale"])
        .keys(1, -1, 1)
        .acl(&["@pubsub", "@slow"])
        .doc("pubsub", "7.0.0", "O(N) where N is the number of shard channels to unsubscribe.", "Stops listening to messages posted to shard channels."),
    CommandSpec::new("pubsub", -2, Container)
        .acl(&["@slow"])
        .doc("pubsub", "2.8.0", "Depends on subcommand.", "A container for Pub/Sub commands.")
        .subs(pubsub::PUBSUB_SUBCOMMANDS),
    // ---- keyspace ----
    CommandSpec::new("type", 2, Data(keys::type_))
        .flags(&["readonly", "fast"])
        .keys(1, 1, 1)
        .acl(&["@keyspace", "@read", "@fast"])
        .doc("generic", "1.0.0", "O(1)", "Determines the type of value stored at a key."),
    CommandSpec::new("exists", -2, Data(keys::exists))
        .flags(&["readonly", "fast"])
        .keys(1, -1, 1)
        .acl(&["@keyspace", "@read", "@fast"])
        .doc("generic", "1.0.0", "O(N) where N is the number of keys to check.", "Determines whether one or more keys exist."),
    CommandSpec::new("del", -2, Data(keys::del))
        .flags(&["write"])
        .keys(1, -1, 1)
        .acl(&["@keyspace", "@write", "@slow"])
        .doc("generic", "1.0.0", "O(N) where N is the number of keys that will be removed. When a key to remove holds a value other than a string, the individual complexity for this key is O(M) where M is the number of elements in the list, set, sorted set or hash. Removing a single key that holds a string value is O(1).", "Deletes one or more keys."),
    CommandSpec::new("unlink", -2, Data(keys::del))
        .flags(&["write", "fast"])
        .keys(1, -1, 1)
        .acl(&["@keyspace", "@write", "@fast"])
        .doc("generic", "4.0.0", "O(1) for each key removed regardless of its size. Then the command does O(N) work in a different thread in order to reclaim memory, where N is the number of allocations the deleted objects where composed of.", "Asynchronously deletes one or more keys."),
    CommandSpec::new("keys", 2, Data(keys::keys))
        .flags(&["readonly"])
        .acl(&["@keyspace", "@read", "@slow", "@dangerous"])
        .doc("generic", "1.0.0", "O(N) with N being the number of keys in the database, under the assumption that the key names in the database and the given pattern have limited length.", "Returns all key names that match a pattern."),
    CommandSpec::new("scan", -2, Data(keys::scan))
        .flags(&["readonly"])
        .acl(&["@keyspace", "@read", "@slow"])
        .doc("generic", "2.8.0", "O(1) for every call. O(N) for a complete iteration, including enough command calls for the cursor to return back to 0. N is the number of elements inside the collection.", "Iterates over the key names in the database."),
    CommandSpec::new("randomkey", 1, Data(keys::randomkey))
        .flags(&["readonly"])
        .acl(&["@keyspace", "@read", "@slow"])
        .doc("generic", "1.0.0", "O(1)", "Returns a random key name from the database."),
    CommandSpec::new("dbsize", 1, Data(keys::dbsize))
        .flags(&["readonly", "fast"])
        .acl(&["@keyspace", "@read", "@fast"])
        .doc("server", "1.0.0", "O(1)", "Returns the number of keys in the database."),
    CommandSpec::new("flushdb", -1, Data(keys::flushdb))
        .flags(&["write"])
        .acl(&["@keyspace", "@write", "@slow", "@dangerous"])
        .doc("server", "1.0.0", "O(N) where N is the number of keys in the selected database", "Remove all keys from the current database."),
    CommandSpec::new("flushall", -1, Data(keys::flushall))
        .flags(&["write"])
        .acl(&["@keyspace", "@write", "@slow", "@dangerous"])
        .doc("server", "1.0.0", "O(N) where N is the total number of keys in all databases", "Removes all keys from all databases."),
    CommandSpec::new("rename", 3, Data(keys::rename))
        .flags(&["write"])
        .keys(1, 2, 1)
        .acl(&["@keyspace", "@write", "@slow"])
        .doc("generic", "1.0.0", "O(1)", "Renames a key and overwrites the destination."),
    CommandSpec::new("renamenx", 3, Data(keys::renamenx))
        .flags(&["write", "fast"])
        .keys(1, 2, 1)
        .acl(&["@keyspace", "@write", "@fast"])
        .doc("generic", "1.0.0", "O(1)", "Renames a key only when the target key name doesn't exist."),
    CommandSpec::new("expire", -3, Data(keys::expire))
        .flags(&["write", "fast"])
        .keys(1, 1, 1)
        .acl(&["@keyspace", "@write", "@fast"])
        .doc("generic", "1.0.0", "O(1)", "Sets the expiration time of a key in seconds."),
    CommandSpec::new("pexpire", -3, Data(keys::pexpire))
        .flags(&["write", "fast"])
        .keys(1, 1, 1)
        .acl(&["@keyspace", "@write", "@fast"])
        .doc("generic", "2.6.0", "O(1)", "Sets the expiration time of a key in milliseconds."),
    CommandSpec::new("expireat", -3, Data(keys::expireat))
        .flags(&["write", "fast"])
        .keys(1, 1, 1)
        .acl(&["@keyspace", "@write", "@fast"])
        .doc("generic", "1.2.0", "O(1)", "Sets the expiration time of a key to a Unix timestamp."),
    CommandSpec::new("pexpireat", -3, Data(keys::pexpireat))
        .flags(&["write", "fast"])
        .keys(1, 1, 1)
        .acl(&["@keyspace", "@write", "@fast"])
        .doc("generic", "2.6.0", "O(1)", "Sets the expiration time of a key to a Unix milliseconds timestamp."),
    CommandSpec::new("ttl", 2, Data(keys::ttl))
        .flags(&["readonly", "fast"])
        .keys(1, 1, 1)
        .acl(&["@keyspace", "@read", "@fast"])
        .doc("generic", "1.0.0", "O(1)", "Returns the expiration time in seconds of a key."),
    CommandSpec::new("pttl", 2, Data(keys::pttl))
        .flags(&["readonly", "fast"])
        .keys(1, 1, 1)
        .acl(&["@keyspace", "@read", "@fast"])
        .doc("generic", "2.6.0", "O(1)", "Returns the expiration time in milliseconds of a key."),
    CommandSpec::new("persist", 2, Data(keys::persist))
        .flags(&["write", "fast"])
        .keys(1, 1, 1)
        .acl(&["@keyspace", "@write", "@fast"])
        .doc("generic", "2.2.0", "O(1)", "Removes the expiration time of a key."),
    CommandSpec::new("get", 2, Data(keys::get))
        .flags(&["readonly", "fast"])
        .keys(1, 1, 1)
        .acl(&["@read", "@string", "@fast"])
        .doc("string", "1.0.0", "O(1)", "Returns the string value of a key."),
    CommandSpec::new("set", -3, Data(keys::set))
        .flags(&["write", "denyoom"])
        .keys(1, 1, 1)
        .acl(&["@write", "@string", "@slow"])
        .doc("string", "1.0.0", "O(1)", "Sets the string value of a key, ignoring its type. The key is created if it doesn't exist."),
    // ---- server ----
    CommandSpec::new("info", -1, Data(server::info))
        .flags(&["loading", "stale"])
        .acl(&["@slow", "@dangerous"])
        .doc("server", "1.0.0", "O(1)", "Returns information and statistics about the server."),
    CommandSpec::new("config", -2, Container)
        .acl(&["@slow"])
        .doc("server", "2.0.0", "Depends on subcommand.", "A container for server configuration commands.")
        .subs(server::CONFIG_SUBCOMMANDS),
    CommandSpec::new("command", -1, Data(server::command))
        .flags(&["loading", "stale"])
        .acl(&["@slow", "@connection"])
        .doc("server", "2.8.13", "O(N) where N is the total number of Redis commands", "Returns detailed information about all commands.")
        .subs(server::COMMAND_SUBCOMMANDS),
    CommandSpec::new("time", 1, Data(server::time))
        .flags(&["loading", "stale", "fast"])
        .acl(&["@fast"])
        .doc("server", "2.6.0", "O(1)", "Returns the server time."),
    CommandSpec::new("shutdown", -1, Conn(server::shutdown))
        .flags(&["admin", "noscript", "loading", "stale", "no_multi", "allow_busy"])
        .acl(&["@admin", "@slow", "@dangerous"])
        .doc("server", "1.0.0", "O(N) when saving, where N is the total number of keys in all databases when saving data, otherwise O(1)", "Synchronously saves the database(s) to disk and shuts down the Redis server."),
    CommandSpec::new("bgrewriteaof", 1, Conn(server::bgrewriteaof))
        .flags(&["admin", "noscript", "no_async_loading"])
        .acl(&["@admin", "@slow", "@dangerous"])
        .doc("server", "1.0.0", "O(1)", "Asynchronously rewrites the append-only file to disk."),
    CommandSpec::new("debug", -2, Data(debug::debug))
        .flags(&["admin", "noscript", "loading", "stale"])
        .acl(&["@admin", "@slow", "@dangerous"])
        .doc("server", "1.0.0", "Depends on subcommand.", "A container for debugging commands."),
    CommandSpec::new("function", -2, Container)
        .acl(&["@slow"])
        .doc("scripting", "7.0.0", "Depends on subcommand.", "A container for function commands.")
        .subs(server::FUNCTION_SUBCOMMANDS),
    CommandSpec::new("script", -2, Container)
        .acl(&["@slow"])
        .doc("scripting", "2.6.0", "Depends on subcommand.", "A container for Lua scripts management commands.")
        .subs(server::SCRIPT_SUBCOMMANDS),
    // ---- cluster (cluster.rs) ----
    CommandSpec::new("cluster", -2, Container)
        .acl(&["@slow"])
        .doc("cluster", "3.0.0", "Depends on subcommand.", "A container for Redis Cluster commands.")
        .subs(cluster::CLUSTER_SUBCOMMANDS),
    CommandSpec::new("readonly", 1, Conn(cluster::readonly))
        .flags(&["loading", "stale", "fast"])
        .acl(&["@fast", "@connection"])
        .doc("cluster", "3.0.0", "O(1)", "Enables read-only queries for a connection to a Redis Cluster replica node."),
    CommandSpec::new("readwrite", 1, Conn(cluster::readwrite))
        .flags(&["loading", "stale", "fast"])
        .acl(&["@fast", "@connection"])
        .doc("cluster", "3.0.0", "O(1)", "Enables read-write queries for a connection to a Reids Cluster replica node."),
    CommandSpec::new("asking", 1, Conn(cluster::asking))
        .flags(&["fast"])
        .acl(&["@fast", "@connection"])
        .doc("cluster", "3.0.0", "O(1)", "Signals that a cluster client is following an -ASK redirect."),
    CommandSpec::new("rill.migrate", -6, Conn(super::migrate::migrate))
        .flags(&["write"])
        .acl(&["@keyspace", "@write", "@slow", "@dangerous"])
        .doc("cluster", "0.1.0", "O(N) where N is the size of the keys moved", "Moves keys to another Rill node atomically and durably (used by 'rill cluster reshard')."),
    CommandSpec::new("rill.restore", -3, Conn(super::migrate::restore))
        .flags(&["write", "denyoom"])
        .keys(1, 1, 1)
        .acl(&["@keyspace", "@write", "@slow", "@dangerous"])
        .doc("cluster", "0.1.0", "O(N) where N is the size of the key", "Stores a key moved from another Rill node (sent by RILL.MIGRATE)."),
    CommandSpec::new("rill.cluster", -2, Container)
        .acl(&["@slow"])
        .doc("cluster", "0.1.0", "Depends on subcommand.", "Rill's cluster administration (used by 'rill cluster').")
        .subs(cluster::RILL_CLUSTER_SUBCOMMANDS),
    // ---- broker policies (policy.rs; Rill only) ----
    CommandSpec::new("rill.policy", -2, Container)
        .acl(&["@slow"])
        .doc("stream", "0.1.0", "Depends on subcommand.", "Rill's broker policies for a stream: retention by age, size and length.")
        .subs(super::policy::RILL_POLICY_SUBCOMMANDS),
    // ---- streams (h1: streams.rs; h2: groups.rs, xinfo.rs) ----
    // STREAM-COMMANDS-BEGIN
    CommandSpec::new("xadd", -5, Data(super::streams::xadd))
        .flags(&["write", "denyoom", "fast"])
        .keys(1, 1, 1)
        .acl(&["@write", "@stream", "@fast"])
        .doc("stream", "5.0.0", "O(1) when adding a new entry, O(N) when trimming where N being the number of entries evicted.", "Appends a new message to a stream. Creates the key if it doesn't exist."),
    CommandSpec::new("xrange", -4, Data(super::streams::xrange))
        .flags(&["readonly"])
        .keys(1, 1, 1)
        .acl(&["@read", "@stream", "@slow"])
        .doc("stream", "5.0.0", "O(N) with N being the number of elements being returned. If N is constant (e.g. always asking for the first 10 elements with COUNT), you can consider it O(1).", "Returns the messages from a stream within a range of IDs."),
    CommandSpec::new("xrevrange", -4, Data(super::streams::xrevrange))
        .flags(&["readonly"])
        .keys(1, 1, 1)
        .acl(&["@read", "@stream", "@slow"])
        .doc("stream", "5.0.0", "O(N) with N being the number of elements returned. If N is constant (e.g. always asking for the first 10 elements with COUNT), you can consider it O(1).", "Returns the messages from a stream within a range of IDs in reverse order."),
    CommandSpec::new("xlen", 2, Data(super::streams::xlen))
        .flags(&["readonly", "fast"])
        .keys(1, 1, 1)
        .acl(&["@read", "@stream", "@fast"])
        .doc("stream", "5.0.0", "O(1)", "Return the number of messages in a stream."),
    CommandSpec::new("xdel", -3, Data(super::streams::xdel))
        .flags(&["write", "fast"])
        .keys(1, 1, 1)
        .acl(&["@write", "@stream", "@fast"])
        .doc("stream", "5.0.0", "O(1) for each single item to delete in the stream, regardless of the stream size.", "Returns the number of messages after removing them from a stream."),
    CommandSpec::new("xdelex", -5, Data(super::refs::xdelex))
        .flags(&["write", "fast"])
        .keys(1, 1, 1)
        .acl(&["@write", "@stream", "@fast"])
        .doc("stream", "8.2.0", "O(1) for each single item to delete in the stream, regardless of the stream size.", "Deletes one or multiple entries from the stream."),
    CommandSpec::new("xtrim", -4, Data(super::streams::xtrim))
        .flags(&["write"])
        .keys(1, 1, 1)
        .acl(&["@write", "@stream", "@slow"])
        .doc("stream", "5.0.0", "O(N), with N being the number of evicted entries. Constant times are very small however, since entries are organized in macro nodes containing multiple entries that can be released with a single deallocation.", "Deletes messages from the beginning of a stream."),
    CommandSpec::new("xread", -4, Data(super::streams::xread))
        .flags(&["readonly", "blocking", "movablekeys"])
        .acl(&["@read", "@stream", "@slow", "@blocking"])
        .doc("stream", "5.0.0", "For each stream mentioned: O(N) with N being the number of elements being returned, it means that XREAD-ing with a fixed COUNT is O(1). Note that when the BLOCK option is used, XADD will pay O(M) time in order to serve the M clients blocked on the stream getting new data.", "Returns messages from multiple streams with IDs greater than the ones requested. Blocks until a message is available otherwise."),
    CommandSpec::new("xsetid", -3, Data(super::streams::xsetid))
        .flags(&["write", "denyoom", "fast"])
        .keys(1, 1, 1)
        .acl(&["@write", "@stream", "@fast"])
        .doc("stream", "5.0.0", "O(1)", "An internal command for replicating stream values."),
    CommandSpec::new("xgroup", -2, Container)
        .acl(&["@slow"])
        .doc("stream", "5.0.0", "Depends on subcommand.", "A container for consumer groups commands.")
        .subs(super::groups::XGROUP_SUBCOMMANDS),
    CommandSpec::new("xreadgroup", -7, Data(super::groups::xreadgroup))
        .flags(&["write", "blocking", "movablekeys"])
        .acl(&["@write", "@stream", "@slow", "@blocking"])
        .doc("stream", "5.0.0", "For each stream mentioned: O(M) with M being the number of elements returned. If M is constant (e.g. always asking for the first 10 elements with COUNT), you can consider it O(1). On the other side when XREADGROUP blocks, XADD will pay the O(N) time in order to serve the N clients blocked on the stream getting new data.", "Returns new or historical messages from a stream for a consumer in a group. Blocks until a message is available otherwise."),
    CommandSpec::new("xack", -4, Data(super::groups::xack))
        .flags(&["write", "fast"])
        .keys(1, 1, 1)
        .acl(&["@write", "@stream", "@fast"])
        .doc("stream", "5.0.0", "O(1) for each message ID processed.", "Returns the number of messages that were successfully acknowledged by the consumer group member of a stream."),
    CommandSpec::new("xackdel", -6, Data(super::refs::xackdel))
        .flags(&["write", "fast"])
        .keys(1, 1, 1)
        .acl(&["@write", "@stream", "@fast"])
        .doc("stream", "8.2.0", "O(1) for each message ID processed.", "Acknowledges and deletes one or multiple messages for a stream consumer group."),
    CommandSpec::new("xnack", -7, Data(super::groups::xnack))
        .flags(&["write", "fast"])
        .keys(1, 1, 1)
        .acl(&["@write", "@stream", "@fast"])
        .doc("stream", "8.8.0", "O(1) for each message ID processed.", "Releases claimed messages back to the group's PEL without acknowledging them, making them available for re-delivery."),
    CommandSpec::new("xpending", -3, Data(super::groups::xpending))
        .flags(&["readonly"])
        .keys(1, 1, 1)
        .acl(&["@read", "@stream", "@slow"])
        .doc("stream", "5.0.0", "O(N) with N being the number of elements returned, so asking for a small fixed number of entries per call is O(1). O(M), where M is the total number of entries scanned when used with the IDLE filter. When the command returns just the summary and the list of consumers is small, it runs in O(1) time; otherwise, an additional O(N) time for iterating every consumer.", "Returns the information and entries from a stream consumer group's pending entries list."),
    CommandSpec::new("xclaim", -6, Data(super::groups::xclaim))
        .flags(&["write", "fast"])
        .keys(1, 1, 1)
        .acl(&["@write", "@stream", "@fast"])
        .doc("stream", "5.0.0", "O(log N) with N being the number of messages in the PEL of the consumer group.", "Changes, or acquires, ownership of a message in a consumer group, as if the message was delivered a consumer group member."),
    CommandSpec::new("xautoclaim", -6, Data(super::groups::xautoclaim))
        .flags(&["write", "fast"])
        .keys(1, 1, 1)
        .acl(&["@write", "@stream", "@fast"])
        .doc("stream", "6.2.0", "O(1) if COUNT is small.", "Changes, or acquires, ownership of messages in a consumer group, as if the messages were delivered to as consumer group member."),
    CommandSpec::new("xinfo", -2, Container)
        .acl(&["@slow"])
        .doc("stream", "5.0.0", "Depends on subcommand.", "A container for stream introspection commands.")
        .subs(super::xinfo::XINFO_SUBCOMMANDS),
    CommandSpec::new("xcfgset", -2, Data(super::idmp::xcfgset))
        .flags(&["write", "fast"])
        .keys(1, 1, 1)
        .acl(&["@write", "@stream", "@fast"])
        .doc("stream", "8.6.0", "O(1)", "Sets the IDMP configuration parameters for a stream."),
    CommandSpec::new("xidmprecord", 5, Data(super::idmp::xidmprecord))
        .flags(&["write", "denyoom", "fast"])
        .keys(1, 1, 1)
        .acl(&["@write", "@stream", "@fast"])
        .doc("stream", "8.6.2", "O(1)", "An internal command for setting IDMP metadata on an existing stream message."),
    // STREAM-COMMANDS-END
];

#[cfg(test)]
mod tests {
    use super::*;

    /// The bits computed when a spec is built say what its flag strings say.
    #[test]
    fn flag_bits_match_the_flag_strings() {
        let mut seen = 0;
        for spec in all().iter().chain(all().iter().flat_map(|s| s.subcommands)) {
            let has = |f: &str| spec.flags.contains(&f);
            assert_eq!(spec.no_auth(), has("no_auth"), "{}", spec.full);
            assert_eq!(spec.ok_loading(), has("loading"), "{}", spec.full);
            assert_eq!(spec.is_write(), has("write"), "{}", spec.full);
            assert_eq!(spec.is_readonly(), has("readonly"), "{}", spec.full);
            assert_eq!(spec.no_multi(), has("no_multi"), "{}", spec.full);
            assert_eq!(
                spec.is_transaction_control(),
                matches!(
                    spec.full,
                    "exec" | "discard" | "multi" | "watch" | "quit" | "reset"
                ),
                "{}",
                spec.full
            );
            seen += 1;
        }
        assert!(seen > 50, "only {seen} specs");
        assert!(lookup_raw(b"xadd").is_some_and(|s| s.is_write() && !s.is_readonly()));
        assert!(lookup_raw(b"exec").is_some_and(|s| s.is_transaction_control()));
    }
}
