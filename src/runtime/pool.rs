//! The [`Job`] contract, the [`JobPool`], the [`Runtime`] handle and the
//! [`Context`] a job is polled with.
//!
//! They live in one module because they name each other: a job is polled with
//! a `Context`, which spawns jobs through the `Runtime`, whose shared state
//! holds the jobs the pool will own. (The ids they share are in `ids.rs`.)
//!
//! The pool owns the jobs and decides who is polled when; it never does I/O
//! itself (the [`Worker`](super::Worker) waits on `mio` and feeds it events)
//! and never blocks.
//!
//! # Passes
//!
//! [`JobPool::run_pass`] is one turn of the loop:
//!
//! 1. apply what was requested since the last pass — new jobs, stop requests,
//!    messages, wake-ups — and fire due timers; each of these makes its job
//!    *ready*;
//! 2. poll every ready job once, in the order they became ready;
//! 3. drop the jobs that reported [`Step::Done`], then apply again.
//!
//! Invariants:
//! - Changes requested during a pass (spawn, stop, send, wake) take effect
//!   between passes; a job spawned during a pass is first polled in the next.
//! - A job is in the ready queue at most once (`Entry::queued`).
//! - A job that asks to be polled again ([`Context::repoll`]) goes to the back
//!   of the next pass's queue, so it runs again only after every other ready
//!   job had its turn: no job can starve the others.
//! - Once a job is dropped its id is dead for good: messages and wake-ups to it
//!   are discarded, its timers are cancelled when they come due, and the
//!   generation in [`JobId`] keeps the slot's next tenant from receiving them.

use std::any::Any;
use std::cell::{RefCell, RefMut};
use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::{Interest, Token};

use super::clock::Clock;
use super::helpers::{panic_message, HelperPool};
use super::ids::{JobId, TaskId};
use super::timer::{TimerId, Timers};

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

/// A job made of a closure, handy for small tasks and tests.
///
/// The closure is called on every poll; `stop` sets a flag the closure can
/// read through `stopped`-style logic of its own, so this type simply
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

/// A message to a job. Jobs downcast it to the types they understand and
/// ignore the others.
pub type Message = Box<dyn Any>;

/// What a helper task returned, delivered to the submitting job as a
/// [`Message`].
pub struct TaskDone {
    /// The id returned by [`Context::submit`].
    pub task: TaskId,
    /// The task's return value; downcast it to the type the task returned.
    pub result: Box<dyn Any + Send>,
}

impl fmt::Debug for TaskDone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskDone").field("task", &self.task).finish_non_exhaustive()
    }
}

/// Readiness of one registered source, as delivered to its job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoEvent {
    /// The token the source was registered with.
    pub token: Token,
    bits: u8,
}

impl IoEvent {
    const READABLE: u8 = 1;
    const WRITABLE: u8 = 2;
    const CLOSED: u8 = 4;
    const ERROR: u8 = 8;

    pub(crate) fn from_mio(ev: &mio::event::Event) -> IoEvent {
        let mut bits = 0;
        if ev.is_readable() {
            bits |= Self::READABLE;
        }
        if ev.is_writable() {
            bits |= Self::WRITABLE;
        }
        if ev.is_read_closed() || ev.is_write_closed() {
            bits |= Self::CLOSED;
        }
        if ev.is_error() {
            bits |= Self::ERROR;
        }
        IoEvent { token: ev.token(), bits }
    }

    /// An event with the given readiness, for tests and synthetic wake-ups.
    pub fn new(token: Token, readable: bool, writable: bool) -> IoEvent {
        let bits =
            if readable { Self::READABLE } else { 0 } | if writable { Self::WRITABLE } else { 0 };
        IoEvent { token, bits }
    }

    /// Data (or an end of stream) can be read.
    pub fn is_readable(&self) -> bool {
        self.bits & (Self::READABLE | Self::CLOSED | Self::ERROR) != 0
    }

    /// Data can be written (or the socket failed, which a write will report).
    pub fn is_writable(&self) -> bool {
        self.bits & (Self::WRITABLE | Self::ERROR) != 0
    }

    /// The peer closed one direction or the socket failed.
    pub fn is_closed(&self) -> bool {
        self.bits & (Self::CLOSED | Self::ERROR) != 0
    }
}

/// The wake reasons collected for a job since its last poll.
#[derive(Default)]
pub(crate) struct Wake {
    io: Vec<IoEvent>,
    timers: Vec<TimerId>,
    mail: VecDeque<Message>,
}

impl Wake {
    fn clear_fired(&mut self) {
        self.io.clear();
        self.timers.clear();
    }
}

