//! Loading many outcomes and decisions at once, a block at a time: each block's ids are
//! deduplicated and its names resolved to entity positions as it comes, so its text can be
//! dropped; at the end one sort puts everything in canonical order and each series merges its
//! share once. The cost is one sort whatever the order the rows came in, and the memory a
//! compact record per row (48 bytes per outcome) rather than the rows' text.

use super::series::Outcome;
use super::{Decided, Delivered, HistoryKey, HistoryState, Kind, Lane};
use crate::data::table::{ShipmentKey, Timestamp};

/// A load in progress; [`Load::finish`] merges it into the history.
pub struct Load<'h> {
    history: &'h mut HistoryState,
    outcomes: Vec<(Outcome, [u32; 5])>,
    decisions: Vec<(Timestamp, [u32; 5])>,
}

impl HistoryState {
    /// Starts a block-wise load (see [`Load`]).
    pub fn load(&mut self) -> Load<'_> {
        self.assert_open();
        Load {
            history: self,
            outcomes: Vec::new(),
            decisions: Vec::new(),
        }
    }
}

impl Load<'_> {
    /// Adds the outcomes `item(0..n)` gives (`None`: not delivered), skipping shipments
    /// already recorded (the first of repeats wins). Returns the items that were new.
    pub fn outcomes<'a>(
        &mut self,
        n: usize,
        item: impl Fn(usize) -> Option<Delivered<'a>> + Sync,
    ) -> Vec<u32> {
        let present: Vec<u32> = (0..n as u32)
            .filter(|&i| item(i as usize).is_some())
            .collect();
        let keys = keys_of(&present, |i| item(i).map(|d| d.shipment_id));
        let fresh = self.history.recorded.insert_all(&keys);
        drop(keys);
        let rows: Vec<u32> = present
            .into_iter()
            .zip(fresh)
            .filter_map(|(i, f)| f.then_some(i))
            .collect();
        let entities = resolve(&mut self.history.kinds, &rows, &|i| item(i).map(|d| d.lane));
        self.outcomes.reserve(rows.len());
        for (&i, e) in rows.iter().zip(entities) {
            if let Some(d) = item(i as usize) {
                let o = Outcome::new(d.decided, d.deadline, d.delivered_at);
                self.outcomes.push((o, e));
            }
        }
        rows
    }

    /// Adds the decisions `item(0..n)` gives, skipping shipments already recorded as decided.
    /// Returns how many were new.
    pub fn decisions<'a>(&mut self, n: usize, item: impl Fn(usize) -> Decided<'a> + Sync) -> usize {
        let all: Vec<u32> = (0..n as u32).collect();
        let keys = keys_of(&all, |i| Some(item(i).shipment_id));
        let fresh = self.history.decided.insert_all(&keys);
        drop(keys);
        let rows: Vec<u32> = all.into_iter().filter(|&i| fresh[i as usize]).collect();
        let entities = resolve(&mut self.history.kinds, &rows, &|i| Some(item(i).lane));
        self.decisions.reserve(rows.len());
        for (&i, e) in rows.iter().zip(entities) {
            self.decisions.push((item(i as usize).decided, e));
        }
        rows.len()
    }

    /// Adds every shipment of a table as decided, and every delivered one's outcome.
    pub fn table(&mut self, table: &crate::data::ShipmentTable) {
        self.decisions(table.len(), |i| Decided {
            shipment_id: &table.shipment_id[i],
            lane: table.lane(i),
            decided: table.scheduled_date[i],
        });
        self.outcomes(table.len(), |i| Delivered::of_row(table, i));
    }

    /// Sorts what was added and merges it into the series, one key kind per thread.
    pub fn finish(self) {
        let Load {
            history,
            mut outcomes,
            mut decisions,
        } = self;
        // Ties are outcomes equal in every field the series keep: their order cannot matter.
        outcomes.sort_unstable_by_key(|&(o, _)| o);
        decisions.sort_unstable_by_key(|&(t, _)| t);
        let sorted: Vec<Outcome> = outcomes.iter().map(|&(o, _)| o).collect();
        history.overall.merge_sorted(&sorted);
        drop(sorted);
        let (outcomes, decisions) = (&outcomes, &decisions);
        let jobs: Vec<(usize, &mut Kind)> = history.kinds.iter_mut().enumerate().collect();
        let parallel = outcomes.len() + decisions.len() > SMALL;
        let done = each(jobs, parallel, |(k, kind)| {
            let n = kind.entities.len();
            for (e, positions) in group_by_entity(n, outcomes.iter().map(|(_, e)| e[k])) {
                let series = &mut kind.entities[e].outcomes;
                series.merge_sorted(
                    &positions
                        .iter()
                        .map(|&p| outcomes[p as usize].0)
                        .collect::<Vec<_>>(),
                );
            }
            for (e, positions) in group_by_entity(n, decisions.iter().map(|(_, e)| e[k])) {
                let times: Vec<Timestamp> =
                    positions.iter().map(|&p| decisions[p as usize].0).collect();
                kind.entities[e].decisions.merge_sorted(&times);
            }
        });
        // A worker that panicked left its kind half-built: that is a bug, not a state to serve.
        assert!(
            done.iter().all(Option::is_some),
            "a history worker panicked"
        );
    }
}

