//! Download benchmark: `cargo bench --bench download`.
//!
//! One file (2 GiB; 256 MiB with `DCLUA_BENCH_QUICK=1`) downloaded over
//! 127.0.0.1, in the same run:
//! - **dclua → dclua**: a client sharing the file and a client downloading
//!   it with the download service, as a queued item: TTH leaves first, the
//!   file in segments, every block checked against its leaf, written to the
//!   temporary file, synced, moved into place. The time runs from queueing
//!   to the verified file in place.
//! - **baseline**: the same bytes plainly: `std::io::copy` from the file into
//!   a `TcpStream`, and a receiver thread that writes them to a file and
//!   computes their TTH (`TreeHasher`), then syncs the file.
//!
//! - **eiskaltdcpp → eiskaltdcpp** (when `eiskaltdcpp-daemon` and `uhub`
//!   are installed, `tests/setup-peers.sh`): two daemons on a uhub on
//!   127.0.0.1, one sharing the same file, the other downloading it by TTH
//!   (queued, sources found by a TTH search), driven over JSON-RPC with the
//!   tests' harness; the time runs from queueing to the complete file.
//!
//! Prints MiB/s of each and the ratios (targets: ≥ 0.8× the baseline, ≥ 2×
//! eiskaltdcpp), and the downloading worker's CPU seconds per GiB. The
//! shared file is sparse (its pages come from the page cache as zeros), the
//! same for every side.
//!
//! Every folder (the benchmark's, the eiskaltdcpp daemons') is made under
//! `TMPDIR`: `TMPDIR=/dev/shm` measures the clients, the default measures
//! them behind this machine's disk, which bounds every side that syncs.

// The tests' harness for the real peers (uhub, eiskaltdcpp); it allows its
// own dead code.
#[path = "../tests/support/mod.rs"]
mod support;

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc::channel;
use std::thread;
use std::time::{Duration, Instant};

use dclua::client::{Client, ClientOptions, ShareSetup};
use dclua::download::{DownloadOptions, NewDownload};
use dclua::hub::{ConnectMode, Identity, PeerRequest};
use dclua::lua::HostOptions;
use dclua::proto::tth::{TreeHasher, Tth};
use dclua::runtime::{Worker, WorkerConfig, WorkerHandle};
use dclua::share::service::SharedFolder;

#[path = "../tests/common/mod.rs"]
mod common;

use common::bench::{thread_cpu, wait_hashed, Idle};
use dclua::transfer::queue::{Priority, Source};

const HUB: &str = "dchub://127.0.0.1:1";

fn quick() -> bool {
    std::env::var_os("DCLUA_BENCH_QUICK").is_some()
}

fn main() {
    dclua::logging::init(log::LevelFilter::Warn);
    let size: u64 = if quick() { 256 << 20 } else { 2 << 30 };
    let dir = tempfile::tempdir().expect("a temporary folder");
    let share = dir.path().join("share");
    std::fs::create_dir_all(&share).expect("the share folder");
    let file = share.join("big.bin");
    File::create(&file).and_then(|f| f.set_len(size)).expect("the test file");
    println!("dclua download benchmark: one {} MiB file over 127.0.0.1", size >> 20);

    let sender = client(dir.path().join("sender"), "sender", Some(share.clone()), None);
    let downloads = dir.path().join("downloads");
    let getter = client(dir.path().join("getter"), "getter", None, Some(downloads.clone()));
    let tth = wait_hashed(&sender);
    let port = sender
        .call(|_| Client::current().and_then(|c| c.peers().ports().0))
        .expect("the sender's worker")
        .expect("the sender listens");

    let mut dclua_rates = Vec::new();
    let mut base_rates = Vec::new();
    let mut cpu_per_gib = Vec::new();
    for run in 0..3 {
        let (rate, cpu) = dclua_run(&sender, &getter, tth, size, port, run);
        dclua_rates.push(rate);
        cpu_per_gib.push(cpu);
        base_rates.push(baseline_run(&file, size, &downloads));
    }
    let best = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    let (d, b) = (best(&dclua_rates), best(&base_rates));
    let cpu = cpu_per_gib.iter().copied().fold(f64::MAX, f64::min);
    println!("dclua -> dclua, verified: {d:.0} MiB/s (best of 3: {dclua_rates:.0?})");
    println!("std::net copy + TTH + write: {b:.0} MiB/s (best of 3: {base_rates:.0?})");
    println!(
        "ratio {:.2}x (target >= 0.8x); the downloading worker: {cpu:.2} s of CPU per GiB",
        d / b
    );
    drop((sender, getter));
    match eiskalt_rates(&share, size, tth, dir.path()) {
        Ok(rates) => {
            let e = best(&rates);
            println!("eiskaltdcpp -> eiskaltdcpp: {e:.0} MiB/s (best of 3: {rates:.0?})");
            println!("dclua / eiskaltdcpp: {:.2}x (target >= 2x)", d / e);
        }
        Err(err) => println!("eiskaltdcpp -> eiskaltdcpp not measured: {err:#}"),
    }
}

