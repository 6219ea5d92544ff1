//! One entity's outcomes in canonical order, with the running sums the history features are
//! differences of.
//!
//! The features must not depend on the order outcomes arrive in, and must stay bit for bit what
//! the earlier code gave on sorted input. Both come from one rule: outcomes are kept in
//! *canonical order* (delivery time, then lateness, then transit time) and the sums are added
//! one outcome at a time in that order, exactly as a running sum over a sorted list is. Two
//! outcomes equal in all three keys are interchangeable (the features read nothing else), so
//! the canonical order is a function of the set of outcomes, whatever order it was built in.
//!
//! A tree of partial sums (Fenwick, segment) would make an insert O(log n), but it adds floats
//! in another association, and a mean lateness would then differ from the sequential sum in
//! its last bits. So the sums are sequential, stored every [`STRIDE`] outcomes (a prefix is the
//! mark below it plus at most `STRIDE - 1` additions, in the same order: the same bits), bulk
//! loads sort once and merge, and an outcome that arrives out of order costs the outcomes
//! delivered after it (moved, and their marks re-added): O(1) for the usual late-by-days
//! arrival, and never the O(n) per insert that a load in file order used to cost.

use std::cmp::Ordering;

use crate::data::table::{Timestamp, SECONDS_PER_DAY};

/// Outcomes between two stored sums. Sixteen keeps a prefix within one or two cache lines of
/// values while cutting the sums' memory sixteen-fold (a 10M-row history: 1.2 GB less).
pub(super) const STRIDE: usize = 16;

/// One delivered shipment as a series keeps it. Spans are whole seconds, saturated to 68
/// years (`i32`), which no delivery takes; days are computed from them exactly as from the
/// timestamps themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Outcome {
    /// Delivery time: the series' order, and the cut every query makes.
    pub at: Timestamp,
    /// Delivered minus promised, seconds (positive: late).
    pub lateness_s: i32,
    /// Delivered minus decided, seconds.
    pub transit_s: i32,
}

fn saturate(v: i64) -> i32 {
    v.clamp(i32::MIN as i64, i32::MAX as i64) as i32
}

impl Outcome {
    pub fn new(decided: Timestamp, deadline: Timestamp, delivered: Timestamp) -> Self {
        Outcome {
            at: delivered,
            lateness_s: saturate(delivered.saturating_sub(deadline)),
            transit_s: saturate(delivered.saturating_sub(decided)),
        }
    }
}

/// Sums over a run of outcomes.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct Sums {
    pub late: u32,
    /// Lateness in days.
    pub lateness: f64,
    /// Transit in days.
    pub transit: f64,
}

impl Sums {
    #[inline]
    fn add(self, lateness_s: i32, transit_s: i32) -> Sums {
        Sums {
            late: self.late + (lateness_s > 0) as u32,
            lateness: self.lateness + lateness_s as f64 / SECONDS_PER_DAY,
            transit: self.transit + transit_s as f64 / SECONDS_PER_DAY,
        }
    }
}

/// Sums over the outcomes `lo..hi` of a series.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Window {
    pub n: u32,
    pub late: u32,
    pub lateness: f64,
    pub transit: f64,
}

impl Window {
    pub fn mean(&self, sum: f64) -> f64 {
        if self.n > 0 {
            sum / self.n as f64
        } else {
            f64::NAN
        }
    }
}

/// Outcomes in canonical order (struct of arrays: queries binary-search `times` alone).
#[derive(Debug, Clone)]
pub(super) struct Series {
    times: Vec<Timestamp>,
    lateness_s: Vec<i32>,
    transit_s: Vec<i32>,
    /// `marks[k]`: the sums over the first `k * STRIDE` outcomes, added in order.
    marks: Vec<Sums>,
}

impl Default for Series {
    fn default() -> Self {
        Series {
            times: Vec::new(),
            lateness_s: Vec::new(),
            transit_s: Vec::new(),
            marks: vec![Sums::default()],
        }
    }
}

impl Series {
    pub fn len(&self) -> usize {
        self.times.len()
    }

    fn get(&self, i: usize) -> Outcome {
        Outcome {
            at: self.times[i],
            lateness_s: self.lateness_s[i],
            transit_s: self.transit_s[i],
        }
    }

    /// The sums over the first `i` outcomes.
    #[inline]
    pub fn prefix(&self, i: usize) -> Sums {
        let k = i / STRIDE;
        let mut s = self.marks[k];
        for j in k * STRIDE..i {
            s = s.add(self.lateness_s[j], self.transit_s[j]);
        }
        s
    }

