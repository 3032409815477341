//! Hub sessions: the protocol-neutral model every hub protocol reports into,
//! and the session jobs themselves ([`nmdc`] and [`adc`], both reporting into
//! this model).
//!
//! # What lives here
//!
//! | piece | what it is |
//! |---|---|
//! | [`HubId`] | a hub is identified by its session job's [`JobId`] |
//! | [`Hubs`] | the worker thread's registry of [`HubInfo`] (state, name, topic, our nick, the [`UserList`]) and of our [`Identity`]; sessions write it, Lua reads it synchronously |
//! | [`HubCommand`] | what others ask a session, sent with [`Runtime::send`] |
//! | [`HubEvent`] | what a session reports, in batches, through a [`HubSink`] |
//! | [`users`]: [`User`], [`UserList`] | one hub's users, laid out for size (100,000 users in about 25 MB) and made from either protocol's user line |
//! | [`SearchQuery`], [`SearchHit`] | protocol-neutral search and result |
//! | [`nmdc`] | the NMDC session job |
//! | [`adc`] | the ADC session job (`adc://`, `adcs://`) |
//! | [`udp`] | the one UDP listener shared by all hubs (active-mode search results, and our results to active searchers) |
//! | [`share_answers`], [`follow_share`] | what sessions answer from the share service, and our share figures following it |
//!
//! # Rules
//!
//! - Sessions never call Lua and never know about it: they report
//!   [`HubEvent`]s to a [`HubSink`], which the Lua layer implements
//!   (dependencies run downward: `lua` uses `hub`, never the reverse).
//!   They answer searches from the share service ([`share_answers`]); the
//!   answer filter it applies may be a Lua function, but that is the share
//!   service's business, invisible to the sessions.
//! - Sessions never block: DNS resolution goes to a helper thread, every
//!   socket is non-blocking, every wait is a timer.
//! - A session applies a whole read batch to its [`HubInfo`] first, then hands
//!   the batch's events to the sink in one call; user-list floods are
//!   coalesced (a join and updates of the same user in one batch make one
//!   `UserJoined` with the final information).
//! - The initial user list is not reported user by user: `UserJoined` is for
//!   users who arrive after [`HubEvent::Connected`], which fires once the
//!   initial list is in (see [`nmdc`] for how that moment is found).
//! - Memory stays bounded: frames have a size limit, `$ZOn` blocks a
//!   decompression limit, and a session stops reading while its sink is
//!   congested ([`HubSink::congested`]).
//! - A [`HubInfo`] exists while its session job lives; when the job ends its
//!   entry is removed, so an unknown id means "disconnected".

pub mod adc;
pub mod nmdc;
pub mod redirect;
pub mod udp;
pub mod users;

pub use users::{
    HubCounts, HubHasher, User, UserList, UserMode, MAX_USERS, MAX_USER_EXTRA, MAX_USER_FIELD,
};

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use encoding_rs::Encoding;

use crate::address::HubUrl;
use crate::identity::Me;
use crate::proto::tth::Tth;
use crate::runtime::{JobId, Runtime};
use crate::search::{self as share_index, MAX_RESULTS_ACTIVE, MAX_RESULTS_PASSIVE};
use crate::share::service::{ShareEvent, ShareService};

/// A hub is identified by the id of its session job.
pub type HubId = JobId;

/// The two protocols of the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// NMDC (`dchub://`, `nmdc://`, `nmdcs://`, or a bare `host:port`).
    Nmdc,
    /// ADC (`adc://`, `adcs://`).
    Adc,
}

impl Protocol {
    /// `"nmdc"` or `"adc"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Nmdc => "nmdc",
            Protocol::Adc => "adc",
        }
    }
}

/// Where a hub session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HubState {
    /// Resolving the address or opening the TCP connection.
    Connecting,
    /// Connected; the login handshake and the initial user list are under way.
    LoggingIn,
    /// Logged in, the initial user list received.
    Online,
    /// The connection dropped; waiting to reconnect.
    Reconnecting,
    /// The session has ended (it is about to leave the registry).
    Disconnected,
}

impl HubState {
    /// `"connecting"`, `"logging_in"`, `"online"`, `"reconnecting"` or
    /// `"disconnected"`.
    pub fn as_str(self) -> &'static str {
        match self {
            HubState::Connecting => "connecting",
            HubState::LoggingIn => "logging_in",
            HubState::Online => "online",
            HubState::Reconnecting => "reconnecting",
            HubState::Disconnected => "disconnected",
        }
    }
}

