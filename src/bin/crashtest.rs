//! `rill-crashtest`: shows that no acknowledged write is lost when the server dies.
//!
//! Each cycle starts the real `rill` binary on a free port and the same data directory, runs
//! concurrent load from several connections (XADD, XREADGROUP `>`, history and `CLAIM 0`, XACK,
//! XCLAIM, XNACK FAIL, XGROUP CREATE/SETID/CREATECONSUMER, XTRIM MINID, XDELEX and XACKDEL with
//! ACKED or DELREF, and MULTI/EXEC pairs), SIGKILLs the server at a random
//! moment, runs `rill check` on the directory, restarts the server and compares what it
//! serves with a model built only from ACKNOWLEDGED replies.
//!
//! The model is exact because every worker owns its stream (only it writes there), so its
//! commands apply in the order it sent them. Cross-connection contention is exercised by a
//! shared stream every worker appends to; there the check is per entry (ID and fields).
//! A command whose reply never came (the one in flight at the kill) may or may not have
//! applied: the state must equal the model either without it or with all of it; anything
//! else (half a MULTI, half an XREADGROUP) is a violation. The model also predicts every
//! reply (delivered IDs, ack counts, claimed IDs), so a wrong answer is caught at once. (The
//! model keeps no delivery times: an XREADGROUP CLAIM reply is compared with its idle times
//! zeroed and its claimed entries in ID order, see [`normalize_claim_reply`].)
//!
//! Deletes use only ACKED and DELREF, which never leave a PEL entry pointing at a deleted
//! entry, and trims only exact MINID, whose outcome does not depend on node boundaries: the
//! model stays exact with a few lines of Redis's rules (what "referenced" means, and how a
//! group's entries-read counts past XDEL tombstones).
//!
//! Broker policies (issue #16): each worker also appends to its retention stream
//! `{<key>:ret}` (a hash tag, so its dead-letter stream shares its slot) in `MULTI; XADD; RILL.POLICY SET … MAXLEN 8; EXEC`, which the server's
//! retention sweep trims by itself. After a restart that stream must hold a gap-free suffix
//! of the acknowledged appends at least 8 long (trims go from the head only, and replay
//! applies the logged trims, never decides again), keep its policy, and be trimmed to 8
//! again by the restarted server. A group on it reads every entry and never acknowledges,
//! under `RILL.POLICY GROUP … MAXDELIVER 1 ACKWAIT 20`: its dead-letter stream must hold each
//! moved entry once, never one still pending (append and ack are one record), only
//! acknowledged appends, and the restarted server must go on moving what is pending.
//!
//! Appends to the shared stream are idempotent (`XADD … IDMP w<i> <token>`, Redis 8.6):
//! after each restart every worker re-sends its latest acknowledged ones, as a producer
//! retrying after a lost reply would, and each must be answered with its original ID
//! (and, checked at the next restart, must not have appended anything).
//!
//! **Power cuts** (`--powercut`): the data directory lives on `rill-lazyfs` (tools/lazyfs), a
//! FUSE file system that keeps, besides what programs see, what a disk would still hold: file
//! data only once fsynced, names (new files, renames, unlinks, new directories) only once
//! their directory was fsynced. Each cycle cuts the power under load while the server runs
//! (every later write and fsync fails with EIO: the server may refuse writes, never
//! acknowledge them), SIGKILLs it 0-20 ms later, and the file system drops everything not
//! durable at the cut (`--tear`: keeps a random prefix of each file's unsynced pages, a torn
//! write) before `rill check` and the restart. The same model checks
//! the result, so a missing fsync of a file or a directory shows up as an acknowledged write
//! lost. Self-test: `--appendfsync everysec` acknowledges before fsync and must FAIL here.
//!
//! **Replicated** (`--replicated`): a shard of three replicas, every directed Raft link through
//! a fault proxy, struck by process faults and network partitions (see the option's help and
//! docs/architecture.md, Tests); the workers keep writing to the old leader during a fault, so
//! an acknowledgement from a leader cut off from its majority shows up as a lost write.
//!
//! Usage: `rill-crashtest [--cycles N] [--seed S] [--workers W] [--server PATH] [--dir DIR]
//! [--powercut [--tear] [--sync-delay-us N] [--lazyfs PATH]] [--appendfsync always|everysec|no]
//! [--raft] [--replicated [--no-partitions] [--faultproxy PATH]]`. `--raft` runs the server with `cluster-raft yes` (a Raft group of one voter).
//! Exit status 0 when every check passed, 1 on a violation (printed precisely), 2 when the
//! test itself could not run (the server did not start, bad arguments).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[derive(Debug, Parser)]
#[command(
    name = "rill-crashtest",
    about = "SIGKILL a Rill server under load, restart it, and check nothing acknowledged was lost"
)]
struct Opts {
    /// Kill/restart cycles to run.
    #[arg(long, default_value_t = 30)]
    cycles: u32,
    /// Seed of the workload (commands and kill moments); printed so a run can be repeated.
    #[arg(long)]
    seed: Option<u64>,
    /// Concurrent client connections.
    #[arg(long, default_value_t = 4)]
    workers: usize,
    /// The rill binary (default: `rill` next to this program).
    #[arg(long)]
    server: Option<PathBuf>,
    /// Work directory (kept on failure; default: a fresh one under the temp dir).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Longest load phase before the kill, in milliseconds.
    #[arg(long, default_value_t = 700)]
    max_load_ms: u64,
    /// Self-test of the checker: after each kill, cut this many records off the end of the log,
    /// as a server that acknowledged before its fsync would lose them. With more records than
    /// connections (at most one unanswered command each) this must be reported as a violation.
    #[arg(long, default_value_t = 0)]
    sabotage_drop_records: usize,
    /// Run the data directory on rill-lazyfs and cut the power (drop everything not fsynced)
    /// at each kill, instead of only killing the process.
    #[arg(long)]
    powercut: bool,
    /// With --powercut: of each file's unsynced pages keep a random prefix (a torn write),
    /// instead of none.
    #[arg(long, requires = "powercut")]
    tear: bool,
    /// With --powercut: how long each fsync takes on rill-lazyfs, in µs, as a disk's flush
    /// does; with 0 (instant, in memory) a cut almost never finds unsynced data.
    #[arg(long, default_value_t = 500, requires = "powercut")]
    sync_delay_us: u64,
    /// The rill-lazyfs binary (default: `rill-lazyfs` next to this program).
    #[arg(long, requires = "powercut")]
    lazyfs: Option<PathBuf>,
    /// The server's appendfsync. Anything but `always` acknowledges writes before they are
    /// durable: with --powercut that must be reported as lost writes (a self-test).
    #[arg(long, default_value = "always")]
    appendfsync: String,
    /// Run the server with `cluster-raft yes` (issue #14 step D: writes are acknowledged once
    /// their Raft entry is committed by the group of one voter); checkpoints are asked for
    /// as in the single-node cycles (a Raft checkpoint also purges the Raft log).
    #[arg(long)]
    raft: bool,
    /// Run a replicated shard instead of one server: three nodes on 127.0.0.1 with
    /// `cluster-enabled yes` and `cluster-raft yes`, made one shard by `rill cluster create
    /// --replicas 2`, every directed Raft link through its own `rill-faultproxy` listener
    /// (`cluster-peer-route`). Each cycle loads the leader, then strikes: SIGKILL of the
    /// leader, of a follower or of every node, SIGSTOP of the leader past the election
    /// timeout, or a network fault — leader or follower isolated, leader→followers or
    /// followers→leader cut (by reset or blackhole), every link delayed — healed after a
    /// while; then the nodes are restarted (or continued), a leader is found, its state is
    /// checked against the model and every replica must converge to it.
    /// With --sabotage-drop-records every cycle kills every node and cuts the records off
    /// each replica's log, a checker self-test that must FAIL.
    #[arg(long, conflicts_with_all = ["powercut", "raft"])]
    replicated: bool,
    /// With --replicated: the rill-faultproxy binary every Raft link runs through (default:
    /// `rill-faultproxy` next to this program).
    #[arg(long, requires = "replicated")]
    faultproxy: Option<PathBuf>,
    /// With --replicated: only the process nemeses (kills and pauses), no partitions, delays
    /// or blackholes (the links still run through the proxy, always passing).
    #[arg(long, requires = "replicated")]
    no_partitions: bool,
    /// With --replicated: every Nth cycle's nemesis replaces a follower (disk lost, removed
    /// with `rill cluster del-node`, an empty node added with `add-node`); 0: only as drawn.
    #[arg(long, requires = "replicated", default_value_t = 0)]
    replace_every: u32,
}

// ------------------------------------------------------------------------------------------
// A minimal RESP2 client: enough to send commands and read any reply.
// ------------------------------------------------------------------------------------------

/// A RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Resp {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Resp>>),
}

impl fmt::Display for Resp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Resp::Simple(s) => write!(f, "+{s}"),
            Resp::Error(s) => write!(f, "-{s}"),
            Resp::Int(n) => write!(f, ":{n}"),
            Resp::Bulk(None) | Resp::Array(None) => write!(f, "nil"),
            Resp::Bulk(Some(b)) => write!(f, "{:?}", String::from_utf8_lossy(b)),
            Resp::Array(Some(items)) => {
                write!(f, "[")?;
                for (i, it) in items.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{it}")?;
                }
                write!(f, "]")
            }
        }
    }
}

fn bulk(b: impl Into<Vec<u8>>) -> Resp {
    Resp::Bulk(Some(b.into()))
}

fn bad_data(msg: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg.into())
}

struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    fn connect(port: u16) -> std::io::Result<Conn> {
        let s = TcpStream::connect(("127.0.0.1", port))?;
        s.set_read_timeout(Some(Duration::from_secs(20)))?;
        s.set_nodelay(true)?;
        Ok(Conn {
            reader: BufReader::new(s.try_clone()?),
            writer: s,
        })
    }

    fn send(&mut self, argv: &[Vec<u8>]) -> std::io::Result<()> {
        let mut buf = Vec::with_capacity(64);
        buf.extend_from_slice(format!("*{}\r\n", argv.len()).as_bytes());
        for a in argv {
            buf.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            buf.extend_from_slice(a);
            buf.extend_from_slice(b"\r\n");
        }
        self.writer.write_all(&buf)
    }

    fn line(&mut self) -> std::io::Result<String> {
        let mut l = Vec::new();
        self.reader.read_until(b'\n', &mut l)?;
        if l.len() < 2 || !l.ends_with(b"\r\n") {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed mid-reply",
            ));
        }
        l.truncate(l.len() - 2);
        String::from_utf8(l).map_err(|_| bad_data("non-UTF-8 reply line"))
    }

    fn read(&mut self) -> std::io::Result<Resp> {
        let l = self.line()?;
        let (t, rest) = l.split_at(1.min(l.len()));
        let num = || {
            rest.parse::<i64>()
                .map_err(|_| bad_data(format!("bad length {l:?}")))
        };
        Ok(match t {
            "+" => Resp::Simple(rest.to_string()),
            "-" => Resp::Error(rest.to_string()),
            ":" => Resp::Int(num()?),
            "$" => {
                let n = num()?;
                if n < 0 {
                    Resp::Bulk(None)
                } else {
                    let mut b = vec![0u8; n as usize + 2];
                    self.reader.read_exact(&mut b)?;
                    b.truncate(n as usize);
                    Resp::Bulk(Some(b))
                }
            }
            "*" => {
                let n = num()?;
                if n < 0 {
                    Resp::Array(None)
                } else {
                    let mut items = Vec::with_capacity(n as usize);
                    for _ in 0..n {
                        items.push(self.read()?);
                    }
                    Resp::Array(Some(items))
                }
            }
            _ => return Err(bad_data(format!("unexpected reply line {l:?}"))),
        })
    }

    fn call(&mut self, argv: &[Vec<u8>]) -> std::io::Result<Resp> {
        self.send(argv)?;
        self.read()
    }

    /// One `\n`-terminated line (the fault proxy's control protocol), without the `\n`.
    fn line_lf(&mut self) -> std::io::Result<String> {
        let mut l = String::new();
        self.reader.read_line(&mut l)?;
        if !l.ends_with('\n') {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed mid-line",
            ));
        }
        l.truncate(l.len() - 1);
        Ok(l)
    }
}

fn argv(parts: &[&[u8]]) -> Vec<Vec<u8>> {
    parts.iter().map(|p| p.to_vec()).collect()
}

// ------------------------------------------------------------------------------------------
// The model.
// ------------------------------------------------------------------------------------------

/// A stream ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
struct Id(u64, u64);

impl Id {
    fn parse(b: &[u8]) -> Option<Id> {
        let s = std::str::from_utf8(b).ok()?;
        let (ms, seq) = s.split_once('-')?;
        Some(Id(ms.parse().ok()?, seq.parse().ok()?))
    }

    fn bytes(self) -> Vec<u8> {
        self.to_string().into_bytes()
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.0, self.1)
    }
}

type Fields = Vec<(Vec<u8>, Vec<u8>)>;

/// A consumer group as the replies showed it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct GroupModel {
    last_id: Id,
    entries_read: Option<u64>,
    /// ID → (consumer, delivery count).
    pel: BTreeMap<Id, (String, u64)>,
    consumers: BTreeSet<String>,
}

/// A stream as the replies showed it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct StreamModel {
    exists: bool,
    entries: BTreeMap<Id, Fields>,
    last_id: Id,
    entries_added: u64,
    /// The largest ID deleted by XDELEX/XACKDEL (XINFO's max-deleted-entry-id).
    max_deleted: Id,
    groups: BTreeMap<String, GroupModel>,
}

/// One command of the workload, on the worker's own stream unless `shared`.
#[derive(Debug, Clone)]
enum Cmd {
    XAdd {
        fields: Fields,
        shared: bool,
    },
    Create {
        group: String,
        at_end: bool,
        entries_read: u64,
    },
    ReadNew {
        group: String,
        consumer: String,
        count: usize,
    },
    ReadHistory {
        group: String,
        consumer: String,
        count: usize,
    },
    Ack {
        group: String,
        ids: Vec<Id>,
    },
    Claim {
        group: String,
        consumer: String,
        ids: Vec<Id>,
        just_id: bool,
    },
    SetId {
        group: String,
        id: Option<Id>,
        entries_read: u64,
    },
    CreateConsumer {
        group: String,
        consumer: String,
    },
    /// `XTRIM key MINID = id ACKED|DELREF`.
    TrimRefs {
        minid: Id,
        delref: bool,
    },
    /// `XDELEX key ACKED|DELREF IDS n id…`.
    DelEx {
        ids: Vec<Id>,
        delref: bool,
    },
    /// `XACKDEL key group ACKED|DELREF IDS n id…`.
    AckDel {
        group: String,
        ids: Vec<Id>,
        delref: bool,
    },
    /// `XREADGROUP … CLAIM 0` without COUNT: every pending entry moves to `consumer` (one
    /// more delivery), then every new entry is delivered.
    ClaimRead {
        group: String,
        consumer: String,
    },
    /// `XNACK key group FAIL IDS n id…`: each pending ID (duplicates each time) loses its
    /// owner and keeps its delivery count; claims and CLAIM reads take it back.
    Nack {
        group: String,
        ids: Vec<Id>,
    },
}

/// What a worker sends as one unit: one command, or several inside MULTI/EXEC.
#[derive(Debug, Clone)]
struct Op {
    cmds: Vec<Cmd>,
    multi: bool,
}

