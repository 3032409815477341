//! Searches (`$Search`) and search results (`$SR`).
//!
//! Search patterns use the DC++ HTML escaping and `$` for spaces; `$SR` paths
//! are sent without any escaping and use `\` as the separator. Pure: no I/O.

use encoding_rs::Encoding;

use super::escape::escape;
use super::text::{
    decode, decode_unescaped, find_byte, parse_u32, parse_u64, push_text, push_u64, rfind,
    split_byte,
};
use crate::proto::tth::Tth;

/// Known `$Search` data types (`nmdc.md` §`$Search`); 10 to 13 appear in the
/// wild with client-specific meanings.
pub mod file_type {
    /// Any file type.
    pub const ANY: u8 = 1;
    /// Audio files.
    pub const AUDIO: u8 = 2;
    /// Compressed files.
    pub const COMPRESSED: u8 = 3;
    /// Documents.
    pub const DOCUMENT: u8 = 4;
    /// Executables.
    pub const EXECUTABLE: u8 = 5;
    /// Pictures.
    pub const PICTURE: u8 = 6;
    /// Video files.
    pub const VIDEO: u8 = 7;
    /// Folders.
    pub const FOLDER: u8 = 8;
    /// A TTH search (pattern `TTH:<base32>`).
    pub const TTH: u8 = 9;
}

/// Where results for a search must go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchSource {
    /// An active searcher: results go by UDP to `ip:port`.
    Active {
        /// The address as sent (IPv4, a host name, or a bracketed IPv6).
        ip: String,
        /// The UDP port.
        port: u16,
    },
    /// A passive searcher (`Hub:<nick>`): results go through the hub.
    Passive {
        /// The searcher's nick.
        nick: String,
    },
}

/// The size restriction of a search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeLimit {
    /// No restriction (`F?T?0`).
    None,
    /// Files of at least this many bytes (`T?F?<size>`).
    AtLeast(u64),
    /// Files of at most this many bytes (`T?T?<size>`).
    AtMost(u64),
}

/// What is searched for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchPattern {
    /// Words separated by spaces (sent with `$` for spaces, HTML-escaped).
    Text(String),
    /// A TTH search (`TTH:<base32>`, data type 9).
    Tth(Tth),
}

/// A search: `$Search <ip:port | Hub:nick> <limited>?<is max>?<size>?<type>?<pattern>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Search {
    /// Who searches and where results go.
    pub source: SearchSource,
    /// The size restriction.
    pub size: SizeLimit,
    /// The data type (see [`file_type`]); kept as sent, even when unknown.
    pub file_type: u8,
    /// The pattern.
    pub pattern: SearchPattern,
}

