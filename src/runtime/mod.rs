//! The job runtime: cooperative jobs polled by a pool on one worker thread.
//!
//! This is dclua's foundation, inherited from pyDClib: every network activity
//! — a hub session, a transfer, a Lua coroutine — is a [`Job`] that does its
//! work a slice at a time. A [`JobPool`] owns the jobs and polls the ready
//! ones; the [`Worker`] is the one networking thread that waits in
//! `mio::Poll` and runs the pool.
//!
//! | piece | owns | must not |
//! |---|---|---|
//! | [`Job`], [`Step`] | the contract (`poll`, `is_alive`, `stop`) | block |
//! | [`JobPool`], [`Context`], [`Runtime`] | jobs, wake reasons, timers, tokens | do I/O |
//! | [`Clock`], [`VirtualClock`] | the one "now" of timers and timeouts | sleep |
//! | [`Reactor`] | one turn: `mio::Poll`, the inbox, one pass | loop, or know any protocol |
//! | [`Worker`], [`WorkerHandle`] | the thread that runs turns; the way in from other threads | know any protocol |
//! | [`helpers::HelperPool`] | CPU-heavy work off the worker | touch jobs |
//!
//! A job is polled when one of its wake reasons occurs — readiness of a source
//! it registered, one of its timers, a message or helper result for it, or its
//! own request to run again — and never otherwise: an idle process uses no CPU.
//! Read `docs/RUNTIME.md` for the invariants in one place.
//!
//! This file only declares the modules and re-exports. Imports run one way:
//! `worker` → `reactor` → `handle` → `pool` (the job contract, the pool, the runtime handle and the
//! context, which name each other) → `helpers`, `timer` → `ids`, `clock`.

mod clock;
mod handle;
pub mod helpers;
mod ids;
mod pool;
mod reactor;
mod timer;
mod worker;

pub use clock::{Clock, VirtualClock};
pub use handle::{WorkerGone, WorkerHandle};
pub use ids::{JobId, TaskId};
pub use pool::{Context, FnJob, IoEvent, Job, JobPool, Message, Runtime, Step, TaskDone};
pub use reactor::{Reactor, Turn};
pub use timer::TimerId;
pub use worker::{Worker, WorkerConfig};
