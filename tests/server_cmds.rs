//! Server commands against a real server: COMMAND (shapes go-redis parses), INFO
//! sections, CONFIG GET/SET/RESETSTAT/REWRITE, TIME and FUNCTION.
mod common;

use std::time::{Duration, Instant};

use common::TestServer;
use redis::Value;

fn info(r: &mut common::Raw, section: &str) -> String {
    let mut args = vec!["INFO"];
    if !section.is_empty() {
        args.push(section);
    }
    String::from_utf8_lossy(&r.cmd(&args)).to_string()
}

fn field(info: &str, name: &str) -> Option<String> {
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .map(|v| v.trim().to_string())
}

/// Checks one COMMAND INFO entry as go-redis's parser does: exactly 10 fields
/// with the right types, recursively for subcommands.
fn check_entry(v: &Value) -> String {
    let Value::Array(f) = v else {
        panic!("entry is not an array: {v:?}");
    };
    assert_eq!(f.len(), 10, "entry {f:?}");
    let Value::BulkString(name) = &f[0] else {
        panic!("name {:?}", f[0]);
    };
    let name = String::from_utf8_lossy(name).to_string();
    assert!(matches!(f[1], Value::Int(a) if a != 0), "{name} arity");
    let Value::Array(flags) = &f[2] else {
        panic!("{name} flags {:?}", f[2]);
    };
    assert!(flags.iter().all(|x| matches!(x, Value::SimpleString(_))));
    for (i, v) in f.iter().enumerate().take(6).skip(3) {
        assert!(matches!(v, Value::Int(_)), "{name} field {i}");
    }
    let Value::Array(acl) = &f[6] else {
        panic!("{name} acl {:?}", f[6]);
    };
    assert!(acl
        .iter()
        .all(|x| matches!(x, Value::SimpleString(s) if s.starts_with('@'))));
    assert!(matches!(f[7], Value::Array(_)), "{name} tips");
    let Value::Array(specs) = &f[8] else {
        panic!("{name} key specs {:?}", f[8]);
    };
    // A command with positional keys has key specs; XREAD/XREADGROUP also have one
    // (found by the STREAMS keyword) while reporting first key 0, as in Redis.
    let first_key = matches!(f[3], Value::Int(k) if k > 0);
    if first_key {
        assert!(!specs.is_empty(), "{name}: keys but no key specs");
    }
    let Value::Array(subs) = &f[9] else {
        panic!("{name} subcommands {:?}", f[9]);
    };
    for s in subs {
        let sub = check_entry(s);
        assert!(sub.starts_with(&format!("{name}|")), "{sub} under {name}");
    }
    name
}

