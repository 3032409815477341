//! [`Identity`]: dclua's own TLS certificate and private key.
//!
//! Generated once (self-signed, ECDSA P-256, CN = the client's CID when known,
//! else `dclua`), persisted in the data folder as `cert.pem` and `key.pem`
//! (the key with 0600 permissions), and reused on later starts. It is made anew
//! when the files are missing, unreadable, do not belong together, have expired
//! (or will within [`RENEW_MARGIN_DAYS`]), or name another CID: DC++ does the
//! same, and peers learn the new keyprint from our INF `KP` field.
//!
//! This module owns those two files and reads nothing else; it never talks to
//! the network.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use time::OffsetDateTime;

use super::error::TlsError;
use super::keyprint::Keyprint;
use super::provider::provider;
use super::trust::write_atomic;

/// The certificate's file name in the data folder.
pub const CERT_FILE_NAME: &str = "cert.pem";

/// The private key's file name in the data folder.
pub const KEY_FILE_NAME: &str = "key.pem";

/// The common name when no CID is given.
pub const DEFAULT_COMMON_NAME: &str = "dclua";

/// How long a new certificate is valid.
pub const VALIDITY_DAYS: i64 = 365;

/// A certificate expiring within this many days is replaced at start, so that
/// a long-running client does not reach the expiry date mid-session.
pub const RENEW_MARGIN_DAYS: i64 = 7;

/// Where an [`Identity`] came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityOrigin {
    /// Read from the data folder.
    Loaded,
    /// Made now because there was none.
    Generated,
    /// Made now in place of files that could not be used, for `reason`.
    Regenerated {
        /// Why the old files were replaced ("cert.pem expired on 2025-01-01").
        reason: String,
    },
    /// Made in memory, never written (tests, or no data folder).
    Ephemeral,
}

/// Our certificate, its private key ready for rustls, and its keyprint.
#[derive(Clone)]
pub struct Identity {
    key: Arc<CertifiedKey>,
    keyprint: Keyprint,
    common_name: Option<String>,
    not_after: OffsetDateTime,
    origin: IdentityOrigin,
}

impl Identity {
    /// Loads `cert.pem`/`key.pem` from `dir`, or makes and writes a new pair
    /// (creating `dir` if needed) when they are missing or unusable; see the
    /// module docs. `common_name` is the CID in base32 when the caller knows
    /// it; a stored certificate naming another CN is then replaced. An error
    /// means a new pair could not be written.
    pub fn load_or_create(dir: &Path, common_name: Option<&str>) -> Result<Identity, TlsError> {
        let cert_path = dir.join(CERT_FILE_NAME);
        let key_path = dir.join(KEY_FILE_NAME);
        let reason = match Identity::load(&cert_path, &key_path, common_name) {
            Ok(identity) => return Ok(identity),
            Err(Unusable::Missing) => None,
            Err(Unusable::Reason(reason)) => Some(reason),
        };
        let cn = common_name.unwrap_or(DEFAULT_COMMON_NAME);
        let now = OffsetDateTime::now_utc();
        let (identity, cert_pem, key_pem) = Identity::make(
            cn,
            now - time::Duration::days(1),
            now + time::Duration::days(VALIDITY_DAYS),
        )
        .map_err(|reason| TlsError::Identity { path: cert_path.clone(), reason })?;
        let io_err = |path: &Path, e: io::Error| TlsError::Identity {
            path: path.to_path_buf(),
            reason: format!("writing it failed: {e}"),
        };
        fs::create_dir_all(dir).map_err(|e| TlsError::Identity {
            path: dir.to_path_buf(),
            reason: format!("creating the data folder failed: {e}"),
        })?;
        // The key first: a crash between the two writes leaves a pair that
        // does not match, which the next start detects and replaces.
        write_atomic(&key_path, key_pem.as_bytes(), Some(0o600))
            .map_err(|e| io_err(&key_path, e))?;
        write_atomic(&cert_path, cert_pem.as_bytes(), Some(0o644))
            .map_err(|e| io_err(&cert_path, e))?;
        let origin = match reason {
            None => {
                log::info!(
                    "made our TLS certificate {} ({})",
                    cert_path.display(),
                    identity.keyprint
                );
                IdentityOrigin::Generated
            }
            Some(reason) => {
                log::warn!(
                    "replaced our TLS certificate {}: {reason}; the new keyprint is {}",
                    cert_path.display(),
                    identity.keyprint
                );
                IdentityOrigin::Regenerated { reason }
            }
        };
        Ok(Identity { origin, ..identity })
    }

