//! Prometheus metrics for `GET /metrics`: requests and latency per route, scores by band and by
//! source, fallbacks, idempotent replays, the versions being served, and the records waiting
//! to be written.

use std::sync::Mutex;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LatencyLabels {
    pub method: String,
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ScoreLabels {
    pub band: String,
    pub source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WarehouseLabels {
    pub warehouse: String,
    pub source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CategoryLabels {
    pub category: String,
}

/// Warehouses with their own series in `scores_by_warehouse`; later ones count as `other`, so
/// no client can grow the metrics without bound.
pub const MAX_WAREHOUSES: usize = 256;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VersionLabels {
    pub model_version: String,
    pub policy_version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct QueueLabels {
    pub queue: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct ActionLabels {
    pub action: String,
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RouteLabels, Counter>,
    pub latency: Family<LatencyLabels, Histogram>,
    pub scores: Family<ScoreLabels, Counter>,
    pub fallbacks: Counter,
    pub replays: Counter,
    pub versions: Family<VersionLabels, Gauge>,
    /// Score records accepted and not yet in the database (set when metrics are read).
    pub recorder_pending: Gauge,
    /// Requests refused at the door: too many in flight.
    pub shed: Counter,
    /// Requests refused by a rate limit (a key's, or unknown keys' per client address).
    pub rate_limited: Counter,
    /// Open approvals per queue, and pending ones past their SLA (set by the approval timer).
    pub approvals_open: Family<QueueLabels, Gauge>,
    pub approvals_past_sla: Gauge,
    /// Approval steps made, by action (`approval.approved`, `approval.escalated`...).
    pub approval_steps: Family<ActionLabels, Counter>,
    /// Shipments scored per warehouse and source: the fallback share per warehouse.
    pub scores_by_warehouse: Family<WarehouseLabels, Counter>,
    /// Open exception notes per category, and how long the oldest has waited (set by the
    /// approval timer).
    pub exceptions_open: Family<CategoryLabels, Gauge>,
    pub exceptions_oldest_open_seconds: Family<CategoryLabels, Gauge>,
    /// The warehouses `scores_by_warehouse` has a series for.
    warehouses: Mutex<std::collections::HashSet<String>>,
    /// The labels set to 1 in `versions`, reset on reload.
    current_version: Mutex<Option<VersionLabels>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("dispatch_risk");
        let requests = Family::<RouteLabels, Counter>::default();
        let latency = Family::<LatencyLabels, Histogram>::new_with_constructor(|| {
            // 100 µs to 10 s.
            Histogram::new([
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                1.0, 2.5, 10.0,
            ])
        });
        let scores = Family::<ScoreLabels, Counter>::default();
        let fallbacks = Counter::default();
        let replays = Counter::default();
        let versions = Family::<VersionLabels, Gauge>::default();
        let recorder_pending = Gauge::default();
        let shed = Counter::default();
        let rate_limited = Counter::default();
        let approvals_open = Family::<QueueLabels, Gauge>::default();
        let approvals_past_sla = Gauge::default();
        let approval_steps = Family::<ActionLabels, Counter>::default();
        let scores_by_warehouse = Family::<WarehouseLabels, Counter>::default();
        let exceptions_open = Family::<CategoryLabels, Gauge>::default();
        let exceptions_oldest_open_seconds = Family::<CategoryLabels, Gauge>::default();
        registry.register(
            "scores_by_warehouse",
            "Shipments scored, by warehouse and source (model or rules); warehouses past the first 256 count as other",
            scores_by_warehouse.clone(),
        );
        registry.register(
            "exceptions_open",
            "Exception notes not yet resolved, by category (as of the approval timer's last round)",
            exceptions_open.clone(),
        );
        registry.register(
            "exceptions_oldest_open_seconds",
            "How long the oldest open exception note of each category has waited",
            exceptions_oldest_open_seconds.clone(),
        );
        registry.register(
            "approvals_open",
            "Approvals waiting for a person, by queue (as of the approval timer's last round)",
            approvals_open.clone(),
        );
        registry.register(
            "approvals_past_sla",
            "Pending approvals past their due time (as of the approval timer's last round)",
            approvals_past_sla.clone(),
        );
        registry.register(
            "approval_steps",
            "Approval steps made on this instance, by action",
            approval_steps.clone(),
        );
        registry.register(
            "shed",
            "Requests answered 503 overloaded: too many in flight",
            shed.clone(),
        );
        registry.register(
            "rate_limited",
            "Requests answered 429: over a key's rate, or unknown keys from one address",
            rate_limited.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route",
            latency.clone(),
        );
        registry.register(
            "scores",
            "Shipments scored, by risk band and source",
            scores.clone(),
        );
        registry.register(
            "fallbacks",
            "Shipments whose risk came from the fallback table",
            fallbacks.clone(),
        );
        registry.register(
            "idempotent_replays",
            "Requests answered from a stored response (Idempotency-Key)",
            replays.clone(),
        );
        registry.register(
            "serving",
            "1 for the model and policy versions serving",
            versions.clone(),
        );
        registry.register(
            "recorder_pending",
            "Score records waiting for a commit, or spooled and not yet in the database",
            recorder_pending.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
            scores,
            fallbacks,
            replays,
            versions,
            recorder_pending,
            shed,
            rate_limited,
            approvals_open,
            approvals_past_sla,
            approval_steps,
            scores_by_warehouse,
            exceptions_open,
            exceptions_oldest_open_seconds,
            warehouses: Mutex::new(Default::default()),
            current_version: Mutex::new(None),
        }
    }
}

impl Metrics {
    /// Counts `n` shipments of `warehouse` scored by `source`.
    pub fn count_warehouse(&self, warehouse: &str, source: &str, n: u64) {
        let known = {
            let mut seen = self.warehouses.lock().unwrap_or_else(|p| p.into_inner());
            if seen.contains(warehouse) {
                true
            } else if seen.len() < MAX_WAREHOUSES {
                seen.insert(warehouse.to_string());
                true
            } else {
                false
            }
        };
        let labels = WarehouseLabels {
            warehouse: if known { warehouse } else { "other" }.to_string(),
            source: source.to_string(),
        };
        self.scores_by_warehouse.get_or_create(&labels).inc_by(n);
    }

    /// Adds the recorder's commit durations and sizes.
    pub fn register_recorder(&mut self, commits: crate::store::recorder::CommitMetrics) {
        self.registry.register(
            "recorder_commit_seconds",
            "Time each commit of score records took (every answer it held waited for it)",
            commits.seconds,
        );
        self.registry.register(
            "recorder_commit_rows",
            "Score records per commit",
            commits.rows,
        );
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }

    /// Marks the versions now serving.
    pub fn serving(&self, model_version: Option<&str>, policy_version: &str) {
        let labels = VersionLabels {
            model_version: model_version.unwrap_or("none").to_string(),
            policy_version: policy_version.to_string(),
        };
        let mut current = self
            .current_version
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(old) = current.take() {
            self.versions.get_or_create(&old).set(0);
        }
        self.versions.get_or_create(&labels).set(1);
        *current = Some(labels);
    }
}
