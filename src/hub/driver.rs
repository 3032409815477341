//! The hub driver: one session skeleton for every hub protocol, generic over
//! a small [`Dialect`] trait that NMDC ([`super::nmdc`]) and ADC
//! ([`super::adc`]) implement.
//!
//! # What the driver owns
//!
//! - **The connection**: resolving the host on a helper, connecting (TLS with
//!   the keyprint checked against `?kp=` or trusted on first use, through
//!   [`crate::net`]), reading within the poll's budgets, the write queue,
//!   graceful or abortive close with a reason.
//! - **Timing**: the login timeout ([`LOGIN_TIMEOUT`]), keep-alives (the
//!   dialect's [`Dialect::KEEPALIVE`] after [`KEEPALIVE_IDLE`] of silence on
//!   our side), reconnecting after a drop with the hub's `reconnect_delay`
//!   doubled per failed attempt up to [`MAX_BACKOFF`], times a random factor
//!   in [0.75, 1.25] (so that many clients dropped at once do not come back
//!   at once), the doubling restarting after [`STABLE_ONLINE`] online.
//! - **Redirects** in either direction between NMDC and ADC: the dialect
//!   reports one ([`Session::redirected`]); the driver asks the sink for a
//!   verdict when it [decides redirects](HubSink::decides_redirects), checks
//!   the redirect chain ([`super::redirect`]), and follows. A redirect to
//!   the other protocol sets [`Session::switch_to`]; the job that runs the
//!   driver (`hub::session`) then carries the session over to the other
//!   dialect, keeping the hub's id, its registry entry and its sink.
//! - **Events**: a batch's events go to the sink in one call at the end of a
//!   poll; a user who joins and updates within a batch is reported once
//!   ([`Session::report_user`]). While the sink is
//!   [congested](HubSink::congested) the driver stops reading (the kernel
//!   buffers, then TCP flow control slows the hub down), which bounds memory.
//! - **Raw lines**: when the sink [wants them](HubSink::wants_raw), each
//!   batch of lines goes to [`HubSink::filter_raw`] and the driver waits for
//!   the verdict (at most [`RAW_VERDICT_TIMEOUT`]) before handing the kept
//!   lines to the dialect and reading on, so lines keep their order.
//! - **The hub's bookkeeping**: its [`HubInfo`] state, address and keyprint,
//!   its user list freed when the connection drops (on a helper thread when
//!   it is big), our hub counts told to the other sessions.
//!
//! # What a dialect owns
//!
//! Its framing, what it says first, each frame's meaning, our own
//! information (`$MyINFO`, `BINF`) and its rate limits, searches out and
//! answers, which UDP datagrams are its, and when the login is over.
//!
//! The driver never parses a protocol line; dialects never touch the socket.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::model::{
    ConnectMode, HubCommand, HubEvent, HubId, HubInfo, HubParams, HubSink, HubState, Protocol,
};
use super::redirect;
use super::registry::Hubs;
use super::udp::UdpFrame;
use super::users::{User, UserList};
use crate::address::HubUrl;
use crate::net::resolve::{self, Dial};
use crate::net::{ConnError, Connection, Framing, ZonReader, READ_BUDGET};
use crate::runtime::{Context, Message as JobMessage, Runtime, Step, TaskDone, TaskId, TimerId};

/// Frames handed to the dialect per poll at most, before letting other jobs run.
pub const MAX_FRAMES_PER_POLL: usize = 20_000;
/// From starting to connect to being logged in.
pub const LOGIN_TIMEOUT: Duration = Duration::from_secs(60);
/// How often the keep-alive is checked.
pub const KEEPALIVE_CHECK: Duration = Duration::from_secs(30);
/// A keep-alive goes out after this long without sending anything.
pub const KEEPALIVE_IDLE: Duration = Duration::from_secs(120);
/// Chat and PMs held at most before a hub is online ([`Session::emit`]).
const MAX_EARLY: usize = 256;