    /// A new identity in memory only (nothing is written).
    pub fn generate(common_name: &str) -> Result<Identity, TlsError> {
        let now = OffsetDateTime::now_utc();
        Identity::make(
            common_name,
            now - time::Duration::days(1),
            now + time::Duration::days(VALIDITY_DAYS),
        )
        .map(|(identity, _, _)| identity)
        .map_err(|reason| TlsError::Identity { path: PathBuf::from("(in memory)"), reason })
    }

    /// Our keyprint, `SHA256/...`: what the ADC session announces in INF `KP`.
    pub fn keyprint(&self) -> &Keyprint {
        &self.keyprint
    }

    /// The certificate, DER-encoded.
    pub fn certificate_der(&self) -> &[u8] {
        self.key.cert.first().map_or(&[], |c| c.as_ref())
    }

    /// The certificate's common name, if it has one.
    pub fn common_name(&self) -> Option<&str> {
        self.common_name.as_deref()
    }

    /// The end of the certificate's validity, in seconds since the Unix epoch.
    pub fn not_after_unix(&self) -> i64 {
        self.not_after.unix_timestamp()
    }

    /// Whether it was loaded, generated or replaced.
    pub fn origin(&self) -> &IdentityOrigin {
        &self.origin
    }

    /// The certificate and key as rustls presents them.
    pub(crate) fn certified_key(&self) -> &Arc<CertifiedKey> {
        &self.key
    }

    /// A new self-signed certificate; returns it with its PEM texts.
    fn make(
        common_name: &str,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Result<(Identity, String, String), String> {
        let made = (|| -> Result<(String, String, Vec<u8>), rcgen::Error> {
            let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
            let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
            params.distinguished_name = rcgen::DistinguishedName::new();
            params.distinguished_name.push(rcgen::DnType::CommonName, common_name);
            params.not_before = not_before;
            params.not_after = not_after;
            let mut serial: [u8; 16] = rand::random();
            serial[0] &= 0x7f; // a positive INTEGER
            params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
            let cert = params.self_signed(&key)?;
            Ok((cert.pem(), key.serialize_pem(), key.serialize_der()))
        })();
        let (cert_pem, key_pem, key_der) =
            made.map_err(|e| format!("generating a certificate failed: {e}"))?;
        let cert = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| format!("reading back the new certificate failed: {e}"))?;
        let key = PrivateKeyDer::try_from(key_der)
            .map_err(|e| format!("reading back the new key failed: {e}"))?;
        let identity = Identity::assemble(cert, key, IdentityOrigin::Ephemeral)?;
        Ok((identity, cert_pem, key_pem))
    }

