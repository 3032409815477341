//! [`HubUrl`]: the one hub address type, parsed once (from the
//! configuration, `dc.connect`, a redirect) and carried parsed.
//!
//! `adc://host:port`, `adcs://host:port/?kp=SHA256/...` (ADC over TLS, with the
//! hub's keyprint), `dchub://host[:port]` or `nmdc://` (NMDC, port 411 by
//! default), `nmdcs://` (NMDC over TLS), and a bare `host[:port]`, which is
//! NMDC as hub lists and DC++ take it. IPv6 hosts are written in brackets.
//! A path after the host (`dchub://host/user`) and a `#fragment` are
//! ignored, and so is user information before an `@`; of the query, only
//! `kp` means something, other parameters are ignored.
//!
//! Pure: parsing and printing, no name resolution and no I/O.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;

use crate::tls::{CheckedAddress, Keyprint, OnChange, PeerCheck};

/// The NMDC port when an address has none.
pub const NMDC_DEFAULT_PORT: u16 = 411;

/// The protocol and transport an address names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HubScheme {
    /// `adc://`
    Adc,
    /// `adcs://`: ADC over TLS.
    Adcs,
    /// `dchub://` or `nmdc://`
    Nmdc,
    /// `nmdcs://`: NMDC over TLS.
    Nmdcs,
}

impl HubScheme {
    /// The canonical scheme name (`dchub` for plain NMDC).
    pub fn as_str(self) -> &'static str {
        match self {
            HubScheme::Adc => "adc",
            HubScheme::Adcs => "adcs",
            HubScheme::Nmdc => "dchub",
            HubScheme::Nmdcs => "nmdcs",
        }
    }

    /// Whether the connection starts with a TLS handshake.
    pub fn is_tls(self) -> bool {
        matches!(self, HubScheme::Adcs | HubScheme::Nmdcs)
    }

    /// Whether the hub speaks ADC (else NMDC).
    pub fn is_adc(self) -> bool {
        matches!(self, HubScheme::Adc | HubScheme::Adcs)
    }
}

/// A parsed hub address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HubUrl {
    /// Protocol and transport.
    pub scheme: HubScheme,
    /// Host name (lower case) or IP address (IPv6 without brackets).
    pub host: String,
    /// The TCP port.
    pub port: u16,
    /// The hub's certificate keyprint from `?kp=`, only on TLS addresses.
    pub keyprint: Option<Keyprint>,
}

/// Why a text is not a hub address; the message names the address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("hub address {url:?}: {reason}")]
pub struct HubUrlError {
    /// The address as given (at most 200 characters of it).
    pub url: String,
    /// What is wrong with it.
    pub reason: String,
}

impl HubUrl {
    /// Parses a hub address; see the module docs for the accepted forms.
    pub fn parse(url: &str) -> Result<HubUrl, HubUrlError> {
        HubUrl::parse_inner(url)
            .map_err(|reason| HubUrlError { url: url.chars().take(200).collect(), reason })
    }

    fn parse_inner(url: &str) -> Result<HubUrl, String> {
        if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("it contains spaces or control characters".into());
        }
        // No scheme: NMDC, as hub lists write `host:port`.
        let (scheme, rest) = url.split_once("://").unwrap_or(("dchub", url));
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "adc" => HubScheme::Adc,
            "adcs" => HubScheme::Adcs,
            "dchub" | "nmdc" => HubScheme::Nmdc,
            "nmdcs" => HubScheme::Nmdcs,
            other => {
                return Err(format!(
                    "unknown scheme \"{other}\" (use adc, adcs, dchub, nmdc or nmdcs)"
                ))
            }
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        // `user@host`: the user part names nobody we log in as.
        let authority = authority.rsplit('@').next().unwrap_or_default();
        let (host, port) = split_host_port(authority)?;
        let port = match port {
            Some(p) => match p.parse::<u16>() {
                Ok(p) if p > 0 => p,
                _ => return Err(format!("\"{p}\" is not a port (1 to 65535)")),
            },
            None if scheme.is_adc() => {
                return Err(format!(
                    "ADC addresses need a port, as in \"{}://{host}:1511\"",
                    scheme.as_str()
                ))
            }
            None => NMDC_DEFAULT_PORT,
        };
        let keyprint = parse_query(tail)?;
        if keyprint.is_some() && !scheme.is_tls() {
            return Err(format!(
                "a keyprint (kp=) needs a TLS address: {}s://",
                if scheme.is_adc() { "adc" } else { "nmdc" }
            ));
        }
        Ok(HubUrl { scheme, host, port, keyprint })
    }

    /// Whether the connection starts with a TLS handshake.
    pub fn is_tls(&self) -> bool {
        self.scheme.is_tls()
    }

    /// Whether the hub speaks ADC (else NMDC).
    pub fn is_adc(&self) -> bool {
        self.scheme.is_adc()
    }

    /// `"adc"` or `"nmdc"`: the protocol family, whatever the transport.
    pub fn protocol_name(&self) -> &'static str {
        if self.is_adc() {
            "adc"
        } else {
            "nmdc"
        }
    }

    /// Two addresses naming the same hub have the same identity
    /// (`nmdc://host:port`, `adc://host:port`): `dchub://h` and `h:411` are
    /// one hub, and so are `adc://` and `adcs://` on one port.
    pub fn identity(&self) -> String {
        format!("{}://{}", self.protocol_name(), self.authority())
    }

    /// `host:port` (`[v6]:port`): what `connect` takes after resolution, and
    /// the hub's key in the trust-on-first-use store.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// How to check this hub's certificate: against `?kp=` when the address
    /// has one, else by trust on first use under [`authority`](Self::authority).
    pub fn peer_check(&self, on_change: OnChange) -> PeerCheck {
        PeerCheck {
            server_name: self.host.clone(),
            expected: self.keyprint,
            trust_key: Some(self.authority()),
            on_change,
        }
    }
}

