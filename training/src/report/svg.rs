//! Inline SVG charts for the training report: line charts (ROC, reliability), horizontal bars
//! (importance, scorecards) and a histogram, drawn as plain SVG elements so the page needs no
//! script, font or network to render.

use std::fmt::Write;

const W: f64 = 560.0;
const H: f64 = 340.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 44.0;
const COLORS: [&str; 4] = ["#1f6feb", "#d1242f", "#8250df", "#1a7f37"];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn open(out: &mut String, id: &str, title: &str, height: f64) {
    let _ = write!(
        out,
        r#"<svg class="chart" id="{id}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {height}" width="{W}" height="{height}" role="img" aria-label="{t}"><text x="{x}" y="18" class="title">{t}</text>"#,
        t = esc(title),
        x = LEFT,
    );
}

/// A named series of (x, y) points in data units.
pub struct Series<'a> {
    pub name: &'a str,
    pub points: Vec<(f64, f64)>,
    pub dashed: bool,
}

/// Lines over a unit square (both axes 0..1), the shape of ROC and reliability plots.
pub fn unit_lines(
    id: &str,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series<'_>],
) -> String {
    let mut out = String::new();
    open(&mut out, id, title, H);
    let pw = W - LEFT - RIGHT;
    let ph = H - TOP - BOTTOM;
    let px = |x: f64| LEFT + x.clamp(0.0, 1.0) * pw;
    let py = |y: f64| TOP + (1.0 - y.clamp(0.0, 1.0)) * ph;
    for k in 0..=5 {
        let v = k as f64 / 5.0;
        let _ = write!(
            out,
            r##"<line x1="{x0}" y1="{y}" x2="{x1}" y2="{y}" stroke="#eee"/><text x="{tx}" y="{ty}" class="tick" text-anchor="end">{v:.1}</text><text x="{vx}" y="{vy}" class="tick" text-anchor="middle">{v:.1}</text>"##,
            x0 = px(0.0),
            x1 = px(1.0),
            y = py(v),
            tx = LEFT - 6.0,
            ty = py(v) + 4.0,
            vx = px(v),
            vy = TOP + ph + 16.0,
        );
    }
    axes(&mut out, x_label, y_label, pw, ph);
    for (i, s) in series.iter().enumerate() {
        let pts: Vec<String> = s
            .points
            .iter()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        // Dashed series are references (chance, perfect calibration): grey.
        let color = if s.dashed {
            "#8c959f"
        } else {
            COLORS[i % COLORS.len()]
        };
        let _ = write!(
            out,
            r#"<polyline class="series" fill="none" stroke="{color}" stroke-width="2"{dash} points="{}"/>"#,
            pts.join(" "),
            dash = if s.dashed {
                r#" stroke-dasharray="5 4""#
            } else {
                ""
            },
        );
        let _ = write!(
            out,
            r#"<text x="{x}" y="{y}" class="legend" fill="{color}">{}</text>"#,
            esc(s.name),
            x = LEFT + 12.0,
            y = TOP + 16.0 + 16.0 * i as f64,
        );
    }
    out.push_str("</svg>");
    out
}

fn axes(out: &mut String, x_label: &str, y_label: &str, pw: f64, ph: f64) {
    let _ = write!(
        out,
        r##"<line x1="{LEFT}" y1="{b}" x2="{r}" y2="{b}" stroke="#333"/><line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{b}" stroke="#333"/><text x="{cx}" y="{ly}" class="axis" text-anchor="middle">{xl}</text><text transform="translate(14 {cy}) rotate(-90)" class="axis" text-anchor="middle">{yl}</text>"##,
        b = TOP + ph,
        r = LEFT + pw,
        cx = LEFT + pw / 2.0,
        ly = TOP + ph + 36.0,
        cy = TOP + ph / 2.0,
        xl = esc(x_label),
        yl = esc(y_label),
    );
}

