//! The connection layer over 127.0.0.1: what a failed dial says.

use std::net::{SocketAddr, TcpListener};
use std::sync::mpsc::{channel, Sender};
use std::time::Duration;

use dclua::net::{ConnError, Connection, Framing};
use dclua::runtime::{Context, Job, Step, Worker, WorkerConfig};

/// Dials `addr` and reports the first error (or that it connected).
struct Dialer {
    addr: SocketAddr,
    conn: Option<Connection>,
    report: Sender<Result<(), String>>,
    done: bool,
}

impl Job for Dialer {
    fn poll(&mut self, cx: &mut Context<'_>) -> Step {
        if self.done {
            return Step::Done;
        }
        if self.conn.is_none() {
            match Connection::connect(cx.runtime(), cx.id(), self.addr, Framing::adc(1024)) {
                Ok(c) => self.conn = Some(c),
                Err(e) => {
                    let _ = self.report.send(Err(e.to_string()));
                    return Step::Done;
                }
            }
        }
        let conn = self.conn.as_mut().expect("just set");
        conn.absorb(cx);
        match conn.read_frames(16, |_| {}) {
            Err(e @ ConnError::Connect { .. }) => {
                let _ = self.report.send(Err(e.to_string()));
                self.done = true;
                Step::Done
            }
            Err(e) => {
                let _ = self.report.send(Err(format!("not a connect error: {e}")));
                Step::Done
            }
            Ok(_) if conn.is_connected() => {
                let _ = self.report.send(Ok(()));
                Step::Done
            }
            Ok(_) => Step::Pending,
        }
    }

    fn is_alive(&self) -> bool {
        !self.done
    }

    fn stop(&mut self) {
        self.done = true;
    }
}

/// Issue 13, finding 8: a refused connection to 127.0.0.1:PORT used to be
/// reported as "connecting to 0.0.0.0:0" (the socket no longer knows its
/// peer once the connect failed).
#[test]
fn a_refused_connection_names_the_address_dialled() {
    // A port that was just free: nothing listens there now.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let worker = Worker::start(WorkerConfig::default()).unwrap();
    let (tx, rx) = channel();
    worker
        .post(move |pool| {
            pool.runtime().spawn_with(|_| Dialer { addr, conn: None, report: tx, done: false });
        })
        .unwrap();
    let outcome = rx.recv_timeout(Duration::from_secs(10)).expect("the dial ends in time");
    let err = outcome.expect_err("nothing listens there");
    assert_eq!(err, format!("connecting to 127.0.0.1:{port}: Connection refused (os error 111)"));
    worker.shutdown();
}

/// Sends `total` bytes with `write_now` only (the raw path of uploads),
/// flushing at the end of each poll as jobs do, and reports when done.
struct RawSender {
    addr: SocketAddr,
    conn: Option<Connection>,
    left: usize,
    report: Sender<Result<(), String>>,
}

impl Job for RawSender {
    fn poll(&mut self, cx: &mut Context<'_>) -> Step {
        if self.conn.is_none() {
            match Connection::connect(cx.runtime(), cx.id(), self.addr, Framing::Raw) {
                Ok(c) => self.conn = Some(c),
                Err(e) => {
                    let _ = self.report.send(Err(e.to_string()));
                    return Step::Done;
                }
            }
        }
        let conn = self.conn.as_mut().expect("just set");
        conn.absorb(cx);
        let chunk = vec![7u8; 256 * 1024];
        while self.left > 0 {
            match conn.write_now(&chunk[..self.left.min(chunk.len())]) {
                Ok(0) => break,
                Ok(n) => self.left -= n,
                Err(e) => {
                    let _ = self.report.send(Err(e.to_string()));
                    return Step::Done;
                }
            }
        }
        // What every job does at the end of a poll: it must not drop the
        // interest the blocked write needs.
        if let Err(e) = conn.flush() {
            let _ = self.report.send(Err(e.to_string()));
            return Step::Done;
        }
        if self.left == 0 {
            let _ = self.report.send(Ok(()));
            return Step::Done;
        }
        Step::Pending
    }

    fn is_alive(&self) -> bool {
        self.left > 0
    }

    fn stop(&mut self) {}
}

/// A raw sender that fills the socket is woken when the peer drains it
/// (found by the upload benchmark: a flush with nothing queued dropped the
/// write interest, and the upload stalled after the first 4 MiB).
#[test]
fn a_blocked_raw_writer_is_woken_when_the_socket_drains() {
    use std::io::Read;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let total = 64 << 20;
    let worker = Worker::start(WorkerConfig::default()).unwrap();
    let (tx, rx) = channel();
    worker
        .post(move |pool| {
            pool.runtime().spawn(RawSender { addr, conn: None, left: total, report: tx });
        })
        .unwrap();
    let (mut s, _) = listener.accept().unwrap();
    // Let the sender fill the socket buffers and block first.
    std::thread::sleep(Duration::from_millis(300));
    let mut got = 0usize;
    let mut buf = vec![0u8; 1 << 20];
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    while got < total {
        let n = s.read(&mut buf).expect("the sender keeps sending");
        assert!(n > 0, "the sender closed early");
        got += n;
    }
    let outcome = rx.recv_timeout(Duration::from_secs(10)).expect("the sender finishes");
    assert_eq!(outcome, Ok(()));
    worker.shutdown();
}
