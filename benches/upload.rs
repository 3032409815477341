//! Upload benchmark: `cargo bench --bench upload`.
//!
//! One file (2 GiB; 256 MiB with `DCLUA_BENCH_QUICK=1`) served to a minimal
//! raw receiver on 127.0.0.1, in the same run:
//! - **dclua**: a client sharing the file dials the receiver as a peer's
//!   connection request would make it (NMDC C-C handshake, `$ADCGET file
//!   TTH/...`), and streams it from its worker;
//! - **baseline**: `std::io::copy` of the same file into a `TcpStream` to the
//!   same receiver (on Linux it uses `sendfile`).
//!
//! Prints MiB/s of both, their ratio (target ≥ 0.8×), and the worker
//! thread's CPU time per GiB. The file is sparse (its pages come from the
//! page cache as zeros), the same for both sides.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::mpsc::channel;
use std::thread;
use std::time::{Duration, Instant};

use dclua::client::{Client, ClientOptions, ShareSetup};
use dclua::hub::{Identity, PeerRequest};
use dclua::lua::HostOptions;
use dclua::runtime::{Worker, WorkerConfig};
use dclua::share::service::SharedFolder;

#[path = "../tests/common/mod.rs"]
mod common;

use common::bench::{thread_cpu, wait_hashed, Idle};

fn quick() -> bool {
    std::env::var_os("DCLUA_BENCH_QUICK").is_some()
}

fn main() {
    // Problems of the transfer (a refused request, an error) show on stderr.
    dclua::logging::init(log::LevelFilter::Info);
    let size: u64 = if quick() { 256 << 20 } else { 2 << 30 };
    let dir = tempfile::tempdir().expect("a temporary folder");
    let share = dir.path().join("share");
    std::fs::create_dir_all(&share).expect("the share folder");
    let file = share.join("big.bin");
    File::create(&file).and_then(|f| f.set_len(size)).expect("the test file");
    println!("dclua upload benchmark: one {} MiB file over 127.0.0.1", size >> 20);

    let worker = Worker::start(WorkerConfig { helper_threads: Some(2), ..Default::default() })
        .expect("a worker");
    let data_dir = dir.path().join("data");
    let handle = worker.clone();
    let share_path = share.clone();
    worker
        .call(move |pool| {
            Client::start(
                pool,
                ClientOptions {
                    downloads: None,
                    data_dir,
                    identity: Identity { nick: "sender".into(), ..Identity::default() },
                    host: HostOptions::default(),
                    share: Some(ShareSetup {
                        worker: handle,
                        folders: vec![SharedFolder {
                            name: "Share".into(),
                            path: share_path,
                            hidden: false,
                            follow_symlinks: false,
                        }],
                        cid: None,
                    }),
                },
            );
        })
        .expect("starting the client");
    let tth = wait_hashed(&worker).to_base32();

    let mut dclua_rates = Vec::new();
    let mut base_rates = Vec::new();
    let mut cpu_per_gib = Vec::new();
    for _ in 0..3 {
        let (rate, cpu) = dclua_run(&worker, &tth, size);
        dclua_rates.push(rate);
        cpu_per_gib.push(cpu);
        base_rates.push(baseline_run(&file, size));
    }
    let best = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    let (d, b) = (best(&dclua_rates), best(&base_rates));
    let cpu = cpu_per_gib.iter().copied().fold(f64::MAX, f64::min);
    println!("dclua: {d:.0} MiB/s (best of 3: {dclua_rates:.0?})");
    println!("std::io::copy into a TcpStream: {b:.0} MiB/s (best of 3: {base_rates:.0?})");
    println!("ratio {:.2}x (target >= 0.8x); dclua's worker: {cpu:.2} s of CPU per GiB", d / b);
    drop(worker);
}

