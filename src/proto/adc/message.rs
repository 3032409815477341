//! The generic ADC message: header, command name and parameters, with the
//! line parser ([`parse`]) and the canonical encoder ([`Message::encode`]).
//!
//! Pure: no I/O. A *line* is the bytes between two `\n` delimiters; framing,
//! size limits and keep-alive empty lines are the connection's business.
//! Every command, known or not, parses into a [`Message`]; the typed views in
//! `commands.rs` read and build the known ones on top of it.
//!
//! Storage is chosen for INF floods (100k users on login): a message holds
//! its unescaped parameters back to back in one `String` and their end
//! offsets in one `Vec<u32>`, so parsing costs two allocations whatever the
//! number of parameters, and parameters are handed out as `&str` slices.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use super::escape::{escape_into, unescape_into, EscapeError};
use super::features::FeatureFilter;
use super::header::{CommandName, Header, MessageType};
use super::ident::{excerpt, AnyCid, Sid};

/// Why a line is not a valid ADC message. Offsets count bytes from the start
/// of the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Nothing to parse (on the wire an empty line is a keep-alive; the
    /// connection should skip it before calling the parser).
    #[error("empty line")]
    Empty,
    /// ADC text is UTF-8; this line is not.
    #[error("line is not valid UTF-8 (first bad byte at offset {offset})")]
    NotUtf8 {
        /// Offset of the first byte that is not part of valid UTF-8.
        offset: usize,
    },
    /// The line is longer than the 4 GiB the codec can index.
    #[error("line too long ({len} bytes)")]
    TooLong {
        /// Length of the line.
        len: usize,
    },
    /// The first letter is not one of the eight message types.
    #[error("unknown message type {found:?}: expected one of B C D E F H I U")]
    BadType {
        /// The first character of the line.
        found: char,
    },
    /// The FOURCC is not a type letter followed by `[A-Z][A-Z0-9]{2}`.
    #[error("invalid command {found:?}: expected a type letter, an upper-case letter, then two upper-case letters or digits")]
    BadCommand {
        /// The first word of the line (at most 64 characters).
        found: String,
    },
    /// The line ends before a field that its message type requires.
    #[error("missing {what}: a {letter}-type message carries it after the command")]
    MissingField {
        /// Which field: `"source SID"`, `"target SID"`, `"feature filter"`, `"CID"`.
        what: &'static str,
        /// The message type letter.
        letter: char,
    },
    /// A SID field is not 4 base32 characters.
    #[error(
        "invalid {what} {found:?} at offset {offset}: expected 4 base32 characters (A-Z, 2-7)"
    )]
    BadSid {
        /// `"source SID"` or `"target SID"`.
        what: &'static str,
        /// The offending text (at most 64 characters).
        found: String,
        /// Where it starts.
        offset: usize,
    },
    /// The CID of a `U` message is not base32.
    #[error("invalid CID {found:?} at offset {offset}: expected base32 characters (A-Z, 2-7)")]
    BadCid {
        /// The offending text (at most 64 characters).
        found: String,
        /// Where it starts.
        offset: usize,
    },
    /// The feature filter of an `F` message is not `+NAME`/`-NAME` items.
    #[error("invalid feature filter {found:?} at offset {offset}: expected +NAME or -NAME items")]
    BadFeatureFilter {
        /// The offending text (at most 64 characters).
        found: String,
        /// Where it starts.
        offset: usize,
    },
    /// A parameter holds an escape other than `\s`, `\n`, `\\`; ADC says the
    /// whole message must be discarded.
    #[error(
        "unknown escape \\{found} at offset {offset}; ADC requires discarding the whole message"
    )]
    BadEscape {
        /// Offset of the backslash.
        offset: usize,
        /// The character after it.
        found: char,
    },
    /// A parameter ends with a lone backslash.
    #[error("backslash at the end of a parameter (offset {offset})")]
    DanglingEscape {
        /// Offset of the backslash.
        offset: usize,
    },
}

/// A parsed ADC message: who it is routed to ([`Header`]), what it is
/// ([`CommandName`]) and its parameters, unescaped, in wire order.
///
/// Parameters come in two kinds. The first [`CommandName::positional_count`]
/// ones are positional (`MSG` text, `CTM` protocol/port/token); the rest are
/// named: two ASCII letters or digits, then the value (`NIalice`, `TO123`,
/// `ME1`). An empty named value (`DE`) means "clear this field" in an INF.
/// Parameters that do not start with a valid name are kept (and re-encoded)
/// but never returned by the named accessors.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Message {
    header: Header,
    command: CommandName,
    /// The unescaped parameters, back to back.
    text: String,
    /// `ends[i]` is where parameter `i` ends in `text`; it starts where the
    /// previous one ends.
    ends: Vec<u32>,
}

