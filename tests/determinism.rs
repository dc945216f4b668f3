//! Determinism: the state a restart rebuilds is the state the live server had.
//!
//! For random sequences of every write command (seeded, so a failure replays), the
//! digest of the whole dataset (`DEBUG DIGEST`, see `src/engine/digest.rs` for what it
//! covers) taken from the live server must equal the digest after
//! - a SIGKILL and a restart, which rebuilds everything by replaying the log from empty
//!   (automatic checkpoints are off: `--compaction-threshold 0`), and
//! - a clean `SHUTDOWN` and a restart, which loads the checkpoint written at shutdown.
//!
//! This is what issue #11 asks of the log: one engine function applies the same typed
//! records live and in recovery, so the two states cannot drift apart.
//!
//! Time is part of the state (TTLs, PEL delivery times, consumers' seen and active
//! times), so the run sleeps now and then to make times differ, and the digest is taken
//! only once every short TTL set during the run has passed: the digest leaves out keys
//! whose TTL has passed, and a key that expired between the two readings would
//! otherwise differ for a reason that is not a defect.
//!
//! On a mismatch the failure names the seed, the fields that differ (`consumer.seen-time:
//! 14 records`), examples with both values, and the differing lines of the two
//! `DEBUG DIGEST-DUMP`s, each under the key it belongs to.
//!
//! Knobs: `RILL_DET_SEED` runs one seed instead of the fixed list; `RILL_DET_STEPS` sets
//! the commands per seed; `RILL_DET_KEEP=<dir>` copies each seed's data directory there
//! before the restart, to read the log that failed.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::BufRead;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use common::{Raw, TestServer};

/// Small nodes, so that a few dozen entries per stream make `~` trims remove whole nodes
/// and XDEL leave tombstones in them.
///
/// IDMP histories last a day (as `XCFGSET` below keeps them): IIDs are forgotten by a
/// background sweep at a time no command chooses, which would move the state between the
/// live digest and the restart (expiry across restarts is tests/idmp.rs's). A
/// non-default duration also makes every new stream log its limits.
const SERVER_ARGS: &[&str] = &[
    "--compaction-threshold",
    "0",
    "--stream-node-max-entries",
    "6",
    "--stream-idmp-duration",
    "86400",
];

const STEPS: usize = 2500;
const CRASH_SEEDS: &[u64] = &[1, 2, 3];
const SHUTDOWN_SEEDS: &[u64] = &[11, 12];

const KEYS: &[&str] = &["s:a", "s:b", "s:c", "s:d", "str", "mix"];
const GROUPS: &[&str] = &["g1", "g2"];
const CONSUMERS: &[&str] = &["alice", "bob", "carol"];
const FIELDS: &[&str] = &["f", "g", "payload", "n"];
/// The reference policies of XADD, XTRIM, XDELEX and XACKDEL (Redis 8.2).
const REF_POLICIES: &[&str] = &["KEEPREF", "DELREF", "ACKED"];

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn seeds(fixed: &[u64]) -> Vec<u64> {
    match std::env::var("RILL_DET_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        Some(seed) => vec![seed],
        None => fixed.to_vec(),
    }
}

