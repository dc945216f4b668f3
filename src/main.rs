//! `rill [config-file] [--directive value …]`: start the server, like redis-server.

use std::process::ExitCode;
use std::sync::Arc;

use rill::config::{parse_cli, Config};
use rill::server::{self, Shared};

fn usage() {
    eprintln!(
        "Usage: rill [/path/to/redis.conf] [options]\n       rill -v or --version\n       rill -h or --help\n\nExamples:\n       rill (run the server with default config: port 6379, data dir ./data)\n       rill /etc/rill/redis.conf\n       rill --port 7777\n       rill /etc/myredis.conf --loglevel verbose"
    );
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("-v") | Some("--version") => {
            println!("Rill server v={}", env!("CARGO_PKG_VERSION"));
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
    if let Err(e) = std::fs::create_dir_all(&config.dir) {
        tracing::error!(
            "Can't create the data directory '{}': {}",
            config.dir.display(),
            e
        );
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("Can't start the runtime: {}", e);
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(serve(config))
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
        _ => builder.with_writer(std::io::stdout).init(),
    }
    Ok(())
}

async fn serve(config: Config) -> ExitCode {
    let pidfile = config.pidfile.clone();
    let shared = Arc::new(Shared::new(config));
    let listeners = match server::listener::bind(&shared).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("{}", e);
            return ExitCode::FAILURE;
        }
    };
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
    tracing::info!("Ready to accept connections tcp");
    server::run(shared, listeners).await;
    if let Some(p) = &pidfile {
        let _ = std::fs::remove_file(p);
    }
    ExitCode::SUCCESS
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
