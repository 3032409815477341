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