fn steps() -> usize {
    std::env::var("RILL_DET_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(STEPS)
}

// ---------------------------------------------------------------------------------------
// The random workload
// ---------------------------------------------------------------------------------------

type Argv = Vec<Vec<u8>>;

fn argv(parts: &[&str]) -> Argv {
    parts.iter().map(|p| p.as_bytes().to_vec()).collect()
}

/// What the generator remembers to aim its commands: IDs the server handed out (so XDEL,
/// XACK, XCLAIM, MINID and explicit IDs hit real entries), the selected database, and
/// when the last short TTL ends.
struct Workload {
    rng: StdRng,
    ids: Vec<String>,
    db: usize,
    short_ttls_until: u64,
    /// The last XADD with IDMP/IDMPAUTO, re-sent now and then as a producer retries.
    last_idmp: Option<Argv>,
}

impl Workload {
    fn new(seed: u64) -> Self {
        Workload {
            rng: StdRng::seed_from_u64(seed),
            ids: Vec::new(),
            db: 0,
            short_ttls_until: 0,
            last_idmp: None,
        }
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.rng.gen_range(0..from.len())]
    }

    /// Mostly streams: four of the six keys are meant for them.
    fn key(&mut self) -> &'static str {
        if self.rng.gen_bool(0.8) {
            self.pick(&KEYS[..4])
        } else {
            self.pick(KEYS)
        }
    }

    fn known_id(&mut self) -> String {
        if self.ids.is_empty() || self.rng.gen_bool(0.05) {
            return format!("0-{}", self.rng.gen_range(0..3));
        }
        let i = self.rng.gen_range(0..self.ids.len());
        self.ids[i].clone()
    }

    /// An ID at or just after a known one: explicit XADD and XSETID IDs that sometimes
    /// succeed.
    fn near_id(&mut self) -> String {
        let id = self.known_id();
        let (ms, seq) = id.split_once('-').unwrap_or(("0", "0"));
        let ms: u64 = ms.parse().unwrap_or(0);
        let seq: u64 = seq.parse().unwrap_or(0);
        match self.rng.gen_range(0..3) {
            0 => format!("{}-{}", ms, seq + self.rng.gen_range(0..3)),
            1 => format!(
                "{}-{}",
                ms + self.rng.gen_range(1..4),
                self.rng.gen_range(0..3)
            ),
            _ => format!("{}-{}", ms + self.rng.gen_range(20..2000), 0),
        }
    }

    fn remember(&mut self, reply: &[u8]) {
        for line in reply.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let Ok(text) = std::str::from_utf8(line) else {
                continue;
            };
            let is_id = text.split_once('-').is_some_and(|(a, b)| {
                !a.is_empty()
                    && !b.is_empty()
                    && a.bytes().all(|c| c.is_ascii_digit())
                    && b.bytes().all(|c| c.is_ascii_digit())
            });
            if is_id {
                self.ids.push(text.to_string());
            }
        }
        if self.ids.len() > 96 {
            self.ids.drain(..self.ids.len() - 64);
        }
    }

    fn short_ttl_ms(&mut self) -> u64 {
        let ttl = self.rng.gen_range(50..=300);
        self.short_ttls_until = self.short_ttls_until.max(now_ms() + ttl);
        ttl
    }

    fn value(&mut self) -> Vec<u8> {
        let len = if self.rng.gen_bool(0.05) {
            self.rng.gen_range(300..700)
        } else {
            self.rng.gen_range(0..24)
        };
        // Binary on purpose: CR, LF and NUL must survive the log too.
        (0..len).map(|_| self.rng.gen::<u8>()).collect()
    }

    fn trim_clause(&mut self, out: &mut Argv) {
        let minid = self.rng.gen_bool(0.4);
        out.push(if minid {
            b"MINID".to_vec()
        } else {
            b"MAXLEN".to_vec()
        });
        let op = self.pick(&["", "=", "~", "~"]);
        if !op.is_empty() {
            out.push(op.as_bytes().to_vec());
        }
        let threshold = if minid {
            self.known_id()
        } else {
            self.rng.gen_range(0..30).to_string()
        };
        out.push(threshold.into_bytes());
        if op == "~" && self.rng.gen_bool(0.4) {
            out.push(b"LIMIT".to_vec());
            out.push(self.rng.gen_range(0..20).to_string().into_bytes());
        }
        if self.rng.gen_bool(0.5) {
            out.push(self.pick(REF_POLICIES).as_bytes().to_vec());
        }
    }

    /// `[KEEPREF|DELREF|ACKED] IDS n id…` of XDELEX and XACKDEL.
    fn ids_block(&mut self, out: &mut Argv) {
        if self.rng.gen_bool(0.8) {
            out.push(self.pick(REF_POLICIES).as_bytes().to_vec());
        }
        let n = self.rng.gen_range(1..=3);
        out.push(b"IDS".to_vec());
        out.push(n.to_string().into_bytes());
        for _ in 0..n {
            out.push(self.known_id().into_bytes());
        }
    }

    fn xadd(&mut self, key: &str) -> Argv {
        if self.rng.gen_bool(0.03) {
            return self.xcfgset(key);
        }
        if self.rng.gen_bool(0.25) {
            if let Some(retry) = &self.last_idmp {
                return retry.clone();
            }
        }
        let mut out = argv(&["XADD", key]);
        if self.rng.gen_bool(0.1) {
            out.push(b"NOMKSTREAM".to_vec());
        }
        if self.rng.gen_bool(0.3) {
            self.trim_clause(&mut out);
        }
        let id = match self.rng.gen_range(0..10) {
            0 | 1 => self.near_id(),
            2 => {
                let near = self.near_id();
                format!("{}-*", near.split('-').next().unwrap_or("0"))
            }
            _ => "*".to_string(),
        };
        if id == "*" && self.rng.gen_bool(0.5) {
            // Few producers and IIDs, so duplicates and evictions are frequent.
            let pid = self.pick(&["p1", "p2"]);
            if self.rng.gen_bool(0.2) {
                out.extend([b"IDMPAUTO".to_vec(), pid.as_bytes().to_vec()]);
            } else {
                let iid = format!("i{}", self.rng.gen_range(0..4));
                out.extend([b"IDMP".to_vec(), pid.as_bytes().to_vec(), iid.into_bytes()]);
            }
        }
        let idmp = out.iter().any(|a| a.starts_with(b"IDMP"));
        out.push(id.into_bytes());
        for _ in 0..self.rng.gen_range(1..=3) {
            out.push(self.pick(FIELDS).as_bytes().to_vec());
            out.push(self.value());
        }
        if idmp {
            self.last_idmp = Some(out.clone());
        }
        out
    }

    /// XCFGSET with long durations only (see [`SERVER_ARGS`]) and small sizes, so that
    /// the IDMP history is cleared and evicted often.
    fn xcfgset(&mut self, key: &str) -> Argv {
        let mut out = argv(&["XCFGSET", key]);
        if self.rng.gen_bool(0.5) {
            let d = self.pick(&["3600", "86400"]);
            out.extend([b"IDMP-DURATION".to_vec(), d.as_bytes().to_vec()]);
        }
        if out.len() == 2 || self.rng.gen_bool(0.5) {
            let m = self.pick(&["1", "2", "3", "100"]);
            out.extend([b"IDMP-MAXSIZE".to_vec(), m.as_bytes().to_vec()]);
        }
        out
    }

    /// One command outside MULTI (`in_multi` false) or queued inside one.
    fn command(&mut self, in_multi: bool) -> Argv {
        let key = self.key();
        let group = self.pick(GROUPS);
        let consumer = self.pick(CONSUMERS);
        let r = self.rng.gen_range(0..1000);
        match r {
            0..=219 => self.xadd(key),
            220..=239 => {
                let mut out = argv(&["XDEL", key]);
                for _ in 0..self.rng.gen_range(1..=3) {
                    out.push(self.known_id().into_bytes());
                }
                out
            }
            240..=249 => {
                let mut out = argv(&["XDELEX", key]);
                self.ids_block(&mut out);
                out
            }
            250..=259 => {
                let mut out = argv(&["XACKDEL", key, group]);
                self.ids_block(&mut out);
                out
            }
            260..=289 => {
                let mut out = argv(&["XTRIM", key]);
                self.trim_clause(&mut out);
                out
            }
            290..=309 => {
                let mut out = argv(&["XSETID", key]);
                out.push(self.near_id().into_bytes());
                if self.rng.gen_bool(0.4) {
                    out.push(b"ENTRIESADDED".to_vec());
                    out.push(self.rng.gen_range(0..200).to_string().into_bytes());
                }
                if self.rng.gen_bool(0.4) {
                    out.push(b"MAXDELETEDID".to_vec());
                    out.push(self.known_id().into_bytes());
                }
                out
            }
            310..=369 => {
                let mut out = argv(&["XGROUP", "CREATE", key, group]);
                let start = match self.rng.gen_range(0..3) {
                    0 => "$".to_string(),
                    1 => "0".to_string(),
                    _ => self.known_id(),
                };
                out.push(start.into_bytes());
                if self.rng.gen_bool(0.5) {
                    out.push(b"MKSTREAM".to_vec());
                }
                if self.rng.gen_bool(0.3) {
                    out.push(b"ENTRIESREAD".to_vec());
                    out.push(self.rng.gen_range(-1..20).to_string().into_bytes());
                }
                out
            }
            370..=389 => {
                let mut out = argv(&["XGROUP", "SETID", key, group]);
                let start = match self.rng.gen_range(0..3) {
                    0 => "$".to_string(),
                    1 => "0".to_string(),
                    _ => self.known_id(),
                };
                out.push(start.into_bytes());
                if self.rng.gen_bool(0.4) {
                    out.push(b"ENTRIESREAD".to_vec());
                    out.push(self.rng.gen_range(-1..20).to_string().into_bytes());
                }
                out
            }
            390..=397 => argv(&["XGROUP", "DESTROY", key, group]),
            398..=419 => argv(&["XGROUP", "CREATECONSUMER", key, group, consumer]),
            420..=429 => argv(&["XGROUP", "DELCONSUMER", key, group, consumer]),
            430..=539 => {
                let mut out = argv(&["XREADGROUP", "GROUP", group, consumer]);
                if self.rng.gen_bool(0.6) {
                    out.push(b"COUNT".to_vec());
                    out.push(self.rng.gen_range(1..6).to_string().into_bytes());
                }
                if self.rng.gen_bool(0.15) {
                    out.push(b"NOACK".to_vec());
                }
                // Redis 8.4's CLAIM and 8.10's MAXCOUNT (MAXCOUNT 5 is never below COUNT).
                if self.rng.gen_bool(0.3) {
                    out.push(b"CLAIM".to_vec());
                    out.push(
                        self.pick(&["0", "0", "10", "50", "1000"])
                            .as_bytes()
                            .to_vec(),
                    );
                }
                if self.rng.gen_bool(0.1) {
                    out.push(b"MAXCOUNT".to_vec());
                    out.push(b"5".to_vec());
                }
                out.push(b"STREAMS".to_vec());
                let keys: Vec<&str> = if self.rng.gen_bool(0.25) {
                    let other = self.key();
                    if other == key {
                        vec![key]
                    } else {
                        vec![key, other]
                    }
                } else {
                    vec![key]
                };
                for k in &keys {
                    out.push(k.as_bytes().to_vec());
                }
                for _ in &keys {
                    let from = match self.rng.gen_range(0..8) {
                        0 => "0".to_string(),
                        1 => self.known_id(),
                        _ => ">".to_string(),
                    };
                    out.push(from.into_bytes());
                }
                out
            }
            540..=579 => {
                let mut out = argv(&["XACK", key, group]);
                for _ in 0..self.rng.gen_range(1..=3) {
                    out.push(self.known_id().into_bytes());
                }
                out
            }
            // XNACK (Redis 8.8): the NACK zone's order and counts must replay exactly.
            580..=599 => {
                let mode = self.pick(&["SILENT", "FAIL", "FATAL"]);
                let mut out = argv(&["XNACK", key, group, mode, "IDS"]);
                let n = self.rng.gen_range(1..=3);
                out.push(n.to_string().into_bytes());
                for _ in 0..n {
                    out.push(self.known_id().into_bytes());
                }
                if self.rng.gen_bool(0.3) {
                    out.push(b"RETRYCOUNT".to_vec());
                    out.push(self.rng.gen_range(0..10).to_string().into_bytes());
                }
                if self.rng.gen_bool(0.3) {
                    out.push(b"FORCE".to_vec());
                }
                out
            }
            600..=659 => {
                let min_idle = self.pick(&["0", "0", "10", "50", "1000"]);
                let mut out = argv(&["XCLAIM", key, group, consumer, min_idle]);
                for _ in 0..self.rng.gen_range(1..=3) {
                    out.push(self.known_id().into_bytes());
                }
                match self.rng.gen_range(0..4) {
                    0 => {
                        out.push(b"IDLE".to_vec());
                        out.push(self.rng.gen_range(0..3000).to_string().into_bytes());
                    }
                    1 => {
                        out.push(b"TIME".to_vec());
                        let t = now_ms() - self.rng.gen_range(0..5000);
                        out.push(t.to_string().into_bytes());
                    }
                    _ => {}
                }
                if self.rng.gen_bool(0.3) {
                    out.push(b"RETRYCOUNT".to_vec());
                    out.push(self.rng.gen_range(0..10).to_string().into_bytes());
                }
                if self.rng.gen_bool(0.3) {
                    out.push(b"FORCE".to_vec());
                }
                if self.rng.gen_bool(0.3) {
                    out.push(b"JUSTID".to_vec());
                }
                if self.rng.gen_bool(0.2) {
                    out.push(b"LASTID".to_vec());
                    out.push(self.near_id().into_bytes());
                }
                out
            }
            660..=699 => {
                let min_idle = self.pick(&["0", "0", "20", "100"]);
                let start = if self.rng.gen_bool(0.6) {
                    "0-0".to_string()
                } else {
                    self.known_id()
                };
                let mut out = argv(&["XAUTOCLAIM", key, group, consumer, min_idle, &start]);
                if self.rng.gen_bool(0.5) {
                    out.push(b"COUNT".to_vec());
                    out.push(self.rng.gen_range(1..8).to_string().into_bytes());
                }
                if self.rng.gen_bool(0.3) {
                    out.push(b"JUSTID".to_vec());
                }
                out
            }
            700..=714 => {
                let mut out = argv(&["DEL", key]);
                if self.rng.gen_bool(0.3) {
                    out.push(self.key().as_bytes().to_vec());
                }
                out
            }
            715..=754 => {
                let cmd = self.pick(&["RENAME", "RENAMENX"]);
                let to = self.pick(KEYS);
                argv(&[cmd, key, to])
            }
            755..=829 => {
                let key = self.pick(KEYS);
                match self.rng.gen_range(0..7) {
                    0 | 1 => {
                        let ttl = self.short_ttl_ms().to_string();
                        argv(&["PEXPIRE", key, &ttl])
                    }
                    2 => {
                        let at = (now_ms() + self.short_ttl_ms()).to_string();
                        argv(&["PEXPIREAT", key, &at])
                    }
                    3 => {
                        let secs = self.rng.gen_range(3600..7200).to_string();
                        let mut out = argv(&["EXPIRE", key, &secs]);
                        if self.rng.gen_bool(0.4) {
                            out.push(self.pick(&["NX", "XX", "GT", "LT"]).as_bytes().to_vec());
                        }
                        out
                    }
                    4 => {
                        let at = (now_ms() + 86_400_000).to_string();
                        argv(&["PEXPIREAT", key, &at])
                    }
                    5 => argv(&["PEXPIRE", key, "-1"]),
                    _ => argv(&["PERSIST", key]),
                }
            }
            830..=889 => {
                let key = if self.rng.gen_bool(0.6) {
                    "str"
                } else {
                    self.pick(KEYS)
                };
                let value = self.value();
                let mut out = vec![b"SET".to_vec(), key.as_bytes().to_vec(), value];
                match self.rng.gen_range(0..5) {
                    0 => {
                        out.push(b"PX".to_vec());
                        out.push(self.short_ttl_ms().to_string().into_bytes());
                    }
                    1 => {
                        out.push(b"EX".to_vec());
                        out.push(self.rng.gen_range(1000..5000).to_string().into_bytes());
                    }
                    _ => {}
                }
                if self.rng.gen_bool(0.2) {
                    out.push(self.pick(&["NX", "XX"]).as_bytes().to_vec());
                }
                out
            }
            890 => argv(&["FLUSHDB"]),
            891..=919 if !in_multi => {
                self.db = 1 - self.db;
                argv(&["SELECT", &self.db.to_string()])
            }
            _ => self.xadd(key),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Talking to the server
// ---------------------------------------------------------------------------------------

fn send(raw: &mut Raw, cmd: &Argv) -> Vec<u8> {
    let parts: Vec<&[u8]> = cmd.iter().map(Vec::as_slice).collect();
    raw.cmd_bytes(&parts)
}

/// The status or bulk string of a reply, without its framing.
fn text_of(reply: &[u8]) -> String {
    let s = String::from_utf8_lossy(reply);
    match s.as_bytes().first() {
        Some(b'+') => s[1..].trim_end().to_string(),
        Some(b'$') => {
            let body = s.split_once("\r\n").map_or("", |(_, b)| b);
            body.strip_suffix("\r\n").unwrap_or(body).to_string()
        }
        _ => panic!("not a string reply: {s:?}"),
    }
}

/// True once `INFO clients` shows one blocked client; false when `blocker` got its reply
/// at once instead (the read had something to return, or failed).
fn blocked_or_answered(main: &mut Raw, blocker: &mut Raw) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let info = String::from_utf8_lossy(&main.cmd(&["INFO", "clients"])).to_string();
        if info.contains("blocked_clients:1\r\n") {
            return true;
        }
        blocker
            .stream
            .set_read_timeout(Some(Duration::from_millis(2)))
            .expect("timeout");
        let answered = matches!(blocker.reader.fill_buf(), Ok(buf) if !buf.is_empty());
        blocker
            .stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        if answered {
            return false;
        }
        assert!(
            Instant::now() < deadline,
            "the blocking read neither blocked nor answered"
        );
    }
}

