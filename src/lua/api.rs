//! The `dc` API on top of the host: it composes the namespaces (hubs, share,
//! uploads, downloads, store) with the core functions, gives them to the
//! host as its [`HostApi`] when it builds one (`LuaHost::new`,
//! `LuaHost::with_hubs` are here), and holds the one description of the API
//! that generates the LuaLS stubs (`lua-api/dc.d.lua`), the console's
//! completion and help, composed from the core's entries (here) and each
//! namespace's (`FUNCTIONS`, `EVENTS`... next to its implementation).
//!
//! Nothing below it (the host, the namespaces) depends on this module: it is
//! the top of `lua/`, what the host's users call.
//!
//! The description ([`FUNCTIONS`], [`EVENTS`]) is the single source of truth: a
//! test walks a live Lua state and fails when a registered function has no
//! entry here or an entry names a function that does not exist, and another
//! fails when `lua-api/dc.d.lua` differs from [`luals_stub`].

use std::fmt::Write as _;
use std::path::PathBuf;

use mlua::{Function, Lua, MultiValue, Table, Variadic};

use super::capability::{self, Capability};
use super::describe;
pub use super::describe::{ApiEvent, ApiField, ApiFn};
use super::host::{HostApi, HostOptions, LuaHost, ScriptId};
use super::value::Value;
use crate::hub::Hubs;
use crate::runtime::{JobId, Runtime};

/// The whole `dc` API, as the host's [`HostApi`]: the core functions and
/// every namespace (hubs, share, uploads, downloads, store).
struct Api;

impl HostApi for Api {
    fn register(
        &self,
        host: &LuaHost,
        lua: &Lua,
        script: ScriptId,
        dc: &Table,
        native: &Table,
    ) -> mlua::Result<()> {
        register(lua, host, script, dc, native)
    }

    fn extend(&self, lua: &Lua, dc: &Table, native: &Table) -> mlua::Result<()> {
        for (ext, source) in EXTENSIONS {
            lua.load(*source)
                .set_name(format!("=dclua {ext}"))
                .into_function()
                .and_then(|f| f.call::<()>((dc, native)))?;
        }
        Ok(())
    }

    fn script_unloaded(&self, host: &LuaHost, id: ScriptId) {
        super::hub_api::script_unloaded(host, id);
    }
}

/// The constructors: a host is built with the whole API.
impl LuaHost {
    /// A host with a hub registry of its own (a host without a client:
    /// benchmarks, tests of the Lua side alone).
    pub fn new(rt: &Runtime, opts: HostOptions) -> LuaHost {
        LuaHost::with_hubs(rt, opts, Hubs::new())
    }

    /// A host whose scripts reach the client's hubs through `hubs` (the
    /// composition root's). The share is given later, by
    /// [`share_api::install`](super::share_api::install).
    pub fn with_hubs(rt: &Runtime, opts: HostOptions, hubs: Hubs) -> LuaHost {
        let host = LuaHost::build(rt, opts, std::rc::Rc::new(Api));
        super::hub_api::install(&host, hubs);
        // A configuration also sets the peers' and the downloads' options.
        super::hub_api::on_config(
            &host,
            std::rc::Rc::new(|host, config, identity| {
                if let Some(peers) = super::peer_api::peers(host) {
                    peers.reconfigure(crate::peer::PeerOptions::from_identity(identity));
                }
                // Download folder, limit, connections and segment size.
                let data = super::hub_api::hubs(host).data_dir();
                if let (Some(d), Some(data)) = (super::download_api::downloads(host), data) {
                    d.reconfigure(config.download_options(&data));
                }
            }),
        );
        host
    }
}

/// Lua sources of features, run in every new state after the prelude with
/// `(dc, native)` as arguments, in this order. A feature's waiting functions
/// use `native.await(name, ...)`, served by a handler registered with
/// [`LuaHost::register_async`].
pub const EXTENSIONS: &[(&str, &str)] = &[
    ("share", super::share_api::LUA),
    ("peer", super::peer_api::LUA),
    ("download", super::download_api::LUA),
    ("store", super::store_api::LUA),
];

