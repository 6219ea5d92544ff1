//! The one write path for answered scores, with group commit. A handler hands its answer's
//! records (one, or a batch's) and the idempotency claim they complete to [`Recorder::commit`]
//! and waits; one task writes whatever has queued up in one transaction (up to [`MAX_BATCH`]
//! rows, and always whole requests) and then wakes every request it held. Under load each
//! commit carries the requests that arrived during the previous one, as PostgreSQL's own group
//! commit does, so durability costs a wait of about one commit, not one commit per request.
//!
//! A large batch on SQLite is a [`Stream`] instead: its chunks go to the writer while the
//! request scores the next, into one transaction of its own committed with the last, so the
//! batch stays all or nothing while its writing overlaps its scoring. Writes that arrive
//! meanwhile wait for that commit (up to the batch's time).
//!
//! What the answer promises: `Ok` means the records are committed (or, on PostgreSQL while the
//! database is unreachable, fsync'd in the local [`Spool`] and replayed in order once it is
//! back). A group the database refuses is written again request by request, so a bad record
//! fails its own request and never its neighbours'.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::AnyPool;
use tokio::sync::{mpsc, oneshot, Semaphore};

use super::spool::{Spool, SpoolError};
pub use super::sqlite_writer::Chunk;
use super::{statements, unreachable, Backend, StoreError};

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
    /// What an outcome or an approval joins to the score.
    pub facts: Facts,
    /// The approval this score opens or updates, in its transaction.
    pub approval: Option<Box<super::approvals::ApprovalOp>>,
}

/// The scored shipment's facts kept beside its score: the carrier the risk was scored for, the
/// lane, and the dates (RFC 3339, UTC).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    pub scored_carrier: Option<Text>,
    pub warehouse: Text,
    pub destination: Text,
    pub scheduled_date: Text,
    pub date_deadline: Text,
}

/// The answer kept for an idempotency claim this request won (see [`super::idempotency`]).
#[derive(Debug, Clone)]
pub struct Completion {
    pub owner: Text,
    pub key: Text,
    pub status: u16,
    pub body: Text,
}

/// Everything one request writes: committed together or not at all.
#[derive(Debug, Clone, Default)]
pub struct Write {
    pub records: Vec<ScoreRecord>,
    pub completion: Option<Completion>,
}

/// Where a committed write is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Committed {
    /// In the database.
    Stored,
    /// In the local spool, to be replayed into the database when it is back.
    Spooled,
}

/// Why a write was not committed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    /// The database refused this request's records (a constraint, a value it cannot store).
    #[error("the database refused the records: {0}")]
    Refused(String),
    /// No room: the SQLite disk or the spool is full.
    #[error("no room to record: {0}")]
    Full(String),
    /// The database cannot be reached (or is locked) and there is no spool to fall back on.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    #[error("the recorder has stopped")]
    Stopped,
    /// The approval the answer proposed for this shipment changed meanwhile (see
    /// [`super::approvals`]): the request asks again and retries.
    #[error("shipment `{0}`'s open approval changed")]
    StaleApproval(String),
}

/// Where the recorder writes: SQLite through its own connection on its own thread, with the
/// WAL synced after each commit ([`super::sqlite_writer`]), and PostgreSQL through sqlx's
/// Any driver.
#[derive(Clone)]
pub enum Sink {
    Sqlite(super::sqlite_writer::SqliteWriter),
    Postgres(AnyPool),
}

impl Sink {
    fn backend(&self) -> Backend {
        match self {
            Sink::Sqlite(_) => Backend::Sqlite,
            Sink::Postgres(_) => Backend::Postgres,
        }
    }
}

/// A write's outcome; a write refused as [`WriteError::StaleApproval`] comes back with it, to
/// be corrected and sent again without a copy kept meanwhile.
type Reply = oneshot::Sender<(Result<Committed, WriteError>, Option<Write>)>;

