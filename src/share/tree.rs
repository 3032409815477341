//! The in-memory share tree: every shared folder and file by virtual path,
//! with its size, modification time and TTH, kept compact enough for a
//! million files.
//!
//! This module owns the tree's shape and the invariants below. It never does
//! I/O, never hashes and never reads a clock: the folder scan and the hasher
//! (`share::scan`, `share::hasher`) feed it [`ShareEntry`] values, and
//! `share::filelist` and `share::index` read it.
//!
//! # Shape
//!
//! A hidden top node ([`ShareTree::top`]) holds the *virtual roots*: the
//! folder names the user shares under ("Music", "Books"). A virtual path is
//! the root name, the folders and the file name joined by `/`
//! (`"Music/Beatles/Help.mp3"`); a leading `/` (the ADC form) is accepted
//! everywhere a path is taken. Several real folders may map to the same
//! virtual root: their entries simply land in the same virtual folder.
//!
//! # Invariants
//!
//! - Names are unique **case-insensitively** inside a folder (ADC requires it
//!   and DC++ relies on it). When two entries collide — `Help.mp3` and
//!   `help.mp3`, a file and a folder of the same name, or folders `Beatles`
//!   and `beatles` — the **later one is skipped**, together with anything
//!   below it: [`ShareTree::from_entries`] logs a warning and returns the
//!   collision in its warning list, [`ShareTree::insert`] returns
//!   [`TreeError::Collision`] and changes nothing. Case-variant folders are
//!   not merged, because the virtual path must stay the real path's image
//!   for uploads to find the file again.
//! - A name is valid when it is not empty, not `.` or `..`, has no `/` or `\`
//!   (the ADC and NMDC separators), no control character and no U+FFFE or
//!   U+FFFF (neither can appear in an XML 1.0 file list), and is at most
//!   65,535 bytes long.
//! - Files without a TTH are kept (so that the hasher can fill it in later)
//!   but are not *listed*: they count in [`ShareTree::pending_files`] only,
//!   never in the share size, the file list or search results. A folder is
//!   listed when at least one hashed file lies somewhere below it.
//! - The share size and file count ([`ShareTree::shared_size`],
//!   [`ShareTree::shared_files`]) and every folder's totals are kept up to
//!   date on each change.
//!
//! # Memory
//!
//! Nodes are fixed 56-byte records in one vector, addressed by [`NodeId`];
//! all names live in one string arena; a folder keeps its children as a
//! vector of ids sorted by case-folded name (binary search for lookups, and
//! the file list comes out sorted). Removed nodes go to a free list and
//! their ids are reused; the name arena is compacted when more than half of
//! it is garbage. `benches/share_index.rs` measures the bytes per entry.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};

use crate::proto::tth::Tth;

/// One shared file as the folder scan and the hasher report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareEntry {
    /// Virtual path: root name, folders and file name joined by `/`.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Tiger tree root; `None` while the file is not hashed yet.
    pub tth: Option<Tth>,
    /// Modification time, seconds since the Unix epoch.
    pub mtime: u64,
}

/// The address of a folder or file in a [`ShareTree`].
///
/// Ids come only from the tree. An id stays valid until the entry is
/// removed; afterwards the id may be reused by a new entry.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct NodeId(u32);

impl NodeId {
    /// The id as an index (dense, starting at 0 for the top node).
    pub fn index(self) -> usize {
        self.0 as usize
    }

    pub(crate) fn raw(self) -> u32 {
        self.0
    }

    pub(crate) fn from_raw(raw: u32) -> NodeId {
        NodeId(raw)
    }
}

/// Whether a node is a file or a folder.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum EntryKind {
    /// A shared file.
    File,
    /// A folder (a virtual root or a folder below one).
    Folder,
}

/// Why a change to the share tree was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeError {
    /// The path or one of its names is not acceptable.
    #[error("invalid share path {path:?}: {reason}")]
    InvalidPath {
        /// The offending virtual path.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A name collides case-insensitively with an existing entry.
    #[error(
        "not sharing {path:?}: its name collides with {existing:?} \
         (names must be unique case-insensitively inside a folder)"
    )]
    Collision {
        /// The entry that was skipped.
        path: String,
        /// The entry that was there first.
        existing: String,
    },
    /// Nothing is shared at that path.
    #[error("nothing is shared at {path:?}")]
    NotFound {
        /// The path that was looked up.
        path: String,
    },
    /// The name arena would exceed 4 GiB.
    #[error("cannot share {path:?}: the names of the share exceed 4 GiB")]
    TooLarge {
        /// The entry that did not fit.
        path: String,
    },
}

