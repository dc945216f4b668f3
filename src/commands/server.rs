//! Server commands: INFO, CONFIG, COMMAND, TIME, SHUTDOWN and FUNCTION (DEBUG is in `debug.rs`).

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::args::Args;
use super::connection::{help_reply, REDIS_VERSION};
use super::error::CommandError;
use super::keyspec;
use super::session::Session;
use super::table::docs::{self, Arg, BeginSearch, FindKeys, KeySpec};
use super::table::{self, CommandSpec, Handler};
use super::{Ctx, Outcome};
use crate::core::acl::DenyReason;
use crate::core::Shared;
use crate::protocol::Reply;

type R = Result<Outcome, CommandError>;

const INFO_DEFAULT: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "modules",
    "errorstats",
    "cluster",
    "policies",
    "keyspace",
];
const INFO_ALL_EXTRA: &[&str] = &["commandstats", "latencystats"];

/// INFO
///
/// # Format
/// `INFO [section [section ...]]`
///
/// # Returns
/// A bulk string (verbatim in RESP3) of `# Section` headers and `field:value` lines.
pub fn info(ctx: &mut Ctx<'_>, a: &mut Args) -> R {
    let mut wanted: Vec<String> = a
        .rest()
        .iter()
        .map(|s| String::from_utf8_lossy(s).to_ascii_lowercase())
        .collect();
    if wanted.is_empty() || wanted.iter().any(|w| w == "default") {
        wanted.extend(INFO_DEFAULT.iter().map(|s| s.to_string()));
    }
    if wanted.iter().any(|w| w == "all" || w == "everything") {
        wanted.extend(
            INFO_DEFAULT
                .iter()
                .chain(INFO_ALL_EXTRA)
                .map(|s| s.to_string()),
        );
    }
    let mut out = String::new();
    let order = INFO_DEFAULT.iter().chain(INFO_ALL_EXTRA);
    for section in order {
        if !wanted.iter().any(|w| w == section) {
            continue;
        }
        if !out.is_empty() {
            out.push_str("\r\n");
        }
        info_section(ctx, section, &mut out);
    }
    Ok(Reply::Verbatim(Bytes::from(out)).into())
}

