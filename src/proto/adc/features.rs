//! ADC feature names (`BASE`, `TIGR`, `TCP4`, ...), the feature filter of
//! `F` messages (`+TCP4-NAT0`), and the feature sets real clients announce.
//!
//! Pure: no I/O. Which features dclua actually announces is the session's
//! decision; this module only names them, as they are spelt in the wild.
//!
//! Names in the wild differ from the ADC-EXT section titles (protocols.md §4,
//! pitfall 1): INF `SU` carries `ADC0` for TLS transfers (not `ADCS`), `NAT0`
//! (not `NATT`), `SUD1` (not `SUDP`), `BLO0`, `UCM0`; clients send `ADBAS0` as
//! well as `ADBASE` in SUP, and `BAS0` implies `TIGR`.

use std::fmt;
use std::str::FromStr;

use super::ident::excerpt;

/// A feature name: four ASCII characters (upper-case letters and digits in
/// practice; ADC allows codepoints 33-127).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Feature([u8; 4]);

impl Feature {
    /// ADC base protocol (`ADBASE` in SUP).
    pub const BASE: Feature = Feature(*b"BASE");
    /// The legacy name of BASE that DC++-derived clients still send first.
    pub const BAS0: Feature = Feature(*b"BAS0");
    /// Tiger hashes for files, CIDs and passwords (ADC-EXT TIGR).
    pub const TIGR: Feature = Feature(*b"TIGR");
    /// `files.xml.bz2` file lists (C-C SUP).
    pub const BZIP: Feature = Feature(*b"BZIP");
    /// Whole-stream zlib compression with `ZON`/`ZOF` (hub SUP).
    pub const ZLIF: Feature = Feature(*b"ZLIF");
    /// Per-transfer zlib compression with the `ZL1` GET/SND flag (C-C SUP).
    pub const ZLIG: Feature = Feature(*b"ZLIG");
    /// User commands (`ICMD`), as spelt by clients.
    pub const UCM0: Feature = Feature(*b"UCM0");
    /// User commands (`ICMD`), as spelt by hubs (uhub: `ADUCMD`).
    pub const UCMD: Feature = Feature(*b"UCMD");
    /// Bloom filters of the share's TTHs, as spelt by clients.
    pub const BLO0: Feature = Feature(*b"BLO0");
    /// Hub pinger information in the hub INF (uhub: `ADPING`).
    pub const PING: Feature = Feature(*b"PING");
    /// Hybrid connectivity check (AirDC++ HBRI).
    pub const HBRI: Feature = Feature(*b"HBRI");
    /// SU: accepts incoming TCP over IPv4 (active).
    pub const TCP4: Feature = Feature(*b"TCP4");
    /// SU: accepts incoming TCP over IPv6 (active).
    pub const TCP6: Feature = Feature(*b"TCP6");
    /// SU: accepts UDP over IPv4 (search results).
    pub const UDP4: Feature = Feature(*b"UDP4");
    /// SU: accepts UDP over IPv6 (search results).
    pub const UDP6: Feature = Feature(*b"UDP6");
    /// SU: TLS client-client connections (`ADCS/0.10` in CTM/RCM).
    pub const ADC0: Feature = Feature(*b"ADC0");
    /// SU: NAT traversal between passive users (`NAT`/`RNT`).
    pub const NAT0: Feature = Feature(*b"NAT0");
    /// SU: extension groups in searches (`GR`/`RX`).
    pub const SEGA: Feature = Feature(*b"SEGA");
    /// SU: encrypted UDP search results.
    pub const SUD1: Feature = Feature(*b"SUD1");
    /// SU: extended searches (ASCH).
    pub const ASCH: Feature = Feature(*b"ASCH");
    /// SU: client-client private messages (AirDC++, DC++).
    pub const CCPM: Feature = Feature(*b"CCPM");
    /// SU: keyprints (`KP` in INF).
    pub const KEYP: Feature = Feature(*b"KEYP");

    /// A feature from its four bytes; `None` unless they are ASCII 33-127.
    pub const fn from_bytes(bytes: [u8; 4]) -> Option<Feature> {
        let mut i = 0;
        while i < 4 {
            if bytes[i] < 33 || bytes[i] > 127 {
                return None;
            }
            i += 1;
        }
        Some(Feature(bytes))
    }

