//! The console without a terminal: chunks read from a pipe or a file.
//!
//! `echo 'dc.hubs()' | dclua ...` and the tests use this. Lines accumulate
//! until they form a complete chunk (the same check as the interactive
//! console), the chunk runs, and its outcome is written before the next chunk
//! is read: chunks run one at a time, in order, each awaited however long it
//! waits. Errors are written as `error: <message>` and reading goes on.
//!
//! Nothing here touches the terminal or signals.

use std::io::{BufRead, Write};
use std::sync::Arc;

use anyhow::Context as _;

use super::backend::{ConsoleBackend, EvalOutcome};
use super::repl::print_outcome;
use super::syntax::{ChunkStatus, SyntaxChecker};

/// Runs every chunk of `input` on `backend`, writing outcomes to `output`,
/// until the end of `input`.
///
/// A first line starting with `#` (`#!/usr/bin/env dclua`) is skipped, as
/// `lua` does. An unfinished chunk at the end runs as it stands, so that Lua
/// reports what is missing. Fails only when `input` cannot be read or `output`
/// cannot be written.
pub fn run_piped(
    backend: Arc<dyn ConsoleBackend>,
    input: impl BufRead,
    mut output: impl Write,
) -> anyhow::Result<()> {
    let checker = SyntaxChecker::new()?;
    let mut pending = String::new();
    for (index, line) in input.lines().enumerate() {
        let line = line.with_context(|| format!("reading console input line {}", index + 1))?;
        if index == 0 && line.starts_with('#') {
            continue;
        }
        if pending.is_empty() {
            pending = line;
        } else {
            pending.push('\n');
            pending.push_str(&line);
        }
        if pending.trim().is_empty() {
            pending.clear();
            continue;
        }
        if let ChunkStatus::Incomplete(_) = checker.check(&pending) {
            continue;
        }
        run_chunk(&*backend, std::mem::take(&mut pending), &mut output)?;
    }
    if !pending.trim().is_empty() {
        run_chunk(&*backend, pending, &mut output)?;
    }
    output.flush().context("writing console output")
}

/// Runs one chunk, waits for its outcome and writes it.
fn run_chunk(
    backend: &dyn ConsoleBackend,
    chunk: String,
    output: &mut impl Write,
) -> anyhow::Result<()> {
    let outcome = backend.eval(chunk).recv().unwrap_or_else(|_| {
        EvalOutcome::Error("the client stopped before the chunk finished".into())
    });
    let mut result = Ok(());
    print_outcome(&outcome, false, |line| {
        if result.is_ok() {
            result = writeln!(output, "{line}");
        }
    });
    result.and_then(|()| output.flush()).context("writing console output")
}
