//! Lua 5.4 patterns in Rust, with a step budget: `string.find`, `match`,
//! `gmatch` and `gsub` for untrusted scripts.
//!
//! Lua's own matcher runs in C, where no instruction hook reaches: one call
//! such as `string.find(("a"):rep(40), ("a*"):rep(25) .. "b")` runs for
//! minutes and freezes every script and hub with it (issue 15, finding 1).
//! This module re-implements the same semantics on bytes (character classes
//! in the "C" locale, sets, the four repetitions, anchors, captures, position
//! captures, back-references, `%b`, `%f`, and Lua's error messages for
//! malformed patterns, word for word) and counts *steps*: every matcher call,
//! every byte a repetition, `%b` or a back-reference walks over, every start
//! position tried, and every byte `gsub` adds to its result. A call that goes
//! past its budget fails with "pattern too expensive".
//!
//! # The budget is per call
//!
//! The budget covers one whole call of `find`, `match`, `gsub`, or one step
//! of a `gmatch` iterator — all its match attempts together, not each
//! attempt — because a per-attempt budget would still let `gsub` over a long
//! subject run budget × length steps. Time spent in a `gsub` replacement
//! function is Lua code, bounded by the script's own hooks, and not counted.
//! Because the bytes `gsub` appends are counted, its result is bounded too
//! (the Rust buffer is outside the Lua allocator's memory limit).
//!
//! # What it owns, what it must not do
//!
//! It owns the matcher and the four Lua functions; [`install`] puts them on a
//! table the caller chooses. It must not decide which states get them (the
//! sandbox's policies do), and it must not change the behaviour of a pattern
//! that ends within the budget: the tests compare it with Lua's own `string`
//! library.
//!
//! Errors reach Lua as plain strings with the caller's position, as the C
//! functions raise them (a small Lua wrapper raises them at the right level),
//! so scripts that `pcall` and inspect the message see the same text. One
//! difference remains: a *tail call* (`return string.find(s, p)`) to a C
//! function keeps the caller's frame, to a Lua wrapper it does not, so there
//! the position is the caller's caller's (or none under `pcall`); tracebacks
//! also show the wrapper's frame (`pattern:N`).

use mlua::{Function, Integer, Lua, MultiValue, Table, Value};

/// Lua's limit on matcher recursion (`MAXCCALLS` in `lstrlib.c`).
const MAX_DEPTH: usize = 200;
/// Lua's limit on captures per pattern (`LUA_MAXCAPTURES`).
const MAX_CAPTURES: usize = 32;
/// The escape character.
const ESC: u8 = b'%';
/// Characters that make a pattern more than a plain string.
const SPECIALS: &[u8] = b"^$*+?.([%-";
/// Capture length markers, as in Lua.
const CAP_UNFINISHED: isize = -1;
const CAP_POSITION: isize = -2;

/// A budget fit for interactive scripts: a few tens of milliseconds of
/// matching at most, far above what ordinary patterns on chat lines need.
pub const DEFAULT_BUDGET: u64 = 10_000_000;

/// Why a match could not be carried out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatternError {
    /// A malformed pattern or replacement, or a capture misuse: the message
    /// is Lua's own ("malformed pattern (missing ']')", "invalid capture
    /// index %2", ...).
    Lua(String),
    /// The call went past its step budget.
    TooExpensive {
        /// The budget that was exhausted.
        budget: u64,
    },
}

impl std::fmt::Display for PatternError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PatternError::Lua(m) => f.write_str(m),
            PatternError::TooExpensive { budget } => {
                write!(f, "pattern too expensive (more than {budget} steps)")
            }
        }
    }
}

impl std::error::Error for PatternError {}

fn lua_err<T>(msg: impl Into<String>) -> Result<T, PatternError> {
    Err(PatternError::Lua(msg.into()))
}

/// One capture of a successful match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capture {
    /// A substring: byte range `start..end` of the subject.
    Text(usize, usize),
    /// A position capture `()`: the 1-based position, as Lua gives it.
    Position(usize),
}

/// A successful match: the 0-based byte range of the whole match and the
/// captures (the whole match when the pattern has none, as `string.match`
/// returns; empty for `find`, which returns positions instead).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    /// First byte of the match.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
    /// The captures.
    pub captures: Vec<Capture>,
}

