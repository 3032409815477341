//! The Tiger Tree Hash (TTH) that identifies every file on Direct Connect.
//!
//! Pure: no I/O, no clocks. This module owns the [`Tth`] value type (a 192-bit
//! Tiger tree root, written as 39 characters of unpadded RFC 4648 base32), the
//! streaming [`TreeHasher`] that computes a [`TigerTree`] from bytes, the TTHL
//! form of a tree level (24-byte hashes left to right, as DC++ stores and sends
//! them) and its verification against a known root.
//!
//! The tree (THEX, ADC-EXT §TIGR): the data is cut into 1024-byte blocks; a leaf
//! is `Tiger(0x00 ‖ block)`, an inner node `Tiger(0x01 ‖ left ‖ right)`, and an odd
//! node at the end of a level is promoted unchanged. An empty input has one leaf,
//! `Tiger(0x00)`. Tiger is the *original* Tiger (0x01 message padding), not Tiger2.
//!
//! Which level a client keeps (and sends as TTHL) follows DC++: blocks of
//! `max(calcBlockSize(size, 10 levels), 64 KiB)`, hence at most 512 leaves
//! ([`dcpp_block_size`]).
//!
//! Speed: the hasher never allocates per leaf, reuses one Tiger state for the
//! leaves and one for the nodes, and merges pending nodes like a binary counter,
//! so it holds at most one pending node per level (≤ 64). Its cost is bounded
//! below by the definition: 17 Tiger compressions per 1024-byte leaf plus about
//! one per inner node, against 16 per KiB for plain Tiger over the same bytes,
//! so tree hashing cannot be faster than 16/18 ≈ 0.89 of plain Tiger.

use std::fmt;
use std::str::FromStr;

use data_encoding::BASE32_NOPAD;
use tiger::digest::Output;
use tiger::{Digest, Tiger};

/// A Tiger tree root: 24 bytes, shown as 39 base32 characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tth(pub [u8; 24]);

impl Tth {
    /// The raw 24 bytes.
    pub fn as_bytes(&self) -> &[u8; 24] {
        &self.0
    }

    /// The 39-character base32 form.
    pub fn to_base32(&self) -> String {
        BASE32_NOPAD.encode(&self.0)
    }
}

impl fmt::Display for Tth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base32())
    }
}

impl fmt::Debug for Tth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tth({self})")
    }
}

/// Why a text is not a TTH.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid TTH {text:?}: expected 39 base32 characters (A-Z, 2-7)")]
pub struct ParseTthError {
    text: String,
}

impl FromStr for Tth {
    type Err = ParseTthError;

    fn from_str(s: &str) -> Result<Tth, ParseTthError> {
        let err = || ParseTthError { text: s.chars().take(64).collect() };
        if s.len() != 39 {
            return Err(err());
        }
        // Base32 is case-insensitive in practice; accept lower case input.
        let upper = s.to_ascii_uppercase();
        let bytes = BASE32_NOPAD.decode(upper.as_bytes()).map_err(|_| err())?;
        let arr: [u8; 24] = bytes.try_into().map_err(|_| err())?;
        Ok(Tth(arr))
    }
}

/// One node of a Tiger tree (a leaf or an inner node): 24 raw bytes.
pub type NodeHash = [u8; 24];

/// Size of the data under one leaf of the full tree.
pub const BASE_BLOCK_SIZE: u64 = 1024;

/// The smallest block size DC++ keeps leaves for (64 KiB).
pub const MIN_KEPT_BLOCK_SIZE: u64 = 64 * 1024;

/// The most leaves DC++ keeps for one file (a tree of 10 levels).
pub const MAX_KEPT_LEAVES: u64 = 512;

/// Level (above the 1024-byte leaves) of [`MIN_KEPT_BLOCK_SIZE`].
const MIN_KEPT_LEVEL: u8 = 6;

/// Pending nodes: at most one per level, and a `u64` size has fewer than 55
/// levels above the 1024-byte leaves.
const MAX_DEPTH: usize = 64;

/// The block size DC++ keeps leaves for, for a file of `file_size` bytes:
/// `max(calcBlockSize(size, 10), 64 KiB)`, the smallest power-of-two multiple of
/// 1024 that needs at most 512 leaves, and never below 64 KiB.
pub fn dcpp_block_size(file_size: u64) -> u64 {
    let mut block = MIN_KEPT_BLOCK_SIZE;
    // u128 so that the product cannot overflow for huge sizes.
    while u128::from(block) * u128::from(MAX_KEPT_LEAVES) < u128::from(file_size) {
        block *= 2;
    }
    block
}

