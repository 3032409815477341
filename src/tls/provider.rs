//! The one rustls crypto provider (`ring`) every configuration and check uses.

use std::sync::{Arc, LazyLock};

use rustls::crypto::CryptoProvider;

/// The crypto provider every configuration uses.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: LazyLock<Arc<CryptoProvider>> =
        LazyLock::new(|| Arc::new(rustls::crypto::ring::default_provider()));
    PROVIDER.clone()
}
