//! The ADC dialect of the hub driver (`driver`): what ADC means for
//! a session of an `adc://` or `adcs://` hub. It reports into the same
//! protocol-neutral model as NMDC ([`HubEvent`] and the registry's
//! [`HubInfo`](super::HubInfo)), so that a bot written for one protocol
//! works on the other unchanged.
//!
//! This module owns the ADC states, our INF, the SID side of the user list;
//! the driver owns the connection, reconnecting, redirects, keep-alives and
//! event batching. It must not know about Lua, never touches the socket and
//! never parses wire syntax itself: that is [`crate::proto::adc`].
//!
//! # Life of a session
//!
//! 1. **Connect.** `adc://host:port` or `adcs://host:port[/?kp=SHA256/...]`;
//!    host names are resolved on a helper thread. TLS hubs are checked by
//!    keyprint ([`crate::tls`]): the `kp` of the address, else trust on first
//!    use. A refused keyprint ends the session for good (no reconnect), with
//!    the reason naming both keyprints; `hub.keyprint` holds the hub's
//!    keyprint once the handshake is done.
//! 2. **PROTOCOL.** We send `HSUP ADBAS0 ADBASE ADTIGR` at once; the hub
//!    answers `ISUP` and `ISID` (our SID).
//! 3. **IDENTIFY.** Our `BINF`: `ID`/`PD` from a PID generated once and kept
//!    in the data folder ([`crate::identity::PID_FILE_NAME`]), `NI DE EM SS SF SL FS HN HR HO
//!    AP VE`, `SU`/`I4`/`U4` in active mode, `ADC0` and `KP` when TLS
//!    transfers are on (`tls_transfers`).
//! 4. **VERIFY.** `IGPA` is answered with `HPAS` when a password is set, else
//!    the login fails without reconnecting.
//! 5. **NORMAL.** The hub lists every user with `BINF` and ours last: that
//!    echo is the end of the initial list, and [`HubEvent::Connected`] fires.
//!    Then: incremental `BINF` (folded with [`Message::apply_update`]),
//!    `IQUI`, `BMSG`/`IMSG` main chat, `EMSG`/`DMSG` PMs (`PM`, `ME1`),
//!    `BSCH`/`FSCH` searches, `DRES` results (and `URES` over UDP, through the
//!    shared listener of [`super::udp`]), `DCTM`/`DRCM` connection requests,
//!    `ISTA` status.
//! 6. **Drop.** The driver reconnects with backoff and jitter. No reconnect
//!    after [`HubCommand::Disconnect`], a fatal login `STA` (bad password,
//!    invalid nick, registered only, bad PID...; "nick taken" and "CID taken"
//!    do reconnect: the holder may be our own dropped connection), a missing
//!    password, a refused keyprint, or our own `IQUI` with `TL-1`.
//!
//! # Decisions
//!
//! - **STA**: a fatal one during login is a [`HubEvent::LoginFailed`] with
//!   the hub's text; a fatal one later ends the connection with that text as
//!   the reason. Non-fatal ones are hub text: a [`HubEvent::Chat`] without a
//!   nick (as DC++ shows them in the hub window), and a log line. Floods of
//!   them, and of malformed lines, are logged a few times per connection and
//!   then counted, never line by line.
//! - **Searches** carry a token naming this session (`d<hub>s<n>`), so that
//!   UDP results (`URES`) find their hub. A passive searcher sends `FSCH`
//!   to `+TCP4` users only (a passive user cannot connect to another passive
//!   one), as DC++ does; an active one sends `BSCH`.
//! - **Others' searches** are answered from the share service
//!   ([`Hubs::share_answers`](super::Hubs)): up to 10 `URES` datagrams to an active
//!   searcher (one announcing `UDP4` with `I4`/`U4`), up to 5 `DRES` through
//!   the hub to a passive one, with the search's token.
//! - **Our own PMs** come back from the hub (`EMSG` echo); they are not
//!   reported, as on NMDC. Our own searches are neither reported nor
//!   answered.
//! - **Users** are kept in the shared [`UserList`], by nick and by SID; a
//!   `BINF` goes straight from the line to the list ([`split_binf`],
//!   [`apply_inf`]: no message is built for it, the INF is read once). A
//!   `BINF` of a new SID with a nick another SID holds (a SID collision)
//!   replaces the stale entry, with a warning. An INF longer than
//!   [`MAX_INF`] is refused.
//! - **Our INF** goes out again when what it says changes, as a diff (only
//!   the changed fields; a cleared field is sent empty), at most every
//!   [`INF_INTERVAL`] (every [`SHARE_INTERVAL`] when only the share changed).
//! - **Redirects** (`IQUI` of our SID with `RD`) go to the driver, as NMDC's
//!   `$ForceMove` does; they may lead to an NMDC hub.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::driver::{After, Dialect, Framer, Session};
use super::model::{
    HubCommand, HubEvent, HubId, HubParams, HubState, PeerRequest, Protocol, Role, SearchFrom,
    SearchHit, Via,
};
use super::registry::Hubs;
use super::users::{User, UserList};
use crate::net::Framing;
use crate::proto::adc::{
    self, Away, Command, Ctm, Feature, FeatureFilter, FileType as AdcFileType, Header, Inf,
    Message, Msg, Qui, Rcm, Res, Sch, Severity, Sid, Sta, Sup, Update, UserType,
};
use crate::runtime::{Context, TimerId};
use crate::search::{FileType, Query};

/// The longest line accepted from a hub (ADC lines are short; a long MOTD
/// or user-command list fits).
pub const MAX_FRAME: usize = 256 << 10;
/// The longest INF kept for one user; longer ones are refused (real ones
/// are well under 1 KiB).
pub const MAX_INF: usize = 8 << 10;
/// INF changes go out at most this often.
pub const INF_INTERVAL: Duration = Duration::from_secs(2);
/// Share-size-only INF changes go out at most this often.
pub const SHARE_INTERVAL: Duration = Duration::from_secs(60);
/// Malformed lines and status messages logged per connection before they
/// are only counted.
pub const NOISY_LOG_LIMIT: u32 = 10;

