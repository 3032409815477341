//! The scripted hub of the bot test kit: a job of the client's own pool with
//! a listener on 127.0.0.1, speaking real NMDC or ADC to the real hub
//! session, driven by the test.
//!
//! What the test makes happen (a user joins, says something, sends a PM,
//! leaves, answers a search) is written to the client as the wire text a
//! hub sends; what the client sends is parsed by the codecs
//! ([`crate::proto::nmdc`], [`crate::proto::adc`]) into protocol-neutral
//! [`Sent`] records, and main chat is echoed back as hubs do. Every line
//! both ways goes to the transcript, which the runner prints when a test
//! fails.
//!
//! Owns: the listener, the client's connection, the scripted users, the
//! records. Must not: know Lua (the `dctest` bindings in
//! [`super::lua`] drive it), or anything of the client beyond the wire.
//! Not a hub for real use: one client connection at a time (a reconnect
//! replaces it), no passwords, no operator commands.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::time::Instant;

use crate::hub::Protocol;
use crate::net::{Connection, Framing, Listener};
use crate::proto::adc::{self, CommandName, Header, Sid};
use crate::proto::nmdc::{self, Chat, PrivateMessage};
use crate::runtime::{Context, Job, JobId, Runtime, Step};

/// The longest line the scripted hub reads from the client.
const MAX_FRAME: usize = 64 * 1024;

/// One thing the client sent to the hub, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Sent {
    /// `chat`, `pm`, `search`, `info` (the client's own user info),
    /// `keepalive` (an empty line) or `raw` (anything else).
    pub kind: &'static str,
    /// The recipient's nick, for a PM.
    pub to: Option<String>,
    /// The message text, the search's words (or TTH), or the line for
    /// `info` and `raw`.
    pub text: String,
    /// A `/me` action.
    pub me: bool,
    /// The line as sent, without its terminator.
    pub raw: String,
    /// Virtual seconds since the hub started.
    pub at: f64,
}

/// Which way a transcript line went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// From the hub to the client.
    ToClient,
    /// From the client to the hub.
    FromClient,
}

/// A user the test made join.
#[derive(Debug, Clone, Default)]
pub struct UserSpec {
    /// The nick.
    pub nick: String,
    /// The description.
    pub description: String,
    /// The e-mail address.
    pub email: String,
    /// Bytes shared.
    pub share: u64,
    /// An operator.
    pub op: bool,
}

#[derive(Debug, Clone)]
struct User {
    spec: UserSpec,
    sid: Sid,
    online: bool,
}

/// The client's side as the hub sees it.
#[derive(Debug, Default)]
struct ClientSide {
    nick: Option<String>,
    sid: Option<Sid>,
    /// Its user list was sent (its own info came back to it).
    listed: bool,
}

/// What the hub knows and has seen; shared by the job and the test's handle.
struct State {
    protocol: Protocol,
    name: String,
    started: Instant,
    rt: Runtime,
    users: Vec<User>,
    client: ClientSide,
    sent: Vec<Sent>,
    /// `taken[i]`: record `i` was matched by an `expect_*` already.
    taken: Vec<bool>,
    transcript: Vec<(f64, Dir, String)>,
    /// Bytes for the client, written by the job.
    out: Vec<u8>,
    next_sid: u32,
    /// The token of the client's last search (ADC results carry it).
    last_token: Option<String>,
    connections: usize,
    /// The test asked to drop the client's connection.
    drop_client: bool,
    /// Accept connections but never answer (a hub that hangs at login).
    stall: bool,
    /// Called after each new record (the `dctest` bindings wake waiters).
    on_record: Option<Rc<dyn Fn()>>,
}

impl State {
    fn now(&self) -> f64 {
        self.rt.now().saturating_duration_since(self.started).as_secs_f64()
    }

    fn log(&mut self, dir: Dir, line: &[u8]) {
        let at = self.now();
        self.transcript.push((at, dir, String::from_utf8_lossy(line).into_owned()));
    }

    /// Queues one line for the client (`line` without its terminator).
    fn send_line(&mut self, line: &[u8]) {
        self.log(Dir::ToClient, line);
        self.out.extend_from_slice(line);
        self.out.push(match self.protocol {
            Protocol::Nmdc => b'|',
            Protocol::Adc => b'\n',
        });
    }

    /// Queues an encoded frame (with its terminator).
    fn send_frame(&mut self, frame: &[u8]) {
        let line = frame.strip_suffix(b"|").or_else(|| frame.strip_suffix(b"\n")).unwrap_or(frame);
        self.send_line(line);
    }

