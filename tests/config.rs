//! Black-box tests of configuration: start-up failures of the real binary, the example file,
//! and CONFIG GET/SET/REWRITE over the wire.
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::TestServer;

fn temp_dir(tag: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "rill-config-bb-{tag}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn example_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("redis.conf.example")
}

/// Runs the binary with `args`, expecting it to exit by itself within a few seconds.
fn run_to_exit(args: &[&str], dir: &Path) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rill"))
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rill");
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return child.wait_with_output().expect("collect output");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("rill {args:?} kept running instead of refusing its configuration");
}

fn combined(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn bad_config_file_stops_start_up_naming_file_line_and_reason() {
    let dir = temp_dir("bad-file");
    let file = dir.join("bad.conf");
    std::fs::write(&file, "port 7000\n\nport \"abc\"\n").expect("write");
    let output = run_to_exit(&[file.to_str().expect("utf-8")], &dir);
    assert!(!output.status.success());
    let text = combined(&output);
    assert!(text.contains("*** FATAL CONFIG FILE ERROR"), "{text}");
    assert!(
        text.contains(&format!("'{}', at line 3", file.display())),
        "{text}"
    );
    assert!(text.contains(">>> 'port \"abc\"'"), "{text}");
    assert!(
        text.contains("argument couldn't be parsed into an integer"),
        "{text}"
    );
}

#[test]
fn unknown_directive_and_bad_option_stop_start_up() {
    let dir = temp_dir("bad-option");
    let file = dir.join("unknown.conf");
    std::fs::write(&file, "frobnicate yes\n").expect("write");
    let output = run_to_exit(&[file.to_str().expect("utf-8")], &dir);
    assert!(!output.status.success());
    assert!(combined(&output).contains("Bad directive or wrong number of arguments"));

    let output = run_to_exit(&["--port", "abc"], &dir);
    assert!(!output.status.success());
    let text = combined(&output);
    assert!(text.contains(">>> 'port \"abc\"'"), "{text}");

    let output = run_to_exit(&["--daemonize", "yes"], &dir);
    assert!(!output.status.success());
    assert!(combined(&output).contains("daemonize yes is not supported"));

    let output = run_to_exit(&["/nonexistent/rill.conf"], &dir);
    assert!(!output.status.success());
    assert!(combined(&output).contains("can't open config file '/nonexistent/rill.conf'"));
}

#[test]
fn example_file_starts_and_command_line_wins() {
    let example = example_path();
    let server = TestServer::start_with_file(
        example.to_str().expect("utf-8"),
        &["--maxclients", "77", "--save", "900", "1"],
    );
    let mut con = server.conn();
    let pairs: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("maxclients")
        .arg("appendfsync")
        .arg("save")
        .arg("dir")
        .query(&mut con)
        .expect("CONFIG GET");
    let value = |name: &str| {
        pairs
            .chunks(2)
            .find(|pair| pair[0] == name)
            .map(|pair| pair[1].clone())
    };
    assert_eq!(value("maxclients").as_deref(), Some("77"));
    assert_eq!(value("appendfsync").as_deref(), Some("always"));
    // As in redis-server, `save` lines of one load accumulate: the file's first `save`
    // replaced the built-in points, the command line's adds to them.
    assert_eq!(
        value("save").as_deref(),
        Some("3600 1 300 100 60 10000 900 1")
    );
    // The harness's --dir overrides the example's ./data.
    assert_eq!(value("dir"), Some(server.dir.display().to_string()));
}

#[test]
fn config_get_and_set_over_the_wire() {
    let server = TestServer::start();
    let mut con = server.conn();
    let pairs: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("stream-node-*")
        .query(&mut con)
        .expect("CONFIG GET");
    assert_eq!(
        pairs,
        [
            "stream-node-max-entries",
            "100",
            "stream-node-max-bytes",
            "4096"
        ]
    );
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("stream-node-max-bytes")
        .arg("8kb")
        .arg("hz")
        .arg("20")
        .query(&mut con)
        .expect("CONFIG SET");
    let pairs: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("stream-node-max-bytes")
        .arg("hz")
        .query(&mut con)
        .expect("CONFIG GET");
    assert_eq!(pairs, ["stream-node-max-bytes", "8192", "hz", "20"]);

    let mut raw = server.raw();
    assert_eq!(
        raw.cmd(&["CONFIG", "SET", "hz", "30", "foo", "1"]),
        b"-ERR Unknown option or number of arguments for CONFIG SET - 'foo'\r\n"
    );
    assert_eq!(
        raw.cmd(&["CONFIG", "SET", "port", "1"]),
        b"-ERR CONFIG SET failed (possibly related to argument 'port') - can't set immutable config\r\n"
            .as_slice()
    );
    assert_eq!(
        raw.cmd(&["CONFIG", "SET", "hz", "30", "maxclients", "zero"]),
        b"-ERR CONFIG SET failed (possibly related to argument 'maxclients') - argument couldn't be parsed into an integer\r\n"
            .as_slice()
    );
    // All or nothing: the valid hz of the failed command was not applied.
    assert_eq!(
        raw.cmd(&["CONFIG", "GET", "hz"]),
        b"*2\r\n$2\r\nhz\r\n$2\r\n20\r\n"
    );
    assert_eq!(
        raw.cmd(&["CONFIG", "REWRITE"]),
        b"-ERR The server is running without a config file\r\n"
    );
}

#[test]
fn config_rewrite_updates_the_file_and_survives_a_restart() {
    let dir = temp_dir("rewrite");
    let file = dir.join("rill.conf");
    std::fs::copy(example_path(), &file).expect("copy example");
    let file_arg = file.to_str().expect("utf-8");
    {
        let server = TestServer::start_with_file(file_arg, &[]);
        let mut con = server.conn();
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("maxclients")
            .arg("123")
            .arg("compaction-threshold")
            .arg("10")
            .query(&mut con)
            .expect("CONFIG SET");
        let _: () = redis::cmd("CONFIG")
            .arg("REWRITE")
            .query(&mut con)
            .expect("CONFIG REWRITE");
    }
    let rewritten = std::fs::read_to_string(&file).expect("read rewritten file");
    assert!(
        rewritten.starts_with("# Rill configuration file"),
        "comments kept"
    );
    assert!(rewritten.contains("\nmaxclients 123\n"), "{rewritten}");
    assert!(
        rewritten.contains("\ncompaction-threshold 10\n"),
        "{rewritten}"
    );
    assert!(!rewritten.contains("maxclients 10000"), "{rewritten}");

    let server = TestServer::start_with_file(file_arg, &[]);
    let mut con = server.conn();
    let pairs: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("maxclients")
        .query(&mut con)
        .expect("CONFIG GET");
    assert_eq!(pairs, ["maxclients", "123"]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Redis 7's protected configs and commands: a client that knows the password cannot
/// point `dir` elsewhere, and DEBUG needs `enable-debug-command` (the harness passes
/// `local`; a later `--enable-debug-command no` wins).
#[test]
fn protected_configs_and_debug_are_refused_by_default() {
    let server = TestServer::start_with(&["--enable-debug-command", "no"]);
    let mut r = server.raw();
    assert_eq!(
        r.cmd(&["CONFIG", "SET", "dir", "/tmp"]),
        b"-ERR CONFIG SET failed (possibly related to argument 'dir') - can't set protected config\r\n"
    );
    assert_eq!(
        r.cmd(&["CONFIG", "SET", "enable-protected-configs", "yes"]),
        b"-ERR CONFIG SET failed (possibly related to argument 'enable-protected-configs') - can't set immutable config\r\n"
    );
    assert_eq!(
        r.cmd(&["CONFIG", "GET", "enable-debug-command"]),
        b"*2\r\n$20\r\nenable-debug-command\r\n$2\r\nno\r\n"
    );
    assert_eq!(
        r.cmd(&["DEBUG", "DIGEST"]),
        &b"-ERR DEBUG command not allowed. If the enable-debug-command option is set to \"local\", you can run it from a local connection, otherwise you need to set this option in the configuration file, and then restart the server.\r\n"[..]
    );
    let local = TestServer::start_with(&["--enable-protected-configs", "local"]);
    let mut r = local.raw();
    assert_eq!(
        r.cmd(&["CONFIG", "SET", "dir", "/tmp"]),
        b"-ERR CONFIG SET failed (possibly related to argument 'dir') - can't set immutable config\r\n"
    );
    assert!(r.cmd(&["DEBUG", "DIGEST"]).starts_with(b"+"));
}
