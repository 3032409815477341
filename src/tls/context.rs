//! [`TlsContext`]: our identity, the trust store and ready rustls
//! configurations; it makes the [`TlsSession`]s `net::Connection` carries.
//!
//! It does no I/O on sockets: the byte-level work is `net`'s.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ServerConfig};

use super::cert::Identity;
use super::error::TlsError;
use super::keyprint::Keyprint;
use super::provider::provider;
use super::trust::{TrustStore, TRUST_FILE_NAME};
use super::verify::{
    AnyClientCert, KeyprintError, KeyprintVerifier, OnChange, Outcome, PeerCheck, PresentOurs,
    Verdict,
};

/// Whether a server asks accepted clients for a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// Ask, and refuse clients without one (what DC++ does).
    Require,
    /// Ask, but accept clients without one.
    Request,
}

/// An address that says how its server's certificate is checked
/// ([`address::HubUrl`](crate::address::HubUrl) is one). `tls` names no
/// address type itself: it sits below them.
pub trait CheckedAddress {
    /// The check for this address under the `on_change` policy.
    fn peer_check(&self, on_change: OnChange) -> PeerCheck;
}

/// Everything needed to make TLS sessions: our identity, the trust store and
/// ready rustls configurations. Cheap to clone (shared); one per process.
#[derive(Debug, Clone)]
pub struct TlsContext {
    identity: Arc<Identity>,
    trust: Arc<TrustStore>,
    server_require: Arc<ServerConfig>,
    server_request: Arc<ServerConfig>,
    on_change: OnChange,
}

impl TlsContext {
    /// Loads (or makes, the first time) our certificate and opens the trust
    /// store in `data_dir`. `common_name` is our CID in base32 when known.
    pub fn open(data_dir: &Path, common_name: Option<&str>) -> Result<TlsContext, TlsError> {
        let identity = Identity::load_or_create(data_dir, common_name)?;
        let trust = TrustStore::open(&data_dir.join(TRUST_FILE_NAME))?;
        TlsContext::new(identity, trust)
    }

    /// A context from parts (tests, or an in-memory identity and store).
    pub fn new(identity: Identity, trust: TrustStore) -> Result<TlsContext, TlsError> {
        let server = |client_auth: ClientAuth| -> Result<Arc<ServerConfig>, TlsError> {
            let verifier = AnyClientCert {
                algorithms: provider().signature_verification_algorithms,
                mandatory: client_auth == ClientAuth::Require,
            };
            let mut config = ServerConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .map_err(|source| TlsError::Setup { what: "the server side".into(), source })?
                .with_client_cert_verifier(Arc::new(verifier))
                .with_cert_resolver(Arc::new(PresentOurs(identity.certified_key().clone())));
            // No resumption: every handshake shows (and checks) certificates.
            config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
            config.send_tls13_tickets = 0;
            Ok(Arc::new(config))
        };
        Ok(TlsContext {
            server_require: server(ClientAuth::Require)?,
            server_request: server(ClientAuth::Request)?,
            identity: Arc::new(identity),
            trust: Arc::new(trust),
            on_change: OnChange::Refuse,
        })
    }

    /// What hub sessions do when a hub's certificate changed
    /// ([`OnChange::Refuse`] unless set).
    pub fn with_on_change(mut self, on_change: OnChange) -> TlsContext {
        self.on_change = on_change;
        self
    }

    /// Our certificate.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Our keyprint: what the ADC session announces in INF `KP`.
    pub fn our_keyprint(&self) -> &Keyprint {
        self.identity.keyprint()
    }

    /// The trust-on-first-use store.
    pub fn trust_store(&self) -> &TrustStore {
        &self.trust
    }

