//! Helpers of the transfer benchmarks (`benches/upload.rs`,
//! `benches/download.rs`): a client's hashed file, a job that only gives a
//! job id (to name as the hub of a connection request), the calling
//! thread's CPU time.

use std::thread;
use std::time::{Duration, Instant};

use dclua::client::Client;
use dclua::proto::tth::Tth;
use dclua::runtime::{Context, Job, Step, WorkerHandle};

/// Waits until the worker's client has hashed `big.bin` and written its
/// list; the file's TTH.
pub fn wait_hashed(worker: &WorkerHandle) -> Tth {
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        let tth = worker
            .call(|_| {
                let client = Client::current()?;
                let share = client.share()?;
                share.file_list_path()?;
                let q = dclua::search::Query::words("big.bin");
                share.find(&q, 1).first().and_then(|h| h.tth)
            })
            .expect("asking the worker");
        if let Some(t) = tth {
            return t;
        }
        assert!(Instant::now() < deadline, "hashing took too long");
        thread::sleep(Duration::from_millis(100));
    }
}

/// A job that only gives a benchmark a job id to name as the hub.
pub struct Idle;

impl Job for Idle {
    fn poll(&mut self, _: &mut Context<'_>) -> Step {
        Step::Pending
    }
    fn is_alive(&self) -> bool {
        true
    }
    fn stop(&mut self) {}
}

/// CPU seconds of the calling thread.
pub fn thread_cpu() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}
