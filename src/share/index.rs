//! The share index: answers searches (by TTH and by words) over the share
//! tree fast enough for a million files.
//!
//! This module owns [`ShareIndex`], which owns the [`ShareTree`] so that the
//! two can never drift apart: every change goes through
//! [`ShareIndex::insert`] / [`ShareIndex::remove`]. It is protocol-neutral:
//! hub sessions turn NMDC `$Search` and ADC `SCH` into a [`SearchQuery`] and
//! the [`SearchHit`]s back into `$SR` / `RES`. It does no I/O.
//!
//! # What matches (DC++ and ADC semantics)
//!
//! - **TTH** (`tth` set, NMDC type 9, ADC `TR`): the hashed files with that
//!   root. Every other criterion is ignored, as DC++ does.
//! - **Words**: every `include` term must occur, case-insensitively, in the
//!   entry's virtual path — in its own name or in the name of a folder above
//!   it (ADC: "each filename, including the path to it"). A term is matched
//!   inside one path component: a term holding `/` or `\` is split there
//!   into several terms. No `exclude` term (ADC `NO`) may occur anywhere in
//!   the path.
//! - **Type**: [`FileType`] groups are extension lists (the NMDC search
//!   types); `Folder` (NMDC 8, ADC `TY2`) returns folders only, `File`
//!   (ADC `TY1`) files only. `extensions` (ADC `EX`) requires one of them.
//! - **Size** (`min_size`, `max_size`, `size`; inclusive): applies to files.
//!   Folders have no size to search by, so a query with any size bound, a
//!   type group or extensions returns files only.
//! - Only listed entries match: hashed files, and folders with a hashed file
//!   below. A matching folder is returned, and so is everything matching
//!   below it, in tree order, until `max_results`
//!   ([`MAX_RESULTS_PASSIVE`], [`MAX_RESULTS_ACTIVE`]).
//!
//! # How
//!
//! - TTH: an open-addressing hash table of node ids keyed by the first bytes
//!   of the root (4 bytes of id + 4 of tag per slot).
//! - Words: **trigram posting lists** over the case-folded names (UTF-8
//!   bytes, with a `\0` end marker so that every two-byte substring is the
//!   start of some trigram). Each trigram keeps two sorted id lists, files
//!   and folders, delta-varint compressed. A term of three bytes or more
//!   takes the candidates of its rarest trigram; a two-byte term the union of
//!   its `xy?` trigrams; a one-byte term cannot use the index. The query is
//!   driven by the cheapest term — the cost of a term counts its file
//!   candidates plus everything below the folders that contain it, since a
//!   folder hit brings its whole subtree in. Folder hits are expanded
//!   depth-first carrying the set of terms matched on the path; file
//!   candidates are first intersected, list against list, with the other
//!   terms that no folder name contains (those must be in the file's own
//!   name), then checked against their folder path (memoised per folder).
//!   The search stops at `max_results`. With no usable term (only one-byte
//!   terms, or none) the tree is walked depth-first.
//! - Updates: a new node's ids go to small sorted "extra" lists, merged into
//!   the compressed lists when they grow; removed ids stay in the lists as
//!   stale entries (every candidate is checked against the live tree, so they
//!   are harmless) until a quarter of the nodes are stale, then the lists are
//!   rebuilt.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use crate::proto::tth::Tth;
use crate::share::tree::{
    fold, fold_into, Change, EntryKind, FxBuild, NodeId, RemovedEntry, ShareEntry, ShareTree,
    TreeError,
};

/// Results to send a passive searcher (through the hub).
pub const MAX_RESULTS_PASSIVE: usize = 5;
/// Results to send an active searcher (by UDP).
pub const MAX_RESULTS_ACTIVE: usize = 10;

/// At most this many include terms are used (one bit each); more are ignored.
pub const MAX_TERMS: usize = 64;

/// Folder candidates of one term checked when choosing the driving term;
/// past this the term is treated as too costly to drive.
const DIR_VERIFY_CAP: usize = 4096;
/// A term's list filters the driver's candidates only when it is at most
/// this many times longer (walking a huge list costs more than it saves).
const FILTER_RATIO: usize = 64;

/// A search type group (NMDC types 1–8; ADC `TY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FileType {
    /// Anything (NMDC 1, and 9 for TTH searches).
    #[default]
    Any,
    /// Audio files (NMDC 2).
    Audio,
    /// Archives (NMDC 3).
    Compressed,
    /// Documents (NMDC 4).
    Document,
    /// Executables and installers (NMDC 5).
    Executable,
    /// Pictures (NMDC 6).
    Picture,
    /// Video (NMDC 7).
    Video,
    /// Folders only (NMDC 8, ADC `TY2`).
    Folder,
    /// Files only, any extension (ADC `TY1`).
    File,
}

