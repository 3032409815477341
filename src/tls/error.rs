//! [`TlsError`]: why TLS could not be set up.
//!
//! A leaf: the certificate, the trust store and the context all report it.

use std::path::PathBuf;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Our certificate could not be made or written.
    #[error("our TLS certificate {path}: {reason}")]
    Identity {
        /// The file (or folder) concerned.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The keyprint store could not be read or written.
    #[error("the keyprint store {path}: {reason}")]
    TrustStore {
        /// The store's file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// rustls refused a configuration or a session.
    #[error("setting up TLS {what}: {source}")]
    Setup {
        /// What was being set up ("a client session for hub.example").
        what: String,
        /// rustls's reason.
        source: rustls::Error,
    },
}
