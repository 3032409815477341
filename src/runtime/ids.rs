//! The ids of the runtime: [`JobId`] for jobs, [`TaskId`] for helper tasks.
//!
//! A leaf: the pool, the timers and the worker all name jobs and tasks, so
//! the ids live below them and import nothing of the runtime.

use std::fmt;

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

/// Identifies a task submitted to the helper threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TaskId(pub u64);
