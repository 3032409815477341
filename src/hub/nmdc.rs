//! The NMDC hub session: one job per hub, from connecting to a clean quit,
//! reconnecting by itself after a drop.
//!
//! # Life of a session
//!
//! 1. **Connect.** `dchub://`, `nmdc://` or `host:port`; a host name is
//!    resolved on a helper thread, never on the worker. A whole login must
//!    finish within [`LOGIN_TIMEOUT`].
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
//!    `$HubTopic`; `$ZOn` blocks (inflated by the [`ZonReader`]);
//!    `$Search` and `$SR`; `$ConnectToMe`/`$RevConnectToMe`; `$ForceMove`.
//!    A bare `|` goes out after [`KEEPALIVE_IDLE`] of silence on our side.
//! 5. **Drop.** After a drop the session waits and reconnects: the hub's
//!    `reconnect_delay`, doubled per failed attempt up to [`MAX_BACKOFF`],
//!    times a random factor in [0.75, 1.25] so that many clients dropped at
//!    once do not come back at once. The doubling restarts after a session
//!    that stayed online for [`STABLE_ONLINE`]. No reconnect after
//!    [`HubCommand::Disconnect`], `$BadPass`, a missing password, or when
//!    the delay is zero. `$ValidateDenide` does reconnect (the nick may be
//!    held by our own dropped connection for a while).
//!
//! # Batching and fairness
//!
//! Each poll reads what the socket has (up to [`READ_BUDGET`] bytes), cuts
//! frames and applies them (at most [`MAX_FRAMES_PER_POLL`]; then it asks for
//! a repoll), and hands the batch's events to the sink in one call. A user
//! who joins and updates within a batch is reported once. While the sink is
//! [congested](HubSink::congested) the session stops reading (the kernel
//! buffers, then TCP flow control slows the hub down), which bounds memory.
//!
//! # Decisions
//!
//! - **Our own PMs**: the hub does not echo them and the session reports no
//!   event for them (a bot answering `pm` events would otherwise answer
//!   itself). Our main chat comes back from the hub like anyone's.
//! - **Our own searches** come back from most hubs; they are not reported as
//!   incoming searches.
//! - **Raw lines**: when the sink [wants them](HubSink::wants_raw), each
//!   batch of lines goes to [`HubSink::filter_raw`] and the session waits for
//!   the verdict (at most [`RAW_VERDICT_TIMEOUT`]) before processing the kept
//!   lines and reading on, so lines keep their order.
//! - **`$ForceMove`**: the session closes the connection (as DC++ does),
//!   reports [`HubEvent::Redirect`], and follows when its policy says so and
//!   the sink does not veto ([`HubCommand::RedirectVerdict`]).
//! - **`$MyINFO`** is sent again when what it says changes, at most every
//!   [`MYINFO_INTERVAL`] (every [`SHARE_INTERVAL`] when only the share size
//!   changed); the tag is `<dclua V:x,M:A|P,H:n/r/o,S:slots>`.
//! - **Active searches** use the one UDP socket of [`super::udp`]; results
//!   are routed back to the hub they name.
//! - **Others' searches** are answered from the share service
//!   ([`super::share_answers`]): up to 10 `$SR` datagrams to an active
//!   searcher (through [`super::udp::send`]), up to 5 `$SR`s through the hub
//!   to a passive one. Our own searches get no answer.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use encoding_rs::Encoding;

use super::redirect;
use super::{
    ConnectMode, FileType, HubCommand, HubEvent, HubId, HubInfo, HubParams, HubSink, HubState,
    Hubs, PeerRequest, Protocol, Role, SearchFrom, SearchHit, SearchQuery, User, Via,
};
use crate::address::HubUrl;
use crate::net::resolve::{self, Dial};
use crate::net::{ConnError, Connection, Framing, ZonReader, READ_BUDGET};
use crate::proto::nmdc::HubCounts as TagCounts;
use crate::proto::nmdc::{
    self, user::flags, Chat, ConnectToMe, Lock, Message, MyInfo, PrivateMessage, ResultHub, Search,
    SearchPattern, SearchResult, SearchSource, SizeLimit, Tag,
};
use crate::runtime::{
    Context, Job, Message as JobMessage, Runtime, Step, TaskDone, TaskId, TimerId,
};

/// The longest line accepted from a hub. `$MyINFO` lines are short, but a
/// `$NickList` of 100,000 users is about 1.5 MB.
pub const MAX_FRAME: usize = 4 << 20;
/// Frames applied per poll at most, before letting other jobs run.
pub const MAX_FRAMES_PER_POLL: usize = 20_000;
/// From starting to connect to being logged in.
pub const LOGIN_TIMEOUT: Duration = Duration::from_secs(60);
/// The window in which the initial user list is seen to have ended.
pub const SETTLE_QUIET: Duration = Duration::from_millis(300);
/// Fewer new users than this in a [`SETTLE_QUIET`] window: the initial list
/// has ended (a list arrives at thousands of users a second; a hub's
/// steady joins come at a few).
pub const SETTLE_TRICKLE: u32 = 10;
/// How often the keep-alive is checked.
pub const KEEPALIVE_CHECK: Duration = Duration::from_secs(30);
/// A keep-alive `|` goes out after this long without sending anything.
pub const KEEPALIVE_IDLE: Duration = Duration::from_secs(120);
/// `$MyINFO` changes go out at most this often.
pub const MYINFO_INTERVAL: Duration = Duration::from_secs(2);
/// Share-size-only `$MyINFO` changes go out at most this often.
pub const SHARE_INTERVAL: Duration = Duration::from_secs(60);
/// How long a batch of raw lines waits for the sink's verdict.
pub const RAW_VERDICT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a redirect waits for the sink's verdict.
pub const REDIRECT_VERDICT_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest wait between two reconnect attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(600);
/// A session online this long restarts the reconnect doubling.
pub const STABLE_ONLINE: Duration = Duration::from_secs(60);
/// User lists at least this long are freed on a helper thread.
const BIG_LIST: usize = 10_000;
/// How soon a session whose sink is congested looks again.
const CONGESTION_RETRY: Duration = Duration::from_millis(20);

