//! Connection requests (`$ConnectToMe`, `$RevConnectToMe`) and the
//! client-client commands: `$Direction`, `$ADCGET`/`$ADCSND`.
//!
//! `$ADCGET`/`$ADCSND` parameters are UTF-8 (they come from ADC) whatever the
//! hub charset, with the old ADC escaping (`\ ` for a space). Pure: no I/O.

use encoding_rs::Encoding;

use super::escape::{escape_adc_old, split_adc_old};
use super::search::split_host_port;
use super::text::{
    decode, parse_i64, parse_u32, parse_u64, push_i64, push_text, push_u64, split_byte,
};

/// The NAT-traversal role of a `$ConnectToMe` (`N`/`R` port suffix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatRole {
    /// `N`: a passive user asks another passive user to connect back through
    /// NAT traversal; the sender's nick follows the address.
    Request,
    /// `R`: the answer to an `N` request.
    Response,
}

/// `$ConnectToMe <remote> <ip>:<port>[N|R][S][ <sender>]`: asks `remote` to
/// open a client-client connection to `ip:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectToMe {
    /// The nick that should connect.
    pub remote: String,
    /// The address to connect to.
    pub ip: String,
    /// The TCP port.
    pub port: u16,
    /// `S` suffix: the connection must use TLS.
    pub tls: bool,
    /// `N`/`R` suffix: NAT traversal.
    pub nat: Option<NatRole>,
    /// The requesting nick, sent after the address with `N` (and first in the
    /// legacy `$ConnectToMe <sender> <remote> <ip:port>` form).
    pub sender: Option<String>,
}

impl ConnectToMe {
    /// A plain request for `remote` to connect to `ip:port`.
    pub fn new(remote: &str, ip: &str, port: u16) -> ConnectToMe {
        ConnectToMe {
            remote: remote.to_owned(),
            ip: ip.to_owned(),
            port,
            tls: false,
            nat: None,
            sender: None,
        }
    }

    /// Parses `$ConnectToMe` arguments.
    pub(crate) fn parse(args: &[u8], cs: &'static Encoding) -> Result<ConnectToMe, &'static str> {
        let mut tokens = args.split(|&b| b == b' ').filter(|t| !t.is_empty());
        let (a, b, c) = (tokens.next(), tokens.next(), tokens.next());
        if tokens.next().is_some() {
            return Err("too many parameters");
        }
        let (remote, addr, sender) = match (a, b, c) {
            (Some(remote), Some(addr), None) => (remote, addr, None),
            (Some(remote), Some(addr), Some(sender)) if addr.contains(&b':') => {
                (remote, addr, Some(sender))
            }
            // Legacy NMDC form: sender first.
            (Some(sender), Some(remote), Some(addr)) => (remote, addr, Some(sender)),
            _ => return Err("expected <nick> <ip>:<port>"),
        };
        // The suffix letters follow the port digits: "", S, N, R, NS, RS.
        let letters = addr.iter().rev().take_while(|b| b.is_ascii_alphabetic()).count();
        let (addr, suffix) = addr.split_at(addr.len() - letters);
        let (nat, tls) = match suffix {
            b"" => (None, false),
            b"S" => (None, true),
            b"N" => (Some(NatRole::Request), false),
            b"R" => (Some(NatRole::Response), false),
            b"NS" => (Some(NatRole::Request), true),
            b"RS" => (Some(NatRole::Response), true),
            _ => return Err("unknown port suffix"),
        };
        let (ip, port) = split_host_port(addr).ok_or("address is not <ip>:<port>")?;
        Ok(ConnectToMe {
            remote: decode(remote, cs),
            ip: decode(ip, cs),
            port,
            tls,
            nat,
            sender: sender.map(|s| decode(s, cs)),
        })
    }

    pub(crate) fn write(&self, out: &mut Vec<u8>, cs: &'static Encoding) {
        out.extend_from_slice(b"$ConnectToMe ");
        push_text(out, &self.remote, cs);
        out.push(b' ');
        push_text(out, &self.ip, cs);
        out.push(b':');
        push_u64(out, u64::from(self.port));
        match self.nat {
            Some(NatRole::Request) => out.push(b'N'),
            Some(NatRole::Response) => out.push(b'R'),
            None => {}
        }
        if self.tls {
            out.push(b'S');
        }
        if let Some(sender) = &self.sender {
            out.push(b' ');
            push_text(out, sender, cs);
        }
    }
}

/// Who wants to download in a client-client connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way {
    /// The sender wants to download.
    Download,
    /// The sender only uploads.
    Upload,
}

