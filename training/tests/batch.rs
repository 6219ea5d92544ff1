//! Batch scoring parses its file a block at a time, keeps the blocks and scores them in batches
//! of blocks; every row must get exactly what
//! scoring the whole file at once gives (the file's own decisions and outcomes in the history,
//! rejected and repeated rows left out), whatever the blocks and the row order.

mod common;

use dispatch_risk_training::batch::{score_file, BatchOptions};
use dispatch_risk_training::carrier::RankingPolicy;
use dispatch_risk_training::data::load::load_shipments;
use dispatch_risk_training::data::{BadRowLimit, ImportProfile};
use dispatch_risk_training::model::{DelayModel, FactorMethod, RiskScore};
use dispatch_risk_training::train::{self, DataSource, Output, TrainConfig};

#[test]
fn scoring_a_file_in_blocks_answers_as_scoring_it_whole() {
    let dir = tempfile::tempdir().unwrap();
    let (path, table, report) = common::generated(&dir, 6_000, 21);
    let model_dir = dir.path().join("model");
    let source = DataSource::describe(&path, None).unwrap();
    let config = TrainConfig::default().check().unwrap();
    train::train(
        &table,
        &report,
        &source,
        &config,
        Output {
            dir: &model_dir,
            created_at: "2026-01-01T00:00:00Z",
            export_features: None,
            exceptions: None,
        },
        &(),
    )
    .unwrap();

    // Another history to score: shuffled, with a repeated id, a bad date and an open row.
    let (other, _, _) = common::generated(&dir, 5_000, 22);
    let text = std::fs::read_to_string(&other).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let header = lines.remove(0);
    let mut x = 7u64;
    for i in (1..lines.len()).rev() {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        lines.swap(i, (x >> 33) as usize % (i + 1));
    }
    let repeat = lines[10].clone();
    lines.insert(3_000, repeat);
    let mut bad: Vec<String> = lines[20].split(',').map(str::to_string).collect();
    bad[2] = "not a date".into();
    lines[20] = bad.join(",");
    let input = dir.path().join("input.csv");
    std::fs::write(&input, format!("{header}\n{}\n", lines.join("\n"))).unwrap();

    let policy = RankingPolicy::default();
    let profile = ImportProfile::default();
    let limit = BadRowLimit::Count(5);

    // Whole: the file loaded at once, its rows recorded, then scored.
    let mut whole = DelayModel::load(&model_dir).unwrap();
    let (t, r) = load_shipments(&input, &profile, limit).unwrap();
    assert_eq!(r.rejected.len(), 2, "{:?}", r.rejected);
    whole.history.record_table(&t);
    let rows: Vec<usize> = (0..t.len()).collect();
    let x = whole.features(&t, &rows);
    let expected_scores = whole.score(&x, 3, FactorMethod::Path).unwrap();
    let expected_recs = whole.recommend(&t, &rows, None, &policy).unwrap();

    // Blocks of ~400 rows: batches of several blocks, of one block, and the defaults.
    for (block, batch) in [
        (Some(64 << 10), Some(1_000)),
        (Some(64 << 10), Some(1)),
        (None, None),
    ] {
        let mut model = DelayModel::load(&model_dir).unwrap();
        let options = BatchOptions {
            profile: &profile,
            limit,
            top_factors: 3,
            factors: FactorMethod::Path,
            carriers: Some(&policy),
            block,
            batch,
        };
        let (mut ids, mut scores, mut recs, mut blocks) = (vec![], vec![], vec![], 0);
        let (report, _) = score_file(&mut model, &input, &options, &(), &mut |b| {
            blocks += 1;
            ids.extend(b.rows.map(|i| b.table.shipment_id[i].to_string()));
            scores.extend(b.scores);
            recs.extend(b.recommendations);
            Ok(())
        })
        .unwrap();
        if block.is_some() {
            assert!(blocks > 3, "the file spans several batches ({blocks})");
        }
        assert_eq!(
            report.rejected, r.rejected,
            "rejections as a whole load finds them"
        );
        let expected_ids: Vec<String> = t
            .shipment_id
            .iter()
            .map(|s| s.unwrap_or_default().to_string())
            .collect();
        assert_eq!(ids, expected_ids);
        let bits =
            |s: &[RiskScore]| -> Vec<u64> { s.iter().map(|s| s.delay_risk.to_bits()).collect() };
        assert_eq!(bits(&scores), bits(&expected_scores));
        assert_eq!(scores, expected_scores);
        assert_eq!(recs, expected_recs);
    }
}

#[test]
fn a_file_with_too_many_bad_rows_fails_before_anything_is_scored() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/default");
    let input = dir.path().join("bad.csv");
    std::fs::write(
        &input,
        "shipment_id,scheduled_date,date_deadline,carrier,warehouse,destination\n\
         A,2024-01-01,2024-01-03,X,W,D\nB,2024-01-01,soon,X,W,D\nA,2024-01-02,2024-01-04,X,W,D\n",
    )
    .unwrap();
    let mut model = DelayModel::load(&model_dir).unwrap();
    let profile = ImportProfile::default();
    let options = BatchOptions {
        profile: &profile,
        limit: BadRowLimit::Count(1),
        top_factors: 0,
        factors: FactorMethod::Path,
        carriers: None,
        block: None,
        batch: None,
    };
    let mut called = false;
    let err = score_file(&mut model, &input, &options, &(), &mut |_| {
        called = true;
        Ok(())
    })
    .unwrap_err()
    .to_string();
    assert!(!called);
    assert!(err.contains("2 of 3 rows have invalid values"), "{err}");
    assert!(
        err.contains("row 2, column `date_deadline`: unparsable date `soon`"),
        "{err}"
    );
    assert!(
        err.contains("row 3, column `shipment_id`: duplicate of row 1"),
        "{err}"
    );
}