/// The matcher's state over one subject and one pattern (`MatchState`).
struct Matcher<'a> {
    src: &'a [u8],
    pat: &'a [u8],
    level: usize,
    capture: [(usize, isize); MAX_CAPTURES],
    depth: usize,
    left: u64,
    budget: u64,
}

/// Lua's character classes in the "C" locale.
fn match_class(c: u8, cl: u8) -> bool {
    let res = match cl.to_ascii_lowercase() {
        b'a' => c.is_ascii_alphabetic(),
        b'c' => c.is_ascii_control(),
        b'd' => c.is_ascii_digit(),
        b'g' => c.is_ascii_graphic(),
        b'l' => c.is_ascii_lowercase(),
        b'p' => c.is_ascii_punctuation(),
        b's' => c == b' ' || (b'\t'..=b'\r').contains(&c),
        b'u' => c.is_ascii_uppercase(),
        b'w' => c.is_ascii_alphanumeric(),
        b'x' => c.is_ascii_hexdigit(),
        // Deprecated in 5.2 but still in 5.4's matcher.
        b'z' => c == 0,
        // Not a class: the escaped character stands for itself.
        _ => return cl == c,
    };
    if cl.is_ascii_uppercase() {
        !res
    } else {
        res
    }
}

impl<'a> Matcher<'a> {
    fn new(src: &'a [u8], pat: &'a [u8], budget: u64) -> Self {
        Matcher {
            src,
            pat,
            level: 0,
            capture: [(0, 0); MAX_CAPTURES],
            depth: MAX_DEPTH,
            left: budget,
            budget,
        }
    }

    /// Prepares for a new match attempt; the budget carries over.
    fn reset(&mut self) {
        self.level = 0;
        self.depth = MAX_DEPTH;
    }

    /// The pattern byte at `i`, or 0 past the end (Lua's strings end with a
    /// NUL that the C matcher reads there).
    fn p(&self, i: usize) -> u8 {
        self.pat.get(i).copied().unwrap_or(0)
    }

    fn charge(&mut self, n: u64) -> Result<(), PatternError> {
        if self.left < n {
            self.left = 0;
            return Err(PatternError::TooExpensive { budget: self.budget });
        }
        self.left -= n;
        Ok(())
    }

    /// The end of the single-character class starting at `p`.
    fn class_end(&self, mut p: usize) -> Result<usize, PatternError> {
        let c = self.p(p);
        p += 1;
        match c {
            ESC => {
                if p >= self.pat.len() {
                    return lua_err("malformed pattern (ends with '%')");
                }
                Ok(p + 1)
            }
            b'[' => {
                if self.p(p) == b'^' {
                    p += 1;
                }
                // The first character is part of the set even if it is ']'.
                loop {
                    if p >= self.pat.len() {
                        return lua_err("malformed pattern (missing ']')");
                    }
                    let c = self.pat[p];
                    p += 1;
                    if c == ESC && p < self.pat.len() {
                        p += 1;
                    }
                    if self.p(p) == b']' {
                        break;
                    }
                }
                Ok(p + 1)
            }
            _ => Ok(p),
        }
    }

    /// Whether `c` is in the set `[...]` from `p` (the '[') to `ec` (the ']').
    fn match_bracket(&self, c: u8, mut p: usize, ec: usize) -> bool {
        let mut sig = true;
        if self.p(p + 1) == b'^' {
            sig = false;
            p += 1;
        }
        loop {
            p += 1;
            if p >= ec {
                break;
            }
            let pc = self.pat[p];
            if pc == ESC {
                p += 1;
                if match_class(c, self.p(p)) {
                    return sig;
                }
            } else if self.p(p + 1) == b'-' && p + 2 < ec {
                p += 2;
                if self.pat[p - 2] <= c && c <= self.pat[p] {
                    return sig;
                }
            } else if pc == c {
                return sig;
            }
        }
        !sig
    }

    /// Whether the subject byte at `s` matches the class from `p` to `ep`.
    fn single_match(&self, s: usize, p: usize, ep: usize) -> bool {
        let Some(&c) = self.src.get(s) else {
            return false;
        };
        match self.pat[p] {
            b'.' => true,
            ESC => match_class(c, self.p(p + 1)),
            b'[' => self.match_bracket(c, p, ep - 1),
            pc => pc == c,
        }
    }

