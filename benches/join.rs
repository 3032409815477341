//! Whole-process join benchmark (issue 12): the real `dclua` binary, no
//! scripts, joins a hub of our own on 127.0.0.1 that sends N users in large
//! writes; what the join cost is read from `/proc/PID/stat` (CPU) and
//! `/proc/PID/status` (resident memory) of the client before the first user
//! line and after the list is in.
//!
//! `cargo bench --bench join` prints, per protocol (NMDC `$MyINFO`, ADC
//! `BINF`, lines like those of `benches/nmdc_users.rs` and `benches/hubs.rs`):
//! the client's CPU seconds and resident bytes per user for the join, and in
//! the same run the time this process takes to parse the same lines alone
//! (`proto::nmdc::parse`, `proto::adc::parse`) with the ratio of the two.
//! Targets at 100,000 users: ≤ 0.15 s CPU, ≤ 300 B per user, within 4× of
//! parsing alone. It asserts nothing.
//!
//! `DCLUA_BENCH_USERS` (default 100,000) sets the number of users;
//! `DCLUA_BENCH_PROTOCOLS` (default `nmdc,adc`) which protocols run;
//! `DCLUA_BENCH_ROUNDS` (default 5) how many joins per protocol: the
//! machines here are shared, so the least CPU of the rounds is reported
//! (and the most memory, which varies little).
//!
//! "After" is when the client has logged `online, N users` with every user
//! and its CPU time has then not moved for half a second. CPU time is read
//! to the nanosecond from the threads' `schedstat` (and shown as
//! `/proc/PID/stat` counts it, in 10 ms ticks).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[path = "../tests/common/mod.rs"]
mod common;

use common::user_lines::{binf_lines, my_info_lines};
use dclua::proto::adc;
use dclua::proto::nmdc;

/// Best of three timings of parsing every line alone, the parsed value
/// dropped at once.
fn parse_alone(protocol: &str, lines: &[Vec<u8>]) -> Duration {
    let cs = encoding_rs::UTF_8;
    (0..3)
        .map(|_| {
            let t = Instant::now();
            let mut ok = 0usize;
            for l in lines {
                ok += match protocol {
                    "nmdc" => matches!(nmdc::parse(l, cs), nmdc::Message::MyInfo(_)) as usize,
                    _ => adc::parse(l).is_ok() as usize,
                };
            }
            assert_eq!(ok, lines.len(), "every line parses");
            t.elapsed()
        })
        .min()
        .unwrap_or_default()
}

/// CPU seconds of `pid`'s live threads, to the nanosecond: the sum of
/// their `/proc/PID/task/TID/schedstat` (`/proc/PID/stat` counts 10 ms
/// ticks, too coarse for a join of 0.1 s).
fn cpu_ns(pid: u32) -> f64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return 0.0 };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next().and_then(|v| v.parse::<u64>().ok()))
        .sum::<u64>() as f64
        / 1e9
}

/// CPU seconds (user + system, all threads) and resident bytes of `pid`.
fn usage(pid: u32) -> (f64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold
    // spaces: utime and stime are the 14th and 15th fields of the line.
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let cpu = (ticks(11) + ticks(12)) as f64 / 100.0;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024);
    (cpu, rss)
}

/// Reads from `s` until `needle` has arrived; returns what came.
fn read_until(s: &mut TcpStream, needle: &[u8]) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let t = Instant::now();
    while !got.windows(needle.len()).any(|w| w == needle) {
        assert!(t.elapsed() < Duration::from_secs(20), "the client never sent {needle:?}");
        match s.read(&mut buf) {
            Ok(0) => {
                panic!("the client closed the connection; got {:?}", String::from_utf8_lossy(&got))
            }
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("reading from the client: {e}"),
        }
    }
    got
}

struct Joined {
    /// From `/proc/PID/stat` (10 ms ticks).
    cpu: f64,
    /// From the threads' `schedstat` (nanoseconds).
    cpu_ns: f64,
    rss_per_user: f64,
    rss_before: u64,
    rss_after: u64,
    wall: Duration,
}