    /// How many outcomes were delivered strictly before `to`: the cut every query starts from.
    #[inline]
    pub fn upto(&self, to: Timestamp) -> usize {
        self.times.partition_point(|&t| t < to)
    }

    /// How many of the first `hi` outcomes were delivered strictly before `from`.
    #[inline]
    pub fn upto_within(&self, from: Timestamp, hi: usize) -> usize {
        self.times[..hi].partition_point(|&t| t < from)
    }

    /// The window `lo..hi` given the sums up to `hi`.
    #[inline]
    pub fn window(&self, lo: usize, hi: usize, upto_hi: Sums) -> Window {
        let below = self.prefix(lo);
        Window {
            n: (hi - lo) as u32,
            late: upto_hi.late - below.late,
            lateness: upto_hi.lateness - below.lateness,
            transit: upto_hi.transit - below.transit,
        }
    }

    fn push_unmarked(&mut self, o: Outcome) {
        self.times.push(o.at);
        self.lateness_s.push(o.lateness_s);
        self.transit_s.push(o.transit_s);
    }

    /// Adds the marks from `marks.len()` on, each from the one before.
    fn extend_marks(&mut self) {
        let want = self.times.len() / STRIDE + 1;
        self.marks.reserve(want.saturating_sub(self.marks.len()));
        while self.marks.len() < want {
            let k = self.marks.len() - 1;
            let mut s = self.marks[k];
            for j in k * STRIDE..(k + 1) * STRIDE {
                s = s.add(self.lateness_s[j], self.transit_s[j]);
            }
            self.marks.push(s);
        }
    }

    /// Drops the marks that cover position `pos` or later, so [`Series::extend_marks`] adds
    /// them again from the outcomes now there.
    fn invalidate_from(&mut self, pos: usize) {
        self.marks.truncate(pos / STRIDE + 1);
    }

    /// Where `o` goes: after every outcome not greater than it.
    fn position(&self, o: &Outcome) -> usize {
        let lo = self.times.partition_point(|&t| t < o.at);
        let hi = lo + self.times[lo..].partition_point(|&t| t <= o.at);
        lo + (lo..hi).map(|i| self.get(i)).take_while(|e| e <= o).count()
    }

    /// Adds one outcome at its canonical place.
    pub fn insert(&mut self, o: Outcome) {
        let pos = match self.times.last() {
            None => 0,
            Some(_) if self.get(self.len() - 1) <= o => self.len(),
            Some(_) => self.position(&o),
        };
        if pos == self.len() {
            self.push_unmarked(o);
        } else {
            self.times.insert(pos, o.at);
            self.lateness_s.insert(pos, o.lateness_s);
            self.transit_s.insert(pos, o.transit_s);
            self.invalidate_from(pos);
        }
        self.extend_marks();
    }

    /// Adds outcomes already in canonical order: appended when they all come after the series'
    /// last, merged otherwise (the outcomes after the first insertion point move once).
    pub fn merge_sorted(&mut self, new: &[Outcome]) {
        debug_assert!(new.windows(2).all(|w| w[0] <= w[1]));
        let Some(first) = new.first() else { return };
        let pos = match self.times.last() {
            None => 0,
            Some(_) if self.get(self.len() - 1) <= *first => self.len(),
            Some(_) => self.position(first),
        };
        let tail: Vec<Outcome> = (pos..self.len()).map(|i| self.get(i)).collect();
        self.times.truncate(pos);
        self.lateness_s.truncate(pos);
        self.transit_s.truncate(pos);
        let extra = tail.len() + new.len();
        self.times.reserve_exact(extra);
        self.lateness_s.reserve_exact(extra);
        self.transit_s.reserve_exact(extra);
        let (mut a, mut b) = (tail.iter().peekable(), new.iter().peekable());
        loop {
            // Equal outcomes are interchangeable; the series' own go first.
            let next = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) => match x.cmp(y) {
                    Ordering::Greater => b.next(),
                    _ => a.next(),
                },
                (Some(_), None) => a.next(),
                (None, Some(_)) => b.next(),
                (None, None) => break,
            };
            if let Some(o) = next {
                self.push_unmarked(*o);
            }
        }
        self.invalidate_from(pos);
        self.extend_marks();
    }
}

/// Decision times, sorted: the workload known at any moment, outcomes or not.
#[derive(Debug, Clone, Default)]
pub(super) struct Decisions(Vec<Timestamp>);

