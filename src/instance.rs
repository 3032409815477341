//! One dclua per data folder: the lock that keeps a second process off a
//! data folder already in use.
//!
//! The data folder holds our identity (the PID, hence the CID every hub sees),
//! the hash store and the download queue. Two processes on one folder would
//! log in with the same CID ("CID taken" on ADC hubs, retried forever) and
//! write the same databases. So the client takes an exclusive `flock` on
//! `<data>/lock` at start and holds it for its whole life; the file also
//! names the holder's process id, so that the refusal can say who holds it.
//! The kernel drops the lock when the process ends, however it ends (a
//! `kill -9` leaves no stale lock behind).
//!
//! Owns: the lock file. Must not: read or write anything else in the folder.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// The lock file's name in the data folder.
pub const LOCK_FILE_NAME: &str = "lock";

/// Why the data folder could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error(
        "the data folder {} is in use by another dclua{}; give this one a folder of its own with \
         --data-dir DIR (or `data_dir` in its configuration)",
        dir.display(),
        holder.map(|p| format!(" (process {p})")).unwrap_or_default()
    )]
    Busy {
        /// The data folder.
        dir: PathBuf,
        /// The holder's process id, when the file names one.
        holder: Option<u32>,
    },
    /// The folder or the lock file could not be made or locked.
    #[error("locking the data folder {}: {source}", dir.display())]
    Io {
        /// The data folder.
        dir: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
}

/// The held lock; dropping it (or ending the process) releases the folder.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
    path: PathBuf,
}

impl DataDirLock {
    /// Takes the data folder `dir` (made if missing) for this process, or
    /// says who holds it.
    pub fn acquire(dir: &Path) -> Result<DataDirLock, LockError> {
        let io = |source| LockError::Io { dir: dir.to_path_buf(), source };
        fs::create_dir_all(dir).map_err(io)?;
        let path = dir.join(LOCK_FILE_NAME);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        // SAFETY: flock on a file descriptor we own; no memory is involved.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(LockError::Busy {
                    dir: dir.to_path_buf(),
                    holder: text.trim().parse().ok(),
                });
            }
            return Err(io(err));
        }
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        Ok(DataDirLock { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_folder_is_refused_until_the_first_goes() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let first = DataDirLock::acquire(&data).unwrap();
        // flock locks belong to the open file description: a second open in
        // the same process conflicts just as another process would.
        let err = DataDirLock::acquire(&data).unwrap_err();
        match &err {
            LockError::Busy { holder, .. } => assert_eq!(*holder, Some(std::process::id())),
            other => panic!("expected Busy, got {other:?}"),
        }
        assert!(err.to_string().contains("--data-dir"), "{err}");
        drop(first);
        let again = DataDirLock::acquire(&data).unwrap();
        assert_eq!(
            fs::read_to_string(again.path()).unwrap().trim(),
            std::process::id().to_string()
        );
    }
}
