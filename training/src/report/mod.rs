//! `report.html`: the page an analyst opens after `train`. One self-contained file (inline SVG
//! and CSS, no script, no network): the data summary, ROC and reliability curves, the risk
//! distribution, feature importance, carrier scorecards, the replay result and the exception
//! classifier's figures.

mod exceptions;
pub mod svg;

use std::fmt::Write;

use crate::carrier::replay::ReplayMetrics;
use crate::carrier::scorecard::{CardView, Level};
use crate::data::load::RejectedRow;
use crate::exceptions::NotesMetrics;
use crate::model::metrics::BinaryMetrics;
use svg::Series;

/// Predictions on the rows the report evaluates.
pub struct Evaluated<'a> {
    /// "validation" or "calibration slice".
    pub name: &'a str,
    pub labels: &'a [bool],
    pub model: &'a [f64],
    pub model_metrics: BinaryMetrics,
    /// The logistic baseline on the same rows, when it was evaluated there.
    pub baseline: Option<(&'a [f64], BinaryMetrics)>,
}

pub struct ReportData<'a> {
    pub version: &'a str,
    pub created_at: &'a str,
    pub source: &'a str,
    /// (label, count) rows of the data summary.
    pub counts: Vec<(&'a str, String)>,
    pub rejected: &'a [RejectedRow],
    pub evaluated: Evaluated<'a>,
    pub importance: &'a [(String, f64)],
    pub scorecards: &'a [CardView],
    pub replay: Option<ReplayMetrics>,
    /// The exception classifier, when the run trained it.
    pub exceptions: Option<&'a NotesMetrics>,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// (false positive rate, true positive rate) at every distinct threshold, at most ~200 points.
pub fn roc_points(labels: &[bool], probs: &[f64]) -> Vec<(f64, f64)> {
    let mut order: Vec<usize> = (0..probs.len()).collect();
    order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
    let pos = labels.iter().filter(|&&l| l).count().max(1) as f64;
    let neg = (labels.len() as f64 - pos).max(1.0);
    let (mut tp, mut fp) = (0.0, 0.0);
    let mut points = vec![(0.0, 0.0)];
    let step = (order.len() / 200).max(1);
    for (k, &i) in order.iter().enumerate() {
        if labels[i] {
            tp += 1.0;
        } else {
            fp += 1.0;
        }
        let last = k + 1 == order.len();
        if last || ((k + 1) % step == 0 && probs[order[k + 1]] != probs[i]) {
            points.push((fp / neg, tp / pos));
        }
    }
    points
}

/// (mean predicted, observed late rate) per decile of predicted risk with any rows.
pub fn reliability_points(labels: &[bool], probs: &[f64], bins: usize) -> Vec<(f64, f64)> {
    let mut sums = vec![(0.0, 0.0, 0usize); bins];
    for (&l, &p) in labels.iter().zip(probs) {
        let b = ((p.clamp(0.0, 1.0) * bins as f64) as usize).min(bins - 1);
        sums[b].0 += p;
        sums[b].1 += l as u8 as f64;
        sums[b].2 += 1;
    }
    sums.into_iter()
        .filter(|s| s.2 > 0)
        .map(|(p, l, n)| (p / n as f64, l / n as f64))
        .collect()
}

fn pct(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{:.1}%", v * 100.0))
}

fn hours(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.1}"))
}

