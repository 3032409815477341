//! The Lua console: an interactive read-eval-print loop attached to the live
//! client, and the same loop over a pipe.
//!
//! The console owns the terminal side only: reading lines, deciding when a
//! chunk is complete, completion, history, Ctrl-C, and printing outcomes and
//! events above the prompt. It never runs Lua itself: each chunk goes to a
//! [`ConsoleBackend`] (the Lua host, which runs it as a coroutine job on the
//! worker) and the console waits for its [`EvalOutcome`].
//!
//! - [`run_interactive`]: rustyline on the calling thread (stdin is a terminal).
//! - [`run_piped`]: lines from any reader, outcomes to any writer (scripts,
//!   shell pipelines, tests).
//! - [`printer()`] / [`Printer`]: prints log lines and Lua events above the
//!   prompt from any thread; plain stdout when there is no prompt.
//! - [`SyntaxChecker`]: the "is this chunk complete?" check both loops use.
//! - [`complete_line`]: the completion both the editor and tests use.

mod backend;
mod complete;
mod piped;
mod printer;
mod repl;
mod syntax;

pub use backend::{ConsoleBackend, EvalOutcome};
pub use complete::{complete_line, identifier_path_before};
pub use piped::run_piped;
pub use printer::{printer, Printer};
pub use repl::{run_interactive, CONTINUATION_PROMPT, PROMPT};
pub use syntax::{ChunkStatus, SyntaxChecker};
