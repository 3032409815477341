//! The share index: answers searches (by TTH and by words) over the share
//! tree fast enough for a million files.
//!
//! This module owns [`ShareIndex`], which owns the [`ShareTree`] so that the
//! two can never drift apart: every change goes through
//! [`ShareIndex::insert`] / [`ShareIndex::remove`]. It is protocol-neutral:
//! hub sessions turn NMDC `$Search` and ADC `SCH` into a [`Query`] and
//! the [`SearchHit`]s back into `$SR` / `RES`. It does no I/O.
//!
//! # What matches
//!
//! Exactly what [`crate::search`] says: the index runs the query's
//! [`Matcher`] over its tree, component by component. Only listed entries
//! match: hashed files, and folders with a hashed file below. A matching
//! folder is returned, and so is everything matching below it, in tree order,
//! until the caller's limit.
//!
//! # How
//!
//! - TTH: an open-addressing hash table of node ids keyed by the first bytes
//!   of the root (4 bytes of id + 4 of tag per slot).
//! - Words: **trigram posting lists** over the case-folded names (UTF-8
//!   bytes, with a `\0` end marker, so that every two-byte substring starts
//!   some trigram and `p3\0` means "ends in p3"). The index numbers the nodes
//!   depth-first with its own *ords* (node ids stay stable), so that every
//!   folder's subtree is one range of ords, and the lists hold ords:
//!   delta-varint compressed, with a skip entry every 128 postings, files
//!   and folders apart.
//! - A query turns each criterion into a sorted *stream* of ords that may
//!   match: for a term, the nodes whose name holds its (rarest) trigrams plus
//!   the whole range of every folder whose name does; for a type group or
//!   extensions, the files ending like them; for folder searches, every
//!   folder. A leapfrog join walks the ords all streams let through, in
//!   order, and checks each against the real names and the other criteria
//!   (folder path states are memoised per query), until `max_results`.
//!   Where the join jumps far ahead, folder ranges are not walked one by
//!   one: since ranges nest, only the ancestors of the target can hold it.
//!   A folder high in the tree is checked by name before its range is let
//!   through. Two-byte terms are streamed only when there is no longer one
//!   (otherwise they are checked on the candidates); one-byte terms, or a
//!   query with no criterion the lists can narrow, walk the tree.
//! - Updates: a new node gets the next ord, its ids go to small sorted
//!   "extra" lists (merged into the compressed ones when they grow), and its
//!   ancestors' ranges are widened to reach it (kept aside: appended ords are
//!   not in depth-first order). Removed nodes' ords stay in the lists,
//!   pointing nowhere. Once a quarter of the ords are appended or stale, the
//!   ords and the lists are rebuilt (about a second per million entries).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use crate::proto::tth::Tth;
use crate::search::{Matcher, Query};
use crate::share::tree::{
    fold_into, Change, EntryKind, FxBuild, NodeId, RemovedEntry, ShareEntry, ShareTree, TreeError,
};

/// A term's candidates come from the intersection of at most this many of
/// its trigram lists (the shortest ones), and only of lists at most
/// `FILTER_RATIO` times longer than the shortest: past that, walking lists
/// costs more than checking the few extra candidates against the names
/// (measured with `benches/share_index.rs`).
const MAX_LISTS: usize = 3;
const FILTER_RATIO: usize = 256;

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
    /// Nodes added since the last rebuild (ords outside depth-first order).
    pub appended: usize,
    /// Removed node ids still in the lists.
    pub stale: usize,
}

// ===================================================================
// Posting lists
// ===================================================================

/// Postings between two skip entries.
const BLOCK: u32 = 128;

/// Where a block of a [`List`] starts: the id just before it and the byte
/// offset of its first posting.
#[derive(Clone, Copy, Default, Debug)]
struct Skip {
    base: u32,
    offset: u32,
}

/// A sorted list of node ids, delta-varint compressed, with a skip entry
/// every [`BLOCK`] postings so that a seek jumps instead of decoding.
#[derive(Default)]
struct List {
    bytes: Box<[u8]>,
    skips: Box<[Skip]>,
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
        let (list, base_len) =
            if dir { (&mut extra.dirs, self.dirs.len) } else { (&mut extra.files, self.files.len) };
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
    let mut b = ListBuilder::default();
    for id in ListIter::new(list, extra) {
        b.push(id);
    }
    b.finish()
}

