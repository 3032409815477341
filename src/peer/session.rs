//! The client-client protocol of one peer connection, NMDC or ADC, as a
//! machine over frames: the handshake (who the peer is, who downloads) and
//! then the requests of a downloading peer.
//!
//! Pure: no I/O, no clock, no share. The peer job feeds it frames and acts on
//! what it returns ([`Output`]); it answers requests with
//! [`Session::send_header`] and [`Session::refusal`], which only encode.
//!
//! Handshakes, as DC++ and eiskaltdcpp run them (protocols.md §1.3, §1.4):
//!
//! | | connecting side (we dialled) | accepting side (we listened) |
//! |---|---|---|
//! | NMDC | sends `$MyNick`, `$Lock`; on the peer's `$Lock` sends `$Supports`, `$Direction`, `$Key` | on `$MyNick` asks who the peer is ([`Output::Identify`]); on `$Lock` sends `$MyNick`, `$Lock`, `$Supports`, `$Direction`, `$Key` |
//! | ADC | sends `CSUP`; on `CSUP` sends `CINF ID TO<token>` | on `CSUP` sends `CSUP`; on `CINF` asks who the peer is, then sends `CINF ID` |
//!
//! Direction: whether we download on a connection is decided when the peer
//! is known ([`Hello::download`], or [`Session::set_download`] on a
//! connection we dialled), by the download side of the job: it wants
//! something from that user (NMDC) or the ADC token is one of its requests.
//! NMDC then says `$Direction Download n` and the usual tie-break applies
//! (both want to download: the higher number downloads; equal numbers end
//! the connection; both upload: goodbye). On ADC the downloader is the side
//! that sends `CGET`; nothing is negotiated.
//!
//! A downloading session encodes requests ([`Session::get`]) and turns the
//! peer's answers into [`Output::Sending`] (then the job reads the data raw)
//! or [`Output::Refused`].
//!
//! `$MyNick` and error texts are in the hub's charset; `$ADCGET` identifiers
//! are always UTF-8 (the codec sees to it).

use encoding_rs::Encoding;

use crate::proto::adc::{self, status, CommandName, Feature, Header, Severity};
use crate::proto::nmdc::{self, AdcTransfer, Direction, Lock, Way};

/// The features we announce in `$Supports` (NMDC C-C).
pub const NMDC_SUPPORTS: [&str; 7] =
    ["MiniSlots", "XmlBZList", "ADCGet", "TTHL", "TTHF", "ZLIG", "TLS"];

/// The features we announce in `CSUP` (ADC C-C).
pub const ADC_SUPPORTS: [Feature; 5] =
    [Feature::BAS0, Feature::BASE, Feature::TIGR, Feature::BZIP, Feature::ZLIG];

/// The NMDC lock we send: `EXTENDEDPROTOCOL` says we speak the extensions.
const OUR_LOCK: &[u8] = b"EXTENDEDPROTOCOLABCABCABCABCABCABC";

/// Which protocol a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// NMDC (`$MyNick` ... `|`).
    Nmdc,
    /// ADC (`CSUP` ... `\n`).
    Adc,
}

impl Protocol {
    /// Tells the protocol of an accepted connection from its first byte:
    /// `$` for NMDC, `C` for ADC.
    pub fn sniff(first: u8) -> Option<Protocol> {
        match first {
            b'$' => Some(Protocol::Nmdc),
            b'C' => Some(Protocol::Adc),
            _ => None,
        }
    }

    /// The frame delimiter.
    pub fn delimiter(self) -> u8 {
        match self {
            Protocol::Nmdc => b'|',
            Protocol::Adc => b'\n',
        }
    }
}

/// Who opened the TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// We dialled the peer (it sent us a connection request).
    Connecting,
    /// The peer dialled our listener.
    Accepting,
}

/// What we are on the hub a connection belongs to.
#[derive(Debug, Clone)]
pub struct Hello {
    /// Our nick on that hub (NMDC `$MyNick`).
    pub nick: String,
    /// The hub's charset (NMDC).
    pub charset: &'static Encoding,
    /// Our CID (ADC `CINF ID`).
    pub cid: String,
    /// The token of the connection request (ADC `CINF TO`, connecting side).
    pub token: Option<String>,
    /// The hub's address, sent as `Ref=` in our NMDC lock.
    pub hub_url: String,
    /// We want to download on this connection.
    pub download: bool,
}

/// Who the peer says it is, for the job to match with what it expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerId {
    /// NMDC `$MyNick`, as wire bytes (the charset is the hub's, which only
    /// the matching expectation knows).
    Nick(Vec<u8>),
    /// ADC `CINF`: the CID and, from a connecting peer, the token.
    Cid {
        /// The peer's CID (base32).
        cid: String,
        /// `TO`, the token of our connection request.
        token: Option<String>,
    },
}

/// What a downloading peer asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A file (`file`): by `TTH/...`, by share path, or our file list.
    File,
    /// A partial file list (`list /dir/`).
    List,
    /// TTH leaves (`tthl TTH/...`).
    Leaves,
}

impl Kind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::File => "file",
            Kind::List => "list",
            Kind::Leaves => "tthl",
        }
    }
}

