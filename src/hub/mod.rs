//! Hub sessions: the protocol-neutral model every hub protocol reports into,
//! the registry of a worker's hubs, and the session jobs, one driver
//! (`driver`) speaking either dialect ([`nmdc`], [`adc`]).
//!
//! # The parts, bottom up (each depends only on those above it)
//!
//! | module | what it owns |
//! |---|---|
//! | [`users`] | one hub's users, laid out for size (100,000 users in about 25 MB), made from either protocol's user line |
//! | [`model`] | the model: [`HubInfo`], [`Identity`], [`HubParams`], [`HubCommand`] (what others ask a session, sent with [`Runtime::send`](crate::runtime::Runtime::send)), [`HubEvent`] (what a session reports, in batches, through a [`HubSink`]), [`SearchHit`], [`PeerRequest`]; searches are [`crate::search::Query`] |
//! | [`redirect`] | the redirect chain's rules (loops, bounces, limits) |
//! | [`udp`] | the one UDP listener shared by all hubs (active-mode search results in, our results to active searchers out); knows no hub |
//! | [`registry`] | [`Hubs`]: the worker's registry of [`HubInfo`] and our [`Identity`]; sessions write it, Lua reads it synchronously |
//! | `driver` | the session skeleton generic over a `Dialect`: connection, reconnect with backoff and jitter, redirects, keep-alives, login timeout, raw lines, event batching |
//! | [`nmdc`], [`adc`] | the two dialects: framing, login, each frame's meaning, our own information, searches and answers |
//! | [`session`] | the job ([`connect`]), which carries a session across a redirect to the other protocol, and the UDP router |
//!
//! # Rules
//!
//! - Sessions never call Lua and never know about it: they report
//!   [`HubEvent`]s to a [`HubSink`], which the Lua layer implements
//!   (dependencies run downward: `lua` uses `hub`, never the reverse).
//!   They answer searches from the share service
//!   (`Hubs::share_answers`); the answer filter it applies may be a Lua
//!   function, but that is the share service's business.
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
//! - `hub` knows nothing of the configuration: the composition root and
//!   `config` turn settings into an [`Identity`] and [`HubParams`].

pub mod adc;
pub(crate) mod driver;
pub mod model;
pub mod nmdc;
pub mod redirect;
pub mod registry;
pub mod session;
pub mod udp;
pub mod users;

pub use model::{
    ConnectMode, HubCommand, HubError, HubEvent, HubId, HubInfo, HubParams, HubSink, HubState,
    Identity, NullSink, PeerHandler, PeerRequest, Protocol, Role, SearchFrom, SearchHit, Via,
};
pub use registry::{follow_share, Hubs};
pub use session::connect;
pub use users::{
    HubCounts, HubHasher, User, UserList, UserMode, MAX_USERS, MAX_USER_EXTRA, MAX_USER_FIELD,
};