/// A blocking XREADGROUP (or XREAD) from a second connection, then an XADD from the
/// main one that serves it: the delivery is made, and logged, by the XADD.
fn blocking_read(w: &mut Workload, main: &mut Raw, blocker: &mut Raw) {
    let key = w.pick(&KEYS[..4]);
    let db = w.db.to_string();
    let reply = blocker.cmd(&["SELECT", &db]);
    assert_eq!(reply, b"+OK\r\n");
    let read = if w.rng.gen_bool(0.75) {
        let group = w.pick(GROUPS);
        let consumer = w.pick(CONSUMERS);
        // Most reads need the group to exist to block at all (WRONGTYPE and a group
        // positioned past the stream's end still happen).
        if w.rng.gen_bool(0.8) {
            main.cmd(&["XGROUP", "CREATE", key, group, "$", "MKSTREAM"]);
        }
        argv(&[
            "XREADGROUP",
            "GROUP",
            group,
            consumer,
            "COUNT",
            "3",
            "BLOCK",
            "800",
            "STREAMS",
            key,
            ">",
        ])
    } else {
        argv(&["XREAD", "BLOCK", "800", "STREAMS", key, "$"])
    };
    let parts: Vec<&[u8]> = read.iter().map(Vec::as_slice).collect();
    let mut out = format!("*{}\r\n", parts.len()).into_bytes();
    for p in &parts {
        out.extend_from_slice(format!("${}\r\n", p.len()).as_bytes());
        out.extend_from_slice(p);
        out.extend_from_slice(b"\r\n");
    }
    blocker.send(&out);
    if blocked_or_answered(main, blocker) {
        // A plain XADD, which cannot fail on the stream (or missing key) the read waits on.
        let mut add = argv(&["XADD", key, "*"]);
        add.push(w.pick(FIELDS).as_bytes().to_vec());
        add.push(w.value());
        let reply = send(main, &add);
        w.remember(&reply);
    }
    let reply = blocker.read_reply();
    w.remember(&reply);
}