#[derive(Default)]
struct ListBuilder {
    bytes: Vec<u8>,
    skips: Vec<Skip>,
    last: u32,
    len: u32,
}

impl ListBuilder {
    /// Appends an id larger than the previous one (ids start at 1: 0 is the
    /// top node, never indexed).
    fn push(&mut self, id: u32) {
        if self.len > 0 && self.len % BLOCK == 0 {
            // Lists stay far below 4 GiB: ids are u32 and each takes <= 5 bytes
            // only for the sparse ones.
            self.skips.push(Skip { base: self.last, offset: self.bytes.len() as u32 });
        }
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
        List {
            bytes: self.bytes.into_boxed_slice(),
            skips: self.skips.into_boxed_slice(),
            len: self.len,
        }
    }
}

/// Iterates a compressed list merged with its extra ids, in order, without
/// duplicates.
#[derive(Clone)]
struct ListIter<'a> {
    bytes: &'a [u8],
    skips: &'a [Skip],
    pos: usize,
    last: u32,
    next_base: Option<u32>,
    extra: &'a [u32],
    ei: usize,
}

impl<'a> ListIter<'a> {
    fn new(list: &'a List, extra: &'a [u32]) -> ListIter<'a> {
        let mut it = ListIter {
            bytes: &list.bytes,
            skips: &list.skips,
            pos: 0,
            last: 0,
            next_base: None,
            extra,
            ei: 0,
        };
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
        if self.next_base.is_some_and(|b| b < target) {
            // The last block whose preceding id is below the target holds
            // the answer; jump there if it lies ahead.
            let k = self.skips.partition_point(|s| s.base < target);
            if let Some(s) = k.checked_sub(1).and_then(|j| self.skips.get(j)) {
                if s.offset as usize > self.pos {
                    self.pos = s.offset as usize;
                    self.last = s.base;
                    self.next_base = self.decode();
                }
            }
            while self.next_base.is_some_and(|b| b < target) {
                self.next_base = self.decode();
            }
        }
        if let Some(rest) = self.extra.get(self.ei..) {
            self.ei += rest.partition_point(|&e| e < target);
        }
        self.peek()
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
    Union {
        iters: Vec<ListIter<'a>>,
        heap: BinaryHeap<Reverse<(u32, usize)>>,
        last: Option<u32>,
    },
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

/// "No ord" / "no node" in the ord tables.
const NONE: u32 = u32::MAX;

/// The key of the list of every folder (no real trigram is three NULs:
/// names hold no NUL and only one end marker).
const ALL_DIRS: u32 = 0;

/// The share tree plus its search structures; see the module docs.
pub struct ShareIndex {
    tree: ShareTree,
    /// Trigram -> the ords whose folded name holds it.
    grams: HashMap<u32, Postings, FxBuild>,
    tths: TthTable,
    /// Node index -> ord (`NONE` for free nodes).
    ord_of: Vec<u32>,
    /// Ord -> node index (`NONE` once the node is removed).
    node_of: Vec<u32>,
    /// Ord -> the largest ord of the node's subtree as numbered by the last
    /// rebuild.
    hi: Vec<u32>,
    /// Ord -> the largest appended ord below it, for the folders that got
    /// nodes appended since the last rebuild.
    widened: HashMap<u32, u32, FxBuild>,
    /// Ords handed out by the last rebuild, in depth-first order.
    dfs_len: usize,
    /// Removed nodes whose ords linger in the lists.
    stale: usize,
}

impl std::fmt::Debug for ShareIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShareIndex")
            .field("tree", &self.tree)
            .field("grams", &self.grams.len())
            .field("appended", &(self.node_of.len() - self.dfs_len))
            .field("stale", &self.stale)
            .finish()
    }
}

