//! The head of an ADC message: the message type letter (routing), the
//! three-letter command name, and the SIDs, CID or feature filter that the
//! type carries.
//!
//! Pure: no I/O. Parsing of whole lines lives in `message.rs`; this module
//! only defines the values and their wire spelling.

use std::fmt;

use super::features::FeatureFilter;
use super::ident::{AnyCid, Sid};

/// How a message is routed: the first letter of the FOURCC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// `B`: the hub sends it to every client, the sender included.
    Broadcast,
    /// `C`: between two clients over TCP (no hub involved).
    Client,
    /// `D`: the hub sends it to the target SID only.
    Direct,
    /// `E`: the hub sends it to the target and echoes it to the sender.
    Echo,
    /// `F`: the hub sends it to clients that match a feature filter.
    Feature,
    /// `H`: from a client to the hub itself.
    Hub,
    /// `I`: from the hub itself to a client.
    Info,
    /// `U`: between clients over UDP; carries the sender's CID.
    Udp,
}

impl MessageType {
    /// The type for its letter, if it is one of `B C D E F H I U`.
    pub const fn from_letter(letter: u8) -> Option<MessageType> {
        Some(match letter {
            b'B' => MessageType::Broadcast,
            b'C' => MessageType::Client,
            b'D' => MessageType::Direct,
            b'E' => MessageType::Echo,
            b'F' => MessageType::Feature,
            b'H' => MessageType::Hub,
            b'I' => MessageType::Info,
            b'U' => MessageType::Udp,
            _ => return None,
        })
    }

    /// The wire letter.
    pub const fn letter(self) -> u8 {
        match self {
            MessageType::Broadcast => b'B',
            MessageType::Client => b'C',
            MessageType::Direct => b'D',
            MessageType::Echo => b'E',
            MessageType::Feature => b'F',
            MessageType::Hub => b'H',
            MessageType::Info => b'I',
            MessageType::Udp => b'U',
        }
    }
}

/// The three letters after the type letter: `INF`, `MSG`, `SCH`, ...
///
/// ADC requires an upper-case letter followed by two upper-case letters or
/// digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CommandName([u8; 3]);

impl CommandName {
    /// Status / error (`STA code text`).
    pub const STA: CommandName = CommandName(*b"STA");
    /// Feature negotiation (`SUP ADxxxx RMxxxx`).
    pub const SUP: CommandName = CommandName(*b"SUP");
    /// SID assignment by the hub (`ISID sid`).
    pub const SID: CommandName = CommandName(*b"SID");
    /// User / hub / peer information (`INF`).
    pub const INF: CommandName = CommandName(*b"INF");
    /// Chat message (`MSG text`).
    pub const MSG: CommandName = CommandName(*b"MSG");
    /// Search (`SCH`).
    pub const SCH: CommandName = CommandName(*b"SCH");
    /// Search result (`RES`).
    pub const RES: CommandName = CommandName(*b"RES");
    /// Connect to me (`CTM protocol port token`).
    pub const CTM: CommandName = CommandName(*b"CTM");
    /// Reverse connect to me (`RCM protocol token`).
    pub const RCM: CommandName = CommandName(*b"RCM");
    /// Password request (`IGPA salt`).
    pub const GPA: CommandName = CommandName(*b"GPA");
    /// Password answer (`HPAS response`).
    pub const PAS: CommandName = CommandName(*b"PAS");
    /// A user left / we are being disconnected (`IQUI sid`).
    pub const QUI: CommandName = CommandName(*b"QUI");
    /// Request file data (`CGET type id start bytes`).
    pub const GET: CommandName = CommandName(*b"GET");
    /// Request file information (`CGFI type id`).
    pub const GFI: CommandName = CommandName(*b"GFI");
    /// File data follows (`CSND type id start bytes`).
    pub const SND: CommandName = CommandName(*b"SND");
    /// User command (UCMD extension, `ICMD name ...`).
    pub const CMD: CommandName = CommandName(*b"CMD");
    /// NAT traversal connect (NATT extension).
    pub const NAT: CommandName = CommandName(*b"NAT");
    /// NAT traversal reverse connect (NATT extension).
    pub const RNT: CommandName = CommandName(*b"RNT");
    /// Zlib stream on (ZLIF extension).
    pub const ZON: CommandName = CommandName(*b"ZON");
    /// Zlib stream off (ZLIF extension).
    pub const ZOF: CommandName = CommandName(*b"ZOF");

    /// A command name from its three bytes; `None` unless it is `[A-Z][A-Z0-9]{2}`.
    pub const fn from_bytes(bytes: [u8; 3]) -> Option<CommandName> {
        const fn alnum(b: u8) -> bool {
            b.is_ascii_uppercase() || b.is_ascii_digit()
        }
        if bytes[0].is_ascii_uppercase() && alnum(bytes[1]) && alnum(bytes[2]) {
            Some(CommandName(bytes))
        } else {
            None
        }
    }

    /// A command name from its text; `None` unless it is `[A-Z][A-Z0-9]{2}`.
    pub fn parse(text: &str) -> Option<CommandName> {
        CommandName::from_bytes(text.as_bytes().try_into().ok()?)
    }

    /// The three bytes.
    pub const fn as_bytes(&self) -> &[u8; 3] {
        &self.0
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("???")
    }

