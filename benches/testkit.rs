//! The bot test kit on a long scenario: an hour of hub life (users joining
//! and leaving, chat every few seconds, commands for three bots) on the
//! virtual clock, against the same runner's cost of a test that only logs in
//! (the baseline, measured in the same run).
//!
//! `cargo bench --bench testkit` prints, per protocol: the baseline, the
//! scenario's wall time, the virtual time it covered and the speed-up
//! (virtual seconds per wall second). Goal: the hour in under a second.

use std::path::Path;
use std::time::{Duration, Instant};

use dclua::testkit::{run, RunOptions};

const ROUNDS: usize = 3;

fn scenario(protocol: &str, scripts: &Path) -> String {
    format!(
        r#"
function test_an_hour_of_hub_life()
  local hub = dctest.hub{{ protocol = "{protocol}" }}
  dctest.load({greeter:?})
  dctest.load({seen:?})
  dctest.load({pinger:?})
  local users, online = {{}}, {{}}
  for i = 1, 30 do users[i] = "user" .. i end
  for i = 1, 10 do online[i] = hub:join{{ nick = users[i] }} end
  local next_in = 11
  for step = 1, 1200 do              -- 1200 x 3 s = one hour
    local speaker = online[(step % #online) + 1]
    if step % 10 == 0 then
      speaker:say("ping")
    elseif step % 30 == 15 then
      speaker:say("!seen " .. users[(step % 30) + 1])
    else
      speaker:say("chat line " .. step)
    end
    if step % 20 == 0 then           -- a minute: someone leaves, someone comes
      local gone = table.remove(online, 1)
      gone:leave()
      online[#online + 1] = hub:join{{ nick = users[next_in] }}
      next_in = next_in % 30 + 1
      if next_in <= 10 then next_in = 11 end
    end
    dctest.advance(3)
  end
  expect(dctest.now()).to_be_at_least(3600)
  local pongs, welcomes = 0, 0
  for _, r in ipairs(hub:sent("chat")) do
    if r.text:match("^pong") then pongs = pongs + 1 end
    if r.text:match("^Welcome") then welcomes = welcomes + 1 end
  end
  expect(pongs).to_be_at_least(100)
  expect(welcomes).to_be_at_least(10)
end
"#,
        greeter = scripts.join("greeter.lua"),
        seen = scripts.join("seen.lua"),
        pinger = scripts.join("pinger.lua"),
    )
}

fn baseline(protocol: &str) -> String {
    format!("function test_logs_in() dctest.hub{{ protocol = \"{protocol}\" }} end\n")
}

/// Runs the file's tests ROUNDS times; the fastest wall time.
fn time(dir: &Path, name: &str, source: &str) -> Duration {
    let path = dir.join(name);
    std::fs::write(&path, source).expect("writing the test file");
    let opts = RunOptions { paths: vec![path], ..RunOptions::default() };
    let mut best = Duration::MAX;
    for _ in 0..ROUNDS {
        let mut out = Vec::new();
        let t = Instant::now();
        let summary = run(&opts, &mut out).expect("running the tests");
        let took = t.elapsed();
        assert_eq!(summary.failed, 0, "{}", String::from_utf8_lossy(&out));
        best = best.min(took);
    }
    best
}

fn main() {
    // `cargo bench` passes --bench; nothing else is read.
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts");
    let dir = std::env::temp_dir().join(format!("dclua-bench-testkit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary folder");
    println!("bot test kit: one virtual hour of a hub with three bots (best of {ROUNDS})");
    for protocol in ["nmdc", "adc"] {
        let base = time(&dir, &format!("base_{protocol}_test.lua"), &baseline(protocol));
        let long = time(&dir, &format!("hour_{protocol}_test.lua"), &scenario(protocol, &scripts));
        let virtual_secs = 3600.0;
        println!(
            "  {protocol:4}  baseline (log in only) {:7.1} ms | one hour {:7.1} ms | {:.0} virtual s per wall s | hour / baseline {:.1}",
            base.as_secs_f64() * 1e3,
            long.as_secs_f64() * 1e3,
            virtual_secs / long.as_secs_f64(),
            long.as_secs_f64() / base.as_secs_f64(),
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
