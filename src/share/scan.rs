//! Walking the share roots: which files are shared, under which virtual path,
//! and which of them need hashing given the hash store ([`scan`], [`plan`]);
//! and the blocking glue that brings the store up to date ([`hash_and_store`]).
//!
//! This module owns the directory walk and the comparison with the store; it
//! never reads file contents itself (that is [`super::hasher`]) and never
//! builds the share tree or file list (that is the share index).
//!
//! The walk is iterative (no recursion, whatever the depth) and costs one
//! `stat` per file and per directory beyond listing the directories: the
//! entry type comes from the directory listing itself. Skipped, with a log
//! line and a [`ScanProblem`], and the walk goes on: unreadable directories
//! and entries, dangling symlinks, names that are not UTF-8 (Direct Connect
//! names are UTF-8). Skipped silently: hidden entries (names starting with
//! `.`) unless [`ScanOptions::include_hidden`], and anything that is neither a
//! file nor a directory. A directory reached a second time (a symlink loop, a
//! bind mount) is recognised by its (device, inode) and walked once.
//!
//! # Shares stay inside their roots
//!
//! A share must not offer what its owner did not mean to share: a link
//! `etc -> /etc` inside a shared folder used to put `/etc` (`/etc/shadow`
//! included) into the file list. The rules:
//!
//! - **Symbolic links are not followed** unless the share root sets
//!   [`ShareRoot::follow_symlinks`]. A link found in a root that does not
//!   follow them is skipped (counted in [`ScanResult::links_skipped`]),
//!   whatever it points to, inside the root or not.
//! - **A followed link may leave the root**: following links is the owner's
//!   explicit choice, and linking other folders in is what it is for.
//! - **The data folder is never shared** (the hash store, the file list, the
//!   certificates, downloads in progress): paths in [`ScanOptions::exclude`]
//!   are skipped wherever the walk meets them — a root inside one, a folder
//!   that is one (recognised by device and inode, whatever path leads to
//!   it), or a followed link whose target lies inside one.
//! - **Every served file is checked again when it is served**
//!   ([`open_served`]): its path is resolved on disk and must obey the same
//!   rules, and the file must have the size and modification time it had
//!   when it was hashed. The walk only decides what is *listed*; the disk
//!   may have changed since (a folder replaced by a link), so uploads never
//!   trust a path from the list alone.

use std::collections::{HashMap, HashSet};
use std::fs::{self, Metadata};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::hasher::{mtime_ns, HashBatch, HashError, HashedFile};
use super::store::{path_bytes, path_from_bytes, Store, StoreError};
use crate::proto::tth::Tth;
use crate::runtime::helpers::HelperPool;

/// One shared folder and the name it has in the share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareRoot {
    /// The top-level name others see (one path component).
    pub virtual_name: String,
    /// The folder on disk.
    pub path: PathBuf,
    /// Follow symbolic links below it (see the module doc; default no).
    pub follow_symlinks: bool,
}

impl ShareRoot {
    /// A root that does not follow symbolic links.
    pub fn new(virtual_name: impl Into<String>, path: impl Into<PathBuf>) -> ShareRoot {
        ShareRoot { virtual_name: virtual_name.into(), path: path.into(), follow_symlinks: false }
    }
}

/// Choices for the walk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanOptions {
    /// Share entries whose name starts with `.` (default: no).
    pub include_hidden: bool,
    /// Folders never shared, whatever leads to them: the data folder.
    pub exclude: Vec<PathBuf>,
}

/// One shared file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannedFile {
    /// Its path in the share, `/`-separated, starting with the root's virtual
    /// name: `Music/a/b.mp3`.
    pub virtual_path: String,
    /// Its path on disk (under the canonical root path).
    pub fs_path: PathBuf,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime: i64,
}

/// Something the walk skipped and why (also logged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanProblem {
    /// The path on disk.
    pub path: PathBuf,
    /// What went wrong.
    pub what: String,
}

