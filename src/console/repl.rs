//! The interactive console: rustyline on the calling thread, chunks to the
//! backend, outcomes and events printed above the prompt.
//!
//! # Lines and chunks
//!
//! The prompt is `dclua> `. When a line is not a complete chunk yet
//! (`function f()`, `x =`, `1 +`; see [`SyntaxChecker`]), the next line is
//! read with the continuation prompt `   ... ` and the chunk grows until it
//! compiles or is plainly wrong; then it goes to the backend as one chunk and
//! into the history as one entry. rustyline 19 has no continuation prompt for
//! its own multi-line buffers, so fresh input is read a line at a time, as
//! `lua` and `python` do. A multi-line chunk recalled from the history (or
//! pasted in one go) is edited as one buffer: there, the [`Validator`] keeps
//! Enter inserting a line break while the buffer is incomplete.
//!
//! # Keys
//!
//! - Ctrl-C at the prompt drops the line (and an unfinished chunk) and shows a
//!   fresh prompt; the client keeps running.
//! - Ctrl-D on an empty line quits (the function returns `Ok`); on an
//!   unfinished chunk it sends the chunk as it stands, so Lua reports why it
//!   is incomplete.
//! - Tab completes the identifier path before the cursor (`dc.sl` ->
//!   `dc.sleep`) from [`ConsoleBackend::complete`]; a second Tab lists.
//!
//! # While a chunk runs
//!
//! A chunk may wait for seconds (`dc.sleep(5)`, a search). Meanwhile rustyline
//! is not reading: the terminal is back in its normal (cooked) mode, so what
//! the user types is echoed and kept by the terminal, and rustyline reads it
//! at the next prompt (rustyline's `buffer-redux` feature keeps the lines
//! after the first when one read returns several). Ctrl-C is then a real
//! SIGINT, which a signal handler (registered for the console's lifetime)
//! counts; the waiting loop looks at the count and calls
//! [`ConsoleBackend::interrupt`], and the chunk fails with "interrupted". If
//! the chunk still does not end, the third Ctrl-C stops waiting for it (it
//! keeps running; its outcome is dropped) so that a stuck host cannot lock
//! the console. During that time SIGINT does not stop the
//! process: the application must not also treat SIGINT as "shut down" while
//! the console runs (Ctrl-D quits the console).
//!
//! Events and log lines printed meanwhile go to the terminal directly; while
//! rustyline reads, they go above the prompt (see [`super::printer`]). The
//! outcome itself is written by the console thread before the next prompt, so
//! it always shows right under its chunk.
//!
//! # History
//!
//! Loaded from the given file at start (its folder is created), and each
//! chunk is appended as it is run, so a crash loses nothing. A history that
//! cannot be read or written only prints one warning: the console goes on.

use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use rustyline::completion::Completer;
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::FileHistory;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{CompletionType, Config, Editor, Helper};

use super::backend::{ConsoleBackend, EvalOutcome};
use super::complete::complete_line;
use super::printer::{self, Printer};
use super::syntax::{ChunkStatus, SyntaxChecker};

/// The prompt for a new chunk.
pub const PROMPT: &str = "dclua> ";
/// The prompt for the next line of an unfinished chunk.
pub const CONTINUATION_PROMPT: &str = "   ... ";
/// How many chunks the history keeps.
const HISTORY_SIZE: usize = 2000;
/// How often the waiting loop looks at the Ctrl-C count. The outcome itself
/// wakes the loop at once; this only bounds the reaction to Ctrl-C.
const INTERRUPT_POLL: Duration = Duration::from_millis(50);
/// The Ctrl-C press (while one chunk runs) at which the console stops waiting.
const GIVE_UP_AFTER_PRESSES: usize = 3;

