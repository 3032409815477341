//! The Lua host on a real worker: coroutine jobs, waiting, events, timers,
//! containment, scripts.

mod support;

use std::path::PathBuf;
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dclua::client::{Client, ClientOptions};
use dclua::lua::{ChunkOutcome, HostHooks, HostOptions};
use dclua::runtime::{Worker, WorkerConfig, WorkerHandle};

/// A worker with a Lua host whose output (print) goes to a channel.
struct Rig {
    worker: WorkerHandle,
    out: Receiver<String>,
}

fn rig_with(opts: HostOptions) -> Rig {
    let worker =
        Worker::start(WorkerConfig { helper_threads: Some(1), ..Default::default() }).unwrap();
    let (tx, rx) = channel::<String>();
    let tx = Arc::new(Mutex::new(tx));
    worker
        .call(move |pool| {
            let client = Client::start(
                pool,
                ClientOptions {
                    downloads: None,
                    data_dir: std::env::temp_dir().join("dclua-test-unused-data"),
                    identity: Default::default(),
                    host: opts,
                    share: None,
                },
            );
            let host = client.host();
            let tx = tx.clone();
            host.set_hooks(HostHooks {
                output: Some(Box::new(move |line| {
                    let _ = tx.lock().unwrap().send(line.to_string());
                })),
                ..Default::default()
            });
        })
        .unwrap();
    Rig { worker, out: rx }
}

fn rig() -> Rig {
    rig_with(HostOptions::default())
}

impl Rig {
    fn load(&self, name: &str, src: &str) -> Result<u64, String> {
        let (name, src) = (name.to_string(), src.to_string());
        self.worker
            .call(move |_| {
                Client::current().unwrap().host().load_source(
                    &name,
                    None,
                    src.as_bytes(),
                    false,
                    &[],
                )
            })
            .unwrap()
    }

    fn eval(&self, chunk: &str) -> ChunkOutcome {
        let (tx, rx) = channel();
        let chunk = chunk.to_string();
        self.worker
            .call(move |_| {
                Client::current().unwrap().host().eval_console(&chunk, move |o| {
                    let _ = tx.send(o);
                });
            })
            .unwrap();
        rx.recv_timeout(Duration::from_secs(30)).expect("console chunk finished")
    }

    fn line(&self) -> String {
        self.out.recv_timeout(Duration::from_secs(20)).expect("a printed line")
    }

    fn lines(&self, n: usize) -> Vec<String> {
        (0..n).map(|_| self.line()).collect()
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        let _ = self.worker.shutdown_and_join();
    }
}

fn values(v: &[&str]) -> ChunkOutcome {
    ChunkOutcome::Values(v.iter().map(|s| s.to_string()).collect())
}

/// Issue 15, finding 1: what no instruction hook reaches is closed to
/// untrusted scripts. A catastrophic pattern ends with the step limit's
/// error (it froze the client for more than 45 s in the C matcher), a
/// finalizer cannot be set, the collector cannot be stopped.
#[test]
fn untrusted_scripts_cannot_freeze_the_client_where_no_hook_reaches() {
    let r = rig();
    r.load(
        "hostile",
        r#"
        local ok, e = pcall(string.find, ("a"):rep(40), ("a*"):rep(25) .. "b")
        print("pattern", ok, (tostring(e):gsub("^.-: ", "")))
        ok, e = pcall(function() return ("a"):rep(40):find(("a*"):rep(25) .. "b") end)
        print("method", ok)
        ok, e = pcall(setmetatable, {}, { __gc = function() while true do end end })
        print("gc", ok, (tostring(e):match("__gc finalizers are not allowed") ~= nil))
        print("plain", pcall(setmetatable, {}, { __index = {} }))
        ok, e = pcall(collectgarbage, "stop")
        print("stop", ok, collectgarbage("isrunning"))
        print("count", type(collectgarbage("count")))
        print("find", string.find("hello world", "o w"), ("x=1"):match("(%w)=(%d)"))
        "#,
    )
    .unwrap();
    let lines = r.lines(7);
    assert!(lines[0].starts_with("pattern false"), "{lines:?}");
    assert!(lines[0].contains("step"), "the step limit names itself: {lines:?}");
    assert_eq!(lines[1], "method false");
    assert_eq!(lines[2], "gc false true");
    assert!(lines[3].starts_with("plain true"), "{lines:?}");
    assert_eq!(lines[4], "stop false true");
    assert_eq!(lines[5], "count number");
    assert_eq!(lines[6], "find 5 x 1");
}

