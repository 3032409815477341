//! Finds the source line of a setting or of a field nested inside a table
//! constructor, so that messages point at `pasword = ...` on line 12 rather
//! than at the end of the `hubs = {...}` statement.
//!
//! At run time the script tells us only the line where each top-level
//! assignment finished (that is what Lua's `__newindex` sees). This module
//! complements it from the text: a small Lua lexer, then a walk over literal
//! table constructors. It never executes anything and never fails: when the
//! value was computed (`hubs = make_hubs()`) the walk stops and the caller
//! keeps the best line found so far.

/// One step of a path into a setting's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    /// A named field: `.password`.
    Field(String),
    /// A list position, from 1: `[2]`.
    Index(i64),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Name(String),
    Str(String),
    Int(i64),
    Num,
    Punct(&'static str),
    Other,
}

#[derive(Debug)]
struct Token {
    tok: Tok,
    line: usize,
    /// Bracket depth (`(`, `[`, `{`) before this token.
    depth: usize,
}

/// The tokens of a configuration script, ready for lookups.
#[derive(Debug)]
pub struct SourceIndex {
    tokens: Vec<Token>,
}

/// Multi-character punctuation, longest first.
const PUNCTS: &[&str] = &[
    "...", "==", "~=", "<=", ">=", "//", "::", "<<", ">>", "..", "=", "{", "}", "(", ")", "[", "]",
    ",", ";", ".", ":",
];

impl SourceIndex {
    /// Tokenizes `text`. Invalid input gives a partial token list, never an error.
    pub fn new(text: &[u8]) -> SourceIndex {
        let mut lexer = Lexer { s: text, pos: 0, line: 1 };
        // Lua skips a first line starting with '#' (a shebang).
        if text.first() == Some(&b'#') {
            while lexer.pos < text.len() && text[lexer.pos] != b'\n' {
                lexer.pos += 1;
            }
        }
        let mut tokens = Vec::new();
        let mut depth = 0usize;
        while let Some((tok, line)) = lexer.next() {
            let before = depth;
            match tok {
                Tok::Punct("(" | "[" | "{") => depth += 1,
                Tok::Punct(")" | "]" | "}") => depth = depth.saturating_sub(1),
                _ => {}
            }
            let depth = if matches!(tok, Tok::Punct(")" | "]" | "}")) { depth } else { before };
            tokens.push(Token { tok, line, depth });
        }
        SourceIndex { tokens }
    }

    /// The line of `path` inside the value of the top-level setting `key`.
    ///
    /// `assigned_at` is the line where the script's assignment to `key`
    /// finished, if it was a global assignment; `None` looks in the table the
    /// script returns. Returns the line of the deepest part of the path found
    /// in the text, or `None` if not even `key` was found.
    pub fn line_of(&self, key: &str, assigned_at: Option<usize>, path: &[Seg]) -> Option<usize> {
        let (mut line, mut value) = match assigned_at {
            Some(limit) => self.global_assignment(key, limit)?,
            None => {
                let open = self.returned_table()?;
                self.field(open, &Seg::Field(key.to_string()))?
            }
        };
        for seg in path {
            if !matches!(self.tok(value), Some(Tok::Punct("{"))) {
                break;
            }
            match self.field(value, seg) {
                Some((l, v)) => {
                    line = l;
                    value = v;
                }
                None => break,
            }
        }
        Some(line)
    }

    fn tok(&self, i: usize) -> Option<&Tok> {
        self.tokens.get(i).map(|t| &t.tok)
    }

    fn is_punct(&self, i: usize, p: &str) -> bool {
        matches!(self.tok(i), Some(Tok::Punct(q)) if *q == p)
    }

