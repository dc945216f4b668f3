//! Readiness for a supervisor (`supervised systemd|auto`): systemd's `sd_notify` protocol,
//! one datagram of `KEY=value` lines to the Unix socket named by `$NOTIFY_SOCKET` (a path,
//! or an abstract name written with a leading `@`). Redis sends `READY=1` once it loaded
//! its data and accepts connections, and `STOPPING=1` when it begins to shut down; so does
//! Rill, so a `Type=notify` unit (`packaging/rill.service`) starts dependants only once
//! the server answers. Thirty lines do not warrant the `sd-notify` crate.

use std::os::unix::net::UnixDatagram;

use crate::config::Supervised;

/// Sends `state` (e.g. `READY=1\nSTATUS=…`) to the supervisor, if `supervised` asks for
/// it and one listens; failures are logged, never fatal (as Redis).
pub fn notify(supervised: Supervised, state: &str) {
    let socket = std::env::var_os("NOTIFY_SOCKET");
    let wanted = match supervised {
        Supervised::Systemd => true,
        Supervised::Auto => socket.is_some(),
        Supervised::No | Supervised::Upstart => false,
    };
    if !wanted {
        return;
    }
    let Some(path) = socket else {
        tracing::warn!("supervised systemd: NOTIFY_SOCKET is not set; cannot notify systemd");
        return;
    };
    if let Err(e) = send(&path.to_string_lossy(), state) {
        tracing::warn!(
            "Can't notify systemd through {}: {}",
            path.to_string_lossy(),
            e
        );
    }
}

fn send(path: &str, state: &str) -> std::io::Result<()> {
    let socket = UnixDatagram::unbound()?;
    if let Some(name) = path.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
        socket.send_to_addr(state.as_bytes(), &addr)?;
    } else {
        socket.send_to(state.as_bytes(), path)?;
    }
    Ok(())
}
