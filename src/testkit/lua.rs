//! The `dctest` and `expect` bindings of a test file's state, and the kit's
//! bookkeeping for one test: its scripted hubs, the coroutines waiting for
//! the client to settle or for a hub to hear something.
//!
//! The Lua half is `dctest.lua` (assertions, option checks, the hub and
//! user objects); this file gives it the native functions it stands on.
//! Only the test file's state gets them: a bot loaded with `dctest.load`
//! gets exactly the API and sandbox it would get in the client.
//!
//! Owns: [`Kit`]. Must not: run the pool (the runner does) or know how a
//! protocol looks on the wire (the scripted hub does).

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use mlua::{Lua, Table};

use super::hub::{ScriptedHub, UserSpec};
use crate::hub::Protocol;
use crate::lua::{LuaHost, ScriptId, Value};
use crate::runtime::{FnJob, JobId, Runtime, Step};

/// A coroutine waiting for a hub to record something, or for its time out.
struct HubWaiter {
    job: JobId,
    hub: usize,
    timer: JobId,
}

/// One test's kit: shared by the runner and the test state's bindings.
pub struct Kit {
    rt: Runtime,
    started: Instant,
    /// The folder `dctest.load` paths are relative to.
    base: PathBuf,
    hubs: RefCell<Vec<ScriptedHub>>,
    /// Coroutines in `dctest.settle`, answered by the runner once settled.
    settling: RefCell<Vec<JobId>>,
    hub_waiters: RefCell<Vec<HubWaiter>>,
}

impl std::fmt::Debug for Kit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kit").field("hubs", &self.hubs.borrow().len()).finish_non_exhaustive()
    }
}

impl Kit {
    /// A kit for a test whose file lies in `base`, on `host`'s pool; the
    /// async calls of `dctest` are registered on the host.
    pub fn new(host: &LuaHost, base: &Path) -> Rc<Kit> {
        let rt = host.runtime().clone();
        let kit = Rc::new(Kit {
            started: rt.now(),
            rt,
            base: base.to_path_buf(),
            hubs: RefCell::new(Vec::new()),
            settling: RefCell::new(Vec::new()),
            hub_waiters: RefCell::new(Vec::new()),
        });
        let k = Rc::downgrade(&kit);
        host.register_async(
            "dctest.settle",
            Rc::new(move |_, call| {
                let kit = k.upgrade().ok_or("dctest: the test is over")?;
                kit.settling.borrow_mut().push(call.job);
                Ok(())
            }),
        );
        let k = Rc::downgrade(&kit);
        host.register_async(
            "dctest.hub_wait",
            Rc::new(move |host, call| {
                let kit = k.upgrade().ok_or("dctest: the test is over")?;
                let number = |v: Option<&Value>| match v {
                    Some(Value::Int(i)) => *i as f64,
                    Some(Value::Num(x)) => *x,
                    _ => 0.0,
                };
                let hub = number(call.args.first()) as usize;
                // Bounded: a Duration from a huge float panics.
                let secs = number(call.args.get(1)).clamp(0.0, 1e9);
                let weak = host.downgrade();
                let job = call.job;
                let kit_weak = Rc::downgrade(&kit);
                // Times the wait out: answers `false` unless a record came.
                let timer = kit.rt.spawn(FnJob::new("dctest wait", move |cx| {
                    if cx.fired_timers().is_empty() {
                        return Step::Pending;
                    }
                    if let Some(kit) = kit_weak.upgrade() {
                        kit.hub_waiters.borrow_mut().retain(|w| w.job != job);
                    }
                    if let Some(inner) = weak.upgrade() {
                        LuaHost::from_inner(inner).complete(job, Ok(vec![Value::Bool(false)]));
                    }
                    Step::Done
                }));
                kit.rt.timer_after(timer, Duration::from_secs_f64(secs));
                kit.hub_waiters.borrow_mut().push(HubWaiter { job, hub, timer });
                Ok(())
            }),
        );
        kit
    }

    /// Takes the coroutines waiting in `dctest.settle` (the runner answers
    /// them once the client settled).
    pub fn take_settling(&self) -> Vec<JobId> {
        std::mem::take(&mut *self.settling.borrow_mut())
    }

    /// The scripted hubs of this test.
    pub fn hubs(&self) -> Vec<ScriptedHub> {
        self.hubs.borrow().clone()
    }

