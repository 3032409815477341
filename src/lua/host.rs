//! The scripting host: Lua states, coroutine jobs, events, timers, scripts.
//!
//! # Model
//!
//! - Each script has its own Lua state ([`Script`]): memory limits,
//!   sandboxing (a [`Policy`] of [`crate::sandbox`], trusted or not) and
//!   unloading are per script. The console has one too (trusted).
//! - Every piece of Lua runs as a coroutine owned by the pool: a script's main
//!   chunk, each event-handler call, each timer callback, each console chunk,
//!   each `dc.spawn` function. A coroutine that waits becomes a `LuaJob`.
//! - Handler calls and timer callbacks run on *reused* coroutines (the
//!   prelude's runner): dispatching an event to a handler that does not wait
//!   costs one resume and no job; a handler that waits keeps its coroutine,
//!   which becomes a job and returns to its script's idle list when the call
//!   completes.
//! - Events are queued and delivered by one `Dispatcher` job, never from
//!   inside the API call that produced them (no re-entrancy): a hub job or
//!   `dc.emit` queues, the dispatcher delivers on its next poll, in batches.
//!
//! # Invariants
//!
//! - Everything a script creates (handlers, timers, jobs, waiters) records
//!   its [`ScriptId`]; unloading removes or stops all of it. Script ids are
//!   never reused, so nothing of an old load can fire after a reload.
//! - A coroutine is resumed by exactly one owner: the dispatcher while a call
//!   runs synchronously, or its `LuaJob` once it has waited.
//! - The time budget counts from each resume; a coroutine that runs past it
//!   fails with an error naming its script. No instruction hook is set
//!   normally: the `watchdog` arms one only then, or on
//!   Ctrl-C.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mlua::chunk::ChunkMode;
use mlua::thread::ThreadStatus;
use mlua::{Function, IntoLuaMulti, LightUserData, Lua, MultiValue, Table, Thread};

use super::value::Value;
use super::watchdog::{self, Watch, NOT_A_CHUNK};
use crate::runtime::{Context, Job, JobId, Runtime, Step, TimerId};
use crate::sandbox::{self, Policy};

/// Identifies one load of a script; never reused.
pub type ScriptId = u64;

/// Limits and knobs of the host.
#[derive(Debug, Clone)]
pub struct HostOptions {
    /// Memory limit of each script's Lua state, in bytes.
    pub memory_limit: usize,
    /// How long one resume of a coroutine may compute without waiting
    /// before it is interrupted.
    pub time_budget: Duration,
    /// Events delivered per dispatcher poll before it lets other jobs run.
    pub events_per_poll: usize,
}

impl Default for HostOptions {
    fn default() -> Self {
        HostOptions {
            memory_limit: 64 << 20,
            time_budget: Duration::from_secs(1),
            events_per_poll: 4096,
        }
    }
}

/// The console thread's handle on Ctrl-C, shared with the worker's host.
///
/// Chunks are numbered on the console thread when they are submitted, and
/// Ctrl-C marks every chunk submitted so far as interrupted, directly in an
/// atomic that the host's watchdog reads (it then has the worker interrupt
/// a busy chunk): it needs no trip through the worker (which is stuck in the
/// busy chunk), and a Ctrl-C that comes before the worker even started the
/// chunk is not lost.
#[derive(Debug, Clone)]
pub struct ConsoleControl {
    submitted: Arc<AtomicU64>,
    watch: Arc<watchdog::Shared>,
}

impl ConsoleControl {
    /// The number of the next chunk (call once per chunk, before sending it).
    pub fn next_chunk(&self) -> u64 {
        self.submitted.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Ctrl-C: every chunk submitted so far is interrupted; returns the
    /// number of the last one.
    pub fn interrupt(&self) -> u64 {
        let last = self.submitted.load(Ordering::SeqCst);
        self.interrupt_upto(last);
        last
    }

    fn interrupt_upto(&self, last: u64) {
        self.watch.interrupt_upto(last);
    }
}

/// The registry key of a state's `native.await` ([`LuaHost::awaiter`]).
const AWAIT_KEY: &str = "dclua.await";

/// Idle coroutines kept per script for reuse.
const IDLE_KEEP: usize = 64;

/// Handler calls of one script that wait (they called `dc.sleep`,
/// `dc.wait`...) past which its handlers are not called:
/// the events are counted as dropped for that script, the log says so, and
/// an `events_dropped` event reports the count. A greeter that sleeps in a
/// `user_joined` handler on a hub that sends 100,000 joins stays bounded
/// instead of filling its memory with coroutines.
pub const MAX_WAITING_CALLS: usize = 2000;

/// Least time between two `events_dropped` reports of one script.
const DROPPED_REPORT_EVERY: Duration = Duration::from_secs(1);

/// A script: one Lua state and what it owns.
pub struct Script {
    /// Its id (one load).
    pub id: ScriptId,
    /// Its name (the file stem, or "console").
    pub name: String,
    /// The file it was loaded from.
    pub path: Option<PathBuf>,
    /// Whether it has the full standard library.
    pub trusted: bool,
    lua: Lua,
    runner: Function,

    idle: RefCell<Vec<Thread>>,
    /// The error of a resume over its time budget.
    budget_msg: std::ffi::CString,
    /// The state its plain calls run on (see [`LuaHost::call_in`]).
    main_state: *mut mlua::ffi::lua_State,
    /// Whether it is the console's state (whose chunks Ctrl-C interrupts).
    console: bool,
    main_done: Cell<bool>,
    main_failed: Cell<bool>,
    /// Why the main chunk failed, when it did.
    main_error: RefCell<Option<String>>,
    handlers: Cell<usize>,
    timers: Cell<usize>,
    jobs: Cell<usize>,
    /// Other things alive that the script owns: hubs it connected, scripts
    /// it loaded that have not finished ([`LuaHost::hold`]).
    holds: Cell<usize>,
    /// The script that loaded this one, while this one holds it (until this
    /// one finishes or is unloaded).
    parent: Cell<Option<ScriptId>>,
    /// Handler calls that wait (continue as coroutine jobs) now.
    waiting_handlers: Cell<usize>,
    /// Handler calls dropped since the last report, and when it was.
    dropped: Cell<u64>,
    dropped_event: RefCell<Rc<str>>,
    dropped_reported: Cell<Option<std::time::Instant>>,
}

impl std::fmt::Debug for Script {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Script").field("id", &self.id).field("name", &self.name).finish()
    }
}

impl Script {
    /// The script's Lua state.
    pub fn lua(&self) -> &Lua {
        &self.lua
    }

    /// Whether the main chunk ended with an error.
    pub fn main_failed(&self) -> bool {
        self.main_failed.get()
    }

    /// The main chunk's error, when it failed.
    pub fn main_error(&self) -> Option<String> {
        self.main_error.borrow().clone()
    }

    /// Whether the main chunk has ended (returned or failed).
    pub fn main_done(&self) -> bool {
        self.main_done.get()
    }

    /// The lifetime rule: a script has finished when its main chunk has
    /// returned and it owns nothing alive (handler, timer, coroutine, hub,
    /// unfinished script it loaded).
    fn is_idle(&self) -> bool {
        self.main_done.get()
            && self.handlers.get() == 0
            && self.timers.get() == 0
            && self.jobs.get() == 0
            && self.holds.get() == 0
    }
}

/// An event on its way to the handlers.
pub struct Event {
    /// The event name ("chat", "user_joined", or a script's own).
    pub name: Rc<str>,
    /// The event table's contents.
    pub data: Value,
    /// What happens if no handler consumes the event (printing chat in the
    /// console, for instance).
    pub default_action: Option<Box<dyn FnOnce()>>,
}

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Event").field("name", &self.name).finish_non_exhaustive()
    }
}

struct HandlerEntry {
    id: u64,
    script: ScriptId,
    event: Rc<str>,
    func: Function,
}

struct Waiter {
    job: JobId,
    script: ScriptId,
    /// The events waited for (`dc.wait`: one; `dc.wait_any`: several).
    events: Vec<Rc<str>>,
    /// Reply with the event's name before its table (`dc.wait_any`).
    named: bool,
    filter: Option<mlua::Value>,
}

struct LuaTimer {
    script: ScriptId,
    func: Function,
    repeating: bool,
    timer: TimerId,
}

/// What became of a coroutine job, kept for its handle's `:wait()`.
#[derive(Default)]
struct JobRecord {
    script: ScriptId,
    done: bool,
    ok: bool,
    results: Vec<mlua::Value>,
    error: Option<String>,
    joiners: Vec<JobId>,
    /// No handle refers to it (a main chunk, a handler or timer call, a
    /// console chunk), or its handle was collected: drop the record as soon as
    /// the job is done.
    forgotten: bool,
    /// The console chunk it runs; 0 for any other job.
    chunk: u64,
}

/// How a console chunk ended: the values formatted for display, or the error.
#[derive(Debug, Clone, PartialEq)]
pub enum ChunkOutcome {
    /// The values returned (formatted); empty when nothing to print.
    Values(Vec<String>),
    /// The error message.
    Error(String),
}

/// Receives lines of text.
pub type TextSink = Box<dyn Fn(&str)>;

type OnFinish = Box<dyn FnOnce(Result<Vec<String>, String>)>;

/// Hooks the application gives the host.
#[derive(Default)]
pub struct HostHooks {
    /// `dc.reload_config()`.
    pub reload_config: Option<Box<dyn Fn() -> Result<(), String>>>,
    /// `print` and `dc.log` output meant for the user.
    pub output: Option<TextSink>,
    /// Called with a script's id when it has nothing left to do (its main
    /// chunk returned and it owns no handler, timer or job).
    pub on_script_idle: Option<Box<dyn Fn(ScriptId)>>,
    /// `dc.quit(code)`.
    pub on_quit: Option<Box<dyn Fn(i32)>>,
}

/// What the layer above the host gives it at construction: the `dc` API of
/// each new Lua state, and the word that a script is gone. The host knows no
/// namespace of the API; `api::Api` composes them and implements this.
pub trait HostApi {
    /// Registers the Rust side of the API in a new state of `script`: the
    /// `dc` table's functions and the `native` primitives the prelude and the
    /// features' Lua sides build on. Runs before the prelude.
    fn register(
        &self,
        host: &LuaHost,
        lua: &Lua,
        script: ScriptId,
        dc: &Table,
        native: &Table,
    ) -> mlua::Result<()>;