/// What we announce in `$Supports`: what DC++ sends.
pub const SUPPORTS: &[&str] =
    &["UserCommand", "NoGetINFO", "NoHello", "UserIP2", "TTHSearch", "ZPipe0"];

/// The NMDC protocol version sent in `$Version`.
const VERSION: &str = "1,0091";

/// A UDP datagram for this hub, routed by the shared UDP listener.
#[derive(Debug)]
pub(crate) struct UdpFrame(pub(crate) Vec<u8>);

/// Starts a session job; the hub is registered at once.
pub(crate) fn spawn(
    rt: &Runtime,
    hubs: Hubs,
    params: HubParams,
    addr: HubUrl,
    sink: Rc<dyn HubSink>,
) -> HubId {
    rt.spawn_with(|id| {
        let info = hubs.insert(HubInfo::new(
            id,
            &params.url,
            Protocol::Nmdc,
            &params.nick,
            params.charset,
            hubs.identity().max_users,
        ));
        NmdcSession {
            conn: None,
            reader: ZonReader::new(MAX_FRAME),
            s: State {
                id,
                rt: rt.clone(),
                hubs,
                redirects: redirect::Chain::default(),
                cs: params.charset,
                charset_flagged: false,
                params,
                addr,
                info,
                sink,
                phase: Phase::Start,
                out: Vec::new(),
                events: Vec::new(),
                coalesce: HashMap::new(),
                attempts: 0,
                online_at: None,
                local_ip: None,
                logged_in: false,
                announced: false,
                registered: false,
                last_myinfo: None,
                last_myinfo_at: None,
                last_sent_at: Instant::now(),
                login_timer: None,
                settle_quiet: None,
                settle_new: 0,
                keepalive: None,
                myinfo_timer: None,
                raw_timer: None,
                congestion_timer: None,
                raw_batch: 0,
                raw_pending: None,
                pending_drop: None,
                stopping: false,
            },
        }
    })
}

/// What happens after a connection ends.
#[derive(Debug, Clone, PartialEq, Eq)]
enum After {
    /// Try again after the backoff delay.
    Reconnect,
    /// The session ends.
    Stop,
    /// Wait for the sink's verdict on a redirect.
    AwaitRedirect(String),
    /// Follow a redirect now.
    Follow(String),
}

#[derive(Debug)]
struct Ending {
    reason: String,
    after: After,
    graceful: bool,
}

enum Phase {
    /// Connect at the next poll.
    Start,
    /// Resolving the host name on a helper thread.
    Resolving(TaskId),
    /// A connection exists (connecting or open).
    Connected,
    /// Waiting to reconnect.
    Waiting(TimerId),
    /// Waiting for the sink's verdict on a redirect.
    AwaitRedirect { url: String, timer: TimerId },
    /// Finished.
    Done,
}

/// An NMDC hub session job; see the module docs.
pub struct NmdcSession {
    conn: Option<Connection>,
    reader: ZonReader,
    s: State,
}

/// Everything but the socket and its reader, so that a frame borrowed from
/// the reader can be handled with `&mut State`.
struct State {
    id: HubId,
    rt: Runtime,
    /// The registry this session is in.
    hubs: Hubs,
    /// Redirects followed since the session was last stable.
    redirects: redirect::Chain,
    params: HubParams,
    cs: &'static Encoding,
    /// Text not valid in `cs` was seen (and said, once per session).
    charset_flagged: bool,
    addr: HubUrl,
    info: Rc<RefCell<HubInfo>>,
    sink: Rc<dyn HubSink>,
    phase: Phase,
    /// Output of this poll, sent at its end.
    out: Vec<u8>,
    /// Events of this poll, delivered at its end.
    events: Vec<HubEvent>,
    /// Index in `events` of this batch's join/update event of each nick.
    coalesce: HashMap<Box<str>, usize>,
    /// Failed attempts since the last stable session.
    attempts: u32,
    online_at: Option<Instant>,
    local_ip: Option<IpAddr>,
    logged_in: bool,
    announced: bool,
    registered: bool,
    last_myinfo: Option<MyInfo>,
    last_myinfo_at: Option<Instant>,
    last_sent_at: Instant,
    login_timer: Option<TimerId>,
    settle_quiet: Option<TimerId>,
    /// New users in the current settle window (before the list ended).
    settle_new: u32,
    keepalive: Option<TimerId>,
    myinfo_timer: Option<TimerId>,
    raw_timer: Option<TimerId>,
    congestion_timer: Option<TimerId>,
    raw_batch: u64,
    raw_pending: Option<(u64, Vec<Box<[u8]>>)>,
    pending_drop: Option<Ending>,
    stopping: bool,
}

