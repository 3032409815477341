//! One hub's users: the protocol-neutral [`User`], the [`UserList`] that
//! keeps them, and how a user is made from and applied from each protocol's
//! user line (NMDC `$MyINFO`, ADC `BINF`).
//!
//! # Memory model (issue 12)
//!
//! A public hub lists 10,000–1,000,000 users, each kept as long as it is
//! online, so a user is laid out for size:
//!
//! - **One allocation of text per user**: nick, description, e-mail and (ADC)
//!   the INF fields the struct does not represent, back to back in one
//!   `Box<str>` with three `u16` ends.
//! - **Shared texts**: connection, client, version and (NMDC) the tag's
//!   other fields form a [`Tag`], interned per list and shared by `Arc`: a
//!   hub lists a handful of distinct clients and versions, not one per user.
//! - **Bytes, not text**: the CID as its 24 bytes, the IP as an `IpAddr`, the
//!   SID as its number.
//! - **No raw line**: [`User::raw`] rebuilds a canonical line from the kept
//!   fields on demand (same meaning, not byte-identical: field order and the
//!   NMDC tag's spelling are canonical).
//! - **The list is a slab**: users live in one `Vec` (a removed user leaves a
//!   hole that the next one takes), found by nick through a table of `u32`
//!   slots (their hash bits in an array by slot), by SID through an array
//!   indexed by the SID's number, and by CID through a table built on the
//!   first look-up by CID. No per-user box, 4 bytes per nick bucket, and
//!   dropping a list walks memory in order.
//!
//! What a hub sends about one user stays bounded: text fields are cut to
//! [`MAX_USER_FIELD`] bytes, the kept INF fields to [`MAX_USER_EXTRA`], and a
//! list holds at most its cap of users ([`MAX_USERS`] by default).
//!
//! This module does no I/O and knows nothing of sessions: [`super::nmdc`]
//! and [`super::adc`] call it with parsed lines. It imports nothing from
//! the rest of `hub` (which re-exports its types): no import circle.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::fmt;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::{Arc, LazyLock};

use hashbrown::HashTable;

use crate::proto::adc::{escape, Cid, Sid};
use crate::proto::nmdc::{self, MyInfo};

/// How a user connects: what the NMDC tag's `M:` or ADC's `SU` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UserMode {
    /// Accepts incoming connections.
    Active,
    /// Behind a firewall: must be connected to by others' requests.
    Passive,
    /// Through a SOCKS5 proxy.
    Socks5,
    /// Not announced.
    #[default]
    Unknown,
}

impl UserMode {
    /// `"active"`, `"passive"`, `"socks5"`, or `None` when unknown.
    pub fn as_str(self) -> Option<&'static str> {
        match self {
            UserMode::Active => Some("active"),
            UserMode::Passive => Some("passive"),
            UserMode::Socks5 => Some("socks5"),
            UserMode::Unknown => None,
        }
    }
}

/// Hubs a user is on: as a normal user, registered, or operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HubCounts {
    /// Hubs as an unregistered user.
    pub normal: u32,
    /// Hubs as a registered user.
    pub registered: u32,
    /// Hubs as an operator.
    pub op: u32,
}

/// The hasher of tables keyed by what a hub sends (nicks, SIDs): fast, and
/// seeded at random per process, so a hostile hub cannot pick nicks that
/// collide (SipHash, the standard one, costs several times more per nick).
pub type HubHasher = foldhash::fast::RandomState;

/// The most users one hub's list keeps (issue 15, finding 5: a hub sending
/// 300,000 malformed users took 825 MB). Generous: the largest public hubs
/// hold well under a million.
pub const MAX_USERS: usize = 2_000_000;

/// The longest text field of a user kept (nick, description, e-mail,
/// connection, client, version), in bytes; longer ones are cut.
pub const MAX_USER_FIELD: usize = 1024;

/// The most bytes of ADC INF fields kept beside the represented ones (and of
/// NMDC tag fields); whole fields beyond it are dropped.
pub const MAX_USER_EXTRA: usize = 4096;

/// `s` cut to at most `max` bytes on a character boundary.
fn bounded(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// `words` (space-separated) cut after the last whole word within `max`.
fn bounded_words(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    match bounded(s, max + 1).rfind(' ') {
        Some(i) => &s[..i],
        None => "",
    }
}

/// Four texts back to back, with where the first three end (a user's
/// nick/description/e-mail/extra, a tag's connection/client/version/extra).
/// Callers bound each part first, so every end fits in a `u16`.
fn pack(parts: [&str; 4]) -> (Box<str>, [u16; 3]) {
    let mut text = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    let mut ends = [0u16; 3];
    for (i, p) in parts.iter().enumerate() {
        text.push_str(p);
        if let Some(end) = ends.get_mut(i) {
            *end = text.len() as u16;
        }
    }
    (text.into(), ends)
}

/// Part `i` (0 to 3) of a [`pack`]ed text.
fn unpack<'a>(text: &'a str, ends: &[u16; 3], i: usize) -> &'a str {
    let start = if i == 0 { 0 } else { usize::from(ends[i - 1]) };
    let end = ends.get(i).map_or(text.len(), |&e| usize::from(e));
    &text[start..end]
}

/// Texts that many users share: connection, client, version and the NMDC
/// tag's other fields (`O:5,L:512`), back to back.
#[derive(PartialEq, Eq, Hash, Default)]
pub struct Tag {
    text: Box<str>,
    ends: [u16; 3],
}

impl Tag {
    /// A tag of these parts (each bounded).
    pub fn new(connection: &str, client: &str, version: &str, extra: &str) -> Tag {
        let (text, ends) = pack([
            bounded(connection, MAX_USER_FIELD),
            bounded(client, MAX_USER_FIELD),
            bounded(version, MAX_USER_FIELD),
            bounded(extra, MAX_USER_EXTRA),
        ]);
        Tag { text, ends }
    }

    /// Whether the tag holds these parts: lengths first, so that a miss
    /// rarely compares text.
    fn is(&self, parts: [&str; 4]) -> bool {
        let [a, b, c] = self.ends.map(usize::from);
        let lens = [a, b - a, c - b, self.text.len() - c];
        lens.iter().zip(&parts).all(|(l, p)| *l == p.len()) && self.parts() == parts
    }

