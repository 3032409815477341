//! The hub session job: [`connect`] starts one per hub, running the driver
//! (`driver`) in the dialect of the hub's address, and carrying the
//! session over to the other dialect when a followed redirect leads to a hub
//! of the other protocol. Also the router of the shared UDP listener, which
//! needs both dialects to tell whose datagram it is.
//!
//! The top of `hub`: it depends on every other part of it, nothing in `hub`
//! depends on it.

use std::net::SocketAddr;
use std::rc::Rc;

use super::adc::{self, Adc};
use super::driver::Driver;
use super::model::{HubError, HubId, HubParams, HubSink, Protocol};
use super::nmdc::{self, Nmdc};
use super::registry::Hubs;
use super::udp::UdpFrame;
use crate::address::HubUrl;
use crate::runtime::{Context, Job, Runtime, Step};

/// Starts a hub session job for `params`; the hub appears in [`Hubs`] at once
/// (state `connecting`) and reports to `sink`.
pub fn connect(
    rt: &Runtime,
    hubs: &Hubs,
    params: HubParams,
    sink: Rc<dyn HubSink>,
) -> Result<HubId, HubError> {
    let addr = HubUrl::parse(&params.url).map_err(|e| HubError::BadAddress(e.to_string()))?;
    if params.nick.is_empty() || params.nick.contains(['$', '|', ' ', '<', '>']) {
        return Err(HubError::BadParams(format!(
            "nick {:?}: it must be non-empty and have no space, '$', '|', '<' or '>'",
            params.nick
        )));
    }
    // Weak: the registry holds the router.
    let weak = hubs.downgrade();
    hubs.set_udp_router(Rc::new(move |cx: &Context<'_>, data: &[u8], from: SocketAddr| {
        if let Some(hubs) = weak.upgrade() {
            route_udp(cx, &hubs, data, from);
        }
    }));
    let hubs = hubs.clone();
    Ok(rt.spawn_with(|id| {
        if addr.is_adc() {
            HubJob::Adc(Driver::new(id, rt, hubs, params, addr, sink))
        } else {
            HubJob::Nmdc(Driver::new(id, rt, hubs, params, addr, sink))
        }
    }))
}

/// A hub session in the dialect of the hub it is connected to.
enum HubJob {
    Nmdc(Driver<Nmdc>),
    Adc(Driver<Adc>),
    /// Only while being carried over to the other dialect.
    Moving,
}

impl Job for HubJob {
    fn poll(&mut self, cx: &mut Context<'_>) -> Step {
        let step = match self {
            HubJob::Nmdc(d) => d.poll(cx),
            HubJob::Adc(d) => d.poll(cx),
            HubJob::Moving => Step::Done,
        };
        let switch = match self {
            HubJob::Nmdc(d) => d.s.switch_to.take(),
            HubJob::Adc(d) => d.s.switch_to.take(),
            HubJob::Moving => None,
        };
        if let Some(to) = switch {
            *self = match (std::mem::replace(self, HubJob::Moving), to) {
                (HubJob::Nmdc(d), Protocol::Adc) => HubJob::Adc(d.into_dialect()),
                (HubJob::Adc(d), Protocol::Nmdc) => HubJob::Nmdc(d.into_dialect()),
                (same, _) => same,
            };
            cx.repoll();
        }
        step
    }

    fn is_alive(&self) -> bool {
        match self {
            HubJob::Nmdc(d) => d.is_alive(),
            HubJob::Adc(d) => d.is_alive(),
            HubJob::Moving => false,
        }
    }

    fn stop(&mut self) {
        match self {
            HubJob::Nmdc(d) => d.stop(),
            HubJob::Adc(d) => d.stop(),
            HubJob::Moving => {}
        }
    }

    fn name(&self) -> String {
        match self {
            HubJob::Nmdc(d) => d.name(),
            HubJob::Adc(d) => d.name(),
            HubJob::Moving => "hub (moving)".into(),
        }
    }
}

/// Hands a datagram of the shared UDP listener to the session it is for:
/// ADC `URES` by the search token it carries ([`adc::udp_route`]), NMDC
/// `$SR` by the hub address or name it gives, else the hub searched last
/// ([`Hubs::route_result`]).
fn route_udp(cx: &Context<'_>, hubs: &Hubs, data: &[u8], from: SocketAddr) {
    let hub = if data.starts_with(b"U") {
        adc::udp_route(hubs, data, from)
    } else {
        match nmdc::udp_route(data) {
            Some((address, name)) => {
                let hub = hubs.route_result(&address, &name);
                if hub.is_none() {
                    log::debug!(target: "hub", "UDP search result from {from} for an unknown hub {address:?}; dropped");
                }
                hub
            }
            None => {
                log::debug!(target: "hub", "UDP datagram from {from} is not a search result; dropped");
                None
            }
        }
    };
    if let Some(h) = hub {
        cx.send(h, UdpFrame(data.to_vec()));
    }
}