/// The features of our `HSUP`.
const HUB_FEATURES: [Feature; 3] = [Feature::BAS0, Feature::BASE, Feature::TIGR];

// ----- users -----------------------------------------------------------------------

/// What applying a `BINF` did to the user list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InfChange {
    /// A new user (the nick).
    Joined(Box<str>),
    /// A known user's information changed (the nick).
    Updated(Box<str>),
    /// A known user changed nick.
    Renamed {
        /// The old nick.
        old: Box<str>,
        /// The new nick.
        new: Box<str>,
    },
    /// Nothing changed.
    Unchanged,
    /// The INF was not applied (why).
    Rejected(String),
}

/// A `BINF` line's SID and fields (as on the wire, after `BINF <SID> `),
/// when the line is well-formed: UTF-8, a SID, only the escapes ADC knows.
/// User INFs are most of what a big hub sends; this is all the parsing they
/// get before [`apply_inf`].
pub fn split_binf(frame: &[u8]) -> Option<(Sid, &str)> {
    let rest = frame.strip_prefix(b"BINF ")?;
    let text = std::str::from_utf8(rest).ok()?;
    let (sid, fields) = text.split_once(' ').unwrap_or((text, ""));
    let sid: Sid = sid.parse().ok()?;
    let b = fields.as_bytes();
    let mut at = 0;
    while let Some(p) = memchr::memchr(b'\\', &b[at..]) {
        match b.get(at + p + 1) {
            Some(b's' | b'n' | b'\\') => at += p + 2,
            _ => return None,
        }
    }
    Some((sid, fields))
}

/// Applies one `BINF` of `sid` (its `fields` as on the wire, `frame_len`
/// bytes in all) to a user list, the way a session does: a new SID is a
/// new user (a nick another SID holds is taken over), a known one is
/// updated incrementally ([`User::apply_inf`]).
pub fn apply_inf(users: &mut UserList, sid: Sid, fields: &str, frame_len: usize) -> InfChange {
    if frame_len > MAX_INF {
        return InfChange::Rejected(format!("an INF of {frame_len} bytes (more than {MAX_INF})"));
    }
    let Some(old) = users.by_sid(sid) else {
        let mut user = User::default();
        user.apply_inf(users, sid, fields);
        if user.nick().is_empty() {
            return InfChange::Rejected(format!("a new user {sid} without a nick (NI)"));
        }
        let nick: Box<str> = user.nick().into();
        // The user this one replaces, if any, can only hold the nick under
        // another SID.
        return match users.insert(user).and_then(|old| old.sid()) {
            Some(other) => {
                log::warn!(target: "hub", "ADC: SID collision: {sid} takes the nick {nick:?} of {other}; the old entry is dropped");
                InfChange::Updated(nick)
            }
            None => InfChange::Joined(nick),
        };
    };
    let old_nick: Box<str> = old.nick().into();
    let mut user = old.clone();
    user.apply_inf(users, sid, fields);
    if users.by_sid(sid).is_some_and(|o| *o == user) {
        return InfChange::Unchanged;
    }
    if *user.nick() == *old_nick {
        users.insert(user);
        return InfChange::Updated(old_nick);
    }
    let new: Box<str> = user.nick().into();
    if let Some(other) = users.get(&new).and_then(User::sid) {
        log::warn!(target: "hub", "ADC: SID collision: {sid} renames to {new:?}, held by {other}; the old entry is dropped");
    }
    users.remove(&old_nick);
    users.insert(user);
    InfChange::Renamed { old: old_nick, new }
}

/// Applies a flood of `BINF` lines to a user list the way a session does
/// ([`split_binf`], [`apply_inf`]); returns how many users were applied.
/// For benchmarks.
pub fn apply_binf_lines<'a>(
    users: &mut UserList,
    lines: impl IntoIterator<Item = &'a [u8]>,
) -> usize {
    let mut n = 0;
    for line in lines {
        let Some((sid, fields)) = split_binf(line) else { continue };
        if !matches!(apply_inf(users, sid, fields, line.len()), InfChange::Rejected(_)) {
            n += 1;
        }
    }
    n
}

// ----- the UDP route -----------------------------------------------------------

/// The search token of hub `id`'s search number `n`.
fn search_token(id: HubId, n: u64) -> String {
    format!("d{}s{n}", id.0)
}

/// The hub a search token names.
fn token_hub(token: &str) -> Option<HubId> {
    let rest = token.strip_prefix('d')?;
    let (id, _) = rest.split_once('s')?;
    id.parse::<u64>().ok().map(crate::runtime::JobId)
}

/// The hub an ADC datagram (`URES`) from the shared UDP listener is for: the
/// session whose search token it carries, else the ADC hub searched last.
pub(crate) fn udp_route(hubs: &Hubs, data: &[u8], from: SocketAddr) -> Option<HubId> {
    let line = data.split(|&b| b == b'\n').next().unwrap_or(&[]);
    let msg = match adc::parse(line) {
        Ok(m) => m,
        Err(e) => {
            log::debug!(target: "hub", "UDP datagram from {from}: not ADC: {e}; dropped");
            return None;
        }
    };
    if msg.command() != adc::CommandName::RES {
        log::debug!(target: "hub", "UDP datagram from {from} is a {}, not a result; dropped", msg.command());
        return None;
    }
    let is_adc = |id: HubId| hubs.get(id).is_some_and(|h| h.borrow().protocol == Protocol::Adc);
    let by_token = msg.get("TO").and_then(token_hub).filter(|id| is_adc(*id));
    by_token.or_else(|| {
        hubs.ids()
            .into_iter()
            .filter(|id| is_adc(*id))
            .filter_map(|id| hubs.get(id).and_then(|h| h.borrow().last_search.map(|t| (t, id))))
            .max()
            .map(|(_, id)| id)
    })
}

// ----- the dialect -------------------------------------------------------------------

/// The ADC states of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Protocol,
    Identify,
    Verify,
    Normal,
}

