//! dclua: a Direct Connect (NMDC and ADC) client programmable in Lua.
//!
//! Every network activity runs as a cooperative [`runtime::Job`] polled by a
//! [`runtime::JobPool`] on one worker thread; Lua coroutines are jobs of the
//! same pool. See `docs/ARCHITECTURE.md` for the map.

pub mod proto;
pub mod runtime;
pub mod share;
