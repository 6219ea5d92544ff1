//! Recording scores without slowing the answers: handlers hand an answer's records (one, or a
//! batch's) to a channel and return; one task writes whatever has queued up, up to
//! [`MAX_BATCH`] rows per transaction, so under load each write carries hundreds of rows. When
//! [`QUEUE`] records wait unwritten, handlers wait for room (nothing is dropped), and
//! [`Recorder::flush`] returns once everything sent before it is in the database.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use sqlx::any::AnyArguments;
use sqlx::encode::Encode;
use sqlx::sqlite::SqliteArguments;
use sqlx::types::Type;
use sqlx::{Any, AnyPool, Sqlite, SqlitePool};
use tokio::sync::{mpsc, oneshot, Semaphore};

use super::{flag, Backend, StoreError};

/// A record's text, shared with the statements that write it: SQLite's driver binds it
/// without copying (a batch's records hold ~20 MB of text).
pub type Text = Arc<str>;

/// One answered score, as stored.
#[derive(Debug, Clone)]
pub struct ScoreRecord {
    pub score_id: Text,
    pub shipment_id: Text,
    pub created_at: Text,
    pub endpoint: &'static str,
    pub request: Text,
    pub response: Text,
    pub model_version: Option<Text>,
    pub policy_version: Text,
    pub source: &'static str,
    pub risk_band: &'static str,
    pub delay_risk: f64,
    pub queue: &'static str,
    pub requires_approval: bool,
    pub degraded: bool,
    pub latency_us: i64,
    pub api_key_id: Option<Text>,
}

/// Where the recorder writes: SQLite through its own driver, whose statements take the
/// records' texts as they are (the Any driver copies every text twice on the way), and
/// PostgreSQL through the Any driver.
#[derive(Clone)]
pub enum Sink {
    Sqlite(SqlitePool),
    Postgres(AnyPool),
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
    pub fn start(sink: Sink) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let pending = Arc::new(AtomicU64::new(0));
        let room = Arc::new(Semaphore::new(QUEUE));
        tokio::spawn(run(sink, rx, pending.clone(), room.clone()));
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
    sink: Sink,
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
            if let Err(e) = write_with_retries(&sink, rows).await {
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
async fn write_with_retries(sink: &Sink, rows: &[ScoreRecord]) -> Result<(), String> {
    let mut delay = std::time::Duration::from_millis(50);
    let mut result = Ok(());
    for attempt in 0..8 {
        match write(sink, rows).await {
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

/// Writes `rows` in one transaction: the scores, then each shipment's latest score.
async fn write(sink: &Sink, rows: &[ScoreRecord]) -> Result<(), sqlx::Error> {
    // The same statements through either driver's pool; only the types differ.
    macro_rules! write_through {
        ($pool:expr, $db:ty, $backend:expr) => {{
            let mut tx = $pool.begin().await?;
            for chunk in rows.chunks(ROWS_PER_STATEMENT) {
                let newest = newest_per_shipment(chunk);
                bind_scores(sqlx::query::<$db>(insert_sql($backend, chunk.len())), chunk)
                    .execute(&mut *tx)
                    .await?;
                bind_latest(
                    sqlx::query::<$db>(latest_sql($backend, newest.len())),
                    &newest,
                )
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await
        }};
    }
    match sink {
        Sink::Sqlite(pool) => write_through!(pool, Sqlite, Backend::Sqlite),
        Sink::Postgres(pool) => write_through!(pool, Any, Backend::Postgres),
    }
}

/// A value both drivers bind as it is: numbers and static words.
trait Plain:
    Encode<'static, Sqlite> + Type<Sqlite> + Encode<'static, Any> + Type<Any> + Send + 'static
{
}

impl<T> Plain for T where
    T: Encode<'static, Sqlite> + Type<Sqlite> + Encode<'static, Any> + Type<Any> + Send + 'static
{
}

/// Binding a record's values to a statement of either driver.
trait Bind: Sized {
    fn text(self, v: &Text) -> Self;
    fn maybe_text(self, v: &Option<Text>) -> Self;
    fn value<T: Plain>(self, v: T) -> Self;
}

impl Bind for sqlx::query::Query<'static, Sqlite, SqliteArguments> {
    fn text(self, v: &Text) -> Self {
        self.bind(v.clone())
    }
    fn maybe_text(self, v: &Option<Text>) -> Self {
        self.bind(v.clone())
    }
    fn value<T: Plain>(self, v: T) -> Self {
        self.bind(v)
    }
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

/// The values of [`insert_sql`]'s rows.
fn bind_scores<Q: Bind>(mut q: Q, rows: &[ScoreRecord]) -> Q {
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
            .maybe_text(&r.api_key_id);
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
fn newest_per_shipment(chunk: &[ScoreRecord]) -> Vec<&ScoreRecord> {
    let mut newest: Vec<&ScoreRecord> = Vec::with_capacity(chunk.len());
    let mut at: HashMap<&str, usize> = HashMap::with_capacity(chunk.len());
    for r in chunk {
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
fn latest_sql(backend: Backend, rows: usize) -> sqlx::AssertSqlSafe<String> {
    let mut sql =
        String::from("INSERT INTO latest_scores (shipment_id, score_id, created_at) VALUES ");
    push_values(&mut sql, backend, rows, 3);
    sql.push_str(
        " ON CONFLICT (shipment_id) DO UPDATE SET score_id = excluded.score_id, \
         created_at = excluded.created_at \
         WHERE excluded.created_at > latest_scores.created_at \
         OR (excluded.created_at = latest_scores.created_at \
         AND excluded.score_id > latest_scores.score_id)",
    );
    sqlx::AssertSqlSafe(sql)
}

const COLUMNS: usize = 16;

/// A multi-row INSERT into `scores`.
fn insert_sql(backend: Backend, rows: usize) -> sqlx::AssertSqlSafe<String> {
    let mut sql = String::from(
        "INSERT INTO scores (score_id, shipment_id, created_at, endpoint, request, response, \
         model_version, policy_version, source, risk_band, delay_risk, queue, requires_approval, \
         degraded, latency_us, api_key_id) VALUES ",
    );
    push_values(&mut sql, backend, rows, COLUMNS);
    sqlx::AssertSqlSafe(sql)
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
