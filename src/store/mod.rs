//! The service's database through sqlx: SQLite as the embedded default (one file, WAL mode),
//! PostgreSQL when several instances share one store. Queries are plain portable SQL through
//! sqlx's Any driver, so one code path serves both; migrations in `migrations/` are embedded.

pub mod approvals;
pub mod audit;
pub mod exceptions;
mod facts;
pub mod idempotency;
pub mod keys;
pub mod outcomes;
pub mod recorder;
pub mod sessions;
pub mod spool;
mod sqlite_writer;
mod statements;
pub mod users;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{AnyPool, Row, SqlSafeStr};

pub use facts::{date_text, parse_date};
pub use recorder::{
    Committed, Completion, Facts, Recorder, ScoreRecord, Sink, Text, Write, WriteError,
};
pub use spool::{Spool, SpoolError};
use sqlite_writer::SqliteWriter;

/// Every SQLite connection's settings. WAL: readers never wait for the recorder; NORMAL sync is
/// durable across process crashes; the busy timeout rides out checkpoints and the other
/// connections' writes. A recorder transaction dirties several MiB: with SQLite's 2 MiB page
/// cache it spilled pages to the WAL mid-transaction, and its statement journals went to
/// temporary files. A stored score (request and answer, ~2 KB) filled half a 4 KiB page, so
/// B-tree pages split every few rows; with 16 KiB pages a batch's records are written ~15 %
/// faster. The page size only takes on a new database (before WAL mode fixes it); an existing
/// one keeps its own. The WAL is checkpointed every 8,192 pages (128 MiB) rather than 1,000:
/// every checkpoint rewrote the same hot pages (latest scores, index interiors) into the
/// database, once per batch; batches ~8 % faster in the service bench, and a crash replays at
/// most that much WAL.
///
/// No connection checkpoints on its own (`wal_autocheckpoint = 0`): a checkpoint run by the
/// commit that crosses the threshold held that commit, and every request waiting on it, for
/// the time it took to copy 128 MiB (p99 at 1,000 req/s went from 4 ms to 100 ms once answers
/// waited for their commits). [`Store::checkpoint`] runs passive checkpoints beside the writer
/// instead, from a worker.
const SQLITE_PRAGMAS: [&str; 7] = [
    "PRAGMA page_size = 16384",
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = NORMAL",
    "PRAGMA busy_timeout = 5000",
    "PRAGMA cache_size = -65536",
    "PRAGMA temp_store = MEMORY",
    "PRAGMA wal_autocheckpoint = 0",
];

/// The recorder's own connection commits without syncing (`synchronous = NORMAL`) and then
/// syncs the WAL's data itself (`fdatasync`) before answering ([`sqlite_writer`]): a commit
/// answered 200 survives a power loss, as with FULL, but SQLite's FULL would `fsync`, which
/// also writes the file's times through the file system's journal at every commit. The syncs
/// also keep the WAL's unsynced tail short, which a checkpoint would otherwise flush all at
/// once (with NORMAL alone, a commit that ran into it stalled for 100 ms and more).
const RECORDER_PRAGMAS: [&str; 1] = ["PRAGMA synchronous = NORMAL"];

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database URL `{0}`: expected sqlite:PATH or postgres://...")]
    Url(String),
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("the recorder has stopped")]
    RecorderStopped,
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error(transparent)]
    Spool(#[from] SpoolError),
    #[error("score `{0}` has no usable `{1}`")]
    Facts(String, String),
}

/// Where answered scores wait while PostgreSQL is unreachable.
#[derive(Debug, Clone)]
pub struct SpoolConfig {
    pub path: std::path::PathBuf,
    pub max_bytes: u64,
}

impl SpoolConfig {
    /// The default bound: a day of a busy warehouse's single scores (~2 KB each).
    pub const DEFAULT_MAX_BYTES: u64 = 1 << 30;
}

/// Which database is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The pool and the background recorder; cheap to clone.
#[derive(Clone)]
pub struct Store {
    pub pool: AnyPool,
    pub backend: Backend,
    pub recorder: Arc<Recorder>,
}