impl Decisions {
    pub fn insert(&mut self, at: Timestamp) {
        let pos = self.0.partition_point(|&t| t <= at);
        self.0.insert(pos, at);
    }

    /// Adds sorted decision times.
    pub fn merge_sorted(&mut self, new: &[Timestamp]) {
        let Some(&first) = new.first() else { return };
        if self.0.last().is_none_or(|&last| last <= first) {
            self.0.extend_from_slice(new);
            return;
        }
        let pos = self.0.partition_point(|&t| t <= first);
        let tail = self.0.split_off(pos);
        self.0.reserve_exact(tail.len() + new.len());
        let (mut a, mut b) = (tail.iter().peekable(), new.iter().peekable());
        while let Some(&t) = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) if y < x => b.next(),
            (Some(_), _) => a.next(),
            (None, _) => b.next(),
        } {
            self.0.push(t);
        }
    }

    /// Decisions strictly before `at`, and of those, how many within the week before it.
    #[inline]
    pub fn before_and_last_week(&self, at: Timestamp) -> (usize, usize) {
        let before = self.0.partition_point(|&t| t < at);
        let week_ago = at - 7 * SECONDS_PER_DAY as i64;
        (
            before,
            before - self.0[..before].partition_point(|&t| t < week_ago),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(at: i64, lateness_s: i32, transit_s: i32) -> Outcome {
        Outcome {
            at,
            lateness_s,
            transit_s,
        }
    }

    /// The sums as the earlier code kept them: one running value per outcome, in order.
    fn running(outcomes: &[Outcome]) -> Vec<Sums> {
        let mut out = vec![Sums::default()];
        for x in outcomes {
            let s = out.last().copied().unwrap_or_default();
            out.push(s.add(x.lateness_s, x.transit_s));
        }
        out
    }

    fn sample(n: usize, seed: u64) -> Vec<Outcome> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                // A small LCG: ties in time are frequent (40 distinct times).
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                o(
                    (x >> 40) as i64 % 40 * 3600,
                    ((x >> 20) % 200_000) as i32 - 100_000,
                    ((x >> 8) % 400_000) as i32,
                )
            })
            .collect()
    }

    #[test]
    fn every_prefix_is_the_running_sum_bit_for_bit_whatever_the_insertion_order() {
        let outcomes = sample(500, 3);
        let mut sorted = outcomes.clone();
        sorted.sort();
        let expected = running(&sorted);

        let mut one_by_one = Series::default();
        for x in &outcomes {
            one_by_one.insert(*x);
        }
        let mut merged = Series::default();
        for chunk in outcomes.chunks(37) {
            let mut c = chunk.to_vec();
            c.sort();
            merged.merge_sorted(&c);
        }
        for s in [&one_by_one, &merged] {
            assert_eq!(s.len(), sorted.len());
            for (i, e) in expected.iter().enumerate() {
                let p = s.prefix(i);
                assert_eq!(p.late, e.late, "prefix {i}");
                assert_eq!(p.lateness.to_bits(), e.lateness.to_bits(), "prefix {i}");
                assert_eq!(p.transit.to_bits(), e.transit.to_bits(), "prefix {i}");
            }
        }
    }

    #[test]
    fn cuts_are_strictly_before_the_time_asked() {
        let mut s = Series::default();
        s.merge_sorted(&[o(10, 1, 1), o(20, -1, 1), o(20, 5, 1), o(30, 1, 1)]);
        assert_eq!(s.upto(20), 1);
        assert_eq!(s.upto(21), 3);
        assert_eq!(s.upto_within(15, 3), 1);
        let w = s.window(1, 3, s.prefix(3));
        assert_eq!((w.n, w.late), (2, 1));
    }

    #[test]
    fn decisions_merge_and_count_the_last_week() {
        let day = 86_400;
        let mut d = Decisions::default();
        d.merge_sorted(&[day, 5 * day, 9 * day]);
        d.merge_sorted(&[2 * day, 10 * day]);
        d.insert(3 * day);
        assert_eq!(d.0, vec![day, 2 * day, 3 * day, 5 * day, 9 * day, 10 * day]);
        assert_eq!(d.before_and_last_week(9 * day), (4, 3));
    }

    #[test]
    fn spans_beyond_sixty_eight_years_saturate_and_keep_their_sign() {
        let o = Outcome::new(0, i64::MIN / 2, i64::MAX / 2);
        assert_eq!((o.lateness_s, o.transit_s), (i32::MAX, i32::MAX));
        assert!(Outcome::new(0, 10, 5).lateness_s < 0);
    }
}
