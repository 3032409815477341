//! The Lua side of sharing: `dc.share.*`, `dc.tth`, the events
//! `hash_progress` and `share_updated`, and the answer filter.
//!
//! It turns [`ShareService`] calls and events into Lua values and back; it
//! owns no share state of its own except the scripts' answer filters, and it
//! must not touch the index, the store or the disk (the service does).
//!
//! - Per Lua state, `register` adds `native.share_*` primitives, and the
//!   extension chunk [`LUA`] builds `dc.share` and `dc.tth` on them (waiting
//!   ones on `native.await`).
//! - Once per host, [`install`] connects the host to the service: the
//!   waiting calls `share.add` and `share.tth`, the events, and the filter.
//!
//! # The answer filter (`dc.share.filter(fn)`)
//!
//! Hub sessions answer searches synchronously, so the hook is a plain
//! function, not an event: a script sets one with `dc.share.filter(fn)` (one
//! per script; `nil` removes it; it goes with the script). For every search
//! that has hits, each script's filter is called in load order with
//! `(query, hits)`, outside any coroutine (it must not wait), and returns:
//! `false` to send nothing, a table of hits (or of their paths) to send only
//! those (a filter cannot add hits), or anything else (`nil`, `true`) to leave
//! the hits as they are. A filter that raises an error vetoes the answer
//! (failing closed: a filter usually exists to hide something) and the error
//! is logged.

use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use mlua::{Function, Lua, Table};

use super::capability::{self, Capability};
use super::describe::{ApiEvent, ApiFn};
use super::host::{Event, LuaHost, ScriptId};
use super::value::Value;
use crate::proto::tth::Tth;
use crate::search::{FileType, Query};
use crate::share::hasher::HashProgress;
use crate::share::index::SearchHit;
use crate::share::service::{ShareEvent, ShareService, UpdateSummary};

/// Results `dc.share.find` returns when `max` is not given.
pub const FIND_DEFAULT_MAX: usize = 100;

/// Least time between two progress lines in the console (the last one of a
/// pass always prints).
pub const CONSOLE_PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// The extension chunk: `dc.share` and `dc.tth`.
pub const LUA: &str = r#"
local dc, native = ...
local type, error, tostring = type, error, tostring

local share = {}

function share.add(path, name, hidden)
  if type(path) ~= "string" then
    error("dc.share.add: expected a folder path, got " .. type(path), 2)
  end
  if type(name) ~= "string" then
    error("dc.share.add: expected the name others see, got " .. type(name), 2)
  end
  if hidden ~= nil and type(hidden) ~= "boolean" then
    error("dc.share.add: hidden must be a boolean, got " .. type(hidden), 2)
  end
  native.share_capability("share_folders", "dc.share.add")
  return native.await("share.add", path, name, hidden == true)
end

function share.remove(name)
  if type(name) ~= "string" then
    error("dc.share.remove: expected a share name, got " .. type(name), 2)
  end
  return native.share_remove(name)
end

function share.rescan() native.share_rescan() end
function share.stats() return native.share_stats() end

function share.find(q)
  if type(q) ~= "table" then
    error("dc.share.find: expected a table {text=..., tth=..., type=..., min_size=..., max_size=...}, got "
      .. type(q), 2)
  end
  return native.share_find(q)
end

function share.filter(fn)
  if fn ~= nil and type(fn) ~= "function" then
    error("dc.share.filter: expected a function or nil, got " .. type(fn), 2)
  end
  native.share_filter(fn)
end

dc.share = share

function dc.tth(path)
  if type(path) ~= "string" then
    error("dc.tth: expected a file path, got " .. type(path), 2)
  end
  native.share_capability("hash_files", "dc.tth")
  return native.await("share.tth", path)
end
"#;

/// What this namespace keeps per host (see [`LuaHost::ext`]).
#[derive(Default)]
struct ShareState {
    /// The client's share, once installed.
    service: RefCell<Option<ShareService>>,
    /// Each script's share answer filter, in the order they were set.
    filters: RefCell<Vec<(ScriptId, Function)>>,
}

