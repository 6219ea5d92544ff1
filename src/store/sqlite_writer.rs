//! The recorder's SQLite connection, on a thread of its own. A group of writes goes to the
//! writer in one message and its transaction (BEGIN, each row's insert and latest-score
//! upsert, the idempotency completions, COMMIT) runs there in one go: through sqlx each
//! statement was a trip to its worker thread and back. After the commit the thread syncs the
//! WAL's data and only then answers, so an answer means the commit is on disk, power loss
//! included. (A frame is overwritten only after a checkpoint has copied it to the database
//! file and synced that.) The statements are PostgreSQL's ([`super::statements`]) in their
//! one-row forms, prepared once per connection.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection};
use tokio::sync::oneshot;

use super::approvals::{self, ApprovalOp, Failed};
use super::audit;
use super::recorder::{Completion, ScoreRecord, Write};
use super::{flag, statements, RECORDER_PRAGMAS, SQLITE_PRAGMAS};

type Done = oneshot::Sender<Result<(), sqlx::Error>>;

/// What the thread is asked to do, each in one transaction.
enum Job {
    /// A transaction's worth of writes and where its outcome goes.
    Write {
        writes: Vec<Write>,
        replay: bool,
        done: Done,
    },
    /// One request's rows arriving in chunks while it makes them (see [`Chunk`]), written as
    /// they come and committed with the last; a stream whose sender goes away is rolled back.
    Stream {
        chunks: tokio::sync::mpsc::Receiver<Chunk>,
        done: Done,
    },
}

/// A part of a streamed write.
pub enum Chunk {
    Rows(Vec<ScoreRecord>),
    /// The end: the request's idempotency completion, if any, and the commit.
    End(Option<Completion>),
}

/// The handle to the writer thread; cheap to clone. The thread ends when the last handle is
/// dropped.
#[derive(Clone)]
pub struct SqliteWriter {
    jobs: mpsc::Sender<Job>,
}

impl SqliteWriter {
    /// Opens the database file (it must exist: the pool that ran the migrations made it) and
    /// starts the thread.
    pub fn open(path: &Path) -> Result<SqliteWriter, sqlx::Error> {
        let conn = connect(path).map_err(database_error)?;
        // The WAL exists while any connection is open in WAL mode, and is reused in place
        // (restarted, never replaced) while they are: syncing this handle syncs its frames.
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        let wal = File::open(&wal).map_err(sqlx::Error::Io)?;
        let (jobs, rx) = mpsc::channel::<Job>();
        let path = path.to_path_buf();
        std::thread::Builder::new()
            .name("recorder-sqlite".into())
            .spawn(move || run(conn, wal, path, rx))
            .map_err(sqlx::Error::Io)?;
        Ok(SqliteWriter { jobs })
    }

    /// Commits `writes` in one transaction; `replay` skips rows already there.
    pub async fn write(&self, writes: &[&Write], replay: bool) -> Result<(), sqlx::Error> {
        // Clones of the records' shared texts, not of the texts.
        let writes = writes.iter().map(|w| (*w).clone()).collect();
        self.submit(|done| Job::Write {
            writes,
            replay,
            done,
        })
        .await
    }

    /// Writes the chunks `chunks` brings in one transaction, committed (and synced) at its
    /// [`Chunk::End`]; returns once that is durable, or failed. The thread writes nothing else
    /// meanwhile.
    pub async fn stream(
        &self,
        chunks: tokio::sync::mpsc::Receiver<Chunk>,
    ) -> Result<(), sqlx::Error> {
        self.submit(|done| Job::Stream { chunks, done }).await
    }

    /// Hands the thread a job and waits for its outcome.
    async fn submit(&self, job: impl FnOnce(Done) -> Job) -> Result<(), sqlx::Error> {
        let (done, answer) = oneshot::channel();
        self.jobs
            .send(job(done))
            .map_err(|_| sqlx::Error::WorkerCrashed)?;
        answer.await.unwrap_or(Err(sqlx::Error::WorkerCrashed))
    }
}

fn connect(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    for pragma in SQLITE_PRAGMAS.iter().chain(&RECORDER_PRAGMAS) {
        // Some pragmas answer with a row (journal_mode), others with none.
        conn.query_row(pragma, [], |_| Ok(()))
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(()),
                e => Err(e),
            })?;
    }
    conn.set_prepared_statement_cache_capacity(16);
    Ok(conn)
}