/// What [`ShareTree::insert`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A new file, and the folders that had to be created for it (top-down).
    Added {
        /// The new file.
        file: NodeId,
        /// Folders created on the way, outermost first.
        new_folders: Vec<NodeId>,
    },
    /// An existing file got a new size, mtime and/or TTH.
    Updated {
        /// The file.
        file: NodeId,
        /// Its TTH before the update.
        old_tth: Option<Tth>,
    },
}

/// One node removed by [`ShareTree::remove`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemovedEntry {
    /// The former id (free for reuse now).
    pub id: NodeId,
    /// File or folder.
    pub kind: EntryKind,
    /// The file's TTH, if it had one.
    pub tth: Option<Tth>,
}

const NIL: u32 = u32::MAX;
const TOP: u32 = 0;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Free,
    File,
    Dir,
}

/// One fixed-size record (56 bytes); see the module docs.
#[derive(Clone, Debug)]
struct Node {
    /// File: its size. Folder: total size of the hashed files below it.
    size: u64,
    /// File: modification time. Folder: unused.
    mtime: u64,
    /// File: the TTH when `hashed`. Folder: unused.
    tth: [u8; 24],
    name_off: u32,
    parent: u32,
    /// Folder: index into `dirs`. Free: next free node (`NIL` ends the list).
    aux: u32,
    name_len: u16,
    kind: Kind,
    hashed: bool,
}

#[derive(Debug, Default)]
struct Dir {
    /// Children, sorted by case-folded name.
    children: Vec<NodeId>,
    /// Hashed files anywhere below.
    files: u64,
    /// Nodes (files and folders) anywhere below.
    nodes: u64,
}

/// The share tree; see the module docs.
pub struct ShareTree {
    nodes: Vec<Node>,
    dirs: Vec<Dir>,
    names: String,
    /// Bytes of `names` no live node refers to.
    garbage: usize,
    free_node: u32,
    free_dirs: Vec<u32>,
    live: usize,
    pending: u64,
}

impl fmt::Debug for ShareTree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShareTree")
            .field("nodes", &self.live)
            .field("shared_files", &self.shared_files())
            .field("shared_size", &self.shared_size())
            .field("pending_files", &self.pending)
            .finish()
    }
}

impl Default for ShareTree {
    fn default() -> Self {
        ShareTree::new()
    }
}

pub(crate) use crate::search::{fold, fold_into};

/// Compares two names the way folder children are ordered: by case-folded
/// characters.
pub(crate) fn cmp_folded(a: &str, b: &str) -> Ordering {
    if a.is_ascii() && b.is_ascii() {
        a.bytes().map(|c| c.to_ascii_lowercase()).cmp(b.bytes().map(|c| c.to_ascii_lowercase()))
    } else {
        a.chars().flat_map(char::to_lowercase).cmp(b.chars().flat_map(char::to_lowercase))
    }
}

/// Checks one name against the rules in the module docs.
pub(crate) fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("empty name");
    }
    if name == "." || name == ".." {
        return Err("\".\" and \"..\" are not valid names");
    }
    if name.len() > usize::from(u16::MAX) {
        return Err("name longer than 65535 bytes");
    }
    for c in name.chars() {
        match c {
            '/' | '\\' => return Err("a name may not contain '/' or '\\'"),
            c if c < ' ' || c == '\u{7f}' => {
                return Err("a name may not contain control characters")
            }
            '\u{fffe}' | '\u{ffff}' => return Err("a name may not contain U+FFFE or U+FFFF"),
            _ => {}
        }
    }
    Ok(())
}

/// Splits a virtual path into names: one leading and one trailing `/` are
/// allowed (the ADC forms `/dir/file` and `/dir/`).
fn split_path(path: &str) -> Result<Vec<&str>, TreeError> {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    if trimmed.is_empty() {
        return Ok(Vec::new());
    }
    let names: Vec<&str> = trimmed.split('/').collect();
    for name in &names {
        check_name(name)
            .map_err(|reason| TreeError::InvalidPath { path: path.to_string(), reason })?;
    }
    Ok(names)
}

/// A cheap, stable hash of a name for the bulk-build folder map.
fn name_hash(name: &str) -> u64 {
    let mut fx = FxHasher::default();
    name.hash(&mut fx);
    fx.finish()
}