/// The share of `host`, once sharing runs.
fn share(host: &LuaHost) -> Option<ShareService> {
    host.ext::<ShareState>().service.borrow().clone()
}

/// The share of the host behind `weak`.
fn service(weak: &Weak<super::host::HostInner>) -> mlua::Result<ShareService> {
    weak.upgrade()
        .and_then(|h| share(&LuaHost::from_inner(h)))
        .ok_or_else(|| mlua::Error::runtime("sharing is not running"))
}

/// Adds the `native.share_*` primitives to a new state of `host`.
pub(crate) fn register(
    lua: &Lua,
    host: &LuaHost,
    script: ScriptId,
    native: &Table,
) -> mlua::Result<()> {
    let weak = host.downgrade();
    native.set(
        "share_stats",
        lua.create_function(move |lua, ()| {
            let s = service(&weak)?.stats();
            let t = lua.create_table()?;
            t.set("files", s.files)?;
            t.set("size", s.size)?;
            t.set("pending", s.pending)?;
            t.set("hashed", s.hashed)?;
            t.set("hashed_bytes", s.hashed_bytes)?;
            t.set("hashing", s.hashing)?;
            t.set("progress", progress_value(&s.progress).to_lua(lua)?)?;
            let roots = lua.create_table()?;
            for (i, f) in s.folders.iter().enumerate() {
                let r = lua.create_table()?;
                r.set("name", f.name.as_str())?;
                r.set("path", f.path.display().to_string())?;
                r.set("hidden", f.hidden)?;
                roots.raw_set(i + 1, r)?;
            }
            t.set("roots", roots)?;
            Ok(t)
        })?,
    )?;
    let weak = host.downgrade();
    native.set(
        "share_find",
        lua.create_function(move |lua, q: Table| {
            let (query, limit) = query_from_lua(&q)?;
            hits_to_lua(lua, &service(&weak)?.find(&query, limit))
        })?,
    )?;
    let weak = host.downgrade();
    native.set(
        "share_rescan",
        lua.create_function(move |_, ()| {
            service(&weak)?.rescan();
            Ok(())
        })?,
    )?;
    // Checked before any waiting call, so that the answer is the same with
    // or without a running share.
    let weak = host.downgrade();
    native.set(
        "share_capability",
        lua.create_function(move |_, (cap, api): (String, String)| {
            let cap = match cap.as_str() {
                "share_folders" => Capability::ShareFolders,
                _ => Capability::HashFiles,
            };
            match weak.upgrade().map(LuaHost::from_inner) {
                Some(host) => capability::check(&host, script, cap, &api).map_err(|e| {
                    // Raised at the caller of dc.share.add / dc.tth.
                    mlua::Error::runtime(e)
                }),
                None => Ok(()),
            }
        })?,
    )?;
    let weak = host.downgrade();
    native.set(
        "share_remove",
        lua.create_function(move |_, name: String| {
            if let Some(host) = weak.upgrade().map(LuaHost::from_inner) {
                capability::check(&host, script, Capability::ShareFolders, "dc.share.remove")
                    .map_err(mlua::Error::runtime)?;
            }
            Ok(service(&weak)?.remove(&name))
        })?,
    )?;
    let weak = host.downgrade();
    native.set(
        "share_filter",
        lua.create_function(move |_, f: Option<Function>| {
            let Some(host) = weak.upgrade().map(LuaHost::from_inner) else { return Ok(()) };
            let state = host.ext::<ShareState>();
            let mut fs = state.filters.borrow_mut();
            fs.retain(|(s, _)| *s != script);
            if let Some(f) = f {
                fs.push((script, f));
            }
            Ok(())
        })?,
    )?;
    Ok(())
}

