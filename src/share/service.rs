//! The share service: the running share of the client. It keeps the shared
//! folders, the hash store, the share tree and its search index, and our
//! `files.xml.bz2` up to date, and answers for them on the worker thread.
//!
//! It owns *when* things happen (passes, batches, list writes, events) and
//! composes [`scan`](super::scan), [`hasher`](super::hasher),
//! `store`, `index` and
//! `filelist`, which own *how*. It must never block the
//! worker thread on disk or on heavy CPU work, and it knows nothing of Lua or
//! of the protocols: the Lua side (`lua::share_api`) subscribes to its
//! [`ShareEvent`]s and installs the answer filter; hub sessions call
//! [`ShareService::answer`].
//!
//! # Threads
//!
//! - **The worker** runs the service's job, which owns the index (in an
//!   `Arc`, see below), the list of shared folders and the totals. Everything
//!   it does per call is small: searching the index, applying a batch of
//!   hashed files to it, answering Lua.
//! - **The share thread** (`dclua-share`, one per service) owns the SQLite
//!   connection of the [`Store`] for its whole life. *Why a dedicated thread
//!   and not a helper task:* a pass waits for the helper threads while they
//!   hash (a `HashBatch` result at a time) and commits results in batches; a
//!   helper task doing that waiting would take a helper thread away from
//!   hashing (half the hashing speed on two cores), and moving the connection
//!   into a new task for each batch would make every batch wait for a free
//!   helper. The share thread sleeps while the helpers hash, so it costs no
//!   core. It does one pass at a time: walk the roots, compare with the store
//!   ([`plan`]), build the tree and index of the known files (new files are
//!   in it without TTH, *pending*), hash the rest on the helper threads,
//!   commit them to the store every [`STORE_BATCH_FILES`] files or
//!   [`STORE_BATCH_TIME`], send them to the job, and finally remove what is
//!   gone. A new pass request (rescan, add, remove) cancels the running pass
//!   after keeping what was hashed; the new pass then finds it in the store.
//! - **Helper threads** hash (all cores, through [`HashBatch`]), check a
//!   folder given to [`ShareService::add`], hash files for
//!   [`ShareService::hash_file`] (`dc.tth`), and write the file list.
//!
//! # The index and the list writer
//!
//! The job keeps the index in an `Arc<ShareIndex>`. Writing the list (on a
//! helper) takes a clone of the `Arc` and so sees one consistent state
//! without a copy. Changes arriving meanwhile are kept in a queue and applied
//! when the writer gives its clone back (`Arc::get_mut` succeeds again). The
//! list is written again after every pass and after every change once the
//! pass is over, at most one writer at a time: a change during a write asks
//! for one more write afterwards. It is written atomically (temporary file,
//! fsync, rename) as `<data>/files.xml.bz2`.
//!
//! # Events
//!
//! [`ShareEvent::Progress`] at most [`PROGRESS_EVERY`] apart (the last one
//! of a pass, files done = files total, always comes), and
//! [`ShareEvent::Updated`] once a pass is over and the list written.
//!
//! # Answering searches
//!
//! [`ShareService::answer`] searches the index with the caller's limit (5
//! passive, 10 active) and then runs the answer filter, if one is set, which
//! may drop hits or all of them (the Lua side's `dc.share.filter`). Hits of a
//! folder removed from the share but not yet gone from the index (the pass
//! that removes it is running) are dropped.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::mpsc::{channel, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::filelist::{self, FileListError, ListOptions};
use super::hasher::{hash_file, HashBatch, HashError, HashProgress, HashedFile};
use super::index::{SearchHit, ShareIndex};
use super::scan::{
    open_served, plan, scan, Hashed, ScanOptions, ScanResult, ServeRefusal, ServedFile, ShareRoot,
};
use super::store::{self, Store};
use super::tree::{ShareEntry, ShareTree};
use crate::proto::tth::Tth;
use crate::runtime::helpers::HelperPool;
use crate::runtime::{Context, Job, JobId, Runtime, Step, TaskDone, TaskId, TimerId, WorkerHandle};
use crate::search::{Query, MAX_RESULTS_ACTIVE};

/// The file name of our list in the data folder.
pub const LIST_FILE: &str = "files.xml.bz2";
/// Hashed files committed to the store per transaction.
pub const STORE_BATCH_FILES: usize = 1000;
/// Longest time hashed files wait for their commit (and for the index).
pub const STORE_BATCH_TIME: Duration = Duration::from_secs(2);
/// Least time between two [`ShareEvent::Progress`] (the last of a pass
/// excepted).
pub const PROGRESS_EVERY: Duration = Duration::from_millis(500);
/// Least time between two progress reports from the helper threads to the
/// worker.
const PROGRESS_SEND_EVERY: Duration = Duration::from_millis(100);
/// How often the share thread looks for a new request while it waits for a
/// hash result.
const COMMAND_CHECK: Duration = Duration::from_millis(100);

/// One shared folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedFolder {
    /// The name others see (one path component, unique case-insensitively).
    pub name: String,
    /// The folder on disk.
    pub path: PathBuf,
    /// Whether hidden files and folders (names starting with `.`) are shared.
    pub hidden: bool,
    /// Whether symbolic links below it are followed (see
    /// [`scan`](super::scan) for the rules).
    pub follow_symlinks: bool,
}