/// Our standing on a hub, for the `H:` hub counts of our client tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// An unregistered user.
    Normal,
    /// A registered user (the hub asked for our password).
    Registered,
    /// An operator.
    Op,
}

/// One hub as the registry knows it.
#[derive(Debug)]
pub struct HubInfo {
    /// The session job's id.
    pub id: HubId,
    /// The hub's address as given (after a followed redirect: the new one).
    pub url: String,
    /// The protocol.
    pub protocol: Protocol,
    /// The hub's name (`$HubName`; may carry the topic on NMDC).
    pub name: String,
    /// The topic (`$HubTopic`).
    pub topic: String,
    /// Where the session stands.
    pub state: HubState,
    /// Our nick on this hub.
    pub my_nick: String,
    /// The users, ourselves included once the hub lists us.
    pub users: UserList,
    /// The hub's TLS keyprint (`SHA256/...`), for TLS hubs; `None` otherwise.
    pub keyprint: Option<String>,
    /// The hub's text encoding.
    pub charset: &'static Encoding,
    /// The hub's resolved address, while connected (routes UDP results).
    pub address: Option<SocketAddr>,
    /// Our standing, from our login on until the connection drops.
    pub role: Option<Role>,
    /// Our IP address as the hub reported it (NMDC `$UserIP`).
    pub my_ip: Option<String>,
    /// When we last searched on this hub (routes UDP results that name no hub).
    pub last_search: Option<Instant>,
}

impl HubInfo {
    fn new(
        id: HubId,
        url: &str,
        protocol: Protocol,
        nick: &str,
        cs: &'static Encoding,
        max_users: usize,
    ) -> Self {
        HubInfo {
            id,
            url: url.to_string(),
            protocol,
            name: String::new(),
            topic: String::new(),
            state: HubState::Connecting,
            my_nick: nick.to_string(),
            users: UserList::with_cap(max_users),
            keyprint: None,
            charset: cs,
            address: None,
            role: None,
            my_ip: None,
            last_search: None,
        }
    }

    /// What to call the hub in messages: its name, else its address.
    pub fn label(&self) -> &str {
        if self.name.is_empty() {
            &self.url
        } else {
            &self.name
        }
    }
}

/// Whether we accept incoming connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectMode {
    /// Our ports are reachable.
    Active,
    /// We are behind a NAT or firewall.
    Passive,
}

/// Who we are, the same on every hub: what our `$MyINFO` / `BINF` announces,
/// and where active-mode replies reach us.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// The default nick (a hub may use its own).
    pub nick: String,
    /// The description.
    pub description: String,
    /// The e-mail address.
    pub email: String,
    /// Upload slots.
    pub slots: u32,
    /// Shared bytes (0 until sharing is running; [`follow_share`] keeps it
    /// up to date).
    pub share_size: u64,
    /// Shared files (ADC `SF`), like `share_size`.
    pub shared_files: u64,
    /// Active or passive.
    pub mode: ConnectMode,
    /// The local address the UDP listener binds in active mode.
    pub listen_address: IpAddr,
    /// The UDP port for search results; 0 = any free port.
    pub udp_port: u16,
    /// The TCP port for client connections in active mode; 0 = any free port.
    pub tcp_port: u16,
    /// The TLS port for client connections in active mode; 0 = any free port.
    pub tls_port: u16,
    /// Upload bandwidth limit in bytes per second; 0 = none.
    pub upload_limit: u64,
    /// Mini slots (lists, leaves, small files).
    pub mini_slots: u32,
    /// TLS client connections offered and accepted.
    pub tls_transfers: bool,
    /// Users kept per hub at most ([`MAX_USERS`] by default).
    pub max_users: usize,
    /// The address announced in active mode; `None` for the one we connect from.
    pub external_address: Option<String>,
    /// Away.
    pub away: bool,
}

impl Default for Identity {
    fn default() -> Self {
        Identity {
            nick: "dclua-user".to_string(),
            description: String::new(),
            email: String::new(),
            slots: 3,
            share_size: 0,
            shared_files: 0,
            mode: ConnectMode::Passive,
            listen_address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            udp_port: 0,
            tcp_port: 0,
            tls_port: 0,
            upload_limit: 0,
            mini_slots: crate::transfer::slots::MINI_SLOTS,
            tls_transfers: true,
            max_users: MAX_USERS,
            external_address: None,
            away: false,
        }
    }
}