const AUDIO: &[&str] = &[
    "mp3", "mp2", "mpa", "wav", "wma", "flac", "ogg", "oga", "opus", "m4a", "aac", "ape", "aif",
    "aiff", "au", "mid", "midi", "ra", "ram", "wv", "mka", "ac3", "dts", "m3u", "pls", "mpc",
];
const COMPRESSED: &[&str] = &[
    "zip", "rar", "7z", "tar", "gz", "tgz", "bz2", "tbz", "tbz2", "xz", "txz", "zst", "lz", "lzma",
    "z", "ace", "arj", "lha", "lzh", "cab", "sit", "sitx", "hqx", "sea", "r00", "r01",
];
const DOCUMENT: &[&str] = &[
    "txt", "nfo", "doc", "docx", "odt", "rtf", "pdf", "ps", "tex", "htm", "html", "xhtml", "xml",
    "md", "epub", "mobi", "djvu", "xls", "xlsx", "ods", "ppt", "pptx", "odp", "csv", "chm", "wri",
    "fb2", "azw3",
];
const EXECUTABLE: &[&str] = &[
    "exe", "com", "bat", "cmd", "msi", "scr", "pif", "jar", "apk", "deb", "rpm", "appimage", "dmg",
    "sh", "run", "bin",
];
const PICTURE: &[&str] = &[
    "jpg", "jpeg", "jpe", "png", "gif", "bmp", "tif", "tiff", "ico", "webp", "svg", "psd", "raw",
    "cr2", "nef", "dng", "heic", "heif", "pcx", "tga", "xcf", "jxl", "avif",
];
const VIDEO: &[&str] = &[
    "avi", "mkv", "mp4", "m4v", "mov", "wmv", "mpg", "mpeg", "mpe", "vob", "ogm", "ogv", "webm",
    "flv", "asf", "divx", "rm", "rmvb", "ts", "m2ts", "mts", "3gp",
];

impl FileType {
    /// The group of an NMDC search type. 9 (TTH) gives `Any`: the caller
    /// puts the `TTH:` root into [`SearchQuery::tth`]. Unknown types (10–13
    /// exist in the wild) give `Any`, so that such searches still get
    /// answers.
    pub fn from_nmdc(code: u8) -> FileType {
        match code {
            2 => FileType::Audio,
            3 => FileType::Compressed,
            4 => FileType::Document,
            5 => FileType::Executable,
            6 => FileType::Picture,
            7 => FileType::Video,
            8 => FileType::Folder,
            _ => FileType::Any,
        }
    }

    /// The NMDC search type (`File` has none and gives 1, any).
    pub fn to_nmdc(self) -> u8 {
        match self {
            FileType::Any | FileType::File => 1,
            FileType::Audio => 2,
            FileType::Compressed => 3,
            FileType::Document => 4,
            FileType::Executable => 5,
            FileType::Picture => 6,
            FileType::Video => 7,
            FileType::Folder => 8,
        }
    }

    /// ADC `TY`: 1 files, 2 folders, anything else any.
    pub fn from_adc_ty(ty: u8) -> FileType {
        match ty {
            1 => FileType::File,
            2 => FileType::Folder,
            _ => FileType::Any,
        }
    }

    /// The extensions of a group (lower case, no dot); empty for `Any`,
    /// `File` and `Folder`.
    pub fn extensions(self) -> &'static [&'static str] {
        match self {
            FileType::Audio => AUDIO,
            FileType::Compressed => COMPRESSED,
            FileType::Document => DOCUMENT,
            FileType::Executable => EXECUTABLE,
            FileType::Picture => PICTURE,
            FileType::Video => VIDEO,
            FileType::Any | FileType::Folder | FileType::File => &[],
        }
    }
}

/// A protocol-neutral search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchQuery {
    /// Search by TTH; when set, everything else but `max_results` is ignored.
    pub tth: Option<Tth>,
    /// Terms that must all occur in the path (NMDC words, ADC `AN`).
    pub include: Vec<String>,
    /// Terms that must not occur in the path (ADC `NO`).
    pub exclude: Vec<String>,
    /// Smallest size, inclusive (NMDC "at least", ADC `GE`).
    pub min_size: Option<u64>,
    /// Largest size, inclusive (NMDC "at most", ADC `LE`).
    pub max_size: Option<u64>,
    /// Exact size (ADC `EQ`).
    pub size: Option<u64>,
    /// Type group (NMDC type, ADC `TY`).
    pub file_type: FileType,
    /// Accepted extensions without the dot (ADC `EX`); empty means any.
    pub extensions: Vec<String>,
    /// Stop after this many results (see [`MAX_RESULTS_ACTIVE`]).
    pub max_results: usize,
}

impl Default for SearchQuery {
    fn default() -> Self {
        SearchQuery {
            tth: None,
            include: Vec::new(),
            exclude: Vec::new(),
            min_size: None,
            max_size: None,
            size: None,
            file_type: FileType::Any,
            extensions: Vec::new(),
            max_results: MAX_RESULTS_ACTIVE,
        }
    }
}

impl SearchQuery {
    /// A search for whitespace-separated words.
    pub fn words(text: &str) -> SearchQuery {
        SearchQuery {
            include: text.split_whitespace().map(str::to_string).collect(),
            ..SearchQuery::default()
        }
    }

    /// A search by TTH.
    pub fn by_tth(tth: Tth) -> SearchQuery {
        SearchQuery { tth: Some(tth), ..SearchQuery::default() }
    }
}

/// One search result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchHit {
    /// The node, for callers that want more from the tree.
    pub id: NodeId,
    /// Virtual path, `/`-separated, no leading `/` ("Music/Beatles/Help.mp3").
    pub path: String,
    /// File size, or the total size of a folder's hashed files.
    pub size: u64,
    /// The file's TTH (`None` for folders).
    pub tth: Option<Tth>,
    /// Whether the result is a folder.
    pub is_dir: bool,
}