/// Things other threads deliver to the worker: helper results and remote
/// messages. The worker drains them into the pool.
pub(crate) enum Remote {
    Deliver(JobId, Box<dyn Any + Send>),
    Command(Box<dyn FnOnce(&mut JobPool) + Send>),
    Shutdown,
}

/// How a pool reaches its worker from other threads.
#[derive(Clone)]
pub(crate) struct RemoteLink {
    pub(crate) tx: Sender<Remote>,
    pub(crate) waker: Arc<mio::Waker>,
}

impl RemoteLink {
    pub(crate) fn send(&self, msg: Remote) -> bool {
        if self.tx.send(msg).is_err() {
            return false;
        }
        // A failed wake means the poll is gone, i.e. the worker has exited.
        self.waker.wake().is_ok()
    }
}

/// Marks a free slot of the token table (no job has this id: its generation
/// would have to reach `u32::MAX` on slot `u32::MAX`).
const FREE_TOKEN: u64 = u64::MAX;

/// The mutable state shared by the pool and every [`Runtime`] handle.
struct State {
    /// Generation of each slot; a [`JobId`] is live iff its generation matches.
    generations: Vec<u32>,
    /// Whether each slot is taken (reserved or occupied).
    taken: Vec<bool>,
    free_slots: Vec<u32>,
    added: Vec<(JobId, Box<dyn Job>)>,
    stops: Vec<JobId>,
    mail: Vec<(JobId, Message)>,
    wakes: Vec<JobId>,
    timers: Timers,
    /// Owner job of each registered token; [`FREE_TOKEN`] for free tokens
    /// (a bare u64 rather than `Option<JobId>`: 8 bytes per connection).
    tokens: Vec<u64>,
    free_tokens: Vec<usize>,
    next_task: u64,
}

impl State {
    fn is_live(&self, id: JobId) -> bool {
        let i = id.index();
        i < self.generations.len() && self.taken[i] && self.generations[i] == id.generation()
    }

    fn has_requests(&self) -> bool {
        !self.added.is_empty()
            || !self.stops.is_empty()
            || !self.mail.is_empty()
            || !self.wakes.is_empty()
    }
}

struct Inner {
    state: RefCell<State>,
    clock: Clock,
    /// Helper tasks submitted whose result is not yet in the worker's inbox
    /// (decremented by the helper thread after it sent the result), so that
    /// "nothing in flight" can be checked (the bot test kit's settling).
    tasks_in_flight: Arc<AtomicUsize>,
    registry: Option<mio::Registry>,
    helpers: Option<Arc<HelperPool>>,
    remote: Option<RemoteLink>,
}

/// A cheap, cloneable handle to the pool, usable on the worker thread from
/// anywhere — inside a job's `poll`, or from a Lua callback that runs during
/// one — to spawn and stop jobs, send messages, arm timers and register I/O.
///
/// It is not `Send`: other threads use a [`WorkerHandle`](super::WorkerHandle).
#[derive(Clone)]
pub struct Runtime {
    inner: Rc<Inner>,
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime").finish_non_exhaustive()
    }
}

