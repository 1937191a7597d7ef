//! SQLite database files, for backup and restore: the file a URL names, and whether a
//! file is a whole, sound Kizuna database this binary can use.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteLockingMode};
use sqlx::{Connection, Executor};

use super::{Backend, latest_migration};

/// The file of a `sqlite:` database URL, read as the driver reads it; `None` for PostgreSQL
/// and in-memory databases.
pub fn sqlite_file(url: &str) -> Option<PathBuf> {
    use std::str::FromStr;
    if Backend::from_url(url).ok()? != Backend::Sqlite {
        return None;
    }
    let options = SqliteConnectOptions::from_str(url).ok()?;
    let path = options.get_filename();
    let text = path.to_string_lossy();
    (text != ":memory:" && !text.starts_with("file:")).then(|| path.to_path_buf())
}

/// The `sqlite:` URL of an existing database file (no `mode=rwc`: it is not created).
pub fn sqlite_url(path: &Path) -> String {
    // The driver percent-decodes the path, so these three must be encoded.
    let text = path
        .display()
        .to_string()
        .replace('%', "%25")
        .replace('?', "%3F")
        .replace('#', "%23");
    format!("sqlite://{text}")
}

/// What [`check_sqlite_file`] found in a whole, sound Kizuna database file.
#[derive(Debug, Clone, Copy)]
pub struct SqliteFileInfo {
    pub bytes: u64,
    /// The schema version (newest migration) the file carries.
    pub schema_version: i64,
}

/// Why a file is not a Kizuna SQLite database that can be restored.
#[derive(Debug, thiserror::Error)]
pub enum SqliteFileError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} is not a SQLite database: it does not begin with the SQLite file header")]
    NotSqlite(PathBuf),
    #[error(
        "{path} is truncated: its header promises {expected} bytes but the file has {actual}; it is not a complete backup"
    )]
    Truncated {
        path: PathBuf,
        expected: u64,
        actual: u64,
    },
    #[error("{path} is damaged (SQLite integrity check): {detail}")]
    Damaged { path: PathBuf, detail: String },
    #[error(
        "{0} is a SQLite database but not a Kizuna one (it has no migration history or meta table)"
    )]
    NotKizuna(PathBuf),
    #[error(
        "{path} was written by a newer Kizuna release (schema version {applied}; this binary knows up to {expected}): restore it with that release"
    )]
    Newer {
        path: PathBuf,
        applied: i64,
        expected: i64,
    },
}

const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// Checks, without writing anything, that `path` is a complete, undamaged SQLite database
/// made by Kizuna and no newer than this binary: the file header and its size, SQLite's
/// `integrity_check` over every page, the migration history. Reads the whole file.
pub async fn check_sqlite_file(path: &Path) -> Result<SqliteFileInfo, SqliteFileError> {
    let io = |source| SqliteFileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let actual = std::fs::metadata(path).map_err(io)?.len();
    let mut header = [0u8; 100];
    let read = {
        use std::io::Read;
        let mut file = std::fs::File::open(path).map_err(io)?;
        let mut read = 0;
        loop {
            match file.read(&mut header[read..]).map_err(io)? {
                0 => break read,
                n => read += n,
            }
            if read == header.len() {
                break read;
            }
        }
    };
    let prefix = read.min(SQLITE_HEADER.len());
    if read == 0 || header[..prefix] != SQLITE_HEADER[..prefix] {
        return Err(SqliteFileError::NotSqlite(path.to_path_buf()));
    }
    if read < header.len() {
        return Err(SqliteFileError::Truncated {
            path: path.to_path_buf(),
            expected: header.len() as u64,
            actual,
        });
    }
    let be32 = |at: usize| {
        u32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    let page_size = match u16::from_be_bytes([header[16], header[17]]) {
        1 => 65_536u64,
        n => u64::from(n),
    };
    if !page_size.is_power_of_two() || !(512..=65_536).contains(&page_size) {
        return Err(SqliteFileError::NotSqlite(path.to_path_buf()));
    }
    // The page count in the header is current when its "valid for" number matches the
    // change counter (SQLite 3.7.0 and later write both); otherwise the file size decides.
    let pages = u64::from(be32(28));
    let expected = if pages > 0 && be32(92) == be32(24) {
        pages * page_size
    } else {
        actual.div_ceil(page_size).max(1) * page_size
    };
    if actual < expected {
        return Err(SqliteFileError::Truncated {
            path: path.to_path_buf(),
            expected,
            actual,
        });
    }

    let damaged = |e: sqlx::Error| SqliteFileError::Damaged {
        path: path.to_path_buf(),
        detail: e.to_string(),
    };
    // Immutable: no lock, no journal, no -wal or -shm file beside it.
    let options = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .immutable(true);
    let mut conn = SqliteConnection::connect_with(&options)
        .await
        .map_err(damaged)?;
    let result = async {
        let problems: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_all(&mut conn)
            .await
            .map_err(damaged)?;
        if problems != ["ok"] {
            return Err(SqliteFileError::Damaged {
                path: path.to_path_buf(),
                detail: problems.into_iter().take(3).collect::<Vec<_>>().join("; "),
            });
        }
        let tables: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name IN ('_sqlx_migrations', 'meta')",
        )
        .fetch_one(&mut conn)
        .await
        .map_err(damaged)?;
        if tables != 2 {
            return Err(SqliteFileError::NotKizuna(path.to_path_buf()));
        }
        let applied: i64 = sqlx::query_scalar(
            "SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations WHERE success",
        )
        .fetch_one(&mut conn)
        .await
        .map_err(damaged)?;
        let expected = latest_migration(Backend::Sqlite);
        if applied > expected {
            return Err(SqliteFileError::Newer {
                path: path.to_path_buf(),
                applied,
                expected,
            });
        }
        Ok(SqliteFileInfo {
            bytes: actual,
            schema_version: applied,
        })
    }
    .await;
    let _ = conn.close().await;
    result
}

