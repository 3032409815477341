//! The `dclua` binary end to end: piped console, `run`, `init`, `hash`,
//! configuration errors, exit codes.

mod support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::bin::dclua;

/// Runs with `stdin` piped in, killing the process after `limit`.
fn run_with_input(mut cmd: Command, stdin: &str, limit: Duration) -> Output {
    let mut child =
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let t0 = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed() > limit {
            child.kill().unwrap();
            panic!("dclua did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn piped_console_runs_multi_line_chunks_and_waits_for_dc_sleep() {
    let home = tempfile::tempdir().unwrap();
    let input = "function twice(x)\n  return 2 * x\nend\ntwice(21)\nlocal t0 = os.clock()\ndc.sleep(0.3) return 'slept'\nerror('oops')\n'still here'\n";
    let t0 = Instant::now();
    let out = run_with_input(dclua(home.path()), input, Duration::from_secs(30));
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {}", text(&out.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "42", "{stdout}");
    assert_eq!(lines[1], "slept", "{stdout}");
    assert!(lines[2].starts_with("error: ") && lines[2].contains("oops"), "{stdout}");
    assert!(lines.contains(&"still here"), "the console went on after the error: {stdout}");
    assert!(t0.elapsed() >= Duration::from_millis(300), "dc.sleep was waited for");
}

/// Issue 13, finding 2: `help()` is documented, and was missing in both
/// consoles. In the real binary: the index, a function by value, a method
/// by the name people write, an event.
#[test]
fn help_answers_from_the_api_description() {
    let home = tempfile::tempdir().unwrap();
    let input = "help()\nhelp(dc.sleep)\nhelp('hub:say')\nhelp('chat')\nhelp('nothing')\n";
    let out = run_with_input(dclua(home.path()), input, Duration::from_secs(30));
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {}", text(&out.stderr));
    assert!(stdout.starts_with("dclua's Lua API"), "{stdout}");
    assert!(stdout.contains("\n  dc.search("), "the index lists functions: {stdout}");
    assert!(stdout.contains("\ndc.sleep(seconds)  [waits]\n"), "help(dc.sleep): {stdout}");
    assert!(stdout.contains("\ndc.Hub:say(text, opts)"), "help('hub:say'): {stdout}");
    assert!(stdout.contains("\nevent chat\n"), "help('chat'): {stdout}");
    assert!(stdout.contains("help: nothing is called nothing"), "{stdout}");
}

#[test]
fn run_executes_a_script_until_it_ends() {
    let home = tempfile::tempdir().unwrap();
    let script = home.path().join("bot.lua");
    std::fs::write(
        &script,
        "print('args', ...)\nlocal n = 0\nlocal t\nt = dc.every(0.05, function() n = n + 1 if n == 3 then t:stop() print('ticked', n) end end)\n",
    )
    .unwrap();
    let mut cmd = dclua(home.path());
    cmd.arg("run").arg(&script).args(["a", "b"]);
    let out = run_with_input(cmd, "", Duration::from_secs(30));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "args a b\nticked 3\n");
}

#[test]
fn run_exit_codes_follow_the_script() {
    let home = tempfile::tempdir().unwrap();
    let fails = home.path().join("fails.lua");
    std::fs::write(&fails, "error('broken bot')").unwrap();
    let mut cmd = dclua(home.path());
    cmd.arg("run").arg(&fails);
    let out = run_with_input(cmd, "", Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("broken bot"), "{}", text(&out.stderr));

    let quits = home.path().join("quits.lua");
    std::fs::write(&quits, "dc.every(1, function() end) dc.after(0.05, function() dc.quit(7) end)")
        .unwrap();
    let mut cmd = dclua(home.path());
    cmd.arg("run").arg(&quits);
    assert_eq!(run_with_input(cmd, "", Duration::from_secs(30)).status.code(), Some(7));
}

#[test]
fn a_bad_configuration_exits_non_zero_with_file_line_and_key() {
    let home = tempfile::tempdir().unwrap();
    let cfg = home.path().join("config.lua");
    std::fs::write(&cfg, "nick = 'me'\n\nslots = 3\nnikc = 'typo'\n").unwrap();
    let mut cmd = dclua(home.path());
    cmd.arg("--config").arg(&cfg);
    let out = run_with_input(cmd, "", Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("config.lua:4: unknown setting \"nikc\" (did you mean \"nick\"?)"),
        "{err}"
    );
}

#[test]
fn init_writes_a_default_configuration_that_loads() {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = dclua(home.path());
    cmd.arg("init");
    let out = run_with_input(cmd, "", Duration::from_secs(30));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let path = home.path().join("config/dclua/config.lua");
    assert!(path.is_file(), "{}", text(&out.stdout));
    // It refuses to overwrite.
    let mut again = dclua(home.path());
    again.arg("init");
    assert!(!run_with_input(again, "", Duration::from_secs(30)).status.success());
    // And the client starts with it.
    let out = run_with_input(dclua(home.path()), "dc.version\n", Duration::from_secs(30));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), env!("CARGO_PKG_VERSION"));
}