/// What an upload asks for ([`ShareService::resolve`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServeRequest<'a> {
    /// A virtual path, `Root/dir/file` (a leading `/` accepted).
    Path(&'a str),
    /// A file by its TTH (the first copy that passes the checks).
    Tth(Tth),
}

/// How a [`ShareService`] is set up.
#[derive(Debug, Clone)]
pub struct ShareOptions {
    /// The data folder: `hashes.sqlite` and `files.xml.bz2` live there.
    pub data_dir: PathBuf,
    /// Our CID (base32), written into the file list.
    pub cid: String,
    /// The folders shared at start.
    pub folders: Vec<SharedFolder>,
}

/// What the service tells its subscribers.
#[derive(Debug, Clone, PartialEq)]
pub enum ShareEvent {
    /// Hashing progress of the running pass (rate-limited).
    Progress(HashProgress),
    /// A pass is over and the file list is written.
    Updated(UpdateSummary),
}

/// What a pass did, and the share after it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UpdateSummary {
    /// Files in the share (hashed ones).
    pub files: u64,
    /// Bytes in the share.
    pub size: u64,
    /// Files waiting for their hash (or that could not be hashed).
    pub pending: u64,
    /// Files hashed by this pass.
    pub hashed: u64,
    /// Files this pass could not hash.
    pub failed: u64,
    /// Stored entries removed because their files are no longer shared.
    pub removed: u64,
    /// Entries the walk skipped (unreadable, dangling links...).
    pub problems: u64,
    /// The file list, when it could be written.
    pub list: Option<PathBuf>,
}

/// Totals of the share, for `dc.share.stats()` and the hubs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShareStats {
    /// Files in the share (hashed ones).
    pub files: u64,
    /// Bytes in the share.
    pub size: u64,
    /// Files waiting for their hash.
    pub pending: u64,
    /// Files hashed since the start.
    pub hashed: u64,
    /// Bytes hashed since the start.
    pub hashed_bytes: u64,
    /// Whether a pass is hashing now.
    pub hashing: bool,
    /// The running pass's progress (zero when idle).
    pub progress: HashProgress,
    /// The shared folders.
    pub folders: Vec<SharedFolder>,
}

/// Answers a waiting call of the service.
pub type Done<T> = Box<dyn FnOnce(Result<T, String>)>;

/// Filters the hits of an answer; returns those to send (a subset).
pub type AnswerFilter = Rc<dyn Fn(&Query, Vec<SearchHit>) -> Vec<SearchHit>>;

type Observer = Rc<dyn Fn(&ShareEvent)>;

// ----- messages between the job and the share thread ------------------------

enum Cmd {
    /// Bring everything up to date with these folders.
    Pass(Vec<SharedFolder>),
    /// Finish (keep what was hashed) and exit.
    Stop,
}

enum FromThread {
    /// A pass's tree: known files with their TTH, new ones pending.
    Index {
        index: Box<ShareIndex>,
        problems: u64,
    },
    /// Files hashed (already committed to the store), and files that could
    /// not be hashed (virtual paths).
    Hashed {
        entries: Vec<ShareEntry>,
        failed: Vec<String>,
        bytes: u64,
    },
    Progress(HashProgress),
    PassDone {
        hashed: u64,
        failed: u64,
        removed: u64,
    },
    Stopped,
}

/// A message from the share thread (or a helper) to the service's job.
struct ThreadMsg(FromThread);

// ----- the service ----------------------------------------------------------

enum Update {
    Put(ShareEntry),
    Remove(String),
}

enum Waiting {
    List,
    Tth(Box<dyn FnOnce(Result<HashedFile, HashError>)>),
    Add { name: String, hidden: bool, done: Done<()> },
}

struct State {
    index: Arc<ShareIndex>,
    folders: Vec<SharedFolder>,
    /// Changes waiting for the list writer to give the index back.
    queued: Vec<Update>,
    list_path: Option<PathBuf>,
    list_running: bool,
    list_again: bool,
    /// A pass ended: announce it once the list is written.
    summary: Option<UpdateSummary>,
    /// A pass is running on the share thread.
    passing: bool,
    problems: u64,
    tasks: HashMap<TaskId, Waiting>,
    progress: HashProgress,
    hashing: bool,
    hashed: u64,
    hashed_bytes: u64,
    last_progress: Option<Instant>,
    progress_timer: Option<TimerId>,
    progress_due: bool,
    stopping: bool,
    thread_gone: bool,
}

pub(crate) struct Inner {
    rt: Runtime,
    job: Cell<Option<JobId>>,
    cmd: Sender<Cmd>,
    data_dir: PathBuf,
    cid: RefCell<String>,
    st: RefCell<State>,
    observers: RefCell<Vec<Observer>>,
    filter: RefCell<Option<AnswerFilter>>,
}

/// The running share; a cheap `Rc` handle, used on the worker thread only.
#[derive(Clone)]
pub struct ShareService {
    inner: Rc<Inner>,
}

impl std::fmt::Debug for ShareService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.inner.st.borrow();
        f.debug_struct("ShareService")
            .field("folders", &st.folders.len())
            .field("files", &st.index.tree().shared_files())
            .finish_non_exhaustive()
    }
}

/// Whether `name` can name a shared folder (the rules of the scan).
fn valid_folder_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.chars().any(|c| c == '/' || c == '\\' || c.is_control())
}

