//! [`Command`]: any message as the typed view of its command, or `Raw`.

use crate::proto::adc::header::Header;
use crate::proto::adc::message::Message;

use super::chat::Msg;
use super::connection::{Ctm, Rcm};
use super::search::{Res, Sch};
use super::session::{Gpa, Inf, Pas, Qui, SidCmd, Sta, Sup};
use super::transfer::{Get, Gfi, Snd};
use super::view::ViewError;

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