/// Number of leaves of blocks of `block_size` bytes over `file_size` bytes: the
/// blocks rounded up, and one leaf for an empty file. `block_size` must not be 0.
pub fn leaf_count(file_size: u64, block_size: u64) -> u64 {
    file_size.div_ceil(block_size.max(1)).max(1)
}

/// `Tiger(0x00 ‖ block)`: the leaf of one block of at most 1024 bytes.
pub fn leaf_hash(block: &[u8]) -> NodeHash {
    let mut tiger = Tiger::new();
    tiger.update([0u8]);
    tiger.update(block);
    tiger.finalize().into()
}

/// `Tiger(0x01 ‖ left ‖ right)`: an inner node.
pub fn node_hash(left: &NodeHash, right: &NodeHash) -> NodeHash {
    node_with(&mut Tiger::new(), left, right)
}

/// [`node_hash`] with a caller's Tiger state, left reset for the next use.
#[inline]
fn node_with(tiger: &mut Tiger, left: &NodeHash, right: &NodeHash) -> NodeHash {
    let mut buf = [0u8; 49];
    buf[0] = 0x01;
    buf[1..25].copy_from_slice(left);
    buf[25..].copy_from_slice(right);
    tiger.update(buf);
    finalize_reset(tiger)
}

#[inline]
fn finalize_reset(tiger: &mut Tiger) -> NodeHash {
    let mut out = Output::<Tiger>::default();
    tiger.finalize_into_reset(&mut out);
    out.into()
}

/// The root of the tree over `data` (the whole tree, built in one call).
pub fn tree_root(data: &[u8]) -> Tth {
    let mut hasher = TreeHasher::with_keep(Keep::RootOnly);
    hasher.update(data);
    hasher.finish().root
}

/// The root over the nodes of one level, left to right: pairs merged level by
/// level, an odd last node promoted unchanged (THEX). Every node but the last
/// must be a complete subtree of the same size; the last may be partial (the
/// end of a file). `None` when there are no nodes.
///
/// This is how the roots of a block's pieces, hashed apart, make the block's
/// root: the subtrees of aligned pieces are exactly the tree's nodes at the
/// pieces' level.
pub fn fold_level(nodes: &[NodeHash]) -> Option<NodeHash> {
    let mut merger = Merger::new();
    for n in nodes {
        merger.push(*n, 0, u8::MAX);
    }
    merger.fold(0).0
}

/// Whether `data` is the block whose tree root is `leaf` (a kept leaf covers a
/// whole block of its level, so this is the root of the block's own tree).
pub fn block_matches(data: &[u8], leaf: &NodeHash) -> bool {
    tree_root(data).0 == *leaf
}

/// The pending right edge of a tree under construction, merged like a binary
/// counter: entry `i` is a complete subtree of `2^levels[i]` nodes of the
/// level it was built from, levels strictly decreasing from bottom to top.
struct Merger {
    node: Tiger,
    stack: [NodeHash; MAX_DEPTH],
    levels: [u8; MAX_DEPTH],
    depth: usize,
}

impl Merger {
    fn new() -> Merger {
        Merger { node: Tiger::new(), stack: [[0; 24]; MAX_DEPTH], levels: [0; MAX_DEPTH], depth: 0 }
    }

    /// Adds a complete subtree of level `level` at the right end; returns the
    /// complete node of level `watch` made by this push, if any (at most one,
    /// since each merge raises the level).
    #[inline]
    fn push(&mut self, mut hash: NodeHash, mut level: u8, watch: u8) -> Option<NodeHash> {
        let mut watched = None;
        loop {
            if level == watch {
                watched = Some(hash);
            }
            if self.depth > 0 && self.levels[self.depth - 1] == level {
                self.depth -= 1;
                hash = node_with(&mut self.node, &self.stack[self.depth], &hash);
                level += 1;
            } else {
                break;
            }
        }
        // A u64 size never gets near MAX_DEPTH pending levels, and TTHL input
        // is bounded by its length; still, never index out of bounds.
        if self.depth < MAX_DEPTH {
            self.stack[self.depth] = hash;
            self.levels[self.depth] = level;
            self.depth += 1;
        }
        watched
    }

