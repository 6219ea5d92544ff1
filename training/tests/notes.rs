//! The labelled exception-note corpus, and the classifier's tiers trained on it: the keyword
//! rules, the small model and (where its weights were fetched) the encoder tier.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use dispatch_risk_training::artifact::ArtifactWriter;
use dispatch_risk_training::exceptions::{
    files, load_classifier, load_notes, read_encoder, train_notes, Answer, Calibrated,
    ClassMetrics, EncoderConfig, EncoderRef, ExceptionClassifier, KeywordRules, LabelledNote,
    LoadedClassifier, NoteBag, NoteText, NotesData, NotesTrainConfig, SentenceEncoder, Taxonomy,
    Tier, TrainedNotes, CATEGORIES, DEFAULT_ENCODER,
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

/// The default training on the corpus, once per test binary (it takes a while).
fn trained(with_encoder: bool) -> &'static TrainedNotes {
    static SMALL: OnceLock<TrainedNotes> = OnceLock::new();
    static BOTH: OnceLock<TrainedNotes> = OnceLock::new();
    let cell = if with_encoder { &BOTH } else { &SMALL };
    cell.get_or_init(|| {
        let data = NotesData {
            train: corpus("train"),
            valid: corpus("valid"),
        };
        let encoder = with_encoder.then(|| encoder().expect("encoder weights"));
        train_notes(
            &data,
            &NotesTrainConfig::default(),
            encoder.as_ref().map(|(e, r)| (e, r.clone())),
            &KeywordRules::new(Taxonomy::default()),
        )
        .unwrap()
    })
}

fn encoder_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../models/encoders")
        .join(DEFAULT_ENCODER)
}

/// The fetched encoder, or `None` (the test says it skipped) where `scripts/fetch-encoder` was
/// not run; CI sets REQUIRE_ENCODER so that there a missing encoder fails.
fn encoder() -> Option<(SentenceEncoder, EncoderRef)> {
    let dir = encoder_dir();
    if !dir.join("model.safetensors").exists() {
        assert!(
            std::env::var_os("REQUIRE_ENCODER").is_none(),
            "REQUIRE_ENCODER is set but {} holds no encoder",
            dir.display()
        );
        eprintln!(
            "skipped: no encoder in {} (scripts/fetch-encoder)",
            dir.display()
        );
        return None;
    }
    Some(read_encoder(&dir, EncoderConfig::default()).unwrap())
}

fn write_artifact(trained: &TrainedNotes, dir: &Path) {
    let mut w = ArtifactWriter::create(dir).unwrap();
    trained.write(&mut w).unwrap();
    w.finish(
        "test".into(),
        "2026-01-01T00:00:00Z".into(),
        Default::default(),
    )
    .unwrap();
}

fn notes(texts: &[&str]) -> Vec<NoteText> {
    texts.iter().map(|t| NoteText::parse(t).unwrap()).collect()
}

#[test]
fn the_small_classifier_beats_the_rules_calibrates_and_round_trips() {
    let t = trained(false);
    let m = &t.metrics;
    eprintln!(
        "small classifier on data/notes/valid.csv: macro-F1 {:.3}, accuracy {:.3}, n {}, T {:.2}, ECE {:.3} -> {:.3} (fit {:.1}s); rules {:.3}",
        m.small_model.valid.macro_f1, m.small_model.valid.accuracy, m.small_model.valid.n,
        m.small_model.temperature, m.small_model.ece_raw, m.small_model.ece_calibrated,
        m.small_model.fit_seconds, m.rules.macro_f1
    );
    // Better than the keyword rules on the same notes, or it has no reason to exist.
    assert!(m.small_model.valid.macro_f1 > m.rules.macro_f1 + 0.1);
    assert_eq!(m.small_model.valid.n, corpus("valid").len());
    assert_eq!(m.preferred, "small_model");

    // Written and loaded back, it gives the same answers as in memory.
    let dir = tempfile::tempdir().unwrap();
    write_artifact(t, dir.path());
    let LoadedClassifier {
        classifier: loaded,
        problems,
        ..
    } = load_classifier(dir.path(), None, Taxonomy::default());
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(loaded.tier(), Tier::SmallModel);
    let sample = notes(&[
        "drv called, cnee closed, retry tmrw",
        "Shipment held at customs: commercial invoice missing",
        "where is my parcel?? tracking hasn't moved in 5 days",
        "the glass top arrived shattered",
    ]);
    let answers = loaded.classify(&sample);
    let in_memory = ExceptionClassifier::new(Taxonomy::default()).with_small_model(Calibrated {
        model: NoteBag::load(
            t.small_model.model.config.clone(),
            &t.small_model.model.tensors(),
        )
        .unwrap(),
        temperature: t.small_model.temperature,
    });
    assert_eq!(answers, in_memory.classify(&sample));
    assert_eq!(answers[1].category, "customs_documents");
    assert_eq!(answers[3].category, "damaged");
    let taxonomy = Taxonomy::default();
    for a in &answers {
        assert_eq!(a.tier, Tier::SmallModel);
        assert_eq!(a.alternatives.len(), 2);
        assert!(a.confidence >= a.alternatives[0].confidence);
        assert!(a.alternatives[0].confidence >= a.alternatives[1].confidence);
        assert!(
            a.confidence + a.alternatives[0].confidence + a.alternatives[1].confidence <= 1.0001
        );
        assert_eq!(a.owner, taxonomy.get(&a.category).unwrap().owner);
        assert_eq!(a.needs_review, a.confidence < taxonomy.review_threshold);
    }
    // A stricter threshold flags more answers for review.
    let strict = Taxonomy {
        review_threshold: 1.0,
        ..Taxonomy::default()
    };
    let LoadedClassifier {
        classifier: strict, ..
    } = load_classifier(dir.path(), None, strict);
    let flagged = |a: &[Answer]| a.iter().filter(|a| a.needs_review).count();
    let strict_answers = strict.classify(&sample);
    assert!(flagged(&strict_answers) > flagged(&answers));
    assert!(strict_answers
        .iter()
        .all(|a| a.needs_review || a.confidence >= 0.9999));

    // A corrupted tensor file is refused and the rules answer, saying so.
    let file = dir.path().join(files::SMALL_MODEL);
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&file, bytes).unwrap();
    let LoadedClassifier {
        classifier: fallback,
        problems,
        ..
    } = load_classifier(dir.path(), None, Taxonomy::default());
    assert_eq!(fallback.tier(), Tier::Rules);
    assert!(problems[0].contains("checksum"), "{problems:?}");
    assert_eq!(fallback.classify(&sample)[3].tier, Tier::Rules);
}

