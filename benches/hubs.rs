//! User-list flood benchmark: how many users per second a hub session
//! applies from its initial list, ADC `BINF` next to NMDC `$MyINFO`, in one
//! run on the same machine.
//!
//! Method: the session's own parsers are fed directly (no sockets, no
//! event loop): [`dclua::hub::adc::apply_binf_lines`] and
//! [`dclua::hub::nmdc::apply_my_info_lines`] do what the sessions do per
//! line (parse, convert to a `User`, insert in the user list; ADC also
//! keeps the SID map). Lines look like what DC++/eiskaltdcpp announce.
//! Then an incremental-INF pass (one changed field per user), which only
//! ADC has. Prints figures and the ADC/NMDC ratio; asserts nothing.
//! `DCLUA_BENCH_USERS` sets the number of users (default 100,000).

use std::time::{Duration, Instant};

use dclua::hub::adc::{apply_binf_lines, SidMap};
use dclua::hub::nmdc::apply_my_info_lines;
use dclua::hub::UserList;
use dclua::proto::adc::{Pid, Sid};

fn binf_lines(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let sid = Sid::new(i as u32 + 2).map(|s| s.to_string()).unwrap_or_default();
            let cid = Pid::random().cid();
            format!(
                "BINF {sid} ID{cid} NIuser{i:06} DEsome\\sdescription\\s{i} SL3 FS2 SS{} SF{} \
                 HN1 HR0 HO0 APEiskaltDC++ VE2.4.2 US1048576 I4192.168.{}.{} U4{} SUSEGA,ADC0,TCP4,UDP4",
                i as u64 * 1_000_003,
                i * 7,
                (i / 250) % 250,
                i % 250,
                10_000 + i % 50_000
            )
            .into_bytes()
        })
        .collect()
}

fn my_info_lines(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            format!(
                "$MyINFO $ALL user{i:06} some description {i}<EiskaltDC++ V:2.4.2,M:A,H:1/0/0,S:3>$ $100\x01$$\
                 {}$",
                i as u64 * 1_000_003
            )
            .into_bytes()
        })
        .collect()
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

fn best_of<T>(runs: usize, mut f: impl FnMut() -> (usize, T)) -> (usize, Duration) {
    let mut best = Duration::MAX;
    let mut count = 0;
    for _ in 0..runs {
        let t = Instant::now();
        let (n, keep) = f();
        let d = t.elapsed();
        drop(keep);
        count = n;
        best = best.min(d);
    }
    (count, best)
}

fn main() {
    let users: usize =
        std::env::var("DCLUA_BENCH_USERS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    println!(
        "hubs benchmark: initial user list of {users} users, parsers fed directly (best of 3)"
    );
    let binf = binf_lines(users);
    let myinfo = my_info_lines(users);

    let (n_nmdc, t_nmdc) = best_of(3, || {
        let mut list = UserList::default();
        let n = apply_my_info_lines(
            &mut list,
            myinfo.iter().map(Vec::as_slice),
            encoding_rs::WINDOWS_1252,
        );
        (n, list)
    });
    let (n_adc, t_adc) = best_of(3, || {
        let mut list = UserList::default();
        let mut sids = SidMap::default();
        let n = apply_binf_lines(&mut list, &mut sids, binf.iter().map(Vec::as_slice));
        (n, (list, sids))
    });
    let nmdc = rate(n_nmdc, t_nmdc);
    let adc = rate(n_adc, t_adc);
    println!(
        "NMDC $MyINFO flood: {n_nmdc} users in {:.1} ms = {:.0} users/s (baseline)",
        t_nmdc.as_secs_f64() * 1e3,
        nmdc
    );
    println!(
        "ADC  BINF flood:    {n_adc} users in {:.1} ms = {:.0} users/s",
        t_adc.as_secs_f64() * 1e3,
        adc
    );
    println!("ratio ADC/NMDC: {:.2}", adc / nmdc);

    // Incremental updates: every user changes its share size once.
    let updates: Vec<Vec<u8>> = (0..users)
        .map(|i| {
            let sid = Sid::new(i as u32 + 2).map(|s| s.to_string()).unwrap_or_default();
            format!("BINF {sid} SS{} FS1", i as u64 * 3).into_bytes()
        })
        .collect();
    let mut list = UserList::default();
    let mut sids = SidMap::default();
    apply_binf_lines(&mut list, &mut sids, binf.iter().map(Vec::as_slice));
    let t = Instant::now();
    let n_upd = apply_binf_lines(&mut list, &mut sids, updates.iter().map(Vec::as_slice));
    let t_upd = t.elapsed();
    println!(
        "ADC  incremental BINF: {n_upd} updates in {:.1} ms = {:.0} updates/s ({:.2} x the NMDC full-$MyINFO rate)",
        t_upd.as_secs_f64() * 1e3,
        rate(n_upd, t_upd),
        rate(n_upd, t_upd) / nmdc
    );
}