fn info_section(ctx: &mut Ctx<'_>, section: &str, out: &mut String) {
    let sh = ctx.shared;
    let cfg = sh.config.read();
    let mut title = section.to_string();
    if let Some(f) = title.get_mut(0..1) {
        f.make_ascii_uppercase();
    }
    let title = match section {
        "commandstats" => "Commandstats".to_string(),
        "errorstats" => "Errorstats".to_string(),
        "latencystats" => "Latencystats".to_string(),
        "cpu" => "CPU".to_string(),
        _ => title,
    };
    let _ = write!(out, "# {title}\r\n");
    let mut line = |k: &str, v: &dyn std::fmt::Display| {
        let _ = write!(out, "{k}:{v}\r\n");
    };
    let uptime = sh.started.elapsed().as_secs();
    match section {
        "server" => {
            // Redis's own fields first, in its order (tools read the git/build ones to
            // tell builds apart: the commit Rill was built from, see build.rs).
            line("redis_version", &REDIS_VERSION);
            line("redis_git_sha1", &env!("RILL_GIT_SHA1"));
            line("redis_git_dirty", &env!("RILL_GIT_DIRTY"));
            line("redis_build_id", &env!("RILL_BUILD_ID"));
            // What is actually running: Rill's own version (REDIS_VERSION is the Redis
            // whose stream features it implements).
            line("rill_version", &env!("CARGO_PKG_VERSION"));
            line(
                "redis_mode",
                &if ctx.shared.cluster.is_some() {
                    "cluster"
                } else {
                    "standalone"
                },
            );
            line("os", &std::env::consts::OS);
            line("arch_bits", &64);
            line("process_id", &std::process::id());
            line("run_id", &sh.run_id);
            line("tcp_port", &sh.port.load(Ordering::Relaxed));
            line("uptime_in_seconds", &uptime);
            line("uptime_in_days", &(uptime / 86400));
            line("hz", &cfg.hz);
            line("configured_hz", &cfg.hz);
            line(
                "executable",
                &std::env::current_exe()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            );
            line(
                "config_file",
                &cfg.config_file()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            );
        }
        "clients" => {
            line("connected_clients", &sh.clients.len());
            line("maxclients", &cfg.maxclients);
            line(
                "blocked_clients",
                &ctx.blocking.as_ref().map_or(0, |b| b.len()),
            );
            // Redis 7.4+: clients with at least one subscription.
            let pubsub_clients = sh
                .clients
                .snapshot()
                .iter()
                .filter(|c| c.is_pubsub())
                .count();
            line("pubsub_clients", &pubsub_clients);
        }
        "memory" => {
            let rss = rss_bytes();
            line("used_memory", &rss);
            line("used_memory_human", &human(rss));
            line("used_memory_rss", &rss);
            line("used_memory_rss_human", &human(rss));
            line("maxmemory", &0);
            line("maxmemory_policy", &"noeviction");
        }
        "persistence" => {
            let loading = sh.is_loading();
            line("loading", &(loading as u8));
            if loading {
                let total = sh.loading_total.load(Ordering::Relaxed);
                let done = sh.loading_done.load(Ordering::Relaxed);
                line("loading_total_records", &total);
                line("loading_loaded_records", &done);
                let perc = if total == 0 {
                    0.0
                } else {
                    done as f64 * 100.0 / total as f64
                };
                line("loading_loaded_perc", &format!("{perc:.2}"));
            }
            line("async_loading", &0);
            line(
                "rdb_changes_since_last_save",
                &sh.stats.dirty.load(Ordering::Relaxed),
            );
            line("rdb_bgsave_in_progress", &0);
            line("aof_enabled", &1);
            line(
                "aof_rewrite_in_progress",
                &(sh.checkpoint_in_progress.load(Ordering::Relaxed) as u8),
            );
            let poisoned = match sh.log.get() {
                Some(l) => l.is_poisoned(),
                None => sh
                    .raft
                    .get()
                    .is_some_and(|r| r.raft_log().log().is_poisoned()),
            };
            line(
                "aof_last_write_status",
                &if poisoned { "err" } else { "ok" },
            );
            if let Some(log) = sh.log.get() {
                let (written, fsyncs) = log.counters();
                line("log_written_bytes", &written);
                line("log_fsyncs", &fsyncs);
                line("log_poisoned", &(poisoned as u8));
            } else if let Some(raft) = sh.raft.get() {
                let (written, fsyncs) = raft.raft_log().log().counters();
                line("log_written_bytes", &written);
                line("log_fsyncs", &fsyncs);
                line("log_poisoned", &(poisoned as u8));
                let s = raft.status();
                line("raft_enabled", &1);
                line("raft_role", &if s.leader { "leader" } else { "follower" });
                line("raft_leader_id", &format!("{:016x}", s.leader_id));
                line("raft_term", &s.term);
                line("raft_commit_index", &s.commit);
                line("raft_applied_index", &s.applied);
                line("raft_last_index", &s.last_index);
                line("raft_first_index", &raft.raft_log().first_index());
                line(
                    "raft_snapshot_index",
                    &raft.raft_log().snapshots().newest().map_or(0, |s| s.index),
                );
                line("raft_purge_floor", &raft.purge_floor());
            }
            line("dir", &cfg.dir.display());
            line("segment_size", &cfg.segment_size);
            line("cache_size", &cfg.cache_size);
            let cache = ctx.ks.payloads.stats();
            line("payload_cache_bytes", &cache.cache_bytes);
            line("payload_cache_entries", &cache.cache_entries);
            line("payload_cache_hits", &cache.hits);
            line("payload_cache_misses", &cache.misses);
            line("checkpoint_interval", &cfg.checkpoint_interval);
            line("compaction_threshold", &cfg.compaction_threshold);
            line(
                "appendfsync",
                &format!("{:?}", cfg.appendfsync).to_ascii_lowercase(),
            );
        }
        "stats" => {
            let st = &sh.stats;
            line(
                "total_connections_received",
                &st.connections_received.load(Ordering::Relaxed),
            );
            line(
                "total_commands_processed",
                &st.commands_processed.load(Ordering::Relaxed),
            );
            line(
                "total_net_input_bytes",
                &st.net_input_bytes.load(Ordering::Relaxed),
            );
            line(
                "total_net_output_bytes",
                &st.net_output_bytes.load(Ordering::Relaxed),
            );
            line(
                "rejected_connections",
                &st.rejected_connections.load(Ordering::Relaxed),
            );
            line("expired_keys", &ctx.ks.expired_keys);
            {
                use crate::core::pubsub::Kind;
                let ps = &ctx.shared.pubsub;
                line("pubsub_channels", &ps.len(Kind::Channel));
                line("pubsub_patterns", &ps.len(Kind::Pattern));
                line("pubsubshard_channels", &ps.len(Kind::Shard));
            }
            line(
                "total_error_replies",
                &st.error_replies.load(Ordering::Relaxed),
            );
            let denied = sh.acl.log.lock().denied;
            line("acl_access_denied_auth", &denied[DenyReason::Auth as usize]);
            line(
                "acl_access_denied_cmd",
                &denied[DenyReason::Command as usize],
            );
            line("acl_access_denied_key", &denied[DenyReason::Key as usize]);
            line(
                "acl_access_denied_channel",
                &denied[DenyReason::Channel as usize],
            );
            line("acl_access_denied_tls_cert", &0);
        }
        "replication" => match sh.raft.get() {
            Some(raft) if sh.cluster.is_some() => replication_raft(sh, raft, &mut line),
            _ => {
                line("role", &"master");
                line("connected_slaves", &0);
            }
        },
        "cpu" => {
            let (user, sys) = cpu_times();
            line("used_cpu_sys", &format!("{sys:.6}"));
            line("used_cpu_user", &format!("{user:.6}"));
        }
        "cluster" => line("cluster_enabled", &u8::from(ctx.shared.cluster.is_some())),
        "policies" => {
            // Rill's broker policies: the defaults in force and what the sweep did.
            let d = crate::core::retention_defaults(sh);
            line("retention_max_age_ms", &d.max_age_ms);
            line("retention_max_bytes", &d.max_bytes);
            line("retention_max_len", &d.max_len);
            line(
                "retention_refs",
                &match d.refs {
                    crate::engine::refs::RefPolicy::KeepRef => "keepref",
                    crate::engine::refs::RefPolicy::DelRef => "delref",
                    crate::engine::refs::RefPolicy::Acked => "acked",
                },
            );
            line("retention_interval_ms", &cfg.stream_retention_interval);
            line(
                "retention_sweeps",
                &sh.stats.retention_sweeps.load(Ordering::Relaxed),
            );
            line(
                "retention_trimmed_entries",
                &sh.stats.retention_trimmed.load(Ordering::Relaxed),
            );
            line(
                "dead_lettered_entries",
                &sh.stats.dead_lettered.load(Ordering::Relaxed),
            );
            let own = (0..ctx.ks.db_count())
                .map(|db| {
                    ctx.ks
                        .db(db)
                        .streams()
                        .filter(|(_, s)| s.policy().is_some())
                        .count()
                })
                .sum::<usize>();
            line("streams_with_policy", &own);
        }
        "keyspace" => {
            for db in 0..ctx.ks.db_count() {
                let d = ctx.ks.db(db);
                if !d.is_empty() {
                    line(
                        &format!("db{db}"),
                        &format!("keys={},expires={},avg_ttl=0", d.len(), d.expires_len()),
                    );
                }
            }
        }
        "commandstats" => {
            for (name, s) in sh.stats.commands() {
                let per = if s.calls > 0 {
                    s.usec as f64 / s.calls as f64
                } else {
                    0.0
                };
                line(
                    &format!("cmdstat_{name}"),
                    &format!(
                        "calls={},usec={},usec_per_call={:.2},rejected_calls={},failed_calls={}",
                        s.calls, s.usec, per, s.rejected, s.failed
                    ),
                );
            }
        }
        "errorstats" => {
            for (prefix, n) in sh.stats.errors() {
                line(&format!("errorstat_{prefix}"), &format!("count={n}"));
            }
        }
        _ => {}
    }
}

