//! `POST /v1/score` and `POST /v1/score/batch`: delay risk, carrier recommendation, queue and
//! approval for shipments; each answer is sent once its records are committed.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Extension;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa_axum::routes;

use super::answers::ScoreResponse;
use super::error::{field_of, ApiError, Code};
use super::idempotency::{self, Begun, Claimed, Prepared, Shape};
use super::json::{ApiBytes, ApiJson};
use super::{Access, Load, Routes};
use crate::auth::Caller;
use crate::metrics::ScoreLabels;
use crate::policy::PolicySource;
use crate::scoring::scorer::MIN_SLICE;
use crate::scoring::{self, Decision, FieldError, RiskBand, Shipment, ShipmentRequest, Source};
use crate::serving::LoadedModels;
use crate::state::AppState;
use crate::store::approvals::ApprovalOp;
use crate::store::keys::Role;
use crate::store::{date_text, Facts, ScoreRecord, Text, WriteError};
use dispatch_risk_training::parallel;

/// The most shipments one batch may hold.
pub const MAX_BATCH: usize = 10_000;
/// A full batch of large shipments fits.
const MAX_BATCH_BODY_BYTES: usize = 32 * 1024 * 1024;
/// One shipment with every field at its longest and 64 extras is under 40 kB; axum's default
/// of 2 MB let one body carry 170k extra keys.
const MAX_SCORE_BODY_BYTES: usize = 64 * 1024;

pub(crate) fn routes(r: Routes) -> Routes {
    let (schemas, paths, one) = routes!(score_one);
    let r = r.add(
        Access::Role(Role::Workflow),
        Load::Request,
        (
            schemas,
            paths,
            one.layer(DefaultBodyLimit::max(MAX_SCORE_BODY_BYTES)),
        ),
    );
    let (schemas, paths, batch) = routes!(score_batch);
    r.add(
        Access::Role(Role::Workflow),
        Load::Batch,
        (
            schemas,
            paths,
            batch.layer(DefaultBodyLimit::max(MAX_BATCH_BODY_BYTES)),
        ),
    )
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// At most 10,000 shipments; answers come back in the same order.
    pub shipments: Vec<ShipmentRequest>,
}

/// A batch as it arrives: the body is only scanned on the async worker, each shipment's JSON
/// kept as sent; the shipments are then read and checked across the cores, and each is
/// recorded as it was sent rather than written out again. Documented as [`BatchRequest`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBatch {
    #[serde(deserialize_with = "at_most_a_batch")]
    shipments: Vec<Box<RawValue>>,
}

/// What the parser says when a batch holds one shipment too many.
const TOO_MANY: &str = "more shipments than a batch holds";

/// The shipments as they are parsed, refused at the first one past [`MAX_BATCH`]: a body of
/// 100,000 tiny shipments is not read to its end first.
fn at_most_a_batch<'de, D>(d: D) -> Result<Vec<Box<RawValue>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    struct Bounded;
    impl<'de> serde::de::Visitor<'de> for Bounded {
        type Value = Vec<Box<RawValue>>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            write!(f, "an array of at most {MAX_BATCH} shipments")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut shipments = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(MAX_BATCH));
            while let Some(s) = seq.next_element()? {
                if shipments.len() == MAX_BATCH {
                    return Err(serde::de::Error::custom(TOO_MANY));
                }
                shipments.push(s);
            }
            Ok(shipments)
        }
    }
    d.deserialize_seq(Bounded)
}

