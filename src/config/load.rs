//! Runs a configuration script in a fresh, sandboxed Lua state and records
//! what it sets, with the line of each assignment.
//!
//! The state is sandboxed by [`crate::sandbox`]'s configuration policy (a
//! safe standard library only: no `io`, no `package`, no `debug`, `os`
//! reduced to clocks, dates and `getenv`, text-only `load`); this module adds
//! an instruction budget so a loop cannot hang the client, and a memory limit.
//! The script's globals go through an environment table whose `__newindex`
//! records each setting and its line; a table the script returns is accepted
//! too. This module only runs the script: checking the values against the
//! settings table is `validate.rs`'s job.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use mlua::chunk::ChunkMode;
use mlua::{Error as LuaError, Function, HookTriggers, Lua, MultiValue, Table, Value, VmState};

use super::error::{ConfigError, Problem};
use super::settings;
use crate::sandbox::{self, Policy};

/// Lua instructions a configuration script may run. Real configurations need
/// a few thousand; this leaves room for generated tables while a `while true
/// do end` stops within a fraction of a second.
pub const INSTRUCTION_LIMIT: u64 = 20_000_000;

/// Memory a configuration script may use, in bytes.
pub const MEMORY_LIMIT: usize = 32 * 1024 * 1024;

/// How often (in instructions) the budget hook runs.
const HOOK_INTERVAL: u32 = 1000;

/// How many stack levels to search for the script's own frame.
const MAX_STACK_SEARCH: usize = 64;

/// What a script set, in the order it first set it.
#[derive(Debug)]
pub(crate) struct Assignment {
    /// The setting name as written.
    pub name: String,
    /// The value (never nil).
    pub value: Value,
    /// Where it came from.
    pub origin: Origin,
}

/// Where a setting was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// A global assignment whose statement ended on this line, if known.
    Global(Option<usize>),
    /// A field of the table the script returned.
    Returned,
}

/// The outcome of running a script: the state (values live in it), what was
/// set, and problems noticed while running (a non-string global name).
pub(crate) struct Run {
    pub lua: Lua,
    pub assignments: Vec<Assignment>,
    pub problems: Vec<Problem>,
}

/// Shared between the environment's metamethods and the runner.
#[derive(Default)]
struct Recorder {
    /// Latest line of each assigned name.
    lines: HashMap<String, Option<usize>>,
    /// Names in the order they were first assigned.
    order: Vec<String>,
    problems: Vec<Problem>,
}

/// Runs `text` as the configuration script called `display` (shown in
/// messages; the chunk is named `@display` so Lua's own messages match).
pub(crate) fn run(display: &str, text: &[u8]) -> Result<Run, ConfigError> {
    let lua = new_state().map_err(|e| setup_error(display, &e))?;
    let chunk_name = format!("@{display}");
    let recorder = Rc::new(RefCell::new(Recorder::default()));
    let budget = Rc::new(Budget::new(display));

    let values = lua.create_table().map_err(|e| setup_error(display, &e))?;
    let env = make_env(&lua, &values, &recorder, display, &chunk_name)
        .and_then(|env| {
            install_guards(&lua, &budget)?;
            Ok(env)
        })
        .map_err(|e| setup_error(display, &e))?;
    install_budget(&lua, &budget, &chunk_name).map_err(|e| setup_error(display, &e))?;
    lua.set_memory_limit(MEMORY_LIMIT).map_err(|e| setup_error(display, &e))?;

    let result = lua
        .load(text)
        .set_name(chunk_name.as_str())
        .set_mode(ChunkMode::Text)
        .set_environment(env.clone())
        .call::<MultiValue>(());

    // Validation runs Rust-side code in this state: lift the limits first.
    lua.remove_global_hook();
    // Cannot fail: the state was created with mlua's allocator, as above.
    let _ = lua.set_memory_limit(0);

    let returned = match result {
        Ok(values) => values.into_iter().next().unwrap_or(Value::Nil),
        Err(err) => return Err(script_error(display, &err, &budget)),
    };

    let mut rec = recorder.take();
    let mut assignments = Vec::new();
    for name in &rec.order {
        let value: Value = values.raw_get(name.as_str()).map_err(|e| setup_error(display, &e))?;
        if value.is_nil() {
            // `nick = nil` unsets: the default applies.
            continue;
        }
        let line = rec.lines.get(name).copied().flatten();
        assignments.push(Assignment { name: name.clone(), value, origin: Origin::Global(line) });
    }
    // `rawset(_ENV, k, v)` bypasses the recorder: the value sits in the proxy itself.
    let raw_env = super::validate::sorted_pairs(&env).map_err(|e| setup_error(display, &e))?;
    for (key, value) in raw_env {
        push_unrecorded(
            &mut assignments,
            &mut rec.problems,
            display,
            key,
            value,
            Origin::Global(None),
        );
    }
    match returned {
        Value::Nil => {}
        Value::Table(table) => {
            let fields =
                super::validate::sorted_pairs(&table).map_err(|e| setup_error(display, &e))?;
            for (key, value) in fields {
                push_unrecorded(
                    &mut assignments,
                    &mut rec.problems,
                    display,
                    key,
                    value,
                    Origin::Returned,
                );
            }
        }
        other => {
            rec.problems.push(Problem {
                file: display.to_string(),
                line: None,
                message: format!(
                    "the script returned {}; return a table of settings, or set them as globals and return nothing",
                    describe_type(&other)
                ),
            });
        }
    }
    Ok(Run { lua, assignments, problems: rec.problems })
}