/// One request (`$ADCGET` / `CGET`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// What kind of data.
    pub kind: Kind,
    /// `TTH/<root>`, `files.xml.bz2`, a path, a folder (`list`).
    pub identifier: String,
    /// The first byte.
    pub start: u64,
    /// How many bytes; `None` is to the end.
    pub bytes: Option<u64>,
    /// `ZL1`: compress with zlib.
    pub compressed: bool,
    /// `RE1`: a recursive partial list.
    pub recursive: bool,
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Every slot is taken (`$MaxedOut`, `CSTA 253`), with our queue position
    /// when we keep one.
    SlotsFull(Option<u32>),
    /// Not in the share, not hashed, outside it, changed... (`$Error File Not
    /// Available`, `CSTA 251`); the text is for the log of both sides.
    NotAvailable(String),
    /// A range outside the file (`CSTA 252`).
    BadRange(String),
    /// Something we do not serve (`CSTA 240`, `$Error`).
    Unsupported(String),
}

/// What a peer answers a request of ours with, when it is not data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// No free slot (`$MaxedOut`, `CSTA 253`), with the queue position.
    SlotsFull(Option<u32>),
    /// The peer does not have it (`$Error File Not Available`, `CSTA 251`,
    /// `CSTA 252`).
    NotAvailable(String),
    /// Anything else (`$Error ...`, `$Failed`, another `CSTA`).
    Other(String),
}

/// The header of the data a peer sends us (`$ADCSND`, `CSND`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sending {
    /// `file`, `list`, `tthl`.
    pub kind: String,
    /// As in our request.
    pub identifier: String,
    /// The first byte.
    pub start: u64,
    /// How many bytes follow (uncompressed, with `compressed`).
    pub bytes: u64,
    /// `ZL1`.
    pub compressed: bool,
}

/// What the job must do after a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send these bytes.
    Send(Vec<u8>),
    /// The peer said who it is: match it to an expectation, then call
    /// [`Session::bind`] (accepting side) or check it (connecting side).
    Identify(PeerId),
    /// The handshake is complete and the peer will download.
    Ready,
    /// The peer asks for data: answer with [`Session::send_header`] and the
    /// bytes, or [`Session::refusal`].
    Request(Request),
    /// The peer reported an error (text as sent).
    PeerError(String),
    /// The connection must end: the reason, for the log.
    Close(String),
    /// (Downloading) the peer sends what we asked for: the data follows
    /// the header, raw.
    Sending(Sending),
    /// (Downloading) the peer refused our request.
    Refused(Refused),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Before the peer said who it is.
    Greeting,
    /// Identified, handshake going on.
    Handshake,
    /// Handshake done: requests.
    Ready,
    Closed,
}

/// One connection's protocol state; see the module documentation.
#[derive(Debug)]
pub struct Session {
    protocol: Protocol,
    role: Role,
    hello: Option<Hello>,
    phase: Phase,
    /// NMDC: the peer's lock, kept until we can answer it (accepting side,
    /// before [`Session::bind`]).
    pending_lock: Option<Lock>,
    /// NMDC: we sent our `$Supports`/`$Direction`/`$Key`.
    sent_key: bool,
    /// NMDC: the peer's `$Direction` arrived / its `$Key` arrived.
    got_direction: bool,
    got_key: bool,
    /// ADC: the peer sent its `CSUP`; we sent ours / our `CINF`.
    got_sup: bool,
    /// Features of the peer (`$Supports` names / `CSUP` features).
    peer_features: Vec<String>,
    /// Our `$Direction` number.
    direction_number: u32,
    /// The peer's `$Direction`.
    peer_direction: Option<Direction>,
    /// We download on this connection (decided with the peer's direction).
    downloading: bool,
}

impl Session {
    /// A new connection's protocol. `hello` is known when we dialled (the
    /// connection request told us the hub); on an accepted connection it
    /// comes with [`Session::bind`]. `direction_number` is the random
    /// `$Direction` tie-breaker (1..=32767).
    pub fn new(
        protocol: Protocol,
        role: Role,
        hello: Option<Hello>,
        direction_number: u32,
    ) -> Session {
        Session {
            protocol,
            role,
            hello,
            phase: Phase::Greeting,
            pending_lock: None,
            sent_key: false,
            got_direction: false,
            got_key: false,
            got_sup: false,
            peer_features: Vec::new(),
            direction_number: direction_number.clamp(1, 32767),
            downloading: false,
            peer_direction: None,
        }
    }

    /// Whether we download on this connection (known once ready).
    pub fn is_downloading(&self) -> bool {
        self.downloading
    }

    /// The connecting side learnt who the peer is and whether we want
    /// something from it: call before the peer's `$Lock` is answered (that
    /// is, on [`Output::Identify`]).
    pub fn set_download(&mut self, download: bool) {
        if let Some(h) = self.hello.as_mut() {
            h.download = download;
        }
        // ADC negotiates nothing: the side that sends CGET downloads.
        if self.protocol == Protocol::Adc {
            self.downloading = download;
        }
    }

    fn want_download(&self) -> bool {
        self.hello.as_ref().is_some_and(|h| h.download)
    }

    /// The protocol.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// Whether the handshake is complete.
    pub fn is_ready(&self) -> bool {
        self.phase == Phase::Ready
    }

    /// Whether the peer announced a feature (`$Supports` name or `CSUP`
    /// feature, e.g. `ZLIG`).
    pub fn peer_supports(&self, feature: &str) -> bool {
        self.peer_features.iter().any(|f| f == feature)
    }

    /// What the connecting side sends first; nothing for the accepting side.
    pub fn start(&mut self) -> Vec<Output> {
        if self.role != Role::Connecting {
            return Vec::new();
        }
        match self.protocol {
            Protocol::Nmdc => {
                let Some(h) = &self.hello else { return Vec::new() };
                let mut out = Vec::new();
                push_nmdc(&mut out, &nmdc::Message::MyNick(h.nick.clone()), h.charset);
                push_nmdc(&mut out, &nmdc::Message::Lock(our_lock(h)), h.charset);
                vec![Output::Send(out)]
            }
            Protocol::Adc => vec![Output::Send(adc_sup())],
        }
    }