impl Job for NmdcSession {
    fn poll(&mut self, cx: &mut Context<'_>) -> Step {
        let fired: Vec<TimerId> = cx.fired_timers().to_vec();
        if let Some(c) = self.conn.as_mut() {
            c.absorb(cx);
        }
        while let Some(m) = cx.recv() {
            self.on_message(cx, m);
            self.apply_drop(cx);
        }
        if self.s.stopping && !matches!(self.s.phase, Phase::Done) {
            self.s.request_drop("closed by the client".into(), After::Stop, true);
            self.apply_drop(cx);
        }
        for t in fired {
            self.on_timer(cx, t);
            self.apply_drop(cx);
        }
        if matches!(self.s.phase, Phase::Start) {
            self.start_connect(cx);
        }
        if matches!(self.s.phase, Phase::Connected) {
            self.pump(cx);
        }
        self.flush_out(cx);
        self.apply_drop(cx);
        self.s.deliver();
        if matches!(self.s.phase, Phase::Done) {
            self.s.info.borrow_mut().state = HubState::Disconnected;
            self.s.hubs.remove(self.s.id);
            return Step::Done;
        }
        Step::Pending
    }

    fn is_alive(&self) -> bool {
        !self.s.stopping && !matches!(self.s.phase, Phase::Done)
    }

    fn stop(&mut self) {
        self.s.stopping = true;
    }

    fn name(&self) -> String {
        format!("hub {}", self.s.params.url)
    }
}

impl NmdcSession {
    // ----- connecting --------------------------------------------------------

    fn start_connect(&mut self, cx: &mut Context<'_>) {
        let host = self.s.addr.host.clone();
        let port = self.s.addr.port;
        {
            let mut info = self.s.info.borrow_mut();
            info.state = HubState::Connecting;
            info.url = self.s.params.url.clone();
        }
        if let Some(t) = self.s.login_timer.take() {
            cx.cancel_timer(t);
        }
        self.s.login_timer = Some(cx.after(LOGIN_TIMEOUT));
        match resolve::start(cx, &host, port) {
            Dial::Ready(addr) => self.open(cx, addr),
            Dial::Resolving(task) => {
                log::debug!(target: "hub", "hub {}: resolving {host}", self.s.params.url);
                self.s.phase = Phase::Resolving(task);
            }
        }
    }

    fn resolved(&mut self, cx: &mut Context<'_>, result: resolve::Resolved) {
        match resolve::finish(&self.s.addr.host, result) {
            Ok(addr) => self.open(cx, addr),
            Err(e) => self.s.request_drop(e.to_string(), After::Reconnect, false),
        }
    }

    fn open(&mut self, cx: &mut Context<'_>, addr: SocketAddr) {
        log::info!(target: "hub", "hub {}: connecting to {addr}", self.s.params.url);
        self.reader.reset();
        let conn = if self.s.addr.is_tls() {
            // nmdcs://: TLS from the first byte, checked against `?kp=` or
            // trusted on first use, as for adcs://.
            let url = self.s.params.url.clone();
            let session = self
                .s
                .hubs
                .tls_context()
                .and_then(|tls| tls.hub_client(&self.s.addr).map_err(|e| e.to_string()));
            match session {
                Ok(session) => {
                    Connection::connect_tls(cx.runtime(), cx.id(), addr, Framing::Raw, session)
                }
                Err(e) => {
                    let msg = format!("TLS for {url}: {e}");
                    log::error!(target: "hub", "hub {url}: {msg}");
                    return self.s.request_drop(msg, After::Stop, false);
                }
            }
        } else {
            Connection::connect(cx.runtime(), cx.id(), addr, Framing::Raw)
        };
        match conn {
            Ok(conn) => {
                self.s.local_ip = conn.local_addr().map(|a| a.ip());
                self.conn = Some(conn);
                self.s.phase = Phase::Connected;
                self.s.info.borrow_mut().address = Some(addr);
                if self.s.keepalive.is_none() {
                    self.s.keepalive = Some(cx.every(KEEPALIVE_CHECK));
                }
                // The first readiness event comes from the socket; nothing to
                // do before it.
            }
            Err(e) => self.s.request_drop(e.to_string(), After::Reconnect, false),
        }
    }

    // ----- reading -------------------------------------------------------------