impl Cmd {
    fn argv(&self, own: &str, shared: &str) -> Vec<Vec<u8>> {
        let key = |s: bool| if s { shared } else { own }.as_bytes().to_vec();
        match self {
            Cmd::XAdd { fields, shared } => {
                let mut a = vec![b"XADD".to_vec(), key(*shared)];
                if *shared {
                    // The token is unique ("w<i>-<seq>"): its worker is the producer.
                    let token = token_of(fields);
                    let pid = token.split(|&b| b == b'-').next().unwrap_or_default();
                    a.extend([b"IDMP".to_vec(), pid.to_vec(), token.clone()]);
                }
                a.push(b"*".to_vec());
                for (f, v) in fields {
                    a.push(f.clone());
                    a.push(v.clone());
                }
                a
            }
            Cmd::Create {
                group,
                at_end,
                entries_read,
            } => argv(&[
                b"XGROUP",
                b"CREATE",
                own.as_bytes(),
                group.as_bytes(),
                if *at_end { b"$" } else { b"0" },
                b"MKSTREAM",
                b"ENTRIESREAD",
                entries_read.to_string().as_bytes(),
            ]),
            Cmd::ReadNew {
                group,
                consumer,
                count,
            }
            | Cmd::ReadHistory {
                group,
                consumer,
                count,
            } => {
                let from: &[u8] = if matches!(self, Cmd::ReadNew { .. }) {
                    b">"
                } else {
                    b"0"
                };
                argv(&[
                    b"XREADGROUP",
                    b"GROUP",
                    group.as_bytes(),
                    consumer.as_bytes(),
                    b"COUNT",
                    count.to_string().as_bytes(),
                    b"STREAMS",
                    own.as_bytes(),
                    from,
                ])
            }
            Cmd::Ack { group, ids } => {
                let mut a = argv(&[b"XACK", own.as_bytes(), group.as_bytes()]);
                a.extend(ids.iter().map(|i| i.bytes()));
                a
            }
            Cmd::Claim {
                group,
                consumer,
                ids,
                just_id,
            } => {
                let mut a = argv(&[
                    b"XCLAIM",
                    own.as_bytes(),
                    group.as_bytes(),
                    consumer.as_bytes(),
                    b"0",
                ]);
                a.extend(ids.iter().map(|i| i.bytes()));
                if *just_id {
                    a.push(b"JUSTID".to_vec());
                }
                a
            }
            Cmd::SetId {
                group,
                id,
                entries_read,
            } => argv(&[
                b"XGROUP",
                b"SETID",
                own.as_bytes(),
                group.as_bytes(),
                &id.map_or(b"$".to_vec(), |i| i.bytes()),
                b"ENTRIESREAD",
                entries_read.to_string().as_bytes(),
            ]),
            Cmd::CreateConsumer { group, consumer } => argv(&[
                b"XGROUP",
                b"CREATECONSUMER",
                own.as_bytes(),
                group.as_bytes(),
                consumer.as_bytes(),
            ]),
            Cmd::TrimRefs { minid, delref } => argv(&[
                b"XTRIM",
                own.as_bytes(),
                b"MINID",
                b"=",
                &minid.bytes(),
                policy(*delref),
            ]),
            Cmd::DelEx { ids, delref } => {
                let mut a = argv(&[b"XDELEX", own.as_bytes(), policy(*delref), b"IDS"]);
                a.push(ids.len().to_string().into_bytes());
                a.extend(ids.iter().map(|i| i.bytes()));
                a
            }
            Cmd::AckDel { group, ids, delref } => {
                let mut a = argv(&[
                    b"XACKDEL",
                    own.as_bytes(),
                    group.as_bytes(),
                    policy(*delref),
                    b"IDS",
                ]);
                a.push(ids.len().to_string().into_bytes());
                a.extend(ids.iter().map(|i| i.bytes()));
                a
            }
            Cmd::Nack { group, ids } => {
                let mut a = argv(&[b"XNACK", own.as_bytes(), group.as_bytes(), b"FAIL", b"IDS"]);
                a.push(ids.len().to_string().into_bytes());
                a.extend(ids.iter().map(|i| i.bytes()));
                a
            }
            Cmd::ClaimRead { group, consumer } => argv(&[
                b"XREADGROUP",
                b"GROUP",
                group.as_bytes(),
                consumer.as_bytes(),
                b"CLAIM",
                b"0",
                b"STREAMS",
                own.as_bytes(),
                b">",
            ]),
        }
    }
}

fn policy(delref: bool) -> &'static [u8] {
    if delref {
        b"DELREF"
    } else {
        b"ACKED"
    }
}

/// An XREADGROUP CLAIM entry: `[id, fields, idle, count]` (idle as the model knows it: 0).
fn claim_entry_reply(id: Id, fields: &Fields, count: u64) -> Resp {
    let Resp::Array(Some(mut items)) = entry_reply(id, fields) else {
        return Resp::Array(None);
    };
    items.push(Resp::Int(0));
    items.push(Resp::Int(i64::try_from(count).unwrap_or(i64::MAX)));
    Resp::Array(Some(items))
}

/// An XREADGROUP CLAIM reply as the model can predict it: idle times zeroed, and the claimed
/// entries (delivery count above 0, served oldest delivery first) in ID order.
fn normalize_claim_reply(reply: &Resp) -> Resp {
    let Resp::Array(Some(streams)) = reply else {
        return reply.clone();
    };
    let mut out = Vec::new();
    for stream in streams {
        let Resp::Array(Some(kv)) = stream else {
            return reply.clone();
        };
        let [key, Resp::Array(Some(entries))] = kv.as_slice() else {
            return reply.clone();
        };
        let mut claimed = Vec::new();
        let mut fresh = Vec::new();
        for e in entries {
            let mut e = e.clone();
            if let Resp::Array(Some(items)) = &mut e {
                if items.len() == 4 {
                    let was_claimed = items[3] != Resp::Int(0);
                    items[2] = Resp::Int(0);
                    let id = match &items[0] {
                        Resp::Bulk(Some(b)) => Id::parse(b).unwrap_or_default(),
                        _ => Id::default(),
                    };
                    if was_claimed {
                        claimed.push((id, e));
                        continue;
                    }
                }
            }
            fresh.push(e);
        }
        claimed.sort_by_key(|(id, _)| *id);
        let mut entries: Vec<Resp> = claimed.into_iter().map(|(_, e)| e).collect();
        entries.extend(fresh);
        out.push(Resp::Array(Some(vec![
            key.clone(),
            Resp::Array(Some(entries)),
        ])));
    }
    Resp::Array(Some(out))
}

fn entry_reply(id: Id, fields: &Fields) -> Resp {
    let mut flat = Vec::with_capacity(fields.len() * 2);
    for (f, v) in fields {
        flat.push(bulk(f.clone()));
        flat.push(bulk(v.clone()));
    }
    Resp::Array(Some(vec![bulk(id.bytes()), Resp::Array(Some(flat))]))
}

impl StreamModel {
    fn count_upto(&self, id: Id) -> u64 {
        self.entries.range(..=id).count() as u64
    }

    fn first_id(&self) -> Id {
        self.entries.keys().next().copied().unwrap_or_default()
    }

    /// Redis's `streamEntryIsReferenced`: some group has not read `id` yet, or has it pending.
    fn referenced(&self, id: Id) -> bool {
        let Some(min) = self.groups.values().map(|g| g.last_id).min() else {
            return false;
        };
        min < id || self.groups.values().any(|g| g.pel.contains_key(&id))
    }

    /// Deletes an entry as XDEL does (the largest deleted ID is remembered); true if it existed.
    fn delete(&mut self, id: Id) -> bool {
        let existed = self.entries.remove(&id).is_some();
        if existed && id > self.max_deleted {
            self.max_deleted = id;
        }
        existed
    }

    fn drop_everywhere(&mut self, id: Id) {
        for g in self.groups.values_mut() {
            g.pel.remove(&id);
        }
    }

    /// A group's entries-read after delivering `id` with `>` from `last` (its previous
    /// last-delivered-id), as Redis 8.6.3's `streamReplyWithRange`: counted on while the
    /// counter is valid, the group is not behind the first entry and no XDEL tombstone lies at
    /// or after `last`; else estimated (`streamEstimateDistanceFromFirstEverEntry`), or unknown.
    fn read_counter(&self, read: Option<u64>, last: Id, id: Id) -> Option<u64> {
        let length = self.entries.len() as u64;
        let first = self.first_id();
        let zero = Id(0, 0);
        let tombstone_ahead = length > 0 && self.max_deleted != zero && last <= self.max_deleted;
        match read {
            Some(n) if last >= first && !tombstone_ahead => return Some(n + 1),
            _ if self.entries_added == 0 => return read,
            _ => {}
        }
        if length == 0 && id <= self.last_id {
            return Some(self.entries_added);
        }
        if id != zero && id < self.max_deleted {
            return None;
        }
        if id == self.last_id {
            return Some(self.entries_added);
        }
        if id > self.last_id {
            return None;
        }
        if self.max_deleted == zero || self.max_deleted < first {
            if id < first {
                return Some(self.entries_added - length);
            }
            if id == first {
                return Some(self.entries_added - length + 1);
            }
        }
        None
    }

    /// Applies `cmd` as the server must, returning the reply it must give. `xadd_id` is the
    /// ID the server chose for an XADD (learnt from its reply or from the restarted state).
    fn apply(&mut self, cmd: &Cmd, own: &str, xadd_id: Option<Id>) -> Result<Resp, String> {
        match cmd {
            Cmd::XAdd { fields, .. } => {
                let id = xadd_id.ok_or("XADD without an ID")?;
                if id <= self.last_id {
                    return Err(format!(
                        "XADD got ID {id}, not above the stream's last ID {}",
                        self.last_id
                    ));
                }
                self.exists = true;
                self.entries.insert(id, fields.clone());
                self.last_id = id;
                self.entries_added += 1;
                Ok(bulk(id.bytes()))
            }
            Cmd::Create {
                group,
                at_end,
                entries_read,
            } => {
                self.exists = true;
                let g = GroupModel {
                    last_id: if *at_end { self.last_id } else { Id(0, 0) },
                    entries_read: Some(*entries_read),
                    ..GroupModel::default()
                };
                self.groups.insert(group.clone(), g);
                Ok(Resp::Simple("OK".into()))
            }
            Cmd::ReadNew {
                group,
                consumer,
                count,
            } => {
                let entries = &self.entries;
                let g = self.groups.get_mut(group).ok_or("no group")?;
                g.consumers.insert(consumer.clone());
                let new: Vec<(Id, Fields)> = entries
                    .range(g.last_id..)
                    .filter(|(id, _)| **id > g.last_id)
                    .take(*count)
                    .map(|(id, f)| (*id, f.clone()))
                    .collect();
                if new.is_empty() {
                    return Ok(Resp::Array(None));
                }
                let mut counters = Vec::new();
                let mut read = g.entries_read;
                let mut last = g.last_id;
                for (id, _) in &new {
                    read = self.read_counter(read, last, *id);
                    last = *id;
                    counters.push(read);
                }
                let g = self.groups.get_mut(group).ok_or("no group")?;
                let mut out = Vec::new();
                for ((id, f), read) in new.iter().zip(counters) {
                    g.pel.insert(*id, (consumer.clone(), 1));
                    g.last_id = *id;
                    g.entries_read = read;
                    out.push(entry_reply(*id, f));
                }
                Ok(Resp::Array(Some(vec![Resp::Array(Some(vec![
                    bulk(own),
                    Resp::Array(Some(out)),
                ]))])))
            }
            Cmd::ReadHistory {
                group,
                consumer,
                count,
            } => {
                let entries = &self.entries;
                let g = self.groups.get_mut(group).ok_or("no group")?;
                g.consumers.insert(consumer.clone());
                let mut out = Vec::new();
                for (id, (c, n)) in g.pel.iter_mut() {
                    if out.len() == *count {
                        break;
                    }
                    if c == consumer {
                        *n += 1;
                        let f = entries.get(id).ok_or("PEL entry without stream entry")?;
                        out.push(entry_reply(*id, f));
                    }
                }
                Ok(Resp::Array(Some(vec![Resp::Array(Some(vec![
                    bulk(own),
                    Resp::Array(Some(out)),
                ]))])))
            }
            Cmd::Ack { group, ids } => {
                let g = self.groups.get_mut(group).ok_or("no group")?;
                let unique: BTreeSet<Id> = ids.iter().copied().collect();
                let n = unique
                    .iter()
                    .filter(|id| g.pel.remove(id).is_some())
                    .count();
                Ok(Resp::Int(n as i64))
            }
            Cmd::Claim {
                group,
                consumer,
                ids,
                just_id,
            } => {
                let entries = &self.entries;
                let g = self.groups.get_mut(group).ok_or("no group")?;
                let mut out = Vec::new();
                for id in ids {
                    if let Some((c, n)) = g.pel.get_mut(id) {
                        *c = consumer.clone();
                        if !*just_id {
                            *n += 1;
                        }
                        g.consumers.insert(consumer.clone());
                        let f = entries.get(id).ok_or("PEL entry without stream entry")?;
                        out.push(if *just_id {
                            bulk(id.bytes())
                        } else {
                            entry_reply(*id, f)
                        });
                    }
                }
                Ok(Resp::Array(Some(out)))
            }
            Cmd::SetId {
                group,
                id,
                entries_read,
            } => {
                let last = self.last_id;
                let g = self.groups.get_mut(group).ok_or("no group")?;
                g.last_id = id.unwrap_or(last);
                g.entries_read = Some(*entries_read);
                Ok(Resp::Simple("OK".into()))
            }
            Cmd::CreateConsumer { group, consumer } => {
                let g = self.groups.get_mut(group).ok_or("no group")?;
                Ok(Resp::Int(i64::from(g.consumers.insert(consumer.clone()))))
            }
            Cmd::TrimRefs { minid, delref } => {
                // An exact MINID trim walks every entry below `minid`; trimming does not
                // count as deleting (max-deleted-entry-id stays).
                let below: Vec<Id> = self.entries.range(..*minid).map(|(id, _)| *id).collect();
                let mut n = 0;
                for id in below {
                    if *delref {
                        self.drop_everywhere(id);
                    } else if self.referenced(id) {
                        continue;
                    }
                    self.entries.remove(&id);
                    n += 1;
                }
                Ok(Resp::Int(n))
            }
            Cmd::DelEx { ids, delref } => {
                let mut out = Vec::new();
                for id in ids {
                    if *delref {
                        self.drop_everywhere(*id);
                    } else if self.referenced(*id) {
                        out.push(Resp::Int(2));
                        continue;
                    }
                    out.push(Resp::Int(if self.delete(*id) { 1 } else { -1 }));
                }
                Ok(Resp::Array(Some(out)))
            }
            Cmd::AckDel { group, ids, delref } => {
                let mut out = Vec::new();
                for id in ids {
                    let g = self.groups.get_mut(group).ok_or("no group")?;
                    if g.pel.remove(id).is_none() {
                        out.push(Resp::Int(-1));
                        continue;
                    }
                    if *delref {
                        self.drop_everywhere(*id);
                    } else if self.referenced(*id) {
                        out.push(Resp::Int(2));
                        continue;
                    }
                    self.delete(*id);
                    out.push(Resp::Int(1));
                }
                Ok(Resp::Array(Some(out)))
            }
            Cmd::Nack { group, ids } => {
                let g = self.groups.get_mut(group).ok_or("no group")?;
                let mut n = 0;
                for id in ids {
                    if let Some((c, _)) = g.pel.get_mut(id) {
                        c.clear();
                        n += 1;
                    }
                }
                Ok(Resp::Int(n))
            }
            Cmd::ClaimRead { group, consumer } => {
                let entries = &self.entries;
                let g = self.groups.get_mut(group).ok_or("no group")?;
                g.consumers.insert(consumer.clone());
                let mut out = Vec::new();
                for (id, (c, n)) in g.pel.iter_mut() {
                    let f = entries.get(id).ok_or("PEL entry without stream entry")?;
                    out.push(claim_entry_reply(*id, f, *n));
                    *c = consumer.clone();
                    *n += 1;
                }
                let new: Vec<(Id, Fields)> = entries
                    .range(g.last_id..)
                    .filter(|(id, _)| **id > g.last_id)
                    .map(|(id, f)| (*id, f.clone()))
                    .collect();
                let mut counters = Vec::new();
                let mut read = g.entries_read;
                let mut last = g.last_id;
                for (id, _) in &new {
                    read = self.read_counter(read, last, *id);
                    last = *id;
                    counters.push(read);
                }
                let g = self.groups.get_mut(group).ok_or("no group")?;
                for ((id, f), read) in new.iter().zip(counters) {
                    // Also after SETID moved back: delivered again as new, count 1.
                    g.pel.insert(*id, (consumer.clone(), 1));
                    g.last_id = *id;
                    g.entries_read = read;
                    out.push(claim_entry_reply(*id, f, 0));
                }
                if out.is_empty() {
                    return Ok(Resp::Array(None));
                }
                Ok(Resp::Array(Some(vec![Resp::Array(Some(vec![
                    bulk(own),
                    Resp::Array(Some(out)),
                ]))])))
            }
        }
    }