    /// The accepting side learnt from the expectation who we are on that
    /// hub: answers what the peer sent so far.
    pub fn bind(&mut self, hello: Hello) -> Vec<Output> {
        self.hello = Some(hello);
        self.phase = Phase::Handshake;
        let mut out = Vec::new();
        match self.protocol {
            Protocol::Nmdc => {
                if let Some(lock) = self.pending_lock.take() {
                    self.answer_lock(&lock, &mut out);
                }
            }
            Protocol::Adc => {
                let cid = self.hello.as_ref().map(|h| h.cid.clone()).unwrap_or_default();
                out.push(Output::Send(adc_inf(&cid, None)));
                self.phase = Phase::Ready;
                self.downloading = self.want_download();
                out.push(Output::Ready);
            }
        }
        out
    }

    /// One frame from the peer (without its delimiter).
    pub fn on_frame(&mut self, frame: &[u8]) -> Vec<Output> {
        if self.phase == Phase::Closed {
            return Vec::new();
        }
        let mut out = Vec::new();
        match self.protocol {
            Protocol::Nmdc => self.on_nmdc(frame, &mut out),
            Protocol::Adc => self.on_adc(frame, &mut out),
        }
        if out.iter().any(|o| matches!(o, Output::Close(_))) {
            self.phase = Phase::Closed;
        }
        out
    }

