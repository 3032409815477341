//! The step-limited Lua pattern functions (`dclua::lua::pattern`) against
//! Lua's own `string` library in the same plain state: every case must give
//! the same results (values, types, count) or the same error message, for
//! `find`, `match`, `gmatch` and `gsub`; and a catastrophic pattern ends with
//! the budget error instead of running for minutes.

use std::time::{Duration, Instant};

use dclua::lua::pattern::{self, PatternError, DEFAULT_BUDGET};
use mlua::{Function, Lua, Table};

/// Lua helpers: `compare(name, ...)` calls `string[name]` and `safe[name]`
/// with the same arguments under `pcall` and returns nil when both agree, or
/// a description of the difference.
const HARNESS: &str = r#"
local safe = ...
local function show(ok, ...)
  local n = select('#', ...)
  local parts = { tostring(ok), tostring(n) }
  for i = 1, n do
    local v = select(i, ...)
    parts[#parts + 1] = type(v) .. ":" .. tostring(v)
  end
  return table.concat(parts, "|")
end
local function collect(gmatch, ...)
  local out = {}
  for a, b, c in gmatch(...) do
    out[#out + 1] = tostring(a) .. "," .. tostring(b) .. "," .. tostring(c)
    if #out > 100 then break end
  end
  return table.concat(out, ";")
end
-- Not tail calls: a tail call to a C function keeps the caller's frame but
-- one to a Lua function does not, so the error positions (which the safe
-- functions raise from a Lua wrapper) only agree on ordinary calls.
local pack, unpack = table.pack, table.unpack
local calls = {
  find = function(lib, ...) local r = pack(lib.find(...)) return unpack(r, 1, r.n) end,
  match = function(lib, ...) local r = pack(lib.match(...)) return unpack(r, 1, r.n) end,
  gsub = function(lib, ...) local r = pack(lib.gsub(...)) return unpack(r, 1, r.n) end,
  gmatch = function(lib, ...) local r = collect(lib.gmatch, ...) return r end,
}
local function describe(...)
  local parts = {}
  for i = 1, select('#', ...) do
    local v = select(i, ...)
    parts[#parts + 1] = type(v) == "string" and string.format("%q", v) or tostring(v)
  end
  return table.concat(parts, ", ")
end
return function(name, ...)
  local want = show(pcall(calls[name], string, ...))
  local have = show(pcall(calls[name], safe, ...))
  if want ~= have then
    return string.format("%s(%s): lua %s, ours %s", name, describe(...), want, have)
  end
end
"#;

fn setup(budget: u64) -> (Lua, Function) {
    let lua = Lua::new();
    let safe: Table = lua.create_table().expect("a table");
    pattern::install(&lua, &safe, budget).expect("installing the pattern functions");
    lua.globals().set("safe", safe.clone()).expect("setting safe");
    let compare: Function = lua.load(HARNESS).set_name("=harness").call(safe).expect("the harness");
    (lua, compare)
}

/// (subject, pattern, init) cases, each run through find, match, gmatch and
/// gsub.
const CASES: &[(&str, &str, Option<i64>)] = &[
    // Plain text, special characters, init.
    ("hello world", "o", None),
    ("hello world", "o", Some(6)),
    ("hello world", "o", Some(-3)),
    ("hello world", "o", Some(-100)),
    ("hello world", "o", Some(0)),
    ("hello world", "o", Some(100)),
    ("hello world", "", Some(12)),
    ("hello world", "", Some(13)),
    ("hello world", "", None),
    ("", "", None),
    ("", "a*", None),
    ("hello", "l+", None),
    ("a.b", ".", None),
    ("a.b", "%.", None),
    ("a+b", "a+b", None),
    ("a+b", "a%+b", None),
    // Classes and complements.
    ("Hello World 123!", "%a+", None),
    ("Hello World 123!", "%A+", None),
    ("Hello World 123!", "%d+", None),
    ("Hello World 123!", "%D+", None),
    ("Hello World 123!", "%l+", None),
    ("Hello World 123!", "%u%l*", None),
    ("Hello World 123!", "%U+", None),
    ("Hello World 123!", "%p", None),
    ("Hello World 123!", "%P+", None),
    ("Hello World 123!", "%s", None),
    ("Hello World 123!", "%S+", None),
    ("Hello World 123!", "%w+", None),
    ("Hello World 123!", "%W", None),
    ("0x1F zz", "%x+", None),
    ("0x1F zz", "%X+", None),
    ("tab\there\0nul", "%c", None),
    ("tab\there\0nul", "%C+", None),
    ("tab\there\0nul", "%g+", None),
    ("tab\there\0nul", "%G", None),
    ("a\0b", "%z", None),
    ("a\0b", "\0", None),
    ("a\0b", "[\0]", None),
    ("x%y", "%%", None),
    ("\u{e9}t\u{e9}", "%a+", None),
    ("\u{e9}t\u{e9}", "[\u{80}-\u{ff}]+", None),
    // Sets.
    ("abc123", "[a-c]+", None),
    ("abc123", "[^a-c]+", None),
    ("abc-123", "[a-]+", None),
    ("abc-123", "[-a]+", None),
    ("a]b", "[]]", None),
    ("a]b", "[^]]+", None),
    ("a^b", "[b^]+", None),
    ("a%b", "[%%]", None),
    ("a]b", "[%]]", None),
    ("x1 y2", "[%a%d]+", None),
    ("x1 y2", "[%s]", None),
    ("x-z", "[x-]", None),
    ("z", "[a-]", None),
    // Repetitions.
    ("aaab", "a*", None),
    ("aaab", "a-b", None),
    ("aaab", "a-", None),
    ("aaab", "a?a?a?a?b", None),
    ("aaab", "ba*", None),
    ("<a><b>", "<.->", None),
    ("<a><b>", "<.*>", None),
    ("key = value", "(%w+)%s*=%s*(%w+)", None),
    ("  trim me  ", "^%s*(.-)%s*$", None),
    // Anchors.
    ("hello", "^h", None),
    ("hello", "^e", None),
    ("hello", "^e", Some(2)),
    ("hello", "o$", None),
    ("hello", "l$", None),
    ("a$b", "$b", None),
    ("a$b", "a$", None),
    ("a^b", "a^b", None),
    ("hello", "^", None),
    ("hello", "$", None),
    // Captures.
    ("hello world", "(o)(r)", None),
    ("hello world", "()o()", None),
    ("hello world", "(h)(e)(l)(l)(o)", None),
    ("hello world", "((l)(l))", None),
    ("hello", "()", None),
    ("hello", "()", Some(3)),
    ("hello", "(", None),
    ("hello", "(()", None),
    ("hello", ")", None),
    ("hello", "(h))", None),
    ("hello", "%1", None),
    ("hello", "(l)%1", None),
    ("hello", "(l)%2", None),
    ("hello", "(l%1)", None),
    ("hello", "()%1", None),
    ("hello", "%0", None),
    ("say \"hi\" and 'yo'", "([\"'])(.-)%1", None),
    // Balance and frontier.
    ("f(a(b)c) d", "%b()", None),
    ("f(a(b c) d", "%b()", None),
    ("[[x]]", "%b[]", None),
    ("xx", "%bxx", None),
    ("THE (quick) fox", "%f[%a]%a+", None),
    ("THE (quick) fox", "%f[%a]%a+%f[%A]", None),
    ("hello", "%f[%l]", None),
    ("hello", "%f[%z]", None),
    ("hello", "%f[^%l]", None),
    ("hello", "%b", None),
    ("hello", "%bx", None),
    ("hello", "%f", None),
    ("hello", "%fx", None),
    ("hello", "%f[a", None),
    // Malformed patterns.
    ("hello", "%", None),
    ("hello", "[a", None),
    ("hello", "[", None),
    ("hello", "[^", None),
    ("hello", "[%", None),
    ("hello", "[a%]", None),
    ("hello", "a%", None),
];

#[test]
fn the_case_table_agrees_with_lua() {
    let (lua, compare) = setup(DEFAULT_BUDGET);
    let mut failures = Vec::new();
    for &(s, p, init) in CASES {
        for name in ["find", "match", "gmatch"] {
            let diff: Option<String> = compare.call((name, s, p, init)).expect("comparing");
            failures.extend(diff);
        }
        let diff: Option<String> =
            compare.call(("find", s, p, init, true)).expect("comparing plain");
        failures.extend(diff);
        for repl in ["<%0>", "%1-%1", "%%", "%", "%x", "x%2"] {
            let diff: Option<String> = compare.call(("gsub", s, p, repl)).expect("comparing gsub");
            failures.extend(diff);
        }
    }
    // Too many captures and a pattern too deep for Lua's recursion limit.
    let many = "(.)".repeat(33);
    let deep = "a?".repeat(300);
    let subject = "a".repeat(300);
    for (s, p) in [(subject.as_str(), many.as_str()), (subject.as_str(), deep.as_str())] {
        let diff: Option<String> = compare.call(("match", s, p)).expect("comparing");
        failures.extend(diff);
    }
    drop(lua);
    assert!(failures.is_empty(), "{} differences:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn gsub_and_gmatch_agree_with_lua() {
    let (lua, _) = setup(DEFAULT_BUDGET);
    let script = r#"
        local compare = ...
        local failures = {}
        local function check(...)
          local d = compare(...)
          if d then failures[#failures + 1] = d end
        end
        local upper = function(s) return s:upper() end
        local pair = function(a, b) return b .. a end
        local nothing = function() return nil end
        local falsy = function() return false end
        local number = function() return 42.5 end
        local bad = function() return {} end
        local raises = function() error("from the callback") end
        local map = { hello = "HI", world = 7, [2] = "two" }
        check("gsub", "hello world", "%w+", upper)
        check("gsub", "hello world", "(%w+) (%w+)", pair)
        check("gsub", "hello world", "%w+", nothing)
        check("gsub", "hello world", "%w+", falsy)
        check("gsub", "hello world", "%w+", number)
        check("gsub", "hello world", "%w+", bad)
        check("gsub", "hello world", "%w+", map)
        check("gsub", "hello world", "()ll", map)
        check("gsub", "hello world", "(o)", map)
        check("gsub", "hello world", "o", "0", 1)
        check("gsub", "hello world", "o", "0", 0)
        check("gsub", "hello world", "o", "0", -1)
        check("gsub", "hello world", "o", "0", 1.0)
        check("gsub", "hello world", "o", "0", 1.5)
        check("gsub", "hello world", "o", "0", "2")
        check("gsub", "hello world", "o", "0", "x")
        check("gsub", "hello world", "", "-")
        check("gsub", "hello world", "x*", "-")
        check("gsub", "hello world", "^h", "H")
        check("gsub", "hello world", "^", ">")
        check("gsub", "hello world", "$", "<")
        check("gsub", "hello world", "()", "%1")
        check("gsub", "hello world", "o", 5)
        check("gsub", "hello world", "o", 0.5)
        check("gsub", "hello world", "o")
        check("gsub", "hello world", "o", true)
        check("gsub", 12345, "3", "x")
        check("gsub", 12345, "9", "x")
        check("gsub", "abc", "%w", "%1%1")
        check("gsub", "abc", "(a)(b)(c)", "%3%2%1%0")
        check("gmatch", "one two  three", "%a+")
        check("gmatch", "k1=v1, k2=v2", "(%w+)=(%w+)")
        check("gmatch", "abc", "")
        check("gmatch", "abc", "x*")
        check("gmatch", "abc", "()")
        check("gmatch", "abc", "^a")
        check("gmatch", "aaa", "a", 2)
        check("gmatch", "aaa", "a", -1)
        check("gmatch", "aaa", "a", 10)
        check("gmatch", "aaa", "(")
        check("gmatch", "aaa", "[")
        check("gmatch", nil, "a")
        check("find", nil, "a")
        check("find", "a", {})
        check("find", "a", "a", "x")
        check("find", 123, 2)
        check("match", "abc", "b", 2.0)
        check("match", "abc", "b", 2.5)
        -- Errors from the callback keep their message.
        local ok1, e1 = pcall(string.gsub, "abc", "b", raises)
        local ok2, e2 = pcall(safe.gsub, "abc", "b", raises)
        if ok1 ~= ok2 or tostring(e1) ~= tostring(e2) then
          failures[#failures + 1] = "callback error: " .. tostring(e1) .. " vs " .. tostring(e2)
        end
        local the_error = {}
        local ok3, e3 = pcall(safe.gsub, "abc", "b", function() error(the_error) end)
        if ok3 or e3 ~= the_error then failures[#failures + 1] = "a table error was not kept" end
        local ok4, e4 = pcall(safe.gsub, "abc", "b", setmetatable({}, { __index = raises }))
        if ok4 or not tostring(e4):find("from the callback", 1, true) then
          failures[#failures + 1] = "an __index error was not kept: " .. tostring(e4)
        end
        -- The error position is the caller's, as for the C functions.
        local _, p1 = pcall(function() local r = string.find("a", "%") return r end) local _, p2 = pcall(function() local r = safe.find("a", "%") return r end)
        if p1 ~= p2 then failures[#failures + 1] = "position: " .. p1 .. " vs " .. p2 end
        local _, g1 = pcall(function() for _ in string.gmatch("a", "%") do end end) local _, g2 = pcall(function() for _ in safe.gmatch("a", "%") do end end)
        if g1 ~= g2 then failures[#failures + 1] = "gmatch position: " .. g1 .. " vs " .. g2 end
        -- A method call on a string with the safe table as the string metatable's index.
        return failures
    "#;
    let compare: Function = lua
        .load(HARNESS)
        .set_name("=harness")
        .call(lua.globals().get::<Table>("safe").expect("safe"))
        .expect("the harness");
    let failures: Vec<String> =
        lua.load(script).set_name("=cases").call(compare).expect("the gsub cases");
    assert!(failures.is_empty(), "{} differences:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn random_patterns_agree_with_lua() {
    // A fixed-seed generator: patterns of up to five pieces from a set that
    // mixes every feature with malformed ones, on short subjects, so that
    // Lua's own matcher stays fast and every error path is reached.
    let (_lua, compare) = setup(DEFAULT_BUDGET);
    let pieces = [
        "a", "b", ".", "%a", "%d", "%s", "[ab]", "[^a]", "[a-c]", "a*", "b+", "a-", "a?", ".-",
        ".*", "%w*", "(", ")", "()", "(a)", "(.-)", "%1", "%2", "^", "$", "%b()", "%f[%w]",
        "%f[%W]", "[", "]", "%", "%%", "x", "[%a-]", "%.", "[]]",
    ];
    let alphabet = b"ab(c) 1x.-";
    let mut seed: u64 = 0x5eed_1234_abcd_ef01;
    let mut next = |n: usize| {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        ((seed >> 33) % n as u64) as usize
    };
    let mut failures = Vec::new();
    for _ in 0..4000 {
        let count = 1 + next(5);
        let p: String = (0..count).map(|_| pieces[next(pieces.len())]).collect();
        let len = next(11);
        let s: String = (0..len).map(|_| alphabet[next(alphabet.len())] as char).collect();
        let init = [None, Some(1), Some(2), Some(-2), Some(0)][next(5)];
        for name in ["find", "match", "gmatch"] {
            let diff: Option<String> =
                compare.call((name, s.as_str(), p.as_str(), init)).expect("comparing");
            failures.extend(diff);
        }
        let diff: Option<String> =
            compare.call(("gsub", s.as_str(), p.as_str(), "[%0%1]")).expect("comparing gsub");
        failures.extend(diff);
    }
    failures.truncate(30);
    assert!(failures.is_empty(), "differences (first 30):\n{}", failures.join("\n"));
}

#[test]
fn a_catastrophic_pattern_ends_with_the_budget_error() {
    let (lua, _) = setup(DEFAULT_BUDGET);
    let started = Instant::now();
    let result: mlua::Result<mlua::Value> =
        lua.load(r#"return safe.find(("a"):rep(40), ("a*"):rep(25) .. "b")"#).eval();
    let elapsed = started.elapsed();
    let err = result.expect_err("the catastrophic pattern must fail").to_string();
    assert!(err.contains("pattern too expensive"), "unexpected error: {err}");
    assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}");
    // The same through gsub and gmatch, and a scriptable message under pcall.
    let msg: String = lua
        .load(
            r#"
            local s, p = ("a"):rep(40), ("a*"):rep(25) .. "b"
            local ok1, e1 = pcall(safe.gsub, s, p, "x")
            local ok2, e2 = pcall(function() for _ in safe.gmatch(s, p) do end end)
            assert(not ok1 and not ok2)
            assert(e1:find("pattern too expensive", 1, true), e1)
            return e2
            "#,
        )
        .eval()
        .expect("pcall catches the budget error");
    assert!(msg.contains("pattern too expensive"), "{msg}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn gsub_output_counts_against_the_budget() {
    // A replacement that multiplies the subject cannot build an unbounded
    // buffer outside Lua's memory limit.
    let (lua, _) = setup(1_000_000);
    let err = lua
        .load(r#"return safe.gsub(("x"):rep(1000), "", ("y"):rep(10000))"#)
        .eval::<mlua::Value>()
        .expect_err("the output is bounded")
        .to_string();
    assert!(err.contains("pattern too expensive"), "{err}");
    // Ordinary work stays well within the default budget.
    let n: i64 = lua
        .load(r#"local _, n = safe.gsub(("word "):rep(20000), "%w+", "%0%0") return n"#)
        .eval()
        .expect("an ordinary gsub");
    assert_eq!(n, 20000);
}

#[test]
fn the_rust_api_reports_positions_and_errors() {
    let m = pattern::find(b"key=value", b"(%w+)=()", 1, false, false, DEFAULT_BUDGET)
        .expect("a valid pattern")
        .expect("a match");
    assert_eq!((m.start, m.end), (0, 4));
    assert_eq!(m.captures, vec![pattern::Capture::Text(0, 3), pattern::Capture::Position(5)]);
    assert_eq!(
        pattern::find(b"x", b"[a", 1, false, true, DEFAULT_BUDGET),
        Err(PatternError::Lua("malformed pattern (missing ']')".into()))
    );
    assert_eq!(
        pattern::find(&[b'a'; 40], b"a*a*a*a*a*a*a*a*a*a*a*a*b", 1, false, true, 1000),
        Err(PatternError::TooExpensive { budget: 1000 })
    );
}