/// Parses a batch body off the async workers (tens of megabytes take tens of milliseconds),
/// with the errors [`ApiJson`] gives.
async fn read_batch(headers: &HeaderMap, body: Bytes) -> Result<RawBatch, ApiError> {
    if !super::json::is_json(headers) {
        return Err(super::json::not_json());
    }
    let parsed = tokio::task::spawn_blocking(move || serde_json::from_slice::<RawBatch>(&body))
        .await
        .map_err(|e| ApiError::internal(format!("reading the batch: {e}")))?;
    parsed.map_err(|e| {
        let message = e.to_string();
        if message.starts_with(TOO_MANY) {
            ApiError::unprocessable(
                Code::BatchTooLarge,
                Some("shipments"),
                format!(
                    "more than {MAX_BATCH} shipments; a batch holds at most {MAX_BATCH}: split it"
                ),
            )
        } else if e.is_data() {
            ApiError::invalid_request(field_of(&message), message)
        } else {
            super::json::malformed(&message)
        }
    })
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BatchResponse {
    pub count: usize,
    /// True when any answer fell back to rules.
    pub degraded: bool,
    pub scores: Vec<ScoreResponse>,
}

/// Score one shipment.
#[utoipa::path(
    post,
    path = "/v1/score",
    tag = "scoring",
    request_body = ShipmentRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Repeat-safe retries: the first answer is returned again")),
    responses(
        (status = 200, description = "The score", body = ScoreResponse),
        (status = 400, description = "A field is missing or wrong", body = super::error::ErrorBody),
        (status = 409, description = "A request with the same Idempotency-Key is still being answered", body = super::error::ErrorBody),
        (status = 413, description = "A body over 64 kB", body = super::error::ErrorBody),
        (status = 401, description = "No valid API key", body = super::error::ErrorBody),
        (status = 403, description = "The key's role may not score", body = super::error::ErrorBody),
    ),
)]
pub async fn score_one(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<ShipmentRequest>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    // One reading of the clock: the decision time and the record's time are the same instant.
    let at = state.clock.now();
    let now = at.timestamp();
    let request_json = to_json(&request)?;
    let shipment =
        Shipment::parse(request, now).map_err(|e| ApiError::invalid_field(&e.field, e.message))?;
    let mut tally = Tally::default();
    let compute = async {
        let (models, policies) = (state.models.current(), state.policies.source());
        let mut decisions = decide(&models, &policies, vec![shipment], now).await?;
        tally.add(&decisions);
        let ops = super::approvals::planner(&state, &policies, &caller, at).plan(&mut decisions);
        let (decision, op) = decisions
            .pop()
            .zip(ops.into_iter().next())
            .ok_or_else(|| ApiError::internal("no answer"))?;
        let mut record = record_of(
            decision,
            "score",
            &Text::from(crate::clock::text(at)),
            Text::from(request_json.as_str()),
        )?;
        record.approval = op.map(Box::new);
        Ok(Prepared {
            records: stamped(&caller, vec![record], started),
            shape: Shape::Single,
        })
    };
    let response = idempotency::respond(
        &state,
        &caller,
        &headers,
        "/v1/score",
        || request_json.clone(),
        compute,
    )
    .await?;
    // Empty for a replayed answer: it was counted when it was first sent.
    tally.publish(&state.metrics);
    Ok(response)
}

/// Score up to 10,000 shipments in one request.
#[utoipa::path(
    post,
    path = "/v1/score/batch",
    tag = "scoring",
    request_body = BatchRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Repeat-safe retries")),
    responses(
        (status = 200, description = "One answer per shipment, in order", body = BatchResponse),
        (status = 400, description = "A shipment's field is missing or wrong (the field names its index)", body = super::error::ErrorBody),
        (status = 409, description = "A request with the same Idempotency-Key is still being answered", body = super::error::ErrorBody),
        (status = 422, description = "More than 10,000 shipments", body = super::error::ErrorBody),
    ),
)]
pub async fn score_batch(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    ApiBytes(body): ApiBytes,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let request = read_batch(&headers, body).await?;
    let n = request.shipments.len();
    let now = state.clock.now().timestamp();
    // Every shipment is checked before any is scored: a bad batch changes nothing, and the
    // first bad shipment by index is reported. Reading and checking are spread over the
    // cores, off the async workers.
    let raw = request.shipments;
    let (raw, parsed) = tokio::task::spawn_blocking(move || {
        let parsed = parallel::map(&raw, MIN_SLICE, |r| read_shipment(r.get(), now));
        (raw, parsed)
    })
    .await
    .map_err(|e| ApiError::internal(format!("checking the batch: {e}")))?;
    let parsed = parsed.ok_or_else(|| ApiError::internal("checking the batch failed"))?;
    let mut shipments = Vec::with_capacity(n);
    for (i, shipment) in parsed.into_iter().enumerate() {
        shipments.push(shipment.map_err(|e| e.in_batch(i))?);
    }
    let request_jsons: Vec<Text> = raw
        .into_iter()
        .map(|r| Text::from(Box::<str>::from(r)))
        .collect();
    // The request as one text only matters for an idempotency key's hash; without a key the
    // shipments' texts go straight into their records.
    let keyed_request = headers.contains_key(idempotency::HEADER).then(|| {
        let texts: Vec<&str> = request_jsons.iter().map(|t| &**t).collect();
        format!("{{\"shipments\":[{}]}}", texts.join(","))
    });
    let request_json = move || keyed_request.unwrap_or_default();
    let claimed =
        match idempotency::begin(&state, &caller, &headers, "/v1/score/batch", request_json).await?
        {
            Begun::Replayed(response) => return Ok(response),
            Begun::Fresh(claimed) => claimed,
        };
    let call = BatchCall {
        state: &state,
        caller: &caller,
        claimed: &claimed,
        now,
        started,
    };
    let answered = call.record(shipments, request_jsons).await;
    claimed.answer(&state, answered).await
}