/// The ADC state of a session (the driver keeps the rest).
pub(crate) struct Adc {
    stage: Stage,
    my_sid: Option<Sid>,
    /// The hub asked for our password.
    registered: bool,
    /// The whole INF we announced last (to send only changes).
    last_inf: Option<Message>,
    last_inf_at: Option<Instant>,
    /// Our searches so far (their tokens).
    searches: u64,
    /// Malformed lines and status messages seen on this connection.
    noisy: u32,
    inf_timer: Option<TimerId>,
}

impl Dialect for Adc {
    const PROTOCOL: Protocol = Protocol::Adc;
    const KEEPALIVE: &'static [u8] = b"\n";
    const FRAMER: Framer =
        Framer::Delimited(Framing::Delimited { delim: b'\n', max_frame: MAX_FRAME });

    fn new(_: &HubParams) -> Adc {
        Adc {
            stage: Stage::Protocol,
            my_sid: None,
            registered: false,
            last_inf: None,
            last_inf_at: None,
            searches: 0,
            noisy: 0,
            inf_timer: None,
        }
    }

    fn charset(_: &HubParams) -> &'static encoding_rs::Encoding {
        encoding_rs::UTF_8
    }

    fn opened(s: &mut Session<Adc>, _: &mut Context<'_>) {
        // ADC clients speak first; the connection queues this until it is
        // connected (and the TLS handshake is done).
        s.p.stage = Stage::Protocol;
        let sup = Sup::adding(&HUB_FEATURES).to_message(Header::Hub);
        s.send_msg(&sup);
    }

    fn handle(s: &mut Session<Adc>, cx: &mut Context<'_>, frame: &[u8]) {
        s.handle(cx, frame);
    }

    fn logged_in(s: &Session<Adc>) -> bool {
        s.announced
    }

    fn reset(s: &mut Session<Adc>, cx: &mut Context<'_>) {
        let p = &mut s.p;
        p.stage = Stage::Protocol;
        p.registered = false;
        p.my_sid = None;
        p.last_inf = None;
        p.last_inf_at = None;
        p.noisy = 0;
        if let Some(t) = p.inf_timer.take() {
            cx.cancel_timer(t);
        }
    }

    fn on_timer(s: &mut Session<Adc>, cx: &mut Context<'_>, t: TimerId) {
        if s.p.inf_timer == Some(t) {
            s.p.inf_timer = None;
            s.send_inf(cx, false);
        }
    }

    fn command(s: &mut Session<Adc>, cx: &mut Context<'_>, cmd: HubCommand) {
        let online = s.connected();
        match cmd {
            HubCommand::InfoChanged => s.send_inf(cx, false),
            HubCommand::SendRaw(line) if online => {
                s.out.extend_from_slice(line.as_bytes());
                if !line.ends_with('\n') {
                    s.out.push(b'\n');
                }
            }
            _ if !online || s.p.stage != Stage::Normal => {
                log::debug!(target: "hub", "hub {}: not logged in; dropped {cmd:?}", s.params.url);
            }
            // SendRaw offline; the driver's own commands never come here.
            HubCommand::SendRaw(_)
            | HubCommand::Disconnect
            | HubCommand::RedirectVerdict { .. }
            | HubCommand::RawVerdict { .. } => {}
            HubCommand::Say { text, me } => {
                let Some(sid) = s.p.my_sid else { return };
                let msg = Msg { me, ..Msg::chat(&text) };
                s.send_msg(&msg.to_message(Header::Broadcast { from: sid }));
            }
            HubCommand::Pm { to, text, me } => {
                let Some(sid) = s.p.my_sid else { return };
                let Some(them) = s.sid_of(&to) else {
                    log::warn!(target: "hub", "hub {}: no user {to:?} to send a private message to", s.params.url);
                    return;
                };
                let msg = Msg { me, ..Msg::private(&text, sid) };
                s.send_msg(&msg.to_message(Header::Echo { from: sid, to: them }));
            }
            HubCommand::Search(q) => s.search(cx, &q),
            HubCommand::ConnectToMe { nick, port, tls, token } => {
                let (Some(sid), Some(them)) = (s.p.my_sid, s.sid_of(&nick)) else { return };
                let token = token.unwrap_or_else(|| format!("{:x}", rand::random::<u32>()));
                let protocol = if tls { adc::PROTOCOL_ADCS } else { adc::PROTOCOL_ADC };
                let ctm = Ctm { protocol, port, token: &token };
                log::debug!(target: "hub", "hub {}: CTM to {nick} with token {token}", s.params.url);
                s.send_msg(&ctm.to_message(Header::Direct { from: sid, to: them }));
            }
            HubCommand::RevConnectToMe { nick, token } => {
                let (Some(sid), Some(them)) = (s.p.my_sid, s.sid_of(&nick)) else { return };
                let token = token.unwrap_or_else(|| format!("{:x}", rand::random::<u32>()));
                let rcm = Rcm { protocol: adc::PROTOCOL_ADC, token: &token };
                s.send_msg(&rcm.to_message(Header::Direct { from: sid, to: them }));
            }
        }
    }

    /// A datagram from the UDP listener: `URES` lines for us.
    fn udp(s: &mut Session<Adc>, data: &[u8]) {
        for line in data.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let Ok(msg) = adc::parse(line) else {
                log::debug!(target: "hub", "hub {}: a UDP line that is not ADC", s.params.url);
                continue;
            };
            let (Header::Udp { cid }, Ok(Command::Res(res))) =
                (msg.header(), Command::from_message(&msg))
            else {
                log::debug!(target: "hub", "hub {}: a UDP line that is not a URES", s.params.url);
                continue;
            };
            let known = {
                let info = s.info.borrow();
                cid.as_tiger().and_then(|c| info.users.by_cid(c)).map(|u| u.nick().to_string())
            };
            let nick = known.unwrap_or_else(|| cid.to_string());
            s.on_res(&res, nick, line, Via::Udp);
        }
    }
}

