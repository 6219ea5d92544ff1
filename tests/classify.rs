//! `dispatch-risk classify` and `train --notes` end to end: one note, a CSV in bulk with bad
//! rows in it, the tiers falling back, and the committed default model's classifier.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dispatch-risk"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(o: Output) -> Output {
    assert!(o.status.success(), "failed: {}\n{}", o.status, stderr(&o));
    o
}

fn fails_with(o: Output, code: i32, needle: &str) {
    assert_eq!(o.status.code(), Some(code), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(needle),
        "{needle:?} not in: {}",
        stderr(&o)
    );
}

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn answer(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).expect("a JSON answer")
}

#[test]
fn the_default_model_classifies_a_note_with_its_best_tier() {
    let model = repo("models/default");
    let encoder_fetched = repo("models/encoders/all-minilm-l6-v2/model.safetensors").exists();
    let o = ok(run(&[
        "classify",
        "--model",
        s(&model),
        "Shipment held at customs: commercial invoice missing, broker needs EORI",
    ]));
    let a = answer(&o);
    assert_eq!(a["category"], "customs_documents");
    assert_eq!(a["owner"], "compliance");
    assert_eq!(
        a["tier"],
        if encoder_fetched {
            "encoder"
        } else {
            "small_model"
        }
    );
    assert_eq!(a["alternatives"].as_array().unwrap().len(), 2);
    let c = a["confidence"].as_f64().unwrap();
    assert!(c > a["alternatives"][0]["confidence"].as_f64().unwrap());
    assert_eq!(a["needs_review"], c < 0.5);
    assert_eq!(a["truncated"], false);

    // The manifest carries the classifier's validation figures, above the rules'.
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(model.join("manifest.json")).unwrap()).unwrap();
    let valid = &manifest["metrics"]["exceptions"]["valid"];
    let valid_notes = csv::Reader::from_path(repo("data/notes/valid.csv"))
        .unwrap()
        .records()
        .count();
    assert_eq!(valid["n"], valid_notes);
    let rules = manifest["exceptions"]["tiers"]["rules"]["macro_f1"]
        .as_f64()
        .unwrap();
    assert!(valid["macro_f1"].as_f64().unwrap() > rules, "{valid}");
    let report = std::fs::read_to_string(model.join("report.html")).unwrap();
    assert!(report.contains(r#"id="exception-confusion""#));

    // Edited owners apply at run time, without retraining.
    let dir = tempfile::tempdir().unwrap();
    let taxonomy = dir.path().join("taxonomy.toml");
    let text = std::fs::read_to_string(repo("policies/exception_taxonomy.toml")).unwrap();
    std::fs::write(
        &taxonomy,
        text.replace("owner = \"compliance\"", "owner = \"customs_desk\""),
    )
    .unwrap();
    let o = ok(run(&[
        "classify",
        "--model",
        s(&model),
        "--taxonomy",
        s(&taxonomy),
        "customs hold, missing commercial invoice",
    ]));
    assert_eq!(answer(&o)["owner"], "customs_desk");
}

#[test]
fn bulk_classification_reports_bad_rows_and_keeps_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("notes.csv");
    let output = dir.path().join("answers.csv");
    // A long complaint, as pasted mail threads are: over 10,000 characters.
    let long =
        "The pallet arrived damaged: crushed cartons, broken glass and wet boxes. ".repeat(150);
    let mut bytes = b"id,text,category\n".to_vec();
    bytes.extend_from_slice(b"1,\"drv called, cnee closed, retry tmrw\",x\n");
    bytes.extend_from_slice(b"2,   ,x\n");
    bytes.extend_from_slice(b"3,parcel d\xe9truit \xff,x\n");
    bytes.extend_from_slice(format!("4,\"{long}\",x\n").as_bytes());
    bytes.extend_from_slice(b"5,Truck broke down on the A7,x\n");
    std::fs::write(&input, bytes).unwrap();
    let o = ok(run(&[
        "classify",
        "--model",
        s(&repo("models/default")),
        "--input",
        s(&input),
        "--output",
        s(&output),
        "--batch",
        "2",
    ]));
    let err = stderr(&o);
    assert!(err.contains("classified 3 of 5 notes"), "{err}");
    assert!(err.contains("row 2 (line 3): the note is empty"), "{err}");
    assert!(
        err.contains("row 3 (line 4): invalid UTF-8 after 8 valid bytes of `text`"),
        "{err}"
    );

    let mut reader = csv::Reader::from_path(&output).unwrap();
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(
        header,
        [
            "id",
            "text",
            "input_category",
            "category",
            "confidence",
            "owner",
            "severity",
            "tier",
            "needs_review",
            "truncated",
            "error"
        ]
    );
    let rows: Vec<csv::ByteRecord> = reader.byte_records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 5, "every row is written, classified or not");
    let field = |r: usize, name: &str| {
        let i = header.iter().position(|h| h == name).unwrap();
        String::from_utf8_lossy(&rows[r][i]).into_owned()
    };
    assert_eq!(field(0, "category"), "recipient_unavailable");
    assert_eq!(field(0, "owner"), "customer_service");
    assert_eq!(field(1, "category"), "");
    assert!(field(1, "error").contains("empty"));
    // The bad bytes are passed through untouched.
    assert_eq!(&rows[2][1], b"parcel d\xe9truit \xff");
    assert!(field(2, "error").contains("invalid UTF-8"));
    assert_eq!(field(3, "truncated"), "true");
    assert_eq!(field(3, "category"), "damaged");
    assert_eq!(field(4, "category"), "vehicle_issue");
    assert_eq!(field(4, "truncated"), "false");
    assert!(field(4, "confidence").parse::<f64>().unwrap() > 0.0);
}