    /// Matches the pattern from `p` at subject position `s`; the end of the
    /// match, or `None`.
    fn do_match(&mut self, s: usize, p: usize) -> Result<Option<usize>, PatternError> {
        if self.depth == 0 {
            return lua_err("pattern too complex");
        }
        self.depth -= 1;
        let r = self.match_here(s, p);
        self.depth += 1;
        r
    }

    /// The body of [`Self::do_match`]; tail positions loop instead of
    /// recursing, as Lua's `goto init` does, so the depth limit is reached on
    /// the same patterns.
    fn match_here(&mut self, mut s: usize, mut p: usize) -> Result<Option<usize>, PatternError> {
        loop {
            self.charge(1)?;
            if p >= self.pat.len() {
                return Ok(Some(s));
            }
            match self.pat[p] {
                b'(' => {
                    return if self.p(p + 1) == b')' {
                        self.start_capture(s, p + 2, CAP_POSITION)
                    } else {
                        self.start_capture(s, p + 1, CAP_UNFINISHED)
                    };
                }
                b')' => return self.end_capture(s, p + 1),
                b'$' if p + 1 == self.pat.len() => {
                    return Ok((s == self.src.len()).then_some(s));
                }
                ESC if self.p(p + 1) == b'b' => match self.match_balance(s, p + 2)? {
                    Some(e) => {
                        s = e;
                        p += 4;
                    }
                    None => return Ok(None),
                },
                ESC if self.p(p + 1) == b'f' => {
                    p += 2;
                    if self.p(p) != b'[' {
                        return lua_err("missing '[' after '%f' in pattern");
                    }
                    let ep = self.class_end(p)?;
                    let previous = if s == 0 { 0 } else { self.src[s - 1] };
                    let current = self.src.get(s).copied().unwrap_or(0);
                    if !self.match_bracket(previous, p, ep - 1)
                        && self.match_bracket(current, p, ep - 1)
                    {
                        p = ep;
                    } else {
                        return Ok(None);
                    }
                }
                ESC if self.p(p + 1).is_ascii_digit() => {
                    match self.match_capture(s, self.p(p + 1))? {
                        Some(e) => {
                            s = e;
                            p += 2;
                        }
                        None => return Ok(None),
                    }
                }
                _ => {
                    let ep = self.class_end(p)?;
                    let suffix = self.p(ep);
                    if !self.single_match(s, p, ep) {
                        if matches!(suffix, b'*' | b'?' | b'-') {
                            // Accepts the empty match.
                            p = ep + 1;
                            continue;
                        }
                        return Ok(None);
                    }
                    match suffix {
                        b'?' => {
                            if let Some(e) = self.do_match(s + 1, ep + 1)? {
                                return Ok(Some(e));
                            }
                            p = ep + 1;
                        }
                        b'+' => return self.max_expand(s + 1, p, ep),
                        b'*' => return self.max_expand(s, p, ep),
                        b'-' => return self.min_expand(s, p, ep),
                        _ => {
                            s += 1;
                            p = ep;
                        }
                    }
                }
            }
        }
    }

    fn max_expand(&mut self, s: usize, p: usize, ep: usize) -> Result<Option<usize>, PatternError> {
        let mut i = 0;
        while self.single_match(s + i, p, ep) {
            self.charge(1)?;
            i += 1;
        }
        loop {
            if let Some(e) = self.do_match(s + i, ep + 1)? {
                return Ok(Some(e));
            }
            if i == 0 {
                return Ok(None);
            }
            i -= 1;
        }
    }

    fn min_expand(
        &mut self,
        mut s: usize,
        p: usize,
        ep: usize,
    ) -> Result<Option<usize>, PatternError> {
        loop {
            if let Some(e) = self.do_match(s, ep + 1)? {
                return Ok(Some(e));
            }
            if self.single_match(s, p, ep) {
                s += 1;
            } else {
                return Ok(None);
            }
        }
    }

