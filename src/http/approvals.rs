//! The approval queue's API: list and read approvals, claim and release them, decide them
//! (people only, through their personal tokens), withdraw them (workflows); plus the glue the
//! score routes use to propose, correct and remember the approvals their answers name, and the
//! timer's round. The rules of each step are [`crate::approvals`]'; this module reads the
//! request, asks the store, and answers.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Extension;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa_axum::routes;

use super::error::{ApiError, Code};
use super::json::ApiJson;
use super::middleware::RequestId;
use super::{Access, Load, Routes};
use crate::approvals::{self as domain, DecisionRequest, Refusal};
use crate::auth::Caller;
use crate::policy::DecisionKind;
use crate::state::AppState;
use crate::store::approvals::{
    Approval, ApprovalFilter, ApprovalOrder, Cursor, CursorKey, Transition, TransitionError,
};
use crate::store::audit::{AuditEntry, AuditRow};
use crate::store::keys::Role;
use crate::store::{ScoreRecord, StoreError};

pub(crate) fn routes(r: Routes) -> Routes {
    r.add(Access::AnyKey, Load::Request, routes!(list_approvals))
        .add(Access::AnyKey, Load::Request, routes!(approval_stats))
        .add(Access::AnyKey, Load::Request, routes!(get_approval))
        .add(Access::Role(Role::Manager), Load::Request, routes!(claim))
        .add(Access::Role(Role::Manager), Load::Request, routes!(release))
        .add(Access::Role(Role::Manager), Load::Request, routes!(decide))
        .add(
            Access::Role(Role::Workflow),
            Load::Request,
            routes!(withdraw),
        )
}

// --- What the score routes use -------------------------------------------------------------

/// A planner of a request's approvals ([`domain::Planner`]) on the active policy.
pub(crate) fn planner<'a>(
    state: &'a AppState,
    policies: &'a crate::policy::PolicySource,
    caller: &Caller,
    at: DateTime<Utc>,
) -> domain::Planner<'a> {
    domain::Planner::new(&policies.approvals, caller, at, &state.open_approvals)
}

/// (shipment, approval id, whether it is new) of each record's approval step.
pub(crate) fn tickets(records: &[ScoreRecord]) -> Vec<(String, String, bool)> {
    records
        .iter()
        .filter_map(|r| r.approval.as_deref())
        .map(|op| (op.shipment_id.clone(), op.id.clone(), op.open))
        .collect()
}

/// After a commit: the approvals it opened or updated are the shipments' open ones.
pub(crate) fn remember(state: &AppState, tickets: &[(String, String, bool)]) {
    for (shipment, id, new) in tickets {
        let known = state.open_approvals.get(shipment);
        let approval_state = match (new, known) {
            (false, Some((known_id, s))) if &known_id == id => s,
            _ => "pending".to_string(),
        };
        state.open_approvals.set(shipment, id, &approval_state);
    }
}

/// After the recorder found a proposal stale: asks the database for the open approvals of the
/// records' shipments and makes each step (and its answer) name the right one.
pub(crate) async fn correct(
    state: &AppState,
    records: &mut [ScoreRecord],
) -> Result<(), StoreError> {
    let mut seen: std::collections::HashMap<String, (String, String)> = Default::default();
    for r in records.iter_mut() {
        let Some(op) = r.approval.as_deref_mut() else {
            continue;
        };
        let known = match seen.get(&op.shipment_id) {
            Some(k) => Some(k.clone()),
            None => state
                .store
                .open_approval(&op.shipment_id)
                .await?
                .map(|a| (a.id, a.state)),
        };
        let old = op.id.clone();
        let (id, approval_state) = match known {
            Some((id, s)) => {
                op.open = false;
                (id, s)
            }
            None => {
                if !op.open {
                    op.open = true;
                    op.id = domain::new_approval_id();
                }
                (op.id.clone(), "pending".to_string())
            }
        };
        op.id = id.clone();
        state
            .open_approvals
            .set(&op.shipment_id, &id, &approval_state);
        seen.insert(op.shipment_id.clone(), (id.clone(), approval_state.clone()));
        r.response = patch_ticket(&r.response, &old, &id, &approval_state).into();
    }
    Ok(())
}

