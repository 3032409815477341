//! The listener jobs of active mode: one on the plain TCP port, one on the
//! TLS port. Each accepted socket becomes a peer connection job
//! ([`super::conn::accepted`]), which tells NMDC from ADC by its first bytes.
//!
//! Must not: read from accepted sockets (the connection job does), or keep
//! a socket the connection limit refuses.

use std::io;
use std::net::SocketAddr;

use super::peers::Peers;
use crate::net::Listener;
use crate::runtime::{Context, Job, JobId, Runtime, Step};

/// Accepts per poll at most (the rest wait for the next poll).
const ACCEPTS_PER_POLL: usize = 32;

/// Binds `addr` and starts its listener job; returns the job and the bound
/// address (the port, when 0 was asked).
pub(crate) fn start(
    rt: &Runtime,
    peers: Peers,
    addr: SocketAddr,
    tls: bool,
) -> io::Result<(JobId, SocketAddr)> {
    let mut bound = None;
    let mut error = None;
    let job = rt.spawn_with(|id| {
        let listener = match Listener::bind(rt, id, addr) {
            Ok(l) => {
                bound = l.local_addr().ok();
                Some(l)
            }
            Err(e) => {
                error = Some(e);
                None
            }
        };
        PeerListener { peers, listener, tls, stopped: false }
    });
    match (error, bound) {
        (Some(e), _) => {
            rt.stop(job);
            Err(e)
        }
        (None, Some(a)) => Ok((job, a)),
        (None, None) => {
            rt.stop(job);
            Err(io::Error::other("the listening socket has no local address"))
        }
    }
}

struct PeerListener {
    peers: Peers,
    listener: Option<Listener>,
    tls: bool,
    stopped: bool,
}

impl Job for PeerListener {
    fn poll(&mut self, cx: &mut Context<'_>) -> Step {
        let Some(l) = self.listener.as_mut().filter(|_| !self.stopped) else {
            return Step::Done;
        };
        l.absorb(cx);
        for _ in 0..ACCEPTS_PER_POLL {
            match l.accept() {
                Ok(Some((stream, from))) => {
                    log::debug!(target: "peer", "accepted a client connection from {from}{}", if self.tls { " (TLS)" } else { "" });
                    super::conn::accepted(cx.runtime(), self.peers.clone(), stream, from, self.tls);
                }
                Ok(None) => return Step::Pending,
                Err(e) => {
                    log::warn!(target: "peer", "accepting a client connection: {e}");
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
        format!("peer listener{}", if self.tls { " (TLS)" } else { "" })
    }
}
