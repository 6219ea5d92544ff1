//! The service's database through sqlx: SQLite as the embedded default (one file, WAL mode),
//! PostgreSQL when several instances share one store. Queries are plain portable SQL through
//! sqlx's Any driver, so one code path serves both; migrations in `migrations/` are embedded.

pub mod idempotency;
pub mod keys;
pub mod outcomes;
pub mod recorder;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::{AnyPool, SqlSafeStr};

pub use recorder::{Recorder, ScoreRecord};

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
    /// Connects, creating an SQLite file if needed, and applies the migrations.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
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
                        // WAL: readers never wait for the recorder; NORMAL sync is durable
                        // across process crashes, the busy timeout rides out checkpoints.
                        for pragma in [
                            "PRAGMA journal_mode = WAL",
                            "PRAGMA synchronous = NORMAL",
                            "PRAGMA busy_timeout = 5000",
                        ] {
                            sqlx::query(pragma).execute(&mut *conn).await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        let migrator = Migrator::new(Embedded).await?;
        migrator.run(&pool).await?;
        let recorder = Arc::new(Recorder::start(pool.clone(), backend));
        Ok(Store {
            pool,
            backend,
            recorder,
        })
    }

    /// Writes every record accepted so far; called on shutdown and before reading records back.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.recorder.flush().await
    }
}

/// The migrations of `migrations/`, compiled in so the binary needs no files beside it.
#[derive(Debug)]
struct Embedded;

const MIGRATIONS: &[(i64, &str, &str)] =
    &[(1, "init", include_str!("../../migrations/0001_init.sql"))];

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
        Box::pin(async {
            Ok(MIGRATIONS
                .iter()
                .map(|(version, description, sql)| {
                    Migration::new(
                        *version,
                        (*description).into(),
                        MigrationType::Simple,
                        sql.into_sql_str(),
                        false,
                    )
                })
                .collect())
        })
    }
}

/// Now, as stored: RFC 3339 in UTC with microseconds.
pub fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// A bool as the integer both databases store.
pub fn flag(b: bool) -> i32 {
    b as i32
}
