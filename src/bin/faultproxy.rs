//! `rill-faultproxy`: a TCP proxy per directed link that a test switches between pass,
//! drop, blackhole and delay — the network faults of the replication tests (issue #14,
//! design `scale-out.md` §4.2). Kernel tools are not available here (no netem, no
//! iptables, no nft inside `unshare -rn`), so the faults are made in user space: each
//! node's view of a peer's address is this proxy's listener, which forwards to the peer.
//! A Raft link is one TCP connection per direction (A dials B for A→B traffic), so one
//! proxy link per direction models one-way partitions exactly.
//!
//! ```text
//! rill-faultproxy --control 127.0.0.1:9000 \
//!     --link a2b=127.0.200.1:17000=127.0.0.2:17000 --link b2a=127.0.200.2:17000=127.0.0.1:17000
//! ```
//!
//! The control port takes one command per line and answers one line (`LIST` several, then
//! `END`); an unknown command or link gets a line starting with `ERR`:
//!
//! | command | effect |
//! |---|---|
//! | `SET <link> pass` | bytes forwarded both ways as they come |
//! | `SET <link> delay <ms>` | each chunk forwarded `ms` after it was read, both ways, in order |
//! | `SET <link> blackhole` | connections stay open; nothing is read or forwarded, so the bytes wait in the kernel's buffers and a sender's writes block once they are full (peers see only timeouts); switched back, what was held flows on, in order |
//! | `SET <link> drop` | open connections are reset (RST), new ones accepted and reset at once |
//! | `GET <link>` | the link's mode (`pass`, `delay 20`, …) |
//! | `LIST` | `<link> <mode> <open connections> <bytes forwarded>` per link |
//!
//! A blackhole *holds* bytes rather than discarding them: a real route that loses every packet
//! never makes a hole in a TCP stream — TCP retransmits, and once the route heals the stream
//! goes on where it stopped (or the connection dies). Discarding bytes mid-stream and then
//! forwarding again would hand the receiver a stream with a hole, which no network produces: a
//! Raft link then read a length out of the middle of a message and waited for megabytes that
//! never came (soak seed 5001, cycle 71).
//!
//! It prints `ready control=ADDR` on stdout once every listener is bound. Test-only code:
//! no TLS, no auth; it is meant for loopback addresses in a test's own namespace.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// Chunks a delayed direction may hold before its reader waits (bounds memory).
const DELAY_QUEUE: usize = 1024;

#[derive(Parser, Debug)]
#[command(
    name = "rill-faultproxy",
    about = "A TCP proxy per directed link, switched between pass, drop, blackhole and delay"
)]
struct Args {
    /// Address of the control port (one command per line).
    #[arg(long)]
    control: SocketAddr,
    /// A link as NAME=LISTEN=TARGET (e.g. a2b=127.0.200.1:17000=127.0.0.2:17000).
    #[arg(long = "link", required = true, value_parser = parse_link)]
    links: Vec<(String, SocketAddr, SocketAddr)>,
}

fn parse_link(s: &str) -> Result<(String, SocketAddr, SocketAddr), String> {
    let mut parts = s.splitn(3, '=');
    let (Some(name), Some(listen), Some(target)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(format!("'{s}' is not NAME=LISTEN=TARGET"));
    };
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(format!("bad link name '{name}'"));
    }
    let listen = listen
        .parse()
        .map_err(|e| format!("listen address '{listen}': {e}"))?;
    let target = target
        .parse()
        .map_err(|e| format!("target address '{target}': {e}"))?;
    Ok((name.to_string(), listen, target))
}

/// What a link does to its traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Pass,
    Delay(Duration),
    Blackhole,
    Drop,
}

impl Mode {
    fn parse(words: &[&str]) -> Option<Mode> {
        match words {
            ["pass"] => Some(Mode::Pass),
            ["blackhole"] => Some(Mode::Blackhole),
            ["drop"] => Some(Mode::Drop),
            ["delay", ms] => ms
                .parse()
                .ok()
                .map(|ms| Mode::Delay(Duration::from_millis(ms))),
            _ => None,
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mode::Pass => f.write_str("pass"),
            Mode::Delay(d) => write!(f, "delay {}", d.as_millis()),
            Mode::Blackhole => f.write_str("blackhole"),
            Mode::Drop => f.write_str("drop"),
        }
    }
}

struct Link {
    target: SocketAddr,
    mode: watch::Sender<Mode>,
    open: AtomicU64,
    forwarded: AtomicU64,
}

type Links = Arc<BTreeMap<String, Arc<Link>>>;

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("rill-faultproxy: can't start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rill-faultproxy: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> std::io::Result<()> {
    let mut links = BTreeMap::new();
    let mut listeners = Vec::new();
    for (name, listen, target) in args.links {
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|e| std::io::Error::new(e.kind(), format!("bind {listen}: {e}")))?;
        let link = Arc::new(Link {
            target,
            mode: watch::channel(Mode::Pass).0,
            open: AtomicU64::new(0),
            forwarded: AtomicU64::new(0),
        });
        listeners.push((listener, link.clone()));
        if links.insert(name.clone(), link).is_some() {
            return Err(std::io::Error::other(format!("link '{name}' given twice")));
        }
    }
    let links: Links = Arc::new(links);
    let control = TcpListener::bind(args.control)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("bind {}: {e}", args.control)))?;
    for (listener, link) in listeners {
        tokio::spawn(accept_loop(listener, link));
    }
    println!("ready control={}", control.local_addr()?);
    loop {
        let (socket, _) = control.accept().await?;
        tokio::spawn(serve_control(socket, links.clone()));
    }
}

