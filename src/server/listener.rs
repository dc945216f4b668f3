//! Binding, accepting, admission (maxclients, protected mode), background
//! expiry, and graceful shutdown.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use super::connection;
use crate::core::Shared;

/// The text Redis 7 sends to a non-loopback client when protected mode is on and
/// no password is set, before closing the connection.
const PROTECTED_MODE_DENIED: &str = "-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. If you want to connect from external computers to Redis you may adopt one of the following solutions: 1) Just disable protected mode sending the command 'CONFIG SET protected-mode no' from the loopback interface by connecting to Redis from the same host the server is running, however MAKE SURE Redis is not publicly accessible from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) Alternatively you can just disable the protected mode by editing the Redis configuration file, and setting the protected mode option to 'no', and then restarting the server. 3) If you started the server manually just for testing, restart it with the '--protected-mode no' option. 4) Set up an authentication password for the default user. NOTE: You only need to do one of the above things in order for the server to start accepting connections from the outside.\r\n";

/// Errors that stop the server from starting.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("Warning: Could not create server TCP listening socket {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("Failed listening on port {0} (tcp), aborting.")]
    NoListener(u16),
}

/// Binds every configured address. A `-` prefix marks an address whose failure is
/// tolerated (Redis's default `bind 127.0.0.1 -::1` on hosts without IPv6).
pub async fn bind(shared: &Shared) -> Result<Vec<TcpListener>, ListenError> {
    let (addrs, port) = {
        let cfg = shared.config.read();
        (cfg.bind.clone(), cfg.port)
    };
    let addrs = if addrs.is_empty() {
        vec!["*".to_string(), "-::*".to_string()]
    } else {
        addrs
    };
    let mut listeners = Vec::new();
    let mut port = port;
    for raw in addrs {
        let (optional, host) = match raw.strip_prefix('-') {
            Some(h) => (true, h.to_string()),
            None => (false, raw.clone()),
        };
        let host = match host.as_str() {
            "*" => "0.0.0.0".to_string(),
            "::*" => "::".to_string(),
            h => h.to_string(),
        };
        let addr = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        match TcpListener::bind(&addr).await {
            Ok(l) => {
                if port == 0 {
                    // Port 0 asks the OS for a free port; every further address uses the same one.
                    port = l.local_addr().map(|a| a.port()).unwrap_or(0);
                }
                listeners.push(l);
            }
            Err(e) if optional => {
                tracing::debug!("optional bind {} failed: {}", addr, e);
            }
            Err(source) => return Err(ListenError::Bind { addr, source }),
        }
    }
    if listeners.is_empty() {
        return Err(ListenError::NoListener(port));
    }
    shared.port.store(port, Ordering::SeqCst);
    Ok(listeners)
}

/// Serves until shutdown: accepts connections, runs background expiry, then drains
/// the clients and returns.
pub async fn run(shared: Arc<Shared>, listeners: Vec<TcpListener>) {
    let mut accepters = JoinSet::new();
    for l in listeners {
        accepters.spawn(accept_loop(shared.clone(), l));
    }
    let expirer = tokio::spawn(expire_loop(shared.clone()));
    let claim_timer = tokio::spawn(crate::core::blocking::claim_timer_loop(shared.clone()));
    let idmp_sweeper = tokio::spawn(idmp_sweep_loop(shared.clone()));

    while !shared.shutting_down.load(Ordering::SeqCst) {
        shared.shutdown.notified().await;
    }
    tracing::info!("User requested shutdown...");
    accepters.abort_all();
    expirer.abort();
    claim_timer.abort();
    idmp_sweeper.abort();

    // Let every connection finish what it is doing, flush its replies and close.
    shared.clients.kill_all();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !shared.clients.is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    if let Some(log) = shared.log.get() {
        // A checkpoint now makes the next start load the index instead of replaying
        // what was logged since the last one (as Redis saves on shutdown).
        if !log.is_poisoned() && crate::persist::checkpoint::log_grew_since_checkpoint(&shared, log)
        {
            let sh = shared.clone();
            match tokio::task::spawn_blocking(move || crate::persist::checkpoint::checkpoint(&sh))
                .await
            {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!("Checkpoint at shutdown failed: {}", e),
                Err(e) => tracing::warn!("Checkpoint at shutdown failed: {}", e),
            }
        }
        log.close();
        tracing::info!("Log flushed and synced.");
    }
    tracing::info!("Rill is now ready to exit, bye bye...");
}

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => admit(shared.clone(), stream, addr),
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!("Error accepting a client connection: {}", e);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