/// The answer's `"approval":{"id":OLD,"state":...` made to name `id` in `state`.
fn patch_ticket(response: &str, old: &str, id: &str, state: &str) -> String {
    let from = format!("\"approval\":{{\"id\":\"{old}\",\"state\":\"");
    let Some(start) = response.find(&from) else {
        return response.to_string();
    };
    let after = start + from.len();
    let end = response[after..].find('"').map_or(after, |e| after + e);
    format!(
        "{}\"approval\":{{\"id\":\"{id}\",\"state\":\"{state}{}",
        &response[..start],
        &response[end..]
    )
}

/// One round of the approval timer: the steps made.
pub(crate) async fn run_timer(state: &AppState, limit: i64) -> Result<usize, StoreError> {
    let now = state.clock.now();
    let policies = state.policies.source();
    let now_text = crate::clock::text(now);
    let due = state.store.approvals_past(&now_text, limit).await?;
    let mut made = 0;
    for a in due {
        let Some(t) = domain::overdue(&a, &policies.approvals, now) else {
            continue;
        };
        match state.store.transition(&t).await {
            Ok(()) => {
                made += 1;
                after_transition(state, &t);
            }
            // Another instance moved it first, or a person did.
            Err(TransitionError::Changed(_)) => {}
            Err(TransitionError::Store(e)) => return Err(e),
        }
    }
    // The queue's gauges, for Grafana.
    let counts = state.store.open_counts().await?;
    state.metrics.approvals_open.clear();
    for (queue, n) in counts {
        state
            .metrics
            .approvals_open
            .get_or_create(&crate::metrics::QueueLabels { queue })
            .set(n);
    }
    let past = state.store.past_sla(&now_text).await?;
    state.metrics.approvals_past_sla.set(past);
    let aging = state.store.note_aging(now).await?;
    state.metrics.exceptions_open.clear();
    state.metrics.exceptions_oldest_open_seconds.clear();
    for (category, a) in aging {
        let labels = crate::metrics::CategoryLabels { category };
        state
            .metrics
            .exceptions_open
            .get_or_create(&labels)
            .set(a.open as i64);
        state
            .metrics
            .exceptions_oldest_open_seconds
            .get_or_create(&labels)
            .set((a.oldest_hours * 3600.0) as i64);
    }
    Ok(made)
}

fn after_transition(state: &AppState, t: &Transition) {
    state
        .metrics
        .approval_steps
        .get_or_create(&crate::metrics::ActionLabels {
            action: t.audit.action.clone(),
        })
        .inc();
    let a = &t.after;
    if a.is_open() {
        state.open_approvals.set(&a.shipment_id, &a.id, &a.state);
    } else {
        state.open_approvals.close(&a.shipment_id);
    }
}

// --- The routes ----------------------------------------------------------------------------

/// Filters and order of the queue.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Comma-separated states [default: pending,escalated].
    state: Option<String>,
    queue: Option<String>,
    /// The approver role.
    role: Option<String>,
    warehouse: Option<String>,
    /// The recommended carrier.
    carrier: Option<String>,
    tier: Option<String>,
    band: Option<String>,
    /// RFC 3339: only approvals due before then.
    due_before: Option<String>,
    /// `due` (soonest, then riskiest), `risk` or `value` [default: due].
    sort: Option<String>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
    /// 1 to 200 [default: 50].
    limit: Option<i64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ApprovalPage {
    items: Vec<Approval>,
    /// Pass as `cursor` for the next page; null on the last.
    next_cursor: Option<String>,
}

const STATES: [&str; 7] = [
    "pending",
    "approved",
    "rejected",
    "overridden",
    "expired",
    "escalated",
    "withdrawn",
];