impl ShareIndex {
    /// Indexes a tree (about a second per million entries).
    pub fn new(tree: ShareTree) -> ShareIndex {
        let mut index = ShareIndex {
            tree,
            grams: HashMap::default(),
            tths: TthTable::new(),
            ord_of: Vec::new(),
            node_of: Vec::new(),
            hi: Vec::new(),
            widened: HashMap::default(),
            dfs_len: 0,
            stale: 0,
        };
        index.rebuild();
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
                    self.append(d, &mut buf, &mut grams);
                }
                self.append(*file, &mut buf, &mut grams);
                if let Some(t) = self.tree.tth(*file) {
                    self.tths.insert(file.raw(), &t);
                }
                self.maybe_rebuild();
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
            // The ord stays in the lists until the next rebuild, pointing
            // nowhere; a reused node id gets a new ord.
            if let Some(o) = self.ord_of.get_mut(r.id.index()) {
                let ord = std::mem::replace(o, NONE);
                if let Some(n) = self.node_of.get_mut(ord as usize) {
                    *n = NONE;
                    self.hi[ord as usize] = ord;
                    self.widened.remove(&ord);
                }
            }
        }
        self.stale += removed.len();
        self.maybe_rebuild();
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
            appended: self.node_of.len() - self.dfs_len,
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
    pub fn search(&self, query: &Query, limit: usize) -> Vec<SearchHit> {
        let mut ids = Vec::new();
        if limit == 0 {
            return Vec::new();
        }
        if let Some(tth) = &query.tth {
            self.tths.find(&self.tree, tth, limit, &mut ids);
        } else if let Some(plan) = Matcher::new(query) {
            let mut s = Search::new(self, &plan, limit);
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

    /// The largest ord in the subtree of `ord`, appended ones included.
    fn reach(&self, ord: u32) -> u32 {
        let dfs = self.hi.get(ord as usize).copied().unwrap_or(ord);
        self.widened.get(&ord).map_or(dfs, |&w| w.max(dfs))
    }

    /// Gives a new node the next ord, lists its name, and widens the
    /// subtree ranges of its ancestors to reach it.
    fn append(&mut self, id: NodeId, buf: &mut String, grams: &mut Vec<u32>) {
        let ord = self.node_of.len() as u32;
        self.node_of.push(id.raw());
        self.hi.push(ord);
        if self.ord_of.len() <= id.index() {
            self.ord_of.resize(self.tree.id_bound().max(id.index() + 1), NONE);
        }
        self.ord_of[id.index()] = ord;
        let dir = self.tree.is_dir(id);
        fold_into(self.tree.name(id), buf);
        name_grams(buf.as_bytes(), grams);
        if dir {
            grams.push(ALL_DIRS);
        }
        for &g in grams.iter() {
            self.grams.entry(g).or_default().add(ord, dir);
        }
        let mut cur = self.tree.parent(id);
        while let Some(p) = cur {
            if let Some(&po) = self.ord_of.get(p.index()) {
                if po != NONE {
                    let end = self.widened.entry(po).or_insert(ord);
                    *end = (*end).max(ord);
                }
            }
            cur = self.tree.parent(p);
        }
    }

    /// Rebuilds once a quarter of the ords are appended or stale: appended
    /// ords widen the ranges of their ancestors, stale ones only cost time.
    fn maybe_rebuild(&mut self) {
        let appended = self.node_of.len() - self.dfs_len;
        if appended + self.stale > 4096 + self.tree.len() / 4 {
            self.rebuild();
        }
    }

    /// Numbers the nodes depth-first (so that every subtree is one range of
    /// ords) and builds every posting list.
    fn rebuild(&mut self) {
        let tree = &self.tree;
        self.ord_of = vec![NONE; tree.id_bound()];
        self.node_of = Vec::with_capacity(tree.len() + 1);
        self.hi = Vec::with_capacity(tree.len() + 1);
        let mut stack: Vec<(NodeId, bool)> = vec![(tree.top(), false)];
        while let Some((n, leaving)) = stack.pop() {
            let ord = if leaving { self.ord_of[n.index()] } else { self.node_of.len() as u32 };
            if leaving {
                self.hi[ord as usize] = (self.node_of.len() - 1) as u32;
                continue;
            }
            self.ord_of[n.index()] = ord;
            self.node_of.push(n.raw());
            self.hi.push(ord);
            if tree.is_dir(n) {
                stack.push((n, true));
                stack.extend(tree.children(n).iter().rev().map(|&c| (c, false)));
            }
        }
        self.dfs_len = self.node_of.len();
        self.widened = HashMap::default();

        let mut builders: HashMap<u32, (ListBuilder, ListBuilder), FxBuild> = HashMap::default();
        let mut buf = String::new();
        let mut grams = Vec::new();
        // Ord 0 is the top node: never a search result.
        for (ord, &node) in self.node_of.iter().enumerate().skip(1) {
            let id = NodeId::from_raw(node);
            let dir = tree.is_dir(id);
            fold_into(tree.name(id), &mut buf);
            name_grams(buf.as_bytes(), &mut grams);
            if dir {
                grams.push(ALL_DIRS);
            }
            for &g in &grams {
                let (files, dirs) = builders.entry(g).or_default();
                if dir { dirs } else { files }.push(ord as u32);
            }
        }
        self.grams = HashMap::with_capacity_and_hasher(builders.len(), FxBuild::default());
        for (g, (files, dirs)) in builders {
            self.grams
                .insert(g, Postings { files: files.finish(), dirs: dirs.finish(), extra: None });
        }
        self.node_of.shrink_to_fit();
        self.hi.shrink_to_fit();
        self.stale = 0;
    }
}

// ===================================================================
// Query execution
// ===================================================================

/// How the terms stand on a path: which include terms it holds, and
/// whether it holds an exclude term.
#[derive(Clone, Copy, Default)]
struct PathState {
    mask: u64,
    excluded: bool,
}

/// What the index knows about one include term.
struct TermInfo<'t> {
    /// The folded term.
    term: &'t str,
    /// A two-byte term: `grams` are its `xy?` trigrams, taken as a union.
    short: bool,
    /// The term's distinct trigrams (or the `xy?` ones).
    grams: Vec<u32>,
    /// Upper bounds of the file and folder candidates: the shortest list of
    /// a long term, the sum of the lists of a short one.
    file_len: usize,
    dir_len: usize,
}

