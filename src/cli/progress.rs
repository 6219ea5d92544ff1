//! Progress display for long stages: a bar per stage on stderr with the rows (or bytes, or
//! trees) per second and the time left, or a spinner where the total is unknown. indicatif
//! hides it by itself when stderr is not a terminal (CI logs, scripts).

use std::sync::Mutex;
use std::time::Duration;

use dispatch_risk_training::progress::{Progress, Unit};
use indicatif::{ProgressBar, ProgressStyle};

pub struct Bars {
    current: Mutex<Option<ProgressBar>>,
    quiet: bool,
}

impl Bars {
    pub fn new(quiet: bool) -> Self {
        Bars {
            current: Mutex::new(None),
            quiet,
        }
    }

    fn bar(&self) -> Option<ProgressBar> {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

fn style(total: u64, unit: Unit) -> ProgressStyle {
    let template = match (total, unit) {
        (0, _) => "{spinner} {msg} [{elapsed}]",
        (_, Unit::Bytes) => {
            "{msg:<14} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}, {elapsed} spent, {eta} left"
        }
        (_, Unit::Rows) => {
            "{msg:<14} [{bar:30}] {human_pos}/{human_len} rows, {per_sec}, {elapsed} spent, {eta} left"
        }
        // Early stopping usually ends the fit before the total: the time left is an upper bound.
        (_, Unit::Trees) => {
            "{msg:<14} [{bar:30}] {pos}/{len} trees at most, {per_sec}, {elapsed} spent, at most {eta} left"
        }
    };
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

impl Progress for Bars {
    fn start(&self, stage: &str, total: u64, unit: Unit) {
        if self.quiet {
            return;
        }
        let bar = if total == 0 {
            let b = ProgressBar::new_spinner();
            b.enable_steady_tick(Duration::from_millis(120));
            b
        } else {
            ProgressBar::new(total)
        };
        bar.set_style(style(total, unit));
        bar.set_message(stage.to_string());
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Some(bar);
    }

    fn advance(&self, n: u64) {
        if let Some(bar) = self.bar() {
            bar.inc(n);
        }
    }

    fn message(&self, text: &str) {
        if let Some(bar) = self.bar() {
            bar.set_message(text.to_string());
        }
    }

    fn finish(&self, stage: &str, elapsed: Duration) {
        let bar = self
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(bar) = bar {
            bar.set_style(
                ProgressStyle::with_template("{msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.finish_with_message(format!("{stage} done in {:.1}s", elapsed.as_secs_f64()));
        }
    }
}