/// Issue 15, finding 4: an untrusted script cannot escalate to trusted,
/// share or hash files of the machine, manage other scripts, quit or reload
/// the configuration; the console (trusted) can manage scripts.
#[test]
fn untrusted_scripts_hold_no_client_wide_capability() {
    let r = rig();
    r.load("victim", "dc.every(60, function() end)").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other.lua");
    std::fs::write(&other, "x = io").unwrap();
    r.load(
        "sneaky",
        &format!(
            r#"
            local function try(name, f, ...)
              local ok, e = pcall(f, ...)
              print(name, ok, ok or (tostring(e):match("is for trusted scripts and the console") ~= nil))
            end
            try("load", dc.scripts.load, {other:?}, {{trusted = true}})
            try("unload", dc.scripts.unload, "victim")
            try("reload", dc.scripts.reload, "victim")
            try("quit", dc.quit, 3)
            try("reload_config", dc.reload_config)
            try("share.add", dc.share.add, "/etc", "etc")
            try("share.remove", dc.share.remove, "Share")
            try("tth", dc.tth, "/etc/passwd")
            print("untrusted load", (dc.scripts.load({other:?})) ~= nil)
            "#
        ),
    )
    .unwrap();
    let lines = r.lines(9);
    for (i, name) in
        ["load", "unload", "reload", "quit", "reload_config", "share.add", "share.remove", "tth"]
            .iter()
            .enumerate()
    {
        assert_eq!(lines[i], format!("{name} false true"), "{lines:?}");
    }
    assert_eq!(lines[8], "untrusted load true", "loading untrusted stays allowed");
    assert_eq!(r.eval("return (dc.scripts.unload('victim'))"), values(&["true"]));
}

