//! The [`Job`] contract: the unit of cooperative work.

use std::fmt;

use super::Context;

/// What a [`Job::poll`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Step {
    /// Not finished. The job is polled again when one of its wake reasons
    /// occurs: an I/O event on a source it registered, a timer of its own, a
    /// message or helper result for it, or its own [`Context::repoll`].
    Pending,
    /// Finished: the pool drops the job (and with it its sources, timers and
    /// queued messages) before the next pass.
    Done,
}

/// A job does its task a slice at a time.
///
/// # Contract
///
/// - [`poll`](Job::poll) does one *bounded* slice of work — a byte budget for a
///   transfer, a message budget for a hub — and returns. It never blocks. If it
///   still has work after its slice, it calls [`Context::repoll`]; the pool then
///   polls every other ready job before polling it again, so a busy job cannot
///   starve the others.
/// - A job is polled once right after it is added, then only when one of its
///   wake reasons occurs. Spurious polls are allowed: a job must cope with being
///   polled with nothing to do.
/// - [`stop`](Job::stop) asks the job to end. It is called between passes, at
///   most once. After it the pool keeps polling the job (at least once, then on
///   the usual wake reasons) until `poll` returns [`Step::Done`], so the job can
///   say goodbye, flush and close its sockets and files cleanly. A job should
///   finish within a few seconds of `stop`; at shutdown the worker drops jobs
///   that take longer than its deadline.
/// - [`is_alive`](Job::is_alive) says whether the job is still doing its task
///   (false once it has been stopped or has failed, even while it is still
///   cleaning up).
/// - A job may start other jobs, send messages and arm timers through its
///   [`Context`]; such changes take effect between passes.
pub trait Job: 'static {
    /// Does the next bounded slice of work.
    fn poll(&mut self, cx: &mut Context<'_>) -> Step;

    /// Whether the job is still doing its task.
    fn is_alive(&self) -> bool;

    /// Asks the job to end; see the trait docs for what follows.
    fn stop(&mut self);

    /// A short human name for logs ("hub adc://example.org:411").
    fn name(&self) -> String {
        let full = std::any::type_name::<Self>();
        full.rsplit("::").next().unwrap_or(full).to_string()
    }
}

/// Identifies a job for as long as the pool lives; never reused.
///
/// The low 32 bits index the pool's slot table and the high 32 bits are the
/// slot's generation, so a stale id of a finished job never reaches the job
/// that later reuses the slot.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(pub(crate) u64);

impl JobId {
    pub(crate) fn new(index: u32, generation: u32) -> JobId {
        JobId(u64::from(generation) << 32 | u64::from(index))
    }

    pub(crate) fn index(self) -> usize {
        (self.0 & 0xffff_ffff) as usize
    }

    pub(crate) fn generation(self) -> u32 {
        (self.0 >> 32) as u32
    }
}

impl fmt::Debug for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "job#{}.{}", self.index(), self.generation())
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A job made of a closure, handy for small tasks and tests.
///
/// The closure is called on every poll; `stop` sets a flag the closure can
/// read through [`FnJob::stopped`]-style logic of its own, so this type simply
/// finishes at the next poll after `stop`.
pub struct FnJob<F> {
    name: &'static str,
    f: F,
    stopped: bool,
}

impl<F: FnMut(&mut Context<'_>) -> Step + 'static> FnJob<F> {
    /// A job that calls `f` on every poll until it returns [`Step::Done`] or
    /// the job is stopped.
    pub fn new(name: &'static str, f: F) -> FnJob<F> {
        FnJob { name, f, stopped: false }
    }
}

impl<F: FnMut(&mut Context<'_>) -> Step + 'static> Job for FnJob<F> {
    fn poll(&mut self, cx: &mut Context<'_>) -> Step {
        if self.stopped {
            return Step::Done;
        }
        (self.f)(cx)
    }

    fn is_alive(&self) -> bool {
        !self.stopped
    }

    fn stop(&mut self) {
        self.stopped = true;
    }

    fn name(&self) -> String {
        self.name.to_string()
    }
}
