//! The Lua side of downloads: `dc.download` and its handle (`dc.Download`:
//! `wait`, `progress`, `cancel`), `dc.queue()`, `dc.magnet(uri)`,
//! `dc.browse(user)` and the file-list objects (`dc.FileList`: `files`,
//! `dirs`, `dir`, `find`, `download`), `result:download()` on search
//! results, and the `download_*` / `queue_changed` events.
//!
//! A browsed list stays in Rust (a million entries would be hundreds of MB
//! as Lua tables): the Lua objects hold the list's number and a folder path,
//! and each method asks for one folder's entries, or a search, at a time.
//! A script keeps at most [`MAX_LISTS`] lists; browsing more drops its
//! oldest (its objects then say so).
//!
//! Trust: any script may download into the download folder (a `dir` is a
//! folder below it, made safe); an absolute `dir` elsewhere needs a trusted
//! script (the capability `DownloadAnywhere`).
//!
//! Must not: keep a `Downloads` in a state's registry (the host's extension
//! slot keeps it), or hand a list's Rust structure to Lua.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::rc::Rc;

use mlua::{Lua, Table};

use super::capability::{self, Capability};
use super::describe::{ApiEvent, ApiFn};
use super::host::{Event, LuaHost, ScriptId};
use super::value::Value;
use crate::download::{DownloadEvent, Downloads, ItemId, ItemInfo, NewDownload};
use crate::hub::{HubState, Protocol};
use crate::proto::tth::Tth;
use crate::share::filelist::{ListDir, Listing};
use crate::transfer::queue::{Priority, Source};

/// Browsed lists a script keeps at most.
pub const MAX_LISTS: usize = 16;

/// The registry key of the table of this module's classes' methods.
pub const CLASSES_KEY: &str = "dc.download_classes";

/// Results of `list:find` at most.
pub const MAX_FIND: usize = 10_000;

/// The extension chunk.
pub const LUA: &str = r#"
local dc, native = ...
local type, error, setmetatable, getmetatable, rawget, tostring, ipairs =
  type, error, setmetatable, getmetatable, rawget, tostring, ipairs

-- dc.Download: a queued item's handle.
local Download = {}
local download_mt = {
  __name = "dc.Download",
  __index = Download,
  __tostring = function(self) return "dc.Download(" .. tostring(rawget(self, "id")) .. ")" end,
}
native.classes["dc.Download"] = Download

local function handle(id, tth)
  return setmetatable({ id = id, tth = tth }, download_mt)
end

local function item_id(self, method)
  if type(self) ~= "table" or getmetatable(self) ~= download_mt then
    error("dc.Download:" .. method .. ": call it on a download, with ':' (d:" .. method .. "())", 3)
  end
  return rawget(self, "id")
end

function Download:wait() return native.await("download.wait", item_id(self, "wait")) end
function Download:progress() return native.download_info(item_id(self, "progress")) end
function Download:cancel() return native.download_cancel(item_id(self, "cancel")) end

local function hub_url(h)
  if type(h) == "table" then return h.url end
  return h
end

-- The user a table names: a search result, a user, a list, or {hub=, nick=}.
local function who(t, api)
  if type(t) ~= "table" then
    error(api .. ": expected a user (a table with hub and nick), got " .. type(t), 3)
  end
  local url = hub_url(t.hub)
  if type(url) ~= "string" or (type(t.nick) ~= "string" and type(t.cid) ~= "string") then
    error(api .. ": the user needs a hub and a nick (or cid)", 3)
  end
  return url, t.nick, t.cid
end

function dc.download(spec, opts)
  if type(spec) ~= "table" then
    error("dc.download: expected a table {tth = ..., size = ..., name = ..., sources = ...} or a search result, got " .. type(spec), 2)
  end
  opts = opts or {}
  if type(opts) ~= "table" then error("dc.download: options must be a table", 2) end
  local sources = {}
  local list = spec.sources or {}
  if spec.hub ~= nil then list = { spec } end
  if spec.source ~= nil then list = { spec.source } end
  for i, s in ipairs(list) do
    local url, nick, cid = who(s, "dc.download")
    sources[i] = { hub = url, nick = nick, cid = cid }
  end
  local id, err = native.download({
    tth = spec.tth, size = spec.size, name = opts.name or spec.name,
    dir = opts.dir or spec.dir, priority = opts.priority or spec.priority,
  }, sources)
  if id == nil then error("dc.download: " .. tostring(err), 2) end
  return handle(id, spec.tth)