/// Figures about the index, for benchmarks and diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IndexStats {
    /// Distinct trigrams.
    pub grams: usize,
    /// Ids in the compressed lists.
    pub postings: u64,
    /// Bytes of the compressed lists.
    pub posting_bytes: u64,
    /// Ids in the uncompressed "extra" lists.
    pub extra_postings: u64,
    /// Slots of the TTH table.
    pub tth_slots: usize,
    /// Removed node ids still in the lists.
    pub stale: usize,
}

// ===================================================================
// Posting lists
// ===================================================================

/// A sorted list of node ids, delta-varint compressed.
#[derive(Default)]
struct List {
    bytes: Box<[u8]>,
    len: u32,
}

#[derive(Default)]
struct Extra {
    files: Vec<u32>,
    dirs: Vec<u32>,
}

/// The ids whose folded name contains one trigram.
#[derive(Default)]
struct Postings {
    files: List,
    dirs: List,
    /// Ids added since the lists were last compressed, sorted.
    extra: Option<Box<Extra>>,
}

impl Postings {
    fn iter(&self, dirs: bool) -> ListIter<'_> {
        let (list, extra) = match (&self.extra, dirs) {
            (Some(x), false) => (&self.files, x.files.as_slice()),
            (Some(x), true) => (&self.dirs, x.dirs.as_slice()),
            (None, false) => (&self.files, &[][..]),
            (None, true) => (&self.dirs, &[][..]),
        };
        ListIter::new(list, extra)
    }

    fn len(&self, dirs: bool) -> usize {
        let (base, extra) = match (&self.extra, dirs) {
            (Some(x), false) => (self.files.len, x.files.len()),
            (Some(x), true) => (self.dirs.len, x.dirs.len()),
            (None, false) => (self.files.len, 0),
            (None, true) => (self.dirs.len, 0),
        };
        base as usize + extra
    }

    fn add(&mut self, id: u32, dir: bool) {
        let extra = self.extra.get_or_insert_with(Box::default);
        let (list, base_len) = if dir {
            (&mut extra.dirs, self.dirs.len)
        } else {
            (&mut extra.files, self.files.len)
        };
        if let Err(pos) = list.binary_search(&id) {
            list.insert(pos, id);
        }
        // Keep the extra lists short: they are searched and shifted.
        if list.len() > 64 && list.len() * 8 > base_len as usize {
            self.compress();
        }
    }

    /// Merges the extra ids into the compressed lists.
    fn compress(&mut self) {
        let Some(extra) = self.extra.take() else { return };
        self.files = merge_into_list(&self.files, &extra.files);
        self.dirs = merge_into_list(&self.dirs, &extra.dirs);
    }
}

fn merge_into_list(list: &List, extra: &[u32]) -> List {
    let mut it = ListIter::new(list, extra);
    let mut b = ListBuilder::default();
    while let Some(id) = it.next() {
        b.push(id);
    }
    b.finish()
}

#[derive(Default)]
struct ListBuilder {
    bytes: Vec<u8>,
    last: u32,
    len: u32,
}

impl ListBuilder {
    /// Appends an id larger than the previous one (ids start at 1: 0 is the
    /// top node, never indexed).
    fn push(&mut self, id: u32) {
        let mut delta = id.wrapping_sub(self.last);
        while delta >= 0x80 {
            self.bytes.push((delta as u8) | 0x80);
            delta >>= 7;
        }
        self.bytes.push(delta as u8);
        self.last = id;
        self.len += 1;
    }

    fn finish(self) -> List {
        List { bytes: self.bytes.into_boxed_slice(), len: self.len }
    }
}

/// Iterates a compressed list merged with its extra ids, in order, without
/// duplicates.
#[derive(Clone)]
struct ListIter<'a> {
    bytes: &'a [u8],
    pos: usize,
    last: u32,
    next_base: Option<u32>,
    extra: &'a [u32],
    ei: usize,
}

impl<'a> ListIter<'a> {
    fn new(list: &'a List, extra: &'a [u32]) -> ListIter<'a> {
        let mut it = ListIter { bytes: &list.bytes, pos: 0, last: 0, next_base: None, extra, ei: 0 };
        it.next_base = it.decode();
        it
    }

    fn decode(&mut self) -> Option<u32> {
        let mut delta = 0u32;
        let mut shift = 0u32;
        loop {
            let b = *self.bytes.get(self.pos)?;
            self.pos += 1;
            delta |= u32::from(b & 0x7f).checked_shl(shift).unwrap_or(0);
            if b < 0x80 {
                break;
            }
            shift += 7;
        }
        self.last = self.last.wrapping_add(delta);
        Some(self.last)
    }

    fn peek(&self) -> Option<u32> {
        match (self.next_base, self.extra.get(self.ei)) {
            (Some(a), Some(&b)) => Some(a.min(b)),
            (a, b) => a.or(b.copied()),
        }
    }

    /// Moves to the first id at least `target` and returns it.
    fn seek(&mut self, target: u32) -> Option<u32> {
        loop {
            let p = self.peek()?;
            if p >= target {
                return Some(p);
            }
            self.next();
        }
    }
}

impl Iterator for ListIter<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        let e = self.extra.get(self.ei).copied();
        match (self.next_base, e) {
            (None, None) => None,
            (Some(a), None) => {
                self.next_base = self.decode();
                Some(a)
            }
            (None, Some(b)) => {
                self.ei += 1;
                Some(b)
            }
            (Some(a), Some(b)) => {
                if a <= b {
                    self.next_base = self.decode();
                }
                if b <= a {
                    self.ei += 1;
                }
                Some(a.min(b))
            }
        }
    }
}