    fn record(
        &mut self,
        kind: &'static str,
        to: Option<String>,
        text: String,
        me: bool,
        raw: &[u8],
    ) {
        let at = self.now();
        let raw = String::from_utf8_lossy(raw).into_owned();
        self.sent.push(Sent { kind, to, text, me, raw, at });
        self.taken.push(false);
    }

    fn alloc_sid(&mut self) -> Sid {
        self.next_sid += 1;
        Sid::new(self.next_sid)
            .unwrap_or_else(|| unreachable!("more than a million scripted users"))
    }

    fn user_by_sid(&self, sid: Sid) -> Option<&User> {
        self.users.iter().find(|u| u.sid == sid)
    }

    // ----- what the hub tells the client -------------------------------------

    fn greet(&mut self) {
        self.client = ClientSide::default();
        if self.protocol == Protocol::Nmdc && !self.stall {
            self.send_line(b"$Lock EXTENDEDPROTOCOL_dctest Pk=dcluatest");
            let name = format!("$HubName {}", self.name);
            self.send_line(name.as_bytes());
        }
        // ADC clients speak first (HSUP).
    }

    fn user_info_line(&self, u: &User) -> Vec<u8> {
        let s = &u.spec;
        match self.protocol {
            Protocol::Nmdc => format!(
                "$MyINFO $ALL {} {}<dctest V:1,M:A,H:1/0/0,S:3>$ $LAN(T3)\x01${}${}$",
                s.nick, s.description, s.email, s.share
            )
            .into_bytes(),
            Protocol::Adc => {
                let mut m = adc::Message::new(Header::Broadcast { from: u.sid }, CommandName::INF);
                m.push_named("ID", &fake_cid(&s.nick));
                m.push_named("NI", &s.nick);
                if !s.description.is_empty() {
                    m.push_named("DE", &s.description);
                }
                if !s.email.is_empty() {
                    m.push_named("EM", &s.email);
                }
                m.push_named("SS", &s.share.to_string());
                m.push_named("SL", "3");
                m.push_named("HN", "1");
                m.push_named("VE", "dctest");
                if s.op {
                    m.push_named("CT", "4");
                }
                let mut line = m.encode();
                line.pop();
                line
            }
        }
    }

    fn announce_user(&mut self, i: usize) {
        let u = self.users[i].clone();
        if self.protocol == Protocol::Nmdc {
            self.send_line(format!("$Hello {}", u.spec.nick).as_bytes());
        }
        let line = self.user_info_line(&u);
        self.send_line(&line);
        if self.protocol == Protocol::Nmdc && u.spec.op {
            self.send_line(format!("$OpList {}$$", u.spec.nick).as_bytes());
        }
    }

    fn list_users(&mut self) {
        let online: Vec<usize> = (0..self.users.len()).filter(|&i| self.users[i].online).collect();
        for &i in &online {
            let line = self.user_info_line(&self.users[i].clone());
            self.send_line(&line);
        }
        if self.protocol == Protocol::Nmdc {
            let ops: String = online
                .iter()
                .filter(|&&i| self.users[i].spec.op)
                .map(|&i| format!("{}$$", self.users[i].spec.nick))
                .collect();
            if !ops.is_empty() {
                self.send_line(format!("$OpList {ops}").as_bytes());
            }
        }
    }

    // ----- what the client tells the hub ------------------------------------

    fn heard(&mut self, frame: &[u8]) {
        if frame.is_empty() {
            self.log(Dir::FromClient, b"(keep-alive)");
            self.record("keepalive", None, String::new(), false, frame);
            return;
        }
        self.log(Dir::FromClient, frame);
        if self.stall {
            return; // never answers: the client's login timeout runs
        }
        match self.protocol {
            Protocol::Nmdc => self.nmdc_frame(frame),
            Protocol::Adc => self.adc_frame(frame),
        }
    }

