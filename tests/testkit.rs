//! The bot test kit (`dclua test`), driven through the real binary: the
//! example bots' kit tests pass on both protocols, a failing test says what
//! was expected, what came and what the hub saw, the guide's example runs,
//! and the stubs name what the kit defines.

mod support;

use std::path::Path;
use std::process::Output;

use anyhow::{ensure, Result};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `dclua test ARGS...` in a fresh home, run in `dir`.
fn dclua_test(dir: &Path, args: &[&str]) -> Result<(Output, String)> {
    let home = tempfile::tempdir()?;
    let out = support::bin::dclua(home.path()).current_dir(dir).arg("test").args(args).output()?;
    let text = format!(
        "{}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out, text))
}

/// Counts the `test ... ok` lines.
fn passed(text: &str) -> usize {
    text.lines().filter(|l| l.starts_with("test ") && l.contains(" ... ok")).count()
}

#[test]
fn the_example_bots_pass_their_kit_tests_on_both_protocols() -> Result<()> {
    let (out, text) = dclua_test(root(), &["scripts"])?;
    ensure!(out.status.success(), "{text}");
    for name in [
        "greeter_test.lua::test_greets_a_user_who_joins_nmdc",
        "greeter_test.lua::test_greets_a_nick_once_an_hour_adc",
        "seen_test.lua::test_answers_a_pm_by_pm_and_counts_the_hours_nmdc",
        "seen_test.lua::test_answers_in_chat_where_it_is_asked_adc",
        "pinger_test.lua::test_answers_at_most_three_pings_per_ten_seconds_nmdc",
        "pinger_test.lua::test_answers_at_most_three_pings_per_ten_seconds_adc",
    ] {
        ensure!(text.contains(&format!("{name} ... ok")), "{name} did not pass:\n{text}");
    }
    ensure!(passed(&text) == 16, "16 tests expected:\n{text}");
    ensure!(text.contains("test result: ok. 16 passed; 0 failed"), "{text}");
    Ok(())
}

/// The kit's own features (users at login, PMs both ways, searches and
/// results; reconnects, keep-alives, the login timeout and `os.time` on
/// the virtual clock; the bot's sandbox, matchers), on both protocols:
/// `tests/kit/kit_test.lua`.
#[test]
fn the_kits_own_tests_pass() -> Result<()> {
    let (out, text) = dclua_test(root(), &["tests/kit"])?;
    ensure!(out.status.success(), "{text}");
    ensure!(text.contains("19 passed; 0 failed"), "{text}");
    Ok(())
}

#[test]
fn a_failing_test_shows_the_expectation_the_actual_value_and_the_transcript() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let pinger = root().join("scripts/pinger.lua");
    std::fs::write(
        dir.path().join("wrong_test.lua"),
        format!(
            r#"function test_wrong_answer()
  local hub = dctest.hub{{ protocol = "adc" }}
  dctest.load({pinger:?})
  hub:join{{ nick = "alice" }}:say("ping")
  local said = hub:expect_chat("^pong")
  expect(said.text).to_equal("pong, bob")
end

function test_never_answered()
  local hub = dctest.hub{{ protocol = "nmdc" }}
  dctest.load({pinger:?})
  hub:join{{ nick = "carol" }}:say("!pong")
  hub:expect_chat("^pong", {{ timeout = 30 }})
end

function test_a_bot_that_raises()
  local hub = dctest.hub{{ protocol = "nmdc" }}
  local f = assert(io.open(dc.data_dir() .. "/buggy.lua", "w"))
  f:write('dc.on("chat", function(e) if e.text == "boom" then local x = nil; return x.field end end)')
  f:close()
  dctest.load(dc.data_dir() .. "/buggy.lua")
  hub:join{{ nick = "dave" }}:say("boom")
  dctest.advance(1)
end

function test_passes()
  expect({{ 1, {{ a = "x" }} }}).to_equal({{ 1, {{ a = "x" }} }})
end
"#
        ),
    )?;
    let (out, text) = dclua_test(dir.path(), &["wrong_test.lua"])?;
    ensure!(out.status.code() == Some(1), "exit status 1 expected:\n{text}");
    // The file and line, the expectation and the actual value.
    ensure!(
        text.contains("wrong_test.lua:6: expected \"pong, bob\"\n     got \"pong, alice\""),
        "{text}"
    );
    ensure!(
        text.contains(
            "wrong_test.lua:13: expected the client to send chat matching \"^pong\" within 30 s"
        ),
        "{text}"
    );
    // The transcript of the hub traffic, both ways.
    ensure!(text.contains("transcript of the adc hub adc://127.0.0.1:"), "{text}");
    ensure!(text.contains("hub >> BMSG AAAD ping"), "{text}");
    ensure!(text.contains("hub << BMSG AAAC pong,\\\\salice"), "{text}");
    ensure!(text.contains("hub >> <carol> !pong"), "{text}");
    // An error a bot raises in a handler fails the test that provoked it.
    ensure!(
        text.contains("a script raised an error during the test:\n  script buggy: error in handler for 'chat': ")
            && text.contains("buggy.lua:1: attempt to index a nil value (local 'x')"),
        "{text}"
    );
    ensure!(text.contains("test result: FAILED. 1 passed; 3 failed"), "{text}");
    // A filter runs only what it names.
    let (out, text) = dclua_test(dir.path(), &["--filter", "passes", "wrong_test.lua"])?;
    ensure!(out.status.success(), "{text}");
    ensure!(text.contains("1 passed; 0 failed; 3 filtered out"), "{text}");
    Ok(())
}

