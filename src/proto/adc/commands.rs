//! Typed views of the ADC commands a client meets: read one out of a
//! [`Message`] (`from_message`) or build a [`Message`] from one
//! (`to_message`, given the [`Header`] to route it with).
//!
//! Pure: no I/O. Views borrow their text from the message they were read
//! from, so reading one allocates nothing beyond small lists (search terms,
//! features). Unknown named parameters are ignored by a view but stay in the
//! message; unknown commands come out as [`Command::Raw`].
//!
//! Views are strict about the fields they read (a bad number is an error
//! naming the field); [`Inf::from_message_lossy`] is there for user lists,
//! where one odd field must not hide a user.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use super::features::{join_features, split_features, Feature};
use super::header::{CommandName, Header};
use super::ident::{excerpt, AnyCid, Pid, Sid};
use super::message::Message;
use super::password::{password_response, PasswordError};
use super::status::{describe_code, Severity};
use crate::proto::tth::Tth;

/// The protocol string of a plain ADC client-client connection in CTM/RCM.
pub const PROTOCOL_ADC: &str = "ADC/1.0";
/// The protocol string of a TLS client-client connection in CTM/RCM, as DC++
/// and its descendants send it (protocols.md §4, pitfall 1).
pub const PROTOCOL_ADCS: &str = "ADCS/0.10";

/// Why a message cannot be read as a given command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("reading {command}: {kind}")]
pub struct ViewError {
    /// The command being read.
    pub command: CommandName,
    /// What is wrong.
    pub kind: ViewErrorKind,
}

/// What is wrong in a [`ViewError`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ViewErrorKind {
    /// The message is another command.
    #[error("the message is a {found} command")]
    WrongCommand {
        /// The command the message actually carries.
        found: CommandName,
    },
    /// A required parameter is absent.
    #[error("missing {field}")]
    Missing {
        /// The parameter (a positional name or a two-letter field).
        field: &'static str,
    },
    /// A parameter does not hold what it should.
    #[error("bad {field} {value:?}: expected {expected}")]
    BadValue {
        /// The parameter (a positional name or a two-letter field).
        field: &'static str,
        /// The offending value (at most 64 characters).
        value: String,
        /// What a valid value looks like.
        expected: &'static str,
    },
}

/// A typed view of one ADC command.
pub trait CommandView<'a>: Sized {
    /// The command's three-letter name.
    const NAME: CommandName;
    /// Reads the view out of `msg`, which must carry this command.
    fn from_message(msg: &'a Message) -> Result<Self, ViewError>;
    /// Builds the message, routed by `header`.
    fn to_message(&self, header: Header) -> Message;
}

/// One field of an incremental INF: set to a value, or cleared (sent with
/// an empty value).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Update<T> {
    /// The field now has this value.
    Set(T),
    /// The field was removed (its name was sent without a value).
    Clear,
}

impl<T> Update<T> {
    /// The new value, if the field was set.
    pub fn value(&self) -> Option<&T> {
        match self {
            Update::Set(v) => Some(v),
            Update::Clear => None,
        }
    }

    /// The new value, if the field was set.
    pub fn into_value(self) -> Option<T> {
        match self {
            Update::Set(v) => Some(v),
            Update::Clear => None,
        }
    }
}

// ---------------------------------------------------------------------------
// Reading and writing helpers

fn bad(
    command: CommandName,
    field: &'static str,
    value: &str,
    expected: &'static str,
) -> ViewError {
    ViewError { command, kind: ViewErrorKind::BadValue { field, value: excerpt(value), expected } }
}

fn missing(command: CommandName, field: &'static str) -> ViewError {
    ViewError { command, kind: ViewErrorKind::Missing { field } }
}

fn check_command(msg: &Message, want: CommandName) -> Result<(), ViewError> {
    if msg.command() == want {
        Ok(())
    } else {
        Err(ViewError { command: want, kind: ViewErrorKind::WrongCommand { found: msg.command() } })
    }
}

fn positional<'a>(
    msg: &'a Message,
    command: CommandName,
    index: usize,
    field: &'static str,
) -> Result<&'a str, ViewError> {
    msg.positional(index).ok_or_else(|| missing(command, field))
}

