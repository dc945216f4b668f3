//! Unit tests of loading, the command line, CONFIG GET/SET/REWRITE and the example file.

use super::*;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A fresh directory per test so tests can run in parallel.
fn temp_dir(tag: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "rill-config-{tag}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, content).expect("write test file");
    path
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::from_text(text, Path::new("test.conf"))
}

#[test]
fn defaults_match_the_specification() {
    let c = Config::default();
    assert_eq!(c.bind, ["127.0.0.1", "-::1"]);
    assert_eq!(c.port, 6379);
    assert!(c.protected_mode);
    assert_eq!(c.requirepass, None);
    assert_eq!(c.dir, PathBuf::from("./data"));
    assert!(!c.appendonly);
    assert_eq!(c.appendfsync, AppendFsync::Always);
    assert_eq!(c.databases, 16);
    assert_eq!(c.maxclients, 10000);
    assert_eq!(c.timeout, 0);
    assert_eq!(c.tcp_keepalive, 300);
    assert_eq!(c.loglevel, LogLevel::Notice);
    assert_eq!(c.logfile, None);
    assert_eq!(c.proto_max_bulk_len, 512 << 20);
    assert_eq!(c.client_query_buffer_limit, 1 << 30);
    let limits = c.client_output_buffer_limit;
    assert_eq!(limits.normal, OutputBufferLimit::default());
    assert_eq!(
        limits.replica,
        OutputBufferLimit {
            hard_bytes: 256 << 20,
            soft_bytes: 64 << 20,
            soft_seconds: 60
        }
    );
    assert_eq!(
        limits.pubsub,
        OutputBufferLimit {
            hard_bytes: 32 << 20,
            soft_bytes: 8 << 20,
            soft_seconds: 60
        }
    );
    assert_eq!(c.stream_node_max_entries, 100);
    assert_eq!(c.stream_node_max_bytes, 4096);
    assert!(!c.daemonize);
    assert_eq!(c.pidfile, None);
    assert_eq!(c.save.len(), 3);
    assert_eq!(c.hz, 10);
    assert_eq!(c.segment_size, 64 << 20);
    assert_eq!(c.cache_size, 32 << 20);
    assert_eq!(c.checkpoint_interval, 60);
    assert_eq!(c.compaction_threshold, 50);
    assert_eq!(c.config_file(), None);
}

#[test]
fn directive_names_are_unique_lowercase_and_documented() {
    let mut names: Vec<&str> = DIRECTIVES.iter().map(|d| d.name).collect();
    for d in DIRECTIVES {
        assert_eq!(d.name, d.name.to_ascii_lowercase());
        assert!(!d.doc.is_empty(), "{} has no doc", d.name);
    }
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), DIRECTIVES.len());
}

#[test]
fn parses_a_file_with_comments_quotes_and_units() {
    let c = parse(
        "# a comment\n\
         \n\
         port 7000\n\
         \tPROTECTED-MODE No  \r\n\
         requirepass \"s3cr3t pass\\x21\"\n\
         dir '/var/lib/rill'\n\
         appendfsync EVERYSEC\n\
         loglevel warning\n\
         proto-max-bulk-len 2mb\n\
         client-query-buffer-limit 1G\n\
         stream-node-max-bytes 8k\n\
         save 900 1\n\
         save 300 10\n\
         bind 0.0.0.0 ::\n\
         client-output-buffer-limit pubsub 64mb 16mb 90\n\
         compaction-threshold 25\n",
    )
    .expect("valid config");
    assert_eq!(c.port, 7000);
    assert!(!c.protected_mode);
    assert_eq!(c.requirepass.as_deref(), Some("s3cr3t pass!"));
    assert_eq!(c.dir, PathBuf::from("/var/lib/rill"));
    assert_eq!(c.appendfsync, AppendFsync::Everysec);
    assert_eq!(c.loglevel, LogLevel::Warning);
    assert_eq!(c.proto_max_bulk_len, 2 << 20);
    assert_eq!(c.client_query_buffer_limit, 1_000_000_000);
    assert_eq!(c.stream_node_max_bytes, 8000);
    // The first `save` of a load replaces the defaults, later ones add to it (Redis quirk).
    assert_eq!(
        c.save,
        [
            SavePoint {
                seconds: 900,
                changes: 1
            },
            SavePoint {
                seconds: 300,
                changes: 10
            }
        ]
    );
    assert_eq!(c.bind, ["0.0.0.0", "::"]);
    assert_eq!(c.client_output_buffer_limit.pubsub.hard_bytes, 64 << 20);
    // Classes not mentioned keep their values.
    assert_eq!(c.client_output_buffer_limit.replica.hard_bytes, 256 << 20);
    assert_eq!(c.compaction_threshold, 25);
}

