//! [`Downloads`], the service: the queue in memory and in SQLite, the
//! scheduler job, the helper results folded into verified blocks, the final
//! move, file lists, and the events it sends.
//!
//! The fetches (`fetch.rs`) report back to it; what a connection fetches next
//! is in `assign.rs`, above both, so this module does not import `fetch`.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::hub::{HubId, HubState, Hubs, Protocol as HubProtocol, UserMode};
use crate::peer::{ConnectionAsk, DownloadSide, Fetch, PeerUser, Peers};
use crate::proto::tth::{TigerTree, Tth};
use crate::runtime::{Context, Job, JobId, Runtime, Step, TaskDone, TaskId, TimerId};
use crate::share::filelist::{read_listing, Listing};
use crate::transfer::limit::TokenBucket;
use crate::transfer::place::{self, safe_relative};
use crate::transfer::queue::{Item, ItemState, NewItem, Priority, QueueStore, Source};
use crate::transfer::segments::{Segments, SourceId};
use crate::transfer::slots::ConnKey;
use crate::transfer::verify::piece_roots;

use super::flow::{BatchDone, Flow};
use super::model::{
    key_of, DownloadEvent, DownloadOptions, ItemId, ItemInfo, NewDownload, UserKey, BATCH,
    CONNECT_TIMEOUT, LIST_LIMITS, MAX_IN_FLIGHT, PROGRESS_EVERY, RETRY_FIRST, RETRY_MAX,
    SYNC_EVERY,
};

/// Spare batch buffers kept for reuse.
const SPARE_BUFFERS: usize = 24;

type Waiter = Box<dyn FnOnce(Result<PathBuf, String>)>;
type ListWaiter = Box<dyn FnOnce(Result<Rc<Listing>, String>)>;
type Subscriber = Rc<dyn Fn(&DownloadEvent)>;

/// One queued item in memory.
pub(super) struct Run {
    pub(super) item: Item,
    pub(super) tree: Option<Rc<TigerTree>>,
    pub(super) segments: Option<Segments>,
    pub(super) tmp: PathBuf,
    /// Sources not to ask again for this item (bad data, do not have it).
    pub(super) dropped: HashSet<UserKey>,
    /// Leaves fetches running (every connection that comes before the
    /// leaves asks for them too: a few KiB, and no source waits idle).
    pub(super) leaves_running: u32,
    /// Bytes received per source this run.
    bytes_from: HashMap<UserKey, u64>,
    /// Bytes received this run (not those verified before a restart).
    pub(super) fetched: u64,
    /// Connections on it: source id → user.
    pub(super) running: HashMap<SourceId, UserKey>,
    /// Measured speeds per user.
    pub(super) speed: HashMap<UserKey, u64>,
    last_event: Option<Instant>,
    waiters: Vec<Waiter>,
    /// Where it went, once done.
    done_path: Option<PathBuf>,
    /// The temporary file, open while segments are written.
    pub(super) file: Option<Arc<File>>,
    /// Verified blocks not yet synced and recorded.
    unsynced: Vec<Range<u64>>,
    unsynced_bytes: u64,
    /// A sync is running on a helper.
    syncing: bool,
}

/// A file list asked for.
pub(super) struct ListWant {
    pub(super) id: u64,
    pub(super) user: UserKey,
    pub(super) dir: Option<String>,
    pub(super) running: bool,
    waiters: Vec<ListWaiter>,
}

#[derive(Default)]
pub(super) struct UserState {
    /// Download connections open with this user.
    pub(super) conns: u32,
    /// A connection was asked for, at this time.
    pub(super) asked: Option<Instant>,
    /// Not before this time again.
    pub(super) retry_at: Option<Instant>,
    pub(super) failures: u32,
    last_error: Option<String>,
}

pub(super) struct Inner {
    rt: Runtime,
    hubs: Hubs,
    peers: Peers,
    store: RefCell<Option<QueueStore>>,
    pub(super) opts: RefCell<DownloadOptions>,
    pub(super) runs: RefCell<BTreeMap<ItemId, Run>>,
    pub(super) lists: RefCell<Vec<ListWant>>,
    pub(super) users: RefCell<HashMap<UserKey, UserState>>,
    /// ADC tokens of our connection requests.
    tokens: RefCell<HashMap<String, (UserKey, Instant)>>,
    /// Download connections: key → (user, item being fetched).
    pub(super) conns: RefCell<HashMap<ConnKey, UserKey>>,
    limiter: RefCell<TokenBucket>,
    subscribers: RefCell<Vec<Subscriber>>,
    next_list: Cell<u64>,
    /// The scheduler job (owner of helper tasks).
    job: Cell<Option<JobId>>,
    /// The scheduler should look for work at its next poll.
    poked: Cell<bool>,
    /// Tasks on the helpers, by id.
    tasks: RefCell<HashMap<TaskId, Task>>,
    /// Bytes of batches at the helpers, all connections together.
    in_flight: Cell<u64>,
    /// Connections waiting for room under [`MAX_IN_FLIGHT`].
    waiting: RefCell<Vec<JobId>>,
    /// Batch buffers to reuse.
    spare: RefCell<Vec<Vec<u8>>>,
    /// Finished items kept for `wait` and `info` after they left the run
    /// set (until restart).
    finished: RefCell<BTreeMap<ItemId, ItemInfo>>,
}

/// What a helper task is doing for the service.
enum Task {
    /// Reading a file list (its id).
    List(u64),
    /// Writing and hashing one batch of a segment.
    Batch(Rc<RefCell<Flow>>),
    /// Syncing an item's file before recording these verified ranges.
    Sync(ItemId, Vec<Range<u64>>),
}