/// The text a status line gives, else its code's description.
fn sta_text(sta: &Sta<'_>) -> String {
    if sta.text.trim().is_empty() {
        sta.description().to_string()
    } else {
        sta.text.to_string()
    }
}

impl Session<Adc> {
    fn send_msg(&mut self, msg: &Message) {
        msg.encode_into(&mut self.out);
    }

    /// Logs a malformed line or a status message: the first few per
    /// connection at `level`, then one line per thousand.
    fn noisy(&mut self, level: log::Level, what: &str) {
        self.p.noisy = self.p.noisy.saturating_add(1);
        let n = self.p.noisy;
        if n <= NOISY_LOG_LIMIT {
            log::log!(target: "hub", level, "hub {}: {what}", self.params.url);
            if n == NOISY_LOG_LIMIT {
                log::log!(target: "hub", level, "hub {}: further malformed lines and status messages are counted, not logged", self.params.url);
            }
        } else if n % 1000 == 0 {
            log::log!(target: "hub", level, "hub {}: {n} malformed lines and status messages so far (last: {what})", self.params.url);
        }
    }

    fn search(&mut self, cx: &mut Context<'_>, q: &Query) {
        let Some(sid) = self.p.my_sid else { return };
        if q.tth.is_none() && q.include.iter().all(|w| w.trim().is_empty()) {
            log::debug!(target: "hub", "hub {}: a search without words or TTH is not sent", self.params.url);
            return;
        }
        self.p.searches += 1;
        let token = search_token(self.id, self.p.searches);
        let mut sch = Sch { token: Some(&token), ..Sch::default() };
        match &q.tth {
            Some(t) => sch.tth = Some(*t),
            None => {
                sch.include = q.include.iter().map(String::as_str).collect();
                sch.exclude = q.exclude.iter().map(String::as_str).collect();
                sch.extensions = q.extensions.iter().map(|e| e.trim_start_matches('.')).collect();
                sch.min_size = q.min_size;
                sch.max_size = q.max_size;
                sch.exact_size = q.size;
                match q.file_type {
                    FileType::Folder => sch.file_type = Some(AdcFileType::Directory),
                    FileType::File => sch.file_type = Some(AdcFileType::File),
                    other => {
                        if let Some(g) = sega_group(other) {
                            sch.groups = Some(g);
                            sch.file_type = Some(AdcFileType::File);
                        }
                    }
                }
            }
        }
        let header = if self.active_udp().is_some() {
            Header::Broadcast { from: sid }
        } else {
            Header::Feature { from: sid, filter: FeatureFilter::new().require(Feature::TCP4) }
        };
        self.send_msg(&sch.to_message(header));
        self.info.borrow_mut().last_search = Some(cx.now());
    }

    /// Our whole INF as it stands now.
    fn my_inf(&self, sid: Sid) -> Message {
        let hubs = self.hubs.clone();
        let id = hubs.identity();
        let mut counts = hubs.hub_counts();
        match self.info.borrow().role {
            // Not counted yet while logging in: we are about to be.
            None if self.p.registered => counts.registered += 1,
            None => counts.normal += 1,
            Some(_) => {}
        }
        let udp = self.active_udp();
        let mut features = Vec::new();
        if udp.is_some() {
            features.extend([Feature::TCP4, Feature::UDP4]);
        }
        // TLS transfers (`ADC0`) and the keyprint peers check our certificate
        // against, on every hub, as DC++ announces them (active or not: a
        // passive user's TLS connection goes out to a TLS port).
        let keyprint = if id.tls_transfers {
            self.hubs.me().tls().ok().map(|t| t.our_keyprint().to_string())
        } else {
            None
        };
        if keyprint.is_some() {
            features.push(Feature::ADC0);
        }
        let pid = self.hubs.me().pid();
        let nick = self.info.borrow().my_nick.clone();
        fn set(s: &str) -> Option<Update<&str>> {
            (!s.is_empty()).then_some(Update::Set(s))
        }
        let inf = Inf {
            cid: Some(Update::Set(pid.cid().into())),
            pid: Some(Update::Set(pid)),
            nick: Some(Update::Set(nick.as_str())),
            description: set(self.params.description.as_deref().unwrap_or(&id.description)),
            email: set(self.params.email.as_deref().unwrap_or(&id.email)),
            slots: Some(Update::Set(u64::from(id.slots))),
            free_slots: Some(Update::Set(u64::from(self.hubs.free_slots()))),
            share_size: Some(Update::Set(id.share_size)),
            shared_files: Some(Update::Set(id.shared_files)),
            hubs_normal: Some(Update::Set(u64::from(counts.normal))),
            hubs_registered: Some(Update::Set(u64::from(counts.registered))),
            hubs_operator: Some(Update::Set(u64::from(counts.op))),
            application: Some(Update::Set("dclua")),
            version: Some(Update::Set(env!("CARGO_PKG_VERSION"))),
            ip4: udp.map(|_| Update::Set(std::net::Ipv4Addr::UNSPECIFIED)),
            udp4: udp.map(Update::Set),
            features: (!features.is_empty()).then_some(Update::Set(features)),
            away: id.away.then_some(Update::Set(Away::from_value(1))),
            keyprint: keyprint.as_deref().map(Update::Set),
            ..Inf::default()
        };
        inf.to_message(Header::Broadcast { from: sid })
    }

