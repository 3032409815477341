//! The application: what `main` runs once the command line is parsed.
//!
//! It loads the configuration, starts the worker and the Lua host, connects
//! to the configured hubs, wires signals and the console to them, and maps
//! the outcome to an exit code. It owns process-level concerns and nothing
//! of the protocols.

use std::cell::RefCell;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver};
use std::sync::Arc;

use anyhow::Context as _;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::cli::{Cli, Command};
use crate::client::{Client, ClientOptions, ShareSetup};
use crate::config::{self, paths, Config};
use crate::console::{self, ConsoleBackend, EvalOutcome};
use crate::control::{ControlServer, RemoteConsole};
use crate::instance::DataDirLock;
use crate::logging;
use crate::lua::hub_api::{self, ChatDisplay};
use crate::lua::{api, ChunkOutcome, ConsoleControl, HostHooks, HostOptions, LuaHost};
use crate::proto::tth::Tth;
use crate::runtime::helpers::HelperPool;
use crate::runtime::{Worker, WorkerConfig, WorkerHandle};
use crate::share::hasher::{HashBatch, HashError};
use crate::share::service::SharedFolder;
use crate::testkit;

/// Runs dclua as the command line asks; returns the process exit code.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // Tests print a report: the log says only what went wrong around it.
    let default_level = match cli.command {
        Some(Command::Test { .. }) => log::LevelFilter::Warn,
        _ => log::LevelFilter::Info,
    };
    logging::init(cli.log_level.map_or(default_level, Into::into));
    match &cli.command {
        Some(Command::Init) => init(&cli),
        Some(Command::Hash { files }) => hash(files),
        Some(Command::Run { script, args }) => {
            let (config, config_path) = load_config(&cli)?;
            client(
                &cli,
                config,
                config_path,
                Mode::Run { script: script.clone(), args: args.clone() },
            )
        }
        Some(Command::Daemon) => {
            let (config, config_path) = load_config(&cli)?;
            // A daemon logs to a file even when the configuration names
            // none: its standard error is often nowhere.
            let log = paths::data_dir(cli.data_dir.as_deref(), &config)?.join("dclua.log");
            if let Some(dir) = log.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating the data folder {}", dir.display()))?;
            }
            logging::set_default_file(&log)
                .with_context(|| format!("opening the log file {}", log.display()))?;
            client(&cli, config, config_path, Mode::Daemon)
        }
        Some(Command::Attach { eval }) => attach(&cli, eval.as_deref()),
        Some(Command::Test { paths, filter, verbose }) => test(&cli, paths, filter, *verbose),
        None => {
            let (config, config_path) = load_config(&cli)?;
            let mode = if std::io::stdin().is_terminal() { Mode::Console } else { Mode::Piped };
            client(&cli, config, config_path, mode)
        }
    }
}