impl Identity {
    /// The identity a configuration describes; the share figures are 0 (the
    /// share's own, see [`follow_share`], are kept by whoever applies
    /// a configuration to a running client).
    pub fn from_config(config: &crate::config::Config) -> Identity {
        Identity {
            nick: config.nick.clone(),
            description: config.description.clone(),
            email: config.email.clone(),
            slots: config.slots,
            share_size: 0,
            shared_files: 0,
            mode: match config.mode {
                crate::config::Mode::Active => ConnectMode::Active,
                crate::config::Mode::Passive => ConnectMode::Passive,
            },
            listen_address: config.listen_address,
            udp_port: config.udp_port,
            tcp_port: config.tcp_port,
            tls_port: config.tls_port,
            upload_limit: u64::from(config.upload_limit) * 1024,
            mini_slots: config.mini_slots,
            tls_transfers: config.tls_transfers,
            max_users: usize::try_from(config.max_users).unwrap_or(MAX_USERS),
            external_address: config.external_address.clone(),
            away: false,
        }
    }
}

/// How to connect to a hub.
#[derive(Clone)]
pub struct HubParams {
    /// The address (`dchub://host:port`, `nmdc://...`, `host:port`).
    pub url: String,
    /// Our nick there.
    pub nick: String,
    /// The password of a registered nick.
    pub password: Option<String>,
    /// The hub's text encoding (NMDC; ADC is always UTF-8).
    pub charset: &'static Encoding,
    /// Follow `$ForceMove` redirects (a `hub_redirect` handler may still veto).
    pub follow_redirects: bool,
    /// The first delay before reconnecting after a drop (doubled per failed
    /// attempt, with jitter); zero = never reconnect.
    pub reconnect_delay: Duration,
    /// Our description there, instead of the identity's.
    pub description: Option<String>,
    /// Our e-mail there, instead of the identity's.
    pub email: Option<String>,
}

/// The password is never shown (parameters end up in logs).
impl fmt::Debug for HubParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubParams")
            .field("url", &self.url)
            .field("nick", &self.nick)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("charset", &self.charset.name())
            .field("follow_redirects", &self.follow_redirects)
            .field("reconnect_delay", &self.reconnect_delay)
            .finish()
    }
}

impl HubParams {
    /// Parameters for `url` as `nick`, with the defaults: UTF-8, no password,
    /// follow redirects, reconnect after 30 s.
    pub fn new(url: &str, nick: &str) -> HubParams {
        HubParams {
            url: url.to_string(),
            nick: nick.to_string(),
            password: None,
            charset: encoding_rs::UTF_8,
            follow_redirects: true,
            reconnect_delay: Duration::from_secs(30),
            description: None,
            email: None,
        }
    }

    /// Parameters for a hub of the configuration.
    pub fn from_config(hub: &crate::config::HubConfig, config: &crate::config::Config) -> Self {
        HubParams {
            url: hub.url.clone(),
            nick: hub.nick_or(&config.nick).to_string(),
            password: hub.password.clone(),
            charset: hub.encoding(),
            follow_redirects: true,
            reconnect_delay: Duration::from_secs(u64::from(config.reconnect_delay)),
            description: hub.description.clone(),
            email: hub.email.clone(),
        }
    }
}

/// Why a hub session could not be started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HubError {
    /// The address does not parse.
    #[error("{0}")]
    BadAddress(String),
    /// The protocol or variant is not implemented yet.
    #[error("{0}")]
    Unsupported(String),
    /// A parameter is unusable.
    #[error("{0}")]
    BadParams(String),
}

/// Starts a hub session job for `params`; the hub appears in [`Hubs`] at once
/// (state `connecting`) and reports to `sink`.
pub fn connect(
    rt: &Runtime,
    hubs: &Hubs,
    params: HubParams,
    sink: Rc<dyn HubSink>,
) -> Result<HubId, HubError> {
    let addr = HubUrl::parse(&params.url).map_err(|e| HubError::BadAddress(e.to_string()))?;
    if params.nick.is_empty() || params.nick.contains(['$', '|', ' ', '<', '>']) {
        return Err(HubError::BadParams(format!(
            "nick {:?}: it must be non-empty and have no space, '$', '|', '<' or '>'",
            params.nick
        )));
    }
    if addr.is_adc() {
        Ok(adc::spawn(rt, hubs.clone(), params, addr, sink))
    } else {
        Ok(nmdc::spawn(rt, hubs.clone(), params, addr, sink))
    }
}

// ----- commands and events ---------------------------------------------------

