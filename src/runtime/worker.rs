//! The [`Worker`]: the one networking thread, and the [`WorkerHandle`] other
//! threads use to talk to it.
//!
//! The worker alternates between waiting in `mio::Poll` and running one pass of
//! its [`JobPool`]. The wait's timeout is zero when a job is ready, else the
//! time to the earliest timer, else infinite: an idle worker uses no CPU.
//!
//! Other threads (the console, signal handling, helper threads) reach it
//! through one channel and the poll's single `mio::Waker` (mio allows one per
//! poll). Everything they send is applied between passes.
//!
//! Shutdown: [`WorkerHandle::shutdown`] stops every job, then the worker keeps
//! running passes until the pool is empty or the grace period has passed (jobs
//! still there are then dropped, with a warning naming them), and exits.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::mpsc::channel;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::clock::{Clock, VirtualClock};
use super::handle::WorkerHandle;
use super::helpers::HelperPool;
use super::reactor::Reactor;

/// How the worker is set up.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Thread name.
    pub name: String,
    /// Helper threads for CPU-heavy work; `None` means one per core.
    pub helper_threads: Option<usize>,
    /// How long jobs get to finish after a shutdown request.
    pub shutdown_grace: Duration,
    /// Capacity of the `mio::Events` buffer (events handled per wake-up).
    pub events_capacity: usize,
    /// Run the pool on a [`VirtualClock`](super::VirtualClock) (reachable as
    /// `pool.runtime().clock()` on the worker): timers fire only when the
    /// clock is advanced, and the worker waits for I/O alone meanwhile.
    pub virtual_clock: bool,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            name: "dclua-worker".into(),
            helper_threads: None,
            shutdown_grace: Duration::from_secs(5),
            events_capacity: 1024,
            virtual_clock: false,
        }
    }
}

/// Starts the worker thread.
#[derive(Debug)]
pub struct Worker;

impl Worker {
    /// Starts a worker thread and returns its handle.
    pub fn start(config: WorkerConfig) -> io::Result<WorkerHandle> {
        let helpers = Arc::new(match config.helper_threads {
            Some(n) => HelperPool::new(n),
            None => HelperPool::per_core(),
        });
        // Built here, moved to the thread: the pool's handles are `Rc`, but
        // nothing has cloned them yet.
        // The pool's handles are `Rc`: the reactor is built on its thread,
        // which sends its handle (or why it could not start) back.
        let (tx, rx) = channel();
        let thread = {
            let config = config.clone();
            std::thread::Builder::new().name(config.name.clone()).spawn(move || {
                let clock = if config.virtual_clock {
                    Clock::Virtual(VirtualClock::new())
                } else {
                    Clock::System
                };
                let mut reactor = match Reactor::new(clock, helpers, config.events_capacity) {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = tx.send(Err(io::Error::new(e.kind(), e.to_string())));
                        return Err(e);
                    }
                };
                let handle = reactor.handle();
                let running = handle.running_flag();
                let _ = tx.send(Ok(handle));
                let result = run(&mut reactor, &config);
                running.store(false, Ordering::SeqCst);
                if let Err(e) = &result {
                    log::error!("worker thread failed: {e}");
                }
                result
            })?
        };
        let handle =
            rx.recv().map_err(|_| io::Error::other("the worker thread failed to start"))??;
        handle.set_thread(thread);
        Ok(handle)
    }
}

fn run(reactor: &mut Reactor, config: &WorkerConfig) -> io::Result<()> {
    let mut deadline: Option<Instant> = None;
    loop {
        let pool = reactor.pool();
        let mut timeout = pool.poll_timeout(pool.runtime().now());
        if config.virtual_clock && timeout != Some(Duration::ZERO) {
            // Virtual timers come due only when someone advances the clock
            // (through the inbox, which wakes us): never sleep for them.
            timeout = None;
        }
        if deadline.is_some() {
            // While shutting down, wake at least every 50 ms to see the deadline.
            let tick = Duration::from_millis(50);
            timeout = Some(timeout.map_or(tick, |t| t.min(tick)));
        }
        let turn = reactor.turn(timeout)?;
        if turn.shutdown && deadline.is_none() {
            log::debug!("worker: shutdown requested, stopping {} jobs", reactor.pool().len());
            deadline = Some(Instant::now() + config.shutdown_grace);
        }
        if let Some(d) = deadline {
            // Every turn: also catches jobs spawned after the shutdown request.
            reactor.pool().stop_all();
            if reactor.pool().is_empty() {
                return Ok(());
            }
            if Instant::now() >= d {
                let names = reactor.pool().abort_all();
                log::warn!(
                    "worker: {} job(s) did not finish within {:?} of shutdown and were dropped: {}",
                    names.len(),
                    config.shutdown_grace,
                    names.join(", ")
                );
                return Ok(());
            }
        }
    }
}