    /// Reads and applies what the hub sent, within this poll's budgets.
    ///
    /// A refused TLS keyprint ends the session for good (no reconnect).
    fn pump(&mut self, cx: &mut Context<'_>) {
        let mut frames = 0usize;
        let mut read = 0usize;
        loop {
            if self.s.pending_drop.is_some() || self.s.raw_pending.is_some() {
                break;
            }
            if self.s.sink.congested() {
                if self.s.congestion_timer.is_none() {
                    self.s.congestion_timer = Some(cx.after(CONGESTION_RETRY));
                }
                break;
            }
            let want_raw = self.s.sink.wants_raw(self.s.id);
            let mut raw_lines: Vec<Box<[u8]>> = Vec::new();
            while frames < MAX_FRAMES_PER_POLL && self.s.pending_drop.is_none() {
                match self.reader.next_frame() {
                    Ok(Some(frame)) => {
                        frames += 1;
                        if want_raw {
                            raw_lines.push(frame.into());
                        } else {
                            self.s.handle(cx, frame);
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        let msg = format!("{e}; connection closed");
                        self.s.request_drop(msg, After::Reconnect, false);
                        break;
                    }
                }
            }
            if !raw_lines.is_empty() {
                self.s.filter_raw(cx, raw_lines);
            }
            if frames >= MAX_FRAMES_PER_POLL {
                cx.repoll();
                break;
            }
            if self.s.pending_drop.is_some() || self.s.raw_pending.is_some() {
                break;
            }
            if read >= READ_BUDGET {
                cx.repoll();
                break;
            }
            let Some(conn) = self.conn.as_mut() else { break };
            let result = self.reader.read_from(conn, READ_BUDGET - read);
            if conn.is_tls() && !conn.is_handshaking() && self.s.info.borrow().keyprint.is_none() {
                if let Some(kp) = conn.peer_keyprint() {
                    self.s.info.borrow_mut().keyprint = Some(kp.to_string());
                }
            }
            match result {
                Ok(f) if f.bytes > 0 => read += f.bytes,
                Ok(f) if f.eof => {
                    self.s.request_drop(
                        "the hub closed the connection".into(),
                        After::Reconnect,
                        false,
                    );
                    break;
                }
                Ok(_) => break,
                Err(e) => {
                    self.s.request_drop(e.to_string(), after_error(&e), false);
                    break;
                }
            }
        }
    }

    fn flush_out(&mut self, cx: &mut Context<'_>) {
        if self.s.out.is_empty() {
            if let Some(c) = self.conn.as_mut().filter(|c| c.queued() > 0) {
                if let Err(e) = c.flush() {
                    self.s.request_drop(e.to_string(), after_error(&e), false);
                }
            }
            return;
        }
        let data = std::mem::take(&mut self.s.out);
        let Some(conn) = self.conn.as_mut() else { return };
        self.s.last_sent_at = cx.now();
        if let Err(e) = conn.send(data) {
            self.s.request_drop(e.to_string(), after_error(&e), false);
        }
    }

    /// Carries out a requested drop: closes the socket, then the state
    /// decides what comes next.
    fn apply_drop(&mut self, cx: &mut Context<'_>) {
        let Some(d) = self.s.pending_drop.take() else { return };
        if let Some(mut c) = self.conn.take() {
            if d.graceful {
                if !self.s.out.is_empty() {
                    let _ = c.send(std::mem::take(&mut self.s.out));
                }
                c.close();
            } else {
                c.abort();
            }
        }
        self.s.out.clear();
        self.reader.reset();
        self.s.connection_lost(cx, d);
        if matches!(self.s.phase, Phase::Start) {
            cx.repoll();
        }
    }

    // ----- messages and timers ---------------------------------------------------

    fn on_message(&mut self, cx: &mut Context<'_>, m: JobMessage) {
        let m = match m.downcast::<HubCommand>() {
            Ok(cmd) => return self.s.command(cx, *cmd),
            Err(m) => m,
        };
        let m = match m.downcast::<UdpFrame>() {
            Ok(f) => return self.s.udp_frame(&f.0),
            Err(m) => m,
        };
        if let Ok(done) = m.downcast::<TaskDone>() {
            if matches!(self.s.phase, Phase::Resolving(t) if t == done.task) {
                match done.result.downcast::<resolve::Resolved>() {
                    Ok(r) => self.resolved(cx, *r),
                    Err(_) => self.s.request_drop(
                        "resolving: unexpected helper result".into(),
                        After::Reconnect,
                        false,
                    ),
                }
            }
        }
    }

    fn on_timer(&mut self, cx: &mut Context<'_>, t: TimerId) {
        let s = &mut self.s;
        match &s.phase {
            Phase::Waiting(w) if *w == t => {
                s.phase = Phase::Start;
                return;
            }
            Phase::AwaitRedirect { url, timer } if *timer == t => {
                let url = url.clone();
                let follow = s.params.follow_redirects;
                log::info!(target: "hub", "hub {}: no verdict on the redirect to {url}; policy: {}", s.params.url, if follow { "follow" } else { "stay" });
                s.redirect_verdict(cx, &url, follow);
                return;
            }
            _ => {}
        }
        if s.login_timer == Some(t) {
            s.login_timer = None;
            if !s.logged_in {
                let msg = format!(
                    "not logged in after {} s; giving up this attempt",
                    LOGIN_TIMEOUT.as_secs()
                );
                s.request_drop(msg, After::Reconnect, false);
            }
        } else if s.settle_quiet == Some(t) {
            s.settle_quiet = None;
            if s.logged_in && !s.announced {
                if s.settle_new < SETTLE_TRICKLE {
                    s.announce(cx);
                } else {
                    // The list is still arriving: another window.
                    s.settle_new = 0;
                    s.settle_quiet = Some(cx.after(SETTLE_QUIET));
                }
            }
        } else if s.keepalive == Some(t) {
            if s.logged_in && cx.now().duration_since(s.last_sent_at) >= KEEPALIVE_IDLE {
                s.out.push(b'|');
            }
        } else if s.myinfo_timer == Some(t) {
            s.myinfo_timer = None;
            s.send_my_info(cx, false);
        } else if s.raw_timer == Some(t) {
            s.raw_timer = None;
            if let Some((batch, lines)) = s.raw_pending.take() {
                log::warn!(target: "hub", "hub {}: no verdict on raw lines (batch {batch}) after {} s; processing them", s.params.url, RAW_VERDICT_TIMEOUT.as_secs());
                for line in lines {
                    s.handle(cx, &line);
                }
            }
        } else if s.congestion_timer == Some(t) {
            s.congestion_timer = None;
        }
    }
}

impl State {
    fn emit(&mut self, e: HubEvent) {
        self.events.push(e);
    }

