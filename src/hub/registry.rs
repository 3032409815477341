//! The registry of one worker's hubs: each hub's [`HubInfo`] (written by
//! its session, read by Lua synchronously), our [`Identity`] and keys
//! ([`Me`]), the share sessions answer from, the peer layer's handler of
//! connection requests, free slots, and the shared UDP listener.
//!
//! A cheap handle passed explicitly (the composition root builds one per
//! client). It knows no protocol: sessions and the UDP router
//! (`hub::session`) sit above it.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::rc::{Rc, Weak};

use super::model::{
    ConnectMode, HubCommand, HubId, HubInfo, HubState, Identity, PeerHandler, PeerRequest, Role,
};
use super::udp::{self, Outgoing, Router, Senders, UdpEndpoint};
use super::users::HubCounts;
use crate::address::HubUrl;
use crate::identity::Me;
use crate::runtime::{Context, Runtime};
use crate::search::{Query, MAX_RESULTS_ACTIVE, MAX_RESULTS_PASSIVE};
use crate::share::index::SearchHit as ShareHit;
use crate::share::service::{ShareEvent, ShareService};

struct HubsInner {
    hubs: RefCell<BTreeMap<HubId, Rc<RefCell<HubInfo>>>>,
    identity: RefCell<Identity>,
    /// The shared UDP listener; `Some(None)` after binding failed (not retried).
    udp: RefCell<Option<Option<UdpEndpoint>>>,
    /// Our keys (PID, CID, certificate), given by the composition root.
    me: RefCell<Option<Me>>,
    /// The share, once [`follow_share`] was called.
    share: RefCell<Option<ShareService>>,
    /// The send-only UDP sockets of passive mode (see [`Hubs::send_udp`]).
    senders: RefCell<Senders>,
    /// Who gets the datagrams the UDP listener receives (set by
    /// `hub::session`, which knows the protocols).
    udp_router: RefCell<Option<Router>>,
    /// Who handles connection requests (the peer layer), when set.
    peer_handler: RefCell<Option<PeerHandler>>,
    /// Free upload slots as the peer layer counts them; `None`: all of
    /// [`Identity::slots`].
    free_slots: std::cell::Cell<Option<u32>>,
}

/// The hubs of this worker thread and our [`Identity`].
///
/// A cheap `Rc` handle; one registry per client (built by the composition root),
/// like the Lua host. Sessions write their [`HubInfo`]; readers borrow it
/// briefly and never across a call into a session.
#[derive(Clone)]
pub struct Hubs {
    inner: Rc<HubsInner>,
}

/// A handle that does not keep the registry alive, for what the registry
/// itself holds (the UDP router, the share's observer).
#[derive(Clone)]
pub(crate) struct WeakHubs(Weak<HubsInner>);

impl WeakHubs {
    /// The registry, while it lives.
    pub(crate) fn upgrade(&self) -> Option<Hubs> {
        self.0.upgrade().map(|inner| Hubs { inner })
    }
}

impl fmt::Debug for Hubs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hubs").field("hubs", &self.inner.hubs.borrow().len()).finish()
    }
}

impl Default for Hubs {
    fn default() -> Hubs {
        Hubs::new()
    }
}

impl Hubs {
    /// An empty registry. The composition root builds the client's one and
    /// passes it to whoever needs it (sessions keep a handle).
    pub fn new() -> Hubs {
        Hubs {
            inner: Rc::new(HubsInner {
                hubs: RefCell::new(BTreeMap::new()),
                identity: RefCell::new(Identity::default()),
                udp: RefCell::new(None),
                me: RefCell::new(None),
                share: RefCell::new(None),
                senders: RefCell::new(Senders::default()),
                udp_router: RefCell::new(None),
                peer_handler: RefCell::new(None),
                free_slots: std::cell::Cell::new(None),
            }),
        }
    }

    /// Sets who handles the connection requests sessions receive (the peer
    /// layer); without one they are only reported as events.
    pub fn set_peer_handler(&self, handler: Option<PeerHandler>) {
        *self.inner.peer_handler.borrow_mut() = handler;
    }

    /// Hands a connection request to the peer layer, if there is one.
    pub(crate) fn peer_request(&self, rt: &Runtime, request: PeerRequest) {
        let handler = self.inner.peer_handler.borrow().clone();
        match handler {
            Some(h) => h(rt, request),
            None => {
                log::debug!(target: "hub", "a connection request from {:?}: no peer layer", request.nick);
            }
        }
    }

