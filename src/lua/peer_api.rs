//! The Lua side of uploads: `dc.uploads()`, the slot policy
//! (`dc.share.slot_policy(fn)`) and the `upload_started` /
//! `upload_finished` / `upload_failed` events.
//!
//! # The slot policy
//!
//! Like the answer filter, it is a function, not an event: it must answer
//! at once, while the peer waits for its answer. It is called outside any
//! coroutine (it must not wait) for each request that needs a normal slot,
//! with the user and the file; it returns `true` to grant a slot beyond the
//! count, `false` to refuse ("slots full"), anything else for the default
//! rules. An error in it means the default rules (logged). With several
//! scripts' policies, the first that says `true` or `false` decides.
//!
//! Must not: hold a `Peers` in a state's registry (the host's extension
//! slot keeps it), or call a policy of an unloaded script.

use std::cell::RefCell;
use std::rc::Rc;

use mlua::{Function, Lua, Table};

use super::describe::{ApiEvent, ApiFn};
use super::host::{LuaHost, ScriptId};
use super::value::Value;
use crate::peer::{PeerUser, Peers, SlotAsk, SlotVerdict, UploadEvent, UploadInfo};

/// The extension chunk: `dc.uploads` and `dc.share.slot_policy`.
pub const LUA: &str = r#"
local dc, native = ...
local type, error = type, error

function dc.uploads() return native.uploads() end

function dc.share.slot_policy(fn)
  if fn ~= nil and type(fn) ~= "function" then
    error("dc.share.slot_policy: expected a function or nil, got " .. type(fn), 2)
  end
  native.slot_policy(fn)
end
"#;

/// What the host keeps for this module.
#[derive(Default)]
struct PeerState {
    peers: RefCell<Option<Peers>>,
    policies: RefCell<Vec<(ScriptId, Function)>>,
}

/// The peer service the host was given, if any.
pub fn peers(host: &LuaHost) -> Option<Peers> {
    host.ext::<PeerState>().peers.borrow().clone()
}

/// Adds the `native.uploads` and `native.slot_policy` primitives.
pub(crate) fn register(
    lua: &Lua,
    host: &LuaHost,
    script: ScriptId,
    native: &Table,
) -> mlua::Result<()> {
    let weak = host.downgrade();
    native.set(
        "uploads",
        lua.create_function(move |lua, ()| {
            let list = lua.create_table()?;
            let Some(host) = weak.upgrade().map(LuaHost::from_inner) else { return Ok(list) };
            let Some(p) = peers(&host) else { return Ok(list) };
            let now = host.runtime().now();
            for (i, u) in p.uploads().iter().enumerate() {
                let v = upload_value(u, Some(now));
                list.raw_set(i + 1, v.to_lua(lua)?)?;
            }
            Ok(list)
        })?,
    )?;
    let weak = host.downgrade();
    native.set(
        "slot_policy",
        lua.create_function(move |_, f: Option<Function>| {
            let Some(host) = weak.upgrade().map(LuaHost::from_inner) else { return Ok(()) };
            let state = host.ext::<PeerState>();
            let mut ps = state.policies.borrow_mut();
            ps.retain(|(s, _)| *s != script);
            if let Some(f) = f {
                ps.push((script, f));
            }
            Ok(())
        })?,
    )?;
    Ok(())
}

/// Connects `host` to `peers`: the events and the slot policy. Call once,
/// on the worker, after both exist.
pub fn install(host: &LuaHost, peers: &Peers) {
    *host.ext::<PeerState>().peers.borrow_mut() = Some(peers.clone());
    let weak = host.downgrade();
    peers.subscribe(move |ev| {
        let Some(host) = weak.upgrade().map(LuaHost::from_inner) else { return };
        match ev {
            UploadEvent::Started(u) => host.emit_value("upload_started", upload_value(u, None)),
            UploadEvent::Finished { info, seconds } => {
                let mut v = upload_value(info, None);
                if let Value::Map(m) = &mut v {
                    m.push((Rc::from("seconds"), Value::Num(*seconds)));
                }
                host.emit_value("upload_finished", v);
            }
            UploadEvent::Failed { user, file, bytes, seconds, reason } => {
                let mut m = user_fields(user.as_ref());
                m.push(("file", Value::str(file)));
                m.push(("bytes", Value::Int(*bytes as i64)));
                m.push(("seconds", Value::Num(*seconds)));
                m.push(("reason", Value::str(reason)));
                host.emit_value("upload_failed", Value::map(m));
            }
        }
    });
    let weak = host.downgrade();
    peers.set_slot_policy(Some(Rc::new(move |ask: &SlotAsk| match weak.upgrade() {
        Some(h) => run_policies(&LuaHost::from_inner(h), ask),
        None => SlotVerdict::Default,
    })));
}