/// Runs the workload for `seed` against `server`; returns when every short TTL is over.
fn run_workload(server: &TestServer, seed: u64) {
    let mut w = Workload::new(seed);
    let mut main = server.raw();
    let mut blocker = server.raw();
    let steps = steps();
    for step in 0..steps {
        if step == steps / 2 && seed.is_multiple_of(3) {
            // Some runs restart from a checkpoint plus the log after it.
            main.cmd(&["BGREWRITEAOF"]);
        }
        let r = w.rng.gen_range(0..1000);
        if r < 40 {
            let n = w.rng.gen_range(2..=5);
            assert_eq!(main.cmd(&["MULTI"]), b"+OK\r\n");
            for _ in 0..n {
                let cmd = w.command(true);
                send(&mut main, &cmd);
            }
            let reply = main.cmd(&["EXEC"]);
            w.remember(&reply);
        } else if r < 60 {
            blocking_read(&mut w, &mut main, &mut blocker);
        } else {
            let cmd = w.command(false);
            let reply = send(&mut main, &cmd);
            w.remember(&reply);
        }
        if w.rng.gen_bool(0.03) {
            std::thread::sleep(Duration::from_millis(w.rng.gen_range(1..25)));
        }
    }
    // Streams live briefly here (short TTLs, DEL, RENAME): leave IDMP history, with a
    // retry, in whatever streams the run ends with, so the final state has some.
    for key in &KEYS[..4] {
        for _ in 0..2 {
            let reply = main.cmd(&["XADD", key, "IDMP", "p1", "last", "*", "f", "v"]);
            w.remember(&reply);
        }
    }
    // The run's claims drain NACK zones as fast as XNACK fills them: leave one in each
    // stream too (two new entries, NACKed with FORCE in zone order newest first), so the
    // checkpoint and the log carry some.
    for key in &KEYS[..4] {
        // A short TTL could expire the stream (and g1 with it) between these commands.
        main.cmd(&["PERSIST", key]);
        main.cmd(&["XGROUP", "CREATE", key, "g1", "0", "MKSTREAM"]);
        let mut ids = Vec::new();
        for _ in 0..2 {
            let reply = main.cmd(&["XADD", key, "*", "f", "nack"]);
            if reply.first() == Some(&b'$') {
                ids.push(text_of(&reply));
            }
            w.remember(&reply);
        }
        if ids.len() == 2 {
            let reply = main.cmd(&[
                "XNACK",
                key,
                "g1",
                "FAIL",
                "FORCE",
                "RETRYCOUNT",
                "3",
                "IDS",
                "2",
                &ids[1],
                &ids[0],
            ]);
            assert_eq!(reply, b":2\r\n", "{key}");
        }
    }
    let wait = w.short_ttls_until.saturating_sub(now_ms()) + 50;
    std::thread::sleep(Duration::from_millis(wait));
}

