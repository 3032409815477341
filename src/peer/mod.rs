//! Client-client connections: the listeners, the connection requests hubs
//! relay, and the upload side (other clients download from us).
//!
//! | module | owns |
//! |---|---|
//! | [`session`] | the C-C protocol of one connection (both protocols, handshake and requests), pure |
//! | [`serve`] | a request turned into bytes of the share to send, or a refusal |
//! | `conn` | the job of one peer connection: dial or accept, TLS, sniffing, streaming with back-pressure and the bandwidth limit |
//! | `listen` | the listener jobs of active mode (plain and TLS ports) |
//!
//! [`Peers`] is the service: hub sessions hand it every connection request
//! ([`PeerRequest`], through [`Hubs::set_peer_handler`]); it dials the peer,
//! or (a passive peer asking, we active) answers with a request of our own
//! and *expects* the peer on our listener. Every connection is matched to
//! an expectation (hub, nick or CID, token) before anything is served; one
//! that nobody expects, or that comes after [`EXPECT_TIMEOUT`], is closed.
//! It keeps the upload slots, the upload bandwidth limit and the list of
//! running uploads, and tells subscribers (the Lua host, the console) when an
//! upload starts, ends or fails.
//!
//! Decisions, written down:
//! - A connection request must carry an IP address (a hub relays what the
//!   peer said): dclua never resolves a host name a peer chose.
//! - At most [`MAX_CONNECTIONS`] peer connections and [`MAX_EXPECTED`]
//!   expectations at once: a hub that floods `$ConnectToMe` cannot make us
//!   a connection cannon.
//! - Downloads are the [`DownloadSide`]'s (the `download` module): this
//!   layer asks it, when a peer is identified, whether we want something
//!   from it, and then hands the ready connection's requests to the
//!   [`Fetch`]es it gives out. [`Peers::ask_connection`] is how the download
//!   side reaches a user: a `$ConnectToMe`/`DCTM` when we are active (and an
//!   expectation), a `$RevConnectToMe`/`DRCM` when we are passive.
//!
//! Must not: parse frames (that is [`session`]), open share files other than
//! through [`ShareService::resolve`] (that is [`serve`]), or block the
//! worker (files are read in bounded slices from the job).

pub(crate) mod conn;
pub(crate) mod listen;
pub mod serve;
pub mod session;

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use crate::hub::{ConnectMode, HubCommand, HubId, Hubs, PeerRequest};
use crate::identity::Me;
use crate::proto::tth::Tth;
use crate::runtime::{JobId, Runtime};
use crate::share::service::ShareService;
use crate::share::store::Store;
use crate::transfer::limit::TokenBucket;
use crate::transfer::slots::{ConnKey, Slot, Slots, SlotsFull, Want, MINI_SLOT_SIZE};
use session::{PeerId, Protocol, Refused, Request, Sending};

/// The download side as the peer layer sees it (the `download` module
/// implements it); called on the worker thread, never re-entered.
pub trait DownloadSide {
    /// Whether we want to download from `user` on a connection being set
    /// up. `token`: the ADC token of the connection (ours, when we asked).
    fn wants(&self, user: &PeerUser, token: Option<&str>) -> bool;
    /// The next thing to fetch on a ready download connection `conn` (over
    /// TLS or not); `None` when there is nothing (the connection then ends).
    fn next(
        &self,
        conn: ConnKey,
        user: &PeerUser,
        tls: bool,
        now: Instant,
    ) -> Option<Box<dyn Fetch>>;
    /// How many of `want` bytes may be read now under the download limit,
    /// and how long to wait before the next read: when none may be read,
    /// until some may; after a grant under a limit, the grant's own pace
    /// (so that connections take turns, see
    /// [`TokenBucket::grant`](crate::transfer::limit::TokenBucket::grant)).
    fn budget(&self, want: usize, now: Instant) -> (usize, Duration);
    /// Gives back bytes of a budget that were not read.
    fn give_back(&self, bytes: usize);
    /// A download connection with `user` ended (after its last fetch was
    /// finished or failed), for the reason given.
    fn ended(&self, conn: ConnKey, user: &PeerUser, why: &str, now: Instant);
}