    /// Reads and checks the stored pair.
    fn load(
        cert_path: &Path,
        key_path: &Path,
        common_name: Option<&str>,
    ) -> Result<Identity, Unusable> {
        let cert_pem = fs::read(cert_path);
        let key_pem = fs::read(key_path);
        let (cert_pem, key_pem) = match (cert_pem, key_pem) {
            (Ok(c), Ok(k)) => (c, k),
            (Err(c), Err(k))
                if c.kind() == io::ErrorKind::NotFound && k.kind() == io::ErrorKind::NotFound =>
            {
                return Err(Unusable::Missing)
            }
            (Err(e), _) => return Err(Unusable::unreadable(cert_path, e)),
            (_, Err(e)) => return Err(Unusable::unreadable(key_path, e)),
        };
        let cert = CertificateDer::from_pem_slice(&cert_pem).map_err(|e| {
            Unusable::Reason(format!("{} holds no PEM certificate ({e})", cert_path.display()))
        })?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
            Unusable::Reason(format!("{} holds no PEM private key ({e})", key_path.display()))
        })?;
        let identity = Identity::assemble(cert, key, IdentityOrigin::Loaded)
            .map_err(|e| Unusable::Reason(format!("{}: {e}", cert_path.display())))?;
        let renew_at = OffsetDateTime::now_utc() + time::Duration::days(RENEW_MARGIN_DAYS);
        if identity.not_after <= renew_at {
            return Err(Unusable::Reason(format!(
                "{} expires on {} (renewed {RENEW_MARGIN_DAYS} days ahead)",
                cert_path.display(),
                identity.not_after.date()
            )));
        }
        if let Some(want) = common_name {
            if identity.common_name.as_deref() != Some(want) {
                return Err(Unusable::Reason(format!(
                    "{} names {:?}, not our CID {want}",
                    cert_path.display(),
                    identity.common_name.as_deref().unwrap_or("")
                )));
            }
        }
        tighten_key_permissions(key_path);
        Ok(identity)
    }

    /// Builds the identity from a certificate and its key, checking that they
    /// belong together.
    fn assemble(
        cert: CertificateDer<'static>,
        key: PrivateKeyDer<'static>,
        origin: IdentityOrigin,
    ) -> Result<Identity, String> {
        let info = CertInfo::parse(&cert).ok_or("the certificate's encoding is not valid X.509")?;
        let signing = provider()
            .key_provider
            .load_private_key(key)
            .map_err(|e| format!("the private key cannot be used: {e}"))?;
        let keyprint = Keyprint::of_der(&cert);
        let certified = CertifiedKey::new(vec![cert], signing);
        certified
            .keys_match()
            .map_err(|e| format!("the key does not match the certificate ({e})"))?;
        Ok(Identity {
            key: Arc::new(certified),
            keyprint,
            common_name: info.common_name,
            not_after: info.not_after,
            origin,
        })
    }
}

impl std::fmt::Debug for Identity {
    /// The public facts only: never the key, and not the whole certificate.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("keyprint", &self.keyprint)
            .field("common_name", &self.common_name)
            .field("not_after", &self.not_after.date())
            .field("origin", &self.origin)
            .finish()
    }
}

/// Why the stored pair is not used.
enum Unusable {
    /// Neither file exists: a first start.
    Missing,
    Reason(String),
}

impl Unusable {
    fn unreadable(path: &Path, e: io::Error) -> Unusable {
        Unusable::Reason(format!("{} cannot be read ({e})", path.display()))
    }
}