#[test]
fn empty_values_reset_lists_and_optional_strings() {
    let c = parse("save \"\"\nbind \"\"\nrequirepass \"\"\nlogfile ''\n").expect("valid");
    assert!(c.save.is_empty());
    assert!(c.bind.is_empty());
    assert_eq!(c.requirepass, None);
    assert_eq!(c.logfile, None);
}

#[test]
fn multi_arg_directive_given_one_quoted_argument_is_split() {
    let c = parse("save \"60 5 10 100\"\n").expect("valid");
    assert_eq!(c.save.len(), 2);
    assert_eq!(c.save[1].changes, 100);
}

#[test]
fn hz_is_capped_like_redis() {
    assert_eq!(parse("hz 0\n").expect("valid").hz, 1);
    assert_eq!(parse("hz 100000\n").expect("valid").hz, 500);
}

fn bad_line(text: &str) -> (usize, String, String) {
    match parse(text) {
        Err(ConfigError::BadLine {
            origin: Origin::File { line, .. },
            line: content,
            reason,
        }) => (line, content, reason),
        other => panic!("expected a bad line error, got {other:?}"),
    }
}

#[test]
fn errors_name_the_line_number_the_line_and_the_reason() {
    let (line, content, reason) = bad_line("port 7000\n\n  port \"abc\"  \n");
    assert_eq!(line, 3);
    assert_eq!(content, "port \"abc\"");
    assert_eq!(reason, "argument couldn't be parsed into an integer");

    let error = parse("# x\nport abc\n").expect_err("bad port");
    let text = error.to_string();
    assert!(
        text.contains("*** FATAL CONFIG FILE ERROR (Rill "),
        "{text}"
    );
    assert!(
        text.contains("Reading the configuration file 'test.conf', at line 2"),
        "{text}"
    );
    assert!(text.contains(">>> 'port abc'"), "{text}");
    assert!(
        text.ends_with("argument couldn't be parsed into an integer"),
        "{text}"
    );
}

#[test]
fn each_kind_of_bad_value_has_redis_reason() {
    let cases = [
        ("nosuch 1", "Bad directive or wrong number of arguments"),
        ("include", "Bad directive or wrong number of arguments"),
        ("port", "wrong number of arguments"),
        ("port 1 2", "wrong number of arguments"),
        (
            "port 65536",
            "argument must be between 0 and 65535 inclusive",
        ),
        ("port 06379", "argument couldn't be parsed into an integer"),
        ("protected-mode maybe", "argument must be 'yes' or 'no'"),
        (
            "appendfsync sometimes",
            "argument(s) must be one of the following: everysec, always, no",
        ),
        (
            "loglevel loud",
            "argument(s) must be one of the following: debug, verbose, notice, warning, nothing",
        ),
        ("proto-max-bulk-len 1tb", "argument must be a memory value"),
        (
            "proto-max-bulk-len 1000",
            "argument must be between 1048576 and 9223372036854775807 inclusive",
        ),
        ("save 900", "Invalid save parameters"),
        ("save 0 1", "Invalid save parameters"),
        (
            "client-output-buffer-limit normal 0 0",
            "Wrong number of arguments in buffer limit configuration.",
        ),
        (
            "client-output-buffer-limit master 0 0 0",
            "Invalid client class specified in buffer limit configuration.",
        ),
        (
            "client-output-buffer-limit normal 1x 0 0",
            "Error in hard, soft or soft_seconds setting in buffer limit configuration.",
        ),
        ("port \"7000", "Unbalanced quotes in configuration line"),
        (
            "compaction-threshold 101",
            "argument must be between 0 and 100 inclusive",
        ),
        (
            "segment-size 2gb",
            "argument must be between 1048576 and 1073741824 inclusive",
        ),
        ("dir \"\"", "dir can't be empty"),
    ];
    for (line, expected) in cases {
        let (_, _, reason) = bad_line(&format!("{line}\n"));
        assert_eq!(reason, expected, "for line {line:?}");
    }
    let too_many = format!("bind {}\n", vec!["127.0.0.1"; 17].join(" "));
    assert_eq!(bad_line(&too_many).2, "Too many bind addresses specified.");
}

