//! Splitting one download among its sources: which bytes each source
//! fetches next, segments that grow with a source's speed and shrink when a
//! faster source takes over the tail of a slow one.
//!
//! Rules (the downloader job follows them; this module only decides):
//! - A segment is a block-aligned byte range `[start, end)` of the file,
//!   held by one source. Its length is about [`SEGMENT_SECONDS`] of that
//!   source's measured speed, between [`MIN_SEGMENT`] and [`MAX_SEGMENT`]
//!   (rounded up to whole blocks): a fast source gets long segments (few
//!   requests), a slow or new one short segments (little to take back).
//! - Free bytes are those neither verified nor claimed. A running segment
//!   claims from the start of the block it is in to its end; bytes before
//!   that were either verified or reported bad.
//! - When nothing is free (the end of a download), a source asking for work
//!   takes the back half of the segment that would take longest to finish,
//!   if it would fetch that half sooner than the holder would (a source of
//!   unknown speed is assumed as fast as the holder). The holder's segment
//!   shrinks: [`Segments::end_of`] tells its downloader where to stop.
//! - A bad block ends its source's segment (the downloader drops that
//!   source for this file); the block is free again for another source.
//! - Bytes handed to the helper threads for hashing are *pending* until
//!   their block is verified or fails: not free, not verified. A segment
//!   claims from the block its source has handed over up to; what came
//!   before is pending or verified. When a source's segment ends with bytes
//!   of an incomplete block pending, the downloader [`abandons`] them once
//!   its helpers are done with them, and they are free again.
//!
//! Invariants: claimed ranges never overlap each other or a verified range;
//! pending ranges never overlap a verified one; every range is block-aligned
//! except at the file's end. Pure: no I/O, no clock (speeds are given by the
//! caller).
//!
//! [`abandons`]: Segments::abandon

use std::ops::Range;

use super::ranges::RangeSet;

/// A segment holds about this many seconds of its source's speed.
pub const SEGMENT_SECONDS: u64 = 20;

/// The shortest segment handed out by default (before rounding to blocks).
pub const MIN_SEGMENT: u64 = 1 << 20;

/// The longest segment handed out.
pub const MAX_SEGMENT: u64 = 256 << 20;

/// The downloader's key for one of a file's sources.
pub type SourceId = u32;

#[derive(Debug, Clone)]
struct Running {
    source: SourceId,
    /// The next byte expected from the source.
    pos: u64,
    end: u64,
    /// Bytes per second; 0 while unknown.
    speed: u64,
}

/// The segments of one download; see the module documentation.
#[derive(Debug, Clone)]
pub struct Segments {
    size: u64,
    block: u64,
    /// The shortest segment handed out (the `segment_size` setting).
    min: u64,
    verified: RangeSet,
    /// Handed over for hashing, not yet verified or failed.
    pending: RangeSet,
    running: Vec<Running>,
}

impl Segments {
    /// The segments of a file of `size` bytes checked in blocks of
    /// `block_size` bytes, of which `verified` are already done.
    pub fn new(size: u64, block_size: u64, verified: RangeSet) -> Segments {
        Segments {
            size,
            block: block_size.max(1),
            min: MIN_SEGMENT,
            verified,
            pending: RangeSet::new(),
            running: Vec::new(),
        }
    }

    /// The same with another shortest segment (at most [`MAX_SEGMENT`]).
    pub fn with_min_segment(mut self, min: u64) -> Segments {
        self.min = min.clamp(1, MAX_SEGMENT);
        self
    }

    /// The bytes verified so far.
    pub fn verified(&self) -> &RangeSet {
        &self.verified
    }

    /// Whether every byte is verified.
    pub fn is_complete(&self) -> bool {
        self.verified.covers(self.size)
    }