impl Runtime {
    fn state(&self) -> RefMut<'_, State> {
        self.inner.state.borrow_mut()
    }

    /// Adds a job; it is first polled in the next pass.
    pub fn spawn(&self, job: impl Job) -> JobId {
        self.spawn_boxed(Box::new(job))
    }

    /// Adds a job built by `make`, which receives the job's id first, so the
    /// job can register sockets or arm timers for itself as it is built.
    ///
    /// Safe for I/O: the job is in the pool before the worker next waits in
    /// `mio::Poll`, so no event for a source it registered can be missed.
    pub fn spawn_with<J: Job>(&self, make: impl FnOnce(JobId) -> J) -> JobId {
        let id = self.reserve();
        let job = make(id);
        self.state().added.push((id, Box::new(job)));
        id
    }

    /// Adds a boxed job; it is first polled in the next pass.
    pub fn spawn_boxed(&self, job: Box<dyn Job>) -> JobId {
        let id = self.reserve();
        self.state().added.push((id, job));
        id
    }

    fn reserve(&self) -> JobId {
        let mut st = self.state();
        let index = match st.free_slots.pop() {
            Some(i) => i,
            None => {
                st.generations.push(0);
                st.taken.push(false);
                (st.generations.len() - 1) as u32
            }
        };
        st.taken[index as usize] = true;
        JobId::new(index, st.generations[index as usize])
    }

    /// Asks a job to stop (see [`Job::stop`]). Unknown or finished ids are
    /// ignored.
    pub fn stop(&self, id: JobId) {
        let mut st = self.state();
        if st.is_live(id) {
            st.stops.push(id);
        }
    }

    /// Queues a message for a job and wakes it. Returns false (and drops the
    /// message) when the job is gone.
    pub fn send(&self, to: JobId, msg: impl Any) -> bool {
        self.send_boxed(to, Box::new(msg))
    }

    /// [`send`](Runtime::send) for an already boxed message.
    pub fn send_boxed(&self, to: JobId, msg: Message) -> bool {
        let mut st = self.state();
        if !st.is_live(to) {
            return false;
        }
        st.mail.push((to, msg));
        true
    }

    /// Makes a job ready: it is polled in the next pass.
    pub fn wake(&self, id: JobId) {
        let mut st = self.state();
        if st.is_live(id) {
            st.wakes.push(id);
        }
    }

    /// Whether a job is still in the pool (added and not yet finished).
    pub fn is_live(&self, id: JobId) -> bool {
        self.state().is_live(id)
    }

    /// Arms a one-shot timer for `owner`, due after `delay`.
    pub fn timer_after(&self, owner: JobId, delay: Duration) -> TimerId {
        let at = self.now() + delay;
        self.state().timers.add(owner, at, None)
    }

    /// The current instant on the pool's clock: what timers, sleeps and
    /// session timeouts are measured against (see [`Clock`]).
    #[inline]
    pub fn now(&self) -> Instant {
        self.inner.clock.now()
    }

    /// The pool's clock.
    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    /// Arms a one-shot timer for `owner`, due at `deadline`.
    pub fn timer_at(&self, owner: JobId, deadline: Instant) -> TimerId {
        self.state().timers.add(owner, deadline, None)
    }

    /// Arms a repeating timer for `owner`, first due after `period`.
    pub fn timer_every(&self, owner: JobId, period: Duration) -> TimerId {
        let at = self.now() + period;
        self.state().timers.add(owner, at, Some(period))
    }

    /// Cancels a timer; returns whether it was still armed.
    pub fn cancel_timer(&self, id: TimerId) -> bool {
        self.state().timers.cancel(id)
    }

    /// Whether a timer is still armed.
    pub fn timer_armed(&self, id: TimerId) -> bool {
        self.state().timers.is_armed(id)
    }

    /// Registers an I/O source for `owner`; its events wake that job.
    pub fn register(
        &self,
        owner: JobId,
        source: &mut impl mio::event::Source,
        interest: Interest,
    ) -> io::Result<Token> {
        let registry = self.registry()?;
        let token = {
            let mut st = self.state();
            match st.free_tokens.pop() {
                Some(t) => {
                    st.tokens[t] = owner.0;
                    Token(t)
                }
                None => {
                    st.tokens.push(owner.0);
                    Token(st.tokens.len() - 1)
                }
            }
        };
        if let Err(e) = registry.register(source, token, interest) {
            self.release_token(token);
            return Err(e);
        }
        Ok(token)
    }

    /// Changes the interest of a registered source.
    pub fn reregister(
        &self,
        source: &mut impl mio::event::Source,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        self.registry()?.reregister(source, token, interest)
    }

    /// Deregisters a source and frees its token.
    pub fn deregister(&self, source: &mut impl mio::event::Source, token: Token) {
        if let Ok(registry) = self.registry() {
            // The source may already be closed; the kernel then forgot it.
            let _ = registry.deregister(source);
        }
        self.release_token(token);
    }

    /// Moves a registered source's events to another job (a listener handing
    /// an accepted connection to a new session job).
    pub fn retarget(&self, token: Token, owner: JobId) {
        let mut st = self.state();
        if let Some(slot) = st.tokens.get_mut(token.0) {
            if *slot != FREE_TOKEN {
                *slot = owner.0;
            }
        }
    }

    fn release_token(&self, token: Token) {
        let mut st = self.state();
        if let Some(slot) = st.tokens.get_mut(token.0) {
            if *slot != FREE_TOKEN {
                *slot = FREE_TOKEN;
                st.free_tokens.push(token.0);
            }
        }
    }

    fn registry(&self) -> io::Result<&mio::Registry> {
        self.inner.registry.as_ref().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::Unsupported,
                "this job pool runs without a worker: no I/O",
            )
        })
    }

    /// Runs `task` on a helper thread; its return value comes back to `owner`
    /// as a [`TaskDone`] message. Without helper threads (a bare pool in unit
    /// tests) the task runs inline and its result is delivered the same way.
    pub fn submit<T, F>(&self, owner: JobId, task: F) -> TaskId
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let id = {
            let mut st = self.state();
            st.next_task += 1;
            TaskId(st.next_task)
        };
        match (&self.inner.helpers, &self.inner.remote) {
            (Some(helpers), Some(remote)) => {
                let remote = remote.clone();
                let in_flight = Arc::clone(&self.inner.tasks_in_flight);
                in_flight.fetch_add(1, Ordering::SeqCst);
                helpers.submit(move || {
                    let result: Box<dyn Any + Send> = Box::new(task());
                    remote.send(Remote::Deliver(owner, Box::new(TaskDone { task: id, result })));
                    // After the send: at zero, every result is in the inbox.
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                });
            }
            _ => {
                let result: Box<dyn Any + Send> = Box::new(task());
                self.send(owner, TaskDone { task: id, result });
            }
        }
        id
    }

    /// Helper tasks running or queued whose result has not reached the
    /// worker's inbox yet.
    pub fn tasks_in_flight(&self) -> usize {
        self.inner.tasks_in_flight.load(Ordering::SeqCst)
    }

    /// Number of helper threads (0 for a bare pool).
    pub fn helper_threads(&self) -> usize {
        self.inner.helpers.as_ref().map_or(0, |h| h.threads())
    }

    /// The shared helper thread pool, if this runtime has one.
    pub fn helpers(&self) -> Option<&Arc<HelperPool>> {
        self.inner.helpers.as_ref()
    }
}

