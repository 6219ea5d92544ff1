//! Approvals as stored. A score that needs a person opens its shipment's approval, or updates
//! the open one, in the transaction that records the score ([`ApprovalOp`], applied by the
//! recorder's sinks); every later step (claim, release, decision, withdrawal, escalation,
//! expiry) is a conditional UPDATE on the row's `version` with its audit row in the same
//! transaction ([`Store::transition`]), so of two steps made on the same version one wins and
//! the other is told the row changed.
//!
//! Which approval a score belongs to is decided before its answer is written: the service
//! keeps the open approvals it knows of ([`OpenApprovals`]) and proposes an id; the recorder
//! checks the proposal in the transaction (an insert that finds another open approval for the
//! shipment, or an update of one no longer open, fails the write as [`STALE`]) and the handler
//! asks the database and tries again.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, Row};

use super::audit::{self, Actor, AuditEntry};
use super::{Store, StoreError};

/// The states an approval waits in; the others are final.
pub const OPEN: &str = "('pending', 'escalated')";

/// The code of a write whose approval proposal no longer holds.
pub const STALE: &str = "stale_approval";

/// What a score does to its shipment's approval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalOp {
    /// Opens a new approval (`true`) or updates the open one with this id.
    pub open: bool,
    pub id: String,
    pub shipment_id: String,
    pub score_id: String,
    pub at: String,
    pub queue: String,
    pub approver_role: String,
    pub reason_codes: Vec<String>,
    pub due_at: String,
    pub expires_at: String,
    pub delay_risk: f64,
    pub risk_band: String,
    pub recommended_carrier: Option<String>,
    pub warehouse: String,
    pub customer_tier: Option<String>,
    pub order_value: Option<f64>,
    pub approvals_needed: i64,
    /// Who scored: a key, or a person's token.
    pub actor: Actor,
}

impl ApprovalOp {
    /// The audit row of an opening. A rescore is no transition: it leaves none (the scores
    /// table keeps every score, with who sent it, and the approval's history shows them).
    pub fn audit(&self) -> AuditEntry {
        AuditEntry::new(&self.at, self.actor.clone(), "approval.opened")
            .subject("approval", &self.id)
            .change(
                None,
                Some(serde_json::json!({
                    "shipment_id": self.shipment_id,
                    "score_id": self.score_id,
                    "approver_role": self.approver_role,
                    "reason_codes": self.reason_codes,
                    "delay_risk": self.delay_risk,
                    "risk_band": self.risk_band,
                    "recommended_carrier": self.recommended_carrier,
                })),
            )
    }
}

pub(super) const INSERT_OPEN: &str = "INSERT INTO approvals (id, shipment_id, state, version, \
    queue, approver_role, reason_codes, opened_at, due_at, expires_at, updated_at, score_id, \
    delay_risk, risk_band, recommended_carrier, warehouse, customer_tier, order_value, \
    raised_by, last_scored_by, approvals_needed) \
    VALUES ($1, $2, $3, 1, $4, $5, $6, $7, $8, $9, $7, $10, $11, $12, $13, $14, $15, $16, $17, \
    $17, $18) ON CONFLICT DO NOTHING";

/// An escalated approval keeps the role it moved to; two approvers once needed stay needed.
pub(super) const RESCORE: &str = "UPDATE approvals SET version = version + 1, updated_at = $1, \
    score_id = $2, delay_risk = $3, risk_band = $4, recommended_carrier = $5, \
    reason_codes = $6, approver_role = CASE WHEN state = 'escalated' THEN approver_role \
    ELSE $7 END, queue = $8, last_scored_by = $9, \
    approvals_needed = CASE WHEN approvals_needed > $10 THEN approvals_needed ELSE $10 END \
    WHERE id = $11 AND state IN ('pending', 'escalated')";

const EXISTS: &str = "SELECT count(*) FROM approvals WHERE id = $1";

/// A write whose proposal no longer holds, as the recorder's error.
pub fn stale(shipment_id: &str) -> sqlx::Error {
    sqlx::Error::Database(Box::new(StaleApproval(shipment_id.to_string())))
}

