//! `rill-faultproxy` (the network faults of issue #14's replication tests) between a client
//! and a real `rill` server: each mode does to live traffic what it says — pass forwards,
//! delay holds every chunk for its milliseconds, blackhole holds everything while the
//! connection stays open (and lets it flow on, intact, once healed), drop resets open connections and refuses new ones — and a link
//! switched back to pass carries new connections again.

mod common;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, TestServer};

struct Proxy {
    child: Child,
    control: BufReader<TcpStream>,
    listen: u16,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proxy {
    fn start(target: u16) -> Proxy {
        let listen = free_port();
        let control = free_port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_rill-faultproxy"))
            .args([
                "--control",
                &format!("127.0.0.1:{control}"),
                "--link",
                &format!("c2s=127.0.0.1:{listen}=127.0.0.1:{target}"),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn rill-faultproxy");
        let mut banner = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut banner)
            .expect("banner");
        assert!(banner.starts_with("ready control="), "{banner}");
        let stream = TcpStream::connect(("127.0.0.1", control)).expect("control");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        Proxy {
            child,
            control: BufReader::new(stream),
            listen,
        }
    }

    fn control(&mut self, line: &str) -> String {
        self.control
            .get_mut()
            .write_all(format!("{line}\n").as_bytes())
            .expect("control write");
        let mut answer = String::new();
        self.control.read_line(&mut answer).expect("control read");
        answer.trim_end().to_string()
    }

    /// `LIST`'s lines, without the closing `END`.
    fn list(&mut self) -> Vec<String> {
        let mut lines = vec![self.control("LIST")];
        while lines.last().map(String::as_str) != Some("END") {
            let mut line = String::new();
            self.control.read_line(&mut line).expect("control read");
            lines.push(line.trim_end().to_string());
        }
        lines.pop();
        lines
    }

    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(("127.0.0.1", self.listen)).expect("connect through proxy");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        s
    }
}

/// Sends PING and returns the reply's first bytes and how long it took.
fn ping(s: &mut TcpStream) -> std::io::Result<(Vec<u8>, Duration)> {
    let start = Instant::now();
    s.write_all(b"PING\r\n")?;
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf)?;
    Ok((buf.to_vec(), start.elapsed()))
}

#[test]
fn each_mode_does_what_it_says_to_live_traffic() {
    let server = TestServer::start();
    let mut proxy = Proxy::start(server.port);

    // pass
    let mut a = proxy.connect();
    let (reply, _) = ping(&mut a).expect("ping through pass");
    assert_eq!(reply, b"+PONG\r\n");

    // delay: each direction holds its chunk 150 ms, so a round trip takes >= 300 ms.
    assert_eq!(proxy.control("SET c2s delay 150"), "OK");
    assert_eq!(proxy.control("GET c2s"), "delay 150");
    let (reply, took) = ping(&mut a).expect("ping through delay");
    assert_eq!(reply, b"+PONG\r\n");
    assert!(took >= Duration::from_millis(300), "round trip {took:?}");

    // blackhole: the connection stays open, nothing comes back; the server never saw it.
    assert_eq!(proxy.control("SET c2s blackhole"), "OK");
    a.set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    a.write_all(b"SET swallowed 1\r\n").expect("write");
    let mut buf = [0u8; 16];
    match a.read(&mut buf) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!("blackhole answered: {other:?}"),
    }
    let mut direct = server.raw();
    assert_eq!(direct.cmd(&["EXISTS", "swallowed"]), b":0\r\n");

    // Healed, a blackhole's connection carries on where it stopped, with nothing lost
    // (a stream never has a hole, as TCP over a healed route): the held command runs and
    // its reply arrives, then the next.
    assert_eq!(proxy.control("SET c2s pass"), "OK");
    a.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut held = [0u8; 5];
    a.read_exact(&mut held).expect("the held command's reply");
    assert_eq!(&held, b"+OK\r\n");
    assert_eq!(direct.cmd(&["EXISTS", "swallowed"]), b":1\r\n");
    let (reply, _) = ping(&mut a).expect("ping after the blackhole healed");
    assert_eq!(reply, b"+PONG\r\n");

    // drop: the open connection is reset, a new one is refused (reset at once).
    assert_eq!(proxy.control("SET c2s drop"), "OK");
    a.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut rest = Vec::new();
    let ended = a.read_to_end(&mut rest);
    assert!(
        matches!(&ended, Err(e) if e.kind() == ErrorKind::ConnectionReset) || rest.is_empty(),
        "open connection after drop: {ended:?} {rest:?}"
    );
    let mut b = proxy.connect();
    assert!(
        ping(&mut b).is_err(),
        "a connection through a dropped link answered"
    );

    // pass again: new connections work, and the counters saw the traffic.
    assert_eq!(proxy.control("SET c2s pass"), "OK");
    let mut c = proxy.connect();
    let (reply, took) = ping(&mut c).expect("ping after pass");
    assert_eq!(reply, b"+PONG\r\n");
    assert!(took < Duration::from_millis(300), "still delayed: {took:?}");
    let list = proxy.list();
    assert_eq!(list.len(), 1, "{list:?}");
    assert!(list[0].starts_with("c2s pass 1 "), "{list:?}");
    assert!(proxy.control("SET nope pass").starts_with("ERR"));
    assert!(proxy.control("SET c2s sideways").starts_with("ERR"));
}
