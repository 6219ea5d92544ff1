//! The models being served: the models directory, the version loaded from it and a reload that
//! swaps a whole new version in atomically. Requests take a snapshot ([`ModelStore::current`]),
//! so a reload never disturbs a request in flight. Outcomes reach the delay model's live
//! history through [`LoadedModels::take_outcomes`].

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use dispatch_risk_training::data::dates::DateParser;
use dispatch_risk_training::exceptions::{load_classifier, ExceptionClassifier, Taxonomy, Tier};
use dispatch_risk_training::features::history::{Delivered, Lane};
use dispatch_risk_training::model::{DelayModel, Reported};

use crate::store::outcomes::OutcomeRecord;

/// The version directory used when the models directory has no `ACTIVE` file.
pub const DEFAULT_VERSION: &str = "default";
/// The file in the models directory naming the active version.
pub const ACTIVE_FILE: &str = "ACTIVE";

/// One loaded version.
pub struct LoadedModels {
    /// The active version's name, or `None` when nothing could be loaded.
    pub version: Option<String>,
    /// The delay-risk model with its carrier scorecards. Outcomes update its history, hence
    /// the lock; scoring only reads.
    pub delay: Option<RwLock<DelayModel>>,
    pub classifier: ExceptionClassifier,
    /// Why any part did not load (empty when everything did).
    pub problems: Vec<String>,
    /// The subset where the version's own files are at fault.
    pub failed: Vec<String>,
}

impl LoadedModels {
    /// Whether any part answers from a lesser tier than the artifact offers.
    pub fn degraded(&self) -> bool {
        self.delay.is_none() || self.classifier.tier() == Tier::Rules
    }

    /// Loads the active version of a models directory; never fails (missing parts are noted
    /// and the rules answer for them).
    pub fn load(dir: &Path, encoders: Option<&Path>, taxonomy: Taxonomy) -> Self {
        let version = std::fs::read_to_string(dir.join(ACTIVE_FILE))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| DEFAULT_VERSION.to_string());
        let artifact = dir.join(&version);
        if !artifact.is_dir() {
            let problem = format!(
                "{}: the active version `{version}` does not exist; answering from rules",
                artifact.display()
            );
            return LoadedModels {
                version: None,
                delay: None,
                classifier: ExceptionClassifier::new(taxonomy),
                problems: vec![problem.clone()],
                failed: vec![problem],
            };
        }
        // Without an encoders directory, `encoders/` beside the version: `dir/encoders`.
        let loaded = load_classifier(&artifact, encoders, taxonomy);
        let mut problems = loaded.problems;
        let mut failed = loaded.failed;
        let delay = if artifact
            .join(dispatch_risk_training::artifact::files::DELAY_MODEL)
            .exists()
        {
            match DelayModel::load(&artifact) {
                Ok(m) => Some(RwLock::new(m)),
                Err(e) => {
                    let p = format!("delay model: {e}; the fallback table answers");
                    problems.push(p.clone());
                    failed.push(p);
                    None
                }
            }
        } else {
            problems.push(format!(
                "{}: no delay model in this version; the fallback table answers",
                artifact.display()
            ));
            None
        };
        LoadedModels {
            version: Some(version),
            delay,
            classifier: loaded.classifier,
            problems,
            failed,
        }
    }
}

impl LoadedModels {
    /// Whether the model's scorecards or rate table know `carrier`; `None` without a model to
    /// ask (the rules answer then, and there is no live history to protect).
    pub fn knows_carrier(&self, carrier: &str) -> Option<bool> {
        let model = self
            .delay
            .as_ref()?
            .read()
            .unwrap_or_else(|p| p.into_inner());
        model.knows_carrier(carrier)
    }

    /// Feeds delivered shipments into the delay model's history features and carrier
    /// scorecards, in one sorted load; ones it already holds are skipped. Returns how many
    /// were taken in.
    pub fn take_outcomes(&self, outcomes: &[OutcomeRecord]) -> usize {
        self.take(outcomes, &[]).iter().filter(|&&t| t).count()
    }

    /// One outcome (with its notes' category, counted in the carrier's exception mix); false
    /// when there is no delay model or it already holds this shipment.
    pub fn take_outcome(&self, o: &OutcomeRecord, exception: Option<&str>) -> bool {
        self.take(std::slice::from_ref(o), &[exception])
            .first()
            .copied()
            .unwrap_or(false)
    }

    /// `outcomes` (with `exceptions[i]` for the i-th, where given) into the delay model;
    /// outcomes whose dates do not parse are not taken.
    fn take(&self, outcomes: &[OutcomeRecord], exceptions: &[Option<&str>]) -> Vec<bool> {
        let Some(lock) = &self.delay else {
            return vec![false; outcomes.len()];
        };
        let dates = DateParser::default();
        let parsed: Vec<Option<Reported<'_>>> = outcomes
            .iter()
            .enumerate()
            .map(|(i, o)| {
                Some(Reported {
                    outcome: Delivered {
                        shipment_id: &o.shipment_id,
                        lane: Lane {
                            carrier: &o.carrier,
                            warehouse: &o.warehouse,
                            destination: &o.destination,
                        },
                        decided: dates.parse(&o.scheduled_date)?,
                        deadline: dates.parse(&o.date_deadline)?,
                        delivered_at: dates.parse(&o.delivered_at)?,
                    },
                    exception: exceptions.get(i).copied().flatten(),
                })
            })
            .collect();
        let valid: Vec<Reported<'_>> = parsed.iter().flatten().copied().collect();
        let mut model = lock.write().unwrap_or_else(|p| p.into_inner());
        let mut taken = model.take_outcomes(&valid).into_iter();
        parsed
            .iter()
            .map(|p| p.is_some() && taken.next().unwrap_or(false))
            .collect()
    }
}

/// The models directory and the version being served.
pub struct ModelStore {
    dir: PathBuf,
    encoders: Option<PathBuf>,
    taxonomy: Taxonomy,
    current: RwLock<Arc<LoadedModels>>,
}

impl ModelStore {
    /// Loads the active version of `dir` (blocking: call it off the async workers).
    pub fn open(dir: PathBuf, encoders: Option<PathBuf>, taxonomy: Taxonomy) -> Self {
        let loaded = LoadedModels::load(&dir, encoders.as_deref(), taxonomy.clone());
        ModelStore {
            dir,
            encoders,
            taxonomy,
            current: RwLock::new(Arc::new(loaded)),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Loads the active version again, feeds it `outcomes` (reported since its training) and
    /// only then swaps it in, so no request sees it without them; unless the version is
    /// missing or any of its files fails to load: then it is refused with the reasons and the
    /// previous models keep serving. Returns the new models and how many outcomes they took.
    /// Blocking, like [`ModelStore::open`].
    pub fn reload(
        &self,
        outcomes: &[OutcomeRecord],
    ) -> Result<(Arc<LoadedModels>, usize), Vec<String>> {
        let new = LoadedModels::load(&self.dir, self.encoders.as_deref(), self.taxonomy.clone());
        if !new.failed.is_empty() {
            return Err(new.failed);
        }
        let replayed = new.take_outcomes(outcomes);
        let new = Arc::new(new);
        match self.current.write() {
            Ok(mut g) => *g = new.clone(),
            Err(p) => *p.into_inner() = new.clone(),
        }
        Ok((new, replayed))
    }

    /// The models serving now; held for one request.
    pub fn current(&self) -> Arc<LoadedModels> {
        // A poisoned lock still holds a complete `Arc`: keep serving it.
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}