/// One request of a download connection: what to ask, and where the bytes
/// go. The connection calls exactly one of `finish`, `refused`, `failed`.
pub trait Fetch {
    /// The request to send.
    fn request(&self) -> Request;
    /// The peer's header: `Ok` to read its bytes raw, or why not (the
    /// connection then ends).
    fn accept(&mut self, sending: &Sending) -> Result<(), String>;
    /// Whether more bytes may be read now. `Ok(false)`: the fetch's work is
    /// behind (its bytes wait for the helper threads); it wakes `job` when
    /// there is room again, and the connection leaves the socket alone
    /// meanwhile. An error (a block that failed its leaf hash, a disk error,
    /// found after the bytes were taken) ends the connection.
    fn ready(&mut self, _job: JobId) -> Result<bool, String> {
        Ok(true)
    }
    /// Bytes as they arrive; an error (a block that fails its leaf hash, a
    /// disk error) ends the connection.
    fn data(&mut self, bytes: &[u8], now: Instant) -> Result<(), String>;
    /// Every byte the header announced arrived.
    fn finish(self: Box<Self>, now: Instant);
    /// The peer refused the request.
    fn refused(self: Box<Self>, why: &Refused);
    /// The connection failed before the data was complete.
    fn failed(self: Box<Self>, why: &str);
}

/// How long an expected connection may take to arrive.
pub const EXPECT_TIMEOUT: Duration = Duration::from_secs(60);
/// Peer connections open at once, at most.
pub const MAX_CONNECTIONS: usize = 200;
/// Expected connections at once, at most.
pub const MAX_EXPECTED: usize = 500;
/// Accepted connections from one address still in their handshake, at
/// most: one address opening thousands cannot crowd out the others.
pub const MAX_PENDING_PER_ADDRESS: u32 = 8;

/// How the peer layer is set up (from the settings).
#[derive(Debug, Clone)]
pub struct PeerOptions {
    /// Active (we listen) or passive.
    pub mode: ConnectMode,
    /// The local address the listeners bind.
    pub listen_address: IpAddr,
    /// The plain TCP port; 0 = any free port.
    pub tcp_port: u16,
    /// The TLS port; 0 = any free port.
    pub tls_port: u16,
    /// Upload slots.
    pub slots: u32,
    /// Upload bandwidth limit in bytes per second; 0 = none.
    pub upload_limit: u64,
    /// Mini slots.
    pub mini_slots: u32,
    /// TLS connections offered (a TLS port in active mode) and accepted.
    pub tls: bool,
}

impl Default for PeerOptions {
    fn default() -> Self {
        PeerOptions {
            mode: ConnectMode::Passive,
            listen_address: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            tcp_port: 0,
            tls_port: 0,
            slots: 3,
            upload_limit: 0,
            mini_slots: crate::transfer::slots::MINI_SLOTS,
            tls: true,
        }
    }
}

impl PeerOptions {
    /// The options our identity carries (from the configuration).
    pub fn from_identity(id: &crate::hub::Identity) -> PeerOptions {
        PeerOptions {
            mode: id.mode,
            listen_address: id.listen_address,
            tcp_port: id.tcp_port,
            tls_port: id.tls_port,
            slots: id.slots,
            upload_limit: id.upload_limit,
            mini_slots: id.mini_slots,
            tls: id.tls_transfers,
        }
    }
}

/// The deadlines of peer connections (see `conn`); tests shorten them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// From connect or accept to the end of the handshake.
    pub handshake: Duration,
    /// Without a request once ready.
    pub idle: Duration,
    /// The slow-peer window while sending.
    pub check_every: Duration,
    /// The least a downloading peer must read per second, on average over a
    /// window (when the upload limit did not hold us back).
    pub min_rate: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            handshake: Duration::from_secs(30),
            idle: Duration::from_secs(120),
            check_every: Duration::from_secs(30),
            min_rate: 1024,
        }
    }
}

/// Who is at the other end of a peer connection, once known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerUser {
    /// The hub the connection belongs to.
    pub hub: HubId,
    /// That hub's address.
    pub hub_url: String,
    /// The peer's nick.
    pub nick: String,
    /// The peer's CID (ADC).
    pub cid: Option<String>,
}

impl PeerUser {
    /// The key slots are granted under: the CID, else hub and nick.
    pub fn slot_key(&self) -> String {
        match &self.cid {
            Some(cid) => cid.clone(),
            None => format!("{}\n{}", self.hub_url, self.nick),
        }
    }
}

