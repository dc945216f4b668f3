//! COMMAND DOCS / COMMAND INFO for every stream command, compared with what Redis returns.
//!
//! The expected `arguments` and `history` below are the replies of a real redis-server 7.0.15
//! (`COMMAND DOCS <name>` over RESP3), rewritten to Redis 7.4's form where 7.2+ changed them:
//! every non-oneof/block argument gains `display_text` (7.2), arguments were renamed in 7.2
//! (XADD `id_or_auto`→`id-selector`, `auto_id`→`auto-id`, `field_value`→`data`; XGROUP
//! `groupname`→`group`, `consumername`→`consumer`, `id`→`id-selector`, `new_id`→`new-id`,
//! `entries_read`→`entries-read` (SETID: `entriesread`, shown as `entries-read`); XREADGROUP
//! `group_consumer`→`group-block`; XSETID `entries-added`/`max-deleted-id`; XCLAIM's LASTID
//! argument `lastid`; XINFO STREAM's `FULL` became a pure token inside `full-block`), and
//! history entries were added in 7.2 (XINFO CONSUMERS, XINFO STREAM). Those 7.2+ forms are
//! taken from Redis's generated `commands.def`. Summaries are not compared: the table carries
//! Redis 7.4's wording, which differs from 7.0's. XREAD and XREADGROUP carry Redis 8.10's
//! additions as its `xread.json`/`xreadgroup.json` have them (CLAIM since 8.4.0, MAXCOUNT and
//! MAXSIZE since 8.10.0, with their history entries).
//!
//! Values are rendered compactly: maps `{k:v}`, arrays `[..]`, sets `~[..]`, status `+s`,
//! bulk strings quoted, `null` when the field is absent.
//!
//! XDELEX, XACKDEL and the `KEEPREF | DELREF | ACKED` arguments and 8.2.0 history lines of
//! XADD and XTRIM are Redis 8.6.3's (`tests/differential_refs.rs` compares them with a
//! live 8.6.3).
mod common;

use common::TestServer;
use redis::Value;

fn render(v: &Value) -> String {
    match v {
        Value::Map(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| {
                    let k = match k {
                        Value::BulkString(b) => String::from_utf8_lossy(b).to_string(),
                        other => render(other),
                    };
                    format!("{k}:{}", render(v))
                })
                .collect::<Vec<_>>()
                .join(",")
        ),
        Value::Array(a) => format!("[{}]", a.iter().map(render).collect::<Vec<_>>().join(",")),
        Value::Set(a) => format!("~[{}]", a.iter().map(render).collect::<Vec<_>>().join(",")),
        Value::SimpleString(s) => format!("+{s}"),
        Value::BulkString(b) => format!("{:?}", String::from_utf8_lossy(b)),
        Value::Int(i) => i.to_string(),
        Value::Nil => "null".into(),
        other => format!("{other:?}"),
    }
}

fn field<'a>(map: &'a Value, name: &str) -> Option<&'a Value> {
    let Value::Map(m) = map else {
        panic!("not a map: {map:?}");
    };
    m.iter()
        .find(|(k, _)| matches!(k, Value::BulkString(b) if b == name.as_bytes()))
        .map(|(_, v)| v)
}

