//! Binding, accepting, admission (maxclients, protected mode), the TLS handshake of
//! connections on `tls-port`, background expiry, and graceful shutdown.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use super::connection;
use super::handoff::Handoff;
use super::tls::TlsSession;
use crate::core::clients::ClientInfo;
use crate::core::Shared;

/// The text Redis 7 sends to a non-loopback client when protected mode is on and
/// no password is set, before closing the connection.
const PROTECTED_MODE_DENIED: &str = "-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. If you want to connect from external computers to Redis you may adopt one of the following solutions: 1) Just disable protected mode sending the command 'CONFIG SET protected-mode no' from the loopback interface by connecting to Redis from the same host the server is running, however MAKE SURE Redis is not publicly accessible from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) Alternatively you can just disable the protected mode by editing the Redis configuration file, and setting the protected mode option to 'no', and then restarting the server. 3) If you started the server manually just for testing, restart it with the '--protected-mode no' option. 4) Set up an authentication password for the default user. NOTE: You only need to do one of the above things in order for the server to start accepting connections from the outside.\r\n";

/// Pending connections the kernel queues per listening socket (tokio's default, which
/// Rill used before binding through socket2; Redis's `tcp-backlog` is 511).
const LISTEN_BACKLOG: i32 = 1024;

/// Errors that stop the server from starting. The address that failed has already been
/// logged, as Redis's `listenToPort` does before giving up.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// The port, and `tcp` or `tls`.
    #[error("Failed listening on port {0} ({1}), aborting.")]
    Failed(u16, &'static str),
    /// `bind ""`, or every address optional and unavailable.
    #[error("Configured to not listen anywhere, exiting.")]
    Nowhere,
}

/// Why one address could not be listened on, worded as Redis's `anetTcpServer` words it
/// (`bind: Cannot assign requested address`).
#[derive(Debug)]
struct AddrError {
    step: &'static str,
    source: io::Error,
}

impl AddrError {
    fn at(step: &'static str) -> impl FnOnce(io::Error) -> AddrError {
        move |source| AddrError { step, source }
    }

    /// Redis's `listenToPort` rule: an optional (`-`) address may be missing from the
    /// host (EADDRNOTAVAIL); an address family or protocol the kernel lacks (no IPv6 at
    /// all) is skipped even when not optional. Anything else (EADDRINUSE, EACCES) is fatal.
    fn tolerated(&self, optional: bool) -> bool {
        match self.source.raw_os_error() {
            Some(libc::EADDRNOTAVAIL) => optional,
            Some(
                libc::ENOPROTOOPT
                | libc::EPROTONOSUPPORT
                | libc::ESOCKTNOSUPPORT
                | libc::EPFNOSUPPORT
                | libc::EAFNOSUPPORT,
            ) => true,
            _ => false,
        }
    }
}

impl std::fmt::Display for AddrError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // strerror's text without Rust's " (os error N)" suffix, as Redis prints it.
        let text = self.source.to_string();
        let text = match text.rfind(" (os error ") {
            Some(at) => &text[..at],
            None => &text,
        };
        match (self.step, self.source.raw_os_error()) {
            ("socket", Some(n)) => write!(f, "unable to bind socket, errno: {n}"),
            ("resolve", _) => f.write_str(text),
            (step, _) => write!(f, "{step}: {text}"),
        }
    }
}

/// The listening sockets: plain TCP on `port`, TLS on `tls-port`, each on every `bind`
/// address.
pub struct Listeners {
    pub plain: Vec<TcpListener>,
    pub tls: Vec<TcpListener>,
}