    /// Whether a source could still fetch something (now, or by taking
    /// over part of a running segment): some bytes are neither verified nor
    /// pending. A download whose last bytes are all being hashed needs no
    /// new connection.
    pub fn wants_sources(&self) -> bool {
        let mut done = self.verified.clone();
        for &(start, end) in self.pending.ranges() {
            done.insert(start, end);
        }
        !done.covers(self.size)
    }

    /// How many sources hold a segment.
    pub fn running(&self) -> usize {
        self.running.len()
    }

    fn floor(&self, at: u64) -> u64 {
        at - at % self.block
    }

    fn ceil(&self, at: u64) -> u64 {
        at.div_ceil(self.block).saturating_mul(self.block).min(self.size)
    }

    fn occupied(&self) -> RangeSet {
        let mut set = self.verified.clone();
        // A pending partial block (its source stopped in it) keeps its whole
        // block until it is abandoned: segments start on blocks.
        for &(start, end) in self.pending.ranges() {
            set.insert(self.floor(start), self.ceil(end));
        }
        for r in &self.running {
            set.insert(self.floor(r.pos), r.end);
        }
        set
    }

    /// The next segment for `source` (whose speed is `speed` bytes per
    /// second, 0 when not known yet), or `None` when there is nothing it
    /// should fetch. A source that already holds a segment keeps it.
    pub fn assign(&mut self, source: SourceId, speed: u64) -> Option<Range<u64>> {
        if let Some(r) = self.running.iter().find(|r| r.source == source) {
            return Some(r.pos..r.end);
        }
        let want = speed.saturating_mul(SEGMENT_SECONDS).clamp(self.min, MAX_SEGMENT);
        let want = want.div_ceil(self.block).saturating_mul(self.block);
        if let Some((start, end)) = self.occupied().first_gap(0, self.size, want) {
            self.running.push(Running { source, pos: start, end, speed });
            return Some(start..end);
        }
        self.steal(source, speed)
    }

    /// The end game: take the back half of the slowest running segment.
    fn steal(&mut self, source: SourceId, speed: u64) -> Option<Range<u64>> {
        let block = self.block;
        let mut best: Option<(usize, f64)> = None;
        for (i, r) in self.running.iter().enumerate() {
            let from = self.ceil(r.pos);
            if r.end.saturating_sub(from) < 2 * block {
                continue;
            }
            let left = (r.end - from) as f64;
            let holder = if r.speed > 0 { r.speed as f64 } else { 1.0 };
            let time = left / holder;
            if best.is_none_or(|(_, t)| time > t) {
                best = Some((i, time));
            }
        }
        let (i, holder_time) = best?;
        let r = &self.running[i];
        let from = self.ceil(r.pos);
        let mid = self.ceil(from + (r.end - from) / 2);
        let half = (r.end - mid) as f64;
        let ours = if speed > 0 {
            half / speed as f64
        } else if r.speed > 0 {
            half / r.speed as f64
        } else {
            0.0
        };
        if mid >= r.end || ours >= holder_time {
            return None;
        }
        let end = r.end;
        self.running[i].end = mid;
        self.running.push(Running { source, pos: mid, end, speed });
        Some(mid..end)
    }

    /// Where `source` must stop (its segment may have shrunk), or `None`
    /// when it holds no segment.
    pub fn end_of(&self, source: SourceId) -> Option<u64> {
        self.running.iter().find(|r| r.source == source).map(|r| r.end)
    }

    /// `source` has handed over the bytes up to `pos` (they are pending, see
    /// [`Segments::received`]) and is moving `speed` bytes per second.
    pub fn progress(&mut self, source: SourceId, pos: u64, speed: u64) {
        if let Some(r) = self.running.iter_mut().find(|r| r.source == source) {
            r.pos = pos.clamp(r.pos, r.end);
            r.speed = speed;
        }
    }

    /// Bytes were handed over for hashing: pending until their block is
    /// verified, fails, or is abandoned.
    pub fn received(&mut self, range: Range<u64>) {
        self.pending.insert(range.start, range.end.min(self.size));
    }

