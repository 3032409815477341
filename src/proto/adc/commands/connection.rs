//! The connection requests: `CTM` and `RCM`, with the protocol strings
//! they carry.

use crate::proto::adc::header::{CommandName, Header};
use crate::proto::adc::message::Message;

use super::view::{check_command, inherent_view, number, positional, CommandView, ViewError};

/// The protocol string of a plain ADC client-client connection in CTM/RCM.
pub const PROTOCOL_ADC: &str = "ADC/1.0";
/// The protocol string of a TLS client-client connection in CTM/RCM, as DC++
/// and its descendants send it (protocols.md §4, pitfall 1).
pub const PROTOCOL_ADCS: &str = "ADCS/0.10";

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