#[test]
fn daemonize_yes_is_a_clear_error() {
    let (_, _, reason) = bad_line("daemonize yes\n");
    assert!(
        reason.contains("daemonize yes is not supported"),
        "{reason}"
    );
    assert!(!parse("daemonize no\n").expect("valid").daemonize);
}

#[test]
fn include_reads_other_files_relative_to_the_working_directory() {
    let dir = temp_dir("include");
    let inner = write(&dir, "inner.conf", "port 7100\ntimeout 5\n");
    let outer = write(
        &dir,
        "outer.conf",
        &format!("port 7000\ninclude {}\ntimeout 9\n", inner.display()),
    );
    let c = Config::load(Some(&outer), &[]).expect("valid");
    assert_eq!(c.port, 7100, "the include overrides what came before");
    assert_eq!(c.timeout, 9, "what comes after the include overrides it");
    assert_eq!(c.config_file(), Some(outer.as_path()));

    // A relative include is resolved against the working directory, not the file's folder.
    let relative = write(&dir, "relative.conf", "include inner.conf\n");
    match Config::load(Some(&relative), &[]) {
        Err(ConfigError::Open { path, .. }) => assert_eq!(path, PathBuf::from("inner.conf")),
        other => panic!("expected open error, got {other:?}"),
    }
}

#[test]
fn errors_inside_an_include_name_the_included_file() {
    let dir = temp_dir("include-error");
    let inner = write(&dir, "inner.conf", "\nport x\n");
    let outer = write(
        &dir,
        "outer.conf",
        &format!("include {}\n", inner.display()),
    );
    match Config::load(Some(&outer), &[]) {
        Err(ConfigError::BadLine {
            origin: Origin::File { path, line },
            ..
        }) => {
            assert_eq!(path, inner);
            assert_eq!(line, 2);
        }
        other => panic!("expected bad line, got {other:?}"),
    }
}

#[test]
fn wildcard_include_reads_matches_in_order_and_tolerates_none() {
    let dir = temp_dir("glob");
    write(&dir, "b.conf", "port 7002\n");
    write(&dir, "a.conf", "port 7001\ntimeout 3\n");
    write(&dir, "c.txt", "port 9999\n");
    let outer = write(
        &dir,
        "main.cfg",
        &format!(
            "include {}/*.conf\ninclude {}/none-*.conf\n",
            dir.display(),
            dir.display()
        ),
    );
    let c = Config::load(Some(&outer), &[]).expect("valid");
    assert_eq!(c.port, 7002);
    assert_eq!(c.timeout, 3);
}

#[test]
fn self_include_is_stopped() {
    let dir = temp_dir("loop");
    let path = dir.join("loop.conf");
    fs::write(&path, format!("include {}\n", path.display())).expect("write");
    match Config::load(Some(&path), &[]) {
        Err(ConfigError::BadLine { reason, .. }) => {
            assert!(reason.contains("include nesting"), "{reason}")
        }
        other => panic!("expected nesting error, got {other:?}"),
    }
}

#[test]
fn missing_file_is_an_open_error() {
    let error = Config::load(Some(Path::new("/nonexistent/rill.conf")), &[]).expect_err("missing");
    assert_eq!(
        error.to_string(),
        "Fatal error, can't open config file '/nonexistent/rill.conf': No such file or directory"
    );
}

#[test]
fn unopenable_logfile_stops_start_up() {
    let error = Config::load(
        None,
        &[(
            "logfile".to_string(),
            strings(&["/nonexistent/dir/rill.log"]),
        )],
    )
    .expect_err("bad logfile");
    assert!(
        error
            .to_string()
            .ends_with("Can't open the log file: No such file or directory"),
        "{error}"
    );
}

#[test]
fn command_line_overrides_come_after_the_file() {
    let dir = temp_dir("overrides");
    let file = write(&dir, "rill.conf", "port 7000\nsave 10 1\n");
    let (path, overrides) = parse_cli(&strings(&[
        file.to_str().expect("utf-8 path"),
        "--port",
        "7001",
        "--save",
        "20",
        "2",
    ]))
    .expect("valid command line");
    let c = Config::load(path.as_deref(), &overrides).expect("valid");
    assert_eq!(c.port, 7001);
    // Still the same load: the command line's save adds to the file's.
    assert_eq!(c.save.len(), 2);
}

