//! [`Connection`]: a buffered, non-blocking TCP connection for jobs.
//!
//! It owns one socket, its framing and its buffers. It never interprets what it
//! carries: hub and peer sessions parse the frames it hands out.
//!
//! - **Framing**: delimited (`|` for NMDC, `\n` for ADC) with a maximum frame
//!   size — a peer that sends a longer frame gets its connection failed with
//!   [`ConnError::FrameTooLarge`], so memory stays bounded — or raw bytes for
//!   transfers. The mode can change mid-stream (after `$ADCSND`, say): bytes
//!   already buffered are handed out first.
//! - **Reading** follows mio's edge-triggered idiom: read until `WouldBlock`,
//!   but never more than a byte budget per call, so one fast peer cannot
//!   starve the others; [`Connection::has_more`] then tells the job to ask for
//!   a repoll.
//! - **Writing** goes through a queue with a cursor; write interest is
//!   registered only while output is pending. [`Connection::queued`] is the
//!   back-pressure signal.
//! - **Memory**: an idle connection holds no buffer at all; buffers are
//!   allocated while bytes are in flight and freed when they drain.
//! - **Close**: [`Connection::close`] flushes what is queued, then shuts the
//!   write side down. Dropping the connection deregisters it and frees its
//!   token.
//! - **TLS** ([`Connection::connect_tls`], [`Connection::accepted_tls`]): the
//!   same connection with a rustls session between the socket and the
//!   buffers (`tls.rs`). Framing, budgets, the queue and write interest work
//!   as above on the plaintext; output queued during the handshake goes out
//!   when it completes; `close` sends a close_notify before the shutdown. A
//!   refused certificate fails the connection with [`ConnError::Keyprint`].

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};

use memchr::memchr;
use mio::net::TcpStream;
use mio::{Interest, Token};

use super::error::ConnError;
use super::tls::{ReadOutcome, TlsLayer};
use crate::runtime::{Context, IoEvent, JobId, Runtime};
use crate::tls::{Keyprint, TlsInfo, TlsSession};

/// Bytes read from the socket per [`Connection::read_frames`] or
/// [`Connection::read_raw`] call at most, for fairness between jobs.
pub const READ_BUDGET: usize = 1 << 20;

/// Size of one read from the socket into the connection's buffer.
const READ_CHUNK: usize = 64 * 1024;

/// How a connection cuts its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Frames end with `delim`; a frame longer than `max_frame` bytes fails
    /// the connection.
    Delimited {
        /// The delimiter byte (`b'|'` or `b'\n'`), not part of the frame.
        delim: u8,
        /// The longest acceptable frame, in bytes.
        max_frame: usize,
    },
    /// No framing: bytes as they come ([`Connection::read_raw`]).
    Raw,
}

impl Framing {
    /// NMDC framing: `|`, with the given maximum frame size.
    pub fn nmdc(max_frame: usize) -> Framing {
        Framing::Delimited { delim: b'|', max_frame }
    }

    /// ADC framing: `\n`, with the given maximum frame size.
    pub fn adc(max_frame: usize) -> Framing {
        Framing::Delimited { delim: b'\n', max_frame }
    }
}

/// How a connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Close {
    /// Queued output is flushed, then (TLS) a close_notify, then the write
    /// side is shut down: for a session that ends in good order.
    Graceful,
    /// Everything is dropped at once: for a peer that broke the protocol,
    /// went silent or must not get another byte.
    Abortive,
}

/// What a read call saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReadStatus {
    /// Frames handed to the callback (delimited mode) or bytes read (raw mode).
    pub count: usize,
    /// The peer closed its side: no more input will come.
    pub eof: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Connecting,
    Open,
    /// Flush the queue, then shut down the write side.
    Closing,
    Closed,
}

/// Buffers of a connection with bytes in flight; absent when idle.
#[derive(Debug, Default)]
struct Buffers {
    /// Received bytes not handed out yet are `rbuf[rpos..]`.
    rbuf: Vec<u8>,
    rpos: usize,
    /// Queued output; the front chunk is written from `wpos` on.
    wq: VecDeque<Vec<u8>>,
    wpos: usize,
    /// Bytes queued and not yet written.
    queued: usize,
}

impl Buffers {
    fn is_idle(&self) -> bool {
        self.rpos >= self.rbuf.len() && self.wq.is_empty()
    }
}

