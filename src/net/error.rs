//! [`ConnError`]: why a connection failed, naming the phase and the address.
//!
//! A leaf: resolving, the socket, TLS and the `$ZOn` reader all report it, so
//! it lives below them and imports nothing of `net`.

use std::io;
use std::net::SocketAddr;

use crate::tls::KeyprintError;

/// Why a connection failed; the message names the phase and the address.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    /// The host name could not be resolved.
    #[error("resolving {host}: {source}")]
    Resolve {
        /// The name.
        host: String,
        /// The resolver's error.
        source: io::Error,
    },
    /// The host name resolved to no address.
    #[error("resolving {host}: the name has no address")]
    NoAddress {
        /// The name.
        host: String,
    },
    /// Connecting failed.
    #[error("connecting to {addr}: {source}")]
    Connect {
        /// Where we tried to connect.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
    /// The peer sent a frame over the limit; the connection was closed.
    #[error(
        "the peer sent a frame longer than {max} bytes without a delimiter; connection closed"
    )]
    FrameTooLarge {
        /// The limit in bytes.
        max: usize,
    },
    /// Reading or writing failed.
    #[error("{op} failed: {source}")]
    Io {
        /// "reading" or "writing".
        op: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// The connection is closed; nothing more can be sent.
    #[error("the connection is closed")]
    Closed,
    /// The peer's certificate was refused by its keyprint (TLS).
    #[error(transparent)]
    Keyprint(#[from] KeyprintError),
    /// The TLS session failed: a handshake error, an alert from the peer, a
    /// bad record.
    #[error("TLS {during} with {peer} failed: {source}{hint}")]
    Tls {
        /// `"handshake"` or `"session"`.
        during: &'static str,
        /// Who the peer is (`host:port` for hubs).
        peer: String,
        /// rustls's reason.
        source: rustls::Error,
        /// A hint for the user, starting with a space, or empty.
        hint: &'static str,
    },
}