    fn charset(&self) -> &'static Encoding {
        self.hello.as_ref().map_or(encoding_rs::WINDOWS_1252, |h| h.charset)
    }

    // ----- NMDC ------------------------------------------------------------

    fn on_nmdc(&mut self, frame: &[u8], out: &mut Vec<Output>) {
        if frame.is_empty() {
            return;
        }
        let msg = nmdc::parse(frame, self.charset());
        match (self.phase, msg) {
            (Phase::Greeting, nmdc::Message::MyNick(_)) => {
                // The nick as wire bytes: the charset is the hub's, which
                // the job finds through the expectation.
                let nick = frame.strip_prefix(b"$MyNick ").unwrap_or_default();
                let nick = nick.trim_ascii();
                if nick.is_empty() {
                    return close(out, "the peer sent an empty $MyNick");
                }
                if self.role == Role::Connecting {
                    self.phase = Phase::Handshake;
                }
                out.push(Output::Identify(PeerId::Nick(nick.to_vec())));
            }
            (Phase::Greeting, nmdc::Message::Lock(lock)) if self.role == Role::Accepting => {
                // The job binds as soon as it sees Identify; a lock that comes
                // before that is kept.
                self.pending_lock = Some(lock);
            }
            (Phase::Greeting, m) => {
                close(out, &format!("the peer sent {} before $MyNick", nmdc_name(&m, frame)));
            }
            (Phase::Handshake, nmdc::Message::Lock(_))
                if self.sent_key || self.pending_lock.is_some() =>
            {
                close(out, "the peer sent a second $Lock");
            }
            (Phase::Handshake, nmdc::Message::Lock(lock)) => {
                if self.hello.is_some() {
                    self.answer_lock(&lock, out);
                } else {
                    self.pending_lock = Some(lock);
                }
            }
            (Phase::Handshake, nmdc::Message::Supports(features)) => {
                self.peer_features = features;
            }
            (Phase::Handshake, nmdc::Message::Direction(d)) => {
                self.peer_direction = Some(d);
                self.got_direction = true;
            }
            (Phase::Handshake, nmdc::Message::Key(_)) => {
                // The key is not checked, as no client does: it proves
                // nothing. What matters is that it came after the rest.
                self.got_key = true;
                if !self.got_direction {
                    return close(out, "the peer sent $Key without $Direction");
                }
                if self.sent_key {
                    self.nmdc_ready(out);
                }
            }
            (Phase::Ready, nmdc::Message::AdcSnd(t)) if self.downloading => {
                if t.bytes < 0 {
                    return close(out, "the peer announced a negative byte count");
                }
                out.push(Output::Sending(Sending {
                    compressed: t.flags.iter().any(|f| f == "ZL1"),
                    kind: t.kind,
                    identifier: t.identifier,
                    start: t.start,
                    bytes: t.bytes as u64,
                }));
            }
            (Phase::Ready, nmdc::Message::MaxedOut(pos)) if self.downloading => {
                out.push(Output::Refused(Refused::SlotsFull(pos)));
            }
            (Phase::Ready, nmdc::Message::Error(e) | nmdc::Message::Failed(e))
                if self.downloading =>
            {
                let r = if e.to_ascii_lowercase().contains("not available") {
                    Refused::NotAvailable(e)
                } else {
                    Refused::Other(e)
                };
                out.push(Output::Refused(r));
            }
            (Phase::Ready, nmdc::Message::AdcGet(_)) if self.downloading => {
                close(out, "the peer asked for a file on a connection where we download");
            }
            (Phase::Ready, nmdc::Message::AdcGet(t)) => match request_from_nmdc(&t) {
                Ok(r) => out.push(Output::Request(r)),
                Err(e) => out.push(Output::Send(self.refusal(&Refusal::Unsupported(e)))),
            },
            (Phase::Ready, nmdc::Message::Raw(raw)) if raw.command() == b"$ADCGET" => {
                let why =
                    raw.error.as_ref().map_or("a malformed $ADCGET".into(), |e| e.to_string());
                out.push(Output::Send(self.refusal(&Refusal::Unsupported(why))));
            }
            (Phase::Ready, nmdc::Message::Raw(raw)) if is_legacy_get(raw.command()) => {
                out.push(Output::Send(
                    self.refusal(&Refusal::Unsupported("only $ADCGET is supported".into())),
                ));
            }
            (_, nmdc::Message::Error(e) | nmdc::Message::Failed(e)) => {
                out.push(Output::PeerError(e));
            }
            (_, nmdc::Message::KeepAlive) => {}
            (Phase::Ready, nmdc::Message::Supports(features)) => self.peer_features = features,
            (
                Phase::Ready,
                m @ (nmdc::Message::MyNick(_)
                | nmdc::Message::Lock(_)
                | nmdc::Message::Key(_)
                | nmdc::Message::Direction(_)),
            ) => {
                // A second handshake on a live connection is no client's
                // doing; waiting it out would hold the connection until
                // the idle deadline.
                let what = nmdc_name(&m, frame);
                close(out, &format!("the peer repeated its handshake ({what})"));
            }
            (phase, m) => {
                let what = nmdc_name(&m, frame);
                if phase == Phase::Ready {
                    log::debug!(target: "peer", "ignored {what} from a peer");
                } else {
                    close(out, &format!("unexpected {what} during the handshake"));
                }
            }
        }
    }

    /// Our `$Supports`, `$Direction`, `$Key` (and first, on the accepting
    /// side, our `$MyNick` and `$Lock`).
    fn answer_lock(&mut self, lock: &Lock, out: &mut Vec<Output>) {
        let Some(h) = self.hello.clone() else { return };
        let cs = h.charset;
        let mut bytes = Vec::new();
        if self.role == Role::Accepting {
            push_nmdc(&mut bytes, &nmdc::Message::MyNick(h.nick.clone()), cs);
            push_nmdc(&mut bytes, &nmdc::Message::Lock(our_lock(&h)), cs);
        }
        if lock.is_extended() {
            let supports = NMDC_SUPPORTS.iter().map(|s| s.to_string()).collect();
            push_nmdc(&mut bytes, &nmdc::Message::Supports(supports), cs);
        }
        let way = if self.want_download() { Way::Download } else { Way::Upload };
        let direction = Direction { way, number: self.direction_number };
        push_nmdc(&mut bytes, &nmdc::Message::Direction(direction), cs);
        push_nmdc(&mut bytes, &nmdc::Message::Key(lock.key()), cs);
        self.sent_key = true;
        out.push(Output::Send(bytes));
        if self.got_key && self.got_direction {
            self.nmdc_ready(out);
        }
    }

    /// Both `$Direction`s are known: who downloads (the tie-break when both
    /// want to), then ready.
    fn nmdc_ready(&mut self, out: &mut Vec<Output>) {
        let Some(peer) = self.peer_direction else {
            return close(out, "the peer sent no $Direction");
        };
        let ours = self.want_download();
        let peer_downloads = peer.way == Way::Download;
        self.downloading = match (ours, peer_downloads) {
            (false, false) => {
                return close(out, "neither side wants to download ($Direction Upload)")
            }
            (true, false) => true,
            (false, true) => false,
            (true, true) if self.direction_number == peer.number => {
                return close(
                    out,
                    "both sides want to download and drew the same $Direction number",
                )
            }
            (true, true) => self.direction_number > peer.number,
        };
        self.phase = Phase::Ready;
        out.push(Output::Ready);
    }

    // ----- ADC -------------------------------------------------------------

    fn on_adc(&mut self, frame: &[u8], out: &mut Vec<Output>) {
        if frame.is_empty() {
            return;
        }
        let msg = match adc::parse(frame) {
            Ok(m) => m,
            Err(e) => return close(out, &format!("an unreadable ADC line: {e}")),
        };
        if msg.message_type() != adc::MessageType::Client {
            return close(out, "a non-client ADC message on a client connection");
        }
        match (self.phase, msg.command()) {
            (Phase::Greeting | Phase::Handshake, CommandName::SUP) if !self.got_sup => {
                self.got_sup = true;
                self.peer_features =
                    msg.named().filter(|(n, _)| *n == "AD").map(|(_, v)| v.to_string()).collect();
                if !self.peer_supports("BASE") && !self.peer_supports("BAS0") {
                    return close(out, "the peer does not support BASE");
                }
                match self.role {
                    Role::Accepting => out.push(Output::Send(adc_sup())),
                    Role::Connecting => {
                        let Some(h) = &self.hello else { return };
                        out.push(Output::Send(adc_inf(&h.cid, h.token.as_deref())));
                        self.phase = Phase::Handshake;
                    }
                }
            }
            (Phase::Greeting | Phase::Handshake, CommandName::INF) if self.got_sup => {
                let Some(cid) = msg.get("ID").filter(|c| !c.is_empty()) else {
                    return close(out, "the peer's CINF has no ID");
                };
                let token = msg.get("TO").map(str::to_string);
                out.push(Output::Identify(PeerId::Cid { cid: cid.to_string(), token }));
                if self.role == Role::Connecting {
                    self.phase = Phase::Ready;
                    // The job calls `set_download` on Identify, before it
                    // applies Ready.
                    out.push(Output::Ready);
                }
            }
            (Phase::Ready, CommandName::SND) if self.downloading => {
                match adc::Snd::from_message(&msg) {
                    Ok(snd) => out.push(Output::Sending(Sending {
                        kind: snd.kind.to_string(),
                        identifier: snd.identifier.to_string(),
                        start: snd.start,
                        bytes: snd.length,
                        compressed: snd.compressed,
                    })),
                    Err(e) => close(out, &format!("an unreadable CSND: {e}")),
                }
            }
            (Phase::Ready, CommandName::STA) if self.downloading => {
                let code = msg.positional(0).unwrap_or("");
                let text = msg.positional(1).unwrap_or("").to_string();
                if code.starts_with('0') {
                    return;
                }
                let r = match code.get(1..) {
                    Some("53") => {
                        let qp = msg.get("QP").and_then(|q| q.parse().ok());
                        Refused::SlotsFull(qp)
                    }
                    Some("51" | "52") => Refused::NotAvailable(format!("{code} {text}")),
                    _ => Refused::Other(format!("{code} {text}")),
                };
                out.push(Output::Refused(r));
            }
            (Phase::Ready, CommandName::GET) if self.downloading => {
                let sta = adc::Sta::new(
                    Severity::Fatal,
                    status::code::PROTOCOL_GENERIC,
                    "we download on this connection",
                );
                out.push(Output::Send(sta.to_message(Header::Client).encode()));
            }
            (Phase::Ready, CommandName::GET) => match adc::Get::from_message(&msg) {
                Ok(get) => match request_from_adc(&get) {
                    Ok(r) => out.push(Output::Request(r)),
                    Err(e) => out.push(Output::Send(self.refusal(&Refusal::Unsupported(e)))),
                },
                Err(e) => {
                    out.push(Output::Send(self.refusal(&Refusal::Unsupported(e.to_string()))));
                }
            },
            (_, CommandName::STA) => {
                let code = msg.positional(0).unwrap_or("");
                let text = msg.positional(1).unwrap_or("");
                // `CSTA 000` carries the referrer; not an error.
                if code.starts_with('0') {
                    return;
                }
                out.push(Output::PeerError(format!("{code} {text}")));
                if code.starts_with('2') && self.phase != Phase::Ready {
                    close(out, &format!("the peer refused: {code} {text}"));
                }
            }
            (Phase::Ready, CommandName::SUP) => {}
            (Phase::Ready, other) => {
                log::debug!(target: "peer", "ignored C{} from a peer", other);
            }
            (_, other) => close(out, &format!("unexpected C{other} during the handshake")),
        }
    }

    // ----- answers ---------------------------------------------------------

    /// The header before the data of an answer: `$ADCSND ...|` or
    /// `CSND ...\n`, for `bytes` bytes from `start` (uncompressed bytes with
    /// `compressed`).
    pub fn send_header(&self, req: &Request, start: u64, bytes: u64, compressed: bool) -> Vec<u8> {
        match self.protocol {
            Protocol::Nmdc => {
                let t = AdcTransfer {
                    kind: req.kind.as_str().to_string(),
                    identifier: req.identifier.clone(),
                    start,
                    bytes: i64::try_from(bytes).unwrap_or(i64::MAX),
                    flags: if compressed { vec!["ZL1".to_string()] } else { Vec::new() },
                };
                let mut out = Vec::new();
                push_nmdc(&mut out, &nmdc::Message::AdcSnd(t), self.charset());
                out
            }
            Protocol::Adc => {
                let snd = adc::Snd {
                    kind: req.kind.as_str(),
                    identifier: &req.identifier,
                    start,
                    length: bytes,
                    compressed,
                };
                snd.to_message(Header::Client).encode()
            }
        }
    }

    /// Our request (downloading), encoded: `$ADCGET ...|` or `CGET ...\n`.
    pub fn get(&self, req: &Request) -> Vec<u8> {
        match self.protocol {
            Protocol::Nmdc => {
                let mut flags = Vec::new();
                if req.compressed {
                    flags.push("ZL1".to_string());
                }
                if req.recursive {
                    flags.push("RE1".to_string());
                }
                let t = AdcTransfer {
                    kind: req.kind.as_str().to_string(),
                    identifier: req.identifier.clone(),
                    start: req.start,
                    bytes: req.bytes.map_or(-1, |b| i64::try_from(b).unwrap_or(i64::MAX)),
                    flags,
                };
                let mut out = Vec::new();
                push_nmdc(&mut out, &nmdc::Message::AdcGet(t), self.charset());
                out
            }
            Protocol::Adc => {
                let get = adc::Get {
                    kind: req.kind.as_str(),
                    identifier: &req.identifier,
                    start: req.start,
                    length: req.bytes,
                    compressed: req.compressed,
                    recursive: req.recursive,
                    downloaded: None,
                };
                get.to_message(Header::Client).encode()
            }
        }
    }

    /// The refusal of a request, encoded.
    pub fn refusal(&self, r: &Refusal) -> Vec<u8> {
        match self.protocol {
            Protocol::Nmdc => {
                let msg = match r {
                    Refusal::SlotsFull(pos) => nmdc::Message::MaxedOut(*pos),
                    // DC++ matches this text to mark the file unavailable.
                    Refusal::NotAvailable(_) | Refusal::BadRange(_) => {
                        nmdc::Message::Error("File Not Available".into())
                    }
                    Refusal::Unsupported(why) => nmdc::Message::Error(why.clone()),
                };
                let mut out = Vec::new();
                push_nmdc(&mut out, &msg, self.charset());
                out
            }
            Protocol::Adc => {
                let (code, text, qp) = match r {
                    Refusal::SlotsFull(pos) => (status::code::SLOTS_FULL, "Slots full", *pos),
                    Refusal::NotAvailable(_) => {
                        (status::code::FILE_NOT_AVAILABLE, "File Not Available", None)
                    }
                    Refusal::BadRange(_) => {
                        (status::code::FILE_PART_NOT_AVAILABLE, "File Part Not Available", None)
                    }
                    Refusal::Unsupported(why) => {
                        (status::code::PROTOCOL_GENERIC, why.as_str(), None)
                    }
                };
                let mut sta = adc::Sta::new(Severity::Fatal, code, text);
                sta.queue_position = qp.map(u64::from);
                sta.to_message(Header::Client).encode()
            }
        }
    }
}

