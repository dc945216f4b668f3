//! What every stream command does to a WATCHed key, against Redis 8.6.3: client A runs
//! `WATCH k`, client B runs the command, then A runs `MULTI`, `PING`, `EXEC`, and A's EXEC
//! reply (a null array when the transaction aborted, `[PONG]` when it ran) must be
//! byte-identical on both servers, in RESP2 and RESP3.
//!
//! In Redis 8.6.3 only a command that changes the stream's *entries* or creates the key
//! touches watchers (`keyModified(…, 1)` in `t_stream.c`): XADD that adds, XTRIM / XDEL /
//! XDELEX / XACKDEL that delete at least one entry, XGROUP CREATE MKSTREAM that creates the
//! key. Group and consumer changes (XACK, XCLAIM, XAUTOCLAIM, XREADGROUP, XGROUP SETID /
//! DESTROY / CREATECONSUMER / DELCONSUMER, XSETID, XCFGSET, XIDMPRECORD) only update the
//! key's LRM (`keyModified(…, 0)`) and leave WATCH alone.
//!
//! Each case runs on a key of its own, so no case's setup or command can touch another's
//! watch. The `aborts` column says what Redis does; the test also asserts Redis agrees with
//! it, so the table documents the semantics and a change of Redis's behaviour is noticed.
//! XNACK (Redis 8.8) is not here: the reference server does not have it (see tests/xnack.rs).
#![cfg(feature = "differential")]

mod common;

use common::reference::Twins;
use common::Raw;

/// Three entries, 1-0..3-0.
const S: &str = "XADD {k} 1-0 f v; XADD {k} 2-0 f v; XADD {k} 3-0 f v";
/// [`S`] and group `g` at 0, nothing read.
const G: &str = "XADD {k} 1-0 f v; XADD {k} 2-0 f v; XADD {k} 3-0 f v; XGROUP CREATE {k} g 0";
/// [`G`] with all three entries pending for consumer `c1`.
const P: &str = "XADD {k} 1-0 f v; XADD {k} 2-0 f v; XADD {k} 3-0 f v; XGROUP CREATE {k} g 0; \
                 XREADGROUP GROUP g c1 STREAMS {k} >";
/// [`P`], and a second group `g2` that has 1-0..3-0 pending too (so ACKED deletes keep them).
const P2: &str = "XADD {k} 1-0 f v; XADD {k} 2-0 f v; XADD {k} 3-0 f v; XGROUP CREATE {k} g 0; \
                  XREADGROUP GROUP g c1 STREAMS {k} >; XGROUP CREATE {k} g2 0; \
                  XREADGROUP GROUP g2 c1 STREAMS {k} >";
/// [`P`] with 1-0 deleted from the stream but still pending (XDEL keeps references).
const PD: &str = "XADD {k} 1-0 f v; XADD {k} 2-0 f v; XADD {k} 3-0 f v; XGROUP CREATE {k} g 0; \
                  XREADGROUP GROUP g c1 STREAMS {k} >; XDEL {k} 1-0";
/// An empty stream with group `g` (XGROUP CREATE MKSTREAM).
const E: &str = "XGROUP CREATE {k} g $ MKSTREAM";
/// One entry added with IDMP producer `p`, idempotent ID `i1`.
const I: &str = "XADD {k} IDMP p i1 * f v";

