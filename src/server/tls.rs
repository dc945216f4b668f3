//! A TLS connection's session: rustls over the same non-blocking socket a plain connection
//! uses, driven by the socket's readiness, as Redis's `tls.c` drives OpenSSL from its event
//! loop.
//!
//! Why not tokio-rustls: the connection reads and writes through `&TcpStream` with
//! `readable()`/`writable()` and `try_read`/`try_write`, so that its `select!`s (kills,
//! Pub/Sub deliveries, blocked reads, timeouts) stay the same for both kinds of
//! connection, and the plain path keeps its cost. Here the TLS session sits between
//! those calls and the connection's buffers: ciphertext is read with `try_read` and
//! decrypted into the read buffer, replies are encrypted and written with `try_write`.
//!
//! A TLS connection writes its own replies: the group-commit committer (`handoff`) writes
//! replies straight to a socket, which would bypass the session, so a TLS connection waits
//! for its commit itself (`Log::wait_durable`, which joins the same group commit).

use std::io::{self, Read, Write};
use std::sync::Arc;

use bytes::{Buf, BytesMut};
use rustls::{ServerConfig, ServerConnection};
use tokio::net::TcpStream;

/// Plaintext handed to rustls per write: four full records, which its default buffer
/// limit (64 KiB) takes whole when nothing is pending, and `write_tls` sends in one `writev`.
const WRITE_CHUNK: usize = 64 * 1024;

/// Decrypted bytes one read returns at most, so the query-buffer limit is checked while a
/// large request streams in (the rest is read at the next call; readiness stays set).
const READ_LIMIT: usize = 256 * 1024;

/// Why a TLS handshake did not complete.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The peer's bytes are not a TLS handshake we accept (plain text, a certificate that
    /// does not verify, no common version or cipher suite ...).
    #[error("{0}")]
    Tls(#[from] rustls::Error),
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("connection closed during the TLS handshake")]
    Closed,
}

/// The socket as rustls's `Read`/`Write`: never waits (`WouldBlock` when not ready).
struct Socket<'a>(&'a TcpStream);

impl Read for Socket<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
    }
}

impl Write for Socket<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.0.try_write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// One accepted TLS connection's rustls state.
pub struct TlsSession {
    conn: ServerConnection,
    /// The peer closed (close_notify, or TCP EOF): reads return 0 once the decrypted
    /// bytes are taken.
    closed: bool,
}

impl TlsSession {
    pub fn new(config: Arc<ServerConfig>) -> Result<TlsSession, rustls::Error> {
        Ok(TlsSession {
            conn: ServerConnection::new(config)?,
            closed: false,
        })
    }

    /// Runs the handshake to its end. On a refused handshake the alert rustls queued (if
    /// the socket takes it) tells the client why, as OpenSSL's does.
    pub async fn handshake(&mut self, socket: &TcpStream) -> Result<(), HandshakeError> {
        loop {
            while self.conn.wants_write() {
                match self.conn.write_tls(&mut Socket(socket)) {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => socket.writable().await?,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e.into()),
                }
            }
            if !self.conn.is_handshaking() {
                return Ok(());
            }
            match self.conn.read_tls(&mut Socket(socket)) {
                Ok(0) => return Err(HandshakeError::Closed),
                Ok(_) => {
                    if let Err(e) = self.conn.process_new_packets() {
                        self.send_pending(socket);
                        return Err(e.into());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => socket.readable().await?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Whether the peer has closed and every byte it sent before has been taken.
    pub fn closed(&self) -> bool {
        self.closed
    }

    /// Reads and decrypts what the socket has now into `rbuf`, without waiting; returns
    /// how many plaintext bytes were appended (0 with nothing ready, or once [`closed`]).
    /// Whatever rustls must answer (alerts, key updates) is sent on the way if the socket
    /// takes it, else with the next reply.
    ///
    /// [`closed`]: TlsSession::closed
    pub fn read_ready(&mut self, socket: &TcpStream, rbuf: &mut BytesMut) -> io::Result<usize> {
        let mut got = self.take_plaintext(rbuf)?;
        while !self.closed && got < READ_LIMIT {
            match self.conn.read_tls(&mut Socket(socket)) {
                Ok(0) => {
                    // TCP EOF: what was decrypted before it is still taken below.
                    let _ = self.conn.process_new_packets();
                    got += self.take_plaintext(rbuf)?;
                    self.closed = true;
                }
                Ok(_) => {
                    if let Err(e) = self.conn.process_new_packets() {
                        self.send_pending(socket);
                        return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                    }
                    got += self.take_plaintext(rbuf)?;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.conn.wants_write() {
            self.send_pending(socket);
        }
        Ok(got)
    }

    /// Moves rustls's decrypted bytes into `rbuf` (one copy, from its buffer).
    fn take_plaintext(&mut self, rbuf: &mut BytesMut) -> io::Result<usize> {
        use std::io::BufRead;
        let mut got = 0;
        loop {
            let mut reader = self.conn.reader();
            let n = match reader.fill_buf() {
                Ok([]) => {
                    // close_notify: nothing follows.
                    self.closed = true;
                    return Ok(got);
                }
                Ok(chunk) => {
                    rbuf.extend_from_slice(chunk);
                    chunk.len()
                }
                Err(e) => {
                    return match e.kind() {
                        io::ErrorKind::WouldBlock => Ok(got),
                        io::ErrorKind::UnexpectedEof => {
                            self.closed = true;
                            Ok(got)
                        }
                        _ => Err(e),
                    };
                }
            };
            reader.consume(n);
            got += n;
        }
    }

    /// Encrypts and writes as much of `wbuf` as the socket accepts without waiting;
    /// returns how many plaintext bytes were taken from it. rustls holds at most one
    /// chunk's records beyond what the socket took, so `wbuf` keeps counting what the
    /// client has not taken for the output-buffer limits.
    pub fn write_ready(&mut self, socket: &TcpStream, wbuf: &mut BytesMut) -> io::Result<usize> {
        let mut taken = 0;
        loop {
            while self.conn.wants_write() {
                match self.conn.write_tls(&mut Socket(socket)) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(taken),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            if wbuf.is_empty() {
                return Ok(taken);
            }
            let chunk = wbuf.len().min(WRITE_CHUNK);
            let n = self.conn.writer().write(&wbuf[..chunk])?;
            if n == 0 {
                return Ok(taken);
            }
            wbuf.advance(n);
            taken += n;
        }
    }

    /// Whether encrypted bytes wait for the socket.
    pub fn wants_write(&self) -> bool {
        self.conn.wants_write()
    }

    /// Sends close_notify, if the socket takes it now (the connection is closing).
    pub fn close(&mut self, socket: &TcpStream) {
        self.conn.send_close_notify();
        self.send_pending(socket);
    }

    /// Writes what rustls has queued, as far as the socket takes it now.
    fn send_pending(&mut self, socket: &TcpStream) {
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut Socket(socket)) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }
}