/// The core functions and methods: coroutines, events, timers, commands,
/// scripts, the log.
const CORE_FUNCTIONS: &[ApiFn] = &[
    ApiFn {
        path: "dc.sleep",
        params: &[("seconds", "number", "how long to wait (fractions allowed)")],
        returns: &[],
        doc: "Waits for `seconds` while the rest of the client runs on.",
        waits: true,
    },
    ApiFn {
        path: "dc.wait",
        params: &[
            ("event", "string", "the event name"),
            ("opts", "{filter?: table|(fun(e: table): boolean), timeout?: number}?", "`filter`: a table of fields the event must have, or a function returning true for the wanted event (it must not wait); `timeout`: seconds"),
        ],
        returns: &[("table?", "the event table, or nil on timeout")],
        doc: "Waits for the next event `event` that passes the filter.",
        waits: true,
    },
    ApiFn {
        path: "dc.wait_any",
        params: &[
            ("events", "string[]", "the event names"),
            ("opts", "{filter?: table|(fun(e: table): boolean), timeout?: number}?", "as for `dc.wait`, applied to each event"),
        ],
        returns: &[("string?", "the name of the event that came first, or nil on timeout"), ("table?", "its table")],
        doc: "Waits for the first of several events that passes the filter (a PM or a chat line, whichever comes).",
        waits: true,
    },
    ApiFn {
        path: "dc.spawn",
        params: &[("fn", "async fun(...): any", "the function to run"), ("...", "any", "its arguments")],
        returns: &[("dc.Job", "a handle to the new coroutine job")],
        doc: "Runs `fn(...)` as a new coroutine job of this script.",
        waits: false,
    },
    ApiFn {
        path: "dc.on",
        params: &[("event", "dc.EventName|string", "the event name"), ("handler", "async fun(e: table): boolean?", "called with the event table, each call in its own coroutine; return true (before waiting) to consume the event")],
        returns: &[("dc.Handler", "a handle to remove the handler")],
        doc: "Calls `handler` for every event `event`, in registration order.",
        waits: false,
    },
    ApiFn {
        path: "dc.emit",
        params: &[("event", "string", "the event name"), ("data", "table?", "the event table (plain data only)")],
        returns: &[],
        doc: "Emits an event of your own; handlers (of every script) see it on the next pass.",
        waits: false,
    },
    ApiFn {
        path: "dc.after",
        params: &[("seconds", "number", "delay"), ("fn", "async fun()", "the callback")],
        returns: &[("dc.Timer", "a handle to stop the timer")],
        doc: "Calls `fn` once, after `seconds`, in its own coroutine.",
        waits: false,
    },
    ApiFn {
        path: "dc.every",
        params: &[("seconds", "number", "period"), ("fn", "async fun()", "the callback")],
        returns: &[("dc.Timer", "a handle to stop the timer")],
        doc: "Calls `fn` every `seconds`, each call in its own coroutine. A tick that comes while the previous call still runs (it waits) is skipped. The timer stops if `fn` fails.",
        waits: false,
    },
    ApiFn {
        path: "dc.command",
        params: &[
            ("name", "string", "the command word, as in `\"!seen\"`"),
            ("fn", "async fun(args: table, e: table): string?", "called with the words after the command (`args[1]`, ..., `args.text` the whole rest) and the chat or pm event; a string it returns is the answer"),
            ("opts", "{help: string?}?", "`help`: one line for the list of commands"),
        ],
        returns: &[("dc.Command", "a handle; `:remove()` removes the command")],
        doc: "Routes chat and private messages that start with `name` to `fn`, each call in its own coroutine. The answer goes back where the command came from: a private message to its sender, else main chat. The first command also adds `<prefix>help` (`!help`), which lists the commands with their help, unless the script has its own. The client's own messages are never commands.",
        waits: false,
    },
    ApiFn {
        path: "dc.Command:remove",
        params: &[],
        returns: &[],
        doc: "Removes the command.",
        waits: false,
    },
    ApiFn {
        path: "dc.quit",
        params: &[("code", "integer?", "exit code (default 0)")],
        returns: &[],
        doc: "Stops the client cleanly.",
        waits: false,
    },
    ApiFn {
        path: "dc.reload_config",
        params: &[],
        returns: &[("boolean", "true when the new configuration is in force"), ("string?", "the error otherwise (the last good configuration stays)")],
        doc: "Reads the configuration file again and applies the differences: scripts and hubs no longer listed are unloaded and left, new ones loaded and joined, the identity and settings applied.",
        waits: false,
    },
    ApiFn {
        path: "dc.log.debug",
        params: &[("...", "any", "values, joined with spaces")],
        returns: &[],
        doc: "Logs at debug level, tagged with the script's name.",
        waits: false,
    },
    ApiFn {
        path: "dc.log.info",
        params: &[("...", "any", "values, joined with spaces")],
        returns: &[],
        doc: "Logs at info level, tagged with the script's name.",
        waits: false,
    },
    ApiFn {
        path: "dc.log.warn",
        params: &[("...", "any", "values, joined with spaces")],
        returns: &[],
        doc: "Logs a warning, tagged with the script's name.",
        waits: false,
    },
    ApiFn {
        path: "dc.log.error",
        params: &[("...", "any", "values, joined with spaces")],
        returns: &[],
        doc: "Logs an error, tagged with the script's name.",
        waits: false,
    },
    ApiFn {
        path: "dc.scripts.load",
        params: &[("path", "string", "the script file"), ("opts", "{trusted?: boolean}?", "`trusted`: full standard library (io, os, package)")],
        returns: &[("string?", "the script's name"), ("string?", "the error")],
        doc: "Loads a script and runs its main chunk.",
        waits: false,
    },
    ApiFn {
        path: "dc.scripts.unload",
        params: &[("name", "string", "the script's name")],
        returns: &[("boolean", "whether it was loaded")],
        doc: "Unloads a script: stops everything it created (handlers, timers, jobs).",
        waits: false,
    },
    ApiFn {
        path: "dc.scripts.exit",
        params: &[],
        returns: &[],
        doc: "Ends the calling script: once the current call returns or waits, it is unloaded (its handlers, timers, coroutines and hubs go with it; `script_unloaded` says \"ended itself\"). A script ends by itself when it owns nothing alive; this ends it sooner. Under `dclua run`, the client ends with it.",
        waits: false,
    },
    ApiFn {
        path: "dc.scripts.reload",
        params: &[("name", "string", "the script's name")],
        returns: &[("boolean", "success"), ("string?", "the error (the old version keeps running)")],
        doc: "Unloads a script and loads its file again; nothing of the old load fires afterwards.",
        waits: false,
    },
    ApiFn {
        path: "dc.scripts.list",
        params: &[],
        returns: &[("string[]", "names of the loaded scripts")],
        doc: "The loaded scripts, in load order.",
        waits: false,
    },
    ApiFn {
        path: "dc.Job:alive",
        params: &[],
        returns: &[("boolean", "whether it still runs")],
        doc: "Whether the job is still running.",
        waits: false,
    },
    ApiFn {
        path: "dc.Job:stop",
        params: &[],
        returns: &[],
        doc: "Stops the job (its `:wait()` then gives `false, \"stopped\"`).",
        waits: false,
    },
    ApiFn {
        path: "dc.Job:wait",
        params: &[],
        returns: &[("boolean", "true if the function returned, false if it failed"), ("any", "its results, or the error message")],
        doc: "Waits until the job ends; gives `true, results...` or `false, error`.",
        waits: true,
    },
    ApiFn {
        path: "dc.Handler:remove",
        params: &[],
        returns: &[],
        doc: "Removes the event handler.",
        waits: false,
    },
    ApiFn {
        path: "dc.Timer:stop",
        params: &[],
        returns: &[],
        doc: "Stops the timer; its callback is not called again.",
        waits: false,
    },
    ApiFn {
        path: "dc.Timer:active",
        params: &[],
        returns: &[("boolean", "whether it will fire again")],
        doc: "Whether the timer is still armed.",
        waits: false,
    },
];

