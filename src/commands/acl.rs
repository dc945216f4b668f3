//! ACL: what ACL rules mean against the command table, the per-request permission check,
//! AUTH's credential check, and the ACL command (Redis's `acl.c`, 8.6's texts and replies).
//!
//! The users themselves are the execution core's (`core::acl`); here a command is the index
//! of its spec in [`catalog`], built once from the command table in table order (each
//! container followed by its subcommands), the way Redis numbers commands for its bitmaps.
//!
//! Key permissions come from the key specs (`keyspec.rs`), as Redis's `ACLSelectorCheckCmd`:
//! a key found by a spec flagged `access` needs a read pattern, one flagged `insert`,
//! `update` or `delete` a write pattern, one with neither (`RO` alone, as TYPE) any
//! pattern; `not_key` specs (SPUBLISH's shard channel) are not keys. Channels are
//! PUBLISH/SPUBLISH's first argument and the (S|P)SUBSCRIBE arguments; a PSUBSCRIBE pattern
//! must equal an allowed pattern literally.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use super::args::{parse_i64, Args};
use super::error::CommandError;
use super::session::Session;
use super::table::{self, CommandSpec, Handler};
use super::{glob, keyspec, Outcome};
use crate::core::acl::{CommandId, DenyReason, KeyPattern, LogEntry, Selector, User, UserRules};
use crate::core::{now_ms, password, Shared};
use crate::protocol::Reply;

type R = Result<Outcome, CommandError>;

/// Redis's command categories, in ACL CAT order.
pub const CATEGORIES: [&str; 21] = [
    "keyspace",
    "read",
    "write",
    "set",
    "sortedset",
    "list",
    "hash",
    "string",
    "bitmap",
    "hyperloglog",
    "geo",
    "stream",
    "pubsub",
    "admin",
    "fast",
    "slow",
    "blocking",
    "dangerous",
    "connection",
    "transaction",
    "scripting",
];

/// The commands numbered for ACL bitmaps.
struct Catalog {
    specs: Vec<&'static CommandSpec>,
    ids: HashMap<&'static str, CommandId>,
    categories: Vec<u64>,
    children: Vec<Vec<CommandId>>,
    parent: Vec<Option<CommandId>>,
}

fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| {
        let mut c = Catalog {
            specs: Vec::new(),
            ids: HashMap::new(),
            categories: Vec::new(),
            children: Vec::new(),
            parent: Vec::new(),
        };
        let add = |c: &mut Catalog, spec: &'static CommandSpec, parent: Option<CommandId>| {
            let id = c.specs.len();
            c.specs.push(spec);
            c.ids.insert(spec.full, id);
            let mut mask = 0u64;
            for cat in spec.acl {
                if let Some(bit) = category_bit(cat.trim_start_matches('@')) {
                    mask |= bit;
                }
            }
            c.categories.push(mask);
            c.children.push(Vec::new());
            c.parent.push(parent);
            id
        };
        for spec in table::all() {
            let id = add(&mut c, spec, None);
            for sub in spec.subcommands {
                let sub_id = add(&mut c, sub, Some(id));
                c.children[id].push(sub_id);
            }
        }
        c
    })
}

/// The bit of a category, by name in any case.
fn category_bit(name: &str) -> Option<u64> {
    CATEGORIES
        .iter()
        .position(|c| c.eq_ignore_ascii_case(name))
        .map(|i| 1u64 << i)
}

/// A command or `container|sub` by name, in any case (Redis's `ACLLookupCommand`).
fn lookup(name: &[u8]) -> Option<CommandId> {
    let name = std::str::from_utf8(name).ok()?.to_ascii_lowercase();
    catalog().ids.get(name.as_str()).copied()
}

// ---------------------------------------------------------------------------------------
// Rules
// ---------------------------------------------------------------------------------------

use crate::core::error::{AclDenial, AclFileError, AclRuleError as RuleError};

/// Redis's `ACLStringHasSpaces`: any C `isspace` character or NUL.
fn has_spaces(s: &[u8]) -> bool {
    s.iter()
        .any(|&c| matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c | 0))
}

/// Whether `acl-pubsub-default` gives new users every channel.
fn pubsub_all(sh: &Shared) -> bool {
    sh.config.read().acl_pubsub_default_all
}

/// Redis's `ACLUpdateCommandRules`: drop earlier rules for the same command (and its
/// subcommands), then append this one.
fn update_rules(sel: &mut Selector, rule: &str, allow: bool) {
    let rule = rule.to_ascii_lowercase();
    let kept: Vec<&str> = sel
        .rules
        .split(' ')
        .filter(|r| !r.is_empty())
        .filter(|r| {
            let name = &r[1..];
            !(name == rule
                || (name.len() > rule.len()
                    && name.starts_with(&rule)
                    && name.as_bytes()[rule.len()] == b'|'))
        })
        .collect();
    let mut rules = kept.join(" ");
    if !rules.is_empty() {
        rules.push(' ');
    }
    rules.push(if allow { '+' } else { '-' });
    rules.push_str(&rule);
    sel.rules = rules;
}

/// Redis's `ACLChangeSelectorPerm`: a command and all its subcommands (and the command's
/// first-argument rules go).
fn change_command(sel: &mut Selector, id: CommandId, allow: bool) {
    sel.set_command(id, allow);
    sel.first_args.retain(|(i, _)| *i != id);
    for &sub in &catalog().children[id] {
        sel.set_command(sub, allow);
    }
}

