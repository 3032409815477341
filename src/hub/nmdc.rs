//! The NMDC dialect of the hub driver (`driver`): what NMDC means
//! for a session. The driver owns the connection, reconnecting, redirects,
//! keep-alives, raw lines and event batching; this module owns the login,
//! the end of the initial list, every command's meaning, our `$MyINFO`,
//! searches and answers. It never touches the socket.
//!
//! # Life of a session
//!
//! 1. **Connect** (the driver). `dchub://`, `nmdc://`, `nmdcs://` or
//!    `host:port`. A whole login must finish within the driver's
//!    `LOGIN_TIMEOUT`.
//! 2. **Log in.** On `$Lock`, pipelined as DC++ does: `$Supports` (what real
//!    clients send: `UserCommand NoGetINFO NoHello UserIP2 TTHSearch
//!    ZPipe0`, before `$Key`), `$Key` (computed on the lock's raw bytes),
//!    `$ValidateNick`. `$GetPass` gets `$MyPass` (or a login failure when no
//!    password is set); `$BadPass`, `$ValidateDenide`, `$HubIsFull` end the
//!    attempt. Our own `$Hello` means logged in: `$Version`,
//!    `$GetNickList`, our `$MyINFO`.
//! 3. **Initial list.** NMDC has no end-of-list marker, and hubs differ (most
//!    echo our `$MyINFO` after the list; verlihub-py does not, and sends
//!    its `$OpList` before the users, so `$OpList` marks no end either). The
//!    rule: the list ends when our own `$MyINFO` comes back, or at the end
//!    of a window of [`SETTLE_QUIET`] in which fewer than [`SETTLE_TRICKLE`]
//!    new users arrived. Never while the list keeps arriving, however long
//!    it takes (a million users over many seconds is one list); and a busy
//!    hub whose chat or updates never pause still gets its end, since only
//!    new users count. Users listed before that are in the user list but
//!    get no `UserJoined` (a greeter must not greet a whole hub on every
//!    login).
//! 4. **Online.** User list from `$MyINFO`, `$NickList`, `$OpList`,
//!    `$BotList`, `$Quit`, `$UserIP`; main chat and `$To:` PMs; `$HubName`,
//!    `$HubTopic`; `$ZOn` blocks (inflated by the [`ZonReader`](crate::net::ZonReader));
//!    `$Search` and `$SR`; `$ConnectToMe`/`$RevConnectToMe`; `$ForceMove`.
//!    A bare `|` is the keep-alive the driver sends.
//! 5. **Drop.** The driver reconnects with backoff and jitter. No reconnect
//!    after [`HubCommand::Disconnect`], `$BadPass`, a missing password, or
//!    when the delay is zero. `$ValidateDenide` does reconnect (the nick may
//!    be held by our own dropped connection for a while).
//!
//! # Decisions
//!
//! - **Our own PMs**: the hub does not echo them and the session reports no
//!   event for them (a bot answering `pm` events would otherwise answer
//!   itself). Our main chat comes back from the hub like anyone's.
//! - **Our own searches** come back from most hubs; they are not reported as
//!   incoming searches.
//! - **`$ForceMove`** is a redirect for the driver (to an NMDC or an ADC
//!   hub): it closes the connection (as DC++ does), reports
//!   [`HubEvent::Redirect`], and follows when its policy says so and the sink
//!   does not veto ([`HubCommand::RedirectVerdict`]).
//! - **`$MyINFO`** is sent again when what it says changes, at most every
//!   [`MYINFO_INTERVAL`] (every [`SHARE_INTERVAL`] when only the share size
//!   changed); the tag is `<dclua V:x,M:A|P,H:n/r/o,S:slots>`.
//! - **Active searches** use the one UDP socket of [`super::udp`]; results
//!   are routed back to the hub they name (`udp_route`).
//! - **Others' searches** are answered from the share service
//!   ([`Hubs::share_answers`](super::Hubs)): up to 10 `$SR` datagrams to an
//!   active searcher (through [`Hubs::send_udp`](super::Hubs)), up to 5
//!   `$SR`s through the hub to a passive one. Our own searches get no answer.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use encoding_rs::Encoding;