/// Turns Nagle's algorithm off. DC messages are small and a poll writes its
/// batch at once, so there is nothing to coalesce; with Nagle a second small
/// message waits until the first is acknowledged (up to the peer's 40 ms
/// delayed ACK): a chat reply late, and on loopback under the bot test kit's
/// virtual clock, a line that never arrives while time stands still. Bulk
/// transfers write 64 KiB at a time and lose nothing. A failure only costs
/// latency, so it is ignored.
fn no_delay(stream: &TcpStream) {
    let _ = stream.set_nodelay(true);
}

/// A buffered non-blocking TCP connection owned by a job; see the module docs.
#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
    rt: Runtime,
    token: Token,
    /// The framing, packed: `max_frame` is kept as u32 (frames over 4 GiB make
    /// no sense) so an idle connection stays small.
    max_frame: u32,
    delim: u8,
    raw: bool,
    state: State,
    /// The socket may have more input: set by readable events, cleared by
    /// `WouldBlock`.
    readable: bool,
    /// The socket accepts output: cleared by `WouldBlock`, set by writable
    /// events.
    writable: bool,
    /// WRITABLE is part of the registered interest.
    write_interest: bool,
    eof: bool,
    bufs: Option<Box<Buffers>>,
    /// The TLS session, for TLS connections.
    tls: Option<Box<TlsLayer>>,
    /// The address dialled, or the peer's of an accepted connection: errors
    /// name it even when the socket can no longer say (a refused connect).
    remote: SocketAddr,
}

impl Connection {
    /// Starts connecting to `addr` for job `owner`. Completion is reported by
    /// the first [`read_frames`](Connection::read_frames) / `flush` after the
    /// socket becomes writable; output sent meanwhile is queued.
    pub fn connect(
        rt: &Runtime,
        owner: JobId,
        addr: SocketAddr,
        framing: Framing,
    ) -> Result<Connection, ConnError> {
        Connection::open(rt, owner, addr, framing, None)
    }

    /// Starts connecting to `addr`, then a TLS handshake as the client side
    /// of `session` (from [`TlsContext::client`] or
    /// [`TlsContext::hub_client`]). Output sent meanwhile waits in the queue
    /// until the handshake completes. A refused certificate is reported by the
    /// read and flush calls as [`ConnError::Keyprint`]; other handshake
    /// failures as [`ConnError::Tls`].
    ///
    /// [`TlsContext::client`]: crate::tls::TlsContext::client
    /// [`TlsContext::hub_client`]: crate::tls::TlsContext::hub_client
    pub fn connect_tls(
        rt: &Runtime,
        owner: JobId,
        addr: SocketAddr,
        framing: Framing,
        session: TlsSession,
    ) -> Result<Connection, ConnError> {
        Connection::open(rt, owner, addr, framing, Some(session))
    }

    fn open(
        rt: &Runtime,
        owner: JobId,
        addr: SocketAddr,
        framing: Framing,
        session: Option<TlsSession>,
    ) -> Result<Connection, ConnError> {
        let mut stream =
            TcpStream::connect(addr).map_err(|source| ConnError::Connect { addr, source })?;
        no_delay(&stream);
        let token = rt
            .register(owner, &mut stream, Interest::READABLE | Interest::WRITABLE)
            .map_err(|source| ConnError::Connect { addr, source })?;
        let mut conn = Connection {
            stream,
            rt: rt.clone(),
            token,
            max_frame: 0,
            delim: 0,
            raw: true,
            state: State::Connecting,
            readable: false,
            writable: false,
            write_interest: true,
            eof: false,
            bufs: None,
            tls: session.map(|s| Box::new(TlsLayer::new(s))),
            remote: addr,
        };
        conn.set_framing(framing);
        Ok(conn)
    }

    /// Wraps an accepted (already connected) stream for job `owner`.
    pub fn accepted(
        rt: &Runtime,
        owner: JobId,
        stream: TcpStream,
        framing: Framing,
    ) -> io::Result<Connection> {
        Connection::wrap_accepted(rt, owner, stream, framing, None)
    }

    /// Wraps an accepted stream for job `owner` as the server side of the TLS
    /// `session` (from [`TlsContext::server`]); the client's certificate, if
    /// it presented one, is then available from
    /// [`peer_keyprint`](Connection::peer_keyprint).
    ///
    /// [`TlsContext::server`]: crate::tls::TlsContext::server
    pub fn accepted_tls(
        rt: &Runtime,
        owner: JobId,
        stream: TcpStream,
        framing: Framing,
        session: TlsSession,
    ) -> io::Result<Connection> {
        Connection::wrap_accepted(rt, owner, stream, framing, Some(session))
    }

