//! The job of one peer connection: dial (a peer's connection request) or
//! take an accepted socket (our listener), TLS, tell NMDC from ADC by the
//! first byte, run the [`Session`], and serve requests by streaming from a
//! [`Body`].
//!
//! Invariants:
//! - Nothing is served before the peer is matched: a dialled connection by
//!   the request that made us dial, an accepted one by an expectation of
//!   [`Peers`]. An unmatched peer is closed.
//! - One upload at a time per connection; while it runs, input is not read
//!   (a downloader says nothing until its data arrived), so a peer cannot
//!   make us buffer.
//! - Sending is bounded per poll ([`SEND_PER_POLL`]) and by the socket
//!   (`write_now` takes what the kernel takes; the rest waits for a
//!   writable event) and by the global upload limit (a timer when it is
//!   spent). A peer that reads less than the minimum rate over a window
//!   ([`Timeouts`](super::Timeouts)), when the limit did not hold us back,
//!   is dropped.
//! - Every connection has a deadline: the handshake, then the wait for a
//!   request, then the slow-peer check while sending.
//!
//! Downloading (the session decided we download on this connection): the
//! job asks the [`DownloadSide`](super::DownloadSide) for a [`Fetch`],
//! sends its request, reads the header, then reads exactly the announced
//! bytes raw (bounded per poll, under the download limit) into the fetch,
//! and asks for the next; when there is none the connection ends. A peer
//! that stops sending for a check window is dropped.
//!
//! Must not: parse protocol frames (the [`Session`] does), decide what may
//! be served (that is [`serve`](super::serve) and the share).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use flate2::{Compress, Compression, FlushCompress, Status};
use mio::net::TcpStream;

use super::model::{Fetch, PeerUser, UploadInfo, MAX_CONNECTIONS, MAX_PENDING_PER_ADDRESS};
use super::peers::Peers;
use super::serve::{list_request, list_served, read_body, serve, Served};
use super::session::{
    Hello, Kind, Output, PeerId, Protocol, Refusal, Refused, Request, Role, Sending, Session,
};
use crate::hub::PeerRequest;
use crate::net::{Close, ConnError, Connection, Framing};
use crate::runtime::{Context, Job, Runtime, Step, TaskDone, TaskId, TimerId};
use crate::tls::{ClientAuth, Keyprint, OnChange, PeerCheck};
use crate::transfer::slots::{ConnKey, Slot};

/// The longest C-C command line we accept (a request is a short line).
pub const MAX_FRAME: usize = 16 * 1024;
/// Time a graceful close may take before the socket is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes sent per poll at most, for fairness with hubs and other uploads.
pub const SEND_PER_POLL: usize = 4 << 20;
/// One read from disk.
const CHUNK: usize = 256 * 1024;
/// Refused requests one connection may make before it is closed (a peer
/// probing for files outside the share, or flooding the events).
pub const MAX_REFUSALS: u32 = 32;
/// Frames handled per poll at most.
const FRAMES_PER_POLL: usize = 64;
/// Bytes received per poll at most (downloading), for fairness.
const RECEIVE_PER_POLL: usize = 8 << 20;

/// Dials a peer that sent us a connection request.
pub(crate) fn connect(rt: &Runtime, peers: Peers, req: PeerRequest, addr: SocketAddr) {
    let protocol = if req.adc { Protocol::Adc } else { Protocol::Nmdc };
    let hello = Hello {
        nick: req.my_nick.clone(),
        charset: req.charset,
        cid: peers.me().cid().to_base32(),
        token: req.token.clone(),
        hub_url: req.hub_url.clone(),
        download: false,
    };
    let user = PeerUser {
        hub: req.hub,
        hub_url: req.hub_url.clone(),
        nick: req.nick.clone().unwrap_or_default(),
        cid: req.cid.clone(),
    };
    let number = rand::random::<u32>() % 32767 + 1;
    let session = Session::new(protocol, Role::Connecting, Some(hello), number);
    let keyprint = req.keyprint.as_deref().and_then(|k| k.parse::<Keyprint>().ok());
    let tls = req.tls;
    rt.spawn_with(move |id| {
        let key = peers.new_key();
        peers.opened();
        let mut job = PeerJob::new(peers, key, Some(session), Some(user), addr.to_string());
        job.charset = req.charset;
        job.token = req.token.clone();
        let opened = if tls {
            let check = PeerCheck {
                server_name: addr.ip().to_string(),
                expected: keyprint,
                trust_key: None,
                on_change: OnChange::Refuse,
            };
            job.peers.me().tls().and_then(|t| t.client(check).map_err(|e| e.to_string())).and_then(
                |s| {
                    Connection::connect_tls(&job.peers.inner.rt, id, addr, Framing::Raw, s)
                        .map_err(|e| e.to_string())
                },
            )
        } else {
            Connection::connect(&job.peers.inner.rt, id, addr, Framing::Raw)
                .map_err(|e| e.to_string())
        };
        match opened {
            Ok(mut c) => {
                c.set_framing(framing(protocol));
                job.tls = tls;
                job.conn = Some(c);
                job.start_pending = true;
            }
            Err(e) => job.fail_later(format!("connecting to {addr}: {e}")),
        }
        job
    });
}

