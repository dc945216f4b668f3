//! `rill [config-file] [--directive value …]`: start the server, like redis-server.

use std::process::ExitCode;
use std::sync::Arc;

/// glibc malloc with a single arena.
///
/// With entry payloads on disk, what stays in memory is a few large, long-lived
/// arrays (the stream indexes) plus the payload cache's 64 KiB chunks, allocated under
/// the keyspace lock anyway. Measured after 1 M x 1 KiB entries from 50 connections
/// (bench memory scenario): mimalloc, even told to return freed pages at once, held
/// 104-125 MiB of RSS for 78 MiB of live allocations; glibc with its default per-thread
/// arenas 92 MiB, with one arena 85 MiB, and no slower to fill. An explicit
/// `MALLOC_ARENA_MAX` in the environment still wins.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter; it is called before any
        // other thread exists.
        unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
    }
}

use rill::config::{parse_cli, AppendFsync, Config};
use rill::core::Shared;
use rill::server;
use rill::storage::{FsyncPolicy, LogOptions};

fn usage() {
    eprintln!(
        "Usage: rill [/path/to/redis.conf] [options]\n       rill check [--repair] DIR\n       rill cluster create HOST:PORT ... | rill cluster check HOST:PORT\n       rill cluster reshard|rebalance|fix HOST:PORT ... (see rill cluster --help)\n       rill -v or --version\n       rill -h or --help\n\nExamples:\n       rill (run the server with default config: port 6379, data dir ./data)\n       rill /etc/rill/redis.conf\n       rill --port 7777\n       rill /etc/myredis.conf --loglevel verbose"
    );
}

fn main() -> ExitCode {
    tune_allocator();
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Fault-injection builds take their failpoints from FAILPOINTS (e.g. `log::fsync=return`),
    // so black-box tests can make a real server's disk fail.
    #[cfg(feature = "failpoints")]
    let _failpoints = fail::FailScenario::setup();
    match args.first().map(String::as_str) {
        // Offline verification of a data directory; never starts a server.
        Some("check") => return rill::check::main(&args[1..]),
        // Cluster administration against running nodes; never starts a server.
        Some("cluster") => return rill::cluster_cli::main(&args[1..]),
        Some("-v") | Some("--version") => {
            // Redis's shape: `Redis server v=8.6.3 sha=00000000:0 malloc=jemalloc-5.3.0
            // bits=64 build=…`.
            println!(
                "Rill server v={} sha={}:{} malloc=libc bits={} build={}",
                env!("CARGO_PKG_VERSION"),
                env!("RILL_GIT_SHA1"),
                env!("RILL_GIT_DIRTY"),
                usize::BITS,
                env!("RILL_BUILD_ID")
            );
            return ExitCode::SUCCESS;
        }
        Some("-h") | Some("--help") => {
            usage();
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    let config = match parse_cli(&args)
        .and_then(|(file, overrides)| Config::load(file.as_deref(), &overrides))
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = init_logging(&config) {
        eprintln!("Can't open the log file: {e}");
        return ExitCode::FAILURE;
    }
    // Before anything opens files: descriptors for maxclients and for the log.
    let mut config = config;
    if let Err(msg) = rill::core::fdlimit::adjust_at_startup(&mut config) {
        tracing::error!("{}", msg);
        return ExitCode::FAILURE;
    }
    if let Err(e) = rill::storage::create_dir_all_durable(&config.dir) {
        tracing::error!(
            "Can't create the data directory '{}': {}",
            config.dir.display(),
            e
        );
        return ExitCode::FAILURE;
    }
    let percore = server::cores::wanted();
    let cores = if config.io_threads > 0 {
        config.io_threads as usize
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    };
    let mut builder = if percore {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(cores);
        // A task woken from a worker thread (a subscriber by its publisher, a client by
        // the write that unblocks it) would wait in that worker's LIFO slot, which no
        // other worker may steal from: behind whatever that worker runs next, or its
        // thread's whole time slice when the machine is busy. In the worker's queue an
        // idle worker takes it. Pub/Sub at one subscriber: p99 publish→delivery 1.5–2 ms
        // with the slot, 0.4 ms without (Redis 0.16 ms; bench/results/
        // 2026-12-08-pubsub-outlet.md). Tokio's unstable API: .cargo/config.toml sets
        // the cfg; a build without it keeps the slot.
        #[cfg(tokio_unstable)]
        b.disable_lifo_slot();
        b
    };
    let runtime = match builder.enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("Can't start the runtime: {}", e);
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        if server::executor::wanted() {
            if let Err(e) = server::executor::start() {
                tracing::error!("Can't start the executor thread: {}", e);
                return ExitCode::FAILURE;
            }
        }
        if percore {
            if let Err(e) = server::cores::start(cores.saturating_sub(1)) {
                tracing::error!("Can't start the runtimes: {}", e);
                return ExitCode::FAILURE;
            }
        }
        serve(config).await
    })
}

