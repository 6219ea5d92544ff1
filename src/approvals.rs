//! Governed decisions: what a score that needs a person does to its shipment's approval
//! ([`plan`]), and every later step a person or the timer takes ([`claim`], [`release`],
//! [`decide`], [`withdraw`], [`tick`]). Each step is a pure function from the approval as read,
//! the policy and the actor to its new content and audit row, or to the reason it is refused;
//! the store makes it only if the approval is still at the version read.

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use crate::auth::Caller;
use crate::clock::text;
use crate::policy::{ApprovalPolicy, DecisionKind};
use crate::scoring::Decision;
use crate::store::approvals::{Approval, ApprovalOp, OpenApprovals, Transition};
use crate::store::audit::{Actor, AuditEntry};
use crate::store::users::User;

/// The approval a score's answer names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    pub id: String,
    pub state: String,
}

/// A new approval's id: time-ordered like score ids.
pub fn new_approval_id() -> String {
    let ms = Utc::now().timestamp_millis();
    format!("apr_{ms:012x}{:016x}", rand::random::<u64>())
}

/// Plans what a request's decisions do to their shipments' approvals, in order and across
/// the parts of a batch, so a shipment twice in one request updates the approval its first
/// appearance opened. A decision that needs a person updates the open approval this instance
/// knows of ([`OpenApprovals`]) or opens a new one; the times every step of one request shares
/// are written out once.
pub struct Planner<'a> {
    policy: &'a ApprovalPolicy,
    open: &'a OpenApprovals,
    actor: Actor,
    now: DateTime<Utc>,
    at: String,
    expires_at: String,
    /// Due times by SLA minutes.
    due: Vec<(u32, String)>,
    /// The proposals made so far: shipment to (approval id, state).
    seen: std::collections::HashMap<String, (String, String)>,
}

impl<'a> Planner<'a> {
    pub fn new(
        policy: &'a ApprovalPolicy,
        caller: &Caller,
        now: DateTime<Utc>,
        open: &'a OpenApprovals,
    ) -> Self {
        Planner {
            policy,
            open,
            actor: caller.actor(),
            now,
            at: text(now),
            expires_at: text(now + Duration::minutes(i64::from(policy.expire_minutes()))),
            due: Vec::new(),
            seen: Default::default(),
        }
    }

    /// The steps of `decisions`, one per decision (none where no person is needed); sets each
    /// decision's ticket.
    pub fn plan(&mut self, decisions: &mut [Decision]) -> Vec<Option<ApprovalOp>> {
        decisions
            .iter_mut()
            .map(|d| {
                if !d.approval.required {
                    return None;
                }
                let known = match self.seen.get(&d.shipment.id) {
                    Some(k) => Some(k.clone()),
                    None => self.open.get(&d.shipment.id),
                };
                let (op, ticket) = self.step(d, known);
                self.seen.insert(
                    d.shipment.id.clone(),
                    (ticket.id.clone(), ticket.state.clone()),
                );
                d.ticket = Some(ticket);
                Some(op)
            })
            .collect()
    }

    /// What `decision` does: update `known` (the proposal from this request, the cache, or the
    /// database after a stale proposal), or open a new approval.
    fn step(
        &mut self,
        decision: &Decision,
        known: Option<(String, String)>,
    ) -> (ApprovalOp, Ticket) {
        let role = decision
            .approval
            .approver_role
            .clone()
            .unwrap_or_else(|| "dispatch_manager".into());
        let queue = decision.queue.as_str();
        let tier = decision.shipment.customer_tier.as_deref();
        let (open, id, state) = match known {
            Some((id, state)) => (false, id, state),
            None => (true, new_approval_id(), "pending".to_string()),
        };
        let minutes = self.policy.sla_minutes(queue, tier);
        let due_at = match self.due.iter().find(|(m, _)| *m == minutes) {
            Some((_, t)) => t.clone(),
            None => {
                let t = text(self.now + Duration::minutes(i64::from(minutes)));
                self.due.push((minutes, t.clone()));
                t
            }
        };
        let op = ApprovalOp {
            open,
            id: id.clone(),
            shipment_id: decision.shipment.id.clone(),
            score_id: decision.score_id.clone(),
            at: self.at.clone(),
            queue: queue.to_string(),
            approver_role: role,
            reason_codes: decision.approval.reason_codes.clone(),
            due_at,
            expires_at: self.expires_at.clone(),
            delay_risk: decision.delay_risk,
            risk_band: decision.risk_band.as_str().to_string(),
            recommended_carrier: decision
                .recommended_carrier
                .as_ref()
                .map(|c| c.carrier.clone()),
            warehouse: decision.shipment.warehouse.clone(),
            customer_tier: decision.shipment.customer_tier.clone(),
            order_value: decision.shipment.order_value,
            approvals_needed: i64::from(
                self.policy
                    .approvers_needed(&decision.approval.reason_codes),
            ),
            actor: self.actor.clone(),
        };
        (op, Ticket { id, state })
    }
}

