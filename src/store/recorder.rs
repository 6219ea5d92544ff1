//! Recording scores without slowing the answers: handlers hand an answer's records (one, or a
//! batch's) to a channel and return; one task writes whatever has queued up, up to
//! [`MAX_BATCH`] rows per transaction, so under load each write carries hundreds of rows. When
//! [`QUEUE`] records wait unwritten, handlers wait for room (nothing is dropped), and
//! [`Recorder::flush`] returns once everything sent before it is in the database.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use sqlx::AnyPool;
use tokio::sync::{mpsc, oneshot, Semaphore};

use super::{flag, Backend, StoreError};

/// One answered score, as stored.
#[derive(Debug, Clone)]
pub struct ScoreRecord {
    pub score_id: String,
    pub shipment_id: String,
    pub created_at: String,
    pub endpoint: &'static str,
    pub request: String,
    pub response: String,
    pub model_version: Option<String>,
    pub policy_version: String,
    pub source: &'static str,
    pub risk_band: &'static str,
    pub delay_risk: f64,
    pub queue: &'static str,
    pub requires_approval: bool,
    pub degraded: bool,
    pub latency_us: i64,
    pub api_key_id: Option<String>,
}

enum Message {
    Records(Vec<ScoreRecord>),
    Flush(oneshot::Sender<Result<(), String>>),
}

/// Records accepted and not yet written before handlers wait for room.
pub const QUEUE: usize = 65_536;
/// Rows per transaction, at most.
pub const MAX_BATCH: usize = 2_000;
/// Rows per INSERT statement: 16 x 500 parameters, under the bundled SQLite's 32,766 and
/// PostgreSQL's 65,535. Fewer, larger statements mean fewer trips to the database's thread.
const ROWS_PER_STATEMENT: usize = 500;

pub struct Recorder {
    /// Unbounded: `room` bounds what waits in it, counted in records rather than messages.
    tx: mpsc::UnboundedSender<Message>,
    /// One permit per record that may still be queued; the writer gives them back.
    room: Arc<Semaphore>,
    /// Records accepted and not yet written (or given up on).
    pending: Arc<AtomicU64>,
}

impl Recorder {
    pub fn start(pool: AnyPool, backend: Backend) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let pending = Arc::new(AtomicU64::new(0));
        let room = Arc::new(Semaphore::new(QUEUE));
        tokio::spawn(run(pool, backend, rx, pending.clone(), room.clone()));
        Recorder { tx, room, pending }
    }

    /// Records accepted and not yet written: the backlog, for metrics.
    pub fn pending(&self) -> u64 {
        self.pending.load(Ordering::Relaxed)
    }

    /// Queues one answer's records (a batch's together); waits only while the queue has no
    /// room for them.
    pub async fn record(&self, records: Vec<ScoreRecord>) -> Result<(), StoreError> {
        let mut records = records;
        while !records.is_empty() {
            // More than the queue holds goes in parts, each waiting for a whole queue's room.
            let rest = records.split_off(records.len().min(QUEUE));
            let n = records.len();
            self.room
                .acquire_many(n as u32)
                .await
                .map_err(|_| StoreError::RecorderStopped)?
                .forget();
            self.pending.fetch_add(n as u64, Ordering::Relaxed);
            if self.tx.send(Message::Records(records)).is_err() {
                self.pending.fetch_sub(n as u64, Ordering::Relaxed);
                self.room.add_permits(n);
                return Err(StoreError::RecorderStopped);
            }
            records = rest;
        }
        Ok(())
    }

    /// Waits until every record queued before this call is written.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Message::Flush(tx))
            .map_err(|_| StoreError::RecorderStopped)?;
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(StoreError::Sql(sqlx::Error::Protocol(e))),
            Err(_) => Err(StoreError::RecorderStopped),
        }
    }
}

async fn run(
    pool: AnyPool,
    backend: Backend,
    mut rx: mpsc::UnboundedReceiver<Message>,
    pending: Arc<AtomicU64>,
    room: Arc<Semaphore>,
) {
    let mut queued: Vec<ScoreRecord> = Vec::with_capacity(MAX_BATCH);
    let mut waiting: Vec<oneshot::Sender<Result<(), String>>> = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(m) = next.take() {
            match m {
                Message::Records(r) => queued.extend(r),
                Message::Flush(w) => waiting.push(w),
            }
            if queued.len() < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        let mut result = Ok(());
        for rows in queued.chunks(MAX_BATCH) {
            if let Err(e) = write_with_retries(&pool, backend, rows).await {
                result = Err(e);
            }
            pending.fetch_sub(rows.len() as u64, Ordering::Relaxed);
            room.add_permits(rows.len());
        }
        queued.clear();
        for w in waiting.drain(..) {
            let _ = w.send(result.clone());
        }
    }
}