end

function dc.queue()
  local items = native.queue()
  for _, it in ipairs(items) do
    it.handle = handle(it.id, it.tth)
  end
  return items
end

function dc.magnet(uri, opts)
  if type(uri) ~= "string" then error("dc.magnet: expected a magnet URI, got " .. type(uri), 2) end
  local m, err = native.magnet(uri)
  if m == nil then error("dc.magnet: " .. err, 2) end
  if opts == nil then return m end
  if type(opts) ~= "table" then error("dc.magnet: options must be a table", 2) end
  if opts.sources then m.sources = opts.sources end
  return dc.download(m, opts)
end

function dc.share.magnet(path)
  if type(path) ~= "string" then
    error("dc.share.magnet: expected a share path (\"/Share/file.ext\"), got " .. type(path), 2)
  end
  local want = path:gsub("^/+", ""):lower()
  local name = want:match("([^/]+)$")
  if name == nil then return nil, "not a file path: " .. path end
  local words = name:gsub("[%c%p%s]+", " ")
  for _, h in ipairs(dc.share.find({ text = words, max = 1000 })) do
    if h.tth ~= nil and h.path:gsub("^/+", ""):lower() == want then
      return native.magnet_of(h.tth, h.size, h.path:match("([^/]+)$"))
    end
  end
  return nil, "no hashed file " .. path .. " in the share"
end

-- dc.FileList: a folder of a browsed list.
local FileList = {}
local list_mt = {
  __name = "dc.FileList",
  __index = function(self, key)
    local f = FileList[key]
    if f ~= nil then return f end
    return native.list_field(rawget(self, "list"), rawget(self, "path"), key)
  end,
  __tostring = function(self) return "dc.FileList(" .. tostring(rawget(self, "path")) .. ")" end,
}
native.classes["dc.FileList"] = FileList

local function folder(list, path)
  return setmetatable({ list = list, path = path }, list_mt)
end

local function list_of(self, method)
  if type(self) ~= "table" or getmetatable(self) ~= list_mt then
    error("dc.FileList:" .. method .. ": call it on a file list, with ':' (list:" .. method .. "(...))", 3)
  end
  return rawget(self, "list"), rawget(self, "path")
end

local function file_entry(list, f)
  f.source = native.list_source(list)
  f.download = function(self, opts) return dc.download(self, opts) end
  return f
end

function FileList:dirs()
  local list, path = list_of(self, "dirs")
  local names = native.list_dir(list, path).dirs
  local i = 0
  return function()
    i = i + 1
    if names[i] ~= nil then return folder(list, path .. names[i] .. "/") end
  end
end

function FileList:files(recursive)
  local list, path = list_of(self, "files")
  local stack, files, i = { path }, nil, 0
  return function()
    while true do
      if files ~= nil and i < #files then
        i = i + 1
        return file_entry(list, files[i])
      end
      local p = table.remove(stack)
      if p == nil then return nil end
      local d = native.list_dir(list, p)
      files, i = d.files, 0
      if recursive ~= false then
        for k = #d.dirs, 1, -1 do stack[#stack + 1] = p .. d.dirs[k] .. "/" end
      end
    end
  end
end

function FileList:dir(sub)
  local list, path = list_of(self, "dir")
  if type(sub) ~= "string" then error("dc.FileList:dir: expected a path, got " .. type(sub), 2) end
  local p = native.list_resolve(list, path, sub)
  if p == nil then return nil end
  return folder(list, p)
end

function FileList:find(text, max)
  local list, path = list_of(self, "find")
  if type(text) ~= "string" then error("dc.FileList:find: expected words, got " .. type(text), 2) end
  local hits = native.list_find(list, path, text, max or 100)
  for i, f in ipairs(hits) do hits[i] = file_entry(list, f) end
  return hits
