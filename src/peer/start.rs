//! Where peer connections start: the listener jobs of active mode
//! ([`Peers::listen`]) and the connection requests hubs relay
//! ([`Peers::on_request`]): dial the peer, or expect it on our listener.
//!
//! Must not: keep state of its own (it is in `peers.rs`).

use std::net::{IpAddr, SocketAddr};

use crate::hub::{ConnectMode, HubCommand, PeerRequest};
use crate::runtime::Runtime;

use super::model::{PeerUser, UploadEvent, EXPECT_TIMEOUT, MAX_CONNECTIONS, MAX_EXPECTED};
use super::peers::{Expectation, Peers, Ports};
use super::session::Protocol;
use super::{conn, listen};

impl Peers {
    /// Opens the listeners in active mode (again, after a settings change);
    /// closes them in passive mode.
    pub fn listen(&self) {
        let opts = self.inner.opts.borrow().clone();
        let old = std::mem::take(&mut *self.inner.ports.borrow_mut());
        for (job, _) in [old.plain, old.tls].into_iter().flatten() {
            self.inner.rt.stop(job);
        }
        if opts.mode != ConnectMode::Active {
            return;
        }
        let mut ports = Ports::default();
        let plain = SocketAddr::new(opts.listen_address, opts.tcp_port);
        match listen::start(&self.inner.rt, self.clone(), plain, false) {
            Ok(p) => {
                log::info!(target: "peer", "client connections: listening on {}", p.1);
                ports.plain = Some((p.0, p.1.port()));
            }
            Err(e) => {
                log::error!(target: "peer", "listening for client connections on {plain}: {e}; other users cannot connect to us");
            }
        }
        if opts.tls && self.inner.me.tls().is_ok() {
            let tls = SocketAddr::new(opts.listen_address, opts.tls_port);
            match listen::start(&self.inner.rt, self.clone(), tls, true) {
                Ok(p) => {
                    log::info!(target: "peer", "TLS client connections: listening on {}", p.1);
                    ports.tls = Some((p.0, p.1.port()));
                }
                Err(e) => {
                    log::error!(target: "peer", "listening for TLS client connections on {tls}: {e}");
                }
            }
        }
        *self.inner.ports.borrow_mut() = ports;
    }

    // ----- connection requests ---------------------------------------------

    /// Handles a connection request as if a hub had relayed it (what hub
    /// sessions do through
    /// [`Hubs::set_peer_handler`](crate::hub::Hubs::set_peer_handler);
    /// benchmarks and tests call it directly).
    pub fn on_request(&self, rt: &Runtime, req: PeerRequest) {
        let who = req.nick.clone().unwrap_or_else(|| "a user".to_string());
        if req.reverse {
            return self.on_reverse(rt, req, &who);
        }
        let Some((host, port)) = req.address.clone() else {
            log::info!(target: "peer", "hub {}: a connection request from {who} without an address; ignored", req.hub_url);
            return;
        };
        let Ok(ip) = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() else {
            log::warn!(target: "peer", "hub {}: {who} asks us to connect to {host:?}, which is not an IP address; ignored", req.hub_url);
            return;
        };
        if port == 0 {
            log::warn!(target: "peer", "hub {}: {who} asks us to connect to port 0; ignored", req.hub_url);
            return;
        }
        if self.inner.connections.get() >= MAX_CONNECTIONS {
            log::warn!(target: "peer", "hub {}: a connection request from {who}: already {MAX_CONNECTIONS} client connections; ignored", req.hub_url);
            return;
        }
        if req.tls && !self.inner.opts.borrow().tls {
            log::info!(target: "peer", "hub {}: {who} asks for a TLS connection, and tls_transfers is off; ignored", req.hub_url);
            return;
        }
        if req.tls && self.inner.me.tls().is_err() {
            log::warn!(target: "peer", "hub {}: {who} asks for a TLS connection, but we have no certificate; ignored", req.hub_url);
            return;
        }
        log::debug!(target: "peer", "hub {}: connecting to {who} at {ip}:{port}{}", req.hub_url, if req.tls { " (TLS)" } else { "" });
        conn::connect(rt, self.clone(), req, SocketAddr::new(ip, port));
    }

    /// A passive user asks for a connection: we answer with a request of
    /// our own when we are active, and expect them on our listener.
    fn on_reverse(&self, rt: &Runtime, req: PeerRequest, who: &str) {
        let mode = self.inner.opts.borrow().mode;
        let (plain, tls_port) = self.ports();
        if mode != ConnectMode::Active || plain.is_none() {
            let reason = format!(
                "{who} on {} is passive and so are we: no connection is possible between two passive users",
                req.hub_url
            );
            log::warn!(target: "peer", "{reason}");
            self.emit(&UploadEvent::Failed {
                user: req.nick.clone().map(|nick| PeerUser {
                    hub: req.hub,
                    hub_url: req.hub_url.clone(),
                    nick,
                    cid: req.cid.clone(),
                }),
                file: String::new(),
                bytes: 0,
                seconds: 0.0,
                reason,
            });
            return;
        }
        let Some(nick) = req.nick.clone() else { return };
        let now = rt.now();
        {
            let mut expected = self.inner.expected.borrow_mut();
            expected.retain(|e| e.deadline > now);
            if expected.len() >= MAX_EXPECTED {
                log::warn!(target: "peer", "hub {}: a connection request from {who}: already {MAX_EXPECTED} connections expected; ignored", req.hub_url);
                return;
            }
            let (nick_bytes, _, _) = req.charset.encode(&nick);
            expected.push(Expectation {
                hub: req.hub,
                hub_url: req.hub_url.clone(),
                protocol: if req.adc { Protocol::Adc } else { Protocol::Nmdc },
                my_nick: req.my_nick.clone(),
                charset: req.charset,
                nick: nick.clone(),
                nick_bytes: nick_bytes.into_owned(),
                cid: req.cid.clone(),
                token: req.token.clone(),
                keyprint: req.keyprint.clone(),
                deadline: now + EXPECT_TIMEOUT,
                download: false,
            });
        }
        // TLS when the user asked for it (`DRCM ... ADCS/0.10`) and we
        // listen on a TLS port.
        let tls = req.adc && req.tls && tls_port.is_some();
        if req.tls && !tls {
            log::warn!(target: "peer", "hub {}: {who} asks for a TLS connection, but we have no TLS port; offering a plain one", req.hub_url);
        }
        let port = if tls { tls_port } else { plain }.unwrap_or_default();
        rt.send(req.hub, HubCommand::ConnectToMe { nick, port, tls, token: req.token.clone() });
    }
}
