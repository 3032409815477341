//! A dclua client for integration tests: a worker thread with its own Lua
//! host, hub registry and data folder (PID, certificate), driven through
//! console chunks (coroutine jobs, so they may wait), plus capture of the log
//! lines of every test of a binary and Lua helpers for waiting on events.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use dclua::hub::{ConnectMode, Identity};
use dclua::lua::{ChunkOutcome, HostHooks, HostOptions};
use dclua::runtime::{Worker, WorkerConfig, WorkerHandle};

// ----- log capture -----------------------------------------------------------

/// Log lines of every test of this binary ("LEVEL target: message").
static LOG: OnceLock<Arc<Mutex<Vec<String>>>> = OnceLock::new();

struct Capture(Arc<Mutex<Vec<String>>>);

impl log::Log for Capture {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::max_level()
    }
    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) {
            let line = format!("{} {}: {}", r.level(), r.target(), r.args());
            if std::env::var_os("DCLUA_TEST_LOG").is_some() {
                eprintln!("{line}");
            }
            if let Ok(mut v) = self.0.lock() {
                v.push(line);
            }
        }
    }
    fn flush(&self) {}
}

pub fn log_lines() -> Arc<Mutex<Vec<String>>> {
    LOG.get_or_init(|| {
        let lines = Arc::new(Mutex::new(Vec::new()));
        if log::set_boxed_logger(Box::new(Capture(lines.clone()))).is_ok() {
            // DCLUA_TEST_LOG=debug prints and keeps debug lines too.
            let debug = std::env::var_os("DCLUA_TEST_LOG").is_some_and(|v| v == "debug");
            log::set_max_level(if debug {
                log::LevelFilter::Trace
            } else {
                log::LevelFilter::Info
            });
        }
        lines
    })
    .clone()
}

/// The captured log lines that contain any of `needles`, under a title:
/// the context of a failed transfer test.
pub fn log_matching(title: &str, needles: &[&str]) -> String {
    let lines = log_lines();
    let v = lines.lock().map(|v| v.clone()).unwrap_or_default();
    let wanted: Vec<String> =
        v.into_iter().filter(|l| needles.iter().any(|n| l.contains(n))).collect();
    format!("{title}:\n{}", wanted.join("\n"))
}

/// Waits (≤ 10 s) for a log line containing every needle.
pub fn wait_log(needles: &[&str]) -> Result<String> {
    let lines = log_lines();
    super::wait_until(
        &format!("a log line with {needles:?}"),
        Duration::from_secs(10),
        Duration::from_millis(20),
        || {
            let v = lines.lock().map_err(|_| anyhow::anyhow!("log lock"))?;
            Ok(v.iter().find(|l| needles.iter().all(|n| l.contains(n))).cloned())
        },
    )
}

// ----- a dclua client ----------------------------------------------------------

/// Lua helpers loaded into every client's console.
pub const HELPERS: &str = r#"
function eventually(what, f, seconds)
  for _ = 1, math.ceil((seconds or 10) / 0.02) do
    local r = table.pack(f())
    if r[1] then return table.unpack(r, 1, r.n) end
    dc.sleep(0.02)
  end
  error("timed out waiting for " .. what)
end
-- Starts waiting for an event now; `expect_done(name)` returns it later.
expected = {}
function expect(name, event, filter, seconds)
  expected[name] = dc.spawn(function()
    local e = dc.wait(event, { filter = filter, timeout = seconds or 10 })
    if e == nil then error("no " .. event .. " event for " .. name) end
    return e
  end)
end
function expect_done(name)
  local ok, e = expected[name]:wait()
  if not ok then error(e) end
  return e
end
"#;

/// The services of the client whose worker runs this (call it inside
/// `on_worker`/`worker.call` closures).
pub fn services() -> dclua::client::Client {
    dclua::client::Client::current().expect("the client's services (on its worker thread)")
}

/// One dclua client: a worker with its Lua host and hub registry.
pub struct Client {
    pub worker: WorkerHandle,
    pub out: Receiver<String>,
    // Our PID and TLS certificate live here (one per client: two clients
    // with one PID would have the same CID).
    _data: tempfile::TempDir,
}

impl Client {
    pub fn new(identity: Identity) -> Client {
        Client::build(identity, None)
    }

    /// A client sharing `folder` as `Share` (hashing starts at once; see
    /// [`Client::wait_shared`]).
    pub fn sharing(identity: Identity, folder: &std::path::Path) -> Client {
        Client::build(identity, Some(folder.to_path_buf()))
    }