enum Message {
    Write(Write, Reply),
    /// A request whose `rows` come in chunks ([`Stream`]), as one transaction of its own.
    Stream {
        chunks: tokio::sync::mpsc::Receiver<Chunk>,
        rows: usize,
        reply: oneshot::Sender<Result<Committed, WriteError>>,
    },
    /// Answered once everything before it is committed and the spool is replayed (or the
    /// database is still away).
    Flush(oneshot::Sender<Result<(), WriteError>>),
}

/// Records that may wait for a commit at once; a request beyond waits for room.
pub const QUEUE: usize = 65_536;
/// Rows per transaction, at most (a request larger than this goes alone).
pub const MAX_BATCH: usize = 2_000;
/// How long one transaction may take before the database counts as unreachable. A commit cut
/// off by this may still have landed: what goes to the spool then is replayed with "insert
/// if absent", so nothing is written twice.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a spooling recorder tries the database again.
const RETRY: Duration = Duration::from_millis(500);
/// How long readiness reports a full disk after a write found one.
const FULL_FOR: Duration = Duration::from_secs(5);

/// What readiness reports of the write path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// Bytes of answered scores in the spool, waiting for the database.
    pub spooled_bytes: u64,
    /// Why writes are being refused right now, if they are.
    pub refusing: Option<String>,
}

pub struct Recorder {
    tx: mpsc::UnboundedSender<Message>,
    /// One permit per record that may wait; the writer gives them back.
    room: Arc<Semaphore>,
    shared: Arc<Shared>,
    streams: bool,
}

/// How the recorder's commits go, for `/metrics`: how long each took (the wait every answer
/// it holds adds) and how many rows it carried.
#[derive(Clone)]
pub struct CommitMetrics {
    pub seconds: prometheus_client::metrics::histogram::Histogram,
    pub rows: prometheus_client::metrics::histogram::Histogram,
}

impl Default for CommitMetrics {
    fn default() -> Self {
        use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
        CommitMetrics {
            // 50 µs to ~3 s.
            seconds: Histogram::new(exponential_buckets(0.00005, 2.0, 16)),
            // 1 to 2,048 rows and more.
            rows: Histogram::new(exponential_buckets(1.0, 2.0, 12)),
        }
    }
}

/// What the writer task and readers of its state share.
#[derive(Default)]
struct Shared {
    commits: CommitMetrics,
    /// Records accepted and not yet in the database (waiting for a commit, or spooled).
    pending: AtomicU64,
    spooled_bytes: AtomicU64,
    spool_full: AtomicBool,
    /// Whether a replay task is running.
    replaying: AtomicBool,
    /// When a write last found the database's disk full.
    full_at: Mutex<Option<Instant>>,
    /// Streamed writes begun and not yet ended (see [`Recorder::streaming`]).
    streaming: AtomicU64,
    /// Told when one ends.
    stream_ended: tokio::sync::Notify,
}

impl Recorder {
    /// Starts the writer task; with a spool, its frames left by an earlier run are replayed
    /// first.
    pub fn start(sink: Sink, spool: Option<Spool>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let room = Arc::new(Semaphore::new(QUEUE));
        let shared = Arc::new(Shared::default());
        if let Some(s) = &spool {
            shared
                .spooled_bytes
                .store(s.unreplayed(), Ordering::Relaxed);
        }
        let writer = Writer {
            sink,
            spool: spool.map(|s| Arc::new(Mutex::new(s))),
            shared: shared.clone(),
        };
        let streams = matches!(writer.sink, Sink::Sqlite(_));
        tokio::spawn(writer.run(rx));
        Recorder {
            tx,
            room,
            shared,
            streams,
        }
    }

    /// The commits' durations and sizes, to register with the service's metrics.
    pub fn commit_metrics(&self) -> CommitMetrics {
        self.shared.commits.clone()
    }

    /// Records accepted and not yet in the database: the backlog, for metrics.
    pub fn pending(&self) -> u64 {
        self.shared.pending.load(Ordering::Relaxed)
    }