    /// Every difference between what the model expects (`self`) and what the server shows.
    fn diff(&self, actual: &StreamModel, key: &str) -> Vec<String> {
        let mut d = Vec::new();
        if self.exists != actual.exists {
            d.push(format!(
                "{key}: exists={} expected {}",
                actual.exists, self.exists
            ));
            return d;
        }
        for (id, f) in &self.entries {
            match actual.entries.get(id) {
                None => d.push(format!("{key}: acknowledged entry {id} is missing")),
                Some(af) if af != f => d.push(format!(
                    "{key}: entry {id} has fields {} expected {}",
                    show_fields(af),
                    show_fields(f)
                )),
                _ => {}
            }
        }
        for id in actual.entries.keys() {
            if !self.entries.contains_key(id) {
                d.push(format!("{key}: unexpected entry {id}"));
            }
        }
        if self.last_id != actual.last_id {
            d.push(format!(
                "{key}: last-generated-id {} expected {}",
                actual.last_id, self.last_id
            ));
        }
        if self.max_deleted != actual.max_deleted {
            d.push(format!(
                "{key}: max-deleted-entry-id {} expected {}",
                actual.max_deleted, self.max_deleted
            ));
        }
        if self.entries_added != actual.entries_added {
            d.push(format!(
                "{key}: entries-added {} expected {}",
                actual.entries_added, self.entries_added
            ));
        }
        let names: BTreeSet<&String> = self.groups.keys().chain(actual.groups.keys()).collect();
        for name in names {
            let (e, a) = match (self.groups.get(name), actual.groups.get(name)) {
                (Some(e), Some(a)) => (e, a),
                (Some(_), None) => {
                    d.push(format!("{key}: group {name} is missing"));
                    continue;
                }
                (None, Some(_)) => {
                    d.push(format!("{key}: unexpected group {name}"));
                    continue;
                }
                (None, None) => continue,
            };
            let g = format!("{key} group {name}");
            if e.last_id != a.last_id {
                d.push(format!(
                    "{g}: last-delivered-id {} expected {}",
                    a.last_id, e.last_id
                ));
            }
            if e.entries_read != a.entries_read {
                d.push(format!(
                    "{g}: entries-read {:?} expected {:?}",
                    a.entries_read, e.entries_read
                ));
            }
            if e.consumers != a.consumers {
                d.push(format!(
                    "{g}: consumers {:?} expected {:?}",
                    a.consumers, e.consumers
                ));
            }
            for (id, (c, n)) in &e.pel {
                match a.pel.get(id) {
                    None => d.push(format!(
                        "{g}: pending entry {id} (consumer {c}, deliveries {n}) is missing"
                    )),
                    Some((ac, an)) if (ac, an) != (c, n) => d.push(format!(
                        "{g}: pending entry {id} is (consumer {ac}, deliveries {an}) expected (consumer {c}, deliveries {n})"
                    )),
                    _ => {}
                }
            }
            for (id, (c, n)) in &a.pel {
                if !e.pel.contains_key(id) {
                    d.push(format!(
                        "{g}: entry {id} is pending (consumer {c}, deliveries {n}) but was acknowledged or never delivered"
                    ));
                }
            }
        }
        d
    }
}

fn show_fields(f: &Fields) -> String {
    let parts: Vec<String> = f
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={:?}",
                String::from_utf8_lossy(k),
                String::from_utf8_lossy(v)
            )
        })
        .collect();
    format!("{{{}}}", parts.join(", "))
}

// ------------------------------------------------------------------------------------------
// Reading the server's state back.
// ------------------------------------------------------------------------------------------

fn as_array(r: &Resp, what: &str) -> Result<Vec<Resp>, String> {
    match r {
        Resp::Array(Some(a)) => Ok(a.clone()),
        Resp::Array(None) => Ok(Vec::new()),
        other => Err(format!("{what}: expected an array, got {other}")),
    }
}

fn as_bytes(r: &Resp, what: &str) -> Result<Vec<u8>, String> {
    match r {
        Resp::Bulk(Some(b)) => Ok(b.clone()),
        Resp::Simple(s) => Ok(s.clone().into_bytes()),
        other => Err(format!("{what}: expected a string, got {other}")),
    }
}

fn as_id(r: &Resp, what: &str) -> Result<Id, String> {
    let b = as_bytes(r, what)?;
    Id::parse(&b).ok_or_else(|| format!("{what}: bad ID {:?}", String::from_utf8_lossy(&b)))
}

fn as_int(r: &Resp, what: &str) -> Result<i64, String> {
    match r {
        Resp::Int(n) => Ok(*n),
        Resp::Bulk(Some(b)) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("{what}: not a number")),
        other => Err(format!("{what}: expected an integer, got {other}")),
    }
}

/// A flat `[name, value, …]` reply as a map.
fn as_map(r: &Resp, what: &str) -> Result<BTreeMap<String, Resp>, String> {
    let a = as_array(r, what)?;
    let mut m = BTreeMap::new();
    for pair in a.chunks(2) {
        if let [k, v] = pair {
            m.insert(
                String::from_utf8_lossy(&as_bytes(k, what)?).into_owned(),
                v.clone(),
            );
        }
    }
    Ok(m)
}

fn field<'a>(m: &'a BTreeMap<String, Resp>, name: &str, what: &str) -> Result<&'a Resp, String> {
    m.get(name)
        .ok_or_else(|| format!("{what}: no field {name:?}"))
}

fn parse_entries(r: &Resp, what: &str) -> Result<BTreeMap<Id, Fields>, String> {
    let mut out = BTreeMap::new();
    for e in as_array(r, what)? {
        let e = as_array(&e, what)?;
        let (Some(id), Some(flat)) = (e.first(), e.get(1)) else {
            return Err(format!("{what}: malformed entry"));
        };
        let flat = as_array(flat, what)?;
        let mut fields = Vec::new();
        for pair in flat.chunks(2) {
            if let [f, v] = pair {
                fields.push((as_bytes(f, what)?, as_bytes(v, what)?));
            }
        }
        out.insert(as_id(id, what)?, fields);
    }
    Ok(out)
}

fn call(conn: &mut Conn, a: &[Vec<u8>]) -> Result<Resp, String> {
    let began = Instant::now();
    let reply = conn
        .call(a)
        .map_err(|e| format!("{} failed: {e}", String::from_utf8_lossy(&a.join(&b' '))));
    // A verify normally takes well under a second; say which reply was slow when one is
    // (the power-cut runs saw two verifies of over 100 s, not yet explained).
    let took = began.elapsed();
    if took > SLOW_REPLY {
        let cmd: Vec<&[u8]> = a.iter().take(4).map(|x| x.as_slice()).collect();
        eprintln!(
            "slow reply: {} … took {} ms",
            String::from_utf8_lossy(&cmd.join(&b' ')),
            took.as_millis()
        );
    }
    reply
}

/// A checking command slower than this is reported on stderr.
const SLOW_REPLY: Duration = Duration::from_secs(3);

/// Reads everything the model describes about `key` from the server.
fn observe(conn: &mut Conn, key: &str) -> Result<StreamModel, String> {
    let k = key.as_bytes();
    let info = call(conn, &argv(&[b"XINFO", b"STREAM", k]))?;
    if let Resp::Error(e) = &info {
        if e.contains("no such key") {
            return Ok(StreamModel::default());
        }
        return Err(format!("XINFO STREAM {key}: -{e}"));
    }
    let info = as_map(&info, "XINFO STREAM")?;
    let mut m = StreamModel {
        exists: true,
        last_id: as_id(
            field(&info, "last-generated-id", "XINFO STREAM")?,
            "last-generated-id",
        )?,
        entries_added: as_int(
            field(&info, "entries-added", "XINFO STREAM")?,
            "entries-added",
        )? as u64,
        max_deleted: as_id(
            field(&info, "max-deleted-entry-id", "XINFO STREAM")?,
            "max-deleted-entry-id",
        )?,
        ..StreamModel::default()
    };
    m.entries = parse_entries(&call(conn, &argv(&[b"XRANGE", k, b"-", b"+"]))?, "XRANGE")?;
    let length = as_int(field(&info, "length", "XINFO STREAM")?, "length")?;
    if length as usize != m.entries.len() {
        return Err(format!(
            "{key}: XINFO STREAM length {length} but XRANGE returned {} entries",
            m.entries.len()
        ));
    }
    for g in as_array(
        &call(conn, &argv(&[b"XINFO", b"GROUPS", k]))?,
        "XINFO GROUPS",
    )? {
        let g = as_map(&g, "XINFO GROUPS")?;
        let name =
            String::from_utf8_lossy(&as_bytes(field(&g, "name", "group")?, "name")?).into_owned();
        let gb = name.as_bytes();
        let mut gm = GroupModel {
            last_id: as_id(
                field(&g, "last-delivered-id", "group")?,
                "last-delivered-id",
            )?,
            entries_read: match field(&g, "entries-read", "group")? {
                Resp::Bulk(None) | Resp::Array(None) => None,
                r => Some(as_int(r, "entries-read")? as u64),
            },
            ..GroupModel::default()
        };
        let pel = call(
            conn,
            &argv(&[b"XPENDING", k, gb, b"-", b"+", b"1000000000"]),
        )?;
        for p in as_array(&pel, "XPENDING")? {
            let p = as_array(&p, "XPENDING entry")?;
            if p.len() != 4 {
                return Err(format!(
                    "{key} group {name}: XPENDING entry of {} fields",
                    p.len()
                ));
            }
            let c = String::from_utf8_lossy(&as_bytes(&p[1], "consumer")?).into_owned();
            gm.pel.insert(
                as_id(&p[0], "XPENDING id")?,
                (c, as_int(&p[3], "deliveries")? as u64),
            );
        }
        let mut per_consumer: BTreeMap<String, i64> = BTreeMap::new();
        for c in as_array(
            &call(conn, &argv(&[b"XINFO", b"CONSUMERS", k, gb]))?,
            "XINFO CONSUMERS",
        )? {
            let c = as_map(&c, "XINFO CONSUMERS")?;
            let cname = String::from_utf8_lossy(&as_bytes(field(&c, "name", "consumer")?, "name")?)
                .into_owned();
            per_consumer.insert(
                cname.clone(),
                as_int(field(&c, "pending", "consumer")?, "pending")?,
            );
            gm.consumers.insert(cname);
        }
        // The three views of a group must agree with each other.
        for (cname, pending) in &per_consumer {
            let in_pel = gm.pel.values().filter(|(c, _)| c == cname).count() as i64;
            if *pending != in_pel {
                return Err(format!(
                    "{key} group {name}: XINFO CONSUMERS says {cname} has {pending} pending, XPENDING lists {in_pel}"
                ));
            }
        }
        let pending = as_int(field(&g, "pending", "group")?, "pending")?;
        let consumers = as_int(field(&g, "consumers", "group")?, "consumers")?;
        if pending as usize != gm.pel.len() || consumers as usize != gm.consumers.len() {
            return Err(format!(
                "{key} group {name}: XINFO GROUPS says {pending} pending / {consumers} consumers, XPENDING/XINFO CONSUMERS show {} / {}",
                gm.pel.len(),
                gm.consumers.len()
            ));
        }
        m.groups.insert(name, gm);
    }
    Ok(m)
}

// ------------------------------------------------------------------------------------------
// Workers.
// ------------------------------------------------------------------------------------------

/// Every key carries the hash tag `{crash}`: in cluster mode (`--replicated`) a MULTI/EXEC
/// pair over a worker's stream and the shared one must be in one slot, or it is refused
/// with -CROSSSLOT (which, counted as the load's end, had stopped every worker within its
/// first few dozen commands).
const SHARED_KEY: &str = "{crash}:shared";
const TOKEN: &[u8] = b"op";
/// The length limit of every worker's retention stream (broker policies, issue #16).
const RETAIN_MAXLEN: usize = 8;

/// What one connection owns across cycles.
struct Worker {
    index: usize,
    key: String,
    model: StreamModel,
    rng: StdRng,
    seq: u64,
    /// Acknowledged XADDs to the shared stream: ID → fields.
    shared_acked: BTreeMap<Id, Fields>,
    /// Shared-stream appends acknowledged (or found applied) since the last restart,
    /// re-sent after it: IDMP must answer each with its ID.
    idmp_resend: Vec<(Fields, Id)>,
    /// Commands acknowledged over the whole run.
    acked: u64,
    /// How its last load ended with an op in flight: the error reply (its first word) or
    /// the connection's error — the replicated runs count these per nemesis.
    ended_by: Option<String>,
    /// When each op of its last load was acknowledged (the replicated runs count the
    /// acknowledgements a leader gave after it was cut off from its majority).
    ack_times: Vec<Instant>,
    /// Acknowledged appends to the worker's retention stream (`<key>:ret`, under a
    /// `RILL.POLICY … MAXLEN` the server's sweep enforces), oldest first.
    retained: Vec<(Id, Fields)>,
    /// The retention append whose reply never came.
    retained_in_flight: Option<Fields>,
    /// Whether the retention stream's dead-lettering group exists (with its policy).
    retained_group: bool,
}

/// How a load phase ended for one worker.
struct LoadEnd {
    worker: Worker,
    /// The op sent whose reply never came (or, after a power cut, was an error: the server
    /// could not write it, or not know whether it was written).
    in_flight: Option<Op>,
    /// A wrong reply (the server is wrong even without a crash).
    violation: Option<String>,
}

impl Worker {
    fn random_value(&mut self) -> Vec<u8> {
        let len = self.rng.gen_range(0..48);
        (0..len).map(|_| self.rng.gen::<u8>()).collect()
    }