    /// Folds the pending nodes from right to left (the odd node promoted
    /// unchanged at each level, as THEX does level by level). Returns the root
    /// (`None` if nothing was pushed) and the fold of the pending nodes below
    /// level `below`, which is the hash of the last, partial block of that level.
    fn fold(&mut self, below: u8) -> (Option<NodeHash>, Option<NodeHash>) {
        let mut acc: Option<NodeHash> = None;
        let mut partial = None;
        for i in (0..self.depth).rev() {
            let h = self.stack[i];
            acc = Some(match acc {
                None => h,
                Some(right) => node_with(&mut self.node, &h, &right),
            });
            if self.levels[i] < below {
                partial = acc;
            }
        }
        (acc, partial)
    }
}

/// Which level of the tree a [`TreeHasher`] keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keep {
    /// DC++'s rule: start at 64 KiB blocks, double while more than 512 leaves.
    DcPlusPlus,
    /// A fixed level (block size `1024 << level`).
    Fixed,
    /// Only the root.
    RootOnly,
}

/// A Tiger tree: the root and one level of leaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TigerTree {
    /// Size of the data in bytes.
    pub size: u64,
    /// The root hash (the file's TTH).
    pub root: Tth,
    /// Bytes of data under each kept leaf (the last one may cover less).
    pub block_size: u64,
    /// The kept level, left to right: [`leaf_count`]`(size, block_size)` hashes.
    pub leaves: Vec<NodeHash>,
}

impl TigerTree {
    /// The kept level as TTHL: the leaves concatenated left to right.
    pub fn to_tthl(&self) -> Vec<u8> {
        self.leaves.concat()
    }

    /// A tree from a TTHL received for a file of `size` bytes whose TTH is
    /// `root`, after [`verify_tthl`] accepted it.
    pub fn from_tthl(size: u64, root: Tth, tthl: &[u8]) -> Result<TigerTree, TthlError> {
        let block_size = verify_tthl(tthl, size, &root)?;
        let leaves = tthl.chunks_exact(24).map(to_node).collect();
        Ok(TigerTree { size, root, block_size, leaves })
    }

    /// The byte range of the file under leaf `index`, `None` past the end.
    pub fn block_range(&self, index: usize) -> Option<std::ops::Range<u64>> {
        if index >= self.leaves.len() {
            return None;
        }
        let start = (index as u64).checked_mul(self.block_size)?;
        let end = start.saturating_add(self.block_size).min(self.size);
        Some(start..end)
    }

    /// Whether `data` is exactly the content of block `index`: right length and
    /// a tree root equal to the kept leaf.
    pub fn verify_block(&self, index: usize, data: &[u8]) -> bool {
        match (self.block_range(index), self.leaves.get(index)) {
            (Some(range), Some(leaf)) => {
                range.end - range.start == data.len() as u64 && block_matches(data, leaf)
            }
            _ => false,
        }
    }
}

fn to_node(chunk: &[u8]) -> NodeHash {
    let mut node = [0u8; 24];
    node.copy_from_slice(chunk);
    node
}

/// Why a TTHL does not belong to a file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TthlError {
    /// The TTHL is empty or not a whole number of 24-byte hashes.
    #[error("invalid TTHL: {len} bytes is not a positive multiple of 24")]
    BadLength {
        /// Length of the TTHL in bytes.
        len: usize,
    },
    /// No power-of-two block size gives this many leaves for this size.
    #[error("invalid TTHL: {leaves} leaves cannot describe a file of {size} bytes")]
    LeafCount {
        /// Number of hashes in the TTHL.
        leaves: u64,
        /// The file size.
        size: u64,
    },
    /// The leaves rebuild another root than the file's TTH.
    #[error("TTHL does not match the file: its root is {got}, expected {expected}")]
    RootMismatch {
        /// The TTH the leaves had to rebuild.
        expected: Tth,
        /// The root they rebuild.
        got: Tth,
    },
}