/// Why a step was refused; the HTTP layer gives each its status and code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Only a person may decide: a machine's key names no one.
    #[error(
        "decisions are made by people: call with a personal token (dispatch-risk users token)"
    )]
    PersonRequired,
    #[error("this approval needs the role `{needed}`, or one that outranks it; you hold {held}")]
    WrongRole { needed: String, held: String },
    #[error("the policy keeps whoever raised or last scored an approval from deciding it")]
    SeparationOfDuties,
    #[error("the approval is {0}: it can no longer be decided")]
    Closed(String),
    #[error("the approval is at version {current}, not {sent}: it changed since you read it")]
    VersionMismatch { current: i64, sent: i64 },
    #[error("{by} holds a claim on this approval until {until}")]
    Claimed { by: String, until: String },
    #[error("{message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("this approval needs a second approver other than the first")]
    SecondApproverRequired,
}

impl Refusal {
    /// Whether the refusal is about who asked (403, audited) rather than the item's state.
    pub fn is_forbidden(&self) -> bool {
        matches!(
            self,
            Refusal::PersonRequired | Refusal::WrongRole { .. } | Refusal::SeparationOfDuties
        )
    }
}

/// What a manager sends to decide.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionRequest {
    pub kind: DecisionKind,
    pub reason_code: String,
    pub comment: Option<String>,
    /// The version of the approval the decision was made on.
    pub version: i64,
    /// An override's carrier, one of the score's alternatives.
    pub carrier: Option<String>,
    /// An override's release time.
    pub release_at: Option<DateTime<Utc>>,
}

fn person(caller: &Caller) -> Result<&User, Refusal> {
    caller.person.as_ref().ok_or(Refusal::PersonRequired)
}

fn may_act(policy: &ApprovalPolicy, user: &User, a: &Approval) -> Result<(), Refusal> {
    if policy.may_decide(&user.roles, &a.approver_role) {
        Ok(())
    } else {
        Err(Refusal::WrongRole {
            needed: a.approver_role.clone(),
            held: if user.roles.is_empty() {
                "no role".into()
            } else {
                user.roles.join(", ")
            },
        })
    }
}

fn open(a: &Approval) -> Result<(), Refusal> {
    if a.is_open() {
        Ok(())
    } else {
        Err(Refusal::Closed(a.state.clone()))
    }
}

/// Whether someone other than `user` holds an unexpired claim.
fn held_by_other(a: &Approval, user: &User, now: &str) -> Result<(), Refusal> {
    match (&a.claimed_by, &a.claim_expires_at) {
        (Some(by), Some(until)) if by != &user.id && until.as_str() > now => {
            Err(Refusal::Claimed {
                by: by.clone(),
                until: until.clone(),
            })
        }
        _ => Ok(()),
    }
}

fn snapshot(a: &Approval) -> serde_json::Value {
    json!({
        "state": a.state,
        "version": a.version,
        "approver_role": a.approver_role,
        "claimed_by": a.claimed_by,
        "first_approver": a.first_approver,
        "final_carrier": a.final_carrier,
    })
}

fn step(
    before: &Approval,
    mut after: Approval,
    now: &str,
    actor: Actor,
    role: Option<&str>,
    action: &str,
) -> Transition {
    after.version = before.version + 1;
    after.updated_at = now.to_string();
    let audit = AuditEntry::new(now, actor, action)
        .subject("approval", &before.id)
        .role(role)
        .change(Some(snapshot(before)), Some(snapshot(&after)));
    Transition {
        before: before.clone(),
        after,
        audit,
    }
}

/// A person takes the approval so no one else works on it for the policy's claim minutes.
pub fn claim(
    a: &Approval,
    caller: &Caller,
    policy: &ApprovalPolicy,
    now: DateTime<Utc>,
) -> Result<Transition, Refusal> {
    let user = person(caller)?;
    may_act(policy, user, a)?;
    open(a)?;
    let now_text = text(now);
    held_by_other(a, user, &now_text)?;
    let mut after = a.clone();
    after.claimed_by = Some(user.id.clone());
    after.claim_expires_at = Some(text(
        now + Duration::minutes(i64::from(policy.claim_minutes())),
    ));
    Ok(step(
        a,
        after,
        &now_text,
        caller.actor(),
        Some(&a.approver_role),
        "approval.claimed",
    ))
}

/// The holder gives the claim up.
pub fn release(a: &Approval, caller: &Caller, now: DateTime<Utc>) -> Result<Transition, Refusal> {
    let user = person(caller)?;
    open(a)?;
    let now_text = text(now);
    held_by_other(a, user, &now_text)?;
    if a.claimed_by.as_deref() != Some(user.id.as_str()) {
        return Err(Refusal::Invalid {
            field: "claim",
            message: "you hold no claim on this approval".into(),
        });
    }
    let mut after = a.clone();
    after.claimed_by = None;
    after.claim_expires_at = None;
    Ok(step(
        a,
        after,
        &now_text,
        caller.actor(),
        None,
        "approval.released",
    ))
}