/// Adds a setting found outside the recorder (raw env keys, the returned table).
fn push_unrecorded(
    assignments: &mut Vec<Assignment>,
    problems: &mut Vec<Problem>,
    display: &str,
    key: Value,
    value: Value,
    origin: Origin,
) {
    let name = match &key {
        Value::String(s) => s.to_string_lossy(),
        other => {
            problems.push(Problem {
                file: display.to_string(),
                line: None,
                message: format!("{} is not a setting name", key_text(other)),
            });
            return;
        }
    };
    if let Some(previous) = assignments.iter().find(|a| a.name == name) {
        let where_before = match previous.origin {
            Origin::Global(Some(line)) => format!("a global on line {line}"),
            Origin::Global(None) | Origin::Returned => "a global".to_string(),
        };
        problems.push(Problem {
            file: display.to_string(),
            line: None,
            message: format!(
                "{name}: set twice, as {where_before} and in the returned table; keep one"
            ),
        });
        return;
    }
    assignments.push(Assignment { name, value, origin });
}

/// A fresh state under the configuration's sandbox policy
/// ([`Policy::Configuration`]: no files, processes, bytecode or raw output).
fn new_state() -> mlua::Result<Lua> {
    let lua = sandbox::new_state(Policy::Configuration)?;
    sandbox::close(&lua, Policy::Configuration)?;
    Ok(lua)
}

