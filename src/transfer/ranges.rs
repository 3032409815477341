//! A set of byte ranges: what of a file is done (verified), what is being
//! fetched, what is left.
//!
//! Invariant: the ranges are half-open `[start, end)`, non-empty, sorted,
//! and neither overlap nor touch (touching ranges are merged), so that the
//! set of any given bytes has exactly one representation and the stored
//! form (see [`super::queue`]) stays small however the segments arrived.

/// Sorted, disjoint, non-touching half-open byte ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeSet {
    ranges: Vec<(u64, u64)>,
}

impl RangeSet {
    /// The empty set.
    pub fn new() -> RangeSet {
        RangeSet::default()
    }

    /// Builds a set from ranges in any order, overlapping or not; empty and
    /// inverted ranges are ignored.
    pub fn from_ranges(ranges: impl IntoIterator<Item = (u64, u64)>) -> RangeSet {
        let mut set = RangeSet::new();
        for (s, e) in ranges {
            set.insert(s, e);
        }
        set
    }

    /// The ranges, sorted.
    pub fn ranges(&self) -> &[(u64, u64)] {
        &self.ranges
    }

    /// Whether no byte is in the set.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// How many bytes are in the set.
    pub fn len(&self) -> u64 {
        self.ranges.iter().map(|(s, e)| e - s).sum()
    }

    /// Adds `[start, end)` (nothing when empty).
    pub fn insert(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        // The first range that ends at or after `start` (it may touch).
        let first = self.ranges.partition_point(|&(_, e)| e < start);
        // The ranges from `first` that start at or before `end` merge.
        let last = first + self.ranges[first..].partition_point(|&(s, _)| s <= end);
        if first == last {
            self.ranges.insert(first, (start, end));
            return;
        }
        let merged = (start.min(self.ranges[first].0), end.max(self.ranges[last - 1].1));
        self.ranges.splice(first..last, [merged]);
    }

    /// Removes `[start, end)` from the set.
    pub fn remove(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        let mut out = Vec::with_capacity(self.ranges.len() + 1);
        for &(s, e) in &self.ranges {
            if e <= start || s >= end {
                out.push((s, e));
                continue;
            }
            if s < start {
                out.push((s, start));
            }
            if e > end {
                out.push((end, e));
            }
        }
        self.ranges = out;
    }

    /// Whether every byte of `[start, end)` is in the set.
    pub fn contains(&self, start: u64, end: u64) -> bool {
        if start >= end {
            return true;
        }
        let i = self.ranges.partition_point(|&(_, e)| e <= start);
        self.ranges.get(i).is_some_and(|&(s, e)| s <= start && end <= e)
    }

    /// The first range of `[0, size)` not in the set that starts at or
    /// after `from`, cut to at most `max_len` bytes.
    pub fn first_gap(&self, from: u64, size: u64, max_len: u64) -> Option<(u64, u64)> {
        let mut at = from;
        for &(s, e) in &self.ranges {
            if e <= at {
                continue;
            }
            if s > at {
                break;
            }
            at = e;
        }
        if at >= size || max_len == 0 {
            return None;
        }
        let next = self.ranges.iter().map(|&(s, _)| s).find(|&s| s > at).unwrap_or(size).min(size);
        Some((at, next.min(at.saturating_add(max_len))))
    }

    /// Whether `[0, size)` is entirely in the set.
    pub fn covers(&self, size: u64) -> bool {
        size == 0 || self.ranges.first().is_some_and(|&(s, e)| s == 0 && e >= size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserts_merge_overlapping_and_touching_ranges() {
        type Case = (&'static [(u64, u64)], &'static [(u64, u64)]);
        let cases: &[Case] = &[
            (&[], &[]),
            (&[(5, 5), (7, 3)], &[]),
            (&[(0, 10)], &[(0, 10)]),
            (&[(0, 10), (10, 20)], &[(0, 20)]),
            (&[(10, 20), (0, 10)], &[(0, 20)]),
            (&[(0, 5), (10, 15), (20, 25)], &[(0, 5), (10, 15), (20, 25)]),
            (&[(0, 5), (10, 15), (20, 25), (3, 22)], &[(0, 25)]),
            (&[(10, 15), (0, 5), (5, 10)], &[(0, 15)]),
            (&[(10, 20), (12, 18)], &[(10, 20)]),
            (&[(10, 20), (0, 30)], &[(0, 30)]),
            (&[(0, 1), (2, 3), (4, 5), (1, 2)], &[(0, 3), (4, 5)]),
        ];
        for (input, want) in cases {
            let set = RangeSet::from_ranges(input.iter().copied());
            assert_eq!(set.ranges(), *want, "{input:?}");
        }
    }

    #[test]
    fn removal_contains_gaps_and_coverage() {
        let mut set = RangeSet::from_ranges([(0, 100)]);
        set.remove(10, 20);
        set.remove(90, 200);
        assert_eq!(set.ranges(), &[(0, 10), (20, 90)]);
        assert_eq!(set.len(), 80);
        assert!(set.contains(0, 10) && set.contains(25, 30) && !set.contains(5, 25));
        assert!(set.contains(7, 7));
        assert_eq!(set.first_gap(0, 100, 1000), Some((10, 20)));
        assert_eq!(set.first_gap(0, 100, 4), Some((10, 14)));
        assert_eq!(set.first_gap(15, 100, 1000), Some((15, 20)));
        assert_eq!(set.first_gap(20, 100, 1000), Some((90, 100)));
        assert_eq!(set.first_gap(0, 95, 1000), Some((10, 20)));
        assert_eq!(set.first_gap(100, 100, 1000), None);
        assert!(!set.covers(100));
        set.insert(10, 20);
        set.insert(90, 100);
        assert!(set.covers(100) && set.covers(0) && !set.covers(101));
        assert_eq!(set.first_gap(0, 100, 10), None);
        assert_eq!(RangeSet::new().first_gap(0, 0, 10), None);
    }
}
