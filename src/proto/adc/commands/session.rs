//! The session and login commands: `SUP`, `SID`, `INF`, `GPA`/`PAS`, `QUI`
//! and `STA`.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use crate::proto::adc::features::{split_features, Feature};
use crate::proto::adc::header::{CommandName, Header};
use crate::proto::adc::ident::{AnyCid, Pid, Sid};
use crate::proto::adc::message::Message;
use crate::proto::adc::password::{password_response, PasswordError};
use crate::proto::adc::status::{describe_code, Severity};

use super::view::{
    bad, check_command, inherent_view, opt_ip4, opt_ip6, opt_number, opt_sid, positional, put,
    put_flag, put_update, CommandView, Update, ViewError, WireValue,
};

// ---------------------------------------------------------------------------
// SUP

/// `SUP`: features added (`AD`) and removed (`RM`).
///
/// Items whose name is not 4 characters are skipped (they stay in the
/// message); any other parameter is ignored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sup {
    /// Features the sender now supports, in wire order.
    pub add: Vec<Feature>,
    /// Features the sender no longer supports, in wire order.
    pub remove: Vec<Feature>,
}

impl Sup {
    /// A SUP that adds `features` (e.g. [`HUB_SUP`](crate::proto::adc::features::HUB_SUP)).
    pub fn adding(features: &[Feature]) -> Sup {
        Sup { add: features.to_vec(), remove: Vec::new() }
    }

    /// Whether `feature` is among the added ones.
    pub fn adds(&self, feature: Feature) -> bool {
        self.add.contains(&feature)
    }
}

impl<'a> CommandView<'a> for Sup {
    const NAME: CommandName = CommandName::SUP;

    fn from_message(msg: &'a Message) -> Result<Sup, ViewError> {
        check_command(msg, Self::NAME)?;
        let mut sup = Sup::default();
        for (name, value) in msg.named() {
            let Some(feature) = Feature::parse(value) else { continue };
            match name {
                "AD" => sup.add.push(feature),
                "RM" => sup.remove.push(feature),
                _ => {}
            }
        }
        Ok(sup)
    }

    fn to_message(&self, header: Header) -> Message {
        let mut msg = Message::new(header, Self::NAME);
        for f in &self.add {
            msg.push_named("AD", f.as_str());
        }
        for f in &self.remove {
            msg.push_named("RM", f.as_str());
        }
        msg
    }
}
inherent_view!(Sup);

// ---------------------------------------------------------------------------
// SID

/// `ISID sid`: the hub assigns our SID.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SidCmd {
    /// Our SID on this hub.
    pub sid: Sid,
}

impl<'a> CommandView<'a> for SidCmd {
    const NAME: CommandName = CommandName::SID;

    fn from_message(msg: &'a Message) -> Result<SidCmd, ViewError> {
        check_command(msg, Self::NAME)?;
        let text = positional(msg, Self::NAME, 0, "sid")?;
        let sid =
            Sid::from_bytes(text.as_bytes()).map_err(|_| bad(Self::NAME, "sid", text, "a SID"))?;
        Ok(SidCmd { sid })
    }

    fn to_message(&self, header: Header) -> Message {
        Message::new(header, Self::NAME).with(&self.sid.to_string())
    }
}
inherent_view!(SidCmd);

// ---------------------------------------------------------------------------
// INF

/// INF `CT`: what kind of user (a sum of flags).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct UserType(pub u32);

impl UserType {
    /// A bot.
    pub const BOT: UserType = UserType(1);
    /// A registered user.
    pub const REGISTERED: UserType = UserType(2);
    /// An operator.
    pub const OPERATOR: UserType = UserType(4);
    /// A super user.
    pub const SUPERUSER: UserType = UserType(8);
    /// The hub owner.
    pub const OWNER: UserType = UserType(16);
    /// The hub itself (in the hub's own INF).
    pub const HUB: UserType = UserType(32);
    /// Hidden: not to be shown in user lists (ADC-EXT).
    pub const HIDDEN: UserType = UserType(64);