    /// A feature from its text; `None` unless it is 4 characters of ASCII
    /// 33-127.
    pub fn parse(text: &str) -> Option<Feature> {
        let bytes: [u8; 4] = text.as_bytes().try_into().ok()?;
        Feature::from_bytes(bytes)
    }

    /// The four bytes.
    pub const fn as_bytes(&self) -> &[u8; 4] {
        &self.0
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        // Only ASCII is ever stored.
        std::str::from_utf8(&self.0).unwrap_or("????")
    }
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Feature({self})")
    }
}

/// Why a text is not a feature name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid feature name {text:?}: expected 4 characters of ASCII 33-127")]
pub struct FeatureError {
    /// The offending text (at most 64 characters).
    pub text: String,
}

impl FromStr for Feature {
    type Err = FeatureError;

    fn from_str(s: &str) -> Result<Feature, FeatureError> {
        Feature::parse(s).ok_or_else(|| FeatureError { text: excerpt(s) })
    }
}

/// What dclua sends in its first hub `HSUP`: the features every ADC client
/// needs. eiskaltdcpp 2.4.2 sends `HSUP ADBAS0 ADBASE ADTIGR ADUCM0 ADBLO0
/// ADZLIF`; a session adds [`Feature::UCM0`], [`Feature::BLO0`] or
/// [`Feature::ZLIF`] only once it implements them.
pub const HUB_SUP: [Feature; 3] = [Feature::BAS0, Feature::BASE, Feature::TIGR];

/// What a client sends in a client-client `CSUP`, exactly as eiskaltdcpp
/// 2.4.2 does: `CSUP ADBAS0 ADBASE ADTIGR ADBZIP`.
pub const CC_SUP: [Feature; 4] = [Feature::BAS0, Feature::BASE, Feature::TIGR, Feature::BZIP];

/// INF `SU` of an active IPv4 client, as eiskaltdcpp sends it:
/// `SUSEGA,TCP4,UDP4`.
pub const SU_ACTIVE4: [Feature; 3] = [Feature::SEGA, Feature::TCP4, Feature::UDP4];

/// INF `SU` of a passive client that can do NAT traversal, as eiskaltdcpp
/// sends it: `SUSEGA,NAT0`.
pub const SU_PASSIVE: [Feature; 2] = [Feature::SEGA, Feature::NAT0];

/// Writes features as the comma-separated INF `SU` value.
pub fn join_features(features: &[Feature]) -> String {
    let mut out = String::with_capacity(features.len() * 5);
    for (i, f) in features.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(f.as_str());
    }
    out
}

/// Reads a comma-separated INF `SU` value.
///
/// Empty items (`TCP4,,UDP4`, a trailing comma) are skipped; an item that is
/// not a 4-character name is an error naming it.
pub fn split_features(text: &str) -> Result<Vec<Feature>, FeatureError> {
    text.split(',').filter(|item| !item.is_empty()).map(str::parse).collect()
}

/// One condition of a feature filter: `+NAME` (required) or `-NAME`
/// (excluded).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FeatureCondition {
    /// `true` for `+` (the recipient must support it), `false` for `-` (it
    /// must not).
    pub required: bool,
    /// The feature tested against the recipient's INF `SU`.
    pub feature: Feature,
}

/// The feature filter of an `F` message (`FSCH AAAB +TCP4-NAT0 ...`): the hub
/// relays the message to clients that support every `+` feature and none of
/// the `-` ones. The order of conditions is kept.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct FeatureFilter(pub Vec<FeatureCondition>);

/// Why a token is not a feature filter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid feature filter {text:?}: expected one or more +NAME or -NAME items")]
pub struct FeatureFilterError {
    /// The offending text (at most 64 characters).
    pub text: String,
}

impl FeatureFilter {
    /// An empty filter (which is not valid on the wire; add conditions).
    pub fn new() -> FeatureFilter {
        FeatureFilter(Vec::new())
    }

    /// Adds a required (`+`) feature.
    pub fn require(mut self, feature: Feature) -> FeatureFilter {
        self.0.push(FeatureCondition { required: true, feature });
        self
    }