    /// Sends our INF (the first time whole, later only what changed),
    /// respecting the rate limits (`force`: at once).
    fn send_inf(&mut self, cx: &mut Context<'_>, force: bool) {
        let Some(sid) = self.p.my_sid else { return };
        if !self.connected() || self.p.stage == Stage::Protocol {
            return;
        }
        let now = self.my_inf(sid);
        let Some(last) = &self.p.last_inf else {
            self.send_msg(&now);
            self.p.last_inf = Some(now);
            self.p.last_inf_at = Some(cx.now());
            return;
        };
        let diff = inf_diff(last, &now);
        if diff.is_empty() {
            return;
        }
        // Free slots change with every upload: announced as slowly as the share.
        let share_only = diff.named().all(|(n, _)| matches!(n, "SS" | "SF" | "FS"));
        // The first share after an empty one (hashing done after the login)
        // is not held back: hubs and users judge us by it.
        let was_empty = last.get("SS").is_none_or(|ss| ss == "0");
        let interval = if share_only && !was_empty { SHARE_INTERVAL } else { INF_INTERVAL };
        let due = self.p.last_inf_at.map_or(cx.now(), |at| at + interval);
        if force || cx.now() >= due {
            self.send_msg(&diff);
            self.p.last_inf = Some(now);
            self.p.last_inf_at = Some(cx.now());
            if let Some(t) = self.p.inf_timer.take() {
                cx.cancel_timer(t);
            }
        } else if self.p.inf_timer.is_none() {
            self.p.inf_timer = Some(self.rt.timer_at(self.id, due));
        }
    }

    fn handle(&mut self, cx: &mut Context<'_>, frame: &[u8]) {
        if self.dropping() {
            return;
        }
        if log::log_enabled!(target: "hub", log::Level::Trace) {
            log::trace!(target: "hub", "hub {} <- {}", self.params.url, String::from_utf8_lossy(frame));
        }
        // Most lines of a big hub are user INFs: straight to the user list,
        // read once, without building a message first.
        if let Some((sid, fields)) = split_binf(frame) {
            return self.on_user_inf(cx, sid, fields, frame);
        }
        let msg = match adc::parse(frame) {
            Ok(m) => m,
            Err(e) => {
                let what = format!("ignored a malformed line ({e}): {:?}", excerpt(frame));
                return self.noisy(log::Level::Warn, &what);
            }
        };
        if msg.command() == adc::CommandName::INF {
            return self.on_inf(&msg);
        }
        let command = match Command::from_message(&msg) {
            Ok(c) => c,
            Err(e) => {
                let what = format!("ignored a line ({e}): {:?}", excerpt(frame));
                return self.noisy(log::Level::Warn, &what);
            }
        };
        match command {
            Command::Sup(_) => {}
            Command::Sid(s) => self.on_sid(cx, s.sid),
            // Handled before the typed view.
            Command::Inf(_) => {}
            Command::Gpa(gpa) => self.on_gpa(&gpa, frame),
            Command::Sta(sta) => self.on_sta(&sta, frame),
            Command::Qui(qui) => self.on_qui(&qui),
            Command::Msg(m) => self.on_msg(&msg, &m, frame),
            Command::Sch(sch) => self.on_sch(&msg, &sch, frame),
            Command::Res(res) => {
                let from = msg.header().from_sid().and_then(|s| self.known_nick(s));
                let nick = from.unwrap_or_default();
                self.on_res(&res, nick, frame, Via::Hub);
            }
            Command::Ctm(ctm) => self.on_ctm(&msg, Some(&ctm), None, frame),
            Command::Rcm(rcm) => self.on_ctm(&msg, None, Some(&rcm), frame),
            Command::Pas(_) | Command::Get(_) | Command::Gfi(_) | Command::Snd(_) => {
                log::debug!(target: "hub", "hub {}: ignored {} from the hub", self.params.url, msg.command());
            }
            Command::Raw(m) => {
                log::debug!(target: "hub", "hub {}: unknown command {}", self.params.url, m.command());
            }
        }
    }

    fn on_sid(&mut self, cx: &mut Context<'_>, sid: Sid) {
        if self.p.stage != Stage::Protocol {
            return self.noisy(log::Level::Warn, &format!("ignored a second ISID {sid}"));
        }
        self.p.my_sid = Some(sid);
        self.p.stage = Stage::Identify;
        self.info.borrow_mut().state = HubState::LoggingIn;
        log::debug!(target: "hub", "hub {}: our SID is {sid}", self.params.url);
        self.send_inf(cx, true);
    }

    fn on_gpa(&mut self, gpa: &adc::Gpa<'_>, frame: &[u8]) {
        match self.params.password.clone() {
            Some(pw) => match gpa.respond(&pw) {
                Ok(pas) => {
                    self.p.stage = Stage::Verify;
                    self.p.registered = true;
                    self.send_msg(&pas.to_message(Header::Hub));
                }
                Err(e) => {
                    self.login_failed(
                        format!("the hub's password salt: {e}"),
                        Some(frame),
                        After::Stop,
                    );
                }
            },
            None => self.login_failed(
                "the hub asks for a password and none is set".into(),
                Some(frame),
                After::Stop,
            ),
        }
    }

    fn on_sta(&mut self, sta: &Sta<'_>, frame: &[u8]) {
        let text = sta_text(sta);
        let code = sta.code_string();
        if sta.severity != Severity::Fatal {
            let level =
                if sta.severity == Severity::Success { log::Level::Info } else { log::Level::Warn };
            self.noisy(level, &format!("status {code}: {text}"));
            self.emit(HubEvent::Chat { nick: None, text, me: false, raw: frame.into() });
            return;
        }
        use adc::status::code as c;
        let after = match sta.code {
            // Our own dropped connection may still hold the nick or CID.
            c::NICK_TAKEN | c::CID_TAKEN => After::Reconnect,
            c::HUB_FULL | c::HUB_GENERIC | c::BANNED_GENERIC | c::TEMP_BANNED => {
                match sta.time_left {
                    Some(t) if t < 0 => After::Stop,
                    Some(t) => After::ReconnectNoSooner(Duration::from_secs(t.unsigned_abs())),
                    None => After::Reconnect,
                }
            }
            20..=29 | c::PERM_BANNED => After::Stop,
            _ => After::Reconnect,
        };
        if self.announced {
            log::warn!(target: "hub", "hub {}: fatal status {code}: {text}", self.params.url);
            self.emit(HubEvent::Chat {
                nick: None,
                text: text.clone(),
                me: false,
                raw: frame.into(),
            });
            self.request_drop(format!("the hub says: {text} (status {code})"), after, false);
        } else {
            self.login_failed(text, Some(frame), after);
        }
    }