/// Whether some process (a server, a CLI command) has the SQLite database at `path` open:
/// tries to take the file's exclusive lock, which any open connection to a WAL-mode
/// database prevents, and lets it go at once.
pub async fn sqlite_in_use(path: &Path) -> Result<bool, sqlx::Error> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .locking_mode(SqliteLockingMode::Exclusive)
        .busy_timeout(Duration::from_millis(500));
    let busy = |e: &sqlx::Error| {
        matches!(e, sqlx::Error::Database(db)
            if db.code().and_then(|c| c.parse::<i32>().ok()).is_some_and(|c| matches!(c & 0xff, 5 | 6)))
    };
    let mut conn = match SqliteConnection::connect_with(&options).await {
        Ok(conn) => conn,
        Err(e) if busy(&e) => return Ok(true),
        Err(e) => return Err(e),
    };
    let probe = match conn.execute("BEGIN EXCLUSIVE").await {
        Ok(_) => conn.execute("COMMIT").await.map(|_| false),
        Err(e) if busy(&e) => Ok(true),
        Err(e) => Err(e),
    };
    let _ = conn.close().await;
    probe
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_and_files_round_trip_as_the_driver_reads_them() {
        assert_eq!(
            sqlite_file("sqlite://./kizuna-data/kizuna.db?mode=rwc"),
            Some(PathBuf::from("./kizuna-data/kizuna.db"))
        );
        assert_eq!(sqlite_file("postgres://k@db/kizuna"), None);
        let odd = Path::new("/srv/a?b#c%d/kizuna.db");
        assert_eq!(sqlite_file(&sqlite_url(odd)).as_deref(), Some(odd));
    }

    #[tokio::test]
    async fn files_that_are_not_whole_sqlite_databases_are_named_for_what_they_are() {
        let dir = std::env::temp_dir().join(format!(
            "kizuna-db-file-{}",
            crate::secret::hex(&crate::secret::random_bytes::<6>())
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let text = dir.join("notes.txt");
        std::fs::write(&text, "not a database at all, just some text").unwrap();
        assert!(matches!(
            check_sqlite_file(&text).await,
            Err(SqliteFileError::NotSqlite(_))
        ));
        let mut cut = SQLITE_HEADER.to_vec();
        cut.extend_from_slice(&[0x10, 0x00, 1, 1, 0, 64, 32, 32, 0, 0, 0, 7, 0, 0, 0, 9]);
        cut.resize(100, 0);
        cut[92..96].copy_from_slice(&7u32.to_be_bytes());
        let truncated = dir.join("cut.db");
        std::fs::write(&truncated, &cut).unwrap();
        let err = check_sqlite_file(&truncated).await.unwrap_err();
        assert!(
            matches!(err, SqliteFileError::Truncated { expected, actual: 100, .. } if expected == 9 * 4096),
            "{err}"
        );
        assert!(matches!(
            check_sqlite_file(&dir.join("missing.db")).await,
            Err(SqliteFileError::Io { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
