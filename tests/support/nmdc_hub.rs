//! A real NMDC hub for tests: the Verlihub hub core (`NMDCHubServer`, native C++) from the
//! PyPI wheel `verlihub-py`, run by `tests/support/vh_hub.py` in the venv that
//! `tests/setup-peers.sh` makes.
//!
//! The core delegates all authentication to the script: nicks listed in
//! [`NmdcHubOptions::users`] are registered (the hub sends `$GetPass`; a wrong `$MyPass`
//! gets `$BadPass` and the connection is closed), any other nick is an unregistered guest
//! (or refused with `$ValidateDenide` when guests are not allowed). Operators cannot be
//! shown: the core's `$OpList` holds only its bots (`Hub-Security`, `OpChat`), and it sends
//! `$LogedIn` to every user, guests included. Readiness means a new connection is greeted with `$Lock`: a listening port
//! alone proves nothing with this core (see the fd workaround in `vh_hub.py`).
//!
//! This module must not bind anything but 127.0.0.1 nor leave the hub running after drop.

use std::fs;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Map, Value};

use super::ports::{free_port, Port};
use super::process::Child;
use super::{component_dir, log_excerpt, release_dir, venv_python, wait_until};

/// The hub script, found in the checkout at run time.
const VH_HUB: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/vh_hub.py");

/// How a test wants its NMDC hub configured.
#[derive(Debug, Clone)]
pub struct NmdcHubOptions {
    /// Registered accounts (nick, password), user class 1.
    pub users: Vec<(String, String)>,
    /// Admit unregistered nicks as guests (default true).
    pub allow_guests: bool,
    /// The name sent in `$HubName`.
    pub hub_name: String,
    /// The hub topic (empty: none).
    pub topic: String,
    /// Extra keys of the core's `[hub]` configuration, passed through `OnGetConfig`:
    /// `hub_desc`, `hub_host`, `hub_owner`, `hub_encoding`, `hub_security`,
    /// `opchat_name`, `max_users`, `max_conn_per_ip` (e.g. `("max_users", "10")`).
    pub core_config: Vec<(String, String)>,
}

impl Default for NmdcHubOptions {
    fn default() -> Self {
        NmdcHubOptions {
            users: Vec::new(),
            allow_guests: true,
            hub_name: "dclua-test-nmdc".to_string(),
            topic: String::new(),
            core_config: Vec::new(),
        }
    }
}

/// A running (or stopped, restartable) NMDC hub; killed when dropped.
#[derive(Debug)]
pub struct NmdcHub {
    port: Port,
    child: Option<Child>,
    config: PathBuf,
    log: PathBuf,
    // Dropped last: the directory outlives the process.
    dir: Option<tempfile::TempDir>,
}

impl NmdcHub {
    /// Writes the configuration, starts the hub and waits (≤ 10 s) until a new connection
    /// is greeted with `$Lock`.
    pub fn start(opts: NmdcHubOptions) -> Result<NmdcHub> {
        venv_python()?;
        if !Path::new(VH_HUB).is_file() {
            bail!("hub script {VH_HUB} is missing from the checkout");
        }
        let dir = component_dir("nmdc-hub")?;
        let port = free_port()?;
        let config = dir.path().join("hub.json");
        let log = dir.path().join("hub.log");
        let users = accounts(&opts)?;
        let cfg = json!({
            "port": port.get(),
            "config_dir": dir.path().join("core"),
            "hub_name": opts.hub_name,
            "topic": opts.topic,
            "users": users,
            "allow_guests": opts.allow_guests,
            "core": opts
                .core_config
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect::<Map<String, Value>>(),
        });
        let text = serde_json::to_string_pretty(&cfg).context("encoding hub.json")?;
        fs::write(&config, text).with_context(|| format!("writing {}", config.display()))?;
        let mut hub = NmdcHub { port, child: None, config, log, dir: Some(dir) };
        hub.spawn()?;
        Ok(hub)
    }

    fn spawn(&mut self) -> Result<()> {
        let mut cmd = Command::new(venv_python()?);
        cmd.arg(VH_HUB).arg(&self.config).env("PYTHONUNBUFFERED", "1");
        let mut child =
            Child::spawn("NMDC hub (vh_hub.py)", cmd, &self.log, Duration::from_secs(3))?;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port.get()));
        let waited = wait_until(
            &format!("the NMDC hub to greet a new connection on {addr} with $Lock"),
            Duration::from_secs(10),
            Duration::from_millis(50),
            || {
                child.check_running()?;
                greets(addr).map(|ok| ok.then_some(()))
            },
        );
        if let Err(e) = waited {
            let _ = child.stop();
            bail!("{e:#}\n{}", log_excerpt(&self.log));
        }
        self.child = Some(child);
        Ok(())
    }

    /// `dchub://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("dchub://127.0.0.1:{}", self.port.get())
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port.get()
    }

    /// The hub's directory (`hub.json`, `hub.log`, the core's own state in `core/`).
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().map(|d| d.path()).unwrap_or_else(|| Path::new("/nonexistent"))
    }

    /// The pid while running.
    pub fn pid(&mut self) -> Option<u32> {
        let child = self.child.as_mut()?;
        child.is_running().then(|| child.pid())
    }

    /// The hub's log so far (the core's lines and the script's).
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops the hub (SIGTERM, SIGKILL after 3 s); [`NmdcHub::restart`] starts it again.
    /// The port stays reserved for this hub.
    pub fn stop(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.stop()?;
        }
        Ok(())
    }

    /// Stops the hub if it runs and starts it again on the same port.
    pub fn restart(&mut self) -> Result<()> {
        self.stop()?;
        self.spawn()
    }
}

impl Drop for NmdcHub {
    fn drop(&mut self) {
        // Killed at once (see `process::Child`'s drop), before its directory goes.
        drop(self.child.take());
        if let Some(dir) = self.dir.take() {
            release_dir(dir, "NMDC hub");
        }
    }
}

/// The `users` object of `hub.json`: nick -> {password, class}.
fn accounts(opts: &NmdcHubOptions) -> Result<Map<String, Value>> {
    let mut users = Map::new();
    for (nick, pass) in &opts.users {
        // NMDC separators cannot appear in a nick or a $MyPass argument.
        if nick.is_empty() || nick.contains(['$', '|', ' ']) || pass.contains(['$', '|']) {
            bail!("NMDC account {nick:?}: nick or password contains '$', '|' or a space");
        }
        users.insert(nick.clone(), json!({"password": pass, "class": 1}));
    }
    Ok(users)
}

/// True when a fresh connection to `addr` receives `$Lock ` within 2 s.
fn greets(addr: SocketAddr) -> Result<bool> {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(300)) else {
        return Ok(false);
    };
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    while Instant::now() < deadline && got.len() < 4096 {
        stream.set_read_timeout(Some(Duration::from_millis(200)))?;
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                if got.len() >= 6 {
                    return Ok(got.starts_with(b"$Lock "));
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    Ok(false)
}
