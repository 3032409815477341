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
//! Layers, from the bottom (dependencies run downward, with no import circle
//! anywhere: `tests/layers.rs` checks it):
//!
//! | module | owns | must not |
//! |---|---|---|
//! | [`proto`] | pure codecs: NMDC, ADC, TTH | do I/O or read clocks |
//! | [`tls`] | certificates, keyprints, trust on first use | touch sockets |
//! | [`runtime`] | jobs, the pool, timers, the clock, one loop turn ([`runtime::Reactor`]), the worker, helper threads | know any protocol or socket type |
//! | [`net`] | the connection lifecycle: resolve, connect/accept, TLS, framing, close | interpret frames |
//! | [`identity`], [`address`], [`search`] | our PID/CID/certificate; the hub address; the search model | do I/O (but the PID file) |
//! | [`share`] | hashing, the hash store, the share tree, file lists, the index, the share service | know hubs |
//! | [`transfer`] | the download queue, placement, verification, segments, slots, the bandwidth limit | open sockets |
//! | [`hub`] | hub sessions (NMDC, ADC), the protocol-neutral hub model and registry | call Lua |
//! | [`peer`] | client-client connections: listeners, connection requests, uploads, the download side's connections | open files outside the share service |
//! | [`download`] | the download queue in use: who to connect to, what each connection fetches, verification, the final move, file lists | parse frames or touch sockets |
//! | [`lua`] | the scripting host and the `dc` API | parse protocol lines |
//! | [`client`] | the composition root: every service built once and passed on | implement a service |
//! | [`config`] | the configuration script and its typed, validated result | start anything |
//! | [`sandbox`] | what each Lua state may reach: the configuration's, untrusted and trusted scripts' policies, the step-limited patterns | depend on anything but mlua |
//! | [`console`] | the interactive and piped consoles | run Lua itself |
//! | [`testkit`] | `dclua test`: scripted hubs, `dctest`/`expect`, a runner that settles a client and moves its virtual clock | be used by the client itself |
//! | [`control`] | the control socket: consoles attached to a `dclua daemon` (`dclua attach`), owner-only | run Lua itself, touch the terminal |
//! | [`cli`], [`app`], [`logging`], [`instance`], [`text`] | the process: command line, signals, logs, the data-folder lock, neutralised text | hold protocol state |
//!
//! `docs/ARCHITECTURE.md` is the map; `docs/RUNTIME.md` lists the runtime's
//! invariants.

pub mod address;
pub mod app;
pub mod cli;
pub mod client;
pub mod config;
pub mod console;
pub mod control;
pub mod download;
#[doc(hidden)]
pub mod fuzzing;
pub mod hub;
pub mod identity;
pub mod instance;
pub mod logging;
pub mod lua;
pub mod net;
pub mod peer;
pub mod proto;
pub mod runtime;
pub mod sandbox;
pub mod search;
pub mod share;
pub mod sqlite;
pub mod testkit;
pub mod text;
pub mod tls;
pub mod transfer;
