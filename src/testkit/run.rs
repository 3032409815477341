//! The runner of `dclua test`: finds `*_test.lua` files, runs each `test_*`
//! function in a fresh client on a virtual clock, and reports.
//!
//! Each test gets a client of its own, built by the composition root
//! ([`Client::start`]) on a [`Reactor`] that this thread turns itself —
//! no worker thread — so that "settled" is exact and time only moves when
//! the runner moves it:
//!
//! 1. **Settle**: turns with a zero timeout until several in a row see no
//!    readiness, no message from another thread, no job to run, and no
//!    helper task in flight (loopback bytes written in a pass are readable
//!    by the time the write returns, so a quiet turn means nothing is on
//!    the wire).
//! 2. Coroutines in `dctest.settle` are answered; that may start more work:
//!    back to 1.
//! 3. When the test still waits and everything is settled, the virtual
//!    clock jumps to the next timer (a `dc.sleep`, a bot's `dc.every`, a
//!    session's keep-alive): time passes only when nothing else can happen.
//!    No timer at all means the test waits for something that cannot come.
//!
//! Owns: discovery, the per-test client, the loop above, the report. Must
//! not: know what a test checks (the test file does) or the protocols.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::lua::Kit;
use crate::client::{Client, ClientOptions};
use crate::hub::Identity;
use crate::logging;
use crate::lua::{HostHooks, HostOptions, LuaHost, ScriptId};
use crate::runtime::helpers::HelperPool;
use crate::runtime::{Clock, Reactor, VirtualClock};

/// Zero-timeout turns in a row that must be quiet for the client to count
/// as settled.
const QUIET_TURNS: u32 = 3;
/// Turns one settle may take before the test fails (a job that never rests).
const MAX_SETTLE_TURNS: u32 = 200_000;

/// What `dclua test` was asked.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Files and folders to look in.
    pub paths: Vec<PathBuf>,
    /// Only tests whose `file::name` contains this.
    pub filter: Option<String>,
    /// Print each test's output and transcript even when it passes.
    pub verbose: bool,
    /// Virtual time a test may wait before it fails.
    pub virtual_limit: Duration,
    /// Real time a test may take before it fails.
    pub real_limit: Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            paths: Vec::new(),
            filter: None,
            verbose: false,
            virtual_limit: Duration::from_secs(24 * 3600),
            real_limit: Duration::from_secs(60),
        }
    }
}

/// The outcome of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Tests that passed.
    pub passed: usize,
    /// Tests that failed (files that could not load count as one each).
    pub failed: usize,
    /// Tests left out by the filter.
    pub filtered: usize,
}

/// The `*_test.lua` files under `paths` (folders searched recursively,
/// sorted; a file named directly is taken whatever its name).
pub fn discover(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_file() {
            out.push(p.clone());
        } else if p.is_dir() {
            walk(p, &mut out).map_err(|e| format!("reading {}: {e}", p.display()))?;
        } else {
            return Err(format!("{}: no such file or folder", p.display()));
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.path());
    for e in entries {
        let path = e.path();
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') {
            continue;
        }
        if e.file_type()?.is_dir() {
            walk(&path, out)?;
        } else if name.ends_with("_test.lua") {
            out.push(path);
        }
    }
    Ok(())
}

/// One test's result.
#[derive(Default)]
struct Outcome {
    error: Option<String>,
    output: String,
    transcripts: Vec<(String, String)>,
    /// The log lines (warnings and errors) written during the test.
    log: Vec<String>,
}

/// The log lines written while tests run, taken per test: they belong in
/// that test's report, not between the report's lines.
#[derive(Clone, Default)]
struct LogTap {
    lines: Arc<Mutex<Vec<String>>>,
}

impl LogTap {
    /// Routes the log here until [`LogTap::release`].
    fn install(&self) {
        let lines = Arc::clone(&self.lines);
        logging::set_sink(Some(Box::new(move |line| {
            lines.lock().unwrap_or_else(|p| p.into_inner()).push(line.to_string());
        })));
    }

    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.lines.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Gives the log back to standard error, with what was left untaken.
    fn release(&self) {
        logging::set_sink(None);
        for line in self.take() {
            eprintln!("{line}");
        }
    }
}

/// Whether a log line (as [`logging::format_at`] writes it) is an error a
/// script raised: a handler, timer or coroutine that failed. Such an error
/// fails the test, as an uncaught exception would.
fn is_script_error(line: &str) -> bool {
    let mut fields = line.split_whitespace().skip(1);
    fields.next() == Some("ERROR") && fields.next() == Some("lua:")
}

/// One test's client on a virtual clock, run by this thread.
struct TestClient {
    reactor: Reactor,
    clock: VirtualClock,
    client: Client,
    host: LuaHost,
    data: PathBuf,
    output: Rc<std::cell::RefCell<String>>,
}