// ---------------------------------------------------------------------------------------
// Comparing, and saying what differs
// ---------------------------------------------------------------------------------------

struct Snapshot {
    digest: String,
    dump: String,
}

fn snapshot(server: &TestServer) -> Snapshot {
    let mut r = server.raw();
    let digest = text_of(&r.cmd(&["DEBUG", "DIGEST"]));
    let dump = text_of(&r.cmd(&["DEBUG", "DIGEST-DUMP"]));
    // The dump is the walk the digest hashes: taken at the same moment, it must agree.
    assert_eq!(
        digest,
        text_of(&r.cmd(&["DEBUG", "DIGEST"])),
        "state moved while idle"
    );
    Snapshot { digest, dump }
}

/// One dump line split into its record name and `(field, value)` pairs; values are
/// quoted strings (with escapes), bracketed lists or bare words.
fn fields_of(line: &str) -> (String, Vec<(String, String)>) {
    let line = line.trim_start();
    let (record, mut rest) = line.split_once(' ').unwrap_or((line, ""));
    let mut out = Vec::new();
    while !rest.is_empty() {
        let (name, after) = rest.split_once(' ').unwrap_or((rest, ""));
        let bytes = after.as_bytes();
        let mut end = 0;
        let (mut quoted, mut depth, mut escaped) = (false, 0, false);
        while end < bytes.len() {
            let c = bytes[end];
            if escaped {
                escaped = false;
            } else if quoted {
                match c {
                    b'\\' => escaped = true,
                    b'"' => quoted = false,
                    _ => {}
                }
            } else {
                match c {
                    b'"' => quoted = true,
                    b'[' => depth += 1,
                    b']' => depth -= 1,
                    b' ' if depth == 0 => break,
                    _ => {}
                }
            }
            end += 1;
        }
        out.push((name.to_string(), after[..end].to_string()));
        rest = after.get(end + 1..).unwrap_or("");
    }
    (record.to_string(), out)
}