/// Horizontal bars, one per (label, value), longest scale at the largest value.
pub fn bars(
    id: &str,
    title: &str,
    rows: &[(String, f64)],
    format: &dyn Fn(f64) -> String,
) -> String {
    let label_w = 230.0;
    let row_h = 20.0;
    let height = TOP + 8.0 + row_h * rows.len().max(1) as f64;
    let mut out = String::new();
    open(&mut out, id, title, height);
    let max = rows
        .iter()
        .map(|r| r.1.abs())
        .fold(0.0, f64::max)
        .max(1e-12);
    let bar_w = W - label_w - 70.0;
    for (i, (label, v)) in rows.iter().enumerate() {
        let y = TOP + 4.0 + row_h * i as f64;
        let _ = write!(
            out,
            r##"<text x="{tx}" y="{ty}" class="tick" text-anchor="end">{l}</text><rect class="bar" x="{label_w}" y="{y}" width="{w:.1}" height="{h}" fill="#1f6feb"/><text x="{vx:.1}" y="{ty}" class="tick">{val}</text>"##,
            tx = label_w - 6.0,
            ty = y + 13.0,
            l = esc(label),
            w = (v.abs() / max * bar_w).max(0.5),
            h = row_h - 6.0,
            vx = label_w + v.abs() / max * bar_w + 4.0,
            val = esc(&format(*v)),
        );
    }
    out.push_str("</svg>");
    out
}

/// A histogram of values in 0..1 in `bins` equal bins.
pub fn histogram(id: &str, title: &str, x_label: &str, values: &[f64], bins: usize) -> String {
    let bins = bins.max(1);
    let mut counts = vec![0usize; bins];
    for v in values.iter().filter(|v| v.is_finite()) {
        counts[((v.clamp(0.0, 1.0) * bins as f64) as usize).min(bins - 1)] += 1;
    }
    let max = counts.iter().copied().max().unwrap_or(0).max(1) as f64;
    let mut out = String::new();
    open(&mut out, id, title, H);
    let pw = W - LEFT - RIGHT;
    let ph = H - TOP - BOTTOM;
    axes(&mut out, x_label, "shipments", pw, ph);
    let bw = pw / bins as f64;
    for (i, &c) in counts.iter().enumerate() {
        let h = c as f64 / max * ph;
        let _ = write!(
            out,
            r##"<rect class="bar" x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" fill="#8250df"><title>{lo:.2}-{hi:.2}: {c}</title></rect>"##,
            x = LEFT + bw * i as f64 + 1.0,
            y = TOP + ph - h,
            w = (bw - 2.0).max(0.5),
            lo = i as f64 / bins as f64,
            hi = (i + 1) as f64 / bins as f64,
        );
    }
    for k in 0..=5 {
        let v = k as f64 / 5.0;
        let _ = write!(
            out,
            r#"<text x="{x:.1}" y="{y}" class="tick" text-anchor="middle">{v:.1}</text>"#,
            x = LEFT + v * pw,
            y = TOP + ph + 16.0,
        );
    }
    let _ = write!(
        out,
        r#"<text x="{x}" y="{y}" class="tick" text-anchor="end">{max}</text>"#,
        x = LEFT - 6.0,
        y = TOP + 4.0,
    );
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_well_formed_and_escape_text() {
        let s = unit_lines(
            "roc",
            "ROC <valid>",
            "x",
            "y",
            &[Series {
                name: "model & co",
                points: vec![(0.0, 0.0), (0.5, 0.8), (1.0, 1.0)],
                dashed: false,
            }],
        );
        assert!(s.starts_with("<svg") && s.ends_with("</svg>"));
        assert!(s.contains("ROC &lt;valid&gt;") && s.contains("model &amp; co"));
        assert_eq!(s.matches("<polyline").count(), 1);
        let h = histogram("h", "risk", "p", &[0.1, 0.1, 0.95, f64::NAN], 10);
        assert_eq!(h.matches("<rect").count(), 10);
        let b = bars("b", "imp", &[("a".into(), 2.0), ("b".into(), 1.0)], &|v| {
            format!("{v}")
        });
        assert_eq!(b.matches("<rect").count(), 2);
    }
}