/// The downloads service; see the module documentation. A cheap `Rc`
/// handle.
#[derive(Clone)]
pub struct Downloads {
    pub(super) inner: Rc<Inner>,
}

impl std::fmt::Debug for Downloads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Downloads").field("items", &self.inner.runs.borrow().len()).finish()
    }
}

/// The wait before try number `failures + 1`.
fn backoff(failures: u32) -> Duration {
    let d = RETRY_FIRST.saturating_mul(1 << failures.min(8));
    d.min(RETRY_MAX)
}

impl Downloads {
    /// Starts the service: opens the queue in `data_dir` (in memory when
    /// `None`), loads the queued items, registers with the peer layer and
    /// starts the scheduler.
    pub fn start(
        rt: &Runtime,
        hubs: &Hubs,
        peers: &Peers,
        data_dir: Option<&Path>,
        opts: DownloadOptions,
    ) -> Downloads {
        let store = match data_dir {
            Some(d) => QueueStore::open(d),
            None => QueueStore::in_memory(),
        };
        let store = match store {
            Ok(s) => Some(s),
            Err(e) => {
                log::error!(target: "download", "the download queue cannot be opened: {e}; downloads are off");
                None
            }
        };
        let now = rt.now();
        let dl = Downloads {
            inner: Rc::new(Inner {
                rt: rt.clone(),
                hubs: hubs.clone(),
                peers: peers.clone(),
                store: RefCell::new(store),
                limiter: RefCell::new(TokenBucket::new(opts.limit, now)),
                opts: RefCell::new(opts),
                runs: RefCell::new(BTreeMap::new()),
                lists: RefCell::new(Vec::new()),
                users: RefCell::new(HashMap::new()),
                tokens: RefCell::new(HashMap::new()),
                conns: RefCell::new(HashMap::new()),
                subscribers: RefCell::new(Vec::new()),
                next_list: Cell::new(1),
                job: Cell::new(None),
                poked: Cell::new(false),
                tasks: RefCell::new(HashMap::new()),
                in_flight: Cell::new(0),
                waiting: RefCell::new(Vec::new()),
                spare: RefCell::new(Vec::new()),
                finished: RefCell::new(BTreeMap::new()),
            }),
        };
        dl.load();
        let side: Rc<dyn DownloadSide> = Rc::new(Side(Rc::downgrade(&dl.inner)));
        peers.set_download_side(Some(side));
        let weak = Rc::downgrade(&dl.inner);
        let job = rt.spawn(Scheduler { dl: weak, tick: None, stopped: false });
        dl.inner.job.set(Some(job));
        dl
    }

    fn load(&self) {
        let items = match self.inner.store.borrow().as_ref().map(QueueStore::items) {
            Some(Ok(items)) => items,
            Some(Err(e)) => {
                log::error!(target: "download", "reading the download queue: {e}");
                return;
            }
            None => return,
        };
        let mut runs = self.inner.runs.borrow_mut();
        for item in items {
            if item.state != ItemState::Queued {
                continue;
            }
            let verified = item.verified.len();
            if verified > 0 {
                log::info!(target: "download", "resuming {}: {verified} of {} bytes already verified", item.name.display(), item.size);
            }
            let run = Run::new(item);
            runs.insert(run.item.id, run);
        }
    }

    /// Tells `f` about every download event from now on.
    pub fn subscribe(&self, f: impl Fn(&DownloadEvent) + 'static) {
        self.inner.subscribers.borrow_mut().push(Rc::new(f));
    }

    pub(super) fn emit(&self, ev: &DownloadEvent) {
        let subs = self.inner.subscribers.borrow().clone();
        for s in subs {
            s(ev);
        }
    }

    /// The options.
    pub fn options(&self) -> DownloadOptions {
        self.inner.opts.borrow().clone()
    }

    /// Changes the options (a reloaded configuration).
    pub fn reconfigure(&self, opts: DownloadOptions) {
        let now = self.inner.rt.now();
        self.inner.limiter.borrow_mut().set_rate(opts.limit, now);
        *self.inner.opts.borrow_mut() = opts;
    }

    /// Changes the download limit (bytes per second; 0 = none).
    pub fn set_limit(&self, rate: u64) {
        let now = self.inner.rt.now();
        self.inner.limiter.borrow_mut().set_rate(rate, now);
        self.inner.opts.borrow_mut().limit = rate;
    }

    // ----- the queue ---------------------------------------------------------

    /// Queues a file; an item with that TTH already queued gains the new
    /// sources and is returned. Errors name what is wrong.
    pub fn add(&self, d: NewDownload) -> Result<ItemId, String> {
        if d.size == 0 {
            return Err("an empty file needs no download".into());
        }
        let name = safe_relative(&d.name).map_err(|e| format!("the name {:?}: {e}", d.name))?;
        let base = self.inner.opts.borrow().dir.clone();
        let dir = match (&d.abs_dir, &d.dir) {
            (Some(abs), _) => abs.clone(),
            (None, Some(rel)) if !rel.trim_matches(['/', '\\']).is_empty() => {
                base.join(safe_relative(rel).map_err(|e| format!("the folder {rel:?}: {e}"))?)
            }
            _ => base,
        };
        // The name may hold folders: they go under `dir`.
        let (dir, name) = match name.parent().filter(|p| !p.as_os_str().is_empty()) {
            Some(p) => (dir.join(p), PathBuf::from(name.file_name().unwrap_or_default())),
            None => (dir, name),
        };
        let existing = self.find(&d.tth);
        if let Some(id) = existing {
            for s in &d.sources {
                self.add_source(id, s.clone())?;
            }
            return Ok(id);
        }
        let id = {
            let mut store = self.inner.store.borrow_mut();
            let store = store.as_mut().ok_or("the download queue is not available")?;
            let id = store
                .add(&NewItem { tth: d.tth, size: d.size, name, dir, priority: d.priority })
                .map_err(|e| e.to_string())?;
            for s in &d.sources {
                store.add_source(id, s).map_err(|e| e.to_string())?;
            }
            id
        };
        let item = self.inner.store.borrow().as_ref().and_then(|s| s.item(id).ok().flatten());
        let Some(item) = item else { return Err("the queued item cannot be read back".into()) };
        log::info!(target: "download", "queued {} ({} bytes, {} source{})", item.target().display(), item.size, item.sources.len(), if item.sources.len() == 1 { "" } else { "s" });
        self.inner.runs.borrow_mut().insert(id, Run::new(item));
        self.emit(&DownloadEvent::QueueChanged);
        self.poke();
        Ok(id)
    }