/// Loads up to this many rows run on the caller's thread: starting a thread per key kind costs
/// more than their work (a reload replaying a few stored outcomes, one live outcome).
const SMALL: usize = 4096;

/// `f` on each job, on a thread each when `parallel`.
fn each<T: Send, U: Send>(
    jobs: Vec<T>,
    parallel: bool,
    f: impl Fn(T) -> U + Sync,
) -> Vec<Option<U>> {
    if parallel {
        crate::parallel::each(jobs, f)
    } else {
        jobs.into_iter().map(|j| Some(f(j))).collect()
    }
}

/// Each row's entity position in every key kind (created on first sight), one kind per
/// thread.
fn resolve<'a>(
    kinds: &mut [Kind; 5],
    rows: &[u32],
    lane_of: &(dyn Fn(usize) -> Option<Lane<'a>> + Sync),
) -> Vec<[u32; 5]> {
    let jobs: Vec<(HistoryKey, &mut Kind)> = HistoryKey::ALL
        .iter()
        .copied()
        .zip(kinds.iter_mut())
        .collect();
    let per_kind = crate::parallel::each(jobs, |(key, kind)| {
        let mut buf = String::with_capacity(64);
        rows.iter()
            .map(|&r| {
                let lane = lane_of(r as usize).expect("rows are the items present");
                kind.index(lane.key_into(key, &mut buf)) as u32
            })
            .collect::<Vec<u32>>()
    });
    let per_kind: Vec<Vec<u32>> = per_kind
        .into_iter()
        .map(|k| k.expect("resolving names does not panic"))
        .collect();
    (0..rows.len())
        .map(|p| std::array::from_fn(|k| per_kind[k][p]))
        .collect()
}

/// The shipment keys of `rows`, hashed across the cores (two SipHash passes per id).
fn keys_of<'a>(rows: &[u32], id: impl Fn(usize) -> Option<&'a str> + Sync) -> Vec<ShipmentKey> {
    let mut keys = vec![ShipmentKey::of(""); rows.len()];
    crate::parallel::for_row_blocks(rows.len(), 1, &mut keys, 65_536, |block, out| {
        for (o, &r) in out.iter_mut().zip(&rows[block]) {
            *o = ShipmentKey::of(id(r as usize).unwrap_or_default());
        }
    });
    keys
}

/// The positions of `entity_of` grouped by entity, each group ascending; entities without
/// any are left out.
fn group_by_entity(
    n: usize,
    entity_of: impl Iterator<Item = u32> + Clone,
) -> Vec<(usize, Vec<u32>)> {
    let mut counts = vec![0usize; n];
    for e in entity_of.clone() {
        counts[e as usize] += 1;
    }
    let mut groups: Vec<Vec<u32>> = counts.iter().map(|&c| Vec::with_capacity(c)).collect();
    for (p, e) in entity_of.enumerate() {
        groups[e as usize].push(p as u32);
    }
    groups
        .into_iter()
        .enumerate()
        .filter(|(_, g)| !g.is_empty())
        .collect()
}
