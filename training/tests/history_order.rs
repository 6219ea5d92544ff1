//! The history features do not depend on the order outcomes arrive in: a history loaded sorted,
//! shuffled, in chunks or one outcome at a time answers every row bit for bit alike, and on
//! sorted input exactly as the earlier insert-one-at-a-time code did (kept in
//! `common/reference_history.rs`). Times are rounded so that many outcomes tie; where tied
//! outcomes straddle the tenth from the end, the earlier code's "last ten" counted whichever
//! the file put last, and now each counts for its share, so those five features are compared
//! with the reference on a history without ties.

mod common;

use common::reference_history::ReferenceHistory;
use dispatch_risk_training::data::ShipmentTable;
use dispatch_risk_training::features::history::Delivered;
use dispatch_risk_training::features::{HistoryConfig, HistoryState};
use rand::seq::SliceRandom;
use rand::SeedableRng;

const SIX_HOURS: i64 = 6 * 3_600;

/// An outcome's delivery time, lateness, transit and carrier.
type Tied<'a> = (i64, i64, i64, &'a str);

fn round(t: i64) -> i64 {
    t.div_euclid(SIX_HOURS) * SIX_HOURS
}

/// Generated history with every time rounded to six hours: outcomes tie on delivery time, and
/// often on promise and decision time too (the same outcome on different lanes).
fn tied_history(rows: usize, seed: u64) -> ShipmentTable {
    let dir = tempfile::tempdir().unwrap();
    let (_, mut t, _) = common::generated(&dir, rows, seed);
    for i in 0..t.len() {
        t.scheduled_date[i] = round(t.scheduled_date[i]);
        t.date_deadline[i] = round(t.date_deadline[i]);
        t.delivered_at[i] = t.delivered_at[i].map(round);
    }
    t
}

/// The same with every delivery a second apart from every other.
fn untied(mut t: ShipmentTable) -> ShipmentTable {
    for i in 0..t.len() {
        t.delivered_at[i] = t.delivered_at[i].map(|d| d + i as i64);
    }
    t
}

/// Whether feature `k` is a "last ten outcomes" rate.
fn is_last_ten(k: usize) -> bool {
    HistoryConfig::default().feature_names()[k].ends_with("_last10")
}

fn reference_answers(table: &ShipmentTable) -> Vec<Vec<u64>> {
    let mut reference = ReferenceHistory::new(HistoryConfig::default());
    reference.record_table(&sorted(table));
    answers(table, |i, out| {
        reference.features_at(
            table.lane(i),
            table.scheduled_date[i],
            table.date_deadline[i],
            out,
        )
    })
}

/// Rows sorted by delivery time, then lateness, then transit (open shipments first).
fn sorted(t: &ShipmentTable) -> ShipmentTable {
    let mut rows: Vec<usize> = (0..t.len()).collect();
    rows.sort_by_key(|&i| {
        t.delivered_at[i].map(|d| (d, d - t.date_deadline[i], d - t.scheduled_date[i]))
    });
    t.select(&rows)
}

fn shuffled(t: &ShipmentTable, seed: u64) -> ShipmentTable {
    let mut rows: Vec<usize> = (0..t.len()).collect();
    rows.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
    t.select(&rows)
}

/// Every row's history features at its decision time, as bits.
fn answers(t: &ShipmentTable, features: impl Fn(usize, &mut [f64])) -> Vec<Vec<u64>> {
    let n = HistoryConfig::default().feature_count();
    (0..t.len())
        .map(|i| {
            let mut out = vec![f64::NAN; n];
            features(i, &mut out);
            out.iter().map(|v| v.to_bits()).collect()
        })
        .collect()
}

fn new_history(t: &ShipmentTable) -> HistoryState {
    let mut h = HistoryState::new(HistoryConfig::default());
    h.record_table(t);
    h
}