/// INFO replication of a replicated shard's node (`cluster-raft yes` in a cluster): Redis's
/// lines where they mean the same — `role:master` on the Raft leader and `role:slave` on the
/// others, the leader's `slaveN:ip=…,port=…,state=…,offset=…,lag=…` per replica, with the
/// offset a Raft index (the replica's acknowledged match index) rather than a byte count,
/// and `lag` whole seconds since the leader last heard from it, as Redis's seconds since the
/// last REPLCONF ACK — then the Raft state as `raft_*` lines, `raft_replicaN` giving every
/// replica's match and next index, how many entries it lags the leader's log, and the
/// milliseconds since the leader last heard from it. A replica's `state` is `online` when
/// raft replicates to it and heard from it within the election timeout, `probe` or
/// `snapshot` while raft looks for where their logs agree or sends it a snapshot, and
/// `unreachable` when it has not been heard from within the election timeout. A replica not
/// heard from since this node started shows `lag=-1` and `last_contact_ms=-1`.
fn replication_raft(
    sh: &Shared,
    raft: &crate::cluster::raft::RaftNode,
    line: &mut dyn FnMut(&str, &dyn std::fmt::Display),
) {
    let s = raft.status();
    let members: Vec<crate::cluster::topology::NodeInfo> = sh
        .cluster
        .as_ref()
        .and_then(|c| c.topology.read().my_shard().map(|s| s.nodes.clone()))
        .unwrap_or_default();
    let member = |id: u64| members.iter().find(|n| n.id.raft_id() == id);
    let replicas = raft.replicas();
    if s.leader {
        line("role", &"master");
        line("connected_slaves", &replicas.len());
        for (i, r) in replicas.iter().enumerate() {
            let (ip, port) = member(r.id).map_or(("?", 0), |n| (n.ip.as_str(), n.port));
            let state = if !r.active {
                "unreachable"
            } else if r.state == "replicate" {
                "online"
            } else {
                r.state
            };
            let lag = r.last_contact_ms.map_or(-1, |ms| (ms / 1000) as i64);
            line(
                &format!("slave{i}"),
                &format!(
                    "ip={ip},port={port},state={state},offset={},lag={lag}",
                    r.matched
                ),
            );
        }
        line("master_repl_offset", &s.last_index);
    } else {
        line("role", &"slave");
        let leader = member(s.leader_id);
        line("master_host", &leader.map_or("", |n| n.ip.as_str()));
        line("master_port", &leader.map_or(0, |n| n.port));
        let heard = (s.leader_id != 0)
            .then(|| raft.last_contact_ms(s.leader_id))
            .flatten();
        let up = heard.is_some_and(|ms| ms < crate::cluster::raft::node::ELECTION_TIMEOUT_MS);
        line("master_link_status", &if up { "up" } else { "down" });
        line(
            "master_last_io_seconds_ago",
            &heard.map_or(-1, |ms| (ms / 1000) as i64),
        );
        line("master_sync_in_progress", &0);
        line("slave_repl_offset", &s.applied);
        line("slave_read_only", &1);
        line("connected_slaves", &0);
        line("master_repl_offset", &s.commit);
    }
    line("raft_enabled", &1);
    line("raft_role", &if s.leader { "leader" } else { "follower" });
    line("raft_term", &s.term);
    line("raft_leader_id", &format!("{:016x}", s.leader_id));
    line("raft_commit_index", &s.commit);
    line("raft_applied_index", &s.applied);
    line("raft_last_index", &s.last_index);
    for (i, r) in replicas.iter().enumerate() {
        line(
            &format!("raft_replica{i}"),
            &format!(
                "id={:016x},match={},next={},lag_entries={},last_contact_ms={},state={},active={}",
                r.id,
                r.matched,
                r.next,
                s.last_index.saturating_sub(r.matched),
                r.last_contact_ms.map_or(-1, |ms| ms as i64),
                r.state,
                u8::from(r.active)
            ),
        );
    }
}

fn human(b: u64) -> String {
    if b >= 1 << 30 {
        format!("{:.2}G", b as f64 / (1u64 << 30) as f64)
    } else if b >= 1 << 20 {
        format!("{:.2}M", b as f64 / (1u64 << 20) as f64)
    } else if b >= 1 << 10 {
        format!("{:.2}K", b as f64 / 1024.0)
    } else {
        format!("{b}B")
    }
}

/// Resident set size from /proc (0 where unavailable).
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

fn cpu_times() -> (f64, f64) {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    if rc != 0 {
        return (0.0, 0.0);
    }
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    (t(ru.ru_utime), t(ru.ru_stime))
}

/// The CONFIG subcommands.
pub static CONFIG_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec::new("config|get", -3, Handler::Data(config_get))
        .flags(&["admin", "noscript", "loading", "stale"])
        .acl(&["@admin", "@slow", "@dangerous"])
        .doc(
            "server",
            "2.0.0",
            "O(N) when N is the number of configuration parameters provided",
            "Returns the effective values of configuration parameters.",
        ),
    CommandSpec::new("config|set", -4, Handler::Data(config_set))
        .flags(&["admin", "noscript", "loading", "stale"])
        .acl(&["@admin", "@slow", "@dangerous"])
        .doc(
            "server",
            "2.0.0",
            "O(N) when N is the number of configuration parameters provided",
            "Sets configuration parameters in-flight.",
        ),
    CommandSpec::new("config|resetstat", 2, Handler::Data(config_resetstat))
        .flags(&["admin", "noscript", "loading", "stale"])
        .acl(&["@admin", "@slow", "@dangerous"])
        .doc("server", "2.0.0", "O(1)", "Resets the server's statistics."),
    CommandSpec::new("config|rewrite", 2, Handler::Data(config_rewrite))
        .flags(&["admin", "noscript", "loading", "stale"])
        .acl(&["@admin", "@slow", "@dangerous"])
        .doc(
            "server",
            "2.8.0",
            "O(1)",
            "Persists the effective configuration to file.",
        ),
    CommandSpec::new("config|help", 2, Handler::Data(config_help))
        .flags(&["loading", "stale"])
        .acl(&["@slow"])
        .doc(
            "server",
            "5.0.0",
            "O(1)",
            "Returns helpful text about the different subcommands.",
        ),
];