end

function FileList:download(opts)
  local list, path = list_of(self, "download")
  opts = opts or {}
  local base = opts.dir or native.list_field(list, path, "name")
  local out = {}
  for f in self:files() do
    local rel = f.path:sub(#path + 1)
    local sub = rel:match("^(.*)/[^/]*$")
    local dir = base
    if sub ~= nil and sub ~= "" then dir = (base ~= "" and (base .. "/") or "") .. sub end
    out[#out + 1] = dc.download(f, { dir = dir, priority = opts.priority })
  end
  return out
end

-- dc.SearchResult: a search result record, with methods.
local Result = {}
local result_mt = {
  __name = "dc.SearchResult",
  __index = function(t, key)
    if key == "user" then
      local h = rawget(t, "hub")
      return h and h:user(rawget(t, "nick"))
    end
    return Result[key]
  end,
}
native.classes["dc.SearchResult"] = Result
native.class("dc.SearchResult", function(t) return setmetatable(t, result_mt) end)

local function result_of(self, method)
  if type(self) ~= "table" or getmetatable(self) ~= result_mt then
    error("dc.SearchResult:" .. method .. ": call it on a search result, with ':' (r:" .. method .. "())", 3)
  end
  return self
end

function Result:download(opts)
  local r = result_of(self, "download")
  if r.is_dir then error("dc.SearchResult:download: " .. tostring(r.path) .. " is a folder; browse it", 2) end
  return dc.download(r, opts)
end

function Result:browse(opts) return dc.browse(result_of(self, "browse"), opts) end

function dc.browse(user, opts)
  local url, nick, cid = who(user, "dc.browse")
  opts = opts or {}
  local list = native.await("download.browse", url, nick, cid, opts.dir)
  return folder(list, "/")
end
"#;

/// A browsed list: its number, the script that owns it, the list, whose.
type Browsed = (i64, ScriptId, Rc<Listing>, Source);

/// What the host keeps for this module.
#[derive(Default)]
struct DownloadState {
    downloads: RefCell<Option<Downloads>>,
    /// Browsed lists: number, owning script, the list and its source.
    lists: RefCell<VecDeque<Browsed>>,
    next: std::cell::Cell<i64>,
}

/// The downloads service the host was given, if any.
pub(crate) fn downloads(host: &LuaHost) -> Option<Downloads> {
    host.ext::<DownloadState>().downloads.borrow().clone()
}

fn list(host: &LuaHost, id: i64) -> mlua::Result<(Rc<Listing>, Source)> {
    let state = host.ext::<DownloadState>();
    let lists = state.lists.borrow();
    lists.iter().find(|l| l.0 == id).map(|l| (l.2.clone(), l.3.clone())).ok_or_else(|| {
        mlua::Error::runtime(
            "this file list was dropped (a script keeps its 16 newest); browse again",
        )
    })
}

/// Finds a user on an online hub: the source as the queue keys it.
fn resolve(
    host: &LuaHost,
    url: &str,
    nick: Option<&str>,
    cid: Option<&str>,
) -> Result<Source, String> {
    let hubs = super::hub_api::hubs(host);
    for id in hubs.ids() {
        let Some(info) = hubs.get(id) else { continue };
        let info = info.borrow();
        if info.url != url {
            continue;
        }
        if info.protocol == Protocol::Adc {
            let by_cid = cid
                .and_then(|c| crate::proto::adc::Cid::from_base32(c).ok())
                .and_then(|c| info.users.by_cid(&c));
            let user = by_cid.or_else(|| nick.and_then(|n| info.users.get(n)));
            return match user {
                Some(u) => Ok(Source {
                    hub: url.to_string(),
                    user: u.cid_text().unwrap_or_default(),
                    nick: u.nick().to_string(),
                }),
                None if info.state != HubState::Online => {
                    Err(format!("the hub {url} is not online"))
                }
                None => match cid {
                    // Known by CID: queued, found when it comes back.
                    Some(c) => Ok(Source {
                        hub: url.into(),
                        user: c.into(),
                        nick: nick.unwrap_or(c).into(),
                    }),
                    None => Err(format!("no user {} on {url}", nick.unwrap_or("?"))),
                },
            };
        }
        let nick = nick.ok_or("an NMDC user needs a nick")?;
        return Ok(Source { hub: url.to_string(), user: nick.to_string(), nick: nick.to_string() });
    }
    Err(format!("no hub {url} (connect to it first)"))
}

fn item_value(i: &ItemInfo) -> Value {
    Value::map([
        ("id", Value::Int(i.id.0)),
        ("tth", Value::str(i.tth.to_base32())),
        ("size", Value::Int(i.size as i64)),
        ("name", Value::str(i.target.file_name().map(|n| n.to_string_lossy()).unwrap_or_default())),
        ("target", Value::str(i.target.to_string_lossy())),
        ("state", Value::str(i.state)),
        ("verified", Value::Int(i.verified as i64)),
        ("received", Value::Int(i.received as i64)),
        ("fetched", Value::Int(i.fetched as i64)),
        ("progress", Value::Num(if i.size == 0 { 1.0 } else { i.verified as f64 / i.size as f64 })),
        ("running", Value::Int(i.running as i64)),
        ("priority", Value::str(i.priority)),
        ("error", i.error.as_deref().map_or(Value::Nil, Value::str)),
        ("path", i.path.as_ref().map_or(Value::Nil, |p| Value::str(p.to_string_lossy()))),
        (
            "sources",
            Value::List(
                i.sources
                    .iter()
                    .map(|(s, bytes)| {
                        Value::map([
                            ("hub", Value::str(&s.hub)),
                            ("nick", Value::str(&s.nick)),
                            ("user", Value::str(&s.user)),
                            ("bytes", Value::Int(*bytes as i64)),
                        ])
                    })
                    .collect(),
            ),
        ),
    ])
}

fn dir_at<'l>(l: &'l Listing, path: &str) -> Option<&'l ListDir> {
    l.root.find_dir(path)
}