/// Connects `host` to `service`: the waiting calls, the events and the
/// answer filter. Call once, on the worker, after both exist.
pub fn install(host: &LuaHost, service: &ShareService) {
    *host.ext::<ShareState>().service.borrow_mut() = Some(service.clone());
    host.register_async(
        "share.tth",
        Rc::new(|host, call| {
            let path =
                call.args.first().and_then(Value::as_str).ok_or("dc.tth: expected a path")?;
            capability::check(host, call.script, Capability::HashFiles, "dc.tth")?;
            let service = share(host).ok_or("dc.tth: sharing is not running")?;
            let weak = host.downgrade();
            let job = call.job;
            service.hash_file(
                &PathBuf::from(path),
                Box::new(move |result| {
                    if let Some(h) = weak.upgrade().map(LuaHost::from_inner) {
                        h.complete(
                            job,
                            result
                                .map(|f| vec![Value::str(f.tree.root.to_base32())])
                                .map_err(|e| e.to_string()),
                        );
                    }
                }),
            );
            Ok(())
        }),
    );
    host.register_async(
        "share.add",
        Rc::new(|host, call| {
            let path =
                call.args.first().and_then(Value::as_str).ok_or("dc.share.add: expected a path")?;
            let name =
                call.args.get(1).and_then(Value::as_str).ok_or("dc.share.add: expected a name")?;
            let hidden = matches!(call.args.get(2), Some(Value::Bool(true)));
            capability::check(host, call.script, Capability::ShareFolders, "dc.share.add")?;
            let service = share(host).ok_or("dc.share.add: sharing is not running")?;
            let weak = host.downgrade();
            let job = call.job;
            service.add(
                &PathBuf::from(path),
                name,
                hidden,
                Box::new(move |result| {
                    if let Some(h) = weak.upgrade().map(LuaHost::from_inner) {
                        h.complete(job, result.map(|()| vec![Value::Bool(true)]));
                    }
                }),
            );
            Ok(())
        }),
    );

    let weak = host.downgrade();
    let last_print: Rc<Cell<Option<Instant>>> = Rc::new(Cell::new(None));
    service.subscribe(move |event| {
        let Some(host) = weak.upgrade().map(LuaHost::from_inner) else { return };
        match event {
            ShareEvent::Progress(p) => {
                let p = *p;
                let last_print = last_print.clone();
                let weak = host.downgrade();
                let show = move || {
                    if let (Some(line), Some(h)) =
                        (progress_to_show(&p, &last_print), weak.upgrade().map(LuaHost::from_inner))
                    {
                        h.output(&line);
                    }
                };
                host.emit(Event {
                    name: Rc::from("hash_progress"),
                    data: progress_value(&p),
                    default_action: Some(Box::new(show)),
                });
            }
            ShareEvent::Updated(s) => host.emit_value("share_updated", summary_value(s)),
        }
    });

    let weak = host.downgrade();
    service.set_answer_filter(Some(Rc::new(move |query, hits| {
        match weak.upgrade().map(LuaHost::from_inner) {
            Some(host) => run_filters(&host, query, hits),
            None => hits,
        }
    })));
}

/// The `hash_progress` default action's line for the host's output (the
/// console, as `print` from scripts): at most one every
/// [`CONSOLE_PROGRESS_EVERY`] (and always the last of a pass).
fn progress_to_show(p: &HashProgress, last: &Cell<Option<Instant>>) -> Option<String> {
    let now = Instant::now();
    let finished = p.files_done >= p.files_total;
    if !finished && last.get().is_some_and(|t| now.duration_since(t) < CONSOLE_PROGRESS_EVERY) {
        return None;
    }
    last.set(if finished { None } else { Some(now) });
    Some(progress_line(p))
}

/// The console's progress line.
pub fn progress_line(p: &HashProgress) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    if p.files_done >= p.files_total {
        let failed = match p.files_failed {
            0 => String::new(),
            n => format!(", {n} failed"),
        };
        format!(
            "hashing done: {} files, {:.1} MiB{failed}",
            p.files_total,
            p.bytes_total as f64 / MIB
        )
    } else {
        let pct = if p.bytes_total == 0 {
            100.0 * p.files_done as f64 / p.files_total.max(1) as f64
        } else {
            100.0 * p.bytes_done as f64 / p.bytes_total as f64
        };
        format!(
            "hashing: {}/{} files, {:.1}/{:.1} MiB ({pct:.0}%)",
            p.files_done,
            p.files_total,
            p.bytes_done as f64 / MIB,
            p.bytes_total as f64 / MIB
        )
    }
}