#[test]
fn bad_override_names_the_option() {
    let error = Config::load(None, &[("port".to_string(), strings(&["abc"]))]).expect_err("bad");
    match &error {
        ConfigError::BadLine {
            origin: Origin::CommandLine { option },
            line,
            reason,
        } => {
            assert_eq!(*option, 1);
            assert_eq!(line, "port \"abc\"");
            assert_eq!(reason, "argument couldn't be parsed into an integer");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(error.to_string().contains(">>> 'port \"abc\"'"));
}

#[test]
fn cli_splits_like_redis_server() {
    let (file, options) = parse_cli(&strings(&[
        "/etc/rill.conf",
        "--port",
        "7000",
        "--save",
        "900",
        "1",
        "--loglevel warning",
        "--requirepass",
        "--secret",
        "--appendonly",
        "yes",
    ]))
    .expect("valid");
    assert_eq!(file, Some(PathBuf::from("/etc/rill.conf")));
    assert_eq!(
        options,
        vec![
            ("port".to_string(), strings(&["7000"])),
            ("save".to_string(), strings(&["900", "1"])),
            ("loglevel".to_string(), strings(&["warning"])),
            ("requirepass".to_string(), strings(&["--secret"])),
            ("appendonly".to_string(), strings(&["yes"])),
        ]
    );

    let (file, options) =
        parse_cli(&strings(&["--PORT", "1", "--save", "--daemonize", "no"])).expect("valid");
    assert_eq!(file, None);
    assert_eq!(options[0], ("port".to_string(), strings(&["1"])));
    assert_eq!(options[1], ("save".to_string(), strings(&[""])));
    assert_eq!(options[2], ("daemonize".to_string(), strings(&["no"])));

    let (_, options) = parse_cli(&strings(&["--save"])).expect("valid");
    assert_eq!(options, vec![("save".to_string(), strings(&[""]))]);

    assert_eq!(parse_cli(&[]).expect("empty"), (None, Vec::new()));
    assert!(matches!(
        parse_cli(&strings(&["rill.conf", "7000"])),
        Err(ConfigError::CommandLine(_))
    ));
    assert!(matches!(
        parse_cli(&strings(&["-"])),
        Err(ConfigError::CommandLine(_))
    ));
    assert!(matches!(
        parse_cli(&strings(&["--port \"7000"])),
        Err(ConfigError::CommandLine(_))
    ));
}

#[test]
fn cli_save_with_one_quoted_value_is_split() {
    let (_, options) = parse_cli(&strings(&["--save", "900 1 300 10"])).expect("valid");
    let c = Config::load(None, &options).expect("valid");
    assert_eq!(c.save.len(), 2);
}

#[test]
fn cluster_peer_routes_accumulate_from_file_lines_and_command_line_options() {
    let addr = |s: &str| s.parse::<std::net::SocketAddr>().expect("address");
    let c = parse(
        "cluster-peer-route 127.0.0.12:17000 127.0.200.1:17000\n\
         cluster-peer-route 127.0.0.13:17000 127.0.200.2:17000 [::1]:17000 [::1]:27000\n",
    )
    .expect("valid");
    assert_eq!(
        c.cluster_peer_routes,
        [
            (addr("127.0.0.12:17000"), addr("127.0.200.1:17000")),
            (addr("127.0.0.13:17000"), addr("127.0.200.2:17000")),
            (addr("[::1]:17000"), addr("[::1]:27000")),
        ]
    );
    assert_eq!(
        c.get("cluster-peer-route")[0].1,
        "127.0.0.12:17000 127.0.200.1:17000 127.0.0.13:17000 127.0.200.2:17000 [::1]:17000 [::1]:27000"
    );
    assert!(Config::default().cluster_peer_routes.is_empty());
    let (_, options) = parse_cli(&strings(&[
        "--cluster-peer-route",
        "10.0.0.2:17000",
        "10.0.9.2:17000",
        "--cluster-peer-route",
        "10.0.0.3:17000",
        "10.0.9.3:17000",
    ]))
    .expect("valid");
    let c = Config::load(None, &options).expect("valid");
    assert_eq!(c.cluster_peer_routes.len(), 2);
    // Pairs of ip:port only.
    for bad in [
        "cluster-peer-route 127.0.0.12:17000",
        "cluster-peer-route 127.0.0.12 127.0.0.13:17000",
        "cluster-peer-route node-b:17000 127.0.0.13:17000",
    ] {
        assert!(
            matches!(parse(bad), Err(ConfigError::BadLine { .. })),
            "{bad}"
        );
    }
}

#[test]
fn config_get_exact_and_glob() {
    let c = Config::default();
    assert_eq!(
        c.get("port"),
        vec![("port".to_string(), "6379".to_string())]
    );
    // Exact names are answered under the spelling the client used, as Redis does.
    assert_eq!(
        c.get("PORT"),
        vec![("PORT".to_string(), "6379".to_string())]
    );
    assert_eq!(c.get("nosuch"), Vec::new());
    assert_eq!(
        c.get("STREAM-*"),
        vec![
            ("stream-node-max-entries".to_string(), "100".to_string()),
            ("stream-node-max-bytes".to_string(), "4096".to_string()),
            ("stream-idmp-duration".to_string(), "100".to_string()),
            ("stream-idmp-maxsize".to_string(), "100".to_string()),
            ("stream-retention-max-age".to_string(), "0".to_string()),
            ("stream-retention-max-bytes".to_string(), "0".to_string()),
            ("stream-retention-max-len".to_string(), "0".to_string()),
            ("stream-retention-refs".to_string(), "keepref".to_string()),
            ("stream-retention-interval".to_string(), "1000".to_string()),
        ]
    );
    assert_eq!(c.get("*").len(), DIRECTIVES.len());
    assert_eq!(
        c.get("client-output-buffer-limit")[0].1,
        "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60"
    );
    assert_eq!(c.get("save")[0].1, "3600 1 300 100 60 10000");
    assert_eq!(c.get("bind")[0].1, "127.0.0.1 -::1");
    assert_eq!(c.get("requirepass")[0].1, "");
    assert_eq!(c.get("appendfsync")[0].1, "always");
    assert_eq!(c.get("proto-max-bulk-len")[0].1, "536870912");
    assert_eq!(c.get("dir")[0].1, "./data");
    let many = c.get_many(&["port", "p*", "PORT"]);
    assert_eq!(
        many.iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("port"))
            .count(),
        1
    );
    assert!(many.iter().any(|(n, _)| n == "protected-mode"));
}

#[test]
fn config_set_applies_values() {
    let mut c = Config::default();
    c.set(&[
        ("maxclients", "50"),
        ("LOGLEVEL", "debug"),
        ("save", "100 2 200 3"),
        ("client-output-buffer-limit", "pubsub 1mb 0 0"),
        ("requirepass", "pw"),
        ("stream-node-max-bytes", "1kb"),
    ])
    .expect("valid set");
    assert_eq!(c.maxclients, 50);
    assert_eq!(c.loglevel, LogLevel::Debug);
    assert_eq!(c.save.len(), 2);
    assert_eq!(c.client_output_buffer_limit.pubsub.hard_bytes, 1 << 20);
    assert_eq!(c.requirepass.as_deref(), Some("pw"));
    assert_eq!(c.stream_node_max_bytes, 1024);
    c.set(&[("save", ""), ("requirepass", "")]).expect("valid");
    assert!(c.save.is_empty());
    assert_eq!(c.requirepass, None);
}

#[test]
fn config_set_is_all_or_nothing_with_redis_errors() {
    let mut c = Config::default();
    let before = c.clone();
    let error = c
        .set(&[("maxclients", "50"), ("hz", "fast")])
        .expect_err("bad hz");
    assert_eq!(
        error.to_string(),
        "ERR CONFIG SET failed (possibly related to argument 'hz') - argument couldn't be parsed into an integer"
    );
    assert_eq!(c, before, "the valid maxclients must not have been applied");

    let error = c
        .set(&[("maxclients", "50"), ("foo", "1")])
        .expect_err("unknown");
    assert_eq!(
        error.to_string(),
        "ERR Unknown option or number of arguments for CONFIG SET - 'foo'"
    );
    let error = c.set(&[("PORT", "7000")]).expect_err("immutable");
    assert_eq!(
        error.to_string(),
        "ERR CONFIG SET failed (possibly related to argument 'PORT') - can't set immutable config"
    );
    let error = c.set(&[("hz", "1"), ("HZ", "2")]).expect_err("duplicate");
    assert_eq!(
        error.to_string(),
        "ERR CONFIG SET failed (possibly related to argument 'HZ') - duplicate parameter"
    );
    // The first problem in argument order wins.
    let error = c
        .set(&[("port", "1"), ("foo", "1")])
        .expect_err("immutable first");
    assert!(error.to_string().contains("can't set immutable config"));
    let error = c.set(&[("appendfsync", "never")]).expect_err("enum");
    assert_eq!(
        error.to_string(),
        "ERR CONFIG SET failed (possibly related to argument 'appendfsync') - argument(s) must be one of the following: everysec, always, no"
    );
    // CONFIG SET splits multi-argument values on single spaces, like Redis.
    let error = c.set(&[("save", "100  2")]).expect_err("double space");
    assert!(error.to_string().ends_with("Invalid save parameters"));
    assert_eq!(c, before);
}

#[test]
fn every_directive_round_trips_through_get_and_set_or_is_immutable() {
    let mut c = Config::default();
    for directive in DIRECTIVES {
        let value = directive.get(&c);
        let result = c.set(&[(directive.name, value.as_str())]);
        if directive.mutable {
            result.unwrap_or_else(|e| panic!("{}: {e}", directive.name));
            assert_eq!(directive.get(&c), value, "{}", directive.name);
        } else {
            assert!(matches!(result, Err(ConfigError::SetFailed { .. })));
        }
    }
}

#[test]
fn rewrite_without_file_is_an_error() {
    assert_eq!(
        Config::default()
            .rewrite()
            .expect_err("no file")
            .to_string(),
        "ERR The server is running without a config file"
    );
}

#[test]
fn rewrite_keeps_comments_and_updates_in_place() {
    let dir = temp_dir("rewrite");
    let original = "# My server\n\
                    port 7000\n\
                    \n\
                    # keep me\n\
                    maxclients 10\n\
                    save 900 1\n\
                    save 300 10\n\
                    frobnicate on\n\
                    include /etc/rill/extra.conf\n\
                    timeout 0\n";
    let path = write(&dir, "rill.conf", original);
    // The server would have refused `frobnicate` at start-up; the file gained it later.
    let mut c = Config::from_text("port 7000\nmaxclients 10\nsave 900 1\nsave 300 10\n", &path)
        .expect("valid");
    c.set(&[("maxclients", "20"), ("hz", "50"), ("save", "60 5")])
        .expect("valid set");
    c.rewrite_to(&path).expect("rewrite");
    let rewritten = fs::read_to_string(&path).expect("read back");
    assert_eq!(
        rewritten,
        "# My server\n\
         port 7000\n\
         \n\
         # keep me\n\
         maxclients 20\n\
         save 60 5\n\
         \n\
         # ??? frobnicate on\n\
         include /etc/rill/extra.conf\n\
         timeout 0\n\
         # Generated by CONFIG REWRITE\n\
         hz 50\n"
    );
    // A second rewrite with no changes is stable.
    c.rewrite_to(&path).expect("rewrite again");
    assert_eq!(fs::read_to_string(&path).expect("read"), rewritten);
    // And the result loads back to the same values (the unknown directive is now a comment).
    let reloaded = Config::from_text(
        &rewritten.replace("include /etc/rill/extra.conf\n", ""),
        &path,
    )
    .expect("valid");
    assert_eq!(reloaded.maxclients, 20);
    assert_eq!(reloaded.hz, 50);
    assert_eq!(reloaded.save, c.save);
}

#[test]
fn rewrite_removes_unset_strings_and_writes_memory_units() {
    let dir = temp_dir("rewrite-units");
    let path = write(
        &dir,
        "rill.conf",
        "requirepass old\nproto-max-bulk-len 100mb\n",
    );
    let mut c = Config::load(Some(&path), &[]).expect("valid");
    c.set(&[
        ("requirepass", ""),
        ("proto-max-bulk-len", "2097152"),
        ("client-output-buffer-limit", "pubsub 1gb 0 10"),
        ("requirepass", "x"),
    ])
    .expect_err("duplicate requirepass");
    c.set(&[
        ("requirepass", ""),
        ("proto-max-bulk-len", "2097152"),
        ("client-output-buffer-limit", "pubsub 1gb 0 10"),
    ])
    .expect("valid");
    c.rewrite().expect("rewrite");
    assert_eq!(
        fs::read_to_string(&path).expect("read"),
        "\nproto-max-bulk-len 2mb\n\
         # Generated by CONFIG REWRITE\n\
         client-output-buffer-limit pubsub 1gb 0 10\n"
    );
}

#[test]
fn rewrite_keeps_the_file_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir("rewrite-mode");
    let path = write(&dir, "rill.conf", "requirepass secret\n");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
    let mut c = Config::load(Some(&path), &[]).expect("valid");
    c.set(&[("requirepass", "other")]).expect("valid");
    c.rewrite().expect("rewrite");
    let mode = fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(
        fs::read_to_string(&path).expect("read"),
        "requirepass \"other\"\n"
    );
    let leftovers: Vec<_> = fs::read_dir(&dir).expect("list").collect();
    assert_eq!(leftovers.len(), 1, "no temporary file is left behind");
}