#[test]
fn command_count_info_list_docs() {
    let s = TestServer::start();
    let mut c = s.conn();
    let count: i64 = redis::cmd("COMMAND")
        .arg("COUNT")
        .query(&mut c)
        .expect("count");
    let Value::Array(all) = redis::cmd("COMMAND")
        .query::<Value>(&mut c)
        .expect("command")
    else {
        panic!("COMMAND is not an array");
    };
    assert_eq!(all.len() as i64, count);
    let names: Vec<String> = all.iter().map(check_entry).collect();
    for expected in [
        "ping",
        "hello",
        "client",
        "xadd",
        "xreadgroup",
        "xgroup",
        "info",
        "multi",
        "scan",
    ] {
        assert!(names.iter().any(|n| n == expected), "{expected} missing");
    }

    let mut r = s.raw();
    // Exact bytes for a simple entry, as Redis 7 sends them.
    let get = r.cmd(&["COMMAND", "INFO", "get"]);
    assert_eq!(
        String::from_utf8_lossy(&get),
        "*1\r\n*10\r\n$3\r\nget\r\n:2\r\n*2\r\n+readonly\r\n+fast\r\n:1\r\n:1\r\n:1\r\n*3\r\n+@read\r\n+@string\r\n+@fast\r\n*0\r\n*1\r\n*6\r\n$5\r\nflags\r\n*2\r\n+RO\r\n+access\r\n$12\r\nbegin_search\r\n*4\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n*2\r\n$5\r\nindex\r\n:1\r\n$9\r\nfind_keys\r\n*4\r\n$4\r\ntype\r\n$5\r\nrange\r\n$4\r\nspec\r\n*6\r\n$7\r\nlastkey\r\n:0\r\n$7\r\nkeystep\r\n:1\r\n$5\r\nlimit\r\n:0\r\n*0\r\n"
    );
    // Unknown names are null entries.
    assert_eq!(r.cmd(&["COMMAND", "INFO", "nosuch"]), b"*1\r\n$-1\r\n");
    let xgroup = String::from_utf8_lossy(&r.cmd(&["COMMAND", "INFO", "XGROUP|CREATE"])).to_string();
    assert!(xgroup.contains("xgroup|create"), "{xgroup}");

    let list: Vec<String> = redis::cmd("COMMAND")
        .arg("LIST")
        .query(&mut c)
        .expect("list");
    assert!(list.iter().any(|n| n == "xadd"));
    assert!(list.iter().any(|n| n == "client|kill"));
    let stream_cmds: Vec<String> = redis::cmd("COMMAND")
        .arg("LIST")
        .arg("FILTERBY")
        .arg("ACLCAT")
        .arg("stream")
        .query(&mut c)
        .expect("list filterby");
    assert!(
        stream_cmds.iter().all(|n| n.starts_with('x')),
        "{stream_cmds:?}"
    );
    assert!(stream_cmds.iter().any(|n| n == "xack"));
    let pattern: Vec<String> = redis::cmd("COMMAND")
        .arg("LIST")
        .arg("FILTERBY")
        .arg("PATTERN")
        .arg("client*")
        .query(&mut c)
        .expect("list pattern");
    assert!(pattern.iter().all(|n| n.starts_with("client")) && pattern.len() > 5);

    // DOCS: a map name → {summary, since, group, complexity, …}.
    let docs = String::from_utf8_lossy(&r.cmd(&["COMMAND", "DOCS", "xadd"])).to_string();
    assert!(docs.starts_with("*2\r\n$4\r\nxadd\r\n*"), "{docs}");
    assert!(docs.contains("$7\r\nsummary\r\n") && docs.contains("$5\r\ngroup\r\n$6\r\nstream\r\n"));
    assert!(r.cmd(&["HELLO", "3"]).starts_with(b"%"));
    let docs3 = String::from_utf8_lossy(&r.cmd(&["COMMAND", "DOCS", "xadd"])).to_string();
    assert!(docs3.starts_with("%1\r\n$4\r\nxadd\r\n%"), "{docs3}");
    assert!(r.cmd(&["HELLO", "2"]).starts_with(b"*"));
    assert_eq!(
        r.cmd(&["COMMAND", "FOO"]),
        b"-ERR unknown subcommand 'FOO'. Try COMMAND HELP.\r\n"
    );
    assert_eq!(
        r.cmd(&["COMMAND", "COUNT", "x"]),
        b"-ERR wrong number of arguments for 'command|count' command\r\n"
    );
}