/// Redis's `ACLSetSelector`.
fn apply_selector_op(sel: &mut Selector, op: &[u8]) -> Result<(), RuleError> {
    let is = |word: &str| op.eq_ignore_ascii_case(word.as_bytes());
    if op.is_empty() {
        // An empty word inside a selector's parentheses.
        return Err(RuleError::Syntax);
    }
    if is("allkeys") || op == b"~*" {
        sel.all_keys = true;
        sel.keys.clear();
    } else if is("resetkeys") {
        sel.all_keys = false;
        sel.keys.clear();
    } else if is("allchannels") || op == b"&*" {
        sel.all_channels = true;
        sel.channels.clear();
    } else if is("resetchannels") {
        sel.all_channels = false;
        sel.channels.clear();
    } else if is("allcommands") || is("+@all") {
        sel.set_all_commands(true);
    } else if is("nocommands") || is("-@all") {
        sel.set_all_commands(false);
    } else if op[0] == b'~' || op[0] == b'%' {
        if sel.all_keys {
            return Err(RuleError::AfterAllKeys);
        }
        let (mut read, mut write) = (false, false);
        let mut offset = 1;
        if op[0] == b'%' {
            loop {
                let Some(&c) = op.get(offset) else {
                    // `%R` without `~` is Redis's pattern "" for reads; a bare `%` is refused
                    // (Redis would store a pattern with no access at all).
                    if read || write {
                        break;
                    }
                    return Err(RuleError::Syntax);
                };
                if c.eq_ignore_ascii_case(&b'r') && !read {
                    read = true;
                } else if c.eq_ignore_ascii_case(&b'w') && !write {
                    write = true;
                } else if c == b'~' && (read || write) {
                    offset += 1;
                    break;
                } else {
                    return Err(RuleError::Syntax);
                }
                offset += 1;
            }
        } else {
            (read, write) = (true, true);
        }
        let pattern = &op[offset..];
        if has_spaces(pattern) {
            return Err(RuleError::Syntax);
        }
        match sel.keys.iter_mut().find(|k| k.pattern == pattern) {
            Some(k) => {
                k.read |= read;
                k.write |= write;
            }
            None => sel.keys.push(KeyPattern {
                pattern: Bytes::copy_from_slice(pattern),
                read,
                write,
            }),
        }
        sel.all_keys = false;
    } else if op[0] == b'&' {
        if sel.all_channels {
            return Err(RuleError::AfterAllChannels);
        }
        let pattern = &op[1..];
        if has_spaces(pattern) {
            return Err(RuleError::Syntax);
        }
        if !sel.channels.iter().any(|c| c == pattern) {
            sel.channels.push(Bytes::copy_from_slice(pattern));
        }
        sel.all_channels = false;
    } else if (op[0] == b'+' || op[0] == b'-') && op.get(1) == Some(&b'@') {
        let allow = op[0] == b'+';
        let name = std::str::from_utf8(&op[2..]).map_err(|_| RuleError::UnknownName)?;
        let bit = category_bit(name).ok_or(RuleError::UnknownName)?;
        update_rules(sel, &format!("@{name}"), allow);
        let cat = catalog();
        for id in 0..cat.specs.len() {
            if cat.categories[id] & bit != 0 {
                change_command(sel, id, allow);
            }
        }
    } else if op[0] == b'+' {
        let name = &op[1..];
        match name.iter().rposition(|&c| c == b'|') {
            None => {
                let id = lookup(name).ok_or(RuleError::UnknownName)?;
                change_command(sel, id, true);
                update_rules(sel, catalog().specs[id].full, true);
            }
            Some(bar) => {
                let id = lookup(&name[..bar]).ok_or(RuleError::UnknownName)?;
                if catalog().parent[id].is_some() {
                    return Err(RuleError::SubcommandFirstArg);
                }
                if bar + 1 == name.len() {
                    return Err(RuleError::Syntax);
                }
                if catalog().children[id].is_empty() {
                    // Redis's deprecated first-argument rule (`+select|0`): allowed with
                    // that first argument only.
                    let first = Bytes::copy_from_slice(&name[bar + 1..]);
                    match sel.first_args.iter_mut().find(|(i, _)| *i == id) {
                        Some((_, args)) => {
                            if !args.iter().any(|a| a.eq_ignore_ascii_case(&first)) {
                                args.push(first);
                            }
                        }
                        None => sel.first_args.push((id, vec![first])),
                    }
                } else {
                    let sub = lookup(name).ok_or(RuleError::UnknownName)?;
                    change_command(sel, sub, true);
                }
                update_rules(sel, &String::from_utf8_lossy(name), true);
            }
        }
    } else if op[0] == b'-' {
        let id = lookup(&op[1..]).ok_or(RuleError::UnknownName)?;
        change_command(sel, id, false);
        update_rules(sel, catalog().specs[id].full, false);
    } else {
        return Err(RuleError::Syntax);
    }
    Ok(())
}

/// Redis's `ACLSetUser`: one modifier (already merged when it is a parenthesised selector).
fn apply_user_op(rules: &mut UserRules, op: &[u8], all_channels: bool) -> Result<(), RuleError> {
    let is = |word: &str| op.eq_ignore_ascii_case(word.as_bytes());
    if op.is_empty() {
        return Ok(());
    }
    if is("on") {
        rules.enabled = true;
    } else if is("off") {
        rules.enabled = false;
    } else if is("skip-sanitize-payload") {
        rules.skip_sanitize = true;
    } else if is("sanitize-payload") {
        rules.skip_sanitize = false;
    } else if is("nopass") {
        rules.nopass = true;
        rules.passwords.clear();
    } else if is("resetpass") {
        rules.nopass = false;
        rules.passwords.clear();
    } else if op[0] == b'>' || op[0] == b'#' {
        let hash = if op[0] == b'>' {
            password::hash_password(&op[1..])
        } else if password::is_password_hash(&op[1..]) {
            String::from_utf8_lossy(&op[1..]).into_owned()
        } else {
            return Err(RuleError::BadHash);
        };
        if !rules.passwords.contains(&hash) {
            rules.passwords.push(hash);
        }
        rules.nopass = false;
    } else if op[0] == b'<' || op[0] == b'!' {
        let hash = if op[0] == b'<' {
            password::hash_password(&op[1..])
        } else if password::is_password_hash(&op[1..]) {
            String::from_utf8_lossy(&op[1..]).into_owned()
        } else {
            return Err(RuleError::BadHash);
        };
        let before = rules.passwords.len();
        rules.passwords.retain(|p| *p != hash);
        if rules.passwords.len() == before {
            return Err(RuleError::NoSuchPassword);
        }
    } else if op[0] == b'(' && op[op.len() - 1] == b')' {
        let inner = String::from_utf8_lossy(&op[1..op.len() - 1]).into_owned();
        let words = crate::config::syntax::split_args(&inner).ok_or(RuleError::Syntax)?;
        let mut sel = Selector::new(all_channels);
        for w in words {
            apply_selector_op(&mut sel, w.as_bytes())?;
        }
        rules.selectors.push(sel);
    } else if is("clearselectors") {
        rules.selectors.truncate(1);
    } else if is("reset") {
        rules.nopass = false;
        rules.passwords.clear();
        let root = rules.root();
        root.all_keys = false;
        root.keys.clear();
        root.all_channels = all_channels;
        root.channels.clear();
        root.set_all_commands(false);
        rules.enabled = false;
        rules.skip_sanitize = false;
        rules.selectors.truncate(1);
    } else {
        apply_selector_op(rules.root(), op)?;
    }
    Ok(())
}

/// Redis's `ACLMergeSelectorArguments`: joins `(a b c)` split over several arguments; the
/// error names the argument that opened an unclosed one.
fn merge_selectors(ops: &[Bytes]) -> Result<Vec<Vec<u8>>, CommandError> {
    let mut out = Vec::with_capacity(ops.len());
    let mut open: Option<(usize, Vec<u8>)> = None;
    for (i, op) in ops.iter().enumerate() {
        if let Some((_, acc)) = open.as_mut() {
            acc.push(b' ');
            acc.extend_from_slice(op);
            if op.last() == Some(&b')') {
                if let Some((_, done)) = open.take() {
                    out.push(done);
                }
            }
            continue;
        }
        if op.first() == Some(&b'(') && op.last() != Some(&b')') {
            open = Some((i, op.to_vec()));
            continue;
        }
        out.push(op.to_vec());
    }
    if let Some((i, _)) = open {
        return Err(CommandError::AclUnmatchedParen(
            String::from_utf8_lossy(&ops[i]).into_owned(),
        ));
    }
    Ok(out)
}

/// Redis's `ACLStringSetUser`: applies every modifier to a copy of the user's rules (a new
/// user's when it does not exist), all or nothing.
fn set_user_rules(
    base: Option<UserRules>,
    ops: &[Bytes],
    all_channels: bool,
) -> Result<UserRules, CommandError> {
    let merged = merge_selectors(ops)?;
    let mut rules = base.unwrap_or_else(|| UserRules::new(all_channels));
    for op in &merged {
        apply_user_op(&mut rules, op, all_channels).map_err(|e| CommandError::AclModifier {
            op: String::from_utf8_lossy(op).into_owned(),
            reason: e,
        })?;
    }
    Ok(rules)
}

// ---------------------------------------------------------------------------------------
// Descriptions
// ---------------------------------------------------------------------------------------