fn int(n: u64) -> Value {
    Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

fn progress_value(p: &HashProgress) -> Value {
    Value::map([
        ("files_done", int(p.files_done)),
        ("files_total", int(p.files_total)),
        ("failed", int(p.files_failed)),
        ("bytes_done", int(p.bytes_done)),
        ("bytes_total", int(p.bytes_total)),
    ])
}

fn summary_value(s: &UpdateSummary) -> Value {
    Value::map([
        ("files", int(s.files)),
        ("size", int(s.size)),
        ("pending", int(s.pending)),
        ("hashed", int(s.hashed)),
        ("failed", int(s.failed)),
        ("removed", int(s.removed)),
        ("problems", int(s.problems)),
        ("list", s.list.as_ref().map_or(Value::Nil, |p| Value::str(p.display().to_string()))),
    ])
}

fn file_type(v: &mlua::Value) -> mlua::Result<FileType> {
    let bad = || {
        mlua::Error::runtime(
            "dc.share.find: type must be one of any, audio, compressed, document, executable, \
             picture, video, folder, file (or an NMDC type number 1-8)",
        )
    };
    match v {
        mlua::Value::Nil => Ok(FileType::Any),
        mlua::Value::String(s) => FileType::from_name(&s.to_string_lossy()).ok_or_else(bad),
        // The NMDC type numbers 1-8 are the first eight types, in order.
        mlua::Value::Integer(n) if (1..=8).contains(n) => Ok(FileType::ALL[*n as usize - 1].1),
        _ => Err(bad()),
    }
}

fn size_field(q: &Table, key: &str) -> mlua::Result<Option<u64>> {
    match q.get::<mlua::Value>(key)? {
        mlua::Value::Nil => Ok(None),
        mlua::Value::Integer(n) if n >= 0 => Ok(Some(n as u64)),
        mlua::Value::Number(n) if n >= 0.0 && n.fract() == 0.0 && n < 1.8e19 => Ok(Some(n as u64)),
        other => Err(mlua::Error::runtime(format!(
            "dc.share.find: {key} must be a whole number of bytes >= 0, got {}",
            other.type_name()
        ))),
    }
}

/// The query of a `dc.share.find{...}` table, and its result limit.
fn query_from_lua(q: &Table) -> mlua::Result<(Query, usize)> {
    const KEYS: &[&str] = &["text", "tth", "type", "min_size", "max_size", "size", "max"];
    for pair in q.pairs::<mlua::Value, mlua::Value>() {
        let (k, _) = pair?;
        let known = matches!(&k, mlua::Value::String(s) if KEYS.contains(&&*s.to_string_lossy()));
        if !known {
            return Err(mlua::Error::runtime(format!(
                "dc.share.find: unknown key {} (known: {})",
                k.to_string().unwrap_or_else(|_| k.type_name().to_string()),
                KEYS.join(", ")
            )));
        }
    }
    let mut query = Query::default();
    if let Some(text) = q.get::<Option<String>>("text")? {
        query.include = text.split_whitespace().map(str::to_string).collect();
    }
    if let Some(tth) = q.get::<Option<String>>("tth")? {
        let tth = tth.strip_prefix("TTH:").unwrap_or(&tth);
        query.tth = Some(tth.parse::<Tth>().map_err(|e| {
            mlua::Error::runtime(format!("dc.share.find: tth {tth:?} is not a TTH: {e}"))
        })?);
    }
    query.file_type = file_type(&q.get::<mlua::Value>("type")?)?;
    query.min_size = size_field(q, "min_size")?;
    query.max_size = size_field(q, "max_size")?;
    query.size = size_field(q, "size")?;
    let limit = match size_field(q, "max")? {
        Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
        None => FIND_DEFAULT_MAX,
    };
    if query.tth.is_none()
        && query.include.is_empty()
        && query.file_type == FileType::Any
        && query.min_size.is_none()
        && query.max_size.is_none()
        && query.size.is_none()
    {
        return Err(mlua::Error::runtime(
            "dc.share.find: give at least one of text, tth, type, min_size, max_size, size",
        ));
    }
    Ok((query, limit))
}

fn hit_to_lua(lua: &Lua, h: &SearchHit) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set("path", h.path.as_str())?;
    t.set("size", h.size)?;
    t.set("tth", h.tth.map(|t| t.to_base32()))?;
    t.set("dir", h.is_dir)?;
    Ok(t)
}