/// What a walk found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanResult {
    /// Every shared file.
    pub files: Vec<ScannedFile>,
    /// Every shared directory's virtual path, roots included (so that empty
    /// directories can be listed too).
    pub dirs: Vec<String>,
    /// Entries skipped because of an error.
    pub problems: Vec<ScanProblem>,
    /// Directories (on disk) that could not be listed completely: what the
    /// store knows below them is kept, not taken as deleted.
    pub incomplete: Vec<PathBuf>,
    /// Symbolic links skipped because their root does not follow links.
    pub links_skipped: u64,
}

/// A share definition that cannot be walked at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScanError {
    /// A virtual name is empty, `.`, `..`, or holds `/`, `\` or a control
    /// character.
    #[error("share root {}: invalid virtual name {name:?}", path.display())]
    BadName {
        /// The name.
        name: String,
        /// The root's folder.
        path: PathBuf,
    },
    /// Two roots share a virtual name (compared case-insensitively, as file
    /// lists require).
    #[error("share roots {} and {} both have the virtual name {name:?}", first.display(), second.display())]
    DuplicateName {
        /// The name.
        name: String,
        /// The first root with it.
        first: PathBuf,
        /// The second root with it.
        second: PathBuf,
    },
}

/// Whether `name` can be a virtual root name.
fn valid_virtual_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.chars().any(|c| c == '/' || c == '\\' || c.is_control())
}

/// Walks `roots` and lists their files. Problems with single entries (and
/// with a root folder that is missing) are in the result; only an invalid
/// share definition is an error.
pub fn scan(roots: &[ShareRoot], options: &ScanOptions) -> Result<ScanResult, ScanError> {
    for (i, root) in roots.iter().enumerate() {
        if !valid_virtual_name(&root.virtual_name) {
            return Err(ScanError::BadName {
                name: root.virtual_name.clone(),
                path: root.path.clone(),
            });
        }
        let lower = root.virtual_name.to_lowercase();
        if let Some(first) = roots[..i].iter().find(|r| r.virtual_name.to_lowercase() == lower) {
            return Err(ScanError::DuplicateName {
                name: root.virtual_name.clone(),
                first: first.path.clone(),
                second: root.path.clone(),
            });
        }
    }
    let exclude: Vec<PathBuf> = options.exclude.iter().map(|p| canonical_guess_full(p)).collect();
    let excluded_ids =
        exclude.iter().filter_map(|p| fs::metadata(p).ok()).filter_map(|m| file_id(&m)).collect();
    let mut walk = Walk {
        include_hidden: options.include_hidden,
        follow: false,
        exclude,
        excluded_ids,
        result: ScanResult::default(),
        visited: HashSet::new(),
    };
    for root in roots {
        walk.follow = root.follow_symlinks;
        let links_before = walk.result.links_skipped;
        walk.root(root);
        let skipped = walk.result.links_skipped - links_before;
        if skipped > 0 {
            log::info!(
                "share scan: {skipped} symbolic links in {:?} not followed (follow_symlinks is off)",
                root.virtual_name
            );
        }
    }
    Ok(walk.result)
}

/// (device, inode) of a file or folder.
fn file_id(meta: &Metadata) -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Some((meta.dev(), meta.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        None
    }
}

/// `path` canonical if it exists, else as canonical as its parent allows.
fn canonical_guess_full(path: &Path) -> PathBuf {
    fs::canonicalize(path).unwrap_or_else(|_| canonical_guess(path))
}

struct Walk {
    include_hidden: bool,
    /// Whether the root being walked follows symbolic links.
    follow: bool,
    /// Canonical folders never shared.
    exclude: Vec<PathBuf>,
    /// Their (device, inode).
    excluded_ids: HashSet<(u64, u64)>,
    result: ScanResult,
    /// (device, inode) of every directory entered.
    visited: HashSet<(u64, u64)>,
}

impl Walk {
    fn problem(&mut self, path: &Path, what: String) {
        log::warn!("share scan: skipping {}: {what}", path.display());
        self.result.problems.push(ScanProblem { path: path.to_owned(), what });
    }