fn close(out: &mut Vec<Output>, why: &str) {
    out.push(Output::Close(why.to_string()));
}

/// Appends a message with its `|`.
fn push_nmdc(out: &mut Vec<u8>, msg: &nmdc::Message, cs: &'static Encoding) {
    nmdc::encode_into(msg, cs, out);
}

fn our_lock(h: &Hello) -> Lock {
    Lock {
        lock: OUR_LOCK.to_vec(),
        pk: Some(format!("dclua{}", env!("CARGO_PKG_VERSION"))),
        reference: (!h.hub_url.is_empty()).then(|| h.hub_url.clone()),
    }
}

fn adc_sup() -> Vec<u8> {
    adc::Sup::adding(&ADC_SUPPORTS).to_message(Header::Client).encode()
}

fn adc_inf(cid: &str, token: Option<&str>) -> Vec<u8> {
    let mut m = adc::Message::new(Header::Client, CommandName::INF).with_named("ID", cid);
    if let Some(t) = token {
        m = m.with_named("TO", t);
    }
    m.encode()
}

fn nmdc_name(m: &nmdc::Message, frame: &[u8]) -> String {
    if let nmdc::Message::Raw(r) = m {
        return String::from_utf8_lossy(r.command()).into_owned();
    }
    let end = frame.iter().position(|&b| b == b' ').unwrap_or(frame.len()).min(32);
    String::from_utf8_lossy(&frame[..end]).into_owned()
}

