//! Sorted timestamps at 4 bytes each: seconds after the list's first, for the lists whose span
//! fits 136 years (every real one); a list that does not fit keeps 8-byte timestamps. Half the
//! memory of the history's times (~440 MB at ten million shipments) and half the bytes each
//! binary search touches.

use crate::data::table::Timestamp;

#[derive(Debug, Clone)]
pub(super) enum Times {
    Narrow { base: Timestamp, offsets: Vec<u32> },
    Wide(Vec<Timestamp>),
}

impl Default for Times {
    fn default() -> Self {
        Times::Narrow {
            base: 0,
            offsets: Vec::new(),
        }
    }
}

impl Times {
    pub fn len(&self) -> usize {
        match self {
            Times::Narrow { offsets, .. } => offsets.len(),
            Times::Wide(v) => v.len(),
        }
    }

    #[inline]
    pub fn get(&self, i: usize) -> Timestamp {
        match self {
            Times::Narrow { base, offsets } => base + offsets[i] as i64,
            Times::Wide(v) => v[i],
        }
    }

    pub fn last(&self) -> Option<Timestamp> {
        self.len().checked_sub(1).map(|i| self.get(i))
    }

    /// How many of the entries at positions `range` are below `x` (`strict`) or not above it:
    /// a binary search in the entries' own width.
    #[inline]
    fn count_in(&self, range: std::ops::Range<usize>, x: Timestamp, strict: bool) -> usize {
        match self {
            Times::Narrow { base, offsets } => {
                let v = &offsets[range];
                // An offset o is below x exactly when o < x - base, which may lie outside u32.
                let d = x.saturating_sub(*base);
                let bound = if strict { d } else { d.saturating_add(1) };
                if bound <= 0 {
                    0
                } else if bound > u32::MAX as i64 {
                    v.len()
                } else {
                    let b = bound as u32;
                    v.partition_point(|&o| o < b)
                }
            }
            Times::Wide(t) => {
                let v = &t[range];
                if strict {
                    v.partition_point(|&t| t < x)
                } else {
                    v.partition_point(|&t| t <= x)
                }
            }
        }
    }

    /// Entries before `x`.
    #[inline]
    pub fn below(&self, x: Timestamp) -> usize {
        self.count_in(0..self.len(), x, true)
    }

    /// Entries at positions `range` before `x`.
    #[inline]
    pub fn below_in(&self, range: std::ops::Range<usize>, x: Timestamp) -> usize {
        self.count_in(range, x, true)
    }

    /// Entries at positions `range` not after `x`.
    #[inline]
    pub fn not_after_in(&self, range: std::ops::Range<usize>, x: Timestamp) -> usize {
        self.count_in(range, x, false)
    }

    /// [`Times::below`], knowing the answer is at least `from`: galloping from `from`, so a
    /// cut that moved a few entries costs a few comparisons.
    #[inline]
    pub fn advance(&self, from: usize, x: Timestamp) -> usize {
        let n = self.len();
        let (mut lo, mut hi, mut step) = (from, from, 1);
        while hi < n && self.get(hi) < x {
            lo = hi + 1;
            hi = from + step;
            step *= 2;
        }
        lo + self.below_in(lo..hi.min(n), x)
    }

    /// Whether `t` can be stored without widening.
    fn fits(&self, t: Timestamp) -> bool {
        match self {
            Times::Narrow { base, offsets } => {
                let base = if offsets.is_empty() { t } else { *base };
                (0..=u32::MAX as i64).contains(&t.saturating_sub(base))
            }
            Times::Wide(_) => true,
        }
    }

    fn widen(&mut self) {
        if let Times::Narrow { base, offsets } = self {
            let wide = offsets.iter().map(|&o| *base + o as i64).collect();
            *self = Times::Wide(wide);
        }
    }

    pub fn insert(&mut self, pos: usize, t: Timestamp) {
        if !self.fits(t) {
            self.widen();
        }
        match self {
            Times::Narrow { base, offsets } => {
                if offsets.is_empty() {
                    *base = t;
                }
                offsets.insert(pos, (t - *base) as u32);
            }
            Times::Wide(v) => v.insert(pos, t),
        }
    }

    pub fn push(&mut self, t: Timestamp) {
        let n = self.len();
        self.insert(n, t);
    }

    pub fn truncate(&mut self, n: usize) {
        match self {
            Times::Narrow { offsets, .. } => offsets.truncate(n),
            Times::Wide(v) => v.truncate(n),
        }
    }

    pub fn reserve_exact(&mut self, n: usize) {
        match self {
            Times::Narrow { offsets, .. } => offsets.reserve_exact(n),
            Times::Wide(v) => v.reserve_exact(n),
        }
    }

    #[cfg(test)]
    pub fn iter(&self) -> impl Iterator<Item = Timestamp> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn searches_agree_with_plain_timestamps_narrow_or_wide() {
        let plain: Vec<i64> = vec![-5, -5, 0, 3, 3, 3, 10, 5_000_000_000, 5_000_000_000];
        let mut narrow = Times::default();
        for &t in &plain[..7] {
            narrow.push(t);
        }
        assert!(matches!(narrow, Times::Narrow { .. }));
        let mut wide = narrow.clone();
        wide.push(plain[7]);
        wide.push(plain[8]);
        assert!(matches!(wide, Times::Wide(_)), "a 158-year span widens");
        for (t, v) in [(&narrow, &plain[..7]), (&wide, &plain[..])] {
            assert_eq!(t.iter().collect::<Vec<_>>(), v);
            for x in -10..20 {
                assert_eq!(t.below(x), v.partition_point(|&y| y < x), "{x}");
                assert_eq!(
                    t.not_after_in(1..v.len(), x),
                    v[1..].partition_point(|&y| y <= x)
                );
                for from in 0..=t.below(x) {
                    assert_eq!(t.advance(from, x), t.below(x));
                }
            }
            assert_eq!(t.below(i64::MAX), v.len());
            assert_eq!(t.below(i64::MIN / 2), 0);
        }
        let mut early = Times::default();
        early.push(100);
        early.insert(0, 50);
        assert!(
            matches!(early, Times::Wide(_)),
            "an entry before the base widens"
        );
        assert_eq!(early.iter().collect::<Vec<_>>(), vec![50, 100]);
    }
}
