//! Building and running the service: [`Application::build`] loads the models and binds the
//! listener (port 0 in tests, so tests run exactly what production runs), then
//! [`Application::run_until_stopped`] serves until Ctrl-C or SIGTERM, finishing requests in flight.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use dispatch_risk_training::exceptions::Taxonomy;
use tokio::net::TcpListener;

use crate::http::router;
use crate::state::{AppState, ModelStore};

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
}

pub struct Application {
    listener: TcpListener,
    state: AppState,
}

impl Application {
    pub async fn build(config: ServeConfig) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(config.bind)
            .await
            .with_context(|| format!("binding {}", config.bind))?;
        // Loading reads and checks tens of megabytes: off the async workers.
        let store = tokio::task::spawn_blocking(move || {
            ModelStore::open(config.models_dir, config.encoders_dir, config.taxonomy)
        })
        .await
        .context("loading the models")?;
        let loaded = store.current();
        for p in &loaded.problems {
            tracing::warn!(problem = %p, "model part not loaded");
        }
        tracing::info!(
            version = ?loaded.version,
            classifier = ?loaded.classifier.tier(),
            "models loaded"
        );
        Ok(Application {
            listener,
            state: AppState {
                models: Arc::new(store),
            },
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        axum::serve(self.listener, router(self.state))
            .with_graceful_shutdown(shutdown_signal())
            .await
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