/// (command, arguments, history) as Redis 7.4 returns them.
const EXPECTED: &[(&str, &str, &str)] = &[
    (
        "xack",
        "[{name:\"key\",type:\"key\",display_text:\"key\",key_spec_index:0},{name:\"group\",type:\"string\",display_text:\"group\"},{name:\"id\",type:\"string\",display_text:\"id\",flags:~[+multiple]}]",
        "null",
    ),
    (
        "xackdel",
        "[{name:\"key\",type:\"key\",display_text:\"key\",key_spec_index:0},{name:\"group\",type:\"string\",display_text:\"group\"},{name:\"condition\",type:\"oneof\",flags:~[+optional],arguments:[{name:\"keepref\",type:\"pure-token\",display_text:\"keepref\",token:\"KEEPREF\"},{name:\"delref\",type:\"pure-token\",display_text:\"delref\",token:\"DELREF\"},{name:\"acked\",type:\"pure-token\",display_text:\"acked\",token:\"ACKED\"}]},{name:\"ids\",type:\"block\",token:\"IDS\",arguments:[{name:\"numids\",type:\"integer\",display_text:\"numids\"},{name:\"id\",type:\"string\",display_text:\"id\",flags:~[+multiple]}]}]",
        "null",
    ),
    (
        "xadd",
        "[{name:\"key\",type:\"key\",display_text:\"key\",key_spec_index:0},{name:\"nomkstream\",type:\"pure-token\",display_text:\"nomkstream\",token:\"NOMKSTREAM\",since:\"6.2.0\",flags:~[+optional]},{name:\"condition\",type:\"oneof\",flags:~[+optional],arguments:[{name:\"keepref\",type:\"pure-token\",display_text:\"keepref\",token:\"KEEPREF\"},{name:\"delref\",type:\"pure-token\",display_text:\"delref\",token:\"DELREF\"},{name:\"acked\",type:\"pure-token\",display_text:\"acked\",token:\"ACKED\"}]},{name:\"idmp\",type:\"oneof\",flags:~[+optional],arguments:[{name:\"idmpauto-with-pid\",type:\"block\",arguments:[{name:\"idmpauto-token\",type:\"pure-token\",display_text:\"idmpauto-token\",token:\"IDMPAUTO\"},{name:\"pid\",type:\"string\",display_text:\"pid\"}]},{name:\"idmp-with-pid-iid\",type:\"block\",arguments:[{name:\"idmp-token\",type:\"pure-token\",display_text:\"idmp-token\",token:\"IDMP\"},{name:\"pid\",type:\"string\",display_text:\"pid\"},{name:\"iid\",type:\"string\",display_text:\"iid\"}]}]},{name:\"trim\",type:\"block\",flags:~[+optional],arguments:[{name:\"strategy\",type:\"oneof\",arguments:[{name:\"maxlen\",type:\"pure-token\",display_text:\"maxlen\",token:\"MAXLEN\"},{name:\"minid\",type:\"pure-token\",display_text:\"minid\",token:\"MINID\",since:\"6.2.0\"}]},{name:\"operator\",type:\"oneof\",flags:~[+optional],arguments:[{name:\"equal\",type:\"pure-token\",display_text:\"equal\",token:\"=\"},{name:\"approximately\",type:\"pure-token\",display_text:\"approximately\",token:\"~\"}]},{name:\"threshold\",type:\"string\",display_text:\"threshold\"},{name:\"count\",type:\"integer\",display_text:\"count\",token:\"LIMIT\",since:\"6.2.0\",flags:~[+optional]}]},{name:\"id-selector\",type:\"oneof\",arguments:[{name:\"auto-id\",type:\"pure-token\",display_text:\"auto-id\",token:\"*\"},{name:\"id\",type:\"string\",display_text:\"id\"}]},{name:\"data\",type:\"block\",flags:~[+multiple],arguments:[{name:\"field\",type:\"string\",display_text:\"field\"},{name:\"value\",type:\"string\",display_text:\"value\"}]}]",
        "~[[\"6.2.0\",\"Added the `NOMKSTREAM` option, `MINID` trimming strategy and the `LIMIT` option.\"],[\"7.0.0\",\"Added support for the `<ms>-*` explicit ID form.\"],[\"8.2.0\",\"Added the `KEEPREF`, `DELREF` and `ACKED` options.\"]]",
    ),
    (
        "xautoclaim",
        "[{name:\"key\",type:\"key\",display_text:\"key\",key_spec_index:0},{name:\"group\",type:\"string\",display_text:\"group\"},{name:\"consumer\",type:\"string\",display_text:\"consumer\"},{name:\"min-idle-time\",type:\"string\",display_text:\"min-idle-time\"},{name:\"start\",type:\"string\",display_text:\"start\"},{name:\"count\",type:\"integer\",display_text:\"count\",token:\"COUNT\",flags:~[+optional]},{name:\"justid\",type:\"pure-token\",display_text:\"justid\",token:\"JUSTID\",flags:~[+optional]}]",
        "~[[\"7.0.0\",\"Added an element to the reply array, containing deleted entries the command cleared from the PEL\"]]",
    ),
    (
        "xclaim",
        "[{name:\"key\",type:\"key\",display_text:\"key\",key_spec_index:0},{name:\"group\",type:\"string\",display_text:\"group\"},{name:\"consumer\",type:\"string\",display_text:\"consumer\"},{name:\"min-idle-time\",type:\"string\",display_text:\"min-idle-time\"},{name:\"id\",type:\"string\",display_text:\"id\",flags:~[+multiple]},{name:\"ms\",type:\"integer\",display_text:\"ms\",token:\"IDLE\",flags:~[+optional]},{name:\"unix-time-milliseconds\",type:\"unix-time\",display_text:\"unix-time-milliseconds\",token:\"TIME\",flags:~[+optional]},{name:\"count\",type:\"integer\",display_text:\"count\",token:\"RETRYCOUNT\",flags:~[+optional]},{name:\"force\",type:\"pure-token\",display_text:\"force\",token:\"FORCE\",flags:~[+optional]},{name:\"justid\",type:\"pure-token\",display_text:\"justid\",token:\"JUSTID\",flags:~[+optional]},{name:\"lastid\",type:\"string\",display_text:\"lastid\",token:\"LASTID\",flags:~[+optional]}]",
        "null",
    ),
    (
        "xdel",
        "[{name:\"key\",type:\"key\",display_text:\"key\",key_spec_index:0},{name:\"id\",type:\"string\",display_text:\"id\",flags:~[+multiple]}]",
        "null",
    ),
    (
        "xdelex",
        "[{name:\"key\",type:\"key\",display_text:\"key\",key_spec_index:0},{name:\"condition\",type:\"oneof\",flags:~[+optional],arguments:[{name:\"keepref\",type:\"pure-token\",display_text:\"keepref\",token:\"KEEPREF\"},{name:\"delref\",type:\"pure-token\",display_text:\"delref\",token:\"DELREF\"},{name:\"acked\",type:\"pure-token\",display_text:\"acked\",token:\"ACKED\"}]},{name:\"ids\",type:\"block\",token:\"IDS\",arguments:[{name:\"numids\",type:\"integer\",display_text:\"numids\"},{name:\"id\",type:\"string\",display_text:\"id\",flags:~[+multiple]}]}]",
        "null",
    ),
    (
        "xgroup",
        "null",
        "null",
    ),
    (
        "xgroup|create",
        "[{name:\"key\",type:\"key\",display_text:\"key\",key_spec_index:0},{name:\"group\",type:\"string\",display_text:\"group\"},{name:\"id-selector\",type:\"oneof\",arguments:[{name:\"id\",type:\"string\",display_text:\"id\"},{name:\"new-id\",type:\"pure-token\",display_text:\"new-id\",token:\"$\"}]},{name:\"mkstream\",type:\"pure-token\",display_text:\"mkstream\",token:\"MKSTREAM\",flags:~[+optional]},{name:\"entries-read\",type:\"integer\",display_text:\"entries-read\",token:\"ENTRIESREAD\",flags:~[+optional]}]",
        "~[[\"7.0.0\",\"Added the `entries_read` named argument.\"]]",
    ),
    (
        "xgroup|createconsumer",
        "[{name:\"key\",type:\"key\",display_text:\"key\",key_spec_index:0},{name:\"group\",type:\"string\",display_text:\"group\"},{name:\"consumer\",type:\"string\",display_text:\"consumer\"}]",
        "null",
    ),
    (
        "xgroup|delconsumer",
        "[{name:\"key\",type:\"key\",display_text:\"key\",key_spec_index:0},{name:\"group\",type:\"string\",display_text:\"group\"},{name:\"consumer\",type:\"string\",display_text:\"consumer\"}]",
        "null",
    ),
    (
        "xgroup|destroy",
        "[{name:\"key\",type:\"key\",display_text:\"key\",key_spec_index:0},{name:\"group\",type:\"string\",display_text:\"group\"}]",
        "null",
    ),
    (
        "xgroup|help",
        "null",
        "null",
    ),
    (
        "xgroup|setid",
        "[{name:\"key\",type:\"key\",display_text:\"key\",key_spec_index:0},{name:\"group\",type:\"string\",display_text:\"group\"},{name:\"id-selector\",type:\"oneof\",arguments:[{name:\"id\",type:\"string\",display_text:\"id\"},{name:\"new-id\",type:\"pure-token\",display_text:\"new-id\",token:\"$\"}]},{name:\"entriesread\",type:\"integer\",display_text:\"entries-read\",token:\"ENTRIESREAD\",flags:~[+optional]}]",
        "~[[\"7.0.0\",\"Added the optional `entries_read` argument.\"]]",
    ),
    (
        "xinfo",
        "null",
        "null",
    ),
    (
        "xinfo|consumers",
        "[{name:\"key\",type:\"key\",display_text:\"key\",key_spec_index:0},{name:\"group\",type:\"string\",display_text:\"group\"}]",
        "~[[\"7.2.0\",\"Added the `inactive` field.\"]]",
    ),
    (
        "xinfo|groups",
        "[{name:\"key\",type:\"key\",display_text:\"key\",key_spec_index:0}]",
        "~[[\"7.0.0\",\"Added the `entries-read` and `lag` fields\"]]",
    ),
    (
        "xinfo|help",
        "null",
        "null",
    ),
    (
        "xinfo|stream",
        "[{name:\"key\",type:\"key\",display_text:\"key\",key_spec_index:0},{name:\"full-block\",type:\"block\",flags:~[+optional],arguments:[{name:\"full\",type:\"pure-token\",display_text:\"full\",token:\"FULL\"},{name:\"count\",type:\"integer\",display_text:\"count\",token:\"COUNT\",flags:~[+optional]}]}]",
        "~[[\"6.0.0\",\"Added the `FULL` modifier.\"],[\"7.0.0\",\"Added the `max-deleted-entry-id`, `entries-added`, `recorded-first-entry-id`, `entries-read` and `lag` fields\"],[\"7.2.0\",\"Added the `active-time` field, and changed the meaning of `seen-time`.\"]]",
    ),
    (
        "xlen",
        "[{name:\"key\",type:\"key\",display_text:\"key\",key_spec_index:0}]",
        "null",
    ),
    (
        "xpending",
        "[{name:\"key\",type:\"key\",display_text:\"key\",key_spec_index:0},{name:\"group\",type:\"string\",display_text:\"group\"},{name:\"filters\",type:\"block\",flags:~[+optional],arguments:[{name:\"min-idle-time\",type:\"integer\",display_text:\"min-idle-time\",token:\"IDLE\",since:\"6.2.0\",flags:~[+optional]},{name:\"start\",type:\"string\",display_text:\"start\"},{name:\"end\",type:\"string\",display_text:\"end\"},{name:\"count\",type:\"integer\",display_text:\"count\"},{name:\"consumer\",type:\"string\",display_text:\"consumer\",flags:~[+optional]}]}]",
        "~[[\"6.2.0\",\"Added the `IDLE` option and exclusive range intervals.\"]]",
    ),
    (
        "xrange",
        "[{name:\"key\",type:\"key\",display_text:\"key\",key_spec_index:0},{name:\"start\",type:\"string\",display_text:\"start\"},{name:\"end\",type:\"string\",display_text:\"end\"},{name:\"count\",type:\"integer\",display_text:\"count\",token:\"COUNT\",flags:~[+optional]}]",
        "~[[\"6.2.0\",\"Added exclusive ranges.\"]]",
    ),
    (
        "xread",
        "[{name:\"count\",type:\"integer\",display_text:\"count\",token:\"COUNT\",flags:~[+optional]},{name:\"maxcount\",type:\"integer\",display_text:\"maxcount\",token:\"MAXCOUNT\",since:\"8.10.0\",flags:~[+optional]},{name:\"maxsize\",type:\"integer\",display_text:\"maxsize\",token:\"MAXSIZE\",since:\"8.10.0\",flags:~[+optional]},{name:\"milliseconds\",type:\"integer\",display_text:\"milliseconds\",token:\"BLOCK\",flags:~[+optional]},{name:\"streams\",type:\"block\",token:\"STREAMS\",arguments:[{name:\"key\",type:\"key\",display_text:\"key\",key_spec_index:0,flags:~[+multiple]},{name:\"id\",type:\"string\",display_text:\"id\",flags:~[+multiple]}]}]",
        "~[[\"8.10.0\",\"Added the `MAXCOUNT` and `MAXSIZE` options.\"]]",
    ),
    (
        "xreadgroup",
        "[{name:\"group-block\",type:\"block\",token:\"GROUP\",arguments:[{name:\"group\",type:\"string\",display_text:\"group\"},{name:\"consumer\",type:\"string\",display_text:\"consumer\"}]},{name:\"count\",type:\"integer\",display_text:\"count\",token:\"COUNT\",flags:~[+optional]},{name:\"maxcount\",type:\"integer\",display_text:\"maxcount\",token:\"MAXCOUNT\",since:\"8.10.0\",flags:~[+optional]},{name:\"maxsize\",type:\"integer\",display_text:\"maxsize\",token:\"MAXSIZE\",since:\"8.10.0\",flags:~[+optional]},{name:\"milliseconds\",type:\"integer\",display_text:\"milliseconds\",token:\"BLOCK\",flags:~[+optional]},{name:\"min-idle-time\",type:\"integer\",display_text:\"min-idle-time\",token:\"CLAIM\",since:\"8.4.0\",flags:~[+optional]},{name:\"noack\",type:\"pure-token\",display_text:\"noack\",token:\"NOACK\",flags:~[+optional]},{name:\"streams\",type:\"block\",token:\"STREAMS\",arguments:[{name:\"key\",type:\"key\",display_text:\"key\",key_spec_index:0,flags:~[+multiple]},{name:\"id\",type:\"string\",display_text:\"id\",flags:~[+multiple]}]}]",
        "~[[\"8.4.0\",\"Added the `CLAIM` option.\"],[\"8.10.0\",\"Added the `MAXCOUNT` and `MAXSIZE` options.\"]]",
    ),
    (
        "xrevrange",
        "[{name:\"key\",type:\"key\",display_text:\"key\",key_spec_index:0},{name:\"end\",type:\"string\",display_text:\"end\"},{name:\"start\",type:\"string\",display_text:\"start\"},{name:\"count\",type:\"integer\",display_text:\"count\",token:\"COUNT\",flags:~[+optional]}]",
        "~[[\"6.2.0\",\"Added exclusive ranges.\"]]",
    ),
    (
        "xsetid",
        "[{name:\"key\",type:\"key\",display_text:\"key\",key_spec_index:0},{name:\"last-id\",type:\"string\",display_text:\"last-id\"},{name:\"entries-added\",type:\"integer\",display_text:\"entries-added\",token:\"ENTRIESADDED\",since:\"7.0.0\",flags:~[+optional]},{name:\"max-deleted-id\",type:\"string\",display_text:\"max-deleted-id\",token:\"MAXDELETEDID\",since:\"7.0.0\",flags:~[+optional]}]",
        "~[[\"7.0.0\",\"Added the `entries_added` and `max_deleted_entry_id` arguments.\"]]",
    ),
    (
        "xtrim",
        "[{name:\"key\",type:\"key\",display_text:\"key\",key_spec_index:0},{name:\"trim\",type:\"block\",arguments:[{name:\"strategy\",type:\"oneof\",arguments:[{name:\"maxlen\",type:\"pure-token\",display_text:\"maxlen\",token:\"MAXLEN\"},{name:\"minid\",type:\"pure-token\",display_text:\"minid\",token:\"MINID\",since:\"6.2.0\"}]},{name:\"operator\",type:\"oneof\",flags:~[+optional],arguments:[{name:\"equal\",type:\"pure-token\",display_text:\"equal\",token:\"=\"},{name:\"approximately\",type:\"pure-token\",display_text:\"approximately\",token:\"~\"}]},{name:\"threshold\",type:\"string\",display_text:\"threshold\"},{name:\"count\",type:\"integer\",display_text:\"count\",token:\"LIMIT\",since:\"6.2.0\",flags:~[+optional]},{name:\"condition\",type:\"oneof\",flags:~[+optional],arguments:[{name:\"keepref\",type:\"pure-token\",display_text:\"keepref\",token:\"KEEPREF\"},{name:\"delref\",type:\"pure-token\",display_text:\"delref\",token:\"DELREF\"},{name:\"acked\",type:\"pure-token\",display_text:\"acked\",token:\"ACKED\"}]}]}]",
        "~[[\"6.2.0\",\"Added the `MINID` trimming strategy and the `LIMIT` option.\"],[\"8.2.0\",\"Added the `KEEPREF`, `DELREF` and `ACKED` options.\"]]",
    ),
];