/// Each dump line under a path naming it: the records above it and its own identity
/// (`key db 0 name "s:a" / group name "g1" / consumer name "bob"`).
fn index_dump(dump: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack: Vec<String> = Vec::new();
    for line in dump.lines() {
        let depth = (line.len() - line.trim_start().len()) / 2;
        stack.truncate(depth);
        let (record, fields) = fields_of(line);
        let ident_fields = if record == "key" { 2 } else { 1 };
        let mut ident = record.clone();
        for (name, value) in fields.iter().take(ident_fields) {
            let _ = write!(ident, " {name} {value}");
        }
        stack.push(ident);
        let path = stack.join(" / ");
        // Two records with one identity (cannot happen in a well-formed dump) stay apart.
        let mut unique = path.clone();
        let mut n = 1;
        while out.contains_key(&unique) {
            n += 1;
            unique = format!("{path} #{n}");
        }
        out.insert(unique, line.trim_start().to_string());
    }
    out
}

/// What differs between the dump before the restart and the one after: per field,
/// how many records differ in it, with examples; then the records only one side has.
fn explain(before: &str, after: &str) -> String {
    let a = index_dump(before);
    let b = index_dump(after);
    let mut by_field: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut only: Vec<String> = Vec::new();
    for (path, line) in &a {
        match b.get(path) {
            None => only.push(format!("  lost by the restart: {path}\n      {line}")),
            Some(other) if other != line => {
                let (record, fa) = fields_of(line);
                let (_, fb) = fields_of(other);
                let fb: HashMap<String, String> = fb.into_iter().collect();
                for (name, value) in fa {
                    let now = fb.get(&name).cloned().unwrap_or_else(|| "(absent)".into());
                    if now != value {
                        by_field
                            .entry(format!("{record}.{name}"))
                            .or_default()
                            .push(format!("{path}: {value} -> {now}"));
                    }
                }
            }
            Some(_) => {}
        }
    }
    for (path, line) in &b {
        if !a.contains_key(path) {
            only.push(format!("  made up by the restart: {path}\n      {line}"));
        }
    }
    let mut out = String::new();
    for (field, examples) in &by_field {
        let _ = writeln!(out, "  {field}: {} records differ, e.g.", examples.len());
        for e in examples.iter().take(3) {
            let _ = writeln!(out, "      {e}");
        }
    }
    for line in only.iter().take(20) {
        let _ = writeln!(out, "{line}");
    }
    if only.len() > 20 {
        let _ = writeln!(
            out,
            "  … and {} more records on one side only",
            only.len() - 20
        );
    }
    out
}

