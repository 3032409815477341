//! The sandbox of every Lua state dclua runs: one implementation, the
//! policies written down here.
//!
//! Each state starts with a standard library chosen by its [`Policy`]
//! ([`new_state`]), runs its owner's own setup code (the host's prelude, the
//! configuration's environment), then is closed ([`close`]): what the policy
//! refuses is taken away. This module depends on mlua and std only, so the
//! configuration and the Lua host both use it without depending on each
//! other. It decides what a state may reach; it does not bound how long or
//! how much it runs (the configuration's instruction budget and the host's
//! time budget and memory limits are their owners').
//!
//! # [`Policy::Configuration`]
//!
//! The configuration script is declarative: it sets values and has no side
//! effects. It gets the base library, `coroutine`, `table`, `string`,
//! `utf8`, `math`, and an `os` of `clock`, `date`, `difftime`, `getenv` and
//! `time` (any other `os.NAME` raises "os.NAME is not available in the
//! configuration sandbox"). It has no `dc` (nothing is running yet), no
//! `io`, no `package`/`require`, no `debug`, no `dofile`/`loadfile`, no
//! `collectgarbage`, `warn` or `print`, no `string.dump`, and `load` reads
//! text only. (That a failed reload keeps the last good configuration is
//! the configuration's own logic, not the sandbox's.)
//!
//! # [`Policy::UntrustedScript`]
//!
//! The default for scripts (`dc.scripts.load`, the configuration's
//! `scripts` without `trusted = true`): the safe library `lua-api/README.md`
//! lists under "Errors and containment". The same libraries as a
//! configuration, with `os` reduced to `time`, `clock`, `date` and
//! `difftime` (no `getenv`), no `dofile`/`loadfile`, no `string.dump`, a
//! text-only `load`, and the rules for what no instruction hook reaches
//! (issue 15):
//!
//! - `string.find`, `match`, `gmatch` and `gsub` (and the string methods,
//!   which share the table) are the step-limited matcher of [`pattern`]:
//!   Lua's own runs in C, where no hook interrupts a catastrophic pattern;
//! - `setmetatable` refuses a metatable with `__gc`: Lua runs finalizers with
//!   hooks off;
//! - `collectgarbage` keeps `collect`, `count`, `step` and `isrunning` only:
//!   nothing that stops the collector or retunes it.
//!
//! # [`Policy::TrustedScript`]
//!
//! `dclua run SCRIPT`, the console and scripts loaded with `trusted = true`:
//! the same libraries plus `io`, `package` (`require`), and the full `os`,
//! untouched. Such a script can hurt the client and the machine.

pub mod pattern;

use mlua::{Lua, LuaOptions, StdLib, Table, Value};

/// What a Lua state may reach; see the module's documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// The configuration script.
    Configuration,
    /// A script without the full standard library.
    UntrustedScript,
    /// A script with the full standard library (`io`, `package`, `os`).
    TrustedScript,
}

impl Policy {
    /// The policy of a script, trusted or not.
    pub fn script(trusted: bool) -> Policy {
        if trusted {
            Policy::TrustedScript
        } else {
            Policy::UntrustedScript
        }
    }

    /// The standard libraries its states are created with.
    fn libraries(self) -> StdLib {
        let safe = StdLib::COROUTINE
            | StdLib::TABLE
            | StdLib::STRING
            | StdLib::UTF8
            | StdLib::MATH
            | StdLib::OS;
        match self {
            Policy::TrustedScript => safe | StdLib::IO | StdLib::PACKAGE,
            Policy::Configuration | Policy::UntrustedScript => safe,
        }
    }

    /// The functions of `os` it keeps (`None`: all of them).
    fn os_kept(self) -> Option<&'static [&'static str]> {
        match self {
            Policy::Configuration => Some(&["clock", "date", "difftime", "getenv", "time"]),
            Policy::UntrustedScript => Some(&["time", "clock", "date", "difftime"]),
            Policy::TrustedScript => None,
        }
    }
}

/// Standard names a configuration cannot use (its message for reading one
/// says so).
pub const CONFIGURATION_REMOVED: &[&str] =
    &["io", "debug", "package", "require", "dofile", "loadfile", "collectgarbage", "warn"];

/// A new state with `policy`'s standard libraries, still open: run the
/// owner's setup code, then [`close`] it.
pub fn new_state(policy: Policy) -> mlua::Result<Lua> {
    Lua::new_with(policy.libraries(), LuaOptions::new())
}

/// Makes `os.time()` and `os.date(format)` (without a time argument) tell
/// the time `now` gives, in seconds since the Unix epoch, instead of the
/// system's: states of a pool on a virtual clock see its time (the bot
/// test kit). Call it before [`close`], which copies `os`'s functions.
pub fn follow_clock(lua: &Lua, now: impl Fn() -> f64 + 'static) -> mlua::Result<()> {
    let now = lua.create_function(move |_, ()| Ok(now().floor() as i64))?;
    lua.load(
        r#"local os, now = ...
        local raw_time, raw_date = os.time, os.date
        function os.time(t)
          if t == nil then return now() end
          return raw_time(t)
        end
        function os.date(format, t)
          return raw_date(format, t == nil and now() or t)
        end"#,
    )
    .set_name("=dclua clock")
    .call::<()>((lua.globals().raw_get::<Table>("os")?, now))
}