/// Binds every configured address for `port` and, when set, `tls-port`, as Redis's
/// `initListeners`. With a `tls-port`, `port 0` means no plain TCP port, as in Redis;
/// without one, `port 0` asks the OS for a free port (Rill's tests start servers so).
/// The TLS contexts must be configured first ([`crate::tls::TlsContext::configure`]).
pub async fn bind(shared: &Shared) -> Result<Listeners, ListenError> {
    let (addrs, port, tls_port) = {
        let cfg = shared.config.read();
        (cfg.bind.clone(), cfg.port, cfg.tls.port)
    };
    let mut plain = Vec::new();
    let mut bound = 0;
    if port != 0 || tls_port == 0 {
        (plain, bound) = bind_port(&addrs, port, "tcp").await?;
    }
    let mut tls = Vec::new();
    if tls_port != 0 {
        (tls, _) = bind_port(&addrs, tls_port, "tls").await?;
    }
    if plain.is_empty() && tls.is_empty() {
        return Err(ListenError::Nowhere);
    }
    // INFO's tcp_port and the banner: the TLS port when there is no plain one, as Redis.
    shared
        .port
        .store(if bound != 0 { bound } else { tls_port }, Ordering::SeqCst);
    Ok(Listeners { plain, tls })
}

/// Binds `port` on every address, as Redis's `listenToPort`: an address with a `:` is
/// IPv6 (`::*` meaning any), otherwise IPv4 (`*` meaning any) or a host name resolved to
/// IPv4. A `-` prefix marks an address whose absence is tolerated (the default
/// `127.0.0.1 -::1` on hosts without IPv6). Every failure is logged; see
/// [`AddrError::tolerated`] for which ones stop start-up. Returns the port bound (the
/// one the OS chose for 0).
async fn bind_port(
    addrs: &[String],
    port: u16,
    kind: &'static str,
) -> Result<(Vec<TcpListener>, u16), ListenError> {
    let mut listeners = Vec::new();
    let mut port = port;
    for raw in addrs {
        let (optional, host) = match raw.strip_prefix('-') {
            Some(h) => (true, h),
            None => (false, raw.as_str()),
        };
        match listen_on(host, port).await {
            Ok(l) => {
                if port == 0 {
                    // Port 0 asks the OS for a free port; every further address uses the same one.
                    port = l.local_addr().map(|a| a.port()).unwrap_or(0);
                }
                listeners.push(l);
            }
            Err(e) => {
                tracing::warn!(
                    "Warning: Could not create server TCP listening socket {}:{}: {}",
                    host,
                    port,
                    e
                );
                if !e.tolerated(optional) {
                    return Err(ListenError::Failed(port, kind));
                }
            }
        }
    }
    Ok((listeners, port))
}

/// One listening socket for one `bind` address.
async fn listen_on(host: &str, port: u16) -> Result<TcpListener, AddrError> {
    let addr = resolve(host, port).await?;
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .map_err(AddrError::at("socket"))?;
    if addr.is_ipv6() {
        // As Redis's `anetV6Only`: an IPv6 socket takes IPv6 only, whatever the host's
        // `net.ipv6.bindv6only`. Otherwise `bind ::` would also take IPv4 (peers seen as
        // `::ffff:a.b.c.d`), and `* -::*` could not put both families on one port.
        socket
            .set_only_v6(true)
            .map_err(AddrError::at("setsockopt"))?;
    }
    socket
        .set_reuse_address(true)
        .map_err(AddrError::at("setsockopt SO_REUSEADDR"))?;
    socket.bind(&addr.into()).map_err(AddrError::at("bind"))?;
    socket
        .listen(LISTEN_BACKLOG)
        .map_err(AddrError::at("listen"))?;
    socket
        .set_nonblocking(true)
        .map_err(AddrError::at("fcntl(F_SETFL,O_NONBLOCK)"))?;
    TcpListener::from_std(socket.into()).map_err(AddrError::at("listen"))
}

/// The socket address for a `bind` address: its family is decided by the text (a `:`
/// means IPv6), as Redis passes `AF_INET6` or `AF_INET` to `getaddrinfo`.
async fn resolve(host: &str, port: u16) -> Result<SocketAddr, AddrError> {
    let v6 = host.contains(':');
    let any: Option<IpAddr> = match host {
        "::*" => Some(Ipv6Addr::UNSPECIFIED.into()),
        "*" => Some(Ipv4Addr::UNSPECIFIED.into()),
        _ => None,
    };
    if let Some(ip) = any {
        return Ok(SocketAddr::new(ip, port));
    }
    let found = tokio::net::lookup_host((host, port))
        .await
        .map_err(AddrError::at("resolve"))?
        .find(|a| a.is_ipv6() == v6);
    found.ok_or_else(|| AddrError {
        step: "resolve",
        source: io::Error::new(
            io::ErrorKind::NotFound,
            "Address family for hostname not supported",
        ),
    })
}

