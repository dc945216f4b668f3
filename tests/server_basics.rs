//! Smoke tests of the server core against a real listening server.
mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{encode, TestServer};

const SIGINT: i32 = 2;
const SIGTERM: i32 = 15;

#[test]
fn ping_echo_and_unknown_command() {
    let s = TestServer::start();
    let mut r = s.raw();
    assert_eq!(r.cmd(&["PING"]), b"+PONG\r\n");
    assert_eq!(r.cmd(&["ECHO", "hi"]), b"$2\r\nhi\r\n");
    assert_eq!(
        r.cmd(&["FOO", "a", "b"]),
        b"-ERR unknown command 'FOO', with args beginning with: 'a' 'b' \r\n"
    );
    assert_eq!(
        r.cmd(&["PING", "a", "b"]),
        b"-ERR wrong number of arguments for 'ping' command\r\n"
    );
}

#[test]
fn redis_crate_roundtrip() {
    let s = TestServer::start();
    let mut c = s.conn();
    let _: () = redis::cmd("SET").arg("k").arg("v").query(&mut c).unwrap();
    let v: String = redis::cmd("GET").arg("k").query(&mut c).unwrap();
    assert_eq!(v, "v");
    let t: String = redis::cmd("TYPE").arg("k").query(&mut c).unwrap();
    assert_eq!(t, "string");
}

/// `io-threads 1` runs everything on one thread: a blocked reader is still served by
/// another client's write (nothing waits on a second thread), and the setting shows.
#[test]
fn one_io_thread_serves_blocked_readers_and_writers() {
    let s = TestServer::start_with(&["--io-threads", "1"]);
    let mut c = s.conn();
    let got: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("io-threads")
        .query(&mut c)
        .unwrap();
    assert_eq!(got, vec!["io-threads".to_string(), "1".to_string()]);
    let mut reader = s.conn();
    let blocked = std::thread::spawn(move || {
        let r: redis::Value = redis::cmd("XREAD")
            .arg("BLOCK")
            .arg(10_000)
            .arg("STREAMS")
            .arg("s")
            .arg("$")
            .query(&mut reader)
            .unwrap();
        r
    });
    s.wait_blocked(1);
    let id: String = redis::cmd("XADD")
        .arg("s")
        .arg("*")
        .arg("f")
        .arg("v")
        .query(&mut c)
        .unwrap();
    let r = blocked.join().unwrap();
    assert!(format!("{r:?}").contains(&id), "{r:?}");
}

/// Reads until EOF; the bytes that arrived.
fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut out = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

#[test]
fn shutdown_command_delivers_in_flight_replies_and_exits_zero() {
    let mut s = TestServer::start();
    let mut bystander = s.raw();
    assert_eq!(bystander.cmd(&["PING"]), b"+PONG\r\n");
    let mut c = TcpStream::connect(("127.0.0.1", s.port)).expect("connect");
    // 5000 commands and SHUTDOWN in one write: every reply before SHUTDOWN arrives.
    let mut input = Vec::new();
    for _ in 0..5000 {
        input.extend_from_slice(&encode(&["ECHO", "abcd"]));
    }
    input.extend_from_slice(&encode(&["SHUTDOWN", "NOSAVE"]));
    input.extend_from_slice(&encode(&["PING"]));
    c.write_all(&input).expect("write");
    let got = read_to_close(&mut c);
    assert_eq!(got, b"$4\r\nabcd\r\n".repeat(5000));
    let status = s
        .wait_exit(Duration::from_secs(10))
        .expect("server did not exit");
    assert!(status.success(), "{status:?}");
    assert!(bystander.is_closed());
}

#[test]
fn shutdown_arguments() {
    let s = TestServer::start();
    let mut r = s.raw();
    assert_eq!(
        r.cmd(&["SHUTDOWN", "ABORT"]),
        b"-ERR No shutdown in progress.\r\n"
    );
    assert_eq!(r.cmd(&["SHUTDOWN", "FOO"]), b"-ERR syntax error\r\n");
    assert_eq!(r.cmd(&["PING"]), b"+PONG\r\n");
}

fn exits_cleanly_on(sig: i32) {
    let mut s = TestServer::start();
    let mut idle = s.raw();
    assert_eq!(idle.cmd(&["PING"]), b"+PONG\r\n");
    // A client blocked forever must not hold the shutdown up.
    let mut blocked = s.raw();
    blocked.send(&encode(&["XREAD", "BLOCK", "0", "STREAMS", "s", "$"]));
    // A client in the middle of a long pipeline gets only whole replies.
    let mut busy = TcpStream::connect(("127.0.0.1", s.port)).expect("connect");
    let mut input = Vec::new();
    for _ in 0..20_000 {
        input.extend_from_slice(&encode(&["ECHO", "abcd"]));
    }
    let mut w = busy.try_clone().expect("clone");
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(&input);
    });
    std::thread::sleep(Duration::from_millis(50));
    let started = Instant::now();
    let status = s.signal_and_wait(sig).expect("server did not exit");
    assert!(status.success(), "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    let got = read_to_close(&mut busy);
    assert_eq!(got.len() % 10, 0, "a reply was cut in the middle");
    assert!(got.chunks(10).all(|r| r == b"$4\r\nabcd\r\n"));
    let _ = writer.join();
    assert!(idle.is_closed());
    assert!(blocked.is_closed());
}