fn number<T: FromStr>(
    command: CommandName,
    field: &'static str,
    value: &str,
    expected: &'static str,
) -> Result<T, ViewError> {
    // `FromStr` for integers takes a leading '+'; ADC numbers never have one.
    if value.starts_with('+') {
        return Err(bad(command, field, value, expected));
    }
    value.parse().map_err(|_| bad(command, field, value, expected))
}

fn opt_number<T: FromStr>(
    msg: &Message,
    command: CommandName,
    field: &'static str,
    expected: &'static str,
) -> Result<Option<T>, ViewError> {
    msg.get(field).map(|v| number(command, field, v, expected)).transpose()
}

fn opt_sid(
    msg: &Message,
    command: CommandName,
    field: &'static str,
) -> Result<Option<Sid>, ViewError> {
    msg.get(field)
        .map(|v| Sid::from_bytes(v.as_bytes()).map_err(|_| bad(command, field, v, "a SID")))
        .transpose()
}

fn opt_tth(
    msg: &Message,
    command: CommandName,
    field: &'static str,
) -> Result<Option<Tth>, ViewError> {
    msg.get(field)
        .map(|v| v.parse::<Tth>().map_err(|_| bad(command, field, v, "a 39-character TTH")))
        .transpose()
}

fn opt_ip4(msg: &Message, command: CommandName) -> Result<Option<Ipv4Addr>, ViewError> {
    msg.get("I4").map(|v| number(command, "I4", v, "an IPv4 address")).transpose()
}

fn opt_ip6(msg: &Message, command: CommandName) -> Result<Option<Ipv6Addr>, ViewError> {
    msg.get("I6").map(|v| number(command, "I6", v, "an IPv6 address")).transpose()
}

/// A value that can be written as a named parameter.
trait WireValue {
    fn write_to(&self, out: &mut String);
}

impl WireValue for &str {
    fn write_to(&self, out: &mut String) {
        out.push_str(self);
    }
}

macro_rules! wire_value_display {
    ($($t:ty),*) => {$(
        impl WireValue for $t {
            fn write_to(&self, out: &mut String) {
                // Writing to a String cannot fail.
                let _ = write!(out, "{self}");
            }
        }
    )*};
}
wire_value_display!(u16, u32, u64, i64, Ipv4Addr, Ipv6Addr, Sid, Tth, AnyCid, Pid);

impl WireValue for Vec<Feature> {
    fn write_to(&self, out: &mut String) {
        out.push_str(&join_features(self));
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

/// Appends `name` + value if present.
fn put<T: WireValue>(msg: &mut Message, buf: &mut String, name: &str, value: &Option<T>) {
    if let Some(v) = value {
        buf.clear();
        v.write_to(buf);
        msg.push_named(name, buf);
    }
}

/// Appends `name` + value for a set INF field, `name` alone for a cleared one.
fn put_update<T: WireValue>(
    msg: &mut Message,
    buf: &mut String,
    name: &str,
    value: &Option<Update<T>>,
) {
    match value {
        None => {}
        Some(Update::Clear) => {
            msg.push_named(name, "");
        }
        Some(Update::Set(v)) => {
            buf.clear();
            v.write_to(buf);
            msg.push_named(name, buf);
        }
    }
}

/// Appends `name` + `1` if `flag` is set.
fn put_flag(msg: &mut Message, name: &str, flag: bool) {
    if flag {
        msg.push_named(name, "1");
    }
}

macro_rules! inherent_view {
    ($view:ident $(<$a:lifetime>)?) => {
        impl<'a> $view $(<$a>)? {
            /// Reads this command out of `msg`; see [`CommandView::from_message`].
            pub fn from_message(msg: &'a Message) -> Result<Self, ViewError> {
                <Self as CommandView<'a>>::from_message(msg)
            }

            /// Builds the message, routed by `header`; see [`CommandView::to_message`].
            pub fn to_message(&self, header: Header) -> Message {
                <Self as CommandView<'a>>::to_message(self, header)
            }
        }
    };
}

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
    /// A SUP that adds `features` (e.g. [`HUB_SUP`](super::features::HUB_SUP)).
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
// MSG

/// `MSG text`: chat. `BMSG` is main chat; `EMSG from to text PMfrom` (or
/// `DMSG`) a private message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Msg<'a> {
    /// The message text.
    pub text: &'a str,
    /// `PM`: private message; the SID replies go to (the sender's own SID in
    /// a plain conversation, another one for a group chat).
    pub pm: Option<Sid>,
    /// `ME1`: third person (`/me waves`).
    pub me: bool,
    /// `TS`: when it was sent, seconds since the Unix epoch (ADC-EXT TS).
    pub timestamp: Option<u64>,
}