use super::driver::{After, Dialect, Framer, Session};
use super::model::{
    HubCommand, HubEvent, HubParams, HubState, PeerRequest, Protocol, Role, SearchFrom, SearchHit,
    Via,
};
use super::users::{User, UserList};
use crate::proto::nmdc::HubCounts as TagCounts;
use crate::proto::nmdc::{
    self, user::flags, Chat, ConnectToMe, Lock, Message, MyInfo, PrivateMessage, ResultHub, Search,
    SearchPattern, SearchResult, SearchSource, SizeLimit, Tag,
};
use crate::runtime::{Context, TimerId};
use crate::search::{FileType, Query};

/// The longest line accepted from a hub. `$MyINFO` lines are short, but a
/// `$NickList` of 100,000 users is about 1.5 MB.
pub const MAX_FRAME: usize = 4 << 20;
/// The window in which the initial user list is seen to have ended.
pub const SETTLE_QUIET: Duration = Duration::from_millis(300);
/// Fewer new users than this in a [`SETTLE_QUIET`] window: the initial list
/// has ended (a list arrives at thousands of users a second; a hub's
/// steady joins come at a few).
pub const SETTLE_TRICKLE: u32 = 10;
/// `$MyINFO` changes go out at most this often.
pub const MYINFO_INTERVAL: Duration = Duration::from_secs(2);
/// Share-size-only `$MyINFO` changes go out at most this often.
pub const SHARE_INTERVAL: Duration = Duration::from_secs(60);

/// What we announce in `$Supports`: what DC++ sends.
pub const SUPPORTS: &[&str] =
    &["UserCommand", "NoGetINFO", "NoHello", "UserIP2", "TTHSearch", "ZPipe0"];

/// The NMDC protocol version sent in `$Version`.
const VERSION: &str = "1,0091";

/// The NMDC state of a session (the driver keeps the rest).
pub(crate) struct Nmdc {
    /// The hub's charset.
    cs: &'static Encoding,
    /// Text not valid in `cs` was seen (and said, once per session).
    charset_flagged: bool,
    /// Our `$Hello` came: logged in (the initial list may still arrive).
    logged_in: bool,
    /// The hub asked for our password.
    registered: bool,
    last_myinfo: Option<MyInfo>,
    last_myinfo_at: Option<Instant>,
    /// The end-of-list window.
    settle_quiet: Option<TimerId>,
    /// New users in the current settle window (before the list ended).
    settle_new: u32,
    myinfo_timer: Option<TimerId>,
}

impl Dialect for Nmdc {
    const PROTOCOL: Protocol = Protocol::Nmdc;
    const KEEPALIVE: &'static [u8] = b"|";
    const FRAMER: Framer = Framer::Zon(MAX_FRAME);

    fn new(params: &HubParams) -> Nmdc {
        Nmdc {
            cs: params.charset,
            charset_flagged: false,
            logged_in: false,
            registered: false,
            last_myinfo: None,
            last_myinfo_at: None,
            settle_quiet: None,
            settle_new: 0,
            myinfo_timer: None,
        }
    }