/// Copies a data directory (`RILL_DET_KEEP`: the log before a restart, to inspect).
fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    let _ = std::fs::create_dir_all(to);
    for entry in std::fs::read_dir(from).into_iter().flatten().flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            let _ = std::fs::copy(entry.path(), target);
        }
    }
}

/// Why the server would not start on `server.dir`: its error lines, from a start of
/// our own (the harness discards the server's output).
fn start_failure(server: &TestServer) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rill"))
        .args(["--port", "0", "--bind", "127.0.0.1", "--dir"])
        .arg(&server.dir)
        .args(SERVER_ARGS)
        .env("NO_COLOR", "1")
        .env_remove("RILL_LOG")
        .output();
    match out {
        Ok(out) => {
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            let errors: Vec<&str> = text.lines().filter(|l| l.contains("ERROR")).collect();
            let shown = if errors.is_empty() {
                text.lines().rev().take(10).collect::<Vec<_>>()
            } else {
                errors
            };
            let mut s = format!("      ({})\n", out.status);
            for line in shown {
                let _ = writeln!(s, "      {line}");
            }
            s
        }
        Err(e) => format!("      (could not run rill again: {e})\n"),
    }
}

/// Runs each seed, restarts with `restart`, and fails with every seed's differences.
fn check_seeds(seeds: &[u64], how: &str, restart: impl Fn(&mut TestServer)) {
    let mut failures = String::new();
    for &seed in seeds {
        let started = Instant::now();
        let mut server = TestServer::start_with(SERVER_ARGS);
        run_workload(&server, seed);
        let before = snapshot(&server);
        assert_ne!(
            before.digest,
            "0".repeat(40),
            "seed {seed}: the workload left nothing to compare"
        );
        if let Ok(keep) = std::env::var("RILL_DET_KEEP") {
            copy_dir(
                &server.dir,
                &std::path::Path::new(&keep).join(format!("seed-{seed}")),
            );
        }
        let restarted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            restart(&mut server);
        }));
        if restarted.is_err() {
            eprintln!(
                "seed {seed} ({how}): no restart ({:.1?})",
                started.elapsed()
            );
            let _ = writeln!(
                failures,
                "seed {seed} (RILL_DET_SEED={seed}), {how}: the server does not start again:\n{}",
                start_failure(&server)
            );
            continue;
        }
        let after = snapshot(&server);
        eprintln!(
            "seed {seed} ({how}): {} keys, digest {} -> {} ({:.1?})",
            before
                .dump
                .lines()
                .filter(|l| l.starts_with("key "))
                .count(),
            before.digest,
            after.digest,
            started.elapsed()
        );
        if before.digest != after.digest {
            let _ = writeln!(
                failures,
                "seed {seed} (RILL_DET_SEED={seed}), {how}: DEBUG DIGEST {} before, {} after\n{}",
                before.digest,
                after.digest,
                explain(&before.dump, &after.dump)
            );
        }
    }
    // Fails on the current log (December 2026); it is to pass only once the state a restart
    // rebuilds is the live one, so do not weaken or ignore it. What it finds:
    // - after SIGKILL the server does not start: replay decides expiry by the clock at
    //   replay time, so a command logged while a key's short TTL still ran finds no key
    //   ("Bad command in the log … ERR no such key"); and a `SET key v NX` refused on an
    //   existing key is logged as `SET key v`, which replay applies (WRONGTYPE later);
    // - with those two out of the workload: consumers' seen-time and active-time are the
    //   replay's clock (issue #18, defect 18), since replay re-runs XGROUP CREATECONSUMER
    //   and XCLAIM at recovery time.
    // Issue #11's typed records, applied by one engine function, are to fix all three.
    assert!(
        failures.is_empty(),
        "the state after the restart differs from the live state:\n{failures}"
    );
}