/// dclua serves the file to the receiver; MiB/s and the worker's CPU
/// seconds per GiB.
fn dclua_run(worker: &dclua::runtime::WorkerHandle, tth: &str, size: u64) -> (f64, f64) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding the receiver");
    let port = listener.local_addr().expect("its port").port();
    let (tx, rx) = channel();
    let want = format!("$ADCGET file TTH/{tth} 0 -1|");
    let receiver = thread::spawn(move || {
        let (s, _) = listener.accept().expect("dclua connects");
        receive_nmdc(s, &want, size, &tx);
    });
    let cpu_before = worker.call(|_| thread_cpu()).expect("the worker");
    worker
        .call(move |pool| {
            let client = Client::current().expect("the client");
            let hub = pool.runtime().spawn(Idle);
            client.peers().on_request(
                pool.runtime(),
                PeerRequest {
                    hub,
                    hub_url: "dchub://127.0.0.1:1".into(),
                    adc: false,
                    my_nick: "sender".into(),
                    charset: encoding_rs::UTF_8,
                    nick: Some("receiver".into()),
                    cid: None,
                    address: Some(("127.0.0.1".into(), port)),
                    tls: false,
                    token: None,
                    reverse: false,
                    keyprint: None,
                },
            );
        })
        .expect("the worker");
    let elapsed: Duration = rx.recv_timeout(Duration::from_secs(600)).expect("the transfer");
    receiver.join().expect("the receiver");
    let cpu_after = worker.call(|_| thread_cpu()).expect("the worker");
    let mib = size as f64 / (1 << 20) as f64;
    (mib / elapsed.as_secs_f64(), (cpu_after - cpu_before) / (size as f64 / (1u64 << 30) as f64))
}

/// The listening side of an NMDC C-C handshake, then one request; sends the
/// time from the request to the last byte.
fn receive_nmdc(s: TcpStream, request: &str, size: u64, done: &std::sync::mpsc::Sender<Duration>) {
    let mut w = s.try_clone().expect("a second handle");
    let mut r = BufReader::with_capacity(1 << 20, s);
    let mut frame = Vec::new();
    let mut next = |r: &mut BufReader<TcpStream>| {
        frame.clear();
        r.read_until(b'|', &mut frame).expect("reading a frame");
        String::from_utf8_lossy(&frame).into_owned()
    };
    assert!(next(&mut r).starts_with("$MyNick"));
    assert!(next(&mut r).starts_with("$Lock"));
    w.write_all(b"$MyNick receiver|$Lock EXTENDEDPROTOCOLbench Pk=bench|$Supports ADCGet TTHF|$Direction Download 30000|$Key k|")
        .expect("greeting");
    for want in ["$Supports", "$Direction", "$Key"] {
        assert!(next(&mut r).starts_with(want), "expected {want}");
    }
    let start = Instant::now();
    w.write_all(request.as_bytes()).expect("requesting");
    let header = next(&mut r);
    assert!(header.starts_with("$ADCSND"), "{header}");
    let mut left = size;
    let mut buf = vec![0u8; 1 << 20];
    while left > 0 {
        let n = r.read(&mut buf).expect("receiving");
        assert!(n > 0, "the sender stopped with {left} bytes left");
        left -= n as u64;
    }
    done.send(start.elapsed()).expect("reporting");
}

/// The baseline: `std::io::copy` from the file into a socket.
fn baseline_run(path: &Path, size: u64) -> f64 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding the receiver");
    let addr = listener.local_addr().expect("its address");
    let receiver = thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("a connection");
        let mut buf = vec![0u8; 1 << 20];
        let mut left = size;
        while left > 0 {
            let n = s.read(&mut buf).expect("receiving");
            assert!(n > 0);
            left -= n as u64;
        }
    });
    let start = Instant::now();
    let mut f = File::open(path).expect("the file");
    let mut s = TcpStream::connect(addr).expect("connecting");
    std::io::copy(&mut f, &mut s).expect("copying");
    receiver.join().expect("the receiver");
    (size as f64 / (1 << 20) as f64) / start.elapsed().as_secs_f64()
}