/// The functions and methods: the core's, then each namespace's.
const FUNCTION_PARTS: &[&[ApiFn]] = &[
    CORE_FUNCTIONS,
    super::hub_api::FUNCTIONS,
    super::share_api::FUNCTIONS,
    super::store_api::FUNCTIONS,
    super::download_api::FUNCTIONS,
    super::peer_api::FUNCTIONS,
];

/// Every function and method of the API.
pub const FUNCTIONS: &[ApiFn] = &describe::concat::<ApiFn, { describe::count(FUNCTION_PARTS) }>(
    FUNCTION_PARTS,
    FUNCTION_PARTS[0][0],
);

/// Plain fields.
pub const FIELDS: &[ApiField] = &[
    ApiField { path: "dc.version", ty: "string", doc: "dclua's version." },
    ApiField { path: "dc.script", ty: "string", doc: "The name of the running script." },
    ApiField { path: "dc.args", ty: "string[]", doc: "Command-line arguments given to `dclua run SCRIPT ARGS...` (also the main chunk's `...`)." },
];

/// Fields of objects (`hub.name`), read live. Kept apart from [`FIELDS`],
/// which lists what a walk of the `dc` table finds.
pub const CLASS_FIELDS: &[ApiField] = super::hub_api::CLASS_FIELDS;

