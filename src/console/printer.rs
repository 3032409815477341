//! Output that appears above the console's prompt: [`Printer`].
//!
//! Log lines, chat and private messages arrive on other threads at any time.
//! While the interactive console is reading a line, printing them straight to
//! the terminal would tear the line being typed; rustyline's `ExternalPrinter`
//! instead clears the prompt, prints, and redraws the prompt with the typed
//! text. Outside the interactive console (before it starts, after it ends,
//! when standard input or output is not a terminal) lines go to stdout.
//!
//! There is one printer per process: [`printer()`] hands out handles to it, and
//! [`repl::run_interactive`](super::run_interactive) attaches the editor while
//! it runs. A handle never blocks its caller on the terminal: lines go through
//! an unbounded queue to a printer thread, because rustyline's external
//! printer can block (its hand-over channel holds a single line) and the
//! worker thread, which prints Lua events, must never stall. One rare case
//! remains: a line handed to rustyline at the very moment it stops reading
//! (Enter was just pressed) shows at the next prompt rather than at once.
//!
//! Consoles attached to a daemon ([`crate::control`]) subscribe and get
//! every line as well.
//!
//! This module must not read input or know anything about Lua.

use std::io::Write;
use std::sync::mpsc::{self, Sender};
use std::sync::{Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Where lines go right now.
enum Target {
    /// Plain standard output.
    Stdout,
    /// The queue of the printer thread that owns the editor's external printer.
    Editor(Sender<String>),
}

static TARGET: Mutex<Target> = Mutex::new(Target::Stdout);

/// Consoles attached over the control socket ([`crate::control`]): each
/// gets every printed line too, until its receiver is dropped.
/// Each gets `(is_a_log_line, line)`.
static SUBSCRIBERS: Mutex<Vec<Sender<(bool, String)>>> = Mutex::new(Vec::new());

/// Hands `line` to every attached console, forgetting those that left.
fn to_subscribers(log: bool, line: &str) {
    let mut subs = SUBSCRIBERS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    subs.retain(|s| s.send((log, line.to_string())).is_ok());
}

/// Locks the target; a panic elsewhere while holding it leaves a usable value.
fn target() -> MutexGuard<'static, Target> {
    TARGET.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A handle that prints whole lines above the console's prompt.
///
/// Cheap to clone, usable from any thread. See the module documentation.
#[derive(Debug, Clone, Copy, Default)]
pub struct Printer {
    _private: (),
}

/// A handle to the process's console printer, for routing log lines and Lua
/// events (chat, PMs) to the console:
///
/// ```no_run
/// let printer = dclua::console::printer();
/// dclua::logging::set_sink(Some(Box::new(move |line| printer.print_line(line))));
/// ```
pub fn printer() -> Printer {
    Printer { _private: () }
}

impl Printer {
    /// Prints `line` (a trailing newline is added; inner newlines are kept)
    /// above the prompt, or on stdout when no interactive console runs. Output
    /// errors are ignored: there is nowhere left to report them.
    pub fn print_line(&self, line: &str) {
        to_subscribers(false, line);
        let target = target();
        if let Target::Editor(queue) = &*target {
            // Above a prompt, a chatty timer is coalesced (see [`Coalescer`]);
            // plain output (`dclua run`, pipes) is the script's and stays
            // whole.
            let lines = COALESCER
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .feed(line, Instant::now());
            if lines.into_iter().all(|l| queue.send(format!("{l}\n")).is_ok()) {
                return;
            }
        }
        drop(target);
        print_to_stdout(line);
    }
}

static COALESCER: Mutex<Coalescer> = Mutex::new(Coalescer::new());

/// Keeps a chatty source from flooding the interactive console: a line
/// repeated at once is shown once, then "(repeated N more times)" when
/// another line comes or every [`REPEAT_REPORT`]; past [`LINES_PER_SECOND`]
/// lines in a second, the rest of that second is counted, not shown, and
/// said with the next line shown.
#[derive(Debug)]
pub(super) struct Coalescer {
    last: Option<String>,
    repeats: u64,
    repeats_since: Option<Instant>,
    second: Option<Instant>,
    shown_this_second: u32,
    hidden: u64,
}

/// How often a line still repeating is reported.
const REPEAT_REPORT: Duration = Duration::from_secs(10);
/// The most lines shown in one second.
const LINES_PER_SECOND: u32 = 50;

impl Coalescer {
    pub(super) const fn new() -> Coalescer {
        Coalescer {
            last: None,
            repeats: 0,
            repeats_since: None,
            second: None,
            shown_this_second: 0,
            hidden: 0,
        }
    }

    /// The lines to show for `line` printed at `now`.
    pub(super) fn feed(&mut self, line: &str, now: Instant) -> Vec<String> {
        let mut out = Vec::new();
        if self.last.as_deref() == Some(line) {
            self.repeats += 1;
            let since = *self.repeats_since.get_or_insert(now);
            if now.duration_since(since) >= REPEAT_REPORT {
                out.push(format!("(repeated {} more times)", self.repeats));
                self.repeats = 0;
                self.repeats_since = Some(now);
            }
            return out;
        }
        if self.repeats > 0 {
            out.push(format!("(repeated {} more times)", self.repeats));
        }
        self.repeats = 0;
        self.repeats_since = None;
        self.last = Some(line.to_string());
        match self.second {
            Some(start) if now.duration_since(start) < Duration::from_secs(1) => {}
            _ => {
                self.second = Some(now);
                self.shown_this_second = 0;
            }
        }
        if self.shown_this_second >= LINES_PER_SECOND {
            self.hidden += 1;
            return out;
        }
        if self.hidden > 0 {
            out.push(format!("({} lines not shown)", self.hidden));
            self.hidden = 0;
        }
        self.shown_this_second += 1;
        out.push(line.to_string());
        out
    }
}

impl Printer {
    /// Hands a log line to attached consoles only (a daemon's log lines,
    /// which also go to its standard error and log file).
    pub fn broadcast_log(&self, line: &str) {
        to_subscribers(true, line);
    }

    /// Every line printed from now on, `(is_a_log_line, line)`, for a
    /// console attached over the control socket; dropping the receiver ends
    /// the subscription.
    pub fn subscribe(&self) -> mpsc::Receiver<(bool, String)> {
        let (tx, rx) = mpsc::channel();
        SUBSCRIBERS.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(tx);
        rx
    }
}

/// Writes one line to stdout, flushed, ignoring errors (a closed pipe).
fn print_to_stdout(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// The printer thread while the interactive console runs; [`Attachment::detach`]
/// sends later lines to stdout again.
pub(super) struct Attachment {
    thread: Option<JoinHandle<()>>,
}

/// Routes printed lines through `external` (the editor's external printer)
/// until the returned attachment is detached.
pub(super) fn attach<P>(mut external: P) -> std::io::Result<Attachment>
where
    P: rustyline::ExternalPrinter + Send + 'static,
{
    let (queue, lines) = mpsc::channel::<String>();
    let thread =
        std::thread::Builder::new().name("dclua-console-printer".into()).spawn(move || {
            for line in lines {
                // The editor is gone or the terminal failed: keep the line.
                if external.print(line.clone()).is_err() {
                    let _ = std::io::stdout().lock().write_all(line.as_bytes());
                    let _ = std::io::stdout().flush();
                }
            }
        })?;
    *target() = Target::Editor(queue);
    Ok(Attachment { thread: Some(thread) })
}

impl Attachment {
    /// Sends later lines to stdout and waits until the queued ones are
    /// printed. Call it after the editor is dropped: the external printer then
    /// writes directly, so the printer thread cannot block on it.
    pub(super) fn detach(mut self) {
        // Replacing the target drops the only sender: the thread drains the
        // queue and ends.
        *target() = Target::Stdout;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Attachment {
    /// An early return (an error) left the printer attached: send lines to
    /// stdout again. The thread is not joined here, since the editor may still
    /// be alive and the thread blocked on it; it ends when the editor goes.
    fn drop(&mut self) {
        if self.thread.is_some() {
            *target() = Target::Stdout;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chatty_source_is_coalesced_and_rate_limited() {
        let mut c = Coalescer::new();
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        assert_eq!(c.feed("tick", at(0)), ["tick"]);
        assert!(c.feed("tick", at(100)).is_empty());
        assert!(c.feed("tick", at(200)).is_empty());
        assert_eq!(c.feed("other", at(300)), ["(repeated 2 more times)", "other"]);
        // Still repeating after 10 s: said every 10 s.
        assert_eq!(c.feed("tock", at(400)), ["tock"]);
        let mut said = Vec::new();
        for i in 1..=120 {
            said.extend(c.feed("tock", at(400 + i * 100)));
        }
        assert_eq!(
            said,
            ["(repeated 101 more times)"],
            "the first repeat at 0.5 s, said at 10.5 s"
        );
        // Different lines: 50 a second shown, the rest counted.
        let mut c = Coalescer::new();
        let shown: Vec<String> = (0..80).flat_map(|i| c.feed(&format!("n{i}"), at(i))).collect();
        assert_eq!(shown.len(), 50);
        assert_eq!(c.feed("later", at(1500)), ["(30 lines not shown)", "later"]);
    }
}