    /// Runs the features' Lua sides in a new state, after the prelude (and
    /// before the sandbox closes it).
    fn extend(&self, lua: &Lua, dc: &Table, native: &Table) -> mlua::Result<()>;

    /// Script `id` is being unloaded: what the API made for it goes with it
    /// (the hubs it connected).
    fn script_unloaded(&self, host: &LuaHost, id: ScriptId);
}

pub(crate) struct HostInner {
    rt: Runtime,
    /// The API above the host.
    api: Rc<dyn HostApi>,
    opts: HostOptions,
    /// Scripts to unload at the dispatcher's next pass (out of memory).
    /// Scripts to unload at the dispatcher's next pass, and why (never from
    /// inside their own call).
    doomed: RefCell<Vec<(ScriptId, &'static str)>>,
    /// State the API modules keep per host, by type (see [`LuaHost::ext`]).
    exts: RefCell<HashMap<std::any::TypeId, Rc<dyn std::any::Any>>>,
    dispatcher: Cell<Option<JobId>>,
    scripts: RefCell<BTreeMap<ScriptId, Rc<Script>>>,
    next_id: Cell<u64>,
    handlers: RefCell<Vec<HandlerEntry>>,
    queue: RefCell<VecDeque<Event>>,
    waiters: RefCell<Vec<Waiter>>,
    timers: RefCell<HashMap<u64, LuaTimer>>,
    timer_ids: RefCell<HashMap<TimerId, u64>>,
    jobs: RefCell<HashMap<JobId, JobRecord>>,
    /// Handlers of `native.await` calls, by name.
    async_handlers: RefCell<HashMap<String, AsyncEntry>>,
    /// What to undo for a waiting async call whose job ends unanswered.
    abandoned: RefCell<HashMap<JobId, OnAbandon>>,
    /// The Lua timer each waiting timer-callback job serves.
    job_timers: RefCell<HashMap<JobId, u64>>,
    hooks: RefCell<HostHooks>,
    console: RefCell<Option<Rc<Script>>>,
    console_control: ConsoleControl,
    /// The time budget and Ctrl-C of running Lua.
    watch: Watch,
    /// `dc.quit` was called or the host is shutting down: stopped jobs say so.
    stopping: Cell<bool>,
    delivered: Cell<u64>,
}

/// The scripting host; a cheap `Rc` handle, used on the worker thread only.
#[derive(Clone)]
pub struct LuaHost {
    inner: Rc<HostInner>,
}

impl std::fmt::Debug for LuaHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LuaHost").field("scripts", &self.inner.scripts.borrow().len()).finish()
    }
}

/// A message to a [`LuaJob`]: the reply to its request.
struct Reply(Vec<Value>);

/// A message to a [`LuaJob`]: the answer of an async handler.
struct AsyncReply(Result<Vec<Value>, String>);

/// A waiting call served by Rust (`native.await(name, ...)` in Lua).
#[derive(Debug)]
pub struct AsyncCall {
    /// The waiting coroutine job; answer it with [`LuaHost::complete`].
    pub job: JobId,
    /// Its script.
    pub script: ScriptId,
    /// The arguments, as plain data (empty for a handler registered with
    /// [`register_async_lua`](LuaHost::register_async_lua), which receives
    /// them as Lua values).
    pub args: Vec<Value>,
}

/// Starts the work of an async call whose arguments stay Lua values of the
/// calling script's state (`dc.search` reads its query table as it is
/// given); an `Err` fails the call at once.
pub type AsyncLuaHandler = Rc<dyn Fn(&LuaHost, AsyncCall, &[mlua::Value]) -> Result<(), String>>;

/// A registered async handler.
#[derive(Clone)]
enum AsyncEntry {
    Plain(AsyncHandler),
    Lua(AsyncLuaHandler),
}

/// Undoes the work of an async call whose job ended unanswered.
type OnAbandon = Box<dyn FnOnce(&LuaHost)>;

/// Starts the work of an async call; an `Err` fails the call at once.
pub type AsyncHandler = Rc<dyn Fn(&LuaHost, AsyncCall) -> Result<(), String>>;

impl LuaHost {
    /// Creates the host and its dispatcher job; every new state gets `api`.
    /// Users build it with `LuaHost::new` or `LuaHost::with_hubs` (in
    /// [`api`](super::api), which composes the API).
    pub(crate) fn build(rt: &Runtime, opts: HostOptions, api: Rc<dyn HostApi>) -> LuaHost {
        // Without its watchdog thread a runaway loop would hang the client:
        // failing to start one thread at start-up is not recoverable.
        let watch = Watch::start(opts.time_budget)
            .unwrap_or_else(|e| panic!("starting the Lua watchdog thread: {e}"));
        let console_control =
            ConsoleControl { submitted: Arc::new(AtomicU64::new(0)), watch: watch.shared() };
        let inner = Rc::new(HostInner {
            rt: rt.clone(),
            api,
            opts,
            exts: RefCell::new(HashMap::new()),
            doomed: RefCell::new(Vec::new()),
            dispatcher: Cell::new(None),
            scripts: RefCell::new(BTreeMap::new()),
            next_id: Cell::new(1),
            handlers: RefCell::new(Vec::new()),
            queue: RefCell::new(VecDeque::new()),
            waiters: RefCell::new(Vec::new()),
            timers: RefCell::new(HashMap::new()),
            timer_ids: RefCell::new(HashMap::new()),
            jobs: RefCell::new(HashMap::new()),
            job_timers: RefCell::new(HashMap::new()),
            async_handlers: RefCell::new(HashMap::new()),
            abandoned: RefCell::new(HashMap::new()),
            hooks: RefCell::new(HostHooks::default()),
            console: RefCell::new(None),
            console_control,
            watch,
            stopping: Cell::new(false),
            delivered: Cell::new(0),
        });
        let host = LuaHost { inner };
        // The dispatcher job owns the host: it lives as long as that job, and
        // stopping the job (at shutdown) unloads every script.
        let id = rt.spawn(Dispatcher { host: Some(host.inner.clone()), stopped: false });
        host.inner.dispatcher.set(Some(id));
        host
    }

