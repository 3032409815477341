//! NMDC user-list benchmark: `cargo bench --bench nmdc_users`.
//!
//! Prints, in one run:
//! - a `$MyINFO` flood applied to a hub's user list the way a session does
//!   (parse, convert, insert), in users per second (target ≥ 1,000,000), next
//!   to two baselines of the same run: parsing alone, and storing each raw
//!   line in a `HashMap` by nick (the least a client can do), with ratios;
//! - heap memory per user with 100,000 users, beyond the bytes of the
//!   user's own text (target ≤ 300 bytes).
//!
//! `DCLUA_BENCH_QUICK=1` runs fewer rounds (for a smoke run).

use std::collections::HashMap;
use std::time::{Duration, Instant};

#[path = "../tests/common/mod.rs"]
mod common;

use common::counting::Counting;
use dclua::hub::nmdc::apply_my_info_lines;
use dclua::hub::UserList;
use dclua::proto::nmdc;

#[global_allocator]
static GLOBAL: Counting = Counting;

const USERS: usize = 100_000;

fn quick() -> bool {
    std::env::var_os("DCLUA_BENCH_QUICK").is_some()
}

/// Realistic `$MyINFO` lines: varied nicks, descriptions, tags, shares.
fn flood() -> Vec<Vec<u8>> {
    let clients =
        ["++ V:0.868", "EiskaltDC++ V:2.4.2", "AirDC++ V:4.21", "ncdc V:1.23", "dclua V:0.1.0"];
    (0..USERS)
        .map(|i| {
            let client = clients[i % clients.len()];
            let mode = if i % 3 == 0 { "P" } else { "A" };
            format!(
                "$MyINFO $ALL user_{i:06}_{} shares music and films {}<{client},M:{mode},H:{}/0/{},S:{}>$ $100\x01${}$|",
                i % 97,
                i % 1000,
                1 + i % 5,
                i % 2,
                3 + i % 10,
                if i % 4 == 0 { format!("u{i}@example.org${}", (i as u64) * 1_234_567) } else { format!("${}", (i as u64) * 7_654_321) },
            )
            .into_bytes()
        })
        .map(|mut l| {
            l.pop(); // the '|' is the framer's
            l
        })
        .collect()
}

/// Best of `rounds` timings of `f`; what `f` returns besides its count is
/// dropped after the clock stops (building a list is timed, freeing it not).
fn best<T>(rounds: usize, mut f: impl FnMut() -> (usize, T)) -> (Duration, usize) {
    let mut best = Duration::MAX;
    let mut n = 0;
    for _ in 0..rounds {
        let t = Instant::now();
        let (count, keep) = f();
        best = best.min(t.elapsed());
        n = count;
        drop(keep);
    }
    (best, n)
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn main() {
    println!(
        "dclua NMDC user-list benchmark ({} cores, {USERS} users)",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let lines = flood();
    let bytes: usize = lines.iter().map(|l| l.len() + 1).sum();
    println!("flood: {USERS} $MyINFO lines, {:.1} MB", bytes as f64 / 1e6);
    let cs = encoding_rs::WINDOWS_1252;
    let rounds = if quick() { 2 } else { 7 };

    // Baseline 1: each raw line stored by nick, nothing parsed.
    let (t_raw, n_raw) = best(rounds, || {
        let mut map: HashMap<Box<[u8]>, Box<[u8]>> = HashMap::new();
        for l in &lines {
            let body = &l[13..];
            let end = body.iter().position(|&b| b == b' ').unwrap_or(body.len());
            map.insert(body[..end].into(), l.as_slice().into());
        }
        (map.len(), map)
    });
    // Baseline 2: parsing alone.
    let (t_parse, n_parse) = best(rounds, || {
        let n =
            lines.iter().filter(|l| matches!(nmdc::parse(l, cs), nmdc::Message::MyInfo(_))).count();
        (n, ())
    });
    // The real thing: applied to a user list as a session does.
    let (t_apply, n_apply) = best(rounds, || {
        let mut users = UserList::default();
        (apply_my_info_lines(&mut users, lines.iter().map(Vec::as_slice), cs), users)
    });
    // An update flood: every user again, into a full list.
    let mut full = UserList::default();
    apply_my_info_lines(&mut full, lines.iter().map(Vec::as_slice), cs);
    let (t_update, n_update) =
        best(rounds, || (apply_my_info_lines(&mut full, lines.iter().map(Vec::as_slice), cs), ()));
    assert_eq!((n_raw, n_parse, n_apply, n_update), (USERS, USERS, USERS, USERS));
    let t = Instant::now();
    drop(full);
    let t_drop = t.elapsed();

    let raw = rate(n_raw, t_raw);
    let parse = rate(n_parse, t_parse);
    let apply = rate(n_apply, t_apply);
    let update = rate(n_update, t_update);
    println!("baseline: raw lines stored by nick   {:>12.0} users/s", raw);
    println!("baseline: parsing $MyINFO alone      {:>12.0} users/s", parse);
    println!(
        "applied to a new user list           {:>12.0} users/s  (ratio {:.2} to raw lines, {:.2} to parsing; target >= 1,000,000 users/s)",
        apply,
        apply / raw,
        apply / parse
    );
    println!("applied again (updates, full list)   {:>12.0} users/s", update);
    println!("freeing the list of {USERS} users      {:>9.1} ms", t_drop.as_secs_f64() * 1e3);

    // Memory: live heap of a list of USERS users, beyond their strings.
    let before = common::counting::live();
    let mut users = UserList::default();
    apply_my_info_lines(&mut users, lines.iter().map(Vec::as_slice), cs);
    let after = common::counting::live();
    let heap = (after - before) as f64;
    let strings: usize =
        users.iter().map(|u| u.nick().len() + u.description().len() + u.email().len()).sum();
    let per_user = heap / USERS as f64;
    let beyond = (heap - strings as f64) / USERS as f64;
    println!(
        "memory: {:.0} bytes/user on the heap, of which {:.0} the user's own text (nick, description, e-mail); \
         {:.0} bytes/user beyond it (target <= 300)",
        per_user,
        strings as f64 / USERS as f64,
        beyond
    );
    println!("size of one User: {} bytes", std::mem::size_of::<dclua::hub::User>());
}
