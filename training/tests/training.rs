//! End-to-end training on generated history: quality on a temporal split, determinism, artifact
//! round trip, corruption detection and parameter checks.

mod common;

use dispatch_risk_training::artifact::{files, MANIFEST};
use dispatch_risk_training::carrier::RankingPolicy;
use dispatch_risk_training::data::dates::DateParser;
use dispatch_risk_training::model::{DelayModel, FactorMethod};
use dispatch_risk_training::train::{train, DataSource, Output, TrainConfig};

fn output<'a>(dir: &'a std::path::Path, created_at: &'a str) -> Output<'a> {
    Output {
        dir,
        created_at,
        export_features: None,
        exceptions: None,
    }
}

fn config(valid_from: &str) -> TrainConfig {
    TrainConfig {
        valid_from: DateParser::default().parse(valid_from),
        ..TrainConfig::default()
    }
}

/// The artifact files the data, the seed and the creation time fix, byte for byte.
const DETERMINED: [&str; 7] = [
    MANIFEST,
    files::DELAY_MODEL,
    files::FEATURES,
    files::FALLBACK_RULES,
    files::BASELINE,
    files::HISTORY,
    files::CARRIERS,
];

/// Each of `names` is the same in the artifacts `a` and `b`.
fn assert_same_files(a: &std::path::Path, b: &std::path::Path, names: &[&str], between: &str) {
    for f in names {
        assert_eq!(
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(b.join(f)).unwrap(),
            "{f} differs between {between}"
        );
    }
}

/// Trains on `table` with validation from 2024-02-15 into `dir/model` and loads the result.
fn train_and_load(
    dir: &std::path::Path,
    table: &dispatch_risk_training::data::ShipmentTable,
    report: &dispatch_risk_training::data::LoadReport,
    source: &DataSource,
) -> DelayModel {
    let out = dir.join("model");
    let cfg = config("2024-02-15").check().unwrap();
    train(
        table,
        report,
        source,
        &cfg,
        output(&out, "2026-01-01T00:00:00Z"),
        &(),
    )
    .unwrap();
    DelayModel::load(&out).unwrap()
}