    /// The state an API module keeps for this host, made on first use: a
    /// module above the host keeps its bookkeeping here, so the host needs
    /// no knowledge of it and nothing lives in a thread-local.
    pub(crate) fn ext<T: Default + 'static>(&self) -> Rc<T> {
        let key = std::any::TypeId::of::<T>();
        let any = self
            .inner
            .exts
            .borrow_mut()
            .entry(key)
            .or_insert_with(|| Rc::new(T::default()) as Rc<dyn std::any::Any>)
            .clone();
        // The map's key is T's TypeId: the value is a T.
        any.downcast::<T>().unwrap_or_else(|_| unreachable!("an extension slot of another type"))
    }

    pub(crate) fn from_inner(inner: Rc<HostInner>) -> LuaHost {
        LuaHost { inner }
    }

    pub(crate) fn downgrade(&self) -> Weak<HostInner> {
        Rc::downgrade(&self.inner)
    }

    /// The runtime handle.
    pub fn runtime(&self) -> &Runtime {
        &self.inner.rt
    }

    /// Installs the application's hooks.
    pub fn set_hooks(&self, hooks: HostHooks) {
        *self.inner.hooks.borrow_mut() = hooks;
    }

    /// Registers the Rust side of a waiting call: Lua's `native.await(name,
    /// ...)` hands it an [`AsyncCall`]; the handler starts the work and later
    /// answers with [`complete`](LuaHost::complete).
    pub fn register_async(&self, name: &str, handler: AsyncHandler) {
        self.inner.async_handlers.borrow_mut().insert(name.to_string(), AsyncEntry::Plain(handler));
    }

    /// [`register_async`](LuaHost::register_async) for a handler that reads
    /// the call's arguments as Lua values.
    pub fn register_async_lua(&self, name: &str, handler: AsyncLuaHandler) {
        self.inner.async_handlers.borrow_mut().insert(name.to_string(), AsyncEntry::Lua(handler));
    }

    /// What to undo if waiting job `job` ends (stopped, its script unloaded)
    /// before its async call is answered: a handler whose work outlives the
    /// call's own bookkeeping (a search collecting results) registers it.
    pub fn on_abandoned(&self, job: JobId, undo: impl FnOnce(&LuaHost) + 'static) {
        self.inner.abandoned.borrow_mut().insert(job, Box::new(undo));
    }

    /// Answers a waiting call: the coroutine resumes with the values, or
    /// raises the error. A job that is gone (stopped meanwhile) is ignored.
    pub fn complete(&self, job: JobId, result: Result<Vec<Value>, String>) {
        self.inner.rt.send(job, AsyncReply(result));
    }

    /// The `native.await` function of script `id`'s state: a Lua function
    /// `(name, args...)` that yields to the async handler `name` (see
    /// [`register_async`](LuaHost::register_async)), for code that adds
    /// waiting functions to a state after it was made.
    pub(crate) fn awaiter(&self, id: ScriptId) -> Option<Function> {
        self.script(id)?.lua.named_registry_value(AWAIT_KEY).ok()
    }

    /// Coroutine job records kept (for tests: none should outlive its job and
    /// handle).
    pub fn job_records(&self) -> usize {
        self.inner.jobs.borrow().len()
    }

    /// Events delivered to handlers so far (for benchmarks and tests).
    pub fn delivered(&self) -> u64 {
        self.inner.delivered.get()
    }

    fn next_id(&self) -> u64 {
        let id = self.inner.next_id.get();
        self.inner.next_id.set(id + 1);
        id
    }

    /// Runs a plain (non-coroutine) call into `script`'s state under the
    /// time budget, as each resume is (answer filters, `dc.wait` filters).
    pub(crate) fn call_in<R>(&self, script: &Script, f: impl FnOnce() -> R) -> R {
        self.inner.watch.run(script.main_state, NOT_A_CHUNK, &script.budget_msg, f)
    }

    /// Whether the running Lua was interrupted (its budget spent or Ctrl-C):
    /// `pcall` must not catch that.
    pub(crate) fn exhausted(&self) -> bool {
        self.inner.watch.exhausted()
    }

    /// Writes user-facing output (`print`, `dc.log`).
    pub(crate) fn output(&self, text: &str) {
        let hooks = self.inner.hooks.borrow();
        match &hooks.output {
            Some(f) => f(text),
            None => println!("{text}"),
        }
    }

    // ----- scripts ---------------------------------------------------------

    /// Loads a script file and starts its main chunk as a coroutine job.
    /// Returns the new script's id.
    pub fn load_file(
        &self,
        path: &Path,
        trusted: bool,
        args: &[String],
    ) -> Result<ScriptId, String> {
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "script".into());
        if self.script_by_name(&name).is_some() {
            return Err(format!(
                "a script named '{name}' is already loaded (use dc.scripts.reload)"
            ));
        }
        let source =
            std::fs::read(path).map_err(|e| format!("reading script {}: {e}", path.display()))?;
        self.load_source(&name, Some(path), &source, trusted, args)
    }

    /// Loads a script from source text (name used in messages and chunk names).
    pub fn load_source(
        &self,
        name: &str,
        path: Option<&Path>,
        source: &[u8],
        trusted: bool,
        args: &[String],
    ) -> Result<ScriptId, String> {
        let script = self.new_state(name, path, trusted, args, false)?;
        let chunk_name = match path {
            Some(p) => format!("@{}", p.display()),
            None => format!("={name}"),
        };
        let source = source.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(source);
        let main = script
            .lua
            .load(source)
            .set_name(chunk_name)
            .set_mode(ChunkMode::Text)
            .into_function()
            .map_err(|e| format!("loading script {name}: {e}"))?;
        let argv = args.iter().map(Value::str).collect::<Vec<_>>();
        let id = script.id;
        self.inner.scripts.borrow_mut().insert(id, script.clone());
        let thread = script.lua.create_thread(main).map_err(|e| e.to_string())?;
        let args = argv.iter().map(|a| a.to_lua(&script.lua)).collect::<mlua::Result<Vec<_>>>();
        let args = MultiValue::from_vec(args.map_err(|e| e.to_string())?);
        self.spawn_job(&script, thread, "main chunk", false, Start::Resume(args), None);
        log::info!(target: "lua", "script {name} loaded");
        self.emit_value("script_loaded", Value::map([("name", Value::str(name))]));
        Ok(id)
    }

    /// Unloads a script: removes its handlers, timers and waiters and stops
    /// its jobs. Returns false when no such script is loaded.
    pub fn unload(&self, id: ScriptId) -> bool {
        self.unload_because(id, "unloaded")
    }

    /// [`unload`](Self::unload), telling the `script_unloaded` handlers why.
    fn unload_because(&self, id: ScriptId, reason: &str) -> bool {
        let Some(script) = self.inner.scripts.borrow_mut().remove(&id) else { return false };
        // What the API made for the script (the hubs it connected) leaves
        // with it.
        let api = self.inner.api.clone();
        api.script_unloaded(self, id);
        if let Some(p) = script.parent.take() {
            self.release(p);
        }
        self.inner.handlers.borrow_mut().retain(|h| h.script != id);
        self.inner.waiters.borrow_mut().retain(|w| w.script != id);
        let timers: Vec<u64> = self
            .inner
            .timers
            .borrow()
            .iter()
            .filter(|(_, t)| t.script == id)
            .map(|(k, _)| *k)
            .collect();
        for t in timers {
            self.stop_timer(t);
        }
        let jobs: Vec<JobId> = self
            .inner
            .jobs
            .borrow()
            .iter()
            .filter(|(_, r)| r.script == id && !r.done)
            .map(|(k, _)| *k)
            .collect();
        for j in jobs {
            self.inner.rt.stop(j);
        }
        script.idle.borrow_mut().clear();
        if script.path.is_some() || script.name != "console" {
            log::info!(target: "lua", "script {} unloaded", script.name);
            self.emit_value(
                "script_unloaded",
                Value::map([("name", Value::str(&script.name)), ("reason", Value::str(reason))]),
            );
        }
        // An unloaded script has nothing left either (`dclua run` of a
        // script that ended itself ends the client).
        let hooks = self.inner.hooks.borrow();
        if let Some(f) = &hooks.on_script_idle {
            f(id);
        }
        true
    }

    /// A script's call failed: when it is out of memory, the script is
    /// stopped and unloaded (at the dispatcher's next pass, not inside its
    /// own call), with one log line, instead of failing again on every event
    /// (issue 15, finding 2: 1,600 errors at 100 % CPU).
    fn call_failed(&self, script: &Script, error: &mlua::Error) {
        if !is_out_of_memory(error) || script_is_doomed(self, script.id) {
            return;
        }
        log::error!(
            target: "lua",
            "script {}: over its memory limit ({} MiB); stopped and unloaded",
            script.name,
            self.inner.opts.memory_limit >> 20
        );
        self.doom(script.id, "over its memory limit");
    }

    /// Script `id` ends itself (`dc.scripts.exit()`): unloaded at the
    /// dispatcher's next pass, once the call that asked has returned or
    /// waits.
    pub(crate) fn end_script(&self, id: ScriptId) {
        if !script_is_doomed(self, id) {
            self.doom(id, "ended itself");
        }
    }

    fn doom(&self, id: ScriptId, why: &'static str) {
        self.inner.doomed.borrow_mut().push((id, why));
        if let Some(d) = self.inner.dispatcher.get() {
            self.inner.rt.wake(d);
        }
    }

    /// Unloads and loads a script again from its file.
    pub fn reload(&self, id: ScriptId) -> Result<ScriptId, String> {
        let script = self.script(id).ok_or_else(|| format!("no script with id {id} is loaded"))?;
        let path = script
            .path
            .clone()
            .ok_or_else(|| format!("script {} has no file to reload", script.name))?;
        let trusted = script.trusted;
        // Compile first: a script with a syntax error stays loaded as it was.
        let source =
            std::fs::read(&path).map_err(|e| format!("reading script {}: {e}", path.display()))?;
        Lua::new()
            .load(&source[..])
            .set_name(format!("@{}", path.display()))
            .set_mode(ChunkMode::Text)
            .into_function()
            .map_err(|e| {
                format!("reloading script {}: {e} (the old version keeps running)", script.name)
            })?;
        self.unload(id);
        self.load_file(&path, trusted, &[])
    }

    /// A loaded script by id.
    pub fn script(&self, id: ScriptId) -> Option<Rc<Script>> {
        self.inner.scripts.borrow().get(&id).cloned()
    }

    /// A loaded script by name.
    pub fn script_by_name(&self, name: &str) -> Option<Rc<Script>> {
        self.inner.scripts.borrow().values().find(|s| s.name == name).cloned()
    }

    /// Names and ids of the loaded scripts, in load order.
    pub fn scripts(&self) -> Vec<(ScriptId, String)> {
        self.inner.scripts.borrow().values().map(|s| (s.id, s.name.clone())).collect()
    }

    /// Whether a script has nothing left to do (see [`HostHooks::on_script_idle`]).
    pub fn is_idle(&self, id: ScriptId) -> bool {
        self.script(id).is_none_or(|s| s.is_idle())
    }

    fn new_state(
        &self,
        name: &str,
        path: Option<&Path>,
        trusted: bool,
        args: &[String],
        console: bool,
    ) -> Result<Rc<Script>, String> {
        let err = |e: mlua::Error| format!("creating the Lua state of script {name}: {e}");
        let policy = Policy::script(trusted);
        let lua = sandbox::new_state(policy).map_err(err)?;
        let id = self.next_id();
        let main_state = watchdog::main_state(&lua).map_err(err)?;
        lua.set_memory_limit(self.inner.opts.memory_limit).map_err(err)?;
        let dc = lua.create_table().map_err(err)?;
        let native = lua.create_table().map_err(err)?;
        let api = self.inner.api.clone();
        api.register(self, &lua, id, &dc, &native).map_err(err)?;
        lua.globals().set("dc", &dc).map_err(err)?;
        let prelude = lua
            .load(include_str!("prelude.lua"))
            .set_name("=dclua prelude")
            .into_function()
            .map_err(err)?;
        let kinds = Request::table(&lua).map_err(err)?;
        let runner: Function = prelude.call((REQ, IDLE, kinds, &dc, &native)).map_err(err)?;
        // Features add their Lua side after the prelude (`dc.share`, hubs…).
        api.extend(&lua, &dc, &native).map_err(err)?;
        // Kept for Rust code that adds waiting functions to one state after
        // it is made (the bot test kit's `dctest`), where `native` is gone.
        let await_fn: Function = native.get("await").map_err(err)?;
        lua.set_named_registry_value(AWAIT_KEY, await_fn).map_err(err)?;
        // On a virtual clock (the bot test kit), `os.time()` follows it.
        if let crate::runtime::Clock::Virtual(clock) = self.inner.rt.clock() {
            let clock = clock.clone();
            sandbox::follow_clock(&lua, move || clock.unix_time()).map_err(err)?;
        }
        // Closed last: the prelude's handles have finalizers (`__gc`).
        sandbox::close(&lua, policy).map_err(err)?;
        dc.set("script", name).map_err(err)?;
        dc.set("args", args.to_vec()).map_err(err)?;
        Ok(Rc::new(Script {
            id,
            name: name.to_string(),
            path: path.map(Path::to_path_buf),
            trusted,
            lua,
            runner,
            idle: RefCell::new(Vec::new()),
            budget_msg: watchdog::budget_message(name, self.inner.opts.time_budget),
            main_state,
            console,
            main_done: Cell::new(false),
            main_failed: Cell::new(false),
            main_error: RefCell::new(None),
            handlers: Cell::new(0),
            timers: Cell::new(0),
            jobs: Cell::new(0),
            holds: Cell::new(0),
            parent: Cell::new(None),
            waiting_handlers: Cell::new(0),
            dropped: Cell::new(0),
            dropped_event: RefCell::new(Rc::from("")),
            dropped_reported: Cell::new(None),
        }))
    }

    /// Script `id` owns one more thing alive (a hub it connected).
    pub(crate) fn hold(&self, id: ScriptId) {
        if let Some(s) = self.script(id) {
            s.holds.set(s.holds.get() + 1);
        }
    }

    /// Script `id` owns one thing less ([`Self::hold`]); it may have
    /// finished.
    pub(crate) fn release(&self, id: ScriptId) {
        if let Some(s) = self.script(id) {
            s.holds.set(s.holds.get().saturating_sub(1));
            self.check_idle(&s);
        }
    }

    /// Script `child` was loaded by script `parent`: the parent stays alive
    /// until the child has finished or is unloaded.
    pub(crate) fn adopt(&self, parent: ScriptId, child: ScriptId) {
        let Some(c) = self.script(child) else { return };
        if parent == child || c.is_idle() || c.parent.get().is_some() {
            return;
        }
        c.parent.set(Some(parent));
        self.hold(parent);
    }

    fn check_idle(&self, script: &Script) {
        if !script.is_idle() {
            return;
        }
        // A finished script no longer keeps the one that loaded it.
        if let Some(p) = script.parent.take() {
            self.release(p);
        }
        if self.inner.scripts.borrow().contains_key(&script.id) {
            let hooks = self.inner.hooks.borrow();
            if let Some(f) = &hooks.on_script_idle {
                f(script.id);
            }
        }
    }

    // ----- jobs ------------------------------------------------------------

    fn spawn_job(
        &self,
        script: &Rc<Script>,
        thread: Thread,
        label: &str,
        reusable: bool,
        start: Start,
        on_finish: Option<OnFinish>,
    ) -> JobId {
        self.spawn_chunk_job(script, thread, label, reusable, start, on_finish, NOT_A_CHUNK)
    }

    /// [`spawn_job`](Self::spawn_job) for console chunk number `chunk`.
    #[allow(clippy::too_many_arguments)]
    fn spawn_chunk_job(
        &self,
        script: &Rc<Script>,
        thread: Thread,
        label: &str,
        reusable: bool,
        start: Start,
        on_finish: Option<OnFinish>,
        chunk: u64,
    ) -> JobId {
        script.jobs.set(script.jobs.get() + 1);
        let host = self.downgrade();
        let script_rc = script.clone();
        // Only dc.spawn gives out a handle; other jobs' records go when they end.
        let forgotten = label != "dc.spawn function";
        let label = label.to_string();
        let id = self.inner.rt.spawn_with(move |_| LuaJob {
            host,
            script: script_rc,
            thread,
            label,
            reusable,
            state: JobState::Start(start),
            on_finish,
            outcome: None,
            stopped: false,
            chunk,
        });
        self.inner.jobs.borrow_mut().insert(
            id,
            JobRecord {
                script: script.id,
                forgotten,
                chunk: if chunk == NOT_A_CHUNK { 0 } else { chunk },
                ..Default::default()
            },
        );
        id
    }

    /// Starts `func(args...)` as a new coroutine job of `script` (`dc.spawn`).
    pub(crate) fn spawn_function(
        &self,
        script: ScriptId,
        func: Function,
        args: MultiValue,
    ) -> mlua::Result<JobId> {
        let script =
            self.script(script).ok_or_else(|| mlua::Error::runtime("the script is unloaded"))?;
        let thread = script.lua.create_thread(func)?;
        Ok(self.spawn_job(&script, thread, "dc.spawn function", false, Start::Resume(args), None))
    }

    /// Starts a bot test's function as a coroutine job of `script`;
    /// `done` gets its outcome (the test runner reports an error: the host
    /// does not log it).
    pub(crate) fn spawn_test(
        &self,
        script: ScriptId,
        func: Function,
        done: impl FnOnce(Result<Vec<String>, String>) + 'static,
    ) -> mlua::Result<JobId> {
        let script =
            self.script(script).ok_or_else(|| mlua::Error::runtime("the script is unloaded"))?;
        let thread = script.lua.create_thread(func)?;
        let args = Start::Resume(MultiValue::new());
        Ok(self.spawn_job(&script, thread, "test function", false, args, Some(Box::new(done))))
    }

    pub(crate) fn job_alive(&self, id: JobId) -> bool {
        self.inner.jobs.borrow().get(&id).is_some_and(|r| !r.done)
    }

    pub(crate) fn job_stop(&self, id: JobId) {
        if self.job_alive(id) {
            self.inner.rt.stop(id);
        }
    }

    /// `(true, results...)` or `(false, error)`; `(nil, "still running")`
    /// while it runs.
    pub(crate) fn job_result(&self, lua: &Lua, id: JobId) -> mlua::Result<MultiValue> {
        let jobs = self.inner.jobs.borrow();
        let Some(r) = jobs.get(&id) else {
            return Ok(MultiValue::from_vec(vec![
                mlua::Value::Nil,
                mlua::Value::String(lua.create_string("unknown job")?),
            ]));
        };
        if !r.done {
            return Ok(MultiValue::from_vec(vec![
                mlua::Value::Nil,
                mlua::Value::String(lua.create_string("still running")?),
            ]));
        }
        let mut out = vec![mlua::Value::Boolean(r.ok)];
        if r.ok {
            out.extend(r.results.iter().cloned());
        } else {
            out.push(mlua::Value::String(
                lua.create_string(r.error.as_deref().unwrap_or("failed"))?,
            ));
        }
        Ok(MultiValue::from_vec(out))
    }

    pub(crate) fn job_forget(&self, id: JobId) {
        let mut jobs = self.inner.jobs.borrow_mut();
        if let Some(r) = jobs.get_mut(&id) {
            if r.done {
                jobs.remove(&id);
            } else {
                r.forgotten = true;
            }
        }
    }

    fn job_finished(&self, id: JobId, script: &Script, outcome: Result<Vec<mlua::Value>, String>) {
        if let Some(timer) = self.inner.job_timers.borrow_mut().remove(&id) {
            if outcome.is_err() {
                self.timer_failed(timer);
            }
        }
        let joiners = {
            let mut jobs = self.inner.jobs.borrow_mut();
            match jobs.get_mut(&id) {
                Some(r) => {
                    r.done = true;
                    match outcome {
                        Ok(v) => {
                            r.ok = true;
                            r.results = v;
                        }
                        Err(e) => r.error = Some(e),
                    }
                    let joiners = std::mem::take(&mut r.joiners);
                    if r.forgotten {
                        jobs.remove(&id);
                    }
                    joiners
                }
                None => Vec::new(),
            }
        };
        for j in joiners {
            self.inner.rt.send(j, Reply(Vec::new()));
        }
        script.jobs.set(script.jobs.get().saturating_sub(1));
        self.check_idle(script);
    }

    fn join(&self, waiter: JobId, target: JobId) -> bool {
        let mut jobs = self.inner.jobs.borrow_mut();
        match jobs.get_mut(&target) {
            Some(r) if !r.done => {
                r.joiners.push(waiter);
                true
            }
            _ => false,
        }
    }

    // ----- events ----------------------------------------------------------

    /// Queues an event; handlers see it on the dispatcher's next poll.
    pub fn emit(&self, event: Event) {
        self.inner.queue.borrow_mut().push_back(event);
        if let Some(d) = self.inner.dispatcher.get() {
            self.inner.rt.wake(d);
        }
    }

    /// Whether a handler or a waiting coroutine is interested in `event`
    /// (sessions skip building event tables nobody would see).
    pub fn has_listener(&self, event: &str) -> bool {
        self.inner.handlers.borrow().iter().any(|h| &*h.event == event)
            || self.inner.waiters.borrow().iter().any(|w| w.events.iter().any(|e| &**e == event))
    }

    /// Whether a handler (which may consume it) exists for `event`.
    pub fn has_handler(&self, event: &str) -> bool {
        self.inner.handlers.borrow().iter().any(|h| &*h.event == event)
    }

    /// Events queued and not delivered yet.
    pub fn queue_len(&self) -> usize {
        self.inner.queue.borrow().len()
    }

    /// Queues an event with no default action.
    pub fn emit_value(&self, name: &str, data: Value) {
        self.emit(Event { name: Rc::from(name), data, default_action: None });
    }

    pub(crate) fn add_handler(&self, script: ScriptId, event: &str, func: Function) -> u64 {
        let id = self.next_id();
        self.inner.handlers.borrow_mut().push(HandlerEntry {
            id,
            script,
            event: Rc::from(event),
            func,
        });
        if let Some(s) = self.script(script) {
            s.handlers.set(s.handlers.get() + 1);
        }
        id
    }

    pub(crate) fn remove_handler(&self, id: u64) {
        let removed = {
            let mut hs = self.inner.handlers.borrow_mut();
            let pos = hs.iter().position(|h| h.id == id);
            pos.map(|p| hs.remove(p))
        };
        if let Some(h) = removed {
            if let Some(s) = self.script(h.script) {
                s.handlers.set(s.handlers.get().saturating_sub(1));
                self.check_idle(&s);
            }
        }
    }

    fn dispatch(&self, event: Event) {
        // Drops counted since a report that is now a second old are
        // reported now, so that the end of a flood is not left unsaid.
        if event.name.as_ref() != "events_dropped" {
            let late: Vec<Rc<Script>> = self
                .inner
                .scripts
                .borrow()
                .values()
                .filter(|s| s.dropped.get() > 0)
                .cloned()
                .collect();
            for s in late {
                self.report_dropped(&s);
            }
        }
        // Waiters first: a coroutine waiting in dc.wait sees the event even
        // if a handler consumes it (it asked for exactly this).
        self.wake_waiters(&event);
        let handlers: Vec<(ScriptId, Function)> = self
            .inner
            .handlers
            .borrow()
            .iter()
            .filter(|h| h.event == event.name)
            .map(|h| (h.script, h.func.clone()))
            .collect();
        let mut consumed = false;
        let mut tables: Vec<(ScriptId, mlua::Value)> = Vec::new();
        for (sid, func) in handlers {
            let Some(script) = self.script(sid) else { continue };
            if script.waiting_handlers.get() >= MAX_WAITING_CALLS {
                self.handler_dropped(&script, &event.name);
                continue;
            }
            let table = match tables.iter().find(|(s, _)| *s == sid) {
                Some((_, t)) => t.clone(),
                None => match event.data.to_lua(&script.lua) {
                    Ok(t) => {
                        tables.push((sid, t.clone()));
                        t
                    }
                    Err(e) => {
                        log::error!(target: "lua", "script {}: building the '{}' event table: {e}", script.name, event.name);
                        continue;
                    }
                },
            };
            self.inner.delivered.set(self.inner.delivered.get() + 1);
            let label = Label::Handler(&event.name);
            if let CallResult::Done(results) = self.run_call(&script, func, table, label, None) {
                if matches!(results.front(), Some(mlua::Value::Boolean(true))) {
                    consumed = true;
                    break;
                }
            }
        }
        if !consumed {
            if let Some(action) = event.default_action {
                action();
            }
        }
    }

    /// A handler call not made because its script has too many waiting
    /// coroutines ([`MAX_WAITING_CALLS`]): counted, and reported at most
    /// every [`DROPPED_REPORT_EVERY`] in the log and as `events_dropped`.
    fn handler_dropped(&self, script: &Script, event: &str) {
        script.dropped.set(script.dropped.get() + 1);
        // The report itself is not reported when dropped.
        if event != "events_dropped" {
            *script.dropped_event.borrow_mut() = Rc::from(event);
            self.report_dropped(script);
        }
    }

    /// Reports a script's dropped handler calls, unless the last report is
    /// less than [`DROPPED_REPORT_EVERY`] old.
    fn report_dropped(&self, script: &Script) {
        let event = script.dropped_event.borrow().clone();
        let now = self.inner.rt.now();
        if script
            .dropped_reported
            .get()
            .is_some_and(|at| now.saturating_duration_since(at) < DROPPED_REPORT_EVERY)
        {
            return;
        }
        let count = script.dropped.replace(0);
        script.dropped_reported.set(Some(now));
        log::warn!(target: "lua", "script {}: {MAX_WAITING_CALLS} of its handler calls are waiting; {count} '{event}' (and other) handler calls dropped", script.name);
        self.emit_value(
            "events_dropped",
            Value::map([
                ("script", Value::str(&script.name)),
                ("count", Value::Int(i64::try_from(count).unwrap_or(i64::MAX))),
                ("event", Value::str(&*event)),
            ]),
        );
    }

    fn wake_waiters(&self, event: &Event) {
        if self.inner.waiters.borrow().is_empty() {
            return;
        }
        let candidates: Vec<(usize, JobId, ScriptId, Option<mlua::Value>)> = self
            .inner
            .waiters
            .borrow()
            .iter()
            .enumerate()
            .filter(|(_, w)| w.events.contains(&event.name))
            .map(|(i, w)| (i, w.job, w.script, w.filter.clone()))
            .collect();
        let mut hit = Vec::new();
        for (_, job, sid, filter) in candidates {
            let Some(script) = self.script(sid) else { continue };
            if self.filter_matches(&script, &event.data, filter.as_ref()) {
                hit.push(job);
            }
        }
        if hit.is_empty() {
            return;
        }
        let mut named = Vec::new();
        self.inner.waiters.borrow_mut().retain(|w| {
            let done = w.events.contains(&event.name) && hit.contains(&w.job);
            if done && w.named {
                named.push(w.job);
            }
            !done
        });
        for job in hit {
            let reply = if named.contains(&job) {
                vec![Value::str(&event.name), event.data.clone()]
            } else {
                vec![event.data.clone()]
            };
            self.inner.rt.send(job, Reply(reply));
        }
    }

    fn filter_matches(&self, script: &Script, data: &Value, filter: Option<&mlua::Value>) -> bool {
        match filter {
            None | Some(mlua::Value::Nil) => true,
            Some(mlua::Value::Table(t)) => t.pairs::<String, mlua::Value>().all(|pair| {
                let Ok((k, want)) = pair else { return false };
                match (Value::from_lua(&want, "filter"), data.get(&k)) {
                    (Ok(want), got) => &want == got || matches!((&want, got), (Value::Int(a), Value::Num(b)) if *a as f64 == *b),
                    _ => false,
                }
            }),
            Some(mlua::Value::Function(f)) => {
                let table = match data.to_lua(&script.lua) {
                    Ok(t) => t,
                    Err(_) => return false,
                };
                match self.call_in(script, || f.call::<mlua::Value>(table)) {
                    Ok(v) => !matches!(v, mlua::Value::Nil | mlua::Value::Boolean(false)),
                    Err(e) => {
                        log::error!(target: "lua", "script {}: dc.wait filter failed (it must not wait): {e}", script.name);
                        false
                    }
                }
            }
            Some(_) => false,
        }
    }

    /// Runs `func(arg)` on a reused coroutine of `script`. A call that waits
    /// continues as a job (`timer` names the Lua timer it serves, so that a
    /// later failure stops that timer).
    fn run_call(
        &self,
        script: &Rc<Script>,
        func: Function,
        arg: mlua::Value,
        label: Label<'_>,
        timer: Option<u64>,
    ) -> CallResult {
        let thread = match script.idle.borrow_mut().pop() {
            Some(t) => t,
            None => match script.lua.create_thread(script.runner.clone()) {
                Ok(t) => t,
                Err(e) => {
                    log::error!(target: "lua", "script {}: {label}: creating a coroutine: {e}", script.name);
                    return CallResult::Failed;
                }
            },
        };
        let state = thread.state();
        let out = self.inner.watch.run(state, NOT_A_CHUNK, &script.budget_msg, || {
            thread.resume::<MultiValue>((func, arg))
        });
        match out {
            Ok(mut vals) => match classify(script, &vals) {
                Yielded::Idle => {
                    vals.pop_front();
                    let mut idle = script.idle.borrow_mut();
                    if idle.len() < IDLE_KEEP {
                        idle.push(thread);
                    }
                    CallResult::Done(vals)
                }
                Yielded::Request => {
                    // Waiting handler calls are counted (MAX_WAITING_CALLS).
                    let on_finish: Option<OnFinish> = match label {
                        Label::Handler(_) => {
                            script.waiting_handlers.set(script.waiting_handlers.get() + 1);
                            let s = script.clone();
                            Some(Box::new(move |_| {
                                s.waiting_handlers.set(s.waiting_handlers.get().saturating_sub(1));
                            }))
                        }
                        _ => None,
                    };
                    let job = self.spawn_job(
                        script,
                        thread,
                        &label.to_string(),
                        true,
                        Start::Request(vals),
                        on_finish,
                    );
                    if let Some(t) = timer {
                        self.inner.job_timers.borrow_mut().insert(job, t);
                    }
                    CallResult::Waiting
                }
                Yielded::Other => {
                    log::error!(
                        target: "lua",
                        "script {}: {label}: yielded a value that is not a dclua request \
                         (use dc.sleep/dc.wait, or your own coroutine)", script.name
                    );
                    CallResult::Failed
                }
            },
            Err(e) => {
                if !script_is_doomed(self, script.id) {
                    log::error!(target: "lua", "script {}: error in {label}: {e}", script.name);
                }
                self.call_failed(script, &e);
                CallResult::Failed
            }
        }
    }

    // ----- timers ----------------------------------------------------------

    pub(crate) fn add_timer(
        &self,
        script: ScriptId,
        seconds: f64,
        func: Function,
        repeating: bool,
    ) -> mlua::Result<u64> {
        let dispatcher = self
            .inner
            .dispatcher
            .get()
            .ok_or_else(|| mlua::Error::runtime("the host is shut down"))?;
        let d = duration(seconds)?;
        let timer = if repeating {
            self.inner.rt.timer_every(dispatcher, d.max(Duration::from_millis(1)))
        } else {
            self.inner.rt.timer_after(dispatcher, d)
        };
        let id = self.next_id();
        self.inner.timers.borrow_mut().insert(id, LuaTimer { script, func, repeating, timer });
        self.inner.timer_ids.borrow_mut().insert(timer, id);
        if let Some(s) = self.script(script) {
            s.timers.set(s.timers.get() + 1);
        }
        Ok(id)
    }

    pub(crate) fn stop_timer(&self, id: u64) {
        let Some(t) = self.inner.timers.borrow_mut().remove(&id) else { return };
        self.inner.timer_ids.borrow_mut().remove(&t.timer);
        self.inner.rt.cancel_timer(t.timer);
        if let Some(s) = self.script(t.script) {
            s.timers.set(s.timers.get().saturating_sub(1));
            self.check_idle(&s);
        }
    }

    pub(crate) fn timer_active(&self, id: u64) -> bool {
        self.inner.timers.borrow().contains_key(&id)
    }

    fn fire_timer(&self, timer: TimerId) {
        let Some(id) = self.inner.timer_ids.borrow().get(&timer).copied() else { return };
        let (sid, func, repeating) = {
            let timers = self.inner.timers.borrow();
            let Some(t) = timers.get(&id) else { return };
            (t.script, t.func.clone(), t.repeating)
        };
        if !repeating {
            // A one-shot timer is done once it fires, whatever its callback does.
            self.stop_timer(id);
        } else if self.inner.job_timers.borrow().values().any(|&t| t == id) {
            // The previous call still waits: dc.every skips this tick rather
            // than run callbacks side by side (issue 13, finding 6).
            return;
        }
        let Some(script) = self.script(sid) else { return };
        let label =
            Label::Static(if repeating { "dc.every callback" } else { "dc.after callback" });
        if let CallResult::Failed = self.run_call(&script, func, mlua::Value::Nil, label, Some(id))
        {
            self.timer_failed(id);
        }
    }

    /// A repeating timer whose callback failed stops (Hammerspoon's rule: a
    /// broken callback must not spam the log forever).
    fn timer_failed(&self, id: u64) {
        let script = self.inner.timers.borrow().get(&id).filter(|t| t.repeating).map(|t| t.script);
        if let Some(sid) = script {
            let name = self.script(sid).map(|s| s.name.clone()).unwrap_or_default();
            log::error!(target: "lua", "script {name}: the dc.every timer stopped after its callback failed");
            self.stop_timer(id);
        }
    }

    // ----- waiting ---------------------------------------------------------

    fn add_waiter(
        &self,
        job: JobId,
        script: ScriptId,
        events: Vec<Rc<str>>,
        named: bool,
        filter: Option<mlua::Value>,
    ) {
        self.inner.waiters.borrow_mut().push(Waiter { job, script, events, named, filter });
    }

    fn remove_waiter(&self, job: JobId) {
        self.inner.waiters.borrow_mut().retain(|w| w.job != job);
    }

    // ----- console ---------------------------------------------------------

    /// Runs a console chunk as a coroutine job in the console's own (trusted)
    /// state; `done` receives the formatted results or the error.
    pub fn eval_console(&self, chunk: &str, done: impl FnOnce(ChunkOutcome) + 'static) {
        let number = self.inner.console_control.next_chunk();
        self.eval_console_chunk(number, chunk, done);
    }

    /// The console's handle on chunk numbers and Ctrl-C, for the console
    /// thread.
    pub fn console_control(&self) -> ConsoleControl {
        self.inner.console_control.clone()
    }

    /// Runs console chunk `number` (from [`ConsoleControl::next_chunk`]):
    /// a Ctrl-C made after it was numbered interrupts it.
    pub fn eval_console_chunk(
        &self,
        number: u64,
        chunk: &str,
        done: impl FnOnce(ChunkOutcome) + 'static,
    ) {
        let script = match self.console_script() {
            Ok(s) => s,
            Err(e) => return done(ChunkOutcome::Error(e)),
        };
        // Like lua.c: try it as an expression first, so `1 + 1` prints 2.
        let func = script
            .lua
            .load(format!("return {chunk}"))
            .set_name("=console")
            .set_mode(ChunkMode::Text)
            .into_function()
            .or_else(|_| {
                script
                    .lua
                    .load(chunk)
                    .set_name("=console")
                    .set_mode(ChunkMode::Text)
                    .into_function()
            });
        let func = match func {
            Ok(f) => f,
            Err(e) => return done(ChunkOutcome::Error(e.to_string())),
        };
        let thread = match script.lua.create_thread(func) {
            Ok(t) => t,
            Err(e) => return done(ChunkOutcome::Error(e.to_string())),
        };
        let on_finish: OnFinish = Box::new(move |r| {
            done(match r {
                Ok(v) => ChunkOutcome::Values(v),
                Err(e) => ChunkOutcome::Error(e),
            });
        });
        self.spawn_chunk_job(
            &script,
            thread,
            "console",
            false,
            Start::Resume(MultiValue::new()),
            Some(on_finish),
            number,
        );
    }

    /// Ctrl-C in the console: the console chunks submitted so far fail with
    /// "interrupted", whether computing (the hook sees the mark at once) or
    /// waiting (their jobs are stopped here); other coroutines of the
    /// console's state end as "stopped".
    pub fn interrupt_console(&self) {
        let last = self.inner.console_control.interrupt();
        self.interrupt_console_upto(last);
    }

    /// [`interrupt_console`](Self::interrupt_console) for the chunks
    /// numbered up to `last` (what the console thread marked: a chunk
    /// submitted after the Ctrl-C is not touched).
    pub fn interrupt_console_upto(&self, last: u64) {
        self.inner.console_control.interrupt_upto(last);
        let Some(script) = self.inner.console.borrow().clone() else { return };
        let jobs: Vec<JobId> = self
            .inner
            .jobs
            .borrow()
            .iter()
            // Chunks typed after the Ctrl-C keep running.
            .filter(|(_, r)| r.script == script.id && !r.done && r.chunk <= last)
            .map(|(k, _)| *k)
            .collect();
        for j in jobs {
            self.inner.rt.stop(j);
        }
    }

    /// The console's state (created on first use).
    pub fn console_script(&self) -> Result<Rc<Script>, String> {
        if let Some(s) = self.inner.console.borrow().clone() {
            return Ok(s);
        }
        let s = self.new_state("console", None, true, &[], true)?;
        s.main_done.set(true);
        self.inner.scripts.borrow_mut().insert(s.id, s.clone());
        *self.inner.console.borrow_mut() = Some(s.clone());
        Ok(s)
    }

    // ----- misc --------------------------------------------------------------

    pub(crate) fn reload_config(&self) -> Result<(), String> {
        let hooks = self.inner.hooks.borrow();
        match &hooks.reload_config {
            Some(f) => f(),
            None => Err("this dclua has no configuration file to reload".into()),
        }
    }

    pub(crate) fn quit(&self, code: i32) {
        self.inner.stopping.set(true);
        let hooks = self.inner.hooks.borrow();
        match &hooks.on_quit {
            Some(f) => f(code),
            None => log::warn!(target: "lua", "dc.quit({code}) ignored: nothing to quit"),
        }
    }

    /// Stops the dispatcher and every script (shutdown).
    pub fn shutdown(&self) {
        self.inner.stopping.set(true);
        let ids: Vec<ScriptId> = self.inner.scripts.borrow().keys().copied().collect();
        for id in ids {
            self.unload(id);
        }
        *self.inner.console.borrow_mut() = None;
        self.inner.queue.borrow_mut().clear();
        if let Some(d) = self.inner.dispatcher.take() {
            self.inner.rt.stop(d);
        }
    }
}

