//! The Lua console against the fake Lua host of the tests, to try the console
//! by hand: `cargo run --example console_demo [HISTORY_FILE]`.
//!
//! On a terminal it runs the interactive console (Tab completes `dc.`, `hub:`;
//! `dc.sleep(5)` waits and Ctrl-C interrupts it; `dc.later(2, "text")` prints
//! from another thread while you type; Ctrl-D quits). With piped input it runs
//! the piped console: `printf '1+1\n' | cargo run --example console_demo`.
//!
//! Driving it from tmux: type text with `send-keys -l`. Without `-l`, tmux
//! reads each argument as a key name first (case ignored), so
//! `send-keys end` presses the End key and the `end` of a chunk never
//! arrives.

#[path = "../tests/console_fake/mod.rs"]
mod console_fake;

use std::io::IsTerminal as _;
use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let history = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("dclua-console-demo").join("history"));
    let backend = console_fake::FakeBackend::start();
    if std::io::stdin().is_terminal() {
        dclua::console::run_interactive(backend, history)
    } else {
        dclua::console::run_piped(backend, std::io::stdin().lock(), std::io::stdout().lock())
    }
}