    fn wrap_accepted(
        rt: &Runtime,
        owner: JobId,
        mut stream: TcpStream,
        framing: Framing,
        session: Option<TlsSession>,
    ) -> io::Result<Connection> {
        let remote = stream.peer_addr()?;
        no_delay(&stream);
        let token = rt.register(owner, &mut stream, Interest::READABLE)?;
        let mut conn = Connection {
            stream,
            rt: rt.clone(),
            token,
            max_frame: 0,
            delim: 0,
            raw: true,
            state: State::Open,
            // An accepted socket may already hold data whose edge was before
            // registration: try reading once.
            readable: true,
            writable: true,
            write_interest: false,
            eof: false,
            bufs: None,
            tls: session.map(|s| Box::new(TlsLayer::new(s))),
            remote,
        };
        conn.set_framing(framing);
        Ok(conn)
    }

    /// The token its events carry.
    pub fn token(&self) -> Token {
        self.token
    }

    /// Hands this connection's events to another job.
    pub fn set_owner(&self, owner: JobId) {
        self.rt.retarget(self.token, owner);
    }

    /// The framing in force.
    pub fn framing(&self) -> Framing {
        if self.raw {
            Framing::Raw
        } else {
            Framing::Delimited { delim: self.delim, max_frame: self.max_frame as usize }
        }
    }

    /// Changes the framing; buffered bytes are interpreted with the new one.
    pub fn set_framing(&mut self, framing: Framing) {
        match framing {
            Framing::Raw => self.raw = true,
            Framing::Delimited { delim, max_frame } => {
                self.raw = false;
                self.delim = delim;
                self.max_frame = max_frame.min(u32::MAX as usize) as u32;
            }
        }
    }