/// What others ask a hub session; send it with [`Runtime::send`] to the
/// hub's id. Commands that need a logged-in session are dropped (with a
/// debug log line) when it is not.
#[derive(Debug, Clone)]
pub enum HubCommand {
    /// Says `text` in main chat (`me`: as an action, `/me`).
    Say {
        /// The text.
        text: String,
        /// An action (`/me text`).
        me: bool,
    },
    /// Sends a private message.
    Pm {
        /// The recipient's nick.
        to: String,
        /// The text.
        text: String,
        /// An action (`/me text`).
        me: bool,
    },
    /// Sends a line as it is (NMDC: encoded in the hub's charset; a missing
    /// final `|` is added).
    SendRaw(String),
    /// Searches (actively over the shared UDP socket in active mode,
    /// passively through the hub otherwise).
    Search(SearchQuery),
    /// Leaves the hub for good (no reconnect); the session job ends.
    Disconnect,
    /// Our [`Identity`] or hub counts changed: announce ourselves again
    /// (rate-limited).
    InfoChanged,
    /// Asks `nick` to connect to our port (transfers).
    ConnectToMe {
        /// The user.
        nick: String,
        /// Our TCP port.
        port: u16,
        /// The connection must use TLS.
        tls: bool,
        /// ADC: the token (the one of the user's `DRCM` we answer); `None`
        /// makes a new one.
        token: Option<String>,
    },
    /// Asks `nick` to ask us to connect (we are passive).
    RevConnectToMe {
        /// The user.
        nick: String,
        /// ADC: the token; `None` makes a new one.
        token: Option<String>,
    },
    /// The answer to a [`HubEvent::Redirect`] (when the sink
    /// [decides redirects](HubSink::decides_redirects)).
    RedirectVerdict {
        /// The redirect address the verdict is about.
        url: String,
        /// Follow it.
        follow: bool,
    },
    /// The answer to [`HubSink::filter_raw`]: which lines of the batch the
    /// session must still process (`false` = a handler consumed it).
    RawVerdict {
        /// The batch number given to `filter_raw`.
        batch: u64,
        /// One flag per line, in order.
        keep: Vec<bool>,
    },
}

/// Who sent an incoming search and where its results go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchFrom {
    /// The searcher's nick, when known (NMDC passive searches; ADC always).
    pub nick: Option<String>,
    /// The UDP address for results (`ip:port`), for active searchers.
    pub address: Option<String>,
}

/// How a search result arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// In a UDP datagram (we searched actively).
    Udp,
    /// Through the hub.
    Hub,
}

impl Via {
    /// `"udp"` or `"hub"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Udp => "udp",
            Via::Hub => "hub",
        }
    }
}

/// What a session reports. Events come in batches, in the order things
/// happened on the wire.
#[derive(Debug, Clone)]
pub enum HubEvent {
    /// Logged in and the initial user list is in.
    Connected {
        /// Users listed.
        users: usize,
    },
    /// A connection attempt or a connected session ended.
    Disconnected {
        /// Why, for humans.
        reason: String,
        /// When the session will try again; `None` when it ends for good.
        reconnect_in: Option<Duration>,
    },
    /// The hub refused our login (wrong password, nick taken...).
    LoginFailed {
        /// Why, for humans.
        reason: String,
        /// The line that said so, when one did.
        raw: Option<Box<[u8]>>,
    },
    /// A main-chat message (ours included: hubs echo main chat).
    Chat {
        /// The sender; `None` for hub text without a nick.
        nick: Option<String>,
        /// The text (an action's without its `/me `).
        text: String,
        /// An action (`/me`).
        me: bool,
        /// The line.
        raw: Box<[u8]>,
    },
    /// A private message to us.
    Pm {
        /// The sender.
        from: String,
        /// The recipient (us).
        to: String,
        /// The nick shown inside the message (a bot relaying may show another).
        nick: Option<String>,
        /// The text.
        text: String,
        /// An action (`/me`).
        me: bool,
        /// The line.
        raw: Box<[u8]>,
    },
    /// A user arrived (after [`HubEvent::Connected`]).
    UserJoined {
        /// The user.
        user: User,
    },
    /// A user's information changed.
    UserUpdated {
        /// The user, updated.
        user: User,
    },
    /// A user left.
    UserLeft {
        /// The nick.
        nick: String,
    },
    /// Someone searches.
    Search {
        /// What they search for.
        query: SearchQuery,
        /// Who, and where results go.
        from: SearchFrom,
        /// The line.
        raw: Box<[u8]>,
    },
    /// A search result for us.
    SearchResult {
        /// The result.
        hit: SearchHit,
    },
    /// The hub sends us elsewhere.
    Redirect {
        /// The new address.
        url: String,
        /// The hub's reason, when given.
        reason: String,
        /// Whether the hub's policy is to follow it.
        follow: bool,
    },
    /// The hub's name or topic changed.
    HubInfo {
        /// The name.
        name: String,
        /// The topic.
        topic: String,
    },
    /// Someone wants a client-client connection (transfers).
    ConnectionRequest {
        /// The user, when the request names them.
        nick: Option<String>,
        /// Where to connect (`ip:port`), for a direct request.
        address: Option<String>,
        /// The connection must use TLS.
        tls: bool,
        /// A passive user asks us to send a connection request.
        reverse: bool,
        /// The line.
        raw: Box<[u8]>,
    },
}

