//! TLS through the runtime on 127.0.0.1: a job-driven TLS client and server
//! (frames, a raw 64 MiB stream, client certificates, close_notify), keyprint
//! checks (expected, wrong, trust on first use and a changed certificate), and
//! `adcs://` against a real uhub with a certificate made by openssl.

mod support;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::time::Duration;

use dclua::address::HubUrl;
use dclua::net::{ConnError, Connection, Framing, Listener};
use dclua::runtime::{Context, Job, Step, Worker, WorkerConfig, WorkerHandle};
use dclua::tls::{
    ClientAuth, Identity, Keyprint, KeyprintError, OnChange, PeerCheck, TlsContext, TlsInfo,
    TlsSession, TrustStore, Verdict, TRUST_FILE_NAME,
};
use support::{ports, TlsCert, Uhub, UhubOptions};

const WAIT: Duration = Duration::from_secs(30);
const MAX_FRAME: usize = 64 * 1024;

fn worker() -> WorkerHandle {
    Worker::start(WorkerConfig { helper_threads: Some(1), ..Default::default() }).expect("worker")
}

fn context(cn: &str) -> TlsContext {
    TlsContext::new(Identity::generate(cn).expect("identity"), TrustStore::in_memory())
        .expect("context")
}

/// A listener on a reserved port below 32768.
fn listener() -> (std::net::TcpListener, SocketAddr, ports::Port) {
    let port = ports::free_port().expect("a free port");
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port.get()));
    let l = std::net::TcpListener::bind(addr).expect("bind 127.0.0.1");
    (l, addr, port)
}

