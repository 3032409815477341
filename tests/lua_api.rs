//! The `dc` API description (`dclua::lua::api`) against reality: the
//! generated LuaLS file in `lua-api/dc.d.lua`, and a live Lua state whose `dc`
//! table and handle classes must match `FUNCTIONS` and `FIELDS` exactly.
//!
//! `DCLUA_BLESS=1 cargo test --test lua_api` rewrites `lua-api/dc.d.lua`.

use std::collections::BTreeSet;
use std::path::PathBuf;

use dclua::lua::api::{luals_stub, FIELDS, FUNCTIONS};
use dclua::lua::{HostOptions, LuaHost};
use dclua::runtime::JobPool;

fn stub_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("lua-api").join("dc.d.lua")
}

#[test]
fn the_luals_file_is_the_generated_stub() {
    let want = luals_stub();
    let path = stub_path();
    if std::env::var_os("DCLUA_BLESS").is_some() {
        std::fs::write(&path, &want).expect("writing lua-api/dc.d.lua");
    }
    let have = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e} (DCLUA_BLESS=1 creates it)", path.display()));
    if have != want {
        let (h, w): (Vec<&str>, Vec<&str>) = (have.lines().collect(), want.lines().collect());
        let first = h.iter().zip(&w).position(|(a, b)| a != b).unwrap_or(h.len().min(w.len()));
        panic!(
            "lua-api/dc.d.lua is out of date (first difference at line {}:\n  file:      {:?}\n  generated: {:?});\n\
             run `DCLUA_BLESS=1 cargo test --test lua_api` to regenerate it",
            first + 1,
            h.get(first),
            w.get(first)
        );
    }
}

