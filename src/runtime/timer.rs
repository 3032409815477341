//! Timers: one-shot and repeating deadlines owned by jobs.
//!
//! This module owns the deadline queue and nothing else: it never calls a job.
//! The pool asks it for the earliest deadline (which becomes the worker's poll
//! timeout) and for the timers that are due, and delivers those to their owner
//! jobs as wake reasons.
//!
//! Invariants:
//! - `entries` is the truth; the heap may hold stale items (cancelled timers,
//!   old deadlines of re-armed repeating timers). A heap item counts only while
//!   an entry with the same id and deadline exists.
//! - Every timer has an owner job. A timer whose owner is gone is dropped the
//!   first time it comes due, so a repeating timer never outlives its job.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::{Duration, Instant};

use super::ids::JobId;

/// Identifies a timer; never reused within one pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimerId(u64);

#[derive(Debug)]
struct Entry {
    owner: JobId,
    deadline: Instant,
    period: Option<Duration>,
}

/// The deadline queue of one pool.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<(Instant, u64)>>,
    entries: HashMap<u64, Entry>,
    next_id: u64,
}

impl Timers {
    /// Arms a timer for `owner` at `deadline`, repeating every `period` if
    /// given (a zero period is raised to one millisecond so a repeating timer
    /// can never keep the worker busy by itself).
    pub(crate) fn add(
        &mut self,
        owner: JobId,
        deadline: Instant,
        period: Option<Duration>,
    ) -> TimerId {
        self.next_id += 1;
        let id = self.next_id;
        let period = period.map(|p| p.max(Duration::from_millis(1)));
        self.entries.insert(id, Entry { owner, deadline, period });
        self.heap.push(Reverse((deadline, id)));
        TimerId(id)
    }

    /// Cancels a timer; returns whether it was armed.
    pub(crate) fn cancel(&mut self, id: TimerId) -> bool {
        self.entries.remove(&id.0).is_some()
    }

    /// Whether the timer is still armed.
    pub(crate) fn is_armed(&self, id: TimerId) -> bool {
        self.entries.contains_key(&id.0)
    }

    /// The earliest live deadline, dropping stale heap items on the way.
    pub(crate) fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(Reverse((deadline, id))) = self.heap.peek().copied() {
            match self.entries.get(&id) {
                Some(e) if e.deadline == deadline => return Some(deadline),
                _ => {
                    self.heap.pop();
                }
            }
        }
        None
    }

    /// Pushes `(owner, timer)` for every timer due at `now` onto `due`,
    /// re-arming repeating timers and forgetting one-shot ones.
    pub(crate) fn pop_due(&mut self, now: Instant, due: &mut Vec<(JobId, TimerId)>) {
        while let Some(Reverse((deadline, id))) = self.heap.peek().copied() {
            if deadline > now {
                break;
            }
            self.heap.pop();
            let Some(entry) = self.entries.get_mut(&id) else { continue };
            if entry.deadline != deadline {
                continue; // stale item of a re-armed timer
            }
            due.push((entry.owner, TimerId(id)));
            match entry.period {
                Some(period) => {
                    // Keep the cadence, but never schedule in the past: after a
                    // long stall the timer fires once, not once per missed tick.
                    let mut next = deadline + period;
                    if next <= now {
                        next = now + period;
                    }
                    entry.deadline = next;
                    self.heap.push(Reverse((next, id)));
                }
                None => {
                    self.entries.remove(&id);
                }
            }
        }
    }

    /// Number of armed timers.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(n: u32) -> JobId {
        JobId::new(n, 0)
    }

    #[test]
    fn one_shot_fires_once_in_deadline_order() {
        let mut t = Timers::default();
        let t0 = Instant::now();
        let b = t.add(job(2), t0 + Duration::from_millis(20), None);
        let a = t.add(job(1), t0 + Duration::from_millis(10), None);
        assert_eq!(t.next_deadline(), Some(t0 + Duration::from_millis(10)));
        let mut due = Vec::new();
        t.pop_due(t0 + Duration::from_millis(25), &mut due);
        assert_eq!(due, vec![(job(1), a), (job(2), b)]);
        assert_eq!(t.len(), 0);
        assert_eq!(t.next_deadline(), None);
    }

    #[test]
    fn cancelled_timer_never_fires() {
        let mut t = Timers::default();
        let t0 = Instant::now();
        let a = t.add(job(1), t0, None);
        assert!(t.cancel(a));
        assert!(!t.cancel(a));
        let mut due = Vec::new();
        t.pop_due(t0 + Duration::from_secs(1), &mut due);
        assert!(due.is_empty());
        assert_eq!(t.next_deadline(), None);
    }

    #[test]
    fn repeating_timer_keeps_cadence_and_skips_missed_ticks() {
        let mut t = Timers::default();
        let t0 = Instant::now();
        let p = Duration::from_millis(10);
        let a = t.add(job(1), t0 + p, Some(p));
        let mut due = Vec::new();
        t.pop_due(t0 + p, &mut due);
        assert_eq!(due, vec![(job(1), a)]);
        assert_eq!(t.next_deadline(), Some(t0 + 2 * p));
        // A long stall: fires once, next deadline is in the future.
        due.clear();
        let late = t0 + Duration::from_secs(5);
        t.pop_due(late, &mut due);
        assert_eq!(due.len(), 1);
        assert_eq!(t.next_deadline(), Some(late + p));
        assert!(t.is_armed(a));
    }
}