/// The whole page.
pub fn render(d: &ReportData<'_>) -> String {
    let e = &d.evaluated;
    let mut roc = vec![Series {
        name: "chance",
        points: vec![(0.0, 0.0), (1.0, 1.0)],
        dashed: true,
    }];
    let model_name = format!("booster (AUC {:.3})", e.model_metrics.auc);
    roc.push(Series {
        name: &model_name,
        points: roc_points(e.labels, e.model),
        dashed: false,
    });
    let baseline_name = e
        .baseline
        .as_ref()
        .map(|(_, m)| format!("logistic baseline (AUC {:.3})", m.auc));
    if let (Some((probs, _)), Some(name)) = (&e.baseline, &baseline_name) {
        roc.push(Series {
            name,
            points: roc_points(e.labels, probs),
            dashed: false,
        });
    }
    let reliability = [
        Series {
            name: "perfect calibration",
            points: vec![(0.0, 0.0), (1.0, 1.0)],
            dashed: true,
        },
        Series {
            name: "booster, calibrated",
            points: reliability_points(e.labels, e.model, 10),
            dashed: false,
        },
    ];
    // The busiest carriers: a few hundred bars would bury the ones that matter.
    let mut carriers: Vec<&CardView> = d
        .scorecards
        .iter()
        .filter(|c| c.level == Level::Carrier)
        .collect();
    carriers.sort_by(|a, b| b.volume.cmp(&a.volume).then(a.carrier.cmp(&b.carrier)));
    carriers.truncate(30);
    let mut lanes: Vec<&CardView> = d
        .scorecards
        .iter()
        .filter(|c| c.level == Level::Lane)
        .collect();
    lanes.sort_by_key(|c| std::cmp::Reverse(c.volume));
    lanes.truncate(25);

    let mut h = page_head(d.version, d.created_at, d.source);
    h.push_str(r#"<h2>Data</h2><table id="data-summary">"#);
    for (k, v) in &d.counts {
        let _ = write!(h, "<tr><td>{}</td><td>{}</td></tr>", esc(k), esc(v));
    }
    h.push_str("</table>");
    if !d.rejected.is_empty() {
        let _ = write!(
            h,
            r#"<p class="note">{} rejected rows (first 20):</p><table id="rejected">"#,
            d.rejected.len()
        );
        for r in d.rejected.iter().take(20) {
            let _ = write!(h, "<tr><td>{}</td></tr>", esc(&r.to_string()));
        }
        h.push_str("</table>");
    }
    let _ = write!(
        h,
        r#"<h2>Delay risk on the {name} ({n} rows, {late:.1}% late)</h2><p class="note">AUC {auc:.3}, log loss {ll:.3}, Brier {br:.3}.</p><div class="grid">{roc}{rel}{hist}</div>"#,
        name = esc(e.name),
        n = e.model_metrics.n,
        late = e.model_metrics.positive_rate * 100.0,
        auc = e.model_metrics.auc,
        ll = e.model_metrics.logloss,
        br = e.model_metrics.brier,
        roc = svg::unit_lines(
            "roc",
            "ROC",
            "false positive rate",
            "true positive rate",
            &roc
        ),
        rel = svg::unit_lines(
            "reliability",
            "Reliability",
            "predicted risk",
            "observed late rate",
            &reliability
        ),
        hist = svg::histogram(
            "risk-distribution",
            "Risk distribution",
            "predicted risk",
            e.model,
            20
        ),
    );
    let _ = write!(
        h,
        "<h2>Feature importance</h2>{}",
        svg::bars(
            "importance",
            "Share of total gain",
            d.importance,
            &|v| format!("{:.1}%", v * 100.0)
        )
    );
    h.push_str("<h2>Carrier scorecards</h2>");
    let exception_mix = |c: &CardView| -> String {
        if c.exception_notes == 0 {
            return "-".into();
        }
        let mix: Vec<String> = c
            .exception_mix
            .iter()
            .map(|(category, share)| format!("{} {:.0}%", esc(category), share * 100.0))
            .collect();
        format!("{}: {}", c.exception_notes, mix.join(", "))
    };
    let on_time: Vec<(String, f64)> = carriers
        .iter()
        .map(|c| (c.carrier.clone(), c.on_time_shrunk))
        .collect();
    h.push_str(&svg::bars(
        "scorecards-chart",
        "On-time rate per carrier (shrunk), busiest 30",
        &on_time,
        &|v| format!("{:.1}%", v * 100.0),
    ));
    h.push_str(r#"<table id="scorecards"><tr><th>carrier</th><th>lane</th><th>volume</th><th>on time</th><th>on time (shrunk)</th><th>p50 lateness h</th><th>p90 lateness h</th><th>recent on time</th><th>trend</th><th>exception notes (top categories)</th></tr>"#);
    for c in carriers.iter().chain(&lanes) {
        let lane = match (&c.warehouse, &c.destination) {
            (Some(w), Some(dst)) => format!("{w} -> {dst}"),
            _ => "all lanes".into(),
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&c.carrier),
            esc(&lane),
            c.volume,
            pct(c.on_time_rate),
            pct(Some(c.on_time_shrunk)),
            hours(c.lateness_p50_hours),
            hours(c.lateness_p90_hours),
            pct(c.recent_on_time_rate),
            c.trend.map_or("-".into(), |t| format!("{:+.1} pts", t * 100.0)),
            exception_mix(c),
        );
    }
    h.push_str("</table>");
    h.push_str(r#"<h2>Carrier recommendation replay</h2>"#);
    match d.replay {
        Some(r) => {
            let _ = write!(
                h,
                r#"<table id="replay"><tr><td>validation rows on lanes with 2+ carriers</td><td>{}</td></tr><tr><td>rows that used the recommended carrier</td><td>{}</td></tr><tr><td>late rate, all</td><td>{}</td></tr><tr><td>late rate, recommendation followed</td><td>{}</td></tr><tr><td>reduction</td><td>{}</td></tr></table>"#,
                r.n,
                r.followed,
                pct(Some(r.late_rate_all)),
                pct(r.late_rate_followed),
                pct(r.reduction),
            );
        }
        None => h.push_str(
            r#"<p class="note" id="replay">No validation period (train with --valid-from to replay the recommender).</p>"#,
        ),
    }
    if let Some(m) = d.exceptions {
        h.push_str(&exceptions::section(m));
    }
    h.push_str("</body></html>\n");
    h
}

/// The page's head, style and title.
fn page_head(version: &str, created_at: &str, source: &str) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>dispatch-risk training report {v}</title><style>
body{{font-family:system-ui,sans-serif;margin:24px auto;max-width:1180px;color:#1f2328}}
h1{{font-size:22px}}h2{{font-size:17px;margin-top:28px;border-bottom:1px solid #d0d7de}}
table{{border-collapse:collapse;font-size:13px}}td,th{{padding:3px 10px;border-bottom:1px solid #eee;text-align:right}}
td:first-child,th:first-child{{text-align:left}}.grid{{display:flex;flex-wrap:wrap;gap:16px}}
svg .title{{font-size:14px;font-weight:600}}svg .tick{{font-size:11px}}svg .axis{{font-size:12px}}svg .legend{{font-size:12px}}
.note{{color:#57606a;font-size:13px}}table.confusion td{{text-align:center;min-width:22px}}
table.confusion th.col{{writing-mode:vertical-rl;transform:rotate(180deg);text-align:left;font-weight:normal}}</style></head><body>
<h1>Training report: model {v}</h1><p class="note">Created {c} from {s}.</p>"#,
        v = esc(version),
        c = esc(created_at),
        s = esc(source),
    );
    h
}

/// The report of a run that trained only the exception classifier.
pub fn render_exceptions_page(
    version: &str,
    created_at: &str,
    source: &str,
    metrics: &NotesMetrics,
) -> String {
    let mut h = page_head(version, created_at, source);
    h.push_str(&exceptions::section(metrics));
    h.push_str("</body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roc_and_reliability_follow_the_predictions() {
        let labels = [true, true, false, false];
        let perfect = roc_points(&labels, &[0.9, 0.8, 0.2, 0.1]);
        assert!(perfect.contains(&(0.0, 1.0)), "{perfect:?}");
        assert_eq!(*perfect.last().unwrap(), (1.0, 1.0));
        let rel = reliability_points(&labels, &[0.95, 0.85, 0.15, 0.05], 10);
        assert_eq!(rel.len(), 4);
        assert_eq!(rel[0], (0.05, 0.0));
        assert_eq!(rel[3], (0.95, 1.0));
    }
}