/// Shipments per chunk of a streamed batch: the writer inserts one chunk while the next is
/// scored. Large enough that each chunk still spreads over the cores.
const CHUNK: usize = 1_000;
/// The smallest chunk the last ones are cut down to.
const LAST_CHUNK: usize = 125;

/// How many of the `remaining` shipments the next chunk takes: [`CHUNK`], then halving over
/// the batch's last two chunks' worth down to [`LAST_CHUNK`]. The last chunk is inserted
/// after every other is scored, with the answer waiting: at 1,000 it took 7.5 ms of the 34
/// between the last scoring and the answer.
fn next_chunk(remaining: usize) -> usize {
    if remaining > 2 * CHUNK {
        CHUNK
    } else {
        (remaining / 2).clamp(LAST_CHUNK, CHUNK).min(remaining)
    }
}

/// One checked batch call on its way to the store: who sent it, its idempotency claim, the
/// time its shipments were checked at and when the request arrived (for its records' latency).
struct BatchCall<'a> {
    state: &'a AppState,
    caller: &'a Caller,
    claimed: &'a Claimed,
    now: i64,
    started: Instant,
}

/// What a batch is decided with, taken once as it starts: a reload meanwhile does not mix
/// two versions in one batch.
struct Serving {
    models: Arc<LoadedModels>,
    policies: Arc<PolicySource>,
    at: DateTime<Utc>,
    created_at: Text,
}

impl Serving {
    async fn decide(&self, shipments: Vec<Shipment>, now: i64) -> Result<Vec<Decision>, ApiError> {
        decide(&self.models, &self.policies, shipments, now).await
    }
}

/// How a streamed batch ended.
enum Streamed {
    /// Its rows are durable; the body.
    Committed(Text),
    /// Nothing was written (its transaction rolled back): a later chunk's models answered
    /// differently from the first's (a batch never mixes sources), or the approvals the
    /// answers proposed changed meanwhile. The batch is scored again whole.
    Again,
}

