//! Storage: one sqlx `Any` pool over SQLite (the embedded default) or PostgreSQL. Every query
//! is one text that both dialects accept (`$N` placeholders, BIGINT/INTEGER, TEXT, BLOB/BYTEA);
//! the two migration folders keep the schema in step.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyPool, Connection, Executor, Transaction};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub use sqlx::AnyConnection;

mod errors;
mod one_call;
mod one_read;
mod sql;
mod sqlite_file;
use errors::is_transient;
pub use errors::{
    RETRY_AFTER_SECS, is_disk_full, is_unavailable, is_unique_violation, redact_url,
    unavailable_reason,
};
pub use one_call::{Binder, OneCall};
pub use one_read::{Column, OneRead, Params, Values};
pub use sql::{batch_sizes, chunks, insert_sql, like_containing, org_clause, values_sql};
pub use sqlite_file::{
    SqliteFileError, SqliteFileInfo, check_sqlite_file, sqlite_file, sqlite_in_use, sqlite_url,
};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/postgres");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn from_url(url: &str) -> Result<Self, DbError> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            Err(DbError::UnsupportedUrl(redact_url(url)))
        }
    }

    /// The backend a connection talks to.
    pub fn of(conn: &AnyConnection) -> Backend {
        if conn.backend_name() == "SQLite" {
            Backend::Sqlite
        } else {
            Backend::Postgres
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    /// Rows per INSERT statement for bulk writes, largest first, in a few fixed sizes so each
    /// connection caches a handful of prepared statements. Powers of two: a batch of n rows
    /// takes at most log2(n) + 1 statements. SQLite binds `$N` parameters by a linear name
    /// search, so its statements stay small.
    pub fn batch_sizes(self) -> &'static [usize] {
        match self {
            Backend::Sqlite => &[8, 4, 2, 1],
            Backend::Postgres => &[64, 32, 16, 8, 4, 2, 1],
        }
    }

    fn migrator(self) -> &'static Migrator {
        match self {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        }
    }
}

#[derive(Debug, Clone)]
pub struct DbOptions {
    pub max_connections: u32,
    /// How long to keep retrying an unreachable database at start-up before giving up.
    pub connect_timeout: Duration,
    /// How long a request may wait for a pooled connection.
    pub acquire_timeout: Duration,
}

impl Default for DbOptions {
    fn default() -> Self {
        DbOptions {
            max_connections: 16,
            connect_timeout: Duration::from_secs(30),
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://USER@HOST/DB")]
    UnsupportedUrl(String),
    #[error(
        "could not reach the database at {url} ({attempts} attempts over {seconds} s; raise database.connect_timeout_secs to wait longer): {source}"
    )]
    Unreachable {
        url: String,
        attempts: u32,
        seconds: u64,
        source: sqlx::Error,
    },
    #[error("could not open the database at {url}: {source}")]
    Open { url: String, source: sqlx::Error },
    #[error(
        "the database schema is at version {applied}, and since version {readers_from} it needs a kizuna binary that knows at least that version; this one knows up to {known}. Refusing to start; run the newer release (or restore a backup taken before the upgrade)"
    )]
    NewerThanBinary {
        applied: i64,
        known: i64,
        readers_from: i64,
    },
    #[error(
        "the database contains migration {version}, which this kizuna binary does not know; refusing to start"
    )]
    UnknownMigration { version: i64 },
    #[error(
        "migration {version} recorded in the database differs from the one built into this binary (checksum mismatch); refusing to start"
    )]
    ChecksumMismatch { version: i64 },
    #[error("database migration failed: {0}")]
    Migrate(MigrateError),
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
}

impl From<MigrateError> for DbError {
    fn from(e: MigrateError) -> Self {
        match e {
            MigrateError::VersionMissing(version) => DbError::UnknownMigration { version },
            MigrateError::VersionMismatch(version) => DbError::ChecksumMismatch { version },
            other => DbError::Migrate(other),
        }
    }
}

/// Where the schema stands relative to this binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaStatus {
    pub applied: i64,
    pub expected: i64,
    /// The oldest binary (by the newest migration it knows) that may use this schema: raised
    /// by a migration that contracts (drops or changes what older binaries use). Expand-only
    /// migrations leave it, so the previous release keeps serving during a rolling upgrade.
    pub readers_from: i64,
}

/// The `meta` key a contracting migration sets to its own version
/// (see docs/design/storage.md, "Expand and contract").
pub const READERS_FROM_KEY: &str = "schema.readers_from";

impl SchemaStatus {
    pub fn is_current(&self) -> bool {
        self.applied == self.expected
    }

    /// This binary may serve on this schema: its own, or a newer one that only expanded.
    pub fn is_compatible(&self) -> bool {
        self.is_current() || (self.applied > self.expected && self.readers_from <= self.expected)
    }
}

#[derive(Debug, Clone, Copy)]
pub struct PoolStats {
    pub size: u32,
    pub idle: u32,
    pub max: u32,
}

