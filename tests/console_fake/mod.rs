//! A fake Lua host for the console tests and `examples/console_demo.rs`.
//!
//! It implements `ConsoleBackend` with a private mlua state on a background
//! thread, one chunk at a time, so the console can be exercised without the
//! real host (the worker, coroutine jobs, hubs). What it fakes:
//! - `dc.sleep(s)` sleeps on the host thread in small slices and fails with
//!   "interrupted" when the console interrupts; an instruction-count hook does
//!   the same for busy loops;
//! - `dc.stuck(s)` sleeps and ignores interrupts, like a host that hangs;
//! - `dc.later(s, text)` prints `text` through the console printer from
//!   another thread after `s` seconds (an event arriving while one types);
//! - `print` goes through the console printer;
//! - a `hub` table with a `say` method, for `hub:` completion.
//!
//! It also records how many chunks were in flight at once, so tests can check
//! that the console waits for each outcome before sending the next chunk.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dclua::console::{self, ConsoleBackend, EvalOutcome};
use mlua::{Function, HookTriggers, Lua, MultiValue, Table, Value, VmState};

/// Slices in which `dc.sleep` sleeps, checking for an interrupt in between.
const SLEEP_SLICE: Duration = Duration::from_millis(10);
/// How long `complete` waits for the host thread (busy with a chunk).
const COMPLETE_TIMEOUT: Duration = Duration::from_secs(1);

enum Request {
    Eval(String, Sender<EvalOutcome>),
    Complete(String, Sender<Vec<String>>),
}

/// Counters shared by the backend handle and its host thread.
#[derive(Default)]
struct Stats {
    interrupted: AtomicBool,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    evals: AtomicUsize,
    interrupts: AtomicUsize,
}

/// The fake host: a handle to its thread.
pub struct FakeBackend {
    requests: Sender<Request>,
    stats: Arc<Stats>,
}

impl FakeBackend {
    /// Starts the host thread with a fresh Lua state.
    pub fn start() -> Arc<Self> {
        let (requests, inbox) = mpsc::channel();
        let stats = Arc::new(Stats::default());
        let host_stats = Arc::clone(&stats);
        std::thread::Builder::new()
            .name("fake-lua-host".into())
            .spawn(move || host(inbox, host_stats))
            .expect("spawning the fake Lua host thread");
        Arc::new(Self { requests, stats })
    }

    /// The most chunks that were ever running or queued at once.
    pub fn max_in_flight(&self) -> usize {
        self.stats.max_in_flight.load(Ordering::SeqCst)
    }

    /// How many chunks were evaluated.
    pub fn evals(&self) -> usize {
        self.stats.evals.load(Ordering::SeqCst)
    }

    /// How many times the console called `interrupt`.
    pub fn interrupts(&self) -> usize {
        self.stats.interrupts.load(Ordering::SeqCst)
    }
}

impl ConsoleBackend for FakeBackend {
    fn eval(&self, chunk: String) -> Receiver<EvalOutcome> {
        let (reply, outcome) = mpsc::channel();
        let now = self.stats.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.stats.max_in_flight.fetch_max(now, Ordering::SeqCst);
        self.stats.evals.fetch_add(1, Ordering::SeqCst);
        // A dead host drops `reply`: the console reads that as a lost outcome.
        let _ = self.requests.send(Request::Eval(chunk, reply));
        outcome
    }

    fn interrupt(&self) {
        self.stats.interrupts.fetch_add(1, Ordering::SeqCst);
        self.stats.interrupted.store(true, Ordering::SeqCst);
    }

    fn complete(&self, prefix: &str) -> Vec<String> {
        let (reply, names) = mpsc::channel();
        if self.requests.send(Request::Complete(prefix.to_owned(), reply)).is_err() {
            return Vec::new();
        }
        names.recv_timeout(COMPLETE_TIMEOUT).unwrap_or_default()
    }
}

/// The host thread: serves requests until the backend is dropped.
fn host(inbox: Receiver<Request>, stats: Arc<Stats>) {
    let lua = match setup(&stats) {
        Ok(lua) => lua,
        Err(e) => {
            eprintln!("fake Lua host: setting up the state failed: {e}");
            return;
        }
    };
    for request in inbox {
        match request {
            Request::Eval(chunk, reply) => {
                stats.interrupted.store(false, Ordering::SeqCst);
                let outcome = eval(&lua, &chunk);
                // Out of flight before the console can see the outcome and
                // send the next chunk.
                stats.in_flight.fetch_sub(1, Ordering::SeqCst);
                let _ = reply.send(outcome);
            }
            Request::Complete(prefix, reply) => {
                let _ = reply.send(complete(&lua, &prefix).unwrap_or_default());
            }
        }
    }
}

