//! Checking a download block by block as it streams in, against the Tiger
//! tree leaves fetched first (`tthl`).
//!
//! A [`SegmentVerifier`] follows one segment of a download: it starts on a
//! block boundary, is fed the bytes in order as they arrive (whatever the
//! read sizes), hashes each block incrementally (nothing is buffered), and
//! reports each block the moment its last byte arrives: verified, or bad.
//! The downloader writes bytes to the temporary file as they come and
//! records a block as verified only after the verifier said so (and the
//! bytes are synced); a bad block marks the source bad and only that block
//! is fetched again.
//!
//! The last block of a file may be short; the tree's rule for it (the root
//! of the bytes that remain) is what [`TreeHasher::root_only`] computes, so
//! it is checked like any other.
//!
//! Pure: no I/O.

use std::ops::Range;

use crate::proto::tth::{TigerTree, TreeHasher};

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

/// A segment that does not start on a block boundary, or lies past the end.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a segment at byte {start} does not start a block of {block_size} bytes in a file of {size} bytes")]
pub struct Misaligned {
    /// The segment's start.
    pub start: u64,
    /// The tree's block size.
    pub block_size: u64,
    /// The file's size.
    pub size: u64,
}

/// Verifies one segment's bytes as they arrive; see the module
/// documentation.
#[derive(Debug)]
pub struct SegmentVerifier {
    block: usize,
    block_end: u64,
    /// The next byte of the file expected.
    pos: u64,
    hasher: TreeHasher,
}

impl SegmentVerifier {
    /// A verifier for bytes from `start`, which must begin a block.
    pub fn new(tree: &TigerTree, start: u64) -> Result<SegmentVerifier, Misaligned> {
        let bad = || Misaligned { start, block_size: tree.block_size, size: tree.size };
        if tree.block_size == 0
            || start % tree.block_size != 0
            || (start >= tree.size && tree.size > 0)
        {
            return Err(bad());
        }
        let block = usize::try_from(start / tree.block_size).map_err(|_| bad())?;
        let range = tree.block_range(block).ok_or_else(bad)?;
        Ok(SegmentVerifier {
            block,
            block_end: range.end,
            pos: start,
            hasher: TreeHasher::root_only(),
        })
    }

    /// The next byte of the file this verifier expects.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Feeds the next bytes; returns the blocks they completed, in order.
    /// Bytes past the end of the file are ignored (the caller has already
    /// refused a peer that sends them).
    pub fn feed(&mut self, tree: &TigerTree, mut data: &[u8]) -> Vec<BlockCheck> {
        let mut done = Vec::new();
        while !data.is_empty() && self.pos < tree.size {
            let room = usize::try_from(self.block_end - self.pos).unwrap_or(usize::MAX);
            let take = room.min(data.len());
            self.hasher.update(&data[..take]);
            self.pos += take as u64;
            data = &data[take..];
            if self.pos == self.block_end {
                let hasher = std::mem::replace(&mut self.hasher, TreeHasher::root_only());
                let root = hasher.finish().root;
                let start = self.block as u64 * tree.block_size;
                done.push(BlockCheck {
                    index: self.block,
                    range: start..self.block_end,
                    ok: tree.leaves.get(self.block) == Some(&root.0),
                });
                self.block += 1;
                if let Some(next) = tree.block_range(self.block) {
                    self.block_end = next.end;
                }
            }
        }
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    fn tree_of(bytes: &[u8], block: u64) -> TigerTree {
        let mut h = TreeHasher::with_block_size(block).unwrap();
        h.update(bytes);
        h.finish()
    }

    #[test]
    fn every_block_verifies_whatever_the_read_sizes() {
        let bytes = data(64 * 1024 * 5 + 1234);
        let tree = tree_of(&bytes, 64 * 1024);
        assert_eq!(tree.leaves.len(), 6);
        for chunk in [1, 1000, 4096, 65_536, 100_000, bytes.len()] {
            let mut v = SegmentVerifier::new(&tree, 0).unwrap();
            let mut checks = Vec::new();
            for piece in bytes.chunks(chunk) {
                checks.extend(v.feed(&tree, piece));
            }
            assert_eq!(checks.len(), 6, "chunk {chunk}");
            assert!(checks.iter().all(|c| c.ok), "chunk {chunk}: {checks:?}");
            assert_eq!(checks[5].range, 5 * 65_536..bytes.len() as u64);
            assert_eq!(v.position(), bytes.len() as u64);
        }
    }

    #[test]
    fn a_corrupt_byte_fails_only_its_block() {
        let mut bytes = data(64 * 1024 * 4);
        let tree = tree_of(&bytes, 64 * 1024);
        bytes[2 * 65_536 + 17] ^= 0xff;
        let mut v = SegmentVerifier::new(&tree, 65_536).unwrap();
        let checks = v.feed(&tree, &bytes[65_536..]);
        let oks: Vec<(usize, bool)> = checks.iter().map(|c| (c.index, c.ok)).collect();
        assert_eq!(oks, [(1, true), (2, false), (3, true)]);
        // Extra bytes past the end are ignored.
        assert!(v.feed(&tree, b"more").is_empty());
    }

    #[test]
    fn segments_must_start_on_a_block() {
        let bytes = data(200_000);
        let tree = tree_of(&bytes, 64 * 1024);
        assert!(SegmentVerifier::new(&tree, 65_536).is_ok());
        let e = SegmentVerifier::new(&tree, 1000).unwrap_err();
        assert!(e.to_string().contains("does not start a block"), "{e}");
        assert!(SegmentVerifier::new(&tree, 4 * 65_536).is_err());
    }

    #[test]
    fn a_tree_from_a_received_tthl_checks_the_same() {
        let bytes = data(300_000);
        let ours = tree_of(&bytes, 64 * 1024);
        let theirs = TigerTree::from_tthl(ours.size, ours.root, &ours.to_tthl()).unwrap();
        let mut v = SegmentVerifier::new(&theirs, 0).unwrap();
        assert!(v.feed(&theirs, &bytes).iter().all(|c| c.ok));
    }
}
