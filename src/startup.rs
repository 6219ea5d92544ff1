//! Building and running the service: [`Application::build`] connects the store, loads the
//! models and policies and binds the listener (port 0 in tests, so tests run exactly what
//! production runs), then [`Application::run_until_stopped`] serves until Ctrl-C or SIGTERM,
//! finishing requests in flight before it returns. SIGHUP
//! reloads models and policies, like `POST /v1/models/reload`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use dispatch_risk_training::exceptions::Taxonomy;
use tokio::net::TcpListener;

use crate::auth::KeyCache;
use crate::http::limits::{Gate, GateLimits};
use crate::http::router;
use crate::metrics::Metrics;
use crate::policy::{ActivePolicies, PolicySource};
use crate::server::Limits;
use crate::serving::ModelStore;
use crate::state::AppState;
use crate::store::{Backend, SpoolConfig, Store};
use crate::workers::{checkpoint_wal, reload_on_hangup, sync_history, Workers};

/// How the service is configured.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub bind: SocketAddr,
    /// The models directory: versions in subdirectories, the active one named by `ACTIVE`
    /// (`default` without it).
    pub models_dir: PathBuf,
    /// Pretrained encoders (default: `encoders/` in the models directory).
    pub encoders_dir: Option<PathBuf>,
    pub taxonomy: Taxonomy,
    /// Routing, approval and fallback tables (`policies/`).
    pub policies_dir: PathBuf,
    /// `sqlite:PATH` (the embedded default) or `postgres://...`.
    pub database_url: Secret,
    /// Whether `GET /metrics` answers without a key.
    pub public_metrics: bool,
    /// On PostgreSQL, where answered scores wait while the database is unreachable.
    pub spool_path: PathBuf,
    /// The spool's bound in bytes: past it, scores answer 503 `store_full`.
    pub spool_max_bytes: u64,
    /// What the server loop enforces: header-read timeout, open connections.
    pub limits: Limits,
    /// Requests and batches in flight at most, and each request's deadline.
    pub gate: GateLimits,
    /// Carriers an outcome may name that the model and its rate table do not know (a carrier
    /// just signed); others are refused, so no key can invent carriers for a lane.
    pub admitted_carriers: Vec<String>,
    /// How often outcomes reported to other instances are read into this one's live history
    /// (none: only this instance's own).
    pub history_sync: Option<Duration>,
}

impl ServeConfig {
    /// The defaults `serve` uses, on a models directory and a database.
    pub fn new(models_dir: PathBuf, database_url: impl Into<Secret>) -> Self {
        ServeConfig {
            bind: "127.0.0.1:8080".parse().expect("a valid address"),
            models_dir,
            encoders_dir: None,
            taxonomy: Taxonomy::default(),
            policies_dir: PathBuf::from("policies"),
            database_url: database_url.into(),
            public_metrics: true,
            spool_path: PathBuf::from("dispatch-risk.spool"),
            spool_max_bytes: SpoolConfig::DEFAULT_MAX_BYTES,
            limits: Limits::default(),
            gate: GateLimits::default(),
            admitted_carriers: Vec::new(),
            history_sync: Some(Duration::from_secs(2)),
        }
    }
}

pub struct Application {
    listener: TcpListener,
    state: AppState,
    limits: Limits,
    history_sync: Option<Duration>,
}

impl Application {
    pub async fn build(config: ServeConfig) -> anyhow::Result<Self> {
        let spool = SpoolConfig {
            path: config.spool_path.clone(),
            max_bytes: config.spool_max_bytes,
        };
        let store = Store::connect_with(config.database_url.expose(), Some(spool))
            .await
            .with_context(|| format!("opening the database {}", config.database_url.redacted()))?;
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
            let models = ModelStore::open(config.models_dir, config.encoders_dir, config.taxonomy);
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
        let metrics = Metrics::default();
        metrics.serving(
            loaded.delay.as_ref().and(loaded.version.as_deref()),
            &policy_version,
        );
        Ok(Application {
            listener,
            limits: config.limits,
            history_sync: config.history_sync,
            state: AppState {
                models: Arc::new(models),
                policies: Arc::new(policies),
                store,
                keys: Arc::new(KeyCache::default()),
                metrics: Arc::new(metrics),
                public_metrics: config.public_metrics,
                gate: Arc::new(Gate::new(config.gate)),
                admitted_carriers: config.admitted_carriers.into(),
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

/// A setting that may hold a password (a database URL): it never prints, in logs, errors or
/// `Debug`; [`Secret::redacted`] shows it with the password masked.
#[derive(Clone, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The value with any `user:password@` password replaced by `***`.
    pub fn redacted(&self) -> String {
        redact(&self.0)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({})", self.redacted())
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_string()))
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret(s.to_string())
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

/// A database URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
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