/// Takes a connection our listener accepted.
pub(crate) fn accepted(rt: &Runtime, peers: Peers, stream: TcpStream, from: SocketAddr, tls: bool) {
    if peers.connections() >= MAX_CONNECTIONS {
        log::warn!(target: "peer", "refused a client connection from {from}: already {} open", MAX_CONNECTIONS);
        return;
    }
    if !peers.pending_start(from.ip()) {
        log::warn!(target: "peer", "refused a client connection from {from}: {} from that address are still in their handshake", MAX_PENDING_PER_ADDRESS);
        return;
    }
    rt.spawn_with(move |id| {
        let key = peers.new_key();
        peers.opened();
        let mut job = PeerJob::new(peers, key, None, None, from.to_string());
        job.pending_ip = Some(from.ip());
        let rt = job.peers.inner.rt.clone();
        let opened = if tls {
            job.peers
                .me()
                .tls()
                .and_then(|t| t.server(ClientAuth::Request).map_err(|e| e.to_string()))
                .and_then(|s| {
                    Connection::accepted_tls(&rt, id, stream, Framing::Raw, s)
                        .map_err(|e| e.to_string())
                })
        } else {
            Connection::accepted(&rt, id, stream, Framing::Raw).map_err(|e| e.to_string())
        };
        match opened {
            Ok(c) => {
                job.tls = tls;
                job.conn = Some(c);
            }
            Err(e) => job.fail_later(format!("accepting {from}: {e}")),
        }
        job
    });
}

fn framing(p: Protocol) -> Framing {
    match p {
        Protocol::Nmdc => Framing::nmdc(MAX_FRAME),
        Protocol::Adc => Framing::adc(MAX_FRAME),
    }
}

/// One upload in progress.
struct Upload {
    served: Served,
    slot: Slot,
    /// Bytes of the body read and handed on (uncompressed).
    sent: u64,
    /// ZLIG: the compressor, when the peer asked for it.
    zlib: Option<Compress>,
    /// The compressor was told to finish and has no more output.
    zlib_done: bool,
}

struct PeerJob {
    peers: Peers,
    key: ConnKey,
    conn: Option<Connection>,
    session: Option<Session>,
    user: Option<PeerUser>,
    /// The peer's address, for logs.
    remote: String,
    /// The hub's charset (NMDC nicks), once known.
    charset: &'static encoding_rs::Encoding,
    tls: bool,
    /// The connecting side's first lines are still to be sent.
    start_pending: bool,
    upload: Option<Upload>,
    /// Output taken from the body but not yet by the socket.
    out: Vec<u8>,
    out_pos: usize,
    buf: Vec<u8>,
    deadline: Option<TimerId>,
    deadline_what: &'static str,
    limit_wait: Option<TimerId>,
    check: Option<TimerId>,
    /// Bytes written in the current slow-peer window, and whether the limit
    /// (not the peer) held us back in it.
    window_sent: u64,
    window_limited: bool,
    /// Ending: the reason, and whether the close timer runs.
    ending: Option<String>,
    close_timer: Option<TimerId>,
    /// The file this connection serves (requests of one file in segments
    /// make one console line at the start and one at the end): its name,
    /// bytes sent, and since when.
    serving: Option<(String, u64, Instant)>,
    /// A partial list being built on a helper thread, for this request.
    list_task: Option<(TaskId, Request)>,
    /// Requests refused on this connection.
    refusals: u32,
    /// An accepted connection's address while it holds a handshake place.
    pending_ip: Option<std::net::IpAddr>,
    /// A failure found while setting up, reported on the first poll.
    failed_early: Option<String>,
    /// The ADC token of the request that made us dial.
    token: Option<String>,
    /// Downloading: the request in flight, and (once its header came) the
    /// bytes still to read raw.
    fetch: Option<Box<dyn Fetch>>,
    fetch_left: Option<u64>,
    done: bool,
}

impl PeerJob {
    fn new(
        peers: Peers,
        key: ConnKey,
        session: Option<Session>,
        user: Option<PeerUser>,
        remote: String,
    ) -> PeerJob {
        PeerJob {
            peers,
            key,
            conn: None,
            session,
            user,
            remote,
            charset: encoding_rs::UTF_8,
            tls: false,
            start_pending: false,
            upload: None,
            out: Vec::new(),
            out_pos: 0,
            buf: Vec::new(),
            deadline: None,
            deadline_what: "the handshake",
            limit_wait: None,
            check: None,
            window_sent: 0,
            window_limited: false,
            ending: None,
            close_timer: None,
            serving: None,
            list_task: None,
            refusals: 0,
            pending_ip: None,
            failed_early: None,
            token: None,
            fetch: None,
            fetch_left: None,
            done: false,
        }
    }

