//! [`TrustStore`]: keyprints of TLS peers recorded on first use (TOFU).
//!
//! When a hub address carries no keyprint, the first certificate seen for that
//! hub is recorded here; a later connection presenting another certificate is
//! reported (and refused by default) by the verifier in `verify.rs`. The store
//! is a small human-readable TOML file in the data folder, written atomically
//! (write a temporary file, fsync, rename, fsync the folder) on every change,
//! so a crash never leaves it half-written.
//!
//! This module owns the file and its in-memory copy; it takes no decision
//! about what a mismatch means.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::error::TlsError;
use super::keyprint::Keyprint;

/// The store's file name in the data folder.
pub const TRUST_FILE_NAME: &str = "trusted_keyprints.toml";

/// What the store remembers about one peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustEntry {
    /// The keyprint of the certificate the peer presented.
    pub keyprint: Keyprint,
    /// When it was recorded, in seconds since the Unix epoch.
    pub first_seen: u64,
}

/// The file's layout: `[peers."host:port"]` tables.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrustFile {
    #[serde(default)]
    peers: BTreeMap<String, TrustEntry>,
}

const HEADER: &str = "\
# dclua: keyprints of TLS hubs, recorded the first time each was seen (trust on
# first use). A hub presenting another certificate later is refused. To accept
# a hub's new certificate, delete its entry here, or connect once with the new
# keyprint in the address (adcs://host:port/?kp=SHA256/...).

";

/// Keyprints recorded on first use, keyed by peer (`host:port` for hubs).
#[derive(Debug)]
pub struct TrustStore {
    /// Where the store is persisted; `None` keeps it in memory only.
    path: Option<PathBuf>,
    peers: Mutex<BTreeMap<String, TrustEntry>>,
}

impl TrustStore {
    /// Opens the store at `path`; a missing file is an empty store. A file
    /// that cannot be read or parsed is an error (never silently emptied: that
    /// would forget every recorded certificate).
    pub fn open(path: &Path) -> Result<TrustStore, TlsError> {
        let peers = match fs::read_to_string(path) {
            Ok(text) => {
                toml::from_str::<TrustFile>(&text)
                    .map_err(|e| TlsError::TrustStore {
                        path: path.to_path_buf(),
                        reason: format!("it is not a valid keyprint store: {e}"),
                    })?
                    .peers
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => {
                return Err(TlsError::TrustStore {
                    path: path.to_path_buf(),
                    reason: format!("reading it failed: {e}"),
                })
            }
        };
        Ok(TrustStore { path: Some(path.to_path_buf()), peers: Mutex::new(peers) })
    }

    /// A store that lives in memory only (tests, or no data folder).
    pub fn in_memory() -> TrustStore {
        TrustStore { path: None, peers: Mutex::new(BTreeMap::new()) }
    }

    /// The file backing the store, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// What is recorded for `peer`.
    pub fn get(&self, peer: &str) -> Option<TrustEntry> {
        self.lock().get(peer).cloned()
    }

    /// Every record, sorted by peer.
    pub fn entries(&self) -> Vec<(String, TrustEntry)> {
        self.lock().iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// Records `keyprint` for `peer` (replacing any previous record) and
    /// persists the store. Recording the keyprint already on record changes
    /// nothing and writes nothing.
    ///
    /// The write (with its fsync) happens in the caller's thread: during a
    /// handshake that is the worker, which is acceptable because it happens
    /// only on a first contact or an accepted change, and the file is small.
    pub fn record(&self, peer: &str, keyprint: Keyprint) -> Result<(), TlsError> {
        let mut peers = self.lock();
        if peers.get(peer).is_some_and(|e| e.keyprint == keyprint) {
            return Ok(());
        }
        let first_seen =
            SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let previous = peers.insert(peer.to_string(), TrustEntry { keyprint, first_seen });
        if let Err(e) = self.save(&peers) {
            // Keep memory and disk in agreement.
            match previous {
                Some(p) => peers.insert(peer.to_string(), p),
                None => peers.remove(peer),
            };
            return Err(e);
        }
        Ok(())
    }

    /// Forgets `peer`; returns whether it was recorded.
    pub fn forget(&self, peer: &str) -> Result<bool, TlsError> {
        let mut peers = self.lock();
        let Some(previous) = peers.remove(peer) else { return Ok(false) };
        if let Err(e) = self.save(&peers) {
            peers.insert(peer.to_string(), previous);
            return Err(e);
        }
        Ok(true)
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, TrustEntry>> {
        // The map is always consistent between statements: a panic elsewhere
        // while holding the lock cannot leave it half-updated.
        self.peers.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn save(&self, peers: &BTreeMap<String, TrustEntry>) -> Result<(), TlsError> {
        let Some(path) = &self.path else { return Ok(()) };
        let file = TrustFile { peers: peers.clone() };
        let body = toml::to_string(&file).map_err(|e| TlsError::TrustStore {
            path: path.clone(),
            reason: format!("encoding it failed: {e}"),
        })?;
        write_atomic(path, format!("{HEADER}{body}").as_bytes(), None).map_err(|e| {
            TlsError::TrustStore { path: path.clone(), reason: format!("writing it failed: {e}") }
        })
    }
}

/// Writes `data` to `path` atomically: a temporary file in the same folder is
/// written, synced and renamed over `path`, then the folder is synced. With
/// `mode`, the file gets those Unix permissions from its creation on.
pub(crate) fn write_atomic(path: &Path, data: &[u8], mode: Option<u32>) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the path has no file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if let Some(mode) = mode {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let result = (|| {
        let mut file = opts.open(&tmp)?;
        file.write_all(data)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)?;
        // The rename itself must reach the disk too.
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_persist_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(TRUST_FILE_NAME);
        let store = TrustStore::open(&path).unwrap();
        assert!(store.get("h:1").is_none());
        let kp = Keyprint::of_der(b"one");
        store.record("h:1", kp).unwrap();
        store.record("[::1]:2", Keyprint::of_der(b"two")).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# dclua: keyprints"), "{text}");
        assert!(text.contains(&kp.to_string()), "{text}");

        let again = TrustStore::open(&path).unwrap();
        assert_eq!(again.get("h:1").map(|e| e.keyprint), Some(kp));
        assert_eq!(again.entries().len(), 2);
        assert!(again.forget("h:1").unwrap());
        assert!(!again.forget("h:1").unwrap());
        assert!(TrustStore::open(&path).unwrap().get("h:1").is_none());
        // No temporary file is left behind.
        let names: Vec<_> =
            fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from(TRUST_FILE_NAME)]);
    }

    #[test]
    fn a_damaged_file_is_an_error_not_an_empty_store() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(TRUST_FILE_NAME);
        for bad in ["[peers.\"h:1\"]\nkeyprint = \"SHA256/nope\"\nfirst_seen = 1\n", "peers = 3"] {
            fs::write(&path, bad).unwrap();
            let err = TrustStore::open(&path).unwrap_err().to_string();
            assert!(err.contains(TRUST_FILE_NAME) && err.contains("not a valid"), "{err}");
        }
    }

    #[test]
    fn a_failed_write_keeps_memory_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        // The store's "file" is a folder: the rename over it fails.
        let path = dir.path().join("sub");
        fs::create_dir(&path).unwrap();
        fs::write(path.join("x"), "keep the folder non-empty").unwrap();
        let store = TrustStore { path: Some(path.clone()), peers: Mutex::new(BTreeMap::new()) };
        let err = store.record("h:1", Keyprint::of_der(b"x")).unwrap_err().to_string();
        assert!(err.contains("writing it failed"), "{err}");
        assert!(store.get("h:1").is_none());
    }
}