    fn excluded(&self, path: &Path) -> bool {
        self.exclude.iter().any(|ex| path.starts_with(ex))
    }

    fn root(&mut self, root: &ShareRoot) {
        // Canonical, so that store keys do not depend on the current folder
        // or on the symlinks leading to the root.
        let path = match fs::canonicalize(&root.path) {
            Ok(p) => p,
            Err(e) => {
                self.problem(&root.path, format!("share root {:?}: {e}", root.virtual_name));
                self.result.incomplete.push(canonical_guess(&root.path));
                return;
            }
        };
        if self.excluded(&path) {
            let what = format!(
                "share root {:?} is in the data folder, which is never shared",
                root.virtual_name
            );
            self.problem(&path, what);
            return;
        }
        match fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => {
                if !self.first_visit(&meta) {
                    let what = format!("share root {:?} is already shared", root.virtual_name);
                    self.problem(&path, what);
                    return;
                }
            }
            Ok(_) => {
                self.problem(&path, format!("share root {:?} is not a folder", root.virtual_name));
                return;
            }
            Err(e) => {
                self.problem(&path, format!("share root {:?}: {e}", root.virtual_name));
                self.result.incomplete.push(path);
                return;
            }
        }
        let mut stack = vec![(path, root.virtual_name.clone())];
        while let Some((dir, vpath)) = stack.pop() {
            self.directory(&dir, &vpath, &mut stack);
            self.result.dirs.push(vpath);
        }
    }

    /// Records a directory as entered; false if it was already.
    fn first_visit(&mut self, meta: &Metadata) -> bool {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            self.visited.insert((meta.dev(), meta.ino()))
        }
        #[cfg(not(unix))]
        {
            let _ = meta;
            true
        }
    }

    /// Lists one directory: files go to the result, subdirectories to `stack`.
    fn directory(&mut self, dir: &Path, vpath: &str, stack: &mut Vec<(PathBuf, String)>) {
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) => {
                self.problem(dir, format!("cannot list the folder: {e}"));
                self.result.incomplete.push(dir.to_owned());
                return;
            }
        };
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    self.problem(dir, format!("cannot list the folder completely: {e}"));
                    self.result.incomplete.push(dir.to_owned());
                    break;
                }
            };
            let name = entry.file_name();
            if !self.include_hidden && name.as_encoded_bytes().first() == Some(&b'.') {
                continue;
            }
            let path = entry.path();
            let Some(name) = name.to_str() else {
                self.problem(&path, "the name is not UTF-8".into());
                continue;
            };
            // The type comes with the listing on most file systems (no stat).
            let file_type = match entry.file_type() {
                Ok(t) => t,
                Err(e) => {
                    self.problem(&path, format!("cannot read its type: {e}"));
                    continue;
                }
            };
            let meta = if file_type.is_symlink() {
                if !self.follow {
                    self.result.links_skipped += 1;
                    continue;
                }
                match fs::canonicalize(&path) {
                    Ok(target) if self.excluded(&target) => {
                        self.problem(
                            &path,
                            "the link leads into the data folder, which is never shared".into(),
                        );
                        continue;
                    }
                    // Dangling: reported below by the metadata call.
                    _ => {}
                }
                fs::metadata(&path)
            } else if file_type.is_file() || file_type.is_dir() {
                entry.metadata()
            } else {
                continue;
            };
            let meta = match meta {
                Ok(meta) => meta,
                Err(e) => {
                    self.problem(&path, format!("cannot read its metadata: {e}"));
                    continue;
                }
            };
            let child_vpath = format!("{vpath}/{name}");
            if meta.is_dir() && file_id(&meta).is_some_and(|id| self.excluded_ids.contains(&id)) {
                log::info!(
                    "share scan: {} is the data folder, never shared; skipped",
                    path.display()
                );
            } else if meta.is_dir() {
                if self.first_visit(&meta) {
                    stack.push((path, child_vpath));
                } else {
                    log::info!(
                        "share scan: {} leads to a folder already shared; skipped",
                        path.display()
                    );
                }
            } else if meta.is_file() {
                self.result.files.push(ScannedFile {
                    virtual_path: child_vpath,
                    fs_path: path,
                    size: meta.len(),
                    mtime: mtime_ns(&meta),
                });
            }
        }
    }
}