fn pattern_text(k: &KeyPattern) -> String {
    let prefix = match (k.read, k.write) {
        (true, true) => "~",
        (true, false) => "%R~",
        _ => "%W~",
    };
    format!("{prefix}{}", String::from_utf8_lossy(&k.pattern))
}

/// Redis's `ACLDescribeSelectorCommandRules`.
fn describe_commands(sel: &Selector) -> String {
    let start = if sel.future_commands {
        "+@all"
    } else {
        "-@all"
    };
    if sel.rules.is_empty() {
        start.to_string()
    } else {
        format!("{start} {}", sel.rules)
    }
}

/// Redis's `ACLDescribeSelector`.
fn describe_selector(sel: &Selector) -> String {
    let mut out = String::new();
    if sel.all_keys {
        out.push_str("~* ");
    } else {
        for k in &sel.keys {
            out.push_str(&pattern_text(k));
            out.push(' ');
        }
    }
    if sel.all_channels {
        out.push_str("&* ");
    } else {
        out.push_str("resetchannels ");
        for c in &sel.channels {
            out.push('&');
            out.push_str(&String::from_utf8_lossy(c));
            out.push(' ');
        }
    }
    out.push_str(&describe_commands(sel));
    out
}

/// Redis's `ACLDescribeUser`: the rules as ACL LIST and the ACL file show them.
fn describe_user(rules: &UserRules) -> String {
    let mut out = String::new();
    out.push_str(if rules.enabled { "on " } else { "off " });
    if rules.nopass {
        out.push_str("nopass ");
    }
    out.push_str(if rules.skip_sanitize {
        "skip-sanitize-payload "
    } else {
        "sanitize-payload "
    });
    for p in &rules.passwords {
        out.push('#');
        out.push_str(p);
        out.push(' ');
    }
    for (i, sel) in rules.selectors.iter().enumerate() {
        if i == 0 {
            out.push_str(&describe_selector(sel));
        } else {
            out.push_str(&format!(" ({})", describe_selector(sel)));
        }
    }
    out
}

/// Every user as a `user <name> <rules>` line, in name order (ACL LIST, ACL SAVE, CONFIG
/// REWRITE).
pub fn user_lines(sh: &Shared) -> Vec<String> {
    sh.acl.users().iter().map(|u| user_line(u)).collect()
}

/// `user <name> <rules>`, one line of ACL LIST and of the ACL file.
fn user_line(u: &User) -> String {
    format!("user {} {}", u.name_text(), describe_user(&u.rules()))
}

