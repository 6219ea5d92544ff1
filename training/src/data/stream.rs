//! A file read a block at a time without ever being held whole: batch scoring's input, whose
//! memory must not grow with the file. Each block comes back validated, with the columns the
//! model reads (extras as the model's schema says, since no block sees a whole column), and
//! a row is rejected exactly as a whole-file load rejects it, duplicates included: the first
//! row read with an id keeps it, wherever in the file the repeat comes.
//! A second pass over the same rows reads them back from where the first kept them
//! ([`super::spill`]) rather than parsing the file again.

use std::path::{Path, PathBuf};

use rustc_hash::FxHashMap;

use super::chunks::FrameChunks;
pub use super::convert::ExtraKinds;
use super::convert::{ExtraColumn, Plan};
use super::load::{LoadReport, RejectedRow};
use super::profile::ImportProfile;
use super::table::{CategoricalColumn, NumericColumn, ShipmentKey, ShipmentTable};
use crate::error::{Error, Result};

/// Rejections kept for messages; the rest are counted.
const KEPT_REJECTIONS: usize = 1_000;

pub struct ShipmentStream {
    path: PathBuf,
    chunks: FrameChunks,
    profile: ImportProfile,
    outcomes_required: bool,
    kinds: ExtraKinds,
    plan: Option<Plan>,
    first_rows: FirstRows,
    /// Data rows read so far.
    rows: usize,
    report: LoadReport,
}

impl ShipmentStream {
    pub fn open(
        path: &Path,
        profile: &ImportProfile,
        outcomes_required: bool,
        kinds: ExtraKinds,
    ) -> Result<Self> {
        Self::with_block(path, profile, outcomes_required, kinds, None)
    }

    /// [`ShipmentStream::open`] with blocks of `block` CSV bytes or Parquet rows (`None`: the
    /// default), so tests can make a small file span several blocks.
    pub fn with_block(
        path: &Path,
        profile: &ImportProfile,
        outcomes_required: bool,
        kinds: ExtraKinds,
        block: Option<usize>,
    ) -> Result<Self> {
        let chunks = match block {
            Some(b) => FrameChunks::with_block(path, b)?,
            None => FrameChunks::open(path)?,
        };
        Ok(ShipmentStream {
            path: path.to_path_buf(),
            chunks,
            profile: profile.clone(),
            outcomes_required,
            kinds,
            plan: None,
            first_rows: FirstRows::default(),
            rows: 0,
            report: LoadReport::default(),
        })
    }

    /// Bytes (CSV) or rows (Parquet) read, and in the file.
    pub fn position(&self) -> (u64, u64) {
        self.chunks.position()
    }

    pub fn counts_bytes(&self) -> bool {
        self.chunks.counts_bytes()
    }

    /// What this pass read and rejected so far (the first 1,000 rejections, and their count).
    pub fn report(&self) -> &LoadReport {
        &self.report
    }

