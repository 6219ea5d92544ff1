//! Exception-note classification on the labelled corpus: each tier's quality on the validation
//! notes and on a voice held out from training, and its speed in batches and for one note.
//! `cargo bench --bench notes` (bars: macro-F1 >= 0.90 encoder tier, >= 0.85 small model;
//! small model >= 20,000 notes/s; encoder tier >= 100 notes/s in batches, one note < 30 ms).
//! The encoder tier runs when `scripts/fetch-encoder` has fetched its weights.

use std::path::Path;
use std::time::Instant;

use dispatch_risk_training::exceptions::{
    load_notes, read_encoder, train_notes, ClassMetrics, EncoderConfig, ExceptionClassifier,
    KeywordRules, LabelledNote, NoteText, NotesData, NotesTrainConfig, Taxonomy, TierMetrics,
    DEFAULT_ENCODER,
};

fn main() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let data = NotesData {
        train: load_notes(&repo.join("data/notes/train.csv")).expect("train notes"),
        valid: load_notes(&repo.join("data/notes/valid.csv")).expect("valid notes"),
    };
    let config = NotesTrainConfig::default();
    let rules = KeywordRules::new(Taxonomy::default());
    let encoder_dir = repo.join("models/encoders").join(DEFAULT_ENCODER);
    let encoder = encoder_dir
        .join("model.safetensors")
        .exists()
        .then(|| read_encoder(&encoder_dir, EncoderConfig::default()).expect("encoder loads"));
    if encoder.is_none() {
        println!("encoder tier skipped: run scripts/fetch-encoder first");
    }
    let trained = train_notes(
        &data,
        &config,
        encoder.as_ref().map(|(e, r)| (e, r.clone())),
        &rules,
    )
    .expect("trains");
    let m = &trained.metrics;
    println!(
        "corpus: {} training notes, {} validation notes",
        m.train_notes, m.valid_notes
    );
    let show = |name: &str, t: &TierMetrics| {
        println!(
            "{name}: macro-F1 {:.3} accuracy {:.3} | temperature {:.2}, ECE {:.3} -> {:.3} | fit {:.1}s",
            t.valid.macro_f1, t.valid.accuracy, t.temperature, t.ece_raw, t.ece_calibrated, t.fit_seconds
        )
    };
    show("small model", &m.small_model);
    if let Some(e) = &m.encoder {
        show("encoder tier", e);
    }
    println!(
        "keyword rules: macro-F1 {:.3} accuracy {:.3}",
        m.rules.macro_f1, m.rules.accuracy
    );

    // Generalization: for each voice, train on the other two (both splits) and test on it.
    let all: Vec<LabelledNote> = data.train.iter().chain(&data.valid).cloned().collect();
    for voice in ["customer", "carrier", "dispatcher"] {
        let (held, rest): (Vec<_>, Vec<_>) = all.iter().cloned().partition(|n| n.voice == voice);
        // The held-out voice is the validation set: calibration never changes the winner, so
        // the macro-F1 below is the uncalibrated model's.
        let split = NotesData {
            train: rest,
            valid: held.clone(),
        };
        let t = train_notes(
            &split,
            &config,
            encoder.as_ref().map(|(e, r)| (e, r.clone())),
            &rules,
        )
        .expect("trains");
        let by_rules: Vec<String> = held
            .iter()
            .map(|n| rules.classify(&n.text).category)
            .collect();
        println!(
            "held-out voice {voice} ({} notes): small model macro-F1 {:.3}{} | keyword rules {:.3}",
            held.len(),
            t.metrics.small_model.valid.macro_f1,
            t.metrics
                .encoder
                .as_ref()
                .map(|e| format!(" | encoder tier {:.3}", e.valid.macro_f1))
                .unwrap_or_default(),
            ClassMetrics::of(&held, &by_rules).macro_f1
        );
    }

    let notes: Vec<NoteText> = data
        .valid
        .iter()
        .map(|n| NoteText::parse(&n.text).expect("corpus notes are not empty"))
        .collect();
    let small = ExceptionClassifier::new(Taxonomy::default()).with_small_model(trained.small_model);
    speed("small model", &small, &notes, 1000, 3.0);
    if let (Some((encoder, _)), Some((head, _))) = (encoder, trained.encoder_head) {
        let tier = ExceptionClassifier::new(Taxonomy::default()).with_encoder(encoder, head);
        speed("encoder tier", &tier, &notes, 256, 10.0);
    }
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed().as_secs_f64() < 1.0 {
        for t in &notes {
            rules.classify(t.as_str());
            n += 1;
        }
    }
    println!(
        "keyword rules: {:.0} notes/s",
        n as f64 / start.elapsed().as_secs_f64()
    );
}

/// Notes per second in batches of `batch` (the validation notes repeated), and the latency of
/// one note at a time over every validation note.
fn speed(name: &str, c: &ExceptionClassifier, notes: &[NoteText], batch: usize, secs: f64) {
    let batch: Vec<NoteText> = notes.iter().cycle().take(batch).cloned().collect();
    c.classify(&batch[..8]);
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed().as_secs_f64() < secs {
        n += c.classify(&batch).len();
    }
    let per_s = n as f64 / start.elapsed().as_secs_f64();
    let mut single: Vec<f64> = notes
        .iter()
        .map(|t| {
            let start = Instant::now();
            c.classify_one(t);
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    single.sort_by(f64::total_cmp);
    let q = |p: f64| single[((single.len() - 1) as f64 * p) as usize];
    println!(
        "{name}: {per_s:.0} notes/s in batches of {}; one note p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        batch.len(),
        q(0.5),
        q(0.99),
        q(1.0)
    );
}
