//! [`Keyprint`]: the ADC name of a TLS certificate, `SHA256/<base32>`.
//!
//! A keyprint is the SHA-256 digest of the certificate's DER encoding, written
//! as `SHA256/` followed by unpadded RFC 4648 base32 (52 characters), as DC++
//! computes it (`X509_digest(cert, SHA256)`, ADC-EXT §KEYP). It appears in hub
//! addresses (`adcs://host:port/?kp=SHA256/...`) and in INF `KP` fields.
//!
//! Pure: no I/O.

use std::fmt;
use std::str::FromStr;

use data_encoding::BASE32_NOPAD;

/// The only hash algorithm ADC defines for keyprints.
const PREFIX: &str = "SHA256/";

/// Base32 characters of a 32-byte digest.
const BASE32_LEN: usize = 52;

/// The SHA-256 keyprint of a certificate.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Keyprint([u8; 32]);

/// Why a text is not a keyprint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyprintParseError {
    /// Another algorithm than SHA256 (or none at all).
    #[error("keyprint {text:?} is not SHA256/<base32>: only SHA256 keyprints exist in ADC")]
    Algorithm {
        /// The offending text (at most 64 characters).
        text: String,
    },
    /// The digest part is not 52 base32 characters of a 32-byte value.
    #[error("keyprint {text:?}: the digest must be 52 base32 characters (A-Z, 2-7)")]
    Digest {
        /// The offending text (at most 64 characters).
        text: String,
    },
}

impl Keyprint {
    /// The keyprint of a DER-encoded certificate.
    pub fn of_der(der: &[u8]) -> Keyprint {
        let digest = ring::digest::digest(&ring::digest::SHA256, der);
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(digest.as_ref());
        Keyprint(bytes)
    }

    /// A keyprint from its 32 digest bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Keyprint {
        Keyprint(bytes)
    }

    /// The 32 digest bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Parses `SHA256/<base32>`. The algorithm name and the base32 digits are
    /// accepted in any case (hub lists are not always careful); the canonical
    /// form ([`fmt::Display`]) is upper case.
    pub fn parse(text: &str) -> Result<Keyprint, KeyprintParseError> {
        let excerpt = || text.chars().take(64).collect::<String>();
        let digest = match text.split_once('/') {
            Some((alg, digest)) if alg.eq_ignore_ascii_case("SHA256") => digest,
            _ => return Err(KeyprintParseError::Algorithm { text: excerpt() }),
        };
        let digest = digest.to_ascii_uppercase();
        if digest.len() != BASE32_LEN {
            return Err(KeyprintParseError::Digest { text: excerpt() });
        }
        let decoded = BASE32_NOPAD
            .decode(digest.as_bytes())
            .map_err(|_| KeyprintParseError::Digest { text: excerpt() })?;
        let bytes: [u8; 32] =
            decoded.try_into().map_err(|_| KeyprintParseError::Digest { text: excerpt() })?;
        Ok(Keyprint(bytes))
    }
}

impl fmt::Display for Keyprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}{}", BASE32_NOPAD.encode(&self.0))
    }
}

impl fmt::Debug for Keyprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keyprint({self})")
    }
}

impl FromStr for Keyprint {
    type Err = KeyprintParseError;

    fn from_str(s: &str) -> Result<Keyprint, KeyprintParseError> {
        Keyprint::parse(s)
    }
}

impl serde::Serialize for Keyprint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Keyprint {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Keyprint, D::Error> {
        let text = String::deserialize(d)?;
        Keyprint::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SHA-256("abc") (FIPS 180-2, appendix B.1) in base32.
    const ABC: &str = "SHA256/XJ4BNP4PAHH6UQKBIDPF3LRCEOYAGYNDSYLXVHFUCD7WD4QACWWQ";

    #[test]
    fn digest_of_known_bytes() {
        assert_eq!(Keyprint::of_der(b"abc").to_string(), ABC);
        let hex = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        let bytes = data_encoding::HEXLOWER.decode(hex.as_bytes()).unwrap();
        assert_eq!(Keyprint::of_der(b"abc").as_bytes().as_slice(), bytes.as_slice());
    }

    #[test]
    fn parse_and_print() {
        // (text, parsed as canonical text, or the error's message)
        let table: &[(&str, Result<&str, &str>)] = &[
            (ABC, Ok(ABC)),
            (&ABC.to_ascii_lowercase(), Ok(ABC)),
            ("sha256/XJ4BNP4PAHH6UQKBIDPF3LRCEOYAGYNDSYLXVHFUCD7WD4QACWWQ", Ok(ABC)),
            (
                "SHA1/XJ4BNP4PAHH6UQKBIDPF3LRCEOYAGYNDSYLXVHFUCD7WD4QACWWQ",
                Err("only SHA256 keyprints exist"),
            ),
            ("XJ4BNP4PAHH6UQKBIDPF3LRCEOYAGYNDSYLXVHFUCD7WD4QACWWQ", Err("only SHA256")),
            ("SHA256/XJ4BNP4PAHH6UQKBIDPF3LRCEOYAGYNDSYLXVHFUCD7WD4QACWW", Err("52 base32")),
            ("SHA256/XJ4BNP4PAHH6UQKBIDPF3LRCEOYAGYNDSYLXVHFUCD7WD4QACWW1", Err("52 base32")),
            ("SHA256/", Err("52 base32")),
            ("SHA256/XJ4BNP4PAHH6UQKBIDPF3LRCEOYAGYNDSYLXVHFUCD7WD4QACWWR", Err("52 base32")),
            ("", Err("only SHA256")),
        ];
        for (text, want) in table {
            match (Keyprint::parse(text), want) {
                (Ok(kp), Ok(canon)) => assert_eq!(kp.to_string(), *canon, "{text}"),
                (Err(e), Err(part)) => assert!(e.to_string().contains(part), "{text}: {e}"),
                (got, want) => panic!("{text}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn serde_round_trip() {
        #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
        struct S {
            kp: Keyprint,
        }
        let s = S { kp: Keyprint::of_der(b"abc") };
        let text = toml::to_string(&s).unwrap();
        assert_eq!(text.trim(), format!("kp = \"{ABC}\""));
        assert_eq!(toml::from_str::<S>(&text).unwrap(), s);
        let bad = toml::from_str::<S>("kp = \"MD5/AAAA\"").unwrap_err().to_string();
        assert!(bad.contains("only SHA256"), "{bad}");
    }
}
