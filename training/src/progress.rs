//! Progress of long stages, reported to whoever displays it: the CLI draws bars with rows per
//! second and time left; tests and the service pass `()`. Work split across threads reports
//! from each of them, hence `&self` and `Sync`.

use std::time::Duration;

/// What a stage counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Rows,
    Bytes,
    /// Boosting iterations; early stopping usually ends before the total.
    Trees,
}

pub trait Progress: Sync {
    /// A stage begins with `total` units to do (0 when unknown).
    fn start(&self, _stage: &str, _total: u64, _unit: Unit) {}
    /// `n` more units are done.
    fn advance(&self, _n: u64) {}
    /// What the stage is doing now, where the units alone do not say (rows read so far while
    /// a file's bytes are counted).
    fn message(&self, _text: &str) {}
    fn finish(&self, _stage: &str, _elapsed: Duration) {}
}

impl Progress for () {}

/// Reports `advance` to a [`Progress`] in steps, so per-row work does not pay for a call (and
/// its atomic update) on every row.
pub struct Ticker<'a> {
    progress: &'a dyn Progress,
    pending: u64,
    every: u64,
}

impl<'a> Ticker<'a> {
    pub fn new(progress: &'a dyn Progress, every: u64) -> Self {
        Ticker {
            progress,
            pending: 0,
            every: every.max(1),
        }
    }

    #[inline]
    pub fn tick(&mut self, n: u64) {
        self.pending += n;
        if self.pending >= self.every {
            self.progress.advance(std::mem::take(&mut self.pending));
        }
    }
}

impl Drop for Ticker<'_> {
    fn drop(&mut self) {
        if self.pending > 0 {
            self.progress.advance(self.pending);
        }
    }
}
