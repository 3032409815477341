//! Byte-level helpers of the NMDC codec: charset decoding and encoding of
//! fields, searching in byte slices, and the guard that keeps an encoded field
//! from ending its frame early.
//!
//! Pure: no I/O. Every text field is decoded here, after framing, with the
//! hub's charset; invalid bytes become U+FFFD and are never an error.

use encoding_rs::{Encoding, UTF_8, WINDOWS_1252};

/// The charset actually used for `requested`.
///
/// NMDC frames are split on the byte `|` and fields on `$`, space, `?` and
/// 0x05 before any decoding, which only works when those bytes mean the same
/// thing in the charset. Charsets that are not ASCII-compatible (UTF-16,
/// ISO-2022-JP, "replacement") cannot carry NMDC, so they fall back to the
/// protocol's historical default, CP1252.
pub(crate) fn effective_charset(requested: &'static Encoding) -> &'static Encoding {
    if requested.is_ascii_compatible() {
        requested
    } else {
        WINDOWS_1252
    }
}

/// Decodes one field; malformed bytes become U+FFFD.
pub(crate) fn decode(bytes: &[u8], cs: &'static Encoding) -> String {
    cs.decode_without_bom_handling(bytes).0.into_owned()
}

/// Decodes one field and undoes the DC++ HTML escaping (`&#36;` `&#124;` `&amp;`).
pub(crate) fn decode_unescaped(bytes: &[u8], cs: &'static Encoding) -> String {
    let text = cs.decode_without_bom_handling(bytes).0;
    let unescaped = match super::escape::unescape(&text) {
        std::borrow::Cow::Owned(s) => Some(s),
        std::borrow::Cow::Borrowed(_) => None,
    };
    unescaped.unwrap_or_else(|| text.into_owned())
}

/// Appends `text` in the charset `cs`.
///
/// Characters the charset cannot represent become HTML numeric references
/// (`&#1234;`, encoding_rs's behaviour). A `|` byte in the result would end the
/// frame and let the rest be read as another command, so any `|` left after
/// encoding (an unescaped field, or a multi-byte charset whose trail bytes
/// include 0x7C) is written as `&#124;`.
pub(crate) fn push_text(out: &mut Vec<u8>, text: &str, cs: &'static Encoding) {
    if text.is_ascii() || cs == UTF_8 {
        push_guarded(out, text.as_bytes(), b"&#124;");
    } else {
        let (bytes, _, _) = cs.encode(text);
        push_guarded(out, &bytes, b"&#124;");
    }
}

/// Appends `text` with the DC++ HTML escaping, then in the charset `cs`.
pub(crate) fn push_escaped(out: &mut Vec<u8>, text: &str, cs: &'static Encoding) {
    push_text(out, &super::escape::escape(text), cs);
}

/// Appends raw protocol bytes (`$Lock`, `$Key`, raw frames). A `|` inside them
/// is written as `/%DCN124%/`, the escape NMDC uses for bytes in `$Key`.
pub(crate) fn push_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    push_guarded(out, bytes, b"/%DCN124%/");
}

fn push_guarded(out: &mut Vec<u8>, bytes: &[u8], pipe: &[u8]) {
    if !bytes.contains(&b'|') {
        out.extend_from_slice(bytes);
        return;
    }
    for &b in bytes {
        if b == b'|' {
            out.extend_from_slice(pipe);
        } else {
            out.push(b);
        }
    }
}

/// Appends a decimal number without allocating.
pub(crate) fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        // n % 10 < 10, so the cast cannot truncate.
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// Appends a signed decimal number (used for `-1` byte counts).
pub(crate) fn push_i64(out: &mut Vec<u8>, n: i64) {
    if n < 0 {
        out.push(b'-');
    }
    push_u64(out, n.unsigned_abs());
}

/// Position of the first `byte` in `hay`.
pub(crate) fn find_byte(hay: &[u8], byte: u8) -> Option<usize> {
    hay.iter().position(|&b| b == byte)
}

/// Position of the first occurrence of `needle` (non-empty) in `hay`.
pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    let first = needle[0];
    let last_start = hay.len() - needle.len();
    let mut i = 0;
    while i <= last_start {
        match find_byte(&hay[i..=last_start], first) {
            None => return None,
            Some(off) => {
                let at = i + off;
                if &hay[at..at + needle.len()] == needle {
                    return Some(at);
                }
                i = at + 1;
            }
        }
    }
    None
}

/// Position of the last occurrence of `needle` (non-empty) in `hay`.
pub(crate) fn rfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    (0..=hay.len() - needle.len()).rev().find(|&i| &hay[i..i + needle.len()] == needle)
}