    fn start_capture(
        &mut self,
        s: usize,
        p: usize,
        what: isize,
    ) -> Result<Option<usize>, PatternError> {
        if self.level >= MAX_CAPTURES {
            return lua_err("too many captures");
        }
        self.capture[self.level] = (s, what);
        self.level += 1;
        let r = self.do_match(s, p)?;
        if r.is_none() {
            self.level -= 1;
        }
        Ok(r)
    }

    fn end_capture(&mut self, s: usize, p: usize) -> Result<Option<usize>, PatternError> {
        let Some(l) = (0..self.level).rev().find(|&l| self.capture[l].1 == CAP_UNFINISHED) else {
            return lua_err("invalid pattern capture");
        };
        self.capture[l].1 = (s - self.capture[l].0) as isize;
        let r = self.do_match(s, p)?;
        if r.is_none() {
            self.capture[l].1 = CAP_UNFINISHED;
        }
        Ok(r)
    }

    fn match_balance(&mut self, s: usize, p: usize) -> Result<Option<usize>, PatternError> {
        if p + 1 >= self.pat.len() {
            return lua_err("malformed pattern (missing arguments to '%b')");
        }
        if self.src.get(s) != Some(&self.pat[p]) {
            return Ok(None);
        }
        let (open, close) = (self.pat[p], self.pat[p + 1]);
        let mut depth = 1u64;
        for i in s + 1..self.src.len() {
            self.charge(1)?;
            let c = self.src[i];
            if c == close {
                depth -= 1;
                if depth == 0 {
                    return Ok(Some(i + 1));
                }
            } else if c == open {
                depth += 1;
            }
        }
        Ok(None)
    }

    /// The index of back-reference `%l` (`l` is the digit character).
    fn check_capture(&self, l: u8) -> Result<usize, PatternError> {
        let l = i32::from(l) - i32::from(b'1');
        if l < 0 || l as usize >= self.level || self.capture[l as usize].1 == CAP_UNFINISHED {
            return lua_err(format!("invalid capture index %{}", l + 1));
        }
        Ok(l as usize)
    }

    fn match_capture(&mut self, s: usize, l: u8) -> Result<Option<usize>, PatternError> {
        let l = self.check_capture(l)?;
        let (init, len) = self.capture[l];
        // A position capture has no text: Lua compares with a huge length
        // and fails.
        let Ok(len) = usize::try_from(len) else {
            return Ok(None);
        };
        self.charge(len as u64)?;
        if self.src.len() - s >= len && self.src[init..init + len] == self.src[s..s + len] {
            Ok(Some(s + len))
        } else {
            Ok(None)
        }
    }

    /// Capture `i` of the match `s..e` (`get_onecapture`).
    fn one_capture(&self, i: usize, s: usize, e: usize) -> Result<Capture, PatternError> {
        if i >= self.level {
            if i != 0 {
                return lua_err(format!("invalid capture index %{}", i + 1));
            }
            return Ok(Capture::Text(s, e));
        }
        let (init, len) = self.capture[i];
        match len {
            CAP_UNFINISHED => lua_err("unfinished capture"),
            CAP_POSITION => Ok(Capture::Position(init + 1)),
            len => Ok(Capture::Text(init, init + len as usize)),
        }
    }

    /// All captures (`push_captures`); `whole` is the match, given when the
    /// whole match stands in for a pattern without captures.
    fn captures(&self, whole: Option<(usize, usize)>) -> Result<Vec<Capture>, PatternError> {
        let n = if self.level == 0 && whole.is_some() { 1 } else { self.level };
        let (s, e) = whole.unwrap_or((0, 0));
        (0..n).map(|i| self.one_capture(i, s, e)).collect()
    }
}

/// Lua's `posrelatI`: a 1-based start position from `init`, clipped to 1.
fn start_position(init: Integer, len: usize) -> usize {
    if init > 0 {
        usize::try_from(init).unwrap_or(usize::MAX)
    } else if init == 0 || init.unsigned_abs() > len as u64 {
        1
    } else {
        len - init.unsigned_abs() as usize + 1
    }
}