#[test]
fn without_a_model_the_rules_answer_and_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let o = ok(run(&[
        "classify",
        "--model",
        s(dir.path()),
        "Parcel LOST in transit",
    ]));
    let a = answer(&o);
    assert_eq!(
        (a["tier"].as_str(), a["category"].as_str()),
        (Some("rules"), Some("lost"))
    );
    assert_eq!(a["matched"][0], "lost");
    assert!(stderr(&o).contains("no exception model"), "{}", stderr(&o));
}

#[test]
fn bad_classify_input_exits_2_naming_the_problem() {
    let model = repo("models/default");
    fails_with(
        run(&["classify", "--model", s(&model), "  "]),
        2,
        "the note is empty",
    );
    fails_with(
        run(&["classify", "--model", "/no/such/dir", "lost parcel"]),
        2,
        "no such model directory",
    );
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    std::fs::write(&input, "note,id\nlost,1\n").unwrap();
    let out = dir.path().join("out.csv");
    fails_with(
        run(&[
            "classify",
            "--model",
            s(&model),
            "--input",
            s(&input),
            "--output",
            s(&out),
        ]),
        2,
        "no column `text` (columns: note, id)",
    );
    fails_with(
        run(&["classify", "--model", s(&model), "--input", s(&input)]),
        2,
        "--output",
    );
}

#[test]
fn train_notes_alone_writes_a_classifier_artifact_with_its_report() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("quick.toml");
    std::fs::write(&config, "[notes.small_model]\nepochs = 8\n").unwrap();
    let out = dir.path().join("notes-model");
    let o = ok(run(&[
        "train",
        "--notes",
        s(&repo("data/notes/train.csv")),
        "--config",
        s(&config),
        "--out",
        s(&out),
        "--json",
    ]));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let small = &summary["exceptions"]["small_model"]["valid"];
    // Every fourth note of each category is held out.
    let train_rows = std::fs::read_to_string(repo("data/notes/train.csv"))
        .unwrap()
        .lines()
        .count();
    assert!(small["n"].as_u64().unwrap() as usize > (train_rows - 1) / 5);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    let valid = &manifest["metrics"]["exceptions"]["valid"];
    assert_eq!(valid["n"], small["n"]);
    assert_eq!(valid["macro_f1"], small["macro_f1"]);
    assert!(valid["accuracy"].as_f64().unwrap() > 0.5, "{valid}");
    let report = std::fs::read_to_string(out.join("report.html")).unwrap();
    for id in [
        "exception-tiers",
        "exception-classes",
        "exception-confusion",
    ] {
        assert!(report.contains(&format!(r#"id="{id}""#)), "{id}");
    }
    let a = answer(&ok(run(&[
        "classify",
        "--model",
        s(&out),
        "the vase arrived smashed to pieces",
    ])));
    assert_eq!(
        (a["tier"].as_str(), a["category"].as_str()),
        (Some("small_model"), Some("damaged"))
    );

    // A bad notes file and a bad parameter are refused before anything is written.
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "text,category\nparcel lost,lost\nhmm,misplaced\n").unwrap();
    fails_with(
        run(&[
            "train",
            "--notes",
            s(&bad),
            "--out",
            s(&dir.path().join("x")),
        ]),
        2,
        "row 2: unknown category `misplaced`",
    );
    std::fs::write(&config, "[notes.small_model]\nepochs = 0\n").unwrap();
    fails_with(
        run(&[
            "train",
            "--notes",
            s(&bad),
            "--config",
            s(&config),
            "--out",
            s(&dir.path().join("y")),
        ]),
        2,
        "notes.dim",
    );
    assert!(!dir.path().join("x").exists() && !dir.path().join("y").exists());
    fails_with(
        run(&[
            "train",
            "--notes",
            s(&repo("data/notes/train.csv")),
            "--encoder",
            s(&dir.path().join("none")),
            "--out",
            s(&dir.path().join("z")),
        ]),
        2,
        "scripts/fetch-encoder",
    );
}