    /// Whether every flag of `other` is set here.
    pub const fn contains(self, other: UserType) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether the user has operator rights (operator, super user or owner).
    pub const fn is_operator(self) -> bool {
        self.0 & (Self::OPERATOR.0 | Self::SUPERUSER.0 | Self::OWNER.0) != 0
    }
}

/// INF `AW`: away state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Away {
    /// `1`: away.
    Away,
    /// `2`: extended away, not interested in hub chat.
    ExtendedAway,
    /// Any other number.
    Other(u32),
}

impl Away {
    /// The state for its number.
    pub const fn from_value(value: u32) -> Away {
        match value {
            1 => Away::Away,
            2 => Away::ExtendedAway,
            n => Away::Other(n),
        }
    }

    /// The number.
    pub const fn value(self) -> u32 {
        match self {
            Away::Away => 1,
            Away::ExtendedAway => 2,
            Away::Other(n) => n,
        }
    }
}

impl WireValue for UserType {
    fn write_to(&self, out: &mut String) {
        self.0.write_to(out);
    }
}

impl WireValue for Away {
    fn write_to(&self, out: &mut String) {
        self.value().write_to(out);
    }
}

/// `INF`: information about a user, the hub (`IINF`) or a peer (`CINF`).
///
/// INF is incremental: a field that is `None` was not sent (unchanged),
/// `Some(Update::Clear)` was sent empty (remove it), `Some(Update::Set(v))`
/// has a new value. Fields unknown to this view stay in the message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inf<'a> {
    /// `ID`: the CID (mandatory in client-client INF).
    pub cid: Option<Update<AnyCid>>,
    /// `PD`: our PID; sent to the hub only, which strips it.
    pub pid: Option<Update<Pid>>,
    /// `NI`: nick (or hub name).
    pub nick: Option<Update<&'a str>>,
    /// `DE`: description (or hub topic).
    pub description: Option<Update<&'a str>>,
    /// `EM`: e-mail address.
    pub email: Option<Update<&'a str>>,
    /// `VE`: client version (or the whole client name and version).
    pub version: Option<Update<&'a str>>,
    /// `AP`: application name (ADC-EXT; `VE` then holds only the version).
    pub application: Option<Update<&'a str>>,
    /// `SS`: share size in bytes.
    pub share_size: Option<Update<u64>>,
    /// `SF`: number of shared files.
    pub shared_files: Option<Update<u64>>,
    /// `SL`: upload slots.
    pub slots: Option<Update<u64>>,
    /// `FS`: free upload slots (ADC-EXT).
    pub free_slots: Option<Update<u64>>,
    /// `AS`: automatic slot allocator speed limit, bytes/s.
    pub auto_slot_speed: Option<Update<u64>>,
    /// `AM`: minimum slots in automatic slot mode.
    pub min_auto_slots: Option<Update<u64>>,
    /// `US`: maximum upload speed, bytes/s.
    pub upload_speed: Option<Update<u64>>,
    /// `DS`: maximum download speed, bytes/s.
    pub download_speed: Option<Update<u64>>,
    /// `HN`: hubs where the user is a normal user.
    pub hubs_normal: Option<Update<u64>>,
    /// `HR`: hubs where the user is registered.
    pub hubs_registered: Option<Update<u64>>,
    /// `HO`: hubs where the user is an operator.
    pub hubs_operator: Option<Update<u64>>,
    /// `I4`: IPv4 address (`0.0.0.0` asks the hub to fill it in).
    pub ip4: Option<Update<Ipv4Addr>>,
    /// `I6`: IPv6 address (`::` asks the hub to fill it in).
    pub ip6: Option<Update<Ipv6Addr>>,
    /// `U4`: UDP port for IPv4 search results.
    pub udp4: Option<Update<u16>>,
    /// `U6`: UDP port for IPv6 search results.
    pub udp6: Option<Update<u16>>,
    /// `SU`: supported features (`TCP4`, `UDP4`, `ADC0`, `NAT0`, `SEGA`...).
    pub features: Option<Update<Vec<Feature>>>,
    /// `CT`: user type flags.
    pub client_type: Option<Update<UserType>>,
    /// `AW`: away state.
    pub away: Option<Update<Away>>,
    /// `TO`: the CTM/RCM token, in client-client INF.
    pub token: Option<Update<&'a str>>,
    /// `RF`: referrer URL.
    pub referrer: Option<Update<&'a str>>,
    /// `KP`: keyprint of the client's TLS certificate (`SHA256/<base32>`).
    pub keyprint: Option<Update<&'a str>>,
    /// `LC`: locale (`en-US`).
    pub locale: Option<Update<&'a str>>,
}