    fn deliver(&mut self) {
        self.coalesce.clear();
        if !self.events.is_empty() {
            let events = std::mem::take(&mut self.events);
            self.sink.deliver(self.id, events);
        }
    }

    fn request_drop(&mut self, reason: String, after: After, graceful: bool) {
        // The first reason wins (a BadPass is followed by the hub closing).
        if self.pending_drop.is_none() {
            self.pending_drop = Some(Ending { reason, after, graceful });
        }
    }

    fn my_nick(&self) -> String {
        self.info.borrow().my_nick.clone()
    }

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
            charset: self.cs,
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
        nmdc::encode_into(msg, self.cs, &mut self.out);
    }

    /// The connection is gone: forget its state, report, decide what next.
    fn connection_lost(&mut self, cx: &mut Context<'_>, d: Ending) {
        let was_logged_in = self.logged_in;
        let was_stable =
            self.online_at.is_some_and(|t| cx.now().duration_since(t) >= STABLE_ONLINE);
        if was_stable {
            self.attempts = 0;
            self.redirects.reset();
        }
        self.logged_in = false;
        self.announced = false;
        self.registered = false;
        self.online_at = None;
        self.last_myinfo = None;
        self.last_myinfo_at = None;
        self.raw_pending = None;
        for t in [
            self.login_timer.take(),
            self.settle_quiet.take(),
            self.myinfo_timer.take(),
            self.raw_timer.take(),
            self.congestion_timer.take(),
        ]
        .into_iter()
        .flatten()
        {
            cx.cancel_timer(t);
        }
        if let Phase::Waiting(t) | Phase::AwaitRedirect { timer: t, .. } = self.phase {
            cx.cancel_timer(t);
        }
        {
            let mut info = self.info.borrow_mut();
            let users = std::mem::take(&mut info.users);
            // Freeing a big list takes a while (100,000 users: about 0.1 s):
            // not on the worker.
            match self.rt.helpers() {
                Some(h) if users.len() >= BIG_LIST => h.submit(move || drop(users)),
                _ => drop(users),
            }
            info.role = None;
            info.address = None;
            info.my_ip = None;
        }
        if was_logged_in {
            self.hubs.info_changed(&self.rt, Some(self.id));
        }
        let url = self.params.url.clone();
        match d.after {
            After::Reconnect => match self.next_delay() {
                Some(delay) => {
                    log::warn!(target: "hub", "hub {url}: {}; reconnecting in {:.1} s", d.reason, delay.as_secs_f64());
                    self.phase = Phase::Waiting(cx.after(delay));
                    self.info.borrow_mut().state = HubState::Reconnecting;
                    self.emit(HubEvent::Disconnected {
                        reason: d.reason,
                        reconnect_in: Some(delay),
                    });
                }
                None => self.finish(d.reason),
            },
            After::Stop => self.finish(d.reason),
            After::AwaitRedirect(target) => {
                log::info!(target: "hub", "hub {url}: {}", d.reason);
                let timer = cx.after(REDIRECT_VERDICT_TIMEOUT);
                self.phase = Phase::AwaitRedirect { url: target, timer };
                self.info.borrow_mut().state = HubState::Reconnecting;
            }
            After::Follow(target) => self.follow(target, d.reason),
        }
    }

    fn finish(&mut self, reason: String) {
        log::info!(target: "hub", "hub {}: {reason}; session ended", self.params.url);
        if let Some(t) = self.keepalive.take() {
            self.rt.cancel_timer(t);
        }
        self.phase = Phase::Done;
        self.info.borrow_mut().state = HubState::Disconnected;
        self.emit(HubEvent::Disconnected { reason, reconnect_in: None });
    }

    fn follow(&mut self, target: String, reason: String) {
        match HubUrl::parse(&target) {
            Ok(a) if !a.is_adc() && !a.is_tls() => {
                let delay = match self.redirects.check(&self.addr, &a) {
                    redirect::Verdict::Follow(delay) => delay,
                    redirect::Verdict::Stay(why) => {
                        log::warn!(target: "hub", "hub {}: {why}", self.params.url);
                        return self.redirect_refused(format!("{reason}: {why}"));
                    }
                    redirect::Verdict::End(why) => {
                        log::warn!(target: "hub", "hub {}: {why}", self.params.url);
                        return self.finish(format!("{reason}: {why}"));
                    }
                };
                log::info!(target: "hub", "hub {}: following the redirect to {target}", self.params.url);
                self.params.url = target;
                self.addr = a;
                self.attempts = 0;
                self.phase = if delay.is_zero() {
                    Phase::Start
                } else {
                    Phase::Waiting(self.rt.timer_after(self.id, delay))
                };
                self.info.borrow_mut().state = HubState::Connecting;
                self.emit(HubEvent::Disconnected { reason, reconnect_in: Some(delay) });
            }
            _ => {
                log::warn!(target: "hub", "hub {}: cannot follow the redirect to {target:?} (not a plain NMDC hub address)", self.params.url);
                self.redirect_refused(reason);
            }
        }
    }

