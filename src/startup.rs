//! Building and running the service: [`Application::build`] connects the store, loads the
//! models and policies and binds the listener (port 0 in tests, so tests run exactly what
//! production runs), then [`Application::run_until_stopped`] serves until Ctrl-C or SIGTERM,
//! finishing requests in flight before it returns. SIGHUP
//! reloads models and policies, like `POST /v1/models/reload`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use dispatch_risk_training::exceptions::Taxonomy;
use tokio::net::TcpListener;

use crate::auth::KeyCache;
use crate::clock::{SharedClock, SystemClock};
pub use crate::config::{Secret, ServeConfig};
use crate::http::limits::Gate;
use crate::http::router;
use crate::metrics::Metrics;
use crate::policy::{ActivePolicies, PolicySource};
use crate::server::Limits;
use crate::serving::ModelStore;
use crate::state::AppState;
use crate::store::{Backend, Store};
use crate::workers::{approval_timer, checkpoint_wal, reload_on_hangup, sync_history, Workers};

pub struct Application {
    listener: TcpListener,
    state: AppState,
    limits: Limits,
    history_sync: Option<Duration>,
    approval_timer: Option<Duration>,
}

impl Application {
    pub async fn build(config: ServeConfig) -> anyhow::Result<Self> {
        Self::build_with_clock(config, Arc::new(SystemClock)).await
    }

    /// As [`Application::build`], on `clock` instead of the system's (tests set the time).
    pub async fn build_with_clock(config: ServeConfig, clock: SharedClock) -> anyhow::Result<Self> {
        let store = Store::connect_with(config.database_url.expose(), Some(config.spool()))
            .await
            .with_context(|| format!("opening the database {}", config.database_url.redacted()))?;
        let taxonomy = match &config.taxonomy {
            Some(path) => load_taxonomy(path)?,
            None => Taxonomy::default(),
        };
        let (limits, gate, history_sync) = (config.limits(), config.gate(), config.history_sync());
        let approval_timer = config.approval_timer();
        let policies_dir = config.policies_dir.clone();
        let policy_source = tokio::task::spawn_blocking(move || PolicySource::load(&policies_dir))
            .await
            .context("loading the policies")?
            .context("loading the policies")?;
        let policy_version = policy_source.version.clone();
        let policies = ActivePolicies::new(policy_source);
        let listener = TcpListener::bind(config.bind)
            .await
            .with_context(|| format!("binding {}", config.bind))?;
        // Outcomes reported since the model was trained feed its history from the start.
        let outcomes = store
            .all_outcomes()
            .await
            .context("reading stored outcomes")?;
        // Loading reads and checks tens of megabytes: off the async workers.
        let (models, replayed) = tokio::task::spawn_blocking(move || {
            let models = ModelStore::open(config.models_dir, config.encoders_dir, taxonomy);
            let replayed = models.current().take_outcomes(&outcomes);
            (models, replayed)
        })
        .await
        .context("loading the models")?;
        let loaded = models.current();
        for p in &loaded.problems {
            tracing::warn!(problem = %p, "model part not loaded");
        }
        tracing::info!(
            version = ?loaded.version,
            delay_model = loaded.delay.is_some(),
            classifier = ?loaded.classifier.tier(),
            policies = %policy_version,
            outcomes_replayed = replayed,
            "models and policies loaded"
        );
        // What a new answer proposes for shipments that wait for a person already.
        let open_approvals = crate::store::approvals::OpenApprovals::default();
        for (shipment, id, state) in store
            .open_approvals(crate::store::approvals::OpenApprovals::CAP as i64)
            .await
            .context("reading open approvals")?
        {
            open_approvals.set(&shipment, &id, &state);
        }
        let mut metrics = Metrics::default();
        metrics.register_recorder(store.recorder.commit_metrics());
        metrics.serving(
            loaded.delay.as_ref().and(loaded.version.as_deref()),
            &policy_version,
        );
        Ok(Application {
            listener,
            limits,
            history_sync,
            approval_timer,
            state: AppState {
                models: Arc::new(models),
                policies: Arc::new(policies),
                store,
                keys: Arc::new(KeyCache::default()),
                metrics: Arc::new(metrics),
                public_metrics: !config.private_metrics,
                gate: Arc::new(Gate::new(gate)),
                admitted_carriers: config.admitted_carriers.into(),
                clock,
                open_approvals: Arc::new(open_approvals),
            },
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The state the router serves (tests use it to create keys and read the store).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until Ctrl-C or SIGTERM.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `stop` completes, then finishes requests in flight and writes every
    /// accepted record.
    pub async fn run_until(
        self,
        stop: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let state = self.state.clone();
        let mut workers = Workers::default();
        workers.spawn("reload on SIGHUP", {
            let state = state.clone();
            |stop| reload_on_hangup(state, stop)
        });
        if state.store.backend == Backend::Sqlite {
            let store = state.store.clone();
            workers.spawn("WAL checkpoints", |stop| checkpoint_wal(store, stop));
        }
        if let Some(every) = self.history_sync {
            let state = state.clone();
            workers.spawn("history sync", move |stop| sync_history(state, every, stop));
        }
        if let Some(every) = self.approval_timer {
            let state = state.clone();
            workers.spawn("approval timer", move |stop| {
                approval_timer(state, every, stop)
            });
        }
        crate::server::serve(self.listener, router(self.state), self.limits, stop).await;
        workers.stop(self.limits.shutdown_deadline).await;
        // Every answer sent was committed before it went out; this waits for the spool's
        // replay to be tried once more (what is left stays on disk for the next start).
        state
            .store
            .flush()
            .await
            .context("writing the last score records")?;
        let left = state.store.recorder.health().spooled_bytes;
        if left > 0 {
            tracing::warn!(
                spooled_bytes = left,
                "stopped; answered scores wait in the spool for the database"
            );
        } else {
            tracing::info!("stopped; every record written");
        }
        Ok(())
    }
}

/// The exception taxonomy a configuration names.
pub fn load_taxonomy(path: &Path) -> anyhow::Result<Taxonomy> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Taxonomy::from_toml(&text).with_context(|| format!("{}", path.display()))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
