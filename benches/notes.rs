//! Exception-note classification on the labelled corpus: the small candle model's quality on
//! the validation notes against the keyword rules, and its speed in batches and for one note.
//! `cargo bench --bench notes` (bars: macro-F1 >= 0.85; >= 20,000 notes/s).

use std::path::Path;
use std::time::Instant;

use dispatch_risk_training::exceptions::{
    fit_bag, load_notes, BagTrainConfig, ClassMetrics, KeywordRules, Taxonomy,
};

fn main() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let train = load_notes(&repo.join("data/notes/train.csv")).expect("train notes");
    let valid = load_notes(&repo.join("data/notes/valid.csv")).expect("valid notes");
    let start = Instant::now();
    let model = fit_bag(&train, &BagTrainConfig::default()).expect("fits");
    let fit_s = start.elapsed().as_secs_f64();

    let texts: Vec<&str> = valid.iter().map(|n| n.text.as_str()).collect();
    let m = ClassMetrics::of(&valid, &model.categories(&texts).expect("predicts"));
    let rules = KeywordRules::new(Taxonomy::default());
    let by_rules: Vec<String> = valid
        .iter()
        .map(|n| rules.classify(&n.text).category)
        .collect();
    let r = ClassMetrics::of(&valid, &by_rules);
    println!(
        "validation ({} notes): small model macro-F1 {:.3} accuracy {:.3} (fit {fit_s:.1}s) | keyword rules macro-F1 {:.3} accuracy {:.3}",
        m.n, m.macro_f1, m.accuracy, r.macro_f1, r.accuracy
    );

    // Generalization: for each voice, train on the others (both splits) and test on it.
    let all: Vec<_> = train.iter().chain(&valid).cloned().collect();
    for voice in ["customer", "carrier", "dispatcher"] {
        let (held, rest): (Vec<_>, Vec<_>) = all.iter().cloned().partition(|n| n.voice == voice);
        let model = fit_bag(&rest, &BagTrainConfig::default()).expect("fits");
        let texts: Vec<&str> = held.iter().map(|n| n.text.as_str()).collect();
        let m = ClassMetrics::of(&held, &model.categories(&texts).expect("predicts"));
        let by_rules: Vec<String> = held
            .iter()
            .map(|n| rules.classify(&n.text).category)
            .collect();
        println!(
            "held-out voice {voice} ({} notes): small model macro-F1 {:.3} | keyword rules {:.3}",
            m.n,
            m.macro_f1,
            ClassMetrics::of(&held, &by_rules).macro_f1
        );
    }

    // Throughput: the validation notes repeated into batches of 1,000.
    let batch: Vec<&str> = texts.iter().cycle().take(1000).copied().collect();
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed().as_secs_f64() < 3.0 {
        n += model.predict(&batch).expect("predicts").len();
    }
    let per_s = n as f64 / start.elapsed().as_secs_f64();
    let mut single: Vec<f64> = texts
        .iter()
        .map(|t| {
            let start = Instant::now();
            model.predict(&[t]).expect("predicts");
            start.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    single.sort_by(f64::total_cmp);
    let rules_start = Instant::now();
    let mut rn = 0;
    while rules_start.elapsed().as_secs_f64() < 1.0 {
        for t in &texts {
            rules.classify(t);
            rn += 1;
        }
    }
    println!(
        "small model: {per_s:.0} notes/s in batches of 1,000; one note p50 {:.0} us | keyword rules: {:.0} notes/s",
        single[single.len() / 2],
        rn as f64 / rules_start.elapsed().as_secs_f64()
    );
}
