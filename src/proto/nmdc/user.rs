//! Users: `$MyINFO` (with its client tag), the `$$`-separated nick lists
//! (`$NickList`, `$OpList`, `$BotList`) and `$UserIP`.
//!
//! Parsing is tolerant: real hubs send `$MyINFO` lines with missing fields,
//! no flag byte, broken tags or a legacy mode letter; none of that is an
//! error. Pure: no I/O.

use encoding_rs::Encoding;

use super::text::{
    decode, decode_unescaped, parse_u32, parse_u64, push_escaped, push_text, push_u64, split_byte,
    split_double_dollar,
};

/// Bits of the `$MyINFO` flag byte (`nmdc.md` §`$MyINFO`, "Flag"). Some old
/// clients used the byte as a decimal enum instead; these are the bit
/// meanings modern clients use.
pub mod flags {
    /// Normal status; DC++ always sets it.
    pub const NORMAL: u8 = 0x01;
    /// The user is away.
    pub const AWAY: u8 = 0x02;
    /// "Server" status (long uptime, big share).
    pub const SERVER: u8 = 0x04;
    /// "Fireball" status (fast uploads).
    pub const FIREBALL: u8 = 0x08;
    /// TLS support (for downloads only with `TLS1`).
    pub const TLS: u8 = 0x10;
    /// TLS uploads (`TLS1`), or NAT traversal for StrongDC-family clients.
    pub const TLS_UPLOAD_OR_NAT: u8 = 0x20;
    /// IPv4 support (`IP64`).
    pub const IPV4: u8 = 0x40;
    /// IPv6 support (`IP64`).
    pub const IPV6: u8 = 0x80;
}

/// A user's `$MyINFO`:
/// `$MyINFO $ALL <nick> <description><tag>$ $<connection><flag>$<email>$<share>$`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MyInfo {
    /// The nick.
    pub nick: String,
    /// The description without the tag, unescaped (it may end with a space
    /// when the client put one before the tag).
    pub description: String,
    /// The client tag (`<++ V:0.868,M:A,H:1/0/0,S:3>`), when there is one.
    pub tag: Option<Tag>,
    /// The connection text (`LAN(T3)`, `100`, `0.005`, ...), without the flag.
    pub connection: String,
    /// The flag byte (see [`flags`]); `None` when the connection field was
    /// empty. The flag is the last byte of that field, so a hub that omits it
    /// on a non-empty connection makes the last character of the connection
    /// read as the flag, exactly as in DC++.
    pub flag: Option<u8>,
    /// The e-mail address, unescaped.
    pub email: String,
    /// The share size in bytes (0 when missing or not a number).
    pub share: u64,
}

impl MyInfo {
    /// Whether the flag byte has `bit` set (`false` without a flag byte).
    pub fn has_flag(&self, bit: u8) -> bool {
        self.flag.is_some_and(|f| f & bit != 0)
    }