/// The environment the script runs in: an empty proxy whose `__newindex`
/// records settings (value and line) and whose `__index` reads settings back,
/// then the library, and refuses undefined names.
fn make_env(
    lua: &Lua,
    values: &Table,
    recorder: &Rc<RefCell<Recorder>>,
    display: &str,
    chunk_name: &str,
) -> mlua::Result<Table> {
    let env = lua.create_table()?;
    let meta = lua.create_table()?;
    let globals = lua.globals();

    let rec = Rc::clone(recorder);
    let store = values.clone();
    let chunk = chunk_name.to_string();
    let file = display.to_string();
    let newindex = lua.create_function(move |lua, (_env, key, value): (Table, Value, Value)| {
        let line = script_line(lua, &chunk, 1);
        let mut rec = rec.borrow_mut();
        match &key {
            Value::String(s) => {
                let name = s.to_string_lossy();
                if !rec.lines.contains_key(&name) {
                    rec.order.push(name.clone());
                }
                rec.lines.insert(name, line);
                store.raw_set(key, value)?;
            }
            other => {
                let message = format!("{} is not a setting name", key_text(other));
                rec.problems.push(Problem { file: file.clone(), line, message });
            }
        }
        Ok(())
    })?;

    let store = values.clone();
    let library = globals.clone();
    let chunk = chunk_name.to_string();
    let file = display.to_string();
    let index = lua.create_function(move |lua, (_env, key): (Table, Value)| {
        let value: Value = store.raw_get(key.clone())?;
        if !value.is_nil() {
            return Ok(value);
        }
        let value: Value = library.raw_get(key.clone())?;
        if !value.is_nil() {
            return Ok(value);
        }
        let Value::String(name) = &key else {
            return Ok(Value::Nil);
        };
        let name = name.to_string_lossy();
        if settings::find(&name).is_some() {
            // An unset setting reads as nil: `shares = shares or {}` works.
            return Ok(Value::Nil);
        }
        let mut known: Vec<String> =
            settings::SETTINGS.iter().map(|s| s.name.to_string()).collect();
        for pair in library.pairs::<Value, Value>().collect::<Vec<_>>() {
            if let (Value::String(k), _) = pair? {
                known.push(k.to_string_lossy());
            }
        }
        let hint = if sandbox::CONFIGURATION_REMOVED.contains(&name.as_str()) {
            format!(" ({name} is not available in the configuration sandbox)")
        } else {
            let suggested = super::validate::suggestion(&name, known.iter().map(String::as_str))
                .map(|s| format!(" (did you mean \"{s}\"?)"))
                .unwrap_or_default();
            format!("{suggested}; quote text values, as in nick = \"me\"")
        };
        let place = match script_line(lua, &chunk, 1) {
            Some(line) => format!("{file}:{line}: "),
            None => String::new(),
        };
        Err(LuaError::runtime(format!("{place}undefined variable \"{name}\"{hint}")))
    })?;

    meta.raw_set("__newindex", newindex)?;
    meta.raw_set("__index", index)?;
    // `getmetatable(_ENV)` gives false and `setmetatable(_ENV, ...)` fails.
    meta.raw_set("__metatable", false)?;
    env.set_metatable(Some(meta))?;
    // `_G.nick = ...` must reach the recorder too.
    globals.raw_set("_G", env.clone())?;

    // print() goes to the log, not to a terminal the console may own.
    let file = display.to_string();
    let print = lua.create_function(move |_, args: MultiValue| {
        let mut parts = Vec::with_capacity(args.len());
        for value in args {
            parts.push(value.to_string()?);
        }
        log::info!(target: "dclua::config", "{file}: {}", parts.join("\t"));
        Ok(())
    })?;
    globals.raw_set("print", print)?;

    // load() compiles text only, in the configuration's environment by default.
    let raw_load: Function = globals.raw_get("load")?;
    let load: Function = lua
        .load(
            r#"local raw_load, env = ...
            return function(chunk, name, _mode, chunk_env)
                return raw_load(chunk, name, "t", chunk_env or env)
            end"#,
        )
        .set_name("=load")
        .call((raw_load, env.clone()))?;
    globals.raw_set("load", load)?;
    Ok(env)
}

/// The line the script is at: the innermost frame, from `level` up, that runs
/// the configuration chunk itself (not a string given to `load`).
fn script_line(lua: &Lua, chunk_name: &str, level: usize) -> Option<usize> {
    for level in level..level + MAX_STACK_SEARCH {
        let found = lua.inspect_stack(level, |debug| {
            let ours = debug.source().source.as_deref() == Some(chunk_name);
            ours.then(|| debug.current_line()).flatten()
        })?;
        if found.is_some() {
            return found;
        }
    }
    None
}

/// The instruction budget: counts, and remembers that it ran out so the
/// message survives a script that catches errors.
struct Budget {
    file: String,
    used: std::cell::Cell<u64>,
    exceeded: RefCell<Option<String>>,
}

impl Budget {
    fn new(file: &str) -> Budget {
        Budget {
            file: file.to_string(),
            used: std::cell::Cell::new(0),
            exceeded: RefCell::new(None),
        }
    }
}