    fn charset(params: &HubParams) -> &'static Encoding {
        params.charset
    }

    fn opened(_: &mut Session<Nmdc>, _: &mut Context<'_>) {
        // The hub speaks first ($Lock).
    }

    fn handle(s: &mut Session<Nmdc>, cx: &mut Context<'_>, frame: &[u8]) {
        s.handle(cx, frame);
    }

    fn logged_in(s: &Session<Nmdc>) -> bool {
        s.p.logged_in
    }

    fn reset(s: &mut Session<Nmdc>, cx: &mut Context<'_>) {
        let p = &mut s.p;
        p.logged_in = false;
        p.registered = false;
        p.last_myinfo = None;
        p.last_myinfo_at = None;
        for t in [p.settle_quiet.take(), p.myinfo_timer.take()].into_iter().flatten() {
            cx.cancel_timer(t);
        }
    }

    fn on_timer(s: &mut Session<Nmdc>, cx: &mut Context<'_>, t: TimerId) {
        if s.p.settle_quiet == Some(t) {
            s.p.settle_quiet = None;
            if s.p.logged_in && !s.announced {
                if s.p.settle_new < SETTLE_TRICKLE {
                    s.announce(cx);
                } else {
                    // The list is still arriving: another window.
                    s.p.settle_new = 0;
                    s.p.settle_quiet = Some(cx.after(SETTLE_QUIET));
                }
            }
        } else if s.p.myinfo_timer == Some(t) {
            s.p.myinfo_timer = None;
            s.send_my_info(cx, false);
        }
    }

    fn command(s: &mut Session<Nmdc>, cx: &mut Context<'_>, cmd: HubCommand) {
        let online = s.p.logged_in && s.connected();
        let nick = s.my_nick();
        match cmd {
            // The driver's own.
            HubCommand::Disconnect
            | HubCommand::RedirectVerdict { .. }
            | HubCommand::RawVerdict { .. } => {}
            HubCommand::InfoChanged => s.send_my_info(cx, false),
            // Raw lines may go out during the login too (a script doing
            // its own handshake steps).
            HubCommand::SendRaw(line) => {
                if !s.connected() {
                    log::debug!(target: "hub", "hub {}: not connected; dropped a raw line", s.params.url);
                    return;
                }
                let (bytes, _, _) = s.p.cs.encode(&line);
                s.out.extend_from_slice(&bytes);
                if !bytes.ends_with(b"|") {
                    s.out.push(b'|');
                }
            }
            _ if !online => {
                log::debug!(target: "hub", "hub {}: not logged in; dropped {cmd:?}", s.params.url);
            }
            HubCommand::Say { text, me } => {
                let text = if me { format!("/me {text}") } else { text };
                s.send_msg(&Message::Chat(Chat { nick: Some(nick), text }));
            }
            HubCommand::Pm { to, text, me } => {
                let text = if me { format!("/me {text}") } else { text };
                s.send_msg(&Message::PrivateMessage(PrivateMessage::new(&nick, &to, &text)));
            }
            HubCommand::Search(q) => s.search(cx, &q),
            HubCommand::ConnectToMe { nick: remote, port, tls, token: _ } => {
                let ip = s.announce_ip();
                s.send_msg(&Message::ConnectToMe(ConnectToMe {
                    tls,
                    ..ConnectToMe::new(&remote, &ip, port)
                }));
            }
            HubCommand::RevConnectToMe { nick: remote, token: _ } => {
                s.send_msg(&Message::RevConnectToMe { from: nick, to: remote });
            }
        }
    }

    /// A datagram from the UDP listener: `$SR` frames for us.
    fn udp(s: &mut Session<Nmdc>, data: &[u8]) {
        for frame in data.split(|&b| b == b'|').filter(|f| !f.is_empty()) {
            match nmdc::parse(frame, s.p.cs) {
                Message::SearchResult(sr) => s.on_result(sr, frame, Via::Udp),
                other => {
                    log::debug!(target: "hub", "hub {}: UDP datagram is not a result: {}", s.params.url, other.kind());
                }
            }
        }
    }
}

impl Session<Nmdc> {
    /// A connection request for the peer layer.
    fn peer_request(
        &self,
        nick: Option<String>,
        address: Option<(String, u16)>,
        tls: bool,
        reverse: bool,
    ) -> PeerRequest {
        PeerRequest {
            hub: self.id,
            hub_url: self.params.url.clone(),
            adc: false,
            my_nick: self.my_nick(),
            charset: self.p.cs,
            nick,
            cid: None,
            address,
            tls,
            token: None,
            reverse,
            keyprint: None,
        }
    }

    fn send_msg(&mut self, msg: &Message) {
        nmdc::encode_into(msg, self.p.cs, &mut self.out);
    }

    /// The address others reach us at: the configured external address, the
    /// one the hub reported, or the one we connect from.
    fn announce_ip(&self) -> String {
        if let Some(a) = self.hubs.identity().external_address {
            return a;
        }
        if let Some(ip) = self.info.borrow().my_ip.clone() {
            return ip;
        }
        self.local_ip.map_or_else(|| "0.0.0.0".to_string(), |ip| ip.to_string())
    }

    fn search(&mut self, cx: &mut Context<'_>, q: &Query) {
        let file_type = type_code(q);
        let pattern = match &q.tth {
            Some(tth) => SearchPattern::Tth(*tth),
            None => {
                let text = q.text();
                if text.trim().is_empty() {
                    log::debug!(target: "hub", "hub {}: a search without words or TTH is not sent", self.params.url);
                    return;
                }
                SearchPattern::Text(text)
            }
        };
        // NMDC has one bound: the others are applied to the results.
        let size = match (q.size, q.min_size, q.max_size) {
            (Some(s), _, _) => SizeLimit::AtLeast(s),
            (None, Some(m), _) => SizeLimit::AtLeast(m),
            (None, None, Some(m)) => SizeLimit::AtMost(m),
            (None, None, None) => SizeLimit::None,
        };
        let source = match self.active_udp() {
            Some(port) => SearchSource::Active { ip: self.announce_ip(), port },
            None => SearchSource::Passive { nick: self.my_nick() },
        };
        self.send_msg(&Message::Search(Search { source, size, file_type, pattern }));
        self.info.borrow_mut().last_search = Some(cx.now());
    }