    /// The next block's valid rows; `None` at the end of the file.
    pub fn next_block(&mut self) -> Result<Option<ShipmentTable>> {
        let Some(df) = self.chunks.next_frame()? else {
            return Ok(None);
        };
        let plan = match &self.plan {
            Some(p) => p,
            None => self.plan.insert(Plan::new(
                &df,
                &self.profile,
                self.outcomes_required,
                Some(&self.kinds),
            )?),
        };
        let offset = self.rows;
        let mut out = plan.empty_table();
        let mut extras: Vec<ExtraColumn> = Vec::new();
        for (block, keys) in plan.convert_across_cores(&df, offset) {
            let n = block.table.len();
            let start = self.rows;
            let mut rejected = block.rejected;
            for (key, row) in keys {
                if let Some(first) = self.first_rows.first_or_insert(key, row) {
                    let i = row as usize - start;
                    if rejected[i].is_none() {
                        rejected[i] = Some(RejectedRow {
                            row: row as usize + 1,
                            column: "shipment_id".into(),
                            reason: format!("duplicate of row {}", first + 1),
                        });
                    }
                }
            }
            let keep: Vec<bool> = rejected.iter().map(Option::is_none).collect();
            for r in rejected.into_iter().flatten() {
                self.report.rejected_total += 1;
                if self.report.rejected.len() < KEPT_REJECTIONS {
                    self.report.rejected.push(r);
                }
            }
            let mut table = block.table;
            table.retain(&keep);
            out.append(&table);
            for (k, mut e) in block.extras.into_iter().enumerate() {
                e.retain(&keep);
                match extras.get_mut(k) {
                    Some(acc) => acc.append(e),
                    None => extras.push(e),
                }
            }
            self.rows += n;
        }
        for (e, column) in plan.extras.iter().zip(extras) {
            match column {
                ExtraColumn::Days(values) => out.numeric.push(NumericColumn {
                    name: e.column_name(),
                    values,
                }),
                ExtraColumn::Labels(values) => out.categorical.push(CategoricalColumn {
                    name: e.feature.clone(),
                    values,
                }),
                ExtraColumn::Skipped | ExtraColumn::Cells(_) => {}
            }
        }
        self.report.rows_read = self.rows;
        self.report.rows_accepted += out.len();
        self.report.open_shipments += out.delivered_at.iter().filter(|d| d.is_none()).count();
        Ok(Some(out))
    }

    /// Fails, as a whole-file load does, when the file had no rows or too many were rejected.
    pub fn check(&self, limit: super::BadRowLimit) -> Result<()> {
        let r = &self.report;
        if r.rows_read == 0 {
            return Err(Error::Input(format!(
                "{}: the file has no data rows",
                self.path.display()
            )));
        }
        super::load::check_rejections(&self.path, r, limit)?;
        if r.rows_accepted == 0 {
            return Err(Error::Input(format!(
                "{}: no valid rows",
                self.path.display()
            )));
        }
        Ok(())
    }
}

/// The first data row each id was read at: sorted keys with their rows, and the keys added
/// since the last merge. 20 bytes an id.
#[derive(Default)]
struct FirstRows {
    keys: Vec<ShipmentKey>,
    rows: Vec<u32>,
    recent: FxHashMap<ShipmentKey, u32>,
}

impl FirstRows {
    /// The row `key` was first read at, or `None` after noting `row` as its first.
    fn first_or_insert(&mut self, key: ShipmentKey, row: u32) -> Option<u32> {
        if let Some(&first) = self.recent.get(&key) {
            return Some(first);
        }
        if let Ok(i) = self.keys.binary_search(&key) {
            return Some(self.rows[i]);
        }
        self.recent.insert(key, row);
        if self.recent.len() > (self.keys.len() / 16).max(4096) {
            self.merge();
        }
        None
    }

    fn merge(&mut self) {
        let mut new: Vec<(ShipmentKey, u32)> = self.recent.drain().collect();
        new.sort_unstable();
        let (old_keys, old_rows) = (
            std::mem::take(&mut self.keys),
            std::mem::take(&mut self.rows),
        );
        self.keys.reserve_exact(old_keys.len() + new.len());
        self.rows.reserve_exact(old_keys.len() + new.len());
        let (mut a, mut b) = (0, 0);
        while a < old_keys.len() || b < new.len() {
            if b == new.len() || (a < old_keys.len() && old_keys[a] < new[b].0) {
                self.keys.push(old_keys[a]);
                self.rows.push(old_rows[a]);
                a += 1;
            } else {
                self.keys.push(new[b].0);
                self.rows.push(new[b].1);
                b += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_row_of_each_id_is_remembered_across_merges() {
        let mut f = FirstRows::default();
        for i in 0..20_000u32 {
            assert_eq!(
                f.first_or_insert(ShipmentKey::of(&format!("id{i}")), i),
                None
            );
        }
        assert!(!f.keys.is_empty(), "the recent ids were merged");
        assert_eq!(f.first_or_insert(ShipmentKey::of("id7"), 30_000), Some(7));
        assert_eq!(
            f.first_or_insert(ShipmentKey::of("id19999"), 30_001),
            Some(19_999)
        );
    }
}