    fn redirect_refused(&mut self, reason: String) {
        match self.next_delay() {
            Some(delay) => {
                self.phase = Phase::Waiting(self.rt.timer_after(self.id, delay));
                self.info.borrow_mut().state = HubState::Reconnecting;
                self.emit(HubEvent::Disconnected { reason, reconnect_in: Some(delay) });
            }
            None => self.finish(reason),
        }
    }

    fn redirect_verdict(&mut self, cx: &mut Context<'_>, url: &str, follow: bool) {
        let Phase::AwaitRedirect { url: pending, timer } = &self.phase else { return };
        if pending != url {
            return;
        }
        cx.cancel_timer(*timer);
        let reason = format!("redirected to {url}");
        if follow {
            self.follow(url.to_string(), reason);
        } else {
            self.redirect_refused(format!("{reason} (not followed)"));
        }
    }

    /// The delay before the next attempt, or `None` when the session must
    /// not reconnect.
    fn next_delay(&mut self) -> Option<Duration> {
        let base = self.params.reconnect_delay;
        if base.is_zero() || self.stopping {
            return None;
        }
        let delay = backoff(base, self.attempts, rand::random_range(0.75..1.25));
        self.attempts = self.attempts.saturating_add(1);
        Some(delay)
    }

    // ----- commands ------------------------------------------------------------

