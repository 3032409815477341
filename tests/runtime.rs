//! The runtime on 127.0.0.1, through its own types: bulk transfer, frame
//! limits, many connections, timers under load, shutdown.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::loopback::{pattern, BulkReceiver, BulkSender, EchoServer, PingClient};
use dclua::runtime::{Context, FnJob, Job, Step, TimerId, Worker, WorkerConfig, WorkerHandle};

fn worker() -> WorkerHandle {
    Worker::start(WorkerConfig { helper_threads: Some(1), ..Default::default() }).expect("worker")
}

fn loopback_listener() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let addr = l.local_addr().unwrap();
    (l, addr)
}

#[test]
fn two_jobs_transfer_256_mib_and_the_checksum_matches() {
    const TOTAL: u64 = 256 << 20;
    let w = worker();
    let (listener, addr) = loopback_listener();
    let (rx_tx, rx_rx) = channel();
    let (tx_tx, tx_rx) = channel();
    w.spawn(move |_, _| BulkReceiver::new(listener, rx_tx)).unwrap();
    let data = Arc::new(pattern(1 << 20));
    w.spawn(move |_, _| BulkSender::new(addr, data, TOTAL, tx_tx)).unwrap();
    let sent =
        tx_rx.recv_timeout(Duration::from_secs(120)).expect("sender report").expect("sender");
    let got =
        rx_rx.recv_timeout(Duration::from_secs(120)).expect("receiver report").expect("receiver");
    assert_eq!(sent.0, TOTAL);
    assert_eq!(got, sent, "bytes and CRC-32 received == sent");
    w.shutdown_and_join().unwrap();
}

#[test]
fn an_oversized_frame_closes_that_connection_only() {
    const MAX: usize = 64 * 1024;
    let w = worker();
    let (listener, addr) = loopback_listener();
    let (err_tx, err_rx) = channel();
    w.spawn(move |_, _| EchoServer::new(listener, MAX, err_tx)).unwrap();

    // A hostile peer: 10 MB without a delimiter, from a plain thread.
    let hostile = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let junk = vec![b'x'; 10 << 20];
        // The server closes mid-way: a write error is the expected outcome.
        let _ = s.write_all(&junk);
        let mut buf = [0u8; 16];
        // The connection must be closed by the server (EOF or reset), not hang.
        matches!(s.read(&mut buf), Ok(0) | Err(_))
    });

    // Meanwhile, well-behaved clients go on.
    let done = Arc::new(AtomicUsize::new(0));
    let (cerr_tx, cerr_rx) = channel();
    for _ in 0..10 {
        let (done, cerr_tx) = (done.clone(), cerr_tx.clone());
        w.spawn(move |_, _| PingClient::new(addr, 200, done, cerr_tx)).unwrap();
    }
    let err = err_rx.recv_timeout(Duration::from_secs(30)).expect("the server reports the frame");
    assert!(err.contains("longer than 65536 bytes"), "clear error, got: {err}");
    assert!(hostile.join().unwrap(), "the hostile connection was closed");
    let t0 = Instant::now();
    while done.load(Ordering::SeqCst) < 10 && t0.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(cerr_rx.try_recv().ok(), None, "no client failed");
    assert_eq!(done.load(Ordering::SeqCst), 10, "all other connections went on");
    w.shutdown_and_join().unwrap();
}