impl BatchCall<'_> {
    fn serving(&self) -> Serving {
        let at = self.state.clock.now();
        Serving {
            models: self.state.models.current(),
            policies: self.state.policies.source(),
            at,
            created_at: Text::from(crate::clock::text(at)),
        }
    }

    /// Scores the batch and commits it in one transaction (all of its rows or none); the body
    /// once it is durable. On SQLite the batch is scored and written in chunks into one open
    /// transaction ([`Self::streamed`]); elsewhere, or when a stream cannot stand, it is
    /// scored whole and then written.
    async fn record(
        &self,
        shipments: Vec<Shipment>,
        requests: Vec<Text>,
    ) -> Result<Text, ApiError> {
        let shipments = if self.state.store.recorder.streams() && shipments.len() > CHUNK {
            match self.streamed(shipments, &requests).await? {
                Streamed::Committed(body) => return Ok(body),
                // Rare, so read again rather than kept: the shipments went into their answers.
                Streamed::Again => reread(&requests, self.now)?,
            }
        } else {
            shipments
        };
        self.whole(shipments, requests).await
    }

    /// Scores the batch chunk by chunk, each chunk's records streamed to the writer while the
    /// next is scored, and commits them in one transaction with the key's answer.
    async fn streamed(
        &self,
        shipments: Vec<Shipment>,
        requests: &[Text],
    ) -> Result<Streamed, ApiError> {
        let serving = self.serving();
        let n = shipments.len();
        let mut stream = self
            .state
            .store
            .recorder
            .stream(n)
            .await
            .map_err(idempotency::write_error)?;
        let mut planner =
            super::approvals::planner(self.state, &serving.policies, self.caller, serving.at);
        let (mut answers, mut tickets, mut tally) =
            (Vec::with_capacity(n), Vec::new(), Tally::default());
        let mut first: Option<(Source, bool)> = None;
        let mut shipments = shipments.into_iter();
        let mut requests = requests.iter().cloned();
        loop {
            let size = next_chunk(shipments.len());
            let chunk: Vec<Shipment> = shipments.by_ref().take(size).collect();
            if chunk.is_empty() {
                break;
            }
            let chunk_requests: Vec<Text> = requests.by_ref().take(chunk.len()).collect();
            let mut decisions = serving.decide(chunk, self.now).await?;
            let Some(this) = decisions.first().map(|d| (d.source, d.degraded)) else {
                break;
            };
            // Dropping the stream rolls back what it wrote.
            if *first.get_or_insert(this) != this {
                tracing::info!(
                    "the models answered a streamed batch's chunks differently; scoring it again"
                );
                return Ok(Streamed::Again);
            }
            tally.add(&decisions);
            let ops = planner.plan(&mut decisions);
            let records = records_of(decisions, chunk_requests, ops, &serving.created_at).await?;
            let records = stamped(self.caller, records, self.started);
            tickets.extend(super::approvals::tickets(&records));
            answers.extend(records.iter().map(|r| r.response.clone()));
            if stream.send(records).await.is_err() {
                // The writer gave up; `finish` says why.
                break;
            }
        }
        let degraded = first.is_some_and(|(_, degraded)| degraded);
        match self
            .claimed
            .finish(stream, &answers, Shape::Batch { degraded })
            .await
        {
            Ok(body) => {
                tally.publish(&self.state.metrics);
                super::approvals::remember(self.state, &tickets);
                Ok(Streamed::Committed(body))
            }
            Err(WriteError::StaleApproval(shipment)) => {
                tracing::info!(%shipment, "approval proposal stale in a streamed batch; scoring it again");
                Ok(Streamed::Again)
            }
            Err(e) => Err(idempotency::write_error(e)),
        }
    }

    /// Scores the whole batch, then commits it in one transaction.
    async fn whole(&self, shipments: Vec<Shipment>, requests: Vec<Text>) -> Result<Text, ApiError> {
        let serving = self.serving();
        let mut decisions = serving.decide(shipments, self.now).await?;
        let mut tally = Tally::default();
        tally.add(&decisions);
        let degraded = decisions.iter().any(|d| d.degraded);
        let ops = super::approvals::planner(self.state, &serving.policies, self.caller, serving.at)
            .plan(&mut decisions);
        let records = records_of(decisions, requests, ops, &serving.created_at).await?;
        // The answers are serialized once: the body is their concatenation, as BatchResponse.
        let body = self
            .claimed
            .commit(
                self.state,
                stamped(self.caller, records, self.started),
                Shape::Batch { degraded },
            )
            .await?;
        tally.publish(&self.state.metrics);
        Ok(body)
    }
}

/// A batch's shipments read again from their texts, as they were checked the first time.
fn reread(requests: &[Text], now: i64) -> Result<Vec<Shipment>, ApiError> {
    requests
        .iter()
        .enumerate()
        .map(|(i, r)| read_shipment(r, now).map_err(|e| e.in_batch(i)))
        .collect()
}

