//! The analysts' notebook, executed against the committed default model so it cannot rot.
//! Needs Python with nbconvert, pandas and pyarrow; without them the test says it was skipped,
//! unless `REQUIRE_NOTEBOOK=1` (CI, which installs them) makes that a failure.

use std::path::Path;
use std::process::Command;

#[test]
fn the_exploration_notebook_runs_on_the_default_model() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let ready = Command::new("python3")
        .args([
            "-c",
            "import nbconvert, nbclient, ipykernel, pandas, pyarrow",
        ])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ready {
        assert!(
            std::env::var("REQUIRE_NOTEBOOK").is_err(),
            "REQUIRE_NOTEBOOK is set but nbconvert, pandas or pyarrow is missing"
        );
        eprintln!(
            "skipped: python3 with nbconvert, ipykernel, pandas and pyarrow is not installed"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("python3")
        .args(["-m", "nbconvert", "--to", "notebook", "--execute"])
        .arg("--output-dir")
        .arg(dir.path())
        .arg(repo.join("notebooks/explore_training_run.ipynb"))
        .env("MODEL_DIR", repo.join("models/default"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the notebook failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let executed = std::fs::read_to_string(dir.path().join("explore_training_run.ipynb")).unwrap();
    let nb: serde_json::Value = serde_json::from_str(&executed).unwrap();
    let code_cells: Vec<&serde_json::Value> = nb["cells"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["cell_type"] == "code")
        .collect();
    assert!(code_cells.len() >= 6);
    for c in code_cells {
        assert!(c["execution_count"].is_number(), "a cell did not run");
        assert!(
            c["outputs"]
                .as_array()
                .unwrap()
                .iter()
                .all(|o| o["output_type"] != "error"),
            "a cell raised: {c}"
        );
    }
}