/// Adds the `native.*` primitives of this module.
pub(crate) fn register(
    lua: &Lua,
    host: &LuaHost,
    script: ScriptId,
    native: &Table,
) -> mlua::Result<()> {
    // The methods of this module's classes, by class name: the API test
    // walks them (there is no handle to walk without a client).
    let classes = lua.create_table()?;
    lua.set_named_registry_value(CLASSES_KEY, &classes)?;
    native.set("classes", classes)?;
    let weak = host.downgrade();
    let host_of = move || {
        weak.upgrade()
            .map(LuaHost::from_inner)
            .ok_or_else(|| mlua::Error::runtime("the client is stopping"))
    };
    macro_rules! f {
        ($key:expr, |$lua:ident, $h:ident, $args:tt: $ty:ty| $body:expr) => {{
            let host_of = host_of.clone();
            native.set(
                $key,
                lua.create_function(move |$lua, $args: $ty| {
                    let $h = host_of()?;
                    $body
                })?,
            )?;
        }};
    }
    f!("download", |_lua, h, (spec, sources): (Table, Vec<Table>)| {
        let fail = |e: String| Ok((mlua::Value::Nil, Some(e)));
        let Some(dl) = downloads(&h) else { return fail("downloads are not running".into()) };
        let tth: Option<String> = spec.get("tth")?;
        let Some(tth) = tth.and_then(|t| t.parse::<Tth>().ok()) else {
            return fail("a download needs a valid tth".into());
        };
        let size: Option<i64> = spec.get("size")?;
        let Some(size) = size.filter(|s| *s > 0) else {
            return fail("a download needs its size".into());
        };
        let name: Option<String> = spec.get("name")?;
        let name = name.unwrap_or_else(|| tth.to_base32());
        let name = name.rsplit(['/', '\\']).next().unwrap_or_default().to_string();
        let dir: Option<String> = spec.get("dir")?;
        let priority: Option<String> = spec.get("priority")?;
        let priority = match priority.as_deref() {
            None => Priority::Normal,
            Some(p) => match Priority::from_name(p) {
                Some(p) => p,
                None => {
                    return fail(format!(
                        "unknown priority {p:?} (paused, lowest, low, normal, high, highest)"
                    ))
                }
            },
        };
        let (dir, abs_dir) = match dir {
            Some(d) if std::path::Path::new(&d).is_absolute() => {
                if let Err(e) =
                    capability::check(&h, script, Capability::DownloadAnywhere, "dc.download")
                {
                    return fail(e);
                }
                (None, Some(PathBuf::from(d)))
            }
            d => (d, None),
        };
        let mut srcs = Vec::new();
        for s in sources {
            let url: String = s.get("hub")?;
            let nick: Option<String> = s.get("nick")?;
            let cid: Option<String> = s.get("cid")?;
            match resolve(&h, &url, nick.as_deref(), cid.as_deref()) {
                Ok(src) => srcs.push(src),
                Err(e) => return fail(e),
            }
        }
        let new =
            NewDownload { tth, size: size as u64, name, dir, abs_dir, priority, sources: srcs };
        match dl.add(new) {
            Ok(id) => Ok((mlua::Value::Integer(id.0), None)),
            Err(e) => fail(e),
        }
    });
    f!("download_info", |lua, h, id: i64| {
        let info = downloads(&h).and_then(|d| d.info(ItemId(id)));
        match info {
            Some(i) => item_value(&i).to_lua(lua),
            None => Ok(mlua::Value::Nil),
        }
    });
    f!("download_cancel", |_lua, h, id: i64| {
        let Some(d) = downloads(&h) else {
            return Ok((false, Some("downloads are not running".to_string())));
        };
        Ok(match d.cancel(ItemId(id)) {
            Ok(()) => (true, None),
            Err(e) => (false, Some(e)),
        })
    });
    f!("queue", |lua, h, (): ()| {
        let items = downloads(&h).map(|d| d.items()).unwrap_or_default();
        Value::List(items.iter().map(item_value).collect()).to_lua(lua)
    });
    f!("magnet", |lua, _h, uri: String| {
        match parse_magnet(&uri) {
            Ok(m) => {
                let mut v = vec![
                    ("tth", Value::str(m.tth.to_base32())),
                    ("size", m.size.map_or(Value::Nil, |s| Value::Int(s as i64))),
                ];
                if let Some(n) = m.name {
                    v.push(("name", Value::str(n)));
                }
                Ok((Value::map(v).to_lua(lua)?, None))
            }
            Err(e) => Ok((mlua::Value::Nil, Some(e))),
        }
    });
    f!("magnet_of", |_lua, _h, (tth, size, name): (String, i64, String)| {
        let tth = tth
            .parse::<Tth>()
            .map_err(|e| mlua::Error::runtime(format!("dc.share.magnet: {e}")))?;
        Ok(magnet_of(&tth, size.max(0) as u64, &name))
    });
    f!("list_source", |lua, h, id: i64| {
        let (_, s) = list(&h, id)?;
        Value::map([
            ("hub", Value::str(&s.hub)),
            ("nick", Value::str(&s.nick)),
            ("cid", if s.user != s.nick { Value::str(&s.user) } else { Value::Nil }),
        ])
        .to_lua(lua)
    });
    f!("list_dir", |lua, h, (id, path): (i64, String)| {
        let (l, _) = list(&h, id)?;
        let Some(d) = dir_at(&l, &path) else {
            return Err(mlua::Error::runtime(format!("no folder {path} in this list")));
        };
        let dirs = Value::List(d.dirs.iter().map(|d| Value::str(&d.name)).collect());
        let files = Value::List(
            d.files
                .iter()
                .map(|f| {
                    Value::map([
                        ("name", Value::str(&f.name)),
                        ("path", Value::str(format!("{path}{}", f.name))),
                        ("size", Value::Int(f.size as i64)),
                        ("tth", f.tth.map_or(Value::Nil, |t| Value::str(t.to_base32()))),
                    ])
                })
                .collect(),
        );
        Value::map([("dirs", dirs), ("files", files), ("incomplete", Value::Bool(d.incomplete))])
            .to_lua(lua)
    });
    f!("list_resolve", |_lua, h, (id, path, sub): (i64, String, String)| {
        let (l, _) = list(&h, id)?;
        let full = if sub.starts_with('/') { sub.clone() } else { format!("{path}{sub}") };
        let mut canon = String::from("/");
        let mut cur = &l.root;
        for name in full.split('/').filter(|n| !n.is_empty()) {
            match cur.find_dir(name) {
                Some(d) => {
                    canon.push_str(&d.name);
                    canon.push('/');
                    cur = d;
                }
                None => return Ok(None),
            }
        }
        Ok(Some(canon))
    });
    f!("list_field", |lua, h, (id, path, key): (i64, String, String)| {
        let (l, _) = list(&h, id)?;
        let Some(d) = dir_at(&l, &path) else { return Ok(mlua::Value::Nil) };
        let v = match key.as_str() {
            "name" => Value::str(&d.name),
            "size" => Value::Int(d.total_size() as i64),
            "file_count" => Value::Int(d.total_files() as i64),
            "incomplete" => Value::Bool(d.incomplete),
            "nick" => Value::str(list(&h, id)?.1.nick),
            "generator" => l.generator.as_deref().map_or(Value::Nil, Value::str),
            _ => Value::Nil,
        };
        v.to_lua(lua)
    });
    f!("list_find", |lua, h, (id, path, text, max): (i64, String, String, i64)| {
        let (l, _) = list(&h, id)?;
        let q = crate::search::Query::words(&text);
        let max = (max.max(0) as usize).min(MAX_FIND);
        let hits = l.search(&q, MAX_FIND);
        let prefix = crate::share::tree::fold(&path);
        let out: Vec<Value> = hits
            .iter()
            .filter(|hit| crate::share::tree::fold(&hit.path).starts_with(&prefix))
            .filter_map(|hit| {
                let f = hit.file?;
                Some(Value::map([
                    ("name", Value::str(&f.name)),
                    ("path", Value::str(&hit.path)),
                    ("size", Value::Int(f.size as i64)),
                    ("tth", f.tth.map_or(Value::Nil, |t| Value::str(t.to_base32()))),
                ]))
            })
            .take(max)
            .collect();
        Value::List(out).to_lua(lua)
    });
    Ok(())
}