/// A small multiplicative hasher (FxHash-style) for trusted keys: node ids,
/// trigrams, names of one's own share. Not DoS resistant, and it need not be.
#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher {
    hash: u64,
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        // Fold the high bits down: hash tables index with the low bits.
        self.hash ^ (self.hash >> 29) ^ (self.hash >> 47)
    }
}

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

/// `BuildHasher` for [`FxHasher`].
pub(crate) type FxBuild = std::hash::BuildHasherDefault<FxHasher>;

impl ShareTree {
    /// An empty share.
    pub fn new() -> ShareTree {
        let top = Node {
            size: 0,
            mtime: 0,
            tth: [0; 24],
            name_off: 0,
            parent: NIL,
            aux: 0,
            name_len: 0,
            kind: Kind::Dir,
            hashed: false,
        };
        ShareTree {
            nodes: vec![top],
            dirs: vec![Dir::default()],
            names: String::new(),
            garbage: 0,
            free_node: NIL,
            free_dirs: Vec::new(),
            live: 0,
            pending: 0,
        }
    }

    /// Builds a tree from many entries at once (much faster than inserting
    /// them one by one).
    ///
    /// Entries that cannot be shared — an invalid path, or a name colliding
    /// case-insensitively with an entry that came earlier in `entries` — are
    /// skipped with a `log::warn!` and returned as the second value.
    pub fn from_entries<I>(entries: I) -> (ShareTree, Vec<TreeError>)
    where
        I: IntoIterator<Item = ShareEntry>,
    {
        let entries = entries.into_iter();
        let mut tree = ShareTree::new();
        let mut warnings = Vec::new();
        let (hint, _) = entries.size_hint();
        tree.nodes.reserve_exact(hint + hint / 16);
        tree.names.reserve_exact(hint * 24);
        // Folder lookup during the build: (parent, hash of exact name) ->
        // folder. Folders are matched by exact name here; case-variant
        // duplicates are weeded out after sorting, in `finish_bulk`.
        let mut folders: HashMap<(u32, u64), u32, FxBuild> = HashMap::default();
        for entry in entries {
            if let Err(e) = tree.bulk_add(&mut folders, entry) {
                warnings.push(e);
            }
        }
        drop(folders);
        tree.finish_bulk(&mut warnings);
        for w in &warnings {
            log::warn!("{w}");
        }
        (tree, warnings)
    }

    fn bulk_add(
        &mut self,
        folders: &mut HashMap<(u32, u64), u32, FxBuild>,
        entry: ShareEntry,
    ) -> Result<(), TreeError> {
        let names = split_path(&entry.path)?;
        let Some((file_name, dir_names)) = names.split_last() else {
            return Err(TreeError::InvalidPath { path: entry.path.clone(), reason: "empty path" });
        };
        if dir_names.is_empty() {
            return Err(TreeError::InvalidPath {
                path: entry.path.clone(),
                reason: "a file must be inside a virtual root folder (\"Root/file\")",
            });
        }
        let mut cur = TOP;
        for name in dir_names {
            let key = (cur, name_hash(name));
            let found = match folders.get(&key) {
                Some(&d) if self.name_of(d) == *name => Some(d),
                // A hash collision between two different names: rare enough
                // for a linear look through the parent's children.
                Some(_) => self.dir(cur).children.iter().map(|c| c.0).find(|&c| {
                    self.nodes[c as usize].kind == Kind::Dir && self.name_of(c) == *name
                }),
                None => None,
            };
            cur = match found {
                Some(d) => d,
                None => {
                    let d = self.alloc(name, Kind::Dir, cur, &entry.path)?;
                    self.dir_mut(cur).children.push(NodeId(d));
                    folders.entry(key).or_insert(d);
                    d
                }
            };
        }
        let f = self.alloc(file_name, Kind::File, cur, &entry.path)?;
        self.set_file_data(f, &entry);
        self.dir_mut(cur).children.push(NodeId(f));
        Ok(())
    }

