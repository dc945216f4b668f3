//! ACL users, as Redis's `acl.c`: who may authenticate, with which passwords, and what
//! each user may run and touch (commands, key patterns, channel patterns), plus the ACL
//! log of refusals.
//!
//! The users are node-local configuration, like `requirepass`: they are never written to
//! the data log nor replicated with it (Redis keeps them in `redis.conf` or the `aclfile`).
//!
//! This module holds the state only. What the rules *mean* — command names, categories,
//! key positions, glob matching — is the command layer's (`commands/acl.rs`), which owns the
//! command table; here a command is an index into that table (`CommandId`).
//!
//! Connections hold an `Arc<User>`: a change to a user (ACL SETUSER, ACL LOAD) applies to
//! the connections authenticated as it at once, as Redis's clients point at the user
//! object. The per-command check is on every request's path, so `User` caches in an atomic
//! whether its rules allow everything (the `default` user's `+@all ~* &*`): such a user is
//! never checked further.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock, RwLockReadGuard};

use super::password;

/// The index of a command or subcommand in the command layer's table.
pub type CommandId = usize;

/// A key pattern (`~p`, `%R~p`, `%W~p`, `%RW~p`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPattern {
    /// The glob.
    pub pattern: Bytes,
    /// Reads of matching keys are allowed.
    pub read: bool,
    /// Writes to matching keys are allowed.
    pub write: bool,
}

/// A set of permissions (Redis's `aclSelector`): the user's root one, and any added in
/// parentheses. A command is allowed when one selector allows it whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    /// Every command, including ones added later (`SELECTOR_FLAG_ALLCOMMANDS`); cleared by
    /// any `-command`.
    pub all_commands: bool,
    /// Redis's reserved command bit: set by `+@all`, cleared only by `-@all`; says whether
    /// the rules are described from `+@all` or `-@all`.
    pub future_commands: bool,
    /// Allowed commands, one bit per [`CommandId`]; the bits past its end are
    /// `future_commands` (Redis's `+@all` sets every bit of its fixed-size bitmap).
    pub allowed: Vec<u64>,
    /// Redis's deprecated first-argument rules (`+select|0`): a command whose bit is clear
    /// is still allowed with one of these first arguments (compared in any case).
    pub first_args: Vec<(CommandId, Vec<Bytes>)>,
    /// The command rules in the order given, each command or category once (Redis's
    /// `command_rules`), as ACL LIST shows them after `+@all`/`-@all`.
    pub rules: String,
    /// `~*` / `allkeys`.
    pub all_keys: bool,
    /// Key patterns, in the order added.
    pub keys: Vec<KeyPattern>,
    /// `&*` / `allchannels`.
    pub all_channels: bool,
    /// Channel patterns, in the order added.
    pub channels: Vec<Bytes>,
}

impl Selector {
    /// An empty selector: no commands, keys or channels, except all channels when
    /// `acl-pubsub-default` is `allchannels`.
    pub fn new(all_channels: bool) -> Self {
        Selector {
            all_commands: false,
            future_commands: false,
            allowed: Vec::new(),
            first_args: Vec::new(),
            rules: String::new(),
            all_keys: false,
            keys: Vec::new(),
            all_channels,
            channels: Vec::new(),
        }
    }

    /// Whether the command's bit is set.
    pub fn allows(&self, id: CommandId) -> bool {
        self.all_commands
            || match self.allowed.get(id / 64) {
                Some(w) => w & (1 << (id % 64)) != 0,
                None => self.future_commands,
            }
    }

    /// Sets or clears a command's bit; clearing one ends `all_commands`.
    pub fn set_command(&mut self, id: CommandId, allow: bool) {
        if self.allowed.len() <= id / 64 {
            let fill = if self.future_commands { u64::MAX } else { 0 };
            self.allowed.resize(id / 64 + 1, fill);
        }
        if allow {
            self.allowed[id / 64] |= 1 << (id % 64);
        } else {
            self.allowed[id / 64] &= !(1 << (id % 64));
            self.all_commands = false;
        }
    }

    /// Whether `first` is an allowed first argument of a command whose bit is clear.
    pub fn allows_first_arg(&self, id: CommandId, first: &[u8]) -> bool {
        self.first_args
            .iter()
            .find(|(i, _)| *i == id)
            .is_some_and(|(_, args)| args.iter().any(|a| a.eq_ignore_ascii_case(first)))
    }

