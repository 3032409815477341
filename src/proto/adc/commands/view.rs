//! What every typed view shares: the [`CommandView`] contract, its
//! [`ViewError`], the [`Update`] of an INF field, and the helpers that read
//! fields out of a message and write them back.
//!
//! A leaf of `commands`: the command families build on it.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use crate::proto::adc::features::{join_features, Feature};
use crate::proto::adc::header::{CommandName, Header};
use crate::proto::adc::ident::{excerpt, AnyCid, Pid, Sid};
use crate::proto::adc::message::Message;
use crate::proto::tth::Tth;

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

pub(super) fn bad(
    command: CommandName,
    field: &'static str,
    value: &str,
    expected: &'static str,
) -> ViewError {
    ViewError { command, kind: ViewErrorKind::BadValue { field, value: excerpt(value), expected } }
}

pub(super) fn missing(command: CommandName, field: &'static str) -> ViewError {
    ViewError { command, kind: ViewErrorKind::Missing { field } }
}

pub(super) fn check_command(msg: &Message, want: CommandName) -> Result<(), ViewError> {
    if msg.command() == want {
        Ok(())
    } else {
        Err(ViewError { command: want, kind: ViewErrorKind::WrongCommand { found: msg.command() } })
    }
}

pub(super) fn positional<'a>(
    msg: &'a Message,
    command: CommandName,
    index: usize,
    field: &'static str,
) -> Result<&'a str, ViewError> {
    msg.positional(index).ok_or_else(|| missing(command, field))
}

pub(super) fn number<T: FromStr>(
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

pub(super) fn opt_number<T: FromStr>(
    msg: &Message,
    command: CommandName,
    field: &'static str,
    expected: &'static str,
) -> Result<Option<T>, ViewError> {
    msg.get(field).map(|v| number(command, field, v, expected)).transpose()
}

pub(super) fn opt_sid(
    msg: &Message,
    command: CommandName,
    field: &'static str,
) -> Result<Option<Sid>, ViewError> {
    msg.get(field)
        .map(|v| Sid::from_bytes(v.as_bytes()).map_err(|_| bad(command, field, v, "a SID")))
        .transpose()
}

pub(super) fn opt_tth(
    msg: &Message,
    command: CommandName,
    field: &'static str,
) -> Result<Option<Tth>, ViewError> {
    msg.get(field)
        .map(|v| v.parse::<Tth>().map_err(|_| bad(command, field, v, "a 39-character TTH")))
        .transpose()
}

pub(super) fn opt_ip4(msg: &Message, command: CommandName) -> Result<Option<Ipv4Addr>, ViewError> {
    msg.get("I4").map(|v| number(command, "I4", v, "an IPv4 address")).transpose()
}

pub(super) fn opt_ip6(msg: &Message, command: CommandName) -> Result<Option<Ipv6Addr>, ViewError> {
    msg.get("I6").map(|v| number(command, "I6", v, "an IPv6 address")).transpose()
}

/// A value that can be written as a named parameter.
pub(super) trait WireValue {
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

/// Appends `name` + value if present.
pub(super) fn put<T: WireValue>(
    msg: &mut Message,
    buf: &mut String,
    name: &str,
    value: &Option<T>,
) {
    if let Some(v) = value {
        buf.clear();
        v.write_to(buf);
        msg.push_named(name, buf);
    }
}

/// Appends `name` + value for a set INF field, `name` alone for a cleared one.
pub(super) fn put_update<T: WireValue>(
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
pub(super) fn put_flag(msg: &mut Message, name: &str, flag: bool) {
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
pub(super) use inherent_view;