#[test]
fn sigterm_exits_zero() {
    exits_cleanly_on(SIGTERM);
}

#[test]
fn sigint_exits_zero() {
    exits_cleanly_on(SIGINT);
}

#[test]
fn config_errors_stop_start_up_naming_file_and_line() {
    let dir = std::env::temp_dir().join(format!("rill-h4-badconf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("bad.conf");
    std::fs::write(&file, "port 0\n# comment\nmaxclients abc\n").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_rill"))
        .arg(&file)
        .arg("--dir")
        .arg(&dir)
        .stdin(Stdio::null())
        .output()
        .expect("run rill");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(file.to_str().expect("utf-8")), "{err}");
    assert!(err.contains("at line 3"), "{err}");
    assert!(err.contains(">>> 'maxclients abc'"), "{err}");
    assert!(
        err.contains("argument couldn't be parsed into an integer"),
        "{err}"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_rill"))
        .args(["--port", "0", "--nosuch-directive", "1"])
        .stdin(Stdio::null())
        .output()
        .expect("run rill");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Bad directive or wrong number of arguments"),
        "{err}"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_rill"))
        .arg(dir.join("missing.conf"))
        .stdin(Stdio::null())
        .output()
        .expect("run rill");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.conf"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn example_config_starts() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/redis.conf.example");
    let s = TestServer::start_with_file(example, &[]);
    assert_eq!(s.raw().cmd(&["PING"]), b"+PONG\r\n");
}

/// Issue #18, defect 4: the directory lock belongs to the directory, not to the name
/// `LOCK`. Deleting the file under a running server used to let a second instance start
/// on the same data directory, and the two logs overwrote each other's acknowledged writes.
#[test]
fn deleting_the_lock_file_does_not_let_a_second_instance_in() {
    let mut server = TestServer::start();
    let mut con = server.conn();
    let mut add = |range: std::ops::Range<usize>| {
        for i in range {
            let _: String = redis::cmd("XADD")
                .arg("s")
                .arg(format!("{}-1", i + 1))
                .arg("f")
                .arg(i)
                .query(&mut con)
                .expect("xadd");
        }
    };
    add(0..100);
    std::fs::remove_file(server.dir.join("LOCK")).expect("rm LOCK");
    let second = |server: &TestServer| {
        Command::new(env!("CARGO_BIN_EXE_rill"))
            .args(["--port", "0", "--bind", "127.0.0.1", "--dir"])
            .arg(&server.dir)
            .stdin(Stdio::null())
            .output()
            .expect("run rill")
    };
    let out = second(&server);
    assert!(!out.status.success(), "a second instance started");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("is in use by another Rill process"), "{said}");
    // The check tool is refused too instead of calling the live directory clean.
    let check = Command::new(env!("CARGO_BIN_EXE_rill"))
        .arg("check")
        .arg(&server.dir)
        .stdin(Stdio::null())
        .output()
        .expect("run rill check");
    assert_eq!(
        check.status.code(),
        Some(2),
        "rill check ran on a live directory"
    );

    add(100..300);
    // Deleted a second time after the refused start (which must not have re-created and
    // kept anything), still locked.
    let _ = std::fs::remove_file(server.dir.join("LOCK"));
    assert!(
        !second(&server).status.success(),
        "a second instance started"
    );
    server.restart();
    let mut con = server.conn();
    let len: usize = redis::cmd("XLEN").arg("s").query(&mut con).expect("xlen");
    assert_eq!(len, 300, "acknowledged entries lost");
}

/// Issue #18: a second instance refused on a data directory in use must not touch the
/// running server's pidfile (it used to write its own pid there before failing).
#[test]
fn refused_second_instance_leaves_the_pidfile_alone() {
    let pidfile = std::env::temp_dir().join(format!("rill-pidfile-{}.pid", std::process::id()));
    let _ = std::fs::remove_file(&pidfile);
    let pidfile_arg = pidfile.to_str().expect("utf-8").to_string();
    let server = TestServer::start_with(&["--pidfile", &pidfile_arg]);
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query(&mut server.conn())
        .expect("INFO");
    let pid = info
        .lines()
        .find_map(|l| l.strip_prefix("process_id:"))
        .expect("process_id")
        .trim()
        .to_string();
    assert_eq!(
        std::fs::read_to_string(&pidfile).expect("pidfile").trim(),
        pid
    );
    let out = Command::new(env!("CARGO_BIN_EXE_rill"))
        .args([
            "--port",
            "0",
            "--bind",
            "127.0.0.1",
            "--pidfile",
            &pidfile_arg,
            "--dir",
        ])
        .arg(&server.dir)
        .stdin(Stdio::null())
        .output()
        .expect("run rill");
    assert!(!out.status.success(), "a second instance started");
    assert_eq!(
        std::fs::read_to_string(&pidfile)
            .expect("pidfile kept")
            .trim(),
        pid,
        "the refused instance overwrote the running server's pidfile"
    );
    drop(server);
    let _ = std::fs::remove_file(&pidfile);
}