    /// `+@all` (`allow`) or `-@all`: every bit, and the rule list starts again.
    pub fn set_all_commands(&mut self, allow: bool) {
        self.all_commands = allow;
        self.future_commands = allow;
        self.allowed.clear();
        self.first_args.clear();
        self.rules.clear();
    }

    /// Whether the selector allows everything, so no request needs checking.
    fn unrestricted(&self) -> bool {
        self.all_commands && self.all_keys && self.all_channels
    }
}

/// A user's flags, passwords and selectors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRules {
    /// `on` (else `off`: no new authentication).
    pub enabled: bool,
    /// `nopass`: any password authenticates.
    pub nopass: bool,
    /// `skip-sanitize-payload` (else `sanitize-payload`; RESTORE payloads, kept for the
    /// description: Rill has no RESTORE).
    pub skip_sanitize: bool,
    /// SHA-256 hashes of the passwords, as 64 hex digits, in the order added.
    pub passwords: Vec<String>,
    /// The root selector first, then the added ones.
    pub selectors: Vec<Selector>,
}

impl UserRules {
    /// A new user: `off`, no passwords, no permissions (Redis's `ACLCreateUser`).
    pub fn new(all_channels: bool) -> Self {
        UserRules {
            enabled: false,
            nopass: false,
            skip_sanitize: false,
            passwords: Vec::new(),
            selectors: vec![Selector::new(all_channels)],
        }
    }

    /// The root selector.
    pub fn root(&mut self) -> &mut Selector {
        if self.selectors.is_empty() {
            self.selectors.push(Selector::new(false));
        }
        &mut self.selectors[0]
    }

    /// Redis's `ACLCheckUserCredentials` for this user: enabled, and `nopass` or one
    /// password whose hash matches (every hash compared in constant time).
    pub fn accepts(&self, pass: &[u8]) -> bool {
        if !self.enabled {
            return false;
        }
        if self.nopass {
            return true;
        }
        let mut ok = false;
        for stored in &self.passwords {
            ok |= password::hash_matches(stored, pass);
        }
        ok
    }
}

/// A user; connections authenticated as it hold it.
#[derive(Debug)]
pub struct User {
    /// The name (no spaces or NULs).
    pub name: Bytes,
    rules: RwLock<UserRules>,
    /// Cache of "the root selector allows everything" (see the module docs).
    unrestricted: AtomicBool,
    /// Cache of "enabled and nopass": for `default`, whether clients start authenticated.
    open: AtomicBool,
}

impl User {
    /// A user with these rules.
    pub fn new(name: Bytes, rules: UserRules) -> Self {
        let user = User {
            name,
            rules: RwLock::new(rules),
            unrestricted: AtomicBool::new(false),
            open: AtomicBool::new(false),
        };
        user.refresh();
        user
    }

    /// The rules, to read.
    pub fn rules(&self) -> RwLockReadGuard<'_, UserRules> {
        self.rules.read()
    }

    /// Replaces the rules (ACL SETUSER applies them all or none).
    pub fn replace(&self, rules: UserRules) {
        *self.rules.write() = rules;
        self.refresh();
    }

    fn refresh(&self) {
        let r = self.rules.read();
        let unrestricted = r.selectors.first().is_some_and(Selector::unrestricted);
        self.unrestricted.store(unrestricted, Ordering::Release);
        self.open.store(r.enabled && r.nopass, Ordering::Release);
    }

    /// True when this user may run anything on any key and channel: the fast path.
    pub fn is_unrestricted(&self) -> bool {
        self.unrestricted.load(Ordering::Acquire)
    }

    /// Enabled with `nopass`.
    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    /// The name, as text for replies and CLIENT LIST.
    pub fn name_text(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }
}

/// Why the ACL refused something (Redis's `ACL_DENIED_*`), as ACL LOG names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyReason {
    /// The command is not allowed.
    Command,
    /// A key is not allowed.
    Key,
    /// A channel is not allowed.
    Channel,
    /// AUTH / HELLO AUTH failed.
    Auth,
}