/// `string.find` (`find` true: positions then captures) and `string.match`
/// (captures, or the whole match) on bytes: 0-based range in [`Match`].
///
/// `init` is Lua's third argument (1-based, negative from the end); `plain`
/// is `find`'s fourth. `None` when nothing matches.
pub fn find(
    subject: &[u8],
    pattern: &[u8],
    init: Integer,
    plain: bool,
    find: bool,
    budget: u64,
) -> Result<Option<Match>, PatternError> {
    let init = start_position(init, subject.len()) - 1;
    if init > subject.len() {
        return Ok(None);
    }
    if find && (plain || !pattern.iter().any(|c| SPECIALS.contains(c))) {
        let found = if pattern.is_empty() {
            Some(0)
        } else {
            memchr::memmem::find(&subject[init..], pattern)
        };
        return Ok(found.map(|at| Match {
            start: init + at,
            end: init + at + pattern.len(),
            captures: Vec::new(),
        }));
    }
    let (anchor, pattern) = match pattern.strip_prefix(b"^") {
        Some(rest) => (true, rest),
        None => (false, pattern),
    };
    let mut m = Matcher::new(subject, pattern, budget);
    let mut s = init;
    loop {
        m.reset();
        m.charge(1)?;
        if let Some(e) = m.do_match(s, 0)? {
            let captures = if find { m.captures(None)? } else { m.captures(Some((s, e)))? };
            return Ok(Some(Match { start: s, end: e, captures }));
        }
        s += 1;
        if anchor || s > subject.len() {
            return Ok(None);
        }
    }
}

// ---------------------------------------------------------------------------
// The Lua functions.

/// Raises errors at the caller's level: the Rust functions return `true,
/// results...` or `false, message, level`.
const WRAPPER: &str = r#"
local impl_find, impl_match, impl_gmatch, impl_gsub = ...
local error = error
local function check(ok, ...)
  if ok then return ... end
  error(...)
end
local function find(...) return check(impl_find(...)) end
local function match(...) return check(impl_match(...)) end
local function gsub(...) return check(impl_gsub(...)) end
local function gmatch(...)
  local step = check(impl_gmatch(...))
  return function() return check(step()) end
end
return find, match, gmatch, gsub
"#;

/// A failure raised as a Lua error with the caller's position (level 2 from
/// `check`, which the wrappers tail-call).
fn fail(lua: &Lua, msg: &str, level: Integer) -> mlua::Result<MultiValue> {
    Ok(MultiValue::from_iter([
        Value::Boolean(false),
        Value::String(lua.create_string(msg)?),
        Value::Integer(level),
    ]))
}

fn ok(values: impl IntoIterator<Item = Value>) -> MultiValue {
    let mut mv = MultiValue::from_iter(values);
    mv.push_front(Value::Boolean(true));
    mv
}

/// A Lua type name for argument errors ("no value" for a missing one).
fn type_name(v: Option<&Value>) -> &'static str {
    match v {
        None => "no value",
        Some(v) => v.type_name(),
    }
}

/// Argument `i` (0-based) as a string, numbers converted (`luaL_checklstring`).
fn check_string(
    lua: &Lua,
    args: &MultiValue,
    i: usize,
    fname: &str,
) -> Result<mlua::LuaString, String> {
    let v = args.get(i);
    if let Some(v) = v {
        if let Ok(Some(s)) = lua.coerce_string(v.clone()) {
            return Ok(s);
        }
    }
    Err(format!("bad argument #{} to '{fname}' (string expected, got {})", i + 1, type_name(v)))
}

/// Argument `i` (0-based) as an integer, or `default` (`luaL_optinteger`).
fn opt_integer(
    lua: &Lua,
    args: &MultiValue,
    i: usize,
    fname: &str,
    default: Integer,
) -> Result<Integer, String> {
    match args.get(i) {
        None | Some(Value::Nil) => Ok(default),
        Some(v) => match lua.coerce_integer(v.clone()) {
            Ok(Some(n)) => Ok(n),
            _ => {
                let detail = if matches!(lua.coerce_number(v.clone()), Ok(Some(_))) {
                    "number has no integer representation".to_string()
                } else {
                    format!("number expected, got {}", v.type_name())
                };
                Err(format!("bad argument #{} to '{fname}' ({detail})", i + 1))
            }
        },
    }
}