/// The address a connection is known by in CLIENT LIST, CLIENT KILL and the
/// protected-mode check: an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, which only a
/// dual-stack socket produces) as the IPv4 address it is, and an IPv6 address without
/// flow label or scope id, as Redis's `inet_ntop` text shows it.
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(v4.into(), v6.port()),
            None => SocketAddrV6::new(*v6.ip(), v6.port(), 0, 0).into(),
        },
        v4 => v4,
    }
}

/// Redis's `connIsLocal`: `127.*` or `::1`, judged on the canonical address so that a
/// mapped loopback peer (`::ffff:127.0.0.1`) counts as local.
pub fn is_local(addr: SocketAddr) -> bool {
    canonical(addr).ip().is_loopback()
}

/// Serves until shutdown: accepts connections, runs background expiry, then drains
/// the clients and returns.
pub async fn run(shared: Arc<Shared>, listeners: Listeners) {
    let mut accepters = JoinSet::new();
    let handoff = Arc::new(Handoff::default());
    for l in listeners.plain {
        accepters.spawn(accept_loop(shared.clone(), handoff.clone(), l, false));
    }
    for l in listeners.tls {
        accepters.spawn(accept_loop(shared.clone(), handoff.clone(), l, true));
    }
    let expirer = tokio::spawn(expire_loop(shared.clone()));
    let claim_timer = tokio::spawn(crate::core::blocking::claim_timer_loop(shared.clone()));
    let idmp_sweeper = tokio::spawn(idmp_sweep_loop(shared.clone()));
    let retention_sweeper = tokio::spawn(retention_sweep_loop(shared.clone()));
    let heap_trimmer = tokio::spawn(super::heap::trim_loop());

    while !shared.shutting_down.load(Ordering::SeqCst) {
        shared.shutdown.notified().await;
    }
    tracing::info!("User requested shutdown...");
    let supervised = shared.config.read().supervised;
    super::notify::notify(supervised, "STOPPING=1\n");
    accepters.abort_all();
    expirer.abort();
    claim_timer.abort();
    idmp_sweeper.abort();
    retention_sweeper.abort();
    heap_trimmer.abort();

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
    } else if let Some(raft) = shared.raft.get() {
        // The trailing hard state (its commit index) goes out with the last records.
        let _ = raft.round(None);
        raft.close();
        tracing::info!("Raft log flushed and synced.");
    }
    tracing::info!("Rill is now ready to exit, bye bye...");
}