impl<'a> Msg<'a> {
    /// A main-chat message.
    pub fn chat(text: &'a str) -> Msg<'a> {
        Msg { text, pm: None, me: false, timestamp: None }
    }

    /// A private message whose replies go to `reply_to`.
    pub fn private(text: &'a str, reply_to: Sid) -> Msg<'a> {
        Msg { text, pm: Some(reply_to), me: false, timestamp: None }
    }
}

impl<'a> CommandView<'a> for Msg<'a> {
    const NAME: CommandName = CommandName::MSG;

    fn from_message(msg: &'a Message) -> Result<Msg<'a>, ViewError> {
        check_command(msg, Self::NAME)?;
        Ok(Msg {
            text: positional(msg, Self::NAME, 0, "text")?,
            pm: opt_sid(msg, Self::NAME, "PM")?,
            me: msg.flag("ME"),
            timestamp: opt_number(msg, Self::NAME, "TS", "seconds since the epoch")?,
        })
    }

    fn to_message(&self, header: Header) -> Message {
        let mut m = Message::new(header, Self::NAME).with(self.text);
        let b = &mut String::new();
        put(&mut m, b, "PM", &self.pm);
        put_flag(&mut m, "ME", self.me);
        put(&mut m, b, "TS", &self.timestamp);
        m
    }
}
inherent_view!(Msg<'a>);

// ---------------------------------------------------------------------------
// SCH

/// SCH `TY`: what kind of entry is searched for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileType {
    /// `1`: files only.
    File,
    /// `2`: directories only.
    Directory,
}

impl FileType {
    fn value(self) -> u64 {
        match self {
            FileType::File => 1,
            FileType::Directory => 2,
        }
    }
}

impl WireValue for FileType {
    fn write_to(&self, out: &mut String) {
        self.value().write_to(out);
    }
}

/// `SCH`: a search. Terms are matched case-insensitively against full paths.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sch<'a> {
    /// `AN`: every one must appear.
    pub include: Vec<&'a str>,
    /// `NO`: none may appear.
    pub exclude: Vec<&'a str>,
    /// `EX`: the extension must be one of these (without the dot).
    pub extensions: Vec<&'a str>,
    /// `LE`: size at most.
    pub max_size: Option<u64>,
    /// `GE`: size at least.
    pub min_size: Option<u64>,
    /// `EQ`: size exactly.
    pub exact_size: Option<u64>,
    /// `TO`: token to copy into every result.
    pub token: Option<&'a str>,
    /// `TY`: files or directories only.
    pub file_type: Option<FileType>,
    /// `TR`: a TTH root (TIGR).
    pub tth: Option<Tth>,
    /// `TD`: tree depth (TIGR).
    pub tree_depth: Option<u32>,
    /// `GR`: extension groups, a sum of flags (SEGA: 1 audio, 2 compressed,
    /// 4 document, 8 executable, 16 picture, 32 video).
    pub groups: Option<u32>,
    /// `RX`: extensions excluded from the groups (SEGA).
    pub excluded_extensions: Vec<&'a str>,
}

impl<'a> CommandView<'a> for Sch<'a> {
    const NAME: CommandName = CommandName::SCH;