    /// Parses the arguments of `$MyINFO` (after `"$MyINFO "`).
    pub(crate) fn parse(args: &[u8], cs: &'static Encoding) -> Result<MyInfo, &'static str> {
        let body = args.strip_prefix(b"$ALL ").ok_or("missing \"$ALL \"")?;
        // The nick ends at the first space, or at the first `$` when the
        // description and the space before it are both missing.
        let nick_end = body.iter().position(|&b| b == b' ' || b == b'$').unwrap_or(body.len());
        if nick_end == 0 {
            return Err("empty nick");
        }
        let nick = &body[..nick_end];
        let rest = match body.get(nick_end) {
            Some(b' ') => &body[nick_end + 1..],
            _ => &body[nick_end..],
        };
        // desc+tag $ <space or legacy mode letter> $ conn+flag $ email $ share $
        let mut fields = rest.split(|&b| b == b'$');
        let desc_tag = fields.next().unwrap_or(&[]);
        let _legacy_mode = fields.next();
        let conn_flag = fields.next().unwrap_or(&[]);
        let email = fields.next().unwrap_or(&[]);
        let share = fields.next().unwrap_or(&[]);

        let (description, tag) = split_tag(desc_tag);
        let (connection, flag) = match conn_flag.split_last() {
            Some((&flag, conn)) => (conn, Some(flag)),
            None => (&[][..], None),
        };
        Ok(MyInfo {
            nick: decode(nick, cs),
            description: decode_unescaped(description, cs),
            tag: tag.map(|t| Tag::parse(&decode(t, cs))),
            connection: decode(connection, cs),
            flag,
            email: decode_unescaped(email, cs),
            share: parse_u64(share.trim_ascii()).unwrap_or(0),
        })
    }

    pub(crate) fn write(&self, out: &mut Vec<u8>, cs: &'static Encoding) {
        out.extend_from_slice(b"$MyINFO $ALL ");
        push_text(out, &self.nick, cs);
        out.push(b' ');
        push_escaped(out, &self.description, cs);
        if let Some(tag) = &self.tag {
            tag.write(out, cs);
        }
        out.extend_from_slice(b"$ $");
        push_text(out, &self.connection, cs);
        match self.flag {
            // Without a flag byte, the last character of the connection would
            // be read back as the flag: send "normal" instead.
            None if !self.connection.is_empty() => out.push(flags::NORMAL),
            None => {}
            // `$` and `|` would break the frame; both values have the legacy
            // SERVER bit set, and dropping that bit is the least harmful fix.
            Some(f @ (b'$' | b'|')) => out.push(f & !flags::SERVER),
            Some(f) => out.push(f),
        }
        out.push(b'$');
        push_escaped(out, &self.email, cs);
        out.push(b'$');
        push_u64(out, self.share);
        out.push(b'$');
    }
}

/// Splits the description field into the description and the tag content
/// (between the last `<` and a final `>`).
fn split_tag(field: &[u8]) -> (&[u8], Option<&[u8]>) {
    if field.last() == Some(&b'>') {
        if let Some(lt) = field.iter().rposition(|&b| b == b'<') {
            return (&field[..lt], Some(&field[lt + 1..field.len() - 1]));
        }
    }
    (field, None)
}

/// Hub counts of a tag's `H:` field: hubs where the user is a normal user,
/// registered, or an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HubCounts {
    /// Hubs as a normal (unregistered) user.
    pub normal: u32,
    /// Hubs as a registered user.
    pub registered: u32,
    /// Hubs as an operator.
    pub op: u32,
}

/// The client tag in a `$MyINFO` description:
/// `<client V:version,M:mode,H:normal/registered/op,S:slots[,O:n,...]>`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tag {
    /// The client name (`++` is DC++); may be empty.
    pub client: String,
    /// The `V:` version.
    pub version: Option<String>,
    /// The `M:` mode: `A` active, `P` passive, `5` SOCKS5; IPv6-aware clients
    /// send two letters (IPv4 then IPv6, `N` = unsupported), e.g. `AP`.
    pub mode: Option<String>,
    /// The `H:` hub counts.
    pub hubs: Option<HubCounts>,
    /// The `S:` number of upload slots.
    pub slots: Option<u32>,
    /// Every other field as sent (`O:5`, `L:512`, ...), in order; also an
    /// `H:` or `S:` field whose value is not a number.
    pub other: Vec<String>,
}

impl Tag {
    /// Whether the mode says active on IPv4 (`M:A...`).
    pub fn is_active(&self) -> bool {
        self.mode.as_deref().is_some_and(|m| m.starts_with('A'))
    }

    /// Whether the mode says passive on IPv4 (`M:P...`).
    pub fn is_passive(&self) -> bool {
        self.mode.as_deref().is_some_and(|m| m.starts_with('P'))
    }