#[test]
fn sorted_shuffled_chunked_and_one_by_one_histories_answer_alike() {
    let table = tied_history(4_000, 11);
    let (sorted, shuffled) = (sorted(&table), shuffled(&table, 5));

    // The ties this test is about are really there.
    let delivered: Vec<Tied> = (0..table.len())
        .filter_map(|i| {
            table.delivered_at[i].map(|d| {
                let (l, tr) = (d - table.date_deadline[i], d - table.scheduled_date[i]);
                (d, l, tr, &table.carrier[i])
            })
        })
        .collect();
    let count = |same: &dyn Fn(&Tied, &Tied) -> bool| {
        delivered
            .iter()
            .enumerate()
            .filter(|(i, a)| {
                delivered
                    .iter()
                    .enumerate()
                    .any(|(j, b)| *i != j && same(a, b))
            })
            .count()
    };
    assert!(
        count(&|a, b| a.0 == b.0) > 1_000,
        "outcomes tied on delivery time"
    );
    assert!(
        count(&|a, b| (a.0, a.1, a.2) == (b.0, b.1, b.2) && a.3 != b.3) > 50,
        "identical outcomes of different carriers"
    );

    let ask = |h: &HistoryState| {
        answers(&table, |i, out| {
            h.features_at(
                table.lane(i),
                table.scheduled_date[i],
                table.date_deadline[i],
                out,
            )
        })
    };
    let expected = ask(&new_history(&sorted));

    let mut one_by_one = HistoryState::new(HistoryConfig::default());
    for i in 0..shuffled.len() {
        one_by_one.record_decision(
            &shuffled.shipment_id[i],
            shuffled.lane(i),
            shuffled.scheduled_date[i],
        );
        if let Some(d) = shuffled.delivered_at[i] {
            one_by_one.record(
                &shuffled.shipment_id[i],
                shuffled.lane(i),
                shuffled.scheduled_date[i],
                shuffled.date_deadline[i],
                d,
            );
        }
    }
    let mut chunked = HistoryState::new(HistoryConfig::default());
    for start in (0..shuffled.len()).step_by(700) {
        let rows: Vec<usize> = (start..(start + 700).min(shuffled.len())).collect();
        chunked.record_table(&shuffled.select(&rows));
    }
    // Loading the same rows again changes nothing: each shipment counts once.
    chunked.record_table(&sorted);
    // The service's bulk intake (a reload replaying stored outcomes): decisions one by one,
    // outcomes in one shuffled load that names the ones it took.
    let mut bulk = HistoryState::new(HistoryConfig::default());
    for i in 0..shuffled.len() {
        bulk.record_decision(
            &shuffled.shipment_id[i],
            shuffled.lane(i),
            shuffled.scheduled_date[i],
        );
    }
    let outcome = |i: usize| Delivered::of_row(&shuffled, i);
    let taken = bulk.record_outcomes(shuffled.len(), outcome);
    let delivered_rows: Vec<u32> = (0..shuffled.len() as u32)
        .filter(|&i| shuffled.delivered_at[i as usize].is_some())
        .collect();
    assert_eq!(taken, delivered_rows, "every delivered row is new once");
    assert!(
        bulk.record_outcomes(shuffled.len(), outcome).is_empty(),
        "a second load takes nothing"
    );

    // Batch scoring's first pass: blocks of ids never decided before, without the decision set.
    let mut first_sight = HistoryState::new(HistoryConfig::default());
    let mut load = first_sight.load();
    for start in (0..shuffled.len()).step_by(700) {
        let rows: Vec<usize> = (start..(start + 700).min(shuffled.len())).collect();
        load.table_once(&shuffled.select(&rows));
    }
    load.finish();

    for (name, h) in [
        ("shuffled", new_history(&shuffled)),
        ("first sight, in chunks, shuffled", first_sight),
        ("one by one, shuffled", one_by_one),
        ("in chunks, shuffled", chunked),
        ("bulk outcomes, shuffled", bulk),
    ] {
        assert_eq!(h.len(), new_history(&sorted).len(), "{name}");
        let got = ask(&h);
        for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
            assert_eq!(g, e, "{name}: row {i} ({})", &table.shipment_id[i]);
        }
    }
    // The comparison is not between empty answers: rows see different histories.
    let distinct: std::collections::HashSet<&Vec<u64>> = expected.iter().collect();
    assert!(distinct.len() > table.len() / 2);

    // As the earlier code answered on sorted input: every feature but the shared "last ten".
    let reference = reference_answers(&table);
    let mut shared = 0;
    for (i, (g, e)) in expected.iter().zip(&reference).enumerate() {
        for k in 0..g.len() {
            if is_last_ten(k) {
                shared += (g[k] != e[k]) as usize;
            } else {
                assert_eq!(g[k], e[k], "row {i}, feature {k}");
            }
        }
    }
    assert!(
        shared > 0,
        "some rows' last ten straddle a group of tied outcomes"
    );
}

#[test]
fn without_ties_every_feature_is_the_earlier_codes_bit_for_bit() {
    let table = untied(tied_history(3_000, 12));
    let reference = reference_answers(&table);
    for h in [new_history(&shuffled(&table, 1)), new_history(&table)] {
        let got = answers(&table, |i, out| {
            h.features_at(
                table.lane(i),
                table.scheduled_date[i],
                table.date_deadline[i],
                out,
            )
        });
        assert_eq!(got, reference);
    }
}

/// Bulk encoding advances each entity's cuts from its last query instead of searching; every
/// row must get what a single query gives, whichever order the rows come in.
#[test]
fn sweeping_bulk_queries_answer_as_single_queries_do() {
    use dispatch_risk_training::features::{Encoder, FeatureSchema, SchemaConfig};
    let table = tied_history(6_000, 13);
    let all: Vec<usize> = (0..table.len()).collect();
    let encoder = Encoder::new(FeatureSchema::fit(&table, &all, &SchemaConfig::default()));
    let history = new_history(&table);
    let single = answers(&table, |i, out| {
        history.features_at(
            table.lane(i),
            table.scheduled_date[i],
            table.date_deadline[i],
            out,
        )
    });
    let hist_start = encoder.schema().n_features() - HistoryConfig::default().feature_count();
    let shuffled_rows: Vec<usize> = {
        let mut r = all.clone();
        r.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(3));
        r
    };
    for rows in [table.order_by_decision_time(), shuffled_rows, all.clone()] {
        let x = encoder.encode(&table, &rows, &history);
        for (k, &i) in rows.iter().enumerate() {
            let got: Vec<u64> = x.row(k)[hist_start..].iter().map(|v| v.to_bits()).collect();
            assert_eq!(got, single[i], "row {i}");
        }
    }
}