    /// Our `$MyINFO` as it stands now.
    fn my_info(&self) -> MyInfo {
        let hubs = self.hubs.clone();
        let id = hubs.identity();
        let counts = hubs.hub_counts();
        let mode = if self.active_udp().is_some() { "A" } else { "P" };
        let tag = Tag {
            client: "dclua".to_string(),
            version: Some(env!("CARGO_PKG_VERSION").to_string()),
            mode: Some(mode.to_string()),
            hubs: Some(TagCounts {
                normal: counts.normal,
                registered: counts.registered,
                op: counts.op,
            }),
            slots: Some(id.slots),
            other: Vec::new(),
        };
        let mut flag = flags::NORMAL;
        if id.away {
            flag |= flags::AWAY;
        }
        MyInfo {
            nick: self.my_nick(),
            description: self.params.description.clone().unwrap_or(id.description),
            tag: Some(tag),
            connection: "100".to_string(),
            flag: Some(flag),
            email: self.params.email.clone().unwrap_or(id.email),
            share: id.share_size,
        }
    }

    /// Sends our `$MyINFO` if it changed, respecting the rate limits
    /// (`force`: the login one, sent at once).
    fn send_my_info(&mut self, cx: &mut Context<'_>, force: bool) {
        if !self.p.logged_in {
            return;
        }
        let mi = self.my_info();
        let Some(last) = &self.p.last_myinfo else {
            return self.put_my_info(cx, mi);
        };
        if *last == mi {
            return;
        }
        let share_only = MyInfo { share: last.share, ..mi.clone() } == *last;
        // The first share after an empty one (hashing done after the login)
        // is not held back: hubs and users judge us by it.
        let interval = if share_only && last.share != 0 { SHARE_INTERVAL } else { MYINFO_INTERVAL };
        let due = self.p.last_myinfo_at.map_or(cx.now(), |at| at + interval);
        if force || cx.now() >= due {
            self.put_my_info(cx, mi);
        } else if self.p.myinfo_timer.is_none() {
            self.p.myinfo_timer = Some(self.rt.timer_at(self.id, due));
        }
    }

    fn put_my_info(&mut self, cx: &mut Context<'_>, mi: MyInfo) {
        self.send_msg(&Message::MyInfo(mi.clone()));
        // We know what we announced: list ourselves with it at once (a hub
        // that echoes it replaces the entry with its own version).
        let me = User::from_my_info(&mut self.info.borrow_mut().users, &mi);
        let joined = !self.info.borrow().users.contains(me.nick());
        self.user_event(&me, joined);
        self.info.borrow_mut().users.insert(me);
        self.p.last_myinfo = Some(mi);
        self.p.last_myinfo_at = Some(cx.now());
        if let Some(t) = self.p.myinfo_timer.take() {
            cx.cancel_timer(t);
        }
    }