/// A parsed magnet link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Magnet {
    /// `xt=urn:tree:tiger:<TTH>`.
    pub tth: Tth,
    /// `xl`.
    pub size: Option<u64>,
    /// `dn`.
    pub name: Option<String>,
}

/// Parses `magnet:?xt=urn:tree:tiger:...&xl=...&dn=...`.
pub fn parse_magnet(uri: &str) -> Result<Magnet, String> {
    let rest = uri.strip_prefix("magnet:?").ok_or("a magnet URI starts with magnet:?")?;
    let (mut tth, mut size, mut name) = (None, None, None);
    for part in rest.split('&') {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        let v = percent_decode(v);
        match k {
            "xt" => {
                let lower = v.to_ascii_lowercase();
                if let Some(t) = lower.strip_prefix("urn:tree:tiger:") {
                    tth = Some(
                        t.to_ascii_uppercase().parse::<Tth>().map_err(|e| format!("xt: {e}"))?,
                    );
                }
            }
            "xl" => size = Some(v.parse::<u64>().map_err(|_| format!("xl is not a size: {v:?}"))?),
            "dn" => name = Some(v),
            _ => {}
        }
    }
    let tth = tth.ok_or("the magnet has no xt=urn:tree:tiger:<TTH>")?;
    Ok(Magnet { tth, size, name })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'+', _) => out.push(b' '),
            (b'%', Some(b)) => {
                out.push(b);
                i += 2;
            }
            (b, _) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The magnet of a file: `magnet:?xt=urn:tree:tiger:<TTH>&xl=<size>&dn=<name>`.