#[test]
fn rewrite_of_default_config_into_empty_file_writes_nothing() {
    let dir = temp_dir("rewrite-empty");
    let path = dir.join("new.conf");
    Config::default().rewrite_to(&path).expect("rewrite");
    assert_eq!(fs::read_to_string(&path).expect("read"), "");
}

#[test]
fn example_file_is_current_and_loads_to_the_defaults() {
    let example_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("redis.conf.example");
    if std::env::var_os("RILL_REGENERATE_EXAMPLE").is_some() {
        fs::write(&example_path, example_config()).expect("regenerate redis.conf.example");
    }
    let committed = fs::read_to_string(&example_path).expect("read redis.conf.example");
    let committed = committed.as_str();
    assert_eq!(
        committed,
        example_config(),
        "redis.conf.example is stale: regenerate it from config::example_config()"
    );
    let loaded = Config::from_text(committed, Path::new("redis.conf.example")).expect("valid");
    assert_eq!(loaded, Config::default());
    for directive in DIRECTIVES {
        assert!(
            committed
                .lines()
                .any(|line| line.starts_with(&format!("{} ", directive.name))),
            "{} missing from the example",
            directive.name
        );
    }
}

#[test]
fn log_levels_map_to_tracing() {
    assert_eq!(LogLevel::Notice.tracing_filter(), "info");
    assert_eq!(LogLevel::Nothing.tracing_filter(), "off");
    assert!(LogLevel::Debug < LogLevel::Warning);
}

