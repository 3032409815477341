//! Self-signed TLS certificates for hubs started by tests (ADCS), made with the `openssl`
//! command-line tool.
//!
//! This module must not read or write anything outside the directory it is given.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// A certificate and its private key as PEM files, with the ADC keyprint of the certificate.
#[derive(Debug, Clone)]
pub struct TlsCert {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// The unencrypted private key (PEM).
    pub key: PathBuf,
    /// `SHA256/` + base32 (no padding) of the certificate's DER encoding: what an
    /// `adcs://host:port/?kp=...` URL or an ADC `KP` field carries.
    pub keyprint: String,
}

impl TlsCert {
    /// Generates a self-signed RSA-2048 certificate for CN=127.0.0.1 in `dir`
    /// (`cert.pem`, `key.pem`), valid for ten years.
    pub fn generate(dir: &Path) -> Result<TlsCert> {
        let openssl = super::find_binary("openssl")?;
        let cert = dir.join("cert.pem");
        let key = dir.join("key.pem");
        let out = Command::new(&openssl)
            .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650"])
            .args(["-subj", "/CN=127.0.0.1", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .context("running openssl req to make a self-signed certificate")?;
        if !out.status.success() {
            bail!(
                "openssl req failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let keyprint = keyprint_of(&openssl, &cert)?;
        Ok(TlsCert { cert, key, keyprint })
    }
}

/// `SHA256/<base32>` of the DER certificate in `cert`, from `openssl x509 -fingerprint`.
fn keyprint_of(openssl: &Path, cert: &Path) -> Result<String> {
    let out = Command::new(openssl)
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(cert)
        .output()
        .context("running openssl x509 -fingerprint")?;
    if !out.status.success() {
        bail!("openssl x509 failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr));
    }
    // "sha256 Fingerprint=E3:28:AB:..." (the label's case varies between versions).
    let text = String::from_utf8_lossy(&out.stdout);
    let hex = text
        .trim()
        .split_once('=')
        .map(|(_, h)| h.replace(':', ""))
        .with_context(|| format!("unexpected openssl fingerprint output {text:?}"))?;
    let bytes = data_encoding::HEXUPPER_PERMISSIVE
        .decode(hex.as_bytes())
        .with_context(|| format!("fingerprint {hex:?} is not hex"))?;
    if bytes.len() != 32 {
        bail!("SHA-256 fingerprint has {} bytes, expected 32", bytes.len());
    }
    Ok(format!("SHA256/{}", data_encoding::BASE32_NOPAD.encode(&bytes)))
}