fn user_fields(user: Option<&PeerUser>) -> Vec<(&'static str, Value)> {
    match user {
        Some(u) => vec![
            ("nick", Value::str(&u.nick)),
            ("hub", Value::str(&u.hub_url)),
            ("cid", u.cid.as_deref().map_or(Value::Nil, Value::str)),
        ],
        None => vec![],
    }
}

fn upload_value(u: &UploadInfo, now: Option<std::time::Instant>) -> Value {
    let mut m = user_fields(Some(&u.user));
    m.push(("file", Value::str(&u.file)));
    m.push(("start", Value::Int(u.start as i64)));
    m.push(("bytes", Value::Int(u.bytes as i64)));
    m.push(("sent", Value::Int(u.sent as i64)));
    m.push(("tls", Value::Bool(u.tls)));
    m.push(("compressed", Value::Bool(u.compressed)));
    if let Some(now) = now {
        m.push(("seconds", Value::Num(now.saturating_duration_since(u.started).as_secs_f64())));
    }
    Value::map(m)
}

/// Asks every live script's policy, in order (see the module docs).
fn run_policies(host: &LuaHost, ask: &SlotAsk) -> SlotVerdict {
    let policies: Vec<(ScriptId, Function)> = {
        let state = host.ext::<PeerState>();
        let mut ps = state.policies.borrow_mut();
        ps.retain(|(s, _)| host.script(*s).is_some());
        ps.clone()
    };
    for (sid, f) in policies {
        let Some(script) = host.script(sid) else { continue };
        let lua = script.lua();
        let outcome = (|| -> mlua::Result<mlua::Value> {
            let mut m = user_fields(Some(&ask.user));
            m.push(("file", Value::str(&ask.file)));
            m.push(("size", Value::Int(ask.size as i64)));
            m.push(("free", Value::Bool(ask.free)));
            let arg = Value::map(m).to_lua(lua)?;
            host.call_in(&script, || f.call::<mlua::Value>(arg))
        })();
        match outcome {
            Ok(mlua::Value::Boolean(true)) => return SlotVerdict::Grant,
            Ok(mlua::Value::Boolean(false)) => return SlotVerdict::Refuse,
            Ok(_) => {}
            Err(e) => {
                log::error!(target: "lua", "script {}: dc.share.slot_policy failed (it must not wait); the default rules apply: {e}", script.name);
            }
        }
    }
    SlotVerdict::Default
}

// ----- description ---------------------------------------------------------------

/// The functions and methods of this namespace (uploads and the slot policy), for [`api`](super::api)'s description.
pub const FUNCTIONS: &[ApiFn] = &[
    ApiFn {
        path: "dc.share.slot_policy",
        params: &[("fn", "(fun(ask: {nick: string, hub: string, cid: string?, file: string, size: integer, free: boolean}): boolean?)?", "called for each request that needs a normal upload slot (files over 64 KiB), outside any coroutine (it must not wait); `free` says whether a slot is free; returns true to grant a slot beyond the count, false to refuse (\"slots full\"), nil for the usual rules; nil removes this script's policy")],
        returns: &[],
        doc: "Sets this script's upload slot policy; an error in it means the usual rules. The first script whose policy says true or false decides.",
        waits: false,
    },
    ApiFn {
        path: "dc.uploads",
        params: &[],
        returns: &[("{nick: string, hub: string, cid: string?, file: string, start: integer, bytes: integer, sent: integer, tls: boolean, compressed: boolean, seconds: number}[]", "the uploads running now: the user, the file (share path, files.xml.bz2 or a list folder), the range asked for, bytes sent so far (uncompressed), whether over TLS and zlib-compressed, seconds since the start")],
        doc: "The uploads running now.",
        waits: false,
    },
];

/// The events of this namespace.
pub const EVENTS: &[ApiEvent] = &[
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
];