/// Checks a TTHL (`tthl`: 24-byte hashes left to right) for a file of
/// `file_size` bytes whose TTH is `root`, and returns its block size.
///
/// As DC++ does, the block size is the smallest power-of-two multiple of 1024
/// that covers the file with that many leaves; the leaf count must then be
/// exactly the number of blocks, and the leaves must rebuild `root`.
pub fn verify_tthl(tthl: &[u8], file_size: u64, root: &Tth) -> Result<u64, TthlError> {
    if tthl.is_empty() || tthl.len() % 24 != 0 {
        return Err(TthlError::BadLength { len: tthl.len() });
    }
    let leaves = (tthl.len() / 24) as u64;
    let bad_count = || TthlError::LeafCount { leaves, size: file_size };
    let mut block = BASE_BLOCK_SIZE;
    while u128::from(block) * u128::from(leaves) < u128::from(file_size) {
        block = block.checked_mul(2).ok_or_else(bad_count)?;
    }
    if leaf_count(file_size, block) != leaves {
        return Err(bad_count());
    }
    let mut merger = Merger::new();
    for chunk in tthl.chunks_exact(24) {
        merger.push(to_node(chunk), 0, u8::MAX);
    }
    let (got, _) = merger.fold(0);
    let got = Tth(got.ok_or_else(bad_count)?);
    if got != *root {
        return Err(TthlError::RootMismatch { expected: *root, got });
    }
    Ok(block)
}

/// Computes a [`TigerTree`] from data given in pieces of any size.
///
/// ```
/// use dclua::proto::tth::TreeHasher;
/// let mut h = TreeHasher::new();
/// h.update(b"a");
/// assert_eq!(h.finish().root.to_string(), "CZQUWH3IYXBF5L3BGYUGZHASSMXU647IP2IKE4Y");
/// ```
pub struct TreeHasher {
    /// State of the current leaf; `0x00` has been fed when `leaf_fill > 0`.
    leaf: Tiger,
    /// Data bytes in the current leaf (0 = no leaf started).
    leaf_fill: usize,
    total: u64,
    merger: Merger,
    keep: Keep,
    /// Level of the kept leaves (block size `1024 << keep_level`).
    keep_level: u8,
    /// Complete kept leaves so far.
    kept: Vec<NodeHash>,
}

impl std::fmt::Debug for TreeHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TreeHasher")
            .field("bytes", &self.total)
            .field("keep", &self.keep)
            .field("kept_level", &self.keep_level)
            .finish()
    }
}

impl Default for TreeHasher {
    fn default() -> TreeHasher {
        TreeHasher::new()
    }
}

impl TreeHasher {
    /// A hasher keeping the level DC++ keeps ([`dcpp_block_size`] of the
    /// final size, found as the data arrives).
    pub fn new() -> TreeHasher {
        TreeHasher::with_keep(Keep::DcPlusPlus)
    }

    /// A hasher keeping the leaves of blocks of `block_size` bytes, whatever
    /// their number; `None` unless `block_size` is 1024 times a power of two.
    pub fn with_block_size(block_size: u64) -> Option<TreeHasher> {
        if block_size < BASE_BLOCK_SIZE || !block_size.is_power_of_two() {
            return None;
        }
        let mut hasher = TreeHasher::with_keep(Keep::Fixed);
        hasher.keep_level = (block_size / BASE_BLOCK_SIZE).trailing_zeros() as u8;
        Some(hasher)
    }

    /// A hasher that keeps only the root: the hash of one block of a
    /// download checked as it streams in.
    pub fn root_only() -> TreeHasher {
        TreeHasher::with_keep(Keep::RootOnly)
    }

    fn with_keep(keep: Keep) -> TreeHasher {
        let (keep_level, capacity) = match keep {
            // One more than the cap: the 513th leaf triggers the doubling.
            Keep::DcPlusPlus => (MIN_KEPT_LEVEL, MAX_KEPT_LEAVES as usize + 1),
            Keep::Fixed => (0, 0),
            Keep::RootOnly => (u8::MAX, 0),
        };
        TreeHasher {
            leaf: Tiger::new(),
            leaf_fill: 0,
            total: 0,
            merger: Merger::new(),
            keep,
            keep_level,
            kept: Vec::with_capacity(capacity),
        }
    }

    /// Bytes hashed so far.
    pub fn bytes_hashed(&self) -> u64 {
        self.total
    }

