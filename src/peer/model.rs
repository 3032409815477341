//! The peer layer's vocabulary: its options and limits, what the download
//! side plugs in ([`DownloadSide`], [`Fetch`]), the users and uploads it
//! reports, and the slot policy.
//!
//! Below the service and the connection jobs, which both use it; it starts
//! nothing and holds no state.

use std::net::IpAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::hub::{ConnectMode, HubId};
use crate::runtime::JobId;
use crate::transfer::slots::ConnKey;

use super::session::{Refused, Request, Sending};

/// The download side as the peer layer sees it (the `download` module
/// implements it); called on the worker thread, never re-entered.
pub trait DownloadSide {
    /// Whether we want to download from `user` on a connection being set
    /// up. `token`: the ADC token of the connection (ours, when we asked).
    fn wants(&self, user: &PeerUser, token: Option<&str>) -> bool;
    /// The next thing to fetch on a ready download connection `conn` (over
    /// TLS or not); `None` when there is nothing (the connection then ends).
    fn next(
        &self,
        conn: ConnKey,
        user: &PeerUser,
        tls: bool,
        now: Instant,
    ) -> Option<Box<dyn Fetch>>;
    /// How many of `want` bytes may be read now under the download limit,
    /// and how long to wait before the next read: when none may be read,
    /// until some may; after a grant under a limit, the grant's own pace
    /// (so that connections take turns, see
    /// [`TokenBucket::grant`](crate::transfer::limit::TokenBucket::grant)).
    fn budget(&self, want: usize, now: Instant) -> (usize, Duration);
    /// Gives back bytes of a budget that were not read.
    fn give_back(&self, bytes: usize);
    /// A download connection with `user` ended (after its last fetch was
    /// finished or failed), for the reason given.
    fn ended(&self, conn: ConnKey, user: &PeerUser, why: &str, now: Instant);
}

/// One request of a download connection: what to ask, and where the bytes
/// go. The connection calls exactly one of `finish`, `refused`, `failed`.
pub trait Fetch {
    /// The request to send.
    fn request(&self) -> Request;
    /// The peer's header: `Ok` to read its bytes raw, or why not (the
    /// connection then ends).
    fn accept(&mut self, sending: &Sending) -> Result<(), FetchError>;
    /// Whether more bytes may be read now. `Ok(false)`: the fetch's work is
    /// behind (its bytes wait for the helper threads); it wakes `job` when
    /// there is room again, and the connection leaves the socket alone
    /// meanwhile. An error (a block that failed its leaf hash, a disk error,
    /// found after the bytes were taken) ends the connection.
    fn ready(&mut self, _job: JobId) -> Result<bool, FetchError> {
        Ok(true)
    }
    /// Bytes as they arrive; an error (a block that fails its leaf hash, a
    /// disk error) ends the connection.
    fn data(&mut self, bytes: &[u8], now: Instant) -> Result<(), FetchError>;
    /// Every byte the header announced arrived.
    fn finish(self: Box<Self>, now: Instant);
    /// The peer refused the request.
    fn refused(self: Box<Self>, why: &Refused);
    /// The connection failed before the data was complete.
    fn failed(self: Box<Self>, why: &str);
}

/// Why a [`Fetch`] ends its download connection: the peer's answer does
/// not fit what was asked, or the download side stopped the fetch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The peer's header for a file segment is not the segment asked for.
    #[error("the peer answered {kind} {identifier} from {start} ({bytes} bytes), we asked for {asked} bytes from {from}")]
    WrongSegment {
        /// The namespace answered (`file`...).
        kind: String,
        /// The identifier answered.
        identifier: String,
        /// The first byte answered.
        start: u64,
        /// The bytes announced.
        bytes: u64,
        /// The bytes asked for.
        asked: u64,
        /// The first byte asked for.
        from: u64,
    },
    /// The peer's header for TTH leaves is not leaves we can take.
    #[error("the peer answered our tthl request with {kind} {identifier} ({bytes} bytes)")]
    WrongLeaves {
        /// The namespace answered.
        kind: String,
        /// The identifier answered.
        identifier: String,
        /// The bytes announced.
        bytes: u64,
    },
    /// The peer announced a file list over the limit.
    #[error("the peer's file list is {bytes} bytes, more than the {limit} accepted")]
    ListTooLarge {
        /// The bytes announced.
        bytes: u64,
        /// The limit.
        limit: u64,
    },
    /// The peer sent more than its header announced.
    #[error("the peer sent more {what} than it announced")]
    MoreThanAnnounced {
        /// What was being read: `"leaves"`, `"of its list"`.
        what: &'static str,
    },
    /// The download side took the segment back (another source has it, the
    /// source was dropped, the item was cancelled).
    #[error("this segment was taken back")]
    TakenBack,
    /// The download side stopped the fetch (a block failed its leaf hash, a
    /// write failed); the reason as it gave it.
    #[error("{0}")]
    Stopped(String),
}

/// How long an expected connection may take to arrive.
pub const EXPECT_TIMEOUT: Duration = Duration::from_secs(60);
/// Peer connections open at once, at most.
pub const MAX_CONNECTIONS: usize = 200;
/// Expected connections at once, at most.
pub const MAX_EXPECTED: usize = 500;
/// Accepted connections from one address still in their handshake, at
/// most: one address opening thousands cannot crowd out the others.
pub const MAX_PENDING_PER_ADDRESS: u32 = 8;