/// What a job sees while it is polled: its id, its wake reasons, and the
/// [`Runtime`] to act on the pool.
pub struct Context<'a> {
    rt: &'a Runtime,
    id: JobId,
    wake: &'a mut Wake,
    repoll: bool,
    now: Instant,
}

impl<'a> Context<'a> {
    /// The polled job's id.
    pub fn id(&self) -> JobId {
        self.id
    }

    /// The runtime handle (clone it to keep it).
    pub fn runtime(&self) -> &'a Runtime {
        self.rt
    }

    /// The time this pass started, on the pool's clock.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Asks to be polled again in the next pass because work remains. The pool
    /// then does not sleep in `mio::Poll`, but polls every other ready job
    /// first.
    pub fn repoll(&mut self) {
        self.repoll = true;
    }

    /// I/O readiness delivered since the last poll.
    pub fn io_events(&self) -> &[IoEvent] {
        &self.wake.io
    }

    /// Timers of this job that fired since the last poll.
    pub fn fired_timers(&self) -> &[TimerId] {
        &self.wake.timers
    }

    /// Whether `timer` fired since the last poll.
    pub fn fired(&self, timer: TimerId) -> bool {
        self.wake.timers.contains(&timer)
    }

    /// Takes the next message for this job.
    pub fn recv(&mut self) -> Option<Message> {
        self.wake.mail.pop_front()
    }

    /// Whether messages are waiting.
    pub fn has_mail(&self) -> bool {
        !self.wake.mail.is_empty()
    }

    /// Arms a one-shot timer for this job.
    pub fn after(&self, delay: Duration) -> TimerId {
        self.rt.timer_after(self.id, delay)
    }

    /// Arms a repeating timer for this job.
    pub fn every(&self, period: Duration) -> TimerId {
        self.rt.timer_every(self.id, period)
    }

    /// Cancels a timer.
    pub fn cancel_timer(&self, id: TimerId) -> bool {
        self.rt.cancel_timer(id)
    }

    /// Adds a job (polled from the next pass on).
    pub fn spawn(&self, job: impl Job) -> JobId {
        self.rt.spawn(job)
    }

    /// Sends a message to a job.
    pub fn send(&self, to: JobId, msg: impl Any) -> bool {
        self.rt.send(to, msg)
    }

    /// Runs `task` on a helper thread; the result arrives as a [`TaskDone`]
    /// message to this job.
    pub fn submit<T, F>(&self, task: F) -> TaskId
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.rt.submit(self.id, task)
    }
}

struct Entry {
    id: JobId,
    job: Box<dyn Job>,
    /// In the ready queue for the next pass.
    queued: bool,
    /// `stop` was called.
    stopping: bool,
    wake: Wake,
}

/// Owns the jobs and polls the ready ones, pass after pass.
///
/// A bare pool (from [`JobPool::new`]) has no I/O and runs helper tasks
/// inline; it exists for unit tests of jobs. The [`Worker`](super::Worker)
/// builds the real one.
pub struct JobPool {
    rt: Runtime,
    slots: Vec<Option<Entry>>,
    ready: VecDeque<usize>,
    next: VecDeque<usize>,
    due: Vec<(JobId, TimerId)>,
    len: usize,
    polls: u64,
}

impl fmt::Debug for JobPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobPool").field("jobs", &self.len).field("polls", &self.polls).finish()
    }
}

impl Default for JobPool {
    fn default() -> Self {
        JobPool::new()
    }
}

impl JobPool {
    /// A pool without I/O, for tests of jobs and of the pool itself.
    pub fn new() -> JobPool {
        JobPool::build(None, None, None, Clock::System)
    }