/// Candidates present in every one of several sorted lists, found by
/// leapfrogging: the first list (the shortest) proposes, the others confirm.
struct Cands<'a> {
    lists: Vec<Source<'a>>,
    from: u32,
}

impl Cands<'_> {
    /// The first common ord at least `target`, not consumed. Targets must
    /// not go down between calls (the lists only move forward).
    fn seek(&mut self, mut target: u32) -> Option<u32> {
        'outer: loop {
            let (first, rest) = self.lists.split_first_mut()?;
            let id = seek(first, target)?;
            for list in rest.iter_mut() {
                let at = seek(list, id)?;
                if at != id {
                    target = at;
                    continue 'outer;
                }
            }
            return Some(id);
        }
    }

    /// Consumes the next common ord.
    fn take(&mut self) -> Option<u32> {
        let id = self.seek(self.from)?;
        // Ords never reach u32::MAX (it marks "none").
        self.from = id.checked_add(1)?;
        Some(id)
    }
}

/// The ords one criterion lets through, in order: the nodes whose own name
/// may hold it (`points`), and the whole subtrees of the folders whose name
/// may hold it (`folders`, as ranges). A superset: candidates are checked.
struct Stream<'a> {
    points: Cands<'a>,
    folders: Option<Folders<'a>>,
    /// For ordering the streams: a rough count of what passes.
    estimate: usize,
}

/// The folder side of a [`Stream`]: which ords lie in the subtree of a
/// folder candidate.
struct Folders<'a> {
    /// The term (folded), to check big folders by name before their whole
    /// subtree is let through.
    term: &'a str,
    buf: String,
    cands: Cands<'a>,
    /// The same candidates from the start, for the appended region.
    again: Option<Cands<'a>>,
    /// The end of the widest candidate range seen that may still matter.
    covered_to: Option<u32>,
    /// Every candidate range holding an ord up to this one is accounted for
    /// in `covered_to`.
    done_to: Option<u32>,
}

/// Folder candidates taken one by one before jumping over the rest.
const FOLDER_STEPS: usize = 2;

/// A folder candidate whose range spans more ords than this is checked by
/// name first: a false candidate high in the tree would let a large subtree
/// through. Small ones are not worth the check.
const CHECK_RANGE: u32 = 64;