/// A handle to the database, cheap to clone.
#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
    max_connections: u32,
    /// SQLite allows one writer at a time; queueing writers here instead of in SQLite's
    /// sleep-and-retry busy handler keeps write latency flat under load.
    sqlite_writer: Option<Arc<Semaphore>>,
}

/// A write transaction. On SQLite it holds the process's writer slot and began with
/// `BEGIN IMMEDIATE`, so it never fails half-way for lack of the write lock.
pub struct WriteTx {
    tx: Transaction<'static, Any>,
    _writer: Option<OwnedSemaphorePermit>,
}

impl WriteTx {
    pub fn conn(&mut self) -> &mut AnyConnection {
        &mut self.tx
    }

    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }
}

/// A pooled connection for single-statement writes (each commits by itself). On SQLite it
/// holds the writer slot, so it queues behind transactions instead of in the busy handler.
pub struct WriteConn {
    conn: PoolConnection<Any>,
    _writer: Option<OwnedSemaphorePermit>,
}

impl WriteConn {
    pub fn conn(&mut self) -> &mut AnyConnection {
        &mut self.conn
    }
}

/// Held while a run-once job runs; on PostgreSQL it is a transaction-scoped advisory lock.
/// Call [`JobLock::release`] when the job ends; a dropped lock is released when its
/// connection next returns to the pool, and a dead process's lock when its session ends.
pub struct JobLock {
    tx: Option<Transaction<'static, Any>>,
}

impl JobLock {
    pub async fn release(self) -> Result<(), sqlx::Error> {
        match self.tx {
            Some(tx) => tx.rollback().await,
            None => Ok(()),
        }
    }
}

impl Db {
    /// Connects, retrying with backoff while the server is unreachable.
    pub async fn connect(url: &str, options: &DbOptions) -> Result<Db, DbError> {
        install_default_drivers();
        let backend = Backend::from_url(url)?;
        let mut pool_options = AnyPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout);
        if backend == Backend::Sqlite {
            // A file on this machine cannot drop a connection: skip the ping before each use.
            pool_options = pool_options
                .test_before_acquire(false)
                .after_connect(|conn, _meta| {
                    Box::pin(async move {
                        for pragma in [
                            "PRAGMA journal_mode = WAL",
                            "PRAGMA synchronous = NORMAL",
                            "PRAGMA foreign_keys = ON",
                            "PRAGMA busy_timeout = 10000",
                            // Page cache of 16 MiB per connection (the default is 2 MiB).
                            // No memory-mapped reads: a large scan (CRL generation, an audit
                            // export) would map, through the kernel's fault-around, most of
                            // the file into every connection's resident memory.
                            "PRAGMA cache_size = -16384",
                        ] {
                            conn.execute(pragma).await?;
                        }
                        Ok(())
                    })
                });
        } else {
            // A connection that answered a moment ago is taken as live: only one that sat
            // idle longer (the server may have closed it, a failover moved the address) is
            // pinged before use, instead of a round trip to the server before every query.
            pool_options = pool_options
                .test_before_acquire(false)
                .before_acquire(|conn, meta| {
                    Box::pin(async move {
                        Ok(meta.idle_for < PING_AFTER_IDLE || conn.ping().await.is_ok())
                    })
                });
        }