    fn fail_later(&mut self, why: String) {
        self.failed_early = Some(why);
    }

    fn who(&self) -> String {
        match &self.user {
            Some(u) if !u.nick.is_empty() => format!("{} ({})", u.nick, self.remote),
            _ => self.remote.clone(),
        }
    }

    fn set_deadline(&mut self, cx: &mut Context<'_>, after: Duration, what: &'static str) {
        if let Some(t) = self.deadline.take() {
            cx.cancel_timer(t);
        }
        self.deadline = Some(cx.after(after));
        self.deadline_what = what;
    }

    /// Ends the connection: logs why, reports a running upload as failed,
    /// and closes (`graceful`: after what is queued, a refusal say).
    fn end(&mut self, cx: &mut Context<'_>, reason: String, graceful: bool) {
        if self.ending.is_some() {
            return;
        }
        let now = cx.now();
        self.end_downloading(&reason, now);
        if let Some(u) = self.upload.take() {
            if let Some(s) = self.serving.as_mut() {
                s.1 += u.sent;
            }
            self.peers.upload_progress(self.key, u.sent);
            self.peers.upload_failed(self.key, self.user.as_ref(), &u.served.name, &reason, now);
        }
        // A peer leaving after its downloads is the normal end: not worth a
        // console line.
        let normal = reason == "the peer closed the connection" && self.serving.is_none();
        if normal {
            log::debug!(target: "peer", "client connection with {} closed: {reason}", self.who());
        } else {
            log::info!(target: "peer", "client connection with {} closed: {reason}", self.who());
        }
        self.peers.release(self.key);
        self.done_serving(now, Some(&reason));
        self.ending = Some(reason);
        if let Some(c) = self.conn.as_mut() {
            c.end(if graceful { Close::Graceful } else { Close::Abortive });
        }
        self.close_timer = Some(cx.after(CLOSE_TIMEOUT));
    }

    /// A download connection ends: the request in flight failed, and the
    /// download side hears of it.
    fn end_downloading(&mut self, reason: &str, now: Instant) {
        self.fetch_left = None;
        if let Some(f) = self.fetch.take() {
            f.failed(reason);
        }
        if self.session.as_ref().is_some_and(|s| s.is_ready() && s.is_downloading()) {
            if let (Some(side), Some(user)) = (self.peers.download_side(), self.user.as_ref()) {
                side.ended(self.key, user, reason, now);
            }
        }
    }

    /// The console line at the end of a file's segments.
    fn done_serving(&mut self, now: Instant, reason: Option<&str>) {
        let Some((file, bytes, since)) = self.serving.take() else { return };
        let secs = now.saturating_duration_since(since).as_secs_f64();
        let nick = self.user.as_ref().map_or("a peer", |u| u.nick.as_str());
        match reason {
            Some(r) => {
                log::info!(target: "upload", "upload to {nick} ended: {file}, {bytes} bytes in {secs:.1} s ({r})");
            }
            None => {
                log::info!(target: "upload", "upload to {nick} done: {file}, {bytes} bytes in {secs:.1} s");
            }
        }
    }

    fn on_error(&mut self, cx: &mut Context<'_>, e: ConnError) {
        let what = if self.session.as_ref().is_some_and(Session::is_ready) {
            format!("{e}")
        } else {
            format!("during the handshake: {e}")
        };
        // The socket failed: nothing more can go out.
        self.end(cx, what, false);
    }

    fn send(&mut self, cx: &mut Context<'_>, bytes: Vec<u8>) {
        if let Some(c) = self.conn.as_mut() {
            if let Err(e) = c.send(bytes) {
                self.on_error(cx, e);
            }
        }
    }

    // ----- reading -----------------------------------------------------------

    /// Tells NMDC from ADC on an accepted connection.
    fn sniff(&mut self, cx: &mut Context<'_>) {
        let Some(conn) = self.conn.as_mut() else { return };
        let mut first = [0u8; 1];
        match conn.read_raw(&mut first) {
            Ok(0) if conn.is_eof() => {
                self.end(cx, "the peer closed the connection without a word".into(), false);
            }
            Ok(0) => {}
            Ok(_) => match Protocol::sniff(first[0]) {
                Some(p) => {
                    conn.unread(&first);
                    conn.set_framing(framing(p));
                    let number = rand::random::<u32>() % 32767 + 1;
                    self.session = Some(Session::new(p, Role::Accepting, None, number));
                    cx.repoll();
                }
                None => self.end(
                    cx,
                    format!("the peer spoke neither NMDC nor ADC (first byte {:#04x})", first[0]),
                    false,
                ),
            },
            Err(e) => self.on_error(cx, e),
        }
    }