    /// Connection, client, version, other tag fields.
    fn parts(&self) -> [&str; 4] {
        let [a, b, c] = self.ends.map(usize::from);
        [&self.text[..a], &self.text[a..b], &self.text[b..c], &self.text[c..]]
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.parts()).finish()
    }
}

/// The tag of users who announce none.
static NO_TAG: LazyLock<Arc<Tag>> = LazyLock::new(|| Arc::new(Tag::default()));

/// One user on a hub, protocol-neutral. See the module documentation for
/// its layout; text is reached through accessors.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    /// Nick, description, e-mail, then (ADC) the other INF fields as sent
    /// (escaped, space-separated), back to back.
    text: Box<str>,
    /// Where the nick, description and e-mail end in `text`.
    ends: [u16; 3],
    tag: Arc<Tag>,
    /// Shared bytes.
    pub share: u64,
    /// The IP address, when the hub gave one (NMDC `$UserIP`, ADC `I4`, else
    /// `I6`).
    pub ip: Option<IpAddr>,
    cid: Option<Cid>,
    sid: Option<Sid>,
    /// Upload slots, when announced.
    pub slots: Option<u32>,
    /// Free upload slots, when announced (ADC `FS`).
    pub free_slots: Option<u32>,
    /// Hub counts, when announced.
    pub hubs: Option<HubCounts>,
    /// The NMDC flag byte, when there was one.
    flag: Option<u8>,
    /// Active, passive...
    pub mode: UserMode,
    /// An operator.
    pub op: bool,
    /// A bot.
    pub bot: bool,
    /// Away.
    pub away: bool,
}

impl Default for User {
    fn default() -> User {
        User {
            text: Box::default(),
            ends: [0; 3],
            tag: NO_TAG.clone(),
            share: 0,
            ip: None,
            cid: None,
            sid: None,
            slots: None,
            free_slots: None,
            hubs: None,
            flag: None,
            mode: UserMode::Unknown,
            op: false,
            bot: false,
            away: false,
        }
    }
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("nick", &self.nick())
            .field("description", &self.description())
            .field("email", &self.email())
            .field("tag", &self.tag)
            .field("extra", &self.extra())
            .field("share", &self.share)
            .field("ip", &self.ip)
            .field("cid", &self.cid)
            .field("sid", &self.sid)
            .field("slots", &self.slots)
            .field("free_slots", &self.free_slots)
            .field("hubs", &self.hubs)
            .field("mode", &self.mode)
            .field("op", &self.op)
            .field("bot", &self.bot)
            .field("away", &self.away)
            .finish()
    }
}

impl User {
    /// A user known only by nick (NMDC `$NickList`, `$Hello`).
    pub fn named(nick: &str) -> User {
        let mut u = User::default();
        u.set_text(nick, "", "", "");
        u
    }

    fn part(&self, i: usize) -> &str {
        unpack(&self.text, &self.ends, i)
    }

    /// The nick.
    pub fn nick(&self) -> &str {
        self.part(0)
    }

    /// The description (without the NMDC tag).
    pub fn description(&self) -> &str {
        self.part(1)
    }

    /// The e-mail address.
    pub fn email(&self) -> &str {
        self.part(2)
    }

    /// ADC: the INF fields kept as sent (escaped, space-separated), those
    /// the struct does not represent (`SU`, `KP`, `U4`, `CT`...).
    fn extra(&self) -> &str {
        self.part(3)
    }

    /// The connection text (NMDC: `100`, `LAN(T3)`...); empty on ADC.
    pub fn connection(&self) -> &str {
        self.tag.parts()[0]
    }

    /// The client's name (`EiskaltDC++`, `++` for DC++, `dclua`); empty when
    /// unknown.
    pub fn client(&self) -> &str {
        let [_, client, version, _] = self.tag.parts();
        match (self.sid, client) {
            // ADC without AP: VE holds "client version" (DC++: "++ 0.868").
            (Some(_), "") => version.rsplit_once(' ').map_or(version, |(c, _)| c),
            _ => client,
        }
    }

    /// The client's version; empty when unknown.
    pub fn version(&self) -> &str {
        let [_, client, version, _] = self.tag.parts();
        match (self.sid, client) {
            (Some(_), "") => version.rsplit_once(' ').map_or("", |(_, v)| v),
            _ => version,
        }
    }

    /// The CID (ADC); `None` on NMDC.
    pub fn cid(&self) -> Option<&Cid> {
        self.cid.as_ref()
    }

    /// The CID as text: the Tiger CID in base32, or a CID of another length
    /// as sent.
    pub fn cid_text(&self) -> Option<String> {
        match &self.cid {
            Some(c) => Some(c.to_base32()),
            None => self.inf_field("ID"),
        }
    }

    /// The session id an ADC hub gave the user; `None` on NMDC.
    pub fn sid(&self) -> Option<Sid> {
        self.sid
    }

    /// An INF field kept as sent (`SU`, `KP`, `U4`...), unescaped; `None`
    /// when the user has none (and always on NMDC).
    pub fn inf_field(&self, name: &str) -> Option<String> {
        if name == "SU" {
            let features = self.tag.parts()[3];
            return (self.sid.is_some() && !features.is_empty()).then(|| features.to_string());
        }
        words(self.extra())
            .find_map(|w| w.strip_prefix(name).filter(|_| w.len() >= 2))
            .map(|v| escape::unescape(v).map_or_else(|_| v.to_string(), |v| v.into_owned()))
    }

    /// Replaces the texts (each bounded: [`MAX_USER_FIELD`], the extra
    /// fields [`MAX_USER_EXTRA`]).
    fn set_text(&mut self, nick: &str, description: &str, email: &str, extra: &str) {
        (self.text, self.ends) = pack([
            bounded(nick, MAX_USER_FIELD),
            bounded(description, MAX_USER_FIELD),
            bounded(email, MAX_USER_FIELD),
            bounded_words(extra, MAX_USER_EXTRA),
        ]);
    }

    /// Sets the description.
    pub fn set_description(&mut self, description: &str) {
        let (old, ends) = (std::mem::take(&mut self.text), self.ends);
        let part = |i| unpack(&old, &ends, i);
        self.set_text(part(0), description, part(2), part(3));
    }