    /// A pool without I/O whose time is `clock` (a
    /// [`VirtualClock`](super::VirtualClock) in tests that jump in time).
    pub fn with_clock(clock: Clock) -> JobPool {
        JobPool::build(None, None, None, clock)
    }

    pub(crate) fn build(
        registry: Option<mio::Registry>,
        helpers: Option<Arc<HelperPool>>,
        remote: Option<RemoteLink>,
        clock: Clock,
    ) -> JobPool {
        let state = State {
            generations: Vec::new(),
            taken: Vec::new(),
            free_slots: Vec::new(),
            added: Vec::new(),
            stops: Vec::new(),
            mail: Vec::new(),
            wakes: Vec::new(),
            timers: Timers::default(),
            tokens: Vec::new(),
            free_tokens: Vec::new(),
            next_task: 0,
        };
        let inner = Inner {
            state: RefCell::new(state),
            clock,
            tasks_in_flight: Arc::new(AtomicUsize::new(0)),
            registry,
            helpers,
            remote,
        };
        JobPool {
            rt: Runtime { inner: Rc::new(inner) },
            slots: Vec::new(),
            ready: VecDeque::new(),
            next: VecDeque::new(),
            due: Vec::new(),
            len: 0,
            polls: 0,
        }
    }

    /// The runtime handle of this pool.
    pub fn runtime(&self) -> &Runtime {
        &self.rt
    }

    /// Adds a job (shorthand for `runtime().spawn`).
    pub fn spawn(&self, job: impl Job) -> JobId {
        self.rt.spawn(job)
    }

    /// Number of jobs in the pool, not counting those added since the last
    /// pass.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the pool has no job, pending additions included.
    pub fn is_empty(&self) -> bool {
        self.len == 0 && self.rt.state().added.is_empty()
    }

    /// Total number of `poll` calls made so far.
    pub fn polls(&self) -> u64 {
        self.polls
    }

    /// Number of armed timers.
    pub fn timers(&self) -> usize {
        self.rt.state().timers.len()
    }

    /// Names of the live jobs, for the console and logs.
    pub fn job_names(&self) -> Vec<(JobId, String, bool)> {
        self.slots.iter().flatten().map(|e| (e.id, e.job.name(), e.job.is_alive())).collect()
    }

    /// Whether the job is still in the pool and reports itself alive.
    pub fn is_alive(&self, id: JobId) -> bool {
        self.entry(id).is_some_and(|e| e.job.is_alive())
    }

    /// Asks every job to stop (used at shutdown).
    pub fn stop_all(&mut self) {
        self.apply();
        for i in 0..self.slots.len() {
            if let Some(e) = self.slots[i].as_ref() {
                let id = e.id;
                self.rt.state().stops.push(id);
            }
        }
        self.apply();
    }

    /// Drops every job at once, without waiting for them to finish (the end of
    /// a shutdown whose deadline passed). Returns the names of the dropped jobs.
    pub fn abort_all(&mut self) -> Vec<String> {
        self.apply();
        let mut names = Vec::new();
        for i in 0..self.slots.len() {
            if let Some(e) = self.slots[i].take() {
                names.push(e.job.name());
                self.free_slot(e.id);
            }
        }
        self.ready.clear();
        self.len = 0;
        names
    }

    /// How long the worker may sleep: zero when a job is ready or requests are
    /// waiting, else until the earliest timer (`None`: no timer, sleep until an
    /// event).
    pub fn poll_timeout(&mut self, now: Instant) -> Option<Duration> {
        if !self.ready.is_empty() {
            return Some(Duration::ZERO);
        }
        let mut st = self.rt.state();
        if st.has_requests() {
            return Some(Duration::ZERO);
        }
        st.timers.next_deadline().map(|d| d.saturating_duration_since(now))
    }