/// Where a term's candidates come from.
enum Source<'a> {
    One(ListIter<'a>),
    /// k-way merge of several lists, without duplicates.
    Union { iters: Vec<ListIter<'a>>, heap: BinaryHeap<Reverse<(u32, usize)>>, last: Option<u32> },
}

impl<'a> Source<'a> {
    fn union(iters: Vec<ListIter<'a>>) -> Source<'a> {
        let heap = iters.iter().enumerate().filter_map(|(i, it)| Some(Reverse((it.peek()?, i))));
        Source::Union { heap: heap.collect(), iters, last: None }
    }
}

impl Iterator for Source<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        match self {
            Source::One(it) => it.next(),
            Source::Union { iters, heap, last } => loop {
                let Reverse((id, i)) = heap.pop()?;
                iters[i].next();
                if let Some(n) = iters[i].peek() {
                    heap.push(Reverse((n, i)));
                }
                if *last != Some(id) {
                    *last = Some(id);
                    return Some(id);
                }
            },
        }
    }
}

/// Appends the trigram keys of a folded name (with its `\0` end marker),
/// sorted and distinct.
fn name_grams(folded: &[u8], out: &mut Vec<u32>) {
    out.clear();
    let n = folded.len();
    for i in 0..n.saturating_sub(1) {
        let c = folded.get(i + 2).copied().unwrap_or(0);
        out.push(u32::from(folded[i]) << 16 | u32::from(folded[i + 1]) << 8 | u32::from(c));
    }
    out.sort_unstable();
    out.dedup();
}

// ===================================================================
// TTH table
// ===================================================================

const EMPTY: u32 = u32::MAX;

#[derive(Clone, Copy)]
struct Slot {
    id: u32,
    tag: u32,
}

/// Open addressing with linear probing over (node id, first four TTH
/// bytes). Duplicate roots (the same file shared twice) take several slots.
struct TthTable {
    slots: Vec<Slot>,
    len: usize,
}

fn tth_tag(tth: &Tth) -> u32 {
    let b = tth.as_bytes();
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

impl TthTable {
    fn new() -> TthTable {
        TthTable { slots: vec![Slot { id: EMPTY, tag: 0 }; 1024], len: 0 }
    }

    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    fn home(&self, tag: u32) -> usize {
        // Roots are uniformly distributed, but mix anyway: a tag is only 32
        // bits and the table may be larger than the low bits can spread.
        (u64::from(tag).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 20) as usize & self.mask()
    }

    fn insert(&mut self, id: u32, tth: &Tth) {
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.grow();
        }
        self.place(Slot { id, tag: tth_tag(tth) });
        self.len += 1;
    }

    fn place(&mut self, slot: Slot) {
        let mut i = self.home(slot.tag);
        while self.slots[i].id != EMPTY {
            i = (i + 1) & self.mask();
        }
        self.slots[i] = slot;
    }

    fn grow(&mut self) {
        let old = std::mem::replace(&mut self.slots, vec![Slot { id: EMPTY, tag: 0 }; 0]);
        self.slots = vec![Slot { id: EMPTY, tag: 0 }; old.len() * 2];
        for s in old.into_iter().filter(|s| s.id != EMPTY) {
            self.place(s);
        }
    }

    fn remove(&mut self, id: u32, tth: &Tth) {
        let mask = self.mask();
        let mut i = self.home(tth_tag(tth));
        loop {
            match self.slots[i].id {
                EMPTY => return,
                x if x == id => break,
                _ => i = (i + 1) & mask,
            }
        }
        // Backward-shift deletion: pull later members of the probe run into
        // the hole when their home position allows it.
        let mut hole = i;
        let mut j = i;
        loop {
            j = (j + 1) & mask;
            let s = self.slots[j];
            if s.id == EMPTY {
                break;
            }
            let home = self.home(s.tag);
            let stays = if hole <= j { hole < home && home <= j } else { hole < home || home <= j };
            if !stays {
                self.slots[hole] = s;
                hole = j;
            }
        }
        self.slots[hole] = Slot { id: EMPTY, tag: 0 };
        self.len -= 1;
    }

    fn find(&self, tree: &ShareTree, tth: &Tth, limit: usize, out: &mut Vec<NodeId>) {
        let tag = tth_tag(tth);
        let mut i = self.home(tag);
        while self.slots[i].id != EMPTY && out.len() < limit {
            let s = self.slots[i];
            if s.tag == tag {
                let id = NodeId::from_raw(s.id);
                if tree.tth(id).as_ref() == Some(tth) {
                    out.push(id);
                }
            }
            i = (i + 1) & self.mask();
        }
    }
}

// ===================================================================
// The index
// ===================================================================

/// The share tree plus its search structures; see the module docs.
pub struct ShareIndex {
    tree: ShareTree,
    grams: HashMap<u32, Postings, FxBuild>,
    tths: TthTable,
    stale: usize,
}

impl std::fmt::Debug for ShareIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShareIndex")
            .field("tree", &self.tree)
            .field("grams", &self.grams.len())
            .field("stale", &self.stale)
            .finish()
    }
}

impl ShareIndex {
    /// Indexes a tree (about a second per million entries).
    pub fn new(tree: ShareTree) -> ShareIndex {
        let mut index =
            ShareIndex { tree, grams: HashMap::default(), tths: TthTable::new(), stale: 0 };
        index.rebuild_grams();
        for i in 1..index.tree.id_bound() {
            if let Some(id) = index.tree.id_at(i) {
                if let Some(t) = index.tree.tth(id) {
                    index.tths.insert(id.raw(), &t);
                }
            }
        }
        index
    }