impl Store {
    /// Connects, creating an SQLite file if needed, and applies the migrations; without a
    /// spool (the command-line tools, which record nothing).
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        Self::connect_with(url, None).await
    }

    /// Connects as [`Store::connect`]; on PostgreSQL, answered scores go to `spool` while the
    /// database is unreachable (SQLite is local: it has none).
    pub async fn connect_with(url: &str, spool: Option<SpoolConfig>) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError::Url(url.to_string()));
        };
        let url = match backend {
            // Create the file on first use.
            Backend::Sqlite if !url.contains("mode=") => {
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}mode=rwc")
            }
            _ => url.to_string(),
        };
        let options: AnyConnectOptions = url.parse()?;
        let pool = AnyPoolOptions::new()
            // SQLite has one writer at a time: the recorder; readers share the rest.
            .max_connections(match backend {
                Backend::Sqlite => 4,
                Backend::Postgres => 8,
            })
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        for pragma in SQLITE_PRAGMAS {
                            sqlx::query(pragma).execute(&mut *conn).await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        let migrator = Migrator::new(Embedded(MIGRATIONS, backend)).await?;
        let applied = applied_version(&pool).await;
        migrator.run(&pool).await?;
        // Part of migration 0004 (the facts became columns), in Rust since it parses the
        // stored JSON: run once, at the start that applies it, not at every start (it reads
        // every shipment's latest score).
        if applied < FACTS_MIGRATION {
            facts::backfill(&pool).await?;
        }
        let sink = match backend {
            // The recorder's own connection, on its own thread (see `Sink`).
            Backend::Sqlite => Sink::Sqlite(SqliteWriter::open(
                url.parse::<SqliteConnectOptions>()?.get_filename(),
            )?),
            // Its own connections, quick to give up when the database is away: the writes
            // go to the spool then, and answers must not wait the pool's 10 s.
            Backend::Postgres => Sink::Postgres(
                AnyPoolOptions::new()
                    .max_connections(2)
                    .acquire_timeout(Duration::from_secs(1))
                    .connect_lazy(&url)?,
            ),
        };
        let spool = match (backend, spool) {
            (Backend::Postgres, Some(c)) => {
                let path = c.path.clone();
                Some(
                    tokio::task::spawn_blocking(move || Spool::open(&c.path, c.max_bytes))
                        .await
                        .map_err(|e| {
                            StoreError::Spool(SpoolError::Io {
                                path,
                                source: std::io::Error::other(e.to_string()),
                            })
                        })??,
                )
            }
            _ => None,
        };
        let recorder = Arc::new(Recorder::start(sink, spool));
        Ok(Store {
            pool,
            backend,
            recorder,
        })
    }

    /// On SQLite, copies the WAL into the database without waiting for the writer or readers
    /// (a passive checkpoint: the writer keeps appending meanwhile, and the WAL starts over
    /// once a checkpoint has copied all of it). Returns the WAL's pages copied so far; 0, and
    /// nothing copied, while a batch streams (see [`Recorder::streaming`]).
    pub async fn checkpoint(&self) -> Result<i64, StoreError> {
        if self.backend != Backend::Sqlite || self.recorder.streaming() {
            return Ok(0);
        }
        // (busy, WAL pages, pages copied so far): frequent small checkpoints keep each one's
        // share of the disk short.
        let row = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<i64, _>(2)?)
    }

    /// Waits until every write sent so far is durable (committed, or spooled); called on
    /// shutdown.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.recorder.flush().await
    }
}

/// The migrations of `migrations/`, compiled in so the binary needs no files beside it, as the
/// store's backend runs them.
#[derive(Debug)]
struct Embedded(&'static [Step], Backend);

/// One migration: portable SQL, or a file per backend where the two differ (`NAME.sqlite.sql`
/// and `NAME.postgres.sql`; a backend without one has nothing to do).
#[derive(Debug)]
struct Step {
    version: i64,
    description: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

macro_rules! portable {
    ($version:expr, $description:expr, $file:expr) => {
        Step {
            version: $version,
            description: $description,
            sqlite: include_str!(concat!("../../migrations/", $file)),
            postgres: include_str!(concat!("../../migrations/", $file)),
        }
    };
}

/// The migration that made the scored shipment's facts columns.
const FACTS_MIGRATION: i64 = 4;

/// The newest migration applied before this start: 0 on a new database (sqlx's table of
/// applied migrations does not exist yet), or when it cannot be read, which only runs the
/// backfill again (it fills in nothing twice).
async fn applied_version(pool: &AnyPool) -> i64 {
    sqlx::query_scalar::<_, i64>("SELECT coalesce(max(version), 0) FROM _sqlx_migrations")
        .fetch_one(pool)
        .await
        .unwrap_or(0)
}

/// What a backend runs for a step that is the other's only.
const NOTHING: &str = "SELECT 1";

const MIGRATIONS: &[Step] = &[
    portable!(1, "init", "0001_init.sql"),
    portable!(2, "latest scores", "0002_latest_scores.sql"),
    portable!(3, "key rate limits", "0003_key_rate_limits.sql"),
    portable!(4, "score facts", "0004_score_facts.sql"),
    Step {
        version: 5,
        description: "latest scores without rowid",
        sqlite: include_str!("../../migrations/0005_latest_scores_without_rowid.sqlite.sql"),
        postgres: NOTHING,
    },
    portable!(6, "approvals and audit", "0006_approvals_and_audit.sql"),
    Step {
        version: 7,
        description: "audit append only",
        sqlite: include_str!("../../migrations/0007_audit_append_only.sqlite.sql"),
        postgres: include_str!("../../migrations/0007_audit_append_only.postgres.sql"),
    },
    portable!(8, "sessions", "0008_sessions.sql"),
    portable!(9, "exception notes", "0009_exception_notes.sql"),
];

impl MigrationSource<'static> for Embedded {
    fn resolve(
        self,
    ) -> Pin<
        Box<
            dyn Future<Output = Result<Vec<Migration>, Box<dyn std::error::Error + Send + Sync>>>
                + Send
                + 'static,
        >,
    > {
        Box::pin(async move {
            let backend = self.1;
            Ok(self
                .0
                .iter()
                .map(|step| {
                    let sql = match backend {
                        Backend::Sqlite => step.sqlite,
                        Backend::Postgres => step.postgres,
                    };
                    Migration::new(
                        step.version,
                        step.description.into(),
                        MigrationType::Simple,
                        sql.into_sql_str(),
                        false,
                    )
                })
                .collect())
        })
    }
}

/// Whether `e` says the database cannot be reached (or cannot take writes now), rather than
/// that it refused what was sent: the connection failed or timed out, or PostgreSQL reported
/// a connection exception (08), a shutdown (57) or insufficient resources (53).
pub fn unreachable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        // SQLite's codes are numbers, so these prefixes are PostgreSQL's alone.
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57") || c.starts_with("53")),
        _ => false,
    }
}