fn duration(seconds: f64) -> mlua::Result<Duration> {
    Duration::try_from_secs_f64(seconds)
        .map_err(|_| mlua::Error::runtime(format!("invalid duration: {seconds} seconds")))
}

/// What a call is, for messages (formatted only when needed).
#[derive(Clone, Copy)]
enum Label<'a> {
    Handler(&'a str),
    Static(&'static str),
}

impl std::fmt::Display for Label<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Label::Handler(event) => write!(f, "handler for '{event}'"),
            Label::Static(s) => f.write_str(s),
        }
    }
}

/// What a synchronous handler or timer call came to.
enum CallResult {
    /// It returned these values.
    Done(MultiValue),
    /// It waits; a job carries it on.
    Waiting,
    /// It failed (logged).
    Failed,
}

enum Yielded {
    Idle,
    Request,
    Other,
}

/// Marks a yield that is a host request: `(REQ, kind, args...)`. Light
/// userdata: no allocation when it crosses to Rust, and Lua code cannot forge
/// one without the C API. The addresses only need to be distinct.
static REQ_TAG: u8 = 0;
static IDLE_TAG: u8 = 0;
const REQ: LightUserData = LightUserData(&REQ_TAG as *const u8 as *mut std::ffi::c_void);
const IDLE: LightUserData = LightUserData(&IDLE_TAG as *const u8 as *mut std::ffi::c_void);