    fn handle(&mut self, cx: &mut Context<'_>, frame: &[u8]) {
        if self.dropping() {
            return;
        }
        if log::log_enabled!(target: "hub", log::Level::Trace) {
            log::trace!(target: "hub", "hub {} <- {}", self.params.url, String::from_utf8_lossy(frame));
        }
        if !self.p.charset_flagged && !frame.is_ascii() {
            self.check_charset(frame);
        }
        let msg = nmdc::parse(frame, self.p.cs);
        match msg {
            Message::Lock(lock) => self.on_lock(&lock),
            Message::Supports(_) => {}
            Message::HubName(name) => {
                self.info.borrow_mut().name = name;
                self.report_hub_info();
            }
            Message::HubTopic(topic) => {
                self.info.borrow_mut().topic = topic;
                self.report_hub_info();
            }
            Message::GetPass(_) => match self.params.password.clone() {
                Some(pw) => {
                    self.p.registered = true;
                    self.send_msg(&Message::MyPass(pw));
                }
                None => self.login_failed(
                    "the hub asks for a password and none is set".into(),
                    Some(frame),
                    After::Stop,
                ),
            },
            Message::BadPass => {
                self.login_failed("wrong password".into(), Some(frame), After::Stop);
            }
            Message::ValidateDenide(_) => self.login_failed(
                format!("the hub refused the nick {:?} (taken or reserved)", self.my_nick()),
                Some(frame),
                After::Reconnect,
            ),
            Message::HubIsFull => {
                self.request_drop("the hub is full".into(), After::Reconnect, false);
            }
            Message::Hello(nick) => {
                if nick == self.info.borrow().my_nick {
                    if !self.p.logged_in {
                        self.logged_in_now(cx);
                    }
                } else {
                    self.add_named(&nick);
                }
            }
            Message::MyInfo(mi) => self.on_my_info(cx, mi),
            Message::NickList(nicks) => {
                {
                    let mut info = self.info.borrow_mut();
                    let missing = nicks.len().saturating_sub(info.users.len());
                    info.users.reserve(missing);
                }
                for n in nicks {
                    self.add_named(&n);
                }
            }
            Message::OpList(nicks) => self.on_op_list(cx, nicks),
            Message::BotList(nicks) => {
                for n in nicks {
                    self.mark(&n, |u| u.bot = true);
                }
            }
            Message::Quit(nick) => self.on_quit(&nick),
            Message::Chat(c) => {
                let (text, me) = split_me(c.text);
                self.emit(HubEvent::Chat { nick: c.nick, text, me, raw: frame.into() });
            }
            Message::PrivateMessage(pm) => {
                let (text, me) = split_me(pm.text);
                self.emit(HubEvent::Pm {
                    from: pm.from,
                    to: pm.to,
                    nick: pm.nick,
                    text,
                    me,
                    raw: frame.into(),
                });
            }
            Message::Search(s) => self.on_search(s, frame),
            Message::SearchResult(sr) => self.on_result(sr, frame, Via::Hub),
            Message::ConnectToMe(ctm) => {
                self.emit(HubEvent::ConnectionRequest {
                    nick: ctm.sender.clone(),
                    address: Some(format!("{}:{}", ctm.ip, ctm.port)),
                    tls: ctm.tls,
                    reverse: false,
                    raw: frame.into(),
                });
                if ctm.remote != self.my_nick() {
                    return;
                }
                if ctm.nat.is_some() {
                    log::info!(target: "hub", "hub {}: a NAT-traversal connection request (not supported) from {:?}", self.params.url, ctm.sender);
                    return;
                }
                let request =
                    self.peer_request(ctm.sender, Some((ctm.ip, ctm.port)), ctm.tls, false);
                self.hubs.peer_request(&self.rt, request);
            }
            Message::RevConnectToMe { from, to } => {
                if to == self.info.borrow().my_nick {
                    self.emit(HubEvent::ConnectionRequest {
                        nick: Some(from.clone()),
                        address: None,
                        tls: false,
                        reverse: true,
                        raw: frame.into(),
                    });
                    let request = self.peer_request(Some(from), None, false, true);
                    self.hubs.peer_request(&self.rt, request);
                }
            }
            Message::ForceMove(addr) => {
                self.redirected(&addr, "");
            }
            Message::UserIp(entries) => {
                let me = self.my_nick();
                for e in entries {
                    let Some(ip) = e.ip else { continue };
                    if e.nick == me {
                        self.info.borrow_mut().my_ip = Some(ip.clone());
                    }
                    self.mark(&e.nick, |u| u.ip = ip.parse().ok());
                }
            }
            Message::KeepAlive
            | Message::LogedIn(_)
            | Message::UserCommand(_)
            | Message::ZOn
            | Message::GetInfo { .. } => {}
            Message::Raw(raw) => match raw.error {
                Some(e) => {
                    log::debug!(target: "hub", "hub {}: {e}: {:?}", self.params.url, String::from_utf8_lossy(&raw.frame));
                }
                None => {
                    log::debug!(target: "hub", "hub {}: unknown command {:?}", self.params.url, String::from_utf8_lossy(raw.command()));
                }
            },
            other => {
                log::debug!(target: "hub", "hub {}: ignored {} from the hub", self.params.url, other.kind());
            }
        }
    }

