//! What the pages show, gathered from the store and turned into the templates' context: the
//! queue's rows with their SLA clocks, and one approval with its reasons in words, its factors
//! as bars, its carriers, its scores and its audit trail.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use minijinja::Environment;
use serde_json::{json, Value};

use super::QueueFilters;
use crate::http::error::ApiError;
use crate::policy::DecisionKind;
use crate::state::AppState;
use crate::store::approvals::{Approval, ApprovalFilter, ApprovalOrder};
use crate::store::sessions::Session;

/// The templates, compiled once.
fn templates() -> &'static Environment<'static> {
    static ENV: std::sync::OnceLock<Environment<'static>> = std::sync::OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (name, text) in [
            ("base.html", include_str!("templates/base.html")),
            ("login.html", include_str!("templates/login.html")),
            ("queue.html", include_str!("templates/queue.html")),
            ("item.html", include_str!("templates/item.html")),
            ("dashboard.html", include_str!("templates/dashboard.html")),
        ] {
            env.add_template(name, text)
                .expect("the pages' templates compile (a test renders each)");
        }
        env
    })
}

fn render(name: &str, context: Value) -> Result<String, ApiError> {
    templates()
        .get_template(name)
        .and_then(|t| t.render(context))
        .map_err(|e| ApiError::internal(format!("rendering {name}: {e}")))
}

/// Why an approval waits, in words.
fn reason_text(code: &str) -> String {
    match code {
        "credit_hold" => "The customer's credit is on hold.".into(),
        "deadline_before_schedule" => "The promised date is before the planned dispatch.".into(),
        "hazardous_goods" => "Hazardous goods: compliance must release them.".into(),
        "premium_customer_high_risk" => "A premium customer's delivery is at high risk.".into(),
        "cold_chain_at_risk" => "A cold-chain delivery is at risk of arriving late.".into(),
        "critical_risk" => "The delivery is very likely to be late.".into(),
        "high_value_at_risk" => "A high-value order is at risk of arriving late.".into(),
        "very_high_value" => "A very high-value order.".into(),
        "same_day_at_risk" => "A same-day delivery is at risk.".into(),
        "risk_from_fallback_rules" => {
            "The risk comes from the fallback rules (no model answered): check it.".into()
        }
        other => other.replace('_', " "),
    }
}

/// "due in 42 min", "overdue by 3 h 5 min", and the class that colours it.
fn sla_clock(due: &str, now: DateTime<Utc>) -> (String, &'static str) {
    let Some(due) = crate::store::parse_date(due).and_then(|t| DateTime::from_timestamp(t, 0))
    else {
        return (due.to_string(), "");
    };
    let minutes = (due - now).num_minutes();
    let span = |m: i64| {
        let m = m.abs();
        if m >= 60 {
            format!("{} h {} min", m / 60, m % 60)
        } else {
            format!("{m} min")
        }
    };
    if minutes < 0 {
        (format!("overdue by {}", span(minutes)), "overdue")
    } else if minutes < 30 {
        (format!("due in {}", span(minutes)), "soon")
    } else {
        (format!("due in {}", span(minutes)), "")
    }
}

/// Users' names by id, for "claimed by" and the trail.
async fn names(state: &AppState) -> Result<HashMap<String, String>, ApiError> {
    Ok(state
        .store
        .list_users()
        .await?
        .into_iter()
        .map(|u| (u.id, u.name))
        .collect())
}

fn person(s: &Session) -> Value {
    json!({"name": s.user.name, "roles": s.user.roles})
}

pub(super) fn login(csrf: &str, email: &str, error: Option<&str>) -> Result<String, ApiError> {
    render(
        "login.html",
        json!({"login_csrf": csrf, "email": email, "message": error, "error": error.is_some()}),
    )
}

/// Rows on the queue page at most.
const QUEUE_ROWS: i64 = 200;

