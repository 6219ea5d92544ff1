//! The training report in a real browser: `train` writes report.html, headless Chromium lays it
//! out, and every chart must have drawn something. Chromium is found on PATH (or `CHROMIUM`);
//! without it the test says it was skipped, unless `REQUIRE_BROWSER=1` (CI) makes that a failure.

mod common;

use std::path::Path;
use std::process::Command;

use common::chromium;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_dispatch-risk")
}

fn run(args: &[&str]) {
    let out = Command::new(bin()).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Appended to a copy of the page: measures what the browser laid out and writes it into the
/// DOM, which `--dump-dom` prints after scripts ran.
const PROBE: &str = r#"<script>
const out = [...document.querySelectorAll('svg.chart')].map(svg => {
  const box = svg.getBoundingClientRect();
  const marks = [...svg.querySelectorAll('polyline.series, rect.bar')]
    .map(m => m.getBBox()).filter(b => b.width > 0 || b.height > 0).length;
  return {id: svg.id, width: box.width, height: box.height, marks};
});
const pre = document.createElement('pre');
pre.id = 'probe';
// Split markers, so that the script's own text does not contain them.
pre.textContent = 'PRO' + 'BE[' + JSON.stringify(out) + ']PRO' + 'BE';
document.body.appendChild(pre);
</script></body>"#;

#[test]
fn the_report_renders_its_charts_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("h.csv");
    let model = dir.path().join("m");
    let s = |p: &Path| p.to_str().unwrap().to_string();
    run(&[
        "generate",
        "--rows",
        "4000",
        "--seed",
        "5",
        "--out",
        &s(&history),
    ]);
    run(&[
        "train",
        "--history",
        &s(&history),
        "--valid-from",
        "2024-03-15",
        "--out",
        &s(&model),
        "--quiet",
    ]);
    let html = std::fs::read_to_string(model.join("report.html")).unwrap();
    for id in [
        "roc",
        "reliability",
        "risk-distribution",
        "importance",
        "scorecards-chart",
    ] {
        assert!(html.contains(&format!("id=\"{id}\"")), "chart {id} missing");
    }
    assert!(html.contains("id=\"replay\"") && html.contains("reduction"));
    assert!(
        !html.contains("src=\"http") && !html.contains("href=\"http"),
        "the page loads nothing from the network"
    );

    let Some(browser) = chromium() else {
        assert!(
            std::env::var("REQUIRE_BROWSER").is_err(),
            "REQUIRE_BROWSER is set but no Chromium was found"
        );
        eprintln!("skipped: no Chromium on PATH (set CHROMIUM or install chromium)");
        return;
    };
    let probed = dir.path().join("probed.html");
    std::fs::write(&probed, html.replace("</body>", PROBE)).unwrap();
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--dump-dom",
        ])
        .arg(format!("file://{}", probed.display()))
        .output()
        .expect("runs chromium");
    let dom = String::from_utf8_lossy(&out.stdout);
    let json = dom
        .split_once("PROBE[")
        .and_then(|(_, rest)| rest.split_once("]PROBE"))
        .map(|(json, _)| json)
        .unwrap_or_else(|| panic!("no probe output: {}", String::from_utf8_lossy(&out.stderr)));
    let charts: Vec<serde_json::Value> = serde_json::from_str(json).unwrap();
    assert_eq!(charts.len(), 5, "{json}");
    for c in &charts {
        assert!(c["width"].as_f64().unwrap() > 100.0, "{c}");
        assert!(c["height"].as_f64().unwrap() > 50.0, "{c}");
        assert!(c["marks"].as_u64().unwrap() >= 1, "chart drew nothing: {c}");
    }
}
