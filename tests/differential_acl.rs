//! Differential checks of ACL users (issue #17 item 2) and protected configs (item 3)
//! against Redis 8.6.3: the ACL command's replies and errors, AUTH and HELLO AUTH as a user,
//! the NOPERM texts of refused commands, keys and channels, ACL LOG entries (their times and
//! client descriptions masked), byte for byte in RESP2 and RESP3.
#![cfg(feature = "differential")]

mod common;

use common::reference::Twins;
use common::Raw;

/// The ACL LOG fields that carry times or a client description: their values are
/// replaced, so the rest of each entry is compared exactly.
fn mask_log(reply: &[u8]) -> Vec<u8> {
    const VOLATILE: [&str; 4] = [
        "age-seconds",
        "client-info",
        "timestamp-created",
        "timestamp-last-updated",
    ];
    let text = String::from_utf8_lossy(reply).into_owned();
    let lines: Vec<&str> = text.split("\r\n").collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        out.push(lines[i].to_string());
        if VOLATILE.contains(&lines[i]) && i + 1 < lines.len() {
            if lines[i + 1].starts_with('$') {
                i += 1; // the bulk's length line; its text follows
            }
            out.push("<masked>".to_string());
            i += 1;
        }
        i += 1;
    }
    out.join("\r\n").into_bytes()
}

/// A connection to each server authenticated as `user`.
fn login(t: &Twins, user: &str, pass: &str) -> (Raw, Raw) {
    let mut rill = Raw::connect(t.rill.port);
    let mut redis = Raw::connect(t.redis.port);
    if t.protocol == 3 {
        assert_eq!(rill.cmd(&["HELLO", "3", "AUTH", user, pass])[0], b'%');
        assert_eq!(redis.cmd(&["HELLO", "3", "AUTH", user, pass])[0], b'%');
    } else {
        assert_eq!(rill.cmd(&["AUTH", user, pass]), b"+OK\r\n");
        assert_eq!(redis.cmd(&["AUTH", user, pass]), b"+OK\r\n");
    }
    (rill, redis)
}

#[track_caller]
fn same_on(conns: &mut (Raw, Raw), protocol: u8, args: &[&str]) -> Vec<u8> {
    let rill = conns.0.cmd(args);
    let redis = conns.1.cmd(args);
    assert_eq!(
        String::from_utf8_lossy(&rill),
        String::from_utf8_lossy(&redis),
        "RESP{protocol} reply to {args:?} differs (left: Rill, right: Redis)"
    );
    rill
}