    fn fields(&mut self) -> Fields {
        self.seq += 1;
        let mut f = vec![(
            TOKEN.to_vec(),
            format!("w{}-{}", self.index, self.seq).into_bytes(),
        )];
        for i in 0..self.rng.gen_range(0..3) {
            let v = self.random_value();
            f.push((format!("f{i}").into_bytes(), v));
        }
        f
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> Option<T> {
        if items.is_empty() {
            None
        } else {
            Some(items[self.rng.gen_range(0..items.len())].clone())
        }
    }

    fn consumer(&mut self) -> String {
        format!("c{}", self.rng.gen_range(0..4))
    }

    fn pending_ids(&mut self, group: &str, max: usize) -> Vec<Id> {
        let all: Vec<Id> = self
            .model
            .groups
            .get(group)
            .map(|g| g.pel.keys().copied().collect())
            .unwrap_or_default();
        let n = self.rng.gen_range(1..=max);
        let picked: BTreeSet<Id> = (0..n).filter_map(|_| self.pick(&all)).collect();
        picked.into_iter().collect()
    }

    /// Chooses the next command from what the model says exists.
    fn next_cmd(&mut self) -> Cmd {
        let groups: Vec<String> = self.model.groups.keys().cloned().collect();
        let group = self.pick(&groups);
        let roll = self.rng.gen_range(0..100);
        match (roll, group) {
            (_, None) | (0..=2, Some(_)) if groups.len() < 3 => {
                let at_end = self.rng.gen_bool(0.3);
                Cmd::Create {
                    group: format!("g{}", groups.len()),
                    at_end,
                    entries_read: if at_end { self.model.entries_added } else { 0 },
                }
            }
            (0..=29, _) | (_, None) => Cmd::XAdd {
                fields: self.fields(),
                shared: false,
            },
            (30..=39, _) => Cmd::XAdd {
                fields: self.fields(),
                shared: true,
            },
            (40..=59, Some(group)) => Cmd::ReadNew {
                group,
                consumer: self.consumer(),
                count: self.rng.gen_range(1..=5),
            },
            (60..=64, Some(group)) => Cmd::ReadHistory {
                group,
                consumer: self.consumer(),
                count: self.rng.gen_range(1..=5),
            },
            (77..=78, Some(_)) => {
                // Somewhere in the oldest quarter of the stream.
                let ids: Vec<Id> = self.model.entries.keys().copied().collect();
                let quarter = &ids[..ids.len().div_ceil(4)];
                Cmd::TrimRefs {
                    minid: self.pick(quarter).unwrap_or(Id(1, 0)),
                    delref: self.rng.gen_bool(0.3),
                }
            }
            (79..=80, Some(_)) => {
                let all: Vec<Id> = self.model.entries.keys().copied().collect();
                let mut ids: Vec<Id> = (0..self.rng.gen_range(1..=3))
                    .filter_map(|_| self.pick(&all))
                    .collect();
                if ids.is_empty() || self.rng.gen_bool(0.1) {
                    ids.push(Id(1, self.rng.gen_range(0..1000)));
                }
                Cmd::DelEx {
                    ids,
                    delref: self.rng.gen_bool(0.3),
                }
            }
            (81..=82, Some(group)) => {
                let mut ids = self.pending_ids(&group, 3);
                if ids.is_empty() || self.rng.gen_bool(0.1) {
                    ids.push(Id(1, self.rng.gen_range(0..1000)));
                }
                Cmd::AckDel {
                    group,
                    ids,
                    delref: self.rng.gen_bool(0.3),
                }
            }
            (65..=76, Some(group)) => {
                let mut ids = self.pending_ids(&group, 3);
                if ids.is_empty() || self.rng.gen_bool(0.1) {
                    // An ID never delivered: XACK must not count it.
                    ids.push(Id(1, self.rng.gen_range(0..1000)));
                }
                Cmd::Ack { group, ids }
            }
            (83..=91, Some(group)) => {
                let ids = self.pending_ids(&group, 3);
                if ids.is_empty() {
                    return Cmd::CreateConsumer {
                        group,
                        consumer: self.consumer(),
                    };
                }
                Cmd::Claim {
                    group,
                    consumer: self.consumer(),
                    ids,
                    just_id: self.rng.gen_bool(0.3),
                }
            }
            (92..=95, Some(group)) => {
                let ids: Vec<Id> = self.model.entries.keys().copied().collect();
                let id = if self.rng.gen_bool(0.3) {
                    None
                } else {
                    self.pick(&ids)
                };
                let entries_read = match id {
                    None => self.model.entries_added,
                    Some(id) => self.model.count_upto(id),
                };
                Cmd::SetId {
                    group,
                    id,
                    entries_read,
                }
            }
            (96..=97, Some(group)) => Cmd::ClaimRead {
                group,
                consumer: self.consumer(),
            },
            (98..=99, Some(group)) => {
                let mut ids = self.pending_ids(&group, 3);
                if ids.is_empty() {
                    return Cmd::CreateConsumer {
                        group,
                        consumer: self.consumer(),
                    };
                }
                if self.rng.gen_bool(0.2) {
                    // Counted twice, as Redis does.
                    ids.push(ids[0]);
                }
                if self.rng.gen_bool(0.1) {
                    ids.push(Id(1, self.rng.gen_range(0..1000)));
                }
                Cmd::Nack { group, ids }
            }
            (_, Some(group)) => Cmd::CreateConsumer {
                group,
                consumer: self.consumer(),
            },
        }
    }

    fn next_op(&mut self) -> Op {
        if self.rng.gen_range(0..100) < 8 {
            // An atomic pair: an append and an ack (or a read), all or nothing.
            let first = Cmd::XAdd {
                fields: self.fields(),
                shared: self.rng.gen_bool(0.3),
            };
            let second = self.next_cmd();
            return Op {
                cmds: vec![first, second],
                multi: true,
            };
        }
        Op {
            cmds: vec![self.next_cmd()],
            multi: false,
        }
    }

    /// Applies an acknowledged op to the model, checking every reply against it.
    fn apply_acked(&mut self, op: &Op, replies: &[Resp]) -> Result<(), String> {
        for (cmd, reply) in op.cmds.iter().zip(replies) {
            if let Resp::Error(e) = reply {
                return Err(format!("{cmd:?} got the error -{e}"));
            }
            match cmd {
                Cmd::XAdd { fields, shared } => {
                    let id = as_id(reply, "XADD reply")?;
                    if *shared {
                        self.shared_acked.insert(id, fields.clone());
                        self.idmp_resend.push((fields.clone(), id));
                    } else {
                        self.model.apply(cmd, &self.key, Some(id))?;
                    }
                }
                _ => {
                    let want = self.model.apply(cmd, &self.key, None)?;
                    let normalized;
                    let reply = if matches!(cmd, Cmd::ClaimRead { .. }) {
                        normalized = normalize_claim_reply(reply);
                        &normalized
                    } else {
                        reply
                    };
                    if &want != reply {
                        return Err(format!(
                            "{}: reply {reply} but the model expects {want}",
                            String::from_utf8_lossy(&cmd.argv(&self.key, SHARED_KEY).join(&b' '))
                        ));
                    }
                }
            }
        }
        self.acked += op.cmds.len() as u64;
        self.ack_times.push(Instant::now());
        Ok(())
    }

    /// One append to the retention stream, with its policy (re)stated in the same
    /// transaction (an unchanged policy is not logged again): `MULTI; XADD <key>:ret * …;
    /// RILL.POLICY SET <key>:ret MAXLEN 8; EXEC`. An error reply is `InvalidData`; a
    /// connection that died leaves the append in flight.
    fn retention_op(&mut self, conn: &mut Conn) -> std::io::Result<()> {
        let key = format!("{{{}:ret}}", self.key);
        let fields = self.fields();
        let mut add: Vec<&[u8]> = vec![b"XADD", key.as_bytes(), b"*"];
        for (k, v) in &fields {
            add.push(k);
            add.push(v);
        }
        let maxlen = RETAIN_MAXLEN.to_string();
        if !self.retained_group {
            // Once: a group that reads every entry and never acknowledges, under a
            // dead-letter policy that moves each one after its first delivery.
            let created = conn.call(&argv(&[
                b"XGROUP",
                b"CREATE",
                key.as_bytes(),
                b"g",
                b"$",
                b"MKSTREAM",
            ]))?;
            let policy = conn.call(&argv(&[
                b"RILL.POLICY",
                b"GROUP",
                key.as_bytes(),
                b"g",
                b"MAXDELIVER",
                b"1",
                b"ACKWAIT",
                b"20",
            ]))?;
            let created_ok = matches!(&created, Resp::Simple(s) if s == "OK")
                || matches!(&created, Resp::Error(e) if e.starts_with("BUSYGROUP"));
            if !created_ok || !matches!(&policy, Resp::Simple(s) if s == "OK") {
                return Err(bad_data(format!(
                    "retention group set-up answered {created} and {policy}"
                )));
            }
            self.retained_group = true;
        }
        self.retained_in_flight = Some(fields.clone());
        conn.send(&argv(&[b"MULTI"]))?;
        conn.send(&argv(&add))?;
        conn.send(&argv(&[
            b"RILL.POLICY",
            b"SET",
            key.as_bytes(),
            b"MAXLEN",
            maxlen.as_bytes(),
        ]))?;
        conn.send(&argv(&[
            b"XREADGROUP",
            b"GROUP",
            b"g",
            b"c",
            b"COUNT",
            b"1",
            b"STREAMS",
            key.as_bytes(),
            b">",
        ]))?;
        conn.send(&argv(&[b"EXEC"]))?;
        for _ in 0..4 {
            let r = conn.read()?;
            if !matches!(&r, Resp::Simple(s) if s == "OK" || s == "QUEUED") {
                return Err(bad_data(format!("retention MULTI queueing answered {r}")));
            }
        }
        let exec = conn.read()?;
        let Resp::Array(Some(items)) = &exec else {
            return Err(bad_data(format!("retention EXEC answered {exec}")));
        };
        let id = match items.as_slice() {
            [id, Resp::Simple(ok), Resp::Array(_)] if ok == "OK" => {
                as_id(id, "retention XADD").map_err(bad_data)?
            }
            _ => return Err(bad_data(format!("retention EXEC answered {exec}"))),
        };
        self.retained_in_flight = None;
        self.retained.push((id, fields));
        self.acked += 3;
        Ok(())
    }

    /// Sends one op; `Ok(None)` when the connection died before its reply was complete.
    fn run_op(&mut self, conn: &mut Conn, op: &Op) -> std::io::Result<Vec<Resp>> {
        if !op.multi {
            let a = op.cmds[0].argv(&self.key, SHARED_KEY);
            return Ok(vec![conn.call(&a)?]);
        }
        conn.send(&argv(&[b"MULTI"]))?;
        for c in &op.cmds {
            conn.send(&c.argv(&self.key, SHARED_KEY))?;
        }
        conn.send(&argv(&[b"EXEC"]))?;
        let mut queued = Vec::new();
        for _ in 0..op.cmds.len() + 1 {
            queued.push(conn.read()?);
        }
        let exec = conn.read()?;
        if let Some(bad) = queued
            .iter()
            .find(|r| !matches!(r, Resp::Simple(s) if s == "OK" || s == "QUEUED"))
        {
            return Err(bad_data(format!("MULTI queueing answered {bad}")));
        }
        match exec {
            Resp::Array(Some(items)) if items.len() == op.cmds.len() => Ok(items),
            other => Err(bad_data(format!("EXEC answered {other}"))),
        }
    }

    /// Runs ops until the connection dies (the server was killed). Once `powered_off` is set
    /// (just before the power is cut, while the server still runs) an error reply is the
    /// server failing to write or fsync, not a wrong answer: the op's outcome is then unknown,
    /// as for one whose reply never came, and the load ends. An acknowledgement after the cut
    /// is still an acknowledgement: it must have been durable before the power went.
    fn load(mut self, port: u16, powered_off: &AtomicBool, stop: &AtomicBool) -> LoadEnd {
        self.ended_by = None;
        self.ack_times.clear();
        let mut conn = match Conn::connect(port) {
            Ok(c) => c,
            Err(_) => {
                return LoadEnd {
                    worker: self,
                    in_flight: None,
                    violation: None,
                }
            }
        };
        loop {
            if stop.load(Ordering::SeqCst) {
                return LoadEnd {
                    worker: self,
                    in_flight: None,
                    violation: None,
                };
            }
            if self.rng.gen_range(0..100) < 6 {
                match self.retention_op(&mut conn) {
                    Ok(()) => continue,
                    Err(e)
                        if e.kind() == std::io::ErrorKind::InvalidData
                            && !powered_off.load(Ordering::SeqCst) =>
                    {
                        let violation = Some(format!("worker {}: {e}", self.index));
                        return LoadEnd {
                            worker: self,
                            in_flight: None,
                            violation,
                        };
                    }
                    Err(_) => {
                        return LoadEnd {
                            worker: self,
                            in_flight: None,
                            violation: None,
                        };
                    }
                }
            }
            let op = self.next_op();
            let result = self.run_op(&mut conn, &op);
            let refused = match &result {
                Ok(replies) => replies.iter().any(|r| matches!(r, Resp::Error(_))),
                Err(e) => e.kind() == std::io::ErrorKind::InvalidData,
            };
            if refused && powered_off.load(Ordering::SeqCst) {
                self.ended_by = Some(match &result {
                    Ok(replies) => replies
                        .iter()
                        .find_map(|r| match r {
                            Resp::Error(e) => e.split_whitespace().next().map(|w| format!("-{w}")),
                            _ => None,
                        })
                        .unwrap_or_default(),
                    Err(e) => e.to_string(),
                });
                return LoadEnd {
                    worker: self,
                    in_flight: Some(op),
                    violation: None,
                };
            }
            match result {
                Ok(replies) => {
                    if let Err(v) = self.apply_acked(&op, &replies) {
                        let violation = Some(format!("worker {}: {v}", self.index));
                        return LoadEnd {
                            worker: self,
                            in_flight: None,
                            violation,
                        };
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                    let violation = Some(format!("worker {}: {e}", self.index));
                    return LoadEnd {
                        worker: self,
                        in_flight: None,
                        violation,
                    };
                }
                Err(e) => {
                    self.ended_by = Some(format!("{:?}", e.kind()));
                    return LoadEnd {
                        worker: self,
                        in_flight: Some(op),
                        violation: None,
                    };
                }
            }
        }
    }
}

/// The model plus all of `op`, if the observed state shows where its own-stream XADDs went
/// (an XADD's ID is only known from its reply, which never came).
fn with_op(w: &Worker, op: &Op, actual: &StreamModel) -> Option<StreamModel> {
    let mut m = w.model.clone();
    for cmd in &op.cmds {
        match cmd {
            Cmd::XAdd {
                fields,
                shared: false,
            } => {
                let (id, _) = actual.entries.iter().find(|(_, f)| *f == fields)?;
                m.apply(cmd, &w.key, Some(*id)).ok()?;
            }
            // Checked against the shared stream by the caller.
            Cmd::XAdd { shared: true, .. } => {}
            _ => {
                m.apply(cmd, &w.key, None).ok()?;
            }
        }
    }
    Some(m)
}

// ------------------------------------------------------------------------------------------
// The server process.
// ------------------------------------------------------------------------------------------

struct Server {
    child: Child,
    port: u16,
}

fn start_server(
    bin: &Path,
    dir: &Path,
    log: &Path,
    appendfsync: &str,
    raft: bool,
) -> Result<Server, String> {
    start_node(bin, dir, log, appendfsync, raft, None, &[]).map_err(String::from)
}

/// Why a server did not come up.
enum StartError {
    /// It exited by itself while starting (it refused its data directory, say): the
    /// reason is in its log, whose last error lines this carries.
    Exited(String),
    /// Anything else (it could not be run, printed no port, did not answer in time).
    Other(String),
}

impl From<String> for StartError {
    fn from(why: String) -> Self {
        StartError::Other(why)
    }
}

impl From<&str> for StartError {
    fn from(why: &str) -> Self {
        StartError::Other(why.to_string())
    }
}

impl From<StartError> for String {
    fn from(e: StartError) -> Self {
        match e {
            StartError::Exited(why) | StartError::Other(why) => why,
        }
    }
}

/// [`start_server`], or with `node` = `Some(port)` a replica of a replicated shard on that
/// port (its cluster bus on port + 10000).
fn start_node(
    bin: &Path,
    dir: &Path,
    log: &Path,
    appendfsync: &str,
    raft: bool,
    node: Option<u16>,
    extra: &[String],
) -> Result<Server, StartError> {
    let port = node.map_or_else(|| "0".to_string(), |p| p.to_string());
    let cluster: &[&str] = if node.is_some() {
        &[
            "--cluster-enabled",
            "yes",
            "--cluster-raft",
            "yes",
            "--cluster-secret",
            "rill-crashtest",
        ]
    } else if raft {
        &["--cluster-raft", "yes"]
    } else {
        &[]
    };
    let mut child = Command::new(bin)
        .args([
            "--port",
            &port,
            "--bind",
            "127.0.0.1",
            "--appendfsync",
            appendfsync,
        ])
        .args(["--segment-size", "1mb", "--save", ""])
        .args(cluster)
        .args(extra)
        .arg("--dir")
        .arg(dir)
        .env("NO_COLOR", "1")
        .env_remove("RILL_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let (tx, rx) = std::sync::mpsc::channel();
    let mut logfile = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| format!("cannot open {}: {e}", log.display()))?;
    let mut errfile = logfile
        .try_clone()
        .map_err(|e| format!("cannot open {}: {e}", log.display()))?;
    let out_reader = std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = writeln!(logfile, "{line}");
            if !sent {
                if let Some(p) = line.split("port=").nth(1) {
                    let digits: String = p.chars().take_while(|c| c.is_ascii_digit()).collect();
                    if let Ok(port) = digits.parse::<u16>() {
                        let _ = tx.send(port);
                        sent = true;
                    }
                }
            }
        }
    });
    let err_reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let _ = writeln!(errfile, "stderr: {line}");
        }
    });
    let fail = |mut child: Child, why: String| -> Result<Server, StartError> {
        let _ = child.kill();
        let _ = child.wait();
        Err(StartError::Other(why))
    };
    let port = match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(p) => p,
        Err(_) => {
            return fail(
                child,
                format!(
                    "the server printed no port within 60 s (see {})",
                    log.display()
                ),
            )
        }
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            // Its pipes are closed: once the readers have copied the last lines, the log
            // says why.
            let _ = out_reader.join();
            let _ = err_reader.join();
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let errors: Vec<&str> = text.lines().filter(|l| l.contains("ERROR")).collect();
            return Err(StartError::Exited(format!(
                "the server exited with {status} while starting (see {}): {}",
                log.display(),
                errors[errors.len().saturating_sub(3)..].join(" | ")
            )));
        }
        if let Ok(mut c) = Conn::connect(port) {
            if let Ok(Resp::Simple(p)) = c.call(&argv(&[b"PING"])) {
                if p == "PONG" {
                    return Ok(Server { child, port });
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    fail(
        child,
        format!(
            "the server did not answer PING within 120 s (see {})",
            log.display()
        ),
    )
}

/// A server the run gave up on (an error returned early) is killed, not left running: it
/// would hold the power-cut file system mounted (`Device or resource busy` at unmount).
impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Server {
    fn kill(mut self) -> Result<(), String> {
        self.child
            .kill()
            .map_err(|e| format!("cannot SIGKILL the server: {e}"))?;
        let _ = self.child.wait();
        Ok(())
    }

    /// SIGTERM and wait: the clean shutdown path must lose nothing either.
    fn terminate(mut self) -> Result<(), String> {
        let pid = libc::pid_t::try_from(self.child.id()).map_err(|_| "pid out of range")?;
        // SAFETY: signalling our own child, which has not been reaped yet.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return if status.success() {
                    Ok(())
                } else {
                    Err(format!("the server exited with {status} after SIGTERM"))
                };
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        Err("the server did not exit within 30 s of SIGTERM".into())
    }
}

/// Truncates the newest segment before its `n` last records (fewer if it holds fewer).
fn drop_newest_records(dir: &Path, n: usize) -> Result<(), String> {
    use rill::storage::record::{decode, Decoded};
    use rill::storage::recovery::{list_segments, SEGMENT_HEADER_LEN};
    let segs = list_segments(dir).map_err(|e| e.to_string())?;
    let Some((_, path)) = segs.last() else {
        return Ok(());
    };
    let data = bytes::Bytes::from(std::fs::read(path).map_err(|e| e.to_string())?);
    let mut starts = Vec::new();
    let mut off = SEGMENT_HEADER_LEN;
    while off < data.len() {
        match decode(&data.slice(off..)) {
            Decoded::Record { len, .. } => {
                starts.push(off);
                off += len;
            }
            _ => break,
        }
    }
    let cut = starts
        .len()
        .checked_sub(n)
        .and_then(|i| starts.get(i))
        .copied()
        .unwrap_or(SEGMENT_HEADER_LEN);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| e.to_string())?;
    f.set_len(cut as u64).map_err(|e| e.to_string())
}