/// How the peer layer is set up (from the settings).
#[derive(Debug, Clone)]
pub struct PeerOptions {
    /// Active (we listen) or passive.
    pub mode: ConnectMode,
    /// The local address the listeners bind.
    pub listen_address: IpAddr,
    /// The plain TCP port; 0 = any free port.
    pub tcp_port: u16,
    /// The TLS port; 0 = any free port.
    pub tls_port: u16,
    /// Upload slots.
    pub slots: u32,
    /// Upload bandwidth limit in bytes per second; 0 = none.
    pub upload_limit: u64,
    /// Mini slots.
    pub mini_slots: u32,
    /// TLS connections offered (a TLS port in active mode) and accepted.
    pub tls: bool,
}

impl Default for PeerOptions {
    fn default() -> Self {
        PeerOptions {
            mode: ConnectMode::Passive,
            listen_address: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            tcp_port: 0,
            tls_port: 0,
            slots: 3,
            upload_limit: 0,
            mini_slots: crate::transfer::slots::MINI_SLOTS,
            tls: true,
        }
    }
}

impl PeerOptions {
    /// The options our identity carries (from the configuration).
    pub fn from_identity(id: &crate::hub::Identity) -> PeerOptions {
        PeerOptions {
            mode: id.mode,
            listen_address: id.listen_address,
            tcp_port: id.tcp_port,
            tls_port: id.tls_port,
            slots: id.slots,
            upload_limit: id.upload_limit,
            mini_slots: id.mini_slots,
            tls: id.tls_transfers,
        }
    }
}

/// The deadlines of peer connections (see `conn`); tests shorten them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// From connect or accept to the end of the handshake.
    pub handshake: Duration,
    /// Without a request once ready.
    pub idle: Duration,
    /// The slow-peer window while sending.
    pub check_every: Duration,
    /// The least a downloading peer must read per second, on average over a
    /// window (when the upload limit did not hold us back).
    pub min_rate: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            handshake: Duration::from_secs(30),
            idle: Duration::from_secs(120),
            check_every: Duration::from_secs(30),
            min_rate: 1024,
        }
    }
}

/// Who is at the other end of a peer connection, once known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerUser {
    /// The hub the connection belongs to.
    pub hub: HubId,
    /// That hub's address.
    pub hub_url: String,
    /// The peer's nick.
    pub nick: String,
    /// The peer's CID (ADC).
    pub cid: Option<String>,
}

impl PeerUser {
    /// The key slots are granted under: the CID, else hub and nick.
    pub fn slot_key(&self) -> String {
        match &self.cid {
            Some(cid) => cid.clone(),
            None => format!("{}\n{}", self.hub_url, self.nick),
        }
    }
}

/// Why asking a user for a download connection
/// ([`Peers::ask_connection`](super::Peers::ask_connection)) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AskError {
    /// The hub the user is on is gone.
    #[error("the hub is gone")]
    HubGone,
    /// Too many connections are expected already.
    #[error("already {MAX_EXPECTED} connections expected")]
    TooManyExpected,
    /// The user and we are both passive.
    #[error(
        "{nick} on {hub_url} is passive and so are we: no connection is possible between two passive users"
    )]
    BothPassive {
        /// The user's nick.
        nick: String,
        /// The hub's address.
        hub_url: String,
    },
}

/// A connection the download side asks for ([`Peers::ask_connection`](super::Peers::ask_connection)).
#[derive(Debug, Clone)]
pub struct ConnectionAsk {
    /// The hub the user is on.
    pub hub: HubId,
    /// The user's nick there.
    pub nick: String,
    /// The user's CID (ADC).
    pub cid: Option<String>,
    /// The token of the request (ADC; kept to recognise the connection).
    pub token: String,
    /// The user is active (can be connected to).
    pub user_active: bool,
    /// The user can take a TLS connection (ADC `ADC0`/`ADCS` in `SU`).
    pub tls: bool,
    /// The user's keyprint (INF `KP`).
    pub keyprint: Option<String>,
}

/// A running upload, as `dc.uploads()` lists it.
#[derive(Debug, Clone)]
pub struct UploadInfo {
    /// The peer.
    pub user: PeerUser,
    /// The share path, `files.xml.bz2` or a list folder.
    pub file: String,
    /// The first byte of this request.
    pub start: u64,
    /// Bytes of this request.
    pub bytes: u64,
    /// Bytes sent so far.
    pub sent: u64,
    /// When it started (pool clock).
    pub started: Instant,
    /// Over TLS.
    pub tls: bool,
    /// Compressed with zlib (ZLIG), as the peer asked.
    pub compressed: bool,
}

/// What subscribers hear of uploads.
#[derive(Debug, Clone)]
pub enum UploadEvent {
    /// A request is being served.
    Started(UploadInfo),
    /// It was sent completely.
    Finished {
        /// The upload.
        info: UploadInfo,
        /// How long it took.
        seconds: f64,
    },
    /// It ended before it was complete, or could not start.
    Failed {
        /// The peer, when known.
        user: Option<PeerUser>,
        /// What was asked for (empty before any request).
        file: String,
        /// Bytes sent before the failure.
        bytes: u64,
        /// How long it ran.
        seconds: f64,
        /// Why.
        reason: String,
    },
}

/// What the slot policy is asked.
#[derive(Debug, Clone)]
pub struct SlotAsk {
    /// The peer.
    pub user: PeerUser,
    /// The file asked for.
    pub file: String,
    /// Its size.
    pub size: u64,
    /// Whether a normal slot is free right now.
    pub free: bool,
}

/// What the slot policy decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotVerdict {
    /// The usual rules.
    Default,
    /// A slot beyond the count for this request.
    Grant,
    /// Refused, as if every slot were taken.
    Refuse,
}

/// The slot policy (a script's `dc.share.slot_policy`). Called without
/// waiting; an error in it must come back as [`SlotVerdict::Default`].
pub type SlotPolicy = Rc<dyn Fn(&SlotAsk) -> SlotVerdict>;
