//! The interactive console in a real terminal.
//!
//! tmux runs this very test binary as the console (`run_interactive` with the
//! fake Lua host of `console_fake`), then the test types into it with
//! `send-keys` and reads the screen with `capture-pane`, as a person would:
//! expressions, a multi-line function, chunks of 3 to 5 lines (typed a line
//! at a time with pauses, in one burst, ahead while a chunk runs, pasted),
//! Home/End, Tab completion, an event printed from
//! another thread while a line is being typed, type-ahead while a chunk waits,
//! Ctrl-C while waiting / at the prompt / in an unfinished chunk, giving up on
//! a chunk that ignores interrupts, a red error,
//! Ctrl-D, and the history file, reloaded and edited in a second run. Then
//! the real `dclua` binary (no hubs, XDG folders in a temporary folder) gets
//! the same long chunks.
//!
//! Every wait is bounded; a missing tmux fails the test with a clear message.

mod console_fake;
mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use support::tmux::{follows, last_line, quote, Pane, Tmux};

/// Set in the console's environment (to the history file): run the console.
const CHILD_ENV: &str = "DCLUA_CONSOLE_TMUX_HISTORY";
/// The name of the one test, which the child runs too.
const TEST_NAME: &str = "the_console_in_a_terminal";

#[test]
fn the_console_in_a_terminal() {
    if let Some(history) = std::env::var_os(CHILD_ENV) {
        // The child, inside tmux: be the console.
        let backend = console_fake::FakeBackend::start();
        dclua::console::run_interactive(backend, PathBuf::from(history))
            .expect("the interactive console failed");
        return;
    }

    let dir = tempfile::tempdir().expect("temporary folder");
    let tmux = Tmux::start(dir.path());
    // The history's folder does not exist yet: the console creates it.
    let history = dir.path().join("state").join("dclua").join("console_history");

    let one = console(&tmux, "one", &history);
    first_run(&one);
    one.quit();

    let text = std::fs::read_to_string(&history).expect("the history file was written");
    let entries: Vec<&str> = text.lines().collect();
    for entry in [
        "1 + 1",
        "function f()\\nreturn 40 + 2\\nend",
        "dc.sleep(0)",
        "6 * 7",
        "print('sleeping') dc.sleep(30)",
        "error('boom')",
    ] {
        assert!(entries.contains(&entry), "history lacks {entry:?}:\n{text}");
    }
    for dropped in ["junk junk", "function g()", "dc."] {
        assert!(!entries.contains(&dropped), "history has the dropped line {dropped:?}:\n{text}");
    }

    let two = console(&tmux, "two", &history);
    second_run(&two);
    two.quit();

    // The real binary (its Lua host, its printer, its SIGINT handling) with
    // the same long chunks; XDG folders in the temporary folder, no hubs.
    let home = dir.path().join("home");
    let real = tmux.window(
        "real",
        &format!(
            "env HOME={home} XDG_CONFIG_HOME={home}/config XDG_DATA_HOME={home}/data {}",
            quote(Path::new(env!("CARGO_BIN_EXE_dclua"))),
            home = quote(&home),
        ),
    );
    real.wait("the first prompt of dclua", |s| last_line(s) == "dclua>");
    long_chunks(&real, 3, Typing::Paced);
    long_chunks(&real, 6, Typing::Burst);
    long_chunks(&real, 9, Typing::Ahead);
    pasted_chunk(&real, 12);
    busy_chunk_interrupted(&real);
    real.quit();
}

/// Issue 9: Ctrl-C stops a chunk that computes without ever waiting, in the
/// real host, at once: the chunk ends with "interrupted", not with the
/// instruction budget's error (which the worker, stuck in the chunk, used
/// to reach first), and the console goes on.
fn busy_chunk_interrupted(c: &Pane<'_>) {
    c.line("while true do end");
    // Let the chunk start computing (the prompt is gone meanwhile).
    std::thread::sleep(Duration::from_millis(300));
    c.keys(&["C-c"]);
    let screen = c.wait("the busy chunk interrupted", |s| {
        s.lines().any(|l| l.trim().ends_with("interrupted")) && last_line(s) == "dclua>"
    });
    let after = screen.rsplit("while true do end").next().unwrap_or_default();
    assert!(
        !after.contains("million") && !after.contains("budget"),
        "the chunk ended by its budget, not by Ctrl-C:\n{screen}"
    );
    c.line("return 20 + 22");
    c.wait("the console working after the interrupt", |s| {
        s.rsplit("return 20 + 22").next().is_some_and(|rest| rest.lines().any(|l| l.trim() == "42"))
    });
}

/// A pause between typed lines, as a person leaves: long enough for the
/// console to be back waiting for input.
const PAUSE: Duration = Duration::from_millis(200);

