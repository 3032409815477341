//! The console over a pipe (`run_piped`) against a fake Lua host: values
//! print, multi-line chunks gather, errors do not stop the run, waiting chunks
//! are awaited one at a time, and completion finds the identifier path.

mod console_fake;

use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::time::{Duration, Instant};

use console_fake::FakeBackend;
use dclua::console::{self, complete_line, ConsoleBackend, EvalOutcome};

/// Runs `input` through the piped console on `backend`; returns the output.
fn run_with(backend: &Arc<FakeBackend>, input: &str) -> String {
    let mut output = Vec::new();
    let backend: Arc<dyn ConsoleBackend> = Arc::clone(backend) as Arc<dyn ConsoleBackend>;
    console::run_piped(backend, input.as_bytes(), &mut output).expect("run_piped");
    String::from_utf8(output).expect("console output is UTF-8")
}

fn run(input: &str) -> String {
    run_with(&FakeBackend::start(), input)
}

#[test]
fn expressions_print_their_values_one_per_line() {
    assert_eq!(run("1 + 1\nreturn 'a', 'b'\nx = 5\nx * 2\n"), "2\na\nb\n10\n");
}

#[test]
fn statements_and_blank_lines_print_nothing() {
    assert_eq!(run("\n   \nx = 1\n-- a comment\nlocal y = 2\n"), "");
}

#[test]
fn a_multi_line_function_then_a_call() {
    assert_eq!(run("function f()\n return 42\nend\nf()\n"), "42\n");
}

#[test]
fn an_unfinished_expression_continues_on_the_next_line() {
    assert_eq!(run("1 +\n2\nt = {1,\n2,\n3}\n#t\n"), "3\n3\n");
}

#[test]
fn an_error_prints_and_the_next_chunk_still_runs() {
    let out = run("error('boom')\nx = )\n1 + 2\n");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "output {out:?}");
    assert_eq!(lines[0], "error: console:1: boom");
    assert!(lines[1].starts_with("error: console:1:") && lines[1].contains("')'"), "{out:?}");
    assert_eq!(lines[2], "3");
}

#[test]
fn waiting_chunks_are_awaited_in_order() {
    let backend = FakeBackend::start();
    let started = Instant::now();
    let out = run_with(
        &backend,
        "dc.sleep(0.3) return 'slow'\n'fast'\nfunction g()\n dc.sleep(0.1)\n return 'woke'\nend\ng()\n",
    );
    assert_eq!(out, "slow\nfast\nwoke\n");
    assert!(started.elapsed() >= Duration::from_millis(400), "the sleeps did not happen");
    assert_eq!(backend.evals(), 4);
    assert_eq!(backend.max_in_flight(), 1, "a chunk was sent before the previous outcome");
}

#[test]
fn an_unfinished_chunk_at_the_end_reports_what_is_missing() {
    let out = run("1\nfunction f()\n return 1\n");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "output {out:?}");
    assert_eq!(lines[0], "1");
    assert!(lines[1].starts_with("error: ") && lines[1].contains("<eof>"), "{out:?}");
}

#[test]
fn a_first_line_starting_with_hash_is_skipped() {
    assert_eq!(run("#!/usr/bin/env dclua\n'ok'\n"), "ok\n");
}

#[test]
fn input_without_a_final_newline_runs() {
    assert_eq!(run("6 * 7"), "42\n");
}

/// A host that loses every chunk: it drops the reply channel unanswered.
struct LosingBackend;

impl ConsoleBackend for LosingBackend {
    fn eval(&self, _chunk: String) -> Receiver<EvalOutcome> {
        mpsc::channel().1
    }
    fn interrupt(&self) {}
    fn complete(&self, _prefix: &str) -> Vec<String> {
        Vec::new()
    }
}

#[test]
fn a_lost_outcome_is_an_error_not_a_hang() {
    let mut output = Vec::new();
    console::run_piped(Arc::new(LosingBackend), "1\n2\n".as_bytes(), &mut output)
        .expect("run_piped");
    let out = String::from_utf8(output).expect("UTF-8");
    assert_eq!(out.lines().count(), 2, "output {out:?}");
    assert!(
        out.lines()
            .all(|l| l.starts_with("error: ") && l.contains("stopped before the chunk finished")),
        "{out:?}"
    );
}

#[test]
fn completion_splits_the_identifier_path_before_the_cursor() {
    let backend = FakeBackend::start();
    let cases: &[(&str, usize, usize, &[&str])] = &[
        ("dc.sl", 5, 0, &["dc.sleep"]),
        ("print(dc.sl", 11, 6, &["dc.sleep"]),
        ("pri", 3, 0, &["print"]),
        ("x = hub:sa", 10, 4, &["hub:say"]),
        ("hub:se", 6, 0, &["hub:send"]),
        // `nick` is a field, not a method.
        ("hub:ni", 6, 0, &[]),
        ("hub.ni", 6, 0, &["hub.nick"]),
        // The cursor in the middle: only what is before it counts.
        ("dc.sl(1)", 5, 0, &["dc.sleep"]),
        ("dc.", 3, 0, &["dc.later", "dc.sleep", "dc.stuck", "dc.version"]),
        ("nosuchname.x", 12, 0, &[]),
        // Inside a string or a number, nothing.
        ("print('dc.sl", 12, 7, &[]),
        ("x = 1.5", 7, 4, &[]),
    ];
    for &(line, pos, start, names) in cases {
        let (got_start, got) = complete_line(&*backend, line, pos);
        let got: Vec<&str> = got.iter().map(String::as_str).collect();
        assert_eq!((got_start, got.as_slice()), (start, names), "line {line:?} at {pos}");
    }
}

#[test]
fn an_interrupt_ends_a_waiting_chunk() {
    // The piped console never interrupts; this checks the fake host's side
    // of the contract that the interactive console relies on.
    let backend = FakeBackend::start();
    let outcome = backend.eval("dc.sleep(30)".into());
    std::thread::sleep(Duration::from_millis(100));
    backend.interrupt();
    let outcome = outcome.recv_timeout(Duration::from_secs(5)).expect("an outcome after interrupt");
    assert_eq!(outcome, EvalOutcome::Error("interrupted".into()));
    let busy = backend.eval("while true do end".into());
    std::thread::sleep(Duration::from_millis(100));
    backend.interrupt();
    match busy.recv_timeout(Duration::from_secs(5)).expect("an outcome after interrupt") {
        EvalOutcome::Error(m) => assert!(m.contains("interrupted"), "message {m:?}"),
        other => panic!("expected an error, got {other:?}"),
    }
}
