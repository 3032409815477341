//! TLS for DC: our certificate, keyprints, trust on first use, and the
//! rustls sessions that `net::Connection` carries.
//!
//! DC hubs and clients use self-signed certificates and name them by
//! [`Keyprint`] (`SHA256/<base32>`), so nothing here uses certificate
//! authorities or host-name checks: a server is accepted when its keyprint is
//! the expected one (`adcs://host:port/?kp=...`, or an INF `KP` for
//! client-client), or, without one, the one recorded the first time it was
//! seen ([`TrustStore`]). Handshake signatures are always verified.
//!
//! | piece | owns | must not |
//! |---|---|---|
//! | [`Keyprint`] | the `SHA256/...` form | do I/O |
//! | [`Identity`] | `cert.pem`/`key.pem` in the data folder | talk to the network |
//! | [`TrustStore`] | `trusted_keyprints.toml` | decide what a change means |
//! | [`TlsContext`] | rustls configurations, new [`TlsSession`]s | touch sockets |
//!
//! The byte-level work (handshake driving, records, close_notify) is done by
//! `net::Connection` (`src/net/tls.rs`); a session is handed to
//! [`Connection::connect_tls`](crate::net::Connection::connect_tls) or
//! [`Connection::accepted_tls`](crate::net::Connection::accepted_tls).
//!
//! This file only declares the modules and re-exports: `context` builds on
//! `cert`, `trust` and `verify`, which build on `keyprint`, `error` and
//! `provider`. A hub address reaches [`TlsContext::hub_client`] through the
//! [`CheckedAddress`] trait, so `tls` imports nothing above it.
//!
//! The crypto provider is rustls's `ring` one; TLS 1.2 and 1.3 are enabled
//! (DC++ requires at least 1.2).

mod cert;
mod context;
mod error;
mod keyprint;
mod provider;
mod trust;
mod verify;

pub use cert::{
    Identity, IdentityOrigin, CERT_FILE_NAME, DEFAULT_COMMON_NAME, KEY_FILE_NAME,
    RENEW_MARGIN_DAYS, VALIDITY_DAYS,
};
pub use context::{CheckedAddress, ClientAuth, TlsContext, TlsInfo, TlsSession};
pub use error::TlsError;
pub use keyprint::{Keyprint, KeyprintParseError};
pub use trust::{TrustEntry, TrustStore, TRUST_FILE_NAME};
pub use verify::{KeyprintError, OnChange, PeerCheck, Verdict};