    /// Sorts every folder, drops case-insensitive duplicates (the later one
    /// loses) and computes the totals. Only valid right after bulk adds on a
    /// fresh tree, where every parent id is smaller than its children's.
    fn finish_bulk(&mut self, warnings: &mut Vec<TreeError>) {
        let mut doomed: Vec<u32> = Vec::new();
        for di in 0..self.dirs.len() {
            let mut children = std::mem::take(&mut self.dirs[di].children);
            // Stable sort: among equal folded names the earlier entry stays
            // first and wins.
            children.sort_by(|&a, &b| {
                cmp_folded(self.name_of(a.0), self.name_of(b.0)).then(a.0.cmp(&b.0))
            });
            let mut kept: Vec<NodeId> = Vec::with_capacity(children.len());
            for c in children {
                match kept.last() {
                    Some(&prev)
                        if cmp_folded(self.name_of(prev.0), self.name_of(c.0))
                            == Ordering::Equal =>
                    {
                        warnings.push(TreeError::Collision {
                            path: self.path(c),
                            existing: self.path(prev),
                        });
                        doomed.push(c.0);
                    }
                    _ => kept.push(c),
                }
            }
            kept.shrink_to_fit();
            self.dirs[di].children = kept;
        }
        for d in doomed {
            let mut ids = Vec::new();
            self.collect_subtree(d, &mut ids);
            for id in ids {
                self.release(id);
            }
        }
        // Totals, bottom-up: children always have larger ids than parents.
        self.pending = 0;
        for i in (1..self.nodes.len()).rev() {
            let n = &self.nodes[i];
            let (parent, kind) = (n.parent, n.kind);
            let (size, files, nodes) = match kind {
                Kind::Free => continue,
                Kind::File if n.hashed => (n.size, 1, 1),
                Kind::File => {
                    self.pending += 1;
                    (0, 0, 1)
                }
                Kind::Dir => {
                    let d = &self.dirs[n.aux as usize];
                    (n.size, d.files, d.nodes + 1)
                }
            };
            let p = &mut self.nodes[parent as usize];
            p.size += size;
            let pd = &mut self.dirs[p.aux as usize];
            pd.files += files;
            pd.nodes += nodes;
        }
        self.nodes.shrink_to_fit();
        self.dirs.shrink_to_fit();
        self.names.shrink_to_fit();
    }

    // ----- reading -----

    /// The hidden top node; its children are the virtual roots.
    pub fn top(&self) -> NodeId {
        NodeId(TOP)
    }

    /// The virtual roots, sorted case-insensitively.
    pub fn roots(&self) -> &[NodeId] {
        self.children(NodeId(TOP))
    }

    /// Total size of the hashed (listed) files: the share size to announce.
    pub fn shared_size(&self) -> u64 {
        self.nodes[TOP as usize].size
    }

    /// Number of hashed (listed) files: the file count to announce.
    pub fn shared_files(&self) -> u64 {
        self.dirs[0].files
    }

    /// Files in the tree still waiting for their TTH.
    pub fn pending_files(&self) -> u64 {
        self.pending
    }

    /// Live nodes (files and folders, listed or not), without the top node.
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether the tree holds nothing at all.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// One past the largest node index in use (for tables indexed by id).
    pub fn id_bound(&self) -> usize {
        self.nodes.len()
    }

    /// The node with this index, if it is live (the top node included).
    pub fn id_at(&self, index: usize) -> Option<NodeId> {
        match self.nodes.get(index) {
            Some(n) if n.kind != Kind::Free => Some(NodeId(index as u32)),
            _ => None,
        }
    }

    /// Finds a folder or file by virtual path, case-insensitively. The empty
    /// path and `/` name the top node.
    pub fn lookup(&self, path: &str) -> Option<NodeId> {
        let names = split_path(path).ok()?;
        let mut cur = TOP;
        for name in names {
            if self.nodes[cur as usize].kind != Kind::Dir {
                return None;
            }
            let i = self.find_child(cur, name).ok()?;
            cur = self.dir(cur).children[i].0;
        }
        Some(NodeId(cur))
    }

    /// File or folder; `None` for a removed id.
    pub fn kind(&self, id: NodeId) -> Option<EntryKind> {
        match self.nodes.get(id.index())?.kind {
            Kind::File => Some(EntryKind::File),
            Kind::Dir => Some(EntryKind::Folder),
            Kind::Free => None,
        }
    }

    /// Whether `id` is a live folder (the top node included).
    pub fn is_dir(&self, id: NodeId) -> bool {
        self.nodes.get(id.index()).is_some_and(|n| n.kind == Kind::Dir)
    }

    /// Whether `id` is a live file.
    pub fn is_file(&self, id: NodeId) -> bool {
        self.nodes.get(id.index()).is_some_and(|n| n.kind == Kind::File)
    }