/// The queue: approvals by state, queue, role, warehouse, carrier, tier, band and due time.
#[utoipa::path(
    get,
    path = "/v1/approvals",
    tag = "approvals",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of approvals", body = ApprovalPage),
        (status = 400, description = "A filter is not understood", body = super::error::ErrorBody),
    ),
)]
pub async fn list_approvals(
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<axum::Json<ApprovalPage>, ApiError> {
    let states: Vec<String> = match &q.state {
        Some(s) => s.split(',').map(|s| s.trim().to_string()).collect(),
        None => vec!["pending".into(), "escalated".into()],
    };
    if let Some(bad) = states.iter().find(|s| !STATES.contains(&s.as_str())) {
        return Err(ApiError::invalid_field(
            "state",
            format!("`{bad}` is not a state; states are {}", STATES.join(", ")),
        ));
    }
    let order = match q.sort.as_deref() {
        None | Some("due") => ApprovalOrder::Due,
        Some("risk") => ApprovalOrder::Risk,
        Some("value") => ApprovalOrder::Value,
        Some(other) => {
            return Err(ApiError::invalid_field(
                "sort",
                format!("`{other}`: sort by `due`, `risk` or `value`"),
            ))
        }
    };
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::invalid_field("limit", "1 to 200"));
    }
    if let Some(d) = &q.due_before {
        if DateTime::parse_from_rfc3339(d).is_err() {
            return Err(ApiError::invalid_field(
                "due_before",
                "expected an RFC 3339 time",
            ));
        }
    }
    let cursor = q.cursor.as_deref().map(read_cursor).transpose()?;
    let filter = ApprovalFilter {
        states,
        queue: q.queue,
        role: q.role,
        warehouse: q.warehouse,
        carrier: q.carrier,
        customer_tier: q.tier,
        band: q.band,
        due_before: q
            .due_before
            .as_deref()
            .and_then(|d| DateTime::parse_from_rfc3339(d).ok())
            .map(|d| crate::clock::text(d.with_timezone(&Utc))),
    };
    let mut items = state
        .store
        .approvals(&filter, order, cursor.as_ref(), limit + 1)
        .await?;
    let next_cursor = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().map(|a| write_cursor(a, order))
    } else {
        None
    };
    Ok(axum::Json(ApprovalPage { items, next_cursor }))
}

/// The queue's figures and decision quality ([`crate::dashboard`]).
#[utoipa::path(
    get,
    path = "/v1/approvals/stats",
    tag = "approvals",
    responses((status = 200, description = "The dashboard's figures", body = crate::dashboard::Dashboard)),
)]
pub async fn approval_stats(
    State(state): State<AppState>,
) -> Result<axum::Json<crate::dashboard::Dashboard>, ApiError> {
    Ok(axum::Json(
        crate::dashboard::figures(&state.store, state.clock.now()).await?,
    ))
}

/// A cursor: the order's key and the id of the page's last row, as hex of its JSON text (so it
/// travels in a query string as it is).
fn write_cursor(a: &Approval, order: ApprovalOrder) -> String {
    let v = match order {
        ApprovalOrder::Due => serde_json::json!(["due", a.due_at, a.delay_risk, a.id]),
        ApprovalOrder::Risk => serde_json::json!(["risk", a.delay_risk, a.id]),
        ApprovalOrder::Value => serde_json::json!(["value", a.order_value.unwrap_or(0.0), a.id]),
    };
    v.to_string().bytes().map(|b| format!("{b:02x}")).collect()
}

fn read_cursor(text: &str) -> Result<Cursor, ApiError> {
    let bad = || ApiError::invalid_field("cursor", "not a cursor this service gave out");
    if !text.len().is_multiple_of(2) || text.len() > 2048 {
        return Err(bad());
    }
    let bytes: Vec<u8> = (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16))
        .collect::<Result<_, _>>()
        .map_err(|_| bad())?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    let item = |i: usize| v.get(i).ok_or_else(bad);
    let id = |i: usize| item(i)?.as_str().map(str::to_string).ok_or_else(bad);
    let number = |i: usize| item(i)?.as_f64().ok_or_else(bad);
    match item(0)?.as_str() {
        Some("due") => Ok(Cursor {
            key: CursorKey::Due(id(1)?, number(2)?),
            id: id(3)?,
        }),
        Some("risk") | Some("value") => Ok(Cursor {
            key: CursorKey::Number(number(1)?),
            id: id(2)?,
        }),
        _ => Err(bad()),
    }
}

