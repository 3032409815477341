//! The soak test: a fake NMDC hub cycles through user floods, churn (with
//! searches), garbage and a redirect loop, over and over, while a script on
//! the client keeps a heartbeat. No heartbeat gap may exceed 2 s, nothing
//! may panic, no file behind a symlink out of the share is ever answered,
//! and the client must still answer at the end.
//!
//! CI runs it for `DCLUA_SOAK_SECS` seconds (default 40); run it longer by
//! hand and read the figures it prints (the longest gap, resident memory
//! after warm-up and at the end):
//! `DCLUA_SOAK_SECS=600 cargo test --release --test soak -- --nocapture`.
//! `DCLUA_SOAK_ONLY=N` (0 floods, 1 churn, 2 garbage) alternates one kind
//! of round with the redirect loop, to find what grows.
//!
//! Everything talks to 127.0.0.1 only; every wait is bounded.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use dclua::hub::Identity;
use support::client::Client;
use support::fake_hub::{junk, rss, FakeConn, FakeHub};

fn soak_secs() -> u64 {
    std::env::var("DCLUA_SOAK_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(40)
}

/// `n` users' `$MyINFO` lines from `first`, in one buffer.
fn flood(first: usize, n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n * 110);
    for i in first..first + n {
        out.extend_from_slice(
            format!(
                "$MyINFO $ALL soak{i:07} a soaking user {i}<EiskaltDC++ V:2.4.2,M:A,H:1/0/0,S:3>$ $100\x01$$\
                 {}$|",
                i as u64 * 1_000_003
            )
            .as_bytes(),
        );
    }
    out
}

/// One round of the hub: a login, then one kind of trouble. Returns how the
/// connection ended, for the log of rounds.
fn round(first: &FakeHub, second: &FakeHub, k: usize) -> Result<&'static str> {
    let mut conn = first.accept()?;
    conn.login("soaker")?;
    // `DCLUA_SOAK_ONLY=N` alternates one kind of round with the redirect
    // loop (whose end resets the reconnect back-off), to find what grows.
    let only: Option<usize> = std::env::var("DCLUA_SOAK_ONLY").ok().and_then(|v| v.parse().ok());
    let kind = match only {
        Some(o) if k % 2 == 0 => o,
        Some(_) => 3,
        None => k % 4,
    };
    match kind {
        // A flood of 20,000 users, then half of them leave, then chat.
        0 => {
            conn.send(&flood(k * 20_000, 20_000))?;
            let mut quits = Vec::new();
            for i in (k * 20_000..(k + 1) * 20_000).step_by(2) {
                quits.extend_from_slice(format!("$Quit soak{i:07}|").as_bytes());
            }
            conn.send(&quits)?;
            conn.send(b"<hub> the flood is over|")?;
            std::thread::sleep(Duration::from_millis(300));
            Ok("flood")
        }
        // Churn: users come and go and talk, for a while.
        1 => {
            for j in 0..200 {
                let mut b = flood(j * 10, 10);
                for i in 0..10 {
                    b.extend_from_slice(format!("<soak{:07}> line {j}|", j * 10 + i).as_bytes());
                    b.extend_from_slice(format!("$Quit soak{:07}|", j * 10 + i).as_bytes());
                }
                conn.send(&b)?;
                std::thread::sleep(Duration::from_millis(5));
            }
            // A search the shared file answers, after one only a symlink out
            // of the share could: answers come in order, so when the first
            // is here the second would be too.
            conn.send(
                b"$Search Hub:searcher F?T?0?1?secret-soak|$Search Hub:searcher F?T?0?1?visible-soak|",
            )?;
            conn.wait_for(b"visible-soak.txt")?;
            if conn.text().contains("secret-soak") {
                bail!("a file behind a symlink out of the share was answered: {}", conn.text());
            }
            Ok("churn")
        }
        // Garbage: random bytes cut into commands, then a line too long.
        2 => {
            let mut noise = junk(300_000, 0x5eed ^ k as u64);
            for (i, b) in noise.iter_mut().enumerate() {
                if i % 89 == 0 {
                    *b = b'|';
                }
            }
            noise.push(b'|');
            // The client may close on any of it; that is its right.
            let _ = conn.send(&noise);
            let _ = conn.send(&vec![b'x'; 5 << 20]);
            if !conn.closed()? {
                bail!("the client kept a connection that sent a 5 MB line");
            }
            Ok("garbage")
        }
        // A redirect loop: to the second hub, which sends it back. The
        // session ends for good; the script connects again.
        _ => {
            conn.send(format!("$ForceMove 127.0.0.1:{}|", second.port.get()).as_bytes())?;
            let _ = conn.closed()?;
            let mut moved: FakeConn = second.accept()?;
            moved.login("soaker")?;
            moved.send(format!("$ForceMove {}|", first.url()).as_bytes())?;
            let _ = moved.closed()?;
            Ok("redirect loop")
        }
    }
}

