//! The application: what `main` runs once the command line is parsed.
//!
//! It starts the worker, wires signals to it and waits. It owns process-level
//! concerns (exit codes, signals) and nothing of the protocols.

use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::Context as _;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::cli::{Cli, LogLevel};
use crate::logging;
use crate::runtime::{Worker, WorkerConfig, WorkerHandle};

/// Runs dclua as the command line asks; returns the process exit code.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    logging::init(cli.log_level.unwrap_or(LogLevel::Info).into());
    let worker = Worker::start(WorkerConfig::default()).context("starting the worker thread")?;
    watch_signals(&worker).context("installing signal handlers")?;
    log::info!("dclua {} running; Ctrl-C or SIGTERM stops it", env!("CARGO_PKG_VERSION"));
    worker.join().context("the worker thread failed")?;
    log::info!("dclua stopped");
    Ok(ExitCode::SUCCESS)
}

/// Ctrl-C and SIGTERM shut the worker down cleanly (every job is stopped and
/// given time to close its connections); a second one exits at once. SIGHUP
/// is reserved for reloading the configuration.
fn watch_signals(worker: &WorkerHandle) -> std::io::Result<()> {
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    let worker = worker.clone();
    let count = Arc::new(AtomicUsize::new(0));
    std::thread::Builder::new().name("dclua-signals".into()).spawn(move || {
        for sig in signals.forever() {
            match sig {
                SIGHUP => log::info!("SIGHUP received"),
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
