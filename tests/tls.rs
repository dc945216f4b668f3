//! TLS (`tls-port` and the `tls-*` directives) against a real listening server, with a
//! rustls client and certificates generated here (rcgen): never committed keys.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use common::{encode, free_port, TestServer};
use rcgen::ExtendedKeyUsagePurpose;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

/// A CA, a server certificate for 127.0.0.1/localhost, a client certificate from the same
/// CA and one from a CA the server does not know, as PEM files in a directory of their own.
struct Certs {
    dir: PathBuf,
}

impl Certs {
    fn generate() -> Certs {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("rill-tls-{}-{}", std::process::id(), n));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("cert dir");
        let ca = common::certs::ca("Rill test CA");
        let rogue = common::certs::ca("Unknown CA");
        std::fs::write(dir.join("ca.crt"), ca.0.pem()).expect("write");
        let names = ["localhost", "127.0.0.1"];
        let leaf = |name: &str, issuer, eku| {
            common::certs::leaf(&dir, name, &names, issuer, vec![eku]);
        };
        leaf("server", &ca, ExtendedKeyUsagePurpose::ServerAuth);
        leaf("rotated", &ca, ExtendedKeyUsagePurpose::ServerAuth);
        leaf("client", &ca, ExtendedKeyUsagePurpose::ClientAuth);
        leaf("rogue", &rogue, ExtendedKeyUsagePurpose::ClientAuth);
        Certs { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_string_lossy().into_owned()
    }

    /// The server's `--tls-*` arguments (without the port), CA included.
    fn server_args(&self) -> Vec<String> {
        vec![
            "--tls-cert-file".into(),
            self.path("server.crt"),
            "--tls-key-file".into(),
            self.path("server.key"),
            "--tls-ca-cert-file".into(),
            self.path("ca.crt"),
        ]
    }

    /// A client trusting the test CA, presenting `identity` ("client", "rogue") if given.
    fn client_config(&self, identity: Option<&str>) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(self.path("ca.crt")).expect("ca") {
            roots.add(c.expect("ca cert")).expect("add ca");
        }
        let builder = ClientConfig::builder().with_root_certificates(roots);
        let config = match identity {
            None => builder.with_no_client_auth(),
            Some(name) => {
                let chain = CertificateDer::pem_file_iter(self.path(&format!("{name}.crt")))
                    .expect("chain")
                    .collect::<Result<Vec<_>, _>>()
                    .expect("chain certs");
                let key =
                    PrivateKeyDer::from_pem_file(self.path(&format!("{name}.key"))).expect("key");
                builder
                    .with_client_auth_cert(chain, key)
                    .expect("client auth")
            }
        };
        Arc::new(config)
    }
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A server with a plain port (for the harness's readiness probe) and a TLS port, both
/// picked here, retried if a port was taken meanwhile.
fn start_tls(certs: &Certs, extra: &[&str]) -> (TestServer, u16) {
    for _ in 0..5 {
        // Both ports named: with a tls-port, `port 0` means no plain port (as in Redis),
        // not a free one.
        let port = free_port();
        let port_text = port.to_string();
        let plain_text = free_port().to_string();
        let mut args: Vec<&str> = vec!["--tls-port", &port_text, "--port", &plain_text];
        let server_args = certs.server_args();
        args.extend(server_args.iter().map(String::as_str));
        args.extend_from_slice(extra);
        if let Some(s) = TestServer::try_start_with(&args) {
            return (s, port);
        }
    }
    panic!("rill did not start with a TLS port");
}

/// A RESP connection over TLS.
struct TlsRaw {
    reader: BufReader<StreamOwned<ClientConnection, TcpStream>>,
}

impl TlsRaw {
    /// Connects and completes the handshake (as far as the client can tell: under TLS
    /// 1.3 a refused client certificate shows only at the first read).
    fn connect(port: u16, config: Arc<ClientConfig>) -> std::io::Result<TlsRaw> {
        let tcp = TcpStream::connect(("127.0.0.1", port))?;
        tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
        let name = ServerName::try_from("localhost").expect("name");
        let conn = ClientConnection::new(config, name).map_err(std::io::Error::other)?;
        let mut stream = StreamOwned::new(conn, tcp);
        while stream.conn.is_handshaking() {
            stream.conn.complete_io(&mut stream.sock)?;
        }
        Ok(TlsRaw {
            reader: BufReader::new(stream),
        })
    }

    fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let s = self.reader.get_mut();
        s.write_all(bytes)?;
        s.flush()
    }

    fn cmd(&mut self, args: &[&str]) -> std::io::Result<Vec<u8>> {
        self.send(&encode(args))?;
        self.read_reply()
    }

    fn read_reply(&mut self) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        read_one(&mut self.reader, &mut out)?;
        Ok(out)
    }
}