    /// Hashes the next `data` bytes.
    pub fn update(&mut self, mut data: &[u8]) {
        self.total += data.len() as u64;
        if self.leaf_fill > 0 {
            let take = (BASE_BLOCK_SIZE as usize - self.leaf_fill).min(data.len());
            self.leaf.update(&data[..take]);
            self.leaf_fill += take;
            data = &data[take..];
            if self.leaf_fill < BASE_BLOCK_SIZE as usize {
                return;
            }
            self.finish_leaf();
        }
        let mut blocks = data.chunks_exact(BASE_BLOCK_SIZE as usize);
        for block in &mut blocks {
            self.leaf.update([0u8]);
            self.leaf.update(block);
            self.finish_leaf();
        }
        let rest = blocks.remainder();
        if !rest.is_empty() {
            self.leaf.update([0u8]);
            self.leaf.update(rest);
            self.leaf_fill = rest.len();
        }
    }

    #[inline]
    fn finish_leaf(&mut self) {
        let leaf = finalize_reset(&mut self.leaf);
        self.leaf_fill = 0;
        if let Some(kept) = self.merger.push(leaf, 0, self.keep_level) {
            self.keep(kept);
        }
    }

    /// Records a complete node of the kept level.
    fn keep(&mut self, node: NodeHash) {
        if self.keep == Keep::DcPlusPlus && self.kept.len() as u64 == MAX_KEPT_LEAVES {
            // More data than 512 blocks: DC++ would keep the next level up.
            // The 512 kept nodes pair up exactly into complete parents; `node`
            // stays pending in the merger, as the left child of a parent of
            // the new kept level that a later push (or `finish`) records.
            self.halve_kept();
            return;
        }
        self.kept.push(node);
    }

    /// Replaces the kept level by the level above it (odd node promoted).
    fn halve_kept(&mut self) {
        let n = self.kept.len();
        let mut out = 0;
        let mut i = 0;
        while i + 1 < n {
            self.kept[out] = node_with(&mut self.merger.node, &self.kept[i], &self.kept[i + 1]);
            out += 1;
            i += 2;
        }
        if i < n {
            self.kept[out] = self.kept[i];
            out += 1;
        }
        self.kept.truncate(out);
        self.keep_level += 1;
    }