fn config_get(ctx: &mut Ctx<'_>, a: &mut Args) -> R {
    let patterns: Vec<String> = a
        .rest()
        .iter()
        .map(|p| String::from_utf8_lossy(p).to_string())
        .collect();
    let pairs = ctx.shared.config.read().get_many(&patterns);
    Ok(Reply::Map(
        pairs
            .into_iter()
            .map(|(k, v)| (Reply::bulk(k), Reply::bulk(v)))
            .collect(),
    )
    .into())
}

fn config_set(ctx: &mut Ctx<'_>, a: &mut Args) -> R {
    let rest = a.rest();
    if !rest.len().is_multiple_of(2) {
        return Err(CommandError::Syntax);
    }
    let pairs: Vec<(String, String)> = rest
        .chunks(2)
        .map(|c| {
            (
                String::from_utf8_lossy(&c[0]).to_string(),
                String::from_utf8_lossy(&c[1]).to_string(),
            )
        })
        .collect();
    {
        let mut config = ctx.shared.config.write();
        let mut updated = config.clone();
        let local = ctx
            .shared
            .clients
            .get(ctx.client_id)
            .is_some_and(|c| c.is_local());
        updated
            .set_by(&pairs, local)
            .map_err(|e| CommandError::Raw(e.to_string()))?;
        if updated.maxclients > config.maxclients {
            // More clients need more descriptors: raise the limit or refuse, as Redis does.
            let reserve = crate::core::fdlimit::reserved_fds(&updated);
            if let Some(reason) =
                crate::core::fdlimit::check_maxclients(updated.maxclients, reserve)
            {
                return Err(CommandError::Raw(
                    crate::config::ConfigError::SetFailed {
                        name: "maxclients".to_string(),
                        reason,
                    }
                    .to_string(),
                ));
            }
        }
        // Raft mode counts an entry persisted only once fsynced: as at start-up, a weaker
        // policy is refused rather than silently not applied.
        if updated.cluster_raft && updated.appendfsync != crate::config::AppendFsync::Always {
            return Err(CommandError::Raw(
                crate::config::ConfigError::SetFailed {
                    name: "appendfsync".to_string(),
                    reason: "cluster-raft yes requires appendfsync always".to_string(),
                }
                .to_string(),
            ));
        }
        // Redis's applyTlsCfg: a changed tls-* directive (a certificate path even when
        // unchanged, to pick up rotated files) rebuilds the TLS contexts while TLS is in
        // use; if they do not build, nothing changes (so before anything is applied). tls-auth-clients needs no rebuild
        // (each mode has its context), as it has no apply function in Redis.
        if let Some((name, _)) = pairs.iter().find(|(n, _)| {
            let n = n.to_ascii_lowercase();
            n.starts_with("tls-") && n != "tls-auth-clients"
        }) {
            if updated.tls.in_use() {
                if let Err(e) = ctx.shared.tls.configure(&updated.tls) {
                    tracing::warn!("{}", e);
                    return Err(CommandError::Raw(
                        crate::config::ConfigError::SetFailed {
                            name: name.clone(),
                            reason: "Unable to update TLS configuration. Check server logs."
                                .to_string(),
                        }
                        .to_string(),
                    ));
                }
            }
        }
        if updated.requirepass != config.requirepass {
            // Redis's `requirepass` is the `default` user's password.
            ctx.shared
                .acl
                .set_default_password(updated.requirepass.as_deref());
        }
        *config = updated;
    }
    ctx.shared.apply_runtime_config();
    let budget = ctx.shared.config.read().cache_size;
    ctx.ks
        .payloads
        .set_budget(usize::try_from(budget).unwrap_or(usize::MAX));
    Ok(Reply::Ok.into())
}

fn config_resetstat(ctx: &mut Ctx<'_>, _a: &mut Args) -> R {
    ctx.shared.stats.reset();
    ctx.shared.acl.log.lock().denied = [0; 4];
    // Kept with the keyspace, which counts it, but a statistic like the others.
    ctx.ks.expired_keys = 0;
    Ok(Reply::Ok.into())
}

fn config_rewrite(ctx: &mut Ctx<'_>, _a: &mut Args) -> R {
    let config = ctx.shared.config.read();
    let users = match config.aclfile {
        Some(_) => Vec::new(),
        None => super::acl::user_lines(ctx.shared),
    };
    config
        .rewrite_with_users(Some(&users))
        .map_err(|e| CommandError::Raw(e.to_string()))?;
    Ok(Reply::Ok.into())
}

fn config_help(_ctx: &mut Ctx<'_>, _a: &mut Args) -> R {
    Ok(help_reply(
        "CONFIG",
        &[
            "GET <pattern>",
            "    Return parameters matching the glob-like <pattern> and their values.",
            "SET <directive> <value>",
            "    Set the configuration <directive> to <value>.",
            "RESETSTAT",
            "    Reset statistics reported by the INFO command.",
            "REWRITE",
            "    Rewrite the configuration file.",
        ],
    )
    .into())
}