    /// The share that sessions answer searches from, once there is one.
    pub fn share(&self) -> Option<ShareService> {
        self.inner.share.borrow().clone()
    }

    /// A hub's entry.
    pub fn get(&self, id: HubId) -> Option<Rc<RefCell<HubInfo>>> {
        self.inner.hubs.borrow().get(&id).cloned()
    }

    /// The ids of every hub session, oldest first.
    pub fn ids(&self) -> Vec<HubId> {
        self.inner.hubs.borrow().keys().copied().collect()
    }

    /// The ids of the hubs that are online.
    pub fn online(&self) -> Vec<HubId> {
        self.inner
            .hubs
            .borrow()
            .iter()
            .filter(|(_, h)| h.borrow().state == HubState::Online)
            .map(|(id, _)| *id)
            .collect()
    }

    pub(crate) fn insert(&self, info: HubInfo) -> Rc<RefCell<HubInfo>> {
        let id = info.id;
        let rc = Rc::new(RefCell::new(info));
        self.inner.hubs.borrow_mut().insert(id, rc.clone());
        rc
    }

    pub(crate) fn remove(&self, id: HubId) {
        self.inner.hubs.borrow_mut().remove(&id);
    }

    /// Our identity.
    pub fn identity(&self) -> Identity {
        self.inner.identity.borrow().clone()
    }

    /// Replaces our identity; when it changed, every hub session announces
    /// us again (rate-limited by each session).
    pub fn set_identity(&self, rt: &Runtime, identity: Identity) {
        let changed = *self.inner.identity.borrow() != identity;
        *self.inner.identity.borrow_mut() = identity;
        if changed {
            self.info_changed(rt, None);
        }
    }

    /// Tells every session but `except` that what we announce changed.
    pub(crate) fn info_changed(&self, rt: &Runtime, except: Option<HubId>) {
        for id in self.ids() {
            if Some(id) != except {
                rt.send(id, HubCommand::InfoChanged);
            }
        }
    }

    /// Free upload slots now (for `$SR`, `RES` and INF `FS`).
    pub fn free_slots(&self) -> u32 {
        let total = self.inner.identity.borrow().slots;
        self.inner.free_slots.get().map_or(total, |f| f.min(total))
    }

    /// The peer layer's count of free slots changed: sessions announce it
    /// (INF `FS`, rate-limited as every own-info change).
    pub fn set_free_slots(&self, rt: &Runtime, free: u32) {
        if self.inner.free_slots.replace(Some(free)) != Some(free) {
            self.info_changed(rt, None);
        }
    }

    /// Gives the sessions our keys (the composition root does, once).
    pub fn set_me(&self, me: Me) {
        *self.inner.me.borrow_mut() = Some(me);
    }

    /// Our keys as [`Me::load`] finds them in `dir` (tests that move a
    /// client's data folder).
    pub fn set_data_dir(&self, dir: &Path) {
        self.set_me(Me::load(Some(dir)));
    }

    /// The data folder our keys live in.
    pub fn data_dir(&self) -> Option<PathBuf> {
        self.me().data_dir().map(Path::to_path_buf)
    }

    /// Our keys: those given with [`Hubs::set_me`] (the composition root
    /// does), else (hubs driven without a client) keys for this run only.
    pub fn me(&self) -> Me {
        if let Some(me) = self.inner.me.borrow().as_ref() {
            return me.clone();
        }
        let me = Me::load(None);
        *self.inner.me.borrow_mut() = Some(me.clone());
        me
    }

    /// Our hub counts for the tag: hubs we are logged in to, by role.
    pub fn hub_counts(&self) -> HubCounts {
        let mut c = HubCounts::default();
        for h in self.inner.hubs.borrow().values() {
            match h.borrow().role {
                Some(Role::Normal) => c.normal += 1,
                Some(Role::Registered) => c.registered += 1,
                Some(Role::Op) => c.op += 1,
                None => {}
            }
        }
        c
    }