    /// The indexed tree (for the file list, sizes and lookups).
    pub fn tree(&self) -> &ShareTree {
        &self.tree
    }

    /// Gives the tree back.
    pub fn into_tree(self) -> ShareTree {
        self.tree
    }

    /// Adds or updates a file; see [`ShareTree::insert`].
    pub fn insert(&mut self, entry: ShareEntry) -> Result<Change, TreeError> {
        let change = self.tree.insert(entry)?;
        match &change {
            Change::Added { file, new_folders } => {
                let mut buf = String::new();
                let mut grams = Vec::new();
                for &d in new_folders {
                    self.add_grams(d, true, &mut buf, &mut grams);
                }
                self.add_grams(*file, false, &mut buf, &mut grams);
                if let Some(t) = self.tree.tth(*file) {
                    self.tths.insert(file.raw(), &t);
                }
            }
            Change::Updated { file, old_tth } => {
                if let Some(old) = old_tth {
                    self.tths.remove(file.raw(), old);
                }
                if let Some(t) = self.tree.tth(*file) {
                    self.tths.insert(file.raw(), &t);
                }
            }
        }
        Ok(change)
    }

    /// Removes a file or a folder with everything below it; see
    /// [`ShareTree::remove`].
    pub fn remove(&mut self, path: &str) -> Result<Vec<RemovedEntry>, TreeError> {
        let removed = self.tree.remove(path)?;
        for r in &removed {
            if let (EntryKind::File, Some(t)) = (r.kind, &r.tth) {
                self.tths.remove(r.id.raw(), t);
            }
        }
        // Their ids stay in the posting lists until the next rebuild.
        self.stale += removed.len();
        if self.stale > 4096 && self.stale * 4 > self.tree.len() {
            self.rebuild_grams();
        }
        Ok(removed)
    }

    /// The hashed files with this TTH (several when the same content is
    /// shared twice).
    pub fn find_tth(&self, tth: &Tth) -> Vec<NodeId> {
        let mut out = Vec::new();
        self.tths.find(&self.tree, tth, usize::MAX, &mut out);
        out
    }

    /// Figures about the index.
    pub fn stats(&self) -> IndexStats {
        let mut s = IndexStats {
            grams: self.grams.len(),
            tth_slots: self.tths.slots.len(),
            stale: self.stale,
            ..IndexStats::default()
        };
        for p in self.grams.values() {
            s.postings += u64::from(p.files.len) + u64::from(p.dirs.len);
            s.posting_bytes += (p.files.bytes.len() + p.dirs.bytes.len()) as u64;
            if let Some(x) = &p.extra {
                s.extra_postings += (x.files.len() + x.dirs.len()) as u64;
            }
        }
        s
    }

    /// Answers a search; see the module docs for what matches.
    pub fn search(&self, query: &SearchQuery) -> Vec<SearchHit> {
        let limit = query.max_results;
        let mut ids = Vec::new();
        if limit == 0 {
            return Vec::new();
        }
        if let Some(tth) = &query.tth {
            self.tths.find(&self.tree, tth, limit, &mut ids);
        } else if let Some(plan) = Plan::new(query) {
            let mut s = Search::new(self, &plan);
            s.run();
            ids = s.hits;
        }
        ids.into_iter()
            .map(|id| SearchHit {
                id,
                path: self.tree.path(id),
                size: self.tree.size(id),
                tth: self.tree.tth(id),
                is_dir: self.tree.is_dir(id),
            })
            .collect()
    }

    fn add_grams(&mut self, id: NodeId, dir: bool, buf: &mut String, grams: &mut Vec<u32>) {
        fold_into(self.tree.name(id), buf);
        name_grams(buf.as_bytes(), grams);
        for &g in grams.iter() {
            self.grams.entry(g).or_default().add(id.raw(), dir);
        }
    }

    /// Builds every posting list from the tree, dropping stale ids.
    fn rebuild_grams(&mut self) {
        let mut builders: HashMap<u32, (ListBuilder, ListBuilder), FxBuild> = HashMap::default();
        let mut buf = String::new();
        let mut grams = Vec::new();
        for i in 1..self.tree.id_bound() {
            let Some(id) = self.tree.id_at(i) else { continue };
            let dir = self.tree.is_dir(id);
            fold_into(self.tree.name(id), &mut buf);
            name_grams(buf.as_bytes(), &mut grams);
            for &g in &grams {
                let (files, dirs) = builders.entry(g).or_default();
                if dir { dirs } else { files }.push(id.raw());
            }
        }
        self.grams = HashMap::with_capacity_and_hasher(builders.len(), FxBuild::default());
        for (g, (files, dirs)) in builders {
            self.grams.insert(g, Postings { files: files.finish(), dirs: dirs.finish(), extra: None });
        }
        self.stale = 0;
    }
}

// ===================================================================
// Query execution
// ===================================================================

/// A query normalised for execution.
struct Plan {
    include: Vec<String>,
    exclude: Vec<String>,
    extensions: Vec<String>,
    group: &'static [&'static str],
    min: u64,
    max: u64,
    files: bool,
    dirs: bool,
    full: u64,
    limit: usize,
}

