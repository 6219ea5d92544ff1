//! Latency of one carrier recommendation among 10 candidates on the committed default model:
//! features for each swapped-in carrier, the delay model, the scorecards and the ranking.
//! `cargo bench --bench recommend` (bar: under 100 microseconds); `MODEL_DIR=DIR` measures
//! another model trained on generated history.

use std::path::Path;
use std::time::Instant;

use dispatch_risk_training::carrier::RankingPolicy;
use dispatch_risk_training::data::{load_history, BadRowLimit, ImportProfile};
use dispatch_risk_training::model::DelayModel;

fn main() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::var_os("MODEL_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| repo.join("models/default"));
    let model = DelayModel::load(&dir).expect("a model directory");
    let (table, _) = load_history(
        &repo.join("data/samples/history_sample.csv"),
        &ImportProfile::default(),
        BadRowLimit::Count(0),
    )
    .expect("sample");
    // The sample's six carriers plus four the model has never seen: ten candidates.
    let mut carriers: Vec<String> = table.carrier.iter().flatten().map(str::to_string).collect();
    carriers.sort();
    carriers.dedup();
    for k in 0..(10 - carriers.len().min(10)) {
        carriers.push(format!("New Carrier {k}"));
    }
    let policy = RankingPolicy::default();
    let rows: Vec<usize> = (0..table.len()).step_by(table.len() / 500).collect();
    let mut times = Vec::with_capacity(rows.len() * 4);
    for _ in 0..4 {
        for &r in &rows {
            let start = Instant::now();
            let rec = model
                .recommend(&table, &[r], Some(&carriers), &policy)
                .expect("recommends");
            times.push(start.elapsed().as_secs_f64() * 1e6);
            assert_eq!(rec[0].as_ref().map(|r| r.alternatives.len()), Some(9));
        }
    }
    // Where the time goes: the swapped rows' features, and the delay model on them.
    let (mut t_features, mut t_model) = (0.0, 0.0);
    for &r in &rows {
        let start = Instant::now();
        let x = model
            .encoder()
            .encode_carrier_variants(&table, r, &carriers, &model.history);
        t_features += start.elapsed().as_secs_f64() * 1e6;
        let start = Instant::now();
        let p = model.predict_variants(&x).expect("predicts");
        t_model += start.elapsed().as_secs_f64() * 1e6;
        assert_eq!(p.len(), carriers.len());
    }
    println!(
        "  of which, per call: features of the 10 variants {:.1} us, delay model on them {:.1} us",
        t_features / rows.len() as f64,
        t_model / rows.len() as f64
    );
    times.sort_by(f64::total_cmp);
    let q = |p: f64| times[((times.len() - 1) as f64 * p) as usize];
    println!(
        "recommend 1 shipment among {} carriers ({} trees): p50 {:.1} us, p90 {:.1} us, p99 {:.1} us over {} calls",
        carriers.len(),
        model.manifest.extra["booster"]["trees"],
        q(0.5),
        q(0.9),
        q(0.99),
        times.len()
    );
}
