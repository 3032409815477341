//! Client-client connections: the listeners, the connection requests hubs
//! relay, and the upload side (other clients download from us).
//!
//! | module | owns |
//! |---|---|
//! | [`session`] | the C-C protocol of one connection (both protocols, handshake and requests), pure |
//! | [`serve`] | a request turned into bytes of the share to send, or a refusal |
//! | `conn` | the job of one peer connection: dial or accept, TLS, sniffing, streaming with back-pressure and the bandwidth limit |
//! | `listen` | the listener jobs of active mode (plain and TLS ports) |
//! | `model` | the shared vocabulary: options, limits, the download side's traits, upload reports, the slot policy |
//! | `peers` | [`Peers`]' state: expectations, slots, the upload limit, uploads, the waiting line |
//! | `start` | where connections start: the listeners, a relayed request (dial, or expect) |
//!
//! This file only declares the modules and re-exports; imports run one way:
//! `start` → `listen` → `conn` → `peers` → `model` → `session`.
//!
//! [`Peers`] is the service: hub sessions hand it every connection request
//! ([`PeerRequest`](crate::hub::PeerRequest), through
//! [`Hubs::set_peer_handler`](crate::hub::Hubs::set_peer_handler)); it dials the peer,
//! or (a passive peer asking, we active) answers with a request of our own
//! and *expects* the peer on our listener. Every connection is matched to
//! an expectation (hub, nick or CID, token) before anything is served; one
//! that nobody expects, or that comes after [`EXPECT_TIMEOUT`], is closed.
//! It keeps the upload slots, the upload bandwidth limit and the list of
//! running uploads, and tells subscribers (the Lua host, the console) when an
//! upload starts, ends or fails.
//!
//! Decisions, written down:
//! - A connection request must carry an IP address (a hub relays what the
//!   peer said): dclua never resolves a host name a peer chose.
//! - At most [`MAX_CONNECTIONS`] peer connections and [`MAX_EXPECTED`]
//!   expectations at once: a hub that floods `$ConnectToMe` cannot make us
//!   a connection cannon.
//! - Downloads are the [`DownloadSide`]'s (the `download` module): this
//!   layer asks it, when a peer is identified, whether we want something
//!   from it, and then hands the ready connection's requests to the
//!   [`Fetch`]es it gives out. [`Peers::ask_connection`] is how the download
//!   side reaches a user: a `$ConnectToMe`/`DCTM` when we are active (and an
//!   expectation), a `$RevConnectToMe`/`DRCM` when we are passive.
//!
//! Must not: parse frames (that is [`session`]), open share files other than
//! through [`ShareService::resolve`](crate::share::service::ShareService::resolve) (that is [`serve`]), or block the
//! worker (files are read in bounded slices from the job).

pub(crate) mod conn;
pub(crate) mod listen;
mod model;
mod peers;
pub mod serve;
pub mod session;
mod start;

pub use model::{
    AskError, ConnectionAsk, DownloadSide, Fetch, FetchError, PeerOptions, PeerUser, SlotAsk,
    SlotPolicy, SlotVerdict, Timeouts, UploadEvent, UploadInfo, EXPECT_TIMEOUT, MAX_CONNECTIONS,
    MAX_EXPECTED, MAX_PENDING_PER_ADDRESS,
};
pub use peers::{Peers, WAITING_FOR};