/// A person approves, rejects or overrides. `alternatives` are the carriers the latest score
/// ranked for the shipment, of which an override's carrier must be one.
pub fn decide(
    a: &Approval,
    caller: &Caller,
    request: &DecisionRequest,
    policy: &ApprovalPolicy,
    alternatives: &[String],
    now: DateTime<Utc>,
) -> Result<Transition, Refusal> {
    let user = person(caller)?;
    may_act(policy, user, a)?;
    if policy.separation_of_duties()
        && [&a.raised_by, &a.last_scored_by]
            .iter()
            .any(|by| by.as_deref() == Some(user.id.as_str()))
    {
        return Err(Refusal::SeparationOfDuties);
    }
    open(a)?;
    if request.version != a.version {
        return Err(Refusal::VersionMismatch {
            current: a.version,
            sent: request.version,
        });
    }
    let now_text = text(now);
    held_by_other(a, user, &now_text)?;
    if !policy.reasons(request.kind).contains(&request.reason_code) {
        return Err(Refusal::Invalid {
            field: "reason_code",
            message: format!(
                "`{}` is not a reason to {}; the policy lists {}",
                request.reason_code,
                request.kind.as_str(),
                policy.reasons(request.kind).join(", ")
            ),
        });
    }
    let mut after = a.clone();
    if request.kind == DecisionKind::Override {
        if request.carrier.is_none() && request.release_at.is_none() {
            return Err(Refusal::Invalid {
                field: "carrier",
                message: "an override names a carrier or a release time".into(),
            });
        }
        if let Some(c) = &request.carrier {
            if !alternatives.contains(c) {
                return Err(Refusal::Invalid {
                    field: "carrier",
                    message: format!(
                        "`{c}` is not among the carriers ranked for this shipment ({})",
                        alternatives.join(", ")
                    ),
                });
            }
            after.final_carrier = Some(c.clone());
        }
        after.release_at = request.release_at.map(text);
    }
    let role = Some(a.approver_role.as_str());
    let final_step = request.kind == DecisionKind::Reject
        || a.approvals_needed < 2
        || a.first_approver.is_some();
    if !final_step {
        after.first_approver = Some(user.id.clone());
        after.claimed_by = None;
        after.claim_expires_at = None;
        let t = step(
            a,
            after,
            &now_text,
            caller.actor(),
            role,
            "approval.first_approval",
        );
        return Ok(with_reason(t, request));
    }
    if a.first_approver.as_deref() == Some(user.id.as_str()) && request.kind != DecisionKind::Reject
    {
        return Err(Refusal::SecondApproverRequired);
    }
    after.state = match request.kind {
        DecisionKind::Approve if after.final_carrier.is_some() || after.release_at.is_some() => {
            "overridden"
        }
        DecisionKind::Approve => "approved",
        DecisionKind::Reject => "rejected",
        DecisionKind::Override => "overridden",
    }
    .to_string();
    if after.final_carrier.is_none() && after.state != "rejected" {
        after.final_carrier = a.recommended_carrier.clone();
    }
    after.decided_by = Some(user.id.clone());
    after.decided_at = Some(now_text.clone());
    after.decision_reason = Some(request.reason_code.clone());
    after.decision_comment = request.comment.clone();
    after.claimed_by = None;
    after.claim_expires_at = None;
    let action = format!("approval.{}", after.state);
    let t = step(a, after, &now_text, caller.actor(), role, &action);
    Ok(with_reason(t, request))
}

fn with_reason(mut t: Transition, request: &DecisionRequest) -> Transition {
    t.audit = t
        .audit
        .reason(Some(&request.reason_code), request.comment.as_deref());
    t
}

/// A workflow reports that the delivery no longer waits (cancelled, or shipped through it).
pub fn withdraw(
    a: &Approval,
    caller: &Caller,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<Transition, Refusal> {
    open(a)?;
    if reason.trim().is_empty() {
        return Err(Refusal::Invalid {
            field: "reason",
            message: "say why the approval is withdrawn".into(),
        });
    }
    let now_text = text(now);
    let mut after = a.clone();
    after.state = "withdrawn".into();
    after.claimed_by = None;
    after.claim_expires_at = None;
    let t = step(
        a,
        after,
        &now_text,
        caller.actor(),
        None,
        "approval.withdrawn",
    );
    Ok(Transition {
        audit: t.audit.reason(Some("withdrawn"), Some(reason)),
        ..t
    })
}

/// The timer's step for an approval past its deadline: expired once past its expiry, else
/// escalated to the role the policy names (its due time becomes its expiry).
pub fn overdue(a: &Approval, policy: &ApprovalPolicy, now: DateTime<Utc>) -> Option<Transition> {
    let now_text = text(now);
    if !a.is_open() {
        return None;
    }
    let mut after = a.clone();
    let action = if a.expires_at <= now_text {
        after.state = "expired".into();
        after.claimed_by = None;
        after.claim_expires_at = None;
        "approval.expired"
    } else if a.state == "pending" && a.due_at <= now_text {
        after.state = "escalated".into();
        if let Some(to) = policy.escalation_of(&a.approver_role) {
            after.approver_role = to.to_string();
        }
        after.due_at = a.expires_at.clone();
        "approval.escalated"
    } else {
        return None;
    };
    Some(step(a, after, &now_text, Actor::system(), None, action))
}