    /// The queued (not finished) item with this TTH.
    pub fn find(&self, tth: &Tth) -> Option<ItemId> {
        self.inner.runs.borrow().values().find(|r| r.item.tth == *tth).map(|r| r.item.id)
    }

    /// Adds a source to an item.
    pub fn add_source(&self, id: ItemId, source: Source) -> Result<(), String> {
        let mut runs = self.inner.runs.borrow_mut();
        let run = runs.get_mut(&id).ok_or("no such queued item")?;
        if run.item.sources.contains(&source) {
            return Ok(());
        }
        if let Some(store) = self.inner.store.borrow_mut().as_mut() {
            store.add_source(id, &source).map_err(|e| e.to_string())?;
        }
        run.item.sources.push(source);
        drop(runs);
        self.poke();
        Ok(())
    }

    /// Removes an item (its temporary file too); waiters get an error.
    pub fn cancel(&self, id: ItemId) -> Result<(), String> {
        let run = self.inner.runs.borrow_mut().remove(&id).ok_or("no such queued item")?;
        if let Some(store) = self.inner.store.borrow_mut().as_mut() {
            let _ = store.remove(id);
        }
        let _ = std::fs::remove_file(&run.tmp);
        log::info!(target: "download", "cancelled {}", run.item.target().display());
        for w in run.waiters {
            w(Err("the download was cancelled".into()));
        }
        self.emit(&DownloadEvent::QueueChanged);
        Ok(())
    }

    /// Every item: queued ones, then those finished since start.
    pub fn items(&self) -> Vec<ItemInfo> {
        let mut v: Vec<ItemInfo> = self.inner.runs.borrow().values().map(Run::info).collect();
        v.extend(self.inner.finished.borrow().values().cloned());
        v
    }

    /// One item.
    pub fn info(&self, id: ItemId) -> Option<ItemInfo> {
        if let Some(r) = self.inner.runs.borrow().get(&id) {
            return Some(r.info());
        }
        self.inner.finished.borrow().get(&id).cloned()
    }

    /// Calls `f` when the item is done (its path) or failed or cancelled.
    pub fn wait(&self, id: ItemId, f: Waiter) {
        if let Some(r) = self.inner.runs.borrow_mut().get_mut(&id) {
            r.waiters.push(f);
            return;
        }
        match self.inner.finished.borrow().get(&id) {
            Some(i) if i.state == "done" => f(i.path.clone().ok_or("no path".to_string())),
            Some(i) => f(Err(i.error.clone().unwrap_or_else(|| "failed".into()))),
            None => f(Err("no such download".into())),
        }
    }

    // ----- file lists --------------------------------------------------------

    /// Downloads a user's file list (`dir`: a partial list of that folder)
    /// and calls `f` with it read, or why not.
    pub fn browse(&self, hub_url: &str, user: &str, dir: Option<String>, f: ListWaiter) {
        let key = (hub_url.to_string(), user.to_string());
        let mut lists = self.inner.lists.borrow_mut();
        if let Some(l) = lists.iter_mut().find(|l| l.user == key && l.dir == dir) {
            l.waiters.push(f);
            return;
        }
        let id = self.inner.next_list.get();
        self.inner.next_list.set(id + 1);
        lists.push(ListWant { id, user: key, dir, running: false, waiters: vec![f] });
        drop(lists);
        self.poke();
    }

    fn take_list(&self, id: u64) -> Option<ListWant> {
        let mut lists = self.inner.lists.borrow_mut();
        let i = lists.iter().position(|l| l.id == id)?;
        Some(lists.remove(i))
    }

    pub(crate) fn list_received(&self, id: u64, bytes: Vec<u8>) {
        let Some(job) = self.inner.job.get() else { return };
        let task = self.inner.rt.submit(job, move || {
            read_listing(std::io::Cursor::new(bytes), &LIST_LIMITS)
                .map_err(|e| format!("reading the file list: {e}"))
        });
        self.inner.tasks.borrow_mut().insert(task, Task::List(id));
    }

    /// A helper task came back.
    fn task_done(&self, done: TaskDone) {
        let Some(task) = self.inner.tasks.borrow_mut().remove(&done.task) else { return };
        match task {
            Task::List(id) => self.list_parsed(id, done),
            Task::Batch(flow) => match done.result.downcast::<BatchDone>() {
                Ok(b) => self.batch_done(&flow, *b),
                Err(_) => log::error!(target: "download", "a batch task returned something else"),
            },
            Task::Sync(id, ranges) => match done.result.downcast::<std::io::Result<()>>() {
                Ok(r) => self.synced(id, ranges, *r),
                Err(_) => log::error!(target: "download", "a sync task returned something else"),
            },
        }
    }

