//! The console's view of the Lua host: the [`ConsoleBackend`] trait.
//!
//! The console (rustyline on the main thread, or the piped reader) never runs
//! Lua itself: it hands each complete chunk to a backend and waits for the
//! [`EvalOutcome`]. The real backend is the Lua host, which runs the chunk as a
//! coroutine job on the worker; tests use a fake one with a private Lua state.
//!
//! This module only defines the contract; it must not grow console logic.

use std::sync::mpsc::Receiver;

/// What the console needs from a Lua host.
///
/// All methods are called from the console thread and must return promptly:
/// `eval` hands the chunk over and returns a receiver at once, the outcome
/// arrives later on that receiver.
pub trait ConsoleBackend: Send + Sync + 'static {
    /// Runs `chunk` (complete Lua source) as a coroutine job on the worker.
    ///
    /// The chunk may wait (`dc.sleep(1)`); the outcome arrives on the returned
    /// receiver when it finishes. The backend itself tries `return <chunk>`
    /// first so that expressions print their values. Dropping the sender
    /// without sending is read by the console as a lost outcome (an error).
    fn eval(&self, chunk: String) -> Receiver<EvalOutcome>;

    /// Ctrl-C while a chunk runs: the running chunk fails with "interrupted"
    /// (its outcome is then an [`EvalOutcome::Error`]). Called from the console
    /// thread while it waits; calling it when nothing runs must be harmless.
    fn interrupt(&self);

    /// Completion candidates for the identifier path before the cursor.
    ///
    /// `prefix` is made of letters, digits, `_`, `.` and `:`; candidates are
    /// whole paths that replace it: `"dc.sl"` -> `["dc.sleep"]`,
    /// `"pri"` -> `["print"]`, `"hub:sa"` -> `["hub:say"]`.
    fn complete(&self, prefix: &str) -> Vec<String>;
}

/// The result of one chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EvalOutcome {
    /// The chunk finished; each value is already formatted for display, one
    /// per line. Empty: nothing to print (a statement, `return` with nothing).
    Values(Vec<String>),
    /// The chunk failed (syntax error, runtime error, "interrupted"); the
    /// message as Lua reported it. The console prints it as `error: <message>`.
    Error(String),
}