    /// A client session checking the server as `check` says, presenting our
    /// certificate when the server asks for one.
    pub fn client(&self, check: PeerCheck) -> Result<TlsSession, TlsError> {
        let what = || format!("a client session for {}", check.label());
        let name =
            ServerName::try_from(check.server_name.clone()).map_err(|_| TlsError::Setup {
                what: what(),
                source: rustls::Error::General(format!(
                    "\"{}\" is neither a host name nor an IP address",
                    check.server_name
                )),
            })?;
        let label = check.label().to_string();
        let (verifier, outcome) = KeyprintVerifier::new(
            check.clone(),
            self.trust.clone(),
            provider().signature_verification_algorithms,
        );
        let mut config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|source| TlsError::Setup { what: what(), source })?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_client_cert_resolver(Arc::new(PresentOurs(
                self.identity.certified_key().clone(),
            )));
        // No resumption: a resumed session would skip the keyprint check.
        config.resumption = rustls::client::Resumption::disabled();
        let conn = rustls::ClientConnection::new(Arc::new(config), name)
            .map_err(|source| TlsError::Setup { what: what(), source })?;
        Ok(TlsSession { conn: conn.into(), outcome: Some(outcome), peer: label })
    }

    /// A client session for a TLS hub address: checked against its `?kp=`,
    /// else by trust on first use under `host:port`, with this context's
    /// [`OnChange`] policy.
    pub fn hub_client(&self, url: &impl CheckedAddress) -> Result<TlsSession, TlsError> {
        self.client(url.peer_check(self.on_change))
    }

    /// A server session presenting our certificate; the client's certificate
    /// (if any) is available after the handshake as the connection's peer
    /// keyprint.
    pub fn server(&self, client_auth: ClientAuth) -> Result<TlsSession, TlsError> {
        let config = match client_auth {
            ClientAuth::Require => self.server_require.clone(),
            ClientAuth::Request => self.server_request.clone(),
        };
        let conn = rustls::ServerConnection::new(config)
            .map_err(|source| TlsError::Setup { what: "a server session".into(), source })?;
        Ok(TlsSession { conn: conn.into(), outcome: None, peer: "client".into() })
    }
}

/// One TLS session before its connection exists: hand it to
/// [`Connection::connect_tls`](crate::net::Connection::connect_tls) or
/// [`Connection::accepted_tls`](crate::net::Connection::accepted_tls).
#[derive(Debug)]
pub struct TlsSession {
    pub(crate) conn: rustls::Connection,
    /// The server check's decision (client sessions).
    pub(crate) outcome: Option<Outcome>,
    /// Who the peer is, for error messages.
    pub(crate) peer: String,
}

impl TlsSession {
    /// The rustls connection itself, for blocking use outside the runtime
    /// (a test's fake hub in a plain thread, with `rustls::StreamOwned`).
    pub fn into_rustls(self) -> rustls::Connection {
        self.conn
    }

    /// Whether this is the client side.
    pub fn is_client(&self) -> bool {
        matches!(self.conn, rustls::Connection::Client(_))
    }

    /// The keyprint check's decision so far: `None` before the server's
    /// certificate was seen (and always for server sessions).
    pub(crate) fn outcome(&self) -> Option<Result<Verdict, KeyprintError>> {
        self.outcome.as_ref().and_then(|o| o.lock().unwrap_or_else(|p| p.into_inner()).clone())
    }
}

/// What a TLS connection knows about its session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInfo {
    /// Whether the handshake has completed.
    pub established: bool,
    /// The keyprint of the certificate the peer presented (a client may
    /// present none).
    pub peer_keyprint: Option<Keyprint>,
    /// How the server's certificate was accepted (client side, after the
    /// handshake).
    pub verdict: Option<Verdict>,
    /// The protocol version, `"TLSv1_3"` or `"TLSv1_2"`.
    pub version: Option<String>,
    /// The cipher suite, `"TLS13_AES_256_GCM_SHA384"` for instance.
    pub cipher_suite: Option<String>,
    /// The peer ended the session with a close_notify (not just a TCP EOF).
    pub close_notify_received: bool,
}