fn hits_to_lua(lua: &Lua, hits: &[SearchHit]) -> mlua::Result<Table> {
    let list = lua.create_table_with_capacity(hits.len(), 0)?;
    for (i, h) in hits.iter().enumerate() {
        list.raw_set(i + 1, hit_to_lua(lua, h)?)?;
    }
    Ok(list)
}

fn query_to_lua(lua: &Lua, q: &Query) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    if !q.include.is_empty() {
        t.set("text", q.include.join(" "))?;
    }
    t.set("tth", q.tth.map(|t| t.to_base32()))?;
    t.set("type", q.file_type.name())?;
    t.set("min_size", q.min_size)?;
    t.set("max_size", q.max_size)?;
    t.set("size", q.size)?;
    Ok(t)
}

/// Runs every live script's filter over the hits (see the module docs).
fn run_filters(host: &LuaHost, query: &Query, mut hits: Vec<SearchHit>) -> Vec<SearchHit> {
    let filters: Vec<(ScriptId, Function)> = {
        let state = host.ext::<ShareState>();
        let mut fs = state.filters.borrow_mut();
        // Filters of unloaded scripts go with them.
        fs.retain(|(s, _)| host.script(*s).is_some());
        fs.clone()
    };
    for (sid, f) in filters {
        if hits.is_empty() {
            break;
        }
        let Some(script) = host.script(sid) else { continue };
        let lua = script.lua();
        let outcome = (|| -> mlua::Result<Option<Vec<String>>> {
            let args = (query_to_lua(lua, query)?, hits_to_lua(lua, &hits)?);
            Ok(match host.call_in(&script, || f.call::<mlua::Value>(args))? {
                mlua::Value::Boolean(false) => Some(Vec::new()),
                mlua::Value::Table(t) => {
                    let mut keep = Vec::new();
                    for v in t.sequence_values::<mlua::Value>() {
                        match v? {
                            mlua::Value::Table(h) => {
                                if let Some(p) = h.get::<Option<String>>("path")? {
                                    keep.push(p);
                                }
                            }
                            mlua::Value::String(s) => keep.push(s.to_string_lossy()),
                            _ => {}
                        }
                    }
                    Some(keep)
                }
                _ => None,
            })
        })();
        match outcome {
            Ok(None) => {}
            Ok(Some(keep)) => hits.retain(|h| keep.contains(&h.path)),
            Err(e) => {
                log::error!(target: "lua", "script {}: dc.share.filter failed (it must not wait); the search is not answered: {e}", script.name);
                return Vec::new();
            }
        }
    }
    hits
}

// ----- description ---------------------------------------------------------------

/// The functions and methods of this namespace (`dc.share` and `dc.tth`), for [`api`](super::api)'s description.
pub const FUNCTIONS: &[ApiFn] = &[
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
        path: "dc.tth",
        params: &[("path", "string", "a file")],
        returns: &[("string", "its TTH (39 base32 characters)")],
        doc: "Hashes a file on the helper threads and returns its Tiger tree root; raises when it cannot be read.",
        waits: true,
    },
];

/// The events of this namespace.
pub const EVENTS: &[ApiEvent] = &[
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
];
