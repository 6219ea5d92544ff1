//! The service's background workers, started and stopped in one place on one shutdown signal:
//! today the live-history sync, SQLite's WAL checkpoints and the SIGHUP reload; the outbox and the approval timers join
//! them. [`Workers::stop`] signals every worker and waits for them up to a deadline, then
//! aborts what is left. The recorder is not among them: requests in flight write through it,
//! so it stops after the server, when the store is flushed (see [`crate::startup`]).

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::state::AppState;

/// What a worker waits on to learn that the service is stopping.
#[derive(Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    /// Completes once shutdown has begun.
    pub async fn wait(&mut self) {
        // An error means the sender is gone, which is a shutdown too.
        let _ = self.0.wait_for(|stopping| *stopping).await;
    }
}

pub struct Workers {
    stop: watch::Sender<bool>,
    tasks: Vec<(&'static str, JoinHandle<()>)>,
}

impl Default for Workers {
    fn default() -> Self {
        Workers {
            stop: watch::channel(false).0,
            tasks: Vec::new(),
        }
    }
}

impl Workers {
    /// Starts a worker; it gets the shutdown signal to wait on.
    pub fn spawn<F, Fut>(&mut self, name: &'static str, worker: F)
    where
        F: FnOnce(Shutdown) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let shutdown = Shutdown(self.stop.subscribe());
        self.tasks.push((name, tokio::spawn(worker(shutdown))));
    }

    /// Signals every worker and waits for them, each until `deadline` has passed overall.
    pub async fn stop(self, deadline: Duration) {
        let _ = self.stop.send(true);
        let until = tokio::time::Instant::now() + deadline;
        for (name, mut task) in self.tasks {
            if tokio::time::timeout_at(until, &mut task).await.is_err() {
                tracing::warn!(worker = name, "did not stop by the deadline; aborted");
                task.abort();
            }
        }
    }
}

/// How much earlier than the last look the history sync reads again: an outcome committed
/// late by another instance (its clock, its transaction) is still seen. Outcomes the model
/// holds already are skipped.
const SYNC_OVERLAP: chrono::Duration = chrono::Duration::seconds(60);

/// Keeps this instance's live history up to date with outcomes reported to any instance:
/// every `every`, the outcomes received since the last look go into the serving model.
pub async fn sync_history(state: AppState, every: Duration, mut shutdown: Shutdown) {
    let mut since = crate::clock::text(state.clock.now() - SYNC_OVERLAP);
    loop {
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tokio::time::sleep(every) => {}
        }
        let looked_at = crate::clock::text(state.clock.now() - SYNC_OVERLAP);
        let outcomes = match state.store.outcomes_received_since(&since).await {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(error = %e, "history sync: reading outcomes");
                continue;
            }
        };
        since = looked_at;
        if outcomes.is_empty() {
            continue;
        }
        let models = state.models.current();
        match tokio::task::spawn_blocking(move || models.take_outcomes(&outcomes)).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(outcomes = n, "history sync: outcomes from other instances"),
            Err(e) => tracing::warn!(error = %e, "history sync: taking outcomes"),
        }
    }
}

/// Approvals looked at per round of the approval timer.
const TIMER_ROUND: i64 = 500;

/// Escalates approvals past their SLA and expires those past their deadline, every `every`,
/// at the time the service's clock says. Safe with several instances: each step is made only
/// on the version read ([`crate::store::Store::transition`]), so an approval another
/// instance moved first is skipped.
pub async fn approval_timer(state: AppState, every: Duration, mut shutdown: Shutdown) {
    loop {
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tokio::time::sleep(every) => {}
        }
        match crate::http::approvals::run_timer(&state, TIMER_ROUND).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(approvals = n, "approval timer: escalated or expired"),
            Err(e) => tracing::warn!(error = %e, "approval timer"),
        }
    }
}

/// Keeps SQLite's WAL short, beside the writer rather than inside a commit (see
/// [`crate::store::Store::checkpoint`]): every 250 ms, and as soon as a streamed batch has
/// committed (none run while one streams).
pub async fn checkpoint_wal(store: crate::store::Store, mut shutdown: Shutdown) {
    loop {
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = store.recorder.stream_ended() => {}
        }
        if let Err(e) = store.checkpoint().await {
            tracing::warn!(error = %e, "WAL checkpoint");
        }
    }
}

/// SIGHUP reloads models and policies, like `POST /v1/models/reload`.
#[cfg(unix)]
pub async fn reload_on_hangup(state: AppState, mut shutdown: Shutdown) {
    let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        return;
    };
    loop {
        tokio::select! {
            _ = shutdown.wait() => return,
            got = hup.recv() => if got.is_none() { return },
        }
        match state.reload().await {
            Ok(r) => tracing::info!(
                replayed = r.outcomes_replayed,
                model_version = ?r.model_version,
                policy_version = %r.policy_version,
                models_refused = ?r.models_refused,
                policies_refused = ?r.policies_refused,
                "SIGHUP: reloaded"
            ),
            Err(e) => tracing::error!(error = %e, "SIGHUP: reload failed"),
        }
    }
}

#[cfg(not(unix))]
pub async fn reload_on_hangup(_state: AppState, mut shutdown: Shutdown) {
    shutdown.wait().await
}
