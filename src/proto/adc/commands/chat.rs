//! The chat command: `MSG` (main chat, private messages, `/me`).

use crate::proto::adc::header::{CommandName, Header};
use crate::proto::adc::ident::Sid;
use crate::proto::adc::message::Message;

use super::view::{
    check_command, inherent_view, opt_number, opt_sid, positional, put, put_flag, CommandView,
    ViewError,
};

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