/// Reads one INF field: empty is `Clear`, else `parse` must succeed.
fn inf_field<'a, T>(
    errors: &mut Vec<ViewError>,
    field: &'static str,
    value: &'a str,
    expected: &'static str,
    parse: impl FnOnce(&'a str) -> Option<T>,
) -> Option<Update<T>> {
    if value.is_empty() {
        return Some(Update::Clear);
    }
    match parse(value) {
        Some(v) => Some(Update::Set(v)),
        None => {
            errors.push(bad(CommandName::INF, field, value, expected));
            None
        }
    }
}

/// A decimal number without sign, as INF fields use.
fn unsigned<T: FromStr>(value: &str) -> Option<T> {
    if value.starts_with('+') {
        None
    } else {
        value.parse().ok()
    }
}

impl<'a> Inf<'a> {
    /// Reads every field it can; fields with bad values are left `None` and
    /// reported. For user lists: one odd field must not hide a user.
    pub fn from_message_lossy(msg: &'a Message) -> (Inf<'a>, Vec<ViewError>) {
        let mut errors = Vec::new();
        if let Err(e) = check_command(msg, CommandName::INF) {
            errors.push(e);
            return (Inf::default(), errors);
        }
        let mut inf = Inf::default();
        let e = &mut errors;
        const INT: &str = "a non-negative integer";
        const TEXT: &str = "text";
        for (name, v) in msg.named() {
            let text = |e: &mut Vec<ViewError>, f| inf_field(e, f, v, TEXT, Some);
            match name {
                "ID" => inf.cid = inf_field(e, "ID", v, "a base32 CID", |v| AnyCid::parse(v).ok()),
                "PD" => {
                    inf.pid =
                        inf_field(e, "PD", v, "a 39-character base32 PID", |v| v.parse().ok());
                }
                "NI" => inf.nick = text(e, "NI"),
                "DE" => inf.description = text(e, "DE"),
                "EM" => inf.email = text(e, "EM"),
                "VE" => inf.version = text(e, "VE"),
                "AP" => inf.application = text(e, "AP"),
                "SS" => inf.share_size = inf_field(e, "SS", v, INT, unsigned),
                "SF" => inf.shared_files = inf_field(e, "SF", v, INT, unsigned),
                "SL" => inf.slots = inf_field(e, "SL", v, INT, unsigned),
                "FS" => inf.free_slots = inf_field(e, "FS", v, INT, unsigned),
                "AS" => inf.auto_slot_speed = inf_field(e, "AS", v, INT, unsigned),
                "AM" => inf.min_auto_slots = inf_field(e, "AM", v, INT, unsigned),
                "US" => inf.upload_speed = inf_field(e, "US", v, INT, unsigned),
                "DS" => inf.download_speed = inf_field(e, "DS", v, INT, unsigned),
                "HN" => inf.hubs_normal = inf_field(e, "HN", v, INT, unsigned),
                "HR" => inf.hubs_registered = inf_field(e, "HR", v, INT, unsigned),
                "HO" => inf.hubs_operator = inf_field(e, "HO", v, INT, unsigned),
                "I4" => inf.ip4 = inf_field(e, "I4", v, "an IPv4 address", |v| v.parse().ok()),
                "I6" => inf.ip6 = inf_field(e, "I6", v, "an IPv6 address", |v| v.parse().ok()),
                "U4" => inf.udp4 = inf_field(e, "U4", v, "a port number", unsigned),
                "U6" => inf.udp6 = inf_field(e, "U6", v, "a port number", unsigned),
                "SU" => {
                    inf.features =
                        inf_field(e, "SU", v, "comma-separated 4-character features", |v| {
                            split_features(v).ok()
                        });
                }
                "CT" => inf.client_type = inf_field(e, "CT", v, INT, |v| unsigned(v).map(UserType)),
                "AW" => {
                    inf.away = inf_field(e, "AW", v, INT, |v| unsigned(v).map(Away::from_value));
                }
                "TO" => inf.token = text(e, "TO"),
                "RF" => inf.referrer = text(e, "RF"),
                "KP" => inf.keyprint = text(e, "KP"),
                "LC" => inf.locale = text(e, "LC"),
                _ => {}
            }
        }
        (inf, errors)
    }

