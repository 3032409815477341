//! The connection lifecycle every session uses: resolve → connect or accept
//! → TLS with keyprint checks → framing → flush → close with a reason.
//!
//! Hub sessions use it now, and the client-client connections use it too
//! (inbound and outbound, short-lived, raw mode with disk back-pressure).
//! It sits on the runtime (jobs, the pool, readiness) and on `tls`
//! (certificates, keyprints); it interprets no protocol.
//!
//! | piece | owns | must not |
//! |---|---|---|
//! | [`resolve`] | names to addresses, on a helper thread | block the worker |
//! | [`Connection`] | one TCP socket, its buffers, framing and (for TLS) its rustls session | interpret frames |
//! | [`ZonReader`] | the NMDC stream's framing with `$ZOn` inflation | touch the socket beyond reading it |
//! | [`Listener`], [`UdpSocket`] | listening and datagram sockets | know who connects |
//! | [`ConnError`] | why a connection failed: the phase and the real address | hide the OS error |
//!
//! Closing: [`Connection::end`] says how — [`Close::Graceful`] flushes what
//! is queued and shuts the write side down (with a TLS close_notify), for a
//! session that said goodbye; [`Close::Abortive`] drops everything at once,
//! for a peer that broke the protocol or went silent.
//!
//! This file only declares the modules and re-exports; [`ConnError`] lives
//! in a leaf (`error.rs`) that `resolve`, `tls`, `conn` and `zon` all use.

mod conn;
mod error;
pub mod resolve;
mod socket;
mod tls;
mod zon;

pub use conn::{Close, Connection, Framing, ReadStatus, READ_BUDGET};
pub use error::ConnError;
pub use socket::{Listener, UdpSocket, LISTEN_BACKLOG};
pub use zon::{ZonError, ZonReader};