    fn read(&mut self, cx: &mut Context<'_>) {
        // A downloader reads one frame at a time: the data after a header
        // must stay in the buffer for the raw reads.
        let max = if self.fetch.is_some() { 1 } else { FRAMES_PER_POLL };
        let Some(conn) = self.conn.as_mut() else { return };
        let mut frames: Vec<Vec<u8>> = Vec::new();
        let status = conn.read_frames(max, |f| frames.push(f.to_vec()));
        let more = conn.has_more();
        let eof = conn.is_eof();
        for f in frames {
            if self.fetch_left.is_some() {
                return;
            }
            if self.ending.is_some() || self.upload.is_some() {
                // A request while one is served is a protocol error; a
                // request after the end is moot.
                if self.upload.is_some() {
                    self.end(cx, "a request arrived while an upload ran".into(), false);
                }
                return;
            }
            let outs = match self.session.as_mut() {
                Some(s) => s.on_frame(&f),
                None => return,
            };
            self.apply(cx, outs);
        }
        match status {
            Err(e) => self.on_error(cx, e),
            Ok(_) if eof && self.ending.is_none() => {
                let why = if self.session.as_ref().is_some_and(Session::is_ready) {
                    "the peer closed the connection"
                } else {
                    "the peer closed the connection during the handshake"
                };
                self.end(cx, why.into(), false);
            }
            Ok(_) if more || self.fetch_left.is_some() => cx.repoll(),
            Ok(_) => {}
        }
    }

    fn apply(&mut self, cx: &mut Context<'_>, outs: Vec<Output>) {
        for o in outs {
            if self.ending.is_some() {
                return;
            }
            match o {
                Output::Send(b) => self.send(cx, b),
                Output::Identify(id) => self.identify(cx, id),
                Output::Ready => {
                    let downloading = self.session.as_ref().is_some_and(Session::is_downloading);
                    log::debug!(target: "peer", "client connection with {} ready{}", self.who(), if downloading { ", we download" } else { "" });
                    if downloading {
                        self.next_fetch(cx);
                    } else {
                        let idle = self.peers.timeouts().idle;
                        self.set_deadline(cx, idle, "a request");
                    }
                }
                Output::Sending(s) => self.on_sending(cx, s),
                Output::Refused(r) => self.on_refused(cx, r),
                Output::Request(r) => self.request(cx, r),
                Output::PeerError(e) => {
                    log::debug!(target: "peer", "{} reports: {e}", self.who());
                }
                Output::Close(why) => self.end(cx, why, true),
            }
        }
    }

    /// The peer said who it is.
    fn identify(&mut self, cx: &mut Context<'_>, id: PeerId) {
        let Some(protocol) = self.session.as_ref().map(Session::protocol) else { return };
        if let Some(user) = self.user.as_mut() {
            // We dialled: the request told us who to expect.
            match &id {
                PeerId::Nick(bytes) => {
                    if user.nick.is_empty() {
                        // NMDC `$ConnectToMe` does not name the sender; the
                        // hub's charset decodes the nick it gives now.
                        user.nick = self.charset.decode(bytes).0.into_owned();
                    }
                }
                PeerId::Cid { cid, .. } => match &user.cid {
                    Some(expected) if expected != cid => {
                        let why = format!(
                            "the peer says it is {cid}, but the request came from {expected}"
                        );
                        return self.end(cx, why, false);
                    }
                    _ => user.cid = Some(cid.clone()),
                },
            }
            let user = user.clone();
            let download =
                self.peers.download_side().is_some_and(|d| d.wants(&user, self.token.as_deref()));
            if let Some(s) = self.session.as_mut() {
                s.set_download(download);
            }
            return;
        }
        let Some(e) = self.peers.take_expected(protocol, &id) else {
            let who = match &id {
                PeerId::Nick(b) => String::from_utf8_lossy(b).into_owned(),
                PeerId::Cid { cid, token } => format!("{cid} with token {token:?}"),
            };
            let why = format!(
                "nobody expects a connection from {who} (no request of ours, or it came too late)"
            );
            return self.end(cx, why, false);
        };
        // Over TLS, the certificate must be the one the user's INF names.
        if let (Some(want), Some(conn)) = (&e.keyprint, self.conn.as_ref()) {
            if conn.is_tls() {
                let got = conn.peer_keyprint().map(|k| k.to_string());
                if got.as_deref() != Some(want.as_str()) {
                    let why = format!(
                        "{} presented the certificate {}, but its INF says {want}",
                        e.nick,
                        got.as_deref().unwrap_or("(none)")
                    );
                    return self.end(cx, why, false);
                }
            }
        }
        let cid = match id {
            PeerId::Cid { cid, .. } => Some(cid),
            PeerId::Nick(_) => None,
        };
        if let Some(ip) = self.pending_ip.take() {
            self.peers.pending_end(ip);
        }
        self.charset = e.charset;
        let user = PeerUser { hub: e.hub, hub_url: e.hub_url.clone(), nick: e.nick, cid };
        // ADC: the connection is ours to download on when it answers our
        // request (its token); NMDC negotiates, so we say what we want.
        let download = e.download
            || (protocol == Protocol::Nmdc
                && self.peers.download_side().is_some_and(|d| d.wants(&user, None)));
        self.user = Some(user);
        let hello = Hello {
            nick: e.my_nick,
            charset: e.charset,
            cid: self.peers.me().cid().to_base32(),
            token: None,
            hub_url: e.hub_url,
            download,
        };
        let outs = match self.session.as_mut() {
            Some(s) => s.bind(hello),
            None => return,
        };
        self.apply(cx, outs);
    }