/// (name, setup commands separated by `;`, the command client B runs, whether Redis aborts
/// A's transaction). `{k}` is the case's own key.
#[rustfmt::skip]
const CASES: &[(&str, &str, &str, bool)] = &[
    // XADD
    ("xadd creates the key",            "", "XADD {k} 1-0 f v", true),
    ("xadd appends",                    S,  "XADD {k} 4-0 f v", true),
    ("xadd nomkstream, no key",         "", "XADD {k} NOMKSTREAM 1-0 f v", false),
    ("xadd nomkstream, key",            S,  "XADD {k} NOMKSTREAM 4-0 f v", true),
    ("xadd maxlen trims",               S,  "XADD {k} MAXLEN 1 4-0 f v", true),
    ("xadd maxlen trims nothing",       S,  "XADD {k} MAXLEN 10 4-0 f v", true),
    ("xadd minid trims",                S,  "XADD {k} MINID 3 4-0 f v", true),
    ("xadd approx maxlen limit",        S,  "XADD {k} MAXLEN ~ 1 LIMIT 10 4-0 f v", true),
    ("xadd acked maxlen, all pending",  P,  "XADD {k} ACKED MAXLEN 1 4-0 f v", true),
    ("xadd delref maxlen",              P,  "XADD {k} DELREF MAXLEN 1 4-0 f v", true),
    ("xadd id too small",               S,  "XADD {k} 2-0 f v", false),
    ("xadd id 0-0",                     "", "XADD {k} 0-0 f v", false),
    ("xadd wrong type",                 "SET {k} x", "XADD {k} 1-0 f v", false),
    ("xadd idmp new",                   "", "XADD {k} IDMP p i1 * f v", true),
    ("xadd idmp duplicate",             I,  "XADD {k} IDMP p i1 * f v", false),
    ("xadd idmpauto duplicate",         "XADD {k} IDMPAUTO p * f v", "XADD {k} IDMPAUTO p * f v", false),
    // XTRIM
    ("xtrim maxlen removes",            S,  "XTRIM {k} MAXLEN 1", true),
    ("xtrim maxlen removes nothing",    S,  "XTRIM {k} MAXLEN 10", false),
    ("xtrim minid removes",             S,  "XTRIM {k} MINID 2", true),
    ("xtrim minid removes nothing",     S,  "XTRIM {k} MINID 1", false),
    ("xtrim approx, nothing whole",     S,  "XTRIM {k} MAXLEN ~ 1", false),
    ("xtrim no key",                    "", "XTRIM {k} MAXLEN 0", false),
    ("xtrim acked, all pending",        P,  "XTRIM {k} ACKED MAXLEN 0", false),
    ("xtrim delref, pending",           P,  "XTRIM {k} DELREF MAXLEN 1", true),
    ("xtrim keepref, pending",          P,  "XTRIM {k} KEEPREF MAXLEN 1", true),
    // XDEL
    ("xdel existing",                   S,  "XDEL {k} 2-0", true),
    ("xdel missing id",                 S,  "XDEL {k} 9-0", false),
    ("xdel missing and existing",       S,  "XDEL {k} 9-0 1-0", true),
    ("xdel no key",                     "", "XDEL {k} 1-0", false),
    ("xdel already deleted",            PD, "XDEL {k} 1-0", false),
    // XDELEX
    ("xdelex keepref existing",         S,  "XDELEX {k} IDS 1 1-0", true),
    ("xdelex missing id",               S,  "XDELEX {k} IDS 1 9-0", false),
    ("xdelex no key",                   "", "XDELEX {k} IDS 1 1-0", false),
    ("xdelex acked, pending",           P,  "XDELEX {k} ACKED IDS 2 1-0 2-0", false),
    ("xdelex acked, nothing pending",   G,  "XDELEX {k} ACKED IDS 1 1-0", false),
    ("xdelex acked, delivered, acked",  "XADD {k} 1-0 f v; XGROUP CREATE {k} g 0; XREADGROUP GROUP g c STREAMS {k} >; XACK {k} g 1-0", "XDELEX {k} ACKED IDS 1 1-0", true),
    ("xdelex delref, pending",          P,  "XDELEX {k} DELREF IDS 1 1-0", true),
    ("xdelex delref, deleted pending",  PD, "XDELEX {k} DELREF IDS 1 1-0", false),
    // XACK
    ("xack pending",                    P,  "XACK {k} g 1-0", false),
    ("xack all pending",                P,  "XACK {k} g 1-0 2-0 3-0", false),
    ("xack unknown id",                 P,  "XACK {k} g 9-0", false),
    ("xack not pending",                G,  "XACK {k} g 1-0", false),
    ("xack no group",                   S,  "XACK {k} g 1-0", false),
    ("xack no key",                     "", "XACK {k} g 1-0", false),
    ("xack deleted pending",            PD, "XACK {k} g 1-0", false),
    // XACKDEL
    ("xackdel keepref pending",         P,  "XACKDEL {k} g IDS 1 1-0", true),
    ("xackdel delref pending",          P,  "XACKDEL {k} g DELREF IDS 1 1-0", true),
    ("xackdel acked, last reference",   P,  "XACKDEL {k} g ACKED IDS 1 1-0", true),
    ("xackdel acked, still referenced", P2, "XACKDEL {k} g ACKED IDS 1 1-0", false),
    ("xackdel unknown id",              P,  "XACKDEL {k} g IDS 1 9-0", false),
    ("xackdel not pending",             G,  "XACKDEL {k} g IDS 1 1-0", false),
    ("xackdel pending, entry deleted",  PD, "XACKDEL {k} g IDS 1 1-0", false),
    ("xackdel delref, entry deleted",   PD, "XACKDEL {k} g DELREF IDS 1 1-0", false),
    ("xackdel no group",                S,  "XACKDEL {k} g IDS 1 1-0", false),
    ("xackdel no key",                  "", "XACKDEL {k} g IDS 1 1-0", false),
    // XCLAIM
    ("xclaim pending",                  P,  "XCLAIM {k} g c2 0 1-0", false),
    ("xclaim justid",                   P,  "XCLAIM {k} g c2 0 1-0 2-0 JUSTID", false),
    ("xclaim same consumer",            P,  "XCLAIM {k} g c1 0 1-0", false),
    ("xclaim force, not pending",       G,  "XCLAIM {k} g c2 0 1-0 FORCE", false),
    ("xclaim force justid lastid",      G,  "XCLAIM {k} g c2 0 2-0 FORCE JUSTID LASTID 3-0", false),
    ("xclaim nothing",                  P,  "XCLAIM {k} g c2 0 9-0", false),
    ("xclaim not idle enough",          P,  "XCLAIM {k} g c2 3600000 1-0", false),
    ("xclaim deleted pending",          PD, "XCLAIM {k} g c2 0 1-0", false),
    ("xclaim retrycount idle",          P,  "XCLAIM {k} g c2 0 1-0 IDLE 5 RETRYCOUNT 7 JUSTID", false),
    // XAUTOCLAIM
    ("xautoclaim all",                  P,  "XAUTOCLAIM {k} g c2 0 0", false),
    ("xautoclaim justid count",         P,  "XAUTOCLAIM {k} g c2 0 0 COUNT 1 JUSTID", false),
    ("xautoclaim nothing pending",      G,  "XAUTOCLAIM {k} g c2 0 0", false),
    ("xautoclaim not idle enough",      P,  "XAUTOCLAIM {k} g c2 3600000 0", false),
    ("xautoclaim deleted pending",      PD, "XAUTOCLAIM {k} g c2 0 0", false),
    // XREADGROUP
    ("xreadgroup new entries",          G,  "XREADGROUP GROUP g c1 STREAMS {k} >", false),
    ("xreadgroup new consumer, none",   E,  "XREADGROUP GROUP g c9 STREAMS {k} >", false),
    ("xreadgroup nothing new",          P,  "XREADGROUP GROUP g c1 STREAMS {k} >", false),
    ("xreadgroup pel re-read",          P,  "XREADGROUP GROUP g c1 STREAMS {k} 0", false),
    ("xreadgroup pel re-read, deleted", PD, "XREADGROUP GROUP g c1 STREAMS {k} 0", false),
    ("xreadgroup noack",                G,  "XREADGROUP GROUP g c1 NOACK STREAMS {k} >", false),
    ("xreadgroup count",                G,  "XREADGROUP GROUP g c1 COUNT 1 STREAMS {k} >", false),
    ("xreadgroup claim",                P,  "XREADGROUP GROUP g c2 CLAIM 0 STREAMS {k} >", false),
    ("xreadgroup claim, deleted",       PD, "XREADGROUP GROUP g c2 CLAIM 0 STREAMS {k} >", false),
    ("xreadgroup claim, none idle",     P,  "XREADGROUP GROUP g c2 CLAIM 3600000 STREAMS {k} >", false),
    // XGROUP
    ("xgroup create",                   S,  "XGROUP CREATE {k} g 0", false),
    ("xgroup create $ entriesread",     S,  "XGROUP CREATE {k} g $ ENTRIESREAD 3", false),
    ("xgroup create mkstream, no key",  "", "XGROUP CREATE {k} g $ MKSTREAM", true),
    ("xgroup create mkstream, key",     S,  "XGROUP CREATE {k} g $ MKSTREAM", false),
    ("xgroup create busygroup",         G,  "XGROUP CREATE {k} g 0", false),
    ("xgroup create no key",            "", "XGROUP CREATE {k} g 0", false),
    ("xgroup setid",                    P,  "XGROUP SETID {k} g 0", false),
    ("xgroup setid $ entriesread",      G,  "XGROUP SETID {k} g $ ENTRIESREAD 3", false),
    ("xgroup setid no group",           S,  "XGROUP SETID {k} g 0", false),
    ("xgroup destroy",                  P,  "XGROUP DESTROY {k} g", false),
    ("xgroup destroy no group",         S,  "XGROUP DESTROY {k} g", false),
    ("xgroup createconsumer",           G,  "XGROUP CREATECONSUMER {k} g c1", false),
    ("xgroup createconsumer exists",    P,  "XGROUP CREATECONSUMER {k} g c1", false),
    ("xgroup delconsumer pending",      P,  "XGROUP DELCONSUMER {k} g c1", false),
    ("xgroup delconsumer missing",      G,  "XGROUP DELCONSUMER {k} g c9", false),
    // XSETID, XCFGSET, XIDMPRECORD
    ("xsetid",                          S,  "XSETID {k} 9-0", false),
    ("xsetid entriesadded maxdeleted",  S,  "XSETID {k} 9-0 ENTRIESADDED 10 MAXDELETEDID 5-0", false),
    ("xsetid too small",                S,  "XSETID {k} 1-0", false),
    ("xsetid no key",                   "", "XSETID {k} 1-0", false),
    ("xcfgset changes",                 S,  "XCFGSET {k} IDMP-DURATION 5 IDMP-MAXSIZE 10", false),
    ("xcfgset clears history",          I,  "XCFGSET {k} IDMP-DURATION 5", false),
    ("xcfgset same values",             S,  "XCFGSET {k} IDMP-DURATION 100 IDMP-MAXSIZE 100", false),
    ("xidmprecord",                     S,  "XIDMPRECORD {k} p i1 2-0", false),
    // Reads, for contrast
    ("xrange",                          P,  "XRANGE {k} - +", false),
    ("xpending",                        P,  "XPENDING {k} g - + 10", false),
    ("xinfo stream full",               P,  "XINFO STREAM {k} FULL", false),
];

