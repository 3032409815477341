//! Jobs that exercise the runtime over 127.0.0.1: a bulk sender and receiver,
//! and a line echo server with its clients. Shared by `tests/runtime.rs` and
//! `benches/runtime.rs`.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;

use dclua::net::{Connection, Framing, Listener};
use dclua::runtime::{Context, Job, Step};

/// Bytes a bulk job moves per poll before yielding to the others.
pub const SLICE: usize = 4 << 20;

/// A deterministic, incompressible pattern of `len` bytes.
pub fn pattern(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Connects to `addr` and sends `total` bytes of `pattern` (cycled), then
/// closes. Reports the CRC-32 of what it sent.
pub struct BulkSender {
    conn: Option<Connection>,
    addr: SocketAddr,
    data: Arc<Vec<u8>>,
    total: u64,
    sent: u64,
    crc: flate2::Crc,
    report: Sender<Result<(u64, u32), String>>,
    stopped: bool,
}

impl BulkSender {
    pub fn new(
        addr: SocketAddr,
        data: Arc<Vec<u8>>,
        total: u64,
        report: Sender<Result<(u64, u32), String>>,
    ) -> BulkSender {
        BulkSender {
            conn: None,
            addr,
            data,
            total,
            sent: 0,
            crc: flate2::Crc::new(),
            report,
            stopped: false,
        }
    }
}

impl Job for BulkSender {
    fn poll(&mut self, cx: &mut Context<'_>) -> Step {
        if self.stopped {
            return Step::Done;
        }
        let conn = match &mut self.conn {
            Some(c) => c,
            None => match Connection::connect(cx.runtime(), cx.id(), self.addr, Framing::Raw) {
                Ok(c) => self.conn.insert(c),
                Err(e) => {
                    let _ = self.report.send(Err(e.to_string()));
                    return Step::Done;
                }
            },
        };
        conn.absorb(cx);
        let mut budget = SLICE;
        while self.sent < self.total && budget > 0 {
            let off = (self.sent % self.data.len() as u64) as usize;
            let left = (self.total - self.sent) as usize;
            let chunk = &self.data[off..self.data.len().min(off + left)];
            match conn.write_now(chunk) {
                Ok(0) => {
                    if conn.is_closed() {
                        let _ = self.report.send(Err("closed while sending".into()));
                        return Step::Done;
                    }
                    return Step::Pending; // wait for writable
                }
                Ok(n) => {
                    self.crc.update(&chunk[..n]);
                    self.sent += n as u64;
                    budget = budget.saturating_sub(n);
                }
                Err(e) => {
                    let _ = self.report.send(Err(format!("sending: {e}")));
                    return Step::Done;
                }
            }
        }
        if self.sent < self.total {
            cx.repoll();
            return Step::Pending;
        }
        conn.close();
        let _ = self.report.send(Ok((self.sent, self.crc.sum())));
        Step::Done
    }
    fn is_alive(&self) -> bool {
        !self.stopped
    }
    fn stop(&mut self) {
        self.stopped = true;
    }
}

/// Accepts one connection on a listener and reads it to the end, reporting
/// bytes received and their CRC-32.
pub struct BulkReceiver {
    std: Option<std::net::TcpListener>,
    listener: Option<Listener>,
    conn: Option<Connection>,
    buf: Vec<u8>,
    received: u64,
    crc: flate2::Crc,
    report: Sender<Result<(u64, u32), String>>,
    stopped: bool,
}

impl BulkReceiver {
    pub fn new(
        std: std::net::TcpListener,
        report: Sender<Result<(u64, u32), String>>,
    ) -> BulkReceiver {
        BulkReceiver {
            std: Some(std),
            listener: None,
            conn: None,
            buf: vec![0; 1 << 20],
            received: 0,
            crc: flate2::Crc::new(),
            report,
            stopped: false,
        }
    }
}

impl Job for BulkReceiver {
    fn poll(&mut self, cx: &mut Context<'_>) -> Step {
        if self.stopped {
            return Step::Done;
        }
        if let Some(std) = self.std.take() {
            match Listener::from_std(cx.runtime(), cx.id(), std) {
                Ok(l) => self.listener = Some(l),
                Err(e) => {
                    let _ = self.report.send(Err(format!("listening: {e}")));
                    return Step::Done;
                }
            }
        }
        if self.conn.is_none() {
            let listener = self.listener.as_mut().expect("listener set above");
            listener.absorb(cx);
            match listener.accept() {
                Ok(Some((stream, _))) => {
                    match Connection::accepted(cx.runtime(), cx.id(), stream, Framing::Raw) {
                        Ok(c) => self.conn = Some(c),
                        Err(e) => {
                            let _ = self.report.send(Err(format!("accepting: {e}")));
                            return Step::Done;
                        }
                    }
                    self.listener = None;
                }
                Ok(None) => return Step::Pending,
                Err(e) => {
                    let _ = self.report.send(Err(format!("accepting: {e}")));
                    return Step::Done;
                }
            }
        }
        let conn = self.conn.as_mut().expect("connection set above");
        conn.absorb(cx);
        let mut budget = SLICE;
        while budget > 0 {
            match conn.read_raw(&mut self.buf) {
                Ok(0) if conn.is_eof() => {
                    let _ = self.report.send(Ok((self.received, self.crc.sum())));
                    return Step::Done;
                }
                Ok(0) => return Step::Pending,
                Ok(n) => {
                    self.crc.update(&self.buf[..n]);
                    self.received += n as u64;
                    budget = budget.saturating_sub(n);
                }
                Err(e) => {
                    let _ = self.report.send(Err(format!("receiving: {e}")));
                    return Step::Done;
                }
            }
        }
        cx.repoll();
        Step::Pending
    }
    fn is_alive(&self) -> bool {
        !self.stopped
    }
    fn stop(&mut self) {
        self.stopped = true;
    }
}

/// Accepts connections and hands each to its own [`EchoConn`] job. Frames are
/// `|`-delimited with the given maximum; errors are reported per connection.
pub struct EchoServer {
    std: Option<std::net::TcpListener>,
    listener: Option<Listener>,
    max_frame: usize,
    errors: Sender<String>,
    stopped: bool,
}

impl EchoServer {
    pub fn new(std: std::net::TcpListener, max_frame: usize, errors: Sender<String>) -> EchoServer {
        EchoServer { std: Some(std), listener: None, max_frame, errors, stopped: false }
    }
}

impl Job for EchoServer {
    fn poll(&mut self, cx: &mut Context<'_>) -> Step {
        if self.stopped {
            return Step::Done;
        }
        if let Some(std) = self.std.take() {
            self.listener =
                Some(Listener::from_std(cx.runtime(), cx.id(), std).expect("listening"));
        }
        let listener = self.listener.as_mut().expect("listener");
        listener.absorb(cx);
        // Accept a bounded batch per poll, then let the others run.
        for _ in 0..256 {
            match listener.accept() {
                Ok(Some((stream, _))) => {
                    let rt = cx.runtime().clone();
                    let framing = Framing::nmdc(self.max_frame);
                    let errors = self.errors.clone();
                    rt.clone().spawn_with(move |id| EchoConn {
                        conn: Connection::accepted(&rt, id, stream, framing).ok(),
                        errors,
                        out: Vec::new(),
                    });
                }
                Ok(None) => return Step::Pending,
                Err(e) => {
                    let _ = self.errors.send(format!("accept: {e}"));
                    return Step::Pending;
                }
            }
        }
        cx.repoll();
        Step::Pending
    }
    fn is_alive(&self) -> bool {
        !self.stopped
    }
    fn stop(&mut self) {
        self.stopped = true;
    }
}

/// Answers every frame `ping X` with `pong X`.
pub struct EchoConn {
    conn: Option<Connection>,
    errors: Sender<String>,
    out: Vec<Vec<u8>>,
}

impl Job for EchoConn {
    fn poll(&mut self, cx: &mut Context<'_>) -> Step {
        let Some(conn) = self.conn.as_mut() else { return Step::Done };
        conn.absorb(cx);
        let out = &mut self.out;
        let status = conn.read_frames(1000, |frame| {
            let mut reply = frame.to_vec();
            if reply.starts_with(b"ping") {
                reply[1] = b'o';
            }
            reply.push(b'|');
            out.push(reply);
        });
        for reply in self.out.drain(..) {
            if conn.send(reply).is_err() {
                break;
            }
        }
        match status {
            Err(e) => {
                let _ = self.errors.send(e.to_string());
                Step::Done
            }
            Ok(s) if s.eof => {
                conn.close();
                Step::Done
            }
            Ok(_) => {
                if conn.has_more() {
                    cx.repoll();
                }
                Step::Pending
            }
        }
    }
    fn is_alive(&self) -> bool {
        self.conn.is_some()
    }
    fn stop(&mut self) {
        if let Some(c) = self.conn.as_mut() {
            c.close();
        }
        self.conn = None;
    }
}

/// Connects, sends `rounds` pings one at a time and waits for each pong; counts
/// itself in `done` when finished, or reports an error.
pub struct PingClient {
    conn: Option<Connection>,
    addr: SocketAddr,
    rounds: u32,
    next: u32,
    waiting: bool,
    done: Arc<AtomicUsize>,
    errors: Sender<String>,
}

impl PingClient {
    pub fn new(
        addr: SocketAddr,
        rounds: u32,
        done: Arc<AtomicUsize>,
        errors: Sender<String>,
    ) -> PingClient {
        PingClient { conn: None, addr, rounds, next: 0, waiting: false, done, errors }
    }
}

impl Job for PingClient {
    fn poll(&mut self, cx: &mut Context<'_>) -> Step {
        if self.conn.is_none() {
            match Connection::connect(cx.runtime(), cx.id(), self.addr, Framing::nmdc(1024)) {
                Ok(c) => self.conn = Some(c),
                Err(e) => {
                    let _ = self.errors.send(e.to_string());
                    return Step::Done;
                }
            }
        }
        let conn = self.conn.as_mut().expect("set above");
        conn.absorb(cx);
        if !self.waiting {
            if let Err(e) = conn.send(format!("ping {}|", self.next)) {
                let _ = self.errors.send(e.to_string());
                return Step::Done;
            }
            self.waiting = true;
        }
        let mut got = Vec::new();
        let status = conn.read_frames(10, |f| got.push(f.to_vec()));
        for frame in got {
            let want = format!("pong {}", self.next);
            if frame != want.as_bytes() {
                let _ = self
                    .errors
                    .send(format!("got {:?}, want {want:?}", String::from_utf8_lossy(&frame)));
                return Step::Done;
            }
            self.next += 1;
            self.waiting = false;
        }
        match status {
            Err(e) => {
                let _ = self.errors.send(e.to_string());
                return Step::Done;
            }
            Ok(s) if s.eof => {
                let _ = self.errors.send("server closed early".into());
                return Step::Done;
            }
            Ok(_) => {}
        }
        if self.next == self.rounds {
            conn.close();
            self.done.fetch_add(1, Ordering::SeqCst);
            return Step::Done;
        }
        if !self.waiting {
            cx.repoll(); // send the next ping in the next pass
        }
        Step::Pending
    }
    fn is_alive(&self) -> bool {
        self.next < self.rounds
    }
    fn stop(&mut self) {
        self.rounds = self.next;
    }
}
