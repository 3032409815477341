//! Hub-side menus: `$UserCommand <type> <context> <title>$<command>`.
//!
//! (The one-field hub commands — `$HubName`, `$HubTopic`, `$ForceMove`,
//! `$Hello`, `$GetPass`, ... — are parsed directly in `mod.rs`.) Pure: no I/O.

use encoding_rs::Encoding;

use super::text::{
    decode_unescaped, find_byte, parse_u32, push_escaped, push_u64, split_byte_or_all,
};

/// `$UserCommand` types.
pub mod command_type {
    /// A menu separator.
    pub const SEPARATOR: u8 = 0;
    /// A raw command: send `command` (after substitutions) to the hub.
    pub const RAW: u8 = 1;
    /// Like [`RAW`], but sent once per `%[nick]` when several users are selected.
    pub const RAW_NICK_LIMITED: u8 = 2;
    /// Erase the previously sent commands of these contexts.
    pub const ERASE: u8 = 255;
}

/// `$UserCommand` context bits.
pub mod context {
    /// The hub menu.
    pub const HUB: u32 = 1;
    /// A user's menu.
    pub const USER: u32 = 2;
    /// A search result's menu.
    pub const SEARCH: u32 = 4;
    /// A file list's menu.
    pub const FILE_LIST: u32 = 8;
}

/// A hub menu entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserCommand {
    /// The type (see [`command_type`]).
    pub kind: u8,
    /// Where it appears (bits of [`context`]).
    pub context: u32,
    /// The menu title (`\` separates submenus), unescaped. For separators and
    /// erase commands, any text the hub put after the context.
    pub title: String,
    /// The raw protocol text to send, unescaped, with `%[nick]`, `%[mynick]`,
    /// `%[line:...]` placeholders; it normally ends with `|`. Empty for
    /// separators and erase commands.
    pub command: String,
}

impl UserCommand {
    pub(crate) fn parse(args: &[u8], cs: &'static Encoding) -> Result<UserCommand, &'static str> {
        let (kind, rest) = split_byte_or_all(args, b' ');
        let (context, details) = split_byte_or_all(rest, b' ');
        let kind = parse_u32(kind)
            .and_then(|k| u8::try_from(k).ok())
            .ok_or("type is not a number from 0 to 255")?;
        let context = parse_u32(context).ok_or("context is not a number")?;
        let (title, command) = match kind {
            command_type::RAW | command_type::RAW_NICK_LIMITED => match find_byte(details, b'$') {
                Some(i) => (&details[..i], &details[i + 1..]),
                None => (details, &[][..]),
            },
            _ => (details, &[][..]),
        };
        Ok(UserCommand {
            kind,
            context,
            title: decode_unescaped(title, cs),
            command: decode_unescaped(command, cs),
        })
    }

    pub(crate) fn write(&self, out: &mut Vec<u8>, cs: &'static Encoding) {
        out.extend_from_slice(b"$UserCommand ");
        push_u64(out, u64::from(self.kind));
        out.push(b' ');
        push_u64(out, u64::from(self.context));
        match self.kind {
            command_type::RAW | command_type::RAW_NICK_LIMITED => {
                out.push(b' ');
                push_escaped(out, &self.title, cs);
                out.push(b'$');
                push_escaped(out, &self.command, cs);
            }
            _ if !self.title.is_empty() => {
                out.push(b' ');
                push_escaped(out, &self.title, cs);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_example() {
        let cs = encoding_rs::WINDOWS_1252;
        let wire = b"2 6 Kick$&#36;To: %[nick] From: %[mynick] &#36;<%[mynick]> You are being kicked====|&#36;Kick %[nick]&#124;";
        let uc = UserCommand::parse(wire, cs).unwrap();
        assert_eq!(uc.kind, command_type::RAW_NICK_LIMITED);
        assert_eq!(uc.context, context::USER | context::SEARCH);
        assert_eq!(uc.title, "Kick");
        // The spec example has a raw `|` after "====" (on the wire it would end
        // the frame); the parser keeps it like any other byte.
        assert!(uc.command.starts_with("$To: %[nick] From: %[mynick] $<%[mynick]>"));
        assert!(uc.command.ends_with("$Kick %[nick]|"));
    }
}