/// The canonical form `path` would have, as far as its existing parent tells
/// (for a root that is missing now, to match what the store holds for it).
fn canonical_guess(path: &Path) -> PathBuf {
    let parent = path.parent().and_then(|p| fs::canonicalize(p).ok());
    match (parent, path.file_name()) {
        (Some(parent), Some(name)) => parent.join(name),
        _ => std::path::absolute(path).unwrap_or_else(|_| path.to_owned()),
    }
}

/// Why a file is not served (see "Shares stay inside their roots" in the
/// module doc). Each names the path that was asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServeRefusal {
    /// No such file in the share, or no longer on disk.
    #[error("{0:?}: not in the share")]
    NotFound(String),
    /// In the share but without a TTH yet (or its hashing failed).
    #[error("{0:?}: not hashed yet")]
    NotHashed(String),
    /// The path leaves the share by itself (`..`, `.`, an empty or absolute
    /// component).
    #[error("{0:?}: outside the share")]
    OutsideShare(String),
    /// It resolves through a symbolic link to a place outside its root, in a
    /// share that does not follow links.
    #[error("{0:?}: a symbolic link leads out of the share")]
    SymlinkOutOfShare(String),
    /// It is reached through a symbolic link, in a share that does not
    /// follow links (the link stays inside the root).
    #[error("{0:?}: reached through a symbolic link, and the share does not follow links")]
    Symlink(String),
    /// It resolves into the data folder.
    #[error("{0:?}: in the data folder, which is never shared")]
    DataFolder(String),
    /// Its size or modification time differ from when it was hashed.
    #[error("{0:?}: changed since it was hashed")]
    Changed(String),
}

/// A file checked and opened for serving.
#[derive(Debug)]
pub struct ServedFile {
    /// The virtual path it was asked for (or found by, for a TTH).
    pub virtual_path: String,
    /// Its real path, every symbolic link resolved.
    pub path: PathBuf,
    /// The file, open for reading: serve from this handle, not by opening
    /// `path` again, so that what was checked is what is sent.
    pub file: fs::File,
    /// Its size (equal to the hashed size).
    pub size: u64,
}

/// What the share knew of a file when it was hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hashed {
    /// Size in bytes.
    pub size: u64,
    /// Modification time, whole seconds since the Unix epoch.
    pub mtime_secs: u64,
}