async fn accept_loop(shared: Arc<Shared>, handoff: Arc<Handoff>, listener: TcpListener, tls: bool) {
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => admit(shared.clone(), &handoff, stream, addr, tls),
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!("Error accepting a client connection: {}", e);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

fn admit(
    shared: Arc<Shared>,
    handoff: &Arc<Handoff>,
    stream: TcpStream,
    addr: SocketAddr,
    tls: bool,
) {
    shared
        .stats
        .connections_received
        .fetch_add(1, Ordering::Relaxed);
    let (maxclients, protected, keepalive, auth_clients) = {
        let cfg = shared.config.read();
        (
            cfg.maxclients,
            cfg.protected_mode,
            cfg.tcp_keepalive as u64,
            cfg.tls.auth_clients,
        )
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
    } else if protected && shared.acl.default.rules().nopass && !is_local(addr) && !tls {
        // Redis's test is the `default` user's `nopass` alone (even when it is `off`). A
        // TLS client is told after its handshake (`tls_accept`), as Redis's
        // clientAcceptHandler does.
        Some(PROTECTED_MODE_DENIED)
    } else {
        None
    };
    // The configuration (and client-certificate mode) a TLS connection is accepted with.
    let tls_config = match tls {
        false => None,
        true => match shared.tls.server_config(auth_clients) {
            Some(c) => Some(c),
            None => {
                // tls-auth-clients was set to yes/optional with no CA certificates to
                // verify against: every certificate would fail, as in Redis.
                tracing::warn!(
                    "Error accepting a client connection: no CA certificates to verify client certificates (tls-ca-cert-file, tls-ca-cert-dir) (addr={})",
                    canonical(addr)
                );
                return;
            }
        },
    };
    if let (Some(_), Some(_)) = (refuse, &tls_config) {
        // Over maxclients: the text cannot go through a TLS session that does not exist
        // yet; Redis's write there fails too, and the connection is just closed.
        return;
    }
    if let Some(text) = refuse {
        // Written and closed here, not in a task: a flood of refused connections must
        // not hold descriptors the log needs (the reserve counts one at a time). A fresh
        // socket's send buffer takes the text whole, as Redis's one write assumes.
        let _ = stream.try_write(text.as_bytes());
        let _ = socket2::SockRef::from(&stream).shutdown(std::net::Shutdown::Write);
        return;
    }
    let laddr = canonical(stream.local_addr().unwrap_or(addr));
    let info = shared.clients.register(canonical(addr), laddr);
    let handoff = handoff.clone();
    if let Some(core) = super::cores::next() {
        // Moved to that core's reactor (registered there on first use).
        let Ok(std_stream) = stream.into_std() else {
            shared.clients.unregister(info.id);
            return;
        };
        core.spawn(async move {
            let id = info.id;
            if let Ok(stream) = TcpStream::from_std(std_stream) {
                serve(shared.clone(), handoff, stream, tls_config, info).await;
            }
            shared.clients.unregister(id);
        });
        return;
    }
    tokio::spawn(async move {
        let id = info.id;
        serve(shared.clone(), handoff, stream, tls_config, info).await;
        shared.clients.unregister(id);
    });
}

/// Serves an admitted connection; on the TLS port, once its handshake is done.
async fn serve(
    shared: Arc<Shared>,
    handoff: Arc<Handoff>,
    stream: TcpStream,
    tls_config: Option<Arc<rustls::ServerConfig>>,
    info: Arc<ClientInfo>,
) {
    let tls = match tls_config {
        None => None,
        Some(config) => match tls_accept(&shared, &stream, config, &info).await {
            Some(session) => Some(session),
            None => return,
        },
    };
    connection::serve(shared, handoff, stream, tls, info).await;
}

/// The TLS handshake of a connection on the TLS port, then the protected-mode check Redis
/// makes after it. The client is registered meanwhile (it counts in `connected_clients`,
/// CLIENT KILL and shutdown end the handshake, and `timeout` bounds it), as Redis creates
/// the client before `connAccept`. A failed handshake — plain text on the TLS port, a
/// certificate that does not verify — is logged as Redis logs it and closes only this
/// connection.
async fn tls_accept(
    shared: &Shared,
    stream: &TcpStream,
    config: Arc<rustls::ServerConfig>,
    info: &ClientInfo,
) -> Option<Box<TlsSession>> {
    let failed = |reason: &dyn std::fmt::Display| {
        tracing::warn!(
            "Error accepting a client connection: {} (addr={} laddr={})",
            reason,
            info.addr,
            info.laddr
        );
    };
    let mut session = match TlsSession::new(config) {
        Ok(s) => Box::new(s),
        Err(e) => {
            failed(&e);
            return None;
        }
    };
    let idle = u64::from(shared.config.read().timeout);
    let deadline = (idle > 0).then(|| tokio::time::Instant::now() + Duration::from_secs(idle));
    let timeout = async {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        r = session.handshake(stream) => {
            if let Err(e) = r {
                failed(&e);
                return None;
            }
        }
        _ = info.kill_notify.notified() => return None,
        _ = timeout => {
            tracing::debug!("Closing idle client id={} (TLS handshake not done)", info.id);
            return None;
        }
    }
    let (protected, local) = (shared.config.read().protected_mode, is_local(info.addr));
    if protected && shared.acl.default.rules().nopass && !local {
        let mut text = bytes::BytesMut::from(PROTECTED_MODE_DENIED.as_bytes());
        let _ = session.write_ready(stream, &mut text);
        session.close(stream);
        let _ = socket2::SockRef::from(stream).shutdown(std::net::Shutdown::Write);
        return None;
    }
    Some(session)
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
                    crate::core::propagate::log_expired(
                        &mut state.ks,
                        &mut state.props,
                        0,
                        shared
                            .notify_flags
                            .load(std::sync::atomic::Ordering::Relaxed),
                    );
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

/// The policy sweeps (broker policies): every `stream-retention-interval` ms, streams over
/// their age, byte or length limit are trimmed ([`crate::core::sweep_retention`]) and failed
/// entries past their group's MAXDELIVER dead-lettered ([`crate::core::sweep_dead_letters`]).
async fn retention_sweep_loop(shared: Arc<Shared>) {
    loop {
        let every = shared.config.read().stream_retention_interval.max(10);
        tokio::time::sleep(Duration::from_millis(every)).await;
        if shared.is_loading() {
            continue;
        }
        if let Err(e) = crate::core::sweep_retention(&shared, crate::core::now_ms()) {
            tracing::warn!("Could not log the retention sweep: {}", e);
        }
        if let Err(e) = crate::core::sweep_dead_letters(&shared, crate::core::now_ms()) {
            tracing::warn!("Could not log the dead-letter sweep: {}", e);
        }
    }
}

/// Keys removed per lock hold by active expiry.
const EXPIRE_CHUNK: usize = 1000;
/// Time active expiry may take per 100 ms tick.
const EXPIRE_BUDGET: Duration = Duration::from_millis(25);

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().expect("a socket address literal")
    }

    #[test]
    fn mapped_ipv4_is_shown_and_judged_as_ipv4() {
        assert_eq!(
            canonical(addr("[::ffff:127.0.0.1]:5000")),
            addr("127.0.0.1:5000")
        );
        assert_eq!(
            canonical(addr("[::ffff:10.1.2.3]:5000")).to_string(),
            "10.1.2.3:5000"
        );
        // Plain IPv6 keeps Redis's bracketed form, without a scope id.
        assert_eq!(canonical(addr("[::1]:5000")).to_string(), "[::1]:5000");
        assert_eq!(
            canonical(addr("[fe80::1%2]:5000")).to_string(),
            "[fe80::1]:5000"
        );
        assert_eq!(canonical(addr("10.0.0.1:1")), addr("10.0.0.1:1"));
    }

    #[test]
    fn local_is_127_slash_8_and_ipv6_loopback_mapped_or_not() {
        for local in [
            "127.0.0.1:1",
            "127.9.8.7:1",
            "[::1]:1",
            "[::ffff:127.0.0.1]:1",
            "[::ffff:127.3.2.1]:1",
        ] {
            assert!(is_local(addr(local)), "{local}");
        }
        for remote in [
            "10.0.0.1:1",
            "[::ffff:10.0.0.1]:1",
            "[::2]:1",
            "[fe80::1]:1",
            "[::]:1",
            "0.0.0.0:1",
            // IPv4-compatible (not mapped) addresses are not IPv4 peers.
            "[::127.0.0.1]:1",
        ] {
            assert!(!is_local(addr(remote)), "{remote}");
        }
    }

    #[test]
    fn optional_addresses_may_be_missing_and_missing_families_never_stop_start_up() {
        let err = |code| AddrError {
            step: "bind",
            source: io::Error::from_raw_os_error(code),
        };
        assert!(err(libc::EADDRNOTAVAIL).tolerated(true));
        assert!(!err(libc::EADDRNOTAVAIL).tolerated(false));
        assert!(err(libc::EAFNOSUPPORT).tolerated(false));
        assert!(!err(libc::EADDRINUSE).tolerated(true));
        assert_eq!(
            err(libc::EADDRNOTAVAIL).to_string(),
            "bind: Cannot assign requested address"
        );
    }
}
