//! The `dc` API on top of the host: it composes the namespaces (hubs, share,
//! uploads, downloads, store) with the core functions, gives them to the
//! host as its [`HostApi`] when it builds one (`LuaHost::new`,
//! `LuaHost::with_hubs` are here), and holds the one description of the API
//! that generates the LuaLS stubs (`lua-api/dc.d.lua`), the console's
//! completion and help.
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
        let host = LuaHost::build(rt, opts, hubs, std::rc::Rc::new(Api));
        super::hub_api::install(&host);
        host
    }
}

/// One function or method of the API.
#[derive(Debug)]
pub struct ApiFn {
    /// `dc.sleep`, `dc.scripts.load`, or `dc.Job:wait` for a method.
    pub path: &'static str,
    /// `(name, LuaLS type, description)`.
    pub params: &'static [(&'static str, &'static str, &'static str)],
    /// `(LuaLS type, description)`.
    pub returns: &'static [(&'static str, &'static str)],
    /// What it does.
    pub doc: &'static str,
    /// It waits (yields to the pool): only callable from a coroutine job.
    pub waits: bool,
}

/// One event of the API.
#[derive(Debug)]
pub struct ApiEvent {
    /// The name given to `dc.on` and `dc.wait`.
    pub name: &'static str,
    /// When it happens.
    pub doc: &'static str,
    /// Fields of the event table: `(name, LuaLS type, description)`.
    pub fields: &'static [(&'static str, &'static str, &'static str)],
    /// Whether returning true from a handler means something (consumes it).
    pub consumable: bool,
}

