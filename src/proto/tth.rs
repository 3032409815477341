//! The Tiger Tree Hash (TTH) that identifies every file on Direct Connect.
//!
//! Pure: no I/O. This module owns the [`Tth`] value type (a 192-bit Tiger tree
//! root, written as 39 characters of unpadded RFC 4648 base32).

use std::fmt;
use std::str::FromStr;

use data_encoding::BASE32_NOPAD;

/// A Tiger tree root: 24 bytes, shown as 39 base32 characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tth(pub [u8; 24]);

impl Tth {
    /// The raw 24 bytes.
    pub fn as_bytes(&self) -> &[u8; 24] {
        &self.0
    }

    /// The 39-character base32 form.
    pub fn to_base32(&self) -> String {
        BASE32_NOPAD.encode(&self.0)
    }
}

impl fmt::Display for Tth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base32())
    }
}

impl fmt::Debug for Tth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tth({self})")
    }
}

/// Why a text is not a TTH.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid TTH {text:?}: expected 39 base32 characters (A-Z, 2-7)")]
pub struct ParseTthError {
    text: String,
}

impl FromStr for Tth {
    type Err = ParseTthError;

    fn from_str(s: &str) -> Result<Tth, ParseTthError> {
        let err = || ParseTthError { text: s.chars().take(64).collect() };
        if s.len() != 39 {
            return Err(err());
        }
        // Base32 is case-insensitive in practice; accept lower case input.
        let upper = s.to_ascii_uppercase();
        let bytes = BASE32_NOPAD.decode(upper.as_bytes()).map_err(|_| err())?;
        let arr: [u8; 24] = bytes.try_into().map_err(|_| err())?;
        Ok(Tth(arr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_round_trip() {
        let text = "LWPNACQDBZRYXW3VHJVCJ64QBZNGHOHHHZWCLNQ";
        let tth: Tth = text.parse().unwrap();
        assert_eq!(tth.to_string(), text);
        assert_eq!(text.to_lowercase().parse::<Tth>().unwrap(), tth);
    }

    #[test]
    fn rejects_bad_text() {
        for bad in ["", "ABC", "LWPNACQDBZRYXW3VHJVCJ64QBZNGHOHHHZWCLN1", "x".repeat(39).as_str()] {
            assert!(bad.parse::<Tth>().is_err(), "{bad:?}");
        }
    }
}