    /// The entry's own name ("" for the top node and removed ids).
    pub fn name(&self, id: NodeId) -> &str {
        match self.nodes.get(id.index()) {
            Some(n) if n.kind != Kind::Free => self.name_of(id.0),
            _ => "",
        }
    }

    /// File: its size. Folder: total size of the hashed files below it.
    pub fn size(&self, id: NodeId) -> u64 {
        self.nodes.get(id.index()).map_or(0, |n| n.size)
    }

    /// A file's modification time (0 for folders).
    pub fn mtime(&self, id: NodeId) -> u64 {
        self.nodes.get(id.index()).map_or(0, |n| n.mtime)
    }

    /// A file's TTH, if it is hashed.
    pub fn tth(&self, id: NodeId) -> Option<Tth> {
        match self.nodes.get(id.index()) {
            Some(n) if n.kind == Kind::File && n.hashed => Some(Tth(n.tth)),
            _ => None,
        }
    }

    /// The containing folder (`None` for the top node and removed ids).
    pub fn parent(&self, id: NodeId) -> Option<NodeId> {
        match self.nodes.get(id.index()) {
            Some(n) if n.kind != Kind::Free && n.parent != NIL => Some(NodeId(n.parent)),
            _ => None,
        }
    }

    /// A folder's children sorted case-insensitively (empty for files).
    pub fn children(&self, id: NodeId) -> &[NodeId] {
        match self.nodes.get(id.index()) {
            Some(n) if n.kind == Kind::Dir => &self.dirs[n.aux as usize].children,
            _ => &[],
        }
    }

    /// Hashed files anywhere below a folder (1 or 0 for a file).
    pub fn files_below(&self, id: NodeId) -> u64 {
        match self.nodes.get(id.index()) {
            Some(n) if n.kind == Kind::Dir => self.dirs[n.aux as usize].files,
            Some(n) if n.kind == Kind::File => u64::from(n.hashed),
            _ => 0,
        }
    }

    /// Nodes (files and folders, listed or not) anywhere below a folder.
    pub fn nodes_below(&self, id: NodeId) -> u64 {
        match self.nodes.get(id.index()) {
            Some(n) if n.kind == Kind::Dir => self.dirs[n.aux as usize].nodes,
            _ => 0,
        }
    }

    /// Whether the entry appears in file lists and search results: a hashed
    /// file, or a folder with a hashed file somewhere below.
    pub fn is_listed(&self, id: NodeId) -> bool {
        id.0 != TOP && self.files_below(id) > 0
    }

    /// The virtual path, `/`-separated, without a leading `/`
    /// ("Music/Beatles/Help.mp3"); "" for the top node.
    pub fn path(&self, id: NodeId) -> String {
        let mut chain = Vec::new();
        let mut cur = id.0;
        while cur != TOP && cur != NIL {
            match self.nodes.get(cur as usize) {
                Some(n) if n.kind != Kind::Free => {
                    chain.push(cur);
                    cur = n.parent;
                }
                _ => break,
            }
        }
        let mut out = String::new();
        for (i, &n) in chain.iter().rev().enumerate() {
            if i > 0 {
                out.push('/');
            }
            out.push_str(self.name_of(n));
        }
        out
    }

    /// Calls `f` for `id` and every node below it, parents before children.
    pub fn walk(&self, id: NodeId, mut f: impl FnMut(NodeId)) {
        if self.kind(id).is_none() {
            return;
        }
        let mut stack = vec![id];
        while let Some(n) = stack.pop() {
            f(n);
            stack.extend(self.children(n).iter().rev());
        }
    }

    // ----- changing -----