    /// Whether the INF announces `feature` in its `SU`.
    pub fn supports(&self, feature: Feature) -> bool {
        matches!(&self.features, Some(Update::Set(list)) if list.contains(&feature))
    }
}

impl<'a> CommandView<'a> for Inf<'a> {
    const NAME: CommandName = CommandName::INF;

    fn from_message(msg: &'a Message) -> Result<Inf<'a>, ViewError> {
        let (inf, mut errors) = Inf::from_message_lossy(msg);
        if errors.is_empty() {
            Ok(inf)
        } else {
            Err(errors.swap_remove(0))
        }
    }

    /// Fields go out in the order eiskaltdcpp uses (ID PD NI DE SL FS SS SF
    /// HN HR HO AP VE US DS I4 U4 SU), the others after them.
    fn to_message(&self, header: Header) -> Message {
        let mut m = Message::new(header, Self::NAME);
        let b = &mut String::new();
        put_update(&mut m, b, "ID", &self.cid);
        put_update(&mut m, b, "PD", &self.pid);
        put_update(&mut m, b, "NI", &self.nick);
        put_update(&mut m, b, "DE", &self.description);
        put_update(&mut m, b, "SL", &self.slots);
        put_update(&mut m, b, "FS", &self.free_slots);
        put_update(&mut m, b, "SS", &self.share_size);
        put_update(&mut m, b, "SF", &self.shared_files);
        put_update(&mut m, b, "HN", &self.hubs_normal);
        put_update(&mut m, b, "HR", &self.hubs_registered);
        put_update(&mut m, b, "HO", &self.hubs_operator);
        put_update(&mut m, b, "AP", &self.application);
        put_update(&mut m, b, "VE", &self.version);
        put_update(&mut m, b, "US", &self.upload_speed);
        put_update(&mut m, b, "DS", &self.download_speed);
        put_update(&mut m, b, "AS", &self.auto_slot_speed);
        put_update(&mut m, b, "AM", &self.min_auto_slots);
        put_update(&mut m, b, "EM", &self.email);
        put_update(&mut m, b, "I4", &self.ip4);
        put_update(&mut m, b, "I6", &self.ip6);
        put_update(&mut m, b, "U4", &self.udp4);
        put_update(&mut m, b, "U6", &self.udp6);
        put_update(&mut m, b, "SU", &self.features);
        put_update(&mut m, b, "CT", &self.client_type);
        put_update(&mut m, b, "AW", &self.away);
        put_update(&mut m, b, "TO", &self.token);
        put_update(&mut m, b, "KP", &self.keyprint);
        put_update(&mut m, b, "LC", &self.locale);
        put_update(&mut m, b, "RF", &self.referrer);
        m
    }
}
inherent_view!(Inf<'a>);

// ---------------------------------------------------------------------------
// GPA / PAS

/// `IGPA salt`: the hub asks for our password.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Gpa<'a> {
    /// Base32 random data (at least 24 bytes) to hash with the password.
    pub salt: &'a str,
}

impl Gpa<'_> {
    /// The `HPAS` answer for `password` (see
    /// [`password_response`]).
    pub fn respond(&self, password: &str) -> Result<Pas<'static>, PasswordError> {
        password_response(password, self.salt).map(|response| Pas { response: response.into() })
    }
}