/// Runs `rill check DIR` on the killed server's directory: after a SIGKILL it must be clean,
/// or at worst end in a torn tail (a write the kernel had only partly taken).
fn offline_check(bin: &Path, dir: &Path) -> Result<(), String> {
    let out = Command::new(bin)
        .arg("check")
        .arg(dir)
        .output()
        .map_err(|e| format!("cannot run rill check: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    match out.status.code() {
        Some(0) => Ok(()),
        Some(1) if text.contains("torn tail") => Ok(()),
        _ => Err(format!(
            "rill check {} exited with {}:\n{}{}",
            dir.display(),
            out.status,
            text,
            String::from_utf8_lossy(&out.stderr)
        )),
    }
}

// ------------------------------------------------------------------------------------------
// The power-cut file system (tools/lazyfs), driven through its control socket.
// ------------------------------------------------------------------------------------------

/// A mounted `rill-lazyfs`; unmounted when dropped, on every exit path.
struct LazyFs {
    child: Child,
    mnt: PathBuf,
    control: PathBuf,
}

/// What the power cuts dropped, summed over the run (from the file system's reports).
#[derive(Default)]
struct CutTotals {
    bytes_dropped: u64,
    bytes_torn_kept: u64,
    files_reverted: u64,
    names_reverted: u64,
    inodes_removed: u64,
}

impl LazyFs {
    /// Mounts a fresh lazy file system on `work/mnt` and waits until it answers.
    fn mount(
        bin: &Path,
        work: &Path,
        tear_seed: Option<u64>,
        sync_delay_us: u64,
    ) -> Result<LazyFs, String> {
        let mnt = work.join("mnt");
        std::fs::create_dir_all(&mnt)
            .map_err(|e| format!("cannot create {}: {e}", mnt.display()))?;
        let control = work.join("lazyfs.sock");
        let mut cmd = Command::new(bin);
        cmd.arg(&mnt).arg("--control").arg(&control);
        cmd.arg("--sync-delay-us").arg(sync_delay_us.to_string());
        if let Some(s) = tear_seed {
            cmd.arg("--tear-seed").arg(s.to_string());
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout from rill-lazyfs")?;
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        if line.trim() != "ready" {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "rill-lazyfs did not mount on {} (FUSE is required: /dev/fuse and root or \
                 fusermount3; .ci/powercut installs fuse3)",
                mnt.display()
            ));
        }
        Ok(LazyFs {
            child,
            mnt,
            control,
        })
    }

    /// One control command; the answer after `ok`.
    fn request(&self, command: &str) -> Result<String, String> {
        let err = |e: std::io::Error| format!("rill-lazyfs control {command}: {e}");
        let mut s = std::os::unix::net::UnixStream::connect(&self.control).map_err(err)?;
        s.set_read_timeout(Some(Duration::from_secs(60)))
            .map_err(err)?;
        writeln!(s, "{command}").map_err(err)?;
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).map_err(err)?;
        let line = line.trim_end();
        match line.strip_prefix("ok") {
            Some(rest) => Ok(rest.trim_start().to_string()),
            None => Err(format!("rill-lazyfs control {command}: {line:?}")),
        }
    }

    /// The power goes: from now on every change and sync fails with EIO.
    fn cut(&self) -> Result<(), String> {
        self.request("cut").map(|_| ())
    }

    /// The power comes back: everything not durable at the cut is dropped. Adds the file
    /// system's report to `totals` and returns it for the cycle line.
    fn restore(&self, totals: &mut CutTotals) -> Result<String, String> {
        let report = self.request("restore")?;
        let field = |k: &str| -> Result<u64, String> {
            report
                .split_whitespace()
                .find_map(|kv| kv.strip_prefix(k)?.strip_prefix('='))
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("rill-lazyfs restore: no {k} in {report:?}"))
        };
        totals.bytes_dropped += field("bytes_dropped")?;
        totals.bytes_torn_kept += field("bytes_torn_kept")?;
        totals.files_reverted += field("files_reverted")?;
        totals.names_reverted += field("names_reverted")?;
        totals.inodes_removed += field("inodes_removed")?;
        Ok(report)
    }
}

impl Drop for LazyFs {
    fn drop(&mut self) {
        let _ = self.request("unmount");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // SAFETY: signalling our own child, which has not been reaped yet.
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let _ = self.child.wait();
    }
}

// ------------------------------------------------------------------------------------------
// The cycle loop.
// ------------------------------------------------------------------------------------------

/// What the run did, for the summary.
#[derive(Default)]
struct Stats {
    cycles: u32,
    acked: u64,
    in_flight_applied: u64,
    in_flight_absent: u64,
    entries_checked: u64,
    pending_checked: u64,
    groups_checked: u64,
    checkpoints_requested: u64,
    /// IDMP re-sends checked (each must answer its original ID).
    idmp_resent: u64,
    /// Cycles whose IDMP re-sends were skipped: restart and verify took so long (a starved
    /// machine) that the IIDs may have outlived IDMP-DURATION, when a new ID is right.
    idmp_skipped_cycles: u64,
    /// The slowest restart (`rill check` + start to PING) and verify, in milliseconds.
    max_restart_ms: u128,
    max_verify_ms: u128,
    /// With --powercut: what the cuts dropped.
    cuts: Option<CutTotals>,
    /// With --replicated: reads of the shared stream answered during the load and faults,
    /// and the distinct entries they showed, each checked to be in the final log.
    dirty_reads_answered: u64,
    dirty_reads_checked: u64,
    /// With --replicated: acknowledgements the old leader gave after it was cut off.
    acked_after_cut: u64,
}

impl Stats {
    fn count(&mut self, m: &StreamModel) {
        self.entries_checked += m.entries.len() as u64;
        self.groups_checked += m.groups.len() as u64;
        self.pending_checked += m.groups.values().map(|g| g.pel.len() as u64).sum::<u64>();
    }
}

/// Compares every worker's stream and the shared stream with the models after a restart,
/// resolving each in-flight op to applied or not applied. Returns the violations.
fn verify(
    port: u16,
    workers: &mut [Worker],
    in_flight: &mut [Option<Op>],
    stats: &mut Stats,
) -> Result<Vec<String>, String> {
    let mut conn = Conn::connect(port).map_err(|e| format!("cannot connect: {e}"))?;
    let mut violations = Vec::new();
    let shared = observe(&mut conn, SHARED_KEY)?;
    let shared_by_token: BTreeMap<Vec<u8>, (Id, &Fields)> = shared
        .entries
        .iter()
        .map(|(id, f)| (token_of(f), (*id, f)))
        .collect();
    for (w, op) in workers.iter_mut().zip(in_flight.iter_mut()) {
        let actual = observe(&mut conn, &w.key)?;
        let without = w.model.diff(&actual, &w.key);
        let Some(op) = op.take() else {
            if !without.is_empty() {
                violations.push(format!(
                    "worker {}: {} differs from the model:",
                    w.index, w.key
                ));
                violations.extend(without.iter().map(|d| format!("  {d}")));
            }
            stats.count(&w.model);
            continue;
        };
        // The op either applied entirely or not at all: its own-stream effects and its
        // shared-stream appends must agree on which.
        let shared_fields: Vec<&Fields> = op
            .cmds
            .iter()
            .filter_map(|c| match c {
                Cmd::XAdd {
                    fields,
                    shared: true,
                } => Some(fields),
                _ => None,
            })
            .collect();
        let present = shared_fields
            .iter()
            .filter(|f| shared_by_token.contains_key(&token_of(f)))
            .count();
        let with = with_op(w, &op, &actual).filter(|m| m.diff(&actual, &w.key).is_empty());
        let applied = match (&with, shared_fields.is_empty()) {
            (Some(_), true) => true,
            (_, true) => false,
            (_, false) => present > 0,
        };
        if applied && with.is_some() && present == shared_fields.len() {
            for f in &shared_fields {
                if let Some((id, af)) = shared_by_token.get(&token_of(f)) {
                    if af != f {
                        violations.push(format!(
                            "{SHARED_KEY}: in-flight entry {id} has fields {} expected {}",
                            show_fields(af),
                            show_fields(f)
                        ));
                    }
                    w.shared_acked.insert(*id, (*f).clone());
                    w.idmp_resend.push(((*f).clone(), *id));
                }
            }
            if let Some(m) = with {
                w.model = m;
            }
            stats.in_flight_applied += 1;
        } else if !applied && without.is_empty() && present == 0 {
            stats.in_flight_absent += 1;
        } else {
            violations.push(format!(
                "worker {}: the in-flight {} was neither fully applied nor absent ({} of its {} shared appends present; own stream {} the full op):",
                w.index,
                describe(&op, &w.key),
                present,
                shared_fields.len(),
                if with.is_some() { "matches" } else { "does not match" }
            ));
            violations.extend(without.iter().map(|d| format!("  vs. not applied: {d}")));
        }
        stats.count(&w.model);
    }
    // The shared stream: every acknowledged append present, nothing that was not sent.
    let mut expected: BTreeMap<Id, Fields> = BTreeMap::new();
    for w in workers.iter() {
        expected.extend(w.shared_acked.iter().map(|(i, f)| (*i, f.clone())));
    }
    for (id, f) in &expected {
        match shared.entries.get(id) {
            None => violations.push(format!(
                "{SHARED_KEY}: acknowledged entry {id} {} is missing",
                show_fields(f)
            )),
            Some(af) if af != f => violations.push(format!(
                "{SHARED_KEY}: entry {id} has fields {} expected {}",
                show_fields(af),
                show_fields(f)
            )),
            _ => {}
        }
    }
    for (id, f) in &shared.entries {
        if !expected.contains_key(id) {
            violations.push(format!(
                "{SHARED_KEY}: unexpected entry {id} {} (never acknowledged nor in flight)",
                show_fields(f)
            ));
        }
    }
    stats.entries_checked += shared.entries.len() as u64;
    for w in workers.iter_mut() {
        violations.extend(verify_retention(&mut conn, w)?);
    }
    Ok(violations)
}

