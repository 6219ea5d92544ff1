//! Scoring shipments: the delay model and carrier ranking where a model is loaded, the
//! fallback table where none is (or it fails), then the routing table on every answer. One
//! code path serves single requests and batches; a large batch is cut into one run per core.

use std::sync::Arc;

use dispatch_risk_training::carrier::{RankingPolicy, Recommendation};
use dispatch_risk_training::data::contract;
use dispatch_risk_training::data::table::SECONDS_PER_DAY;
use dispatch_risk_training::data::Timestamp;
use dispatch_risk_training::features::schema::{calendar_features, CALENDAR_FEATURES};
use dispatch_risk_training::model::{FactorMethod, RiskBands, RiskScore, RiskSource};
use dispatch_risk_training::parallel;

use super::decision::{ApprovalNeed, CarrierOption, Decision, Factor, ScoredShipment, Source};
use super::request::{to_table, Shipment};
use crate::policy::{FallbackFacts, PolicyError, PolicySource, RoutingFacts};
use crate::serving::LoadedModels;

/// How many factors each answer explains.
pub const TOP_FACTORS: usize = 3;
/// Batches above this size are scored off the async workers and split across the cores.
pub const MIN_SLICE: usize = 64;
/// Weight of the delay risk in the 0-100 priority score; the routing table adds points.
const RISK_PRIORITY_WEIGHT: f64 = 60.0;

/// What the models said about a batch.
struct ModelPart {
    /// `None` when no delay model answered.
    risks: Option<Vec<RiskScore>>,
    recommendations: Vec<Option<Recommendation>>,
    scored_carrier: Vec<Option<String>>,
    bands: RiskBands,
    failed: bool,
}

fn model_part(models: &LoadedModels, shipments: &[Shipment], ranking: &RankingPolicy) -> ModelPart {
    let mut scored_carrier: Vec<Option<String>> =
        shipments.iter().map(|s| s.carrier.clone()).collect();
    let Some(lock) = &models.delay else {
        return ModelPart {
            risks: None,
            recommendations: vec![None; shipments.len()],
            scored_carrier,
            bands: RiskBands::default(),
            failed: false,
        };
    };
    let model = match lock.read() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    let mut table = to_table(shipments);
    let rows: Vec<usize> = (0..shipments.len()).collect();
    let mut failed = false;
    let recommendations = match model.recommend(&table, &rows, None, ranking) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "carrier recommendation failed");
            failed = true;
            vec![None; shipments.len()]
        }
    };
    // Without a booked carrier, the risk is the recommended carrier's.
    for (r, rec) in recommendations.iter().enumerate() {
        if scored_carrier[r].is_none() {
            if let Some(rec) = rec {
                table.carrier.set(r, Some(&rec.recommended.carrier));
                scored_carrier[r] = Some(rec.recommended.carrier.clone());
            }
        }
    }
    let x = model.features(&table, &rows);
    let risks = match model.score(&x, TOP_FACTORS, FactorMethod::Path) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::warn!(error = %e, "delay model failed; the fallback table answers");
            failed = true;
            None
        }
    };
    ModelPart {
        risks,
        recommendations,
        scored_carrier,
        bands: model.risk_bands(),
        failed,
    }
}

/// The fallback table's facts for one shipment.
pub fn fallback_facts(s: &Shipment, now: Timestamp) -> FallbackFacts {
    let calendar = calendar_features(s.scheduled, s.deadline, s.number("distance_km"));
    let mut features: Vec<(&'static str, Option<f64>)> = CALENDAR_FEATURES
        .iter()
        .zip(calendar)
        .map(|(n, v)| (*n, Some(v).filter(|v| v.is_finite())))
        .collect();
    for name in contract::NUMERIC.iter().chain(contract::FLAGS.iter()) {
        features.push((name, s.number(name)));
    }
    FallbackFacts {
        features,
        deadline_before_scheduled: s.deadline < s.scheduled,
        scheduled_in_past: s.scheduled < now,
    }
}

/// Scores `shipments` in order, off the async workers unless there is only one (a bounded
/// ~0.1 ms, less than handing it over costs). Fails only when the policies cannot answer.
pub async fn score(
    models: Arc<LoadedModels>,
    policies: Arc<PolicySource>,
    shipments: Vec<Shipment>,
    now: Timestamp,
) -> Result<Vec<Decision>, PolicyError> {
    if shipments.len() > 1 {
        tokio::task::spawn_blocking(move || score_now(&models, &policies, shipments, now))
            .await
            .map_err(|e| PolicyError::Evaluation(format!("scoring thread: {e}")))?
    } else {
        score_now(&models, &policies, shipments, now)
    }
}

/// [`score`] on the calling thread, a large batch cut into one run of shipments per core: each
/// core asks the models about its run, then (once every run has answered, so that a batch
/// never mixes sources) routes and answers its run.
pub fn score_now(
    models: &LoadedModels,
    source: &PolicySource,
    shipments: Vec<Shipment>,
    now: Timestamp,
) -> Result<Vec<Decision>, PolicyError> {
    let n = shipments.len();
    let runs = parallel::split(shipments, MIN_SLICE);
    let parts: Vec<ModelPart> = parallel::each(runs.iter().collect(), |run: &Vec<Shipment>| {
        model_part(models, run, &source.ranking)
    })
    .into_iter()
    .zip(&runs)
    .map(|(part, run)| {
        // A model that panics is a model that failed: the fallback table answers.
        part.unwrap_or_else(|| ModelPart {
            risks: None,
            recommendations: vec![None; run.len()],
            scored_carrier: vec![None; run.len()],
            bands: RiskBands::default(),
            failed: true,
        })
    })
    .collect();
    // One run without model risks sends the whole batch to the fallback table.
    let kind = if parts.iter().all(|p| p.risks.is_some()) {
        Source::Model
    } else {
        Source::Rules
    };
    let batch = Batch {
        source,
        kind,
        degraded: kind == Source::Rules || parts.iter().any(|p| p.failed) || models.delay.is_none(),
        model_version: models.delay.as_ref().and(models.version.clone()),
        now,
    };
    let mut out = Vec::with_capacity(n);
    for answers in parallel::each(runs.into_iter().zip(parts).collect(), |(run, part)| {
        batch.answer(run, part)
    }) {
        out.extend(
            answers.ok_or_else(|| PolicyError::Evaluation("a policy thread panicked".into()))??,
        );
    }
    Ok(out)
}

/// What every answer of one batch shares.
struct Batch<'a> {
    source: &'a PolicySource,
    kind: Source,
    degraded: bool,
    model_version: Option<String>,
    now: Timestamp,
}