    /// The last statement-level `key = ...` starting at or before `limit`:
    /// (line of `key`, index of the value's first token).
    fn global_assignment(&self, key: &str, limit: usize) -> Option<(usize, usize)> {
        let mut found = None;
        for (i, t) in self.tokens.iter().enumerate() {
            if t.line > limit {
                break;
            }
            let is_key = matches!(&t.tok, Tok::Name(n) if n == key);
            if !is_key || t.depth != 0 || !self.is_punct(i + 1, "=") {
                continue;
            }
            // `a.key = `, `a:key`, and `local key = ` are not assignments to the setting.
            let prev = i.checked_sub(1).and_then(|p| self.tok(p));
            let excluded = matches!(prev, Some(Tok::Punct("." | ":")))
                || matches!(prev, Some(Tok::Name(n)) if n == "local");
            if !excluded {
                found = Some((t.line, i + 2));
            }
        }
        found
    }

    /// The `{` of the last statement-level `return {`.
    fn returned_table(&self) -> Option<usize> {
        let mut found = None;
        for (i, t) in self.tokens.iter().enumerate() {
            if t.depth == 0 && t.tok == Tok::Name("return".into()) && self.is_punct(i + 1, "{") {
                found = Some(i + 1);
            }
        }
        found
    }

    /// Finds `seg` among the fields of the constructor opened at `open`:
    /// (line of its key, or of its value for a list item; index of the value).
    fn field(&self, open: usize, seg: &Seg) -> Option<(usize, usize)> {
        let mut i = open + 1;
        let mut position = 0i64;
        // Each pass reads one field; the bound guards against any lexer surprise.
        for _ in 0..self.tokens.len() {
            if i >= self.tokens.len() || self.is_punct(i, "}") {
                return None;
            }
            let line = self.tokens[i].line;
            let (key, value) = match self.tok(i) {
                Some(Tok::Name(name)) if self.is_punct(i + 1, "=") => {
                    (Seg::Field(name.clone()), i + 2)
                }
                Some(Tok::Punct("[")) => {
                    let close = self.skip_expression(i + 1, &["]"]);
                    let key = match (self.tok(i + 1), close == i + 2) {
                        (Some(Tok::Int(n)), true) => Some(Seg::Index(*n)),
                        (Some(Tok::Str(s)), true) => Some(Seg::Field(s.clone())),
                        _ => None,
                    };
                    if !self.is_punct(close + 1, "=") {
                        return None;
                    }
                    match key {
                        Some(key) => (key, close + 2),
                        // A computed key: skip the field.
                        None => (Seg::Field(String::new()), close + 2),
                    }
                }
                _ => {
                    position += 1;
                    (Seg::Index(position), i)
                }
            };
            if &key == seg {
                return Some((line, value));
            }
            let end = self.skip_expression(value, &[",", ";", "}"]);
            if self.is_punct(end, "}") || end >= self.tokens.len() {
                return None;
            }
            i = end + 1;
        }
        None
    }

    /// From `start`, skips one expression: returns the index of the first
    /// token in `stops` at the same nesting (brackets and `function`/`if`/
    /// `do`/`repeat` blocks), or the number of tokens if there is none.
    fn skip_expression(&self, start: usize, stops: &[&str]) -> usize {
        let mut nesting = 0usize;
        let mut i = start;
        while i < self.tokens.len() {
            match &self.tokens[i].tok {
                Tok::Punct(p) if nesting == 0 && stops.contains(p) => return i,
                Tok::Punct("(" | "[" | "{") => nesting += 1,
                Tok::Punct(")" | "]" | "}") => {
                    if nesting == 0 {
                        // An unexpected closer ends the expression.
                        return i;
                    }
                    nesting -= 1;
                }
                Tok::Name(n) => match n.as_str() {
                    "function" | "if" | "do" | "repeat" => nesting += 1,
                    "end" | "until" => nesting = nesting.saturating_sub(1),
                    _ => {}
                },
                _ => {}
            }
            i += 1;
        }
        i
    }
}

struct Lexer<'a> {
    s: &'a [u8],
    pos: usize,
    line: usize,
}