/// How [`long_chunks`] types.
#[derive(Clone, Copy, Debug)]
enum Typing {
    /// A line at a time, each once its prompt shows, with a pause.
    Paced,
    /// All lines of all chunks in one write (one read for the console).
    Burst,
    /// All lines while another chunk runs (the terminal keeps them).
    Ahead,
}

/// Chunks of 3, 4 and 5 lines, each ending with a line of its own (`end`),
/// built on `k` so that every call types different chunks; and the value
/// each returns.
fn chunks(k: u32) -> [(Vec<String>, String); 3] {
    [
        (vec!["do".into(), format!("  return {k} * 11"), "end".into()], (k * 11).to_string()),
        (
            vec![
                format!("if {k} > 0 then"),
                format!("  local a = {k}"),
                "  return a * 11 + 1".into(),
                "end".into(),
            ],
            (k * 11 + 1).to_string(),
        ),
        (
            vec![
                "do".into(),
                "  local s = 0".into(),
                format!("  for i = 1, {k} do s = s + i end"),
                "  return s * 100".into(),
                "end".into(),
            ],
            (k * (k + 1) / 2 * 100).to_string(),
        ),
    ]
}

/// The screen lines of a chunk typed line by line: every line after its
/// prompt, then the value.
fn shown(lines: &[String], value: &str) -> Vec<String> {
    let mut shown: Vec<String> = lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            let prompt = if i == 0 { "dclua> " } else { "   ... " };
            format!("{prompt}{line}").trim_end().to_owned()
        })
        .collect();
    shown.push(value.to_owned());
    shown
}

/// Types the [`chunks`] of `k` and checks that each ran whole: every line,
/// the last included, shows after its prompt and the chunk's value follows.
fn long_chunks(c: &Pane<'_>, k: u32, typing: Typing) {
    let chunks = chunks(k);
    match typing {
        Typing::Paced => {
            for (lines, value) in &chunks {
                for (i, line) in lines.iter().enumerate() {
                    c.line(line);
                    if i + 1 < lines.len() {
                        let typed = shown(&lines[..=i], "   ...");
                        c.wait("the next continuation prompt", |s| ends_with_lines(s, &typed));
                        std::thread::sleep(PAUSE);
                    }
                }
                let mut expected = shown(lines, value);
                expected.push("dclua>".into());
                c.wait("the chunk's value and the prompt", |s| ends_with_lines(s, &expected));
            }
        }
        Typing::Burst | Typing::Ahead => {
            if let Typing::Ahead = typing {
                // Typed once the chunk runs, so the terminal holds the lines.
                let running = format!("waiting {k}");
                c.line(&format!("print('{running}') dc.sleep(1)"));
                c.wait("the chunk running", |s| s.lines().any(|l| l.trim_end() == running));
            }
            let all: Vec<&str> =
                chunks.iter().flat_map(|(lines, _)| lines).map(String::as_str).collect();
            c.text(&format!("{}\r", all.join("\r")));
        }
    }
    let expected: Vec<String> =
        chunks.iter().flat_map(|(lines, value)| shown(lines, value)).collect();
    c.wait(&format!("the chunks of {k} ({typing:?}) and their values"), |s| {
        contains_lines(s, &expected)
    });
}

/// Pastes the 5-line chunk of `k` (bracketed paste: one buffer, edited as a
/// whole), presses Enter and checks its value.
fn pasted_chunk(c: &Pane<'_>, k: u32) {
    let [_, _, (lines, value)] = chunks(k);
    c.tmux.run(&["set-buffer", "-b", "chunk", &lines.join("\n")]);
    c.tmux.run(&["paste-buffer", "-p", "-d", "-b", "chunk", "-t", c.name]);
    let mut expected: Vec<String> = lines.iter().map(|l| l.trim_end().to_owned()).collect();
    expected[0] = format!("dclua> {}", expected[0]);
    c.wait("the pasted chunk", |s| ends_with_lines(s, &expected));
    c.keys(&["Enter"]);
    expected.push(value.clone());
    c.wait("the pasted chunk's value", |s| contains_lines(s, &expected));
}