    fn nmdc_frame(&mut self, frame: &[u8]) {
        let cs = encoding_rs::UTF_8;
        match nmdc::parse(frame, cs) {
            nmdc::Message::Supports(_) | nmdc::Message::Key(_) | nmdc::Message::Version(_) => {}
            nmdc::Message::ValidateNick(nick) => {
                self.send_line(format!("$Hello {nick}").as_bytes());
                self.client.nick = Some(nick);
            }
            nmdc::Message::GetNickList => {
                self.list_users();
            }
            nmdc::Message::MyInfo(mi) => {
                self.client.listed = true;
                self.record("info", None, mi.description.clone(), false, frame);
                // Hubs pass it on to everyone, the client included.
                self.send_line(frame);
            }
            nmdc::Message::Chat(c) => {
                let (me, text) = match c.text.strip_prefix("/me ") {
                    Some(t) => (true, t.to_string()),
                    None => (false, c.text.clone()),
                };
                self.record("chat", None, text, me, frame);
                self.send_line(frame);
            }
            nmdc::Message::PrivateMessage(pm) => {
                let (me, text) = match pm.text.strip_prefix("/me ") {
                    Some(t) => (true, t.to_string()),
                    None => (false, pm.text.clone()),
                };
                self.record("pm", Some(pm.to.clone()), text, me, frame);
            }
            nmdc::Message::Search(s) => {
                let text = match &s.pattern {
                    nmdc::SearchPattern::Text(t) => t.clone(),
                    nmdc::SearchPattern::Tth(t) => format!("TTH:{t}"),
                };
                self.record("search", None, text, false, frame);
            }
            _ => {
                self.record("raw", None, String::from_utf8_lossy(frame).into_owned(), false, frame);
            }
        }
    }

    fn adc_frame(&mut self, frame: &[u8]) {
        let Ok(msg) = adc::parse(frame) else {
            self.record("raw", None, String::from_utf8_lossy(frame).into_owned(), false, frame);
            return;
        };
        let command = adc::Command::from_message(&msg);
        match (msg.header(), command) {
            (Header::Hub, Ok(adc::Command::Sup(_))) => {
                let sid = self.alloc_sid();
                self.client.sid = Some(sid);
                self.send_line(b"ISUP ADBASE ADTIGR");
                self.send_line(format!("ISID {sid}").as_bytes());
                let mut inf = adc::Message::new(Header::Info, CommandName::INF);
                inf.push_named("CT", "32");
                inf.push_named("NI", &self.name.clone());
                inf.push_named("VE", "dctest");
                self.send_frame(&inf.encode());
            }
            (Header::Broadcast { from }, Ok(adc::Command::Inf(inf))) => {
                if let Some(adc::Update::Set(nick)) = inf.nick {
                    self.client.nick = Some(nick.to_string());
                }
                self.client.sid = Some(*from);
                self.record(
                    "info",
                    None,
                    String::from_utf8_lossy(frame).into_owned(),
                    false,
                    frame,
                );
                if !self.client.listed {
                    // The user list, then the client's own INF: the end of it.
                    self.client.listed = true;
                    self.list_users();
                }
                self.send_line(frame);
            }
            (Header::Broadcast { .. }, Ok(adc::Command::Msg(m))) if m.pm.is_none() => {
                self.record("chat", None, m.text.to_string(), m.me, frame);
                self.send_line(frame);
            }
            (Header::Echo { to, .. } | Header::Direct { to, .. }, Ok(adc::Command::Msg(m))) => {
                let to_nick = self.user_by_sid(*to).map(|u| u.spec.nick.clone());
                let echo = matches!(msg.header(), Header::Echo { .. });
                self.record(
                    "pm",
                    Some(to_nick.unwrap_or_else(|| to.to_string())),
                    m.text.to_string(),
                    m.me,
                    frame,
                );
                if echo {
                    self.send_line(frame);
                }
            }
            (_, Ok(adc::Command::Sch(s))) => {
                let text = match s.tth {
                    Some(t) => format!("TTH:{t}"),
                    None => s.include.join(" "),
                };
                self.last_token = s.token.map(str::to_string);
                self.record("search", None, text, false, frame);
            }
            _ => {
                self.record("raw", None, String::from_utf8_lossy(frame).into_owned(), false, frame);
            }
        }
    }
}

/// A CID for a scripted user, stable per nick: 39 base32 characters.
fn fake_cid(nick: &str) -> String {
    use tiger::Digest as _;
    data_encoding::BASE32_NOPAD.encode(&tiger::Tiger::digest(nick.as_bytes()))
}

/// The test's handle on a scripted hub (cheap to clone).
#[derive(Clone)]
pub struct ScriptedHub {
    state: Rc<RefCell<State>>,
    job: JobId,
    addr: SocketAddr,
}