impl ShareService {
    /// Starts the service on the worker thread: its job, its share thread
    /// (which opens `<data>/hashes.sqlite`) and a first pass over
    /// `opts.folders`. Invalid or duplicate folder names are logged and left
    /// out. `worker` is the handle of the worker this runs on (the share
    /// thread reports through it).
    pub fn start(rt: &Runtime, worker: WorkerHandle, opts: ShareOptions) -> ShareService {
        let mut folders: Vec<SharedFolder> = Vec::new();
        for f in opts.folders {
            if !valid_folder_name(&f.name) {
                log::error!("share {}: invalid name {:?}; not shared", f.path.display(), f.name);
            } else if folders.iter().any(|g| g.name.to_lowercase() == f.name.to_lowercase()) {
                log::error!(
                    "share {}: the name {:?} is already used by another folder; not shared",
                    f.path.display(),
                    f.name
                );
            } else {
                folders.push(f);
            }
        }
        let (cmd_tx, cmd_rx) = channel();
        let inner = Rc::new(Inner {
            rt: rt.clone(),
            job: Cell::new(None),
            cmd: cmd_tx,
            data_dir: opts.data_dir.clone(),
            cid: RefCell::new(opts.cid),
            st: RefCell::new(State {
                index: Arc::new(ShareIndex::new(ShareTree::new())),
                folders: folders.clone(),
                queued: Vec::new(),
                list_path: None,
                list_running: false,
                list_again: false,
                summary: None,
                passing: false,
                problems: 0,
                tasks: HashMap::new(),
                progress: HashProgress::default(),
                hashing: false,
                hashed: 0,
                hashed_bytes: 0,
                last_progress: None,
                progress_timer: None,
                progress_due: false,
                stopping: false,
                thread_gone: false,
            }),
            observers: RefCell::new(Vec::new()),
            filter: RefCell::new(None),
        });
        let helpers = rt.helpers().cloned().unwrap_or_else(|| Arc::new(HelperPool::per_core()));
        let db = opts.data_dir.join(store::FILE_NAME);
        let data_dir = opts.data_dir.clone();
        let id = rt.spawn_with(|id| {
            let link = Link { worker, job: id };
            let spawned = std::thread::Builder::new()
                .name("dclua-share".into())
                .spawn(move || share_thread(&db, &data_dir, &cmd_rx, &link, &helpers));
            if let Err(e) = spawned {
                log::error!("sharing: starting the share thread: {e}; nothing is shared");
                inner.st.borrow_mut().thread_gone = true;
            }
            ShareJob { inner: inner.clone(), done: false }
        });
        inner.job.set(Some(id));
        let service = ShareService { inner };
        service.start_pass();
        service
    }

    // ----- for hub sessions and uploads --------------------------------------

    /// Answers an incoming search: the index's hits (at most `limit`, which
    /// the caller sets to
    /// [`MAX_RESULTS_PASSIVE`](crate::search::MAX_RESULTS_PASSIVE) or
    /// [`MAX_RESULTS_ACTIVE`]; larger values are cut to the latter), passed
    /// through the answer filter. Empty means: send nothing.
    pub fn answer(&self, query: &Query, limit: usize) -> Vec<SearchHit> {
        let q = query;
        let hits = self.find(q, limit.min(MAX_RESULTS_ACTIVE));
        if hits.is_empty() {
            return hits;
        }
        // Cloned out: the filter may call back into the service (Lua's
        // dc.share.find, for one).
        let filter = self.inner.filter.borrow().clone();
        match filter {
            Some(f) => {
                let allowed: Vec<SearchHit> = f(q, hits.clone());
                // A filter may only take away, never add or alter.
                hits.into_iter().filter(|h| allowed.iter().any(|a| a.path == h.path)).collect()
            }
            None => hits,
        }
    }

    /// Searches the index (no filter, at most `limit` hits): what
    /// `dc.share.find` uses.
    pub fn find(&self, query: &Query, limit: usize) -> Vec<SearchHit> {
        let st = self.inner.st.borrow();
        let mut hits = st.index.search(query, limit);
        // Folders removed from the share whose removal pass still runs.
        hits.retain(|h| {
            let root = h.path.split('/').next().unwrap_or("");
            st.folders.iter().any(|f| f.name == root)
        });
        hits
    }

    /// Sets (or with `None` removes) the filter [`answer`](Self::answer)
    /// runs on its hits.
    pub fn set_answer_filter(&self, filter: Option<AnswerFilter>) {
        *self.inner.filter.borrow_mut() = filter;
    }

    /// Bytes in the share (what hubs are told).
    pub fn share_size(&self) -> u64 {
        self.inner.st.borrow().index.tree().shared_size()
    }

    /// Files in the share.
    pub fn shared_files(&self) -> u64 {
        self.inner.st.borrow().index.tree().shared_files()
    }

    /// Our `files.xml.bz2`, once it has been written.
    pub fn file_list_path(&self) -> Option<PathBuf> {
        self.inner.st.borrow().list_path.clone()
    }

    /// The partial list of one folder (`/` or `/Root/dir/`) as uncompressed
    /// XML (ADC `GET list`); `recursive` expands everything below it. Runs
    /// on the calling thread; uploads use [`Self::partial_list_task`].
    pub fn partial_list(&self, dir: &str, recursive: bool) -> Result<Vec<u8>, FileListError> {
        self.partial_list_task(dir, recursive)()
    }