/// The first console: everything but reloading the history.
fn first_run(c: &Pane<'_>) {
    c.wait("the first prompt", |s| last_line(s) == "dclua>");

    c.line("1 + 1");
    c.wait("1 + 1 = 2", |s| follows(s, "dclua> 1 + 1", "2") && last_line(s) == "dclua>");

    // A multi-line function: the continuation prompt, then the call.
    // (With a pause before each line, as a person types: the third line, the
    // `end`, is read after two continuation prompts in a row.)
    c.line("function f()");
    c.wait("the continuation prompt", |s| last_line(s) == "   ...");
    c.line("return 40 + 2");
    c.wait("the second continuation prompt", |s| {
        follows(s, "   ... return 40 + 2", "   ...") && last_line(s) == "   ..."
    });
    std::thread::sleep(PAUSE);
    c.line("end");
    c.wait("the function defined", |s| {
        follows(s, "   ... end", "dclua>") && last_line(s) == "dclua>"
    });
    c.line("f()");
    c.wait("f() = 42", |s| follows(s, "dclua> f()", "42"));
    assert!(follows(&c.screen(), "   ... return 40 + 2", "   ... end"));

    // Chunks of 3, 4 and 5 lines, typed a line at a time, in one burst,
    // ahead while a chunk runs, and pasted.
    long_chunks(c, 3, Typing::Paced);
    long_chunks(c, 6, Typing::Burst);
    long_chunks(c, 9, Typing::Ahead);
    pasted_chunk(c, 12);

    // Home and End are keys (tmux sends `end` unquoted as the End key: the
    // helpers type text with `-l`).
    c.text("1 + 2");
    c.keys(&["Home"]);
    c.text("10 * ");
    c.keys(&["End"]);
    c.line(" + 1");
    c.wait("the edited line ran", |s| follows(s, "dclua> 10 * 1 + 2 + 1", "13"));

    // Tab completes a unique name, lists several, completes methods.
    c.text("dc.sl");
    c.keys(&["Tab"]);
    c.wait("dc.sl completed", |s| last_line(s) == "dclua> dc.sleep");
    c.line("(0)");
    c.wait("dc.sleep(0) ran", |s| follows(s, "dclua> dc.sleep(0)", "dclua>"));
    c.text("dc.");
    c.keys(&["Tab", "Tab"]);
    c.wait("the list of dc. names", |s| {
        s.lines()
            .any(|l| l.contains("dc.later") && l.contains("dc.stuck") && l.contains("dc.version"))
    });
    c.keys(&["C-u"]);
    c.wait("the line cleared", |s| last_line(s) == "dclua>");
    c.text("hub:sa");
    c.keys(&["Tab"]);
    c.wait("hub:sa completed", |s| last_line(s) == "dclua> hub:say");
    c.line("('hi')");
    c.wait("hub:say printed", |s| follows(s, "dclua> hub:say('hi')", "<tester> hi"));

    // An event printed by another thread while a line is being typed goes
    // above the prompt; the typed text stays and is still submitted whole.
    c.line("dc.later(1, \"event from elsewhere\")");
    c.wait("the prompt back", |s| {
        follows(s, "dclua> dc.later(1, \"event from elsewhere\")", "dclua>")
    });
    c.text("6 * 7");
    // The event is printed, then the prompt redrawn: wait for both.
    c.wait("the event above the typed line", |s| {
        follows(s, "event from elsewhere", "dclua> 6 * 7") && last_line(s) == "dclua> 6 * 7"
    });
    c.keys(&["Enter"]);
    c.wait("6 * 7 = 42", |s| follows(s, "dclua> 6 * 7", "42"));

    // Typed while a chunk waits: kept, and run after it, every line of it
    // (the terminal hands several lines over in one read).
    c.line("dc.sleep(1)");
    c.line("7 * 6");
    c.line("5 * 5");
    c.wait("the type-ahead ran", |s| follows(s, "dclua> 5 * 5", "25"));
    assert!(follows(&c.screen(), "dclua> 7 * 6", "42"), "{}", c.screen());
    // Several lines arriving at once at the prompt (a fast paste).
    c.text("11\r22\r");
    c.wait("both pasted lines ran", |s| follows(s, "dclua> 22", "22"));
    assert!(follows(&c.screen(), "dclua> 11", "11"), "{}", c.screen());

    // Ctrl-C while a chunk waits interrupts it (well before its 30 s) and the
    // console goes on.
    // (`print` shows when the host runs the chunk: the console is then past
    // reading the line and counts Ctrl-C for this chunk.)
    c.line("print('sleeping') dc.sleep(30)");
    c.wait("the chunk running", |s| s.lines().any(|l| l.trim_end() == "sleeping"));
    c.keys(&["C-c"]);
    c.wait("the interrupt", |s| s.lines().any(|l| l.trim_end().ends_with("error: interrupted")));
    c.line("3 * 3");
    c.wait("3 * 3 = 9", |s| follows(s, "dclua> 3 * 3", "9"));

    // A chunk that ignores interrupts: the third Ctrl-C stops waiting for it.
    c.line("print('stuck') dc.stuck(3) return 'late'");
    c.wait("the chunk running", |s| s.lines().any(|l| l.trim_end() == "stuck"));
    c.keys(&["C-c"]);
    // Signals that arrive together are merged by the kernel: leave time for
    // the first to be handled (the first press shows nothing).
    std::thread::sleep(Duration::from_millis(300));
    c.keys(&["C-c"]);
    c.wait("the warning", |s| s.contains("(still running; Ctrl-C again stops waiting for it)"));
    c.keys(&["C-c"]);
    c.wait("the console giving up", |s| {
        s.lines().any(|l| l.contains("error: no longer waiting for the chunk"))
            && last_line(s) == "dclua>"
    });
    c.line("5 - 4");
    c.wait("the next chunk after the stuck one", |s| follows(s, "dclua> 5 - 4", "1"));
    let screen = c.screen();
    assert!(
        !screen.lines().any(|l| l.trim_end() == "late"),
        "the abandoned outcome showed:\n{screen}"
    );

    // Ctrl-C at the prompt drops the line.
    c.text("junk junk");
    c.keys(&["C-c"]);
    c.wait("a fresh prompt", |s| follows(s, "dclua> junk junk", "dclua>"));
    c.line("4 + 4");
    c.wait("4 + 4 = 8", |s| follows(s, "dclua> 4 + 4", "8"));

    // Ctrl-C in an unfinished chunk drops the whole chunk.
    c.line("function g()");
    c.wait("the continuation prompt", |s| last_line(s) == "   ...");
    c.keys(&["C-c"]);
    c.wait("a fresh prompt", |s| last_line(s) == "dclua>");
    c.line("g");
    c.wait("g undefined", |s| follows(s, "dclua> g", "nil"));

    // Errors print as `error: ...`, in red on a terminal.
    c.line("error('boom')");
    c.wait("the error", |s| follows(s, "dclua> error('boom')", "error: console:1: boom"));
    let colored = c.tmux.run(&["capture-pane", "-p", "-e", "-S", "-500", "-t", c.name]);
    assert!(
        colored.contains("\x1b[31merror: console:1: boom"),
        "the error is not red:\n{colored:?}"
    );
    assert!(!c.screen().contains("near 'junk'"), "the dropped line ran:\n{}", c.screen());
}