/// The retention stream's dead letters after a restart: each entry moved at most once
/// (replay never moves again), never both moved and still pending (the `Append` and the
/// `Ack` are one record), only entries that were acknowledged appends (or the one in
/// flight), with their fields when the entry was still there; and the restarted server
/// goes on moving what is pending.
fn verify_dead_letters(conn: &mut Conn, w: &Worker, key: &str) -> Result<Vec<String>, String> {
    let mut violations = Vec::new();
    let dlq = format!("{key}:dlq");
    let moved = parse_entries(
        &call(conn, &argv(&[b"XRANGE", dlq.as_bytes(), b"-", b"+"]))?,
        "XRANGE dlq",
    )?;
    let known: BTreeMap<Id, &Fields> = w.retained.iter().map(|(id, f)| (*id, f)).collect();
    let mut sources = BTreeSet::new();
    for (dlq_id, fields) in &moved {
        let source = fields
            .iter()
            .find(|(k, _)| k == b"rill-dlq-source-id")
            .and_then(|(_, v)| Id::parse(v));
        let Some(source) = source else {
            violations.push(format!(
                "worker {}: {dlq} entry {dlq_id} has no source ID",
                w.index
            ));
            continue;
        };
        if !sources.insert(source) {
            violations.push(format!(
                "worker {}: {key} entry {source} was dead-lettered twice",
                w.index
            ));
        }
        let own: Fields = fields
            .iter()
            .take_while(|(k, _)| !k.starts_with(b"rill-dlq-"))
            .cloned()
            .collect();
        match known.get(&source) {
            Some(f) if own.is_empty() || own == **f => {}
            Some(f) => violations.push(format!(
                "worker {}: {dlq} entry {dlq_id} carries {} for {source}, appended as {}",
                w.index,
                show_fields(&own),
                show_fields(f)
            )),
            None => violations.push(format!(
                "worker {}: {dlq} entry {dlq_id} names {source}, never acknowledged nor in flight",
                w.index
            )),
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let reply = call(
            conn,
            &argv(&[b"XPENDING", key.as_bytes(), b"g", b"-", b"+", b"1000"]),
        )?;
        if let Resp::Error(e) = &reply {
            // The acknowledged XGROUP CREATE (or the whole stream) is gone: a lost write
            // (appendfsync everysec, the checker's self-test), not a checker failure.
            if e.starts_with("NOGROUP") {
                violations.push(format!(
                    "worker {}: {key} group g, created and acknowledged, is missing ({e})",
                    w.index
                ));
                break;
            }
        }
        let pending = parse_pending_ids(&reply)?;
        if let Some(both) = pending.iter().find(|id| sources.contains(id)) {
            violations.push(format!(
                "worker {}: {key} entry {both} is both dead-lettered and still pending",
                w.index
            ));
            break;
        }
        if pending.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            violations.push(format!(
                "worker {}: {key} still has {} pending entries 5 s after the restart (MAXDELIVER 1, ACKWAIT 20)",
                w.index,
                pending.len()
            ));
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(violations)
}

/// The IDs of an extended XPENDING reply.
fn parse_pending_ids(r: &Resp) -> Result<Vec<Id>, String> {
    as_array(r, "XPENDING")?
        .iter()
        .map(|row| {
            let row = as_array(row, "XPENDING row")?;
            row.first()
                .ok_or_else(|| "XPENDING: empty row".to_string())
                .and_then(|id| as_id(id, "XPENDING id"))
        })
        .collect()
}

/// A worker's retention stream after a restart: its entries are the newest of the
/// acknowledged appends (plus, at the end, the one in flight if it applied) — a suffix
/// without gaps, at least `RETAIN_MAXLEN` long when that many were added (the sweep trims
/// from the head only, and replay applies its logged trims, never more) — its policy
/// survived, and the restarted server's sweep trims it to the limit again.
fn verify_retention(conn: &mut Conn, w: &mut Worker) -> Result<Vec<String>, String> {
    let key = format!("{{{}:ret}}", w.key);
    let mut violations = Vec::new();
    let actual: Vec<(Id, Fields)> = parse_entries(
        &call(conn, &argv(&[b"XRANGE", key.as_bytes(), b"-", b"+"]))?,
        "XRANGE",
    )?
    .into_iter()
    .collect();
    let in_flight = w.retained_in_flight.take();
    let applied = match (&in_flight, actual.last()) {
        (Some(f), Some((id, af))) if af == f => {
            w.retained.push((*id, f.clone()));
            true
        }
        _ => false,
    };
    let expected = &w.retained;
    let kept = actual.len();
    let suffix = kept <= expected.len() && expected[expected.len() - kept..] == actual[..];
    if !suffix || kept < RETAIN_MAXLEN.min(expected.len()) {
        violations.push(format!(
            "worker {}: {key} holds {kept} entries (from {:?}), not the newest ≥ {} of the {} acknowledged{}",
            w.index,
            actual.first().map(|(id, _)| id.to_string()),
            RETAIN_MAXLEN.min(expected.len()),
            expected.len(),
            if applied { " + the in-flight one" } else { "" }
        ));
    }
    if !expected.is_empty() {
        let policy = call(conn, &argv(&[b"RILL.POLICY", b"GET", key.as_bytes()]))?;
        let kept_policy = match &policy {
            Resp::Array(Some(items)) => items.windows(2).any(|p| {
                p[0] == bulk(b"max-len".to_vec()) && p[1] == Resp::Int(RETAIN_MAXLEN as i64)
            }),
            _ => false,
        };
        if !kept_policy {
            violations.push(format!(
                "worker {}: {key}'s policy was lost: RILL.POLICY GET answered {policy}",
                w.index
            ));
        }
        violations.extend(verify_dead_letters(conn, w, &key)?);
        // The restarted server enforces it (its sweep runs every second).
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let len = as_int(&call(conn, &argv(&[b"XLEN", key.as_bytes()]))?, "XLEN")?;
            if len as usize <= RETAIN_MAXLEN {
                break;
            }
            if Instant::now() > deadline {
                violations.push(format!(
                    "worker {}: {key} still holds {len} entries 5 s after the restart (limit {RETAIN_MAXLEN})",
                    w.index
                ));
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Ok(violations)
}

/// IIDs re-sent per worker after a restart: well under IDMP-MAXSIZE (100), so none was
/// evicted by the worker's own later appends; all were added within the last cycle, which
/// must have begun less than [`IDMP_RESEND_MAX_AGE`] ago.
const IDMP_RESEND: usize = 50;

/// IDMP-DURATION (100 s) less a margin: IIDs older than that may have expired, and then a
/// re-send rightly gets a new ID. A cycle takes seconds, but on a starved machine a restart
/// and verify once took 108 s; its re-sends are skipped (and counted), not misreported.
const IDMP_RESEND_MAX_AGE: Duration = Duration::from_secs(90);

/// Re-sends each worker's latest shared-stream appends with the same IDMP producer and
/// IID: the restarted server must answer with the IDs they got before the crash.
/// `added_since`: when the load that added them began.
fn resend_idmp(
    port: u16,
    workers: &mut [Worker],
    added_since: Instant,
    stats: &mut Stats,
) -> Result<Vec<String>, String> {
    if added_since.elapsed() > IDMP_RESEND_MAX_AGE {
        for w in workers.iter_mut() {
            w.idmp_resend.clear();
        }
        stats.idmp_skipped_cycles += 1;
        return Ok(Vec::new());
    }
    let mut conn = Conn::connect(port).map_err(|e| format!("cannot connect: {e}"))?;
    let mut violations = Vec::new();
    for w in workers.iter_mut() {
        let sent = std::mem::take(&mut w.idmp_resend);
        for (fields, id) in sent.iter().rev().take(IDMP_RESEND) {
            stats.idmp_resent += 1;
            let cmd = Cmd::XAdd {
                fields: fields.clone(),
                shared: true,
            };
            let reply = call(&mut conn, &cmd.argv(&w.key, SHARED_KEY))?;
            if as_id(&reply, "XADD IDMP re-send").ok() != Some(*id) {
                violations.push(format!(
                    "worker {}: re-sent IDMP XADD {} answered {reply}, not its original ID {id}",
                    w.index,
                    String::from_utf8_lossy(&token_of(fields))
                ));
            }
        }
    }
    Ok(violations)
}

fn describe(op: &Op, key: &str) -> String {
    let cmds: Vec<String> = op
        .cmds
        .iter()
        .map(|c| String::from_utf8_lossy(&c.argv(key, SHARED_KEY).join(&b' ')).into_owned())
        .collect();
    if op.multi {
        format!("MULTI [{}] EXEC", cmds.join("; "))
    } else {
        cmds.join("")
    }
}

fn token_of(fields: &Fields) -> Vec<u8> {
    fields
        .iter()
        .find(|(k, _)| k == TOKEN)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

fn run(opts: &Opts) -> Result<Result<Stats, String>, String> {
    let seed = opts.seed.unwrap_or_else(rand::random);
    println!(
        "rill-crashtest: seed {seed}, {} cycles, {} workers",
        opts.cycles, opts.workers
    );
    let bin = match &opts.server {
        Some(b) => b.clone(),
        None => std::env::current_exe()
            .map_err(|e| format!("cannot find myself: {e}"))?
            .with_file_name("rill"),
    };
    let work = opts.dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("rill-crashtest-{}", std::process::id()))
    });
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| format!("cannot create {}: {e}", work.display()))?;
    let lazyfs = if opts.powercut {
        let lazy_bin = match &opts.lazyfs {
            Some(b) => b.clone(),
            None => bin.with_file_name("rill-lazyfs"),
        };
        let tear_seed = opts.tear.then_some(seed ^ 0x7EA2);
        let fs = LazyFs::mount(&lazy_bin, &work, tear_seed, opts.sync_delay_us)?;
        println!(
            "power cuts on rill-lazyfs at {}{}",
            fs.mnt.display(),
            if opts.tear {
                ", tearing unsynced writes"
            } else {
                ""
            }
        );
        Some(fs)
    } else {
        None
    };
    let data = match &lazyfs {
        Some(fs) => fs.mnt.join("data"),
        None => work.join("data"),
    };
    std::fs::create_dir_all(&data).map_err(|e| format!("cannot create {}: {e}", data.display()))?;
    if let Some(fs) = &lazyfs {
        // The data directory exists before the server does, made durable as an operator's
        // mkdir on a real disk would be by the time a server runs on it.
        std::fs::File::open(&fs.mnt)
            .and_then(|d| d.sync_all())
            .map_err(|e| format!("cannot fsync {}: {e}", fs.mnt.display()))?;
    }
    let result = if opts.replicated {
        replicated_cycles(opts, seed, &bin, &work)
    } else {
        cycles(opts, seed, &bin, &work, &data, lazyfs.as_ref())
    };
    if let (Ok(Err(_)), Some(_)) = (&result, &lazyfs) {
        // The lazy file system lives in memory: keep a copy of what the failing restart saw.
        let keep = work.join("data-after-cut");
        match copy_tree(&data, &keep) {
            Ok(()) => println!(
                "the data directory after the cut is copied to {}",
                keep.display()
            ),
            Err(e) => println!("could not copy the data directory out of the mount: {e}"),
        }
    }
    drop(lazyfs);
    if matches!(result, Ok(Ok(_))) && opts.dir.is_none() {
        let _ = std::fs::remove_dir_all(&work);
    }
    result
}

/// Copies a directory tree (the data directory, out of the lazy file system).
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// The load's workers, each with its own stream and a random source derived from `seed`.
fn new_workers(opts: &Opts, seed: u64) -> Vec<Worker> {
    (0..opts.workers.max(1))
        .map(|i| Worker {
            index: i,
            key: format!("{{crash}}:w{i}"),
            model: StreamModel::default(),
            rng: StdRng::seed_from_u64(seed.wrapping_add(1 + i as u64)),
            seq: 0,
            shared_acked: BTreeMap::new(),
            idmp_resend: Vec::new(),
            acked: 0,
            ended_by: None,
            ack_times: Vec::new(),
            retained: Vec::new(),
            retained_in_flight: None,
            retained_group: false,
        })
        .collect()
}

/// Waits for the load's workers: puts them back in `workers` (in index order) and returns
/// each one's op in flight at its end and the wrong replies any of them saw.
fn join_workers(
    handles: Vec<std::thread::JoinHandle<LoadEnd>>,
    workers: &mut Vec<Worker>,
) -> Result<(Vec<Option<Op>>, Vec<String>), String> {
    let mut in_flight = Vec::new();
    let mut violations = Vec::new();
    for h in handles {
        let end = h
            .join()
            .map_err(|_| "a worker thread panicked".to_string())?;
        if let Some(v) = end.violation {
            violations.push(v);
        }
        in_flight.push(end.in_flight);
        workers.push(end.worker);
    }
    workers.sort_by_key(|w| w.index);
    Ok((in_flight, violations))
}

/// The kill (or power-cut) / restart / verify cycles, then a clean shutdown and a last check.
fn cycles(
    opts: &Opts,
    seed: u64,
    bin: &Path,
    work: &Path,
    data: &Path,
    lazyfs: Option<&LazyFs>,
) -> Result<Result<Stats, String>, String> {
    let (bin, data) = (bin.to_path_buf(), data.to_path_buf());
    let mut cuts = CutTotals::default();
    let log = work.join("server.log");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut workers = new_workers(opts, seed);
    let mut stats = Stats::default();
    let mut server = start_server(&bin, &data, &log, &opts.appendfsync, opts.raft)?;
    let mut load_began = Instant::now();
    for cycle in 1..=opts.cycles {
        let port = server.port;
        load_began = Instant::now();
        let powered_off = Arc::new(AtomicBool::new(false));
        let handles: Vec<_> = workers
            .drain(..)
            .map(|w| {
                let off = powered_off.clone();
                std::thread::spawn(move || w.load(port, &off, &AtomicBool::new(false)))
            })
            .collect();
        let mut load_ms = rng.gen_range(20..=opts.max_load_ms.max(21));
        // Every other cycle a checkpoint is asked for mid-load, so that kills also land while
        // a checkpoint is written, renamed and the segments it supersedes are deleted.
        let checkpoint_after = rng
            .gen_bool(0.5)
            .then(|| Duration::from_millis(rng.gen_range(0..load_ms)));
        let checkpointer = checkpoint_after.map(|after| {
            let off = powered_off.clone();
            std::thread::spawn(move || {
                std::thread::sleep(after);
                let reply = Conn::connect(port).and_then(|mut c| c.call(&argv(&[b"BGREWRITEAOF"])));
                // Whether the power was already off when the answer came.
                (reply, off.load(Ordering::SeqCst))
            })
        });
        let mut load = Duration::from_millis(load_ms);
        if let (Some(after), Some(_)) = (checkpoint_after, lazyfs) {
            // Half of those power cuts come 0-20 ms after the checkpoint was asked for (one
            // takes about 10 ms on rill-lazyfs): inside its file's creation, fsync and rename
            // and the deletion of the segments it replaces, where directory entries (not file
            // data) decide what survives.
            if rng.gen_bool(0.5) {
                load = after + Duration::from_micros(rng.gen_range(0..=20_000));
                load_ms = u64::try_from(load.as_millis()).unwrap_or(u64::MAX);
            }
        }
        std::thread::sleep(load);
        let cut_report = match lazyfs {
            Some(fs) => {
                // The power goes while the server runs, in the middle of whatever it was
                // writing: from here on every write and fsync fails with EIO, and what was
                // written but not yet fsynced is lost. The server may notice (and must then
                // refuse, not acknowledge) for a random moment before the process dies too.
                powered_off.store(true, Ordering::SeqCst);
                fs.cut()?;
                std::thread::sleep(Duration::from_millis(rng.gen_range(0..=20)));
                server.kill()?;
                Some(fs.restore(&mut cuts)?)
            }
            None => {
                server.kill()?;
                None
            }
        };
        if let Some(h) = checkpointer {
            // Refused or cut off by the kill is fine; an error reply is not, unless the power
            // was already off (the checkpoint could not be written).
            if let Ok((Ok(Resp::Error(e)), false)) = h.join() {
                return Ok(Err(format!("cycle {cycle}: BGREWRITEAOF answered -{e}")));
            }
            stats.checkpoints_requested += 1;
        }
        let (mut in_flight, load_violations) = join_workers(handles, &mut workers)?;
        let acked: u64 = workers.iter().map(|w| w.acked).sum();
        if !load_violations.is_empty() {
            return Ok(Err(format!(
                "cycle {cycle}: wrong replies during the load:\n{}",
                load_violations.join("\n")
            )));
        }
        let restart_began = Instant::now();
        if let Err(e) = offline_check(&bin, &data) {
            return Ok(Err(format!("cycle {cycle}: {e}")));
        }
        if opts.sabotage_drop_records > 0 {
            drop_newest_records(&data, opts.sabotage_drop_records)?;
        }
        server = start_server(&bin, &data, &log, &opts.appendfsync, opts.raft)?;
        let restart_ms = restart_began.elapsed().as_millis();
        let verify_began = Instant::now();
        let sent_unanswered = in_flight.iter().filter(|o| o.is_some()).count();
        let mut violations = verify(server.port, &mut workers, &mut in_flight, &mut stats)?;
        if violations.is_empty() {
            violations = resend_idmp(server.port, &mut workers, load_began, &mut stats)?;
        }
        let verify_ms = verify_began.elapsed().as_millis();
        stats.max_restart_ms = stats.max_restart_ms.max(restart_ms);
        stats.max_verify_ms = stats.max_verify_ms.max(verify_ms);
        stats.cycles = cycle;
        stats.acked = acked;
        println!(
            "cycle {cycle}: {} after {load_ms} ms, {acked} commands acknowledged so far, {} in flight at the kill, restart {restart_ms} ms, verify {verify_ms} ms, {}{}",
            if cut_report.is_some() { "power cut" } else { "killed" },
            sent_unanswered,
            if violations.is_empty() { "state verified" } else { "VIOLATIONS" },
            cut_report.map(|r| format!(" (dropped: {r})")).unwrap_or_default()
        );
        if !violations.is_empty() {
            let _ = server.kill();
            return Ok(Err(format!(
                "cycle {cycle} (seed {seed}): after restart:\n{}",
                violations.join("\n")
            )));
        }
    }
    // Finally the clean path: SIGTERM, restart, everything still there.
    server.terminate()?;
    let server = start_server(&bin, &data, &log, &opts.appendfsync, opts.raft)?;
    let mut none: Vec<Option<Op>> = workers.iter().map(|_| None).collect();
    let mut violations = verify(server.port, &mut workers, &mut none, &mut stats)?;
    if violations.is_empty() {
        violations = resend_idmp(server.port, &mut workers, load_began, &mut stats)?;
    }
    let _ = server.terminate();
    if !violations.is_empty() {
        return Ok(Err(format!(
            "after a clean shutdown and restart (seed {seed}):\n{}",
            violations.join("\n")
        )));
    }
    if lazyfs.is_some() {
        stats.cuts = Some(cuts);
    }
    Ok(Ok(stats))
}

// ------------------------------------------------------------------------------------------
// A replicated shard (--replicated): three nodes, one Raft group.
// ------------------------------------------------------------------------------------------

/// What strikes the shard at the end of a cycle's load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Nemesis {
    /// SIGKILL the leader; restart it once another leads.
    KillLeader,
    /// SIGKILL one follower; restart it.
    KillFollower,
    /// SIGKILL every node (a power loss of the whole shard, disks intact); restart all.
    KillAll,
    /// SIGKILL one follower and lose its disk: `rill cluster del-node` takes it out of the
    /// group, and an empty node on its address (a new id) is added with `add-node` — under
    /// load, by the leader's snapshot.
    ReplaceFollower,
    /// SIGSTOP the leader past the election timeout, then SIGCONT: it comes back deposed,
    /// with writes in flight that it must never acknowledge.
    PauseLeader,
    /// Cut the leader off both followers, both directions: the followers elect a new
    /// leader, the old one (still taking the workers' writes) must acknowledge none of
    /// them; then heal.
    IsolateLeader(Cut),
    /// Cut one follower off both other nodes, both directions; the leader goes on with the
    /// other; then heal (the follower catches up).
    IsolateFollower(Cut),
    /// Cut only the leader's outbound links (leader → followers): the followers hear
    /// nothing and elect a new leader, whose messages still reach the old one.
    CutLeaderOut(Cut),
    /// Cut only the leader's inbound links (followers → leader): the leader hears no
    /// acknowledgement, steps down by check-quorum, and cannot learn of the new leader
    /// until the heal.
    CutLeaderIn(Cut),
    /// Delay every link by this many milliseconds (each chunk, both ways), then heal.
    Delay(u64),
}