    /// [`Self::partial_list`] as a task for a helper thread: it holds a
    /// snapshot of the share (the index is shared, not copied), so a
    /// recursive list of a big share is not built on the worker.
    pub fn partial_list_task(
        &self,
        dir: &str,
        recursive: bool,
    ) -> impl FnOnce() -> Result<Vec<u8>, FileListError> + Send + 'static {
        let cid = self.inner.cid.borrow().clone();
        let index = self.index();
        let dir = dir.to_string();
        move || {
            let mut opts = ListOptions::partial(&cid, &dir, recursive);
            opts.threads = 1;
            filelist::write_xml(index.tree(), &opts)
        }
    }

    /// The file on disk behind a virtual path (`Root/dir/file`, a leading `/`
    /// accepted), if that path is in the share. Not for serving files: it
    /// checks neither links nor changes; [`Self::resolve`] does.
    pub fn real_path(&self, virtual_path: &str) -> Option<PathBuf> {
        let st = self.inner.st.borrow();
        let vp = virtual_path.strip_prefix('/').unwrap_or(virtual_path);
        st.index.tree().lookup(vp)?;
        let (root, rest) = vp.split_once('/').unwrap_or((vp, ""));
        let folder = st.folders.iter().find(|f| f.name == root)?;
        let mut path = folder.path.clone();
        for part in rest.split('/').filter(|p| !p.is_empty()) {
            path.push(part);
        }
        Some(path)
    }

    /// The file to serve for a request (a virtual path, `Root/dir/file` with
    /// or without a leading `/`, or a TTH), checked and opened: it must be a
    /// hashed file of the share, inside its root after resolving symbolic
    /// links (or through links its folder follows), outside the data folder,
    /// and unchanged since it was hashed. Otherwise a [`ServeRefusal`] that
    /// says why. For the upload side: serve from [`ServedFile::file`].
    ///
    /// Runs on the calling thread: a few system calls (`stat`s and one
    /// `open`), no reading.
    pub fn resolve(&self, request: ServeRequest<'_>) -> Result<ServedFile, ServeRefusal> {
        let st = self.inner.st.borrow();
        let tree = st.index.tree();
        let candidates: Vec<String> = match request {
            ServeRequest::Path(p) => {
                let vp = p.strip_prefix('/').unwrap_or(p);
                if vp.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
                    return Err(ServeRefusal::OutsideShare(p.to_string()));
                }
                vec![vp.to_string()]
            }
            ServeRequest::Tth(tth) => {
                let paths: Vec<String> =
                    st.index.find_tth(&tth).into_iter().map(|id| tree.path(id)).collect();
                if paths.is_empty() {
                    return Err(ServeRefusal::NotFound(format!("TTH/{tth}")));
                }
                paths
            }
        };
        let mut refusal = None;
        for vp in candidates {
            match self.resolve_path(&st, &vp) {
                Ok(file) => return Ok(file),
                Err(e) => {
                    refusal.get_or_insert(e);
                }
            }
        }
        Err(refusal.unwrap_or_else(|| ServeRefusal::NotFound(String::new())))
    }

    fn resolve_path(&self, st: &State, vp: &str) -> Result<ServedFile, ServeRefusal> {
        let tree = st.index.tree();
        let id = tree.lookup(vp).filter(|&id| tree.is_file(id));
        let Some(id) = id else {
            return Err(ServeRefusal::NotFound(vp.to_string()));
        };
        if tree.tth(id).is_none() {
            return Err(ServeRefusal::NotHashed(vp.to_string()));
        }
        // The virtual path as the tree spells it (lookups ignore case; the
        // disk may not).
        let exact = tree.path(id);
        let (root_name, rest) = exact.split_once('/').unwrap_or((exact.as_str(), ""));
        // A folder removed from the share is still in the index until the
        // pass that removes it ends.
        let Some(folder) = st.folders.iter().find(|f| f.name == root_name) else {
            return Err(ServeRefusal::NotFound(vp.to_string()));
        };
        let root = ShareRoot {
            virtual_name: folder.name.clone(),
            path: folder.path.clone(),
            follow_symlinks: folder.follow_symlinks,
        };
        let hashed = Hashed { size: tree.size(id), mtime_secs: tree.mtime(id) };
        open_served(&root, rest, std::slice::from_ref(&self.inner.data_dir), hashed, vp)
    }

    /// A snapshot of the index (cheap: shares it).
    pub fn index(&self) -> Arc<ShareIndex> {
        self.inner.st.borrow().index.clone()
    }

    /// Sets our CID; the list is written again with it.
    pub fn set_cid(&self, cid: &str) {
        *self.inner.cid.borrow_mut() = cid.to_string();
        self.write_list();
    }

    // ----- control -----------------------------------------------------------

    /// The totals.
    pub fn stats(&self) -> ShareStats {
        let st = self.inner.st.borrow();
        let tree = st.index.tree();
        ShareStats {
            files: tree.shared_files(),
            size: tree.shared_size(),
            pending: tree.pending_files(),
            hashed: st.hashed,
            hashed_bytes: st.hashed_bytes,
            hashing: st.hashing,
            progress: if st.hashing { st.progress } else { HashProgress::default() },
            folders: st.folders.clone(),
        }
    }

    /// Walks every folder again: new and changed files are hashed, gone ones
    /// leave the share and the store.
    pub fn rescan(&self) {
        self.start_pass();
    }

    /// Shares the folder `path` as `name`. The folder is checked on a helper
    /// thread; `done` gets `Ok` once it is in the share's folder list (its
    /// files are then scanned and hashed by a new pass), or the reason it was
    /// refused.
    pub fn add(&self, path: &Path, name: &str, hidden: bool, done: Done<()>) {
        if let Err(e) = self.check_new_name(name) {
            done(Err(e));
            return;
        }
        let Some(job) = self.inner.job.get() else {
            done(Err("sharing is not running".into()));
            return;
        };
        let path = path.to_path_buf();
        let data_dir = self.inner.data_dir.clone();
        let task = self.inner.rt.submit(job, move || -> Result<PathBuf, String> {
            let canonical =
                fs::canonicalize(&path).map_err(|e| format!("sharing {}: {e}", path.display()))?;
            if !canonical.is_dir() {
                return Err(format!("sharing {}: not a folder", path.display()));
            }
            if fs::canonicalize(&data_dir).is_ok_and(|d| canonical.starts_with(d)) {
                return Err(format!("sharing {}: the data folder is never shared", path.display()));
            }
            Ok(canonical)
        });
        self.inner
            .st
            .borrow_mut()
            .tasks
            .insert(task, Waiting::Add { name: name.to_string(), hidden, done });
    }

    fn check_new_name(&self, name: &str) -> Result<(), String> {
        if !valid_folder_name(name) {
            return Err(format!(
                "sharing: invalid name {name:?} (one path component, no / \\ or control characters)"
            ));
        }
        let lower = name.to_lowercase();
        if let Some(f) =
            self.inner.st.borrow().folders.iter().find(|f| f.name.to_lowercase() == lower)
        {
            return Err(format!(
                "sharing: the name {name:?} is already used by {}",
                f.path.display()
            ));
        }
        Ok(())
    }

    /// Stops sharing the folder named `name` (compared case-insensitively);
    /// returns whether there was one. Its files stop being answered at once
    /// and leave the list with the pass this starts.
    pub fn remove(&self, name: &str) -> bool {
        let lower = name.to_lowercase();
        let removed = {
            let mut st = self.inner.st.borrow_mut();
            let before = st.folders.len();
            st.folders.retain(|f| f.name.to_lowercase() != lower);
            st.folders.len() != before
        };
        if removed {
            self.start_pass();
        }
        removed
    }

    /// Hashes one file on a helper thread; `done` gets the result on the
    /// worker. Nothing is stored: this is for a file anywhere (`dc.tth`).
    pub fn hash_file(&self, path: &Path, done: Box<dyn FnOnce(Result<HashedFile, HashError>)>) {
        let Some(job) = self.inner.job.get() else {
            return;
        };
        let path = path.to_path_buf();
        let task = self.inner.rt.submit(job, move || hash_file(&path));
        self.inner.st.borrow_mut().tasks.insert(task, Waiting::Tth(done));
    }

    /// Calls `f` with every [`ShareEvent`], on the worker thread.
    pub fn subscribe(&self, f: impl Fn(&ShareEvent) + 'static) {
        self.inner.observers.borrow_mut().push(Rc::new(f));
    }

    // ----- internals -----------------------------------------------------------

    fn start_pass(&self) {
        let folders = {
            let mut st = self.inner.st.borrow_mut();
            if st.stopping || st.thread_gone {
                return;
            }
            st.passing = true;
            st.folders.clone()
        };
        if self.inner.cmd.send(Cmd::Pass(folders)).is_err() {
            log::error!("sharing: the share thread is gone; the share is not updated");
            let mut st = self.inner.st.borrow_mut();
            st.passing = false;
            st.thread_gone = true;
        }
    }

    fn notify(&self, event: &ShareEvent) {
        let observers: Vec<Observer> = self.inner.observers.borrow().clone();
        for f in observers {
            f(event);
        }
    }

    /// Applies changes to the index now, or queues them while the list
    /// writer holds it.
    fn apply(&self, updates: Vec<Update>) {
        let mut st = self.inner.st.borrow_mut();
        let st = &mut *st;
        match Arc::get_mut(&mut st.index) {
            Some(index) => {
                for u in updates {
                    apply_one(index, u);
                }
            }
            None => st.queued.extend(updates),
        }
    }

    /// Writes the list on a helper thread (or once more after the running
    /// write).
    fn write_list(&self) {
        let Some(job) = self.inner.job.get() else { return };
        let mut st = self.inner.st.borrow_mut();
        if st.list_running {
            st.list_again = true;
            return;
        }
        st.list_running = true;
        st.list_again = false;
        let index = st.index.clone();
        let cid = self.inner.cid.borrow().clone();
        let dir = self.inner.data_dir.clone();
        let task = self.inner.rt.submit(job, move || write_list_file(&index, &cid, &dir));
        st.tasks.insert(task, Waiting::List);
    }

    fn list_written(&self, result: Result<PathBuf, String>) {
        let (again, summary) = {
            let mut st = self.inner.st.borrow_mut();
            let st = &mut *st;
            st.list_running = false;
            match result {
                Ok(path) => st.list_path = Some(path),
                Err(e) => log::error!("{e}"),
            }
            // The writer gave its clone back: apply what waited.
            let queued = std::mem::take(&mut st.queued);
            if let Some(index) = Arc::get_mut(&mut st.index) {
                for u in queued {
                    apply_one(index, u);
                }
            } else {
                st.queued = queued;
            }
            let summary = if st.passing {
                None
            } else {
                st.summary.take().map(|mut s| {
                    let tree = st.index.tree();
                    s.files = tree.shared_files();
                    s.size = tree.shared_size();
                    s.pending = tree.pending_files();
                    s.list = st.list_path.clone();
                    s
                })
            };
            (st.list_again, summary)
        };
        if again {
            self.write_list();
        }
        if let Some(s) = summary {
            self.notify(&ShareEvent::Updated(s));
        }
    }

    fn progress(&self, p: HashProgress, now: Instant, force: bool) {
        let emit = {
            let mut st = self.inner.st.borrow_mut();
            st.progress = p;
            st.hashing = p.files_done < p.files_total;
            let since = st.last_progress.map(|t| now.saturating_duration_since(t));
            if force || since.is_none_or(|d| d >= PROGRESS_EVERY) {
                st.last_progress = Some(now);
                st.progress_due = false;
                if let Some(t) = st.progress_timer.take() {
                    self.inner.rt.cancel_timer(t);
                }
                true
            } else {
                if !st.progress_due {
                    st.progress_due = true;
                    if let (Some(job), Some(d)) = (self.inner.job.get(), since) {
                        st.progress_timer =
                            Some(self.inner.rt.timer_after(job, PROGRESS_EVERY - d));
                    }
                }
                false
            }
        };
        if emit {
            self.notify(&ShareEvent::Progress(p));
        }
    }

    fn on_thread(&self, msg: FromThread, now: Instant) {
        match msg {
            FromThread::Index { index, problems } => {
                let mut st = self.inner.st.borrow_mut();
                st.index = Arc::from(index);
                st.queued.clear();
                st.problems = problems;
            }
            FromThread::Hashed { entries, failed, bytes } => {
                {
                    let mut st = self.inner.st.borrow_mut();
                    st.hashed += entries.len() as u64;
                    st.hashed_bytes += bytes;
                }
                let updates = entries
                    .into_iter()
                    .map(Update::Put)
                    .chain(failed.into_iter().map(Update::Remove))
                    .collect();
                self.apply(updates);
            }
            FromThread::Progress(p) => {
                let passing = self.inner.st.borrow().passing;
                if passing && p.files_done < p.files_total {
                    self.progress(p, now, false);
                }
            }
            FromThread::PassDone { hashed, failed, removed } => {
                let total = {
                    let mut st = self.inner.st.borrow_mut();
                    st.passing = false;
                    st.hashing = false;
                    st.summary = Some(UpdateSummary {
                        hashed,
                        failed,
                        removed,
                        problems: st.problems,
                        ..UpdateSummary::default()
                    });
                    st.progress
                };
                if hashed + failed > 0 {
                    // The last progress of the pass always comes.
                    let p = HashProgress {
                        files_done: total.files_total.max(hashed + failed),
                        files_total: total.files_total.max(hashed + failed),
                        bytes_done: total.bytes_total,
                        ..total
                    };
                    self.progress(p, now, true);
                    self.inner.st.borrow_mut().hashing = false;
                }
                self.write_list();
            }
            FromThread::Stopped => {
                self.inner.st.borrow_mut().thread_gone = true;
            }
        }
    }

    fn on_task(&self, done: TaskDone) {
        let waiting = self.inner.st.borrow_mut().tasks.remove(&done.task);
        match waiting {
            Some(Waiting::List) => {
                let result =
                    done.result.downcast::<Result<PathBuf, String>>().map(|b| *b).unwrap_or_else(
                        |_| Err("sharing: the list writer returned nothing".into()),
                    );
                self.list_written(result);
            }
            Some(Waiting::Tth(cb)) => {
                if let Ok(r) = done.result.downcast::<Result<HashedFile, HashError>>() {
                    cb(*r);
                }
            }
            Some(Waiting::Add { name, hidden, done: cb }) => {
                let checked =
                    done.result.downcast::<Result<PathBuf, String>>().map(|b| *b).unwrap_or_else(
                        |_| Err("sharing: the folder check returned nothing".into()),
                    );
                // The name may have been taken while the folder was checked.
                let result = checked.and_then(|path| {
                    self.check_new_name(&name)?;
                    self.inner.st.borrow_mut().folders.push(SharedFolder {
                        name: name.clone(),
                        path,
                        hidden,
                        follow_symlinks: false,
                    });
                    Ok(())
                });
                if result.is_ok() {
                    self.start_pass();
                }
                cb(result);
            }
            None => {}
        }
    }
}