impl DenyReason {
    /// ACL LOG's `reason`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Command => "command",
            Self::Key => "key",
            Self::Channel => "channel",
            Self::Auth => "auth",
        }
    }
}

/// One ACL LOG entry (Redis's `ACLLogEntry`).
#[derive(Debug, Clone)]
pub struct LogEntry {
    /// How many similar refusals it stands for.
    pub count: u64,
    /// Why.
    pub reason: DenyReason,
    /// `toplevel` or `multi`.
    pub context: &'static str,
    /// The command, key, channel or (for auth) `AUTH`/`HELLO` as sent.
    pub object: Bytes,
    /// The user refused (for auth, the name given).
    pub username: Bytes,
    /// Milliseconds, of the last similar refusal.
    pub updated_ms: u64,
    /// CLIENT INFO of the last client refused.
    pub client_info: String,
    /// Unique, increasing.
    pub entry_id: u64,
    /// Milliseconds, of the first refusal.
    pub created_ms: u64,
}

/// Similar refusals within this many milliseconds share an entry (Redis's
/// `ACL_LOG_GROUPING_MAX_TIME_DELTA`).
const GROUPING_MS: u64 = 60_000;

/// The ACL log, newest first, and the INFO counters of refusals.
#[derive(Debug, Default)]
pub struct AclLog {
    entries: VecDeque<LogEntry>,
    next_id: u64,
    /// `acl_access_denied_auth`, `_cmd`, `_key`, `_channel` of INFO stats.
    pub denied: [u64; 4],
}

impl AclLog {
    /// Redis's `addACLLogEntry`: counts the refusal, then bumps a similar entry among the
    /// newest ten (moving it to the front) or adds one, keeping at most `max_len`.
    pub fn add(&mut self, mut entry: LogEntry, max_len: usize) {
        self.denied[entry.reason as usize] += 1;
        if max_len == 0 {
            self.entries.clear();
            return;
        }
        let similar = self.entries.iter().take(10).position(|e| {
            e.reason == entry.reason
                && e.context == entry.context
                && e.updated_ms.abs_diff(entry.updated_ms) <= GROUPING_MS
                && e.object == entry.object
                && e.username == entry.username
        });
        if let Some(i) = similar {
            if let Some(mut e) = self.entries.remove(i) {
                e.count += 1;
                e.updated_ms = entry.updated_ms;
                e.client_info = entry.client_info;
                self.entries.push_front(e);
            }
            return;
        }
        entry.entry_id = self.next_id;
        self.next_id += 1;
        self.entries.push_front(entry);
        self.entries.truncate(max_len);
    }

    /// The newest `count` entries.
    pub fn newest(&self, count: usize) -> impl Iterator<Item = &LogEntry> {
        self.entries.iter().take(count)
    }

    /// ACL LOG RESET.
    pub fn reset(&mut self) {
        self.entries.clear();
    }
}

/// All users, the `default` one, and the log.
#[derive(Debug)]
pub struct Acl {
    users: RwLock<BTreeMap<Bytes, Arc<User>>>,
    /// The `default` user: new connections start as it, and `requirepass` is its password.
    /// It is never replaced, only changed (ACL LOAD copies into it, as Redis does).
    pub default: Arc<User>,
    /// ACL LOG.
    pub log: Mutex<AclLog>,
}

impl Acl {
    /// The `default` user alone: `on`, all permissions, and `requirepass` as its password
    /// (`nopass` without one), as Redis's `ACLCreateDefaultUser` + `ACLUpdateDefaultUserPassword`.
    pub fn new(requirepass: Option<&str>) -> Self {
        let default = Arc::new(User::new(
            Bytes::from_static(b"default"),
            default_rules(requirepass),
        ));
        let mut users = BTreeMap::new();
        users.insert(default.name.clone(), default.clone());
        Acl {
            users: RwLock::new(users),
            default,
            log: Mutex::new(AclLog::default()),
        }
    }

    /// A user by name.
    pub fn user(&self, name: &[u8]) -> Option<Arc<User>> {
        self.users.read().get(name).cloned()
    }

    /// All users in name order (Redis's rax order: bytewise).
    pub fn users(&self) -> Vec<Arc<User>> {
        self.users.read().values().cloned().collect()
    }