    /// How many leading parameters of this command are positional (the rest
    /// are named, two-letter-prefixed). Unknown commands have none: every
    /// parameter is treated as possibly named, and [`Message::params`] still
    /// gives them all in order.
    ///
    /// [`Message::params`]: super::message::Message::params
    pub const fn positional_count(&self) -> usize {
        match &self.0 {
            b"STA" => 2,
            b"SID" | b"MSG" | b"GPA" | b"PAS" | b"QUI" | b"CMD" => 1,
            // ADC-EXT TYPE, ONID and FEED.
            b"TPN" | b"OID" | b"OIR" | b"RSS" => 1,
            b"RCM" | b"GFI" => 2,
            b"CTM" | b"NAT" | b"RNT" => 3,
            b"GET" | b"SND" => 4,
            _ => 0,
        }
    }
}

impl fmt::Display for CommandName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for CommandName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CommandName({self})")
    }
}

/// The routing part of a message: its type and the fields that type carries.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Header {
    /// `B<cmd> <from>`: to everyone.
    Broadcast {
        /// The sender.
        from: Sid,
    },
    /// `C<cmd>`: client to client over TCP.
    Client,
    /// `D<cmd> <from> <to>`: to one user.
    Direct {
        /// The sender.
        from: Sid,
        /// The recipient.
        to: Sid,
    },
    /// `E<cmd> <from> <to>`: to one user, echoed back to the sender.
    Echo {
        /// The sender.
        from: Sid,
        /// The recipient.
        to: Sid,
    },
    /// `F<cmd> <from> <+FEAT-FEAT>`: to users matching the filter.
    Feature {
        /// The sender.
        from: Sid,
        /// Which users receive it.
        filter: FeatureFilter,
    },
    /// `H<cmd>`: client to hub.
    Hub,
    /// `I<cmd>`: hub to client.
    Info,
    /// `U<cmd> <cid>`: client to client over UDP.
    Udp {
        /// The sender's CID (any length is accepted on input).
        cid: AnyCid,
    },
}

impl Header {
    /// The message type (the FOURCC's first letter).
    pub fn message_type(&self) -> MessageType {
        match self {
            Header::Broadcast { .. } => MessageType::Broadcast,
            Header::Client => MessageType::Client,
            Header::Direct { .. } => MessageType::Direct,
            Header::Echo { .. } => MessageType::Echo,
            Header::Feature { .. } => MessageType::Feature,
            Header::Hub => MessageType::Hub,
            Header::Info => MessageType::Info,
            Header::Udp { .. } => MessageType::Udp,
        }
    }

    /// The sender's SID, for the types that carry one (B, D, E, F).
    pub fn from_sid(&self) -> Option<Sid> {
        match *self {
            Header::Broadcast { from }
            | Header::Direct { from, .. }
            | Header::Echo { from, .. }
            | Header::Feature { from, .. } => Some(from),
            _ => None,
        }
    }

    /// The recipient's SID, for the types that carry one (D, E).
    pub fn to_sid(&self) -> Option<Sid> {
        match *self {
            Header::Direct { to, .. } | Header::Echo { to, .. } => Some(to),
            _ => None,
        }
    }

    /// Appends the type letter, `command` and this header's fields.
    pub(crate) fn encode_into(&self, command: CommandName, out: &mut Vec<u8>) {
        out.push(self.message_type().letter());
        out.extend_from_slice(command.as_bytes());
        match self {
            Header::Client | Header::Hub | Header::Info => {}
            Header::Broadcast { from } => {
                out.push(b' ');
                out.extend_from_slice(&from.to_bytes());
            }
            Header::Direct { from, to } | Header::Echo { from, to } => {
                out.push(b' ');
                out.extend_from_slice(&from.to_bytes());
                out.push(b' ');
                out.extend_from_slice(&to.to_bytes());
            }
            Header::Feature { from, filter } => {
                out.push(b' ');
                out.extend_from_slice(&from.to_bytes());
                out.push(b' ');
                filter.encode_into(out);
            }
            Header::Udp { cid } => {
                out.push(b' ');
                match cid {
                    AnyCid::Tiger(cid) => out.extend_from_slice(cid.to_base32().as_bytes()),
                    AnyCid::Other(text) => out.extend_from_slice(text.as_bytes()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_letters_round_trip() {
        for &letter in b"BCDEFHIU" {
            let t = MessageType::from_letter(letter).unwrap();
            assert_eq!(t.letter(), letter);
        }
        for &letter in b"AGJKXZbc0 " {
            assert_eq!(MessageType::from_letter(letter), None);
        }
    }

    #[test]
    fn command_names() {
        assert_eq!(CommandName::parse("INF"), Some(CommandName::INF));
        assert_eq!(CommandName::parse("ZL1"), CommandName::from_bytes(*b"ZL1"));
        for bad in ["", "IN", "INFO", "inf", "1NF", "IN-"] {
            assert_eq!(CommandName::parse(bad), None, "{bad:?}");
        }
        assert_eq!(CommandName::GET.positional_count(), 4);
        assert_eq!(CommandName::INF.positional_count(), 0);
        assert_eq!(CommandName::parse("XYZ").unwrap().positional_count(), 0);
    }
}
