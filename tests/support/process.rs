//! Starting and stopping the harness's processes, always by pid.
//!
//! [`Child`] is a process this harness spawned and waits for (uhub, the NMDC hub);
//! [`Daemon`] is one that detached itself (`eiskaltdcpp-daemon -d`) and is known by the pid
//! it wrote, checked against its command line before any signal so that a recycled pid is
//! never hit. `stop` sends SIGTERM, then SIGKILL after a grace period; dropping one sends
//! SIGKILL at once (a test's processes are thrown away with their temporary directories).
//!
//! This module must not signal any process but the one it was given, and never by name.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// A log file opened for a child's stdout and stderr (both go to the same file).
pub fn log_stdio(log: &Path) -> Result<(Stdio, Stdio)> {
    let out = File::options()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening log {}", log.display()))?;
    let err = out.try_clone().with_context(|| format!("duplicating log {}", log.display()))?;
    Ok((Stdio::from(out), Stdio::from(err)))
}

/// Sends `sig` to `pid`; false when there is no such process.
fn signal(pid: i32, sig: libc::c_int) -> bool {
    // SAFETY: kill(2) takes plain integers; a positive pid addresses exactly one process.
    pid > 0 && unsafe { libc::kill(pid, sig) } == 0
}

/// A process spawned by the harness, stopped (SIGTERM, then SIGKILL) and reaped on drop.
#[derive(Debug)]
pub struct Child {
    name: String,
    child: std::process::Child,
    log: PathBuf,
    grace: Duration,
}

impl Child {
    /// Spawns `cmd` (stdin from /dev/null, stdout and stderr appended to `log`).
    ///
    /// `grace` is how long [`Child::stop`] waits after SIGTERM before SIGKILL.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path, grace: Duration) -> Result<Child> {
        let (out, err) = log_stdio(log)?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = cmd.spawn().with_context(|| format!("starting {name}: {cmd:?}"))?;
        Ok(Child { name: name.to_string(), child, log: log.to_path_buf(), grace })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `Ok(())` while the process runs; an error with its exit status and log tail after.
    pub fn check_running(&mut self) -> Result<()> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => anyhow::bail!(
                "{} (pid {}) exited: {status}\n{}",
                self.name,
                self.child.id(),
                super::log_excerpt(&self.log)
            ),
            Err(e) => Err(e).with_context(|| format!("checking on {}", self.name)),
        }
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM, wait up to the grace period, then SIGKILL; always reaps the process.
    pub fn stop(&mut self) -> Result<()> {
        if !self.is_running() {
            return Ok(());
        }
        let pid = i32::try_from(self.child.id()).context("pid out of range")?;
        signal(pid, libc::SIGTERM);
        let deadline = Instant::now() + self.grace;
        while Instant::now() < deadline {
            if !self.is_running() {
                return Ok(());
            }
            thread::sleep(Duration::from_millis(20));
        }
        // Still there after the grace period: SIGKILL cannot be ignored.
        let _ = self.child.kill();
        self.child.wait().with_context(|| format!("reaping {} (pid {pid})", self.name))?;
        Ok(())
    }

    /// SIGKILL at once and reap: for throw-away processes whose shutdown nobody watches.
    pub fn kill(&mut self) -> Result<()> {
        if self.is_running() {
            let _ = self.child.kill();
            self.child.wait().with_context(|| format!("reaping {}", self.name))?;
        }
        Ok(())
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if let Err(e) = self.kill() {
            eprintln!("warning: killing {}: {e:#}", self.name);
        }
    }
}

/// Pids of live processes whose command line contains `marker` (a path unique to one
/// component), for a detached process whose pid file never appeared.
pub fn pids_with_marker(marker: &str) -> Vec<i32> {
    let Ok(entries) = fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| Daemon::new("", *pid, marker).is_running())
        .collect()
}

/// A process that detached itself and is known by pid only.
///
/// `marker` is a string its command line must contain (its private config directory);
/// it is checked before every signal, so a pid reused by an unrelated process is left alone.
#[derive(Debug)]
pub struct Daemon {
    name: String,
    pid: i32,
    marker: String,
}

impl Daemon {
    /// Wraps the detached process `pid`, identified by `marker` in its command line.
    pub fn new(name: &str, pid: i32, marker: &str) -> Daemon {
        Daemon { name: name.to_string(), pid, marker: marker.to_string() }
    }

    /// The process id.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// True while our process (not a zombie, command line matching) is alive.
    pub fn is_running(&self) -> bool {
        let Ok(cmdline) = fs::read(format!("/proc/{}/cmdline", self.pid)) else {
            return false;
        };
        // A zombie has an empty command line; it is dead for our purposes.
        if cmdline.is_empty() {
            return false;
        }
        let cmdline = String::from_utf8_lossy(&cmdline);
        if !cmdline.contains(&self.marker) {
            return false;
        }
        match fs::read_to_string(format!("/proc/{}/stat", self.pid)) {
            // The state letter follows the parenthesised command name.
            Ok(stat) => !stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z')),
            Err(_) => false,
        }
    }

    /// Waits up to `timeout` for the process to exit by itself; true when it did.
    pub fn wait_exit(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if !self.is_running() {
                return true;
            }
            thread::sleep(Duration::from_millis(20));
        }
        !self.is_running()
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL and wait up to 5 s more (a zero `grace`
    /// sends SIGKILL only).
    pub fn stop(&self, grace: Duration) -> Result<()> {
        if !self.is_running() {
            return Ok(());
        }
        if !grace.is_zero() {
            signal(self.pid, libc::SIGTERM);
            if self.wait_exit(grace) {
                return Ok(());
            }
        }
        if self.is_running() {
            signal(self.pid, libc::SIGKILL);
        }
        if self.wait_exit(Duration::from_secs(5)) {
            Ok(())
        } else {
            anyhow::bail!("{} (pid {}) survived SIGKILL for 5 s", self.name, self.pid)
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // Dropped with its test: nothing watches its shutdown, SIGKILL saves a second.
        if let Err(e) = self.stop(Duration::ZERO) {
            eprintln!("warning: killing {}: {e:#}", self.name);
        }
    }
}