/// A capture as a Lua value.
fn capture_value(lua: &Lua, subject: &[u8], c: Capture) -> mlua::Result<Value> {
    Ok(match c {
        Capture::Text(s, e) => Value::String(lua.create_string(&subject[s..e])?),
        Capture::Position(p) => Value::Integer(p as Integer),
    })
}

fn find_or_match(
    lua: &Lua,
    args: MultiValue,
    is_find: bool,
    budget: u64,
) -> mlua::Result<MultiValue> {
    let fname = if is_find { "find" } else { "match" };
    let (s, p, init) = match (|| {
        let s = check_string(lua, &args, 0, fname)?;
        let p = check_string(lua, &args, 1, fname)?;
        let init = opt_integer(lua, &args, 2, fname, 1)?;
        Ok::<_, String>((s, p, init))
    })() {
        Ok(v) => v,
        Err(msg) => return fail(lua, &msg, 2),
    };
    let plain =
        is_find && args.get(3).is_some_and(|v| !matches!(v, Value::Nil | Value::Boolean(false)));
    let (subject, pattern) = (s.as_bytes(), p.as_bytes());
    let (subject, pattern): (&[u8], &[u8]) = (&subject, &pattern);
    match find(subject, pattern, init, plain, is_find, budget) {
        Err(e) => fail(lua, &e.to_string(), 2),
        Ok(None) => Ok(ok([Value::Nil])),
        Ok(Some(m)) => {
            let mut out = Vec::with_capacity(m.captures.len() + 2);
            if is_find {
                out.push(Value::Integer(m.start as Integer + 1));
                out.push(Value::Integer(m.end as Integer));
            }
            for c in m.captures {
                out.push(capture_value(lua, subject, c)?);
            }
            Ok(ok(out))
        }
    }
}

fn gmatch(lua: &Lua, args: MultiValue, budget: u64) -> mlua::Result<MultiValue> {
    let (s, p, init) = match (|| {
        let s = check_string(lua, &args, 0, "gmatch")?;
        let p = check_string(lua, &args, 1, "gmatch")?;
        let init = opt_integer(lua, &args, 2, "gmatch", 1)?;
        Ok::<_, String>((s, p, init))
    })() {
        Ok(v) => v,
        // Level 3: `check` is called, not tail-called, inside `gmatch`.
        Err(msg) => return fail(lua, &msg, 3),
    };
    let len = s.as_bytes().len();
    // Past the end: Lua starts at len + 1 and then finds nothing.
    let start = (start_position(init, len) - 1).min(len + 1);
    let pos = std::cell::Cell::new(start);
    let last: std::cell::Cell<Option<usize>> = std::cell::Cell::new(None);
    let step = lua.create_function(move |lua, ()| {
        let (subject, pattern) = (s.as_bytes(), p.as_bytes());
        let (subject, pattern): (&[u8], &[u8]) = (&subject, &pattern);
        let mut m = Matcher::new(subject, pattern, budget);
        let mut src = pos.get();
        while src <= subject.len() {
            m.reset();
            let attempt = m.charge(1).and_then(|()| m.do_match(src, 0));
            match attempt {
                Err(e) => return fail(lua, &e.to_string(), 2),
                Ok(Some(e)) if Some(e) != last.get() => {
                    pos.set(e);
                    last.set(Some(e));
                    let caps = match m.captures(Some((src, e))) {
                        Ok(c) => c,
                        Err(e) => return fail(lua, &e.to_string(), 2),
                    };
                    let values = caps
                        .into_iter()
                        .map(|c| capture_value(lua, subject, c))
                        .collect::<mlua::Result<Vec<_>>>()?;
                    return Ok(ok(values));
                }
                Ok(_) => src += 1,
            }
        }
        pos.set(src);
        Ok(ok([]))
    })?;
    Ok(ok([Value::Function(step)]))
}

/// What `gsub` replaces each match with.
enum Replacement {
    Text(Vec<u8>),
    Table(Table),
    Function(Function),
}

