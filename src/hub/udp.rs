//! The UDP listener shared by every hub of a worker: active-mode search
//! results arrive here and go to the router it was started with, which
//! hands each datagram to the session of the hub it belongs to.
//!
//! One job, started on first use by the registry
//! (`Hubs::udp`: a session in active mode asks for it),
//! bound to the configured `listen_address` and `udp_port`. The listener
//! never looks inside a datagram: which hub an NMDC `$SR` or an ADC `URES`
//! belongs to is the router's business (`hub::session`), and parsing it is
//! the session's. It also sends what sessions answer to active searchers
//! from its socket (the port we announce), and `Senders` send from
//! send-only sockets in passive mode. Sending never blocks; a datagram the
//! kernel cannot take is dropped, as UDP may drop it anyway.
//!
//! This module knows no hub, no registry and no protocol.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::rc::Rc;

use crate::net::UdpSocket;
use crate::runtime::{Context, Job, JobId, Runtime, Step};

/// Datagrams handled per poll at most.
const DATAGRAMS_PER_POLL: usize = 256;

/// The largest datagram read (longer ones are truncated; results are small).
const MAX_DATAGRAM: usize = 64 * 1024;

/// Hands a received datagram (`data`, from `from`) to whoever it is for.
pub type Router = Rc<dyn Fn(&Context<'_>, &[u8], SocketAddr)>;

/// A datagram for a hub session, as the router hands it over.
#[derive(Debug)]
pub(crate) struct UdpFrame(pub(crate) Vec<u8>);

/// The UDP listener shared by the hubs of one worker.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UdpEndpoint {
    /// The listener job.
    pub(crate) job: JobId,
    /// The address it is bound to.
    pub(crate) addr: SocketAddr,
}

/// Binds `bind` and starts the listener job, which hands what it receives
/// to `router`.
pub(crate) fn start(rt: &Runtime, bind: SocketAddr, router: Router) -> io::Result<UdpEndpoint> {
    let mut bound: Option<io::Result<SocketAddr>> = None;
    let job = rt.spawn_with(|id| match UdpSocket::bind(rt, id, bind) {
        Ok(socket) => {
            bound = Some(socket.local_addr());
            UdpListener { socket: Some(socket), buf: vec![0; MAX_DATAGRAM], stopped: false, router }
        }
        Err(e) => {
            bound = Some(Err(e));
            UdpListener { socket: None, buf: Vec::new(), stopped: true, router }
        }
    });
    let addr = bound.unwrap_or_else(|| Err(io::Error::other("the UDP job was not built")))?;
    Ok(UdpEndpoint { job, addr })
}

/// A datagram for the listener to send from its socket.
#[derive(Debug)]
pub(crate) struct Outgoing {
    /// Where to.
    pub(crate) to: SocketAddr,
    /// The datagram.
    pub(crate) data: Vec<u8>,
}

/// The send-only sockets of passive mode (IPv4, IPv6), made on first use.
#[derive(Debug, Default)]
pub(crate) struct Senders([Option<std::net::UdpSocket>; 2]);

impl Senders {
    /// Sends one datagram to `to` from a send-only socket bound to `local`
    /// when it is of `to`'s family (else to any address of that family).
    pub(crate) fn send(&mut self, local: IpAddr, to: SocketAddr, data: &[u8]) -> io::Result<()> {
        let slot = usize::from(to.is_ipv6());
        if self.0[slot].is_none() {
            let local = match local {
                a if a.is_ipv6() == to.is_ipv6() => a,
                _ if to.is_ipv6() => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
                _ => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            };
            let socket = std::net::UdpSocket::bind(SocketAddr::new(local, 0))?;
            socket.set_nonblocking(true)?;
            self.0[slot] = Some(socket);
        }
        match self.0[slot].as_ref().map(|socket| socket.send_to(data, to)) {
            Some(Err(e)) if e.kind() != io::ErrorKind::WouldBlock => Err(e),
            _ => Ok(()),
        }
    }
}

/// The listener job.
struct UdpListener {
    /// Who gets what arrives.
    router: Router,
    socket: Option<UdpSocket>,
    buf: Vec<u8>,
    stopped: bool,
}

impl Job for UdpListener {
    fn poll(&mut self, cx: &mut Context<'_>) -> Step {
        let Some(socket) = self.socket.as_mut().filter(|_| !self.stopped) else {
            return Step::Done;
        };
        socket.absorb(cx);
        while let Some(m) = cx.recv() {
            if let Ok(out) = m.downcast::<Outgoing>() {
                if let Err(e) = socket.send_to(&out.data, out.to) {
                    log::debug!(target: "hub", "sending a UDP search result to {}: {e}", out.to);
                }
            }
        }
        for _ in 0..DATAGRAMS_PER_POLL {
            match socket.recv_from(&mut self.buf) {
                Ok(Some((n, from))) => (self.router)(cx, &self.buf[..n], from),
                Ok(None) => return Step::Pending,
                Err(e) => {
                    log::warn!(target: "hub", "UDP search results: receiving: {e}");
                    return Step::Pending;
                }
            }
        }
        cx.repoll();
        Step::Pending
    }

    fn is_alive(&self) -> bool {
        !self.stopped
    }

    fn stop(&mut self) {
        self.stopped = true;
    }

    fn name(&self) -> String {
        "hub UDP listener".into()
    }
}