/// One approval with what a manager needs to decide it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ApprovalDetail {
    approval: Approval,
    /// The latest score's answer: risk, factors, carriers, matched rules.
    #[schema(value_type = Object)]
    score: Option<serde_json::Value>,
    /// Every step, oldest first, from the audit trail.
    #[schema(value_type = Vec<Object>)]
    history: Vec<AuditRow>,
    /// The shipment's scores since the approval opened, newest first: each updated its facts.
    #[schema(value_type = Vec<Object>)]
    scores: Vec<crate::store::approvals::ScoreLine>,
    /// The shipment's exception notes, newest first, with category, owner and severity.
    exceptions: Vec<crate::store::exceptions::ExceptionNote>,
    /// Whether the caller may decide it (holds the role and is a person).
    actionable: bool,
}

/// An approval, its latest score and its history.
#[utoipa::path(
    get,
    path = "/v1/approvals/{id}",
    tag = "approvals",
    params(("id" = String, Path, description = "The approval's id (a score's `approval.id`)")),
    responses(
        (status = 200, description = "The approval", body = ApprovalDetail),
        (status = 404, description = "No such approval", body = super::error::ErrorBody),
    ),
)]
pub async fn get_approval(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<axum::Json<ApprovalDetail>, ApiError> {
    let approval = find(&state, &id).await?;
    let score = state
        .store
        .answered(&approval.score_id)
        .await?
        .and_then(|a| serde_json::from_str(&a.response).ok());
    let history = state.store.audit_of("approval", &id).await?;
    let scores = state
        .store
        .shipment_scores(&approval.shipment_id, 100)
        .await?
        .into_iter()
        .filter(|s| s.created_at >= approval.opened_at)
        .collect();
    let exceptions = state.store.notes_of(&approval.shipment_id, 100).await?;
    let policies = state.policies.source();
    let actionable = caller.person.as_ref().is_some_and(|p| {
        policies
            .approvals
            .may_decide(&p.roles, &approval.approver_role)
    });
    Ok(axum::Json(ApprovalDetail {
        approval,
        score,
        history,
        scores,
        exceptions,
        actionable,
    }))
}

pub(crate) async fn find(state: &AppState, id: &str) -> Result<Approval, ApiError> {
    state
        .store
        .approval(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no approval `{id}`")))
}

/// Takes the approval so no one else works on it (for the policy's claim minutes).
#[utoipa::path(
    post,
    path = "/v1/approvals/{id}/claim",
    tag = "approvals",
    params(("id" = String, Path, description = "The approval's id")),
    responses(
        (status = 200, description = "The approval, claimed", body = Approval),
        (status = 403, description = "Not a person, or without the role", body = super::error::ErrorBody),
        (status = 409, description = "Claimed by someone else, or decided", body = super::error::ErrorBody),
    ),
)]
pub async fn claim(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    request_id: Option<Extension<RequestId>>,
    Path(id): Path<String>,
) -> Result<axum::Json<Approval>, ApiError> {
    let a = find(&state, &id).await?;
    let policies = state.policies.source();
    let step = domain::claim(&a, &caller, &policies.approvals, state.clock.now());
    make(&state, &caller, &a, step, request_id).await
}

/// Gives a claim up.
#[utoipa::path(
    post,
    path = "/v1/approvals/{id}/release",
    tag = "approvals",
    params(("id" = String, Path, description = "The approval's id")),
    responses(
        (status = 200, description = "The approval, unclaimed", body = Approval),
        (status = 409, description = "Held by someone else, or decided", body = super::error::ErrorBody),
    ),
)]
pub async fn release(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    request_id: Option<Extension<RequestId>>,
    Path(id): Path<String>,
) -> Result<axum::Json<Approval>, ApiError> {
    let a = find(&state, &id).await?;
    let step = domain::release(&a, &caller, state.clock.now());
    make(&state, &caller, &a, step, request_id).await
}

