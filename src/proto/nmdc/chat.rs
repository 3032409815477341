//! Main chat (`<nick> text`) and private messages
//! (`$To: <to> From: <from> $<nick> text`).
//!
//! Chat text is HTML-escaped on the wire (`escape.rs`); nicks are not. Pure:
//! no I/O.

use encoding_rs::Encoding;

use super::text::{decode, decode_unescaped, find, push_escaped, push_text};

/// A main-chat line.
///
/// `nick` is `None` for a line that does not start with `<` (hub status
/// text) and `Some("")` for `<> text`; both are messages from the hub rather
/// than from a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chat {
    /// The nick between `<` and `>`, if the line has one.
    pub nick: Option<String>,
    /// The message text, unescaped.
    pub text: String,
}

impl Chat {
    /// Parses a chat frame (anything that does not start with `$`).
    pub(crate) fn parse(frame: &[u8], cs: &'static Encoding) -> Chat {
        let (nick, text) = split_chat(frame);
        Chat { nick: nick.map(|n| decode(n, cs)), text: decode_unescaped(text, cs) }
    }

    /// Writes `<nick> text` (or just the text when there is no nick).
    pub(crate) fn write(&self, out: &mut Vec<u8>, cs: &'static Encoding) {
        write_chat(out, self.nick.as_deref(), &self.text, cs);
    }
}

fn write_chat(out: &mut Vec<u8>, nick: Option<&str>, text: &str, cs: &'static Encoding) {
    if let Some(nick) = nick {
        out.push(b'<');
        push_text(out, nick, cs);
        out.extend_from_slice(b"> ");
    }
    push_escaped(out, text, cs);
}

/// Splits a chat line into its nick and its text (`nmdc.md`, chat "Parsing
/// considerations"): the line must start with `<`; the nick ends at the first
/// `>` followed by a space, newline, tab or the end of the line, and that one
/// whitespace character is skipped. Without such a `>`, the last `>` ends the
/// nick (`<nick>text`). A line without `<` or without any `>` has no nick.
fn split_chat(frame: &[u8]) -> (Option<&[u8]>, &[u8]) {
    if frame.first() != Some(&b'<') {
        return (None, frame);
    }
    let mut last = None;
    for (i, &b) in frame.iter().enumerate().skip(1) {
        if b != b'>' {
            continue;
        }
        match frame.get(i + 1) {
            None => return (Some(&frame[1..i]), &[]),
            Some(b' ' | b'\n' | b'\t') => return (Some(&frame[1..i]), &frame[i + 2..]),
            Some(_) => last = Some(i),
        }
    }
    match last {
        Some(i) => (Some(&frame[1..i]), &frame[i + 1..]),
        None => (None, frame),
    }
}

/// A private message: `$To: <to> From: <from> $<<nick>> <text>`.
///
/// `nick` is the nick shown in the inner chat part; it is normally `from`, but
/// hubs and bots relaying messages may put another one there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrivateMessage {
    /// The recipient's nick.
    pub to: String,
    /// The sender's nick.
    pub from: String,
    /// The nick inside `<...>`, `None` when the text part has none.
    pub nick: Option<String>,
    /// The message text, unescaped.
    pub text: String,
}

impl PrivateMessage {
    /// A PM from `from` to `to` with the usual `<from>` inner nick.
    pub fn new(from: &str, to: &str, text: &str) -> PrivateMessage {
        PrivateMessage {
            to: to.to_owned(),
            from: from.to_owned(),
            nick: Some(from.to_owned()),
            text: text.to_owned(),
        }
    }

    /// Parses the arguments of `$To:` (the frame after `"$To: "`).
    pub(crate) fn parse(
        args: &[u8],
        cs: &'static Encoding,
    ) -> Result<PrivateMessage, &'static str> {
        let i = find(args, b" From: ").ok_or("missing \" From: \"")?;
        let to = &args[..i];
        let rest = &args[i + 7..];
        let j = find(rest, b" $").ok_or("missing \" $\" before the message")?;
        let from = &rest[..j];
        let chat = Chat::parse(&rest[j + 2..], cs);
        Ok(PrivateMessage {
            to: decode(to, cs),
            from: decode(from, cs),
            nick: chat.nick,
            text: chat.text,
        })
    }

    pub(crate) fn write(&self, out: &mut Vec<u8>, cs: &'static Encoding) {
        out.extend_from_slice(b"$To: ");
        push_text(out, &self.to, cs);
        out.extend_from_slice(b" From: ");
        push_text(out, &self.from, cs);
        out.extend_from_slice(b" $");
        write_chat(out, self.nick.as_deref(), &self.text, cs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_split_table() {
        // (line, nick, text) per nmdc.md "Parsing considerations".
        type Row = (&'static [u8], Option<&'static [u8]>, &'static [u8]);
        let table: [Row; 12] = [
            (b"<john> cats are cute", Some(b"john"), b"cats are cute"),
            (b"hub message or status", None, b"hub message or status"),
            (b"<> message text", Some(b""), b"message text"),
            (b"<nick>", Some(b"nick"), b""),
            (b"<nick> ", Some(b"nick"), b""),
            (b"<nick>\nmessage text\nsecond line", Some(b"nick"), b"message text\nsecond line"),
            (b"<nick>message text", Some(b"nick"), b"message text"),
            (b"<< nick >> message", Some(b"< nick >"), b"message"),
            (b"<a>b>c", Some(b"a>b"), b"c"),
            (b"<frank> <fake> nick in text", Some(b"frank"), b"<fake> nick in text"),
            (b"<no closing bracket", None, b"<no closing bracket"),
            (b"<nick>\tx", Some(b"nick"), b"x"),
        ];
        for (line, nick, text) in table {
            assert_eq!(split_chat(line), (nick, text), "{:?}", String::from_utf8_lossy(line));
        }
    }
}