/// The core events: scripts and the configuration.
const CORE_EVENTS: &[ApiEvent] = &[
    ApiEvent {
        name: "script_loaded",
        doc: "A script was loaded (after its main chunk started).",
        fields: &[("name", "string", "the script's name")],
        consumable: false,
    },
    ApiEvent {
        name: "script_unloaded",
        doc: "A script was unloaded (by a script, the console, a reload, or because it ran out of memory).",
        fields: &[
            ("name", "string", "the script's name"),
            ("reason", "string", "\"unloaded\", or \"over its memory limit\""),
        ],
        consumable: false,
    },
    ApiEvent {
        name: "events_dropped",
        doc: "A script had 2,000 handler calls waiting (handlers that sleep or wait), so its handlers were not called for some events; reported at most once a second per script, also in the log.",
        fields: &[
            ("script", "string", "the script whose handlers were skipped"),
            ("count", "integer", "handler calls skipped since the last report"),
            ("event", "string", "the event whose call was skipped last"),
        ],
        consumable: false,
    },
    ApiEvent {
        name: "config_reloaded",
        doc: "The configuration file was read again and is in force.",
        fields: &[("path", "string", "the configuration file")],
        consumable: false,
    },
];

/// The events: the core's, then each namespace's.
const EVENT_PARTS: &[&[ApiEvent]] = &[
    CORE_EVENTS,
    super::share_api::EVENTS,
    super::download_api::EVENTS,
    super::peer_api::EVENTS,
    super::hub_api::EVENTS,
];

/// Every event of the API.
pub const EVENTS: &[ApiEvent] =
    &describe::concat::<ApiEvent, { describe::count(EVENT_PARTS) }>(EVENT_PARTS, EVENT_PARTS[0][0]);

fn host(weak: &std::rc::Weak<super::host::HostInner>) -> mlua::Result<LuaHost> {
    weak.upgrade()
        .map(LuaHost::from_inner)
        .ok_or_else(|| mlua::Error::runtime("dclua is shutting down"))
}

fn job_id(n: i64) -> JobId {
    JobId(n as u64)
}