    /// The earliest armed timer's deadline, if any.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.rt.state().timers.next_deadline()
    }

    /// Whether a pass would poll a job now: one is ready, or requests
    /// (additions, stops, mail, wakes) wait to be applied. Timers aside.
    pub fn is_busy(&self) -> bool {
        !self.ready.is_empty() || self.rt.state().has_requests()
    }

    /// Routes an I/O event to the job that owns its token.
    pub(crate) fn dispatch_io(&mut self, ev: IoEvent) {
        let owner = self.rt.state().tokens.get(ev.token.0).copied().filter(|&o| o != FREE_TOKEN);
        if let Some(id) = owner.map(JobId) {
            if let Some(e) = self.entry_mut(id) {
                e.wake.io.push(ev);
                let i = id.index();
                self.make_ready(i);
            }
        }
    }

    /// Delivers a message from another thread.
    pub(crate) fn deliver(&mut self, to: JobId, msg: Message) {
        self.rt.send_boxed(to, msg);
    }

    /// One pass: apply requests, fire timers, poll every ready job once.
    /// Returns the number of jobs polled.
    pub fn run_pass(&mut self, now: Instant) -> usize {
        self.apply();
        self.fire_timers(now);
        std::mem::swap(&mut self.ready, &mut self.next);
        let mut polled = 0;
        while let Some(i) = self.next.pop_front() {
            polled += 1;
            let Some(entry) = self.slots[i].as_mut() else { continue };
            entry.queued = false;
            let mut cx =
                Context { rt: &self.rt, id: entry.id, wake: &mut entry.wake, repoll: false, now };
            // A panic in one job is a bug in that job; it must not take the
            // worker, and every other hub and transfer, down with it.
            let step = match catch_unwind(AssertUnwindSafe(|| entry.job.poll(&mut cx))) {
                Ok(step) => step,
                Err(panic) => {
                    log::error!(
                        "job {} ({}) panicked and was dropped: {}",
                        entry.id,
                        entry.job.name(),
                        panic_message(&*panic)
                    );
                    Step::Done
                }
            };
            let repoll = cx.repoll;
            entry.wake.clear_fired();
            self.polls += 1;
            match step {
                Step::Done => {
                    if let Some(e) = self.slots[i].take() {
                        self.len -= 1;
                        self.free_slot(e.id);
                        // Dropped here: the job's sockets close and its
                        // tokens are released by their own Drop.
                        drop(e);
                    }
                }
                Step::Pending => {
                    if repoll {
                        entry.queued = true;
                        self.ready.push_back(i);
                    }
                }
            }
        }
        self.apply();
        polled
    }

    /// Runs passes until no job is ready and no request is waiting (timers
    /// aside), at most `max_passes`. Handy for tests of a bare pool.
    pub fn run_until_idle(&mut self, max_passes: usize) -> usize {
        let mut n = 0;
        while n < max_passes {
            let now = self.rt.now();
            if self.poll_timeout(now) != Some(Duration::ZERO) {
                break;
            }
            self.run_pass(now);
            n += 1;
        }
        n
    }

    fn fire_timers(&mut self, now: Instant) {
        let mut due = std::mem::take(&mut self.due);
        self.rt.state().timers.pop_due(now, &mut due);
        for &(owner, timer) in &due {
            match self.entry_mut(owner) {
                Some(e) => {
                    e.wake.timers.push(timer);
                    self.make_ready(owner.index());
                }
                None => {
                    self.rt.state().timers.cancel(timer);
                }
            }
        }
        due.clear();
        self.due = due;
    }

    /// Applies the requests made through [`Runtime`] since the last call.
    fn apply(&mut self) {
        loop {
            let (added, stops, mail, wakes) = {
                let mut st = self.rt.state();
                if !st.has_requests() {
                    return;
                }
                (
                    std::mem::take(&mut st.added),
                    std::mem::take(&mut st.stops),
                    std::mem::take(&mut st.mail),
                    std::mem::take(&mut st.wakes),
                )
            };
            for (id, job) in added {
                let i = id.index();
                if self.slots.len() <= i {
                    self.slots.resize_with(i + 1, || None);
                }
                self.slots[i] =
                    Some(Entry { id, job, queued: false, stopping: false, wake: Wake::default() });
                self.len += 1;
                self.make_ready(i);
            }
            for id in stops {
                // `stop` runs outside of any borrow of the state, so a job may
                // use its Runtime handle from inside it.
                if let Some(e) = self.entry_mut(id) {
                    if !e.stopping {
                        e.stopping = true;
                        e.job.stop();
                    }
                    self.make_ready(id.index());
                }
            }
            for (id, msg) in mail {
                if let Some(e) = self.entry_mut(id) {
                    e.wake.mail.push_back(msg);
                    self.make_ready(id.index());
                }
            }
            for id in wakes {
                if self.entry(id).is_some() {
                    self.make_ready(id.index());
                }
            }
        }
    }

    fn make_ready(&mut self, i: usize) {
        if let Some(e) = self.slots[i].as_mut() {
            if !e.queued {
                e.queued = true;
                self.ready.push_back(i);
            }
        }
    }

    fn free_slot(&mut self, id: JobId) {
        let mut st = self.rt.state();
        let i = id.index();
        st.generations[i] = st.generations[i].wrapping_add(1);
        st.taken[i] = false;
        st.free_slots.push(i as u32);
    }

    fn entry(&self, id: JobId) -> Option<&Entry> {
        self.slots.get(id.index())?.as_ref().filter(|e| e.id == id)
    }

    fn entry_mut(&mut self, id: JobId) -> Option<&mut Entry> {
        self.slots.get_mut(id.index())?.as_mut().filter(|e| e.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::FnJob;
    use std::cell::Cell;

    /// Counts polls; after `stop` needs `linger` more polls to finish.
    struct Lingering {
        polls: Rc<Cell<u32>>,
        stopped: bool,
        linger: u32,
        dropped: Rc<Cell<bool>>,
    }

    impl Job for Lingering {
        fn poll(&mut self, cx: &mut Context<'_>) -> Step {
            self.polls.set(self.polls.get() + 1);
            if self.stopped {
                if self.linger == 0 {
                    return Step::Done;
                }
                self.linger -= 1;
                cx.repoll();
            }
            Step::Pending
        }
        fn is_alive(&self) -> bool {
            !self.stopped
        }
        fn stop(&mut self) {
            self.stopped = true;
        }
    }

    impl Drop for Lingering {
        fn drop(&mut self) {
            self.dropped.set(true);
        }
    }

    fn lingering(linger: u32) -> (Lingering, Rc<Cell<u32>>, Rc<Cell<bool>>) {
        let polls = Rc::new(Cell::new(0));
        let dropped = Rc::new(Cell::new(false));
        let job =
            Lingering { polls: polls.clone(), stopped: false, linger, dropped: dropped.clone() };
        (job, polls, dropped)
    }

    #[test]
    fn stop_then_poll_until_finished() {
        let mut pool = JobPool::new();
        let (job, polls, dropped) = lingering(3);
        let id = pool.spawn(job);
        pool.run_pass(Instant::now());
        assert_eq!(polls.get(), 1, "a new job is polled once");
        pool.run_until_idle(10);
        assert_eq!(polls.get(), 1, "an idle job is not polled again");
        assert!(pool.is_alive(id));

        pool.runtime().stop(id);
        pool.run_until_idle(100);
        // One poll right after stop, then three lingering polls, the last
        // returning Done.
        assert_eq!(polls.get(), 1 + 4);
        assert!(dropped.get(), "a finished job is dropped");
        assert!(!pool.runtime().is_live(id));
        assert_eq!(pool.len(), 0);
        assert!(pool.is_empty());
    }

    #[test]
    fn finished_jobs_are_dropped_and_their_ids_die() {
        let mut pool = JobPool::new();
        let dropped = Rc::new(Cell::new(false));
        let flag = dropped.clone();
        struct Once(Rc<Cell<bool>>);
        impl Drop for Once {
            fn drop(&mut self) {
                self.0.set(true);
            }
        }
        let guard = Once(flag);
        let id = pool.spawn(FnJob::new("once", move |_| {
            let _keep = &guard;
            Step::Done
        }));
        pool.run_pass(Instant::now());
        assert!(dropped.get());
        assert_eq!(pool.len(), 0);
        assert!(!pool.runtime().send(id, 1u8), "a message to a dead job is refused");
        // The slot is reused by the next job, under a new generation.
        let next = pool.spawn(FnJob::new("next", |_| Step::Pending));
        assert_eq!(next.index(), id.index());
        assert_ne!(next, id);
        pool.run_pass(Instant::now());
        assert!(!pool.runtime().send(id, 1u8), "the stale id never reaches the new tenant");
        assert!(pool.runtime().send(next, 1u8));
    }

    #[test]
    fn jobs_added_during_a_pass_run_in_the_next() {
        let mut pool = JobPool::new();
        let child_polls = Rc::new(Cell::new(0));
        let counter = child_polls.clone();
        let mut spawned = false;
        pool.spawn(FnJob::new("parent", move |cx| {
            if !spawned {
                spawned = true;
                let counter = counter.clone();
                cx.spawn(FnJob::new("child", move |_| {
                    counter.set(counter.get() + 1);
                    Step::Pending
                }));
            }
            Step::Pending
        }));
        pool.run_pass(Instant::now());
        assert_eq!(child_polls.get(), 0, "not polled in the pass that added it");
        assert_eq!(pool.len(), 2, "but added between passes");
        pool.run_pass(Instant::now());
        assert_eq!(child_polls.get(), 1);
    }

    #[test]
    fn a_busy_job_cannot_starve_the_others() {
        let mut pool = JobPool::new();
        let busy_polls = Rc::new(Cell::new(0u32));
        let b = busy_polls.clone();
        pool.spawn(FnJob::new("busy", move |cx| {
            b.set(b.get() + 1);
            cx.repoll(); // always has work
            Step::Pending
        }));
        let other_polls = Rc::new(Cell::new(0u32));
        let o = other_polls.clone();
        pool.spawn(FnJob::new("also-busy", move |cx| {
            o.set(o.get() + 1);
            cx.repoll();
            Step::Pending
        }));
        let fired = Rc::new(Cell::new(false));
        let f = fired.clone();
        let mut timer = None;
        pool.spawn(FnJob::new("timer", move |cx| {
            match timer {
                None => timer = Some(cx.after(Duration::from_millis(5))),
                Some(t) if cx.fired(t) => f.set(true),
                Some(_) => {}
            }
            Step::Pending
        }));
        let start = Instant::now();
        let mut passes = 0;
        while !fired.get() && passes < 1_000_000 {
            pool.run_pass(Instant::now());
            passes += 1;
            // Both busy jobs advance together: one poll each per pass.
            assert_eq!(busy_polls.get(), other_polls.get());
        }
        assert!(fired.get(), "the timer job ran despite two always-busy jobs");
        assert!(start.elapsed() < Duration::from_secs(5));
        assert_eq!(busy_polls.get(), passes);
    }

    #[test]
    fn messages_wake_their_job_in_order() {
        let mut pool = JobPool::new();
        let got = Rc::new(RefCell::new(Vec::new()));
        let g = got.clone();
        let id = pool.spawn(FnJob::new("inbox", move |cx| {
            while let Some(m) = cx.recv() {
                if let Ok(n) = m.downcast::<u32>() {
                    g.borrow_mut().push(*n);
                }
            }
            Step::Pending
        }));
        pool.run_until_idle(10);
        for n in 1..=3u32 {
            assert!(pool.runtime().send(id, n));
        }
        assert!(pool.runtime().send(id, "ignored: not a u32"));
        pool.run_until_idle(10);
        assert_eq!(*got.borrow(), vec![1, 2, 3]);
    }

    #[test]
    fn timers_die_with_their_job() {
        let mut pool = JobPool::new();
        let id = pool.spawn(FnJob::new("ticker", |cx| {
            cx.every(Duration::from_millis(1));
            Step::Pending
        }));
        pool.run_pass(Instant::now());
        assert_eq!(pool.timers(), 1);
        pool.runtime().stop(id);
        pool.run_until_idle(10);
        assert_eq!(pool.len(), 0);
        // The orphan timer is dropped the first time it comes due.
        pool.run_pass(Instant::now() + Duration::from_millis(5));
        assert_eq!(pool.timers(), 0);
    }

    #[test]
    fn a_virtual_clock_fires_timers_in_order_without_waiting() {
        let clock = crate::runtime::VirtualClock::new();
        let mut pool = JobPool::with_clock(Clock::Virtual(clock.clone()));
        let fired = Rc::new(RefCell::new(Vec::new()));
        let f = fired.clone();
        let mut armed = false;
        pool.spawn(FnJob::new("sleeper", move |cx| {
            if !armed {
                armed = true;
                cx.after(Duration::from_secs(3600));
                cx.after(Duration::from_secs(60));
            }
            for _ in cx.fired_timers() {
                f.borrow_mut().push(cx.now());
            }
            Step::Pending
        }));
        let t0 = pool.runtime().now();
        pool.run_until_idle(10);
        assert!(fired.borrow().is_empty());
        clock.advance(Duration::from_secs(61));
        pool.run_until_idle(10);
        assert_eq!(*fired.borrow(), vec![t0 + Duration::from_secs(61)]);
        clock.advance(Duration::from_secs(3600));
        pool.run_until_idle(10);
        assert_eq!(fired.borrow().len(), 2);
        assert_eq!(pool.poll_timeout(pool.runtime().now()), None);
    }

    #[test]
    fn a_panicking_job_is_dropped_and_the_pool_goes_on() {
        let mut pool = JobPool::new();
        pool.spawn(FnJob::new("bad", |_| panic!("bug in a job")));
        let ok = Rc::new(Cell::new(0));
        let o = ok.clone();
        pool.spawn(FnJob::new("good", move |_| {
            o.set(o.get() + 1);
            Step::Pending
        }));
        pool.run_pass(Instant::now());
        assert_eq!(pool.len(), 1);
        assert_eq!(ok.get(), 1);
    }

    #[test]
    fn helper_results_come_back_as_messages() {
        let mut pool = JobPool::new();
        let got = Rc::new(Cell::new(0u64));
        let g = got.clone();
        let mut task = None;
        pool.spawn(FnJob::new("submitter", move |cx| {
            if task.is_none() {
                task = Some(cx.submit(|| (1..=10u64).product::<u64>()));
            }
            while let Some(m) = cx.recv() {
                if let Ok(done) = m.downcast::<TaskDone>() {
                    assert_eq!(Some(done.task), task);
                    g.set(*done.result.downcast::<u64>().unwrap());
                    return Step::Done;
                }
            }
            Step::Pending
        }));
        pool.run_until_idle(10);
        assert_eq!(got.get(), 3_628_800);
        assert!(pool.is_empty());
    }
}