/// Receives what sessions report. The Lua layer implements it; sessions
/// call it once per batch at the end of a poll, never re-entrantly.
pub trait HubSink {
    /// Delivers a batch of events of hub `hub`, in order.
    fn deliver(&self, hub: HubId, events: Vec<HubEvent>);

    /// Whether the receiver is behind (its queue is long): sessions then stop
    /// reading from their hubs until it is not, which bounds memory.
    fn congested(&self) -> bool {
        false
    }

    /// Whether someone wants to see raw lines of `hub` before the session
    /// processes them (and may consume them).
    fn wants_raw(&self, _hub: HubId) -> bool {
        false
    }

    /// Shows raw lines (as received, hub charset) before they are processed.
    /// The receiver must answer with a [`HubCommand::RawVerdict`] for `batch`
    /// sent to the hub's job; the session waits for it (at most a few
    /// seconds) before reading on, so that lines keep their order.
    fn filter_raw(&self, _hub: HubId, _batch: u64, _lines: Vec<Box<[u8]>>) {}

    /// Whether the receiver answers [`HubEvent::Redirect`] with a
    /// [`HubCommand::RedirectVerdict`]; when false the session applies its
    /// redirect policy itself.
    fn decides_redirects(&self) -> bool {
        false
    }
}

/// A sink that drops every event (hubs driven from Rust alone, tests).
#[derive(Debug, Default, Clone, Copy)]
pub struct NullSink;

impl HubSink for NullSink {
    fn deliver(&self, _hub: HubId, _events: Vec<HubEvent>) {}
}

// ----- searches --------------------------------------------------------------

/// The kind of file searched for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FileType {
    /// Anything.
    #[default]
    Any,
    /// Audio files.
    Audio,
    /// Archives.
    Compressed,
    /// Documents.
    Document,
    /// Executables.
    Executable,
    /// Pictures.
    Picture,
    /// Videos.
    Video,
    /// Folders.
    Folder,
    /// A TTH search.
    Tth,
    /// Another NMDC type code (10 to 13 exist in the wild).
    Other(u8),
}

impl FileType {
    const NAMES: [(&'static str, FileType); 9] = [
        ("any", FileType::Any),
        ("audio", FileType::Audio),
        ("compressed", FileType::Compressed),
        ("document", FileType::Document),
        ("executable", FileType::Executable),
        ("picture", FileType::Picture),
        ("video", FileType::Video),
        ("folder", FileType::Folder),
        ("tth", FileType::Tth),
    ];

    /// The NMDC type code (1 any ... 8 folder, 9 TTH).
    pub fn nmdc_code(self) -> u8 {
        match self {
            FileType::Any => 1,
            FileType::Audio => 2,
            FileType::Compressed => 3,
            FileType::Document => 4,
            FileType::Executable => 5,
            FileType::Picture => 6,
            FileType::Video => 7,
            FileType::Folder => 8,
            FileType::Tth => 9,
            FileType::Other(n) => n,
        }
    }

    /// The type of an NMDC code.
    pub fn from_nmdc(code: u8) -> FileType {
        match code {
            1 => FileType::Any,
            2 => FileType::Audio,
            3 => FileType::Compressed,
            4 => FileType::Document,
            5 => FileType::Executable,
            6 => FileType::Picture,
            7 => FileType::Video,
            8 => FileType::Folder,
            9 => FileType::Tth,
            n => FileType::Other(n),
        }
    }

    /// The name scripts use (`"audio"`); `None` for [`FileType::Other`].
    pub fn name(self) -> Option<&'static str> {
        FileType::NAMES.iter().find(|(_, t)| *t == self).map(|(n, _)| *n)
    }

    /// The type a script names.
    pub fn from_name(name: &str) -> Option<FileType> {
        FileType::NAMES.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, t)| *t)
    }
}