impl std::fmt::Debug for ScriptedHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptedHub").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl ScriptedHub {
    /// Starts a scripted hub named `name` on 127.0.0.1 (a free port).
    pub fn start(rt: &Runtime, protocol: Protocol, name: &str) -> std::io::Result<ScriptedHub> {
        let state = Rc::new(RefCell::new(State {
            protocol,
            name: name.to_string(),
            started: rt.now(),
            rt: rt.clone(),
            users: Vec::new(),
            client: ClientSide::default(),
            sent: Vec::new(),
            taken: Vec::new(),
            transcript: Vec::new(),
            out: Vec::new(),
            next_sid: 1,
            last_token: None,
            connections: 0,
            drop_client: false,
            stall: false,
            on_record: None,
        }));
        let mut err = None;
        let mut addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let job = rt.spawn_with(|id| {
            let listener = Listener::bind(rt, id, addr);
            let listener = match listener {
                Ok(l) => {
                    addr = l.local_addr().unwrap_or(addr);
                    Some(l)
                }
                Err(e) => {
                    err = Some(e);
                    None
                }
            };
            HubJob { state: state.clone(), listener, conn: None, stopped: false }
        });
        if let Some(e) = err {
            rt.stop(job);
            return Err(e);
        }
        Ok(ScriptedHub { state, job, addr })
    }

    /// The address the client connects to (`dchub://…` or `adc://…`).
    pub fn url(&self) -> String {
        let scheme = match self.state.borrow().protocol {
            Protocol::Nmdc => "dchub",
            Protocol::Adc => "adc",
        };
        format!("{scheme}://{}", self.addr)
    }

    /// The protocol.
    pub fn protocol(&self) -> Protocol {
        self.state.borrow().protocol
    }

    /// The client's nick, once it gave one.
    pub fn client_nick(&self) -> Option<String> {
        self.state.borrow().client.nick.clone()
    }

    /// Client connections accepted so far.
    pub fn connections(&self) -> usize {
        self.state.borrow().connections
    }

    /// From now on, accepts connections but never answers (a hub that
    /// hangs at login; the client's login timeout runs).
    pub fn stall(&self) {
        self.state.borrow_mut().stall = true;
    }

    /// Calls `f` after each new record.
    pub fn on_record(&self, f: Rc<dyn Fn()>) {
        self.state.borrow_mut().on_record = Some(f);
    }

    fn wake(&self) {
        self.state.borrow().rt.wake(self.job);
    }

    /// A user joins (or, with a nick already online, updates its info).
    pub fn join(&self, spec: UserSpec) -> Result<(), String> {
        if spec.nick.is_empty() || spec.nick.contains([' ', '$', '|', '<', '>']) {
            return Err(format!(
                "dctest: a nick without spaces, $, |, < or >, not {:?}",
                spec.nick
            ));
        }
        {
            let mut s = self.state.borrow_mut();
            if s.client.nick.as_deref() == Some(spec.nick.as_str()) {
                return Err(format!("dctest: {} is the client's own nick", spec.nick));
            }
            let i = match s.users.iter().position(|u| u.spec.nick == spec.nick) {
                Some(i) => {
                    s.users[i].spec = spec;
                    s.users[i].online = true;
                    i
                }
                None => {
                    let sid = s.alloc_sid();
                    s.users.push(User { spec, sid, online: true });
                    s.users.len() - 1
                }
            };
            if s.client.listed {
                s.announce_user(i);
            }
        }
        self.wake();
        Ok(())
    }

    fn online_user(&self, nick: &str) -> Result<User, String> {
        let s = self.state.borrow();
        s.users
            .iter()
            .find(|u| u.spec.nick == nick && u.online)
            .cloned()
            .ok_or_else(|| format!("dctest: {nick} is not on the hub"))
    }

    /// `nick` says `text` in main chat (`me`: as an action).
    pub fn say(&self, nick: &str, text: &str, me: bool) -> Result<(), String> {
        let u = self.online_user(nick)?;
        {
            let mut s = self.state.borrow_mut();
            match s.protocol {
                Protocol::Nmdc => {
                    let text = if me { format!("/me {text}") } else { text.to_string() };
                    let chat = Chat { nick: Some(nick.to_string()), text };
                    let frame = nmdc::encode(&nmdc::Message::Chat(chat), encoding_rs::UTF_8);
                    s.send_frame(&frame);
                }
                Protocol::Adc => {
                    let mut m =
                        adc::Message::new(Header::Broadcast { from: u.sid }, CommandName::MSG);
                    m.push(text);
                    if me {
                        m.push_named("ME", "1");
                    }
                    s.send_frame(&m.encode());
                }
            }
        }
        self.wake();
        Ok(())
    }

    /// `nick` sends the client the private message `text`.
    pub fn pm(&self, nick: &str, text: &str, me: bool) -> Result<(), String> {
        let u = self.online_user(nick)?;
        {
            let mut s = self.state.borrow_mut();
            let Some(client) = s.client.nick.clone() else {
                return Err("dctest: the client is not logged in".into());
            };
            match s.protocol {
                Protocol::Nmdc => {
                    let text = if me { format!("/me {text}") } else { text.to_string() };
                    let pm = PrivateMessage::new(nick, &client, &text);
                    let frame =
                        nmdc::encode(&nmdc::Message::PrivateMessage(pm), encoding_rs::UTF_8);
                    s.send_frame(&frame);
                }
                Protocol::Adc => {
                    let Some(to) = s.client.sid else {
                        return Err("dctest: the client is not logged in".into());
                    };
                    let mut m =
                        adc::Message::new(Header::Echo { from: u.sid, to }, CommandName::MSG);
                    m.push(text);
                    m.push_named("PM", &u.sid.to_string());
                    if me {
                        m.push_named("ME", "1");
                    }
                    s.send_frame(&m.encode());
                }
            }
        }
        self.wake();
        Ok(())
    }

    /// `nick` leaves the hub.
    pub fn leave(&self, nick: &str) -> Result<(), String> {
        let u = self.online_user(nick)?;
        {
            let mut s = self.state.borrow_mut();
            if let Some(x) = s.users.iter_mut().find(|x| x.spec.nick == nick) {
                x.online = false;
            }
            if s.client.listed {
                match s.protocol {
                    Protocol::Nmdc => s.send_line(format!("$Quit {nick}").as_bytes()),
                    Protocol::Adc => s.send_line(format!("IQUI {}", u.sid).as_bytes()),
                }
            }
        }
        self.wake();
        Ok(())
    }

    /// The hub itself says `text` in main chat (no nick).
    pub fn announce(&self, text: &str) {
        {
            let mut s = self.state.borrow_mut();
            match s.protocol {
                Protocol::Nmdc => {
                    let chat = Chat { nick: None, text: text.to_string() };
                    let frame = nmdc::encode(&nmdc::Message::Chat(chat), encoding_rs::UTF_8);
                    s.send_frame(&frame);
                }
                Protocol::Adc => {
                    let mut m = adc::Message::new(Header::Info, CommandName::MSG);
                    m.push(text);
                    s.send_frame(&m.encode());
                }
            }
        }
        self.wake();
    }

    /// `nick` answers the client's last search with a file.
    pub fn search_result(
        &self,
        nick: &str,
        path: &str,
        size: u64,
        tth: Option<&str>,
    ) -> Result<(), String> {
        let u = self.online_user(nick)?;
        {
            let mut s = self.state.borrow_mut();
            let Some(client) = s.client.nick.clone() else {
                return Err("dctest: the client is not logged in".into());
            };
            match s.protocol {
                Protocol::Nmdc => {
                    let wire_path = path.trim_start_matches('/').replace('/', "\\");
                    let hash = tth.map_or_else(|| s.name.clone(), |t| format!("TTH:{t}"));
                    let line = format!(
                        "$SR {nick} {wire_path}\x05{size} 3/3\x05{hash} (127.0.0.1:411)\x05{client}"
                    );
                    // A hub strips the target before passing the result on.
                    let line =
                        line.rsplit_once('\x05').map_or(line.clone(), |(l, _)| l.to_string());
                    s.send_line(line.as_bytes());
                }
                Protocol::Adc => {
                    let Some(to) = s.client.sid else {
                        return Err("dctest: the client is not logged in".into());
                    };
                    let mut m =
                        adc::Message::new(Header::Direct { from: u.sid, to }, CommandName::RES);
                    let p =
                        if path.starts_with('/') { path.to_string() } else { format!("/{path}") };
                    m.push_named("FN", &p);
                    m.push_named("SI", &size.to_string());
                    m.push_named("SL", "3");
                    if let Some(t) = tth {
                        m.push_named("TR", t);
                    }
                    if let Some(token) = s.last_token.clone() {
                        m.push_named("TO", &token);
                    }
                    s.send_frame(&m.encode());
                }
            }
        }
        self.wake();
        Ok(())
    }

    /// Sends a protocol line as it is (without its terminator).
    pub fn send_raw(&self, line: &str) {
        self.state.borrow_mut().send_line(line.as_bytes());
        self.wake();
    }

    /// Every record with whether an `expect_*` matched it already.
    pub fn records(&self) -> Vec<(Sent, bool)> {
        let s = self.state.borrow();
        s.sent.iter().cloned().zip(s.taken.iter().copied()).collect()
    }

    /// Marks record `i` matched, so that two `expect_*` calls never match
    /// the same message.
    pub fn mark(&self, i: usize) {
        if let Some(t) = self.state.borrow_mut().taken.get_mut(i) {
            *t = true;
        }
    }

    /// The transcript: one line per message, `>>` to the client, `<<` from
    /// it, with the virtual time.
    pub fn transcript(&self) -> String {
        let s = self.state.borrow();
        let mut out = String::new();
        for (at, dir, line) in &s.transcript {
            let arrow = match dir {
                Dir::ToClient => "hub >>",
                Dir::FromClient => "hub <<",
            };
            let _ = writeln!(out, "  [{at:>8.3}s] {arrow} {}", line.escape_debug());
        }
        out
    }

    /// Drops the client's connection, as a hub that kicks or crashes would
    /// (the listener stays: the client may reconnect).
    pub fn drop_client(&self) {
        self.state.borrow_mut().drop_client = true;
        self.wake();
    }
}