    /// The remote address, once connected.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.stream.peer_addr().ok()
    }

    /// The address dialled (or, accepted, the peer's), connected or not.
    pub fn remote(&self) -> SocketAddr {
        self.remote
    }

    /// The local address.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.stream.local_addr().ok()
    }

    /// Whether the TCP handshake has completed.
    pub fn is_connected(&self) -> bool {
        matches!(self.state, State::Open | State::Closing)
    }

    /// Whether the connection is closed (by us, or failed).
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Whether the peer has closed its side.
    pub fn is_eof(&self) -> bool {
        self.eof
    }

    /// Bytes queued for writing and not yet accepted by the kernel (or, for
    /// TLS, by the TLS layer, which holds at most 64 KiB more).
    pub fn queued(&self) -> usize {
        self.bufs.as_ref().map_or(0, |b| b.queued)
    }

    /// Whether this is a TLS connection.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Whether the TLS handshake is still going on (false for plain TCP).
    pub fn is_handshaking(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.is_handshaking())
    }

    /// The keyprint of the certificate the peer presented (TLS only, once the
    /// peer has shown it; a client may present none).
    pub fn peer_keyprint(&self) -> Option<Keyprint> {
        self.tls.as_ref().and_then(|t| t.peer_keyprint())
    }

    /// What is known about the TLS session; `None` for plain TCP.
    pub fn tls_info(&self) -> Option<TlsInfo> {
        self.tls.as_ref().map(|t| t.info())
    }

    /// Output waiting anywhere: in the queue, or as TLS records.
    fn pending_output(&self) -> bool {
        self.queued() > 0 || self.tls.as_ref().is_some_and(|t| t.wants_write())
    }

    /// Whether the socket has to tell us when it takes output: TLS records
    /// are waiting, or queued data that can be sent (not before the handshake
    /// is done).
    fn needs_write_interest(&self) -> bool {
        match &self.tls {
            // A raw sender that met `WouldBlock` (`write_now`) has nothing
            // queued but must hear when the socket drains: interest stays
            // until a writable event.
            None => self.queued() > 0 || (!self.writable && self.state == State::Open),
            Some(t) => t.wants_write() || (self.queued() > 0 && !t.is_handshaking()),
        }
    }

    /// TLS: advances a handshake in progress with what the socket has, so
    /// that jobs that only write still complete it.
    fn drive_handshake(&mut self) -> Result<(), ConnError> {
        let Some(tls) = self.tls.as_deref_mut() else { return Ok(()) };
        if !tls.is_handshaking() || !self.readable || self.eof {
            return Ok(());
        }
        match tls.pump_handshake(&mut self.stream) {
            Ok(drained) => {
                if drained && !tls.has_plaintext() {
                    self.readable = false;
                }
                Ok(())
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    /// TLS: reading may have completed the handshake (releasing queued
    /// output) or produced records to answer; send them.
    fn flush_after_read(&mut self) -> Result<(), ConnError> {
        if self.tls.is_some() && self.pending_output() && self.state != State::Closed {
            self.flush()?;
        }
        Ok(())
    }

    /// Whether more input may be waiting (a read stopped at its budget): the
    /// job should [`Context::repoll`].
    pub fn has_more(&self) -> bool {
        if self.state == State::Closed || self.state == State::Connecting {
            return false;
        }
        let buffered = match self.framing() {
            Framing::Raw => self.bufs.as_ref().is_some_and(|b| b.rpos < b.rbuf.len()),
            Framing::Delimited { delim, .. } => self.has_buffered_frame(delim),
        };
        (self.readable && !self.eof) || buffered
    }

    /// Takes the readiness events for this connection from the job's context.
    /// Call it at the start of each poll.
    pub fn absorb(&mut self, cx: &Context<'_>) {
        for ev in cx.io_events() {
            self.handle_event(ev);
        }
    }

    /// Applies one readiness event (ignored if it is for another token).
    pub fn handle_event(&mut self, ev: &IoEvent) {
        if ev.token != self.token {
            return;
        }
        if ev.is_readable() {
            self.readable = true;
        }
        if ev.is_writable() {
            self.writable = true;
        }
    }

    /// Finishes a pending connect once the socket reported writable.
    fn check_connected(&mut self) -> Result<bool, ConnError> {
        if self.state != State::Connecting {
            return Ok(true);
        }
        if !self.writable && !self.readable {
            return Ok(false);
        }
        let addr = self.stream.peer_addr();
        if let Ok(Some(e)) | Err(e) = self.stream.take_error() {
            return Err(self.fail_connect(e));
        }
        match addr {
            Ok(_) => {
                self.state = State::Open;
                self.writable = true;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                // Spurious wake-up before the handshake finished.
                self.writable = false;
                self.readable = false;
                Ok(false)
            }
            Err(e) => Err(self.fail_connect(e)),
        }
    }

    fn fail_connect(&mut self, source: io::Error) -> ConnError {
        self.state = State::Closed;
        // The socket cannot tell its peer once the connect failed: the
        // address we dialled is the one to name.
        ConnError::Connect { addr: self.remote, source }
    }

    /// Writes pending output, then reads what is available (up to
    /// [`READ_BUDGET`] bytes) and calls `on_frame` for each complete frame, at
    /// most `max_frames` times. The frame excludes its delimiter and is only
    /// valid during the call.
    ///
    /// When the frame limit or the byte budget stops it, input may remain:
    /// call again in the next poll while [`has_more`](Connection::has_more).
    pub fn read_frames(
        &mut self,
        max_frames: usize,
        mut on_frame: impl FnMut(&[u8]),
    ) -> Result<ReadStatus, ConnError> {
        let mut status = ReadStatus::default();
        if !self.check_connected()? {
            return Ok(status);
        }
        // Output queued while connecting, or left over when the socket was
        // full, goes out as soon as the socket takes it.
        if self.pending_output() && self.writable {
            self.flush()?;
        }
        let Framing::Delimited { delim, max_frame } = self.framing() else {
            return Ok(status);
        };
        let mut budget = READ_BUDGET;
        loop {
            // Hand out the complete frames already buffered.
            if let Some(b) = self.bufs.as_deref_mut() {
                while status.count < max_frames {
                    let pending = &b.rbuf[b.rpos..];
                    let Some(end) = memchr(delim, pending) else { break };
                    if end > max_frame {
                        return Err(self.fail(ConnError::FrameTooLarge { max: max_frame }));
                    }
                    on_frame(&pending[..end]);
                    b.rpos += end + 1;
                    status.count += 1;
                }
                // Only a search for a delimiter that failed says the frame
                // is too long: stopped at `max_frames`, what follows may be
                // raw data the caller reads next (a download after its
                // header).
                if status.count < max_frames && b.rbuf.len() - b.rpos > max_frame {
                    return Err(self.fail(ConnError::FrameTooLarge { max: max_frame }));
                }
            }
            if status.count >= max_frames || budget == 0 || !self.readable || self.eof {
                break;
            }
            let n = self.fill(budget)?;
            budget = budget.saturating_sub(n);
            if n == 0 && !self.eof && !self.readable {
                break;
            }
        }
        status.eof = self.eof && !self.has_buffered_frame(delim);
        self.compact();
        self.flush_after_read()?;
        Ok(status)
    }

    fn has_buffered_frame(&self, delim: u8) -> bool {
        self.bufs.as_ref().is_some_and(|b| memchr(delim, &b.rbuf[b.rpos..]).is_some())
    }

    /// Reads up to `budget` bytes into the buffer with one or more `read`s;
    /// returns bytes read. Sets `eof` on end of stream and clears `readable`
    /// on `WouldBlock`.
    fn fill(&mut self, budget: usize) -> Result<usize, ConnError> {
        let b = self.bufs.get_or_insert_with(Default::default);
        if b.rpos > 0 && b.rpos == b.rbuf.len() {
            b.rbuf.clear();
            b.rpos = 0;
        }
        let want = READ_CHUNK.min(budget.max(1));
        let len = b.rbuf.len();
        b.rbuf.resize(len + want, 0);
        let result = read_transport(&mut self.stream, self.tls.as_deref_mut(), &mut b.rbuf[len..]);
        match result {
            Ok(ReadOutcome::Eof) => {
                b.rbuf.truncate(len);
                self.eof = true;
                self.readable = false;
                Ok(0)
            }
            Ok(ReadOutcome::Data(n)) => {
                b.rbuf.truncate(len + n);
                Ok(n)
            }
            Ok(ReadOutcome::WouldBlock) => {
                b.rbuf.truncate(len);
                self.readable = false;
                Ok(0)
            }
            Err(e) => {
                b.rbuf.truncate(len);
                Err(self.fail(e))
            }
        }
    }

    /// Raw mode: copies available bytes into `dst` (buffered bytes first, then
    /// straight from the socket, no copy through the buffer). Returns bytes
    /// copied; `Ok(0)` with [`is_eof`](Connection::is_eof) means end of
    /// stream, `Ok(0)` otherwise means nothing available now.
    pub fn read_raw(&mut self, dst: &mut [u8]) -> Result<usize, ConnError> {
        if dst.is_empty() || !self.check_connected()? {
            return Ok(0);
        }
        // As in `read_frames`: pending output (a TLS client's hello, when the
        // peer speaks first as NMDC hubs do) goes out as soon as it can.
        if self.pending_output() && self.writable {
            self.flush()?;
        }
        if let Some(b) = self.bufs.as_deref_mut() {
            let avail = b.rbuf.len() - b.rpos;
            if avail > 0 {
                let n = avail.min(dst.len());
                dst[..n].copy_from_slice(&b.rbuf[b.rpos..b.rpos + n]);
                b.rpos += n;
                self.compact();
                return Ok(n);
            }
        }
        if !self.readable || self.eof {
            return Ok(0);
        }
        let n = match read_transport(&mut self.stream, self.tls.as_deref_mut(), dst) {
            Ok(ReadOutcome::Eof) => {
                self.eof = true;
                self.readable = false;
                0
            }
            Ok(ReadOutcome::Data(n)) => n,
            Ok(ReadOutcome::WouldBlock) => {
                self.readable = false;
                0
            }
            Err(e) => return Err(self.fail(e)),
        };
        self.flush_after_read()?;
        Ok(n)
    }

    /// Puts bytes taken by [`read_raw`](Connection::read_raw) back in front
    /// of the input, to be handed out again by the next read in whatever
    /// framing is set by then. For sniffing: a listener reads the first bytes
    /// of an accepted connection to tell NMDC from ADC, then gives them back.
    pub fn unread(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let b = self.bufs.get_or_insert_with(Default::default);
        let mut rbuf = Vec::with_capacity(bytes.len() + b.rbuf.len() - b.rpos);
        rbuf.extend_from_slice(bytes);
        rbuf.extend_from_slice(&b.rbuf[b.rpos..]);
        b.rbuf = rbuf;
        b.rpos = 0;
    }

    /// Queues bytes and writes as much as the socket takes now.
    pub fn send(&mut self, data: impl Into<Vec<u8>>) -> Result<(), ConnError> {
        if matches!(self.state, State::Closing | State::Closed) {
            return Err(ConnError::Closed);
        }
        let data = data.into();
        if data.is_empty() {
            return Ok(());
        }
        let b = self.bufs.get_or_insert_with(Default::default);
        b.queued += data.len();
        b.wq.push_back(data);
        self.flush().map(|_| ())
    }

    /// Writes `data` straight to the socket, without copying, once the queue
    /// is flushed; returns how many bytes the kernel took (0 when it would
    /// block or queued output remains, in which case write interest is armed).
    /// For bulk transfers.
    ///
    /// TLS: returns how many bytes the TLS layer took (encrypted, then written
    /// as far as the socket takes them; the rest of the records go out on
    /// later calls or flushes); 0 also while the handshake goes on. A sender
    /// that then closes must keep calling [`flush`](Connection::flush) until
    /// [`is_closed`](Connection::is_closed), or the tail may be lost.
    pub fn write_now(&mut self, data: &[u8]) -> Result<usize, ConnError> {
        if matches!(self.state, State::Closing | State::Closed) {
            return Err(ConnError::Closed);
        }
        if !self.check_connected()? {
            return Ok(0);
        }
        // Queued output goes first (a request line sent before the data, say).
        if self.queued() > 0 && !self.flush()? {
            return Ok(0);
        }
        if self.tls.is_some() {
            return self.write_now_tls(data);
        }
        if !self.writable {
            return Ok(0);
        }
        loop {
            match self.stream.write(data) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.writable = false;
                    self.set_write_interest(true)?;
                    return Ok(0);
                }
                Err(e) => return Err(self.fail(ConnError::Io { op: "writing", source: e })),
            }
        }
    }

    fn write_now_tls(&mut self, data: &[u8]) -> Result<usize, ConnError> {
        self.drive_handshake()?;
        let mut taken = 0;
        if let Some(tls) = self.tls.as_deref_mut() {
            while self.writable {
                match tls.write_records(&mut self.stream) {
                    Ok(true) => {}
                    Ok(false) => {
                        self.writable = false;
                        break;
                    }
                    Err(e) => return Err(self.fail(e)),
                }
                if taken == data.len() {
                    break;
                }
                match tls.write_plain(&data[taken..]) {
                    // Handshaking: the data waits for the handshake.
                    Ok(0) => break,
                    Ok(n) => taken += n,
                    Err(e) => return Err(self.fail(e)),
                }
            }
        }
        let interest = self.needs_write_interest();
        self.set_write_interest(interest)?;
        Ok(taken)
    }

    /// Whether the socket can take output now (raw senders poll this); for
    /// TLS, also that the handshake is done.
    pub fn is_writable(&self) -> bool {
        self.writable && self.is_connected() && !self.is_handshaking()
    }

    /// Writes queued output until it is drained or the socket would block.
    /// Returns whether the queue is now empty. Arms write interest while
    /// output remains, disarms it when drained, and completes a pending
    /// [`close`](Connection::close).
    pub fn flush(&mut self) -> Result<bool, ConnError> {
        if !self.check_connected()? {
            return Ok(false);
        }
        self.drive_handshake()?;
        while self.writable {
            if let Some(tls) = self.tls.as_deref_mut() {
                // Records first: they are older than anything in the queue.
                match tls.write_records(&mut self.stream) {
                    Ok(true) => {}
                    Ok(false) => {
                        self.writable = false;
                        break;
                    }
                    Err(e) => return Err(self.fail(e)),
                }
                if tls.is_handshaking() {
                    break;
                }
            }
            let Some(b) = self.bufs.as_deref_mut() else { break };
            let Some(front) = b.wq.front() else { break };
            match write_transport(&mut self.stream, self.tls.as_deref_mut(), &front[b.wpos..]) {
                Ok(Some(0)) => {
                    // TLS: the record buffer is full; the loop writes it out.
                    // Plain TCP never takes 0 bytes of a non-empty write.
                    if !self.tls.as_ref().is_some_and(|t| t.wants_write()) {
                        break;
                    }
                }
                Ok(Some(n)) => {
                    b.wpos += n;
                    b.queued -= n;
                    if b.wpos == front.len() {
                        b.wq.pop_front();
                        b.wpos = 0;
                    }
                }
                Ok(None) => self.writable = false,
                Err(e) => return Err(self.fail(e)),
            }
        }
        let mut drained = !self.pending_output();
        if self.queued() == 0 && self.state == State::Closing {
            if let Some(tls) = self.tls.as_deref_mut() {
                tls.send_close_notify();
                if self.writable {
                    match tls.write_records(&mut self.stream) {
                        Ok(done) => self.writable = done,
                        Err(e) => return Err(self.fail(e)),
                    }
                }
                drained = !tls.wants_write();
            }
            if drained {
                let _ = self.stream.shutdown(Shutdown::Write);
                self.state = State::Closed;
            }
        }
        if self.state != State::Closed {
            let interest = self.needs_write_interest();
            self.set_write_interest(interest)?;
        }
        self.compact();
        Ok(drained)
    }

    /// Closes gracefully: queued output is flushed first (by later `flush`
    /// calls if the socket is full), then (TLS) a close_notify is sent, then
    /// the write side is shut down. [`is_closed`](Connection::is_closed) says
    /// when that is done.
    pub fn close(&mut self) {
        match self.state {
            State::Closed | State::Closing => {}
            State::Connecting => {
                let _ = self.stream.shutdown(Shutdown::Both);
                self.state = State::Closed;
            }
            State::Open => {
                self.state = State::Closing;
                if self.flush().is_err() {
                    self.state = State::Closed;
                }
            }
        }
    }

    /// Ends the connection as `how` says (see [`Close`]).
    pub fn end(&mut self, how: Close) {
        match how {
            Close::Graceful => self.close(),
            Close::Abortive => self.abort(),
        }
    }

    /// Closes at once, dropping queued output.
    pub fn abort(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Both);
        self.state = State::Closed;
        self.bufs = None;
    }

    fn set_write_interest(&mut self, on: bool) -> Result<(), ConnError> {
        if self.write_interest == on {
            return Ok(());
        }
        let interest =
            if on { Interest::READABLE | Interest::WRITABLE } else { Interest::READABLE };
        self.rt
            .reregister(&mut self.stream, self.token, interest)
            .map_err(|source| ConnError::Io { op: "changing write interest", source })?;
        self.write_interest = on;
        Ok(())
    }

    fn fail(&mut self, err: ConnError) -> ConnError {
        // TLS: tell the peer why (rustls queued an alert), as far as the
        // socket takes it.
        if let Some(tls) = self.tls.as_deref_mut() {
            tls.push_alert(&mut self.stream);
        }
        let _ = self.stream.shutdown(Shutdown::Both);
        self.state = State::Closed;
        self.bufs = None;
        err
    }

    /// Moves unconsumed input to the front and frees idle buffers.
    fn compact(&mut self) {
        let Some(b) = self.bufs.as_deref_mut() else { return };
        if b.is_idle() {
            self.bufs = None;
            return;
        }
        if b.rpos > 0 {
            b.rbuf.drain(..b.rpos);
            b.rpos = 0;
        }
        // Don't keep a large read buffer around for a small partial frame.
        if b.rbuf.capacity() > 4 * READ_CHUNK && b.rbuf.len() < READ_CHUNK {
            b.rbuf.shrink_to(READ_CHUNK);
        }
    }
}

/// One read from the socket, through the TLS layer when there is one.
fn read_transport(
    stream: &mut TcpStream,
    tls: Option<&mut TlsLayer>,
    dst: &mut [u8],
) -> Result<ReadOutcome, ConnError> {
    if let Some(tls) = tls {
        return tls.read(stream, dst);
    }
    loop {
        match stream.read(dst) {
            Ok(0) => return Ok(ReadOutcome::Eof),
            Ok(n) => return Ok(ReadOutcome::Data(n)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(ReadOutcome::WouldBlock),
            Err(e) => return Err(ConnError::Io { op: "reading", source: e }),
        }
    }
}

/// One write to the socket, through the TLS layer when there is one. Returns
/// the bytes taken, `None` when the socket would block.
fn write_transport(
    stream: &mut TcpStream,
    tls: Option<&mut TlsLayer>,
    src: &[u8],
) -> Result<Option<usize>, ConnError> {
    if let Some(tls) = tls {
        return tls.write_plain(src).map(Some);
    }
    loop {
        match stream.write(src) {
            Ok(n) => return Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) => return Err(ConnError::Io { op: "writing", source: e }),
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.rt.deregister(&mut self.stream, self.token);
    }
}