fn apply_one(index: &mut ShareIndex, u: Update) {
    match u {
        Update::Put(entry) => {
            if let Err(e) = index.insert(entry) {
                log::warn!("sharing: {e}");
            }
        }
        Update::Remove(path) => {
            // Already gone is fine (a folder removed meanwhile).
            let _ = index.remove(&path);
        }
    }
}

/// Writes `files.xml.bz2` atomically (temporary file, fsync, rename).
fn write_list_file(index: &ShareIndex, cid: &str, dir: &Path) -> Result<PathBuf, String> {
    let path = dir.join(LIST_FILE);
    let what = |e: &dyn std::fmt::Display| format!("sharing: writing {}: {e}", path.display());
    let bytes = filelist::write_bz2(index.tree(), &ListOptions::full(cid)).map_err(|e| what(&e))?;
    fs::create_dir_all(dir).map_err(|e| what(&e))?;
    let tmp = dir.join(format!("{LIST_FILE}.tmp"));
    let mut f = fs::File::create(&tmp).map_err(|e| what(&e))?;
    f.write_all(&bytes).and_then(|()| f.sync_all()).map_err(|e| what(&e))?;
    drop(f);
    fs::rename(&tmp, &path).map_err(|e| what(&e))?;
    Ok(path)
}

// ----- the job ----------------------------------------------------------------

