//! User-list flood benchmark (issue 12): how fast a hub session applies an
//! initial user list and how much heap each user takes, ADC `BINF` next to
//! NMDC `$MyINFO`, at 100,000 and at 1,000,000 users, in one run.
//!
//! Method: the sessions' own code is fed directly (no sockets, no event
//! loop): [`dclua::hub::adc::apply_binf_lines`] and
//! [`dclua::hub::nmdc::apply_my_info_lines`] do what the sessions do per
//! line. Next to each, in the same run, parsing the same lines alone
//! (`proto::adc::parse`, `proto::nmdc::parse`, the parsed value dropped at
//! once). Heap bytes per user are counted by a counting allocator (the
//! list's live bytes after the flood, divided by the users). Then an
//! incremental-INF pass (one changed field per user), which only ADC has.
//!
//! Each protocol and size runs in a child process of its own (a fresh heap,
//! as a real join has), each timed run on fresh memory.
//!
//! Targets: the 1,000,000-user figures within 12× of the 100,000-user ones
//! (10× the users). Prints figures and ratios; asserts nothing.
//! `DCLUA_BENCH_USERS` replaces the two sizes by one;
//! `DCLUA_BENCH_PROTOCOLS` (default `nmdc,adc`) chooses the protocols;
//! `DCLUA_BENCH_RUNS` the timed runs per size (default 5 at 100,000 users,
//! 3 above).

use std::time::{Duration, Instant};

#[path = "../tests/common/mod.rs"]
mod common;

use common::counting::Counting;
use common::user_lines::{binf_lines, my_info_lines};
use dclua::hub::adc::apply_binf_lines;
use dclua::hub::nmdc::apply_my_info_lines;
use dclua::hub::UserList;
use dclua::proto::adc::{self, Sid};
use dclua::proto::nmdc;

#[global_allocator]
static GLOBAL: Counting = Counting;

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

/// The best of `runs` timings of `f`. What `f` returns besides its count
/// is kept until all runs are done: each run then builds on fresh memory,
/// as a real join does (a list freed and built again would find its pages
/// mapped and, at 100,000 users, still in the cache, flattering the small
/// size against the large one).
fn best_of<T>(runs: usize, mut f: impl FnMut() -> (usize, T)) -> (usize, Duration) {
    let mut best = Duration::MAX;
    let mut count = 0;
    let mut kept = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        let (n, keep) = f();
        let d = t.elapsed();
        kept.push(keep);
        count = n;
        best = best.min(d);
    }
    (count, best)
}

/// One protocol at one size: apply time, parse time, heap bytes per user.
struct Figures {
    apply: Duration,
    parse: Duration,
    heap: f64,
}

fn measure(protocol: &str, lines: &[Vec<u8>], runs: usize) -> Figures {
    let users = lines.len();
    let apply = |list: &mut UserList| match protocol {
        "nmdc" => apply_my_info_lines(list, lines.iter().map(Vec::as_slice), encoding_rs::UTF_8),
        _ => apply_binf_lines(list, lines.iter().map(Vec::as_slice)),
    };
    let (n, t_apply) = best_of(runs, || {
        let mut list = UserList::default();
        (apply(&mut list), list)
    });
    assert_eq!(n, users, "every {protocol} user applied");
    let (n, t_parse) = best_of(runs, || {
        let n = lines
            .iter()
            .filter(|l| match protocol {
                "nmdc" => matches!(nmdc::parse(l, encoding_rs::UTF_8), nmdc::Message::MyInfo(_)),
                _ => adc::parse(l).is_ok(),
            })
            .count();
        (n, ())
    });
    assert_eq!(n, users, "every {protocol} line parses");
    let before = common::counting::live();
    let mut list = UserList::default();
    apply(&mut list);
    let heap = (common::counting::live() - before) as f64 / users as f64;
    drop(list);
    let f = Figures { apply: t_apply, parse: t_parse, heap };
    println!(
        "{protocol:>4} {users:>9} users: applied {:>10.0} users/s ({:>7.1} ms), parsing alone {:>10.0} users/s \
         ({:>7.1} ms, ratio {:.2}), heap {:.0} B/user",
        rate(users, f.apply),
        f.apply.as_secs_f64() * 1e3,
        rate(users, f.parse),
        f.parse.as_secs_f64() * 1e3,
        f.apply.as_secs_f64() / f.parse.as_secs_f64(),
        f.heap
    );
    f
}