    fn list_parsed(&self, id: u64, done: TaskDone) {
        let result = match done.result.downcast::<Result<Listing, String>>() {
            Ok(r) => r.map(Rc::new),
            Err(_) => Err("the list task returned something else".into()),
        };
        let Some(want) = self.take_list(id) else { return };
        if let Ok(l) = &result {
            log::info!(target: "download", "file list of {}: {} files", want.user.1, l.root.total_files());
        }
        for w in want.waiters {
            w(result.clone());
        }
    }

    pub(crate) fn list_failed(&self, id: u64, why: &str) {
        if let Some(want) = self.take_list(id) {
            for w in want.waiters {
                w(Err(why.to_string()));
            }
        }
    }

    pub(crate) fn list_retry(&self, id: u64, why: &str) {
        let user = {
            let mut lists = self.inner.lists.borrow_mut();
            let Some(l) = lists.iter_mut().find(|l| l.id == id) else { return };
            l.running = false;
            l.user.clone()
        };
        self.user_failed(&user, why);
    }

    // ----- what fetches report ------------------------------------------------

    pub(crate) fn segment_end(&self, id: ItemId, source: SourceId) -> Option<u64> {
        self.inner.runs.borrow().get(&id)?.segments.as_ref()?.end_of(source)
    }

    pub(crate) fn progress(
        &self,
        id: ItemId,
        source: SourceId,
        user: &UserKey,
        pos: u64,
        n: u64,
        now: Instant,
    ) {
        let mut runs = self.inner.runs.borrow_mut();
        let Some(run) = runs.get_mut(&id) else { return };
        run.fetched += n;
        *run.bytes_from.entry(user.clone()).or_default() += n;
        if let Some(s) = run.segments.as_mut() {
            s.progress(source, pos, 0);
        }
        let due = run.last_event.is_none_or(|t| now.saturating_duration_since(t) >= PROGRESS_EVERY);
        if due {
            run.last_event = Some(now);
            let info = run.info();
            drop(runs);
            self.emit(&DownloadEvent::Progress(info));
        }
    }

    // ----- batches at the helpers -----------------------------------------------

    /// An empty batch buffer (reused when one came back).
    pub(super) fn spare_buffer(&self) -> Vec<u8> {
        self.inner.spare.borrow_mut().pop().unwrap_or_else(|| Vec::with_capacity(BATCH))
    }

    /// Whether a connection may read more now; if not, `job` is woken when
    /// a batch comes back.
    pub(super) fn room_for_batches(&self, job: JobId) -> bool {
        if self.inner.in_flight.get() < MAX_IN_FLIGHT {
            return true;
        }
        let mut waiting = self.inner.waiting.borrow_mut();
        if !waiting.contains(&job) {
            waiting.push(job);
        }
        false
    }

    /// Hands one batch of `flow`'s segment, starting at byte `start`, to a
    /// helper: written into `file`, its pieces hashed.
    pub(super) fn hash_batch(
        &self,
        flow: &Rc<RefCell<Flow>>,
        file: &Arc<File>,
        start: u64,
        bytes: Vec<u8>,
    ) {
        let len = bytes.len() as u64;
        let (item, piece) = {
            let mut f = flow.borrow_mut();
            f.in_flight += len;
            f.pending.insert(start, start + len);
            (f.item, f.assembler.piece())
        };
        if let Some(s) =
            self.inner.runs.borrow_mut().get_mut(&item).and_then(|r| r.segments.as_mut())
        {
            s.received(start..start + len);
        }
        self.inner.in_flight.set(self.inner.in_flight.get() + len);
        let file = file.clone();
        let task = move || {
            use std::os::unix::fs::FileExt;
            let roots = match file.write_all_at(&bytes, start) {
                Ok(()) => Ok(piece_roots(piece, &bytes)),
                Err(e) => Err(format!("writing bytes {start}.. of the temporary file: {e}")),
            };
            BatchDone { start, roots, buf: bytes }
        };
        match self.inner.job.get() {
            Some(job) => {
                let id = self.inner.rt.submit(job, task);
                self.inner.tasks.borrow_mut().insert(id, Task::Batch(flow.clone()));
            }
            // No scheduler (never after start): do it here.
            None => self.batch_done(flow, task()),
        }
    }