/// Owns the service: it lives as long as this job.
struct ShareJob {
    inner: Rc<Inner>,
    done: bool,
}

impl Job for ShareJob {
    fn poll(&mut self, cx: &mut Context<'_>) -> Step {
        if self.done {
            return Step::Done;
        }
        let service = ShareService { inner: self.inner.clone() };
        let now = cx.now();
        let due = {
            let st = self.inner.st.borrow();
            st.progress_due && st.progress_timer.is_some_and(|t| cx.fired(t))
        };
        if due {
            let p = {
                let mut st = self.inner.st.borrow_mut();
                st.progress_timer = None;
                st.progress_due = false;
                st.progress
            };
            if self.inner.st.borrow().passing {
                service.progress(p, now, true);
            }
        }
        while let Some(msg) = cx.recv() {
            let msg = match msg.downcast::<ThreadMsg>() {
                Ok(m) => {
                    service.on_thread(m.0, now);
                    continue;
                }
                Err(other) => other,
            };
            if let Ok(done) = msg.downcast::<TaskDone>() {
                service.on_task(*done);
            }
        }
        // After `stop`, wait for the share thread to commit what was hashed
        // (within the worker's shutdown grace).
        let st = self.inner.st.borrow();
        if st.stopping && st.thread_gone {
            self.done = true;
            return Step::Done;
        }
        Step::Pending
    }

