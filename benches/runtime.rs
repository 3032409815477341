//! Runtime benchmark: `cargo bench --bench runtime`.
//!
//! Prints, in one run, figures measured against baselines of the same run:
//! - pool overhead per job poll (ns);
//! - loopback transfer through the runtime next to a plain blocking `std::net`
//!   copy between two threads, and their ratio (target ≥ 0.8);
//! - CPU used by the idle worker holding 1,000 idle connections for 10 s
//!   (target ≈ 0);
//! - user-space heap memory per idle connection (target ≤ 64 bytes beyond the
//!   kernel's).
//!
//! `DCLUA_BENCH_QUICK=1` shortens every phase (for a smoke run).

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc::channel;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::counting::Counting;
use common::loopback::{pattern, BulkReceiver, BulkSender};
use dclua::net::{Connection, Framing, Listener};
use dclua::runtime::{Context, FnJob, Job, JobPool, Step, Worker, WorkerConfig, WorkerHandle};

#[global_allocator]
static GLOBAL: Counting = Counting;

fn quick() -> bool {
    std::env::var_os("DCLUA_BENCH_QUICK").is_some()
}

fn main() {
    println!(
        "dclua runtime benchmark ({} cores)",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    bench_poll_overhead();
    bench_transfer();
    bench_idle();
}

fn bench_poll_overhead() {
    const JOBS: usize = 1000;
    let passes = if quick() { 200 } else { 5000 };
    let mut pool = JobPool::new();
    for _ in 0..JOBS {
        pool.spawn(FnJob::new("busy", |cx| {
            cx.repoll();
            Step::Pending
        }));
    }
    pool.run_pass(Instant::now()); // add them
    let before = pool.polls();
    let t0 = Instant::now();
    for _ in 0..passes {
        pool.run_pass(Instant::now());
    }
    let dt = t0.elapsed();
    let polls = pool.polls() - before;
    // Baseline: calling the same boxed jobs directly, without the pool.
    let mut jobs: Vec<Box<dyn FnMut() -> Step>> =
        (0..JOBS).map(|_| Box::new(|| Step::Pending) as Box<dyn FnMut() -> Step>).collect();
    let t1 = Instant::now();
    let mut n = 0u64;
    for _ in 0..passes {
        for j in jobs.iter_mut() {
            if std::hint::black_box(j()) == Step::Pending {
                n += 1;
            }
        }
    }
    let direct = t1.elapsed();
    println!(
        "pool overhead: {:.1} ns per job poll ({} polls of {} always-ready jobs; a direct dyn call costs {:.1} ns)",
        dt.as_nanos() as f64 / polls as f64,
        polls,
        JOBS,
        direct.as_nanos() as f64 / n as f64
    );
}

fn mib_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / (1 << 20) as f64 / d.as_secs_f64()
}

fn worker() -> WorkerHandle {
    Worker::start(WorkerConfig { helper_threads: Some(1), ..Default::default() }).unwrap()
}

/// Sends `total` bytes of `data` (cycled) to `addr` with blocking writes.
fn blocking_send(addr: SocketAddr, total: u64, data: &[u8]) {
    let mut s = TcpStream::connect(addr).unwrap();
    let mut sent = 0u64;
    while sent < total {
        let off = (sent % data.len() as u64) as usize;
        let n = (data.len() - off).min((total - sent) as usize);
        s.write_all(&data[off..off + n]).unwrap();
        sent += n as u64;
    }
}

/// Accepts one connection and reads it to the end with blocking reads;
/// returns the bytes received.
fn blocking_receive(l: &TcpListener) -> u64 {
    let (mut r, _) = l.accept().unwrap();
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = 0u64;
    loop {
        let n = r.read(&mut buf).unwrap();
        if n == 0 {
            return got;
        }
        got += n as u64;
    }
}

/// Plain blocking copy between two threads: the baseline.
fn std_copy(total: u64, data: &Arc<Vec<u8>>) -> Duration {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let data = data.clone();
    let t0 = Instant::now();
    let sender = std::thread::spawn(move || blocking_send(addr, total, &data));
    let got = blocking_receive(&l);
    sender.join().unwrap();
    assert_eq!(got, total);
    t0.elapsed()
}

/// The runtime receives (one job) from a blocking sender thread.
fn runtime_receive(total: u64, data: &Arc<Vec<u8>>) -> Duration {
    let w = worker();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = channel();
    w.spawn(move |_, _| BulkReceiver::new(l, tx)).unwrap();
    let data = data.clone();
    let t0 = Instant::now();
    let sender = std::thread::spawn(move || blocking_send(addr, total, &data));
    let (got, _) = rx.recv().unwrap().unwrap();
    let dt = t0.elapsed();
    sender.join().unwrap();
    assert_eq!(got, total);
    w.shutdown_and_join().unwrap();
    dt
}

/// The runtime sends (one job) to a blocking receiver thread.
fn runtime_send(total: u64, data: &Arc<Vec<u8>>) -> Duration {
    let w = worker();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = channel();
    let data = data.clone();
    let t0 = Instant::now();
    w.spawn(move |_, _| BulkSender::new(addr, data, total, tx)).unwrap();
    let got = blocking_receive(&l);
    let dt = t0.elapsed();
    rx.recv().unwrap().unwrap();
    assert_eq!(got, total);
    w.shutdown_and_join().unwrap();
    dt
}