impl<'a> Folders<'a> {
    /// Lets the range of the folder at `lo`, ending at `end`, through.
    fn cover(&mut self, index: &ShareIndex, lo: u32, end: u32) {
        if end - lo.min(end) > CHECK_RANGE {
            let node = index.node_of.get(lo as usize).copied().unwrap_or(NONE);
            if node == NONE {
                return;
            }
            fold_into(index.tree.name(NodeId::from_raw(node)), &mut self.buf);
            if !self.buf.contains(self.term) {
                return;
            }
        }
        self.covered_to = Some(self.covered_to.map_or(end, |c| c.max(end)));
    }

    /// Whether `x` lies in a candidate's range; if not, the next candidate
    /// start after `x`. `x` must not go down.
    fn seek(&mut self, index: &ShareIndex, x: u32) -> (bool, Option<u32>) {
        let hi = &index.hi;
        let dfs_len = index.dfs_len as u32;
        if x >= dfs_len {
            // Appended ords are not in depth-first order: ranges do not
            // nest there, and a range that was jumped over may have been
            // widened to reach them. Walk every candidate once, from the
            // start, keeping the widest range.
            if let Some(mut all) = self.again.take() {
                // Depth-first ranges end before the appended region: only
                // their widening can reach it.
                self.covered_to = None;
                while let Some(lo) = all.seek(all.from) {
                    if lo >= dfs_len {
                        break;
                    }
                    all.take();
                    if let Some(&end) = index.widened.get(&lo) {
                        self.cover(index, lo, end);
                    }
                }
                self.cands = all;
            }
            while let Some(lo) = self.cands.seek(self.cands.from) {
                if lo > x {
                    break;
                }
                self.cands.take();
                self.cover(index, lo, index.reach(lo));
            }
        } else {
            // Depth-first region: ranges nest, so a range holding `x` belongs
            // to `x` or one of its ancestors. Take a few candidates in order;
            // if many remain before `x`, look at the ancestors of `x` instead
            // and jump over the rest.
            let mut steps = 0;
            while let Some(lo) = self.cands.seek(self.cands.from) {
                if lo > x {
                    break;
                }
                if steps == FOLDER_STEPS {
                    self.ancestors(index, x);
                    break;
                }
                self.cands.take();
                self.cover(index, lo, hi.get(lo as usize).copied().unwrap_or(lo));
                steps += 1;
            }
            if self.cands.seek(self.cands.from).is_none_or(|lo| lo > x) {
                self.done_to = Some(x);
            }
        }
        if self.covered_to.is_some_and(|c| c >= x) {
            return (true, None);
        }
        (false, self.cands.seek(self.cands.from))
    }

    /// Accounts for the candidates among `x` and its ancestors above
    /// `done_to`, then moves past `x`.
    fn ancestors(&mut self, index: &ShareIndex, x: u32) {
        let Some(&node) = index.node_of.get(x as usize) else { return };
        if node == NONE {
            // A removed node: its ancestors are unknown. Leave `done_to`
            // where it is, so that the next ord looks at enough of its own.
            return;
        }
        let mut chain: Vec<u32> = Vec::new();
        let mut cur = Some(NodeId::from_raw(node));
        while let Some(n) = cur {
            let Some(&o) = index.ord_of.get(n.index()) else { break };
            if o == NONE || self.done_to.is_some_and(|d| o <= d) || o == 0 {
                break;
            }
            chain.push(o);
            cur = index.tree.parent(n);
        }
        for &o in chain.iter().rev() {
            if self.cands.seek(o) == Some(o) {
                self.cover(index, o, index.hi.get(o as usize).copied().unwrap_or(o));
            }
        }
        // Candidates between `done_to` and `x` that are not ancestors of `x`
        // end before `x` (ranges nest): skip them.
        self.cands.from = self.cands.from.max(x.saturating_add(1));
        self.done_to = Some(x);
    }
}