    fn is_alive(&self) -> bool {
        !self.inner.st.borrow().stopping
    }

    fn stop(&mut self) {
        let mut st = self.inner.st.borrow_mut();
        st.stopping = true;
        if self.inner.cmd.send(Cmd::Stop).is_err() {
            st.thread_gone = true;
        }
    }

    fn name(&self) -> String {
        "share service".into()
    }
}

// ----- the share thread -------------------------------------------------------

/// How the share thread (and helper threads) reach the job.
#[derive(Clone)]
struct Link {
    worker: WorkerHandle,
    job: JobId,
}

impl Link {
    fn send(&self, msg: FromThread) {
        // An error means the worker is gone: nobody is left to tell.
        let _ = self.worker.send(self.job, ThreadMsg(msg));
    }
}

fn share_thread(db: &Path, data_dir: &Path, rx: &Receiver<Cmd>, link: &Link, helpers: &HelperPool) {
    let mut store = match Store::open(db) {
        Ok(s) => s,
        Err(e) => {
            log::error!("{e}; hashes are kept in memory only and computed again at the next start");
            match Store::open_in_memory() {
                Ok(s) => s,
                Err(e) => {
                    log::error!("{e}; nothing is shared");
                    link.send(FromThread::Stopped);
                    return;
                }
            }
        }
    };
    let mut next: Option<Vec<SharedFolder>> = None;
    loop {
        let folders = match next.take() {
            Some(f) => f,
            None => match rx.recv() {
                Ok(Cmd::Pass(f)) => f,
                Ok(Cmd::Stop) | Err(_) => break,
            },
        };
        match run_pass(&mut store, &folders, data_dir, rx, link, helpers) {
            PassEnd::Done => {}
            PassEnd::Again(f) => next = Some(f),
            PassEnd::Stop => break,
        }
    }
    link.send(FromThread::Stopped);
}

enum PassEnd {
    Done,
    Again(Vec<SharedFolder>),
    Stop,
}

/// The newest request waiting, if any (passes coalesce: only the last one
/// counts).
fn check_commands(rx: &Receiver<Cmd>) -> Option<PassEnd> {
    let mut end = None;
    loop {
        match rx.try_recv() {
            Ok(Cmd::Pass(f)) => end = Some(PassEnd::Again(f)),
            Ok(Cmd::Stop) | Err(TryRecvError::Disconnected) => return Some(PassEnd::Stop),
            Err(TryRecvError::Empty) => return end,
        }
    }
}

fn scan_folders(folders: &[SharedFolder], data_dir: &Path) -> ScanResult {
    let mut all = ScanResult::default();
    for hidden in [false, true] {
        let roots: Vec<ShareRoot> = folders
            .iter()
            .filter(|f| f.hidden == hidden)
            .map(|f| ShareRoot {
                virtual_name: f.name.clone(),
                path: f.path.clone(),
                follow_symlinks: f.follow_symlinks,
            })
            .collect();
        if roots.is_empty() {
            continue;
        }
        let opts = ScanOptions { include_hidden: hidden, exclude: vec![data_dir.to_path_buf()] };
        match scan(&roots, &opts) {
            Ok(r) => {
                all.files.extend(r.files);
                all.dirs.extend(r.dirs);
                all.problems.extend(r.problems);
                all.incomplete.extend(r.incomplete);
                all.links_skipped += r.links_skipped;
            }
            // Names are checked before they reach the thread.
            Err(e) => log::error!("sharing: {e}"),
        }
    }
    all
}