/// A search, protocol-neutral. NMDC can express only part of it (words, one
/// size bound, a type, a TTH); the rest is applied to results as they come
/// ([`SearchQuery::matches`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SearchQuery {
    /// Words that must all appear in the path (case-insensitive).
    pub include: Vec<String>,
    /// Words that must not appear.
    pub exclude: Vec<String>,
    /// File extensions, one of which the name must have (without the dot).
    pub extensions: Vec<String>,
    /// A TTH: only this file.
    pub tth: Option<Tth>,
    /// At least this many bytes.
    pub min_size: Option<u64>,
    /// At most this many bytes.
    pub max_size: Option<u64>,
    /// Exactly this many bytes.
    pub size: Option<u64>,
    /// The kind of file.
    pub file_type: FileType,
}

impl SearchQuery {
    /// A search for words (split on spaces).
    pub fn words(text: &str) -> SearchQuery {
        SearchQuery {
            include: text.split_whitespace().map(str::to_string).collect(),
            ..SearchQuery::default()
        }
    }

    /// A search for one TTH.
    pub fn for_tth(tth: Tth) -> SearchQuery {
        SearchQuery { tth: Some(tth), file_type: FileType::Tth, ..SearchQuery::default() }
    }

    /// The words, joined by spaces.
    pub fn text(&self) -> String {
        self.include.join(" ")
    }

    /// Whether a result answers this search, by the one matcher of
    /// [`crate::search`] (the share index's rules): same TTH for a TTH
    /// search; otherwise every term in the path, no excluded term, the size
    /// within the bounds, the type's and the listed extensions, folders only
    /// for untyped, unsized searches.
    pub fn matches(&self, hit: &SearchHit) -> bool {
        share_index::Query::from(self).matches(&hit.path, hit.size, hit.tth.as_ref())
    }
}

/// The one conversion of an incoming search to a search of our share. The
/// limit is the active one ([`MAX_RESULTS_ACTIVE`]); [`share_answers`] sets
/// the passive one where it applies. A TTH search keeps only its TTH (the
/// index ignores the rest); types the share does not group (`Tth`,
/// `Other`) search any file.
impl From<&SearchQuery> for share_index::Query {
    fn from(q: &SearchQuery) -> share_index::Query {
        use share_index::FileType as Group;
        let file_type = match q.file_type {
            FileType::Any | FileType::Tth | FileType::Other(_) => Group::Any,
            FileType::Audio => Group::Audio,
            FileType::Compressed => Group::Compressed,
            FileType::Document => Group::Document,
            FileType::Executable => Group::Executable,
            FileType::Picture => Group::Picture,
            FileType::Video => Group::Video,
            FileType::Folder => Group::Folder,
        };
        share_index::Query {
            tth: q.tth,
            include: q.include.clone(),
            exclude: q.exclude.clone(),
            min_size: q.min_size,
            max_size: q.max_size,
            size: q.size,
            file_type,
            extensions: q
                .extensions
                .iter()
                .map(|e| e.trim_start_matches('.').to_string())
                .collect(),
        }
    }
}

/// Our answers to someone's search: the running share service's hits
/// (after its answer filter), at most [`MAX_RESULTS_ACTIVE`] for an active
/// searcher (results by UDP) and [`MAX_RESULTS_PASSIVE`] for a passive one
/// (results through the hub). None without a share service.
pub(crate) fn share_answers(
    hubs: &Hubs,
    query: &SearchQuery,
    active: bool,
) -> Vec<crate::share::index::SearchHit> {
    let Some(share) = hubs.share() else { return Vec::new() };
    let q = share_index::Query::from(query);
    share.answer(&q, if active { MAX_RESULTS_ACTIVE } else { MAX_RESULTS_PASSIVE })
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
    let weak = Rc::downgrade(&hubs.inner);
    share.subscribe(move |e| {
        if let (ShareEvent::Updated(summary), Some(inner)) = (e, weak.upgrade()) {
            set(&rt, &Hubs { inner }, summary.size, summary.files);
        }
    });
}

/// A search result, protocol-neutral.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchHit {
    /// The user who has it.
    pub nick: String,
    /// The path in their share, `/`-separated.
    pub path: String,
    /// The size; `None` for a folder.
    pub size: Option<u64>,
    /// The TTH, for a file whose result carries one.
    pub tth: Option<Tth>,
    /// Their free upload slots.
    pub free_slots: u32,
    /// Their upload slots.
    pub slots: u32,
    /// The hub name the result gives (NMDC; empty when it gives a TTH).
    pub hub_name: String,
    /// How it arrived.
    pub via: Via,
    /// The line.
    pub raw: Box<[u8]>,
}