fn install_budget(lua: &Lua, budget: &Rc<Budget>, chunk_name: &str) -> mlua::Result<()> {
    let budget = Rc::clone(budget);
    let chunk = chunk_name.to_string();
    // A global hook reaches coroutines the script creates, too.
    lua.set_global_hook(HookTriggers::new().every_nth_instruction(HOOK_INTERVAL), move |lua, debug| {
        budget.used.set(budget.used.get() + u64::from(HOOK_INTERVAL));
        if budget.used.get() <= INSTRUCTION_LIMIT {
            return Ok(VmState::Continue);
        }
        let message = {
            let mut exceeded = budget.exceeded.borrow_mut();
            exceeded
                .get_or_insert_with(|| {
                    let ours = debug.source().source.as_deref() == Some(chunk.as_str());
                    let line = if ours { debug.current_line() } else { None }.or_else(|| script_line(lua, &chunk, 0));
                    let place = match line {
                        Some(line) => format!("{}:{line}: ", budget.file),
                        None => format!("{}: ", budget.file),
                    };
                    format!(
                        "{place}the script was stopped after {} million Lua instructions (an endless loop?)",
                        INSTRUCTION_LIMIT / 1_000_000
                    )
                })
                .clone()
        };
        Err(LuaError::runtime(message))
    })
}

/// `pcall`, `xpcall` and `coroutine.resume` catch errors, including the budget
/// error; these wrappers raise it again, so a script cannot loop on
/// `pcall(function() while true do end end)`.
fn install_guards(lua: &Lua, budget: &Rc<Budget>) -> mlua::Result<()> {
    let budget = Rc::clone(budget);
    let check = lua.create_function(move |_, ()| match budget.exceeded.borrow().as_ref() {
        Some(message) => Err(LuaError::runtime(message.clone())),
        None => Ok(()),
    })?;
    let globals = lua.globals();
    let coroutine: Table = globals.raw_get("coroutine")?;
    let wrap: Function = lua
        .load(
            r#"local raw_pcall, raw_xpcall, raw_resume, check = ...
            local function pass(...)
                check()
                return ...
            end
            return function(...) return pass(raw_pcall(...)) end,
                function(...) return pass(raw_xpcall(...)) end,
                function(...) return pass(raw_resume(...)) end"#,
        )
        .set_name("=guards")
        .into_function()?;
    let (pcall, xpcall, resume): (Function, Function, Function) = wrap.call((
        globals.raw_get::<Function>("pcall")?,
        globals.raw_get::<Function>("xpcall")?,
        coroutine.raw_get::<Function>("resume")?,
        check,
    ))?;
    globals.raw_set("pcall", pcall)?;
    globals.raw_set("xpcall", xpcall)?;
    coroutine.raw_set("resume", resume)?;
    Ok(())
}

/// Turns a failed run into a message with file and line.
fn script_error(display: &str, err: &LuaError, budget: &Budget) -> ConfigError {
    if let Some(message) = budget.exceeded.borrow().as_ref() {
        return ConfigError::Script(split_location(display, message));
    }
    if is_memory_error(err) {
        return ConfigError::Script(Problem {
            file: display.to_string(),
            line: None,
            message: format!(
                "the script needs more than {} MiB of memory",
                MEMORY_LIMIT / (1024 * 1024)
            ),
        });
    }
    ConfigError::Script(split_location(display, &root_message(err)))
}

fn is_memory_error(err: &LuaError) -> bool {
    match err {
        LuaError::MemoryError(_) => true,
        LuaError::CallbackError { cause, .. } | LuaError::WithContext { cause, .. } => {
            is_memory_error(cause)
        }
        _ => false,
    }
}

/// The message of the error that started it all, without the traceback.
fn root_message(err: &LuaError) -> String {
    let text = match err {
        LuaError::CallbackError { cause, .. } | LuaError::WithContext { cause, .. } => {
            return root_message(cause)
        }
        LuaError::RuntimeError(message) => message.clone(),
        LuaError::SyntaxError { message, .. } => message.clone(),
        LuaError::ExternalError(e) => e.to_string(),
        other => other.to_string(),
    };
    match text.find("\nstack traceback:") {
        Some(end) => text[..end].to_string(),
        None => text,
    }
}