#[test]
fn hash_prints_tiger_tree_hashes() {
    let home = tempfile::tempdir().unwrap();
    let empty = home.path().join("empty");
    let a = home.path().join("a");
    std::fs::write(&empty, b"").unwrap();
    std::fs::write(&a, b"a").unwrap();
    let mut cmd = dclua(home.path());
    cmd.arg("hash").arg(&empty).arg(&a);
    let out = run_with_input(cmd, "", Duration::from_secs(30));
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout),
        format!(
            "LWPNACQDBZRYXW3VHJVCJ64QBZNGHOHHHZWCLNQ  {}\nCZQUWH3IYXBF5L3BGYUGZHASSMXU647IP2IKE4Y  {}\n",
            empty.display(),
            a.display()
        )
    );
    let mut missing = dclua(home.path());
    missing.arg("hash").arg(home.path().join("nope"));
    let out = run_with_input(missing, "", Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("nope"));
}

#[test]
fn a_failed_reload_keeps_the_last_good_configuration() {
    let home = tempfile::tempdir().unwrap();
    let cfg = home.path().join("config.lua");
    std::fs::write(&cfg, "nick = 'first'\n").unwrap();
    // The console reloads after breaking the file, then after fixing it.
    let bad = cfg.display().to_string();
    let input = format!(
        "local f = io.open('{bad}', 'w') f:write('slots = \"three\"\\n') f:close()\n\
         dc.reload_config()\n\
         local f = io.open('{bad}', 'w') f:write('nick = \"second\"\\n') f:close()\n\
         dc.reload_config()\n"
    );
    let mut cmd = dclua(home.path());
    cmd.arg("--config").arg(&cfg);
    let out = run_with_input(cmd, &input, Duration::from_secs(30));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "false", "{stdout}");
    assert!(lines[1].contains("config.lua:1: slots: expected an integer"), "{stdout}");
    assert_eq!(lines[2], "true", "{stdout}");
}

#[test]
fn scripts_named_in_the_configuration_start_at_launch() {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join("hello.lua"),
        "dc.on('ping', function(e) print('pong ' .. e.n) end)\n",
    )
    .unwrap();
    std::fs::write(
        home.path().join("trusted.lua"),
        "dc.on('ping', function(e) print('io available: ' .. tostring(io ~= nil)) end)\n",
    )
    .unwrap();
    let cfg = home.path().join("config.lua");
    std::fs::write(&cfg, "scripts = { 'hello.lua', { path = 'trusted.lua', trusted = true } }\n")
        .unwrap();
    let mut cmd = dclua(home.path());
    cmd.arg("--config").arg(&cfg);
    let out = run_with_input(
        cmd,
        "dc.scripts.list()\ndc.emit('ping', {n = 1}) dc.sleep(0.1)\n",
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("{\"hello\", \"trusted\""), "{stdout}");
    assert!(stdout.contains("pong 1"), "{stdout}");
    assert!(stdout.contains("io available: true"), "{stdout}");
}