    pub fn health(&self) -> Health {
        let refusing = if self.shared.spool_full.load(Ordering::Relaxed) {
            Some("the spool is full".to_string())
        } else {
            let full = self.shared.full_at.lock().expect("not poisoned");
            full.filter(|at| at.elapsed() < FULL_FOR)
                .map(|_| "the database's disk is full".to_string())
        };
        Health {
            spooled_bytes: self.shared.spooled_bytes.load(Ordering::Relaxed),
            refusing,
        }
    }

    /// Commits one request's write, in a group with whatever else is waiting; returns once it
    /// is durable (or failed).
    pub async fn commit(&self, write: Write) -> Result<Committed, WriteError> {
        self.commit_returning(write).await.map_err(|(e, _)| e)
    }

    /// As [`Recorder::commit`]; a write whose approval proposals were stale comes back.
    pub async fn commit_returning(
        &self,
        write: Write,
    ) -> Result<Committed, (WriteError, Option<Write>)> {
        let n = write.records.len();
        let permit = self
            .room
            .acquire_many(n.clamp(1, QUEUE) as u32)
            .await
            .map_err(|_| (WriteError::Stopped, None))?;
        let (reply, answer) = oneshot::channel();
        self.shared.pending.fetch_add(n as u64, Ordering::Relaxed);
        if self.tx.send(Message::Write(write, reply)).is_err() {
            self.shared.written(n);
            return Err((WriteError::Stopped, None));
        }
        let (result, back) = answer.await.unwrap_or((Err(WriteError::Stopped), None));
        drop(permit);
        result.map_err(|e| (e, back))
    }

    /// Whether [`Recorder::stream`] is offered: on SQLite, whose one writer can hold a
    /// transaction open while a request makes its rows. (On PostgreSQL a request's write is
    /// one message, so that it can go to the spool whole.)
    pub fn streams(&self) -> bool {
        self.streams
    }

    /// Whether a streamed write is under way: the WAL checkpoints wait for its end rather
    /// than copy pages and sync the database file beside it, on the cores and the disk the
    /// batch's scoring and syncs are using.
    pub fn streaming(&self) -> bool {
        self.shared.streaming.load(Ordering::Relaxed) > 0
    }

    /// Returns when a streamed write has ended (at once if one ended since the last call): the
    /// checkpoint then copies its tens of megabytes while its client reads the answer.
    pub async fn stream_ended(&self) {
        self.shared.stream_ended.notified().await
    }

    /// Starts a write of `rows` records that arrive in chunks while the request makes them,
    /// committed in one transaction with the last ([`Stream::finish`]): the writer inserts one
    /// chunk while the next is made. Dropping the stream before its end rolls it back.
    pub async fn stream(&self, rows: usize) -> Result<Stream, WriteError> {
        let permit = self
            .room
            .clone()
            .acquire_many_owned(rows.clamp(1, QUEUE) as u32)
            .await
            .map_err(|_| WriteError::Stopped)?;
        // Two chunks ahead at most: a writer held up holds the request up, not its memory.
        let (chunks, rx) = tokio::sync::mpsc::channel(2);
        let (reply, done) = oneshot::channel();
        self.shared
            .pending
            .fetch_add(rows as u64, Ordering::Relaxed);
        let message = Message::Stream {
            chunks: rx,
            rows,
            reply,
        };
        if self.tx.send(message).is_err() {
            self.shared.written(rows);
            return Err(WriteError::Stopped);
        }
        Ok(Stream {
            chunks,
            done,
            _permit: permit,
            _streaming: Streaming::begin(&self.shared),
        })
    }

    /// Waits until every write sent before this call is durable: committed, or spooled (the
    /// spool is replayed in the background, not waited for).
    pub async fn flush(&self) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Message::Flush(tx))
            .map_err(|_| StoreError::RecorderStopped)?;
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(StoreError::Write(e)),
            Err(_) => Err(StoreError::RecorderStopped),
        }
    }
}