/// Idle times and clock-made IDs differ between the servers by construction: integers
/// directly followed by another integer (`idle, delivery-count` in XPENDING rows and CLAIM
/// reads) become `:IDLE`, IDs of 13-digit milliseconds become `<ID>`. XINFO is not compared.
fn mask(reply: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(reply);
    let lines: Vec<&str> = text.split("\r\n").collect();
    let clock_id = |l: &str| {
        l.split_once('-').is_some_and(|(ms, seq)| {
            ms.len() >= 13
                && ms.bytes().all(|b| b.is_ascii_digit())
                && seq.bytes().all(|b| b.is_ascii_digit())
        })
    };
    let mut out = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        let next_is_int = lines.get(i + 1).is_some_and(|n| n.starts_with(':'));
        if line.starts_with(':') && next_is_int {
            out.push(":IDLE");
        } else if clock_id(line) {
            out.push("<ID>");
        } else {
            out.push(line);
        }
    }
    out.join("\r\n").into_bytes()
}

fn words(command: &str, key: &str) -> Vec<String> {
    command
        .split_whitespace()
        .map(|w| w.replace("{k}", key))
        .collect()
}

/// A second connection (client A) to `port`, speaking `protocol`.
fn watcher(port: u16, protocol: u8) -> Raw {
    let mut conn = Raw::connect(port);
    if protocol == 3 {
        let hello = conn.cmd(&["HELLO", "3"]);
        assert_eq!(
            hello[0],
            b'%',
            "HELLO 3: {}",
            String::from_utf8_lossy(&hello)
        );
    }
    conn
}