fn selector_fields(sel: &Selector) -> Vec<(Reply, Reply)> {
    let keys = if sel.all_keys {
        "~*".to_string()
    } else {
        sel.keys
            .iter()
            .map(pattern_text)
            .collect::<Vec<_>>()
            .join(" ")
    };
    let channels = if sel.all_channels {
        "&*".to_string()
    } else {
        sel.channels
            .iter()
            .map(|c| format!("&{}", String::from_utf8_lossy(c)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    vec![
        (Reply::bulk("commands"), Reply::bulk(describe_commands(sel))),
        (Reply::bulk("keys"), Reply::bulk(keys)),
        (Reply::bulk("channels"), Reply::bulk(channels)),
    ]
}

// ---------------------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------------------

/// A refusal: why, and the argument (0 = the command) that caused it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Denied {
    reason: DenyReason,
    pos: usize,
}

/// Which arguments of a Pub/Sub command are channels: (position, is a pattern).
fn channels_of(spec: &CommandSpec, argv: &[Bytes]) -> Vec<(usize, bool)> {
    match spec.full {
        "publish" | "spublish" if argv.len() > 1 => vec![(1, false)],
        "subscribe" | "ssubscribe" => (1..argv.len()).map(|i| (i, false)).collect(),
        "psubscribe" => (1..argv.len()).map(|i| (i, true)).collect(),
        _ => Vec::new(),
    }
}

fn key_allowed(sel: &Selector, key: &[u8], flags: &[&str]) -> bool {
    if sel.all_keys {
        return true;
    }
    let read = flags.contains(&"access");
    let write = flags
        .iter()
        .any(|f| matches!(*f, "insert" | "update" | "delete"));
    sel.keys.iter().any(|k| {
        (!read || k.read) && (!write || k.write) && glob::glob_match(&k.pattern, key, false)
    })
}

fn channel_allowed(sel: &Selector, channel: &[u8], is_pattern: bool) -> bool {
    sel.all_channels
        || sel.channels.iter().any(|p| {
            if is_pattern {
                p == channel
            } else {
                glob::glob_match(p, channel, false)
            }
        })
}

/// Redis's `ACLSelectorCheckCmd`.
fn check_selector(
    sel: &Selector,
    id: CommandId,
    spec: &CommandSpec,
    argv: &[Bytes],
) -> Result<(), Denied> {
    if !sel.all_commands
        && !spec.no_auth()
        && !sel.allows(id)
        && !argv
            .get(1)
            .is_some_and(|first| sel.allows_first_arg(id, first))
    {
        return Err(Denied {
            reason: DenyReason::Command,
            pos: 0,
        });
    }
    if !sel.all_keys {
        for (pos, ks) in keyspec::keys_with_specs(spec, argv) {
            if ks.flags.contains(&"not_key") {
                continue;
            }
            if !key_allowed(sel, &argv[pos], ks.flags) {
                return Err(Denied {
                    reason: DenyReason::Key,
                    pos,
                });
            }
        }
    }
    if !sel.all_channels {
        for (pos, is_pattern) in channels_of(spec, argv) {
            if !channel_allowed(sel, &argv[pos], is_pattern) {
                return Err(Denied {
                    reason: DenyReason::Channel,
                    pos,
                });
            }
        }
    }
    Ok(())
}

/// Redis's `ACLCheckAllUserCommandPerm`: allowed when one selector allows it; otherwise the
/// refusal reported is the command if no selector got past it, else the key or channel
/// refusal with the highest reason, then the latest argument.
pub fn check(rules: &UserRules, spec: &CommandSpec, argv: &[Bytes]) -> Result<(), Denied> {
    let Some(&id) = catalog().ids.get(spec.full) else {
        // Every spec of the table is in the catalog; one that is not is refused, never
        // allowed unchecked.
        return Err(Denied {
            reason: DenyReason::Command,
            pos: 0,
        });
    };
    let mut worst = Denied {
        reason: DenyReason::Command,
        pos: 0,
    };
    let rank = |r: DenyReason| match r {
        DenyReason::Command => 0,
        DenyReason::Key => 1,
        DenyReason::Channel => 2,
        DenyReason::Auth => 3,
    };
    for sel in &rules.selectors {
        match check_selector(sel, id, spec, argv) {
            Ok(()) => return Ok(()),
            Err(d) => {
                if rank(d.reason) > rank(worst.reason)
                    || (d.reason == worst.reason && d.pos > worst.pos)
                {
                    worst = d;
                }
            }
        }
    }
    Err(worst)
}

/// Redis's `getAclErrorMessage`.
fn deny_message(
    d: Denied,
    user: &User,
    spec: &CommandSpec,
    argv: &[Bytes],
    verbose: bool,
) -> AclDenial {
    let value =
        || String::from_utf8_lossy(argv.get(d.pos).map_or(&[][..], |b| &b[..])).into_owned();
    match d.reason {
        DenyReason::Command | DenyReason::Auth => AclDenial::Command {
            user: user.name_text(),
            command: spec.full,
        },
        DenyReason::Key if verbose => AclDenial::VerboseKey {
            user: user.name_text(),
            key: value(),
        },
        DenyReason::Key => AclDenial::Key,
        DenyReason::Channel if verbose => AclDenial::VerboseChannel {
            user: user.name_text(),
            channel: value(),
        },
        DenyReason::Channel => AclDenial::Channel,
    }
}

/// The user a session runs as.
fn user_of(s: &Session, sh: &Shared) -> Arc<User> {
    s.user.clone().unwrap_or_else(|| sh.acl.default.clone())
}

/// Adds an ACL LOG entry for a refusal on this session.
fn log_denied(
    s: &Session,
    sh: &Shared,
    reason: DenyReason,
    object: Bytes,
    username: Bytes,
    multi: bool,
) {
    let now = now_ms();
    let entry = LogEntry {
        count: 1,
        reason,
        context: if multi { "multi" } else { "toplevel" },
        object,
        username,
        updated_ms: now,
        client_info: s.info.describe(false),
        entry_id: 0,
        created_ms: now,
    };
    let max = sh.config.read().acllog_max_len;
    sh.acl
        .log
        .lock()
        .add(entry, usize::try_from(max).unwrap_or(usize::MAX));
}

/// The per-request check (Redis's `processCommand` after authentication): nothing to do
/// for a user whose rules allow everything, which is the `default` user unless changed.
#[inline]
pub fn authorize(
    s: &Session,
    sh: &Shared,
    spec: &'static CommandSpec,
    argv: &[Bytes],
) -> Result<(), CommandError> {
    let unrestricted = match &s.user {
        Some(u) => u.is_unrestricted(),
        None => sh.acl.default.is_unrestricted(),
    };
    if unrestricted {
        return Ok(());
    }
    let user = user_of(s, sh);
    let denied = check(&user.rules(), spec, argv);
    match denied {
        Ok(()) => Ok(()),
        Err(d) => {
            let object = match d.reason {
                DenyReason::Command | DenyReason::Auth => Bytes::from_static(spec.full.as_bytes()),
                _ => argv.get(d.pos).cloned().unwrap_or_default(),
            };
            log_denied(
                s,
                sh,
                d.reason,
                object,
                user.name.clone(),
                s.multi.is_some(),
            );
            Err(CommandError::NoPerm(deny_message(
                d, &user, spec, argv, false,
            )))
        }
    }
}

/// EXEC's check of each queued command, in case the rules changed since it was queued.
pub fn authorize_at_exec(
    s: &Session,
    sh: &Shared,
    spec: &'static CommandSpec,
    argv: &[Bytes],
) -> Result<(), CommandError> {
    let user = user_of(s, sh);
    if user.is_unrestricted() {
        return Ok(());
    }
    let denied = check(&user.rules(), spec, argv);
    match denied {
        Ok(()) => Ok(()),
        Err(d) => {
            let (object, reason) = match d.reason {
                DenyReason::Command | DenyReason::Auth => (
                    Bytes::from_static(spec.full.as_bytes()),
                    "no permission to execute the command or subcommand",
                ),
                DenyReason::Key => (
                    argv.get(d.pos).cloned().unwrap_or_default(),
                    "no permission to touch the specified keys",
                ),
                DenyReason::Channel => (
                    argv.get(d.pos).cloned().unwrap_or_default(),
                    "no permission to access one of the channels used as arguments",
                ),
            };
            log_denied(s, sh, d.reason, object, user.name.clone(), true);
            Err(CommandError::NoPermAtExec(reason))
        }
    }
}

/// AUTH and HELLO AUTH (Redis's `checkPasswordBasedAuth`): on success the session runs as
/// the user; on failure an ACL LOG entry names the user given and WRONGPASS is answered.
pub fn authenticate(
    s: &mut Session,
    sh: &Shared,
    object: Bytes,
    username: Option<&[u8]>,
    pass: &[u8],
) -> Result<(), CommandError> {
    let user = match username {
        None => Some(sh.acl.default.clone()),
        Some(name) => sh.acl.user(name),
    };
    if let Some(user) = user.filter(|u| u.rules().accepts(pass)) {
        s.authenticated = true;
        *s.info.user.lock() = user.name.clone();
        s.user = Some(user);
        return Ok(());
    }
    let username = Bytes::copy_from_slice(username.unwrap_or(b"default"));
    log_denied(s, sh, DenyReason::Auth, object, username, s.multi.is_some());
    Err(CommandError::WrongPass)
}

/// Closes the connections authenticated as these users (deleted, or gone after ACL LOAD),
/// as Redis's `deauthenticateAndCloseClient`.
fn close_clients_of(s: &mut Session, sh: &Shared, users: &[Arc<User>]) {
    if users.is_empty() {
        return;
    }
    for c in sh.clients.snapshot() {
        let name = c.user.lock().clone();
        if users.iter().any(|u| u.name == name) {
            c.kill();
            if c.id == s.id {
                s.close_after_reply = true;
            }
        }
    }
}

/// Redis's `ACLKillPubsubClientsIfNeeded`: when a user's channel rules no longer cover
/// what they did, its subscribers with a subscription outside the new rules are closed.
fn close_revoked_subscribers(
    s: &mut Session,
    sh: &Shared,
    name: &[u8],
    old: &UserRules,
    new: &UserRules,
) {
    if sh.pubsub.is_empty() || new.selectors.iter().any(|sel| sel.all_channels) {
        return;
    }
    let upcoming: Vec<&Bytes> = new.selectors.iter().flat_map(|sel| &sel.channels).collect();
    let superset = old
        .selectors
        .iter()
        .all(|sel| !sel.all_channels && sel.channels.iter().all(|c| upcoming.contains(&c)));
    if superset {
        return;
    }
    let allowed = |channel: &[u8], is_pattern: bool| {
        upcoming.iter().any(|p| {
            if is_pattern {
                &p[..] == channel
            } else {
                glob::glob_match(p, channel, false)
            }
        })
    };
    for c in sh.clients.snapshot() {
        if !c.is_pubsub() || &c.user.lock()[..] != name {
            continue;
        }
        let revoked = sh
            .pubsub
            .subscriptions_of(c.id)
            .iter()
            .any(|(kind, channel)| !allowed(channel, *kind == crate::core::pubsub::Kind::Pattern));
        if revoked {
            c.kill();
            if c.id == s.id {
                s.close_after_reply = true;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// ACL file and `user` directives
// ---------------------------------------------------------------------------------------

/// Parses ACL file text as Redis's `ACLLoadFromFile`: each non-blank line is split on single
/// spaces (no quoting, no comments) and must be `user <name> <rules…>`; every error is
/// collected, with the file name and line, in Redis's words.
fn parse_acl_text(
    text: &str,
    file: &str,
    pubsub_all: bool,
) -> Result<Vec<(Bytes, UserRules)>, String> {
    let mut users: Vec<(Bytes, UserRules)> = Vec::new();
    let mut errors = String::new();
    for (i, line) in text.split('\n').enumerate() {
        let linenum = i + 1;
        let line = line.trim_matches(|c| matches!(c, ' ' | '\t' | '\r' | '\n'));
        if line.is_empty() {
            continue;
        }
        let words: Vec<&str> = line.split(' ').collect();
        let file = file.to_string();
        let line = linenum;
        let mut report = |e: AclFileError| errors.push_str(&e.to_string());
        if words[0] != "user" || words.len() < 2 {
            report(AclFileError::NotAUser { file, line });
            continue;
        }
        if has_spaces(words[1].as_bytes()) {
            let name = words[1].to_string();
            report(AclFileError::BadName { file, line, name });
            continue;
        }
        let name = Bytes::copy_from_slice(words[1].as_bytes());
        if users.iter().any(|(n, _)| *n == name) {
            let name = words[1].to_string();
            report(AclFileError::Duplicate { name, line });
            continue;
        }
        let ops: Vec<Bytes> = words[2..]
            .iter()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect();
        let mut rules = UserRules::new(pubsub_all);
        match merge_selectors(&ops) {
            Err(_) => report(AclFileError::UnmatchedParen { file, line }),
            Ok(merged) => {
                let mut syntax_error = false;
                for op in &merged {
                    let op: &[u8] = {
                        let mut o = &op[..];
                        while let [rest @ .., b'\t' | b'\r' | b'\n'] = o {
                            o = rest;
                        }
                        while let [b'\t' | b'\r' | b'\n', rest @ ..] = o {
                            o = rest;
                        }
                        o
                    };
                    match apply_user_op(&mut rules, op, pubsub_all) {
                        Ok(()) => {}
                        // Unknown names are all listed (they are not secret); of the other
                        // errors only the first, as later ones may follow from it.
                        Err(RuleError::UnknownName) => report(AclFileError::UnknownName {
                            file: file.clone(),
                            line,
                            op: String::from_utf8_lossy(op).into_owned(),
                            reason: RuleError::UnknownName,
                        }),
                        Err(reason) if !syntax_error => {
                            report(AclFileError::Rule {
                                file: file.clone(),
                                line,
                                reason,
                            });
                            syntax_error = true;
                        }
                        Err(_) => {}
                    }
                }
            }
        }
        users.push((name, rules));
    }
    if errors.is_empty() {
        Ok(users)
    } else {
        errors.push_str(AclFileError::NOTHING_CHANGED);
        Err(errors)
    }
}

/// Loads `path` into the ACL (ACL LOAD, start-up). Returns the users removed.
fn load_file(sh: &Shared, path: &std::path::Path) -> Result<Vec<Arc<User>>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        AclFileError::Open {
            file: path.display().to_string(),
            reason: io_reason(&e),
        }
        .to_string()
    })?;
    let users = parse_acl_text(&text, &path.display().to_string(), pubsub_all(sh))?;
    Ok(sh.acl.replace_all(users))
}

/// `strerror`'s text for the usual cases.
fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "No such file or directory".to_string(),
        std::io::ErrorKind::PermissionDenied => "Permission denied".to_string(),
        _ => e.to_string(),
    }
}

/// Writes every user to `path` atomically (temporary file, fsync, rename, directory fsync),
/// as Redis's `ACLSaveToFile`.
fn save_file(sh: &Shared, path: &std::path::Path) -> std::io::Result<()> {
    use std::io::Write;
    let mut text = String::new();
    for line in user_lines(sh) {
        text.push_str(&line);
        text.push('\n');
    }
    let tmp = path.with_file_name(format!(
        "{}.tmp-{}-{}",
        path.file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        std::process::id(),
        now_ms()
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Start-up (Redis's `ACLLoadUsersAtStartup`): the `user` directives of the configuration,
/// or the `aclfile`, never both.
///
/// # Errors
/// Redis's reason, for the start-up failure message.
pub fn load_at_startup(sh: &Shared) -> Result<(), String> {
    let (users, aclfile) = {
        let c = sh.config.read();
        (c.users.clone(), c.aclfile.clone())
    };
    if aclfile.is_some() && !users.is_empty() {
        return Err(AclFileError::BothSources.to_string());
    }
    let all = pubsub_all(sh);
    if !users.is_empty() {
        // Redis's ACLLoadConfiguredUsers: each `user` line creates its user (`default`,
        // which exists, is reset first); a name given twice is refused.
        let mut loaded: Vec<(Bytes, UserRules)> = sh
            .acl
            .users()
            .iter()
            .map(|u| (u.name.clone(), u.rules().clone()))
            .collect();
        let mut declared: Vec<Bytes> = Vec::new();
        for words in &users {
            let Some((name, ops)) = words.split_first() else {
                continue;
            };
            let name = Bytes::from(name.clone().into_bytes());
            if has_spaces(&name) {
                return Err(AclFileError::SpacesInName.to_string());
            }
            if declared.contains(&name) {
                return Err(AclFileError::Declaration {
                    op: String::from_utf8_lossy(&name).into_owned(),
                    reason: RuleError::Duplicate,
                }
                .to_string());
            }
            declared.push(name.clone());
            let ops: Vec<Bytes> = ops
                .iter()
                .map(|w| Bytes::from(w.clone().into_bytes()))
                .collect();
            let rules = set_user_rules(None, &ops, all).map_err(|e| match e {
                CommandError::AclModifier {
                    op,
                    reason: RuleError::UnknownName,
                } => AclFileError::LoadingRule {
                    op,
                    user: String::from_utf8_lossy(&name).into_owned(),
                    reason: RuleError::UnknownName,
                }
                .to_string(),
                CommandError::AclModifier { op, reason } => {
                    AclFileError::Declaration { op, reason }.to_string()
                }
                other => other.to_string(),
            })?;
            match loaded.iter().position(|(n, _)| *n == name) {
                Some(i) => loaded[i].1 = rules,
                None => loaded.push((name, rules)),
            }
        }
        sh.acl.replace_all(loaded);
    }
    if let Some(path) = aclfile {
        load_file(sh, &path)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The ACL command
// ---------------------------------------------------------------------------------------

/// ACL SETUSER
///
/// # Format
/// `ACL SETUSER username [rule [rule ...]]`
///
/// # Returns
/// `+OK`; the rules apply all or none.
fn setuser(s: &mut Session, sh: &Shared, a: &mut Args) -> R {
    let name = a.next_bytes()?;
    if has_spaces(&name) {
        return Err(CommandError::AclBadUsername);
    }
    let ops = a.rest();
    let old = sh.acl.user(&name).map(|u| u.rules().clone());
    let rules = set_user_rules(old.clone(), &ops, pubsub_all(sh))?;
    if let Some(old) = &old {
        close_revoked_subscribers(s, sh, &name, old, &rules);
    }
    sh.acl.set_user(&name, rules);
    Ok(Reply::Ok.into())
}

/// ACL DELUSER
///
/// # Format
/// `ACL DELUSER username [username ...]`
///
/// # Returns
/// The number of users deleted; their connections are closed.
fn deluser(s: &mut Session, sh: &Shared, a: &mut Args) -> R {
    let names = a.rest();
    if names.iter().any(|n| &n[..] == b"default") {
        return Err(CommandError::AclDeleteDefault);
    }
    let removed = sh.acl.delete_users(&names);
    close_clients_of(s, sh, &removed);
    Ok(Reply::Int(removed.len() as i64).into())
}

/// ACL GETUSER
///
/// # Format
/// `ACL GETUSER username`
///
/// # Returns
/// A map of flags, passwords (hashes), commands, keys, channels and selectors; nil for an
/// unknown user.
fn getuser(_s: &mut Session, sh: &Shared, a: &mut Args) -> R {
    let name = a.next_bytes()?;
    let Some(user) = sh.acl.user(&name) else {
        return Ok(Reply::Nil.into());
    };
    let rules = user.rules();
    let mut flags = vec![Reply::bulk(if rules.enabled { "on" } else { "off" })];
    if rules.nopass {
        flags.push(Reply::bulk("nopass"));
    }
    flags.push(Reply::bulk(if rules.skip_sanitize {
        "skip-sanitize-payload"
    } else {
        "sanitize-payload"
    }));
    let mut fields = vec![
        (Reply::bulk("flags"), Reply::Set(flags)),
        (
            Reply::bulk("passwords"),
            Reply::Array(
                rules
                    .passwords
                    .iter()
                    .map(|p| Reply::bulk(p.clone()))
                    .collect(),
            ),
        ),
    ];
    if let Some(root) = rules.selectors.first() {
        fields.extend(selector_fields(root));
    }
    fields.push((
        Reply::bulk("selectors"),
        Reply::Array(
            rules
                .selectors
                .iter()
                .skip(1)
                .map(|sel| Reply::Map(selector_fields(sel)))
                .collect(),
        ),
    ));
    Ok(Reply::Map(fields).into())
}

/// ACL LIST
///
/// # Format
/// `ACL LIST`
///
/// # Returns
/// One `user <name> <rules>` line per user, in name order.
fn list(_s: &mut Session, sh: &Shared, _a: &mut Args) -> R {
    Ok(Reply::Array(user_lines(sh).into_iter().map(Reply::bulk).collect()).into())
}

/// ACL USERS
///
/// # Format
/// `ACL USERS`
///
/// # Returns
/// The user names, in order.
fn users(_s: &mut Session, sh: &Shared, _a: &mut Args) -> R {
    Ok(Reply::Array(
        sh.acl
            .users()
            .iter()
            .map(|u| Reply::Bulk(u.name.clone()))
            .collect(),
    )
    .into())
}

/// ACL WHOAMI
///
/// # Format
/// `ACL WHOAMI`
///
/// # Returns
/// The connection's user name.
fn whoami(s: &mut Session, sh: &Shared, _a: &mut Args) -> R {
    Ok(Reply::Bulk(user_of(s, sh).name.clone()).into())
}

/// ACL CAT
///
/// # Format
/// `ACL CAT [category]`
///
/// # Returns
/// The categories, or the commands (and subcommands) of one.
fn cat(_s: &mut Session, _sh: &Shared, a: &mut Args) -> R {
    let Some(name) = a.next() else {
        return Ok(Reply::Array(CATEGORIES.iter().map(|c| Reply::bulk(*c)).collect()).into());
    };
    let text = String::from_utf8_lossy(&name).into_owned();
    let Some(bit) = category_bit(&text) else {
        return Err(CommandError::AclUnknownCategory(
            text.chars().take(128).collect(),
        ));
    };
    let c = catalog();
    Ok(Reply::Array(
        (0..c.specs.len())
            .filter(|&id| c.categories[id] & bit != 0)
            .map(|id| Reply::bulk(c.specs[id].full))
            .collect(),
    )
    .into())
}

/// ACL GENPASS
///
/// # Format
/// `ACL GENPASS [bits]`
///
/// # Returns
/// A random password of `bits` (default 256) bits, as hex digits.
fn genpass(_s: &mut Session, _sh: &Shared, a: &mut Args) -> R {
    let bits = match a.next() {
        None => 256,
        Some(b) => parse_i64(&b).ok_or(CommandError::NotInteger)?,
    };
    if bits <= 0 || bits > 4096 {
        return Err(CommandError::AclGenpassBits);
    }
    let chars = ((bits + 3) / 4) as usize;
    let mut bytes = vec![0u8; chars.div_ceil(2)];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    let mut hex = String::with_capacity(chars + 1);
    for b in bytes {
        hex.push_str(&format!("{b:02x}"));
    }
    hex.truncate(chars);
    Ok(Reply::bulk(hex).into())
}

/// ACL LOG
///
/// # Format
/// `ACL LOG [count | RESET]`
///
/// # Returns
/// The newest entries (10 by default) as maps, or `+OK` after RESET.
fn log(_s: &mut Session, sh: &Shared, a: &mut Args) -> R {
    let mut count = 10i64;
    if let Some(arg) = a.next() {
        if arg.eq_ignore_ascii_case(b"reset") {
            sh.acl.log.lock().reset();
            return Ok(Reply::Ok.into());
        }
        count = parse_i64(&arg).ok_or(CommandError::NotInteger)?.max(0);
    }
    let now = now_ms();
    let log = sh.acl.log.lock();
    let entries = log
        .newest(usize::try_from(count).unwrap_or(usize::MAX))
        .map(|e| {
            Reply::Map(vec![
                (Reply::bulk("count"), Reply::Int(e.count as i64)),
                (Reply::bulk("reason"), Reply::bulk(e.reason.name())),
                (Reply::bulk("context"), Reply::bulk(e.context)),
                (Reply::bulk("object"), Reply::Bulk(e.object.clone())),
                (Reply::bulk("username"), Reply::Bulk(e.username.clone())),
                (
                    Reply::bulk("age-seconds"),
                    Reply::Double(now.saturating_sub(e.updated_ms) as f64 / 1000.0),
                ),
                (
                    Reply::bulk("client-info"),
                    Reply::bulk(e.client_info.clone()),
                ),
                (Reply::bulk("entry-id"), Reply::Int(e.entry_id as i64)),
                (
                    Reply::bulk("timestamp-created"),
                    Reply::Int(e.created_ms as i64),
                ),
                (
                    Reply::bulk("timestamp-last-updated"),
                    Reply::Int(e.updated_ms as i64),
                ),
            ])
        })
        .collect();
    Ok(Reply::Array(entries).into())
}

/// ACL DRYRUN
///
/// # Format
/// `ACL DRYRUN username command [arg ...]`
///
/// # Returns
/// `+OK` when the user may run it, else the reason as a bulk string.
fn dryrun(_s: &mut Session, sh: &Shared, a: &mut Args) -> R {
    let name = a.next_bytes()?;
    let Some(user) = sh.acl.user(&name) else {
        return Err(CommandError::AclUserNotFound(
            String::from_utf8_lossy(&name).into_owned(),
        ));
    };
    let argv = a.rest();
    let mut cmd_args = Args::new(argv.clone());
    let spec = match table::resolve(&mut cmd_args) {
        Ok(spec) => spec,
        Err(CommandError::WrongArity(n)) => return Err(CommandError::WrongArity(n)),
        Err(_) => {
            return Err(CommandError::AclCommandNotFound(
                String::from_utf8_lossy(&argv[0]).into_owned(),
            ))
        }
    };
    let rules = user.rules();
    match check(&rules, spec, &argv) {
        Ok(()) => Ok(Reply::Ok.into()),
        Err(d) => Ok(Reply::bulk(deny_message(d, &user, spec, &argv, true).to_string()).into()),
    }
}

/// ACL LOAD
///
/// # Format
/// `ACL LOAD`
///
/// # Returns
/// `+OK` once the `aclfile` replaced every user; on any error nothing changes.
fn load(s: &mut Session, sh: &Shared, _a: &mut Args) -> R {
    let path = sh
        .config
        .read()
        .aclfile
        .clone()
        .ok_or(CommandError::AclNoFile)?;
    let before: Vec<(Bytes, UserRules)> = sh
        .acl
        .users()
        .iter()
        .map(|u| (u.name.clone(), u.rules().clone()))
        .collect();
    let removed = load_file(sh, &path).map_err(CommandError::AclLoad)?;
    close_clients_of(s, sh, &removed);
    for (name, old) in before {
        if let Some(user) = sh.acl.user(&name) {
            let new = user.rules().clone();
            close_revoked_subscribers(s, sh, &name, &old, &new);
        }
    }
    Ok(Reply::Ok.into())
}

/// ACL SAVE
///
/// # Format
/// `ACL SAVE`
///
/// # Returns
/// `+OK` once the users are written (atomically, fsynced) to the `aclfile`.
fn save(_s: &mut Session, sh: &Shared, _a: &mut Args) -> R {
    let path = sh
        .config
        .read()
        .aclfile
        .clone()
        .ok_or(CommandError::AclNoFile)?;
    save_file(sh, &path).map_err(|e| {
        tracing::warn!("Saving ACL file {}: {e}", path.display());
        CommandError::AclSaveFailed
    })?;
    Ok(Reply::Ok.into())
}

fn help(_s: &mut Session, _sh: &Shared, _a: &mut Args) -> R {
    Ok(super::connection::help_reply(
        "ACL",
        &[
            "CAT [<category>]",
            "    List all commands that belong to <category>, or all command categories",
            "    when no category is specified.",
            "DELUSER <username> [<username> ...]",
            "    Delete a list of users.",
            "DRYRUN <username> <command> [<arg> ...]",
            "    Returns whether the user can execute the given command without executing the command.",
            "GETUSER <username>",
            "    Get the user's details.",
            "GENPASS [<bits>]",
            "    Generate a secure 256-bit user password. The optional `bits` argument can",
            "    be used to specify a different size.",
            "LIST",
            "    Show users details in config file format.",
            "LOAD",
            "    Reload users from the ACL file.",
            "LOG [<count> | RESET]",
            "    Show the ACL log entries.",
            "SAVE",
            "    Save the current config to the ACL file.",
            "SETUSER <username> <attribute> [<attribute> ...]",
            "    Create or modify a user with the specified attributes.",
            "USERS",
            "    List all the registered usernames.",
            "WHOAMI",
            "    Return the current connection username.",
        ],
    )
    .into())
}

const ADMIN: &[&str] = &["admin", "noscript", "loading", "stale"];
const ADMIN_ACL: &[&str] = &["@admin", "@slow", "@dangerous"];
const PLAIN: &[&str] = &["noscript", "loading", "stale"];

/// The ACL subcommands, with Redis 8.6's arities, flags and categories.
pub static ACL_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec::new("acl|cat", -2, Handler::Conn(cat))
        .flags(PLAIN)
        .acl(&["@slow"])
        .doc(
            "server",
            "6.0.0",
            "O(1) since the categories and commands are a fixed set.",
            "Lists the ACL categories, or the commands inside a category.",
        ),
    CommandSpec::new("acl|deluser", -3, Handler::Conn(deluser))
        .flags(ADMIN)
        .acl(ADMIN_ACL)
        .doc(
            "server",
            "6.0.0",
            "O(1) amortized time considering the typical user.",
            "Deletes ACL users, and terminates their connections.",
        ),
    CommandSpec::new("acl|dryrun", -4, Handler::Conn(dryrun))
        .flags(ADMIN)
        .acl(ADMIN_ACL)
        .doc(
            "server",
            "7.0.0",
            "O(1).",
            "Simulates the execution of a command by a user, without executing the command.",
        ),
    CommandSpec::new("acl|genpass", -2, Handler::Conn(genpass))
        .flags(PLAIN)
        .acl(&["@slow"])
        .doc(
            "server",
            "6.0.0",
            "O(1)",
            "Generates a pseudorandom, secure password that can be used to identify ACL users.",
        ),
    CommandSpec::new("acl|getuser", 3, Handler::Conn(getuser))
        .flags(ADMIN)
        .acl(ADMIN_ACL)
        .doc(
            "server",
            "6.0.0",
            "O(N). Where N is the number of password, command and pattern rules that the user has.",
            "Lists the ACL rules of a user.",
        ),
    CommandSpec::new("acl|help", 2, Handler::Conn(help))
        .flags(&["loading", "stale"])
        .acl(&["@slow"])
        .doc(
            "server",
            "6.0.0",
            "O(1)",
            "Returns helpful text about the different subcommands.",
        ),
    CommandSpec::new("acl|list", 2, Handler::Conn(list))
        .flags(ADMIN)
        .acl(ADMIN_ACL)
        .doc(
            "server",
            "6.0.0",
            "O(N). Where N is the number of configured users.",
            "Dumps the effective rules in ACL file format.",
        ),
    CommandSpec::new("acl|load", 2, Handler::Conn(load))
        .flags(ADMIN)
        .acl(ADMIN_ACL)
        .doc(
            "server",
            "6.0.0",
            "O(N). Where N is the number of configured users.",
            "Reloads the rules from the configured ACL file.",
        ),
    CommandSpec::new("acl|log", -2, Handler::Conn(log))
        .flags(ADMIN)
        .acl(ADMIN_ACL)
        .doc(
            "server",
            "6.0.0",
            "O(N) with N being the number of entries shown.",
            "Lists recent security events generated due to commands rejected by ACL rules.",
        ),
    CommandSpec::new("acl|save", 2, Handler::Conn(save))
        .flags(ADMIN)
        .acl(ADMIN_ACL)
        .doc(
            "server",
            "6.0.0",
            "O(N). Where N is the number of configured users.",
            "Saves the effective ACL rules in the configured ACL file.",
        ),
    CommandSpec::new("acl|setuser", -3, Handler::Conn(setuser))
        .flags(ADMIN)
        .acl(ADMIN_ACL)
        .doc(
            "server",
            "6.0.0",
            "O(N). Where N is the number of rules provided.",
            "Creates and modifies an ACL user and its rules.",
        ),
    CommandSpec::new("acl|users", 2, Handler::Conn(users))
        .flags(ADMIN)
        .acl(ADMIN_ACL)
        .doc(
            "server",
            "6.0.0",
            "O(N). Where N is the number of configured users.",
            "Lists all ACL users.",
        ),
    CommandSpec::new("acl|whoami", 2, Handler::Conn(whoami))
        .flags(PLAIN)
        .acl(&["@slow"])
        .doc(
            "server",
            "6.0.0",
            "O(1)",
            "Returns the authenticated username of the current connection.",
        ),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(ops: &[&str]) -> Result<UserRules, String> {
        let ops: Vec<Bytes> = ops.iter().map(|o| Bytes::from(o.to_string())).collect();
        set_user_rules(None, &ops, false).map_err(|e| e.to_string())
    }

    #[test]
    fn descriptions_match_redis() {
        let r = rules(&[
            "on",
            ">pw",
            "~foo*",
            "%R~bar*",
            "&chan*",
            "+get",
            "+set",
            "-@dangerous",
            "+client|id",
        ])
        .expect("valid");
        assert_eq!(
            describe_user(&r),
            "on sanitize-payload #30c952fab122c3f9759f02a6d95c3758b246b4fee239957b2d4fee46e26170c4 ~foo* %R~bar* resetchannels &chan* -@all +get +set -@dangerous +client|id"
        );
        let r = rules(&[
            "+@all",
            "-get",
            "%R~a",
            "%W~a",
            "%W~b",
            "&x",
            "resetchannels",
            "(+set ~k*)",
        ])
        .expect("valid");
        assert_eq!(
            describe_user(&r),
            "off sanitize-payload ~a %W~b resetchannels +@all -get (~k* resetchannels -@all +set)"
        );
        assert_eq!(
            describe_user(&rules(&[]).expect("valid")),
            "off sanitize-payload resetchannels -@all"
        );
        // A later rule for the same command replaces the earlier one and its subcommands.
        let r = rules(&["+client|id", "+get", "-client"]).expect("valid");
        assert_eq!(describe_commands(&r.selectors[0]), "-@all +get -client");
        // Redis's first-argument rules, and what later rules do to them.
        let r = rules(&["+select|0", "+select|1", "+SELECT|0", "+debug|Digest"]).expect("valid");
        assert_eq!(
            describe_commands(&r.selectors[0]),
            "-@all +select|1 +select|0 +debug|digest"
        );
        let r = rules(&["+select|0", "-select"]).expect("valid");
        assert_eq!(describe_commands(&r.selectors[0]), "-@all -select");
    }

    #[test]
    fn modifier_errors_are_redis_texts() {
        assert_eq!(
            rules(&["foo"]),
            Err("ERR Error in ACL SETUSER modifier 'foo': Syntax error".into())
        );
        assert_eq!(
            rules(&["+nosuch"]),
            Err("ERR Error in ACL SETUSER modifier '+nosuch': Unknown command or category name in ACL".into())
        );
        assert_eq!(
            rules(&["(", "x"]),
            Err("ERR Unmatched parenthesis in acl selector starting at '('.".into())
        );
        assert!(rules(&["~*", "~x"]).is_err_and(|e| e.contains("'allkeys' flag")));
        assert!(rules(&["#abc"]).is_err_and(|e| e.contains("exactly 64 characters")));
        assert!(rules(&["<nope"]).is_err_and(|e| e.contains("does not exist")));
        assert!(rules(&["(\"\" +get)"]).is_err_and(|e| e.contains("Syntax error")));
        assert!(rules(&["%"]).is_err_and(|e| e.contains("Syntax error")));
        let r = rules(&["%R", "%RW~x"]).expect("valid");
        assert_eq!(
            describe_selector(&r.selectors[0]),
            "%R~ ~x resetchannels -@all"
        );
    }

    #[test]
    fn acl_file_errors_are_redis_texts() {
        let text = "user default on nopass ~* &* +@all\nuser alice on >pw ~a* +nosuch\nfoo bar\nuser bob on\nuser bob off\nuser \"c d\"\n";
        assert_eq!(
            parse_acl_text(text, "/tmp/u.acl", false).map(|_| ()),
            Err("/tmp/u.acl:2: Error in applying operation '+nosuch': Unknown command or category name in ACL. /tmp/u.acl:3 should start with user keyword followed by the username. WARNING: Duplicate user 'bob' found on line 5. /tmp/u.acl:6: Syntax error. WARNING: ACL errors detected, no change to the previously active ACL rules was performed".to_string())
        );
        let users = parse_acl_text("user alice on >pw ~a* +get\n\n", "f", false).expect("valid");
        assert_eq!(users.len(), 1);
        assert_eq!(
            describe_user(&users[0].1),
            "on sanitize-payload #30c952fab122c3f9759f02a6d95c3758b246b4fee239957b2d4fee46e26170c4 ~a* resetchannels -@all +get"
        );
    }

    #[test]
    fn checks_commands_keys_and_channels() {
        let r = rules(&[
            "on",
            "~foo*",
            "%R~bar*",
            "&chan*",
            "+get",
            "+set",
            "+publish",
            "+psubscribe",
        ])
        .expect("valid");
        let argv = |s: &str| {
            s.split(' ')
                .map(|w| Bytes::from(w.to_string()))
                .collect::<Vec<_>>()
        };
        let run = |s: &str| {
            let v = argv(s);
            let mut a = Args::new(v.clone());
            let spec = table::resolve(&mut a).expect("known");
            check(&r, spec, &v).map_err(|d| (d.reason, d.pos))
        };
        assert_eq!(run("get foo1"), Ok(()));
        assert_eq!(run("get bar1"), Ok(()));
        assert_eq!(run("set bar1 v"), Err((DenyReason::Key, 1)));
        assert_eq!(run("get zz"), Err((DenyReason::Key, 1)));
        assert_eq!(run("xadd foo * a 1"), Err((DenyReason::Command, 0)));
        assert_eq!(run("publish chan1 m"), Ok(()));
        assert_eq!(run("publish other m"), Err((DenyReason::Channel, 1)));
        assert_eq!(run("psubscribe chan*"), Ok(()));
        assert_eq!(run("psubscribe chan1"), Err((DenyReason::Channel, 1)));
        let r = rules(&["+select|0", "+SELECT|1"]).expect("valid");
        let v = argv("select 1");
        let spec = table::lookup("select").expect("select");
        assert_eq!(check(&r, spec, &v), Ok(()));
        assert!(check(&r, spec, &argv("select 2")).is_err());
        let r = rules(&[
            "on",
            "~foo*",
            "%R~bar*",
            "&chan*",
            "+get",
            "+set",
            "+publish",
            "+psubscribe",
        ])
        .expect("valid");
        let run = |s: &str| {
            let v = argv(s);
            let mut a = Args::new(v.clone());
            let spec = table::resolve(&mut a).expect("known");
            check(&r, spec, &v).map_err(|d| (d.reason, d.pos))
        };
        // AUTH and the other no-auth commands are never refused.
        assert_eq!(run("auth x"), Ok(()));
    }

    /// Every command with key positions has key specs, so the ACL checks its keys.
    #[test]
    fn every_keyed_command_has_key_specs() {
        let missing: Vec<&str> = catalog()
            .specs
            .iter()
            .filter(|s| s.first_key != 0 && !keyspec::has_keys(s))
            .map(|s| s.full)
            .collect();
        assert!(
            missing.is_empty(),
            "keyed commands without key specs: {missing:?}"
        );
    }

    /// A client closed by another (here: its user deleted) runs nothing more of what it
    /// pipelined, and answers nothing more.
    #[test]
    fn a_deleted_users_pipelined_requests_do_not_run() {
        let shared = Shared::new(crate::config::Config::default(), None);
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 6379));
        let run = |s: &mut Session, words: &str| {
            let argv = words
                .split(' ')
                .map(|w| Bytes::from(w.to_string()))
                .collect();
            match super::super::execute(s, &shared, argv) {
                super::super::Exec::Reply(r) => r,
                super::super::Exec::Blocked { .. } => Reply::Nil,
            }
        };
        let mut admin = Session::new(shared.clients.register(addr, addr), true);
        let mut alice = Session::new(shared.clients.register(addr, addr), true);
        assert!(matches!(
            run(&mut admin, "ACL SETUSER alice on >pw +@all ~*"),
            Reply::Ok
        ));
        assert!(matches!(run(&mut alice, "AUTH alice pw"), Reply::Ok));
        assert!(matches!(run(&mut alice, "SET k v"), Reply::Ok));
        assert!(matches!(
            run(&mut admin, "ACL DELUSER alice"),
            Reply::Int(1)
        ));
        run(&mut alice, "SET k w");
        assert!(alice.suppress_reply && alice.close_after_reply);
        assert!(matches!(run(&mut admin, "GET k"), Reply::Bulk(b) if &b[..] == b"v"));
    }
}