    fn from_message(msg: &'a Message) -> Result<Sch<'a>, ViewError> {
        check_command(msg, Self::NAME)?;
        let n = Self::NAME;
        const SIZE: &str = "a size in bytes";
        let mut sch = Sch::default();
        for (name, value) in msg.named() {
            match name {
                "AN" => sch.include.push(value),
                "NO" => sch.exclude.push(value),
                "EX" => sch.extensions.push(value),
                "RX" => sch.excluded_extensions.push(value),
                "LE" => sch.max_size = Some(number(n, "LE", value, SIZE)?),
                "GE" => sch.min_size = Some(number(n, "GE", value, SIZE)?),
                "EQ" => sch.exact_size = Some(number(n, "EQ", value, SIZE)?),
                "TO" => sch.token = Some(value),
                "TY" => {
                    sch.file_type = Some(match value {
                        "1" => FileType::File,
                        "2" => FileType::Directory,
                        _ => return Err(bad(n, "TY", value, "1 (file) or 2 (directory)")),
                    });
                }
                "TR" => {
                    sch.tth =
                        Some(value.parse().map_err(|_| bad(n, "TR", value, "a 39-character TTH"))?);
                }
                "TD" => sch.tree_depth = Some(number(n, "TD", value, "a tree depth")?),
                "GR" => sch.groups = Some(number(n, "GR", value, "a sum of group flags")?),
                _ => {}
            }
        }
        Ok(sch)
    }

    /// Fields go out as `TO` first (as DC++ and eiskaltdcpp do), then the
    /// terms and limits.
    fn to_message(&self, header: Header) -> Message {
        let mut m = Message::new(header, Self::NAME);
        let b = &mut String::new();
        put(&mut m, b, "TO", &self.token);
        for t in &self.include {
            m.push_named("AN", t);
        }
        for t in &self.exclude {
            m.push_named("NO", t);
        }
        for t in &self.extensions {
            m.push_named("EX", t);
        }
        put(&mut m, b, "GE", &self.min_size);
        put(&mut m, b, "LE", &self.max_size);
        put(&mut m, b, "EQ", &self.exact_size);
        put(&mut m, b, "TY", &self.file_type);
        put(&mut m, b, "TR", &self.tth);
        put(&mut m, b, "TD", &self.tree_depth);
        put(&mut m, b, "GR", &self.groups);
        for t in &self.excluded_extensions {
            m.push_named("RX", t);
        }
        m
    }
}
inherent_view!(Sch<'a>);

// ---------------------------------------------------------------------------
// RES

/// `RES`: a search result (`URES` by UDP, `DRES` through the hub, `CRES` in
/// answer to `CGFI`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Res<'a> {
    /// `FN`: full path in the share, `/`-separated; directories end in `/`.
    pub path: &'a str,
    /// `SI`: size in bytes (of all files below, for a directory).
    pub size: Option<u64>,
    /// `SL`: free slots of the responder.
    pub slots: Option<u64>,
    /// `TR`: TTH root (eiskaltdcpp sends all `A`s for directories).
    pub tth: Option<Tth>,
    /// `TO`: the search's token.
    pub token: Option<&'a str>,
    /// `TD`: tree depth.
    pub tree_depth: Option<u32>,
}

impl Res<'_> {
    /// Whether the result is a directory (its path ends in `/`).
    pub fn is_directory(&self) -> bool {
        self.path.ends_with('/')
    }
}

impl<'a> CommandView<'a> for Res<'a> {
    const NAME: CommandName = CommandName::RES;

    fn from_message(msg: &'a Message) -> Result<Res<'a>, ViewError> {
        check_command(msg, Self::NAME)?;
        let n = Self::NAME;
        Ok(Res {
            path: msg.get("FN").ok_or_else(|| missing(n, "FN"))?,
            size: opt_number(msg, n, "SI", "a size in bytes")?,
            slots: opt_number(msg, n, "SL", "a slot count")?,
            tth: opt_tth(msg, n, "TR")?,
            token: msg.get("TO"),
            tree_depth: opt_number(msg, n, "TD", "a tree depth")?,
        })
    }

    /// Fields go out in eiskaltdcpp's order: SI SL FN TR TO (then TD).
    fn to_message(&self, header: Header) -> Message {
        let mut m = Message::new(header, Self::NAME);
        let b = &mut String::new();
        put(&mut m, b, "SI", &self.size);
        put(&mut m, b, "SL", &self.slots);
        m.push_named("FN", self.path);
        put(&mut m, b, "TR", &self.tth);
        put(&mut m, b, "TO", &self.token);
        put(&mut m, b, "TD", &self.tree_depth);
        m
    }
}
inherent_view!(Res<'a>);

// ---------------------------------------------------------------------------
// CTM / RCM

/// `CTM protocol port token`: "connect to me" (the sender listens on `port`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ctm<'a> {
    /// [`PROTOCOL_ADC`] or [`PROTOCOL_ADCS`] (anything else gets a STA 141).
    pub protocol: &'a str,
    /// The TCP port to connect to.
    pub port: u16,
    /// The token the connecting side must put in its `CINF TO`.
    pub token: &'a str,
}