/// The hub's job: accepts the client, reads its lines, writes the queue.
struct HubJob {
    state: Rc<RefCell<State>>,
    listener: Option<Listener>,
    conn: Option<Connection>,
    stopped: bool,
}

impl HubJob {
    fn framing(&self) -> Framing {
        match self.state.borrow().protocol {
            Protocol::Nmdc => Framing::nmdc(MAX_FRAME),
            Protocol::Adc => Framing::adc(MAX_FRAME),
        }
    }

    fn accept(&mut self, cx: &mut Context<'_>) {
        let framing = self.framing();
        let Some(listener) = self.listener.as_mut() else { return };
        listener.absorb(cx);
        loop {
            match listener.accept() {
                Ok(Some((stream, _))) => {
                    match Connection::accepted(cx.runtime(), cx.id(), stream, framing) {
                        Ok(conn) => {
                            // A reconnect replaces the old connection.
                            self.conn = Some(conn);
                            let mut s = self.state.borrow_mut();
                            s.connections += 1;
                            s.out.clear();
                            s.greet();
                        }
                        Err(e) => log::warn!(target: "dctest", "scripted hub: accepting: {e}"),
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    log::warn!(target: "dctest", "scripted hub: accepting: {e}");
                    break;
                }
            }
        }
    }
}

impl Job for HubJob {
    fn poll(&mut self, cx: &mut Context<'_>) -> Step {
        if self.stopped {
            if let Some(mut c) = self.conn.take() {
                c.abort();
            }
            return Step::Done;
        }
        self.accept(cx);
        if std::mem::take(&mut self.state.borrow_mut().drop_client) {
            if let Some(mut c) = self.conn.take() {
                self.state.borrow_mut().log(Dir::ToClient, b"(the hub drops the connection)");
                c.abort();
            }
            self.state.borrow_mut().client = ClientSide::default();
        }
        let Some(conn) = self.conn.as_mut() else { return Step::Pending };
        conn.absorb(cx);
        let mut frames = Vec::new();
        let read = conn.read_frames(10_000, |f| frames.push(f.to_vec()));
        let records_before = self.state.borrow().sent.len();
        for f in &frames {
            self.state.borrow_mut().heard(f);
        }
        let closed = match read {
            Ok(status) => status.eof,
            Err(e) => {
                log::debug!(target: "dctest", "scripted hub: the client's connection: {e}");
                true
            }
        };
        if conn.has_more() {
            cx.repoll();
        }
        let out = std::mem::take(&mut self.state.borrow_mut().out);
        if !out.is_empty() && !closed {
            // `send` writes what the socket takes now; the rest waits for
            // writability, which wakes this job.
            if let Err(e) = conn.send(out) {
                log::debug!(target: "dctest", "scripted hub: writing to the client: {e}");
            }
        }
        if closed {
            self.conn = None;
            self.state.borrow_mut().client = ClientSide::default();
        }
        let notify = {
            let s = self.state.borrow();
            (s.sent.len() > records_before).then(|| s.on_record.clone()).flatten()
        };
        if let Some(f) = notify {
            f();
        }
        Step::Pending
    }

    fn is_alive(&self) -> bool {
        !self.stopped
    }

    fn stop(&mut self) {
        self.stopped = true;
    }

    fn name(&self) -> String {
        format!("scripted {} hub", self.state.borrow().protocol.as_str())
    }
}
