//! ADC identities: the hub-assigned [`Sid`], the public [`Cid`], the private
//! [`Pid`], and [`AnyCid`] for CIDs of other lengths seen on the wire.
//!
//! Pure: no I/O. The only randomness is [`Pid::random`], which draws from the
//! thread-local generator of `rand` (a CSPRNG); nothing here reads a clock.
//!
//! Encoding (ADC.txt §Client identification, ADC-EXT §TIGR): a SID is 20 bits
//! written as 4 base32 characters; PID and CID are 24-byte Tiger values written
//! as 39 characters of RFC 4648 base32 without padding, and CID = Tiger(PID).

use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use data_encoding::{Encoding, BASE32_NOPAD};
use tiger::{Digest, Tiger};

/// The RFC 4648 base32 alphabet, as used by every ADC identifier.
const BASE32_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// Unpadded base32 that ignores the unused low bits of the last character.
///
/// 24 bytes are 192 bits but 39 characters carry 195: DC++ and uhub decode
/// without looking at the 3 spare bits, so a peer that leaves them non-zero is
/// still understood by everyone else. We do the same on input and always write
/// them as zero.
pub(crate) static BASE32_LENIENT: LazyLock<Encoding> = LazyLock::new(|| {
    let mut spec = BASE32_NOPAD.specification();
    spec.check_trailing_bits = false;
    // The specification is the valid BASE32_NOPAD one with a single relaxed
    // flag, so building it cannot fail; fall back to the strict encoding just
    // in case rather than panicking.
    spec.encoding().unwrap_or_else(|_| BASE32_NOPAD.clone())
});

/// The 5-bit value of one base32 character, or `None` if it is not one
/// (upper case only, as ADC requires).
#[inline]
pub(crate) fn base32_value(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'2'..=b'7' => Some(c - b'2' + 26),
        _ => None,
    }
}

/// Whether `text` is non-empty and made only of upper-case base32 characters.
pub(crate) fn is_base32(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|c| base32_value(c).is_some())
}

/// Keeps at most 64 characters of offending input for an error message.
pub(crate) fn excerpt(text: &str) -> String {
    text.chars().take(64).collect()
}

/// Why a text is not a valid ADC identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {text:?}: expected {expected}")]
pub struct IdentError {
    /// Which identifier was being read: `"SID"`, `"CID"` or `"PID"`.
    pub what: &'static str,
    /// The offending text (at most 64 characters of it).
    pub text: String,
    /// What a valid value looks like.
    pub expected: &'static str,
}

// ---------------------------------------------------------------------------
// SID

/// Session ID: 20 bits assigned by the hub, unique among its users, written as
/// 4 base32 characters (`AAAB`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sid(u32);

impl Sid {
    /// The largest SID value (20 bits).
    pub const MAX: u32 = (1 << 20) - 1;

    /// A SID from its numeric value; `None` if it does not fit in 20 bits.
    pub const fn new(value: u32) -> Option<Sid> {
        if value <= Self::MAX {
            Some(Sid(value))
        } else {
            None
        }
    }

    /// The numeric value (0 ..= 2^20 - 1).
    pub const fn value(self) -> u32 {
        self.0
    }

    /// Reads the 4-character wire form.
    pub fn from_bytes(text: &[u8]) -> Result<Sid, IdentError> {
        let err = || IdentError {
            what: "SID",
            text: excerpt(&String::from_utf8_lossy(text)),
            expected: "4 base32 characters (A-Z, 2-7)",
        };
        if text.len() != 4 {
            return Err(err());
        }
        let mut value = 0u32;
        for &c in text {
            value = (value << 5) | u32::from(base32_value(c).ok_or_else(err)?);
        }
        Ok(Sid(value))
    }

    /// The 4-character wire form as bytes.
    pub fn to_bytes(self) -> [u8; 4] {
        let mut out = [0u8; 4];
        for (i, slot) in out.iter_mut().enumerate() {
            let shift = 15 - 5 * i;
            *slot = BASE32_ALPHABET[((self.0 >> shift) & 31) as usize];
        }
        out
    }
}

impl fmt::Display for Sid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.to_bytes();
        // The alphabet is ASCII, so this never fails.
        f.write_str(std::str::from_utf8(&bytes).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for Sid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sid({self})")
    }
}

impl FromStr for Sid {
    type Err = IdentError;

    fn from_str(s: &str) -> Result<Sid, IdentError> {
        Sid::from_bytes(s.as_bytes())
    }
}