/// `$Direction <Download|Upload> <number>`: when both sides want to download,
/// the higher number wins (keep it at most 32767 for old clients).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Direction {
    /// What the sender wants to do.
    pub way: Way,
    /// The random tie-breaker.
    pub number: u32,
}

impl Direction {
    pub(crate) fn parse(args: &[u8]) -> Result<Direction, &'static str> {
        let (way, number) = split_byte(args, b' ').ok_or("expected <Download|Upload> <number>")?;
        let way = match way {
            b"Download" => Way::Download,
            b"Upload" => Way::Upload,
            _ => return Err("direction is neither Download nor Upload"),
        };
        let number = parse_u32(number.trim_ascii_end()).ok_or("number is not a u32")?;
        Ok(Direction { way, number })
    }

    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(match self.way {
            Way::Download => b"$Direction Download ",
            Way::Upload => b"$Direction Upload ",
        });
        push_u64(out, u64::from(self.number));
    }
}

/// The parameters shared by `$ADCGET` (a request) and `$ADCSND` (the answer
/// that precedes the data): `<type> <identifier> <start> <bytes>[ <flag>...]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdcTransfer {
    /// `file`, `tthl` or `list`.
    pub kind: String,
    /// `TTH/<base32>`, `files.xml.bz2`, or a share path (`/share/dir/`).
    pub identifier: String,
    /// The first byte.
    pub start: u64,
    /// The byte count; `-1` in a request means "to the end of the file".
    pub bytes: i64,
    /// ADC flags such as `ZL1` (zlib) or `RE1` (recursive list), as sent.
    pub flags: Vec<String>,
}

impl AdcTransfer {
    /// Parses the arguments after `$ADCGET ` or `$ADCSND `.
    pub(crate) fn parse(args: &[u8]) -> Result<AdcTransfer, &'static str> {
        let params = split_adc_old(args);
        let [kind, identifier, start, bytes, flags @ ..] = params.as_slice() else {
            return Err("expected <type> <identifier> <start> <bytes>");
        };
        let utf8 = encoding_rs::UTF_8;
        Ok(AdcTransfer {
            kind: decode(kind, utf8),
            identifier: decode(identifier, utf8),
            start: parse_u64(start).ok_or("start is not a number")?,
            bytes: parse_i64(bytes).ok_or("byte count is not a number")?,
            flags: flags.iter().map(|f| decode(f, utf8)).collect(),
        })
    }

    pub(crate) fn write(&self, out: &mut Vec<u8>, command: &[u8]) {
        let utf8 = encoding_rs::UTF_8;
        out.extend_from_slice(command);
        out.push(b' ');
        push_text(out, &escape_adc_old(&self.kind), utf8);
        out.push(b' ');
        push_text(out, &escape_adc_old(&self.identifier), utf8);
        out.push(b' ');
        push_u64(out, self.start);
        out.push(b' ');
        push_i64(out, self.bytes);
        for f in &self.flags {
            out.push(b' ');
            push_text(out, &escape_adc_old(f), utf8);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctm_suffixes() {
        let cs = encoding_rs::WINDOWS_1252;
        let c = ConnectToMe::parse(b"john 127.0.0.2:412NS peter", cs).unwrap();
        assert_eq!(
            (c.nat, c.tls, c.sender.as_deref()),
            (Some(NatRole::Request), true, Some("peter"))
        );
        let c = ConnectToMe::parse(b"peter 127.0.0.3:412RS", cs).unwrap();
        assert_eq!((c.nat, c.tls, c.port), (Some(NatRole::Response), true, 412));
        let c = ConnectToMe::parse(b"peter john 127.0.0.2:412", cs).unwrap();
        assert_eq!((c.remote.as_str(), c.sender.as_deref()), ("john", Some("peter")));
        assert!(ConnectToMe::parse(b"john 1.2.3.4:412X", cs).is_err());
        assert!(ConnectToMe::parse(b"john", cs).is_err());
        assert!(ConnectToMe::parse(b"john 1.2.3.4", cs).is_err());
    }

    #[test]
    fn direction() {
        assert_eq!(
            Direction::parse(b"Upload 3320"),
            Ok(Direction { way: Way::Upload, number: 3320 })
        );
        assert!(Direction::parse(b"Sideways 1").is_err());
        assert!(Direction::parse(b"Download -1").is_err());
    }
}