impl SearchHit {
    /// Whether it is a folder.
    pub fn is_dir(&self) -> bool {
        self.size.is_none()
    }

    /// The last component of the path.
    pub fn name(&self) -> &str {
        let p = self.path.trim_end_matches('/');
        p.rsplit('/').next().unwrap_or(p)
    }
}

// ----- the registry ----------------------------------------------------------

/// The UDP listener shared by the hubs of one worker.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UdpEndpoint {
    pub(crate) job: JobId,
    pub(crate) addr: SocketAddr,
}

struct HubsInner {
    hubs: RefCell<BTreeMap<HubId, Rc<RefCell<HubInfo>>>>,
    identity: RefCell<Identity>,
    /// The shared UDP listener; `Some(None)` after binding failed (not retried).
    udp: RefCell<Option<Option<UdpEndpoint>>>,
    /// Our keys (PID, CID, certificate), given by the composition root.
    me: RefCell<Option<Me>>,
    /// The share, once [`follow_share`] was called.
    share: RefCell<Option<ShareService>>,
    /// The send-only UDP sockets of passive mode (IPv4, IPv6), made on
    /// first use (see `udp::send`).
    senders: RefCell<[Option<std::net::UdpSocket>; 2]>,
    /// Who handles connection requests (the peer layer), when set.
    peer_handler: RefCell<Option<PeerHandler>>,
    /// Free upload slots as the peer layer counts them; `None`: all of
    /// [`Identity::slots`].
    free_slots: std::cell::Cell<Option<u32>>,
}

/// The peer layer's handler of [`PeerRequest`]s (see [`Hubs::set_peer_handler`]).
pub type PeerHandler = Rc<dyn Fn(&Runtime, PeerRequest)>;

/// A connection request from a user, as a hub session hands it to the peer
/// layer: everything needed to connect (or to answer with a request of our
/// own) without asking the session again.
#[derive(Debug, Clone)]
pub struct PeerRequest {
    /// The hub it came through.
    pub hub: HubId,
    /// The hub's address (for `Ref=`, logs and events).
    pub hub_url: String,
    /// An ADC hub (else NMDC).
    pub adc: bool,
    /// Our nick on that hub.
    pub my_nick: String,
    /// The hub's charset (NMDC).
    pub charset: &'static encoding_rs::Encoding,
    /// The user, when the request names them (NMDC `$ConnectToMe` names
    /// only us).
    pub nick: Option<String>,
    /// The user's CID (ADC).
    pub cid: Option<String>,
    /// Where to connect: host (or IP) and port, for a direct request.
    pub address: Option<(String, u16)>,
    /// The connection must use TLS.
    pub tls: bool,
    /// The ADC token to copy into our `CINF` / answering `DCTM`.
    pub token: Option<String>,
    /// A passive user asks us to send a connection request.
    pub reverse: bool,
    /// The user's certificate keyprint from its INF `KP` (`SHA256/...`).
    pub keyprint: Option<String>,
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
                senders: RefCell::new([None, None]),
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

    /// Our keys: those given with [`Hubs::set_me`], else (hubs driven
    /// without a client) those of the default data folder.
    pub fn me(&self) -> Me {
        if let Some(me) = self.inner.me.borrow().as_ref() {
            return me.clone();
        }
        let dir = crate::config::paths::default_data_dir().ok();
        let me = Me::load(dir.as_deref());
        *self.inner.me.borrow_mut() = Some(me.clone());
        me
    }