fn docs_of(con: &mut redis::Connection, name: &str) -> Value {
    let reply: Value = redis::cmd("COMMAND")
        .arg("DOCS")
        .arg(name)
        .query(con)
        .unwrap();
    let Value::Map(entries) = reply else {
        panic!("COMMAND DOCS {name}: {reply:?}");
    };
    assert_eq!(entries.len(), 1, "COMMAND DOCS {name}");
    let (k, v) = entries.into_iter().next().unwrap();
    assert_eq!(k, Value::BulkString(name.as_bytes().to_vec()));
    v
}

#[test]
fn stream_command_docs_match_redis() {
    let server = TestServer::start();
    let mut con = server.conn3();
    for (name, args, history) in EXPECTED {
        let doc = docs_of(&mut con, name);
        assert_eq!(
            field(&doc, "group").map(render).as_deref(),
            Some("\"stream\""),
            "{name} group"
        );
        assert!(field(&doc, "since").is_some(), "{name} since");
        assert_eq!(
            field(&doc, "arguments").map_or("null".into(), render),
            *args,
            "{name} arguments"
        );
        assert_eq!(
            field(&doc, "history").map_or("null".into(), render),
            *history,
            "{name} history"
        );
    }
}

#[test]
fn containers_list_their_subcommands_with_docs() {
    let server = TestServer::start();
    let mut con = server.conn3();
    for (container, subs) in [
        (
            "xgroup",
            &[
                "create",
                "createconsumer",
                "delconsumer",
                "destroy",
                "help",
                "setid",
            ][..],
        ),
        ("xinfo", &["consumers", "groups", "help", "stream"][..]),
        // Rill's broker policies (issue #16).
        (
            "rill.policy",
            &["del", "delgroup", "get", "group", "help", "set"][..],
        ),
    ] {
        let doc = docs_of(&mut con, container);
        let Some(Value::Map(listed)) = field(&doc, "subcommands") else {
            panic!("{container}: no subcommands map");
        };
        let mut names: Vec<String> = listed.iter().map(|(k, _)| render(k)).collect();
        names.sort();
        let want: Vec<String> = subs
            .iter()
            .map(|s| format!("\"{container}|{s}\""))
            .collect();
        assert_eq!(names, want);
        for (k, v) in listed {
            let sub = render(k);
            // HELP takes no arguments, so Redis leaves the field out.
            assert_eq!(
                field(v, "arguments").is_some(),
                !sub.ends_with("|help\""),
                "{sub}"
            );
        }
    }
    // A subcommand can be asked for directly, as Redis allows.
    let doc = docs_of(&mut con, "xgroup|create");
    assert!(field(&doc, "arguments").is_some());
    let doc = docs_of(&mut con, "rill.policy|set");
    assert_eq!(
        field(&doc, "arguments").map(render).as_deref(),
        Some("[{name:\"key\",type:\"key\",display_text:\"key\",key_spec_index:0},{name:\"max-age\",type:\"integer\",display_text:\"max-age\",token:\"MAXAGE\",flags:~[+optional]},{name:\"max-bytes\",type:\"integer\",display_text:\"max-bytes\",token:\"MAXBYTES\",flags:~[+optional]},{name:\"max-len\",type:\"integer\",display_text:\"max-len\",token:\"MAXLEN\",flags:~[+optional]},{name:\"condition\",type:\"oneof\",flags:~[+optional],arguments:[{name:\"keepref\",type:\"pure-token\",display_text:\"keepref\",token:\"KEEPREF\"},{name:\"delref\",type:\"pure-token\",display_text:\"delref\",token:\"DELREF\"},{name:\"acked\",type:\"pure-token\",display_text:\"acked\",token:\"ACKED\"}]}]")
    );
}