/// Whether `e` is [`stale`]'s, and for which shipment.
pub fn stale_shipment(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(db) if db.code().as_deref() == Some(STALE) => {
            Some(db.message().to_string())
        }
        _ => None,
    }
}

#[derive(Debug)]
struct StaleApproval(String);

impl std::fmt::Display for StaleApproval {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "shipment `{}`'s open approval changed", self.0)
    }
}

impl std::error::Error for StaleApproval {}

impl sqlx::error::DatabaseError for StaleApproval {
    fn message(&self) -> &str {
        &self.0
    }
    fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
        Some(STALE.into())
    }
    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }
    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }
    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }
    fn kind(&self) -> sqlx::error::ErrorKind {
        sqlx::error::ErrorKind::Other
    }
}

/// What a replayed proposal that no longer holds becomes: a new approval whose shipment had
/// one opened meanwhile (by another instance, while this one spooled) is kept, withdrawn,
/// so the id its answer carried still says what happened; a lost update is dropped.
pub(super) const MERGED: &str = "withdrawn";

/// Applies `ops` in the transaction `conn` is in (PostgreSQL's recorder path); returns the
/// audit rows to append. `replay`: ops of scores already stored were applied with them.
pub(super) async fn apply(
    conn: &mut AnyConnection,
    ops: &[&ApprovalOp],
    replay: bool,
) -> Result<Vec<AuditEntry>, sqlx::Error> {
    let mut entries = Vec::with_capacity(ops.len());
    for op in ops {
        let reasons = serde_json::to_string(&op.reason_codes).unwrap_or_default();
        if op.open {
            let inserted = open_query(op, &reasons, "pending")
                .execute(&mut *conn)
                .await?
                .rows_affected();
            if inserted == 0 {
                if !replay {
                    return Err(stale(&op.shipment_id));
                }
                let there: i64 = sqlx::query_scalar(EXISTS)
                    .bind(&op.id)
                    .fetch_one(&mut *conn)
                    .await?;
                if there == 0 {
                    open_query(op, &reasons, MERGED).execute(&mut *conn).await?;
                }
                continue;
            }
        } else {
            let updated = rescore_query(op, &reasons)
                .execute(&mut *conn)
                .await?
                .rows_affected();
            if updated == 0 && !replay {
                return Err(stale(&op.shipment_id));
            }
            continue;
        }
        entries.push(op.audit());
    }
    Ok(entries)
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

fn open_query<'q>(op: &'q ApprovalOp, reasons: &'q str, state: &'q str) -> AnyQuery<'q> {
    sqlx::query(INSERT_OPEN)
        .bind(&op.id)
        .bind(&op.shipment_id)
        .bind(state)
        .bind(&op.queue)
        .bind(&op.approver_role)
        .bind(reasons)
        .bind(&op.at)
        .bind(&op.due_at)
        .bind(&op.expires_at)
        .bind(&op.score_id)
        .bind(op.delay_risk)
        .bind(&op.risk_band)
        .bind(&op.recommended_carrier)
        .bind(&op.warehouse)
        .bind(&op.customer_tier)
        .bind(op.order_value)
        .bind(&op.actor.id)
        .bind(op.approvals_needed)
}

fn rescore_query<'q>(op: &'q ApprovalOp, reasons: &'q str) -> AnyQuery<'q> {
    sqlx::query(RESCORE)
        .bind(&op.at)
        .bind(&op.score_id)
        .bind(op.delay_risk)
        .bind(&op.risk_band)
        .bind(&op.recommended_carrier)
        .bind(reasons)
        .bind(&op.approver_role)
        .bind(&op.queue)
        .bind(&op.actor.id)
        .bind(op.approvals_needed)
        .bind(&op.id)
}