/// Subcommands of COMMAND, listed for COMMAND DOCS/INFO; COMMAND dispatches them itself
/// because bare `COMMAND` is valid too.
pub static COMMAND_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec::new("command|count", 2, Handler::Data(command))
        .flags(&["loading", "stale"])
        .acl(&["@slow", "@connection"])
        .doc("server", "2.8.13", "O(1)", "Returns a count of commands."),
    CommandSpec::new("command|info", -2, Handler::Data(command))
        .flags(&["loading", "stale"])
        .acl(&["@slow", "@connection"])
        .doc(
            "server",
            "2.8.13",
            "O(N) where N is the number of commands to look up",
            "Returns information about one, multiple or all commands.",
        ),
    CommandSpec::new("command|docs", -2, Handler::Data(command))
        .flags(&["loading", "stale"])
        .acl(&["@slow", "@connection"])
        .doc(
            "server",
            "7.0.0",
            "O(N) where N is the number of commands to look up",
            "Returns documentary information about one, multiple or all commands.",
        ),
    CommandSpec::new("command|list", -2, Handler::Data(command))
        .flags(&["loading", "stale"])
        .acl(&["@slow", "@connection"])
        .doc(
            "server",
            "7.0.0",
            "O(N) where N is the total number of Redis commands",
            "Returns a list of command names.",
        ),
    CommandSpec::new("command|getkeys", -3, Handler::Data(command))
        .flags(&["loading", "stale"])
        .acl(&["@slow", "@connection"])
        .doc(
            "server",
            "2.8.13",
            "O(N) where N is the number of arguments to the command",
            "Extracts the key names from an arbitrary command.",
        ),
    CommandSpec::new("command|getkeysandflags", -3, Handler::Data(command))
        .flags(&["loading", "stale"])
        .acl(&["@slow", "@connection"])
        .doc(
            "server",
            "7.0.0",
            "O(N) where N is the number of arguments to the command",
            "Extracts the key names and access flags for an arbitrary command.",
        ),
    CommandSpec::new("command|help", 2, Handler::Data(command))
        .flags(&["loading", "stale"])
        .acl(&["@slow", "@connection"])
        .doc(
            "server",
            "5.0.0",
            "O(1)",
            "Returns helpful text about the different subcommands.",
        ),
];

/// COMMAND
///
/// # Format
/// `COMMAND [COUNT | INFO [name ...] | DOCS [name ...] | LIST | GETKEYS command [arg ...] |
/// GETKEYSANDFLAGS command [arg ...] | HELP]`
///
/// # Returns
/// Command metadata generated from the command table.
pub fn command(_ctx: &mut Ctx<'_>, a: &mut Args) -> R {
    a.seek(1);
    let Some(sub) = a.next() else {
        return Ok(Reply::Array(table::all().iter().map(command_info).collect()).into());
    };
    let sub_l = String::from_utf8_lossy(&sub).to_ascii_lowercase();
    let arity_err = |s: &str| CommandError::WrongArity(format!("command|{s}"));
    match sub_l.as_str() {
        "count" => {
            if a.remaining() != 0 {
                return Err(arity_err("count"));
            }
            Ok(Reply::Int(table::all().len() as i64).into())
        }
        "getkeys" | "getkeysandflags" => {
            let asked = a.rest();
            if asked.is_empty() {
                return Err(arity_err(&sub_l));
            }
            command_getkeys(&asked, sub_l == "getkeysandflags")
        }
        "list" => {
            // FILTERBY is accepted for MODULE/ACLCAT/PATTERN.
            let mut filter: Option<(String, String)> = None;
            if a.eat("FILTERBY") {
                let kind = String::from_utf8_lossy(&a.next_bytes()?).to_ascii_lowercase();
                let val = String::from_utf8_lossy(&a.next_bytes()?).to_string();
                filter = Some((kind, val));
            }
            a.finish()?;
            let mut names = Vec::new();
            for c in table::all() {
                let mut push = |spec: &'static CommandSpec| {
                    let keep = match &filter {
                        None => true,
                        Some((k, v)) if k == "pattern" => {
                            super::glob::glob_match(v.as_bytes(), spec.full.as_bytes(), true)
                        }
                        Some((k, v)) if k == "aclcat" => spec
                            .acl
                            .iter()
                            .any(|c| c.trim_start_matches('@').eq_ignore_ascii_case(v)),
                        Some(_) => false,
                    };
                    if keep {
                        names.push(Reply::bulk(spec.full));
                    }
                };
                push(c);
                for s in c.subcommands {
                    push(s);
                }
            }
            Ok(Reply::Array(names).into())
        }
        "info" => {
            let names = a.rest();
            if names.is_empty() {
                return Ok(Reply::Array(table::all().iter().map(command_info).collect()).into());
            }
            Ok(Reply::Array(
                names
                    .iter()
                    .map(|n| find_spec(n).map_or(Reply::Nil, command_info))
                    .collect(),
            )
            .into())
        }
        "docs" => {
            let names = a.rest();
            let specs: Vec<&'static CommandSpec> = if names.is_empty() {
                table::all().iter().collect()
            } else {
                names.iter().filter_map(|n| find_spec(n)).collect()
            };
            Ok(Reply::Map(
                specs
                    .into_iter()
                    .map(|s| (Reply::bulk(s.full), command_docs(s)))
                    .collect(),
            )
            .into())
        }
        "help" => Ok(help_reply(
            "COMMAND",
            &[
                "(no subcommand)",
                "    Return details about all Redis commands.",
                "COUNT",
                "    Return the total number of commands in this Redis server.",
                "LIST",
                "    Return a list of all commands in this Redis server.",
                "INFO [<command-name> ...]",
                "    Return details about multiple Redis commands.",
                "    If no command names are given, documentation details for all",
                "    commands are returned.",
                "DOCS [<command-name> ...]",
                "    Return documentation details about multiple Redis commands.",
                "    If no command names are given, documentation details for all",
                "    commands are returned.",
                "GETKEYS <full-command>",
                "    Return the keys from a full Redis command.",
                "GETKEYSANDFLAGS <full-command>",
                "    Return the keys and the access flags from a full Redis command.",
            ],
        )
        .into()),
        _ => Err(CommandError::UnknownSubcommand {
            sub: String::from_utf8_lossy(&sub).to_string(),
            container: "COMMAND".into(),
        }),
    }
}