impl<'a> CommandView<'a> for Gpa<'a> {
    const NAME: CommandName = CommandName::GPA;

    fn from_message(msg: &'a Message) -> Result<Gpa<'a>, ViewError> {
        check_command(msg, Self::NAME)?;
        Ok(Gpa { salt: positional(msg, Self::NAME, 0, "salt")? })
    }

    fn to_message(&self, header: Header) -> Message {
        Message::new(header, Self::NAME).with(self.salt)
    }
}
inherent_view!(Gpa<'a>);

/// `HPAS response`: our answer to GPA.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Pas<'a> {
    /// base32(Tiger(password ‖ salt)).
    pub response: std::borrow::Cow<'a, str>,
}

impl<'a> CommandView<'a> for Pas<'a> {
    const NAME: CommandName = CommandName::PAS;

    fn from_message(msg: &'a Message) -> Result<Pas<'a>, ViewError> {
        check_command(msg, Self::NAME)?;
        Ok(Pas { response: positional(msg, Self::NAME, 0, "response")?.into() })
    }

    fn to_message(&self, header: Header) -> Message {
        Message::new(header, Self::NAME).with(&self.response)
    }
}
inherent_view!(Pas<'a>);

// ---------------------------------------------------------------------------
// QUI

/// `IQUI sid`: a user left; if `sid` is ours, we are being disconnected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Qui<'a> {
    /// Who left.
    pub sid: Sid,
    /// `ID`: who made them leave (kick).
    pub initiator: Option<Sid>,
    /// `TL`: seconds before reconnecting is allowed; -1 means never.
    pub time_left: Option<i64>,
    /// `MS`: reason.
    pub message: Option<&'a str>,
    /// `RD`: redirect to this hub URL.
    pub redirect: Option<&'a str>,
    /// `DI1`: others should drop their transfers with this user.
    pub disconnect_transfers: bool,
}

impl<'a> CommandView<'a> for Qui<'a> {
    const NAME: CommandName = CommandName::QUI;

    fn from_message(msg: &'a Message) -> Result<Qui<'a>, ViewError> {
        check_command(msg, Self::NAME)?;
        let n = Self::NAME;
        let sid = positional(msg, n, 0, "sid")?;
        Ok(Qui {
            sid: Sid::from_bytes(sid.as_bytes()).map_err(|_| bad(n, "sid", sid, "a SID"))?,
            initiator: opt_sid(msg, n, "ID")?,
            time_left: opt_number(msg, n, "TL", "seconds (-1 = forever)")?,
            message: msg.get("MS"),
            redirect: msg.get("RD"),
            disconnect_transfers: msg.flag("DI"),
        })
    }

    fn to_message(&self, header: Header) -> Message {
        let mut m = Message::new(header, Self::NAME).with(&self.sid.to_string());
        let b = &mut String::new();
        put(&mut m, b, "ID", &self.initiator);
        put(&mut m, b, "TL", &self.time_left);
        put(&mut m, b, "MS", &self.message);
        put(&mut m, b, "RD", &self.redirect);
        put_flag(&mut m, "DI", self.disconnect_transfers);
        m
    }
}
inherent_view!(Qui<'a>);

// ---------------------------------------------------------------------------
// STA

/// `STA code text`: a status or error. Show `text` to the user even when the
/// code is unknown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Sta<'a> {
    /// First digit of the code.
    pub severity: Severity,
    /// Last two digits of the code (see [`status::code`](crate::proto::adc::status::code)).
    pub code: u8,
    /// Human-readable text (may be empty: eiskaltdcpp sends `CSTA 000  RF...`).
    pub text: &'a str,
    /// `FC`: the FOURCC (or feature) concerned.
    pub fourcc: Option<&'a str>,
    /// `TL`: seconds left of a ban (-1 = forever).
    pub time_left: Option<i64>,
    /// `TO`: the CTM/RCM token concerned.
    pub token: Option<&'a str>,
    /// `PR`: the CTM/RCM protocol concerned.
    pub protocol: Option<&'a str>,
    /// `FM`: the missing INF field.
    pub missing_field: Option<&'a str>,
    /// `FB`: the bad INF field.
    pub bad_field: Option<&'a str>,
    /// `RF`: referrer URL (the hub, in a client-client `CSTA 000`).
    pub referrer: Option<&'a str>,
    /// `QP`: position in the sender's upload queue (with code 53).
    pub queue_position: Option<u64>,
    /// `I4`: the IPv4 address the hub expected (code 46).
    pub ip4: Option<Ipv4Addr>,
    /// `I6`: the IPv6 address the hub expected (code 46).
    pub ip6: Option<Ipv6Addr>,
}