    /// Adds an excluded (`-`) feature.
    pub fn exclude(mut self, feature: Feature) -> FeatureFilter {
        self.0.push(FeatureCondition { required: false, feature });
        self
    }

    /// Reads the wire token (`+TCP4-NAT0`).
    pub fn parse(text: &str) -> Result<FeatureFilter, FeatureFilterError> {
        let err = || FeatureFilterError { text: excerpt(text) };
        let bytes = text.as_bytes();
        if bytes.is_empty() || bytes.len() % 5 != 0 {
            return Err(err());
        }
        let mut conditions = Vec::with_capacity(bytes.len() / 5);
        for chunk in bytes.chunks_exact(5) {
            let required = match chunk[0] {
                b'+' => true,
                b'-' => false,
                _ => return Err(err()),
            };
            let name: [u8; 4] = [chunk[1], chunk[2], chunk[3], chunk[4]];
            // '+' and '-' are valid feature bytes (ASCII 33-127) but would
            // make the token ambiguous; no real feature contains them.
            if name.iter().any(|&b| b == b'+' || b == b'-') {
                return Err(err());
            }
            let feature = Feature::from_bytes(name).ok_or_else(err)?;
            conditions.push(FeatureCondition { required, feature });
        }
        Ok(FeatureFilter(conditions))
    }

    /// Whether a client whose `SU` is `supports` passes the filter.
    pub fn matches(&self, supports: impl Fn(Feature) -> bool) -> bool {
        self.0.iter().all(|c| supports(c.feature) == c.required)
    }

    /// The required (`+`) features.
    pub fn required(&self) -> impl Iterator<Item = Feature> + '_ {
        self.0.iter().filter(|c| c.required).map(|c| c.feature)
    }

    /// The excluded (`-`) features.
    pub fn excluded(&self) -> impl Iterator<Item = Feature> + '_ {
        self.0.iter().filter(|c| !c.required).map(|c| c.feature)
    }

    /// Appends the wire token to `out`.
    pub(crate) fn encode_into(&self, out: &mut Vec<u8>) {
        for c in &self.0 {
            out.push(if c.required { b'+' } else { b'-' });
            out.extend_from_slice(c.feature.as_bytes());
        }
    }
}

impl fmt::Display for FeatureFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.0 {
            write!(f, "{}{}", if c.required { '+' } else { '-' }, c.feature)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feature_names() {
        assert_eq!("TCP4".parse::<Feature>().unwrap(), Feature::TCP4);
        assert_eq!(Feature::ADC0.to_string(), "ADC0");
        for bad in ["", "TCP", "TCP44", "TC P", "TCPé"] {
            assert!(bad.parse::<Feature>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn su_lists() {
        assert_eq!(join_features(&SU_ACTIVE4), "SEGA,TCP4,UDP4");
        assert_eq!(join_features(&SU_PASSIVE), "SEGA,NAT0");
        assert_eq!(split_features("SEGA,TCP4,UDP4").unwrap(), SU_ACTIVE4);
        assert_eq!(split_features("TCP4,,UDP4,").unwrap(), [Feature::TCP4, Feature::UDP4]);
        assert_eq!(split_features("").unwrap(), []);
        assert!(split_features("TCP4,TOOLONG").is_err());
    }

    #[test]
    fn filters() {
        let f = FeatureFilter::parse("+TCP4-NAT0").unwrap();
        assert_eq!(f, FeatureFilter::new().require(Feature::TCP4).exclude(Feature::NAT0));
        assert_eq!(f.to_string(), "+TCP4-NAT0");
        let mut wire = Vec::new();
        f.encode_into(&mut wire);
        assert_eq!(wire, b"+TCP4-NAT0");
        assert!(f.matches(|x| x == Feature::TCP4));
        assert!(!f.matches(|x| x == Feature::TCP4 || x == Feature::NAT0));
        assert!(!f.matches(|_| false));
        assert_eq!(f.required().collect::<Vec<_>>(), [Feature::TCP4]);
        assert_eq!(f.excluded().collect::<Vec<_>>(), [Feature::NAT0]);
        for bad in ["", "+", "TCP4", "+TCP", "*TCP4", "+TCP4-", "+TC+4", "+TCP4 -NAT0"] {
            assert!(FeatureFilter::parse(bad).is_err(), "{bad:?}");
        }
    }
}
