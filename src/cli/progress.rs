//! Progress display for long training steps: one spinner per stage on stderr, which indicatif
//! hides by itself when stderr is not a terminal (CI logs, scripts).

use std::time::Duration;

use dispatch_risk_training::train::Progress;
use indicatif::{ProgressBar, ProgressStyle};

pub struct Spinners {
    current: Option<ProgressBar>,
    quiet: bool,
}

impl Spinners {
    pub fn new(quiet: bool) -> Self {
        Spinners {
            current: None,
            quiet,
        }
    }
}

impl Progress for Spinners {
    fn start(&mut self, stage: &str) {
        if self.quiet {
            return;
        }
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(stage.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        self.current = Some(bar);
    }

    fn finish(&mut self, stage: &str, elapsed: Duration) {
        if let Some(bar) = self.current.take() {
            bar.finish_with_message(format!("{stage} done in {:.1}s", elapsed.as_secs_f64()));
        }
    }
}