    /// Our TLS context for `nmdcs://` and `adcs://` hubs (see [`Me::tls`]).
    pub fn tls_context(&self) -> Result<crate::tls::TlsContext, String> {
        self.me().tls()
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
        let started = udp::start(rt, self.clone(), bind);
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(path: &str, size: Option<u64>) -> SearchHit {
        SearchHit {
            nick: "n".into(),
            path: path.into(),
            size,
            tth: None,
            free_slots: 1,
            slots: 1,
            hub_name: String::new(),
            via: Via::Hub,
            raw: Box::new([]),
        }
    }

    #[test]
    fn the_user_cap_is_a_setting() {
        let mut config = crate::config::Config::embedded_default();
        assert_eq!(Identity::from_config(&config).max_users, MAX_USERS);
        config.max_users = 5000;
        assert_eq!(Identity::from_config(&config).max_users, 5000);
        let mut info =
            HubInfo::new(JobId::new(1, 1), "adc://x:1", Protocol::Adc, "me", encoding_rs::UTF_8, 2);
        for n in ["a", "b", "c"] {
            info.users.insert(User::named(n));
        }
        assert_eq!((info.users.len(), info.users.refused()), (2, 1));
    }

    #[test]
    fn queries_match_results() {
        let q = SearchQuery::words("Foo bar");
        assert!(q.matches(&hit("music/FOO/bar baz.mp3", Some(1))));
        assert!(!q.matches(&hit("music/foo.mp3", Some(1))));
        let q = SearchQuery { exclude: vec!["live".into()], ..SearchQuery::words("foo") };
        assert!(!q.matches(&hit("foo live.mp3", Some(1))));
        let q = SearchQuery { min_size: Some(10), max_size: Some(20), ..SearchQuery::words("f") };
        assert!(q.matches(&hit("f", Some(15))));
        assert!(!q.matches(&hit("f", Some(25))));
        assert!(!q.matches(&hit("f", Some(5))));
        assert!(!q.matches(&hit("f", None)));
        let q = SearchQuery { extensions: vec!["mp3".into()], ..SearchQuery::words("a") };
        assert!(q.matches(&hit("a/b.MP3", Some(1))));
        assert!(!q.matches(&hit("a/bmp3", Some(1))));
        // The type's extension group applies to results too (one matcher).
        let q = SearchQuery { file_type: FileType::Audio, ..SearchQuery::words("a") };
        assert!(q.matches(&hit("a/b.flac", Some(1))));
        assert!(!q.matches(&hit("a/b.txt", Some(1))));
        let q = SearchQuery { file_type: FileType::Folder, ..SearchQuery::words("a") };
        assert!(q.matches(&hit("a/dir", None)));
        assert!(!q.matches(&hit("a/file", Some(1))));
        let tth: Tth = "LWPNACQDBZRYXW3VHJVCJ64QBZNGHOHHHZWCLNQ".parse().unwrap();
        let q = SearchQuery::for_tth(tth);
        assert!(q.matches(&SearchHit { tth: Some(tth), ..hit("x", Some(0)) }));
        assert!(!q.matches(&hit("x", Some(0))));
    }

    #[test]
    fn file_types() {
        for code in 1..=9 {
            let t = FileType::from_nmdc(code);
            assert_eq!(t.nmdc_code(), code);
            assert_eq!(FileType::from_name(t.name().unwrap()), Some(t));
        }
        assert_eq!(FileType::from_nmdc(12), FileType::Other(12));
        assert_eq!(FileType::Other(12).name(), None);
        assert_eq!(FileType::from_name("VIDEO"), Some(FileType::Video));
    }

    #[test]
    fn queries_convert_to_share_queries() {
        use share_index::FileType as Group;
        let q = SearchQuery {
            include: vec!["beatles".into(), "help".into()],
            exclude: vec!["live".into()],
            extensions: vec![".MP3".into(), "flac".into()],
            min_size: Some(10),
            max_size: Some(20),
            size: Some(15),
            file_type: FileType::Audio,
            ..SearchQuery::default()
        };
        let s = share_index::Query::from(&q);
        assert_eq!(
            s,
            share_index::Query {
                tth: None,
                include: vec!["beatles".into(), "help".into()],
                exclude: vec!["live".into()],
                min_size: Some(10),
                max_size: Some(20),
                size: Some(15),
                file_type: Group::Audio,
                extensions: vec!["MP3".into(), "flac".into()],
            }
        );
        let types = [
            (FileType::Any, Group::Any),
            (FileType::Compressed, Group::Compressed),
            (FileType::Document, Group::Document),
            (FileType::Executable, Group::Executable),
            (FileType::Picture, Group::Picture),
            (FileType::Video, Group::Video),
            (FileType::Folder, Group::Folder),
            (FileType::Tth, Group::Any),
            (FileType::Other(12), Group::Any),
        ];
        for (t, g) in types {
            let q = SearchQuery { file_type: t, ..SearchQuery::words("x") };
            assert_eq!(share_index::Query::from(&q).file_type, g, "{t:?}");
        }
        let tth: Tth = "LWPNACQDBZRYXW3VHJVCJ64QBZNGHOHHHZWCLNQ".parse().unwrap();
        let s = share_index::Query::from(&SearchQuery::for_tth(tth));
        assert_eq!((s.tth, s.file_type, s.include.len()), (Some(tth), Group::Any, 0));
    }
}