impl Search {
    /// Parses `$Search` arguments.
    pub(crate) fn parse(args: &[u8], cs: &'static Encoding) -> Result<Search, &'static str> {
        let (source, query) = split_byte(args, b' ').ok_or("missing search string")?;
        let source = match source.strip_prefix(b"Hub:") {
            Some(nick) if !nick.is_empty() => SearchSource::Passive { nick: decode(nick, cs) },
            Some(_) => return Err("empty nick after \"Hub:\""),
            None => {
                let (ip, port) =
                    split_host_port(source).ok_or("source is neither ip:port nor Hub:nick")?;
                SearchSource::Active { ip: decode(ip, cs), port }
            }
        };
        // The pattern is everything after the fourth `?`: it may contain `?`.
        let mut parts = query.splitn(5, |&b| b == b'?');
        let restricted = parts.next().ok_or("empty search string")?;
        let is_max = parts.next().ok_or("missing size type")?;
        let size = parts.next().ok_or("missing size")?;
        let file_type = parts.next().ok_or("missing data type")?;
        let pattern = parts.next().ok_or("missing pattern")?;
        let size = match restricted {
            b"F" => SizeLimit::None,
            b"T" => {
                let n = parse_u64(size).ok_or("size is not a number")?;
                match is_max {
                    b"T" => SizeLimit::AtMost(n),
                    b"F" => SizeLimit::AtLeast(n),
                    _ => return Err("size type is neither T nor F"),
                }
            }
            _ => return Err("size restriction is neither T nor F"),
        };
        let file_type = parse_u32(file_type)
            .and_then(|t| u8::try_from(t).ok())
            .ok_or("data type is not a number from 0 to 255")?;
        let pattern = match pattern.strip_prefix(b"TTH:") {
            Some(b32) if file_type == file_type::TTH => {
                let text = std::str::from_utf8(b32).map_err(|_| "TTH is not base32")?;
                SearchPattern::Tth(text.parse().map_err(|_| "TTH is not 39 base32 characters")?)
            }
            _ => {
                // `$` stands for a space; then undo the HTML escaping.
                let spaced: Vec<u8> =
                    pattern.iter().map(|&b| if b == b'$' { b' ' } else { b }).collect();
                SearchPattern::Text(decode_unescaped(&spaced, cs))
            }
        };
        Ok(Search { source, size, file_type, pattern })
    }

    pub(crate) fn write(&self, out: &mut Vec<u8>, cs: &'static Encoding) {
        out.extend_from_slice(b"$Search ");
        match &self.source {
            SearchSource::Active { ip, port } => {
                push_text(out, ip, cs);
                out.push(b':');
                push_u64(out, u64::from(*port));
            }
            SearchSource::Passive { nick } => {
                out.extend_from_slice(b"Hub:");
                push_text(out, nick, cs);
            }
        }
        out.push(b' ');
        match self.size {
            SizeLimit::None => out.extend_from_slice(b"F?T?0?"),
            SizeLimit::AtLeast(n) => {
                out.extend_from_slice(b"T?F?");
                push_u64(out, n);
                out.push(b'?');
            }
            SizeLimit::AtMost(n) => {
                out.extend_from_slice(b"T?T?");
                push_u64(out, n);
                out.push(b'?');
            }
        }
        push_u64(out, u64::from(self.file_type));
        out.push(b'?');
        match &self.pattern {
            SearchPattern::Tth(tth) => {
                out.extend_from_slice(b"TTH:");
                out.extend_from_slice(tth.to_base32().as_bytes());
            }
            SearchPattern::Text(words) => {
                let escaped = escape(words);
                let dollars: String =
                    escaped.chars().map(|c| if c == ' ' { '$' } else { c }).collect();
                push_text(out, &dollars, cs);
            }
        }
    }
}

/// Splits `host:port` at the last `:`; the port must be a `u16`.
pub(crate) fn split_host_port(addr: &[u8]) -> Option<(&[u8], u16)> {
    let i = addr.iter().rposition(|&b| b == b':')?;
    let port = u16::try_from(parse_u32(&addr[i + 1..])?).ok()?;
    (i > 0).then_some((&addr[..i], port))
}

/// The field of `$SR` that names the hub, or a TTH in its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResultHub {
    /// The hub name (older clients, or a result without a TTH).
    Name(String),
    /// The file's TTH, sent instead of the hub name (`TTH:<base32>`). Some
    /// clients (eiskaltdcpp) send a zero TTH for directories.
    Tth(Tth),
}

/// A search result:
/// `$SR <nick> <path>\x05<size> <free>/<total>\x05<hub> (<hub address>)[\x05<target>]`
/// for a file, `$SR <nick> <path> <free>/<total>\x05<hub> (<address>)[\x05<target>]`
/// for a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchResult {
    /// The nick of the user who has the file.
    pub nick: String,
    /// The path in that user's share, with `\` separators.
    pub path: String,
    /// The file size; `None` for a directory.
    pub size: Option<u64>,
    /// Free upload slots.
    pub free_slots: u32,
    /// Total upload slots.
    pub total_slots: u32,
    /// The hub name or the TTH.
    pub hub: ResultHub,
    /// The hub address between the parentheses (`ip[:port]`), as sent.
    pub hub_address: String,
    /// The passive searcher the hub must route the result to; hubs strip it
    /// before delivery.
    pub target: Option<String>,
}

impl SearchResult {
    /// Whether the result is a directory.
    pub fn is_dir(&self) -> bool {
        self.size.is_none()
    }

    /// The file's TTH, when the result carries one.
    pub fn tth(&self) -> Option<Tth> {
        match self.hub {
            ResultHub::Tth(t) => Some(t),
            ResultHub::Name(_) => None,
        }
    }