/// A decision, as sent.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    decision: DecisionKind,
    /// One of the policy's reasons for this kind of decision.
    reason_code: String,
    comment: Option<String>,
    /// The approval's `version` the decision was made on.
    version: i64,
    /// An override's carrier: one ranked for the shipment.
    carrier: Option<String>,
    /// An override's release time, RFC 3339.
    release_at: Option<String>,
}

const MAX_COMMENT_CHARS: usize = 2000;

impl DecisionBody {
    fn parse(self) -> Result<DecisionRequest, ApiError> {
        let comment = self.comment.filter(|c| !c.trim().is_empty());
        if comment
            .as_ref()
            .is_some_and(|c| c.chars().count() > MAX_COMMENT_CHARS)
        {
            return Err(ApiError::invalid_field(
                "comment",
                format!("at most {MAX_COMMENT_CHARS} characters"),
            ));
        }
        let release_at = self
            .release_at
            .map(|t| {
                DateTime::parse_from_rfc3339(&t)
                    .map(|d| d.with_timezone(&Utc))
                    .map_err(|_| ApiError::invalid_field("release_at", "expected an RFC 3339 time"))
            })
            .transpose()?;
        if self.decision != DecisionKind::Override
            && (self.carrier.is_some() || release_at.is_some())
        {
            return Err(ApiError::invalid_field(
                "decision",
                "a carrier or release time is an override: send `decision: override`",
            ));
        }
        Ok(DecisionRequest {
            kind: self.decision,
            reason_code: self.reason_code,
            comment,
            version: self.version,
            carrier: self.carrier,
            release_at,
        })
    }
}

/// Approves, rejects or overrides: a person with the approval's role (or one that outranks
/// it), on the version they read.
#[utoipa::path(
    post,
    path = "/v1/approvals/{id}/decision",
    tag = "approvals",
    params(("id" = String, Path, description = "The approval's id")),
    request_body = DecisionBody,
    responses(
        (status = 200, description = "The approval, decided (or awaiting its second approver)", body = Approval),
        (status = 400, description = "A reason the policy does not list, or a carrier not ranked", body = super::error::ErrorBody),
        (status = 403, description = "Not a person, without the role, or kept out by separation of duties", body = super::error::ErrorBody),
        (status = 409, description = "Changed since read, claimed by another, decided, or the same approver twice", body = super::error::ErrorBody),
    ),
)]
pub async fn decide(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    request_id: Option<Extension<RequestId>>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<DecisionBody>,
) -> Result<axum::Json<Approval>, ApiError> {
    let request = body.parse()?;
    let a = find(&state, &id).await?;
    let alternatives = carriers_of(&state, &a).await?;
    let policies = state.policies.source();
    let step = domain::decide(
        &a,
        &caller,
        &request,
        &policies.approvals,
        &alternatives,
        state.clock.now(),
    );
    make(&state, &caller, &a, step, request_id).await
}

/// The carriers the approval's latest score ranked: the recommended one and its alternatives.
pub(crate) async fn carriers_of(state: &AppState, a: &Approval) -> Result<Vec<String>, ApiError> {
    let Some(answered) = state.store.answered(&a.score_id).await? else {
        return Ok(Vec::new());
    };
    let v: serde_json::Value = serde_json::from_str(&answered.response).unwrap_or_default();
    let name = |c: &serde_json::Value| {
        c.get("carrier")
            .and_then(|n| n.as_str())
            .map(str::to_string)
    };
    let mut carriers: Vec<String> = v
        .get("recommended_carrier")
        .and_then(name)
        .into_iter()
        .collect();
    if let Some(alts) = v.get("alternatives").and_then(|a| a.as_array()) {
        carriers.extend(alts.iter().filter_map(name));
    }
    Ok(carriers)
}

/// Why a workflow withdraws an approval.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WithdrawBody {
    /// Cancelled, shipped through the workflow...
    reason: String,
}