    /// The value of another field by its key (`get("O")` for `O:5`).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.other.iter().find_map(|f| f.strip_prefix(key).and_then(|v| v.strip_prefix(':')))
    }

    /// Parses the text between `<` and `>`.
    pub(crate) fn parse(content: &str) -> Tag {
        let mut tag = Tag::default();
        let mut parts = content.split(',');
        let head = parts.next().unwrap_or("");
        // A field first (`M:A V:1`): no client name. Checked before the
        // " V:" split so that a field whose value holds " V:" stays a field
        // (the written form of such a tag must read back the same).
        let first_field = if is_field(head) {
            Some(head)
        } else if let Some(i) = head.find(" V:") {
            tag.client = head[..i].to_owned();
            tag.version = Some(head[i + 3..].to_owned());
            None
        } else {
            tag.client = head.to_owned();
            None
        };
        for part in first_field.into_iter().chain(parts) {
            tag.add_field(part);
        }
        tag
    }

    fn add_field(&mut self, part: &str) {
        if part.is_empty() {
            return;
        }
        match part.split_once(':') {
            Some(("V", v)) if self.version.is_none() => self.version = Some(v.to_owned()),
            Some(("M", v)) if self.mode.is_none() => self.mode = Some(v.to_owned()),
            Some(("H", v)) if self.hubs.is_none() => match parse_hubs(v) {
                Some(h) => self.hubs = Some(h),
                None => self.other.push(part.to_owned()),
            },
            Some(("S", v)) if self.slots.is_none() => match parse_u32(v.trim().as_bytes()) {
                Some(s) => self.slots = Some(s),
                None => self.other.push(part.to_owned()),
            },
            _ => self.other.push(part.to_owned()),
        }
    }

    pub(crate) fn write(&self, out: &mut Vec<u8>, cs: &'static Encoding) {
        use std::fmt::Write as _;
        // The version follows the client name after a space; every other field
        // follows a comma. Writing to a String cannot fail.
        let mut s = String::with_capacity(48);
        s.push('<');
        s.push_str(&self.client);
        let mut need_comma = !self.client.is_empty();
        // Without a client name, a first field that does not look like one
        // (`ot:1`) would read back as the client name: keep the empty name
        // visible with a leading comma.
        let bare = self.version.is_none()
            && self.mode.is_none()
            && self.hubs.is_none()
            && self.slots.is_none();
        if self.client.is_empty() && bare && self.other.first().is_some_and(|f| !is_field(f)) {
            need_comma = true;
        }
        fn field(s: &mut String, need_comma: &mut bool) {
            if std::mem::replace(need_comma, true) {
                s.push(',');
            }
        }
        if let Some(v) = &self.version {
            if self.client.is_empty() {
                field(&mut s, &mut need_comma);
                s.push_str("V:");
            } else {
                s.push_str(" V:");
            }
            s.push_str(v);
        }
        if let Some(m) = &self.mode {
            field(&mut s, &mut need_comma);
            s.push_str("M:");
            s.push_str(m);
        }
        if let Some(h) = &self.hubs {
            field(&mut s, &mut need_comma);
            let _ = write!(s, "H:{}/{}/{}", h.normal, h.registered, h.op);
        }
        if let Some(n) = self.slots {
            field(&mut s, &mut need_comma);
            let _ = write!(s, "S:{n}");
        }
        for f in &self.other {
            field(&mut s, &mut need_comma);
            s.push_str(f);
        }
        s.push('>');
        push_text(out, &s, cs);
    }
}

/// `X:...` with a one-letter key: a tag field rather than a client name.
fn is_field(part: &str) -> bool {
    let b = part.as_bytes();
    b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':'
}

/// `H:` values: `1/0/0`, tolerating spaces (`1 /0/0`) and the old single count.
fn parse_hubs(v: &str) -> Option<HubCounts> {
    let mut it = v.split('/').map(|n| parse_u32(n.trim().as_bytes()));
    let normal = it.next()??;
    let registered = it.next().unwrap_or(Some(0))?;
    let op = it.next().unwrap_or(Some(0))?;
    if it.next().is_some() {
        return None;
    }
    Some(HubCounts { normal, registered, op })
}

/// Parses a `$$`-separated nick list (`$NickList a$$b$$`); empty entries are
/// dropped.
pub(crate) fn parse_nick_list(args: &[u8], cs: &'static Encoding) -> Vec<String> {
    split_double_dollar(args).map(|n| decode(n, cs)).collect()
}

/// Writes `<command>` followed by ` nick$$nick2$$` (each nick followed by `$$`,
/// as hubs send it), or the bare command for an empty list.
pub(crate) fn write_nick_list(
    out: &mut Vec<u8>,
    command: &[u8],
    nicks: &[String],
    cs: &'static Encoding,
) {
    out.extend_from_slice(command);
    if nicks.is_empty() {
        return;
    }
    out.push(b' ');
    for n in nicks {
        push_text(out, n, cs);
        out.extend_from_slice(b"$$");
    }
}

/// One entry of `$UserIP`: a nick and, in the hub's answer, its IP address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserIp {
    /// The nick.
    pub nick: String,
    /// The address; `None` in a client's request (`$UserIP nick`).
    pub ip: Option<String>,
}