    fn on_lock(&mut self, lock: &Lock) {
        if self.p.logged_in {
            log::debug!(target: "hub", "hub {}: ignored a $Lock after the login", self.params.url);
            return;
        }
        self.info.borrow_mut().state = HubState::LoggingIn;
        if lock.is_extended() {
            let features = SUPPORTS.iter().map(|s| s.to_string()).collect();
            self.send_msg(&Message::Supports(features));
        }
        self.send_msg(&Message::Key(lock.key()));
        let nick = self.my_nick();
        self.send_msg(&Message::ValidateNick(nick));
    }

    fn logged_in_now(&mut self, cx: &mut Context<'_>) {
        self.p.logged_in = true;
        if let Some(t) = self.login_timer.take() {
            cx.cancel_timer(t);
        }
        let role = if self.p.registered { Role::Registered } else { Role::Normal };
        self.info.borrow_mut().role = Some(role);
        log::info!(target: "hub", "hub {}: logged in as {}", self.params.url, self.my_nick());
        self.send_msg(&Message::Version(VERSION.into()));
        self.send_msg(&Message::GetNickList);
        self.send_my_info(cx, true);
        self.p.settle_new = 0;
        self.p.settle_quiet = Some(cx.after(SETTLE_QUIET));
        // Our hub counts changed for every other hub's tag.
        self.hubs.info_changed(&self.rt, Some(self.id));
    }

    /// Says once per session that the hub sends text the charset cannot
    /// read (it is shown with replacement characters): the usual sign of a
    /// hub speaking cp1251 or cp1252 to a client set to UTF-8.
    ///
    /// Runs on every non-ASCII line until it fires, so it must cost little:
    /// UTF-8 is validated in place (no copy); a single-byte charset reads
    /// every byte, so there is nothing to check (text in the wrong one is
    /// garbled but valid, and only the user can tell); other multi-byte
    /// charsets are decoded once more.
    fn check_charset(&mut self, frame: &[u8]) {
        let valid = if self.p.cs == encoding_rs::UTF_8 {
            std::str::from_utf8(frame).is_ok()
        } else {
            self.p.cs.is_single_byte()
                || self.p.cs.decode_without_bom_handling_and_without_replacement(frame).is_some()
        };
        if valid {
            return;
        }
        self.p.charset_flagged = true;
        let sample = crate::text::neutralise_bytes(&frame[..frame.len().min(60)]);
        log::warn!(
            target: "hub",
            "hub {}: text that is not valid {} (\"{sample}...\"); set the hub's charset (cp1251, cp1252, ...) if it speaks another",
            self.params.url,
            self.p.cs.name(),
        );
    }

    /// The initial list is in: report the hub as online.
    fn announce(&mut self, cx: &mut Context<'_>) {
        if let Some(t) = self.p.settle_quiet.take() {
            cx.cancel_timer(t);
        }
        self.went_online(cx);
    }

    /// Reports a join or an update (after the initial list; before it,
    /// joins are only counted for the end-of-list rule).
    fn user_event(&mut self, user: &User, joined: bool) {
        if !self.announced {
            self.p.settle_new += u32::from(joined);
            return;
        }
        self.report_user(user.clone(), joined);
    }

    /// A nick seen without details (`$NickList`, `$Hello`): added if new.
    fn add_named(&mut self, nick: &str) {
        if nick.is_empty() || self.info.borrow().users.contains(nick) {
            return;
        }
        let user = User::named(nick);
        self.user_event(&user, true);
        self.info.borrow_mut().users.insert(user);
    }

    /// Changes a user's flags (adding the user if unknown), reporting an
    /// update when something changed.
    fn mark(&mut self, nick: &str, f: impl FnOnce(&mut User)) {
        if nick.is_empty() {
            return;
        }
        let (user, joined) = {
            let info = self.info.borrow();
            match info.users.get(nick) {
                Some(old) => {
                    let mut u = old.clone();
                    f(&mut u);
                    if u == *old {
                        return;
                    }
                    (u, false)
                }
                None => {
                    let mut u = User::named(nick);
                    f(&mut u);
                    (u, true)
                }
            }
        };
        self.user_event(&user, joined);
        self.info.borrow_mut().users.insert(user);
    }

