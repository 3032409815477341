//! The Lua host: every behaviour of the client driven from Lua.
//!
//! - [`host`]: Lua states (one per script), coroutine jobs, events, timers,
//!   script loading and unloading, the console's evaluation.
//! - [`api`]: the `dc` API — its one description (which generates the LuaLS
//!   stubs, completion and help) and the registration of its Rust side.
//! - `prelude.lua`: the Lua side — waiting functions as thin wrappers that
//!   yield requests, handles, and the coroutine functions that let requests
//!   pass through a script's own coroutines.
//! - [`hub_api`]: hubs in Lua — `dc.connect`, `dc.hubs`, `dc.search`,
//!   `dc.Hub` objects, and the sink that turns hub events into Lua events.
//! - [`value`]: plain data crossing between states.
//! - [`share_api`]: `dc.share`, `dc.tth` and the share events.
//! - [`pattern`]: Lua patterns with a step budget (`string.find` and co. for
//!   untrusted scripts).
//!
//! This module depends on the runtime and on protocol-neutral session handles,
//! never on codec internals. See `lua-api/README.md` for the user's guide.

pub mod api;
pub mod capability;
pub mod download_api;
pub mod host;
pub mod hub_api;
pub mod pattern;
pub mod peer_api;
pub mod share_api;
pub mod store_api;
pub mod value;
pub(crate) mod watchdog;

pub use host::{
    AsyncCall, AsyncHandler, ChunkOutcome, ConsoleControl, Event, HostHooks, HostOptions, LuaHost,
    Script, ScriptId,
};
pub use value::Value;
