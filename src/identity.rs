//! Who we are on the network, once per client: our PID and CID (kept in
//! the data folder) and our certificate with its TLS context (made on first
//! use). Hub sessions (ADC's `INF ID/PD`, `nmdcs://` and `adcs://`
//! handshakes), the file list's `CID` and, next, the client-client
//! connections all take it from here: [`Me`] is built once by the
//! composition root and handed to the hub registry.
//!
//! What we announce (nick, description, slots, mode) is `hub::Identity`,
//! which follows the configuration; this module holds what must never change
//! between hubs or restarts.

use std::cell::RefCell;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::proto::adc::ident::{Cid, Pid};
use crate::tls::TlsContext;

/// The file in the data folder holding our PID (base32, one line).
pub const PID_FILE_NAME: &str = "pid";

struct Inner {
    data_dir: Option<PathBuf>,
    pid: Pid,
    tls: RefCell<Option<TlsContext>>,
}

/// Our keys; a cheap handle, on the worker thread.
#[derive(Clone)]
pub struct Me {
    inner: Rc<Inner>,
}

impl std::fmt::Debug for Me {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Me").field("cid", &self.cid().to_base32()).finish_non_exhaustive()
    }
}

impl Me {
    /// Our identity from `data_dir` (its PID file, made at the first start);
    /// without a data folder, or when the file can be neither read nor
    /// written, a PID for this run only (logged).
    pub fn load(data_dir: Option<&Path>) -> Me {
        let pid = match data_dir {
            Some(d) => load_or_create_pid(d).unwrap_or_else(|e| {
                log::error!(target: "identity", "{e}; using a PID for this run only");
                Pid::random()
            }),
            None => {
                log::warn!(target: "identity", "no data folder; using a PID for this run only");
                Pid::random()
            }
        };
        Me {
            inner: Rc::new(Inner {
                data_dir: data_dir.map(Path::to_path_buf),
                pid,
                tls: RefCell::new(None),
            }),
        }
    }

    /// The data folder it was loaded from.
    pub fn data_dir(&self) -> Option<&Path> {
        self.inner.data_dir.as_deref()
    }

    /// Our PID (secret: only ever sent to hubs in `INF PD`).
    pub fn pid(&self) -> Pid {
        self.inner.pid
    }

    /// Our CID (Tiger of the PID).
    pub fn cid(&self) -> Cid {
        self.inner.pid.cid()
    }

    /// Our TLS context: our certificate (made on first use, its CN our CID)
    /// and the trust-on-first-use store, both in the data folder.
    pub fn tls(&self) -> Result<TlsContext, String> {
        if let Some(t) = self.inner.tls.borrow().as_ref() {
            return Ok(t.clone());
        }
        let dir = self.data_dir().ok_or("no data folder for our TLS certificate")?;
        let cid = self.cid().to_base32();
        let ctx = TlsContext::open(dir, Some(&cid)).map_err(|e| e.to_string())?;
        *self.inner.tls.borrow_mut() = Some(ctx.clone());
        Ok(ctx)
    }
}

/// Why our PID file could be neither read nor written.
#[derive(Debug, thiserror::Error)]
pub enum PidError {
    /// Reading the file failed (other than by its absence).
    #[error("reading our PID from {}: {source}", path.display())]
    Read {
        /// The PID file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Writing a new one failed.
    #[error("writing our PID to {}: {source}", path.display())]
    Write {
        /// The PID file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

/// Reads our PID from `dir/pid`, or makes one and writes it there
/// atomically (write, fsync, rename).
pub fn load_or_create_pid(dir: &Path) -> Result<Pid, PidError> {
    let path = dir.join(PID_FILE_NAME);
    match std::fs::read_to_string(&path) {
        Ok(text) => match text.trim().parse::<Pid>() {
            Ok(pid) => return Ok(pid),
            Err(e) => {
                log::warn!(target: "identity", "{}: {e}; making a new PID", path.display());
            }
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => return Err(PidError::Read { path, source }),
    }
    let pid = Pid::random();
    let write = || -> io::Result<()> {
        use std::io::Write as _;
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join(format!("{PID_FILE_NAME}.tmp"));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(format!("{}\n", pid.to_base32()).as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    };
    write().map_err(|source| PidError::Write { path, source })?;
    Ok(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create_pid(dir.path()).unwrap();
        let b = load_or_create_pid(dir.path()).unwrap();
        assert_eq!(a, b);
        std::fs::write(dir.path().join(PID_FILE_NAME), "garbage").unwrap();
        let c = load_or_create_pid(dir.path()).unwrap();
        assert_ne!(a, c);
        assert_eq!(load_or_create_pid(dir.path()).unwrap(), c);
        assert_eq!(Me::load(Some(dir.path())).cid(), c.cid(), "one identity per data folder");
        assert_ne!(Me::load(None).pid(), c, "no folder: a PID for this run only");
    }
}
