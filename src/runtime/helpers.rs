//! The helper threads: a small fixed pool (as many threads as cores) for
//! CPU-heavy bulk work — hashing, (de)compressing file lists — so that the
//! worker thread stays responsive.
//!
//! This module owns the threads and the work queue, nothing else. It knows
//! nothing of jobs: a task is a `FnOnce() + Send` closure, and whoever submits
//! it decides how the result travels back (the worker wraps tasks so that their
//! results arrive as messages to the submitting job, see
//! [`Context::submit`](super::Context::submit)).
//!
//! Invariants: tasks run in submission order of pick-up (FIFO queue), each on
//! exactly one thread; a panicking task is caught and logged and never takes a
//! helper thread down; dropping the pool lets queued tasks finish, then joins.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

type Task = Box<dyn FnOnce() + Send + 'static>;

/// A fixed pool of helper threads fed from one FIFO queue.
pub struct HelperPool {
    tx: Option<Sender<Task>>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for HelperPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HelperPool").field("threads", &self.threads.len()).finish()
    }
}

impl HelperPool {
    /// Starts `threads` helper threads (at least one).
    pub fn new(threads: usize) -> HelperPool {
        let (tx, rx) = channel::<Task>();
        let rx = Arc::new(Mutex::new(rx));
        let threads = (0..threads.max(1))
            .map(|i| {
                let rx = Arc::clone(&rx);
                std::thread::Builder::new()
                    .name(format!("dclua-helper-{i}"))
                    .spawn(move || helper_loop(&rx))
                    .expect("spawning a helper thread")
            })
            .collect();
        HelperPool { tx: Some(tx), threads }
    }

    /// A pool with one thread per available core.
    pub fn per_core() -> HelperPool {
        HelperPool::new(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    /// Number of helper threads.
    pub fn threads(&self) -> usize {
        self.threads.len()
    }

    /// Queues `task` to run on one helper thread.
    pub fn submit(&self, task: impl FnOnce() + Send + 'static) {
        if let Some(tx) = &self.tx {
            // The receiver lives as long as any helper thread; a send can only
            // fail after every thread exited, which happens on drop alone.
            let _ = tx.send(Box::new(task));
        }
    }
}

fn helper_loop(rx: &Mutex<Receiver<Task>>) {
    loop {
        // Hold the lock only while taking a task, never while running one.
        let task = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(task) = task else { return };
        if let Err(panic) = catch_unwind(AssertUnwindSafe(task)) {
            log::error!("a helper task panicked: {}", panic_message(&*panic));
        }
    }
}

impl Drop for HelperPool {
    fn drop(&mut self) {
        // Closing the channel ends every helper loop once the queue is empty.
        self.tx = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// The text of a panic payload.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;

    #[test]
    fn runs_every_task_on_all_threads() {
        let pool = HelperPool::new(3);
        let (tx, rx) = channel();
        for i in 0..100u64 {
            let tx = tx.clone();
            pool.submit(move || tx.send(i * i).unwrap());
        }
        let mut sum = 0;
        for _ in 0..100 {
            sum += rx.recv().unwrap();
        }
        assert_eq!(sum, (0..100u64).map(|i| i * i).sum::<u64>());
    }

    #[test]
    fn a_panicking_task_does_not_kill_the_pool() {
        let pool = HelperPool::new(1);
        pool.submit(|| panic!("boom"));
        let (tx, rx) = channel();
        pool.submit(move || tx.send(7).unwrap());
        assert_eq!(rx.recv().unwrap(), 7);
    }
}