    /// The user's line, rebuilt from what is kept: a canonical `BINF` on
    /// ADC, a `$MyINFO` on NMDC (without the `|`); empty for a user known
    /// only by nick. Same meaning as what the hub sent, not byte-identical.
    pub fn raw(&self) -> String {
        match self.sid {
            Some(sid) => self.rebuild_inf(sid),
            None if self.flag.is_none() && *self.tag == Tag::default() && self.share == 0 => {
                if self.description().is_empty() && self.email().is_empty() {
                    String::new()
                } else {
                    self.rebuild_my_info()
                }
            }
            None => self.rebuild_my_info(),
        }
    }

    fn rebuild_my_info(&self) -> String {
        let [connection, client, version, other] = self.tag.parts();
        let mut other: Vec<String> =
            other.split(',').filter(|f| !f.is_empty()).map(str::to_string).collect();
        let has_tag = !client.is_empty()
            || !version.is_empty()
            || self.slots.is_some()
            || self.hubs.is_some()
            || !other.is_empty()
            || self.mode != UserMode::Unknown;
        let own_mode = other.iter().position(|f| f.starts_with("M:"));
        let mode = match own_mode {
            Some(i) => Some(other.remove(i)[2..].to_string()),
            None => match self.mode {
                UserMode::Active => Some("A".into()),
                UserMode::Passive => Some("P".into()),
                UserMode::Socks5 => Some("5".into()),
                UserMode::Unknown => None,
            },
        };
        let tag = has_tag.then(|| nmdc::Tag {
            client: client.to_string(),
            version: (!version.is_empty()).then(|| version.to_string()),
            mode,
            hubs: self.hubs.map(|h| nmdc::HubCounts {
                normal: h.normal,
                registered: h.registered,
                op: h.op,
            }),
            slots: self.slots,
            other,
        });
        let mi = MyInfo {
            nick: self.nick().to_string(),
            description: self.description().to_string(),
            tag,
            connection: connection.to_string(),
            flag: self.flag,
            email: self.email().to_string(),
            share: self.share,
        };
        let mut out = Vec::new();
        mi.write(&mut out, encoding_rs::UTF_8);
        String::from_utf8(out).unwrap_or_default()
    }

    fn rebuild_inf(&self, sid: Sid) -> String {
        use std::fmt::Write as _;
        let mut s = format!("BINF {sid}");
        let mut field = |name: &str, value: &str| {
            if !value.is_empty() {
                s.push(' ');
                s.push_str(name);
                s.push_str(&escape::escape(value));
            }
        };
        if let Some(c) = &self.cid {
            field("ID", &c.to_base32());
        }
        field("NI", self.nick());
        field("DE", self.description());
        field("EM", self.email());
        let [_, client, version, _] = self.tag.parts();
        field("AP", client);
        field("VE", version);
        let mut num = |name: &str, v: Option<u64>| {
            if let Some(v) = v {
                let _ = write!(s, " {name}{v}");
            }
        };
        num("SS", (self.share > 0).then_some(self.share));
        num("SL", self.slots.map(u64::from));
        num("FS", self.free_slots.map(u64::from));
        if let Some(h) = self.hubs {
            num("HN", Some(h.normal.into()));
            num("HR", Some(h.registered.into()));
            num("HO", Some(h.op.into()));
        }
        if let Some(IpAddr::V4(ip)) = self.ip {
            let _ = write!(s, " I4{ip}");
        }
        let features = self.tag.parts()[3];
        if !features.is_empty() {
            s.push_str(" SU");
            s.push_str(&escape::escape(features));
        }
        if !self.extra().is_empty() {
            s.push(' ');
            s.push_str(self.extra());
        }
        s
    }

    // ----- NMDC -------------------------------------------------------------

    /// A user from a parsed `$MyINFO`; its texts shared through `list`. The
    /// flags `$MyINFO` does not carry (op, bot, IP) are the caller's.
    pub fn from_my_info(list: &mut UserList, mi: &MyInfo) -> User {
        let mut user = User {
            share: mi.share,
            flag: mi.flag,
            away: mi.has_flag(nmdc::user::flags::AWAY),
            ..User::default()
        };
        user.set_text(&mi.nick, &mi.description, &mi.email, "");
        let (client, version) = match &mi.tag {
            Some(tag) => {
                user.mode = match tag.mode.as_deref().map(str::as_bytes) {
                    Some([b'A', ..]) => UserMode::Active,
                    Some([b'P', ..]) => UserMode::Passive,
                    Some([b'5', ..]) => UserMode::Socks5,
                    _ => UserMode::Unknown,
                };
                user.hubs = tag.hubs.map(|h| HubCounts {
                    normal: h.normal,
                    registered: h.registered,
                    op: h.op,
                });
                user.slots = tag.slots;
                (tag.client.as_str(), tag.version.as_deref().unwrap_or(""))
            }
            None => ("", ""),
        };
        // A mode of more than one letter (IPv4 then IPv6: `M:AP`) or an
        // unknown one is kept as sent, with the other fields.
        let odd_mode = mi
            .tag
            .as_ref()
            .and_then(|t| t.mode.as_deref())
            .filter(|m| !matches!(*m, "A" | "P" | "5"));
        let other = match &mi.tag {
            Some(t) if !t.other.is_empty() || odd_mode.is_some() => {
                let mut o = odd_mode.map(|m| format!("M:{m}")).unwrap_or_default();
                for f in &t.other {
                    if !o.is_empty() {
                        o.push(',');
                    }
                    o.push_str(f);
                }
                o
            }
            _ => String::new(),
        };
        user.tag = list.tag(&mi.connection, client, version, &other);
        user
    }

    // ----- ADC --------------------------------------------------------------