    /// The shared UDP listener's address, starting it on first use (active
    /// mode). `None` when it could not bind (logged once).
    pub(crate) fn udp(&self, rt: &Runtime) -> Option<UdpEndpoint> {
        if let Some(known) = *self.inner.udp.borrow() {
            if known.is_none_or(|e| rt.is_live(e.job)) {
                return known;
            }
        }
        let id = self.identity();
        let bind = SocketAddr::new(id.listen_address, id.udp_port);
        let router = self.inner.udp_router.borrow().clone().unwrap_or_else(|| {
            Rc::new(|_: &Context<'_>, _: &[u8], from: SocketAddr| {
                log::debug!(target: "hub", "UDP datagram from {from}: no hub takes datagrams; dropped");
            })
        });
        let started = udp::start(rt, bind, router);
        let endpoint = match started {
            Ok(e) => {
                log::info!(target: "hub", "UDP search results: listening on {}", e.addr);
                Some(e)
            }
            Err(e) => {
                log::error!(target: "hub", "binding the UDP port for search results on {bind}: {e}; searching passively");
                None
            }
        };
        *self.inner.udp.borrow_mut() = Some(endpoint);
        endpoint
    }

    /// The hub a UDP `$SR` belongs to: by the hub address it names, else its
    /// hub name, else the hub we searched on last.
    pub(crate) fn route_result(&self, hub_address: &str, hub_name: &str) -> Option<HubId> {
        let hubs = self.inner.hubs.borrow();
        let by_address = hubs.iter().find(|(_, h)| {
            let h = h.borrow();
            !hub_address.is_empty()
                && (h.address.is_some_and(|a| a.to_string() == hub_address)
                    || HubUrl::parse(&h.url).is_ok_and(|a| a.authority() == hub_address))
        });
        if let Some((id, _)) = by_address {
            return Some(*id);
        }
        if !hub_name.is_empty() {
            if let Some((id, _)) = hubs.iter().find(|(_, h)| h.borrow().name == hub_name) {
                return Some(*id);
            }
        }
        hubs.iter()
            .filter_map(|(id, h)| h.borrow().last_search.map(|t| (t, *id)))
            .max()
            .map(|(_, id)| id)
    }

    /// Our answers to someone's search: the running share service's hits
    /// (after its answer filter), at most [`MAX_RESULTS_ACTIVE`] for an
    /// active searcher (results by UDP) and [`MAX_RESULTS_PASSIVE`] for a
    /// passive one (results through the hub). None without a share service.
    pub(crate) fn share_answers(&self, query: &Query, active: bool) -> Vec<ShareHit> {
        let Some(share) = self.share() else { return Vec::new() };
        share.answer(query, if active { MAX_RESULTS_ACTIVE } else { MAX_RESULTS_PASSIVE })
    }

    /// A handle that does not keep the registry alive.
    pub(crate) fn downgrade(&self) -> WeakHubs {
        WeakHubs(Rc::downgrade(&self.inner))
    }

    /// Hands the UDP listener's datagrams to `router` (`hub::session` does,
    /// before the first session starts).
    pub(crate) fn set_udp_router(&self, router: Router) {
        let mut r = self.inner.udp_router.borrow_mut();
        if r.is_none() {
            *r = Some(router);
        }
    }

    /// Sends one datagram to `to` (search results for an active searcher):
    /// from the shared listener in active mode, else from a send-only socket
    /// on the configured `listen_address`. Errors are logged, never
    /// returned: a lost result is not the session's concern.
    pub(crate) fn send_udp(&self, rt: &Runtime, to: SocketAddr, data: Vec<u8>) {
        let identity = self.identity();
        if identity.mode == ConnectMode::Active {
            if let Some(e) = self.udp(rt) {
                if !rt.send(e.job, Outgoing { to, data }) {
                    log::debug!(target: "hub", "a UDP search result to {to}: the listener is gone");
                }
                return;
            }
        }
        let sent = self.inner.senders.borrow_mut().send(identity.listen_address, to, &data);
        if let Err(e) = sent {
            log::debug!(target: "hub", "sending a UDP search result to {to}: {e}");
        }
    }
}

/// Makes our [`Identity`]'s share figures (`share_size`, `shared_files`)
/// follow `share`: set now, and again after each pass
/// ([`ShareEvent::Updated`]); every hub announces the change
/// ([`Hubs::set_identity`], rate-limited by the sessions).
pub fn follow_share(rt: &Runtime, hubs: &Hubs, share: &ShareService) {
    fn set(rt: &Runtime, hubs: &Hubs, size: u64, files: u64) {
        let identity = Identity { share_size: size, shared_files: files, ..hubs.identity() };
        hubs.set_identity(rt, identity);
    }
    *hubs.inner.share.borrow_mut() = Some(share.clone());
    set(rt, hubs, share.share_size(), share.shared_files());
    let rt = rt.clone();
    // Weak: the share keeps its observers, and the registry keeps the share.
    let weak = hubs.downgrade();
    share.subscribe(move |e| {
        if let (ShareEvent::Updated(summary), Some(hubs)) = (e, weak.upgrade()) {
            set(&rt, &hubs, summary.size, summary.files);
        }
    });
}