/// The kinds of host requests, `(REQ, kind, args...)`: the prelude receives
/// their values (integers cross to Rust without allocating anything) by
/// their [`lua_name`](Request::lua_name)s.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Request {
    /// `dc.sleep(seconds)`.
    Sleep = 1,
    /// `dc.wait(event, filter, timeout)` and `dc.wait_any(events, ...)`.
    Wait = 2,
    /// `job:wait()`: `(job id)`.
    Join = 3,
    /// `native.await(name, args...)`, served by the async handler `name`.
    Async = 4,
}

impl Request {
    const ALL: [Request; 4] = [Request::Sleep, Request::Wait, Request::Join, Request::Async];

    /// Its local's name in the prelude.
    fn lua_name(self) -> &'static str {
        match self {
            Request::Sleep => "SLEEP",
            Request::Wait => "WAIT",
            Request::Join => "JOIN",
            Request::Async => "ASYNC",
        }
    }

    fn from_value(k: i64) -> Option<Request> {
        Request::ALL.into_iter().find(|r| *r as i64 == k)
    }

    /// The table of kinds given to the prelude: `{SLEEP = 1, ...}`.
    fn table(lua: &Lua) -> mlua::Result<Table> {
        let t = lua.create_table_with_capacity(0, Request::ALL.len())?;
        for r in Request::ALL {
            t.raw_set(r.lua_name(), r as u8)?;
        }
        Ok(t)
    }
}