/// Issue 13, finding 7: a misspelt option of dc.wait waited forever; it is
/// an error with a suggestion. A misspelt built-in event name in dc.on is a
/// warning (it may be a custom event).
#[test]
fn misspelt_wait_options_are_errors_with_a_suggestion() {
    let r = rig();
    let got = r.eval("return dc.wait('chat', {timout = 1})");
    match got {
        ChunkOutcome::Error(e) => {
            assert!(e.contains("unknown option timout (did you mean \"timeout\"?)"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(r.eval("return dc.wait('x', {timeout = 0.01})"), values(&["nil"]));
    assert_eq!(r.eval("return dc.on('chats', function() end) ~= nil"), values(&["true"]));
}

/// dc.command: words after the command in `args`, the answer printed for an
/// event without a hub, "!help" listing the commands, a removed command
/// silent, misspelt options refused with a suggestion.
#[test]
fn chat_commands_route_and_answer() {
    let r = rig();
    let got = r.eval(
        r#"local c = dc.command("!add", function(args) return tostring(args[1] + args[2]) .. " " .. args.text end,
                                 {help = "A B: their sum"})
           dc.emit("chat", {nick = "ann", text = "!add 2 3"})
           dc.emit("chat", {nick = "ann", text = "!help"})
           dc.emit("chat", {nick = "ann", text = "not !add 1 1"})
           dc.sleep(0.1)
           c:remove()
           dc.emit("chat", {nick = "ann", text = "!add 4 4"})
           dc.sleep(0.1)
           return select(2, pcall(dc.command, "!x", function() end, {hlep = "x"}))"#,
    );
    match got {
        ChunkOutcome::Values(v) => {
            assert!(v[0].contains("unknown option hlep (did you mean \"help\"?)"), "{v:?}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(r.lines(2), ["5 2 3", "Commands: !add - A B: their sum; !help - this list"]);
    assert!(r.out.recv_timeout(Duration::from_millis(200)).is_err(), "a removed command is silent");
}

/// Example `n` of a guide section (`support::guide_block`).
fn guide_block(section: &str, n: usize) -> String {
    support::guide_block(section, n).expect("the guide's example")
}

/// The guide's short examples that need no hub run as written, in the
/// console of a bare host, with a driver around some of them.
#[test]
fn the_guides_small_examples_run() {
    let r = rig();
    let ok = |o: ChunkOutcome| match o {
        ChunkOutcome::Values(v) => v,
        ChunkOutcome::Error(e) => panic!("an example failed: {e}"),
    };
    // Everything is a coroutine.
    ok(r.eval(&guide_block("Everything is a coroutine", 0)));
    assert_eq!(r.lines(2), ["starting", "two seconds later"]);
    // Handlers: the greeter loads; the ignorer consumes; the wait gets alice.
    r.load("greeter", &guide_block("Handlers", 0)).expect("the greeter loads");
    r.load("ignorer", &guide_block("Handlers", 1)).expect("the ignorer loads");
    ok(r.eval(
        r#"dc.on("chat", function(e) print("seen: " .. e.text) end)
           dc.emit("chat", {nick = "x", text = "!ignore me"})
           dc.emit("chat", {nick = "x", text = "hello"})"#,
    ));
    assert_eq!(r.lines(1), ["seen: hello"]);
    let got = ok(r.eval(&format!(
        r#"dc.spawn(function() dc.sleep(0.1) dc.emit("pm", {{from = "alice", text = "hi"}}) end)
           {}
           return e and e.text"#,
        guide_block("Handlers", 2)
    )));
    assert_eq!(got, ["hi"]);
    // Timers.
    ok(r.eval(&guide_block("Timers", 0)));
    assert_eq!(r.lines(1), ["five seconds after loading"]);
    // Jobs of your own.
    let got = ok(r.eval(&format!(
        "{}\nreturn ok, v, job:alive()",
        guide_block("Jobs of your own: dc.spawn", 0)
    )));
    assert_eq!(got, ["true", "2", "false"]);
    // Your own coroutines.
    ok(r.eval(&guide_block("Your own coroutines", 0)));
    let ticks = r.lines(3);
    for (i, line) in ticks.iter().enumerate() {
        assert!(line.starts_with("tick") && line.ends_with(&(i + 1).to_string()), "{ticks:?}");
    }
    // Sharing: the filter installs (the console is trusted).
    ok(r.eval(&guide_block("Sharing", 0)));
}

/// An untrusted script may end itself; it is unloaded once its call
/// returns, with the reason, and nothing of it runs again.
#[test]
fn an_untrusted_script_ends_itself() {
    let r = rig();
    r.eval(r#"dc.on("script_unloaded", function(e) print(e.name .. ": " .. e.reason) end)"#);
    r.load(
        "quitter",
        r#"dc.every(0.05, function() end)
           dc.on("poke", function() print("poked") dc.scripts.exit() end)"#,
    )
    .expect("loads");
    r.eval(r#"dc.emit("poke") dc.sleep(0.2) dc.emit("poke")"#);
    assert_eq!(r.lines(2), ["poked", "quitter: ended itself"]);
    assert!(r.out.recv_timeout(Duration::from_millis(300)).is_err(), "nothing runs after");
    assert_eq!(r.eval("return #dc.scripts.list()"), values(&["1"]));
}

/// The guide's "Chat commands" example, as a script.
#[test]
fn the_guides_chat_command_example_runs() {
    let example = guide_block("Chat commands", 0);
    let r = rig();
    r.load("commands", &example).expect("the example loads");
    r.eval(
        r#"dc.emit("pm", {from = "ann", text = "!later 0.2"})
           dc.emit("chat", {nick = "ann", text = "!echo hi   there"})
           dc.emit("chat", {nick = "ann", text = "!help"})"#,
    );
    assert_eq!(
        r.lines(3),
        [
            "hi   there",
            "Commands: !echo - TEXT: says TEXT back; !later - SECONDS: answers after a while; \
             !help - this list",
            "done waiting",
        ]
    );
}

/// The tutorial's command bot (step 4), as a script: commands answer, the
/// one that sleeps holds up nobody, `!help` lists both.
#[test]
fn the_tutorials_command_bot_answers() {
    let r = rig();
    r.load("bot", &guide_block("Step 4: a chat command", 0)).expect("the bot loads");
    r.eval(
        r#"dc.emit("chat", {nick = "alice", text = "!roll 20"})
           dc.emit("pm", {from = "ann", text = "!hello"})
           dc.emit("chat", {nick = "alice", text = "!help"})"#,
    );
    let got = r.lines(3);
    assert_eq!(got[0], "Hello, ann!");
    assert_eq!(
        got[1],
        "Commands: !hello - says hello; !roll - [SIDES]: rolls a die; !help - this list"
    );
    let n: u32 = got[2].strip_prefix("rolled ").and_then(|n| n.parse().ok()).expect("a roll");
    assert!((1..=20).contains(&n), "{got:?}");
}

/// The tutorial's failing command (step 7): the error ends that call only,
/// the script answers the next one, and `pcall` turns an error into an
/// answer.
#[test]
fn the_tutorials_failing_command_is_contained() {
    let r = rig();
    r.load("half", &guide_block("Step 7: when something fails", 0)).expect("the script loads");
    r.eval(
        r#"dc.emit("chat", {nick = "alice", text = "!half x"})
           dc.sleep(0.1)
           dc.emit("chat", {nick = "alice", text = "!half 5"})
           dc.sleep(0.1)
           dc.emit("chat", {nick = "alice", text = "!double x"})
           dc.sleep(0.1)
           dc.emit("chat", {nick = "alice", text = "!double 4"})"#,
    );
    let got = r.lines(3);
    assert_eq!(got[0], "2.5", "no answer to !half x, then 2.5: {got:?}");
    assert!(got[1].starts_with("sorry: ") && got[1].ends_with(":4: not a number: x"), "{got:?}");
    assert_eq!(got[2], "8", "{got:?}");
}

/// Issue 13, finding 6: a dc.every callback that waits longer than the
/// period used to run alongside its next calls (4 at once seen); a tick that
/// comes while the previous call still runs is skipped.
#[test]
fn dc_every_skips_a_tick_while_its_callback_still_runs() {
    let r = rig();
    r.load(
        "slow",
        r#"
        local running, most, calls = 0, 0, 0
        local t = dc.every(0.02, function()
          calls = calls + 1
          running = running + 1
          most = math.max(most, running)
          dc.sleep(0.1)
          running = running - 1
        end)
        dc.sleep(0.5)
        t:stop()
        print("most", most, calls >= 2 and calls <= 6)
        "#,
    )
    .unwrap();
    assert_eq!(r.line(), "most 1 true");
}

#[test]
fn ten_thousand_sleeping_coroutines_all_complete() {
    let r = rig();
    r.load(
        "sleepers",
        r#"
        local done = 0
        local jobs = {}
        for i = 1, 10000 do
          jobs[i] = dc.spawn(function()
            dc.sleep(0.05 + (i % 10) / 100)
            done = done + 1
            return i
          end)
        end
        local sum = 0
        for i = 1, 10000 do
          local ok, v = jobs[i]:wait()
          assert(ok, v)
          sum = sum + v
        end
        print("done", done, sum)
        "#,
    )
    .unwrap();
    assert_eq!(r.line(), format!("done 10000 {}", (1..=10000u64).sum::<u64>()));
}

#[test]
fn a_failing_handler_does_not_stop_the_others() {
    let r = rig();
    r.load(
        "handlers",
        r#"
        dc.on("ping", function(e) error("handler one fails") end)
        dc.on("ping", function(e) print("two got " .. e.n) end)
        dc.on("ping", function(e) dc.sleep(0.01); print("three waited for " .. e.n) end)
        dc.emit("ping", {n = 1})
        dc.emit("ping", {n = 2})
        "#,
    )
    .unwrap();
    let mut got = r.lines(4);
    got.sort();
    assert_eq!(got, vec!["three waited for 1", "three waited for 2", "two got 1", "two got 2"]);
}

#[test]
fn a_handler_can_consume_an_event() {
    let r = rig();
    r.load(
        "consume",
        r#"
        dc.on("msg", function(e) if e.text == "secret" then return true end end)
        dc.on("msg", function(e) print("saw " .. e.text) end)
        dc.emit("msg", {text = "secret"})
        dc.emit("msg", {text = "public"})
        "#,
    )
    .unwrap();
    assert_eq!(r.line(), "saw public");
}

#[test]
fn an_endless_loop_is_interrupted_and_the_client_goes_on() {
    let r = rig_with(HostOptions {
        time_budget: std::time::Duration::from_millis(200),
        ..Default::default()
    });
    r.load("spinner", "dc.after(0, function() print('before') end) while true do end").unwrap();
    r.load(
        "pcall_spinner",
        "local ok = pcall(function() while true do end end) print('pcall caught it: ' .. tostring(ok))",
    )
    .unwrap();
    assert_eq!(r.line(), "before", "the timer of the runaway script still fired");
    // The pcall trick does not escape the budget: no 'pcall caught it' line.
    assert_eq!(r.eval("1 + 1"), values(&["2"]));
    assert_eq!(
        r.eval("dc.scripts.list()"),
        values(&["{\"spinner\", \"pcall_spinner\", \"console\"}"])
    );
    assert!(r.out.try_recv().is_err());
}

/// Issue 9: the time budget, with no hook set normally: a loop in the
/// chunk itself, in a script's own coroutine (hooks are per coroutine: the
/// watchdog must arm the innermost one), a loop of C calls, and a loop that
/// catches errors all end with the budget's error, and the state goes on.
#[test]
fn the_time_budget_stops_loops_wherever_they_run() {
    let r = rig_with(HostOptions { time_budget: Duration::from_millis(200), ..Default::default() });
    let budget = |chunk: &str| match r.eval(chunk) {
        ChunkOutcome::Error(e) => assert!(
            e.contains(
                "script console: ran over its time budget (0.2 s) without waiting; interrupted"
            ),
            "{chunk}: {e}"
        ),
        other => panic!("{chunk}: {other:?}"),
    };
    budget("while true do end");
    budget("coroutine.wrap(function() while true do end end)()");
    budget("local co = coroutine.create(function() coroutine.wrap(function() while true do end end)() end) local ok, e = coroutine.resume(co) return ok, e");
    budget("while true do local s = string.rep('x', 10) end");
    budget("while true do pcall(function() while true do end end) end");
    budget("coroutine.wrap(function() while true do pcall(coroutine.wrap(function() while true do end end)) end end)()");
    assert_eq!(r.eval("1 + 1"), values(&["2"]));
    // Under the budget, with waits in between: every resume has its own, so
    // five resumes of a quarter of it each (more than the budget in all)
    // run to the end. The budget is wall time and `os.clock` CPU time: a
    // quarter leaves room for a loaded machine that deschedules the worker.
    let r = rig_with(HostOptions { time_budget: Duration::from_millis(600), ..Default::default() });
    assert_eq!(
        r.eval("local n = 0 for i = 1, 5 do local t = os.clock() while os.clock() - t < 0.15 do n = n + 1 end dc.sleep(0) end return n > 0"),
        values(&["true"])
    );
}

/// A chunk's error as the console shows it (no "runtime error: ", no
/// traceback).
fn error_message(o: &ChunkOutcome) -> &str {
    match o {
        ChunkOutcome::Error(e) => {
            let e = e.split("\nstack traceback:").next().unwrap_or(e);
            e.strip_prefix("runtime error: ").unwrap_or(e)
        }
        other => panic!("not an error: {other:?}"),
    }
}

/// Issue 9: Ctrl-C interrupts a console chunk that computes (the worker is
/// stuck in it) at once, with "interrupted", long before its budget; an
/// interrupt made before the chunk even started is not lost; the chunks
/// after it run.
#[test]
fn ctrl_c_interrupts_a_busy_console_chunk() {
    let r = rig_with(HostOptions { time_budget: Duration::from_secs(30), ..Default::default() });
    let control = r.worker.call(|_| Client::current().unwrap().host().console_control()).unwrap();
    let run = |chunk: &str| {
        let (tx, rx) = channel();
        let number = control.next_chunk();
        let chunk = chunk.to_string();
        r.worker
            .post(move |_| {
                Client::current().unwrap().host().eval_console_chunk(number, &chunk, move |o| {
                    let _ = tx.send(o);
                });
            })
            .unwrap();
        rx
    };
    for chunk in [
        "while true do end",
        "coroutine.wrap(function() while true do pcall(function() while true do end end) end end)()",
    ] {
        let started = std::time::Instant::now();
        let rx = run(chunk);
        std::thread::sleep(Duration::from_millis(200));
        control.interrupt();
        let outcome = rx.recv_timeout(Duration::from_secs(10)).expect("the chunk ended");
        assert_eq!(error_message(&outcome), "interrupted", "{chunk}");
        assert!(started.elapsed() < Duration::from_secs(5), "{chunk}: {:?}", started.elapsed());
    }
    // Ctrl-C before the worker starts the chunk: the chunk still ends.
    let rx = {
        let (tx, rx) = channel();
        let number = control.next_chunk();
        control.interrupt();
        r.worker
            .post(move |_| {
                Client::current().unwrap().host().eval_console_chunk(
                    number,
                    "while true do end",
                    move |o| {
                        let _ = tx.send(o);
                    },
                );
            })
            .unwrap();
        rx
    };
    let outcome =
        rx.recv_timeout(Duration::from_secs(10)).expect("the early-interrupted chunk ended");
    assert_eq!(error_message(&outcome), "interrupted");
    assert_eq!(r.eval("return 20 + 22"), values(&["42"]));
}

#[test]
fn a_script_over_its_memory_limit_fails_alone() {
    let r = rig_with(HostOptions { memory_limit: 8 << 20, ..Default::default() });
    r.load("hog", "local t = {} for i = 1, 1e8 do t[i] = ('x'):rep(100) .. i end").unwrap();
    r.load(
        "fine",
        "dc.sleep(0.05) local t = {} for i = 1, 1000 do t[i] = i end print('fine ' .. #t)",
    )
    .unwrap();
    assert_eq!(r.line(), "fine 1000");
}

/// Issue 15, finding 2: a handler that waits, on a flood of events, used
/// to keep a script at its memory limit failing on every event (1,600 "not
/// enough memory" errors at 100 % CPU). The first failure stops and unloads
/// it, with one log line and a `script_unloaded` event; the others go on.
#[test]
fn a_script_at_its_memory_limit_is_unloaded_once() {
    let r = rig_with(HostOptions { memory_limit: 8 << 20, ..Default::default() });
    r.load(
        "watcher",
        r#"dc.on("script_unloaded", function(e) print("unloaded", e.name, e.reason) end)"#,
    )
    .unwrap();
    r.load(
        "greedy",
        r#"
        kept = {}
        dc.on("join", function(e)
          for i = 1, 1e6 do kept[#kept + 1] = ("x"):rep(64) .. i end
          dc.sleep(25)
        end)
        "#,
    )
    .unwrap();
    r.eval("for i = 1, 200 do dc.emit('join', {n = i}) end");
    assert_eq!(r.line(), "unloaded greedy over its memory limit");
    let listed = r.eval(
        "for _, n in ipairs(dc.scripts.list()) do if n == 'greedy' then return true end end return false",
    );
    assert_eq!(listed, values(&["false"]));
    r.eval("dc.emit('join', {n = 0})");
    assert!(
        r.out.recv_timeout(Duration::from_millis(300)).is_err(),
        "nothing more from the unloaded script"
    );
}

#[test]
fn unloading_a_script_stops_its_timers_and_handlers() {
    let r = rig();
    let id = r
        .load(
            "ticker",
            r#"
            dc.every(0.01, function() print("tick") end)
            dc.on("poke", function() print("poked") end)
            dc.spawn(function() while true do dc.sleep(0.01) end end)
            "#,
        )
        .unwrap();
    assert_eq!(r.line(), "tick");
    let unloaded = r.worker.call(move |_| Client::current().unwrap().host().unload(id)).unwrap();
    assert!(unloaded);
    while r.out.recv_timeout(Duration::from_millis(100)).is_ok() {}
    r.eval("dc.emit('poke', {})");
    assert!(r.out.recv_timeout(Duration::from_millis(300)).is_err(), "nothing fires after unload");
    let jobs = r.worker.call(|pool| pool.job_names()).unwrap();
    assert!(!jobs.iter().any(|(_, n, _)| n.contains("ticker")), "{jobs:?}");
}

#[test]
fn a_user_coroutine_wrap_around_dc_sleep_works() {
    let r = rig();
    r.load(
        "wrapped",
        r#"
        local gen = coroutine.wrap(function()
          for i = 1, 3 do
            dc.sleep(0.01)
            coroutine.yield(i)
          end
          return "end"
        end)
        print(gen(), gen(), gen(), gen())
        local co = coroutine.create(function(a) dc.sleep(0.01) return a * 2 end)
        print(coroutine.resume(co, 21))
        "#,
    )
    .unwrap();
    assert_eq!(r.line(), "1 2 3 end");
    assert_eq!(r.line(), "true 42");
}

#[test]
fn dc_wait_returns_the_event_or_nil_on_timeout() {
    let r = rig();
    r.load(
        "waiter",
        r#"
        dc.after(0.05, function() dc.emit("door", {who = "alice"}) end)
        dc.after(0.06, function() dc.emit("door", {who = "bob"}) end)
        local e = dc.wait("door", {filter = {who = "bob"}, timeout = 5})
        print("got " .. e.who)
        local f = dc.wait("door", {filter = function(e) return e.who == "carol" end, timeout = 0.05})
        print("then " .. tostring(f))
        "#,
    )
    .unwrap();
    assert_eq!(r.lines(2), vec!["got bob", "then nil"]);
}

#[test]
fn dc_wait_any_returns_the_first_of_several_events_by_name() {
    let r = rig();
    r.load(
        "select",
        r#"
        dc.after(0.05, function() dc.emit("pm_like", {who = "alice"}) end)
        dc.after(0.06, function() dc.emit("chat_like", {who = "bob"}) end)
        local name, e = dc.wait_any({"chat_like", "pm_like"}, {timeout = 5})
        print(name .. " " .. e.who)
        name, e = dc.wait_any({"chat_like", "pm_like"}, {filter = {who = "bob"}, timeout = 5})
        print(tostring(name) .. " " .. tostring(e and e.who))
        -- The one that came is not delivered twice; nothing else comes.
        name = dc.wait_any({"chat_like", "pm_like"}, {timeout = 0.05})
        print("then " .. tostring(name))
        local ok, err = pcall(dc.wait_any, {"chat"}, {timout = 1})
        print(err)
        "#,
    )
    .unwrap();
    let lines = r.lines(4);
    assert_eq!(lines[..3], ["pm_like alice", "chat_like bob", "then nil"]);
    assert!(lines[3].contains("unknown option timout (did you mean \"timeout\"?)"), "{}", lines[3]);
}

#[test]
fn waiting_outside_a_coroutine_is_a_clear_error() {
    let r = rig();
    let out =
        r.eval("local t = {3, 1, 2} table.sort(t, function(a, b) dc.sleep(0) return a < b end)");
    match out {
        ChunkOutcome::Error(e) => {
            assert!(e.contains("dc.sleep waits, so it must run in a coroutine job"), "{e}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_repeating_timer_that_errors_stops() {
    let r = rig();
    r.load(
        "flaky",
        r#"
        local n = 0
        local t
        t = dc.every(0.01, function()
          n = n + 1
          print("call " .. n)
          if n == 2 then error("boom") end
        end)
        dc.sleep(0.2)
        print("active: " .. tostring(t:active()))
        "#,
    )
    .unwrap();
    assert_eq!(r.lines(3), vec!["call 1", "call 2", "active: false"]);
}

#[test]
fn spawned_job_handles_wait_stop_and_report_errors() {
    let r = rig();
    assert_eq!(
        r.eval("local j = dc.spawn(function(a, b) dc.sleep(0.01) return a + b, 'x' end, 2, 3) return j:wait()"),
        values(&["true", "5", "\"x\""].map(|s| s.trim_matches('"')))
    );
    match r.eval("local j = dc.spawn(function() error('bad') end) return j:wait()") {
        ChunkOutcome::Values(v) => {
            assert_eq!(v[0], "false");
            assert!(v[1].contains("bad"), "{v:?}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        r.eval("local j = dc.spawn(function() dc.sleep(10) end) j:stop() return j:wait()"),
        values(&["false", "stopped"])
    );
}

#[test]
fn the_console_waits_for_dc_sleep_and_keeps_globals() {
    let r = rig();
    assert_eq!(r.eval("x = 40"), values(&[]));
    assert_eq!(r.eval("dc.sleep(0.05) return x + 2"), values(&["42"]));
    match r.eval("error('oops')") {
        ChunkOutcome::Error(e) => assert!(e.contains("oops")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn nothing_from_an_old_load_fires_after_a_reload() {
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("gen.lua");
    std::fs::write(&path, "dc.every(0.01, function() print('v1') end)").unwrap();
    let r = rig();
    let p = path.clone();
    let id = r
        .worker
        .call(move |_| Client::current().unwrap().host().load_file(&p, false, &[]))
        .unwrap()
        .unwrap();
    assert_eq!(r.line(), "v1");
    std::fs::write(&path, "dc.every(0.01, function() print('v2') end)").unwrap();
    r.worker.call(move |_| Client::current().unwrap().host().reload(id)).unwrap().unwrap();
    // Drain what the old load printed before the reload took effect.
    let mut seen_v2 = false;
    for _ in 0..50 {
        let l = r.line();
        if l == "v2" {
            seen_v2 = true;
            break;
        }
        assert_eq!(l, "v1");
    }
    assert!(seen_v2);
    for _ in 0..10 {
        assert_eq!(r.line(), "v2", "an old timer fired after the reload");
    }
}

#[test]
fn finished_jobs_leave_no_records_behind() {
    let r = rig();
    // The client's own jobs (the dispatcher, the downloads scheduler),
    // counted once the pool has run them (a job spawned before the first
    // round is not counted yet).
    r.load("warm", "dc.sleep(0.05) print('warm')").unwrap();
    assert_eq!(r.line(), "warm");
    std::thread::sleep(Duration::from_millis(100));
    let before = r.worker.call(|pool| pool.len()).unwrap();
    r.load(
        "churn",
        r#"
        dc.on("tick", function(e) dc.sleep(0) end)
        for i = 1, 500 do dc.emit("tick", {i = i}) end
        for i = 1, 500 do dc.spawn(function() dc.sleep(0) end) end
        dc.sleep(0.2)
        collectgarbage() collectgarbage()
        dc.sleep(0.05)
        print("done")
        "#,
    )
    .unwrap();
    assert_eq!(r.line(), "done");
    std::thread::sleep(Duration::from_millis(100));
    let (records, jobs) = r
        .worker
        .call(|pool| (Client::current().unwrap().host().job_records(), pool.len()))
        .unwrap();
    // Only the client's own jobs are left; no record outlives its job and
    // handle.
    assert_eq!(jobs, before, "jobs left: {jobs}, before the script: {before}");
    assert_eq!(records, 0, "records left: {records}");
}

/// Issue 15, finding 2: a handler that waits, and a flood of its event.
/// Past 2,000 waiting calls the script's handlers are skipped, counted and
/// reported (`events_dropped`), instead of filling its memory.
#[test]
fn handlers_that_wait_are_bounded_and_drops_are_reported() {
    let r = rig();
    r.load(
        "greeter",
        r#"
        waiting = 0
        dc.on("joined", function(e) waiting = waiting + 1; dc.sleep(60) end)
        "#,
    )
    .unwrap();
    r.load(
        "watcher",
        r#"
        dc.on("events_dropped", function(e)
          print("dropped " .. e.script .. " " .. e.count .. " " .. e.event)
        end)
        for i = 1, 2500 do dc.emit("joined", {n = i}) end
        "#,
    )
    .unwrap();
    assert_eq!(r.line(), "dropped greeter 1 joined");
    // The rest of the flood is reported once a second has passed, with the
    // next event.
    std::thread::sleep(Duration::from_millis(1100));
    r.load("poker", r#"dc.emit("poke", {})"#).unwrap();
    assert_eq!(r.line(), "dropped greeter 499 joined");
    let w = r.worker.call(|_| {
        let host = Client::current().unwrap().host().clone();
        let (id, _) = host.scripts().into_iter().find(|(_, n)| n == "greeter").unwrap();
        host.script(id).unwrap().lua().globals().get::<i64>("waiting").unwrap()
    });
    assert_eq!(w.unwrap(), dclua::lua::host::MAX_WAITING_CALLS as i64);
}