/// Resolves and opens the file `rel` (`/`-separated, below the root, no
/// leading `/`) of `root` for serving, if the rules of the module doc allow
/// it and it is unchanged since `hashed`. `virtual_path` names the request in
/// refusals. `exclude` is the folders never shared (the data folder).
///
/// The real path is resolved (every link followed) and checked, then opened
/// without following a final link and checked again through the open handle
/// (a file swapped between the two calls fails the size and time check or
/// the open). Costs a few system calls; no file content is read.
pub fn open_served(
    root: &ShareRoot,
    rel: &str,
    exclude: &[PathBuf],
    hashed: Hashed,
    virtual_path: &str,
) -> Result<ServedFile, ServeRefusal> {
    let vp = || virtual_path.to_string();
    let parts: Vec<&str> = rel.split('/').collect();
    if rel.is_empty()
        || parts.iter().any(|p| p.is_empty() || *p == "." || *p == ".." || p.contains(['\\', '\0']))
    {
        return Err(ServeRefusal::OutsideShare(vp()));
    }
    let root_path = fs::canonicalize(&root.path).map_err(|_| ServeRefusal::NotFound(vp()))?;
    let mut candidate = root_path.clone();
    candidate.extend(&parts);
    let real = fs::canonicalize(&candidate).map_err(|_| ServeRefusal::NotFound(vp()))?;
    let exclude: Vec<PathBuf> = exclude.iter().map(|p| canonical_guess_full(p)).collect();
    if exclude.iter().any(|ex| real.starts_with(ex)) {
        return Err(ServeRefusal::DataFolder(vp()));
    }
    if !root.follow_symlinks {
        if !real.starts_with(&root_path) {
            return Err(ServeRefusal::SymlinkOutOfShare(vp()));
        }
        if real != candidate {
            return Err(ServeRefusal::Symlink(vp()));
        }
    }
    let mut open = fs::OpenOptions::new();
    open.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        open.custom_flags(libc::O_NOFOLLOW);
    }
    let file = open.open(&real).map_err(|_| ServeRefusal::NotFound(vp()))?;
    let meta = file.metadata().map_err(|_| ServeRefusal::NotFound(vp()))?;
    if !meta.is_file() {
        return Err(ServeRefusal::NotFound(vp()));
    }
    let mtime_secs = u64::try_from(mtime_ns(&meta).div_euclid(1_000_000_000)).unwrap_or(0);
    if meta.len() != hashed.size || mtime_secs != hashed.mtime_secs {
        return Err(ServeRefusal::Changed(vp()));
    }
    Ok(ServedFile { virtual_path: vp(), path: real, file, size: meta.len() })
}

/// What to do with the files of a scan, given the store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HashPlan {
    /// Files the store knows unchanged: (index in the scanned files, TTH).
    pub known: Vec<(usize, Tth)>,
    /// Files to hash: indices in the scanned files (new or changed).
    pub to_hash: Vec<usize>,
    /// Stored paths no longer shared (gone from disk, or from the share),
    /// except those under a folder the scan could not list completely.
    pub gone: Vec<PathBuf>,
}

impl HashPlan {
    /// The (path, size) pairs to hash, each path once, for
    /// [`HashBatch::new`](super::hasher::HashBatch::new).
    pub fn files_to_hash(&self, files: &[ScannedFile]) -> Vec<(PathBuf, u64)> {
        let mut seen = HashSet::new();
        self.to_hash
            .iter()
            .filter_map(|&i| files.get(i))
            .filter(|f| seen.insert(f.fs_path.as_path()))
            .map(|f| (f.fs_path.clone(), f.size))
            .collect()
    }
}

/// Compares a scan with the store in one ordered pass over both (no query per
/// file): which files are known, which need hashing, which stored paths are
/// gone.
pub fn plan(store: &Store, scan: &ScanResult) -> Result<HashPlan, StoreError> {
    let files = &scan.files;
    let mut order: Vec<usize> = (0..files.len()).collect();
    order.sort_unstable_by(|&a, &b| {
        path_bytes(&files[a].fs_path).cmp(&path_bytes(&files[b].fs_path))
    });
    let mut plan = HashPlan::default();
    let mut next = 0;
    store.for_each_sorted(|stored, size, mtime, tth| {
        // Scanned files before this stored path are new to the store.
        while let Some(&i) = order.get(next) {
            if path_bytes(&files[i].fs_path).as_ref() >= stored {
                break;
            }
            plan.to_hash.push(i);
            next += 1;
        }
        let mut matched = false;
        while let Some(&i) = order.get(next) {
            if path_bytes(&files[i].fs_path).as_ref() != stored {
                break;
            }
            matched = true;
            if files[i].size == size && files[i].mtime == mtime {
                plan.known.push((i, tth));
            } else {
                plan.to_hash.push(i);
            }
            next += 1;
        }
        if !matched {
            let path = path_from_bytes(stored);
            if !scan.incomplete.iter().any(|dir| path.starts_with(dir)) {
                plan.gone.push(path);
            }
        }
        true
    })?;
    plan.to_hash.extend(order[next..].iter().copied());
    Ok(plan)
}