/// The second console: the history of the first, recalled and edited.
fn second_run(c: &Pane<'_>) {
    c.wait("the first prompt", |s| last_line(s) == "dclua>");
    c.keys(&["Up"]);
    c.wait("the last entry recalled", |s| last_line(s) == "dclua> error('boom')");
    c.keys(&["C-u"]);
    // f is not defined in this run; find its definition in the history.
    c.keys(&["C-r"]);
    c.text("40 + 2");
    c.wait("the search", |s| s.contains("`40 + 2': function f()"));
    c.keys(&["Enter"]);
    c.line("f()");
    c.wait("f() = 42", |s| follows(s, "dclua> f()", "42"));

    // A recalled multi-line chunk is edited as one buffer: without its `end`,
    // Enter continues the buffer instead of running it.
    c.keys(&["Up", "Up"]);
    c.wait("the function recalled", |s| {
        follows(s, "dclua> function f()", "return 40 + 2") && last_line(s) == "end"
    });
    c.keys(&["BSpace", "BSpace", "BSpace", "BSpace", "Enter"]);
    c.wait("the buffer continued", |s| last_line(s) == "return 40 + 2");
    std::thread::sleep(Duration::from_millis(300));
    c.text("end");
    c.keys(&["Enter"]);
    c.line("f()");
    c.wait("f() = 42 again", |s| s.matches("\n42\n").count() == 2);
    assert!(!c.screen().contains("error"), "the unfinished buffer ran:\n{}", c.screen());
}

/// Whether `lines` show one after the other somewhere on the screen
/// (trailing blanks ignored).
fn contains_lines(screen: &str, lines: &[String]) -> bool {
    let screen: Vec<&str> = screen.lines().map(str::trim_end).collect();
    screen.windows(lines.len()).any(|w| w.iter().zip(lines).all(|(a, b)| a == b))
}

/// Whether the screen's last non-empty lines are `lines` (trailing blanks
/// ignored).
fn ends_with_lines(screen: &str, lines: &[String]) -> bool {
    let screen: Vec<&str> = screen.lines().map(str::trim_end).filter(|l| !l.is_empty()).collect();
    screen.len() >= lines.len()
        && screen[screen.len() - lines.len()..].iter().zip(lines).all(|(a, b)| a == b)
}

/// Starts this test binary as the console in a new window.
fn console<'a>(tmux: &'a Tmux, name: &'a str, history: &Path) -> Pane<'a> {
    let exe = std::env::current_exe().expect("the test binary's path");
    let command = format!(
        "env {CHILD_ENV}={} {} {TEST_NAME} --exact --nocapture --quiet --test-threads=1",
        quote(history),
        quote(&exe)
    );
    tmux.window(name, &command)
}
