//! Black-box tests of ACL users (issue #17 item 2) against a real listening server: users
//! from `user` lines and from the `aclfile` (ACL LOAD / SAVE), what a connection of a
//! deleted user sees, CLIENT LIST / KILL by user, channel permissions on subscriptions,
//! INFO's refusal counters, and that users are configuration, not data (a restart forgets
//! the ones made with ACL SETUSER). Byte-for-byte comparisons with Redis are in
//! `tests/differential_acl.rs`.
mod common;

use std::path::PathBuf;

use common::{Raw, TestServer};

fn temp_dir(tag: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "rill-acl-{tag}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

const ALICE_HASH: &str = "30c952fab122c3f9759f02a6d95c3758b246b4fee239957b2d4fee46e26170c4";

fn bulk(text: &str) -> Vec<u8> {
    format!("${}\r\n{text}\r\n", text.len()).into_bytes()
}

fn login(port: u16, user: &str, pass: &str) -> Raw {
    let mut c = Raw::connect(port);
    assert_eq!(c.cmd(&["AUTH", user, pass]), b"+OK\r\n");
    c
}

#[test]
fn user_lines_of_the_config_file_create_users() {
    let dir = temp_dir("conf");
    let conf = dir.join("rill.conf");
    std::fs::write(
        &conf,
        "user alice on >pw ~s* +@stream +acl|whoami\nuser default on nopass ~* &* +@all -flushall\n",
    )
    .expect("write conf");
    let server = TestServer::start_with_file(conf.to_str().expect("utf-8"), &[]);
    let mut admin = server.raw();
    assert_eq!(
        admin.cmd(&["ACL", "LIST"]),
        [
            &b"*2\r\n"[..],
            &bulk(&format!("user alice on sanitize-payload #{ALICE_HASH} ~s* resetchannels -@all +@stream +acl|whoami")),
            &bulk("user default on nopass sanitize-payload ~* &* +@all -flushall"),
        ]
        .concat()
    );
    assert_eq!(
        admin.cmd(&["FLUSHALL"]),
        &b"-NOPERM User default has no permissions to run the 'flushall' command\r\n"[..]
    );
    let mut alice = login(server.port, "alice", "pw");
    assert_eq!(alice.cmd(&["ACL", "WHOAMI"]), bulk("alice"));
    assert!(alice.cmd(&["XADD", "s1", "*", "f", "v"]).starts_with(b"$"));
    assert_eq!(
        alice.cmd(&["XADD", "t1", "*", "f", "v"]),
        b"-NOPERM No permissions to access a key\r\n"
    );
    // CLIENT LIST shows who is who; CLIENT KILL USER closes by user.
    let list = String::from_utf8_lossy(&admin.cmd(&["CLIENT", "LIST"])).into_owned();
    assert!(list.contains(" user=alice "), "{list}");
    assert!(list.contains(" user=default "), "{list}");
    assert_eq!(
        admin.cmd(&["CLIENT", "KILL", "USER", "nosuch"]),
        b"-ERR No such user 'nosuch'\r\n"
    );
    assert_eq!(admin.cmd(&["CLIENT", "KILL", "USER", "alice"]), b":1\r\n");
    assert!(alice.is_closed());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_user_lines_or_both_sources_stop_start_up() {
    let dir = temp_dir("bad");
    for (text, expect) in [
        ("user alice on +nosuch\n", "Error loading ACL rule '+nosuch' for the user named 'alice': Unknown command or category name in ACL"),
        ("user alice on ~* ~x\n", "Error in user declaration '~x': Adding a pattern after the * pattern"),
        ("user alice on\nuser alice off\n", "Duplicate user found"),
        ("user alice on\naclfile /tmp/x.acl\n", "please define either an ACL file or declare users directly in your redis.conf, but not both"),
    ] {
        let conf = dir.join("rill.conf");
        std::fs::write(&conf, text).expect("write conf");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_rill"))
            .arg(&conf)
            .args(["--port", "0", "--dir"])
            .arg(dir.join("data"))
            .env("NO_COLOR", "1")
            .env_remove("RILL_LOG")
            .output()
            .expect("run rill");
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "{text:?} started: {all}");
        assert!(all.contains(expect), "{text:?}: {all}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn aclfile_is_loaded_saved_and_reloaded() {
    let dir = temp_dir("file");
    let file = dir.join("users.acl");
    std::fs::write(
        &file,
        "user default on nopass ~* &* +@all\nuser alice on >pw ~a* +get\n",
    )
    .expect("write acl file");
    let server = TestServer::start_with(&["--aclfile", file.to_str().expect("utf-8")]);
    let mut admin = server.raw();
    assert_eq!(
        admin.cmd(&["ACL", "USERS"]),
        b"*2\r\n$5\r\nalice\r\n$7\r\ndefault\r\n"
    );
    assert_eq!(
        admin.cmd(&["ACL", "SETUSER", "bob", "on", ">x", "+@read"]),
        b"+OK\r\n"
    );
    assert_eq!(admin.cmd(&["ACL", "SAVE"]), b"+OK\r\n");
    let saved = std::fs::read_to_string(&file).expect("read acl file");
    assert_eq!(
        saved,
        format!(
            "user alice on sanitize-payload #{ALICE_HASH} ~a* resetchannels -@all +get\n\
             user bob on sanitize-payload #2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881 resetchannels -@all +@read\n\
             user default on nopass sanitize-payload ~* &* +@all\n"
        )
    );
    // A connected user keeps its connection across a LOAD that keeps it (with the new
    // rules); a user the file no longer has is disconnected.
    let mut alice = login(server.port, "alice", "pw");
    let mut bob = login(server.port, "bob", "x");
    std::fs::write(&file, "user alice on >pw ~a* +get +set\n").expect("rewrite acl file");
    assert_eq!(admin.cmd(&["ACL", "LOAD"]), b"+OK\r\n");
    assert_eq!(alice.cmd(&["SET", "a1", "v"]), b"+OK\r\n");
    assert!(bob.is_closed());
    assert_eq!(
        admin.cmd(&["ACL", "USERS"]),
        b"*2\r\n$5\r\nalice\r\n$7\r\ndefault\r\n"
    );
    // A bad file changes nothing, and says why.
    std::fs::write(&file, "user alice on +nosuch\nfoo\n").expect("rewrite acl file");
    let path = file.display();
    assert_eq!(
        String::from_utf8_lossy(&admin.cmd(&["ACL", "LOAD"])),
        format!("-ERR {path}:1: Error in applying operation '+nosuch': Unknown command or category name in ACL. {path}:2 should start with user keyword followed by the username. WARNING: ACL errors detected, no change to the previously active ACL rules was performed\r\n")
    );
    assert_eq!(alice.cmd(&["SET", "a1", "v"]), b"+OK\r\n");
    std::fs::remove_file(&file).expect("remove acl file");
    assert_eq!(
        String::from_utf8_lossy(&admin.cmd(&["ACL", "LOAD"])),
        format!("-ERR Error loading ACLs, opening file '{path}': No such file or directory\r\n")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn users_are_configuration_not_data() {
    let mut server = TestServer::start();
    let mut c = server.raw();
    assert_eq!(
        c.cmd(&["ACL", "SETUSER", "alice", "on", ">pw", "+@all", "~*"]),
        b"+OK\r\n"
    );
    assert!(c.cmd(&["XADD", "s", "*", "f", "v"]).starts_with(b"$"));
    server.restart();
    let mut c = server.raw();
    assert_eq!(c.cmd(&["XLEN", "s"]), b":1\r\n");
    assert_eq!(c.cmd(&["ACL", "USERS"]), b"*1\r\n$7\r\ndefault\r\n");
}

#[test]
fn deleted_users_are_disconnected_and_password_changes_are_not() {
    let server = TestServer::start();
    let mut admin = server.raw();
    assert_eq!(
        admin.cmd(&["ACL", "SETUSER", "alice", "on", ">pw", "+@all", "~*"]),
        b"+OK\r\n"
    );
    let mut alice = login(server.port, "alice", "pw");
    assert_eq!(
        admin.cmd(&["ACL", "SETUSER", "alice", "resetpass", ">new"]),
        b"+OK\r\n"
    );
    assert_eq!(alice.cmd(&["PING"]), b"+PONG\r\n");
    let mut again = Raw::connect(server.port);
    assert_eq!(
        again.cmd(&["AUTH", "alice", "pw"]),
        &b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"[..]
    );
    // Rules apply at once to the connections of the user.
    assert_eq!(admin.cmd(&["ACL", "SETUSER", "alice", "-ping"]), b"+OK\r\n");
    assert_eq!(
        alice.cmd(&["PING"]),
        &b"-NOPERM User alice has no permissions to run the 'ping' command\r\n"[..]
    );
    // A user deleting itself gets its reply, then the connection closes.
    assert_eq!(alice.cmd(&["ACL", "DELUSER", "alice"]), b":1\r\n");
    assert!(alice.is_closed());
    // RESET makes a connection the default user again.
    assert_eq!(
        admin.cmd(&["ACL", "SETUSER", "bob", "on", "nopass", "+@all"]),
        b"+OK\r\n"
    );
    let mut bob = login(server.port, "bob", "anything");
    assert_eq!(bob.cmd(&["ACL", "WHOAMI"]), bulk("bob"));
    assert_eq!(bob.cmd(&["RESET"]), b"+RESET\r\n");
    assert_eq!(bob.cmd(&["ACL", "WHOAMI"]), bulk("default"));
    // HELLO AUTH as a user.
    assert_eq!(bob.cmd(&["HELLO", "3", "AUTH", "bob", "x"])[0], b'%');
    assert_eq!(bob.cmd(&["ACL", "WHOAMI"]), bulk("bob"));
}

#[test]
fn channel_permissions_cover_subscriptions() {
    let server = TestServer::start();
    let mut admin = server.raw();
    assert_eq!(
        admin.cmd(&["ACL", "SETUSER", "sub", "on", "nopass", "+@pubsub", "+ping", "&news.*"]),
        b"+OK\r\n"
    );
    let mut sub = login(server.port, "sub", "x");
    assert_eq!(
        sub.cmd(&["SUBSCRIBE", "sports"]),
        b"-NOPERM No permissions to access a channel\r\n"
    );
    // A pattern subscription must name an allowed pattern literally.
    assert_eq!(
        sub.cmd(&["PSUBSCRIBE", "news.a*"]),
        b"-NOPERM No permissions to access a channel\r\n"
    );
    assert_eq!(
        sub.cmd(&["PSUBSCRIBE", "news.*"]),
        b"*3\r\n$10\r\npsubscribe\r\n$6\r\nnews.*\r\n:1\r\n"
    );
    // Widening the rules keeps the subscriber; revoking its pattern closes it.
    assert_eq!(admin.cmd(&["ACL", "SETUSER", "sub", "&sports"]), b"+OK\r\n");
    assert_eq!(sub.cmd(&["PING"]), b"*2\r\n$4\r\npong\r\n$0\r\n\r\n");
    assert_eq!(
        admin.cmd(&["ACL", "SETUSER", "sub", "resetchannels", "&sports"]),
        b"+OK\r\n"
    );
    assert!(sub.is_closed());
    let info = String::from_utf8_lossy(&admin.cmd(&["INFO", "stats"])).into_owned();
    assert!(info.contains("acl_access_denied_channel:2\r\n"), "{info}");
    assert!(info.contains("acl_access_denied_auth:0\r\n"), "{info}");
    assert_eq!(admin.cmd(&["CONFIG", "RESETSTAT"]), b"+OK\r\n");
    let info = String::from_utf8_lossy(&admin.cmd(&["INFO", "stats"])).into_owned();
    assert!(info.contains("acl_access_denied_channel:0\r\n"), "{info}");
}

/// `acl-pubsub-default allchannels` gives new users every channel (Redis 6's behaviour).
#[test]
fn acl_pubsub_default_allchannels() {
    let server = TestServer::start_with(&["--acl-pubsub-default", "allchannels"]);
    let mut c = server.raw();
    assert_eq!(c.cmd(&["ACL", "SETUSER", "u"]), b"+OK\r\n");
    assert_eq!(
        c.cmd(&["ACL", "LIST"]),
        [
            &b"*2\r\n"[..],
            &bulk("user default on nopass sanitize-payload ~* &* +@all"),
            &bulk("user u off sanitize-payload &* -@all"),
        ]
        .concat()
    );
}

/// CONFIG REWRITE writes the users as `user` lines in place of the file's, as Redis does
/// (the rest appended after the signature), and a restart loads them.
#[test]
fn config_rewrite_writes_the_users() {
    let dir = temp_dir("rewrite");
    let conf = dir.join("rill.conf");
    std::fs::write(
        &conf,
        "# comment\nuser alice on >pw ~a* +get\nuser bob on nopass\n",
    )
    .expect("write conf");
    let mut server = TestServer::start_with_file(conf.to_str().expect("utf-8"), &[]);
    let mut c = server.raw();
    assert_eq!(c.cmd(&["ACL", "DELUSER", "bob"]), b":1\r\n");
    assert_eq!(c.cmd(&["ACL", "SETUSER", "carol", "on"]), b"+OK\r\n");
    assert_eq!(c.cmd(&["CONFIG", "REWRITE"]), b"+OK\r\n");
    let text = std::fs::read_to_string(&conf).expect("read conf");
    let users: Vec<&str> = text.lines().filter(|l| l.starts_with("user ")).collect();
    assert_eq!(
        users,
        [
            format!("user alice on sanitize-payload #{ALICE_HASH} ~a* resetchannels -@all +get")
                .as_str(),
            "user carol on sanitize-payload resetchannels -@all",
            "user default on nopass sanitize-payload ~* &* +@all",
        ]
    );
    assert!(
        text.starts_with(&format!("# comment\n{}\nuser carol", users[0])),
        "{text}"
    );
    server.restart();
    let mut c = server.raw();
    assert_eq!(
        c.cmd(&["ACL", "USERS"]),
        b"*3\r\n$5\r\nalice\r\n$5\r\ncarol\r\n$7\r\ndefault\r\n"
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
