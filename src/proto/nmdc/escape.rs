//! NMDC escaping schemes, as pure functions over text and bytes.
//!
//! - The DC++ HTML escaping (`&#36;` `&#124;` `&amp;`) used in chat, private
//!   messages, descriptions, e-mail, hub name and topic, `$UserCommand` and
//!   search patterns: [`escape`] and [`unescape`].
//! - The old ADC escaping of `$ADCGET`/`$ADCSND` parameters (a backslash
//!   before space, newline or backslash): [`escape_adc_old`] and
//!   [`split_adc_old`].
//! - The `/%DCN000%/` escaping of `$Key` bytes lives in `lock.rs`.
//!
//! This module never decodes a charset and never does I/O.

use std::borrow::Cow;

/// The three HTML sequences and the character each stands for.
const SEQUENCES: [(&str, char); 3] = [("&amp;", '&'), ("&#36;", '$'), ("&#124;", '|')];

fn starts_with_sequence(s: &str) -> Option<(&'static str, char)> {
    SEQUENCES.iter().copied().find(|(seq, _)| s.starts_with(seq))
}

/// Escapes `text` the way DC++ does before sending chat-like fields.
///
/// `$` becomes `&#36;` and `|` becomes `&#124;`. An `&` becomes `&amp;` only
/// when it begins one of the three sequences (`&amp;`, `&#36;`, `&#124;`);
/// every other `&` is sent as is (DC++ `NmdcHub::validateMessage`). This keeps
/// ordinary text readable by old clients and still makes [`unescape`] the
/// exact inverse: `unescape(&escape(s)) == s` for every `s`.
pub fn escape(text: &str) -> Cow<'_, str> {
    let special = |c: char| matches!(c, '$' | '|' | '&');
    if !text.contains(special) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    let mut rest = text;
    while let Some(i) = rest.find(special) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        match tail.as_bytes()[0] {
            b'$' => out.push_str("&#36;"),
            b'|' => out.push_str("&#124;"),
            _ if starts_with_sequence(tail).is_some() => out.push_str("&amp;"),
            _ => out.push('&'),
        }
        rest = &tail[1..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// Undoes [`escape`]: `&#36;` → `$`, `&#124;` → `|`, `&amp;` → `&`, in one
/// left-to-right pass. Any other `&` is kept as is.
pub fn unescape(text: &str) -> Cow<'_, str> {
    if !text.contains('&') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        match starts_with_sequence(tail) {
            Some((seq, ch)) => {
                out.push(ch);
                rest = &tail[seq.len()..];
            }
            None => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// Escapes one `$ADCGET`/`$ADCSND` parameter with the old ADC rules: a
/// backslash before each space, newline and backslash (DC++
/// `AdcCommand::escape(str, old=true)`). Not the `\s` form of ADC proper.
pub fn escape_adc_old(param: &str) -> Cow<'_, str> {
    let special = |c: char| matches!(c, ' ' | '\n' | '\\');
    if !param.contains(special) {
        return Cow::Borrowed(param);
    }
    let mut out = String::with_capacity(param.len() + 8);
    for c in param.chars() {
        if special(c) {
            out.push('\\');
        }
        out.push(c);
    }
    Cow::Owned(out)
}

/// Splits `$ADCGET`/`$ADCSND` arguments on unescaped spaces and removes the
/// old ADC escapes: a backslash followed by any byte stands for that byte.
/// A lone trailing backslash is kept. Empty parameters (double spaces) are
/// dropped.
pub fn split_adc_old(args: &[u8]) -> Vec<Vec<u8>> {
    let mut params = Vec::with_capacity(6);
    let mut cur = Vec::new();
    let mut i = 0;
    while i < args.len() {
        match args[i] {
            b'\\' if i + 1 < args.len() => {
                cur.push(args[i + 1]);
                i += 2;
                continue;
            }
            b' ' => {
                if !cur.is_empty() {
                    params.push(std::mem::take(&mut cur));
                }
            }
            b => cur.push(b),
        }
        i += 1;
    }
    if !cur.is_empty() {
        params.push(cur);
    }
    params
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_table() {
        // (text, escaped) pairs; the second column is what DC++ sends.
        let table = [
            ("plain", "plain"),
            ("a $ b", "a &#36; b"),
            ("a | b", "a &#124; b"),
            ("R&D", "R&D"),
            ("&amp;", "&amp;amp;"),
            ("&#36;", "&amp;#36;"),
            ("&#124;", "&amp;#124;"),
            ("&#12;", "&#12;"),
            ("&&#36;", "&&amp;#36;"),
            ("hello $world | pipes & &amp; done", "hello &#36;world &#124; pipes & &amp;amp; done"),
        ];
        for (text, wire) in table {
            assert_eq!(escape(text), wire, "escape {text:?}");
            assert_eq!(unescape(wire), text, "unescape {wire:?}");
        }
    }

    #[test]
    fn unescape_keeps_unknown_ampersands() {
        assert_eq!(unescape("a & b &lt; &#37; &"), "a & b &lt; &#37; &");
        assert_eq!(unescape("&#36&#36;"), "&#36$");
    }

    #[test]
    fn escape_round_trips_random_text() {
        // Small alphabet so that sequences actually occur.
        let alphabet: Vec<char> = "&#;amp36124$| xé".chars().collect();
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 12) as usize;
            let mut s = String::new();
            let mut x = seed;
            for _ in 0..len {
                s.push(alphabet[(x % alphabet.len() as u64) as usize]);
                x /= alphabet.len() as u64;
            }
            let e = escape(&s);
            assert!(!e.contains('$') && !e.contains('|'), "{s:?} -> {e:?}");
            assert_eq!(unescape(&e), s, "round trip of {s:?}");
        }
    }

    #[test]
    fn old_adc_escaping() {
        assert_eq!(escape_adc_old("a b\\c\nd"), "a\\ b\\\\c\\\nd");
        let params = split_adc_old(b"file /share/Some\\ Dir/a\\\\b 0 10  ZL1 x\\");
        let want: Vec<&[u8]> = vec![b"file", b"/share/Some Dir/a\\b", b"0", b"10", b"ZL1", b"x\\"];
        assert_eq!(params, want);
        assert!(split_adc_old(b"").is_empty());
    }
}