/// COMMAND GETKEYS / GETKEYSANDFLAGS: the keys of `argv` as routing sees them (the one
/// key extraction, [`keyspec`]), with Redis's `getKeysSubcommandImpl` errors.
fn command_getkeys(argv: &[Bytes], with_flags: bool) -> R {
    let invalid = |what: &str| CommandError::Invalid(what.to_string());
    let name = String::from_utf8_lossy(&argv[0]).to_ascii_lowercase();
    let top = table::lookup(&name).ok_or_else(|| invalid("Invalid command specified"))?;
    let spec = match (top.handler, argv.get(1)) {
        (super::Handler::Container, Some(sub)) => {
            let sub = String::from_utf8_lossy(sub).to_ascii_lowercase();
            top.subcommands
                .iter()
                .find(|s| s.name() == sub)
                .ok_or_else(|| invalid("Invalid command specified"))?
        }
        _ => top,
    };
    // Shard channels (SPUBLISH, SSUBSCRIBE) route like keys but are `not_key`, which
    // Redis's COMMAND GETKEYS leaves out.
    let only_not_keys = table::docs::lookup(spec.full).is_some_and(|d| {
        !d.key_specs.is_empty() && d.key_specs.iter().all(|k| k.flags.contains(&"not_key"))
    });
    if !keyspec::has_keys(spec) || only_not_keys {
        return Err(invalid("The command has no key arguments"));
    }
    let argc = argv.len() as i32;
    if (spec.arity > 0 && spec.arity != argc) || argc < -spec.arity {
        return Err(invalid("Invalid number of arguments specified for command"));
    }
    let keys = keyspec::keys_with_specs(spec, argv);
    if keys.is_empty() {
        return Err(invalid("Invalid arguments specified for command"));
    }
    Ok(Reply::Array(
        keys.into_iter()
            .map(|(pos, ks)| {
                let key = Reply::Bulk(argv[pos].clone());
                if with_flags {
                    Reply::Array(vec![key, status_set(ks.flags)])
                } else {
                    key
                }
            })
            .collect(),
    )
    .into())
}

/// Finds `name` or `container|sub`.
fn find_spec(name: &[u8]) -> Option<&'static CommandSpec> {
    let name = String::from_utf8_lossy(name).to_ascii_lowercase();
    match name.split_once('|') {
        None => table::lookup(&name),
        Some((c, _)) => table::lookup(c)?
            .subcommands
            .iter()
            .find(|s| s.full == name),
    }
}

/// One COMMAND INFO entry: name, arity, flags, first key, last key, step, ACL
/// categories, tips, key specs, subcommands — laid out as Redis 7.4's
/// `addReplyCommandInfo` does (tips and key specs are sets; an empty subcommand list
/// is an empty set, a non-empty one an array).
fn command_info(s: &'static CommandSpec) -> Reply {
    let doc = docs::lookup(s.full);
    let key_specs = match doc {
        Some(d) => d.key_specs.iter().map(key_spec_reply).collect(),
        None => derived_key_spec(s).into_iter().collect(),
    };
    let tips = doc.map_or(&[][..], |d| d.tips);
    Reply::Array(vec![
        Reply::bulk(s.full),
        Reply::Int(s.arity as i64),
        status_set(s.flags),
        Reply::Int(s.first_key as i64),
        Reply::Int(s.last_key as i64),
        Reply::Int(s.step as i64),
        status_set(s.acl),
        Reply::Set(tips.iter().map(|t| Reply::bulk(*t)).collect()),
        Reply::Set(key_specs),
        if s.subcommands.is_empty() {
            Reply::Set(vec![])
        } else {
            Reply::Array(s.subcommands.iter().map(command_info).collect())
        },
    ])
}