fn run(mut conn: Connection, wal: File, path: PathBuf, jobs: mpsc::Receiver<Job>) {
    let mut restarted = Instant::now();
    while let Ok(job) = jobs.recv() {
        if restarted.elapsed() >= RESTART_EVERY {
            let started = Instant::now();
            restart_wal(&conn);
            slow("checkpoint", started, 0);
            restarted = Instant::now();
        }
        // (rows, when their commit began: a stream's, once its last chunk came)
        let (written, done) = match job {
            Job::Write {
                writes,
                replay,
                done,
            } => {
                let started = Instant::now();
                let rows = writes.iter().map(|w| w.records.len()).sum();
                (
                    write(&mut conn, &writes, replay).map(|()| (rows, started)),
                    done,
                )
            }
            Job::Stream { mut chunks, done } => (write_stream(&mut conn, &wal, &mut chunks), done),
        };
        match written {
            Ok((rows, started)) => {
                slow("commit", started, rows);
                let started = Instant::now();
                let synced = sync(&wal);
                slow("sync", started, rows);
                let _ = done.send(synced);
            }
            Err(Failed::Stale(shipment)) => {
                // The transaction was rolled back whole; the connection is as it was.
                let _ = done.send(Err(approvals::stale(&shipment)));
            }
            Err(Failed::Sql(e)) => {
                // A connection whose write failed is not reused: SQLite can leave the
                // transaction of a COMMIT that failed (a full disk) open, and the next BEGIN
                // would then fail or, worse, nest.
                match connect(&path) {
                    Ok(fresh) => conn = fresh,
                    Err(e) => tracing::error!(error = %e, "reopening the recorder's database"),
                }
                let _ = done.send(Err(database_error(e)));
            }
        }
    }
}

/// A step of the writer that held every waiting answer longer than this (plus 10 µs per row
/// it wrote: a batch of 10,000 takes ~60 ms) is logged: the commit histogram says that answers
/// waited, this says which step made them.
const SLOW: Duration = Duration::from_millis(50);

fn slow(step: &'static str, started: Instant, rows: usize) {
    let took = started.elapsed();
    if took >= SLOW + Duration::from_micros(10 * rows as u64) {
        let ms = took.as_millis() as u64;
        tracing::warn!(step, ms, rows, "the recorder's write path was slow");
    }
}

/// How often the writer lets the WAL start over from its beginning.
const RESTART_EVERY: Duration = Duration::from_secs(1);

/// Checkpoints what the background checkpoints have not copied yet (a fraction of a second's
/// commits), between two of this connection's transactions: with no commit landing meanwhile
/// it copies the WAL to its end, and the next transaction then writes the WAL from its start
/// again. The background checkpoints alone never reach the end under steady load, and the WAL
/// grew without bound (274 MB in 25 s of the service bench); every sync of a growing file
/// also writes its new size through the file system's journal.
fn restart_wal(conn: &Connection) {
    let r = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
    if let Err(e) = r {
        tracing::warn!(error = %e, "checkpointing the WAL");
    }
}

/// Syncs the WAL's data (not its times, which `fsync`, and so SQLite's FULL, would write
/// through the file system's journal too).
fn sync(wal: &File) -> Result<(), sqlx::Error> {
    wal.sync_data().map_err(|e| {
        // Linux may drop the pages a failed sync could not write: the commit may be in the
        // database or not, and its requests are told it failed.
        tracing::error!(error = %e, "syncing the WAL failed");
        sqlx::Error::Io(e)
    })
}

/// One group's transaction: each record's score and latest score, the approval it opens or
/// updates, each request's idempotency completion, then the approvals' audit rows.
fn write(conn: &mut Connection, writes: &[Write], replay: bool) -> Result<(), Failed> {
    let tx = conn.transaction()?;
    let mut ops: Vec<&ApprovalOp> = Vec::new();
    for w in writes {
        insert_scores(&tx, &w.records, replay, &mut ops)?;
        complete(&tx, w.completion.as_ref())?;
    }
    apply_approvals(&tx, &ops, replay)?;
    tx.commit()?;
    Ok(())
}

/// A streamed request's transaction: each chunk's scores and their approval steps as the chunk
/// arrives, then the completion and the commit. A stream that ends without its
/// [`Chunk::End`] (the request went away) is rolled back. Returns the rows written and when
/// the commit began.
///
/// After each chunk the transaction's pages go to the WAL and are synced, while the request
/// makes its next chunk: a batch's transaction is tens of megabytes, and written and synced
/// only at its commit it held the answer for 190 ms after the last chunk (80 ms this way: the
/// commit still rewrites the checksums of the frames after the first page written twice).
/// Frames without a commit are never read, so a stream rolled back or cut off by a crash
/// leaves nothing.
fn write_stream(
    conn: &mut Connection,
    wal: &File,
    chunks: &mut tokio::sync::mpsc::Receiver<Chunk>,
) -> Result<(usize, Instant), Failed> {
    let tx = conn.transaction()?;
    let mut rows = 0;
    let mut next = None;
    loop {
        match next.take().or_else(|| chunks.blocking_recv()) {
            Some(Chunk::Rows(records)) => {
                let mut ops = Vec::new();
                insert_scores(&tx, &records, false, &mut ops)?;
                apply_approvals(&tx, &ops, false)?;
                rows += records.len();
                // The records are freed here, off the async workers.
                drop(records);
                // With the next chunk already waiting (the end, typically), the request is
                // not making anything meanwhile: go on.
                next = chunks.try_recv().ok();
                if next.is_none() {
                    tx.cache_flush()?;
                    // A sync that fails may have dropped the pages it could not write, which
                    // a later sync would not report: the stream fails with it.
                    wal.sync_data().map_err(io_failure)?;
                }
            }
            Some(Chunk::End(completion)) => {
                let started = Instant::now();
                complete(&tx, completion.as_ref())?;
                tx.commit()?;
                return Ok((rows, started));
            }
            None => {
                return Err(Failed::Sql(rusqlite::Error::ToSqlConversionFailure(
                    "the streamed write was given up before its end: rolled back".into(),
                )))
            }
        }
    }
}

