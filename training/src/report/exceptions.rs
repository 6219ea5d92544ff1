//! The report's exception-classifier section: each tier's validation figures against the
//! keyword rules, per-category precision and recall, and the confusion matrix of the tier that
//! answers first.

use std::fmt::Write;

use super::esc;
use crate::exceptions::{ClassMetrics, NotesMetrics, TierMetrics, CATEGORIES};

pub fn section(m: &NotesMetrics) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        r#"<h2>Exception notes</h2><p class="note">{} training notes, {} validation notes. Confidence is calibrated with one temperature per tier, fitted on the validation notes.</p><table id="exception-tiers"><tr><th>tier</th><th>macro-F1</th><th>accuracy</th><th>temperature</th><th>calibration error before</th><th>after</th></tr>"#,
        m.train_notes, m.valid_notes
    );
    let tier = |h: &mut String, name: &str, t: &TierMetrics| {
        let _ = write!(
            h,
            "<tr><td>{name}</td><td>{:.3}</td><td>{:.3}</td><td>{:.2}</td><td>{:.3}</td><td>{:.3}</td></tr>",
            t.valid.macro_f1, t.valid.accuracy, t.temperature, t.ece_raw, t.ece_calibrated
        );
    };
    if let Some(e) = &m.encoder {
        tier(&mut h, "encoder", e);
    }
    tier(&mut h, "small model", &m.small_model);
    let _ = write!(
        h,
        "<tr><td>keyword rules</td><td>{:.3}</td><td>{:.3}</td><td>-</td><td>-</td><td>-</td></tr></table>",
        m.rules.macro_f1, m.rules.accuracy
    );
    let v = m.preferred_valid();
    let _ = write!(
        h,
        r#"<p class="note">Per category, {} tier:</p><table id="exception-classes"><tr><th>category</th><th>precision</th><th>recall</th><th>F1</th><th>notes</th></tr>"#,
        esc(&m.preferred)
    );
    for c in &v.per_class {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{}</td></tr>",
            esc(&c.category),
            c.precision,
            c.recall,
            c.f1,
            c.support
        );
    }
    h.push_str("</table>");
    h.push_str(&confusion(v));
    h
}

/// Rows are the true categories, columns the predicted ones; off-diagonal cells are shaded by
/// their share of the row.
fn confusion(v: &ClassMetrics) -> String {
    let mut h = String::from(
        r#"<p class="note">Confusion matrix (rows: true category, columns: predicted):</p><table class="confusion" id="exception-confusion"><tr><th></th>"#,
    );
    for c in CATEGORIES {
        let _ = write!(h, r#"<th class="col">{c}</th>"#);
    }
    h.push_str("</tr>");
    for (t, row) in v.confusion.iter().enumerate() {
        let total: usize = row.iter().sum();
        let _ = write!(h, "<tr><th>{}</th>", CATEGORIES[t]);
        for (p, &n) in row.iter().enumerate() {
            let share = n as f64 / total.max(1) as f64;
            let colour = if n == 0 {
                String::new()
            } else if p == t {
                format!(
                    r#" style="background:rgba(46,160,67,{:.2})""#,
                    0.15 + 0.6 * share
                )
            } else {
                format!(
                    r#" style="background:rgba(207,34,46,{:.2})""#,
                    0.15 + 0.6 * share
                )
            };
            let _ = write!(
                h,
                "<td{colour}>{}</td>",
                if n == 0 { String::new() } else { n.to_string() }
            );
        }
        h.push_str("</tr>");
    }
    h.push_str("</table>");
    h
}