/// The records of a batch's decisions: each core serializes its run of answers and turns
/// them into records, moving their strings; the decisions are freed there too rather than
/// one by one on an async worker.
async fn records_of(
    decisions: Vec<Decision>,
    requests: Vec<Text>,
    ops: Vec<Option<ApprovalOp>>,
    created_at: &Text,
) -> Result<Vec<ScoreRecord>, ApiError> {
    let decided: Vec<((Decision, Text), Option<ApprovalOp>)> =
        decisions.into_iter().zip(requests).zip(ops).collect();
    let created_at = created_at.clone();
    tokio::task::spawn_blocking(move || {
        parallel::map_owned(decided, MIN_SLICE, |((decision, request), op)| {
            record_of(decision, "batch", &created_at, request).map(|mut r| {
                r.approval = op.map(Box::new);
                r
            })
        })
    })
    .await
    .map_err(|e| ApiError::internal(format!("serializing the answers: {e}")))?
    .ok_or_else(|| ApiError::internal("serializing the answers failed"))?
    .into_iter()
    .collect()
}

/// A batch shipment's error before its index is known.
enum ItemError {
    /// JSON that does not fit the type: the field within the shipment, serde's message.
    Json {
        field: Option<String>,
        message: String,
    },
    /// A value that fails its check.
    Value(FieldError),
}

impl ItemError {
    /// The error of the `index`th shipment, its field named `shipments[index].field`.
    fn in_batch(self, index: usize) -> ApiError {
        match self {
            ItemError::Value(e) => {
                let e = e.in_batch(index);
                ApiError::invalid_field(&e.field, e.message)
            }
            ItemError::Json { field, message } => {
                let at = format!("shipments[{index}]");
                let field = field.map_or(at.clone(), |f| format!("{at}.{f}"));
                let message = format!("{field}: {message}");
                ApiError::invalid_request(Some(field), message)
            }
        }
    }
}

/// Reads and checks one shipment of a batch.
fn read_shipment(raw: &str, now: i64) -> Result<Shipment, ItemError> {
    // Read plainly first: tracking the path cost a third of the reading (247 M against 169 M
    // instructions a batch), and only a shipment that fails needs it, so that one is read
    // again for its error.
    let request = match serde_json::from_str::<ShipmentRequest>(raw) {
        Ok(request) => request,
        Err(_) => read_with_path(raw)?,
    };
    Shipment::parse(request, now).map_err(ItemError::Value)
}

/// Reads a shipment tracking where it fails, for an error that names the field.
fn read_with_path(raw: &str) -> Result<ShipmentRequest, ItemError> {
    let mut de = serde_json::Deserializer::from_str(raw);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let message = e.inner().to_string();
        // Missing and unknown fields are reported at the shipment itself ("."); their
        // message names the field.
        let path = e.path().to_string();
        let field = if path == "." {
            field_of(&message)
        } else {
            Some(path)
        };
        ItemError::Json { field, message }
    })
}

/// What the store keeps of one decision, its answer's JSON among it; latency and key are set
/// when it is sent.
fn record_of(
    mut decision: Decision,
    endpoint: &'static str,
    created_at: &Text,
    request: Text,
) -> Result<ScoreRecord, ApiError> {
    let shipment = &mut decision.shipment;
    let facts = Facts {
        scored_carrier: decision.scored_carrier.as_deref().map(Text::from),
        warehouse: std::mem::take(&mut shipment.warehouse).into(),
        destination: std::mem::take(&mut shipment.destination).into(),
        scheduled_date: date_text(shipment.scheduled).into(),
        date_deadline: date_text(shipment.deadline).into(),
    };
    let mut record = ScoreRecord {
        score_id: decision.score_id.as_str().into(),
        shipment_id: shipment.id.as_str().into(),
        created_at: created_at.clone(),
        endpoint,
        request,
        response: Text::from(""),
        model_version: decision.model_version.as_deref().map(Text::from),
        policy_version: decision.policy_version.as_str().into(),
        source: decision.source.as_str(),
        risk_band: decision.risk_band.as_str(),
        delay_risk: decision.delay_risk,
        queue: decision.queue.as_str(),
        requires_approval: decision.approval.required,
        degraded: decision.degraded,
        latency_us: 0,
        api_key_id: None,
        facts,
        approval: None,
    };
    record.response = to_json(&ScoreResponse::from(decision))?.into();
    Ok(record)
}