/// Three downloads of the file by one eiskaltdcpp daemon from another.
fn eiskalt_rates(share: &Path, size: u64, tth: Tth, dir: &Path) -> anyhow::Result<Vec<f64>> {
    use support::{Eiskalt, EiskaltOptions, Uhub, UhubOptions};
    support::find_binary("eiskaltdcpp-daemon")?;
    let hub = Uhub::start(UhubOptions::default())?;
    let url = hub.url();
    let _alice = Eiskalt::start(EiskaltOptions {
        nick: "alice".into(),
        share: Some(share.to_path_buf()),
        hubs: vec![url.clone()],
        ..EiskaltOptions::default()
    })?;
    let bob = Eiskalt::start(EiskaltOptions {
        nick: "bob".into(),
        hubs: vec![url.clone()],
        ..EiskaltOptions::default()
    })?;
    bob.wait_user(&url, "alice")?;
    let dl = dir.join("eiskalt-downloads");
    std::fs::create_dir_all(&dl)?;
    let mut rates = Vec::new();
    for run in 0..3 {
        let start = Instant::now();
        let path = bob.download_tth(
            &url,
            &tth.to_base32(),
            size,
            &format!("run{run}.bin"),
            &dl,
            Duration::from_secs(900),
        )?;
        rates.push((size as f64 / (1 << 20) as f64) / start.elapsed().as_secs_f64());
        let _ = std::fs::remove_file(path);
    }
    Ok(rates)
}

fn client(
    data_dir: PathBuf,
    nick: &str,
    share: Option<PathBuf>,
    downloads: Option<PathBuf>,
) -> WorkerHandle {
    let worker = Worker::start(WorkerConfig { helper_threads: Some(2), ..Default::default() })
        .expect("a worker");
    let handle = worker.clone();
    let nick = nick.to_string();
    worker
        .call(move |pool| {
            Client::start(
                pool,
                ClientOptions {
                    data_dir,
                    identity: Identity {
                        nick,
                        mode: ConnectMode::Active,
                        listen_address: std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
                        slots: 4,
                        ..Identity::default()
                    },
                    host: HostOptions::default(),
                    share: share.map(|path| ShareSetup {
                        worker: handle,
                        folders: vec![SharedFolder {
                            name: "Share".into(),
                            path,
                            hidden: false,
                            follow_symlinks: false,
                        }],
                        cid: None,
                    }),
                    downloads: downloads
                        .map(|dir| DownloadOptions { dir, ..DownloadOptions::default() }),
                },
            );
        })
        .expect("starting a client");
    worker
}

