//! Hashing files on disk: one file ([`hash_file`]) or many in parallel on the
//! helper threads ([`HashBatch`]), with progress.
//!
//! This module owns reading files for hashing and nothing else: the tree
//! itself is [`crate::proto::tth`], remembering results is
//! [`super::store`], deciding what to hash is [`super::scan`].
//!
//! Reading: large reads (1 MiB) filled completely before they are hashed, so
//! a short read from the OS only means "read again", never a different tree
//! (the tree hasher takes data in any pieces anyway). A file that changes
//! while it is hashed (size, mtime, ctime or identity differ before and after,
//! or it holds more or fewer bytes than it said) is hashed again, at most
//! [`MAX_ATTEMPTS`] times in all, then reported as [`HashError::Unstable`].
//!
//! Times: `mtime` values here and in the store are nanoseconds since the Unix
//! epoch ([`mtime_ns`]), so that a rewrite within the same second is seen.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::Duration;

use crate::proto::tth::{TigerTree, TreeHasher};
use crate::runtime::helpers::HelperPool;

/// Bytes asked of the OS per read.
pub const READ_CHUNK: usize = 1 << 20;

/// How many times a file is hashed before it counts as unstable.
pub const MAX_ATTEMPTS: u32 = 3;

/// A file and its Tiger tree, with the size and mtime it had while hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashedFile {
    /// The path that was opened.
    pub path: PathBuf,
    /// Size in bytes (equal to `tree.size`).
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch ([`mtime_ns`]).
    pub mtime: i64,
    /// The tree: root (the TTH) and the leaves DC++ keeps.
    pub tree: TigerTree,
}

/// Why a file could not be hashed. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Opening the file or reading its metadata failed.
    #[error("hashing {}: cannot open: {source}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// Reading failed part way.
    #[error("hashing {}: read failed: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// The path is a directory, a device or some other non-file.
    #[error("hashing {}: not a regular file", path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// The file changed during every attempt.
    #[error("hashing {}: the file kept changing while hashed ({attempts} attempts)", path.display())]
    Unstable {
        /// The file.
        path: PathBuf,
        /// Attempts made.
        attempts: u32,
    },
    /// The batch was cancelled.
    #[error("hashing {}: cancelled", path.display())]
    Cancelled {
        /// The file.
        path: PathBuf,
    },
    /// A bug: hashing panicked (the helper thread survives it).
    #[error("hashing {}: internal error: {what}", path.display())]
    Panicked {
        /// The file.
        path: PathBuf,
        /// The panic message.
        what: String,
    },
}

impl HashError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            HashError::Open { path, .. }
            | HashError::Read { path, .. }
            | HashError::NotAFile { path }
            | HashError::Unstable { path, .. }
            | HashError::Cancelled { path }
            | HashError::Panicked { path, .. } => path,
        }
    }
}

/// The modification time of `meta` in nanoseconds since the Unix epoch
/// (saturating; negative before 1970).
pub fn mtime_ns(meta: &Metadata) -> i64 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        meta.mtime().saturating_mul(1_000_000_000).saturating_add(meta.mtime_nsec())
    }
    #[cfg(not(unix))]
    {
        use std::time::UNIX_EPOCH;
        match meta.modified() {
            Ok(t) => match t.duration_since(UNIX_EPOCH) {
                Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
                Err(e) => i64::try_from(e.duration().as_nanos()).map_or(i64::MIN, |n| -n),
            },
            Err(_) => 0,
        }
    }
}

/// What must not change while a file is hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    size: u64,
    mtime: i64,
    /// ctime catches rewrites that restore the mtime (`touch -r`, `rsync -t`).
    ctime: i64,
    dev: u64,
    ino: u64,
}

impl Stamp {
    fn of(meta: &Metadata) -> Stamp {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            Stamp {
                size: meta.len(),
                mtime: mtime_ns(meta),
                ctime: meta.ctime().saturating_mul(1_000_000_000).saturating_add(meta.ctime_nsec()),
                dev: meta.dev(),
                ino: meta.ino(),
            }
        }
        #[cfg(not(unix))]
        {
            Stamp { size: meta.len(), mtime: mtime_ns(meta), ctime: 0, dev: 0, ino: 0 }
        }
    }
}