/// Splits a named parameter into its two-character name and its value.
#[inline]
fn split_named(param: &str) -> Option<(&str, &str)> {
    let bytes = param.as_bytes();
    if bytes.len() >= 2 && bytes[0].is_ascii_alphanumeric() && bytes[1].is_ascii_alphanumeric() {
        // Both bytes are ASCII, so 2 is a character boundary.
        Some((&param[..2], &param[2..]))
    } else {
        None
    }
}

/// Cursor over the space-separated words of a line after the FOURCC.
struct Words<'a> {
    line: &'a str,
    /// Offset of the next separator (or the end of the line).
    pos: usize,
}

impl<'a> Words<'a> {
    /// The next word and its offset; every space introduces one (so two
    /// spaces in a row give an empty word).
    fn next(&mut self) -> Option<(usize, &'a str)> {
        if self.pos >= self.line.len() {
            return None;
        }
        let start = self.pos + 1;
        let end = self.line.as_bytes()[start..]
            .iter()
            .position(|&b| b == b' ')
            .map_or(self.line.len(), |i| start + i);
        self.pos = end;
        Some((start, &self.line[start..end]))
    }
}

/// Parses one line (without its `\n`; a single trailing `\n` is tolerated)
/// into a [`Message`].
///
/// Strict where ADC is strict (message types, SIDs, escapes, UTF-8) and
/// tolerant where real software is sloppy: unknown commands are fine, empty
/// parameters (`CSTA 000  RF...` from eiskaltdcpp) are kept, and named
/// parameters are not validated until a typed view reads them.
pub fn parse(line: &[u8]) -> Result<Message, ParseError> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    if line.is_empty() {
        return Err(ParseError::Empty);
    }
    if u32::try_from(line.len()).is_err() {
        return Err(ParseError::TooLong { len: line.len() });
    }
    let line =
        std::str::from_utf8(line).map_err(|e| ParseError::NotUtf8 { offset: e.valid_up_to() })?;
    let bytes = line.as_bytes();

    let letter = bytes[0];
    let Some(mtype) = MessageType::from_letter(letter) else {
        return Err(ParseError::BadType { found: line.chars().next().unwrap_or('\u{fffd}') });
    };
    let word_end = bytes.iter().position(|&b| b == b' ').unwrap_or(bytes.len());
    let command = (word_end == 4)
        .then(|| CommandName::from_bytes([bytes[1], bytes[2], bytes[3]]))
        .flatten()
        .ok_or_else(|| ParseError::BadCommand { found: excerpt(&line[..word_end]) })?;

    let mut words = Words { line, pos: 4 };
    let letter = char::from(letter);
    let mut need = |what: &'static str| words_next(&mut words, what, letter);
    let header = match mtype {
        MessageType::Client => Header::Client,
        MessageType::Hub => Header::Hub,
        MessageType::Info => Header::Info,
        MessageType::Broadcast => Header::Broadcast { from: sid_field(need("source SID")?)? },
        MessageType::Direct | MessageType::Echo => {
            let from = sid_field(need("source SID")?)?;
            let to = sid_field(need("target SID")?)?;
            if mtype == MessageType::Direct {
                Header::Direct { from, to }
            } else {
                Header::Echo { from, to }
            }
        }
        MessageType::Feature => {
            let from = sid_field(need("source SID")?)?;
            let (offset, _, text) = need("feature filter")?;
            let filter = FeatureFilter::parse(text)
                .map_err(|_| ParseError::BadFeatureFilter { found: excerpt(text), offset })?;
            Header::Feature { from, filter }
        }
        MessageType::Udp => {
            let (offset, _, text) = need("CID")?;
            let cid = AnyCid::parse(text)
                .map_err(|_| ParseError::BadCid { found: excerpt(text), offset })?;
            Header::Udp { cid }
        }
    };

    // Size both buffers once: the text is at most the rest of the line, and
    // there is one parameter per remaining space.
    let rest = &bytes[words.pos..];
    let count = rest.iter().filter(|&&b| b == b' ').count();
    let mut msg = Message {
        header,
        command,
        text: String::with_capacity(rest.len().saturating_sub(count)),
        ends: Vec::with_capacity(count),
    };
    while let Some((offset, word)) = words.next() {
        unescape_into(&mut msg.text, word).map_err(|e| match e {
            EscapeError::Unknown { offset: at, found } => {
                ParseError::BadEscape { offset: offset + at, found }
            }
            EscapeError::Dangling { offset: at } => {
                ParseError::DanglingEscape { offset: offset + at }
            }
        })?;
        // The text is never longer than the line, which fits in u32.
        msg.ends.push(msg.text.len() as u32);
    }
    Ok(msg)
}

