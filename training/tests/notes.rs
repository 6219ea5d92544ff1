//! The labelled exception-note corpus and the keyword rules measured on it.

use std::collections::BTreeSet;
use std::path::PathBuf;

use dispatch_risk_training::exceptions::{
    load_notes, ClassMetrics, KeywordRules, LabelledNote, Taxonomy, CATEGORIES,
};

fn corpus(split: &str) -> Vec<LabelledNote> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../data/notes/{split}.csv"));
    load_notes(&path).unwrap()
}

#[test]
fn the_corpus_covers_every_category_and_voice_in_both_splits() {
    let (train, valid) = (corpus("train"), corpus("valid"));
    for split in [&train, &valid] {
        let categories: BTreeSet<&str> = split.iter().map(|n| n.category.as_str()).collect();
        assert_eq!(categories.len(), CATEGORIES.len());
        let voices: BTreeSet<&str> = split.iter().map(|n| n.voice.as_str()).collect();
        assert_eq!(
            voices,
            BTreeSet::from(["carrier", "customer", "dispatcher"])
        );
    }
    let seen: BTreeSet<&str> = train.iter().map(|n| n.text.as_str()).collect();
    assert!(
        valid.iter().all(|n| !seen.contains(n.text.as_str())),
        "a validation note is also a training note"
    );
}

#[test]
fn keyword_rules_sort_most_validation_notes() {
    let rules = KeywordRules::new(Taxonomy::default());
    let valid = corpus("valid");
    let predicted: Vec<String> = valid
        .iter()
        .map(|n| rules.classify(&n.text).category)
        .collect();
    let m = ClassMetrics::of(&valid, &predicted);
    eprintln!(
        "keyword rules on data/notes/valid.csv: macro-F1 {:.3}, accuracy {:.3}, n {}",
        m.macro_f1, m.accuracy, m.n
    );
    // The floor guards against keyword edits that break whole categories; the classifier
    // tiers are measured by their own benchmark.
    assert!(m.macro_f1 >= 0.5, "macro-F1 {:.3}", m.macro_f1);
}

#[test]
fn bad_corpus_rows_are_refused_by_row() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.csv");
    std::fs::write(
        &path,
        "text,category,voice\nfine,lost,customer\nhmm,misplaced,customer\n",
    )
    .unwrap();
    let err = load_notes(&path).unwrap_err().to_string();
    assert!(err.contains("row 2: unknown category `misplaced`"), "{err}");
    std::fs::write(&path, "text,category\n,lost\n").unwrap();
    let err = load_notes(&path).unwrap_err().to_string();
    assert!(err.contains("row 1: empty `text`"), "{err}");
}

#[test]
fn the_small_classifier_learns_the_corpus_deterministically_and_round_trips() {
    use dispatch_risk_training::exceptions::{fit_bag, BagTrainConfig, NoteBag};

    let (train, valid) = (corpus("train"), corpus("valid"));
    let config = BagTrainConfig::default();
    let start = std::time::Instant::now();
    let model = fit_bag(&train, &config).unwrap();
    let fit_s = start.elapsed().as_secs_f64();
    let texts: Vec<&str> = valid.iter().map(|n| n.text.as_str()).collect();
    let probs = model.predict(&texts).unwrap();
    let m = ClassMetrics::of(&valid, &model.categories(&texts).unwrap());
    eprintln!(
        "small classifier on data/notes/valid.csv: macro-F1 {:.3}, accuracy {:.3}, n {} (fit {fit_s:.1}s)",
        m.macro_f1, m.accuracy, m.n
    );
    // Better than the keyword rules on the same notes, or it has no reason to exist.
    let rules = KeywordRules::new(Taxonomy::default());
    let by_rules: Vec<String> = valid
        .iter()
        .map(|n| rules.classify(&n.text).category)
        .collect();
    assert!(m.macro_f1 > ClassMetrics::of(&valid, &by_rules).macro_f1);
    for p in &probs {
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-4);
    }

    // The same corpus and seed give the same model; saved tensors load back to it.
    let again = fit_bag(&train, &config).unwrap();
    assert_eq!(again.predict(&texts).unwrap(), probs);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.safetensors");
    candle_core::safetensors::save(&model.tensors(), &path).unwrap();
    let loaded = candle_core::safetensors::load(&path, &candle_core::Device::Cpu).unwrap();
    let back = NoteBag::load(model.config.clone(), &loaded).unwrap();
    assert_eq!(back.predict(&texts).unwrap(), probs);
    let mut broken = loaded.clone();
    broken.remove("bias");
    assert!(NoteBag::load(model.config.clone(), &broken).is_err());
}