    /// Adds a file, or updates it (size, mtime, TTH) if a file with exactly
    /// this path exists. Missing folders are created.
    ///
    /// Fails, changing nothing, when the path is invalid or when a name on
    /// it collides case-insensitively with a different existing entry.
    pub fn insert(&mut self, entry: ShareEntry) -> Result<Change, TreeError> {
        let names = split_path(&entry.path)?;
        if names.len() < 2 {
            return Err(TreeError::InvalidPath {
                path: entry.path.clone(),
                reason: "a file must be inside a virtual root folder (\"Root/file\")",
            });
        }
        let last = names.len() - 1;
        let mut cur = TOP;
        let mut new_folders = Vec::new();
        for (depth, name) in names.iter().enumerate() {
            let want = if depth == last { Kind::File } else { Kind::Dir };
            match self.find_child(cur, name) {
                Ok(i) => {
                    let c = self.dir(cur).children[i].0;
                    if self.nodes[c as usize].kind != want || self.name_of(c) != *name {
                        return Err(TreeError::Collision {
                            path: entry.path.clone(),
                            existing: self.path(NodeId(c)),
                        });
                    }
                    if want == Kind::File {
                        let old_tth = self.tth(NodeId(c));
                        self.detach_totals(c);
                        self.set_file_data(c, &entry);
                        self.attach_totals(c);
                        return Ok(Change::Updated { file: NodeId(c), old_tth });
                    }
                    cur = c;
                }
                Err(pos) => {
                    let n = self.alloc(name, want, cur, &entry.path)?;
                    if want == Kind::File {
                        self.set_file_data(n, &entry);
                    }
                    self.dir_mut(cur).children.insert(pos, NodeId(n));
                    self.attach_totals(n);
                    if want == Kind::File {
                        return Ok(Change::Added { file: NodeId(n), new_folders });
                    }
                    new_folders.push(NodeId(n));
                    cur = n;
                }
            }
        }
        // `names` has at least two elements and the last one returns above.
        Err(TreeError::InvalidPath { path: entry.path, reason: "empty path" })
    }

    /// Removes a file, or a folder with everything below it. Returns what was
    /// removed, parents before children.
    pub fn remove(&mut self, path: &str) -> Result<Vec<RemovedEntry>, TreeError> {
        let id = match self.lookup(path) {
            Some(id) if id.0 != TOP => id.0,
            _ => return Err(TreeError::NotFound { path: path.to_string() }),
        };
        self.detach_totals(id);
        let parent = self.nodes[id as usize].parent;
        if let Ok(i) = self.find_child(parent, self.name_of(id)) {
            self.dir_mut(parent).children.remove(i);
        }
        let mut ids = Vec::new();
        self.collect_subtree(id, &mut ids);
        let mut removed = Vec::with_capacity(ids.len());
        for n in ids {
            let kind = if self.nodes[n as usize].kind == Kind::Dir {
                EntryKind::Folder
            } else {
                EntryKind::File
            };
            removed.push(RemovedEntry { id: NodeId(n), kind, tth: self.tth(NodeId(n)) });
            self.release(n);
        }
        self.maybe_compact_names();
        Ok(removed)
    }

    // ----- internals -----

    fn name_of(&self, id: u32) -> &str {
        let n = &self.nodes[id as usize];
        let start = n.name_off as usize;
        self.names.get(start..start + usize::from(n.name_len)).unwrap_or("")
    }

    fn dir(&self, id: u32) -> &Dir {
        &self.dirs[self.nodes[id as usize].aux as usize]
    }

    fn dir_mut(&mut self, id: u32) -> &mut Dir {
        let aux = self.nodes[id as usize].aux as usize;
        &mut self.dirs[aux]
    }

    fn find_child(&self, dir: u32, name: &str) -> Result<usize, usize> {
        self.dir(dir).children.binary_search_by(|c| cmp_folded(self.name_of(c.0), name))
    }

    fn alloc(&mut self, name: &str, kind: Kind, parent: u32, path: &str) -> Result<u32, TreeError> {
        let name_off = u32::try_from(self.names.len())
            .ok()
            .filter(|off| off.checked_add(name.len() as u32).is_some())
            .ok_or_else(|| TreeError::TooLarge { path: path.to_string() })?;
        self.names.push_str(name);
        let aux = if kind == Kind::Dir {
            match self.free_dirs.pop() {
                Some(d) => d,
                None => {
                    self.dirs.push(Dir::default());
                    (self.dirs.len() - 1) as u32
                }
            }
        } else {
            0
        };
        let node = Node {
            size: 0,
            mtime: 0,
            tth: [0; 24],
            name_off,
            parent,
            aux,
            // check_name bounds names to u16::MAX bytes.
            name_len: name.len() as u16,
            kind,
            hashed: false,
        };
        self.live += 1;
        if self.free_node != NIL {
            let id = self.free_node;
            self.free_node = self.nodes[id as usize].aux;
            self.nodes[id as usize] = node;
            Ok(id)
        } else {
            let id = u32::try_from(self.nodes.len())
                .ok()
                .filter(|&id| id != NIL)
                .ok_or_else(|| TreeError::TooLarge { path: path.to_string() })?;
            self.nodes.push(node);
            Ok(id)
        }
    }