fn init_logging(config: &Config) -> std::io::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RILL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(config.loglevel.tracing_filter()));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    match &config.logfile {
        Some(path) if !path.as_os_str().is_empty() => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?;
            builder.with_ansi(false).with_writer(Arc::new(file)).init();
        }
        _ => {
            use std::io::IsTerminal;
            builder
                .with_ansi(std::io::stdout().is_terminal())
                .with_writer(std::io::stdout)
                .init()
        }
    }
    Ok(())
}

async fn serve(config: Config) -> ExitCode {
    let pidfile = config.pidfile.clone();
    let opts = LogOptions {
        segment_size: config.segment_size,
        policy: match config.appendfsync {
            AppendFsync::Always => FsyncPolicy::Always,
            AppendFsync::Everysec => FsyncPolicy::Everysec,
            AppendFsync::No => FsyncPolicy::No,
        },
    };
    let dir = config.dir.clone();
    let raft_mode = config.cluster_raft;
    // An acknowledged write must be on disk: a Raft entry counts as persisted only after
    // its fsync (design scale-out.md §3.7), so weaker policies are refused, not weakened.
    if raft_mode && config.appendfsync != AppendFsync::Always {
        tracing::error!(
            "cluster-raft yes requires appendfsync always (a Raft entry is acknowledged once fsynced)"
        );
        return ExitCode::FAILURE;
    }
    // The directory first: a second instance must fail before it touches anything the
    // running one owns (its pidfile included).
    let lock = match rill::storage::lock::lock_dir(&dir, rill::storage::lock::LockFile::Create) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("{}", e);
            return ExitCode::FAILURE;
        }
    };
    // After the directory lock, so two nodes cannot share one cluster config file.
    let cluster = if config.cluster_enabled {
        // Redis's check: the bus port must fit in 16 bits.
        if config.cluster_port == 0 && config.port > 55535 {
            tracing::error!("Redis port number too high. Cluster communication port is 10,000 port numbers higher than your Redis port. Your Redis port number must be 55535 or less.");
            return ExitCode::FAILURE;
        }
        match rill::cluster::Cluster::open(config.cluster_config_path()) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::error!("{}", e);
                return ExitCode::FAILURE;
            }
        }
    } else {
        None
    };
    let mut shared = Shared::new(config, None);
    if let Some(cluster) = cluster {
        tracing::info!("Cluster mode: node id {}", cluster.topology.read().myself());
        shared = shared.with_cluster(cluster);
    }
    // Before listening, as Redis's ACLLoadUsersAtStartup: bad users stop start-up.
    if let Err(e) = rill::commands::acl::load_at_startup(&shared) {
        tracing::error!("{}", e);
        return ExitCode::FAILURE;
    }
    let shared = Arc::new(shared);
    let tls_settings = shared.config.read().tls.clone();
    if tls_settings.in_use() {
        // As Redis's initListeners: a TLS setup that does not load stops start-up.
        if let Err(e) = shared.tls.configure(&tls_settings) {
            tracing::error!("{}", e);
            tracing::error!("Failed to configure TLS. Check logs for more info.");
            return ExitCode::FAILURE;
        }
    }
    let listeners = match server::listener::bind(&shared).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("{}", e);
            return ExitCode::FAILURE;
        }
    };
    match server::metrics::bind(&shared).await {
        Ok(Some(l)) => {
            tokio::spawn(server::metrics::serve(shared.clone(), l));
        }
        Ok(None) => {}
        Err(e) => {
            tracing::error!("{}", e);
            return ExitCode::FAILURE;
        }
    }
    {
        let cfg = shared.config.read();
        tracing::info!(
            "Rill {} starting: pid={}, port={}, dir={}, appendfsync={:?}, databases={}",
            env!("CARGO_PKG_VERSION"),
            std::process::id(),
            shared.port.load(std::sync::atomic::Ordering::SeqCst),
            cfg.dir.display(),
            cfg.appendfsync,
            cfg.databases,
        );
    }
    if let Some(p) = &pidfile {
        if let Err(e) = std::fs::write(p, format!("{}\n", std::process::id())) {
            tracing::warn!("Failed to write PID file {}: {}", p.display(), e);
        }
    }
    spawn_signal_handlers(shared.clone());
    // Clients may connect while the log is replayed; they get -LOADING until it is done.
    shared
        .loading
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let listening = (!listeners.plain.is_empty(), !listeners.tls.is_empty());
    let server_task = tokio::spawn(server::run(shared.clone(), listeners));
    let loader = shared.clone();
    let loaded = tokio::task::spawn_blocking(move || {
        if raft_mode {
            load_raft(&loader, lock, &dir, opts).map(Loaded::Raft)
        } else {
            rill::persist::replay::load(&loader, lock, &dir, opts).map(Loaded::Log)
        }
    })
    .await;
    let host_failed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    match loaded {
        Ok(Ok(Loaded::Log(log))) => {
            let _ = shared.log.set(log);
        }
        Ok(Ok(Loaded::Raft(None))) => {
            if let Some(raft) = shared.raft.get() {
                let sh = shared.clone();
                tokio::spawn(raft.clone().run_ticks(move || {
                    !sh.shutting_down.load(std::sync::atomic::Ordering::SeqCst)
                }));
            }
        }
        Ok(Ok(Loaded::Raft(Some(replica)))) => {
            // Nothing expires here until this node leads its shard (the group's start sets
            // the real gate): a replica's keys go only by its leader's logged deletions.
            shared
                .state
                .lock()
                .ks
                .set_expiry_gate(Arc::new(std::sync::atomic::AtomicBool::new(false)));
            // A replicated shard: its group starts once the node has a map.
            let sh = shared.clone();
            let failed = host_failed.clone();
            tokio::spawn(async move {
                if let Err(e) = server::replication::host(sh.clone(), replica).await {
                    tracing::error!("{}", e);
                    // The server stops, and says it failed (a supervisor restarting on
                    // failure must see it).
                    failed.store(true, std::sync::atomic::Ordering::SeqCst);
                    sh.begin_shutdown();
                }
            });
        }
        Ok(Err(msg)) => {
            tracing::error!("{}", msg);
            shared.begin_shutdown();
            let _ = server_task.await;
            remove_pidfile(pidfile.as_deref());
            return ExitCode::FAILURE;
        }
        Err(e) => {
            tracing::error!("Loading failed: {}", e);
            remove_pidfile(pidfile.as_deref());
            return ExitCode::FAILURE;
        }
    }
    // Cluster mode serves database 0 only (SELECT n is refused): keys elsewhere would be
    // unreachable. Redis stops too (verifyClusterConfigWithData).
    if shared.cluster.is_some() {
        let held = {
            let state = shared.state.lock();
            (1..state.ks.db_count()).find(|&db| !state.ks.db(db).is_empty())
        };
        if let Some(db) = held {
            tracing::error!(
                "Cluster mode serves database 0 only, but database {} holds keys: start without cluster-enabled and move or delete them first.",
                db
            );
            shared.begin_shutdown();
            let _ = server_task.await;
            remove_pidfile(pidfile.as_deref());
            return ExitCode::FAILURE;
        }
    }
    shared
        .loading
        .store(false, std::sync::atomic::Ordering::SeqCst);
    tokio::spawn(rill::persist::checkpoint::run_checkpoints(shared.clone()));
    // One line per kind of listener, as Redis's initListeners logs them.
    if listening.0 {
        tracing::info!("Ready to accept connections tcp");
    }
    if listening.1 {
        tracing::info!("Ready to accept connections tls");
    }
    let supervised = shared.config.read().supervised;
    server::notify::notify(supervised, "READY=1\nSTATUS=Ready to accept connections\n");
    let _ = server_task.await;
    remove_pidfile(pidfile.as_deref());
    if shared
        .restart_after_shutdown
        .load(std::sync::atomic::Ordering::SeqCst)
    {
        return restart_in_place();
    }
    if host_failed.load(std::sync::atomic::Ordering::SeqCst) {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// Starts this server again in this process, with the same binary and arguments: the log
/// is closed and every socket and the directory lock are closed on `exec` (all opened
/// close-on-exec), so the new image recovers the data directory as after a crash. Used by
/// a deposed Raft leader to rebuild its keyspace from the committed log.
fn restart_in_place() -> ExitCode {
    use std::os::unix::process::CommandExt;
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            tracing::error!("Can't restart in place (no path to this binary: {e}); exiting");
            return ExitCode::FAILURE;
        }
    };
    tracing::warn!("Restarting in place: {}", exe.display());
    let err = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .exec();
    tracing::error!("Can't restart in place: {err}; exiting");
    ExitCode::FAILURE
}

