//! The [`WorkerHandle`]: how other threads (the console, signal handling,
//! helper threads, tests) reach a running pool, and [`WorkerGone`].
//!
//! Owns: the sending end of the inbox and the thread's join handle. Must
//! not: touch the pool, which lives on the worker thread.

use std::any::Any;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::channel;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::ids::JobId;
use super::pool::{Job, JobPool, Remote, RemoteLink, Runtime};

/// The worker did not take the request: it has exited (or is exiting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the dclua worker thread is not running")]
pub struct WorkerGone;

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
    /// A handle on `link`'s pool, running, with no thread to join yet.
    pub(crate) fn new(link: RemoteLink) -> WorkerHandle {
        WorkerHandle {
            link,
            running: Arc::new(AtomicBool::new(true)),
            thread: Arc::new(Mutex::new(None)),
        }
    }

    /// The flag the worker thread clears when it exits.
    pub(crate) fn running_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.running)
    }

    /// The thread [`join`](WorkerHandle::join) waits for.
    pub(crate) fn set_thread(&self, thread: JoinHandle<io::Result<()>>) {
        *self.thread.lock().unwrap_or_else(|e| e.into_inner()) = Some(thread);
    }

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