/// A connection the download side asks for ([`Peers::ask_connection`]).
#[derive(Debug, Clone)]
pub struct ConnectionAsk {
    /// The hub the user is on.
    pub hub: HubId,
    /// The user's nick there.
    pub nick: String,
    /// The user's CID (ADC).
    pub cid: Option<String>,
    /// The token of the request (ADC; kept to recognise the connection).
    pub token: String,
    /// The user is active (can be connected to).
    pub user_active: bool,
    /// The user can take a TLS connection (ADC `ADC0`/`ADCS` in `SU`).
    pub tls: bool,
    /// The user's keyprint (INF `KP`).
    pub keyprint: Option<String>,
}

/// A running upload, as `dc.uploads()` lists it.
#[derive(Debug, Clone)]
pub struct UploadInfo {
    /// The peer.
    pub user: PeerUser,
    /// The share path, `files.xml.bz2` or a list folder.
    pub file: String,
    /// The first byte of this request.
    pub start: u64,
    /// Bytes of this request.
    pub bytes: u64,
    /// Bytes sent so far.
    pub sent: u64,
    /// When it started (pool clock).
    pub started: Instant,
    /// Over TLS.
    pub tls: bool,
    /// Compressed with zlib (ZLIG), as the peer asked.
    pub compressed: bool,
}

/// What subscribers hear of uploads.
#[derive(Debug, Clone)]
pub enum UploadEvent {
    /// A request is being served.
    Started(UploadInfo),
    /// It was sent completely.
    Finished {
        /// The upload.
        info: UploadInfo,
        /// How long it took.
        seconds: f64,
    },
    /// It ended before it was complete, or could not start.
    Failed {
        /// The peer, when known.
        user: Option<PeerUser>,
        /// What was asked for (empty before any request).
        file: String,
        /// Bytes sent before the failure.
        bytes: u64,
        /// How long it ran.
        seconds: f64,
        /// Why.
        reason: String,
    },
}

/// What the slot policy is asked.
#[derive(Debug, Clone)]
pub struct SlotAsk {
    /// The peer.
    pub user: PeerUser,
    /// The file asked for.
    pub file: String,
    /// Its size.
    pub size: u64,
    /// Whether a normal slot is free right now.
    pub free: bool,
}

/// What the slot policy decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotVerdict {
    /// The usual rules.
    Default,
    /// A slot beyond the count for this request.
    Grant,
    /// Refused, as if every slot were taken.
    Refuse,
}

/// The slot policy (a script's `dc.share.slot_policy`). Called without
/// waiting; an error in it must come back as [`SlotVerdict::Default`].
pub type SlotPolicy = Rc<dyn Fn(&SlotAsk) -> SlotVerdict>;

type Subscriber = Rc<dyn Fn(&UploadEvent)>;

/// A connection we asked for and wait for on our listener.
#[derive(Debug, Clone)]
pub(crate) struct Expectation {
    pub hub: HubId,
    pub hub_url: String,
    pub protocol: Protocol,
    pub my_nick: String,
    pub charset: &'static encoding_rs::Encoding,
    /// The peer's nick in the hub's charset (NMDC matches `$MyNick` bytes).
    pub nick: String,
    pub nick_bytes: Vec<u8>,
    pub cid: Option<String>,
    pub token: Option<String>,
    /// The user's certificate keyprint from its INF (`SHA256/...`): a TLS
    /// connection must present that certificate.
    pub keyprint: Option<String>,
    pub deadline: Instant,
    /// We asked for this connection to download.
    pub download: bool,
}

struct Inner {
    rt: Runtime,
    hubs: Hubs,
    me: Me,
    share: RefCell<Option<ShareService>>,
    opts: RefCell<PeerOptions>,
    expected: RefCell<Vec<Expectation>>,
    slots: RefCell<Slots>,
    limiter: RefCell<TokenBucket>,
    uploads: RefCell<BTreeMap<ConnKey, UploadInfo>>,
    connections: Cell<usize>,
    next_key: Cell<ConnKey>,
    /// The listening ports (plain, TLS) and their jobs.
    ports: RefCell<Ports>,
    subscribers: RefCell<Vec<Subscriber>>,
    policy: RefCell<Option<SlotPolicy>>,
    /// A read connection to the hash store, for TTH leaves.
    store: RefCell<Option<Store>>,
    timeouts: Cell<Timeouts>,
    /// Users refused for want of a slot, in the order they first asked:
    /// their place is the queue position we answer (`$MaxedOut n`,
    /// `CSTA 253 ... QPn`). Forgotten when they get a slot or after
    /// [`WAITING_FOR`] without asking.
    waiting: RefCell<Vec<(String, Instant)>>,
    /// Accepted connections not yet identified, per remote address.
    pending: RefCell<std::collections::HashMap<IpAddr, u32>>,
    /// The download side, once the downloads service started.
    downloads: RefCell<Option<Rc<dyn DownloadSide>>>,
}