/// What start-up loaded.
enum Loaded {
    /// The single-node log.
    Log(rill::storage::Log),
    /// A Raft log: its group already running (one voter), or to be started as a replica
    /// of this node's shard once the node has a map (cluster mode).
    Raft(Option<rill::persist::replay::RaftLoaded>),
}

/// Start-up in Raft mode: replays the log's committed entries, then starts the group (one
/// voter), which elects itself and commits the rest of its log, applied as it commits. In
/// cluster mode the group is the shard's, started by `server::replication::host`.
fn load_raft(
    shared: &Arc<Shared>,
    lock: rill::storage::lock::DirLock,
    dir: &std::path::Path,
    opts: LogOptions,
) -> Result<Option<rill::persist::replay::RaftLoaded>, String> {
    // A snapshot a replica fetched before it restarted itself is swapped in for its log.
    match rill::storage::snapshot::finish_install(dir) {
        Ok(true) => tracing::info!("Installed the Raft snapshot fetched from the shard's leader"),
        Ok(false) => {}
        Err(e) => return Err(format!("Can't install the fetched Raft snapshot: {e}")),
    }
    let loaded = rill::persist::replay::load_raft(shared, lock, dir, opts)?;
    if shared.cluster.is_some() {
        return Ok(Some(loaded));
    }
    let node =
        rill::cluster::raft::RaftNode::start(loaded.log.clone(), loaded.applied).and_then(|node| {
            node.recover(&mut |entry, at| rill::persist::replay::apply_entry(shared, entry, at))?;
            Ok(node)
        });
    match node {
        Ok(node) => {
            tracing::info!(
                "Raft group of one voter: leader, log committed to index {}",
                node.committed()
            );
            let _ = shared.raft.set(node);
            Ok(None)
        }
        Err(e) => {
            loaded.log.close();
            Err(format!("Can't start the Raft group: {e}"))
        }
    }
}

fn remove_pidfile(p: Option<&std::path::Path>) {
    if let Some(p) = p {
        let _ = std::fs::remove_file(p);
    }
}

fn spawn_signal_handlers(shared: Arc<Shared>) {
    use tokio::signal::unix::{signal, SignalKind};
    for (kind, name) in [
        (SignalKind::interrupt(), "SIGINT"),
        (SignalKind::terminate(), "SIGTERM"),
    ] {
        let shared = shared.clone();
        match signal(kind) {
            Ok(mut s) => {
                tokio::spawn(async move {
                    if s.recv().await.is_some() {
                        tracing::warn!("Received {} scheduling shutdown...", name);
                        shared.begin_shutdown();
                    }
                });
            }
            Err(e) => tracing::warn!("Can't install the {} handler: {}", name, e),
        }
    }
}