/// How a partition cuts a link: `drop` resets connections (the sender sees errors at
/// once); `blackhole` keeps them open and swallows everything (seen only by timeouts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    Drop,
    Blackhole,
}

impl Cut {
    fn mode(self) -> &'static str {
        match self {
            Cut::Drop => "drop",
            Cut::Blackhole => "blackhole",
        }
    }
}

impl Nemesis {
    fn pick(rng: &mut StdRng, partitions: bool) -> Nemesis {
        let cut = if rng.gen_bool(0.5) {
            Cut::Drop
        } else {
            Cut::Blackhole
        };
        match rng.gen_range(0..if partitions { 19 } else { 11 }) {
            0..=3 => Nemesis::KillLeader,
            4..=5 => Nemesis::KillFollower,
            6 => Nemesis::KillAll,
            7..=9 => Nemesis::PauseLeader,
            10 => Nemesis::ReplaceFollower,
            11..=12 => Nemesis::IsolateLeader(cut),
            13..=14 => Nemesis::IsolateFollower(cut),
            15 => Nemesis::CutLeaderOut(cut),
            16 => Nemesis::CutLeaderIn(cut),
            _ => Nemesis::Delay(rng.gen_range(20..=400)),
        }
    }

    /// The directed links (from, to) the nemesis cuts, given the leader and a follower.
    fn links(self, leader: usize, follower: usize) -> Vec<(usize, usize)> {
        let others = |n: usize| (0..3).filter(move |&o| o != n);
        match self {
            Nemesis::IsolateLeader(_) => others(leader)
                .flat_map(|o| [(leader, o), (o, leader)])
                .collect(),
            Nemesis::IsolateFollower(_) => others(follower)
                .flat_map(|o| [(follower, o), (o, follower)])
                .collect(),
            Nemesis::CutLeaderOut(_) => others(leader).map(|o| (leader, o)).collect(),
            Nemesis::CutLeaderIn(_) => others(leader).map(|o| (o, leader)).collect(),
            Nemesis::Delay(_) => (0..3)
                .flat_map(|a| others(a).map(move |b| (a, b)))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Whether the followers must elect one of themselves while the fault lasts.
    fn deposes_leader(self) -> bool {
        matches!(
            self,
            Nemesis::IsolateLeader(_) | Nemesis::CutLeaderOut(_) | Nemesis::CutLeaderIn(_)
        )
    }

    /// The nemesis's kind, without its parameters (for the counts).
    fn kind(self) -> String {
        match self {
            Nemesis::Delay(_) => "links delayed".into(),
            other => other.to_string(),
        }
    }
}

impl fmt::Display for Nemesis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Nemesis::KillLeader => f.write_str("leader killed"),
            Nemesis::KillFollower => f.write_str("follower killed"),
            Nemesis::KillAll => f.write_str("all nodes killed"),
            Nemesis::ReplaceFollower => f.write_str("follower replaced (disk lost)"),
            Nemesis::PauseLeader => f.write_str("leader paused"),
            Nemesis::IsolateLeader(c) => write!(f, "leader isolated ({})", c.mode()),
            Nemesis::IsolateFollower(c) => write!(f, "follower isolated ({})", c.mode()),
            Nemesis::CutLeaderOut(c) => write!(f, "leader->followers cut ({})", c.mode()),
            Nemesis::CutLeaderIn(c) => write!(f, "followers->leader cut ({})", c.mode()),
            Nemesis::Delay(ms) => write!(f, "links delayed {ms} ms"),
        }
    }
}

/// The `rill-faultproxy` every Raft link of the shard runs through: link `n<a>to<b>` carries
/// node a's connection to node b (a Raft link is one TCP connection per direction: a dials
/// b for its messages to b, and b answers on its own connection to a), so cutting it is an
/// exact one-way partition.
struct Proxy {
    child: Child,
    control: Conn,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proxy {
    /// The link carrying node `from`'s messages to node `to`.
    fn link(from: usize, to: usize) -> String {
        format!("n{from}to{to}")
    }

    /// Starts the proxy with a listener per directed link, each forwarding to its target's
    /// cluster bus port; returns it with the listeners' ports, `ports[a][b]` for a → b.
    /// `free` gives the listeners' ports (`n * n - n + 1` of them: the control port and
    /// one per link), chosen with the nodes' so none collides with a node's bus port.
    fn start(
        bin: &Path,
        nodes: &[u16],
        free: Vec<u16>,
        log: &Path,
    ) -> Result<(Proxy, Vec<Vec<u16>>), String> {
        let n = nodes.len();
        let mut free = free.into_iter();
        let mut next = || free.next().ok_or("cannot find free ports for the proxy");
        let control = next()?;
        let mut ports = vec![vec![0u16; n]; n];
        let mut cmd = Command::new(bin);
        cmd.arg("--control").arg(format!("127.0.0.1:{control}"));
        for (a, row) in ports.iter_mut().enumerate() {
            for (b, port) in row.iter_mut().enumerate() {
                if a == b {
                    continue;
                }
                *port = next()?;
                cmd.arg("--link").arg(format!(
                    "{}=127.0.0.1:{}=127.0.0.1:{}",
                    Proxy::link(a, b),
                    *port,
                    nodes[b] + 10000
                ));
            }
        }
        let logfile = std::fs::File::create(log)
            .map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(logfile)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut first = String::new();
        let _ = BufReader::new(stdout).read_line(&mut first);
        if !first.starts_with("ready") {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "rill-faultproxy did not start (printed {first:?}, see {})",
                log.display()
            ));
        }
        let control = match Conn::connect(control) {
            Ok(c) => c,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("cannot reach the proxy's control port: {e}"));
            }
        };
        Ok((Proxy { child, control }, ports))
    }

    /// Sets a link's mode (`pass`, `drop`, `blackhole`, `delay <ms>`).
    fn set(&mut self, link: &str, mode: &str) -> Result<(), String> {
        self.control
            .writer
            .write_all(format!("SET {link} {mode}\n").as_bytes())
            .map_err(|e| format!("proxy control: {e}"))?;
        let answer = self
            .control
            .line_lf()
            .map_err(|e| format!("proxy control: {e}"))?;
        if answer != "OK" {
            return Err(format!("proxy control: SET {link} {mode}: {answer}"));
        }
        Ok(())
    }

    /// Every link back to pass.
    fn heal(&mut self, n: usize) -> Result<(), String> {
        for a in 0..n {
            for b in 0..n {
                if a != b {
                    self.set(&Proxy::link(a, b), "pass")?;
                }
            }
        }
        Ok(())
    }
}

/// The node id of the node on `port` (CLUSTER MYID).
fn node_id(port: u16) -> Result<String, String> {
    let mut c = Conn::connect(port).map_err(|e| format!("cannot reach port {port}: {e}"))?;
    match c.call(&argv(&[b"CLUSTER", b"MYID"])) {
        Ok(Resp::Bulk(Some(id))) => Ok(String::from_utf8_lossy(&id).into_owned()),
        other => Err(format!("CLUSTER MYID on port {port} answered {other:?}")),
    }
}

/// One replica: where it listens and keeps its data, and its process while it runs.
struct Replica {
    port: u16,
    dir: PathBuf,
    log: PathBuf,
    /// `--cluster-peer-route` arguments: each peer's bus address routed via its proxy link.
    routes: Vec<String>,
    server: Option<Server>,
}

impl Drop for Replica {
    /// A replica never outlives the test, whichever way it ends (a stopped one included).
    fn drop(&mut self) {
        self.signal(libc::SIGCONT);
        let _ = self.kill();
    }
}

impl Replica {
    fn start(&mut self, bin: &Path, appendfsync: &str) -> Result<(), StartError> {
        if self.server.is_none() {
            let s = start_node(
                bin,
                &self.dir,
                &self.log,
                appendfsync,
                true,
                Some(self.port),
                &self.routes,
            )?;
            self.server = Some(s);
        }
        Ok(())
    }

    fn kill(&mut self) -> Result<(), String> {
        match self.server.take() {
            Some(s) => s.kill(),
            None => Ok(()),
        }
    }

    fn signal(&self, sig: libc::c_int) {
        if let Some(s) = &self.server {
            if let Ok(pid) = libc::pid_t::try_from(s.child.id()) {
                // SAFETY: signalling our own child, which has not been reaped yet.
                unsafe { libc::kill(pid, sig) };
            }
        }
    }
}

/// `n` ports on 127.0.0.1 that are free, with their cluster bus ports (+10000) free too.
fn free_ports(n: usize) -> Result<Vec<u16>, String> {
    let mut held = Vec::new();
    let mut ports = Vec::new();
    for _ in 0..200 {
        if ports.len() == n {
            break;
        }
        let l = std::net::TcpListener::bind(("127.0.0.1", 0))
            .map_err(|e| format!("cannot find a free port: {e}"))?;
        let port = l.local_addr().map_err(|e| e.to_string())?.port();
        if port > 55535 {
            continue;
        }
        if let Ok(bus) = std::net::TcpListener::bind(("127.0.0.1", port + 10000)) {
            held.push(bus);
            held.push(l);
            ports.push(port);
        }
    }
    if ports.len() < n {
        return Err("cannot find free ports for the replicas".into());
    }
    Ok(ports)
}

/// What the node on `port` says of its group: whether it leads and takes writes, the raft
/// id of the leader it knows of, and its own raft id (`None`: no answer).
fn raft_view(port: u16) -> Option<(bool, String, String)> {
    let mut c = Conn::connect(port).ok()?;
    c.writer
        .set_read_timeout(Some(Duration::from_secs(2)))
        .ok()?;
    let Resp::Bulk(Some(info)) = c.call(&argv(&[b"INFO", b"persistence"])).ok()? else {
        return None;
    };
    let info = String::from_utf8_lossy(&info).into_owned();
    let Resp::Bulk(Some(id)) = c.call(&argv(&[b"CLUSTER", b"MYID"])).ok()? else {
        return None;
    };
    let leader_id = info
        .lines()
        .find_map(|l| l.strip_prefix("raft_leader_id:"))?
        .trim()
        .to_string();
    Some((
        info.contains("raft_role:leader"),
        leader_id,
        String::from_utf8_lossy(id.get(..16)?).into_owned(),
    ))
}

/// The index of the replica that leads — says so, and a majority of the replicas name
/// it (a leader just back from a pause may still believe it leads) — waiting up to
/// `within` for an election.
fn find_leader(replicas: &[Replica], within: Duration) -> Result<usize, String> {
    find_leader_but(replicas, None, within)
        .map_err(|()| format!("no replica became leader within {within:?}"))
}

/// The index of a leader other than `old` — says so, and a majority names it — waiting up
/// to `within` (while a partition holds: the followers must elect one of themselves).
fn find_new_leader(replicas: &[Replica], old: usize, within: Duration) -> Result<usize, String> {
    find_leader_but(replicas, Some(old), within)
        .map_err(|()| format!("no follower became leader within {within:?} of the partition"))
}

