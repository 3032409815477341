//! dclua: a Direct Connect (NMDC and ADC) client programmable in Lua.
//!
//! # Brief overview
//!
//! Every network activity runs as a cooperative [`runtime::Job`]: a hub
//! session, a transfer, a Lua coroutine. A [`runtime::JobPool`] owns the jobs
//! and polls those that have something to do; the [`runtime::Worker`] is the
//! one networking thread that waits in `mio::Poll` and runs the pool. CPU-heavy
//! work (hashing, file lists) goes to [`runtime::helpers::HelperPool`].
//!
//! Layers, from the bottom (dependencies run downward only):
//!
//! | module | owns | must not |
//! |---|---|---|
//! | [`proto`] | pure codecs: NMDC, ADC, TTH | do I/O or read clocks |
//! | [`runtime`] | jobs, the pool, the worker, timers, sockets | know any protocol |
//! | [`tls`] | certificates, keyprints, trust on first use, hub addresses | touch sockets |
//! | [`hub`] | hub sessions (NMDC), the protocol-neutral hub model and registry | call Lua |
//! | [`config`] | the configuration script and its typed, validated result | start anything |
//! | [`cli`], [`app`], [`logging`] | the process: command line, signals, logs | hold protocol state |
//!
//! `docs/ARCHITECTURE.md` is the map; `docs/RUNTIME.md` lists the runtime's
//! invariants.

pub mod address;
pub mod app;
pub mod cli;
pub mod client;
pub mod config;
pub mod console;
#[doc(hidden)]
pub mod fuzzing;
pub mod hub;
pub mod identity;
pub mod instance;
pub mod logging;
pub mod lua;
pub mod net;
pub mod proto;
pub mod runtime;
pub mod search;
pub mod share;
pub mod text;
pub mod tls;
pub mod transfer;