#[test]
fn a_hostile_hub_for_minutes_never_stops_the_heartbeat() -> Result<()> {
    let secs = soak_secs();
    let first = FakeHub::start()?;
    let second = FakeHub::start()?;
    // The share holds a file and a symlink to a folder outside it, whose
    // file must never be listed or answered.
    let files = support::component_dir("soak")?;
    let share = files.path().join("share");
    let outside = files.path().join("outside");
    std::fs::create_dir_all(&share)?;
    std::fs::create_dir_all(&outside)?;
    std::fs::write(share.join("visible-soak.txt"), b"in the share")?;
    std::fs::write(outside.join("secret-soak.txt"), b"not in the share")?;
    std::os::unix::fs::symlink(&outside, share.join("outside"))?;
    let me = Client::sharing(
        Identity {
            nick: "soaker".into(),
            description: "soaking".into(),
            slots: 2,
            ..Identity::default()
        },
        &share,
    );
    me.wait_shared(1)?;
    me.run(&format!(
        r#"beats = 0
           dc.every(0.1, function() beats = beats + 1 end)
           local function connect()
             hub = dc.connect("{url}", {{reconnect_delay = 0.1}})
           end
           -- A bot's answer to a session that ended for good (the loop).
           dc.on("hub_disconnected", function(e)
             if e.reconnect_in == nil then dc.after(0.1, connect) end
           end)
           connect()"#,
        url = first.url()
    ))?;

    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let hub = std::thread::spawn(move || -> Result<Vec<&'static str>> {
        let mut rounds = Vec::new();
        let mut k = 0;
        while !flag.load(Ordering::SeqCst) {
            rounds.push(round(&first, &second, k).with_context(|| format!("round {k}"))?);
            k += 1;
        }
        Ok(rounds)
    });

    // The heartbeat, seen from outside: the longest time the count did not
    // move. The worker answers these reads too, so a stall shows either way.
    let start = Instant::now();
    let mut last = (me.value("return beats")?, Instant::now());
    let mut longest = Duration::ZERO;
    let mut warm_rss = None;
    while start.elapsed() < Duration::from_secs(secs) {
        if hub.is_finished() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        // The chat the client prints, held by the harness until read.
        me.drain_output();
        let now = me.value("return beats")?;
        let at = Instant::now();
        if now != last.0 {
            longest = longest.max(at - last.1);
            last = (now, at);
        }
        if warm_rss.is_none() && start.elapsed() > Duration::from_secs(secs / 4) {
            warm_rss = Some(rss());
        }
    }
    longest = longest.max(last.1.elapsed());
    stop.store(true, Ordering::SeqCst);
    let rounds = hub.join().map_err(|_| anyhow::anyhow!("the fake hub panicked"))??;
    let end_rss = rss();
    // The harness keeps every log line in memory: part of the RSS.
    let (log_count, log_bytes) = {
        let lines = support::client::log_lines();
        let v = lines.lock().map_err(|_| anyhow::anyhow!("log lock"))?;
        (v.len(), v.iter().map(|l| l.len() + 24).sum::<usize>())
    };
    let hubs = me.value("local n = 0 for _ in pairs(dc.hubs()) do n = n + 1 end return n")?;
    println!(
        "soak: {secs} s, {} rounds ({} floods, {} churns, {} garbage, {} redirect loops); \
         longest heartbeat gap {:.0} ms; RSS after warm-up {} MiB, at the end {} MiB \
         (the harness holds {log_count} log lines, {} KiB; the client knows {hubs} hubs)",
        rounds.len(),
        rounds.iter().filter(|r| **r == "flood").count(),
        rounds.iter().filter(|r| **r == "churn").count(),
        rounds.iter().filter(|r| **r == "garbage").count(),
        rounds.iter().filter(|r| **r == "redirect loop").count(),
        longest.as_secs_f64() * 1000.0,
        warm_rss.unwrap_or(0) >> 20,
        end_rss >> 20,
        log_bytes >> 10
    );
    anyhow::ensure!(rounds.len() >= 4, "only {} rounds in {secs} s: {rounds:?}", rounds.len());
    anyhow::ensure!(longest < Duration::from_secs(2), "a heartbeat gap of {longest:?}");
    // Still answering, the hub still known, nothing from outside listed.
    anyhow::ensure!(me.value("return hub ~= nil")? == "true", "no hub");
    let found = me.value(r#"return #dc.share.find({text = "secret-soak"})"#)?;
    anyhow::ensure!(found == "0", "the share lists {found} files from outside");
    Ok(())
}