    /// Virtual seconds since the test started.
    pub fn now(&self) -> f64 {
        self.rt.now().saturating_duration_since(self.started).as_secs_f64()
    }

    fn hub(&self, idx: usize) -> mlua::Result<ScriptedHub> {
        self.hubs
            .borrow()
            .get(idx.wrapping_sub(1))
            .cloned()
            .ok_or_else(|| mlua::Error::runtime(format!("dctest: no scripted hub {idx}")))
    }

    /// A hub recorded something: its waiters resume (with `true`).
    fn recorded(&self, host: &LuaHost, hub: usize) {
        let woken: Vec<HubWaiter> = {
            let mut w = self.hub_waiters.borrow_mut();
            let (now, later) = w.drain(..).partition(|x| x.hub == hub);
            *w = later;
            now
        };
        for w in woken {
            self.rt.stop(w.timer);
            host.complete(w.job, Ok(vec![Value::Bool(true)]));
        }
    }

    /// Installs `dctest` and `expect` in the state of the test file
    /// (script `id`), before its main chunk runs.
    pub fn install(self: &Rc<Kit>, host: &LuaHost, id: ScriptId) -> Result<(), String> {
        let script = host.script(id).ok_or("the test file's script is gone")?;
        let await_fn = host.awaiter(id).ok_or("the test state has no native.await")?;
        let lua = script.lua();
        let err = |e: mlua::Error| format!("installing dctest: {e}");
        let dctest = lua.create_table().map_err(err)?;
        let native = self.natives(lua, host).map_err(err)?;
        let dc: Table = lua.globals().get("dc").map_err(err)?;
        lua.load(include_str!("dctest.lua"))
            .set_name("=dctest")
            .into_function()
            .and_then(|f| f.call::<()>((&dctest, native, await_fn, dc)))
            .map_err(err)?;
        lua.globals().set("dctest", dctest).map_err(err)?;
        Ok(())
    }