/// The delivery no longer waits for a decision (cancelled, or shipped through a workflow).
#[utoipa::path(
    post,
    path = "/v1/approvals/{id}/withdraw",
    tag = "approvals",
    params(("id" = String, Path, description = "The approval's id")),
    request_body = WithdrawBody,
    responses(
        (status = 200, description = "The approval, withdrawn", body = Approval),
        (status = 409, description = "Already decided", body = super::error::ErrorBody),
    ),
)]
pub async fn withdraw(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    request_id: Option<Extension<RequestId>>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<WithdrawBody>,
) -> Result<axum::Json<Approval>, ApiError> {
    let a = find(&state, &id).await?;
    let step = domain::withdraw(&a, &caller, &body.reason, state.clock.now());
    make(&state, &caller, &a, step, request_id).await
}

/// [`apply_step`] for the API's handlers.
async fn make(
    state: &AppState,
    caller: &Caller,
    a: &Approval,
    step: Result<Transition, Refusal>,
    request_id: Option<Extension<RequestId>>,
) -> Result<axum::Json<Approval>, ApiError> {
    let request_id = request_id.map(|Extension(RequestId(id))| id);
    apply_step(state, caller, a, step, request_id)
        .await
        .map(axum::Json)
}

/// Makes a step the domain allowed, or answers its refusal; refusals of who asked are audited.
/// The pages make their steps here too.
pub(crate) async fn apply_step(
    state: &AppState,
    caller: &Caller,
    a: &Approval,
    step: Result<Transition, Refusal>,
    request_id: Option<String>,
) -> Result<Approval, ApiError> {
    let mut t = match step {
        Ok(t) => t,
        Err(refusal) => {
            if refusal.is_forbidden() {
                tracing::warn!(approval = %a.id, caller = %caller.key_id, %refusal, "approval step refused");
                let entry =
                    AuditEntry::new(&state.clock.now_text(), caller.actor(), "approval.refused")
                        .subject("approval", &a.id)
                        .role(Some(&a.approver_role))
                        .reason(None, Some(&refusal.to_string()))
                        .request(request_id.as_deref());
                state.store.audit(&[entry]).await?;
            }
            return Err(refused(refusal));
        }
    };
    t.audit = t.audit.request(request_id.as_deref());
    match state.store.transition(&t).await {
        Ok(()) => {
            after_transition(state, &t);
            Ok(t.after)
        }
        Err(TransitionError::Changed(v)) => Err(ApiError::conflict(
            Code::VersionConflict,
            format!("the approval changed since version {v}: read it again and decide on what it says now"),
        )),
        Err(TransitionError::Store(e)) => Err(e.into()),
    }
}

fn refused(r: Refusal) -> ApiError {
    let message = r.to_string();
    match r {
        Refusal::PersonRequired => {
            ApiError::new(StatusCode::FORBIDDEN, Code::PersonRequired, message)
        }
        Refusal::WrongRole { .. } => ApiError::new(StatusCode::FORBIDDEN, Code::Forbidden, message),
        Refusal::SeparationOfDuties => {
            ApiError::new(StatusCode::FORBIDDEN, Code::SeparationOfDuties, message)
        }
        Refusal::Closed(_) => ApiError::conflict(Code::ApprovalClosed, message),
        Refusal::VersionMismatch { .. } => ApiError::conflict(Code::VersionConflict, message),
        Refusal::Claimed { .. } => ApiError::conflict(Code::ApprovalClaimed, message),
        Refusal::SecondApproverRequired => {
            ApiError::conflict(Code::SecondApproverRequired, message)
        }
        Refusal::Invalid { field, .. } => ApiError::invalid_field(field, message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_is_patched_in_place() {
        let r = r#"{"shipment_id":"S","approval":{"id":"apr_a","state":"pending","approver_role":"x"}}"#;
        assert_eq!(
            patch_ticket(r, "apr_a", "apr_b", "escalated"),
            r#"{"shipment_id":"S","approval":{"id":"apr_b","state":"escalated","approver_role":"x"}}"#
        );
        assert_eq!(patch_ticket(r, "apr_zz", "apr_b", "pending"), r);
    }
}