/// Splits at the first `byte`: `(before, after)`, or `None` when absent.
pub(crate) fn split_byte(hay: &[u8], byte: u8) -> Option<(&[u8], &[u8])> {
    find_byte(hay, byte).map(|i| (&hay[..i], &hay[i + 1..]))
}

/// Splits at the first `byte`; without one, the whole input and an empty rest.
pub(crate) fn split_byte_or_all(hay: &[u8], byte: u8) -> (&[u8], &[u8]) {
    split_byte(hay, byte).unwrap_or((hay, &[]))
}

/// Splits a `$$`-separated list (`a$$b$$`) and drops empty entries.
///
/// In a run of three or more `$`, the separator is the *last* two: `a$$$b`
/// is `a$` and `b`. Entries are written back followed by `$$`, and with this
/// rule an entry ending in `$` (never a valid nick, but possible on the wire)
/// reads back the same, so the canonical form is a fixed point.
pub(crate) fn split_double_dollar(hay: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut pos = 0;
    std::iter::from_fn(move || {
        while pos < hay.len() {
            let start = pos;
            let mut i = pos;
            let item_end = loop {
                match find_byte(&hay[i..], b'$') {
                    None => {
                        i = hay.len();
                        break hay.len();
                    }
                    Some(off) => {
                        let run_start = i + off;
                        let run = hay[run_start..].iter().take_while(|&&b| b == b'$').count();
                        i = run_start + run;
                        if run >= 2 {
                            break i - 2;
                        }
                    }
                }
            };
            pos = i;
            if item_end > start {
                return Some(&hay[start..item_end]);
            }
        }
        None
    })
}

/// Parses an unsigned decimal number made only of ASCII digits.
pub(crate) fn parse_u64(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() || bytes.len() > 20 {
        return None;
    }
    let mut n: u64 = 0;
    for &b in bytes {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(n)
}

/// Parses an unsigned decimal number that must fit in a `u32`.
pub(crate) fn parse_u32(bytes: &[u8]) -> Option<u32> {
    parse_u64(bytes).and_then(|n| u32::try_from(n).ok())
}

/// Parses a signed decimal number (`-1` is the usual negative one).
pub(crate) fn parse_i64(bytes: &[u8]) -> Option<i64> {
    match bytes.split_first() {
        Some((b'-', digits)) => {
            parse_u64(digits).and_then(|n| i64::try_from(n).ok()).and_then(|n| n.checked_neg())
        }
        _ => parse_u64(bytes).and_then(|n| i64::try_from(n).ok()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_and_rfind() {
        assert_eq!(find(b"a$$b$$", b"$$"), Some(1));
        assert_eq!(rfind(b"a$$b$$", b"$$"), Some(4));
        assert_eq!(find(b"abc", b"abcd"), None);
        assert_eq!(find(b"", b"a"), None);
        assert_eq!(find(b"aaab", b"ab"), Some(2));
        assert_eq!(rfind(b"x (a) (b)", b" ("), Some(5));
    }

    #[test]
    fn double_dollar_lists() {
        let v: Vec<&[u8]> = split_double_dollar(b"a$$b c$$$$d$$").collect();
        assert_eq!(v, vec![&b"a"[..], b"b c$$", b"d"]);
        let v: Vec<&[u8]> = split_double_dollar(b"$a$b$$$x$$$$").collect();
        assert_eq!(v, vec![&b"$a$b$"[..], b"x$$"]);
        assert_eq!(split_double_dollar(b"").count(), 0);
        assert_eq!(split_double_dollar(b"$$").count(), 0);
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64(b"18446744073709551616"), None);
        assert_eq!(parse_u64(b"+1"), None);
        assert_eq!(parse_u64(b""), None);
        assert_eq!(parse_i64(b"-1"), Some(-1));
        assert_eq!(parse_i64(b"-"), None);
        assert_eq!(parse_u32(b"4294967296"), None);
        let mut out = Vec::new();
        push_u64(&mut out, 0);
        out.push(b' ');
        push_i64(&mut out, -1);
        out.push(b' ');
        push_u64(&mut out, u64::MAX);
        assert_eq!(out, b"0 -1 18446744073709551615");
    }

    #[test]
    fn pipes_never_leak() {
        let mut out = Vec::new();
        push_text(&mut out, "a|b", WINDOWS_1252);
        assert_eq!(out, b"a&#124;b");
        out.clear();
        push_bytes(&mut out, b"k|y");
        assert_eq!(out, b"k/%DCN124%/y");
    }

    #[test]
    fn non_ascii_compatible_charsets_fall_back() {
        assert_eq!(effective_charset(encoding_rs::UTF_16LE), WINDOWS_1252);
        assert_eq!(effective_charset(encoding_rs::ISO_2022_JP), WINDOWS_1252);
        assert_eq!(effective_charset(encoding_rs::WINDOWS_1251), encoding_rs::WINDOWS_1251);
    }
}