fn classify(_script: &Script, vals: &MultiValue) -> Yielded {
    match vals.front() {
        Some(mlua::Value::LightUserData(p)) if *p == IDLE => Yielded::Idle,
        Some(mlua::Value::LightUserData(p)) if *p == REQ => Yielded::Request,
        _ => Yielded::Other,
    }
}

/// Formats a value for the console: strings as they are; tables on one
/// line, nested ones too down to [`SHOW_DEPTH`] levels (`{...}` below), a
/// table met again inside itself as `<cycle>`, keys sorted, at most
/// [`SHOW_ITEMS`] entries a table; a table with `__tostring` as it says.
pub fn format_value(v: &mlua::Value) -> String {
    match v {
        mlua::Value::String(s) => s.to_string_lossy(),
        other => {
            let mut out = String::new();
            write_value(&mut out, other, 0, &mut Vec::new());
            out
        }
    }
}

/// Nested tables shown before `{...}`.
pub const SHOW_DEPTH: usize = 4;
/// Entries of one table shown before `... (N more)`.
pub const SHOW_ITEMS: usize = 30;

fn write_value(
    out: &mut String,
    v: &mlua::Value,
    depth: usize,
    open: &mut Vec<*const std::ffi::c_void>,
) {
    match v {
        mlua::Value::Nil => out.push_str("nil"),
        mlua::Value::Boolean(b) => out.push_str(&b.to_string()),
        mlua::Value::Integer(i) => out.push_str(&i.to_string()),
        mlua::Value::Number(n) => {
            if n.fract() == 0.0 && n.abs() < 1e15 {
                out.push_str(&format!("{n:.1}"));
            } else {
                out.push_str(&n.to_string());
            }
        }
        mlua::Value::String(s) => out.push_str(&format!("{:?}", s.to_string_lossy())),
        mlua::Value::Table(t) => write_table(out, t, depth, open),
        other => out.push_str(&other.to_string().unwrap_or_else(|_| other.type_name().into())),
    }
}

