//! The Lua host: every behaviour of the client driven from Lua.
//!
//! Its modules form layers (no module uses one above it):
//!
//! - [`host`]: Lua states (one per script), coroutine jobs, events, timers,
//!   script loading and unloading, the console's evaluation. It knows no
//!   namespace of the API: what it needs from above reaches it through
//!   [`HostApi`], given at construction.
//! - the namespaces, each on the host only (and on a namespace below it):
//!   [`hub_api`], [`share_api`], [`peer_api`], [`download_api`],
//!   [`store_api`], with [`capability`] (what untrusted scripts may not do).
//!   Each describes its part of the API ([`describe`]'s form) next to its
//!   implementation.
//! - [`api`]: the top — composes the namespaces and the core functions into
//!   the `dc` API, builds hosts with it (`LuaHost::new`), and holds its one
//!   description (which generates the LuaLS stubs, completion and help).
//! - `prelude.lua`: the Lua side — waiting functions as thin wrappers that
//!   yield requests, handles, and the coroutine functions that let requests
//!   pass through a script's own coroutines.
//! - [`hub_api`]: hubs in Lua — `dc.connect`, `dc.hubs`, `dc.search`,
//!   `dc.Hub` objects, and the sink that turns hub events into Lua events.
//! - [`value`]: plain data crossing between states.
//! - [`share_api`]: `dc.share`, `dc.tth` and the share events.
//! - [`pattern`]: Lua patterns with a step budget (`string.find` and co. for
//!   untrusted scripts); it lives in [`crate::sandbox`], whose policies say
//!   what each state may reach, and is re-exported here.
//!
//! This module depends on the runtime and on protocol-neutral session handles,
//! never on codec internals. See `lua-api/README.md` for the user's guide.

pub mod api;
pub mod capability;
pub mod describe;
pub mod download_api;
pub mod host;
pub mod hub_api;
pub mod peer_api;
pub mod share_api;
pub mod store_api;
pub mod value;
pub(crate) mod watchdog;

pub use crate::sandbox::pattern;
pub use host::{
    AsyncCall, AsyncHandler, ChunkOutcome, ConsoleControl, Event, HostApi, HostHooks, HostOptions,
    LuaHost, Script, ScriptId,
};
pub use value::Value;