/// Runs the interactive console on the calling thread until Ctrl-D.
///
/// Each chunk goes to `backend`; `history` is the history file (created with
/// its folder when missing). While this runs, [`printer()`](super::printer())
/// handles print above the prompt. Returns an error only when the terminal
/// itself fails (the line editor cannot start or read).
///
/// SIGINT: while this runs, Ctrl-C belongs to the console (see the module
/// documentation); the application must not also shut down on it. After this
/// returns SIGINT no longer has its default action (signal-hook cannot restore
/// it), so an application that goes on running handles SIGINT itself.
pub fn run_interactive(backend: Arc<dyn ConsoleBackend>, history: PathBuf) -> anyhow::Result<()> {
    let config = Config::builder()
        .max_history_size(HISTORY_SIZE)
        .context("configuring the console history size")?
        .history_ignore_dups(true)
        .context("configuring the console history")?
        .completion_type(CompletionType::List)
        .auto_add_history(false)
        .build();
    let mut editor: Editor<ConsoleHelper, FileHistory> =
        Editor::with_config(config).context("starting the console's line editor")?;
    editor.set_helper(Some(ConsoleHelper {
        backend: Arc::clone(&backend),
        checker: SyntaxChecker::new()?,
    }));
    let checker = SyntaxChecker::new()?;
    let printer = printer::printer();
    let mut history = HistoryFile { path: history, warned: false };
    history.load(&mut editor, &printer);

    // Not a terminal (ENOTTY): printer handles keep writing to stdout.
    let attachment = match editor.create_external_printer() {
        Ok(external) => Some(printer::attach(external).context("starting the console printer")?),
        Err(_) => None,
    };
    // Counts every SIGINT, so that quick presses are never merged.
    let interrupts = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&interrupts);
    // SAFETY: the action runs in the signal handler; it only does a lock-free
    // atomic add, which is async-signal-safe.
    let sigint = unsafe {
        signal_hook::low_level::register(signal_hook::consts::SIGINT, move || {
            counter.fetch_add(1, Ordering::SeqCst);
        })
    }
    .context("catching Ctrl-C for the console")?;

    let mut session = Session {
        editor,
        backend: &*backend,
        checker,
        history,
        printer,
        interrupts: &interrupts,
        color: std::io::stdout().is_terminal(),
    };
    let result = session.run();

    signal_hook::low_level::unregister(sigint);
    // The editor goes first: its external printer then writes directly, so
    // the printer thread can drain its queue without waiting for a prompt.
    drop(session);
    if let Some(attachment) = attachment {
        attachment.detach();
    }
    result
}

/// The state of one interactive console run.
struct Session<'a> {
    editor: Editor<ConsoleHelper, FileHistory>,
    backend: &'a dyn ConsoleBackend,
    checker: SyntaxChecker,
    history: HistoryFile,
    printer: Printer,
    /// SIGINTs received (reset before each chunk).
    interrupts: &'a AtomicUsize,
    color: bool,
}