    /// Completes the tree.
    pub fn finish(mut self) -> TigerTree {
        if self.leaf_fill > 0 || self.total == 0 {
            if self.total == 0 {
                // The empty input has one leaf: Tiger(0x00).
                self.leaf.update([0u8]);
            }
            self.finish_leaf();
        }
        let (root, partial) = self.merger.fold(self.keep_level);
        // At least one leaf was pushed above, so there is a root.
        let root = Tth(root.unwrap_or_default());
        if self.keep == Keep::RootOnly {
            return TigerTree {
                size: self.total,
                root,
                block_size: self.total,
                leaves: Vec::new(),
            };
        }
        if let Some(partial) = partial {
            self.kept.push(partial);
        }
        while self.keep == Keep::DcPlusPlus && self.kept.len() as u64 > MAX_KEPT_LEAVES {
            self.halve_kept();
        }
        TigerTree {
            size: self.total,
            root,
            block_size: BASE_BLOCK_SIZE << self.keep_level,
            leaves: self.kept,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_round_trip() {
        let text = "LWPNACQDBZRYXW3VHJVCJ64QBZNGHOHHHZWCLNQ";
        let tth: Tth = text.parse().unwrap();
        assert_eq!(tth.to_string(), text);
        assert_eq!(text.to_lowercase().parse::<Tth>().unwrap(), tth);
    }

    #[test]
    fn rejects_bad_text() {
        for bad in ["", "ABC", "LWPNACQDBZRYXW3VHJVCJ64QBZNGHOHHHZWCLN1", "x".repeat(39).as_str()] {
            assert!(bad.parse::<Tth>().is_err(), "{bad:?}");
        }
    }

    /// The tree built the slow, obvious way: all leaves, then level by level.
    fn naive_levels(data: &[u8]) -> Vec<Vec<NodeHash>> {
        let mut level: Vec<NodeHash> = if data.is_empty() {
            vec![leaf_hash(&[])]
        } else {
            data.chunks(1024).map(leaf_hash).collect()
        };
        let mut levels = vec![level.clone()];
        while level.len() > 1 {
            level = level
                .chunks(2)
                .map(|pair| if pair.len() == 2 { node_hash(&pair[0], &pair[1]) } else { pair[0] })
                .collect();
            levels.push(level.clone());
        }
        levels
    }

    /// Deterministic test data (xorshift64*).
    fn data(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x >> 12;
                x ^= x << 25;
                x ^= x >> 27;
                (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
            })
            .collect()
    }

    #[test]
    fn protocol_vectors() {
        let table: [(&[u8], &str); 4] = [
            (b"", "LWPNACQDBZRYXW3VHJVCJ64QBZNGHOHHHZWCLNQ"),
            (b"a", "CZQUWH3IYXBF5L3BGYUGZHASSMXU647IP2IKE4Y"),
            (&[b'a'; 1024], "BR4BVJBMHDFVCFI4WBPSL63W5TWXWVBSC574BLI"),
            (&[b'a'; 1025], "CDYY2OW6F6DTGCH3Q6NMSDLSRV7PNMAL3CED3DA"),
        ];
        for (input, want) in table {
            let mut h = TreeHasher::new();
            h.update(input);
            let tree = h.finish();
            assert_eq!(tree.root.to_string(), want, "{} bytes", input.len());
            assert_eq!(tree_root(input).to_string(), want);
            assert_eq!(tree.size, input.len() as u64);
            // Small files keep one 64 KiB block: its leaf is the root.
            assert_eq!(tree.leaves, vec![tree.root.0]);
            assert_eq!(tree.block_size, 64 * 1024);
        }
    }

    #[test]
    fn original_tiger_not_tiger2() {
        let got: NodeHash = Tiger::digest(b"hello world").into();
        assert_eq!(
            data_encoding::HEXLOWER.encode(&got),
            "4c8fbddae0b6f25832af45e7c62811bb64ec3e43691e9cc3"
        );
    }

    #[test]
    fn streaming_in_any_pieces_matches_the_naive_tree() {
        let sizes = [0, 1, 1023, 1024, 1025, 2047, 2048, 3073, 5 * 1024 + 7, 64 * 1024 - 1];
        let sizes = sizes.into_iter().chain([64 * 1024, 64 * 1024 + 1, 200_000, 1 << 20]);
        for (n, size) in sizes.enumerate() {
            let bytes = data(size, n as u64 + 1);
            let want = *naive_levels(&bytes).last().unwrap().first().unwrap();
            // Pieces of awkward sizes, so that leaves straddle update calls.
            for piece in [1usize, 7, 1000, 1024, 1500, 65_536, usize::MAX] {
                let mut h = TreeHasher::new();
                for chunk in bytes.chunks(piece.min(bytes.len().max(1))) {
                    h.update(chunk);
                }
                h.update(&[]);
                assert_eq!(h.bytes_hashed(), size as u64);
                assert_eq!(h.finish().root.0, want, "size {size}, pieces of {piece}");
            }
        }
    }

    #[test]
    fn dcpp_block_size_rule() {
        let table = [
            (0, 65_536),
            (1, 65_536),
            (32 << 20, 65_536),
            ((32 << 20) + 1, 131_072),
            (64 << 20, 131_072),
            ((64 << 20) + 1, 262_144),
            (1 << 40, 1 << 31),
            (u64::MAX, 1 << 55),
        ];
        for (size, block) in table {
            assert_eq!(dcpp_block_size(size), block, "size {size}");
        }
        assert_eq!(leaf_count(0, 65_536), 1);
        assert_eq!(leaf_count(65_537, 65_536), 2);
    }

    #[test]
    fn kept_level_is_the_dcpp_level_of_the_naive_tree() {
        let sizes = [
            1_000_000,
            (32 << 20) - 1,
            32 << 20,
            (32 << 20) + 1,
            (32 << 20) + 65_536 * 3 + 5,
            (64 << 20) + 1,
        ];
        let big = data((64 << 20) + 1, 99);
        for size in sizes {
            let bytes = &big[..size];
            let levels = naive_levels(bytes);
            let block = dcpp_block_size(size as u64);
            let level = (block / 1024).trailing_zeros() as usize;
            let mut h = TreeHasher::new();
            for chunk in bytes.chunks(1 << 20) {
                h.update(chunk);
            }
            let tree = h.finish();
            assert_eq!(tree.block_size, block, "size {size}");
            assert_eq!(tree.leaves.len(), levels[level].len(), "size {size}");
            assert!(tree.leaves == levels[level], "size {size}: leaves differ");
            assert_eq!(tree.leaves.len() as u64, leaf_count(size as u64, block));
            assert!(tree.leaves.len() <= 512);
            assert_eq!(tree.root.0, levels.last().unwrap()[0]);
        }
    }

    #[test]
    fn fixed_block_size_keeps_that_level() {
        let bytes = data(70_000, 5);
        let levels = naive_levels(&bytes);
        for (level, want) in levels.iter().enumerate() {
            let mut h = TreeHasher::with_block_size(1024 << level).unwrap();
            h.update(&bytes);
            let tree = h.finish();
            assert_eq!(&tree.leaves, want, "level {level}");
            assert_eq!(verify_tthl(&tree.to_tthl(), 70_000, &tree.root), Ok(1024 << level));
        }
        assert!(TreeHasher::with_block_size(0).is_none());
        assert!(TreeHasher::with_block_size(512).is_none());
        assert!(TreeHasher::with_block_size(3072).is_none());
    }

    #[test]
    fn tthl_round_trip_and_block_checks() {
        let size = (32 << 20) + 100_000;
        let bytes = data(size, 7);
        let mut h = TreeHasher::new();
        h.update(&bytes);
        let tree = h.finish();
        assert_eq!(tree.block_size, 131_072);
        let tthl = tree.to_tthl();
        assert_eq!(tthl.len(), 24 * 257);
        assert_eq!(verify_tthl(&tthl, size as u64, &tree.root), Ok(131_072));
        let back = TigerTree::from_tthl(size as u64, tree.root, &tthl).unwrap();
        assert_eq!(back, tree);

        let last = tree.leaves.len() - 1;
        for i in [0, 1, 100, last] {
            let range = tree.block_range(i).unwrap();
            let block = &bytes[range.start as usize..range.end as usize];
            assert!(tree.verify_block(i, block), "block {i}");
            let mut bad = block.to_vec();
            bad[block.len() / 2] ^= 1;
            assert!(!tree.verify_block(i, &bad), "corrupt block {i}");
            assert!(!tree.verify_block(i, &block[1..]), "short block {i}");
        }
        assert_eq!(tree.block_range(last).unwrap().end, size as u64);
        assert!(tree.block_range(last + 1).is_none());
        assert!(!tree.verify_block(last + 1, &[]));
    }

    #[test]
    fn bad_tthl_is_rejected() {
        let bytes = data(300_000, 3);
        let mut h = TreeHasher::new();
        h.update(&bytes);
        let tree = h.finish();
        let tthl = tree.to_tthl();
        assert_eq!(tthl.len(), 5 * 24);
        let size = bytes.len() as u64;

        assert_eq!(verify_tthl(&[], size, &tree.root), Err(TthlError::BadLength { len: 0 }));
        assert_eq!(
            verify_tthl(&tthl[1..], size, &tree.root),
            Err(TthlError::BadLength { len: 119 })
        );
        let mut flipped = tthl.clone();
        flipped[30] ^= 0x80;
        assert!(matches!(
            verify_tthl(&flipped, size, &tree.root),
            Err(TthlError::RootMismatch { .. })
        ));
        // Right leaves, wrong root.
        assert!(matches!(
            verify_tthl(&tthl, size, &Tth([1; 24])),
            Err(TthlError::RootMismatch { .. })
        ));
        // 6 leaves for 300,000 bytes: 65,536-byte blocks need 5.
        let mut extra = tthl.clone();
        extra.extend_from_slice(&[0; 24]);
        assert_eq!(
            verify_tthl(&extra, size, &tree.root),
            Err(TthlError::LeafCount { leaves: 6, size })
        );
        // An empty file has exactly one leaf.
        assert!(verify_tthl(&[0; 48], 0, &tree.root).is_err());
        let empty = tree_root(b"");
        assert_eq!(verify_tthl(&empty.0, 0, &empty), Ok(1024));
    }

    #[test]
    fn one_leaf_tthl_of_a_small_file() {
        let bytes = data(3000, 11);
        let root = tree_root(&bytes);
        // A single leaf covers the whole file: the smallest block that does.
        assert_eq!(verify_tthl(&root.0, 3000, &root), Ok(4096));
        assert!(block_matches(&bytes, &root.0));
    }
}