#[test]
fn learns_delay_risk_and_writes_a_loadable_artifact() {
    let dir = tempfile::tempdir().unwrap();
    let (path, table, report) = common::generated(&dir, 8_000, 3);
    let out = dir.path().join("model");
    let source = DataSource::describe(&path, None).unwrap();
    let cfg = config("2024-04-01").check().unwrap();
    let (manifest, summary) = train(
        &table,
        &report,
        &source,
        &cfg,
        output(&out, "2026-01-01T00:00:00Z"),
        &(),
    )
    .unwrap();

    let valid = summary.delay_valid.expect("validation metrics");
    assert!(valid.n > 1_000, "validation rows {}", valid.n);
    assert!(
        valid.auc > 0.65,
        "synthetic history has learnable structure, got AUC {}",
        valid.auc
    );
    let base = summary.baseline_valid.unwrap();
    assert!(base.auc > 0.5 && base.auc.is_finite());
    let m = &manifest.extra["metrics"]["delay_risk"]["valid"];
    for key in ["auc", "logloss", "brier", "n"] {
        assert!(
            m[key].is_number(),
            "metrics.delay_risk.valid.{key} missing: {m}"
        );
    }

    // The carrier replay: generated carriers differ by lane, so following the recommendation
    // must beat the carriers actually used.
    let c = &manifest.extra["metrics"]["carrier"]["valid"];
    for key in ["late_rate_followed", "late_rate_all", "reduction", "n"] {
        assert!(
            c[key].is_number(),
            "metrics.carrier.valid.{key} missing: {c}"
        );
    }
    assert!(c["n"].as_u64().unwrap() > 500, "{c}");
    assert!(c["reduction"].as_f64().unwrap() > 0.1, "{c}");

    // Category codes are split as categories (LightGBM was once handed them as plain numbers).
    let trees = std::fs::read_to_string(out.join(files::DELAY_MODEL)).unwrap();
    assert!(
        trees
            .lines()
            .any(|l| l.starts_with("num_cat=") && l != "num_cat=0"),
        "no tree splits on a categorical feature"
    );

    let model = DelayModel::load(&out).unwrap();
    assert_eq!(model.version(), manifest.version);
    let recs = model
        .recommend(&table, &[0, 1, 2], None, &RankingPolicy::default())
        .unwrap();
    for (i, r) in recs.iter().enumerate() {
        let r = r.as_ref().expect("every generated lane has carriers");
        assert!(
            !r.alternatives.is_empty(),
            "generated lanes have several carriers"
        );
        assert!(!r.recommended.reasons.is_empty());
        let all: Vec<&str> = std::iter::once(&r.recommended)
            .chain(&r.alternatives)
            .map(|c| c.carrier.as_str())
            .collect();
        assert!(
            all.contains(&&table.carrier[i]),
            "the lane's own carrier is a candidate"
        );
    }
    // A carrier variant is the row encoded with that carrier, though only the carrier's own
    // features are recomputed for it.
    let carriers: Vec<String> = {
        let mut c: Vec<String> = table.carrier.iter().flatten().map(str::to_string).collect();
        c.sort();
        c.dedup();
        c
    };
    for r in [0, 7, 42] {
        let variants =
            model
                .encoder()
                .encode_carrier_variants(&table, r, &carriers, &model.history);
        for (k, carrier) in carriers.iter().enumerate() {
            let mut swapped = table.clone();
            swapped.carrier.set(r, Some(carrier));
            let direct = model.features(&swapped, &[r]);
            let same = variants
                .row(k)
                .iter()
                .zip(direct.row(0))
                .all(|(a, b)| a == b || (a.is_nan() && b.is_nan()));
            assert!(same, "row {r} with {carrier}: the variant differs");
        }
    }
    let rows: Vec<usize> = (0..50).collect();
    let x = model.features(&table, &rows);
    let plain = model.predict(&x).unwrap();
    for method in [FactorMethod::Path, FactorMethod::Shap] {
        let scores = model.score(&x, 3, method).unwrap();
        for (s, p) in scores.iter().zip(&plain) {
            assert!((0.0..=1.0).contains(&s.delay_risk));
            assert!(
                (s.delay_risk - p).abs() < 1e-9,
                "{method:?}: risk from contribution sums {} vs prediction {p}",
                s.delay_risk
            );
            assert_eq!(s.top_factors.len(), 3);
        }
    }
    // Categories never seen in training and missing numbers still score.
    let mut odd = table.select(&[0, 1]);
    odd.carrier.set(0, Some("Carrier Nobody Has Heard Of"));
    odd.destination.set(0, Some("XX-00 Nowhere"));
    for col in odd.numeric.iter_mut() {
        col.values[0] = f64::NAN;
    }
    for col in odd.categorical.iter_mut() {
        col.values.set(1, Some("a value outside the vocabulary"));
    }
    let odd_scores = model
        .score(&model.features(&odd, &[0, 1]), 3, FactorMethod::Path)
        .unwrap();
    for s in &odd_scores {
        assert!(s.delay_risk.is_finite() && (0.0..=1.0).contains(&s.delay_risk));
    }
    let carrier_factor = odd_scores[0]
        .top_factors
        .iter()
        .find(|f| f.feature == "carrier");
    if let Some(f) = carrier_factor {
        assert_eq!(f.value, serde_json::json!("(rare or unseen)"));
    }

    // The fallback's rules cover every row with exactly one rule.
    let rules = model.fallback_rules();
    let cols: Vec<usize> = rules
        .features
        .iter()
        .map(|f| model.feature_names().iter().position(|n| n == f).unwrap())
        .collect();
    for i in 0..x.n_rows {
        let row = x.row(i);
        let matching = rules
            .rules
            .iter()
            .filter(|r| {
                r.conditions.iter().all(|c| {
                    let j = rules.features.iter().position(|f| *f == c.feature).unwrap();
                    let v = if row[cols[j]].is_finite() {
                        row[cols[j]]
                    } else {
                        rules.medians[j]
                    };
                    if c.op == "<=" {
                        v <= c.threshold
                    } else {
                        v > c.threshold
                    }
                })
            })
            .count();
        assert_eq!(matching, 1, "row {i} matches {matching} fallback rules");
    }
}

#[test]
fn same_data_and_seed_give_a_byte_identical_model() {
    let dir = tempfile::tempdir().unwrap();
    let (path, table, report) = common::generated(&dir, 4_000, 11);
    let source = DataSource::describe(&path, None).unwrap();
    let run = |name: &str, seed: u64| {
        let out = dir.path().join(name);
        let cfg = TrainConfig {
            seed,
            ..TrainConfig::default()
        }
        .check()
        .unwrap();
        train(
            &table,
            &report,
            &source,
            &cfg,
            output(&out, "2026-01-01T00:00:00Z"),
            &(),
        )
        .unwrap();
        out
    };
    let (a, b, c) = (run("a", 5), run("b", 5), run("c", 6));
    assert_same_files(&a, &b, &DETERMINED, "identical runs");
    assert_ne!(
        std::fs::read(a.join(files::DELAY_MODEL)).unwrap(),
        std::fs::read(c.join(files::DELAY_MODEL)).unwrap(),
        "another seed should give another model (bagging and feature sampling are seeded)"
    );
}

