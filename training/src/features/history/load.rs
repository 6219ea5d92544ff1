//! Loading many outcomes and decisions at once, a block at a time: each block's ids are
//! deduplicated and its names resolved to entity positions as it comes, so its text can be
//! dropped; at the end one sort puts everything in canonical order and each series merges its
//! share once. The cost is one sort whatever the order the rows came in, and the memory a
//! compact record per row (32 bytes per outcome, 16 per decision) rather than the rows' text.

use super::series::Outcome;
use super::{Decided, Delivered, HashMap, HistoryKey, HistoryState, Kind, Lane};
use crate::data::table::{ShipmentKey, Timestamp};

/// A load in progress; [`Load::finish`] merges it into the history.
pub struct Load<'h> {
    history: &'h mut HistoryState,
    /// The lanes this load has met, as their entities' positions in the five key kinds: rows
    /// refer to a lane by its place here, so a name is resolved once per lane, not per row.
    lanes: Vec<[u32; 5]>,
    /// One run per call, so growing never copies what came before (at ten million rows a
    /// doubling vector briefly held twice its size); [`Load::finish`] joins them.
    outcomes: Vec<Vec<(Outcome, u32)>>,
    decisions: Vec<Vec<(Timestamp, u32)>>,
    /// Decisions went in without the set that counts each once (see [`Load::table_once`]).
    unchecked: bool,
}

impl HistoryState {
    /// Starts a block-wise load (see [`Load`]).
    pub fn load(&mut self) -> Load<'_> {
        self.assert_open();
        Load {
            history: self,
            lanes: Vec::new(),
            outcomes: Vec::new(),
            decisions: Vec::new(),
            unchecked: false,
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
        self.outcomes_keyed(&present, &keys, &item)
    }