    fn on_op_list(&mut self, cx: &mut Context<'_>, nicks: Vec<String>) {
        let me = self.my_nick();
        for n in &nicks {
            self.mark(n, |u| u.op = true);
        }
        if nicks.contains(&me) && self.info.borrow().role.is_some_and(|r| r != Role::Op) {
            self.info.borrow_mut().role = Some(Role::Op);
            self.send_my_info(cx, false);
            self.hubs.info_changed(&self.rt, Some(self.id));
        }
    }

    fn on_my_info(&mut self, cx: &mut Context<'_>, mi: MyInfo) {
        let (user, own, joined) = {
            let mut info = self.info.borrow_mut();
            let mut user = User::from_my_info(&mut info.users, &mi);
            let joined = match info.users.get(user.nick()) {
                Some(old) => {
                    // Flags that $MyINFO does not carry.
                    user.op = old.op;
                    user.bot = old.bot;
                    user.ip = old.ip;
                    false
                }
                None => true,
            };
            let own = user.nick() == info.my_nick;
            (user, own, joined)
        };
        self.user_event(&user, joined);
        self.info.borrow_mut().users.insert(user);
        if own && self.p.logged_in && !self.announced {
            self.announce(cx);
        }
    }

    fn on_quit(&mut self, nick: &str) {
        let removed = self.info.borrow_mut().users.remove(nick).is_some();
        if removed {
            self.report_left(nick);
        }
    }

    fn on_search(&mut self, s: Search, frame: &[u8]) {
        let from = match &s.source {
            SearchSource::Passive { nick } => {
                if *nick == self.info.borrow().my_nick {
                    return;
                }
                SearchFrom { nick: Some(nick.clone()), address: None }
            }
            SearchSource::Active { ip, port } => {
                let own = self.active_udp().is_some_and(|p| p == *port)
                    && (*ip == self.announce_ip()
                        || self.local_ip.is_some_and(|l| l.to_string() == *ip));
                if own {
                    return;
                }
                SearchFrom { nick: None, address: Some(format!("{ip}:{port}")) }
            }
        };
        let mut q = Query { file_type: type_of_code(s.file_type), ..Query::default() };
        match s.pattern {
            SearchPattern::Tth(t) => q.tth = Some(t),
            SearchPattern::Text(words) => {
                q.include = words.split_whitespace().map(str::to_string).collect();
            }
        }
        match s.size {
            SizeLimit::None => {}
            SizeLimit::AtLeast(n) => q.min_size = Some(n),
            SizeLimit::AtMost(n) => q.max_size = Some(n),
        }
        self.answer(&q, &s.source);
        self.emit(HubEvent::Search { query: q, from, raw: frame.into() });
    }

    /// Answers a search from our share: `$SR`s by UDP to an active searcher,
    /// through the hub (with the searcher as target) to a passive one.
    /// Paths use `\`; a file carries `TTH:<root>` in place of the hub name.
    fn answer(&mut self, q: &Query, source: &SearchSource) {
        let to = match source {
            SearchSource::Active { ip, port } => match ip.parse::<IpAddr>() {
                Ok(ip) => Some(SocketAddr::new(ip, *port)),
                Err(_) => {
                    log::debug!(target: "hub", "hub {}: not answering a search from the bad address {ip:?}", self.params.url);
                    return;
                }
            },
            SearchSource::Passive { .. } => None,
        };
        let hits = self.hubs.share_answers(q, to.is_some());
        if hits.is_empty() {
            return;
        }
        let (nick, hub_name, hub_address) = {
            let info = self.info.borrow();
            let address = info.address.map_or_else(|| self.addr.authority(), |a| a.to_string());
            (info.my_nick.clone(), info.label().to_string(), address)
        };
        let slots = self.hubs.identity().slots;
        let target = match source {
            SearchSource::Passive { nick } => Some(nick.clone()),
            SearchSource::Active { .. } => None,
        };
        for hit in hits {
            let sr = SearchResult {
                nick: nick.clone(),
                path: hit.path.replace('/', "\\"),
                size: (!hit.is_dir).then_some(hit.size),
                free_slots: self.hubs.free_slots(),
                total_slots: slots,
                hub: match hit.tth {
                    Some(t) => ResultHub::Tth(t),
                    None => ResultHub::Name(hub_name.clone()),
                },
                hub_address: hub_address.clone(),
                target: target.clone(),
            };
            let msg = Message::SearchResult(sr);
            match to {
                Some(addr) => {
                    let mut datagram = Vec::new();
                    nmdc::encode_into(&msg, self.p.cs, &mut datagram);
                    self.hubs.send_udp(&self.rt, addr, datagram);
                }
                None => self.send_msg(&msg),
            }
        }
    }

