//! Test harness: starts and stops real, independently written Direct Connect software on
//! 127.0.0.1 for dclua's integration tests.
//!
//! - [`Uhub`]: the ADC hub uhub 0.4.1 (Debian), optionally with TLS and registered users;
//! - [`NmdcHub`]: the Verlihub NMDC hub core from the PyPI wheel `verlihub-py`, driven by
//!   `tests/support/vh_hub.py` (database-free; guests and registered users);
//! - [`Eiskalt`]: an EiskaltDC++ client (`eiskaltdcpp-daemon`, Debian), driven over its
//!   JSON-RPC interface ([`jsonrpc`]).
//!
//! Every component runs in its own temporary directory, on ports from [`ports`] (below
//! 32768, distinct across threads and test binaries), is stopped by pid when dropped, and
//! every wait is bounded; errors name what failed and carry the tail of the component's log.
//! `tests/setup-peers.sh` installs the software; a missing piece gives an error saying so.
//!
//! This harness must not: talk to any address but 127.0.0.1, kill any process it did not
//! start (no `pkill`), or depend on anything outside the checkout and the installed
//! packages (no files of a manual run, no shared folders). Set `DCLUA_KEEP_PEERS=1` to keep
//! the temporary directories (configs, logs, protocol traces) after a test for inspection.

// Each test binary includes this module with `mod support;` and uses only part of it.
#![allow(dead_code)]

pub mod bin;
pub mod client;
pub mod eiskalt;
pub mod fake_hub;
pub mod jsonrpc;
pub mod nmdc_hub;
pub mod nmdc_raw;
pub mod ports;
pub mod process;
pub mod tls;
pub mod tmux;
pub mod uhub;

// Not every test binary uses every re-export.
#[allow(unused_imports)]
pub use eiskalt::{
    ChatLine, Eiskalt, EiskaltOptions, ListEntry, SearchResult, SearchType, SearchWait, UserInfo,
};
#[allow(unused_imports)]
pub use nmdc_hub::{NmdcHub, NmdcHubOptions};
#[allow(unused_imports)]
pub use tls::TlsCert;
#[allow(unused_imports)]
pub use uhub::{Uhub, UhubOptions};

use std::fs;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// The command that installs everything this harness starts; named in every "missing" error.
pub const SETUP_HINT: &str = "run tests/setup-peers.sh (as root: it installs the Debian \
     packages uhub, eiskaltdcpp-daemon, openssl and a Python venv with verlihub-py)";

/// Polls `probe` every `interval` until it returns `Ok(Some(value))` or `timeout` passes.
///
/// `Ok(None)` and `Err(_)` both mean "not yet"; the last error is quoted in the timeout
/// error so that a failing wait says what it last saw.
pub fn wait_until<T>(
    what: &str,
    timeout: Duration,
    interval: Duration,
    mut probe: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let start = Instant::now();
    let mut last_err: Option<anyhow::Error> = None;
    loop {
        match probe() {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last_err = Some(e),
        }
        if start.elapsed() >= timeout {
            match last_err {
                Some(e) => {
                    bail!("timed out after {timeout:?} waiting for {what} (last error: {e:#})")
                }
                None => bail!("timed out after {timeout:?} waiting for {what}"),
            }
        }
        thread::sleep(interval);
    }
}

/// The last `lines` lines of a text file, or a note saying why it could not be read.
pub fn tail(path: &Path, lines: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// Formats the tail of a log for an error message.
pub fn log_excerpt(path: &Path) -> String {
    format!("--- last lines of {} ---\n{}\n---", path.display(), tail(path, 30))
}

/// Finds an executable named `name` in `PATH`; the error says to run the setup script.
pub fn find_binary(name: &str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(name);
        if is_executable(&candidate) {
            return Ok(candidate);
        }
    }
    bail!("`{name}` not found in PATH: {SETUP_HINT}")
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

/// Where `tests/setup-peers.sh` puts its state: `$DCLUA_PEERS_DIR`, by default
/// `$HOME/.cache/dclua-peers`.
pub fn peers_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("DCLUA_PEERS_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .context("neither DCLUA_PEERS_DIR nor HOME is set: cannot find the peers venv")?;
    Ok(PathBuf::from(home).join(".cache").join("dclua-peers"))
}

/// The Python interpreter of the venv holding `verlihub-py`.
pub fn venv_python() -> Result<PathBuf> {
    let python = peers_dir()?.join("venv").join("bin").join("python");
    if !is_executable(&python) {
        bail!(
            "no Python venv with verlihub-py at {} (set DCLUA_PEERS_DIR as for the setup): \
             {SETUP_HINT}",
            python.display()
        );
    }
    Ok(python)
}

/// A fresh temporary directory for one component, named after it.
pub fn component_dir(what: &str) -> Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(&format!("dclua-{what}-"))
        .tempdir()
        .with_context(|| format!("creating a temporary directory for {what}"))
}

/// True when `DCLUA_KEEP_PEERS` asks to keep component directories after the test.
pub fn keep_dirs() -> bool {
    std::env::var_os("DCLUA_KEEP_PEERS").is_some_and(|v| !v.is_empty() && v != "0")
}

/// Drops a component's directory, or keeps it (and says where) under `DCLUA_KEEP_PEERS`.
pub fn release_dir(dir: tempfile::TempDir, what: &str) {
    if keep_dirs() {
        let path = dir.keep();
        eprintln!("DCLUA_KEEP_PEERS: kept {what} directory {}", path.display());
    }
}

/// The first Lua example of the guide's section `## <title>`
/// (`lua-api/README.md`): `guide_block(title, 0)`.
#[allow(dead_code)]
pub fn guide_example(title: &str) -> Result<String> {
    guide_block(title, 0)
}

/// The Lua example number `n` (from 0) of the guide's section `## <title>`.
/// Every Lua example of the guide runs in a test, and a test in
/// `tests/lua_api.rs` checks that each is named by a call of this function
/// (or of `guide_example`) with its title and number written out.
#[allow(dead_code)]
pub fn guide_block(title: &str, n: usize) -> Result<String> {
    let guide = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("lua-api/README.md"),
    )?;
    let marker = format!("\n## {title}\n");
    let section = guide.split(&marker).nth(1).with_context(|| format!("a {title} section"))?;
    // A section ends at the next section or part heading.
    let section = section.split("\n## ").next().unwrap_or_default();
    let section = section.split("\n# ").next().unwrap_or_default();
    section
        .split("```lua\n")
        .nth(n + 1)
        .and_then(|s| s.split("```").next())
        .map(str::to_string)
        .with_context(|| format!("a Lua example number {n} in the {title} section"))
}

/// `len` pseudo-random bytes (xorshift32), the same for the same seed: test
/// files whose blocks all differ, made fast.
pub fn noise(len: usize, seed: u32) -> Vec<u8> {
    let mut out = vec![0u8; len];
    let mut x = seed | 1;
    for b in out.iter_mut() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
    out
}