    /// Parses `$SR` arguments (DC++ `SearchManager::onSR`): files have two
    /// 0x05 separators and directories one, plus one for a target nick; the
    /// hub address is searched from the right because hub names have spaces.
    pub(crate) fn parse(args: &[u8], cs: &'static Encoding) -> Result<SearchResult, &'static str> {
        let (nick, rest) = split_byte(args, b' ').ok_or("missing result")?;
        let mut segs: [&[u8]; 4] = [&[]; 4];
        let mut n = 0;
        for seg in rest.split(|&b| b == 0x05) {
            if n == segs.len() {
                return Err("more than three 0x05 separators");
            }
            segs[n] = seg;
            n += 1;
        }
        // Two separators are a file without a target or a directory with one:
        // a file's middle segment is "<size> <free>/<total>".
        let is_file = match n {
            4 => true,
            3 => split_size_slots(segs[1]).is_some(),
            2 => false,
            _ => return Err("no 0x05 separator"),
        };
        let (path, size, slots, hub, target) = if is_file {
            let (size, slots) = split_size_slots(segs[1]).ok_or("bad \"<size> <free>/<total>\"")?;
            (segs[0], Some(size), slots, segs[2], (n == 4).then_some(segs[3]))
        } else {
            let i =
                segs[0].iter().rposition(|&b| b == b' ').ok_or("missing slots after directory")?;
            let slots = parse_slots(&segs[0][i + 1..]).ok_or("bad \"<free>/<total>\"")?;
            (&segs[0][..i], None, slots, segs[1], (n == 3).then_some(segs[2]))
        };
        let (hub_name, hub_address) = match rfind(hub, b" (") {
            Some(i) if hub.last() == Some(&b')') => (&hub[..i], &hub[i + 2..hub.len() - 1]),
            _ => (hub, &[][..]),
        };
        let hub = match hub_name.strip_prefix(b"TTH:").and_then(|t| std::str::from_utf8(t).ok()) {
            Some(b32) => match b32.parse::<Tth>() {
                Ok(tth) => ResultHub::Tth(tth),
                Err(_) => ResultHub::Name(decode(hub_name, cs)),
            },
            None => ResultHub::Name(decode(hub_name, cs)),
        };
        Ok(SearchResult {
            nick: decode(nick, cs),
            path: decode(path, cs),
            size,
            free_slots: slots.0,
            total_slots: slots.1,
            hub,
            hub_address: decode(hub_address, cs),
            target: target.map(|t| decode(t, cs)),
        })
    }

    pub(crate) fn write(&self, out: &mut Vec<u8>, cs: &'static Encoding) {
        out.extend_from_slice(b"$SR ");
        push_text(out, &self.nick, cs);
        out.push(b' ');
        push_text(out, &self.path, cs);
        match self.size {
            Some(size) => {
                out.push(0x05);
                push_u64(out, size);
                out.push(b' ');
            }
            None => out.push(b' '),
        }
        push_u64(out, u64::from(self.free_slots));
        out.push(b'/');
        push_u64(out, u64::from(self.total_slots));
        out.push(0x05);
        match &self.hub {
            ResultHub::Name(name) => push_text(out, name, cs),
            ResultHub::Tth(tth) => {
                out.extend_from_slice(b"TTH:");
                out.extend_from_slice(tth.to_base32().as_bytes());
            }
        }
        out.extend_from_slice(b" (");
        push_text(out, &self.hub_address, cs);
        out.push(b')');
        if let Some(t) = &self.target {
            out.push(0x05);
            push_text(out, t, cs);
        }
    }
}

/// `"<size> <free>/<total>"` → `(size, (free, total))`.
fn split_size_slots(seg: &[u8]) -> Option<(u64, (u32, u32))> {
    let (size, slots) = split_byte(seg, b' ')?;
    Some((parse_u64(size)?, parse_slots(slots)?))
}

/// `"<free>/<total>"`.
fn parse_slots(s: &[u8]) -> Option<(u32, u32)> {
    let i = find_byte(s, b'/')?;
    Some((parse_u32(&s[..i])?, parse_u32(&s[i + 1..])?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port() {
        assert_eq!(split_host_port(b"127.0.0.1:412"), Some((&b"127.0.0.1"[..], 412)));
        assert_eq!(split_host_port(b"[::1]:412"), Some((&b"[::1]"[..], 412)));
        assert_eq!(split_host_port(b"host:70000"), None);
        assert_eq!(split_host_port(b":412"), None);
        assert_eq!(split_host_port(b"host"), None);
    }

    #[test]
    fn slots_and_sizes() {
        assert_eq!(split_size_slots(b"437 3/4"), Some((437, (3, 4))));
        assert_eq!(split_size_slots(b"Testhub (1.2.3.4)"), None);
        assert_eq!(parse_slots(b"10/10"), Some((10, 10)));
        assert_eq!(parse_slots(b"10"), None);
    }
}