fn split_terms(terms: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in terms {
        for part in t.split(['/', '\\']) {
            if part.is_empty() {
                continue;
            }
            let f = fold(part);
            if !out.contains(&f) {
                out.push(f);
            }
        }
    }
    out
}

impl Plan {
    /// `None` when nothing can match.
    fn new(q: &SearchQuery) -> Option<Plan> {
        let mut include = split_terms(&q.include);
        include.truncate(MAX_TERMS);
        let exclude = split_terms(&q.exclude);
        let extensions: Vec<String> = q
            .extensions
            .iter()
            .map(|e| fold(e.trim_start_matches('.')))
            .filter(|e| !e.is_empty())
            .collect();
        let mut min = q.min_size.unwrap_or(0);
        let mut max = q.max_size.unwrap_or(u64::MAX);
        if let Some(s) = q.size {
            min = min.max(s);
            max = max.min(s);
        }
        let sized = q.min_size.is_some() || q.max_size.is_some() || q.size.is_some();
        let group = q.file_type.extensions();
        let files = q.file_type != FileType::Folder;
        let dirs = matches!(q.file_type, FileType::Any | FileType::Folder)
            && extensions.is_empty()
            && !sized;
        if min > max || (!files && !dirs) {
            return None;
        }
        let full = if include.len() == 64 { u64::MAX } else { (1u64 << include.len()) - 1 };
        Some(Plan {
            include,
            exclude,
            extensions,
            group,
            min,
            max,
            files,
            dirs,
            full,
            limit: q.max_results,
        })
    }

    /// Size, type and extension checks of a hashed file.
    fn file_ok(&self, tree: &ShareTree, id: NodeId) -> bool {
        let size = tree.size(id);
        if size < self.min || size > self.max {
            return false;
        }
        if self.group.is_empty() && self.extensions.is_empty() {
            return true;
        }
        let Some((_, ext)) = tree.name(id).rsplit_once('.') else { return false };
        if !self.group.is_empty() && !self.group.iter().any(|g| g.eq_ignore_ascii_case(ext)) {
            return false;
        }
        self.extensions.is_empty() || self.extensions.contains(&fold(ext))
    }
}

/// How the terms stand on a folder path: which include terms it holds,
/// whether an exclude term or the driving term occurs on it.
#[derive(Clone, Copy, Default)]
struct PathState {
    mask: u64,
    excluded: bool,
    driver: bool,
}

/// What the index knows about one include term.
struct TermInfo {
    /// Candidate lists: (trigram, list length) of the rarest trigram for
    /// files and for folders, or every `xy?` trigram for a two-byte term.
    file_grams: Vec<u32>,
    dir_grams: Vec<u32>,
    file_len: usize,
    dir_len: usize,
    /// Folders whose own name holds the term, once checked.
    dir_hits: Option<Vec<u32>>,
}

struct Search<'a> {
    index: &'a ShareIndex,
    tree: &'a ShareTree,
    plan: &'a Plan,
    /// The driving term, once chosen.
    driver: Option<usize>,
    buf: String,
    hits: Vec<NodeId>,
    stack: Vec<(NodeId, u64)>,
    subdirs: Vec<(NodeId, u64)>,
    memo: Option<(NodeId, PathState)>,
}

