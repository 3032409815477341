//! Checking a download block by block against the Tiger tree leaves fetched
//! first (`tthl`), with the hashing done on helper threads.
//!
//! A block is `1024 · 2^k` bytes (the leaves say which `k`): 64 KiB for a
//! small file, 4 MiB for a 2 GiB file, more for bigger ones. The downloader
//! cuts what arrives into *pieces* of [`piece_size`] bytes (the block, at most
//! [`MAX_PIECE`]), aligned on piece boundaries, and hands batches of whole
//! pieces to the helper threads, which compute each piece's root
//! ([`piece_roots`]). Batches come back in any order and from any thread; a
//! [`BlockAssembler`] gathers the roots of each block's pieces and, when a
//! block has all of them, folds them into the block's root
//! (`proto::tth::fold_level`: the roots of aligned
//! pieces are the tree's nodes at the pieces' level) and compares it with
//! its leaf. So two helpers can hash two halves of one block at once, and
//! nothing holds a whole block in memory.
//!
//! The last block of a file may be short, and its last piece too; the tree's
//! rule for it (the root of the bytes that remain, the odd node promoted) is
//! what the fold computes, so it is checked like any other.
//!
//! Pure: no I/O, no threads (the caller decides where `piece_roots` runs).

use std::collections::HashMap;
use std::ops::Range;

use crate::proto::tth::{fold_level, tree_root, NodeHash, TigerTree};

/// The largest piece hashed apart.
pub const MAX_PIECE: u64 = 1 << 20;

/// The piece size for a tree: its block size, at most [`MAX_PIECE`]. Both
/// are powers of two, so a piece never straddles a block.
pub fn piece_size(tree: &TigerTree) -> u64 {
    tree.block_size.clamp(1, MAX_PIECE)
}

/// The roots of the consecutive pieces of `data` (which starts a piece; the
/// last piece may be short). The CPU-heavy part: run it on a helper thread.
pub fn piece_roots(piece: u64, data: &[u8]) -> Vec<NodeHash> {
    let piece = usize::try_from(piece).unwrap_or(usize::MAX).max(1);
    data.chunks(piece).map(|c| tree_root(c).0).collect()
}

/// What one finished block turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockCheck {
    /// The block's index among the tree's leaves.
    pub index: usize,
    /// Its bytes in the file.
    pub range: Range<u64>,
    /// Whether its hash equals the leaf.
    pub ok: bool,
}

/// The pieces of one block seen so far.
#[derive(Debug)]
struct Partial {
    roots: Vec<Option<NodeHash>>,
    missing: usize,
}

/// Gathers piece roots, in any order, into block checks; see the module
/// documentation.
#[derive(Debug)]
pub struct BlockAssembler {
    piece: u64,
    /// Blocks of several pieces with some of them seen.
    partial: HashMap<usize, Partial>,
}

impl BlockAssembler {
    /// An assembler for the blocks of `tree`.
    pub fn new(tree: &TigerTree) -> BlockAssembler {
        BlockAssembler { piece: piece_size(tree), partial: HashMap::new() }
    }

    /// The piece size batches must be cut in.
    pub fn piece(&self) -> u64 {
        self.piece
    }