// ---------------------------------------------------------------------------
// CID and PID

/// Decodes 39 base32 characters into 24 bytes.
fn decode_tiger_id(what: &'static str, text: &str) -> Result<[u8; 24], IdentError> {
    let err =
        || IdentError { what, text: excerpt(text), expected: "39 base32 characters (A-Z, 2-7)" };
    if text.len() != 39 || !is_base32(text) {
        return Err(err());
    }
    // Into a buffer on the stack: a hub's user list decodes one per user.
    let mut out = [0u8; 24];
    match BASE32_LENIENT.decode_len(39) {
        Ok(24) => {}
        _ => return Err(err()),
    }
    BASE32_LENIENT.decode_mut(text.as_bytes(), &mut out).map_err(|_| err())?;
    Ok(out)
}

/// Client ID: the public identity of a client, Tiger(PID), 24 bytes shown as
/// 39 base32 characters. Stable across hubs and sessions.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cid(pub [u8; 24]);

impl Cid {
    /// The CID that belongs to `pid`: the Tiger hash of its 24 raw bytes.
    pub fn from_pid(pid: &Pid) -> Cid {
        let digest = Tiger::digest(pid.0);
        let mut out = [0u8; 24];
        out.copy_from_slice(&digest);
        Cid(out)
    }

    /// The raw 24 bytes.
    pub fn as_bytes(&self) -> &[u8; 24] {
        &self.0
    }

    /// Reads the 39-character base32 form.
    pub fn from_base32(text: &str) -> Result<Cid, IdentError> {
        decode_tiger_id("CID", text).map(Cid)
    }

    /// The 39-character base32 form.
    pub fn to_base32(&self) -> String {
        BASE32_NOPAD.encode(&self.0)
    }
}

impl fmt::Display for Cid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base32())
    }
}

impl fmt::Debug for Cid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cid({self})")
    }
}

impl FromStr for Cid {
    type Err = IdentError;

    fn from_str(s: &str) -> Result<Cid, IdentError> {
        Cid::from_base32(s)
    }
}

/// Private ID: a random 24-byte secret from which the CID is derived. It is
/// sent only to hubs (INF `PD`), never to other clients, and should stay the
/// same across sessions and hubs.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pid(pub [u8; 24]);

impl Pid {
    /// A fresh random PID (from the operating-system-seeded CSPRNG of `rand`).
    pub fn random() -> Pid {
        Pid(rand::random::<[u8; 24]>())
    }

    /// The raw 24 bytes.
    pub fn as_bytes(&self) -> &[u8; 24] {
        &self.0
    }

    /// The public CID derived from this PID: Tiger(PID).
    pub fn cid(&self) -> Cid {
        Cid::from_pid(self)
    }

    /// Reads the 39-character base32 form.
    pub fn from_base32(text: &str) -> Result<Pid, IdentError> {
        decode_tiger_id("PID", text).map(Pid)
    }

    /// The 39-character base32 form.
    pub fn to_base32(&self) -> String {
        BASE32_NOPAD.encode(&self.0)
    }
}

impl fmt::Display for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base32())
    }
}

/// Shows only that this is a PID: it is a secret and must not end up in logs.
impl fmt::Debug for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pid(<secret>)")
    }
}

impl FromStr for Pid {
    type Err = IdentError;

    fn from_str(s: &str) -> Result<Pid, IdentError> {
        Pid::from_base32(s)
    }
}

/// A CID as received from another client or hub.
///
/// ADC says CID length follows the session hash and clients must cope with
/// other lengths (ncdc learnt this in 1.16): a 39-character CID is decoded to a
/// [`Cid`], any other base32 text is kept as it came.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AnyCid {
    /// A 24-byte Tiger CID (the only kind real clients use today).
    Tiger(Cid),
    /// A CID of another length, kept as its base32 text.
    Other(Box<str>),
}

impl AnyCid {
    /// Reads a CID of any length: non-empty upper-case base32.
    pub fn parse(text: &str) -> Result<AnyCid, IdentError> {
        if text.len() == 39 {
            if let Ok(cid) = Cid::from_base32(text) {
                return Ok(AnyCid::Tiger(cid));
            }
        }
        if is_base32(text) {
            Ok(AnyCid::Other(text.into()))
        } else {
            Err(IdentError {
                what: "CID",
                text: excerpt(text),
                expected: "base32 characters (A-Z, 2-7)",
            })
        }
    }