    /// Applies the fields of an INF (a whole one for a new user, an
    /// incremental one for a known user), `fields` as on the wire after
    /// `BINF <SID> `: each field replaces the one kept, an empty value
    /// removes it, as ADC's INF semantics require. Texts are shared through
    /// `list`. Fields are read straight from the line: the represented ones
    /// unescaped (only when they hold an escape), the others kept as sent.
    pub fn apply_inf(&mut self, list: &mut UserList, sid: Sid, fields: &str) {
        self.sid = Some(sid);
        // ADC keeps the user's SU in the shared tag: most users of a hub
        // announce one of a few feature lists.
        let [_, client, version, features] = self.tag.parts();
        let (mut client, mut version) = (Cow::Borrowed(client), Cow::Borrowed(version));
        let mut features = Cow::Borrowed(features);
        let mut nick = Cow::Borrowed(self.nick());
        let mut description = Cow::Borrowed(self.description());
        let mut email = Cow::Borrowed(self.email());
        let mut share = Some(self.share).filter(|&s| s > 0);
        let (mut slots, mut free_slots) = (self.slots, self.free_slots);
        let mut hubs = self.hubs.map(|h| [Some(h.normal), Some(h.registered), Some(h.op)]);
        let mut ip4 = match self.ip {
            Some(IpAddr::V4(ip)) => Some(ip),
            _ => None,
        };
        let mut cid = self.cid;
        // The kept fields, minus those this INF names, plus the new ones.
        let mut changed: Vec<([u8; 2], &str)> = Vec::with_capacity(24);
        // The names in `changed`, and whether one may come twice.
        let (mut names, mut twice) = (NameMask::default(), false);
        for word in words(fields) {
            let Some((name, value)) = named(word) else { continue };
            // The mask's "maybe" is checked, so that the usual INF, each
            // field once, never takes the quadratic path below.
            twice |= !names.insert(name) && changed.iter().any(|(c, _)| *c == name);
            // Whether the field stays among the ones kept as sent: those the
            // struct does not represent, and represented ones whose value
            // does not read (kept as sent rather than lost).
            let kept = match name {
                [b'N', b'I'] => {
                    // A user keeps a nick: an empty NI changes nothing.
                    if !value.is_empty() {
                        nick = unescaped(value);
                    }
                    false
                }
                [b'D', b'E'] => {
                    description = unescaped(value);
                    false
                }
                [b'E', b'M'] => {
                    email = unescaped(value);
                    false
                }
                [b'A', b'P'] => {
                    client = unescaped(value);
                    false
                }
                [b'V', b'E'] => {
                    version = unescaped(value);
                    false
                }
                [b'S', b'S']
                | [b'S', b'L']
                | [b'F', b'S']
                | [b'H', b'N']
                | [b'H', b'R']
                | [b'H', b'O'] => {
                    // A value that does not read clears the field too: it
                    // replaced the old one, and is kept as sent below.
                    let v = if value.is_empty() { None } else { value.parse::<u64>().ok() };
                    let small = v.map(|n| u32::try_from(n).unwrap_or(u32::MAX));
                    match name {
                        [b'S', b'S'] => share = v,
                        [b'S', b'L'] => slots = small,
                        [b'F', b'S'] => free_slots = small,
                        _ => {
                            let i = usize::from(name == *b"HR") + 2 * usize::from(name == *b"HO");
                            hubs.get_or_insert([None; 3])[i] = small;
                        }
                    }
                    v.is_none() && !value.is_empty()
                }
                [b'I', b'4'] => match value.parse::<std::net::Ipv4Addr>() {
                    Ok(ip) if !ip.is_unspecified() => {
                        ip4 = Some(ip);
                        false
                    }
                    _ => {
                        ip4 = None;
                        true
                    }
                },
                [b'S', b'U'] => {
                    features = unescaped(value);
                    false
                }
                [b'I', b'D'] => match Cid::from_base32(value) {
                    Ok(c) if value.len() == 39 => {
                        cid = Some(c);
                        false
                    }
                    _ => {
                        cid = None;
                        true
                    }
                },
                _ => true,
            };
            // Removed from the kept fields in every case; kept again with
            // its new value when the struct does not represent it.
            changed.push((name, if kept { value } else { "" }));
        }
        let mut extra = String::with_capacity(self.extra().len() + fields.len());
        for word in words(self.extra()) {
            let replaced =
                |n: [u8; 2]| names.may_contain(n) && changed.iter().any(|(c, _)| *c == n);
            if named(word).is_some_and(|(n, _)| !replaced(n)) {
                push_word(&mut extra, word);
            }
        }
        for (i, (name, value)) in changed.iter().enumerate() {
            // The last value of a field named twice wins.
            let last = !twice || !changed[i + 1..].iter().any(|(n, _)| n == name);
            if !value.is_empty() && last {
                let at = extra.len();
                if !extra.is_empty() {
                    extra.push(' ');
                }
                extra.extend([char::from(name[0]), char::from(name[1])]);
                extra.push_str(value);
                if extra.len() > MAX_USER_EXTRA {
                    extra.truncate(at.saturating_sub(1));
                }
            }
        }
        let mut user = User {
            share: share.unwrap_or(0),
            ip: ip4.map(IpAddr::V4),
            cid,
            sid: Some(sid),
            slots,
            free_slots,
            hubs: hubs.filter(|h| h.iter().any(Option::is_some)).map(|[n, r, o]| HubCounts {
                normal: n.unwrap_or(0),
                registered: r.unwrap_or(0),
                op: o.unwrap_or(0),
            }),
            ..User::default()
        };
        user.set_text(&nick, &description, &email, &extra);
        user.tag = list.tag("", &client, &version, &features);
        user.derive_from_extra();
        *self = user;
    }

    /// The flags ADC keeps in fields left as sent: mode from `SU`, op and
    /// bot from `CT`, away from `AW`, and the IPv6 address when there is no
    /// IPv4 one.
    fn derive_from_extra(&mut self) {
        let features = self.tag.parts()[3];
        let active = features.split(',').any(|f| f == "TCP4" || f == "TCP6");
        let (mut ct, mut away, mut ip6) = (0u32, false, None);
        for (name, value) in words(self.extra()).filter_map(named) {
            match name {
                [b'C', b'T'] => ct = value.parse().unwrap_or(0),
                [b'A', b'W'] => away = value.parse::<u32>().is_ok_and(|a| a != 0),
                [b'I', b'6'] => {
                    ip6 = value.parse::<std::net::Ipv6Addr>().ok().filter(|i| !i.is_unspecified());
                }
                _ => {}
            }
        }
        self.mode = if active { UserMode::Active } else { UserMode::Passive };
        // CT: 1 bot, 2 registered, 4 operator, 8 super user, 16 owner, 32 hub.
        self.op = ct & (4 | 8 | 16) != 0;
        self.bot = ct & (1 | 32) != 0;
        self.away = away;
        if self.ip.is_none() {
            self.ip = ip6.map(IpAddr::V6);
        }
    }
}