    // ----- downloading ---------------------------------------------------------

    /// Asks the download side for the next request and sends it; ends the
    /// connection when there is none.
    fn next_fetch(&mut self, cx: &mut Context<'_>) {
        if self.fetch.is_some() || self.ending.is_some() {
            return;
        }
        let (Some(side), Some(user)) = (self.peers.download_side(), self.user.clone()) else {
            return self.end(cx, "nothing to download".into(), true);
        };
        let Some(fetch) = side.next(self.key, &user, self.tls, cx.now()) else {
            return self.end(cx, "nothing more to download from this user".into(), true);
        };
        let Some(session) = self.session.as_ref() else { return };
        let bytes = session.get(&fetch.request());
        self.fetch = Some(fetch);
        self.send(cx, bytes);
        let idle = self.peers.timeouts().idle;
        self.set_deadline(cx, idle, "the answer to our request");
        // The answer may already be buffered.
        cx.repoll();
    }

    /// The peer's header: the data follows, raw.
    fn on_sending(&mut self, cx: &mut Context<'_>, s: Sending) {
        let Some(fetch) = self.fetch.as_mut() else {
            return self.end(cx, "the peer sent data we did not ask for".into(), false);
        };
        let accepted = if s.compressed {
            Err("the peer compressed data we asked for uncompressed".to_string())
        } else {
            fetch.accept(&s).map_err(|e| e.to_string())
        };
        if let Err(why) = accepted {
            return self.end(cx, why, false);
        }
        if let Some(t) = self.deadline.take() {
            cx.cancel_timer(t);
        }
        if let Some(c) = self.conn.as_mut() {
            c.set_framing(Framing::Raw);
        }
        self.fetch_left = Some(s.bytes);
        self.window_sent = 0;
        self.window_limited = false;
        if self.check.is_none() {
            self.check = Some(cx.every(self.peers.timeouts().check_every));
        }
        if self.buf.len() < CHUNK {
            self.buf = vec![0; CHUNK];
        }
        cx.repoll();
    }

    fn on_refused(&mut self, cx: &mut Context<'_>, r: Refused) {
        let Some(fetch) = self.fetch.take() else {
            log::debug!(target: "peer", "{} refused something we did not ask: {r:?}", self.who());
            return;
        };
        if let Some(t) = self.deadline.take() {
            cx.cancel_timer(t);
        }
        fetch.refused(&r);
        match r {
            // The download side retries later on a new connection.
            Refused::SlotsFull(_) => self.end(cx, "the peer has no free slot".into(), true),
            Refused::NotAvailable(_) | Refused::Other(_) => self.next_fetch(cx),
        }
    }

    /// Reads the data of the request in flight, within this poll's budget
    /// and the download limit.
    fn receive(&mut self, cx: &mut Context<'_>) {
        let Some(side) = self.peers.download_side() else { return };
        let mut budget = RECEIVE_PER_POLL;
        while let Some(left) = self.fetch_left {
            if self.ending.is_some() {
                return;
            }
            if left == 0 {
                self.complete_fetch(cx);
                return;
            }
            if budget == 0 {
                cx.repoll();
                return;
            }
            match self.fetch.as_mut().map(|f| f.ready(cx.id())) {
                Some(Err(why)) => return self.end(cx, why.to_string(), false),
                // Woken by the fetch when it can take more; our own
                // back-pressure is no stall of the peer's.
                Some(Ok(false)) => {
                    self.window_limited = true;
                    return;
                }
                Some(Ok(true)) | None => {}
            }
            let want = (CHUNK as u64).min(left) as usize;
            let want = want.min(budget);
            let now = cx.now();
            let (allowed, wait) = side.budget(want, now);
            if allowed == 0 {
                self.window_limited = true;
                if self.limit_wait.is_none() {
                    self.limit_wait = Some(cx.after(wait.max(Duration::from_millis(1))));
                }
                return;
            }
            let Some(conn) = self.conn.as_mut() else { return };
            let n = match conn.read_raw(&mut self.buf[..allowed]) {
                Ok(n) => n,
                Err(e) => {
                    side.give_back(allowed);
                    return self.on_error(cx, e);
                }
            };
            if n < allowed {
                side.give_back(allowed - n);
            }
            if n == 0 {
                if conn.is_eof() {
                    let why =
                        format!("the peer closed the connection with {left} bytes still to come");
                    self.end(cx, why, false);
                }
                return;
            }
            let result = match self.fetch.as_mut() {
                Some(f) => f.data(&self.buf[..n], now),
                None => Ok(()),
            };
            if let Err(why) = result {
                return self.end(cx, why.to_string(), false);
            }
            self.fetch_left = Some(left - n as u64);
            self.window_sent += n as u64;
            budget -= n;
            if !wait.is_zero() && self.fetch_left != Some(0) {
                // Under a limit, one chunk and then this grant's pace: the
                // other connections take their turn meanwhile.
                if self.limit_wait.is_none() {
                    self.limit_wait = Some(cx.after(wait));
                }
                return;
            }
        }
    }

