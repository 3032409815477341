//! Certificate checks by keyprint instead of certificate authorities.
//!
//! DC hubs and clients use self-signed certificates: a peer is known by the
//! keyprint of its certificate, not by a chain to a trusted root or a host
//! name. [`KeyprintVerifier`] replaces rustls's chain and name validation with
//! a keyprint check (an expected keyprint, or trust on first use); the
//! handshake signatures are still verified with the crypto provider's
//! algorithms, so a peer must hold the private key of the certificate it shows.
//! [`AnyClientCert`] does the same on the server side for client certificates.
//!
//! This module decides whether a certificate is acceptable; it does no I/O of
//! its own beyond recording a first-seen keyprint in the [`TrustStore`].

use std::fmt;
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::ResolvesClientCert;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, SubjectPublicKeyInfoDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, SignatureScheme,
};

use super::keyprint::Keyprint;
use super::trust::{TrustStore, TRUST_FILE_NAME};

/// What to do when a peer's certificate differs from the one recorded on
/// first use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnChange {
    /// Fail the handshake with [`KeyprintError::Changed`] (the default).
    #[default]
    Refuse,
    /// Accept it, record the new keyprint, and report
    /// [`Verdict::Changed`] so that the caller can warn.
    Accept,
}

/// How a client checks the server it connects to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCheck {
    /// The host name or IP address; sent as SNI when it is a name.
    pub server_name: String,
    /// The keyprint the server must present (from `?kp=` or an INF `KP`).
    /// When given, it alone decides, and the trust store is updated to it.
    pub expected: Option<Keyprint>,
    /// The peer's key in the trust-on-first-use store (`host:port` for hubs);
    /// `None` skips the store.
    pub trust_key: Option<String>,
    /// What a changed certificate means (without `expected`).
    pub on_change: OnChange,
}

impl PeerCheck {
    /// The name errors use for the peer.
    pub(crate) fn label(&self) -> &str {
        self.trust_key.as_deref().unwrap_or(&self.server_name)
    }
}

/// How the server's certificate was accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// It matched the expected keyprint.
    Expected,
    /// First contact: its keyprint is now recorded.
    FirstUse,
    /// It matched the keyprint recorded earlier.
    Recorded,
    /// It differed from the recorded keyprint and [`OnChange::Accept`] took it;
    /// the new keyprint is now recorded.
    Changed {
        /// The keyprint recorded before.
        previous: Keyprint,
    },
    /// Neither an expected keyprint nor the trust store applied: encrypted,
    /// but the peer is not authenticated.
    Unchecked,
}

/// A certificate refused by its keyprint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyprintError {
    /// Not the keyprint the address (or INF) named.
    #[error(
        "the TLS certificate of {peer} has keyprint {got}, but {expected} was expected; \
         refusing the connection (the peer replaced its certificate, or someone is in between)"
    )]
    Mismatch {
        /// The peer (`host:port`).
        peer: String,
        /// The keyprint we were given.
        expected: Keyprint,
        /// The keyprint of the certificate presented.
        got: Keyprint,
    },
    /// Not the keyprint recorded on first use.
    #[error(
        "the TLS certificate of {peer} changed: it has keyprint {got}, but {recorded} was \
         recorded when it was first seen; refusing the connection. If the peer really has a \
         new certificate, put ?kp={got} in its address or delete its entry from {TRUST_FILE_NAME}"
    )]
    Changed {
        /// The peer (`host:port`).
        peer: String,
        /// The keyprint on record.
        recorded: Keyprint,
        /// The keyprint of the certificate presented.
        got: Keyprint,
    },
}

/// Where a verifier leaves its decision for the connection that used it.
pub(crate) type Outcome = Arc<Mutex<Option<Result<Verdict, KeyprintError>>>>;

/// Checks a server certificate by keyprint; one per connection.
pub(crate) struct KeyprintVerifier {
    check: PeerCheck,
    trust: Arc<TrustStore>,
    algorithms: WebPkiSupportedAlgorithms,
    outcome: Outcome,
}