#[test]
fn the_same_corpus_and_seed_give_the_same_small_model() {
    let data = NotesData {
        train: corpus("train")[..300].to_vec(),
        valid: corpus("valid")[..80].to_vec(),
    };
    let mut config = NotesTrainConfig::default();
    config.small_model.epochs = 5;
    let rules = KeywordRules::new(Taxonomy::default());
    let a = train_notes(&data, &config, None, &rules).unwrap();
    let b = train_notes(&data, &config, None, &rules).unwrap();
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write_artifact(&a, da.path());
    write_artifact(&b, db.path());
    for f in [files::SMALL_MODEL, files::SMALL_MODEL_CONFIG] {
        assert_eq!(
            std::fs::read(da.path().join(f)).unwrap(),
            std::fs::read(db.path().join(f)).unwrap(),
            "{f}"
        );
    }
    config.small_model.seed += 1;
    let c = train_notes(&data, &config, None, &rules).unwrap();
    let dc = tempfile::tempdir().unwrap();
    write_artifact(&c, dc.path());
    assert_ne!(
        std::fs::read(da.path().join(files::SMALL_MODEL)).unwrap(),
        std::fs::read(dc.path().join(files::SMALL_MODEL)).unwrap()
    );
}

#[test]
fn the_encoder_embeds_like_sentence_transformers_and_its_tier_loads_only_with_its_weights() {
    let Some((encoder, reference)) = encoder() else {
        return;
    };
    let texts = [
        "truck broke down on the motorway",
        "the lorry had an engine failure on the highway",
        "please send me a copy of the invoice",
    ];
    let e = encoder.embed(&texts).unwrap().to_vec2::<f32>().unwrap();
    let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    for v in &e {
        assert!((dot(v, v) - 1.0).abs() < 1e-4, "unit length");
    }
    // Paraphrases are closer than unrelated sentences.
    assert!(
        dot(&e[0], &e[1]) > dot(&e[0], &e[2]) + 0.2,
        "{} {}",
        dot(&e[0], &e[1]),
        dot(&e[0], &e[2])
    );
    // Padding in a batch does not change a note's vector.
    let alone = encoder
        .embed(&texts[..1])
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    assert!(alone[0]
        .iter()
        .zip(&e[0])
        .all(|(a, b)| (a - b).abs() < 1e-4));

    let t = trained(true);
    let enc = t.metrics.encoder.as_ref().unwrap();
    eprintln!(
        "encoder tier on data/notes/valid.csv: macro-F1 {:.3}, accuracy {:.3}, T {:.2} (fit {:.1}s); small model {:.3}",
        enc.valid.macro_f1, enc.valid.accuracy, enc.temperature, enc.fit_seconds,
        t.metrics.small_model.valid.macro_f1
    );
    assert!(enc.valid.macro_f1 > t.metrics.rules.macro_f1 + 0.1);
    assert_eq!(t.metrics.preferred, "encoder");
    assert_eq!(t.encoder_head.as_ref().unwrap().1, reference);

    // The artifact names its encoder; with the weights beside it the encoder tier answers.
    let root = tempfile::tempdir().unwrap();
    let artifact = root.path().join("v1");
    write_artifact(t, &artifact);
    let encoders = root.path().join("encoders");
    std::fs::create_dir_all(encoders.join(DEFAULT_ENCODER)).unwrap();
    for f in ["model.safetensors", "config.json", "tokenizer.json"] {
        std::fs::copy(
            encoder_dir().join(f),
            encoders.join(DEFAULT_ENCODER).join(f),
        )
        .unwrap();
    }
    let LoadedClassifier {
        classifier: c,
        problems,
        ..
    } = load_classifier(&artifact, None, Taxonomy::default());
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(c.tier(), Tier::Encoder);
    let a =
        c.classify_one(&NoteText::parse("Vehicle breakdown on route, delivery tomorrow").unwrap());
    assert_eq!(
        (a.tier, a.category.as_str()),
        (Tier::Encoder, "vehicle_issue")
    );

    // Other weights under the same name are refused; the small model answers instead.
    let weights = encoders.join(DEFAULT_ENCODER).join("model.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&weights, bytes).unwrap();
    let LoadedClassifier {
        classifier: c,
        problems,
        ..
    } = load_classifier(&artifact, None, Taxonomy::default());
    assert_eq!(c.tier(), Tier::SmallModel);
    assert!(
        problems[0].contains("not the ones the head was trained on"),
        "{problems:?}"
    );
    // No encoder folder at all: the same.
    let LoadedClassifier {
        classifier: c,
        problems,
        ..
    } = load_classifier(
        &artifact,
        Some(&root.path().join("none")),
        Taxonomy::default(),
    );
    assert_eq!(c.tier(), Tier::SmallModel);
    assert!(
        problems[0].contains("scripts/fetch-encoder"),
        "{problems:?}"
    );
}