    fn release(&mut self, id: u32) {
        let n = &mut self.nodes[id as usize];
        if n.kind == Kind::Free {
            return;
        }
        self.garbage += usize::from(n.name_len);
        if n.kind == Kind::Dir {
            let d = n.aux;
            self.dirs[d as usize] = Dir::default();
            self.free_dirs.push(d);
        } else if !n.hashed {
            self.pending = self.pending.saturating_sub(1);
        }
        n.kind = Kind::Free;
        n.hashed = false;
        n.aux = self.free_node;
        self.free_node = id;
        self.live -= 1;
    }

    fn set_file_data(&mut self, id: u32, entry: &ShareEntry) {
        let n = &mut self.nodes[id as usize];
        n.size = entry.size;
        n.mtime = entry.mtime;
        match entry.tth {
            Some(t) => {
                n.tth = t.0;
                n.hashed = true;
            }
            None => {
                n.tth = [0; 24];
                n.hashed = false;
            }
        }
    }

    /// What a node contributes to its ancestors: (size, hashed files, nodes,
    /// pending files).
    fn contribution(&self, id: u32) -> (u64, u64, u64, u64) {
        let n = &self.nodes[id as usize];
        match n.kind {
            Kind::File if n.hashed => (n.size, 1, 1, 0),
            Kind::File => (0, 0, 1, 1),
            Kind::Dir => {
                let d = &self.dirs[n.aux as usize];
                (n.size, d.files, d.nodes + 1, 0)
            }
            Kind::Free => (0, 0, 0, 0),
        }
    }

    fn attach_totals(&mut self, id: u32) {
        let (size, files, nodes, pending) = self.contribution(id);
        self.pending += pending;
        self.adjust_ancestors(id, |n, d| {
            n.size += size;
            d.files += files;
            d.nodes += nodes;
        });
    }

    fn detach_totals(&mut self, id: u32) {
        let (size, files, nodes, pending) = self.contribution(id);
        self.pending = self.pending.saturating_sub(pending);
        self.adjust_ancestors(id, |n, d| {
            n.size = n.size.saturating_sub(size);
            d.files = d.files.saturating_sub(files);
            d.nodes = d.nodes.saturating_sub(nodes);
        });
    }

    fn adjust_ancestors(&mut self, id: u32, f: impl Fn(&mut Node, &mut Dir)) {
        let mut cur = self.nodes[id as usize].parent;
        while cur != NIL {
            let n = &mut self.nodes[cur as usize];
            f(n, &mut self.dirs[n.aux as usize]);
            cur = n.parent;
        }
    }

    fn collect_subtree(&self, id: u32, out: &mut Vec<u32>) {
        let mut stack = vec![id];
        while let Some(n) = stack.pop() {
            out.push(n);
            if self.nodes[n as usize].kind == Kind::Dir {
                stack.extend(self.dir(n).children.iter().rev().map(|c| c.0));
            }
        }
    }