/// A set of status strings (command flags, ACL categories, argument flags).
fn status_set(items: &[&'static str]) -> Reply {
    Reply::Set(
        items
            .iter()
            .map(|f| Reply::Status(Bytes::from_static(f.as_bytes())))
            .collect(),
    )
}

/// A key spec as COMMAND INFO shows it.
fn key_spec_reply(k: &'static KeySpec) -> Reply {
    let mut fields = Vec::with_capacity(4);
    if let Some(notes) = k.notes {
        fields.push((Reply::bulk("notes"), Reply::bulk(notes)));
    }
    fields.push((Reply::bulk("flags"), status_set(k.flags)));
    let begin = match k.begin_search {
        BeginSearch::Index(pos) => (
            "index",
            Reply::Map(vec![(Reply::bulk("index"), Reply::Int(pos))]),
        ),
        BeginSearch::Keyword(keyword, startfrom) => (
            "keyword",
            Reply::Map(vec![
                (Reply::bulk("keyword"), Reply::bulk(keyword)),
                (Reply::bulk("startfrom"), Reply::Int(startfrom)),
            ]),
        ),
    };
    fields.push((
        Reply::bulk("begin_search"),
        Reply::Map(vec![
            (Reply::bulk("type"), Reply::bulk(begin.0)),
            (Reply::bulk("spec"), begin.1),
        ]),
    ));
    let FindKeys::Range {
        lastkey,
        keystep,
        limit,
    } = k.find_keys;
    fields.push((
        Reply::bulk("find_keys"),
        Reply::Map(vec![
            (Reply::bulk("type"), Reply::bulk("range")),
            (
                Reply::bulk("spec"),
                Reply::Map(vec![
                    (Reply::bulk("lastkey"), Reply::Int(lastkey)),
                    (Reply::bulk("keystep"), Reply::Int(keystep)),
                    (Reply::bulk("limit"), Reply::Int(limit)),
                ]),
            ),
        ]),
    ));
    Reply::Map(fields)
}

/// For a command the docs table does not know (a unit test keeps that from happening),
/// a key spec derived from the legacy first/last/step triple.
fn derived_key_spec(s: &CommandSpec) -> Option<Reply> {
    if s.first_key <= 0 {
        return None;
    }
    let access = if s.flags.contains(&"write") {
        "RW"
    } else {
        "RO"
    };
    let lastkey = if s.last_key < 0 {
        s.last_key as i64
    } else {
        (s.last_key - s.first_key) as i64
    };
    Some(Reply::Map(vec![
        (Reply::bulk("flags"), status_set(&[access])),
        (
            Reply::bulk("begin_search"),
            Reply::Map(vec![
                (Reply::bulk("type"), Reply::bulk("index")),
                (
                    Reply::bulk("spec"),
                    Reply::Map(vec![(Reply::bulk("index"), Reply::Int(s.first_key as i64))]),
                ),
            ]),
        ),
        (
            Reply::bulk("find_keys"),
            Reply::Map(vec![
                (Reply::bulk("type"), Reply::bulk("range")),
                (
                    Reply::bulk("spec"),
                    Reply::Map(vec![
                        (Reply::bulk("lastkey"), Reply::Int(lastkey)),
                        (Reply::bulk("keystep"), Reply::Int(s.step as i64)),
                        (Reply::bulk("limit"), Reply::Int(0)),
                    ]),
                ),
            ]),
        ),
    ]))
}

/// One COMMAND DOCS entry, field for field in the order of Redis 7.4's
/// `addReplyCommandDocs`: summary, since, group, complexity, doc_flags,
/// deprecated_since, replaced_by, history, arguments, subcommands.
fn command_docs(s: &'static CommandSpec) -> Reply {
    let mut fields = vec![
        (Reply::bulk("summary"), Reply::bulk(s.summary)),
        (Reply::bulk("since"), Reply::bulk(s.since)),
        (Reply::bulk("group"), Reply::bulk(s.group)),
        (Reply::bulk("complexity"), Reply::bulk(s.complexity)),
    ];
    if let Some(d) = docs::lookup(s.full) {
        if !d.doc_flags.is_empty() {
            fields.push((Reply::bulk("doc_flags"), status_set(d.doc_flags)));
        }
        if let Some(v) = d.deprecated_since {
            fields.push((Reply::bulk("deprecated_since"), Reply::bulk(v)));
        }
        if let Some(v) = d.replaced_by {
            fields.push((Reply::bulk("replaced_by"), Reply::bulk(v)));
        }
        if !d.history.is_empty() {
            fields.push((
                Reply::bulk("history"),
                Reply::Set(
                    d.history
                        .iter()
                        .map(|(v, what)| Reply::Array(vec![Reply::bulk(*v), Reply::bulk(*what)]))
                        .collect(),
                ),
            ));
        }
        if !d.args.is_empty() {
            fields.push((Reply::bulk("arguments"), arg_list(d.args)));
        }
    }
    if !s.subcommands.is_empty() {
        fields.push((
            Reply::bulk("subcommands"),
            Reply::Map(
                s.subcommands
                    .iter()
                    .map(|c| (Reply::bulk(c.full), command_docs(c)))
                    .collect(),
            ),
        ));
    }
    Reply::Map(fields)
}

/// An argument list as Redis 7.4's `addReplyCommandArgList` writes it: name, type,
/// display_text (not for oneof/block), key_spec_index, token, summary, since,
/// deprecated_since, flags, then the nested arguments of a oneof/block.
fn arg_list(args: &'static [Arg]) -> Reply {
    Reply::Array(
        args.iter()
            .map(|a| {
                let mut m = vec![
                    (Reply::bulk("name"), Reply::bulk(a.name)),
                    (Reply::bulk("type"), Reply::bulk(a.kind.as_str())),
                ];
                if !a.kind.is_container() {
                    m.push((
                        Reply::bulk("display_text"),
                        Reply::bulk(a.display.unwrap_or(a.name)),
                    ));
                }
                if let Some(i) = a.key_spec_index {
                    m.push((Reply::bulk("key_spec_index"), Reply::Int(i64::from(i))));
                }
                let optional = [
                    ("token", a.token),
                    ("summary", a.summary),
                    ("since", a.since),
                    ("deprecated_since", a.deprecated_since),
                ];
                for (field, value) in optional {
                    if let Some(v) = value {
                        m.push((Reply::bulk(field), Reply::bulk(v)));
                    }
                }
                if a.flags != 0 {
                    m.push((Reply::bulk("flags"), status_set(&a.flag_names())));
                }
                if a.kind.is_container() {
                    m.push((Reply::bulk("arguments"), arg_list(a.args)));
                }
                Reply::Map(m)
            })
            .collect(),
    )
}

/// TIME
///
/// # Format
/// `TIME`
///
/// # Returns
/// `[unix-seconds, microseconds]` as bulk strings.
pub fn time(_ctx: &mut Ctx<'_>, _a: &mut Args) -> R {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Ok(Reply::bulks([now.as_secs().to_string(), now.subsec_micros().to_string()]).into())
}

/// SHUTDOWN
///
/// # Format
/// `SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE] [ABORT]`
///
/// # Returns
/// Nothing on success: the server finishes in-flight requests, flushes and exits.
pub fn shutdown(s: &mut Session, sh: &Shared, a: &mut Args) -> R {
    while let Some(opt) = a.next() {
        match String::from_utf8_lossy(&opt).to_ascii_uppercase().as_str() {
            "NOSAVE" | "SAVE" | "NOW" | "FORCE" => {}
            "ABORT" => {
                return Err(CommandError::Invalid("No shutdown in progress.".into()));
            }
            _ => return Err(CommandError::Syntax),
        }
    }
    tracing::warn!("User requested shutdown...");
    sh.begin_shutdown();
    s.close_after_reply = true;
    s.suppress_reply = true;
    Ok(Reply::Ok.into())
}

/// The FUNCTION subcommands Rill answers as a server without functions.
pub static FUNCTION_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec::new("function|list", -2, Handler::Data(function_list))
        .flags(&["noscript"])
        .acl(&["@slow", "@scripting"])
        .doc(
            "scripting",
            "7.0.0",
            "O(N) where N is the number of functions",
            "Returns information about all libraries.",
        ),
    CommandSpec::new("function|flush", -2, Handler::Data(function_flush))
        .flags(&["write", "noscript"])
        .acl(&["@write", "@slow", "@scripting"])
        .doc(
            "scripting",
            "7.0.0",
            "O(N) where N is the number of functions deleted",
            "Deletes all libraries and functions.",
        ),
];

