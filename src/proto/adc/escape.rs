//! ADC parameter escaping: `\s` is a space, `\n` a newline, `\\` a backslash.
//!
//! Pure: no I/O. ADC.txt reserves every other escape; a message containing one
//! must be discarded as a whole, so [`unescape_into`] fails on it rather than
//! guessing. Escaping is the only transformation between a parameter's text
//! and its wire form.

use std::borrow::Cow;

/// Why a parameter's escapes are invalid. Offsets count bytes from the start
/// of the parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EscapeError {
    /// A backslash followed by something other than `s`, `n` or `\`.
    #[error("unknown escape \\{found} at byte {offset}")]
    Unknown {
        /// Offset of the backslash.
        offset: usize,
        /// The character after it.
        found: char,
    },
    /// A backslash as the last character of the parameter.
    #[error("backslash at the end of the parameter (byte {offset})")]
    Dangling {
        /// Offset of the backslash.
        offset: usize,
    },
}

impl EscapeError {
    /// The byte offset of the offending backslash within the parameter.
    pub fn offset(&self) -> usize {
        match *self {
            EscapeError::Unknown { offset, .. } | EscapeError::Dangling { offset } => offset,
        }
    }
}

/// Whether a byte has to be escaped on the wire.
#[inline]
fn is_special(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\\')
}

/// Calls `emit` with consecutive pieces of the escaped form of `text`.
///
/// Shared by the byte encoder and `Display`, so both write the same thing;
/// runs of ordinary characters go out as one piece.
pub(crate) fn escape_pieces(text: &str, mut emit: impl FnMut(&str)) {
    let bytes = text.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if is_special(b) {
            if start < i {
                emit(&text[start..i]);
            }
            emit(match b {
                b' ' => "\\s",
                b'\n' => "\\n",
                _ => "\\\\",
            });
            start = i + 1;
        }
    }
    if start < bytes.len() {
        emit(&text[start..]);
    }
}

/// Appends the escaped form of `text` to `out`.
pub fn escape_into(out: &mut Vec<u8>, text: &str) {
    if !text.bytes().any(is_special) {
        out.extend_from_slice(text.as_bytes());
        return;
    }
    escape_pieces(text, |piece| out.extend_from_slice(piece.as_bytes()));
}

/// The escaped form of `text`; borrowed when nothing needs escaping.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.bytes().any(is_special) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    escape_pieces(text, |piece| out.push_str(piece));
    Cow::Owned(out)
}

/// Appends the unescaped form of the wire parameter `raw` to `out`.
///
/// On error `out` may hold part of the parameter; callers discard the whole
/// message anyway.
pub fn unescape_into(out: &mut String, raw: &str) -> Result<(), EscapeError> {
    let bytes = raw.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            i += 1;
            continue;
        }
        out.push_str(&raw[start..i]);
        let Some(&next) = bytes.get(i + 1) else {
            return Err(EscapeError::Dangling { offset: i });
        };
        out.push(match next {
            b's' => ' ',
            b'n' => '\n',
            b'\\' => '\\',
            _ => {
                // `raw` is valid UTF-8 and `\` is ASCII, so a character starts
                // right after it.
                let found = raw[i + 1..].chars().next().unwrap_or('\u{fffd}');
                return Err(EscapeError::Unknown { offset: i, found });
            }
        });
        i += 2;
        start = i;
    }
    out.push_str(&raw[start..]);
    Ok(())
}

/// The unescaped form of `raw`; borrowed when it holds no escape.
pub fn unescape(raw: &str) -> Result<Cow<'_, str>, EscapeError> {
    if !raw.as_bytes().contains(&b'\\') {
        return Ok(Cow::Borrowed(raw));
    }
    let mut out = String::with_capacity(raw.len());
    unescape_into(&mut out, raw)?;
    Ok(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (text, wire form)
    const ROUND_TRIP: &[(&str, &str)] = &[
        ("", ""),
        ("plain", "plain"),
        ("a b", "a\\sb"),
        ("line\nbreak", "line\\nbreak"),
        ("back\\slash", "back\\\\slash"),
        (" ", "\\s"),
        ("\\s", "\\\\s"),
        ("  \n\\", "\\s\\s\\n\\\\"),
        ("ünï cödé ☃", "ünï\\scödé\\s☃"),
    ];

    #[test]
    fn escapes_and_unescapes() {
        for &(text, wire) in ROUND_TRIP {
            assert_eq!(escape(text), wire, "escape {text:?}");
            let mut bytes = Vec::new();
            escape_into(&mut bytes, text);
            assert_eq!(bytes, wire.as_bytes());
            assert_eq!(unescape(wire).unwrap(), text, "unescape {wire:?}");
        }
    }

    #[test]
    fn borrowed_when_nothing_to_do() {
        assert!(matches!(escape("abc"), Cow::Borrowed(_)));
        assert!(matches!(unescape("abc"), Ok(Cow::Borrowed(_))));
    }

    #[test]
    fn rejects_unknown_and_dangling_escapes() {
        let cases: &[(&str, EscapeError)] = &[
            ("a\\tb", EscapeError::Unknown { offset: 1, found: 't' }),
            ("\\S", EscapeError::Unknown { offset: 0, found: 'S' }),
            ("ok\\s\\x", EscapeError::Unknown { offset: 4, found: 'x' }),
            ("\\é", EscapeError::Unknown { offset: 0, found: 'é' }),
            ("\\ ", EscapeError::Unknown { offset: 0, found: ' ' }),
            ("end\\", EscapeError::Dangling { offset: 3 }),
            ("\\\\\\", EscapeError::Dangling { offset: 2 }),
        ];
        for (wire, want) in cases {
            assert_eq!(unescape(wire).unwrap_err(), *want, "{wire:?}");
        }
    }
}