#[test]
fn info_sections() {
    let s = TestServer::start();
    let mut r = s.raw();
    let mut other = s.raw();
    assert_eq!(other.cmd(&["PING"]), b"+PONG\r\n");
    assert_eq!(
        r.cmd(&["XLEN", "a", "b"]),
        b"-ERR wrong number of arguments for 'xlen' command\r\n"
    );
    assert_eq!(r.cmd(&["SET", "k", "v"]), b"+OK\r\n");
    assert_eq!(
        r.cmd(&["XLEN", "k"]),
        b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
    );

    let all = info(&mut r, "");
    for header in [
        "# Server",
        "# Clients",
        "# Memory",
        "# Persistence",
        "# Stats",
        "# Errorstats",
        "# Keyspace",
    ] {
        assert!(
            all.contains(&format!("{header}\r\n")),
            "{header} missing in {all}"
        );
    }
    assert!(
        !all.contains("# Commandstats"),
        "commandstats is not a default section"
    );
    assert_eq!(
        field(&all, "redis_version").as_deref(),
        Some(rill::commands::connection::REDIS_VERSION)
    );
    assert_eq!(
        field(&all, "rill_version").as_deref(),
        Some(env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(
        field(&all, "tcp_port").as_deref(),
        Some(s.port.to_string().as_str())
    );
    assert_eq!(field(&all, "connected_clients").as_deref(), Some("2"));
    assert_eq!(field(&all, "blocked_clients").as_deref(), Some("0"));
    assert_eq!(field(&all, "loading").as_deref(), Some("0"));
    let used: u64 = field(&all, "used_memory")
        .and_then(|v| v.parse().ok())
        .expect("used_memory");
    assert!(used > 0);
    assert!(field(&all, "total_commands_processed").is_some());
    assert_eq!(field(&all, "errorstat_ERR").as_deref(), Some("count=1"));
    assert_eq!(
        field(&all, "errorstat_WRONGTYPE").as_deref(),
        Some("count=1")
    );
    assert!(field(&all, "db0").is_some_and(|v| v.starts_with("keys=1,expires=0")));

    // One section only.
    let clients = info(&mut r, "clients");
    assert!(clients.contains("# Clients\r\n") && !clients.contains("# Server"));
    let stats = info(&mut r, "commandstats");
    let set = field(&stats, "cmdstat_set").expect("cmdstat_set");
    assert!(set.starts_with("calls=1,usec="), "{set}");
    assert!(set.ends_with("rejected_calls=0,failed_calls=0"), "{set}");
    let xlen = field(&stats, "cmdstat_xlen").expect("cmdstat_xlen");
    assert!(xlen.ends_with("failed_calls=1"), "{xlen}");
    let everything = info(&mut r, "everything");
    assert!(everything.contains("# Commandstats"));
    let two = String::from_utf8_lossy(&r.cmd(&["INFO", "server", "keyspace"])).to_string();
    assert!(two.contains("# Server") && two.contains("# Keyspace") && !two.contains("# Clients"));
    assert_eq!(r.cmd(&["INFO", "nosuchsection"]), b"$0\r\n\r\n");

    // blocked_clients counts readers waiting in XREAD/XREADGROUP BLOCK.
    other.send(&common::encode(&[
        "XREAD", "BLOCK", "0", "STREAMS", "s", "$",
    ]));
    let deadline = Instant::now() + Duration::from_secs(5);
    while field(&info(&mut r, "clients"), "blocked_clients").as_deref() != Some("1") {
        assert!(Instant::now() < deadline, "blocked client not counted");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(r.cmd(&["XADD", "s", "*", "f", "v"]).starts_with(b"$"));
    assert!(other.read_reply().starts_with(b"*1\r\n"));

    // CONFIG RESETSTAT clears the counters.
    assert_eq!(r.cmd(&["CONFIG", "RESETSTAT"]), b"+OK\r\n");
    let stats = info(&mut r, "all");
    assert!(field(&stats, "cmdstat_set").is_none(), "{stats}");
    assert!(field(&stats, "errorstat_ERR").is_none());
}

#[test]
fn config_get_set_and_errors() {
    let s = TestServer::start();
    let mut r = s.raw();
    let mut c = s.conn();
    let pairs: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("maxclients")
        .query(&mut c)
        .expect("get");
    // Redis's default, unless the descriptor limit cannot be raised that far: then,
    // as Redis does, the server lowers it to what fits (issue #18, defect 3).
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    let hard = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        lim.rlim_max
    } else {
        0
    };
    assert_eq!(pairs[0], "maxclients");
    if hard >= 10_000 + 64 {
        assert_eq!(pairs[1], "10000");
    } else {
        let n: u64 = pairs[1].parse().expect("a number");
        assert!(
            n < 10_000 && n + 32 <= hard,
            "maxclients {n} with a hard limit of {hard}"
        );
    }
    assert_eq!(r.cmd(&["CONFIG", "SET", "maxclients", "500"]), b"+OK\r\n");
    assert_eq!(
        r.cmd(&["CONFIG", "GET", "maxclients"]),
        b"*2\r\n$10\r\nmaxclients\r\n$3\r\n500\r\n"
    );
    // Glob patterns and several names at once.
    let pairs: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("stream-node-*")
        .arg("timeout")
        .query(&mut c)
        .expect("get glob");
    assert!(pairs.contains(&"stream-node-max-entries".to_string()));
    assert!(pairs.contains(&"stream-node-max-bytes".to_string()));
    assert!(pairs.contains(&"timeout".to_string()));
    assert_eq!(r.cmd(&["CONFIG", "GET", "nosuch"]), b"*0\r\n");
    assert_eq!(
        r.cmd(&["CONFIG", "GET"]),
        b"-ERR wrong number of arguments for 'config|get' command\r\n"
    );
    assert_eq!(
        r.cmd(&["CONFIG", "SET", "port"]),
        b"-ERR wrong number of arguments for 'config|set' command\r\n"
    );
    assert_eq!(
        r.cmd(&["CONFIG", "SET", "foo", "bar"]),
        b"-ERR Unknown option or number of arguments for CONFIG SET - 'foo'\r\n"
    );
    assert_eq!(
        r.cmd(&["CONFIG", "SET", "timeout", "abc"]),
        b"-ERR CONFIG SET failed (possibly related to argument 'timeout') - argument couldn't be parsed into an integer\r\n"
    );
    assert_eq!(
        r.cmd(&["CONFIG", "SET", "maxclients", "10", "maxclients", "20"]),
        b"-ERR CONFIG SET failed (possibly related to argument 'maxclients') - duplicate parameter\r\n"
    );
    assert_eq!(
        r.cmd(&["CONFIG", "FOO"]),
        b"-ERR unknown subcommand 'FOO'. Try CONFIG HELP.\r\n"
    );
    assert_eq!(
        r.cmd(&["CONFIG", "REWRITE"]),
        b"-ERR The server is running without a config file\r\n"
    );
    // A setting takes effect at once: stream-node-max-entries shapes XINFO's node count.
    assert_eq!(
        r.cmd(&["CONFIG", "SET", "stream-node-max-entries", "2"]),
        b"+OK\r\n"
    );
    for _ in 0..6 {
        assert!(r.cmd(&["XADD", "s", "*", "f", "v"]).starts_with(b"$"));
    }
    let xinfo = String::from_utf8_lossy(&r.cmd(&["XINFO", "STREAM", "s"])).to_string();
    assert!(
        xinfo.contains("$15\r\nradix-tree-keys\r\n:3\r\n"),
        "{xinfo}"
    );
}

#[test]
fn config_rewrite_updates_the_file() {
    let dir = std::env::temp_dir().join(format!("rill-h4-rewrite-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("rill.conf");
    std::fs::write(&file, "# my settings\nmaxclients 100\ntimeout 0\n").expect("write conf");
    let s = TestServer::start_with_file(file.to_str().expect("utf-8 path"), &[]);
    let mut r = s.raw();
    assert_eq!(
        r.cmd(&["CONFIG", "GET", "maxclients"]),
        b"*2\r\n$10\r\nmaxclients\r\n$3\r\n100\r\n"
    );
    assert_eq!(r.cmd(&["CONFIG", "SET", "maxclients", "123"]), b"+OK\r\n");
    assert_eq!(r.cmd(&["CONFIG", "REWRITE"]), b"+OK\r\n");
    let text = std::fs::read_to_string(&file).expect("read conf");
    assert!(text.contains("# my settings"), "{text}");
    assert!(text.contains("maxclients 123"), "{text}");
    assert!(!text.contains("maxclients 100"), "{text}");
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn time_and_function() {
    let s = TestServer::start();
    let mut c = s.conn();
    let (secs, micros): (String, String) = redis::cmd("TIME").query(&mut c).expect("time");
    let secs: u64 = secs.parse().expect("secs");
    let micros: u64 = micros.parse().expect("micros");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    assert!(secs.abs_diff(now) <= 2);
    assert!(micros < 1_000_000);
    let mut r = s.raw();
    assert_eq!(r.cmd(&["FUNCTION", "LIST"]), b"*0\r\n");
    assert_eq!(r.cmd(&["FUNCTION", "LIST", "WITHCODE"]), b"*0\r\n");
    assert_eq!(r.cmd(&["FUNCTION", "FLUSH"]), b"+OK\r\n");
    assert_eq!(r.cmd(&["FUNCTION", "FLUSH", "ASYNC"]), b"+OK\r\n");
    assert_eq!(
        r.cmd(&["FUNCTION", "FLUSH", "foo"]),
        b"-ERR FUNCTION FLUSH only supports SYNC|ASYNC option\r\n"
    );
    assert_eq!(
        r.cmd(&["TIME", "x"]),
        b"-ERR wrong number of arguments for 'time' command\r\n"
    );
}