pub(super) async fn queue(
    state: &AppState,
    s: &Session,
    f: &QueueFilters,
) -> Result<String, ApiError> {
    let some = |v: &str| (!v.trim().is_empty()).then(|| v.trim().to_string());
    let filter = ApprovalFilter {
        states: vec!["pending".into(), "escalated".into()],
        queue: some(&f.queue),
        role: some(&f.role),
        warehouse: some(&f.warehouse),
        carrier: some(&f.carrier),
        customer_tier: some(&f.tier),
        band: some(&f.band),
        due_before: None,
    };
    let items = state
        .store
        .approvals(&filter, ApprovalOrder::Due, None, QUEUE_ROWS)
        .await?;
    let counts = state.store.open_counts().await?;
    let names = names(state).await?;
    let policies = state.policies.source();
    let now = state.clock.now();
    let rows: Vec<Value> = items
        .iter()
        .map(|a| {
            let (due, due_class) = sla_clock(&a.due_at, now);
            let claimed = a
                .claim_expires_at
                .as_deref()
                .is_some_and(|until| until > crate::clock::text(now).as_str());
            json!({
                "id": a.id,
                "shipment_id": a.shipment_id,
                "reasons": a.reason_codes.iter().map(|r| r.replace('_', " ")).collect::<Vec<_>>().join(", "),
                "risk": format!("{:.0} %", a.delay_risk * 100.0),
                "band": a.risk_band,
                "state": a.state,
                "role": a.approver_role,
                "warehouse": a.warehouse,
                "carrier": a.recommended_carrier.clone().unwrap_or_default(),
                "tier": a.customer_tier.clone().unwrap_or_default(),
                "due": due,
                "due_class": due_class,
                "claimed_by": if claimed { a.claimed_by.as_ref().map(|id| names.get(id).cloned().unwrap_or_else(|| id.clone())) } else { None },
                "actionable": policies.approvals.may_decide(&s.user.roles, &a.approver_role),
            })
        })
        .collect();
    let filters: Vec<Value> = [
        ("queue", "Queue", &f.queue),
        ("role", "Role", &f.role),
        ("warehouse", "Warehouse", &f.warehouse),
        ("carrier", "Carrier", &f.carrier),
        ("tier", "Tier", &f.tier),
        ("band", "Band", &f.band),
    ]
    .iter()
    .map(|(name, label, value)| json!({"name": name, "label": label, "value": value}))
    .collect();
    let message = (!f.done.is_empty()).then(|| format!("Done: the approval is {}.", f.done));
    render(
        "queue.html",
        json!({
            "user": person(s),
            "csrf": s.csrf,
            "items": rows,
            "counts": counts.iter().map(|(q, n)| json!({"queue": q, "count": n})).collect::<Vec<_>>(),
            "filters": filters,
            "message": message,
        }),
    )
}

pub(super) async fn dashboard(state: &AppState, s: &Session) -> Result<String, ApiError> {
    let d = crate::dashboard::figures(&state.store, state.clock.now()).await?;
    let names = names(state).await?;
    let mut queues: Vec<&String> = d.opened_by_day.values().flat_map(|m| m.keys()).collect();
    queues.sort();
    queues.dedup();
    let named = |id: &String| names.get(id).cloned().unwrap_or_else(|| id.clone());
    let overrides: Vec<(String, i64)> = d
        .overrides_by_manager
        .iter()
        .map(|(m, n)| (named(m), *n))
        .collect();
    let mut quality: Vec<(String, Value)> = vec![
        ("approved as recommended".into(), json!(d.quality.approved)),
        ("overridden".into(), json!(d.quality.overridden)),
    ];
    for (reason, r) in &d.quality.by_reason {
        quality.push((format!("reason: {reason}"), json!(r)));
    }
    for (manager, r) in &d.quality.by_manager {
        quality.push((format!("manager: {}", named(manager)), json!(r)));
    }
    render(
        "dashboard.html",
        json!({
            "user": person(s),
            "csrf": s.csrf,
            "d": d,
            "days": crate::dashboard::DAYS,
            "queues": queues,
            "overrides": overrides,
            "quality": quality,
        }),
    )
}

/// Width of the factor chart's label column and its bars' scale, in pixels.
const LABEL_WIDTH: f64 = 230.0;
const BAR_SPACE: f64 = 320.0;