/// [`apply`] on the SQLite recorder's connection.
pub(super) fn apply_sqlite(
    tx: &rusqlite::Transaction,
    ops: &[&ApprovalOp],
    replay: bool,
) -> Result<Vec<AuditEntry>, Failed> {
    let mut open = tx.prepare_cached(INSERT_OPEN)?;
    let mut rescore = tx.prepare_cached(RESCORE)?;
    let mut entries = Vec::with_capacity(ops.len());
    for op in ops {
        let reasons = serde_json::to_string(&op.reason_codes).unwrap_or_default();
        let changed = if op.open {
            open_sqlite(&mut open, op, &reasons, "pending")?
        } else {
            rescore.execute(rusqlite::params![
                op.at,
                op.score_id,
                op.delay_risk,
                op.risk_band,
                op.recommended_carrier,
                reasons,
                op.approver_role,
                op.queue,
                op.actor.id,
                op.approvals_needed,
                op.id,
            ])?
        };
        if changed == 0 {
            if !replay {
                return Err(Failed::Stale(op.shipment_id.clone()));
            }
            if op.open {
                let there: i64 = tx.query_row(EXISTS, [&op.id], |r| r.get(0))?;
                if there == 0 {
                    open_sqlite(&mut open, op, &reasons, MERGED)?;
                }
            }
            continue;
        }
        if op.open {
            entries.push(op.audit());
        }
    }
    Ok(entries)
}

fn open_sqlite(
    stmt: &mut rusqlite::CachedStatement,
    op: &ApprovalOp,
    reasons: &str,
    state: &str,
) -> rusqlite::Result<usize> {
    stmt.execute(rusqlite::params![
        op.id,
        op.shipment_id,
        state,
        op.queue,
        op.approver_role,
        reasons,
        op.at,
        op.due_at,
        op.expires_at,
        op.score_id,
        op.delay_risk,
        op.risk_band,
        op.recommended_carrier,
        op.warehouse,
        op.customer_tier,
        op.order_value,
        op.actor.id,
        op.approvals_needed,
    ])
}

/// Why the SQLite recorder's transaction failed.
#[derive(Debug)]
pub(super) enum Failed {
    Sql(rusqlite::Error),
    Stale(String),
}

impl From<rusqlite::Error> for Failed {
    fn from(e: rusqlite::Error) -> Self {
        Failed::Sql(e)
    }
}

/// The open approvals this instance knows of, by shipment: the proposal a score's answer
/// carries. A hint only (the transaction checks it), bounded: past [`OpenApprovals::CAP`]
/// shipments, a shipment not held is proposed a new approval and corrected if it had one.
#[derive(Default)]
pub struct OpenApprovals {
    by_shipment: Mutex<HashMap<String, (String, String)>>,
}

impl OpenApprovals {
    pub const CAP: usize = 200_000;

    /// The open approval's (id, state) for `shipment`, if known.
    pub fn get(&self, shipment: &str) -> Option<(String, String)> {
        self.lock().get(shipment).cloned()
    }

    pub fn set(&self, shipment: &str, id: &str, state: &str) {
        let mut m = self.lock();
        if m.len() < Self::CAP || m.contains_key(shipment) {
            m.insert(shipment.to_string(), (id.to_string(), state.to_string()));
        }
    }