/// The Lua state with the fake `dc`, `hub` and `print`.
fn setup(stats: &Arc<Stats>) -> mlua::Result<Lua> {
    let lua = Lua::new();
    let globals = lua.globals();

    let print = lua.create_function(|_, args: MultiValue| {
        let parts: mlua::Result<Vec<String>> = args.iter().map(Value::to_string).collect();
        console::printer().print_line(&parts?.join("\t"));
        Ok(())
    })?;
    globals.set("print", print)?;

    let dc = lua.create_table()?;
    let sleep_stats = Arc::clone(stats);
    dc.set(
        "sleep",
        lua.create_function(move |_, secs: f64| {
            let deadline = Instant::now() + Duration::from_secs_f64(secs.clamp(0.0, 3600.0));
            while Instant::now() < deadline {
                if sleep_stats.interrupted.load(Ordering::SeqCst) {
                    return Err(mlua::Error::runtime("interrupted"));
                }
                std::thread::sleep(SLEEP_SLICE.min(deadline - Instant::now()));
            }
            Ok(())
        })?,
    )?;
    // A host call that does not honour interrupts (a stuck host).
    dc.set(
        "stuck",
        lua.create_function(|_, secs: f64| {
            std::thread::sleep(Duration::from_secs_f64(secs.clamp(0.0, 3600.0)));
            Ok(())
        })?,
    )?;
    dc.set(
        "later",
        lua.create_function(|_, (secs, text): (f64, String)| {
            let delay = Duration::from_secs_f64(secs.clamp(0.0, 3600.0));
            std::thread::spawn(move || {
                std::thread::sleep(delay);
                console::printer().print_line(&text);
            });
            Ok(())
        })?,
    )?;
    dc.set("version", "fake")?;
    globals.set("dc", dc)?;

    let hub: Table = lua
        .load(
            r#"return {
                nick = "tester",
                say = function(self, text) print("<" .. self.nick .. "> " .. text) end,
                send = function(self, raw) end,
            }"#,
        )
        .set_name("=fake-hub")
        .eval()?;
    globals.set("hub", hub)?;

    let hook_stats = Arc::clone(stats);
    lua.set_hook(HookTriggers::new().every_nth_instruction(1000), move |_, _| {
        if hook_stats.interrupted.load(Ordering::SeqCst) {
            Err(mlua::Error::runtime("interrupted"))
        } else {
            Ok(VmState::Continue)
        }
    })?;
    Ok(lua)
}

/// Runs `chunk` as the real host does: `return <chunk>` first.
fn eval(lua: &Lua, chunk: &str) -> EvalOutcome {
    let compiled = lua
        .load(format!("return {chunk}"))
        .set_name("=console")
        .into_function()
        .or_else(|_| lua.load(chunk).set_name("=console").into_function());
    let function: Function = match compiled {
        Ok(f) => f,
        Err(e) => return EvalOutcome::Error(message(&e)),
    };
    match function.call::<MultiValue>(()) {
        Ok(values) => {
            match values.iter().map(Value::to_string).collect::<mlua::Result<Vec<String>>>() {
                Ok(values) => EvalOutcome::Values(values),
                Err(e) => EvalOutcome::Error(message(&e)),
            }
        }
        Err(e) => EvalOutcome::Error(message(&e)),
    }
}

/// The message of an error without tracebacks or callback wrapping.
fn message(e: &mlua::Error) -> String {
    match e {
        mlua::Error::CallbackError { cause, .. } => message(cause),
        mlua::Error::RuntimeError(m) | mlua::Error::SyntaxError { message: m, .. } => {
            m.split("\nstack traceback:").next().unwrap_or(m).to_owned()
        }
        other => other.to_string(),
    }
}

/// Names that extend `prefix` (`dc.sl` -> `dc.sleep`); after `:` only
/// functions (methods).
fn complete(lua: &Lua, prefix: &str) -> mlua::Result<Vec<String>> {
    let split = prefix.rfind(['.', ':']);
    let (base, partial) = match split {
        Some(i) => (&prefix[..i], &prefix[i + 1..]),
        None => ("", prefix),
    };
    let methods_only = split.is_some_and(|i| prefix[i..].starts_with(':'));
    let mut table = lua.globals();
    if !base.is_empty() {
        for segment in base.split(['.', ':']) {
            match table.get::<Value>(segment)? {
                Value::Table(t) => table = t,
                _ => return Ok(Vec::new()),
            }
        }
    }
    let mut names = Vec::new();
    for pair in table.pairs::<Value, Value>() {
        let (key, value) = pair?;
        let Value::String(key) = key else { continue };
        let key = key.to_str()?.to_owned();
        if key.starts_with(partial) && (!methods_only || value.is_function()) {
            let head = split.map_or("", |i| &prefix[..=i]);
            names.push(format!("{head}{key}"));
        }
    }
    names.sort();
    Ok(names)
}