/// How long a refused user keeps a place in the waiting line without
/// asking again.
pub const WAITING_FOR: Duration = Duration::from_secs(10 * 60);
/// The longest waiting line kept.
const MAX_WAITING: usize = 1000;

#[derive(Debug, Default, Clone, Copy)]
struct Ports {
    plain: Option<(JobId, u16)>,
    tls: Option<(JobId, u16)>,
}

/// The peer service; see the module documentation. A cheap `Rc` handle.
#[derive(Clone)]
pub struct Peers {
    inner: Rc<Inner>,
}

impl std::fmt::Debug for Peers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peers")
            .field("connections", &self.inner.connections.get())
            .field("uploads", &self.inner.uploads.borrow().len())
            .finish()
    }
}

impl Peers {
    /// Starts the peer layer: takes the connection requests of `hubs` and,
    /// in active mode, opens the listeners.
    pub fn start(rt: &Runtime, hubs: &Hubs, me: Me, opts: PeerOptions) -> Peers {
        let now = rt.now();
        let peers = Peers {
            inner: Rc::new(Inner {
                rt: rt.clone(),
                hubs: hubs.clone(),
                me,
                share: RefCell::new(hubs.share()),
                slots: RefCell::new({
                    let mut s = Slots::new(opts.slots);
                    s.set_mini(opts.mini_slots);
                    s
                }),
                limiter: RefCell::new(TokenBucket::new(opts.upload_limit, now)),
                opts: RefCell::new(opts),
                expected: RefCell::new(Vec::new()),
                uploads: RefCell::new(BTreeMap::new()),
                connections: Cell::new(0),
                next_key: Cell::new(1),
                ports: RefCell::new(Ports::default()),
                subscribers: RefCell::new(Vec::new()),
                policy: RefCell::new(None),
                store: RefCell::new(None),
                timeouts: Cell::new(Timeouts::default()),
                waiting: RefCell::new(Vec::new()),
                pending: RefCell::new(std::collections::HashMap::new()),
                downloads: RefCell::new(None),
            }),
        };
        let weak: Weak<Inner> = Rc::downgrade(&peers.inner);
        hubs.set_peer_handler(Some(Rc::new(move |rt: &Runtime, req: PeerRequest| {
            if let Some(inner) = weak.upgrade() {
                Peers { inner }.on_request(rt, req);
            }
        })));
        peers.listen();
        peers
    }

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

    /// Applies changed options (a reloaded configuration): slots and the
    /// limit at once; the listeners again when the mode, address or ports
    /// changed.
    pub fn reconfigure(&self, opts: PeerOptions) {
        self.set_slots(opts.slots);
        self.set_upload_limit(opts.upload_limit);
        self.inner.slots.borrow_mut().set_mini(opts.mini_slots);
        let relisten = {
            let old = self.inner.opts.borrow();
            (old.mode, old.listen_address, old.tcp_port, old.tls_port, old.tls)
                != (opts.mode, opts.listen_address, opts.tcp_port, opts.tls_port, opts.tls)
        };
        *self.inner.opts.borrow_mut() = opts;
        if relisten {
            self.listen();
        }
    }

    /// The listening ports (plain, TLS), in active mode.
    pub fn ports(&self) -> (Option<u16>, Option<u16>) {
        let p = *self.inner.ports.borrow();
        (p.plain.map(|p| p.1), p.tls.map(|p| p.1))
    }

    /// Serves from this share.
    pub fn set_share(&self, share: Option<ShareService>) {
        *self.inner.share.borrow_mut() = share;
        *self.inner.store.borrow_mut() = None;
    }

    pub(crate) fn share(&self) -> Option<ShareService> {
        self.inner.share.borrow().clone()
    }

    /// Changes the slot count.
    pub fn set_slots(&self, slots: u32) {
        self.inner.slots.borrow_mut().set_total(slots);
        self.inner.opts.borrow_mut().slots = slots;
        self.publish_free_slots();
    }