/// Hashes the file at `path`.
pub fn hash_file(path: &Path) -> Result<HashedFile, HashError> {
    hash_file_with(path, &mut |_| {}, &AtomicBool::new(false))
}

/// Hashes the file at `path`, calling `progress` with the bytes of this file
/// hashed so far after each read (it starts again from 0 if the file changed
/// and is hashed again), and giving up with [`HashError::Cancelled`] soon after
/// `cancel` becomes true.
pub fn hash_file_with(
    path: &Path,
    progress: &mut dyn FnMut(u64),
    cancel: &AtomicBool,
) -> Result<HashedFile, HashError> {
    // One read buffer per thread, reused for every file: hashing many small
    // files must not allocate (and fault in) a megabyte each time.
    thread_local! {
        static BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }
    BUF.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            if buf.len() < READ_CHUNK {
                buf.resize(READ_CHUNK, 0);
            }
            hash_with_buffer(path, &mut buf, progress, cancel)
        }
        // Only if `progress` itself hashes a file on this thread.
        Err(_) => hash_with_buffer(path, &mut vec![0; READ_CHUNK], progress, cancel),
    })
}

fn hash_with_buffer(
    path: &Path,
    buf: &mut [u8],
    progress: &mut dyn FnMut(u64),
    cancel: &AtomicBool,
) -> Result<HashedFile, HashError> {
    for attempt in 1..=MAX_ATTEMPTS {
        if let Some(hashed) = hash_once(path, buf, progress, cancel)? {
            return Ok(hashed);
        }
        log::info!("{} changed while hashed (attempt {attempt}), hashing it again", path.display());
        progress(0);
    }
    Err(HashError::Unstable { path: path.to_owned(), attempts: MAX_ATTEMPTS })
}

/// One attempt: `Ok(None)` if the file changed meanwhile.
fn hash_once(
    path: &Path,
    buf: &mut [u8],
    progress: &mut dyn FnMut(u64),
    cancel: &AtomicBool,
) -> Result<Option<HashedFile>, HashError> {
    let open_err = |source| HashError::Open { path: path.to_owned(), source };
    let read_err = |source| HashError::Read { path: path.to_owned(), source };
    let mut file = File::open(path).map_err(open_err)?;
    let before = file.metadata().map_err(open_err)?;
    if !before.is_file() {
        return Err(HashError::NotAFile { path: path.to_owned() });
    }
    advise_sequential(&file);
    let stamp = Stamp::of(&before);

    let mut hasher = TreeHasher::new();
    let mut done = 0u64;
    loop {
        if cancel.load(Ordering::Relaxed) {
            return Err(HashError::Cancelled { path: path.to_owned() });
        }
        let n = read_full(&mut file, buf).map_err(read_err)?;
        hasher.update(&buf[..n]);
        done += n as u64;
        progress(done);
        // A short fill means end of file; more bytes than the size said means
        // the file grows: stop now rather than chase a growing log.
        if n < buf.len() || done > stamp.size {
            break;
        }
    }

    let after_fd = file.metadata().map_err(read_err)?;
    // The path may now name another file (replaced by rename): check it too.
    let after_path = std::fs::metadata(path).ok();
    let stable = done == stamp.size
        && Stamp::of(&after_fd) == stamp
        && after_path.as_ref().map(Stamp::of) == Some(stamp);
    if !stable {
        return Ok(None);
    }
    Ok(Some(HashedFile {
        path: path.to_owned(),
        size: stamp.size,
        mtime: stamp.mtime,
        tree: hasher.finish(),
    }))
}

/// Reads until `buf` is full or the file ends; returns the bytes read.
fn read_full(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Tells the kernel we read front to back (larger read-ahead).
fn advise_sequential(file: &File) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: the descriptor is valid while `file` is borrowed; the call
        // only sets a read-ahead hint and touches no memory of ours.
        unsafe {
            libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_SEQUENTIAL);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = file;
}

/// Where a [`HashBatch`] stands. `bytes_*` use the sizes given when the batch
/// was made; a finished file counts with that size whatever it turned out
/// to hold, so `bytes_done` ends equal to `bytes_total`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HashProgress {
    /// Files in the batch.
    pub files_total: u64,
    /// Files finished (hashed or failed).
    pub files_done: u64,
    /// Files that failed.
    pub files_failed: u64,
    /// Bytes in the batch.
    pub bytes_total: u64,
    /// Bytes hashed so far.
    pub bytes_done: u64,
}