    /// Pending bytes that will never be verified (their block did not
    /// complete): free again.
    pub fn abandon(&mut self, range: Range<u64>) {
        self.pending.remove(range.start, range.end);
    }

    /// The bytes pending.
    pub fn pending(&self) -> u64 {
        self.pending.len()
    }

    /// A block was verified (and its bytes are written).
    pub fn block_verified(&mut self, range: Range<u64>) {
        self.pending.remove(range.start, range.end);
        self.verified.insert(range.start, range.end);
    }

    /// A block from `source` failed its check: the source's segment ends and
    /// the block is free for another source.
    pub fn block_failed(&mut self, source: SourceId, range: Range<u64>) {
        self.pending.remove(range.start, range.end);
        self.verified.remove(range.start, range.end);
        self.finish(source);
    }

    /// `source` is done with its segment (completed, failed, disconnected):
    /// what it did not verify is free again.
    pub fn finish(&mut self, source: SourceId) {
        self.running.retain(|r| r.source != source);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BLOCK: u64 = 64 * 1024;

    /// Runs a simulated download: each source moves `speed` bytes per
    /// simulated 100 ms, verifying blocks as they complete. Returns the
    /// bytes each source moved and the number of steps.
    fn simulate(
        size: u64,
        speeds: &[u64],
        mut segs: Segments,
        bad: Option<(SourceId, u64)>,
    ) -> (Vec<u64>, u32) {
        let mut moved = vec![0u64; speeds.len()];
        let mut dropped = vec![false; speeds.len()];
        let mut steps = 0;
        let mut seen = RangeSet::new();
        while !segs.is_complete() {
            steps += 1;
            assert!(steps < 1_000_000, "the download never completes");
            for (s, &speed) in speeds.iter().enumerate() {
                let id = s as SourceId;
                if dropped[s] {
                    continue;
                }
                let Some(range) = segs.assign(id, speed) else { continue };
                let end = segs.end_of(id).unwrap();
                let pos = range.start;
                let next = (pos + speed / 10).min(end);
                // Blocks completed by this step.
                let mut b = pos - pos % BLOCK;
                while b < next {
                    let block_end = (b + BLOCK).min(size);
                    if block_end <= next && block_end > pos {
                        if bad == Some((id, b)) {
                            moved[s] += block_end - pos;
                            segs.block_failed(id, b..block_end);
                            dropped[s] = true;
                            break;
                        }
                        assert!(!seen.contains(b, block_end), "block {b} fetched twice");
                        seen.insert(b, block_end);
                        segs.block_verified(b..block_end);
                    }
                    b += BLOCK;
                }
                if dropped[s] {
                    continue;
                }
                moved[s] += next - pos;
                segs.progress(id, next, speed);
                if next >= end {
                    segs.finish(id);
                }
            }
        }
        (moved, steps)
    }

    #[test]
    fn the_shortest_segment_is_a_setting() {
        let mut segs = Segments::new(64 << 20, BLOCK, RangeSet::new()).with_min_segment(4 << 20);
        assert_eq!(segs.assign(0, 0), Some(0..4 << 20));
        // A fast source still gets more.
        assert_eq!(segs.assign(1, 1 << 20), Some(4 << 20..24 << 20));
    }

    #[test]
    fn fast_sources_fetch_most_and_the_tail_is_shared() {
        let size = 300 << 20;
        let speeds = [20 << 20, 2 << 20, 200 << 10];
        let segs = Segments::new(size, BLOCK, RangeSet::new());
        let (moved, steps) = simulate(size, &speeds, segs, None);
        assert_eq!(moved.iter().sum::<u64>(), size, "every byte exactly once: {moved:?}");
        assert!(moved[0] > size * 8 / 10, "{moved:?}");
        // Alone, the fastest source needs 150 steps; the others must not make
        // the end wait on them.
        assert!(steps <= 160, "{steps} steps, {moved:?}");
    }

    #[test]
    fn a_resumed_download_fetches_only_what_is_missing() {
        let size = 10 << 20;
        let done = RangeSet::from_ranges([(0, 4 << 20), (6 << 20, 8 << 20)]);
        let segs = Segments::new(size, BLOCK, done);
        let (moved, _) = simulate(size, &[1 << 20], segs, None);
        assert_eq!(moved, [4 << 20]);
    }

    #[test]
    fn a_bad_block_is_fetched_again_from_another_source() {
        let size = 4 << 20;
        let segs = Segments::new(size, BLOCK, RangeSet::new());
        let (moved, _) = simulate(size, &[10 << 20, 1 << 20], segs, Some((0, 2 * BLOCK)));
        assert_eq!(moved[0], 3 * BLOCK, "source 0 stopped at its bad block");
        assert_eq!(moved[1], size - 2 * BLOCK, "source 1 fetched the rest and the bad block");
    }

    #[test]
    fn segments_follow_speed_and_stay_aligned() {
        let size = 1 << 30;
        let mut segs = Segments::new(size, BLOCK, RangeSet::new());
        assert_eq!(segs.assign(0, 0), Some(0..MIN_SEGMENT));
        assert_eq!(segs.assign(0, 0), Some(0..MIN_SEGMENT), "a holder keeps its segment");
        let r = segs.assign(1, 5 << 20).unwrap();
        assert_eq!(r, MIN_SEGMENT..MIN_SEGMENT + 100 * (1 << 20));
        let r = segs.assign(2, 1 << 40).unwrap();
        assert_eq!(r.end - r.start, MAX_SEGMENT);
        let small = Segments::new(100_000, BLOCK, RangeSet::new()).assign(0, 0);
        assert_eq!(small, Some(0..100_000));
    }

    #[test]
    fn a_slow_source_is_not_given_a_fast_ones_tail() {
        let mut segs = Segments::new(8 << 20, BLOCK, RangeSet::new());
        assert_eq!(segs.assign(0, 10 << 20), Some(0..8 << 20));
        assert_eq!(segs.assign(1, 1 << 10), None);
        // One of unknown speed takes half, as if it were as fast.
        assert_eq!(segs.assign(2, 0), Some(4 << 20..8 << 20));
        assert_eq!(segs.end_of(0), Some(4 << 20));
    }

    #[test]
    fn pending_bytes_are_neither_free_nor_verified() {
        let size = 4 * BLOCK;
        let mut segs = Segments::new(size, BLOCK, RangeSet::new()).with_min_segment(size);
        assert_eq!(segs.assign(0, 0), Some(0..size));
        // Source 0 handed over three blocks and a half, then its connection
        // ended: nothing of that is free while the helpers hash it.
        segs.received(0..3 * BLOCK + BLOCK / 2);
        segs.progress(0, 3 * BLOCK + BLOCK / 2, 0);
        segs.finish(0);
        assert_eq!(segs.assign(1, 0), None, "the half block counts as its whole block");
        segs.block_verified(0..BLOCK);
        segs.block_verified(BLOCK..2 * BLOCK);
        segs.block_failed(0, 2 * BLOCK..3 * BLOCK);
        assert_eq!(segs.pending(), BLOCK / 2);
        assert_eq!(segs.assign(1, 0), Some(2 * BLOCK..3 * BLOCK));
        // The half block's bytes will never complete it: abandoned, free.
        segs.abandon(3 * BLOCK..3 * BLOCK + BLOCK / 2);
        assert_eq!(segs.assign(2, 0), Some(3 * BLOCK..size));
        assert_eq!(segs.verified().len(), 2 * BLOCK);
        assert!(!segs.is_complete());
        assert!(segs.wants_sources());
        segs.received(2 * BLOCK..size);
        assert!(!segs.wants_sources(), "everything left is being hashed");
        assert!(!segs.is_complete());
    }
}