#[test]
fn a_thousand_concurrent_connections_in_one_worker() {
    const N: usize = 1000;
    let w = worker();
    let (listener, addr) = loopback_listener();
    let (err_tx, err_rx) = channel();
    w.spawn(move |_, _| EchoServer::new(listener, 1024, err_tx)).unwrap();
    let done = Arc::new(AtomicUsize::new(0));
    let (cerr_tx, cerr_rx) = channel();
    let (d, e) = (done.clone(), cerr_tx.clone());
    // All clients are added in one go, so they connect concurrently.
    w.call(move |pool| {
        for _ in 0..N {
            pool.spawn(PingClient::new(addr, 5, d.clone(), e.clone()));
        }
    })
    .unwrap();
    let t0 = Instant::now();
    while done.load(Ordering::SeqCst) < N && t0.elapsed() < Duration::from_secs(60) {
        if let Ok(e) = cerr_rx.try_recv() {
            panic!("a client failed: {e}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(done.load(Ordering::SeqCst), N);
    // The server side held N connection jobs at once at the peak; now the
    // clients closed and every server job saw EOF and finished.
    let t0 = Instant::now();
    loop {
        let jobs = w.call(|pool| pool.len()).unwrap();
        if jobs == 1 || t0.elapsed() > Duration::from_secs(10) {
            assert_eq!(jobs, 1, "only the listener job is left");
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(err_rx.try_recv().is_err());
    w.shutdown_and_join().unwrap();
}

/// Busy work of about `d`.
fn spin(d: Duration) {
    let t0 = Instant::now();
    while t0.elapsed() < d {
        std::hint::spin_loop();
    }
}

#[test]
fn a_timer_fires_within_milliseconds_while_other_jobs_are_busy() {
    let w = worker();
    for _ in 0..3 {
        w.spawn(|_, _| {
            FnJob::new("busy", |cx| {
                spin(Duration::from_micros(500));
                cx.repoll();
                Step::Pending
            })
        })
        .unwrap();
    }
    let (tx, rx) = channel();
    w.spawn(move |_, _| {
        let mut armed: Option<(TimerId, Instant)> = None;
        let mut left = 10;
        FnJob::new("timer", move |cx: &mut Context<'_>| {
            if let Some((t, deadline)) = armed {
                if !cx.fired(t) {
                    return Step::Pending;
                }
                let _ = tx.send(Instant::now().saturating_duration_since(deadline));
                left -= 1;
                if left == 0 {
                    return Step::Done;
                }
            }
            let delay = Duration::from_millis(30);
            armed = Some((cx.after(delay), Instant::now() + delay));
            Step::Pending
        })
    })
    .unwrap();
    let mut late: Vec<Duration> =
        (0..10).map(|_| rx.recv_timeout(Duration::from_secs(10)).expect("timer")).collect();
    late.sort();
    println!("timer lateness with 3 busy jobs (0.5 ms slices): {late:?}");
    // A pass takes about 1.5 ms here; a timer fires in the first pass after
    // its deadline. Generous bounds for a shared, noisy machine.
    assert!(late[5] <= Duration::from_millis(10), "median lateness {:?}", late[5]);
    assert!(late[9] <= Duration::from_millis(100), "worst lateness {:?}", late[9]);
    w.shutdown_and_join().unwrap();
}

struct Lingering {
    after_stop: u32,
    stopped: bool,
    dropped: Arc<AtomicBool>,
}

impl Job for Lingering {
    fn poll(&mut self, cx: &mut Context<'_>) -> Step {
        if self.stopped {
            if self.after_stop == 0 {
                return Step::Done;
            }
            self.after_stop -= 1;
            cx.after(Duration::from_millis(10)); // cleaning up takes a while
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
        self.dropped.store(true, Ordering::SeqCst);
    }
}

#[test]
fn shutdown_lets_jobs_finish_and_is_bounded_in_time() {
    let w = Worker::start(WorkerConfig {
        helper_threads: Some(1),
        shutdown_grace: Duration::from_millis(500),
        ..Default::default()
    })
    .unwrap();
    let polite = Arc::new(AtomicBool::new(false));
    let p = polite.clone();
    w.spawn(move |_, _| Lingering { after_stop: 3, stopped: false, dropped: p }).unwrap();
    let stubborn = Arc::new(AtomicBool::new(false));
    let s = stubborn.clone();
    w.spawn(move |_, _| Lingering { after_stop: u32::MAX, stopped: false, dropped: s }).unwrap();
    let t0 = Instant::now();
    w.shutdown_and_join().unwrap();
    assert!(polite.load(Ordering::SeqCst), "the polite job finished");
    assert!(stubborn.load(Ordering::SeqCst), "the stubborn job was dropped at the deadline");
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert!(!w.is_running());
    assert!(w.call(|p| p.len()).is_err(), "a stopped worker refuses calls");
}

#[test]
fn messages_reach_jobs_from_other_threads() {
    let w = worker();
    let (tx, rx) = channel();
    let id = w
        .spawn(move |_, _| {
            FnJob::new("echo", move |cx| {
                while let Some(m) = cx.recv() {
                    if let Ok(s) = m.downcast::<String>() {
                        let _ = tx.send(format!("got {s}"));
                    }
                }
                Step::Pending
            })
        })
        .unwrap();
    w.send(id, "hello".to_string()).unwrap();
    assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok("got hello".into()));
    w.shutdown_and_join().unwrap();
    assert!(matches!(
        rx.recv_timeout(Duration::from_millis(10)),
        Err(RecvTimeoutError::Disconnected)
    ));
}