    /// [`Load::outcomes`] of the items `present`, whose shipment keys are `keys`.
    fn outcomes_keyed<'a>(
        &mut self,
        present: &[u32],
        keys: &[ShipmentKey],
        item: &impl Fn(usize) -> Option<Delivered<'a>>,
    ) -> Vec<u32> {
        let fresh = self.history.recorded.insert_all(keys);
        let rows: Vec<u32> = present
            .iter()
            .zip(fresh)
            .filter_map(|(&i, f)| f.then_some(i))
            .collect();
        let lanes = self.resolve(&rows, |i| item(i).map(|d| d.lane));
        let mut run = Vec::with_capacity(rows.len());
        for (&i, lane) in rows.iter().zip(lanes) {
            if let Some(d) = item(i as usize) {
                let o = Outcome::new(d.decided, d.deadline, d.delivered_at);
                run.push((o, lane));
            }
        }
        self.outcomes.push(run);
        rows
    }

    /// Adds the decisions `item(0..n)` gives, skipping shipments already recorded as decided.
    /// Returns how many were new.
    pub fn decisions<'a>(&mut self, n: usize, item: impl Fn(usize) -> Decided<'a> + Sync) -> usize {
        let all: Vec<u32> = (0..n as u32).collect();
        let keys = keys_of(&all, |i| Some(item(i).shipment_id));
        self.decisions_keyed(&keys, &item)
    }

    /// [`Load::decisions`] of items whose shipment keys are `keys`.
    fn decisions_keyed<'a>(
        &mut self,
        keys: &[ShipmentKey],
        item: &impl Fn(usize) -> Decided<'a>,
    ) -> usize {
        let fresh = self.history.decided.insert_all(keys);
        let rows: Vec<u32> = (0..keys.len() as u32)
            .filter(|&i| fresh[i as usize])
            .collect();
        self.push_decisions(&rows, item);
        rows.len()
    }

    fn push_decisions<'a>(&mut self, rows: &[u32], item: &impl Fn(usize) -> Decided<'a>) {
        let lanes = self.resolve(rows, |i| Some(item(i).lane));
        let run = rows
            .iter()
            .zip(lanes)
            .map(|(&i, lane)| (item(i as usize).decided, lane))
            .collect();
        self.decisions.push(run);
    }

    /// Adds every shipment of a table as decided, and every delivered one's outcome; each id
    /// is hashed once for both.
    pub fn table(&mut self, table: &crate::data::ShipmentTable) {
        self.table_checked(table, true);
    }

    /// [`Load::table`] for tables whose shipments are all decided for the first time: no id
    /// repeats within a table or across this load's calls (the first pass over a file whose
    /// reader rejected repeated ids), and the history held no decisions when the load began.
    /// The set that counts a decision once (16 bytes a shipment, and as much again while it
    /// grows) is then not needed; since it no longer matches the history, [`Load::finish`]
    /// seals the history. With decisions already held, this is [`Load::table`].
    pub fn table_once(&mut self, table: &crate::data::ShipmentTable) {
        let once = self.history.decided.len() == 0;
        self.unchecked |= once;
        self.table_checked(table, !once);
    }

    /// A table's decisions (each checked against the decision set when `check`) and outcomes.
    fn table_checked(&mut self, table: &crate::data::ShipmentTable, check: bool) {
        let all: Vec<u32> = (0..table.len() as u32).collect();
        let keys = keys_of(&all, |i| Some(&table.shipment_id[i]));
        let decided = |i: usize| Decided {
            shipment_id: &table.shipment_id[i],
            lane: table.lane(i),
            decided: table.scheduled_date[i],
        };
        if check {
            self.decisions_keyed(&keys, &decided);
        } else {
            self.push_decisions(&all, &decided);
        }
        let (present, keys): (Vec<u32>, Vec<ShipmentKey>) = all
            .into_iter()
            .zip(keys)
            .filter(|&(i, _)| table.delivered_at[i as usize].is_some())
            .unzip();
        self.outcomes_keyed(&present, &keys, &|i| Delivered::of_row(table, i));
    }

    /// Each row's lane, as a position in [`Load::lanes`]: one hash of the row's three names,
    /// and the five kinds' names built and looked up only for a lane not met in this call.
    fn resolve<'a>(
        &mut self,
        rows: &[u32],
        lane_of: impl Fn(usize) -> Option<Lane<'a>>,
    ) -> Vec<u32> {
        let mut known: HashMap<Lane<'a>, u32> = HashMap::default();
        let mut buf = String::with_capacity(64);
        let (lanes, kinds) = (&mut self.lanes, &mut self.history.kinds);
        rows.iter()
            .map(|&r| {
                let lane = lane_of(r as usize).expect("rows are the items present");
                *known.entry(lane).or_insert_with(|| {
                    lanes.push(std::array::from_fn(|k| {
                        kinds[k].index(lane.key_into(HistoryKey::ALL[k], &mut buf)) as u32
                    }));
                    (lanes.len() - 1) as u32
                })
            })
            .collect()
    }

    /// Sorts what was added and merges it into the series, one key kind per thread.
    pub fn finish(self) {
        let Load {
            history,
            lanes,
            outcomes,
            decisions,
            unchecked,
        } = self;
        let mut outcomes = join(outcomes);
        let mut decisions = join(decisions);
        // Ties are outcomes equal in every field the series keep: their order cannot matter.
        outcomes.sort_unstable_by_key(|&(o, _)| o);
        decisions.sort_unstable_by_key(|&(t, _)| t);
        let sorted: Vec<Outcome> = outcomes.iter().map(|&(o, _)| o).collect();
        history.overall.merge_sorted(&sorted);
        drop(sorted);
        let (outcomes, decisions, lanes) = (&outcomes, &decisions, &lanes);
        let jobs: Vec<(usize, &mut Kind)> = history.kinds.iter_mut().enumerate().collect();
        let parallel = outcomes.len() + decisions.len() > SMALL;
        let done = each(jobs, parallel, |(k, kind)| {
            let n = kind.entities.len();
            let entity = |lane: u32| lanes[lane as usize][k];
            for (e, positions) in group_by_entity(n, outcomes.iter().map(|&(_, l)| entity(l))) {
                let series = &mut kind.entities[e].outcomes;
                series.merge_sorted(
                    &positions
                        .iter()
                        .map(|&p| outcomes[p as usize].0)
                        .collect::<Vec<_>>(),
                );
            }
            for (e, positions) in group_by_entity(n, decisions.iter().map(|&(_, l)| entity(l))) {
                let times: Vec<Timestamp> =
                    positions.iter().map(|&p| decisions[p as usize].0).collect();
                kind.entities[e].decisions.merge_sorted(&times);
            }
        });
        // A worker that panicked left its kind half-built: that is a bug, not a state to serve.
        assert!(done.is_some(), "a history worker panicked");
        if unchecked {
            history.seal();
        }
    }
}

/// The runs as one vector of exactly their size, each run freed once copied.
fn join<T>(runs: Vec<Vec<T>>) -> Vec<T> {
    let mut out = Vec::with_capacity(runs.iter().map(Vec::len).sum());
    for run in runs {
        out.extend(run);
    }
    out
}

/// Loads up to this many rows run on the caller's thread: starting a thread per key kind costs
/// more than their work (a reload replaying a few stored outcomes, one live outcome).
const SMALL: usize = 4096;

/// `f` on each job, split across the cores when `parallel`: one thread per core, not per
/// job, since each job holds a share of the load's size while it runs (five at once took
/// ~800 MB at the end of a ten-million-row pass); `None` if a job panicked.
fn each<T: Send, U: Send>(
    jobs: Vec<T>,
    parallel: bool,
    f: impl Fn(T) -> U + Sync,
) -> Option<Vec<U>> {
    if parallel {
        crate::parallel::map_owned(jobs, 1, f)
    } else {
        Some(jobs.into_iter().map(f).collect())
    }
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