/// The next header word, or a `MissingField` error naming it.
fn words_next<'a>(
    words: &mut Words<'a>,
    what: &'static str,
    letter: char,
) -> Result<(usize, &'static str, &'a str), ParseError> {
    words
        .next()
        .map(|(offset, text)| (offset, what, text))
        .ok_or(ParseError::MissingField { what, letter })
}

/// Reads a SID header word.
fn sid_field((offset, what, text): (usize, &'static str, &str)) -> Result<Sid, ParseError> {
    Sid::from_bytes(text.as_bytes()).map_err(|_| ParseError::BadSid {
        what,
        found: excerpt(text),
        offset,
    })
}

impl Message {
    /// A message with no parameters yet.
    pub fn new(header: Header, command: CommandName) -> Message {
        Message { header, command, text: String::new(), ends: Vec::new() }
    }

    /// Parses one line; same as [`parse`].
    pub fn parse(line: &[u8]) -> Result<Message, ParseError> {
        parse(line)
    }

    /// The routing header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Replaces the routing header (to forward or re-address a message).
    pub fn set_header(&mut self, header: Header) {
        self.header = header;
    }

    /// The message type (first letter of the FOURCC).
    pub fn message_type(&self) -> MessageType {
        self.header.message_type()
    }

    /// The command name (last three letters of the FOURCC).
    pub fn command(&self) -> CommandName {
        self.command
    }

    /// The number of parameters (positional and named).
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether the message has no parameters.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    fn span(&self, index: usize) -> Option<(usize, usize)> {
        let end = *self.ends.get(index)? as usize;
        let start = if index == 0 { 0 } else { self.ends[index - 1] as usize };
        Some((start, end))
    }

    /// Parameter `index` (unescaped), counting positional and named ones.
    pub fn param(&self, index: usize) -> Option<&str> {
        let (start, end) = self.span(index)?;
        self.text.get(start..end)
    }

    /// All parameters in wire order.
    pub fn params(&self) -> Params<'_> {
        Params { text: &self.text, ends: self.ends.iter(), start: 0 }
    }

    /// How many leading parameters are positional: the command's count
    /// ([`CommandName::positional_count`]) or fewer if the message is short.
    pub fn positional_count(&self) -> usize {
        self.command.positional_count().min(self.ends.len())
    }

    /// Positional parameter `index`.
    pub fn positional(&self, index: usize) -> Option<&str> {
        if index < self.positional_count() {
            self.param(index)
        } else {
            None
        }
    }

    /// The named parameters as `(name, value)` in wire order, skipping any
    /// that do not start with a two-character name.
    pub fn named(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.params().skip(self.positional_count()).filter_map(split_named)
    }

    /// The value of the first named parameter called `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.named().find(|&(n, _)| n == name).map(|(_, v)| v)
    }

    /// Every value of the named parameter `name` (`AN` terms of a search,
    /// `AD` items of a SUP), in wire order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.named().filter(move |&(n, _)| n == name).map(|(_, v)| v)
    }

    /// Whether a named parameter `name` is present (even with an empty value).
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Whether the flag `name` is set (`ME1`, `RE1`, `ZL1`, `DI1`).
    pub fn flag(&self, name: &str) -> bool {
        self.get(name) == Some("1")
    }

    /// Appends a parameter (positional, or a named one already prefixed).
    pub fn push(&mut self, value: &str) -> &mut Message {
        self.text.push_str(value);
        self.push_end();
        self
    }

    /// Appends the named parameter `name` + `value`.
    pub fn push_named(&mut self, name: &str, value: &str) -> &mut Message {
        self.text.push_str(name);
        self.text.push_str(value);
        self.push_end();
        self
    }

    fn push_end(&mut self) {
        // A message built in memory past 4 GiB is a programming error far
        // beyond any protocol limit; saturate rather than wrap.
        self.ends.push(u32::try_from(self.text.len()).unwrap_or(u32::MAX));
    }

    /// Builder form of [`Message::push`].
    pub fn with(mut self, value: &str) -> Message {
        self.push(value);
        self
    }

    /// Builder form of [`Message::push_named`].
    pub fn with_named(mut self, name: &str, value: &str) -> Message {
        self.push_named(name, value);
        self
    }

    /// Indices of the named parameters called `name`.
    fn named_indices(&self, name: &str) -> Vec<usize> {
        let first = self.positional_count();
        (first..self.ends.len())
            .filter(|&i| self.param(i).and_then(split_named).is_some_and(|(n, _)| n == name))
            .collect()
    }

    /// Replaces parameter `index` with `name` + `value`, or removes it.
    fn replace(&mut self, index: usize, new: Option<(&str, &str)>) {
        let Some((start, end)) = self.span(index) else { return };
        let replacement = match new {
            Some((name, value)) => {
                let mut s = String::with_capacity(name.len() + value.len());
                s.push_str(name);
                s.push_str(value);
                s
            }
            None => String::new(),
        };
        self.text.replace_range(start..end, &replacement);
        let delta = replacement.len() as i64 - (end - start) as i64;
        for e in &mut self.ends[index..] {
            *e = (i64::from(*e) + delta).clamp(0, i64::from(u32::MAX)) as u32;
        }
        if new.is_none() {
            self.ends.remove(index);
        }
    }

    /// Sets the named parameter `name` to `value`: the first occurrence is
    /// replaced in place, later ones are removed, and it is appended if absent.
    pub fn set(&mut self, name: &str, value: &str) {
        let found = self.named_indices(name);
        match found.split_first() {
            None => {
                self.push_named(name, value);
            }
            Some((&first, rest)) => {
                for &i in rest.iter().rev() {
                    self.replace(i, None);
                }
                self.replace(first, Some((name, value)));
            }
        }
    }

    /// Removes every named parameter `name`; returns how many there were.
    pub fn remove(&mut self, name: &str) -> usize {
        let found = self.named_indices(name);
        for &i in found.iter().rev() {
            self.replace(i, None);
        }
        found.len()
    }

    /// Applies an incremental update (an INF) to this stored message: each
    /// named parameter of `update` replaces the one here, and an empty value
    /// removes it, as ADC's INF semantics require. The header and positional
    /// parameters of `self` are kept.
    ///
    /// A hub session can keep one `Message` per user and fold every `BINF`
    /// into it; [`Inf::from_message`](super::commands::Inf) then reads the
    /// current state.
    ///
    /// If `update` names a field twice, its last value wins. An updated field
    /// takes the place of its first occurrence here (later duplicates go);
    /// new fields are appended in the update's order. One pass over both
    /// messages: a hostile 1 MB update costs linear time, not quadratic.
    pub fn apply_update(&mut self, update: &Message) {
        // The last value of each name in the update.
        let mut changes: HashMap<&str, (&str, bool)> = HashMap::new();
        let mut order: Vec<&str> = Vec::new();
        for (name, value) in update.named() {
            if changes.insert(name, (value, false)).is_none() {
                order.push(name);
            }
        }
        if changes.is_empty() {
            return;
        }
        let first_named = self.positional_count();
        let mut text = String::with_capacity(self.text.len() + update.text.len());
        let mut ends = Vec::with_capacity(self.ends.len() + order.len());
        let mut push = |text: &mut String, pieces: &[&str]| {
            for piece in pieces {
                text.push_str(piece);
            }
            ends.push(u32::try_from(text.len()).unwrap_or(u32::MAX));
        };
        for (i, param) in self.params().enumerate() {
            let change = if i < first_named {
                None
            } else {
                split_named(param).and_then(|(name, _)| changes.get_mut(name).map(|c| (name, c)))
            };
            match change {
                None => push(&mut text, &[param]),
                Some((name, (value, done))) => {
                    if !*done && !value.is_empty() {
                        push(&mut text, &[name, value]);
                    }
                    *done = true;
                }
            }
        }
        for name in order {
            if let Some(&(value, false)) = changes.get(name) {
                if !value.is_empty() {
                    push(&mut text, &[name, value]);
                }
            }
        }
        self.text = text;
        self.ends = ends;
    }

    /// Appends the canonical wire form, with its trailing `\n`, to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        self.encode_line(out);
        out.push(b'\n');
    }

    /// The canonical wire form, with its trailing `\n`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.text.len() + self.ends.len() * 2 + 48);
        self.encode_into(&mut out);
        out
    }

    /// The wire form without the trailing `\n`.
    fn encode_line(&self, out: &mut Vec<u8>) {
        self.header.encode_into(self.command, out);
        for param in self.params() {
            out.push(b' ');
            escape_into(out, param);
        }
    }
}