/// Measures one protocol at one size in a child process (this benchmark
/// again, with `DCLUA_BENCH_CHILD=<protocol> <users>`): each size starts on
/// a fresh heap, as a client joining a hub does. In one process, the later
/// sizes ran on memory the earlier ones had freed, and the comparison
/// between sizes moved by ±2× with the order of the runs.
fn in_child(protocol: &str, users: usize) -> Figures {
    let out = std::process::Command::new(std::env::current_exe().expect("this benchmark's path"))
        .env("DCLUA_BENCH_CHILD", format!("{protocol} {users}"))
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("running the benchmark's child");
    assert!(out.status.success(), "the child measuring {protocol} at {users} users failed");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut figures = None;
    for line in text.lines() {
        match line.strip_prefix("FIGURES ") {
            Some(f) => {
                let v: Vec<f64> = f.split(' ').filter_map(|x| x.parse().ok()).collect();
                if let [apply, parse, heap] = v[..] {
                    figures = Some(Figures {
                        apply: Duration::from_secs_f64(apply),
                        parse: Duration::from_secs_f64(parse),
                        heap,
                    });
                }
            }
            None => println!("{line}"),
        }
    }
    figures.expect("the child's figures")
}

fn main() {
    if let Ok(child) = std::env::var("DCLUA_BENCH_CHILD") {
        let (protocol, users) =
            child.split_once(' ').expect("DCLUA_BENCH_CHILD=<protocol> <users>");
        let users: usize = users.parse().expect("a number of users");
        let lines = if protocol == "nmdc" { my_info_lines(users) } else { binf_lines(users) };
        let runs = std::env::var("DCLUA_BENCH_RUNS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(if users > 100_000 { 3 } else { 5 });
        let f = measure(protocol, &lines, runs);
        println!("FIGURES {} {} {}", f.apply.as_secs_f64(), f.parse.as_secs_f64(), f.heap);
        return;
    }
    let sizes: Vec<usize> =
        match std::env::var("DCLUA_BENCH_USERS").ok().and_then(|v| v.parse().ok()) {
            Some(n) => vec![n],
            None => vec![100_000, 1_000_000],
        };
    println!(
        "hubs benchmark: initial user lists of {sizes:?} users, the sessions' code fed directly \
         (each size in a process of its own; best of 5 at 100,000, of 3 above)"
    );
    let protocols =
        std::env::var("DCLUA_BENCH_PROTOCOLS").unwrap_or_else(|_| "nmdc,adc".to_string());
    for protocol in protocols.split(',') {
        let mut figures: Vec<(usize, Figures)> = Vec::new();
        for &users in &sizes {
            figures.push((users, in_child(protocol, users)));
        }
        if let [(small, a), (big, b)] = &figures[..] {
            let times = *big as f64 / *small as f64;
            println!(
                "{protocol:>4} {big} vs {small} users ({times:.0}x the users): applying took {:.1}x \
                 (target <= 12x), parsing alone {:.1}x; heap per user {:.2}x",
                b.apply.as_secs_f64() / a.apply.as_secs_f64(),
                b.parse.as_secs_f64() / a.parse.as_secs_f64(),
                b.heap / a.heap
            );
        }
    }

    // Incremental updates: every user changes its share size once.
    let users = sizes[0];
    let binf = binf_lines(users);
    let updates: Vec<Vec<u8>> = (0..users)
        .map(|i| {
            let sid = Sid::new(i as u32 + 2).map(|s| s.to_string()).unwrap_or_default();
            format!("BINF {sid} SS{} FS1", i as u64 * 3).into_bytes()
        })
        .collect();
    let mut list = UserList::default();
    apply_binf_lines(&mut list, binf.iter().map(Vec::as_slice));
    let t = Instant::now();
    let n_upd = apply_binf_lines(&mut list, updates.iter().map(Vec::as_slice));
    let t_upd = t.elapsed();
    println!(
        " adc incremental BINF: {n_upd} updates in {:.1} ms = {:.0} updates/s",
        t_upd.as_secs_f64() * 1e3,
        rate(n_upd, t_upd),
    );
}