    /// Every byte of the request in flight arrived.
    fn complete_fetch(&mut self, cx: &mut Context<'_>) {
        self.fetch_left = None;
        if let Some(t) = self.check.take() {
            cx.cancel_timer(t);
        }
        let protocol = self.session.as_ref().map(Session::protocol);
        if let (Some(c), Some(p)) = (self.conn.as_mut(), protocol) {
            c.set_framing(framing(p));
        }
        if let Some(f) = self.fetch.take() {
            f.finish(cx.now());
        }
        self.next_fetch(cx);
    }

    // ----- serving -------------------------------------------------------------

    fn request(&mut self, cx: &mut Context<'_>, req: Request) {
        if self.session.is_none() || self.user.is_none() {
            return;
        }
        let Some(share) = self.peers.share() else {
            let refusal = Refusal::NotAvailable("nothing is shared".into());
            return self.refuse(cx, &req, &refusal);
        };
        if req.kind == Kind::List {
            // Built on a helper thread (a recursive list of a big share is
            // no work for the worker); `list_built` goes on from there.
            if let Err(refusal) = list_request(&req) {
                return self.refuse(cx, &req, &refusal);
            }
            let task = share.partial_list_task(&req.identifier, req.recursive);
            let id = cx.submit(move || task().map_err(|e| e.to_string()));
            self.list_task = Some((id, req));
            return;
        }
        let peers = self.peers.clone();
        let served = serve(&share, &mut |tth| peers.leaves(tth), &req);
        self.start_upload(cx, req, served);
    }

    /// A partial list built on a helper thread arrived.
    fn list_built(&mut self, cx: &mut Context<'_>, done: TaskDone) {
        let Some((_, req)) = self.list_task.take() else { return };
        let xml = match done.result.downcast::<Result<Vec<u8>, String>>() {
            Ok(r) => *r,
            Err(_) => Err("the list task returned something else".into()),
        };
        let served = list_served(&req, xml);
        self.start_upload(cx, req, served);
        // Requests that came meanwhile are read now.
        cx.repoll();
    }

    fn refuse(&mut self, cx: &mut Context<'_>, req: &Request, refusal: &Refusal) {
        let Some(session) = self.session.as_ref() else { return };
        let why = match refusal {
            Refusal::NotAvailable(w) | Refusal::BadRange(w) | Refusal::Unsupported(w) => w.clone(),
            Refusal::SlotsFull(_) => "slots full".into(),
        };
        let bytes = session.refusal(refusal);
        self.refused(cx, req, &why);
        self.send(cx, bytes);
    }

    /// Takes a slot and sends the header of what `served` says, or the
    /// refusal.
    fn start_upload(
        &mut self,
        cx: &mut Context<'_>,
        req: Request,
        served: Result<Served, Refusal>,
    ) {
        let (Some(session), Some(user)) = (self.session.as_ref(), self.user.clone()) else {
            return;
        };
        let served = match served {
            Ok(s) => s,
            Err(refusal) => return self.refuse(cx, &req, &refusal),
        };
        let slot = match self.peers.acquire(self.key, &user, served.want, &served.name) {
            Ok(s) => s,
            Err(full) => {
                let pos = self.peers.queue_position(&user);
                let bytes = session.refusal(&Refusal::SlotsFull(Some(pos)));
                self.refused(cx, &req, &full.to_string());
                return self.send(cx, bytes);
            }
        };
        let compress = req.compressed && session.peer_supports("ZLIG");
        let header = session.send_header(&req, served.start, served.bytes, compress);
        self.send(cx, header);
        if self.ending.is_some() {
            return;
        }
        if let Some(t) = self.deadline.take() {
            cx.cancel_timer(t);
        }
        let now = cx.now();
        let info = UploadInfo {
            user,
            file: served.name.clone(),
            start: served.start,
            bytes: served.bytes,
            sent: 0,
            started: now,
            tls: self.tls,
            compressed: compress,
        };
        self.upload = Some(Upload {
            served,
            slot,
            sent: 0,
            zlib: compress.then(|| Compress::new(Compression::fast(), true)),
            zlib_done: false,
        });
        if self.buf.len() < CHUNK {
            self.buf = vec![0; CHUNK];
        }
        self.window_sent = 0;
        self.window_limited = false;
        if self.check.is_none() {
            self.check = Some(cx.every(self.peers.timeouts().check_every));
        }
        if self.serving.as_ref().is_none_or(|(f, _, _)| *f != info.file) {
            self.done_serving(now, None);
            log::info!(target: "upload", "upload to {}: {}{}", info.user.nick, info.file, if self.tls { " (TLS)" } else { "" });
            self.serving = Some((info.file.clone(), 0, now));
        }
        self.peers.upload_started(self.key, info);
        cx.repoll();
    }

