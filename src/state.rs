//! What the handlers share: the models being served ([`crate::serving`]), the policy threads,
//! the store, keys, metrics, the limits at the door and the clock; and the reload of models and
//! policies.

use std::sync::Arc;

use crate::auth::KeyCache;
use crate::clock::SharedClock;
use crate::metrics::Metrics;
use crate::policy::ActivePolicies;
use crate::serving::ModelStore;
use crate::store::outcomes::OutcomeRecord;
use crate::store::{Store, StoreError};

#[derive(Clone)]
pub struct AppState {
    pub models: Arc<ModelStore>,
    pub policies: Arc<ActivePolicies>,
    pub store: Store,
    pub keys: Arc<KeyCache>,
    pub metrics: Arc<Metrics>,
    /// Whether `GET /metrics` answers without a key.
    pub public_metrics: bool,
    /// Requests in flight, at most.
    pub gate: Arc<crate::http::limits::Gate>,
    /// Carriers an outcome may name beyond those the model and its rate table know.
    pub admitted_carriers: Arc<[String]>,
    /// The time every request and timer reads ([`crate::clock`]).
    pub clock: SharedClock,
    /// The open approvals this instance knows of: the proposals scores' answers carry.
    pub open_approvals: Arc<crate::store::approvals::OpenApprovals>,
}

/// Why a reload could not run at all (a refused part is a [`ReloadReport`], not an error).
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("reading the stored outcomes: {0}")]
    Outcomes(#[from] StoreError),
    #[error("the reload thread failed: {0}")]
    Thread(String),
}

/// What a reload did.
#[derive(Debug, Clone, Default)]
pub struct ReloadReport {
    /// The models serving after the reload.
    pub model_version: Option<String>,
    pub policy_version: String,
    /// Why new models were refused (the previous ones keep serving).
    pub models_refused: Vec<String>,
    /// Why new policies were refused (the previous ones stay active).
    pub policies_refused: Option<String>,
    pub problems: Vec<String>,
    /// Stored outcomes the new models took into their history.
    pub outcomes_replayed: usize,
}

impl AppState {
    /// Loads the active model version and the policy files again; each part that loads and
    /// checks is swapped in, each that does not is refused and the previous one keeps serving.
    /// New models take the stored outcomes before they serve, so live history survives.
    pub async fn reload(&self) -> Result<ReloadReport, ReloadError> {
        let outcomes = self.store.all_outcomes().await?;
        let state = self.clone();
        tokio::task::spawn_blocking(move || state.reload_blocking(&outcomes))
            .await
            .map_err(|e| ReloadError::Thread(e.to_string()))
    }

    fn reload_blocking(&self, outcomes: &[OutcomeRecord]) -> ReloadReport {
        let mut report = ReloadReport::default();
        match self.models.reload(outcomes) {
            Ok((m, replayed)) => {
                report.problems = m.problems.clone();
                report.outcomes_replayed = replayed;
            }
            Err(why) => report.models_refused = why,
        }
        let dir = self.policies.source().dir.clone();
        match crate::policy::PolicySource::load(&dir) {
            Ok(source) => self.policies.swap(source),
            Err(e) => report.policies_refused = Some(e.to_string()),
        }
        let current = self.models.current();
        report.model_version = current.version.clone();
        report.policy_version = self.policies.source().version.clone();
        self.metrics.serving(
            current.delay.as_ref().and(current.version.as_deref()),
            &report.policy_version,
        );
        report
    }
}