impl KeyprintVerifier {
    pub(crate) fn new(
        check: PeerCheck,
        trust: Arc<TrustStore>,
        algorithms: WebPkiSupportedAlgorithms,
    ) -> (KeyprintVerifier, Outcome) {
        let outcome = Outcome::default();
        (KeyprintVerifier { check, trust, algorithms, outcome: outcome.clone() }, outcome)
    }

    /// The decision for a certificate with keyprint `got`.
    fn decide(&self, got: Keyprint) -> Result<Verdict, KeyprintError> {
        let peer = self.check.label().to_string();
        if let Some(expected) = self.check.expected {
            if expected != got {
                return Err(KeyprintError::Mismatch { peer, expected, got });
            }
            // The address vouches for it: remember it for connections without.
            if let Some(key) = &self.check.trust_key {
                self.record(key, got);
            }
            return Ok(Verdict::Expected);
        }
        let Some(key) = &self.check.trust_key else { return Ok(Verdict::Unchecked) };
        match self.trust.get(key) {
            None => {
                self.record(key, got);
                log::info!("recorded the TLS keyprint of {key} on first use: {got}");
                Ok(Verdict::FirstUse)
            }
            Some(entry) if entry.keyprint == got => Ok(Verdict::Recorded),
            Some(entry) => match self.check.on_change {
                OnChange::Refuse => {
                    Err(KeyprintError::Changed { peer, recorded: entry.keyprint, got })
                }
                OnChange::Accept => {
                    log::warn!(
                        "the TLS certificate of {key} changed from {} to {got}; accepted as asked",
                        entry.keyprint
                    );
                    self.record(key, got);
                    Ok(Verdict::Changed { previous: entry.keyprint })
                }
            },
        }
    }

    fn record(&self, key: &str, keyprint: Keyprint) {
        // A store that cannot be written does not make this peer less
        // trustworthy than any first contact: go on, but say so.
        if let Err(e) = self.trust.record(key, keyprint) {
            log::warn!("{e}; the keyprint of {key} is trusted for this run only");
        }
    }
}

impl fmt::Debug for KeyprintVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyprintVerifier").field("check", &self.check).finish_non_exhaustive()
    }
}

impl ServerCertVerifier for KeyprintVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let decision = self.decide(Keyprint::of_der(end_entity));
        let result = match &decision {
            Ok(_) => Ok(ServerCertVerified::assertion()),
            Err(e) => Err(rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(
                Arc::new(e.clone()),
            )))),
        };
        *self.outcome.lock().unwrap_or_else(|p| p.into_inner()) = Some(decision);
        result
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Accepts any client certificate whose handshake signature verifies; the
/// session compares its keyprint with what the peer announced (INF `KP`).
#[derive(Debug)]
pub(crate) struct AnyClientCert {
    pub(crate) algorithms: WebPkiSupportedAlgorithms,
    /// Refuse clients that present no certificate (as DC++ does).
    pub(crate) mandatory: bool,
}

impl ClientCertVerifier for AnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Presents our certificate: to servers that ask for a client certificate
/// (DC++ always does), and as a server.
#[derive(Debug)]
pub(crate) struct PresentOurs(pub(crate) Arc<CertifiedKey>);