    /// Waits until `files` files are shared and hashed, and our list is written.
    pub fn wait_shared(&self, files: u64) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let (stats, listed) = self.on_worker(|| {
                let share = services().share().cloned().expect("a sharing client");
                let s = share.stats();
                ((s.files, s.pending, s.hashing), share.file_list_path().is_some())
            });
            if stats.0 == files && stats.1 == 0 && !stats.2 && listed {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the share did not get ready: files, pending, hashing = {stats:?}, list written {listed}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn build(identity: Identity, folder: Option<std::path::PathBuf>) -> Client {
        log_lines();
        let worker = Worker::start(WorkerConfig {
            helper_threads: Some(1),
            shutdown_grace: Duration::from_secs(3),
            ..Default::default()
        })
        .expect("starting a worker");
        let data = tempfile::tempdir().expect("a data folder");
        let data_dir = data.path().to_path_buf();
        let (tx, rx) = channel::<String>();
        let tx = Arc::new(Mutex::new(tx));
        let handle = worker.clone();
        let share = folder.map(|path| dclua::client::ShareSetup {
            worker: handle,
            folders: vec![dclua::share::service::SharedFolder {
                name: "Share".into(),
                path,
                hidden: false,
                follow_symlinks: false,
            }],
            cid: None,
        });
        worker
            .call(move |pool| {
                let client = dclua::client::Client::start(
                    pool,
                    dclua::client::ClientOptions {
                        downloads: None,
                        data_dir,
                        identity,
                        host: HostOptions::default(),
                        share,
                    },
                );
                client.host().set_hooks(HostHooks {
                    output: Some(Box::new(move |line| {
                        let _ = tx.lock().map(|t| t.send(line.to_string()));
                    })),
                    ..Default::default()
                });
            })
            .expect("creating the host");
        let c = Client { worker, out: rx, _data: data };
        c.run(HELPERS).expect("loading the test helpers");
        c
    }

    pub fn active(nick: &str) -> Client {
        Client::new(Identity {
            nick: nick.to_string(),
            description: format!("{nick} the tester"),
            slots: 2,
            mode: ConnectMode::Active,
            listen_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            ..Identity::default()
        })
    }

    pub fn passive(nick: &str) -> Client {
        Client::new(Identity {
            nick: nick.to_string(),
            description: format!("{nick} the tester"),
            email: format!("{nick}@example.org"),
            slots: 4,
            ..Identity::default()
        })
    }

    /// Runs a console chunk; its values, or the Lua error.
    pub fn eval(&self, chunk: &str) -> ChunkOutcome {
        self.eval_for(chunk, Duration::from_secs(30))
    }

    /// [`Client::eval`] with another time limit.
    pub fn eval_for(&self, chunk: &str, limit: Duration) -> ChunkOutcome {
        let (tx, rx) = channel();
        let chunk = chunk.to_string();
        self.worker
            .call(move |_| {
                services().host().eval_console(&chunk, move |o| {
                    let _ = tx.send(o);
                });
            })
            .expect("the worker answers");
        rx.recv_timeout(limit).unwrap_or_else(|_| {
            ChunkOutcome::Error(format!("the chunk did not finish in {} s", limit.as_secs()))
        })
    }

    /// Runs a chunk that must succeed; its values.
    pub fn run(&self, chunk: &str) -> Result<Vec<String>> {
        self.run_for(chunk, Duration::from_secs(30))
    }

    /// [`Client::run`] with another time limit.
    pub fn run_for(&self, chunk: &str, limit: Duration) -> Result<Vec<String>> {
        match self.eval_for(chunk, limit) {
            ChunkOutcome::Values(v) => Ok(v),
            ChunkOutcome::Error(e) => bail!("Lua chunk failed: {e}\n--- chunk ---\n{chunk}"),
        }
    }

    /// Runs a chunk that returns one value.
    pub fn value(&self, chunk: &str) -> Result<String> {
        let v = self.run(chunk)?;
        v.into_iter().next().with_context(|| format!("no value from {chunk}"))
    }

    /// `hub = dc.connect(url, opts)` and waits until it is online.
    pub fn connect(&self, url: &str, opts: &str) -> Result<()> {
        self.run(&format!(
            r#"expect("connected", "hub_connected")
               hub = dc.connect("{url}", {opts})
               local e = expect_done("connected")
               assert(e.hub == hub, "hub_connected for another hub")
               assert(hub.state == "online", hub.state)"#
        ))?;
        Ok(())
    }

    /// Waits (≤ 10 s) for an output line containing `needle`.
    pub fn output_line(&self, needle: &str) -> Result<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.out.recv_timeout(left) {
                Ok(l) if l.contains(needle) => return Ok(l),
                Ok(_) => {}
                Err(_) => bail!("no output line containing {needle:?} within 10 s"),
            }
        }
    }

    /// Throws away the output lines waiting (a long test that never reads
    /// them would otherwise hold every chat line it was shown); how many.
    pub fn drain_output(&self) -> usize {
        self.out.try_iter().count()
    }

    /// Runs `f` on the worker thread.
    pub fn on_worker<R: Send + 'static>(&self, f: impl FnOnce() -> R + Send + 'static) -> R {
        self.worker.call(move |_| f()).expect("the worker answers")
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.worker.shutdown_and_join();
    }
}