    /// Changes the upload limit (bytes per second; 0 = none).
    pub fn set_upload_limit(&self, rate: u64) {
        let now = self.inner.rt.now();
        self.inner.limiter.borrow_mut().set_rate(rate, now);
        self.inner.opts.borrow_mut().upload_limit = rate;
    }

    /// The deadlines of new connections.
    pub fn timeouts(&self) -> Timeouts {
        self.inner.timeouts.get()
    }

    /// Changes the deadlines of new connections (tests shorten them).
    pub fn set_timeouts(&self, t: Timeouts) {
        self.inner.timeouts.set(t);
    }

    /// Free normal slots.
    pub fn free_slots(&self) -> u32 {
        self.inner.slots.borrow().free()
    }

    /// The running uploads.
    pub fn uploads(&self) -> Vec<UploadInfo> {
        self.inner.uploads.borrow().values().cloned().collect()
    }

    /// Peer connections open now.
    pub fn connections(&self) -> usize {
        self.inner.connections.get()
    }

    /// Tells `f` about every upload event from now on.
    pub fn subscribe(&self, f: impl Fn(&UploadEvent) + 'static) {
        self.inner.subscribers.borrow_mut().push(Rc::new(f));
    }

    /// Sets (or removes) the slot policy.
    pub fn set_slot_policy(&self, policy: Option<SlotPolicy>) {
        *self.inner.policy.borrow_mut() = policy;
    }

    /// What the slot policy says of `ask` (the default without one).
    pub fn slot_verdict(&self, ask: &SlotAsk) -> SlotVerdict {
        let policy = self.inner.policy.borrow().clone();
        policy.map_or(SlotVerdict::Default, |p| p(ask))
    }

    // ----- connection requests ---------------------------------------------

    /// Handles a connection request as if a hub had relayed it (what hub
    /// sessions do through [`Hubs::set_peer_handler`]; benchmarks and tests
    /// call it directly).
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

    /// Sets the download side (the downloads service, at start).
    pub fn set_download_side(&self, side: Option<Rc<dyn DownloadSide>>) {
        *self.inner.downloads.borrow_mut() = side;
    }

    pub(crate) fn download_side(&self) -> Option<Rc<dyn DownloadSide>> {
        self.inner.downloads.borrow().clone()
    }

    /// Asks `nick` on hub `hub` for a connection we download on: when we
    /// are active, a `$ConnectToMe`/`DCTM` to our port and an expectation;
    /// when passive, a `$RevConnectToMe`/`DRCM` (the user then sends a
    /// connection request, which the download side recognises by `token` on
    /// ADC and by nick on NMDC). `tls`: the user can take a TLS connection.
    /// An error when no connection is possible (both passive).
    pub fn ask_connection(&self, ask: &ConnectionAsk) -> Result<(), String> {
        let mode = self.inner.opts.borrow().mode;
        let (plain, tls_port) = self.ports();
        let Some(info) = self.inner.hubs.get(ask.hub) else {
            return Err("the hub is gone".into());
        };
        let (hub_url, my_nick, charset, adc) = {
            let i = info.borrow();
            (i.url.clone(), i.my_nick.clone(), i.charset, i.protocol == crate::hub::Protocol::Adc)
        };
        if mode == ConnectMode::Active && plain.is_some() {
            let tls = ask.tls && adc && tls_port.is_some() && self.inner.opts.borrow().tls;
            let port = if tls { tls_port } else { plain }.unwrap_or_default();
            let now = self.inner.rt.now();
            {
                let mut expected = self.inner.expected.borrow_mut();
                expected.retain(|e| e.deadline > now);
                if expected.len() >= MAX_EXPECTED {
                    return Err(format!("already {MAX_EXPECTED} connections expected"));
                }
                let (nick_bytes, _, _) = charset.encode(&ask.nick);
                expected.push(Expectation {
                    hub: ask.hub,
                    hub_url,
                    protocol: if adc { Protocol::Adc } else { Protocol::Nmdc },
                    my_nick,
                    charset,
                    nick: ask.nick.clone(),
                    nick_bytes: nick_bytes.into_owned(),
                    cid: ask.cid.clone(),
                    token: Some(ask.token.clone()),
                    keyprint: ask.keyprint.clone().filter(|_| tls),
                    deadline: now + EXPECT_TIMEOUT,
                    download: true,
                });
            }
            self.inner.rt.send(
                ask.hub,
                HubCommand::ConnectToMe {
                    nick: ask.nick.clone(),
                    port,
                    tls,
                    token: Some(ask.token.clone()),
                },
            );
            return Ok(());
        }
        if !ask.user_active {
            return Err(format!(
                "{} on {hub_url} is passive and so are we: no connection is possible between two passive users",
                ask.nick
            ));
        }
        self.inner.rt.send(
            ask.hub,
            HubCommand::RevConnectToMe { nick: ask.nick.clone(), token: Some(ask.token.clone()) },
        );
        Ok(())
    }