#[test]
fn acl_users_and_their_descriptions_match_redis() {
    let mut t = Twins::start(&[]);
    t.each_protocol(|t| {
        t.same(&["ACL", "LOG", "RESET"]);
        t.same(&["ACL", "USERS"]);
        t.same(&["ACL", "LIST"]);
        t.same(&["ACL", "WHOAMI"]);
        t.same(&["ACL", "GETUSER", "default"]);
        t.same(&["ACL", "GETUSER", "nobody"]);
        t.same(&[
            "ACL",
            "SETUSER",
            "alice",
            "on",
            ">pw",
            "~foo*",
            "%R~bar*",
            "&chan*",
            "+get",
            "+set",
            "-@dangerous",
            "+client|id",
            "+publish",
            "+subscribe",
            "+multi",
            "+exec",
        ]);
        t.same(&["ACL", "GETUSER", "alice"]);
        t.same(&[
            "ACL",
            "SETUSER",
            "bob",
            "+@all",
            "-get",
            "%R~a",
            "%W~a",
            "%W~b",
            "&x",
            "resetchannels",
            "(+set ~k*)",
            "(",
            "+get",
            "%R~r*",
            ")",
        ]);
        t.same(&["ACL", "GETUSER", "bob"]);
        t.same(&[
            "ACL",
            "SETUSER",
            "carol",
            "#30c952fab122c3f9759f02a6d95c3758b246b4fee239957b2d4fee46e26170c4",
            "nopass",
            "allkeys",
            "allchannels",
            "allcommands",
            "-xadd",
            "+xgroup|create",
            "-xgroup",
        ]);
        t.same(&[
            "ACL", "SETUSER", "dave", "reset", ">a", ">b", "<a", "+@stream", "-@write", "+@read",
        ]);
        t.same(&["ACL", "LIST"]);
        t.same(&["ACL", "USERS"]);
        // Errors, all or nothing.
        t.same(&["ACL", "SETUSER", "bob", "foo"]);
        t.same(&["ACL", "SETUSER", "bob", "+nosuch"]);
        t.same(&["ACL", "SETUSER", "bob", "-@nosuch"]);
        t.same(&["ACL", "SETUSER", "bob", "(", "+get"]);
        t.same(&["ACL", "SETUSER", "bob", "~*", "~x"]);
        t.same(&["ACL", "SETUSER", "bob", "&*", "&x"]);
        t.same(&["ACL", "SETUSER", "bob", "#abc"]);
        t.same(&["ACL", "SETUSER", "bob", "<nope"]);
        t.same(&["ACL", "SETUSER", "bob", "%X~a"]);
        t.same(&["ACL", "SETUSER", "bob", "+xgroup|create|x"]);
        t.same(&["ACL", "SETUSER", "b b"]);
        t.same(&["ACL", "SETUSER", "bob", "on", "bad"]);
        t.same(&["ACL", "GETUSER", "bob"]);
        // DRYRUN.
        t.same(&["ACL", "DRYRUN", "bob", "get", "a"]);
        t.same(&["ACL", "DRYRUN", "bob", "set", "k1", "v"]);
        t.same(&["ACL", "DRYRUN", "bob", "set", "a", "v"]);
        t.same(&["ACL", "DRYRUN", "bob", "set", "zz", "v"]);
        t.same(&["ACL", "DRYRUN", "alice", "get", "zz"]);
        t.same(&["ACL", "DRYRUN", "alice", "publish", "other", "m"]);
        t.same(&["ACL", "DRYRUN", "alice", "xadd", "foo", "*", "a", "1"]);
        t.same(&["ACL", "DRYRUN", "bob", "nosuch"]);
        t.same(&["ACL", "DRYRUN", "nob", "get", "a"]);
        t.same(&["ACL", "DRYRUN", "bob", "get"]);
        // The rest of the command.
        t.same(&["ACL", "CAT"]);
        t.same(&["ACL", "CAT", "nosuch"]);
        t.same(&["ACL", "GENPASS", "0"]);
        t.same(&["ACL", "GENPASS", "4097"]);
        t.same(&["ACL", "GENPASS", "x"]);
        t.same(&["ACL", "LOAD"]);
        t.same(&["ACL", "SAVE"]);
        t.same(&["ACL", "DELUSER", "default"]);
        t.same(&["ACL", "DELUSER", "bob", "carol", "nob"]);
        t.same(&["ACL", "NOPE"]);
        t.same(&["ACL", "HELP"]);
        // Redis's deprecated first-argument rules.
        t.same(&[
            "ACL",
            "SETUSER",
            "fa",
            "+select|0",
            "+select|1",
            "+SELECT|0",
            "+debug|Digest",
        ]);
        t.same(&["ACL", "GETUSER", "fa"]);
        t.same(&["ACL", "DRYRUN", "fa", "select", "1"]);
        t.same(&["ACL", "DRYRUN", "fa", "select", "2"]);
        t.same(&["ACL", "DRYRUN", "fa", "debug", "DIGEST"]);
        t.same(&["ACL", "SETUSER", "fa", "-select|4"]);
        t.same(&["ACL", "SETUSER", "fa", "-select"]);
        t.same(&["ACL", "SETUSER", "fa", "+select|3", "+@connection"]);
        t.same(&["ACL", "LIST"]);
        t.same(&["ACL", "DRYRUN", "fa", "select", "5"]);
        t.same(&["ACL", "DELUSER", "alice", "dave", "fa"]);
        t.same(&["ACL", "LIST"]);
    });
}

