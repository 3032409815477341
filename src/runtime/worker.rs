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

use std::any::Any;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::{Events, Poll, Token};

use super::clock::{Clock, VirtualClock};
use super::helpers::HelperPool;
use super::ids::JobId;
use super::pool::{IoEvent, Remote, RemoteLink};
use super::pool::{Job, JobPool, Runtime};

/// The token of the worker's waker; job tokens are slab indices far below it.
const WAKER: Token = Token(usize::MAX);

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

/// The worker did not take the request: it has exited (or is exiting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the dclua worker thread is not running")]
pub struct WorkerGone;

/// Starts the worker thread.
#[derive(Debug)]
pub struct Worker;

impl Worker {
    /// Starts a worker thread and returns its handle.
    pub fn start(config: WorkerConfig) -> io::Result<WorkerHandle> {
        let poll = Poll::new()?;
        let waker = Arc::new(mio::Waker::new(poll.registry(), WAKER)?);
        let (tx, rx) = channel();
        let link = RemoteLink { tx, waker };
        let running = Arc::new(AtomicBool::new(true));
        let thread = {
            let link = link.clone();
            let running = Arc::clone(&running);
            let config = config.clone();
            std::thread::Builder::new().name(config.name.clone()).spawn(move || {
                let result = run(poll, rx, link, &config);
                running.store(false, Ordering::SeqCst);
                if let Err(e) = &result {
                    log::error!("worker thread failed: {e}");
                }
                result
            })?
        };
        Ok(WorkerHandle { link, running, thread: Arc::new(Mutex::new(Some(thread))) })
    }
}

fn run(
    mut poll: Poll,
    rx: Receiver<Remote>,
    link: RemoteLink,
    config: &WorkerConfig,
) -> io::Result<()> {
    let helpers = Arc::new(match config.helper_threads {
        Some(n) => HelperPool::new(n),
        None => HelperPool::per_core(),
    });
    let registry = poll.registry().try_clone()?;
    let clock =
        if config.virtual_clock { Clock::Virtual(VirtualClock::new()) } else { Clock::System };
    let mut pool = JobPool::build(Some(registry), Some(helpers), Some(link), clock);
    let mut events = Events::with_capacity(config.events_capacity.max(16));
    let mut deadline: Option<Instant> = None;
    loop {
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
        if let Err(e) = poll.poll(&mut events, timeout) {
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        for ev in events.iter() {
            if ev.token() == WAKER {
                continue; // the inbox is drained below in any case
            }
            pool.dispatch_io(IoEvent::from_mio(ev));
        }
        // Drain the inbox on every turn: cheap when empty, and it never misses
        // a message whose wake-up was coalesced with an I/O event.
        while let Ok(msg) = rx.try_recv() {
            match msg {
                Remote::Deliver(to, msg) => pool.deliver(to, msg),
                Remote::Command(f) => f(&mut pool),
                Remote::Shutdown => {
                    if deadline.is_none() {
                        log::debug!("worker: shutdown requested, stopping {} jobs", pool.len());
                        deadline = Some(Instant::now() + config.shutdown_grace);
                    }
                }
            }
        }
        if deadline.is_some() {
            // Also catches jobs spawned after the shutdown request.
            pool.stop_all();
        }
        let now = pool.runtime().now();
        pool.run_pass(now);
        if let Some(d) = deadline {
            if pool.is_empty() {
                return Ok(());
            }
            if Instant::now() >= d {
                let names = pool.abort_all();
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

/// A `Send + Clone` handle to a running worker.
#[derive(Clone)]
pub struct WorkerHandle {
    link: RemoteLink,
    running: Arc<AtomicBool>,
    thread: Arc<Mutex<Option<JoinHandle<io::Result<()>>>>>,
}

impl std::fmt::Debug for WorkerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerHandle").field("running", &self.is_running()).finish()
    }
}

impl WorkerHandle {
    /// Whether the worker thread is still running.
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }

    /// Runs `f` on the worker thread, between passes, without waiting.
    pub fn post(&self, f: impl FnOnce(&mut JobPool) + Send + 'static) -> Result<(), WorkerGone> {
        if self.link.send(Remote::Command(Box::new(f))) {
            Ok(())
        } else {
            Err(WorkerGone)
        }
    }

    /// Runs `f` on the worker thread between passes and waits for its result.
    ///
    /// Never call this from the worker thread itself: it would wait forever.
    pub fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut JobPool) -> R + Send + 'static,
    ) -> Result<R, WorkerGone> {
        let (tx, rx) = channel();
        self.post(move |pool| {
            let _ = tx.send(f(pool));
        })?;
        rx.recv().map_err(|_| WorkerGone)
    }

    /// Builds a job on the worker thread (jobs need not be `Send`) and adds it.
    /// `make` gets the runtime and the new job's id (see
    /// [`Runtime::spawn_with`]).
    pub fn spawn<J: Job>(
        &self,
        make: impl FnOnce(&Runtime, JobId) -> J + Send + 'static,
    ) -> Result<JobId, WorkerGone> {
        self.call(move |pool| {
            let rt = pool.runtime().clone();
            rt.spawn_with(|id| make(&rt, id))
        })
    }

    /// Sends a message to a job.
    pub fn send(&self, to: JobId, msg: impl Any + Send) -> Result<(), WorkerGone> {
        if self.link.send(Remote::Deliver(to, Box::new(msg))) {
            Ok(())
        } else {
            Err(WorkerGone)
        }
    }

    /// Asks the worker to stop every job and exit (see the module docs).
    /// Returns at once; use [`join`](WorkerHandle::join) to wait.
    pub fn shutdown(&self) {
        self.link.send(Remote::Shutdown);
    }

    /// Waits for the worker thread to exit and returns its result. Only the
    /// first caller waits; later calls return `Ok` at once.
    pub fn join(&self) -> io::Result<()> {
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        match thread {
            Some(t) => {
                t.join().unwrap_or_else(|_| Err(io::Error::other("the worker thread panicked")))
            }
            None => Ok(()),
        }
    }

    /// [`shutdown`](WorkerHandle::shutdown) then [`join`](WorkerHandle::join).
    pub fn shutdown_and_join(&self) -> io::Result<()> {
        self.shutdown();
        self.join()
    }
}