    /// A batch came back: its blocks are checked, verified ones recorded
    /// (after a sync), a bad one drops its source.
    fn batch_done(&self, flow: &Rc<RefCell<Flow>>, done: BatchDone) {
        let BatchDone { start, roots, mut buf } = done;
        let len = buf.len() as u64;
        buf.clear();
        {
            let mut spare = self.inner.spare.borrow_mut();
            if spare.len() < SPARE_BUFFERS {
                spare.push(buf);
            }
        }
        self.inner.in_flight.set(self.inner.in_flight.get().saturating_sub(len));
        if self.inner.in_flight.get() < MAX_IN_FLIGHT {
            for job in self.inner.waiting.borrow_mut().drain(..) {
                self.inner.rt.wake(job);
            }
        }
        let (item, source, user) = {
            let mut f = flow.borrow_mut();
            f.in_flight = f.in_flight.saturating_sub(len);
            (f.item, f.source, f.user.clone())
        };
        let roots = match roots {
            Ok(r) => r,
            Err(why) => {
                log::error!(target: "download", "{why}");
                flow.borrow_mut().stop.get_or_insert(why);
                return self.flow_settled(flow);
            }
        };
        let tree = match self.inner.runs.borrow().get(&item).and_then(|r| r.tree.clone()) {
            Some(t) => t,
            // Cancelled meanwhile.
            None => return,
        };
        let checks = flow.borrow_mut().assembler.add(&tree, start, &roots);
        let mut complete = false;
        for c in checks {
            flow.borrow_mut().pending.remove(c.range.start, c.range.end);
            if c.ok {
                let mut runs = self.inner.runs.borrow_mut();
                let Some(run) = runs.get_mut(&item) else { return };
                if let Some(s) = run.segments.as_mut() {
                    s.block_verified(c.range.clone());
                    complete = s.is_complete();
                }
                run.unsynced_bytes += c.range.end - c.range.start;
                run.unsynced.push(c.range);
            } else {
                let first = {
                    let mut f = flow.borrow_mut();
                    let first = f.stop.is_none();
                    f.stop = Some(format!(
                        "block {} (bytes {}..{}) of {} failed its leaf hash: the source is dropped for this file",
                        c.index, c.range.start, c.range.end, tree.root
                    ));
                    f.reported = true;
                    first
                };
                // A source is reported once: blocks of it still at the
                // helpers when it was dropped (a segment it was given before
                // its first bad block came back) only free their bytes.
                let known =
                    self.inner.runs.borrow().get(&item).is_some_and(|r| r.dropped.contains(&user));
                if first && !known {
                    self.block_failed(item, source, &user, c.range);
                } else if let Some(s) =
                    self.inner.runs.borrow_mut().get_mut(&item).and_then(|r| r.segments.as_mut())
                {
                    s.block_failed(source, c.range);
                }
            }
        }
        self.flow_settled(flow);
        self.maybe_sync(item, false);
        if complete {
            self.check_complete(item);
        }
    }

    /// Once a fetch is over and its batches are all back, what it left
    /// pending (incomplete blocks) is free again, and its verified blocks
    /// are synced and recorded.
    pub(super) fn flow_settled(&self, flow: &Rc<RefCell<Flow>>) {
        let (item, leftover) = {
            let mut f = flow.borrow_mut();
            if !f.over || f.in_flight > 0 {
                return;
            }
            (f.item, std::mem::take(&mut f.pending))
        };
        if !leftover.is_empty() {
            if let Some(s) =
                self.inner.runs.borrow_mut().get_mut(&item).and_then(|r| r.segments.as_mut())
            {
                for &(a, b) in leftover.ranges() {
                    s.abandon(a..b);
                }
            }
            self.poke();
        }
        self.maybe_sync(item, true);
        self.release_file(item);
    }

    /// Closes an item's temporary file when nothing uses it (no segment
    /// running, nothing at the helpers, no sync): a queue of many stalled
    /// items holds no file descriptors. The next segment opens it again.
    fn release_file(&self, id: ItemId) {
        let mut runs = self.inner.runs.borrow_mut();
        let Some(run) = runs.get_mut(&id) else { return };
        let idle = run.running.is_empty()
            && !run.syncing
            && run.unsynced.is_empty()
            && run.segments.as_ref().is_none_or(|s| s.pending() == 0);
        if idle {
            run.file = None;
        }
    }

    /// Syncs the item's file on a helper, then records the verified ranges:
    /// when [`SYNC_EVERY`] bytes wait, or when `now` and any do.
    fn maybe_sync(&self, id: ItemId, now: bool) {
        let mut runs = self.inner.runs.borrow_mut();
        let Some(run) = runs.get_mut(&id) else { return };
        if run.syncing || run.unsynced.is_empty() || (!now && run.unsynced_bytes < SYNC_EVERY) {
            return;
        }
        let (Some(file), Some(job)) = (run.file.clone(), self.inner.job.get()) else { return };
        let ranges = std::mem::take(&mut run.unsynced);
        run.unsynced_bytes = 0;
        run.syncing = true;
        drop(runs);
        let task = self.inner.rt.submit(job, move || file.sync_data());
        self.inner.tasks.borrow_mut().insert(task, Task::Sync(id, ranges));
    }

    /// A sync came back: the ranges it covered are recorded.
    fn synced(&self, id: ItemId, ranges: Vec<Range<u64>>, result: std::io::Result<()>) {
        {
            let mut runs = self.inner.runs.borrow_mut();
            // A finished or cancelled item left the queue: nothing to record.
            let Some(run) = runs.get_mut(&id) else { return };
            run.syncing = false;
            if let Err(e) = result {
                log::error!(target: "download", "syncing {}: {e}; its verified bytes are not recorded", run.tmp.display());
                return;
            }
        }
        if let Some(store) = self.inner.store.borrow_mut().as_mut() {
            for r in &ranges {
                if let Err(e) = store.mark_verified(id, r.start, r.end) {
                    log::warn!(target: "download", "recording verified bytes: {e}");
                }
            }
        }
        self.maybe_sync(id, false);
        self.release_file(id);
    }

    pub(crate) fn block_failed(
        &self,
        id: ItemId,
        source: SourceId,
        user: &UserKey,
        range: Range<u64>,
    ) {
        let mut runs = self.inner.runs.borrow_mut();
        let Some(run) = runs.get_mut(&id) else { return };
        log::warn!(target: "download", "{}: bytes {}..{} from {} failed their leaf hash; that source is dropped for this file", run.item.name.display(), range.start, range.end, user.1);
        if let Some(s) = run.segments.as_mut() {
            s.block_failed(source, range);
        }
        run.running.remove(&source);
        run.dropped.insert(user.clone());
        let info = run.info();
        drop(runs);
        self.emit(&DownloadEvent::Failed {
            item: info,
            reason: format!("{} sent a block that failed its leaf hash", user.1),
            final_: false,
        });
        self.poke();
    }