/// Appends the replacement string for the match `s..e` (`add_s`).
fn add_text(
    m: &Matcher<'_>,
    out: &mut Vec<u8>,
    repl: &[u8],
    s: usize,
    e: usize,
) -> Result<(), PatternError> {
    let mut i = 0;
    while let Some(at) = memchr::memchr(ESC, &repl[i..]) {
        out.extend_from_slice(&repl[i..i + at]);
        let c = repl.get(i + at + 1).copied().unwrap_or(0);
        if c == ESC {
            out.push(ESC);
        } else if c == b'0' {
            out.extend_from_slice(&m.src[s..e]);
        } else if c.is_ascii_digit() {
            match m.one_capture(usize::from(c - b'1'), s, e)? {
                Capture::Text(a, b) => out.extend_from_slice(&m.src[a..b]),
                Capture::Position(p) => out.extend_from_slice(p.to_string().as_bytes()),
            }
        } else {
            return lua_err("invalid use of '%' in replacement string");
        }
        i += at + 2;
    }
    out.extend_from_slice(&repl[i.min(repl.len())..]);
    Ok(())
}

/// How one `gsub` step ended when it did not simply continue.
enum GsubStop {
    Pattern(PatternError),
    Message(String),
    Raised(Value),
    Lua(mlua::Error),
}

impl From<PatternError> for GsubStop {
    fn from(e: PatternError) -> Self {
        GsubStop::Pattern(e)
    }
}

impl From<mlua::Error> for GsubStop {
    fn from(e: mlua::Error) -> Self {
        GsubStop::Lua(e)
    }
}

fn gsub(lua: &Lua, protect: &Protect, args: MultiValue, budget: u64) -> mlua::Result<MultiValue> {
    let parsed = (|| {
        let s = check_string(lua, &args, 0, "gsub")?;
        let p = check_string(lua, &args, 1, "gsub")?;
        let repl = match args.get(2) {
            Some(Value::Table(t)) => Replacement::Table(t.clone()),
            Some(Value::Function(f)) => Replacement::Function(f.clone()),
            Some(v @ (Value::String(_) | Value::Integer(_) | Value::Number(_))) => {
                match lua.coerce_string(v.clone()) {
                    Ok(Some(r)) => Replacement::Text(r.as_bytes().to_vec()),
                    _ => {
                        return Err("bad argument #3 to 'gsub' (string/function/table expected)"
                            .to_string())
                    }
                }
            }
            other => {
                return Err(format!(
                    "bad argument #3 to 'gsub' (string/function/table expected, got {})",
                    type_name(other)
                ))
            }
        };
        let len = s.as_bytes().len() as Integer;
        let max = opt_integer(lua, &args, 3, "gsub", len.saturating_add(1))?;
        Ok::<_, String>((s, p, repl, max))
    })();
    let (s, p, repl, max) = match parsed {
        Ok(v) => v,
        Err(msg) => return fail(lua, &msg, 2),
    };
    let (subject, pattern) = (s.as_bytes(), p.as_bytes());
    let (subject, pattern): (&[u8], &[u8]) = (&subject, &pattern);
    let (anchor, pattern) = match pattern.strip_prefix(b"^") {
        Some(rest) => (true, rest),
        None => (false, pattern),
    };
    let mut m = Matcher::new(subject, pattern, budget);
    let mut out = Vec::new();
    let mut src = 0usize;
    let mut last = None;
    let mut n: Integer = 0;
    let mut changed = false;
    let result = (|| -> Result<(), GsubStop> {
        while n < max {
            m.reset();
            m.charge(1)?;
            match m.do_match(src, 0)? {
                Some(e) if Some(e) != last => {
                    n += 1;
                    let before = out.len();
                    changed |= add_value(lua, protect, &m, &mut out, &repl, src, e)?;
                    m.charge((out.len() - before) as u64)?;
                    src = e;
                    last = Some(e);
                }
                _ if src < subject.len() => {
                    m.charge(1)?;
                    out.push(subject[src]);
                    src += 1;
                }
                _ => break,
            }
            if anchor {
                break;
            }
        }
        Ok(())
    })();
    match result {
        Ok(()) => {}
        Err(GsubStop::Pattern(e)) => return fail(lua, &e.to_string(), 2),
        Err(GsubStop::Message(msg)) => return fail(lua, &msg, 2),
        // An error from the replacement function or a metamethod goes on
        // as it is (already positioned).
        Err(GsubStop::Raised(value)) => {
            return Ok(MultiValue::from_iter([Value::Boolean(false), value, Value::Integer(0)]))
        }
        Err(GsubStop::Lua(e)) => return Err(e),
    }
    let first = if changed {
        out.extend_from_slice(&subject[src..]);
        Value::String(lua.create_string(&out)?)
    } else {
        // Lua converts its first argument in place: a number comes back as
        // a string.
        Value::String(s.clone())
    };
    Ok(ok([first, Value::Integer(n)]))
}

