//! `dclua daemon` and `dclua attach`, the real binary end to end (issue 13):
//! a daemon on a configuration that connects uhub and the NMDC hub and loads
//! a bot; consoles attached with `attach -e` and a piped `attach`, two at
//! once; the bot's store across a restart; a console of another user
//! refused by the socket's file mode and, when the file is loosened, by the
//! peer-credential check; the guide's tutorial daemon and its shell
//! session.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use support::bin::dclua;
use support::tmux::{follows, last_line, quote, Tmux};
use support::{NmdcHub, NmdcHubOptions, Uhub, UhubOptions};

fn data_dir(home: &Path) -> PathBuf {
    home.join("data").join("dclua")
}

/// A running daemon; killed when dropped. Its standard error is collected.
struct Daemon {
    child: Child,
    log: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Daemon {
    fn start(home: &Path) -> Result<Daemon> {
        let mut child = dclua(home)
            .arg("daemon")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting dclua daemon")?;
        let (tx, log) = mpsc::channel();
        let err = child.stderr.take().context("the daemon's stderr")?;
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut d = Daemon { child, log, seen: Vec::new() };
        d.wait_log("control socket: attach with", Duration::from_secs(20))?;
        Ok(d)
    }

    /// Waits for a log line containing `needle`.
    fn wait_log(&mut self, needle: &str, limit: Duration) -> Result<String> {
        if let Some(l) = self.seen.iter().find(|l| l.contains(needle)) {
            return Ok(l.clone());
        }
        let t = Instant::now();
        while t.elapsed() < limit {
            if let Ok(line) = self.log.recv_timeout(Duration::from_millis(100)) {
                self.seen.push(line.clone());
                if line.contains(needle) {
                    return Ok(line);
                }
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("the daemon exited ({status}); its log:\n{}", self.seen.join("\n"));
            }
        }
        bail!("no log line with {needle:?} within {limit:?}; the log:\n{}", self.seen.join("\n"))
    }

    /// SIGTERM, and the exit within a few seconds.
    fn stop(mut self) -> Result<()> {
        let pid = i32::try_from(self.child.id())?;
        // SAFETY: signals a child this test started and has not reaped.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(15) {
            if let Some(status) = self.child.try_wait()? {
                ensure!(status.success(), "the daemon exited with {status}");
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("the daemon did not stop within 15 s of SIGTERM")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `dclua attach -e chunk`, bounded.
fn attach_e(cmd: Command, chunk: &str) -> Result<Output> {
    let mut cmd = cmd;
    let mut child = cmd
        .arg("attach")
        .arg("-e")
        .arg(chunk)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let t = Instant::now();
    while child.try_wait()?.is_none() {
        if t.elapsed() > Duration::from_secs(30) {
            child.kill()?;
            bail!("dclua attach -e {chunk:?} did not end within 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(child.wait_with_output()?)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim_end().to_string()
}

/// Waits (inside the daemon) until both hubs are online.
const BOTH_ONLINE: &str = r#"
    for _ = 1, 300 do
      local n = 0
      for _, h in ipairs(dc.hubs()) do
        if h.state == "online" then n = n + 1 end
      end
      if n == 2 then return "online" end
      dc.sleep(0.1)
    end
    return "not online"
"#;

/// Asks the bot how many times it started (it answers an event).
const ASK_BOT: &str = r#"
    dc.emit("starts?")
    local e = dc.wait("starts", {timeout = 10})
    return e and e.n
"#;

const BOT: &str = r#"
    local n = (dc.store.load("starts") or 0) + 1
    dc.store.save("starts", n)
    dc.on("starts?", function() dc.emit("starts", {n = n}) end)
"#;

#[test]
fn a_daemon_runs_the_configuration_and_consoles_attach_to_it() -> Result<()> {
    let uhub = Uhub::start(UhubOptions::default())?;
    let nmdc = NmdcHub::start(NmdcHubOptions::default())?;
    let home = tempfile::tempdir()?;
    let config_dir = home.path().join("config").join("dclua");
    std::fs::create_dir_all(&config_dir)?;
    std::fs::write(config_dir.join("bot.lua"), BOT)?;
    std::fs::write(
        config_dir.join("config.lua"),
        format!(
            "nick = 'daemon'\nscripts = {{ 'bot.lua' }}\nhubs = {{ '{}', '{}' }}\n",
            uhub.url(),
            nmdc.url()
        ),
    )?;
    let mut daemon = Daemon::start(home.path())?;

    // One chunk from the shell.
    let o = attach_e(dclua(home.path()), BOTH_ONLINE)?;
    ensure!(stdout(&o) == "online", "{o:?}; daemon log:\n{}", daemon.seen.join("\n"));
    let o = attach_e(dclua(home.path()), ASK_BOT)?;
    ensure!(stdout(&o) == "1", "the bot's first start: {o:?}");
    let o = attach_e(dclua(home.path()), "error('on purpose')")?;
    ensure!(o.status.code() == Some(1), "an error exits 1: {o:?}");
    ensure!(String::from_utf8_lossy(&o.stderr).contains("on purpose"), "{o:?}");

    // A console that stays attached, and a second one while it is.
    let mut first = dclua(home.path())
        .arg("attach")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut input = first.stdin.take().context("stdin")?;
    let (tx, lines) = mpsc::channel();
    let out = first.stdout.take().context("stdout")?;
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let next_line = |what: &str| {
        lines.recv_timeout(Duration::from_secs(15)).with_context(|| format!("waiting for {what}"))
    };
    input.write_all(b"shared = 41\nreturn shared + 1\n")?;
    ensure!(next_line("the first console's answer")? == "42");
    let o = attach_e(dclua(home.path()), "return shared")?;
    ensure!(stdout(&o) == "41", "a second console shares the console state: {o:?}");
    input.write_all(b"return #dc.hubs()\n")?;
    ensure!(next_line("the first console, still attached")? == "2");
    drop(input);
    let t = Instant::now();
    while first.try_wait()?.is_none() {
        ensure!(
            t.elapsed() < Duration::from_secs(10),
            "the console did not detach at end of input"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    daemon.wait_log("a console detached", Duration::from_secs(5))?;
    let o = attach_e(dclua(home.path()), "return #dc.hubs()")?;
    ensure!(stdout(&o) == "2", "detaching left the client running: {o:?}");

    // The store survives a restart.
    daemon.stop()?;
    ensure!(!data_dir(home.path()).join("control.sock").exists(), "the socket file is removed");
    let daemon = Daemon::start(home.path())?;
    let o = attach_e(dclua(home.path()), ASK_BOT)?;
    ensure!(stdout(&o) == "2", "the bot's second start: {o:?}");
    daemon.stop()?;
    Ok(())
}

/// The hub address of the tutorial's configuration, replaced by a test hub's.
const TUTORIAL_HUB: &str = "dchub://hub.example.org:411";

/// The `dclua attach -e` commands of the guide's shell session in `section`,
/// each with the lines the guide shows it printing.
fn guide_attach_session(section: &str) -> Result<Vec<(String, String)>> {
    let guide = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("lua-api/README.md"),
    )?;
    let text = guide.split(&format!("\n## {section}\n")).nth(1).context("the section")?;
    let text = text.split("\n## ").next().unwrap_or_default();
    let block = text
        .split("```sh\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .find(|b| b.contains("$ dclua attach -e"))
        .context("a shell session with dclua attach -e")?;
    let mut session: Vec<(String, String)> = Vec::new();
    let mut current: Option<(String, Vec<&str>)> = None;
    for line in block.lines() {
        if let Some(command) = line.strip_prefix("$ ") {
            if let Some((chunk, out)) = current.take() {
                session.push((chunk, out.join("\n")));
            }
            if let Some(chunk) = command.strip_prefix("dclua attach -e '") {
                let chunk = chunk.strip_suffix('\'').context("a quoted chunk")?;
                current = Some((chunk.to_string(), Vec::new()));
            }
        } else if let Some((_, out)) = current.as_mut() {
            out.push(line);
        }
    }
    if let Some((chunk, out)) = current.take() {
        session.push((chunk, out.join("\n")));
    }
    Ok(session)
}

/// The tutorial's bot running for good (step 8): the configuration shown,
/// pointed at the real NMDC hub, runs the bot of step 5 in `dclua daemon`;
/// each `dclua attach -e` of the shell session prints what the guide shows;
/// the bot's log line lands in `log_file`; SIGHUP reloads the configuration.
#[test]
fn the_tutorials_daemon_session_runs_as_shown() -> Result<()> {
    let nmdc = NmdcHub::start(NmdcHubOptions::default())?;
    let home = tempfile::tempdir()?;
    let config_dir = home.path().join("config").join("dclua");
    std::fs::create_dir_all(&config_dir)?;
    let config = support::guide_block("Step 8: running it for good", 0)?;
    ensure!(config.contains(TUTORIAL_HUB), "the tutorial's hub address changed");
    std::fs::write(config_dir.join("config.lua"), config.replace(TUTORIAL_HUB, &nmdc.url()))?;
    let bot = support::guide_block("Step 5: remembering things", 0)?;
    std::fs::write(config_dir.join("bot.lua"), bot)?;
    let daemon = Daemon::start(home.path())?;
    let online = r#"for _ = 1, 300 do
                      if dc.hubs()[1].state == "online" then return "online" end
                      dc.sleep(0.1)
                    end"#;
    let o = attach_e(dclua(home.path()), online)?;
    ensure!(stdout(&o) == "online", "{o:?}; daemon log:\n{}", daemon.seen.join("\n"));

    let session = guide_attach_session("Step 8: running it for good")?;
    ensure!(session.len() >= 3, "{session:?}");
    for (chunk, shown) in &session {
        let o = attach_e(dclua(home.path()), chunk)?;
        ensure!(o.status.success(), "{chunk}: {o:?}");
        ensure!(&stdout(&o) == shown, "{chunk}: the guide shows {shown:?}, got {o:?}");
    }

    // The bot logged its hub to the configuration's log file.
    let log_file = config_dir.join("bot.log");
    let wanted = format!("on {} with ", nmdc.url());
    let reloads = |log: &str| log.matches("configuration reloaded from").count();
    let log = std::fs::read_to_string(&log_file)?;
    ensure!(log.contains(&wanted), "the log file:\n{log}");
    // SIGHUP reloads the configuration.
    let before = reloads(&log);
    let pid = i32::try_from(daemon.child.id())?;
    // SAFETY: signals a child this test started and has not reaped.
    unsafe { libc::kill(pid, libc::SIGHUP) };
    let t = Instant::now();
    while reloads(&std::fs::read_to_string(&log_file)?) == before {
        ensure!(t.elapsed() < Duration::from_secs(10), "no reload logged after SIGHUP");
        std::thread::sleep(Duration::from_millis(50));
    }
    daemon.stop()
}

#[test]
fn attach_without_a_daemon_says_so() -> Result<()> {
    let home = tempfile::tempdir()?;
    let o = attach_e(dclua(home.path()), "return 1")?;
    let err = String::from_utf8_lossy(&o.stderr);
    ensure!(o.status.code() == Some(1), "{o:?}");
    ensure!(err.contains("is a `dclua daemon` running on the data folder"), "{err}");
    Ok(())
}

#[test]
fn a_console_of_another_user_is_refused() -> Result<()> {
    let home = tempfile::tempdir()?;
    let data = home.path().join("data");
    let mut daemon = Daemon::start(home.path())?;
    let socket = data_dir(home.path()).join("control.sock");
    let mode = std::fs::metadata(&socket)?.permissions().mode() & 0o777;
    ensure!(mode == 0o600, "the socket is owner-only: {mode:o}");
    // Let `nobody` reach the socket file (the temporary folder is 0700).
    for dir in [home.path(), data.as_path(), &data_dir(home.path())] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    }
    let intruder = || {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(env!("CARGO_BIN_EXE_dclua"))
            .arg("--data-dir")
            .arg(data_dir(home.path()))
            .env("HOME", "/nonexistent")
            .env("XDG_CONFIG_HOME", "/nonexistent")
            .env_remove("RUST_LOG");
        c
    };
    // The file mode stops it first...
    let o = attach_e(intruder(), "return 'in'")?;
    ensure!(!o.status.success() && stdout(&o).is_empty(), "{o:?}");
    ensure!(String::from_utf8_lossy(&o.stderr).contains("ermission denied"), "{o:?}");
    // ...and with the file loosened, the peer credentials do.
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666))?;
    let o = attach_e(intruder(), "return 'in'")?;
    ensure!(!o.status.success() && stdout(&o).is_empty(), "{o:?}");
    ensure!(String::from_utf8_lossy(&o.stderr).contains("refused"), "{o:?}");
    daemon.wait_log("refused a console of user 65534", Duration::from_secs(5))?;
    // Without a `log_file` in the configuration, the daemon logs to one in
    // the data folder as well.
    let log = std::fs::read_to_string(data_dir(home.path()).join("dclua.log"))?;
    ensure!(log.contains("refused a console of user 65534"), "the log file:\n{log}");
    // The owner still gets in.
    let o = attach_e(dclua(home.path()), "return 'owner'")?;
    ensure!(stdout(&o) == "owner", "{o:?}");
    daemon.stop()
}

/// What a user types in `dclua attach` on a terminal: the same console as a
/// local one (completion from the daemon's state, multi-line chunks, lines
/// printed by other consoles above the prompt), and Ctrl-D detaches.
#[test]
fn an_attached_console_in_a_terminal() -> Result<()> {
    let home = tempfile::tempdir()?;
    let mut daemon = Daemon::start(home.path())?;
    let tmux = Tmux::start(home.path());
    let h = quote(home.path());
    let c = tmux.window(
        "attach",
        &format!(
            "env HOME={h} XDG_CONFIG_HOME={h}/config XDG_DATA_HOME={h}/data {} attach",
            quote(Path::new(env!("CARGO_BIN_EXE_dclua")))
        ),
    );
    c.wait("the prompt", |s| last_line(s) == "dclua>");
    // Completion comes from the daemon.
    c.text("dc.sl");
    c.keys(&["Tab"]);
    c.wait("dc.sl completed", |s| last_line(s) == "dclua> dc.sleep");
    c.line("(0)");
    c.wait("dc.sleep(0) ran", |s| follows(s, "dclua> dc.sleep(0)", "dclua>"));
    // Methods of an object, from its class.
    c.line("t = dc.after(600, function() end)");
    c.wait("the timer made", |s| follows(s, "dclua> t = dc.after(600, function() end)", "dclua>"));
    c.text("t:st");
    c.keys(&["Tab"]);
    c.wait("t:st completed", |s| last_line(s) == "dclua> t:stop");
    c.line("()");
    c.wait("t:stop() ran", |s| follows(s, "dclua> t:stop()", "dclua>"));
    // A chunk over several lines.
    c.line("function f()");
    c.line("return 40 + 2");
    c.line("end");
    c.line("f()");
    c.wait("f() ran", |s| follows(s, "dclua> f()", "42"));
    // A chatty chunk: a line repeated at once is shown once, then counted.
    c.line(r#"for i = 1, 5 do print("same") end print("different")"#);
    c.wait("the repeats coalesced", |s| {
        follows(s, "same", "(repeated 4 more times)")
            && follows(s, "(repeated 4 more times)", "different")
    });
    // Another console prints: it shows above this one's prompt.
    let o = attach_e(dclua(home.path()), "print('hello from another console')")?;
    ensure!(o.status.success(), "{o:?}");
    c.wait("the other console's line", |s| {
        s.lines().any(|l| l.trim_end() == "hello from another console")
    });
    c.quit();
    daemon.wait_log("a console detached", Duration::from_secs(5))?;
    let o = attach_e(dclua(home.path()), "return f()")?;
    ensure!(stdout(&o) == "42", "the client runs on after Ctrl-D: {o:?}");
    daemon.stop()
}