/// A plain value field of a table (`dc.version`).
#[derive(Debug)]
pub struct ApiField {
    /// Its path.
    pub path: &'static str,
    /// LuaLS type.
    pub ty: &'static str,
    /// What it holds.
    pub doc: &'static str,
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

/// The fields of a download event (an item as `dc.queue()` lists it).
macro_rules! item_fields {
    ($($extra:expr),*) => {
        [
            ("id", "integer", "the item's number"),
            ("tth", "string", "the file's TTH"),
            ("size", "integer", "its size"),
            ("name", "string", "its file name"),
            ("target", "string", "where it goes"),
            ("state", "string", "queued, running, done, failed"),
            ("verified", "integer", "bytes verified"),
            ("received", "integer", "bytes received (with those verified before a restart)"),
            ("fetched", "integer", "bytes received since this start"),
            ("progress", "number", "verified / size"),
            ("running", "integer", "connections on it"),
            ("priority", "string", "its priority"),
            ("error", "string?", "the last error"),
            ("path", "string?", "where it went, once done"),
            ("sources", "table[]", "{hub, nick, user, bytes}: bytes sent by each since this start"),
            $($extra),*
        ]
    };
}
const ITEM_FIELDS: [(&str, &str, &str); 15] = item_fields!();
const ITEM_NICK: [(&str, &str, &str); 17] =
    item_fields!(("nick", "string", "the source"), ("tls", "boolean", "the connection is TLS"));
const ITEM_FAILED: [(&str, &str, &str); 17] = item_fields!(
    ("reason", "string", "why"),
    ("final", "boolean", "the file failed, not only a source")
);

/// The functions and methods.
pub const FUNCTIONS: &[ApiFn] = &[
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
        path: "dc.connect",
        params: &[
            ("url", "string", "the hub: dchub://host[:port], nmdc://host[:port] or host:port"),
            ("opts", "{nick?: string, password?: string, charset?: string, follow_redirects?: boolean, reconnect_delay?: number, description?: string, email?: string}?", "`nick`, `description`, `email` (default: the configured ones), `password` for a registered nick, `charset` of the hub's text (default utf-8), `follow_redirects` (default true), `reconnect_delay`: seconds before the first reconnect after a drop, doubled per failed attempt (default 30; 0 = never)"),
        ],
        returns: &[("dc.Hub", "the hub, connecting; it belongs to this script (unloading the script disconnects it)")],
        doc: "Connects to a hub. Watch `hub_connected`, `login_failed` and `hub_disconnected` for how it goes.",
        waits: false,
    },
    ApiFn {
        path: "dc.hubs",
        params: &[],
        returns: &[("dc.Hub[]", "every hub session, oldest first (configured hubs included)")],
        doc: "The hubs this client is connected or connecting to.",
        waits: false,
    },
    ApiFn {
        path: "dc.search",
        params: &[("query", "{text?: string, tth?: string, type?: string, size?: integer, min_size?: integer, max_size?: integer, exclude?: string|string[], extensions?: string|string[], hub?: dc.Hub, timeout?: number, max_results?: integer}|string", "`text` (words, all required) or `tth`; `type`: any, audio, compressed, document, executable, picture, video, folder, tth; sizes in bytes; `hub`: one hub (default: every online hub); `timeout`: seconds to collect (default 5); `max_results`: return as soon as this many arrived. A string is `{text = string}`")],
        returns: &[("table[]", "the results (tables as in the `search_result` event)"), ("string?", "why nothing was searched (no hub online)")],
        doc: "Searches and collects the matching results until the timeout; each is also emitted as `search_result`.",
        waits: true,
    },
    ApiFn {
        path: "dc.Hub:say",
        params: &[("text", "string", "the message"), ("opts", "{me?: boolean}?", "`me`: an action (/me)")],
        returns: &[("boolean", "whether it was sent (the hub is online)"), ("string?", "why not")],
        doc: "Says `text` in the hub's main chat.",
        waits: false,
    },
    ApiFn {
        path: "dc.Hub:pm",
        params: &[("nick", "string", "the recipient"), ("text", "string", "the message"), ("opts", "{me?: boolean}?", "`me`: an action (/me)")],
        returns: &[("boolean", "whether it was sent (the hub is online and the nick is on it)"), ("string?", "why not (\"no such user on this hub: NICK\")")],
        doc: "Sends a private message. The hub does not echo it: no `pm` event fires for your own messages.",
        waits: false,
    },
    ApiFn {
        path: "dc.Hub:users",
        params: &[],
        returns: &[("table[]", "the users, sorted by nick (fields as `user` in `user_joined`)")],
        doc: "Everyone on the hub, as known now.",
        waits: false,
    },
    ApiFn {
        path: "dc.Hub:user",
        params: &[("nick", "string", "the nick")],
        returns: &[("table?", "the user (fields as `user` in `user_joined`), or nil")],
        doc: "One user of the hub.",
        waits: false,
    },
    ApiFn {
        path: "dc.Hub:send_raw",
        params: &[("line", "string", "a protocol line (NMDC: `$Command ...`; the final `|` is added if missing), encoded in the hub's charset")],
        returns: &[("boolean", "whether it was sent (the hub is connected)"), ("string?", "why not")],
        doc: "Sends a line to the hub as it is.",
        waits: false,
    },
    ApiFn {
        path: "dc.Hub:wait",
        params: &[
            ("event", "dc.EventName|string", "the event name"),
            ("opts", "{filter?: table|(fun(e: table): boolean), timeout?: number}?", "as for `dc.wait`; only events of this hub pass"),
        ],
        returns: &[("table?", "the event table, or nil on timeout")],
        doc: "Waits for the next event `event` of this hub that passes the filter.",
        waits: true,
    },
    ApiFn {
        path: "dc.Hub:disconnect",
        params: &[],
        returns: &[],
        doc: "Leaves the hub for good (no reconnect); `hub_disconnected` follows.",
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
    ApiFn {
        path: "dc.share.add",
        params: &[
            ("path", "string", "the folder on disk"),
            ("name", "string", "the name others see (unique, case-insensitively)"),
            ("hidden", "boolean?", "share hidden files and folders too (default false)"),
        ],
        returns: &[("boolean", "true once the folder is in the share (its files are then scanned and hashed; `share_updated` tells when)")],
        doc: "Shares a folder for this session (the configuration file keeps the permanent ones). Raises when the folder is missing or the name is taken.",
        waits: true,
    },
    ApiFn {
        path: "dc.share.remove",
        params: &[("name", "string", "the share name")],
        returns: &[("boolean", "whether such a folder was shared")],
        doc: "Stops sharing a folder: its files are no longer answered at once and leave the file list with the pass that follows.",
        waits: false,
    },
    ApiFn {
        path: "dc.share.rescan",
        params: &[],
        returns: &[],
        doc: "Walks the shared folders again in the background: new and changed files are hashed, gone ones leave the share (`share_updated` tells when it is over).",
        waits: false,
    },
    ApiFn {
        path: "dc.store.save",
        params: &[("name", "string", "1 to 64 letters, digits, `_`, `-`, `.`"), ("value", "table|string|number|boolean|nil", "plain data; nil removes the name")],
        returns: &[("true", "saved (an error says why not)")],
        doc: "Saves a value of this script under `name`, atomically, in the data folder (`store/<script>/<name>.lua`); it survives restarts.",
        waits: false,
    },
    ApiFn {
        path: "dc.store.load",
        params: &[("name", "string", "the name saved under")],
        returns: &[("any", "the value saved, or nil when there is none")],
        doc: "Reads back a value this script saved.",
        waits: false,
    },
    ApiFn {
        path: "dc.store.list",
        params: &[],
        returns: &[("string[]", "the names this script has saved, sorted")],
        doc: "The names in this script's store.",
        waits: false,
    },
    ApiFn {
        path: "dc.data_dir",
        params: &[],
        returns: &[("string?", "the data folder, nil when the client has none")],
        doc: "The client's data folder (trusted scripts and the console).",
        waits: false,
    },
    ApiFn {
        path: "dc.share.stats",
        params: &[],
        returns: &[("{files: integer, size: integer, pending: integer, hashed: integer, hashed_bytes: integer, hashing: boolean, progress: table, roots: {name: string, path: string, hidden: boolean}[]}", "files and bytes shared, files waiting for their hash, files and bytes hashed since the start, whether hashing runs and its progress, the shared folders")],
        doc: "The share's totals.",
        waits: false,
    },
    ApiFn {
        path: "dc.share.find",
        params: &[("query", "{text?: string, tth?: string, type?: string|integer, min_size?: integer, max_size?: integer, size?: integer, max?: integer}", "`text`: words that must all occur in the path; `tth`: a TTH (then the rest is ignored); `type`: any, audio, compressed, document, executable, picture, video, folder, file (or an NMDC type 1-8); sizes in bytes, inclusive; `max`: most results (default 100)")],
        returns: &[("{path: string, size: integer, tth: string?, dir: boolean}[]", "the matching files and folders, in share order")],
        doc: "Searches our own share, as others' searches are answered (without the answer filter).",
        waits: false,
    },
    ApiFn {
        path: "dc.share.filter",
        params: &[("fn", "(fun(query: table, hits: table[]): (boolean|table|nil))?", "called with each incoming search that has hits, outside any coroutine (it must not wait); returns false to answer nothing, a list of hits (or paths) to answer only those, anything else to answer all; nil removes this script's filter")],
        returns: &[],
        doc: "Sets this script's filter on answers to other users' searches; an error in it answers nothing.",
        waits: false,
    },
    ApiFn {
        path: "dc.share.slot_policy",
        params: &[("fn", "(fun(ask: {nick: string, hub: string, cid: string?, file: string, size: integer, free: boolean}): boolean?)?", "called for each request that needs a normal upload slot (files over 64 KiB), outside any coroutine (it must not wait); `free` says whether a slot is free; returns true to grant a slot beyond the count, false to refuse (\"slots full\"), nil for the usual rules; nil removes this script's policy")],
        returns: &[],
        doc: "Sets this script's upload slot policy; an error in it means the usual rules. The first script whose policy says true or false decides.",
        waits: false,
    },
    ApiFn {
        path: "dc.download",
        params: &[
            ("file", "{tth: string, size: integer, name?: string, dir?: string, priority?: string, sources?: table[], hub?: dc.Hub|string, nick?: string, cid?: string, source?: table}", "what to download: a search result, a file of a browsed list, or a table with `tth`, `size`, `name` and `sources` (users: tables with `hub` and `nick`, or `cid` on ADC)"),
            ("opts", "{dir?: string, name?: string, priority?: string}?", "`dir`: a folder below the download folder (an absolute folder needs a trusted script); `name`: another file name; `priority`: paused, lowest, low, normal (default), high, highest"),
        ],
        returns: &[("dc.Download", "the queued item's handle (an item already queued with that TTH gains the sources)")],
        doc: "Queues a file: it is fetched from its sources (several at once for a large file), every block checked against the TTH leaves, and moved into place under a name that never replaces an existing file. The queue survives restarts.",
        waits: false,
    },
    ApiFn {
        path: "dc.Download:wait",
        params: &[],
        returns: &[("string?", "where the verified file is"), ("string?", "why it failed or was cancelled")],
        doc: "Waits until the download is complete and verified.",
        waits: true,
    },
    ApiFn {
        path: "dc.Download:progress",
        params: &[],
        returns: &[("{id: integer, tth: string, size: integer, name: string, target: string, state: string, verified: integer, received: integer, fetched: integer, progress: number, running: integer, priority: string, error: string?, path: string?, sources: {hub: string, nick: string, user: string, bytes: integer}[]}?", "the item now (as in `dc.queue()`), nil when unknown")],
        doc: "Where the download stands.",
        waits: false,
    },
    ApiFn {
        path: "dc.Download:cancel",
        params: &[],
        returns: &[("boolean", "whether it was in the queue"), ("string?", "why not")],
        doc: "Removes the item from the queue with its temporary file; a waiting `wait` returns nil and the reason.",
        waits: false,
    },
    ApiFn {
        path: "dc.queue",
        params: &[],
        returns: &[("{id: integer, tth: string, size: integer, name: string, target: string, state: string, verified: integer, received: integer, fetched: integer, progress: number, running: integer, priority: string, error: string?, path: string?, sources: {hub: string, nick: string, user: string, bytes: integer}[]}[]", "queued items, then those finished since start; each has `handle`, its dc.Download")],
        doc: "The download queue.",
        waits: false,
    },
    ApiFn {
        path: "dc.magnet",
        params: &[("uri", "string", "magnet:?xt=urn:tree:tiger:TTH&xl=SIZE&dn=NAME"), ("opts", "{sources?: table[], dir?: string, priority?: string}?", "when given, the file is queued (as `dc.download`)")],
        returns: &[("table|dc.Download", "without `opts`: {tth, size, name}; with: the queued download")],
        doc: "Reads a magnet link, and queues it when `opts` are given.",
        waits: false,
    },
    ApiFn {
        path: "dc.share.magnet",
        params: &[("path", "string", "a file of the share, as its path in our list (`/Share/sub/file.ext`)")],
        returns: &[("string?", "magnet:?xt=urn:tree:tiger:TTH&xl=SIZE&dn=NAME"), ("string?", "why not (not shared, not hashed yet)")],
        doc: "The magnet link of a shared file, for others to queue.",
        waits: false,
    },
    ApiFn {
        path: "dc.browse",
        params: &[("user", "table", "a user: a search result, a `user_joined` user, or {hub = hub, nick = ...}"), ("opts", "{dir?: string}?", "`dir`: a partial list of that folder only")],
        returns: &[("dc.FileList", "the list's root folder")],
        doc: "Downloads and reads a user's file list (bounded: a bomb or a list that is not XML fails with the reason).",
        waits: true,
    },
    ApiFn {
        path: "dc.FileList:dirs",
        params: &[],
        returns: &[("fun(): dc.FileList?", "an iterator over the subfolders")],
        doc: "The subfolders (`for d in list:dirs() do print(d.name) end`). A folder has the fields `name`, `path`, `size`, `file_count`, `incomplete`, `nick`.",
        waits: false,
    },
    ApiFn {
        path: "dc.FileList:files",
        params: &[("recursive", "boolean?", "false: this folder only (default: everything below)")],
        returns: &[("fun(): table?", "an iterator over files {name, path, size, tth, source}, each with `:download(opts)`")],
        doc: "The files in this folder and below.",
        waits: false,
    },
    ApiFn {
        path: "dc.FileList:dir",
        params: &[("path", "string", "a folder path, relative to this folder or absolute (`/share/sub`), case-insensitive")],
        returns: &[("dc.FileList?", "the folder, or nil")],
        doc: "A subfolder.",
        waits: false,
    },
    ApiFn {
        path: "dc.FileList:find",
        params: &[("words", "string", "words that must all occur in the path"), ("max", "integer?", "results at most (default 100)")],
        returns: &[("table[]", "files below this folder, as from `files()`")],
        doc: "Searches the list as the hub search would.",
        waits: false,
    },
    ApiFn {
        path: "dc.FileList:download",
        params: &[("opts", "{dir?: string, priority?: string}?", "`dir`: where the folder goes (default: its name, in the download folder)")],
        returns: &[("dc.Download[]", "the queued files")],
        doc: "Queues every file of this folder and below, keeping the folder structure.",
        waits: false,
    },
    ApiFn {
        path: "dc.User:pm",
        params: &[("text", "string", "the message"), ("opts", "{me?: boolean}?", "`me`: an action (/me)")],
        returns: &[("boolean", "whether it was sent"), ("string?", "why not")],
        doc: "Sends the user a private message on their hub (`user.hub:pm(user.nick, text)`).",
        waits: false,
    },
    ApiFn {
        path: "dc.SearchResult:download",
        params: &[("opts", "{dir?: string, name?: string, priority?: string}?", "as for `dc.download`")],
        returns: &[("dc.Download", "the queued file")],
        doc: "Queues the file of a search result (`dc.download(result, opts)`); a folder result is an error.",
        waits: false,
    },
    ApiFn {
        path: "dc.SearchResult:browse",
        params: &[("opts", "{dir?: string}?", "as for `dc.browse`")],
        returns: &[("dc.FileList", "the list of the user who has it")],
        doc: "Browses the share of the user who answered (`dc.browse(result, opts)`).",
        waits: true,
    },
    ApiFn {
        path: "dc.uploads",
        params: &[],
        returns: &[("{nick: string, hub: string, cid: string?, file: string, start: integer, bytes: integer, sent: integer, tls: boolean, compressed: boolean, seconds: number}[]", "the uploads running now: the user, the file (share path, files.xml.bz2 or a list folder), the range asked for, bytes sent so far (uncompressed), whether over TLS and zlib-compressed, seconds since the start")],
        doc: "The uploads running now.",
        waits: false,
    },
    ApiFn {
        path: "dc.tth",
        params: &[("path", "string", "a file")],
        returns: &[("string", "its TTH (39 base32 characters)")],
        doc: "Hashes a file on the helper threads and returns its Tiger tree root; raises when it cannot be read.",
        waits: true,
    },
];

/// Plain fields.
pub const FIELDS: &[ApiField] = &[
    ApiField { path: "dc.version", ty: "string", doc: "dclua's version." },
    ApiField { path: "dc.script", ty: "string", doc: "The name of the running script." },
    ApiField { path: "dc.args", ty: "string[]", doc: "Command-line arguments given to `dclua run SCRIPT ARGS...` (also the main chunk's `...`)." },
];

/// Fields of objects (`hub.name`), read live. Kept apart from [`FIELDS`],
/// which lists what a walk of the `dc` table finds.
pub const CLASS_FIELDS: &[ApiField] = &[
    ApiField { path: "dc.Hub.id", ty: "integer", doc: "The hub session's id." },
    ApiField {
        path: "dc.Hub.url",
        ty: "string",
        doc: "The hub's address (after a followed redirect, the new one).",
    },
    ApiField { path: "dc.Hub.protocol", ty: "\"nmdc\"|\"adc\"", doc: "The protocol." },
    ApiField {
        path: "dc.Hub.state",
        ty: "\"connecting\"|\"logging_in\"|\"online\"|\"reconnecting\"|\"disconnected\"",
        doc: "Where the session stands.",
    },
    ApiField {
        path: "dc.Hub.name",
        ty: "string",
        doc: "The hub's name (empty until the hub sends it).",
    },
    ApiField { path: "dc.Hub.topic", ty: "string", doc: "The hub's topic." },
    ApiField { path: "dc.Hub.nick", ty: "string", doc: "Your nick on this hub." },
    ApiField {
        path: "dc.Hub.keyprint",
        ty: "string?",
        doc: "The hub's TLS keyprint (TLS hubs only).",
    },
    ApiField { path: "dc.Hub.charset", ty: "string", doc: "The hub's text encoding." },
    ApiField { path: "dc.Hub.user_count", ty: "integer", doc: "Users listed." },
    ApiField { path: "dc.Hub.share", ty: "integer", doc: "Bytes shared by all users listed." },
];

/// The events. Share events join this table with their feature.
pub const EVENTS: &[ApiEvent] = &[
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
    ApiEvent {
        name: "hash_progress",
        doc: "Hashing progress of the share (at most two a second; the last one of a pass, files_done = files_total, always comes). The default action prints a line in the console every few seconds.",
        fields: &[
            ("files_done", "integer", "files hashed (or failed) so far in this pass"),
            ("files_total", "integer", "files this pass hashes"),
            ("failed", "integer", "files that could not be hashed"),
            ("bytes_done", "integer", "bytes hashed so far"),
            ("bytes_total", "integer", "bytes this pass hashes"),
        ],
        consumable: true,
    },
    ApiEvent {
        name: "download_started",
        doc: "A connection started fetching a queued file (a segment, or its TTH leaves).",
        fields: &ITEM_NICK,
        consumable: false,
    },
    ApiEvent {
        name: "download_progress",
        doc: "A running download moved on (at most once a second per file).",
        fields: &ITEM_FIELDS,
        consumable: false,
    },
    ApiEvent {
        name: "download_finished",
        doc: "A file is complete, verified against its TTH, and in place.",
        fields: &ITEM_FIELDS,
        consumable: false,
    },
    ApiEvent {
        name: "download_failed",
        doc: "A source failed for a file (a bad block, slots full, gone, does not have it) or, with `final`, the file itself failed.",
        fields: &ITEM_FAILED,
        consumable: false,
    },
    ApiEvent {
        name: "queue_changed",
        doc: "Items were added to, removed from or finished in the download queue.",
        fields: &[],
        consumable: false,
    },
    ApiEvent {
        name: "upload_started",
        doc: "A user started downloading from us (one event per request: a file, our file list, a partial list, TTH leaves).",
        fields: &[
            ("nick", "string", "the user downloading"),
            ("hub", "string", "the hub the connection came through"),
            ("cid", "string?", "the user's CID (ADC)"),
            ("file", "string", "the share path, files.xml.bz2, or the folder of a partial list"),
            ("start", "integer", "the first byte asked for"),
            ("bytes", "integer", "bytes asked for"),
            ("sent", "integer", "0"),
            ("tls", "boolean", "over TLS"),
            ("compressed", "boolean", "sent zlib-compressed, as the user asked (ZLIG)"),
        ],
        consumable: false,
    },
    ApiEvent {
        name: "upload_finished",
        doc: "An upload was sent completely.",
        fields: &[
            ("nick", "string", "the user downloading"),
            ("hub", "string", "the hub the connection came through"),
            ("cid", "string?", "the user's CID (ADC)"),
            ("file", "string", "the share path, files.xml.bz2, or the folder of a partial list"),
            ("start", "integer", "the first byte"),
            ("bytes", "integer", "bytes sent"),
            ("sent", "integer", "bytes sent"),
            ("tls", "boolean", "over TLS"),
            ("compressed", "boolean", "sent zlib-compressed"),
            ("seconds", "number", "how long it took"),
        ],
        consumable: false,
    },
    ApiEvent {
        name: "upload_failed",
        doc: "A request was refused (not in the share, slots full, a bad range) or an upload ended early (the peer left, too slow, the client stopping); also when a passive user asks us, passive too, for a connection.",
        fields: &[
            ("nick", "string?", "the user, when known"),
            ("hub", "string?", "the hub, when known"),
            ("cid", "string?", "the user's CID (ADC)"),
            ("file", "string", "what was asked for (empty before any request)"),
            ("bytes", "integer", "bytes sent before the end"),
            ("seconds", "number", "how long it ran"),
            ("reason", "string", "why"),
        ],
        consumable: false,
    },
    ApiEvent {
        name: "share_updated",
        doc: "A pass over the shared folders is over and our file list is written.",
        fields: &[
            ("files", "integer", "files in the share"),
            ("size", "integer", "bytes in the share"),
            ("pending", "integer", "files not hashed (yet, or that could not be)"),
            ("hashed", "integer", "files this pass hashed"),
            ("failed", "integer", "files this pass could not hash"),
            ("removed", "integer", "stored files gone from the share"),
            ("problems", "integer", "entries the walk skipped (unreadable, dangling links)"),
            ("list", "string?", "our files.xml.bz2"),
        ],
        consumable: false,
    },
    ApiEvent {
        name: "hub_connected",
        doc: "Logged in to a hub, with its initial user list.",
        fields: &[("hub", "dc.Hub", "the hub"), ("users", "integer", "users listed")],
        consumable: false,
    },
    ApiEvent {
        name: "hub_disconnected",
        doc: "A hub connection (or an attempt) ended.",
        fields: &[("hub", "dc.Hub", "the hub"), ("reason", "string", "why"), ("reconnect_in", "number?", "seconds until the next attempt; nil when the session ended for good")],
        consumable: false,
    },
    ApiEvent {
        name: "login_failed",
        doc: "A hub refused the login (wrong password, nick taken, no password set). After a wrong or missing password the session ends.",
        fields: &[("hub", "dc.Hub", "the hub"), ("reason", "string", "why"), ("raw", "string?", "the line that said so")],
        consumable: false,
    },
    ApiEvent {
        name: "chat",
        doc: "A main-chat message (yours too: hubs echo main chat). Shown in the console unless consumed.",
        fields: &[("hub", "dc.Hub", "the hub"), ("nick", "string?", "the sender; nil for hub text"), ("text", "string", "the message"), ("me", "boolean", "an action (/me)"), ("raw", "string", "the line")],
        consumable: true,
    },
    ApiEvent {
        name: "pm",
        doc: "A private message to you (not your own: hubs do not echo them). Shown in the console unless consumed.",
        fields: &[("hub", "dc.Hub", "the hub"), ("from", "string", "the sender"), ("to", "string", "you"), ("nick", "string?", "the nick shown inside the message (a relaying bot may show another)"), ("text", "string", "the message"), ("me", "boolean", "an action (/me)"), ("raw", "string", "the line")],
        consumable: true,
    },
    ApiEvent {
        name: "user_joined",
        doc: "A user arrived on a hub (users of the initial list at login are not reported one by one).",
        fields: &[("hub", "dc.Hub", "the hub"), ("nick", "string", "the nick"), ("user", "dc.User", "hub, nick, description, email, connection, client, version, share, slots, free_slots, mode (\"active\"|\"passive\"|\"socks5\"|nil), hubs {normal, registered, op}, op, bot, away, ip, cid and sid (ADC), raw (as `raw` below); methods `user:pm(text)`"), ("raw", "string", "the user's line, rebuilt from what is kept: what the hub sent, in canonical form, not byte for byte (empty for a user known only by nick)")],
        consumable: false,
    },
    ApiEvent {
        name: "user_updated",
        doc: "A user's information changed.",
        fields: &[("hub", "dc.Hub", "the hub"), ("nick", "string", "the nick"), ("user", "dc.User", "the user, updated (fields as in `user_joined`)"), ("raw", "string", "the user's line, rebuilt (as in `user_joined`)")],
        consumable: false,
    },
    ApiEvent {
        name: "user_left",
        doc: "A user left a hub.",
        fields: &[("hub", "dc.Hub", "the hub"), ("nick", "string", "the nick")],
        consumable: false,
    },
    ApiEvent {
        name: "search",
        doc: "Someone searches on a hub (your own searches are not reported).",
        fields: &[("hub", "dc.Hub", "the hub"), ("nick", "string?", "the searcher, for a passive search"), ("address", "string?", "ip:port where results go, for an active search"), ("passive", "boolean", "results go through the hub"), ("text", "string", "the words (empty for a TTH search)"), ("tth", "string?", "the TTH searched for"), ("type", "string?", "any, audio, compressed, document, executable, picture, video, folder or tth"), ("type_code", "integer", "the protocol's type code"), ("min_size", "integer?", "bytes"), ("max_size", "integer?", "bytes"), ("raw", "string", "the line")],
        consumable: false,
    },
    ApiEvent {
        name: "search_result",
        doc: "A search result arrived (by UDP or through a hub).",
        fields: &[("hub", "dc.Hub", "the hub"), ("nick", "string", "who has it"), ("path", "string", "the path in their share, /-separated"), ("name", "string", "the file or folder name"), ("size", "integer?", "bytes; nil for a folder"), ("tth", "string?", "the file's TTH"), ("is_dir", "boolean", "a folder"), ("free_slots", "integer", "their free slots"), ("slots", "integer", "their slots"), ("hub_name", "string", "the hub name the result gives"), ("via", "\"udp\"|\"hub\"", "how it arrived"), ("raw", "string", "the line"), ("user", "dc.User?", "the user who has it, while on the hub (looked up when read)")],
        consumable: false,
    },
    ApiEvent {
        name: "hub_raw",
        doc: "A line from a hub, before the client processes it (only while a handler or waiter exists; lines keep their order).",
        fields: &[("hub", "dc.Hub", "the hub"), ("raw", "string", "the line, without its terminator")],
        consumable: true,
    },
    ApiEvent {
        name: "hub_redirect",
        doc: "A hub redirects the client elsewhere; it is followed when `follow` is true and no handler consumes the event (consuming vetoes it).",
        fields: &[("hub", "dc.Hub", "the hub"), ("url", "string", "the new address"), ("reason", "string", "the hub's reason, if any"), ("follow", "boolean", "whether the hub's policy (follow_redirects) follows it")],
        consumable: true,
    },
    ApiEvent {
        name: "hub_info",
        doc: "A hub's name or topic changed.",
        fields: &[("hub", "dc.Hub", "the hub"), ("name", "string", "the name"), ("topic", "string", "the topic")],
        consumable: false,
    },
    ApiEvent {
        name: "connection_request",
        doc: "Someone asks for a client-client connection (transfers).",
        fields: &[("hub", "dc.Hub", "the hub"), ("nick", "string?", "the user, when the request names them"), ("address", "string?", "ip:port to connect to"), ("tls", "boolean", "TLS required"), ("reverse", "boolean", "a passive user asks you to send a connection request"), ("raw", "string", "the line")],
        consumable: false,
    },
];

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
