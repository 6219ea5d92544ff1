//! The statements that write score records: multi-row INSERTs into `scores`, the upsert of
//! each shipment's latest score, and the completion of an idempotency claim, all in one
//! transaction per group of writes. PostgreSQL runs them here; SQLite runs the one-row forms
//! of the same text on the recorder's own thread ([`super::sqlite_writer`]).

use std::collections::HashMap;

use sqlx::any::AnyArguments;
use sqlx::encode::Encode;
use sqlx::types::Type;
use sqlx::{Any, AnyPool};

use super::approvals::{self, ApprovalOp};
use super::recorder::{Completion, ScoreRecord, Sink, Text, Write};
use super::{audit, flag};

/// Rows per INSERT statement: 21 x 500 parameters, under the bundled SQLite's 32,766 and
/// PostgreSQL's 65,535. Fewer, larger statements mean fewer trips to the database's thread.
const ROWS_PER_STATEMENT: usize = 500;

/// Writes `writes` in one transaction: their scores, each shipment's latest score, and the
/// idempotency claims they complete. `replay` writes again what may already be there.
pub(super) async fn write(sink: &Sink, writes: &[&Write], replay: bool) -> Result<(), sqlx::Error> {
    match sink {
        Sink::Sqlite(writer) => writer.write(writes, replay).await,
        Sink::Postgres(pool) => write_postgres(pool, writes, replay).await,
    }
}

async fn write_postgres(
    pool: &AnyPool,
    writes: &[&Write],
    replay: bool,
) -> Result<(), sqlx::Error> {
    let rows: Vec<&ScoreRecord> = writes.iter().flat_map(|w| w.records.iter()).collect();
    let completions: Vec<&Completion> = writes
        .iter()
        .filter_map(|w| w.completion.as_ref())
        .collect();
    let mut conn = pool.acquire().await?;
    let written = async {
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        let mut ops = Vec::new();
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let newest = newest_per_shipment(chunk);
            let with_approval: Vec<&ApprovalOp> =
                chunk.iter().filter_map(|r| r.approval.as_deref()).collect();
            if replay && !with_approval.is_empty() {
                // A replayed score already stored brought its approval step with it: only
                // the steps of scores inserted now are applied.
                let sql = sqlx::AssertSqlSafe(format!(
                    "{} RETURNING score_id",
                    insert_sql(chunk.len(), replay)
                ));
                let inserted: std::collections::HashSet<String> =
                    bind_scores(sqlx::query_scalar::<Any, String>(sql), chunk)
                        .fetch_all(&mut *tx)
                        .await?
                        .into_iter()
                        .collect();
                ops.extend(
                    with_approval
                        .into_iter()
                        .filter(|op| inserted.contains(&op.score_id)),
                );
            } else {
                let insert = sqlx::AssertSqlSafe(insert_sql(chunk.len(), replay));
                bind_scores(sqlx::query::<Any>(insert), chunk)
                    .execute(&mut *tx)
                    .await?;
                ops.extend(with_approval);
            }
            let latest = sqlx::AssertSqlSafe(latest_sql(newest.len()));
            bind_latest(sqlx::query::<Any>(latest), &newest)
                .execute(&mut *tx)
                .await?;
        }
        if !ops.is_empty() {
            let entries = approvals::apply(&mut tx, &ops, replay).await?;
            audit::append(&mut tx, &entries).await?;
        }
        for c in &completions {
            sqlx::query::<Any>(COMPLETE)
                .value(c.status as i32)
                .text(&c.body)
                .text(&c.owner)
                .text(&c.key)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await
    }
    .await;
    if written.is_err() {
        // A connection whose write failed is closed, never reused: its transaction may be
        // left in any state.
        conn.close_on_drop();
    }
    written
}

/// A value the driver binds as it is: numbers and static words.
trait Plain: Encode<'static, Any> + Type<Any> + Send + 'static {}

impl<T> Plain for T where T: Encode<'static, Any> + Type<Any> + Send + 'static {}

/// Binding a record's values to a statement.
trait Bind: Sized {
    fn text(self, v: &Text) -> Self;
    fn maybe_text(self, v: &Option<Text>) -> Self;
    fn value<T: Plain>(self, v: T) -> Self;
}

impl Bind for sqlx::query::Query<'static, Any, AnyArguments> {
    fn text(self, v: &Text) -> Self {
        self.bind(v.to_string())
    }
    fn maybe_text(self, v: &Option<Text>) -> Self {
        self.bind(v.as_deref().map(str::to_string))
    }
    fn value<T: Plain>(self, v: T) -> Self {
        self.bind(v)
    }
}