pub fn magnet_of(tth: &Tth, size: u64, name: &str) -> String {
    let mut dn = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            dn.push(b as char);
        } else {
            dn.push_str(&format!("%{b:02X}"));
        }
    }
    format!("magnet:?xt=urn:tree:tiger:{tth}&xl={size}&dn={dn}")
}

/// Connects `host` to `downloads`: the waiting calls and the events. Call
/// once, on the worker, after both exist.
pub fn install(host: &LuaHost, service: &Downloads) {
    *host.ext::<DownloadState>().downloads.borrow_mut() = Some(service.clone());
    host.register_async(
        "download.wait",
        Rc::new(|host, call| {
            let id = match call.args.first() {
                Some(Value::Int(i)) => *i,
                _ => return Err("dc.Download:wait: no download".into()),
            };
            let dl = downloads(host).ok_or("downloads are not running")?;
            let weak = host.downgrade();
            let job = call.job;
            dl.wait(
                ItemId(id),
                Box::new(move |r| {
                    if let Some(h) = weak.upgrade().map(LuaHost::from_inner) {
                        let vals = match r {
                            Ok(p) => vec![Value::str(p.to_string_lossy())],
                            Err(e) => vec![Value::Nil, Value::str(e)],
                        };
                        h.complete(job, Ok(vals));
                    }
                }),
            );
            Ok(())
        }),
    );
    host.register_async(
        "download.browse",
        Rc::new(|host, call| {
            let url = call
                .args
                .first()
                .and_then(Value::as_str)
                .ok_or("dc.browse: expected a hub")?
                .to_string();
            let nick = call.args.get(1).and_then(Value::as_str).map(str::to_string);
            let cid = call.args.get(2).and_then(Value::as_str).map(str::to_string);
            let dir = call.args.get(3).and_then(Value::as_str).map(str::to_string);
            let dl = downloads(host).ok_or("dc.browse: downloads are not running")?;
            let source = resolve(host, &url, nick.as_deref(), cid.as_deref())
                .map_err(|e| format!("dc.browse: {e}"))?;
            let weak = host.downgrade();
            let job = call.job;
            let script = call.script;
            let src = source.clone();
            dl.browse(
                &source.hub,
                &source.user,
                dir,
                Box::new(move |r| {
                    let Some(h) = weak.upgrade().map(LuaHost::from_inner) else { return };
                    match r {
                        Ok(listing) => {
                            let state = h.ext::<DownloadState>();
                            let id = state.next.get() + 1;
                            state.next.set(id);
                            let mut lists = state.lists.borrow_mut();
                            lists.push_back((id, script, listing, src));
                            let mine = lists.iter().filter(|l| l.1 == script).count();
                            if mine > MAX_LISTS {
                                if let Some(i) = lists.iter().position(|l| l.1 == script) {
                                    lists.remove(i);
                                }
                            }
                            drop(lists);
                            h.complete(job, Ok(vec![Value::Int(id)]));
                        }
                        Err(e) => h.complete(job, Err(format!("dc.browse: {e}"))),
                    }
                }),
            );
            Ok(())
        }),
    );
    let weak = host.downgrade();
    let console = Rc::new(ConsoleProgress::default());
    service.subscribe(move |ev| {
        let Some(host) = weak.upgrade().map(LuaHost::from_inner) else { return };
        match ev {
            DownloadEvent::Started { item, nick, tls } => {
                let mut v = item_value(item);
                if let Value::Map(m) = &mut v {
                    m.push((Rc::from("nick"), Value::str(nick)));
                    m.push((Rc::from("tls"), Value::Bool(*tls)));
                }
                host.emit_value("download_started", v);
            }
            DownloadEvent::Progress(item) => {
                let console = console.clone();
                // The service through the host (a clone held here would be a
                // cycle: the service keeps its subscribers).
                let weak = host.downgrade();
                let show = move || {
                    let Some(h) = weak.upgrade().map(LuaHost::from_inner) else { return };
                    if let Some(line) = downloads(&h).and_then(|d| console.line(&d.items())) {
                        h.output(&line);
                    }
                };
                host.emit(Event {
                    name: Rc::from("download_progress"),
                    data: item_value(item),
                    default_action: Some(Box::new(show)),
                });
            }
            DownloadEvent::Finished { item, path } => {
                let mut v = item_value(item);
                if let Value::Map(m) = &mut v {
                    m.push((Rc::from("path"), Value::str(path.to_string_lossy())));
                }
                host.emit_value("download_finished", v);
            }
            DownloadEvent::Failed { item, reason, final_ } => {
                let mut v = item_value(item);
                if let Value::Map(m) = &mut v {
                    m.push((Rc::from("reason"), Value::str(reason)));
                    m.push((Rc::from("final"), Value::Bool(*final_)));
                }
                host.emit_value("download_failed", v);
            }
            DownloadEvent::QueueChanged => {
                host.emit_value("queue_changed", Value::map(Vec::<(&str, Value)>::new()));
            }
        }
    });
}