/// Counters shared by a batch and its tasks.
struct Shared {
    files_total: u64,
    bytes_total: u64,
    files_done: AtomicU64,
    files_failed: AtomicU64,
    bytes_done: AtomicU64,
    cancel: AtomicBool,
}

impl Shared {
    fn snapshot(&self) -> HashProgress {
        HashProgress {
            files_total: self.files_total,
            files_done: self.files_done.load(Ordering::Relaxed),
            files_failed: self.files_failed.load(Ordering::Relaxed),
            bytes_total: self.bytes_total,
            bytes_done: self.bytes_done.load(Ordering::Relaxed),
        }
    }

    /// Moves this file's share of `bytes_done` from `from` to `to`.
    fn account(&self, from: u64, to: u64) {
        if to >= from {
            self.bytes_done.fetch_add(to - from, Ordering::Relaxed);
        } else {
            self.bytes_done.fetch_sub(from - to, Ordering::Relaxed);
        }
    }
}

/// A progress callback, called on helper threads.
type ProgressFn = Arc<dyn Fn(HashProgress) + Send + Sync>;
/// A wake-up callback, called on helper threads after each result.
type NotifyFn = Arc<dyn Fn() + Send + Sync>;

/// Many files hashed in parallel on a [`HelperPool`].
///
/// The batch keeps at most two files per helper thread queued or running
/// (so other helper work never waits behind a whole share) and hands out the
/// results in completion order. The owner drives it: a worker job calls
/// [`pump`](HashBatch::pump) and [`try_next`](HashBatch::try_next) when woken
/// by [`on_result`](HashBatch::on_result); a blocking caller loops on
/// [`next_blocking`](HashBatch::next_blocking). Dropping the batch cancels the
/// files still running.
pub struct HashBatch {
    pending: VecDeque<(PathBuf, u64)>,
    in_flight: usize,
    tx: Sender<Result<HashedFile, HashError>>,
    rx: Receiver<Result<HashedFile, HashError>>,
    shared: Arc<Shared>,
    on_progress: Option<ProgressFn>,
    on_result: Option<NotifyFn>,
}

impl std::fmt::Debug for HashBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashBatch")
            .field("pending", &self.pending.len())
            .field("in_flight", &self.in_flight)
            .field("progress", &self.progress())
            .finish()
    }
}

impl HashBatch {
    /// A batch hashing `files`: (path, expected size for progress).
    pub fn new(files: impl IntoIterator<Item = (PathBuf, u64)>) -> HashBatch {
        let pending: VecDeque<(PathBuf, u64)> = files.into_iter().collect();
        let (tx, rx) = channel();
        let shared = Shared {
            files_total: pending.len() as u64,
            bytes_total: pending.iter().map(|(_, size)| *size).sum(),
            files_done: AtomicU64::new(0),
            files_failed: AtomicU64::new(0),
            bytes_done: AtomicU64::new(0),
            cancel: AtomicBool::new(false),
        };
        HashBatch {
            pending,
            in_flight: 0,
            tx,
            rx,
            shared: Arc::new(shared),
            on_progress: None,
            on_result: None,
        }
    }

    /// Calls `f` with the progress after each read (about every megabyte) and
    /// after each file, on the helper threads.
    pub fn on_progress(mut self, f: impl Fn(HashProgress) + Send + Sync + 'static) -> HashBatch {
        self.on_progress = Some(Arc::new(f));
        self
    }

    /// Calls `f` on the helper thread after each result is ready (to wake the
    /// worker, for example).
    pub fn on_result(mut self, f: impl Fn() + Send + Sync + 'static) -> HashBatch {
        self.on_result = Some(Arc::new(f));
        self
    }

    /// The progress so far.
    pub fn progress(&self) -> HashProgress {
        self.shared.snapshot()
    }

    /// Stops the batch: nothing more starts, running files end soon with
    /// [`HashError::Cancelled`]; their results still arrive.
    pub fn cancel(&mut self) {
        self.shared.cancel.store(true, Ordering::Relaxed);
        self.pending.clear();
    }

    /// Whether every result has been handed out.
    pub fn is_finished(&self) -> bool {
        self.pending.is_empty() && self.in_flight == 0
    }

