//! Synthetic hub user lists for the big-hub benchmarks (`benches/hubs.rs`,
//! `benches/join.rs`): lines like the ones real clients announce.

use dclua::proto::adc::{Pid, Sid};

/// NMDC `$MyINFO` lines (about 113 bytes, without the `|`): varied nicks,
/// descriptions, five client tags, active and passive, some e-mails.
pub fn my_info_lines(n: usize) -> Vec<Vec<u8>> {
    let clients =
        ["++ V:0.868", "EiskaltDC++ V:2.4.2", "AirDC++ V:4.21", "ncdc V:1.23", "dclua V:0.1.0"];
    (0..n)
        .map(|i| {
            let client = clients[i % clients.len()];
            let mode = if i % 3 == 0 { "P" } else { "A" };
            format!(
                "$MyINFO $ALL user_{i:07}_{} shares music and films {}<{client},M:{mode},H:{}/0/{},S:{}>$ $100\x01${}$",
                i % 97,
                i % 1000,
                1 + i % 5,
                i % 2,
                3 + i % 10,
                if i % 4 == 0 {
                    format!("u{i}@example.org${}", (i as u64) * 1_234_567)
                } else {
                    format!("${}", (i as u64) * 7_654_321)
                },
            )
            .into_bytes()
        })
        .collect()
}

/// ADC `BINF` lines as DC++/eiskaltdcpp announce them (about 214 bytes, a
/// random CID each), SIDs from 2 on (`AAAB` is left for the client).
pub fn binf_lines(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let sid = Sid::new(i as u32 + 2).map(|s| s.to_string()).unwrap_or_default();
            let cid = Pid::random().cid();
            format!(
                "BINF {sid} ID{cid} NIuser{i:07} DEsome\\sdescription\\s{i} SL3 FS2 SS{} SF{} \
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