/// Splits Lua's `file:line: message` into a [`Problem`] when `file` is the
/// configuration (Lua shortens long names to `...tail`).
fn split_location(display: &str, message: &str) -> Problem {
    let mut search = 0;
    while let Some(colon) = message[search..].find(':').map(|i| i + search) {
        let rest = &message[colon + 1..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 && rest[digits..].starts_with(": ") {
            let source = &message[..colon];
            let tail = source.strip_prefix("...").unwrap_or(source);
            if source == display || (source.starts_with("...") && display.ends_with(tail)) {
                if let Ok(line) = rest[..digits].parse() {
                    return Problem {
                        file: display.to_string(),
                        line: Some(line),
                        message: rest[digits + 2..].to_string(),
                    };
                }
            }
        }
        search = colon + 1;
    }
    Problem { file: display.to_string(), line: None, message: message.to_string() }
}

fn setup_error(display: &str, err: &LuaError) -> ConfigError {
    ConfigError::Setup { file: display.to_string(), message: root_message(err) }
}

/// A non-string global name as written: `[1]`, `[true]`.
fn key_text(key: &Value) -> String {
    match key {
        Value::Integer(n) => format!("[{n}]"),
        Value::Number(f) => format!("[{f}]"),
        Value::Boolean(b) => format!("[{b}]"),
        other => format!("a key of type {}", other.type_name()),
    }
}

/// "a number", "a function": a value's type with an article.
fn describe_type(value: &Value) -> String {
    match value {
        Value::Integer(_) | Value::Number(_) => "a number".to_string(),
        Value::Boolean(_) => "a boolean".to_string(),
        Value::String(_) => "a string".to_string(),
        Value::Function(_) => "a function".to_string(),
        other => format!("a {}", other.type_name()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_locations_of_the_configuration_only() {
        let p = split_location("config.lua", "config.lua:3: boom: bang");
        assert_eq!((p.line, p.message.as_str()), (Some(3), "boom: bang"));
        let p = split_location(
            "/a/very/long/path/to/config.lua",
            "...long/path/to/config.lua:12: unexpected symbol near 'x'",
        );
        assert_eq!((p.line, p.message.as_str()), (Some(12), "unexpected symbol near 'x'"));
        let p = split_location("config.lua", "[string \"x\"]:1: nope");
        assert_eq!((p.line, p.message.as_str()), (None, "[string \"x\"]:1: nope"));
        let p = split_location("c:/x.lua", "c:/x.lua:4: m");
        assert_eq!((p.line, p.message.as_str()), (Some(4), "m"));
    }

    #[test]
    fn records_globals_with_their_lines() {
        let run = run("config.lua", b"nick = 'a'\nslots =\n  3\nnick = 'b'\nemail = nil\n")
            .expect("runs");
        let names: Vec<(&str, Origin)> =
            run.assignments.iter().map(|a| (a.name.as_str(), a.origin)).collect();
        assert_eq!(names, [("nick", Origin::Global(Some(4))), ("slots", Origin::Global(Some(3)))]);
    }

    #[test]
    fn undefined_names_are_errors_with_a_suggestion() {
        let err = run("config.lua", b"x = 1\nlocal n = nikc\n").err().expect("fails");
        assert_eq!(
            err.to_string(),
            "config.lua:2: undefined variable \"nikc\" (did you mean \"nick\"?); quote text values, as in nick = \"me\""
        );
    }

    #[test]
    fn caught_budget_errors_are_raised_again() {
        let text = b"while true do\n  pcall(function() while true do end end)\n  coroutine.resume(coroutine.create(function() while true do end end))\nend\n";
        let err = run("config.lua", text).err().expect("stopped");
        assert!(err.to_string().contains("the script was stopped after"), "{err}");
    }
}
