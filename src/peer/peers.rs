//! [`Peers`], the peer service's state: expectations, slots, the upload
//! limit, running uploads, the waiting line, the listeners' ports, and the
//! subscribers told of uploads.
//!
//! The connection jobs (`conn`, `listen`) use it; what starts them (the
//! listeners, a relayed request) is in `start.rs`, above them, so this module
//! imports neither.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::net::IpAddr;
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

use super::model::{
    AskError, ConnectionAsk, DownloadSide, PeerOptions, PeerUser, SlotAsk, SlotPolicy, SlotVerdict,
    Timeouts, UploadEvent, UploadInfo, EXPECT_TIMEOUT, MAX_EXPECTED, MAX_PENDING_PER_ADDRESS,
};
use super::session::{PeerId, Protocol};

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

pub(super) struct Inner {
    pub(super) rt: Runtime,
    pub(super) hubs: Hubs,
    pub(super) me: Me,
    pub(super) share: RefCell<Option<ShareService>>,
    pub(super) opts: RefCell<PeerOptions>,
    pub(super) expected: RefCell<Vec<Expectation>>,
    pub(super) slots: RefCell<Slots>,
    pub(super) limiter: RefCell<TokenBucket>,
    pub(super) uploads: RefCell<BTreeMap<ConnKey, UploadInfo>>,
    pub(super) connections: Cell<usize>,
    pub(super) next_key: Cell<ConnKey>,
    /// The listening ports (plain, TLS) and their jobs.
    pub(super) ports: RefCell<Ports>,
    pub(super) subscribers: RefCell<Vec<Subscriber>>,
    pub(super) policy: RefCell<Option<SlotPolicy>>,
    /// A read connection to the hash store, for TTH leaves.
    pub(super) store: RefCell<Option<Store>>,
    pub(super) timeouts: Cell<Timeouts>,
    /// Users refused for want of a slot, in the order they first asked:
    /// their place is the queue position we answer (`$MaxedOut n`,
    /// `CSTA 253 ... QPn`). Forgotten when they get a slot or after
    /// [`WAITING_FOR`] without asking.
    pub(super) waiting: RefCell<Vec<(String, Instant)>>,
    /// Accepted connections not yet identified, per remote address.
    pub(super) pending: RefCell<std::collections::HashMap<IpAddr, u32>>,
    /// The download side, once the downloads service started.
    pub(super) downloads: RefCell<Option<Rc<dyn DownloadSide>>>,
}

/// How long a refused user keeps a place in the waiting line without
/// asking again.
pub const WAITING_FOR: Duration = Duration::from_secs(10 * 60);
/// The longest waiting line kept.
const MAX_WAITING: usize = 1000;

#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Ports {
    pub(super) plain: Option<(JobId, u16)>,
    pub(super) tls: Option<(JobId, u16)>,
}

/// The peer service; see the module documentation. A cheap `Rc` handle.
#[derive(Clone)]
pub struct Peers {
    pub(super) inner: Rc<Inner>,
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
    pub fn ask_connection(&self, ask: &ConnectionAsk) -> Result<(), AskError> {
        let mode = self.inner.opts.borrow().mode;
        let (plain, tls_port) = self.ports();
        let Some(info) = self.inner.hubs.get(ask.hub) else {
            return Err(AskError::HubGone);
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
                    return Err(AskError::TooManyExpected);
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
            return Err(AskError::BothPassive { nick: ask.nick.clone(), hub_url });
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

    pub(super) fn emit(&self, ev: &UploadEvent) {
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