    fn natives(self: &Rc<Kit>, lua: &Lua, host: &LuaHost) -> mlua::Result<Table> {
        let n = lua.create_table()?;
        let kit = Rc::downgrade(self);
        let get =
            move || kit.upgrade().ok_or_else(|| mlua::Error::runtime("dctest: the test is over"));
        let g = get.clone();
        n.set("now", lua.create_function(move |_, ()| Ok(g()?.now()))?)?;
        let g = get.clone();
        let weak = host.downgrade();
        n.set(
            "hub_start",
            lua.create_function(move |_, (protocol, name, stall): (String, String, bool)| {
                let kit = g()?;
                let p = match protocol.as_str() {
                    "nmdc" => Protocol::Nmdc,
                    "adc" => Protocol::Adc,
                    _ => {
                        return Err(mlua::Error::runtime(format!(
                            "dctest.hub: protocol \"nmdc\" or \"adc\", not {protocol:?}"
                        )))
                    }
                };
                let hub = ScriptedHub::start(&kit.rt, p, &name)
                    .map_err(|e| mlua::Error::runtime(format!("dctest.hub: starting: {e}")))?;
                if stall {
                    hub.stall();
                }
                let url = hub.url();
                let idx = {
                    let mut hubs = kit.hubs.borrow_mut();
                    hubs.push(hub.clone());
                    hubs.len()
                };
                let (k, w) = (Rc::downgrade(&kit), weak.clone());
                hub.on_record(Rc::new(move || {
                    if let (Some(kit), Some(inner)) = (k.upgrade(), w.upgrade()) {
                        kit.recorded(&LuaHost::from_inner(inner), idx);
                    }
                }));
                Ok((idx, url))
            })?,
        )?;
        let g = get.clone();
        n.set(
            "join",
            lua.create_function(
                move |_,
                      (idx, nick, description, email, share, op): (
                    usize,
                    String,
                    String,
                    String,
                    u64,
                    bool,
                )| {
                    let spec = UserSpec { nick, description, email, share, op };
                    g()?.hub(idx)?.join(spec).map_err(mlua::Error::runtime)
                },
            )?,
        )?;
        let g = get.clone();
        n.set(
            "say",
            lua.create_function(move |_, (idx, nick, text, me): (usize, String, String, bool)| {
                g()?.hub(idx)?.say(&nick, &text, me).map_err(mlua::Error::runtime)
            })?,
        )?;
        let g = get.clone();
        n.set(
            "pm",
            lua.create_function(move |_, (idx, nick, text, me): (usize, String, String, bool)| {
                g()?.hub(idx)?.pm(&nick, &text, me).map_err(mlua::Error::runtime)
            })?,
        )?;
        let g = get.clone();
        n.set(
            "leave",
            lua.create_function(move |_, (idx, nick): (usize, String)| {
                g()?.hub(idx)?.leave(&nick).map_err(mlua::Error::runtime)
            })?,
        )?;
        let g = get.clone();
        n.set(
            "announce",
            lua.create_function(move |_, (idx, text): (usize, String)| {
                g()?.hub(idx)?.announce(&text);
                Ok(())
            })?,
        )?;
        let g = get.clone();
        n.set(
            "send_raw",
            lua.create_function(move |_, (idx, line): (usize, String)| {
                g()?.hub(idx)?.send_raw(&line);
                Ok(())
            })?,
        )?;
        let g = get.clone();
        n.set(
            "search_result",
            lua.create_function(
                move |_,
                      (idx, nick, path, size, tth): (
                    usize,
                    String,
                    String,
                    u64,
                    Option<String>,
                )| {
                    g()?.hub(idx)?
                        .search_result(&nick, &path, size, tth.as_deref())
                        .map_err(mlua::Error::runtime)
                },
            )?,
        )?;
        let g = get.clone();
        n.set(
            "records",
            lua.create_function(move |lua, idx: usize| {
                let hub = g()?.hub(idx)?;
                let out = lua.create_table()?;
                for (i, (r, taken)) in hub.records().into_iter().enumerate() {
                    let t = lua.create_table()?;
                    t.set("index", i + 1)?;
                    t.set("kind", r.kind)?;
                    t.set("to", r.to)?;
                    t.set("text", r.text)?;
                    t.set("me", r.me)?;
                    t.set("raw", r.raw)?;
                    t.set("at", r.at)?;
                    t.set("taken", taken)?;
                    out.raw_push(t)?;
                }
                Ok(out)
            })?,
        )?;
        let g = get.clone();
        n.set(
            "mark",
            lua.create_function(move |_, (idx, index): (usize, usize)| {
                g()?.hub(idx)?.mark(index.wrapping_sub(1));
                Ok(())
            })?,
        )?;
        let g = get.clone();
        n.set(
            "transcript",
            lua.create_function(move |_, idx: usize| Ok(g()?.hub(idx)?.transcript()))?,
        )?;
        let g = get.clone();
        n.set(
            "drop",
            lua.create_function(move |_, idx: usize| {
                g()?.hub(idx)?.drop_client();
                Ok(())
            })?,
        )?;
        let g = get.clone();
        n.set(
            "connections",
            lua.create_function(move |_, idx: usize| Ok(g()?.hub(idx)?.connections()))?,
        )?;
        let g = get.clone();
        n.set(
            "client_nick",
            lua.create_function(move |_, idx: usize| Ok(g()?.hub(idx)?.client_nick()))?,
        )?;
        let g = get.clone();
        let weak = host.downgrade();
        n.set(
            "load",
            lua.create_function(move |_, (path, trusted, args): (String, bool, Vec<String>)| {
                let kit = g()?;
                let host = weak
                    .upgrade()
                    .map(LuaHost::from_inner)
                    .ok_or_else(|| mlua::Error::runtime("dctest: the client is gone"))?;
                let p = Path::new(&path);
                let full = if p.is_absolute() { p.to_path_buf() } else { kit.base.join(p) };
                let id = host
                    .load_file(&full, trusted, &args)
                    .map_err(|e| mlua::Error::runtime(format!("dctest.load: {e}")))?;
                let name = host.script(id).map(|s| s.name.clone()).unwrap_or_default();
                Ok((id, name))
            })?,
        )?;
        let weak = host.downgrade();
        n.set(
            "main_error",
            lua.create_function(move |_, id: u64| {
                let host = weak
                    .upgrade()
                    .map(LuaHost::from_inner)
                    .ok_or_else(|| mlua::Error::runtime("dctest: the client is gone"))?;
                Ok(host.script(id as ScriptId).and_then(|s| s.main_error()))
            })?,
        )?;
        Ok(n)
    }
}