/// A write in chunks, from [`Recorder::stream`].
pub struct Stream {
    chunks: tokio::sync::mpsc::Sender<Chunk>,
    done: oneshot::Receiver<Result<Committed, WriteError>>,
    _permit: tokio::sync::OwnedSemaphorePermit,
    _streaming: Streaming,
}

/// Counts a [`Stream`] in [`Shared::streaming`] while it lives.
struct Streaming(Arc<Shared>);

impl Streaming {
    fn begin(shared: &Arc<Shared>) -> Streaming {
        shared.streaming.fetch_add(1, Ordering::Relaxed);
        Streaming(shared.clone())
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        self.0.streaming.fetch_sub(1, Ordering::Relaxed);
        self.0.stream_ended.notify_one();
    }
}

impl Stream {
    /// Hands the writer the next chunk of records (waiting while two are ahead of it). An
    /// error means the write failed: [`Stream::finish`] says why.
    pub async fn send(&mut self, records: Vec<ScoreRecord>) -> Result<(), ()> {
        self.chunks.send(Chunk::Rows(records)).await.map_err(|_| ())
    }

    /// Ends the write with the request's idempotency completion; returns once it is committed
    /// and synced, or why it failed.
    pub async fn finish(self, completion: Option<Completion>) -> Result<Committed, WriteError> {
        // A writer that failed already dropped its end; its reason is in `done`.
        let _ = self.chunks.send(Chunk::End(completion)).await;
        self.done.await.unwrap_or(Err(WriteError::Stopped))
    }
}

#[derive(Clone)]
struct Writer {
    sink: Sink,
    spool: Option<Arc<Mutex<Spool>>>,
    shared: Arc<Shared>,
}

impl Shared {
    /// Counts `n` records as in the database (or given up on). Saturating: the spool left by
    /// an earlier run was never counted in.
    fn written(&self, n: usize) {
        let _ = self
            .pending
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |p| {
                Some(p.saturating_sub(n as u64))
            });
    }
}

impl Writer {
    async fn run(self, mut rx: mpsc::UnboundedReceiver<Message>) {
        if self.spooled() > 0 {
            self.replay_in_background();
        }
        let mut flushes = Vec::new();
        while let Some(first) = rx.recv().await {
            let mut group: Vec<(Write, Reply)> = Vec::new();
            let mut rows = 0;
            let mut next = Some(first);
            let mut stream = None;
            while let Some(m) = next.take() {
                match m {
                    Message::Write(w, reply) => {
                        rows += w.records.len();
                        group.push((w, reply));
                    }
                    Message::Flush(f) => flushes.push(f),
                    // A stream goes after the writes before it, and alone.
                    Message::Stream {
                        chunks,
                        rows,
                        reply,
                    } => {
                        stream = Some((chunks, rows, reply));
                        break;
                    }
                }
                if rows < MAX_BATCH {
                    next = rx.try_recv().ok();
                }
            }
            // One group at a time: while it commits, the next one gathers. (With two or three
            // under way at once on SQLite, the next group's statements ran during this one's
            // sync, but the groups were smaller and the commits more: 0.87x and 0.80x the
            // throughput of one at a time, benches/RESULTS.md.)
            if !group.is_empty() {
                self.commit_group(group).await;
            }
            if let Some((chunks, rows, reply)) = stream {
                let _ = reply.send(self.commit_stream(chunks, rows).await);
            }
            // Everything before the flushes is durable now (stored, or spooled).
            for f in flushes.drain(..) {
                let _ = f.send(Ok(()));
            }
        }
    }

    /// Starts replaying the spool unless a replay is running: it retries every [`RETRY`]
    /// until the spool is empty, while this task keeps appending behind it.
    fn replay_in_background(&self) {
        if self.shared.replaying.swap(true, Ordering::SeqCst) {
            return;
        }
        let w = self.clone();
        tokio::spawn(async move {
            loop {
                if w.replay().await {
                    break;
                }
                tokio::time::sleep(RETRY).await;
            }
            w.shared.replaying.store(false, Ordering::SeqCst);
            // An append that came after the last read and before the flag was cleared.
            if w.spooled() > 0 {
                w.replay_in_background();
            }
        });
    }

