//! The protocol-neutral model every hub protocol reports into: what a hub
//! is ([`HubInfo`], [`HubState`], [`Role`]), who we are on it
//! ([`Identity`], [`HubParams`]), what others ask a session
//! ([`HubCommand`]), what a session reports ([`HubEvent`] through a
//! [`HubSink`]), results ([`SearchHit`]; searches are [`crate::search`]'s
//! [`Query`]) and
//! the connection requests handed to the peer layer ([`PeerRequest`]).
//!
//! Plain data and one trait: no session, no I/O, no registry. Everything
//! else in `hub` depends on this module; it depends on nothing in `hub` but
//! the user list ([`super::users`]).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use encoding_rs::Encoding;

use super::users::{User, UserList, MAX_USERS};
use crate::proto::tth::Tth;
use crate::runtime::{JobId, Runtime};
use crate::search::Query;

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
    /// A hub as a session registers it when it starts.
    pub(crate) fn new(
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
    /// Shared bytes (0 until sharing is running; [`follow_share`](super::follow_share) keeps it
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
    Search(Query),
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
        query: Query,
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
    /// A result's path in its one form, whatever the protocol: components
    /// joined by `/`, no leading or trailing separator (`music/a.mp3`,
    /// `music/album` for a folder). `sep` is the wire's separator (NMDC `\`,
    /// ADC `/`; ADC paths start with one, ADC folders end with one).
    pub fn path_from_wire(wire: &str, sep: char) -> String {
        wire.split(sep).filter(|c| !c.is_empty()).collect::<Vec<_>>().join("/")
    }

    /// Whether it answers `q`, by the one matcher of [`crate::search`] (the
    /// share index's rules): results that carry no token (NMDC) are
    /// filtered with it.
    pub fn answers(&self, q: &Query) -> bool {
        q.matches(&self.path, self.size, self.tth.as_ref())
    }

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

/// The peer layer's handler of [`PeerRequest`]s (see [`Hubs::set_peer_handler`](super::Hubs::set_peer_handler)).
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
    fn results_are_filtered_by_the_one_matcher() {
        use crate::search::FileType;
        let q = Query::words("Foo bar");
        assert!(hit("music/FOO/bar baz.mp3", Some(1)).answers(&q));
        assert!(!hit("music/foo.mp3", Some(1)).answers(&q));
        let q = Query { exclude: vec!["live".into()], ..Query::words("foo") };
        assert!(!hit("foo live.mp3", Some(1)).answers(&q));
        let q = Query { min_size: Some(10), max_size: Some(20), ..Query::words("f") };
        assert!(hit("f", Some(15)).answers(&q));
        assert!(!hit("f", Some(25)).answers(&q));
        assert!(!hit("f", None).answers(&q));
        let q = Query { extensions: vec!["mp3".into()], ..Query::words("a") };
        assert!(hit("a/b.MP3", Some(1)).answers(&q));
        assert!(!hit("a/bmp3", Some(1)).answers(&q));
        let q = Query { file_type: FileType::Audio, ..Query::words("a") };
        assert!(hit("a/b.flac", Some(1)).answers(&q));
        assert!(!hit("a/b.txt", Some(1)).answers(&q));
        let q = Query { file_type: FileType::Folder, ..Query::words("a") };
        assert!(hit("a/dir", None).answers(&q));
        assert!(!hit("a/file", Some(1)).answers(&q));
        let tth: Tth = "LWPNACQDBZRYXW3VHJVCJ64QBZNGHOHHHZWCLNQ".parse().unwrap();
        let q = Query::for_tth(tth);
        assert!(SearchHit { tth: Some(tth), ..hit("x", Some(0)) }.answers(&q));
        assert!(!hit("x", Some(0)).answers(&q));
    }

    #[test]
    fn result_paths_have_one_form() {
        for (wire, sep) in [("music\\a.mp3", '\\'), ("/music/a.mp3", '/'), ("\\music\\a.mp3", '\\')]
        {
            assert_eq!(SearchHit::path_from_wire(wire, sep), "music/a.mp3", "{wire}");
        }
        assert_eq!(SearchHit::path_from_wire("/music/album/", '/'), "music/album");
        assert_eq!(SearchHit::path_from_wire("music\\album\\", '\\'), "music/album");
    }

    #[test]
    fn a_hub_keeps_at_most_its_cap_of_users() {
        let mut info =
            HubInfo::new(JobId::new(1, 1), "adc://x:1", Protocol::Adc, "me", encoding_rs::UTF_8, 2);
        for n in ["a", "b", "c"] {
            info.users.insert(User::named(n));
        }
        assert_eq!((info.users.len(), info.users.refused()), (2, 1));
    }
}