    /// The Tiger CID, if this is one.
    pub fn as_tiger(&self) -> Option<&Cid> {
        match self {
            AnyCid::Tiger(cid) => Some(cid),
            AnyCid::Other(_) => None,
        }
    }
}

impl From<Cid> for AnyCid {
    fn from(cid: Cid) -> AnyCid {
        AnyCid::Tiger(cid)
    }
}

impl fmt::Display for AnyCid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnyCid::Tiger(cid) => cid.fmt(f),
            AnyCid::Other(text) => f.write_str(text),
        }
    }
}

impl fmt::Debug for AnyCid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnyCid::Tiger(cid) => cid.fmt(f),
            AnyCid::Other(text) => write!(f, "AnyCid({text})"),
        }
    }
}

impl FromStr for AnyCid {
    type Err = IdentError;

    fn from_str(s: &str) -> Result<AnyCid, IdentError> {
        AnyCid::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sid_round_trip_and_values() {
        for (text, value) in
            [("AAAA", 0), ("AAAB", 1), ("AAA7", 31), ("AABA", 32), ("7777", Sid::MAX)]
        {
            let sid: Sid = text.parse().unwrap();
            assert_eq!(sid.value(), value, "{text}");
            assert_eq!(sid.to_string(), text);
            assert_eq!(Sid::new(value), Some(sid));
        }
        assert_eq!(Sid::new(Sid::MAX + 1), None);
    }

    #[test]
    fn sid_rejects_bad_text() {
        for bad in ["", "AAA", "AAAAA", "aaab", "AA1A", "AA8A", "AA A", "ÄAAA"] {
            let err = bad.parse::<Sid>().unwrap_err();
            assert_eq!(err.what, "SID", "{bad:?}");
        }
    }

    #[test]
    fn tiger_is_the_original_tiger() {
        // https://docs.rs/tiger: Tiger("hello world"), original 0x01 padding.
        let digest = Tiger::digest(b"hello world");
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "4c8fbddae0b6f25832af45e7c62811bb64ec3e43691e9cc3");
    }

    #[test]
    fn cid_from_pid_matches_a_real_client() {
        // PID/CID pair sent by eiskaltdcpp 2.4.2 in its BINF to uhub
        // (tests/vectors/adc/eiskaltdcpp.txt); uhub accepted it, so it is
        // also what uhub computes.
        let pid: Pid = "T4F6PHIIDBCFBKQKPAOQ2VAKO3RJRFHGEKONO5Y".parse().unwrap();
        assert_eq!(pid.cid().to_string(), "6ZUFF4ZAJTKGBNELWAN7TKKWYPWQJ7DV3F5G4WQ");
        assert_eq!(format!("{pid:?}"), "Pid(<secret>)");
    }

    #[test]
    fn random_pids_differ_and_round_trip() {
        let a = Pid::random();
        let b = Pid::random();
        assert_ne!(a, b);
        assert_eq!(Pid::from_base32(&a.to_base32()).unwrap(), a);
        assert_eq!(a.to_base32().len(), 39);
    }

    #[test]
    fn lenient_trailing_bits() {
        // "...Q" and "...R" differ only in the 3 unused bits of the last
        // character: both decode to the same bytes, and we re-encode as "Q".
        let strict: Cid = "6ZUFF4ZAJTKGBNELWAN7TKKWYPWQJ7DV3F5G4WQ".parse().unwrap();
        let sloppy: Cid = "6ZUFF4ZAJTKGBNELWAN7TKKWYPWQJ7DV3F5G4WR".parse().unwrap();
        assert_eq!(strict, sloppy);
        assert_eq!(sloppy.to_string(), "6ZUFF4ZAJTKGBNELWAN7TKKWYPWQJ7DV3F5G4WQ");
    }

    #[test]
    fn any_cid_keeps_other_lengths() {
        let short = AnyCid::parse("ABCDEFGH").unwrap();
        assert_eq!(short, AnyCid::Other("ABCDEFGH".into()));
        assert_eq!(short.to_string(), "ABCDEFGH");
        let tiger = AnyCid::parse("6ZUFF4ZAJTKGBNELWAN7TKKWYPWQJ7DV3F5G4WQ").unwrap();
        assert!(tiger.as_tiger().is_some());
        for bad in ["", "abc", "AB CD", "A1"] {
            assert!(AnyCid::parse(bad).is_err(), "{bad:?}");
        }
    }
}