fn to_json<T: Serialize>(value: &T) -> Result<String, ApiError> {
    serde_json::to_string(value).map_err(|e| ApiError::internal(format!("writing JSON: {e}")))
}

async fn decide(
    models: &Arc<LoadedModels>,
    policies: &Arc<PolicySource>,
    shipments: Vec<Shipment>,
    now: i64,
) -> Result<Vec<Decision>, ApiError> {
    scoring::score(models.clone(), policies.clone(), shipments, now)
        .await
        .map_err(|e| ApiError::unavailable(format!("policies could not be evaluated: {e}")))
}

/// Answers counted per label before the metrics see them: one lookup per band and source,
/// and per warehouse and source, not per answer; published once the answers are sent.
#[derive(Default)]
struct Tally {
    bands: Vec<((RiskBand, Source), u64)>,
    /// At most [`crate::metrics::MAX_WAREHOUSES`] warehouses; the rest count as "other", as
    /// the metric would count them.
    warehouses: Vec<((String, Source), u64)>,
}

impl Tally {
    fn add(&mut self, answers: &[Decision]) {
        for a in answers {
            let labels = (a.risk_band, a.source);
            match self.bands.iter_mut().find(|(l, _)| *l == labels) {
                Some((_, n)) => *n += 1,
                None => self.bands.push((labels, 1)),
            }
            let warehouse = a.shipment.warehouse.as_str();
            let known = self.warehouses.len() < crate::metrics::MAX_WAREHOUSES;
            let position = |ws: &[((String, Source), u64)], name: &str| {
                ws.iter()
                    .position(|((w, s), _)| *s == a.source && w == name)
            };
            let i = match position(&self.warehouses, warehouse) {
                Some(i) => Some(i),
                None if known => None,
                None => position(&self.warehouses, "other"),
            };
            match i {
                Some(i) => self.warehouses[i].1 += 1,
                None => {
                    let name = if known { warehouse } else { "other" };
                    self.warehouses.push(((name.to_string(), a.source), 1));
                }
            }
        }
    }

    fn publish(self, metrics: &crate::metrics::Metrics) {
        for ((warehouse, source), n) in self.warehouses {
            metrics.count_warehouse(&warehouse, source.as_str(), n);
        }
        for ((band, source), n) in self.bands {
            if source == Source::Rules {
                metrics.fallbacks.inc_by(n);
            }
            let labels = ScoreLabels {
                band: band.as_str().to_string(),
                source: source.as_str().to_string(),
            };
            metrics.scores.get_or_create(&labels).inc_by(n);
        }
    }
}

/// The answers' records with the time they took and the key that asked.
fn stamped(caller: &Caller, mut records: Vec<ScoreRecord>, started: Instant) -> Vec<ScoreRecord> {
    let latency_us = started.elapsed().as_micros() as i64;
    let key = Text::from(caller.key_id.as_str());
    for r in &mut records {
        r.latency_us = latency_us;
        r.api_key_id = Some(key.clone());
    }
    records
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A streamed batch's chunks cover it exactly, none over [`CHUNK`], and a large batch
    /// ends on a chunk of [`LAST_CHUNK`] or fewer.
    #[test]
    fn chunks_cover_the_batch_and_end_small() {
        for n in [1, 124, 125, 126, 999, 1_001, 2_500, 9_999, MAX_BATCH] {
            let mut sizes = Vec::new();
            let mut remaining = n;
            while remaining > 0 {
                let size = next_chunk(remaining);
                assert!((1..=CHUNK).contains(&size), "{n}: {sizes:?} then {size}");
                sizes.push(size);
                remaining -= size;
            }
            assert_eq!(sizes.iter().sum::<usize>(), n);
            if n > 2 * LAST_CHUNK {
                assert!(*sizes.last().unwrap() <= LAST_CHUNK, "{n}: {sizes:?}");
            }
        }
        let mut sizes = Vec::new();
        let mut remaining = MAX_BATCH;
        while remaining > 0 {
            sizes.push(next_chunk(remaining));
            remaining -= sizes.last().unwrap();
        }
        assert_eq!(sizes[..9], [CHUNK; 9]);
        assert_eq!(sizes[9..], [500, 250, 125, 125]);
    }
}