    pub(crate) fn segment_done(
        &self,
        id: ItemId,
        source: SourceId,
        user: &UserKey,
        bytes: u64,
        secs: f64,
    ) {
        {
            let mut runs = self.inner.runs.borrow_mut();
            let Some(run) = runs.get_mut(&id) else { return };
            if secs > 0.05 {
                run.speed.insert(user.clone(), (bytes as f64 / secs) as u64);
            }
            if let Some(s) = run.segments.as_mut() {
                s.finish(source);
            }
            run.running.remove(&source);
        }
        self.release_file(id);
        self.check_complete(id);
    }

    pub(crate) fn segment_failed(
        &self,
        id: ItemId,
        source: SourceId,
        user: &UserKey,
        why: &str,
        lacks: bool,
    ) {
        let mut runs = self.inner.runs.borrow_mut();
        let Some(run) = runs.get_mut(&id) else { return };
        if let Some(s) = run.segments.as_mut() {
            s.finish(source);
        }
        if run.running.remove(&source).is_none() {
            // Its end was reported already (a bad block ended it).
            return;
        }
        if lacks {
            run.dropped.insert(user.clone());
        }
        log::info!(target: "download", "{} from {}: {why}", run.item.name.display(), user.1);
        let info = run.info();
        drop(runs);
        self.emit(&DownloadEvent::Failed { item: info, reason: why.to_string(), final_: false });
        self.release_file(id);
        self.check_complete(id);
    }

    pub(crate) fn leaves_done(&self, id: ItemId, user: &UserKey, tree: Result<TigerTree, String>) {
        let mut runs = self.inner.runs.borrow_mut();
        let Some(run) = runs.get_mut(&id) else { return };
        run.leaves_running = run.leaves_running.saturating_sub(1);
        match tree {
            Ok(t) if run.tree.is_some() => drop(t),
            Ok(t) => {
                log::debug!(target: "download", "{}: {} leaves of {} bytes", run.item.name.display(), t.leaves.len(), t.block_size);
                run.set_tree(t, self.inner.opts.borrow().min_segment);
            }
            Err(e) => {
                drop(runs);
                let why = format!("its TTH leaves: {e}");
                self.leaves_failed(id, user, &why, true);
            }
        }
    }

    pub(crate) fn leaves_failed(&self, id: ItemId, user: &UserKey, why: &str, lacks: bool) {
        let mut runs = self.inner.runs.borrow_mut();
        let Some(run) = runs.get_mut(&id) else { return };
        run.leaves_running = run.leaves_running.saturating_sub(1);
        if lacks {
            run.dropped.insert(user.clone());
        }
        log::info!(target: "download", "{}: leaves from {}: {why}", run.item.name.display(), user.1);
        let info = run.info();
        drop(runs);
        self.emit(&DownloadEvent::Failed { item: info, reason: why.to_string(), final_: false });
        self.poke();
    }

    /// Moves a complete item into place.
    fn check_complete(&self, id: ItemId) {
        let mut runs = self.inner.runs.borrow_mut();
        let Some(run) = runs.get_mut(&id) else { return };
        if !run.segments.as_ref().is_some_and(Segments::is_complete) {
            return;
        }
        // Every block matched leaves that rebuild the TTH: the file is the
        // one queued.
        let Some(mut run) = runs.remove(&id) else { return };
        drop(runs);
        let target = run.item.target();
        let result = std::fs::create_dir_all(&run.item.dir)
            .and_then(|()| {
                // The temporary file may be longer (a sparse tail never
                // written): cut it to the size.
                let f = OpenOptions::new().write(true).open(&run.tmp)?;
                f.set_len(run.item.size)?;
                f.sync_all()
            })
            .and_then(|()| place::move_into_place(&run.tmp, &target));
        let (state, error) = match &result {
            Ok(_) => (ItemState::Done, None),
            Err(e) => (ItemState::Failed, Some(format!("moving it into place: {e}"))),
        };
        if let Some(store) = self.inner.store.borrow_mut().as_mut() {
            // A finished item leaves the queue; the file is its record.
            let _ = match state {
                ItemState::Done => store.remove(id),
                _ => store.set_state(id, state, error.as_deref()),
            };
        }
        run.item.state = state;
        run.item.error = error.clone();
        run.done_path = result.as_ref().ok().cloned();
        let info = run.info();
        self.inner.finished.borrow_mut().insert(id, info.clone());
        match result {
            Ok(path) => {
                log::info!(target: "download", "downloaded {} ({} bytes, TTH verified)", path.display(), run.item.size);
                for w in run.waiters.drain(..) {
                    w(Ok(path.clone()));
                }
                self.emit(&DownloadEvent::Finished { item: info, path });
            }
            Err(e) => {
                let why = format!("moving {} into place: {e}", run.item.name.display());
                log::error!(target: "download", "{why}");
                for w in run.waiters.drain(..) {
                    w(Err(why.clone()));
                }
                self.emit(&DownloadEvent::Failed { item: info, reason: why, final_: true });
            }
        }
        self.emit(&DownloadEvent::QueueChanged);
    }

    // ----- connections ----------------------------------------------------------

    fn user_failed(&self, user: &UserKey, why: &str) {
        let now = self.inner.rt.now();
        let mut users = self.inner.users.borrow_mut();
        let u = users.entry(user.clone()).or_default();
        u.asked = None;
        u.failures += 1;
        u.retry_at = Some(now + backoff(u.failures - 1));
        u.last_error = Some(why.to_string());
    }

    /// Wakes the scheduler.
    fn poke(&self) {
        self.inner.poked.set(true);
        if let Some(job) = self.inner.job.get() {
            self.inner.rt.wake(job);
        }
    }