impl<'a> Sta<'a> {
    /// A status with no flags.
    pub fn new(severity: Severity, code: u8, text: &'a str) -> Sta<'a> {
        Sta {
            severity,
            code,
            text,
            fourcc: None,
            time_left: None,
            token: None,
            protocol: None,
            missing_field: None,
            bad_field: None,
            referrer: None,
            queue_position: None,
            ip4: None,
            ip6: None,
        }
    }

    /// The three-digit wire code (`xyy`).
    pub fn code_string(&self) -> String {
        format!("{}{:02}", self.severity.digit(), self.code % 100)
    }

    /// A human description of the code ("nick taken", or the category's
    /// generic error for unknown codes).
    pub fn description(&self) -> &'static str {
        describe_code(self.code)
    }
}

impl<'a> CommandView<'a> for Sta<'a> {
    const NAME: CommandName = CommandName::STA;

    fn from_message(msg: &'a Message) -> Result<Sta<'a>, ViewError> {
        check_command(msg, Self::NAME)?;
        let n = Self::NAME;
        let code = positional(msg, n, 0, "code")?;
        let b = code.as_bytes();
        let expected = "three digits, the first 0, 1 or 2";
        if b.len() != 3 || !b.iter().all(u8::is_ascii_digit) {
            return Err(bad(n, "code", code, expected));
        }
        let severity =
            Severity::from_digit(b[0] - b'0').ok_or_else(|| bad(n, "code", code, expected))?;
        let mut sta = Sta::new(severity, (b[1] - b'0') * 10 + (b[2] - b'0'), "");
        // ADC requires the text, but a missing one should not hide the code.
        sta.text = msg.positional(1).unwrap_or("");
        sta.fourcc = msg.get("FC");
        sta.time_left = opt_number(msg, n, "TL", "seconds (-1 = forever)")?;
        sta.token = msg.get("TO");
        sta.protocol = msg.get("PR");
        sta.missing_field = msg.get("FM");
        sta.bad_field = msg.get("FB");
        sta.referrer = msg.get("RF");
        sta.queue_position = opt_number(msg, n, "QP", "a queue position")?;
        sta.ip4 = opt_ip4(msg, n)?;
        sta.ip6 = opt_ip6(msg, n)?;
        Ok(sta)
    }

    /// Flags go out as FC FM FB PR TO TL RF QP I4 I6 (uhub and eiskaltdcpp
    /// send `FB`/`FM` and `PR` before `TO`).
    fn to_message(&self, header: Header) -> Message {
        let mut m = Message::new(header, Self::NAME).with(&self.code_string()).with(self.text);
        let b = &mut String::new();
        put(&mut m, b, "FC", &self.fourcc);
        put(&mut m, b, "FM", &self.missing_field);
        put(&mut m, b, "FB", &self.bad_field);
        put(&mut m, b, "PR", &self.protocol);
        put(&mut m, b, "TO", &self.token);
        put(&mut m, b, "TL", &self.time_left);
        put(&mut m, b, "RF", &self.referrer);
        put(&mut m, b, "QP", &self.queue_position);
        put(&mut m, b, "I4", &self.ip4);
        put(&mut m, b, "I6", &self.ip6);
        m
    }
}
inherent_view!(Sta<'a>);
