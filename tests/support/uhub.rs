//! A real ADC hub for tests: uhub 0.4.1 (Debian package `uhub`) on 127.0.0.1.
//!
//! Each [`Uhub`] writes its own configuration into a temporary directory and runs
//! `uhub -c uhub.conf -l uhub.log` in the foreground as a child process.
//! Registered users go through uhub's `mod_auth_simple` plugin: `users.conf` holds one
//! `user NICK PASSWORD` (or `op NICK PASSWORD`) line per account. TLS (ADCS) uses
//! `tls_enable`, `tls_certificate` and `tls_private_key`; without `tls_require` the same
//! port also accepts plain ADC.
//!
//! uhub's own limits to know about: nicks shorter than 3 characters are refused ("Nickname
//! too short"), and `flood_ctl_interval=0` is a parse error (flood control is switched off
//! with the `flood_ctl_*=0` keys alone).
//!
//! This module must not bind anything but 127.0.0.1 nor leave the hub running after drop.

use std::fmt::Write as _;
use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::ports::{free_port, Port};
use super::process::Child;
use super::{component_dir, find_binary, log_excerpt, release_dir, wait_until, SETUP_HINT};

/// The plugin holding registered accounts (Debian's path).
const AUTH_PLUGIN: &str = "/usr/lib/uhub/mod_auth_simple.so";
/// The plugin logging logins, refusals and logouts.
const LOG_PLUGIN: &str = "/usr/lib/uhub/mod_logging.so";

/// How a test wants its uhub configured.
#[derive(Debug, Clone)]
pub struct UhubOptions {
    /// Registered accounts (nick, password) with user rights.
    pub users: Vec<(String, String)>,
    /// Registered accounts (nick, password) with operator rights.
    pub operators: Vec<(String, String)>,
    /// TLS certificate and private key (PEM files); see [`super::TlsCert::generate`].
    pub tls: Option<(PathBuf, PathBuf)>,
    /// With TLS: refuse plain ADC connections (`tls_require=1`).
    pub tls_required: bool,
    /// Refuse guests: only registered nicks may log in.
    pub registered_only: bool,
    /// The hub name sent in its `IINF`.
    pub hub_name: String,
    /// Extra `key=value` lines appended to `uhub.conf` (they win over the defaults above).
    pub extra_config: Vec<(String, String)>,
}

impl Default for UhubOptions {
    fn default() -> Self {
        UhubOptions {
            users: Vec::new(),
            operators: Vec::new(),
            tls: None,
            tls_required: false,
            registered_only: false,
            hub_name: "dclua-test-adc".to_string(),
            extra_config: Vec::new(),
        }
    }
}

/// A running (or stopped, restartable) uhub; killed when dropped.
#[derive(Debug)]
pub struct Uhub {
    opts: UhubOptions,
    port: Port,
    child: Option<Child>,
    conf: PathBuf,
    log: PathBuf,
    // Dropped last: the directory outlives the process.
    dir: Option<tempfile::TempDir>,
}

impl Uhub {
    /// Writes the configuration, starts uhub and waits (≤ 5 s) until it accepts connections.
    pub fn start(opts: UhubOptions) -> Result<Uhub> {
        find_binary("uhub")?;
        for plugin in [AUTH_PLUGIN, LOG_PLUGIN] {
            if !Path::new(plugin).is_file() {
                bail!("uhub plugin {plugin} is missing: {SETUP_HINT}");
            }
        }
        if let Some((cert, key)) = &opts.tls {
            for f in [cert, key] {
                if !f.is_file() {
                    bail!("uhub TLS file {} does not exist", f.display());
                }
            }
        }
        let dir = component_dir("uhub")?;
        let port = free_port()?;
        let conf = dir.path().join("uhub.conf");
        let log = dir.path().join("uhub.log");
        write_config(dir.path(), port.get(), &opts)?;
        check_config(&conf)?;
        let mut hub = Uhub { opts, port, child: None, conf, log, dir: Some(dir) };
        hub.spawn()?;
        Ok(hub)
    }

    fn spawn(&mut self) -> Result<()> {
        let mut cmd = Command::new(find_binary("uhub")?);
        // -v: log logins, logouts and refusals, which is what failing tests need to see.
        cmd.arg("-c").arg(&self.conf).arg("-l").arg(&self.log).arg("-v");
        let out = self.dir_path().join("uhub.out");
        let mut child = Child::spawn("uhub", cmd, &out, Duration::from_secs(3))?;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port.get()));
        let waited = wait_until(
            &format!("uhub to accept connections on {addr}"),
            Duration::from_secs(5),
            Duration::from_millis(20),
            || {
                child.check_running()?;
                Ok(TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok().map(|_| ()))
            },
        );
        if let Err(e) = waited {
            let _ = child.stop();
            bail!("{e:#}\n{}\n{}", log_excerpt(&self.log), log_excerpt(&out));
        }
        self.child = Some(child);
        Ok(())
    }

    fn dir_path(&self) -> &Path {
        self.dir.as_ref().map(|d| d.path()).unwrap_or_else(|| Path::new("/nonexistent"))
    }

    /// `adcs://127.0.0.1:PORT` with TLS, else `adc://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        let scheme = if self.opts.tls.is_some() { "adcs" } else { "adc" };
        format!("{scheme}://127.0.0.1:{}", self.port.get())
    }

    /// `adc://127.0.0.1:PORT` (plain ADC; refused when `tls_required`).
    pub fn plain_url(&self) -> String {
        format!("adc://127.0.0.1:{}", self.port.get())
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port.get()
    }

    /// The hub's directory (config, `users.conf`, `uhub.log`).
    pub fn dir(&self) -> &Path {
        self.dir_path()
    }

    /// The pid while running.
    pub fn pid(&mut self) -> Option<u32> {
        let child = self.child.as_mut()?;
        child.is_running().then(|| child.pid())
    }

    /// The hub's log so far: uhub's own log, then the login log of `mod_logging` (one
    /// line per login, refusal and logout, e.g. `LoginOK ... "nick" (user)` or
    /// `LoginError ... "nick" (msg_auth_invalid_password)`).
    pub fn log(&self) -> String {
        let main = fs::read_to_string(&self.log).unwrap_or_default();
        let logins = fs::read_to_string(self.dir_path().join("users.log")).unwrap_or_default();
        format!("{main}{logins}")
    }

    /// Stops the hub (SIGTERM, SIGKILL after 3 s); it can be started again with
    /// [`Uhub::restart`]. The port stays reserved for this hub.
    pub fn stop(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.stop()?;
        }
        Ok(())
    }

    /// Stops the hub if it runs and starts it again on the same port with the same
    /// configuration.
    pub fn restart(&mut self) -> Result<()> {
        self.stop()?;
        self.spawn()
    }
}