#[test]
fn noperm_texts_auth_and_acl_log_match_redis() {
    let mut t = Twins::start(&[]);
    t.each_protocol(|t| {
        t.same(&["ACL", "LOG", "RESET"]);
        t.same(&[
            "ACL",
            "SETUSER",
            "alice",
            "on",
            ">pw",
            "~foo*",
            "%R~bar*",
            "&chan*",
            "+get",
            "+set",
            "+client|id",
            "+publish",
            "+multi",
            "+exec",
            "+acl|whoami",
        ]);
        t.same(&["AUTH", "alice", "wrong"]);
        t.same(&["AUTH", "nobody", "pw"]);
        t.same(&["AUTH", "pw"]);
        t.same(&["AUTH", "a", "b", "c"]);
        t.same(&["HELLO", "2", "AUTH", "alice", "nope"]);
        let p = t.protocol;
        let mut alice = login(t, "alice", "pw");
        same_on(&mut alice, p, &["ACL", "WHOAMI"]);
        same_on(&mut alice, p, &["GET", "foo1"]);
        same_on(&mut alice, p, &["GET", "bar1"]);
        same_on(&mut alice, p, &["GET", "zz"]);
        same_on(&mut alice, p, &["SET", "bar1", "v"]);
        same_on(&mut alice, p, &["SET", "foo1", "v"]);
        same_on(&mut alice, p, &["XADD", "foo", "*", "a", "1"]);
        same_on(&mut alice, p, &["PUBLISH", "chan1", "m"]);
        same_on(&mut alice, p, &["PUBLISH", "other", "m"]);
        same_on(&mut alice, p, &["CLIENT", "GETNAME"]);
        same_on(&mut alice, p, &["CLIENT", "SETNAME", "x"]);
        same_on(&mut alice, p, &["ACL", "LIST"]);
        // A refused command inside MULTI aborts the EXEC.
        same_on(&mut alice, p, &["MULTI"]);
        same_on(&mut alice, p, &["GET", "zz"]);
        same_on(&mut alice, p, &["EXEC"]);
        t.same_masked(&["ACL", "LOG"], mask_log);
        t.same_masked(&["ACL", "LOG", "2"], mask_log);
        t.same(&["ACL", "LOG", "0"]);
        t.same(&["ACL", "LOG", "x"]);
        // Rules changed between queueing and EXEC.
        same_on(&mut alice, p, &["MULTI"]);
        same_on(&mut alice, p, &["GET", "foo1"]);
        t.same(&["ACL", "SETUSER", "alice", "-get"]);
        same_on(&mut alice, p, &["EXEC"]);
        t.same_masked(&["ACL", "LOG", "1"], mask_log);
        // Deleting a user closes its connections.
        t.same(&["ACL", "DELUSER", "alice"]);
        assert!(alice.0.is_closed(), "Rill kept a deleted user's connection");
        assert!(
            alice.1.is_closed(),
            "Redis kept a deleted user's connection"
        );
        t.same(&["ACL", "LOG", "RESET"]);
    });
}

#[test]
fn requirepass_is_the_default_users_password() {
    let mut t = Twins::start(&[]);
    t.same(&["CONFIG", "SET", "requirepass", "s3cret"]);
    t.same(&["ACL", "LIST"]);
    let mut fresh = (Raw::connect(t.rill.port), Raw::connect(t.redis.port));
    same_on(&mut fresh, 2, &["GET", "x"]);
    same_on(&mut fresh, 2, &["AUTH", "wrong"]);
    same_on(&mut fresh, 2, &["AUTH", "default", "s3cret"]);
    same_on(&mut fresh, 2, &["ACL", "WHOAMI"]);
    same_on(
        &mut fresh,
        2,
        &["ACL", "SETUSER", "default", "resetpass", "nopass"],
    );
    same_on(&mut fresh, 2, &["CONFIG", "GET", "requirepass"]);
    same_on(&mut fresh, 2, &["CONFIG", "SET", "requirepass", ""]);
    same_on(&mut fresh, 2, &["ACL", "LIST"]);
    // A disabled user cannot authenticate; a disabled `default` makes every new
    // connection authenticate first, while the ones already authenticated keep working.
    same_on(
        &mut fresh,
        2,
        &["ACL", "SETUSER", "eve", "off", ">pw", "+@all"],
    );
    same_on(&mut fresh, 2, &["AUTH", "eve", "pw"]);
    same_on(&mut fresh, 2, &["HELLO", "3", "AUTH", "eve", "pw"]);
    same_on(&mut fresh, 2, &["ACL", "SETUSER", "eve", "on"]);
    same_on(&mut fresh, 2, &["ACL", "SETUSER", "default", "off"]);
    let mut locked = (Raw::connect(t.rill.port), Raw::connect(t.redis.port));
    same_on(&mut locked, 2, &["PING"]);
    same_on(&mut locked, 2, &["AUTH", "x"]);
    same_on(&mut locked, 2, &["HELLO", "3"]);
    same_on(&mut locked, 2, &["AUTH", "eve", "pw"]);
    same_on(&mut locked, 2, &["PING"]);
    same_on(&mut fresh, 2, &["ACL", "WHOAMI"]);
    same_on(&mut fresh, 2, &["ACL", "SETUSER", "default", "on"]);
    same_on(&mut fresh, 2, &["ACL", "DELUSER", "eve"]);
}