    fn spooled(&self) -> u64 {
        self.shared.spooled_bytes.load(Ordering::Relaxed)
    }

    /// Commits a group in one transaction, or each request alone when the database refuses
    /// the group, so a bad record fails only its own request.
    async fn commit_group(&self, group: Vec<(Write, Reply)>) {
        let writes: Vec<&Write> = group.iter().map(|(w, _)| w).collect();
        let n = writes.len();
        let results = if self.spooled() > 0 {
            // While the spool holds answers, new ones queue behind them: replayed in order.
            vec![self.to_spool(&writes).await; n]
        } else {
            match self.store(&writes).await {
                Ok(r) => vec![r; n],
                Err(e) if n == 1 => vec![Err(self.classify(e))],
                Err(_) => {
                    let mut results = Vec::with_capacity(n);
                    for w in &writes {
                        let r = self.store(&[w]).await;
                        results.push(r.unwrap_or_else(|e| Err(self.classify(e))));
                    }
                    results
                }
            }
        };
        for ((w, reply), result) in group.into_iter().zip(results) {
            if !matches!(result, Ok(Committed::Spooled)) {
                self.shared.written(w.records.len());
            }
            if let Err(e) = &result {
                tracing::error!(error = %e, rows = w.records.len(), "a request's scores were not recorded; it was answered with an error");
            }
            let back = matches!(result, Err(WriteError::StaleApproval(_))).then_some(w);
            let _ = reply.send((result, back));
        }
    }

    /// Commits a streamed write of `rows` records; they count as written whatever the
    /// outcome (there is no spool to keep them in).
    async fn commit_stream(
        &self,
        chunks: tokio::sync::mpsc::Receiver<Chunk>,
        rows: usize,
    ) -> Result<Committed, WriteError> {
        let Sink::Sqlite(writer) = &self.sink else {
            self.shared.written(rows);
            return Err(WriteError::Unavailable(
                "streamed writes need SQLite".to_string(),
            ));
        };
        let started = Instant::now();
        // No timeout here: the request that streams either sends its chunks or goes away,
        // and either ends the transaction.
        let written = writer.stream(chunks).await;
        self.shared.written(rows);
        match written {
            Ok(()) => {
                let c = &self.shared.commits;
                c.seconds.observe(started.elapsed().as_secs_f64());
                c.rows.observe(rows as f64);
                Ok(Committed::Stored)
            }
            Err(e) => {
                let e = self.classify(e);
                tracing::error!(error = %e, rows, "a streamed request's scores were not recorded; it was answered with an error");
                Err(e)
            }
        }
    }

    /// Writes `writes` in one transaction, or spools them when the database cannot be reached
    /// (and there is a spool); `Err` is what the database refused.
    async fn store(&self, writes: &[&Write]) -> Result<Result<Committed, WriteError>, sqlx::Error> {
        let started = Instant::now();
        match self.write(writes, false).await {
            Ok(()) => {
                let c = &self.shared.commits;
                c.seconds.observe(started.elapsed().as_secs_f64());
                c.rows
                    .observe(writes.iter().map(|w| w.records.len()).sum::<usize>() as f64);
                Ok(Ok(Committed::Stored))
            }
            Err(e) if unreachable(&e) && self.spool.is_some() => Ok(self.to_spool(writes).await),
            Err(e) => Err(e),
        }
    }

    async fn write(&self, writes: &[&Write], replay: bool) -> Result<(), sqlx::Error> {
        match tokio::time::timeout(WRITE_TIMEOUT, statements::write(&self.sink, writes, replay))
            .await
        {
            Ok(r) => r,
            Err(_) => Err(sqlx::Error::PoolTimedOut),
        }
    }