impl Drop for Uhub {
    fn drop(&mut self) {
        // Killed at once (see `process::Child`'s drop), before its directory goes.
        drop(self.child.take());
        if let Some(dir) = self.dir.take() {
            release_dir(dir, "uhub");
        }
    }
}

/// Checks that a nick or password can go into `users.conf` (whitespace-separated tokens).
fn check_token(what: &str, s: &str) -> Result<()> {
    if s.is_empty() || s.chars().any(|c| c.is_whitespace() || c == '"' || c == '#') {
        bail!("uhub {what} {s:?} must be non-empty without whitespace, quotes or '#'");
    }
    Ok(())
}

fn write_config(dir: &Path, port: u16, opts: &UhubOptions) -> Result<()> {
    let users = dir.join("users.conf");
    let acl = dir.join("acl.conf");
    let plugins = dir.join("plugins.conf");
    let mut accounts = String::from("# mod_auth_simple accounts: CREDENTIAL NICK PASSWORD\n");
    for (cred, list) in [("user", &opts.users), ("op", &opts.operators)] {
        for (nick, pass) in list {
            check_token("nick", nick)?;
            check_token("password", pass)?;
            writeln!(accounts, "{cred} {nick} {pass}").expect("writing to a String");
        }
    }
    fs::write(&users, accounts).with_context(|| format!("writing {}", users.display()))?;
    // The core's ACL file (bans, IP rules): nothing to say, but it must exist.
    fs::write(&acl, "# no bans\n").with_context(|| format!("writing {}", acl.display()))?;
    // Plugins run in this order: accounts first, then the login/logout log.
    let plugin_line = format!(
        "plugin {AUTH_PLUGIN} \"file={}\"\nplugin {LOG_PLUGIN} \"file={}\"\n",
        users.display(),
        dir.join("users.log").display()
    );
    fs::write(&plugins, plugin_line).with_context(|| format!("writing {}", plugins.display()))?;

    let name = opts.hub_name.replace(['\n', '"'], " ");
    let mut c = String::new();
    let mut kv = |k: &str, v: &str| writeln!(c, "{k}={v}").expect("writing to a String");
    kv("hub_enabled", "1");
    kv("server_port", &port.to_string());
    kv("server_bind_addr", "127.0.0.1");
    kv("server_listen_backlog", "128");
    kv("max_users", "500");
    kv("hub_name", &format!("\"{name}\""));
    kv("hub_description", "\"uhub test hub for dclua (loopback only)\"");
    kv("show_banner", "1");
    kv("show_banner_sys_info", "0");
    kv("registered_users_only", if opts.registered_only { "1" } else { "0" });
    kv("register_self", "0");
    kv("chat_is_privileged", "0");
    kv("obsolete_clients", "1");
    kv("file_acl", &acl.display().to_string());
    kv("file_plugins", &plugins.display().to_string());
    for k in ["limit_max_hubs_user", "limit_max_hubs_reg", "limit_max_hubs_op", "limit_max_hubs"] {
        kv(k, "0");
    }
    for k in ["limit_min_share", "limit_max_share", "limit_min_slots", "limit_max_slots"] {
        kv(k, "0");
    }
    // Flood control off (flood_ctl_interval=0 would be a parse error in 0.4.1).
    for k in ["flood_ctl_chat", "flood_ctl_connect", "flood_ctl_search", "flood_ctl_update"] {
        kv(k, "0");
    }
    kv("flood_ctl_extras", "0");
    match &opts.tls {
        Some((cert, key)) => {
            kv("tls_enable", "1");
            kv("tls_require", if opts.tls_required { "1" } else { "0" });
            kv("tls_certificate", &cert.display().to_string());
            kv("tls_private_key", &key.display().to_string());
        }
        None => kv("tls_enable", "0"),
    }
    for (k, v) in &opts.extra_config {
        kv(k, v);
    }
    let conf = dir.join("uhub.conf");
    fs::write(&conf, c).with_context(|| format!("writing {}", conf.display()))
}

/// `uhub -C` parses the configuration and exits; a refusal is reported with its output.
fn check_config(conf: &Path) -> Result<()> {
    let out = Command::new(find_binary("uhub")?)
        .arg("-C")
        .arg("-c")
        .arg(conf)
        .output()
        .context("running uhub -C to check the configuration")?;
    if !out.status.success() {
        bail!(
            "uhub rejected {} ({}):\n{}{}",
            conf.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}