/// What [`hash_and_store`] did.
#[derive(Debug, Default)]
pub struct StoreUpdate {
    /// The TTH of each scanned file (same order as [`ScanResult::files`]),
    /// `None` where hashing failed.
    pub roots: Vec<Option<Tth>>,
    /// Files the store already knew unchanged.
    pub known: usize,
    /// Files hashed now.
    pub hashed: usize,
    /// Files that could not be hashed (each error names its file).
    pub failed: Vec<HashError>,
    /// Stored entries removed because their files are no longer shared.
    pub removed: usize,
}

/// Files written to the store per transaction while hashing.
const STORE_BATCH_FILES: usize = 1000;
/// Longest time hashed files wait before they are written to the store.
const STORE_BATCH_TIME: Duration = Duration::from_secs(2);

/// Brings the store up to date with a scan: hashes what is new or changed
/// on `pool` (calling `on_hashed` for each file hashed, on this thread),
/// writes results in batched transactions (at most 1000 files or 2 seconds
/// of hashing lost to a crash), and removes what is gone. `batch_setup` may
/// add progress or cancellation to the hash batch before it starts.
///
/// Blocks until done: call it on a helper or a dedicated thread, never on
/// the worker (which drives a [`HashBatch`] itself instead).
pub fn hash_and_store(
    store: &mut Store,
    scan: &ScanResult,
    pool: &HelperPool,
    batch_setup: impl FnOnce(HashBatch) -> HashBatch,
    on_hashed: &mut dyn FnMut(&HashedFile),
) -> Result<StoreUpdate, StoreError> {
    let plan = plan(store, scan)?;
    let mut update = StoreUpdate {
        roots: vec![None; scan.files.len()],
        known: plan.known.len(),
        ..StoreUpdate::default()
    };
    for &(i, tth) in &plan.known {
        update.roots[i] = Some(tth);
    }
    // A path may be shared twice (a symlink to a file): hash it once.
    let mut by_path: HashMap<&Path, Vec<usize>> = HashMap::new();
    for &i in &plan.to_hash {
        by_path.entry(scan.files[i].fs_path.as_path()).or_default().push(i);
    }

    let mut batch = batch_setup(HashBatch::new(plan.files_to_hash(&scan.files)));
    let mut pending: Vec<HashedFile> = Vec::new();
    let mut last_write = Instant::now();
    while let Some(result) = batch.next_blocking(pool) {
        match result {
            Ok(hashed) => {
                on_hashed(&hashed);
                update.hashed += 1;
                for &i in by_path.get(hashed.path.as_path()).into_iter().flatten() {
                    update.roots[i] = Some(hashed.tree.root);
                }
                pending.push(hashed);
            }
            Err(e) => {
                log::warn!("{e}");
                update.failed.push(e);
            }
        }
        if pending.len() >= STORE_BATCH_FILES || last_write.elapsed() >= STORE_BATCH_TIME {
            store.put_many(&pending)?;
            pending.clear();
            last_write = Instant::now();
        }
    }
    store.put_many(&pending)?;
    update.removed = store.remove(plan.gone.iter().map(PathBuf::as_path))?;
    Ok(update)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, data: &[u8]) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, data).unwrap();
    }

    fn sorted_vpaths(result: &ScanResult) -> Vec<String> {
        let mut v: Vec<String> = result.files.iter().map(|f| f.virtual_path.clone()).collect();
        v.sort();
        v
    }

    #[test]
    fn walks_roots_with_virtual_names() {
        let dir = tempfile::tempdir().unwrap();
        let music = dir.path().join("music");
        write(&music.join("a/b.mp3"), b"bbb");
        write(&music.join("top.flac"), b"t");
        write(&music.join(".hidden/x"), b"x");
        write(&music.join(".dotfile"), b"d");
        fs::create_dir_all(music.join("empty")).unwrap();
        let docs = dir.path().join("docs");
        write(&docs.join("readme.txt"), b"hello");

        let roots = [ShareRoot::new("Music", music.clone()), ShareRoot::new("Docs", docs.clone())];
        let result = scan(&roots, &ScanOptions::default()).unwrap();
        assert_eq!(sorted_vpaths(&result), ["Docs/readme.txt", "Music/a/b.mp3", "Music/top.flac"]);
        let mut dirs = result.dirs.clone();
        dirs.sort();
        assert_eq!(dirs, ["Docs", "Music", "Music/a", "Music/empty"]);
        assert!(result.problems.is_empty(), "{:?}", result.problems);
        let b = result.files.iter().find(|f| f.virtual_path == "Music/a/b.mp3").unwrap();
        assert_eq!(b.size, 3);
        assert_eq!(b.fs_path, fs::canonicalize(music.join("a/b.mp3")).unwrap());
        assert_eq!(b.mtime, mtime_ns(&fs::metadata(&b.fs_path).unwrap()));

        let with_hidden = ScanOptions { include_hidden: true, ..ScanOptions::default() };
        let result = scan(&roots, &with_hidden).unwrap();
        assert_eq!(
            sorted_vpaths(&result),
            [
                "Docs/readme.txt",
                "Music/.dotfile",
                "Music/.hidden/x",
                "Music/a/b.mp3",
                "Music/top.flac"
            ]
        );
    }

    #[test]
    fn bad_share_definitions() {
        let p = PathBuf::from("/tmp");
        for name in ["", ".", "..", "a/b", "a\\b", "tab\t"] {
            let roots = [ShareRoot::new(name, p.clone())];
            assert!(
                matches!(scan(&roots, &ScanOptions::default()), Err(ScanError::BadName { .. })),
                "{name:?}"
            );
        }
        let roots = [ShareRoot::new("Music", p.clone()), ShareRoot::new("music", p.join("x"))];
        assert!(matches!(
            scan(&roots, &ScanOptions::default()),
            Err(ScanError::DuplicateName { .. })
        ));
    }

    #[test]
    fn a_missing_root_is_a_problem_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("ok/f"), b"f");
        let roots = [
            ShareRoot::new("Gone", dir.path().join("gone")),
            ShareRoot::new("Ok", dir.path().join("ok")),
        ];
        let result = scan(&roots, &ScanOptions::default()).unwrap();
        assert_eq!(sorted_vpaths(&result), ["Ok/f"]);
        assert_eq!(result.problems.len(), 1);
        assert_eq!(result.incomplete, vec![dir.path().join("gone")]);
    }

    #[cfg(unix)]
    #[test]
    fn symlink_loops_and_dangling_links() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("share");
        write(&root.join("a/file"), b"f");
        symlink(&root, root.join("a/loop")).unwrap();
        symlink(root.join("a"), root.join("again")).unwrap();
        symlink(root.join("nowhere"), root.join("dangling")).unwrap();
        symlink(root.join("a/file"), root.join("alias")).unwrap();
        let roots = [ShareRoot { follow_symlinks: true, ..ShareRoot::new("S", root.clone()) }];

        let result = scan(&roots, &ScanOptions::default()).unwrap();
        let files = sorted_vpaths(&result);
        // "a" is walked once, through whichever name came first.
        assert_eq!(files.len(), 2, "{files:?}");
        assert!(files.contains(&"S/alias".to_string()), "{files:?}");
        assert!(files.contains(&"S/a/file".into()) || files.contains(&"S/again/file".into()));
        assert_eq!(result.problems.len(), 1, "{:?}", result.problems);
        assert!(result.problems[0].path.ends_with("dangling"));

        // The default: no link is followed, and they are counted.
        let result = scan(&[ShareRoot::new("S", root.clone())], &ScanOptions::default()).unwrap();
        assert_eq!(sorted_vpaths(&result), ["S/a/file"]);
        assert!(result.problems.is_empty());
        assert_eq!(result.links_skipped, 4);
    }

    #[cfg(unix)]
    #[test]
    fn unreadable_folders_are_skipped_and_kept_in_the_store() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("share");
        write(&root.join("open/f"), b"f");
        write(&root.join("locked/g"), b"g");
        let locked = fs::canonicalize(root.join("locked")).unwrap();
        let roots = [ShareRoot::new("S", root.clone())];

        let mut store = Store::open_in_memory().unwrap();
        let first = scan(&roots, &ScanOptions::default()).unwrap();
        for f in &first.files {
            store.put(&crate::share::hasher::hash_file(&f.fs_path).unwrap()).unwrap();
        }

        fs::set_permissions(&locked, fs::Permissions::from_mode(0o000)).unwrap();
        let readable_anyway = fs::read_dir(&locked).is_ok(); // running as root
        let result = scan(&roots, &ScanOptions::default()).unwrap();
        let plan = plan(&store, &result).unwrap();
        fs::set_permissions(&locked, fs::Permissions::from_mode(0o755)).unwrap();
        if readable_anyway {
            assert_eq!(sorted_vpaths(&result), ["S/locked/g", "S/open/f"]);
            return;
        }
        assert_eq!(sorted_vpaths(&result), ["S/open/f"]);
        assert_eq!(result.incomplete, vec![locked.clone()]);
        assert_eq!(result.problems.len(), 1);
        assert!(plan.gone.is_empty(), "{:?}", plan.gone);
        assert_eq!(plan.known.len(), 1);
    }

    #[test]
    fn a_missing_root_keeps_its_hashes() {
        // An unmounted disk must not cost its hashes.
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("disk/f"), b"f");
        write(&dir.path().join("other/g"), b"g");
        let roots = [
            ShareRoot::new("Disk", dir.path().join("disk")),
            ShareRoot::new("Other", dir.path().join("other")),
        ];
        let mut store = Store::open_in_memory().unwrap();
        for f in &scan(&roots, &ScanOptions::default()).unwrap().files {
            store.put(&crate::share::hasher::hash_file(&f.fs_path).unwrap()).unwrap();
        }
        fs::rename(dir.path().join("disk"), dir.path().join("unmounted")).unwrap();
        fs::remove_file(dir.path().join("other/g")).unwrap();
        let result = scan(&roots, &ScanOptions::default()).unwrap();
        let p = plan(&store, &result).unwrap();
        assert!(result.files.is_empty());
        assert_eq!(p.gone, vec![fs::canonicalize(dir.path()).unwrap().join("other/g")]);
    }

    #[test]
    fn plan_sorts_out_known_changed_new_and_gone() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("share");
        for name in ["a", "b", "c", "d"] {
            write(&root.join(name), name.as_bytes());
        }
        let roots = [ShareRoot::new("S", root.clone())];
        let mut store = Store::open_in_memory().unwrap();
        let first = scan(&roots, &ScanOptions::default()).unwrap();
        let p = plan(&store, &first).unwrap();
        assert_eq!(p.to_hash.len(), 4);
        assert!(p.known.is_empty() && p.gone.is_empty());
        for f in &first.files {
            store.put(&crate::share::hasher::hash_file(&f.fs_path).unwrap()).unwrap();
        }

        fs::write(root.join("b"), b"bigger b").unwrap();
        fs::remove_file(root.join("c")).unwrap();
        write(&root.join("e"), b"e");
        let second = scan(&roots, &ScanOptions::default()).unwrap();
        let p = plan(&store, &second).unwrap();
        let name = |i: usize| second.files[i].virtual_path.clone();
        let mut known: Vec<String> = p.known.iter().map(|&(i, _)| name(i)).collect();
        known.sort();
        let mut to_hash: Vec<String> = p.to_hash.iter().map(|&i| name(i)).collect();
        to_hash.sort();
        assert_eq!(known, ["S/a", "S/d"]);
        assert_eq!(to_hash, ["S/b", "S/e"]);
        assert_eq!(p.gone, vec![fs::canonicalize(&root).unwrap().join("c")]);
        let a = p.known.iter().find(|&&(i, _)| name(i) == "S/a").unwrap();
        assert_eq!(a.1, crate::proto::tth::tree_root(b"a"));
        assert_eq!(p.files_to_hash(&second.files).len(), 2);
    }
}