/// Parses `$UserIP` arguments: `nick ip$$nick2 ip2$$...` or a request `nick`.
pub(crate) fn parse_user_ips(args: &[u8], cs: &'static Encoding) -> Vec<UserIp> {
    split_double_dollar(args)
        .map(|entry| match split_byte(entry, b' ') {
            Some((nick, ip)) if !ip.is_empty() => {
                UserIp { nick: decode(nick, cs), ip: Some(decode(ip, cs)) }
            }
            Some((nick, _)) => UserIp { nick: decode(nick, cs), ip: None },
            None => UserIp { nick: decode(entry, cs), ip: None },
        })
        .collect()
}

/// Writes `$UserIP` with the entries joined by `$$`, without a trailing `$$`
/// (the form of the spec and of requests), except after a last entry that
/// ends with `$`, which would otherwise read back differently.
pub(crate) fn write_user_ips(out: &mut Vec<u8>, entries: &[UserIp], cs: &'static Encoding) {
    out.extend_from_slice(b"$UserIP");
    for (i, e) in entries.iter().enumerate() {
        out.extend_from_slice(if i == 0 { b" " } else { b"$$" });
        push_text(out, &e.nick, cs);
        if let Some(ip) = &e.ip {
            out.push(b' ');
            push_text(out, ip, cs);
        }
    }
    let last_ends_with_dollar =
        entries.last().is_some_and(|e| e.ip.as_deref().unwrap_or(&e.nick).ends_with('$'));
    if last_ends_with_dollar {
        out.extend_from_slice(b"$$");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_forms() {
        let t = Tag::parse("++ V:0.868,M:A,H:1/0/0,S:3,O:5");
        assert_eq!(t.client, "++");
        assert_eq!(t.version.as_deref(), Some("0.868"));
        assert!(t.is_active() && !t.is_passive());
        assert_eq!(t.hubs, Some(HubCounts { normal: 1, registered: 0, op: 0 }));
        assert_eq!(t.slots, Some(3));
        assert_eq!(t.get("O"), Some("5"));
        assert_eq!(t.get("L"), None);

        let t = Tag::parse("StrgDC++,M:A,H:1 /0/0,S:2");
        assert_eq!((t.client.as_str(), t.version.as_deref()), ("StrgDC++", None));
        assert_eq!(t.hubs.map(|h| h.normal), Some(1));

        let t = Tag::parse("M:P,H:x,S:y");
        assert_eq!(t.client, "");
        assert!(t.is_passive());
        assert_eq!(t.other, vec!["H:x".to_owned(), "S:y".to_owned()]);
    }

    #[test]
    fn tag_writes_back() {
        let cs = encoding_rs::WINDOWS_1252;
        for content in [
            "++ V:0.868,M:A,H:1/0/0,S:3,O:5",
            "StrgDC++,M:A,H:1/0/0,S:2",
            "M:P,S:1",
            "V:1,M:A",
            "I love 3 cats",
            "",
        ] {
            let mut out = Vec::new();
            Tag::parse(content).write(&mut out, cs);
            assert_eq!(out, format!("<{content}>").as_bytes(), "{content:?}");
        }
    }

    /// Tags whose first written form differs from what was received, and
    /// that form read back and written again (found by fuzzing: a field
    /// holding " V:", a first field that is not one letter).
    #[test]
    fn tag_canonical_forms_are_fixed_points() {
        let cs = encoding_rs::WINDOWS_1252;
        let cases: &[(&str, &str)] = &[
            (",ot:1.0,M:A0x V:1.0,M:A", "M:A0x V:1.0,ot:1.0,M:A"),
            (",ot:1.0", ",ot:1.0"),
            (",ot:1,S:x", ",ot:1,S:x"),
            ("M:A V:2", "M:A V:2"),
            ("++ V:a V:b,M:A", "++ V:a V:b,M:A"),
        ];
        for (content, canonical) in cases {
            let mut once = Vec::new();
            Tag::parse(content).write(&mut once, cs);
            assert_eq!(once, format!("<{canonical}>").as_bytes(), "{content:?}");
            let mut again = Vec::new();
            Tag::parse(canonical).write(&mut again, cs);
            assert_eq!(again, once, "{canonical:?} is not a fixed point");
        }
    }

    #[test]
    fn split_fields() {
        assert_eq!(split_tag(b"desc<t>"), (&b"desc"[..], Some(&b"t"[..])));
        assert_eq!(split_tag(b"a<b>c"), (&b"a<b>c"[..], None));
        assert_eq!(split_tag(b"x>"), (&b"x>"[..], None));
    }
}
