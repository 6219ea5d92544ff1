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

use super::times::Times;
use crate::data::table::{Timestamp, SECONDS_PER_DAY};

/// Outcomes between two stored sums. Sixteen keeps a prefix within one or two cache lines of
/// values while cutting the sums' memory sixteen-fold (a 10M-row history: 1.2 GB less).
pub(super) const STRIDE: usize = 16;

/// One delivered shipment as a series keeps it; days are computed from the spans exactly as
/// from the timestamps themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Outcome {
    /// Delivery time: the series' order, and the cut every query makes.
    pub at: Timestamp,
    /// Delivered minus promised, seconds (positive: late).
    pub lateness_s: i64,
    /// Delivered minus decided, seconds.
    pub transit_s: i64,
}

impl Outcome {
    pub fn new(decided: Timestamp, deadline: Timestamp, delivered: Timestamp) -> Self {
        Outcome {
            at: delivered,
            lateness_s: delivered.saturating_sub(deadline),
            transit_s: delivered.saturating_sub(decided),
        }
    }
}

/// Spans are stored in 32 bits (±67 years in seconds); the lowest 2^24 codes instead name an
/// entry of a series' list of wide spans, so a real export's typos (Excel's 1899-12-30 zero
/// date in a 2019 trip: 119 years) keep their exact value at 4 bytes for everyone else.
const WIDE_CODES: i64 = 1 << 24;
const DIRECT_MIN: i64 = i32::MIN as i64 + WIDE_CODES;

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
    fn add(self, lateness_s: i64, transit_s: i64) -> Sums {
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
    times: Times,
    /// Span codes (see [`WIDE_CODES`]).
    lateness_s: Vec<i32>,
    transit_s: Vec<i32>,
    /// The spans too wide for a code, by code.
    wide: Vec<i64>,
    /// `marks[k]`: the sums over the first `k * STRIDE` outcomes, added in order.
    marks: Vec<Sums>,
}

impl Default for Series {
    fn default() -> Self {
        Series {
            times: Times::default(),
            lateness_s: Vec::new(),
            transit_s: Vec::new(),
            wide: Vec::new(),
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
            at: self.times.get(i),
            lateness_s: self.decode(self.lateness_s[i]),
            transit_s: self.decode(self.transit_s[i]),
        }
    }

    #[inline]
    fn decode(&self, code: i32) -> i64 {
        let c = code as i64;
        if c < DIRECT_MIN {
            self.wide[(c - i32::MIN as i64) as usize]
        } else {
            c
        }
    }

    fn encode(&mut self, span: i64) -> i32 {
        if (DIRECT_MIN..=i32::MAX as i64).contains(&span) {
            return span as i32;
        }
        if self.wide.len() as i64 >= WIDE_CODES {
            // Sixteen million absurd spans in one series: keep the nearest representable.
            return span.clamp(DIRECT_MIN, i32::MAX as i64) as i32;
        }
        self.wide.push(span);
        (i32::MIN as i64 + self.wide.len() as i64 - 1) as i32
    }

    /// The sums over the first `i` outcomes.
    #[inline]
    pub fn prefix(&self, i: usize) -> Sums {
        let k = i / STRIDE;
        let mut s = self.marks[k];
        for j in k * STRIDE..i {
            s = s.add(
                self.decode(self.lateness_s[j]),
                self.decode(self.transit_s[j]),
            );
        }
        s
    }

    /// The late count among the last `k` outcomes before position `hi` (a time cut), and how
    /// many there are. Outcomes delivered at the same moment have no order among themselves,
    /// so where such a group straddles the `k`-th from the end, each of them counts for its
    /// share: the count every order of the group gives, on average. Without such a group this
    /// is the plain count.
    pub fn recent_late(&self, hi: usize, k: usize, upto_hi: Sums) -> (f64, usize) {
        let lo = hi.saturating_sub(k);
        if lo == 0 || self.times.get(lo - 1) != self.times.get(lo) {
            return ((upto_hi.late - self.prefix(lo).late) as f64, hi - lo);
        }
        let t = self.times.get(lo);
        let group_lo = self.times.below_in(0..lo, t);
        let group_hi = lo + self.times.not_after_in(lo..hi, t);
        let at_hi = self.prefix(group_hi).late;
        let group_late = at_hi - self.prefix(group_lo).late;
        let inside = (group_hi - lo) as f64 / (group_hi - group_lo) as f64;
        (
            (upto_hi.late - at_hi) as f64 + group_late as f64 * inside,
            hi - lo,
        )
    }

    /// Delivery times, in order.
    pub(super) fn times(&self) -> &Times {
        &self.times
    }

    /// How many outcomes were delivered strictly before `to`: the cut every query starts from.
    #[inline]
    pub fn upto(&self, to: Timestamp) -> usize {
        self.times.below(to)
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
        let (l, t) = (self.encode(o.lateness_s), self.encode(o.transit_s));
        self.push_coded(o.at, l, t);
    }

    fn push_coded(&mut self, at: Timestamp, lateness: i32, transit: i32) {
        self.times.push(at);
        self.lateness_s.push(lateness);
        self.transit_s.push(transit);
    }