#[test]
fn resp2_docs_are_flat_arrays() {
    let server = TestServer::start();
    let mut con = server.conn();
    let reply: Value = redis::cmd("COMMAND")
        .arg("DOCS")
        .arg("xlen")
        .query(&mut con)
        .unwrap();
    // RESP2: the map becomes [name, [k, v, ...]] and every set an array.
    assert_eq!(
        render(&reply),
        r#"["xlen",["summary","Return the number of messages in a stream.","since","5.0.0","group","stream","complexity","O(1)","arguments",[["name","key","type","key","display_text","key","key_spec_index",0]]]]"#
    );
}

#[test]
fn command_info_tips_and_key_specs() {
    let server = TestServer::start();
    let mut con = server.conn3();
    let info = |con: &mut redis::Connection, name: &str| -> Vec<Value> {
        let reply: Value = redis::cmd("COMMAND")
            .arg("INFO")
            .arg(name)
            .query(con)
            .unwrap();
        let Value::Array(mut v) = reply else {
            panic!("{reply:?}")
        };
        let Value::Array(entry) = v.remove(0) else {
            panic!("{name}")
        };
        entry
    };
    // Tips as Redis 7.4 sends them (XADD, XTRIM, XCLAIM, XAUTOCLAIM, XPENDING and XINFO
    // CONSUMERS are nondeterministic; the others carry none).
    for (name, tips) in [
        ("xadd", r#"~["nondeterministic_output"]"#),
        ("xtrim", r#"~["nondeterministic_output"]"#),
        ("xpending", r#"~["nondeterministic_output"]"#),
        ("xclaim", r#"~["nondeterministic_output"]"#),
        ("xautoclaim", r#"~["nondeterministic_output"]"#),
        ("xlen", "~[]"),
        ("xread", "~[]"),
    ] {
        assert_eq!(render(&info(&mut con, name)[7]), tips, "{name} tips");
    }
    assert_eq!(
        render(&info(&mut con, "xadd")[8]),
        r#"~[{notes:"UPDATE instead of INSERT because of the optional trimming feature",flags:~[+RW,+update],begin_search:{type:"index",spec:{index:1}},find_keys:{type:"range",spec:{lastkey:0,keystep:1,limit:0}}}]"#
    );
    // XREAD finds its keys after STREAMS, half of the remaining arguments.
    assert_eq!(
        render(&info(&mut con, "xread")[8]),
        r#"~[{flags:~[+RO,+access],begin_search:{type:"keyword",spec:{keyword:"STREAMS",startfrom:1}},find_keys:{type:"range",spec:{lastkey:-1,keystep:1,limit:2}}}]"#
    );
    // A command without subcommands reports an empty set there, like Redis.
    assert_eq!(render(&info(&mut con, "xlen")[9]), "~[]");
}