#[test]
fn a_test_that_waits_forever_fails_soon_and_a_broken_file_is_reported() -> Result<()> {
    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("stuck_test.lua"),
        "function test_waits_forever() dc.wait(\"chat\") end\n",
    )?;
    std::fs::write(dir.path().join("broken_test.lua"), "function test_x( end\n")?;
    let t = std::time::Instant::now();
    let (out, text) = dclua_test(dir.path(), &["."])?;
    ensure!(out.status.code() == Some(1), "{text}");
    // The client's own timers (keep-alives, queue saves) tick on: the
    // clock runs through them to the limit, in a fraction of a second.
    ensure!(
        text.contains("stuck_test.lua::test_waits_forever ... FAILED")
            && text.contains("the test still waits after 24 virtual hours"),
        "a test that waits forever is told:\n{text}"
    );
    ensure!(text.contains("broken_test.lua ... FAILED (loading)"), "{text}");
    ensure!(t.elapsed() < std::time::Duration::from_secs(30), "{text}");
    Ok(())
}

#[test]
fn the_guides_testing_example_runs() -> Result<()> {
    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("first.lua"),
        support::guide_block("Step 2: a first script", 0)?,
    )?;
    std::fs::write(
        dir.path().join("first_test.lua"),
        support::guide_block("Step 10: testing a bot", 0)?,
    )?;
    let (out, text) = dclua_test(dir.path(), &["first_test.lua"])?;
    ensure!(out.status.success(), "{text}");
    ensure!(text.contains("test first_test.lua::test_answers_ping ... ok"), "{text}");
    ensure!(text.contains("test first_test.lua::test_stays_quiet_otherwise ... ok"), "{text}");
    Ok(())
}

#[test]
fn without_paths_the_tests_beside_the_configuration_run() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let conf = dir.path().join("conf");
    std::fs::create_dir_all(conf.join("tests"))?;
    std::fs::write(conf.join("config.lua"), "nick = \"me\"\n")?;
    std::fs::write(
        conf.join("tests").join("a_test.lua"),
        "function test_one() dctest.advance(5) expect(dctest.now()).to_equal(5) end\n",
    )?;
    let config = conf.join("config.lua");
    let (out, text) = dclua_test(dir.path(), &["--config", config.to_str().unwrap_or_default()])?;
    ensure!(out.status.success(), "{text}");
    ensure!(text.contains("a_test.lua::test_one ... ok"), "{text}");
    Ok(())
}

/// Every function `dctest.lua` defines is in `dctest.d.lua`, and the stubs
/// define nothing else.
#[test]
fn the_stubs_describe_what_the_kit_defines() -> Result<()> {
    let source = std::fs::read_to_string(root().join("src/testkit/dctest.lua"))?;
    let stubs = std::fs::read_to_string(root().join("lua-api/dctest.d.lua"))?;
    let defined = |text: &str, prefixes: &[(&str, &str)]| -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for line in text.lines() {
            let line = line.trim_start();
            for (prefix, shown) in prefixes {
                if let Some(rest) = line.strip_prefix(prefix) {
                    let name: String =
                        rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                    names.push(format!("{shown}{name}"));
                }
            }
        }
        names.sort();
        names
    };
    let in_source = defined(
        &source,
        &[
            ("function dctest.", "dctest."),
            ("function Hub:", "Hub:"),
            ("function User:", "User:"),
            ("function e.", "expect()."),
            ("function expect", "expect"),
        ],
    );
    let mut in_source = in_source;
    in_source.push("dctest.repr".into()); // assigned, not declared with `function`
    in_source.sort();
    let in_stubs = defined(
        &stubs,
        &[
            ("function dctest.", "dctest."),
            ("function Hub:", "Hub:"),
            ("function User:", "User:"),
            ("function Expectation.", "expect()."),
            ("function expect", "expect"),
        ],
    );
    ensure!(in_source == in_stubs, "dctest.lua defines {in_source:?}\nthe stubs {in_stubs:?}");
    Ok(())
}
