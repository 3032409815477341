//! The TLS layer of [`Connection`](super::Connection): a rustls session driven
//! over the connection's non-blocking socket.
//!
//! [`TlsLayer`] turns socket bytes into plaintext and back, and reports, in the
//! connection's own terms, when the socket would block: the connection keeps
//! its framing, buffers, budgets and write-interest rules unchanged on top of
//! it. Rules it keeps:
//!
//! - Plaintext already decrypted is handed out before the socket is read again
//!   (rustls refuses to read while its plaintext buffer is full), so "the
//!   socket would block" is only reported when rustls holds nothing either.
//! - Application data is given to rustls only once the handshake is done;
//!   until then it waits in the connection's queue, which keeps rustls's own
//!   buffers small and the back-pressure signal ([`Connection::queued`]) true.
//! - Encrypted records wait in rustls (at most its 64 KiB buffer limit plus one
//!   record) until the socket takes them: the connection counts them as
//!   pending output, so write interest stays armed for them.
//!
//! It knows no DC protocol, and no certificate policy: the keyprint check is
//! made by the session's verifier (`crate::tls`); this layer only reports its
//! decision.
//!
//! [`Connection::queued`]: super::Connection::queued

use std::io::{self, Read, Write};

use mio::net::TcpStream;

use super::error::ConnError;
use crate::tls::{Keyprint, TlsInfo, TlsSession, Verdict};

/// What one read from the transport gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ReadOutcome {
    /// Bytes were copied.
    Data(usize),
    /// The peer ended the stream (close_notify, or a TCP EOF).
    Eof,
    /// Nothing now: the socket is drained (and rustls holds no plaintext).
    WouldBlock,
}

/// A rustls session over a connection's socket; see the module docs.
#[derive(Debug)]
pub(super) struct TlsLayer {
    session: TlsSession,
    /// Decrypted bytes held by rustls, not yet handed out.
    plaintext: usize,
    close_sent: bool,
    close_notify_received: bool,
}

impl TlsLayer {
    pub(super) fn new(session: TlsSession) -> TlsLayer {
        TlsLayer { session, plaintext: 0, close_sent: false, close_notify_received: false }
    }

    /// Whether the handshake is still going on.
    pub(super) fn is_handshaking(&self) -> bool {
        self.session.conn.is_handshaking()
    }

    /// Whether rustls holds encrypted records for the socket.
    pub(super) fn wants_write(&self) -> bool {
        self.session.conn.wants_write()
    }

    /// Whether rustls holds decrypted bytes not handed out yet.
    pub(super) fn has_plaintext(&self) -> bool {
        self.plaintext > 0
    }