/// How often the console shows download progress at most.
pub const CONSOLE_PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// The console line of running downloads (the `download_progress` default
/// action, shown through the host's output as `print` from scripts): at
/// most one every [`CONSOLE_PROGRESS_EVERY`], with the speed of each since
/// the last line.
#[derive(Default)]
struct ConsoleProgress {
    last: std::cell::Cell<Option<std::time::Instant>>,
    /// Per item: bytes fetched at the last line.
    seen: RefCell<std::collections::HashMap<i64, u64>>,
}

impl ConsoleProgress {
    /// The line to show now, if any.
    fn line(&self, items: &[ItemInfo]) -> Option<String> {
        let now = std::time::Instant::now();
        let since = self.last.get().map(|t| now.duration_since(t));
        if since.is_some_and(|d| d < CONSOLE_PROGRESS_EVERY) {
            return None;
        }
        self.last.set(Some(now));
        let mut seen = self.seen.borrow_mut();
        let running: Vec<&ItemInfo> = items.iter().filter(|i| i.state == "running").collect();
        if running.is_empty() {
            return None;
        }
        let secs = since.map_or(0.0, |d| d.as_secs_f64());
        let parts: Vec<String> = running
            .iter()
            .map(|i| {
                let before = seen.insert(i.id.0, i.fetched);
                let speed = match before {
                    Some(b) if secs > 0.0 => format!(
                        " at {}/s",
                        human(((i.fetched - b.min(i.fetched)) as f64 / secs) as u64)
                    ),
                    _ => String::new(),
                };
                let name = i.target.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
                format!(
                    "{name} {:.0}% of {}{speed}",
                    100.0 * i.verified as f64 / i.size.max(1) as f64,
                    human(i.size)
                )
            })
            .collect();
        Some(format!("downloading: {}", parts.join("; ")))
    }
}