/// A replica (not `but`) that says it leads and that a majority names, within `within`.
fn find_leader_but(
    replicas: &[Replica],
    but: Option<usize>,
    within: Duration,
) -> Result<usize, ()> {
    let deadline = Instant::now() + within;
    loop {
        let views: Vec<Option<(bool, String, String)>> = replicas
            .iter()
            .map(|r| r.server.as_ref().and_then(|_| raft_view(r.port)))
            .collect();
        for (i, v) in views.iter().enumerate() {
            if Some(i) == but {
                continue;
            }
            if let Some((true, _, me)) = v {
                let named = views
                    .iter()
                    .flatten()
                    .filter(|(_, leader, _)| leader == me)
                    .count();
                if named * 2 > replicas.len() {
                    return Ok(i);
                }
            }
        }
        if Instant::now() > deadline {
            return Err(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until every running replica serves the leader's streams (after READONLY): the
/// replicas' committed state converges. Returns the differences if it does not.
fn converge(
    replicas: &[Replica],
    leader: usize,
    keys: &[String],
    within: Duration,
) -> Result<Vec<String>, String> {
    let mut lc =
        Conn::connect(replicas[leader].port).map_err(|e| format!("cannot connect: {e}"))?;
    let mut expected = Vec::new();
    for k in keys {
        expected.push(observe(&mut lc, k)?);
    }
    let deadline = Instant::now() + within;
    for (i, r) in replicas.iter().enumerate() {
        if i == leader || r.server.is_none() {
            continue;
        }
        loop {
            // A replica may be restarting (a deposed leader rebuilds itself in place):
            // not answering is not diverging, until the deadline.
            let diffs: Vec<String> = match replica_diffs(r.port, keys, &expected) {
                Ok(d) => d.into_iter().map(|d| format!("replica {i}: {d}")).collect(),
                Err(e) => vec![format!("replica {i}: {e}")],
            };
            if diffs.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                return Ok(diffs);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Ok(Vec::new())
}

/// How the replica on `port` (read after READONLY) differs from `expected`, key by key.
fn replica_diffs(
    port: u16,
    keys: &[String],
    expected: &[StreamModel],
) -> Result<Vec<String>, String> {
    let mut c = Conn::connect(port).map_err(|e| format!("cannot connect: {e}"))?;
    call(&mut c, &argv(&[b"READONLY"]))?;
    let mut diffs = Vec::new();
    for (k, want) in keys.iter().zip(expected) {
        let got = observe(&mut c, k)?;
        diffs.extend(want.diff(&got, k));
    }
    Ok(diffs)
}

/// A reader of the shared stream's newest entries on one node (after READONLY on a
/// follower) for as long as the load runs, through whatever fault strikes: everything it is
/// ever shown must be in the final log (no read of a write that was never committed, e.g.
/// from a leader cut off from its majority). The shared stream is append-only, so nothing
/// it saw may be missing later. Reconnects after errors; returns what it saw and how many
/// reads were answered.
fn dirty_reader(port: u16, readonly: bool, stop: &AtomicBool) -> (BTreeMap<Id, Fields>, u64) {
    let mut seen = BTreeMap::new();
    let mut answered = 0;
    while !stop.load(Ordering::SeqCst) {
        let Ok(mut c) = Conn::connect(port) else {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        if readonly && c.call(&argv(&[b"READONLY"])).is_err() {
            continue;
        }
        while !stop.load(Ordering::SeqCst) {
            let reply = c.call(&argv(&[
                b"XREVRANGE",
                SHARED_KEY.as_bytes(),
                b"+",
                b"-",
                b"COUNT",
                b"5",
            ]));
            match reply {
                Ok(r @ Resp::Array(_)) => {
                    if let Ok(entries) = parse_entries(&r, "XREVRANGE") {
                        answered += 1;
                        seen.extend(entries);
                    }
                }
                // An error reply (-MOVED, -CLUSTERDOWN …) shows nothing.
                Ok(_) => std::thread::sleep(Duration::from_millis(20)),
                Err(_) => break,
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    (seen, answered)
}

/// `--replicated`: the cycles of [`cycles`] against a shard of three replicas.
fn replicated_cycles(
    opts: &Opts,
    seed: u64,
    bin: &Path,
    work: &Path,
) -> Result<Result<Stats, String>, String> {
    let mut rng = StdRng::seed_from_u64(seed);
    // The nodes' ports and the proxy's, chosen together so that none is another's bus port.
    let mut ports = free_ports(3 + 3 * 2 + 1)?;
    let proxy_ports = ports.split_off(3);
    let proxy_bin = match &opts.faultproxy {
        Some(b) => b.clone(),
        None => std::env::current_exe()
            .map_err(|e| format!("cannot find myself: {e}"))?
            .with_file_name("rill-faultproxy"),
    };
    let (mut proxy, via) = Proxy::start(&proxy_bin, &ports, proxy_ports, &work.join("proxy.log"))?;
    let partitions = !opts.no_partitions;
    let mut replicas: Vec<Replica> = ports
        .iter()
        .enumerate()
        .map(|(i, &port)| Replica {
            port,
            dir: work.join(format!("node{i}")),
            log: work.join(format!("node{i}.log")),
            // Every Raft link through its own proxy listener: node i dials peer j's bus
            // port via via[i][j].
            routes: ports
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .flat_map(|(j, &peer)| {
                    [
                        "--cluster-peer-route".to_string(),
                        format!("127.0.0.1:{}", peer + 10000),
                        format!("127.0.0.1:{}", via[i][j]),
                    ]
                })
                .collect(),
            server: None,
        })
        .collect();
    for r in &mut replicas {
        std::fs::create_dir_all(&r.dir)
            .map_err(|e| format!("cannot create {}: {e}", r.dir.display()))?;
        r.start(bin, &opts.appendfsync)?;
    }
    let addrs: Vec<String> = replicas
        .iter()
        .map(|r| format!("127.0.0.1:{}", r.port))
        .collect();
    let out = Command::new(bin)
        .args(["cluster", "create", "--replicas", "2"])
        .args(&addrs)
        .output()
        .map_err(|e| format!("cannot run rill cluster create: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "rill cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let mut workers = new_workers(opts, seed);
    let mut keys: Vec<String> = workers.iter().map(|w| w.key.clone()).collect();
    keys.push(SHARED_KEY.to_string());
    let mut stats = Stats::default();
    let mut failovers = Vec::new();
    // Partition → a follower leads (while the partition holds), in ms.
    let mut partition_failovers = Vec::new();
    let mut struck_by: BTreeMap<String, u32> = BTreeMap::new();
    let mut load_began;
    for cycle in 1..=opts.cycles {
        let leader = find_leader(&replicas, Duration::from_secs(30))?;
        let port = replicas[leader].port;
        load_began = Instant::now();
        // Any error reply ends a worker's load with its op in flight (applied or not): a
        // leader that steps down fails what it held, its outcome unknown.
        let disrupted = Arc::new(AtomicBool::new(true));
        let stop = Arc::new(AtomicBool::new(false));
        let handles: Vec<_> = workers
            .drain(..)
            .map(|w| {
                let (off, stop) = (disrupted.clone(), stop.clone());
                std::thread::spawn(move || w.load(port, &off, &stop))
            })
            .collect();
        // Readers on the leader and on a follower, through the fault (dirty-read check).
        let reader_stop = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = [(port, false), (replicas[(leader + 1) % 3].port, true)]
            .into_iter()
            .map(|(p, readonly)| {
                let stop = reader_stop.clone();
                std::thread::spawn(move || dirty_reader(p, readonly, &stop))
            })
            .collect();
        let load_ms = rng.gen_range(20..=opts.max_load_ms.max(21));
        // Every other cycle each node is asked for a checkpoint mid-load: a Raft checkpoint
        // purges the log below the group's purge floor and deletes segments, so strikes
        // also land while one is written and the log purged. (Not joined: an answer from
        // a node struck meanwhile may never come; refusals are fine.)
        if rng.gen_bool(0.5) {
            for r in &replicas {
                let (p, after) = (r.port, rng.gen_range(0..load_ms));
                stats.checkpoints_requested += 1;
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(after));
                    let _ = Conn::connect(p).and_then(|mut c| c.call(&argv(&[b"BGREWRITEAOF"])));
                });
            }
        }
        std::thread::sleep(Duration::from_millis(load_ms));
        let nemesis = if opts.sabotage_drop_records > 0 {
            Nemesis::KillAll
        } else if opts.replace_every > 0 && cycle % opts.replace_every == 0 {
            Nemesis::ReplaceFollower
        } else {
            Nemesis::pick(&mut rng, partitions)
        };
        *struck_by.entry(nemesis.kind()).or_default() += 1;
        let struck = Instant::now();
        let follower = (leader + rng.gen_range(1..3)) % 3;
        let mut killed = Vec::new();
        match nemesis {
            Nemesis::KillLeader => {
                replicas[leader].kill()?;
                killed.push(leader);
            }
            Nemesis::KillFollower => {
                replicas[follower].kill()?;
                killed.push(follower);
                // The leader goes on: let the load run on a little, then stop it.
                std::thread::sleep(Duration::from_millis(rng.gen_range(0..300)));
                stop.store(true, Ordering::SeqCst);
            }
            Nemesis::KillAll => {
                for (i, r) in replicas.iter_mut().enumerate() {
                    r.kill()?;
                    killed.push(i);
                }
            }
            Nemesis::ReplaceFollower => {
                let at = |r: &Replica| format!("127.0.0.1:{}", r.port);
                let old_id = node_id(replicas[follower].port)?;
                replicas[follower].kill()?;
                // Its disk is gone: the node comes back empty, under a new id, after the
                // old one is taken out of the group (the SHUTDOWN del-node sends it finds
                // no one there).
                let dir = replicas[follower].dir.clone();
                std::fs::remove_dir_all(&dir)
                    .and_then(|()| std::fs::create_dir_all(&dir))
                    .map_err(|e| format!("cannot empty {}: {e}", dir.display()))?;
                let cli = |args: &[&str]| -> Result<(), String> {
                    let out = Command::new(bin)
                        .args(args)
                        .output()
                        .map_err(|e| format!("cannot run rill {}: {e}", args.join(" ")))?;
                    if out.status.success() {
                        Ok(())
                    } else {
                        Err(format!(
                            "cycle {cycle}: rill {} failed: {}{}",
                            args.join(" "),
                            String::from_utf8_lossy(&out.stdout),
                            String::from_utf8_lossy(&out.stderr)
                        ))
                    }
                };
                let leader_at = at(&replicas[leader]);
                cli(&["cluster", "del-node", &leader_at, &old_id])?;
                replicas[follower].start(bin, &opts.appendfsync)?;
                cli(&[
                    "cluster",
                    "add-node",
                    &at(&replicas[follower]),
                    &leader_at,
                    "--timeout",
                    "120",
                ])?;
                stop.store(true, Ordering::SeqCst);
            }
            Nemesis::PauseLeader => {
                replicas[leader].signal(libc::SIGSTOP);
                std::thread::sleep(Duration::from_millis(rng.gen_range(1500..3000)));
                replicas[leader].signal(libc::SIGCONT);
                stop.store(true, Ordering::SeqCst);
            }
            Nemesis::IsolateLeader(cut)
            | Nemesis::IsolateFollower(cut)
            | Nemesis::CutLeaderOut(cut)
            | Nemesis::CutLeaderIn(cut) => {
                for (a, b) in nemesis.links(leader, follower) {
                    proxy.set(&Proxy::link(a, b), cut.mode())?;
                }
                // The workers go on writing to the old leader all along: with the leader
                // cut off, none of what they send may be acknowledged unless committed.
                if nemesis.deposes_leader() {
                    match find_new_leader(&replicas, leader, Duration::from_secs(30)) {
                        Ok(_) => partition_failovers.push(struck.elapsed().as_millis()),
                        Err(e) => {
                            stop.store(true, Ordering::SeqCst);
                            return Ok(Err(format!(
                                "cycle {cycle} (seed {seed}, {nemesis}): {e} (stuck election; logs in {})",
                                work.display()
                            )));
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(rng.gen_range(500..2500)));
                proxy.heal(replicas.len())?;
                std::thread::sleep(Duration::from_millis(rng.gen_range(0..300)));
                stop.store(true, Ordering::SeqCst);
            }
            Nemesis::Delay(ms) => {
                for (a, b) in nemesis.links(leader, follower) {
                    proxy.set(&Proxy::link(a, b), &format!("delay {ms}"))?;
                }
                std::thread::sleep(Duration::from_millis(rng.gen_range(1000..3000)));
                proxy.heal(replicas.len())?;
                stop.store(true, Ordering::SeqCst);
            }
        }
        let (mut in_flight, load_violations) = join_workers(handles, &mut workers)?;
        if nemesis.deposes_leader() {
            // Acknowledged by the old leader after it was cut off (replies to entries the
            // followers had already taken, or none): each is checked like any other below.
            stats.acked_after_cut += workers
                .iter()
                .map(|w| w.ack_times.iter().filter(|t| **t > struck).count() as u64)
                .sum::<u64>();
        }
        reader_stop.store(true, Ordering::SeqCst);
        let mut read_seen: BTreeMap<Id, Fields> = BTreeMap::new();
        for r in readers {
            let (seen, answered) = r.join().map_err(|_| "a reader thread panicked")?;
            read_seen.extend(seen);
            stats.dirty_reads_answered += answered;
        }
        let acked: u64 = workers.iter().map(|w| w.acked).sum();
        if !load_violations.is_empty() {
            return Ok(Err(format!(
                "cycle {cycle}: wrong replies during the load:\n{}",
                load_violations.join("\n")
            )));
        }
        // A leader among the survivors first (that is the failover), then the rest back.
        let survivors_lead = if nemesis == Nemesis::KillLeader {
            let l = find_leader(&replicas, Duration::from_secs(30))?;
            failovers.push(struck.elapsed().as_millis());
            Some(l)
        } else {
            None
        };
        for &i in &killed {
            if let Err(e) = offline_check(bin, &replicas[i].dir) {
                return Ok(Err(format!("cycle {cycle}: replica {i}: {e}")));
            }
            if opts.sabotage_drop_records > 0 {
                drop_newest_records(&replicas[i].dir, opts.sabotage_drop_records)?;
            }
            // A replica that refuses what its disk kept after the kill (a log that lost
            // records it had acknowledged to the group) is a lost write, not a test error.
            match replicas[i].start(bin, &opts.appendfsync) {
                Ok(()) => {}
                Err(StartError::Exited(why)) => {
                    return Ok(Err(format!(
                        "cycle {cycle}: replica {i} did not come back: {why}"
                    )))
                }
                Err(e) => return Err(e.into()),
            }
        }
        let leader = find_leader(&replicas, Duration::from_secs(30))?;
        let sent_unanswered = in_flight.iter().filter(|o| o.is_some()).count();
        // Why each worker's load ended with an op in flight (an error reply, or the
        // connection's error), e.g. "-MOVED x2, ConnectionReset x1".
        let mut ends: BTreeMap<String, u32> = BTreeMap::new();
        for w in &workers {
            if let Some(e) = &w.ended_by {
                // "EXEC answered -CLUSTERDOWN the Raft group …" → "EXEC -CLUSTERDOWN".
                let short = match e.split_once(" -") {
                    Some((what, err)) => format!(
                        "{} -{}",
                        what.split_whitespace().next().unwrap_or_default(),
                        err.split_whitespace().next().unwrap_or_default()
                    ),
                    None => e.clone(),
                };
                *ends.entry(short).or_default() += 1;
            }
        }
        let ended_by = ends
            .iter()
            .map(|(e, n)| format!("{e} x{n}"))
            .collect::<Vec<_>>()
            .join(", ");
        let verify_began = Instant::now();
        let mut violations = verify(
            replicas[leader].port,
            &mut workers,
            &mut in_flight,
            &mut stats,
        )?;
        if violations.is_empty() {
            violations = resend_idmp(replicas[leader].port, &mut workers, load_began, &mut stats)?;
        }
        if violations.is_empty() {
            violations = converge(&replicas, leader, &keys, Duration::from_secs(20))?;
        }
        if violations.is_empty() {
            // No dirty reads: what the readers saw is in the final log, as they saw it.
            let mut lc =
                Conn::connect(replicas[leader].port).map_err(|e| format!("cannot connect: {e}"))?;
            let final_shared = observe(&mut lc, SHARED_KEY)?;
            for (id, f) in &read_seen {
                match final_shared.entries.get(id) {
                    Some(ff) if ff == f => {}
                    Some(ff) => violations.push(format!(
                        "a reader saw {SHARED_KEY} {id} as {} but the final log holds {}",
                        show_fields(f),
                        show_fields(ff)
                    )),
                    None => violations.push(format!(
                        "dirty read: a reader saw {SHARED_KEY} {id} ({}) which is not in the final log",
                        show_fields(f)
                    )),
                }
            }
            stats.dirty_reads_checked += read_seen.len() as u64;
        }
        stats.max_verify_ms = stats.max_verify_ms.max(verify_began.elapsed().as_millis());
        stats.cycles = cycle;
        stats.acked = acked;
        println!(
            "cycle {cycle}: {nemesis} after {load_ms} ms (leader was {leader_before}, now {leader}{}), {acked} commands acknowledged so far, {sent_unanswered} in flight{}, {}",
            survivors_lead
                .map(|l| format!(", replica {l} led {} ms after the kill", failovers.last().copied().unwrap_or(0)))
                .unwrap_or_default(),
            if ended_by.is_empty() { String::new() } else { format!(" ({ended_by})") },
            if violations.is_empty() { "state verified, replicas converged" } else { "VIOLATIONS" },
            leader_before = replicas.iter().position(|r| r.port == port).unwrap_or(0),
        );
        if !violations.is_empty() {
            for r in &mut replicas {
                let _ = r.kill();
            }
            return Ok(Err(format!(
                "cycle {cycle} (seed {seed}, {nemesis}):\n{}",
                violations.join("\n")
            )));
        }
    }
    println!(
        "nemeses: {}; violations: 0",
        struck_by
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if !partition_failovers.is_empty() {
        partition_failovers.sort_unstable();
        println!(
            "failover under partition (leader cut off to a follower answering INFO as leader, named by a majority): {} times, median {} ms, max {} ms",
            partition_failovers.len(),
            partition_failovers[partition_failovers.len() / 2],
            partition_failovers[partition_failovers.len() - 1]
        );
    }
    if !failovers.is_empty() {
        failovers.sort_unstable();
        println!(
            "failover (leader SIGKILL to a new leader answering INFO as leader): {} times, median {} ms, max {} ms",
            failovers.len(),
            failovers[failovers.len() / 2],
            failovers[failovers.len() - 1]
        );
    }
    // Finally the clean path: SIGTERM every node, start them again, everything still there.
    for r in &mut replicas {
        if let Some(s) = r.server.take() {
            s.terminate()?;
        }
    }
    for r in &mut replicas {
        r.start(bin, &opts.appendfsync)?;
    }
    let leader = find_leader(&replicas, Duration::from_secs(30))?;
    let mut none: Vec<Option<Op>> = workers.iter().map(|_| None).collect();
    let mut violations = verify(replicas[leader].port, &mut workers, &mut none, &mut stats)?;
    if violations.is_empty() {
        violations = converge(&replicas, leader, &keys, Duration::from_secs(20))?;
    }
    for r in &mut replicas {
        if let Some(s) = r.server.take() {
            let _ = s.terminate();
        }
    }
    if !violations.is_empty() {
        return Ok(Err(format!(
            "after a clean shutdown and restart of every replica (seed {seed}):\n{}",
            violations.join("\n")
        )));
    }
    Ok(Ok(stats))
}

fn main() -> ExitCode {
    let opts = Opts::parse();
    match run(&opts) {
        Ok(Ok(s)) => {
            println!(
                "PASS: {} cycles, {} commands acknowledged, in-flight commands at kills: {} applied / {} not applied; \
                 {} checkpoints requested mid-load; checked {} entries, {} groups, {} pending entries (cumulative over restarts)",
                s.cycles,
                s.acked,
                s.in_flight_applied,
                s.in_flight_absent,
                s.checkpoints_requested,
                s.entries_checked,
                s.groups_checked,
                s.pending_checked
            );
            println!(
                "IDMP: {} re-sends answered their original IDs ({} cycles skipped: restart and verify \
                 outlasted IDMP-DURATION); slowest restart {} ms, slowest verify {} ms",
                s.idmp_resent, s.idmp_skipped_cycles, s.max_restart_ms, s.max_verify_ms
            );
            if s.dirty_reads_answered > 0 {
                println!(
                    "acknowledgements from a leader after its cut was ordered: {} (each verified present)",
                    s.acked_after_cut
                );
                println!(
                    "reads during the faults (leader and a follower): {} answered, {} distinct entries seen, every one in the final log",
                    s.dirty_reads_answered, s.dirty_reads_checked
                );
            }
            if let Some(c) = &s.cuts {
                println!(
                    "power cuts: {} cuts dropped {} unsynced bytes in {} file versions, kept {} torn bytes, \
                     reverted {} directory entries, removed {} unsynced files; 0 acknowledged writes lost",
                    s.cycles,
                    c.bytes_dropped,
                    c.files_reverted,
                    c.bytes_torn_kept,
                    c.names_reverted,
                    c.inodes_removed
                );
            }
            ExitCode::SUCCESS
        }
        Ok(Err(violation)) => {
            println!("FAIL: {violation}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("rill-crashtest: {e}");
            ExitCode::from(2)
        }
    }
}