fn read_one(r: &mut impl BufRead, out: &mut Vec<u8>) -> std::io::Result<()> {
    let mut line = Vec::new();
    r.read_until(b'\n', &mut line)?;
    if !line.ends_with(b"\r\n") {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    out.extend_from_slice(&line);
    let text = String::from_utf8_lossy(&line[1..line.len() - 2]).to_string();
    let n: i64 = text.parse().unwrap_or(0);
    match line[0] {
        b'$' | b'=' | b'!' if n >= 0 => {
            let mut buf = vec![0u8; n as usize + 2];
            r.read_exact(&mut buf)?;
            out.extend_from_slice(&buf);
        }
        b'*' | b'~' | b'>' => {
            for _ in 0..n.max(0) {
                read_one(r, out)?;
            }
        }
        b'%' | b'|' => {
            for _ in 0..2 * n.max(0) {
                read_one(r, out)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// A PING over a fresh TLS connection: `Ok(PONG)` when the server serves the client.
fn tls_ping(port: u16, config: Arc<ClientConfig>) -> std::io::Result<Vec<u8>> {
    let mut c = TlsRaw::connect(port, config)?;
    c.cmd(&["PING"])
}

#[test]
fn commands_over_tls_and_plain_side_by_side() {
    let certs = Certs::generate();
    let (server, tls_port) = start_tls(&certs, &[]);
    let mut tls = TlsRaw::connect(tls_port, certs.client_config(Some("client"))).expect("tls");
    assert_eq!(tls.cmd(&["PING"]).expect("ping"), b"+PONG\r\n");
    let id = tls
        .cmd(&["XADD", "s", "1-1", "f", "over-tls"])
        .expect("xadd");
    assert_eq!(id, b"$3\r\n1-1\r\n");
    // The plain port sees what came over TLS, and the other way round.
    let mut plain = server.raw();
    assert_eq!(
        plain.cmd(&["XRANGE", "s", "-", "+"]),
        b"*1\r\n*2\r\n$3\r\n1-1\r\n*2\r\n$1\r\nf\r\n$8\r\nover-tls\r\n"
    );
    plain.cmd(&["XADD", "s", "2-1", "f", "plain"]);
    assert_eq!(tls.cmd(&["XLEN", "s"]).expect("xlen"), b":2\r\n");
    // Pipelined requests over TLS: every reply, in order.
    let mut batch = Vec::new();
    for i in 0..100 {
        batch.extend_from_slice(&encode(&["XADD", "p", "*", "i", &i.to_string()]));
    }
    tls.send(&batch).expect("pipeline");
    for _ in 0..100 {
        let r = tls.read_reply().expect("reply");
        assert!(r.starts_with(b"$"), "{}", String::from_utf8_lossy(&r));
    }
    assert_eq!(tls.cmd(&["XLEN", "p"]).expect("xlen"), b":100\r\n");
    // CONFIG GET shows the directives; INFO's tcp_port stays the plain port.
    let got = tls.cmd(&["CONFIG", "GET", "tls-port"]).expect("config get");
    let want = format!(
        "*2\r\n$8\r\ntls-port\r\n${}\r\n{}\r\n",
        tls_port.to_string().len(),
        tls_port
    );
    assert_eq!(String::from_utf8_lossy(&got), want);
    let info = String::from_utf8_lossy(&plain.cmd(&["INFO", "server"])).to_string();
    assert!(
        info.contains(&format!("tcp_port:{}\r\n", server.port)),
        "{info}"
    );
    let clients = String::from_utf8_lossy(&plain.cmd(&["INFO", "clients"])).to_string();
    assert!(clients.contains("connected_clients:2\r\n"), "{clients}");
}

#[test]
fn client_certificates_required_by_default() {
    let certs = Certs::generate();
    let (_server, port) = start_tls(&certs, &[]);
    assert_eq!(
        tls_ping(port, certs.client_config(Some("client"))).expect("ping"),
        b"+PONG\r\n"
    );
    // No certificate, or one from a CA the server does not trust: refused.
    assert!(tls_ping(port, certs.client_config(None)).is_err());
    assert!(tls_ping(port, certs.client_config(Some("rogue"))).is_err());
}

#[test]
fn client_certificates_optional_and_no() {
    let certs = Certs::generate();
    let (server, port) = start_tls(&certs, &["--tls-auth-clients", "optional"]);
    assert_eq!(
        tls_ping(port, certs.client_config(None)).expect("no cert"),
        b"+PONG\r\n"
    );
    assert_eq!(
        tls_ping(port, certs.client_config(Some("client"))).expect("cert"),
        b"+PONG\r\n"
    );
    // A certificate that is sent must verify.
    assert!(tls_ping(port, certs.client_config(Some("rogue"))).is_err());

    // CONFIG SET tls-auth-clients applies to the next connection.
    let mut admin = server.raw();
    assert_eq!(
        admin.cmd(&["CONFIG", "SET", "tls-auth-clients", "yes"]),
        b"+OK\r\n"
    );
    assert!(tls_ping(port, certs.client_config(None)).is_err());
    assert_eq!(
        admin.cmd(&["CONFIG", "SET", "tls-auth-clients", "no"]),
        b"+OK\r\n"
    );
    assert_eq!(
        tls_ping(port, certs.client_config(Some("rogue"))).expect("not asked"),
        b"+PONG\r\n"
    );
    drop(server);

    // tls-auth-clients no needs no CA certificates.
    for _ in 0..5 {
        let port = free_port();
        let args = [
            "--port".to_string(),
            free_port().to_string(),
            "--tls-port".to_string(),
            port.to_string(),
            "--tls-cert-file".into(),
            certs.path("server.crt"),
            "--tls-key-file".into(),
            certs.path("server.key"),
            "--tls-auth-clients".into(),
            "no".into(),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        if let Some(_s) = TestServer::try_start_with(&args) {
            assert_eq!(
                tls_ping(port, certs.client_config(None)).expect("no CA"),
                b"+PONG\r\n"
            );
            return;
        }
    }
    panic!("rill did not start with tls-auth-clients no");
}

#[test]
fn plain_text_and_bad_handshakes_on_the_tls_port_disturb_no_one() {
    let certs = Certs::generate();
    let (server, port) = start_tls(&certs, &[]);
    let config = certs.client_config(Some("client"));
    let mut tls = TlsRaw::connect(port, config.clone()).expect("tls");
    assert_eq!(tls.cmd(&["PING"]).expect("ping"), b"+PONG\r\n");
    let mut plain = server.raw();

    // Plain RESP on the TLS port: closed, after at most a TLS alert, never a reply.
    let mut wrong = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    wrong
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    wrong.write_all(b"PING\r\n").expect("write");
    let mut got = Vec::new();
    let _ = wrong.read_to_end(&mut got);
    assert!(
        !got.windows(4).any(|w| w == b"PONG"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    // A handshake cut off half-way, and garbage.
    let mut cut = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    cut.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .expect("write");
    drop(cut);
    let mut garbage = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    garbage
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    garbage.write_all(&[0xff; 4096]).expect("write");
    let _ = garbage.read_to_end(&mut Vec::new());

    // Everyone else is still served, on both ports.
    assert_eq!(tls.cmd(&["PING"]).expect("ping"), b"+PONG\r\n");
    assert_eq!(plain.cmd(&["PING"]), b"+PONG\r\n");
    assert_eq!(tls_ping(port, config).expect("new tls"), b"+PONG\r\n");
    // Refused handshakes leave no client behind.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let clients = String::from_utf8_lossy(&plain.cmd(&["INFO", "clients"])).to_string();
        if clients.contains("connected_clients:2\r\n") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{clients}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_handshake_never_started_is_bounded_by_timeout() {
    let certs = Certs::generate();
    let (server, port) = start_tls(&certs, &["--timeout", "1"]);
    let mut silent = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    silent
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let started = std::time::Instant::now();
    // Closed by the server (as an idle client is), not by our read timeout.
    assert_eq!(
        silent.read(&mut [0u8; 16]).expect("closed, not timed out"),
        0
    );
    assert!(started.elapsed() < Duration::from_secs(8));
    let mut plain = server.raw();
    let clients = String::from_utf8_lossy(&plain.cmd(&["INFO", "clients"])).to_string();
    assert!(clients.contains("connected_clients:1\r\n"), "{clients}");
}

#[test]
fn blocking_xread_over_tls() {
    let certs = Certs::generate();
    let (server, port) = start_tls(&certs, &[]);
    let mut reader = TlsRaw::connect(port, certs.client_config(Some("client"))).expect("tls");
    reader
        .send(&encode(&["XREAD", "BLOCK", "0", "STREAMS", "s", "$"]))
        .expect("xread");
    server.wait_blocked(1);
    let mut writer = TlsRaw::connect(port, certs.client_config(Some("client"))).expect("tls");
    writer.cmd(&["XADD", "s", "5-1", "k", "v"]).expect("xadd");
    assert_eq!(
        reader.read_reply().expect("woken"),
        b"*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n5-1\r\n*2\r\n$1\r\nk\r\n$1\r\nv\r\n"
    );
}

#[test]
fn large_requests_and_replies_over_tls() {
    let certs = Certs::generate();
    let (_server, port) = start_tls(&certs, &[]);
    let mut c = TlsRaw::connect(port, certs.client_config(Some("client"))).expect("tls");
    // Requests of 1 MB each (many records per request), then a reply of ~8 MB, far past
    // any socket buffer, read back whole.
    let value = "x".repeat(1 << 20);
    for i in 1..=8 {
        let id = format!("{i}-0");
        assert_eq!(
            c.cmd(&["XADD", "big", &id, "v", &value]).expect("xadd"),
            format!("${}\r\n{}\r\n", id.len(), id).as_bytes()
        );
    }
    let reply = c.cmd(&["XRANGE", "big", "-", "+"]).expect("xrange");
    assert!(reply.len() > 8 << 20, "{}", reply.len());
    assert!(reply.starts_with(b"*8\r\n"));
    assert_eq!(c.cmd(&["PING"]).expect("ping"), b"+PONG\r\n");
    // A pipeline whose replies fill the socket buffers while the client does not read:
    // every reply arrives once it does, the records the server's TLS session held included.
    let mut batch = Vec::new();
    for i in 1..=8 {
        let id = format!("{i}-0");
        batch.extend_from_slice(&encode(&["XRANGE", "big", &id, &id]));
    }
    batch.extend_from_slice(&encode(&["PING"]));
    c.send(&batch).expect("pipeline");
    std::thread::sleep(Duration::from_millis(500));
    for _ in 1..=8 {
        let r = c.read_reply().expect("xrange reply");
        assert!(r.len() > 1 << 20, "{}", r.len());
    }
    assert_eq!(c.read_reply().expect("ping"), b"+PONG\r\n");
}

#[test]
fn tls_protocols_and_ciphersuites() {
    let certs = Certs::generate();
    let (_server, port) = start_tls(
        &certs,
        &["--tls-protocols", "TLSv1.2", "--tls-auth-clients", "no"],
    );
    let only = |v: &'static rustls::SupportedProtocolVersion| {
        let mut roots = RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(certs.path("ca.crt")).expect("ca") {
            roots.add(c.expect("ca cert")).expect("add");
        }
        Arc::new(
            ClientConfig::builder_with_protocol_versions(&[v])
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    };
    assert_eq!(
        tls_ping(port, only(&rustls::version::TLS12)).expect("TLS 1.2"),
        b"+PONG\r\n"
    );
    assert!(tls_ping(port, only(&rustls::version::TLS13)).is_err());
}

#[test]
fn only_the_tls_port_with_port_0() {
    let certs = Certs::generate();
    for _ in 0..5 {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("rill-tls-only-{}-{}", std::process::id(), port));
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_rill"));
        cmd.args([
            "--port",
            "0",
            "--bind",
            "127.0.0.1",
            "--tls-port",
            &port.to_string(),
        ])
        .args(certs.server_args())
        .arg("--dir")
        .arg(&dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
        let mut child = cmd.spawn().expect("spawn");
        // The banner names the TLS port when there is no plain one, as Redis's does.
        let announced = common::banner_port(&mut child, Duration::from_secs(30));
        if announced != Some(port) {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_dir_all(&dir);
            continue;
        }
        let config = certs.client_config(Some("client"));
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let mut c = loop {
            if let Ok(mut c) = TlsRaw::connect(port, config.clone()) {
                if c.cmd(&["PING"]).ok().as_deref() == Some(b"+PONG\r\n") {
                    break c;
                }
            }
            assert!(std::time::Instant::now() < deadline, "no PONG over TLS");
            std::thread::sleep(Duration::from_millis(50));
        };
        let info = String::from_utf8_lossy(&c.cmd(&["INFO", "server"]).expect("info")).to_string();
        assert!(info.contains(&format!("tcp_port:{port}\r\n")), "{info}");
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    panic!("rill did not start on a TLS port alone");
}

#[test]
fn tls_configuration_errors() {
    let certs = Certs::generate();
    // Start-up: a missing certificate stops the server with Redis's lines.
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("rill-tls-bad-{}-{}", std::process::id(), port));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rill"))
        .args(["--port", "0", "--tls-port", &port.to_string()])
        .args(["--tls-cert-file", "/nonexistent/server.crt"])
        .args(["--tls-key-file", &certs.path("server.key")])
        .args(["--tls-ca-cert-file", &certs.path("ca.crt")])
        .arg("--dir")
        .arg(&dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("run");
    let _ = std::fs::remove_dir_all(&dir);
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        text.contains(
            "Failed to load certificate: /nonexistent/server.crt: No such file or directory"
        ),
        "{text}"
    );
    assert!(
        text.contains("Failed to configure TLS. Check logs for more info."),
        "{text}"
    );

    // CONFIG SET: a certificate that does not load is refused and the old one kept;
    // tls-port cannot change at run time.
    let (server, port) = start_tls(&certs, &[]);
    let mut admin = server.raw();
    assert_eq!(
        String::from_utf8_lossy(&admin.cmd(&["CONFIG", "SET", "tls-cert-file", "/nonexistent/x.crt"])),
        "-ERR CONFIG SET failed (possibly related to argument 'tls-cert-file') - Unable to update TLS configuration. Check server logs.\r\n"
    );
    assert_eq!(
        admin.cmd(&["CONFIG", "GET", "tls-cert-file"]),
        format!(
            "*2\r\n$13\r\ntls-cert-file\r\n${}\r\n{}\r\n",
            certs.path("server.crt").len(),
            certs.path("server.crt")
        )
        .as_bytes()
    );
    assert_eq!(
        String::from_utf8_lossy(&admin.cmd(&["CONFIG", "SET", "tls-port", "1"])),
        "-ERR CONFIG SET failed (possibly related to argument 'tls-port') - can't set immutable config\r\n"
    );
    // Rotation: new connections get the new certificate, an open one keeps its session.
    let mut open = TlsRaw::connect(port, certs.client_config(Some("client"))).expect("tls");
    assert_eq!(
        admin.cmd(&[
            "CONFIG",
            "SET",
            "tls-cert-file",
            &certs.path("rotated.crt"),
            "tls-key-file",
            &certs.path("rotated.key")
        ]),
        b"+OK\r\n"
    );
    let fresh = TlsRaw::connect(port, certs.client_config(Some("client"))).expect("tls");
    let served = fresh
        .reader
        .get_ref()
        .conn
        .peer_certificates()
        .and_then(|chain| chain.first().cloned())
        .expect("server certificate");
    let rotated = CertificateDer::pem_file_iter(certs.path("rotated.crt"))
        .expect("rotated")
        .next()
        .expect("one certificate")
        .expect("parses");
    assert_eq!(served, rotated);
    assert_eq!(open.cmd(&["PING"]).expect("ping"), b"+PONG\r\n");
    // A certificate whose key is not tls-key-file's is refused; both together are not.
    assert!(admin
        .cmd(&["CONFIG", "SET", "tls-cert-file", &certs.path("server.crt")])
        .starts_with(b"-ERR CONFIG SET failed"));
    assert_eq!(
        admin.cmd(&[
            "CONFIG",
            "SET",
            "tls-cert-file",
            &certs.path("server.crt"),
            "tls-key-file",
            &certs.path("server.key")
        ]),
        b"+OK\r\n"
    );
    assert_eq!(
        tls_ping(port, certs.client_config(Some("client"))).expect("ping"),
        b"+PONG\r\n"
    );
}
