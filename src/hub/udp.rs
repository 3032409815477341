//! The UDP listener shared by every hub of a worker: active-mode search
//! results (`$SR` datagrams) arrive here and are routed to the session of
//! the hub they belong to.
//!
//! One job, started on first use by [`Hubs::udp`](super::Hubs) (a session in
//! active mode asks for it), bound to the configured `listen_address` and
//! `udp_port`. A datagram is routed by the hub address it names (`$SR ...
//! (ip:port)`), else by the hub name, else to the hub searched last; the
//! session then parses it in its own charset and reports it. This job never
//! interprets more than that (ADC `URES` datagrams are routed by
//! [`super::adc::route_udp`], by their search token).
//!
//! Sessions answering an active searcher hand their datagrams to [`send`]:
//! in active mode they go out from this listener's socket (the port we
//! announce), in passive mode (no listener) from a send-only socket of the
//! worker thread. Sending never blocks; a datagram the kernel cannot take
//! is dropped, as UDP may drop it anyway.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::nmdc::UdpFrame;
use super::{ConnectMode, Hubs, UdpEndpoint};
use crate::net::UdpSocket;
use crate::proto::nmdc::{self, Message, ResultHub};
use crate::runtime::{Context, Job, Runtime, Step};

/// Datagrams handled per poll at most.
const DATAGRAMS_PER_POLL: usize = 256;

/// The largest datagram read (longer ones are truncated; `$SR` is small).
const MAX_DATAGRAM: usize = 64 * 1024;

/// Binds `bind` and starts the listener job.
pub(crate) fn start(rt: &Runtime, hubs: Hubs, bind: SocketAddr) -> io::Result<UdpEndpoint> {
    let mut bound: Option<io::Result<SocketAddr>> = None;
    let job = rt.spawn_with(|id| match UdpSocket::bind(rt, id, bind) {
        Ok(socket) => {
            bound = Some(socket.local_addr());
            UdpListener { socket: Some(socket), buf: vec![0; MAX_DATAGRAM], stopped: false, hubs }
        }
        Err(e) => {
            bound = Some(Err(e));
            UdpListener { socket: None, buf: Vec::new(), stopped: true, hubs }
        }
    });
    let addr = bound.unwrap_or_else(|| Err(io::Error::other("the UDP job was not built")))?;
    Ok(UdpEndpoint { job, addr })
}

/// A datagram for the listener to send from its socket.
#[derive(Debug)]
struct Outgoing {
    to: SocketAddr,
    data: Vec<u8>,
}

/// Sends one datagram to `to` (search results for an active searcher): from
/// the shared listener in active mode, else from a send-only socket. Errors
/// are logged, never returned: a lost result is not the session's concern.
///
/// The send-only sockets of passive mode (IPv4, IPv6) belong to the
/// registry, made on first use on the configured `listen_address` (any
/// address when it is of the other family).
pub(crate) fn send(hubs: &Hubs, rt: &Runtime, to: SocketAddr, data: Vec<u8>) {
    let identity = hubs.identity();
    if identity.mode == ConnectMode::Active {
        if let Some(e) = hubs.udp(rt) {
            if !rt.send(e.job, Outgoing { to, data }) {
                log::debug!(target: "hub", "a UDP search result to {to}: the listener is gone");
            }
            return;
        }
    }
    let slot = usize::from(to.is_ipv6());
    let sent = (|| -> io::Result<()> {
        let mut s = hubs.inner.senders.borrow_mut();
        if s[slot].is_none() {
            // The configured local address when it fits the family.
            let local = match identity.listen_address {
                a if a.is_ipv6() == to.is_ipv6() => a,
                _ if to.is_ipv6() => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
                _ => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            };
            let socket = std::net::UdpSocket::bind(SocketAddr::new(local, 0))?;
            socket.set_nonblocking(true)?;
            s[slot] = Some(socket);
        }
        match s[slot].as_ref().map(|socket| socket.send_to(&data, to)) {
            Some(Err(e)) if e.kind() != io::ErrorKind::WouldBlock => Err(e),
            _ => Ok(()),
        }
    })();
    if let Err(e) = sent {
        log::debug!(target: "hub", "sending a UDP search result to {to}: {e}");
    }
}

/// The listener job.
struct UdpListener {
    /// The registry whose sessions get the results.
    hubs: Hubs,
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
                Ok(Some((n, from))) => route(cx, &self.hubs, &self.buf[..n], from),
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

/// Hands a datagram to the session of the hub its first `$SR` names.
fn route(cx: &Context<'_>, hubs: &Hubs, data: &[u8], from: SocketAddr) {
    // ADC datagrams (`URES <cid> ...`) are routed by the ADC session's rules.
    if data.starts_with(b"U") {
        return super::adc::route_udp(cx, hubs, data, from);
    }
    let first = data.split(|&b| b == b'|').find(|f| !f.is_empty()).unwrap_or(&[]);
    // Addresses and hub names are ASCII in practice; the session re-parses
    // the datagram in the hub's own charset.
    let Message::SearchResult(sr) = nmdc::parse(first, encoding_rs::WINDOWS_1252) else {
        log::debug!(target: "hub", "UDP datagram from {from} is not a search result; dropped");
        return;
    };
    let name = match &sr.hub {
        ResultHub::Name(n) => n.as_str(),
        ResultHub::Tth(_) => "",
    };
    match hubs.route_result(&sr.hub_address, name) {
        Some(hub) => {
            cx.send(hub, UdpFrame(data.to_vec()));
        }
        None => {
            log::debug!(target: "hub", "UDP search result from {from} for an unknown hub {:?}; dropped", sr.hub_address);
        }
    }
}