    fn on_qui(&mut self, qui: &Qui<'_>) {
        if Some(qui.sid) != self.p.my_sid {
            let Some(user) = self.info.borrow_mut().users.remove_sid(qui.sid) else { return };
            self.report_left(user.nick());
            return;
        }
        // We are being disconnected (kicked, banned, redirected).
        let by = qui.initiator.and_then(|s| self.known_nick(s));
        let mut reason =
            qui.message.map(str::to_string).unwrap_or_else(|| "the hub disconnected us".into());
        if let Some(by) = by {
            reason = format!("{reason} (by {by})");
        }
        if let Some(target) = qui.redirect.filter(|r| !r.trim().is_empty()) {
            if self.redirected(target, &reason) {
                return;
            }
        }
        let after = match qui.time_left {
            Some(t) if t < 0 => After::Stop,
            Some(t) => After::ReconnectNoSooner(Duration::from_secs(t.unsigned_abs())),
            None => After::Reconnect,
        };
        if !self.announced {
            self.emit(HubEvent::LoginFailed { reason: reason.clone(), raw: None });
        }
        self.request_drop(reason, after, false);
    }

    fn nick_of(&self, sid: Sid) -> String {
        self.known_nick(sid).unwrap_or_else(|| sid.to_string())
    }

    /// The nick of a listed SID.
    fn known_nick(&self, sid: Sid) -> Option<String> {
        self.info.borrow().users.nick_of(sid).map(str::to_string)
    }

    /// The SID of a listed nick.
    fn sid_of(&self, nick: &str) -> Option<Sid> {
        self.info.borrow().users.get(nick).and_then(User::sid)
    }

    fn on_msg(&mut self, msg: &Message, m: &Msg<'_>, frame: &[u8]) {
        let text = m.text.to_string();
        match *msg.header() {
            Header::Info => {
                self.emit(HubEvent::Chat { nick: None, text, me: m.me, raw: frame.into() });
            }
            Header::Broadcast { from } if m.pm.is_none() => {
                let nick = Some(self.nick_of(from));
                self.emit(HubEvent::Chat { nick, text, me: m.me, raw: frame.into() });
            }
            Header::Broadcast { from }
            | Header::Direct { from, .. }
            | Header::Echo { from, .. } => {
                if Some(from) == self.p.my_sid {
                    // The echo of our own PM.
                    return;
                }
                let speaker = self.nick_of(from);
                let room = m.pm.map_or_else(|| speaker.clone(), |s| self.nick_of(s));
                self.emit(HubEvent::Pm {
                    from: room,
                    to: self.my_nick(),
                    nick: Some(speaker),
                    text,
                    me: m.me,
                    raw: frame.into(),
                });
            }
            _ => self.noisy(log::Level::Debug, "ignored a MSG with an unexpected header"),
        }
    }

    fn on_sch(&mut self, msg: &Message, sch: &Sch<'_>, frame: &[u8]) {
        let Some(from) = msg.header().from_sid() else { return };
        if Some(from) == self.p.my_sid {
            return;
        }
        let nick = self.known_nick(from);
        let address = nick.as_deref().and_then(|n| {
            let info = self.info.borrow();
            let u = info.users.get(n)?;
            if !u.inf_field("SU")?.split(',').any(|f| f == "UDP4") {
                return None;
            }
            let Some(IpAddr::V4(ip)) = u.ip else { return None };
            let port: u16 = u.inf_field("U4")?.parse().ok()?;
            Some(format!("{ip}:{port}"))
        });
        let mut q = Query {
            include: sch.include.iter().map(|s| s.to_string()).collect(),
            exclude: sch.exclude.iter().map(|s| s.to_string()).collect(),
            extensions: sch
                .extensions
                .iter()
                .map(|s| s.trim_start_matches('.').to_string())
                .collect(),
            min_size: sch.min_size,
            max_size: sch.max_size,
            size: sch.exact_size,
            tth: sch.tth,
            ..Query::default()
        };
        if sch.tth.is_some() {
        } else if sch.file_type == Some(AdcFileType::Directory) {
            q.file_type = FileType::Folder;
        } else if let Some(t) = sch.groups.and_then(type_of_group) {
            q.file_type = t;
        } else if sch.file_type == Some(AdcFileType::File) {
            q.file_type = FileType::File;
        }
        self.answer(&q, from, address.as_deref(), sch.token);
        self.emit(HubEvent::Search {
            query: q,
            from: SearchFrom { nick, address },
            raw: frame.into(),
        });
    }

    /// Answers a search from our share: `URES` datagrams to an active
    /// searcher's `I4:U4` (`address`), `DRES` through the hub to a passive
    /// one. `FN` starts with `/` (a folder's also ends with one); `TO` gives
    /// the search's token back.
    fn answer(&mut self, q: &Query, from: Sid, address: Option<&str>, token: Option<&str>) {
        let Some(my_sid) = self.p.my_sid else { return };
        let to = match address.map(str::parse::<SocketAddr>) {
            Some(Ok(a)) => Some(a),
            Some(Err(_)) => {
                log::debug!(target: "hub", "hub {}: not answering a search from the bad address {address:?}", self.params.url);
                return;
            }
            None => None,
        };
        let hits = self.hubs.share_answers(q, to.is_some());
        if hits.is_empty() {
            return;
        }
        // RES `SL` is the free slots (ADC.txt), as `$SR` carries them.
        let slots = u64::from(self.hubs.free_slots());
        let header = match to {
            Some(_) => Header::Udp { cid: self.hubs.me().cid().into() },
            None => Header::Direct { from: my_sid, to: from },
        };
        for hit in hits {
            let path =
                if hit.is_dir { format!("/{}/", hit.path) } else { format!("/{}", hit.path) };
            let res = Res {
                path: &path,
                size: Some(hit.size),
                slots: Some(slots),
                tth: hit.tth,
                token,
                tree_depth: None,
            };
            let msg = res.to_message(header.clone());
            match to {
                Some(addr) => self.hubs.send_udp(&self.rt, addr, msg.encode()),
                None => self.send_msg(&msg),
            }
        }
    }

