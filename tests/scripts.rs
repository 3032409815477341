//! The example scripts in `scripts/` run on a real host and do what their
//! header comments say, checked through what they print and log.

use std::path::PathBuf;
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use dclua::client::{Client, ClientOptions};
use dclua::lua::{ChunkOutcome, HostHooks, HostOptions};
use dclua::runtime::{Worker, WorkerConfig, WorkerHandle};

/// Log records of target "lua" (what `dc.log` writes), for every test of
/// this binary; each test looks for its own script's name.
static LOG: OnceLock<Arc<Mutex<Vec<String>>>> = OnceLock::new();

struct Capture(Arc<Mutex<Vec<String>>>);

impl log::Log for Capture {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.target() == "lua"
    }
    fn log(&self, r: &log::Record<'_>) {
        if r.target() == "lua" {
            if let Ok(mut v) = self.0.lock() {
                v.push(format!("{} {}", r.level(), r.args()));
            }
        }
    }
    fn flush(&self) {}
}

fn log_lines() -> Arc<Mutex<Vec<String>>> {
    LOG.get_or_init(|| {
        let lines = Arc::new(Mutex::new(Vec::new()));
        // Only the first test to get here installs it.
        if log::set_boxed_logger(Box::new(Capture(lines.clone()))).is_ok() {
            log::set_max_level(log::LevelFilter::Info);
        }
        lines
    })
    .clone()
}

/// A worker with a host whose `print` output goes to a channel.
struct Rig {
    worker: WorkerHandle,
    out: Receiver<String>,
}

impl Rig {
    fn new() -> Rig {
        let worker = Worker::start(WorkerConfig { helper_threads: Some(1), ..Default::default() })
            .expect("starting a worker");
        let (tx, rx) = channel::<String>();
        let tx = Arc::new(Mutex::new(tx));
        worker
            .call(move |pool| {
                let client = Client::start(
                    pool,
                    ClientOptions {
                        downloads: None,
                        data_dir: std::env::temp_dir().join("dclua-test-unused-data"),
                        identity: Default::default(),
                        host: HostOptions::default(),
                        share: None,
                    },
                );
                let host = client.host();
                host.set_hooks(HostHooks {
                    output: Some(Box::new(move |line| {
                        let _ = tx.lock().map(|t| t.send(line.to_string()));
                    })),
                    ..Default::default()
                });
            })
            .expect("creating the host");
        Rig { worker, out: rx }
    }

    /// Loads `scripts/NAME.lua` (untrusted, as a user's script would be).
    fn load_script(&self, name: &str, args: &[&str]) {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts").join(name);
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        self.worker
            .call(move |_| {
                Client::current().expect("the host").host().load_file(&path, false, &args)
            })
            .expect("the worker answers")
            .unwrap_or_else(|e| panic!("loading {name}: {e}"));
    }

    /// Runs a console chunk and returns its outcome.
    fn eval(&self, chunk: &str) -> ChunkOutcome {
        let (tx, rx) = channel();
        let chunk = chunk.to_string();
        self.worker
            .call(move |_| {
                Client::current().expect("the host").host().eval_console(&chunk, move |o| {
                    let _ = tx.send(o);
                });
            })
            .expect("the worker answers");
        rx.recv_timeout(Duration::from_secs(10)).expect("the console chunk finished")
    }

    fn emit(&self, lua_call: &str) {
        assert_eq!(self.eval(lua_call), ChunkOutcome::Values(vec![]), "{lua_call}");
    }

    fn line(&self) -> String {
        self.out.recv_timeout(Duration::from_secs(5)).expect("a printed line")
    }

    fn silent_for(&self, d: Duration) -> Result<(), String> {
        match self.out.recv_timeout(d) {
            Ok(l) => Err(l),
            Err(_) => Ok(()),
        }
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        let _ = self.worker.shutdown_and_join();
    }
}

/// Waits (at most 5 s) for a log line of `script` containing `needle`;
/// returns it.
fn wait_log(script: &str, needle: &str) -> String {
    let lines = log_lines();
    let prefix = format!("{script}: ");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(l) = lines
            .lock()
            .expect("log lines")
            .iter()
            .find(|l| l.contains(&prefix) && l.contains(needle))
        {
            return l.clone();
        }
        if Instant::now() > deadline {
            let all = lines.lock().expect("log lines").clone();
            panic!("no log line of {script} containing {needle:?}; lines: {all:#?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn greeter_greets_each_nick_once_after_a_second() {
    let r = Rig::new();
    r.load_script("greeter.lua", &[]);
    let start = Instant::now();
    r.emit(r#"dc.emit("user_joined", {nick = "alice"})"#);
    r.emit(r#"dc.emit("user_joined", {nick = "alice"})"#);
    r.emit(r#"dc.emit("user_joined", {nick = "bob"})"#);
    r.emit(r#"dc.emit("user_joined", {})"#);
    let mut got = vec![r.line(), r.line()];
    assert!(start.elapsed() >= Duration::from_millis(900), "greeted before waiting a second");
    got.sort();
    assert_eq!(got, ["Welcome, alice!", "Welcome, bob!"]);
    // alice's second join (within the hour) would be greeted at the same
    // time as the first: nothing more comes.
    assert_eq!(r.silent_for(Duration::from_millis(300)), Ok(()));
}

#[test]
fn logger_counts_events_in_its_heartbeat_and_notices_quiet() {
    log_lines();
    let r = Rig::new();
    r.load_script("logger.lua", &["0.1"]);
    wait_log("logger", "logging every 0.1 s");
    r.emit(r#"dc.emit("chat", {text = "hi"}) dc.emit("chat", {text = "ho"})"#);
    r.emit(r#"dc.emit("user_joined", {nick = "carol"}) dc.emit("unwatched", {})"#);
    let beat = wait_log("logger", "user_joined=1 chat=2");
    assert!(beat.starts_with("INFO logger: heartbeat "), "{beat}");
    let quiet = wait_log("logger", "quiet for 0.3 s");
    // script_loaded may be counted too (the logger may see its own load).
    assert!(quiet.contains("(user_joined=1 chat=2"), "{quiet}");
}

#[test]
fn wait_example_waits_spawns_and_generates() {
    let r = Rig::new();
    r.load_script("wait_example.lua", &[]);
    assert_eq!(r.line(), "waiting for go");
    // The first event does not pass the filter; the second does.
    r.emit(r#"dc.emit("go", {ready = false, from = "eve"}) dc.emit("go", {ready = true, from = "alice"})"#);
    let want =
        ["go from alice", "late: nil", "sum of squares: 14", "tick 1", "tick 2", "tick 3", "done"];
    for w in want {
        assert_eq!(r.line(), w);
    }
}

#[test]
fn wait_example_ignores_an_event_its_filter_rejects() {
    // An unready "go" must not end the wait (its 5 s timeout is longer than
    // this test; shutting the worker down stops the script).
    let r = Rig::new();
    r.load_script("wait_example.lua", &[]);
    assert_eq!(r.line(), "waiting for go");
    r.emit(r#"dc.emit("go", {ready = false})"#);
    assert_eq!(r.silent_for(Duration::from_millis(300)), Ok(()), "an unready go ended the wait");
}
