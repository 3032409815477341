//! [`Listener`] (TCP) and [`UdpSocket`] for jobs.
//!
//! Thin owners of a registered socket: they accept and receive until
//! `WouldBlock`, and free their token when dropped. They never interpret what
//! they carry.

use std::io;
use std::net::SocketAddr;

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Token};
use socket2::{Domain, Protocol, Socket, Type};

use crate::runtime::{Context, JobId, Runtime};

/// The listen backlog: large, so that a burst of incoming peers (or a test
/// opening a thousand connections at once) is not refused by the kernel.
pub const LISTEN_BACKLOG: i32 = 4096;

/// A listening TCP socket owned by a job.
#[derive(Debug)]
pub struct Listener {
    listener: TcpListener,
    rt: Runtime,
    token: Token,
    /// Set by readable events; cleared by `WouldBlock`.
    ready: bool,
}

impl Listener {
    /// Binds `addr` (port 0 picks a free port) with [`LISTEN_BACKLOG`] and
    /// `SO_REUSEADDR`, and registers it for `owner`.
    pub fn bind(rt: &Runtime, owner: JobId, addr: SocketAddr) -> io::Result<Listener> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_address(true)?;
        if addr.is_ipv6() {
            socket.set_only_v6(true)?;
        }
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        socket.listen(LISTEN_BACKLOG)?;
        Listener::from_std(rt, owner, socket.into())
    }

    /// Takes over a bound, listening std socket (made non-blocking here).
    pub fn from_std(
        rt: &Runtime,
        owner: JobId,
        listener: std::net::TcpListener,
    ) -> io::Result<Listener> {
        listener.set_nonblocking(true)?;
        let mut listener = TcpListener::from_std(listener);
        let token = rt.register(owner, &mut listener, Interest::READABLE)?;
        Ok(Listener { listener, rt: rt.clone(), token, ready: true })
    }

    /// The bound address (with the real port when 0 was asked).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The token its events carry.
    pub fn token(&self) -> Token {
        self.token
    }

    /// Takes this listener's readiness from the job's context.
    pub fn absorb(&mut self, cx: &Context<'_>) {
        if cx.io_events().iter().any(|ev| ev.token == self.token) {
            self.ready = true;
        }
    }

    /// Accepts the next pending connection, `Ok(None)` when there is none now.
    /// Transient errors (a peer that reset before accept, fd exhaustion) are
    /// returned; the caller logs them and goes on.
    pub fn accept(&mut self) -> io::Result<Option<(TcpStream, SocketAddr)>> {
        if !self.ready {
            return Ok(None);
        }
        loop {
            match self.listener.accept() {
                Ok(pair) => return Ok(Some(pair)),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.ready = false;
                    return Ok(None);
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.rt.deregister(&mut self.listener, self.token);
    }
}

/// A UDP socket owned by a job (active-mode search results, for instance).
#[derive(Debug)]
pub struct UdpSocket {
    socket: mio::net::UdpSocket,
    rt: Runtime,
    token: Token,
    ready: bool,
}

impl UdpSocket {
    /// Binds `addr` and registers it for `owner`.
    pub fn bind(rt: &Runtime, owner: JobId, addr: SocketAddr) -> io::Result<UdpSocket> {
        let mut socket = mio::net::UdpSocket::bind(addr)?;
        let token = rt.register(owner, &mut socket, Interest::READABLE)?;
        Ok(UdpSocket { socket, rt: rt.clone(), token, ready: true })
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// The token its events carry.
    pub fn token(&self) -> Token {
        self.token
    }

    /// Takes this socket's readiness from the job's context.
    pub fn absorb(&mut self, cx: &Context<'_>) {
        if cx.io_events().iter().any(|ev| ev.token == self.token) {
            self.ready = true;
        }
    }

    /// Receives the next datagram into `buf`; `Ok(None)` when none is waiting.
    /// A datagram longer than `buf` is truncated (DC datagrams are small).
    pub fn recv_from(&mut self, buf: &mut [u8]) -> io::Result<Option<(usize, SocketAddr)>> {
        if !self.ready {
            return Ok(None);
        }
        loop {
            match self.socket.recv_from(buf) {
                Ok(pair) => return Ok(Some(pair)),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.ready = false;
                    return Ok(None);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends one datagram. Returns `Ok(false)` when the kernel's buffer is full
    /// (UDP is lossy by nature; the datagram is dropped).
    pub fn send_to(&self, data: &[u8], to: SocketAddr) -> io::Result<bool> {
        loop {
            match self.socket.send_to(data, to) {
                Ok(_) => return Ok(true),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
    }
}

impl Drop for UdpSocket {
    fn drop(&mut self) {
        self.rt.deregister(&mut self.socket, self.token);
    }
}