impl<'a> CommandView<'a> for Ctm<'a> {
    const NAME: CommandName = CommandName::CTM;

    fn from_message(msg: &'a Message) -> Result<Ctm<'a>, ViewError> {
        check_command(msg, Self::NAME)?;
        let n = Self::NAME;
        let port = positional(msg, n, 1, "port")?;
        Ok(Ctm {
            protocol: positional(msg, n, 0, "protocol")?,
            port: number(n, "port", port, "a TCP port")?,
            token: positional(msg, n, 2, "token")?,
        })
    }

    fn to_message(&self, header: Header) -> Message {
        Message::new(header, Self::NAME)
            .with(self.protocol)
            .with(&self.port.to_string())
            .with(self.token)
    }
}
inherent_view!(Ctm<'a>);

/// `RCM protocol token`: "reverse connect to me" from a passive client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rcm<'a> {
    /// [`PROTOCOL_ADC`] or [`PROTOCOL_ADCS`].
    pub protocol: &'a str,
    /// The token to copy into the answering CTM.
    pub token: &'a str,
}

impl<'a> CommandView<'a> for Rcm<'a> {
    const NAME: CommandName = CommandName::RCM;

    fn from_message(msg: &'a Message) -> Result<Rcm<'a>, ViewError> {
        check_command(msg, Self::NAME)?;
        Ok(Rcm {
            protocol: positional(msg, Self::NAME, 0, "protocol")?,
            token: positional(msg, Self::NAME, 1, "token")?,
        })
    }

    fn to_message(&self, header: Header) -> Message {
        Message::new(header, Self::NAME).with(self.protocol).with(self.token)
    }
}
inherent_view!(Rcm<'a>);

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
    /// [`password_response`](super::password::password_response)).
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
    /// Last two digits of the code (see [`status::code`](super::status::code)).
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

// ---------------------------------------------------------------------------
// GET / GFI / SND

/// The namespaces of GET/GFI/SND that BASE and TIGR define.
pub mod transfer_type {
    /// File data; identifier `TTH/<root>` or a rootless name (`files.xml.bz2`).
    pub const FILE: &str = "file";
    /// A partial file list; identifier a directory such as `/` or `/share/`.
    pub const LIST: &str = "list";
    /// The Tiger tree leaves of a file; identifier `TTH/<root>`.
    pub const TTHL: &str = "tthl";
    /// The full file list, bzip2-compressed (BZIP).
    pub const FILE_LIST_BZ2: &str = "files.xml.bz2";
}

/// The TTH of a `TTH/<root>` identifier.
fn identifier_tth(identifier: &str) -> Option<Tth> {
    identifier.strip_prefix("TTH/")?.parse().ok()
}

/// Reads `type identifier start bytes` of GET/SND; `bytes` may be -1.
fn transfer_fields(
    msg: &Message,
    n: CommandName,
) -> Result<(&str, &str, u64, Option<u64>), ViewError> {
    let kind = positional(msg, n, 0, "type")?;
    let identifier = positional(msg, n, 1, "identifier")?;
    let start = positional(msg, n, 2, "start")?;
    let start = number(n, "start", start, "a byte offset")?;
    let bytes = positional(msg, n, 3, "bytes")?;
    let length =
        if bytes == "-1" { None } else { Some(number(n, "bytes", bytes, "a byte count or -1")?) };
    Ok((kind, identifier, start, length))
}

fn length_text(length: Option<u64>) -> String {
    length.map_or_else(|| "-1".to_owned(), |n| n.to_string())
}

/// `CGET type identifier start bytes`: request data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Get<'a> {
    /// `file`, `list`, `tthl` (see [`transfer_type`]).
    pub kind: &'a str,
    /// `TTH/<root>`, `files.xml.bz2`, a directory for `list`...
    pub identifier: &'a str,
    /// First byte wanted.
    pub start: u64,
    /// Bytes wanted; `None` (`-1` on the wire) means up to the end.
    pub length: Option<u64>,
    /// `ZL1`: compress the data with zlib (ZLIG).
    pub compressed: bool,
    /// `RE1`: a recursive partial list.
    pub recursive: bool,
    /// `DB`: bytes of the file the requester already has (ADC-EXT).
    pub downloaded: Option<u64>,
}