#[test]
fn the_same_rows_in_another_order_give_the_same_model() {
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    let dir = tempfile::tempdir().unwrap();
    let (path, mut table, report) = common::generated(&dir, 4_000, 11);
    // Distinct decision times (rows that tie train in file order, so they are kept apart).
    for (i, t) in table.scheduled_date.iter_mut().enumerate() {
        *t = t.div_euclid(3_600) * 3_600 + i as i64;
    }
    let mut rows: Vec<usize> = (0..table.len()).collect();
    rows.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(3));
    let shuffled = table.select(&rows);
    let source = DataSource::describe(&path, None).unwrap();
    let run = |name: &str, t: &dispatch_risk_training::data::ShipmentTable| {
        let out = dir.path().join(name);
        let cfg = config("2024-02-15").check().unwrap();
        train(
            t,
            &report,
            &source,
            &cfg,
            output(&out, "2026-01-01T00:00:00Z"),
            &(),
        )
        .unwrap();
        out
    };
    let (a, b) = (run("file-order", &table), run("shuffled", &shuffled));
    assert_same_files(&a, &b, &DETERMINED, "two orders of the same rows");
}

#[test]
fn corrupt_or_foreign_artifacts_fail_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let (path, table, report) = common::generated(&dir, 3_000, 2);
    let out = dir.path().join("model");
    let cfg = TrainConfig::default().check().unwrap();
    train(
        &table,
        &report,
        &DataSource::describe(&path, None).unwrap(),
        &cfg,
        output(&out, "t"),
        &(),
    )
    .unwrap();

    let model_file = out.join(files::DELAY_MODEL);
    let mut bytes = std::fs::read(&model_file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x20;
    std::fs::write(&model_file, &bytes).unwrap();
    let err = DelayModel::load(&out).unwrap_err().to_string();
    assert!(err.contains("checksum mismatch"), "{err}");

    let manifest = out.join(MANIFEST);
    let text = std::fs::read_to_string(&manifest)
        .unwrap()
        .replace("\"format_version\": 1", "\"format_version\": 99");
    std::fs::write(&manifest, text).unwrap();
    let err = DelayModel::load(&out).unwrap_err().to_string();
    assert!(err.contains("format version 99"), "{err}");

    let err = DelayModel::load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("no manifest.json"), "{err}");
}

#[test]
fn bad_parameters_are_rejected_before_a_run() {
    let bad = |cfg: TrainConfig, name: &str| {
        let err = cfg.check().unwrap_err().to_string();
        assert!(
            err.contains(name),
            "expected an error naming {name}, got {err}"
        );
    };
    let mut c = TrainConfig::default();
    c.booster.learning_rate = Some(0.0);
    bad(c, "learning_rate");
    let mut c = TrainConfig::default();
    c.booster.num_leaves = 1;
    bad(c, "num_leaves");
    let mut c = TrainConfig::default();
    c.booster.num_leaves = 65;
    bad(c, "num_leaves");
    let mut c = TrainConfig::default();
    c.booster.cat_smooth = -1.0;
    bad(c, "cat_smooth");
    bad(
        TrainConfig {
            calibration_fraction: 0.9,
            ..TrainConfig::default()
        },
        "calibration_fraction",
    );
    let mut c = TrainConfig::default();
    c.risk_bands.high = 0.1;
    bad(c, "risk_bands");
    let mut c = TrainConfig::default();
    c.schema.history.windows_days = vec![];
    bad(c, "windows_days");
}