fn admit(shared: Arc<Shared>, stream: TcpStream, addr: SocketAddr) {
    shared
        .stats
        .connections_received
        .fetch_add(1, Ordering::Relaxed);
    let (maxclients, protected, keepalive) = {
        let cfg = shared.config.read();
        (cfg.maxclients, cfg.protected_mode, cfg.tcp_keepalive as u64)
    };
    let _ = stream.set_nodelay(true);
    if keepalive > 0 {
        // As Redis's anetKeepAlive: probes start after `tcp-keepalive` idle seconds and
        // three unanswered ones, a third of it apart, close the connection (300 → 600 s).
        let ka = socket2::TcpKeepalive::new()
            .with_time(Duration::from_secs(keepalive))
            .with_interval(Duration::from_secs((keepalive / 3).max(1)))
            .with_retries(3);
        let _ = socket2::SockRef::from(&stream).set_tcp_keepalive(&ka);
    }
    let refuse = if shared.clients.len() >= maxclients as usize {
        shared
            .stats
            .rejected_connections
            .fetch_add(1, Ordering::Relaxed);
        Some("-ERR max number of clients reached\r\n")
    } else if protected && !shared.requires_auth() && !addr.ip().is_loopback() {
        Some(PROTECTED_MODE_DENIED)
    } else {
        None
    };
    if let Some(text) = refuse {
        // Written and closed here, not in a task: a flood of refused connections must
        // not hold descriptors the log needs (the reserve counts one at a time). A fresh
        // socket's send buffer takes the text whole, as Redis's one write assumes.
        let _ = stream.try_write(text.as_bytes());
        let _ = socket2::SockRef::from(&stream).shutdown(std::net::Shutdown::Write);
        return;
    }
    let laddr = stream.local_addr().unwrap_or(addr);
    let info = shared.clients.register(addr, laddr);
    tokio::spawn(async move {
        let id = info.id;
        connection::serve(shared.clone(), stream, info).await;
        shared.clients.unregister(id);
    });
}

/// Active expiry: keys with a passed TTL are removed even if nobody touches them.
///
/// Redis's adaptive cycle, on an index ordered by expiry time instead of sampling: ten
/// times a second, due keys are removed in chunks of [`EXPIRE_CHUNK`] (one lock hold
/// and one log record each, so clients wait at most one chunk), for as long as some
/// remain due and at most [`EXPIRE_BUDGET`] per tick (25% of a core, Redis's slow-cycle
/// limit). With nothing due a tick costs a few comparisons.
async fn expire_loop(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tick.tick().await;
        if shared.is_loading() {
            // Replay applies the log's own DELs; expiring now would race with it.
            continue;
        }
        let started = std::time::Instant::now();
        loop {
            let now = crate::core::now_ms();
            let more = {
                let mut guard = shared.state.lock();
                let state = &mut *guard;
                let (removed, more) = state.ks.active_expire(now, EXPIRE_CHUNK);
                if removed > 0 {
                    crate::core::propagate::log_expired(&mut state.ks, &mut state.props, 0);
                    crate::core::blocking::serve_ready(
                        &mut state.ks,
                        &mut state.blocking,
                        &mut state.props,
                        &shared,
                        now,
                    );
                    if let Err(e) = crate::core::commit(&shared, state) {
                        tracing::warn!("Could not log expired keys: {}", e);
                        break;
                    }
                }
                more
            };
            if !more || started.elapsed() >= EXPIRE_BUDGET {
                break;
            }
            tokio::task::yield_now().await;
        }
    }
}

/// The IDMP sweep (Redis 8.6's `handleExpiredIdmpEntries`, run once a second): IIDs
/// older than their stream's IDMP-DURATION are forgotten. See [`crate::core::sweep_idmp`].
async fn idmp_sweep_loop(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_millis(1000));
    loop {
        tick.tick().await;
        if shared.is_loading() {
            continue;
        }
        if let Err(e) = crate::core::sweep_idmp(&shared, crate::core::now_ms()) {
            tracing::warn!("Could not log the IDMP sweep: {}", e);
        }
    }
}

/// Keys removed per lock hold by active expiry.
const EXPIRE_CHUNK: usize = 1000;
/// Time active expiry may take per 100 ms tick.
const EXPIRE_BUDGET: Duration = Duration::from_millis(25);