impl Session<'_> {
    /// Reads and runs chunks until Ctrl-D on an empty prompt.
    fn run(&mut self) -> anyhow::Result<()> {
        let mut pending = String::new();
        loop {
            let prompt = if pending.is_empty() { PROMPT } else { CONTINUATION_PROMPT };
            match self.editor.readline(prompt) {
                Ok(line) => {
                    let chunk =
                        if pending.is_empty() { line } else { format!("{pending}\n{line}") };
                    pending.clear();
                    if chunk.trim().is_empty() {
                        continue;
                    }
                    if let ChunkStatus::Incomplete(_) = self.checker.check(&chunk) {
                        pending = chunk;
                        continue;
                    }
                    self.run_chunk(chunk);
                }
                // Ctrl-C: rustyline has already moved to a fresh line.
                Err(ReadlineError::Interrupted) => pending.clear(),
                Err(ReadlineError::Eof) if pending.is_empty() => return Ok(()),
                Err(ReadlineError::Eof) => self.run_chunk(std::mem::take(&mut pending)),
                Err(e) => return Err(e).context("reading a line at the console"),
            }
        }
    }

    /// Records `chunk` in the history, runs it and prints its outcome.
    fn run_chunk(&mut self, chunk: String) {
        self.history.add(&mut self.editor, &chunk, &self.printer);
        // A SIGINT from before is stale; one from now on is for this chunk,
        // even if it comes before the waiting starts.
        self.interrupts.store(0, Ordering::SeqCst);
        let outcome = self.backend.eval(chunk);
        let outcome = self.await_outcome(&outcome);
        // Straight to the terminal, not through the printer's queue: the
        // outcome must be on screen before the next prompt, and rustyline is
        // not reading now, so nothing can be torn.
        let mut out = std::io::stdout().lock();
        print_outcome(&outcome, self.color, |line| {
            let _ = writeln!(out, "{line}");
        });
        let _ = out.flush();
    }

    /// Waits for the outcome, turning Ctrl-C (SIGINT) into interrupts.
    fn await_outcome(&self, outcome: &Receiver<EvalOutcome>) -> EvalOutcome {
        let mut presses = 0;
        loop {
            match outcome.recv_timeout(INTERRUPT_POLL) {
                Ok(outcome) => return outcome,
                Err(RecvTimeoutError::Disconnected) => {
                    return EvalOutcome::Error(
                        "the client stopped before the chunk finished".into(),
                    )
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
            let new = self.interrupts.swap(0, Ordering::SeqCst);
            if new == 0 {
                continue;
            }
            presses += new;
            if presses >= GIVE_UP_AFTER_PRESSES {
                return EvalOutcome::Error(
                    "no longer waiting for the chunk (it may still be running; \
                     its outcome will not be shown)"
                        .into(),
                );
            }
            self.backend.interrupt();
            // `presses` only grows, so this shows once.
            if presses == GIVE_UP_AFTER_PRESSES - 1 {
                self.printer.print_line("(still running; Ctrl-C again stops waiting for it)");
            }
        }
    }
}

/// Prints an outcome, one line per value, errors as `error: <message>` (red
/// when `color`).
pub(super) fn print_outcome(outcome: &EvalOutcome, color: bool, mut print: impl FnMut(&str)) {
    match outcome {
        EvalOutcome::Values(values) => values.iter().for_each(|v| print(v)),
        EvalOutcome::Error(message) if color => print(&format!("\x1b[31merror: {message}\x1b[0m")),
        EvalOutcome::Error(message) => print(&format!("error: {message}")),
    }
}

/// The history file, and whether its trouble was reported already.
struct HistoryFile {
    path: PathBuf,
    warned: bool,
}

impl HistoryFile {
    /// Loads the history; a missing file is a fresh start, not a problem.
    fn load(&mut self, editor: &mut Editor<ConsoleHelper, FileHistory>, printer: &Printer) {
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if let Err(e) = std::fs::create_dir_all(dir) {
                self.warn(printer, &format!("cannot create its folder {}: {e}", dir.display()));
                return;
            }
        }
        match editor.load_history(&self.path) {
            Ok(()) => {}
            Err(ReadlineError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => self.warn(printer, &format!("cannot read it: {e}")),
        }
    }

    /// Adds `chunk` to the history and appends it to the file.
    fn add(
        &mut self,
        editor: &mut Editor<ConsoleHelper, FileHistory>,
        chunk: &str,
        printer: &Printer,
    ) {
        if let Err(e) = editor.add_history_entry(chunk) {
            self.warn(printer, &format!("cannot add to it: {e}"));
            return;
        }
        if let Err(e) = editor.append_history(&self.path) {
            self.warn(printer, &format!("cannot write it: {e}"));
        }
    }

    /// Prints one warning per console run.
    fn warn(&mut self, printer: &Printer, problem: &str) {
        if !self.warned {
            self.warned = true;
            printer.print_line(&format!(
                "warning: console history {}: {problem}",
                self.path.display()
            ));
        }
    }
}

/// rustyline's helper: completion from the backend and the multi-line check.
struct ConsoleHelper {
    backend: Arc<dyn ConsoleBackend>,
    checker: SyntaxChecker,
}

impl Completer for ConsoleHelper {
    type Candidate = String;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &rustyline::Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        Ok(complete_line(&*self.backend, line, pos))
    }
}

impl Validator for ConsoleHelper {
    /// Only a buffer that already spans lines (recalled from the history,
    /// pasted) is continued in place; a single fresh line is accepted and the
    /// session reads its continuation with the `   ... ` prompt.
    fn validate(&self, ctx: &mut ValidationContext<'_>) -> rustyline::Result<ValidationResult> {
        let input = ctx.input();
        if input.contains('\n') && matches!(self.checker.check(input), ChunkStatus::Incomplete(_)) {
            Ok(ValidationResult::Incomplete)
        } else {
            Ok(ValidationResult::Valid(None))
        }
    }
}

impl Hinter for ConsoleHelper {
    type Hint = String;
}

impl Highlighter for ConsoleHelper {}

impl Helper for ConsoleHelper {}