/// Writes `rows` in one transaction. A failed write is retried with backoff rather than
/// dropped: the records were accepted. Flushes wait for the outcome.
async fn write_with_retries(
    pool: &AnyPool,
    backend: Backend,
    rows: &[ScoreRecord],
) -> Result<(), String> {
    let mut delay = std::time::Duration::from_millis(50);
    let mut result = Ok(());
    for attempt in 0..8 {
        match write(pool, backend, rows).await {
            Ok(()) => return Ok(()),
            Err(e) => {
                tracing::error!(error = %e, attempt, rows = rows.len(), "recording scores failed; retrying");
                result = Err(e.to_string());
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(5));
            }
        }
    }
    tracing::error!(
        rows = rows.len(),
        "recording scores failed for good; these records are lost"
    );
    result
}

async fn write(pool: &AnyPool, backend: Backend, rows: &[ScoreRecord]) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let sql = insert_sql(backend, chunk.len());
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for r in chunk {
            q = q
                .bind(r.score_id.clone())
                .bind(r.shipment_id.clone())
                .bind(r.created_at.clone())
                .bind(r.endpoint)
                .bind(r.request.clone())
                .bind(r.response.clone())
                .bind(r.model_version.clone())
                .bind(r.policy_version.clone())
                .bind(r.source)
                .bind(r.risk_band)
                .bind(r.delay_risk)
                .bind(r.queue)
                .bind(flag(r.requires_approval))
                .bind(flag(r.degraded))
                .bind(r.latency_us)
                .bind(r.api_key_id.clone());
        }
        q.execute(&mut *tx).await?;
        latest_sql(chunk, backend).execute(&mut *tx).await?;
    }
    tx.commit().await
}

/// Moves each shipment's entry in `latest_scores` to its newest record in `chunk`, unless a
/// newer one is there already. One row per shipment per statement: PostgreSQL refuses an
/// upsert that touches a row twice.
fn latest_sql(
    chunk: &[ScoreRecord],
    backend: Backend,
) -> sqlx::query::Query<'static, sqlx::Any, sqlx::any::AnyArguments> {
    let mut newest: Vec<&ScoreRecord> = Vec::with_capacity(chunk.len());
    let mut at: HashMap<&str, usize> = HashMap::with_capacity(chunk.len());
    for r in chunk {
        match at.get(r.shipment_id.as_str()) {
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
    let mut sql =
        String::from("INSERT INTO latest_scores (shipment_id, score_id, created_at) VALUES ");
    push_values(&mut sql, backend, newest.len(), 3);
    sql.push_str(
        " ON CONFLICT (shipment_id) DO UPDATE SET score_id = excluded.score_id, \
         created_at = excluded.created_at \
         WHERE excluded.created_at > latest_scores.created_at \
         OR (excluded.created_at = latest_scores.created_at \
         AND excluded.score_id > latest_scores.score_id)",
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for r in newest {
        q = q
            .bind(r.shipment_id.clone())
            .bind(r.score_id.clone())
            .bind(r.created_at.clone());
    }
    q
}

const COLUMNS: usize = 16;

/// A multi-row INSERT into `scores`.
fn insert_sql(backend: Backend, rows: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO scores (score_id, shipment_id, created_at, endpoint, request, response, \
         model_version, policy_version, source, risk_band, delay_risk, queue, requires_approval, \
         degraded, latency_us, api_key_id) VALUES ",
    );
    push_values(&mut sql, backend, rows, COLUMNS);
    sql
}

/// `rows` parenthesised groups of `columns` placeholders. SQLite gets anonymous `?`: with
/// numbered ones its driver looks up every parameter's name, 5 % of a batch's time in profiles.
fn push_values(sql: &mut String, backend: Backend, rows: usize, columns: usize) {
    for r in 0..rows {
        if r > 0 {
            sql.push(',');
        }
        sql.push('(');
        for c in 0..columns {
            if c > 0 {
                sql.push(',');
            }
            match backend {
                Backend::Sqlite => sql.push('?'),
                Backend::Postgres => sql.push_str(&format!("${}", r * columns + c + 1)),
            }
        }
        sql.push(')');
    }
}