/// Found by fuzzing (fuzz/ target `config`): an unquoted NUL used to end an argument without
/// being consumed, so splitting spun forever, pushing empty arguments. It ends the line, as
/// in Redis's `sdssplitargs`.
#[test]
fn nul_ends_a_line_instead_of_hanging() {
    assert_eq!(
        super::syntax::split_args("port 7000\0 ignored"),
        Some(strings(&["port", "7000"]))
    );
    assert_eq!(super::syntax::split_args("\0port"), Some(Vec::new()));
    assert_eq!(parse("port 7001\0junk\n").unwrap().port, 7001);
}

/// Redis's PROTECTED_CONFIG: `dir` is refused as protected unless `enable-protected-configs`
/// allows the client, and then as immutable (Rill cannot move its data directory live);
/// the two enable-* directives themselves cannot be set at run time.
#[test]
fn protected_configs_follow_enable_protected_configs() {
    let refused = |c: &mut Config, name: &str, local: bool| {
        c.set_by(&[(name, "/tmp")], local)
            .expect_err("refused")
            .to_string()
    };
    let mut c = Config::default();
    assert_eq!(
        refused(&mut c, "dir", true),
        "ERR CONFIG SET failed (possibly related to argument 'dir') - can't set protected config"
    );
    assert_eq!(
        refused(&mut c, "enable-protected-configs", true),
        "ERR CONFIG SET failed (possibly related to argument 'enable-protected-configs') - can't set immutable config"
    );
    for (setting, local, reason) in [
        ("local", false, "protected"),
        ("local", true, "immutable"),
        ("yes", false, "immutable"),
    ] {
        let mut c = parse(&format!("enable-protected-configs {setting}\n")).expect("valid");
        assert_eq!(
            refused(&mut c, "dir", local),
            format!("ERR CONFIG SET failed (possibly related to argument 'dir') - can't set {reason} config"),
            "{setting} local={local}"
        );
    }
    let c = parse("enable-debug-command local\n").expect("valid");
    assert!(c.enable_debug_command.allows(true) && !c.enable_debug_command.allows(false));
    assert!(!Config::default().enable_debug_command.allows(true));
}