impl ResolvesClientCert for PresentOurs {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        // Offer it only if the server can check our key's signatures.
        self.0.key.choose_scheme(sigschemes).map(|_| self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

impl ResolvesServerCert for PresentOurs {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// The handshake signature checks, for certificates webpki refuses to parse.
///
/// DC clients make self-signed certificates, and eiskaltdcpp's are X.509
/// version 1, which webpki rejects (`UnsupportedCertVersion`). Trust here
/// never comes from the certificate's contents: the keyprint (a hash of the
/// whole certificate) decides, and the signature only has to prove that the
/// peer holds the key the certificate carries. So when webpki cannot read the
/// certificate, the key is taken out of it ([`spki_of`]) and the signature is
/// checked against the raw key. TLS 1.2 has no raw-key check in rustls; such
/// a peer must speak TLS 1.3 (DC++ ≥ 0.870 and eiskaltdcpp with OpenSSL 3 do).
fn verify_tls13(
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
    algs: &WebPkiSupportedAlgorithms,
) -> Result<HandshakeSignatureValid, rustls::Error> {
    match rustls::crypto::verify_tls13_signature(message, cert, dss, algs) {
        // webpki wraps its own reasons (`UnsupportedCertVersion`) in `Other`.
        Err(e @ rustls::Error::InvalidCertificate(CertificateError::Other(_))) => {
            let Some(spki) = spki_of(cert) else { return Err(e) };
            rustls::crypto::verify_tls13_signature_with_raw_key(
                message,
                &SubjectPublicKeyInfoDer::from(spki),
                dss,
                algs,
            )
        }
        other => other,
    }
}

fn verify_tls12(
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
    algs: &WebPkiSupportedAlgorithms,
) -> Result<HandshakeSignatureValid, rustls::Error> {
    rustls::crypto::verify_tls12_signature(message, cert, dss, algs)
}

/// The `subjectPublicKeyInfo` of a DER certificate, of any version
/// (RFC 5280 §4.1: the seventh field of `tbsCertificate` counting the
/// optional `[0] version`, which version 1 certificates leave out).
pub(crate) fn spki_of(cert: &[u8]) -> Option<Vec<u8>> {
    yasna::parse_der(cert, |r| {
        r.read_sequence(|r| {
            let spki = r.next().read_sequence(|r| {
                r.read_optional(|r| r.read_tagged(yasna::Tag::context(0), |r| r.read_der()))?;
                for _ in 0..5 {
                    // serialNumber, signature, issuer, validity, subject
                    r.next().read_der()?;
                }
                let spki = r.next().read_der()?;
                // issuerUniqueID, subjectUniqueID, extensions.
                while r.read_optional(|r| r.read_der())?.is_some() {}
                Ok(spki)
            })?;
            r.next().read_der()?; // signatureAlgorithm
            r.next().read_der()?; // signatureValue
            Ok(spki)
        })
    })
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_public_key_comes_out_of_a_certificate() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert =
            rcgen::CertificateParams::new(vec!["x".into()]).unwrap().self_signed(&key).unwrap();
        let spki = spki_of(cert.der()).expect("a version 3 certificate");
        assert_eq!(spki, rcgen::PublicKeyData::subject_public_key_info(&key));
        assert_eq!(spki_of(b"not a certificate"), None);
        // Version 1: the same certificate without `[0] version` parses the
        // same way (the byte layout is what matters here, not the signature).
        let der = cert.der().to_vec();
        let v1 = strip_version(&der);
        assert_eq!(spki_of(&v1), Some(rcgen::PublicKeyData::subject_public_key_info(&key)));
    }

    /// Removes `[0] EXPLICIT version` from a DER certificate (re-encoding the
    /// two enclosing lengths).
    fn strip_version(der: &[u8]) -> Vec<u8> {
        fn tlv(b: &[u8]) -> (usize, usize) {
            // (header length, content length)
            let l = b[1] as usize;
            if l < 0x80 {
                (2, l)
            } else {
                let n = l & 0x7f;
                (2 + n, b[2..2 + n].iter().fold(0, |a, &x| a << 8 | x as usize))
            }
        }
        fn enc(tag: u8, content: &[u8]) -> Vec<u8> {
            let mut out = vec![tag];
            let n = content.len();
            if n < 0x80 {
                out.push(n as u8);
            } else {
                let bytes: Vec<u8> = n.to_be_bytes().into_iter().skip_while(|&b| b == 0).collect();
                out.push(0x80 | bytes.len() as u8);
                out.extend(bytes);
            }
            out.extend_from_slice(content);
            out
        }
        let (h, _) = tlv(der);
        let tbs = &der[h..];
        let (th, tl) = tlv(tbs);
        let rest = &der[h + th + tl..];
        let fields = &tbs[th..th + tl];
        let (vh, vl) = tlv(fields);
        assert_eq!(fields[0], 0xa0);
        let tbs_v1 = enc(0x30, &fields[vh + vl..]);
        let mut content = tbs_v1;
        content.extend_from_slice(rest);
        enc(0x30, &content)
    }

    fn verifier(check: PeerCheck, trust: &Arc<TrustStore>) -> (KeyprintVerifier, Outcome) {
        let algs = crate::tls::provider::provider().signature_verification_algorithms;
        KeyprintVerifier::new(check, trust.clone(), algs)
    }

    fn check(expected: Option<Keyprint>, tofu: bool, on_change: OnChange) -> PeerCheck {
        PeerCheck {
            server_name: "hub.example".into(),
            expected,
            trust_key: tofu.then(|| "hub.example:1511".to_string()),
            on_change,
        }
    }

    #[test]
    fn decisions() {
        let (a, b) = (Keyprint::of_der(b"a"), Keyprint::of_der(b"b"));
        let trust = Arc::new(TrustStore::in_memory());
        let decide = |c: PeerCheck, got| verifier(c, &trust).0.decide(got);

        assert_eq!(decide(check(None, false, OnChange::Refuse), a), Ok(Verdict::Unchecked));
        assert!(trust.entries().is_empty(), "no store use without a trust key");
        assert_eq!(decide(check(Some(a), false, OnChange::Refuse), a), Ok(Verdict::Expected));
        let err = decide(check(Some(a), true, OnChange::Refuse), b).unwrap_err();
        assert_eq!(
            err,
            KeyprintError::Mismatch { peer: "hub.example:1511".into(), expected: a, got: b }
        );
        let text = err.to_string();
        assert!(text.contains(&a.to_string()) && text.contains(&b.to_string()), "{text}");
        assert!(trust.entries().is_empty(), "a refused certificate is not recorded");

        assert_eq!(decide(check(None, true, OnChange::Refuse), a), Ok(Verdict::FirstUse));
        assert_eq!(decide(check(None, true, OnChange::Refuse), a), Ok(Verdict::Recorded));
        let err = decide(check(None, true, OnChange::Refuse), b).unwrap_err();
        assert!(
            matches!(err, KeyprintError::Changed { recorded, got, .. } if recorded == a && got == b)
        );
        assert!(err.to_string().contains("refusing"), "{err}");
        assert_eq!(trust.get("hub.example:1511").unwrap().keyprint, a, "the record is kept");
        assert_eq!(
            decide(check(None, true, OnChange::Accept), b),
            Ok(Verdict::Changed { previous: a })
        );
        assert_eq!(trust.get("hub.example:1511").unwrap().keyprint, b);
        // An expected keyprint overrides the record and updates it.
        assert_eq!(decide(check(Some(a), true, OnChange::Refuse), a), Ok(Verdict::Expected));
        assert_eq!(trust.get("hub.example:1511").unwrap().keyprint, a);
    }

    #[test]
    fn the_outcome_reaches_the_connection() {
        let trust = Arc::new(TrustStore::in_memory());
        let (a, b) = (Keyprint::of_der(b"a"), Keyprint::of_der(b"b"));
        let (v, outcome) = verifier(check(Some(a), false, OnChange::Refuse), &trust);
        let name = ServerName::try_from("hub.example").unwrap();
        let cert = CertificateDer::from(b"b".to_vec());
        let err = v.verify_server_cert(&cert, &[], &name, &[], UnixTime::now()).unwrap_err();
        assert!(matches!(err, rustls::Error::InvalidCertificate(CertificateError::Other(_))));
        let got = outcome.lock().unwrap().clone();
        assert!(matches!(got, Some(Err(KeyprintError::Mismatch { got, .. })) if got == b));
    }
}