fn function_list(_ctx: &mut Ctx<'_>, a: &mut Args) -> R {
    while let Some(opt) = a.next() {
        if opt.eq_ignore_ascii_case(b"WITHCODE") {
            continue;
        }
        if opt.eq_ignore_ascii_case(b"LIBRARYNAME") && a.remaining() > 0 {
            a.next();
            continue;
        }
        return Err(CommandError::Invalid(format!(
            "Unknown argument {}",
            String::from_utf8_lossy(&opt)
        )));
    }
    Ok(Reply::Array(vec![]).into())
}

fn function_flush(_ctx: &mut Ctx<'_>, a: &mut Args) -> R {
    if a.remaining() > 0 && !(a.eat("ASYNC") || a.eat("SYNC")) {
        return Err(CommandError::Invalid(
            "FUNCTION FLUSH only supports SYNC|ASYNC option".into(),
        ));
    }
    a.finish()?;
    Ok(Reply::Ok.into())
}

/// The SCRIPT subcommands Rill answers as a server whose script cache is always empty:
/// there is no Lua, so nothing is cached, nothing runs and there is nothing to flush.
/// go-redis's own test suite calls SCRIPT FLUSH (and CONFIG RESETSTAT) while it sets up;
/// an "unknown command" there fails tests that never use a script.
pub static SCRIPT_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec::new("script|exists", -3, Handler::Data(script_exists))
        .flags(&["noscript"])
        .acl(&["@slow", "@scripting"])
        .doc(
            "scripting",
            "2.6.0",
            "O(N) with N being the number of scripts to check (so checking a single script is an O(1) operation).",
            "Determines whether server-side Lua scripts exist in the script cache.",
        ),
    CommandSpec::new("script|flush", -2, Handler::Data(script_flush))
        .flags(&["noscript"])
        .acl(&["@slow", "@scripting"])
        .doc(
            "scripting",
            "2.6.0",
            "O(N) with N being the number of scripts in cache",
            "Removes all server-side Lua scripts from the script cache.",
        ),
    CommandSpec::new("script|kill", 2, Handler::Data(script_kill))
        .flags(&["noscript", "allow_busy"])
        .acl(&["@slow", "@scripting"])
        .doc(
            "scripting",
            "2.6.0",
            "O(1)",
            "Terminates a server-side Lua script during execution.",
        ),
    CommandSpec::new("script|help", 2, Handler::Data(script_help))
        .flags(&["loading", "stale"])
        .acl(&["@slow", "@scripting"])
        .doc(
            "scripting",
            "5.0.0",
            "O(1)",
            "Returns helpful text about the different subcommands.",
        ),
];

/// `SCRIPT EXISTS sha1 [sha1 ...]`: `:0` for each, the cache being empty.
fn script_exists(_ctx: &mut Ctx<'_>, a: &mut Args) -> R {
    Ok(Reply::Array(a.rest().iter().map(|_| Reply::Int(0)).collect()).into())
}

/// `SCRIPT FLUSH [ASYNC|SYNC]`: `+OK`, with Redis's check of the option.
fn script_flush(_ctx: &mut Ctx<'_>, a: &mut Args) -> R {
    let valid = match a.remaining() {
        0 => true,
        1 => a.eat("ASYNC") || a.eat("SYNC"),
        _ => false,
    };
    if !valid {
        return Err(CommandError::Invalid(
            "SCRIPT FLUSH only support SYNC|ASYNC option".into(),
        ));
    }
    Ok(Reply::Ok.into())
}

/// `SCRIPT KILL`: no script is ever running.
fn script_kill(_ctx: &mut Ctx<'_>, _a: &mut Args) -> R {
    Err(CommandError::Raw(
        "NOTBUSY No scripts in execution right now.".into(),
    ))
}

fn script_help(_ctx: &mut Ctx<'_>, _a: &mut Args) -> R {
    Ok(help_reply(
        "SCRIPT",
        &[
            "EXISTS <sha1> [<sha1> ...]",
            "    Return information about the existence of the scripts in the script cache.",
            "FLUSH [ASYNC|SYNC]",
            "    Flush the Lua scripts cache. Very dangerous on replicas.",
            "    When called without the optional mode argument, the behavior is determined by the",
            "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
            "    * ASYNC: Asynchronously flush the scripts cache.",
            "    * SYNC: Synchronously flush the scripts cache.",
            "KILL",
            "    Kill the currently executing Lua script.",
        ],
    )
    .into())
}

/// BGREWRITEAOF
///
/// # Format
/// `BGREWRITEAOF`
///
/// # Returns
/// A status once a checkpoint (Rill's log rewrite) has been scheduled.
pub fn bgrewriteaof(_s: &mut Session, sh: &Shared, _a: &mut Args) -> R {
    // A checkpoint of a keyspace the log did not fully accept would make that state
    // durable; the checkpoint would fail anyway (issue #18).
    if let Some(log) = sh.log.get().filter(|l| l.is_poisoned()) {
        return Err(log.poison_error().into());
    }
    if sh.checkpoint_in_progress.load(Ordering::SeqCst) {
        return Err(CommandError::Invalid(
            "Background append only file rewriting already in progress".into(),
        ));
    }
    sh.checkpoint_request.notify_one();
    Ok(Reply::status("Background append only file rewriting started").into())
}