/// Both ends are jobs of the same worker (one thread does all the work).
fn runtime_both(total: u64, data: &Arc<Vec<u8>>) -> Duration {
    let w = worker();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let (rtx, rrx) = channel();
    let (stx, srx) = channel();
    w.spawn(move |_, _| BulkReceiver::new(l, rtx)).unwrap();
    let data = data.clone();
    let t0 = Instant::now();
    w.spawn(move |_, _| BulkSender::new(addr, data, total, stx)).unwrap();
    let (got, crc) = rrx.recv().unwrap().unwrap();
    let dt = t0.elapsed();
    assert_eq!((got, crc), srx.recv().unwrap().unwrap());
    w.shutdown_and_join().unwrap();
    dt
}

fn bench_transfer() {
    let total: u64 = if quick() { 256 << 20 } else { 2 << 30 };
    let data = Arc::new(pattern(1 << 20));
    // Interleave the runs so that machine noise hits all of them alike; keep
    // the best of three of each.
    let mut best = [Duration::MAX; 4];
    for _ in 0..3 {
        best[0] = best[0].min(std_copy(total, &data));
        best[1] = best[1].min(runtime_receive(total, &data));
        best[2] = best[2].min(runtime_send(total, &data));
        best[3] = best[3].min(runtime_both(total, &data));
    }
    let base = mib_s(total, best[0]);
    println!("loopback transfer of {} MiB (best of 3):", total >> 20);
    println!("  std::net blocking copy, two threads (baseline): {base:8.0} MiB/s");
    for (name, d) in [
        ("runtime job receiving from a std thread", best[1]),
        ("runtime job sending to a std thread", best[2]),
        ("both ends as jobs of one worker thread", best[3]),
    ] {
        let v = mib_s(total, d);
        println!("  {name:<47} {v:8.0} MiB/s  ratio {:.2}", v / base);
    }
}

/// Holds accepted connections, idle, in one job.
struct IdleHolder {
    std: Option<TcpListener>,
    listener: Option<Listener>,
    conns: Vec<Connection>,
    stopped: bool,
}

impl Job for IdleHolder {
    fn poll(&mut self, cx: &mut Context<'_>) -> Step {
        if self.stopped {
            return Step::Done;
        }
        if let Some(l) = self.std.take() {
            self.listener = Some(Listener::from_std(cx.runtime(), cx.id(), l).unwrap());
        }
        let l = self.listener.as_mut().unwrap();
        l.absorb(cx);
        while let Ok(Some((s, _))) = l.accept() {
            self.conns.push(
                Connection::accepted(cx.runtime(), cx.id(), s, Framing::nmdc(1 << 16)).unwrap(),
            );
        }
        // Drain (nothing is sent) so the connections go idle.
        for c in &mut self.conns {
            c.absorb(cx);
            let _ = c.read_frames(16, |_| {});
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

fn cpu_time() -> Duration {
    // SAFETY: getrusage fills the struct we pass; no other effects.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn connect_many(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    (0..n).map(|_| TcpStream::connect(addr).unwrap()).collect()
}

fn wait_jobs_idle(w: &WorkerHandle) {
    // Two round trips through the inbox: everything accepted has been polled.
    for _ in 0..3 {
        w.call(|_| ()).unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn bench_idle() {
    const N: usize = 1000;
    let secs = if quick() { 2 } else { 10 };

    // Memory: connections held by one job.
    let w = worker();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    w.spawn(move |_, _| IdleHolder {
        std: Some(l),
        listener: None,
        conns: Vec::with_capacity(N),
        stopped: false,
    })
    .unwrap();
    wait_jobs_idle(&w);
    let before = common::counting::live();
    let clients = connect_many(addr, N);
    wait_jobs_idle(&w);
    let held = common::counting::live() - before;
    println!(
        "memory per idle connection held by a job: {:.0} bytes of heap ({} connections; Connection is {} bytes inline)",
        held as f64 / N as f64,
        N,
        std::mem::size_of::<Connection>()
    );

    // CPU: the idle worker with those connections for `secs` seconds.
    let c0 = cpu_time();
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    let used = cpu_time() - c0;
    println!(
        "idle worker with {N} idle connections: {:.3} ms of CPU over {:.1} s ({:.4}% of one core)",
        used.as_secs_f64() * 1000.0,
        t0.elapsed().as_secs_f64(),
        used.as_secs_f64() / t0.elapsed().as_secs_f64() * 100.0
    );
    drop(clients);
    w.shutdown_and_join().unwrap();

    // Memory: each connection its own job (how sessions are built).
    let w = worker();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let (etx, _erx) = channel();
    w.spawn(move |_, _| common::loopback::EchoServer::new(l, 1 << 16, etx)).unwrap();
    wait_jobs_idle(&w);
    let before = common::counting::live();
    let clients = connect_many(addr, N);
    wait_jobs_idle(&w);
    let held = common::counting::live() - before;
    println!(
        "memory per idle connection with one job per connection: {:.0} bytes of heap",
        held as f64 / N as f64
    );
    drop(clients);
    w.shutdown_and_join().unwrap();
}