    fn on_result(&mut self, sr: SearchResult, frame: &[u8], via: Via) {
        let (tth, hub_name) = match sr.hub {
            ResultHub::Tth(t) => (Some(t), String::new()),
            ResultHub::Name(n) => (None, n),
        };
        let hit = SearchHit {
            nick: sr.nick,
            path: SearchHit::path_from_wire(&sr.path, '\\'),
            size: sr.size,
            tth,
            free_slots: sr.free_slots,
            slots: sr.total_slots,
            hub_name,
            via,
            raw: frame.into(),
        };
        self.emit(HubEvent::SearchResult { hit });
    }
}

/// The NMDC search type code of a query: 9 for a TTH search, else its
/// type's (1 any ... 8 folder; NMDC has no "files only": any, and the
/// results are filtered).
pub fn type_code(q: &Query) -> u8 {
    if q.tth.is_some() {
        return 9;
    }
    match q.file_type {
        FileType::Any | FileType::File => 1,
        FileType::Audio => 2,
        FileType::Compressed => 3,
        FileType::Document => 4,
        FileType::Executable => 5,
        FileType::Picture => 6,
        FileType::Video => 7,
        FileType::Folder => 8,
    }
}

/// The query type of an NMDC type code: 9 (TTH) and the codes other
/// clients invent (10 to 13 exist in the wild) search any file.
fn type_of_code(code: u8) -> FileType {
    match code {
        2 => FileType::Audio,
        3 => FileType::Compressed,
        4 => FileType::Document,
        5 => FileType::Executable,
        6 => FileType::Picture,
        7 => FileType::Video,
        8 => FileType::Folder,
        _ => FileType::Any,
    }
}

/// The hub address and hub name an NMDC datagram's first `$SR` gives, for
/// the UDP router: `None` when it is not a result. Addresses and hub names
/// are ASCII in practice; the session parses the datagram again in the
/// hub's own charset.
pub(crate) fn udp_route(data: &[u8]) -> Option<(String, String)> {
    let first = data.split(|&b| b == b'|').find(|f| !f.is_empty()).unwrap_or(&[]);
    let Message::SearchResult(sr) = nmdc::parse(first, encoding_rs::WINDOWS_1252) else {
        return None;
    };
    let name = match sr.hub {
        ResultHub::Name(n) => n,
        ResultHub::Tth(_) => String::new(),
    };
    Some((sr.hub_address, name))
}

/// `"/me text"` → (`"text"`, true).
fn split_me(text: String) -> (String, bool) {
    match text.strip_prefix("/me ") {
        Some(rest) => (rest.to_string(), true),
        None => (text, false),
    }
}

/// Applies a flood of `$MyINFO` lines to a user list the way a session does
/// (parse, convert, keep the flags `$MyINFO` does not carry, insert);
/// returns how many were applied. For benchmarks.
pub fn apply_my_info_lines<'a>(
    users: &mut UserList,
    lines: impl IntoIterator<Item = &'a [u8]>,
    cs: &'static Encoding,
) -> usize {
    let mut n = 0;
    for line in lines {
        if let Message::MyInfo(mi) = nmdc::parse(line, cs) {
            let mut user = User::from_my_info(users, &mi);
            if let Some(old) = users.get(user.nick()) {
                user.op = old.op;
                user.bot = old.bot;
                user.ip = old.ip;
            }
            users.insert(user);
            n += 1;
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_codes() {
        for code in 1..=8 {
            let q = Query { file_type: type_of_code(code), ..Query::words("x") };
            assert_eq!(type_code(&q), code);
        }
        assert_eq!(type_of_code(12), FileType::Any);
        let tth = "LWPNACQDBZRYXW3VHJVCJ64QBZNGHOHHHZWCLNQ".parse().unwrap();
        assert_eq!(type_code(&Query::for_tth(tth)), 9);
        assert_eq!(type_code(&Query { file_type: FileType::File, ..Query::words("x") }), 1);
    }

    #[test]
    fn actions() {
        assert_eq!(split_me("/me waves".into()), ("waves".to_string(), true));
        assert_eq!(split_me("/mention".into()), ("/mention".to_string(), false));
    }
}