/// One control connection: a command per line, an answer per line.
async fn serve_control(socket: TcpStream, links: Links) {
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let answer = command(&links, &line);
        if write.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
    }
}

fn command(links: &Links, line: &str) -> String {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        ["SET", name, mode @ ..] => match (links.get(*name), Mode::parse(mode)) {
            (Some(link), Some(mode)) => {
                link.mode.send_replace(mode);
                "OK\n".into()
            }
            (None, _) => format!("ERR no link '{name}'\n"),
            (_, None) => "ERR mode is pass, drop, blackhole or delay <ms>\n".into(),
        },
        ["GET", name] => match links.get(*name) {
            Some(link) => format!("{}\n", *link.mode.borrow()),
            None => format!("ERR no link '{name}'\n"),
        },
        ["LIST"] => {
            let mut out = String::new();
            for (name, link) in links.iter() {
                out.push_str(&format!(
                    "{name} {} {} {}\n",
                    *link.mode.borrow(),
                    link.open.load(Ordering::Relaxed),
                    link.forwarded.load(Ordering::Relaxed)
                ));
            }
            out.push_str("END\n");
            out
        }
        _ => "ERR commands: SET <link> <mode>, GET <link>, LIST\n".into(),
    }
}

async fn accept_loop(listener: TcpListener, link: Arc<Link>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        if *link.mode.borrow() == Mode::Drop {
            reset(&client);
            continue;
        }
        tokio::spawn(proxy(client, link.clone()));
    }
}

/// Closes `socket` with a reset instead of a FIN.
fn reset(socket: &TcpStream) {
    let _ = socket2::SockRef::from(socket).set_linger(Some(Duration::ZERO));
}

async fn proxy(client: TcpStream, link: Arc<Link>) {
    let _ = client.set_nodelay(true);
    let server = match TcpStream::connect(link.target).await {
        Ok(s) => s,
        // The peer is down: the client sees what it would see connecting to it directly.
        Err(_) => {
            reset(&client);
            return;
        }
    };
    let _ = server.set_nodelay(true);
    link.open.fetch_add(1, Ordering::Relaxed);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let up = tokio::spawn(pump(client_read, server_write, link.clone()));
    let down = tokio::spawn(pump(server_read, client_write, link.clone()));
    let (up, down) = (up.await, down.await);
    // A drop resets both sockets: each pump sets it on the write half it owns, and the
    // halves close when the pumps end.
    let _ = (up, down);
    link.open.fetch_sub(1, Ordering::Relaxed);
}

/// One direction of one connection.
async fn pump(mut from: OwnedReadHalf, to: OwnedWriteHalf, link: Arc<Link>) {
    let mut modes = link.mode.subscribe();
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>(DELAY_QUEUE);
    let writer = tokio::spawn(write_side(rx, to, link.clone()));
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        // A blackhole reads nothing until the mode changes: the bytes wait in the kernel.
        let mode = *modes.borrow_and_update();
        match mode {
            Mode::Drop => break,
            Mode::Blackhole => {
                if modes.changed().await.is_err() {
                    break;
                }
                continue;
            }
            Mode::Pass | Mode::Delay(_) => {}
        }
        tokio::select! {
            r = from.read(&mut buf) => {
                let n = match r {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                if *modes.borrow() == Mode::Drop {
                    break;
                }
                // Read just as a blackhole began: queued, and the writer holds it.
                if tx.send((Instant::now(), buf[..n].to_vec())).await.is_err() {
                    break;
                }
            }
            changed = modes.changed() => {
                if changed.is_err() || *modes.borrow_and_update() == Mode::Drop {
                    break;
                }
            }
        }
    }
    if *link.mode.borrow() == Mode::Drop {
        reset(from.as_ref());
    }
    drop(tx);
    let _ = writer.await;
}

/// Writes what the reading side queued, each chunk after the link's delay (if any).
async fn write_side(
    mut rx: mpsc::Receiver<(Instant, Vec<u8>)>,
    mut to: OwnedWriteHalf,
    link: Arc<Link>,
) {
    let mut modes = link.mode.subscribe();
    while let Some((read_at, chunk)) = rx.recv().await {
        // A blackhole holds the chunk until the mode changes.
        loop {
            let mode = *modes.borrow_and_update();
            if mode != Mode::Blackhole {
                break;
            }
            if modes.changed().await.is_err() {
                return;
            }
        }
        let mode = *modes.borrow();
        match mode {
            Mode::Drop => {
                reset(to.as_ref());
                return;
            }
            Mode::Blackhole => continue,
            Mode::Delay(d) => tokio::time::sleep_until(read_at + d).await,
            Mode::Pass => {}
        }
        if to.write_all(&chunk).await.is_err() {
            return;
        }
        link.forwarded
            .fetch_add(chunk.len() as u64, Ordering::Relaxed);
    }
    if *link.mode.borrow() == Mode::Drop {
        reset(to.as_ref());
    } else {
        let _ = to.shutdown().await;
    }
}