pub(super) async fn item(
    state: &AppState,
    s: &Session,
    id: &str,
    message: Option<&str>,
    error: bool,
) -> Result<String, ApiError> {
    let a: Approval = super::super::approvals::find(state, id).await?;
    let score: Value = state
        .store
        .answered(&a.score_id)
        .await?
        .and_then(|x| serde_json::from_str(&x.response).ok())
        .unwrap_or_default();
    let names = names(state).await?;
    let name_of = |id: &Option<String>| {
        id.as_ref()
            .map(|i| names.get(i).cloned().unwrap_or_else(|| i.clone()))
    };
    let policies = state.policies.source();
    let now = state.clock.now();
    let empty = Vec::new();
    let raw_factors = score["top_factors"].as_array().unwrap_or(&empty);
    let largest = raw_factors
        .iter()
        .filter_map(|f| f["contribution"].as_f64())
        .fold(1e-9_f64, |m, c| m.max(c.abs()));
    let factors: Vec<Value> = raw_factors
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let c = f["contribution"].as_f64().unwrap_or(0.0);
            json!({
                "label": f["feature"].as_str().unwrap_or(""),
                "text": f["text"].as_str().unwrap_or(""),
                "x": LABEL_WIDTH,
                "y": i * 24,
                "width": format!("{:.1}", (c.abs() / largest * BAR_SPACE).max(2.0)),
                "up": c >= 0.0,
            })
        })
        .collect();
    let mut carriers: Vec<Value> = Vec::new();
    let carrier_row = |c: &Value, recommended: bool| {
        json!({
            "carrier": c["carrier"],
            "on_time": c["on_time_probability"].as_f64().map(|p| format!("{:.0} %", p * 100.0)),
            "cost": c["expected_cost"].as_f64().map(|x| format!("{x:.2}")).unwrap_or_else(|| "-".into()),
            "recommended": recommended,
        })
    };
    if score["recommended_carrier"].is_object() {
        carriers.push(carrier_row(&score["recommended_carrier"], true));
    }
    for c in score["alternatives"].as_array().unwrap_or(&empty) {
        carriers.push(carrier_row(c, false));
    }
    let scores: Vec<Value> = state
        .store
        .shipment_scores(&a.shipment_id, 20)
        .await?
        .into_iter()
        .map(|l| json!({"at": l.created_at, "risk": format!("{:.0} %", l.delay_risk * 100.0), "band": l.risk_band, "id": l.score_id}))
        .collect();
    let history: Vec<Value> = state
        .store
        .audit_of("approval", &a.id)
        .await?
        .into_iter()
        .map(|h| {
            let who = h
                .entry
                .actor
                .name
                .clone()
                .or(h.entry.actor.id.clone())
                .unwrap_or_else(|| h.entry.actor.kind.clone());
            json!({
                "seq": h.seq,
                "at": h.entry.at,
                "who": who,
                "action": h.entry.action,
                "reason": h.entry.reason_code,
                "comment": h.entry.comment,
            })
        })
        .collect();
    let exceptions: Vec<Value> = state
        .store
        .notes_of(&a.shipment_id, 50)
        .await?
        .into_iter()
        .map(|n| {
            let status = match (&n.resolution, &n.resolved_at) {
                (Some(how), Some(at)) => format!("{how} {at}"),
                _ => "open".into(),
            };
            json!({
                "at": n.created_at,
                "category": n.category.replace('_', " "),
                "owner": n.owner,
                "severity": n.severity,
                "review": n.needs_review,
                "note": n.note,
                "status": status,
            })
        })
        .collect();
    let decisions: Vec<Value> = [
        (DecisionKind::Approve, "Approve"),
        (DecisionKind::Reject, "Reject"),
        (DecisionKind::Override, "Override carrier"),
    ]
    .into_iter()
    .filter(|(k, _)| *k != DecisionKind::Override || carriers.len() > 1)
    .map(|(k, label)| json!({"kind": k.as_str(), "label": label, "reasons": policies.approvals.reasons(k)}))
    .collect();
    let claim_live = a
        .claim_expires_at
        .as_deref()
        .is_some_and(|until| until > crate::clock::text(now).as_str());
    let claimed_by = if claim_live {
        name_of(&a.claimed_by)
    } else {
        None
    };
    let (due, _) = sla_clock(&a.due_at, now);
    render(
        "item.html",
        json!({
            "user": person(s),
            "csrf": s.csrf,
            "message": message,
            "error": error,
            "a": a,
            "risk": format!("{:.0} %", a.delay_risk * 100.0),
            "reasons": a.reason_codes.iter().map(|r| reason_text(r)).collect::<Vec<_>>(),
            "matched_rules": score["matched_rules"],
            "factors": factors,
            "chart_height": (raw_factors.len().max(1) * 24),
            "carriers": carriers,
            "scores": scores,
            "exceptions": exceptions,
            "history": history,
            "decisions": decisions,
            "actionable": policies.approvals.may_decide(&s.user.roles, &a.approver_role),
            "open": a.is_open(),
            "claimed_by": claimed_by,
            "claimed_by_me": claim_live && a.claimed_by.as_deref() == Some(s.user.id.as_str()),
            "first_approver": name_of(&a.first_approver),
            "due": due,
        }),
    )
}
