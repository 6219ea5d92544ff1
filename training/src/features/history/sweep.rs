//! Where a query cuts each series: by binary search ([`Search`]), or, for queries that move
//! forward in time as a bulk encode's do, by advancing each entity's cut from where its last
//! query left it ([`Sweep`]). Both give the same positions; a 10M-row encode spent 44% of its
//! time in binary searches, each a chain of ~23 dependent loads.

use rustc_hash::FxHashMap;

use super::series::{Decisions, Series};
use crate::data::table::{Timestamp, SECONDS_PER_DAY};

/// Most windows a history may have (the cut positions live on the stack).
pub const MAX_WINDOWS: usize = 8;

/// The positions a query at `at` cuts an entity's series at.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Cuts {
    /// Outcomes delivered before `at`.
    pub hi: usize,
    /// Per window, outcomes delivered before its start.
    pub lo: [usize; MAX_WINDOWS],
    /// Decisions before `at`, and before a week earlier.
    pub decided: usize,
    pub decided_week_ago: usize,
}

/// The times a query cuts at.
#[derive(Debug, Clone, Copy)]
pub(super) struct Times<'a> {
    pub at: Timestamp,
    pub window_days: &'a [u32],
}

impl Times<'_> {
    fn window_start(&self, w: usize) -> Timestamp {
        self.at - self.window_days[w] as i64 * SECONDS_PER_DAY as i64
    }

    fn week_ago(&self) -> Timestamp {
        self.at - 7 * SECONDS_PER_DAY as i64
    }
}

/// Finds cut positions.
pub(super) trait Cutter {
    fn overall(&mut self, series: &Series, at: Timestamp) -> usize;
    /// `entity` is `(kind, position in kind)`, for cutters that remember.
    fn cuts(
        &mut self,
        entity: (usize, u32),
        series: &Series,
        decisions: &Decisions,
        t: Times<'_>,
    ) -> Cuts;
}

/// Binary search every time: any order of queries.
pub(super) struct Search;

impl Cutter for Search {
    fn overall(&mut self, series: &Series, at: Timestamp) -> usize {
        series.upto(at)
    }

    fn cuts(
        &mut self,
        _: (usize, u32),
        series: &Series,
        decisions: &Decisions,
        t: Times<'_>,
    ) -> Cuts {
        let mut c = Cuts {
            hi: series.upto(t.at),
            decided: decisions.before(t.at),
            decided_week_ago: decisions.before(t.week_ago()),
            ..Cuts::default()
        };
        for w in 0..t.window_days.len() {
            c.lo[w] = series.upto(t.window_start(w));
        }
        c
    }
}

/// An entity's cuts at its last query.
#[derive(Debug, Clone, Copy)]
struct Last {
    at: Timestamp,
    cuts: Cuts,
}

/// Advances cuts for queries in time order (any order stays correct: a query earlier than the
/// entity's last one searches afresh).
#[derive(Default)]
pub struct Sweep {
    overall: Option<(Timestamp, usize)>,
    entities: [FxHashMap<u32, Last>; 5],
}

impl Cutter for Sweep {
    fn overall(&mut self, series: &Series, at: Timestamp) -> usize {
        let hi = match self.overall {
            Some((last, hi)) if at >= last => series.times().advance(hi, at),
            _ => series.upto(at),
        };
        self.overall = Some((at, hi));
        hi
    }

    fn cuts(
        &mut self,
        (kind, e): (usize, u32),
        series: &Series,
        decisions: &Decisions,
        t: Times<'_>,
    ) -> Cuts {
        let cuts = match self.entities[kind].get(&e) {
            Some(last) if t.at >= last.at => {
                let (times, decided) = (series.times(), decisions.times());
                let p = &last.cuts;
                let mut c = Cuts {
                    hi: times.advance(p.hi, t.at),
                    decided: decided.advance(p.decided, t.at),
                    decided_week_ago: decided.advance(p.decided_week_ago, t.week_ago()),
                    ..Cuts::default()
                };
                for w in 0..t.window_days.len() {
                    c.lo[w] = times.advance(p.lo[w], t.window_start(w));
                }
                c
            }
            _ => Search.cuts((kind, e), series, decisions, t),
        };
        self.entities[kind].insert(e, Last { at: t.at, cuts });
        cuts
    }
}
