//! Free TCP/UDP ports on 127.0.0.1 for the servers a test starts, below the ephemeral range.
//!
//! A port is reserved by an exclusive `flock` on `$TMPDIR/dclua-test-ports/<port>.lock`,
//! held for as long as the [`Port`] lives. `flock` locks belong to open file descriptions,
//! so the reservation excludes other threads of this process (each reservation opens the
//! file anew) and other processes (parallel test binaries) alike, and the kernel drops it
//! when a process dies, so a crashed run leaves nothing stale. A candidate is also
//! bind-tested (TCP and UDP on 127.0.0.1) to skip ports other software is using.
//!
//! Ports stay below 32768: the ephemeral range (`ip_local_port_range`, typically
//! 32768-60999) is where outgoing connections of other programs take their source ports,
//! and a hub started there can fail with "Address already in use".
//!
//! This module must not bind anything beyond the instant of the test, nor touch any address
//! but 127.0.0.1.

use std::fs::{self, File, OpenOptions};
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use anyhow::{bail, Context, Result};

/// Lowest port handed out.
const FIRST: u16 = 20000;
/// One past the highest port handed out (the start of the usual ephemeral range).
const END: u16 = 32768;

/// A reserved port; the reservation ends when this is dropped.
#[derive(Debug)]
pub struct Port {
    port: u16,
    // Holds the flock; closing the file releases it.
    _lock: File,
}

impl Port {
    /// The port number.
    pub fn get(&self) -> u16 {
        self.port
    }
}

/// Where the lock files live; shared by every test process of this user and machine.
fn lock_dir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join("dclua-test-ports");
    if !dir.is_dir() {
        fs::create_dir_all(&dir)
            .with_context(|| format!("creating the port lock directory {}", dir.display()))?;
        // Shared by every user running tests here, like /tmp itself (sticky, world-writable).
        // Failing to widen it only matters for other users, so the error is not fatal.
        let _ = fs::set_permissions(&dir, fs::Permissions::from_mode(0o1777));
    }
    Ok(dir)
}

/// Scanning starts at a random offset per process and moves on per call, so parallel
/// binaries and threads rarely contend for the same candidates.
fn next_candidate() -> u16 {
    static START: OnceLock<u32> = OnceLock::new();
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let span = u32::from(END - FIRST);
    let start = *START.get_or_init(|| rand::random_range(0..span));
    let n = COUNTER.fetch_add(1, Ordering::Relaxed) % span;
    // Below `span`, which fits in u16.
    FIRST + ((start + n) % span) as u16
}

/// Tries to lock `port`'s file without blocking; `None` when someone else holds it.
fn try_lock(dir: &std::path::Path, port: u16) -> Result<Option<File>> {
    let path = dir.join(format!("{port}.lock"));
    let file = match OpenOptions::new().create(true).truncate(false).write(true).open(&path) {
        Ok(f) => f,
        // Another user's lock file we may not open: that port is theirs.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
    };
    // SAFETY: flock on a file descriptor we own; no memory is involved.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        Ok(Some(file))
    } else {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
            Ok(None)
        } else {
            Err(err).with_context(|| format!("flock {}", path.display()))
        }
    }
}

/// True when nothing uses `port` on 127.0.0.1, for TCP nor UDP.
fn bindable(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
        && UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

/// Reserves one free port in 20000..32768.
pub fn free_port() -> Result<Port> {
    let dir = lock_dir()?;
    let span = usize::from(END - FIRST);
    for _ in 0..span {
        let port = next_candidate();
        let Some(lock) = try_lock(&dir, port)? else { continue };
        if bindable(port) {
            return Ok(Port { port, _lock: lock });
        }
    }
    bail!("no free port in {FIRST}..{END} on 127.0.0.1 (all locked or in use)")
}