/// Bytes for people: `12.3 MiB`.
fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

// ----- description ---------------------------------------------------------------

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

/// The functions and methods of this namespace (downloads, file lists, magnets), for [`api`](super::api)'s description.
pub const FUNCTIONS: &[ApiFn] = &[
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
];

/// The events of this namespace.
pub const EVENTS: &[ApiEvent] = &[
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
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magnets_parse_and_print() {
        let tth = "LWPNACQDBZRYXW3VHJVCJ64QBZNGHOHHHZWCLNQ";
        let m = parse_magnet(&format!("magnet:?xt=urn:tree:tiger:{tth}&xl=1234&dn=a+b%20c.txt"))
            .unwrap();
        assert_eq!(m.tth.to_base32(), tth);
        assert_eq!(m.size, Some(1234));
        assert_eq!(m.name.as_deref(), Some("a b c.txt"));
        let printed = magnet_of(&m.tth, 1234, "a b c.txt");
        assert_eq!(printed, format!("magnet:?xt=urn:tree:tiger:{tth}&xl=1234&dn=a%20b%20c.txt"));
        assert_eq!(parse_magnet(&printed).unwrap(), m);
        assert!(parse_magnet("http://x").is_err());
        assert!(parse_magnet("magnet:?xt=urn:btih:abc").unwrap_err().contains("no xt"));
        assert!(parse_magnet("magnet:?xt=urn:tree:tiger:XYZ").unwrap_err().contains("xt"));
        assert!(parse_magnet(&format!("magnet:?xt=urn:tree:tiger:{tth}&xl=big")).is_err());
        // A stray % stays as it is.
        assert_eq!(
            parse_magnet(&format!("magnet:?xt=urn:tree:tiger:{tth}&dn=100%"))
                .unwrap()
                .name
                .as_deref(),
            Some("100%")
        );
    }
}