#[test]
fn a_second_process_on_the_same_data_folder_is_told_to_use_another() {
    let home = tempfile::tempdir().unwrap();
    let mut first = dclua(home.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The lock file names its holder once the first client runs.
    let lock = home.path().join("data/dclua/lock");
    let t0 = Instant::now();
    while std::fs::read_to_string(&lock).map_or(true, |s| s.trim() != first.id().to_string()) {
        assert!(t0.elapsed() < Duration::from_secs(20), "the first dclua never took the lock");
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = run_with_input(dclua(home.path()), "", Duration::from_secs(20));
    let stderr = text(&second.stderr);
    assert!(!second.status.success(), "the second dclua ran: {stderr}");
    assert!(
        stderr.contains("is in use by another dclua")
            && stderr.contains(&format!("process {}", first.id()))
            && stderr.contains("--data-dir"),
        "{stderr}"
    );
    // With its own folder it runs beside the first.
    let other = home.path().join("other");
    let mut cmd = dclua(home.path());
    cmd.arg("--data-dir").arg(&other);
    let third = run_with_input(cmd, "1 + 1\n", Duration::from_secs(20));
    assert!(third.status.success(), "{}", text(&third.stderr));
    assert_eq!(text(&third.stdout).trim(), "2");
    drop(first.stdin.take());
    assert!(first.wait().unwrap().success());
}

/// `log_file` appends the log to a file (created with its folder), besides
/// standard error; a log file that cannot be opened stops the start with
/// the reason.
#[test]
fn the_log_file_gets_the_log() {
    let home = tempfile::tempdir().unwrap();
    let log = home.path().join("logs").join("dclua.log");
    let config = home.path().join("config.lua");
    std::fs::write(&config, format!("log_file = {:?}\n", log.display().to_string())).unwrap();
    let script = home.path().join("bot.lua");
    std::fs::write(&script, "dc.log.info('hello from the bot')\n").unwrap();
    let mut cmd = dclua(home.path());
    cmd.arg("--config").arg(&config).arg("run").arg(&script);
    let out = run_with_input(cmd, "", Duration::from_secs(30));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("hello from the bot"), "the log file: {logged:?}");
    assert!(text(&out.stderr).contains("hello from the bot"), "{}", text(&out.stderr));

    // A second run appends.
    let mut cmd = dclua(home.path());
    cmd.arg("--config").arg(&config).arg("run").arg(&script);
    assert!(run_with_input(cmd, "", Duration::from_secs(30)).status.success());
    let logged = std::fs::read_to_string(&log).unwrap();
    assert_eq!(logged.matches("hello from the bot").count(), 2, "{logged}");

    // A log file in a place that cannot be a folder.
    let blocker = home.path().join("file");
    std::fs::write(&blocker, "not a folder").unwrap();
    std::fs::write(
        &config,
        format!("log_file = {:?}\n", blocker.join("dclua.log").display().to_string()),
    )
    .unwrap();
    let mut cmd = dclua(home.path());
    cmd.arg("--config").arg(&config).arg("run").arg(&script);
    let out = run_with_input(cmd, "", Duration::from_secs(30));
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("opening the log file"), "{}", text(&out.stderr));
}

/// A chunk still waiting when the client quits says why it ended.
#[test]
fn a_waiting_chunk_says_the_client_is_shutting_down() {
    let home = tempfile::tempdir().unwrap();
    let cmd = dclua(home.path());
    let out = run_with_input(
        cmd,
        "dc.after(0.2, function() dc.quit() end)\ndc.sleep(10)\n",
        Duration::from_secs(30),
    );
    let stdout = text(&out.stdout);
    assert!(stdout.contains("error: stopped: the client is shutting down"), "{stdout}");
}

/// `dc.store`: an untrusted script of the configuration saves a table, and
/// the next start of the client reads it back; each script has its own
/// store; `dc.data_dir()` is for trusted scripts only.
#[test]
fn a_scripts_store_survives_a_restart() {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join("seen.lua"),
        r#"local seen = dc.store.load("seen") or {count = 0, nicks = {}}
           dc.on('visit', function(e)
             seen.count = seen.count + 1
             seen.nicks[e.nick] = e.at
             dc.store.save("seen", seen)
             local ok, err = pcall(dc.data_dir)
             print("saved " .. seen.count .. " " .. tostring(ok) .. " " .. tostring(err))
           end)
           dc.on('report', function()
             local nicks = {}
             for n, at in pairs(seen.nicks) do nicks[#nicks + 1] = n .. "@" .. at end
             table.sort(nicks)
             print("seen " .. seen.count .. " " .. table.concat(nicks, ",")
                   .. " names " .. table.concat(dc.store.list(), ","))
           end)"#,
    )
    .unwrap();
    std::fs::write(
        home.path().join("other.lua"),
        "dc.on('report', function() print('other has ' .. #dc.store.list()) end)\n",
    )
    .unwrap();
    let cfg = home.path().join("config.lua");
    std::fs::write(&cfg, "scripts = { 'seen.lua', 'other.lua' }\n").unwrap();
    let start = |input: &str| {
        let mut cmd = dclua(home.path());
        cmd.arg("--config").arg(&cfg);
        let out = run_with_input(cmd, input, Duration::from_secs(30));
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let first = start("dc.emit('visit', {nick = 'alice', at = 1}) dc.sleep(0.1)\n");
    assert!(first.contains("saved 1 false "), "{first}");
    assert!(
        first.contains("dc.data_dir: knowing where the data folder is is for trusted scripts"),
        "{first}"
    );
    let second = start(
        "dc.emit('visit', {nick = 'bob', at = 2}) dc.sleep(0.1)\ndc.emit('report') dc.sleep(0.1)\n",
    );
    assert!(second.contains("seen 2 alice@1,bob@2 names seen"), "{second}");
    assert!(second.contains("other has 0"), "{second}");
    // The console (trusted) knows where the data folder is; the file is there.
    let third = start("return dc.data_dir()\n");
    let data = third.lines().next().unwrap_or_default().to_string();
    let saved = std::fs::read_to_string(Path::new(&data).join("store/seen/seen.lua")).unwrap();
    assert!(saved.starts_with("return {"), "{saved}");
}

/// The guide's "Storing data" example runs, and what it saved is there
/// after the run.
#[test]
fn the_guides_storage_example_runs() {
    let example = support::guide_block("Storing data", 0).unwrap();
    let home = tempfile::tempdir().unwrap();
    let script = home.path().join("seen.lua");
    std::fs::write(
        &script,
        format!(
            "{example}\ndc.emit('chat', {{nick = 'alice', text = 'hi'}})\ndc.sleep(0.2)\n\
             print('stored ' .. tostring(dc.store.load('seen').alice ~= nil))\ndc.quit()\n"
        ),
    )
    .unwrap();
    let mut cmd = dclua(home.path());
    cmd.arg("run").arg(&script);
    let out = run_with_input(cmd, "", Duration::from_secs(30));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "stored true\n");
}