/// Walks `dc`, its sub-tables and the handle classes' methods; returns lines
/// `fn PATH` and `field PATH`.
const WALK: &str = r#"
local out = {}
local fields = ...
local function walk(t, prefix, seen)
  if seen[t] then return end
  seen[t] = true
  for k, v in pairs(t) do
    local path = prefix .. "." .. tostring(k)
    if type(v) == "function" then
      out[#out + 1] = "fn " .. path
    elseif type(v) == "table" and not fields[path] then
      walk(v, path, seen)
    else
      out[#out + 1] = "field " .. path
    end
  end
end
walk(dc, "dc", {})
local handles = {
  dc.spawn(function() end),
  dc.on("x", function() end),
  dc.after(100, function() end),
  dc.command("!x", function() end),
  -- A hub object (never polled here: a bare pool does no I/O).
  dc.connect("127.0.0.1:1", {reconnect_delay = 0}),
}
for _, h in ipairs(handles) do
  local mt = getmetatable(h)
  local class = mt.__name
  for k, v in pairs(mt.__index) do
    if type(v) == "function" and not tostring(k):match("^__") then
      out[#out + 1] = "fn " .. class .. ":" .. k
    end
  end
end
return out
"#;

fn live_names(trusted: bool) -> Vec<String> {
    let pool = JobPool::new();
    let host = LuaHost::new(pool.runtime(), HostOptions::default());
    let id = host.load_source("walker", None, b"", trusted, &[]).expect("loading an empty script");
    let script = host.script(id).expect("the script just loaded");
    let lua = script.lua();
    let fields = lua.create_table().expect("a table");
    for f in FIELDS {
        fields.set(f.path, true).expect("setting a field name");
    }
    let mut names: Vec<String> = lua
        .load(WALK)
        .set_name("=walk")
        .call(fields)
        .unwrap_or_else(|e| panic!("walking the dc table: {e}"));
    // Classes whose handles need a client to exist (dc.Download,
    // dc.FileList): their methods, from the registry.
    let classes: mlua::Table = lua
        .named_registry_value(dclua::lua::download_api::CLASSES_KEY)
        .expect("the download classes");
    for pair in classes.pairs::<String, mlua::Table>() {
        let (class, methods) = pair.expect("a class");
        for m in methods.pairs::<String, mlua::Value>() {
            let (k, v) = m.expect("a method");
            if v.is_function() {
                names.push(format!("fn {class}:{k}"));
            }
        }
    }
    host.shutdown();
    names
}

fn check_live_state(trusted: bool) {
    let live = live_names(trusted);
    let live_fns: BTreeSet<&str> = live.iter().filter_map(|l| l.strip_prefix("fn ")).collect();
    let live_fields: BTreeSet<&str> =
        live.iter().filter_map(|l| l.strip_prefix("field ")).collect();
    let api_fns: BTreeSet<&str> = FUNCTIONS.iter().map(|f| f.path).collect();
    let api_fields: BTreeSet<&str> = FIELDS.iter().map(|f| f.path).collect();

    let mut problems = Vec::new();
    for f in live_fns.difference(&api_fns) {
        problems.push(format!("function {f} exists but has no entry in api::FUNCTIONS"));
    }
    for f in api_fns.difference(&live_fns) {
        problems.push(format!("api::FUNCTIONS describes {f}, which does not exist"));
    }
    for f in live_fields.difference(&api_fields) {
        problems.push(format!("field {f} exists but has no entry in api::FIELDS"));
    }
    for f in api_fields.difference(&live_fields) {
        problems.push(format!("api::FIELDS describes {f}, which does not exist"));
    }
    assert!(
        problems.is_empty(),
        "the dc API and its description disagree (trusted = {trusted}):\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn every_function_and_field_of_a_live_state_is_described_and_nothing_else() {
    check_live_state(false);
    check_live_state(true);
}

#[test]
fn the_walk_sees_what_it_must() {
    // Guards the walk itself: a walk that found nothing would agree with an
    // empty description.
    let live = live_names(false);
    for must in
        ["fn dc.sleep", "fn dc.log.info", "fn dc.scripts.load", "fn dc.Job:wait", "fn dc.Hub:say"]
    {
        assert!(live.iter().any(|l| l == must), "{must} not found in {live:?}");
    }
    for must in ["fn dc.Handler:remove", "fn dc.Timer:stop", "field dc.version", "field dc.args"] {
        assert!(live.iter().any(|l| l == must), "{must} not found in {live:?}");
    }
}

#[test]
fn async_marks_exactly_the_waiting_functions() {
    let stub = luals_stub();
    let mut block: Vec<&str> = Vec::new();
    let mut seen = BTreeSet::new();
    let mut problems = Vec::new();
    for line in stub.lines() {
        if let Some(rest) = line.strip_prefix("function ") {
            let name = rest.split('(').next().unwrap_or(rest);
            // Handle classes are written as locals: dc_Job:wait is dc.Job:wait.
            let path = match name.split_once(':') {
                Some((class, m)) => format!("{}:{m}", class.replacen('_', ".", 1)),
                None => name.to_string(),
            };
            let is_async = block.contains(&"---@async");
            match FUNCTIONS.iter().find(|f| f.path == path) {
                Some(f) if f.waits != is_async => problems.push(format!(
                    "{path}: waits = {} but ---@async {}",
                    f.waits,
                    if is_async { "present" } else { "missing" }
                )),
                Some(_) => {}
                None => problems.push(format!("{path} is in the stub but not in FUNCTIONS")),
            }
            seen.insert(path);
        }
        if line.is_empty() {
            block.clear();
        } else {
            block.push(line);
        }
    }
    for f in FUNCTIONS {
        if !seen.contains(f.path) {
            problems.push(format!("{} has no function line in the stub", f.path));
        }
    }
    assert!(problems.is_empty(), "---@async disagrees with waits:\n  {}", problems.join("\n  "));
}

/// Every Lua example of the guide at least compiles. Each is also run (the
/// next test checks that a test names it): the short ones in
/// `tests/lua_host.rs`, those that need a hub, a peer or the binary in the
/// tests of their subjects (`nmdc_hub`, `daemon`, `cli`, `uploads`,
/// `downloads`).
#[test]
fn every_lua_example_in_the_guide_compiles() {
    let guide = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("lua-api/README.md"),
    )
    .expect("the guide");
    let lua = mlua::Lua::new();
    let mut examples = 0;
    for (i, block) in guide.split("```lua\n").skip(1).enumerate() {
        let code = block.split("```").next().unwrap_or_default();
        if let Err(e) = lua.load(code).set_name(format!("=example {}", i + 1)).into_function() {
            panic!("example {} of the guide does not compile: {e}\n{code}", i + 1);
        }
        examples += 1;
    }
    assert!(examples >= 10, "only {examples} examples found");
}

/// Every Lua example of the guide is run by a test: each is named, by its
/// section's title and its number in the section written out as literals,
/// in a call of `support::guide_block` (or `guide_example`, for the first)
/// in one of the test files. A new example without a test fails here, and
/// so does a test naming an example that is gone.
#[test]
fn every_lua_example_in_the_guide_is_run_by_a_test() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let guide = std::fs::read_to_string(root.join("lua-api/README.md")).expect("the guide");
    // (section title, example number in the section), in guide order.
    let mut examples = Vec::new();
    let (mut title, mut n) = (String::new(), 0);
    for line in guide.lines() {
        if let Some(t) = line.strip_prefix("## ") {
            (title, n) = (t.to_string(), 0);
        } else if line.starts_with("# ") {
            (title, n) = (String::new(), 0);
        } else if line == "```lua" {
            examples.push((title.clone(), n));
            n += 1;
        }
    }
    let mut claimed = std::collections::HashSet::new();
    for entry in std::fs::read_dir(root.join("tests")).expect("tests/") {
        let path = entry.expect("an entry").path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let source = std::fs::read_to_string(&path).expect("a test file");
        // Spelt in two pieces so that this file does not name examples.
        for (call, numbered) in
            [(concat!("guide_", "block("), true), (concat!("guide_", "example("), false)]
        {
            for rest in source.split(call).skip(1) {
                let Some(rest) = rest.trim_start().strip_prefix('"') else { continue };
                let Some((title, rest)) = rest.split_once('"') else { continue };
                let n = if numbered {
                    let rest = rest.trim_start().trim_start_matches(',').trim_start();
                    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                    match digits.parse::<usize>() {
                        Ok(n) => n,
                        Err(_) => continue,
                    }
                } else {
                    0
                };
                claimed.insert((title.to_string(), n));
            }
        }
    }
    let unrun: Vec<String> = examples
        .iter()
        .filter(|e| !claimed.contains(*e))
        .map(|(t, n)| format!("{t:?} example {n}"))
        .collect();
    assert!(unrun.is_empty(), "guide examples no test runs:\n  {}", unrun.join("\n  "));
    let stale: Vec<String> = claimed
        .iter()
        .filter(|c| !examples.contains(*c))
        .map(|(t, n)| format!("{t:?} example {n}"))
        .collect();
    assert!(
        stale.is_empty(),
        "tests name guide examples that are not there:\n  {}",
        stale.join("\n  ")
    );
}