    /// Forgets `shipment`'s approval (decided, withdrawn, expired).
    pub fn close(&self, shipment: &str) {
        self.lock().remove(shipment);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, String)>> {
        self.by_shipment.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One approval as stored.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Approval {
    pub id: String,
    pub shipment_id: String,
    pub state: String,
    pub version: i64,
    pub queue: String,
    pub approver_role: String,
    pub reason_codes: Vec<String>,
    pub opened_at: String,
    pub due_at: String,
    pub expires_at: String,
    pub updated_at: String,
    pub score_id: String,
    pub delay_risk: f64,
    pub risk_band: String,
    pub recommended_carrier: Option<String>,
    pub warehouse: String,
    pub customer_tier: Option<String>,
    pub order_value: Option<f64>,
    pub raised_by: Option<String>,
    pub last_scored_by: Option<String>,
    pub approvals_needed: i64,
    pub claimed_by: Option<String>,
    pub claim_expires_at: Option<String>,
    pub first_approver: Option<String>,
    pub decided_by: Option<String>,
    pub decided_at: Option<String>,
    pub decision_reason: Option<String>,
    pub decision_comment: Option<String>,
    pub final_carrier: Option<String>,
    pub release_at: Option<String>,
}

impl Approval {
    pub fn is_open(&self) -> bool {
        self.state == "pending" || self.state == "escalated"
    }
}

const COLUMNS: &str = "id, shipment_id, state, version, queue, approver_role, reason_codes, \
    opened_at, due_at, expires_at, updated_at, score_id, delay_risk, risk_band, \
    recommended_carrier, warehouse, customer_tier, order_value, raised_by, last_scored_by, \
    approvals_needed, claimed_by, claim_expires_at, first_approver, decided_by, decided_at, \
    decision_reason, decision_comment, final_carrier, release_at";

fn approval_of(r: &sqlx::any::AnyRow) -> Result<Approval, sqlx::Error> {
    let reasons: String = r.try_get("reason_codes")?;
    Ok(Approval {
        id: r.try_get("id")?,
        shipment_id: r.try_get("shipment_id")?,
        state: r.try_get("state")?,
        version: r.try_get("version")?,
        queue: r.try_get("queue")?,
        approver_role: r.try_get("approver_role")?,
        reason_codes: serde_json::from_str(&reasons).unwrap_or_default(),
        opened_at: r.try_get("opened_at")?,
        due_at: r.try_get("due_at")?,
        expires_at: r.try_get("expires_at")?,
        updated_at: r.try_get("updated_at")?,
        score_id: r.try_get("score_id")?,
        delay_risk: r.try_get("delay_risk")?,
        risk_band: r.try_get("risk_band")?,
        recommended_carrier: r.try_get("recommended_carrier")?,
        warehouse: r.try_get("warehouse")?,
        customer_tier: r.try_get("customer_tier")?,
        order_value: r.try_get("order_value")?,
        raised_by: r.try_get("raised_by")?,
        last_scored_by: r.try_get("last_scored_by")?,
        approvals_needed: r.try_get("approvals_needed")?,
        claimed_by: r.try_get("claimed_by")?,
        claim_expires_at: r.try_get("claim_expires_at")?,
        first_approver: r.try_get("first_approver")?,
        decided_by: r.try_get("decided_by")?,
        decided_at: r.try_get("decided_at")?,
        decision_reason: r.try_get("decision_reason")?,
        decision_comment: r.try_get("decision_comment")?,
        final_carrier: r.try_get("final_carrier")?,
        release_at: r.try_get("release_at")?,
    })
}

/// What a list of approvals keeps: each filter that is set must match.
#[derive(Debug, Clone, Default)]
pub struct ApprovalFilter {
    pub states: Vec<String>,
    pub queue: Option<String>,
    pub role: Option<String>,
    pub warehouse: Option<String>,
    pub carrier: Option<String>,
    pub customer_tier: Option<String>,
    pub band: Option<String>,
    pub due_before: Option<String>,
}

/// How a list is ordered; each order ends on the id, so a cursor is exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ApprovalOrder {
    /// Soonest due first, then the riskiest.
    #[default]
    Due,
    /// Riskiest first.
    Risk,
    /// Highest order value first.
    Value,
}

/// Where a page starts: after this row of the order.
#[derive(Debug, Clone, PartialEq)]
pub struct Cursor {
    pub key: CursorKey,
    pub id: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CursorKey {
    Due(String, f64),
    Number(f64),
}

/// A step made on a row as read at `version`: the row's new content.
#[derive(Debug, Clone)]
pub struct Transition {
    pub before: Approval,
    pub after: Approval,
    pub audit: AuditEntry,
}

/// Why a step was not made.
#[derive(Debug, thiserror::Error)]
pub enum TransitionError {
    /// Someone else changed the row since it was read.
    #[error("the approval changed since it was read (version {0}); read it again")]
    Changed(i64),
    #[error(transparent)]
    Store(#[from] StoreError),
}

const UPDATE: &str = "UPDATE approvals SET state = $1, version = $2, approver_role = $3, \
    due_at = $4, updated_at = $5, claimed_by = $6, claim_expires_at = $7, first_approver = $8, \
    decided_by = $9, decided_at = $10, decision_reason = $11, decision_comment = $12, \
    final_carrier = $13, release_at = $14 WHERE id = $15 AND version = $16";

impl Store {
    pub async fn approval(&self, id: &str) -> Result<Option<Approval>, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM approvals WHERE id = $1"));
        let row = sqlx::query(sql).bind(id).fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(approval_of).transpose()?)
    }