/// Redis 7's protected configs and DEBUG: refused to every client by default.
#[test]
fn protected_configs_match_redis() {
    let mut t = Twins::start(&["--enable-debug-command", "no"]);
    t.each_protocol(|t| {
        t.same(&["CONFIG", "SET", "dir", "/tmp"]);
        t.same(&["CONFIG", "SET", "timeout", "1", "dir", "/tmp"]);
        t.same(&["CONFIG", "SET", "logfile", "/tmp/x"]);
        t.same(&["CONFIG", "SET", "aclfile", "/tmp/x"]);
        t.same(&["CONFIG", "SET", "enable-protected-configs", "yes"]);
        t.same(&["CONFIG", "SET", "enable-debug-command", "yes"]);
        t.same(&["CONFIG", "GET", "enable-protected-configs"]);
        t.same(&["CONFIG", "GET", "enable-debug-command"]);
        t.same(&["CONFIG", "GET", "enable-module-command"]);
        t.same(&["CONFIG", "SET", "enable-module-command", "yes"]);
        // One at a time: Redis answers a pattern in its dict's (seeded) order.
        t.same(&["CONFIG", "GET", "aclfile"]);
        t.same(&["CONFIG", "GET", "acllog-max-len"]);
        t.same(&["CONFIG", "GET", "acl-pubsub-default"]);
        t.same(&["DEBUG", "DIGEST"]);
    });
}

/// Channel rules on subscriptions, and revoking them: Redis closes a subscriber whose
/// subscriptions the new rules no longer cover, and keeps it when they widen.
#[test]
fn channel_rules_and_revoked_subscribers_match_redis() {
    let mut t = Twins::start(&[]);
    t.each_protocol(|t| {
        t.same(&[
            "ACL", "SETUSER", "sub", "on", "nopass", "+@pubsub", "+ping", "&news.*",
        ]);
        let p = t.protocol;
        let mut sub = login(t, "sub", "x");
        same_on(&mut sub, p, &["SUBSCRIBE", "sports"]);
        same_on(&mut sub, p, &["PSUBSCRIBE", "news.a*"]);
        same_on(&mut sub, p, &["SSUBSCRIBE", "news.b"]);
        same_on(&mut sub, p, &["PSUBSCRIBE", "news.*"]);
        t.same(&["ACL", "SETUSER", "sub", "&sports"]);
        same_on(&mut sub, p, &["PING"]);
        t.same(&["ACL", "SETUSER", "sub", "resetchannels", "&sports"]);
        assert!(sub.0.is_closed(), "Rill kept a revoked subscriber");
        assert!(sub.1.is_closed(), "Redis kept a revoked subscriber");
        t.same(&["ACL", "DELUSER", "sub"]);
    });
}

/// The bulk strings of a flat RESP2 array reply.
fn bulks(reply: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(reply).into_owned();
    let lines: Vec<&str> = text.split("\r\n").collect();
    lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with('$'))
        .filter_map(|(i, _)| lines.get(i + 1).map(|s| s.to_string()))
        .collect()
}

/// Each category holds the same commands and subcommands in Rill as in Redis, as far as
/// Rill has them: `+@category` rules grant exactly what they grant in Redis.
#[test]
fn categories_hold_the_same_commands_as_redis() {
    let mut t = Twins::start(&[]);
    let categories = bulks(&t.same(&["ACL", "CAT"]));
    let mut per_category = Vec::new();
    let mut known = std::collections::BTreeSet::new();
    for c in &categories {
        let (rill, redis) = t.both(&["ACL", "CAT", c]);
        // Rill's own commands (RILL.*) have no Redis counterpart.
        let rill: std::collections::BTreeSet<String> = bulks(&rill)
            .into_iter()
            .filter(|n| !n.starts_with("rill."))
            .collect();
        let redis: std::collections::BTreeSet<String> = bulks(&redis).into_iter().collect();
        known.extend(rill.iter().cloned());
        per_category.push((c.clone(), rill, redis));
    }
    assert!(known.contains("xadd") && known.contains("acl|setuser"));
    // Commands newer than the reference (XNACK is 8.8's) are compared by no one.
    let redis_known: std::collections::BTreeSet<String> = per_category
        .iter()
        .flat_map(|(_, _, redis)| redis.iter().cloned())
        .collect();
    let mut differences = Vec::new();
    for (c, rill, redis) in per_category {
        let rill: std::collections::BTreeSet<String> =
            rill.intersection(&redis_known).cloned().collect();
        let expected: std::collections::BTreeSet<String> =
            redis.intersection(&known).cloned().collect();
        if rill != expected {
            differences.push(format!(
                "@{c}: only in Rill {:?}, only in Redis {:?}",
                rill.difference(&expected).collect::<Vec<_>>(),
                expected.difference(&rill).collect::<Vec<_>>()
            ));
        }
    }
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}