/// Encodes a message in its canonical wire form, with the trailing `\n`.
pub fn encode(msg: &Message) -> Vec<u8> {
    msg.encode()
}

/// The wire form without the trailing `\n` (for logs and consoles).
impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut line = Vec::with_capacity(self.text.len() + 48);
        self.encode_line(&mut line);
        f.write_str(std::str::from_utf8(&line).map_err(|_| fmt::Error)?)
    }
}

/// Like `Display`, but an INF's `PD` (the private ID, a secret) is masked.
impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.command == CommandName::INF && self.has("PD") {
            let mut masked = self.clone();
            masked.set("PD", "<secret>");
            write!(f, "Message({masked})")
        } else {
            write!(f, "Message({self})")
        }
    }
}

impl FromStr for Message {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Message, ParseError> {
        parse(s.as_bytes())
    }
}

/// Iterator over a message's parameters (see [`Message::params`]).
#[derive(Clone, Debug)]
pub struct Params<'a> {
    text: &'a str,
    ends: std::slice::Iter<'a, u32>,
    start: usize,
}

impl<'a> Iterator for Params<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let end = *self.ends.next()? as usize;
        let param = self.text.get(self.start..end).unwrap_or("");
        self.start = end;
        Some(param)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.ends.size_hint()
    }
}