/// An I/O error of the writer's own as SQLite would report it: SQLITE_FULL for no room,
/// SQLITE_IOERR otherwise.
fn io_failure(e: std::io::Error) -> Failed {
    let code = if e.kind() == std::io::ErrorKind::StorageFull {
        rusqlite::ffi::SQLITE_FULL
    } else {
        rusqlite::ffi::SQLITE_IOERR
    };
    Failed::Sql(rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(code),
        Some(format!("syncing the WAL: {e}")),
    ))
}

/// The idempotency completion of one request.
fn complete(tx: &rusqlite::Transaction, c: Option<&Completion>) -> Result<(), Failed> {
    if let Some(c) = c {
        let mut complete = tx.prepare_cached(statements::COMPLETE)?;
        complete.execute(params![c.status as i32, &*c.body, &*c.owner, &*c.key])?;
    }
    Ok(())
}

/// Opens or updates the approvals of `ops`, with their audit rows.
fn apply_approvals(
    tx: &rusqlite::Transaction,
    ops: &[&ApprovalOp],
    replay: bool,
) -> Result<(), Failed> {
    if !ops.is_empty() {
        let entries = approvals::apply_sqlite(tx, ops, replay)?;
        audit::append_sqlite(tx, &entries)?;
    }
    Ok(())
}

/// Each record's score and latest score; the approval steps of the scores inserted go to
/// `ops`.
fn insert_scores<'r>(
    tx: &rusqlite::Transaction,
    records: &'r [ScoreRecord],
    replay: bool,
    ops: &mut Vec<&'r ApprovalOp>,
) -> Result<(), Failed> {
    let sql = one_row();
    let insert_sql = if replay {
        &sql.insert_replay
    } else {
        &sql.insert
    };
    let mut insert = tx.prepare_cached(insert_sql)?;
    let mut latest = tx.prepare_cached(&sql.latest)?;
    for r in records {
        let f = &r.facts;
        let inserted = insert.execute(params![
            &*r.score_id,
            &*r.shipment_id,
            &*r.created_at,
            r.endpoint,
            &*r.request,
            &*r.response,
            r.model_version.as_deref(),
            &*r.policy_version,
            r.source,
            r.risk_band,
            r.delay_risk,
            r.queue,
            flag(r.requires_approval),
            flag(r.degraded),
            r.latency_us,
            r.api_key_id.as_deref(),
            f.scored_carrier.as_deref(),
            &*f.warehouse,
            &*f.destination,
            &*f.scheduled_date,
            &*f.date_deadline,
        ])?;
        latest.execute(params![&*r.shipment_id, &*r.score_id, &*r.created_at])?;
        // A replayed score already stored brought its approval step with it.
        if let Some(op) = &r.approval {
            if inserted == 1 {
                ops.push(op);
            }
        }
    }
    Ok(())
}

/// The one-row forms of PostgreSQL's statements, written out once.
struct Statements {
    insert: String,
    insert_replay: String,
    latest: String,
}

fn one_row() -> &'static Statements {
    static SQL: std::sync::OnceLock<Statements> = std::sync::OnceLock::new();
    SQL.get_or_init(|| Statements {
        insert: statements::insert_sql(1, false),
        insert_replay: statements::insert_sql(1, true),
        latest: statements::latest_sql(1),
    })
}

/// A rusqlite error as the recorder classifies errors: SQLite's extended result code as the
/// code, as sqlx reports it.
fn database_error(e: rusqlite::Error) -> sqlx::Error {
    let (code, message) = match &e {
        rusqlite::Error::SqliteFailure(f, m) => {
            (f.extended_code, m.clone().unwrap_or_else(|| f.to_string()))
        }
        // Anything else is a mistake in the statements, never the database being away.
        other => (1, other.to_string()),
    };
    sqlx::Error::Database(Box::new(Failure { code, message }))
}

#[derive(Debug)]
struct Failure {
    code: i32,
    message: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "(code: {}) {}", self.code, self.message)
    }
}

impl std::error::Error for Failure {}

impl sqlx::error::DatabaseError for Failure {
    fn message(&self) -> &str {
        &self.message
    }

    fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
        Some(self.code.to_string().into())
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