#[test]
fn a_rate_table_adds_candidates_prices_and_transit_days() {
    use dispatch_risk_training::carrier::{RateProfile, RateTable};
    let dir = tempfile::tempdir().unwrap();
    let (path, table, report) = common::generated(&dir, 3_000, 11);
    let (w, d) = (
        table.warehouse[0].to_string(),
        table.destination[0].to_string(),
    );
    let rates_path = dir.path().join("rates.csv");
    std::fs::write(
        &rates_path,
        format!(
            "Carrier,orig_port_cd,dest_port_cd,minm_wgh_qty,max_wgh_qty,svc_cd,minimum cost,rate,mode_dsc,tpt_day_cnt\n\
             RateOnly Express,{w},{d},0,100000,DTD,25,0.5,GROUND,3\n\
             {c},{w},{d},0,100000,DTD,30,2.0,GROUND,2\n",
            c = &table.carrier[0]
        ),
    )
    .unwrap();
    let rates = RateTable::load(&rates_path, &RateProfile::default()).unwrap();
    let source = DataSource::describe(&path, None)
        .unwrap()
        .with_rates(rates.clone());
    let plain = DataSource::describe(&path, None).unwrap();
    assert_ne!(
        source.fingerprint, plain.fingerprint,
        "rates are part of the data"
    );
    let model = train_and_load(dir.path(), &table, &report, &source);
    let rec = model
        .recommend(&table, &[0], None, &RankingPolicy::default())
        .unwrap()
        .remove(0)
        .unwrap();
    let all: Vec<_> = std::iter::once(&rec.recommended)
        .chain(&rec.alternatives)
        .collect();
    let weight = table.numeric("weight_kg").map(|c| c.values[0]);
    let new = all
        .iter()
        .find(|c| c.carrier == "RateOnly Express")
        .expect("a carrier with a rate on the lane is a candidate");
    let quote = rates.quote("RateOnly Express", &w, &d, weight).unwrap();
    assert_eq!(new.expected_cost, Some(quote.cost));
    assert_eq!(new.transit_days, Some(3.0));
    let own = all.iter().find(|c| c.carrier == table.carrier[0]).unwrap();
    assert_eq!(
        own.transit_days,
        Some(2.0),
        "rates win over the learned costs"
    );
}

#[test]
fn history_notes_become_the_scorecards_exception_mix_never_a_feature() {
    use dispatch_risk_training::carrier::scorecard::Level;
    use dispatch_risk_training::data::{load_history, BadRowLimit, ImportProfile};

    // The contract's `notes` column is read as text, quoted commas and all, and kept apart
    // from the extra features.
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("notes.csv");
    std::fs::write(
        &small,
        "shipment_id,scheduled_date,date_deadline,delivered_at,carrier,warehouse,destination,notes\n\
         S1,2024-01-01,2024-01-03,2024-01-04,Acme,WH1,Lyon,\"cnee closed, retry tmrw\"\n\
         S2,2024-01-01,2024-01-03,2024-01-02,Acme,WH1,Lyon,\n",
    )
    .unwrap();
    let (t, _) = load_history(&small, &ImportProfile::default(), BadRowLimit::Count(0)).unwrap();
    assert_eq!(
        t.notes.iter().collect::<Vec<_>>(),
        vec![Some("cnee closed, retry tmrw"), None]
    );
    assert!(t.categorical.iter().all(|c| c.name != "notes"));

    let (path, mut table, report) = common::generated(&dir, 3_000, 5);
    let first = table.carrier[0].to_string();
    // One carrier's notes are about its trucks, the others' about refusals; a third of rows,
    // in place of the generator's notes.
    table.notes = (0..table.len())
        .map(|i| {
            (i % 3 == 0).then(|| {
                if table.carrier[i] == *first {
                    "drv sick, no truck today"
                } else {
                    "Customer refused delivery"
                }
            })
        })
        .collect();
    let source = DataSource::describe(&path, None).unwrap();
    let model = train_and_load(dir.path(), &table, &report, &source);
    assert!(model.feature_names().iter().all(|n| !n.contains("notes")));
    let views = model.carriers.as_ref().unwrap().scorecards.views();
    let carrier_card = |name: &str| {
        views
            .iter()
            .find(|v| v.level == Level::Carrier && v.carrier == name)
            .unwrap()
    };
    let own = carrier_card(&first);
    assert!(own.exception_notes > 0);
    assert_eq!(own.exception_mix, vec![("vehicle_issue".to_string(), 1.0)]);
    let other = views
        .iter()
        .find(|v| v.level == Level::Carrier && v.carrier != first)
        .unwrap();
    assert_eq!(other.exception_mix, vec![("refused".to_string(), 1.0)]);
    // Lane cards carry the mix of their own rows only.
    let lane_notes: u64 = views
        .iter()
        .filter(|v| v.level == Level::Lane && v.carrier == first)
        .map(|v| v.exception_notes)
        .sum();
    assert_eq!(lane_notes, own.exception_notes);
}