        // Probe with single connections first: the pool's own connect retries silently until
        // its acquire timeout, which would hide why start-up is waiting.
        let started = Instant::now();
        let mut delay = Duration::from_millis(200);
        let mut attempts = 0;
        loop {
            attempts += 1;
            match AnyConnection::connect(url).await {
                Ok(conn) => {
                    let _ = conn.close().await;
                    break;
                }
                Err(e)
                    if is_transient(&e) && started.elapsed() + delay < options.connect_timeout =>
                {
                    tracing::warn!(attempt = attempts, retry_in_ms = delay.as_millis() as u64, error = %e, "database not reachable yet");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                Err(e) if is_transient(&e) => {
                    return Err(DbError::Unreachable {
                        url: redact_url(url),
                        attempts,
                        seconds: started.elapsed().as_secs(),
                        source: e,
                    });
                }
                Err(e) => {
                    return Err(DbError::Open {
                        url: redact_url(url),
                        source: e,
                    });
                }
            }
        }
        let pool = pool_options
            .connect(url)
            .await
            .map_err(|source| DbError::Open {
                url: redact_url(url),
                source,
            })?;
        Ok(Db {
            pool,
            backend,
            max_connections: options.max_connections,
            sqlite_writer: (backend == Backend::Sqlite).then(|| Arc::new(Semaphore::new(1))),
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// A pooled connection for reads (or single-statement writes).
    pub async fn conn(&self) -> Result<PoolConnection<Any>, sqlx::Error> {
        self.pool.acquire().await
    }

    /// A connection for single-statement writes. Do not call while holding a `WriteTx` or
    /// another `WriteConn` in the same task.
    pub async fn writer(&self) -> Result<WriteConn, sqlx::Error> {
        let writer = match &self.sqlite_writer {
            Some(slot) => Some(
                slot.clone()
                    .acquire_owned()
                    .await
                    .map_err(|_| sqlx::Error::PoolClosed)?,
            ),
            None => None,
        };
        Ok(WriteConn {
            conn: self.pool.acquire().await?,
            _writer: writer,
        })
    }

    /// Begins a write transaction. Do not call while holding another `WriteTx` in the same task.
    pub async fn begin(&self) -> Result<WriteTx, sqlx::Error> {
        let writer = match &self.sqlite_writer {
            Some(slot) => Some(
                slot.clone()
                    .acquire_owned()
                    .await
                    .map_err(|_| sqlx::Error::PoolClosed)?,
            ),
            None => None,
        };
        let tx = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        };
        Ok(WriteTx {
            tx,
            _writer: writer,
        })
    }

    /// Applies pending migrations. Refuses a database that a newer binary migrated.
    /// Brings the schema to this binary's version. A schema newer than the binary (another
    /// replica of a newer release migrated it) is left alone and served when it is still
    /// compatible (expand/contract, [`SchemaStatus::is_compatible`]); otherwise refused.
    pub async fn migrate(&self) -> Result<(), DbError> {
        // A fresh database has no migrations table yet: nothing is newer than this binary.
        if let Ok(status) = self.schema_status().await
            && status.applied > status.expected
        {
            if !status.is_compatible() {
                return Err(DbError::NewerThanBinary {
                    applied: status.applied,
                    known: status.expected,
                    readers_from: status.readers_from,
                });
            }
            tracing::warn!(
                applied = status.applied,
                known = status.expected,
                "the database schema is newer than this binary and still compatible (a rolling upgrade): serving without migrating"
            );
            return Ok(());
        }
        self.backend.migrator().run(&self.pool).await?;
        Ok(())
    }

    pub async fn schema_status(&self) -> Result<SchemaStatus, sqlx::Error> {
        let expected = latest_migration(self.backend);
        let applied: i64 = sqlx::query_scalar(
            "SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations WHERE success",
        )
        .fetch_one(&self.pool)
        .await?;
        let readers_from = crate::custody::meta_value(self, READERS_FROM_KEY)
            .await
            .unwrap_or(None);
        Ok(SchemaStatus {
            applied,
            expected,
            readers_from: readers_from.and_then(|v| v.parse().ok()).unwrap_or(0),
        })
    }

    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        self.conn().await?.ping().await
    }

    pub fn pool_stats(&self) -> PoolStats {
        PoolStats {
            size: self.pool.size(),
            idle: self.pool.num_idle() as u32,
            max: self.max_connections,
        }
    }

    /// Takes the cluster-wide lock for a job that must run on one replica at a time.
    /// Returns `None` when another replica holds it. On SQLite one process owns the file,
    /// so the lock is always granted.
    pub async fn try_job_lock(&self, job: &str) -> Result<Option<JobLock>, sqlx::Error> {
        if self.backend == Backend::Sqlite {
            return Ok(Some(JobLock { tx: None }));
        }
        let mut tx = self.pool.begin().await?;
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(advisory_key(job))
            .fetch_one(&mut *tx)
            .await?;
        Ok(got.then_some(JobLock { tx: Some(tx) }))
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Writes a transactionally consistent copy of this SQLite database to `path`, which must
    /// not exist yet (SQLite's `VACUUM INTO`: it reads inside one read transaction, so the
    /// server keeps serving and writing meanwhile). The copy is not yet synced to disk.
    pub async fn vacuum_into(&self, path: &Path) -> Result<(), DbError> {
        if self.backend != Backend::Sqlite {
            return Err(DbError::Sqlx(sqlx::Error::Configuration(
                "VACUUM INTO is for SQLite databases only".into(),
            )));
        }
        let target = path.to_str().ok_or_else(|| {
            DbError::Sqlx(sqlx::Error::Configuration(
                format!("{} is not a UTF-8 path", path.display()).into(),
            ))
        })?;
        sqlx::query("VACUUM INTO $1")
            .bind(target.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

fn latest_migration(backend: Backend) -> i64 {
    backend
        .migrator()
        .iter()
        .map(|m| m.version)
        .max()
        .unwrap_or(0)
}

fn advisory_key(job: &str) -> i64 {
    let digest = crate::secret::sha256(format!("kizuna-job:{job}").as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

/// How long a PostgreSQL connection may sit idle in the pool before it is pinged on its next use.
const PING_AFTER_IDLE: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_schemes_are_refused_with_the_url_redacted() {
        let err = Backend::from_url("mysql://root:pw@localhost/x").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("mysql://root:***@localhost/x"), "{text}");
        assert!(!text.contains("pw"));
    }
}