// How `TlsContext::hub_client` checks a hub: `tls` sits below this module and
// names no address type, so the address says it through the trait.
impl CheckedAddress for HubUrl {
    fn peer_check(&self, on_change: OnChange) -> PeerCheck {
        HubUrl::peer_check(self, on_change)
    }
}

impl fmt::Display for HubUrl {
    /// The canonical form: `adcs://host:port/?kp=SHA256/...`, `dchub://host:port`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme.as_str(), self.authority())?;
        if let Some(kp) = &self.keyprint {
            write!(f, "/?kp={kp}")?;
        }
        Ok(())
    }
}

impl FromStr for HubUrl {
    type Err = HubUrlError;

    fn from_str(s: &str) -> Result<HubUrl, HubUrlError> {
        HubUrl::parse(s)
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`.
fn split_host_port(authority: &str) -> Result<(String, Option<&str>), String> {
    if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or("an IPv6 address is missing its \"]\"")?;
        let ip: Ipv6Addr =
            host.parse().map_err(|_| format!("\"{host}\" is not an IPv6 address"))?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or("unexpected text after the IPv6 address")?),
        };
        return Ok((ip.to_string(), port));
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    if host.is_empty() {
        return Err("the host is missing".into());
    }
    // `0::ad:411` could be an IPv6 address with or without a port: IPv6
    // addresses go in brackets (found by fuzzing).
    if host.contains(':') {
        return Err("an IPv6 address must be written in brackets, as in [::1]:411".into());
    }
    if !is_host(host) {
        return Err(format!("\"{host}\" is not a host name"));
    }
    Ok((host.to_ascii_lowercase(), port))
}

/// A host name (letters, digits, `-`, `_`, dot-separated) or an IPv4 address.
fn is_host(text: &str) -> bool {
    if text.parse::<IpAddr>().is_ok() {
        return true;
    }
    text.len() <= 253
        && text.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        })
}

/// The keyprint from the query of `tail` (`/path?a=b&kp=...#frag`).
fn parse_query(tail: &str) -> Result<Option<Keyprint>, String> {
    let Some((_, query)) = tail.split_once('?') else { return Ok(None) };
    let query = query.split('#').next().unwrap_or_default();
    let mut keyprint = None;
    for pair in query.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if !name.eq_ignore_ascii_case("kp") {
            continue;
        }
        let value = percent_decode(value).ok_or("the kp value has a broken %-escape")?;
        let kp = Keyprint::parse(&value).map_err(|e| e.to_string())?;
        if keyprint.is_some_and(|k| k != kp) {
            return Err("it has two different keyprints (kp=)".into());
        }
        keyprint = Some(kp);
    }
    Ok(keyprint)
}

/// Decodes `%XX` escapes (hub lists sometimes write `SHA256%2F...`).
fn percent_decode(text: &str) -> Option<String> {
    if !text.contains('%') {
        return Some(text.to_string());
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KP: &str = "SHA256/XJ4BNP4PAHH6UQKBIDPF3LRCEOYAGYNDSYLXVHFUCD7WD4QACWWQ";

    #[test]
    fn addresses() {
        let kp = Some(Keyprint::parse(KP).unwrap());
        // (text, (scheme, host, port, keyprint), canonical form)
        type Parsed<'a> = (HubScheme, &'a str, u16, Option<Keyprint>);
        let ok: &[(&str, Parsed, &str)] = &[
            (
                "adc://127.0.0.1:1511",
                (HubScheme::Adc, "127.0.0.1", 1511, None),
                "adc://127.0.0.1:1511",
            ),
            (
                &format!("adcs://Hub.Example.org:1511/?kp={KP}"),
                (HubScheme::Adcs, "hub.example.org", 1511, kp),
                &format!("adcs://hub.example.org:1511/?kp={KP}"),
            ),
            (
                &format!("ADCS://hub.example.org:1511?kp={}", KP.to_lowercase()),
                (HubScheme::Adcs, "hub.example.org", 1511, kp),
                &format!("adcs://hub.example.org:1511/?kp={KP}"),
            ),
            (
                &format!("adcs://h:1/?foo=bar&kp={}&x", KP.replace('/', "%2F")),
                (HubScheme::Adcs, "h", 1, kp),
                &format!("adcs://h:1/?kp={KP}"),
            ),
            ("adcs://h:1/", (HubScheme::Adcs, "h", 1, None), "adcs://h:1"),
            (
                "dchub://hub.example.org",
                (HubScheme::Nmdc, "hub.example.org", 411, None),
                "dchub://hub.example.org:411",
            ),
            (
                "nmdc://hub.example.org:4111/nick/x",
                (HubScheme::Nmdc, "hub.example.org", 4111, None),
                "dchub://hub.example.org:4111",
            ),
            (
                &format!("nmdcs://[::1]:4112/?kp={KP}"),
                (HubScheme::Nmdcs, "::1", 4112, kp),
                &format!("nmdcs://[::1]:4112/?kp={KP}"),
            ),
            ("nmdcs://[::1]", (HubScheme::Nmdcs, "::1", 411, None), "nmdcs://[::1]:411"),
            ("adc://h:1#frag", (HubScheme::Adc, "h", 1, None), "adc://h:1"),
            (
                "hub.example.org",
                (HubScheme::Nmdc, "hub.example.org", 411, None),
                "dchub://hub.example.org:411",
            ),
            ("127.0.0.1:412", (HubScheme::Nmdc, "127.0.0.1", 412, None), "dchub://127.0.0.1:412"),
            ("[::1]:4111", (HubScheme::Nmdc, "::1", 4111, None), "dchub://[::1]:4111"),
            ("dchub://user@h:5/path", (HubScheme::Nmdc, "h", 5, None), "dchub://h:5"),
        ];
        for (text, (scheme, host, port, keyprint), canonical) in ok {
            let url = HubUrl::parse(text).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                (url.scheme, url.host.as_str(), url.port, url.keyprint),
                (*scheme, *host, *port, *keyprint),
                "{text}"
            );
            assert_eq!(url.to_string(), *canonical, "{text}");
            assert_eq!(HubUrl::parse(canonical).as_ref(), Ok(&url), "{canonical} re-parses");
        }
    }