/// How long a batch of raw lines waits for the sink's verdict.
pub const RAW_VERDICT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a redirect waits for the sink's verdict.
pub const REDIRECT_VERDICT_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest wait between two reconnect attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(600);
/// A session online this long restarts the reconnect doubling.
pub const STABLE_ONLINE: Duration = Duration::from_secs(60);
/// User lists at least this long are freed on a helper thread (100,000
/// users take about 0.1 s to free).
const BIG_LIST: usize = 10_000;
/// How soon a session whose sink is congested looks again.
const CONGESTION_RETRY: Duration = Duration::from_millis(20);

/// How a dialect's frames are cut from the connection.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Framer {
    /// The connection cuts frames at a delimiter (ADC: `\n`).
    Delimited(Framing),
    /// NMDC: raw bytes through a [`ZonReader`] (frames end at `|`; `$ZOn`
    /// blocks are inflated), frames at most this long.
    Zon(usize),
}

/// What a hub protocol adds to the driver. Every method gets the whole
/// [`Session`]: the driver's part and the dialect's own state
/// ([`Session::p`]).
pub(crate) trait Dialect: Sized + 'static {
    /// The protocol.
    const PROTOCOL: Protocol;
    /// What goes out as a keep-alive.
    const KEEPALIVE: &'static [u8];
    /// How frames are cut.
    const FRAMER: Framer;

    /// The dialect's state for a new session (or one carried over from the
    /// other protocol by a redirect).
    fn new(params: &HubParams) -> Self;

    /// The text encoding of a hub with these parameters.
    fn charset(params: &HubParams) -> &'static encoding_rs::Encoding;

    /// A connection is open (writes are queued until it is connected and
    /// TLS is set up): say what this side says first.
    fn opened(s: &mut Session<Self>, cx: &mut Context<'_>);

    /// One frame from the hub (without its delimiter).
    fn handle(s: &mut Session<Self>, cx: &mut Context<'_>, frame: &[u8]);

    /// Whether the login is over (the login timeout no longer applies).
    fn logged_in(s: &Session<Self>) -> bool;

    /// The connection ended: forget what belonged to it and cancel the
    /// dialect's timers. The driver resets its own part.
    fn reset(s: &mut Session<Self>, cx: &mut Context<'_>);

    /// A timer of the dialect's fired.
    fn on_timer(s: &mut Session<Self>, cx: &mut Context<'_>, t: TimerId);

    /// A command the driver does not handle itself (chat, PMs, searches,
    /// connection requests, raw lines, our information changing).
    fn command(s: &mut Session<Self>, cx: &mut Context<'_>, cmd: HubCommand);

    /// A datagram the UDP router gave this hub.
    fn udp(s: &mut Session<Self>, data: &[u8]);
}

/// What happens after a connection ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum After {
    /// Try again after the backoff delay.
    Reconnect,
    /// Try again, but not sooner than this.
    ReconnectNoSooner(Duration),
    /// The session ends.
    Stop,
    /// Wait for the sink's verdict on a redirect.
    AwaitRedirect(String),
    /// Follow a redirect now.
    Follow(String),
}

/// A drop the driver carries out at the next safe point.
#[derive(Debug)]
struct Ending {
    reason: String,
    after: After,
    graceful: bool,
}

/// Where the session stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Phase {
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

/// A hub session's state, but the socket: the driver's part and the
/// dialect's ([`Session::p`]). Kept apart from the connection so that a frame
/// borrowed from the connection's buffer can be handled with `&mut Session`.
pub(crate) struct Session<P> {
    pub(crate) id: HubId,
    pub(crate) rt: Runtime,
    /// The registry this session is in.
    pub(crate) hubs: Hubs,
    pub(crate) params: HubParams,
    pub(crate) addr: HubUrl,
    pub(crate) info: Rc<RefCell<HubInfo>>,
    pub(crate) sink: Rc<dyn HubSink>,
    /// Redirects followed since the session was last stable.
    redirects: redirect::Chain,
    phase: Phase,
    /// Output of this poll, sent at its end.
    pub(crate) out: Vec<u8>,
    /// Events of this poll, delivered at its end.
    events: Vec<HubEvent>,
    /// Index in `events` of this batch's join/update event of each nick.
    coalesce: HashMap<Box<str>, usize>,
    /// Chat and PMs that came before the hub was online, delivered right
    /// after [`HubEvent::Connected`] (see [`Session::emit`]).
    early: Vec<HubEvent>,
    /// Failed attempts since the last stable session.
    attempts: u32,
    /// When the hub last went online (the initial list was in).
    online_at: Option<Instant>,
    /// The initial user list is in ([`HubEvent::Connected`] was reported).
    pub(crate) announced: bool,
    /// The address we connect from.
    pub(crate) local_ip: Option<IpAddr>,
    last_sent_at: Instant,
    pub(crate) login_timer: Option<TimerId>,
    keepalive: Option<TimerId>,
    raw_timer: Option<TimerId>,
    congestion_timer: Option<TimerId>,
    raw_batch: u64,
    raw_pending: Option<(u64, Vec<Box<[u8]>>)>,
    pending_drop: Option<Ending>,
    stopping: bool,
    /// A followed redirect leads to the other protocol: the job carries the
    /// session over (see the module docs).
    pub(crate) switch_to: Option<Protocol>,
    /// The dialect's state.
    pub(crate) p: P,
}

/// A hub session: the connection, its reader, and the [`Session`].
pub(crate) struct Driver<P> {
    conn: Option<Connection>,
    /// NMDC's reader ([`Framer::Zon`]); unused for delimited framing.
    reader: ZonReader,
    pub(crate) s: Session<P>,
}

impl<P: Dialect> Driver<P> {
    /// A session for `params` at `addr`, registered in `hubs` under `id`.
    pub(crate) fn new(
        id: HubId,
        rt: &Runtime,
        hubs: Hubs,
        params: HubParams,
        addr: HubUrl,
        sink: Rc<dyn HubSink>,
    ) -> Driver<P> {
        let info = hubs.insert(HubInfo::new(
            id,
            &params.url,
            P::PROTOCOL,
            &params.nick,
            P::charset(&params),
            hubs.identity().max_users,
        ));
        let p = P::new(&params);
        Driver::resume(Session {
            id,
            rt: rt.clone(),
            hubs,
            params,
            addr,
            info,
            sink,
            redirects: redirect::Chain::default(),
            phase: Phase::Start,
            out: Vec::new(),
            events: Vec::new(),
            coalesce: HashMap::new(),
            early: Vec::new(),
            attempts: 0,
            online_at: None,
            announced: false,
            local_ip: None,
            last_sent_at: rt.now(),
            login_timer: None,
            keepalive: None,
            raw_timer: None,
            congestion_timer: None,
            raw_batch: 0,
            raw_pending: None,
            pending_drop: None,
            stopping: false,
            switch_to: None,
            p,
        })
    }

    /// A driver around a session between connections.
    fn resume(s: Session<P>) -> Driver<P> {
        let max_frame = match P::FRAMER {
            Framer::Zon(max) => max,
            Framer::Delimited(_) => 0,
        };
        Driver { conn: None, reader: ZonReader::new(max_frame), s }
    }

    /// The same session carried over to dialect `Q` (a followed redirect to
    /// the other protocol): between connections, with the same id, registry
    /// entry, sink, redirect chain and timers; the dialect starts afresh.
    pub(crate) fn into_dialect<Q: Dialect>(self) -> Driver<Q> {
        debug_assert!(self.conn.is_none(), "carried over with a connection");
        let s = self.s;
        let p = Q::new(&s.params);
        {
            let mut info = s.info.borrow_mut();
            info.protocol = Q::PROTOCOL;
            info.charset = Q::charset(&s.params);
            info.keyprint = None;
        }
        log::info!(target: "hub", "hub {}: now speaking {}", s.params.url, Q::PROTOCOL.as_str());
        Driver::resume(Session {
            id: s.id,
            rt: s.rt,
            hubs: s.hubs,
            params: s.params,
            addr: s.addr,
            info: s.info,
            sink: s.sink,
            redirects: s.redirects,
            phase: s.phase,
            out: s.out,
            events: s.events,
            coalesce: s.coalesce,
            early: s.early,
            attempts: s.attempts,
            online_at: s.online_at,
            announced: s.announced,
            local_ip: s.local_ip,
            last_sent_at: s.last_sent_at,
            login_timer: s.login_timer,
            keepalive: s.keepalive,
            raw_timer: s.raw_timer,
            congestion_timer: s.congestion_timer,
            raw_batch: s.raw_batch,
            raw_pending: s.raw_pending,
            pending_drop: s.pending_drop,
            stopping: s.stopping,
            switch_to: None,
            p,
        })
    }

    /// One pass of the session job.
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Step {
        let fired: Vec<TimerId> = cx.fired_timers().to_vec();
        if let Some(c) = self.conn.as_mut() {
            c.absorb(cx);
        }
        while let Some(m) = cx.recv() {
            self.on_message(cx, m);
            self.apply_drop(cx);
        }
        if self.s.stopping && self.s.phase != Phase::Done {
            self.s.request_drop("closed by the client".into(), After::Stop, true);
            self.apply_drop(cx);
        }
        for t in fired {
            self.on_timer(cx, t);
            self.apply_drop(cx);
        }
        if self.s.switch_to.is_some() {
            // The job carries the session over first.
            self.s.deliver();
            return Step::Pending;
        }
        if self.s.phase == Phase::Start {
            self.start_connect(cx);
        }
        if self.s.phase == Phase::Connected {
            self.pump(cx);
        }
        self.flush_out(cx);
        self.apply_drop(cx);
        self.s.deliver();
        if self.s.phase == Phase::Done {
            self.s.info.borrow_mut().state = HubState::Disconnected;
            self.s.hubs.remove(self.s.id);
            return Step::Done;
        }
        Step::Pending
    }

    /// Whether the session runs on.
    pub(crate) fn is_alive(&self) -> bool {
        !self.s.stopping && self.s.phase != Phase::Done
    }

    /// Asks the session to quit (graceful, at its next poll).
    pub(crate) fn stop(&mut self) {
        self.s.stopping = true;
    }

    /// The job's name.
    pub(crate) fn name(&self) -> String {
        format!("hub {}", self.s.params.url)
    }

    // ----- connecting ------------------------------------------------------------

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
        let url = self.s.params.url.clone();
        log::info!(target: "hub", "hub {url}: connecting to {addr}");
        self.reader.reset();
        let framing = match P::FRAMER {
            Framer::Delimited(f) => f,
            Framer::Zon(_) => Framing::Raw,
        };
        let conn = if self.s.addr.is_tls() {
            // TLS from the first byte, checked against `?kp=` or trusted on
            // first use.
            let session = self
                .s
                .hubs
                .me()
                .tls()
                .and_then(|tls| tls.hub_client(&self.s.addr).map_err(|e| e.to_string()));
            match session {
                Ok(session) => {
                    Connection::connect_tls(cx.runtime(), cx.id(), addr, framing, session)
                }
                Err(e) => {
                    let msg = format!("TLS for {url}: {e}");
                    log::error!(target: "hub", "hub {url}: {msg}");
                    return self.s.request_drop(msg, After::Stop, false);
                }
            }
        } else {
            Connection::connect(cx.runtime(), cx.id(), addr, framing)
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
                P::opened(&mut self.s, cx);
            }
            Err(e) => self.s.request_drop(e.to_string(), After::Reconnect, false),
        }
    }

    // ----- reading -----------------------------------------------------------------

    /// Reads and hands over what the hub sent, within this poll's budgets.
    fn pump(&mut self, cx: &mut Context<'_>) {
        if self.s.pending_drop.is_some() || self.s.raw_pending.is_some() {
            return;
        }
        if self.s.sink.congested() {
            if self.s.congestion_timer.is_none() {
                self.s.congestion_timer = Some(cx.after(CONGESTION_RETRY));
            }
            return;
        }
        let want_raw = self.s.sink.wants_raw(self.s.id);
        let Some(conn) = self.conn.as_mut() else { return };
        let s = &mut self.s;
        let mut raw_lines: Vec<Box<[u8]>> = Vec::new();
        let mut each = |frame: &[u8]| {
            // An empty frame is a keep-alive; after a drop nothing counts.
            if frame.is_empty() || s.pending_drop.is_some() {
            } else if want_raw {
                raw_lines.push(frame.into());
            } else {
                P::handle(s, cx, frame);
            }
        };
        let result = match P::FRAMER {
            Framer::Delimited(_) => conn
                .read_frames(MAX_FRAMES_PER_POLL, &mut each)
                .map(|st| (st.eof, conn.has_more()))
                .map_err(FrameError::from),
            Framer::Zon(_) => zon_frames(&mut self.reader, conn, &mut each),
        };
        if conn.is_tls() && !conn.is_handshaking() && s.info.borrow().keyprint.is_none() {
            if let Some(kp) = conn.peer_keyprint() {
                s.info.borrow_mut().keyprint = Some(kp.to_string());
            }
        }
        if !raw_lines.is_empty() {
            s.filter_raw(cx, raw_lines);
        }
        match result {
            Ok((true, _)) => {
                s.request_drop("the hub closed the connection".into(), After::Reconnect, false);
            }
            Ok((false, more)) => {
                if more {
                    cx.repoll();
                }
            }
            Err(e) => {
                if let FrameError::Conn(ConnError::Keyprint(k)) = &e {
                    log::error!(target: "hub", "hub {}: {k}", s.params.url);
                }
                let after = e.after();
                s.request_drop(e.to_string(), after, false);
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

    /// Carries out a requested drop: closes the socket, then the session
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
        if self.s.phase == Phase::Start {
            cx.repoll();
        }
    }

    // ----- messages and timers -----------------------------------------------------

    fn on_message(&mut self, cx: &mut Context<'_>, m: JobMessage) {
        let m = match m.downcast::<HubCommand>() {
            Ok(cmd) => return self.s.command(cx, *cmd),
            Err(m) => m,
        };
        let m = match m.downcast::<UdpFrame>() {
            Ok(f) => return P::udp(&mut self.s, &f.0),
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
            if !P::logged_in(s) {
                let msg = format!(
                    "not logged in after {} s; giving up this attempt",
                    LOGIN_TIMEOUT.as_secs()
                );
                s.request_drop(msg, After::Reconnect, false);
            }
        } else if s.keepalive == Some(t) {
            if s.phase == Phase::Connected
                && cx.now().duration_since(s.last_sent_at) >= KEEPALIVE_IDLE
            {
                s.out.extend_from_slice(P::KEEPALIVE);
            }
        } else if s.raw_timer == Some(t) {
            s.raw_timer = None;
            if let Some((batch, lines)) = s.raw_pending.take() {
                log::warn!(target: "hub", "hub {}: no verdict on raw lines (batch {batch}) after {} s; processing them", s.params.url, RAW_VERDICT_TIMEOUT.as_secs());
                for line in lines {
                    s.handle_kept(cx, &line);
                }
            }
        } else if s.congestion_timer == Some(t) {
            s.congestion_timer = None;
        } else {
            P::on_timer(s, cx, t);
        }
    }
}

/// Why reading frames failed.
#[derive(Debug, thiserror::Error)]
enum FrameError {
    /// The connection failed.
    #[error(transparent)]
    Conn(#[from] ConnError),
    /// The `$ZOn` reader refused what came (a frame too long, a bad block).
    #[error("{0}; connection closed")]
    Zon(#[from] crate::net::ZonError),
}

impl FrameError {
    fn after(&self) -> After {
        match self {
            FrameError::Conn(e) => after_error(e),
            FrameError::Zon(_) => After::Reconnect,
        }
    }
}

/// Reads NMDC frames through the `$ZOn` reader: frames already cut first,
/// then the socket, within [`MAX_FRAMES_PER_POLL`] and [`READ_BUDGET`].
/// Returns (end of stream, more to read now).
fn zon_frames(
    reader: &mut ZonReader,
    conn: &mut Connection,
    each: &mut dyn FnMut(&[u8]),
) -> Result<(bool, bool), FrameError> {
    let mut frames = 0usize;
    let mut read = 0usize;
    loop {
        while frames < MAX_FRAMES_PER_POLL {
            match reader.next_frame()? {
                Some(frame) => {
                    frames += 1;
                    each(frame);
                }
                None => break,
            }
        }
        if frames >= MAX_FRAMES_PER_POLL || read >= READ_BUDGET {
            return Ok((false, true));
        }
        let filled = reader.read_from(conn, READ_BUDGET - read)?;
        if filled.bytes > 0 {
            read += filled.bytes;
        } else {
            return Ok((filled.eof, false));
        }
    }
}

/// A refused keyprint ends the session; other failures reconnect.
fn after_error(e: &ConnError) -> After {
    if matches!(e, ConnError::Keyprint(_)) {
        After::Stop
    } else {
        After::Reconnect
    }
}

/// The wait before reconnect attempt `attempts + 1`: `base` doubled per
/// failed attempt, at most [`MAX_BACKOFF`] (or `base` if longer), times
/// `jitter` (drawn from [0.75, 1.25]).
pub(crate) fn backoff(base: Duration, attempts: u32, jitter: f64) -> Duration {
    let exp = 1u32 << attempts.min(16);
    base.saturating_mul(exp).min(MAX_BACKOFF.max(base)).mul_f64(jitter)
}

impl<P: Dialect> Session<P> {
    /// Adds an event to this poll's batch.
    ///
    /// Chat and PMs that come before the hub is online (an NMDC hub's list
    /// has no end marker: the session waits for a quiet moment, during
    /// which users may already talk) are held and delivered right after
    /// [`HubEvent::Connected`]: a script hears a hub only once it may
    /// answer there. At most [`MAX_EARLY`] are held; older ones are dropped.
    pub(crate) fn emit(&mut self, e: HubEvent) {
        if !self.announced && matches!(e, HubEvent::Chat { .. } | HubEvent::Pm { .. }) {
            if self.early.len() >= MAX_EARLY {
                self.early.remove(0);
            }
            self.early.push(e);
            return;
        }
        self.events.push(e);
    }

    fn deliver(&mut self) {
        self.coalesce.clear();
        if !self.events.is_empty() {
            let events = std::mem::take(&mut self.events);
            self.sink.deliver(self.id, events);
        }
    }

    /// Ends the connection at the next safe point; the first reason wins (a
    /// bad password is followed by the hub closing).
    pub(crate) fn request_drop(&mut self, reason: String, after: After, graceful: bool) {
        if self.pending_drop.is_none() {
            self.pending_drop = Some(Ending { reason, after, graceful });
        }
    }

    /// Whether a drop is pending (frames after it are not handled).
    pub(crate) fn dropping(&self) -> bool {
        self.pending_drop.is_some()
    }

    /// Whether a connection exists (connecting or open).
    pub(crate) fn connected(&self) -> bool {
        self.phase == Phase::Connected
    }

    /// Our nick on this hub.
    pub(crate) fn my_nick(&self) -> String {
        self.info.borrow().my_nick.clone()
    }

    /// The UDP port of active searches, when we search actively (the shared
    /// listener starts on first use).
    pub(crate) fn active_udp(&self) -> Option<u16> {
        if self.hubs.identity().mode != ConnectMode::Active {
            return None;
        }
        self.hubs.udp(&self.rt).map(|e| e.addr.port())
    }

    /// Reports a failed login and ends the attempt.
    pub(crate) fn login_failed(&mut self, reason: String, frame: Option<&[u8]>, after: After) {
        log::warn!(target: "hub", "hub {}: login failed: {reason}", self.params.url);
        self.emit(HubEvent::LoginFailed { reason: reason.clone(), raw: frame.map(Into::into) });
        self.request_drop(format!("login failed: {reason}"), after, false);
    }

    /// The initial list is in: the hub is online (reported once per
    /// connection).
    pub(crate) fn went_online(&mut self, cx: &mut Context<'_>) {
        self.announced = true;
        self.online_at = Some(cx.now());
        if let Some(t) = self.login_timer.take() {
            cx.cancel_timer(t);
        }
        let users = {
            let mut info = self.info.borrow_mut();
            info.state = HubState::Online;
            info.users.len()
        };
        log::info!(target: "hub", "hub {}: logged in as {}; online, {users} users", self.params.url, self.my_nick());
        self.emit(HubEvent::Connected { users });
        let early = std::mem::take(&mut self.early);
        self.events.extend(early);
    }

    /// Reports a join or an update (after the initial list), coalescing
    /// several of one user within the batch into one event.
    pub(crate) fn report_user(&mut self, user: User, joined: bool) {
        if !self.announced {
            return;
        }
        if let Some(&i) = self.coalesce.get(user.nick()) {
            if let Some(HubEvent::UserJoined { user: u } | HubEvent::UserUpdated { user: u }) =
                self.events.get_mut(i)
            {
                *u = user;
                return;
            }
        }
        self.coalesce.insert(user.nick().into(), self.events.len());
        self.emit(if joined {
            HubEvent::UserJoined { user }
        } else {
            HubEvent::UserUpdated { user }
        });
    }

    /// Reports the hub's name and topic (one of them changed).
    pub(crate) fn report_hub_info(&mut self) {
        let (name, topic) = {
            let info = self.info.borrow();
            (info.name.clone(), info.topic.clone())
        };
        self.emit(HubEvent::HubInfo { name, topic });
    }

    /// Reports that a user left (after the initial list).
    pub(crate) fn report_left(&mut self, nick: &str) {
        if self.announced {
            self.coalesce.remove(nick);
            self.emit(HubEvent::UserLeft { nick: nick.to_string() });
        }
    }

    /// The hub sends us to `target`: reported, then followed or not by the
    /// sink's verdict or the policy. `reason` is the hub's, if it gave one.
    /// A bad address is logged and ignored (false).
    pub(crate) fn redirected(&mut self, target: &str, reason: &str) -> bool {
        let target = target.trim().to_string();
        if let Err(e) = HubUrl::parse(&target) {
            log::warn!(target: "hub", "hub {}: ignoring a redirect to a bad address: {e}", self.params.url);
            return false;
        }
        let follow = self.params.follow_redirects;
        self.emit(HubEvent::Redirect { url: target.clone(), reason: reason.to_string(), follow });
        let why = if reason.is_empty() {
            format!("redirected to {target}")
        } else {
            format!("redirected to {target}: {reason}")
        };
        if self.sink.decides_redirects() {
            self.request_drop(why, After::AwaitRedirect(target), true);
        } else if follow {
            self.request_drop(why, After::Follow(target), true);
        } else {
            self.request_drop(format!("{why} (not followed)"), After::Reconnect, true);
        }
        true
    }

    // ----- the end of a connection ---------------------------------------------------

    /// The connection is gone: forget its state, report, decide what next.
    fn connection_lost(&mut self, cx: &mut Context<'_>, d: Ending) {
        let was_logged_in = self.info.borrow().role.is_some();
        let was_stable =
            self.online_at.is_some_and(|t| cx.now().duration_since(t) >= STABLE_ONLINE);
        if was_stable {
            self.attempts = 0;
            self.redirects.reset();
        }
        self.announced = false;
        self.online_at = None;
        self.raw_pending = None;
        self.early.clear();
        for t in [self.login_timer.take(), self.raw_timer.take(), self.congestion_timer.take()]
            .into_iter()
            .flatten()
        {
            cx.cancel_timer(t);
        }
        if let Phase::Waiting(t) | Phase::AwaitRedirect { timer: t, .. } = self.phase {
            cx.cancel_timer(t);
        }
        P::reset(self, cx);
        {
            let mut info = self.info.borrow_mut();
            let cap = info.users.cap();
            let users = std::mem::replace(&mut info.users, UserList::with_cap(cap));
            // Freeing a big list takes a while: not on the worker.
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
        let min = match d.after {
            After::Reconnect => Duration::ZERO,
            After::ReconnectNoSooner(min) => min,
            After::Stop => return self.finish(d.reason),
            After::AwaitRedirect(target) => {
                log::info!(target: "hub", "hub {url}: {}", d.reason);
                let timer = cx.after(REDIRECT_VERDICT_TIMEOUT);
                self.phase = Phase::AwaitRedirect { url: target, timer };
                self.info.borrow_mut().state = HubState::Reconnecting;
                return;
            }
            After::Follow(target) => return self.follow(target, d.reason),
        };
        match self.next_delay() {
            Some(delay) => {
                let delay = delay.max(min);
                log::warn!(target: "hub", "hub {url}: {}; reconnecting in {:.1} s", d.reason, delay.as_secs_f64());
                self.phase = Phase::Waiting(cx.after(delay));
                self.info.borrow_mut().state = HubState::Reconnecting;
                self.emit(HubEvent::Disconnected { reason: d.reason, reconnect_in: Some(delay) });
            }
            None => self.finish(d.reason),
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

    /// Follows a redirect the chain allows, to either protocol.
    fn follow(&mut self, target: String, reason: String) {
        let a = match HubUrl::parse(&target) {
            Ok(a) => a,
            Err(e) => {
                log::warn!(target: "hub", "hub {}: cannot follow the redirect to {target:?}: {e}", self.params.url);
                return self.redirect_refused(reason);
            }
        };
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
        let protocol = if a.is_adc() { Protocol::Adc } else { Protocol::Nmdc };
        if protocol != P::PROTOCOL {
            self.switch_to = Some(protocol);
        }
        self.params.url = target;
        self.addr = a;
        self.attempts = 0;
        self.phase = if delay.is_zero() {
            Phase::Start
        } else {
            Phase::Waiting(self.rt.timer_after(self.id, delay))
        };
        {
            let mut info = self.info.borrow_mut();
            info.state = HubState::Connecting;
            info.keyprint = None;
        }
        self.emit(HubEvent::Disconnected { reason, reconnect_in: Some(delay) });
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

    // ----- commands and raw lines ---------------------------------------------------

    fn command(&mut self, cx: &mut Context<'_>, cmd: HubCommand) {
        match cmd {
            HubCommand::Disconnect => {
                self.request_drop("disconnected by request".into(), After::Stop, true);
            }
            HubCommand::RedirectVerdict { url, follow } => self.redirect_verdict(cx, &url, follow),
            HubCommand::RawVerdict { batch, keep } => self.raw_verdict(cx, batch, keep),
            other => P::command(self, cx, other),
        }
    }

    fn filter_raw(&mut self, cx: &mut Context<'_>, lines: Vec<Box<[u8]>>) {
        self.raw_batch += 1;
        let batch = self.raw_batch;
        self.raw_pending = Some((batch, lines.clone()));
        self.raw_timer = Some(cx.after(RAW_VERDICT_TIMEOUT));
        self.sink.filter_raw(self.id, batch, lines);
    }

    fn raw_verdict(&mut self, cx: &mut Context<'_>, batch: u64, keep: Vec<bool>) {
        if !matches!(&self.raw_pending, Some((b, _)) if *b == batch) {
            return;
        }
        let Some((_, lines)) = self.raw_pending.take() else { return };
        if let Some(t) = self.raw_timer.take() {
            cx.cancel_timer(t);
        }
        for (i, line) in lines.into_iter().enumerate() {
            if keep.get(i).copied().unwrap_or(true) {
                self.handle_kept(cx, &line);
            }
        }
        cx.repoll();
    }

    /// A line the raw filter kept, unless a drop came first.
    fn handle_kept(&mut self, cx: &mut Context<'_>, line: &[u8]) {
        if !self.dropping() {
            P::handle(self, cx, line);
        }
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
}