impl Stream<'_> {
    /// The first ord at least `x` that passes. `x` must not go down.
    fn seek(&mut self, index: &ShareIndex, x: u32) -> Option<u32> {
        let mut next_folder = None;
        if let Some(folders) = self.folders.as_mut() {
            let (covered, next) = folders.seek(index, x);
            if covered {
                return Some(x);
            }
            next_folder = next;
        }
        match (next_folder, self.points.seek(x)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

struct Search<'a> {
    index: &'a ShareIndex,
    tree: &'a ShareTree,
    plan: &'a Matcher,
    limit: usize,
    buf: String,
    hits: Vec<NodeId>,
    stack: Vec<(NodeId, u64)>,
    subdirs: Vec<(NodeId, u64)>,
    /// Path states of the folders seen (keyed by node index), and a scratch
    /// chain for filling it.
    paths: HashMap<u32, PathState, FxBuild>,
    chain: Vec<NodeId>,
}

impl<'a> Search<'a> {
    fn new(index: &'a ShareIndex, plan: &'a Matcher, limit: usize) -> Search<'a> {
        Search {
            index,
            tree: &index.tree,
            plan,
            limit,
            buf: String::new(),
            hits: Vec::new(),
            stack: Vec::new(),
            subdirs: Vec::new(),
            paths: HashMap::default(),
            chain: Vec::new(),
        }
    }

    fn full(&self) -> bool {
        self.hits.len() >= self.limit
    }

    fn run(&mut self) {
        let plan = self.plan;
        let mut long = Vec::new();
        let mut short = Vec::new();
        for term in &plan.include {
            match self.term_info(term) {
                // A term no name contains: nothing can match.
                Some(info) if info.file_len + info.dir_len == 0 => return,
                Some(info) if info.short => short.push(info),
                Some(info) => long.push(info),
                None => {}
            }
        }
        let mut streams: Vec<Stream<'a>> = Vec::new();
        // Two-byte terms are unions of up to 256 lists: cheap to check on a
        // candidate's path, costly to stream. Stream one only when nothing
        // better exists.
        short.sort_by_key(|t| t.file_len + t.dir_len);
        let terms = if long.is_empty() { short.into_iter().take(1).collect() } else { long };
        for info in &terms {
            streams.push(self.term_stream(info));
        }
        if let Some(s) = self.extension_stream() {
            streams.push(s);
        }
        if !plan.files {
            let index: &'a ShareIndex = self.index;
            if let Some(p) = index.grams.get(&ALL_DIRS) {
                streams.push(Stream {
                    points: Cands { lists: vec![Source::One(p.iter(true))], from: 0 },
                    folders: None,
                    estimate: p.len(true),
                });
            }
        }
        if streams.is_empty() {
            self.scan();
        } else {
            streams.sort_by_key(|s| s.estimate);
            self.leapfrog(&mut streams);
        }
    }

    fn term_info(&self, term: &'a str) -> Option<TermInfo<'a>> {
        let grams = &self.index.grams;
        let b = term.as_bytes();
        let mut info =
            TermInfo { term, short: b.len() == 2, grams: Vec::new(), file_len: 0, dir_len: 0 };
        match b.len() {
            0 | 1 => return None,
            2 => {
                let prefix = u32::from(b[0]) << 16 | u32::from(b[1]) << 8;
                for last in 0..=255u32 {
                    if let Some(p) = grams.get(&(prefix | last)) {
                        info.grams.push(prefix | last);
                        info.file_len += p.len(false);
                        info.dir_len += p.len(true);
                    }
                }
            }
            _ => {
                info.file_len = usize::MAX;
                info.dir_len = usize::MAX;
                for w in b.windows(3) {
                    let g = u32::from(w[0]) << 16 | u32::from(w[1]) << 8 | u32::from(w[2]);
                    let (f, d) = grams.get(&g).map_or((0, 0), |p| (p.len(false), p.len(true)));
                    info.file_len = info.file_len.min(f);
                    info.dir_len = info.dir_len.min(d);
                    if !info.grams.contains(&g) {
                        info.grams.push(g);
                    }
                }
            }
        }
        Some(info)
    }

    /// Ords holding every trigram of a term in the file or folder lists, the
    /// shortest list proposing. Lists far longer than the shortest are left
    /// out: checking the candidates costs less than walking them.
    fn cands(&self, info: &TermInfo<'_>, dirs: bool) -> Cands<'a> {
        let index: &'a ShareIndex = self.index;
        let lists = info.grams.iter().filter_map(|g| index.grams.get(g));
        let mut sources: Vec<(usize, Source<'a>)> = if info.short {
            let iters: Vec<ListIter<'a>> = lists.map(|p| p.iter(dirs)).collect();
            vec![(0, Source::union(iters))]
        } else {
            lists.map(|p| (p.len(dirs), Source::One(p.iter(dirs)))).collect()
        };
        sources.sort_by_key(|(len, _)| *len);
        let cap = sources.first().map_or(0, |(len, _)| *len).saturating_mul(FILTER_RATIO);
        Cands {
            lists: sources
                .into_iter()
                .filter(|(len, _)| *len <= cap)
                .take(MAX_LISTS)
                .map(|(_, s)| s)
                .collect(),
            from: 0,
        }
    }

    fn term_stream(&self, info: &TermInfo<'a>) -> Stream<'a> {
        let appended = self.index.node_of.len() > self.index.dfs_len;
        Stream {
            points: self.cands(info, false),
            folders: Some(Folders {
                term: info.term,
                buf: String::new(),
                cands: self.cands(info, true),
                again: appended.then(|| self.cands(info, true)),
                covered_to: None,
                done_to: None,
            }),
            estimate: info.file_len + info.dir_len,
        }
    }

    /// Files whose name ends with one of the wanted extensions (type group
    /// or ADC `EX`): the union of the lists of their last two bytes and the
    /// end marker. `None` when an extension is too short to narrow anything.
    fn extension_stream(&self) -> Option<Stream<'a>> {
        let plan = self.plan;
        let exts: Vec<&str> = if plan.extensions.is_empty() {
            plan.group.to_vec()
        } else {
            plan.extensions.iter().map(String::as_str).collect()
        };
        if exts.is_empty() {
            return None;
        }
        let index: &'a ShareIndex = self.index;
        let mut keys: Vec<u32> = Vec::new();
        for e in &exts {
            let b = e.as_bytes();
            let [.., x, y] = b else { return None };
            let key = u32::from(*x) << 16 | u32::from(*y) << 8;
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        let lists: Vec<&'a Postings> = keys.iter().filter_map(|k| index.grams.get(k)).collect();
        let estimate = lists.iter().map(|p| p.len(false)).sum();
        let iters = lists.iter().map(|p| p.iter(false)).collect();
        Some(Stream {
            points: Cands { lists: vec![Source::union(iters)], from: 0 },
            folders: None,
            estimate,
        })
    }

    /// Visits, in ord order, the ords every stream lets through, and checks
    /// each against the real names.
    fn leapfrog(&mut self, streams: &mut [Stream<'a>]) {
        let index: &'a ShareIndex = self.index;
        let n = streams.len();
        // Ord 0 is the top node.
        let mut x = 1u32;
        loop {
            let mut agreed = 0;
            let mut i = 0;
            while agreed < n {
                let Some(y) = streams[i].seek(index, x) else { return };
                if y == x {
                    agreed += 1;
                } else {
                    x = y;
                    agreed = 1;
                }
                i = (i + 1) % n;
            }
            self.check(x);
            if self.full() {
                return;
            }
            let Some(next) = x.checked_add(1) else { return };
            x = next;
        }
    }

    /// Checks one candidate ord against the query and keeps it if it
    /// matches.
    fn check(&mut self, ord: u32) {
        let plan = self.plan;
        let Some(&node) = self.index.node_of.get(ord as usize) else { return };
        if node == NONE {
            return;
        }
        let id = NodeId::from_raw(node);
        if self.tree.is_dir(id) {
            if plan.dirs && self.tree.is_listed(id) {
                let st = self.path_state(id);
                if !st.excluded && st.mask == plan.full {
                    self.hits.push(id);
                }
            }
            return;
        }
        if self.tree.tth(id).is_none() || !plan.file_ok(self.tree.name(id), self.tree.size(id)) {
            return;
        }
        let Some(parent) = self.tree.parent(id) else { return };
        let ps = self.path_state(parent);
        if ps.excluded {
            return;
        }
        let st = self.name_state(id, ps.mask);
        if !st.excluded && st.mask == plan.full {
            self.hits.push(id);
        }
    }

    /// Terms on the name of `id` added to `mask`, and whether the name holds
    /// an exclude term.
    fn name_state(&mut self, id: NodeId, mask: u64) -> PathState {
        let plan = self.plan;
        if mask == plan.full && plan.exclude.is_empty() {
            return PathState { mask, excluded: false };
        }
        fold_into(self.tree.name(id), &mut self.buf);
        let (mask, excluded) = plan.name_terms(&self.buf, mask);
        PathState { mask, excluded }
    }

    /// The state of a folder's whole path (the folder and its ancestors),
    /// memoised for every folder of the query.
    fn path_state(&mut self, dir: NodeId) -> PathState {
        let top = self.tree.top();
        let mut base = PathState::default();
        let mut chain = std::mem::take(&mut self.chain);
        chain.clear();
        let mut cur = dir;
        while cur != top {
            if let Some(st) = self.paths.get(&cur.raw()) {
                base = *st;
                break;
            }
            chain.push(cur);
            match self.tree.parent(cur) {
                Some(p) => cur = p,
                None => break,
            }
        }
        for &n in chain.iter().rev() {
            let own = self.name_state(n, 0);
            base =
                PathState { mask: base.mask | own.mask, excluded: base.excluded || own.excluded };
            self.paths.insert(n.raw(), base);
        }
        self.chain = chain;
        base
    }

    /// No criterion can use the lists: walk the whole tree depth-first,
    /// carrying the terms matched on the path.
    fn scan(&mut self) {
        let plan = self.plan;
        self.stack.clear();
        self.stack.push((self.tree.top(), 0));
        while let Some((dir, mask)) = self.stack.pop() {
            self.subdirs.clear();
            for &c in self.tree.children(dir) {
                if self.tree.is_dir(c) {
                    if !self.tree.is_listed(c) {
                        continue;
                    }
                    let st = self.name_state(c, mask);
                    if st.excluded {
                        continue;
                    }
                    if plan.dirs && st.mask == plan.full {
                        self.hits.push(c);
                        if self.full() {
                            return;
                        }
                    }
                    self.subdirs.push((c, st.mask));
                } else if self.tree.tth(c).is_some()
                    && plan.file_ok(self.tree.name(c), self.tree.size(c))
                {
                    let st = self.name_state(c, mask);
                    if !st.excluded && st.mask == plan.full {
                        self.hits.push(c);
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
}

/// Advances a source to the first id at least `target`.
fn seek(source: &mut Source<'_>, target: u32) -> Option<u32> {
    match source {
        Source::One(it) => it.seek(target),
        // Advance the lists behind the heap directly: `next` would skip a
        // duplicate and could consume an id past `target`.
        Source::Union { iters, heap, .. } => loop {
            let &Reverse((id, i)) = heap.peek()?;
            if id >= target {
                return Some(id);
            }
            heap.pop();
            if let Some(n) = iters[i].seek(target) {
                heap.push(Reverse((n, i)));
            }
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
    fn seeks_jump_over_blocks() {
        let mut b = ListBuilder::default();
        let ids: Vec<u32> = (1..5000u32).map(|i| i * 3).collect();
        for &i in &ids {
            b.push(i);
        }
        let list = b.finish();
        assert_eq!(list.skips.len(), (ids.len() - 1) / BLOCK as usize);
        let extra = [7u32, 14_000];
        let mut it = ListIter::new(&list, &extra);
        for target in [0u32, 5, 7, 8, 385, 386, 387, 9000, 13_999, 14_000, 14_996, 14_997, 15_000] {
            let want = ids.iter().chain(&extra).copied().filter(|&i| i >= target).min();
            let mut fresh = ListIter::new(&list, &extra);
            assert_eq!(fresh.seek(target), want, "fresh seek {target}");
            assert_eq!(it.seek(target), want, "running seek {target}");
        }
        // A union seeks without consuming past the target, duplicates too.
        let lists = [ListIter::new(&list, &[]), ListIter::new(&list, &extra)];
        let mut u = Source::union(lists.to_vec());
        assert_eq!(seek(&mut u, 7), Some(7));
        assert_eq!(u.next(), Some(7));
        assert_eq!(seek(&mut u, 9), Some(9));
        assert_eq!(u.next(), Some(9));
        assert_eq!(u.next(), Some(12));
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