/// A deterministic, incompressible pattern.
fn pattern(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Server side

/// What a server connection saw.
#[derive(Debug, Default)]
struct ServerReport {
    peer_keyprint: Option<Keyprint>,
    frames: usize,
    raw_bytes: u64,
    raw_crc: u32,
    close_notify: bool,
    error: Option<String>,
}

/// Accepts up to `max` connections, each served by its own [`ServerConn`]
/// job; then drops the listener (the port is free again) and finishes.
struct Server {
    std: Option<std::net::TcpListener>,
    listener: Option<Listener>,
    ctx: TlsContext,
    client_auth: ClientAuth,
    max: usize,
    accepted: usize,
    reports: Sender<ServerReport>,
    stopped: bool,
}

impl Server {
    fn spawn(
        w: &WorkerHandle,
        std: std::net::TcpListener,
        ctx: TlsContext,
        client_auth: ClientAuth,
        max: usize,
    ) -> Receiver<ServerReport> {
        let (reports, rx) = channel();
        w.spawn(move |_, _| Server {
            std: Some(std),
            listener: None,
            ctx,
            client_auth,
            max,
            accepted: 0,
            reports,
            stopped: false,
        })
        .expect("spawn the server");
        rx
    }
}

impl Job for Server {
    fn poll(&mut self, cx: &mut Context<'_>) -> Step {
        if self.stopped {
            return Step::Done;
        }
        if let Some(std) = self.std.take() {
            self.listener = Some(Listener::from_std(cx.runtime(), cx.id(), std).expect("listen"));
        }
        let Some(listener) = self.listener.as_mut() else { return Step::Done };
        listener.absorb(cx);
        while self.accepted < self.max {
            match listener.accept() {
                Ok(Some((stream, _))) => {
                    self.accepted += 1;
                    let session = self.ctx.server(self.client_auth).expect("server session");
                    let rt = cx.runtime().clone();
                    let reports = self.reports.clone();
                    rt.clone().spawn_with(move |id| {
                        let conn = Connection::accepted_tls(
                            &rt,
                            id,
                            stream,
                            Framing::adc(MAX_FRAME),
                            session,
                        )
                        .expect("register the accepted stream");
                        ServerConn::new(conn, reports)
                    });
                }
                Ok(None) => return Step::Pending,
                Err(e) => panic!("accept: {e}"),
            }
        }
        Step::Done
    }
    fn is_alive(&self) -> bool {
        !self.stopped
    }
    fn stop(&mut self) {
        self.stopped = true;
    }
}

/// Answers `ping N` with `pong N` and any other frame with itself; after a
/// `raw` frame, reads raw bytes to the end and reports their count and CRC.
struct ServerConn {
    conn: Connection,
    report: ServerReport,
    crc: flate2::Crc,
    buf: Vec<u8>,
    reports: Sender<ServerReport>,
    closing: bool,
}

impl ServerConn {
    fn new(conn: Connection, reports: Sender<ServerReport>) -> ServerConn {
        ServerConn {
            conn,
            report: ServerReport::default(),
            crc: flate2::Crc::new(),
            buf: vec![0; 256 * 1024],
            reports,
            closing: false,
        }
    }

    fn finish(&mut self, error: Option<String>) -> Step {
        let mut report = std::mem::take(&mut self.report);
        report.error = error;
        report.raw_crc = self.crc.sum();
        report.close_notify = self.conn.tls_info().is_some_and(|i| i.close_notify_received);
        report.peer_keyprint = self.conn.peer_keyprint();
        let _ = self.reports.send(report);
        self.conn.close();
        self.closing = true;
        if self.conn.is_closed() {
            Step::Done
        } else {
            Step::Pending
        }
    }

    fn step(&mut self, cx: &mut Context<'_>) -> Result<Option<Step>, ConnError> {
        if self.conn.framing() == Framing::Raw {
            let mut budget = 8 << 20;
            while budget > 0 {
                let n = self.conn.read_raw(&mut self.buf)?;
                if n == 0 {
                    if self.conn.is_eof() {
                        return Ok(Some(self.finish(None)));
                    }
                    return Ok(None);
                }
                self.crc.update(&self.buf[..n]);
                self.report.raw_bytes += n as u64;
                budget -= n.min(budget);
            }
            cx.repoll();
            return Ok(None);
        }
        // One frame per call: the frame that switches to raw mode must be
        // the last one taken from the buffer.
        for _ in 0..256 {
            let mut frame = None;
            let status = self.conn.read_frames(1, |f| frame = Some(f.to_vec()))?;
            let Some(frame) = frame else {
                if status.eof {
                    return Ok(Some(self.finish(None)));
                }
                return Ok(None);
            };
            self.report.frames += 1;
            if frame == b"raw" {
                // Whatever follows, already buffered or not, is raw.
                self.conn.set_framing(Framing::Raw);
                cx.repoll();
                return Ok(None);
            }
            let mut reply = frame;
            if reply.starts_with(b"ping") {
                reply[1] = b'o';
            }
            reply.push(b'\n');
            self.conn.send(reply)?;
        }
        cx.repoll();
        Ok(None)
    }
}

impl Job for ServerConn {
    fn poll(&mut self, cx: &mut Context<'_>) -> Step {
        self.conn.absorb(cx);
        if self.closing {
            return match self.conn.flush() {
                Ok(_) if !self.conn.is_closed() => Step::Pending,
                _ => Step::Done,
            };
        }
        match self.step(cx) {
            Ok(None) => Step::Pending,
            Ok(Some(step)) => step,
            Err(e) => {
                let _ = self.finish(Some(e.to_string()));
                Step::Done
            }
        }
    }
    fn is_alive(&self) -> bool {
        !self.closing
    }
    fn stop(&mut self) {
        self.conn.abort();
        self.closing = true;
    }
}

// ---------------------------------------------------------------------------
// Client side

/// What a client saw: the TLS state at the end and the frames it received.
#[derive(Debug)]
struct ClientReport {
    info: TlsInfo,
    frames: Vec<String>,
    raw_sent: u64,
    raw_crc: u32,
}

/// Connects with TLS, sends `lines` (queued at once, before the handshake),
/// reads replies until one starts with `until`; then optionally sends `raw\n`
/// and a raw stream of `raw_total` bytes, and closes cleanly. With an empty
/// `until`, it goes straight to the raw stream and never reads: the handshake
/// is then driven by the write calls alone.
struct Client {
    addr: SocketAddr,
    session: Option<TlsSession>,
    conn: Option<Connection>,
    lines: Vec<String>,
    until: String,
    frames: Vec<String>,
    raw_total: u64,
    raw: Option<Arc<Vec<u8>>>,
    sent: u64,
    crc: flate2::Crc,
    phase: Phase,
    report: Sender<Result<ClientReport, ConnError>>,
}

#[derive(Debug, PartialEq, Eq)]
enum Phase {
    Lines,
    Raw,
    Closing,
}

impl Client {
    fn spawn(
        w: &WorkerHandle,
        addr: SocketAddr,
        session: TlsSession,
        lines: Vec<String>,
        until: &str,
        raw_total: u64,
    ) -> Receiver<Result<ClientReport, ConnError>> {
        let (report, rx) = channel();
        let until = until.to_string();
        let phase = if until.is_empty() { Phase::Raw } else { Phase::Lines };
        let mut lines = lines;
        if phase == Phase::Raw {
            lines.push("raw".into());
        }
        w.spawn(move |_, _| Client {
            addr,
            session: Some(session),
            conn: None,
            lines,
            until,
            frames: Vec::new(),
            raw_total,
            raw: (raw_total > 0).then(|| Arc::new(pattern(1 << 20))),
            sent: 0,
            crc: flate2::Crc::new(),
            phase,
            report,
        })
        .expect("spawn the client");
        rx
    }

    fn step(&mut self, cx: &mut Context<'_>) -> Result<Option<ClientReport>, ConnError> {
        if let Some(session) = self.session.take() {
            let mut conn = Connection::connect_tls(
                cx.runtime(),
                cx.id(),
                self.addr,
                Framing::adc(MAX_FRAME),
                session,
            )?;
            for line in self.lines.drain(..) {
                conn.send(format!("{line}\n"))?;
            }
            self.conn = Some(conn);
        }
        let Some(conn) = self.conn.as_mut() else { return Ok(None) };
        conn.absorb(cx);
        match self.phase {
            Phase::Lines => {
                let mut got = Vec::new();
                let status = conn.read_frames(256, |f| got.push(f.to_vec()))?;
                for frame in got {
                    let text = String::from_utf8_lossy(&frame).into_owned();
                    let done = text.starts_with(&self.until);
                    self.frames.push(text);
                    if done {
                        if self.raw_total == 0 {
                            conn.close();
                            self.phase = Phase::Closing;
                            return self.closing();
                        }
                        conn.send("raw\n")?;
                        self.phase = Phase::Raw;
                        cx.repoll();
                        return Ok(None);
                    }
                }
                if status.eof {
                    return Err(ConnError::Closed);
                }
                if conn.has_more() {
                    cx.repoll();
                }
                Ok(None)
            }
            Phase::Raw => {
                let data = self.raw.clone().unwrap_or_default();
                let mut budget = 4 << 20;
                while self.sent < self.raw_total && budget > 0 {
                    let off = (self.sent % data.len() as u64) as usize;
                    let left = (self.raw_total - self.sent) as usize;
                    let chunk = &data[off..data.len().min(off + left)];
                    let n = conn.write_now(chunk)?;
                    if n == 0 {
                        return Ok(None); // wait for the socket
                    }
                    self.crc.update(&chunk[..n]);
                    self.sent += n as u64;
                    budget -= n.min(budget);
                }
                if self.sent < self.raw_total {
                    cx.repoll();
                    return Ok(None);
                }
                conn.close();
                self.phase = Phase::Closing;
                self.closing()
            }
            Phase::Closing => {
                conn.flush()?;
                // Drain (and ignore) what the server still sends.
                conn.read_frames(usize::MAX, |_| {})?;
                self.closing()
            }
        }
    }

    fn closing(&mut self) -> Result<Option<ClientReport>, ConnError> {
        let Some(conn) = self.conn.as_ref() else { return Ok(None) };
        if !conn.is_closed() {
            return Ok(None);
        }
        Ok(Some(ClientReport {
            info: conn.tls_info().expect("a TLS connection"),
            frames: std::mem::take(&mut self.frames),
            raw_sent: self.sent,
            raw_crc: self.crc.sum(),
        }))
    }
}

impl Job for Client {
    fn poll(&mut self, cx: &mut Context<'_>) -> Step {
        match self.step(cx) {
            Ok(None) => Step::Pending,
            Ok(Some(report)) => {
                let _ = self.report.send(Ok(report));
                Step::Done
            }
            Err(e) => {
                let _ = self.report.send(Err(e));
                Step::Done
            }
        }
    }
    fn is_alive(&self) -> bool {
        true
    }
    fn stop(&mut self) {
        if let Some(c) = self.conn.as_mut() {
            c.abort();
        }
        self.conn = None;
        self.session = None;
    }
}

fn expect_report<T>(rx: &Receiver<T>, what: &str) -> T {
    rx.recv_timeout(WAIT).unwrap_or_else(|e| panic!("no report from {what}: {e}"))
}

/// One echo exchange as a client with `check`; the server presents `server`.
fn exchange(
    w: &WorkerHandle,
    addr: SocketAddr,
    client: &TlsContext,
    check: PeerCheck,
) -> Result<ClientReport, ConnError> {
    let session = client.client(check).expect("client session");
    let rx = Client::spawn(w, addr, session, vec!["hello".into()], "hello", 0);
    expect_report(&rx, "the client")
}

fn check(expected: Option<Keyprint>, trust_key: Option<&str>, on_change: OnChange) -> PeerCheck {
    PeerCheck {
        server_name: "127.0.0.1".into(),
        expected,
        trust_key: trust_key.map(str::to_string),
        on_change,
    }
}

// ---------------------------------------------------------------------------
// Tests

#[test]
fn frames_and_a_64_mib_raw_stream_with_client_certificates() {
    const PINGS: usize = 1000;
    const RAW: u64 = 64 << 20;
    let w = worker();
    let (l, addr, _port) = listener();
    let server_ctx = context("server");
    let client_ctx = context("KMDKLOT3LKRQWO2X5IJL3GN7XQPXGP2PFKUUIQQ");
    let reports = Server::spawn(&w, l, server_ctx.clone(), ClientAuth::Require, 1);

    let session = client_ctx
        .client(check(Some(*server_ctx.our_keyprint()), None, OnChange::Refuse))
        .expect("client session");
    let lines = (0..PINGS).map(|i| format!("ping {i}")).collect();
    let rx = Client::spawn(&w, addr, session, lines, &format!("pong {}", PINGS - 1), RAW);
    let client = expect_report(&rx, "the client").expect("the client succeeds");
    let server = expect_report(&reports, "the server");
    assert_eq!(server.error, None);

    // Frames: every ping answered, in order.
    let want: Vec<String> = (0..PINGS).map(|i| format!("pong {i}")).collect();
    assert_eq!(client.frames, want);
    assert_eq!(server.frames, PINGS + 1, "the pings and the raw switch");

    // The raw stream arrived whole and unchanged, then a clean close.
    assert_eq!(client.raw_sent, RAW);
    assert_eq!((server.raw_bytes, server.raw_crc), (RAW, client.raw_crc));
    assert!(server.close_notify, "the client ended with a close_notify");

    // Each side saw the other's certificate: the client presented its own.
    assert_eq!(server.peer_keyprint, Some(*client_ctx.our_keyprint()));
    assert_eq!(client.info.peer_keyprint, Some(*server_ctx.our_keyprint()));
    assert_eq!(client.info.verdict, Some(Verdict::Expected));
    assert!(client.info.established);
    assert_eq!(client.info.version.as_deref(), Some("TLSv1_3"));
    w.shutdown_and_join().unwrap();
}

#[test]
fn a_writer_that_never_reads_completes_the_handshake() {
    const RAW: u64 = 8 << 20;
    let w = worker();
    let (l, addr, _port) = listener();
    let server_ctx = context("server");
    let reports = Server::spawn(&w, l, server_ctx.clone(), ClientAuth::Require, 1);
    let session = context("client")
        .client(check(Some(*server_ctx.our_keyprint()), None, OnChange::Refuse))
        .unwrap();
    let rx = Client::spawn(&w, addr, session, Vec::new(), "", RAW);
    let client = expect_report(&rx, "the client").expect("the client succeeds");
    let server = expect_report(&reports, "the server");
    assert_eq!(server.error, None);
    assert_eq!((server.raw_bytes, server.raw_crc), (RAW, client.raw_crc));
    assert_eq!(client.raw_sent, RAW);
    assert!(server.close_notify);
    w.shutdown_and_join().unwrap();
}

/// A plain TCP peer on a thread: it sends `greeting` (if any) and closes.
fn plain_peer(greeting: &'static [u8]) -> SocketAddr {
    let (l, addr, port) = listener();
    std::thread::spawn(move || {
        let _port = port;
        if let Ok((mut s, _)) = l.accept() {
            use std::io::{Read, Write};
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = s.write_all(greeting);
            let mut buf = [0u8; 512];
            // Read the ClientHello, then close.
            let _ = s.read(&mut buf);
        }
    });
    addr
}

#[test]
fn a_peer_that_does_not_speak_tls_fails_the_handshake_clearly() {
    let w = worker();
    let ctx = context("client");
    let cases: [(&'static [u8], &str); 2] = [
        (b"ISUP ADBASE ADTIGR\nISID AAAB\n", "the peer does not seem to speak TLS"),
        (b"", "127.0.0.1 closed the connection during the TLS handshake"),
    ];
    for (greeting, want) in cases {
        let addr = plain_peer(greeting);
        let err = exchange(&w, addr, &ctx, check(None, None, OnChange::Refuse))
            .expect_err("no TLS, no connection");
        let text = err.to_string();
        assert!(text.contains(want), "{text}");
    }
    w.shutdown_and_join().unwrap();
}

#[test]
fn the_right_keyprint_connects_and_a_wrong_one_is_refused() {
    let w = worker();
    let (l, addr, _port) = listener();
    let server_ctx = context("server");
    let client_ctx = context("client");
    let reports = Server::spawn(&w, l, server_ctx.clone(), ClientAuth::Request, 3);
    let right = *server_ctx.our_keyprint();
    let wrong = Keyprint::of_der(b"not the server's certificate");

    let ok = exchange(&w, addr, &client_ctx, check(Some(right), None, OnChange::Refuse))
        .expect("the right keyprint connects");
    assert_eq!(ok.frames, vec!["hello".to_string()]);
    assert_eq!(ok.info.verdict, Some(Verdict::Expected));
    assert_eq!(expect_report(&reports, "server").error, None);

    let err = exchange(&w, addr, &client_ctx, check(Some(wrong), None, OnChange::Refuse))
        .expect_err("a wrong keyprint is refused");
    match &err {
        ConnError::Keyprint(KeyprintError::Mismatch { expected, got, .. }) => {
            assert_eq!((*expected, *got), (wrong, right));
        }
        other => panic!("expected a keyprint mismatch, got {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains(&wrong.to_string()) && text.contains(&right.to_string()),
        "the error names both keyprints: {text}"
    );
    assert!(text.contains("refusing"), "{text}");
    // The server learns why: our alert.
    let server_err = expect_report(&reports, "server").error.expect("the server fails too");
    assert!(server_err.contains("CertificateUnknown"), "{server_err}");

    // Without a certificate check at all, the connection still works
    // (encrypted, unauthenticated), and says so.
    let open = exchange(&w, addr, &client_ctx, check(None, None, OnChange::Refuse)).unwrap();
    assert_eq!(open.info.verdict, Some(Verdict::Unchecked));
    w.shutdown_and_join().unwrap();
}

#[test]
fn trust_on_first_use_records_then_detects_a_changed_certificate() {
    let w = worker();
    let data = tempfile::tempdir().unwrap();
    let client_ctx = TlsContext::open(data.path(), None).expect("open the context");
    let (l, addr, _port) = listener();
    let first = context("first certificate");
    let reports = Server::spawn(&w, l, first.clone(), ClientAuth::Request, 2);
    let key = addr.to_string();
    let tofu = |on_change| check(None, Some(&key), on_change);

    let one = exchange(&w, addr, &client_ctx, tofu(OnChange::Refuse)).expect("first use");
    assert_eq!(one.info.verdict, Some(Verdict::FirstUse));
    let two = exchange(&w, addr, &client_ctx, tofu(OnChange::Refuse)).expect("second use");
    assert_eq!(two.info.verdict, Some(Verdict::Recorded));
    for _ in 0..2 {
        assert_eq!(expect_report(&reports, "server").error, None);
    }
    // Recorded on disk, where a restart finds it.
    let store = TrustStore::open(&data.path().join(TRUST_FILE_NAME)).unwrap();
    assert_eq!(store.get(&key).map(|e| e.keyprint), Some(*first.our_keyprint()));

    // The server comes back on the same port with another certificate.
    let l = std::net::TcpListener::bind(addr).expect("rebind the port");
    let second = context("second certificate");
    let _reports = Server::spawn(&w, l, second.clone(), ClientAuth::Request, 2);
    let err = exchange(&w, addr, &client_ctx, tofu(OnChange::Refuse)).expect_err("refused");
    match &err {
        ConnError::Keyprint(KeyprintError::Changed { recorded, got, peer }) => {
            assert_eq!((recorded, got), (first.our_keyprint(), second.our_keyprint()));
            assert_eq!(peer, &key);
        }
        other => panic!("expected a changed certificate, got {other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains("changed") && text.contains(TRUST_FILE_NAME), "{text}");
    assert_eq!(
        client_ctx.trust_store().get(&key).map(|e| e.keyprint),
        Some(*first.our_keyprint()),
        "a refused change keeps the record"
    );

    // A caller that accepts changes gets through, is told, and the new
    // certificate is recorded.
    let three = exchange(&w, addr, &client_ctx, tofu(OnChange::Accept)).expect("accepted");
    assert_eq!(three.info.verdict, Some(Verdict::Changed { previous: *first.our_keyprint() }));
    let store = TrustStore::open(&data.path().join(TRUST_FILE_NAME)).unwrap();
    assert_eq!(store.get(&key).map(|e| e.keyprint), Some(*second.our_keyprint()));
    w.shutdown_and_join().unwrap();
}

#[test]
fn our_certificate_persists_in_the_data_folder() {
    let data = tempfile::tempdir().unwrap();
    let cid = "KMDKLOT3LKRQWO2X5IJL3GN7XQPXGP2PFKUUIQQ";
    let first = TlsContext::open(data.path(), Some(cid)).unwrap();
    let again = TlsContext::open(data.path(), Some(cid)).unwrap();
    assert_eq!(again.our_keyprint(), first.our_keyprint());
    assert_eq!(again.identity().common_name(), Some(cid));
    let pem = std::fs::read_to_string(data.path().join("cert.pem")).unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    // openssl reads it and agrees on the keyprint and the name.
    let openssl = support::find_binary("openssl").expect("openssl");
    let out = std::process::Command::new(openssl)
        .args(["x509", "-noout", "-subject", "-fingerprint", "-sha256", "-in"])
        .arg(data.path().join("cert.pem"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success() && text.contains(cid), "{text}");
    let hex: String = text
        .lines()
        .find_map(|l| l.split_once('=').filter(|(k, _)| k.contains("Fingerprint")))
        .map(|(_, v)| v.replace(':', ""))
        .expect("a fingerprint line");
    let bytes = data_encoding::HEXUPPER.decode(hex.trim().as_bytes()).unwrap();
    assert_eq!(first.our_keyprint().as_bytes().as_slice(), bytes.as_slice());
}

/// One `HSUP` exchange with uhub over `adcs://`; returns uhub's first line.
fn uhub_isup(w: &WorkerHandle, ctx: &TlsContext, url: &HubUrl) -> Result<ClientReport, ConnError> {
    let addr: SocketAddr = url.authority().parse().expect("an IP address");
    let session = ctx.hub_client(url).expect("hub session");
    let rx = Client::spawn(w, addr, session, vec!["HSUP ADBASE ADTIGR".into()], "ISUP", 0);
    expect_report(&rx, "the uhub client")
}

#[test]
fn adcs_against_uhub_checks_the_keyprint() {
    let certs = support::component_dir("certs").unwrap();
    let cert = TlsCert::generate(certs.path()).expect("openssl makes a certificate");
    let hub = Uhub::start(UhubOptions {
        tls: Some((cert.cert.clone(), cert.key.clone())),
        tls_required: true,
        ..UhubOptions::default()
    })
    .expect("uhub starts");
    let w = worker();
    let data = tempfile::tempdir().unwrap();
    let ctx = TlsContext::open(data.path(), None).unwrap();

    // No keyprint: trusted on first use, then recognised.
    let plain = HubUrl::parse(&hub.url()).unwrap();
    let first = uhub_isup(&w, &ctx, &plain).expect("first use");
    assert_eq!(first.info.verdict, Some(Verdict::FirstUse));
    let second = uhub_isup(&w, &ctx, &plain).expect("second use");
    assert_eq!(second.info.verdict, Some(Verdict::Recorded));

    // The right keyprint: uhub answers our HSUP.
    let url = HubUrl::parse(&format!("{}/?kp={}", hub.url(), cert.keyprint)).unwrap();
    assert!(url.is_tls() && url.keyprint.is_some());
    let ok = uhub_isup(&w, &ctx, &url).expect("adcs:// with the right keyprint");
    let isup = ok.frames.last().expect("a line");
    assert!(isup.starts_with("ISUP ") && isup.contains("ADBASE"), "{isup}");
    assert_eq!(ok.info.verdict, Some(Verdict::Expected));
    // Our keyprint of uhub's certificate is the one openssl computed.
    assert_eq!(ok.info.peer_keyprint.map(|k| k.to_string()), Some(cert.keyprint.clone()));

    // A wrong keyprint: refused during the handshake, with both keyprints named.
    let wrong = Keyprint::of_der(b"another certificate");
    let bad_url = HubUrl::parse(&format!("{}/?kp={wrong}", hub.url())).unwrap();
    let err = uhub_isup(&w, &ctx, &bad_url).expect_err("a wrong keyprint is refused");
    assert!(matches!(err, ConnError::Keyprint(KeyprintError::Mismatch { .. })), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&wrong.to_string()) && text.contains(&cert.keyprint), "{text}");
    w.shutdown_and_join().unwrap();
}