/// A private key readable by others is made private again.
fn tighten_key_permissions(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let Ok(meta) = fs::metadata(path) else { return };
        if meta.permissions().mode() & 0o077 != 0 {
            match fs::set_permissions(path, fs::Permissions::from_mode(0o600)) {
                Ok(()) => log::warn!("{} was readable by others; made it 0600", path.display()),
                Err(e) => log::warn!("{} is readable by others: {e}", path.display()),
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// What we read from a certificate: its expiry and subject common name.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct CertInfo {
    pub not_after: OffsetDateTime,
    pub common_name: Option<String>,
}

impl CertInfo {
    /// Walks the DER encoding (RFC 5280 §4.1): Certificate → TBSCertificate →
    /// [version], serial, signature, issuer, validity, subject. `None` when the
    /// structure is not there.
    pub(crate) fn parse(der: &[u8]) -> Option<CertInfo> {
        let (cert, _) = der_take(der, 0x30)?;
        let (tbs, _) = der_take(cert, 0x30)?;
        let mut rest = tbs;
        if rest.first() == Some(&0xa0) {
            rest = der_take(rest, 0xa0)?.1;
        }
        let (_serial, rest) = der_take(rest, 0x02)?;
        let (_sig_alg, rest) = der_take(rest, 0x30)?;
        let (_issuer, rest) = der_take(rest, 0x30)?;
        let (validity, rest) = der_take(rest, 0x30)?;
        let (subject, _) = der_take(rest, 0x30)?;
        let (_, _not_before, validity) = der_any(validity)?;
        let (tag, not_after, _) = der_any(validity)?;
        let not_after = parse_time(tag, not_after)?;
        Some(CertInfo { not_after, common_name: common_name(subject) })
    }
}

/// One TLV: (tag, content, rest). Definite lengths only, as DER requires.
fn der_any(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |acc, &b| acc << 8 | usize::from(b));
        rest = &rest[n..];
        len
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// One TLV that must carry `tag`: (content, rest).
fn der_take(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    match der_any(input)? {
        (t, content, rest) if t == tag => Some((content, rest)),
        _ => None,
    }
}

/// UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSSZ`).
fn parse_time(tag: u8, text: &[u8]) -> Option<OffsetDateTime> {
    let text = std::str::from_utf8(text).ok()?.strip_suffix('Z')?;
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (year, rest) = match (tag, text.len()) {
        (0x17, 12) => {
            let yy: i32 = text[..2].parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &text[2..])
        }
        (0x18, 14) => (text[..4].parse().ok()?, &text[4..]),
        _ => return None,
    };
    let num = |i: usize| rest[i..i + 2].parse::<u8>().ok();
    let month = time::Month::try_from(num(0)?).ok()?;
    let date = time::Date::from_calendar_date(year, month, num(2)?).ok()?;
    let t = time::Time::from_hms(num(4)?, num(6)?, num(8)?).ok()?;
    Some(time::PrimitiveDateTime::new(date, t).assume_utc())
}

/// The first common name (OID 2.5.4.3) of a Name.
fn common_name(mut name: &[u8]) -> Option<String> {
    const CN_OID: &[u8] = &[0x55, 0x04, 0x03];
    while !name.is_empty() {
        let (set, rest) = der_take(name, 0x31)?;
        name = rest;
        let mut attrs = set;
        while !attrs.is_empty() {
            let (attr, rest) = der_take(attrs, 0x30)?;
            attrs = rest;
            let (oid, value) = der_take(attr, 0x06)?;
            if oid != CN_OID {
                continue;
            }
            let (tag, text, _) = der_any(value)?;
            return match tag {
                // BMPString: UCS-2, big-endian.
                0x1e => {
                    let units: Vec<u16> =
                        text.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
                    Some(String::from_utf16_lossy(&units))
                }
                _ => Some(String::from_utf8_lossy(text).into_owned()),
            };
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(unix: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(unix).unwrap()
    }

    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn made_once_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = Identity::load_or_create(dir.path(), None).unwrap();
        assert_eq!(first.origin(), &IdentityOrigin::Generated);
        assert_eq!(first.common_name(), Some(DEFAULT_COMMON_NAME));
        assert_eq!(mode(&dir.path().join(KEY_FILE_NAME)), 0o600);
        assert_eq!(*first.keyprint(), Keyprint::of_der(first.certificate_der()));
        let year = OffsetDateTime::now_utc().unix_timestamp() + VALIDITY_DAYS * 86400;
        assert!((first.not_after_unix() - year).abs() < 120, "validity ends a year from now");

        let second = Identity::load_or_create(dir.path(), None).unwrap();
        assert_eq!(second.origin(), &IdentityOrigin::Loaded);
        assert_eq!(second.keyprint(), first.keyprint());
        assert_eq!(second.certificate_der(), first.certificate_der());
    }

    #[test]
    fn unusable_files_are_replaced_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let cid = "KMDKLOT3LKRQWO2X5IJL3GN7XQPXGP2PFKUUIQQ";
        let original = Identity::load_or_create(dir.path(), Some(cid)).unwrap();
        assert_eq!(original.common_name(), Some(cid));
        let cert = dir.path().join(CERT_FILE_NAME);
        let key = dir.path().join(KEY_FILE_NAME);

        // Another CID: replaced, as DC++ does.
        let other = Identity::load_or_create(dir.path(), Some("OTHERCID")).unwrap();
        assert!(
            matches!(other.origin(), IdentityOrigin::Regenerated { reason } if reason.contains("not our CID OTHERCID")),
            "{:?}",
            other.origin()
        );
        assert_ne!(other.keyprint(), original.keyprint());
        // Without a CID, whatever CN it has is fine.
        assert_eq!(
            Identity::load_or_create(dir.path(), None).unwrap().origin(),
            &IdentityOrigin::Loaded
        );

        type Damage<'a> = Box<dyn Fn() + 'a>;
        let cases: Vec<(Damage, &str)> = vec![
            (Box::new(|| fs::write(&cert, "garbage").unwrap()), "holds no PEM certificate"),
            (Box::new(|| fs::write(&key, "garbage").unwrap()), "holds no PEM private key"),
            (Box::new(|| fs::remove_file(&key).unwrap()), "cannot be read"),
            (
                // A key from another pair.
                Box::new(|| {
                    let other = tempfile::tempdir().unwrap();
                    Identity::load_or_create(other.path(), None).unwrap();
                    fs::copy(other.path().join(KEY_FILE_NAME), &key).unwrap();
                }),
                "does not match",
            ),
            (
                Box::new(|| {
                    let (_, cert_pem, key_pem) = Identity::make(
                        "OTHERCID",
                        OffsetDateTime::now_utc() - time::Duration::days(30),
                        OffsetDateTime::now_utc() - time::Duration::days(1),
                    )
                    .unwrap();
                    fs::write(&cert, cert_pem).unwrap();
                    fs::write(&key, key_pem).unwrap();
                }),
                "expires on",
            ),
        ];
        for (damage, reason) in cases {
            damage();
            let made = Identity::load_or_create(dir.path(), Some("OTHERCID")).unwrap();
            match made.origin() {
                IdentityOrigin::Regenerated { reason: r } => assert!(r.contains(reason), "{r}"),
                o => panic!("expected a replacement for {reason:?}, got {o:?}"),
            }
            assert_eq!(mode(&key), 0o600);
            let again = Identity::load_or_create(dir.path(), Some("OTHERCID")).unwrap();
            assert_eq!(again.origin(), &IdentityOrigin::Loaded, "after {reason:?}");
            assert_eq!(again.keyprint(), made.keyprint());
        }

        // A key left readable by others is made private again.
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
        Identity::load_or_create(dir.path(), None).unwrap();
        assert_eq!(mode(&key), 0o600);
    }

    #[test]
    fn der_walk_reads_times_and_names() {
        let (identity, _, _) = Identity::make("Zoë CID", at(1704164645), at(2569738150)).unwrap();
        let info = CertInfo::parse(identity.certificate_der()).unwrap();
        assert_eq!(info.not_after, at(2569738150));
        assert_eq!(info.common_name.as_deref(), Some("Zoë CID"));
        // Truncations of a valid certificate never parse and never panic.
        let der = identity.certificate_der();
        for len in 0..der.len() {
            assert_eq!(CertInfo::parse(&der[..len]), None, "length {len}");
        }
        // Times, both encodings.
        let t = |tag, s: &str| parse_time(tag, s.as_bytes()).map(|t| t.unix_timestamp());
        assert_eq!(t(0x17, "700101000000Z"), Some(0));
        assert_eq!(t(0x17, "491231235959Z"), Some(2524607999));
        assert_eq!(t(0x18, "20380119031408Z"), Some(2147483648));
        assert_eq!(t(0x17, "701301000000Z"), None);
        assert_eq!(t(0x17, "7001010000Z"), None);
        assert_eq!(t(0x18, "2038011903140Z"), None);
        assert_eq!(t(0x17, "700101000000"), None);
        assert_eq!(t(0x17, "7001010000+0"), None);
    }
}