impl<'a> Search<'a> {
    fn new(index: &'a ShareIndex, plan: &'a Plan) -> Search<'a> {
        Search {
            index,
            tree: &index.tree,
            plan,
            driver: None,
            buf: String::new(),
            hits: Vec::new(),
            stack: Vec::new(),
            subdirs: Vec::new(),
            memo: None,
        }
    }

    fn full(&self) -> bool {
        self.hits.len() >= self.plan.limit
    }

    fn run(&mut self) {
        let mut infos = Vec::with_capacity(self.plan.include.len());
        for term in &self.plan.include {
            match self.term_info(term) {
                // A term no name contains: nothing can match.
                Some(info) if info.file_len + info.dir_len == 0 => return,
                info => infos.push(info),
            }
        }
        match self.choose_driver(&mut infos) {
            Some(d) => self.drive(d, &infos),
            None => self.scan(),
        }
    }

    fn term_info(&self, term: &str) -> Option<TermInfo> {
        let grams = &self.index.grams;
        let b = term.as_bytes();
        match b.len() {
            0 | 1 => None,
            2 => {
                let prefix = u32::from(b[0]) << 16 | u32::from(b[1]) << 8;
                let mut info = TermInfo {
                    file_grams: Vec::new(),
                    dir_grams: Vec::new(),
                    file_len: 0,
                    dir_len: 0,
                    dir_hits: None,
                };
                for last in 0..=255u32 {
                    if let Some(p) = grams.get(&(prefix | last)) {
                        let (f, d) = (p.len(false), p.len(true));
                        if f > 0 {
                            info.file_grams.push(prefix | last);
                            info.file_len += f;
                        }
                        if d > 0 {
                            info.dir_grams.push(prefix | last);
                            info.dir_len += d;
                        }
                    }
                }
                Some(info)
            }
            _ => {
                let mut best_file = (usize::MAX, 0u32);
                let mut best_dir = (usize::MAX, 0u32);
                for w in b.windows(3) {
                    let g = u32::from(w[0]) << 16 | u32::from(w[1]) << 8 | u32::from(w[2]);
                    let (f, d) = grams.get(&g).map_or((0, 0), |p| (p.len(false), p.len(true)));
                    best_file = best_file.min((f, g));
                    best_dir = best_dir.min((d, g));
                }
                Some(TermInfo {
                    file_grams: vec![best_file.1],
                    dir_grams: vec![best_dir.1],
                    file_len: best_file.0,
                    dir_len: best_dir.0,
                    dir_hits: None,
                })
            }
        }
    }

    fn source(&self, grams: &[u32], dirs: bool) -> Source<'a> {
        let index: &'a ShareIndex = self.index;
        let lists = &index.grams;
        let iters: Vec<ListIter<'a>> =
            grams.iter().filter_map(|g| lists.get(g)).map(|p| p.iter(dirs)).collect();
        if iters.len() == 1 {
            if let Some(it) = iters.into_iter().next() {
                return Source::One(it);
            }
            return Source::union(Vec::new());
        }
        Source::union(iters)
    }

    fn name_contains(&mut self, id: NodeId, term: &str) -> bool {
        fold_into(self.tree.name(id), &mut self.buf);
        self.buf.contains(term)
    }

    /// Checks the folder candidates of a term; `None` past the cap.
    fn dir_hits(&mut self, info: &TermInfo, term: &str) -> Option<Vec<u32>> {
        if info.dir_len > DIR_VERIFY_CAP {
            return None;
        }
        let mut hits = Vec::new();
        for id in self.source(&info.dir_grams, true) {
            let n = NodeId::from_raw(id);
            if self.tree.is_dir(n) && self.name_contains(n, term) {
                hits.push(id);
            }
        }
        Some(hits)
    }

    /// Picks the term whose candidates cost least: its file candidates plus
    /// the subtrees of the folders that contain it. Lower bounds (list
    /// lengths) let most terms be ruled out without checking them.
    fn choose_driver(&mut self, infos: &mut [Option<TermInfo>]) -> Option<usize> {
        let mut order: Vec<usize> = (0..infos.len()).filter(|&i| infos[i].is_some()).collect();
        order.sort_by_key(|&i| infos[i].as_ref().map_or(usize::MAX, |t| t.file_len + t.dir_len));
        let mut best: Option<(u64, usize)> = None;
        for i in order {
            let Some(info) = infos[i].as_mut() else { continue };
            let lower = (info.file_len + info.dir_len) as u64;
            if best.is_some_and(|(c, _)| lower >= c) {
                break;
            }
            let plan: &'a Plan = self.plan;
            let hits = self.dir_hits(info, &plan.include[i]);
            let cost = match &hits {
                Some(h) => {
                    let below: u64 = h
                        .iter()
                        .map(|&d| 1 + self.tree.nodes_below(NodeId::from_raw(d)))
                        .sum();
                    info.file_len as u64 + below
                }
                None => u64::MAX,
            };
            info.dir_hits = hits;
            if best.is_none_or(|(c, _)| cost < c) {
                best = Some((cost, i));
            }
        }
        // Walking the whole tree beats a driver that would visit more.
        match best {
            Some((cost, i)) if cost <= self.tree.len() as u64 => Some(i),
            _ => None,
        }
    }

    /// Terms on the name of `id`, and whether it holds an exclude term.
    fn name_state(&mut self, id: NodeId, mut mask: u64, want_driver: bool) -> PathState {
        let plan = self.plan;
        let mut st = PathState { mask, ..PathState::default() };
        if mask == plan.full && plan.exclude.is_empty() && !want_driver {
            return st;
        }
        fold_into(self.tree.name(id), &mut self.buf);
        for (i, t) in plan.include.iter().enumerate() {
            if mask & (1 << i) == 0 && self.buf.contains(t.as_str()) {
                mask |= 1 << i;
            }
        }
        st.mask = mask;
        st.excluded = plan.exclude.iter().any(|t| self.buf.contains(t.as_str()));
        st.driver = self.driver.is_some_and(|d| mask & (1 << d) != 0);
        st
    }

    /// The state of a folder's whole path (the folder and its ancestors),
    /// remembered for the last folder asked.
    fn path_state(&mut self, dir: NodeId) -> PathState {
        if let Some((d, st)) = self.memo {
            if d == dir {
                return st;
            }
        }
        let mut st = PathState::default();
        let mut cur = dir;
        while cur != self.tree.top() {
            let own = self.name_state(cur, 0, true);
            st.mask |= own.mask;
            st.excluded |= own.excluded;
            st.driver |= own.driver;
            match self.tree.parent(cur) {
                Some(p) => cur = p,
                None => break,
            }
        }
        self.memo = Some((dir, st));
        st
    }

    fn emit(&mut self, id: NodeId) {
        self.hits.push(id);
    }

    /// Considers a folder whose path state is known, then everything below.
    fn expand(&mut self, start: NodeId, start_mask: u64) {
        let plan = self.plan;
        if start != self.tree.top() && plan.dirs && start_mask == plan.full {
            self.emit(start);
            if self.full() {
                return;
            }
        }
        self.stack.clear();
        self.stack.push((start, start_mask));
        while let Some((dir, mask)) = self.stack.pop() {
            self.subdirs.clear();
            for &c in self.tree.children(dir) {
                if self.tree.is_dir(c) {
                    if !self.tree.is_listed(c) {
                        continue;
                    }
                    let st = self.name_state(c, mask, false);
                    if st.excluded {
                        continue;
                    }
                    if plan.dirs && st.mask == plan.full {
                        self.emit(c);
                        if self.full() {
                            return;
                        }
                    }
                    self.subdirs.push((c, st.mask));
                } else if plan.files
                    && self.tree.tth(c).is_some()
                    && plan.file_ok(self.tree, c)
                {
                    let st = self.name_state(c, mask, false);
                    if !st.excluded && st.mask == plan.full {
                        self.emit(c);
                        if self.full() {
                            return;
                        }
                    }
                }
            }
            // Depth-first in sorted order: push the subfolders reversed.
            self.stack.extend(self.subdirs.drain(..).rev());
        }
    }

    /// No term can use the index: walk the whole tree.
    fn scan(&mut self) {
        self.driver = None;
        let top = self.tree.top();
        self.expand(top, 0);
    }

    fn drive(&mut self, d: usize, infos: &[Option<TermInfo>]) {
        let Some(info) = infos[d].as_ref() else { return };
        self.driver = Some(d);
        // 1. Folders holding the driving term, topmost only: a folder below
        // another hit is covered by that hit's expansion.
        if let Some(hits) = &info.dir_hits {
            for &raw in hits {
                let id = NodeId::from_raw(raw);
                let Some(parent) = self.tree.parent(id) else { continue };
                if !self.tree.is_listed(id) {
                    continue;
                }
                let ps = self.path_state(parent);
                if ps.excluded || ps.driver {
                    continue;
                }
                let st = self.name_state(id, ps.mask, false);
                if st.excluded {
                    continue;
                }
                self.expand(id, st.mask);
                if self.full() {
                    return;
                }
            }
        }
        if !self.plan.files {
            return;
        }
        // 2. Files holding the driving term in their own name, not below a
        // folder that holds it. Terms no folder holds must be in the file's
        // own name too: their lists filter the candidates first.
        let mut filters: Vec<Source<'a>> = Vec::new();
        for (i, other) in infos.iter().enumerate() {
            let Some(o) = other else { continue };
            let no_dir = o.dir_len == 0 || o.dir_hits.as_ref().is_some_and(Vec::is_empty);
            if i != d && no_dir && o.file_len <= info.file_len.saturating_mul(FILTER_RATIO) {
                filters.push(self.source(&o.file_grams, false));
            }
        }
        let candidates = self.source(&info.file_grams, false);
        'next: for raw in candidates {
            for f in filters.iter_mut() {
                if seek(f, raw) != Some(raw) {
                    continue 'next;
                }
            }
            let id = NodeId::from_raw(raw);
            if self.tree.tth(id).is_none() || !self.plan.file_ok(self.tree, id) {
                continue;
            }
            let Some(parent) = self.tree.parent(id) else { continue };
            let ps = self.path_state(parent);
            if ps.excluded || ps.driver {
                continue;
            }
            let st = self.name_state(id, ps.mask, true);
            if st.excluded || !st.driver || st.mask != self.plan.full {
                continue;
            }
            self.emit(id);
            if self.full() {
                return;
            }
        }
    }
}