fn is_legacy_get(command: &[u8]) -> bool {
    matches!(command, b"$Get" | b"$GetZBlock" | b"$UGetBlock" | b"$UGetZBlock" | b"$GetListLen")
}

fn kind_of(kind: &str) -> Result<Kind, String> {
    match kind {
        "file" => Ok(Kind::File),
        "list" => Ok(Kind::List),
        "tthl" => Ok(Kind::Leaves),
        other => Err(format!("unknown request type {other:?}")),
    }
}

fn request_from_nmdc(t: &AdcTransfer) -> Result<Request, String> {
    let bytes = match t.bytes {
        -1 => None,
        n if n < 0 => return Err(format!("a negative byte count {n}")),
        n => Some(n as u64),
    };
    Ok(Request {
        kind: kind_of(&t.kind)?,
        identifier: t.identifier.clone(),
        start: t.start,
        bytes,
        compressed: t.flags.iter().any(|f| f == "ZL1"),
        recursive: t.flags.iter().any(|f| f == "RE1"),
    })
}

fn request_from_adc(g: &adc::Get<'_>) -> Result<Request, String> {
    Ok(Request {
        kind: kind_of(g.kind)?,
        identifier: g.identifier.to_string(),
        start: g.start,
        bytes: g.length,
        compressed: g.compressed,
        recursive: g.recursive,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello() -> Hello {
        Hello {
            nick: "bot".into(),
            charset: encoding_rs::WINDOWS_1252,
            cid: "CID".into(),
            token: Some("t1".into()),
            hub_url: "dchub://127.0.0.1:4111".into(),
            download: false,
        }
    }

    fn sent(out: &[Output]) -> String {
        out.iter()
            .filter_map(|o| match o {
                Output::Send(b) => Some(String::from_utf8_lossy(b).into_owned()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn nmdc_accepting_handshake_then_request() {
        let mut s = Session::new(Protocol::Nmdc, Role::Accepting, None, 4242);
        assert!(s.start().is_empty());
        let out = s.on_frame(b"$MyNick peer");
        assert_eq!(out, vec![Output::Identify(PeerId::Nick(b"peer".to_vec()))]);
        assert!(s.on_frame(b"$Lock EXTENDEDPROTOCOLxyz Pk=EiskaltDC++").is_empty());
        let out = s.bind(hello());
        let text = sent(&out);
        assert!(text.starts_with("$MyNick bot|$Lock EXTENDEDPROTOCOL"), "{text}");
        assert!(text.contains("|$Supports MiniSlots XmlBZList ADCGet TTHL TTHF ZLIG TLS|"));
        assert!(text.contains("|$Direction Upload 4242|$Key "), "{text}");
        assert!(s.on_frame(b"$Supports ADCGet TTHL ZLIG").is_empty());
        assert!(s.on_frame(b"$Direction Download 17").is_empty());
        assert_eq!(s.on_frame(b"$Key whatever"), vec![Output::Ready]);
        assert!(s.peer_supports("ZLIG"));
        let out = s.on_frame(b"$ADCGET file TTH/LWPNACQDBZRYXW3VHJVCJ64QBZNGHOHHHZWCLNQ 0 -1 ZL1");
        assert_eq!(
            out,
            vec![Output::Request(Request {
                kind: Kind::File,
                identifier: "TTH/LWPNACQDBZRYXW3VHJVCJ64QBZNGHOHHHZWCLNQ".into(),
                start: 0,
                bytes: None,
                compressed: true,
                recursive: false,
            })]
        );
        let Output::Request(r) = &out[0] else { unreachable!() };
        assert_eq!(
            String::from_utf8(s.send_header(r, 0, 10, false)).unwrap(),
            "$ADCSND file TTH/LWPNACQDBZRYXW3VHJVCJ64QBZNGHOHHHZWCLNQ 0 10|"
        );
        assert_eq!(s.refusal(&Refusal::SlotsFull(None)), b"$MaxedOut|");
        assert_eq!(s.refusal(&Refusal::NotAvailable("x".into())), b"$Error File Not Available|");
        let out = s.on_frame(b"$ADCGET file x -5 3");
        assert!(sent(&out).starts_with("$Error malformed $ADCGET frame"), "{out:?}");
        let out = s.on_frame(b"$Get x$1");
        assert_eq!(sent(&out), "$Error only $ADCGET is supported|");
    }

    #[test]
    fn nmdc_connecting_handshake() {
        let mut s = Session::new(Protocol::Nmdc, Role::Connecting, Some(hello()), 9);
        let text = sent(&s.start());
        assert!(text.starts_with("$MyNick bot|$Lock EXTENDEDPROTOCOL"), "{text}");
        assert!(text.contains("Pk=dclua"), "{text}");
        assert!(text.contains("Ref=dchub://127.0.0.1:4111|"), "{text}");
        assert_eq!(
            s.on_frame(b"$MyNick peer"),
            vec![Output::Identify(PeerId::Nick(b"peer".into()))]
        );
        let out = s.on_frame(b"$Lock EXTENDEDPROTOCOLabc Pk=x");
        let text = sent(&out);
        assert!(text.starts_with("$Supports "), "{text}");
        assert!(text.contains("$Direction Upload 9|$Key "));
        assert!(s.on_frame(b"$Supports ADCGet").is_empty());
        assert!(s.on_frame(b"$Direction Download 100").is_empty());
        assert_eq!(s.on_frame(b"$Key k"), vec![Output::Ready]);
    }

    #[test]
    fn nmdc_downloading_with_the_tie_break() {
        // We dialled and want to download; the peer wants to as well but
        // drew a lower number: we download.
        let mut h = hello();
        h.download = true;
        let mut s = Session::new(Protocol::Nmdc, Role::Connecting, Some(h), 500);
        s.start();
        s.on_frame(b"$MyNick peer");
        let text = sent(&s.on_frame(b"$Lock EXTENDEDPROTOCOLabc Pk=x"));
        assert!(text.contains("$Direction Download 500|"), "{text}");
        s.on_frame(b"$Direction Download 100");
        assert_eq!(s.on_frame(b"$Key k"), vec![Output::Ready]);
        assert!(s.is_downloading());
        let req = Request {
            kind: Kind::File,
            identifier: "TTH/LWPNACQDBZRYXW3VHJVCJ64QBZNGHOHHHZWCLNQ".into(),
            start: 1024,
            bytes: Some(2048),
            compressed: false,
            recursive: false,
        };
        assert_eq!(
            String::from_utf8(s.get(&req)).unwrap(),
            "$ADCGET file TTH/LWPNACQDBZRYXW3VHJVCJ64QBZNGHOHHHZWCLNQ 1024 2048|"
        );
        let out = s.on_frame(b"$ADCSND file TTH/LWPNACQDBZRYXW3VHJVCJ64QBZNGHOHHHZWCLNQ 1024 2048");
        let [Output::Sending(snd)] = &out[..] else { panic!("{out:?}") };
        assert_eq!((snd.start, snd.bytes, snd.compressed), (1024, 2048, false));
        assert_eq!(s.on_frame(b"$MaxedOut 3"), vec![Output::Refused(Refused::SlotsFull(Some(3)))]);
        assert!(matches!(
            &s.on_frame(b"$Error File Not Available")[..],
            [Output::Refused(Refused::NotAvailable(_))]
        ));
        // A peer that asks for a file on our download connection is closed.
        assert!(matches!(&s.on_frame(b"$ADCGET file x 0 1")[..], [Output::Close(_)]));

        // The higher number wins: the peer downloads.
        let mut h = hello();
        h.download = true;
        let mut s = Session::new(Protocol::Nmdc, Role::Connecting, Some(h), 5);
        s.start();
        s.on_frame(b"$MyNick peer");
        s.on_frame(b"$Lock EXTENDEDPROTOCOLabc Pk=x");
        s.on_frame(b"$Direction Download 9000");
        assert_eq!(s.on_frame(b"$Key k"), vec![Output::Ready]);
        assert!(!s.is_downloading());

        // Equal numbers end the connection.
        let mut h = hello();
        h.download = true;
        let mut s = Session::new(Protocol::Nmdc, Role::Connecting, Some(h), 77);
        s.start();
        s.on_frame(b"$MyNick peer");
        s.on_frame(b"$Lock EXTENDEDPROTOCOLabc Pk=x");
        s.on_frame(b"$Direction Download 77");
        assert!(matches!(&s.on_frame(b"$Key k")[..], [Output::Close(w)] if w.contains("same")));
    }

    #[test]
    fn adc_downloading_reads_snd_and_sta() {
        let mut s = Session::new(Protocol::Adc, Role::Connecting, Some(hello()), 1);
        s.start();
        s.on_frame(b"CSUP ADBASE ADTIGR");
        let out = s.on_frame(b"CINF IDPEER");
        assert!(out.contains(&Output::Ready));
        s.set_download(true);
        assert!(s.is_downloading());
        let req = Request {
            kind: Kind::Leaves,
            identifier: "TTH/LWPNACQDBZRYXW3VHJVCJ64QBZNGHOHHHZWCLNQ".into(),
            start: 0,
            bytes: None,
            compressed: false,
            recursive: false,
        };
        assert_eq!(
            String::from_utf8(s.get(&req)).unwrap(),
            "CGET tthl TTH/LWPNACQDBZRYXW3VHJVCJ64QBZNGHOHHHZWCLNQ 0 -1\n"
        );
        let out = s.on_frame(b"CSND tthl TTH/LWPNACQDBZRYXW3VHJVCJ64QBZNGHOHHHZWCLNQ 0 24");
        assert!(matches!(&out[..], [Output::Sending(x)] if x.bytes == 24 && x.kind == "tthl"));
        assert_eq!(
            s.on_frame(b"CSTA 253 Slots\\sfull QP4"),
            vec![Output::Refused(Refused::SlotsFull(Some(4)))]
        );
        assert!(matches!(
            &s.on_frame(b"CSTA 251 File\\sNot\\sAvailable")[..],
            [Output::Refused(Refused::NotAvailable(_))]
        ));
    }

    #[test]
    fn repeated_handshake_lines_close() {
        let mut s = Session::new(Protocol::Nmdc, Role::Connecting, Some(hello()), 9);
        s.start();
        s.on_frame(b"$MyNick peer");
        s.on_frame(b"$Lock EXTENDEDPROTOCOLabc Pk=x");
        let out = s.on_frame(b"$Lock EXTENDEDPROTOCOLabc Pk=x");
        assert!(
            matches!(&out[..], [Output::Close(why)] if why.contains("second $Lock")),
            "{out:?}"
        );
        let mut s = Session::new(Protocol::Nmdc, Role::Connecting, Some(hello()), 9);
        s.start();
        s.on_frame(b"$MyNick peer");
        let out = s.on_frame(b"$MyNick peer");
        assert!(matches!(&out[..], [Output::Close(_)]), "{out:?}");
        let mut s = Session::new(Protocol::Adc, Role::Accepting, None, 1);
        s.on_frame(b"CSUP ADBASE ADTIGR");
        let out = s.on_frame(b"CSUP ADBASE ADTIGR");
        assert!(matches!(&out[..], [Output::Close(_)]), "{out:?}");
    }

    #[test]
    fn nmdc_both_upload_or_out_of_order_closes() {
        let mut s = Session::new(Protocol::Nmdc, Role::Connecting, Some(hello()), 9);
        s.start();
        s.on_frame(b"$MyNick peer");
        s.on_frame(b"$Lock EXTENDEDPROTOCOLabc Pk=x");
        // Who downloads is decided once both directions are known.
        assert!(s.on_frame(b"$Direction Upload 100").is_empty());
        let out = s.on_frame(b"$Key k");
        assert!(matches!(&out[..], [Output::Close(why)] if why.contains("neither side")));
        let mut s = Session::new(Protocol::Nmdc, Role::Accepting, None, 9);
        let out = s.on_frame(b"$ADCGET file files.xml.bz2 0 -1");
        assert!(matches!(&out[..], [Output::Close(why)] if why.contains("before $MyNick")));
    }

    #[test]
    fn adc_accepting_handshake_then_requests() {
        let mut s = Session::new(Protocol::Adc, Role::Accepting, None, 1);
        let out = s.on_frame(b"CSUP ADBAS0 ADBASE ADTIGR ADBZIP ADZLIG");
        assert_eq!(sent(&out), "CSUP ADBAS0 ADBASE ADTIGR ADBZIP ADZLIG\n");
        let out = s.on_frame(b"CINF IDPEERCID TOabc");
        assert_eq!(
            out,
            vec![Output::Identify(PeerId::Cid {
                cid: "PEERCID".into(),
                token: Some("abc".into())
            })]
        );
        let mut h = hello();
        h.token = None;
        let out = s.bind(h);
        assert_eq!(sent(&out), "CINF IDCID\n");
        assert!(s.is_ready());
        let out = s.on_frame(b"CGET list /share/a\\sb/ 0 -1 RE1");
        let [Output::Request(r)] = &out[..] else { panic!("{out:?}") };
        assert_eq!((r.kind, r.identifier.as_str(), r.recursive), (Kind::List, "/share/a b/", true));
        assert_eq!(
            String::from_utf8(s.send_header(r, 0, 5, true)).unwrap(),
            "CSND list /share/a\\sb/ 0 5 ZL1\n"
        );
        assert_eq!(s.refusal(&Refusal::SlotsFull(Some(2))), b"CSTA 253 Slots\\sfull QP2\n");
        assert_eq!(
            s.refusal(&Refusal::NotAvailable("x".into())),
            b"CSTA 251 File\\sNot\\sAvailable\n"
        );
        let out = s.on_frame(b"CGET fancy x 0 -1");
        assert!(sent(&out).starts_with("CSTA 240 unknown\\srequest\\stype"), "{out:?}");
    }

    #[test]
    fn adc_connecting_handshake() {
        let mut s = Session::new(Protocol::Adc, Role::Connecting, Some(hello()), 1);
        assert_eq!(sent(&s.start()), "CSUP ADBAS0 ADBASE ADTIGR ADBZIP ADZLIG\n");
        assert_eq!(sent(&s.on_frame(b"CSUP ADBASE ADTIGR")), "CINF IDCID TOt1\n");
        let out = s.on_frame(b"CINF IDPEER");
        assert_eq!(
            out,
            vec![Output::Identify(PeerId::Cid { cid: "PEER".into(), token: None }), Output::Ready]
        );
        // A hub-type message or garbage on a C-C connection ends it.
        let out = s.on_frame(b"BINF AAAA IDX");
        assert!(matches!(&out[..], [Output::Close(_)]));
    }
}