/// A named field of an ADC line (`NIbob`): its two-character name (bytes:
/// compared as a number, not with `memcmp`) and its value; `None` for
/// anything else (an empty word).
fn named(word: &str) -> Option<([u8; 2], &str)> {
    let b = word.as_bytes();
    (b.len() >= 2 && b[0].is_ascii_alphanumeric() && b[1].is_ascii_alphanumeric())
        .then(|| ([b[0], b[1]], &word[2..]))
}

/// An ADC value unescaped; borrowed when it holds no escape, as sent when an
/// escape is unknown (sessions check escapes before).
fn unescaped(value: &str) -> Cow<'_, str> {
    if memchr::memchr(b'\\', value.as_bytes()).is_some() {
        escape::unescape(value).unwrap_or(Cow::Borrowed(value))
    } else {
        Cow::Borrowed(value)
    }
}

/// The words of a space-separated ADC line or list (empty ones included).
/// A byte loop: words are a few bytes long, too short for a searcher.
fn words(list: &str) -> impl Iterator<Item = &str> {
    let mut rest = (!list.is_empty()).then_some(list);
    std::iter::from_fn(move || {
        let r = rest?;
        match r.bytes().position(|b| b == b' ') {
            Some(i) => {
                rest = Some(&r[i + 1..]);
                Some(&r[..i])
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

/// A filter over ADC field names (two ASCII letters or digits): one bit of
/// 64 per name, so "not there" is certain and "there" needs a look.
#[derive(Default, Clone, Copy)]
struct NameMask(u64);

impl NameMask {
    fn bit(name: [u8; 2]) -> u64 {
        1 << ((u32::from(name[0]) * 31 + u32::from(name[1])) % 64)
    }

    /// Adds a name; false when it may have been there.
    fn insert(&mut self, name: [u8; 2]) -> bool {
        let bit = NameMask::bit(name);
        let new = self.0 & bit == 0;
        self.0 |= bit;
        new
    }

    fn may_contain(&self, name: [u8; 2]) -> bool {
        self.0 & NameMask::bit(name) != 0
    }
}

/// Appends `word` to a space-separated list.
fn push_word(list: &mut String, word: &str) {
    if !list.is_empty() {
        list.push(' ');
    }
    list.push_str(word);
}

/// A table of slots of the user slab, by a key of theirs (nick, SID, CID).
/// Each entry keeps 32 bits of its key's hash beside the slot: growing the
/// table then never goes back to the users (at a million users, re-hashing
/// from the slab was a cache miss per user per growth), and a lookup
/// compares those bits before it reads a user.
#[derive(Clone, Default)]
struct Index {
    table: HashTable<(u32, u32)>,
}

impl Index {
    /// The table's hash of a key's 64-bit hash: its high 32 bits, in both
    /// halves (the table takes buckets from the low bits and its tags from
    /// the top seven; 32 bits serve up to 2^25 buckets, far above the cap).
    fn widen(h: u32) -> u64 {
        (u64::from(h) << 32) | u64::from(h)
    }

    fn narrow(hash: u64) -> u32 {
        (hash >> 32) as u32
    }

    fn find(&self, hash: u64, mut is: impl FnMut(u32) -> bool) -> Option<u32> {
        let h = Index::narrow(hash);
        self.table.find(Index::widen(h), |&(i, eh)| eh == h && is(i)).map(|&(i, _)| i)
    }

    fn insert(&mut self, hash: u64, slot: u32) {
        let h = Index::narrow(hash);
        self.table.insert_unique(Index::widen(h), (slot, h), |&(_, eh)| Index::widen(eh));
    }

    fn remove(&mut self, hash: u64, slot: u32) {
        let h = Index::narrow(hash);
        if let Ok(e) = self.table.find_entry(Index::widen(h), |&(i, _)| i == slot) {
            e.remove();
        }
    }
}

/// The nick index: like [`Index`], but a bucket holds only the slot (4
/// bytes) and the 32 hash bits live in an array by slot. At a million users
/// the table is then 10 MiB instead of 19 (plus 4 MiB of hashes, read in
/// slot order when the table grows), which the cache keeps far better.
#[derive(Clone, Default)]
struct NickIndex {
    table: HashTable<u32>,
    hashes: Vec<u32>,
}

impl NickIndex {
    fn find(&self, hash: u64, mut is: impl FnMut(u32) -> bool) -> Option<u32> {
        let h = Index::narrow(hash);
        let hashes = &self.hashes;
        self.table.find(Index::widen(h), |&i| hashes[i as usize] == h && is(i)).copied()
    }

    fn insert(&mut self, hash: u64, slot: u32) {
        let h = Index::narrow(hash);
        let at = slot as usize;
        if self.hashes.len() <= at {
            self.hashes.resize(at + 1, 0);
        }
        self.hashes[at] = h;
        let hashes = &self.hashes;
        self.table.insert_unique(Index::widen(h), slot, |&i| Index::widen(hashes[i as usize]));
    }

    fn remove(&mut self, hash: u64, slot: u32) {
        let h = Index::narrow(hash);
        if let Ok(e) = self.table.find_entry(Index::widen(h), |&i| i == slot) {
            e.remove();
        }
    }

    fn reserve(&mut self, additional: usize) {
        let hashes = &self.hashes;
        self.table.reserve(additional, |&i| Index::widen(hashes[i as usize]));
    }
}

/// The users of one hub, by nick and (ADC) by SID. See the module
/// documentation for the layout.
///
/// Invariants: `by_nick` holds the index of every user in `users` once,
/// hashed by its nick; `by_sid[sid]` is one more than the index of the
/// user with that SID (0: none); `by_cid`, once built, that of every user with a CID; `free` lists
/// the empty slots; `len` counts the full ones.
#[derive(Clone)]
pub struct UserList {
    users: Vec<Option<User>>,
    free: Vec<u32>,
    by_nick: NickIndex,
    /// Direct-mapped: a SID is a 20-bit number and hubs hand them out
    /// densely, so an array (4 bytes per SID up to the highest seen, 4 MiB
    /// at the very most) beats a hash table, and floods of increasing SIDs
    /// touch it in order.
    by_sid: Vec<u32>,
    /// Built on the first look-up by CID (downloads, UDP results): a join
    /// does not pay for it, nor a client that never asks.
    by_cid: OnceCell<Index>,
    hasher: HubHasher,
    /// The shared texts; pruned of unused ones as it grows.
    tags: HashTable<Arc<Tag>>,
    tags_pruned_at: usize,
    last_tag: Option<Arc<Tag>>,
    len: usize,
    /// Users refused because the list was full.
    refused: u64,
    /// The cap ([`MAX_USERS`] unless a test or the settings say otherwise).
    cap: usize,
}

impl Default for UserList {
    fn default() -> UserList {
        UserList::with_cap(MAX_USERS)
    }
}

impl fmt::Debug for UserList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserList").field("len", &self.len).field("refused", &self.refused).finish()
    }
}

impl UserList {
    /// A list that keeps at most `cap` users.
    pub fn with_cap(cap: usize) -> UserList {
        UserList {
            users: Vec::new(),
            free: Vec::new(),
            by_nick: NickIndex::default(),
            by_sid: Vec::new(),
            by_cid: OnceCell::new(),
            hasher: HubHasher::default(),
            tags: HashTable::new(),
            tags_pruned_at: 0,
            last_tag: None,
            len: 0,
            refused: 0,
            cap,
        }
    }

    /// How many users were refused because the list was full.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Makes room for `additional` more users at once (a hub announcing its
    /// user count, a `$NickList`), instead of growing step by step.
    pub fn reserve(&mut self, additional: usize) {
        let additional = additional.min(self.cap.saturating_sub(self.len));
        self.users.reserve(additional.saturating_sub(self.free.len()));
        self.by_nick.reserve(additional);
    }

    fn find_nick(&self, nick: &str) -> Option<u32> {
        self.by_nick.find(self.hasher.hash_one(nick), |i| nick_at(&self.users, i) == nick)
    }

    /// The user with this nick.
    pub fn get(&self, nick: &str) -> Option<&User> {
        self.find_nick(nick).and_then(|i| self.users[i as usize].as_ref())
    }

    /// Whether a user with this nick is listed.
    pub fn contains(&self, nick: &str) -> bool {
        self.find_nick(nick).is_some()
    }

    /// The user with this SID (ADC).
    pub fn by_sid(&self, sid: Sid) -> Option<&User> {
        let slot = self.by_sid.get(sid.value() as usize)?.checked_sub(1)?;
        self.users.get(slot as usize)?.as_ref()
    }

    /// The user with this CID (ADC).
    pub fn by_cid(&self, cid: &Cid) -> Option<&User> {
        let index = self.by_cid.get_or_init(|| {
            let mut index = Index::default();
            for (i, u) in self.users.iter().enumerate() {
                if let Some(c) = u.as_ref().and_then(User::cid) {
                    index.insert(self.hasher.hash_one(c.0), i as u32);
                }
            }
            index
        });
        index
            .find(self.hasher.hash_one(cid.0), |i| cid_at(&self.users, i) == Some(cid))
            .and_then(|i| self.users[i as usize].as_ref())
    }

    /// The nick of the user with this SID (ADC).
    pub fn nick_of(&self, sid: Sid) -> Option<&str> {
        self.by_sid(sid).map(User::nick)
    }

    /// The shared [`Tag`] of these texts.
    pub fn tag(&mut self, connection: &str, client: &str, version: &str, extra: &str) -> Arc<Tag> {
        if connection.is_empty() && client.is_empty() && version.is_empty() && extra.is_empty() {
            return NO_TAG.clone();
        }
        // Users of one client come in runs: the last text found is tried
        // before hashing.
        if let Some(t) = &self.last_tag {
            if t.is([connection, client, version, extra]) {
                return t.clone();
            }
        }
        let key = (connection, client, version, extra);
        let hash = self.hasher.hash_one(key);
        if let Some(t) = self.tags.find(hash, |t| t.is([connection, client, version, extra])) {
            self.last_tag = Some(t.clone());
            return t.clone();
        }
        // Drop the texts no user holds any more before growing past twice
        // the size after the last pruning: a hub cycling through versions
        // cannot grow the table without bound.
        if self.tags.len() >= 2 * self.tags_pruned_at + 64 {
            self.tags.retain(|t| Arc::strong_count(t) > 1);
            self.tags_pruned_at = self.tags.len();
        }
        let tag = Arc::new(Tag::new(connection, client, version, extra));
        self.last_tag = Some(tag.clone());
        let hasher = &self.hasher;
        self.tags.insert_unique(hash, tag.clone(), |t| {
            let [a, b, c, d] = t.parts();
            hasher.hash_one((a, b, c, d))
        });
        tag
    }

    /// Adds or replaces the user with this nick; returns the previous entry.
    /// A user with a SID another listed user holds replaces that user too
    /// (a hub reusing a SID). A new user beyond the cap is not kept: the
    /// first one refused is logged, all are counted ([`Self::refused`]).
    pub fn insert(&mut self, user: User) -> Option<User> {
        if let Some(sid) = user.sid {
            if let Some(other) = self.by_sid(sid).map(|u| u.nick().to_string()) {
                if other != user.nick() {
                    self.remove(&other);
                }
            }
        }
        let existing = self.find_nick(user.nick());
        if existing.is_none() && self.len >= self.cap {
            if self.refused == 0 {
                log::warn!(
                    target: "hub",
                    "a hub's user list reached {} users; more are not kept (first refused: {:?})",
                    self.cap,
                    crate::text::neutralise(user.nick())
                );
            }
            self.refused += 1;
            return None;
        }
        match existing {
            Some(i) => {
                let old = self.users[i as usize].take();
                if let Some(o) = &old {
                    self.unindex_ids(o, i);
                }
                self.users[i as usize] = Some(user);
                self.index_ids(i);
                old
            }
            None => {
                let i = match self.free.pop() {
                    Some(i) => {
                        self.users[i as usize] = Some(user);
                        i
                    }
                    None => {
                        self.users.push(Some(user));
                        (self.users.len() - 1) as u32
                    }
                };
                self.len += 1;
                let hash = self.hasher.hash_one(nick_at(&self.users, i));
                self.by_nick.insert(hash, i);
                self.index_ids(i);
                None
            }
        }
    }

    /// Indexes user `i` by its SID and CID.
    fn index_ids(&mut self, i: u32) {
        if let Some(sid) = sid_at(&self.users, i) {
            let at = sid.value() as usize;
            if self.by_sid.len() <= at {
                self.by_sid.resize(at + 1, 0);
            }
            self.by_sid[at] = i + 1;
        }
        if let (Some(cid), Some(index)) = (cid_at(&self.users, i), self.by_cid.get_mut()) {
            index.insert(self.hasher.hash_one(cid.0), i);
        }
    }

    /// Forgets user `i`'s SID and CID (`user` is what was at `i`).
    fn unindex_ids(&mut self, user: &User, i: u32) {
        if let Some(sid) = user.sid {
            if let Some(e) = self.by_sid.get_mut(sid.value() as usize).filter(|e| **e == i + 1) {
                *e = 0;
            }
        }
        if let (Some(cid), Some(index)) = (&user.cid, self.by_cid.get_mut()) {
            index.remove(self.hasher.hash_one(cid.0), i);
        }
    }

    /// Removes a user.
    pub fn remove(&mut self, nick: &str) -> Option<User> {
        let hash = self.hasher.hash_one(nick);
        let i = self.by_nick.find(hash, |i| nick_at(&self.users, i) == nick)?;
        self.by_nick.remove(hash, i);
        let user = self.users[i as usize].take()?;
        self.unindex_ids(&user, i);
        self.free.push(i);
        self.len -= 1;
        if self.len == 0 {
            // Keep the tables' room, not the holes.
            self.users.clear();
            self.free.clear();
        }
        Some(user)
    }

    /// Removes the user with this SID (ADC).
    pub fn remove_sid(&mut self, sid: Sid) -> Option<User> {
        let nick = self.nick_of(sid)?.to_string();
        self.remove(&nick)
    }

    /// Changes a user in place (its nick and SID included); returns false
    /// when there is no such user.
    pub fn update(&mut self, nick: &str, f: impl FnOnce(&mut User)) -> bool {
        let Some(i) = self.find_nick(nick) else { return false };
        let Some(mut user) = self.users[i as usize].clone() else { return false };
        f(&mut user);
        let same_ids =
            self.users[i as usize].as_ref().is_some_and(|u| u.sid == user.sid && u.cid == user.cid);
        if user.nick() == nick && same_ids {
            self.users[i as usize] = Some(user);
        } else {
            self.remove(nick);
            self.insert(user);
        }
        true
    }

    /// Every user, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &User> {
        self.users.iter().flatten()
    }

    /// The most users it keeps.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Removes every user.
    pub fn clear(&mut self) {
        *self = UserList::with_cap(self.cap);
    }

    /// Total shared bytes.
    pub fn total_share(&self) -> u64 {
        self.iter().map(|u| u.share).fold(0, u64::saturating_add)
    }
}

fn nick_at(users: &[Option<User>], i: u32) -> &str {
    users[i as usize].as_ref().map_or("", User::nick)
}

fn sid_at(users: &[Option<User>], i: u32) -> Option<Sid> {
    users[i as usize].as_ref().and_then(User::sid)
}

fn cid_at(users: &[Option<User>], i: u32) -> Option<&Cid> {
    users[i as usize].as_ref().and_then(User::cid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn my_info(list: &mut UserList, line: &str) -> User {
        let nmdc::Message::MyInfo(mi) = nmdc::parse(line.as_bytes(), encoding_rs::UTF_8) else {
            panic!("not a $MyINFO: {line}")
        };
        User::from_my_info(list, &mi)
    }

    fn inf(list: &mut UserList, user: &mut User, line: &str) {
        let rest = line.strip_prefix("BINF ").unwrap();
        let (sid, fields) = rest.split_once(' ').unwrap_or((rest, ""));
        user.apply_inf(list, sid.parse().unwrap(), fields);
    }

    #[test]
    fn nmdc_users_share_their_tags_and_rebuild_their_line() {
        let mut list = UserList::default();
        let line = "$MyINFO $ALL bob hi<EiskaltDC++ V:2.4.2,M:P,H:1/2/3,S:10>$ $100\x03$b@x$42$";
        let u = my_info(&mut list, line);
        assert_eq!(
            (u.nick(), u.description(), u.client(), u.version(), u.email(), u.connection()),
            ("bob", "hi", "EiskaltDC++", "2.4.2", "b@x", "100")
        );
        assert_eq!((u.mode, u.slots, u.share, u.away), (UserMode::Passive, Some(10), 42, true));
        assert_eq!(u.hubs, Some(HubCounts { normal: 1, registered: 2, op: 3 }));
        assert_eq!((u.sid(), u.cid(), u.cid_text()), (None, None, None));
        assert_eq!(u.raw(), line, "a canonical line rebuilds byte for byte");
        let v = my_info(
            &mut list,
            "$MyINFO $ALL carol x<EiskaltDC++ V:2.4.2,M:A,H:1/0/0,S:3>$ $100\x01$$7$",
        );
        assert!(Arc::ptr_eq(&u.tag, &v.tag), "same connection, client and version: one text");
        // What the struct does not represent is kept: a two-letter mode,
        // other tag fields, the whole flag byte.
        let odd = "$MyINFO $ALL dave <++ V:0.868,M:AP,H:1/0/0,S:3,O:5,L:512>$ $LAN(T3)\x31$$1$";
        let d = my_info(&mut list, odd);
        assert_eq!((d.mode, d.client(), d.connection()), (UserMode::Active, "++", "LAN(T3)"));
        assert_eq!(d.raw(), odd);
        assert_eq!(User::named("x").raw(), "", "a user known by nick only has no line");
    }

    #[test]
    fn adc_users_keep_bytes_and_the_fields_they_do_not_represent() {
        let mut list = UserList::default();
        let mut u = User::default();
        inf(
            &mut list,
            &mut u,
            "BINF AAAB IDKAEPJQ7XF2QQTBLTQ4DMTXJZBFJQXKUHGV5QWNQ NIal\\sice DEhi SS100 SL3 FS1 HN1 HR0 HO2 \
             APEiskaltDC++ VE2.4.2 I4127.0.0.1 U412345 SUSEGA,ADC0,TCP4,UDP4 KPSHA256/ABC CT4 AW1",
        );
        assert_eq!((u.nick(), u.description(), u.share), ("al ice", "hi", 100));
        assert_eq!((u.slots, u.free_slots), (Some(3), Some(1)));
        assert_eq!(u.hubs, Some(HubCounts { normal: 1, registered: 0, op: 2 }));
        assert_eq!((u.client(), u.version(), u.connection()), ("EiskaltDC++", "2.4.2", ""));
        assert_eq!(u.ip, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(u.sid().map(|s| s.to_string()).as_deref(), Some("AAAB"));
        assert_eq!(u.cid_text().as_deref(), Some("KAEPJQ7XF2QQTBLTQ4DMTXJZBFJQXKUHGV5QWNQ"));
        assert_eq!((u.mode, u.op, u.bot, u.away), (UserMode::Active, true, false, true));
        assert_eq!(u.inf_field("KP").as_deref(), Some("SHA256/ABC"));
        assert_eq!(u.inf_field("U4").as_deref(), Some("12345"));
        assert_eq!(u.inf_field("NI"), None, "represented fields are not kept twice");
        assert_eq!(
            u.raw(),
            "BINF AAAB IDKAEPJQ7XF2QQTBLTQ4DMTXJZBFJQXKUHGV5QWNQ NIal\\sice DEhi APEiskaltDC++ \
             VE2.4.2 SS100 SL3 FS1 HN1 HR0 HO2 I4127.0.0.1 SUSEGA,ADC0,TCP4,UDP4 U412345 \
             KPSHA256/ABC CT4 AW1"
        );
        // Incremental: a cleared IPv4 falls back to the IPv6, a field that
        // does not read is kept as sent, the last of a field named twice wins.
        inf(&mut list, &mut u, "BINF AAAB I4 I6::1 SSlots SUTCP4 SUUDP4 AW");
        assert_eq!(u.ip, Some("::1".parse().unwrap()));
        assert_eq!((u.share, u.mode, u.away), (0, UserMode::Passive, false));
        assert_eq!(u.inf_field("SS").as_deref(), Some("lots"));
        assert_eq!(u.inf_field("SU").as_deref(), Some("UDP4"));
        inf(&mut list, &mut u, "BINF AAAB SS7");
        assert_eq!((u.share, u.inf_field("SS")), (7, None));
        // Without AP, VE holds "client version".
        let mut d = User::default();
        inf(&mut list, &mut d, "BINF AAAC NId VE++\\s0.868");
        assert_eq!((d.client(), d.version()), ("++", "0.868"));
        // A CID of another length is kept as sent.
        inf(&mut list, &mut d, "BINF AAAC IDABCDEFGH");
        assert_eq!((d.cid(), d.cid_text().as_deref()), (None, Some("ABCDEFGH")));
    }

    #[test]
    fn the_list_finds_users_by_nick_sid_and_cid() {
        let mut l = UserList::default();
        assert!(l.insert(User { share: 5, ..User::named("bob") }).is_none());
        assert!(l.insert(User::named("alice")).is_none());
        let old = l.insert(User { share: 7, ..User::named("bob") }).unwrap();
        assert_eq!(old.share, 5);
        assert_eq!(l.len(), 2);
        assert_eq!(l.get("bob").unwrap().share, 7);
        assert!(l.update("bob", |u| u.op = true));
        assert!(l.get("bob").unwrap().op);
        assert!(!l.update("carol", |u| u.op = true));
        assert_eq!(l.total_share(), 7);
        assert_eq!(l.remove("alice").unwrap().nick(), "alice");
        assert!(!l.contains("alice"));
        // ADC users by SID and CID; a SID another user holds moves.
        let mut a = User::default();
        inf(&mut l, &mut a, "BINF AAAB IDKAEPJQ7XF2QQTBLTQ4DMTXJZBFJQXKUHGV5QWNQ NIann");
        let cid = *a.cid().unwrap();
        l.insert(a);
        let sid = "AAAB".parse().unwrap();
        assert_eq!(l.nick_of(sid), Some("ann"));
        assert_eq!(l.by_cid(&cid).map(User::nick), Some("ann"));
        assert!(l.update("ann", |u| u.set_description("renamed below")));
        let mut z = User::default();
        inf(&mut l, &mut z, "BINF AAAB NIzed");
        l.insert(z);
        assert_eq!((l.nick_of(sid), l.contains("ann"), l.by_cid(&cid)), (Some("zed"), false, None));
        assert_eq!(l.remove_sid(sid).map(|u| u.nick().to_string()).as_deref(), Some("zed"));
        assert_eq!((l.nick_of(sid), l.len()), (None, 1));
        // A removed user's slot is taken by the next one.
        let slots = l.users.len();
        l.insert(User::named("new"));
        assert_eq!(l.users.len(), slots);
        assert_eq!(l.iter().count(), 2);
    }

    #[test]
    fn user_lists_are_bounded() {
        let mut list = UserList::with_cap(2);
        let mut a = User::named("a");
        a.set_description(&"é".repeat(1000));
        let extra = vec!["XXyyyyyyyyy"; 1000].join(" ");
        a.set_text("a", &"é".repeat(1000), "", &extra);
        assert!(list.insert(a).is_none());
        let a = list.get("a").unwrap();
        assert!(a.description().len() <= MAX_USER_FIELD && a.description().ends_with('é'));
        assert!(a.extra().len() <= MAX_USER_EXTRA && a.extra().ends_with("yyy"));
        list.insert(User::named("b"));
        assert!(list.insert(User::named("c")).is_none());
        assert!(list.insert(User::named("d")).is_none());
        assert_eq!((list.len(), list.refused()), (2, 2));
        assert!(!list.contains("c"));
        assert!(list.insert(User::named("a")).is_some(), "a known user is still updated");
    }

    #[test]
    fn shared_texts_no_user_holds_are_pruned() {
        let mut list = UserList::default();
        for round in 0..50 {
            for i in 0..100 {
                let line = format!("$MyINFO $ALL u{i} <c V:{round}.{i},M:A>$ $1\x01$$0$");
                let u = my_info(&mut list, &line);
                list.insert(u);
            }
        }
        // Fifty rounds of 100 versions each; only the last round's are held.
        assert!(list.tags.len() < 500, "{} texts kept", list.tags.len());
    }
}
