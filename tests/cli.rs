//! The `dispatch-risk` binary end to end: generate, train, evaluate and score as an analyst runs
//! them, and the exit codes and messages for bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dispatch-risk"))
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("the binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(o: Output) -> Output {
    assert!(
        o.status.success(),
        "command failed: {}\n{}",
        o.status,
        stderr(&o)
    );
    o
}

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn generate_is_deterministic_per_seed() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        dir.path().join("a.csv"),
        dir.path().join("b.csv"),
        dir.path().join("c.csv"),
    );
    ok(run(&[
        "generate",
        "--rows",
        "2000",
        "--seed",
        "9",
        "--out",
        s(&a),
    ]));
    ok(run(&[
        "generate",
        "--rows",
        "2000",
        "--seed",
        "9",
        "--out",
        s(&b),
    ]));
    ok(run(&[
        "generate",
        "--rows",
        "2000",
        "--seed",
        "10",
        "--out",
        s(&c),
    ]));
    let (a, b, c) = (
        std::fs::read(a).unwrap(),
        std::fs::read(b).unwrap(),
        std::fs::read(c).unwrap(),
    );
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_eq!(
        a.iter().filter(|&&x| x == b'\n').count(),
        2001,
        "header plus one line per row"
    );
}

#[test]
fn train_evaluate_and_score_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("h.parquet");
    let model = dir.path().join("model");
    ok(run(&[
        "generate",
        "--rows",
        "6000",
        "--seed",
        "4",
        "--out",
        s(&history),
    ]));
    let out = ok(run(&[
        "train",
        "--history",
        s(&history),
        "--valid-from",
        "2024-04-01",
        "--out",
        s(&model),
        "--quiet",
    ]));
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(summary.contains("booster (validation)"), "{summary}");

    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(model.join("manifest.json")).unwrap()).unwrap();
    let valid = &manifest["metrics"]["delay_risk"]["valid"];
    assert!(valid["auc"].as_f64().unwrap() > 0.6, "{valid}");
    assert!(valid["n"].as_u64().unwrap() > 500);
    assert!(manifest["data"]["source"]["fingerprint"]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));
    assert!(
        manifest["feature_schema"]["names"]
            .as_array()
            .unwrap()
            .len()
            > 20
    );

    let eval = ok(run(&[
        "evaluate",
        "--model",
        s(&model),
        "--history",
        s(&history),
        "--json",
    ]));
    let eval: serde_json::Value = serde_json::from_slice(&eval.stdout).unwrap();
    let auc = eval["metrics"]["delay_risk"]["auc"].as_f64().unwrap();
    assert!(auc > 0.6 && auc <= 1.0, "{eval}");
    assert_eq!(eval["model_version"], manifest["version"]);

    let scores = dir.path().join("scores.csv");
    ok(run(&[
        "score",
        "--model",
        s(&model),
        "--input",
        s(&history),
        "--output",
        s(&scores),
    ]));
    let text = std::fs::read_to_string(&scores).unwrap();
    let mut lines = text.lines();
    assert!(lines
        .next()
        .unwrap()
        .starts_with("shipment_id,delay_risk,risk_band,top_factors"));
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 6000);
    let bands = ["low", "medium", "high", "critical"];
    assert!(rows
        .iter()
        .all(|r| bands.iter().any(|b| r.contains(&format!(",{b},")))));
}

#[test]
fn the_committed_default_model_scores_the_committed_sample_and_an_odoo_export() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s.csv");
    ok(run(&[
        "score",
        "--model",
        s(&repo("models/default")),
        "--input",
        s(&repo("data/samples/history_sample.csv")),
        "--output",
        s(&out),
    ]));
    let path_scores = std::fs::read_to_string(&out).unwrap();
    assert!(path_scores.lines().count() > 1000);
    let header = path_scores.lines().next().unwrap();
    assert!(header.contains("recommended_carrier") && header.contains("runner_up_carrier"));
    let with_carrier = path_scores
        .lines()
        .skip(1)
        // Without a recommendation the four carrier columns are empty.
        .filter(|l| !l.ends_with(",,,,"))
        .count();
    assert!(
        with_carrier > 1000,
        "rows with a recommendation: {with_carrier}"
    );
    assert!(path_scores.lines().nth(1).unwrap().contains("contribution"));

    let odoo = dir.path().join("odoo.csv");
    ok(run(&[
        "score",
        "--model",
        s(&repo("models/default")),
        "--input",
        s(&repo("data/samples/odoo_stock_picking_export.csv")),
        "--profile",
        s(&repo("data/profiles/odoo_stock_picking.toml")),
        "--output",
        s(&odoo),
    ]));
    let text = std::fs::read_to_string(&odoo).unwrap();
    assert_eq!(text.lines().count(), 6, "{text}");
    assert!(
        text.contains("WH/OUT/00104"),
        "the open shipment is scored too"
    );
    // Exact SHAP attributes differently but must give the same risks, row for row.
    let shap = dir.path().join("shap.csv");
    ok(run(&[
        "score",
        "--model",
        s(&repo("models/default")),
        "--input",
        s(&repo("data/samples/odoo_stock_picking_export.csv")),
        "--profile",
        s(&repo("data/profiles/odoo_stock_picking.toml")),
        "--output",
        s(&shap),
        "--factors",
        "shap",
    ]));
    let id_and_risk = |text: &str| -> Vec<String> {
        text.lines()
            .map(|l| l.splitn(3, ',').take(2).collect::<Vec<_>>().join(","))
            .collect()
    };
    assert_eq!(
        id_and_risk(&text),
        id_and_risk(&std::fs::read_to_string(&shap).unwrap())
    );
}