impl Get<'_> {
    /// The TTH of a `TTH/<root>` identifier.
    pub fn tth(&self) -> Option<Tth> {
        identifier_tth(self.identifier)
    }
}

impl<'a> CommandView<'a> for Get<'a> {
    const NAME: CommandName = CommandName::GET;

    fn from_message(msg: &'a Message) -> Result<Get<'a>, ViewError> {
        check_command(msg, Self::NAME)?;
        let (kind, identifier, start, length) = transfer_fields(msg, Self::NAME)?;
        Ok(Get {
            kind,
            identifier,
            start,
            length,
            compressed: msg.flag("ZL"),
            recursive: msg.flag("RE"),
            downloaded: opt_number(msg, Self::NAME, "DB", "a byte count")?,
        })
    }

    fn to_message(&self, header: Header) -> Message {
        let mut m = Message::new(header, Self::NAME)
            .with(self.kind)
            .with(self.identifier)
            .with(&self.start.to_string())
            .with(&length_text(self.length));
        put_flag(&mut m, "ZL", self.compressed);
        put_flag(&mut m, "RE", self.recursive);
        put(&mut m, &mut String::new(), "DB", &self.downloaded);
        m
    }
}
inherent_view!(Get<'a>);

/// `CSND type identifier start bytes`: `bytes` of binary data follow the line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Snd<'a> {
    /// As in the GET.
    pub kind: &'a str,
    /// As in the GET.
    pub identifier: &'a str,
    /// First byte sent.
    pub start: u64,
    /// Exactly how many bytes follow (uncompressed, with `ZL1`).
    pub length: u64,
    /// `ZL1`: the data is zlib-compressed.
    pub compressed: bool,
}

impl Snd<'_> {
    /// The TTH of a `TTH/<root>` identifier.
    pub fn tth(&self) -> Option<Tth> {
        identifier_tth(self.identifier)
    }
}

impl<'a> CommandView<'a> for Snd<'a> {
    const NAME: CommandName = CommandName::SND;

    fn from_message(msg: &'a Message) -> Result<Snd<'a>, ViewError> {
        check_command(msg, Self::NAME)?;
        let (kind, identifier, start, length) = transfer_fields(msg, Self::NAME)?;
        let length =
            length.ok_or_else(|| bad(Self::NAME, "bytes", "-1", "the byte count being sent"))?;
        Ok(Snd { kind, identifier, start, length, compressed: msg.flag("ZL") })
    }

    fn to_message(&self, header: Header) -> Message {
        let mut m = Message::new(header, Self::NAME)
            .with(self.kind)
            .with(self.identifier)
            .with(&self.start.to_string())
            .with(&self.length.to_string());
        put_flag(&mut m, "ZL", self.compressed);
        m
    }
}
inherent_view!(Snd<'a>);

/// `CGFI type identifier`: ask for a RES about one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Gfi<'a> {
    /// As in GET (`file`).
    pub kind: &'a str,
    /// Any namespace: `TTH/<root>` or a path.
    pub identifier: &'a str,
}