/// Takes away from `lua` what `policy` refuses (nothing for a trusted
/// script). Call it once, after the owner's setup code: that code may use
/// what scripts may not (the prelude's handles have `__gc`).
pub fn close(lua: &Lua, policy: Policy) -> mlua::Result<()> {
    let Some(os_kept) = policy.os_kept() else { return Ok(()) };
    let globals = lua.globals();
    // No files, no bytecode: bytecode is not checked and could crash the
    // interpreter.
    for name in ["dofile", "loadfile"] {
        globals.raw_set(name, Value::Nil)?;
    }
    let string: Table = globals.raw_get("string")?;
    string.raw_set("dump", Value::Nil)?;
    lua.load(
        r#"local raw_load = load
        function load(chunk, name, mode, env)
          return raw_load(chunk, name, "t", env)
        end"#,
    )
    .set_name("=dclua sandbox")
    .exec()?;
    let full_os: Table = globals.raw_get("os")?;
    let os = lua.create_table()?;
    for &name in os_kept {
        os.raw_set(name, full_os.raw_get::<Value>(name)?)?;
    }
    match policy {
        Policy::Configuration => {
            for name in ["collectgarbage", "warn", "print"] {
                globals.raw_set(name, Value::Nil)?;
            }
            // `os.execute(...)` says it is unavailable instead of "attempt
            // to call a nil value".
            let os: Table = lua
                .load(
                    r#"local os, kept = ...
            return setmetatable(os, { __metatable = false, __index = function(_, name)
                error("os." .. tostring(name) .. " is not available in the configuration sandbox (only "
                    .. kept .. ")", 2)
            end })"#,
                )
                .set_name("=os")
                .call((os, os_kept.join(", ")))?;
            globals.raw_set("os", os)?;
        }
        Policy::UntrustedScript => {
            globals.raw_set("os", os)?;
            lua.load(UNTRUSTED).set_name("=dclua sandbox").exec()?;
            pattern::install(lua, &string, pattern::DEFAULT_BUDGET)?;
        }
        Policy::TrustedScript => {}
    }
    Ok(())
}

/// What no hook reaches, for untrusted scripts: finalizers and the
/// collector's controls (see [`Policy::UntrustedScript`]).
const UNTRUSTED: &str = r#"
local raw_setmetatable, rawget, type, error = setmetatable, rawget, type, error
function setmetatable(t, mt)
  if type(mt) == "table" and rawget(mt, "__gc") ~= nil then
    error("setmetatable: __gc finalizers are not allowed in untrusted scripts " ..
          "(a finalizer runs where no time limit reaches)", 2)
  end
  return raw_setmetatable(t, mt)
end
local raw_collect = collectgarbage
local allowed = { collect = true, count = true, step = true, isrunning = true }
function collectgarbage(opt, ...)
  opt = opt or "collect"
  if not allowed[opt] then
    error("collectgarbage: \"" .. tostring(opt) .. "\" is not allowed in untrusted " ..
          "scripts (collect, count, step and isrunning are)", 2)
  end
  return raw_collect(opt, ...)
end
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn closed(policy: Policy) -> Lua {
        let lua = new_state(policy).expect("a state");
        close(&lua, policy).expect("closing it");
        lua
    }

    fn eval(policy: Policy, chunk: &str) -> bool {
        closed(policy).load(chunk).eval::<bool>().expect("the chunk runs")
    }

    #[test]
    fn each_policy_reaches_what_it_says() {
        use Policy::*;
        for (chunk, config, untrusted, trusted) in [
            ("return io ~= nil", false, false, true),
            ("return package ~= nil", false, false, true),
            ("return dofile ~= nil", false, false, true),
            ("return string.dump ~= nil", false, false, true),
            ("return print ~= nil", false, true, true),
            ("return collectgarbage ~= nil", false, true, true),
            ("return os.time ~= nil", true, true, true),
            (
                "return pcall(function() return os.getenv end) and os.getenv ~= nil",
                true,
                false,
                true,
            ),
            (
                "return pcall(function() return os.execute end) and os.execute ~= nil",
                false,
                false,
                true,
            ),
            ("return pcall(setmetatable, {}, {__gc = print})", true, false, true),
            ("return pcall(collectgarbage, 'stop')", false, false, true),
        ] {
            assert_eq!(eval(Configuration, chunk), config, "configuration: {chunk}");
            assert_eq!(eval(UntrustedScript, chunk), untrusted, "untrusted: {chunk}");
            assert_eq!(eval(TrustedScript, chunk), trusted, "trusted: {chunk}");
        }
    }

    #[test]
    fn only_trusted_scripts_load_bytecode() {
        let dumped = Lua::new()
            .load("return string.dump(function() return 1 end)")
            .eval::<mlua::LuaString>()
            .expect("dumping")
            .as_bytes()
            .to_vec();
        for policy in [Policy::Configuration, Policy::UntrustedScript, Policy::TrustedScript] {
            let lua = closed(policy);
            let f: mlua::Function =
                lua.load("return function(b) return load(b) ~= nil end").eval().unwrap();
            let loaded: bool = f.call(lua.create_string(&dumped).unwrap()).unwrap();
            assert_eq!(loaded, policy == Policy::TrustedScript, "{policy:?}");
        }
    }

    #[test]
    fn the_configuration_names_what_it_refuses() {
        let err = closed(Policy::Configuration).load("os.execute('true')").exec().unwrap_err();
        assert!(
            err.to_string().contains("os.execute is not available in the configuration sandbox"),
            "{err}"
        );
    }
}