#[test]
fn bad_input_exits_2_with_a_message_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m");
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let expect_2 = |o: Output, needle: &str| {
        assert_eq!(o.status.code(), Some(2), "expected exit 2: {}", stderr(&o));
        assert!(
            stderr(&o).contains(needle),
            "expected `{needle}` in: {}",
            stderr(&o)
        );
    };

    let missing = write("missing.csv", "shipment_id,scheduled_date,delivered_at,carrier,warehouse,destination\nA,2024-01-01,2024-01-02,X,W,D\n");
    expect_2(
        run(&["train", "--history", s(&missing), "--out", s(&model)]),
        "missing required column `date_deadline`",
    );

    let bad_date = write(
        "bad_date.csv",
        "shipment_id,scheduled_date,date_deadline,delivered_at,carrier,warehouse,destination\nA,2024-01-01,2024-01-03,2024-01-02,X,W,D\nB,2024-01-01,tomorrow,2024-01-02,X,W,D\n",
    );
    expect_2(
        run(&["train", "--history", s(&bad_date), "--out", s(&model)]),
        "row 2, column `date_deadline`",
    );

    let rates = write("rates.csv", "Carrier,orig_port_cd\nV1,P1\n");
    expect_2(
        run(&[
            "train",
            "--history",
            s(&repo("data/samples/history_sample.csv")),
            "--rates",
            s(&rates),
            "--out",
            s(&model),
        ]),
        "missing rate column `dest_port_cd`",
    );

    let empty = write("empty.csv", "");
    expect_2(
        run(&["train", "--history", s(&empty), "--out", s(&model)]),
        "empty",
    );

    expect_2(
        run(&[
            "train",
            "--history",
            s(&dir.path().join("nope.csv")),
            "--out",
            s(&model),
        ]),
        "nope.csv",
    );

    let taxonomy = write(
        "taxonomy.toml",
        "[[category]]\nname = \"misplaced\"\nmeaning = \"x\"\nowner = \"ops\"\nseverity = \"low\"\n",
    );
    expect_2(
        run(&[
            "train",
            "--history",
            s(&repo("data/samples/history_sample.csv")),
            "--taxonomy",
            s(&taxonomy),
            "--out",
            s(&model),
        ]),
        "unknown category `misplaced`",
    );

    let config = write("bad.toml", "[booster]\nlearning_rate = 2.0\n");
    expect_2(
        run(&[
            "train",
            "--history",
            s(&repo("data/samples/history_sample.csv")),
            "--config",
            s(&config),
            "--out",
            s(&model),
        ]),
        "learning_rate",
    );
    let unknown = write("unknown.toml", "[booster]\nleaves = 3\n");
    expect_2(
        run(&[
            "train",
            "--history",
            s(&repo("data/samples/history_sample.csv")),
            "--config",
            s(&unknown),
            "--out",
            s(&model),
        ]),
        "leaves",
    );
    expect_2(
        run(&[
            "train",
            "--history",
            s(&bad_date),
            "--valid-from",
            "soon",
            "--out",
            s(&model),
        ]),
        "soon",
    );
    expect_2(
        run(&[
            "score",
            "--model",
            s(dir.path()),
            "--input",
            s(&bad_date),
            "--output",
            s(&model),
        ]),
        "manifest.json",
    );
    expect_2(
        run(&["generate", "--rows", "0", "--out", s(&model)]),
        "rows",
    );
    assert!(!model.exists(), "failed commands leave no artifact behind");
}

/// `users` and `audit` as an operator runs them: a user with a password from stdin and a
/// token, each change audited; `audit verify` passes, then names the row edited behind the
/// service's back (trigger dropped first), exiting 1; a bad email exits 2.
#[test]
fn users_and_audit_commands_record_and_verify_the_trail() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("ops.sqlite3").display());
    let mut child = bin()
        .args([
            "users",
            "--database-url",
            &url,
            "create",
            "--name",
            "Ann",
            "--email",
            "ann@example.com",
        ])
        .args(["--roles", "credit_controller", "--password-stdin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"a long password here\n")
        .unwrap();
    assert!(child.wait_with_output().unwrap().status.success());
    let token = ok(run(&[
        "users",
        "--database-url",
        &url,
        "token",
        "--email",
        "ann@example.com",
    ]));
    let token = String::from_utf8_lossy(&token.stdout)
        .lines()
        .last()
        .unwrap()
        .to_string();
    assert!(token.starts_with("dru_"), "{token}");
    let verified = ok(run(&["audit", "--database-url", &url, "verify"]));
    assert!(String::from_utf8_lossy(&verified.stdout).contains("intact: 2 rows"));
    let bad = run(&[
        "users",
        "--database-url",
        &url,
        "create",
        "--name",
        "X",
        "--email",
        "bad",
        "--roles",
        "r",
    ]);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    assert!(stderr(&bad).contains("not an email address"));

    let path = dir.path().join("ops.sqlite3");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "DROP TRIGGER audit_no_update; UPDATE audit SET actor_name = 'mallory' WHERE seq = 1;",
    )
    .unwrap();
    drop(conn);
    let broken = run(&["audit", "--database-url", &url, "verify"]);
    assert_eq!(broken.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&broken.stdout).contains("broken at row 1"),
        "{}",
        String::from_utf8_lossy(&broken.stdout)
    );
}