impl<O> Bind for sqlx::query::QueryScalar<'static, Any, O, AnyArguments> {
    fn text(self, v: &Text) -> Self {
        self.bind(v.to_string())
    }
    fn maybe_text(self, v: &Option<Text>) -> Self {
        self.bind(v.as_deref().map(str::to_string))
    }
    fn value<T: Plain>(self, v: T) -> Self {
        self.bind(v)
    }
}

/// The values of [`insert_sql`]'s rows.
fn bind_scores<Q: Bind>(mut q: Q, rows: &[&ScoreRecord]) -> Q {
    for r in rows {
        q = q
            .text(&r.score_id)
            .text(&r.shipment_id)
            .text(&r.created_at)
            .value(r.endpoint)
            .text(&r.request)
            .text(&r.response)
            .maybe_text(&r.model_version)
            .text(&r.policy_version)
            .value(r.source)
            .value(r.risk_band)
            .value(r.delay_risk)
            .value(r.queue)
            .value(flag(r.requires_approval))
            .value(flag(r.degraded))
            .value(r.latency_us)
            .maybe_text(&r.api_key_id)
            .maybe_text(&r.facts.scored_carrier)
            .text(&r.facts.warehouse)
            .text(&r.facts.destination)
            .text(&r.facts.scheduled_date)
            .text(&r.facts.date_deadline);
    }
    q
}

/// The values of [`latest_sql`]'s rows.
fn bind_latest<Q: Bind>(mut q: Q, newest: &[&ScoreRecord]) -> Q {
    for r in newest {
        q = q.text(&r.shipment_id).text(&r.score_id).text(&r.created_at);
    }
    q
}

/// Each shipment's newest record in `chunk`, in order of first appearance: one row per
/// shipment per statement, as PostgreSQL refuses an upsert that touches a row twice.
fn newest_per_shipment<'a>(chunk: &[&'a ScoreRecord]) -> Vec<&'a ScoreRecord> {
    let mut newest: Vec<&ScoreRecord> = Vec::with_capacity(chunk.len());
    let mut at: HashMap<&str, usize> = HashMap::with_capacity(chunk.len());
    for &r in chunk {
        match at.get(&*r.shipment_id) {
            Some(&i) => {
                let kept = newest[i];
                if (&r.created_at, &r.score_id) > (&kept.created_at, &kept.score_id) {
                    newest[i] = r;
                }
            }
            None => {
                at.insert(&r.shipment_id, newest.len());
                newest.push(r);
            }
        }
    }
    newest
}

/// Moves each of `rows` shipments' entry in `latest_scores` to the given newer record, unless
/// a newer one is there already.
pub(super) fn latest_sql(rows: usize) -> String {
    let mut sql =
        String::from("INSERT INTO latest_scores (shipment_id, score_id, created_at) VALUES ");
    push_values(&mut sql, rows, 3);
    sql.push_str(
        " ON CONFLICT (shipment_id) DO UPDATE SET score_id = excluded.score_id, \
         created_at = excluded.created_at \
         WHERE excluded.created_at > latest_scores.created_at \
         OR (excluded.created_at = latest_scores.created_at \
         AND excluded.score_id > latest_scores.score_id)",
    );
    sql
}

const COLUMNS: usize = 21;

/// A multi-row INSERT into `scores`; a replay skips the rows already there (a write whose
/// commit was not confirmed may have landed).
pub(super) fn insert_sql(rows: usize, replay: bool) -> String {
    let mut sql = String::from(
        "INSERT INTO scores (score_id, shipment_id, created_at, endpoint, request, response, \
         model_version, policy_version, source, risk_band, delay_risk, queue, requires_approval, \
         degraded, latency_us, api_key_id, scored_carrier, warehouse, destination, \
         scheduled_date, date_deadline) VALUES ",
    );
    push_values(&mut sql, rows, COLUMNS);
    if replay {
        sql.push_str(" ON CONFLICT (score_id) DO NOTHING");
    }
    sql
}

/// Completes an idempotency claim with the answer kept for it.
pub(super) const COMPLETE: &str = "UPDATE idempotency SET status = $1, response = $2 \
    WHERE key_owner = $3 AND idempotency_key = $4 AND status = 0";

/// `rows` parenthesised groups of `columns` numbered placeholders (SQLite reads `$N` as a
/// parameter too, bound by position).
fn push_values(sql: &mut String, rows: usize, columns: usize) {
    for r in 0..rows {
        if r > 0 {
            sql.push(',');
        }
        sql.push('(');
        for c in 0..columns {
            if c > 0 {
                sql.push(',');
            }
            sql.push_str(&format!("${}", r * columns + c + 1));
        }
        sql.push(')');
    }
}