fn write_table(
    out: &mut String,
    t: &mlua::Table,
    depth: usize,
    open: &mut Vec<*const std::ffi::c_void>,
) {
    if let Some(mt) = t.metatable() {
        if let Ok(mlua::Value::Function(_)) = mt.raw_get::<mlua::Value>("__tostring") {
            let shown = mlua::Value::Table(t.clone()).to_string();
            out.push_str(&shown.unwrap_or_else(|_| "table".into()));
            return;
        }
    }
    let ptr = t.to_pointer();
    if open.contains(&ptr) {
        out.push_str("<cycle>");
        return;
    }
    if depth >= SHOW_DEPTH {
        out.push_str("{...}");
        return;
    }
    open.push(ptr);
    let len = t.raw_len();
    let mut items: Vec<(String, mlua::Value)> = Vec::new();
    let mut keyed: Vec<(String, mlua::Value)> = Vec::new();
    for i in 1..=len.min(SHOW_ITEMS) {
        items.push((String::new(), t.raw_get::<mlua::Value>(i).unwrap_or(mlua::Value::Nil)));
    }
    let mut extra = len.saturating_sub(SHOW_ITEMS);
    for (k, val) in t.pairs::<mlua::Value, mlua::Value>().flatten() {
        if let mlua::Value::Integer(i) = k {
            if i >= 1 && (i as usize) <= len {
                continue;
            }
        }
        let key = match &k {
            mlua::Value::String(s) => {
                let s = s.to_string_lossy();
                if !s.is_empty()
                    && !s.starts_with(|c: char| c.is_ascii_digit())
                    && s.chars().all(|c| c.is_alphanumeric() || c == '_')
                {
                    s
                } else {
                    format!("[{s:?}]")
                }
            }
            other => {
                let mut k = String::from("[");
                write_value(&mut k, other, SHOW_DEPTH, open);
                k.push(']');
                k
            }
        };
        keyed.push((key, val));
    }
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    let room = SHOW_ITEMS.saturating_sub(items.len());
    extra += keyed.len().saturating_sub(room);
    keyed.truncate(room);
    out.push('{');
    for (n, (key, val)) in items.iter().chain(keyed.iter()).enumerate() {
        if n > 0 {
            out.push_str(", ");
        }
        if !key.is_empty() {
            out.push_str(key);
            out.push_str(" = ");
        }
        write_value(out, val, depth + 1, open);
    }
    if extra > 0 {
        if !items.is_empty() || !keyed.is_empty() {
            out.push_str(", ");
        }
        out.push_str(&format!("... ({extra} more)"));
    }
    out.push('}');
    open.pop();
}

// ----- the dispatcher job ---------------------------------------------------

/// Delivers queued events to handlers and runs Lua timer callbacks. Owns the
/// host.
struct Dispatcher {
    host: Option<Rc<HostInner>>,
    stopped: bool,
}

impl Job for Dispatcher {
    fn poll(&mut self, cx: &mut Context<'_>) -> Step {
        if self.stopped {
            if let Some(inner) = self.host.take() {
                LuaHost::from_inner(inner).shutdown();
            }
            return Step::Done;
        }
        let Some(inner) = self.host.clone() else { return Step::Done };
        let host = LuaHost::from_inner(inner);
        for &t in cx.fired_timers() {
            host.fire_timer(t);
        }
        let doomed: Vec<(ScriptId, &'static str)> =
            host.inner.doomed.borrow_mut().drain(..).collect();
        for (id, why) in doomed {
            host.unload_because(id, why);
        }
        let budget = host.inner.opts.events_per_poll;
        for _ in 0..budget {
            let ev = host.inner.queue.borrow_mut().pop_front();
            match ev {
                Some(ev) => host.dispatch(ev),
                None => break,
            }
        }
        if !host.inner.queue.borrow().is_empty() {
            cx.repoll();
        }
        Step::Pending
    }

    fn is_alive(&self) -> bool {
        !self.stopped
    }

    fn stop(&mut self) {
        self.stopped = true;
    }

    fn name(&self) -> String {
        "lua dispatcher".into()
    }
}

// ----- coroutine jobs -------------------------------------------------------

enum Start {
    /// Resume with these arguments (a new coroutine).
    Resume(MultiValue),
    /// The coroutine already yielded this request (a handler that waits).
    Request(MultiValue),
}

enum JobState {
    Start(Start),
    /// `dc.sleep(0)`: resume in the next pass.
    Yielded,
    /// An async handler works for it.
    Awaiting,
    Sleeping(TimerId),
    Waiting {
        timer: Option<TimerId>,
    },
    Joining,
    Finished,
}

/// A Lua coroutine as a job of the pool: resumed when its request is answered.
struct LuaJob {
    host: Weak<HostInner>,
    script: Rc<Script>,
    thread: Thread,
    label: String,
    /// Runs on a reused runner coroutine (back to the idle list when done).
    reusable: bool,
    state: JobState,
    on_finish: Option<OnFinish>,
    outcome: Option<Result<Vec<mlua::Value>, String>>,
    stopped: bool,
    /// The console chunk it runs, else [`NOT_A_CHUNK`].
    chunk: u64,
}

impl LuaJob {
    /// Resumes with `args` and handles what comes back, until the coroutine
    /// waits again or ends.
    fn run(&mut self, host: &LuaHost, cx: &mut Context<'_>, args: impl IntoLuaMulti) -> Step {
        let (thread, chunk) = (&self.thread, self.chunk);
        let out = host.inner.watch.run(thread.state(), chunk, &self.script.budget_msg, || {
            thread.resume::<MultiValue>(args)
        });
        self.after_resume(host, cx, out)
    }

    fn after_resume(
        &mut self,
        host: &LuaHost,
        cx: &mut Context<'_>,
        out: mlua::Result<MultiValue>,
    ) -> Step {
        match out {
            Err(e) => {
                let msg = e.to_string();
                host.call_failed(&self.script, &e);
                // The console and the test runner report their own errors.
                if !matches!(&*self.label, "console" | "test function")
                    && !script_is_doomed(host, self.script.id)
                {
                    log::error!(target: "lua", "script {}: error in {}: {msg}", self.script.name, self.label);
                }
                self.finish(host, Err(msg))
            }
            Ok(mut vals) => {
                if self.reusable {
                    return match classify(&self.script, &vals) {
                        Yielded::Idle => {
                            vals.pop_front();
                            let mut idle = self.script.idle.borrow_mut();
                            if idle.len() < IDLE_KEEP {
                                idle.push(self.thread.clone());
                            }
                            drop(idle);
                            self.finish(host, Ok(vals.into_iter().collect()))
                        }
                        Yielded::Request => self.request(host, cx, vals),
                        Yielded::Other => {
                            let msg = "yielded a value that is not a dclua request".to_string();
                            log::error!(target: "lua", "script {}: {}: {msg}", self.script.name, self.label);
                            self.finish(host, Err(msg))
                        }
                    };
                }
                // A request first: it is what nearly every resume ends with,
                // and no Lua code can return the private REQ tag, so a
                // finished coroutine never looks like one.
                match classify(&self.script, &vals) {
                    Yielded::Request => self.request(host, cx, vals),
                    _ if self.thread.status() == ThreadStatus::Finished => {
                        self.finish(host, Ok(vals.into_iter().collect()))
                    }
                    _ => {
                        let msg = "yielded a value that is not a dclua request (use dc.sleep/dc.wait, or your own coroutine)".to_string();
                        log::error!(target: "lua", "script {}: {}: {msg}", self.script.name, self.label);
                        self.finish(host, Err(msg))
                    }
                }
            }
        }
    }

    /// Handles a yielded request `(REQ, name, args...)`.
    fn request(&mut self, host: &LuaHost, cx: &mut Context<'_>, vals: MultiValue) -> Step {
        let arg = |i: usize| vals.get(i + 2);
        let num = |i: usize| match arg(i) {
            Some(mlua::Value::Integer(n)) => Some(*n as f64),
            Some(mlua::Value::Number(n)) => Some(*n),
            _ => None,
        };
        let kind = match vals.get(1) {
            Some(mlua::Value::Integer(k)) => match Request::from_value(*k) {
                Some(kind) => kind,
                None => {
                    return self.reply_error(host, cx, &format!("unknown host request kind {k}"))
                }
            },
            _ => return self.reply_error(host, cx, "malformed host request"),
        };
        match kind {
            // The zero sleep (a plain yield to the other jobs) without a
            // float conversion.
            Request::Sleep if matches!(arg(0), Some(mlua::Value::Integer(0))) => {
                self.state = JobState::Yielded;
                cx.repoll();
                Step::Pending
            }
            Request::Sleep => match num(0).map(duration) {
                // A zero sleep only yields to the other jobs: no timer needed.
                Some(Ok(d)) if d.is_zero() => {
                    self.state = JobState::Yielded;
                    cx.repoll();
                    Step::Pending
                }
                Some(Ok(d)) => {
                    self.state = JobState::Sleeping(cx.after(d));
                    Step::Pending
                }
                _ => self.reply_error(host, cx, "dc.sleep: invalid duration"),
            },
            Request::Wait => {
                // One name (dc.wait), or a list of names (dc.wait_any, which
                // is answered with the name first).
                let (events, named): (Vec<Rc<str>>, bool) = match arg(0) {
                    Some(mlua::Value::String(s)) => (vec![Rc::from(s.to_string_lossy())], false),
                    Some(mlua::Value::Table(t)) => {
                        let names: Vec<Rc<str>> = t
                            .sequence_values::<mlua::LuaString>()
                            .filter_map(Result::ok)
                            .map(|s| Rc::from(s.to_string_lossy()))
                            .collect();
                        if names.is_empty() {
                            return self.reply_error(host, cx, "dc.wait_any: no event names");
                        }
                        (names, true)
                    }
                    _ => return self.reply_error(host, cx, "dc.wait: expected an event name"),
                };
                let filter = arg(1).cloned().filter(|v| !v.is_nil());
                let timer = match num(2).map(duration) {
                    Some(Ok(d)) => Some(cx.after(d)),
                    Some(Err(_)) => return self.reply_error(host, cx, "dc.wait: invalid timeout"),
                    None => None,
                };
                host.add_waiter(cx.id(), self.script.id, events, named, filter);
                self.state = JobState::Waiting { timer };
                Step::Pending
            }
            Request::Join => {
                let target = match arg(0) {
                    Some(mlua::Value::Integer(n)) => JobId(*n as u64),
                    _ => return self.reply_error(host, cx, "job:wait: not a job handle"),
                };
                if target == cx.id() {
                    return self.reply_error(host, cx, "a job cannot wait for itself");
                }
                if host.join(cx.id(), target) {
                    self.state = JobState::Joining;
                    Step::Pending
                } else {
                    self.reply_ok(host, cx)
                }
            }
            Request::Async => {
                let name = match arg(0) {
                    Some(mlua::Value::String(s)) => s.to_string_lossy(),
                    _ => return self.reply_error(host, cx, "native.await: expected a name"),
                };
                let handler = host.inner.async_handlers.borrow().get(&name).cloned();
                let Some(handler) = handler else {
                    return self.reply_error(
                        host,
                        cx,
                        &format!("{name}: not available in this dclua"),
                    );
                };
                let (job, script) = (cx.id(), self.script.id);
                let started = match handler {
                    AsyncEntry::Plain(handler) => {
                        let mut args = Vec::new();
                        for (i, v) in vals.iter().skip(3).enumerate() {
                            match Value::from_lua(v, &format!("{name} argument {}", i + 1)) {
                                Ok(v) => args.push(v),
                                Err(e) => return self.reply_error(host, cx, &e),
                            }
                        }
                        handler(host, AsyncCall { job, script, args })
                    }
                    AsyncEntry::Lua(handler) => {
                        let args: Vec<mlua::Value> = vals.iter().skip(3).cloned().collect();
                        handler(host, AsyncCall { job, script, args: Vec::new() }, &args)
                    }
                };
                match started {
                    Ok(()) => {
                        self.state = JobState::Awaiting;
                        Step::Pending
                    }
                    Err(e) => self.reply_error(host, cx, &e),
                }
            }
        }
    }