    /// The open approval of `shipment`, if it has one.
    pub async fn open_approval(&self, shipment: &str) -> Result<Option<Approval>, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM approvals WHERE shipment_id = $1 AND state IN {OPEN}"
        ));
        let row = sqlx::query(sql)
            .bind(shipment)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(approval_of).transpose()?)
    }

    /// Open approvals' (shipment, id, state), at most `limit`: what a starting instance knows.
    pub async fn open_approvals(
        &self,
        limit: i64,
    ) -> Result<Vec<(String, String, String)>, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT shipment_id, id, state FROM approvals WHERE state IN {OPEN} LIMIT $1"
        ));
        let rows = sqlx::query(sql).bind(limit).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// A page of approvals matching `filter`, in `order`, after `cursor`.
    pub async fn approvals(
        &self,
        filter: &ApprovalFilter,
        order: ApprovalOrder,
        cursor: Option<&Cursor>,
        limit: i64,
    ) -> Result<Vec<Approval>, StoreError> {
        let mut sql = format!("SELECT {COLUMNS} FROM approvals WHERE 1 = 1");
        let mut binds: Vec<Bound> = Vec::new();
        let param = |binds: &mut Vec<Bound>, v: Bound| {
            binds.push(v);
            format!("${}", binds.len())
        };
        if !filter.states.is_empty() {
            let list: Vec<String> = filter
                .states
                .iter()
                .map(|s| param(&mut binds, Bound::Text(s.clone())))
                .collect();
            sql.push_str(&format!(" AND state IN ({})", list.join(", ")));
        }
        for (column, value) in [
            ("queue", &filter.queue),
            ("approver_role", &filter.role),
            ("warehouse", &filter.warehouse),
            ("recommended_carrier", &filter.carrier),
            ("customer_tier", &filter.customer_tier),
            ("risk_band", &filter.band),
        ] {
            if let Some(v) = value {
                let p = param(&mut binds, Bound::Text(v.clone()));
                sql.push_str(&format!(" AND {column} = {p}"));
            }
        }
        if let Some(before) = &filter.due_before {
            let p = param(&mut binds, Bound::Text(before.clone()));
            sql.push_str(&format!(" AND due_at < {p}"));
        }
        if let Some(c) = cursor {
            let id = param(&mut binds, Bound::Text(c.id.clone()));
            match (&c.key, order) {
                (CursorKey::Due(due, risk), ApprovalOrder::Due) => {
                    let d = param(&mut binds, Bound::Text(due.clone()));
                    let r = param(&mut binds, Bound::Number(*risk));
                    sql.push_str(&format!(
                        " AND (due_at > {d} OR (due_at = {d} AND (delay_risk < {r} \
                         OR (delay_risk = {r} AND id > {id}))))"
                    ));
                }
                (CursorKey::Number(n), ApprovalOrder::Risk) => {
                    let n = param(&mut binds, Bound::Number(*n));
                    sql.push_str(&format!(
                        " AND (delay_risk < {n} OR (delay_risk = {n} AND id > {id}))"
                    ));
                }
                (CursorKey::Number(n), ApprovalOrder::Value) => {
                    let n = param(&mut binds, Bound::Number(*n));
                    sql.push_str(&format!(
                        " AND (coalesce(order_value, 0) < {n} OR \
                         (coalesce(order_value, 0) = {n} AND id > {id}))"
                    ));
                }
                // A cursor of another order starts from the beginning.
                _ => {}
            }
        }
        sql.push_str(match order {
            ApprovalOrder::Due => " ORDER BY due_at, delay_risk DESC, id",
            ApprovalOrder::Risk => " ORDER BY delay_risk DESC, id",
            ApprovalOrder::Value => " ORDER BY coalesce(order_value, 0) DESC, id",
        });
        let p = param(&mut binds, Bound::Int(limit));
        sql.push_str(&format!(" LIMIT {p}"));
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for b in binds {
            q = match b {
                Bound::Text(t) => q.bind(t),
                Bound::Number(n) => q.bind(n),
                Bound::Int(i) => q.bind(i),
            };
        }
        let rows = q.fetch_all(&self.pool).await?;
        Ok(rows.iter().map(approval_of).collect::<Result<_, _>>()?)
    }

    /// Open approvals per queue, for the queue's counts.
    pub async fn open_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT queue, count(*) FROM approvals WHERE state IN {OPEN} GROUP BY queue ORDER BY queue"
        ));
        let rows = sqlx::query(sql).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// Makes `t` if the row is still at `t.before.version`, with its audit row, in one
    /// transaction.
    pub async fn transition(&self, t: &Transition) -> Result<(), TransitionError> {
        let a = &t.after;
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        let changed = sqlx::query(UPDATE)
            .bind(&a.state)
            .bind(t.before.version + 1)
            .bind(&a.approver_role)
            .bind(&a.due_at)
            .bind(&a.updated_at)
            .bind(&a.claimed_by)
            .bind(&a.claim_expires_at)
            .bind(&a.first_approver)
            .bind(&a.decided_by)
            .bind(&a.decided_at)
            .bind(&a.decision_reason)
            .bind(&a.decision_comment)
            .bind(&a.final_carrier)
            .bind(&a.release_at)
            .bind(&a.id)
            .bind(t.before.version)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from)?
            .rows_affected();
        if changed == 0 {
            return Err(TransitionError::Changed(t.before.version));
        }
        audit::append(&mut tx, std::slice::from_ref(&t.audit))
            .await
            .map_err(StoreError::from)?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(())
    }

    /// Pending approvals past their due time at `now`.
    pub async fn past_sla(&self, now: &str) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT count(*) FROM approvals WHERE state = 'pending' AND due_at < $1",
        )
        .bind(now)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Open approvals due (or expiring) before `now`, at most `limit`, soonest first.
    pub async fn approvals_past(&self, now: &str, limit: i64) -> Result<Vec<Approval>, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM approvals WHERE (state = 'pending' AND due_at <= $1) \
             OR (state IN {OPEN} AND expires_at <= $1) ORDER BY due_at, id LIMIT $2"
        ));
        let rows = sqlx::query(sql)
            .bind(now)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(approval_of).collect::<Result<_, _>>()?)
    }
}

enum Bound {
    Text(String),
    Number(f64),
    Int(i64),
}

/// One of a shipment's recorded scores, as its approval page lists them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScoreLine {
    pub score_id: String,
    pub created_at: String,
    pub delay_risk: f64,
    pub risk_band: String,
}

impl Store {
    /// A shipment's newest scores, newest first, at most `limit`.
    pub async fn shipment_scores(
        &self,
        shipment: &str,
        limit: i64,
    ) -> Result<Vec<ScoreLine>, StoreError> {
        let rows = sqlx::query(
            "SELECT score_id, created_at, delay_risk, risk_band FROM scores \
             WHERE shipment_id = $1 ORDER BY created_at DESC, score_id DESC LIMIT $2",
        )
        .bind(shipment)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ScoreLine {
                    score_id: r.try_get(0)?,
                    created_at: r.try_get(1)?,
                    delay_risk: r.try_get(2)?,
                    risk_band: r.try_get(3)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }
}