impl ExactSizeIterator for Params<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(line: &str) -> Message {
        parse(line.as_bytes()).unwrap_or_else(|e| panic!("{line:?}: {e}"))
    }

    #[test]
    fn params_and_named_access() {
        let m = msg("BMSG AAAB hello\\sworld PMAAAC ME1");
        assert_eq!(m.len(), 3);
        assert_eq!(m.positional(0), Some("hello world"));
        assert_eq!(m.positional(1), None);
        assert_eq!(m.get("PM"), Some("AAAC"));
        assert!(m.flag("ME"));
        assert!(!m.flag("PM"));
        assert_eq!(m.named().collect::<Vec<_>>(), [("PM", "AAAC"), ("ME", "1")]);
    }

    #[test]
    fn positional_text_is_never_a_named_param() {
        // The chat text starts like a PM flag; it is positional all the same.
        let m = msg("BMSG AAAB PMAAAC");
        assert_eq!(m.positional(0), Some("PMAAAC"));
        assert_eq!(m.get("PM"), None);
    }

    #[test]
    fn set_remove_and_update() {
        let mut m = msg("BINF AAAB IDX NIold DEdesc SL1 SL2");
        m.set("NI", "new nick");
        m.set("SL", "5");
        m.set("SS", "10");
        assert_eq!(m.to_string(), "BINF AAAB IDX NInew\\snick DEdesc SL5 SS10");
        assert_eq!(m.remove("DE"), 1);
        assert_eq!(m.remove("DE"), 0);
        assert_eq!(m.to_string(), "BINF AAAB IDX NInew\\snick SL5 SS10");
        let update = msg("BINF AAAB SL7 SS NIx AW1");
        m.apply_update(&update);
        assert_eq!(m.to_string(), "BINF AAAB IDX NIx SL7 AW1");
        assert_eq!(m, msg("BINF AAAB IDX NIx SL7 AW1"));
    }

    #[test]
    fn update_semantics() {
        // Positional parameters are never treated as fields.
        let mut m = msg("BMSG AAAB NIx PMAAAB");
        m.apply_update(&msg("BINF AAAB NIy PM"));
        assert_eq!(m.to_string(), "BMSG AAAB NIx NIy");
        // Last value wins; duplicates here collapse onto the first one;
        // new fields keep the update's order.
        let mut m = msg("BINF AAAB SL1 NIa SL2 DEd");
        m.apply_update(&msg("BINF AAAB SS5 SL3 SL4 HN1 DE"));
        assert_eq!(m.to_string(), "BINF AAAB SL4 NIa SS5 HN1");
        // An update without fields changes nothing.
        let before = m.clone();
        m.apply_update(&msg("BINF AAAB"));
        assert_eq!(m, before);
    }

    #[test]
    fn debug_masks_the_pid() {
        let m = msg("BINF AAAB IDX PDSECRET NIa");
        let dbg = format!("{m:?}");
        assert!(!dbg.contains("SECRET"), "{dbg}");
        assert!(dbg.contains("PD<secret>"), "{dbg}");
    }

    #[test]
    fn builder() {
        let m = Message::new(Header::Hub, CommandName::SUP).with_named("AD", "BASE").with("x y");
        assert_eq!(m.encode(), b"HSUP ADBASE x\\sy\n");
    }
}