    fn command(&mut self, cx: &mut Context<'_>, cmd: HubCommand) {
        let online = self.logged_in && matches!(self.phase, Phase::Connected);
        let nick = self.my_nick();
        match cmd {
            HubCommand::Disconnect => {
                self.request_drop("disconnected by request".into(), After::Stop, true);
            }
            HubCommand::InfoChanged => self.send_my_info(cx, false),
            HubCommand::RedirectVerdict { url, follow } => self.redirect_verdict(cx, &url, follow),
            HubCommand::RawVerdict { batch, keep } => self.raw_verdict(cx, batch, keep),
            // Raw lines may go out during the login too (a script doing
            // its own handshake steps).
            HubCommand::SendRaw(line) => {
                if !matches!(self.phase, Phase::Connected) {
                    log::debug!(target: "hub", "hub {}: not connected; dropped a raw line", self.params.url);
                    return;
                }
                let (bytes, _, _) = self.cs.encode(&line);
                self.out.extend_from_slice(&bytes);
                if !bytes.ends_with(b"|") {
                    self.out.push(b'|');
                }
            }
            _ if !online => {
                log::debug!(target: "hub", "hub {}: not logged in; dropped {cmd:?}", self.params.url);
            }
            HubCommand::Say { text, me } => {
                let text = if me { format!("/me {text}") } else { text };
                self.send_msg(&Message::Chat(Chat { nick: Some(nick), text }));
            }
            HubCommand::Pm { to, text, me } => {
                let text = if me { format!("/me {text}") } else { text };
                self.send_msg(&Message::PrivateMessage(PrivateMessage::new(&nick, &to, &text)));
            }
            HubCommand::Search(q) => self.search(cx, &q),
            HubCommand::ConnectToMe { nick: remote, port, tls, token: _ } => {
                let ip = self.announce_ip();
                self.send_msg(&Message::ConnectToMe(ConnectToMe {
                    tls,
                    ..ConnectToMe::new(&remote, &ip, port)
                }));
            }
            HubCommand::RevConnectToMe { nick: remote, token: _ } => {
                self.send_msg(&Message::RevConnectToMe { from: nick, to: remote });
            }
        }
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

    /// The UDP port of active searches, when we search actively.
    fn active_udp(&self) -> Option<u16> {
        let hubs = self.hubs.clone();
        if hubs.identity().mode != ConnectMode::Active {
            return None;
        }
        hubs.udp(&self.rt).map(|e| e.addr.port())
    }

    fn search(&mut self, cx: &mut Context<'_>, q: &SearchQuery) {
        let (pattern, file_type) = match &q.tth {
            Some(tth) => (SearchPattern::Tth(*tth), FileType::Tth.nmdc_code()),
            None => {
                let text = q.text();
                if text.trim().is_empty() {
                    log::debug!(target: "hub", "hub {}: a search without words or TTH is not sent", self.params.url);
                    return;
                }
                let t = if q.file_type == FileType::Tth { FileType::Any } else { q.file_type };
                (SearchPattern::Text(text), t.nmdc_code())
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
        if !self.logged_in {
            return;
        }
        let mi = self.my_info();
        let Some(last) = &self.last_myinfo else {
            return self.put_my_info(cx, mi);
        };
        if *last == mi {
            return;
        }
        let share_only = MyInfo { share: last.share, ..mi.clone() } == *last;
        // The first share after an empty one (hashing done after the login)
        // is not held back: hubs and users judge us by it.
        let interval = if share_only && last.share != 0 { SHARE_INTERVAL } else { MYINFO_INTERVAL };
        let due = self.last_myinfo_at.map_or(cx.now(), |at| at + interval);
        if force || cx.now() >= due {
            self.put_my_info(cx, mi);
        } else if self.myinfo_timer.is_none() {
            self.myinfo_timer = Some(self.rt.timer_at(self.id, due));
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
        self.last_myinfo = Some(mi);
        self.last_myinfo_at = Some(cx.now());
        if let Some(t) = self.myinfo_timer.take() {
            cx.cancel_timer(t);
        }
    }

    // ----- raw lines -------------------------------------------------------------

    fn filter_raw(&mut self, cx: &mut Context<'_>, lines: Vec<Box<[u8]>>) {
        self.raw_batch += 1;
        let batch = self.raw_batch;
        self.raw_pending = Some((batch, lines.clone()));
        self.raw_timer = Some(cx.after(RAW_VERDICT_TIMEOUT));
        self.sink.filter_raw(self.id, batch, lines);
    }

    fn raw_verdict(&mut self, cx: &mut Context<'_>, batch: u64, keep: Vec<bool>) {
        match &self.raw_pending {
            Some((b, _)) if *b == batch => {}
            _ => return,
        }
        let Some((_, lines)) = self.raw_pending.take() else { return };
        if let Some(t) = self.raw_timer.take() {
            cx.cancel_timer(t);
        }
        for (i, line) in lines.into_iter().enumerate() {
            if keep.get(i).copied().unwrap_or(true) {
                self.handle(cx, &line);
            }
        }
        cx.repoll();
    }

    // ----- incoming lines ----------------------------------------------------------

    fn handle(&mut self, cx: &mut Context<'_>, frame: &[u8]) {
        if self.pending_drop.is_some() {
            return;
        }
        if log::log_enabled!(target: "hub", log::Level::Trace) {
            log::trace!(target: "hub", "hub {} <- {}", self.params.url, String::from_utf8_lossy(frame));
        }
        if !self.charset_flagged && !frame.is_ascii() {
            self.check_charset(frame);
        }
        let msg = nmdc::parse(frame, self.cs);
        match msg {
            Message::Lock(lock) => self.on_lock(&lock),
            Message::Supports(_) => {}
            Message::HubName(name) => {
                self.info.borrow_mut().name = name;
                self.hub_info_event();
            }
            Message::HubTopic(topic) => {
                self.info.borrow_mut().topic = topic;
                self.hub_info_event();
            }
            Message::GetPass(_) => match self.params.password.clone() {
                Some(pw) => {
                    self.registered = true;
                    self.send_msg(&Message::MyPass(pw));
                }
                None => self.login_failed(
                    "the hub asks for a password and none is set".into(),
                    frame,
                    After::Stop,
                ),
            },
            Message::BadPass => self.login_failed("wrong password".into(), frame, After::Stop),
            Message::ValidateDenide(_) => self.login_failed(
                format!("the hub refused the nick {:?} (taken or reserved)", self.my_nick()),
                frame,
                After::Reconnect,
            ),
            Message::HubIsFull => {
                self.request_drop("the hub is full".into(), After::Reconnect, false);
            }
            Message::Hello(nick) => {
                if nick == self.info.borrow().my_nick {
                    if !self.logged_in {
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
            Message::ForceMove(addr) => self.on_force_move(addr),
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
        if self.logged_in {
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

    fn login_failed(&mut self, reason: String, frame: &[u8], after: After) {
        log::warn!(target: "hub", "hub {}: login failed: {reason}", self.params.url);
        self.emit(HubEvent::LoginFailed { reason: reason.clone(), raw: Some(frame.into()) });
        self.request_drop(format!("login failed: {reason}"), after, false);
    }

    fn logged_in_now(&mut self, cx: &mut Context<'_>) {
        self.logged_in = true;
        if let Some(t) = self.login_timer.take() {
            cx.cancel_timer(t);
        }
        let role = if self.registered { Role::Registered } else { Role::Normal };
        self.info.borrow_mut().role = Some(role);
        log::info!(target: "hub", "hub {}: logged in as {}", self.params.url, self.my_nick());
        self.send_msg(&Message::Version(VERSION.into()));
        self.send_msg(&Message::GetNickList);
        self.send_my_info(cx, true);
        self.settle_new = 0;
        self.settle_quiet = Some(cx.after(SETTLE_QUIET));
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
        let valid = if self.cs == encoding_rs::UTF_8 {
            std::str::from_utf8(frame).is_ok()
        } else {
            self.cs.is_single_byte()
                || self.cs.decode_without_bom_handling_and_without_replacement(frame).is_some()
        };
        if valid {
            return;
        }
        self.charset_flagged = true;
        let sample = crate::text::neutralise_bytes(&frame[..frame.len().min(60)]);
        log::warn!(
            target: "hub",
            "hub {}: text that is not valid {} (\"{sample}...\"); set the hub's charset (cp1251, cp1252, ...) if it speaks another",
            self.params.url,
            self.cs.name(),
        );
    }

    /// The initial list is in: report the hub as online.
    fn announce(&mut self, cx: &mut Context<'_>) {
        self.announced = true;
        self.online_at = Some(cx.now());
        if let Some(t) = self.settle_quiet.take() {
            cx.cancel_timer(t);
        }
        let users = {
            let mut info = self.info.borrow_mut();
            info.state = HubState::Online;
            info.users.len()
        };
        log::info!(target: "hub", "hub {}: online, {users} users", self.params.url);
        self.emit(HubEvent::Connected { users });
    }

    fn hub_info_event(&mut self) {
        let (name, topic) = {
            let info = self.info.borrow();
            (info.name.clone(), info.topic.clone())
        };
        self.emit(HubEvent::HubInfo { name, topic });
    }

    // ----- users -------------------------------------------------------------------

    /// Reports a join or an update (after the initial list), coalescing
    /// several of one user within the batch into one event.
    fn user_event(&mut self, user: &User, joined: bool) {
        if !self.announced {
            // Still the initial list: counted, not reported.
            self.settle_new += u32::from(joined);
            return;
        }
        if let Some(&i) = self.coalesce.get(user.nick()) {
            if let Some(HubEvent::UserJoined { user: u } | HubEvent::UserUpdated { user: u }) =
                self.events.get_mut(i)
            {
                *u = user.clone();
                return;
            }
        }
        self.coalesce.insert(user.nick().into(), self.events.len());
        let user = user.clone();
        self.emit(if joined {
            HubEvent::UserJoined { user }
        } else {
            HubEvent::UserUpdated { user }
        });
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
        if own && self.logged_in && !self.announced {
            self.announce(cx);
        }
    }

    fn on_quit(&mut self, nick: &str) {
        let removed = self.info.borrow_mut().users.remove(nick).is_some();
        if removed && self.announced {
            self.coalesce.remove(nick);
            self.emit(HubEvent::UserLeft { nick: nick.to_string() });
        }
    }

    // ----- searches and results ----------------------------------------------------

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
        let mut q =
            SearchQuery { file_type: FileType::from_nmdc(s.file_type), ..Default::default() };
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
    fn answer(&mut self, q: &SearchQuery, source: &SearchSource) {
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
        let hits = super::share_answers(&self.hubs, q, to.is_some());
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
                    nmdc::encode_into(&msg, self.cs, &mut datagram);
                    super::udp::send(&self.hubs, &self.rt, addr, datagram);
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
            path: sr.path.replace('\\', "/"),
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

    /// A datagram from the UDP listener: `$SR` frames for us.
    fn udp_frame(&mut self, data: &[u8]) {
        for frame in data.split(|&b| b == b'|').filter(|f| !f.is_empty()) {
            match nmdc::parse(frame, self.cs) {
                Message::SearchResult(sr) => self.on_result(sr, frame, Via::Udp),
                other => {
                    log::debug!(target: "hub", "hub {}: UDP datagram is not a result: {}", self.params.url, other.kind());
                }
            }
        }
    }

    fn on_force_move(&mut self, target: String) {
        let target = target.trim().to_string();
        if let Err(e) = HubUrl::parse(&target) {
            log::warn!(target: "hub", "hub {}: ignoring a redirect to a bad address: {e}", self.params.url);
            return;
        }
        let follow = self.params.follow_redirects;
        self.emit(HubEvent::Redirect { url: target.clone(), reason: String::new(), follow });
        let reason = format!("redirected to {target}");
        if self.sink.decides_redirects() {
            self.request_drop(reason, After::AwaitRedirect(target), true);
        } else if follow {
            self.request_drop(reason, After::Follow(target), true);
        } else {
            self.request_drop(format!("{reason} (not followed)"), After::Reconnect, true);
        }
    }
}

/// The wait before reconnect attempt `attempts + 1`: `base` doubled per
/// failed attempt, at most [`MAX_BACKOFF`] (or `base` if longer), times
/// `jitter` (drawn from [0.75, 1.25]).
fn backoff(base: Duration, attempts: u32, jitter: f64) -> Duration {
    let exp = 1u32 << attempts.min(16);
    base.saturating_mul(exp).min(MAX_BACKOFF.max(base)).mul_f64(jitter)
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
    users: &mut super::UserList,
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

/// What follows a connection error: a refused keyprint ends the session for
/// good (reconnecting would only be refused again); anything else reconnects.
fn after_error(e: &ConnError) -> After {
    if matches!(e, ConnError::Keyprint(_)) {
        After::Stop
    } else {
        After::Reconnect
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        let s = Duration::from_secs;
        assert_eq!(backoff(s(30), 0, 1.0), s(30));
        assert_eq!(backoff(s(30), 1, 1.0), s(60));
        assert_eq!(backoff(s(30), 4, 1.0), s(480));
        assert_eq!(backoff(s(30), 5, 1.0), MAX_BACKOFF);
        assert_eq!(backoff(s(30), u32::MAX, 1.0), MAX_BACKOFF);
        assert_eq!(backoff(s(3600), 3, 1.0), s(3600), "a base above the cap is kept");
        assert_eq!(backoff(s(40), 0, 0.75), s(30));
        assert_eq!(backoff(s(40), 0, 1.25), s(50));
        assert_eq!(backoff(Duration::from_millis(300), 2, 1.0), Duration::from_millis(1200));
    }

    #[test]
    fn actions() {
        assert_eq!(split_me("/me waves".into()), ("waves".to_string(), true));
        assert_eq!(split_me("/mention".into()), ("/mention".to_string(), false));
    }
}
