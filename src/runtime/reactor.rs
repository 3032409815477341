//! The [`Reactor`]: one turn of the event loop — wait in `mio::Poll`, route
//! readiness to jobs, drain the inbox from other threads, run one pass of
//! the [`JobPool`].
//!
//! The [`Worker`](super::Worker) runs turns in a loop on its own thread; the
//! bot test kit runs them on the caller's thread, so that it decides when
//! the pool runs and when a virtual clock moves ("settled", then "advance").
//!
//! Owns: the poll, its events buffer, the inbox's receiving end, the pool.
//! Must not: loop, sleep beyond the timeout it is given, or know shutdown
//! policy (the worker's) or any protocol.

use std::io;
use std::sync::mpsc::{channel, Receiver};
use std::sync::Arc;
use std::time::Duration;

use mio::{Events, Poll, Token};

use super::clock::Clock;
use super::handle::WorkerHandle;
use super::helpers::HelperPool;
use super::pool::{IoEvent, JobPool, Remote, RemoteLink};

/// The token of the poll's waker; job tokens are slab indices far below it.
const WAKER: Token = Token(usize::MAX);

/// What one [`Reactor::turn`] saw and did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Turn {
    /// Readiness events routed to jobs.
    pub events: usize,
    /// Messages and commands taken from the inbox.
    pub inbox: usize,
    /// Jobs polled by the pass.
    pub polled: usize,
    /// Someone asked the worker to shut down.
    pub shutdown: bool,
}

impl Turn {
    /// Nothing happened: no readiness, nothing from other threads, no job ran.
    pub fn is_quiet(&self) -> bool {
        self.events == 0 && self.inbox == 0 && self.polled == 0
    }
}

/// A pool with I/O, and the loop's single step; see the module docs.
pub struct Reactor {
    poll: Poll,
    events: Events,
    rx: Receiver<Remote>,
    link: RemoteLink,
    pool: JobPool,
}

impl std::fmt::Debug for Reactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reactor").field("pool", &self.pool).finish_non_exhaustive()
    }
}

impl Reactor {
    /// A pool with I/O on `clock`, with `helpers` for CPU-heavy tasks and
    /// room for `events_capacity` readiness events per turn.
    pub fn new(
        clock: Clock,
        helpers: Arc<HelperPool>,
        events_capacity: usize,
    ) -> io::Result<Reactor> {
        let poll = Poll::new()?;
        let waker = Arc::new(mio::Waker::new(poll.registry(), WAKER)?);
        let (tx, rx) = channel();
        let link = RemoteLink { tx, waker };
        let registry = poll.registry().try_clone()?;
        let pool = JobPool::build(Some(registry), Some(helpers), Some(link.clone()), clock);
        let events = Events::with_capacity(events_capacity.max(16));
        Ok(Reactor { poll, events, rx, link, pool })
    }

    /// The pool.
    pub fn pool(&mut self) -> &mut JobPool {
        &mut self.pool
    }

    /// A handle for other threads (and for services that hand one to their
    /// threads, as the share does) to post to this reactor's pool. Its
    /// `join` returns at once: whoever runs the turns owns the thread.
    pub fn handle(&self) -> WorkerHandle {
        WorkerHandle::new(self.link.clone())
    }

    /// Helper tasks whose results have not reached the inbox yet.
    pub fn tasks_in_flight(&self) -> usize {
        self.pool.runtime().tasks_in_flight()
    }

    /// One turn: waits for readiness up to `timeout` (`None`: until
    /// something happens), routes it, drains the inbox, runs one pass.
    pub fn turn(&mut self, timeout: Option<Duration>) -> io::Result<Turn> {
        let mut turn = Turn::default();
        if let Err(e) = self.poll.poll(&mut self.events, timeout) {
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        for ev in self.events.iter() {
            if ev.token() == WAKER {
                continue; // the inbox is drained below in any case
            }
            turn.events += 1;
            self.pool.dispatch_io(IoEvent::from_mio(ev));
        }
        // Drain the inbox on every turn: cheap when empty, and it never misses
        // a message whose wake-up was coalesced with an I/O event.
        while let Ok(msg) = self.rx.try_recv() {
            turn.inbox += 1;
            match msg {
                Remote::Deliver(to, msg) => self.pool.deliver(to, msg),
                Remote::Command(f) => f(&mut self.pool),
                Remote::Shutdown => turn.shutdown = true,
            }
        }
        let now = self.pool.runtime().now();
        turn.polled = self.pool.run_pass(now);
        Ok(turn)
    }
}
