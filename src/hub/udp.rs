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
//! [`super::adc::route_udp`], by their search token) and never sends anything yet (answering active
//! searches comes with sharing).

use std::io;
use std::net::SocketAddr;

use super::nmdc::UdpFrame;
use super::{Hubs, UdpEndpoint};
use crate::proto::nmdc::{self, Message, ResultHub};
use crate::runtime::{Context, Job, Runtime, Step, UdpSocket};

/// Datagrams handled per poll at most.
const DATAGRAMS_PER_POLL: usize = 256;

/// The largest datagram read (longer ones are truncated; `$SR` is small).
const MAX_DATAGRAM: usize = 64 * 1024;

/// Binds `bind` and starts the listener job.
pub(crate) fn start(rt: &Runtime, bind: SocketAddr) -> io::Result<UdpEndpoint> {
    let mut bound: Option<io::Result<SocketAddr>> = None;
    let job = rt.spawn_with(|id| match UdpSocket::bind(rt, id, bind) {
        Ok(socket) => {
            bound = Some(socket.local_addr());
            UdpListener { socket: Some(socket), buf: vec![0; MAX_DATAGRAM], stopped: false }
        }
        Err(e) => {
            bound = Some(Err(e));
            UdpListener { socket: None, buf: Vec::new(), stopped: true }
        }
    });
    let addr = bound.unwrap_or_else(|| Err(io::Error::other("the UDP job was not built")))?;
    Ok(UdpEndpoint { job, addr })
}

/// The listener job.
struct UdpListener {
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
        for _ in 0..DATAGRAMS_PER_POLL {
            match socket.recv_from(&mut self.buf) {
                Ok(Some((n, from))) => route(cx, &self.buf[..n], from),
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
fn route(cx: &Context<'_>, data: &[u8], from: SocketAddr) {
    // ADC datagrams (`URES <cid> ...`) are routed by the ADC session's rules.
    if data.starts_with(b"U") {
        return super::adc::route_udp(cx, data, from);
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
    match Hubs::current().route_result(&sr.hub_address, name) {
        Some(hub) => {
            cx.send(hub, UdpFrame(data.to_vec()));
        }
        None => {
            log::debug!(target: "hub", "UDP search result from {from} for an unknown hub {:?}; dropped", sr.hub_address);
        }
    }
}