    fn refused(&mut self, cx: &mut Context<'_>, req: &Request, why: &str) {
        self.refusals += 1;
        if self.refusals > MAX_REFUSALS {
            // Said once; the connection ends after the refusal is sent.
            let why = format!("{MAX_REFUSALS} requests refused on one connection");
            self.end(cx, why, true);
            return;
        }
        let file = if req.kind == Kind::File {
            req.identifier.clone()
        } else {
            format!("{} {}", req.kind.as_str(), req.identifier)
        };
        self.peers.upload_failed(self.key, self.user.as_ref(), &file, why, cx.now());
    }

    /// Streams the running upload within this poll's budgets.
    fn pump(&mut self, cx: &mut Context<'_>) {
        let mut budget = SEND_PER_POLL;
        loop {
            if self.ending.is_some() {
                return;
            }
            // What was taken from the body and not yet by the socket.
            while self.out_pos < self.out.len() {
                let Some(conn) = self.conn.as_mut() else { return };
                match conn.write_now(&self.out[self.out_pos..]) {
                    Ok(0) => return,
                    Ok(n) => {
                        self.out_pos += n;
                        self.window_sent += n as u64;
                        budget = budget.saturating_sub(n);
                    }
                    Err(e) => return self.on_error(cx, e),
                }
            }
            self.out.clear();
            self.out_pos = 0;
            let Some(up) = self.upload.as_mut() else { return };
            let remaining = up.served.body.remaining();
            if remaining == 0 && (up.zlib.is_none() || up.zlib_done) {
                return self.finish(cx);
            }
            if budget == 0 {
                cx.repoll();
                return;
            }
            let want = CHUNK.min(remaining as usize).min(budget);
            let now = cx.now();
            let (allowed, wait) =
                if want == 0 { (0, Duration::ZERO) } else { self.peers.budget(want, now) };
            if want > 0 && allowed == 0 {
                self.window_limited = true;
                if self.limit_wait.is_none() {
                    self.limit_wait = Some(cx.after(wait.max(Duration::from_millis(1))));
                }
                return;
            }
            let n = if allowed > 0 {
                match read_body(&mut up.served.body, &mut self.buf[..allowed]) {
                    Ok(n) => n,
                    Err(e) => {
                        self.peers.give_back(allowed);
                        let why = format!("reading {}: {e}", up.served.name);
                        return self.end(cx, why, false);
                    }
                }
            } else {
                0
            };
            if n < allowed {
                self.peers.give_back(allowed - n);
            }
            up.sent += n as u64;
            let last = up.served.body.remaining() == 0;
            match up.zlib.as_mut() {
                Some(z) => {
                    let flush = if last { FlushCompress::Finish } else { FlushCompress::None };
                    let mut input = &self.buf[..n];
                    loop {
                        self.out.reserve(CHUNK / 2 + 64);
                        let before_in = z.total_in();
                        let status = z.compress_vec(input, &mut self.out, flush);
                        let used = (z.total_in() - before_in) as usize;
                        input = &input[used..];
                        match status {
                            Ok(Status::StreamEnd) => {
                                up.zlib_done = true;
                                break;
                            }
                            Ok(_) if input.is_empty() && !last => break,
                            Ok(_) if self.out.len() == self.out.capacity() => continue,
                            Ok(_) if input.is_empty() => continue,
                            Ok(_) => continue,
                            Err(e) => {
                                let why = format!("compressing {}: {e}", up.served.name);
                                return self.end(cx, why, false);
                            }
                        }
                    }
                }
                None => {
                    // Most of the time the socket takes it all: no copy.
                    let Some(conn) = self.conn.as_mut() else { return };
                    let mut off = 0;
                    while off < n {
                        match conn.write_now(&self.buf[off..n]) {
                            Ok(0) => break,
                            Ok(k) => {
                                off += k;
                                self.window_sent += k as u64;
                                budget = budget.saturating_sub(k);
                            }
                            Err(e) => return self.on_error(cx, e),
                        }
                    }
                    self.out.extend_from_slice(&self.buf[off..n]);
                }
            }
            let sent = up.sent;
            self.peers.upload_progress(self.key, sent);
        }
    }