/// The guide's console session (step 9 of the tutorial), typed into the
/// piped console of a client whose configuration loads the tutorial's bot:
/// each line prints what the guide shows after it.
#[test]
fn the_guides_console_session_prints_as_shown() {
    let guide =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("lua-api/README.md"))
            .unwrap();
    let section = guide.split("\n## Step 9: the console and help()\n").nth(1).expect("step 9");
    let session = section
        .split("```\n")
        .find(|b| b.starts_with("dclua> "))
        .and_then(|b| b.split("```").next())
        .expect("a console session");
    let (mut input, mut shown) = (String::new(), String::new());
    for line in session.lines() {
        match line.strip_prefix("dclua> ") {
            Some(typed) => input.push_str(&format!("{typed}\n")),
            None => shown.push_str(&format!("{line}\n")),
        }
    }
    let home = tempfile::tempdir().unwrap();
    let bot = support::guide_block("Step 5: remembering things", 0).unwrap();
    std::fs::write(home.path().join("bot.lua"), bot).unwrap();
    let cfg = home.path().join("config.lua");
    std::fs::write(&cfg, "scripts = { 'bot.lua' }\n").unwrap();
    let mut cmd = dclua(home.path());
    cmd.arg("--config").arg(&cfg);
    let out = run_with_input(cmd, &input, Duration::from_secs(30));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), shown);
}