fn request(hub: dclua::runtime::JobId, me: &str, them: &str, port: Option<u16>) -> PeerRequest {
    PeerRequest {
        hub,
        hub_url: HUB.into(),
        adc: false,
        my_nick: me.into(),
        charset: encoding_rs::UTF_8,
        nick: Some(them.into()),
        cid: None,
        address: port.map(|p| ("127.0.0.1".to_string(), p)),
        tls: false,
        token: None,
        reverse: port.is_none(),
        keyprint: None,
    }
}

/// The getter queues the file with the sender as its source; the sender
/// expects the getter (as after a `$RevConnectToMe`), and the getter dials
/// it (as after a `$ConnectToMe`). MiB/s from queueing to the verified file
/// in place, and the getter's CPU seconds per GiB.
fn dclua_run(
    sender: &WorkerHandle,
    getter: &WorkerHandle,
    tth: Tth,
    size: u64,
    port: u16,
    run: u32,
) -> (f64, f64) {
    let cpu_before = getter.call(|_| thread_cpu()).expect("the getter");
    let (tx, rx) = channel();
    let start = Instant::now();
    getter
        .call(move |_| {
            let client = Client::current().expect("the client");
            let id = client
                .downloads()
                .add(NewDownload {
                    tth,
                    size,
                    name: format!("run{run}.bin"),
                    dir: None,
                    abs_dir: None,
                    priority: Priority::Normal,
                    sources: vec![Source {
                        hub: HUB.into(),
                        user: "sender".into(),
                        nick: "sender".into(),
                    }],
                })
                .expect("queueing");
            client.downloads().wait(
                id,
                Box::new(move |r| {
                    let _ = tx.send(r);
                }),
            );
        })
        .expect("the getter");
    sender
        .call(|pool| {
            let hub = pool.runtime().spawn(Idle);
            let c = Client::current().expect("the sender");
            c.peers().on_request(pool.runtime(), request(hub, "sender", "getter", None));
        })
        .expect("the sender");
    getter
        .call(move |pool| {
            let hub = pool.runtime().spawn(Idle);
            let c = Client::current().expect("the getter");
            c.peers().on_request(pool.runtime(), request(hub, "getter", "sender", Some(port)));
        })
        .expect("the getter");
    let path = rx
        .recv_timeout(Duration::from_secs(900))
        .expect("the download ends")
        .expect("the download succeeds");
    let elapsed = start.elapsed();
    let cpu_after = getter.call(|_| thread_cpu()).expect("the getter");
    assert_eq!(std::fs::metadata(&path).expect("the file").len(), size);
    let _ = std::fs::remove_file(&path);
    let mib = size as f64 / (1 << 20) as f64;
    (mib / elapsed.as_secs_f64(), (cpu_after - cpu_before) / (size as f64 / (1u64 << 30) as f64))
}

/// The baseline: `std::io::copy` into a socket; the receiver writes the
/// bytes to a file, computes their TTH and syncs the file.
fn baseline_run(path: &Path, size: u64, downloads: &Path) -> f64 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding the receiver");
    let addr = listener.local_addr().expect("its address");
    let out = downloads.join("baseline.bin");
    let receiver = thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("a connection");
        let mut f = File::create(&out).expect("the output file");
        let mut hasher = TreeHasher::new();
        let mut buf = vec![0u8; 256 << 10];
        let mut left = size;
        while left > 0 {
            let n = s.read(&mut buf).expect("receiving");
            assert!(n > 0);
            f.write_all(&buf[..n]).expect("writing");
            hasher.update(&buf[..n]);
            left -= n as u64;
        }
        f.sync_all().expect("syncing");
        let root = hasher.finish().root;
        drop(f);
        let _ = std::fs::remove_file(&out);
        root
    });
    let start = Instant::now();
    let mut f = File::open(path).expect("the file");
    let mut s = TcpStream::connect(addr).expect("connecting");
    std::io::copy(&mut f, &mut s).expect("copying");
    drop(s);
    let _root = receiver.join().expect("the receiver");
    (size as f64 / (1 << 20) as f64) / start.elapsed().as_secs_f64()
}
