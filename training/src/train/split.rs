//! How a training run divides its rows in time: the delivered rows in decision order, the
//! training period before `valid_from` and the validation period after it, and within the
//! training period the fit rows and the held-out calibration slice (three contiguous blocks).
//!
//! Every set is a range or a few runs of positions in the decision-ordered list, so the feature
//! matrix is built once over that list and each set is a view of it.

use std::ops::Range;

use super::TrainConfig;
use crate::data::ShipmentTable;
use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub struct Split {
    /// Table rows with an outcome, in decision order (ties by source order): the feature
    /// matrix's rows.
    pub labelled: Vec<usize>,
    /// Positions `0..train` of `labelled` are the training period, the rest validation.
    pub train: usize,
    /// Runs of positions fitted on, and held out for early stopping and calibration.
    pub fit: Vec<Range<usize>>,
    pub calibration: Vec<Range<usize>>,
    /// Per table row, late or not (false for open shipments).
    pub late: Vec<bool>,
}

impl Split {
    pub fn new(table: &ShipmentTable, cfg: &TrainConfig) -> Result<Self> {
        let labelled: Vec<usize> = table
            .order_by_decision_time()
            .into_iter()
            .filter(|&i| table.delivered_at[i].is_some())
            .collect();
        // Decision order puts the whole training period first.
        let train = match cfg.valid_from {
            Some(v) => labelled.partition_point(|&i| table.scheduled_date[i] < v),
            None => labelled.len(),
        };
        let (fit, calibration) = calibration_runs(train, cfg.calibration_fraction);
        let split = Split {
            late: (0..table.len())
                .map(|i| table.is_late(i).unwrap_or(false))
                .collect(),
            labelled,
            train,
            fit,
            calibration,
        };
        split.check(cfg)?;
        Ok(split)
    }

    fn check(&self, cfg: &TrainConfig) -> Result<()> {
        check_rows("training", &self.rows_of(&self.fit), &self.late, 50)?;
        check_rows(
            "calibration (the latest part of the training period)",
            &self.rows_of(&self.calibration),
            &self.late,
            20,
        )?;
        if cfg.valid_from.is_some() && self.valid().is_empty() {
            return Err(Error::Input(
                "no delivered rows are decided on or after --valid-from: nothing to validate on"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Positions of the validation period.
    pub fn valid(&self) -> Range<usize> {
        self.train..self.labelled.len()
    }

    /// The table rows at the positions of `runs`, in order.
    pub fn rows_of(&self, runs: &[Range<usize>]) -> Vec<usize> {
        runs.iter()
            .flat_map(|r| self.labelled[r.clone()].iter().copied())
            .collect()
    }

    /// Table rows of the training period, in decision order.
    pub fn train_rows(&self) -> &[usize] {
        &self.labelled[..self.train]
    }

    /// Table rows of the validation period, in decision order.
    pub fn valid_rows(&self) -> &[usize] {
        &self.labelled[self.train..]
    }

    /// The labels at positions `range`, in order.
    pub fn labels_in(&self, range: Range<usize>) -> Vec<bool> {
        self.labelled[range].iter().map(|&i| self.late[i]).collect()
    }

    /// The labels at the positions of `runs`, in order.
    pub fn labels_of(&self, runs: &[Range<usize>]) -> Vec<bool> {
        runs.iter()
            .flat_map(|r| self.labelled[r.clone()].iter().map(|&i| self.late[i]))
            .collect()
    }

    pub fn fit_len(&self) -> usize {
        self.fit.iter().map(|r| r.len()).sum()
    }

    pub fn calibration_len(&self) -> usize {
        self.calibration.iter().map(|r| r.len()).sum()
    }
}

/// The fit and calibration runs of `n` training positions: the period is cut into
/// `3 * every` equal blocks and every `every`-th block is held out. Contiguous blocks rather
/// than single rows: shipments booked together are near-duplicates, and a neighbour in the fit
/// set would make the slice look easier than the future.
fn calibration_runs(n: usize, fraction: f64) -> (Vec<Range<usize>>, Vec<Range<usize>>) {
    let every = (1.0 / fraction).round().max(2.0) as usize;
    let blocks = every * 3;
    let (mut fit, mut calibration): (Vec<Range<usize>>, Vec<Range<usize>>) = (vec![], vec![]);
    for k in 0..n {
        let held_out = (k * blocks / n.max(1)) % every == every - 1;
        let runs = if held_out { &mut calibration } else { &mut fit };
        match runs.last_mut() {
            Some(r) if r.end == k => r.end = k + 1,
            _ => runs.push(k..k + 1),
        }
    }
    (fit, calibration)
}

fn check_rows(what: &str, rows: &[usize], labels: &[bool], min: usize) -> Result<()> {
    let late = rows.iter().filter(|&&r| labels[r]).count();
    if rows.len() < min {
        return Err(Error::Input(format!(
            "the {what} rows number {}, fewer than the {min} needed; supply more delivered history or move --valid-from later",
            rows.len()
        )));
    }
    if late == 0 || late == rows.len() {
        return Err(Error::Input(format!(
            "the {what} rows are all {}: a delay model needs both late and on-time deliveries",
            if late == 0 { "on time" } else { "late" }
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_held_out_blocks_the_last_among_them() {
        let (fit, cal) = calibration_runs(210, 0.15);
        // every = 7, 21 blocks of 10: blocks 6, 13 and 20 are held out.
        assert_eq!(cal, vec![60..70, 130..140, 200..210]);
        assert_eq!(fit, vec![0..60, 70..130, 140..200]);
        let (fit, cal) = calibration_runs(5, 0.5);
        assert_eq!(fit.iter().chain(&cal).map(|r| r.len()).sum::<usize>(), 5);
    }
}