    /// The expectation an accepted connection's peer matches, taken out of
    /// the list; `None` when nobody expects it (or it came too late).
    pub(crate) fn take_expected(&self, protocol: Protocol, id: &PeerId) -> Option<Expectation> {
        let now = self.inner.rt.now();
        let mut expected = self.inner.expected.borrow_mut();
        expected.retain(|e| e.deadline > now);
        let i = expected.iter().position(|e| {
            e.protocol == protocol
                && match id {
                    PeerId::Nick(bytes) => e.nick_bytes == *bytes,
                    PeerId::Cid { cid, token } => {
                        token.is_some()
                            && *token == e.token
                            && e.cid.as_deref().is_none_or(|c| c == cid)
                    }
                }
        })?;
        Some(expected.remove(i))
    }

    // ----- what connections use ----------------------------------------------

    /// Takes a handshake place for an accepted connection from `ip`; false
    /// when that address has [`MAX_PENDING_PER_ADDRESS`] already.
    pub(crate) fn pending_start(&self, ip: IpAddr) -> bool {
        let mut p = self.inner.pending.borrow_mut();
        let n = p.entry(ip).or_insert(0);
        if *n >= MAX_PENDING_PER_ADDRESS {
            return false;
        }
        *n += 1;
        true
    }

    /// Gives a handshake place back (identified, or closed).
    pub(crate) fn pending_end(&self, ip: IpAddr) {
        let mut p = self.inner.pending.borrow_mut();
        if let Some(n) = p.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                p.remove(&ip);
            }
        }
    }

    pub(crate) fn me(&self) -> &Me {
        &self.inner.me
    }

    pub(crate) fn new_key(&self) -> ConnKey {
        let k = self.inner.next_key.get();
        self.inner.next_key.set(k + 1);
        k
    }

    pub(crate) fn opened(&self) {
        self.inner.connections.set(self.inner.connections.get() + 1);
    }

    pub(crate) fn closed(&self, key: ConnKey) {
        self.inner.connections.set(self.inner.connections.get().saturating_sub(1));
        self.release(key);
        self.inner.uploads.borrow_mut().remove(&key);
    }

    /// A slot for a request, or why not. The slot policy is asked for
    /// requests that need a normal slot.
    pub(crate) fn acquire(
        &self,
        key: ConnKey,
        user: &PeerUser,
        want: Want,
        file: &str,
    ) -> Result<Slot, SlotsFull> {
        let needs_normal = matches!(want, Want::File(size) if size > MINI_SLOT_SIZE);
        let ukey = user.slot_key();
        if needs_normal && self.inner.policy.borrow().is_some() {
            let size = match want {
                Want::File(s) => s,
                _ => 0,
            };
            let ask = SlotAsk {
                user: user.clone(),
                file: file.to_string(),
                size,
                free: self.inner.slots.borrow().free() > 0,
            };
            match self.slot_verdict(&ask) {
                SlotVerdict::Default => {}
                SlotVerdict::Grant => {
                    let mut slots = self.inner.slots.borrow_mut();
                    slots.grant(&ukey);
                    let got = slots.acquire(key, &ukey, want);
                    slots.revoke(&ukey);
                    drop(slots);
                    self.publish_free_slots();
                    return got;
                }
                SlotVerdict::Refuse => {
                    return Err(SlotsFull { slots: self.inner.slots.borrow().total() })
                }
            }
        }
        let got = self.inner.slots.borrow_mut().acquire(key, &ukey, want);
        if got.is_ok() && needs_normal {
            self.inner.waiting.borrow_mut().retain(|(u, _)| *u != ukey);
        }
        self.publish_free_slots();
        got
    }

    /// The place of a user refused for want of a slot in the waiting line
    /// (1 = next), taking a place when they have none.
    pub(crate) fn queue_position(&self, user: &PeerUser) -> u32 {
        let now = self.inner.rt.now();
        let key = user.slot_key();
        let mut w = self.inner.waiting.borrow_mut();
        w.retain(|(_, at)| now.saturating_duration_since(*at) < WAITING_FOR);
        let pos = match w.iter().position(|(u, _)| *u == key) {
            Some(i) => {
                w[i].1 = now;
                i
            }
            None if w.len() < MAX_WAITING => {
                w.push((key, now));
                w.len() - 1
            }
            None => w.len(),
        };
        u32::try_from(pos + 1).unwrap_or(u32::MAX)
    }

    pub(crate) fn release(&self, key: ConnKey) {
        self.inner.slots.borrow_mut().release(key);
        self.publish_free_slots();
    }

    /// Tells the hubs how many slots are free (they announce it).
    fn publish_free_slots(&self) {
        let free = self.inner.slots.borrow().free();
        self.inner.hubs.set_free_slots(&self.inner.rt, free);
    }

    /// Bytes an upload may send now under the limit (`want` when there is
    /// none), and how long to wait when it is 0.
    pub(crate) fn budget(&self, want: usize, now: Instant) -> (usize, Duration) {
        self.inner.limiter.borrow_mut().grant(want, 16 * 1024, now)
    }

    /// Returns bytes taken from the limit but not sent.
    pub(crate) fn give_back(&self, bytes: usize) {
        let mut l = self.inner.limiter.borrow_mut();
        if l.rate() != 0 {
            l.give_back(bytes);
        }
    }

    /// The TTH leaves of a root, from the hash store.
    pub(crate) fn leaves(&self, tth: &Tth) -> Option<Vec<u8>> {
        let mut store = self.inner.store.borrow_mut();
        if store.is_none() {
            let dir = self.inner.me.data_dir()?;
            match Store::open(&dir.join(crate::share::store::FILE_NAME)) {
                Ok(s) => *store = Some(s),
                Err(e) => {
                    log::warn!(target: "peer", "opening the hash store for TTH leaves: {e}");
                    return None;
                }
            }
        }
        match store.as_ref()?.tree(tth) {
            Ok(Some(tree)) => Some(tree.to_tthl()),
            Ok(None) => None,
            Err(e) => {
                log::warn!(target: "peer", "reading the TTH leaves of {tth}: {e}");
                None
            }
        }
    }

    pub(crate) fn upload_started(&self, key: ConnKey, info: UploadInfo) {
        log::debug!(target: "upload", "upload to {} ({}): {} ({} bytes){}", info.user.nick, info.user.hub_url, info.file, info.bytes, if info.tls { ", TLS" } else { "" });
        self.inner.uploads.borrow_mut().insert(key, info.clone());
        self.emit(&UploadEvent::Started(info));
    }

    pub(crate) fn upload_progress(&self, key: ConnKey, sent: u64) {
        if let Some(u) = self.inner.uploads.borrow_mut().get_mut(&key) {
            u.sent = sent;
        }
    }

    pub(crate) fn upload_finished(&self, key: ConnKey, now: Instant) {
        let Some(mut info) = self.inner.uploads.borrow_mut().remove(&key) else { return };
        info.sent = info.bytes;
        let seconds = now.saturating_duration_since(info.started).as_secs_f64();
        log::debug!(target: "upload", "upload to {} done: {} ({} bytes in {seconds:.1} s)", info.user.nick, info.file, info.bytes);
        self.emit(&UploadEvent::Finished { info, seconds });
    }

    pub(crate) fn upload_failed(
        &self,
        key: ConnKey,
        user: Option<&PeerUser>,
        file: &str,
        reason: &str,
        now: Instant,
    ) {
        let running = self.inner.uploads.borrow_mut().remove(&key);
        let (user, file, bytes, seconds) = match &running {
            Some(u) => (
                Some(u.user.clone()),
                u.file.clone(),
                u.sent,
                now.saturating_duration_since(u.started).as_secs_f64(),
            ),
            None => (user.cloned(), file.to_string(), 0, 0.0),
        };
        let nick = user.as_ref().map_or("a peer", |u| u.nick.as_str());
        log::info!(target: "upload", "upload to {nick}: {file}: {reason}");
        self.emit(&UploadEvent::Failed { user, file, bytes, seconds, reason: reason.to_string() });
    }

    fn emit(&self, ev: &UploadEvent) {
        let subs: Vec<Subscriber> = self.inner.subscribers.borrow().clone();
        for s in subs {
            s(ev);
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.hubs.set_peer_handler(None);
    }
}