    /// Users we want something from, in order of need.
    fn wanted_users(&self) -> Vec<UserKey> {
        let mut out: Vec<UserKey> = Vec::new();
        for l in self.inner.lists.borrow().iter() {
            if !l.running && !out.contains(&l.user) {
                out.push(l.user.clone());
            }
        }
        let runs = self.inner.runs.borrow();
        let mut items: Vec<&Run> = runs.values().collect();
        items.sort_by_key(|r| (std::cmp::Reverse(r.item.priority as i64), r.item.added));
        for r in items {
            if r.item.priority == Priority::Paused || !r.needs_work() {
                continue;
            }
            for s in &r.item.sources {
                let k = (s.hub.clone(), s.user.clone());
                if !r.dropped.contains(&k)
                    && !r.running.values().any(|u| *u == k)
                    && !out.contains(&k)
                {
                    out.push(k);
                }
            }
        }
        out
    }

    /// Finds a user online.
    fn locate(&self, user: &UserKey) -> Option<Located> {
        for id in self.inner.hubs.ids() {
            let Some(info) = self.inner.hubs.get(id) else { continue };
            let info = info.borrow();
            if info.url != user.0 || info.state != HubState::Online {
                continue;
            }
            let adc = info.protocol == HubProtocol::Adc;
            let found = if adc {
                crate::proto::adc::Cid::from_base32(&user.1)
                    .ok()
                    .and_then(|c| info.users.by_cid(&c))
            } else {
                info.users.get(&user.1)
            };
            let u = found?;
            let active = u.mode == UserMode::Active || u.mode == UserMode::Unknown;
            let su = u.inf_field("SU").unwrap_or_default();
            let tls = adc && (su.contains("ADC0") || su.contains("ADCS"));
            let kp = u.inf_field("KP");
            return Some((id, u.nick().to_string(), u.cid_text(), active, tls, kp));
        }
        None
    }

    /// The scheduler's tick: asks for connections to wanted users.
    fn tick(&self, now: Instant) {
        self.inner
            .tokens
            .borrow_mut()
            .retain(|_, (_, at)| now.saturating_duration_since(*at) < CONNECT_TIMEOUT * 2);
        let max = self.inner.opts.borrow().max_connections;
        for user in self.wanted_users() {
            let open: u32 = self
                .inner
                .users
                .borrow()
                .values()
                .map(|u| u.conns + u32::from(u.asked.is_some()))
                .sum();
            if open as usize >= max {
                break;
            }
            {
                let mut users = self.inner.users.borrow_mut();
                let u = users.entry(user.clone()).or_default();
                if u.conns > 0 {
                    continue;
                }
                if let Some(at) = u.asked {
                    if now.saturating_duration_since(at) < CONNECT_TIMEOUT {
                        continue;
                    }
                    // The connection never came.
                    u.asked = None;
                    u.failures += 1;
                    u.retry_at = Some(now + backoff(u.failures - 1));
                    u.last_error = Some("the user did not connect".into());
                    continue;
                }
                if u.retry_at.is_some_and(|t| t > now) {
                    continue;
                }
            }
            let Some((hub, nick, cid, active, tls, kp)) = self.locate(&user) else {
                let mut users = self.inner.users.borrow_mut();
                let u = users.entry(user.clone()).or_default();
                u.last_error = Some("the user is not online".into());
                u.retry_at = Some(now + RETRY_FIRST);
                continue;
            };
            let token = format!("{:08x}", rand::random::<u32>());
            let ask = ConnectionAsk {
                hub,
                nick: nick.clone(),
                cid,
                token: token.clone(),
                user_active: active,
                tls,
                keyprint: kp,
            };
            match self.inner.peers.ask_connection(&ask) {
                Ok(()) => {
                    log::debug!(target: "download", "asking {nick} on {} for a connection", user.0);
                    self.inner.tokens.borrow_mut().insert(token, (user.clone(), now));
                    self.inner.users.borrow_mut().entry(user.clone()).or_default().asked =
                        Some(now);
                }
                Err(e) => {
                    log::info!(target: "download", "cannot reach {nick} on {}: {e}", user.0);
                    let e = e.to_string();
                    self.user_failed(&user, &e);
                    self.fail_lists_of(&user, &e);
                }
            }
        }
    }

    fn fail_lists_of(&self, user: &UserKey, why: &str) {
        let ids: Vec<u64> =
            self.inner.lists.borrow().iter().filter(|l| l.user == *user).map(|l| l.id).collect();
        for id in ids {
            self.list_failed(id, why);
        }
    }

    fn wants(&self, user: &PeerUser, token: Option<&str>) -> bool {
        if let Some(t) = token {
            if self.inner.tokens.borrow().contains_key(t) {
                return true;
            }
            // An ADC connection with a token that is not ours is the peer's.
            if user.cid.is_some() {
                return false;
            }
        }
        let key = key_of(user);
        let wanted = self.inner.lists.borrow().iter().any(|l| l.user == key && !l.running)
            || self.inner.runs.borrow().values().any(|r| {
                r.item.priority != Priority::Paused
                    && r.needs_work()
                    && !r.dropped.contains(&key)
                    && r.item.sources.iter().any(|s| s.hub == key.0 && s.user == key.1)
            });
        if !wanted {
            // The connection we asked for came when nothing was left to
            // want (NMDC has no token to tie it to the ask): the ask is
            // answered, the next tick asks again if something comes up.
            if let Some(u) = self.inner.users.borrow_mut().get_mut(&key) {
                u.asked = None;
            }
        }
        wanted
    }