/// The first result of a `pcall`, or the error value it caught.
fn protected(results: MultiValue) -> Result<Value, GsubStop> {
    let mut results = results.into_iter();
    let ok = matches!(results.next(), Some(Value::Boolean(true)));
    let value = results.next().unwrap_or(Value::Nil);
    if ok {
        Ok(value)
    } else {
        Err(GsubStop::Raised(value))
    }
}

/// Calls into Lua made under `pcall`, so that an error from a replacement
/// function or an `__index` metamethod reaches the script as the very value
/// it raised (a table stays a table, no traceback is added).
#[derive(Clone)]
struct Protect {
    /// `pcall(f, ...)`.
    call: Function,
    /// `pcall(function() return t[k] end)`.
    index: Function,
}

const PROTECT: &str = r#"
local pcall = pcall
local function get(t, k) return t[k] end
return function(f, ...) return pcall(f, ...) end, function(t, k) return pcall(get, t, k) end
"#;

/// Appends the replacement of the match `src..e`; whether it changed the text
/// (`add_value`).
fn add_value(
    lua: &Lua,
    protect: &Protect,
    m: &Matcher<'_>,
    out: &mut Vec<u8>,
    repl: &Replacement,
    s: usize,
    e: usize,
) -> Result<bool, GsubStop> {
    let value = match repl {
        Replacement::Text(r) => {
            add_text(m, out, r, s, e)?;
            return Ok(true);
        }
        Replacement::Table(t) => {
            let key = capture_value(lua, m.src, m.one_capture(0, s, e)?)?;
            protected(protect.index.call::<MultiValue>((t.clone(), key))?)?
        }
        Replacement::Function(f) => {
            let mut args = MultiValue::new();
            args.push_back(Value::Function(f.clone()));
            for c in m.captures(Some((s, e)))? {
                args.push_back(capture_value(lua, m.src, c)?);
            }
            protected(protect.call.call::<MultiValue>(args)?)?
        }
    };
    match value {
        Value::Nil | Value::Boolean(false) => {
            out.extend_from_slice(&m.src[s..e]);
            Ok(false)
        }
        Value::String(_) | Value::Integer(_) | Value::Number(_) => {
            if let Some(text) = lua.coerce_string(value)? {
                out.extend_from_slice(&text.as_bytes());
            }
            Ok(true)
        }
        other => {
            Err(GsubStop::Message(format!("invalid replacement value (a {})", other.type_name())))
        }
    }
}

/// Sets `find`, `match`, `gmatch` and `gsub` on `table` (a string library
/// table for an untrusted script), each call limited to `budget` steps.
pub fn install(lua: &Lua, table: &Table, budget: u64) -> mlua::Result<()> {
    let impl_find =
        lua.create_function(move |lua, args: MultiValue| find_or_match(lua, args, true, budget))?;
    let impl_match =
        lua.create_function(move |lua, args: MultiValue| find_or_match(lua, args, false, budget))?;
    let impl_gmatch =
        lua.create_function(move |lua, args: MultiValue| gmatch(lua, args, budget))?;
    let (call, index): (Function, Function) = lua.load(PROTECT).set_name("=pattern").call(())?;
    let protect = Protect { call, index };
    let impl_gsub =
        lua.create_function(move |lua, args: MultiValue| gsub(lua, &protect, args, budget))?;
    let (f, m, gm, gs): (Function, Function, Function, Function) = lua
        .load(WRAPPER)
        .set_name("=pattern")
        .call((impl_find, impl_match, impl_gmatch, impl_gsub))?;
    table.raw_set("find", f)?;
    table.raw_set("match", m)?;
    table.raw_set("gmatch", gm)?;
    table.raw_set("gsub", gs)?;
    Ok(())
}