    /// Reads plaintext into `dst`, reading and decrypting records from the
    /// socket as needed.
    pub(super) fn read(
        &mut self,
        sock: &mut TcpStream,
        dst: &mut [u8],
    ) -> Result<ReadOutcome, ConnError> {
        if dst.is_empty() {
            return Ok(ReadOutcome::Data(0));
        }
        loop {
            match self.session.conn.reader().read(dst) {
                Ok(0) => {
                    self.close_notify_received = true;
                    self.plaintext = 0;
                    return Ok(ReadOutcome::Eof);
                }
                Ok(n) => {
                    self.plaintext = self.plaintext.saturating_sub(n);
                    return Ok(ReadOutcome::Data(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.plaintext = 0,
                // A TCP EOF without close_notify. DC software often ends
                // sessions that way; the DC protocols frame their data
                // themselves, so a truncation is seen there.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(ReadOutcome::Eof),
                Err(e) => return Err(ConnError::Io { op: "reading", source: e }),
            }
            if !self.read_records(sock)? {
                return Ok(ReadOutcome::WouldBlock);
            }
        }
    }

    /// Advances the handshake with what the socket has. Returns whether the
    /// socket was drained (it would block) before the handshake finished.
    pub(super) fn pump_handshake(&mut self, sock: &mut TcpStream) -> Result<bool, ConnError> {
        while self.is_handshaking() {
            if !self.read_records(sock)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// One `read_tls` + `process_new_packets`. Returns false when the socket
    /// would block.
    fn read_records(&mut self, sock: &mut TcpStream) -> Result<bool, ConnError> {
        let n = loop {
            match self.session.conn.read_tls(sock) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(ConnError::Io { op: "reading", source: e }),
            }
        };
        match self.session.conn.process_new_packets() {
            Ok(state) => self.plaintext = state.plaintext_bytes_to_read(),
            Err(e) => return Err(self.failure(e)),
        }
        if n == 0 && self.is_handshaking() {
            return Err(ConnError::Io {
                op: "TLS handshake",
                source: io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "{} closed the connection during the TLS handshake \
                         (it may not accept our certificate or TLS version)",
                        self.session.peer
                    ),
                ),
            });
        }
        Ok(true)
    }

    /// The connection error for a rustls failure: the keyprint verdict when
    /// that is what failed, else rustls's own reason.
    fn failure(&self, e: rustls::Error) -> ConnError {
        if let Some(Err(refusal)) = self.session.outcome() {
            return ConnError::Keyprint(refusal);
        }
        let handshaking = self.is_handshaking();
        let during = if handshaking { "handshake" } else { "session" };
        let hint = match &e {
            rustls::Error::InvalidMessage(_) if handshaking => {
                " (the peer does not seem to speak TLS: is the address right?)"
            }
            _ => "",
        };
        ConnError::Tls { during, peer: self.session.peer.clone(), source: e, hint }
    }

    /// Writes pending records to the socket. Returns whether none remain
    /// (false: the socket would block).
    pub(super) fn write_records(&mut self, sock: &mut TcpStream) -> Result<bool, ConnError> {
        while self.session.conn.wants_write() {
            match self.session.conn.write_tls(sock) {
                Ok(0) => {
                    return Err(ConnError::Io {
                        op: "writing",
                        source: io::Error::new(
                            io::ErrorKind::WriteZero,
                            "the socket took no bytes of a TLS record",
                        ),
                    })
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(ConnError::Io { op: "writing", source: e }),
            }
        }
        Ok(true)
    }

    /// Encrypts up to `src.len()` bytes of application data into records;
    /// returns how many were taken: 0 while the handshake goes on or while
    /// rustls's record buffer is full (write the records first).
    pub(super) fn write_plain(&mut self, src: &[u8]) -> Result<usize, ConnError> {
        if self.is_handshaking() {
            return Ok(0);
        }
        self.session
            .conn
            .writer()
            .write(src)
            .map_err(|e| ConnError::Io { op: "writing", source: e })
    }

    /// Queues our close_notify (once).
    pub(super) fn send_close_notify(&mut self) {
        if !self.close_sent {
            self.session.conn.send_close_notify();
            self.close_sent = true;
        }
    }

    /// Best effort: pushes a queued alert (after a failure) to the socket.
    pub(super) fn push_alert(&mut self, sock: &mut TcpStream) {
        for _ in 0..4 {
            if !self.session.conn.wants_write() {
                break;
            }
            match self.session.conn.write_tls(sock) {
                Ok(n) if n > 0 => {}
                _ => break,
            }
        }
    }

    /// The keyprint of the peer's certificate, once seen.
    pub(super) fn peer_keyprint(&self) -> Option<Keyprint> {
        self.session.conn.peer_certificates()?.first().map(|c| Keyprint::of_der(c))
    }

    /// What is known about the session.
    pub(super) fn info(&self) -> TlsInfo {
        let conn = &self.session.conn;
        let established = !conn.is_handshaking();
        let verdict: Option<Verdict> = match self.session.outcome() {
            Some(Ok(v)) if established => Some(v),
            _ => None,
        };
        TlsInfo {
            established,
            peer_keyprint: self.peer_keyprint(),
            verdict,
            version: conn.protocol_version().map(|v| format!("{v:?}")),
            cipher_suite: conn.negotiated_cipher_suite().map(|s| format!("{:?}", s.suite())),
            close_notify_received: self.close_notify_received,
        }
    }
}