impl Lexer<'_> {
    fn peek(&self, ahead: usize) -> Option<u8> {
        self.s.get(self.pos + ahead).copied()
    }

    /// Advances one byte, counting lines (`\n`, `\r`, `\r\n` and `\n\r` are one break, as in Lua).
    fn bump(&mut self) {
        let Some(c) = self.peek(0) else { return };
        self.pos += 1;
        if c == b'\n' || c == b'\r' {
            if let Some(d) = self.peek(0) {
                if (d == b'\n' || d == b'\r') && d != c {
                    self.pos += 1;
                }
            }
            self.line += 1;
        }
    }

    fn next(&mut self) -> Option<(Tok, usize)> {
        loop {
            let c = self.peek(0)?;
            if c.is_ascii_whitespace() {
                self.bump();
                continue;
            }
            if c == b'-' && self.peek(1) == Some(b'-') {
                self.pos += 2;
                if self.long_bracket_level().is_some() {
                    self.long_bracket();
                } else {
                    while self.peek(0).is_some_and(|c| c != b'\n' && c != b'\r') {
                        self.pos += 1;
                    }
                }
                continue;
            }
            break;
        }
        let line = self.line;
        let c = self.peek(0)?;
        let tok = if c == b'_' || c.is_ascii_alphabetic() {
            let start = self.pos;
            while self.peek(0).is_some_and(|c| c == b'_' || c.is_ascii_alphanumeric()) {
                self.pos += 1;
            }
            Tok::Name(String::from_utf8_lossy(&self.s[start..self.pos]).into_owned())
        } else if c.is_ascii_digit()
            || (c == b'.' && self.peek(1).is_some_and(|d| d.is_ascii_digit()))
        {
            self.number()
        } else if c == b'"' || c == b'\'' {
            self.quoted(c)
        } else if c == b'[' && self.long_bracket_level().is_some() {
            Tok::Str(self.long_bracket())
        } else {
            let rest = &self.s[self.pos..];
            match PUNCTS.iter().find(|p| rest.starts_with(p.as_bytes())) {
                Some(p) => {
                    self.pos += p.len();
                    Tok::Punct(p)
                }
                None => {
                    self.pos += 1;
                    Tok::Other
                }
            }
        };
        Some((tok, line))
    }

    fn number(&mut self) -> Tok {
        let start = self.pos;
        let hex = self.peek(0) == Some(b'0') && matches!(self.peek(1), Some(b'x' | b'X'));
        while let Some(c) = self.peek(0) {
            let exponent = if hex { b"pP" } else { b"eE" };
            if exponent.contains(&c) && matches!(self.peek(1), Some(b'+' | b'-')) {
                self.pos += 2;
            } else if c.is_ascii_alphanumeric() || c == b'.' || c == b'_' {
                self.pos += 1;
            } else {
                break;
            }
        }
        let text = String::from_utf8_lossy(&self.s[start..self.pos]);
        text.parse::<i64>().map_or(Tok::Num, Tok::Int)
    }

    fn quoted(&mut self, quote: u8) -> Tok {
        self.pos += 1;
        let mut out = Vec::new();
        while let Some(c) = self.peek(0) {
            match c {
                _ if c == quote => {
                    self.pos += 1;
                    break;
                }
                // An unfinished string ends at the line break (Lua reports it).
                b'\n' | b'\r' => break,
                b'\\' => {
                    self.pos += 1;
                    match self.peek(0) {
                        Some(b'\n' | b'\r') => {
                            out.push(b'\n');
                            self.bump();
                        }
                        Some(b'z') => {
                            self.pos += 1;
                            while self.peek(0).is_some_and(|c| c.is_ascii_whitespace()) {
                                self.bump();
                            }
                        }
                        Some(e) => {
                            // Other escapes only matter for keys, which are plain names.
                            out.push(match e {
                                b'n' => b'\n',
                                b't' => b'\t',
                                other => other,
                            });
                            self.pos += 1;
                        }
                        None => break,
                    }
                }
                _ => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
        Tok::Str(String::from_utf8_lossy(&out).into_owned())
    }

    /// At `[`, returns the level of a long bracket (`[[` is 0, `[==[` is 2).
    fn long_bracket_level(&self) -> Option<usize> {
        if self.peek(0) != Some(b'[') {
            return None;
        }
        let mut level = 0;
        while self.peek(1 + level) == Some(b'=') {
            level += 1;
        }
        (self.peek(1 + level) == Some(b'[')).then_some(level)
    }

    /// Reads a long bracket string or comment; returns its content.
    fn long_bracket(&mut self) -> String {
        let Some(level) = self.long_bracket_level() else {
            return String::new();
        };
        self.pos += level + 2;
        let mut close = vec![b']'];
        close.extend(std::iter::repeat_n(b'=', level));
        close.push(b']');
        let start = self.pos;
        while self.pos < self.s.len() {
            if self.s[self.pos..].starts_with(&close) {
                let content = String::from_utf8_lossy(&self.s[start..self.pos]).into_owned();
                self.pos += close.len();
                return content;
            }
            self.bump();
        }
        String::from_utf8_lossy(&self.s[start..]).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRIPT: &str = r#"-- a comment with hubs = { not code }
nick = "me"
--[==[ a long
comment ]==]
hubs = {
  { url = "adc://a:1", nick = "x" },
  {
    url = [[adc://b:2]],
    pasword = "secret",
    extra = function() local a, b = 1, 2 if a then return { b } end end,
    after = 1,
  },
  [4] = { url = "adc://d:4" },
  ["quoted"] = 5,
}
local function f()
  slots = 3
end
"#;

    #[test]
    fn finds_top_level_and_nested_lines() {
        let index = SourceIndex::new(SCRIPT.as_bytes());
        assert_eq!(index.line_of("nick", Some(2), &[]), Some(2));
        // The assignment statement ended on line 15; it starts on line 5.
        assert_eq!(index.line_of("hubs", Some(15), &[]), Some(5));
        let pasword = [Seg::Index(2), Seg::Field("pasword".into())];
        assert_eq!(index.line_of("hubs", Some(15), &pasword), Some(9));
        let after = [Seg::Index(2), Seg::Field("after".into())];
        assert_eq!(index.line_of("hubs", Some(15), &after), Some(11));
        let nick = [Seg::Index(1), Seg::Field("nick".into())];
        assert_eq!(index.line_of("hubs", Some(15), &nick), Some(6));
        assert_eq!(index.line_of("hubs", Some(15), &[Seg::Index(4)]), Some(13));
        assert_eq!(index.line_of("hubs", Some(15), &[Seg::Field("quoted".into())]), Some(14));
        // A missing part keeps the deepest line found.
        let missing = [Seg::Index(2), Seg::Field("nope".into())];
        assert_eq!(index.line_of("hubs", Some(15), &missing), Some(7));
        assert_eq!(index.line_of("slots", Some(17), &[]), Some(17));
        // A nested `nick =` is not mistaken for the global one.
        assert_eq!(index.line_of("nick", Some(15), &[]), Some(2));
    }

    #[test]
    fn finds_fields_of_a_returned_table() {
        let text = "local x = 1\nreturn {\n  nick = 'me',\n  hubs = {\n    'adc://a:1',\n    { url = 'adc://b:2' },\n  },\n}\n";
        let index = SourceIndex::new(text.as_bytes());
        assert_eq!(index.line_of("nick", None, &[]), Some(3));
        assert_eq!(index.line_of("hubs", None, &[Seg::Index(2)]), Some(6));
        assert_eq!(index.line_of("slots", None, &[]), None);
    }

    #[test]
    fn survives_broken_text() {
        for text in
            ["hubs = {", "hubs = { {", "x = \"unterminated\nhubs = {1", "[[", "--[[", "hubs = }}}"]
        {
            let index = SourceIndex::new(text.as_bytes());
            let _ = index.line_of("hubs", Some(10), &[Seg::Index(1), Seg::Field("url".into())]);
        }
    }

    #[test]
    fn counts_lines_in_strings_and_line_endings() {
        let text = "a = [[\n\n]]\r\nb = 'x\\\ny'\nnick = 1\n";
        let index = SourceIndex::new(text.as_bytes());
        assert_eq!(index.line_of("nick", Some(10), &[]), Some(6));
    }
}