/// Now, as stored: RFC 3339 in UTC with microseconds.
pub fn now_text() -> String {
    crate::clock::text(chrono::Utc::now())
}

/// A bool as the integer both databases store.
pub fn flag(b: bool) -> i32 {
    b as i32
}

/// An INTEGER column of either backend: SQLite reads it as i64, PostgreSQL's INTEGER as i32.
pub(crate) fn int(r: &sqlx::any::AnyRow, i: usize) -> Result<i64, sqlx::Error> {
    r.try_get::<i64, _>(i)
        .or_else(|_| r.try_get::<i32, _>(i).map(i64::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_migration_file_is_embedded_in_order() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        files.sort();
        let read = |f: &str| std::fs::read_to_string(format!("{dir}/{f}")).unwrap();
        let mut embedded = Vec::new();
        for file in &files {
            let version: i64 = file[..4].parse().unwrap();
            let step = MIGRATIONS
                .iter()
                .find(|s| s.version == version)
                .unwrap_or_else(|| panic!("{file} is not embedded"));
            let text = read(file);
            if file.ends_with(".sqlite.sql") {
                assert_eq!(step.sqlite, text, "{file}");
            } else if file.ends_with(".postgres.sql") {
                assert_eq!(step.postgres, text, "{file}");
            } else {
                assert_eq!((step.sqlite, step.postgres), (&*text, &*text), "{file}");
            }
            embedded.push(version);
        }
        embedded.dedup();
        let versions: Vec<i64> = MIGRATIONS.iter().map(|s| s.version).collect();
        assert_eq!(embedded, versions, "{files:?}");
    }

    /// Under steady writes and with no other checkpoints, the recorder lets the WAL start over
    /// every second, so it holds about a second's commits instead of everything written.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_starts_over_under_steady_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("steady.sqlite3");
        let store = Store::connect(&format!("sqlite:{}", path.display()))
            .await
            .unwrap();
        let request: Text = format!("{{\"pad\":\"{}\"}}", "x".repeat(4000)).into();
        let started = std::time::Instant::now();
        let mut written = 0u64;
        let mut n = 0;
        while started.elapsed() < Duration::from_millis(3500) {
            let records = (0..8)
                .map(|i| {
                    n += 1;
                    ScoreRecord {
                        score_id: format!("sc_{n:08}_{i}").into(),
                        shipment_id: format!("WH/OUT/{}", n % 500).into(),
                        created_at: now_text().into(),
                        endpoint: "score",
                        request: request.clone(),
                        response: "{}".into(),
                        model_version: None,
                        policy_version: "p".into(),
                        source: "rules",
                        risk_band: "low",
                        delay_risk: 0.1,
                        queue: "standard",
                        requires_approval: false,
                        degraded: true,
                        latency_us: 1,
                        api_key_id: None,
                        facts: Facts::default(),
                        approval: None,
                    }
                })
                .collect::<Vec<_>>();
            written += records.iter().map(|r| r.request.len() as u64).sum::<u64>();
            store
                .recorder
                .commit(Write {
                    records,
                    completion: None,
                })
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert!(written > 8 << 20, "only {written} bytes written");
        // The WAL header's checkpoint sequence number counts the times it started over.
        let header = std::fs::read(dir.path().join("steady.sqlite3-wal")).unwrap();
        let restarts = u32::from_be_bytes(header[12..16].try_into().unwrap());
        assert!(
            restarts >= 2,
            "the WAL started over {restarts} times in 3.5 s"
        );
    }

    /// A database made before `latest_scores` existed gets it filled from its scores, and the
    /// latest scores' facts (migration 0004) from their JSON.
    #[tokio::test]
    async fn older_databases_get_latest_scores_and_their_facts_filled_in() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("old.sqlite3").display());
        sqlx::any::install_default_drivers();
        let pool = AnyPoolOptions::new()
            .connect(&format!("{url}?mode=rwc"))
            .await
            .unwrap();
        Migrator::new(Embedded(&MIGRATIONS[..1], Backend::Sqlite))
            .await
            .unwrap()
            .run(&pool)
            .await
            .unwrap();
        for (shipment, score, at) in [
            ("A", "sc_2", "2026-01-02T00:00:00Z"),
            ("A", "sc_1", "2026-01-01T00:00:00Z"),
            ("B", "sc_4", "2026-01-01T00:00:00Z"),
            ("B", "sc_3", "2026-01-01T00:00:00Z"),
        ] {
            let request = format!(
                r#"{{"shipment_id":"{shipment}","warehouse":"WH-{score}","destination":"DE-10",
                "scheduled_date":"2026-01-01 08:00","date_deadline":"2026-01-03"}}"#
            );
            sqlx::query(
                "INSERT INTO scores (score_id, shipment_id, created_at, endpoint, request, \
                 response, policy_version, source, risk_band, delay_risk, queue, \
                 requires_approval, degraded, latency_us) \
                 VALUES ($1, $2, $3, 'score', $4, '{\"scored_carrier\":\"DHL\"}', 'p', \
                 'model', 'low', 0.1, 'standard', 0, 0, 1)",
            )
            .bind(score)
            .bind(shipment)
            .bind(at)
            .bind(request)
            .execute(&pool)
            .await
            .unwrap();
        }
        pool.close().await;
        let store = Store::connect(&url).await.unwrap();
        let last = |id: &'static str| {
            let store = store.clone();
            async move { store.last_score(id).await.unwrap().map(|s| s.score_id) }
        };
        assert_eq!(last("A").await.as_deref(), Some("sc_2"));
        // The same time: the larger (time-ordered) score id is the later one.
        assert_eq!(last("B").await.as_deref(), Some("sc_4"));
        assert_eq!(last("C").await, None);
        let a = store.last_score("A").await.unwrap().unwrap();
        assert_eq!(a.warehouse, "WH-sc_2");
        assert_eq!(a.destination, "DE-10");
        assert_eq!(a.scored_carrier.as_deref(), Some("DHL"));
        assert_eq!(a.scheduled, parse_date("2026-01-01T08:00:00Z").unwrap());
        assert_eq!(a.deadline, parse_date("2026-01-03T00:00:00Z").unwrap());
        // Once: a second start finds nothing left to fill in.
        assert_eq!(facts::backfill(&store.pool).await.unwrap(), 0);
    }

    /// The facts are filled in by the start that applies their migration only: later starts
    /// do not read every shipment's latest score again.
    #[tokio::test]
    async fn the_facts_backfill_runs_only_with_its_migration() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("new.sqlite3").display());
        let store = Store::connect(&url).await.unwrap();
        let newest = MIGRATIONS.last().unwrap().version;
        assert_eq!(applied_version(&store.pool).await, newest);
        // A latest score without its facts (no build writes one; it stands for any row).
        let request = r#"{"warehouse":"WH","destination":"DE-10","scheduled_date":"2026-01-01","date_deadline":"2026-01-03"}"#;
        for sql in [
            "INSERT INTO scores (score_id, shipment_id, created_at, endpoint, request, response, \
             policy_version, source, risk_band, delay_risk, queue, requires_approval, degraded, \
             latency_us) VALUES ('sc_1', 'A', '2026-01-01T00:00:00Z', 'score', $1, '{}', 'p', \
             'model', 'low', 0.1, 'standard', 0, 0, 1)",
            "INSERT INTO latest_scores (shipment_id, score_id, created_at) \
             VALUES ('A', 'sc_1', '2026-01-01T00:00:00Z')",
        ] {
            let q = sqlx::query(sql);
            let q = if sql.contains("$1") {
                q.bind(request)
            } else {
                q
            };
            q.execute(&store.pool).await.unwrap();
        }
        drop(store);
        let store = Store::connect(&url).await.unwrap();
        let (missing,): (i64,) =
            sqlx::query_as("SELECT count(*) FROM scores WHERE warehouse IS NULL")
                .fetch_one(&store.pool)
                .await
                .unwrap();
        assert_eq!(
            missing, 1,
            "a start after the migration read the latest scores again"
        );
    }
}