    /// Rewrites the name arena once more than half of it is garbage.
    fn maybe_compact_names(&mut self) {
        if self.garbage < 64 * 1024 || self.garbage * 2 < self.names.len() {
            return;
        }
        let mut names = String::with_capacity(self.names.len() - self.garbage);
        for n in &mut self.nodes {
            if n.kind == Kind::Free {
                continue;
            }
            let start = n.name_off as usize;
            let name = self.names.get(start..start + usize::from(n.name_len)).unwrap_or("");
            // The new arena is smaller than the old one, which fits in u32.
            n.name_off = names.len() as u32;
            names.push_str(name);
        }
        self.names = names;
        self.garbage = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tth(b: u8) -> Option<Tth> {
        Some(Tth([b; 24]))
    }

    fn entry(path: &str, size: u64, t: Option<Tth>) -> ShareEntry {
        ShareEntry { path: path.to_string(), size, tth: t, mtime: 1_700_000_000 }
    }

    #[test]
    fn node_record_is_56_bytes() {
        assert_eq!(std::mem::size_of::<Node>(), 56);
    }

    #[test]
    fn bulk_build_sorts_counts_and_skips_collisions() {
        let (tree, warnings) = ShareTree::from_entries(vec![
            entry("Music/b.mp3", 10, tth(1)),
            entry("Music/A.mp3", 20, tth(2)),
            entry("Music/a.MP3", 30, tth(3)),
            entry("Music/sub/x.flac", 40, None),
            entry("Music/SUB", 50, tth(4)),
            entry("Books/z.pdf", 5, tth(5)),
            entry("bad", 1, tth(6)),
            entry("Music/../x", 1, tth(7)),
        ]);
        assert_eq!(warnings.len(), 4, "{warnings:?}");
        let music = tree.lookup("music").unwrap();
        let names: Vec<&str> = tree.children(music).iter().map(|&c| tree.name(c)).collect();
        assert_eq!(names, ["A.mp3", "b.mp3", "sub"]);
        assert_eq!(tree.shared_files(), 3);
        assert_eq!(tree.shared_size(), 35);
        assert_eq!(tree.pending_files(), 1);
        assert_eq!(tree.size(music), 30);
        assert!(!tree.is_listed(tree.lookup("Music/sub").unwrap()));
        assert_eq!(tree.path(tree.lookup("/MUSIC/SUB/X.FLAC").unwrap()), "Music/sub/x.flac");
        let roots: Vec<&str> = tree.roots().iter().map(|&r| tree.name(r)).collect();
        assert_eq!(roots, ["Books", "Music"]);
    }

    #[test]
    fn insert_update_remove_keep_totals() {
        let mut tree = ShareTree::new();
        let Change::Added { file, new_folders } =
            tree.insert(entry("R/d/e/f.txt", 7, None)).unwrap()
        else {
            panic!("expected an add")
        };
        assert_eq!(new_folders.len(), 3);
        assert_eq!((tree.shared_files(), tree.pending_files()), (0, 1));
        assert_eq!(
            tree.insert(entry("R/d/e/f.txt", 8, tth(9))).unwrap(),
            Change::Updated { file, old_tth: None }
        );
        assert_eq!((tree.shared_files(), tree.shared_size(), tree.pending_files()), (1, 8, 0));
        assert_eq!(tree.size(tree.lookup("R/d").unwrap()), 8);
        tree.insert(entry("R/d/g.txt", 100, tth(1))).unwrap();
        assert_eq!(tree.shared_size(), 108);
        assert!(matches!(tree.insert(entry("R/D/x", 1, tth(1))), Err(TreeError::Collision { .. })));
        assert!(matches!(
            tree.insert(entry("R/d/G.TXT", 1, tth(1))),
            Err(TreeError::Collision { .. })
        ));
        assert!(matches!(
            tree.insert(entry("R/d/g.txt/x", 1, tth(1))),
            Err(TreeError::Collision { .. })
        ));
        let removed = tree.remove("r/D/e").unwrap();
        assert_eq!(removed.len(), 2);
        assert_eq!(removed[1].tth, tth(9));
        assert_eq!((tree.shared_files(), tree.shared_size()), (1, 100));
        assert!(tree.lookup("R/d/e/f.txt").is_none());
        assert!(matches!(tree.remove("R/nope"), Err(TreeError::NotFound { .. })));
        // The freed ids are reused.
        let Change::Added { file: again, .. } = tree.insert(entry("R/h", 1, tth(2))).unwrap()
        else {
            panic!("expected an add")
        };
        assert!(again.index() < 6);
        assert_eq!(tree.len(), 4);
    }

    #[test]
    fn rejects_bad_names() {
        for bad in ["", "R", "R//x", "R/./x", "R/a\\b", "R/a\u{1}", "R/\u{ffff}", "/"] {
            assert!(ShareTree::new().insert(entry(bad, 1, None)).is_err(), "{bad:?}");
        }
        assert!(ShareTree::new().insert(entry("/R/ok &<>\"' ü", 1, None)).is_ok());
    }

    #[test]
    fn unicode_names_collide_case_insensitively() {
        let mut tree = ShareTree::new();
        tree.insert(entry("R/Ärger.txt", 1, tth(1))).unwrap();
        assert!(tree.insert(entry("R/ärger.TXT", 1, tth(1))).is_err());
        assert_eq!(tree.lookup("r/ÄRGER.txt"), tree.lookup("R/Ärger.txt"));
    }

    #[test]
    fn name_arena_is_compacted() {
        let mut tree = ShareTree::new();
        let long = "x".repeat(1000);
        for i in 0..200 {
            tree.insert(entry(&format!("R/{i}{long}"), 1, tth(1))).unwrap();
        }
        for i in 0..150 {
            tree.remove(&format!("R/{i}{long}")).unwrap();
        }
        assert!(tree.names.len() < 100 * 1010, "{}", tree.names.len());
        for i in 150..200 {
            let id = tree.lookup(&format!("R/{i}{long}")).unwrap();
            assert_eq!(tree.name(id), format!("{i}{long}"));
        }
    }
}