impl TestClient {
    fn new(helpers: &Arc<HelperPool>, n: usize) -> Result<TestClient, String> {
        let clock = VirtualClock::new();
        let mut reactor = Reactor::new(Clock::Virtual(clock.clone()), Arc::clone(helpers), 256)
            .map_err(|e| format!("starting a test client's event loop: {e}"))?;
        let data = std::env::temp_dir().join(format!("dclua-test-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data);
        std::fs::create_dir_all(&data)
            .map_err(|e| format!("creating the test's data folder {}: {e}", data.display()))?;
        let identity = Identity { nick: "dclua-bot".into(), ..Identity::default() };
        let client = Client::start(
            reactor.pool(),
            ClientOptions {
                data_dir: data.clone(),
                identity,
                host: HostOptions::default(),
                share: None,
                downloads: None,
            },
        );
        let host = client.host().clone();
        let output = Rc::new(std::cell::RefCell::new(String::new()));
        let out = output.clone();
        host.set_hooks(HostHooks {
            output: Some(Box::new(move |text| {
                let mut o = out.borrow_mut();
                o.push_str(text);
                o.push('\n');
            })),
            ..HostHooks::default()
        });
        Ok(TestClient { reactor, clock, client, host, data, output })
    }

    /// Turns until the client is settled (see the module docs).
    fn settle(&mut self) -> Result<(), String> {
        let mut quiet = 0;
        for _ in 0..MAX_SETTLE_TURNS {
            let turn =
                self.reactor.turn(Some(Duration::ZERO)).map_err(|e| format!("polling: {e}"))?;
            let in_flight = self.reactor.tasks_in_flight();
            if turn.is_quiet() && !self.reactor.pool().is_busy() && in_flight == 0 {
                quiet += 1;
                if quiet >= QUIET_TURNS {
                    return Ok(());
                }
                std::thread::yield_now();
            } else {
                quiet = 0;
                if in_flight > 0 && turn.is_quiet() {
                    // A helper thread works (a name to resolve): give it the CPU.
                    std::thread::sleep(Duration::from_micros(50));
                }
            }
        }
        let jobs: Vec<String> =
            self.reactor.pool().job_names().into_iter().map(|(_, name, _)| name).collect();
        Err(format!(
            "the client never settles: after {MAX_SETTLE_TURNS} turns jobs still run ({})",
            jobs.join(", ")
        ))
    }

    /// Drives the client until `done()`: settle, answer `dctest.settle`,
    /// else move the clock to the next timer.
    fn drive(
        &mut self,
        kit: &Kit,
        limits: (Duration, Duration),
        done: impl Fn(&LuaHost) -> bool,
    ) -> Result<(), String> {
        let (virtual_limit, real_limit) = limits;
        let started = Instant::now();
        let virtual_start = self.clock.now();
        loop {
            if started.elapsed() > real_limit {
                return Err(format!("the test ran for more than {real_limit:?} of real time"));
            }
            self.settle()?;
            if done(&self.host) {
                return Ok(());
            }
            let settling = kit.take_settling();
            if !settling.is_empty() {
                for job in settling {
                    self.host.complete(job, Ok(vec![crate::lua::Value::Bool(true)]));
                }
                continue;
            }
            let Some(next) = self.reactor.pool().next_deadline() else {
                return Err("the test waits for something that cannot happen: nothing is in \
                            flight and no timer is armed"
                    .into());
            };
            if next.saturating_duration_since(virtual_start) > virtual_limit {
                return Err(format!(
                    "the test still waits after {} virtual hours",
                    virtual_limit.as_secs_f64() / 3600.0
                ));
            }
            self.clock.advance_to(next);
        }
    }

    fn finish(mut self) {
        self.host.shutdown();
        Client::stop();
        drop(self.client);
        self.reactor.pool().stop_all();
        for _ in 0..10_000 {
            if self.reactor.pool().is_empty() {
                break;
            }
            if self.reactor.turn(Some(Duration::ZERO)).is_err() {
                break;
            }
            self.reactor.pool().stop_all();
        }
        self.reactor.pool().abort_all();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

/// Loads `file` as a trusted script with `dctest`, and runs its main chunk.
fn load_test_file(
    tc: &mut TestClient,
    kit: &Rc<Kit>,
    file: &Path,
    limits: (Duration, Duration),
) -> Result<ScriptId, String> {
    let id = tc.host.load_file(file, true, &[])?;
    kit.install(&tc.host, id)?;
    tc.drive(kit, limits, |host| host.script(id).is_none_or(|s| s.main_done()))?;
    let script = tc.host.script(id).ok_or("the test file was unloaded")?;
    if let Some(e) = script.main_error() {
        return Err(e);
    }
    Ok(id)
}

/// The `test_*` globals of a loaded test file, in the order they appear in
/// it (by their definition's line).
fn test_names(host: &LuaHost, id: ScriptId) -> Result<Vec<String>, String> {
    let script = host.script(id).ok_or("the test file was unloaded")?;
    let lua = script.lua();
    let mut found = Vec::new();
    for pair in lua.globals().pairs::<mlua::Value, mlua::Value>() {
        let (k, v) = pair.map_err(|e| e.to_string())?;
        let (mlua::Value::String(k), mlua::Value::Function(f)) = (k, v) else { continue };
        let name = k.to_string_lossy();
        if name.starts_with("test_") {
            found.push((f.info().line_defined.unwrap_or(0), name));
        }
    }
    found.sort();
    Ok(found.into_iter().map(|(_, n)| n).collect())
}

fn run_one(
    tap: &LogTap,
    helpers: &Arc<HelperPool>,
    n: usize,
    file: &Path,
    name: &str,
    opts: &RunOptions,
) -> Outcome {
    let mut tc = match TestClient::new(helpers, n) {
        Ok(tc) => tc,
        Err(e) => return Outcome { error: Some(e), log: tap.take(), ..Outcome::default() },
    };
    let base = file.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let kit = Kit::new(&tc.host, &base);
    let limits = (opts.virtual_limit, opts.real_limit);
    let result = (|| -> Result<(), String> {
        let id = load_test_file(&mut tc, &kit, file, limits)?;
        let func: mlua::Function = {
            let script = tc.host.script(id).ok_or("the test file was unloaded")?;
            script.lua().globals().get(name).map_err(|e| format!("{name}: {e}"))?
        };
        let outcome: Rc<std::cell::RefCell<Option<Result<(), String>>>> = Rc::default();
        let slot = outcome.clone();
        tc.host
            .spawn_test(id, func, move |r| *slot.borrow_mut() = Some(r.map(drop)))
            .map_err(|e| format!("starting {name}: {e}"))?;
        tc.drive(&kit, limits, |_| outcome.borrow().is_some())?;
        let result = outcome.borrow_mut().take();
        result.unwrap_or_else(|| Err("the test ended without an outcome".into()))
    })();
    let transcripts = kit
        .hubs()
        .iter()
        .map(|h| (format!("{} hub {}", h.protocol().as_str(), h.url()), h.transcript()))
        .collect();
    let output = tc.output.borrow().clone();
    tc.finish();
    let log = tap.take();
    let mut error = result.err().map(|e| tidy_error(&e, opts.verbose));
    if error.is_none() {
        let raised: Vec<String> = log
            .iter()
            .filter(|l| is_script_error(l))
            .map(|l| {
                let m = l.split_once(" lua: ").map_or(l.as_str(), |(_, m)| m);
                // The log line shows newlines as `\n`: the traceback is in
                // the log section below.
                let m = m.split("\\nstack traceback:").next().unwrap_or(m);
                m.replacen("runtime error: ", "", 1)
            })
            .collect();
        if !raised.is_empty() {
            error = Some(format!(
                "a script raised an error during the test:\n  {}",
                raised.join("\n  ")
            ));
        }
    }
    Outcome { error, output, transcripts, log }
}

/// Runs the tests and prints the report on `out`.
pub fn run(opts: &RunOptions, out: &mut dyn std::io::Write) -> Result<Summary, String> {
    let files = discover(&opts.paths)?;
    let helpers = Arc::new(HelperPool::new(2));
    let tap = LogTap::default();
    tap.install();
    let summary = run_files(opts, &files, &helpers, &tap, out);
    tap.release();
    Ok(summary)
}

fn run_files(
    opts: &RunOptions,
    files: &[PathBuf],
    helpers: &Arc<HelperPool>,
    tap: &LogTap,
    out: &mut dyn std::io::Write,
) -> Summary {
    let started = Instant::now();
    let mut summary = Summary::default();
    let mut failures: Vec<(String, Outcome)> = Vec::new();
    let mut n = 0;
    let print = |out: &mut dyn std::io::Write, s: &str| {
        let _ = out.write_all(s.as_bytes());
        let _ = out.flush();
    };
    for file in files {
        let shown = file.display().to_string();
        // Discovery: the file's main chunk in a client of its own.
        n += 1;
        let names = match TestClient::new(helpers, n) {
            Ok(mut tc) => {
                let base = file.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf);
                let kit = Kit::new(&tc.host, &base);
                let r = load_test_file(&mut tc, &kit, file, (opts.virtual_limit, opts.real_limit))
                    .and_then(|id| test_names(&tc.host, id));
                tc.finish();
                // A file that loads is reported by its tests.
                if r.is_ok() {
                    tap.take();
                }
                r
            }
            Err(e) => Err(e),
        };
        let names = match names {
            Ok(names) => names,
            Err(e) => {
                print(out, &format!("test {shown} ... FAILED (loading)\n"));
                summary.failed += 1;
                failures.push((
                    shown.clone(),
                    Outcome { error: Some(e), log: tap.take(), ..Outcome::default() },
                ));
                continue;
            }
        };
        for name in names {
            let full = format!("{shown}::{name}");
            if opts.filter.as_deref().is_some_and(|f| !full.contains(f)) {
                summary.filtered += 1;
                continue;
            }
            n += 1;
            let t = Instant::now();
            let outcome = run_one(tap, helpers, n, file, &name, opts);
            let took = t.elapsed();
            match &outcome.error {
                None => {
                    summary.passed += 1;
                    print(
                        out,
                        &format!("test {full} ... ok ({:.0} ms)\n", took.as_secs_f64() * 1e3),
                    );
                    if opts.verbose {
                        print(out, &details(&outcome));
                    }
                }
                Some(_) => {
                    summary.failed += 1;
                    print(out, &format!("test {full} ... FAILED\n"));
                    failures.push((full, outcome));
                }
            }
        }
    }
    if !failures.is_empty() {
        print(out, "\nfailures:\n");
        for (name, outcome) in &failures {
            let mut s = format!("\n---- {name} ----\n");
            if let Some(e) = &outcome.error {
                let _ = writeln!(s, "{e}");
            }
            s.push_str(&details(outcome));
            print(out, &s);
        }
    }
    let status = if summary.failed == 0 { "ok" } else { "FAILED" };
    print(
        out,
        &format!(
            "\ntest result: {status}. {} passed; {} failed; {} filtered out; finished in {:.2}s\n",
            summary.passed,
            summary.failed,
            summary.filtered,
            started.elapsed().as_secs_f64()
        ),
    );
    summary
}

/// A Lua error as a test report shows it: without mlua's "runtime error: "
/// and, unless verbose, without the stack traceback (the message already
/// names the test's file and line).
fn tidy_error(e: &str, verbose: bool) -> String {
    let e = e.strip_prefix("runtime error: ").unwrap_or(e);
    match e.find("\nstack traceback:") {
        Some(i) if !verbose => e[..i].to_string(),
        _ => e.to_string(),
    }
}

fn details(o: &Outcome) -> String {
    let mut s = String::new();
    if !o.output.is_empty() {
        s.push_str("output:\n");
        for line in o.output.lines() {
            let _ = writeln!(s, "  {line}");
        }
    }
    if !o.log.is_empty() {
        s.push_str("log:\n");
        for line in &o.log {
            let _ = writeln!(s, "  {line}");
        }
    }
    for (hub, t) in &o.transcripts {
        let _ = writeln!(s, "transcript of the {hub}:");
        s.push_str(t);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_finds_test_files_in_folders_and_takes_named_files() {
        let dir = std::env::temp_dir().join(format!("dclua-discover-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub/.hidden")).unwrap();
        for f in ["a_test.lua", "b.lua", "sub/c_test.lua", "sub/.hidden/d_test.lua", "plain.lua"] {
            std::fs::write(dir.join(f), "").unwrap();
        }
        let found = discover(&[dir.clone(), dir.join("plain.lua")]).unwrap();
        let names: Vec<String> =
            found.iter().map(|p| p.strip_prefix(&dir).unwrap().display().to_string()).collect();
        assert_eq!(names, ["a_test.lua", "plain.lua", "sub/c_test.lua"]);
        assert!(discover(&[dir.join("missing")]).unwrap_err().contains("no such file or folder"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn only_errors_of_the_lua_target_are_a_scripts() {
        let line = |level, target| {
            logging::format_at(Duration::from_secs(1), level, target, "script x: error in y: z")
        };
        assert!(is_script_error(&line(log::Level::Error, "lua")));
        assert!(!is_script_error(&line(log::Level::Warn, "lua")));
        assert!(!is_script_error(&line(log::Level::Error, "hub")));
    }

    #[test]
    fn a_lua_error_is_reported_without_mlua_prefix_or_traceback_unless_verbose() {
        let e = "runtime error: t.lua:3: expected 1\nstack traceback:\n\t[C]: in ?";
        assert_eq!(tidy_error(e, false), "t.lua:3: expected 1");
        assert_eq!(tidy_error(e, true), "t.lua:3: expected 1\nstack traceback:\n\t[C]: in ?");
        assert_eq!(tidy_error("plain", false), "plain");
    }
}
