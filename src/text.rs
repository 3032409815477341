//! Text from the network made safe to show: control characters escaped
//! before a terminal or the log sees them (issue 15, finding 7).
//!
//! A hub or a peer chooses every byte of a chat line, a nick or a file name.
//! Written raw, `ESC ] 0;title BEL` retitles the terminal, `ESC [2J` clears
//! it, colours change what follows, and `\r\n` followed by a timestamp forges
//! a log line. [`neutralise`] shows those characters as visible escapes and
//! leaves everything else — valid UTF-8 text in any script, tabs — as it is:
//!
//! - C0 controls except tab, DEL, and C1 controls (U+0080–U+009F): `\n`,
//!   `\r`, `\e` (ESC) or `\xNN` / `\u{NN}`, so an escape sequence loses its
//!   ESC and prints as inert text;
//! - the Unicode line and paragraph separators (U+2028, U+2029), which some
//!   viewers break lines on, and the bidirectional overrides and isolates
//!   (U+202A–U+202E, U+2066–U+2069), which reorder what follows them on the
//!   screen: `\u{NNNN}`;
//! - with [`neutralise_bytes`], bytes that are not UTF-8: `\xNN`.
//!
//! The result is always one line. A backslash is not doubled: the output is
//! for reading, not for decoding back, and paths with backslashes stay
//! legible.
//!
//! This module is pure (no I/O). It must not decide where text goes: the log
//! ([`crate::logging`] neutralises every record) and the console call it.

use std::borrow::Cow;
use std::fmt::Write;

/// Whether `c` must be shown escaped.
fn needs_escape(c: char) -> bool {
    match c {
        '\t' => false,
        c if c.is_control() => true, // C0, DEL and C1
        '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => true,
        _ => false,
    }
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\u{1b}' => out.push_str("\\e"),
        c if (c as u32) < 0x80 => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
    }
}

/// `text` with control characters shown escaped (see the module doc); the
/// text itself when it has none.
pub fn neutralise(text: &str) -> Cow<'_, str> {
    let Some(first) = text.find(needs_escape) else {
        return Cow::Borrowed(text);
    };
    let mut out = String::with_capacity(text.len() + 16);
    out.push_str(&text[..first]);
    for c in text[first..].chars() {
        if needs_escape(c) {
            push_escaped(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Like [`neutralise`] for bytes of unknown encoding: valid UTF-8 runs are
/// neutralised, other bytes shown as `\xNN`.
pub fn neutralise_bytes(bytes: &[u8]) -> Cow<'_, str> {
    if let Ok(text) = std::str::from_utf8(bytes) {
        return neutralise(text);
    }
    let mut out = String::with_capacity(bytes.len() + 16);
    for chunk in bytes.utf8_chunks() {
        out.push_str(&neutralise(chunk.valid()));
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    Cow::Owned(out)
}