    fn reply(&mut self, host: &LuaHost, cx: &mut Context<'_>, vals: MultiValue) -> Step {
        self.run(host, cx, vals)
    }

    /// Replies `true` (a sleep, a yield or a join that ended): no table or
    /// vector is built for it (the path of every `dc.sleep`).
    fn reply_ok(&mut self, host: &LuaHost, cx: &mut Context<'_>) -> Step {
        self.run(host, cx, true)
    }

    fn reply_error(&mut self, host: &LuaHost, cx: &mut Context<'_>, msg: &str) -> Step {
        let lua = self.script.lua.clone();
        let err = lua.create_string(msg).map(mlua::Value::String).unwrap_or(mlua::Value::Nil);
        self.run(host, cx, MultiValue::from_vec(vec![mlua::Value::Boolean(false), err]))
    }

    /// Ends the job with `outcome` (recorded by `step` once `poll` returns).
    fn finish(&mut self, _host: &LuaHost, outcome: Result<Vec<mlua::Value>, String>) -> Step {
        self.state = JobState::Finished;
        if self.label == "main chunk" {
            self.script.main_done.set(true);
            self.script.main_failed.set(outcome.is_err());
            if let Err(e) = &outcome {
                *self.script.main_error.borrow_mut() = Some(e.clone());
            }
        }
        if let Some(f) = self.on_finish.take() {
            f(match &outcome {
                Ok(v) => Ok(v.iter().map(format_value).collect()),
                Err(e) => Err(e.clone()),
            });
        }
        self.outcome = Some(outcome);
        Step::Done
    }
}

impl Job for LuaJob {
    fn poll(&mut self, cx: &mut Context<'_>) -> Step {
        let Some(inner) = self.host.upgrade() else { return Step::Done };
        let host = LuaHost::from_inner(inner);
        let step = self.step(&host, cx);
        if step == Step::Done {
            host.remove_waiter(cx.id());
            let undo = host.inner.abandoned.borrow_mut().remove(&cx.id());
            if let Some(undo) = undo {
                undo(&host);
            }
            let outcome = self.outcome.take().unwrap_or_else(|| {
                Err(if host.inner.stopping.get() {
                    "stopped: the client is shutting down".into()
                } else {
                    "stopped".into()
                })
            });
            host.job_finished(cx.id(), &self.script, outcome);
        }
        step
    }

    fn is_alive(&self) -> bool {
        !self.stopped && !matches!(self.state, JobState::Finished)
    }

    fn stop(&mut self) {
        self.stopped = true;
    }

    fn name(&self) -> String {
        format!("lua {}: {}", self.script.name, self.label)
    }
}

impl LuaJob {
    fn step(&mut self, host: &LuaHost, cx: &mut Context<'_>) -> Step {
        if self.stopped {
            if let JobState::Sleeping(t) | JobState::Waiting { timer: Some(t) } = self.state {
                cx.cancel_timer(t);
            }
            let interrupted =
                self.script.console && host.inner.watch.shared().interrupted(self.chunk);
            // Say why, when it is known: a waiting chunk's caller reads this.
            let msg = if interrupted {
                "interrupted".to_string()
            } else if host.inner.stopping.get() {
                "stopped: the client is shutting down".to_string()
            } else if host.script(self.script.id).is_none() {
                format!("stopped: script {} was unloaded", self.script.name)
            } else {
                "stopped".to_string()
            };
            return self.finish(host, Err(msg));
        }
        let state = std::mem::replace(&mut self.state, JobState::Finished);
        let step = match state {
            JobState::Start(Start::Resume(args)) => self.run(host, cx, args),
            JobState::Start(Start::Request(vals)) => self.request(host, cx, vals),
            JobState::Yielded => self.reply_ok(host, cx),
            JobState::Sleeping(t) => {
                if cx.fired(t) {
                    self.reply_ok(host, cx)
                } else {
                    self.state = JobState::Sleeping(t);
                    Step::Pending
                }
            }
            JobState::Awaiting => {
                let mut got = None;
                while let Some(m) = cx.recv() {
                    if let Ok(r) = m.downcast::<AsyncReply>() {
                        got = Some(r.0);
                    }
                }
                if got.is_some() {
                    // Answered: nothing left to undo.
                    host.inner.abandoned.borrow_mut().remove(&cx.id());
                }
                match got {
                    Some(Ok(vals)) => {
                        let lua = self.script.lua.clone();
                        let mut out = vec![mlua::Value::Boolean(true)];
                        for v in &vals {
                            match v.to_lua(&lua) {
                                Ok(v) => out.push(v),
                                Err(e) => return self.reply_error(host, cx, &e.to_string()),
                            }
                        }
                        self.reply(host, cx, MultiValue::from_vec(out))
                    }
                    Some(Err(e)) => self.reply_error(host, cx, &e),
                    None => {
                        self.state = JobState::Awaiting;
                        Step::Pending
                    }
                }
            }
            JobState::Waiting { timer } => {
                let mut got = None;
                while let Some(m) = cx.recv() {
                    if let Ok(r) = m.downcast::<Reply>() {
                        got = Some(r.0);
                    }
                }
                match got {
                    Some(vals) => {
                        if let Some(t) = timer {
                            cx.cancel_timer(t);
                        }
                        let lua = self.script.lua.clone();
                        let mut out = vec![mlua::Value::Boolean(true)];
                        for v in &vals {
                            match v.to_lua(&lua) {
                                Ok(v) => out.push(v),
                                Err(e) => {
                                    return self.reply_error(host, cx, &format!("dc.wait: {e}"))
                                }
                            }
                        }
                        self.reply(host, cx, MultiValue::from_vec(out))
                    }
                    None if timer.is_some_and(|t| cx.fired(t)) => {
                        host.remove_waiter(cx.id());
                        self.reply(
                            host,
                            cx,
                            MultiValue::from_vec(vec![
                                mlua::Value::Boolean(true),
                                mlua::Value::Nil,
                            ]),
                        )
                    }
                    None => {
                        self.state = JobState::Waiting { timer };
                        Step::Pending
                    }
                }
            }
            JobState::Joining => {
                let mut done = false;
                while let Some(m) = cx.recv() {
                    done |= m.downcast::<Reply>().is_ok();
                }
                if done {
                    self.reply_ok(host, cx)
                } else {
                    self.state = JobState::Joining;
                    Step::Pending
                }
            }
            JobState::Finished => Step::Done,
        };
        step
    }
}

/// Whether `e` (or the error it wraps) is Lua's "not enough memory".
fn is_out_of_memory(e: &mlua::Error) -> bool {
    match e {
        mlua::Error::MemoryError(_) => true,
        mlua::Error::CallbackError { cause, .. } => is_out_of_memory(cause),
        mlua::Error::WithContext { cause, .. } => is_out_of_memory(cause),
        other => other.to_string().contains("not enough memory"),
    }
}

/// Whether `script` is about to be unloaded for running out of memory
/// (its further errors are not logged one by one).
fn script_is_doomed(host: &LuaHost, script: ScriptId) -> bool {
    host.inner.doomed.borrow().iter().any(|(id, _)| *id == script)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(lua: &Lua, chunk: &str) -> String {
        format_value(&lua.load(chunk).eval::<mlua::Value>().expect("the chunk runs"))
    }

    #[test]
    fn the_console_shows_nested_tables_sorted_with_cycles_marked() {
        let lua = Lua::new();
        assert_eq!(
            shown(
                &lua,
                r#"local t = {a = {b = {1, 2}}, c = "s", [5] = true, ["two words"] = 2}
                           t.self = t return t"#
            ),
            r#"{["two words"] = 2, [5] = true, a = {b = {1, 2}}, c = "s", self = <cycle>}"#
        );
        assert_eq!(shown(&lua, "return {{{{{1}}}}}"), "{{{{{...}}}}}");
        // A table seen twice, not inside itself, is shown twice.
        assert_eq!(shown(&lua, "local x = {1} return {x, x}"), "{{1}, {1}}");
        assert_eq!(shown(&lua, "return 'plain'"), "plain");
        assert_eq!(shown(&lua, "return {'q', 2.0}"), r#"{"q", 2.0}"#);
        let many = shown(&lua, "local t = {} for i = 1, 40 do t[i] = i end return t");
        assert!(many.ends_with(", 30, ... (10 more)}"), "{many}");
        let obj =
            shown(&lua, "return setmetatable({}, {__tostring = function() return 'obj' end})");
        assert_eq!(obj, "obj");
    }
}