impl Batch<'_> {
    /// The answers for one run of shipments and what the models said about it.
    fn answer(&self, run: Vec<Shipment>, part: ModelPart) -> Result<Vec<Decision>, PolicyError> {
        let mut risks = match (self.kind, part.risks) {
            (Source::Model, Some(risks)) => risks.into_iter(),
            _ => Vec::new().into_iter(),
        };
        run.into_iter()
            .zip(part.recommendations)
            .zip(part.scored_carrier)
            .map(|((s, rec), scored_carrier)| {
                let (risk, fallback_rule) = match risks.next() {
                    Some(risk) => (risk, None),
                    None => {
                        let a = self.source.fallback(&fallback_facts(&s, self.now))?;
                        let risk = RiskScore {
                            delay_risk: a.delay_risk,
                            risk_band: part.bands.band(a.delay_risk),
                            top_factors: Vec::new(),
                            source: RiskSource::Rules,
                            matched_rule: None,
                        };
                        (risk, Some(a.rule))
                    }
                };
                let routing = self.source.route(&RoutingFacts {
                    risk_band: risk.risk_band.as_str(),
                    delay_risk: risk.delay_risk,
                    source: self.kind.as_str(),
                    customer_tier: s.category("customer_tier").map(str::to_string),
                    priority: s.category("priority").map(str::to_string),
                    order_value: s.number("order_value"),
                    hazardous: s.flag("hazardous"),
                    temperature_controlled: s.flag("temperature_controlled"),
                    slack_days: (s.deadline - s.scheduled) as f64 / SECONDS_PER_DAY,
                    same_day: s.same_day,
                    credit_hold: s.credit_hold,
                })?;
                let mut matched_rules: Vec<String> = fallback_rule.into_iter().collect();
                matched_rules.extend(routing.matched_rules);
                let priority = (RISK_PRIORITY_WEIGHT * risk.delay_risk + routing.priority_points)
                    .clamp(0.0, 100.0);
                let (recommended_carrier, alternatives) = match rec {
                    Some(r) => (
                        Some(CarrierOption::from(r.recommended)),
                        r.alternatives
                            .into_iter()
                            .map(CarrierOption::from)
                            .collect(),
                    ),
                    None => (None, Vec::new()),
                };
                let customer_tier = s.category("customer_tier").map(str::to_string);
                let order_value = s.number("order_value");
                Ok(Decision {
                    score_id: new_score_id(),
                    shipment: ScoredShipment {
                        customer_tier,
                        order_value,
                        id: s.id,
                        warehouse: s.warehouse,
                        destination: s.destination,
                        scheduled: s.scheduled,
                        deadline: s.deadline,
                    },
                    delay_risk: (risk.delay_risk * 1e6).round() / 1e6,
                    risk_band: risk.risk_band.into(),
                    top_factors: risk
                        .top_factors
                        .into_iter()
                        .map(|f| Factor {
                            feature: f.feature,
                            value: f.value,
                            contribution: f.contribution,
                        })
                        .collect(),
                    scored_carrier,
                    recommended_carrier,
                    alternatives,
                    priority_score: (priority * 10.0).round() / 10.0,
                    queue: routing.queue,
                    approval: ApprovalNeed {
                        required: routing.requires_approval,
                        approver_role: routing.approver_role,
                        reason_codes: routing.reason_codes,
                    },
                    source: self.kind,
                    model_version: self.model_version.clone(),
                    policy_version: self.source.version.clone(),
                    degraded: self.degraded,
                    matched_rules,
                    ticket: None,
                })
            })
            .collect()
    }
}

/// A unique, time-ordered id: milliseconds since the epoch then 64 random bits, in hex.
pub fn new_score_id() -> String {
    let ms = chrono::Utc::now().timestamp_millis();
    format!("sc_{ms:012x}{:016x}", rand::random::<u64>())
}