/// Starts the client on `url`; returns it and a channel of its log lines.
fn start_client(home: &std::path::Path, url: &str) -> (Child, mpsc::Receiver<String>) {
    let config = home.join("config.lua");
    std::fs::write(
        &config,
        format!("nick = 'bench'\nhubs = {{ '{url}' }}\nreconnect_delay = 60\n"),
    )
    .expect("writing the configuration");
    let mut child = Command::new(env!("CARGO_BIN_EXE_dclua"))
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(home.join("data"))
        .arg("--log-level")
        .arg("info")
        .env("HOME", home)
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting dclua (cargo bench builds it)");
    let (tx, rx) = mpsc::channel();
    let err = child.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

fn join(protocol: &str, lines: &[Vec<u8>]) -> Joined {
    let home = tempfile::tempdir().expect("a temporary folder");
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1");
    let port = listener.local_addr().expect("address").port();
    let url = match protocol {
        "nmdc" => format!("dchub://127.0.0.1:{port}"),
        _ => format!("adc://127.0.0.1:{port}"),
    };
    let (mut child, log) = start_client(home.path(), &url);
    let pid = child.id();
    listener.set_nonblocking(false).ok();
    let (mut s, _) = listener.accept().expect("the client connects");
    s.set_read_timeout(Some(Duration::from_millis(200))).ok();
    s.set_nodelay(true).ok();
    // The login, up to the moment the hub sends its users.
    let own: Vec<u8> = match protocol {
        "nmdc" => {
            s.write_all(b"$Lock EXTENDEDPROTOCOL_bench Pk=benchhub|$HubName bench hub|").unwrap();
            read_until(&mut s, b"$ValidateNick bench|");
            s.write_all(b"$Hello bench|").unwrap();
            let got = read_until(&mut s, b"$|");
            let start =
                got.windows(8).position(|w| w == b"$MyINFO ").expect("the client's $MyINFO");
            got[start..].to_vec()
        }
        _ => {
            read_until(&mut s, b"HSUP ");
            s.write_all(b"ISUP ADBASE ADTIGR\nISID AAAB\nIINF CT32 NIbench\\shub VEbench\n")
                .unwrap();
            let got = read_until(&mut s, b"\n");
            let got = if got.starts_with(b"BINF") {
                got
            } else {
                [got, read_until(&mut s, b"\n")].concat()
            };
            let start = got.windows(5).position(|w| w == b"BINF ").expect("the client's BINF");
            let end =
                start + got[start..].iter().position(|&b| b == b'\n').expect("a whole line") + 1;
            got[start..end].to_vec()
        }
    };
    // Let an ADC client settle (its own start-up is not the join's). Not an
    // NMDC one: the list has no start marker, and a quiet gap after $Hello
    // would rightly end it empty.
    if protocol != "nmdc" {
        std::thread::sleep(Duration::from_millis(500));
    }
    let (cpu0, rss0) = usage(pid);
    let ns0 = cpu_ns(pid);
    let t0 = Instant::now();
    let sep = if protocol == "nmdc" { b'|' } else { b'\n' };
    let mut chunk = Vec::with_capacity(1 << 20);
    for l in lines {
        chunk.extend_from_slice(l);
        chunk.push(sep);
        if chunk.len() >= 1 << 20 {
            s.write_all(&chunk).expect("sending users");
            chunk.clear();
        }
    }
    chunk.extend_from_slice(&own);
    s.write_all(&chunk).expect("sending users");
    // The list is in when the client says so with every user...
    let want = lines.len() + 1;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let line = log.recv_timeout(Duration::from_secs(1));
        if let Ok(line) = &line {
            if let Some(n) = line.split("online, ").nth(1).and_then(|r| r.split(' ').next()) {
                let n: usize = n.parse().unwrap_or(0);
                assert_eq!(n, want, "the client listed {n} users of {want}");
                break;
            }
        }
        assert!(Instant::now() < deadline, "the client never came online");
        assert!(child.try_wait().ok().flatten().is_none(), "the client exited");
    }
    let wall = t0.elapsed();
    // ...and its CPU time stops moving.
    let mut last = usage(pid).0;
    let mut still = 0;
    while still < 25 {
        std::thread::sleep(Duration::from_millis(20));
        let now = usage(pid).0;
        if now == last {
            still += 1;
        } else {
            still = 0;
            last = now;
        }
    }
    let (cpu1, rss1) = usage(pid);
    let ns1 = cpu_ns(pid);
    drop(s);
    child.kill().ok();
    child.wait().ok();
    Joined {
        cpu: cpu1 - cpu0,
        cpu_ns: ns1 - ns0,
        rss_per_user: (rss1 as f64 - rss0 as f64) / lines.len() as f64,
        rss_before: rss0,
        rss_after: rss1,
        wall,
    }
}

fn main() {
    let users: usize =
        std::env::var("DCLUA_BENCH_USERS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let protocols =
        std::env::var("DCLUA_BENCH_PROTOCOLS").unwrap_or_else(|_| "nmdc,adc".to_string());
    println!(
        "join benchmark: the release dclua binary joins a hub sending {users} users ({} cores)",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    for protocol in protocols.split(',') {
        let lines = match protocol {
            "nmdc" => my_info_lines(users),
            "adc" => binf_lines(users),
            other => panic!("unknown protocol {other:?} in DCLUA_BENCH_PROTOCOLS"),
        };
        let avg = lines.iter().map(Vec::len).sum::<usize>() as f64 / users as f64;
        let parse = parse_alone(protocol, &lines);
        let rounds: usize =
            std::env::var("DCLUA_BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
        let mut j = join(protocol, &lines);
        for _ in 1..rounds {
            let next = join(protocol, &lines);
            let rss = j.rss_per_user.max(next.rss_per_user);
            if next.cpu_ns < j.cpu_ns {
                j = next;
            }
            j.rss_per_user = rss;
        }
        println!(
            "{protocol:>4}: {users} users ({avg:.0} B/line), best of {rounds}: client CPU {:.3} s \
             (/proc/PID/stat: {:.2} s; target <= 0.15 s at 100k), \
             {:.0} B resident per user (target <= 300; RSS {:.1} -> {:.1} MiB), \
             wall {:.2} s; parsing alone {:.3} s, ratio {:.2} (target <= 4)",
            j.cpu_ns,
            j.cpu,
            j.rss_per_user,
            j.rss_before as f64 / 1048576.0,
            j.rss_after as f64 / 1048576.0,
            j.wall.as_secs_f64(),
            parse.as_secs_f64(),
            j.cpu_ns / parse.as_secs_f64().max(1e-9),
        );
    }
}