/// Advances a source to the first id at least `target`.
fn seek(source: &mut Source<'_>, target: u32) -> Option<u32> {
    match source {
        Source::One(it) => it.seek(target),
        Source::Union { .. } => loop {
            let Source::Union { heap, .. } = &*source else { return None };
            let &Reverse((id, _)) = heap.peek()?;
            if id >= target {
                return Some(id);
            }
            source.next();
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_round_trip_and_merge_extras() {
        let mut b = ListBuilder::default();
        let ids = [1u32, 2, 200, 70_000, 1 << 30];
        for &i in &ids {
            b.push(i);
        }
        let list = b.finish();
        let extra = [2u32, 3, 80_000];
        let got: Vec<u32> = ListIter::new(&list, &extra).collect();
        assert_eq!(got, [1, 2, 3, 200, 70_000, 80_000, 1 << 30]);
        let mut it = ListIter::new(&list, &extra);
        assert_eq!(it.seek(199), Some(200));
        assert_eq!(it.seek(200), Some(200));
        assert_eq!(it.seek(70_001), Some(80_000));
        assert_eq!(it.seek(u32::MAX), None);
    }

    #[test]
    fn grams_carry_an_end_marker() {
        let mut g = Vec::new();
        name_grams(b"abc", &mut g);
        assert_eq!(g, [0x61_62_63, 0x62_63_00]);
        name_grams(b"a", &mut g);
        assert!(g.is_empty());
    }

    #[test]
    fn tth_table_survives_churn() {
        let mut tree = ShareTree::new();
        let mut table = TthTable::new();
        let mut ids = Vec::new();
        for i in 0..3000u32 {
            let mut t = [0u8; 24];
            // Many equal tags force long probe runs.
            t[..4].copy_from_slice(&(i % 7).to_le_bytes());
            t[4..8].copy_from_slice(&i.to_le_bytes());
            let tth = Tth(t);
            let e = ShareEntry { path: format!("R/{i}"), size: 1, tth: Some(tth), mtime: 0 };
            let Ok(Change::Added { file, .. }) = tree.insert(e) else { panic!("insert {i}") };
            table.insert(file.raw(), &tth);
            ids.push((file, tth));
        }
        for (k, (id, tth)) in ids.iter().enumerate() {
            if k % 3 == 0 {
                table.remove(id.raw(), tth);
            }
        }
        for (k, (id, tth)) in ids.iter().enumerate() {
            let mut out = Vec::new();
            table.find(&tree, tth, 10, &mut out);
            assert_eq!(out == [*id], k % 3 != 0, "entry {k}");
        }
        assert_eq!(table.len, 2000);
    }
}