    fn finish(&mut self, cx: &mut Context<'_>) {
        let Some(up) = self.upload.take() else { return };
        if let Some(s) = self.serving.as_mut() {
            s.1 += up.served.bytes;
        }
        // Its last byte sent: the file is done (a later request of it would
        // start a new line).
        if up.served.start + up.served.bytes == up.served.size {
            self.done_serving(cx.now(), None);
        }
        self.peers.upload_finished(self.key, cx.now());
        if up.slot == Slot::Mini {
            self.peers.release(self.key);
        }
        if let Some(t) = self.check.take() {
            cx.cancel_timer(t);
        }
        let idle = self.peers.timeouts().idle;
        self.set_deadline(cx, idle, "a request");
        // The next request may already be buffered.
        cx.repoll();
    }

    fn on_timers(&mut self, cx: &mut Context<'_>, fired: &[TimerId]) {
        for &t in fired {
            if Some(t) == self.close_timer {
                self.done = true;
            } else if Some(t) == self.deadline {
                self.deadline = None;
                let why = format!("timed out waiting for {}", self.deadline_what);
                self.end(cx, why, false);
            } else if Some(t) == self.limit_wait {
                self.limit_wait = None;
            } else if Some(t) == self.check {
                let t = self.peers.timeouts();
                let least = (t.min_rate as f64 * t.check_every.as_secs_f64()) as u64;
                if self.fetch_left.is_some() && !self.window_limited && self.window_sent == 0 {
                    let why = format!(
                        "the peer stopped sending (nothing in {:.0} s)",
                        t.check_every.as_secs_f64()
                    );
                    self.end(cx, why, false);
                }
                if self.upload.is_some() && !self.window_limited && self.window_sent < least {
                    let why = format!(
                        "the peer reads too slowly ({} bytes in {:.0} s)",
                        self.window_sent,
                        t.check_every.as_secs_f64()
                    );
                    self.end(cx, why, false);
                }
                self.window_sent = 0;
                self.window_limited = false;
            }
        }
    }
}

impl Job for PeerJob {
    fn poll(&mut self, cx: &mut Context<'_>) -> Step {
        if let Some(why) = self.failed_early.take() {
            log::info!(target: "peer", "client connection: {why}");
            self.done = true;
            return Step::Done;
        }
        if self.deadline.is_none() && self.ending.is_none() && self.upload.is_none() {
            let ready = self.session.as_ref().is_some_and(Session::is_ready);
            if !ready {
                let handshake = self.peers.timeouts().handshake;
                self.set_deadline(cx, handshake, "the handshake");
            }
        }
        if let Some(c) = self.conn.as_mut() {
            c.absorb(cx);
        }
        while let Some(m) = cx.recv() {
            if let Ok(done) = m.downcast::<TaskDone>() {
                if self.list_task.as_ref().is_some_and(|(id, _)| *id == done.task) {
                    self.list_built(cx, *done);
                }
            }
        }
        let fired = cx.fired_timers().to_vec();
        self.on_timers(cx, &fired);
        if self.start_pending && self.ending.is_none() {
            self.start_pending = false;
            let outs = self.session.as_mut().map(Session::start).unwrap_or_default();
            self.apply(cx, outs);
        }
        if self.ending.is_none() {
            if self.session.is_none() {
                self.sniff(cx);
            }
            if self.fetch_left.is_some() {
                self.receive(cx);
            }
            if self.session.is_some()
                && self.upload.is_none()
                && self.list_task.is_none()
                && self.fetch_left.is_none()
            {
                self.read(cx);
            }
            if self.fetch_left.is_some() {
                self.receive(cx);
            }
            if self.upload.is_some() {
                self.pump(cx);
            }
        }
        if let Some(c) = self.conn.as_mut() {
            if let Err(e) = c.flush() {
                if self.ending.is_none() {
                    self.on_error(cx, e);
                } else {
                    self.done = true;
                }
            }
        }
        if self.ending.is_some() && self.conn.as_ref().is_none_or(Connection::is_closed) {
            self.done = true;
        }
        if self.done {
            return Step::Done;
        }
        Step::Pending
    }

    fn is_alive(&self) -> bool {
        !self.done && self.ending.is_none()
    }

    fn stop(&mut self) {
        self.done = true;
        let now = self.peers.inner.rt.now();
        self.end_downloading("the client is stopping", now);
        if let Some(u) = self.upload.take() {
            let now = self.peers.inner.rt.now();
            self.peers.upload_failed(
                self.key,
                self.user.as_ref(),
                &u.served.name,
                "the client is stopping",
                now,
            );
        }
        if let Some(c) = self.conn.as_mut() {
            c.end(Close::Abortive);
        }
    }

    fn name(&self) -> String {
        format!("peer {}", self.who())
    }
}

impl Drop for PeerJob {
    fn drop(&mut self) {
        // However the job ends (done, stopped, the pool dropped), its slot
        // and its place in the counts are given back exactly once.
        self.peers.closed(self.key);
        if let Some(ip) = self.pending_ip.take() {
            self.peers.pending_end(ip);
        }
    }
}