#[test]
fn sigkill_and_log_replay_rebuild_the_live_state() {
    check_seeds(&seeds(CRASH_SEEDS), "SIGKILL, log replay", |server| {
        server.restart();
    });
}

#[test]
fn clean_shutdown_and_checkpoint_rebuild_the_live_state() {
    check_seeds(&seeds(SHUTDOWN_SEEDS), "SHUTDOWN, checkpoint", |server| {
        let mut r = server.raw();
        r.send(b"SHUTDOWN\r\n");
        let status = server.wait_exit(Duration::from_secs(30));
        assert!(
            status.is_some_and(|s| s.success()),
            "SHUTDOWN did not exit cleanly: {status:?}"
        );
        server.restart();
    });
}

/// The diagnosis itself: a changed field is named with both values and its path, and a
/// record on one side only is listed.
#[test]
fn explain_names_changed_fields_and_lost_records() {
    let before = [
        r#"key db 0 name "s" type "stream" expire-at none length 2"#,
        r#"  entry id 1-0 fields ["f" "a b"]"#,
        r#"  entry id 2-0 fields ["f" "\"x\" y"]"#,
        r#"  group name "g" last-delivered-id 2-0 entries-read 2"#,
        r#"    consumer name "c" seen-time 10 active-time none pending 0"#,
    ]
    .join("\n");
    let after = [
        r#"key db 0 name "s" type "stream" expire-at none length 2"#,
        r#"  entry id 1-0 fields ["f" "a b"]"#,
        r#"  group name "g" last-delivered-id 2-0 entries-read 2"#,
        r#"    consumer name "c" seen-time 99 active-time none pending 0"#,
    ]
    .join("\n");
    let text = explain(&before, &after);
    assert!(
        text.contains(r#"consumer.seen-time: 1 records differ"#),
        "{text}"
    );
    assert!(
        text.contains(r#"key db 0 name "s" / group name "g" / consumer name "c": 10 -> 99"#),
        "{text}"
    );
    assert!(
        text.contains(r#"lost by the restart: key db 0 name "s" / entry id 2-0"#),
        "{text}"
    );
    assert!(!text.contains("entries-read"), "{text}");
}

/// DEBUG's replies have Redis's shape: statuses of 40 hex digits, zeros for nothing.
#[test]
fn debug_digest_replies_like_redis() {
    let server = TestServer::start();
    let mut r = server.raw();
    let zeros = format!("+{}\r\n", "0".repeat(40));
    assert_eq!(String::from_utf8_lossy(&r.cmd(&["DEBUG", "DIGEST"])), zeros);
    assert_eq!(
        String::from_utf8_lossy(&r.cmd(&["DEBUG", "DIGEST-VALUE", "nope"])),
        format!("*1\r\n{zeros}")
    );
    r.cmd(&["XADD", "s", "1-1", "f", "v"]);
    let digest = text_of(&r.cmd(&["DEBUG", "DIGEST"]));
    assert_eq!(digest.len(), 40);
    assert!(digest.bytes().all(|b| b.is_ascii_hexdigit()) && digest != "0".repeat(40));
    let value = r.cmd(&["DEBUG", "DIGEST-VALUE", "s", "nope"]);
    assert!(value.starts_with(b"*2\r\n+"), "{value:?}");
    assert!(value.ends_with(zeros.as_bytes()), "{value:?}");
    let dump = text_of(&r.cmd(&["DEBUG", "DIGEST-DUMP"]));
    assert!(
        dump.starts_with(r#"key db 0 name "s" type "stream""#),
        "{dump}"
    );
    assert!(dump.contains(r#"entry id 1-1 fields ["f" "v"]"#), "{dump}");
    assert_eq!(
        String::from_utf8_lossy(&r.cmd(&["DEBUG", "NOPE"])),
        "-ERR unknown subcommand or wrong number of arguments for 'NOPE'. Try DEBUG HELP.\r\n"
    );
    let info = String::from_utf8_lossy(&r.cmd(&["COMMAND", "INFO", "debug"])).to_string();
    assert!(
        info.contains("+admin\r\n+noscript\r\n+loading\r\n+stale\r\n"),
        "{info}"
    );
}