impl<'a> CommandView<'a> for Gfi<'a> {
    const NAME: CommandName = CommandName::GFI;

    fn from_message(msg: &'a Message) -> Result<Gfi<'a>, ViewError> {
        check_command(msg, Self::NAME)?;
        Ok(Gfi {
            kind: positional(msg, Self::NAME, 0, "type")?,
            identifier: positional(msg, Self::NAME, 1, "identifier")?,
        })
    }

    fn to_message(&self, header: Header) -> Message {
        Message::new(header, Self::NAME).with(self.kind).with(self.identifier)
    }
}
inherent_view!(Gfi<'a>);

// ---------------------------------------------------------------------------
// Any command

/// Any message, as the typed view of its command, or `Raw` for commands
/// without one (UCMD's `CMD`, `ZON`, extensions...).
// `Inf` makes this enum about 520 bytes. Values are short-lived (read,
// matched, dropped) and boxing the INF would cost an allocation per user on
// the INF-flood hot path, so the size is accepted.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command<'a> {
    /// `SUP`.
    Sup(Sup),
    /// `SID`.
    Sid(SidCmd),
    /// `INF`.
    Inf(Inf<'a>),
    /// `MSG`.
    Msg(Msg<'a>),
    /// `SCH`.
    Sch(Sch<'a>),
    /// `RES`.
    Res(Res<'a>),
    /// `CTM`.
    Ctm(Ctm<'a>),
    /// `RCM`.
    Rcm(Rcm<'a>),
    /// `GPA`.
    Gpa(Gpa<'a>),
    /// `PAS`.
    Pas(Pas<'a>),
    /// `QUI`.
    Qui(Qui<'a>),
    /// `STA`.
    Sta(Sta<'a>),
    /// `GET`.
    Get(Get<'a>),
    /// `GFI`.
    Gfi(Gfi<'a>),
    /// `SND`.
    Snd(Snd<'a>),
    /// A command without a typed view: the message itself.
    Raw(&'a Message),
}

impl<'a> Command<'a> {
    /// Reads the view that matches the message's command; unknown commands
    /// give `Raw`, known ones with bad fields an error.
    pub fn from_message(msg: &'a Message) -> Result<Command<'a>, ViewError> {
        Ok(match msg.command().as_bytes() {
            b"SUP" => Command::Sup(Sup::from_message(msg)?),
            b"SID" => Command::Sid(SidCmd::from_message(msg)?),
            b"INF" => Command::Inf(Inf::from_message(msg)?),
            b"MSG" => Command::Msg(Msg::from_message(msg)?),
            b"SCH" => Command::Sch(Sch::from_message(msg)?),
            b"RES" => Command::Res(Res::from_message(msg)?),
            b"CTM" => Command::Ctm(Ctm::from_message(msg)?),
            b"RCM" => Command::Rcm(Rcm::from_message(msg)?),
            b"GPA" => Command::Gpa(Gpa::from_message(msg)?),
            b"PAS" => Command::Pas(Pas::from_message(msg)?),
            b"QUI" => Command::Qui(Qui::from_message(msg)?),
            b"STA" => Command::Sta(Sta::from_message(msg)?),
            b"GET" => Command::Get(Get::from_message(msg)?),
            b"GFI" => Command::Gfi(Gfi::from_message(msg)?),
            b"SND" => Command::Snd(Snd::from_message(msg)?),
            _ => Command::Raw(msg),
        })
    }

    /// Builds the message, routed by `header` (a `Raw` one is copied with
    /// its header replaced).
    pub fn to_message(&self, header: Header) -> Message {
        match self {
            Command::Sup(v) => v.to_message(header),
            Command::Sid(v) => v.to_message(header),
            Command::Inf(v) => v.to_message(header),
            Command::Msg(v) => v.to_message(header),
            Command::Sch(v) => v.to_message(header),
            Command::Res(v) => v.to_message(header),
            Command::Ctm(v) => v.to_message(header),
            Command::Rcm(v) => v.to_message(header),
            Command::Gpa(v) => v.to_message(header),
            Command::Pas(v) => v.to_message(header),
            Command::Qui(v) => v.to_message(header),
            Command::Sta(v) => v.to_message(header),
            Command::Get(v) => v.to_message(header),
            Command::Gfi(v) => v.to_message(header),
            Command::Snd(v) => v.to_message(header),
            Command::Raw(msg) => {
                let mut copy = (*msg).clone();
                copy.set_header(header);
                copy
            }
        }
    }
}