    fn on_res(&mut self, res: &Res<'_>, nick: String, frame: &[u8], via: Via) {
        let slots = self.info.borrow().users.get(&nick).and_then(|u| u.slots).unwrap_or(0);
        let dir = res.is_directory();
        let path = SearchHit::path_from_wire(res.path, '/');
        let hit = SearchHit {
            nick,
            path,
            size: if dir { None } else { res.size },
            tth: res.tth,
            free_slots: res.slots.map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX)),
            slots,
            hub_name: String::new(),
            via,
            raw: frame.into(),
        };
        self.emit(HubEvent::SearchResult { hit });
    }

    fn on_ctm(
        &mut self,
        msg: &Message,
        ctm: Option<&Ctm<'_>>,
        rcm: Option<&Rcm<'_>>,
        frame: &[u8],
    ) {
        let Some(from) = msg.header().from_sid() else { return };
        if Some(from) == self.p.my_sid {
            return;
        }
        let nick = self.known_nick(from);
        let protocol = ctm.map(|c| c.protocol).or(rcm.map(|r| r.protocol)).unwrap_or("");
        let tls = is_tls_protocol(protocol);
        // What the user's INF says: IP, CID, certificate keyprint.
        let (ip, cid, keyprint) = {
            let info = self.info.borrow();
            match nick.as_deref().and_then(|n| info.users.get(n)) {
                Some(u) => (u.ip.map(|ip| ip.to_string()), u.cid_text(), u.inf_field("KP")),
                None => (None, None, None),
            }
        };
        let address = ctm.and_then(|c| Some((ip.clone()?, c.port)));
        let shown = address.as_ref().map(|(ip, port)| {
            if ip.contains(':') {
                format!("[{ip}]:{port}")
            } else {
                format!("{ip}:{port}")
            }
        });
        self.emit(HubEvent::ConnectionRequest {
            nick: nick.clone(),
            address: shown,
            tls,
            reverse: rcm.is_some(),
            raw: frame.into(),
        });
        if !protocol.starts_with("ADC") {
            // Neither plain nor TLS ADC: say so to the user, as DC++ does.
            log::info!(target: "hub", "hub {}: a connection request from {nick:?} for protocol {protocol:?}, which dclua does not speak", self.params.url);
            return;
        }
        let token = ctm.map(|c| c.token).or(rcm.map(|r| r.token)).map(str::to_string);
        self.hubs.peer_request(
            &self.rt,
            PeerRequest {
                hub: self.id,
                hub_url: self.params.url.clone(),
                adc: true,
                my_nick: self.my_nick(),
                charset: encoding_rs::UTF_8,
                nick,
                cid,
                address,
                tls,
                token,
                reverse: rcm.is_some(),
                keyprint,
            },
        );
    }

    /// An INF that is not a user's own `BINF`: the hub's `IINF`.
    fn on_inf(&mut self, msg: &Message) {
        match *msg.header() {
            Header::Info => self.on_hub_inf(msg),
            _ => self.noisy(log::Level::Debug, "ignored an INF with an unexpected header"),
        }
    }

    fn on_user_inf(&mut self, cx: &mut Context<'_>, sid: Sid, fields: &str, frame: &[u8]) {
        let own = Some(sid) == self.p.my_sid;
        let change = {
            let mut info = self.info.borrow_mut();
            apply_inf(&mut info.users, sid, fields, frame.len())
        };
        match change {
            InfChange::Rejected(why) => {
                self.noisy(log::Level::Warn, &format!("ignored an INF: {why}"));
            }
            InfChange::Unchanged => {}
            InfChange::Joined(nick) => self.user_event(&nick, true),
            InfChange::Updated(nick) => self.user_event(&nick, false),
            InfChange::Renamed { old, new } => {
                self.report_left(&old);
                self.user_event(&new, true);
            }
        }
        if own {
            if let Ok(msg) = adc::parse(frame) {
                self.on_own_inf(cx, &msg);
            }
        }
    }

    /// Our INF came back: the initial list is in (first time), our role and
    /// IP as the hub sees them.
    fn on_own_inf(&mut self, cx: &mut Context<'_>, msg: &Message) {
        let (inf, _) = Inf::from_message_lossy(msg);
        if let Some(Update::Set(ip)) = inf.ip4 {
            self.info.borrow_mut().my_ip = Some(ip.to_string());
        }
        let ct = inf.client_type.and_then(Update::into_value);
        let role = match ct {
            Some(ct) if ct.is_operator() => Some(Role::Op),
            Some(ct) if ct.contains(UserType::REGISTERED) => Some(Role::Registered),
            _ if self.announced => None,
            _ if self.p.registered => Some(Role::Registered),
            _ => Some(Role::Normal),
        };
        let changed = role.is_some_and(|r| self.info.borrow().role != Some(r));
        if let Some(r) = role {
            self.info.borrow_mut().role = Some(r);
        }
        if !self.announced {
            self.announce(cx);
        }
        if changed {
            self.hubs.info_changed(&self.rt, Some(self.id));
        }
    }

    fn announce(&mut self, cx: &mut Context<'_>) {
        self.p.stage = Stage::Normal;
        self.went_online(cx);
        // Our hub counts changed (this hub now counts, maybe as registered).
        self.send_inf(cx, true);
    }

    fn on_hub_inf(&mut self, msg: &Message) {
        let (inf, _) = Inf::from_message_lossy(msg);
        let mut changed = false;
        {
            let mut info = self.info.borrow_mut();
            if let Some(n) = inf.nick.as_ref().and_then(Update::value) {
                changed |= info.name != *n;
                info.name = n.to_string();
            }
            if let Some(d) = &inf.description {
                let d = d.value().copied().unwrap_or("");
                changed |= info.topic != d;
                info.topic = d.to_string();
            }
        }
        if changed {
            self.report_hub_info();
        }
    }

    /// Reports a join or an update of a listed user (after the initial list).
    fn user_event(&mut self, nick: &str, joined: bool) {
        if !self.announced {
            return;
        }
        let Some(user) = self.info.borrow().users.get(nick).cloned() else { return };
        self.report_user(user, joined);
    }
}