#[test]
fn stream_commands_touch_watched_keys_as_redis_does() {
    let mut t = Twins::start(&[]);
    let mut failures = Vec::new();
    t.each_protocol(|t| {
        let mut rill_a = watcher(t.rill.port, t.protocol);
        let mut redis_a = watcher(t.redis.port, t.protocol);
        let aborted: &[u8] = if t.protocol == 2 { b"*-1\r\n" } else { b"_\r\n" };
        for (n, &(name, setup, command, aborts)) in CASES.iter().enumerate() {
            let key = format!("w{n}");
            let resp = t.protocol;
            for step in setup.split(';').filter(|s| !s.trim().is_empty()) {
                let args = words(step, &key);
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let (rill, redis) = t.both(&args);
                if mask(&rill) != mask(&redis) {
                    failures.push(format!(
                        "RESP{resp} {name}: setup {step:?}: Rill {:?}, Redis {:?}",
                        String::from_utf8_lossy(&rill),
                        String::from_utf8_lossy(&redis)
                    ));
                }
            }
            assert_eq!(rill_a.cmd(&["WATCH", &key]), b"+OK\r\n");
            assert_eq!(redis_a.cmd(&["WATCH", &key]), b"+OK\r\n");

            let args = words(command, &key);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let (rill, redis) = t.both(&args);
            if !command.starts_with("XINFO") && mask(&rill) != mask(&redis) {
                failures.push(format!(
                    "RESP{resp} {name}: reply to {command:?}: Rill {:?}, Redis {:?}",
                    String::from_utf8_lossy(&rill),
                    String::from_utf8_lossy(&redis)
                ));
            }

            let exec = |a: &mut Raw| {
                assert_eq!(a.cmd(&["MULTI"]), b"+OK\r\n");
                assert_eq!(a.cmd(&["PING"]), b"+QUEUED\r\n");
                a.cmd(&["EXEC"])
            };
            let (rill_exec, redis_exec) = (exec(&mut rill_a), exec(&mut redis_a));
            if rill_exec != redis_exec {
                failures.push(format!(
                    "RESP{resp} {name}: EXEC after WATCH and {command:?}: Rill {:?}, Redis {:?}",
                    String::from_utf8_lossy(&rill_exec),
                    String::from_utf8_lossy(&redis_exec)
                ));
            }
            if (redis_exec == aborted) != aborts {
                failures.push(format!(
                    "RESP{resp} {name}: the table says Redis {} the transaction; Redis 8.6.3 replied {:?}",
                    if aborts { "aborts" } else { "runs" },
                    String::from_utf8_lossy(&redis_exec)
                ));
            }
        }
    });
    assert!(
        failures.is_empty(),
        "{} difference(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
