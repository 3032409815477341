//! The step-limited pattern matcher untrusted scripts get
//! (`dclua::lua::pattern`) next to Lua's own C matcher, in one run:
//! `cargo bench --bench lua_pattern`.
//!
//! Prints the time of ordinary patterns (find + match + gmatch + gsub on a
//! chat line) through both and their ratio, and how long one call can hold
//! the worker: the time to spend the default budget on a catastrophic
//! pattern.

use std::time::Instant;

use dclua::lua::pattern::{self, DEFAULT_BUDGET};
use mlua::{Function, Lua, Table};

const ROUNDS: i64 = 20_000;

fn main() {
    let lua = Lua::new();
    let safe: Table = lua.create_table().expect("a table");
    pattern::install(&lua, &safe, DEFAULT_BUDGET).expect("installing the pattern functions");
    lua.globals().set("safe", safe.clone()).expect("setting safe");
    let bench = r#"
        local lib, rounds = ...
        local line = "<Nick_42> hello there, see https://example.org/a?b=1 and 12 files"
        local clock = os.clock
        local t0 = clock()
        local n = 0
        for i = 1, rounds do
          if lib.find(line, "https?://[%w%.%-/?=&]+") then n = n + 1 end
          local nick, text = lib.match(line, "^<([^>]+)> (.*)$")
          if nick then n = n + 1 end
          for w in lib.gmatch(line, "%a+") do n = n + 1 end
          local _, c = lib.gsub(line, "%s+", " ")
          n = n + c
        end
        return clock() - t0, n
    "#;
    let f: Function = lua.load(bench).into_function().expect("the benchmark chunk");
    let string: Table = lua.globals().get("string").expect("string");
    // Warm-up, then the measured runs.
    let _: (f64, i64) = f.call((string.clone(), ROUNDS / 10)).expect("warm-up");
    let (c_secs, c_n): (f64, i64) = f.call((string, ROUNDS)).expect("C run");
    let (r_secs, r_n): (f64, i64) = f.call((safe, ROUNDS)).expect("safe run");
    assert_eq!(c_n, r_n, "both count the same matches");
    println!(
        "lua_pattern: {ROUNDS} rounds of find+match+gmatch+gsub on a chat line: \
         Lua's C matcher {:.1} ms, step-limited matcher {:.1} ms (ratio {:.2}x)",
        c_secs * 1e3,
        r_secs * 1e3,
        r_secs / c_secs
    );
    let started = Instant::now();
    let result: mlua::Result<mlua::Value> =
        lua.load(r#"return safe.find(("a"):rep(40), ("a*"):rep(25) .. "b")"#).eval();
    assert!(result.is_err(), "the catastrophic pattern must hit the budget");
    println!(
        "lua_pattern: the default budget ({DEFAULT_BUDGET} steps) is spent in {:?}",
        started.elapsed()
    );
}
