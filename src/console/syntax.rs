//! Is a chunk of console input complete Lua, unfinished, or wrong?
//!
//! The console asks this before it sends anything to the backend, so that
//! `function f()` continues on the next line instead of failing. The check
//! compiles the text in a private Lua state without any library and never
//! runs it: nothing typed at the console executes here.
//!
//! A chunk is tried both as written and as `return <chunk>`, as the backend
//! does, so that an unfinished expression (`1 +`) also continues.

use mlua::chunk::ChunkMode;
use mlua::{Lua, LuaOptions, StdLib};

/// Name the checker gives to chunks in its messages.
const CHUNK_NAME: &str = "=console";

/// What the checker thinks of a chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkStatus {
    /// It compiles (as a statement or as an expression): send it.
    Complete,
    /// It ends too early (`function f()`, `x =`, an open long string): read
    /// more lines. The message is what Lua would say if it ended here.
    Incomplete(String),
    /// It is wrong whatever follows (`x = )`). The message is Lua's. The
    /// console still sends it, so that the error is reported the usual way.
    Invalid(String),
}

/// Compiles console input in a private, library-less Lua state.
///
/// Not `Send`: each console thread makes its own.
#[derive(Debug)]
pub struct SyntaxChecker {
    lua: Lua,
}

impl SyntaxChecker {
    /// Creates the private state (no standard library: nothing can run).
    pub fn new() -> anyhow::Result<Self> {
        let lua = Lua::new_with(StdLib::NONE, LuaOptions::new())
            .map_err(|e| anyhow::anyhow!("creating the console's syntax-check Lua state: {e}"))?;
        Ok(Self { lua })
    }

    /// Classifies `chunk`. Blank input is [`ChunkStatus::Complete`].
    pub fn check(&self, chunk: &str) -> ChunkStatus {
        let as_expression = format!("return {chunk}");
        let expr = self.compile(&as_expression);
        if expr.is_ok() {
            return ChunkStatus::Complete;
        }
        let stmt = self.compile(chunk);
        match (stmt, expr) {
            (Ok(()), _) => ChunkStatus::Complete,
            (Err(Problem::Incomplete(m)), _) => ChunkStatus::Incomplete(m),
            // `1 +` is not a statement at all, but as an expression it only
            // lacks its end: continue, and the next line may finish it.
            (Err(Problem::Invalid(_)), Err(Problem::Incomplete(m))) => ChunkStatus::Incomplete(m),
            (Err(Problem::Invalid(m)), _) => ChunkStatus::Invalid(m),
        }
    }

    /// Compiles `source` as text (never bytecode) without running it.
    fn compile(&self, source: &str) -> Result<(), Problem> {
        match self.lua.load(source).set_name(CHUNK_NAME).set_mode(ChunkMode::Text).into_function() {
            Ok(_) => Ok(()),
            // A quoted string cannot run on to the next line unless the line
            // ends with `\` (an escaped newline) or `\z`: anything else is
            // an error whatever follows, though Lua says "near <eof>".
            Err(mlua::Error::SyntaxError { message, incomplete_input: true })
                if message.contains("unfinished string") && !continues_string(source) =>
            {
                Err(Problem::Invalid(message))
            }
            Err(mlua::Error::SyntaxError { message, incomplete_input: true }) => {
                Err(Problem::Incomplete(message))
            }
            Err(mlua::Error::SyntaxError { message, incomplete_input: false }) => {
                Err(Problem::Invalid(message))
            }
            // Not a syntax error (out of memory, say): let the backend, which
            // compiles the chunk again, report it.
            Err(e) => Err(Problem::Invalid(e.to_string())),
        }
    }
}

/// Whether the last line of `chunk` ends in an escape that lets a quoted
/// string go on to the next line.
fn continues_string(chunk: &str) -> bool {
    chunk.ends_with('\\') || chunk.trim_end().ends_with("\\z")
}

/// Why one compilation failed.
enum Problem {
    Incomplete(String),
    Invalid(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(chunk: &str) -> ChunkStatus {
        SyntaxChecker::new().expect("checker").check(chunk)
    }

    #[test]
    fn complete_chunks() {
        for chunk in [
            "1 + 1",
            "x = 1",
            "print('hi')",
            "f",
            "function f()\n return 42\nend",
            "for i = 1, 2 do end",
            "local t = {1, 2,\n 3}",
            "return 1, 2",
            "-- only a comment",
            "",
            "   ",
            "x = [[long\nstring]]",
        ] {
            assert_eq!(status(chunk), ChunkStatus::Complete, "chunk {chunk:?}");
        }
    }

    #[test]
    fn incomplete_chunks() {
        for chunk in [
            "function f()",
            "x = ",
            "return 1 +",
            "1 +",
            "for i=1,2 do",
            "if x then",
            "while true do\n x = 1",
            "t = {1,",
            "f(",
            "x = [[never closed",
            "--[[ an open comment",
            "repeat",
            "local function g(a,",
            "s = 'a string that goes on\\",
            "s = \"skipping \\z  ",
        ] {
            assert!(
                matches!(status(chunk), ChunkStatus::Incomplete(_)),
                "chunk {chunk:?} should be incomplete, got {:?}",
                status(chunk)
            );
        }
    }

    #[test]
    fn invalid_chunks() {
        for chunk in [
            "x = )",
            "end",
            "x y",
            "1 + )",
            "'unfinished string",
            "s = \"abc",
            "1 + 'abc",
            "for = 1",
            "local 1",
        ] {
            assert!(
                matches!(status(chunk), ChunkStatus::Invalid(_)),
                "chunk {chunk:?} should be invalid, got {:?}",
                status(chunk)
            );
        }
    }

    #[test]
    fn messages_name_the_console_chunk() {
        match status("x = )") {
            ChunkStatus::Invalid(m) => {
                assert!(m.starts_with("console:1:"), "message {m:?}");
                assert!(m.contains("')'"), "message {m:?}");
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn checking_never_runs_the_chunk() {
        let checker = SyntaxChecker::new().expect("checker");
        // With no library there is nothing to call; a chunk that would assign a
        // global leaves the state untouched because it is only compiled.
        assert_eq!(checker.check("marker = 1"), ChunkStatus::Complete);
        let marker: mlua::Value = checker.lua.globals().get("marker").expect("read global");
        assert!(marker.is_nil(), "the chunk ran: marker = {marker:?}");
    }
}