    #[test]
    fn bad_addresses_say_why() {
        let bad: &[(&str, &str)] = &[
            ("hub.example.org:x", "\"x\" is not a port"),
            ("dchub://:5", "the host is missing"),
            ("0::ad:411/", "must be written in brackets"),
            ("adc://::1:1511", "must be written in brackets"),
            ("http://x:1", "unknown scheme \"http\""),
            ("adc://x", "ADC addresses need a port, as in \"adc://x:1511\""),
            ("adcs://:1511", "the host is missing"),
            ("adc://x:0", "\"0\" is not a port"),
            ("adc://x:99999", "\"99999\" is not a port"),
            ("adc://x y:1", "spaces"),
            ("adc://[::1:1511", "missing its \"]\""),
            ("adc://[zz]:1", "\"zz\" is not an IPv6 address"),
            ("adc://[::1]x", "unexpected text after the IPv6 address"),
            ("adc://a..b:1", "\"a..b\" is not a host name"),
            (&format!("adc://h:1/?kp={KP}"), "a keyprint (kp=) needs a TLS address: adcs://"),
            (&format!("dchub://h/?kp={KP}"), "needs a TLS address: nmdcs://"),
            ("adcs://h:1/?kp=SHA1/AAAA", "only SHA256 keyprints"),
            ("adcs://h:1/?kp=SHA256/AAAA", "52 base32 characters"),
            ("adcs://h:1/?kp=SHA256%2", "broken %-escape"),
            (
                &format!("adcs://h:1/?kp={KP}&kp=SHA256/{}", "A".repeat(52)),
                "two different keyprints",
            ),
        ];
        for (text, part) in bad {
            let err = HubUrl::parse(text).expect_err(text).to_string();
            assert!(err.contains(part), "{text}: {err}");
            assert!(err.starts_with("hub address "), "{err}");
        }
    }

    #[test]
    fn peer_check_uses_the_authority_as_trust_key() {
        let url = HubUrl::parse(&format!("adcs://[::1]:1511/?kp={KP}")).unwrap();
        let check = url.peer_check(OnChange::Refuse);
        assert_eq!(check.trust_key.as_deref(), Some("[::1]:1511"));
        assert_eq!(check.server_name, "::1");
        assert_eq!(check.expected, url.keyprint);
        assert!(url.is_tls() && url.is_adc());
        let plain = HubUrl::parse("dchub://h").unwrap();
        assert!(!plain.is_tls() && !plain.is_adc());
        assert_eq!(plain.peer_check(OnChange::Accept).expected, None);
    }
}
