//! The bot test kit behind `dclua test`: Lua tests that drive a bot against
//! a scripted hub on a virtual clock, in milliseconds.
//!
//! | piece | owns | must not |
//! |---|---|---|
//! | [`hub`] | a scripted NMDC or ADC hub: the wire both ways, records, transcript | know Lua |
//! | [`lua`] | `dctest` and `expect` in a test file's state; waits of one test | run the pool |
//! | [`run`](mod@run) | discovery, a fresh client per test, settling, the clock, the report | know a protocol |
//!
//! The client under test is the real one, built by the composition root
//! ([`crate::client::Client::start`]) and connected over loopback TCP to the
//! scripted hub, so a bot that passes here meets the same session code on
//! a real hub. Only time is different: the pool runs on a
//! [`VirtualClock`](crate::runtime::VirtualClock) that the runner moves to
//! the next timer whenever nothing else can happen. `docs/TESTKIT.md` has
//! the design; the guide's chapter the use.
//!
//! Imports run one way: `run` → `lua` → `hub`.

pub mod hub;
pub mod lua;
pub mod run;

pub use hub::{ScriptedHub, Sent, UserSpec};
pub use run::{discover, run, RunOptions, Summary};