    /// The roots of consecutive pieces from byte `start` (a piece boundary):
    /// the blocks they complete, in file order. Roots past the end of the
    /// file, or from a misaligned start, are ignored.
    pub fn add(&mut self, tree: &TigerTree, start: u64, roots: &[NodeHash]) -> Vec<BlockCheck> {
        let mut done = Vec::new();
        if start % self.piece != 0 || tree.block_size == 0 {
            return done;
        }
        for (i, root) in roots.iter().enumerate() {
            let at = start + i as u64 * self.piece;
            if at >= tree.size {
                break;
            }
            let Ok(block) = usize::try_from(at / tree.block_size) else { break };
            let Some(range) = tree.block_range(block) else { break };
            let pieces = usize::try_from((range.end - range.start).div_ceil(self.piece))
                .unwrap_or(usize::MAX);
            let root = if pieces <= 1 {
                Some(*root)
            } else {
                let k = usize::try_from((at - range.start) / self.piece).unwrap_or(usize::MAX);
                let p = self
                    .partial
                    .entry(block)
                    .or_insert_with(|| Partial { roots: vec![None; pieces], missing: pieces });
                if let Some(slot) = p.roots.get_mut(k) {
                    if slot.is_none() {
                        p.missing -= 1;
                    }
                    *slot = Some(*root);
                }
                if p.missing == 0 {
                    let p = self.partial.remove(&block).map(|p| p.roots).unwrap_or_default();
                    let nodes: Vec<NodeHash> = p.into_iter().flatten().collect();
                    fold_level(&nodes)
                } else {
                    None
                }
            };
            if let Some(root) = root {
                let ok = tree.leaves.get(block) == Some(&root);
                done.push(BlockCheck { index: block, range, ok });
            }
        }
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::tth::TreeHasher;

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    fn tree_of(bytes: &[u8], block: u64) -> TigerTree {
        let mut h = TreeHasher::with_block_size(block).unwrap();
        h.update(bytes);
        h.finish()
    }

    /// Feeds `bytes[from..]` in batches of `batch` bytes, handed back in file
    /// order or reversed; returns every check, by block.
    fn run(
        tree: &TigerTree,
        bytes: &[u8],
        from: usize,
        batch: usize,
        reverse: bool,
    ) -> Vec<BlockCheck> {
        let mut a = BlockAssembler::new(tree);
        let piece = a.piece();
        let mut batches: Vec<(u64, Vec<NodeHash>)> = bytes[from..]
            .chunks(batch)
            .enumerate()
            .map(|(i, c)| ((from + i * batch) as u64, piece_roots(piece, c)))
            .collect();
        if reverse {
            batches.reverse();
        }
        let mut checks: Vec<BlockCheck> =
            batches.iter().flat_map(|(start, roots)| a.add(tree, *start, roots)).collect();
        checks.sort_by_key(|c| c.index);
        checks
    }

    #[test]
    fn small_blocks_are_single_pieces() {
        let bytes = data(64 * 1024 * 5 + 1234);
        let tree = tree_of(&bytes, 64 * 1024);
        assert_eq!(piece_size(&tree), 64 * 1024);
        for batch in [64 * 1024, 256 * 1024, 1 << 20] {
            let checks = run(&tree, &bytes, 0, batch, true);
            assert_eq!(checks.len(), 6, "batch {batch}");
            assert!(checks.iter().all(|c| c.ok), "batch {batch}: {checks:?}");
            assert_eq!(checks[5].range, 5 * 65_536..bytes.len() as u64);
        }
    }

    #[test]
    fn large_blocks_fold_their_pieces_in_any_order() {
        // 4 MiB blocks (a 2 GiB file's), the last one short and ending in a
        // short piece; batches of one piece and of several, in both orders.
        let bytes = data((4 << 20) * 2 + (1 << 20) * 2 + 5000);
        let tree = tree_of(&bytes, 4 << 20);
        assert_eq!(piece_size(&tree), MAX_PIECE);
        for (batch, reverse) in [(1 << 20, false), (1 << 20, true), (2 << 20, true)] {
            let checks = run(&tree, &bytes, 0, batch, reverse);
            let got: Vec<(usize, bool)> = checks.iter().map(|c| (c.index, c.ok)).collect();
            assert_eq!(got, [(0, true), (1, true), (2, true)], "batch {batch}");
            assert_eq!(checks[2].range, (8 << 20)..bytes.len() as u64);
        }
    }

    #[test]
    fn a_corrupt_byte_fails_only_its_block() {
        for block in [64 * 1024, 4 << 20] {
            let mut bytes = data(block as usize * 4);
            let tree = tree_of(&bytes, block);
            bytes[2 * block as usize + 17] ^= 0xff;
            let checks = run(&tree, &bytes, block as usize, 1 << 20, true);
            let oks: Vec<(usize, bool)> = checks.iter().map(|c| (c.index, c.ok)).collect();
            assert_eq!(oks, [(1, true), (2, false), (3, true)], "block {block}");
        }
    }

    #[test]
    fn misaligned_or_past_the_end_roots_are_ignored() {
        let bytes = data(200_000);
        let tree = tree_of(&bytes, 64 * 1024);
        let mut a = BlockAssembler::new(&tree);
        assert!(a.add(&tree, 1000, &[[0; 24]]).is_empty());
        assert!(a.add(&tree, 4 * 65_536, &[[0; 24]]).is_empty());
    }

    #[test]
    fn a_tree_from_a_received_tthl_checks_the_same() {
        let bytes = data(3 << 20);
        let ours = tree_of(&bytes, 2 << 20);
        let theirs = TigerTree::from_tthl(ours.size, ours.root, &ours.to_tthl()).unwrap();
        assert!(run(&theirs, &bytes, 0, 1 << 20, true).iter().all(|c| c.ok));
    }
}