    /// Submits files to `pool` until two per helper thread are in flight.
    pub fn pump(&mut self, pool: &HelperPool) {
        let limit = 2 * pool.threads().max(1);
        while self.in_flight < limit {
            let Some((path, expected)) = self.pending.pop_front() else { break };
            self.in_flight += 1;
            let shared = Arc::clone(&self.shared);
            let tx = self.tx.clone();
            let on_progress = self.on_progress.clone();
            let on_result = self.on_result.clone();
            pool.submit(move || {
                let result = run_task(&path, expected, &shared, on_progress.as_deref());
                // The receiver is gone only if the batch was dropped.
                let _ = tx.send(result);
                if let Some(notify) = on_result {
                    notify();
                }
            });
        }
    }

    /// The next result if one is ready, without waiting; keeps the pool fed.
    pub fn try_next(&mut self, pool: &HelperPool) -> Option<Result<HashedFile, HashError>> {
        self.pump(pool);
        let result = self.rx.try_recv().ok()?;
        self.in_flight -= 1;
        self.pump(pool);
        Some(result)
    }

    /// The next result, waiting at most `timeout`; `None` on timeout or when
    /// the batch is finished.
    pub fn next_timeout(
        &mut self,
        pool: &HelperPool,
        timeout: Duration,
    ) -> Option<Result<HashedFile, HashError>> {
        self.pump(pool);
        if self.in_flight == 0 {
            return None;
        }
        match self.rx.recv_timeout(timeout) {
            Ok(result) => {
                self.in_flight -= 1;
                self.pump(pool);
                Some(result)
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => None,
        }
    }

    /// The next result, waiting for it; `None` when the batch is finished.
    /// Blocks: never call it on the worker thread.
    pub fn next_blocking(&mut self, pool: &HelperPool) -> Option<Result<HashedFile, HashError>> {
        self.pump(pool);
        if self.in_flight == 0 {
            return None;
        }
        // The batch holds a sender, so this waits for a task; every task
        // sends exactly one result, panics included (see `run_task`).
        let result = self.rx.recv().ok()?;
        self.in_flight -= 1;
        self.pump(pool);
        Some(result)
    }
}

impl Drop for HashBatch {
    fn drop(&mut self) {
        self.shared.cancel.store(true, Ordering::Relaxed);
    }
}

/// Hashes one file of a batch and keeps the counters right.
fn run_task(
    path: &Path,
    expected: u64,
    shared: &Shared,
    on_progress: Option<&(dyn Fn(HashProgress) + Send + Sync)>,
) -> Result<HashedFile, HashError> {
    let mut counted = 0u64;
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        hash_file_with(
            path,
            &mut |done| {
                shared.account(counted, done);
                counted = done;
                if let Some(f) = on_progress {
                    f(shared.snapshot());
                }
            },
            &shared.cancel,
        )
    }));
    let result = outcome.unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        Err(HashError::Panicked { path: path.to_owned(), what })
    });
    shared.account(counted, expected);
    if result.is_err() {
        shared.files_failed.fetch_add(1, Ordering::Relaxed);
    }
    shared.files_done.fetch_add(1, Ordering::Relaxed);
    if let Some(f) = on_progress {
        f(shared.snapshot());
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::tth::tree_root;
    use std::io::Write;
    use std::sync::Mutex;

    fn bytes(len: usize, seed: u8) -> Vec<u8> {
        (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
    }

    #[test]
    fn hashes_a_file_like_the_tree_hasher() {
        let dir = tempfile::tempdir().unwrap();
        for (n, len) in [0, 1, 1024, 1025, READ_CHUNK - 1, READ_CHUNK, 3 * READ_CHUNK + 77]
            .into_iter()
            .enumerate()
        {
            let data = bytes(len, n as u8);
            let path = dir.path().join(format!("f{n}"));
            std::fs::write(&path, &data).unwrap();
            let hashed = hash_file(&path).unwrap();
            assert_eq!(hashed.size, len as u64);
            assert_eq!(hashed.tree.root, tree_root(&data), "{len} bytes");
            assert_eq!(hashed.mtime, mtime_ns(&std::fs::metadata(&path).unwrap()));
        }
    }

    #[test]
    fn errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let err = hash_file(&missing).unwrap_err();
        assert!(matches!(err, HashError::Open { .. }));
        assert_eq!(err.path(), missing);
        assert!(err.to_string().contains("missing"), "{err}");
        let err = hash_file(dir.path()).unwrap_err();
        assert!(matches!(err, HashError::NotAFile { .. }), "{err}");
    }

    #[test]
    fn a_file_that_keeps_changing_is_unstable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(&path, bytes(3 * READ_CHUNK, 1)).unwrap();
        let mut appends = 0;
        // Append during every attempt, as a busy writer would.
        let err = hash_file_with(
            &path,
            &mut |done| {
                if done > 0 && done < 2 * READ_CHUNK as u64 {
                    let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
                    f.write_all(b"more").unwrap();
                    appends += 1;
                }
            },
            &AtomicBool::new(false),
        )
        .unwrap_err();
        assert!(matches!(err, HashError::Unstable { attempts: MAX_ATTEMPTS, .. }), "{err}");
        assert_eq!(appends, MAX_ATTEMPTS);
    }

    #[test]
    fn a_file_changed_once_is_hashed_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let first = bytes(2 * READ_CHUNK + 5, 2);
        std::fs::write(&path, &first).unwrap();
        let second = bytes(READ_CHUNK + 9, 3);
        let mut rewritten = false;
        let mut seen = Vec::new();
        let hashed = hash_file_with(
            &path,
            &mut |done| {
                seen.push(done);
                if !rewritten && done == READ_CHUNK as u64 {
                    // Same path, new content, new size: the fd still reads the
                    // old inode after a rename, so check both ways.
                    let tmp = path.with_extension("tmp");
                    std::fs::write(&tmp, &second).unwrap();
                    std::fs::rename(&tmp, &path).unwrap();
                    rewritten = true;
                }
            },
            &AtomicBool::new(false),
        )
        .unwrap();
        assert!(rewritten);
        assert_eq!(hashed.tree.root, tree_root(&second));
        assert_eq!(hashed.size, second.len() as u64);
        assert!(seen.contains(&0), "progress restarts from 0: {seen:?}");
    }

    #[test]
    fn a_batch_hashes_every_file_with_progress() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = Vec::new();
        let mut want = Vec::new();
        for n in 0..20u8 {
            let data = bytes(n as usize * 150_000, n);
            let path = dir.path().join(format!("f{n}"));
            std::fs::write(&path, &data).unwrap();
            want.push((path.clone(), tree_root(&data)));
            files.push((path, data.len() as u64));
        }
        files.push((dir.path().join("missing"), 10));
        let total: u64 = files.iter().map(|f| f.1).sum();
        let pool = HelperPool::new(2);
        let reports = Arc::new(Mutex::new(Vec::new()));
        let r = Arc::clone(&reports);
        let mut batch = HashBatch::new(files).on_progress(move |p| r.lock().unwrap().push(p));
        let mut got = Vec::new();
        let mut failed = Vec::new();
        while let Some(result) = batch.next_blocking(&pool) {
            match result {
                Ok(h) => got.push((h.path, h.tree.root)),
                Err(e) => failed.push(e.path().to_owned()),
            }
        }
        assert!(batch.is_finished());
        got.sort();
        want.sort();
        assert_eq!(got, want);
        assert_eq!(failed, vec![dir.path().join("missing")]);
        let end = batch.progress();
        assert_eq!(
            end,
            HashProgress {
                files_total: 21,
                files_done: 21,
                files_failed: 1,
                bytes_total: total,
                bytes_done: total
            }
        );
        let reports = reports.lock().unwrap();
        assert!(reports.len() > 21, "progress after reads too");
        assert!(reports.iter().all(|p| p.bytes_done <= total));
    }

    #[test]
    fn a_cancelled_batch_ends() {
        let dir = tempfile::tempdir().unwrap();
        let files: Vec<_> = (0..50)
            .map(|n| {
                let path = dir.path().join(format!("f{n}"));
                std::fs::write(&path, bytes(2 * READ_CHUNK, n as u8)).unwrap();
                (path, 2 * READ_CHUNK as u64)
            })
            .collect();
        let pool = HelperPool::new(2);
        let mut batch = HashBatch::new(files);
        let first = batch.next_blocking(&pool);
        assert!(first.is_some());
        batch.cancel();
        let mut rest = 0;
        while batch.next_blocking(&pool).is_some() {
            rest += 1;
        }
        assert!(rest <= 4, "only files already in flight finish: {rest}");
        assert!(batch.is_finished());
    }
}