    fn ended(&self, conn: ConnKey, user: &PeerUser, why: &str) {
        let key = key_of(user);
        let known = self.inner.conns.borrow_mut().remove(&conn).is_some();
        let mut users = self.inner.users.borrow_mut();
        let u = users.entry(key.clone()).or_default();
        if known {
            u.conns = u.conns.saturating_sub(1);
        }
        u.asked = None;
        if !why.starts_with("nothing more") {
            // Slots full, or a failure: try again later.
            u.failures += 1;
            u.retry_at = Some(self.inner.rt.now() + backoff(u.failures - 1));
            u.last_error = Some(why.to_string());
        }
        drop(users);
        self.poke();
    }
}

/// A user found online: the hub, the nick, the CID, active, TLS, KP.
type Located = (HubId, String, Option<String>, bool, bool, Option<String>);

/// Opens (creating) the temporary file; it is written at offsets.
pub(super) fn open_tmp(tmp: &Path, dir: &Path) -> std::io::Result<File> {
    std::fs::create_dir_all(dir)?;
    OpenOptions::new().create(true).truncate(false).write(true).open(tmp)
}

impl Run {
    fn new(item: Item) -> Run {
        let tmp = place::temp_path(&item.target(), &item.tth.to_base32());
        Run {
            tmp,
            tree: None,
            segments: None,
            dropped: HashSet::new(),
            leaves_running: 0,
            bytes_from: HashMap::new(),
            fetched: 0,
            running: HashMap::new(),
            speed: HashMap::new(),
            last_event: None,
            waiters: Vec::new(),
            done_path: None,
            file: None,
            unsynced: Vec::new(),
            unsynced_bytes: 0,
            syncing: false,
            item,
        }
    }

    pub(super) fn set_tree(&mut self, t: TigerTree, min_segment: u64) {
        let verified = self.item.verified.clone();
        self.segments =
            Some(Segments::new(t.size, t.block_size, verified).with_min_segment(min_segment));
        self.tree = Some(Rc::new(t));
    }

    /// Whether a new connection could do something for it.
    fn needs_work(&self) -> bool {
        match &self.segments {
            None => true,
            Some(s) => s.wants_sources(),
        }
    }

    pub(super) fn info(&self) -> ItemInfo {
        let verified =
            self.segments.as_ref().map_or(self.item.verified.len(), |s| s.verified().len());
        let state = match self.item.state {
            ItemState::Done => "done",
            ItemState::Failed => "failed",
            ItemState::Queued if !self.running.is_empty() || self.leaves_running > 0 => "running",
            ItemState::Queued => "queued",
        };
        ItemInfo {
            id: self.item.id,
            tth: self.item.tth,
            size: self.item.size,
            target: self.item.target(),
            state,
            verified,
            // What was verified before this start, and what came since.
            received: self.item.verified.len() + self.fetched,
            fetched: self.fetched,
            sources: self
                .item
                .sources
                .iter()
                .map(|s| {
                    let n = self.bytes_from.get(&(s.hub.clone(), s.user.clone())).copied();
                    (s.clone(), n.unwrap_or(0))
                })
                .collect(),
            running: self.running.len(),
            priority: self.item.priority.name(),
            error: self.item.error.clone(),
            path: self.done_path.clone(),
        }
    }
}

/// The peer layer's view of the service (weak: the peer layer must not keep
/// the service alive).
struct Side(Weak<Inner>);

impl Side {
    fn dl(&self) -> Option<Downloads> {
        self.0.upgrade().map(|inner| Downloads { inner })
    }
}

impl DownloadSide for Side {
    fn wants(&self, user: &PeerUser, token: Option<&str>) -> bool {
        self.dl().is_some_and(|d| d.wants(user, token))
    }

    fn next(
        &self,
        conn: ConnKey,
        user: &PeerUser,
        tls: bool,
        now: Instant,
    ) -> Option<Box<dyn Fetch>> {
        self.dl()?.next(conn, user, tls, now)
    }

    fn budget(&self, want: usize, now: Instant) -> (usize, Duration) {
        // Large reads, and no connection starves the others.
        self.dl().map_or((want, Duration::ZERO), |d| {
            d.inner.limiter.borrow_mut().grant(want, 64 * 1024, now)
        })
    }

    fn give_back(&self, bytes: usize) {
        if let Some(d) = self.dl() {
            d.inner.limiter.borrow_mut().give_back(bytes);
        }
    }

    fn ended(&self, conn: ConnKey, user: &PeerUser, why: &str, _now: Instant) {
        if let Some(d) = self.dl() {
            d.ended(conn, user, why);
        }
    }
}

/// The scheduler job: a tick a second, and the helper tasks' results.
struct Scheduler {
    dl: Weak<Inner>,
    tick: Option<TimerId>,
    stopped: bool,
}

impl Job for Scheduler {
    fn poll(&mut self, cx: &mut Context<'_>) -> Step {
        let Some(inner) = self.dl.upgrade().filter(|_| !self.stopped) else { return Step::Done };
        let dl = Downloads { inner };
        let first = self.tick.is_none();
        if first {
            self.tick = Some(cx.every(Duration::from_secs(1)));
        }
        while let Some(m) = cx.recv() {
            if let Ok(done) = m.downcast::<TaskDone>() {
                dl.task_done(*done);
            }
        }
        // Batches come back a thousand times a gigabyte: look for work on
        // the tick and when poked, not on every result.
        let ticked = self.tick.is_some_and(|t| cx.fired(t));
        if first || ticked || dl.inner.poked.replace(false) {
            dl.tick(cx.now());
        }
        Step::Pending
    }

    fn is_alive(&self) -> bool {
        !self.stopped
    }

    fn stop(&mut self) {
        self.stopped = true;
    }

    fn name(&self) -> String {
        "downloads".into()
    }
}
