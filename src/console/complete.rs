//! Tab completion: finds the identifier path before the cursor and asks the
//! backend for the names that extend it.
//!
//! Only the text scanning lives here; which names exist is the backend's
//! business ([`ConsoleBackend::complete`]).

use super::backend::ConsoleBackend;

/// Whether `c` can be part of an identifier path (`dc.sleep`, `hub:say`).
fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == ':'
}

/// The identifier path that ends at byte offset `pos` of `line`: its start
/// offset and its text. The path is the longest run of letters, digits, `_`,
/// `.` and `:` before the cursor; it is empty when the cursor follows anything
/// else. A `pos` past the end or inside a character is clamped to a valid one.
///
/// `"print(dc.sl"` at the end -> `(6, "dc.sl")`.
pub fn identifier_path_before(line: &str, pos: usize) -> (usize, &str) {
    let mut pos = pos.min(line.len());
    while !line.is_char_boundary(pos) {
        pos -= 1;
    }
    let before = &line[..pos];
    let start = before
        .char_indices()
        .rev()
        .take_while(|&(_, c)| is_path_char(c))
        .last()
        .map_or(pos, |(i, _)| i);
    (start, &line[start..pos])
}

/// Completion for the console: the start of the text to replace and the
/// candidates (whole paths) from `backend`. No candidates when the path is a
/// number (`1.5`) or sits inside a string literal, where names make no sense.
pub fn complete_line(backend: &dyn ConsoleBackend, line: &str, pos: usize) -> (usize, Vec<String>) {
    let (start, path) = identifier_path_before(line, pos);
    if path.starts_with(|c: char| c.is_ascii_digit()) || in_string(&line[..start]) {
        return (start, Vec::new());
    }
    let mut names = backend.complete(path);
    names.sort();
    names.dedup();
    (start, names)
}

/// Whether the end of `text` (one line) is inside a quoted string: a rough
/// scan for `'` and `"` with backslash escapes. Long strings (`[[`) spanning
/// lines are not tracked; completing inside one is harmless.
fn in_string(text: &str) -> bool {
    let mut quote = None;
    let mut escaped = false;
    for c in text.chars() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
            }
            None if c == '\'' || c == '"' => quote = Some(c),
            None => {}
        }
    }
    quote.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_before_the_cursor() {
        let cases: &[(&str, usize, usize, &str)] = &[
            ("dc.sl", 5, 0, "dc.sl"),
            ("print(dc.sl", 11, 6, "dc.sl"),
            ("x = hub:sa", 10, 4, "hub:sa"),
            ("pri", 3, 0, "pri"),
            ("pri", 2, 0, "pr"),
            ("a.b_c.d1", 8, 0, "a.b_c.d1"),
            ("f(x, y", 6, 5, "y"),
            ("f(", 2, 2, ""),
            ("", 0, 0, ""),
            ("dc.sleep(1) + dc.", 17, 14, "dc."),
            ("t[1].x", 6, 4, ".x"),
            ("x = é", 6, 6, ""),
            ("abc", 99, 0, "abc"),
        ];
        for &(line, pos, start, path) in cases {
            assert_eq!(identifier_path_before(line, pos), (start, path), "line {line:?} at {pos}");
        }
    }

    #[test]
    fn a_cursor_inside_a_character_is_clamped() {
        // "é" is two bytes; offset 5 falls inside it.
        assert_eq!(identifier_path_before("x = é", 5), (4, ""));
    }

    #[test]
    fn strings_are_detected() {
        assert!(in_string("print('dc."));
        assert!(in_string("x = \"a\\\"b"));
        assert!(!in_string("print('a', "));
        assert!(!in_string("x = \"a\" .. "));
    }
}