    /// Creates `name` with `rules`, or replaces the rules of the existing user.
    pub fn set_user(&self, name: &[u8], rules: UserRules) {
        let mut users = self.users.write();
        match users.get(name) {
            Some(u) => u.replace(rules),
            None => {
                let name = Bytes::copy_from_slice(name);
                users.insert(name.clone(), Arc::new(User::new(name, rules)));
            }
        }
    }

    /// Removes users; returns the ones that existed (their clients must be closed).
    pub fn delete_users(&self, names: &[Bytes]) -> Vec<Arc<User>> {
        let mut users = self.users.write();
        names.iter().filter_map(|n| users.remove(n)).collect()
    }

    /// Replaces every user at once (ACL LOAD, start-up): users that keep their name keep
    /// their object, so their connections follow the new rules; the removed ones are
    /// returned (their clients must be closed). A set without `default` gives it its
    /// initial rules.
    pub fn replace_all(&self, new: Vec<(Bytes, UserRules)>) -> Vec<Arc<User>> {
        let mut users = self.users.write();
        let mut next = BTreeMap::new();
        for (name, rules) in new {
            let user = match users.get(&name) {
                Some(u) => {
                    u.replace(rules);
                    u.clone()
                }
                None => Arc::new(User::new(name.clone(), rules)),
            };
            next.insert(name, user);
        }
        if !next.contains_key(&self.default.name) {
            self.default.replace(default_rules(None));
            next.insert(self.default.name.clone(), self.default.clone());
        }
        let removed = users
            .iter()
            .filter(|(n, _)| !next.contains_key(*n))
            .map(|(_, u)| u.clone())
            .collect();
        *users = next;
        removed
    }

    /// `requirepass` changed: Redis's `ACLUpdateDefaultUserPassword` (`resetpass` then
    /// `>password`, or `nopass` without one).
    pub fn set_default_password(&self, requirepass: Option<&str>) {
        let mut rules = self.default.rules().clone();
        rules.passwords.clear();
        rules.nopass = false;
        match requirepass.filter(|p| !p.is_empty()) {
            Some(p) => rules.passwords.push(password::hash_password(p.as_bytes())),
            None => rules.nopass = true,
        }
        self.default.replace(rules);
    }
}

/// The rules of a fresh `default` user.
fn default_rules(requirepass: Option<&str>) -> UserRules {
    let mut rules = UserRules::new(true);
    rules.enabled = true;
    let root = rules.root();
    root.set_all_commands(true);
    root.all_keys = true;
    root.all_channels = true;
    match requirepass.filter(|p| !p.is_empty()) {
        Some(p) => rules.passwords.push(password::hash_password(p.as_bytes())),
        None => rules.nopass = true,
    }
    rules
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_user_follows_requirepass_and_is_unrestricted() {
        let acl = Acl::new(None);
        assert!(acl.default.is_open() && acl.default.is_unrestricted());
        acl.set_default_password(Some("pw"));
        assert!(!acl.default.is_open() && acl.default.is_unrestricted());
        assert!(acl.default.rules().accepts(b"pw"));
        assert!(!acl.default.rules().accepts(b"px"));
        acl.set_default_password(None);
        assert!(acl.default.is_open());
    }

    #[test]
    fn log_groups_similar_entries_and_keeps_max_len() {
        let mut log = AclLog::default();
        let entry = |object: &'static str, at: u64| LogEntry {
            count: 1,
            reason: DenyReason::Command,
            context: "toplevel",
            object: Bytes::from_static(object.as_bytes()),
            username: Bytes::from_static(b"u"),
            updated_ms: at,
            client_info: String::new(),
            entry_id: 0,
            created_ms: at,
        };
        log.add(entry("get", 1000), 2);
        log.add(entry("set", 1001), 2);
        log.add(entry("get", 1002), 2);
        let v: Vec<_> = log
            .newest(10)
            .map(|e| (e.object.clone(), e.count, e.entry_id))
            .collect();
        assert_eq!(v, [(Bytes::from("get"), 2, 0), (Bytes::from("set"), 1, 1)]);
        log.add(entry("get", 1002 + GROUPING_MS + 1), 2);
        log.add(entry("del", 1), 2);
        assert_eq!(log.newest(10).count(), 2);
        assert_eq!(log.denied[DenyReason::Command as usize], 5);
    }
}