/// `dclua test`: the bot tests under `paths` (default: `tests/` and
/// `scripts/` beside the configuration file); exit status 1 on a failure.
fn test(
    cli: &Cli,
    paths: &[PathBuf],
    filter: &Option<String>,
    verbose: bool,
) -> anyhow::Result<ExitCode> {
    let paths = if paths.is_empty() {
        let config = paths::config_file(cli.config.as_deref())?;
        let dir = config.parent().map(Path::to_path_buf).unwrap_or_default();
        let found: Vec<PathBuf> =
            ["tests", "scripts"].iter().map(|d| dir.join(d)).filter(|d| d.is_dir()).collect();
        if found.is_empty() {
            anyhow::bail!(
                "no test folder: neither tests/ nor scripts/ beside {}; name test files or folders",
                config.display()
            );
        }
        found
    } else {
        paths.to_vec()
    };
    let opts = testkit::RunOptions {
        paths,
        filter: filter.clone(),
        verbose,
        ..testkit::RunOptions::default()
    };
    let summary = testkit::run(&opts, &mut std::io::stdout()).map_err(anyhow::Error::msg)?;
    Ok(if summary.failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// `dclua attach`: a console on the daemon of the same data folder; with
/// `-e`, one chunk and its result.
fn attach(cli: &Cli, eval: Option<&str>) -> anyhow::Result<ExitCode> {
    let (config, _) = load_config(cli)?;
    let data_dir = paths::data_dir(cli.data_dir.as_deref(), &config)?;
    if let Some(chunk) = eval {
        let remote = RemoteConsole::connect(&data_dir, |_, _| {})?;
        let outcome = remote.eval(chunk.to_string()).recv().unwrap_or_else(|_| {
            EvalOutcome::Error("the client closed the connection before answering".into())
        });
        return Ok(match outcome {
            EvalOutcome::Values(values) => {
                for v in values {
                    println!("{v}");
                }
                ExitCode::SUCCESS
            }
            EvalOutcome::Error(e) => {
                eprintln!("error: {e}");
                ExitCode::from(1)
            }
        });
    }
    let printer = console::printer();
    let interactive = std::io::stdin().is_terminal();
    // The daemon's log lines: above the prompt, as a local console shows
    // them; on standard error when piped, keeping standard output for
    // results and events.
    let backend: Arc<dyn ConsoleBackend> = RemoteConsole::connect(&data_dir, move |log, line| {
        if log && !interactive {
            eprintln!("{line}");
        } else {
            printer.print_line(line);
        }
    })?;
    if interactive {
        console::run_interactive(backend, paths::history_file(&data_dir))?;
    } else {
        console::run_piped(backend, std::io::stdin().lock(), std::io::stdout())?;
    }
    Ok(ExitCode::SUCCESS)
}

fn init(cli: &Cli) -> anyhow::Result<ExitCode> {
    let path = paths::config_file(cli.config.as_deref())?;
    let written = config::init(&path)?;
    println!("wrote {}", written.display());
    Ok(ExitCode::SUCCESS)
}

/// `dclua hash FILE...`: one line per file, `TTH  path`, like `rhash`, in
/// the order given; the files are hashed in parallel on helper threads (one
/// per core) and each line is printed as soon as the files before it are done.
fn hash(files: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let pool = HelperPool::per_core();
    let mut batch = HashBatch::new(files.iter().map(|f| (f.clone(), 0)));
    let mut results: Vec<Option<Result<Tth, HashError>>> = files.iter().map(|_| None).collect();
    let mut filled = vec![false; files.len()];
    let mut next = 0;
    let mut failed = false;
    while let Some(result) = batch.next_blocking(&pool) {
        let path = match &result {
            Ok(h) => h.path.as_path(),
            Err(e) => e.path(),
        };
        // A file named twice is hashed twice: fill the first open slot.
        let slot = (0..files.len()).find(|&i| !filled[i] && files[i] == path);
        if let Some(i) = slot {
            filled[i] = true;
            results[i] = Some(result.map(|h| h.tree.root));
        }
        while let Some(Some(r)) = results.get_mut(next).map(Option::take) {
            match r {
                Ok(root) => println!("{root}  {}", files[next].display()),
                Err(e) => {
                    eprintln!("dclua: {e}");
                    failed = true;
                }
            }
            next += 1;
        }
    }
    if next < files.len() {
        anyhow::bail!("hashing stopped before every file had a result");
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// The configuration named on the command line, or `config.lua` in the XDG
/// config folder, or the embedded default when there is none.
fn load_config(cli: &Cli) -> anyhow::Result<(Config, Option<PathBuf>)> {
    let path = paths::config_file(cli.config.as_deref())?;
    if cli.config.is_none() && !path.exists() {
        log::debug!("no {}: using the embedded default configuration", path.display());
        return Ok((Config::embedded_default(), None));
    }
    let config = Config::load(&path)?;
    if cli.log_level.is_none() {
        logging::set_level(config.log_level.to_level_filter());
    }
    if let Some(file) = &config.log_file {
        logging::set_file(Some(file))
            .with_context(|| format!("opening the log file {}", file.display()))?;
    }
    Ok((config, Some(path)))
}

enum Mode {
    Console,
    Piped,
    Run {
        script: PathBuf,
        args: Vec<String>,
    },
    /// Headless until signalled, consoles attach over the control socket.
    Daemon,
}

/// Runs the client: worker, Lua host, configured scripts, then the console
/// or the script until the end.
fn client(
    cli: &Cli,
    config: Config,
    config_path: Option<PathBuf>,
    mode: Mode,
) -> anyhow::Result<ExitCode> {
    let data_dir = paths::data_dir(cli.data_dir.as_deref(), &config)?;
    // Held until the client ends: one process per data folder (identity,
    // hash store, queue).
    let _lock = DataDirLock::acquire(&data_dir)?;
    let worker = Worker::start(WorkerConfig::default()).context("starting the worker thread")?;
    let exit = Arc::new(AtomicI32::new(0));
    let quiet_log = cli.log_level.is_some();

    // Build the host on the worker thread (Lua states are not Send).
    let run_script = match &mode {
        Mode::Run { script, args } => Some((script.clone(), args.clone())),
        _ => None,
    };
    let (ready_tx, ready_rx) = channel();
    let folders: Vec<SharedFolder> = config
        .shares
        .iter()
        .map(|s| SharedFolder {
            name: s.name.clone(),
            path: s.path.clone(),
            hidden: s.hidden,
            follow_symlinks: s.follow_symlinks,
        })
        .collect();
    {
        let exit = exit.clone();
        let handle = worker.clone();
        let scripts = config.scripts.clone();
        let data_dir = data_dir.clone();
        let downloads = config.download_options(&data_dir);
        worker
            .post(move |pool| {
                let client = Client::start(
                    pool,
                    ClientOptions {
                        identity: config.identity(),
                        data_dir,
                        host: HostOptions::default(),
                        share: Some(ShareSetup { worker: handle.clone(), folders, cid: None }),
                        downloads: Some(downloads),
                    },
                );
                let config = Rc::new(RefCell::new(config));
                let result = start_host(
                    client.host(),
                    &handle,
                    &exit,
                    config,
                    config_path,
                    quiet_log,
                    &scripts,
                    run_script,
                );
                let _ = ready_tx.send(result);
            })
            .map_err(|_| anyhow::anyhow!("the worker thread stopped while starting"))?;
    }
    ready_rx
        .recv()
        .context("the worker thread stopped while starting")?
        .map_err(anyhow::Error::msg)?;
    // With an interactive console, Ctrl-C belongs to the console (it
    // interrupts the running chunk); Ctrl-D quits.
    let sigint_stops = !matches!(mode, Mode::Console);
    watch_signals(&worker, sigint_stops).context("installing signal handlers")?;

    match mode {
        Mode::Run { .. } => {}
        Mode::Console => {
            let printer = console::printer();
            logging::set_sink(Some(Box::new(move |line| printer.print_line(line))));
            let backend: Arc<dyn ConsoleBackend> = Arc::new(HostConsole::new(&worker)?);
            let result = console::run_interactive(backend, paths::history_file(&data_dir));
            logging::set_sink(None);
            worker.shutdown();
            result?;
        }
        Mode::Piped => {
            let backend: Arc<dyn ConsoleBackend> = Arc::new(HostConsole::new(&worker)?);
            let result = console::run_piped(backend, std::io::stdin().lock(), std::io::stdout());
            worker.shutdown();
            result?;
        }
        Mode::Daemon => {
            let backend: Arc<dyn ConsoleBackend> = Arc::new(HostConsole::new(&worker)?);
            // Log lines go to standard error (and the log file) as always,
            // and to the attached consoles.
            let printer = console::printer();
            logging::set_sink(Some(Box::new(move |line| {
                eprintln!("{line}");
                printer.broadcast_log(line);
            })));
            let server = ControlServer::start(&data_dir, backend);
            if let Err(e) = &server {
                worker.shutdown();
                worker.join().ok();
                logging::set_sink(None);
                return Err(anyhow::anyhow!("{e:#}"));
            }
            log::info!("daemon running as process {} (SIGTERM stops it)", std::process::id());
            worker.join().context("the worker thread failed")?;
            logging::set_sink(None);
            drop(server);
            let code = exit.load(Ordering::SeqCst);
            return Ok(ExitCode::from(code.clamp(0, 255) as u8));
        }
    }
    worker.join().context("the worker thread failed")?;
    let code = exit.load(Ordering::SeqCst);
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}

/// Sets the host up on the worker thread: hooks, configured scripts, the
/// configured hubs, the script of `dclua run`.
#[allow(clippy::too_many_arguments)]
fn start_host(
    host: &LuaHost,
    worker: &WorkerHandle,
    exit: &Arc<AtomicI32>,
    config: Rc<RefCell<Config>>,
    config_path: Option<PathBuf>,
    quiet_log: bool,
    scripts: &[config::ScriptConfig],
    run_script: Option<(PathBuf, Vec<String>)>,
) -> Result<(), String> {
    let run_id = Rc::new(RefCell::new(None));
    let hooks = HostHooks {
        reload_config: Some(Box::new({
            let config = config.clone();
            let weak = host.downgrade();
            move || reload_config(config_path.as_deref(), &config, quiet_log, &weak)
        })),
        output: Some(Box::new(|text| console::printer().print_line(text))),
        on_script_idle: Some(Box::new({
            let run_id = run_id.clone();
            let worker = worker.clone();
            let exit = exit.clone();
            let weak = host.downgrade();
            move |id| {
                if *run_id.borrow() == Some(id) {
                    // `dclua run`: the script has nothing left to do.
                    let failed = weak
                        .upgrade()
                        .map(LuaHost::from_inner)
                        .and_then(|h| h.script(id))
                        .is_some_and(|s| s.main_failed());
                    if failed {
                        exit.store(1, Ordering::SeqCst);
                    }
                    worker.shutdown();
                }
            }
        })),
        on_quit: Some(Box::new({
            let worker = worker.clone();
            let exit = exit.clone();
            move |code| {
                exit.store(code, Ordering::SeqCst);
                worker.shutdown();
            }
        })),
    };
    host.set_hooks(hooks);
    // With `dclua run`, standard output belongs to the script: hub chat goes
    // to the log instead of being printed.
    hub_api::set_chat_display(
        host,
        if run_script.is_some() { ChatDisplay::Log } else { ChatDisplay::Print },
    );
    for s in scripts {
        if let Err(e) = host.load_file(&s.path, s.trusted, &[]) {
            log::error!("{e}");
        }
    }
    // Scripts first, so that their hub handlers see the first connections.
    hub_api::connect_configured(host, &config.borrow());
    if let Some((path, args)) = run_script {
        let id = host.load_file(&path, true, &args)?;
        *run_id.borrow_mut() = Some(id);
        // A script with nothing to do after its main chunk ends right away.
        if host.is_idle(id) {
            worker.shutdown();
        }
    }
    Ok(())
}

fn reload_config(
    path: Option<&Path>,
    config: &Rc<RefCell<Config>>,
    quiet_log: bool,
    host: &std::rc::Weak<crate::lua::host::HostInner>,
) -> Result<(), String> {
    let Some(path) = path else {
        return Err(
            "dclua runs on its embedded default configuration: there is no file to reload".into()
        );
    };
    match Config::load(path) {
        Ok(new) => {
            if !quiet_log {
                logging::set_level(new.log_level.to_level_filter());
            }
            if let Err(e) = logging::set_file(new.log_file.as_deref()) {
                log::error!(
                    "opening the log file {}: {e}; logging to it stopped",
                    new.log_file.as_deref().unwrap_or(Path::new("")).display()
                );
            }
            log::info!("configuration reloaded from {}", path.display());
            if let Some(h) = host.upgrade().map(LuaHost::from_inner) {
                // The differences take effect: scripts no longer listed are
                // unloaded and new ones loaded, hubs likewise; what we
                // announce follows the new identity.
                reload_scripts(&h, &config.borrow().scripts, &new.scripts);
                let (left, joined) = hub_api::reload_config(&h, &new);
                if left + joined > 0 {
                    log::info!("reload: left {left} hubs, joined {joined}");
                }
                h.emit_value(
                    "config_reloaded",
                    crate::lua::Value::map([(
                        "path",
                        crate::lua::Value::str(path.display().to_string()),
                    )]),
                );
            }
            *config.borrow_mut() = new;
            Ok(())
        }
        Err(e) => {
            log::error!("configuration not reloaded, the last good one stays in force:\n{e}");
            Err(e.to_string())
        }
    }
}

/// Unloads the scripts of `old` that `new` no longer lists (or lists with
/// another trust) and loads those `new` adds.
fn reload_scripts(host: &LuaHost, old: &[config::ScriptConfig], new: &[config::ScriptConfig]) {
    for gone in old.iter().filter(|o| !new.contains(o)) {
        let loaded = host.scripts().into_iter().map(|(id, _)| id).find(|id| {
            host.script(*id).is_some_and(|s| s.path.as_deref() == Some(gone.path.as_path()))
        });
        if let Some(id) = loaded {
            log::info!(
                "reload: {} is no longer in the configuration; unloaded",
                gone.path.display()
            );
            host.unload(id);
        }
    }
    for added in new.iter().filter(|n| !old.contains(n)) {
        match host.load_file(&added.path, added.trusted, &[]) {
            Ok(_) => log::info!("reload: {} loaded", added.path.display()),
            Err(e) => log::error!("reload: {e}"),
        }
    }
}

/// The console's backend: chunks run as coroutine jobs on the worker.
struct HostConsole {
    worker: WorkerHandle,
    /// Chunk numbers and Ctrl-C, shared with the host: an interrupt lands
    /// at once even while the worker is busy in the chunk.
    control: ConsoleControl,
}

impl HostConsole {
    fn new(worker: &WorkerHandle) -> anyhow::Result<HostConsole> {
        let control = worker
            .call(|_| Client::current().map(|c| c.host().console_control()))
            .map_err(|_| anyhow::anyhow!("the worker thread stopped while starting the console"))?
            .ok_or_else(|| anyhow::anyhow!("the client is not running"))?;
        Ok(HostConsole { worker: worker.clone(), control })
    }
}

impl ConsoleBackend for HostConsole {
    fn eval(&self, chunk: String) -> Receiver<EvalOutcome> {
        let (tx, rx) = channel();
        let number = self.control.next_chunk();
        let posted = self.worker.post(move |_| match Client::current() {
            Some(client) => client.host().eval_console_chunk(number, &chunk, move |o| {
                let _ = tx.send(match o {
                    ChunkOutcome::Values(v) => EvalOutcome::Values(v),
                    ChunkOutcome::Error(e) => EvalOutcome::Error(console_error(&e)),
                });
            }),
            None => {
                let _ = tx.send(EvalOutcome::Error("the Lua host is not running".into()));
            }
        });
        if posted.is_err() {
            let (tx, rx) = channel();
            let _ = tx.send(EvalOutcome::Error("dclua is shutting down".into()));
            return rx;
        }
        rx
    }

    fn interrupt(&self) {
        // Marked here, on the console thread: a busy chunk sees it at its
        // next hook; the worker then also stops chunks that wait.
        let last = self.control.interrupt();
        let _ = self.worker.post(move |_| {
            if let Some(c) = Client::current() {
                c.host().interrupt_console_upto(last);
            }
        });
    }

    fn complete(&self, prefix: &str) -> Vec<String> {
        let prefix_owned = prefix.to_string();
        // Globals of the console's state, plus the API's names.
        let mut names: Vec<String> = self
            .worker
            .call(move |_| {
                let Some(client) = Client::current() else { return Vec::new() };
                let Ok(script) = client.host().console_script() else { return Vec::new() };
                global_names(script.lua(), &prefix_owned)
            })
            .unwrap_or_default();
        names.extend(api::completion_names().into_iter().map(str::to_string));
        names.retain(|n| n.starts_with(prefix));
        names.sort();
        names.dedup();
        names
    }
}

/// An error as the console shows it: the message without mlua's "runtime
/// error: " prefix and without the traceback (a chunk typed a moment ago
/// needs no stack to find).
fn console_error(e: &str) -> String {
    let msg = e.split("\nstack traceback:").next().unwrap_or(e);
    msg.strip_prefix("runtime error: ").unwrap_or(msg).to_string()
}

/// Names reachable from the globals for completing `prefix`: for `a.b.c`,
/// the keys of table `a.b` prefixed by `a.b.`; for a plain name, the globals.
fn global_names(lua: &mlua::Lua, prefix: &str) -> Vec<String> {
    let (base, sep) = match prefix.rfind(['.', ':']) {
        Some(i) => (&prefix[..i], &prefix[i..=i]),
        None => ("", ""),
    };
    let mut table = lua.globals();
    if !base.is_empty() {
        for part in base.split(['.', ':']) {
            match table.get::<mlua::Value>(part) {
                Ok(mlua::Value::Table(t)) => table = t,
                _ => return Vec::new(),
            }
        }
    }
    let mut out = Vec::new();
    // The table's own keys, then those of its class: objects (a hub, a
    // download) keep their methods in their metatable's `__index` table,
    // which may itself have a class above it.
    let mut level = Some(table);
    for _ in 0..4 {
        let Some(t) = level.take() else { break };
        for (k, v) in t.pairs::<mlua::Value, mlua::Value>().flatten() {
            if let mlua::Value::String(k) = k {
                let k = k.to_string_lossy();
                if sep == ":" && !matches!(v, mlua::Value::Function(_)) {
                    continue;
                }
                out.push(if base.is_empty() { k } else { format!("{base}{sep}{k}") });
            }
        }
        level = match t.metatable().map(|mt| mt.raw_get::<mlua::Value>("__index")) {
            Some(Ok(mlua::Value::Table(next))) => Some(next),
            _ => None,
        };
    }
    out
}

/// Ctrl-C and SIGTERM shut the worker down cleanly (every job is stopped and
/// given time to close its connections); a second one exits at once. SIGHUP
/// reloads the configuration (the last good one stays on error).
///
fn watch_signals(worker: &WorkerHandle, sigint_stops: bool) -> std::io::Result<()> {
    let mut signals = if sigint_stops {
        Signals::new([SIGINT, SIGTERM, SIGHUP])?
    } else {
        Signals::new([SIGTERM, SIGHUP])?
    };
    let worker = worker.clone();
    let count = Arc::new(AtomicUsize::new(0));
    std::thread::Builder::new().name("dclua-signals".into()).spawn(move || {
        for sig in signals.forever() {
            match sig {
                SIGHUP => {
                    let _ = worker.post(|_| {
                        if let Some(c) = Client::current() {
                            let _ = c.host().reload_config();
                        }
                    });
                }
                _ => {
                    if count.fetch_add(1, Ordering::SeqCst) > 0 {
                        eprintln!("dclua: second interrupt, exiting now");
                        std::process::exit(130);
                    }
                    log::info!("stopping (signal {sig}); interrupt again to exit at once");
                    worker.shutdown();
                }
            }
        }
    })?;
    Ok(())
}