fn join_args(args: &Variadic<mlua::Value>) -> String {
    args.iter()
        .map(|v| match v {
            mlua::Value::String(s) => s.to_string_lossy(),
            other => other.to_string().unwrap_or_else(|_| other.type_name().to_string()),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Registers the Rust side of the API in a new state: the `dc` table's
/// native functions and the `native` primitives the prelude builds on.
fn register(
    lua: &Lua,
    host_: &LuaHost,
    script: ScriptId,
    dc: &Table,
    native: &Table,
) -> mlua::Result<()> {
    let weak = host_.downgrade();
    let name = move || {
        host(&weak).ok().and_then(|h| h.script(script)).map(|s| s.name.clone()).unwrap_or_default()
    };
    macro_rules! f {
        ($table:expr, $key:expr, |$lua:ident, $h:ident, $args:tt: $ty:ty| $body:expr) => {{
            let weak = host_.downgrade();
            $table.set(
                $key,
                lua.create_function(move |$lua, $args: $ty| {
                    let $h = host(&weak)?;
                    $body
                })?,
            )?;
        }};
    }

    super::share_api::register(lua, host_, script, native)?;
    super::peer_api::register(lua, host_, script, native)?;
    super::download_api::register(lua, host_, script, native)?;
    super::store_api::register(lua, host_, script, native)?;
    f!(native, "spawn", |_lua, h, (func, args): (Function, MultiValue)| {
        Ok(h.spawn_function(script, func, args)?.0 as i64)
    });
    f!(native, "job_alive", |_lua, h, id: i64| Ok(h.job_alive(job_id(id))));
    f!(native, "job_stop", |_lua, h, id: i64| {
        h.job_stop(job_id(id));
        Ok(())
    });
    f!(native, "job_result", |lua, h, id: i64| h.job_result(lua, job_id(id)));
    f!(native, "job_forget", |_lua, h, id: i64| {
        h.job_forget(job_id(id));
        Ok(())
    });
    f!(native, "on", |_lua, h, (event, func): (String, Function)| Ok(
        h.add_handler(script, &event, func)
    ));
    f!(native, "handler_remove", |_lua, h, id: u64| {
        h.remove_handler(id);
        Ok(())
    });
    f!(native, "timer", |_lua, h, (secs, func, repeating): (f64, Function, bool)| {
        h.add_timer(script, secs, func, repeating)
    });
    f!(native, "timer_stop", |_lua, h, id: u64| {
        h.stop_timer(id);
        Ok(())
    });
    f!(native, "timer_active", |_lua, h, id: u64| Ok(h.timer_active(id)));
    f!(native, "exhausted", |_lua, h, (): ()| Ok(h.exhausted()));
    // SAFETY: co_resume follows the C API's rules (see watchdog).
    native.set("co_resume", unsafe { lua.create_c_function(super::watchdog::co_resume)? })?;
    super::hub_api::register(lua, host_, script, native)?;

    f!(dc, "emit", |_lua, h, (event, data): (String, Option<mlua::Value>)| {
        let data = match data {
            Some(v) => Value::from_lua(&v, "dc.emit's table").map_err(mlua::Error::runtime)?,
            None => Value::Map(Vec::new()),
        };
        h.emit_value(&event, data);
        Ok(())
    });
    native.set(
        "help",
        lua.create_function(|_, name: Option<String>| {
            Ok(match name {
                None => Some(help_index()),
                Some(n) => help(&help_name(&n)),
            })
        })?,
    )?;
    native.set(
        "help_paths",
        lua.create_function(|_, ()| {
            Ok(FUNCTIONS.iter().map(|f| f.path).filter(|p| !p.contains(':')).collect::<Vec<_>>())
        })?,
    )?;
    native.set(
        "did_you_mean",
        lua.create_function(|_, (key, known): (String, Variadic<String>)| {
            let known: Vec<&str> = known.iter().map(String::as_str).collect();
            Ok(crate::config::suggestion(&key, known.iter().copied())
                .map(|k| format!(" (did you mean {k:?}?)"))
                .unwrap_or_default())
        })?,
    )?;
    {
        let name = name.clone();
        native.set(
            "check_event_name",
            lua.create_function(move |_, (event, api): (String, Option<String>)| {
                if !EVENTS.iter().any(|e| e.name == event) {
                    if let Some(k) =
                        crate::config::suggestion(&event, EVENTS.iter().map(|e| e.name))
                    {
                        log::warn!(
                            target: "lua",
                            "{}: {}({event:?}): no built-in event has that name (did you mean {k:?}?); \
                             it is taken as a custom event of dc.emit",
                            name(),
                            api.as_deref().unwrap_or("dc.on")
                        );
                    }
                }
                Ok(())
            })?,
        )?;
    }
    f!(dc, "quit", |_lua, h, code: Option<i32>| {
        capability::check(&h, script, Capability::Quit, "dc.quit").map_err(mlua::Error::runtime)?;
        h.quit(code.unwrap_or(0));
        Ok(())
    });
    f!(dc, "reload_config", |_lua, h, (): ()| {
        capability::check(&h, script, Capability::ReloadConfig, "dc.reload_config")
            .map_err(mlua::Error::runtime)?;
        Ok(match h.reload_config() {
            Ok(()) => (true, None),
            Err(e) => (false, Some(e)),
        })
    });

    let log = lua.create_table()?;
    for (key, level) in [
        ("debug", log::Level::Debug),
        ("info", log::Level::Info),
        ("warn", log::Level::Warn),
        ("error", log::Level::Error),
    ] {
        let name = name.clone();
        log.set(
            key,
            lua.create_function(move |_, args: Variadic<mlua::Value>| {
                log::log!(target: "lua", level, "{}: {}", name(), join_args(&args));
                Ok(())
            })?,
        )?;
    }
    dc.set("log", log)?;

    let scripts = lua.create_table()?;
    f!(scripts, "load", |_lua, h, (path, opts): (String, Option<Table>)| {
        let trusted =
            opts.map(|o| o.get::<Option<bool>>("trusted")).transpose()?.flatten().unwrap_or(false);
        if trusted {
            capability::check(&h, script, Capability::LoadTrusted, "dc.scripts.load")
                .map_err(mlua::Error::runtime)?;
        }
        Ok(match h.load_file(&PathBuf::from(&path), trusted, &[]) {
            Ok(id) => {
                // The loading script lives on until this one has finished.
                h.adopt(script, id);
                (h.script(id).map(|s| s.name.clone()), None)
            }
            Err(e) => (None, Some(e)),
        })
    });
    f!(scripts, "unload", |_lua, h, name: String| {
        Ok(match h.script_by_name(&name) {
            Some(s) if s.id == script => {
                return Err(mlua::Error::runtime(
                    "a script cannot unload itself; end it with dc.scripts.exit()",
                ))
            }
            Some(s) => {
                capability::check(&h, script, Capability::ManageScripts, "dc.scripts.unload")
                    .map_err(mlua::Error::runtime)?;
                h.unload(s.id)
            }
            None => false,
        })
    });
    f!(scripts, "exit", |_lua, h, (): ()| {
        h.end_script(script);
        Ok(())
    });
    f!(scripts, "reload", |_lua, h, name: String| {
        Ok(match h.script_by_name(&name) {
            Some(s) if s.id == script => (false, Some("a script cannot reload itself".to_string())),
            Some(s) => {
                capability::check(&h, script, Capability::ManageScripts, "dc.scripts.reload")
                    .map_err(mlua::Error::runtime)?;
                match h.reload(s.id) {
                    Ok(_) => (true, None),
                    Err(e) => (false, Some(e)),
                }
            }
            None => (false, Some(format!("no script named '{name}' is loaded"))),
        })
    });
    f!(scripts, "list", |_lua, h, (): ()| Ok(h
        .scripts()
        .into_iter()
        .map(|(_, n)| n)
        .collect::<Vec<_>>()));
    dc.set("scripts", scripts)?;

    dc.set("version", env!("CARGO_PKG_VERSION"))?;
    dc.set("args", lua.create_table()?)?;

    // print goes to the user (console or standard output), not to the log.
    {
        let weak = host_.downgrade();
        lua.globals().set(
            "print",
            lua.create_function(move |_, args: Variadic<mlua::Value>| {
                if let Ok(h) = host(&weak) {
                    h.output(&join_args(&args));
                }
                Ok(())
            })?,
        )?;
    }
    Ok(())
}

/// Every name the console completes: functions and fields of the API.
pub fn completion_names() -> Vec<&'static str> {
    let mut v: Vec<&str> =
        FUNCTIONS.iter().map(|f| f.path).chain(FIELDS.iter().map(|f| f.path)).collect();
    v.sort_unstable();
    v
}

/// Help text for a name (`dc.sleep`) or an event name (`chat`).
pub fn help(name: &str) -> Option<String> {
    if let Some(f) = FUNCTIONS.iter().find(|f| f.path == name) {
        let params: Vec<&str> = f.params.iter().map(|p| p.0).collect();
        let mut s = format!("{}({})", f.path, params.join(", "));
        if f.waits {
            s.push_str("  [waits]");
        }
        let _ = write!(s, "\n  {}", f.doc);
        for (n, t, d) in f.params {
            let _ = write!(s, "\n  {n}: {t} — {d}");
        }
        for (t, d) in f.returns {
            let _ = write!(s, "\n  returns {t} — {d}");
        }
        return Some(s);
    }
    if let Some(f) = FIELDS.iter().chain(CLASS_FIELDS).find(|f| f.path == name) {
        return Some(format!("{}: {}\n  {}", f.path, f.ty, f.doc));
    }
    EVENTS.iter().find(|e| e.name == name).map(|e| {
        let mut s = format!("event {}\n  {}", e.name, e.doc);
        for (n, t, d) in e.fields {
            let _ = write!(s, "\n  .{n}: {t} — {d}");
        }
        if e.consumable {
            s.push_str("\n  a handler returning true consumes it");
        }
        s
    })
}

/// What `help()` shows: every function with its first sentence, the
/// events, and how to ask about one name.
pub fn help_index() -> String {
    let mut s = String::from(
        "dclua's Lua API (help(\"dc.search\"), help(dc.sleep) or help(\"chat\") for one):\n",
    );
    for f in FUNCTIONS {
        let params: Vec<&str> = f.params.iter().map(|p| p.0).collect();
        let first = f.doc.split(". ").next().unwrap_or(f.doc).trim_end_matches('.');
        let waits = if f.waits { " [waits]" } else { "" };
        let _ = writeln!(s, "  {}({}){waits} — {first}", f.path, params.join(", "));
    }
    let events: Vec<&str> = EVENTS.iter().map(|e| e.name).collect();
    let _ = write!(s, "events: {}", events.join(", "));
    s
}

/// The name `help` looks up for `name` as people write it: `hub:say` is
/// `dc.Hub:say`, `job:wait` is `dc.Job:wait`.
fn help_name(name: &str) -> String {
    match name.split_once(':') {
        Some((class, method)) if !class.starts_with("dc.") => {
            let mut c = class.chars();
            let class: String =
                c.next().map(|f| f.to_ascii_uppercase()).into_iter().chain(c).collect();
            format!("dc.{class}:{method}")
        }
        _ => name.to_string(),
    }
}

/// The LuaLS definition file (`lua-api/dc.d.lua`), generated from the tables.
pub fn luals_stub() -> String {
    let mut s = String::new();
    s.push_str("---@meta dc\n");
    s.push_str("-- dclua's Lua API for LuaLS. Generated from src/lua/api.rs: do not edit;\n");
    s.push_str("-- `DCLUA_BLESS=1 cargo test --test lua_api` rewrites it.\n");
    s.push_str("error(\"cannot require a meta file\")\n\n");

    // Event names and tables.
    s.push_str("---@alias dc.EventName\n");
    for e in EVENTS {
        let _ = writeln!(s, "---| \"{}\" # {}", e.name, e.doc);
    }
    s.push('\n');
    for e in EVENTS {
        let _ = writeln!(s, "---{}", e.doc);
        let _ = writeln!(s, "---@class dc.event.{}", e.name);
        for (n, t, d) in e.fields {
            let _ = writeln!(s, "---@field {n} {t} {d}");
        }
        s.push('\n');
    }

    // Tables and handle classes, in order of first appearance.
    let mut tables: Vec<&str> = vec!["dc"];
    let mut classes: Vec<&str> = Vec::new();
    for f in FUNCTIONS {
        if let Some((class, _)) = f.path.split_once(':') {
            if !classes.contains(&class) {
                classes.push(class);
            }
        } else if let Some((table, _)) = f.path.rsplit_once('.') {
            if !tables.contains(&table) {
                tables.push(table);
            }
        }
    }
    for t in &tables {
        let _ = writeln!(s, "---@class {t}");
        for field in FIELDS.iter().filter(|f| f.path.rsplit_once('.').is_some_and(|(p, _)| p == *t))
        {
            let (_, n) = field.path.rsplit_once('.').unwrap_or(("", field.path));
            let _ = writeln!(s, "---@field {n} {} {}", field.ty, field.doc);
        }
        let _ = writeln!(s, "{t} = {{}}\n");
    }
    for c in &classes {
        let _ = writeln!(s, "---@class {c}");
        for field in
            CLASS_FIELDS.iter().filter(|f| f.path.rsplit_once('.').is_some_and(|(p, _)| p == *c))
        {
            let (_, n) = field.path.rsplit_once('.').unwrap_or(("", field.path));
            let _ = writeln!(s, "---@field {n} {} {}", field.ty, field.doc);
        }
        let _ = writeln!(s, "local {} = {{}}\n", c.replace('.', "_"));
    }
    for f in FUNCTIONS {
        let _ = writeln!(s, "---{}", f.doc);
        if f.waits {
            s.push_str("---@async\n");
        }
        for (n, t, d) in f.params {
            let _ = writeln!(s, "---@param {n} {t} {d}");
        }
        for (t, d) in f.returns {
            let _ = writeln!(s, "---@return {t} # {d}");
        }
        if f.path == "dc.on" || f.path == "dc.wait" {
            for e in EVENTS {
                if f.path == "dc.on" {
                    let _ = writeln!(
                        s,
                        "---@overload fun(event: \"{}\", handler: async fun(e: dc.event.{}): boolean?): dc.Handler",
                        e.name, e.name
                    );
                } else {
                    let _ = writeln!(
                        s,
                        "---@overload async fun(event: \"{}\", opts?: table): dc.event.{}?",
                        e.name, e.name
                    );
                }
            }
        }
        let params: Vec<&str> = f.params.iter().map(|p| p.0).collect();
        let path = match f.path.split_once(':') {
            Some((class, m)) => format!("{}:{m}", class.replace('.', "_")),
            None => f.path.to_string(),
        };
        let _ = writeln!(s, "function {path}({}) end\n", params.join(", "));
    }
    s
}