/// `dc.reload_config()` applies the differences: a script no longer listed
/// is unloaded and a new one loaded; a hub added is joined, a hub removed is
/// left (the test's listener sees the connection come and go).
#[test]
fn a_reload_applies_scripts_and_hubs_added_and_removed() {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join("a.lua"), "dc.on('ping', function() print('a here') end)\n")
        .unwrap();
    std::fs::write(home.path().join("b.lua"), "dc.on('ping', function() print('b here') end)\n")
        .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // The hub: takes one connection, says nothing, reports when it closes.
    let hub = std::thread::spawn(move || {
        listener.set_nonblocking(true).unwrap();
        let t0 = Instant::now();
        let (mut s, _) = loop {
            match listener.accept() {
                Ok(c) => break c,
                Err(_) if t0.elapsed() < Duration::from_secs(20) => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("no connection: {e}"),
            }
        };
        s.set_nonblocking(false).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut buf = [0u8; 1024];
        loop {
            match std::io::Read::read(&mut s, &mut buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    });
    let cfg = home.path().join("config.lua");
    std::fs::write(&cfg, "scripts = { 'a.lua' }\n").unwrap();
    let path = cfg.display().to_string();
    let write = |body: &str| {
        format!("local f = io.open('{path}', 'w') f:write({body:?}) f:close() dc.reload_config()\n")
    };
    let input = [
        "dc.emit('ping') dc.sleep(0.1)\n".to_string(),
        write(&format!(
            "scripts = {{ 'b.lua' }}\nhubs = {{ 'dchub://127.0.0.1:{port}' }}\nreconnect_delay = 0\n"
        )),
        "dc.emit('ping') dc.sleep(0.5) return 'hubs ' .. #dc.hubs()\n".to_string(),
        write("scripts = { 'b.lua' }\nreconnect_delay = 0\n"),
        "dc.sleep(0.5) return 'hubs ' .. #dc.hubs()\n".to_string(),
    ]
    .concat();
    let mut cmd = dclua(home.path());
    cmd.arg("--config").arg(&cfg);
    let out = run_with_input(cmd, &input, Duration::from_secs(30));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(lines, ["a here", "b here", "hubs 1", "hubs 0"], "{stdout}\n{}", text(&out.stderr));
    assert!(hub.join().unwrap(), "the removed hub's connection was not closed");
}

/// A misspelt event name in `dc.wait` (or `dc.on`) is taken as a custom
/// event, with a warning naming the built-in one it resembles.
#[test]
fn a_misspelt_event_name_is_warned_about() {
    let home = tempfile::tempdir().unwrap();
    let out = run_with_input(
        dclua(home.path()),
        "return dc.wait('chats', {timeout = 0.01})\n",
        Duration::from_secs(30),
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(
            r#"dc.wait("chats"): no built-in event has that name (did you mean "chat"?)"#
        ),
        "{stderr}"
    );
    assert_eq!(text(&out.stdout), "nil\n");
}

/// The piped console shows a nested table whole, keys sorted, a cycle
/// marked; a statement prints nothing.
#[test]
fn the_console_shows_nested_tables() {
    let home = tempfile::tempdir().unwrap();
    let out = run_with_input(
        dclua(home.path()),
        "t = {b = {1, {x = true}}, a = 's'}\nt.me = t\nreturn t\n",
        Duration::from_secs(30),
    );
    assert_eq!(text(&out.stdout), "{a = \"s\", b = {1, {x = true}}, me = <cycle>}\n");
}

/// Issue 13, finding 1 and the lifetime rule: `dclua run` lasts while its
/// script owns anything alive. A script that only connected a hub keeps
/// running (it ended at once, leaving the hub); one whose hub is
/// disconnected ends; a script it loaded keeps it until that one finishes.
#[test]
fn dclua_run_lasts_while_the_script_owns_a_hub_or_a_loaded_script() {
    // A "hub" that accepts and stays silent: the session waits for $Lock.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let _accepting = std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().take(4).flatten() {
            held.push(s);
        }
        std::thread::sleep(Duration::from_secs(30));
    });
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    let write = |name: &str, src: String| {
        let p = dir.join(name);
        std::fs::write(&p, src).unwrap();
        p
    };

    // Only a hub: still running two seconds later.
    let hub_only = write("hub_only.lua", format!("dc.connect('dchub://127.0.0.1:{port}')\n"));
    let mut child = dclua(dir)
        .arg("run")
        .arg(&hub_only)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let still = child.try_wait().unwrap().is_none();
    child.kill().ok();
    child.wait().ok();
    assert!(still, "a script that owns a hub ended with its main chunk");

    // The hub disconnected: the script has nothing left and ends.
    let leaves = write(
        "leaves.lua",
        format!(
            "local h = dc.connect('dchub://127.0.0.1:{port}')\n\
             dc.after(0.5, function() h:disconnect() print('left') end)\n"
        ),
    );
    let mut cmd = dclua(dir);
    cmd.arg("run").arg(&leaves);
    let out = run_with_input(cmd, "", Duration::from_secs(20));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "left");

    // A loaded script keeps its loader until it has finished.
    let child_script =
        write("child.lua", "dc.after(1, function() print('child done') end)\n".into());
    let parent = write(
        "parent.lua",
        format!("assert(dc.scripts.load({:?}))\nprint('parent done')\n", child_script.display()),
    );
    let mut cmd = dclua(dir);
    cmd.arg("run").arg(&parent);
    let out = run_with_input(cmd, "", Duration::from_secs(20));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "parent done\nchild done");
}

/// `dc.scripts.exit()` ends a script that still owns things (a timer that
/// would keep it forever); under `dclua run` the client ends with it.
#[test]
fn a_script_that_ends_itself_ends_dclua_run() {
    let home = tempfile::tempdir().unwrap();
    let script = home.path().join("ends.lua");
    std::fs::write(
        &script,
        "dc.every(0.1, function() end)\n\
         dc.after(0.3, function() print('bye') dc.scripts.exit() print('still in this call') end)\n",
    )
    .unwrap();
    let mut cmd = dclua(home.path());
    cmd.arg("run").arg(&script);
    let out = run_with_input(cmd, "", Duration::from_secs(20));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "bye\nstill in this call");
}
