//! The native tree evaluator against LightGBM itself, on the committed default model: the same
//! raw scores on real rows and on rows with missing, unseen and out-of-range values, and path
//! factors that agree with exact SHAP on what matters most.

use std::path::Path;

use dispatch_risk_training::data::{load_history, BadRowLimit, ImportProfile};
use dispatch_risk_training::model::booster::DelayBooster;
use dispatch_risk_training::model::forest::Forest;
use dispatch_risk_training::model::{DelayModel, FactorMethod};
use rand::{Rng, SeedableRng};

fn repo(p: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(p)
}

#[test]
fn forest_matches_lightgbm_and_path_factors_track_shap() {
    let mut model = DelayModel::load(&repo("models/default")).unwrap();
    let (table, _) = load_history(
        &repo("data/samples/history_sample.csv"),
        &ImportProfile::default(),
        BadRowLimit::Count(0),
    )
    .unwrap();
    model.history.record_table(&table);
    let rows: Vec<usize> = (0..table.len()).step_by(6).collect();
    let mut x = model.features(&table, &rows);

    // Half the rows again, damaged: missing values, unseen category codes, negative and huge
    // numbers, exact zeros: every branch of LightGBM's missing-value and categorical logic.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let clean = x.n_rows;
    for i in 0..clean / 2 {
        let mut row = x.row(i).to_vec();
        for v in row.iter_mut() {
            *v = match rng.gen_range(0..8) {
                0 => f64::NAN,
                1 => 0.0,
                2 => -*v - 1.0,
                3 => 1e9,
                4 => rng.gen_range(0.0..300.0f64).floor(),
                _ => *v,
            };
        }
        x.data.extend(row);
        x.n_rows += 1;
    }

    let text = std::fs::read_to_string(repo("models/default/delay_model.txt")).unwrap();
    let forest = Forest::load(&text).unwrap();
    let booster = DelayBooster::load(&text, x.n_cols).unwrap();
    let lightgbm = booster.raw_scores(&x.all()).unwrap();
    let mut block_raw = vec![0.0; x.n_rows];
    forest.predict_raw_rows(&x.data, &mut block_raw);
    let mut block_contrib = vec![0.0; x.n_rows * (x.n_cols + 1)];
    forest.contributions_rows(&x.data, &mut block_contrib);
    // Variants of one row (a few columns changed, damaged values included) score as if each
    // were scored alone; 70 of them cross the 64-variant chunk.
    let mut variants = Vec::new();
    let width = x.n_cols;
    for k in 0..70 {
        let mut row = x.row(3).to_vec();
        if k > 0 {
            for j in [k % 4, (k * 5) % width] {
                row[j] = x.row((k * 7) % x.n_rows)[j];
            }
        }
        variants.extend(row);
    }
    let mut shared = vec![0.0; 70];
    forest.predict_raw_variants(&variants, &mut shared);
    for (k, v) in variants.chunks(x.n_cols).enumerate() {
        assert_eq!(shared[k], forest.predict_raw(v), "variant {k}");
    }
    // Declaring the varying columns changes how, not what: with the right declaration, and
    // with one that misses a varying column (which must not be trusted).
    let mut planned = forest.clone();
    let mut declared: Vec<bool> = (0..width).map(|j| j < 4 || j % 5 == 0).collect();
    for k in 1..70 {
        declared[(k * 5) % width] = true;
    }
    for wrong in [false, true] {
        if wrong {
            declared[(7 * 5) % width] = false;
        }
        planned.plan_variants(&declared);
        let mut got = vec![0.0; 70];
        planned.predict_raw_variants(&variants, &mut got);
        assert_eq!(got, shared, "declaration missing a column: {wrong}");
    }

    let mut contrib = vec![0.0; x.n_cols + 1];
    for (i, want) in lightgbm.iter().enumerate() {
        let got = forest.predict_raw(x.row(i));
        assert!(
            (got - want).abs() <= 1e-9 * want.abs().max(1.0),
            "row {i}: forest {got} vs LightGBM {want}"
        );
        forest.contributions(x.row(i), &mut contrib);
        assert_eq!(
            block_raw[i], got,
            "row {i}: block and single-row walks differ"
        );
        let w = x.n_cols + 1;
        assert_eq!(&block_contrib[i * w..(i + 1) * w], &contrib[..], "row {i}");
        let sum: f64 = contrib.iter().sum();
        assert!(
            (sum - want).abs() < 1e-6,
            "row {i}: contributions sum {sum} vs {want}"
        );
    }

    // On the clean rows, the path method's strongest factor is one of SHAP's top three on most
    // rows, and both give the same risk.
    let clean_x = dispatch_risk_training::features::FeatureMatrix {
        data: x.data[..clean * x.n_cols].to_vec(),
        n_rows: clean,
        n_cols: x.n_cols,
    };
    let path = model.score(&clean_x, 3, FactorMethod::Path).unwrap();
    let shap = model.score(&clean_x, 3, FactorMethod::Shap).unwrap();
    let mut agree = 0;
    for (p, s) in path.iter().zip(&shap) {
        assert!((p.delay_risk - s.delay_risk).abs() < 1e-9);
        let top = &p.top_factors[0].feature;
        agree += s.top_factors.iter().any(|f| &f.feature == top) as usize;
    }
    let rate = agree as f64 / clean as f64;
    eprintln!(
        "path top factor within SHAP's top 3 on {:.1}% of {clean} rows",
        rate * 100.0
    );
    assert!(
        rate > 0.8,
        "path and SHAP factors disagree too often: {rate:.3}"
    );
}