fn secs(mtime_ns: i64) -> u64 {
    u64::try_from(mtime_ns.div_euclid(1_000_000_000)).unwrap_or(0)
}

fn run_pass(
    store: &mut Store,
    folders: &[SharedFolder],
    data_dir: &Path,
    rx: &Receiver<Cmd>,
    link: &Link,
    helpers: &HelperPool,
) -> PassEnd {
    let scanned = scan_folders(folders, data_dir);
    let plan = match plan(store, &scanned) {
        Ok(p) => p,
        Err(e) => {
            log::error!("sharing: comparing the share with the hash store: {e}");
            link.send(FromThread::PassDone { hashed: 0, failed: 0, removed: 0 });
            return PassEnd::Done;
        }
    };
    let mut tths = vec![None; scanned.files.len()];
    for &(i, tth) in &plan.known {
        tths[i] = Some(tth);
    }
    let entries: Vec<ShareEntry> = scanned
        .files
        .iter()
        .zip(&tths)
        .map(|(f, tth)| ShareEntry {
            path: f.virtual_path.clone(),
            size: f.size,
            tth: *tth,
            mtime: secs(f.mtime),
        })
        .collect();
    let (tree, _collisions) = ShareTree::from_entries(entries);
    link.send(FromThread::Index {
        index: Box::new(ShareIndex::new(tree)),
        problems: scanned.problems.len() as u64,
    });
    if let Some(end) = check_commands(rx) {
        return end;
    }

    // Virtual paths of each file to hash (a file may be shared twice).
    let mut by_path: HashMap<&Path, Vec<usize>> = HashMap::new();
    for &i in &plan.to_hash {
        by_path.entry(scanned.files[i].fs_path.as_path()).or_default().push(i);
    }
    let last_sent = Arc::new(Mutex::new(None::<Instant>));
    let mut batch = HashBatch::new(plan.files_to_hash(&scanned.files)).on_progress({
        let link = link.clone();
        move |p| {
            let mut last = match last_sent.lock() {
                Ok(l) => l,
                Err(poisoned) => poisoned.into_inner(),
            };
            if last.is_none_or(|t: Instant| t.elapsed() >= PROGRESS_SEND_EVERY) {
                *last = Some(Instant::now());
                link.send(FromThread::Progress(p));
            }
        }
    });
    if batch.progress().files_total > 0 {
        link.send(FromThread::Progress(batch.progress()));
    }
    let mut pending: Vec<HashedFile> = Vec::new();
    let mut failed: Vec<String> = Vec::new();
    let (mut hashed_n, mut failed_n) = (0u64, 0u64);
    let mut last_flush = Instant::now();
    let mut end = None;
    loop {
        if end.is_none() {
            if let Some(e) = check_commands(rx) {
                // Keep what is hashed; the running files end soon.
                batch.cancel();
                end = Some(e);
            }
        }
        let wait = STORE_BATCH_TIME.saturating_sub(last_flush.elapsed()).min(COMMAND_CHECK);
        match batch.next_timeout(helpers, wait) {
            Some(Ok(h)) => {
                hashed_n += 1;
                pending.push(h);
            }
            Some(Err(HashError::Cancelled { .. })) => {}
            Some(Err(e)) => {
                log::warn!("{e}");
                failed_n += 1;
                for &i in by_path.get(e.path()).into_iter().flatten() {
                    failed.push(scanned.files[i].virtual_path.clone());
                }
            }
            None if batch.is_finished() => break,
            None => {}
        }
        if pending.len() >= STORE_BATCH_FILES
            || (!pending.is_empty() || !failed.is_empty())
                && last_flush.elapsed() >= STORE_BATCH_TIME
        {
            flush(store, &mut pending, &mut failed, &by_path, &scanned, link);
            last_flush = Instant::now();
        }
    }
    flush(store, &mut pending, &mut failed, &by_path, &scanned, link);
    if let Some(end) = end {
        return end;
    }
    let removed = match store.remove(plan.gone.iter().map(PathBuf::as_path)) {
        Ok(n) => n as u64,
        Err(e) => {
            log::error!("sharing: {e}");
            0
        }
    };
    link.send(FromThread::Progress(batch.progress()));
    link.send(FromThread::PassDone { hashed: hashed_n, failed: failed_n, removed });
    PassEnd::Done
}

/// Commits hashed files to the store, then hands them to the job.
fn flush(
    store: &mut Store,
    pending: &mut Vec<HashedFile>,
    failed: &mut Vec<String>,
    by_path: &HashMap<&Path, Vec<usize>>,
    scanned: &ScanResult,
    link: &Link,
) {
    if pending.is_empty() && failed.is_empty() {
        return;
    }
    if let Err(e) = store.put_many(pending.iter()) {
        // The files stay shared for this session; the next start hashes them
        // again.
        log::error!("sharing: {e}");
    }
    let mut entries = Vec::with_capacity(pending.len());
    let mut bytes = 0;
    for h in pending.drain(..) {
        bytes += h.size;
        for &i in by_path.get(h.path.as_path()).into_iter().flatten() {
            entries.push(ShareEntry {
                path: scanned.files[i].virtual_path.clone(),
                size: h.size,
                tth: Some(h.tree.root),
                mtime: secs(h.mtime),
            });
        }
    }
    link.send(FromThread::Hashed { entries, failed: std::mem::take(failed), bytes });
}