    /// Adds the marks from `marks.len()` on, each from the one before.
    fn extend_marks(&mut self) {
        let want = self.times.len() / STRIDE + 1;
        self.marks.reserve(want.saturating_sub(self.marks.len()));
        while self.marks.len() < want {
            let k = self.marks.len() - 1;
            let mut s = self.marks[k];
            for j in k * STRIDE..(k + 1) * STRIDE {
                s = s.add(
                    self.decode(self.lateness_s[j]),
                    self.decode(self.transit_s[j]),
                );
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
        let lo = self.times.below(o.at);
        let hi = lo + self.times.not_after_in(lo..self.len(), o.at);
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
            let (l, t) = (self.encode(o.lateness_s), self.encode(o.transit_s));
            self.times.insert(pos, o.at);
            self.lateness_s.insert(pos, l);
            self.transit_s.insert(pos, t);
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
        // The tail moves with its codes as they are (wide spans keep their entries).
        let tail: Vec<(Outcome, i32, i32)> = (pos..self.len())
            .map(|i| (self.get(i), self.lateness_s[i], self.transit_s[i]))
            .collect();
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
            match (a.peek(), b.peek()) {
                (Some(x), Some(y)) if x.0.cmp(*y) == Ordering::Greater => {
                    self.push_unmarked(**y);
                    b.next();
                }
                (Some(&&(o, l, t)), _) => {
                    self.push_coded(o.at, l, t);
                    a.next();
                }
                (None, Some(y)) => {
                    self.push_unmarked(**y);
                    b.next();
                }
                (None, None) => break,
            }
        }
        self.invalidate_from(pos);
        self.extend_marks();
    }
}

/// Decision times, sorted: the workload known at any moment, outcomes or not.
#[derive(Debug, Clone, Default)]
pub(super) struct Decisions(Times);

impl Decisions {
    pub fn insert(&mut self, at: Timestamp) {
        let pos = self.0.not_after_in(0..self.0.len(), at);
        self.0.insert(pos, at);
    }

    /// Adds sorted decision times.
    pub fn merge_sorted(&mut self, new: &[Timestamp]) {
        let Some(&first) = new.first() else { return };
        if self.0.last().is_none_or(|last| last <= first) {
            self.0.reserve_exact(new.len());
            for &t in new {
                self.0.push(t);
            }
            return;
        }
        let pos = self.0.not_after_in(0..self.0.len(), first);
        let tail: Vec<Timestamp> = (pos..self.0.len()).map(|i| self.0.get(i)).collect();
        self.0.truncate(pos);
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

    /// Decisions strictly before `at`.
    #[inline]
    pub fn before(&self, at: Timestamp) -> usize {
        self.0.below(at)
    }

    /// Decision times, in order.
    pub fn times(&self) -> &Times {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(at: i64, lateness_s: i64, transit_s: i64) -> Outcome {
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
                    ((x >> 20) % 200_000) as i64 - 100_000,
                    // Now and then a span no 32 bits hold.
                    if x.is_multiple_of(97) {
                        -3_800_000_000
                    } else {
                        ((x >> 8) % 400_000) as i64
                    },
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
        assert_eq!(s.upto(15), 1);
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
        assert_eq!(
            d.0.iter().collect::<Vec<_>>(),
            vec![day, 2 * day, 3 * day, 5 * day, 9 * day, 10 * day]
        );
        assert_eq!((d.before(9 * day), d.before(2 * day)), (4, 1));
    }

    #[test]
    fn spans_of_any_length_keep_their_value() {
        let mut s = Series::default();
        let spans = [-3_800_000_000i64, 5, 4_000_000_000, i32::MIN as i64, -7];
        for (k, &v) in spans.iter().enumerate() {
            s.insert(o(k as i64, v, -v));
        }
        s.merge_sorted(&[o(1, 1, 1)]);
        let got: Vec<(i64, i64)> = (0..s.len())
            .map(|i| (s.get(i).lateness_s, s.get(i).transit_s))
            .collect();
        let mut want: Vec<(i64, i64)> = spans.iter().map(|&v| (v, -v)).collect();
        want.insert(1, (1, 1));
        assert_eq!(got, want);
        assert_eq!(
            s.wide.len(),
            6,
            "merging moved the wide spans without copying them"
        );
    }

    #[test]
    fn the_last_k_count_outcomes_delivered_together_for_their_share() {
        let mut s = Series::default();
        // Times 1, 2, 2, 2, 3: the last two are the one at 3 and one of the three at 2, of
        // which two are late.
        s.merge_sorted(&[o(1, 5, 0), o(2, -1, 0), o(2, 5, 0), o(2, 6, 0), o(3, 5, 0)]);
        let (late, n) = s.recent_late(5, 2, s.prefix(5));
        assert_eq!(n, 2);
        assert!((late - (1.0 + 2.0 / 3.0)).abs() < 1e-12, "{late}");
        let (late, n) = s.recent_late(4, 3, s.prefix(4));
        assert_eq!((late, n), (2.0, 3), "the whole group: no share needed");
        assert_eq!(s.recent_late(5, 1, s.prefix(5)), (1.0, 1));
    }
}