/// The changes from `old` to `new` as an incremental INF (same header as
/// `new`): changed fields with their value, removed ones empty.
fn inf_diff(old: &Message, new: &Message) -> Message {
    let mut diff = Message::new(new.header().clone(), new.command());
    for (name, value) in new.named() {
        if old.get(name) != Some(value) {
            diff.push_named(name, value);
        }
    }
    for (name, _) in old.named() {
        if !new.has(name) {
            diff.push_named(name, "");
        }
    }
    diff
}

/// The SEGA extension group of a file type.
fn sega_group(t: FileType) -> Option<u32> {
    Some(match t {
        FileType::Audio => 1,
        FileType::Compressed => 2,
        FileType::Document => 4,
        FileType::Executable => 8,
        FileType::Picture => 16,
        FileType::Video => 32,
        _ => return None,
    })
}

/// The file type of a SEGA group sum naming exactly one group.
fn type_of_group(groups: u32) -> Option<FileType> {
    Some(match groups {
        1 => FileType::Audio,
        2 => FileType::Compressed,
        4 => FileType::Document,
        8 => FileType::Executable,
        16 => FileType::Picture,
        32 => FileType::Video,
        _ => return None,
    })
}

/// The start of a line, for logs.
fn excerpt(frame: &[u8]) -> String {
    let s = String::from_utf8_lossy(&frame[..frame.len().min(80)]).into_owned();
    if frame.len() > 80 {
        format!("{s}...")
    } else {
        s
    }
}

/// Whether a CTM/RCM protocol is ADC over TLS (`ADCS/0.10`; ncdc also
/// accepts `ADCS/1.0` and `ADC0/0.10`).
fn is_tls_protocol(protocol: &str) -> bool {
    protocol.starts_with("ADCS/") || protocol.starts_with("ADC0/")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A BINF's fields and length.
    fn line(s: &str) -> (&str, usize) {
        let (sid, fields) = split_binf(s.as_bytes()).unwrap();
        assert_eq!(sid.to_string(), s[5..9]);
        (fields, s.len())
    }

    #[test]
    fn inf_flood_incremental_and_collisions() {
        let mut users = UserList::default();
        let a: Sid = "AAAB".parse().unwrap();
        let b: Sid = "AAAC".parse().unwrap();
        let (m, f) = line("BINF AAAB IDKAEPJQ7XF2QQTBLTQ4DMTXJZBFJQXKUHGV5QWNQ NIalice SS100 SUTCP4,UDP4 I4127.0.0.1 APdclua VE0.1 CT2");
        assert_eq!(apply_inf(&mut users, a, m, f), InfChange::Joined("alice".into()));
        let u = users.get("alice").unwrap();
        assert_eq!(
            (u.share, u.mode, u.client(), u.ip),
            (100, super::super::UserMode::Active, "dclua", Some("127.0.0.1".parse().unwrap()))
        );
        assert!(!u.op);
        // Incremental: SS changes, DE appears, SU cleared.
        let (m, f) = line("BINF AAAB SS200 DEhello SU");
        assert_eq!(apply_inf(&mut users, a, m, f), InfChange::Updated("alice".into()));
        let u = users.get("alice").unwrap();
        assert_eq!(
            (u.share, u.description(), u.mode),
            (200, "hello", super::super::UserMode::Passive)
        );
        assert!(u.raw().contains("NIalice"));
        assert_eq!(apply_inf(&mut users, a, m, f), InfChange::Unchanged);
        // A rename.
        let (m, f) = line("BINF AAAB NIalice2");
        assert_eq!(
            apply_inf(&mut users, a, m, f),
            InfChange::Renamed { old: "alice".into(), new: "alice2".into() }
        );
        assert!(users.get("alice").is_none());
        assert_eq!(users.get("alice2").and_then(User::sid), Some(a));
        // A SID collision: another SID takes the nick.
        let (m, f) = line("BINF AAAC NIalice2 VE++\\s0.868");
        assert_eq!(apply_inf(&mut users, b, m, f), InfChange::Updated("alice2".into()));
        assert_eq!(users.get("alice2").and_then(User::sid), Some(b));
        assert_eq!((users.nick_of(a), users.len()), (None, 1));
        let u = users.get("alice2").unwrap();
        assert_eq!((u.client(), u.version()), ("++", "0.868"));
        // A new SID without a nick, and a huge INF, are refused.
        let (m, f) = line("BINF AAAD SS5");
        assert!(matches!(
            apply_inf(&mut users, "AAAD".parse().unwrap(), m, f),
            InfChange::Rejected(_)
        ));
        let big = format!("BINF AAAE NIbig DE{}", "x".repeat(MAX_INF));
        let (m, f) = line(&big);
        assert!(matches!(
            apply_inf(&mut users, "AAAE".parse().unwrap(), m, f),
            InfChange::Rejected(_)
        ));
        assert_eq!(users.len(), 1);
        // Only well-formed user INFs take the direct path.
        assert!(split_binf(b"BINF AAAB NIa\\sb DE\\\\ EM\\n").is_some());
        for bad in [
            &b"BINF AAAB NI\\x"[..],
            b"BINF AAAB NIa\\",
            b"BINF AAB NIa",
            b"BINF AAAB NI\xff",
            b"IINF NIhub",
        ] {
            assert!(split_binf(bad).is_none(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn inf_diffs_and_tokens() {
        let old = adc::parse(b"BINF AAAB NIa SS1 DEx").unwrap();
        let new = adc::parse(b"BINF AAAB NIa SS2 EMe").unwrap();
        assert_eq!(inf_diff(&old, &new).to_string(), "BINF AAAB SS2 EMe DE");
        assert!(inf_diff(&new, &new).is_empty());
        let id = crate::runtime::JobId(77);
        assert_eq!(token_hub(&search_token(id, 3)), Some(id));
        assert_eq!(token_hub("12345"), None);
    }
}