    /// Appends to the spool (off the async workers: it syncs to disk).
    async fn to_spool(&self, writes: &[&Write]) -> Result<Committed, WriteError> {
        let Some(spool) = self.spool.clone() else {
            return Err(WriteError::Unavailable("no spool is configured".into()));
        };
        let owned: Vec<Write> = writes.iter().map(|w| (*w).clone()).collect();
        let shared = self.shared.clone();
        let appended = tokio::task::spawn_blocking(move || {
            let mut s = spool.lock().expect("not poisoned");
            let refs: Vec<&Write> = owned.iter().collect();
            let r = s.append(&refs);
            shared
                .spooled_bytes
                .store(s.unreplayed(), Ordering::Relaxed);
            r
        })
        .await
        .unwrap_or_else(|e| {
            Err(SpoolError::Io {
                path: "spool".into(),
                source: std::io::Error::other(e.to_string()),
            })
        });
        match appended {
            Ok(()) => {
                self.shared.spool_full.store(false, Ordering::Relaxed);
                self.replay_in_background();
                Ok(Committed::Spooled)
            }
            Err(e @ SpoolError::Full { .. }) => {
                self.shared.spool_full.store(true, Ordering::Relaxed);
                Err(WriteError::Full(e.to_string()))
            }
            Err(e) => Err(WriteError::Unavailable(e.to_string())),
        }
    }

    /// Replays the spool's frames into the database until it is empty; false when the
    /// database is still away (or refused them: a frame is never skipped).
    async fn replay(&self) -> bool {
        let Some(spool) = self.spool.clone() else {
            return true;
        };
        loop {
            let s = spool.clone();
            let read = tokio::task::spawn_blocking(move || {
                s.lock().expect("not poisoned").next_frames(MAX_BATCH)
            })
            .await;
            let (frames, to) = match read {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "reading the spool");
                    return false;
                }
                Err(e) => {
                    tracing::error!(error = %e, "reading the spool");
                    return false;
                }
            };
            if frames.is_empty() {
                return true;
            }
            let refs: Vec<&Write> = frames.iter().collect();
            if let Err(e) = self.write(&refs, true).await {
                if !unreachable(&e) {
                    tracing::error!(error = %e, "the database refused spooled scores; retrying");
                }
                return false;
            }
            let rows: usize = frames.iter().map(|w| w.records.len()).sum();
            self.shared.written(rows);
            let s = spool.clone();
            let shared = self.shared.clone();
            let marked = tokio::task::spawn_blocking(move || {
                let mut s = s.lock().expect("not poisoned");
                let r = s.replayed_to(to);
                shared
                    .spooled_bytes
                    .store(s.unreplayed(), Ordering::Relaxed);
                r
            })
            .await;
            self.shared.spool_full.store(false, Ordering::Relaxed);
            tracing::info!(rows, left = self.spooled(), "replayed spooled scores");
            if !matches!(marked, Ok(Ok(()))) {
                tracing::error!("marking the spool replayed failed");
                return false;
            }
            if self.spooled() == 0 {
                return true;
            }
        }
    }

    fn classify(&self, e: sqlx::Error) -> WriteError {
        if let Some(shipment) = super::approvals::stale_shipment(&e) {
            return WriteError::StaleApproval(shipment);
        }
        if let sqlx::Error::Database(db) = &e {
            let code = db.code().unwrap_or_default();
            let full = match self.sink.backend() {
                // SQLITE_FULL, in its primary or any extended code.
                Backend::Sqlite => code.parse::<i64>().is_ok_and(|c| c & 0xff == 13),
                Backend::Postgres => code.starts_with("53"),
            };
            if full {
                *self.shared.full_at.lock().expect("not poisoned") = Some(Instant::now());
                return WriteError::Full(format!("the database's disk is full: {db}"));
            }
        }
        if unreachable(&e)
            || matches!(&e, sqlx::Error::Database(db) if db.message().contains("locked"))
        {
            return WriteError::Unavailable(e.to_string());
        }
        WriteError::Refused(e.to_string())
    }
}
